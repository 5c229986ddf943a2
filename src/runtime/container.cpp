// Container lifecycle, runc's process model:
//   runtime (create) ──fork──► stage1: joins/unshares namespaces ──fork──► init (pid 1)
// stage1 exits at once, so init is re-parented to the caller's subreaper
// (containerd's shim, or `run` itself). init prepares the rootfs, drops
// privileges and blocks on exec.fifo until `start` opens it, then execs.
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <set>

#include "runtime/caps.hpp"
#include "runtime/cgroups.hpp"
#include "runtime/console.hpp"
#include "runtime/hooks.hpp"
#include "runtime/lifecycle.hpp"
#include "runtime/mounts.hpp"
#include "runtime/runtime.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/state.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/passwd.hpp"

extern char** environ;

namespace berth::runtime {
namespace {

// ---------------------------------------------------------------- sync channel

// Messages between the runtime and its children: one SOCK_SEQPACKET datagram each.
class Channel {
 public:
  Channel() = default;
  explicit Channel(UniqueFd fd) : fd_(std::move(fd)) {}
  int fd() const { return fd_.get(); }
  void close() { fd_.reset(); }

  void send(const std::string& msg) const {
    while (::send(fd_.get(), msg.data(), msg.size(), MSG_NOSIGNAL) < 0) {
      if (errno != EINTR) throw_errno("sync with container process");
    }
  }
  // Empty string on EOF.
  std::string recv() const {
    std::string buf(65536, '\0');
    ssize_t n;
    while ((n = ::recv(fd_.get(), buf.data(), buf.size(), 0)) < 0) {
      if (errno != EINTR) throw_errno("sync with container process");
    }
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
  // Sends an error from a child and exits; never returns.
  [[noreturn]] void fail(const std::string& message) const {
    std::string msg = "error " + message;
    (void)!::send(fd_.get(), msg.data(), msg.size(), MSG_NOSIGNAL);
    _exit(1);
  }

 private:
  UniqueFd fd_;
};

std::pair<Channel, Channel> make_channel() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair");
  return {Channel(UniqueFd(sv[0])), Channel(UniqueFd(sv[1]))};
}

// Reads the reply a parent waits for; an "error …" message becomes an Error.
std::string expect(const Channel& ch, const std::string& what) {
  std::string msg = ch.recv();
  if (msg.empty()) throw Error("container process exited before " + what);
  if (msg.rfind("error ", 0) == 0) throw Error(msg.substr(6));
  return msg;
}

// ---------------------------------------------------------------- helpers

// clone3(CLONE_INTO_CGROUP): the child is born in the cgroup2 directory, with no
// migration (and no RCU grace period) at all. Falls back to fork().
pid_t fork_into_cgroup(int cgroup_fd, bool* placed) {
  *placed = false;
  if (cgroup_fd >= 0) {
    struct {
      uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
    } args = {};
    args.flags = 0x200000000ULL;  // CLONE_INTO_CGROUP
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid >= 0) {
      *placed = true;
      return static_cast<pid_t>(pid);
    }
  }
  return ::fork();
}

UniqueFd open_v2_dir(const Cgroup& cgroup) {
  std::string dir = cgroup.v2_dir();
  if (dir.empty()) return UniqueFd();
  return UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

// Puts a child that was not born in its cgroup2 directory there (required on pure v2).
void place_in_v2(const Cgroup& cgroup, pid_t pid) {
  if (cgroup.layout().unified) {
    write_file(cgroup.v2_dir() + "/cgroup.procs", std::to_string(pid), O_WRONLY);
  } else if (!cgroup.v2_dir().empty()) {
    // Hybrid: the controller-less v2 directory is a courtesy (runc does it too); best effort.
    int fd = ::open((cgroup.v2_dir() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      std::string v = std::to_string(pid);
      (void)!::write(fd, v.data(), v.size());
      ::close(fd);
    }
  }
}

const std::map<std::string, int>& namespace_flags() {
  static const std::map<std::string, int> flags = {
      {"mount", CLONE_NEWNS}, {"network", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS},
      {"pid", CLONE_NEWPID},  {"user", CLONE_NEWUSER},   {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME},
  };
  return flags;
}

std::string absolute_path(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) throw_errno("resolve path " + path);
  return buf;
}

void write_pid_file(const std::string& path, pid_t pid) {
  if (path.empty()) return;
  std::string abs = path;
  if (abs[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd)) abs = path_join(cwd, path);
  }
  // containerd reads it as soon as it appears: write whole, then rename.
  write_file_atomic(abs, std::to_string(pid), 0644);
}

int rlimit_resource(const std::string& name) {
  static const std::map<std::string, int> table = {
      {"RLIMIT_AS", RLIMIT_AS},
      {"RLIMIT_CORE", RLIMIT_CORE},
      {"RLIMIT_CPU", RLIMIT_CPU},
      {"RLIMIT_DATA", RLIMIT_DATA},
      {"RLIMIT_FSIZE", RLIMIT_FSIZE},
      {"RLIMIT_LOCKS", RLIMIT_LOCKS},
      {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
      {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
      {"RLIMIT_NICE", RLIMIT_NICE},
      {"RLIMIT_NOFILE", RLIMIT_NOFILE},
      {"RLIMIT_NPROC", RLIMIT_NPROC},
      {"RLIMIT_RSS", RLIMIT_RSS},
      {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
      {"RLIMIT_RTTIME", RLIMIT_RTTIME},
      {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
      {"RLIMIT_STACK", RLIMIT_STACK},
  };
  auto it = table.find(name);
  return it == table.end() ? -1 : it->second;
}

std::string env_value(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& e : env)
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
      return e.substr(key.size() + 1);
  return "";
}

// Finds the executable the way Go's exec.LookPath does (runc reports the same errors).
std::string look_path(const std::string& file, const std::vector<std::string>& env) {
  auto executable = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (file.find('/') != std::string::npos) {
    if (executable(file)) return file;
    throw Error("exec: \"" + file + "\": " + std::strerror(errno == 0 ? EACCES : errno));
  }
  std::string path = env_value(env, "PATH");
  if (path.empty()) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + file;
    if (executable(candidate)) return candidate;
    start = end + 1;
  }
  throw Error("exec: \"" + file + "\": executable file not found in $PATH");
}

// HOME from the container's /etc/passwd, "/" when the uid has no entry (as runc).
std::string home_of(uid_t uid) {
  auto entry = lookup_passwd_uid("/etc/passwd", uid);
  return entry && !entry->home.empty() ? entry->home : "/";
}

bool lsm_enabled(const char* name) {
  auto lsms = read_file_if_exists("/sys/kernel/security/lsm");
  return lsms && lsms->find(name) != std::string::npos;
}

// Everything about the process that runs in the container, shared by create and exec.
struct ProcessPlan {
  Process process;
  const SeccompProgram* seccomp = nullptr;
  std::string seccomp_listener;
  int console_fd = -1;  // connected console socket, or -1
  bool mount_dev_console = false;
  int preserve_fds = 0;
  bool set_session = true;
};

void apply_rlimits(const Process& p) {
  for (const auto& r : p.rlimits) {
    int res = rlimit_resource(r.type);
    if (res < 0) throw Error("unknown rlimit type " + r.type);
    struct rlimit lim = {static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)};
    if (::setrlimit(res, &lim) != 0)
      throw_errno("setrlimit " + r.type + " soft " + std::to_string(r.soft) + " hard " + std::to_string(r.hard));
  }
}

void apply_lsm(const Process& p) {
  if (!p.apparmor_profile.empty()) {
    if (lsm_enabled("apparmor")) {
      std::string path =
          path_exists("/proc/self/attr/apparmor/exec") ? "/proc/self/attr/apparmor/exec" : "/proc/self/attr/exec";
      write_file(path, "exec " + p.apparmor_profile, O_WRONLY);
    } else {
      log::warn("apparmor is not enabled on this host; ignoring apparmorProfile " + p.apparmor_profile);
    }
  }
  if (!p.selinux_label.empty()) {
    if (lsm_enabled("selinux")) {
      write_file("/proc/self/attr/exec", p.selinux_label, O_WRONLY);
    } else {
      log::warn("selinux is not enabled on this host; ignoring selinuxLabel " + p.selinux_label);
    }
  }
}

void load_seccomp(const ProcessPlan& plan, const std::string& state_json) {
  if (!plan.seccomp) return;
  int notify_fd = const_cast<SeccompProgram*>(plan.seccomp)->load();
  if (notify_fd >= 0) {
    send_seccomp_listener(plan.seccomp_listener, notify_fd, state_json, "");
    ::close(notify_fd);
  }
}

// The common tail of init and exec, up to (not including) the wait for `start`.
// Returns the resolved executable path.
std::string prepare_process(ProcessPlan& plan, const std::string& state_json) {
  Process& p = plan.process;
  if (p.args.empty()) throw Error("process args must not be empty");
  if (plan.console_fd >= 0) {
    setup_console(plan.console_fd, p.console_size, plan.mount_dev_console);
    ::close(plan.console_fd);
  }
  apply_rlimits(p);
  if (p.oom_score_adj) write_file("/proc/self/oom_score_adj", std::to_string(*p.oom_score_adj), O_WRONLY);
  apply_lsm(p);
  std::string exe = look_path(p.args[0], p.env);
  if (env_value(p.env, "HOME").empty()) {
    std::string home = home_of(p.user.uid);
    p.env.push_back("HOME=" + home);
  }

  std::optional<CapabilityMasks> caps;
  if (p.capabilities) {
    std::vector<std::string> unknown;
    caps = capability_masks(*p.capabilities, &unknown);
    if (!unknown.empty()) {
      std::string list;
      for (const auto& u : unknown) list += (list.empty() ? "" : " ") + u;
      std::string msg = "ignoring unknown or unavailable capabilities: [" + list + "]";
      log::warn(msg);
    }
  }
  // No descriptor of the runtime survives into the container (CVE-2024-21626): every fd past
  // stdio and the preserved ones is close-on-exec. Before the seccomp filter: a profile that
  // predates close_range (ERRNO for what it does not list) would refuse it. Nothing below opens
  // an fd that is not close-on-exec.
  unsigned first = 3 + static_cast<unsigned>(plan.preserve_fds);
  if (::syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) != 0) throw_errno("close_range");
  for (int fd = 3; fd < static_cast<int>(first); ++fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  // Without no_new_privs the filter needs CAP_SYS_ADMIN to load: do it while we still have it.
  if (!p.no_new_privileges) load_seccomp(plan, state_json);
  if (caps) {
    drop_bounding(*caps);
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) throw_errno("prctl keepcaps");
  }
  std::vector<gid_t> groups(p.user.additional_gids.begin(), p.user.additional_gids.end());
  if (::setgroups(groups.size(), groups.data()) != 0 && errno != EPERM) throw_errno("setgroups");
  if (::setresgid(p.user.gid, p.user.gid, p.user.gid) != 0) throw_errno("setgid " + std::to_string(p.user.gid));
  if (::setresuid(p.user.uid, p.user.uid, p.user.uid) != 0) throw_errno("setuid " + std::to_string(p.user.uid));
  if (caps) {
    if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) throw_errno("prctl keepcaps");
    apply_capabilities(*caps);
  }
  if (p.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("prctl no_new_privs");
  ::umask(p.user.umask ? static_cast<mode_t>(*p.user.umask) : 022);
  if (::chdir(p.cwd.c_str()) != 0) throw_errno("chdir to cwd " + p.cwd);
  // A cwd reached through a leaked host fd would show as unreachable (CVE-2024-21626).
  // getcwd says ENOENT for such a cwd (or a path without the leading "/"); another errno (a
  // seccomp profile that refuses getcwd) is reported as what it is.
  char cwd_now[PATH_MAX];
  const char* got = ::getcwd(cwd_now, sizeof cwd_now);
  if (got == nullptr && errno != ENOENT) throw_errno("getcwd after chdir to " + p.cwd);
  if (got == nullptr || cwd_now[0] != '/') throw Error("cwd " + p.cwd + " is outside the container root");
  return exe;
}

[[noreturn]] void exec_process(const ProcessPlan& plan, const std::string& exe, const std::string& state_json) {
  const Process& p = plan.process;
  if (p.no_new_privileges) load_seccomp(plan, state_json);
  std::vector<char*> argv, envp;
  for (auto& a : p.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : p.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::execve(exe.c_str(), argv.data(), envp.data());
  throw_errno("exec " + p.args[0]);
}

// ---------------------------------------------------------------- create

struct CreateContext {
  const Spec* spec = nullptr;
  std::string id;
  std::string bundle;
  std::string rootfs;
  std::string cgroup_path;
  CgroupLayout host_cgroups;       // as mounted on the host
  CgroupLayout container_cgroups;  // where the container's cgroup hangs (rebased for relative paths)
  bool no_pivot = false;
  ProcessPlan plan;
  std::vector<std::string> v1_task_files;  // stage1 joins these itself (see Cgroup::join_v1_self)
  const Cgroup* cgroup = nullptr;
  int fifo_fd = -1;  // O_PATH to exec.fifo
  int lock_fd = -1;  // the state-dir flock: shared with children by fork, so they drop it
};

std::string creating_state_json(const CreateContext& c, pid_t pid, const char* status) {
  ContainerState s;
  s.id = c.id;
  s.bundle = c.bundle;
  s.rootfs = c.rootfs;
  s.pid = pid;
  s.config = c.spec->raw;
  nlohmann::json j = oci_state_json(s, Status::Created);
  j["status"] = status;
  j["pid"] = pid;
  return j.dump();
}

// A sysctl is only namespaced if the container has the namespace it belongs to;
// anything else would change the host (runc's rules).
void validate_sysctls(const Spec& spec) {
  if (!spec.linux_) return;
  static const std::set<std::string> ipc = {"kernel.msgmax", "kernel.msgmnb",         "kernel.msgmni",
                                            "kernel.sem",    "kernel.shmall",         "kernel.shmmax",
                                            "kernel.shmmni", "kernel.shm_rmid_forced"};
  for (const auto& [key, value] : spec.linux_->sysctl) {
    const char* ns = nullptr;
    if (ipc.count(key) || key.rfind("fs.mqueue.", 0) == 0)
      ns = "ipc";
    else if (key.rfind("net.", 0) == 0)
      ns = "network";
    else if (key == "kernel.hostname" || key == "kernel.domainname")
      ns = "uts";
    if (!ns) throw Error("sysctl \"" + key + "\" is not in a separate kernel namespace");
    if (!find_namespace(spec, ns))
      throw Error("sysctl \"" + key + "\" is not allowed: the container has no private " + ns + " namespace");
  }
}

void exit_on_signal(int sig) { _exit(128 + sig); }

void apply_sysctls(const Spec& spec) {
  if (!spec.linux_) return;
  for (const auto& [key, value] : spec.linux_->sysctl) {
    if (key.find("..") != std::string::npos || key.find('/') != std::string::npos)
      throw Error("invalid sysctl key " + key);
    std::string path = "/proc/sys/" + key;
    std::replace(path.begin() + 10, path.end(), '.', '/');
    write_file(path, value, O_WRONLY);
  }
}

// A new network namespace starts with lo down; containers expect it up (runc does this too).
void bring_up_loopback() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("socket for lo");
  struct ifreq ifr = {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) throw_errno("get flags of lo");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) throw_errno("bring up lo");
}

