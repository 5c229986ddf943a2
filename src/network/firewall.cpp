// nftables rules through libnftables. Every public method sends one batch, which the kernel
// applies as one transaction: a failure leaves the ruleset as it was.
//
// nft 1.0.6 notes (Debian 12):
// - `priority dstnat` is refused on a nat output hook: the output chain uses -100.
// - there is no `destroy element` (1.0.8+): a removal first `add`s each element (a no-op when
//   present) then deletes it, so missing elements do not fail the batch.
// - `delete element` on a map matches the key only; the `add` before it also makes a removal fail
//   (EEXIST) when the key is held by another mapping instead of deleting that mapping.
// - with a buffer as input, an error quotes the first line of the buffer whatever line failed, so
//   the failing port is found again with read-only `get element` commands.
#include "firewall.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <mutex>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/strings.hpp"

namespace berth::network {
namespace {

nft_ctx* nft(void* p) { return static_cast<nft_ctx*>(p); }

// libnftables is loaded on first use rather than linked: it has no static archive on Debian, and
// its five shared libraries (libnftnl, libmnl, libxtables, libjansson, libgmp) would be loaded by
// every berth command, most of which never touch a rule (the light binary's start, ARCHITECTURE.md).
struct NftLibrary {
  decltype(&nft_ctx_new) ctx_new = nullptr;
  decltype(&nft_ctx_free) ctx_free = nullptr;
  decltype(&nft_ctx_buffer_output) buffer_output = nullptr;
  decltype(&nft_ctx_buffer_error) buffer_error = nullptr;
  decltype(&nft_run_cmd_from_buffer) run_cmd_from_buffer = nullptr;
  decltype(&nft_ctx_get_output_buffer) get_output_buffer = nullptr;
  decltype(&nft_ctx_get_error_buffer) get_error_buffer = nullptr;
};

template <typename F>
void bind_symbol(void* handle, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(handle, name));
  if (!out) throw Error(std::string("nftables: libnftables.so.1 has no ") + name);
}

const NftLibrary& nft_library() {
  static NftLibrary lib;
  static std::once_flag once;
  std::call_once(once, [] {
    // Never closed: contexts live until exit, and unloading buys nothing.
    void* handle = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      throw Error(std::string("nftables: cannot load libnftables.so.1: ") + (why ? why : "unknown error") +
                  " (install the libnftables1 package)");
    }
    NftLibrary loaded;
    bind_symbol(handle, "nft_ctx_new", loaded.ctx_new);
    bind_symbol(handle, "nft_ctx_free", loaded.ctx_free);
    bind_symbol(handle, "nft_ctx_buffer_output", loaded.buffer_output);
    bind_symbol(handle, "nft_ctx_buffer_error", loaded.buffer_error);
    bind_symbol(handle, "nft_run_cmd_from_buffer", loaded.run_cmd_from_buffer);
    bind_symbol(handle, "nft_ctx_get_output_buffer", loaded.get_output_buffer);
    bind_symbol(handle, "nft_ctx_get_error_buffer", loaded.get_error_buffer);
    lib = loaded;
  });
  return lib;
}

// nft's error buffer made one line: the "Error: ..." messages, without the quoted source line and
// its ^^^ marks.
std::string one_line(std::string_view text) {
  std::string out;
  std::set<std::string> seen;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    size_t at = line.find("Error: ");
    if (at == std::string_view::npos) continue;
    std::string msg(trim(line.substr(at + 7)));
    if (msg.empty() || !seen.insert(msg).second) continue;
    if (!out.empty()) out += "; ";
    out += msg;
  }
  if (out.empty()) {
    std::string_view first = trim(text.substr(0, text.find('\n')));
    out = first.empty() ? "command failed" : std::string(first);
  }
  return out;
}

void check_table_name(const std::string& t) {
  bool ok = !t.empty() && t.size() <= 64 && ((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z'));
  for (char c : t) ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
  if (!ok) throw Error("firewall: invalid table name \"" + t + "\"");
}

// Interface names go into the nft text quoted: only the characters berth and users reasonably use.
std::string ifname(const std::string& name) {
  bool ok = !name.empty() && name.size() < 16;
  for (char c : name)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                c == '.');
  if (!ok) throw Error("firewall: invalid interface name \"" + name + "\"");
  return "\"" + name + "\"";
}

// A dotted IPv4 address, normalized.
std::string ipv4(const std::string& s, std::string_view what) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) throw Error("firewall: invalid " + std::string(what) + " \"" + s + "\"");
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

