#include "engine/stats.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/process.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::engine {

namespace {

struct CgroupMounts {
  std::map<std::string, std::string> v1;  // controller → mount point
  std::string v2;                         // the cgroup2 mount point
};

const CgroupMounts& mounts() {
  static const CgroupMounts m = [] {
    CgroupMounts out;
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
      size_t dash = line.find(" - ");
      if (dash == std::string::npos) continue;
      std::istringstream pre(line.substr(0, dash)), post(line.substr(dash + 3));
      std::string f[5];
      for (auto& x : f) pre >> x;
      std::string fstype, source, options;
      post >> fstype >> source >> options;
      const std::string& point = f[4];
      if (fstype == "cgroup2") {
        if (out.v2.empty()) out.v2 = point;
      } else if (fstype == "cgroup") {
        std::istringstream opts(options);
        std::string o;
        while (std::getline(opts, o, ','))
          if (!out.v1.count(o)) out.v1[o] = point;
      }
    }
    return out;
  }();
  return m;
}

bool is_v1() {
  const auto& m = mounts();
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "blkio", "devices", "freezer", "cpuset"})
    if (m.v1.count(c)) return true;
  return false;
}

uint64_t read_u64(const std::string& path, uint64_t def = 0) {
  auto text = read_file_if_exists(path);
  if (!text) return def;
  try {
    return std::stoull(*text);
  } catch (...) {
    return def;
  }
}

std::string read_text(const std::string& path) {
  try {
    return read_file_if_exists(path).value_or("");
  } catch (...) {
    return "";
  }
}

// "key value" lines (memory.stat, cpu.stat).
uint64_t stat_key(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

uint64_t system_cpu_ns() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  uint64_t total = 0, v;
  for (int i = 0; i < 8 && in >> v; i++) total += v;
  long tick = ::sysconf(_SC_CLK_TCK);
  return total * (1000000000ULL / static_cast<uint64_t>(tick > 0 ? tick : 100));
}

void collect_pids(const std::string& dir, std::vector<int>& out, int depth) {
  std::istringstream in(read_text(dir + "/cgroup.procs"));
  int pid;
  while (in >> pid) out.push_back(pid);
  if (depth > 32) return;
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> subs;
    while (struct dirent* de = ::readdir(d))
      if (de->d_type == DT_DIR && de->d_name[0] != '.') subs.push_back(de->d_name);
    ::closedir(d);
    for (const auto& s : subs) collect_pids(dir + "/" + s, out, depth + 1);
  }
}

}  // namespace

int cgroup_version() { return is_v1() ? 1 : 2; }

std::string cgroup_dir(const std::string& id, const std::string& controller) {
  const auto& m = mounts();
  if (is_v1()) {
    auto it = m.v1.find(controller);
    return it == m.v1.end() ? "" : it->second + "/berth/" + id;
  }
  return m.v2.empty() ? "" : m.v2 + "/berth/" + id;
}

