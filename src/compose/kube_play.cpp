// `kube play`: Kubernetes objects → a compose project, run by the compose module on this machine.
//
//   Pod, Deployment (replicas), StatefulSet → a service per container: the workload's name (or
//       "<workload>-<container>" when the pod has several; the others join the first one's network
//       namespace, as containers of a pod share localhost). A StatefulSet's pods are services
//       "<name>" (one replica) or "<name>-<i>", each with its own claims "<template>-<name>-<i>".
//       initContainers → one-shot services the containers wait for.
//   Service            → a network alias of the pods its selector matches; NodePort and
//                        LoadBalancer ports are published on the host (nodePort, else port).
//   hostPort           → a published port;  containerPort alone → expose
//   PersistentVolumeClaim, claims → named volumes PROJECT_<claim> (so `compose up` of the same
//                        project and `kube play` of its manifests share the data)
//   emptyDir           → tmpfs (medium Memory) or a named volume labelled berth.kube.emptydir
//   hostPath           → a bind mount;  ConfigMap / Secret volumes → files under
//                        <root>/kube/<project>/, bind-mounted read-only
//   env, envFrom       → environment (configMapKeyRef, secretKeyRef resolved from the files)
//   exec probes        → healthcheck (readiness first);  resources.limits → cpus, mem_limit
//   annotations berth/init, berth/depends-on (written by compose kube) → init, depends_on
// The compose document built here goes through the same checks as a compose file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "compose/kube.hpp"
#include "image/auth_config.hpp"
#include "image/store.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::compose {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A Kubernetes quantity ("500m", "1.5", "128Mi", "1G", "1e3") as a number of units.
double parse_quantity(const json& v, const std::string& where) {
  if (v.is_number()) return v.get<double>();
  std::string s = scalar_text(v);
  static const std::pair<const char*, double> suffixes[] = {{"Ki", 1024.0},
                                                            {"Mi", 1048576.0},
                                                            {"Gi", 1073741824.0},
                                                            {"Ti", 1099511627776.0},
                                                            {"Pi", 1125899906842624.0},
                                                            {"Ei", 1152921504606846976.0},
                                                            {"m", 1e-3},
                                                            {"k", 1e3},
                                                            {"M", 1e6},
                                                            {"G", 1e9},
                                                            {"T", 1e12},
                                                            {"P", 1e15},
                                                            {"E", 1e18}};
  double scale = 1;
  for (const auto& [suffix, factor] : suffixes) {
    std::string sfx = suffix;
    if (s.size() > sfx.size() && s.compare(s.size() - sfx.size(), sfx.size(), sfx) == 0) {
      scale = factor;
      s = s.substr(0, s.size() - sfx.size());
      break;
    }
  }
  size_t used = 0;
  double number = 0;
  try {
    number = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || number < 0) throw Error(where + ": invalid quantity \"" + scalar_text(v) + "\"");
  return number * scale;
}

// Kubernetes' $(VAR) references: to variables defined before (env) or in the container's
// environment (command, args); unknown ones stay as written; $$ is a literal $.
std::string expand_references(const std::string& s, const json& env) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
      out += '$';
      i += 2;
    } else if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '(' && s.find(')', i + 2) != std::string::npos) {
      size_t close = s.find(')', i + 2);
      std::string name = s.substr(i + 2, close - i - 2);
      out += env.contains(name) ? scalar_text(env[name]) : s.substr(i, close - i + 1);
      i = close + 1;
    } else {
      out += s[i++];
    }
  }
  return out;
}

struct Planner {
  Planner(std::string source_in, std::string project_in, std::string files_root_in, const Warn& warn_in)
      : source(std::move(source_in)),
        project(std::move(project_in)),
        files_root(std::move(files_root_in)),
        warn(warn_in) {}
  std::string source, project, files_root;
  const Warn& warn;
  std::map<std::string, json> config_maps, secrets;                   // name → {key: value}
  std::vector<std::pair<json, std::string>> workloads, services_k8s;  // with their files
  std::map<std::string, std::string> claims;  // claim → compose volume key (berth/volume, else the claim)
  std::vector<std::string> create_files;      // hostPath FileOrCreate
  json services = json::object(), volumes = json::object();
  std::vector<KubeFile> files;
  // compose service → its pod's labels, for Service selectors
  std::map<std::string, json> pod_labels;
  std::map<std::string, std::string> first_of_pod;  // compose service → the pod's first service
  std::set<std::string> stateful_pods;

