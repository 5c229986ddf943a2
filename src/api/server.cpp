#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>

#include "api/server.hpp"
#include "api/tls.hpp"
#include "engine/engine.hpp"
#include "engine/schema.hpp"
#include "engine/volumes.hpp"
#include "image/store.hpp"
#include "util/fd.hpp"
#include "util/fd_limit.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace berth::api {

Stores::~Stores() {
  engine.reset();
  volumes.reset();  // before images: it uses images' database
  images.reset();
}

Server::Server(ServeOptions options) : options_(std::move(options)) {}

std::unique_ptr<Stores> Server::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!pool_.empty()) {
      auto s = std::move(pool_.back());
      pool_.pop_back();
      return s;
    }
  }
  auto s = std::make_unique<Stores>();
  s->images = std::make_unique<image::ImageStore>(options_.root);
  engine::ensure_schema(s->images->db());
  s->volumes = std::make_unique<engine::VolumeStore>(s->images->db(), options_.root);
  s->engine = std::make_unique<engine::Engine>(options_.root, *s->images, *s->volumes);
  return s;
}

void Server::release(std::unique_ptr<Stores> stores) {
  if (!stores) return;
  std::lock_guard lock(mutex_);
  // A few kept for the next requests; more than that are idle connections' worth of memory.
  if (pool_.size() < 8) pool_.push_back(std::move(stores));
}

void Server::expect_attach(const std::string& id, int delta) {
  std::lock_guard lock(mutex_);
  int& n = attach_waiters_[id];
  n += delta;
  if (n <= 0) attach_waiters_.erase(id);
}

bool Server::attach_expected(const std::string& id) {
  std::lock_guard lock(mutex_);
  return attach_waiters_.count(id) > 0;
}

Stores& Call::stores() {
  if (!stores_) stores_ = server.acquire();
  return *stores_;
}
engine::Engine& Call::engine() { return *stores().engine; }
image::ImageStore& Call::images() { return *stores().images; }
engine::VolumeStore& Call::volumes() { return *stores().volumes; }
void Call::release() { server.release(std::move(stores_)); }
Call::~Call() { release(); }

int status_for(const std::exception& e) {
  if (auto* h = dynamic_cast<const HttpError*>(&e)) return h->status();
  if (dynamic_cast<const engine::NotFound*>(&e)) return 404;
  std::string m = e.what();
  auto has = [&](const char* s) { return m.find(s) != std::string::npos; };
  if (has("No such") || has("no such") || has("not found") || has("Could not find")) return 404;
  if (has("has active endpoints")) return 403;  // docker's status for a network in use
  // docker's checks of resource values (update, create) are bad parameters.
  if (has("Minimum memory") || has("Minimum memoryswap") || has("Range of ") || has("can not be less than")) return 400;
  // … and an update that contradicts the container's settings is a conflict.
  if (has("Memory limit should be smaller") || has("Restart policy cannot be updated")) return 409;
  if (has("Conflict") || has("in use") || has("is not running") || has("is already") || has("already exists") ||
      has("is paused") || has("cannot remove a running") || has("is running"))
    return 409;
  if (has("invalid") || has("Invalid") || has("bad ") || has("must ") || has("unknown") || has("not supported") ||
      has("cannot") || has("requires"))
    return 400;
  return 500;
}