[[noreturn]] void init_main(const CreateContext& c, const Channel& ch) {
  try {
    const Spec& spec = *c.spec;
    if (::setsid() < 0) throw_errno("setsid");
    const Namespace* user_ns = find_namespace(spec, "user");
    const Namespace* mnt_ns = find_namespace(spec, "mount");
    const Namespace* cg_ns = find_namespace(spec, "cgroup");
    UniqueFd fifo_dir;  // without a mount namespace (see below)
    std::string fifo_name;
    log::debug("init " + c.id + ": started");
    // As pid 1 of its namespace, init ignores any signal it has no handler for;
    // `kill ID TERM` must still end a created container (as with runc), so
    // until execve (which resets them) terminating signals end init.
    struct sigaction sa = {};
    sa.sa_handler = exit_on_signal;
    for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE})
      ::sigaction(sig, &sa, nullptr);
    if (mnt_ns) {
      RootfsContext rc;
      rc.spec = &spec;
      rc.rootfs = c.rootfs;
      rc.new_userns = user_ns != nullptr;
      rc.new_cgroupns = cg_ns && cg_ns->path.empty();
      rc.cgroup_path = c.cgroup_path;
      rc.host_cgroups = &c.host_cgroups;
      rc.container_cgroups = &c.container_cgroups;
      prepare_rootfs(rc);
    }
    ch.send("hooks");
    std::string state_json = expect(ch, "hooks");
    run_hooks(spec.hooks.create_container, state_json, "createContainer");
    const Namespace* net_ns = find_namespace(spec, "network");
    if (net_ns && net_ns->path.empty()) bring_up_loopback();
    if (mnt_ns) {
      enter_rootfs(c.rootfs, c.no_pivot);
      log::debug("init " + c.id + ": pivoted");
      // sysctls go in before /proc/sys turns read-only.
      apply_sysctls(spec);
      finalize_rootfs(spec);
      // A missing cwd is created, as runc does (as root, before the user switch).
      if (spec.process) {
        try {
          mkdir_p(spec.process->cwd, 0755);
        } catch (const Error&) {
        }
      }
    } else {
      // No /proc of ours after this chroot: exec.fifo is reached from its directory instead of
      // through /proc/self/fd (the directory fd is close-on-exec, like every fd of the runtime).
      char target[PATH_MAX];
      ssize_t n = ::readlink(fd_path(c.fifo_fd).c_str(), target, sizeof target - 1);
      if (n <= 0) throw_errno("readlink exec.fifo");
      std::string fifo_host(target, static_cast<size_t>(n));
      size_t slash = fifo_host.rfind('/');
      fifo_dir = open_or_throw(fifo_host.substr(0, slash), O_PATH | O_DIRECTORY | O_CLOEXEC);
      fifo_name = fifo_host.substr(slash + 1);
      if (::chroot(c.rootfs.c_str()) != 0) throw_errno("chroot " + c.rootfs);
      if (::chdir("/") != 0) throw_errno("chdir /");
    }
    if (!spec.hostname.empty() && ::sethostname(spec.hostname.data(), spec.hostname.size()) != 0)
      throw_errno("sethostname " + spec.hostname);
    if (!spec.domainname.empty() && ::setdomainname(spec.domainname.data(), spec.domainname.size()) != 0)
      throw_errno("setdomainname " + spec.domainname);
    log::debug("init " + c.id + ": rootfs finalized");
    ProcessPlan plan = c.plan;
    std::string exe = prepare_process(plan, state_json);
    std::string fifo = fd_path(c.fifo_fd);
    ch.send("ready");
    ::close(ch.fd());
    // Block until `start` opens the other end.
    int fd = fifo_dir ? ::openat(fifo_dir.get(), fifo_name.c_str(), O_WRONLY | O_CLOEXEC)
                      : ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) _exit(1);
    if (::write(fd, "0", 1) != 1) _exit(1);
    // fd stays open (close-on-exec): `start` sees EOF only once the process has
    // been exec'd (or init died), so poststart hooks really run after the exec.
    if (!spec.hooks.start_container.empty()) {
      nlohmann::json started = nlohmann::json::parse(state_json);
      started["status"] = "created";
      run_hooks(spec.hooks.start_container, started.dump(), "startContainer");
    }
    exec_process(plan, exe, state_json);
  } catch (const std::exception& e) {
    ch.fail(e.what());
  }
}

