#include "network/ipam.hpp"

#include <gtest/gtest.h>

#include "util/error.hpp"

namespace berth::network {
namespace {

TEST(Ipam, ParsesAndFormatsSubnets) {
  Subnet4 s = Subnet4::parse("172.18.0.0/16");
  EXPECT_EQ(s.str(), "172.18.0.0/16");
  EXPECT_EQ(s.prefix, 16);
  EXPECT_EQ(format_ip4(s.first()), "172.18.0.0");
  EXPECT_EQ(format_ip4(s.last()), "172.18.255.255");
  EXPECT_TRUE(s.contains(*parse_ip4("172.18.3.4")));
  EXPECT_FALSE(s.contains(*parse_ip4("172.19.0.1")));
  EXPECT_EQ(Subnet4::parse("0.0.0.0/0").mask(), 0u);
  EXPECT_EQ(Subnet4::parse("10.1.2.3/32").str(), "10.1.2.3/32");
}

TEST(Ipam, RefusesBadSubnetsNamingThem) {
  for (const char* bad : {"10.0.0.1/24", "300.1.1.0/24", "10.0.0.0", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1",
                          "10.0.0.0/1a", "abc/8", ""}) {
    try {
      Subnet4::parse(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
  // Host bits set: the message says which network address was meant.
  try {
    Subnet4::parse("10.0.0.1/24");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("10.0.0.0/24"), std::string::npos) << e.what();
  }
}

TEST(Ipam, OverlapAndContainment) {
  Subnet4 a = Subnet4::parse("10.0.0.0/8"), b = Subnet4::parse("10.5.0.0/16"), c = Subnet4::parse("11.0.0.0/8");
  EXPECT_TRUE(a.overlaps(b));
  EXPECT_TRUE(b.overlaps(a));
  EXPECT_FALSE(a.overlaps(c));
  EXPECT_TRUE(a.contains(b));
  EXPECT_FALSE(b.contains(a));
}

TEST(Ipam, DefaultPoolsSkipTakenSubnetsAndIgnoreTheDefaultRoute) {
  EXPECT_EQ(pick_pool_subnet({})->str(), "172.17.0.0/16");
  EXPECT_EQ(pick_pool_subnet({Subnet4{0, 0}})->str(), "172.17.0.0/16");
  // A host route inside 172.17/16 takes the whole pool entry.
  EXPECT_EQ(pick_pool_subnet({Subnet4::parse("172.17.5.0/24")})->str(), "172.18.0.0/16");
  // A wide host route covering all of 172.16/12 moves to 192.168.x.0/20.
  EXPECT_EQ(pick_pool_subnet({Subnet4::parse("172.16.0.0/12")})->str(), "192.168.0.0/20");
  std::vector<Subnet4> all = {Subnet4::parse("172.16.0.0/12"), Subnet4::parse("192.168.0.0/16")};
  EXPECT_FALSE(pick_pool_subnet(all).has_value());
}

TEST(Ipam, NextFreeAddressSkipsNetworkBroadcastGatewayAndUsed) {
  Subnet4 s = Subnet4::parse("10.9.0.0/29");  // .0 network, .7 broadcast
  uint32_t gw = *parse_ip4("10.9.0.1");
  EXPECT_EQ(format_ip4(*next_free_ip(s, std::nullopt, gw, {})), "10.9.0.2");
  std::set<uint32_t> used = {*parse_ip4("10.9.0.2"), *parse_ip4("10.9.0.3")};
  EXPECT_EQ(format_ip4(*next_free_ip(s, std::nullopt, gw, used)), "10.9.0.4");
  for (const char* ip : {"10.9.0.4", "10.9.0.5", "10.9.0.6"}) used.insert(*parse_ip4(ip));
  EXPECT_FALSE(next_free_ip(s, std::nullopt, gw, used).has_value());
  // An ip-range narrows the choice.
  Subnet4 wide = Subnet4::parse("10.10.0.0/16");
  auto r = next_free_ip(wide, Subnet4::parse("10.10.5.0/24"), *parse_ip4("10.10.0.1"), {});
  EXPECT_EQ(format_ip4(*r), "10.10.5.0");
}

TEST(Ipam, MacAddressesFollowDockersScheme) {
  EXPECT_EQ(mac_for_ip4(*parse_ip4("172.17.0.2")), "02:42:ac:11:00:02");
  EXPECT_FALSE(parse_ip4("1.2.3").has_value());
  EXPECT_FALSE(parse_ip4("1.2.3.256").has_value());
}

}  // namespace
}  // namespace berth::network