  void collect(const json& o) {
    if (!o.is_object()) throw Error(source + ": a document is not a Kubernetes object (a mapping)");
    std::string kind = o.value("kind", "");
    if (kind == "List") {
      for (const auto& item : o.value("items", json::array())) collect(item);
      return;
    }
    if (!o.contains("metadata") || !o["metadata"].is_object() || !o["metadata"].contains("name") ||
        !o["metadata"]["name"].is_string() || o["metadata"]["name"].get<std::string>().empty())
      throw Error(source + ": " + (kind.empty() ? std::string("object") : kind) + ": metadata.name is required");
    std::string name = o["metadata"]["name"];
    if (kind == "ConfigMap") {
      json data = json::object();
      const json plain = o.value("data", json::object()), binary = o.value("binaryData", json::object());
      for (auto& [k, v] : plain.items()) data[k] = scalar_text(v);
      for (auto& [k, v] : binary.items()) data[k] = image::base64_decode(scalar_text(v));
      config_maps[name] = data;
    } else if (kind == "Secret") {
      json data = json::object();
      const json encoded = o.value("data", json::object()), plain = o.value("stringData", json::object());
      for (auto& [k, v] : encoded.items()) {
        try {
          data[k] = image::base64_decode(scalar_text(v));
        } catch (const Error&) {
          throw Error(source + ": Secret " + name + ": data." + k + ": not valid base64");
        }
      }
      for (auto& [k, v] : plain.items()) data[k] = scalar_text(v);
      secrets[name] = data;
    } else if (kind == "PersistentVolumeClaim") {
      const json annotations = o["metadata"].value("annotations", json::object());
      std::string key = scalar_text(annotations.value("berth/volume", json("")));
      claims[name] = key.empty() ? name : key;
    } else if (kind == "Service") {
      services_k8s.emplace_back(o, source);
    } else if (kind == "Pod" || kind == "Deployment" || kind == "StatefulSet") {
      workloads.emplace_back(o, source);
    } else {
      warn(source + ": " + (kind.empty() ? std::string("an object without kind") : kind + " " + name) +
           " is not supported by kube play; ignored");
    }
  }

  std::string lookup(const std::map<std::string, json>& store, const char* kind, const json& ref,
                     const std::string& where, bool& found) {
    std::string name = ref.value("name", ""), key = ref.value("key", "");
    found = false;
    auto it = store.find(name);
    if (it != store.end() && it->second.contains(key)) {
      found = true;
      return it->second[key];
    }
    if (ref.value("optional", false)) return "";
    throw Error(where + ": " + kind + " " + name + (it == store.end() ? " not found" : " has no key " + key));
  }

  void volume(const std::string& key, const json& labels = json()) {
    json cfg = json::object();
    if (!labels.is_null()) cfg["labels"] = labels;
    volumes[key] = cfg;
  }

  // A ConfigMap or Secret volume: its files written under files_root/<service>/<volume>/.
  std::string materialize(const json& data, const json& spec, const std::string& dir, const std::string& where) {
    int default_mode = spec.value("defaultMode", 0644);
    if (spec.contains("items")) {
      for (const auto& item : spec["items"]) {
        std::string key = item.value("key", ""), path = item.value("path", key);
        if (!data.contains(key)) {
          if (spec.value("optional", false)) continue;
          throw Error(where + ": key " + key + " not found");
        }
        if (path.empty() || path[0] == '/' || fs::path(path).lexically_normal().string().rfind("..", 0) == 0)
          throw Error(where + ": item path \"" + path + "\" must be relative and stay inside the volume");
        files.push_back(
            {dir + "/" + path, scalar_text(data[key]), static_cast<unsigned>(item.value("mode", default_mode))});
      }
    } else {
      for (auto& [k, v] : data.items()) {
        if (k.find('/') != std::string::npos || k == "." || k == "..")
          throw Error(where + ": key \"" + k + "\" is not a valid file name");
        files.push_back({dir + "/" + k, scalar_text(v), static_cast<unsigned>(default_mode)});
      }
    }
    return dir;
  }

