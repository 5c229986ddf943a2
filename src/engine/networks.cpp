#include "engine/networks.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "engine/engine.hpp"
#include "engine/names.hpp"
#include "engine/process.hpp"
#include "engine/schema.hpp"
#include "network/dns.hpp"
#include "network/firewall.hpp"
#include "network/ipam.hpp"
#include "network/netlink.hpp"
#include "util/error.hpp"
#include "util/fault.hpp"
#include "util/fd.hpp"
#include "util/file_lock.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"

namespace berth::engine {

using nlohmann::json;
namespace net = berth::network;

namespace {

int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::map<std::string, std::string> string_map(const std::string& text) {
  std::map<std::string, std::string> out;
  json j = json::parse(text, nullptr, false);
  if (j.is_object())
    for (auto& [k, v] : j.items())
      if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

Network read_network(sql::Stmt& s) {
  Network n;
  n.id = s.text(0);
  n.name = s.text(1);
  n.driver = s.text(2);
  n.created_ns = s.integer(3);
  n.subnet = s.text(4);
  n.gateway = s.text(5);
  n.ip_range = s.text(6);
  n.bridge = s.text(7);
  n.internal = s.integer(8) != 0;
  n.mtu = static_cast<int>(s.integer(9));
  n.labels = string_map(s.text(10));
  n.options = string_map(s.text(11));
  return n;
}

constexpr const char* kNetworkColumns =
    "id,name,driver,created_ns,subnet,gateway,ip_range,bridge,internal,mtu,labels,options";

// Stable short hex of a container and network pair, for veth names (15 bytes at most).
std::string pair_hash(const std::string& a, const std::string& b) {
  uint64_t h = 1469598103934665603ull;
  for (char ch : a + "/" + b) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 10);
}

net::FirewallNetwork firewall_network(const Network& n) { return {n.bridge, n.subnet, n.internal}; }

net::PortMapping port_mapping(const PortBinding& p) {
  return {p.proto, p.host_ip == "0.0.0.0" ? "" : p.host_ip, p.host_port, p.container_ip, p.container_port};
}

// Whether a host process (or anything) holds the port: a real bind, like docker's port reservation.
bool host_port_free(const std::string& proto, const std::string& host_ip, uint16_t port) {
  int type = proto == "udp" ? SOCK_DGRAM : SOCK_STREAM;
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  if (!fd) return true;
  int one = 1;
  if (type == SOCK_STREAM) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  auto ip = net::parse_ip4(host_ip.empty() ? "0.0.0.0" : host_ip);
  sa.sin_addr.s_addr = htonl(ip.value_or(0));
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 || errno != EADDRINUSE;
}

std::vector<std::string> dir_entries(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  ::closedir(d);
  return out;
}

bool hosts_overlap(const std::string& a, const std::string& b) { return a == b || a == "0.0.0.0" || b == "0.0.0.0"; }

std::string port_error(const std::string& host_ip, uint16_t port, const std::string& why) {
  return "driver failed programming external connectivity: Bind for " + host_ip + ":" + std::to_string(port) +
         " failed: " + why;
}

}  // namespace

// Holds network.lock for the whole of one change.
struct NetworkStore::Locked {
  explicit Locked(const std::string& root) : lock(prepare(root), FileLock::Mode::Exclusive) {}
  static std::string prepare(const std::string& root) {
    mkdir_p(root + "/locks", 0700);
    return root + "/locks/network.lock";
  }
  FileLock lock;
};

NetworkStore::NetworkStore(sql::Db& db, std::string root, std::string run_dir)
    : db_(db), root_(std::move(root)), run_dir_(std::move(run_dir)) {
  ensure_schema(db_);
}

std::string NetworkStore::netns_path(const std::string& container_id) const {
  return run_dir_ + "/netns/" + container_id;
}

void NetworkStore::ensure_predefined() {
  {
    sql::Stmt s(db_, "SELECT COUNT(*) FROM networks WHERE name IN ('bridge','host','none')");
    if (s.step() && s.integer(0) == 3) return;
  }
  Locked locked(root_);
  std::vector<net::Subnet4> taken;
  {
    sql::Stmt s(db_, "SELECT subnet FROM networks WHERE subnet<>''");
    while (s.step()) taken.push_back(net::Subnet4::parse(s.text(0)));
  }
  for (const auto& r : net::Netlink().routes4()) taken.push_back({r.dst == 0 ? 0 : ntohl(r.dst), r.prefix});
  sql::Transaction tx(db_);
  auto add = [&](const std::string& name, const std::string& driver, const std::string& subnet,
                 const std::string& gateway, const std::string& bridge, const json& options) {
    sql::Stmt(db_,
              "INSERT OR IGNORE INTO networks(id,name,driver,created_ns,subnet,gateway,bridge,options) "
              "VALUES(?,?,?,?,?,?,?,?)")
        .bind(1, generate_id())
        .bind(2, name)
        .bind(3, driver)
        .bind(4, now_ns())
        .bind(5, subnet)
        .bind(6, gateway)
        .bind(7, bridge)
        .bind(8, options.dump())
        .run();
  };
  // docker's default bridge: 172.17.0.0/16 unless the host routes it already.
  auto subnet = net::pick_pool_subnet(taken);
  if (!subnet) throw Error("no free subnet for the default bridge network");
  add("bridge", "bridge", subnet->str(), net::format_ip4(subnet->base + 1), "berth0",
      {{"com.docker.network.bridge.default_bridge", "true"},
       {"com.docker.network.bridge.enable_icc", "true"},
       {"com.docker.network.bridge.enable_ip_masquerade", "true"},
       {"com.docker.network.bridge.name", "berth0"},
       {"com.docker.network.driver.mtu", "1500"}});
  add("host", "host", "", "", "", json::object());
  add("none", "null", "", "", "", json::object());
  tx.commit();
}

std::optional<Network> NetworkStore::find(const std::string& ref) {
  if (ref.empty()) return std::nullopt;
  {
    sql::Stmt s(db_,
                std::string("SELECT ") + kNetworkColumns + " FROM networks WHERE (name=? OR id=?) AND state='ready'");
    s.bind(1, ref).bind(2, ref);
    if (s.step()) return read_network(s);
  }
  sql::Stmt s(db_, std::string("SELECT ") + kNetworkColumns +
                       " FROM networks WHERE substr(id,1,length(?))=? AND state='ready' LIMIT 2");
  s.bind(1, ref).bind(2, ref);
  if (!s.step()) return std::nullopt;
  Network n = read_network(s);
  if (s.step()) throw StatusError("network " + ref + " is ambiguous (2 matches found based on ID prefix)", 1);
  return n;
}

Network NetworkStore::get(const std::string& ref) {
  ensure_predefined();
  auto n = find(ref);
  if (!n) throw NotFound("network " + ref + " not found");
  return *n;
}

std::vector<Network> NetworkStore::list() {
  ensure_predefined();
  std::vector<Network> out;
  sql::Stmt s(db_, std::string("SELECT ") + kNetworkColumns + " FROM networks WHERE state='ready' ORDER BY name");
  while (s.step()) out.push_back(read_network(s));
  return out;
}

Network NetworkStore::create(const NetworkCreateRequest& r) {
  ensure_predefined();
  if (r.name.empty()) throw StatusError("network name must not be empty", 1);
  for (char ch : r.name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-'))
      throw StatusError("invalid network name \"" + r.name + "\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", 1);
  if (!std::isalnum(static_cast<unsigned char>(r.name[0])))
    throw StatusError("invalid network name \"" + r.name + "\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", 1);
  if (r.driver != "bridge") {
    if (r.driver == "host" || r.driver == "null")
      throw StatusError("only one instance of \"" + r.driver + "\" network is allowed", 1);
    throw StatusError("plugin \"" + r.driver + "\" not found", 1);
  }
  Network n;
  n.name = r.name;
  n.driver = r.driver;
  n.internal = r.internal;
  n.labels = r.labels;
  n.options = r.options;
  for (const auto& [k, v] : r.options) {
    if (k == "com.docker.network.bridge.name") {
      if (v.empty() || v.size() > 15 || v.find_first_of("/ :") != std::string::npos)
        throw StatusError("invalid bridge name \"" + v + "\"", 1);
      n.bridge = v;
    } else if (k == "com.docker.network.driver.mtu") {
      if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos || std::stoi(v) < 68 ||
          std::stoi(v) > 65535)
        throw StatusError("invalid MTU \"" + v + "\": it must be a number from 68 to 65535", 1);
      n.mtu = std::stoi(v);
    }
  }
  // Parse and check before touching anything.
  std::optional<net::Subnet4> subnet, range;
  std::optional<uint32_t> gateway;
  try {
    if (!r.subnet.empty()) subnet = net::Subnet4::parse(r.subnet);
    if (!r.ip_range.empty()) range = net::Subnet4::parse(r.ip_range);
  } catch (const Error& e) {
    throw StatusError(e.what(), 1);
  }
  if (!r.gateway.empty()) {
    gateway = net::parse_ip4(r.gateway);
    if (!gateway) throw StatusError("invalid gateway address " + r.gateway, 1);
    if (!subnet) throw StatusError("gateway " + r.gateway + " needs a --subnet", 1);
  }
  if (range && !subnet) throw StatusError("ip-range " + r.ip_range + " needs a --subnet", 1);
  if (subnet && subnet->prefix > 30) throw StatusError("subnet " + r.subnet + " is too small", 1);
  if (range && !subnet->contains(*range))
    throw StatusError("ip-range " + r.ip_range + " is not within subnet " + r.subnet, 1);
  if (gateway && (!subnet->contains(*gateway) || *gateway == subnet->first() || *gateway == subnet->last()))
    throw StatusError("gateway " + r.gateway + " is not a host address of subnet " + r.subnet, 1);

  Locked locked(root_);
  if (find(r.name)) throw StatusError("network with name " + r.name + " already exists", 1);
  std::vector<net::Subnet4> taken;
  {
    sql::Stmt s(db_, "SELECT subnet,name FROM networks WHERE subnet<>''");
    while (s.step()) {
      auto t = net::Subnet4::parse(s.text(0));
      if (subnet && t.overlaps(*subnet))
        throw StatusError("invalid pool request: Pool overlaps with other one on this address space (network " +
                              s.text(1) + " has " + s.text(0) + ")",
                          1);
      taken.push_back(t);
    }
  }
  if (!subnet) {
    for (const auto& rt : net::Netlink().routes4()) taken.push_back({rt.dst == 0 ? 0 : ntohl(rt.dst), rt.prefix});
    subnet = net::pick_pool_subnet(taken);
    if (!subnet)
      throw StatusError("could not find an available, non-overlapping IPv4 address pool among the defaults", 1);
  }
  n.subnet = subnet->str();
  n.gateway = net::format_ip4(gateway.value_or(subnet->base + 1));
  n.ip_range = range ? range->str() : "";
  n.id = generate_id();
  if (n.bridge.empty()) n.bridge = "br-" + n.id.substr(0, 12);
  {
    sql::Stmt s(db_, "SELECT name FROM networks WHERE bridge=?");
    s.bind(1, n.bridge);
    if (s.step()) throw StatusError("bridge name " + n.bridge + " is used by network " + s.text(0), 1);
  }
  n.created_ns = now_ns();
  json labels = r.labels, options = r.options;
  sql::Stmt(db_,
            "INSERT INTO networks(id,name,driver,created_ns,subnet,gateway,ip_range,bridge,internal,mtu,labels,options,"
            "state) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,'creating')")
      .bind(1, n.id)
      .bind(2, n.name)
      .bind(3, n.driver)
      .bind(4, n.created_ns)
      .bind(5, n.subnet)
      .bind(6, n.gateway)
      .bind(7, n.ip_range)
      .bind(8, n.bridge)
      .bind(9, int64_t{n.internal})
      .bind(10, int64_t{n.mtu})
      .bind(11, labels.dump())
      .bind(12, options.dump())
      .run();
  fault_point("network-create.row");
  try {
    ensure_kernel_side(n);
    fault_point("network-create.bridge");
    sql::Stmt(db_, "UPDATE networks SET state='ready' WHERE id=?").bind(1, n.id).run();
  } catch (...) {
    try {
      net::Netlink().delete_link(n.bridge);
      net::Firewall fw;
      if (fw.exists()) fw.remove_network(firewall_network(n));
    } catch (...) {
    }
    sql::Stmt(db_, "DELETE FROM networks WHERE id=?").bind(1, n.id).run();
    throw;
  }
  return n;
}

// The bridge with its address, and the firewall's view of it; made again after a reboot (or
// after someone flushed the ruleset: then every network and port goes back in).
Network NetworkStore::ensure_kernel_side(const Network& n) {
  net::Netlink nl;
  // The usual start finds the table and the bridge in place and needs no libnftables at all.
  std::optional<net::Firewall> fw_storage;
  auto firewall = [&]() -> net::Firewall& { return fw_storage ? *fw_storage : fw_storage.emplace(); };
  bool fresh_rules = !net::Firewall::table_exists();
  if (fresh_rules) firewall().ensure();
  if (!nl.link_exists(n.bridge)) {
    net::Firewall& fw = firewall();
    nl.create_bridge(n.bridge, n.mtu);
    // A fixed address: otherwise the bridge takes its lowest port's, which changes (and goes stale
    // in the other containers' neighbour caches) when that container stops.
    nl.set_mac(n.bridge, net::mac_for_ip4(net::parse_ip4(n.gateway).value_or(0)));
    auto subnet = net::Subnet4::parse(n.subnet);
    nl.add_address(n.bridge, n.gateway + "/" + std::to_string(subnet.prefix));
    // Published ports reached at 127.0.0.1 are routed to the bridge: the kernel must accept
    // loopback sources there (masqueraded in postrouting).
    net::write_net_sysctl("ipv4/conf/" + n.bridge + "/route_localnet", "1");
    net::write_net_sysctl("ipv4/ip_forward", "1");
    if (!fresh_rules) {
      fw.remove_network(firewall_network(n));
      fw.add_network(firewall_network(n));
    }
  }
  if (fresh_rules) {
    net::Firewall& fw = firewall();
    // Every bridge network and every published port, as the database has them.
    sql::Stmt s(db_, std::string("SELECT ") + kNetworkColumns +
                         " FROM networks WHERE driver='bridge' AND state IN ('ready','creating')");
    while (s.step()) {
      Network other = read_network(s);
      if (other.id == n.id || nl.link_exists(other.bridge)) fw.add_network(firewall_network(other));
    }
    std::vector<net::PortMapping> all;
    sql::Stmt p(db_, "SELECT proto,host_ip,host_port,container_ip,container_port FROM ports");
    while (p.step())
      all.push_back(port_mapping({"", p.text(0), p.text(1), static_cast<uint16_t>(p.integer(2)),
                                  static_cast<uint16_t>(p.integer(4)), p.text(3)}));
    if (!all.empty()) fw.add_ports(all);
  }
  return n;
}

void NetworkStore::remove(const std::string& ref) {
  Network n = get(ref);
  if (n.predefined()) throw StatusError(n.name + " is a pre-defined network and cannot be removed", 1);
  Locked locked(root_);
  {
    sql::Stmt s(db_, "SELECT COUNT(*) FROM endpoints WHERE network_id=?");
    s.bind(1, n.id);
    if (s.step() && s.integer(0) > 0)
      throw StatusError("error while removing network: network " + n.name + " id " + n.id + " has active endpoints", 1);
  }
  sql::Stmt(db_, "UPDATE networks SET state='removing' WHERE id=?").bind(1, n.id).run();
  fault_point("network-rm.mark");
  net::Firewall fw;
  if (fw.exists()) fw.remove_network(firewall_network(n));
  net::Netlink().delete_link(n.bridge);
  fault_point("network-rm.bridge");
  sql::Stmt(db_, "DELETE FROM networks WHERE id=?").bind(1, n.id).run();
  // At once, not at the responder's next idle check: a network created next may reuse the gateway.
  stop_dns(n.id);
}

std::vector<std::string> NetworkStore::prune(const std::function<bool(const Network&)>& match) {
  std::vector<std::string> removed;
  for (const auto& n : list()) {
    if (n.predefined() || !match(n)) continue;
    if (!network_endpoints(n.id).empty()) continue;
    // A container that is not running but was created on the network still uses it (docker).
    {
      sql::Stmt s(db_, "SELECT COUNT(*) FROM containers WHERE config LIKE ? OR config LIKE ?");
      s.bind(1, "%\"NetworkMode\":\"" + n.name + "\"%").bind(2, "%\"" + n.name + "\":{%");
      if (s.step() && s.integer(0) > 0) continue;
    }
    try {
      remove(n.id);
      removed.push_back(n.name);
    } catch (const Error&) {
    }
  }
  return removed;
}

// Endpoints with their network's name, gateway and prefix, for one container or one network.
std::vector<Endpoint> NetworkStore::query_endpoints(const char* where, const std::string& key) {
  std::vector<Endpoint> out;
  sql::Stmt s(db_,
              std::string("SELECT e.container_id,e.network_id,n.name,e.ip,n.gateway,e.mac,e.veth,e.ifname,n.subnet,"
                          "e.aliases FROM endpoints e JOIN networks n ON n.id=e.network_id WHERE ") +
                  where);
  s.bind(1, key);
  while (s.step()) {
    Endpoint e{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6), s.text(7), 0, {}};
    if (!s.text(8).empty()) e.prefix = net::Subnet4::parse(s.text(8)).prefix;
    json a = json::parse(s.text(9), nullptr, false);
    if (a.is_array())
      for (const auto& x : a)
        if (x.is_string()) e.aliases.push_back(x.get<std::string>());
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<Endpoint> NetworkStore::endpoints(const std::string& container_id) {
  return query_endpoints("e.container_id=? ORDER BY e.position", container_id);
}

std::vector<Endpoint> NetworkStore::network_endpoints(const std::string& network_id) {
  return query_endpoints("e.network_id=? ORDER BY e.container_id", network_id);
}

std::vector<PortBinding> NetworkStore::ports(const std::string& container_id) {
  std::vector<PortBinding> out;
  sql::Stmt s(db_,
              "SELECT proto,host_ip,host_port,container_port,container_ip FROM ports WHERE container_id=? "
              "ORDER BY container_port,proto,host_ip");
  s.bind(1, container_id);
  while (s.step())
    out.push_back({container_id, s.text(0), s.text(1), static_cast<uint16_t>(s.integer(2)),
                   static_cast<uint16_t>(s.integer(3)), s.text(4)});
  return out;
}

namespace {

struct WantedPort {
  std::string proto, host_ip;
  uint16_t container_port = 0;
  uint16_t host_lo = 0, host_hi = 0;  // 0: any free port
};

uint16_t parse_port_number(const std::string& text, const std::string& what) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(text) > 65535)
    throw StatusError("invalid " + what + " \"" + text + "\"", 125);
  return static_cast<uint16_t>(std::stoi(text));
}

std::vector<WantedPort> wanted_ports(const ContainerNetRequest& r) {
  std::vector<WantedPort> out;
  auto split_key = [](const std::string& key, std::string& proto) {
    size_t slash = key.find('/');
    proto = slash == std::string::npos ? "tcp" : key.substr(slash + 1);
    if (proto != "tcp" && proto != "udp") throw StatusError("unsupported protocol \"" + proto + "\" in " + key, 125);
    return parse_port_number(key.substr(0, slash), "container port");
  };
  std::set<std::string> bound;
  if (r.port_bindings.is_object()) {
    for (auto& [key, list] : r.port_bindings.items()) {
      std::string proto;
      uint16_t cport = split_key(key, proto);
      bound.insert(std::to_string(cport) + "/" + proto);
      json entries = list.is_array() && !list.empty() ? list : json::array({json::object()});
      for (const auto& b : entries) {
        WantedPort w{proto, b.is_object() ? b.value("HostIp", "") : "", cport, 0, 0};
        if (w.host_ip.empty() || w.host_ip == "::") w.host_ip = "0.0.0.0";
        if (!net::parse_ip4(w.host_ip))
          throw StatusError("invalid host IP \"" + w.host_ip + "\" for port " + key + " (IPv4 only)", 125);
        std::string hp = b.is_object() ? b.value("HostPort", "") : "";
        if (!hp.empty()) {
          size_t dash = hp.find('-');
          w.host_lo = parse_port_number(hp.substr(0, dash), "host port");
          w.host_hi = dash == std::string::npos ? w.host_lo : parse_port_number(hp.substr(dash + 1), "host port");
          if (w.host_hi < w.host_lo) throw StatusError("invalid host port range \"" + hp + "\"", 125);
        }
        out.push_back(w);
      }
    }
  }
  if (r.publish_all)
    for (const auto& e : r.exposed) {
      std::string proto;
      uint16_t cport = split_key(e, proto);
      if (bound.insert(std::to_string(cport) + "/" + proto).second) out.push_back({proto, "0.0.0.0", cport, 0, 0});
    }
  return out;
}

// Whether (proto, host_ip, port) clashes with a published port in the database.
std::optional<std::string> port_taken(sql::Db& db, const std::string& proto, const std::string& host_ip,
                                      uint16_t port) {
  sql::Stmt s(db, "SELECT host_ip,container_id FROM ports WHERE proto=? AND host_port=?");
  s.bind(1, proto).bind(2, int64_t{port});
  while (s.step())
    if (hosts_overlap(s.text(0), host_ip)) return s.text(1);
  return std::nullopt;
}

// Picks the endpoint's address (the requested one or the lowest free) and records its row.
Endpoint allocate_endpoint(sql::Db& db, const Network& n, const EndpointRequest& req, const std::string& container_id,
                           const std::string& ifname, int64_t position, int status) {
  auto subnet = net::Subnet4::parse(n.subnet);
  std::optional<net::Subnet4> range;
  if (!n.ip_range.empty()) range = net::Subnet4::parse(n.ip_range);
  uint32_t gateway = net::parse_ip4(n.gateway).value_or(0);
  std::set<uint32_t> used;
  {
    sql::Stmt s(db, "SELECT ip FROM endpoints WHERE network_id=?");
    s.bind(1, n.id);
    while (s.step())
      if (auto ip = net::parse_ip4(s.text(0))) used.insert(*ip);
  }
  std::optional<uint32_t> ip;
  if (!req.ip.empty()) {
    ip = net::parse_ip4(req.ip);
    if (!ip || !subnet.contains(*ip))
      throw StatusError("no configured subnet contains IP address " + req.ip + " of network " + n.name, status);
    if (used.contains(*ip) || *ip == gateway)
      throw StatusError("Address already in use: " + req.ip + " on network " + n.name, status);
  } else {
    ip = net::next_free_ip(subnet, range, gateway, used);
    if (!ip) throw StatusError("no available IPv4 addresses on network " + n.name, status);
  }
  Endpoint e;
  e.container_id = container_id;
  e.network_id = n.id;
  e.network_name = n.name;
  e.ip = net::format_ip4(*ip);
  e.gateway = n.gateway;
  e.prefix = subnet.prefix;
  e.mac = req.mac.empty() ? net::mac_for_ip4(*ip) : req.mac;
  e.veth = "bv" + pair_hash(container_id, n.id);
  e.ifname = ifname;
  e.aliases = req.aliases;
  sql::Stmt(
      db, "INSERT INTO endpoints(container_id,network_id,ip,mac,veth,ifname,aliases,position) VALUES(?,?,?,?,?,?,?,?)")
      .bind(1, e.container_id)
      .bind(2, e.network_id)
      .bind(3, e.ip)
      .bind(4, e.mac)
      .bind(5, e.veth)
      .bind(6, e.ifname)
      .bind(7, json(e.aliases).dump())
      .bind(8, position)
      .run();
  return e;
}

// The veth pair of one endpoint: the container's end made inside its namespace, named, addressed
// and up; the host's end on the bridge.
void plumb_endpoint(net::Netlink& host, net::Netlink& inside, int nsfd, const Endpoint& e, const Network& n) {
  std::string peer = "bp" + e.veth.substr(2);
  host.create_veth(e.veth, peer, nsfd, n.mtu);
  fault_point("net-setup.veth");
  inside.rename(peer, e.ifname);
  inside.set_mac(e.ifname, e.mac);
  inside.add_address(e.ifname, e.ip + "/" + std::to_string(e.prefix));
  inside.set_up(e.ifname);
  host.set_master(e.veth, n.bridge);
  host.set_hairpin(e.veth);
  host.set_up(e.veth);
}

}  // namespace

