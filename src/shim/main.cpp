// berth-shim: the per-container parent process. The contract with the engine is protocol.hpp;
// this file is the event loop around it. One process per container, so it stays small: no
// iostreams, no nlohmann::json, poll() over a handful of fds, one log writer thread.
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "logs/json_file.hpp"
#include "runtime/runtime.hpp"
#include "shim/log_pump.hpp"
#include "shim/protocol.hpp"
#include "shim/wire.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

extern char** environ;

namespace berth::shim {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kLogRing = 128 * 1024;
// When the log ring is full the shim stops reading the container's output (its pipe fills and the
// container waits) for at most this long; then output is read and dropped (counted in log_dropped).
constexpr int64_t kLogStallMs = 250;
// An attach client that falls this far behind is disconnected (not fed with holes in its stream):
// the container never waits for a reader.
constexpr size_t kClientBacklog = 256 * 1024;
// Client stdin not yet taken by the container; past it the shim stops reading stdin frames, so a
// fast writer is slowed down instead of growing the shim.
constexpr size_t kStdinBacklog = 256 * 1024;
constexpr size_t kMaxClients = 64;
constexpr int kFlushClientsMs = 2000;
// How long an exited container's output pipes are read before its exit is reported.
constexpr int64_t kDrainMs = 500;
constexpr off_t kShimLogMax = 64 * 1024;

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t mono_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// Diagnostics go to fd 2: the engine's stderr before detaching, <state-dir>/shim.log after.
void diag(std::string_view msg) {
  std::string line = rfc3339_nano(now_ns()) + " berth-shim: ";
  line.append(msg);
  line += '\n';
  (void)!::write(2, line.data(), line.size());
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void set_nonblock(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

struct Options {
  std::string id, bundle, runtime, runtime_root, state_dir, status_file;
  int sync_fd = -1;
  std::string log_path;
  logs::Limits log_limits{-1, 1};  // docker's json-file default: no rotation
  bool tty = false, open_stdin = false, stdin_once = false, wait_attach = false;
  // --runtime is berth's own: start and delete run the linked-in runtime library in a forked
  // child, not two more execs of it on every container's start and exit path. create still
  // execs it (the container's init is a fork of it, sealed against CVE-2019-5736).
  bool builtin_runtime = false;
  RestartPolicy restart;
  std::string exit_command;
  std::vector<std::string> exit_args;
  std::string removal_claim;  // protocol.hpp, "Exit command"
  // Health check (--health-process): the process file for `RUNTIME exec --process`.
  std::string health_process;
  int64_t health_interval_ns = 30000000000, health_timeout_ns = 30000000000, health_start_period_ns = 0,
          health_start_interval_ns = 5000000000;
  int health_retries = 3;
};

int64_t parse_number(const std::string& flag, const std::string& text) {
  if (text.empty() || text.size() > 18) throw Error(flag + ": not a number: " + text);
  int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') throw Error(flag + ": not a number: " + text);
    n = n * 10 + (c - '0');
  }
  return n;
}

// Under AddressSanitizer the forked child may find ASan's allocator locked by the log thread
// (ASan's allocator, unlike glibc's malloc, is not made fork-safe here): sanitized builds exec the
// runtime for start and delete instead (--builtin-runtime is ignored there).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kForkedRuntimeCalls = false;
#else
constexpr bool kForkedRuntimeCalls = true;
#endif

Options parse_args(int argc, char** argv) {
  Options o;
  using StringFlag = std::pair<std::string_view, std::string Options::*>;
  static constexpr StringFlag kStrings[] = {{"--id", &Options::id},
                                            {"--bundle", &Options::bundle},
                                            {"--runtime", &Options::runtime},
                                            {"--runtime-root", &Options::runtime_root},
                                            {"--state-dir", &Options::state_dir},
                                            {"--status-file", &Options::status_file},
                                            {"--log-path", &Options::log_path},
                                            {"--exit-command", &Options::exit_command},
                                            {"--removal-claim", &Options::removal_claim},
                                            {"--health-process", &Options::health_process}};
  using BoolFlag = std::pair<std::string_view, bool Options::*>;
  static constexpr BoolFlag kBools[] = {{"--tty", &Options::tty},
                                        {"--stdin", &Options::open_stdin},
                                        {"--stdin-once", &Options::stdin_once},
                                        {"--wait-attach", &Options::wait_attach},
                                        {"--builtin-runtime", &Options::builtin_runtime}};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error("flag needs a value: " + flag);
      return argv[++i];
    };
    bool known = false;
    for (const auto& [name, member] : kStrings)
      if (flag == name) {
        o.*member = value();
        known = true;
      }
    for (const auto& [name, member] : kBools)
      if (flag == name) {
        o.*member = true;
        known = true;
      }
    if (known) continue;
    if (flag == "--sync-fd") {
      o.sync_fd = static_cast<int>(parse_number(flag, value()));
    } else if (flag == "--log-max-size") {
      std::string v = value();
      o.log_limits.max_size = v == "-1" ? -1 : parse_number(flag, v);
    } else if (flag == "--log-max-file") {
      o.log_limits.max_files = static_cast<int>(parse_number(flag, value()));
      if (o.log_limits.max_files < 1) throw Error("--log-max-file must be at least 1");
    } else if (flag == "--restart") {
      std::string v = value();
      if (!parse_restart_policy(v, o.restart)) throw Error("invalid --restart policy: " + v);
    } else if (flag == "--health-interval" || flag == "--health-timeout" || flag == "--health-start-period" ||
               flag == "--health-start-interval") {
      int64_t ns = parse_number(flag, value());
      if (flag == "--health-interval") o.health_interval_ns = ns;
      if (flag == "--health-timeout") o.health_timeout_ns = ns;
      if (flag == "--health-start-period") o.health_start_period_ns = ns;
      if (flag == "--health-start-interval") o.health_start_interval_ns = ns;
    } else if (flag == "--health-retries") {
      o.health_retries = static_cast<int>(std::min<int64_t>(parse_number(flag, value()), 1 << 30));
    } else if (flag == "--exit-arg") {
      o.exit_args.push_back(value());
    } else {
      throw Error("unknown flag: " + flag);
    }
  }
  for (const auto& [name, member] : kStrings)
    if ((o.*member).empty() && name != "--log-path" && name != "--exit-command" && name != "--health-process" &&
        name != "--removal-claim")
      throw Error("missing required flag " + std::string(name));
  if (o.sync_fd == -1) throw Error("missing required flag --sync-fd");
  if (o.sync_fd < 3) throw Error("--sync-fd must be a descriptor >= 3 (0-2 become /dev/null and shim.log)");
  if (!o.exit_args.empty() && o.exit_command.empty()) throw Error("--exit-arg without --exit-command");
  if (!o.removal_claim.empty() && o.exit_command.empty()) throw Error("--removal-claim without --exit-command");
  if (!kForkedRuntimeCalls) o.builtin_runtime = false;
  if (o.health_interval_ns <= 0 || o.health_timeout_ns <= 0 || o.health_start_interval_ns <= 0)
    throw Error("--health-interval, --health-timeout and --health-start-interval must be positive");
  if (o.health_retries < 1) o.health_retries = 1;
  return o;
}

