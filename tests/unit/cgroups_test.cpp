// Cgroups without root: mountinfo parsing, path resolution, and the files
// create/apply/add_process write, checked against a fake hierarchy in a temp
// dir whose interface files are pre-created the way the kernel would have them.
#include "runtime/cgroups.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "util/error.hpp"
#include "util/fs.hpp"

namespace rt = berth::runtime;
namespace fs = std::filesystem;

namespace {

// A copy of this (hybrid) host's cgroup lines from /proc/self/mountinfo.
const char* kHybridMountinfo =
    "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// systemd's classic hybrid layout (Debian 10 style): comounted controllers and
// optional fields before the separator.
const char* kSystemdHybridMountinfo =
    "25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 "
    "rw,nsdelegate\n"
    "27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup "
    "rw,xattr,name=systemd\n"
    "30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup "
    "rw,net_cls,net_prio\n"
    "32 25 0:29 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,hugetlb\n"
    "33 25 0:30 / /sys/fs/cgroup/perf_event rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup "
    "rw,perf_event\n";

const char* kPureV2Mountinfo =
    "24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/berth-cgroups-test-XXXXXX";
    if (!::mkdtemp(tmpl)) berth::throw_errno("mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() {
    try {
      berth::remove_tree(path_);
    } catch (...) {
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Creates a file (and its directory) the way the kernel would provide it.
void put(const std::string& path, const std::string& content = "") {
  berth::mkdir_p(fs::path(path).parent_path().string());
  berth::write_file(path, content);
}

std::string get(const std::string& path) { return berth::read_file(path); }

// Stands in for the kernel dropping interface files when a cgroup is removed.
void remove_regular_files(const std::string& root) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() || e.is_fifo()) files.push_back(e.path());
  for (const auto& f : files) fs::remove(f);
}

rt::DeviceRule dev(bool allow, std::string type, std::optional<int64_t> major, std::optional<int64_t> minor,
                   std::string access) {
  rt::DeviceRule r;
  r.allow = allow;
  r.type = std::move(type);
  r.major = major;
  r.minor = minor;
  r.access = std::move(access);
  return r;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const berth::Error& e) {
    return e.what();
  }
  return "<no error>";
}

// ---- parse_mountinfo --------------------------------------------------------------

TEST(CgroupLayout, ParsesThisHostsHybridLayout) {
  rt::CgroupLayout l = rt::CgroupLayout::parse_mountinfo(kHybridMountinfo);
  EXPECT_FALSE(l.unified);
  EXPECT_EQ(l.unified_mount, "/sys/fs/cgroup/unified");
  std::map<std::string, std::string> want = {
      {"cpu", "/sys/fs/cgroup/cpu"},
      {"cpuacct", "/sys/fs/cgroup/cpuacct"},
      {"cpuset", "/sys/fs/cgroup/cpuset"},
      {"memory", "/sys/fs/cgroup/memory"},
      {"devices", "/sys/fs/cgroup/devices"},
      {"freezer", "/sys/fs/cgroup/freezer"},
      {"blkio", "/sys/fs/cgroup/blkio"},
      {"pids", "/sys/fs/cgroup/pids"},
      {"name=systemd", "/sys/fs/cgroup/systemd"},
  };
  EXPECT_EQ(l.v1_mounts, want);
}

