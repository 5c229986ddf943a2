// The per-network DNS responder (`berth network dns-serve ID`, started on demand by the engine):
// names of the containers on the asking container's user-defined networks, from state.db at each
// query, so start, stop, connect, disconnect and rename take effect at once.
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <set>
#include <sstream>
#include <thread>

#include "engine/engine.hpp"
#include "engine/networks.hpp"
#include "engine/process.hpp"
#include "network/dns.hpp"
#include "network/ipam.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fd_limit.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"

namespace berth::engine {

using nlohmann::json;
namespace dns = berth::network::dns;

namespace {

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// "1.2.3.4", "1.2.3.4:5353", "::1", "[::1]:5353".
std::optional<dns::Upstream> parse_upstream(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(0, 1);
  if (text.empty()) return std::nullopt;
  dns::Upstream u;
  if (text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return std::nullopt;
    u.ip = text.substr(1, close - 1);
    if (close + 1 < text.size() && text[close + 1] == ':')
      u.port = static_cast<uint16_t>(std::atoi(text.c_str() + close + 2));
    return u;
  }
  size_t colon = text.find(':');
  if (colon != std::string::npos && text.find(':', colon + 1) == std::string::npos) {
    u.ip = text.substr(0, colon);
    u.port = static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1));
  } else {
    u.ip = text;
  }
  return u;
}

std::vector<dns::Upstream> parse_upstream_list(const std::string& text) {
  std::vector<dns::Upstream> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (auto u = parse_upstream(item)) out.push_back(*u);
  return out;
}

// The host's resolvers: the responder runs in the host's namespace, so loopback ones work too.
std::vector<dns::Upstream> host_resolvers() {
  std::vector<dns::Upstream> out;
  std::stringstream ss(read_file_if_exists("/etc/resolv.conf").value_or(""));
  std::string line;
  while (std::getline(ss, line)) {
    std::stringstream ls(line);
    std::string key, value;
    ls >> key >> value;
    if (key == "nameserver" && !value.empty()) {
      if (auto pct = value.find('%'); pct != std::string::npos) value.resize(pct);
      out.push_back({value, 53});
    }
  }
  return out;
}

class DbBackend : public dns::Backend {
 public:
  DbBackend(sql::Db& db, Network network, std::string lock_path)
      : db_(db), network_(std::move(network)), lock_path_(std::move(lock_path)) {}

  dns::Answer lookup(const dns::Question& q, const std::string& client_ip) override {
    std::vector<std::string> nets = client_networks(client_ip);
    dns::Answer a;
    if (q.type == dns::kTypePtr) {
      auto ip = ptr_address(q.name);
      if (!ip) return a;  // forward
      for (const auto& r : records(nets))
        if (r.ip == *ip) {
          a.kind = dns::Answer::Kind::Records;
          a.records.push_back(r.name + "." + r.network);
          return a;
        }
      return a;
    }
    std::set<std::string> ips;
    for (const auto& r : records(nets)) {
      bool match = lower(r.name) == q.name || r.id.substr(0, 12) == q.name;
      for (const auto& al : r.aliases) match = match || lower(al) == q.name;
      if (match) ips.insert(r.ip);
    }
    if (!ips.empty()) {
      a.kind = dns::Answer::Kind::Records;
      if (q.type == dns::kTypeA) a.records.assign(ips.begin(), ips.end());
      return a;  // AAAA of a known name: no data (no IPv6 on berth networks yet)
    }
    // A single label is a container name or nothing: it never leaves the host.
    if (q.name.find('.') == std::string::npos) a.kind = dns::Answer::Kind::NxDomain;
    return a;
  }

