#include "engine/mounts.hpp"

#include <set>

#include "util/error.hpp"

namespace berth::engine {

namespace {

std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool flag(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

storage::MountSpec mount_from_json(const nlohmann::json& m) {
  if (!m.is_object()) throw Error("invalid mount: " + m.dump());
  storage::MountSpec s;
  std::string type = str(m, "Type");
  if (type == "bind")
    s.type = storage::MountType::Bind;
  else if (type == "volume" || type.empty())
    s.type = storage::MountType::Volume;
  else if (type == "tmpfs")
    s.type = storage::MountType::Tmpfs;
  else
    throw Error("invalid mount config: mount type unknown: \"" + type + "\"");
  std::string target = str(m, "Target");
  if (target.empty()) throw Error("invalid mount config for type \"" + type + "\": field Target must not be empty");
  if (target[0] != '/')
    throw Error("invalid mount config for type \"" + type + "\": invalid mount path: '" + target +
                "' mount path must be absolute");
  s.target = storage::clean_path(target);
  if (s.target == "/") throw Error("invalid specification: destination can't be '/'");
  s.source = str(m, "Source");
  s.read_only = flag(m, "ReadOnly");
  s.consistency = str(m, "Consistency");
  if (s.type == storage::MountType::Bind) {
    if (s.source.empty()) throw Error("invalid mount config for type \"bind\": field Source must not be empty");
    if (s.source[0] != '/')
      throw Error("invalid mount config for type \"bind\": invalid mount path: '" + s.source +
                  "' mount path must be absolute");
    s.source = storage::clean_path(s.source);
    if (auto b = m.find("BindOptions"); b != m.end() && b->is_object()) {
      s.propagation = str(*b, "Propagation");
      s.bind_nonrecursive = flag(*b, "NonRecursive");
      s.create_host_path = flag(*b, "CreateMountpoint");
      if (flag(*b, "ReadOnlyNonRecursive")) s.bind_recursive = "writable";
      if (flag(*b, "ReadOnlyForceRecursive")) s.bind_recursive = "readonly";
    }
  } else if (s.type == storage::MountType::Volume) {
    if (!s.source.empty()) storage::validate_volume_name(s.source);
    s.driver = "local";
    if (auto v = m.find("VolumeOptions"); v != m.end() && v->is_object()) {
      s.nocopy = flag(*v, "NoCopy");
      s.subpath = str(*v, "Subpath");
      if (auto l = v->find("Labels"); l != v->end() && l->is_object())
        for (auto& [k, val] : l->items()) s.labels[k] = val.is_string() ? val.get<std::string>() : val.dump();
      if (auto d = v->find("DriverConfig"); d != v->end() && d->is_object()) {
        if (!str(*d, "Name").empty()) s.driver = str(*d, "Name");
        if (auto o = d->find("Options"); o != d->end() && o->is_object())
          for (auto& [k, val] : o->items()) s.driver_opts[k] = val.is_string() ? val.get<std::string>() : val.dump();
      }
    }
  } else {
    if (!s.source.empty()) throw Error("invalid mount config for type \"tmpfs\": field Source must be empty");
    if (auto t = m.find("TmpfsOptions"); t != m.end() && t->is_object()) {
      if (auto sz = t->find("SizeBytes"); sz != t->end() && sz->is_number_integer()) s.tmpfs_size = sz->get<int64_t>();
      if (auto md = t->find("Mode"); md != t->end() && md->is_number_integer())
        s.tmpfs_mode = md->get<uint32_t>() & 07777;
    }
  }
  return s;
}

std::vector<RequestedMount> requested_mounts(const nlohmann::json& config, const nlohmann::json& host_config,
                                             const nlohmann::json& image_volumes,
                                             const std::vector<std::pair<nlohmann::json, std::string>>& volumes_from) {
  std::vector<RequestedMount> out;
  if (auto b = host_config.find("Binds"); b != host_config.end() && b->is_array()) {
    for (const auto& bind : *b) {
      if (!bind.is_string()) throw Error("invalid bind: " + bind.dump());
      std::string text = bind.get<std::string>();
      RequestedMount r{storage::parse_volume_flag(text), "", false, true};
      // docker's Mode is the third field of the -v string ("ro", "rw,z", "").
      size_t first = text.find(':');
      size_t second = first == std::string::npos ? std::string::npos : text.find(':', first + 1);
      if (second != std::string::npos) r.mode = text.substr(second + 1);
      out.push_back(std::move(r));
    }
  }
  if (auto ms = host_config.find("Mounts"); ms != host_config.end() && ms->is_array())
    for (const auto& m : *ms) out.push_back({mount_from_json(m), "", false});
  if (auto t = host_config.find("Tmpfs"); t != host_config.end() && t->is_object()) {
    for (auto& [path, opts] : t->items()) {
      std::string text = path;
      if (opts.is_string() && !opts.get<std::string>().empty()) text += ":" + opts.get<std::string>();
      out.push_back({storage::parse_tmpfs_flag(text), "", false});
    }
  }
  std::vector<storage::MountSpec> specs;
  for (const auto& r : out) specs.push_back(r.spec);
  storage::check_duplicate_targets(specs);
  std::set<std::string> targets;
  for (const auto& s : specs) targets.insert(s.target);
  // --volumes-from: the other container's mounts, where this one has none of its own.
  for (const auto& [mounts, mode] : volumes_from) {
    for (const auto& m : mounts) {
      std::string dest = str(m, "Destination");
      if (dest.empty() || targets.count(dest)) continue;
      storage::MountSpec s;
      s.target = dest;
      s.source = str(m, "Type") == "volume" ? str(m, "Name") : str(m, "Source");
      s.type = str(m, "Type") == "volume" ? storage::MountType::Volume : storage::MountType::Bind;
      if (s.type == storage::MountType::Volume) s.driver = "local";
      s.read_only = mode.empty() ? !(m.contains("RW") && m["RW"].get<bool>()) : mode == "ro";
      if (s.type == storage::MountType::Bind) s.propagation = str(m, "Propagation");
      s.nocopy = true;  // the volume is in use already: never copy into it again
      targets.insert(dest);
      out.push_back({s, str(m, "Mode"), false});
    }
  }
  auto add_anonymous = [&](const nlohmann::json& volumes, bool from_image) {
    if (!volumes.is_object()) return;
    for (auto& [path, unused] : volumes.items()) {
      (void)unused;
      if (path.empty() || path[0] != '/') throw Error("invalid volume path in config: " + path);
      std::string target = storage::clean_path(path);
      if (target == "/" || targets.count(target)) continue;
      storage::MountSpec s;
      s.type = storage::MountType::Volume;
      s.target = target;
      s.driver = "local";
      targets.insert(target);
      out.push_back({s, "", from_image});
    }
  };
  if (auto v = config.find("Volumes"); v != config.end()) add_anonymous(*v, false);
  add_anonymous(image_volumes, true);
  return out;
}

}  // namespace berth::engine
