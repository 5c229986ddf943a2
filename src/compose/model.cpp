// Loading a compose project: find its files, read .env, then per file: YAML → interpolation → the
// compose schema → long form; then merge the files (later ones override), apply profiles and check
// the references between services, networks and volumes.
//
// The long form (what `compose config` prints and the rest of the module reads):
//   command/entrypoint: lists; environment, labels: maps (env_file folded into environment);
//   ports: [{target:int, published:"8080", host_ip, protocol, mode}]; expose: ["80"];
//   volumes: [{type: bind|volume|tmpfs, source, target, read_only, bind{create_host_path},
//             volume{nocopy,subpath}, tmpfs{size,mode}}] with bind sources absolute;
//   networks: {name: {aliases, ipv4_address}} (default: {"default": {}} unless network_mode);
//   depends_on: {name: {condition, required, restart}}; healthcheck.test: a list;
//   tmpfs, dns, extra_hosts: lists; ulimits: {name: {soft, hard}}; scale: int.
#include "compose/model.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "compose/dotenv.hpp"
#include "compose/interpolate.hpp"
#include "compose/schema.hpp"
#include "compose/yaml.hpp"
#include "util/docker_syntax.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

extern char** environ;

namespace berth::compose {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* const kDefaultFiles[] = {"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"};
const char* const kOverrideFiles[] = {"compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
                                      "docker-compose.override.yaml"};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": " + std::strerror(errno), errno);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string absolute(const std::string& path, const std::string& base) {
  fs::path p(path);
  if (!path.empty() && path[0] == '~') {
    const char* home = std::getenv("HOME");
    p = fs::path(home ? home : "/root") / path.substr(path.size() > 1 && path[1] == '/' ? 2 : 1);
  }
  if (p.is_relative()) p = fs::path(base) / p;
  return p.lexically_normal().string();
}

std::string strip_trailing_slash(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// shlex-style splitting of a string command, as compose does for `command: echo "a b"`.
std::vector<std::string> split_command(const std::string& text, const std::string& where) {
  std::vector<std::string> out;
  std::string cur;
  bool have = false;
  for (size_t i = 0; i < text.size(); i++) {
    char c = text[i];
    if (c == '\'' || c == '"') {
      have = true;
      size_t j = i + 1;
      for (; j < text.size() && text[j] != c; j++) {
        if (c == '"' && text[j] == '\\' && j + 1 < text.size() &&
            (text[j + 1] == '"' || text[j + 1] == '\\' || text[j + 1] == '$' || text[j + 1] == '`'))
          j++;
        cur += text[j];
      }
      if (j >= text.size()) throw Error(where + ": unterminated quote in \"" + text + "\"");
      i = j;
    } else if (c == '\\' && i + 1 < text.size()) {
      cur += text[++i];
      have = true;
    } else if (is_space(c)) {
      if (have) out.push_back(cur), cur.clear(), have = false;
    } else {
      cur += c;
      have = true;
    }
  }
  if (have) out.push_back(cur);
  return out;
}

json string_list(const json& v) {
  if (v.is_null()) return json::array();
  if (!v.is_array()) return json::array({scalar_text(v)});
  json out = json::array();
  for (const auto& e : v) out.push_back(scalar_text(e));
  return out;
}

// environment / labels / sysctls: a list of "K=V" (or "K") or a mapping → a mapping of strings.
// A bare "K" in a list is looked up (environment) or null.
json kv_mapping(const json& v, const VariableLookup& lookup) {
  json out = json::object();
  if (v.is_array()) {
    for (const auto& e : v) {
      std::string s = scalar_text(e);
      size_t eq = s.find('=');
      if (eq != std::string::npos) {
        out[s.substr(0, eq)] = s.substr(eq + 1);
      } else if (lookup) {
        auto value = lookup(s);
        out[s] = value ? json(*value) : json(nullptr);
      } else {
        out[s] = "";
      }
    }
  } else if (v.is_object()) {
    for (const auto& [k, e] : v.items()) {
      if (e.is_null() && lookup) {
        auto value = lookup(k);
        out[k] = value ? json(*value) : json(nullptr);
      } else {
        out[k] = e.is_null() ? json(nullptr) : json(scalar_text(e));
      }
    }
  }
  return out;
}

// "8080:80", "127.0.0.1:8080:80/udp", "[::1]:8080:80", "80", "8000-8001:80-81" → long-form ports.
json parse_port(const std::string& spec, const std::string& where) {
  std::string rest = spec, proto = "tcp", host_ip;
  if (size_t slash = rest.rfind('/'); slash != std::string::npos) {
    proto = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      throw Error(where + ": invalid port \"" + spec + "\"");
    host_ip = rest.substr(1, close - 1);
    rest = rest.substr(close + 2);
  }
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t colon = rest.find(':', start);
    parts.push_back(rest.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  std::string published, target;
  if (parts.size() == 1) {
    target = parts[0];
  } else if (parts.size() == 2) {
    published = parts[0], target = parts[1];
  } else if (parts.size() == 3 && host_ip.empty()) {
    host_ip = parts[0], published = parts[1], target = parts[2];
  } else {
    throw Error(where + ": invalid port \"" + spec + "\"");
  }
  auto range = [&](const std::string& text) -> std::pair<long, long> {
    size_t dash = text.find('-');
    auto num = [&](const std::string& t) {
      if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 5 || std::stol(t) > 65535)
        throw Error(where + ": invalid port \"" + spec + "\"");
      return std::stol(t);
    };
    if (dash == std::string::npos) return {num(text), num(text)};
    long lo = num(text.substr(0, dash)), hi = num(text.substr(dash + 1));
    if (hi < lo) throw Error(where + ": invalid port range \"" + text + "\"");
    return {lo, hi};
  };
  if (proto != "tcp" && proto != "udp" && proto != "sctp") throw Error(where + ": invalid protocol \"" + proto + "\"");
  auto [tlo, thi] = range(target);
  json out = json::array();
  if (!published.empty()) {
    auto [plo, phi] = range(published);
    if (phi - plo == thi - tlo) {
      for (long i = 0; i <= thi - tlo; i++) {
        json p = {
            {"target", tlo + i}, {"published", std::to_string(plo + i)}, {"protocol", proto}, {"mode", "ingress"}};
        if (!host_ip.empty()) p["host_ip"] = host_ip;
        out.push_back(p);
      }
      return out;
    }
    if (tlo != thi) throw Error(where + ": invalid port range \"" + spec + "\"");
  }
  for (long t = tlo; t <= thi; t++) {
    json p = {{"target", t}, {"protocol", proto}, {"mode", "ingress"}};
    if (!published.empty()) p["published"] = published;
    if (!host_ip.empty()) p["host_ip"] = host_ip;
    out.push_back(p);
  }
  return out;
}

json long_port(const json& p, const std::string& where) {
  json out = p;
  if (out.contains("published") && !out["published"].is_null()) out["published"] = scalar_text(out["published"]);
  if (out.contains("target") && out["target"].is_string()) {
    std::string t = out["target"];
    if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos)
      throw Error(where + ".target: invalid port \"" + t + "\"");
    out["target"] = std::stol(t);
  }
  if (!out.contains("protocol")) out["protocol"] = "tcp";
  if (!out.contains("mode")) out["mode"] = "ingress";
  return out;
}

