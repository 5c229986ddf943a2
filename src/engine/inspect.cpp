#include "engine/inspect.hpp"

#include "engine/networks.hpp"
#include "engine/oci_spec.hpp"
#include "engine/volumes.hpp"
#include "image/inspect.hpp"
#include "util/humanize.hpp"

#include "logs/json_file.hpp"
#include "util/fs.hpp"

namespace berth::engine {

using nlohmann::json;

std::string time_string(int64_t ns) { return logs::format_time(ns); }

std::vector<std::string> container_args(Engine& engine, const Container& c) {
  // Rows made since the command line is kept in the database need no file read (ps of many).
  if (auto it = c.config.find("Args"); it != c.config.end() && it->is_array()) {
    std::vector<std::string> args;
    for (const auto& a : *it)
      if (a.is_string()) args.push_back(a.get<std::string>());
    return args;
  }
  auto text = read_file_if_exists(engine.container_dir(c.id) + "/config.json");
  if (!text) return {};
  json spec = json::parse(*text, nullptr, false);
  std::vector<std::string> args;
  if (spec.is_object() && spec.contains("process") && spec["process"].contains("args"))
    for (const auto& a : spec["process"]["args"]) args.push_back(a.get<std::string>());
  return args;
}

namespace {

// j[key] when it is an object, else an empty object (no copy either way).
const json& object_member(const json& j, const char* key) {
  static const json empty = json::object();
  if (!j.is_object()) return empty;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : empty;
}

// docker's NetworkSettings: every configured network (addresses only while running) and the
// published ports (exposed ones without a binding are null).
json network_settings(Engine& engine, const Container& c) {
  NetworkStore& nets = engine.networks();
  std::vector<Endpoint> eps = c.running() ? nets.endpoints(c.id) : std::vector<Endpoint>{};
  json settings = {{"Bridge", ""},
                   {"SandboxID", ""},
                   {"SandboxKey", ""},
                   {"HairpinMode", false},
                   {"LinkLocalIPv6Address", ""},
                   {"LinkLocalIPv6PrefixLen", 0},
                   {"Ports", json::object()},
                   {"SecondaryIPAddresses", nullptr},
                   {"SecondaryIPv6Addresses", nullptr},
                   {"EndpointID", ""},
                   {"Gateway", ""},
                   {"GlobalIPv6Address", ""},
                   {"GlobalIPv6PrefixLen", 0},
                   {"IPAddress", ""},
                   {"IPPrefixLen", 0},
                   {"IPv6Gateway", ""},
                   {"MacAddress", ""},
                   {"Networks", json::object()}};
  const json& hc = object_member(c.config, "HostConfig");
  const json& config = object_member(c.config, "Config");
  std::string mode = hc.value("NetworkMode", "");
  std::vector<std::string> names;
  if ((c.config.contains("BerthNetworks") && c.config["BerthNetworks"].is_array()) ||
      (!mode.empty() && mode.rfind("container:", 0) != 0))
    names = container_networks(c.config, mode);
  const json& eps_config = object_member(object_member(c.config, "NetworkingConfig"), "EndpointsConfig");
  if (!eps.empty()) settings["SandboxKey"] = nets.netns_path(c.id);
  for (const auto& name : names) {
    auto n = nets.find(name);
    json ep_conf = eps_config.contains(name) ? eps_config[name] : json::object();
    json aliases = ep_conf.is_object() && ep_conf.contains("Aliases") ? ep_conf["Aliases"] : json(nullptr);
    json entry = {
        {"IPAMConfig", ep_conf.is_object() && ep_conf.contains("IPAMConfig") ? ep_conf["IPAMConfig"] : json(nullptr)},
        {"Links", nullptr},
        {"Aliases", aliases},
        {"MacAddress", ""},
        {"DriverOpts", nullptr},
        {"NetworkID", n ? n->id : ""},
        {"EndpointID", ""},
        {"Gateway", ""},
        {"IPAddress", ""},
        {"IPPrefixLen", 0},
        {"IPv6Gateway", ""},
        {"GlobalIPv6Address", ""},
        {"GlobalIPv6PrefixLen", 0},
        {"DNSNames", nullptr}};
    for (const auto& e : eps) {
      if (!n || e.network_id != n->id) continue;
      entry["MacAddress"] = e.mac;
      entry["EndpointID"] = e.network_id.substr(0, 32) + e.container_id.substr(0, 32);
      entry["Gateway"] = e.gateway;
      entry["IPAddress"] = e.ip;
      entry["IPPrefixLen"] = e.prefix;
      if (n->user_defined()) {
        json dns_names = json::array({c.name});
        for (const auto& a : e.aliases) dns_names.push_back(a);
        dns_names.push_back(c.id.substr(0, 12));
        entry["DNSNames"] = dns_names;
      }
      if (n->name == "bridge") {
        settings["EndpointID"] = entry["EndpointID"];
        settings["Gateway"] = e.gateway;
        settings["IPAddress"] = e.ip;
        settings["IPPrefixLen"] = e.prefix;
        settings["MacAddress"] = e.mac;
      }
    }
    settings["Networks"][n ? n->name : name] = entry;
  }
  if (c.running() && mode != "host" && mode != "none") {
    json ports = json::object();
    if (config.contains("ExposedPorts") && config["ExposedPorts"].is_object())
      for (auto& [k, v] : config["ExposedPorts"].items())
        ports[k.find('/') == std::string::npos ? k + "/tcp" : k] = nullptr;
    for (const auto& p : nets.ports(c.id)) {
      std::string key = std::to_string(p.container_port) + "/" + p.proto;
      if (!ports[key].is_array()) ports[key] = json::array();
      ports[key].push_back({{"HostIp", p.host_ip}, {"HostPort", std::to_string(p.host_port)}});
    }
    settings["Ports"] = ports;
  }
  return settings;
}

}  // namespace

json inspect_json(Engine& engine, Container c) {
  std::vector<std::string> args = container_args(engine, c);
  json arg_list = json::array();
  for (size_t i = 1; i < args.size(); i++) arg_list.push_back(args[i]);
  std::string dir = engine.container_dir(c.id);
  const char* zero_time = "0001-01-01T00:00:00Z";
  json net = network_settings(engine, c);  // before take(): it reads the stored config
  // c is this function's own: its stored JSON moves into the result instead of being copied.
  auto take = [&c](const char* key) {
    auto it = c.config.find(key);
    return it != c.config.end() && it->is_object() ? std::move(*it) : json::object();
  };
  json config = take("Config");
  json host_config = take("HostConfig");
  // What was applied where the stored request left it to defaults (docker's inspect shows them).
  if (host_config.value("CgroupnsMode", "").empty()) host_config["CgroupnsMode"] = "private";
  if (host_config.value("MemorySwappiness", json()).is_number() && host_config["MemorySwappiness"].get<int64_t>() < 0)
    host_config["MemorySwappiness"] = nullptr;
  if (host_config.value("PidsLimit", json()).is_number() && host_config["PidsLimit"].get<int64_t>() <= 0)
    host_config["PidsLimit"] = nullptr;
  bool unconfined_paths = host_config.value("Privileged", false);
  for (const auto& o : host_config.value("SecurityOpt", json::array()))
    if (o.is_string() &&
        (o.get<std::string>() == "systempaths=unconfined" || o.get<std::string>() == "systempaths:unconfined"))
      unconfined_paths = true;
  if (!host_config.contains("MaskedPaths") || host_config["MaskedPaths"].is_null())
    host_config["MaskedPaths"] = unconfined_paths ? json(nullptr) : json(default_masked_paths());
  if (!host_config.contains("ReadonlyPaths") || host_config["ReadonlyPaths"].is_null())
    host_config["ReadonlyPaths"] = unconfined_paths ? json(nullptr) : json(default_readonly_paths());
  json state = {{"Status", c.state == "creating" ? "created" : c.state},
                {"Running", c.state == "running" || c.state == "paused" || c.state == "restarting"},
                {"Paused", c.state == "paused"},
                {"Restarting", c.state == "restarting"},
                {"OOMKilled", false},
                {"Dead", c.state == "dead"},
                {"Pid", c.running() ? c.pid : 0},
                {"ExitCode", c.exit_code},
                {"Error", c.error},
                {"StartedAt", c.started_at.empty() ? zero_time : c.started_at},
                {"FinishedAt", c.finished_at.empty() ? zero_time : c.finished_at},
                // berth: bytes of output the log writer had to drop (a slow disk); docker has no such field.
                {"LogDropped", c.log_dropped}};
  // Only for a container with a health check that has been started (docker's omitempty Health).
  if (c.health.is_object()) state["Health"] = std::move(c.health);
  json network_mode = host_config.value("NetworkMode", "");
  json inspect = {
      {"Id", c.id},
      {"Created", time_string(c.created_ns)},
      {"Path", args.empty() ? "" : args[0]},
      {"Args", std::move(arg_list)},
      {"State", std::move(state)},
      {"Image", c.image_id},
      {"ResolvConfPath", dir + "/resolv.conf"},
      {"HostnamePath", dir + "/hostname"},
      {"HostsPath", dir + "/hosts"},
      {"LogPath", engine.log_path(c.id)},
      {"Name", "/" + c.name},
      {"RestartCount", c.restart_count},
      {"Driver", "overlay2"},
      {"Platform", "linux"},
      {"MountLabel", ""},
      {"ProcessLabel", ""},
      {"AppArmorProfile", ""},
      {"ExecIDs", nullptr},
      {"HostConfig", std::move(host_config)},
      {"GraphDriver",
       {{"Name", "overlay2"},
        {"Data", {{"MergedDir", dir + "/rootfs"}, {"UpperDir", dir + "/upper"}, {"WorkDir", dir + "/work"}}}}},
      {"Mounts", std::move(c.mounts)},
      {"Config", std::move(config)},
      {"NetworkSettings", std::move(net)},
  };
  if (!inspect["Config"].contains("Image")) inspect["Config"]["Image"] = c.image_name;
  return inspect;
}

std::string status_text(const Container& c) {
  auto ago = [](const std::string& when) {
    int64_t t = image::parse_rfc3339(when);
    int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return human_duration(now - t);
  };
  if (c.state == "running") {
    std::string health = c.health.is_object() ? c.health.value("Status", "") : "";
    if (health == "starting") health = "health: starting";
    return "Up " + ago(c.started_at) + (health.empty() ? "" : " (" + health + ")");
  }
  if (c.state == "paused") return "Up " + ago(c.started_at) + " (Paused)";
  if (c.state == "restarting") return "Restarting (" + std::to_string(c.exit_code) + ") " + ago(c.finished_at) + " ago";
  if (c.state == "exited")
    return "Exited (" + std::to_string(c.exit_code) + ") " + (c.finished_at.empty() ? "" : ago(c.finished_at) + " ago");
  if (c.state == "dead") return "Dead";
  return "Created";
}

json network_json(Engine& eng, const Network& n) {
  json ipam_config = json::array();
  if (!n.subnet.empty()) {
    json c = {{"Subnet", n.subnet}, {"Gateway", n.gateway}};
    if (!n.ip_range.empty()) c["IPRange"] = n.ip_range;
    ipam_config.push_back(c);
  }
  json containers = json::object();
  for (const auto& e : eng.networks().network_endpoints(n.id)) {
    std::string name;
    try {
      name = eng.get(e.container_id).name;
    } catch (const std::exception&) {
    }
    containers[e.container_id] = {{"Name", name},
                                  {"EndpointID", e.network_id.substr(0, 32) + e.container_id.substr(0, 32)},
                                  {"MacAddress", e.mac},
                                  {"IPv4Address", e.ip + "/" + std::to_string(e.prefix)},
                                  {"IPv6Address", ""}};
  }
  return {{"Name", n.name},
          {"Id", n.id},
          {"Created", rfc3339_local(n.created_ns, true)},
          {"Scope", "local"},
          {"Driver", n.driver},
          {"EnableIPv4", true},
          {"EnableIPv6", false},
          {"IPAM",
           {{"Driver", "default"},
            {"Options", n.driver == "bridge" ? json::object() : json(nullptr)},
            {"Config", ipam_config}}},
          {"Internal", n.internal},
          {"Attachable", false},
          {"Ingress", false},
          {"ConfigFrom", {{"Network", ""}}},
          {"ConfigOnly", false},
          {"Containers", containers},
          {"Options", json(n.options)},
          {"Labels", json(n.labels)}};
}

json volume_json(const Volume& v) {
  return {{"CreatedAt", rfc3339_local(v.created_ns, false)},
          {"Driver", v.driver},
          {"Labels", json(v.labels)},
          {"Mountpoint", v.mountpoint},
          {"Name", v.name},
          {"Options", json(v.options)},
          {"Scope", "local"}};
}

}  // namespace berth::engine
