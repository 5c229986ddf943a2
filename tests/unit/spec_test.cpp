// The config parser against the runtime-spec's own good and bad examples.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>

#include <filesystem>
#include <string>

#include "runtime/mounts.hpp"
#include "runtime/runtime.hpp"
#include "runtime/spec.hpp"
#include "runtime/state.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace fs = std::filesystem;
using berth::Error;
using namespace berth::runtime;

namespace {

std::string examples(const std::string& sub) {
  return std::string(BERTH_SPECS_DIR) + "/oci-runtime-spec/examples/config/" + sub;
}

bool is_linux_example(const fs::path& p) {
  std::string name = p.filename().string();
  return name.rfind("freebsd", 0) != 0 && name.rfind("zos", 0) != 0 && name.rfind("windows", 0) != 0 &&
         name.rfind("solaris", 0) != 0 && name.rfind("vm", 0) != 0;
}

std::string parse_error(const std::string& text) {
  try {
    parse_spec(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SpecExamples, AcceptsEveryGoodLinuxExample) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(examples("good"))) {
    if (!is_linux_example(entry.path())) continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(parse_spec(berth::read_file(entry.path())));
    ++count;
  }
  EXPECT_GE(count, 5);
}

TEST(SpecExamples, RejectsEveryBadLinuxExampleNamingTheField) {
  const std::map<std::string, std::string> expected_field = {
      {"invalid-json.json", "invalid JSON"},
      {"linux-hugepage.json", "linux.resources.hugepageLimits[0].pageSize"},
      {"linux-netdevice.json", "linux.netDevices.eth0.name"},
      {"linux-rdma.json", "linux.resources.rdma.mlx5_1.hcaHandles"},
  };
  int count = 0;
  for (const auto& entry : fs::directory_iterator(examples("bad"))) {
    if (!is_linux_example(entry.path())) continue;
    std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    std::string err = parse_error(berth::read_file(entry.path()));
    ASSERT_FALSE(err.empty()) << "accepted a bad config";
    auto it = expected_field.find(name);
    ASSERT_NE(it, expected_field.end()) << "new bad example, add its field: " << err;
    EXPECT_NE(err.find(it->second), std::string::npos) << err;
    ++count;
  }
  EXPECT_EQ(count, 4);
}

TEST(SpecParse, SpecExampleFields) {
  Spec s = parse_spec(berth::read_file(examples("good/spec-example.json")));
  ASSERT_TRUE(s.process);
  EXPECT_EQ(s.process->cwd, "/");
  EXPECT_EQ(s.process->user.uid, 1u);
  EXPECT_EQ(s.process->user.additional_gids, (std::vector<uint32_t>{5, 6}));
  ASSERT_TRUE(s.linux_);
  EXPECT_FALSE(s.linux_->namespaces.empty());
  ASSERT_TRUE(s.linux_->seccomp);
  EXPECT_EQ(s.linux_->seccomp->default_action, "SCMP_ACT_ALLOW");
  ASSERT_TRUE(s.linux_->resources);
  ASSERT_TRUE(s.linux_->resources->memory);
  EXPECT_EQ(s.linux_->resources->memory->limit, 536870912);
  ASSERT_TRUE(s.linux_->resources->network);
  EXPECT_EQ(s.linux_->resources->network->class_id, 1048577u);
  using Priorities = std::vector<std::pair<std::string, uint32_t>>;
  EXPECT_EQ(s.linux_->resources->network->priorities, (Priorities{{"eth0", 500}, {"eth1", 1000}}));
  EXPECT_FALSE(s.hooks.prestart.empty());
}

TEST(SpecParse, ErrorsNameTheField) {
  struct Case {
    const char* json;
    const char* needle;
  };
  const Case cases[] = {
      {R"({})", "ociVersion"},
      {R"({"ociVersion": 1})", "ociVersion: must be a string"},
      {R"({"ociVersion":"1.0.0","process":{"cwd":"x","args":["sh"]}})", "process.cwd"},
      {R"({"ociVersion":"1.0.0","process":{"args":["sh"]}})", "process: missing required field \"cwd\""},
      {R"({"ociVersion":"1.0.0","root":{"path":3}})", "root.path"},
      {R"({"ociVersion":"1.0.0","mounts":[{"type":"tmpfs"}]})", "mounts[0]: missing required field \"destination\""},
      {R"({"ociVersion":"1.0.0","linux":{"namespaces":[{"type":"bogus"}]}})", "linux.namespaces[0].type"},
      {R"({"ociVersion":"1.0.0","linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}})", "duplicate namespace"},
      {R"({"ociVersion":"1.0.0","linux":{"seccomp":{"defaultAction":"SCMP_ACT_NOPE"}}})",
       "linux.seccomp.defaultAction"},
      {R"({"ociVersion":"1.0.0","linux":{"devices":[{"path":"/dev/x","type":"q","major":1,"minor":1}]}})",
       "linux.devices[0].type"},
      {R"({"ociVersion":"1.0.0","process":{"cwd":"/","rlimits":[{"type":"NOFILE","soft":1,"hard":1}]}})",
       "process.rlimits[0].type"},
      {R"({"ociVersion":"1.0.0","hooks":{"prestart":[{"path":"rel"}]}})", "hooks.prestart[0].path"},
      {R"({"ociVersion":"1.0.0","linux":{"uidMappings":[{"containerID":0,"hostID":-1,"size":1}]}})",
       "linux.uidMappings[0].hostID"},
      {R"({"ociVersion":"1.0.0","process":{"cwd":"/","oomScoreAdj":5000}})", "process.oomScoreAdj"},
      {R"([1,2])", "must be a JSON object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.json);
    std::string err = parse_error(c.json);
    ASSERT_FALSE(err.empty());
    EXPECT_NE(err.find(c.needle), std::string::npos) << err;
  }
}

