// /etc/passwd lookups by hand: berth is static, and glibc's NSS can't run in a
// static binary (nor should a container's NSS modules be loaded by the runtime).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace berth {

struct PasswdEntry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::string shell;
};

// Pure: finds uid in passwd-format text; malformed lines are skipped.
std::optional<PasswdEntry> find_passwd_uid(std::string_view passwd_text, uid_t uid);
// Reads the file (a missing file finds nothing).
std::optional<PasswdEntry> lookup_passwd_uid(const std::string& passwd_path, uid_t uid);

}  // namespace berth