  std::vector<dns::Upstream> upstreams(const std::string& client_ip) override {
    // The asking container's --dns servers first, as docker's embedded resolver does.
    sql::Stmt s(db_,
                "SELECT c.config FROM endpoints e JOIN containers c ON c.id=e.container_id WHERE e.ip=? AND "
                "e.network_id=?");
    s.bind(1, client_ip).bind(2, network_.id);
    if (s.step()) {
      json config = json::parse(s.text(0), nullptr, false);
      if (config.is_object() && config.contains("HostConfig") && config["HostConfig"].is_object()) {
        const json& d = config["HostConfig"].value("Dns", json::array());
        std::vector<dns::Upstream> out;
        if (d.is_array())
          for (const auto& x : d)
            if (x.is_string())
              if (auto u = parse_upstream(x.get<std::string>())) out.push_back(*u);
        if (!out.empty()) return out;
      }
    }
    if (auto it = network_.options.find("com.berth.dns.upstream"); it != network_.options.end())
      return parse_upstream_list(it->second);
    if (const char* env = std::getenv("BERTH_DNS_UPSTREAM"); env && *env) return parse_upstream_list(env);
    return host_resolvers();
  }

  // Exits when the network has no endpoints, holding network.lock so that a starting container
  // either saw this responder alive before (and this check then sees its endpoint) or starts a
  // new one after this process is gone.
  bool idle() override {
    if (!path_exists(db_.path())) return true;  // the data root is gone
    if (count_endpoints() > 0) return false;
    UniqueFd fd(::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return false;
    if (count_endpoints() > 0) return false;
    held_ = std::move(fd);  // released when the process exits
    return true;
  }

 private:
  struct Record {
    std::string ip, name, id, network;
    std::vector<std::string> aliases;
  };

  int64_t count_endpoints() {
    sql::Stmt s(db_, "SELECT COUNT(*) FROM endpoints WHERE network_id=?");
    s.bind(1, network_.id);
    return s.step() ? s.integer(0) : 0;
  }

  // The user-defined networks the asking container is on (this network for anyone else).
  std::vector<std::string> client_networks(const std::string& client_ip) {
    std::vector<std::string> nets;
    sql::Stmt s(db_,
                "SELECT e2.network_id FROM endpoints e1 JOIN endpoints e2 ON e2.container_id=e1.container_id "
                "JOIN networks n ON n.id=e2.network_id WHERE e1.ip=? AND e1.network_id=? AND n.driver='bridge' AND "
                "n.name<>'bridge'");
    s.bind(1, client_ip).bind(2, network_.id);
    while (s.step()) nets.push_back(s.text(0));
    if (nets.empty()) nets.push_back(network_.id);
    return nets;
  }

  std::vector<Record> records(const std::vector<std::string>& nets) {
    std::vector<Record> out;
    for (const auto& net : nets) {
      sql::Stmt s(db_,
                  "SELECT e.ip,c.name,c.id,n.name,e.aliases FROM endpoints e JOIN containers c ON c.id=e.container_id "
                  "JOIN networks n ON n.id=e.network_id WHERE e.network_id=?");
      s.bind(1, net);
      while (s.step()) {
        Record r{s.text(0), s.text(1), s.text(2), s.text(3), {}};
        json al = json::parse(s.text(4), nullptr, false);
        if (al.is_array())
          for (const auto& x : al)
            if (x.is_string()) r.aliases.push_back(x.get<std::string>());
        out.push_back(std::move(r));
      }
    }
    return out;
  }

  // "4.3.2.1.in-addr.arpa" → "1.2.3.4".
  static std::optional<std::string> ptr_address(const std::string& name) {
    const std::string suffix = ".in-addr.arpa";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      return std::nullopt;
    std::vector<std::string> parts;
    std::stringstream ss(name.substr(0, name.size() - suffix.size()));
    std::string p;
    while (std::getline(ss, p, '.')) parts.push_back(p);
    if (parts.size() != 4) return std::nullopt;
    std::string ip = parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0];
    if (!network::parse_ip4(ip)) return std::nullopt;
    return ip;
  }

  sql::Db& db_;
  Network network_;
  std::string lock_path_;
  UniqueFd held_;
};

}  // namespace

