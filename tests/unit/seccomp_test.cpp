// Seccomp: compiling spec filters (including Docker's default profile) and
// their behaviour once loaded into a forked child.
#include "runtime/seccomp.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace rt = berth::runtime;
using nlohmann::json;

namespace {

// Exit codes a child uses when the harness itself fails (errno values are < 200).
constexpr int kNoNewPrivsFailed = 201;
constexpr int kLoadFailed = 202;
constexpr int kSignalled = 1000;  // child_errno(): 1000 + signal number

rt::SeccompSyscall rule(std::vector<std::string> names, std::string action,
                        std::optional<unsigned> errno_ret = std::nullopt, std::vector<rt::SeccompArg> args = {}) {
  rt::SeccompSyscall s;
  s.names = std::move(names);
  s.action = std::move(action);
  s.errno_ret = errno_ret;
  s.args = std::move(args);
  return s;
}

rt::SeccompArg arg(unsigned index, std::string op, uint64_t value, uint64_t value_two = 0) {
  return rt::SeccompArg{index, value, value_two, std::move(op)};
}

rt::Seccomp filter(std::string default_action, std::vector<rt::SeccompSyscall> syscalls = {}) {
  rt::Seccomp s;
  s.default_action = std::move(default_action);
  s.syscalls = std::move(syscalls);
  return s;
}

// A default-deny filter still has to let the child exit, and (in sanitizer
// builds) let the sanitizer runtime query its thread and stack.
rt::Seccomp deny_by_default(std::vector<rt::SeccompSyscall> syscalls) {
  rt::Seccomp s = filter("SCMP_ACT_ERRNO", std::move(syscalls));
  s.syscalls.push_back(rule({"exit_group", "exit", "sigaltstack", "gettid"}, "SCMP_ACT_ALLOW"));
  return s;
}

// Forks; the child sets no_new_privs (so this works unprivileged), loads the
// filter, runs body and exits with its result. Returns the wait status.
int run_in_child(rt::SeccompProgram& prog, const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::alarm(20);  // never hang the suite
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);  // SIGSYS would dump core
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(kNoNewPrivsFailed);
    try {
      prog.load();
    } catch (...) {
      ::_exit(kLoadFailed);
    }
    ::_exit(body());
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Runs one call in a filtered child: 0 if it succeeded, else its errno
// (kSignalled + signo if the child was killed).
int child_errno(rt::SeccompProgram& prog, const std::function<long()>& call) {
  const int status = run_in_child(prog, [&] {
    errno = 0;
    const long rc = call();
    return rc < 0 ? errno : 0;
  });
  if (WIFSIGNALED(status)) return kSignalled + WTERMSIG(status);
  return WEXITSTATUS(status);
}

int child_errno(const rt::Seccomp& spec, const std::function<long()>& call) {
  auto prog = rt::compile_seccomp(spec);
  return child_errno(*prog, call);
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "berth-seccomp-" + std::to_string(::getpid()) + "-" + name;
}

// mkdir goes through mkdirat on some libc/arch combinations; filter both.
long do_mkdir(const std::string& path) { return ::mkdir(path.c_str(), 0700); }

void expect_error_mentions(const rt::Seccomp& spec, const std::string& needle) {
  try {
    rt::compile_seccomp(spec);
    ADD_FAILURE() << "compile_seccomp accepted a filter that should mention " << needle;
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// --- Docker's profile (moby format) converted to the OCI form, like moby does.

bool contains(const json& list, const std::string& value) {
  for (const auto& v : list)
    if (v.get<std::string>() == value) return true;
  return false;
}

// moby's rule: includes must all hold, excludes must all fail. minKernel is
// ignored (the profile's only one is 4.8, older than anything we run on).
bool applies(const json& entry, const std::set<std::string>& caps, const std::string& goarch) {
  const json inc = entry.value("includes", json::object());
  const json exc = entry.value("excludes", json::object());
  if (inc.contains("arches") && !contains(inc["arches"], goarch)) return false;
  if (inc.contains("caps"))
    for (const auto& c : inc["caps"])
      if (!caps.contains(c.get<std::string>())) return false;
  if (exc.contains("arches") && contains(exc["arches"], goarch)) return false;
  if (exc.contains("caps"))
    for (const auto& c : exc["caps"])
      if (caps.contains(c.get<std::string>())) return false;
  return true;
}

rt::Seccomp docker_profile(const std::set<std::string>& caps) {
  std::ifstream in(BERTH_SPECS_DIR "/seccomp-default.json");
  if (!in) throw std::runtime_error("cannot open " BERTH_SPECS_DIR "/seccomp-default.json");
  const json doc = json::parse(in);

  rt::Seccomp s;
  s.default_action = doc.at("defaultAction").get<std::string>();
  if (doc.contains("defaultErrnoRet")) s.default_errno_ret = doc["defaultErrnoRet"].get<unsigned>();
  for (const auto& m : doc.at("archMap")) {
    if (m.at("architecture") != "SCMP_ARCH_X86_64") continue;
    s.architectures.push_back(m["architecture"].get<std::string>());
    for (const auto& sub : m.value("subArchitectures", json::array()))
      s.architectures.push_back(sub.get<std::string>());
  }
  for (const auto& entry : doc.at("syscalls")) {
    if (!applies(entry, caps, "amd64")) continue;
    rt::SeccompSyscall r;
    r.names = entry.at("names").get<std::vector<std::string>>();
    r.action = entry.at("action").get<std::string>();
    if (entry.contains("errnoRet")) r.errno_ret = entry["errnoRet"].get<unsigned>();
    for (const auto& a : entry.value("args", json::array()))
      r.args.push_back(arg(a.at("index").get<unsigned>(), a.at("op").get<std::string>(), a.at("value").get<uint64_t>(),
                           a.value("valueTwo", uint64_t{0})));
    s.syscalls.push_back(std::move(r));
  }
  return s;
}

const std::set<std::string> kDockerDefaultCaps = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE"};

// --- Unix socket helpers for the listener tests.

struct Received {
  std::string data;
  berth::UniqueFd fd;
};

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// Reads one connection to EOF, keeping the first SCM_RIGHTS fd.
Received receive_all(int conn) {
  Received r;
  for (;;) {
    char buf[4096];
    iovec iov{buf, sizeof(buf)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr hdr{};
    hdr.msg_iov = &iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control;
    hdr.msg_controllen = sizeof(control);
    if (!wait_readable(conn, 5000)) break;
    const ssize_t n = ::recvmsg(conn, &hdr, MSG_CMSG_CLOEXEC);
    if (n <= 0) break;
    r.data.append(buf, static_cast<size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&hdr); c != nullptr; c = CMSG_NXTHDR(&hdr, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (r.fd)
          ::close(fd);
        else
          r.fd.reset(fd);
      }
    }
  }
  return r;
}

berth::UniqueFd listen_unix(const std::string& path) {
  ::unlink(path.c_str());
  berth::UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(s.get(), 4) != 0)
    throw std::runtime_error("listen on " + path + ": " + std::strerror(errno));
  return s;
}

}  // namespace

// ---------------------------------------------------------------- compiling

TEST(SeccompCompile, DockerDefaultProfileWithoutCaps) {
  const rt::Seccomp spec = docker_profile({});
  ASSERT_GT(spec.syscalls.size(), 10u);
  ASSERT_EQ(spec.architectures.size(), 3u);  // x86_64 + x86 + x32
  auto prog = rt::compile_seccomp(spec);
  ASSERT_NE(prog, nullptr);
  EXPECT_FALSE(prog->uses_notify());
}

TEST(SeccompCompile, DockerDefaultProfileWithDefaultCapsAndSysAdmin) {
  EXPECT_NO_THROW(rt::compile_seccomp(docker_profile(kDockerDefaultCaps)));
  std::set<std::string> caps = kDockerDefaultCaps;
  caps.insert("CAP_SYS_ADMIN");
  caps.insert("CAP_SYS_PTRACE");
  EXPECT_NO_THROW(rt::compile_seccomp(docker_profile(caps)));
}

TEST(SeccompCompile, UnknownSyscallsAreSkipped) {
  auto prog = rt::compile_seccomp(filter("SCMP_ACT_ALLOW", {rule({"no_such_syscall_berth"}, "SCMP_ACT_ERRNO")}));
  EXPECT_NE(prog, nullptr);
}

TEST(SeccompCompile, RuleWithDefaultActionIsSkipped) {
  // libseccomp itself rejects these with EACCES.
  EXPECT_NO_THROW(rt::compile_seccomp(filter("SCMP_ACT_ALLOW", {rule({"read", "write"}, "SCMP_ACT_ALLOW")})));
  rt::Seccomp errno_default = filter("SCMP_ACT_ERRNO", {rule({"mkdir"}, "SCMP_ACT_ERRNO", EPERM)});
  EXPECT_NO_THROW(rt::compile_seccomp(errno_default));
}

TEST(SeccompCompile, AllActionsAndFlags) {
  rt::Seccomp s = filter("SCMP_ACT_ALLOW", {rule({"getpid"}, "SCMP_ACT_KILL"), rule({"getuid"}, "SCMP_ACT_KILL_THREAD"),
                                            rule({"getgid"}, "SCMP_ACT_KILL_PROCESS"),
                                            rule({"geteuid"}, "SCMP_ACT_TRAP"), rule({"getegid"}, "SCMP_ACT_ERRNO", 13),
                                            rule({"getppid"}, "SCMP_ACT_TRACE"), rule({"getpgrp"}, "SCMP_ACT_LOG")});
  s.flags = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
             "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};
  s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
  auto prog = rt::compile_seccomp(s);
  EXPECT_FALSE(prog->uses_notify());
}

TEST(SeccompCompile, NotifyNeedsListenerPath) {
  rt::Seccomp s = filter("SCMP_ACT_ALLOW", {rule({"getppid"}, "SCMP_ACT_NOTIFY")});
  expect_error_mentions(s, "listenerPath");
  s.listener_path = "/run/listener.sock";
  EXPECT_TRUE(rt::compile_seccomp(s)->uses_notify());
}

TEST(SeccompErrors, UnknownArchitecture) {
  rt::Seccomp s = filter("SCMP_ACT_ALLOW");
  s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"};
  expect_error_mentions(s, "SCMP_ARCH_PDP11");
  s.architectures = {"x86_64"};  // the prefix is required
  expect_error_mentions(s, "\"x86_64\"");
}

TEST(SeccompErrors, ArgIndexOutOfRange) {
  expect_error_mentions(filter("SCMP_ACT_ALLOW", {rule({"personality"}, "SCMP_ACT_ERRNO", std::nullopt,
                                                       {arg(0, "SCMP_CMP_EQ", 1), arg(6, "SCMP_CMP_EQ", 0)})}),
                        "syscalls[0].args[1]: index 6");
}

TEST(SeccompErrors, UnknownActionOperatorAndDefault) {
  expect_error_mentions(filter("SCMP_ACT_BOGUS"), "SCMP_ACT_BOGUS");
  expect_error_mentions(filter("SCMP_ACT_ALLOW", {rule({"read"}, "SCMP_ACT_NOPE")}), "syscalls[0]: unknown action");
  expect_error_mentions(
      filter("SCMP_ACT_ALLOW", {rule({"read"}, "SCMP_ACT_ERRNO", std::nullopt, {arg(0, "SCMP_CMP_SORTOF", 1)})}),
      "SCMP_CMP_SORTOF");
  expect_error_mentions(filter("SCMP_ACT_NOTIFY"), "defaultAction");
  expect_error_mentions(filter("SCMP_ACT_ALLOW", {rule({"read"}, "SCMP_ACT_ERRNO", 70000)}), "errnoRet 70000");
  rt::Seccomp bad_flag = filter("SCMP_ACT_ALLOW");
  bad_flag.flags = {"SECCOMP_FILTER_FLAG_BOGUS"};
  expect_error_mentions(bad_flag, "SECCOMP_FILTER_FLAG_BOGUS");
}

// ---------------------------------------------------------------- behaviour

TEST(SeccompLoad, ErrnoRuleGivesEperm) {
  const std::string dir = temp_path("mkdir-eperm");
  ::rmdir(dir.c_str());
  EXPECT_EQ(child_errno(filter("SCMP_ACT_ALLOW", {rule({"mkdir", "mkdirat"}, "SCMP_ACT_ERRNO", 1)}),
                        [&] { return do_mkdir(dir); }),
            EPERM);
  EXPECT_NE(::access(dir.c_str(), F_OK), 0) << "mkdir went through";
  // Unknown names in the same rule do not stop the known ones.
  EXPECT_EQ(
      child_errno(filter("SCMP_ACT_ALLOW", {rule({"no_such_syscall_berth", "mkdir", "mkdirat"}, "SCMP_ACT_ERRNO")}),
                  [&] { return do_mkdir(dir); }),
      EPERM);
  // Without the filter the same call works (the harness is not what fails).
  EXPECT_EQ(child_errno(filter("SCMP_ACT_ALLOW"), [&] { return do_mkdir(dir); }), 0);
  ::rmdir(dir.c_str());
}

TEST(SeccompLoad, ErrnoRetIsHonoured) {
  const std::string dir = temp_path("mkdir-enosys");
  EXPECT_EQ(child_errno(filter("SCMP_ACT_ALLOW", {rule({"mkdir", "mkdirat"}, "SCMP_ACT_ERRNO", 38)}),
                        [&] { return do_mkdir(dir); }),
            ENOSYS);
  ::rmdir(dir.c_str());
}

TEST(SeccompLoad, DefaultErrnoRet) {
  rt::Seccomp s = deny_by_default({});
  s.default_errno_ret = EACCES;
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getppid); }), EACCES);
}