TEST(SpecDefault, DefaultSpecParsesAndRunsAShell) {
  Spec s = parse_spec(default_spec_json(false));
  ASSERT_TRUE(s.process);
  EXPECT_EQ(s.process->args, std::vector<std::string>{"sh"});
  EXPECT_TRUE(s.root_readonly);
  EXPECT_NE(find_namespace(s, "mount"), nullptr);
  EXPECT_EQ(find_namespace(s, "user"), nullptr);
  Spec rootless = parse_spec(default_spec_json(true));
  EXPECT_NE(find_namespace(rootless, "user"), nullptr);
}

TEST(MountOptions, FlagsDataAndPropagation) {
  MountFlags f = parse_mount_options({"nosuid", "noexec", "mode=755", "size=65536k", "rprivate", "ro"});
  EXPECT_TRUE(f.flags & MS_NOSUID);
  EXPECT_TRUE(f.flags & MS_NOEXEC);
  EXPECT_TRUE(f.flags & MS_RDONLY);
  EXPECT_EQ(f.data, "mode=755,size=65536k");
  EXPECT_EQ(f.propagation, static_cast<unsigned long>(MS_PRIVATE | MS_REC));
  MountFlags b = parse_mount_options({"rbind", "ro", "rw"});
  EXPECT_TRUE(b.bind);
  EXPECT_TRUE(b.flags & MS_REC);
  EXPECT_FALSE(b.flags & MS_RDONLY);
  MountFlags r = parse_mount_options({"rro", "rnosuid"});
  EXPECT_TRUE(r.attr_set & MOUNT_ATTR_RDONLY);
  EXPECT_TRUE(r.attr_set & MOUNT_ATTR_NOSUID);
  EXPECT_THROW(parse_propagation("sideways"), Error);
}

TEST(Signals, NamesNumbersAndJunk) {
  EXPECT_EQ(parse_signal("KILL"), SIGKILL);
  EXPECT_EQ(parse_signal("SIGKILL"), SIGKILL);
  EXPECT_EQ(parse_signal("sigterm"), SIGTERM);
  EXPECT_EQ(parse_signal("9"), 9);
  EXPECT_EQ(parse_signal("RTMIN+1"), SIGRTMIN + 1);
  for (const char* bad : {"SIGFOO", "", "0", "99", "-9", "KILLX"}) {
    SCOPED_TRACE(bad);
    try {
      parse_signal(bad);
      FAIL() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("invalid signal"), std::string::npos);
    }
  }
}

TEST(ContainerIds, RuncRules) {
  for (const char* ok : {"a", "abc-DEF_1.2+3", "x.y"}) EXPECT_NO_THROW(validate_container_id(ok)) << ok;
  for (const char* bad : {"", ".", "..", "a/b", "a b", "../x", "a\n"})
    EXPECT_THROW(validate_container_id(bad), Error) << bad;
}
