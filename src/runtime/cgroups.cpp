// Cgroupfs driver modelled on runc's libcontainer/cgroups/fs (v1) and fs2 (v2).
#include "runtime/cgroups.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <thread>

#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::runtime {

namespace {

using namespace std::chrono_literals;

// v1 controllers berth joins (runc's list); named hierarchies are handled apart.
constexpr const char* kV1Controllers[] = {"cpu",  "cpuacct", "cpuset",  "memory",   "devices",    "freezer", "blkio",
                                          "pids", "hugetlb", "net_cls", "net_prio", "perf_event", "rdma",    "misc"};
constexpr const char* kSystemdHierarchy = "name=systemd";
// v2 controllers enabled in the parents' cgroup.subtree_control, in this order.
constexpr const char* kV2Controllers[] = {"cpu", "memory", "pids", "io", "cpuset", "hugetlb"};

bool is_v1_controller(std::string_view name) {
  return std::any_of(std::begin(kV1Controllers), std::end(kV1Controllers), [&](const char* c) { return name == c; });
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

// The whitespace-separated words of s (what `stream >> word` reads; no iostreams here: the shim
// links this file, and they would bring the locale machinery into its resident memory).
std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  for (size_t b = s.find_first_not_of(kSpace); b != std::string_view::npos; b = s.find_first_not_of(kSpace, b)) {
    size_t e = std::min(s.find_first_of(kSpace, b), s.size());
    out.emplace_back(s.substr(b, e - b));
    b = e;
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\n");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\n");
  return std::string(s.substr(b, e - b + 1));
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() &&
        std::all_of(s.begin() + i + 1, s.begin() + i + 4, [](char c) { return c >= '0' && c <= '7'; })) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Collapses slashes and drops "." so every path is "/a/b"; ".." is refused
// because the result is joined onto each hierarchy's mount point.
std::string normalise(const std::string& path, const std::string& original) {
  std::string out;
  for (const std::string& comp : split(path, '/')) {
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") throw Error("cgroupsPath \"" + original + "\": \"..\" is not allowed");
    out += '/';
    out += comp;
  }
  if (out.empty()) throw Error("cgroupsPath \"" + original + "\": refers to the cgroup root");
  return out;
}

