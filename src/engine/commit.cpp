#include "engine/commit.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <memory>

#include "engine/engine.hpp"
#include "engine/oci_spec.hpp"
#include "image/oci.hpp"
#include "image/reference.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::engine {

namespace {

constexpr size_t kChunk = 1 << 16;

// Opens path (absolute within upper) beneath upper's fd, never through a symlink: the upper
// directory's contents are the container's to choose.
UniqueFd open_beneath(int upper_fd, const std::string& path, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  std::string rel = path.substr(1);
  long fd = ::syscall(SYS_openat2, upper_fd, rel.c_str(), &how, sizeof how);
  if (fd < 0) throw_errno("open " + path + " in the writable layer");
  return UniqueFd(static_cast<int>(fd));
}

class LayerTar {
 public:
  explicit LayerTar(const std::function<void(const char*, size_t)>& sink) : sink_(sink), a_(archive_write_new()) {
    if (!a_) throw Error("layer tar: out of memory");
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_bytes_in_last_block(a_, 1);
    if (archive_write_open2(a_, this, nullptr, &LayerTar::write_cb, nullptr, nullptr) != ARCHIVE_OK) fail("open");
  }
  ~LayerTar() { archive_write_free(a_); }
  LayerTar(const LayerTar&) = delete;
  LayerTar& operator=(const LayerTar&) = delete;

  // An entry for the object at path (fd: O_PATH, not followed), with data read from upper.
  void put(int upper_fd, const std::string& path, const struct stat& st) {
    Entry e = entry(path.substr(1), st);
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      auto [it, first] = links_.emplace(std::pair{st.st_dev, st.st_ino}, path.substr(1));
      if (!first) {
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_size(e.get(), 0);
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        header(e.get(), path);
        return;
      }
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      UniqueFd parent = open_beneath(upper_fd, parent_of(path), O_PATH | O_DIRECTORY);
      ssize_t n = ::readlinkat(parent.get(), name_of(path).c_str(), target.data(), target.size());
      if (n < 0) throw_errno("readlink " + path + " in the writable layer");
      target.resize(static_cast<size_t>(n));
      archive_entry_set_symlink(e.get(), target.c_str());
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) archive_entry_set_rdev(e.get(), st.st_rdev);
    if (S_ISREG(st.st_mode)) {
      UniqueFd f = open_beneath(upper_fd, path, O_RDONLY);
      struct stat now {};
      if (::fstat(f.get(), &now) < 0) throw_errno("stat " + path + " in the writable layer");
      archive_entry_set_size(e.get(), now.st_size);
      header(e.get(), path);
      std::unique_ptr<char[]> buf(new char[kChunk]);
      int64_t left = now.st_size;
      while (left > 0) {
        ssize_t n = ::read(f.get(), buf.get(), static_cast<size_t>(std::min<int64_t>(left, kChunk)));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("read " + path + " in the writable layer");
        if (n == 0) {  // the file shrank: pad, the header promised its size
          std::fill(buf.get(), buf.get() + std::min<int64_t>(left, kChunk), '\0');
          n = static_cast<ssize_t>(std::min<int64_t>(left, kChunk));
        }
        if (archive_write_data(a_, buf.get(), static_cast<size_t>(n)) < 0) fail("write " + path);
        left -= n;
      }
      return;
    }
    archive_entry_set_size(e.get(), 0);
    header(e.get(), path);
  }

  // An empty regular file: a whiteout (".wh.name") or an opaque marker (".wh..wh..opq").
  void marker(const std::string& rel) {
    Entry e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0);
    archive_entry_set_size(e.get(), 0);
    header(e.get(), rel);
  }

  void finish() {
    if (archive_write_close(a_) != ARCHIVE_OK) fail("close");
  }

  static std::string parent_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == 0 ? "/" : path.substr(0, slash);
  }
  static std::string name_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }

 private:
  using Entry = std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)>;

  Entry entry(const std::string& rel, const struct stat& st) {
    Entry e(archive_entry_new(), archive_entry_free);
    if (!e) throw Error("layer tar: out of memory");
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_filetype(e.get(), st.st_mode & S_IFMT);
    archive_entry_set_perm(e.get(), st.st_mode & 07777);
    archive_entry_set_uid(e.get(), st.st_uid);
    archive_entry_set_gid(e.get(), st.st_gid);
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    return e;
  }

  void header(struct archive_entry* e, const std::string& what) {
    if (archive_write_header(a_, e) < ARCHIVE_WARN) fail("write " + what);
  }

  static la_ssize_t write_cb(struct archive*, void* self, const void* data, size_t len) {
    auto* t = static_cast<LayerTar*>(self);
    try {
      t->sink_(static_cast<const char*>(data), len);
    } catch (...) {
      t->error_ = std::current_exception();
      return -1;
    }
    return static_cast<la_ssize_t>(len);
  }

  [[noreturn]] void fail(const std::string& what) {
    if (error_) std::rethrow_exception(error_);
    const char* msg = archive_error_string(a_);
    throw Error("layer tar: " + what + ": " + (msg ? msg : "error"));
  }

  const std::function<void(const char*, size_t)>& sink_;
  struct archive* a_;
  std::exception_ptr error_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace

