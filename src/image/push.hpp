// Pushing a stored image to a registry: blobs the registry lacks, then the manifest.
#pragma once

#include <functional>
#include <string>

#include "image/reference.hpp"
#include "image/registry.hpp"
#include "image/store.hpp"

namespace berth::image {

struct PushOptions {
  RegistryOptions registry;
  uint64_t chunk_size = 0;  // 0: monolithic uploads; else PATCH chunks of this size
};

struct PushEvent {
  enum class Kind { Preparing, Exists, Pushed };
  Kind kind;
  std::string layer;  // short digest
};

struct PushResult {
  std::string digest;  // of the manifest as the registry stored it
  int64_t size = 0;    // manifest bytes
};

PushResult push_image(ImageStore& store, const ImageRecord& image, const Reference& ref, const PushOptions& options,
                      const std::function<void(const PushEvent&)>& progress = {});

}  // namespace berth::image