bool is_mode_list(const std::string& s) {
  static const std::set<std::string> modes = {"ro",      "rw",       "z",         "Z",         "nocopy",
                                              "private", "rprivate", "shared",    "rshared",   "slave",
                                              "rslave",  "cached",   "delegated", "consistent"};
  std::stringstream in(s);
  std::string m;
  bool any = false;
  while (std::getline(in, m, ',')) {
    if (!modes.count(m)) return false;
    any = true;
  }
  return any;
}

// "src:dst[:mode]", "dst" → a long-form volume.
json parse_volume(const std::string& spec, const std::string& working_dir, const std::string& where) {
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  std::string source, target, mode;
  if (parts.size() == 1) {
    target = parts[0];
  } else if (parts.size() == 2 && !parts[1].empty() && parts[1][0] != '/' && is_mode_list(parts[1])) {
    target = parts[0], mode = parts[1];
  } else if (parts.size() == 2) {
    source = parts[0], target = parts[1];
  } else if (parts.size() == 3) {
    source = parts[0], target = parts[1], mode = parts[2];
  } else {
    throw Error(where + ": invalid volume specification: \"" + spec + "\"");
  }
  if (target.empty()) throw Error(where + ": invalid volume specification: \"" + spec + "\"");
  if (!mode.empty() && !is_mode_list(mode)) throw Error(where + ": invalid mode \"" + mode + "\" in \"" + spec + "\"");
  json v = json::object();
  bool bind = !source.empty() && (source[0] == '.' || source[0] == '/' || source[0] == '~');
  v["type"] = bind ? "bind" : "volume";
  if (!source.empty()) v["source"] = bind ? absolute(source, working_dir) : source;
  v["target"] = target;
  std::stringstream in(mode);
  std::string m;
  while (std::getline(in, m, ',')) {
    if (m == "ro") v["read_only"] = true;
    if (m == "nocopy") v["volume"]["nocopy"] = true;
    if (m == "z" || m == "Z") v["bind"]["selinux"] = m;
    if (m.find("private") != std::string::npos || m.find("shared") != std::string::npos ||
        m.find("slave") != std::string::npos)
      v["bind"]["propagation"] = m;
  }
  if (bind) v["bind"]["create_host_path"] = true;
  return v;
}

