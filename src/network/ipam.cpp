#include "network/ipam.hpp"

#include <arpa/inet.h>

#include <cstdio>

#include "util/error.hpp"

namespace berth::network {

std::optional<uint32_t> parse_ip4(const std::string& text) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string format_ip4(uint32_t ip) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{htonl(ip)};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string mac_for_ip4(uint32_t ip) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "02:42:%02x:%02x:%02x:%02x", (ip >> 24) & 0xff, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
                ip & 0xff);
  return buf;
}

Subnet4 Subnet4::parse(const std::string& cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string::npos) throw Error("invalid subnet " + cidr + ": expected ADDRESS/PREFIX");
  auto ip = parse_ip4(cidr.substr(0, slash));
  std::string p = cidr.substr(slash + 1);
  if (!ip || p.empty() || p.size() > 2 || p.find_first_not_of("0123456789") != std::string::npos || std::stoi(p) > 32)
    throw Error("invalid subnet " + cidr);
  Subnet4 s;
  s.prefix = std::stoi(p);
  s.base = *ip & s.mask();
  if (s.base != *ip) throw Error("invalid subnet " + cidr + ": it should be " + s.str());
  return s;
}

std::string Subnet4::str() const { return format_ip4(base) + "/" + std::to_string(prefix); }

std::optional<Subnet4> pick_pool_subnet(const std::vector<Subnet4>& taken) {
  auto free = [&](const Subnet4& c) {
    for (const auto& t : taken)
      if (t.prefix > 0 && t.overlaps(c)) return false;
    return true;
  };
  for (uint32_t second = 17; second <= 31; ++second) {
    Subnet4 c{(172u << 24) | (second << 16), 16};
    if (free(c)) return c;
  }
  for (uint32_t third = 0; third < 256; third += 16) {
    Subnet4 c{(192u << 24) | (168u << 16) | (third << 8), 20};
    if (free(c)) return c;
  }
  return std::nullopt;
}

std::optional<uint32_t> next_free_ip(const Subnet4& subnet, const std::optional<Subnet4>& range, uint32_t gateway,
                                     const std::set<uint32_t>& used) {
  Subnet4 r = range.value_or(subnet);
  uint64_t lo = r.first(), hi = r.last();
  if (subnet.prefix < 31) {
    lo = std::max<uint64_t>(lo, subnet.first() + 1);
    hi = std::min<uint64_t>(hi, subnet.last() - 1);
  }
  for (uint64_t ip = lo; ip <= hi; ++ip) {
    auto a = static_cast<uint32_t>(ip);
    if (a != gateway && !used.contains(a)) return a;
  }
  return std::nullopt;
}

}  // namespace berth::network
