// Image layers from writable layers: `berth commit` and the steps of `berth build`.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/diff.hpp"
#include "image/archive.hpp"
#include "image/store.hpp"

namespace berth::engine {

class Engine;
struct Container;

// Writes the changes found in an overlay upper directory (container_changes order) as a layer tar
// in the OCI/docker form: a deletion (a 0/0 character device) becomes "<dir>/.wh.<name>", an
// opaque directory its entry plus "<dir>/.wh..wh..opq", files hard-linked together within the
// layer a hard link entry. Every object is opened beneath upper without following symlinks.
void write_layer_tar(const std::string& upper, const std::vector<Change>& changes,
                     const std::function<void(const char*, size_t)>& sink);

// Stores the layer of changes in upper (over the image parent, nullptr for none) in the image
// store; nullopt when there are no changes.
std::optional<image::LayerResult> store_layer(image::ImageStore& images, const image::ImageRecord* parent,
                                              const std::string& upper, const std::vector<Change>& changes);

// docker commit: the container's changes (as `diff` shows them) as a new layer on its image, and
// an image with child's config, parented on the container's image. Returns the new image.
image::ImageRecord commit_container(Engine& engine, image::ImageStore& images, const Container& c,
                                    const image::ChildImage& child);

struct CommitRequest {
  std::string container;             // name or ID
  std::string reference;             // REPOSITORY[:TAG] to tag the image with; empty: untagged
  std::string author, message;       // -a, -m
  std::vector<std::string> changes;  // -c: Dockerfile instructions
  nlohmann::json config;             // the API's body: Config fields that override the container's
  bool pause = true;                 // pause a running container while its layer is read
};

// docker commit (CLI and POST /commit): the config is the container's, with request.config's
// fields winning and then request.changes applied. Returns the new image's ID.
std::string commit(Engine& engine, image::ImageStore& images, const CommitRequest& request);

}  // namespace berth::engine
