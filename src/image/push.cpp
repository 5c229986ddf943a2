#include "image/push.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "image/digest.hpp"
#include "image/oci.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::image {

namespace {

void push_blob(ImageStore& store, RegistryClient& client, const std::string& digest, uint64_t chunk_size,
               bool& existed) {
  std::string path = store.blob_path(digest);
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) throw_errno("stat " + path);
  bool uploaded = client.put_blob(
      digest, static_cast<uint64_t>(st.st_size),
      [&](char* buf, size_t len) -> size_t {
        for (;;) {
          ssize_t n = ::read(fd.get(), buf, len);
          if (n >= 0) return static_cast<size_t>(n);
          if (errno != EINTR) throw_errno("read " + path);
        }
      },
      chunk_size);
  existed = !uploaded;
}

}  // namespace

PushResult push_image(ImageStore& store, const ImageRecord& image, const Reference& ref, const PushOptions& options,
                      const std::function<void(const PushEvent&)>& progress) {
  if (image.manifest_digest.empty() || !store.has_blob(image.manifest_digest))
    throw Error("image " + image.id + " has no stored manifest to push");
  std::string manifest_body = store.read_blob(image.manifest_digest);
  Manifest m = parse_manifest(manifest_body);
  RegistryClient client(ref, options.registry);
  // Top layer first, like docker's output.
  for (size_t i = m.layers.size(); i-- > 0;) {
    const Descriptor& d = m.layers[i];
    if (progress) progress({PushEvent::Kind::Preparing, short_id(d.digest)});
    bool existed = false;
    push_blob(store, client, d.digest, options.chunk_size, existed);
    if (progress) progress({existed ? PushEvent::Kind::Exists : PushEvent::Kind::Pushed, short_id(d.digest)});
  }
  bool existed = false;
  push_blob(store, client, m.config.digest, options.chunk_size, existed);
  PushResult r;
  r.digest = client.put_manifest(ref.digest.empty() ? ref.tag : ref.digest, m.media_type, manifest_body);
  r.size = static_cast<int64_t>(manifest_body.size());
  store.add_ref(image.id, ref.name() + "@" + r.digest, true);
  return r;
}

}  // namespace berth::image
