// The client side of the shim's attach socket (protocol: src/shim/protocol.hpp).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "engine/engine.hpp"
#include "shim/protocol.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::engine {

namespace {

using nlohmann::json;

int g_signal_pipe = -1;

void on_signal(int sig) {
  if (g_signal_pipe < 0) return;
  unsigned char b = static_cast<unsigned char>(sig);
  int saved = errno;
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe, &b, 1);
  errno = saved;
}

void send_frame(int fd, uint8_t type, std::string_view payload) {
  unsigned char header[shim::kFrameHeader] = {type, 0, 0, 0};
  uint32_t len = static_cast<uint32_t>(payload.size());
  header[4] = static_cast<unsigned char>(len >> 24);
  header[5] = static_cast<unsigned char>(len >> 16);
  header[6] = static_cast<unsigned char>(len >> 8);
  header[7] = static_cast<unsigned char>(len);
  std::string frame(reinterpret_cast<char*>(header), sizeof header);
  frame.append(payload);
  write_all(fd, frame, "attach socket");
}

// Restores the terminal's mode on the way out, whatever the way out is.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) {
    if (fd < 0 || !::isatty(fd) || ::tcgetattr(fd, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    if (::tcsetattr(fd, TCSANOW, &raw) == 0) fd_ = fd;
  }
  ~RawTerminal() {
    if (fd_ >= 0) ::tcsetattr(fd_, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_ = -1;
  termios saved_{};
};

void send_resize(int sock, int tty_fd) {
  winsize ws{};
  if (tty_fd < 0 || ::ioctl(tty_fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0) return;
  send_frame(sock, shim::kResize, json{{"rows", ws.ws_row}, {"cols", ws.ws_col}}.dump());
}

// The local terminal whose size the container's pty follows.
int terminal_of(const AttachIo& io) {
  if (io.stdin_fd >= 0 && ::isatty(io.stdin_fd)) return io.stdin_fd;
  if (io.stdout_fd >= 0 && ::isatty(io.stdout_fd)) return io.stdout_fd;
  return -1;
}

// Connects to the shim's attach socket of container id (retrying while the shim sets it up).
UniqueFd connect_attach(const std::string& path) {
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw Error("attach socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  for (int attempt = 0;; attempt++) {
    if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) break;
    if ((errno != ENOENT && errno != ECONNREFUSED) || attempt > 200) throw_errno("connect " + path);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return sock;
}

}  // namespace

void Engine::resize(const std::string& ref, int rows, int cols) {
  Container c = get(ref);
  if (!c.running()) throw StatusError("Container " + c.id + " is not running", 1);
  UniqueFd sock = connect_attach(state_dir(c.id) + "/attach.sock");
  send_frame(sock.get(), shim::kHello, json{{"stdin", false}, {"stdout", false}, {"stderr", false}}.dump());
  send_frame(sock.get(), shim::kResize, json{{"rows", rows}, {"cols", cols}}.dump());
}

UniqueFd Engine::attach_connect(const std::string& id, const AttachIo& io) {
  UniqueFd sock = connect_attach(state_dir(id) + "/attach.sock");
  send_frame(sock.get(), shim::kHello,
             json{{"stdin", io.stdin_fd >= 0}, {"stdout", io.stdout_fd >= 0}, {"stderr", io.stderr_fd >= 0}}.dump());
  if (io.tty) send_resize(sock.get(), terminal_of(io));
  return sock;
}

int Engine::start_attached(const std::string& id, AttachIo io) {
  UniqueFd sock;
  start(id, {.wait_attach = true, .on_created = [&] { sock = attach_connect(id, io); }});
  io.connected = sock.get();
  return attach(id, io);
}

int Engine::attach(const std::string& ref, const AttachIo& io) {
  UniqueFd owned;
  std::string id = ref;
  if (io.connected < 0) {
    id = get(ref).id;
    owned = attach_connect(id, io);
  }
  const int sock = io.connected >= 0 ? io.connected : owned.get();

  std::optional<RawTerminal> raw;
  const int tty_fd = io.tty ? terminal_of(io) : -1;
  if (io.tty && io.stdin_fd >= 0) raw.emplace(io.stdin_fd);

  // Signals: SIGWINCH resizes the pty; with proxy_signals, the usual ones go to the container.
  int sp[2];
  if (::pipe2(sp, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe2");
  UniqueFd sig_r(sp[0]), sig_w(sp[1]);
  g_signal_pipe = sig_w.get();
  std::vector<int> handled = {SIGWINCH};
  if (io.proxy_signals) handled.insert(handled.end(), {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2});
  std::vector<std::pair<int, struct sigaction>> previous;
  for (int s : handled) {
    struct sigaction sa {
    }, old{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(s, &sa, &old);
    previous.emplace_back(s, old);
  }
  struct Restore {
    std::vector<std::pair<int, struct sigaction>>& prev;
    ~Restore() {
      for (auto& [s, old] : prev) ::sigaction(s, &old, nullptr);
      g_signal_pipe = -1;
    }
  } restore{previous};

  std::string buf;
  bool stdin_open = io.stdin_fd >= 0;
  std::optional<int> exit_code;
  char chunk[65536];
  while (!exit_code) {
    pollfd fds[4] = {
        {sock, POLLIN, 0}, {sig_r.get(), POLLIN, 0}, {stdin_open ? io.stdin_fd : -1, POLLIN, 0}, {io.hangup_fd, 0, 0}};
    if (::poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll");
    }
    if (fds[3].revents & (POLLHUP | POLLERR)) return -1;  // the client went away
    if (fds[1].revents & POLLIN) {
      unsigned char s;
      while (::read(sig_r.get(), &s, 1) == 1) {
        if (s == SIGWINCH) {
          send_resize(sock, tty_fd);
        } else {
          Container now = get(id);
          if (now.pid > 0) {
            int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, now.pid, 0));
            if (pidfd >= 0) {
              ::syscall(SYS_pidfd_send_signal, pidfd, s, nullptr, 0);
              ::close(pidfd);
            }
          }
        }
      }
    }
    if (stdin_open && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(io.stdin_fd, chunk, sizeof chunk);
      if (n > 0) {
        send_frame(sock, shim::kStdin, std::string_view(chunk, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        send_frame(sock, shim::kCloseStdin, "");
        stdin_open = false;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(sock, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      size_t pos = 0;
      while (buf.size() - pos >= shim::kFrameHeader) {
        const auto* h = reinterpret_cast<const unsigned char*>(buf.data() + pos);
        uint32_t len = (uint32_t{h[4]} << 24) | (uint32_t{h[5]} << 16) | (uint32_t{h[6]} << 8) | h[7];
        if (buf.size() - pos - shim::kFrameHeader < len) break;
        std::string_view payload(buf.data() + pos + shim::kFrameHeader, len);
        if (io.multiplex && (h[0] == shim::kStdout || h[0] == shim::kStderr)) {
          // The shim's frames are docker's stdcopy frames: passed on whole.
          if (io.stdout_fd >= 0)
            write_all(io.stdout_fd, std::string_view(buf.data() + pos, shim::kFrameHeader + len), "stdout");
        } else if (h[0] == shim::kStdout && io.stdout_fd >= 0) {
          write_all(io.stdout_fd, payload, "stdout");
        } else if (h[0] == shim::kStderr && io.stderr_fd >= 0) {
          write_all(io.stderr_fd, payload, "stderr");
        } else if (h[0] == shim::kExit) {
          json j = json::parse(payload, nullptr, false);
          exit_code = j.is_object() && j.contains("exit_code") ? j["exit_code"].get<int>() : 0;
          if (j.is_object() && j.contains("error") && j["error"].is_string() && !j["error"].get<std::string>().empty())
            throw StatusError(j["error"].get<std::string>(), *exit_code);
        }
        pos += shim::kFrameHeader + len;
      }
      buf.erase(0, pos);
    }
  }
  if (exit_code) return *exit_code;
  return wait(id);
}

}  // namespace berth::engine
