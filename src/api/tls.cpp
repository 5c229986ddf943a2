#include "api/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <thread>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::api {

namespace {

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

bool send_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

struct TlsContext::Impl {
  SSL_CTX* ctx = nullptr;
};

TlsContext::TlsContext(const std::string& ca, const std::string& cert, const std::string& key)
    : impl_(std::make_unique<Impl>()) {
  impl_->ctx = SSL_CTX_new(TLS_server_method());
  if (!impl_->ctx) throw Error("TLS: " + ssl_error());
  SSL_CTX_set_min_proto_version(impl_->ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(impl_->ctx, cert.c_str()) != 1)
    throw Error("--tlscert " + cert + ": " + ssl_error());
  if (SSL_CTX_use_PrivateKey_file(impl_->ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
    throw Error("--tlskey " + key + ": " + ssl_error());
  if (SSL_CTX_check_private_key(impl_->ctx) != 1) throw Error("--tlskey " + key + " does not match --tlscert " + cert);
  if (SSL_CTX_load_verify_locations(impl_->ctx, ca.c_str(), nullptr) != 1)
    throw Error("--tlscacert " + ca + ": " + ssl_error());
  SSL_CTX_set_verify(impl_->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
}

TlsContext::~TlsContext() {
  if (impl_->ctx) SSL_CTX_free(impl_->ctx);
}

void TlsContext::relay(int tcp_fd, const std::function<void(int plain_fd)>& serve) {
  UniqueFd tcp(tcp_fd);
  // The handshake may not take forever.
  timeval tv{30, 0};
  ::setsockopt(tcp_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(tcp_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(impl_->ctx), SSL_free);
  if (!ssl || SSL_set_fd(ssl.get(), tcp_fd) != 1) return;
  if (SSL_accept(ssl.get()) != 1) {
    ERR_clear_error();
    return;  // no or a bad client certificate: nothing is served
  }
  timeval none{0, 0};
  ::setsockopt(tcp_fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return;
  UniqueFd mine(sp[1]);
  int theirs = sp[0];
  std::thread([serve, theirs] { serve(theirs); }).detach();

  char buf[16384];
  bool client_open = true;
  for (;;) {
    // Decrypted bytes OpenSSL already holds are not visible to poll.
    if (client_open && SSL_pending(ssl.get()) == 0) {
      pollfd fds[2] = {{tcp_fd, POLLIN, 0}, {mine.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = ::recv(mine.get(), buf, sizeof buf, 0);
        if (n <= 0) break;  // the server side is done
        if (SSL_write(ssl.get(), buf, static_cast<int>(n)) <= 0) break;
      }
      if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    } else if (!client_open) {
      ssize_t n = ::recv(mine.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      if (SSL_write(ssl.get(), buf, static_cast<int>(n)) <= 0) break;
      continue;
    }
    int n = SSL_read(ssl.get(), buf, sizeof buf);
    if (n > 0) {
      if (!send_all(mine.get(), buf, static_cast<size_t>(n))) break;
    } else {
      int err = SSL_get_error(ssl.get(), n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) continue;
      // The client closed its side (or the connection broke): the server sees EOF.
      ::shutdown(mine.get(), SHUT_WR);
      client_open = false;
      ERR_clear_error();
    }
  }
  SSL_shutdown(ssl.get());
}

}  // namespace berth::api
