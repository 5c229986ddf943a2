// The image store: content-addressed blobs (OCI layout), unpacked layers keyed by chain ID and
// shared by every image that has them, and image metadata (tags, digests, configs) in state.db.
//
// On disk, under root:
//   state.db                     images, image_layers, image_refs, layers
//   content/blobs/sha256/<hex>   blobs, each verified on write and renamed into place when complete
//   content/ingest/              partial blobs (never read)
//   layers/<chain-hex>/          unpacked layers (overlayfs lowerdirs); renamed into place when complete
//   layers/.tmp/                 partial layers (never used)
//   locks/                       flock files: gc.lock, blob-<hex>.lock, layer-<hex>.lock
//
// Concurrency: every writer takes gc.lock shared; removal takes it exclusive, so nothing in flight
// (a layer unpacked but not yet referenced by an image) is ever collected. Per-blob and per-layer
// locks make two pulls of the same layer wait for one download instead of doing two.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/file_lock.hpp"

namespace berth::sql {
class Db;
}

namespace berth::image {

// Pushes bytes into a consumer.
using Sink = std::function<void(const char* data, size_t len)>;
// Produces a stream by calling the sink until done; throws on failure.
using Producer = std::function<void(const Sink& sink)>;

struct LayerSpec {
  std::string blob_digest;      // expected digest of the stream; empty: computed (import)
  std::string media_type;       // of the blob, recorded for push/save
  std::string diff_id;          // expected; empty: computed
  std::string parent_chain_id;  // empty for the bottom layer
};

struct LayerResult {
  std::string blob_digest;
  std::string diff_id;
  std::string chain_id;
  std::string media_type;
  int64_t blob_size = 0;
  int64_t size = 0;      // bytes of regular files in the layer
  bool fetched = false;  // false when everything was already present
};

struct ImageLayer {
  std::string chain_id, diff_id, blob_digest, media_type;
  int64_t blob_size = 0;
  int64_t size = 0;
};

struct ImageRecord {
  std::string id;               // config digest
  std::string config;           // the config JSON as stored
  std::string manifest_digest;  // platform manifest in the content store
  std::vector<ImageLayer> layers;
  std::vector<std::string> repo_tags;     // "docker.io/library/busybox:latest"
  std::vector<std::string> repo_digests;  // "docker.io/library/busybox@sha256:…"
  int64_t size = 0;
  int64_t added = 0;  // unix seconds when stored
  // The image a build step (or commit) made this one from; "" for pulled, loaded and imported
  // images. An untagged image with children is a build's intermediate step: `images` hides it.
  std::string parent;
};

class ImageStore {
 public:
  explicit ImageStore(const std::string& root);
  ~ImageStore();
  ImageStore(const ImageStore&) = delete;
  ImageStore& operator=(const ImageStore&) = delete;

  const std::string& root() const { return root_; }
  sql::Db& db() { return *db_; }

  // A shared hold on gc.lock: take one for the whole of a pull, load or import.
  FileLock writer_lease();

  // Blobs.
  bool has_blob(std::string_view digest) const;
  std::string blob_path(std::string_view digest) const;
  std::string read_blob(std::string_view digest) const;
  // Verifies data against expected (when given) and stores it; returns the digest.
  std::string put_blob(std::string_view data, std::string_view expected_digest = {});

  // Layers.
  bool has_layer(std::string_view chain_id) const;
  std::string layer_dir(std::string_view chain_id) const;
  // True when nothing would be fetched for spec (needs a known diff_id).
  bool layer_ready(const LayerSpec& spec) const;
  // Streams one layer blob in a single pass: hashes it, writes it to the content store (unless
  // present) and unpacks it (unless the layer is present), then verifies the blob digest and the
  // diff_id. produce is called only when something is missing, after the per-layer locks are held,
  // so concurrent ingestions of one layer fetch it once.
  LayerResult ingest_layer(const LayerSpec& spec, const Producer& produce);

  // Images.
  // Stores the image and points its tags and digests at it (moving them from other images).
  void add_image(const ImageRecord& image);
  // Resolves a reference ("busybox", "busybox:1.36", "localhost:5000/a@sha256:…"), a full
  // ID ("sha256:<hex>" or "<hex>") or a unique ID prefix.
  std::optional<ImageRecord> find(std::string_view name_or_id) const;
  ImageRecord get(std::string_view id) const;
  std::vector<ImageRecord> list() const;
  void add_ref(std::string_view image_id, std::string_view full_name, bool is_digest);
  bool remove_ref(std::string_view full_name);
  // Deletes the image row (its refs go too), then collects layers and blobs nothing references.
  // Refused (Error) while the image has users.
  void delete_image(std::string_view id);
  // Deletes the image row only; collect_garbage() later frees what it alone used. Refused
  // while the image has users.
  void delete_image_row(std::string_view id);

  // delete_image, then its parent, and that one's, while each is untagged and has no other child
  // and no user (docker's removal of a build's intermediate images; prune_parents=false: rmi
  // --no-prune). Returns the IDs deleted, id first.
  std::vector<std::string> delete_image_and_parents(std::string_view id, bool prune_parents = true);
  // image prune: deletes every image that select() picks and nothing uses (no container, no
  // child image), again and again until none is left (a build's chain goes once its last image
  // has), then collects what they alone held. Returns the deleted images (with the names they
  // had) and the bytes reclaimed.
  std::pair<std::vector<ImageRecord>, int64_t> prune_images(const std::function<bool(const ImageRecord&)>& select);
  // Forgets the build cache (its images stay, as images); returns how many entries went.
  int64_t clear_build_cache();
  // Images whose parent is id.
  std::vector<std::string> children(std::string_view id) const;
  // The build cache: the image that the step with this key made from parent (an image ID).
  std::optional<std::string> cached_step(std::string_view parent, std::string_view key) const;
  void record_step(std::string_view parent, std::string_view key, std::string_view image_id);

  // Users of an image (containers, by ID): an image with users is never deleted, so its layers
  // stay under every container built on them; `rmi -f` can only untag it.
  void add_image_user(std::string_view image_id, std::string_view user);
  void remove_image_user(std::string_view image_id, std::string_view user);
  std::vector<std::string> image_users(std::string_view image_id) const;
  // Removes unreferenced layers and blobs and partial ingestions; returns bytes reclaimed.
  int64_t collect_garbage();

 private:
  ImageRecord load_record(std::string_view id) const;
  std::string root_;
  std::unique_ptr<sql::Db> db_;
};

// Lowercased "sha256:<hex>" → "<hex>" first 12 characters (docker's short ID).
std::string short_id(std::string_view digest);

}  // namespace berth::image