// A unix socket address for dir/name; paths past sun_path's 108 bytes go through
// /proc/<pid>/fd/<dirfd>/name, which works for bind and for other processes' connect.
std::string socket_path(int dir_fd, const std::string& dir, const char* name) {
  std::string full = dir + "/" + name;
  if (full.size() < sizeof(sockaddr_un::sun_path)) return full;
  return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(dir_fd) + "/" + name;
}

UniqueFd listen_unix(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw Error("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock) throw_errno("socket");
  ::unlink(path.c_str());  // a stale one from a dead shim (the lock is ours)
  mode_t old = ::umask(0077);
  int rc = ::bind(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0) throw_errno("bind " + path);
  if (::listen(sock.get(), 16) != 0) throw_errno("listen " + path);
  return sock;
}

UniqueFd recv_fd(int sock) {
  char name[256];
  struct iovec iov = {name, sizeof name};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0) {
    if (errno != EINTR) throw_errno("receive the terminal from the console socket");
  }
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (n <= 0 || !cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
    throw Error("console socket: message without a file descriptor");
  int fd;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return UniqueFd(fd);
}

// Restores what the shim changed for itself, so the runtime and the container start with
// default signal dispositions and an empty mask (ignored signals survive execve).
void reset_signals_in_child() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::signal(SIGHUP, SIG_DFL);
}

std::vector<char*> c_argv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

struct Client {
  UniqueFd fd;
  std::string in;
  std::string out;
  size_t out_off = 0;
  bool hello = false;
  bool want_stdin = false, want_stdout = false, want_stderr = false;
  bool closing = false;  // close once out is flushed
  size_t pending() const { return out.size() - out_off; }
};

class Shim {
 public:
  explicit Shim(Options o) : o_(std::move(o)), sync_fd_(o_.sync_fd) {}

  // Before detaching: everything whose failure the engine should see on the shim's stderr.
  void prepare();
  // In the detached child: new session, subreaper, stdio to shim.log, then run().
  int detached_main(const sigset_t& mask);
  void fail_sync(const std::string& error, int exit_code);

 private:
  int run();
  enum class Phase { Created, Running, Backoff, Done };

  struct Outcome {
    bool ok = true;
    std::string error;
    int exit_code = 0;
  };

  std::vector<std::string> runtime_args(std::initializer_list<std::string> args) const;
  pid_t spawn(std::vector<std::string> args, int in, int out, int err);
  int wait_capturing(pid_t pid, int capture_fd, std::string& captured);
  Outcome run_runtime(std::initializer_list<std::string> args);
  Outcome runtime_outcome(const std::string& name, pid_t pid, int err_fd);
  template <class Op>
  Outcome run_builtin(const char* name, Op op);
  Outcome create();
  Outcome start();
  void runtime_delete();
  void write_sync(const std::string& line);
  void write_status();
  bool stop_requested() const { return ::faccessat(dir_fd_.get(), "stop", F_OK, 0) == 0; }

  void loop();
  void accept_clients();
  void read_client(Client& c);
  void handle_frame(Client& c, uint8_t type, std::string_view payload);
  void write_client(Client& c);
  void drop_client(Client& c);
  void queue_frame(Client& c, uint8_t type, std::string_view payload);
  bool log_stalled();
  enum class ReadResult { Drained, Stalled, MoreLeft };
  ReadResult read_output(UniqueFd& fd, LogPump::Kind kind, int max_reads);
  void drain_output();
  void distribute(LogPump::Kind kind, std::string_view data);
  void flush_stdin();
  void close_stdin();
  void reap();
  void on_init_exit(int status);
  void begin_start();
  void restart();
  void reload_restart_policy();
  void finish();
  void flush_clients();
  void spawn_exit_command();
  std::string exit_payload() const;
  // Health checks: one `RUNTIME exec` child at a time, its output read by the loop and its exit
  // reaped by reap() like init's.
  bool health_enabled() const { return !o_.health_process.empty(); }
  void schedule_health();
  void start_health_check();
  void read_health_output();
  void health_timeout();
  void on_health_exit(int status);
  void cancel_health_check();

  Options o_;
  int sync_fd_;
  UniqueFd dir_fd_, lock_fd_, listen_fd_, sig_fd_, null_fd_;
  // The runtime binary through a read-only bind mount (runtime::open_read_only_view), made at the
  // first spawn: the runtime exec'ed from it skips its own protective re-exec (one exec fewer
  // per create, and per health check).
  UniqueFd runtime_view_;
  bool runtime_view_tried_ = false;
  std::string attach_path_;
  std::unique_ptr<LogPump> log_;
  std::vector<std::unique_ptr<Client>> clients_;

  Phase phase_ = Phase::Created;
  pid_t init_pid_ = -1;
  UniqueFd out_fd_, err_fd_;  // with a tty, out_fd_ is the pty master (read and written)
  UniqueFd stdin_fd_;         // the write end of the container's stdin pipe (no tty)
  bool stdin_open_ = false;
  bool stdin_close_pending_ = false;
  std::string stdin_buf_;
  bool start_pending_ = false;

  std::string state_ = "created";
  int64_t started_ns_ = 0, finished_ns_ = 0, started_mono_ = 0;
  int exit_code_ = 0;
  std::string error_;
  int restart_count_ = 0;
  int64_t backoff_ms_ = 0, restart_at_ms_ = 0;
  int64_t log_full_since_ = 0;
  HealthState health_;
  pid_t health_pid_ = -1;      // the running check's `RUNTIME exec`, -1 when none
  UniqueFd health_out_;        // its stdout and stderr
  std::string health_output_;  // the first kHealthOutputMax bytes of it
  bool health_truncated_ = false, health_timed_out_ = false, health_discard_ = false;
  int64_t health_start_ns_ = 0, health_deadline_ms_ = 0, next_health_ms_ = 0;
  char read_buf_[kReadChunk];
};