// One file's services and top-level objects in long form.
// env_file_vars: per service, what its env_files set (compose kube makes ConfigMaps of them).
json normalize_file(json doc, const std::string& file, const std::string& working_dir, const VariableLookup& lookup,
                    std::map<std::string, std::map<std::string, std::string>>& env_file_vars) {
  if (doc.is_null()) doc = json::object();
  json& services = doc["services"];
  if (services.is_null()) services = json::object();
  for (auto& [name, svc] : services.items()) {
    if (svc.is_null()) svc = json::object();
    std::string where = file + ": services." + name;
    for (const char* key : {"command", "entrypoint"}) {
      if (!svc.contains(key) || svc[key].is_null()) continue;
      if (svc[key].is_string())
        svc[key] = split_command(svc[key].get<std::string>(), where + "." + key);
      else
        svc[key] = string_list(svc[key]);
    }
    // env_file first, environment over it.
    json env = json::object();
    if (svc.contains("env_file")) {
      json files = svc["env_file"].is_array() ? svc["env_file"] : json::array({svc["env_file"]});
      for (const auto& f : files) {
        std::string path = f.is_object() ? f.value("path", "") : scalar_text(f);
        bool required = f.is_object() ? f.value("required", true) : true;
        std::string abs = absolute(path, working_dir);
        if (!required && !fs::exists(abs)) continue;
        if (!fs::exists(abs))
          throw Error(where + ".env_file: env file " + abs + " not found: stat " + abs + ": no such file or directory");
        for (auto& [k, val] : read_dotenv(abs, lookup)) {
          env[k] = val;
          env_file_vars[name][k] = val;
        }
      }
      svc.erase("env_file");
    }
    if (svc.contains("environment")) {
      json listed = kv_mapping(svc["environment"], lookup);  // named: items() of a temporary dangles
      for (auto& [k, val] : listed.items()) env[k] = val;
    }
    if (!env.empty() || svc.contains("environment")) svc["environment"] = env;
    for (const char* key : {"labels", "sysctls", "annotations"})
      if (svc.contains(key)) svc[key] = kv_mapping(svc[key], nullptr);
    // build: long form, its context absolute, args and labels as maps.
    if (svc.contains("build")) {
      json& b = svc["build"];
      if (b.is_string()) b = json{{"context", b}};
      std::string context = b.contains("context") ? scalar_text(b["context"]) : ".";
      if (context.find("://") == std::string::npos) context = absolute(context, working_dir);
      b["context"] = context;
      for (const char* key : {"args", "labels"})
        if (b.contains(key)) b[key] = kv_mapping(b[key], lookup);
    }
    if (svc.contains("ports")) {
      json ports = json::array();
      int i = 0;
      for (const auto& p : svc["ports"]) {
        std::string pw = where + ".ports." + std::to_string(i++);
        if (p.is_object())
          ports.push_back(long_port(p, pw));
        else
          for (auto& e : parse_port(scalar_text(p), pw)) ports.push_back(e);
      }
      svc["ports"] = ports;
    }
    if (svc.contains("expose")) svc["expose"] = string_list(svc["expose"]);
    for (const char* key : {"dns", "dns_search", "tmpfs", "cap_add", "cap_drop", "security_opt"})
      if (svc.contains(key)) svc[key] = string_list(svc[key]);
    if (svc.contains("extra_hosts")) {
      json hosts = json::array();
      if (svc["extra_hosts"].is_object()) {
        for (auto& [h, ip] : svc["extra_hosts"].items())
          for (const auto& one : string_list(ip)) hosts.push_back(h + ":" + one.get<std::string>());
      } else {
        for (const auto& e : string_list(svc["extra_hosts"])) {
          std::string s = e;
          if (size_t eq = s.find('='); eq != std::string::npos) s[eq] = ':';
          hosts.push_back(s);
        }
      }
      svc["extra_hosts"] = hosts;
    }
    if (svc.contains("volumes")) {
      json vols = json::array();
      int i = 0;
      for (const auto& v : svc["volumes"]) {
        std::string vw = where + ".volumes." + std::to_string(i++);
        json lv = v.is_object() ? v : parse_volume(scalar_text(v), working_dir, vw);
        if (lv.value("type", "") == "bind" && lv.contains("source"))
          lv["source"] = absolute(scalar_text(lv["source"]), working_dir);
        if (lv.contains("target")) lv["target"] = strip_trailing_slash(scalar_text(lv["target"]));
        vols.push_back(lv);
      }
      svc["volumes"] = vols;
    }
    if (svc.contains("networks") && svc["networks"].is_array()) {
      json nets = json::object();
      for (const auto& n : svc["networks"]) nets[scalar_text(n)] = json::object();
      svc["networks"] = nets;
    } else if (svc.contains("networks")) {
      for (auto& [n, cfg] : svc["networks"].items())
        if (cfg.is_null()) cfg = json::object();
    }
    if (svc.contains("depends_on")) {
      json deps = json::object();
      if (svc["depends_on"].is_array()) {
        for (const auto& d : svc["depends_on"])
          deps[scalar_text(d)] = {{"condition", "service_started"}, {"required", true}};
      } else {
        for (auto& [d, cfg] : svc["depends_on"].items()) {
          json c = cfg.is_object() ? cfg : json::object();
          if (!c.contains("condition")) c["condition"] = "service_started";
          if (!c.contains("required")) c["required"] = true;
          deps[d] = c;
        }
      }
      svc["depends_on"] = deps;
    }
    if (svc.contains("healthcheck") && svc["healthcheck"].is_object()) {
      json& hc = svc["healthcheck"];
      if (hc.value("disable", false)) hc["test"] = json::array({"NONE"});
      if (hc.contains("test") && hc["test"].is_string()) hc["test"] = json::array({"CMD-SHELL", hc["test"]});
    }
    if (svc.contains("ulimits")) {
      for (auto& [n, u] : svc["ulimits"].items())
        if (!u.is_object()) u = {{"soft", u}, {"hard", u}};
    }
    if (svc.contains("volumes_from")) svc["volumes_from"] = string_list(svc["volumes_from"]);
    if (svc.contains("profiles")) svc["profiles"] = string_list(svc["profiles"]);
  }
  for (const char* kind : {"networks", "volumes"}) {
    if (!doc.contains(kind) || doc[kind].is_null()) continue;
    for (auto& [key, cfg] : doc[kind].items()) {
      if (cfg.is_null()) cfg = json::object();
      if (cfg.contains("labels")) cfg["labels"] = kv_mapping(cfg["labels"], nullptr);
    }
  }
  return doc;
}