void NetworkStore::validate(const ContainerNetRequest& r) {
  for (const auto& req : r.networks) {
    auto n = find(req.network);
    if (!n) {
      ensure_predefined();
      n = find(req.network);
    }
    if (!n) throw StatusError("network " + req.network + " not found", 125);
    if (!req.ip.empty()) {
      if (!n->user_defined() || n->options.count("com.docker.network.bridge.default_bridge"))
        throw StatusError("user specified IP address is supported on user defined networks only", 125);
      auto ip = net::parse_ip4(req.ip);
      if (!ip || !net::Subnet4::parse(n->subnet).contains(*ip))
        throw StatusError("no configured subnet contains IP address " + req.ip + " of network " + n->name, 125);
    }
    if (!req.aliases.empty() && !n->user_defined())
      throw StatusError("network-scoped alias is supported only for containers in user defined networks", 125);
  }
  for (const auto& w : wanted_ports(r)) {
    if (w.host_lo == 0 || w.host_lo != w.host_hi) continue;
    if (port_taken(db_, w.proto, w.host_ip, w.host_lo) || !host_port_free(w.proto, w.host_ip, w.host_lo))
      throw StatusError(port_error(w.host_ip, w.host_lo, "port is already allocated"), 125);
  }
}

std::vector<Endpoint> NetworkStore::setup(const ContainerNetRequest& r) {
  ensure_predefined();
  Locked locked(root_);
  // Leftovers of an earlier run of this container (a crash between start and teardown).
  teardown_locked(r.id);
  std::vector<Network> nets;
  for (const auto& req : r.networks) {
    auto n = find(req.network);
    if (!n) throw StatusError("network " + req.network + " not found", 125);
    if (n->driver != "bridge") throw StatusError("network " + n->name + " cannot be joined: driver " + n->driver, 125);
    for (const auto& other : nets)
      if (other.id == n->id) throw StatusError("container is already attached to network " + n->name, 125);
    nets.push_back(ensure_kernel_side(*n));
  }
  std::vector<WantedPort> wanted = wanted_ports(r);
  std::vector<Endpoint> eps;
  std::vector<PortBinding> bindings;
  {
    sql::Transaction tx(db_);
    for (size_t i = 0; i < nets.size(); ++i)
      eps.push_back(allocate_endpoint(db_, nets[i], r.networks[i], r.id, "eth" + std::to_string(i),
                                      static_cast<int64_t>(i), 125));
    // Published ports go to the first network's address (docker's behaviour with several).
    if (!wanted.empty() && eps.empty()) throw StatusError("published ports need a bridge network", 125);
    std::mt19937 rng(static_cast<uint32_t>(now_ns()));
    for (const auto& w : wanted) {
      uint16_t port = 0;
      auto usable = [&](uint16_t p) {
        return !port_taken(db_, w.proto, w.host_ip, p) && host_port_free(w.proto, w.host_ip, p);
      };
      if (w.host_lo != 0) {
        for (uint32_t p = w.host_lo; p <= w.host_hi && port == 0; ++p)
          if (usable(static_cast<uint16_t>(p))) port = static_cast<uint16_t>(p);
        if (port == 0) throw StatusError(port_error(w.host_ip, w.host_lo, "port is already allocated"), 125);
      } else {
        // docker's ephemeral range.
        constexpr uint32_t lo = 32768, hi = 60999;
        uint32_t start = lo + rng() % (hi - lo + 1);
        for (uint32_t k = 0; k <= hi - lo && port == 0; ++k) {
          auto p = static_cast<uint16_t>(lo + (start - lo + k) % (hi - lo + 1));
          if (usable(p)) port = p;
        }
        if (port == 0) throw StatusError("no free host port for " + std::to_string(w.container_port), 125);
      }
      PortBinding b{r.id, w.proto, w.host_ip, port, w.container_port, eps.front().ip};
      sql::Stmt(db_,
                "INSERT INTO ports(container_id,proto,host_ip,host_port,container_ip,container_port) "
                "VALUES(?,?,?,?,?,?)")
          .bind(1, r.id)
          .bind(2, b.proto)
          .bind(3, b.host_ip)
          .bind(4, int64_t{b.host_port})
          .bind(5, b.container_ip)
          .bind(6, int64_t{b.container_port})
          .run();
      bindings.push_back(b);
    }
    tx.commit();
  }
  fault_point("net-setup.rows");
  try {
    net::create_netns(netns_path(r.id));
    UniqueFd nsfd = net::open_netns(netns_path(r.id));
    net::Netlink host;
    net::Netlink inside(nsfd.get());
    inside.set_up("lo");
    for (size_t i = 0; i < eps.size(); ++i) {
      const Endpoint& e = eps[i];
      const Network& n = nets[i];
      plumb_endpoint(host, inside, nsfd.get(), e, n);
      // The first network that may leave its bridge gets the default route.
      if (i == 0 && !n.internal) inside.add_default_route(e.gateway, e.ifname);
    }
    if (!bindings.empty()) {
      std::vector<net::PortMapping> m;
      for (const auto& b : bindings) m.push_back(port_mapping(b));
      net::Firewall().add_ports(m);
    }
    fault_point("net-setup.rules");
    for (const auto& n : nets)
      if (n.user_defined()) ensure_dns(n);
  } catch (...) {
    teardown_locked(r.id);
    throw;
  }
  return eps;
}

