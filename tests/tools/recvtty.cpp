// recvtty SOCKET_PATH [OUTFILE]
//
// Console-socket receiver for the integration tests (like runc's
// contrib/cmd/recvtty, reduced to what the tests need). It listens on a unix
// stream socket at SOCKET_PATH, accepts one connection, receives the pty
// master fd that the runtime sends with SCM_RIGHTS, then copies everything
// read from the master to stdout (or OUTFILE) until EOF or EIO (the container
// closed its side of the terminal), and exits 0.
//
// The socket is bound under a temporary name and renamed to SOCKET_PATH only
// once it is listening, so a caller may poll for SOCKET_PATH to appear and
// then connect without racing bind() against listen().
//
// Exit codes: 0 success, 1 runtime error, 2 usage.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int die(const char* what) {
  std::fprintf(stderr, "recvtty: %s: %s\n", what, std::strerror(errno));
  return 1;
}

bool write_all(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Receives one fd passed with SCM_RIGHTS; returns -1 on failure.
int recv_fd(int conn) {
  char data[256];
  iovec iov{};
  iov.iov_base = data;
  iov.iov_len = sizeof data;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  std::memset(control, 0, sizeof control);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  int fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int fds[4] = {-1, -1, -1, -1};
      std::memcpy(fds, CMSG_DATA(c), sizeof(int) * (count < 4 ? count : 4));
      fd = fds[0];
      for (size_t i = 1; i < count && i < 4; ++i) ::close(fds[i]);
    }
  }
  if (fd < 0) errno = EBADMSG;
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: recvtty SOCKET_PATH [OUTFILE]\n");
    return 2;
  }
  const std::string path = argv[1];
  const std::string tmp_path = path + ".tmp";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (tmp_path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "recvtty: socket path too long: %s\n", path.c_str());
    return 2;
  }
  std::memcpy(addr.sun_path, tmp_path.c_str(), tmp_path.size() + 1);

  int out = STDOUT_FILENO;
  if (argc == 3) {
    out = ::open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return die("open output file");
  }

  int lsock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lsock < 0) return die("socket");
  ::unlink(tmp_path.c_str());
  if (::bind(lsock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return die("bind");
  if (::listen(lsock, 1) < 0) return die("listen");
  if (::rename(tmp_path.c_str(), path.c_str()) < 0) return die("rename");

  int conn;
  do {
    conn = ::accept4(lsock, nullptr, nullptr, SOCK_CLOEXEC);
  } while (conn < 0 && errno == EINTR);
  if (conn < 0) return die("accept");
  ::close(lsock);
  ::unlink(path.c_str());

  int master = recv_fd(conn);
  if (master < 0) return die("recvmsg (no fd received)");
  ::close(conn);

  char buf[8192];
  for (;;) {
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EIO) break;  // the slave side was closed: the container is gone
      return die("read pty master");
    }
    if (!write_all(out, buf, static_cast<size_t>(n))) return die("write output");
  }
  ::close(master);
  if (out != STDOUT_FILENO && ::close(out) < 0) return die("close output file");
  return 0;
}