TEST(CgroupLayout, ComountedControllersShareTheMountPoint) {
  rt::CgroupLayout l = rt::CgroupLayout::parse_mountinfo(kSystemdHybridMountinfo);
  EXPECT_FALSE(l.unified);
  EXPECT_EQ(l.unified_mount, "/sys/fs/cgroup/unified");
  EXPECT_EQ(l.v1_mounts.at("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(l.v1_mounts.at("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(l.v1_mounts.at("net_cls"), "/sys/fs/cgroup/net_cls,net_prio");
  EXPECT_EQ(l.v1_mounts.at("net_prio"), "/sys/fs/cgroup/net_cls,net_prio");
  EXPECT_EQ(l.v1_mounts.at("hugetlb"), "/sys/fs/cgroup/hugetlb");
  EXPECT_EQ(l.v1_mounts.at("perf_event"), "/sys/fs/cgroup/perf_event");
  EXPECT_EQ(l.v1_mounts.at("name=systemd"), "/sys/fs/cgroup/systemd");
  // Mount options are not controllers.
  EXPECT_EQ(l.v1_mounts.count("xattr"), 0u);
  EXPECT_EQ(l.v1_mounts.count("rw"), 0u);
  EXPECT_EQ(l.v1_mounts.size(), 7u);
}

TEST(CgroupLayout, PureV2) {
  rt::CgroupLayout l = rt::CgroupLayout::parse_mountinfo(kPureV2Mountinfo);
  EXPECT_TRUE(l.unified);
  EXPECT_EQ(l.unified_mount, "/sys/fs/cgroup");
  EXPECT_TRUE(l.v1_mounts.empty());
}

TEST(CgroupLayout, NamedV1HierarchyAloneIsStillPureV2) {
  std::string info = std::string(kPureV2Mountinfo) +
                     "40 30 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n";
  rt::CgroupLayout l = rt::CgroupLayout::parse_mountinfo(info);
  EXPECT_TRUE(l.unified);
  EXPECT_EQ(l.v1_mounts.at("name=systemd"), "/sys/fs/cgroup/systemd");
}

TEST(CgroupLayout, PureV1AndEscapes) {
  rt::CgroupLayout l = rt::CgroupLayout::parse_mountinfo(
      "32 31 0:29 / /cg/my\\040cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "33 31 0:30 / /cg/mem rw,relatime shared:3 master:1 - cgroup none rw,memory\n"
      "garbage line\n"
      "\n");
  EXPECT_FALSE(l.unified);
  EXPECT_TRUE(l.unified_mount.empty());
  EXPECT_EQ(l.v1_mounts.at("cpu"), "/cg/my cpu");
  EXPECT_EQ(l.v1_mounts.at("memory"), "/cg/mem");
}

TEST(CgroupLayout, EmptyInput) {
  rt::CgroupLayout l = rt::CgroupLayout::parse_mountinfo("");
  EXPECT_FALSE(l.unified);
  EXPECT_TRUE(l.unified_mount.empty());
  EXPECT_TRUE(l.v1_mounts.empty());
}

TEST(CgroupLayout, DetectFindsSomething) {
  rt::CgroupLayout l = rt::CgroupLayout::detect();
  EXPECT_TRUE(!l.unified_mount.empty() || !l.v1_mounts.empty());
}

// ---- resolve_path ----------------------------------------------------------------

TEST(CgroupPath, Default) { EXPECT_EQ(rt::Cgroup::resolve_path("", "abc"), "/berth/abc"); }

TEST(CgroupPath, AbsoluteIsNormalised) {
  EXPECT_EQ(rt::Cgroup::resolve_path("/a/b", "x"), "/a/b");
  EXPECT_EQ(rt::Cgroup::resolve_path("//a///b/", "x"), "/a/b");
  EXPECT_EQ(rt::Cgroup::resolve_path("/a/./b", "x"), "/a/b");
}

TEST(CgroupPath, RelativeIsFromTheRoot) {
  EXPECT_EQ(rt::Cgroup::resolve_path("foo/bar", "x"), "/foo/bar");
  EXPECT_EQ(rt::Cgroup::resolve_path("default/ctr1", "ctr1"), "/default/ctr1");
}

TEST(CgroupPath, RejectsDotDot) {
  EXPECT_NE(error_of([] { rt::Cgroup::resolve_path("/a/../b", "x"); }).find("\"/a/../b\""), std::string::npos);
  EXPECT_THROW(rt::Cgroup::resolve_path("..", "x"), berth::Error);
  EXPECT_THROW(rt::Cgroup::resolve_path("a/..", "x"), berth::Error);
  EXPECT_THROW(rt::Cgroup::resolve_path("/", "x"), berth::Error);
  EXPECT_THROW(rt::Cgroup::resolve_path("", ".."), berth::Error);
  EXPECT_THROW(rt::Cgroup::resolve_path("", "a/b"), berth::Error);
  // ".." inside a name is just a name.
  EXPECT_EQ(rt::Cgroup::resolve_path("/a..b", "x"), "/a..b");
}

TEST(CgroupPath, SystemdForm) {
  EXPECT_EQ(rt::Cgroup::resolve_path("system.slice:berth:ID", "ID"), "/system.slice/berth-ID.scope");
  EXPECT_EQ(rt::Cgroup::resolve_path("kubepods-besteffort-pod1.slice:cri-containerd:abc", "abc"),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope");
  EXPECT_EQ(rt::Cgroup::resolve_path(":berth:ID", "ID"), "/system.slice/berth-ID.scope");
  EXPECT_EQ(rt::Cgroup::resolve_path("-.slice:berth:ID", "ID"), "/berth-ID.scope");
  EXPECT_EQ(rt::Cgroup::resolve_path("user.slice::ID", "ID"), "/user.slice/ID.scope");
  EXPECT_EQ(rt::Cgroup::resolve_path("machine.slice:x:my.slice", "ID"), "/machine.slice/my.slice");
  EXPECT_NE(error_of([] { rt::Cgroup::resolve_path("a:b", "x"); }).find("\"a:b\""), std::string::npos);
  EXPECT_THROW(rt::Cgroup::resolve_path("system:berth:ID", "x"), berth::Error);  // not a .slice
  EXPECT_THROW(rt::Cgroup::resolve_path("a--b.slice:berth:ID", "x"), berth::Error);
  EXPECT_THROW(rt::Cgroup::resolve_path("system.slice:berth:..", "x"), berth::Error);
  EXPECT_THROW(rt::Cgroup::resolve_path("system.slice:berth:a/b", "x"), berth::Error);
  EXPECT_THROW(rt::Cgroup::resolve_path("system.slice:berth:", "x"), berth::Error);
}

TEST(CgroupPath, ConstructorNormalisesAndRejects) {
  rt::CgroupLayout l;
  EXPECT_EQ(rt::Cgroup(l, "//x//y/").path(), "/x/y");
  EXPECT_THROW(rt::Cgroup(l, "/x/../y"), berth::Error);
  EXPECT_THROW(rt::Cgroup(l, "/"), berth::Error);
}

// ---- pure v2 ------------------------------------------------------------------------

class CgroupV2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    root = tmp.path() + "/cg2";
    put(root + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put(root + "/cgroup.subtree_control", "");
    layout.unified = true;
    layout.unified_mount = root;
    leaf = root + "/berth/c1";
  }
  // Files the kernel shows in a new child with every controller enabled.
  void kernel_files() {
    for (const char* f : {"cgroup.procs", "cgroup.freeze", "memory.max", "memory.low", "memory.high", "memory.swap.max",
                          "cpu.weight", "cpu.idle", "pids.max", "io.weight", "io.max", "cpuset.cpus", "cpuset.mems",
                          "hugetlb.2MB.max", "hugetlb.1GB.max"})
      put(leaf + "/" + f, "");
    put(leaf + "/cpu.max", "max 100000\n");
    put(leaf + "/cgroup.events", "populated 0\nfrozen 0\n");
  }
  rt::Cgroup created() {
    rt::Cgroup cg(layout, "/berth/c1");
    cg.create();
    kernel_files();
    return cg;
  }

  TempDir tmp;
  std::string root, leaf;
  rt::CgroupLayout layout;
};

TEST_F(CgroupV2Test, CreateEnablesControllersInEveryAncestor) {
  // /berth exists already with fewer controllers available and one enabled.
  put(root + "/berth/cgroup.controllers", "cpu memory pids\n");
  put(root + "/berth/cgroup.subtree_control", "memory\n");
  rt::Cgroup cg(layout, "/berth/c1");
  cg.create();
  EXPECT_TRUE(fs::is_directory(leaf));
  EXPECT_EQ(get(root + "/cgroup.subtree_control"), "+cpu +memory +pids +io +cpuset +hugetlb");
  EXPECT_EQ(get(root + "/berth/cgroup.subtree_control"), "+cpu +pids");
  // The leaf itself gets no subtree_control write (it would not exist for us anyway).
  EXPECT_FALSE(fs::exists(leaf + "/cgroup.subtree_control"));
  EXPECT_EQ(cg.directories(), std::vector<std::string>{leaf});
}

TEST_F(CgroupV2Test, CreateSkipsControllersAlreadyEnabled) {
  put(root + "/cgroup.subtree_control", "cpuset cpu io memory hugetlb pids\n");
  rt::Cgroup cg(layout, "/c2");
  cg.create();
  EXPECT_EQ(get(root + "/cgroup.subtree_control"), "cpuset cpu io memory hugetlb pids\n");
  EXPECT_TRUE(fs::is_directory(root + "/c2"));
}

TEST_F(CgroupV2Test, ApplyWritesConvertedValues) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.memory = rt::MemoryResources{};
  r.memory->limit = 1048576;
  r.memory->swap = 3145728;
  r.memory->reservation = 524288;
  r.memory->swappiness = 60;            // no v2 file: ignored
  r.memory->disable_oom_killer = true;  // same
  r.memory->kernel = 1 << 20;           // same
  r.cpu = rt::CpuResources{};
  r.cpu->shares = 1024;
  r.cpu->quota = 50000;
  r.cpu->period = 100000;
  r.cpu->cpus = "0-1";
  r.cpu->mems = "0";
  r.pids_limit = 0;
  r.block_io = rt::BlockIoResources{};
  r.block_io->weight = 500;
  r.block_io->leaf_weight = 300;  // no v2 equivalent: ignored
  r.block_io->throttle_read_bps = {{8, 0, 1048576}};
  r.hugepage_limits = {{"2MB", 4194304}};
  r.unified = {{"memory.high", "900000"}};
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/memory.max"), "1048576");
  EXPECT_EQ(get(leaf + "/memory.swap.max"), "2097152");
  EXPECT_EQ(get(leaf + "/memory.low"), "524288");
  EXPECT_EQ(get(leaf + "/memory.high"), "900000");
  EXPECT_EQ(get(leaf + "/cpu.weight"), "39");  // 1 + (1022 * 9999) / 262142
  EXPECT_EQ(get(leaf + "/cpu.max"), "50000 100000");
  EXPECT_EQ(get(leaf + "/cpuset.cpus"), "0-1");
  EXPECT_EQ(get(leaf + "/cpuset.mems"), "0");
  EXPECT_EQ(get(leaf + "/pids.max"), "max");
  EXPECT_EQ(get(leaf + "/io.weight"), "4950");  // 1 + (500 - 10) * 9999 / 990
  EXPECT_EQ(get(leaf + "/io.max"), "8:0 rbps=1048576");
  EXPECT_EQ(get(leaf + "/hugetlb.2MB.max"), "4194304");
  EXPECT_EQ(get(leaf + "/cpu.idle"), "");  // unset optionals are not written
  EXPECT_EQ(get(leaf + "/hugetlb.1GB.max"), "");
}

TEST_F(CgroupV2Test, CpuWeightBounds) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.cpu = rt::CpuResources{};
  for (auto [shares, weight] : std::vector<std::pair<uint64_t, const char*>>{
           {2, "1"}, {1, "1"}, {262144, "10000"}, {1000000, "10000"}, {512, "20"}}) {
    r.cpu->shares = shares;
    cg.apply(r);
    EXPECT_EQ(get(leaf + "/cpu.weight"), weight) << shares;
  }
}

