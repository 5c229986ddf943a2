// `compose kube`: a compose project as Kubernetes objects.
//
// The mapping (kube_play.cpp reads the same objects back):
//   service            → Deployment (replicas from scale), or a StatefulSet when it alone uses a
//                        named volume and runs one replica (the volume becomes a volumeClaimTemplate)
//   named volume       → PersistentVolumeClaim (ReadWriteMany when shared), 1Gi requested
//   ports / expose     → containerPort (+ hostPort for a published port) and a ClusterIP Service
//                        whose port is the container port, as other services reach it in compose
//   used by name       → a Service (headless without a known port) when another service's
//                        environment, command or depends_on names it; network aliases → Services
//   bind mount         → hostPath (warned: the path must exist on the node)
//   tmpfs              → emptyDir with medium Memory;  anonymous volume → emptyDir
//   env_file           → a ConfigMap "<service>-env" and envFrom; environment → env
//   secrets, configs   → a Secret or ConfigMap each, the file mounted by subPath (read-only)
//   healthcheck        → readiness and liveness exec probes
//   deploy.resources   → resources.limits / requests (cpus, mem_limit too)
//   init, depends_on   → annotations berth/init and berth/depends-on (kube play honours them)
// Anything else is reported by warn and left out.
#include "compose/kube.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "image/auth_config.hpp"
#include "storage/mount_spec.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::compose {

using nlohmann::json;

namespace {

// A DNS-1123 label from a compose name: lower case, other characters → '-', at most 63.
std::string kube_name(const std::string& s) {
  std::string out;
  for (char c : s) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') ? l : '-';
  }
  size_t a = out.find_first_not_of('-');
  if (a == std::string::npos) return "x";
  out = out.substr(a, 63);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// Service names must also start with a letter (DNS-1035).
std::string service_object_name(const std::string& service, const Warn& warn) {
  std::string n = kube_name(service);
  if (n[0] >= '0' && n[0] <= '9') {
    warn("service " + service + ": a Kubernetes Service name must start with a letter; named s-" + n);
    n = "s-" + n;
  }
  if (n != service)
    warn("service " + service + ": Kubernetes name " + n + " (other pods reach it by that name, not " + service + ")");
  return n;
}

// Label values: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends.
std::string label_value(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ? c : '-';
  out = out.substr(0, 63);
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) out.pop_back();
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
  return out;
}

