#include "image/oci.hpp"

#include <sys/utsname.h>

#include "image/digest.hpp"
#include "util/error.hpp"

namespace berth::image {

using nlohmann::json;

std::string Platform::str() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

namespace {

std::string normalize_arch(std::string arch) {
  if (arch == "x86_64" || arch == "x86-64") return "amd64";
  if (arch == "aarch64") return "arm64";
  if (arch == "armhf" || arch == "armel") return "arm";
  if (arch == "i386" || arch == "i686") return "386";
  return arch;
}

std::string normalize_variant(const std::string& arch, const std::string& variant) {
  if (arch == "arm64" && (variant == "v8" || variant == "8")) return "";
  return variant;
}

}  // namespace

Platform parse_platform(std::string_view text) {
  Platform p;
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  bool bad = parts.size() < 2 || parts.size() > 3;
  for (const auto& s : parts)
    if (s.empty()) bad = true;
  if (bad) throw Error("invalid platform \"" + std::string(text) + "\": want os/arch[/variant]");
  p.os = parts[0];
  p.architecture = normalize_arch(parts[1]);
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

Platform host_platform() {
  struct utsname u {};
  uname(&u);
  Platform p;
  p.architecture = normalize_arch(u.machine);
  return p;
}

bool platform_matches(const Platform& want, const Platform& have) {
  if (want.os != have.os) return false;
  std::string wa = normalize_arch(want.architecture), ha = normalize_arch(have.architecture);
  if (wa != ha) return false;
  std::string wv = normalize_variant(wa, want.variant), hv = normalize_variant(ha, have.variant);
  return wv.empty() || wv == hv;
}

json Descriptor::to_json() const {
  json j = {{"mediaType", media_type}, {"digest", digest}, {"size", size}};
  if (platform) {
    j["platform"] = {{"os", platform->os}, {"architecture", platform->architecture}};
    if (!platform->variant.empty()) j["platform"]["variant"] = platform->variant;
  }
  if (annotations.is_object() && !annotations.empty()) j["annotations"] = annotations;
  return j;
}

bool is_index_type(std::string_view t) { return t == media::kOciIndex || t == media::kDockerList; }
bool is_manifest_type(std::string_view t) { return t == media::kOciManifest || t == media::kDockerManifest; }

namespace {

json parse_json(std::string_view body, std::string_view what) {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    throw Error("malformed " + std::string(what) + ": " + e.what());
  }
}

}  // namespace

std::string sniff_media_type(std::string_view body) {
  json j = parse_json(body, "manifest");
  if (!j.is_object()) throw Error("malformed manifest: not a JSON object");
  if (j.contains("mediaType") && j["mediaType"].is_string()) return j["mediaType"].get<std::string>();
  if (j.contains("manifests")) return std::string(media::kOciIndex);
  if (j.contains("config") && j.contains("layers")) return std::string(media::kOciManifest);
  if (j.value("schemaVersion", 0) == 1)
    throw Error("unsupported manifest: Docker schema 1 (deprecated; push the image again with a current tool)");
  throw Error("malformed manifest: neither an index nor an image manifest");
}

Descriptor parse_descriptor(const json& j, std::string_view what) {
  if (!j.is_object()) throw Error("malformed " + std::string(what) + ": descriptor is not an object");
  Descriptor d;
  try {
    d.media_type = j.value("mediaType", "");
    d.digest = j.at("digest").get<std::string>();
    d.size = j.at("size").get<int64_t>();
    if (j.contains("platform") && j["platform"].is_object()) {
      Platform p;
      p.os = j["platform"].value("os", "");
      p.architecture = j["platform"].value("architecture", "");
      p.variant = j["platform"].value("variant", "");
      d.platform = p;
    }
    if (j.contains("annotations")) d.annotations = j["annotations"];
  } catch (const json::exception& e) {
    throw Error("malformed " + std::string(what) + ": " + e.what());
  }
  require_sha256_digest(d.digest, what);
  if (d.size < 0) throw Error("malformed " + std::string(what) + ": negative size");
  return d;
}

Manifest parse_manifest(std::string_view body) {
  json j = parse_json(body, "manifest");
  Manifest m;
  m.media_type = sniff_media_type(body);
  if (!is_manifest_type(m.media_type)) throw Error("unsupported manifest media type \"" + m.media_type + "\"");
  if (!j.contains("config") || !j.contains("layers") || !j["layers"].is_array())
    throw Error("malformed manifest: config and layers are required");
  m.config = parse_descriptor(j["config"], "manifest config");
  for (const auto& l : j["layers"]) m.layers.push_back(parse_descriptor(l, "manifest layer"));
  return m;
}

Index parse_index(std::string_view body) {
  json j = parse_json(body, "index");
  Index ix;
  ix.media_type = sniff_media_type(body);
  if (!j.contains("manifests") || !j["manifests"].is_array()) throw Error("malformed index: manifests is required");
  for (const auto& m : j["manifests"]) ix.manifests.push_back(parse_descriptor(m, "index entry"));
  return ix;
}

const Descriptor* select_manifest(const Index& index, const Platform& platform) {
  for (const auto& d : index.manifests) {
    if (!d.platform) continue;
    // Attestation manifests (buildkit) carry platform unknown/unknown and never match.
    if (platform_matches(platform, *d.platform)) return &d;
  }
  return nullptr;
}

std::vector<std::string> config_diff_ids(const json& config) {
  std::vector<std::string> ids;
  if (!config.is_object() || !config.contains("rootfs") || !config["rootfs"].is_object())
    throw Error("malformed image config: rootfs is required");
  const json& rootfs = config["rootfs"];
  if (rootfs.value("type", "") != "layers") throw Error("malformed image config: rootfs.type must be \"layers\"");
  if (!rootfs.contains("diff_ids") || !rootfs["diff_ids"].is_array())
    throw Error("malformed image config: rootfs.diff_ids is required");
  for (const auto& d : rootfs["diff_ids"]) {
    if (!d.is_string()) throw Error("malformed image config: diff_id is not a string");
    require_sha256_digest(d.get<std::string>(), "image config diff_id");
    ids.push_back(d.get<std::string>());
  }
  return ids;
}

std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  for (const auto& d : diff_ids) out.push_back(chain_id(out.empty() ? "" : out.back(), d));
  return out;
}

std::string chain_id(const std::string& parent, const std::string& diff_id) {
  return parent.empty() ? diff_id : sha256_digest(parent + " " + diff_id);
}

}  // namespace berth::image