TEST_F(CgroupV2Test, IoWeightBoundsAndBfq) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.block_io = rt::BlockIoResources{};
  r.block_io->weight = 10;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/io.weight"), "1");
  r.block_io->weight = 1000;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/io.weight"), "10000");
  // With BFQ the weight goes there unconverted.
  put(leaf + "/io.bfq.weight", "default 100\n");
  r.block_io->weight = 500;
  r.block_io->weight_device = {{8, 16, 200, std::nullopt}};
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/io.weight"), "10000");
  EXPECT_EQ(get(leaf + "/io.bfq.weight"), "8:16 200");
}

TEST_F(CgroupV2Test, IoMaxKeys) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.block_io = rt::BlockIoResources{};
  r.block_io->throttle_write_iops = {{253, 1, 300}};
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/io.max"), "253:1 wiops=300");
}

TEST_F(CgroupV2Test, SwapConversion) {
  rt::Cgroup cg = created();
  auto mem = [](std::optional<int64_t> limit, std::optional<int64_t> swap) {
    rt::Resources r;
    r.memory = rt::MemoryResources{};
    r.memory->limit = limit;
    r.memory->swap = swap;
    return r;
  };
  cg.apply(mem(1000000, -1));
  EXPECT_EQ(get(leaf + "/memory.swap.max"), "max");
  EXPECT_EQ(get(leaf + "/memory.max"), "1000000");

  cg.apply(mem(1000000, 1000000));  // memory+swap == memory: no swap
  EXPECT_EQ(get(leaf + "/memory.swap.max"), "0");

  cg.apply(mem(-1, std::nullopt));  // unlimited memory means unlimited swap
  EXPECT_EQ(get(leaf + "/memory.max"), "max");
  EXPECT_EQ(get(leaf + "/memory.swap.max"), "max");

  berth::write_file(leaf + "/memory.swap.max", "untouched");
  cg.apply(mem(2000000, std::nullopt));
  EXPECT_EQ(get(leaf + "/memory.max"), "2000000");
  EXPECT_EQ(get(leaf + "/memory.swap.max"), "untouched");

  EXPECT_NE(error_of([&] { cg.apply(mem(1000000, 500000)); }).find("below memory limit"), std::string::npos);
  EXPECT_NE(error_of([&] { cg.apply(mem(std::nullopt, 500000)); }).find("without memory limit"), std::string::npos);
}

