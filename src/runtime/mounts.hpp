// The container's root filesystem: mounts, devices, pivot_root, masked and
// read-only paths. Every target inside the rootfs is opened with
// openat2(RESOLVE_IN_ROOT) and mounted through its /proc/self/fd path, so a
// hostile rootfs (symlinks pointing out) can never redirect a mount to the host.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "runtime/cgroups.hpp"
#include "runtime/spec.hpp"
#include "util/fd.hpp"

namespace berth::runtime {

struct MountFlags {
  unsigned long flags = 0;              // MS_* for mount(2)
  unsigned long propagation = 0;        // MS_PRIVATE/SHARED/SLAVE/UNBINDABLE (| MS_REC)
  uint64_t attr_set = 0, attr_clr = 0;  // recursive (rro, rnosuid …) via mount_setattr
  std::string data;                     // what the filesystem parses (mode=755, size=…)
  bool bind = false;
};

// Pure: option list → flags. Unknown options go to data, as runc does.
MountFlags parse_mount_options(const std::vector<std::string>& options);
// "rslave" → MS_SLAVE|MS_REC; throws on an unknown value.
unsigned long parse_propagation(const std::string& value);

// Opens path inside root without ever leaving it (RESOLVE_IN_ROOT), as O_PATH.
UniqueFd open_in_root(int root_fd, const std::string& path, uint64_t extra_resolve = 0, int flags = 0);
// The same without throwing: an invalid fd with errno set.
UniqueFd try_open_in_root(int root_fd, const std::string& path, uint64_t extra_resolve = 0, int flags = 0);
// Like open_in_root, creating missing directories (and the last component as an
// empty file when final_is_file) inside root.
UniqueFd mkdir_all_in_root(int root_fd, const std::string& path, bool final_is_file);
std::string fd_path(int fd);

struct RootfsContext {
  const Spec* spec = nullptr;
  std::string rootfs;  // absolute host path
  bool new_userns = false;
  bool new_cgroupns = false;
  std::string cgroup_path;                          // the container's cgroup (for /sys/fs/cgroup without a cgroupns)
  const CgroupLayout* host_cgroups = nullptr;       // hierarchies as mounted on the host
  const CgroupLayout* container_cgroups = nullptr;  // the same, rebased where the container's cgroup hangs
};

// In the new mount namespace, before pivot_root: propagation, mounts, devices.
void prepare_rootfs(const RootfsContext& ctx);
// pivot_root (or MS_MOVE + chroot with no_pivot) into the rootfs.
void enter_rootfs(const std::string& rootfs, bool no_pivot);
// After pivot_root: masked paths, read-only paths, read-only root.
void finalize_rootfs(const Spec& spec);

}  // namespace berth::runtime