std::vector<int> cgroup_pids(const std::string& id) {
  std::vector<int> pids;
  for (const char* c : {"pids", "memory", "cpuacct", "freezer", "devices"}) {
    std::string dir = cgroup_dir(id, c);
    if (dir.empty() || !path_exists(dir)) continue;
    collect_pids(dir, pids, 0);
    break;
  }
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

uint64_t host_memory_bytes() {
  long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(size) : 0;
}

StatsSample sample_stats(const std::string& id, int pid) {
  StatsSample s;
  s.system_ns = system_cpu_ns();
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  s.online_cpus = cpus > 0 ? static_cast<int>(cpus) : 1;
  uint64_t host_mem = host_memory_bytes();
  if (is_v1()) {
    std::string mem = cgroup_dir(id, "memory");
    if (mem.empty() || !path_exists(mem)) return s;
    s.valid = true;
    std::string cpu = cgroup_dir(id, "cpuacct");
    s.cpu_ns = read_u64(cpu + "/cpuacct.usage");
    uint64_t usage = read_u64(mem + "/memory.usage_in_bytes");
    uint64_t inactive = stat_key(read_text(mem + "/memory.stat"), "total_inactive_file");
    s.mem_usage = usage > inactive ? usage - inactive : usage;
    s.mem_limit = read_u64(mem + "/memory.limit_in_bytes", host_mem);
    if (s.mem_limit == 0 || s.mem_limit > host_mem) s.mem_limit = host_mem;
    s.pids = read_u64(cgroup_dir(id, "pids") + "/pids.current");
    std::istringstream blk(read_text(cgroup_dir(id, "blkio") + "/blkio.throttle.io_service_bytes_recursive"));
    std::string dev, op;
    uint64_t v;
    while (blk >> dev) {
      if (dev == "Total") {
        blk >> v;
        continue;
      }
      if (!(blk >> op >> v)) break;
      if (op == "Read") s.blk_read += v;
      if (op == "Write") s.blk_write += v;
    }
  } else {
    std::string dir = cgroup_dir(id, "");
    if (dir.empty() || !path_exists(dir)) return s;
    s.valid = true;
    s.cpu_ns = stat_key(read_text(dir + "/cpu.stat"), "usage_usec") * 1000;
    uint64_t usage = read_u64(dir + "/memory.current");
    uint64_t inactive = stat_key(read_text(dir + "/memory.stat"), "inactive_file");
    s.mem_usage = usage > inactive ? usage - inactive : usage;
    s.mem_limit = read_u64(dir + "/memory.max", host_mem);  // "max" does not parse: the host's
    if (s.mem_limit == 0 || s.mem_limit > host_mem) s.mem_limit = host_mem;
    s.pids = read_u64(dir + "/pids.current");
    std::istringstream io(read_text(dir + "/io.stat"));
    std::string word;
    while (io >> word) {
      if (word.rfind("rbytes=", 0) == 0) s.blk_read += std::stoull(word.substr(7));
      if (word.rfind("wbytes=", 0) == 0) s.blk_write += std::stoull(word.substr(7));
    }
  }
  if (pid > 0) {
    std::istringstream net(read_text("/proc/" + std::to_string(pid) + "/net/dev"));
    std::string line;
    std::getline(net, line);
    std::getline(net, line);
    while (std::getline(net, line)) {
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      name.erase(0, name.find_first_not_of(' '));
      if (name == "lo") continue;
      std::istringstream f(line.substr(colon + 1));
      uint64_t vals[9] = {};
      for (auto& x : vals) f >> x;
      s.net_rx += vals[0];
      s.net_tx += vals[8];
    }
  }
  return s;
}

namespace {

std::vector<std::string> fields_of(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string f;
  while (in >> f) out.push_back(f);
  return out;
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::istringstream in(p);
  std::string dir;
  while (std::getline(in, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* d : {"/usr/bin/", "/bin/"})
    if (::access((std::string(d) + name).c_str(), X_OK) == 0) return std::string(d) + name;
  return name;
}

}  // namespace

ProcessTable container_top(const std::string& id, const std::vector<std::string>& ps_args) {
  std::vector<int> pids = cgroup_pids(id);
  std::vector<std::string> argv = {find_in_path("ps")};
  if (ps_args.empty())
    argv.push_back("-ef");
  else
    argv.insert(argv.end(), ps_args.begin(), ps_args.end());
  ProcessResult r = run_process(argv);
  if (r.status != 0) {
    std::string err = r.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    throw Error("ps: exit status " + std::to_string(r.status) + ": " + err);
  }
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  ProcessTable table;
  table.titles = fields_of(line);
  size_t pid_index = table.titles.size();
  for (size_t i = 0; i < table.titles.size(); i++)
    if (table.titles[i] == "PID") pid_index = i;
  if (pid_index == table.titles.size()) throw Error("Couldn't find PID field in ps output");
  while (std::getline(lines, line)) {
    std::vector<std::string> f = fields_of(line);
    if (f.size() <= pid_index) continue;
    std::string pid_text = f[pid_index] == "-" && pid_index + 1 < f.size() ? f[pid_index + 1] : f[pid_index];
    int pid;
    try {
      size_t used = 0;
      pid = std::stoi(pid_text, &used);
      if (used != pid_text.size()) throw std::invalid_argument(pid_text);
    } catch (const std::exception&) {
      throw Error("Unexpected pid '" + pid_text + "': strconv.Atoi: parsing \"" + pid_text + "\": invalid syntax");
    }
    if (!std::binary_search(pids.begin(), pids.end(), pid)) continue;
    std::vector<std::string> row(f.begin(), f.begin() + static_cast<long>(std::min(f.size(), table.titles.size() - 1)));
    std::string rest;
    for (size_t i = table.titles.size() - 1; i < f.size(); i++) rest += (rest.empty() ? "" : " ") + f[i];
    row.push_back(rest);
    table.processes.push_back(std::move(row));
  }
  return table;
}

}  // namespace berth::engine