  json container_service(const json& c, const json& pod, const std::string& workload, const std::string& service,
                         const std::string& where, const std::map<std::string, json>& pod_volumes) {
    json svc = json::object();
    if (!c.contains("image") || !c["image"].is_string() || c["image"].get<std::string>().empty())
      throw Error(where + ".image: required");
    svc["image"] = c["image"];
    if (c.contains("command")) svc["entrypoint"] = c["command"];
    if (c.contains("args")) svc["command"] = c["args"];
    if (c.contains("workingDir")) svc["working_dir"] = c["workingDir"];
    if (c.value("tty", false)) svc["tty"] = true;
    if (c.value("stdin", false)) svc["stdin_open"] = true;
    std::string pull = c.value("imagePullPolicy", "");
    // Kubernetes would pull a ":latest" image each time; here a local image is used when present.
    svc["pull_policy"] = pull == "Always" ? "always" : pull == "Never" ? "never" : "missing";

    json env = json::object();
    if (c.contains("envFrom"))
      for (const auto& from : c["envFrom"]) {
        std::string prefix = from.value("prefix", "");
        for (auto [field, store, kind] :
             {std::tuple{"configMapRef", &config_maps, "ConfigMap"}, std::tuple{"secretRef", &secrets, "Secret"}}) {
          if (!from.contains(field)) continue;
          std::string name = from[field].value("name", "");
          auto it = store->find(name);
          if (it == store->end()) {
            if (from[field].value("optional", false)) continue;
            throw Error(where + ".envFrom: " + kind + " " + name + " not found");
          }
          for (auto& [k, v] : it->second.items()) env[prefix + k] = v;
        }
      }
    if (c.contains("env"))
      for (const auto& e : c["env"]) {
        std::string name = e.value("name", "");
        if (name.empty()) throw Error(where + ".env: name is required");
        if (e.contains("value")) {
          env[name] = expand_references(scalar_text(e["value"]), env);
        } else if (e.contains("valueFrom")) {
          const json& from = e["valueFrom"];
          bool found = false;
          std::string value;
          if (from.contains("configMapKeyRef"))
            value = lookup(config_maps, "ConfigMap", from["configMapKeyRef"], where + ".env." + name, found);
          else if (from.contains("secretKeyRef"))
            value = lookup(secrets, "Secret", from["secretKeyRef"], where + ".env." + name, found);
          else if (from.contains("fieldRef") && from["fieldRef"].value("fieldPath", "") == "metadata.name")
            value = service, found = true;
          else
            warn(where + ".env." + name + ": this valueFrom is not supported by kube play; left unset");
          if (found) env[name] = value;
        } else {
          env[name] = "";
        }
      }
    if (!env.empty()) svc["environment"] = env;
    for (const char* key : {"entrypoint", "command"})
      if (svc.contains(key) && svc[key].is_array())
        for (auto& part : svc[key]) part = expand_references(scalar_text(part), env);

    json ports = json::array(), expose = json::array();
    for (const auto& p : c.value("ports", json::array())) {
      if (!p.contains("containerPort") || !p["containerPort"].is_number_integer())
        throw Error(where + ".ports: containerPort is required (an integer)");
      std::string proto = p.value("protocol", "TCP");
      std::transform(proto.begin(), proto.end(), proto.begin(), ::tolower);
      if (p.contains("hostPort")) {
        json port = {{"target", p["containerPort"]}, {"published", scalar_text(p["hostPort"])}, {"protocol", proto}};
        if (p.contains("hostIP")) port["host_ip"] = p["hostIP"];
        ports.push_back(port);
      } else {
        expose.push_back(scalar_text(p["containerPort"]) + "/" + proto);
      }
    }
    if (!ports.empty()) svc["ports"] = ports;
    if (!expose.empty()) svc["expose"] = expose;

    // The container's securityContext over the pod's.
    json security = pod.value("securityContext", json::object());
    const json own = c.value("securityContext", json::object());
    for (auto& [k, v] : own.items()) security[k] = v;
    if (security.contains("runAsUser"))
      svc["user"] = scalar_text(security["runAsUser"]) +
                    (security.contains("runAsGroup") ? ":" + scalar_text(security["runAsGroup"]) : std::string());
    if (security.value("privileged", false)) svc["privileged"] = true;
    if (security.value("readOnlyRootFilesystem", false)) svc["read_only"] = true;
    if (security.contains("capabilities")) {
      if (security["capabilities"].contains("add")) svc["cap_add"] = security["capabilities"]["add"];
      if (security["capabilities"].contains("drop")) svc["cap_drop"] = security["capabilities"]["drop"];
    }
    if (pod.contains("securityContext") && pod["securityContext"].contains("sysctls")) {
      json sysctls = json::object();
      for (const auto& s : pod["securityContext"]["sysctls"])
        sysctls[s.value("name", "")] = scalar_text(s.value("value", json("")));
      svc["sysctls"] = sysctls;
    }

    const json limits = c.value("resources", json::object()).value("limits", json::object());
    const json requests = c.value("resources", json::object()).value("requests", json::object());
    if (limits.contains("cpu")) {
      double cpus = parse_quantity(limits["cpu"], where + ".resources.limits.cpu");
      svc["cpus"] = std::round(cpus * 1000) / 1000;
    }
    if (limits.contains("memory"))
      svc["mem_limit"] = static_cast<int64_t>(parse_quantity(limits["memory"], where + ".resources.limits.memory"));
    if (requests.contains("memory"))
      svc["mem_reservation"] =
          static_cast<int64_t>(parse_quantity(requests["memory"], where + ".resources.requests.memory"));

    for (const char* kind : {"readinessProbe", "livenessProbe", "startupProbe"}) {
      if (!c.contains(kind)) continue;
      const json& probe = c[kind];
      if (!probe.contains("exec")) {
        warn(where + "." + kind + ": only exec probes are carried over; left out");
        continue;
      }
      json test = json::array({"CMD"});
      for (const auto& a : probe["exec"].value("command", json::array())) test.push_back(scalar_text(a));
      json hc = {{"test", test},
                 {"interval", std::to_string(probe.value("periodSeconds", 10)) + "s"},
                 {"timeout", std::to_string(probe.value("timeoutSeconds", 1)) + "s"},
                 {"retries", probe.value("failureThreshold", 3)}};
      if (probe.contains("initialDelaySeconds"))
        hc["start_period"] = std::to_string(probe["initialDelaySeconds"].get<int>()) + "s";
      svc["healthcheck"] = hc;
      break;
    }

    json mounts = json::array();
    for (const auto& m : c.value("volumeMounts", json::array())) {
      std::string vname = m.value("name", ""), target = m.value("mountPath", "");
      if (target.empty() || target[0] != '/')
        throw Error(where + ".volumeMounts." + vname + ": mountPath must be an absolute path");
      auto it = pod_volumes.find(vname);
      if (it == pod_volumes.end())
        throw Error(where + ".volumeMounts: volume " + vname + " is not among the pod's volumes");
      json mount = it->second;  // the compose volume, its target to fill in
      mount["target"] = target;
      bool ro = m.value("readOnly", false) || mount.value("read_only", false);
      if (ro) mount["read_only"] = true;
      std::string sub = m.value("subPath", "");
      if (!sub.empty()) {
        if (sub[0] == '/' || fs::path(sub).lexically_normal().string().rfind("..", 0) == 0)
          throw Error(where + ".volumeMounts." + vname + ": subPath \"" + sub + "\" must stay inside the volume");
        if (mount["type"] == "bind")
          mount["source"] = scalar_text(mount["source"]) + "/" + sub;
        else if (mount["type"] == "volume")
          mount["volume"] = {{"subpath", sub}};
      }
      mounts.push_back(mount);
    }
    if (!mounts.empty()) svc["volumes"] = mounts;
    (void)workload;
    return svc;
  }