void write_time_offsets(const Linux& l) {
  std::string text;
  for (const char* clock : {"monotonic", "boottime"}) {
    auto s = l.time_offsets_secs.find(clock);
    auto n = l.time_offsets_nanosecs.find(clock);
    if (s == l.time_offsets_secs.end() && n == l.time_offsets_nanosecs.end()) continue;
    text += std::string(clock) + " " + std::to_string(s == l.time_offsets_secs.end() ? 0 : s->second) + " " +
            std::to_string(n == l.time_offsets_nanosecs.end() ? 0 : n->second) + "\n";
  }
  if (!text.empty()) write_file("/proc/self/timens_offsets", text, O_WRONLY);
}

// Forks; the parent sends "pid <child>" on ch before the child may send
// anything, so the runtime always learns the pid first (the child could
// otherwise race ahead with "ready" and the runtime would wait on pid 0).
pid_t fork_after_reporting(const Channel& ch) {
  int gate[2];
  if (::pipe2(gate, O_CLOEXEC) != 0) throw_errno("pipe");
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    ::close(gate[1]);
    char byte = 0;
    ssize_t n;
    while ((n = ::read(gate[0], &byte, 1)) < 0 && errno == EINTR) {
    }
    // No byte: the parent failed to report us, so nobody supervises us; stop here.
    if (n != 1) _exit(1);
    ::close(gate[0]);
    return 0;
  }
  ::close(gate[0]);
  ch.send("pid " + std::to_string(pid));
  (void)!::write(gate[1], "1", 1);
  ::close(gate[1]);
  return pid;
}

