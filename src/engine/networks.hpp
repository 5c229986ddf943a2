// Networks of the bridge driver: rows in state.db (networks, endpoints, ports), a Linux bridge
// each, a veth per container and network, nftables elements for NAT, isolation and published
// ports (src/network does the kernel side), and the per-network DNS responder.
//
// Crash safety: networks are recorded 'creating'/'removing' before the kernel is touched; a
// container's endpoints and ports are rows written before its veths and rules exist, so
// reconcile() can always find and remove what a crash left (a container that is not running
// never keeps endpoints). Every change holds <root>/locks/network.lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::sql {
class Db;
}

namespace berth::engine {

struct Network {
  std::string id, name, driver;  // driver: bridge, host or null (the predefined host and none)
  std::string subnet, gateway, ip_range, bridge;
  bool internal = false;
  int mtu = 0;
  int64_t created_ns = 0;
  std::map<std::string, std::string> labels, options;

  // User-defined bridge networks have name resolution; the default bridge, host and none don't.
  bool user_defined() const { return driver == "bridge" && name != "bridge"; }
  bool predefined() const { return name == "bridge" || name == "host" || name == "none"; }
};

struct NetworkCreateRequest {
  std::string name, driver = "bridge";
  std::string subnet, gateway, ip_range;
  bool internal = false;
  std::map<std::string, std::string> labels, options;
};

struct Endpoint {
  std::string container_id, network_id, network_name;
  std::string ip, gateway, mac, veth, ifname;
  int prefix = 0;
  std::vector<std::string> aliases;
};

struct PortBinding {
  std::string container_id, proto, host_ip;
  uint16_t host_port = 0, container_port = 0;
  std::string container_ip;
};

// One network a container asks for (docker's EndpointSettings).
struct EndpointRequest {
  std::string network;  // name or id
  std::vector<std::string> aliases;
  std::string ip, mac;
};

// What a container asks for: networks (the first one gets the default route) and ports.
struct ContainerNetRequest {
  std::string id, name, hostname;
  std::vector<EndpointRequest> networks;
  nlohmann::json port_bindings = nlohmann::json::object();  // HostConfig.PortBindings
  bool publish_all = false;
  std::vector<std::string> exposed;       // "80/tcp" (config's and image's ExposedPorts) for -P
  std::vector<std::string> upstream_dns;  // --dns, the DNS responder's upstreams for this container
};

class NetworkStore {
 public:
  NetworkStore(sql::Db& db, std::string root, std::string run_dir);

  // The predefined bridge, host and none rows exist after this (cheap when they do).
  void ensure_predefined();
  Network create(const NetworkCreateRequest& request);
  // By full name, full ID or unique ID prefix; throws NotFound("network NAME not found").
  Network get(const std::string& ref);
  std::optional<Network> find(const std::string& ref);
  std::vector<Network> list();
  // Refused for predefined networks and while containers have endpoints on it.
  void remove(const std::string& ref);
  // Removes unused user-defined networks that match; returns their names.
  std::vector<std::string> prune(const std::function<bool(const Network&)>& match);

  std::string netns_path(const std::string& container_id) const;
  // Checks what can be checked before a container is created: networks exist, --ip fits the
  // network, fixed host ports are free. Throws StatusError(…, 125) naming the offender.
  void validate(const ContainerNetRequest& request);
  // Creates the container's network namespace, its endpoints, ports and rules; starts DNS
  // responders. All or nothing: on error every part made is removed.
  std::vector<Endpoint> setup(const ContainerNetRequest& request);
  // Adds one network to a container whose namespace exists (network connect while running).
  Endpoint connect(const ContainerNetRequest& container, const EndpointRequest& request);
  // Removes one network's endpoint of a container (network disconnect while running).
  void disconnect(const std::string& container_id, const std::string& network_id);
  // Removes everything of the container: rules, veths, namespace, rows. Idempotent.
  void teardown(const std::string& container_id);

  std::vector<Endpoint> endpoints(const std::string& container_id);
  std::vector<Endpoint> network_endpoints(const std::string& network_id);
  std::vector<PortBinding> ports(const std::string& container_id);

  // Calls settle(id) for each container that may have network leftovers while not running (the
  // caller checks under the container's lock and calls teardown), finishes or undoes network rows
  // a crash left, and restarts DNS responders that died.
  void reconcile(const std::function<void(const std::string&)>& settle);

  // The responder for one network (`berth network dns-serve`): serves until the network has no
  // endpoints left. ensure_dns starts it with the responder lock on fd 3 and its UDP and TCP
  // sockets, already bound and listening, on fds 4 and 5: nobody waits for it to be ready.
  void serve_dns(const std::string& network_id);
  // Ends the network's DNS responder (its address is free when this returns) and drops its files.
  void stop_dns(const std::string& network_id);

 private:
  struct Locked;
  Network ensure_kernel_side(const Network& n);
  void teardown_locked(const std::string& container_id);
  std::vector<Endpoint> query_endpoints(const char* where, const std::string& key);
  // Starts the network's responder unless one holds its lock.
  void ensure_dns(const Network& n);
  sql::Db& db_;
  std::string root_, run_dir_;
};

}  // namespace berth::engine
