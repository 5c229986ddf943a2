// /_ping, /version, /info, /system/df; /build until berth builds images.
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <poll.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <set>
#include <thread>

#include "api/server.hpp"
#include "engine/engine.hpp"
#include "engine/events.hpp"
#include "engine/inspect.hpp"
#include "engine/networks.hpp"
#include "engine/volumes.hpp"
#include "image/store.hpp"
#include "logs/json_file.hpp"

namespace berth::api {

using nlohmann::json;

namespace {

constexpr const char* kVersion = "0.1.0";

std::string arch() {
  utsname u{};
  ::uname(&u);
  std::string a = u.machine;
  if (a == "x86_64") return "amd64";
  if (a == "aarch64") return "arm64";
  return a;
}

void ping(Call& c) {
  std::map<std::string, std::string> h = {
      {"Cache-Control", "no-cache, no-store, must-revalidate"}, {"Pragma", "no-cache"}, {"Builder-Version", "1"}};
  if (c.req.method == "HEAD") {
    c.conn.respond(200, "text/plain; charset=utf-8", "", h);
    return;
  }
  c.conn.respond(200, "text/plain; charset=utf-8", "OK", h);
}

void version(Call& c) {
  utsname u{};
  ::uname(&u);
  char built[64];
  std::time_t now = std::time(nullptr);
  std::strftime(built, sizeof built, "%Y-%m-%dT%H:%M:%S.000000000+00:00", std::gmtime(&now));
  c.conn.json(200, {{"Platform", {{"Name", "berth"}}},
                    {"Components", json::array({{{"Name", "Engine"},
                                                 {"Version", kVersion},
                                                 {"Details",
                                                  {{"ApiVersion", "1.41"},
                                                   {"Arch", arch()},
                                                   {"MinAPIVersion", "1.24"},
                                                   {"Os", "linux"},
                                                   {"KernelVersion", u.release}}}}})},
                    {"Version", kVersion},
                    {"ApiVersion", "1.41"},
                    {"MinAPIVersion", "1.24"},
                    {"GitCommit", ""},
                    {"GoVersion", ""},
                    {"Os", "linux"},
                    {"Arch", arch()},
                    {"KernelVersion", u.release},
                    {"BuildTime", built}});
}

void info(Call& c) {
  json j = engine::system_info(c.engine(), c.images(), c.server.options().root, false);
  // What the API has that `berth info` leaves out.
  j["BridgeNfIptables"] = true;
  j["BridgeNfIp6tables"] = true;
  j["RegistryConfig"] = {{"InsecureRegistryCIDRs", json::array({"127.0.0.0/8"})},
                         {"IndexConfigs", json::object()},
                         {"Mirrors", json::array()}};
  j["GenericResources"] = nullptr;
  j["ContainerdCommit"] = {{"ID", ""}, {"Expected", ""}};
  j["RuncCommit"] = {{"ID", ""}, {"Expected", ""}};
  j["InitCommit"] = {{"ID", ""}, {"Expected", ""}};
  if (j["Warnings"].is_null()) j["Warnings"] = json::array();
  c.conn.json(200, j);
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// GET /events: the events table as a stream of JSON messages; from now on unless since is given,
// until the client goes or `until` passes.
void events(Call& c) {
  auto filters = c.req.filters();
  static const std::set<std::string> known = {"config", "container", "daemon", "event",  "image",   "label", "network",
                                              "node",   "plugin",    "scope",  "secret", "service", "type",  "volume"};
  for (const auto& [k, v] : filters)
    if (!known.count(k)) throw HttpError(400, "invalid filter '" + k + "'");
  int64_t now = now_ns();
  std::optional<int64_t> since, until;
  try {
    if (!c.req.q("since").empty()) since = logs::parse_time_arg(c.req.q("since"), now);
    if (!c.req.q("until").empty()) until = logs::parse_time_arg(c.req.q("until"), now);
  } catch (const std::exception& e) {
    throw HttpError(400, e.what());
  }
  int64_t last_seq = since ? 0 : engine::last_event_seq(c.engine().db());
  c.conn.begin_chunked(200, "application/json");
  c.release();
  for (;;) {
    bool past_until = false;
    auto rows = engine::next_events(c.engine().db(), last_seq, since, until, filters, past_until);
    c.release();
    std::string out;
    for (const auto& e : rows) out += engine::event_message(e).dump() + "\n";
    if (!out.empty() && !c.conn.chunk(out)) return;
    if (past_until || (until && now_ns() > *until)) break;
    pollfd p{c.conn.fd(), 0, 0};
    if (::poll(&p, 1, 100) > 0 && (p.revents & (POLLHUP | POLLERR))) return;
  }
  c.conn.end_chunked();
}

int64_t tree_size(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += static_cast<int64_t>(it->file_size(ec));
  }
  return total;
}

// GET /system/df: images, containers (their writable layers) and volumes with their sizes.
void system_df(Call& c) {
  auto& eng = c.engine();
  auto containers = eng.list();
  std::map<std::string, int> image_users, volume_users;
  json cs = json::array();
  for (const auto& k : containers) {
    image_users[k.image_id]++;
    for (const auto& m : k.mounts)
      if (m.value("Type", "") == "volume") volume_users[m.value("Name", "")]++;
    cs.push_back({{"Id", k.id},
                  {"Names", json::array({"/" + k.name})},
                  {"Image", k.image_name},
                  {"ImageID", k.image_id},
                  {"Created", k.created_ns / 1000000000},
                  {"State", k.state},
                  {"Status", engine::status_text(k)},
                  {"SizeRw", tree_size(eng.container_dir(k.id) + "/upper")},
                  {"SizeRootFs", 0},
                  {"Mounts", k.mounts}});
  }
  json images = json::array();
  int64_t layers = 0;
  for (const auto& img : c.images().list()) {
    layers += img.size;
    images.push_back({{"Id", img.id},
                      {"ParentId", ""},
                      {"RepoTags", img.repo_tags},
                      {"RepoDigests", img.repo_digests},
                      {"Created", img.added},
                      {"Size", img.size},
                      {"SharedSize", 0},
                      {"VirtualSize", img.size},
                      {"Labels", json::object()},
                      {"Containers", image_users[img.id]}});
  }
  json volumes = json::array();
  for (const auto& v : c.volumes().list()) {
    json j = engine::volume_json(v);
    j["UsageData"] = {{"Size", tree_size(v.mountpoint)}, {"RefCount", volume_users[v.name]}};
    volumes.push_back(j);
  }
  c.conn.json(200, {{"LayersSize", layers},
                    {"Images", images},
                    {"Containers", cs},
                    {"Volumes", volumes},
                    {"BuildCache", json::array()}});
}

}  // namespace

std::vector<Route> system_routes() {
  return {{"GET", "/_ping", ping}, {"HEAD", "/_ping", ping},   {"GET", "/version", version},
          {"GET", "/info", info},  {"GET", "/events", events}, {"GET", "/system/df", system_df}};
}

}  // namespace berth::api
