// Cgroups on the real machine (root only): a child process is limited,
// frozen, filtered for devices and removed again. Everything created is
// cleaned up even when an assertion fails.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/cgroups.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace rt = berth::runtime;

namespace {

// A child that, for each byte on its command pipe, tries to open /dev/null
// and /dev/zero and answers with two bytes (0 or the errno). It blocks in
// read() otherwise, so it is easy to freeze and to see frozen.
class Child {
 public:
  Child() {
    int cmd[2], res[2];
    if (::pipe2(cmd, O_CLOEXEC) != 0 || ::pipe2(res, O_CLOEXEC) != 0) berth::throw_errno("pipe");
    pid_ = ::fork();
    if (pid_ < 0) berth::throw_errno("fork");
    if (pid_ == 0) {
      ::close(cmd[1]);
      ::close(res[0]);
      char c;
      while (::read(cmd[0], &c, 1) == 1) {
        unsigned char out[2];
        const char* paths[2] = {"/dev/null", "/dev/zero"};
        for (int i = 0; i < 2; ++i) {
          int fd = ::open(paths[i], O_RDONLY);
          out[i] = static_cast<unsigned char>(fd >= 0 ? 0 : errno);
          if (fd >= 0) ::close(fd);
        }
        if (::write(res[1], out, 2) != 2) ::_exit(3);
      }
      ::_exit(0);
    }
    ::close(cmd[0]);
    ::close(res[1]);
    cmd_ = cmd[1];
    res_ = res[0];
  }
  ~Child() {
    kill();
    ::close(cmd_);
    ::close(res_);
  }
  pid_t pid() const { return pid_; }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);  // reaped: the cgroup is empty afterwards
    pid_ = -1;
  }
  void ask() { ASSERT_EQ(::write(cmd_, "o", 1), 1); }
  // The two errno bytes, or "" if no answer within timeout_ms.
  std::string answer(int timeout_ms) {
    pollfd p{res_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return "";
    unsigned char out[2];
    if (::read(res_, out, 2) != 2) return "short";
    return std::to_string(out[0]) + "," + std::to_string(out[1]);
  }
  std::string open_devices() {
    ask();
    return answer(5000);
  }

 private:
  pid_t pid_ = -1;
  int cmd_ = -1, res_ = -1;
};

// Destroys the cgroup on scope exit; declared before the Child so the child
// is killed and reaped first.
struct CgroupGuard {
  rt::Cgroup& cg;
  ~CgroupGuard() {
    try {
      cg.destroy();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cleanup: " << e.what();
    }
  }
};

std::string ok_ok() { return "0,0"; }
std::string ok_eperm() { return "0," + std::to_string(EPERM); }

rt::DeviceRule dev(bool allow, std::string type, std::optional<int64_t> major, std::optional<int64_t> minor) {
  rt::DeviceRule r;
  r.allow = allow;
  r.type = std::move(type);
  r.major = major;
  r.minor = minor;
  r.access = "rwm";
  return r;
}

// Deny everything except /dev/null (c 1:3).
std::vector<rt::DeviceRule> only_dev_null() { return {dev(false, "a", {}, {}), dev(true, "c", 1, 3)}; }

// Path of pid in each hierarchy listed in /proc/<pid>/cgroup: "memory" → "/x",
// "name=systemd" → "/x", "" (v2) → "/x".
std::map<std::string, std::string> proc_cgroups(pid_t pid) {
  std::map<std::string, std::string> out;
  std::istringstream in(berth::read_file("/proc/" + std::to_string(pid) + "/cgroup"));
  for (std::string line; std::getline(in, line);) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) out[""] = path;
    std::istringstream cs(controllers);
    for (std::string c; std::getline(cs, c, ',');) out[c] = path;
  }
  return out;
}

class RealCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    layout = rt::CgroupLayout::detect();
  }
  rt::CgroupLayout layout;
};

TEST_F(RealCgroupTest, DetectedLayout) {
  if (layout.unified) {
    EXPECT_TRUE(berth::path_exists(layout.unified_mount + "/cgroup.controllers"));
  } else {
    ASSERT_TRUE(layout.v1_mounts.count("memory"));
    EXPECT_TRUE(berth::path_exists(layout.v1_mounts.at("memory") + "/memory.limit_in_bytes"));
  }
}

