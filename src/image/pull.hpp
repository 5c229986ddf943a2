// Pulling an image from a registry into the store: resolve the manifest (index → platform),
// fetch the config, then download, hash and unpack every layer in parallel, as streams.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "image/oci.hpp"
#include "image/reference.hpp"
#include "image/registry.hpp"
#include "image/store.hpp"

namespace berth::image {

struct PullOptions {
  std::optional<Platform> platform;  // default: the host's
  RegistryOptions registry;
  size_t parallel = 6;  // layers downloaded at once
};

struct PullEvent {
  enum class Kind { Resolved, LayerWaiting, LayerExists, LayerBytes, LayerDone };
  Kind kind;
  std::string layer;  // short digest of the layer blob
  int64_t current = 0, total = 0;
};
// Called from several threads, one call at a time.
using PullProgress = std::function<void(const PullEvent&)>;

struct PullResult {
  ImageRecord image;
  std::string digest;       // what the reference resolved to (index or manifest)
  bool downloaded = false;  // false: "Image is up to date"
};

PullResult pull_image(ImageStore& store, const Reference& ref, const PullOptions& options,
                      const PullProgress& progress = {});

}  // namespace berth::image
