// rtnetlink through libnl-route-3: bridges, veth pairs, addresses, routes, and named network
// namespaces (an nsfs bind mount, as `ip netns` makes them). No shelling out to ip(8).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/fd.hpp"

namespace berth::network {

// A network namespace kept alive by a bind mount of its nsfs file at `path`.
// create() makes the parent directory a shared bind mount of itself first (like `ip netns`), so an
// unmount propagates into mount namespaces that copied it.
void create_netns(const std::string& path);
// Unmounts (MNT_DETACH) and unlinks; a missing path is not an error.
void remove_netns(const std::string& path);
// O_RDONLY|O_CLOEXEC fd of a namespace file (a bind-mounted netns or /proc/PID/ns/net).
UniqueFd open_netns(const std::string& path);

struct Route4 {
  uint32_t dst = 0;  // network byte order
  int prefix = 0;    // 0 for the default route
  std::string link;  // output interface name ("" when unknown)
};

// One rtnetlink socket, bound to the namespace it was opened in. Every error is a berth::Error
// naming the operation and the link, with errno (plus the kernel's extended-ack text when it sends
// one), e.g. "netlink: create bridge br-abc: File exists". Interface names are checked first
// (1-15 characters, no '/', ':' or spaces: EINVAL), since libnl would silently truncate them.
class Netlink {
 public:
  Netlink();                       // the caller's network namespace
  explicit Netlink(int netns_fd);  // opened inside that namespace (from a helper thread)
  ~Netlink();
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;

  bool link_exists(const std::string& name);
  // Creates a bridge and sets it up. mtu 0 leaves the kernel default.
  void create_bridge(const std::string& name, int mtu);
  // Creates a veth pair: host_name stays here, peer_name is created directly inside peer_netns_fd
  // (peer_netns_fd < 0: here as well). Both ends start down; mtu 0 leaves the kernel default.
  void create_veth(const std::string& host_name, const std::string& peer_name, int peer_netns_fd, int mtu);
  void set_master(const std::string& link, const std::string& bridge);
  void set_up(const std::string& link);
  // Hairpin mode on a bridge port, so a container reaches its own published ports when the
  // bridge's traffic goes through netfilter (br_netfilter), as docker sets it.
  void set_hairpin(const std::string& link);
  void rename(const std::string& link, const std::string& new_name);
  // mac "02:42:ac:11:00:02".
  void set_mac(const std::string& link, const std::string& mac);
  // cidr "172.18.0.1/16" (IPv4; IPv6 when it contains ':').
  void add_address(const std::string& link, const std::string& cidr);
  void add_default_route(const std::string& gateway, const std::string& link);
  // Deletes a link (for a veth, both ends go). A missing link is not an error.
  void delete_link(const std::string& name);
  // Names of links whose name starts with prefix.
  std::vector<std::string> links_with_prefix(const std::string& prefix);
  // IPv4 routes of the main table (for IPAM: pools skip subnets already routed).
  std::vector<Route4> routes4();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes a sysctl under /proc/sys/net (e.g. "ipv4/ip_forward", "1") in the caller's namespace.
void write_net_sysctl(const std::string& key, const std::string& value);

}  // namespace berth::network
