// berth compose: a loaded Project (model.hpp) carried out by engine calls, with docker compose's
// names and labels, so that tools reading com.docker.compose.* labels see the same thing.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "compose/model.hpp"
#include "engine/engine.hpp"

namespace berth::engine {
class VolumeStore;
}
namespace berth::image {
class ImageStore;
}

namespace berth::compose {

inline constexpr const char* kProjectLabel = "com.docker.compose.project";
inline constexpr const char* kServiceLabel = "com.docker.compose.service";
inline constexpr const char* kNumberLabel = "com.docker.compose.container-number";
inline constexpr const char* kOneoffLabel = "com.docker.compose.oneoff";
inline constexpr const char* kConfigHashLabel = "com.docker.compose.config-hash";
inline constexpr const char* kWorkingDirLabel = "com.docker.compose.project.working_dir";
inline constexpr const char* kConfigFilesLabel = "com.docker.compose.project.config_files";
inline constexpr const char* kNetworkLabel = "com.docker.compose.network";
inline constexpr const char* kVolumeLabel = "com.docker.compose.volume";
inline constexpr const char* kVersionLabel = "com.docker.compose.version";

struct UpOptions {
  std::vector<std::string> services;  // empty: all
  bool force_recreate = false, no_recreate = false, no_deps = false, no_start = false;
  bool remove_orphans = false;
  std::map<std::string, int> scale;  // --scale SVC=N
  int64_t wait_timeout_ns = 0;       // dependency conditions (0: no limit)
  bool build = false;                // --build: build images before starting containers
};

struct DownOptions {
  bool volumes = false, remove_orphans = false;
  std::optional<int> timeout;
};

// The engine pieces compose needs, and where its progress lines go (docker compose's plain
// progress: " Container p-web-1  Started").
struct Backend {
  engine::Engine& engine;
  engine::VolumeStore& volumes;
  image::ImageStore& images;
  // Makes sure the image is present (pulls it when allowed); throws when it can't.
  std::function<void(const std::string& image)> ensure_image;
  std::ostream& progress;
  // Builds a service's image from its build section (long form, context absolute) and tags it
  // image; unset: building is refused.
  std::function<void(const std::string& service, const nlohmann::json& build, const std::string& image)> build_image =
      nullptr;
};

// The project's containers (by label), oldest number first; one-off (`compose run`) ones only when
// oneoff. services empty: every service, including orphans.
std::vector<engine::Container> project_containers(engine::Engine& engine, const std::string& project,
                                                  const std::vector<std::string>& services, bool oneoff = false);

// A container's service label value (empty: none) and number.
std::string service_of(const engine::Container& c);
int number_of(const engine::Container& c);
// Whether `up` keeps the container as it is: made from this service configuration, and from the
// image its reference names now (else it is recreated).
bool is_current(Backend& backend, const nlohmann::json& service, const engine::Container& c);

// `compose build`, and `up` for a service with a build section whose image is missing (or always
// with `up --build` and pull_policy build): the backend's build_image.
void build_service(Backend& backend, const Project& project, const std::string& service);

// Creates what is missing or changed and starts it; idempotent. Anything this call created is
// removed again when it fails (volumes only while still empty).
void up(Backend& backend, const Project& project, const UpOptions& options);
// Stops and removes the project's containers, then its networks (and named volumes with -v).
void down(Backend& backend, const Project& project, const DownOptions& options);

// `up --wait`: until the service's containers run (and are healthy, when they have a health check).
void wait_ready(Backend& backend, const Project& project, const std::string& service, int64_t timeout_ns);

void start(Backend& backend, const Project& project, const std::vector<std::string>& services);
void stop(Backend& backend, const Project& project, const std::vector<std::string>& services,
          std::optional<int> timeout);
void restart(Backend& backend, const Project& project, const std::vector<std::string>& services,
             std::optional<int> timeout);
// Removes stopped containers (all, with stop_first); volumes: their anonymous volumes too.
void remove(Backend& backend, const Project& project, const std::vector<std::string>& services, bool stop_first,
            bool volumes);

// The engine create body for container `number` of a service (exposed for tests and `compose run`).
nlohmann::json create_body(engine::Engine& engine, const Project& project, const std::string& service, int number,
                           bool oneoff);
// sha256 of the service's configuration: a container whose label differs is recreated by `up`.
std::string config_hash(const nlohmann::json& service);

// `compose run`: creates the networks and volumes the service needs (and starts its dependencies
// unless no_deps), then creates a one-off container from `overrides` applied to the service's body
// ({"Cmd":…, "Entrypoint":…, "Env":[…], "User":…, "WorkingDir":…, "Tty":…, "OpenStdin":…, "Name":…,
// "PortBindings" cleared unless service_ports}). Returns its id.
std::string create_oneoff(Backend& backend, const Project& project, const std::string& service,
                          const nlohmann::json& overrides, bool no_deps, bool service_ports);

}  // namespace berth::compose