TEST_F(CgroupV2Test, NoSwapAccountingToleratesMaxAndZero) {
  rt::Cgroup cg = created();
  fs::remove(leaf + "/memory.swap.max");
  rt::Resources r;
  r.memory = rt::MemoryResources{};
  r.memory->limit = 1000;
  r.memory->swap = -1;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/memory.max"), "1000");
  r.memory->swap = 3000;
  EXPECT_NE(error_of([&] { cg.apply(r); }).find("memory.swap.max: write 2000: No such file"), std::string::npos);
}

TEST_F(CgroupV2Test, CpuMaxKeepsTheUnsetPart) {
  rt::Cgroup cg = created();
  berth::write_file(leaf + "/cpu.max", "max 200000\n");
  rt::Resources r;
  r.cpu = rt::CpuResources{};
  r.cpu->quota = 25000;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/cpu.max"), "25000 200000");
  r.cpu->quota.reset();
  r.cpu->period = 50000;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/cpu.max"), "25000 50000");
  r.cpu->quota = -1;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/cpu.max"), "max 50000");
  // No readable cpu.max: kernel defaults.
  fs::remove(leaf + "/cpu.max");
  put(leaf + "/cpu.max", "");
  r.cpu->period.reset();
  r.cpu->quota = 10000;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/cpu.max"), "10000 100000");
}

TEST_F(CgroupV2Test, PidsLimit) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.pids_limit = 10;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/pids.max"), "10");
  r.pids_limit = -1;
  cg.apply(r);
  EXPECT_EQ(get(leaf + "/pids.max"), "max");
}

TEST_F(CgroupV2Test, RejectsBadUnifiedKeysAndRealtime) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.unified = {{"../memory.max", "1"}};
  EXPECT_NE(error_of([&] { cg.apply(r); }).find("../memory.max"), std::string::npos);
  r.unified = {{"memory/../x", "1"}};
  EXPECT_THROW(cg.apply(r), berth::Error);
  r.unified = {{"..", "1"}};
  EXPECT_THROW(cg.apply(r), berth::Error);
  r.unified.clear();
  r.cpu = rt::CpuResources{};
  r.cpu->realtime_runtime = 1000;
  EXPECT_NE(error_of([&] { cg.apply(r); }).find("realtime"), std::string::npos);
}

TEST_F(CgroupV2Test, BadDeviceRuleFailsBeforeAnyWrite) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.pids_limit = 5;
  r.devices = {dev(false, "a", std::nullopt, std::nullopt, "rwm"), dev(true, "c", 1, 3, "rwx")};
  EXPECT_NE(error_of([&] { cg.apply(r); }).find("invalid access \"rwx\""), std::string::npos);
  EXPECT_EQ(get(leaf + "/pids.max"), "");
}

// Rules that end up allowing everything need no eBPF program, so they work
// even where bpf(2) does not (here: not a real cgroup, and maybe no root).
TEST_F(CgroupV2Test, DevicesAllowingEverythingNeedNoBpf) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.devices = {dev(false, "a", std::nullopt, std::nullopt, "rwm"), dev(true, "c", 1, 3, "rwm"),
               dev(true, "a", std::nullopt, std::nullopt, "rwm")};
  EXPECT_NO_THROW(cg.apply(r));
  // Allow all, then deny and re-allow the same device: back to allow-all.
  r.devices = {dev(true, "a", std::nullopt, std::nullopt, ""), dev(false, "c", 1, 5, "rw"), dev(true, "c", 1, 5, "rw")};
  EXPECT_NO_THROW(cg.apply(r));
  // A real restriction does need the program, and the error says so.
  r.devices = {dev(false, "a", std::nullopt, std::nullopt, "rwm")};
  EXPECT_NE(error_of([&] { cg.apply(r); }).find("cgroup " + leaf + ":"), std::string::npos);
}