  // The pod's volumes as compose mounts (without target); claim_suffix: a StatefulSet's "-name-i".
  // templates: claim template → the volume key its claim uses for this pod.
  std::map<std::string, json> pod_volume_mounts(const json& pod, const std::string& owner, const std::string& where,
                                                const std::map<std::string, std::string>& templates) {
    std::map<std::string, json> out;
    for (const auto& v : pod.value("volumes", json::array())) {
      std::string name = v.value("name", "");
      if (name.empty()) throw Error(where + ".volumes: name is required");
      std::string vw = where + ".volumes." + name;
      if (v.contains("persistentVolumeClaim")) {
        std::string claim = v["persistentVolumeClaim"].value("claimName", "");
        if (claim.empty()) throw Error(vw + ".persistentVolumeClaim.claimName: required");
        auto known = claims.find(claim);
        std::string key = known == claims.end() ? claim : known->second;
        if (known == claims.end())
          warn(vw + ": claim " + claim + " is not in the files; a volume " + project + "_" + claim + " is used");
        volume(key);
        json m = {{"type", "volume"}, {"source", key}};
        if (v["persistentVolumeClaim"].value("readOnly", false)) m["read_only"] = true;
        out[name] = m;
      } else if (v.contains("hostPath")) {
        std::string path = v["hostPath"].value("path", ""), type = v["hostPath"].value("type", "");
        if (path.empty() || path[0] != '/') throw Error(vw + ".hostPath.path: must be an absolute path");
        struct stat st {};
        bool exists = ::stat(path.c_str(), &st) == 0;
        if ((type == "Directory" && !(exists && S_ISDIR(st.st_mode))) ||
            (type == "File" && !(exists && S_ISREG(st.st_mode))) ||
            (type == "Socket" && !(exists && S_ISSOCK(st.st_mode))))
          throw Error(vw + ".hostPath: " + path + " is not an existing " + type);
        json m = {{"type", "bind"}, {"source", path}};
        if (type.empty() || type == "DirectoryOrCreate") m["bind"] = {{"create_host_path", true}};
        if (type == "FileOrCreate" && !exists) create_files.push_back(path);  // once the plan holds
        out[name] = m;
      } else if (v.contains("emptyDir")) {
        const json& dir = v["emptyDir"];
        if (dir.value("medium", "") == "Memory") {
          json m = {{"type", "tmpfs"}};
          if (dir.contains("sizeLimit"))
            m["tmpfs"] = {{"size", static_cast<int64_t>(parse_quantity(dir["sizeLimit"], vw + ".emptyDir.sizeLimit"))}};
          out[name] = m;
        } else {
          std::string key = owner + "-" + name;
          volume(key, json{{kEmptyDirLabel, "true"}});
          out[name] = {{"type", "volume"}, {"source", key}};
        }
      } else if (v.contains("configMap") || v.contains("secret")) {
        bool is_cm = v.contains("configMap");
        const json& spec = is_cm ? v["configMap"] : v["secret"];
        std::string ref = is_cm ? spec.value("name", "") : spec.value("secretName", "");
        const auto& store = is_cm ? config_maps : secrets;
        auto it = store.find(ref);
        json data = json::object();
        if (it != store.end())
          data = it->second;
        else if (!spec.value("optional", false))
          throw Error(vw + ": " + (is_cm ? "ConfigMap " : "Secret ") + ref + " not found");
        std::string dir = materialize(data, spec, files_root + "/" + owner + "/" + name, vw);
        out[name] = {{"type", "bind"}, {"source", dir}, {"read_only", true}};
      } else if (templates.count(name)) {
        // A pod volume named like a claim template is that claim (the template wins below).
      } else {
        std::string kind = "unknown";
        for (auto& [k, val] : v.items())
          if (k != "name") kind = k;
        throw Error(vw + ": volume type " + kind + " is not supported by kube play");
      }
    }
    for (const auto& [t, key] : templates) {
      volume(key);
      out[t] = {{"type", "volume"}, {"source", key}};
    }
    return out;
  }

