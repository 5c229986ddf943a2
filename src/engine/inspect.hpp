// docker's views of a container: `inspect` JSON and the fields `ps` prints.
#pragma once

#include <nlohmann/json.hpp>

#include "engine/engine.hpp"

namespace berth::engine {

// docker inspect's object for one container (ContainerInspectResponse's shape).
nlohmann::json inspect_json(Engine& engine, const Container& c);

// The container's command line as ps shows it: Path and Args from its OCI spec.
std::vector<std::string> container_args(Engine& engine, const Container& c);

// RFC3339Nano of unix nanoseconds (UTC).
std::string time_string(int64_t ns);

}  // namespace berth::engine