TEST_F(CgroupV2Test, WriteErrorNamesFileValueAndErrno) {
  rt::Cgroup cg = created();
  fs::remove(leaf + "/memory.max");
  rt::Resources r;
  r.memory = rt::MemoryResources{};
  r.memory->limit = 1048576;
  try {
    cg.apply(r);
    FAIL() << "no error";
  } catch (const berth::Error& e) {
    EXPECT_EQ(std::string(e.what()), "cgroup " + leaf + "/memory.max: write 1048576: No such file or directory");
    EXPECT_EQ(e.errnum(), ENOENT);
  }
}

TEST_F(CgroupV2Test, AddProcessAndPids) {
  rt::Cgroup cg = created();
  cg.add_process(1234);
  EXPECT_EQ(get(leaf + "/cgroup.procs"), "1234");
  berth::write_file(leaf + "/cgroup.procs", "42\n7\n42\n");
  EXPECT_EQ(cg.pids(), (std::vector<pid_t>{7, 42}));
}

TEST_F(CgroupV2Test, FreezeWaitsForEvents) {
  rt::Cgroup cg = created();
  EXPECT_FALSE(cg.frozen());
  // The kernel reports completion in cgroup.events; simulate a finished freeze.
  berth::write_file(leaf + "/cgroup.events", "populated 1\nfrozen 1\n");
  cg.freeze();
  EXPECT_EQ(get(leaf + "/cgroup.freeze"), "1");
  EXPECT_TRUE(cg.frozen());
  cg.thaw();
  EXPECT_EQ(get(leaf + "/cgroup.freeze"), "0");
}

TEST_F(CgroupV2Test, FreezeTimesOutAndThaws) {
  rt::Cgroup cg = created();
  EXPECT_NE(error_of([&] { cg.freeze(); }).find("timed out"), std::string::npos);
  EXPECT_EQ(get(leaf + "/cgroup.freeze"), "0");
}

TEST_F(CgroupV2Test, DestroyRemovesLeafAndNestedButNotParents) {
  rt::Cgroup cg = created();
  berth::mkdir_p(leaf + "/nested/deeper");
  remove_regular_files(root);
  cg.destroy();
  EXPECT_FALSE(fs::exists(leaf));
  EXPECT_TRUE(fs::is_directory(root + "/berth"));
  EXPECT_TRUE(cg.directories().empty());
  EXPECT_TRUE(cg.pids().empty());
  EXPECT_FALSE(cg.frozen());
  cg.destroy();  // already gone: fine
}

// ---- v1 (hybrid) -------------------------------------------------------------------------

class CgroupV1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    root = tmp.path() + "/cg";
    for (const char* c : {"cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb"})
      layout.v1_mounts[c] = root + "/" + c;
    layout.v1_mounts["cpu"] = root + "/cpu,cpuacct";
    layout.v1_mounts["cpuacct"] = root + "/cpu,cpuacct";
    layout.v1_mounts["name=systemd"] = root + "/systemd";
    layout.unified_mount = root + "/unified";
    for (const auto& [c, mount] : layout.v1_mounts) berth::mkdir_p(mount);
    berth::mkdir_p(layout.unified_mount);
    put(root + "/cpuset/cpuset.cpus", "0-3\n");
    put(root + "/cpuset/cpuset.mems", "0\n");
  }
  std::string dir(const std::string& hierarchy) { return root + "/" + hierarchy + "/berth/c1"; }
  // Files the kernel shows in a new v1 cgroup.
  void kernel_files() {
    for (const char* f :
         {"memory.soft_limit_in_bytes", "memory.swappiness", "memory.oom_control", "memory.memsw.limit_in_bytes"})
      put(dir("memory") + "/" + f, "");
    put(dir("memory") + "/memory.limit_in_bytes", "9223372036854771712\n");
    for (const char* f :
         {"cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.rt_runtime_us", "cpu.rt_period_us", "cpu.idle"})
      put(dir("cpu,cpuacct") + "/" + f, "");
    for (const char* f : {"blkio.weight", "blkio.leaf_weight", "blkio.weight_device", "blkio.leaf_weight_device",
                          "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
                          "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"})
      put(dir("blkio") + "/" + f, "");
    put(dir("cpuset") + "/cpuset.cpus", "0-3\n");
    put(dir("cpuset") + "/cpuset.mems", "0\n");
    put(dir("devices") + "/devices.allow", "");
    put(dir("devices") + "/devices.deny", "");
    put(dir("pids") + "/pids.max", "");
    put(dir("freezer") + "/freezer.state", "THAWED\n");
    put(dir("hugetlb") + "/hugetlb.2MB.limit_in_bytes", "");
    for (const char* h :
         {"cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb", "cpu,cpuacct", "systemd"})
      put(dir(h) + "/cgroup.procs", "");
  }
  rt::Cgroup created() {
    rt::Cgroup cg(layout, "/berth/c1");
    cg.create();
    kernel_files();
    return cg;
  }

  TempDir tmp;
  std::string root;
  rt::CgroupLayout layout;
};

TEST_F(CgroupV1Test, CreateMakesEveryHierarchyAndTheHybridV2Dir) {
  rt::Cgroup cg(layout, "/berth/c1");
  cg.create();
  std::vector<std::string> want;
  for (const char* h :
       {"cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb", "systemd", "unified"}) {
    EXPECT_TRUE(fs::is_directory(dir(h))) << h;
  }
  EXPECT_EQ(cg.directories().size(), 10u);
  EXPECT_EQ(cg.directories().back(), dir("unified"));
}