void Shim::prepare() {
  dir_fd_ = UniqueFd(::open(o_.state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd_) throw_errno("open state directory " + o_.state_dir);
  lock_fd_ = UniqueFd(::openat(dir_fd_.get(), "shim.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd_) throw_errno("open " + o_.state_dir + "/shim.lock");
  // Held for the shim's whole life (inherited across the detaching fork): the engine's liveness test.
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) throw Error("a shim is already running for " + o_.state_dir);
    throw_errno("lock " + o_.state_dir + "/shim.lock");
  }
  attach_path_ = o_.state_dir + "/attach.sock";
  listen_fd_ = listen_unix(socket_path(dir_fd_.get(), o_.state_dir, "attach.sock"));
  null_fd_ = UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd_) throw_errno("open /dev/null");
  if (::access(o_.runtime.c_str(), X_OK) != 0) throw_errno("runtime " + o_.runtime);
}

void Shim::write_sync(const std::string& line) {
  if (sync_fd_ < 0) return;
  write_all(sync_fd_, line + "\n");
  ::close(sync_fd_);
  sync_fd_ = -1;
}

void Shim::fail_sync(const std::string& error, int exit_code) {
  write_sync("{\"ok\":false,\"error\":" + json_string(error) + ",\"exit_code\":" + std::to_string(exit_code) + "}");
}

void Shim::write_status() {
  std::string s = "{\"state\":" + json_string(state_) + ",\"pid\":" + std::to_string(init_pid_ > 0 ? init_pid_ : 0) +
                  ",\"shim_pid\":" + std::to_string(::getpid()) + ",\"exit_code\":" + std::to_string(exit_code_) +
                  ",\"started_at\":\"" + rfc3339_nano(started_ns_) + "\",\"finished_at\":\"" +
                  rfc3339_nano(finished_ns_) + "\",\"restart_count\":" + std::to_string(restart_count_) +
                  ",\"oom_killed\":false,\"log_dropped\":" + std::to_string(log_ ? log_->dropped() : 0) +
                  ",\"error\":" + json_string(error_);
  if (health_enabled() && state_ != "created") {
    s += ",\"health\":";
    health_.append_json(s);
  }
  s += "}\n";
  // Atomic against a kill at any point: a temporary file in the same directory, then rename. Not
  // fsync'ed: it describes processes, which a power loss ends anyway (the engine then reads a
  // missing or torn file as a shim that died), and the flush sat on every start's and exit's path.
  std::string tmp = o_.status_file + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) {
    diag(errno_message("write status " + tmp, errno));
    return;
  }
  write_all(fd.get(), s);
  fd.reset();
  if (::rename(tmp.c_str(), o_.status_file.c_str()) != 0) diag(errno_message("rename to " + o_.status_file, errno));
}

std::vector<std::string> Shim::runtime_args(std::initializer_list<std::string> args) const {
  std::vector<std::string> v = {o_.runtime, "--root", o_.runtime_root};
  v.insert(v.end(), args);
  return v;
}

// fork + exec with the given fds as stdin/stdout/stderr (-1: /dev/null). Everything the child
// touches is prepared before fork: the log writer thread may hold the allocator's lock.
pid_t Shim::spawn(std::vector<std::string> args, int in, int out, int err) {
  if (!runtime_view_tried_ && args[0] == o_.runtime) {
    runtime_view_tried_ = true;
    runtime_view_ = UniqueFd(runtime::open_read_only_view(o_.runtime));
  }
  const int exe = args[0] == o_.runtime ? runtime_view_.get() : -1;
  std::vector<char*> argv = c_argv(args);
  int fds[3] = {in >= 0 ? in : null_fd_.get(), out >= 0 ? out : null_fd_.get(), err >= 0 ? err : null_fd_.get()};
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork " + args[0]);
  if (pid == 0) {
    reset_signals_in_child();
    // All our fds are >= 3 (0-2 are /dev/null or shim.log), so dup2 never overwrites a source.
    for (int i = 0; i < 3; ++i)
      if (::dup2(fds[i], i) < 0) _exit(125);
    if (exe >= 0) ::syscall(SYS_execveat, exe, "", argv.data(), environ, AT_EMPTY_PATH);
    ::execve(argv[0], argv.data(), environ);
    const char msg[] = "berth-shim: exec runtime failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    _exit(125);
  }
  return pid;
}

// Waits for pid while reading capture_fd (its stderr) so a chatty runtime never blocks on a full
// pipe. For `create` the pipe stays open afterwards (the container inherits it): what is read
// before the runtime's exit is the runtime's, since the container runs nothing before `start`.
int Shim::wait_capturing(pid_t pid, int capture_fd, std::string& captured) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  set_nonblock(capture_fd);
  // Reads what is in the pipe; false at EOF.
  auto take = [&]() {
    for (;;) {
      ssize_t got = ::read(capture_fd, read_buf_, sizeof read_buf_);
      if (got > 0) {
        if (captured.size() < 64 * 1024) captured.append(read_buf_, static_cast<size_t>(got));
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      return got != 0;
    }
  };
  bool open = true;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) throw_errno("waitpid " + std::to_string(pid));
    // Without a pidfd (old kernels) the exit is polled for.
    struct pollfd pfds[2] = {{open ? capture_fd : -1, POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
    if (::poll(pfds, 2, pidfd ? -1 : 10) < 0 && errno != EINTR) throw_errno("poll");
    if (open && pfds[0].revents) open = take();
  }
  if (open) take();
  return status;
}

// A runtime command whose stdio are not the container's (start, delete).
Shim::Outcome Shim::run_runtime(std::initializer_list<std::string> args) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd r(p[0]), w(p[1]);
  pid_t pid = spawn(runtime_args(args), -1, -1, w.get());
  w.reset();
  return runtime_outcome(*args.begin(), pid, r.get());
}

// Waits for the runtime command `name` (pid, its stderr on err_fd) and reads its outcome.
Shim::Outcome Shim::runtime_outcome(const std::string& name, pid_t pid, int err_fd) {
  std::string captured;
  int status = wait_capturing(pid, err_fd, captured);
  Outcome out;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    if (!captured.empty()) diag("runtime " + name + ": " + runtime_error_line(captured));
    return out;
  }
  out.ok = false;
  out.error = runtime_error_line(captured);
  if (out.error.empty()) out.error = "runtime " + name + " failed with status " + std::to_string(status);
  out.exit_code = exit_code_for_runtime_error(out.error);
  return out;
}