// stage1: namespaces. Sends "pid <init>" and exits.
[[noreturn]] void stage1_main(const CreateContext& c, const Channel& ch) {
  try {
    const Spec& spec = *c.spec;
    ::close(c.lock_fd);
    if (int err = c.cgroup->join_v1_self(c.v1_task_files); err != 0) throw_errno("join cgroup " + c.cgroup_path, err);
    std::vector<Namespace> order;
    if (spec.linux_) order = spec.linux_->namespaces;
    // The user namespace first: the others are then owned by it.
    std::stable_sort(order.begin(), order.end(),
                     [](const Namespace& a, const Namespace& b) { return a.type == "user" && b.type != "user"; });
    int unshare_flags = 0;
    for (const auto& ns : order) {
      int flag = namespace_flags().at(ns.type);
      if (!ns.path.empty()) {
        UniqueFd fd = open_or_throw(ns.path, O_RDONLY);
        if (::setns(fd.get(), flag) != 0) throw_errno("join " + ns.type + " namespace " + ns.path);
        continue;
      }
      if (ns.type == "user") {
        if (::unshare(CLONE_NEWUSER) != 0) throw_errno("unshare user namespace");
        ch.send("userns");
        expect(ch, "id mappings");
        if (::setresgid(0, 0, 0) != 0) throw_errno("setgid 0 in user namespace");
        if (::setresuid(0, 0, 0) != 0) throw_errno("setuid 0 in user namespace");
        continue;
      }
      unshare_flags |= flag;
    }
    log::debug("stage1 " + c.id + ": in cgroup, namespaces joined");
    if (unshare_flags && ::unshare(unshare_flags) != 0) throw_errno("unshare namespaces");
    log::debug("stage1 " + c.id + ": namespaces unshared");
    if ((unshare_flags & CLONE_NEWTIME) && spec.linux_) write_time_offsets(*spec.linux_);
    pid_t pid = fork_after_reporting(ch);
    if (pid == 0) init_main(c, ch);
    _exit(0);
  } catch (const std::exception& e) {
    ch.fail(e.what());
  }
}

void write_id_mappings(pid_t pid, const Linux& l) {
  auto format = [](const std::vector<IdMapping>& maps) {
    std::string out;
    for (const auto& m : maps)
      out += std::to_string(m.container_id) + " " + std::to_string(m.host_id) + " " + std::to_string(m.size) + "\n";
    return out;
  };
  std::string base = "/proc/" + std::to_string(pid) + "/";
  if (!l.uid_mappings.empty()) write_file(base + "uid_map", format(l.uid_mappings), O_WRONLY);
  if (!l.gid_mappings.empty()) write_file(base + "gid_map", format(l.gid_mappings), O_WRONLY);
}

void wait_child(pid_t pid) {
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string user_name(uid_t uid) {
  auto entry = lookup_passwd_uid("/etc/passwd", uid);
  return entry ? entry->name : std::to_string(uid);
}

// The devices every container gets, after the spec's own rules (as runc appends them).
Resources with_default_devices(Resources r) {
  auto allow = [&](const char* type, std::optional<int64_t> major, std::optional<int64_t> minor, const char* access) {
    DeviceRule rule;
    rule.allow = true;
    rule.type = type;
    rule.major = major;
    rule.minor = minor;
    rule.access = access;
    r.devices.push_back(rule);
  };
  if (r.devices.empty()) return r;
  allow("c", std::nullopt, std::nullopt, "m");
  allow("b", std::nullopt, std::nullopt, "m");
  allow("c", 1, 3, "rwm");               // null
  allow("c", 1, 5, "rwm");               // zero
  allow("c", 1, 7, "rwm");               // full
  allow("c", 1, 8, "rwm");               // random
  allow("c", 1, 9, "rwm");               // urandom
  allow("c", 5, 0, "rwm");               // tty
  allow("c", 5, 1, "rwm");               // console
  allow("c", 5, 2, "rwm");               // ptmx
  allow("c", 136, std::nullopt, "rwm");  // pts
  return r;
}

Spec load_bundle_spec(const std::string& bundle) {
  std::string path = path_join(bundle, "config.json");
  auto text = read_file_if_exists(path);
  if (!text) throw Error("JSON specification file " + path + " not found");
  return parse_spec(*text);
}

struct InternalConsole {
  UniqueFd ours, theirs;
  static InternalConsole make() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair");
    return {UniqueFd(sv[0]), UniqueFd(sv[1])};
  }
};

struct Created {
  ContainerState state;
  Spec spec;
  UniqueFd terminal;  // our end of the internal console pair, if any
};

// Undoes a half-made container: kills what was started, removes cgroup and state.
class CreateRollback {
 public:
  CreateRollback(StateStore& store, std::string id) : store_(store), id_(std::move(id)) {}
  ~CreateRollback() {
    if (committed_) return;
    if (init_pid_ > 0) {
      ::kill(init_pid_, SIGKILL);
      wait_exit(init_pid_, 2000);
    }
    if (stage1_pid_ > 0) {
      ::kill(stage1_pid_, SIGKILL);
      wait_child(stage1_pid_);
    }
    if (cgroup_) {
      try {
        cgroup_->thaw();
      } catch (...) {
      }
      try {
        cgroup_->destroy();
      } catch (...) {
      }
    }
    try {
      store_.remove(id_);
    } catch (...) {
    }
  }
  void set_stage1(pid_t p) { stage1_pid_ = p; }
  void stage1_reaped() { stage1_pid_ = -1; }
  void set_init(pid_t p) { init_pid_ = p; }
  void set_cgroup(const Cgroup& cg) { cgroup_ = cg; }
  void commit() { committed_ = true; }

