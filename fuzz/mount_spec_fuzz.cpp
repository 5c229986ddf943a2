// libFuzzer target for the mount flag parsers: any bytes either parse into a well-formed MountSpec
// or throw berth::Error (EINVAL, one line). Any other exception escapes and aborts, which libFuzzer
// reports as a crash; so do the invariant checks below.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "storage/mount_spec.hpp"
#include "util/error.hpp"

namespace {

using namespace berth::storage;

void require(bool ok) {
  if (!ok) std::abort();
}

bool has_dotdot(std::string_view path) {
  return path == ".." || path.starts_with("../") || path.ends_with("/..") || path.find("/../") != std::string::npos;
}

// What callers rely on: absolute cleaned paths, no "..", values within their documented ranges.
void check(const MountSpec& s) {
  require(!s.target.empty() && s.target.front() == '/' && s.target != "/" && clean_path(s.target) == s.target);
  require(!has_dotdot(s.target));
  switch (s.type) {
    case MountType::Bind:
      require(!s.source.empty() && s.source.front() == '/' && clean_path(s.source) == s.source);
      require(s.driver.empty());
      break;
    case MountType::Volume:
      if (!s.source.empty()) validate_volume_name(s.source);
      require(!s.driver.empty());
      require(s.subpath.empty() || (s.subpath.front() != '/' && !has_dotdot(s.subpath)));
      break;
    case MountType::Tmpfs:
      require(s.source.empty());
      break;
  }
  require(s.tmpfs_size >= 0 && s.tmpfs_mode <= 07777);
}

template <class Parse>
void run(Parse&& parse) {
  try {
    check(parse());
  } catch (const berth::Error& e) {
    require(e.errnum() == EINVAL && std::strchr(e.what(), '\n') == nullptr);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  run([&] { return parse_volume_flag(in); });
  run([&] { return parse_volume_flag(in, "/base"); });
  run([&] { return parse_mount_flag(in); });
  run([&] { return parse_mount_flag(in, "/base/dir/"); });
  run([&] { return parse_tmpfs_flag(in); });
  try {
    require(parse_ram_size(in) >= 0);
  } catch (const berth::Error& e) {
    require(e.errnum() == EINVAL);
  }
  try {
    validate_volume_name(in);
  } catch (const berth::Error& e) {
    require(e.errnum() == EINVAL && std::strchr(e.what(), '\n') == nullptr);
  }
  std::string cleaned = clean_path(in);
  require(clean_path(cleaned) == cleaned);
  return 0;
}
