#include "image/pull.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "image/digest.hpp"
#include "util/error.hpp"

namespace berth::image {

using nlohmann::json;

namespace {

bool is_layer_type(std::string_view t) {
  return t == media::kOciLayer || t == media::kOciLayerGzip || t == media::kOciLayerZstd ||
         t == media::kDockerLayerGzip || t == "application/vnd.docker.image.rootfs.diff.tar";
}

}  // namespace

PullResult pull_image(ImageStore& store, const Reference& ref, const PullOptions& options,
                      const PullProgress& progress) {
  std::mutex progress_mu;
  auto report = [&](const PullEvent& e) {
    if (!progress) return;
    std::lock_guard lk(progress_mu);
    progress(e);
  };
  FileLock lease = store.writer_lease();
  RegistryClient client(ref, options.registry);
  Platform platform = options.platform.value_or(host_platform());

  RegistryClient::Manifest top = client.get_manifest(ref.digest.empty() ? ref.tag : ref.digest);
  std::string top_type =
      top.media_type.empty() || top.media_type == "application/json" ? sniff_media_type(top.body) : top.media_type;
  RegistryClient::Manifest platform_manifest = top;
  if (is_index_type(top_type)) {
    Index index = parse_index(top.body);
    const Descriptor* d = select_manifest(index, platform);
    if (!d)
      throw Error("no matching manifest for " + platform.str() + " in the manifest list entries of " + ref.familiar());
    platform_manifest = client.get_manifest(d->digest);
  } else if (!is_manifest_type(top_type)) {
    throw Error("unsupported manifest media type \"" + top_type + "\" for " + ref.familiar());
  }
  Manifest manifest = parse_manifest(platform_manifest.body);
  report({PullEvent::Kind::Resolved, "", 0, 0});

  std::string config_body;
  if (store.has_blob(manifest.config.digest)) {
    config_body = store.read_blob(manifest.config.digest);
  } else {
    client.get_blob(manifest.config.digest, [&](const char* p, size_t n) {
      if (config_body.size() + n > (64u << 20)) throw Error("image config larger than 64 MiB");
      config_body.append(p, n);
    });
    store.put_blob(config_body, manifest.config.digest);
  }
  json config;
  try {
    config = json::parse(config_body);
  } catch (const json::exception& e) {
    throw Error("malformed image config " + manifest.config.digest + ": " + e.what());
  }
  if (options.platform && config.is_object() && config.contains("architecture")) {
    Platform have;
    have.os = config.value("os", "linux");
    have.architecture = config.value("architecture", "");
    have.variant = config.value("variant", "");
    if (!platform_matches(*options.platform, have))
      throw Error("image " + ref.familiar() + " is " + have.str() + ", which does not match the requested platform " +
                  options.platform->str());
  }
  std::vector<std::string> diff_ids = config_diff_ids(config);
  if (diff_ids.size() != manifest.layers.size())
    throw Error("image " + ref.familiar() + ": the manifest has " + std::to_string(manifest.layers.size()) +
                " layers but the config lists " + std::to_string(diff_ids.size()));
  std::vector<std::string> chains = chain_ids(diff_ids);
  for (const auto& l : manifest.layers)
    if (!is_layer_type(l.media_type))
      throw Error("image " + ref.familiar() + ": unsupported layer media type \"" + l.media_type + "\"");

  std::vector<LayerSpec> specs(manifest.layers.size());
  std::vector<LayerResult> results(manifest.layers.size());
  for (size_t i = 0; i < specs.size(); i++) {
    specs[i] = {manifest.layers[i].digest, manifest.layers[i].media_type, diff_ids[i], i ? chains[i - 1] : ""};
    report({store.layer_ready(specs[i]) ? PullEvent::Kind::LayerExists : PullEvent::Kind::LayerWaiting,
            short_id(manifest.layers[i].digest), 0, manifest.layers[i].size});
  }
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  std::exception_ptr first_error;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (;;) {
      size_t i = next++;
      if (i >= specs.size() || failed) return;
      try {
        const Descriptor& d = manifest.layers[i];
        std::string sid = short_id(d.digest);
        int64_t got = 0, last_report = 0;
        results[i] = store.ingest_layer(specs[i], [&](const Sink& sink) {
          client.get_blob(d.digest, [&](const char* p, size_t n) {
            if (failed) throw Error("pull cancelled");
            got += static_cast<int64_t>(n);
            if (got > d.size) throw Error("layer " + d.digest + " is larger than its descriptor says");
            sink(p, n);
            if (got - last_report >= (256 << 10) || got == d.size) {
              last_report = got;
              report({PullEvent::Kind::LayerBytes, sid, got, d.size});
            }
          });
        });
        if (results[i].fetched) report({PullEvent::Kind::LayerDone, sid, d.size, d.size});
      } catch (...) {
        std::lock_guard lk(error_mu);
        if (!first_error) first_error = std::current_exception();
        failed = true;
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  size_t n_threads = std::min(std::max<size_t>(options.parallel, 1), specs.size());
  for (size_t t = 0; t < n_threads; t++) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);

  bool downloaded = false;
  for (const auto& r : results) downloaded = downloaded || r.fetched;
  std::string image_id = manifest.config.digest;
  downloaded = downloaded || !store.find(image_id).has_value();
  store.put_blob(platform_manifest.body, platform_manifest.digest);
  if (top.digest != platform_manifest.digest) store.put_blob(top.body, top.digest);

  ImageRecord rec;
  rec.id = image_id;
  rec.config = config_body;
  rec.manifest_digest = platform_manifest.digest;
  for (size_t i = 0; i < results.size(); i++)
    rec.layers.push_back({results[i].chain_id, results[i].diff_id, results[i].blob_digest,
                          manifest.layers[i].media_type, results[i].blob_size, results[i].size});
  if (ref.digest.empty()) rec.repo_tags.push_back(ref.name() + ":" + ref.tag);
  rec.repo_digests.push_back(ref.name() + "@" + top.digest);
  // The tag may have pointed at an older image: that one keeps its other names or becomes dangling.
  if (ref.digest.empty()) {
    auto old = store.find(ref.name() + ":" + ref.tag);
    if (old && old->id != image_id) downloaded = true;
  }
  store.add_image(rec);
  PullResult res;
  res.image = store.get(image_id);
  res.digest = top.digest;
  res.downloaded = downloaded;
  return res;
}

}  // namespace berth::image
