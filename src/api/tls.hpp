// TLS for tcp:// listeners (OpenSSL), always with client-certificate verification. Each TLS
// connection is relayed to one end of a socketpair and the plain HTTP code serves the other end:
// attach and exec hand raw fds to the engine, which knows nothing of TLS.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace berth::api {

class TlsContext {
 public:
  // Throws berth::Error naming the file that cannot be loaded.
  TlsContext(const std::string& ca, const std::string& cert, const std::string& key);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Runs the handshake on tcp_fd (owned; closed on return), then calls serve(plain_fd) on a new
  // thread and relays between the two until either side closes. Returns when the connection ends.
  void relay(int tcp_fd, const std::function<void(int plain_fd)>& serve);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::api
