// Carrying out a compose project with the engine: networks, volumes, then containers in
// dependency order, each created from the service's long form (model.cpp) as docker compose would
// ask dockerd for it, with compose's names and labels.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "compose/compose.hpp"
#include "engine/networks.hpp"
#include "engine/volumes.hpp"
#include "image/digest.hpp"
#include "image/store.hpp"
#include "storage/mount_spec.hpp"
#include "util/docker_syntax.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::compose {

using engine::Container;
using nlohmann::json;

namespace {

const char* const kVersion = "2.0.0";  // com.docker.compose.version: the compose format berth speaks

std::string text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_null()) return "";
  return v.dump();
}

std::map<std::string, std::string> labels_of(const Container& c) {
  std::map<std::string, std::string> out;
  const json& config = c.config.value("Config", json::object());
  if (config.contains("Labels") && config["Labels"].is_object())
    for (auto& [k, v] : config["Labels"].items())
      if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

std::string label(const Container& c, const std::string& key) {
  auto labels = labels_of(c);
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

// A compose key's value through a parser of docker's syntax, its errors naming the key.
template <typename F>
auto with_where(const std::string& where, F&& parse) {
  try {
    return parse();
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

int64_t size_bytes(const json& v, const std::string& where) {
  if (v.is_number_integer()) return v.get<int64_t>();
  return with_where(where, [&] { return storage::parse_ram_size(text(v)); });
}

// cpus: a YAML number (0.5) as docker compose reads it (a float, rounded to the nanoCPU), or a
// string in docker's --cpus syntax. Unlike the std::stod this replaced, a string must be all
// number ("1.5x" is refused) and exact to the nanoCPU ("value is too precise"), as with --cpus.
int64_t nano_cpus(const json& v, const std::string& where) {
  if (v.is_number()) return static_cast<int64_t>(v.get<double>() * 1e9 + 0.5);
  return with_where(where, [&] { return parse_nano_cpus(text(v)); });
}

// restart: docker's --restart syntax and checks. "no" is now kept as Name "no" (it was ""), as
// docker compose sends it; the engine treats both alike.
json restart_policy(const std::string& value, const std::string& where) {
  return with_where(where, [&] { return parse_restart_policy(value); });
}

// A service's secret or config (short "name" or long {source, target, …}) as a read-only bind of a
// file: the top-level object's `file` (relative to the project), or, for `environment` and
// `content`, a file berth writes under <root>/compose/<project>/<kind>/. Secrets go to
// /run/secrets/<target>, configs to /<target>, as docker compose mounts them.
json file_object_mount(engine::Engine& engine, const Project& project, const std::string& kind, const json& ref,
                       const std::string& where) {
  std::string source = ref.is_object() ? text(ref.value("source", json(""))) : text(ref);
  std::string target = ref.is_object() ? text(ref.value("target", json(""))) : "";
  const json all = project.model.value(kind, json::object());
  std::string singular = kind.substr(0, kind.size() - 1);
  if (!all.contains(source))
    throw Error(where + "." + kind + ": " + singular + " \"" + source + "\" is not defined at the top level");
  const json& def = all[source];
  std::string file;
  if (def.contains("file")) {
    file = text(def["file"]);
    if (!file.empty() && file[0] != '/') file = project.working_dir + "/" + file;
    if (!path_exists(file)) throw Error(kind + "." + source + ".file: " + file + ": no such file or directory");
  } else if (def.contains("environment") || def.contains("content")) {
    std::string content;
    if (def.contains("content")) {
      content = text(def["content"]);
    } else {
      auto it = project.environment.find(text(def["environment"]));
      if (it == project.environment.end())
        throw Error(kind + "." + source + ".environment: variable " + text(def["environment"]) + " is not set");
      content = it->second;
    }
    std::string dir = engine.root() + "/compose/" + project.name + "/" + kind;
    mkdir_p(dir, 0700);
    file = dir + "/" + source;
    // Readable by the container's user unless the long form says otherwise (the directory is
    // root's, and a bind mount's source path is not searched from inside the container).
    mode_t mode = 0444;
    if (ref.is_object() && ref.contains("mode"))
      mode = static_cast<mode_t>(ref["mode"].is_number() ? ref["mode"].get<int>()
                                                         : std::stoi(text(ref["mode"]), nullptr, 8));
    write_file_atomic(file, content, mode & 0777);
    if (ref.is_object() && (ref.contains("uid") || ref.contains("gid")))
      if (::chown(file.c_str(), ref.contains("uid") ? std::stoi(text(ref["uid"])) : -1,
                  ref.contains("gid") ? std::stoi(text(ref["gid"])) : -1) != 0)
        throw_errno("chown " + file);
  } else {
    throw Error(kind + "." + source + ": only file, environment and content " + kind +
                " are supported (external ones are a swarm feature)");
  }
  if (target.empty()) target = source;
  if (target[0] != '/') target = (kind == "secrets" ? "/run/secrets/" : "/") + target;
  return {{"Type", "bind"}, {"Source", file}, {"Target", target}, {"ReadOnly", true}};
}

std::string container_name(const Project& project, const std::string& service, int number) {
  const json& svc = project.service(service);
  if (svc.contains("container_name")) return text(svc["container_name"]);
  return project.name + "-" + service + "-" + std::to_string(number);
}

// The first of a service's (non one-off) containers, for volumes_from and network_mode: service:x.
Container first_container(engine::Engine& engine, const Project& project, const std::string& service) {
  auto cs = project_containers(engine, project.name, {service});
  if (cs.empty()) throw Error("service \"" + service + "\" has no container");
  return cs.front();
}

void say(Backend& b, const std::string& kind, const std::string& name, const std::string& what) {
  b.progress << " " << kind << " " << name << "  " << what << "\n";
  b.progress.flush();
}

// Waits for a dependency's containers to reach the condition depends_on asks for.
void wait_condition(Backend& b, const Project& project, const std::string& dep, const std::string& condition,
                    int64_t timeout_ns) {
  if (condition == "service_started") return;
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns > 0 ? timeout_ns : INT64_MAX / 4);
  auto delay = std::chrono::milliseconds(5);
  for (;;) {
    auto cs = project_containers(b.engine, project.name, {dep});
    bool all = !cs.empty();
    for (const auto& c : cs) {
      std::string name = c.name;
      if (condition == "service_healthy") {
        std::string status = c.health.is_object() ? c.health.value("Status", "") : "";
        if (c.health.is_null())
          throw Error("dependency failed to start: container " + name + " has no healthcheck configured");
        if (status == "unhealthy") throw Error("dependency failed to start: container " + name + " is unhealthy");
        if (!c.running())
          throw Error("dependency failed to start: container " + name + " exited (" + std::to_string(c.exit_code) +
                      ")");
        all = all && status == "healthy";
      } else if (condition == "service_completed_successfully") {
        if (!c.running() && c.exit_code != 0)
          throw Error("service \"" + dep + "\" didn't complete successfully: exit " + std::to_string(c.exit_code));
        all = all && !c.running() && c.state != "created";
      }
    }
    if (all) {
      say(b, "Container", cs.front().name, condition == "service_healthy" ? "Healthy" : "Exited");
      return;
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw Error("timed out waiting for service \"" + dep + "\" (" + condition + ")");
    std::this_thread::sleep_for(delay);
    if (delay < std::chrono::milliseconds(100)) delay *= 2;
  }
}

// What one `up` created, to be removed again if it fails.
struct Created {
  std::vector<std::string> containers, networks, volumes;
};

void ensure_networks(Backend& b, const Project& project, const std::set<std::string>& keys, Created* created) {
  auto& store = b.engine.networks();
  for (const auto& key : keys) {
    const json& cfg = project.model["networks"][key];
    std::string name = text(cfg["name"]);
    auto existing = store.find(name);
    if (cfg.value("external", false)) {
      if (!existing) throw Error("network " + name + " declared as external, but could not be found");
      continue;
    }
    if (existing) {
      auto it = existing->labels.find(kProjectLabel);
      if (it == existing->labels.end() || it->second != project.name)
        b.progress << "WARN network " << name << " was found but has incorrect label " << kProjectLabel << " set to \""
                   << (it == existing->labels.end() ? "" : it->second) << "\"\n";
      continue;
    }
    engine::NetworkCreateRequest req;
    req.name = name;
    std::string driver = cfg.value("driver", "bridge");
    if (driver != "bridge")
      throw Error("networks." + key + ".driver: berth supports the bridge driver only, not \"" + driver + "\"");
    req.internal = cfg.value("internal", false);
    if (cfg.contains("labels"))
      for (auto& [k, v] : cfg["labels"].items()) req.labels[k] = text(v);
    if (cfg.contains("driver_opts"))
      for (auto& [k, v] : cfg["driver_opts"].items()) req.options[k] = text(v);
    if (cfg.contains("ipam") && cfg["ipam"].contains("config") && cfg["ipam"]["config"].is_array() &&
        !cfg["ipam"]["config"].empty()) {
      const json& pool = cfg["ipam"]["config"][0];
      req.subnet = pool.value("subnet", "");
      req.gateway = pool.value("gateway", "");
      req.ip_range = pool.value("ip_range", "");
    }
    req.labels[kProjectLabel] = project.name;
    req.labels[kNetworkLabel] = key;
    req.labels[kVersionLabel] = kVersion;
    say(b, "Network", name, "Creating");
    try {
      store.create(req);
    } catch (const Error& e) {
      throw Error("network " + name + ": " + e.what());
    }
    if (created) created->networks.push_back(name);
    say(b, "Network", name, "Created");
  }
}

void ensure_volumes(Backend& b, const Project& project, const std::set<std::string>& keys, Created* created) {
  for (const auto& key : keys) {
    const json& cfg = project.model["volumes"][key];
    std::string name = text(cfg["name"]);
    auto existing = b.volumes.find(name);
    if (cfg.value("external", false)) {
      if (!existing) throw Error("external volume \"" + name + "\" not found");
      continue;
    }
    if (existing) continue;
    std::map<std::string, std::string> options, labels;
    if (cfg.contains("driver_opts"))
      for (auto& [k, v] : cfg["driver_opts"].items()) options[k] = text(v);
    if (cfg.contains("labels"))
      for (auto& [k, v] : cfg["labels"].items()) labels[k] = text(v);
    labels[kProjectLabel] = project.name;
    labels[kVolumeLabel] = key;
    labels[kVersionLabel] = kVersion;
    say(b, "Volume", name, "Creating");
    try {
      b.volumes.create(name, cfg.value("driver", "local"), options, labels, false);
    } catch (const Error& e) {
      throw Error("volume " + name + ": " + e.what());
    }
    if (created) created->volumes.push_back(name);
    say(b, "Volume", name, "Created");
  }
}

// The networks and volumes the given services use.
void needed_resources(const Project& project, const std::vector<std::string>& services, std::set<std::string>& networks,
                      std::set<std::string>& volumes) {
  for (const auto& s : services) {
    const json& svc = project.service(s);
    if (svc.contains("networks"))
      for (auto& [n, cfg] : svc["networks"].items()) networks.insert(n);
    if (svc.contains("volumes"))
      for (const auto& v : svc["volumes"])
        if (v.value("type", "") == "volume" && !text(v.value("source", json(""))).empty())
          volumes.insert(text(v["source"]));
  }
}

bool dir_empty(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return true;
  bool empty = true;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

void roll_back(Backend& b, const Created& created) {
  for (auto it = created.containers.rbegin(); it != created.containers.rend(); ++it) {
    try {
      b.engine.remove(*it, true, true);
    } catch (const Error&) {
    }
  }
  for (const auto& n : created.networks) {
    try {
      b.engine.networks().remove(n);
    } catch (const Error&) {
    }
  }
  // A volume this call created goes only while nothing was written to it: data is never dropped.
  for (const auto& v : created.volumes) {
    try {
      auto vol = b.volumes.find(v);
      if (vol && dir_empty(vol->mountpoint)) b.volumes.remove(v, false);
    } catch (const Error&) {
    }
  }
}

std::string create_container(Backend& b, const Project& project, const std::string& service, int number,
                             Created* created, const json& anonymous_volumes = json::object()) {
  json body = create_body(b.engine, project, service, number, false);
  // Recreated containers keep their anonymous volumes: mounted again by name.
  if (!anonymous_volumes.empty())
    for (auto& m : body["HostConfig"]["Mounts"])
      if (m.value("Type", "") == "volume" && m.value("Source", "").empty() &&
          anonymous_volumes.contains(m.value("Target", "")))
        m["Source"] = anonymous_volumes[m.value("Target", "")];
  std::string name = body["Name"];
  say(b, "Container", name, "Creating");
  std::string id;
  try {
    id = b.engine.create(body);
  } catch (const Error& e) {
    throw Error("service \"" + service + "\": " + e.what());
  }
  if (created) created->containers.push_back(id);
  say(b, "Container", name, "Created");
  return id;
}

void start_container(Backend& b, const Container& c) {
  say(b, "Container", c.name, "Starting");
  b.engine.start(c.id);
  say(b, "Container", c.name, "Started");
}

void stop_container(Backend& b, const Container& c, std::optional<int> timeout) {
  say(b, "Container", c.name, "Stopping");
  b.engine.stop(c.id, timeout);
  say(b, "Container", c.name, "Stopped");
}

void remove_container(Backend& b, const Container& c, bool volumes) {
  say(b, "Container", c.name, "Removing");
  b.engine.remove(c.id, true, volumes);
  say(b, "Container", c.name, "Removed");
}

// The anonymous volumes of c by mount point (for a recreate to keep them).
json anonymous_volumes_of(const Container& c) {
  json out = json::object();
  if (!c.mounts.is_array()) return out;
  for (const auto& m : c.mounts)
    if (m.value("Type", "") == "volume" && m.contains("Name") && m.value("Name", "").size() == 64)
      out[m.value("Destination", "")] = m["Name"];
  return out;
}

std::optional<int> stop_timeout(const json& svc) {
  if (!svc.contains("stop_grace_period")) return std::nullopt;
  return static_cast<int>(compose_duration(svc["stop_grace_period"], "stop_grace_period") / 1000000000);
}

// Stops containers together: each gets its stop signal first, then each is waited for (and killed
// after its grace period), so the waits overlap as in compose's parallel stop. The engine's kill
// marks a container as stopped by the user, so a restart policy does not bring it back meanwhile.
void stop_all(Backend& b, const Project& project, const std::vector<Container>& containers,
              std::optional<int> timeout) {
  for (const auto& c : containers) {
    if (!c.running()) continue;
    say(b, "Container", c.name, "Stopping");
    std::string signal = c.config["Config"].value("StopSignal", "");
    if (c.state != "running") continue;
    try {
      b.engine.kill(c.id, engine::parse_signal_name(signal.empty() ? "SIGTERM" : signal));
    } catch (const Error&) {
      // Exited meanwhile: the wait below finds it stopped.
    }
  }
  for (const auto& c : containers) {
    if (!c.running()) continue;
    std::string s = service_of(c);
    std::optional<int> t = timeout;
    if (!t && project.has_service(s)) t = stop_timeout(project.service(s));
    b.engine.stop(c.id, t);
    say(b, "Container", c.name, "Stopped");
  }
}

}  // namespace

std::string service_of(const Container& c) { return label(c, kServiceLabel); }

bool is_current(Backend& b, const json& service, const Container& c) {
  auto image = b.images.find(text(service["image"]));
  return label(c, kConfigHashLabel) == config_hash(service) && !(image && image->id != c.image_id);
}

int number_of(const Container& c) {
  std::string n = label(c, kNumberLabel);
  try {
    return n.empty() ? 0 : std::stoi(n);
  } catch (const std::exception&) {
    return 0;
  }
}

std::vector<Container> project_containers(engine::Engine& engine, const std::string& project,
                                          const std::vector<std::string>& services, bool oneoff) {
  std::vector<Container> out;
  for (auto& c : engine.list()) {
    auto labels = labels_of(c);
    if (labels[kProjectLabel] != project) continue;
    bool is_oneoff = labels[kOneoffLabel] == "True";
    if (is_oneoff != oneoff) continue;
    if (!services.empty() && std::find(services.begin(), services.end(), labels[kServiceLabel]) == services.end())
      continue;
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const Container& a, const Container& b) {
    std::string sa = service_of(a), sb = service_of(b);
    if (sa != sb) return sa < sb;
    if (number_of(a) != number_of(b)) return number_of(a) < number_of(b);
    return a.created_ns < b.created_ns;
  });
  return out;
}

std::string config_hash(const json& service) {
  json copy = service;
  copy.erase("scale");
  copy.erase("deploy");  // replicas change the number of containers, not each one
  std::string digest = image::sha256_digest(copy.dump());
  return digest.substr(digest.find(':') + 1);
}

json create_body(engine::Engine& engine, const Project& project, const std::string& service, int number, bool oneoff) {
  const json& svc = project.service(service);
  std::string where = "services." + service;
  json config = json::object();
  json host = json::object();
  config["Image"] = text(svc["image"]);
  if (svc.contains("command") && !svc["command"].is_null()) config["Cmd"] = svc["command"];
  if (svc.contains("entrypoint") && !svc["entrypoint"].is_null()) config["Entrypoint"] = svc["entrypoint"];
  json env = json::array();
  if (svc.contains("environment"))
    for (auto& [k, v] : svc["environment"].items())
      if (!v.is_null()) env.push_back(k + "=" + text(v));
  config["Env"] = env;
  json labels = svc.value("labels", json::object());
  labels[kProjectLabel] = project.name;
  labels[kServiceLabel] = service;
  labels[kNumberLabel] = std::to_string(number);
  labels[kOneoffLabel] = oneoff ? "True" : "False";
  labels[kConfigHashLabel] = config_hash(svc);
  labels[kWorkingDirLabel] = project.working_dir;
  std::string files;
  for (const auto& f : project.config_files) files += (files.empty() ? "" : ",") + f;
  labels[kConfigFilesLabel] = files;
  labels[kVersionLabel] = kVersion;
  if (svc.contains("depends_on")) {
    std::string deps;
    for (auto& [d, cfg] : svc["depends_on"].items())
      deps += (deps.empty() ? "" : ",") + d + ":" + cfg.value("condition", "service_started") + ":" +
              (cfg.value("restart", false) ? "true" : "false");
    labels["com.docker.compose.depends_on"] = deps;
  }
  config["Labels"] = labels;
  for (auto [key, api] : {std::pair{"user", "User"},
                          {"working_dir", "WorkingDir"},
                          {"hostname", "Hostname"},
                          {"domainname", "Domainname"},
                          {"stop_signal", "StopSignal"},
                          {"mac_address", "MacAddress"}})
    if (svc.contains(key)) config[api] = text(svc[key]);
  if (svc.contains("stop_grace_period")) config["StopTimeout"] = *stop_timeout(svc);
  config["Tty"] = svc.value("tty", false);
  config["OpenStdin"] = svc.value("stdin_open", false);
  json exposed = json::object();
  if (svc.contains("expose"))
    for (const auto& e : svc["expose"]) {
      std::string p = e;
      exposed[p.find('/') == std::string::npos ? p + "/tcp" : p] = json::object();
    }
  json bindings = json::object();
  if (svc.contains("ports"))
    for (const auto& p : svc["ports"]) {
      std::string key = std::to_string(p.value("target", 0)) + "/" + p.value("protocol", "tcp");
      exposed[key] = json::object();
      json binding = {{"HostIp", p.value("host_ip", "")}, {"HostPort", text(p.value("published", json("")))}};
      if (!bindings.contains(key)) bindings[key] = json::array();
      bindings[key].push_back(binding);
    }
  if (!exposed.empty()) config["ExposedPorts"] = exposed;
  if (!bindings.empty()) host["PortBindings"] = bindings;
  if (svc.contains("healthcheck") && svc["healthcheck"].is_object()) {
    const json& hc = svc["healthcheck"];
    json h = json::object();
    if (hc.contains("test")) h["Test"] = hc["test"];
    for (auto [key, api] : {std::pair{"interval", "Interval"},
                            {"timeout", "Timeout"},
                            {"start_period", "StartPeriod"},
                            {"start_interval", "StartInterval"}})
      if (hc.contains(key)) h[api] = compose_duration(hc[key], where + ".healthcheck." + key);
    if (hc.contains("retries")) h["Retries"] = hc["retries"];
    config["Healthcheck"] = h;
  }

  // Mounts: binds, named and anonymous volumes, tmpfs.
  json mounts = json::array();
  if (svc.contains("volumes"))
    for (const auto& v : svc["volumes"]) {
      std::string type = v.value("type", "volume");
      json m = {{"Type", type}, {"Target", text(v.value("target", json("")))}};
      if (v.value("read_only", false)) m["ReadOnly"] = true;
      if (type == "bind") {
        m["Source"] = text(v["source"]);
        json opts = json::object();
        const json bind = v.value("bind", json::object());
        if (bind.value("create_host_path", false)) opts["CreateMountpoint"] = true;
        if (bind.contains("propagation")) opts["Propagation"] = bind["propagation"];
        if (!opts.empty()) m["BindOptions"] = opts;
      } else if (type == "volume") {
        std::string source = text(v.value("source", json("")));
        m["Source"] = source.empty() ? "" : text(project.model["volumes"][source]["name"]);
        const json vol = v.value("volume", json::object());
        json opts = json::object();
        if (vol.value("nocopy", false)) opts["NoCopy"] = true;
        if (vol.contains("subpath")) opts["Subpath"] = vol["subpath"];
        if (!opts.empty()) m["VolumeOptions"] = opts;
      } else if (type == "tmpfs") {
        const json t = v.value("tmpfs", json::object());
        json opts = json::object();
        if (t.contains("size")) opts["SizeBytes"] = size_bytes(t["size"], where + ".volumes.tmpfs.size");
        if (t.contains("mode")) opts["Mode"] = t["mode"];
        if (!opts.empty()) m["TmpfsOptions"] = opts;
      } else {
        throw Error(where + ".volumes: unsupported mount type \"" + type + "\"");
      }
      mounts.push_back(m);
    }
  for (const char* kind : {"secrets", "configs"})
    if (svc.contains(kind))
      for (const auto& ref : svc[kind]) mounts.push_back(file_object_mount(engine, project, kind, ref, where));
  if (!mounts.empty()) host["Mounts"] = mounts;
  if (svc.contains("tmpfs")) {
    json tmpfs = json::object();
    for (const auto& t : svc["tmpfs"]) {
      std::string s = t;
      size_t colon = s.find(':');
      tmpfs[s.substr(0, colon)] = colon == std::string::npos ? "" : s.substr(colon + 1);
    }
    host["Tmpfs"] = tmpfs;
  }
  if (svc.contains("volumes_from")) {
    json from = json::array();
    for (const auto& vf : svc["volumes_from"]) {
      std::string ref = vf, mode;
      bool is_container = ref.rfind("container:", 0) == 0;
      if (is_container) ref = ref.substr(10);
      if (ref.rfind("service:", 0) == 0) ref = ref.substr(8);
      if (size_t colon = ref.find(':'); colon != std::string::npos)
        mode = ref.substr(colon), ref = ref.substr(0, colon);
      std::string name = is_container ? ref : first_container(engine, project, ref).name;
      from.push_back(name + mode);
    }
    host["VolumesFrom"] = from;
  }

  // Networks: the first by priority (then name) is the mode; each gets the service name as alias.
  std::string mode = svc.value("network_mode", "");
  json endpoints = json::object();
  if (mode.rfind("service:", 0) == 0) {
    host["NetworkMode"] = "container:" + first_container(engine, project, mode.substr(8)).id;
  } else if (!mode.empty()) {
    host["NetworkMode"] = mode;
  } else if (svc.contains("networks")) {
    std::vector<std::pair<int, std::string>> order;
    for (auto& [key, cfg] : svc["networks"].items())
      order.emplace_back(-(cfg.is_object() ? cfg.value("priority", 0) : 0), key);
    std::sort(order.begin(), order.end());
    for (const auto& [prio, key] : order) {
      const json& cfg = svc["networks"][key];
      std::string net = text(project.model["networks"][key]["name"]);
      json ep = json::object();
      json aliases = json::array({service});
      if (!oneoff) aliases.push_back(container_name(project, service, number));
      if (cfg.is_object() && cfg.contains("aliases"))
        for (const auto& a : cfg["aliases"]) aliases.push_back(a);
      ep["Aliases"] = aliases;
      if (cfg.is_object() && cfg.contains("ipv4_address")) ep["IPAMConfig"] = {{"IPv4Address", cfg["ipv4_address"]}};
      if (!host.contains("NetworkMode")) host["NetworkMode"] = net;
      endpoints[net] = ep;
    }
  }
  if (svc.contains("restart")) host["RestartPolicy"] = restart_policy(text(svc["restart"]), where + ".restart");
  if (svc.contains("read_only")) host["ReadonlyRootfs"] = svc["read_only"].get<bool>();
  if (svc.contains("init")) host["Init"] = svc["init"].get<bool>();
  if (svc.contains("privileged")) host["Privileged"] = svc["privileged"].get<bool>();
  for (auto [key, api] : {std::pair{"cap_add", "CapAdd"},
                          {"cap_drop", "CapDrop"},
                          {"dns", "Dns"},
                          {"dns_search", "DnsSearch"},
                          {"extra_hosts", "ExtraHosts"},
                          {"security_opt", "SecurityOpt"},
                          {"group_add", "GroupAdd"}})
    if (svc.contains(key)) host[api] = svc[key];
  if (svc.contains("sysctls")) host["Sysctls"] = svc["sysctls"];
  if (svc.contains("devices")) {
    // "/dev/x[:/dev/y[:rwm]]" or {source, target, permissions}, as --device.
    json devices = json::array();
    for (const auto& d : svc["devices"]) {
      std::string source, target, perms = "rwm";
      if (d.is_object()) {
        source = text(d.value("source", json(""))), target = text(d.value("target", json("")));
        if (d.contains("permissions")) perms = text(d["permissions"]);
      } else {
        std::string spec = text(d);
        size_t a = spec.find(':'), b = a == std::string::npos ? a : spec.find(':', a + 1);
        source = spec.substr(0, a);
        if (a != std::string::npos) {
          std::string second = spec.substr(a + 1, b == std::string::npos ? b : b - a - 1);
          bool is_perms = b == std::string::npos && !second.empty() && second[0] != '/';
          (is_perms ? perms : target) = second;
          if (b != std::string::npos) perms = spec.substr(b + 1);
        }
      }
      if (target.empty()) target = source;
      if (source.empty() || source[0] != '/' || target[0] != '/' ||
          perms.find_first_not_of("rwm") != std::string::npos || perms.empty())
        throw Error(where + ".devices: invalid device \"" + (d.is_object() ? d.dump() : text(d)) + "\"");
      devices.push_back({{"PathOnHost", source}, {"PathInContainer", target}, {"CgroupPermissions", perms}});
    }
    host["Devices"] = devices;
  }
  for (auto [key, api] : {std::pair{"pid", "PidMode"},
                          {"ipc", "IpcMode"},
                          {"userns_mode", "UsernsMode"},
                          {"cgroup_parent", "CgroupParent"}})
    if (svc.contains(key)) host[api] = text(svc[key]);
  if (svc.contains("shm_size")) host["ShmSize"] = size_bytes(svc["shm_size"], where + ".shm_size");
  if (svc.contains("mem_limit")) host["Memory"] = size_bytes(svc["mem_limit"], where + ".mem_limit");
  if (svc.contains("memswap_limit")) host["MemorySwap"] = size_bytes(svc["memswap_limit"], where + ".memswap_limit");
  if (svc.contains("mem_reservation"))
    host["MemoryReservation"] = size_bytes(svc["mem_reservation"], where + ".mem_reservation");
  if (svc.contains("cpus")) host["NanoCpus"] = nano_cpus(svc["cpus"], where + ".cpus");
  if (svc.contains("cpu_shares")) host["CpuShares"] = svc["cpu_shares"];
  if (svc.contains("cpuset")) host["CpusetCpus"] = text(svc["cpuset"]);
  if (svc.contains("pids_limit")) host["PidsLimit"] = svc["pids_limit"];
  if (svc.contains("oom_score_adj")) host["OomScoreAdj"] = svc["oom_score_adj"];
  if (svc.contains("deploy") && svc["deploy"].is_object() && svc["deploy"].contains("resources")) {
    const json& res = svc["deploy"]["resources"];
    if (res.contains("limits")) {
      const json& l = res["limits"];
      if (l.contains("cpus")) host["NanoCpus"] = nano_cpus(l["cpus"], where + ".deploy.resources.limits.cpus");
      if (l.contains("memory")) host["Memory"] = size_bytes(l["memory"], where + ".deploy.resources.limits.memory");
      if (l.contains("pids")) host["PidsLimit"] = l["pids"];
    }
    if (res.contains("reservations") && res["reservations"].contains("memory"))
      host["MemoryReservation"] =
          size_bytes(res["reservations"]["memory"], where + ".deploy.resources.reservations.memory");
  }
  if (svc.contains("ulimits")) {
    json ulimits = json::array();
    for (auto& [n, u] : svc["ulimits"].items())
      ulimits.push_back({{"Name", n}, {"Soft", u["soft"]}, {"Hard", u["hard"]}});
    host["Ulimits"] = ulimits;
  }
  if (svc.contains("logging") && svc["logging"].is_object()) {
    json lc = {{"Type", svc["logging"].value("driver", "json-file")}, {"Config", json::object()}};
    if (svc["logging"].contains("options"))
      for (auto& [k, v] : svc["logging"]["options"].items()) lc["Config"][k] = text(v);
    host["LogConfig"] = lc;
  }
  json body = {
      {"Name", oneoff ? "" : container_name(project, service, number)}, {"Config", config}, {"HostConfig", host}};
  if (!endpoints.empty()) body["NetworkingConfig"] = {{"EndpointsConfig", endpoints}};
  return body;
}

void build_service(Backend& b, const Project& project, const std::string& service) {
  const json& svc = project.service(service);
  if (!svc.contains("build")) return;
  if (!b.build_image) throw Error("service \"" + service + "\": building images is not available here");
  b.build_image(service, svc["build"], text(svc["image"]));
}

void up(Backend& b, const Project& project, const UpOptions& options) {
  std::vector<std::string> services = options.no_deps ? options.services : project.with_dependencies(options.services);
  if (options.services.empty()) services = project.ordered_services();
  auto scale_of = [&](const std::string& s) {
    return options.scale.count(s) ? options.scale.at(s) : project.service(s).value("scale", 1);
  };
  // Orphans: containers of this project whose service is gone from the files.
  std::vector<Container> orphans;
  for (auto& c : project_containers(b.engine, project.name, {}))
    if (!project.has_service(service_of(c))) orphans.push_back(c);
  if (!orphans.empty() && !options.remove_orphans) {
    std::string names;
    for (const auto& c : orphans) names += (names.empty() ? "" : " ") + c.name;
    b.progress << "WARN Found orphan containers ([" << names << "]) for this project. If you removed or renamed this "
               << "service in your compose file, you can run this command with the --remove-orphans flag to clean "
               << "it up.\n";
  }
  // Everything that can be refused before anything is created: images, scale.
  for (const auto& s : services) {
    const json& svc = project.service(s);
    int scale = scale_of(s);
    if (scale > 1 && svc.contains("container_name"))
      throw Error("services." + s + ": container_name \"" + text(svc["container_name"]) +
                  "\" is set, so the service cannot be scaled to " + std::to_string(scale));
    std::string policy = svc.value("pull_policy", "missing");
    if (svc.contains("build") &&
        (options.build || policy == "build" || (policy != "always" && !b.images.find(text(svc["image"]))))) {
      build_service(b, project, s);
      continue;
    }
    if (policy == "never" && !b.images.find(text(svc["image"])))
      throw Error("service \"" + s + "\": No such image: " + text(svc["image"]));
    if (policy == "build") throw Error("service \"" + s + "\": pull_policy build needs a build section");
    if (policy != "never") b.ensure_image(text(svc["image"]));
  }
  std::set<std::string> networks, volumes;
  needed_resources(project, services, networks, volumes);
  Created created;
  try {
    if (options.remove_orphans)
      for (const auto& c : orphans) remove_container(b, c, false);
    ensure_networks(b, project, networks, &created);
    ensure_volumes(b, project, volumes, &created);
    std::set<std::string> updated;  // services whose containers this call recreated or restarted
    for (const auto& s : services) {
      const json& svc = project.service(s);
      // depends_on.restart: a dependency that this call updated restarts the service too.
      bool restart_for_dependency = false;
      if (svc.contains("depends_on"))
        for (auto& [dep, cfg] : svc["depends_on"].items()) {
          // A dependency scaled to 0 has nothing to wait for (docker compose skips it too).
          if (project.has_service(dep) && !options.no_start && scale_of(dep) != 0)
            wait_condition(b, project, dep, cfg.value("condition", "service_started"), options.wait_timeout_ns);
          restart_for_dependency = restart_for_dependency || (cfg.value("restart", false) && updated.count(dep));
        }
      int scale = scale_of(s);
      auto existing = project_containers(b.engine, project.name, {s});
      std::set<int> have;
      for (const auto& c : existing) {
        int n = number_of(c);
        if (n > scale || n < 1 || have.count(n)) {
          if (c.running()) stop_container(b, c, stop_timeout(svc));
          remove_container(b, c, false);
          continue;
        }
        have.insert(n);
        bool stale = options.force_recreate || (!is_current(b, svc, c) && !options.no_recreate);
        if (stale) {
          say(b, "Container", c.name, "Recreate");
          if (c.running()) b.engine.stop(c.id, stop_timeout(svc));
          json anonymous = anonymous_volumes_of(c);
          // The old container steps aside under a temporary name until the new one exists.
          std::string temp = c.id.substr(0, 12) + "_" + c.name;
          b.engine.rename(c.id, temp);
          std::string id;
          try {
            id = create_container(b, project, s, n, &created, anonymous);
          } catch (...) {
            b.engine.rename(c.id, c.name);
            throw;
          }
          b.engine.remove(c.id, true, false);
          say(b, "Container", c.name, "Recreated");
          updated.insert(s);
          if (!options.no_start) start_container(b, b.engine.get(id));
        } else if (!c.running() && !options.no_start) {
          start_container(b, c);
        } else if (restart_for_dependency && !options.no_start) {
          say(b, "Container", c.name, "Restarting");
          b.engine.stop(c.id, stop_timeout(svc));
          b.engine.start(c.id);
          say(b, "Container", c.name, "Started");
          updated.insert(s);
        } else {
          say(b, "Container", c.name, "Running");
        }
      }
      for (int n = 1; n <= scale; n++) {
        if (have.count(n)) continue;
        std::string id = create_container(b, project, s, n, &created);
        if (!options.no_start) start_container(b, b.engine.get(id));
      }
    }
  } catch (...) {
    roll_back(b, created);
    throw;
  }
}

void down(Backend& b, const Project& project, const DownOptions& options) {
  auto all = project_containers(b.engine, project.name, {});
  auto oneoffs = project_containers(b.engine, project.name, {}, true);
  all.insert(all.end(), oneoffs.begin(), oneoffs.end());
  std::vector<Container> mine, orphans;
  for (auto& c : all) (project.from_labels || project.has_service(service_of(c)) ? mine : orphans).push_back(c);
  if (options.remove_orphans)
    mine.insert(mine.end(), orphans.begin(), orphans.end());
  else if (!orphans.empty()) {
    std::string names;
    for (const auto& c : orphans) names += (names.empty() ? "" : " ") + c.name;
    b.progress << "WARN Found orphan containers ([" << names << "]) for this project. If you removed or renamed this "
               << "service in your compose file, you can run this command with the --remove-orphans flag to clean "
               << "it up.\n";
  }
  // Dependents stop first: reverse dependency order, by service.
  auto order = project.ordered_services();
  std::reverse(order.begin(), order.end());
  std::stable_sort(mine.begin(), mine.end(), [&](const Container& x, const Container& y) {
    auto rank = [&](const Container& c) {
      auto it = std::find(order.begin(), order.end(), service_of(c));
      return it == order.end() ? -1 : static_cast<int>(it - order.begin());
    };
    return rank(x) < rank(y);
  });
  stop_all(b, project, mine, options.timeout);
  for (const auto& c : mine) remove_container(b, c, options.volumes);
  // Without a compose file, the networks and volumes labelled with the project go.
  std::vector<std::string> network_names, volume_names;
  if (project.from_labels) {
    for (const auto& n : b.engine.networks().list())
      if (auto it = n.labels.find(kProjectLabel); it != n.labels.end() && it->second == project.name)
        network_names.push_back(n.name);
    for (const auto& v : b.volumes.list())
      if (auto it = v.labels.find(kProjectLabel); it != v.labels.end() && it->second == project.name)
        volume_names.push_back(v.name);
  }
  for (auto& [key, cfg] : project.model["networks"].items())
    if (!cfg.value("external", false)) network_names.push_back(text(cfg["name"]));
  for (auto& [key, cfg] : project.model["volumes"].items())
    if (!cfg.value("external", false)) volume_names.push_back(text(cfg["name"]));
  for (const auto& name : network_names) {
    auto n = b.engine.networks().find(name);
    if (!n) continue;
    say(b, "Network", name, "Removing");
    b.engine.networks().remove(name);
    say(b, "Network", name, "Removed");
  }
  // Secrets and configs berth wrote for the project (their sources are the compose file's).
  std::error_code ec;
  std::filesystem::remove_all(b.engine.root() + "/compose/" + project.name, ec);
  if (options.volumes)
    for (const auto& name : volume_names) {
      if (!b.volumes.find(name)) continue;
      say(b, "Volume", name, "Removing");
      b.volumes.remove(name, false);
      say(b, "Volume", name, "Removed");
    }
}

void wait_ready(Backend& b, const Project& project, const std::string& service, int64_t timeout_ns) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns > 0 ? timeout_ns : INT64_MAX / 4);
  for (;;) {
    bool ready = true;
    for (const auto& c : project_containers(b.engine, project.name, {service})) {
      if (!c.running()) {
        // A one-shot service that finished well is done, as compose's --wait sees it.
        if (c.state == "exited" && c.exit_code == 0) continue;
        throw Error("container " + c.name + " exited (" + std::to_string(c.exit_code) + ")");
      }
      if (c.health.is_object()) {
        std::string status = c.health.value("Status", "");
        if (status == "unhealthy") throw Error("container " + c.name + " is unhealthy");
        ready = ready && status == "healthy";
      }
    }
    if (ready) return;
    if (std::chrono::steady_clock::now() > deadline)
      throw Error("timed out waiting for service \"" + service + "\" to be healthy");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void start(Backend& b, const Project& project, const std::vector<std::string>& services) {
  if (project.from_labels)
    for (const auto& c : project_containers(b.engine, project.name, services))
      if (!c.running()) start_container(b, c);
  for (const auto& s : project.with_dependencies(services))
    for (const auto& c : project_containers(b.engine, project.name, {s}))
      if (!c.running()) start_container(b, c);
}

void stop(Backend& b, const Project& project, const std::vector<std::string>& services, std::optional<int> timeout) {
  auto order = project.ordered_services();
  std::reverse(order.begin(), order.end());
  std::vector<Container> running;
  if (project.from_labels)
    for (auto& c : project_containers(b.engine, project.name, services))
      if (c.running()) running.push_back(std::move(c));
  for (const auto& s : order) {
    if (!services.empty() && std::find(services.begin(), services.end(), s) == services.end()) continue;
    for (auto& c : project_containers(b.engine, project.name, {s}))
      if (c.running()) running.push_back(std::move(c));
  }
  stop_all(b, project, running, timeout);
}

void restart(Backend& b, const Project& project, const std::vector<std::string>& services, std::optional<int> timeout) {
  // The named services, and what depends on them with depends_on.restart (transitively).
  std::set<std::string> chosen(services.begin(), services.end());
  for (const auto& s : project.ordered_services()) {
    const json& svc = project.service(s);
    if (svc.contains("depends_on"))
      for (auto& [dep, cfg] : svc["depends_on"].items())
        if (cfg.value("restart", false) && chosen.count(dep)) chosen.insert(s);
  }
  for (const auto& s : project.ordered_services()) {
    if (!services.empty() && !chosen.count(s)) continue;
    for (const auto& c : project_containers(b.engine, project.name, {s})) {
      say(b, "Container", c.name, "Restarting");
      if (c.running()) b.engine.stop(c.id, timeout ? timeout : stop_timeout(project.service(s)));
      b.engine.start(c.id);
      say(b, "Container", c.name, "Started");
    }
  }
}

void remove(Backend& b, const Project& project, const std::vector<std::string>& services, bool stop_first,
            bool volumes) {
  for (const auto& c : project_containers(b.engine, project.name, services)) {
    if (c.running()) {
      if (!stop_first) continue;
      stop_container(b, c,
                     project.has_service(service_of(c)) ? stop_timeout(project.service(service_of(c))) : std::nullopt);
    }
    remove_container(b, c, volumes);
  }
}

std::string create_oneoff(Backend& b, const Project& project, const std::string& service, const json& overrides,
                          bool no_deps, bool service_ports) {
  std::vector<std::string> deps = project.with_dependencies({service});
  deps.erase(std::remove(deps.begin(), deps.end(), service), deps.end());
  if (!no_deps && !deps.empty()) {
    UpOptions up_options;
    up_options.services = deps;
    up(b, project, up_options);
  }
  b.ensure_image(text(project.service(service)["image"]));
  std::set<std::string> networks, volumes;
  needed_resources(project, {service}, networks, volumes);
  ensure_networks(b, project, networks, nullptr);
  ensure_volumes(b, project, volumes, nullptr);
  json body = create_body(b.engine, project, service, 1, true);
  for (auto& [k, v] : overrides.items()) {
    if (k == "Name")
      body["Name"] = v;
    else if (k == "Env")
      for (const auto& e : v) body["Config"]["Env"].push_back(e);
    else if (k == "Labels")
      for (auto& [lk, lv] : v.items()) body["Config"]["Labels"][lk] = lv;
    else
      body["Config"][k] = v;
  }
  if (!service_ports) body["HostConfig"].erase("PortBindings");
  return b.engine.create(body);
}

}  // namespace berth::compose