// systemd's slice naming: "a-b-c.slice" lives at /a.slice/a-b.slice/a-b-c.slice.
std::string expand_slice(const std::string& slice, const std::string& original) {
  const std::string suffix = ".slice";
  auto bad = [&] { return Error("cgroupsPath \"" + original + "\": invalid slice name \"" + slice + "\""); };
  if (slice.size() <= suffix.size() || slice.compare(slice.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw bad();
  if (slice.find('/') != std::string::npos) throw bad();
  std::string name = slice.substr(0, slice.size() - suffix.size());
  if (name == "-") return "";
  std::string path, prefix;
  for (const std::string& comp : split(name, '-')) {
    if (comp.empty()) throw bad();
    path += "/" + prefix + comp + suffix;
    prefix += comp + "-";
  }
  return path;
}

// ---- file access -----------------------------------------------------------

[[noreturn]] void throw_write(const std::string& file, std::string_view value, int err) {
  throw Error(errno_message("cgroup " + file + ": write " + std::string(value), err), err);
}

// One write(2) per value: cgroupfs parses each write separately. No O_CREAT:
// a missing file means the controller is not there, which must be reported.
void write_cg(const std::string& dir, const std::string& name, std::string_view value) {
  std::string file = dir + "/" + name;
  int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) throw_write(file, value, errno);
  UniqueFd owner(fd);
  ssize_t n;
  do {
    n = ::write(fd, value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw_write(file, value, errno);
  if (static_cast<size_t>(n) != value.size()) throw_write(file, value, EIO);
}

// Best-effort variant for the hybrid unified hierarchy and optional files.
bool try_write_cg(const std::string& dir, const std::string& name, std::string_view value) {
  try {
    write_cg(dir, name, value);
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string read_cg(const std::string& dir, const std::string& name) {
  try {
    return read_file(dir + "/" + name);
  } catch (const Error& e) {
    throw Error("cgroup " + std::string(e.what()), e.errnum());
  }
}

std::optional<std::string> read_cg_if_exists(const std::string& dir, const std::string& name) {
  try {
    return read_file_if_exists(dir + "/" + name);
  } catch (const Error& e) {
    throw Error("cgroup " + std::string(e.what()), e.errnum());
  }
}

bool file_exists(const std::string& dir, const std::string& name) { return path_exists(dir + "/" + name); }

bool dir_exists(const std::string& dir) {
  struct stat st;
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// ---- layout helpers -----------------------------------------------------------

// Distinct v1 mount points berth uses (comounted controllers share one), stable order.
std::vector<std::string> v1_hierarchies(const CgroupLayout& layout) {
  std::vector<std::string> out;
  auto add = [&](const std::string& key) {
    auto it = layout.v1_mounts.find(key);
    if (it != layout.v1_mounts.end() && std::find(out.begin(), out.end(), it->second) == out.end())
      out.push_back(it->second);
  };
  for (const char* c : kV1Controllers) add(c);
  add(kSystemdHierarchy);
  return out;
}

bool hybrid(const CgroupLayout& layout) { return !layout.unified && !layout.unified_mount.empty(); }

std::string v1_dir_or_empty(const CgroupLayout& layout, const std::string& path, const char* controller) {
  auto it = layout.v1_mounts.find(controller);
  return it == layout.v1_mounts.end() ? std::string() : it->second + path;
}

std::string v1_dir(const CgroupLayout& layout, const std::string& path, const char* controller, const char* what) {
  std::string dir = v1_dir_or_empty(layout, path, controller);
  if (dir.empty())
    throw Error(std::string("cgroup: cannot set ") + what + ": the " + controller + " controller is not mounted");
  return dir;
}

// Every directory this cgroup has, leaf of each hierarchy; the hybrid unified
// one is last because failures there are tolerated.
std::vector<std::string> all_dirs(const CgroupLayout& layout, const std::string& path) {
  std::vector<std::string> out;
  if (layout.unified) {
    out.push_back(layout.unified_mount + path);
    return out;
  }
  for (const std::string& mount : v1_hierarchies(layout)) out.push_back(mount + path);
  if (hybrid(layout)) out.push_back(layout.unified_mount + path);
  return out;
}

std::string i64s(int64_t v) { return std::to_string(v); }
std::string u64s(uint64_t v) { return std::to_string(v); }

// runc's numToStr for v2: 0 = unset, -1 = "max".
std::string v2_num(int64_t v) {
  if (v == 0) return "";
  if (v == -1) return "max";
  return i64s(v);
}

std::string dev_id(int64_t major, int64_t minor) { return i64s(major) + ":" + i64s(minor); }

// ---- device rules ----------------------------------------------------------------

constexpr unsigned kAccMknod = 1, kAccRead = 2, kAccWrite = 4, kAccAll = 7;

unsigned parse_access(const std::string& access, size_t index) {
  if (access.empty()) return kAccAll;
  unsigned bits = 0;
  for (char c : access) {
    if (c == 'r')
      bits |= kAccRead;
    else if (c == 'w')
      bits |= kAccWrite;
    else if (c == 'm')
      bits |= kAccMknod;
    else
      throw Error("cgroup: device rule " + std::to_string(index) + ": invalid access \"" + access + "\"");
  }
  return bits;
}

char rule_type(const DeviceRule& rule, size_t index) {
  if (rule.type.empty() || rule.type == "a") return 'a';
  if (rule.type == "b" || rule.type == "c") return rule.type[0];
  throw Error("cgroup: device rule " + std::to_string(index) + ": invalid type \"" + rule.type + "\"");
}

// -1 (and absent) mean any number, like '*' in devices.allow.
int64_t rule_number(const std::optional<int64_t>& n, size_t index) {
  if (!n || *n == -1) return -1;
  if (*n < 0 || *n > 0xffffffffLL)
    throw Error("cgroup: device rule " + std::to_string(index) + ": invalid device number " + i64s(*n));
  return *n;
}

// v1 syntax: "c 1:3 rwm"; type a is written as plain "a" (the kernel ignores the rest).
std::string v1_rule_text(const DeviceRule& rule, size_t index) {
  char type = rule_type(rule, index);
  if (type == 'a') return "a";
  auto num = [&](const std::optional<int64_t>& n) {
    int64_t v = rule_number(n, index);
    return v < 0 ? std::string("*") : i64s(v);
  };
  parse_access(rule.access, index);
  std::string text = std::string(1, type) + " " + num(rule.major) + ":" + num(rule.minor) + " ";
  return text + (rule.access.empty() ? std::string("rwm") : rule.access);
}

// The kernel's v1 device cgroup state machine (security/device_cgroup.c): a
// default plus exceptions. Replaying the rules through it gives v2 exactly the
// semantics the same rule list has on v1.
struct DeviceException {
  char type;
  int64_t major, minor;  // -1 = any
  unsigned access;
};

struct DeviceState {
  bool default_allow = true;  // a new v1 cgroup under an allow-all parent
  std::vector<DeviceException> exceptions;

  void apply(const DeviceRule& rule, size_t index) {
    char type = rule_type(rule, index);
    if (type == 'a') {
      default_allow = rule.allow;
      exceptions.clear();
      return;
    }
    DeviceException ex{type, rule_number(rule.major, index), rule_number(rule.minor, index),
                       parse_access(rule.access, index)};
    auto same = [&](const DeviceException& e) {
      return e.type == ex.type && e.major == ex.major && e.minor == ex.minor;
    };
    if (rule.allow != default_allow) {  // dev_exception_add: merge access
      auto it = std::find_if(exceptions.begin(), exceptions.end(), same);
      if (it != exceptions.end())
        it->access |= ex.access;
      else
        exceptions.push_back(ex);
    } else {  // dev_exception_rm: drop access bits from the identical entry
      for (auto& e : exceptions)
        if (same(e)) e.access &= ~ex.access;
      std::erase_if(exceptions, [](const DeviceException& e) { return e.access == 0; });
    }
  }
};

// ---- eBPF device filter (v2) -----------------------------------------------------------

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// Program for BPF_PROG_TYPE_CGROUP_DEVICE: returns 1 to allow, 0 to deny.
// r2 = device type, r3 = requested access, r4 = major, r5 = minor.
std::vector<bpf_insn> device_program(const DeviceState& state) {
  std::vector<bpf_insn> p;
  p.push_back(insn(BPF_LDX | BPF_W | BPF_MEM, 2, 1, 0, 0));  // access_type
  p.push_back(insn(BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xffff));
  p.push_back(insn(BPF_LDX | BPF_W | BPF_MEM, 3, 1, 0, 0));
  p.push_back(insn(BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16));
  p.push_back(insn(BPF_LDX | BPF_W | BPF_MEM, 4, 1, 4, 0));  // major
  p.push_back(insn(BPF_LDX | BPF_W | BPF_MEM, 5, 1, 8, 0));  // minor
  const int32_t result = state.default_allow ? 0 : 1;        // an exception inverts the default
  for (const DeviceException& ex : state.exceptions) {
    std::vector<bpf_insn> block;
    std::vector<size_t> jumps;  // jumps to patch to the end of this block
    auto jump_next = [&](bpf_insn i) {
      jumps.push_back(block.size());
      block.push_back(i);
    };
    int32_t type = ex.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
    jump_next(insn(BPF_JMP32 | BPF_JNE | BPF_K, 2, 0, 0, type));
    // JMP32 compares the low 32 bits, so majors above 2^31 still compare right.
    if (ex.major >= 0) jump_next(insn(BPF_JMP32 | BPF_JNE | BPF_K, 4, 0, 0, static_cast<int32_t>(ex.major)));
    if (ex.minor >= 0) jump_next(insn(BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, 0, static_cast<int32_t>(ex.minor)));
    block.push_back(insn(BPF_ALU | BPF_MOV | BPF_X, 1, 3, 0, 0));
    block.push_back(insn(BPF_ALU | BPF_AND | BPF_K, 1, 0, 0, static_cast<int32_t>(ex.access)));
    if (state.default_allow)  // deny exception: any overlap denies (match_exception_partial)
      jump_next(insn(BPF_JMP32 | BPF_JEQ | BPF_K, 1, 0, 0, 0));
    else  // allow exception: every requested bit must be granted (match_exception)
      jump_next(insn(BPF_JMP32 | BPF_JNE | BPF_X, 1, 3, 0, 0));
    block.push_back(insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, result));
    block.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    for (size_t j : jumps) block[j].off = static_cast<int16_t>(block.size() - j - 1);
    p.insert(p.end(), block.begin(), block.end());
  }
  p.push_back(insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, state.default_allow ? 1 : 0));
  p.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  return p;
}

long sys_bpf(int cmd, bpf_attr& attr) { return ::syscall(__NR_bpf, cmd, &attr, sizeof attr); }

std::vector<uint32_t> attached_device_programs(int cgroup_fd, const std::string& dir) {
  std::vector<uint32_t> ids(16);
  for (;;) {
    bpf_attr attr{};
    attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = reinterpret_cast<uintptr_t>(ids.data());
    attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
    if (sys_bpf(BPF_PROG_QUERY, attr) == 0) {
      ids.resize(attr.query.prog_cnt);
      return ids;
    }
    if (errno == ENOSPC && ids.size() < 4096) {
      ids.resize(ids.size() * 4);
      continue;
    }
    throw_errno("cgroup " + dir + ": query device programs");
  }
}

// Attaches the new filter before detaching the old ones so there is no
// moment without a filter on an update.
void set_device_filter(const std::string& dir, const DeviceState& state) {
  UniqueFd cg = open_or_throw(dir, O_RDONLY | O_DIRECTORY);
  bool allow_all = state.default_allow && state.exceptions.empty();
  std::vector<uint32_t> old;
  try {
    old = attached_device_programs(cg.get(), dir);
  } catch (const Error&) {
    // Allowing everything needs no eBPF at all; only a real filter must fail.
    if (!allow_all) throw;
  }
  if (!allow_all) {
    std::vector<bpf_insn> prog = device_program(state);
    static const char license[] = "Apache";
    auto load = [&](char* log, uint32_t log_size) {
      bpf_attr attr{};
      attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
      attr.insns = reinterpret_cast<uintptr_t>(prog.data());
      attr.insn_cnt = static_cast<uint32_t>(prog.size());
      attr.license = reinterpret_cast<uintptr_t>(license);
      attr.log_buf = reinterpret_cast<uintptr_t>(log);
      attr.log_size = log_size;
      attr.log_level = log ? 1 : 0;
      return sys_bpf(BPF_PROG_LOAD, attr);
    };
    long fd = load(nullptr, 0);
    if (fd < 0) {
      int err = errno;
      // Load again with a log only to explain the failure.
      std::string log(64 * 1024, '\0');
      long again = load(log.data(), static_cast<uint32_t>(log.size()));
      if (again >= 0) ::close(static_cast<int>(again));
      std::string verifier = trim(log.c_str());
      throw Error(errno_message("cgroup " + dir + ": load device filter" +
                                    (verifier.empty() ? "" : " (verifier: " + verifier + ")"),
                                err),
                  err);
    }
    UniqueFd prog_fd(static_cast<int>(fd));
    bpf_attr at{};
    at.target_fd = static_cast<uint32_t>(cg.get());
    at.attach_bpf_fd = static_cast<uint32_t>(prog_fd.get());
    at.attach_type = BPF_CGROUP_DEVICE;
    at.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, at) != 0) throw_errno("cgroup " + dir + ": attach device filter");
  }
  for (uint32_t id : old) {
    bpf_attr get{};
    get.prog_id = id;
    long fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, get);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // already gone
      throw_errno("cgroup " + dir + ": get device program " + std::to_string(id));
    }
    UniqueFd old_fd(static_cast<int>(fd));
    bpf_attr det{};
    det.target_fd = static_cast<uint32_t>(cg.get());
    det.attach_bpf_fd = static_cast<uint32_t>(old_fd.get());
    det.attach_type = BPF_CGROUP_DEVICE;
    if (sys_bpf(BPF_PROG_DETACH, det) != 0 && errno != ENOENT)
      throw_errno("cgroup " + dir + ": detach device program " + std::to_string(id));
  }
}

