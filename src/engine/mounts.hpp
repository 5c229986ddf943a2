// A container's user mounts: from the create body (Binds, Mounts, Tmpfs, Config.Volumes,
// VolumesFrom) and the image's VOLUME list, validated and ordered, before anything is created.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "storage/mount_spec.hpp"

namespace berth::engine {

struct RequestedMount {
  storage::MountSpec spec;
  std::string mode;         // docker's Mounts[].Mode: the -v option string ("ro", "z"…), "" for --mount
  bool from_image = false;  // an anonymous volume for the image's VOLUME list
  bool from_binds = false;  // a -v (HostConfig.Binds) entry: docker reports Mode "z" for its volumes
};

// HostConfig.Mounts[] item (docker's Mount object) → MountSpec; throws Error naming the problem.
storage::MountSpec mount_from_json(const nlohmann::json& mount);

// Everything the body asks for, plus anonymous volumes for image_volumes (the image config's
// "Volumes" keys) and Config.Volumes not already covered. Throws on duplicates and bad specs.
// volumes_from: the resolved Mounts[] of each --volumes-from container with its ":ro"/":rw" suffix.
std::vector<RequestedMount> requested_mounts(const nlohmann::json& config, const nlohmann::json& host_config,
                                             const nlohmann::json& image_volumes,
                                             const std::vector<std::pair<nlohmann::json, std::string>>& volumes_from);

}  // namespace berth::engine
