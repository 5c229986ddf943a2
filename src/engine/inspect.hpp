// docker's views of a container: `inspect` JSON and the fields `ps` prints.
#pragma once

#include <nlohmann/json.hpp>

#include "engine/engine.hpp"

namespace berth::image {
class ImageStore;
}

namespace berth::engine {

struct Network;
struct Volume;

// docker inspect's object for one container (ContainerInspectResponse's shape).
nlohmann::json inspect_json(Engine& engine, Container c);

// The container's command line as ps shows it: Path and Args from its OCI spec.
std::vector<std::string> container_args(Engine& engine, const Container& c);

// RFC3339Nano of unix nanoseconds (UTC).
std::string time_string(int64_t ns);

// docker's Status text: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
std::string status_text(const Container& c);

// docker's network object (network inspect, GET /networks/{id}), Containers included.
nlohmann::json network_json(Engine& engine, const Network& n);

// docker's volume object (volume inspect, GET /volumes/{name}).
nlohmann::json volume_json(const Volume& v);

// docker's system information object (GET /info; `berth info`). root: the data root.
nlohmann::json system_info(Engine& engine, image::ImageStore& images, const std::string& root, bool debug);

}  // namespace berth::engine