TEST(SeccompLoad, ArgConditionBothBranches) {
  // Default deny; personality only for the "query" argument, as Docker does.
  const rt::Seccomp s =
      deny_by_default({rule({"personality"}, "SCMP_ACT_ALLOW", std::nullopt, {arg(0, "SCMP_CMP_EQ", 0xffffffffULL)})});
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_personality, 0xffffffffUL); }), 0);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_personality, 0UL); }), EPERM);
}

TEST(SeccompLoad, MaskedEq) {
  // value is the mask, valueTwo the datum: (arg0 & 0xff00) == 0x0100.
  const rt::Seccomp s =
      filter("SCMP_ACT_ALLOW",
             {rule({"getpriority"}, "SCMP_ACT_ERRNO", EOPNOTSUPP, {arg(0, "SCMP_CMP_MASKED_EQ", 0xff00, 0x0100)})});
  // Unmatched calls reach the kernel, which rejects the bogus "which" with EINVAL.
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x0142, 0); }), EOPNOTSUPP);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x0100, 0); }), EOPNOTSUPP);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x0242, 0); }), EINVAL);
  // Has the datum's bit but not the rest of the masked byte: catches swapped mask/datum.
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x0342, 0); }), EINVAL);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, PRIO_PROCESS, 0); }), 0);
}

