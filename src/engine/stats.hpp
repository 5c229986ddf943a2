// Resource usage of containers from their cgroups (v1: /sys/fs/cgroup/<controller>/berth/<id>,
// v2: /sys/fs/cgroup/berth/<id>, wherever the hierarchies are mounted), for `stats` and `top`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace berth::engine {

// 1 or 2: what berth-runtime uses on this host (v1 when any v1 controller is mounted).
int cgroup_version();

// The container's cgroup directory for a v1 controller ("memory", "cpuacct", "pids", "blkio") or,
// on v2, the unified one; empty when the hierarchy is not mounted.
std::string cgroup_dir(const std::string& id, const std::string& controller);

// The processes in the container's cgroup (and its children), sorted.
std::vector<int> cgroup_pids(const std::string& id);

// docker's `top`: the host's `ps` with ps_args (none: -ef), its lines for the container's
// processes only. The last column takes the rest of each line (a command with spaces).
struct ProcessTable {
  std::vector<std::string> titles;
  std::vector<std::vector<std::string>> processes;
};
ProcessTable container_top(const std::string& id, const std::vector<std::string>& ps_args);

struct StatsSample {
  bool valid = false;      // the cgroup exists
  uint64_t cpu_ns = 0;     // the container's CPU time
  uint64_t system_ns = 0;  // the host's (all CPUs, /proc/stat)
  uint64_t mem_usage = 0;  // without the inactive page cache, as docker shows it
  uint64_t mem_limit = 0;  // the host's memory when unlimited
  uint64_t pids = 0;
  uint64_t blk_read = 0, blk_write = 0;
  uint64_t net_rx = 0, net_tx = 0;
  int online_cpus = 1;
};

// pid: the container's init (for its network namespace's counters); 0 when not running.
StatsSample sample_stats(const std::string& id, int pid);

// Host facts for `info`.
uint64_t host_memory_bytes();

}  // namespace berth::engine