// ---- v1 -------------------------------------------------------------------------------

// New v1 cpuset cgroups start with empty cpus/mems and refuse tasks; copy the
// nearest ancestor's values down each level (runc's cpuset.ensureParent).
void v1_cpuset_copy_down(const std::string& mount, const std::string& path) {
  std::string cur = mount;
  std::string cpus = trim(read_cg_if_exists(cur, "cpuset.cpus").value_or(""));
  std::string mems = trim(read_cg_if_exists(cur, "cpuset.mems").value_or(""));
  for (const std::string& comp : split(path.substr(1), '/')) {
    cur += "/" + comp;
    mkdir_p(cur);
    auto own_cpus = read_cg_if_exists(cur, "cpuset.cpus");
    auto own_mems = read_cg_if_exists(cur, "cpuset.mems");
    if (own_cpus) {  // missing file: not a cpuset hierarchy (fake trees in tests)
      if (trim(*own_cpus).empty() && !cpus.empty())
        write_cg(cur, "cpuset.cpus", cpus);
      else
        cpus = trim(*own_cpus);
    }
    if (own_mems) {
      if (trim(*own_mems).empty() && !mems.empty())
        write_cg(cur, "cpuset.mems", mems);
      else
        mems = trim(*own_mems);
    }
  }
}