 private:
  StateStore& store_;
  std::string id_;
  pid_t stage1_pid_ = -1, init_pid_ = -1;
  std::optional<Cgroup> cgroup_;  // a copy: the caller's may be gone when we run
  bool committed_ = false;
};

// own_terminal: `run` in the foreground relays a terminal itself when no console socket is given;
// our end of that pair comes back in Created::terminal.
Created do_create(const GlobalOptions& g, const CreateOptions& o, bool own_terminal) {
  validate_container_id(o.id);
  std::string bundle = absolute_path(o.bundle);
  Spec spec = load_bundle_spec(bundle);
  if (!spec.process) throw Error("config.json: process must be set to create a container");
  if (spec.root_path.empty()) throw Error("config.json: root.path must be set");
  if (!spec.linux_) spec.linux_ = Linux{};
  std::string rootfs = spec.root_path[0] == '/' ? spec.root_path : path_join(bundle, spec.root_path);
  struct stat st;
  if (::stat(rootfs.c_str(), &st) != 0) throw_errno("rootfs " + rootfs);
  if (!S_ISDIR(st.st_mode)) throw Error("rootfs " + rootfs + " is not a directory");
  rootfs = absolute_path(rootfs);
  for (const auto& m : spec.mounts)
    if (m.destination.empty()) throw Error("config.json: mount destination must not be empty");
  if (find_namespace(spec, "user") && find_namespace(spec, "user")->path.empty() && spec.linux_->uid_mappings.empty())
    throw Error("config.json: a new user namespace needs linux.uidMappings");
  std::optional<InternalConsole> internal;
  if (spec.process->terminal && o.console_socket.empty() && own_terminal) internal = InternalConsole::make();
  if (spec.process->terminal && o.console_socket.empty() && !internal)
    throw Error("cannot allocate tty if berth will detach without setting console socket");
  if (!spec.process->terminal && !o.console_socket.empty())
    throw Error("cannot use console socket if berth will not detach or allocate tty");

  validate_sysctls(spec);
  std::unique_ptr<SeccompProgram> seccomp;
  if (spec.linux_->seccomp)
    seccomp = compile_seccomp_cached(*spec.linux_->seccomp, spec.raw["linux"]["seccomp"].dump(),
                                     path_join(g.root, kSeccompCacheDir));
  // Relative paths (and the default, the bare id) hang below our own cgroup in each
  // hierarchy, as runc does; absolute ones (containerd's) start at the hierarchy root.
  const std::string& asked = spec.linux_->cgroups_path;
  bool relative = asked.empty() || (asked[0] != '/' && asked.find(':') == std::string::npos);
  std::string cgroup_path = Cgroup::resolve_path(asked.empty() ? o.id : asked, o.id);
  CgroupLayout cgroup_layout = CgroupLayout::detect();
  CgroupLayout container_layout = relative ? cgroup_layout.below_own_cgroups() : cgroup_layout;

  StateStore store(g.root);
  store.create_dir(o.id);
  log::debug("create " + o.id + ": config parsed, state dir made");
  CreateRollback rollback(store, o.id);
  UniqueFd lock = store.lock(o.id);

  // The intent, recorded before anything exists: if this process is killed at any
  // later step, `delete` finds the cgroup (and below, the pid) to clean up.
  ContainerState state;
  state.id = o.id;
  state.bundle = bundle;
  state.rootfs = rootfs;
  state.cgroup_path = cgroup_path;
  state.cgroup_layout = cgroup_layout_to_json(container_layout);
  state.config = spec.raw;
  store.save_intent(state);

  std::string fifo = store.fifo_path(o.id);
  if (::mkfifo(fifo.c_str(), 0622) != 0) throw_errno("mkfifo " + fifo);
  // World-writable whatever the umask: init opens it after dropping to the container's user.
  if (::chmod(fifo.c_str(), 0622) != 0) throw_errno("chmod " + fifo);
  UniqueFd fifo_fd = open_or_throw(fifo, O_PATH);

  UniqueFd console;
  if (spec.process->terminal) {
    if (internal)
      console = std::move(internal->theirs);
    else
      console = connect_unix_socket(o.console_socket);
  }

  CreateContext c;
  c.spec = &spec;
  c.id = o.id;
  c.bundle = bundle;
  c.rootfs = rootfs;
  c.cgroup_path = cgroup_path;
  c.host_cgroups = cgroup_layout;
  c.container_cgroups = container_layout;
  c.no_pivot = o.no_pivot;
  c.plan.process = *spec.process;
  c.plan.seccomp = seccomp.get();
  if (spec.linux_->seccomp) c.plan.seccomp_listener = spec.linux_->seccomp->listener_path;
  c.plan.console_fd = console.get();
  c.plan.mount_dev_console = true;
  c.plan.preserve_fds = o.preserve_fds;
  c.fifo_fd = fifo_fd.get();
  c.lock_fd = lock.get();

  // The cgroup exists, with its limits, before anything runs in it.
  Cgroup cgroup(container_layout, cgroup_path);
  rollback.set_cgroup(cgroup);
  cgroup.create();
  if (spec.linux_->resources) cgroup.apply(with_default_devices(*spec.linux_->resources));
  c.cgroup = &cgroup;
  c.v1_task_files = cgroup.v1_task_files();
  UniqueFd v2fd = open_v2_dir(cgroup);
  log::debug("create " + o.id + ": cgroup " + cgroup_path + " ready");

  auto [parent_ch, child_ch] = make_channel();
  bool in_v2 = false;
  pid_t stage1 = fork_into_cgroup(v2fd.get(), &in_v2);
  if (stage1 < 0) throw_errno("fork");
  if (stage1 == 0) {
    parent_ch.close();
    stage1_main(c, child_ch);
  }
  rollback.set_stage1(stage1);
  child_ch.close();
  console.reset();
  if (!in_v2) place_in_v2(cgroup, stage1);

  pid_t init_pid = 0;
  for (;;) {
    std::string msg = expect(parent_ch, "the container was ready");
    if (msg == "userns") {
      write_id_mappings(stage1, *spec.linux_);
      parent_ch.send("ok");
    } else if (msg.rfind("pid ", 0) == 0) {
      init_pid = std::stoi(msg.substr(4));
      rollback.set_init(init_pid);
      state.pid = init_pid;
      state.pid_start_time = process_start_time(init_pid);
      store.save_init_pid(o.id, init_pid, state.pid_start_time);
      wait_child(stage1);
      rollback.stage1_reaped();
    } else if (msg == "hooks") {
      log::debug("create " + o.id + ": rootfs mounted, running host hooks");
      std::string state_json = creating_state_json(c, init_pid, "creating");
      try {
        run_hooks(spec.hooks.prestart, state_json, "prestart", bundle);
        run_hooks(spec.hooks.create_runtime, state_json, "createRuntime", bundle);
      } catch (const Error& e) {
        parent_ch.send("error " + std::string(e.what()));
        throw;
      }
      parent_ch.send(state_json);
    } else if (msg == "ready") {
      log::debug("create " + o.id + ": init ready");
      break;
    } else {
      throw Error("unexpected message from container init: " + msg);
    }
  }

  state.created = rfc3339_now();
  state.owner = user_name(::geteuid());
  store.save(state);
  write_pid_file(o.pid_file, init_pid);
  rollback.commit();
  return {state, std::move(spec), internal ? std::move(internal->ours) : UniqueFd()};
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

// Forwards terminal-ish signals to the container while `run`/`exec` waits.
volatile sig_atomic_t g_forward_pid = 0;
void forward_signal(int sig) {
  if (g_forward_pid > 0) ::kill(g_forward_pid, sig);
}
void install_forwarding(pid_t pid) {
  g_forward_pid = pid;
  struct sigaction sa = {};
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH}) ::sigaction(sig, &sa, nullptr);
}

