// /volumes/… and /networks/…
#include <set>

#include "api/server.hpp"
#include "engine/engine.hpp"
#include "engine/inspect.hpp"
#include "engine/networks.hpp"
#include "engine/volumes.hpp"

namespace berth::api {

using nlohmann::json;

namespace {

std::map<std::string, std::string> string_map(const json& j, const char* what) {
  std::map<std::string, std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object()) throw HttpError(400, std::string("invalid ") + what + ": must be an object of strings");
  for (auto& [k, v] : j.items()) {
    if (!v.is_string()) throw HttpError(400, std::string("invalid ") + what + " value for " + k + ": must be a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

std::string string_field(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return "";
  if (!body[key].is_string()) throw HttpError(400, std::string("invalid ") + key + ": must be a string");
  return body[key].get<std::string>();
}

bool label_filters_match(const std::map<std::string, std::string>& labels, const std::vector<std::string>& filters,
                         bool negate) {
  for (const auto& f : filters) {
    engine::LabelFilter lf = engine::LabelFilter::parse(f, negate);
    if (!lf.matches(labels)) return false;
  }
  return true;
}

// --- volumes ---

void volume_list(Call& call) {
  auto filters = call.req.filters();
  for (const auto& [k, v] : filters)
    if (k != "name" && k != "label" && k != "label!" && k != "dangling" && k != "driver")
      throw HttpError(400, "invalid filter '" + k + "'");
  auto& vols = call.volumes();
  std::set<std::string> used;
  if (filters.count("dangling")) used = vols.in_use();
  json out = json::array();
  for (const auto& v : vols.list()) {
    bool ok = true;
    if (auto it = filters.find("name"); it != filters.end()) {
      bool any = it->second.empty();
      for (const auto& n : it->second) any = any || v.name.find(n) != std::string::npos;
      ok = ok && any;
    }
    if (auto it = filters.find("driver"); it != filters.end()) {
      bool any = it->second.empty();
      for (const auto& d : it->second) any = any || v.driver == d;
      ok = ok && any;
    }
    if (auto it = filters.find("label"); it != filters.end())
      ok = ok && label_filters_match(v.labels, it->second, false);
    if (auto it = filters.find("label!"); it != filters.end())
      ok = ok && label_filters_match(v.labels, it->second, true);
    if (auto it = filters.find("dangling"); it != filters.end()) {
      for (const auto& d : it->second) {
        if (d != "true" && d != "false" && d != "1" && d != "0")
          throw HttpError(400, "invalid filter 'dangling=" + d + "'");
        bool want = d == "true" || d == "1";
        ok = ok && (used.count(v.name) == 0) == want;
      }
    }
    if (ok) out.push_back(engine::volume_json(v));
  }
  call.conn.json(200, {{"Volumes", out}, {"Warnings", json::array()}});
}

void volume_create(Call& call) {
  json body = call.req.json_body();
  if (!body.is_object()) throw HttpError(400, "invalid JSON: the body must be an object");
  std::string name = string_field(body, "Name");
  std::string driver = string_field(body, "Driver");
  auto opts = string_map(body.value("DriverOpts", json(nullptr)), "DriverOpts");
  auto labels = string_map(body.value("Labels", json(nullptr)), "Labels");
  if (!name.empty()) {
    // docker's volume name rule.
    bool ok = name.size() >= 2 && std::isalnum(static_cast<unsigned char>(name[0]));
    for (char ch : name)
      ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-');
    if (!ok)
      throw HttpError(
          400,
          "create " + name + ": \"" + name +
              "\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. "
              "If you intended to pass a host directory, use absolute path");
  }
  engine::Volume v = call.volumes().create(name, driver, opts, labels, name.empty());
  call.conn.json(201, engine::volume_json(v));
}

void volume_inspect(Call& call) {
  auto v = call.volumes().find(call.params[0]);
  if (!v) throw HttpError(404, "get " + call.params[0] + ": no such volume");
  call.conn.json(200, engine::volume_json(*v));
}

void volume_remove(Call& call) {
  call.engine();  // reconciles crashed containers before "in use" is judged
  call.volumes().remove(call.params[0], call.req.flag("force"));
  call.conn.no_content();
}

void volume_prune(Call& call) {
  auto filters = call.req.filters();
  bool all = false;
  std::vector<engine::LabelFilter> label_filters;
  for (const auto& [k, values] : filters) {
    if (k == "all") {
      for (const auto& v : values) all = all || v == "true" || v == "1";
    } else if (k == "label" || k == "label!") {
      for (const auto& v : values) label_filters.push_back(engine::LabelFilter::parse(v, k == "label!"));
    } else {
      throw HttpError(400, "invalid filter '" + k + "'");
    }
  }
  call.engine();
  // Anonymous volumes only unless all=true (docker API 1.42's rule, applied to every version:
  // a named volume is data someone named, and goes only when asked for by name or with all).
  engine::PruneResult r = call.volumes().prune(all, label_filters);
  call.conn.json(
      200, {{"VolumesDeleted", r.removed.empty() ? json(nullptr) : json(r.removed)}, {"SpaceReclaimed", r.reclaimed}});
}

// --- networks ---

bool network_passes(engine::Engine& eng, const engine::Network& n,
                    const std::map<std::string, std::vector<std::string>>& filters) {
  for (const auto& [key, values] : filters) {
    if (values.empty()) continue;
    bool ok = false;
    if (key == "name") {
      for (const auto& v : values) ok = ok || n.name.find(v) != std::string::npos;
    } else if (key == "id") {
      for (const auto& v : values) ok = ok || n.id.rfind(v, 0) == 0;
    } else if (key == "driver") {
      for (const auto& v : values) ok = ok || n.driver == v;
    } else if (key == "label") {
      ok = label_filters_match(n.labels, values, false);
    } else if (key == "scope") {
      for (const auto& v : values) ok = ok || v == "local";
    } else if (key == "type") {
      for (const auto& v : values) {
        if (v != "custom" && v != "builtin") throw HttpError(400, "invalid filter: 'type'='" + v + "'");
        ok = ok || (v == "builtin") == n.predefined();
      }
    } else if (key == "dangling") {
      for (const auto& v : values) {
        bool want = v == "true" || v == "1";
        ok = ok || (!n.predefined() && eng.networks().network_endpoints(n.id).empty()) == want;
      }
    } else {
      throw HttpError(400, "invalid filter '" + key + "'");
    }
    if (!ok) return false;
  }
  return true;
}

void network_list(Call& call) {
  auto filters = call.req.filters();
  auto& eng = call.engine();
  eng.networks().ensure_predefined();
  json out = json::array();
  for (const auto& n : eng.networks().list())
    if (network_passes(eng, n, filters)) out.push_back(engine::network_json(eng, n));
  call.conn.json(200, out);
}

void network_inspect(Call& call) {
  auto& eng = call.engine();
  eng.networks().ensure_predefined();
  call.conn.json(200, engine::network_json(eng, eng.networks().get(call.params[0])));
}

void network_create(Call& call) {
  json body = call.req.json_body();
  if (!body.is_object()) throw HttpError(400, "invalid JSON: the body must be an object");
  engine::NetworkCreateRequest r;
  r.name = string_field(body, "Name");
  if (r.name.empty()) throw HttpError(400, "network name must not be empty");
  std::string driver = string_field(body, "Driver");
  if (!driver.empty()) r.driver = driver;
  r.internal = body.value("Internal", false);
  if (body.value("EnableIPv6", false)) throw HttpError(400, "IPv6 networks are not supported by berth");
  r.labels = string_map(body.value("Labels", json(nullptr)), "Labels");
  r.options = string_map(body.value("Options", json(nullptr)), "Options");
  if (body.contains("IPAM") && body["IPAM"].is_object()) {
    const json& ipam = body["IPAM"];
    std::string ipam_driver = ipam.value("Driver", "");
    if (!ipam_driver.empty() && ipam_driver != "default")
      throw HttpError(400, "IPAM driver " + ipam_driver + " is not supported");
    json configs = ipam.value("Config", json::array());
    if (configs.is_array() && configs.size() > 1)
      throw HttpError(400, "berth networks take one IPv4 subnet; got " + std::to_string(configs.size()));
    if (configs.is_array() && !configs.empty() && configs[0].is_object()) {
      r.subnet = configs[0].value("Subnet", "");
      r.gateway = configs[0].value("Gateway", "");
      r.ip_range = configs[0].value("IPRange", "");
    }
  }
  auto& eng = call.engine();
  eng.networks().ensure_predefined();
  if (eng.networks().find(r.name) && eng.networks().get(r.name).name == r.name)
    throw HttpError(409, "network with name " + r.name + " already exists");
  engine::Network n = eng.networks().create(r);
  call.conn.json(201, {{"Id", n.id}, {"Warning", ""}});
}

void network_remove(Call& call) {
  call.engine().networks().remove(call.params[0]);
  call.conn.no_content();
}

void network_connect(Call& call) {
  json body = call.req.json_body();
  std::string container = body.is_object() ? string_field(body, "Container") : "";
  if (container.empty()) throw HttpError(400, "container is required");
  engine::EndpointRequest req;
  req.network = call.params[0];
  json ec = body.value("EndpointConfig", json(nullptr));
  if (ec.is_object()) {
    for (const auto& a : ec.value("Aliases", json::array()))
      if (a.is_string()) req.aliases.push_back(a.get<std::string>());
    json ipam = ec.value("IPAMConfig", json(nullptr));
    if (ipam.is_object()) req.ip = ipam.value("IPv4Address", "");
    req.mac = ec.value("MacAddress", "");
  }
  call.engine().connect(call.params[0], container, req);
  call.conn.respond(200, "application/json", "");
}

void network_disconnect(Call& call) {
  json body = call.req.json_body();
  std::string container = body.is_object() ? string_field(body, "Container") : "";
  if (container.empty()) throw HttpError(400, "container is required");
  call.engine().disconnect(call.params[0], container, body.value("Force", false));
  call.conn.respond(200, "application/json", "");
}

void network_prune(Call& call) {
  auto filters = call.req.filters();
  for (const auto& [k, v] : filters)
    if (k != "label" && k != "label!" && k != "until") throw HttpError(400, "invalid filter '" + k + "'");
  auto names = call.engine().networks().prune([&](const engine::Network& n) {
    if (auto it = filters.find("label"); it != filters.end() && !label_filters_match(n.labels, it->second, false))
      return false;
    if (auto it = filters.find("label!"); it != filters.end() && !label_filters_match(n.labels, it->second, true))
      return false;
    return true;
  });
  call.conn.json(200, {{"NetworksDeleted", names.empty() ? json(nullptr) : json(names)}});
}

}  // namespace

std::vector<Route> volume_routes() {
  return {{"GET", "/volumes", volume_list},
          {"POST", "/volumes/create", volume_create},
          {"POST", "/volumes/prune", volume_prune},
          {"GET", "/volumes/{}", volume_inspect},
          {"DELETE", "/volumes/{}", volume_remove}};
}

std::vector<Route> network_routes() {
  return {{"GET", "/networks", network_list},
          {"POST", "/networks/create", network_create},
          {"POST", "/networks/prune", network_prune},
          {"GET", "/networks/{}", network_inspect},
          {"DELETE", "/networks/{}", network_remove},
          {"POST", "/networks/{}/connect", network_connect},
          {"POST", "/networks/{}/disconnect", network_disconnect}};
}

}  // namespace berth::api