TEST_F(RealCgroupTest, FullLifecycle) {
  std::string path = "/berth-unit-" + std::to_string(::getpid());
  rt::Cgroup cg(layout, path);
  CgroupGuard guard{cg};
  cg.create();
  std::vector<std::string> dirs = cg.directories();
  ASSERT_FALSE(dirs.empty());

  rt::Resources r;
  r.memory = rt::MemoryResources{};
  r.memory->limit = 64 << 20;
  r.pids_limit = 10;
  r.devices = only_dev_null();
  cg.apply(r);
  if (layout.unified) {
    EXPECT_EQ(berth::read_file(layout.unified_mount + path + "/memory.max"), "67108864\n");
    EXPECT_EQ(berth::read_file(layout.unified_mount + path + "/pids.max"), "10\n");
  } else {
    EXPECT_EQ(berth::read_file(layout.v1_mounts.at("memory") + path + "/memory.limit_in_bytes"), "67108864\n");
    EXPECT_EQ(berth::read_file(layout.v1_mounts.at("pids") + path + "/pids.max"), "10\n");
    EXPECT_EQ(berth::read_file(layout.v1_mounts.at("devices") + path + "/devices.list"), "c 1:3 rwm\n");
  }

  Child child;
  cg.add_process(child.pid());
  std::map<std::string, std::string> in = proc_cgroups(child.pid());
  if (layout.unified) {
    EXPECT_EQ(in[""], path);
  } else {
    for (const auto& [controller, mount] : layout.v1_mounts) {
      if (controller.rfind("name=", 0) == 0 && controller != "name=systemd") continue;
      EXPECT_EQ(in[controller], path) << controller;
    }
    if (!layout.unified_mount.empty()) {
      EXPECT_EQ(in[""], path) << "hybrid v2 cgroup";
    }
  }
  std::vector<pid_t> pids = cg.pids();
  EXPECT_EQ(pids, std::vector<pid_t>{child.pid()});
  EXPECT_EQ(child.open_devices(), ok_eperm());

  EXPECT_FALSE(cg.frozen());
  cg.freeze();
  EXPECT_TRUE(cg.frozen());
  child.ask();
  EXPECT_EQ(child.answer(200), "") << "a frozen child answered";
  cg.thaw();
  EXPECT_FALSE(cg.frozen());
  EXPECT_EQ(child.answer(5000), ok_eperm());

  child.kill();
  cg.destroy();
  EXPECT_TRUE(cg.directories().empty());
  for (const std::string& d : dirs) EXPECT_FALSE(berth::path_exists(d)) << d;
}