Shim::Outcome Shim::create() {
  UniqueFd console_listen;
  std::string console_path;
  if (o_.tty) {
    console_path = socket_path(dir_fd_.get(), o_.state_dir, "console.sock");
    console_listen = listen_unix(console_path);
  }
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  auto make_pipe = [](UniqueFd& r, UniqueFd& w) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe");
    r.reset(p[0]);
    w.reset(p[1]);
  };
  if (o_.open_stdin && !o_.tty) make_pipe(in_r, in_w);
  if (!o_.tty) make_pipe(out_r, out_w);
  make_pipe(err_r, err_w);  // with a tty: only the runtime's own messages

  std::string pid_file = o_.state_dir + "/init.pid";
  ::unlink(pid_file.c_str());
  std::vector<std::string> args = runtime_args({"create", "--bundle", o_.bundle, "--pid-file", pid_file});
  if (o_.tty) {
    args.push_back("--console-socket");
    args.push_back(console_path);
  }
  args.push_back(o_.id);
  pid_t pid = spawn(std::move(args), in_r.get(), out_r ? out_w.get() : -1, err_w.get());
  in_r.reset();
  out_w.reset();
  err_w.reset();
  std::string captured;
  int status = wait_capturing(pid, err_r.get(), captured);
  Outcome out;
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    out.ok = false;
    out.error = runtime_error_line(captured);
    if (out.error.empty()) out.error = "runtime create failed with status " + std::to_string(status);
    out.exit_code = exit_code_for_runtime_error(out.error);
    if (o_.tty) ::unlink(console_path.c_str());
    return out;
  }
  if (!captured.empty()) diag("runtime create: " + runtime_error_line(captured));
  try {
    std::string text;
    UniqueFd pf(::open(pid_file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!pf) throw_errno("open " + pid_file);
    ssize_t n = ::read(pf.get(), read_buf_, 32);
    if (n <= 0) throw Error("read " + pid_file + ": empty");
    init_pid_ = static_cast<pid_t>(std::atoi(std::string(read_buf_, static_cast<size_t>(n)).c_str()));
    if (init_pid_ <= 0) throw Error("read " + pid_file + ": no pid");
    if (o_.tty) {
      // The runtime sent the master before it exited: the connection is queued.
      struct pollfd pfd = {console_listen.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 5000) <= 0) throw Error("the runtime did not connect to the console socket");
      UniqueFd conn(::accept4(console_listen.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn) throw_errno("accept on " + console_path);
      out_fd_ = recv_fd(conn.get());
      ::unlink(console_path.c_str());
      stdin_open_ = o_.open_stdin;
    } else {
      out_fd_ = std::move(out_r);
      err_fd_ = std::move(err_r);
      stdin_fd_ = std::move(in_w);
      stdin_open_ = static_cast<bool>(stdin_fd_);
    }
  } catch (const Error& e) {
    if (o_.tty) ::unlink(console_path.c_str());
    out.ok = false;
    out.error = e.what();
    out.exit_code = 125;
    return out;
  }
  if (out_fd_) set_nonblock(out_fd_.get());
  if (err_fd_) set_nonblock(err_fd_.get());
  if (stdin_fd_) set_nonblock(stdin_fd_.get());
  stdin_buf_.clear();
  stdin_close_pending_ = false;
  return out;
}

// A runtime operation done by the linked-in runtime library, in a forked child: no exec, no
// start-up of a second binary, and the shim's own resident memory does not grow by the pages
// the runtime code touches. glibc's fork leaves malloc usable in the child although the log
// thread may hold its lock; the child reports like the runtime CLI, on stderr.
template <class Op>
Shim::Outcome Shim::run_builtin(const char* name, Op op) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd r(p[0]), w(p[1]);
  runtime::GlobalOptions g{.root = o_.runtime_root};
  pid_t pid = ::fork();
  if (pid < 0) throw_errno(std::string("fork for runtime ") + name);
  if (pid == 0) {
    reset_signals_in_child();
    if (::dup2(w.get(), 2) < 0) _exit(125);
    try {
      op(g);
      _exit(0);
    } catch (const std::exception& e) {
      std::string line = std::string("berth: ") + e.what() + "\n";
      (void)!::write(2, line.data(), line.size());
    }
    _exit(1);
  }
  w.reset();
  return runtime_outcome(name, pid, r.get());
}

Shim::Outcome Shim::start() {
  Outcome out = o_.builtin_runtime
                    ? run_builtin("start", [&](const runtime::GlobalOptions& g) { runtime::start_container(g, o_.id); })
                    : run_runtime({"start", o_.id});
  if (out.ok) {
    started_ns_ = now_ns();
    started_mono_ = mono_ms();
    // As docker: a running container has exit code 0; finished_at keeps the previous run's.
    exit_code_ = 0;
    state_ = "running";
    phase_ = Phase::Running;
    if (health_enabled()) {
      health_.reset();
      schedule_health();
    }
  }
  return out;
}

void Shim::runtime_delete() {
  Outcome out =
      o_.builtin_runtime
          ? run_builtin("delete", [&](const runtime::GlobalOptions& g) { runtime::delete_container(g, o_.id, true); })
          : run_runtime({"delete", "--force", o_.id});
  if (!out.ok) diag("runtime delete: " + out.error);
}

void redirect_stdio(int dir_fd);

int Shim::detached_main(const sigset_t& mask) {
  ::setsid();  // out of the engine's session and process group: its signals don't reach us
  redirect_stdio(dir_fd_.get());
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    std::string msg = errno_message("prctl PR_SET_CHILD_SUBREAPER", errno);
    diag(msg);
    fail_sync(msg, 125);
    return 1;
  }
  sig_fd_ = UniqueFd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sig_fd_) {
    std::string msg = errno_message("signalfd", errno);
    diag(msg);
    fail_sync(msg, 125);
    return 1;
  }
  try {
    return run();
  } catch (const std::exception& e) {
    // Unexpected (fork or pipe failed): report what we can and leave nothing running.
    diag(e.what());
    error_ = e.what();
    exit_code_ = 125;
    fail_sync(error_, exit_code_);
    try {
      if (phase_ != Phase::Done) finish();
    } catch (const std::exception& e2) {
      diag(e2.what());
    }
    return 1;
  }
}

