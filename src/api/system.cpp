// /_ping, /version, /info, /system/df; /build until berth builds images.
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <ctime>

#include "api/server.hpp"
#include "engine/engine.hpp"
#include "engine/inspect.hpp"
#include "engine/networks.hpp"
#include "engine/volumes.hpp"
#include "image/store.hpp"

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

void build(Call& c) { c.conn.error(501, "berth does not build images yet (POST /build is not implemented)"); }

}  // namespace

std::vector<Route> system_routes() {
  return {{"GET", "/_ping", ping},
          {"HEAD", "/_ping", ping},
          {"GET", "/version", version},
          {"GET", "/info", info},
          {"POST", "/build", build}};
}

}  // namespace berth::api
