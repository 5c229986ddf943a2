// Cgroups v1 (incl. hybrid hosts) and pure v2, chosen at run time.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/spec.hpp"

namespace berth::runtime {

// Where the hierarchies are mounted. Detected from /proc/self/mountinfo, or
// built by hand in tests (a temp dir standing in for /sys/fs/cgroup).
struct CgroupLayout {
  bool unified = false;                          // pure v2: one hierarchy for everything
  std::string unified_mount;                     // v2 mount point (pure v2, or the hybrid one)
  std::map<std::string, std::string> v1_mounts;  // controller → mount point (cpu, memory, …)

  static CgroupLayout detect();
  // Each mount point extended by the calling process's own cgroup in that
  // hierarchy (/proc/self/cgroup): where relative cgroupsPaths hang, as in runc.
  CgroupLayout below_own_cgroups() const;
  static CgroupLayout parse_mountinfo(const std::string& mountinfo);
};

// One container's cgroup. The path is the OCI cgroupsPath, taken from each
// hierarchy's root whether written absolute or relative (as runc does);
// without one, /berth/<id>.
class Cgroup {
 public:
  Cgroup(CgroupLayout layout, std::string path);

  // mkdir in every hierarchy (v2: enables needed controllers in the parents).
  void create();
  // Writes the resource limits; throws Error naming the file and value.
  void apply(const Resources& resources);
  void add_process(pid_t pid);
  // Moves the calling thread (of a single-threaded process) into every v1
  // hierarchy by writing "0" to `tasks`. Unlike a pid in cgroup.procs this
  // skips the global threadgroup lock and its RCU grace period (~10 ms here).
  // Only raw syscalls: safe in a forked child. Returns 0 or an errno.
  int join_v1_self(const std::vector<std::string>& task_files) const;
  std::vector<std::string> v1_task_files() const;
  // The cgroup2 directory (pure v2, or the hybrid host's unified one); "" if none.
  std::string v2_dir() const;
  // Pids of every process in the cgroup.
  std::vector<pid_t> pids() const;
  void freeze();
  void thaw();
  bool frozen() const;
  // Removes the directories (processes must be gone); missing ones are fine.
  void destroy();
  // Directories that exist for this cgroup (for tests and diagnostics).
  std::vector<std::string> directories() const;

  const std::string& path() const { return path_; }
  const CgroupLayout& layout() const { return layout_; }

  // Normalises an OCI cgroupsPath (default: /berth/<id>); rejects ".." components.
  static std::string resolve_path(const std::string& cgroups_path, const std::string& container_id);

 private:
  CgroupLayout layout_;
  std::string path_;
};

}  // namespace berth::runtime