// Merges an override file's (long-form) document into base, as compose does: mappings merge,
// command/entrypoint/healthcheck.test are replaced, volumes merge by target, other lists append.
using KeyPath = std::vector<std::string>;

// overrides: paths an override file tagged !override: replaced, not merged.
void merge_into(json& base, const json& over, const std::string& path = "",
                const std::set<KeyPath>* overrides = nullptr, const KeyPath& at = {}) {
  for (auto& [key, value] : over.items()) {
    std::string child = path.empty() ? key : path + "." + key;
    KeyPath child_at = at;
    child_at.push_back(key);
    if (overrides && overrides->count(child_at)) {
      base[key] = value;
      continue;
    }
    if (!base.contains(key) || base[key].is_null() || value.is_null() || !value.is_structured() ||
        base[key].type() != value.type()) {
      base[key] = value;
      continue;
    }
    bool replaced = key == "command" || key == "entrypoint" || key == "test" || key == "aliases";
    if (value.is_object()) {
      merge_into(base[key], value, child, overrides, child_at);
    } else if (replaced) {
      base[key] = value;
    } else if (key == "volumes" && path.rfind("services.", 0) == 0) {
      for (const auto& v : value) {
        auto same = std::find_if(base[key].begin(), base[key].end(),
                                 [&](const json& b) { return b.value("target", "") == v.value("target", ""); });
        if (same != base[key].end())
          *same = v;
        else
          base[key].push_back(v);
      }
    } else {
      for (const auto& v : value)
        if (std::find(base[key].begin(), base[key].end(), v) == base[key].end()) base[key].push_back(v);
    }
  }
}

// Removes the value at path (a !reset), if it is there.
void erase_path(json& doc, const KeyPath& path) {
  json* node = &doc;
  for (size_t i = 0; i + 1 < path.size(); i++) {
    if (node->is_object() && node->contains(path[i]))
      node = &(*node)[path[i]];
    else
      return;
  }
  if (!path.empty() && node->is_object()) node->erase(path.back());
}

// A compose file read, its top level checked to be a mapping, interpolated (not yet validated:
// !reset values are dropped first).
json read_compose_file(const std::string& file, const VariableLookup& lookup, const VariableWarning& warn,
                       std::vector<YamlTag>* tags = nullptr) {
  json doc = yaml_to_json(read_text(file), file, tags);
  if (!doc.is_null() && !doc.is_object()) throw Error(file + ": top-level object must be a mapping");
  doc = interpolate(doc, lookup, file, warn);
  return doc.is_null() ? json::object() : doc;
}

// `extends`: a service built on another one (in the same file or another), the base first and
// the service's own keys merged over it with the rules of several -f files. Another file is read,
// interpolated, validated and brought to long form with its own directory for relative paths.
struct Extender {
  const VariableLookup& lookup;
  const VariableWarning& warn;
  std::map<std::string, std::map<std::string, std::string>>& env_file_vars;
  std::map<std::string, json> files;  // absolute path → long-form document (extends resolved)

  json& load(const std::string& file) {
    if (auto it = files.find(file); it != files.end()) return it->second;
    if (!fs::exists(file)) throw Error("open " + file + ": no such file or directory");
    json doc = read_compose_file(file, lookup, warn);
    validate_compose(doc, file);
    std::map<std::string, std::map<std::string, std::string>> ignored;
    files[file] = normalize_file(doc, file, fs::path(file).parent_path().string(), lookup, ignored);
    resolve_all(files[file], file);
    return files[file];
  }