TEST(SeccompLoad, SameIndexArgsAreOred) {
  const rt::Seccomp s =
      filter("SCMP_ACT_ALLOW", {rule({"getpriority"}, "SCMP_ACT_ERRNO", EOPNOTSUPP,
                                     {arg(0, "SCMP_CMP_EQ", 0x1001), arg(0, "SCMP_CMP_EQ", 0x1002)})});
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x1001, 0); }), EOPNOTSUPP);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x1002, 0); }), EOPNOTSUPP);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x1003, 0); }), EINVAL);
}

TEST(SeccompLoad, DifferentIndexArgsAreAnded) {
  const rt::Seccomp s = filter("SCMP_ACT_ALLOW", {rule({"getpriority"}, "SCMP_ACT_ERRNO", EOPNOTSUPP,
                                                       {arg(0, "SCMP_CMP_EQ", 0x1001), arg(1, "SCMP_CMP_GE", 7)})});
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x1001, 7); }), EOPNOTSUPP);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x1001, 6); }), EINVAL);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, 0x1002, 7); }), EINVAL);
}

TEST(SeccompLoad, KillProcessAndTrapRaiseSigsys) {
  EXPECT_EQ(child_errno(filter("SCMP_ACT_ALLOW", {rule({"getppid"}, "SCMP_ACT_KILL_PROCESS")}),
                        [] { return ::syscall(SYS_getppid); }),
            kSignalled + SIGSYS);
  EXPECT_EQ(child_errno(filter("SCMP_ACT_ALLOW", {rule({"getppid"}, "SCMP_ACT_TRAP")}),
                        [] { return ::syscall(SYS_getppid); }),
            kSignalled + SIGSYS);
}