  void workload(const json& o, const std::string& file) {
    source = file;
    std::string kind = o["kind"], name = o["metadata"]["name"];
    std::string where = source + ": " + kind + " " + name;
    json pod, pod_meta;
    int replicas = 1;
    if (kind == "Pod") {
      pod = o.value("spec", json::object());
      pod_meta = o["metadata"];
    } else {
      const json spec = o.value("spec", json::object());
      if (!spec.contains("template") || !spec["template"].is_object())
        throw Error(where + ": spec.template is required");
      pod = spec["template"].value("spec", json::object());
      pod_meta = spec["template"].value("metadata", json::object());
      replicas = spec.value("replicas", 1);
      if (replicas < 0) throw Error(where + ": spec.replicas must not be negative");
      json labels = pod_meta.value("labels", json::object());
      const json match = spec.value("selector", json::object()).value("matchLabels", json::object());
      for (auto& [k, v] : match.items())
        if (!labels.contains(k) || labels[k] != v)
          throw Error(where + ": spec.selector.matchLabels " + k + "=" + scalar_text(v) +
                      " does not match the template's labels");
    }
    if (!pod.contains("containers") || !pod["containers"].is_array() || pod["containers"].empty())
      throw Error(where + ": spec" + std::string(kind == "Pod" ? "" : ".template.spec") +
                  ".containers: at least one container is required");
    std::string restart = "always";
    if (kind == "Pod") {
      std::string policy = pod.value("restartPolicy", "Always");
      restart = policy == "Never" ? "no" : policy == "OnFailure" ? "on-failure" : "always";
    }
    std::vector<std::string> templates;
    if (kind == "StatefulSet")
      for (const auto& t : o["spec"].value("volumeClaimTemplates", json::array()))
        templates.push_back(t.value("metadata", json::object()).value("name", ""));
    // berth/volumes (compose kube): "template=key,…", the compose volumes a one-replica
    // StatefulSet's claims stand for, so that its data is the one compose kept.
    std::map<std::string, std::string> compose_keys;
    if (replicas == 1) {
      std::string list =
          scalar_text(o["metadata"].value("annotations", json::object()).value("berth/volumes", json("")));
      std::stringstream in(list);
      std::string one;
      while (std::getline(in, one, ','))
        if (size_t eq = one.find('='); eq != std::string::npos && eq > 0 && eq + 1 < one.size())
          compose_keys[one.substr(0, eq)] = one.substr(eq + 1);
    }
    const json annotations = pod_meta.value("annotations", json::object());

    // A StatefulSet's pods each have their own name and claims; others are one service, scaled.
    int instances = kind == "StatefulSet" ? replicas : 1;
    for (int i = 0; i < instances; i++) {
      std::string owner = kind == "StatefulSet" && replicas > 1 ? name + "-" + std::to_string(i) : name;
      std::map<std::string, std::string> claim_keys;  // Kubernetes names them <template>-<name>-<i>
      for (const auto& t : templates)
        claim_keys[t] = compose_keys.count(t) ? compose_keys[t] : t + "-" + name + "-" + std::to_string(i);
      auto pod_volumes = pod_volume_mounts(pod, owner, where + ": spec", claim_keys);
      std::vector<std::string> inits;
      for (const auto& ic : pod.value("initContainers", json::array())) {
        std::string iname = owner + "-init-" + ic.value("name", "");
        json svc =
            container_service(ic, pod, name, iname, where + ": initContainers." + ic.value("name", ""), pod_volumes);
        svc["restart"] = "no";
        // A pod that does not run (replicas 0) has no init containers either.
        if (kind != "StatefulSet" && replicas == 0) svc["deploy"] = {{"replicas", 0}};
        if (!inits.empty()) svc["depends_on"] = {{inits.back(), {{"condition", "service_completed_successfully"}}}};
        services[iname] = svc;
        inits.push_back(iname);
      }
      std::string first;
      const json& containers = pod["containers"];
      for (size_t ci = 0; ci < containers.size(); ci++) {
        const json& c = containers[ci];
        std::string cname = c.value("name", "");
        if (cname.empty()) throw Error(where + ": containers." + std::to_string(ci) + ".name: required");
        std::string sname = containers.size() == 1 ? owner : owner + "-" + cname;
        json svc = container_service(c, pod, name, sname, where + ": containers." + cname, pod_volumes);
        svc["restart"] = restart;
        if (kind != "StatefulSet" && replicas != 1) svc["deploy"] = {{"replicas", replicas}};
        if (!pod_meta.value("labels", json::object()).empty()) {
          json labels = json::object();
          for (auto& [k, v] : pod_meta["labels"].items()) labels[k] = scalar_text(v);
          svc["labels"] = labels;
        }
        if (scalar_text(annotations.value("berth/init", json(""))) == "true") svc["init"] = true;
        if (pod.contains("terminationGracePeriodSeconds"))
          svc["stop_grace_period"] = scalar_text(pod["terminationGracePeriodSeconds"]) + "s";
        if (pod.contains("hostAliases")) {
          json hosts = json::array();
          for (const auto& a : pod["hostAliases"])
            for (const auto& h : a.value("hostnames", json::array()))
              hosts.push_back(scalar_text(h) + ":" + scalar_text(a["ip"]));
          svc["extra_hosts"] = hosts;
        }
        json deps = json::object();
        if (!inits.empty()) deps[inits.back()] = {{"condition", "service_completed_successfully"}};
        if (first.empty()) {
          if (pod.value("hostNetwork", false)) {
            svc["network_mode"] = "host";
          } else {
            svc["networks"] = {{"default", json::object()}};
            std::string hostname = pod.value("hostname", "");
            if (hostname.empty() && (kind == "Pod" || kind == "StatefulSet"))
              hostname = kind == "Pod" ? name : name + "-" + std::to_string(i);
            if (!hostname.empty()) svc["hostname"] = hostname;
          }
          first = sname;
        } else {
          svc["network_mode"] = "service:" + first;
          deps[first] = {{"condition", "service_started"}};
          if (svc.contains("ports"))
            throw Error(where + ": containers." + cname + ": hostPort is only supported on the pod's first container");
        }
        if (!deps.empty()) svc["depends_on"] = deps;
        services[sname] = svc;
        if (kind == "StatefulSet") stateful_pods.insert(sname);
        pod_labels[sname] = pod_meta.value("labels", json::object());
        first_of_pod[sname] = first;
      }
      // berth/depends-on (written by compose kube): "svc:condition,…" on the pod's first service.
      std::string wanted = scalar_text(annotations.value("berth/depends-on", json("")));
      pending_deps.emplace_back(first, wanted);
      dep_files[first] = file;
    }
  }
  std::vector<std::pair<std::string, std::string>> pending_deps;
  std::map<std::string, std::string> dep_files;