namespace {

std::atomic<bool> g_stop{false};
int g_stop_pipe[2] = {-1, -1};

void on_stop(int) {
  g_stop = true;
  char c = 1;
  [[maybe_unused]] ssize_t n = ::write(g_stop_pipe[1], &c, 1);
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 1;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

// Matches path against pattern; fills params.
bool match(const char* pattern, const std::vector<std::string>& parts, std::vector<std::string>& params) {
  std::vector<std::string> pat = split_path(pattern);
  params.clear();
  size_t star = pat.size();
  for (size_t i = 0; i < pat.size(); i++)
    if (pat[i] == "{*}") star = i;
  if (star == pat.size()) {
    if (pat.size() != parts.size()) return false;
    for (size_t i = 0; i < pat.size(); i++) {
      if (pat[i] == "{}") {
        if (parts[i].empty()) return false;
        params.push_back(parts[i]);
      } else if (pat[i] != parts[i]) {
        return false;
      }
    }
    return true;
  }
  // {*}: the segments between the fixed prefix and the fixed suffix, at least one.
  size_t suffix = pat.size() - star - 1;
  if (parts.size() < star + 1 + suffix) return false;
  for (size_t i = 0; i < star; i++)
    if (pat[i] != parts[i]) return false;
  for (size_t k = 0; k < suffix; k++)
    if (pat[pat.size() - 1 - k] != parts[parts.size() - 1 - k]) return false;
  std::string joined;
  for (size_t i = star; i < parts.size() - suffix; i++) joined += (i == star ? "" : "/") + parts[i];
  if (joined.empty()) return false;
  params.push_back(joined);
  return true;
}

const std::vector<Route>& routes() {
  static const std::vector<Route> all = [] {
    std::vector<Route> r;
    for (auto part : {system_routes(), container_routes(), exec_routes(), image_routes(), volume_routes(),
                      network_routes(), archive_routes(), build_routes()})
      r.insert(r.end(), part.begin(), part.end());
    return r;
  }();
  return all;
}

void dispatch(Server& server, Connection& conn, const Request& req) {
  std::vector<std::string> parts = split_path(req.path);
  std::vector<std::string> params;
  bool path_known = false;
  for (const auto& route : routes()) {
    if (!match(route.pattern, parts, params)) continue;
    path_known = true;
    std::string method = req.method == "HEAD" && std::string(route.method) == "GET" ? "GET" : req.method;
    if (method != route.method) continue;
    Call call{server, conn, req, params, nullptr};
    route.handler(call);
    return;
  }
  if (path_known) throw HttpError(405, "method " + req.method + " not allowed on " + req.path);
  throw HttpError(404, "page not found");
}

// After refusing a request: stop writing, read (and drop) what the client is still sending for
// a moment, so closing does not reset the connection before it reads the answer.
void drain_and_close(int fd) {
  ::shutdown(fd, SHUT_WR);
  char buf[65536];
  size_t total = 0;
  while (total < (size_t{8} << 20)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 500) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
}

void serve_connection(Server& server, int fd) {
  UniqueFd owned(fd);
  Connection conn(fd, Limits{});
  for (;;) {
    Request req;
    try {
      if (!conn.read(req)) return;
    } catch (const HttpError& e) {
      conn.close_after();
      try {
        conn.error(e.status(), e.what());
      } catch (const std::exception&) {
      }
      drain_and_close(fd);
      return;
    } catch (const std::exception&) {
      return;
    }
    if (!req.api_version.empty() && req.api_version != "1.41") {
      // Version negotiation: older versions are served as 1.41 serves them; newer ones refused.
      auto parse = [](const std::string& v) {
        size_t dot = v.find('.');
        try {
          return std::stoi(v.substr(0, dot)) * 1000 + (dot == std::string::npos ? 0 : std::stoi(v.substr(dot + 1)));
        } catch (const std::exception&) {
          return -1;
        }
      };
      int v = parse(req.api_version);
      if (v < 1024 || v > 1041) {
        conn.error(400, v > 1041
                            ? "client version " + req.api_version + " is too new. Maximum supported API version is 1.41"
                            : "client version " + req.api_version +
                                  " is too old. Minimum supported API version is 1.24, please upgrade your client to a "
                                  "newer version");
        if (!conn.keep_alive()) return;
        continue;
      }
    }
    try {
      dispatch(server, conn, req);
    } catch (const std::exception& e) {
      if (conn.responded()) return;  // mid-stream: nothing sensible left to say
      int status = status_for(e);
      std::string message = e.what();
      if (status == 500) log::error("api: " + req.method + " " + req.target + ": " + message);
      try {
        conn.error(status, message);
      } catch (const std::exception&) {
        return;
      }
    }
    if (!conn.keep_alive()) return;
  }
}

struct Listener {
  UniqueFd fd;
  std::string path;  // unix socket path; empty for TCP
  std::string name;  // as given to --host
};

// tcp://ADDR:PORT (IPv4 or [IPv6]).
Listener listen_tcp(const std::string& host) {
  std::string addr = host.substr(6);
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) throw Error("invalid --host " + host + ": expected tcp://ADDR:PORT");
  std::string ip = addr.substr(0, colon), port_text = addr.substr(colon + 1);
  int port = 0;
  try {
    port = std::stoi(port_text);
  } catch (const std::exception&) {
    port = -1;
  }
  if (port <= 0 || port > 65535 || port_text.find_first_not_of("0123456789") != std::string::npos)
    throw Error("invalid --host " + host + ": bad port " + port_text);
  if (ip.empty()) ip = "0.0.0.0";
  bool v6 = ip.front() == '[';
  if (v6) ip = ip.substr(1, ip.size() - 2);
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, ip.c_str(), &sa.sin6_addr) != 1) throw Error("invalid --host " + host + ": bad address");
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) throw Error("invalid --host " + host + ": bad address");
    rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  if (rc != 0) throw_errno("bind " + host);
  if (::listen(fd.get(), 1024) != 0) throw_errno("listen " + host);
  return {std::move(fd), "", host};
}