TEST(SeccompLoad, LogDefaultAllows) {
  const rt::Seccomp s = filter("SCMP_ACT_LOG", {rule({"getpriority"}, "SCMP_ACT_ERRNO", EOPNOTSUPP),
                                                rule({"exit_group", "exit"}, "SCMP_ACT_ALLOW")});
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getppid); }), 0);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getpriority, PRIO_PROCESS, 0); }), EOPNOTSUPP);
}

TEST(SeccompLoad, ProgramIsReusableAcrossChildren) {
  auto prog = rt::compile_seccomp(filter("SCMP_ACT_ALLOW", {rule({"getppid"}, "SCMP_ACT_ERRNO", ENOTTY)}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(child_errno(*prog, [] { return ::syscall(SYS_getppid); }), ENOTTY);
}

TEST(SeccompLoad, DockerDefaultProfileBehaviour) {
  const rt::Seccomp s = docker_profile({});
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_getppid); }), 0);
  // clone3 is ENOSYS so libc falls back to clone, whose flags the profile checks.
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_clone3, nullptr, 0); }), ENOSYS);
  // Namespace creation needs CAP_SYS_ADMIN in the profile: default errno (1).
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_unshare, CLONE_NEWUTS); }), EPERM);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_personality, 0xffffffffUL); }), 0);
  EXPECT_EQ(child_errno(s, [] { return ::syscall(SYS_personality, static_cast<unsigned long>(ADDR_NO_RANDOMIZE)); }),
            EPERM);
}