// Relays our stdio to a pty master until it closes (run -t / exec -t without a console socket).
void relay_terminal(int master) {
  struct termios saved;
  bool raw = ::isatty(0) && ::tcgetattr(0, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    ::cfmakeraw(&t);
    ::tcsetattr(0, TCSANOW, &t);
  }
  bool in_open = true;
  char buf[8192];
  for (;;) {
    struct pollfd fds[2] = {{master, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) {
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;
      if (::write(1, buf, static_cast<size_t>(n)) < 0) break;
    }
    if (fds[1].revents) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0)
        in_open = false;
      else if (::write(master, buf, static_cast<size_t>(n)) < 0)
        break;
    }
  }
  if (raw) ::tcsetattr(0, TCSANOW, &saved);
}

int wait_for_exit_with_terminal(pid_t pid, int console_sock) {
  UniqueFd master;
  if (console_sock >= 0) {
    master = recv_fd(console_sock);
    relay_terminal(master.get());
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 255;
  }
  return exit_code_of(status);
}

}  // namespace

// ---------------------------------------------------------------- public operations

void create_container(const GlobalOptions& g, const CreateOptions& o) { do_create(g, o, false); }

int run_container(const GlobalOptions& g, const CreateOptions& o, bool detach, bool keep) {
  // Become the reaper of init (stage1 exits), so we can wait for it.
  if (!detach && ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) throw_errno("prctl subreaper");
  Created created = do_create(g, o, !detach);
  StateStore store(g.root);
  signal_start(store, created.state);
  log::debug("run " + o.id + ": started");
  run_poststart(created.state, created.spec.hooks);
  if (detach) return 0;
  install_forwarding(created.state.pid);
  int code = wait_for_exit_with_terminal(created.state.pid, created.terminal.get());
  log::debug("run " + o.id + ": exited");
  if (!keep) {
    try {
      kill_all(created.state, SIGKILL);
      cleanup_stopped(store, created.state, &created.spec.hooks);
      log::debug("run " + o.id + ": cleaned up");
    } catch (const Error& e) {
      fprintf(stderr, "berth: %s\n", e.what());
    }
  }
  return code;
}

std::vector<pid_t> container_pids(const GlobalOptions& g, const std::string& id) {
  StateStore store(g.root);
  ContainerState state = store.load(id);
  if (state.cgroup_path.empty()) return {};
  return state_cgroup(state).pids();
}

void pause_container(const GlobalOptions& g, const std::string& id) {
  StateStore store(g.root);
  ContainerState state = store.load(id);
  Status st = current_status(store, state);
  if (st != Status::Running && st != Status::Created)
    throw Error("container not running or created: " + std::string(status_name(st)));
  state_cgroup(state).freeze();
}

void resume_container(const GlobalOptions& g, const std::string& id) {
  StateStore store(g.root);
  ContainerState state = store.load(id);
  Status st = current_status(store, state);
  if (st != Status::Paused) throw Error("container not paused");
  state_cgroup(state).thaw();
}

void update_container(const GlobalOptions& g, const std::string& id, const Resources& resources) {
  StateStore store(g.root);
  ContainerState state = store.load(id);
  if (current_status(store, state) == Status::Stopped) throw Error("container not running");
  state_cgroup(state).apply(resources);
}

// ---------------------------------------------------------------- exec

namespace {

Process exec_process_from_options(const Spec& spec, const ExecOptions& o) {
  if (!o.process_file.empty()) {
    std::string text = o.process_file == "-" ? std::string() : read_file(o.process_file);
    if (o.process_file == "-") {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(0, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    }
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error("process " + o.process_file + ": invalid JSON: " + e.what());
    }
    return parse_process(doc, "process");
  }
  if (o.args.empty()) throw Error("exec: no command given (args or --process)");
  Process p = spec.process ? *spec.process : Process{};
  p.args = o.args;
  p.terminal = o.tty;
  p.console_size.reset();
  for (const auto& e : o.env) {
    auto eq = e.find('=');
    std::string key = e.substr(0, eq);
    std::erase_if(p.env, [&](const std::string& x) { return x.compare(0, key.size() + 1, key + "=") == 0; });
    p.env.push_back(e);
  }
  if (!o.cwd.empty()) p.cwd = o.cwd;
  if (!o.user.empty()) {
    auto colon = o.user.find(':');
    try {
      p.user.uid = static_cast<uint32_t>(std::stoul(o.user.substr(0, colon)));
      if (colon != std::string::npos) p.user.gid = static_cast<uint32_t>(std::stoul(o.user.substr(colon + 1)));
    } catch (...) {
      throw Error("invalid --user " + o.user + " (want uid[:gid])");
    }
  }
  if (!o.additional_gids.empty()) p.user.additional_gids = o.additional_gids;
  if (!o.caps.empty()) {
    if (!p.capabilities) p.capabilities = Capabilities{};
    for (auto c : o.caps) {
      if (c.rfind("CAP_", 0) != 0) c = "CAP_" + c;
      for (auto* set : {&p.capabilities->bounding, &p.capabilities->effective, &p.capabilities->permitted,
                        &p.capabilities->inheritable, &p.capabilities->ambient})
        set->push_back(c);
    }
  }
  if (o.no_new_privs) p.no_new_privileges = true;
  if (!o.apparmor.empty()) p.apparmor_profile = o.apparmor;
  if (!o.process_label.empty()) p.selinux_label = o.process_label;
  return p;
}

}  // namespace