void v1_write_memory_limit(const std::string& dir, int64_t limit) {
  try {
    write_cg(dir, "memory.limit_in_bytes", i64s(limit));
  } catch (const Error& e) {
    if (e.errnum() != EBUSY) throw;
    // EBUSY: usage is above the new limit and cannot be reclaimed; say so.
    std::string usage = trim(read_cg_if_exists(dir, "memory.usage_in_bytes").value_or("?"));
    std::string peak = trim(read_cg_if_exists(dir, "memory.max_usage_in_bytes").value_or("?"));
    throw Error(std::string(e.what()) + " (current usage " + usage + ", peak usage " + peak + ")", EBUSY);
  }
}

void v1_memory(const std::string& dir, const MemoryResources& m) {
  int64_t limit = m.limit.value_or(0);  // 0 = unset, as in runc
  int64_t swap = m.swap.value_or(0);
  bool has_memsw = file_exists(dir, "memory.memsw.limit_in_bytes");
  // Unlimited memory with swap unspecified means unlimited swap too.
  if (limit == -1 && swap == 0 && has_memsw) swap = -1;
  if (swap != 0 && !has_memsw) {
    // Without swap accounting swap is already unlimited; anything else cannot be honoured.
    if (swap != -1 && swap != limit)
      throw Error("cgroup " + dir + "/memory.memsw.limit_in_bytes: swap limit " + i64s(swap) +
                      " requested but the kernel has no swap accounting (swapaccount=1)",
                  ENOENT);
    swap = 0;
  }
  if (limit != 0 && swap != 0) {
    // memsw must stay >= limit at every step: grow memsw first, shrink it last.
    uint64_t current = std::stoull("0" + trim(read_cg(dir, "memory.limit_in_bytes")));
    if (swap == -1 || current < static_cast<uint64_t>(swap)) {
      write_cg(dir, "memory.memsw.limit_in_bytes", i64s(swap));
      v1_write_memory_limit(dir, limit);
    } else {
      v1_write_memory_limit(dir, limit);
      write_cg(dir, "memory.memsw.limit_in_bytes", i64s(swap));
    }
  } else {
    if (limit != 0) v1_write_memory_limit(dir, limit);
    if (swap != 0) write_cg(dir, "memory.memsw.limit_in_bytes", i64s(swap));
  }
  if (m.reservation && *m.reservation != 0) write_cg(dir, "memory.soft_limit_in_bytes", i64s(*m.reservation));
  if (m.swappiness && *m.swappiness != UINT64_MAX) {  // UINT64_MAX: -1 read as unsigned = unset
    if (*m.swappiness > 100)
      throw Error("cgroup " + dir + "/memory.swappiness: invalid value " + u64s(*m.swappiness) +
                  " (valid range is 0-100)");
    write_cg(dir, "memory.swappiness", u64s(*m.swappiness));
  }
  if (m.disable_oom_killer.value_or(false)) write_cg(dir, "memory.oom_control", "1");
  // kernel (memory.kmem.limit_in_bytes) is deprecated and ignored, as in runc. kernelTCP is still
  // applied where the kernel has the file (runc does too on v1); without kmem accounting it is
  // ignored the same way.
  if (m.kernel_tcp && *m.kernel_tcp != 0 && file_exists(dir, "memory.kmem.tcp.limit_in_bytes"))
    write_cg(dir, "memory.kmem.tcp.limit_in_bytes", i64s(*m.kernel_tcp));
}

void v1_cpu(const std::string& dir, const CpuResources& c) {
  if (c.shares && *c.shares != 0) {
    write_cg(dir, "cpu.shares", u64s(*c.shares));
    // The kernel clamps shares silently; report it instead.
    uint64_t got = std::stoull("0" + trim(read_cg(dir, "cpu.shares")));
    if (*c.shares > got) throw Error("cgroup " + dir + "/cpu.shares: the maximum allowed cpu-shares is " + u64s(got));
    if (*c.shares < got) throw Error("cgroup " + dir + "/cpu.shares: the minimum allowed cpu-shares is " + u64s(got));
  }
  // Period and quota are checked against each other and the parent, so a
  // period the kernel rejects (EINVAL) is retried after the quota.
  bool quota = c.quota && *c.quota != 0;
  std::string period_retry;
  if (c.period && *c.period != 0) {
    try {
      write_cg(dir, "cpu.cfs_period_us", u64s(*c.period));
    } catch (const Error& e) {
      if (e.errnum() != EINVAL || !quota) throw;
      period_retry = u64s(*c.period);
    }
  }
  if (quota) {
    write_cg(dir, "cpu.cfs_quota_us", i64s(*c.quota));
    if (!period_retry.empty()) write_cg(dir, "cpu.cfs_period_us", period_retry);
  }
  if (c.idle) write_cg(dir, "cpu.idle", i64s(*c.idle));
  bool runtime = c.realtime_runtime && *c.realtime_runtime != 0;
  period_retry.clear();
  if (c.realtime_period && *c.realtime_period != 0) {
    try {
      write_cg(dir, "cpu.rt_period_us", u64s(*c.realtime_period));
    } catch (const Error& e) {
      if (e.errnum() != EINVAL || !runtime) throw;
      period_retry = u64s(*c.realtime_period);
    }
  }
  if (runtime) {
    write_cg(dir, "cpu.rt_runtime_us", i64s(*c.realtime_runtime));
    if (!period_retry.empty()) write_cg(dir, "cpu.rt_period_us", period_retry);
  }
}

