// Docker-compatible views of stored images: the `image inspect` document and history rows.
// Shared by the CLI and the Engine API server so both say the same thing.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/store.hpp"

namespace berth::image {

// The image inspect JSON (Id, RepoTags, RepoDigests, Parent, Comment, Created, Config, Architecture,
// Os, Size, GraphDriver, RootFS, Metadata), names in docker's familiar form.
nlohmann::json inspect_json(const ImageRecord& image, const std::string& store_root);

struct HistoryRow {
  std::string id;  // the image ID on the top entry, "<missing>" below (like docker)
  int64_t created = 0;
  std::string created_by, comment;
  int64_t size = 0;
  bool empty_layer = false;
};
std::vector<HistoryRow> history(const ImageRecord& image);

// RFC 3339 timestamp → unix seconds (0 when unparsable).
int64_t parse_rfc3339(const std::string& text);
// Familiar display of a stored full name: "docker.io/library/busybox:latest" → "busybox:latest".
std::string familiar_ref(const std::string& full_name);

}  // namespace berth::image