int Shim::run() {
  if (!o_.log_path.empty()) {
    try {
      log_ = std::make_unique<LogPump>(o_.log_path, o_.log_limits, kLogRing);
    } catch (const std::exception& e) {
      error_ = e.what();
      exit_code_ = 125;
      fail_sync(error_, exit_code_);
      finish();
      return 0;
    }
  }
  Outcome created = create();
  if (!created.ok) {
    error_ = created.error;
    exit_code_ = created.exit_code;
    diag("create: " + error_);
    fail_sync(error_, exit_code_);
    finish();
    return 0;
  }
  if (o_.wait_attach) {
    // The status first: the engine may read it as soon as it has the sync line.
    state_ = "created";
    write_status();
    write_sync("{\"ok\":true,\"created\":true,\"pid\":" + std::to_string(init_pid_) +
               ",\"shim_pid\":" + std::to_string(::getpid()) + "}");
  } else {
    Outcome started = start();
    if (!started.ok) {
      error_ = started.error;
      exit_code_ = started.exit_code;
      diag("start: " + error_);
      fail_sync(error_, exit_code_);
      finish();
      return 0;
    }
    write_status();
    write_sync("{\"ok\":true,\"pid\":" + std::to_string(init_pid_) + ",\"shim_pid\":" + std::to_string(::getpid()) +
               "}");
  }
  loop();
  return 0;
}

void Shim::loop() {
  std::vector<struct pollfd> pfds;
  std::vector<Client*> owners;  // the client of each pollfd, or nullptr
  while (phase_ != Phase::Done) {
    pfds.clear();
    owners.clear();
    auto add = [&](int fd, short events, Client* c) {
      pfds.push_back({fd, events, 0});
      owners.push_back(c);
    };
    add(sig_fd_.get(), POLLIN, nullptr);
    add(listen_fd_.get(), POLLIN, nullptr);
    // A full log ring: leave output in the pipes a little, and look again soon.
    const bool stalled = (out_fd_ || err_fd_) && log_stalled();
    const size_t out_i = pfds.size();
    add(out_fd_ && !stalled ? out_fd_.get() : -1, POLLIN, nullptr);
    add(err_fd_ && !stalled ? err_fd_.get() : -1, POLLIN, nullptr);
    const size_t health_i = pfds.size();
    add(health_out_ ? health_out_.get() : -1, POLLIN, nullptr);
    const int in_fd = o_.tty ? out_fd_.get() : stdin_fd_.get();
    const size_t in_i = pfds.size();
    add(!stdin_buf_.empty() && in_fd >= 0 ? in_fd : -1, POLLOUT, nullptr);
    for (auto& c : clients_) {
      short events = 0;
      if (stdin_buf_.size() < kStdinBacklog && !c->closing) events |= POLLIN;
      if (c->pending() > 0) events |= POLLOUT;
      add(c->fd.get(), events, c.get());
    }
    int timeout = -1;
    // While waiting to restart, look for the stop file every 100 ms: a stopped container must not
    // keep `berth stop` waiting for a back-off of up to a minute.
    if (phase_ == Phase::Backoff) timeout = static_cast<int>(std::clamp<int64_t>(restart_at_ms_ - mono_ms(), 0, 100));
    if (stalled) timeout = 5;
    // The next health check, or the running one's timeout.
    int64_t health_due = -1;
    if (health_pid_ > 0 && !health_timed_out_ && !health_discard_)
      health_due = health_deadline_ms_;
    else if (health_pid_ <= 0 && health_enabled() && phase_ == Phase::Running && init_pid_ > 0)
      health_due = next_health_ms_;
    if (health_due >= 0) {
      int wait = static_cast<int>(std::clamp<int64_t>(health_due - mono_ms(), 0, 1 << 30));
      timeout = timeout < 0 ? wait : std::min(timeout, wait);
    }
    int n = ::poll(pfds.data(), pfds.size(), timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      diag(errno_message("poll", errno));
      ::sleep(1);
      continue;
    }
    // Output first, so that an exit seen in the same round comes after the output before it.
    if (pfds[out_i].revents) read_output(out_fd_, LogPump::kStdoutRecord, 4);
    if (pfds[out_i + 1].revents) read_output(err_fd_, LogPump::kStderrRecord, 4);
    if (pfds[health_i].revents) read_health_output();
    if (pfds[in_i].revents) flush_stdin();
    for (size_t i = in_i + 1; i < pfds.size(); ++i) {
      Client* c = owners[i];
      if (!c->fd) continue;
      if (pfds[i].revents & POLLOUT) write_client(*c);
      if (c->fd && (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) read_client(*c);
    }
    if (pfds[1].revents) accept_clients();
    if (pfds[0].revents) {
      struct signalfd_siginfo si;
      while (::read(sig_fd_.get(), &si, sizeof si) == sizeof si) {
      }
      reap();
    }
    std::erase_if(clients_, [](const std::unique_ptr<Client>& c) { return !c->fd; });
    if (start_pending_ && phase_ == Phase::Created) begin_start();
    start_pending_ = false;
    if (phase_ == Phase::Backoff && (mono_ms() >= restart_at_ms_ || stop_requested())) restart();
    if (health_enabled() && phase_ == Phase::Running && init_pid_ > 0) {
      if (health_pid_ <= 0 && mono_ms() >= next_health_ms_) start_health_check();
      if (health_pid_ > 0 && !health_timed_out_ && !health_discard_ && mono_ms() >= health_deadline_ms_)
        health_timeout();
    }
  }
}

void Shim::schedule_health() {
  int64_t wait_ns = health_interval(health_, now_ns(), started_ns_, o_.health_start_period_ns, o_.health_interval_ns,
                                    o_.health_start_interval_ns);
  next_health_ms_ = mono_ms() + (wait_ns + 999999) / 1000000;
}

// `RUNTIME exec --process FILE ID` with stdout and stderr into one pipe, as docker's probe.
void Shim::start_health_check() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    diag(errno_message("pipe for the health check", errno));
    schedule_health();
    return;
  }
  UniqueFd r(p[0]), w(p[1]);
  ::unlinkat(dir_fd_.get(), "health.pid", 0);
  try {
    health_pid_ =
        spawn(runtime_args({"exec", "--pid-file", o_.state_dir + "/health.pid", "--process", o_.health_process, o_.id}),
              -1, w.get(), w.get());
  } catch (const std::exception& e) {
    diag(std::string("health check: ") + e.what());
    schedule_health();
    return;
  }
  health_out_ = std::move(r);
  set_nonblock(health_out_.get());
  health_output_.clear();
  health_truncated_ = health_timed_out_ = health_discard_ = false;
  health_start_ns_ = now_ns();
  health_deadline_ms_ = mono_ms() + (o_.health_timeout_ns + 999999) / 1000000;
}