void v1_blkio(const std::string& dir, const BlockIoResources& b) {
  // Kernels without CFQ only offer the BFQ files.
  bool bfq = !file_exists(dir, "blkio.weight") && file_exists(dir, "blkio.bfq.weight");
  std::string weight_file = bfq ? "blkio.bfq.weight" : "blkio.weight";
  std::string weight_device_file = bfq ? "blkio.bfq.weight_device" : "blkio.weight_device";
  if (b.weight && *b.weight != 0) write_cg(dir, weight_file, u64s(*b.weight));
  if (b.leaf_weight && *b.leaf_weight != 0) write_cg(dir, "blkio.leaf_weight", u64s(*b.leaf_weight));
  for (const WeightDevice& wd : b.weight_device) {
    if (wd.weight && *wd.weight != 0)
      write_cg(dir, weight_device_file, dev_id(wd.major, wd.minor) + " " + u64s(*wd.weight));
    if (wd.leaf_weight && *wd.leaf_weight != 0)
      write_cg(dir, "blkio.leaf_weight_device", dev_id(wd.major, wd.minor) + " " + u64s(*wd.leaf_weight));
  }
  auto throttle = [&](const std::vector<ThrottleDevice>& list, const char* file) {
    for (const ThrottleDevice& td : list) write_cg(dir, file, dev_id(td.major, td.minor) + " " + u64s(td.rate));
  };
  throttle(b.throttle_read_bps, "blkio.throttle.read_bps_device");
  throttle(b.throttle_write_bps, "blkio.throttle.write_bps_device");
  throttle(b.throttle_read_iops, "blkio.throttle.read_iops_device");
  throttle(b.throttle_write_iops, "blkio.throttle.write_iops_device");
}

void v1_devices(const std::string& dir, const std::vector<DeviceRule>& rules) {
  // Validate everything before the first write so a bad rule leaves no half state.
  std::vector<std::string> texts;
  for (size_t i = 0; i < rules.size(); ++i) texts.push_back(v1_rule_text(rules[i], i));
  for (size_t i = 0; i < rules.size(); ++i) write_cg(dir, rules[i].allow ? "devices.allow" : "devices.deny", texts[i]);
}

void apply_v1(const CgroupLayout& layout, const std::string& path, const Resources& r) {
  if (!r.unified.empty()) throw Error("cgroup: linux.resources.unified needs cgroup v2, but the host uses cgroup v1");
  if (r.cpu && (!r.cpu->cpus.empty() || !r.cpu->mems.empty())) {
    std::string dir = v1_dir(layout, path, "cpuset", "cpuset");
    if (!r.cpu->cpus.empty()) write_cg(dir, "cpuset.cpus", r.cpu->cpus);
    if (!r.cpu->mems.empty()) write_cg(dir, "cpuset.mems", r.cpu->mems);
  }
  if (!r.devices.empty()) v1_devices(v1_dir(layout, path, "devices", "device rules"), r.devices);
  if (r.memory) v1_memory(v1_dir(layout, path, "memory", "memory limits"), *r.memory);
  if (r.cpu) {
    const CpuResources& c = *r.cpu;
    bool any = (c.shares && *c.shares) || (c.quota && *c.quota) || (c.period && *c.period) || c.idle ||
               (c.realtime_runtime && *c.realtime_runtime) || (c.realtime_period && *c.realtime_period);
    if (any) v1_cpu(v1_dir(layout, path, "cpu", "cpu limits"), c);
  }
  if (r.pids_limit)
    write_cg(v1_dir(layout, path, "pids", "pids limit"), "pids.max", *r.pids_limit > 0 ? i64s(*r.pids_limit) : "max");
  if (r.block_io) v1_blkio(v1_dir(layout, path, "blkio", "block I/O limits"), *r.block_io);
  if (r.network && r.network->class_id && *r.network->class_id != 0)
    write_cg(v1_dir(layout, path, "net_cls", "network class ID"), "net_cls.classid", u64s(*r.network->class_id));
  if (r.network && !r.network->priorities.empty()) {
    std::string dir = v1_dir(layout, path, "net_prio", "network priorities");
    for (const auto& [iface, prio] : r.network->priorities)  // the kernel takes one entry per write
      write_cg(dir, "net_prio.ifpriomap", iface + " " + u64s(prio));
  }
  if (!r.hugepage_limits.empty()) {
    std::string dir = v1_dir(layout, path, "hugetlb", "hugepage limits");
    for (const HugepageLimit& h : r.hugepage_limits) {
      if (h.page_size.find('/') != std::string::npos)
        throw Error("cgroup: invalid hugepage size \"" + h.page_size + "\"");
      write_cg(dir, "hugetlb." + h.page_size + ".limit_in_bytes", u64s(h.limit));
      std::string rsvd = "hugetlb." + h.page_size + ".rsvd.limit_in_bytes";
      if (file_exists(dir, rsvd)) write_cg(dir, rsvd, u64s(h.limit));
    }
  }
}

// ---- v2 -------------------------------------------------------------------------------

// Enables, in one v2 cgroup, the controllers berth sets in its children.
// Errors are tolerated (runc does too): a controller that cannot be enabled
// shows up as a missing file when apply() needs it.
void v2_enable_controllers(const std::string& dir) {
  auto available = read_cg_if_exists(dir, "cgroup.controllers");
  if (!available) return;
  std::set<std::string> have, on;
  for (std::string& w : words(*available)) have.insert(std::move(w));
  for (std::string& w : words(read_cg_if_exists(dir, "cgroup.subtree_control").value_or(""))) on.insert(std::move(w));
  std::string want;
  for (const char* c : kV2Controllers)
    if (have.count(c) && !on.count(c)) want += (want.empty() ? "+" : " +") + std::string(c);
  if (want.empty() || try_write_cg(dir, "cgroup.subtree_control", want)) return;
  // One refused controller fails the whole write; enable the others one by one.
  for (const std::string& one : split(want, ' ')) try_write_cg(dir, "cgroup.subtree_control", one);
}

// Creates each level from the root down, enabling controllers in every
// ancestor of the leaf (runc's fs2.CreateCgroupPath).
void v2_create(const std::string& mount, const std::string& path) {
  std::string cur = mount;
  for (const std::string& comp : split(path.substr(1), '/')) {
    v2_enable_controllers(cur);
    cur += "/" + comp;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("cgroup: mkdir " + cur);
  }
}