Endpoint NetworkStore::connect(const ContainerNetRequest& container, const EndpointRequest& req) {
  Network n = get(req.network);
  if (n.driver != "bridge") throw StatusError("network " + n.name + " cannot be joined: driver " + n.driver, 1);
  Locked locked(root_);
  std::vector<Endpoint> existing = endpoints(container.id);
  for (const auto& e : existing)
    if (e.network_id == n.id)
      throw StatusError("endpoint with name " + container.name + " already exists in network " + n.name, 1);
  ensure_kernel_side(n);
  std::set<std::string> ifnames;
  for (const auto& e : existing) ifnames.insert(e.ifname);
  std::string ifname;
  for (int k = 0; ifname.empty(); ++k)
    if (!ifnames.contains("eth" + std::to_string(k))) ifname = "eth" + std::to_string(k);
  int64_t position = 0;
  {
    sql::Stmt s(db_, "SELECT COALESCE(MAX(position),-1)+1 FROM endpoints WHERE container_id=?");
    s.bind(1, container.id);
    if (s.step()) position = s.integer(0);
  }
  Endpoint e = allocate_endpoint(db_, n, req, container.id, ifname, position, 1);
  try {
    UniqueFd nsfd = net::open_netns(netns_path(container.id));
    net::Netlink host;
    net::Netlink inside(nsfd.get());
    plumb_endpoint(host, inside, nsfd.get(), e, n);
    if (n.user_defined()) ensure_dns(n);
  } catch (...) {
    try {
      net::Netlink().delete_link(e.veth);
    } catch (...) {
    }
    sql::Stmt(db_, "DELETE FROM endpoints WHERE container_id=? AND network_id=?")
        .bind(1, container.id)
        .bind(2, n.id)
        .run();
    throw;
  }
  return e;
}