std::string trimmed(const std::string& path) {
  std::string s = berth::read_file(path);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A whole disk's "maj:min" from /sys/block (throttling needs a real device).
std::optional<std::pair<int64_t, int64_t>> some_disk() {
  for (const char* name : {"vda", "sda", "nvme0n1", "xvda"}) {
    auto dev = berth::read_file_if_exists(std::string("/sys/block/") + name + "/dev");
    if (!dev) continue;
    size_t colon = dev->find(':');
    return std::make_pair(std::stoll(dev->substr(0, colon)), std::stoll(dev->substr(colon + 1)));
  }
  return std::nullopt;
}

// v1 resource files as the kernel takes them, including the memory/memsw
// write order when limits grow and shrink, and cpuset copy-down two levels deep.
TEST_F(RealCgroupTest, V1ResourcesAsTheKernelTakesThem) {
  if (layout.unified) GTEST_SKIP() << "pure v2 host";
  std::string top = "/berth-unit-res-" + std::to_string(::getpid());
  std::string path = top + "/c";
  rt::Cgroup parent(layout, top);
  rt::Cgroup cg(layout, path);
  CgroupGuard parent_guard{parent};
  CgroupGuard guard{cg};
  cg.create();
  if (layout.v1_mounts.count("cpuset")) {
    std::string mount = layout.v1_mounts.at("cpuset");
    EXPECT_EQ(trimmed(mount + top + "/cpuset.cpus"), trimmed(mount + "/cpuset.cpus"));
    EXPECT_EQ(trimmed(mount + path + "/cpuset.cpus"), trimmed(mount + "/cpuset.cpus"));
    EXPECT_EQ(trimmed(mount + path + "/cpuset.mems"), trimmed(mount + "/cpuset.mems"));
  }

  std::string mem = layout.v1_mounts.at("memory") + path;
  bool memsw = berth::path_exists(mem + "/memory.memsw.limit_in_bytes");
  auto set_memory = [&](int64_t limit, int64_t swap) {
    rt::Resources r;
    r.memory = rt::MemoryResources{};
    r.memory->limit = limit;
    if (memsw) r.memory->swap = swap;
    cg.apply(r);
    EXPECT_EQ(trimmed(mem + "/memory.limit_in_bytes"), std::to_string(limit));
    if (memsw) {
      EXPECT_EQ(trimmed(mem + "/memory.memsw.limit_in_bytes"), std::to_string(swap));
    }
  };
  set_memory(64 << 20, 128 << 20);
  set_memory(256 << 20, 512 << 20);  // grows past the old memsw: memsw written first
  set_memory(32 << 20, 32 << 20);    // shrinks below the old limit: limit written first

  rt::Resources r;
  r.memory = rt::MemoryResources{};
  r.memory->reservation = 16 << 20;
  r.memory->swappiness = 10;
  r.memory->disable_oom_killer = true;
  r.memory->kernel = 1 << 20;  // ignored
  r.cpu = rt::CpuResources{};
  r.cpu->shares = 512;
  r.cpu->quota = 20000;
  r.cpu->period = 50000;
  r.cpu->cpus = "0";
  r.cpu->mems = "0";
  r.pids_limit = 10;
  r.block_io = rt::BlockIoResources{};
  r.block_io->weight = 300;
  auto disk = some_disk();
  if (disk) r.block_io->throttle_read_bps = {{disk->first, disk->second, 1048576}};
  cg.apply(r);
  EXPECT_EQ(trimmed(mem + "/memory.soft_limit_in_bytes"), std::to_string(16 << 20));
  EXPECT_EQ(trimmed(mem + "/memory.swappiness"), "10");
  EXPECT_NE(berth::read_file(mem + "/memory.oom_control").find("oom_kill_disable 1"), std::string::npos);
  std::string cpu = layout.v1_mounts.at("cpu") + path;
  EXPECT_EQ(trimmed(cpu + "/cpu.shares"), "512");
  EXPECT_EQ(trimmed(cpu + "/cpu.cfs_quota_us"), "20000");
  EXPECT_EQ(trimmed(cpu + "/cpu.cfs_period_us"), "50000");
  EXPECT_EQ(trimmed(layout.v1_mounts.at("cpuset") + path + "/cpuset.cpus"), "0");
  EXPECT_EQ(trimmed(layout.v1_mounts.at("pids") + path + "/pids.max"), "10");
  std::string blk = layout.v1_mounts.at("blkio") + path;
  std::string weight = berth::path_exists(blk + "/blkio.weight") ? "/blkio.weight" : "/blkio.bfq.weight";
  if (berth::path_exists(blk + weight)) {
    EXPECT_EQ(trimmed(blk + weight), "300");
  }
  if (disk) {
    EXPECT_EQ(trimmed(blk + "/blkio.throttle.read_bps_device"),
              std::to_string(disk->first) + ":" + std::to_string(disk->second) + " 1048576");
  }

  // A shorter period than the quota allows is retried after the quota.
  r = {};
  r.cpu = rt::CpuResources{};
  r.cpu->quota = 400000;
  r.cpu->period = 200000;
  cg.apply(r);
  EXPECT_EQ(trimmed(cpu + "/cpu.cfs_quota_us"), "400000");
  EXPECT_EQ(trimmed(cpu + "/cpu.cfs_period_us"), "200000");

  // Unlimited again.
  r = {};
  r.memory = rt::MemoryResources{};
  r.memory->limit = -1;
  r.pids_limit = -1;
  cg.apply(r);
  EXPECT_EQ(trimmed(layout.v1_mounts.at("pids") + path + "/pids.max"), "max");
  EXPECT_GT(std::stoull(trimmed(mem + "/memory.limit_in_bytes")), 1ull << 40);

  Child child;
  cg.add_process(child.pid());  // joins cpuset too: cpus/mems were copied down
  EXPECT_EQ(proc_cgroups(child.pid())["cpuset"], path);
  child.kill();
  cg.destroy();
  parent.destroy();
  EXPECT_TRUE(cg.directories().empty());
  EXPECT_TRUE(parent.directories().empty());
}

// Restores the unified root's cgroup.subtree_control (create() may enable
// controllers there) so the test leaves the host as it found it.
struct SubtreeControlRestore {
  std::string dir;
  std::set<std::string> before;
  explicit SubtreeControlRestore(std::string d) : dir(std::move(d)) {
    std::istringstream in(berth::read_file(dir + "/cgroup.subtree_control"));
    for (std::string w; in >> w;) before.insert(w);
  }
  ~SubtreeControlRestore() {
    try {
      std::istringstream in(berth::read_file(dir + "/cgroup.subtree_control"));
      for (std::string w; in >> w;)
        if (!before.count(w)) berth::write_file(dir + "/cgroup.subtree_control", "-" + w, O_WRONLY);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "restoring " << dir << ": " << e.what();
    }
  }
};

// On a hybrid host the v2 hierarchy has no controllers, but freezing, pids
// and the eBPF device filter work there, so the v2 code paths run for real.
TEST_F(RealCgroupTest, V2PathsOnTheHybridUnifiedHierarchy) {
  if (layout.unified || layout.unified_mount.empty()) GTEST_SKIP() << "not a hybrid host";
  rt::CgroupLayout v2;
  v2.unified = true;
  v2.unified_mount = layout.unified_mount;
  SubtreeControlRestore restore(v2.unified_mount);
  std::string path = "/berth-unit-v2-" + std::to_string(::getpid()) + "/ctr";
  rt::Cgroup cg(v2, path);
  rt::Cgroup parent(v2, "/berth-unit-v2-" + std::to_string(::getpid()));
  CgroupGuard parent_guard{parent};
  CgroupGuard guard{cg};
  cg.create();
  ASSERT_EQ(cg.directories(), std::vector<std::string>{v2.unified_mount + path});

  Child child;
  cg.add_process(child.pid());
  EXPECT_EQ(proc_cgroups(child.pid())[""], path);
  EXPECT_EQ(cg.pids(), std::vector<pid_t>{child.pid()});
  EXPECT_EQ(child.open_devices(), ok_ok());

  // Device filter: attach, then replace with a looser one, then remove.
  rt::Resources r;
  r.devices = only_dev_null();
  cg.apply(r);
  EXPECT_EQ(child.open_devices(), ok_eperm());
  r.devices.push_back(dev(true, "c", 1, 5));  // /dev/zero
  cg.apply(r);
  EXPECT_EQ(child.open_devices(), ok_ok());
  r.devices = {dev(true, "a", {}, {}), dev(false, "c", 1, 5)};  // allow-list → deny-list
  cg.apply(r);
  EXPECT_EQ(child.open_devices(), ok_eperm());
  r.devices = {dev(true, "a", {}, {})};  // allows everything: no program at all
  cg.apply(r);
  EXPECT_EQ(child.open_devices(), ok_ok());

  EXPECT_FALSE(cg.frozen());
  cg.freeze();
  EXPECT_TRUE(cg.frozen());
  EXPECT_EQ(berth::read_file(v2.unified_mount + path + "/cgroup.freeze"), "1\n");
  child.ask();
  EXPECT_EQ(child.answer(200), "") << "a frozen child answered";
  cg.thaw();
  EXPECT_FALSE(cg.frozen());
  EXPECT_EQ(child.answer(5000), ok_ok());

  child.kill();
  cg.destroy();
  EXPECT_TRUE(cg.directories().empty());
  parent.destroy();
  EXPECT_FALSE(berth::path_exists(v2.unified_mount + "/berth-unit-v2-" + std::to_string(::getpid())));
}

}  // namespace
