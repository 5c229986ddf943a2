// `exec`: a new process in a running container, through `berth-runtime exec` with a process
// file derived from the container's own process (same capabilities, seccomp, rlimits).
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "engine/engine.hpp"
#include "engine/oci_spec.hpp"
#include "util/fd.hpp"
#include "util/fd_limit.hpp"
#include "util/fs.hpp"

namespace berth::engine {

namespace {

using nlohmann::json;

UniqueFd receive_fd(int sock) {
  msghdr msg{};
  char name[512];
  iovec iov{name, sizeof name};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0)
    if (errno != EINTR) throw_errno("receive the exec's terminal");
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (n == 0 || !c || c->cmsg_type != SCM_RIGHTS) throw Error("receive the exec's terminal: no fd in the message");
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return UniqueFd(fd);
}

// Relays between the local terminal and the pty master until the exec'd process is gone;
// returns its wait status, or -1 when the terminal closed first.
int relay_pty(int master, pid_t child, int in_fd, int out_fd) {
  termios saved{};
  bool raw = ::isatty(in_fd) && ::tcgetattr(in_fd, &saved) == 0;
  if (raw) {
    termios t = saved;
    ::cfmakeraw(&t);
    ::tcsetattr(in_fd, TCSANOW, &t);
    winsize ws{};
    if (::ioctl(in_fd, TIOCGWINSZ, &ws) == 0) ::ioctl(master, TIOCSWINSZ, &ws);
  }
  char buf[65536];
  bool in_open = in_fd >= 0;
  for (;;) {
    pollfd fds[2] = {{master, POLLIN, 0}, {in_open ? in_fd : -1, POLLIN, 0}};
    if (::poll(fds, 2, 200) < 0 && errno != EINTR) break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;  // EIO: every slave fd closed
      write_all(out_fd, std::string_view(buf, static_cast<size_t>(n)), "stdout");
    }
    if (in_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(in_fd, buf, sizeof buf);
      if (n <= 0) {
        in_open = false;
        char eof = 4;  // ^D: EOF for the program reading the terminal
        [[maybe_unused]] ssize_t w = ::write(master, &eof, 1);
      } else {
        write_all(master, std::string_view(buf, static_cast<size_t>(n)), "exec terminal");
      }
    }
    int status;
    if (::waitpid(child, &status, WNOHANG) == child) {
      // Drain what is left, then hand the status back through a re-wait below.
      while (true) {
        pollfd p{master, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) break;
        ssize_t n = ::read(master, buf, sizeof buf);
        if (n <= 0) break;
        write_all(out_fd, std::string_view(buf, static_cast<size_t>(n)), "stdout");
      }
      if (raw) ::tcsetattr(in_fd, TCSANOW, &saved);
      return status;
    }
  }
  if (raw) ::tcsetattr(in_fd, TCSANOW, &saved);
  return -1;
}

// Whether name resolves (in the container's root, through its PATH) to an executable file:
// 0, or docker's exit status for why not (127 not found, 126 not executable). Checked before the
// runtime runs, because the runtime's own failure and the command's exit share one exit status.
int check_command(const std::string& rootfs, const std::string& name, const std::vector<std::string>& env,
                  std::string* message) {
  UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return 0;  // can't tell: let the runtime decide
  auto probe = [&](const std::string& path) -> int {
    open_how how{};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT;
    int fd = static_cast<int>(::syscall(SYS_openat2, root.get(), path.c_str(), &how, sizeof how));
    if (fd < 0) return 127;
    UniqueFd f(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0) return 127;
    if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) return 126;
    return 0;
  };
  if (name.find('/') != std::string::npos) {
    int r = probe(name);
    if (r == 127) *message = "exec: \"" + name + "\": stat " + name + ": no such file or directory";
    if (r == 126) *message = "exec: \"" + name + "\": permission denied";
    return r;
  }
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : env)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  int best = 127;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t colon = path.find(':', pos);
    std::string dir = path.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
    if (!dir.empty()) {
      int r = probe(dir + "/" + name);
      if (r == 0) return 0;
      if (r == 126) best = 126;
    }
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  *message = best == 127 ? "exec: \"" + name + "\": executable file not found in $PATH"
                         : "exec: \"" + name + "\": permission denied";
  return best;
}

}  // namespace

