#include "runtime/console.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include "util/error.hpp"

namespace berth::runtime {

UniqueFd connect_unix_socket(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw Error("console socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("socket");
  if (::connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("connect to console socket " + path);
  return sock;
}

void send_fd(int sock, int fd, const std::string& name) {
  struct msghdr msg = {};
  struct iovec iov;
  iov.iov_base = const_cast<char*>(name.data());
  iov.iov_len = name.size();
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  while (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) throw_errno("send console fd");
  }
}

UniqueFd recv_fd(int sock) {
  struct msghdr msg = {};
  char name[4096];
  struct iovec iov = {name, sizeof name};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0) {
    if (errno != EINTR) throw_errno("receive fd");
  }
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (n == 0 || !cmsg || cmsg->cmsg_type != SCM_RIGHTS) throw Error("receive fd: no file descriptor in message");
  int fd;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  return UniqueFd(fd);
}

void setup_console(int console_sock, const std::optional<ConsoleSize>& size, bool mount_dev_console) {
  UniqueFd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) throw_errno("open /dev/ptmx");
  if (::unlockpt(master.get()) != 0) throw_errno("unlockpt");
  char slave_path[128];
  if (::ptsname_r(master.get(), slave_path, sizeof slave_path) != 0) throw_errno("ptsname");
  if (size && size->height && size->width) {
    struct winsize ws = {};
    ws.ws_row = static_cast<unsigned short>(size->height);
    ws.ws_col = static_cast<unsigned short>(size->width);
    ::ioctl(master.get(), TIOCSWINSZ, &ws);
  }
  UniqueFd slave(::open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) throw_errno(std::string("open ") + slave_path);
  if (mount_dev_console) {
    // /dev/console is the container's terminal, as in runc.
    int fd = ::open("/dev/console", O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      ::close(fd);
      if (::mount(slave_path, "/dev/console", nullptr, MS_BIND, nullptr) != 0)
        throw_errno(std::string("bind ") + slave_path + " on /dev/console");
    }
  }
  send_fd(console_sock, master.get(), slave_path);
  for (int target = 0; target <= 2; ++target)
    if (::dup2(slave.get(), target) < 0) throw_errno("dup2 terminal");
  if (::ioctl(0, TIOCSCTTY, 0) != 0) throw_errno("set controlling terminal");
}

}  // namespace berth::runtime
