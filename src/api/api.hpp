// `berth serve`: the Docker Engine API (v1.41) over HTTP on a unix socket, calling the same engine
// as the CLI. It keeps no state of its own beyond open connections: containers outlive it and
// `berth ps` and `docker ps` show the same things.
#pragma once

#include <string>
#include <vector>

namespace berth::api {

struct ServeOptions {
  std::vector<std::string> hosts;  // "unix:///run/berth/berth.sock" (default), "tcp://ADDR:PORT"
  std::string root;                // the data root, as the CLI's --root
  std::vector<std::string> insecure_registries;
  std::string docker_config;  // dir of config.json (registry credentials)
  bool tls_verify = false;
  std::string tls_ca, tls_cert, tls_key;
};

// Listens and serves until SIGINT or SIGTERM; returns the exit status. Throws berth::Error for
// unusable options (a TCP host without TLS, a socket path in use).
int serve(const ServeOptions& options);

}  // namespace berth::api