TEST_F(CgroupV1Test, HybridV2DirFailureIsIgnored) {
  layout.unified_mount = tmp.path() + "/not-a-dir";
  put(layout.unified_mount, "file");
  rt::Cgroup cg = created();
  cg.add_process(55);
  EXPECT_EQ(cg.directories().size(), 9u);
}

TEST_F(CgroupV1Test, CpusetIsCopiedDownFromTheNearestParent) {
  // Kernel state: every new cpuset cgroup has empty cpus/mems.
  put(root + "/cpuset/berth/cpuset.cpus", "\n");
  put(root + "/cpuset/berth/cpuset.mems", "\n");
  put(root + "/cpuset/berth/c1/cpuset.cpus", "\n");
  put(root + "/cpuset/berth/c1/cpuset.mems", "\n");
  rt::Cgroup cg(layout, "/berth/c1");
  cg.create();
  EXPECT_EQ(get(root + "/cpuset/berth/cpuset.cpus"), "0-3");
  EXPECT_EQ(get(root + "/cpuset/berth/cpuset.mems"), "0");
  EXPECT_EQ(get(dir("cpuset") + "/cpuset.cpus"), "0-3");
  EXPECT_EQ(get(dir("cpuset") + "/cpuset.mems"), "0");
}

TEST_F(CgroupV1Test, CpusetCopyUsesAnAncestorsOwnValue) {
  put(root + "/cpuset/berth/cpuset.cpus", "2\n");
  put(root + "/cpuset/berth/cpuset.mems", "0\n");
  put(root + "/cpuset/berth/c1/cpuset.cpus", "");
  put(root + "/cpuset/berth/c1/cpuset.mems", "");
  rt::Cgroup cg(layout, "/berth/c1");
  cg.create();
  EXPECT_EQ(get(root + "/cpuset/berth/cpuset.cpus"), "2\n");  // already set: untouched
  EXPECT_EQ(get(dir("cpuset") + "/cpuset.cpus"), "2");
  EXPECT_EQ(get(dir("cpuset") + "/cpuset.mems"), "0");
}

TEST_F(CgroupV1Test, ApplyWritesV1Files) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.memory = rt::MemoryResources{};
  r.memory->limit = 1048576;
  r.memory->swap = 2097152;
  r.memory->reservation = 524288;
  r.memory->swappiness = 10;
  r.memory->disable_oom_killer = true;
  r.memory->kernel = 1 << 20;      // ignored
  r.memory->kernel_tcp = 1 << 20;  // this tree has no memory.kmem.tcp file: ignored
  r.cpu = rt::CpuResources{};
  r.cpu->shares = 512;
  r.cpu->quota = 50000;
  r.cpu->period = 100000;
  r.cpu->realtime_runtime = 950000;
  r.cpu->realtime_period = 1000000;
  r.cpu->cpus = "1";
  r.cpu->mems = "0";
  r.pids_limit = 10;
  r.block_io = rt::BlockIoResources{};
  r.block_io->weight = 500;
  r.block_io->leaf_weight = 400;
  r.block_io->weight_device = {{8, 0, 300, 200}};
  r.block_io->throttle_read_bps = {{8, 0, 1000}};
  r.block_io->throttle_write_bps = {{8, 0, 2000}};
  r.block_io->throttle_read_iops = {{8, 0, 30}};
  r.block_io->throttle_write_iops = {{8, 0, 40}};
  r.hugepage_limits = {{"2MB", 4194304}};
  cg.apply(r);
  EXPECT_EQ(get(dir("memory") + "/memory.limit_in_bytes"), "1048576");
  EXPECT_EQ(get(dir("memory") + "/memory.memsw.limit_in_bytes"), "2097152");
  EXPECT_EQ(get(dir("memory") + "/memory.soft_limit_in_bytes"), "524288");
  EXPECT_EQ(get(dir("memory") + "/memory.swappiness"), "10");
  EXPECT_EQ(get(dir("memory") + "/memory.oom_control"), "1");
  EXPECT_FALSE(fs::exists(dir("memory") + "/memory.kmem.limit_in_bytes"));
  std::string cpu = dir("cpu,cpuacct");
  EXPECT_EQ(get(cpu + "/cpu.shares"), "512");
  EXPECT_EQ(get(cpu + "/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(get(cpu + "/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(get(cpu + "/cpu.rt_runtime_us"), "950000");
  EXPECT_EQ(get(cpu + "/cpu.rt_period_us"), "1000000");
  EXPECT_EQ(get(cpu + "/cpu.idle"), "");
  EXPECT_EQ(get(dir("cpuset") + "/cpuset.cpus"), "1");
  EXPECT_EQ(get(dir("cpuset") + "/cpuset.mems"), "0");
  EXPECT_EQ(get(dir("pids") + "/pids.max"), "10");
  std::string blk = dir("blkio");
  EXPECT_EQ(get(blk + "/blkio.weight"), "500");
  EXPECT_EQ(get(blk + "/blkio.leaf_weight"), "400");
  EXPECT_EQ(get(blk + "/blkio.weight_device"), "8:0 300");
  EXPECT_EQ(get(blk + "/blkio.leaf_weight_device"), "8:0 200");
  EXPECT_EQ(get(blk + "/blkio.throttle.read_bps_device"), "8:0 1000");
  EXPECT_EQ(get(blk + "/blkio.throttle.write_bps_device"), "8:0 2000");
  EXPECT_EQ(get(blk + "/blkio.throttle.read_iops_device"), "8:0 30");
  EXPECT_EQ(get(blk + "/blkio.throttle.write_iops_device"), "8:0 40");
  EXPECT_EQ(get(dir("hugetlb") + "/hugetlb.2MB.limit_in_bytes"), "4194304");
}

TEST_F(CgroupV1Test, PidsUnlimited) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.pids_limit = -1;
  cg.apply(r);
  EXPECT_EQ(get(dir("pids") + "/pids.max"), "max");
}