  void resolve_all(json& doc, const std::string& file) {
    if (!doc.contains("services")) return;
    std::vector<std::string> chain;
    for (auto& [name, svc] : doc["services"].items()) resolve(doc, file, name, chain);
  }

  void resolve(json& doc, const std::string& file, const std::string& name, std::vector<std::string>& chain) {
    json& svc = doc["services"][name];
    if (!svc.is_object() || !svc.contains("extends")) return;
    std::string id = file + ":" + name;
    if (auto loop = std::find(chain.begin(), chain.end(), id); loop != chain.end()) {
      std::string path;
      for (auto it = loop; it != chain.end(); ++it) path += it->substr(it->rfind(':') + 1) + " -> ";
      throw Error(file + ": services." + name + ".extends: circular reference: " + path + name);
    }
    const json ext = svc["extends"];
    std::string base_name = ext.is_string() ? ext.get<std::string>() : ext.value("service", "");
    std::string base_file = ext.is_object() && ext.contains("file")
                                ? absolute(scalar_text(ext["file"]), fs::path(file).parent_path().string())
                                : file;
    chain.push_back(id);
    json base;
    if (base_file == file) {
      if (!doc["services"].contains(base_name))
        throw Error(file + ": services." + name + ".extends: no service " + base_name + " in the file");
      resolve(doc, file, base_name, chain);
      base = doc["services"][base_name];
    } else {
      json& other = load(base_file);
      if (!other.contains("services") || !other["services"].contains(base_name))
        throw Error(file + ": services." + name + ".extends: no service " + base_name + " in " + base_file);
      base = other["services"][base_name];
    }
    chain.pop_back();
    json own = svc;
    own.erase("extends");
    if (base_name != name || base_file != file)
      if (auto it = env_file_vars.find(base_name); it != env_file_vars.end() && base_file == file)
        for (const auto& [k, v] : it->second) env_file_vars[name].emplace(k, v);
    merge_into(base, own, "services." + name);
    svc = base;
  }
};

std::vector<std::string> find_default_files(const std::string& start) {
  for (fs::path dir = start;; dir = dir.parent_path()) {
    for (const char* name : kDefaultFiles) {
      fs::path p = dir / name;
      if (fs::exists(p)) {
        std::vector<std::string> files = {p.string()};
        for (const char* o : kOverrideFiles)
          if (fs::exists(dir / o)) {
            files.push_back((dir / o).string());
            break;
          }
        return files;
      }
    }
    if (dir == dir.parent_path()) break;
  }
  throw Error("no configuration file provided: not found");
}

bool valid_project_name(const std::string& s) {
  if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return false;
  return s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos;
}

void resolve_project(Project& project, json merged, const LoadOptions& options, const VariableLookup& lookup);

}  // namespace

std::string normalize_project_name(const std::string& text) {
  std::string out;
  for (char c : lower(text))
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-') out += c;
  size_t first = out.find_first_not_of("_-");
  return first == std::string::npos ? "" : out.substr(first);
}

int64_t compose_duration(const json& value, const std::string& where) {
  if (value.is_number()) return static_cast<int64_t>(value.get<double>() * 1e9);
  const std::string text = scalar_text(value);
  int64_t ns = 0;
  try {
    ns = parse_go_duration(text);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  // Go accepts a sign; a negative period or timeout means nothing here (refused, as before).
  if (ns < 0) throw Error(where + ": invalid duration \"" + text + "\": cannot be negative");
  return ns;
}

Project project_from_labels(const std::string& name) {
  if (!valid_project_name(name))
    throw Error("invalid project name \"" + name +
                "\": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as "
                "start with a letter or number");
  Project p;
  p.name = name;
  p.working_dir = fs::current_path().string();
  p.model = {{"name", name}, {"services", json::object()}, {"networks", json::object()}, {"volumes", json::object()}};
  p.from_labels = true;
  return p;
}

const json& Project::service(const std::string& name) const {
  const json& services = model["services"];
  auto it = services.find(name);
  if (it == services.end()) throw Error("no such service: " + name);
  return *it;
}

bool Project::has_service(const std::string& name) const { return model["services"].contains(name); }

std::vector<std::string> Project::ordered_services() const {
  std::vector<std::string> all;
  for (auto& [name, svc] : model["services"].items()) all.push_back(name);
  return with_dependencies(all);
}

std::vector<std::string> Project::with_dependencies(const std::vector<std::string>& names_in) const {
  std::vector<std::string> names = names_in;
  if (names.empty())
    for (auto& [name, svc] : model["services"].items()) names.push_back(name);
  std::vector<std::string> out;
  std::set<std::string> done, visiting;
  std::vector<std::string> stack;
  std::function<void(const std::string&)> visit = [&](const std::string& name) {
    if (done.count(name)) return;
    if (visiting.count(name)) {
      std::string cycle;
      auto from = std::find(stack.begin(), stack.end(), name);
      for (auto it = from; it != stack.end(); ++it) cycle += *it + " -> ";
      throw Error("dependency cycle detected: " + cycle + name);
    }
    visiting.insert(name);
    stack.push_back(name);
    const json& svc = service(name);
    if (svc.contains("depends_on"))
      for (auto& [dep, cfg] : svc["depends_on"].items())
        if (has_service(dep)) visit(dep);
    stack.pop_back();
    visiting.erase(name);
    done.insert(name);
    out.push_back(name);
  };
  for (const auto& n : names) visit(n);
  return out;
}

std::string scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_null()) return "";
  if (v.is_number_float()) {
    std::ostringstream s;
    s << v.get<double>();
    return s.str();
  }
  return v.dump();
}

