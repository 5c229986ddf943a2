// `berth create`/`berth run` flags → docker's ContainerCreate body (cli/container_flags.cpp).
#include "cli/container_flags.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace berth::cli;
using nlohmann::json;

namespace {

json body(std::vector<std::string> args, bool run = true, const std::string& cwd = "/work") {
  args.insert(args.begin(), "run");
  ParsedArgs p = parse_args(args, 1, container_create_flags(run), false);
  return create_body_from_flags(p, run, cwd);
}

std::string error_of(std::vector<std::string> args, bool run = true) {
  try {
    body(std::move(args), run);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/berth-cflags-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    path_ = tmpl;
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

TEST(ContainerFlags, FlagSetsDifferForRunAndCreate) {
  auto has = [](const std::vector<FlagSpec>& f, const std::string& n) {
    for (const auto& s : f)
      if (s.name == n) return true;
    return false;
  };
  auto run = container_create_flags(true), create = container_create_flags(false);
  for (const char* n : {"detach", "sig-proxy", "detach-keys"}) {
    EXPECT_TRUE(has(run, n)) << n;
    EXPECT_FALSE(has(create, n)) << n;
  }
  for (const char* n : {"rm", "name", "volume", "mount", "tmpfs", "restart", "env-file", "health-cmd", "ulimit"})
    EXPECT_TRUE(has(create, n)) << n;
}

TEST(ContainerFlags, ImageCommandAndDefaults) {
  json b = body({"busybox", "sh", "-c", "echo hi"});
  EXPECT_EQ(b["Name"], "");
  EXPECT_EQ(b["Config"]["Image"], "busybox");
  EXPECT_EQ(b["Config"]["Cmd"], (json{"sh", "-c", "echo hi"}));
  EXPECT_FALSE(b["Config"].contains("Entrypoint"));
  EXPECT_EQ(b["Config"]["AttachStdout"], true);
  EXPECT_EQ(b["Config"]["AttachStderr"], true);
  EXPECT_EQ(b["Config"]["AttachStdin"], false);
  EXPECT_EQ(b["HostConfig"]["RestartPolicy"], (json{{"Name", "no"}, {"MaximumRetryCount", 0}}));
  EXPECT_EQ(b["HostConfig"]["NetworkMode"], "default");
  EXPECT_EQ(b["HostConfig"]["Binds"], nullptr);
  EXPECT_EQ(b["HostConfig"]["LogConfig"], (json{{"Type", ""}, {"Config", json::object()}}));
  EXPECT_FALSE(body({"busybox"})["Config"].contains("Cmd"));
  // Flags after the image belong to the command.
  EXPECT_EQ(body({"busybox", "ls", "-l", "--rm"})["Config"]["Cmd"], (json{"ls", "-l", "--rm"}));
  EXPECT_EQ(error_of({}), "\"berth run\" requires at least 1 argument.");
}

TEST(ContainerFlags, EntrypointResetAndGiven) {
  EXPECT_EQ(body({"--entrypoint", "", "img"})["Config"]["Entrypoint"], (json{""}));
  EXPECT_EQ(body({"--entrypoint=/bin/sh", "img", "-c", "x"})["Config"]["Entrypoint"], (json{"/bin/sh"}));
}

TEST(ContainerFlags, StreamsTtyInteractiveDetach) {
  json it = body({"-it", "img"});
  EXPECT_EQ(it["Config"]["Tty"], true);
  EXPECT_EQ(it["Config"]["OpenStdin"], true);
  EXPECT_EQ(it["Config"]["AttachStdin"], true);
  EXPECT_EQ(it["Config"]["StdinOnce"], true);
  json d = body({"-d", "-i", "--rm", "img"});
  EXPECT_EQ(d["Config"]["AttachStdin"], false);
  EXPECT_EQ(d["Config"]["AttachStdout"], false);
  EXPECT_EQ(d["Config"]["AttachStderr"], false);
  EXPECT_EQ(d["Config"]["StdinOnce"], false);
  EXPECT_EQ(d["Config"]["OpenStdin"], true);
  EXPECT_EQ(d["HostConfig"]["AutoRemove"], true);
  json c = body({"-i", "img"}, false);
  EXPECT_EQ(c["Config"]["AttachStdin"], true);
  EXPECT_EQ(c["Config"]["AttachStdout"], true);
  json a = body({"-a", "stderr", "img"});
  EXPECT_EQ(a["Config"]["AttachStdout"], false);
  EXPECT_EQ(a["Config"]["AttachStderr"], true);
  EXPECT_EQ(error_of({"-a", "stdout", "-d", "img"}), "Conflicting options: -a and -d");
  EXPECT_EQ(error_of({"-a", "foo", "img"}),
            "invalid argument \"foo\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR");
}

TEST(ContainerFlags, NameValidity) {
  EXPECT_EQ(body({"--name", "web_1.a-b", "img"})["Name"], "web_1.a-b");
  EXPECT_EQ(error_of({"--name", "bad name", "img"}),
            "Invalid container name (bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  EXPECT_EQ(error_of({"--name", "-x", "img"}),
            "Invalid container name (-x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  EXPECT_EQ(error_of({"--name", "a", "img"}), "Invalid container name (a), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
}

TEST(ContainerFlags, EnvAndEnvFile) {
  ::setenv("BERTH_CFLAGS_TEST", "from-env", 1);
  ::unsetenv("BERTH_CFLAGS_UNSET");
  TempFile f("# comment\n\nA=1\n  B=two words \nBERTH_CFLAGS_TEST\nBERTH_CFLAGS_UNSET\n");
  json b = body({"--env-file", f.path(), "-e", "C=3", "-e", "BERTH_CFLAGS_TEST", "-e", "BERTH_CFLAGS_UNSET", "img"});
  EXPECT_EQ(b["Config"]["Env"], (json{"A=1", "B=two words ", "BERTH_CFLAGS_TEST=from-env", "C=3",
                                      "BERTH_CFLAGS_TEST=from-env", "BERTH_CFLAGS_UNSET"}));
  EXPECT_EQ(error_of({"--env-file", "/nonexistent/env", "img"}), "open /nonexistent/env: no such file or directory");
  EXPECT_EQ(error_of({"-e", "=x", "img"}), "invalid environment variable: =x");
  TempFile bad("A B=1\n");
  EXPECT_EQ(error_of({"--env-file", bad.path(), "img"}), "variable 'A B' contains whitespaces");
}

TEST(ContainerFlags, LabelsAndLabelFile) {
  TempFile f("a=file\nb=file\nflag\n");
  json b = body({"--label-file", f.path(), "-l", "a=flag", "--label", "c=", "img"});
  EXPECT_EQ(b["Config"]["Labels"], (json{{"a", "flag"}, {"b", "file"}, {"flag", ""}, {"c", ""}}));
  EXPECT_EQ(error_of({"-l", "=x", "img"}), "invalid label '=x': empty name");
}

TEST(ContainerFlags, IdentityAndMisc) {
  json b = body({"-u",
                 "1000:1000",
                 "-w",
                 "/srv",
                 "-h",
                 "web",
                 "--domainname",
                 "example.com",
                 "--stop-signal",
                 "SIGQUIT",
                 "--stop-timeout",
                 "30",
                 "--init",
                 "--privileged",
                 "--read-only",
                 "--cap-add",
                 "NET_ADMIN",
                 "--cap-drop",
                 "ALL",
                 "--group-add",
                 "audio",
                 "--oom-kill-disable",
                 "--oom-score-adj",
                 "-500",
                 "img"});
  const json& c = b["Config"];
  const json& h = b["HostConfig"];
  EXPECT_EQ(c["User"], "1000:1000");
  EXPECT_EQ(c["WorkingDir"], "/srv");
  EXPECT_EQ(c["Hostname"], "web");
  EXPECT_EQ(c["Domainname"], "example.com");
  EXPECT_EQ(c["StopSignal"], "SIGQUIT");
  EXPECT_EQ(c["StopTimeout"], 30);
  EXPECT_EQ(h["Init"], true);
  EXPECT_EQ(h["Privileged"], true);
  EXPECT_EQ(h["ReadonlyRootfs"], true);
  EXPECT_EQ(h["CapAdd"], (json{"NET_ADMIN"}));
  EXPECT_EQ(h["CapDrop"], (json{"ALL"}));
  EXPECT_EQ(h["GroupAdd"], (json{"audio"}));
  EXPECT_EQ(h["OomKillDisable"], true);
  EXPECT_EQ(h["OomScoreAdj"], -500);
  EXPECT_FALSE(body({"img"})["HostConfig"].contains("Init"));
  EXPECT_EQ(error_of({"-w", "rel/dir", "img"}),
            "the working directory 'rel/dir' is invalid, it needs to be an absolute path");
  EXPECT_EQ(error_of({"--oom-score-adj", "2000", "img"}),
            "Invalid value 2000, range for oom score adj is [-1000, 1000]");
  EXPECT_EQ(error_of({"--stop-timeout", "x", "img"}),
            "invalid argument \"x\" for \"--stop-timeout\" flag: strconv.ParseInt: parsing \"x\": invalid syntax");
}

TEST(ContainerFlags, RestartPolicy) {
  EXPECT_EQ(body({"--restart", "on-failure:3", "img"})["HostConfig"]["RestartPolicy"],
            (json{{"Name", "on-failure"}, {"MaximumRetryCount", 3}}));
  EXPECT_EQ(body({"--restart", "always", "img"})["HostConfig"]["RestartPolicy"]["Name"], "always");
  EXPECT_EQ(body({"--restart", "unless-stopped", "img"})["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
  EXPECT_EQ(error_of({"--restart", "on-failure:x", "img"}),
            "invalid restart policy format: maximum retry count must be an integer");
  EXPECT_EQ(error_of({"--restart", ":3", "img"}), "invalid restart policy format: no policy provided before colon");
  EXPECT_EQ(error_of({"--restart", "sometimes", "img"}),
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or "
            "'unless-stopped'");
  EXPECT_EQ(error_of({"--restart", "always:2", "img"}),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'");
  EXPECT_EQ(error_of({"--restart", "always", "--rm", "img"}),
            "conflicting options: cannot specify both --restart and --rm");
  EXPECT_EQ(body({"--restart", "no", "--rm", "img"})["HostConfig"]["AutoRemove"], true);
}

TEST(ContainerFlags, Resources) {
  json b = body({"-m",
                 "512m",
                 "--memory-swap",
                 "1g",
                 "--memory-reservation",
                 "256m",
                 "--cpus",
                 "1.5",
                 "-c",
                 "512",
                 "--pids-limit",
                 "100",
                 "--shm-size",
                 "128m",
                 "--cpuset-cpus",
                 "0-1",
                 "--blkio-weight",
                 "300",
                 "--memory-swappiness",
                 "10",
                 "img"});
  const json& h = b["HostConfig"];
  EXPECT_EQ(h["Memory"], 512LL << 20);
  EXPECT_EQ(h["MemorySwap"], 1LL << 30);
  EXPECT_EQ(h["MemoryReservation"], 256LL << 20);
  EXPECT_EQ(h["NanoCpus"], 1500000000);
  EXPECT_EQ(h["CpuShares"], 512);
  EXPECT_EQ(h["PidsLimit"], 100);
  EXPECT_EQ(h["ShmSize"], 128LL << 20);
  EXPECT_EQ(h["CpusetCpus"], "0-1");
  EXPECT_EQ(h["BlkioWeight"], 300);
  EXPECT_EQ(h["MemorySwappiness"], 10);
  EXPECT_EQ(body({"-m", "1g", "--memory-swap", "-1", "img"})["HostConfig"]["MemorySwap"], -1);
  EXPECT_EQ(body({"--cpus", "0.25", "img"})["HostConfig"]["NanoCpus"], 250000000);
  EXPECT_EQ(error_of({"-m", "lots", "img"}),
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'");
  EXPECT_EQ(error_of({"--shm-size", "x1", "img"}),
            "invalid argument \"x1\" for \"--shm-size\" flag: invalid size: 'x1'");
  EXPECT_EQ(error_of({"--cpus", "abc", "img"}),
            "invalid argument \"abc\" for \"--cpus\" flag: failed to parse abc as a rational number");
  EXPECT_EQ(error_of({"--cpus", "0.0000000001", "img"}),
            "invalid argument \"0.0000000001\" for \"--cpus\" flag: value is too precise");
  EXPECT_EQ(error_of({"-m", "1m", "img"}), "Minimum memory limit allowed is 6MB");
  EXPECT_EQ(error_of({"-m", "1g", "--memory-swap", "512m", "img"}),
            "Minimum memoryswap limit should be larger than memory limit, see usage");
  EXPECT_EQ(error_of({"--memory-swappiness", "101", "img"}),
            "invalid value: 101. Valid memory swappiness range is 0-100");
  EXPECT_EQ(error_of({"--cpus", "1", "--cpu-period", "1000", "img"}),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set");
}

TEST(ContainerFlags, Ulimits) {
  json b = body({"--ulimit", "nofile=1024:2048", "--ulimit", "nproc=50", "--ulimit", "nofile=10:20", "img"});
  EXPECT_EQ(b["HostConfig"]["Ulimits"],
            (json{{{"Name", "nofile"}, {"Soft", 10}, {"Hard", 20}}, {{"Name", "nproc"}, {"Soft", 50}, {"Hard", 50}}}));
  EXPECT_EQ(error_of({"--ulimit", "nofile", "img"}),
            "invalid argument \"nofile\" for \"--ulimit\" flag: invalid ulimit argument: nofile");
  EXPECT_EQ(error_of({"--ulimit", "bogus=1", "img"}),
            "invalid argument \"bogus=1\" for \"--ulimit\" flag: invalid ulimit type: bogus");
  EXPECT_EQ(error_of({"--ulimit", "nofile=20:10", "img"}),
            "invalid argument \"nofile=20:10\" for \"--ulimit\" flag: ulimit soft limit must be less than or equal to "
            "hard limit: 20 > 10");
  EXPECT_EQ(body({"--ulimit", "core=-1", "img"})["HostConfig"]["Ulimits"][0]["Hard"], -1);
}

TEST(ContainerFlags, Healthcheck) {
  json b = body({"--health-cmd", "curl -f http://localhost/", "--health-interval", "30s", "--health-timeout", "1m30s",
                 "--health-start-period", "500ms", "--health-retries", "3", "img"});
  EXPECT_EQ(b["Config"]["Healthcheck"], (json{{"Test", {"CMD-SHELL", "curl -f http://localhost/"}},
                                              {"Interval", 30000000000LL},
                                              {"Timeout", 90000000000LL},
                                              {"StartPeriod", 500000000},
                                              {"Retries", 3}}));
  EXPECT_EQ(body({"--no-healthcheck", "img"})["Config"]["Healthcheck"], (json{{"Test", {"NONE"}}}));
  EXPECT_FALSE(body({"img"})["Config"].contains("Healthcheck"));
  EXPECT_EQ(error_of({"--no-healthcheck", "--health-cmd", "x", "img"}),
            "--no-healthcheck conflicts with --health-* options");
  EXPECT_EQ(error_of({"--health-interval", "5", "img"}),
            "invalid argument \"5\" for \"--health-interval\" flag: time: missing unit in duration \"5\"");
  EXPECT_EQ(error_of({"--health-interval", "-1s", "img"}), "--health-interval cannot be negative");
  EXPECT_EQ(error_of({"--health-timeout", "3x", "img"}),
            "invalid argument \"3x\" for \"--health-timeout\" flag: time: unknown unit \"x\" in duration \"3x\"");
}

TEST(ContainerFlags, GoDurations) {
  EXPECT_EQ(parse_go_duration("0"), 0);
  EXPECT_EQ(parse_go_duration("1h2m3s"), (3600 + 120 + 3) * 1000000000LL);
  EXPECT_EQ(parse_go_duration("1.5s"), 1500000000);
  EXPECT_EQ(parse_go_duration(".5ms"), 500000);
  EXPECT_EQ(parse_go_duration("10us"), 10000);
  EXPECT_EQ(parse_go_duration("-2ns"), -2);
  EXPECT_THROW(parse_go_duration(""), UsageError);
  EXPECT_THROW(parse_go_duration("s"), UsageError);
  EXPECT_THROW(parse_go_duration("3000000h"), UsageError);
}

TEST(ContainerFlags, NanoCpus) {
  EXPECT_EQ(parse_nano_cpus("2"), 2000000000);
  EXPECT_EQ(parse_nano_cpus("0.001"), 1000000);
  EXPECT_EQ(parse_nano_cpus("3/2"), 1500000000);
  EXPECT_EQ(parse_nano_cpus("1e-3"), 1000000);
  EXPECT_THROW(parse_nano_cpus("1.2.3"), UsageError);
  EXPECT_THROW(parse_nano_cpus(""), UsageError);
}

TEST(ContainerFlags, VolumesMountsTmpfs) {
  json b = body({"-v",
                 "/host/data:/data:ro",
                 "-v",
                 "named:/db",
                 "-v",
                 "/anon",
                 "-v",
                 "./rel:/rel",
                 "--mount",
                 "type=bind,src=/src,dst=/dst,readonly,bind-propagation=rshared",
                 "--mount",
                 "type=volume,src=v1,dst=/v1,volume-nocopy,volume-label=a=b,volume-opt=o=1,volume-driver=local",
                 "--mount",
                 "type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
                 "--tmpfs",
                 "/run:rw,size=64m",
                 "--tmpfs",
                 "/cache",
                 "--volumes-from",
                 "other:ro",
                 "img"},
                true, "/home/me");
  const json& h = b["HostConfig"];
  EXPECT_EQ(h["Binds"], (json{"/host/data:/data:ro", "named:/db", "/home/me/rel:/rel"}));
  EXPECT_EQ(b["Config"]["Volumes"], (json{{"/anon", json::object()}}));
  ASSERT_EQ(h["Mounts"].size(), 3u);
  EXPECT_EQ(h["Mounts"][0], (json{{"Type", "bind"},
                                  {"Source", "/src"},
                                  {"Target", "/dst"},
                                  {"ReadOnly", true},
                                  {"BindOptions", {{"Propagation", "rshared"}}}}));
  EXPECT_EQ(h["Mounts"][1]["Type"], "volume");
  EXPECT_EQ(h["Mounts"][1]["VolumeOptions"]["NoCopy"], true);
  EXPECT_EQ(h["Mounts"][1]["VolumeOptions"]["Labels"], (json{{"a", "b"}}));
  EXPECT_EQ(h["Mounts"][1]["VolumeOptions"]["DriverConfig"]["Options"], (json{{"o", "1"}}));
  EXPECT_EQ(h["Mounts"][2]["TmpfsOptions"]["SizeBytes"], 1 << 20);
  EXPECT_EQ(h["Mounts"][2]["TmpfsOptions"]["Mode"], 01770);
  EXPECT_EQ(h["Tmpfs"], (json{{"/run", "rw,size=64m"}, {"/cache", ""}}));
  EXPECT_EQ(h["VolumesFrom"], (json{"other:ro"}));
}

TEST(ContainerFlags, MountErrorsAndDuplicates) {
  EXPECT_EQ(error_of({"-v", "/a:/b:xx", "img"}), "invalid volume specification: '/a:/b:xx': invalid mode: xx");
  EXPECT_NE(error_of({"--mount", "foo=bar,dst=/x", "img"}).find("unexpected key 'foo'"), std::string::npos);
  EXPECT_NE(error_of({"--tmpfs", "/x:foo", "img"}).find("invalid tmpfs option 'foo'"), std::string::npos);
  EXPECT_EQ(error_of({"-v", "/a:/data", "--tmpfs", "/data", "img"}), "Duplicate mount point: /data");
  EXPECT_EQ(error_of({"-v", "/a:/data", "--mount", "type=volume,dst=/data/", "img"}), "Duplicate mount point: /data");
}

TEST(ContainerFlags, Ports) {
  json b = body({"-p", "8080:80", "-p", "127.0.0.1:5353:53/udp", "-p", "9000-9001:9000-9001", "-p", "443", "-p",
                 "[::1]:8443:443", "--expose", "7000-7001/tcp", "-P", "img"});
  const json& pb = b["HostConfig"]["PortBindings"];
  EXPECT_EQ(pb["80/tcp"], (json{{{"HostIp", ""}, {"HostPort", "8080"}}}));
  EXPECT_EQ(pb["53/udp"], (json{{{"HostIp", "127.0.0.1"}, {"HostPort", "5353"}}}));
  EXPECT_EQ(pb["9001/tcp"], (json{{{"HostIp", ""}, {"HostPort", "9001"}}}));
  EXPECT_EQ(pb["443/tcp"], (json{{{"HostIp", ""}, {"HostPort", ""}}, {{"HostIp", "::1"}, {"HostPort", "8443"}}}));
  for (const char* p : {"80/tcp", "53/udp", "9000/tcp", "443/tcp", "7000/tcp", "7001/tcp"})
    EXPECT_TRUE(b["Config"]["ExposedPorts"].contains(p)) << p;
  EXPECT_EQ(b["HostConfig"]["PublishAllPorts"], true);
  json r = body({"-p", "8000-8010:80", "img"});
  EXPECT_EQ(r["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"], "8000-8010");
  EXPECT_EQ(error_of({"-p", "abc", "img"}), "invalid containerPort: abc");
  EXPECT_EQ(error_of({"-p", "x:80", "img"}), "invalid hostPort: x");
  EXPECT_EQ(error_of({"-p", "1.2.3.999:80:80", "img"}), "invalid IP address: 1.2.3.999");
  EXPECT_EQ(error_of({"-p", "80/xyz", "img"}), "invalid proto: xyz");
  EXPECT_EQ(error_of({"-p", "1-3:1-2", "img"}), "invalid ranges specified for container and host Ports: 1-2 and 1-3");
  EXPECT_EQ(error_of({"--expose", "1:2", "img"}), "invalid port format for --expose: 1:2");
}

TEST(ContainerFlags, NetworkDnsHosts) {
  for (const char* mode : {"none", "host", "bridge", "container:db", "mynet"})
    EXPECT_EQ(body({"--network", mode, "img"})["HostConfig"]["NetworkMode"], mode);
  json b = body({"--network", "mynet", "--network-alias", "web", "--ip", "10.0.0.5", "--dns", "1.1.1.1", "--dns-search",
                 "example.com", "--dns-option", "ndots:2", "--add-host", "db:10.0.0.2", "--add-host", "gw=host-gateway",
                 "img"});
  const json& h = b["HostConfig"];
  EXPECT_EQ(h["Dns"], (json{"1.1.1.1"}));
  EXPECT_EQ(h["DnsSearch"], (json{"example.com"}));
  EXPECT_EQ(h["DnsOptions"], (json{"ndots:2"}));
  EXPECT_EQ(h["ExtraHosts"], (json{"db:10.0.0.2", "gw:host-gateway"}));
  EXPECT_EQ(b["NetworkingConfig"]["EndpointsConfig"]["mynet"]["Aliases"], (json{"web"}));
  EXPECT_EQ(b["NetworkingConfig"]["EndpointsConfig"]["mynet"]["IPAMConfig"]["IPv4Address"], "10.0.0.5");
  EXPECT_EQ(error_of({"--dns", "nope", "img"}),
            "invalid argument \"nope\" for \"--dns\" flag: nope is not an ip address");
  EXPECT_EQ(error_of({"--add-host", "nohost", "img"}),
            "invalid argument \"nohost\" for \"--add-host\" flag: bad format for add-host: \"nohost\"");
  EXPECT_EQ(error_of({"--network", "host", "--network-alias", "x", "img"}),
            "network-scoped aliases are only supported for user-defined networks");
}

TEST(ContainerFlags, NamespacesSecuritySysctlsDevicesLogs) {
  json b = body({"--ipc",
                 "host",
                 "--pid",
                 "container:x",
                 "--uts",
                 "host",
                 "--cgroupns",
                 "private",
                 "--security-opt",
                 "no-new-privileges",
                 "--security-opt",
                 "seccomp=unconfined",
                 "--sysctl",
                 "net.core.somaxconn=1024",
                 "--device",
                 "/dev/fuse",
                 "--device",
                 "/dev/sda:/dev/xvda:r",
                 "--device-cgroup-rule",
                 "c 1:3 rwm",
                 "--log-driver",
                 "json-file",
                 "--log-opt",
                 "max-size=10m",
                 "img"});
  const json& h = b["HostConfig"];
  EXPECT_EQ(h["IpcMode"], "host");
  EXPECT_EQ(h["PidMode"], "container:x");
  EXPECT_EQ(h["UTSMode"], "host");
  EXPECT_EQ(h["CgroupnsMode"], "private");
  EXPECT_EQ(h["SecurityOpt"], (json{"no-new-privileges", "seccomp=unconfined"}));
  EXPECT_EQ(h["Sysctls"], (json{{"net.core.somaxconn", "1024"}}));
  EXPECT_EQ(h["Devices"][0],
            (json{{"PathOnHost", "/dev/fuse"}, {"PathInContainer", "/dev/fuse"}, {"CgroupPermissions", "rwm"}}));
  EXPECT_EQ(h["Devices"][1],
            (json{{"PathOnHost", "/dev/sda"}, {"PathInContainer", "/dev/xvda"}, {"CgroupPermissions", "r"}}));
  EXPECT_EQ(h["DeviceCgroupRules"], (json{"c 1:3 rwm"}));
  EXPECT_EQ(h["LogConfig"], (json{{"Type", "json-file"}, {"Config", {{"max-size", "10m"}}}}));
  EXPECT_EQ(error_of({"--ipc", "weird", "img"}), "--ipc: invalid IPC mode: weird");
  EXPECT_EQ(error_of({"--pid", "container:", "img"}), "--pid: invalid PID mode: container:");
  EXPECT_EQ(error_of({"--cgroupns", "x", "img"}), "--cgroupns: invalid CGROUP mode: x");
  EXPECT_EQ(error_of({"--sysctl", "kernel.panic=1", "img"}),
            "invalid argument \"kernel.panic=1\" for \"--sysctl\" flag: sysctl 'kernel.panic=1' is not allowed");
  EXPECT_EQ(error_of({"--security-opt", "label", "img"}), "Invalid --security-opt: \"label\"");
  EXPECT_EQ(error_of({"--log-driver", "none", "--log-opt", "a=b", "img"}), "invalid logging opts for driver none");
  EXPECT_EQ(error_of({"--device", "/dev/sda:/dev/xvda:rwx", "img"}),
            "invalid argument \"/dev/sda:/dev/xvda:rwx\" for \"--device\" flag: invalid device mode: rwx");
  EXPECT_EQ(
      error_of({"--device-cgroup-rule", "x 1:3 rwm", "img"}),
      "invalid argument \"x 1:3 rwm\" for \"--device-cgroup-rule\" flag: invalid device cgroup format 'x 1:3 rwm'");
  EXPECT_EQ(error_of({"--pull", "sometimes", "img"}),
            "invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or \"never\"");
}

TEST(ContainerFlags, SeccompProfileFileIsInlined) {
  TempFile f("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n");
  json b = body({"--security-opt", "seccomp=" + f.path(), "img"});
  EXPECT_EQ(b["HostConfig"]["SecurityOpt"], (json{"seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"}));
  EXPECT_NE(error_of({"--security-opt", "seccomp=/nonexistent.json", "img"}).find("opening seccomp profile"),
            std::string::npos);
}