int exec_in_container(const GlobalOptions& g, const ExecOptions& o) {
  StateStore store(g.root);
  ContainerState state = store.load(o.id);
  Status st = current_status(store, state);
  if (st == Status::Stopped || st == Status::Creating) throw Error("cannot exec in a stopped container");
  if (st == Status::Paused && !o.ignore_paused) throw Error("cannot exec in a paused container");
  Spec spec = parse_spec(state.config);
  Process proc = exec_process_from_options(spec, o);
  if (proc.terminal && o.console_socket.empty() && o.detach)
    throw Error("cannot allocate tty if berth will detach without setting console socket");
  if (!proc.terminal && !o.console_socket.empty())
    throw Error("cannot use console socket if berth will not detach or allocate tty");
  if (proc.terminal && o.console_socket.empty() && !::isatty(0))
    throw Error("cannot allocate a tty for exec: stdin is not a terminal (use --console-socket)");
  std::unique_ptr<SeccompProgram> seccomp;
  if (spec.linux_ && spec.linux_->seccomp)
    seccomp = compile_seccomp_cached(*spec.linux_->seccomp, spec.raw["linux"]["seccomp"].dump(),
                                     path_join(g.root, kSeccompCacheDir));

  // Open every namespace of the container before joining any: /proc changes after the mount ns.
  struct NsFd {
    std::string type;
    int flag;
    UniqueFd fd;
  };
  std::vector<NsFd> nsfds;
  if (spec.linux_) {
    const char* order[] = {"user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"};
    for (const char* type : order) {
      if (!find_namespace(spec, type)) continue;
      const char* name = std::string(type) == "mount" ? "mnt" : std::string(type) == "network" ? "net" : type;
      std::string path = "/proc/" + std::to_string(state.pid) + "/ns/" + name;
      struct stat theirs, ours;
      if (::stat(path.c_str(), &theirs) != 0) throw_errno("namespace " + path);
      std::string self = std::string("/proc/self/ns/") + name;
      if (::stat(self.c_str(), &ours) == 0 && ours.st_ino == theirs.st_ino) continue;
      nsfds.push_back({type, namespace_flags().at(type), open_or_throw(path, O_RDONLY)});
    }
  }
  bool own_tty = proc.terminal && o.console_socket.empty();
  std::optional<InternalConsole> internal;
  UniqueFd console;
  if (proc.terminal) {
    if (own_tty) {
      internal = InternalConsole::make();
      console.reset(::fcntl(internal->theirs.get(), F_DUPFD_CLOEXEC, 3));
      internal->theirs.reset();
    } else {
      console = connect_unix_socket(o.console_socket);
    }
  }
  if (!o.detach && ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) throw_errno("prctl subreaper");

  ProcessPlan plan;
  plan.process = proc;
  plan.seccomp = seccomp.get();
  if (spec.linux_ && spec.linux_->seccomp) plan.seccomp_listener = spec.linux_->seccomp->listener_path;
  plan.console_fd = console.get();
  plan.preserve_fds = o.preserve_fds;
  std::string state_json = oci_state_json(state, st).dump();

  std::optional<Cgroup> cgroup;
  if (!state.cgroup_path.empty()) cgroup = state_cgroup(state);
  std::vector<std::string> task_files = cgroup ? cgroup->v1_task_files() : std::vector<std::string>{};
  UniqueFd v2fd = cgroup ? open_v2_dir(*cgroup) : UniqueFd();

  auto [parent_ch, child_ch] = make_channel();
  bool in_v2 = false;
  pid_t stage1 = fork_into_cgroup(v2fd.get(), &in_v2);
  if (stage1 < 0) throw_errno("fork");
  if (stage1 == 0) {
    parent_ch.close();
    try {
      if (cgroup) {
        if (int err = cgroup->join_v1_self(task_files); err != 0) throw_errno("join cgroup of container " + o.id, err);
      }
      for (auto& ns : nsfds)
        if (::setns(ns.fd.get(), ns.flag) != 0) throw_errno("join " + ns.type + " namespace of container " + o.id);
      pid_t pid = fork_after_reporting(child_ch);
      if (pid == 0) {
        try {
          if (plan.process.terminal && ::setsid() < 0) throw_errno("setsid");
          std::string exe = prepare_process(plan, state_json);
          child_ch.send("ready");
          exec_process(plan, exe, state_json);
        } catch (const std::exception& e) {
          child_ch.fail(e.what());
        }
      }
      _exit(0);
    } catch (const std::exception& e) {
      child_ch.fail(e.what());
    }
  }
  child_ch.close();
  console.reset();
  pid_t pid = 0;
  try {
    if (cgroup && !in_v2) place_in_v2(*cgroup, stage1);
    for (;;) {
      std::string msg = expect(parent_ch, "exec");
      if (msg.rfind("pid ", 0) == 0) {
        pid = std::stoi(msg.substr(4));
        wait_child(stage1);
        stage1 = -1;
      } else if (msg == "ready") {
        break;
      }
    }
    // After "ready" the channel closes on a successful execve, or carries the exec error.
    std::string after = parent_ch.recv();
    if (after.rfind("error ", 0) == 0) throw Error(after.substr(6));
  } catch (...) {
    if (stage1 > 0) {
      ::kill(stage1, SIGKILL);
      wait_child(stage1);
    }
    if (pid > 0) wait_child(pid);
    throw;
  }
  write_pid_file(o.pid_file, pid);
  if (o.detach) return 0;
  install_forwarding(pid);
  return wait_for_exit_with_terminal(pid, internal ? internal->ours.get() : -1);
}

// ---------------------------------------------------------------- misc

int parse_signal(const std::string& text) {
  static const std::map<std::string, int> names = {
      {"ABRT", SIGABRT},     {"ALRM", SIGALRM},   {"BUS", SIGBUS},   {"CHLD", SIGCHLD}, {"CLD", SIGCHLD},
      {"CONT", SIGCONT},     {"FPE", SIGFPE},     {"HUP", SIGHUP},   {"ILL", SIGILL},   {"INT", SIGINT},
      {"IO", SIGIO},         {"IOT", SIGIOT},     {"KILL", SIGKILL}, {"PIPE", SIGPIPE}, {"POLL", SIGPOLL},
      {"PROF", SIGPROF},     {"PWR", SIGPWR},     {"QUIT", SIGQUIT}, {"SEGV", SIGSEGV}, {"STKFLT", SIGSTKFLT},
      {"STOP", SIGSTOP},     {"SYS", SIGSYS},     {"TERM", SIGTERM}, {"TRAP", SIGTRAP}, {"TSTP", SIGTSTP},
      {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},   {"URG", SIGURG},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
      {"VTALRM", SIGVTALRM}, {"WINCH", SIGWINCH}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
  };
  if (!text.empty() && std::all_of(text.begin(), text.end(), ::isdigit)) {
    long n = std::strtol(text.c_str(), nullptr, 10);
    if (n < 1 || n > SIGRTMAX) throw Error("invalid signal: " + text);
    return static_cast<int>(n);
  }
  std::string name = text;
  std::transform(name.begin(), name.end(), name.begin(), ::toupper);
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  if (auto it = names.find(name); it != names.end()) return it->second;
  // RTMIN+n / RTMAX-n
  if (name.rfind("RTMIN", 0) == 0 || name.rfind("RTMAX", 0) == 0) {
    bool min = name[4] == 'N';
    int base = min ? SIGRTMIN : SIGRTMAX;
    if (name.size() == 5) return base;
    char op = name[5];
    std::string num = name.substr(6);
    if (!num.empty() && std::all_of(num.begin(), num.end(), ::isdigit) && ((min && op == '+') || (!min && op == '-'))) {
      int sig = min ? base + std::stoi(num) : base - std::stoi(num);
      if (sig >= SIGRTMIN && sig <= SIGRTMAX) return sig;
    }
  }
  throw Error("invalid signal: " + text);
}