Project load_project(const LoadOptions& options) {
  Project project;
  std::map<std::string, std::string> process_env;
  for (char** e = environ; e && *e; e++) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) process_env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::string cwd = fs::current_path().string();
  std::vector<std::string> files = options.files;
  if (files.empty() && process_env.count("COMPOSE_FILE")) {
    std::stringstream in(process_env["COMPOSE_FILE"]);
    std::string f;
    while (std::getline(in, f, ':'))
      if (!f.empty()) files.push_back(f);
  }
  if (files.empty()) files = find_default_files(options.project_directory.empty() ? cwd : options.project_directory);
  for (auto& f : files) {
    f = absolute(f, cwd);
    if (!fs::exists(f)) throw Error("open " + f + ": no such file or directory");
  }
  project.config_files = files;
  project.working_dir = options.project_directory.empty() ? fs::path(files[0]).parent_path().string()
                                                          : absolute(options.project_directory, cwd);

  // .env (or --env-file) under the process's environment: the shell wins, as in compose.
  std::vector<std::string> env_files = options.env_files;
  if (env_files.empty() && fs::exists(project.working_dir + "/.env"))
    env_files.push_back(project.working_dir + "/.env");
  auto env_lookup = [&](const std::string& name) -> std::optional<std::string> {
    if (auto it = process_env.find(name); it != process_env.end()) return it->second;
    if (auto it = project.environment.find(name); it != project.environment.end()) return it->second;
    return std::nullopt;
  };
  for (const auto& ef : env_files) {
    std::string abs = absolute(ef, cwd);
    if (!fs::exists(abs)) throw Error("couldn't find env file: " + abs);
    for (auto& [k, v] : read_dotenv(abs, env_lookup)) project.environment[k] = v;
  }
  for (auto& [k, v] : process_env) project.environment[k] = v;
  VariableLookup lookup = [&](const std::string& name) -> std::optional<std::string> {
    auto it = project.environment.find(name);
    if (it == project.environment.end()) return std::nullopt;
    return it->second;
  };
  std::set<std::string> warned;
  VariableWarning warn = [&](const std::string& name) {
    if (warned.insert(name).second && options.warn)
      options.warn("The \"" + name + "\" variable is not set. Defaulting to a blank string.");
  };

  json merged = json::object();
  Extender extender{lookup, warn, project.env_file_variables, {}};
  // include: other compose applications merged in, each read with its own project directory and
  // env files (under the process environment); a resource defined twice is an error.
  std::function<void(json&, const json&, const std::string&, std::vector<std::string>&)> include_into =
      [&](json& into, const json& includes, const std::string& from, std::vector<std::string>& chain) {
        std::string base = fs::path(from).parent_path().string();
        for (const auto& entry : includes) {
          std::vector<std::string> paths;
          json path_value = entry.is_object() ? entry.value("path", json()) : entry;
          for (const auto& p : path_value.is_array() ? path_value : json::array({path_value}))
            paths.push_back(absolute(scalar_text(p), base));
          if (paths.empty()) throw Error(from + ": include: an entry has no path");
          std::string directory = entry.is_object() && entry.contains("project_directory")
                                      ? absolute(scalar_text(entry["project_directory"]), base)
                                      : fs::path(paths[0]).parent_path().string();
          std::map<std::string, std::string> env;
          std::vector<std::string> env_files;
          if (entry.is_object() && entry.contains("env_file")) {
            const json& ef = entry["env_file"];
            for (const auto& e : ef.is_array() ? ef : json::array({ef}))
              env_files.push_back(absolute(scalar_text(e), base));
          } else if (fs::exists(directory + "/.env")) {
            env_files.push_back(directory + "/.env");
          }
          VariableLookup included_lookup = [&](const std::string& name) -> std::optional<std::string> {
            if (auto it = process_env.find(name); it != process_env.end()) return it->second;
            if (auto it = env.find(name); it != env.end()) return it->second;
            return std::nullopt;
          };
          for (const auto& ef : env_files) {
            if (!fs::exists(ef)) throw Error(from + ": include: env file " + ef + " not found");
            for (auto& [k, v] : read_dotenv(ef, included_lookup)) env[k] = v;
          }
          for (const auto& path : paths) {
            if (std::find(chain.begin(), chain.end(), path) != chain.end())
              throw Error(from + ": include: " + path + " includes itself");
            if (!fs::exists(path)) throw Error(from + ": include: open " + path + ": no such file or directory");
            json doc = read_compose_file(path, included_lookup, warn);
            validate_compose(doc, path);
            json normalized = normalize_file(doc, path, directory, included_lookup, project.env_file_variables);
            Extender nested{included_lookup, warn, project.env_file_variables, {}};
            nested.resolve_all(normalized, path);
            normalized.erase("include");
            normalized.erase("name");
            if (doc.contains("include")) {
              chain.push_back(path);
              include_into(normalized, doc["include"], path, chain);
              chain.pop_back();
            }
            merge_into(into, normalized);
          }
        }
      };
  for (const auto& file : files) {
    std::vector<YamlTag> tags;
    json doc = read_compose_file(file, lookup, warn, &tags);
    // !reset drops what earlier files set there (its own value does not matter); !override
    // replaces it instead of merging.
    std::set<KeyPath> overrides;
    std::vector<KeyPath> resets;
    for (const auto& t : tags) {
      if (t.tag == "!reset") {
        erase_path(doc, t.path);
        resets.push_back(t.path);
      } else {
        overrides.insert(t.path);
      }
    }
    validate_compose(doc, file);
    json normalized = normalize_file(doc, file, project.working_dir, lookup, project.env_file_variables);
    extender.resolve_all(normalized, file);
    normalized.erase("include");
    if (doc.contains("include")) {
      json included = json::object();
      std::vector<std::string> chain = {file};
      include_into(included, doc["include"], file, chain);
      for (const char* kind : {"services", "networks", "volumes", "secrets", "configs"})
        if (included.contains(kind) && included[kind].is_object())
          for (auto& [key, value] : included[kind].items())
            if ((normalized.contains(kind) && normalized[kind].contains(key)) ||
                (merged.contains(kind) && merged[kind].contains(key)))
              throw Error(file + ": " + kind + "." + key + " conflicts with an imported resource of the same name");
      merge_into(merged, included);
    }
    for (const auto& r : resets) erase_path(merged, r);
    merge_into(merged, normalized, "", &overrides);
  }
  resolve_project(project, std::move(merged), options, lookup);
  return project;
}