void NetworkStore::disconnect(const std::string& container_id, const std::string& network_id) {
  Locked locked(root_);
  for (const auto& e : endpoints(container_id)) {
    if (e.network_id != network_id) continue;
    net::Netlink().delete_link(e.veth);
  }
  // Ports are published on the first network's address: they go with it.
  std::vector<PortBinding> gone;
  auto eps = endpoints(container_id);
  if (!eps.empty() && eps.front().network_id == network_id) gone = ports(container_id);
  if (!gone.empty()) {
    std::vector<net::PortMapping> m;
    for (const auto& b : gone) m.push_back(port_mapping(b));
    net::Firewall fw;
    if (fw.exists()) fw.remove_ports(m);
    sql::Stmt(db_, "DELETE FROM ports WHERE container_id=?").bind(1, container_id).run();
  }
  sql::Stmt(db_, "DELETE FROM endpoints WHERE container_id=? AND network_id=?")
      .bind(1, container_id)
      .bind(2, network_id)
      .run();
}

void NetworkStore::teardown(const std::string& container_id) {
  Locked locked(root_);
  teardown_locked(container_id);
}

void NetworkStore::teardown_locked(const std::string& container_id) {
  std::vector<Endpoint> eps = endpoints(container_id);
  std::vector<PortBinding> bindings = ports(container_id);
  if (eps.empty() && bindings.empty() && !path_exists(netns_path(container_id))) return;
  if (!bindings.empty()) {
    std::vector<net::PortMapping> m;
    for (const auto& b : bindings) m.push_back(port_mapping(b));
    net::Firewall fw;
    if (fw.exists()) fw.remove_ports(m);
  }
  fault_point("net-teardown.rules");
  // Dropping the namespace lets the kernel destroy its veths, host ends included, in the
  // background: measured here 13-16 ms until the host end is gone against 22-40 ms for a
  // synchronous RTM_DELLINK, and the rows are committed meanwhile. Before returning, the host ends
  // are waited for, so a caller never sees a veth left behind; one that stays (its namespace held
  // open by some other process, or no namespace at all) is deleted directly.
  net::remove_netns(netns_path(container_id));
  fault_point("net-teardown.netns");
  {
    sql::Transaction tx(db_);
    sql::Stmt(db_, "DELETE FROM ports WHERE container_id=?").bind(1, container_id).run();
    sql::Stmt(db_, "DELETE FROM endpoints WHERE container_id=?").bind(1, container_id).run();
    tx.commit();
  }
  if (eps.empty()) return;
  net::Netlink host;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (const auto& e : eps) {
    while (host.link_exists(e.veth) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    if (host.link_exists(e.veth)) host.delete_link(e.veth);
  }
}

void NetworkStore::reconcile(const std::function<void(const std::string&)>& settle) {
  // Containers whose row says they are not running but still have endpoints, ports or a
  // namespace (settle() checks under the container's lock and tears down).
  std::set<std::string> candidates;
  {
    sql::Stmt s(db_,
                "SELECT x.id FROM (SELECT container_id AS id FROM endpoints UNION SELECT container_id FROM ports) x "
                "LEFT JOIN containers c ON c.id=x.id WHERE c.id IS NULL OR c.state NOT IN "
                "('running','paused','restarting')");
    while (s.step()) candidates.insert(s.text(0));
  }
  for (const auto& id : dir_entries(run_dir_ + "/netns")) {
    if (id.size() != 64 || candidates.contains(id)) continue;
    sql::Stmt s(db_, "SELECT state FROM containers WHERE id=?");
    s.bind(1, id);
    if (!s.step() || (s.text(0) != "running" && s.text(0) != "paused" && s.text(0) != "restarting"))
      candidates.insert(id);
  }
  for (const auto& id : candidates) settle(id);
  std::vector<std::pair<std::string, std::string>> pending;
  {
    sql::Stmt s(db_, "SELECT id,state FROM networks WHERE state<>'ready'");
    while (s.step()) pending.emplace_back(s.text(0), s.text(1));
  }
  if (!pending.empty()) {
    Locked locked(root_);
    for (const auto& [id, state] : pending) {
      sql::Stmt s(db_, std::string("SELECT ") + kNetworkColumns + " FROM networks WHERE id=? AND state<>'ready'");
      s.bind(1, id);
      if (!s.step()) continue;
      Network n = read_network(s);
      net::Firewall fw;
      if (fw.exists()) fw.remove_network(firewall_network(n));
      net::Netlink().delete_link(n.bridge);
      sql::Stmt(db_, "DELETE FROM networks WHERE id=?").bind(1, id).run();
    }
  }
  // DNS responders that died while their network has containers.
  std::vector<std::string> with_endpoints;
  {
    sql::Stmt s(db_, "SELECT DISTINCT network_id FROM endpoints");
    while (s.step()) with_endpoints.push_back(s.text(0));
  }
  for (const auto& id : with_endpoints) {
    auto n = find(id);
    if (n && n->user_defined()) {
      Locked locked(root_);
      ensure_dns(*n);
    }
  }
}

}  // namespace berth::engine