int exec_in(Engine& engine, const Container& c, const ExecRequest& req) {
  if (c.state != "running") {
    if (c.state == "paused")
      throw StatusError("container " + c.id + " is paused, unpause the container before exec", 1);
    throw StatusError("container " + c.id + " is not running", 1);
  }
  if (req.args.empty()) throw StatusError("no command specified", 1);
  std::string dir = engine.container_dir(c.id);
  json spec = json::parse(read_file(dir + "/config.json"));
  json process = spec["process"];
  process["args"] = req.args;
  process["terminal"] = req.tty;
  process.erase("consoleSize");
  if (!req.workdir.empty()) process["cwd"] = req.workdir;
  // Env: the container's, then -e (a later key wins).
  std::vector<std::string> env;
  for (const auto& e : process.value("env", json::array())) env.push_back(e.get<std::string>());
  for (const auto& e : req.env) {
    std::string key = e.substr(0, e.find('='));
    bool replaced = false;
    for (auto& cur : env)
      if (cur.substr(0, cur.find('=')) == key) {
        cur = e;
        replaced = true;
      }
    if (!replaced) env.push_back(e);
  }
  process["env"] = env;
  std::string why;
  if (int r = check_command(dir + "/rootfs", req.args[0], env, &why); r != 0)
    throw StatusError("OCI runtime exec failed: exec failed: unable to start container process: " + why, r);
  if (!req.user.empty()) {
    std::string rootfs = dir + "/rootfs";
    ResolvedUser u = resolve_user(req.user, read_file_if_exists(rootfs + "/etc/passwd").value_or(""),
                                  read_file_if_exists(rootfs + "/etc/group").value_or(""));
    process["user"] = {{"uid", u.uid}, {"gid", u.gid}, {"additionalGids", u.additional_gids}};
  }
  // Unique per exec, also among the API server's concurrent ones (same pid).
  static std::atomic<unsigned> exec_counter{0};
  std::string exec_tag = std::to_string(::getpid()) + "-" + std::to_string(exec_counter++);
  std::string process_path = engine.state_dir(c.id) + "/exec-" + exec_tag + ".json";
  write_file_atomic(process_path, process.dump(), 0600);
  struct Unlink {
    std::string p;
    ~Unlink() { ::unlink(p.c_str()); }
  } unlink_process{process_path};

  std::vector<std::string> args = {engine.runtime_path(), "--root",    engine.runtime_root(), "exec",
                                   "--process",           process_path};
  if (req.detach) args.push_back("--detach");
  std::string console_path;
  UniqueFd listener;
  if (req.tty) {
    console_path = engine.state_dir(c.id) + "/exec-" + exec_tag + ".sock";
    listener = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (console_path.size() >= sizeof addr.sun_path) throw Error("console socket path too long: " + console_path);
    std::memcpy(addr.sun_path, console_path.c_str(), console_path.size());
    ::unlink(console_path.c_str());
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw_errno("bind " + console_path);
    if (::listen(listener.get(), 1) != 0) throw_errno("listen " + console_path);
    args.insert(args.end(), {"--console-socket", console_path});
    if (!req.detach) args.push_back("--tty");
  }
  args.push_back(c.id);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    restore_open_file_limit();
    // The caller's stdio for the runtime (and so the process, without a tty).
    if (req.out_fd != 1) ::dup2(req.out_fd, 1);
    if (req.err_fd != 2) ::dup2(req.err_fd, 2);
    if (!req.interactive || req.detach) {
      int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, 0);
    } else if (req.in_fd != 0) {
      ::dup2(req.in_fd, 0);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  if (req.tty) {
    struct UnlinkSocket {
      std::string p;
      ~UnlinkSocket() { ::unlink(p.c_str()); }
    } unlink_socket{console_path};
    pollfd p{listener.get(), POLLIN, 0};
    for (;;) {
      int r = ::poll(&p, 1, 100);
      if (r > 0) break;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) throw_errno("accept " + console_path);
    UniqueFd master = receive_fd(conn.get());
    if (req.detach) {
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (req.on_terminal) req.on_terminal(master.get());
    int st = relay_pty(master.get(), pid, req.in_fd, req.out_fd);
    if (st >= 0) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace berth::engine
