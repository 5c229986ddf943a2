// The OCI spec of a container (engine/oci_spec.cpp): docker's merge rules, moby's default spec,
// user resolution, capabilities, seccomp conversion, and acceptance by the runtime's parser.
#include "engine/oci_spec.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "runtime/spec.hpp"
#include "storage/mount_spec.hpp"
#include "util/error.hpp"

using berth::Error;
using berth::engine::build_oci_spec;
using berth::engine::effective_capabilities;
using berth::engine::effective_config;
using berth::engine::MountPlan;
using berth::engine::resolve_user;
using berth::engine::SpecInput;
using nlohmann::json;

namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// A rootfs with /etc/passwd and /etc/group, removed at the end.
class TempRootfs {
 public:
  TempRootfs() {
    char tmpl[] = "/tmp/berth-ocispec-XXXXXX";
    path_ = ::mkdtemp(tmpl);
    std::filesystem::create_directories(path_ + "/etc");
    write("etc/passwd",
          "root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "# a comment\n"
          "app:x:1000:1000:App:/home/app:/bin/sh\n"
          "broken line\n");
    write("etc/group",
          "root:x:0:\n"
          "daemon:x:1:\n"
          "wheel:x:10:app,other\n"
          "audio:x:29:app\n"
          "app:x:1000:\n"
          "staff:x:50:\n");
  }
  ~TempRootfs() { std::filesystem::remove_all(path_); }
  void write(const std::string& rel, const std::string& text) { std::ofstream(path_ + "/" + rel) << text; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

SpecInput input(json config = json::object(), json host = json::object(), json image = json::object()) {
  SpecInput in;
  in.id = kId;
  in.config = std::move(config);
  in.host_config = std::move(host);
  in.image_config = std::move(image);
  in.arch = "amd64";
  return in;
}

json image_with(json cfg) { return {{"architecture", "amd64"}, {"os", "linux"}, {"config", std::move(cfg)}}; }

std::vector<std::string> syscalls_allowed(const json& seccomp) {
  std::vector<std::string> out;
  for (const auto& r : seccomp["syscalls"])
    if (r["action"] == "SCMP_ACT_ALLOW" && !r.contains("args"))
      for (const auto& n : r["names"]) out.push_back(n);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

const json* find_mount(const json& spec, const std::string& dst) {
  for (const auto& m : spec["mounts"])
    if (m["destination"] == dst) return &m;
  return nullptr;
}

bool has_ns(const json& spec, const std::string& type) {
  for (const auto& n : spec["linux"]["namespaces"])
    if (n["type"] == type) return true;
  return false;
}

}  // namespace

TEST(OciSpecMerge, ImageCmdAndEntrypointUsedWhenUserGivesNone) {
  auto e = effective_config(input({}, {}, image_with({{"Entrypoint", {"/entry"}}, {"Cmd", {"serve", "-v"}}})));
  EXPECT_EQ(e.args, (std::vector<std::string>{"/entry", "serve", "-v"}));
}

TEST(OciSpecMerge, UserCmdReplacesImageCmdKeepsEntrypoint) {
  auto e = effective_config(input({{"Cmd", {"sh"}}}, {}, image_with({{"Entrypoint", {"/entry"}}, {"Cmd", {"x"}}})));
  EXPECT_EQ(e.args, (std::vector<std::string>{"/entry", "sh"}));
}

TEST(OciSpecMerge, EntrypointDropsImageCmd) {
  auto e = effective_config(input({{"Entrypoint", {"/bin/echo"}}}, {}, image_with({{"Cmd", {"nginx"}}})));
  EXPECT_EQ(e.args, (std::vector<std::string>{"/bin/echo"}));
  auto e2 = effective_config(input({{"Entrypoint", {"/bin/echo"}}, {"Cmd", {"hi"}}}, {},
                                   image_with({{"Entrypoint", {"/x"}}, {"Cmd", {"y"}}})));
  EXPECT_EQ(e2.args, (std::vector<std::string>{"/bin/echo", "hi"}));
}

TEST(OciSpecMerge, EmptyEntrypointResets) {
  auto e = effective_config(input({{"Entrypoint", {""}}, {"Cmd", {"sh", "-c", "true"}}}, {},
                                  image_with({{"Entrypoint", {"/docker-entrypoint.sh"}}, {"Cmd", {"nginx"}}})));
  EXPECT_EQ(e.args, (std::vector<std::string>{"sh", "-c", "true"}));
  EXPECT_TRUE(e.entrypoint.empty());
}

TEST(OciSpecMerge, NoCommandIsAnError) {
  try {
    effective_config(input({{"Entrypoint", {""}}}, {}, image_with({{"Cmd", {"nginx"}}})));
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "no command specified");
  }
  EXPECT_THROW(effective_config(input()), Error);
}

TEST(OciSpecMerge, EnvImageThenUserOverridesDefaultPath) {
  auto e = effective_config(input({{"Env", {"B=user", "C=3"}}, {"Cmd", {"x"}}, {"Tty", true}}, {},
                                  image_with({{"Env", {"PATH=/opt/bin:/bin", "A=1", "B=image"}}})));
  EXPECT_EQ(e.env, (std::vector<std::string>{"PATH=/opt/bin:/bin", "HOSTNAME=0123456789ab", "TERM=xterm", "B=user",
                                             "C=3", "A=1"}));
  auto d = effective_config(input({{"Cmd", {"x"}}}));
  EXPECT_EQ(d.env[0], "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  // A bare NAME (docker -e NAME with NAME unset in the CLI's env) unsets it.
  auto u = effective_config(input({{"Cmd", {"x"}}, {"Env", {"A"}}}, {}, image_with({{"Env", {"A=1"}}})));
  for (const auto& kv : u.env) EXPECT_NE(kv.substr(0, 2), "A=");
}

TEST(OciSpecMerge, WorkingDirUserHostname) {
  auto e = effective_config(input({{"Cmd", {"x"}}}, {}, image_with({{"WorkingDir", "/srv/app/"}, {"User", "app"}})));
  EXPECT_EQ(e.cwd, "/srv/app");
  EXPECT_EQ(e.user, "app");
  EXPECT_EQ(e.hostname, "0123456789ab");
  auto o = effective_config(input({{"Cmd", {"x"}}, {"WorkingDir", "/w"}, {"User", "1:1"}, {"Hostname", "web"}}, {},
                                  image_with({{"WorkingDir", "/srv"}, {"User", "app"}})));
  EXPECT_EQ(o.cwd, "/w");
  EXPECT_EQ(o.user, "1:1");
  EXPECT_EQ(o.hostname, "web");
  EXPECT_EQ(effective_config(input({{"Cmd", {"x"}}})).cwd, "/");
  EXPECT_THROW(effective_config(input({{"Cmd", {"x"}}, {"WorkingDir", "rel"}})), Error);
}

TEST(OciSpecMerge, MergeConfigUnionsLabelsVolumesPortsAndHealthcheck) {
  json merged = berth::engine::merge_config(
      {{"Labels", {{"a", "user"}}}, {"Volumes", {{"/u", json::object()}}}, {"Healthcheck", {{"Interval", 5}}}},
      image_with({{"Labels", {{"a", "img"}, {"b", "img"}}},
                  {"Volumes", {{"/data", json::object()}}},
                  {"ExposedPorts", {{"80/tcp", json::object()}}},
                  {"Healthcheck", {{"Test", {"CMD", "true"}}, {"Interval", 1}, {"Retries", 3}}},
                  {"StopSignal", "SIGQUIT"}}));
  EXPECT_EQ(merged["Labels"], (json{{"a", "user"}, {"b", "img"}}));
  EXPECT_TRUE(merged["Volumes"].contains("/data"));
  EXPECT_TRUE(merged["Volumes"].contains("/u"));
  EXPECT_TRUE(merged["ExposedPorts"].contains("80/tcp"));
  EXPECT_EQ(merged["Healthcheck"]["Interval"], 5);
  EXPECT_EQ(merged["Healthcheck"]["Retries"], 3);
  EXPECT_EQ(merged["Healthcheck"]["Test"], (json{"CMD", "true"}));
  EXPECT_EQ(merged["StopSignal"], "SIGQUIT");
}

TEST(OciSpecUser, ResolvesNamesNumbersAndGroups) {
  const std::string passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
  const std::string group = "root:x:0:\nwheel:x:10:app,other\naudio:x:29:app\napp:x:1000:\nstaff:x:50:\n";
  auto root = resolve_user("", passwd, group);
  EXPECT_EQ(root.uid, 0u);
  EXPECT_EQ(root.gid, 0u);
  EXPECT_EQ(root.additional_gids, (std::vector<uint32_t>{0}));
  EXPECT_EQ(root.home, "/root");
  auto app = resolve_user("app", passwd, group);
  EXPECT_EQ(app.uid, 1000u);
  EXPECT_EQ(app.gid, 1000u);
  EXPECT_EQ(app.additional_gids, (std::vector<uint32_t>{1000, 10, 29}));
  auto by_uid = resolve_user("1000", passwd, group);
  EXPECT_EQ(by_uid.gid, 1000u);
  auto group_named = resolve_user("app:staff", passwd, group);
  EXPECT_EQ(group_named.gid, 50u);
  EXPECT_EQ(group_named.additional_gids, (std::vector<uint32_t>{50}));  // an explicit group: no supplementary ones
  auto numeric = resolve_user("4242:4343", passwd, group);
  EXPECT_EQ(numeric.uid, 4242u);
  EXPECT_EQ(numeric.gid, 4343u);
  auto numeric_only_uid = resolve_user("4242", "", "");
  EXPECT_EQ(numeric_only_uid.uid, 4242u);
  EXPECT_EQ(numeric_only_uid.gid, 0u);
  auto added = resolve_user("app", passwd, group, {"staff", "777", "wheel"});
  EXPECT_EQ(added.additional_gids, (std::vector<uint32_t>{1000, 10, 29, 50, 777}));
}

TEST(OciSpecUser, UnknownUserAndGroupErrors) {
  try {
    resolve_user("nobody", "root:x:0:0::/root:/bin/sh\n", "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unable to find user nobody: no matching entries in passwd file");
  }
  try {
    resolve_user("0:nogroup", "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unable to find group nogroup: no matching entries in group file");
  }
  try {
    resolve_user("", "", "", {"ghosts"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "Unable to find group ghosts: no matching entries in group file");
  }
  EXPECT_THROW(resolve_user("-5", "", ""), Error);
}

TEST(OciSpecUser, FromRootfsFiles) {
  TempRootfs root;
  SpecInput in = input({{"Cmd", {"id"}}, {"User", "app"}}, {{"GroupAdd", {"staff"}}});
  in.rootfs = root.path();
  json spec = build_oci_spec(in);
  EXPECT_EQ(spec["process"]["user"]["uid"], 1000);
  EXPECT_EQ(spec["process"]["user"]["gid"], 1000);
  EXPECT_EQ(spec["process"]["user"]["additionalGids"], (json{1000, 10, 29, 50}));
  in.config["User"] = "ghost";
  EXPECT_THROW(build_oci_spec(in), Error);
  // A symlinked /etc/passwd is resolved inside the rootfs, never on the host.
  std::filesystem::remove(root.path() + "/etc/passwd");
  std::filesystem::create_symlink("/etc/../../../etc/hostpasswd", root.path() + "/etc/passwd");
  root.write("etc/hostpasswd", "app:x:77:77::/:/bin/sh\n");
  in.config["User"] = "app";
  EXPECT_EQ(build_oci_spec(in)["process"]["user"]["uid"], 77);
}

TEST(OciSpecCaps, DefaultsAddDropAllPrivileged) {
  auto def = effective_capabilities({}, {}, false);
  EXPECT_EQ(def.size(), 14u);
  EXPECT_TRUE(has(def, "CAP_NET_RAW"));
  EXPECT_FALSE(has(def, "CAP_SYS_ADMIN"));
  auto changed = effective_capabilities({"sys_admin", "CAP_NET_ADMIN"}, {"net_raw", "Cap_Chown"}, false);
  EXPECT_TRUE(has(changed, "CAP_SYS_ADMIN"));
  EXPECT_TRUE(has(changed, "CAP_NET_ADMIN"));
  EXPECT_FALSE(has(changed, "CAP_NET_RAW"));
  EXPECT_FALSE(has(changed, "CAP_CHOWN"));
  EXPECT_EQ(changed.size(), 14u);
  auto only = effective_capabilities({"NET_BIND_SERVICE"}, {"ALL"}, false);
  EXPECT_EQ(only, (std::vector<std::string>{"CAP_NET_BIND_SERVICE"}));
  auto all_but = effective_capabilities({"all"}, {"SYS_ADMIN"}, false);
  EXPECT_EQ(all_but.size(), berth::engine::all_capabilities().size() - 1);
  EXPECT_FALSE(has(all_but, "CAP_SYS_ADMIN"));
  EXPECT_EQ(effective_capabilities({}, {"ALL"}, true), berth::engine::all_capabilities());
  try {
    effective_capabilities({"FLY"}, {}, false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown capability: \"CAP_FLY\"");
  }
}

TEST(OciSpecCaps, InSpec) {
  json spec = build_oci_spec(input({{"Cmd", {"x"}}}, {{"CapAdd", {"SYS_PTRACE"}}, {"CapDrop", {"MKNOD"}}}));
  const json& caps = spec["process"]["capabilities"];
  EXPECT_EQ(caps["bounding"], caps["effective"]);
  EXPECT_EQ(caps["bounding"], caps["permitted"]);
  EXPECT_FALSE(caps.contains("inheritable"));  // empty inheritable set, as moby since CVE-2022-24769
  auto b = caps["bounding"].get<std::vector<std::string>>();
  EXPECT_TRUE(has(b, "CAP_SYS_PTRACE"));
  EXPECT_FALSE(has(b, "CAP_MKNOD"));
}

TEST(OciSpecSeccomp, DefaultProfileForAmd64) {
  json spec = build_oci_spec(input({{"Cmd", {"x"}}}));
  const json& s = spec["linux"]["seccomp"];
  EXPECT_EQ(s["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(s["defaultErrnoRet"], 1);
  EXPECT_EQ(s["architectures"], (json{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
  auto allowed = syscalls_allowed(s);
  EXPECT_TRUE(has(allowed, "read"));
  EXPECT_TRUE(has(allowed, "arch_prctl"));           // includes.arches amd64
  EXPECT_FALSE(has(allowed, "s390_runtime_instr"));  // s390 only
  EXPECT_TRUE(has(allowed, "ptrace"));               // minKernel 4.8, satisfied by an unknown (new) kernel
  EXPECT_TRUE(has(allowed, "chroot"));               // CAP_SYS_CHROOT is a default capability
  // Allowed only with CAP_SYS_ADMIN: absent by default, and clone3 fails with ENOSYS instead.
  EXPECT_FALSE(has(allowed, "mount"));
  EXPECT_FALSE(has(allowed, "unshare"));
  bool clone3_enosys = false;
  for (const auto& r : s["syscalls"])
    if (r["names"] == json{"clone3"} && r["action"] == "SCMP_ACT_ERRNO" && r["errnoRet"] == 38) clone3_enosys = true;
  EXPECT_TRUE(clone3_enosys);
}

TEST(OciSpecSeccomp, CapAddSysAdminAllowsMount) {
  json spec = build_oci_spec(input({{"Cmd", {"x"}}}, {{"CapAdd", {"SYS_ADMIN"}}}));
  auto allowed = syscalls_allowed(spec["linux"]["seccomp"]);
  EXPECT_TRUE(has(allowed, "mount"));
  EXPECT_TRUE(has(allowed, "clone"));
  for (const auto& r : spec["linux"]["seccomp"]["syscalls"]) EXPECT_NE(r["names"], json{"clone3"}) << r.dump();
}

TEST(OciSpecSeccomp, ConversionRules) {
  json profile = {
      {"defaultAction", "SCMP_ACT_ERRNO"},
      {"archMap", {{{"architecture", "SCMP_ARCH_AARCH64"}, {"subArchitectures", {"SCMP_ARCH_ARM"}}}}},
      {"syscalls",
       {{{"names", {"a"}}, {"action", "SCMP_ACT_ALLOW"}},
        {{"names", {"new"}}, {"action", "SCMP_ACT_ALLOW"}, {"includes", {{"minKernel", "5.10"}}}},
        {{"names", {"old"}}, {"action", "SCMP_ACT_ALLOW"}, {"excludes", {{"minKernel", "5.10"}}}},
        {{"names", {"two_caps"}}, {"action", "SCMP_ACT_ALLOW"}, {"includes", {{"caps", {"CAP_A", "CAP_B"}}}}},
        {{"names", {"not_arm"}}, {"action", "SCMP_ACT_ALLOW"}, {"excludes", {{"arches", {"arm64"}}}}},
        {{"name", "legacy"},
         {"action", "SCMP_ACT_ALLOW"},
         {"args", {{{"index", 0}, {"value", 1}, {"op", "SCMP_CMP_EQ"}}}}}}}};
  json s = berth::engine::seccomp_profile_to_oci(profile, {"CAP_A"}, "arm64", "5.4.0-100-generic");
  EXPECT_EQ(s["architectures"], (json{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"}));
  std::vector<std::string> names;
  for (const auto& r : s["syscalls"]) names.push_back(r["names"][0]);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "old", "legacy"}));
  EXPECT_EQ(s["syscalls"][2]["args"][0]["op"], "SCMP_CMP_EQ");
  json s2 = berth::engine::seccomp_profile_to_oci(profile, {"CAP_A", "CAP_B"}, "amd64", "6.1.0");
  names.clear();
  for (const auto& r : s2["syscalls"]) names.push_back(r["names"][0]);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "new", "two_caps", "not_arm", "legacy"}));
  EXPECT_EQ(s2["architectures"], json::array());
}

TEST(OciSpecSeccomp, NoneWhenPrivilegedOrUnconfinedCustomProfileInline) {
  EXPECT_FALSE(build_oci_spec(input({{"Cmd", {"x"}}}, {{"Privileged", true}}))["linux"].contains("seccomp"));
  EXPECT_FALSE(
      build_oci_spec(input({{"Cmd", {"x"}}}, {{"SecurityOpt", {"seccomp=unconfined"}}}))["linux"].contains("seccomp"));
  json custom = {{"defaultAction", "SCMP_ACT_ALLOW"}, {"syscalls", json::array()}};
  json spec = build_oci_spec(input({{"Cmd", {"x"}}}, {{"SecurityOpt", {"seccomp=" + custom.dump()}}}));
  EXPECT_EQ(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
  EXPECT_THROW(build_oci_spec(input({{"Cmd", {"x"}}}, {{"SecurityOpt", {"bogus=1"}}})), Error);
}

TEST(OciSpecProcess, TerminalEnvInitNoNewPrivsRlimits) {
  SpecInput in =
      input({{"Cmd", {"sh"}}, {"Tty", true}}, {{"Init", true},
                                               {"ConsoleSize", {24, 80}},
                                               {"SecurityOpt", {"no-new-privileges"}},
                                               {"OomScoreAdj", 500},
                                               {"Ulimits", {{{"Name", "nofile"}, {"Soft", 1024}, {"Hard", 2048}}}}});
  in.init_path = "/usr/libexec/berth/docker-init";
  json spec = build_oci_spec(in);
  const json& p = spec["process"];
  EXPECT_EQ(p["terminal"], true);
  EXPECT_EQ(p["consoleSize"], (json{{"height", 24}, {"width", 80}}));
  EXPECT_EQ(p["args"], (json{"/sbin/docker-init", "--", "sh"}));
  EXPECT_EQ(p["noNewPrivileges"], true);
  EXPECT_EQ(p["oomScoreAdj"], 500);
  EXPECT_EQ(p["rlimits"], (json{{{"type", "RLIMIT_NOFILE"}, {"hard", 2048}, {"soft", 1024}}}));
  const json* init = find_mount(spec, "/sbin/docker-init");
  ASSERT_TRUE(init);
  EXPECT_EQ((*init)["source"], "/usr/libexec/berth/docker-init");
  EXPECT_EQ((*init)["options"], (json{"bind", "ro"}));
  in.init_path.clear();
  EXPECT_THROW(build_oci_spec(in), Error);
  json plain = build_oci_spec(input({{"Cmd", {"sh"}}}));
  EXPECT_FALSE(plain["process"].contains("noNewPrivileges"));
  EXPECT_FALSE(plain["process"].contains("rlimits"));
  EXPECT_FALSE(plain["process"].contains("apparmorProfile"));
  EXPECT_EQ(plain["hostname"], "0123456789ab");
}

TEST(OciSpecMounts, DefaultsUserMountsEtcFilesAndOverrides) {
  SpecInput in = input({{"Cmd", {"x"}}}, {{"ShmSize", 1 << 20}});
  in.mounts = {{"/data/sub", "bind", "/host/sub", {"rbind", "rprivate"}},
               {"/data", "bind", "/host/data", {"rbind", "ro", "rprivate"}},
               {"/run", "tmpfs", "tmpfs", {"nosuid", "nodev", "size=1048576"}}};
  in.hosts_path = "/c/hosts";
  in.resolv_conf_path = "/c/resolv.conf";
  in.hostname_path = "/c/hostname";
  json spec = build_oci_spec(in);
  std::vector<std::string> dsts;
  for (const auto& m : spec["mounts"]) dsts.push_back(m["destination"]);
  EXPECT_EQ(dsts, (std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                                            "/dev/shm", "/data", "/run", "/data/sub", "/etc/resolv.conf",
                                            "/etc/hostname", "/etc/hosts"}));
  EXPECT_EQ((*find_mount(spec, "/dev/shm"))["options"],
            (json{"nosuid", "noexec", "nodev", "mode=1777", "size=1048576"}));
  EXPECT_EQ((*find_mount(spec, "/sys"))["options"], (json{"nosuid", "noexec", "nodev", "ro"}));
  EXPECT_EQ((*find_mount(spec, "/etc/hosts"))["options"], (json{"rbind", "rprivate"}));
  EXPECT_EQ((*find_mount(spec, "/dev/pts"))["options"],
            (json{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));

  // A user mount at a default's destination replaces it; one at /dev replaces /dev/*; one at
  // /etc/hosts wins over the engine's file.
  SpecInput over = input({{"Cmd", {"x"}}}, {{"ReadonlyRootfs", true}});
  over.mounts = {{"/dev/shm", "bind", "/host/shm", {"rbind"}}, {"/etc/hosts", "bind", "/my/hosts", {"rbind", "ro"}}};
  over.hosts_path = "/c/hosts";
  over.resolv_conf_path = "/c/resolv.conf";
  json s2 = build_oci_spec(over);
  EXPECT_EQ((*find_mount(s2, "/dev/shm"))["source"], "/host/shm");
  EXPECT_EQ((*find_mount(s2, "/etc/hosts"))["source"], "/my/hosts");
  EXPECT_EQ((*find_mount(s2, "/etc/resolv.conf"))["options"], (json{"rbind", "rprivate", "ro"}));
  EXPECT_EQ(find_mount(s2, "/etc/hostname"), nullptr);
  int shm = 0;
  for (const auto& m : s2["mounts"]) shm += m["destination"] == "/dev/shm";
  EXPECT_EQ(shm, 1);
  EXPECT_EQ(s2["root"], (json{{"path", "rootfs"}, {"readonly", true}}));
  SpecInput dev = input({{"Cmd", {"x"}}});
  dev.mounts = {{"/dev", "bind", "/dev", {"rbind"}}};
  json s3 = build_oci_spec(dev);
  EXPECT_EQ(find_mount(s3, "/dev/pts"), nullptr);
  EXPECT_EQ(find_mount(s3, "/dev/shm"), nullptr);
  EXPECT_EQ((*find_mount(s3, "/dev"))["source"], "/dev");
  // --ipc none: no /dev/shm at all.
  EXPECT_EQ(find_mount(build_oci_spec(input({{"Cmd", {"x"}}}, {{"IpcMode", "none"}})), "/dev/shm"), nullptr);
}

TEST(OciSpecLinux, NamespacesByModes) {
  json def = build_oci_spec(input({{"Cmd", {"x"}}}, {{"NetworkMode", "none"}}));
  for (const char* ns : {"mount", "network", "uts", "pid", "ipc", "cgroup"}) EXPECT_TRUE(has_ns(def, ns)) << ns;
  EXPECT_FALSE(has_ns(def, "user"));
  json host = build_oci_spec(input({{"Cmd", {"x"}}}, {{"NetworkMode", "host"}}));
  EXPECT_FALSE(has_ns(host, "network"));
  EXPECT_TRUE(has_ns(host, "uts"));
  EXPECT_FALSE(host["linux"].contains("sysctl"));
  EXPECT_EQ(def["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"], "0");
  json modes = build_oci_spec(input(
      {{"Cmd", {"x"}}}, {{"PidMode", "host"}, {"IpcMode", "host"}, {"UTSMode", "host"}, {"CgroupnsMode", "host"}}));
  EXPECT_FALSE(has_ns(modes, "pid"));
  EXPECT_FALSE(has_ns(modes, "ipc"));
  EXPECT_FALSE(has_ns(modes, "uts"));
  EXPECT_FALSE(has_ns(modes, "cgroup"));
  EXPECT_FALSE(modes.contains("hostname"));  // no hostname without a UTS namespace
  EXPECT_THROW(build_oci_spec(input({{"Cmd", {"x"}}}, {{"NetworkMode", "container:db"}})), Error);
  SpecInput joined = input({{"Cmd", {"x"}}}, {{"NetworkMode", "container:db"}});
  joined.netns_path = "/proc/42/ns/net";
  bool found = false;
  const json joined_spec = build_oci_spec(joined);
  for (const auto& n : joined_spec["linux"]["namespaces"])
    if (n["type"] == "network") found = n["path"] == "/proc/42/ns/net";
  EXPECT_TRUE(found);
}

TEST(OciSpecLinux, ResourcesSysctlsMaskedPaths) {
  json spec = build_oci_spec(input({{"Cmd", {"x"}}}, {{"Memory", 64 << 20},
                                                      {"NanoCpus", 1500000000},
                                                      {"CpuShares", 512},
                                                      {"PidsLimit", 100},
                                                      {"OomKillDisable", true},
                                                      {"BlkioWeight", 300},
                                                      {"Sysctls", {{"net.core.somaxconn", "1024"}}}}));
  const json& r = spec["linux"]["resources"];
  EXPECT_EQ(r["memory"]["limit"], 64 << 20);
  EXPECT_EQ(r["memory"]["swap"], 128 << 20);  // the daemon's default: swap = 2 × memory
  EXPECT_EQ(r["memory"]["disableOOMKiller"], true);
  EXPECT_EQ(r["cpu"]["quota"], 150000);
  EXPECT_EQ(r["cpu"]["period"], 100000);
  EXPECT_EQ(r["cpu"]["shares"], 512);
  EXPECT_EQ(r["pids"]["limit"], 100);
  EXPECT_EQ(r["blockIO"]["weight"], 300);
  EXPECT_EQ(r["devices"][0], (json{{"allow", false}, {"access", "rwm"}}));
  EXPECT_EQ(spec["linux"]["sysctl"]["net.core.somaxconn"], "1024");
  EXPECT_TRUE(has(spec["linux"]["maskedPaths"].get<std::vector<std::string>>(), "/proc/kcore"));
  EXPECT_TRUE(has(spec["linux"]["readonlyPaths"].get<std::vector<std::string>>(), "/proc/sys"));
  EXPECT_EQ(spec["linux"]["cgroupsPath"], "/berth/" + kId);
  json unlimited = build_oci_spec(input({{"Cmd", {"x"}}}, {{"Memory", 64 << 20}, {"MemorySwap", -1}}));
  EXPECT_EQ(unlimited["linux"]["resources"]["memory"]["swap"], -1);
  json none = build_oci_spec(input({{"Cmd", {"x"}}}));
  EXPECT_FALSE(none["linux"]["resources"].contains("memory"));
  EXPECT_FALSE(none["linux"]["resources"].contains("cpu"));
}

TEST(OciSpecLinux, PrivilegedAndSystemPaths) {
  json spec = build_oci_spec(input({{"Cmd", {"x"}}}, {{"Privileged", true}}));
  EXPECT_FALSE(spec["linux"].contains("maskedPaths"));
  EXPECT_FALSE(spec["linux"].contains("readonlyPaths"));
  EXPECT_EQ(spec["linux"]["resources"]["devices"], (json{{{"allow", true}, {"access", "rwm"}}}));
  EXPECT_EQ((*find_mount(spec, "/sys"))["options"], (json{"nosuid", "noexec", "nodev"}));
  EXPECT_EQ(spec["process"]["capabilities"]["bounding"].size(), berth::engine::all_capabilities().size());
  json sp = build_oci_spec(input({{"Cmd", {"x"}}}, {{"SecurityOpt", {"systempaths=unconfined"}}}));
  EXPECT_FALSE(sp["linux"].contains("maskedPaths"));
}

TEST(OciSpecLinux, Devices) {
  SpecInput in = input({{"Cmd", {"x"}}});
  in.devices = {{"/dev/fuse", "c", 10, 229, 0666, 0, 0, "rwm"}};
  json spec = build_oci_spec(in);
  EXPECT_EQ(spec["linux"]["devices"][0]["path"], "/dev/fuse");
  EXPECT_EQ(spec["linux"]["resources"]["devices"].back(),
            (json{{"allow", true}, {"type", "c"}, {"major", 10}, {"minor", 229}, {"access", "rwm"}}));
}

TEST(OciSpecRuntime, BuiltSpecParsesWithTheRuntime) {
  TempRootfs root;
  SpecInput in = input({{"Cmd", {"sh"}}, {"User", "app"}, {"Env", {"A=1"}}, {"Tty", true}, {"WorkingDir", "/tmp"}},
                       {{"Memory", 64 << 20},
                        {"NanoCpus", 500000000},
                        {"PidsLimit", 50},
                        {"ReadonlyRootfs", true},
                        {"CapAdd", {"SYS_ADMIN"}},
                        {"Init", true},
                        {"Ulimits", {{{"Name", "nproc"}, {"Soft", 10}, {"Hard", 20}}}}});
  in.rootfs = root.path();
  in.arch.clear();  // the host's
  in.init_path = "/usr/bin/docker-init";
  in.mounts = {{"/data", "bind", "/tmp", {"rbind", "rprivate"}}};
  in.hosts_path = "/tmp/hosts";
  json doc = build_oci_spec(in);
  berth::runtime::Spec spec = berth::runtime::parse_spec(doc.dump());
  ASSERT_TRUE(spec.process);
  EXPECT_EQ(spec.process->user.uid, 1000u);
  EXPECT_TRUE(spec.process->terminal);
  EXPECT_EQ(spec.process->cwd, "/tmp");
  EXPECT_TRUE(spec.root_readonly);
  EXPECT_EQ(spec.root_path, "rootfs");
  ASSERT_TRUE(spec.linux_ && spec.linux_->seccomp);
  EXPECT_FALSE(spec.linux_->seccomp->architectures.empty());
  EXPECT_EQ(spec.linux_->resources->pids_limit, 50);
  EXPECT_EQ(spec.process->rlimits.at(0).type, "RLIMIT_NPROC");
  EXPECT_NE(berth::runtime::find_namespace(spec, "network"), nullptr);
  // Privileged and host-network variants parse too.
  berth::runtime::parse_spec(build_oci_spec(input({{"Cmd", {"x"}}}, {{"Privileged", true}, {"NetworkMode", "host"}})));
}

TEST(OciSpecMounts, PlanMountFromParsedFlags) {
  using berth::engine::plan_mount;
  namespace storage = berth::storage;
  auto bind = plan_mount(storage::parse_volume_flag("/host:/data:ro"), "/host");
  EXPECT_EQ(bind.type, "bind");
  EXPECT_EQ(bind.source, "/host");
  EXPECT_EQ(bind.destination, "/data");
  EXPECT_EQ(bind.options, (std::vector<std::string>{"rbind", "ro", "rprivate"}));
  auto shared =
      plan_mount(storage::parse_mount_flag("type=bind,src=/s,dst=/d,bind-propagation=rshared,bind-nonrecursive"), "/s");
  EXPECT_EQ(shared.options, (std::vector<std::string>{"bind", "rshared"}));
  auto rro = plan_mount(storage::parse_mount_flag("type=bind,src=/s,dst=/d,readonly,bind-recursive=readonly"), "/s");
  EXPECT_EQ(rro.options, (std::vector<std::string>{"rbind", "ro", "rro", "rprivate"}));
  auto vol = plan_mount(storage::parse_volume_flag("data:/var/lib/db"), "/var/lib/berth/volumes/data/_data");
  EXPECT_EQ(vol.options, (std::vector<std::string>{"rbind", "rprivate"}));
  auto tmp = plan_mount(storage::parse_tmpfs_flag("/run:exec,size=64m,mode=1770"));
  EXPECT_EQ(tmp.type, "tmpfs");
  EXPECT_EQ(tmp.source, "tmpfs");
  EXPECT_EQ(tmp.options,
            (std::vector<std::string>{"exec", "nosuid", "nodev", "rprivate", "size=67108864", "mode=1770"}));
  auto mounted = plan_mount(storage::parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=1m,readonly"));
  EXPECT_EQ(mounted.options, (std::vector<std::string>{"noexec", "nosuid", "nodev", "rprivate", "size=1048576", "ro"}));
}

TEST(OciSpecLinux, AnnotationsPropagationCgroupnsDefaultBuiltinSeccomp) {
  SpecInput in = input({{"Cmd", {"x"}}}, {{"Annotations", {{"a", "b"}}}, {"SecurityOpt", {"seccomp=builtin"}}});
  in.mounts = {{"/m", "bind", "/m", {"rbind", "rshared"}}};
  in.default_cgroupns = "host";
  json spec = build_oci_spec(in);
  EXPECT_EQ(spec["annotations"], (json{{"a", "b"}}));
  EXPECT_EQ(spec["linux"]["rootfsPropagation"], "rshared");
  EXPECT_FALSE(has_ns(spec, "cgroup"));
  EXPECT_EQ(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
  in.host_config["CgroupnsMode"] = "private";
  EXPECT_TRUE(has_ns(build_oci_spec(in), "cgroup"));
  EXPECT_FALSE(build_oci_spec(input({{"Cmd", {"x"}}}))["linux"].contains("rootfsPropagation"));
}