void v2_memory(const std::string& dir, const MemoryResources& m) {
  int64_t limit = m.limit.value_or(0);
  int64_t swap = m.swap.value_or(0);
  // runc's ConvertMemorySwapToCgroupV2Value: OCI swap is memory+swap, v2 wants swap alone.
  int64_t swap_v2;
  if (limit == -1 && swap == 0) {
    swap_v2 = -1;
  } else if (swap == -1 || swap == 0) {
    swap_v2 = swap;
  } else {
    if (limit == 0 || limit == -1)
      throw Error("cgroup " + dir + "/memory.swap.max: unable to set swap limit without memory limit");
    if (limit < 0) throw Error("cgroup " + dir + "/memory.max: invalid memory limit " + i64s(limit));
    if (swap < limit)
      throw Error("cgroup " + dir + "/memory.swap.max: memory+swap limit " + i64s(swap) + " is below memory limit " +
                  i64s(limit));
    swap_v2 = swap - limit;
  }
  std::string swap_str = v2_num(swap_v2);
  if (swap_str.empty() && swap_v2 == 0 && swap > 0) swap_str = "0";  // swap == limit: no swap at all
  if (!swap_str.empty()) {
    try {
      write_cg(dir, "memory.swap.max", swap_str);
    } catch (const Error& e) {
      // Without swap accounting "max" and "0" are what the kernel does anyway.
      if (!(e.errnum() == ENOENT && (swap_str == "max" || swap_str == "0"))) throw;
    }
  }
  if (std::string v = v2_num(limit); !v.empty()) write_cg(dir, "memory.max", v);
  if (std::string v = v2_num(m.reservation.value_or(0)); !v.empty()) write_cg(dir, "memory.low", v);
  // swappiness, disableOOMKiller and kernel memory have no v2 files; ignored like runc.
}

// "<quota> <period>": a part not given keeps its current value (kernel defaults: max 100000).
void v2_cpu_max(const std::string& dir, const CpuResources& c) {
  std::string cur_quota = "max", cur_period = "100000";
  if (auto cur = read_cg_if_exists(dir, "cpu.max")) {
    std::vector<std::string> qp = words(*cur);
    if (qp.size() > 0) cur_quota = qp[0];
    if (qp.size() > 1) cur_period = qp[1];
  }
  std::string quota = cur_quota;
  if (c.quota) quota = *c.quota > 0 ? i64s(*c.quota) : "max";
  std::string period = c.period && *c.period != 0 ? u64s(*c.period) : cur_period;
  write_cg(dir, "cpu.max", quota + " " + period);
}

void v2_cpu(const std::string& dir, const CpuResources& c) {
  if ((c.realtime_runtime && *c.realtime_runtime != 0) || (c.realtime_period && *c.realtime_period != 0))
    throw Error("cgroup " + dir + ": realtime cpu settings are not supported on cgroup v2");
  if (c.shares && *c.shares != 0) {
    // runc's ConvertCPUSharesToCgroupV2Value maps [2, 262144] onto [1, 10000].
    uint64_t shares = std::clamp<uint64_t>(*c.shares, 2, 262144);
    write_cg(dir, "cpu.weight", u64s(1 + ((shares - 2) * 9999) / 262142));
  }
  if (c.idle) write_cg(dir, "cpu.idle", i64s(*c.idle));
  if ((c.quota && *c.quota != 0) || (c.period && *c.period != 0)) v2_cpu_max(dir, c);
  if (!c.cpus.empty()) write_cg(dir, "cpuset.cpus", c.cpus);
  if (!c.mems.empty()) write_cg(dir, "cpuset.mems", c.mems);
}

void v2_io(const std::string& dir, const BlockIoResources& b) {
  // BFQ takes the v1 weight range directly; io.weight (iocost) needs conversion.
  bool bfq = file_exists(dir, "io.bfq.weight");
  auto convert = [](uint64_t w) { return 1 + (std::clamp<uint64_t>(w, 10, 1000) - 10) * 9999 / 990; };
  if (b.weight && *b.weight != 0) {
    if (bfq)
      write_cg(dir, "io.bfq.weight", u64s(*b.weight));
    else
      write_cg(dir, "io.weight", u64s(convert(*b.weight)));
  }
  for (const WeightDevice& wd : b.weight_device) {
    if (!wd.weight || *wd.weight == 0) continue;  // leafWeight has no v2 equivalent
    if (bfq)
      write_cg(dir, "io.bfq.weight", dev_id(wd.major, wd.minor) + " " + u64s(*wd.weight));
    else
      write_cg(dir, "io.weight", dev_id(wd.major, wd.minor) + " " + u64s(convert(*wd.weight)));
  }
  auto max = [&](const std::vector<ThrottleDevice>& list, const char* key) {
    for (const ThrottleDevice& td : list)
      write_cg(dir, "io.max", dev_id(td.major, td.minor) + " " + key + "=" + u64s(td.rate));
  };
  max(b.throttle_read_bps, "rbps");
  max(b.throttle_write_bps, "wbps");
  max(b.throttle_read_iops, "riops");
  max(b.throttle_write_iops, "wiops");
}

void apply_v2(const std::string& dir, const Resources& r) {
  for (const auto& [key, value] : r.unified)
    if (key.empty() || key.find('/') != std::string::npos || key.find("..") != std::string::npos)
      throw Error("cgroup: linux.resources.unified: invalid file name \"" + key + "\"");
  DeviceState devices;  // replayed first so a bad rule fails before any write
  for (size_t i = 0; i < r.devices.size(); ++i) devices.apply(r.devices[i], i);

  if (r.pids_limit) write_cg(dir, "pids.max", *r.pids_limit > 0 ? i64s(*r.pids_limit) : "max");
  if (r.memory) v2_memory(dir, *r.memory);
  if (r.block_io) v2_io(dir, *r.block_io);
  if (r.cpu) v2_cpu(dir, *r.cpu);
  for (const HugepageLimit& h : r.hugepage_limits) {
    if (h.page_size.find('/') != std::string::npos)
      throw Error("cgroup: invalid hugepage size \"" + h.page_size + "\"");
    write_cg(dir, "hugetlb." + h.page_size + ".max", u64s(h.limit));
    std::string rsvd = "hugetlb." + h.page_size + ".rsvd.max";
    if (file_exists(dir, rsvd)) write_cg(dir, rsvd, u64s(h.limit));
  }
  // v2 has no devices files: access control is an eBPF program on the cgroup.
  if (!r.devices.empty()) set_device_filter(dir, devices);
  // Written last so explicit unified values override the converted ones.
  for (const auto& [key, value] : r.unified) write_cg(dir, key, value);
}