void Shim::read_health_output() {
  while (health_out_) {
    ssize_t n = ::read(health_out_.get(), read_buf_, sizeof read_buf_);
    if (n > 0) {
      append_health_output(health_output_, health_truncated_, std::string_view(read_buf_, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    health_out_.reset();  // EOF
  }
}

// Kills the check: its process in the container (the runtime wrote its pid) and the runtime.
void Shim::health_timeout() {
  health_timed_out_ = true;
  cancel_health_check();
  health_discard_ = false;
}

void Shim::cancel_health_check() {
  if (health_pid_ <= 0) return;
  health_discard_ = true;
  UniqueFd pf(::openat(dir_fd_.get(), "health.pid", O_RDONLY | O_CLOEXEC));
  if (pf) {
    char buf[32];
    ssize_t n = ::read(pf.get(), buf, sizeof buf - 1);
    if (n > 0) {
      buf[n] = '\0';
      // The runtime waits for this process, so while the runtime is unreaped the pid is still its.
      pid_t pid = static_cast<pid_t>(std::atoi(buf));
      if (pid > 0) ::kill(pid, SIGKILL);
    }
  }
  ::kill(health_pid_, SIGKILL);
}

void Shim::on_health_exit(int status) {
  health_pid_ = -1;
  read_health_output();  // what the check wrote before it exited
  health_out_.reset();
  ::unlinkat(dir_fd_.get(), "health.pid", 0);
  if (phase_ != Phase::Running || init_pid_ <= 0) return;
  if (health_discard_) {
    schedule_health();
    return;
  }
  HealthResult r;
  r.start_ns = health_start_ns_;
  r.end_ns = now_ns();
  if (health_timed_out_) {
    r.exit_code = -1;
    r.output = "Health check exceeded timeout (" + go_duration(o_.health_timeout_ns) + ")";
  } else {
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
    // Exactly sized: five of these stay in the log.
    r.output.reserve(health_output_.size() + (health_truncated_ ? 3 : 0));
    r.output = health_output_;
    if (health_truncated_) r.output += "...";
  }
  std::string().swap(health_output_);
  health_.record(std::move(r), started_ns_, o_.health_start_period_ns, o_.health_retries);
  write_status();
  // Every check allocates and frees a few KiB of output and status text: give the free pages back.
  malloc_trim(0);
  schedule_health();
}

void Shim::accept_clients() {
  for (;;) {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) diag(errno_message("accept on attach.sock", errno));
      return;
    }
    if (clients_.size() >= kMaxClients) {
      diag("too many attach clients; refused one");
      continue;
    }
    auto c = std::make_unique<Client>();
    c->fd = std::move(fd);
    clients_.push_back(std::move(c));
  }
}

void Shim::read_client(Client& c) {
  ssize_t n;
  while ((n = ::read(c.fd.get(), read_buf_, sizeof read_buf_)) < 0 && errno == EINTR) {
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {
    drop_client(c);
    return;
  }
  c.in.append(read_buf_, static_cast<size_t>(n));
  size_t off = 0;
  while (c.fd) {
    uint8_t type = 0;
    std::string_view payload;
    size_t used = 0;
    FrameStatus st = decode_frame(std::string_view(c.in).substr(off), type, payload, used);
    if (st == FrameStatus::Incomplete) break;
    if (st == FrameStatus::TooBig || (!c.hello && type != kHello)) {
      diag(st == FrameStatus::TooBig ? "attach client sent an oversized frame" : "attach client sent no hello");
      drop_client(c);
      return;
    }
    handle_frame(c, type, payload);
    off += used;
  }
  c.in.erase(0, off);
}

void Shim::handle_frame(Client& c, uint8_t type, std::string_view payload) {
  switch (type) {
    case kHello:
      if (c.hello) break;
      c.hello = true;
      c.want_stdin = json_bool(payload, "stdin");
      c.want_stdout = json_bool(payload, "stdout");
      c.want_stderr = json_bool(payload, "stderr");
      // The client's other frames already read (a resize, say) are applied before `start`.
      if (phase_ == Phase::Created && o_.wait_attach) start_pending_ = true;
      break;
    case kStdin:
      if (c.want_stdin && stdin_open_ && !stdin_close_pending_) {
        stdin_buf_.append(payload);
        flush_stdin();
      }
      break;
    case kCloseStdin:
      if (c.want_stdin && stdin_open_) {
        stdin_close_pending_ = true;
        flush_stdin();
      }
      break;
    case kResize:
      if (o_.tty && out_fd_) {
        int64_t rows = json_uint(payload, "rows"), cols = json_uint(payload, "cols");
        if (rows > 0 && cols > 0 && rows <= 0xFFFF && cols <= 0xFFFF) {
          struct winsize ws = {};
          ws.ws_row = static_cast<unsigned short>(rows);
          ws.ws_col = static_cast<unsigned short>(cols);
          if (::ioctl(out_fd_.get(), TIOCSWINSZ, &ws) != 0) diag(errno_message("resize the terminal", errno));
        }
      }
      break;
    default:
      break;  // unknown frames are ignored, so newer engines can talk to older shims
  }
}

void Shim::queue_frame(Client& c, uint8_t type, std::string_view payload) {
  if (!c.fd) return;
  // A slow client is disconnected rather than waited for or fed a stream with holes.
  if (c.pending() + kFrameHeader + payload.size() > kClientBacklog) {
    diag("attach client too slow; disconnected");
    drop_client(c);
    return;
  }
  bool was_empty = c.pending() == 0;
  append_frame(c.out, type, payload);
  if (was_empty) write_client(c);
}

void Shim::write_client(Client& c) {
  while (c.fd && c.pending() > 0) {
    ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_off, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      drop_client(c);
      return;
    }
    c.out_off += static_cast<size_t>(n);
  }
  if (!c.fd) return;
  c.out.clear();
  c.out_off = 0;
  if (c.out.capacity() > 64 * 1024) std::string().swap(c.out);
  if (c.closing) c.fd.reset();
}

void Shim::drop_client(Client& c) {
  if (!c.fd) return;
  c.fd.reset();
  c.out.clear();
  c.in.clear();
  // --stdin-once: the container's stdin ends with the first client that attached to it.
  if (c.hello && c.want_stdin && o_.stdin_once && stdin_open_) {
    stdin_close_pending_ = true;
    flush_stdin();
  }
}

// True while output must stay in the pipe because the log ring is full (for kLogStallMs at most).
bool Shim::log_stalled() {
  if (!log_ || log_->has_room(kReadChunk)) {
    log_full_since_ = 0;
    return false;
  }
  if (log_full_since_ == 0) log_full_since_ = mono_ms();
  return mono_ms() - log_full_since_ < kLogStallMs;
}

// Reads what is there (at most max_reads chunks, so one busy stream can't starve the loop).
Shim::ReadResult Shim::read_output(UniqueFd& fd, LogPump::Kind kind, int max_reads) {
  for (int i = 0; fd;) {
    if (i == max_reads) return ReadResult::MoreLeft;
    if (log_stalled()) return ReadResult::Stalled;
    ssize_t n = ::read(fd.get(), read_buf_, sizeof read_buf_);
    if (n > 0) {
      distribute(kind, std::string_view(read_buf_, static_cast<size_t>(n)));
      ++i;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return ReadResult::Drained;
    // EOF, or EIO on a pty master whose last slave closed.
    if (o_.tty && kind == LogPump::kStdoutRecord) stdin_open_ = false;
    fd.reset();
  }
  return ReadResult::Drained;
}

// Everything the container wrote before it exited, so it precedes the exit frame: read until
// EOF (EIO for a pty, whose output reaches the master asynchronously). When a pid-namespace init
// exits, the rest of the namespace is gone too and EOF is immediate; processes outside one could
// keep the pipes open, so the wait is bounded.
void Shim::drain_output() {
  const int64_t deadline = mono_ms() + kDrainMs;
  for (;;) {
    bool stalled = false;
    if (out_fd_) stalled |= read_output(out_fd_, LogPump::kStdoutRecord, 16) == ReadResult::Stalled;
    if (err_fd_) stalled |= read_output(err_fd_, LogPump::kStderrRecord, 16) == ReadResult::Stalled;
    int64_t left = deadline - mono_ms();
    if ((!out_fd_ && !err_fd_) || left <= 0) return;
    if (stalled) {
      int64_t stall_left = kLogStallMs - (mono_ms() - log_full_since_);
      log_->wait_for_room(kReadChunk, static_cast<int>(std::clamp<int64_t>(stall_left, 1, left)));
      continue;
    }
    struct pollfd pfds[2] = {{out_fd_ ? out_fd_.get() : -1, POLLIN, 0}, {err_fd_ ? err_fd_.get() : -1, POLLIN, 0}};
    if (::poll(pfds, 2, static_cast<int>(left)) < 0 && errno != EINTR) return;
  }
}

void Shim::distribute(LogPump::Kind kind, std::string_view data) {
  if (log_) log_->push(kind, data, now_ns());
  uint8_t type = kind == LogPump::kStderrRecord ? kStderr : kStdout;
  for (auto& c : clients_) {
    if (!c->fd || !c->hello || c->closing) continue;
    if (type == kStdout ? c->want_stdout : c->want_stderr) queue_frame(*c, type, data);
  }
}

void Shim::flush_stdin() {
  const int fd = o_.tty ? out_fd_.get() : stdin_fd_.get();
  if (fd < 0) {
    stdin_buf_.clear();
    return;
  }
  while (!stdin_buf_.empty()) {
    ssize_t n = ::write(fd, stdin_buf_.data(), stdin_buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // EPIPE: nobody reads the container's stdin any more.
      stdin_buf_.clear();
      close_stdin();
      return;
    }
    stdin_buf_.erase(0, static_cast<size_t>(n));
  }
  if (stdin_buf_.capacity() > 64 * 1024) std::string().swap(stdin_buf_);
  if (stdin_close_pending_) close_stdin();
}

void Shim::close_stdin() {
  stdin_close_pending_ = false;
  if (!stdin_open_) return;
  stdin_open_ = false;
  if (o_.tty) {
    // The pty stays (it is stdout too): EOF is ^D, as a terminal user would type it.
    if (out_fd_) (void)!::write(out_fd_.get(), "\x04", 1);
  } else {
    stdin_fd_.reset();
  }
}

void Shim::reap() {
  for (;;) {
    int status;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;
    if (pid == init_pid_) {
      on_init_exit(status);
    } else if (pid == health_pid_) {
      on_health_exit(status);
    }
  }
}

std::string Shim::exit_payload() const {
  std::string p = "{\"exit_code\":" + std::to_string(exit_code_);
  if (!error_.empty()) p += ",\"error\":" + json_string(error_);
  return p + "}";
}

// `update --restart` on a running container: the engine leaves the new policy next to the status
// file, read at each exit (a missing or unreadable file keeps the policy the shim started with).
void Shim::reload_restart_policy() {
  std::string path = o_.status_file.substr(0, o_.status_file.rfind('/') + 1) + "restart-policy";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return;
  char buf[64];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n <= 0) return;
  RestartPolicy policy;
  if (parse_restart_policy(std::string_view(buf, static_cast<size_t>(n)), policy)) o_.restart = policy;
}

void Shim::on_init_exit(int status) {
  finished_ns_ = now_ns();
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
  init_pid_ = -1;
  cancel_health_check();
  drain_output();
  out_fd_.reset();
  err_fd_.reset();
  stdin_fd_.reset();
  stdin_open_ = false;
  stdin_buf_.clear();
  if (log_) log_->push(LogPump::kFlushRecord, {}, finished_ns_);

  reload_restart_policy();
  // Killed before it started (--wait-attach): never restarted.
  if (phase_ != Phase::Created && should_restart(o_.restart, exit_code_, restart_count_) && !stop_requested()) {
    state_ = "restarting";
    write_status();
    for (auto& c : clients_)
      if (c->fd && c->hello) queue_frame(*c, kExit, exit_payload());
    backoff_ms_ = next_backoff_ms(backoff_ms_, mono_ms() - started_mono_);
    restart_at_ms_ = mono_ms() + backoff_ms_;
    phase_ = Phase::Backoff;
    return;
  }
  finish();
}

// --wait-attach: the first client said hello.
void Shim::begin_start() {
  Outcome started = start();
  if (started.ok) {
    write_status();
    return;
  }
  error_ = started.error;
  exit_code_ = started.exit_code;
  diag("start: " + error_);
  finish();
}

void Shim::restart() {
  if (stop_requested()) {
    finish();
    return;
  }
  runtime_delete();
  ++restart_count_;
  Outcome out = create();
  if (out.ok) out = start();
  if (!out.ok) {
    error_ = out.error;
    exit_code_ = out.exit_code;
    diag("restart: " + error_);
    finished_ns_ = now_ns();
    finish();
    return;
  }
  error_.clear();
  write_status();
}

void Shim::finish() {
  phase_ = Phase::Done;
  runtime_delete();
  if (init_pid_ > 0) {
    // `start` failed: delete killed init; collect it.
    int status;
    while (::waitpid(init_pid_, &status, 0) < 0 && errno == EINTR) {
    }
    init_pid_ = -1;
  }
  state_ = "exited";
  if (finished_ns_ == 0) finished_ns_ = now_ns();
  if (log_) {
    log_->push(LogPump::kFlushRecord, {}, finished_ns_);
    log_->stop();
  }
  write_status();
  for (auto& c : clients_) {
    if (!c->fd) continue;
    if (c->hello) queue_frame(*c, kExit, exit_payload());
    c->closing = true;
    if (c->fd && c->pending() == 0) c->fd.reset();
  }
  listen_fd_.reset();
  ::unlink(attach_path_.c_str());
  flush_clients();
  spawn_exit_command();
}

// Gives attached clients a bounded time to take their last output and exit frame.
void Shim::flush_clients() {
  int64_t deadline = mono_ms() + kFlushClientsMs;
  for (;;) {
    std::vector<struct pollfd> pfds;
    for (auto& c : clients_)
      if (c->fd && c->pending() > 0) pfds.push_back({c->fd.get(), POLLOUT, 0});
    int64_t left = deadline - mono_ms();
    if (pfds.empty() || left <= 0) break;
    if (::poll(pfds.data(), pfds.size(), static_cast<int>(left)) < 0 && errno != EINTR) break;
    for (auto& c : clients_)
      if (c->fd && c->pending() > 0) write_client(*c);
  }
  clients_.clear();
}

// Runs --exit-command once the shim is gone: the child waits for EOF on a pipe only the shim holds,
// so shim.lock is free (the engine sees a dead shim) when, say, `berth rm` runs. With
// --removal-claim it then defers to a client that claimed the removal (protocol.hpp).
void Shim::spawn_exit_command() {
  if (o_.exit_command.empty()) return;
  std::vector<std::string> args = {o_.exit_command};
  args.insert(args.end(), o_.exit_args.begin(), o_.exit_args.end());
  std::vector<char*> argv = c_argv(args);
  // Opened now: once the shim is gone the container's directory may go with the container.
  UniqueFd claim;
  if (!o_.removal_claim.empty()) claim = UniqueFd(::open(o_.removal_claim.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    diag(errno_message("pipe for the exit command", errno));
    return;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    diag(errno_message("fork the exit command", errno));
    ::close(p[0]);
    ::close(p[1]);
    return;
  }
  if (pid == 0) {
    ::close(p[1]);
    // Our copies of shim.lock and the rest must not outlive the shim: keep the pipe's read end
    // (as fd 3) and the claim (as fd 4), by way of fds above both.
    int pipe_high = ::fcntl(p[0], F_DUPFD, 5);
    int claim_high = claim ? ::fcntl(claim.get(), F_DUPFD, 5) : -1;
    if (pipe_high < 0 || (claim && claim_high < 0) || ::dup2(pipe_high, 3) < 0 ||
        (claim_high >= 0 && ::dup2(claim_high, 4) < 0))
      _exit(127);
    bool claimed = claim_high >= 0;
    ::syscall(SYS_close_range, claimed ? 5 : 4, ~0U, 0);
    char byte;
    while (::read(3, &byte, 1) < 0 && errno == EINTR) {
    }
    ::close(3);
    if (claimed) {
      // A claimer holds the exclusive lock until it has removed the container (or given up).
      while (::flock(4, LOCK_SH) != 0 && errno == EINTR) {
      }
      struct stat st;
      if (::fstat(4, &st) == 0 && st.st_nlink == 0) _exit(0);
      ::close(4);
    }
    ::setsid();
    reset_signals_in_child();
    int null = ::open("/dev/null", O_RDWR);
    for (int i = 0; i < 3; ++i) ::dup2(null, i);
    if (null > 2) ::close(null);
    ::execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  ::close(p[0]);
  // p[1] is closed by the shim's exit.
}

[[noreturn]] void die_before_detach(Shim* shim, const std::string& message, int sync_fd) {
  std::string line = "berth-shim: " + message + "\n";
  write_all(2, line);
  if (shim) {
    shim->fail_sync(message, 125);
  } else if (sync_fd >= 0) {
    write_all(sync_fd, "{\"ok\":false,\"error\":" + json_string(message) + ",\"exit_code\":125}\n");
  }
  _exit(125);
}

// Redirects stdio after detaching: stdin/stdout to /dev/null, stderr to <state-dir>/shim.log.
void redirect_stdio(int dir_fd) {
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int log = ::openat(dir_fd, "shim.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  struct stat st;
  if (log >= 0 && ::fstat(log, &st) == 0 && st.st_size > kShimLogMax) (void)!::ftruncate(log, 0);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
  }
  ::dup2(log >= 0 ? log : null, 2);
  if (null > 2) ::close(null);
  if (log > 2) ::close(log);
}

}  // namespace

int shim_main(int argc, char** argv) {
  // One malloc arena for both threads: a second arena costs RSS the shim can't afford.
  mallopt(M_ARENA_MAX, 1);
  int sync_fd = -1;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string_view(argv[i]) == "--sync-fd") sync_fd = std::atoi(argv[i + 1]);
  // Nothing the engine left open reaches the runtime or the container.
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);

  Options o;
  try {
    o = parse_args(argc, argv);
  } catch (const std::exception& e) {
    die_before_detach(nullptr, e.what(), sync_fd);
  }
  // Signals: the engine's death (SIGHUP from a closing terminal) and closed readers (SIGPIPE)
  // must not end the shim; SIGCHLD is read from a signalfd by the event loop.
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);

  Shim shim(std::move(o));
  try {
    shim.prepare();
  } catch (const std::exception& e) {
    die_before_detach(&shim, e.what(), -1);
  }

  pid_t pid = ::fork();
  if (pid < 0) die_before_detach(&shim, errno_message("fork", errno), -1);
  if (pid > 0) _exit(0);  // the engine's waitpid returns now; the shim lives on in the child

  return shim.detached_main(mask);
}

}  // namespace berth::shim

int main(int argc, char** argv) { return berth::shim::shim_main(argc, argv); }