TEST_F(CgroupV1Test, BlkioFallsBackToBfqFiles) {
  rt::Cgroup cg = created();
  fs::remove(dir("blkio") + "/blkio.weight");
  fs::remove(dir("blkio") + "/blkio.weight_device");
  put(dir("blkio") + "/blkio.bfq.weight", "100\n");
  put(dir("blkio") + "/blkio.bfq.weight_device", "");
  rt::Resources r;
  r.block_io = rt::BlockIoResources{};
  r.block_io->weight = 700;
  r.block_io->weight_device = {{8, 16, 250, std::nullopt}};
  cg.apply(r);
  EXPECT_EQ(get(dir("blkio") + "/blkio.bfq.weight"), "700");
  EXPECT_EQ(get(dir("blkio") + "/blkio.bfq.weight_device"), "8:16 250");
}

TEST_F(CgroupV1Test, MemoryUnlimitedAlsoUnlimitsSwap) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.memory = rt::MemoryResources{};
  r.memory->limit = -1;
  cg.apply(r);
  EXPECT_EQ(get(dir("memory") + "/memory.limit_in_bytes"), "-1");
  EXPECT_EQ(get(dir("memory") + "/memory.memsw.limit_in_bytes"), "-1");
}

TEST_F(CgroupV1Test, SwapWithoutSwapAccounting) {
  rt::Cgroup cg = created();
  fs::remove(dir("memory") + "/memory.memsw.limit_in_bytes");
  rt::Resources r;
  r.memory = rt::MemoryResources{};
  r.memory->limit = 1000000;
  r.memory->swap = 2000000;
  EXPECT_NE(error_of([&] { cg.apply(r); }).find("swap accounting"), std::string::npos);
  // Swap equal to the limit (no swap) or unlimited is what the kernel does anyway.
  r.memory->swap = 1000000;
  cg.apply(r);
  EXPECT_EQ(get(dir("memory") + "/memory.limit_in_bytes"), "1000000");
  r.memory->swap = -1;
  r.memory->limit = 3000000;
  cg.apply(r);
  EXPECT_EQ(get(dir("memory") + "/memory.limit_in_bytes"), "3000000");
  EXPECT_FALSE(fs::exists(dir("memory") + "/memory.memsw.limit_in_bytes"));
}

TEST_F(CgroupV1Test, DeviceRulesLastWritePerFile) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.devices = {dev(false, "", std::nullopt, std::nullopt, "rwm"), dev(true, "c", 1, 3, "rwm"),
               dev(true, "b", 8, std::nullopt, "r"), dev(false, "c", 1, 3, "w")};
  cg.apply(r);
  EXPECT_EQ(get(dir("devices") + "/devices.allow"), "b 8:* r");
  EXPECT_EQ(get(dir("devices") + "/devices.deny"), "c 1:3 w");
  r.devices = {dev(true, "a", std::nullopt, std::nullopt, "rwm"), dev(false, "c", -1, 5, "")};
  cg.apply(r);
  EXPECT_EQ(get(dir("devices") + "/devices.allow"), "a");
  EXPECT_EQ(get(dir("devices") + "/devices.deny"), "c *:5 rwm");
}