// "a.b.c.d/n" with the host bits cleared.
std::string subnet(const std::string& s) {
  size_t slash = s.find('/');
  std::string addr = s.substr(0, slash);
  int len = -1;
  if (slash != std::string::npos && slash + 1 < s.size() && s.size() - slash <= 3) {
    len = 0;
    for (char c : s.substr(slash + 1)) len = (c >= '0' && c <= '9' && len >= 0) ? len * 10 + (c - '0') : -1;
  }
  in_addr a{};
  if (len < 0 || len > 32 || inet_pton(AF_INET, addr.c_str(), &a) != 1)
    throw Error("firewall: invalid subnet \"" + s + "\"");
  uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  a.s_addr = htonl(ntohl(a.s_addr) & mask);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(len);
}

// A published port as map key and value, validated.
struct PortElement {
  std::string map;    // "ports_any" or "ports_ip"
  std::string key;    // "tcp . 8080" or "192.0.2.1 . tcp . 8080"
  std::string value;  // "172.18.0.2 . 80"
  std::string name;   // "tcp 8080" or "tcp 192.0.2.1:8080", for messages
};

PortElement port_element(const PortMapping& p) {
  if (p.proto != "tcp" && p.proto != "udp") throw Error("firewall: invalid protocol \"" + p.proto + "\"");
  if (p.host_port == 0 || p.container_port == 0) throw Error("firewall: invalid port 0");
  PortElement e;
  std::string port = std::to_string(p.host_port);
  std::string host = p.host_ip.empty() ? std::string("0.0.0.0") : ipv4(p.host_ip, "host address");
  if (host == "0.0.0.0") {
    e.map = "ports_any";
    e.key = p.proto + " . " + port;
    e.name = p.proto + " " + port;
  } else {
    e.map = "ports_ip";
    e.key = host + " . " + p.proto + " . " + port;
    e.name = p.proto + " " + host + ":" + port;
  }
  e.value = ipv4(p.container_ip, "container address") + " . " + std::to_string(p.container_port);
  return e;
}

std::string names(const std::vector<PortElement>& elems) {
  std::string out;
  for (const auto& e : elems) out += (out.empty() ? "" : ", ") + e.name;
  return out;
}

int open_nfnetlink() {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) throw_errno("nftables: netlink socket");
  return fd;
}

// NFT_MSG_GETTABLE for one table: the kernel answers the table or ENOENT. Hand-written (about
// forty lines) because the library that builds such messages, libnftnl, has no static archive on
// Debian and loading it, like libnftables, is what this check avoids.
bool query_table(int fd, const std::string& table) {
  static uint32_t seq_counter = 0;
  const uint32_t seq = ++seq_counter;
  alignas(nlmsghdr) char req[NLMSG_SPACE(sizeof(nfgenmsg)) + NLA_HDRLEN + NLA_ALIGN(64)] = {};
  if (table.size() >= 64) throw Error("nftables: table name too long: " + table);
  auto* nh = reinterpret_cast<nlmsghdr*>(req);
  nh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
  nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nh->nlmsg_seq = seq;
  auto* nfg = reinterpret_cast<nfgenmsg*>(NLMSG_DATA(nh));
  nfg->nfgen_family = NFPROTO_IPV4;
  nfg->version = NFNETLINK_V0;
  auto* attr = reinterpret_cast<nlattr*>(req + NLMSG_SPACE(sizeof(nfgenmsg)));
  attr->nla_type = NFTA_TABLE_NAME;
  attr->nla_len = static_cast<uint16_t>(NLA_HDRLEN + table.size() + 1);
  std::memcpy(reinterpret_cast<char*>(attr) + NLA_HDRLEN, table.c_str(), table.size() + 1);
  nh->nlmsg_len = static_cast<uint32_t>(NLMSG_SPACE(sizeof(nfgenmsg)) + NLA_ALIGN(attr->nla_len));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, req, nh->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    throw_errno("nftables: netlink request for table " + table);
  bool found = false;
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("nftables: netlink answer for table " + table);
    }
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
      if (m->nlmsg_seq != seq) continue;  // a late answer to an earlier request
      if (m->nlmsg_type == NLMSG_ERROR) {
        int error = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(m))->error;
        if (error == 0 || error == ENOENT) return found;
        errno = error;
        throw_errno("nftables: get table " + table);
      }
      if ((m->nlmsg_type & 0xff) == NFT_MSG_NEWTABLE) found = true;
    }
  }
}

}  // namespace

bool Firewall::table_exists(const std::string& table) {
  check_table_name(table);
  UniqueFd fd(open_nfnetlink());
  return query_table(fd.get(), table);
}

