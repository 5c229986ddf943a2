// Image archives: `save` writes what docker >= 25 writes (a docker-archive and an OCI layout in one
// tar), `load` reads either or both, `import` turns a root filesystem tarball into a one-layer image.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/oci.hpp"
#include "image/store.hpp"

namespace berth::image {

// --- save ---------------------------------------------------------------------------------------

// Writes the images named (docker's rules: "busybox" saves every tag of the repository, "busybox:1"
// that tag, an ID or ID prefix the untagged image) as one tar to the fd that open_output returns.
// Layers go in uncompressed, named by diff_id, as docker-archive readers expect, each verified
// against its diff_id. open_output is called only once every name resolved and every layer blob
// was found (compressed ones decompressed and verified), so "No such image: …" and a missing blob
// leave no output behind; a later failure throws with the tar left without its end marker.
void save_images(ImageStore& store, const std::vector<std::string>& names, const std::function<int()>& open_output);

// --- load ---------------------------------------------------------------------------------------

struct LoadedImage {
  std::string id;                 // "sha256:…" (the config digest)
  std::vector<std::string> tags;  // full names: "docker.io/library/busybox:latest"
  // Tags that pointed at another image before the load: {full name, that image's ID}.
  std::vector<std::pair<std::string, std::string>> replaced;
};

// Reads a tar (plain, gzip, zstd, xz or bzip2) from in_fd: a docker-archive (manifest.json), an
// OCI image layout (index.json; nested indexes resolved for the host platform), or both. Every
// layer is verified against the image config's diff_ids (and its descriptor digest, in a layout).
// All layers of all images are ingested before any image is added, so a bad archive adds nothing;
// what a failed load had already stored is collected. The archive is extracted to a private
// directory under <root>/content/ingest that is always removed.
std::vector<LoadedImage> load_images(ImageStore& store, int in_fd);

// --- import -------------------------------------------------------------------------------------

struct ImportOptions {
  std::vector<std::string> changes;  // --change: Dockerfile instructions
  std::string message;               // --message; default "Imported from <source>"
  std::string source = "-";          // what docker names the source in the default message
  std::string input_name;            // for error messages; empty: standard input
  std::optional<Platform> platform;  // default: the host's
  std::string reference;             // REPOSITORY[:TAG] to tag the image with; empty: untagged
};

// Stores the tarball read from in_fd (plain, gzip or zstd) as the single layer of a new image
// whose config is built from options.changes, as `docker import` does. Returns the stored image.
ImageRecord import_image(ImageStore& store, int in_fd, const ImportOptions& options);

// --- commit and build steps ------------------------------------------------------------------

struct ChildImage {
  nlohmann::ordered_json config;  // the container config of the new image ("Cmd", "Env", …)
  std::string created_by;         // its history entry's created_by ("/bin/sh -c make")
  std::string comment;            // history comment (commit -m)
  std::string author;             // commit -a
  std::string container;          // the container it was committed from, if any
  // Docker's container_config (the step's container config); null leaves it out.
  nlohmann::ordered_json container_config;
};

// Stores an image made from parent (nullptr: `FROM scratch`) plus layer (nullopt: a config-only
// step, recorded in history as an empty layer), untagged, with parent as its parent. Returns it.
ImageRecord store_child_image(ImageStore& store, const ImageRecord* parent, const std::optional<LayerResult>& layer,
                              const ChildImage& child);

// --- --change (pure code) -----------------------------------------------------------------------

// The container config of an image as docker writes it with nothing set (Hostname … Labels, with
// nulls), keys in docker's order.
nlohmann::ordered_json empty_container_config();

// Applies Dockerfile instructions to config, as docker's BuildFromConfig does for `import -c` and
// `commit -c`: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER,
// VOLUME, WORKDIR, with line continuations, comments, quoting and $VAR / ${VAR:-…} expansion
// against the config's Env. Throws Error with docker's message ("RUN is not a valid change
// command", "ENV requires at least one argument", …).
nlohmann::ordered_json apply_changes(const nlohmann::ordered_json& config, const std::vector<std::string>& changes);

// Go's time.Time JSON form for a UTC instant: RFC 3339 with trailing zeros of the nanoseconds cut.
std::string rfc3339_nano(int64_t seconds, long nanos);

}  // namespace berth::image