  void apply_services() {
    for (const auto& [s, file] : services_k8s) {
      source = file;
      std::string name = s["metadata"]["name"];
      std::string where = source + ": Service " + name;
      const json spec = s.value("spec", json::object());
      const json selector = spec.value("selector", json::object());
      if (selector.empty()) {
        warn(where + ": no selector; ignored");
        continue;
      }
      std::string type = spec.value("type", "ClusterIP");
      bool matched = false;
      for (auto& [sname, labels] : pod_labels) {
        if (first_of_pod[sname] != sname) continue;  // the pod's network belongs to its first service
        bool match = true;
        for (auto& [k, v] : selector.items()) match = match && labels.contains(k) && labels[k] == v;
        if (!match) continue;
        matched = true;
        json& svc = services[sname];
        if (svc.contains("networks")) {
          json& net = svc["networks"]["default"];
          if (!net.contains("aliases")) net["aliases"] = json::array();
          std::vector<std::string> names = {name};
          // A StatefulSet's pod is also <pod>.<service>, its stable name in Kubernetes.
          if (auto h = svc.find("hostname"); h != svc.end() && stateful_pods.count(sname))
            names.push_back(h->get<std::string>() + "." + name);
          for (const auto& n : names)
            if (std::find(net["aliases"].begin(), net["aliases"].end(), n) == net["aliases"].end())
              net["aliases"].push_back(n);
        }
        for (const auto& p : spec.value("ports", json::array())) {
          int port = p.value("port", 0);
          int target =
              p.contains("targetPort") && p["targetPort"].is_number_integer() ? p["targetPort"].get<int>() : port;
          if (p.contains("targetPort") && p["targetPort"].is_string())
            warn(where + ": named targetPort " + scalar_text(p["targetPort"]) + " is not resolved; port " +
                 std::to_string(port) + " is used");
          if (port != target)
            warn(where + ": port " + std::to_string(port) + " → " + std::to_string(target) +
                 ": on berth clients reach the pods on " + std::to_string(target));
          if (type == "NodePort" || type == "LoadBalancer") {
            std::string proto = p.value("protocol", "TCP");
            std::transform(proto.begin(), proto.end(), proto.begin(), ::tolower);
            int published = type == "NodePort" && p.contains("nodePort") ? p["nodePort"].get<int>() : port;
            if (!svc.contains("ports")) svc["ports"] = json::array();
            svc["ports"].push_back({{"target", target}, {"published", std::to_string(published)}, {"protocol", proto}});
          }
        }
      }
      if (!matched) warn(where + ": its selector matches no pod in the files");
    }
  }

