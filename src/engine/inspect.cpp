#include "engine/inspect.hpp"

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

json inspect_json(Engine& engine, const Container& c) {
  std::vector<std::string> args = container_args(engine, c);
  json arg_list = json::array();
  for (size_t i = 1; i < args.size(); i++) arg_list.push_back(args[i]);
  std::string dir = engine.container_dir(c.id);
  const char* zero_time = "0001-01-01T00:00:00Z";
  json config = c.config.value("Config", json::object());
  json host_config = c.config.value("HostConfig", json::object());
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
  if (c.health.is_object()) state["Health"] = c.health;
  json network_mode = host_config.value("NetworkMode", "");
  json inspect = {
      {"Id", c.id},
      {"Created", time_string(c.created_ns)},
      {"Path", args.empty() ? "" : args[0]},
      {"Args", arg_list},
      {"State", state},
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
      {"HostConfig", host_config},
      {"GraphDriver",
       {{"Name", "overlay2"},
        {"Data", {{"MergedDir", dir + "/rootfs"}, {"UpperDir", dir + "/upper"}, {"WorkDir", dir + "/work"}}}}},
      {"Mounts", c.mounts},
      {"Config", config},
      {"NetworkSettings",
       {{"Bridge", ""},
        {"SandboxID", ""},
        {"SandboxKey", ""},
        {"Ports", json::object()},
        {"Networks", json::object()}}},
  };
  if (!inspect["Config"].contains("Image")) inspect["Config"]["Image"] = c.image_name;
  return inspect;
}

}  // namespace berth::engine