// getgrnam in a short-lived child: the lookup loads NSS modules (libnss_systemd and what it
// needs, ~0.3 MiB resident here) that the long-lived server would otherwise carry for nothing.
std::optional<gid_t> group_id(const char* name) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe2");
  UniqueFd r(p[0]), w(p[1]);
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    const group* g = ::getgrnam(name);
    gid_t gid = g ? g->gr_gid : 0;
    _exit(g && ::write(w.get(), &gid, sizeof gid) == sizeof gid ? 0 : 1);
  }
  w.reset();
  gid_t gid = 0;
  ssize_t n;
  while ((n = ::read(r.get(), &gid, sizeof gid)) < 0 && errno == EINTR) {
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof gid)) return std::nullopt;
  return gid;
}

Listener listen_unix(const std::string& path) {
  if (path.empty()) throw Error("unix socket path is empty");
  mkdir_p(path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/')).empty()
              ? "/"
              : path.substr(0, path.rfind('/')),
          0755);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw Error("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  // A socket file left by a server that died: replace it, unless a server answers on it.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw Error("cannot listen on " + path + ": it exists and is not a socket");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      throw Error("cannot listen on " + path + ": another server is listening there");
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  // Bound under a mode that gives nobody access, then opened up to root and group berth.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0) throw_errno("bind " + path);
  gid_t gid = group_id("berth").value_or(0);
  if (::chown(path.c_str(), 0, gid) != 0) throw_errno("chown " + path);
  if (::chmod(path.c_str(), gid != 0 ? 0660 : 0600) != 0) throw_errno("chmod " + path);
  if (::listen(fd.get(), 1024) != 0) throw_errno("listen " + path);
  return {std::move(fd), path, "unix://" + path};
}

}  // namespace

int serve(const ServeOptions& in) {
  raise_open_file_limit();  // a descriptor per client; what the engine starts gets the old limit
  ServeOptions options = in;
  if (options.hosts.empty()) options.hosts.push_back("unix:///run/berth/berth.sock");
  std::vector<Listener> listeners;
  std::unique_ptr<TlsContext> tls;
  for (const auto& h : options.hosts) {
    if (h.rfind("unix://", 0) == 0) {
      listeners.push_back(listen_unix(h.substr(7)));
    } else if (h.rfind("tcp://", 0) == 0) {
      if (!options.tls_verify || options.tls_ca.empty() || options.tls_cert.empty() || options.tls_key.empty())
        throw Error("refusing to listen on " + h +
                    " without TLS client verification: pass --tlsverify --tlscacert --tlscert --tlskey");
      if (!tls) tls = std::make_unique<TlsContext>(options.tls_ca, options.tls_cert, options.tls_key);
      listeners.push_back(listen_tcp(h));
    } else {
      throw Error("invalid --host " + h + ": expected unix:///path or tcp://ADDR:PORT");
    }
  }
  mkdir_p(options.root, 0711);
  Server server(options);
  {
    // Finish what crashed commands left before serving.
    auto stores = server.acquire();
    stores->engine->reconcile();
    server.release(std::move(stores));
  }

  ::signal(SIGPIPE, SIG_IGN);
  if (::pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe2");
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  for (const auto& l : listeners) std::cerr << "berth serve: listening on " << l.name << std::endl;

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  // Small stacks (virtual memory for a thousand connections), but not under ASan, whose frames
  // are several times larger.
#if defined(__SANITIZE_ADDRESS__)
  pthread_attr_setstacksize(&attr, size_t{8} << 20);
#else
  pthread_attr_setstacksize(&attr, size_t{2} << 20);
#endif
  struct Job {
    Server* server;
    int fd;
    TlsContext* tls;  // set for TCP connections
  };
  while (!g_stop) {
    std::vector<pollfd> fds;
    for (const auto& l : listeners) fds.push_back({l.fd.get(), POLLIN, 0});
    fds.push_back({g_stop_pipe[0], POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll");
    }
    for (size_t i = 0; i < listeners.size(); i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      int c = ::accept4(listeners[i].fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      auto* job = new Job{&server, c, listeners[i].path.empty() ? tls.get() : nullptr};
      pthread_t t;
      int rc = pthread_create(
          &t, &attr,
          [](void* p) -> void* {
            std::unique_ptr<Job> j(static_cast<Job*>(p));
            if (j->tls) {
              Server* srv = j->server;
              j->tls->relay(j->fd, [srv](int plain) { serve_connection(*srv, plain); });
            } else {
              serve_connection(*j->server, j->fd);
            }
            return nullptr;
          },
          job);
      if (rc != 0) {
        ::close(c);
        delete job;
      }
    }
  }
  pthread_attr_destroy(&attr);
  for (const auto& l : listeners)
    if (!l.path.empty()) ::unlink(l.path.c_str());
  // Connections still streaming end with the process; containers are not ours to stop.
  ::_exit(0);
}

}  // namespace berth::api