  void apply_depends_on() {
    for (const auto& [first, wanted] : pending_deps) {
      if (wanted.empty() || !services.contains(first)) continue;
      size_t start = 0;
      while (start <= wanted.size()) {
        size_t comma = wanted.find(',', start);
        std::string one = wanted.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? wanted.size() + 1 : comma + 1;
        std::string dep = one.substr(0, one.find(':'));
        std::string condition = one.find(':') == std::string::npos ? "service_started" : one.substr(one.find(':') + 1);
        if (dep.empty() || dep == first) continue;
        if (!services.contains(dep)) {
          warn(dep_files[first] + ": berth/depends-on of " + first + ": no service " + dep + " in the files; ignored");
          continue;
        }
        services[first]["depends_on"][dep] = {{"condition", condition}};
      }
    }
  }
};

}  // namespace

std::string kube_project_name(const std::vector<KubeDocument>& documents, const std::string& requested) {
  if (!requested.empty()) return requested;
  std::set<std::string> part_of;
  std::function<void(const json&)> scan = [&](const json& o) {
    if (!o.is_object()) return;
    if (o.value("kind", "") == "List")
      for (const auto& i : o.value("items", json::array())) scan(i);
    else if (o.contains("metadata") && o["metadata"].is_object() && o["metadata"].contains("labels") &&
             o["metadata"]["labels"].is_object() && o["metadata"]["labels"].contains(kPartOfLabel))
      part_of.insert(scalar_text(o["metadata"]["labels"][kPartOfLabel]));
  };
  for (const auto& d : documents) scan(d.object);
  std::string source = documents.empty() ? std::string() : documents.front().file;
  std::string name;
  if (part_of.size() == 1) name = normalize_project_name(*part_of.begin());
  if (name.empty()) name = normalize_project_name(fs::path(source).stem().string());
  if (name.empty()) throw Error(source + ": no project name can be derived from the file name (use --project-name)");
  return name;
}