// Caller holds network.lock.
void NetworkStore::ensure_dns(const Network& n) {
  std::string dir = run_dir_ + "/dns";
  mkdir_p(dir, 0700);
  std::string alive_path = dir + "/" + n.id + ".lock";
  // The lock is taken here and handed to the responder with its sockets, so it is held from now
  // until the responder exits: a concurrent start finds it held and leaves the work to this one.
  UniqueFd alive(::open(alive_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!alive) throw_errno("open " + alive_path);
  if (::flock(alive.get(), LOCK_EX | LOCK_NB) != 0) return;  // a responder holds it
  // The responder of a just-removed network on the same gateway address exits within its idle
  // interval (1 s); until then the address is taken, so that failure is retried.
  dns::Listeners sockets;
  for (int attempt = 0;; attempt++) {
    try {
      sockets = dns::listen(n.gateway, 53);
      break;
    } catch (const Error& e) {
      if (e.errnum() != EADDRINUSE || attempt >= 30)
        throw Error("DNS responder for network " + n.name + " did not start: " + e.what(), e.errnum());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::vector<std::string> args = {self_dir() + "berth", "--root", root_, "network", "dns-serve", n.id};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string log_path = dir + "/" + n.id + ".log";
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork the DNS responder");
  if (pid == 0) {
    // Detached from this command (new session, reparented to init by the double fork). The lock
    // and sockets go to fds 3, 4 and 5 (by way of fds above 5, as dup2 must not clobber a source).
    ::setsid();
    restore_open_file_limit();
    if (::fork() != 0) ::_exit(0);
    int lock = ::fcntl(alive.get(), F_DUPFD, 10), udp = ::fcntl(sockets.udp.get(), F_DUPFD, 10),
        tcp = ::fcntl(sockets.tcp.get(), F_DUPFD, 10);
    if (lock < 0 || udp < 0 || tcp < 0) ::_exit(127);
    ::dup2(lock, 3);
    ::dup2(udp, 4);
    ::dup2(tcp, 5);
    int null = ::open("/dev/null", O_RDWR);
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(log >= 0 ? log : null, 2);
    ::syscall(SYS_close_range, 6, ~0U, 0);
    ::signal(SIGPIPE, SIG_IGN);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

void NetworkStore::stop_dns(const std::string& network_id) {
  std::string base = run_dir_ + "/dns/" + network_id;
  UniqueFd alive(::open((base + ".lock").c_str(), O_RDWR | O_CLOEXEC));
  if (!alive) return;  // never started
  if (::flock(alive.get(), LOCK_EX | LOCK_NB) != 0) {
    // Held: the responder is alive, and the pid in the file is its own.
    char buf[32] = {};
    ssize_t k = ::pread(alive.get(), buf, sizeof buf - 1, 0);
    int pid = k > 0 ? std::atoi(buf) : 0;
    if (pid > 1) ::kill(pid, SIGTERM);
    for (int waited = 0; waited < 2000 && ::flock(alive.get(), LOCK_EX | LOCK_NB) != 0; waited += 5)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::unlink((base + ".lock").c_str());
  ::unlink((base + ".log").c_str());
}

void NetworkStore::serve_dns(const std::string& network_id) {
  // ensure_dns's hand-over: fd 3 holds the network's responder lock, 4 and 5 the bound sockets.
  struct stat lock_st {};
  if (::fstat(3, &lock_st) != 0 || !S_ISREG(lock_st.st_mode) || ::fcntl(4, F_GETFD) < 0 || ::fcntl(5, F_GETFD) < 0)
    throw Error("network dns-serve: started by berth only (expects its lock and sockets on fds 3-5)");
  UniqueFd alive(3);
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  // The lock holder's pid, for stop_dns when the network is removed.
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(alive.get(), 0) != 0 || ::pwrite(alive.get(), pid.data(), pid.size(), 0) < 0)
    throw_errno("write the DNS responder's lock file");
  auto n = find(network_id);
  if (!n) throw Error("network " + network_id + " not found");
  DbBackend backend(db_, *n, root_ + "/locks/network.lock");
  dns::ServerOptions options;
  options.address = n->gateway;
  options.port = 53;
  options.upstream_timeout_ms = 2000;
  options.ttl = 600;
  options.udp_fd = 4;
  options.tcp_fd = 5;
  dns::serve(options, backend);
}

}  // namespace berth::engine
