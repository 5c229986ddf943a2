// IPv4 address arithmetic for IPAM: subnets, docker's default pools, the next free address.
// Pure functions; the engine keeps allocations in state.db.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace berth::network {

struct Subnet4 {
  uint32_t base = 0;  // host byte order, host bits zero
  int prefix = 0;

  // "172.18.0.0/16"; throws berth::Error("invalid subnet: TEXT") (host bits must be zero, as docker
  // checks: "invalid network address" otherwise, naming it).
  static Subnet4 parse(const std::string& cidr);
  std::string str() const;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t first() const { return base; }
  uint32_t last() const { return base | ~mask(); }
  bool contains(uint32_t ip) const { return (ip & mask()) == base; }
  bool overlaps(const Subnet4& o) const { return contains(o.base) || o.contains(base); }
  bool contains(const Subnet4& o) const { return prefix <= o.prefix && contains(o.base); }
};

// Host byte order; nullopt when text is not a dotted IPv4 address.
std::optional<uint32_t> parse_ip4(const std::string& text);
std::string format_ip4(uint32_t ip);
// docker's MAC for an address: 02:42 followed by the four address bytes.
std::string mac_for_ip4(uint32_t ip);

// The first subnet of docker's default address pools (172.17.0.0/16 … 172.31.0.0/16, then
// 192.168.0.0/20 … 192.168.240.0/20) that overlaps none of `taken` (other networks' subnets and
// the host's routes; a default route 0.0.0.0/0 is ignored).
std::optional<Subnet4> pick_pool_subnet(const std::vector<Subnet4>& taken);

// The lowest free host address in `range` (within `subnet`; range defaults to the subnet) that is
// not the network or broadcast address, the gateway, or in `used`.
std::optional<uint32_t> next_free_ip(const Subnet4& subnet, const std::optional<Subnet4>& range, uint32_t gateway,
                                     const std::set<uint32_t>& used);

}  // namespace berth::network
