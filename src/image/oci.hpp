// OCI image-spec and Docker schema2 documents: descriptors, manifests, indexes, platforms, chain IDs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::image {

namespace media {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}  // namespace media

struct Platform {
  std::string os = "linux";
  std::string architecture;
  std::string variant;
  std::string str() const;  // "linux/arm64/v8"
};

// Parses "os/arch[/variant]" (e.g. --platform linux/arm64); throws Error naming the value.
Platform parse_platform(std::string_view text);
Platform host_platform();
// Normalizes like containerd: aarch64 → arm64, x86_64 → amd64, arm64 variant v8 implied.
bool platform_matches(const Platform& want, const Platform& have);

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  std::optional<Platform> platform;
  nlohmann::json annotations;
  nlohmann::json to_json() const;
};

struct Manifest {
  std::string media_type;  // the manifest's own type (OCI or Docker schema2)
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct Index {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

bool is_index_type(std::string_view media_type);
bool is_manifest_type(std::string_view media_type);
// The media type of a manifest body whose Content-Type is missing or generic: from its
// mediaType field, else from its shape (OCI manifests may omit mediaType).
std::string sniff_media_type(std::string_view body);

Manifest parse_manifest(std::string_view body);
Index parse_index(std::string_view body);
Descriptor parse_descriptor(const nlohmann::json& j, std::string_view what);
// The manifest in index for platform, or nullptr.
const Descriptor* select_manifest(const Index& index, const Platform& platform);

// The rootfs.diff_ids of an image config, validated.
std::vector<std::string> config_diff_ids(const nlohmann::json& config);
// chain_id(L0) = diff_id(L0); chain_id(Ln) = sha256(chain_id(Ln-1) + " " + diff_id(Ln)).
std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids);
// One step of that: the chain ID of diff_id on top of parent (empty for the bottom layer).
std::string chain_id(const std::string& parent, const std::string& diff_id);

}  // namespace berth::image