KubePlan kube_plan(const std::vector<KubeDocument>& documents, const std::string& project_name,
                   const std::string& files_root_base, const Warn& warn) {
  std::string name = kube_project_name(documents, project_name);
  std::string source = documents.empty() ? std::string() : documents.front().file;
  Planner p(source, name, files_root_base + "/" + name, warn);
  for (const auto& d : documents) {
    p.source = d.file;
    if (!d.object.is_null()) p.collect(d.object);
  }
  std::string files;
  for (const auto& d : documents)
    if (files.find(d.file) == std::string::npos) files += (files.empty() ? "" : ", ") + d.file;
  if (p.workloads.empty()) throw Error(files + ": no Pod, Deployment or StatefulSet to run");
  for (const auto& [w, file] : p.workloads) p.workload(w, file);
  p.apply_services();
  p.apply_depends_on();

  json doc = {{"name", name}, {"services", p.services}};
  if (!p.volumes.empty()) doc["volumes"] = p.volumes;
  LoadOptions options;
  options.project_name = name;
  KubePlan plan;
  plan.project = load_document(doc, source, fs::path(source).parent_path().string(), options);
  plan.files = std::move(p.files);
  plan.create_files = std::move(p.create_files);
  plan.files_root = p.files_root;
  return plan;
}

std::vector<std::string> kube_services_to_up(Backend& b, const Project& project) {
  std::vector<std::string> order = project.ordered_services();
  std::map<std::string, std::vector<engine::Container>> existing;
  for (const auto& s : order) existing[s] = project_containers(b.engine, project.name, {s});
  auto scale_of = [&](const std::string& s) { return project.service(s).value("scale", 1); };
  auto current = [&](const std::string& s, const engine::Container& c) { return is_current(b, project.service(s), c); };
  // A pod's container that runs, every replica of it, as this play would create it.
  auto runs_unchanged = [&](const std::string& s) {
    const auto& cs = existing[s];
    return !cs.empty() && static_cast<int>(cs.size()) == scale_of(s) &&
           std::all_of(cs.begin(), cs.end(), [&](const engine::Container& c) { return c.running() && current(s, c); });
  };
  // Scaled to 0 with nothing left to scale down: not started at all.
  std::set<std::string> unwanted;
  for (const auto& s : order)
    if (scale_of(s) == 0 && existing[s].empty()) unwanted.insert(s);
  // Who waits for whom to complete: init services and the services that depend on them.
  std::map<std::string, std::vector<std::string>> completion_waiters;
  for (const auto& s : order) {
    const json& svc = project.service(s);
    if (!svc.contains("depends_on")) continue;
    for (auto& [dep, cfg] : svc["depends_on"].items())
      if (cfg.value("condition", "") == "service_completed_successfully") completion_waiters[dep].push_back(s);
  }
  std::set<std::string> done;  // init services whose pod runs unchanged
  // Dependents come later in dependency order: walking backwards decides them first.
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const std::string& s = *it;
    auto waiters = completion_waiters.find(s);
    if (waiters == completion_waiters.end()) continue;
    const auto& ws = waiters->second;
    // The init containers of a pod that does not run (replicas 0) do not run either.
    if (std::all_of(ws.begin(), ws.end(), [&](const std::string& w) { return unwanted.count(w) > 0; })) {
      unwanted.insert(s);
      continue;
    }
    const auto& cs = existing[s];
    bool completed = !cs.empty() && std::all_of(cs.begin(), cs.end(), [&](const engine::Container& c) {
      return !c.running() && c.state != "created" && c.exit_code == 0 && current(s, c);
    });
    bool pod_up = std::all_of(ws.begin(), ws.end(), [&](const std::string& w) {
      return done.count(w) || unwanted.count(w) || runs_unchanged(w);
    });
    if (completed && pod_up) done.insert(s);
  }
  std::vector<std::string> out;
  for (const auto& s : order)
    if (!done.count(s) && !unwanted.count(s)) out.push_back(s);
  return out;
}

void write_kube_files(const KubePlan& plan) {
  for (const auto& path : plan.create_files) {
    fs::create_directories(fs::path(path).parent_path());
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) throw_errno("create " + path);
  }
  std::set<std::string> wanted;
  for (const auto& f : plan.files) {
    fs::create_directories(fs::path(f.path).parent_path());
    // Each file replaced whole (a running container's bind mount sees old or new, never half);
    // chmod after, for the bits the umask took from the requested mode.
    write_file_atomic(f.path, f.content, f.mode & 07777);
    if (::chmod(f.path.c_str(), f.mode & 07777) != 0) throw_errno("chmod " + f.path);
    wanted.insert(f.path);
  }
  std::error_code ec;
  if (!fs::exists(plan.files_root, ec)) return;
  std::vector<fs::path> stale;
  for (auto it = fs::recursive_directory_iterator(plan.files_root, ec); it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec) && !wanted.count(it->path().string())) stale.push_back(it->path());
  for (const auto& s : stale) fs::remove(s, ec);
}

}  // namespace berth::compose