// ---- processes, freezing, removal ----------------------------------------------------------

std::vector<pid_t> read_procs(const std::string& dir) {
  auto text = read_cg_if_exists(dir, "cgroup.procs");
  std::vector<pid_t> out;
  if (!text) return out;
  for (const std::string& w : words(*text)) {
    long pid = 0;
    auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), pid);
    if (ec != std::errc() || end != w.data() + w.size()) break;
    out.push_back(static_cast<pid_t>(pid));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool v2_events_frozen(const std::string& dir) {
  auto events = read_cg_if_exists(dir, "cgroup.events");
  if (!events) return false;
  for (const std::string& line : split(*events, '\n'))
    if (trim(line) == "frozen 1") return true;
  return false;
}

// rmdir with retries: a cgroup stays busy for a moment after its last task is reaped.
void rmdir_cgroup(const std::string& dir) {
  // Sub-cgroups the container made (nested runtimes, systemd) must go first.
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> children;
    while (struct dirent* ent = ::readdir(d)) {
      std::string name = ent->d_name;
      if (name == "." || name == "..") continue;
      bool is_dir = ent->d_type == DT_DIR;
      if (ent->d_type == DT_UNKNOWN) is_dir = dir_exists(dir + "/" + name);
      if (is_dir) children.push_back(name);
    }
    ::closedir(d);
    for (const std::string& child : children) rmdir_cgroup(dir + "/" + child);
  } else if (errno == ENOENT) {
    return;
  }
  auto delay = 10ms;
  for (int attempt = 0;; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY || attempt >= 6) throw_errno("cgroup: rmdir " + dir);
    std::this_thread::sleep_for(delay);
    delay *= 2;
  }
}

}  // namespace

// ---- CgroupLayout --------------------------------------------------------------------------

CgroupLayout CgroupLayout::parse_mountinfo(const std::string& mountinfo) {
  CgroupLayout layout;
  for (const std::string& line : split(mountinfo, '\n')) {
    // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional…] - <fstype> <source> <super opts>"
    std::vector<std::string> fields = split(line, ' ');
    auto sep = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || sep == fields.end() || fields.end() - sep < 3) continue;
    const std::string& fstype = sep[1];
    std::string mount_point = unescape_mountinfo(fields[4]);
    if (fstype == "cgroup2") {
      if (layout.unified_mount.empty()) layout.unified_mount = mount_point;
    } else if (fstype == "cgroup") {
      std::string super = sep + 3 < fields.end() ? sep[3] : "";
      for (const std::string& opt : split(super, ',')) {
        // First mount wins: later ones are usually bind mounts of the same hierarchy.
        if (is_v1_controller(opt) || opt.rfind("name=", 0) == 0) layout.v1_mounts.emplace(opt, mount_point);
      }
    }
  }
  bool v1_controllers = std::any_of(layout.v1_mounts.begin(), layout.v1_mounts.end(),
                                    [](const auto& kv) { return kv.first.rfind("name=", 0) != 0; });
  layout.unified = !layout.unified_mount.empty() && !v1_controllers;
  return layout;
}

CgroupLayout CgroupLayout::below_own_cgroups() const {
  CgroupLayout layout = *this;
  std::map<std::string, std::string> own;  // controller (or "" for v2) → path
  std::string text = read_file("/proc/self/cgroup");
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    auto c1 = line.find(':');
    auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    if (path == "/") continue;
    if (controllers.empty()) {
      own[""] = path;
      continue;
    }
    size_t start = 0;
    for (;;) {
      size_t comma = controllers.find(',', start);
      own[controllers.substr(start, comma == std::string::npos ? std::string::npos : comma - start)] = path;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  for (auto& [controller, mount] : layout.v1_mounts)
    if (auto it = own.find(controller); it != own.end()) mount += it->second;
  if (!layout.unified_mount.empty())
    if (auto it = own.find(""); it != own.end()) layout.unified_mount += it->second;
  return layout;
}

CgroupLayout CgroupLayout::detect() {
  CgroupLayout layout = parse_mountinfo(read_file("/proc/self/mountinfo"));
  if (layout.unified_mount.empty() && layout.v1_mounts.empty())
    throw Error("cgroup: no cgroup hierarchy is mounted (see /proc/self/mountinfo)");
  return layout;
}

// ---- Cgroup --------------------------------------------------------------------------------

Cgroup::Cgroup(CgroupLayout layout, std::string path) : layout_(std::move(layout)), path_(normalise(path, path)) {}

std::string Cgroup::resolve_path(const std::string& cgroups_path, const std::string& container_id) {
  if (cgroups_path.empty()) {
    if (container_id.empty() || container_id == "." || container_id == ".." ||
        container_id.find('/') != std::string::npos)
      throw Error("cgroup: invalid container id \"" + container_id + "\" for the default cgroup path");
    return "/berth/" + container_id;
  }
  if (cgroups_path.find(':') != std::string::npos) {
    // systemd form "slice:prefix:name" (containerd's SystemdCgroup); placed
    // where runc's systemd driver would put it, but managed as cgroupfs.
    std::vector<std::string> parts = split(cgroups_path, ':');
    if (parts.size() != 3)
      throw Error("cgroupsPath \"" + cgroups_path + "\": expected \"slice:prefix:name\" for a systemd cgroup");
    const std::string& name = parts[2];
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      throw Error("cgroupsPath \"" + cgroups_path + "\": invalid unit name \"" + name + "\"");
    std::string slice = expand_slice(parts[0].empty() ? "system.slice" : parts[0], cgroups_path);
    bool is_slice = name.size() > 6 && name.compare(name.size() - 6, 6, ".slice") == 0;
    std::string unit = is_slice ? name : parts[1].empty() ? name + ".scope" : parts[1] + "-" + name + ".scope";
    return normalise(slice + "/" + unit, cgroups_path);
  }
  // Relative paths are taken from the hierarchy root as well (the root is
  // where berth's cgroups live), so "foo/bar" and "/foo/bar" are the same.
  return normalise(cgroups_path, cgroups_path);
}

void Cgroup::create() {
  if (layout_.unified) {
    if (layout_.unified_mount.empty()) throw Error("cgroup: unified layout without a cgroup2 mount point");
    v2_create(layout_.unified_mount, path_);
    return;
  }
  std::vector<std::string> mounts = v1_hierarchies(layout_);
  if (mounts.empty()) throw Error("cgroup: no cgroup hierarchy is mounted");
  auto cpuset = layout_.v1_mounts.find("cpuset");
  for (const std::string& mount : mounts) {
    if (cpuset != layout_.v1_mounts.end() && mount == cpuset->second)
      v1_cpuset_copy_down(mount, path_);
    else
      mkdir_p(mount + path_);
  }
  // Hybrid: a v2 cgroup too (no controllers there), as runc does; best effort.
  if (hybrid(layout_)) {
    try {
      mkdir_p(layout_.unified_mount + path_);
    } catch (const Error&) {
    }
  }
}

void Cgroup::apply(const Resources& resources) {
  if (layout_.unified)
    apply_v2(layout_.unified_mount + path_, resources);
  else
    apply_v1(layout_, path_, resources);
}

std::vector<std::string> Cgroup::v1_task_files() const {
  std::vector<std::string> out;
  if (layout_.unified) return out;
  for (const std::string& mount : v1_hierarchies(layout_)) out.push_back(mount + path_ + "/tasks");
  return out;
}

int Cgroup::join_v1_self(const std::vector<std::string>& task_files) const {
  for (const std::string& file : task_files) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n = ::write(fd, "0", 1);
    int err = errno;
    ::close(fd);
    if (n != 1) return err;
  }
  return 0;
}