// An annotation key: [prefix/]name, name ≤ 63 of [A-Za-z0-9._-] with alphanumeric ends.
bool valid_annotation_key(const std::string& key) {
  std::string name = key.substr(key.rfind('/') == std::string::npos ? 0 : key.rfind('/') + 1);
  if (name.empty() || name.size() > 63 || key.size() > 316) return false;
  if (!std::isalnum(static_cast<unsigned char>(name.front())) || !std::isalnum(static_cast<unsigned char>(name.back())))
    return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

int64_t seconds_of(const json& v, const std::string& where, int64_t fallback) {
  if (v.is_null()) return fallback;
  return static_cast<int64_t>(std::ceil(static_cast<double>(compose_duration(v, where)) / 1e9));
}

int64_t bytes_of(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  return storage::parse_ram_size(scalar_text(v));
}

// Bytes as a Kubernetes quantity: "512Mi" when it divides, else the plain number.
std::string quantity(int64_t bytes) {
  const std::pair<const char*, int64_t> units[] = {
      {"Gi", int64_t{1} << 30}, {"Mi", int64_t{1} << 20}, {"Ki", int64_t{1} << 10}};
  for (const auto& [suffix, size] : units)
    if (bytes >= size && bytes % size == 0) return std::to_string(bytes / size) + suffix;
  return std::to_string(bytes);
}

std::string cpu_quantity(const json& v, const std::string& where) {
  double cpus = 0;
  try {
    cpus = v.is_number() ? v.get<double>() : std::stod(scalar_text(v));
  } catch (const std::exception&) {
    throw Error(where + ": invalid cpus value \"" + scalar_text(v) + "\"");
  }
  return std::to_string(static_cast<int64_t>(std::llround(cpus * 1000))) + "m";
}

// The container ports a service listens on: its ports' targets and expose, as (port, protocol).
std::set<std::pair<int, std::string>> listening_ports(const json& svc) {
  std::set<std::pair<int, std::string>> out;
  if (svc.contains("ports"))
    for (const auto& p : svc["ports"]) out.emplace(p.value("target", 0), p.value("protocol", "tcp"));
  if (svc.contains("expose"))
    for (const auto& e : svc["expose"]) {
      std::string s = scalar_text(e), proto = "tcp";
      if (size_t slash = s.find('/'); slash != std::string::npos) proto = s.substr(slash + 1), s = s.substr(0, slash);
      if (s.find('-') != std::string::npos) continue;  // a range: no single Service port
      try {
        out.emplace(std::stoi(s), proto);
      } catch (const std::exception&) {
      }
    }
  return out;
}

// Every string a service passes to its processes or its own checks.
std::vector<std::string> strings_of(const json& svc) {
  std::vector<std::string> out;
  for (const char* key : {"command", "entrypoint"})
    if (svc.contains(key))
      for (const auto& s : svc[key]) out.push_back(scalar_text(s));
  if (svc.contains("environment"))
    for (auto& [k, v] : svc["environment"].items()) out.push_back(scalar_text(v));
  return out;
}

// Ports named with a host ("backend:8080", "//backend/") in strings; found: whether named at all.
void scan_references(const std::string& host, const std::vector<std::string>& strings, bool& found,
                     std::set<int>& ports) {
  for (const auto& s : strings)
    for (size_t at = s.find(host); at != std::string::npos; at = s.find(host, at + 1)) {
      bool start = at == 0 || std::string("/@=, \t'\"(").find(s[at - 1]) != std::string::npos;
      size_t end = at + host.size();
      if (!start) continue;
      if (end == s.size() || s[end] == '/' || s[end] == ' ' || s[end] == '"' || s[end] == '\'') {
        found = true;
      } else if (s[end] == ':') {
        size_t d = end + 1;
        while (d < s.size() && std::isdigit(static_cast<unsigned char>(s[d]))) d++;
        if (d == end + 1) continue;
        found = true;
        try {
          ports.insert(std::stoi(s.substr(end + 1, d - end - 1)));
        } catch (const std::exception&) {
        }
      }
    }
}

json probe_from(const json& hc, const std::string& where) {
  json test = hc.value("test", json::array());
  if (test.empty() || scalar_text(test[0]) == "NONE" || hc.value("disable", false)) return nullptr;
  json command = json::array();
  if (scalar_text(test[0]) == "CMD-SHELL") {
    command = {"/bin/sh", "-c", test.size() > 1 ? scalar_text(test[1]) : ""};
  } else {
    for (size_t i = scalar_text(test[0]) == "CMD" ? 1 : 0; i < test.size(); i++)
      command.push_back(scalar_text(test[i]));
  }
  json probe = {{"exec", {{"command", command}}}};
  probe["periodSeconds"] = std::max<int64_t>(1, seconds_of(hc.value("interval", json()), where + ".interval", 30));
  probe["timeoutSeconds"] = std::max<int64_t>(1, seconds_of(hc.value("timeout", json()), where + ".timeout", 30));
  probe["failureThreshold"] = std::max(1, hc.value("retries", 3));
  int64_t start = seconds_of(hc.value("start_period", json()), where + ".start_period", 0);
  if (start > 0) probe["initialDelaySeconds"] = start;
  return probe;
}

// Service keys the mapping uses; any other key is warned about.
const std::set<std::string> kMapped = {"secrets",           "configs",        "image",        "command",
                                       "entrypoint",        "environment",    "ports",        "expose",
                                       "volumes",           "networks",       "scale",        "deploy",
                                       "healthcheck",       "working_dir",    "user",         "cap_add",
                                       "cap_drop",          "read_only",      "privileged",   "hostname",
                                       "extra_hosts",       "labels",         "init",         "tty",
                                       "stdin_open",        "pull_policy",    "depends_on",   "restart",
                                       "stop_grace_period", "tmpfs",          "cpus",         "mem_limit",
                                       "mem_reservation",   "container_name", "network_mode", "sysctls"};

struct Generator {
  Generator(const Project& p, const Warn& w) : project(p), warn(w) {}
  const Project& project;
  const Warn& warn;
  std::vector<json> config_maps, claims, services, workloads;
  std::map<std::string, std::string> object_names;     // compose service → Kubernetes name
  std::map<std::string, std::string> claim_names;      // named volume → claim (and pod volume) name
  std::map<std::string, std::set<std::string>> users;  // named volume → services using it
  std::set<std::string> workload_names, service_names, claim_taken, secret_names, config_names;

  // base, or base-2, base-3… when two compose names map to one Kubernetes name (my_app, my-app).
  std::string unique(std::set<std::string>& taken, const std::string& base, const std::string& what) {
    std::string n = base;
    for (int i = 2; taken.count(n); i++) n = base + "-" + std::to_string(i);
    if (n != base) warn(what + ": Kubernetes name " + base + " is taken; named " + n);
    taken.insert(n);
    return n;
  }

  json selector(const std::string& service) {
    return {{kNameLabel, object_names[service]}, {kPartOfLabel, label_value(project.name)}};
  }
  json metadata(const std::string& name) {
    return {{"name", name}, {"labels", {{kPartOfLabel, label_value(project.name)}}}};
  }

  void run() {
    const json& model = project.model;
    for (auto& [name, svc] : model["services"].items()) {
      object_names[name] = unique(workload_names, service_object_name(name, warn), "service " + name);
      service_names.insert(object_names[name]);
      if (svc.contains("volumes"))
        for (const auto& v : svc["volumes"])
          if (v.value("type", "") == "volume" && !scalar_text(v.value("source", json(""))).empty())
            users[scalar_text(v["source"])].insert(name);
    }
    for (auto& [key, cfg] : model["volumes"].items())
      if (!cfg.value("external", false)) claim_names[key] = unique(claim_taken, kube_name(key), "volume " + key);
    for (const auto& [svcname, vars] : project.env_file_variables)
      if (!vars.empty() && object_names.count(svcname)) config_names.insert(object_names[svcname] + "-env");
    for (auto& [name, svc] : model["services"].items()) workload(name, svc);
  }

  std::map<std::string, std::string> file_objects;  // "secrets/name" → object name

  // A ConfigMap/Secret key from a compose name ([-._a-zA-Z0-9]).
  static std::string data_key(const std::string& name) {
    std::string out;
    for (char c : name)
      out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_';
    return out;
  }

  // The Secret or ConfigMap holding a compose secret or config (written once); "" when its content
  // can't be read here (warned).
  std::string file_object(const std::string& kind, const std::string& source) {
    std::string id = kind + "/" + source;
    if (auto it = file_objects.find(id); it != file_objects.end()) return it->second;
    const json def = project.model.value(kind, json::object()).value(source, json::object());
    std::string content;
    bool have = false;
    if (def.contains("file")) {
      std::string file = scalar_text(def["file"]);
      if (!file.empty() && file[0] != '/') file = project.working_dir + "/" + file;
      if (auto text = read_file_if_exists(file)) content = *text, have = true;
    } else if (def.contains("content")) {
      content = scalar_text(def["content"]), have = true;
    } else if (def.contains("environment")) {
      auto it = project.environment.find(scalar_text(def["environment"]));
      if (it != project.environment.end()) content = it->second, have = true;
    }
    if (!have) {
      warn(kind + "." + source + ": its content is not available here; left out");
      return file_objects[id] = "";
    }
    bool secret = kind == "secrets";
    std::string name = unique(secret ? secret_names : config_names, kube_name(source), kind + "." + source);
    json object = {{"apiVersion", "v1"}, {"kind", secret ? "Secret" : "ConfigMap"}, {"metadata", metadata(name)}};
    if (secret) {
      object["type"] = "Opaque";
      object["data"] = {{data_key(source), image::base64_encode(content)}};
    } else {
      object["data"] = {{data_key(source), content}};
    }
    config_maps.push_back(object);
    return file_objects[id] = name;
  }

  bool owns(const std::string& service, const json& svc, const std::string& volume) {
    const json& cfg = project.model["volumes"][volume];
    return !cfg.value("external", false) && users[volume].size() == 1 && users[volume].count(service) &&
           svc.value("scale", 1) == 1;
  }

  void claim(const std::string& volume) {
    std::string name = claim_names[volume];
    for (const auto& c : claims)
      if (c["metadata"]["name"] == name) return;
    const json& cfg = project.model["volumes"][volume];
    if (cfg.contains("driver") && scalar_text(cfg["driver"]) != "local")
      warn("volume " + volume + ": driver " + scalar_text(cfg["driver"]) +
           " is not carried over; the cluster's default " + "storage class is used");
    bool shared = users[volume].size() > 1;
    for (const auto& s : users[volume]) shared = shared || project.model["services"][s].value("scale", 1) > 1;
    json pvc = {{"apiVersion", "v1"}, {"kind", "PersistentVolumeClaim"}, {"metadata", metadata(name)}};
    // kube play names the volume after the compose key, so the data compose kept is found again.
    pvc["metadata"]["annotations"] = {{"berth/volume", volume}};
    pvc["spec"] = {{"accessModes", {shared ? "ReadWriteMany" : "ReadWriteOnce"}},
                   {"resources", {{"requests", {{"storage", "1Gi"}}}}}};
    claims.push_back(pvc);
  }

  void workload(const std::string& name, const json& svc) {
    const std::string where = "services." + name;
    const std::string kname = object_names[name];
    for (auto& [key, value] : svc.items())
      if (!kMapped.count(key)) warn("service " + name + ": " + key + " has no Kubernetes equivalent; left out");
    if (svc.contains("network_mode")) {
      std::string mode = scalar_text(svc["network_mode"]);
      if (mode != "host") warn("service " + name + ": network_mode " + mode + " has no Kubernetes equivalent");
    }

    json container = {{"name", kname}, {"image", scalar_text(svc["image"])}};
    if (svc.contains("entrypoint") && !svc["entrypoint"].empty()) container["command"] = svc["entrypoint"];
    if (svc.contains("command") && !svc["command"].empty()) container["args"] = svc["command"];
    if (svc.contains("working_dir")) container["workingDir"] = svc["working_dir"];

    // env_file → a ConfigMap; environment entries it doesn't already hold → env.
    auto ef = project.env_file_variables.find(name);
    const std::map<std::string, std::string> from_files =
        ef == project.env_file_variables.end() ? std::map<std::string, std::string>{} : ef->second;
    if (!from_files.empty()) {
      json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", metadata(kname + "-env")}};
      cm["data"] = json::object();
      for (const auto& [k, v] : from_files) cm["data"][k] = v;
      config_maps.push_back(cm);
      container["envFrom"] = json::array({{{"configMapRef", {{"name", kname + "-env"}}}}});
    }
    if (svc.contains("environment")) {
      json env = json::array();
      for (auto& [k, v] : svc["environment"].items()) {
        auto f = from_files.find(k);
        if (f != from_files.end() && !v.is_null() && f->second == scalar_text(v)) continue;
        json e = {{"name", k}};
        if (!v.is_null()) e["value"] = scalar_text(v);
        env.push_back(e);
      }
      if (!env.empty()) container["env"] = env;
    }

    json ports = json::array();
    if (svc.contains("ports"))
      for (const auto& p : svc["ports"]) {
        json port = {{"containerPort", p.value("target", 0)}};
        std::string proto = p.value("protocol", "tcp");
        std::transform(proto.begin(), proto.end(), proto.begin(), ::toupper);
        port["protocol"] = proto;
        std::string published = scalar_text(p.value("published", json("")));
        if (!published.empty() && published.find('-') == std::string::npos) {
          port["hostPort"] = std::stoi(published);
          if (!p.value("host_ip", std::string()).empty()) port["hostIP"] = p["host_ip"];
        } else if (!published.empty()) {
          warn("service " + name + ": published port range " + published + " has no Kubernetes equivalent");
        }
        ports.push_back(port);
      }
    for (const auto& [port, proto] : listening_ports(svc)) {
      bool listed = false;
      for (const auto& p : ports) listed = listed || p["containerPort"] == port;
      std::string upper = proto;
      std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
      if (!listed) ports.push_back({{"containerPort", port}, {"protocol", upper}});
    }
    if (!ports.empty()) container["ports"] = ports;

    json security = json::object();
    if (svc.contains("user")) {
      std::string user = scalar_text(svc["user"]);
      std::string uid = user.substr(0, user.find(':'));
      std::string gid = user.find(':') == std::string::npos ? "" : user.substr(user.find(':') + 1);
      auto numeric = [](const std::string& s) {
        return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
      };
      if (numeric(uid) && (gid.empty() || numeric(gid))) {
        security["runAsUser"] = std::stoll(uid);
        if (!gid.empty()) security["runAsGroup"] = std::stoll(gid);
      } else {
        warn("service " + name + ": user " + user + " is not numeric; Kubernetes needs a uid (runAsUser), left out");
      }
    }
    json caps = json::object();
    for (auto [key, field] : {std::pair{"cap_add", "add"}, {"cap_drop", "drop"}})
      if (svc.contains(key)) {
        json list = json::array();
        for (const auto& c : svc[key]) {
          std::string cap = scalar_text(c);
          if (cap.rfind("CAP_", 0) == 0) cap = cap.substr(4);
          list.push_back(cap);
        }
        caps[field] = list;
      }
    if (!caps.empty()) security["capabilities"] = caps;
    if (svc.value("read_only", false)) security["readOnlyRootFilesystem"] = true;
    if (svc.value("privileged", false)) security["privileged"] = true;
    if (!security.empty()) container["securityContext"] = security;

    json resources = json::object();
    json limits = json::object(), requests = json::object();
    if (svc.contains("cpus")) limits["cpu"] = cpu_quantity(svc["cpus"], where + ".cpus");
    if (svc.contains("mem_limit")) limits["memory"] = quantity(bytes_of(svc["mem_limit"]));
    if (svc.contains("mem_reservation")) requests["memory"] = quantity(bytes_of(svc["mem_reservation"]));
    const json deploy_res = svc.contains("deploy") && svc["deploy"].is_object()
                                ? svc["deploy"].value("resources", json::object())
                                : json::object();
    for (auto [section, out] : {std::pair<const char*, json*>{"limits", &limits}, {"reservations", &requests}})
      if (deploy_res.contains(section)) {
        const json& r = deploy_res[section];
        if (r.contains("cpus")) (*out)["cpu"] = cpu_quantity(r["cpus"], where + ".deploy.resources.cpus");
        if (r.contains("memory")) (*out)["memory"] = quantity(bytes_of(r["memory"]));
      }
    if (!limits.empty()) resources["limits"] = limits;
    if (!requests.empty()) resources["requests"] = requests;
    if (!resources.empty()) container["resources"] = resources;

    if (svc.contains("healthcheck")) {
      json probe = probe_from(svc["healthcheck"], where + ".healthcheck");
      if (!probe.is_null()) {
        container["readinessProbe"] = probe;
        container["livenessProbe"] = probe;
      }
    }
    if (svc.value("tty", false)) container["tty"] = true;
    if (svc.value("stdin_open", false)) container["stdin"] = true;
    if (svc.contains("pull_policy")) {
      std::string p = scalar_text(svc["pull_policy"]);
      if (p == "always") container["imagePullPolicy"] = "Always";
      if (p == "never") container["imagePullPolicy"] = "Never";
      if (p == "missing" || p == "if_not_present") container["imagePullPolicy"] = "IfNotPresent";
    }

    // Volumes: the pod's volumes and the container's mounts.
    json pod_volumes = json::array(), mounts = json::array(), templates = json::array();
    // Named volumes keep their claim's name; binds, tmpfs and the rest are named around them.
    std::set<std::string> used_names;
    std::map<std::string, std::string> template_volumes;  // template → compose volume key
    if (svc.contains("volumes"))
      for (const auto& v : svc["volumes"]) {
        std::string source = scalar_text(v.value("source", json("")));
        if (v.value("type", "") != "volume" || source.empty()) continue;
        const json& cfg = project.model["volumes"][source];
        used_names.insert(cfg.value("external", false) ? kube_name(source) : claim_names[source]);
      }
    auto volume_name = [&](std::string base) {
      base = kube_name(base);
      std::string n = base;
      for (int i = 2; used_names.count(n); i++) n = base + "-" + std::to_string(i);
      used_names.insert(n);
      return n;
    };
    int anonymous = 0, tmpfs_count = 0;
    if (svc.contains("volumes"))
      for (const auto& v : svc["volumes"]) {
        std::string type = v.value("type", "volume");
        std::string target = scalar_text(v.value("target", json("")));
        json mount = {{"mountPath", target}};
        if (v.value("read_only", false)) mount["readOnly"] = true;
        if (type == "bind") {
          std::string source = scalar_text(v["source"]);
          struct stat st {};
          std::string kind = "DirectoryOrCreate";
          if (::stat(source.c_str(), &st) == 0) kind = S_ISDIR(st.st_mode) ? "Directory" : "File";
          std::string vname =
              volume_name(source.substr(source.rfind('/') + 1).empty() ? "host" : source.substr(source.rfind('/') + 1));
          pod_volumes.push_back({{"name", vname}, {"hostPath", {{"path", source}, {"type", kind}}}});
          mount["name"] = vname;
          warn("service " + name + ": bind mount " + source + " becomes a hostPath volume: the path must exist on " +
               "the node that runs the pod");
        } else if (type == "volume") {
          std::string source = scalar_text(v.value("source", json("")));
          if (source.empty()) {
            std::string vname = volume_name("anonymous-" + std::to_string(++anonymous));
            pod_volumes.push_back({{"name", vname}, {"emptyDir", json::object()}});
            mount["name"] = vname;
          } else {
            const json& cfg = project.model["volumes"][source];
            std::string vname = cfg.value("external", false) ? kube_name(source) : claim_names[source];
            mount["name"] = vname;
            if (owns(name, svc, source)) {
              if (!template_volumes.count(vname)) {
                json t = {{"metadata", {{"name", vname}}}};
                t["spec"] = {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}};
                templates.push_back(t);
                template_volumes[vname] = source;
              }
            } else {
              std::string claim_name = vname;
              if (cfg.value("external", false)) {
                claim_name = scalar_text(cfg["name"]);
                warn("volume " + source + " is external: the claim " + claim_name + " must exist in the cluster");
              } else {
                claim(source);
              }
              json pvc = {{"claimName", claim_name}};
              if (v.value("read_only", false)) pvc["readOnly"] = true;
              bool declared = false;
              for (const auto& pv : pod_volumes) declared = declared || pv["name"] == vname;
              if (!declared) pod_volumes.push_back({{"name", vname}, {"persistentVolumeClaim", pvc}});
            }
            const json opts = v.value("volume", json::object());
            if (opts.contains("subpath")) mount["subPath"] = opts["subpath"];
          }
        } else if (type == "tmpfs") {
          std::string vname = volume_name("tmpfs-" + std::to_string(++tmpfs_count));
          json dir = {{"medium", "Memory"}};
          const json t = v.value("tmpfs", json::object());
          if (t.contains("size")) dir["sizeLimit"] = quantity(bytes_of(t["size"]));
          pod_volumes.push_back({{"name", vname}, {"emptyDir", dir}});
          mount["name"] = vname;
        } else {
          warn("service " + name + ": a " + type + " mount has no Kubernetes equivalent; left out");
          continue;
        }
        mounts.push_back(mount);
      }
    if (svc.contains("tmpfs"))
      for (const auto& t : svc["tmpfs"]) {
        std::string spec = scalar_text(t), target = spec.substr(0, spec.find(':'));
        std::string vname = volume_name("tmpfs-" + std::to_string(++tmpfs_count));
        json dir = {{"medium", "Memory"}};
        if (size_t at = spec.find("size="); at != std::string::npos)
          dir["sizeLimit"] = quantity(storage::parse_ram_size(spec.substr(at + 5, spec.find(',', at) - at - 5)));
        pod_volumes.push_back({{"name", vname}, {"emptyDir", dir}});
        mounts.push_back({{"name", vname}, {"mountPath", target}});
      }
    // Secrets and configs: a Secret or ConfigMap per top-level object, each file mounted by subPath.
    for (const char* kind : {"secrets", "configs"})
      if (svc.contains(kind))
        for (const auto& ref : svc[kind]) {
          std::string source = ref.is_object() ? scalar_text(ref.value("source", json(""))) : scalar_text(ref);
          std::string target = ref.is_object() ? scalar_text(ref.value("target", json(""))) : "";
          if (target.empty()) target = source;
          if (target[0] != '/') target = (std::string(kind) == "secrets" ? "/run/secrets/" : "/") + target;
          std::string object = file_object(kind, source);
          if (object.empty()) continue;
          std::string vname = volume_name(std::string(kind == std::string("secrets") ? "secret-" : "config-") + object);
          json volume = {{"name", vname}};
          if (std::string(kind) == "secrets")
            volume["secret"] = {{"secretName", object}};
          else
            volume["configMap"] = {{"name", object}};
          pod_volumes.push_back(volume);
          mounts.push_back({{"name", vname}, {"mountPath", target}, {"subPath", data_key(source)}, {"readOnly", true}});
        }
    if (!mounts.empty()) container["volumeMounts"] = mounts;

    json pod = {{"containers", {container}}};
    if (!pod_volumes.empty()) pod["volumes"] = pod_volumes;
    if (svc.contains("hostname")) pod["hostname"] = kube_name(scalar_text(svc["hostname"]));
    if (scalar_text(svc.value("network_mode", json(""))) == "host") pod["hostNetwork"] = true;
    if (svc.contains("extra_hosts")) {
      std::map<std::string, json> by_ip;
      for (const auto& h : svc["extra_hosts"]) {
        std::string s = scalar_text(h);
        size_t colon = s.find(':');
        if (colon == std::string::npos) continue;
        std::string ip = s.substr(colon + 1);
        if (ip.size() > 1 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
        by_ip[ip].push_back(s.substr(0, colon));
      }
      json aliases = json::array();
      for (auto& [ip, names] : by_ip) aliases.push_back({{"ip", ip}, {"hostnames", names}});
      pod["hostAliases"] = aliases;
    }
    if (svc.contains("sysctls")) {
      json list = json::array();
      for (auto& [k, v] : svc["sysctls"].items()) list.push_back({{"name", k}, {"value", scalar_text(v)}});
      pod["securityContext"] = {{"sysctls", list}};
    }
    if (svc.contains("stop_grace_period"))
      pod["terminationGracePeriodSeconds"] = seconds_of(svc["stop_grace_period"], where + ".stop_grace_period", 10);

    json annotations = json::object();
    if (svc.value("init", false)) annotations["berth/init"] = "true";
    if (svc.contains("depends_on")) {
      std::string deps;
      for (auto& [dep, cfg] : svc["depends_on"].items())
        deps += (deps.empty() ? "" : ",") + dep + ":" + cfg.value("condition", "service_started");
      annotations["berth/depends-on"] = deps;
    }
    if (svc.contains("labels"))
      for (auto& [k, v] : svc["labels"].items()) {
        if (valid_annotation_key(k))
          annotations[k] = scalar_text(v);
        else
          warn("service " + name + ": label " + k + " is not a valid Kubernetes annotation key; left out");
      }
    json template_meta = {{"labels", selector(name)}};
    if (!annotations.empty()) template_meta["annotations"] = annotations;

    bool stateful = !templates.empty();
    json object = {
        {"apiVersion", "apps/v1"}, {"kind", stateful ? "StatefulSet" : "Deployment"}, {"metadata", metadata(kname)}};
    object["metadata"]["labels"][kNameLabel] = kname;
    object["spec"] = {{"replicas", svc.value("scale", 1)},
                      {"selector", {{"matchLabels", selector(name)}}},
                      {"template", {{"metadata", template_meta}, {"spec", pod}}}};
    if (stateful) {
      object["spec"]["serviceName"] = kname;
      object["spec"]["volumeClaimTemplates"] = templates;
      // kube play names a one-replica StatefulSet's claims after these compose volumes.
      std::string list;
      for (const auto& [t, key] : template_volumes) list += (list.empty() ? "" : ",") + t + "=" + key;
      object["metadata"]["annotations"] = {{"berth/volumes", list}};
    }
    workloads.push_back(object);
    service_objects(name, svc, stateful);
  }

  // The Service that lets other pods reach this one by name, and one per network alias.
  void service_objects(const std::string& name, const json& svc, bool stateful) {
    auto ports = listening_ports(svc);
    bool named = stateful;
    std::set<int> referenced;
    for (auto& [other, osvc] : project.model["services"].items()) {
      if (other == name) continue;
      if (osvc.contains("depends_on") && osvc["depends_on"].contains(name)) named = true;
      std::vector<std::string> strings = strings_of(osvc);
      if (osvc.contains("healthcheck"))
        for (const auto& t : osvc["healthcheck"].value("test", json::array())) strings.push_back(scalar_text(t));
      scan_references(name, strings, named, referenced);
    }
    for (int p : referenced) ports.emplace(p, "tcp");
    if (ports.empty() && !named) return;
    json spec = {{"selector", selector(name)}};
    if (ports.empty()) {
      spec["clusterIP"] = "None";  // headless: the name resolves to the pods
    } else {
      json list = json::array();
      for (const auto& [port, proto] : ports) {
        std::string upper = proto;
        std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
        list.push_back(
            {{"name", proto + "-" + std::to_string(port)}, {"port", port}, {"targetPort", port}, {"protocol", upper}});
      }
      spec["ports"] = list;
    }
    std::vector<std::string> names = {object_names[name]};
    if (svc.contains("networks"))
      for (auto& [net, cfg] : svc["networks"].items())
        if (cfg.is_object() && cfg.contains("aliases"))
          for (const auto& a : cfg["aliases"]) {
            std::string alias = kube_name(scalar_text(a));
            if (std::find(names.begin(), names.end(), alias) != names.end()) continue;
            if (service_names.count(alias)) {
              warn("service " + name + ": network alias " + scalar_text(a) + " is already a Service's name; left out");
              continue;
            }
            service_names.insert(alias);
            names.push_back(alias);
          }
    for (const auto& n : names) {
      json s = {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", metadata(n)}, {"spec", spec}};
      services.push_back(s);
    }
  }
};

}  // namespace

std::vector<json> kube_manifests(const Project& project, const Warn& warn) {
  Generator g{project, warn};
  g.run();
  std::vector<json> out;
  for (auto* list : {&g.config_maps, &g.claims, &g.services, &g.workloads})
    for (auto& o : *list) out.push_back(std::move(o));
  return out;
}

std::string kube_file_name(const json& object) {
  std::string kind = object.value("kind", "object");
  std::transform(kind.begin(), kind.end(), kind.begin(), ::tolower);
  return object["metadata"].value("name", "unnamed") + "-" + kind + ".yaml";
}

}  // namespace berth::compose