Project load_document(const nlohmann::json& document, const std::string& source, const std::string& working_dir,
                      const LoadOptions& options) {
  Project project;
  project.config_files = {source};
  project.working_dir = working_dir;
  VariableLookup lookup = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  validate_compose(document, source);
  resolve_project(project, normalize_file(document, source, working_dir, lookup, project.env_file_variables), options,
                  lookup);
  return project;
}

namespace {

// The steps after the files are read and merged: name, profiles, references, prefixes.
void resolve_project(Project& project, json merged, const LoadOptions& options, const VariableLookup& lookup) {
  const std::string& first_file = project.config_files.at(0);
  if (!merged.contains("services") || merged["services"].empty())
    throw Error(first_file + ": no service selected (the file has no services)");

  // The project's name: -p, COMPOSE_PROJECT_NAME, the files' name:, the directory's name.
  std::string name = options.project_name;
  if (name.empty()) name = lookup("COMPOSE_PROJECT_NAME").value_or("");
  if (name.empty() && merged.contains("name") && merged["name"].is_string()) name = merged["name"];
  if (!name.empty() && !valid_project_name(name))
    throw Error("invalid project name \"" + name +
                "\": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as "
                "start with a letter or number");
  if (name.empty()) name = normalize_project_name(fs::path(project.working_dir).filename().string());
  if (name.empty()) throw Error("project name must not be empty (use -p NAME)");
  project.name = name;

  // Profiles: a service with profiles runs only when one of them is active or it is named.
  std::set<std::string> active(options.profiles.begin(), options.profiles.end());
  if (options.profiles.empty())
    if (auto p = lookup("COMPOSE_PROFILES"); p) {
      std::stringstream in(*p);
      std::string one;
      while (std::getline(in, one, ','))
        if (!std::string(trim(one)).empty()) active.insert(std::string(trim(one)));
    }
  json& services = merged["services"];
  for (const auto& named : options.services)
    if (!services.contains(named)) throw Error("no such service: " + named);
  std::set<std::string> enabled;
  for (auto& [sname, svc] : services.items()) {
    bool on = !svc.contains("profiles") || svc["profiles"].empty() || active.count("*") ||
              std::find(options.services.begin(), options.services.end(), sname) != options.services.end();
    if (svc.contains("profiles"))
      for (const auto& p : svc["profiles"]) on = on || active.count(p.get<std::string>());
    if (on) enabled.insert(sname);
  }
  // What an enabled service depends on comes along.
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& sname : std::set<std::string>(enabled)) {
      const json& svc = services[sname];
      if (!svc.contains("depends_on")) continue;
      for (auto& [dep, cfg] : svc["depends_on"].items()) {
        if (!services.contains(dep)) {
          if (cfg.value("required", true))
            throw Error("service \"" + sname + "\" depends on undefined service \"" + dep +
                        "\": invalid compose project");
          continue;
        }
        if (enabled.insert(dep).second) grew = true;
      }
    }
  }
  json kept = json::object();
  for (auto& [sname, svc] : services.items())
    if (enabled.count(sname)) kept[sname] = svc;
  services = kept;

  // References: networks, volumes, volumes_from and network_mode services must exist.
  if (!merged.contains("networks") || merged["networks"].is_null()) merged["networks"] = json::object();
  if (!merged.contains("volumes") || merged["volumes"].is_null()) merged["volumes"] = json::object();
  json& networks = merged["networks"];
  json& volumes = merged["volumes"];
  bool uses_default = false;
  for (auto& [sname, svc] : services.items()) {
    // A service built and not named gets docker compose's image name, PROJECT-SERVICE.
    if (svc.contains("build") && !svc.contains("image")) svc["image"] = name + "-" + sname;
    if (!svc.contains("image"))
      throw Error("service \"" + sname +
                  "\" has neither an image nor a build context specified: invalid compose project");
    std::string mode = svc.value("network_mode", "");
    if (mode.empty() && !svc.contains("networks")) svc["networks"] = {{"default", json::object()}};
    if (!mode.empty() && svc.contains("networks"))
      throw Error("service \"" + sname +
                  "\" declares mutually exclusive `network_mode` and `networks`: invalid compose project");
    if (mode.rfind("service:", 0) == 0 && !services.contains(mode.substr(8)))
      throw Error("service \"" + sname + "\" refers to undefined service " + mode.substr(8) +
                  " in network_mode: invalid compose project");
    if (svc.contains("networks"))
      for (auto& [n, cfg] : svc["networks"].items()) {
        if (n == "default")
          uses_default = true;
        else if (!networks.contains(n))
          throw Error("service \"" + sname + "\" refers to undefined network " + n + ": invalid compose project");
      }
    if (svc.contains("volumes"))
      for (const auto& v : svc["volumes"]) {
        if (v.value("type", "") != "volume" || !v.contains("source")) continue;
        std::string src = scalar_text(v["source"]);
        if (!src.empty() && !volumes.contains(src))
          throw Error("service \"" + sname + "\" refers to undefined volume " + src + ": invalid compose project");
      }
    for (const char* kind : {"secrets", "configs"})
      if (svc.contains(kind))
        for (const auto& ref : svc[kind]) {
          std::string source = ref.is_object() ? scalar_text(ref.value("source", json(""))) : scalar_text(ref);
          if (!merged.contains(kind) || !merged[kind].is_object() || !merged[kind].contains(source))
            throw Error("service \"" + sname + "\" refers to undefined " + std::string(kind).substr(0, 6) + " " +
                        source + ": invalid compose project");
        }
    if (svc.contains("volumes_from"))
      for (const auto& vf : svc["volumes_from"]) {
        std::string ref = vf.get<std::string>();
        if (ref.rfind("container:", 0) == 0) continue;
        if (ref.rfind("service:", 0) == 0) ref = ref.substr(8);
        ref = ref.substr(0, ref.find(':'));
        if (!services.contains(ref))
          throw Error("service \"" + sname + "\" refers to undefined service " + ref +
                      " in volumes_from: invalid compose project");
      }
    int scale = 1;
    if (svc.contains("deploy") && svc["deploy"].is_object() && svc["deploy"].contains("replicas"))
      scale = svc["deploy"]["replicas"].get<int>();
    else if (svc.contains("scale"))
      scale = svc["scale"].get<int>();
    svc["scale"] = scale;
  }
  if (uses_default && !networks.contains("default")) networks["default"] = json::object();
  // Declared networks and volumes get the project's prefix unless external or named.
  for (json* kind : {&networks, &volumes})
    for (auto& [key, cfg] : kind->items()) {
      bool external = cfg.contains("external") &&
                      (cfg["external"].is_boolean() ? cfg["external"].get<bool>() : cfg["external"].is_object());
      if (cfg.contains("external") && cfg["external"].is_object() && cfg["external"].contains("name"))
        cfg["name"] = cfg["external"]["name"];
      if (!cfg.contains("name")) cfg["name"] = external ? key : name + "_" + key;
      cfg["external"] = external;
    }
  merged["name"] = name;
  project.model = json::object();
  project.model["name"] = name;
  project.model["services"] = services;
  project.model["networks"] = networks;
  project.model["volumes"] = volumes;
  for (const char* extra : {"secrets", "configs"})
    if (merged.contains(extra)) project.model[extra] = merged[extra];
  project.ordered_services();  // a cycle is an error now, not half-way through `up`
}

}  // namespace

}  // namespace berth::compose