std::string Cgroup::v2_dir() const { return layout_.unified_mount.empty() ? "" : layout_.unified_mount + path_; }

void Cgroup::add_process(pid_t pid) {
  std::string value = std::to_string(pid);
  if (layout_.unified) {
    write_cg(layout_.unified_mount + path_, "cgroup.procs", value);
    return;
  }
  for (const std::string& mount : v1_hierarchies(layout_)) write_cg(mount + path_, "cgroup.procs", value);
  if (hybrid(layout_)) try_write_cg(layout_.unified_mount + path_, "cgroup.procs", value);
}

std::vector<pid_t> Cgroup::pids() const {
  if (layout_.unified) return read_procs(layout_.unified_mount + path_);
  for (const char* c : {"pids", "freezer", "memory"})
    if (std::string dir = v1_dir_or_empty(layout_, path_, c); !dir.empty()) return read_procs(dir);
  std::vector<std::string> mounts = v1_hierarchies(layout_);
  if (!mounts.empty()) return read_procs(mounts.front() + path_);
  return {};
}

void Cgroup::freeze() {
  const auto deadline = std::chrono::steady_clock::now() + 1s;
  if (layout_.unified) {
    std::string dir = layout_.unified_mount + path_;
    write_cg(dir, "cgroup.freeze", "1");
    // The kernel freezes asynchronously; cgroup.events reports completion.
    while (!v2_events_frozen(dir)) {
      if (std::chrono::steady_clock::now() > deadline) {
        try_write_cg(dir, "cgroup.freeze", "0");
        throw Error("cgroup " + dir + ": timed out waiting for the cgroup to freeze");
      }
      std::this_thread::sleep_for(1ms);
    }
    return;
  }
  std::string dir = v1_dir(layout_, path_, "freezer", "freezer state");
  // v1 can stay in FREEZING while tasks fork; re-writing FROZEN retries (runc does the same).
  for (;;) {
    write_cg(dir, "freezer.state", "FROZEN");
    std::string state = trim(read_cg(dir, "freezer.state"));
    if (state == "FROZEN") return;
    if (state != "FREEZING") throw Error("cgroup " + dir + "/freezer.state: unexpected state " + state);
    if (std::chrono::steady_clock::now() > deadline) {
      // Leaving it half frozen is worse than not frozen.
      try_write_cg(dir, "freezer.state", "THAWED");
      throw Error("cgroup " + dir + ": unable to freeze (stuck in FREEZING)");
    }
    std::this_thread::sleep_for(1ms);
  }
}

void Cgroup::thaw() {
  if (layout_.unified) {
    write_cg(layout_.unified_mount + path_, "cgroup.freeze", "0");
    return;
  }
  write_cg(v1_dir(layout_, path_, "freezer", "freezer state"), "freezer.state", "THAWED");
}

bool Cgroup::frozen() const {
  if (layout_.unified) {
    std::string dir = layout_.unified_mount + path_;
    if (file_exists(dir, "cgroup.events")) return v2_events_frozen(dir);
    return trim(read_cg_if_exists(dir, "cgroup.freeze").value_or("0")) == "1";
  }
  std::string dir = v1_dir_or_empty(layout_, path_, "freezer");
  if (dir.empty()) return false;
  return trim(read_cg_if_exists(dir, "freezer.state").value_or("")) == "FROZEN";
}

void Cgroup::destroy() {
  std::vector<std::string> dirs = all_dirs(layout_, path_);
  std::optional<Error> first;
  for (size_t i = 0; i < dirs.size(); ++i) {
    bool optional = hybrid(layout_) && i + 1 == dirs.size();
    try {
      rmdir_cgroup(dirs[i]);
    } catch (const Error& e) {
      // Keep going so one stuck hierarchy does not leak all the others.
      if (!optional && !first) first = e;
    }
  }
  if (first) throw *first;
}

std::vector<std::string> Cgroup::directories() const {
  std::vector<std::string> out;
  for (const std::string& dir : all_dirs(layout_, path_))
    if (dir_exists(dir)) out.push_back(dir);
  return out;
}

}  // namespace berth::runtime