Firewall::Firewall(std::string table) : table_(std::move(table)) {
  check_table_name(table_);
  UniqueFd netlink(open_nfnetlink());
  const NftLibrary& lib = nft_library();
  nft_ctx* ctx = lib.ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) throw Error("nftables: cannot create a context");
  if (lib.buffer_output(ctx) != 0 || lib.buffer_error(ctx) != 0) {
    lib.ctx_free(ctx);
    throw Error("nftables: cannot buffer output");
  }
  ctx_ = ctx;
  netlink_fd_ = netlink.release();
}

Firewall::~Firewall() {
  if (netlink_fd_ >= 0) ::close(netlink_fd_);
  if (ctx_) nft_library().ctx_free(nft(ctx_));
}

bool Firewall::try_run(const std::string& commands, std::string& output, std::string& error) {
  std::lock_guard lock(mu_);
  const NftLibrary& lib = nft_library();
  int rc = lib.run_cmd_from_buffer(nft(ctx_), commands.c_str());
  const char* out = lib.get_output_buffer(nft(ctx_));
  const char* err = lib.get_error_buffer(nft(ctx_));
  output = out ? out : "";
  if (rc == 0) return true;
  error = one_line(err ? err : "");
  return false;
}

std::string Firewall::run(const std::string& what, const std::string& commands) {
  std::string out, err;
  if (!try_run(commands, out, err)) throw Error("nftables: " + what + ": " + err);
  return out;
}

bool Firewall::exists() {
  std::lock_guard lock(mu_);
  return query_table(netlink_fd_, table_);
}

void Firewall::ensure() {
  if (exists()) return;
  const std::string t = "ip " + table_;
  std::string c;
  // `create` fails when the table exists: a concurrent creation cannot double the rules.
  c += "create table " + t + "\n";
  c += "add set " + t + " bridges { type ifname; }\n";
  c += "add set " + t + " internal_bridges { type ifname; }\n";
  c += "add set " + t + " same_bridge { type ifname . ifname; }\n";
  c += "add set " + t + " bridge_subnets { type ipv4_addr . ifname; flags interval; }\n";
  c += "add set " + t + " masq_subnets { type ipv4_addr; flags interval; }\n";
  c += "add map " + t + " ports_any { type inet_proto . inet_service : ipv4_addr . inet_service; }\n";
  c += "add map " + t + " ports_ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }\n";
  c += "add chain " + t + " ports\n";
  c += "add chain " + t + " prerouting { type nat hook prerouting priority dstnat; policy accept; }\n";
  c += "add chain " + t + " output { type nat hook output priority -100; policy accept; }\n";
  c += "add chain " + t + " postrouting { type nat hook postrouting priority srcnat; policy accept; }\n";
  c += "add chain " + t + " forward { type filter hook forward priority filter; policy accept; }\n";
  // Published ports: traffic to a local address, from outside or from the host itself.
  c += "add rule " + t + " prerouting fib daddr type local jump ports\n";
  c += "add rule " + t + " output fib daddr type local jump ports\n";
  c += "add rule " + t + " ports dnat ip to ip daddr . meta l4proto . th dport map @ports_ip\n";
  c += "add rule " + t + " ports dnat ip to meta l4proto . th dport map @ports_any\n";
  // Host to 127.0.0.1:port (the bridge has route_localnet); a container to a published port of its
  // own bridge (hairpin: postrouting has no input interface, the source subnet tells the bridge);
  // containers to the outside.
  c += "add rule " + t + " postrouting ip saddr 127.0.0.0/8 oifname @bridges masquerade\n";
  c += "add rule " + t + " postrouting ip saddr . oifname @bridge_subnets ct status dnat masquerade\n";
  c += "add rule " + t + " postrouting ip saddr @masq_subnets oifname != @bridges masquerade\n";
  // Networks talk inside themselves, not to each other; internal ones not to the outside; nothing
  // reaches a container from outside unless published.
  c += "add rule " + t + " forward ct state established,related accept\n";
  c += "add rule " + t + " forward iifname . oifname @same_bridge accept\n";
  c += "add rule " + t + " forward iifname @internal_bridges drop\n";
  c += "add rule " + t + " forward oifname @internal_bridges drop\n";
  // A published port is public: containers of other networks may reach it through a host
  // address (docker allows it too); plain traffic between networks is dropped.
  c += "add rule " + t + " forward oifname @bridges ct status dnat accept\n";
  c += "add rule " + t + " forward iifname @bridges oifname @bridges drop\n";
  c += "add rule " + t + " forward iifname @bridges accept\n";
  c += "add rule " + t + " forward oifname @bridges drop\n";
  std::string out, err;
  if (try_run(c, out, err)) return;
  if (exists()) return;  // created meanwhile by someone else
  throw Error("nftables: create table " + t + ": " + err);
}

