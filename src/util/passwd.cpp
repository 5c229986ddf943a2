#include "util/passwd.hpp"

#include <charconv>
#include <vector>

#include "util/fs.hpp"

namespace berth {

std::optional<PasswdEntry> find_passwd_uid(std::string_view text, uid_t uid) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    std::vector<std::string_view> f;
    for (;;) {
      size_t c = line.find(':');
      f.push_back(line.substr(0, c));
      if (c == std::string_view::npos) break;
      line = line.substr(c + 1);
    }
    if (f.size() < 7) continue;
    unsigned long id = 0, gid = 0;
    auto [p1, e1] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), id);
    auto [p2, e2] = std::from_chars(f[3].data(), f[3].data() + f[3].size(), gid);
    if (e1 != std::errc() || p1 != f[2].data() + f[2].size() || id != uid) continue;
    PasswdEntry e;
    e.name = f[0];
    e.uid = static_cast<uid_t>(id);
    e.gid = e2 == std::errc() && p2 == f[3].data() + f[3].size() ? static_cast<gid_t>(gid) : 0;
    e.home = f[5];
    e.shell = f[6];
    return e;
  }
  return std::nullopt;
}

std::optional<PasswdEntry> lookup_passwd_uid(const std::string& passwd_path, uid_t uid) {
  auto text = read_file_if_exists(passwd_path);
  if (!text) return std::nullopt;
  return find_passwd_uid(*text, uid);
}

}  // namespace berth