nlohmann::json runtime_features() {
  nlohmann::json ns = nlohmann::json::array();
  for (auto& [name, flag] : namespace_flags()) ns.push_back(name);
  nlohmann::json opts = nlohmann::json::array();
  for (const char* o : {"async",
                        "atime",
                        "bind",
                        "defaults",
                        "dev",
                        "diratime",
                        "dirsync",
                        "exec",
                        "iversion",
                        "lazytime",
                        "loud",
                        "mand",
                        "noatime",
                        "nodev",
                        "nodiratime",
                        "noexec",
                        "noiversion",
                        "nolazytime",
                        "nomand",
                        "norelatime",
                        "nostrictatime",
                        "nosuid",
                        "nosymfollow",
                        "private",
                        "ratime",
                        "rbind",
                        "rdev",
                        "rdiratime",
                        "relatime",
                        "remount",
                        "rexec",
                        "rnoatime",
                        "rnodev",
                        "rnodiratime",
                        "rnoexec",
                        "rnorelatime",
                        "rnostrictatime",
                        "rnosuid",
                        "rnosymfollow",
                        "ro",
                        "rprivate",
                        "rrelatime",
                        "rro",
                        "rrw",
                        "rshared",
                        "rslave",
                        "rstrictatime",
                        "rsuid",
                        "rsymfollow",
                        "runbindable",
                        "rw",
                        "shared",
                        "silent",
                        "slave",
                        "strictatime",
                        "suid",
                        "symfollow",
                        "sync",
                        "tmpcopyup",
                        "unbindable"})
    opts.push_back(o);
  nlohmann::json caps = nlohmann::json::array();
  for (int c = 0; c <= last_capability(); ++c) {
    char* name = cap_to_name(c);
    std::string n = name;
    cap_free(name);
    std::transform(n.begin(), n.end(), n.begin(), ::toupper);
    caps.push_back(n);
  }
  return {
      {"ociVersionMin", "1.0.0"},
      {"ociVersionMax", "1.2.0"},
      {"hooks", {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}},
      {"mountOptions", opts},
      {"linux",
       {{"namespaces", ns},
        {"capabilities", caps},
        {"cgroup", {{"v1", true}, {"v2", true}, {"systemd", false}, {"systemdUser", false}, {"rdma", false}}},
        {"seccomp",
         {{"enabled", true},
          {"actions",
           {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}},
          {"operators",
           {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
            "SCMP_CMP_NE"}},
          {"archs", {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"}}}},
        {"apparmor", {{"enabled", lsm_enabled("apparmor")}}},
        {"selinux", {{"enabled", lsm_enabled("selinux")}}},
        {"intelRdt", {{"enabled", false}}},
        {"mountExtensions", {{"idmap", {{"enabled", false}}}}}}},
      {"annotations", {{"org.opencontainers.runc.version", "berth-0.1.0"}}},
  };
}

namespace {

// Opens a binary through a read-only bind mount made in a throwaway mount namespace (runc 1.2
// does the same): no copy, and writes through /proc/<pid>/exe get EROFS. same_as: an open fd of
// the file that must be the one seen. Returns an invalid fd when that is not possible.
UniqueFd read_only_view(const char* path, int same_as) {
  // The slot the child fills: it shares our fd table (CLONE_FILES).
  UniqueFd slot(::fcntl(same_as, F_DUPFD_CLOEXEC, 3));
  if (!slot) return UniqueFd();
  long pid = ::syscall(SYS_clone, CLONE_FILES | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return UniqueFd();
  if (pid == 0) {
    // Only raw syscalls here: this child shares our descriptors, not our locks.
    if (::unshare(CLONE_NEWNS) != 0) _exit(1);
    if (::mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr) != 0) _exit(2);
    if (::mount(path, path, nullptr, MS_BIND, nullptr) != 0) _exit(3);
    if (::mount(nullptr, path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) _exit(4);
    int fd = ::open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) _exit(5);
    if (::dup3(fd, slot.get(), O_CLOEXEC) < 0) _exit(6);
    _exit(0);
  }
  int status = 0;
  while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return UniqueFd();
  struct stat a, b;
  struct statvfs sv;
  // Must be the same file, and really read-only now.
  if (::fstat(slot.get(), &a) != 0 || ::fstat(same_as, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
    return UniqueFd();
  if (::fstatvfs(slot.get(), &sv) != 0 || !(sv.f_flag & ST_RDONLY)) return UniqueFd();
  return slot;
}

}  // namespace

void ensure_sealed_self(char** argv) {
  UniqueFd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (!self) throw_errno("open /proc/self/exe");
  int seals = ::fcntl(self.get(), F_GET_SEALS);
  if (seals >= 0 && (seals & F_SEAL_WRITE)) return;  // already running from the sealed copy
  struct statvfs sv;
  if (::fstatvfs(self.get(), &sv) == 0 && (sv.f_flag & ST_RDONLY)) return;  // read-only mount: nothing can write it
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n > 0 && ::getenv("BERTH_SEAL_WITH_MEMFD") == nullptr) {
    path[n] = '\0';
    UniqueFd ro = read_only_view(path, self.get());
    if (ro) {
      ::syscall(SYS_execveat, ro.get(), "", argv, environ, AT_EMPTY_PATH);
      // Fall through to the memfd copy if the kernel refuses.
    }
  }
  UniqueFd mem(::memfd_create("berth", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mem) throw_errno("memfd_create");
  struct stat st;
  if (::fstat(self.get(), &st) != 0) throw_errno("stat /proc/self/exe");
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = ::sendfile(mem.get(), self.get(), &off, static_cast<size_t>(st.st_size - off));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("copy /proc/self/exe to memfd");
    }
    if (n == 0) break;
  }
  if (::fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
    throw_errno("seal memfd");
  ::fexecve(mem.get(), argv, environ);
  throw_errno("re-exec from sealed memfd");
}

int open_read_only_view(const std::string& path) {
  UniqueFd file(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!file) return -1;
  return read_only_view(path.c_str(), file.get()).release();
}

}  // namespace berth::runtime