void Firewall::add_network(const FirewallNetwork& n) {
  const std::string t = "ip " + table_;
  std::string br = ifname(n.bridge);
  // An internal network may come without a subnet; any other one masquerades its subnet.
  std::string net = n.internal && n.subnet.empty() ? std::string() : subnet(n.subnet);
  std::string c;
  c += "add element " + t + " bridges { " + br + " }\n";
  c += "add element " + t + " same_bridge { " + br + " . " + br + " }\n";
  if (!net.empty()) c += "add element " + t + " bridge_subnets { " + net + " . " + br + " }\n";
  if (n.internal) {
    c += "add element " + t + " internal_bridges { " + br + " }\n";
  } else {
    c += "add element " + t + " masq_subnets { " + net + " }\n";
  }
  run("add network " + n.bridge, c);
}

void Firewall::remove_network(const FirewallNetwork& n) {
  const std::string t = "ip " + table_;
  std::string br = ifname(n.bridge);
  // The bridge leaves both bridge sets whatever n.internal says; the subnet is only ever in
  // masq_subnets for a non-internal network (so no overlap with another network's can fail the add).
  std::vector<std::pair<std::string, std::string>> elems = {
      {"bridges", br}, {"internal_bridges", br}, {"same_bridge", br + " . " + br}};
  if (!n.subnet.empty()) {
    std::string net = subnet(n.subnet);
    elems.emplace_back("bridge_subnets", net + " . " + br);
    if (!n.internal) elems.emplace_back("masq_subnets", net);
  }
  std::string c;
  for (const auto& [set, e] : elems) c += "add element " + t + " " + set + " { " + e + " }\n";
  for (const auto& [set, e] : elems) c += "delete element " + t + " " + set + " { " + e + " }\n";
  std::string out, err;
  if (try_run(c, out, err) || !exists()) return;
  throw Error("nftables: remove network " + n.bridge + ": " + err);
}

void Firewall::add_ports(const std::vector<PortMapping>& ports) {
  if (ports.empty()) return;
  const std::string t = "ip " + table_;
  std::vector<PortElement> elems;
  std::set<std::pair<std::string, std::string>> keys;
  for (const auto& p : ports) {
    elems.push_back(port_element(p));
    if (!keys.insert({elems.back().map, elems.back().key}).second)
      throw Error("firewall: add port " + elems.back().name + ": given twice");
  }
  std::string c;
  // `create` fails on a key already present, even with the same value: nothing is overwritten.
  for (const auto& e : elems) c += "create element " + t + " " + e.map + " { " + e.key + " : " + e.value + " }\n";
  std::string out, err;
  if (try_run(c, out, err)) return;
  if (elems.size() > 1) {
    // Name the port that is taken, if one is.
    for (const auto& e : elems) {
      std::string o, ignored;
      if (try_run("get element " + t + " " + e.map + " { " + e.key + " }\n", o, ignored))
        throw Error("nftables: add port " + e.name + ": " + err + " (already published)");
    }
    throw Error("nftables: add ports " + names(elems) + ": " + err);
  }
  if (err.find("File exists") != std::string::npos) err += " (already published)";
  throw Error("nftables: add port " + elems[0].name + ": " + err);
}

void Firewall::remove_ports(const std::vector<PortMapping>& ports) {
  if (ports.empty()) return;
  const std::string t = "ip " + table_;
  std::vector<PortElement> elems;
  std::set<std::pair<std::string, std::string>> keys;
  for (const auto& p : ports) {
    PortElement e = port_element(p);
    if (keys.insert({e.map, e.key}).second) elems.push_back(std::move(e));
  }
  auto batch = [&](const std::vector<PortElement>& es) {
    std::string c;
    for (const auto& e : es) c += "add element " + t + " " + e.map + " { " + e.key + " : " + e.value + " }\n";
    for (const auto& e : es) c += "delete element " + t + " " + e.map + " { " + e.key + " }\n";
    return c;
  };
  std::string out, err;
  if (try_run(batch(elems), out, err) || !exists()) return;
  // The usual failure: a key held by another mapping (EEXIST on the add). That mapping is not
  // ours to delete, so the elements are removed one by one, leaving such keys alone.
  for (const auto& e : elems) {
    std::string o, e_err;
    if (try_run(batch({e}), o, e_err) || e_err.find("File exists") != std::string::npos) continue;
    throw Error("nftables: remove port " + e.name + ": " + e_err);
  }
}

void Firewall::delete_table() {
  const std::string t = "ip " + table_;
  // `add` first so that a missing table is not an error, in the same transaction.
  run("delete table " + t, "add table " + t + "\ndelete table " + t + "\n");
}

}  // namespace berth::network