void write_layer_tar(const std::string& upper, const std::vector<Change>& changes,
                     const std::function<void(const char*, size_t)>& sink) {
  int fd = ::open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + upper);
  UniqueFd root(fd);
  LayerTar tar(sink);
  for (const auto& c : changes) {
    UniqueFd obj = open_beneath(root.get(), c.path, O_PATH);
    struct stat st {};
    if (::fstat(obj.get(), &st) < 0) throw_errno("stat " + c.path + " in the writable layer");
    std::string rel = c.path.substr(1);
    if (c.kind == 'D') {
      if (S_ISCHR(st.st_mode)) {
        std::string parent = LayerTar::parent_of(c.path);
        tar.marker((parent == "/" ? "" : parent.substr(1) + "/") + ".wh." + LayerTar::name_of(c.path));
      } else {  // an opaque directory: it replaced whatever the layers below had there
        tar.put(root.get(), c.path, st);
        tar.marker(rel + "/.wh..wh..opq");
      }
      continue;
    }
    tar.put(root.get(), c.path, st);
  }
  tar.finish();
}

std::optional<image::LayerResult> store_layer(image::ImageStore& images, const image::ImageRecord* parent,
                                              const std::string& upper, const std::vector<Change>& changes) {
  if (changes.empty()) return std::nullopt;
  image::LayerSpec spec;
  spec.media_type = std::string(image::media::kOciLayer);
  if (parent && !parent->layers.empty()) spec.parent_chain_id = parent->layers.back().chain_id;
  return images.ingest_layer(spec, [&](const image::Sink& sink) { write_layer_tar(upper, changes, sink); });
}

image::ImageRecord commit_container(Engine& engine, image::ImageStore& images, const Container& c,
                                    const image::ChildImage& child) {
  FileLock lease = images.writer_lease();
  image::ImageRecord parent = images.get(c.image_id);
  std::vector<Change> changes = changes_of(engine, images, c);
  // docker diff lists a changed directory alone; its entries that changed follow as their own.
  auto layer = store_layer(images, &parent, engine.container_dir(c.id) + "/upper", changes);
  return image::store_child_image(images, &parent, layer, child);
}

std::string commit(Engine& engine, image::ImageStore& images, const CommitRequest& request) {
  std::string tag;
  if (!request.reference.empty()) {
    image::Reference r = image::parse_reference(request.reference);
    if (!r.digest.empty()) throw StatusError("refusing to create a tag with a digest reference", 125);
    tag = r.name() + ":" + r.tag;
  }
  Container c = engine.get(request.container);
  nlohmann::json stored = c.config.value("Config", nlohmann::json::object());
  nlohmann::json user = request.config.is_object() ? request.config : nlohmann::json::object();
  nlohmann::json merged = user.empty() ? stored : merge_config(user, stored);
  nlohmann::ordered_json config = image::empty_container_config();
  for (const auto& [k, v] : merged.items()) config[k] = v;
  config = image::apply_changes(config, request.changes);
  // A paused container's files don't change while they are read; one the user paused stays so.
  bool paused_here = false;
  if (request.pause && c.state == "running") {
    engine.pause(c.id);
    paused_here = true;
  }
  image::ImageRecord rec;
  try {
    image::ChildImage child;
    child.config = config;
    child.author = request.author;
    child.comment = request.message;
    child.container = c.id;
    rec = commit_container(engine, images, c, child);
  } catch (...) {
    if (paused_here) engine.unpause(c.id);
    throw;
  }
  if (paused_here) engine.unpause(c.id);
  if (!tag.empty()) images.add_ref(rec.id, tag, false);
  return rec.id;
}

}  // namespace berth::engine
