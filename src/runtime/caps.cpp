#include "runtime/caps.hpp"

#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::runtime {

int capability_from_name(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower.rfind("cap_", 0) != 0) return -1;
  cap_value_t value;
  if (cap_from_name(lower.c_str(), &value) != 0) return -1;
  if (value > last_capability()) return -1;
  return value;
}

uint64_t capability_mask(const std::vector<std::string>& names, std::vector<std::string>* unknown) {
  uint64_t mask = 0;
  for (const auto& n : names) {
    int cap = capability_from_name(n);
    if (cap < 0) {
      if (unknown) unknown->push_back(n);
      continue;
    }
    mask |= uint64_t{1} << cap;
  }
  return mask;
}

CapabilityMasks capability_masks(const Capabilities& caps, std::vector<std::string>* unknown) {
  CapabilityMasks m;
  m.bounding = capability_mask(caps.bounding, unknown);
  m.effective = capability_mask(caps.effective, unknown);
  m.inheritable = capability_mask(caps.inheritable, unknown);
  m.permitted = capability_mask(caps.permitted, unknown);
  m.ambient = capability_mask(caps.ambient, unknown);
  return m;
}

int last_capability() {
  static int last = [] {
    try {
      return std::stoi(read_file("/proc/sys/kernel/cap_last_cap"));
    } catch (...) {
      return CAP_LAST_CAP;
    }
  }();
  return last;
}

void drop_bounding(const CapabilityMasks& masks) {
  for (int cap = 0; cap <= last_capability(); ++cap) {
    if (masks.bounding & (uint64_t{1} << cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      throw_errno("drop capability " + std::to_string(cap) + " from the bounding set");
  }
}

void apply_capabilities(const CapabilityMasks& masks) {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  data[0].effective = static_cast<uint32_t>(masks.effective);
  data[1].effective = static_cast<uint32_t>(masks.effective >> 32);
  data[0].permitted = static_cast<uint32_t>(masks.permitted);
  data[1].permitted = static_cast<uint32_t>(masks.permitted >> 32);
  data[0].inheritable = static_cast<uint32_t>(masks.inheritable);
  data[1].inheritable = static_cast<uint32_t>(masks.inheritable >> 32);
  if (::syscall(SYS_capset, &header, data) != 0) throw_errno("capset");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    throw_errno("clear ambient capabilities");
  for (int cap = 0; cap <= last_capability(); ++cap) {
    if (!(masks.ambient & (uint64_t{1} << cap))) continue;
    // The kernel refuses ambient caps missing from permitted or inheritable; runc ignores those too.
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
  }
}

}  // namespace berth::runtime
