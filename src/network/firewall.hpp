// nftables rules in berth's own table (`ip berth`), through libnftables: one transaction per
// change. Networks and published ports live in sets and maps, so adding or removing one is a
// single element change whatever the number of existing rules.
//
// libnftables opens its netlink socket in nft_ctx_new(), i.e. in the constructor: a Firewall
// works in the network namespace of the thread that constructed it, whatever thread calls it.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace berth::network {

struct FirewallNetwork {
  std::string bridge;  // interface name
  std::string subnet;  // "172.18.0.0/16"
  bool internal = false;
};

struct PortMapping {
  std::string proto;    // "tcp" or "udp"
  std::string host_ip;  // "" or "0.0.0.0" for every local address
  uint16_t host_port = 0;
  std::string container_ip;
  uint16_t container_port = 0;
};

class Firewall {
 public:
  explicit Firewall(std::string table = "berth");
  ~Firewall();
  Firewall(const Firewall&) = delete;
  Firewall& operator=(const Firewall&) = delete;

  // Creates the table with its chains, sets and maps when it is missing (idempotent).
  void ensure();
  void add_network(const FirewallNetwork& n);
  void remove_network(const FirewallNetwork& n);  // missing elements are not an error
  void add_ports(const std::vector<PortMapping>& ports);
  void remove_ports(const std::vector<PortMapping>& ports);  // missing elements are not an error
  bool exists();
  void delete_table();  // missing table is not an error

  // Whether `ip <table>` exists in the calling thread's network namespace: one netlink request,
  // without loading libnftables or building its cache (what a container start asks each time).
  static bool table_exists(const std::string& table = "berth");

 private:
  // Runs one batch (one transaction). try_run returns false with nft's error text made one line.
  bool try_run(const std::string& commands, std::string& output, std::string& error);
  std::string run(const std::string& what, const std::string& commands);
  std::string table_;
  std::mutex mu_;        // an nft_ctx is not thread safe
  void* ctx_ = nullptr;  // struct nft_ctx*
  int netlink_fd_ = -1;  // NETLINK_NETFILTER, opened with the context (same namespace)
};

}  // namespace berth::network