// devices.allow/deny are FIFOs here so every single write, and its order, is seen.
TEST_F(CgroupV1Test, DeviceRulesWrittenInOrder) {
  rt::Cgroup cg = created();
  std::string d = dir("devices");
  fs::remove(d + "/devices.allow");
  fs::remove(d + "/devices.deny");
  ASSERT_EQ(::mkfifo((d + "/devices.allow").c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo((d + "/devices.deny").c_str(), 0600), 0);
  // Files alternate: two writes in a row to one FIFO would arrive as one read.
  rt::Resources r;
  r.devices = {dev(false, "a", std::nullopt, std::nullopt, "rwm"),
               dev(true, "c", 1, 3, "rwm"),
               dev(false, "c", 1, 3, "w"),
               dev(true, "c", std::nullopt, std::nullopt, "m"),
               dev(false, "b", 8, std::nullopt, "r"),
               dev(true, "", std::nullopt, std::nullopt, "")};
  std::vector<std::string> want = {"deny:a",        "allow:c 1:3 rwm", "deny:c 1:3 w",
                                   "allow:c *:* m", "deny:b 8:* r",    "allow:a"};

  std::atomic<bool> done{false};
  std::exception_ptr failure;
  std::thread writer([&] {
    try {
      cg.apply(r);
    } catch (...) {
      failure = std::current_exception();
    }
    done = true;
  });
  // Hold only the expected FIFO open: the writer's open() of the other one
  // blocks until we get there, so the sequence we read is the write order.
  std::vector<std::string> got;
  for (const std::string& w : want) {
    std::string file = w.substr(0, w.find(':'));
    int fd = ::open((d + "/devices." + file).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::string data;
    bool eof = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!eof && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) data.append(buf, static_cast<size_t>(n));
      if (n == 0) eof = true;
    }
    ::close(fd);
    got.push_back(eof ? file + ":" + data : "timeout waiting for " + w);
    if (!eof) break;
  }
  // Unblock a writer stuck on a FIFO we never opened, then join.
  int a = ::open((d + "/devices.allow").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  int b = ::open((d + "/devices.deny").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  while (!done) {
    char buf[256];
    while (::read(a, buf, sizeof buf) > 0) {
    }
    while (::read(b, buf, sizeof buf) > 0) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  writer.join();
  ::close(a);
  ::close(b);
  EXPECT_EQ(got, want);
  EXPECT_FALSE(failure);
}

TEST_F(CgroupV1Test, UnifiedAndUnmountedControllersAreErrors) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.unified = {{"memory.high", "1"}};
  EXPECT_NE(error_of([&] { cg.apply(r); }).find("cgroup v2"), std::string::npos);
  layout.v1_mounts.erase("hugetlb");
  rt::Cgroup no_hugetlb(layout, "/berth/c1");
  rt::Resources h;
  h.hugepage_limits = {{"2MB", 1}};
  EXPECT_NE(error_of([&] { no_hugetlb.apply(h); }).find("hugetlb controller is not mounted"), std::string::npos);
}

TEST_F(CgroupV1Test, AddProcessJoinsEveryHierarchy) {
  rt::Cgroup cg = created();
  put(dir("unified") + "/cgroup.procs", "");
  cg.add_process(4321);
  for (const char* h :
       {"cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb", "cpu,cpuacct", "systemd", "unified"})
    EXPECT_EQ(get(dir(h) + "/cgroup.procs"), "4321") << h;
  // Missing unified cgroup.procs is tolerated on hybrid hosts.
  fs::remove(dir("unified") + "/cgroup.procs");
  cg.add_process(99);
  // A v1 hierarchy failing is not.
  fs::remove(dir("memory") + "/cgroup.procs");
  EXPECT_NE(error_of([&] { cg.add_process(98); }).find(dir("memory") + "/cgroup.procs: write 98"), std::string::npos);
}

TEST_F(CgroupV1Test, PidsPrefersThePidsHierarchy) {
  rt::Cgroup cg = created();
  berth::write_file(dir("pids") + "/cgroup.procs", "3\n1\n2\n");
  berth::write_file(dir("freezer") + "/cgroup.procs", "9\n");
  EXPECT_EQ(cg.pids(), (std::vector<pid_t>{1, 2, 3}));
  layout.v1_mounts.erase("pids");
  EXPECT_EQ(rt::Cgroup(layout, "/berth/c1").pids(), std::vector<pid_t>{9});
}

TEST_F(CgroupV1Test, FreezeAndThaw) {
  rt::Cgroup cg = created();
  EXPECT_FALSE(cg.frozen());
  cg.freeze();
  EXPECT_EQ(get(dir("freezer") + "/freezer.state"), "FROZEN");
  EXPECT_TRUE(cg.frozen());
  cg.thaw();
  EXPECT_EQ(get(dir("freezer") + "/freezer.state"), "THAWED");
  EXPECT_FALSE(cg.frozen());
}

TEST_F(CgroupV1Test, DestroyRemovesEveryHierarchy) {
  rt::Cgroup cg = created();
  berth::mkdir_p(dir("memory") + "/sub");
  remove_regular_files(root);
  cg.destroy();
  EXPECT_TRUE(cg.directories().empty());
  EXPECT_TRUE(fs::is_directory(root + "/memory/berth"));
  EXPECT_NO_THROW(cg.destroy());
}

TEST_F(CgroupV1Test, DestroyReportsABusyCgroupButRemovesTheRest) {
  rt::Cgroup cg = created();
  remove_regular_files(root);
  put(dir("memory") + "/stuck", "x");  // rmdir fails (ENOTEMPTY) like a busy cgroup
  EXPECT_NE(error_of([&] { cg.destroy(); }).find("rmdir " + dir("memory")), std::string::npos);
  EXPECT_EQ(cg.directories(), std::vector<std::string>{dir("memory")});
}

}  // namespace

TEST_F(CgroupV1Test, NetworkClassIdAndPriorities) {
  // net_cls and net_prio, co-mounted as most distributions do.
  layout.v1_mounts["net_cls"] = root + "/net_cls,net_prio";
  layout.v1_mounts["net_prio"] = root + "/net_cls,net_prio";
  berth::mkdir_p(root + "/net_cls,net_prio");
  rt::Cgroup cg = created();
  put(dir("net_cls,net_prio") + "/net_cls.classid", "0\n");
  put(dir("net_cls,net_prio") + "/net_prio.ifpriomap", "");
  rt::Resources r;
  r.network.emplace();
  r.network->class_id = 0x100001;
  r.network->priorities = {{"lo", 7}};
  cg.apply(r);
  EXPECT_EQ(get(dir("net_cls,net_prio") + "/net_cls.classid"), "1048577");
  EXPECT_EQ(get(dir("net_cls,net_prio") + "/net_prio.ifpriomap"), "lo 7");
}

TEST_F(CgroupV1Test, NetworkResourcesNeedTheirController) {
  rt::Cgroup cg = created();
  rt::Resources r;
  r.network.emplace();
  r.network->class_id = 7;
  try {
    cg.apply(r);
    FAIL() << "no error without a net_cls hierarchy";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("net_cls controller is not mounted"), std::string::npos) << e.what();
  }
}