// ---------------------------------------------------------------- listener

TEST(SeccompListener, SendsStateAndFd) {
  const std::string path = temp_path("listener.sock");
  berth::UniqueFd server = listen_unix(path);
  int pipefd[2];
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  berth::UniqueFd rd(pipefd[0]), wr(pipefd[1]);

  const json state = {{"ociVersion", "1.0.2"}, {"id", "c1"},     {"status", "creating"},
                      {"pid", 4321},           {"bundle", "/b"}, {"annotations", {{"k", "v"}}}};
  // Small enough to sit in the socket buffer before accept().
  rt::send_seccomp_listener(path, wr.get(), state.dump(), "meta=1");

  ASSERT_TRUE(wait_readable(server.get(), 5000));
  berth::UniqueFd conn(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(conn);
  Received got = receive_all(conn.get());
  const json msg = json::parse(got.data);
  EXPECT_EQ(msg.at("fds"), json::array({"seccompFd"}));
  EXPECT_EQ(msg.at("pid"), 4321);
  EXPECT_EQ(msg.at("metadata"), "meta=1");
  EXPECT_EQ(msg.at("state"), state);
  EXPECT_TRUE(msg.at("ociVersion").is_string());

  // The fd that arrived is the pipe's write end.
  ASSERT_TRUE(got.fd);
  ASSERT_EQ(::write(got.fd.get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(rd.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  ::unlink(path.c_str());
}

TEST(SeccompListener, Errors) {
  const std::string missing = temp_path("no-listener.sock");
  try {
    rt::send_seccomp_listener(missing, 0, R"({"pid":1})", "");
    ADD_FAILURE() << "sent to a missing socket";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_EQ(e.errnum(), ENOENT);
  }
  // Bad state is reported before any connection attempt.
  for (const char* bad : {"not json", R"({"id":"c1"})"}) {
    try {
      rt::send_seccomp_listener(missing, 0, bad, "");
      ADD_FAILURE() << "accepted state " << bad;
    } catch (const berth::Error& e) {
      EXPECT_NE(std::string(e.what()).find("container state"), std::string::npos) << e.what();
    }
  }
}

// End to end: the child loads a NOTIFY filter, hands the fd to a listener, and
// the parent answers the child's getppid().
TEST(SeccompListener, NotifyEndToEnd) {
  const std::string path = temp_path("notify.sock");
  berth::UniqueFd server = listen_unix(path);
  rt::Seccomp s = filter("SCMP_ACT_ALLOW", {rule({"getppid"}, "SCMP_ACT_NOTIFY")});
  s.listener_path = path;
  auto prog = rt::compile_seccomp(s);
  ASSERT_TRUE(prog->uses_notify());

  constexpr long kAnswer = 4242;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::alarm(20);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(kNoNewPrivsFailed);
    try {
      const int fd = prog->load();
      if (fd < 0) ::_exit(kLoadFailed);
      const json state = {
          {"ociVersion", "1.0.2"}, {"id", "c1"}, {"status", "creating"}, {"pid", ::getpid()}, {"bundle", "/b"}};
      rt::send_seccomp_listener(path, fd, state.dump(), "");
      ::close(fd);
    } catch (...) {
      ::_exit(kLoadFailed);
    }
    ::_exit(::syscall(SYS_getppid) == kAnswer ? 0 : 1);
  }
  struct Reaper {  // never leave a blocked child behind on failure
    pid_t pid;
    int status = -1;
    int wait() {
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      pid = -1;
      return status;
    }
    ~Reaper() {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        wait();
      }
    }
  } reaper{pid};

  ASSERT_TRUE(wait_readable(server.get(), 10000)) << "child never connected";
  berth::UniqueFd conn(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(conn);
  Received got = receive_all(conn.get());
  const json msg = json::parse(got.data);
  EXPECT_EQ(msg.at("fds"), json::array({"seccompFd"}));
  EXPECT_EQ(msg.at("pid"), pid);
  EXPECT_FALSE(msg.contains("metadata"));
  ASSERT_TRUE(got.fd);

  ASSERT_TRUE(wait_readable(got.fd.get(), 10000)) << "no notification";
  seccomp_notif* req = nullptr;
  seccomp_notif_resp* resp = nullptr;
  ASSERT_EQ(seccomp_notify_alloc(&req, &resp), 0);
  const int rc = seccomp_notify_receive(got.fd.get(), req);
  EXPECT_EQ(rc, 0);
  if (rc == 0) {
    EXPECT_EQ(req->data.nr, SYS_getppid);
    EXPECT_EQ(static_cast<pid_t>(req->pid), pid);
    resp->id = req->id;
    resp->val = kAnswer;
    resp->error = 0;
    resp->flags = 0;
    EXPECT_EQ(seccomp_notify_respond(got.fd.get(), resp), 0);
  }
  seccomp_notify_free(req, resp);

  const int status = reaper.wait();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ::unlink(path.c_str());
}

// ---------------------------------------------------------------- the compiled-filter cache

TEST(SeccompCache, SecondLoadComesFromTheCacheAndBehavesTheSame) {
  char tmpl[] = "/tmp/berth-seccomp-cache-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = std::string(tmpl) + "/cache";
  rt::Seccomp s = deny_by_default({rule({"getppid"}, "SCMP_ACT_ALLOW")});
  auto first = rt::compile_seccomp_cached(s, "key-a", dir);
  // One file, holding the key; the second call must not need libseccomp's answer to match.
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  auto second = rt::compile_seccomp_cached(s, "key-a", dir);
  int status = run_in_child(*second, [] { return ::getppid() > 0 && ::getuid() == static_cast<uid_t>(-1) ? 1 : 0; });
  // getuid is denied (ERRNO → -1), getppid allowed.
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  // A different key (another profile) is never served the cached filter.
  rt::Seccomp allow_all = filter("SCMP_ACT_ALLOW");
  auto other = rt::compile_seccomp_cached(allow_all, "key-b", dir);
  status = run_in_child(*other, [] { return ::getuid() != static_cast<uid_t>(-1) ? 1 : 0; });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::filesystem::remove_all(tmpl);
}
