#include "image/archive.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "image/decompress.hpp"
#include "image/digest.hpp"
#include "image/inspect.hpp"
#include "image/reference.hpp"
#include "util/docker_syntax.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace berth::image {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

constexpr size_t kChunk = size_t{1} << 20;
constexpr int64_t kMaxJson = int64_t{64} << 20;  // configs, manifests, indexes: far below this
constexpr std::string_view kAnnotationImageName = "io.containerd.image.name";
constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";

// A private directory, removed with everything in it when the owner goes out of scope.
class TempDir {
 public:
  explicit TempDir(std::string path) : path_(std::move(path)) {
    if (::mkdir(path_.c_str(), 0700) < 0) throw_errno("mkdir " + path_);
  }
  ~TempDir() {
    try {
      remove_tree(path_);
    } catch (...) {
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A file removed when the owner goes out of scope, unless released (renamed into place).
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

// Pax headers carry UTF-8 names, which libarchive converts to the locale's charset: C.UTF-8 makes
// that an identity for this thread.
class Utf8Locale {
 public:
  Utf8Locale() : loc_(::newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t{})) {
    if (loc_) old_ = ::uselocale(loc_);
  }
  ~Utf8Locale() {
    if (loc_) {
      ::uselocale(old_);
      ::freelocale(loc_);
    }
  }
  Utf8Locale(const Utf8Locale&) = delete;
  Utf8Locale& operator=(const Utf8Locale&) = delete;

 private:
  locale_t loc_;
  locale_t old_ = locale_t{};
};

size_t read_some(int fd, char* buf, size_t len, const std::string& what) {
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) throw_errno("read " + what);
  }
}

int64_t fd_size(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) < 0) throw_errno("stat " + what);
  return st.st_size;
}

Compression sniff_compression(std::string_view head) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
  if (head.size() >= 2 && b(0) == 0x1f && b(1) == 0x8b) return Compression::gzip;
  if (head.size() >= 4 && b(0) == 0x28 && b(1) == 0xb5 && b(2) == 0x2f && b(3) == 0xfd) return Compression::zstd;
  return Compression::none;
}

// Formats unpack_layer cannot read, named so the error says what to do.
const char* unsupported_compression(std::string_view head) {
  static constexpr char kXz[] = {'\xfd', '7', 'z', 'X', 'Z', '\0'};
  if (head.substr(0, sizeof kXz) == std::string_view(kXz, sizeof kXz)) return "xz";
  if (head.size() >= 3 && head.substr(0, 3) == "BZh") return "bzip2";
  return nullptr;
}

std::string layer_media_type(Compression c) {
  switch (c) {
    case Compression::gzip:
      return std::string(media::kOciLayerGzip);
    case Compression::zstd:
      return std::string(media::kOciLayerZstd);
    case Compression::none:
      break;
  }
  return std::string(media::kOciLayer);
}

// The OCI manifest berth stores for an image that came without one (import, docker-archive).
std::string make_manifest(const std::string& config_digest, size_t config_size, const std::vector<ImageLayer>& layers) {
  ojson ls = ojson::array();
  for (const auto& l : layers)
    ls.push_back(ojson{{"mediaType", l.media_type}, {"digest", l.blob_digest}, {"size", l.blob_size}});
  ojson m{{"schemaVersion", 2},
          {"mediaType", media::kOciManifest},
          {"config", ojson{{"mediaType", media::kOciConfig}, {"digest", config_digest}, {"size", config_size}}},
          {"layers", ls}};
  return m.dump();
}

// Full stored name ("docker.io/library/busybox:latest") of a tag given in any form; throws Error.
std::string full_tag(const std::string& text, std::string_view what) {
  Reference r;
  try {
    r = parse_reference(text);
  } catch (const Error& e) {
    throw Error(std::string(what) + ": " + e.what());
  }
  if (!r.digest.empty()) throw Error(std::string(what) + ": \"" + text + "\" is a digest reference, not a tag");
  return r.name() + ":" + r.tag;
}

// --- tar writing --------------------------------------------------------------------------------

// A tar stream on an fd. Unless finish() completed, the destructor fails the archive so no
// end-of-archive trailer is written after a partial stream.
class TarWriter {
 public:
  explicit TarWriter(int fd) : a_(archive_write_new()) {
    if (!a_) throw Error("save: out of memory");
    check(archive_write_set_format_pax_restricted(a_), "set tar format");
    // Like Go's archive/tar: two zero blocks at the end, no padding to a 10 KiB record.
    check(archive_write_set_bytes_in_last_block(a_, 1), "set block size");
    check(archive_write_open_fd(a_, fd), "open output");
  }
  ~TarWriter() {
    if (!done_) archive_write_fail(a_);
    archive_write_free(a_);
  }
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  void dir(const std::string& name) { header(name, AE_IFDIR, 0755, 0, 0); }
  void file(const std::string& name, std::string_view content, int64_t mtime = 0) {
    begin(name, static_cast<int64_t>(content.size()), mtime);
    data(content.data(), content.size());
  }
  // A regular file of exactly size bytes, given by data() calls.
  void begin(const std::string& name, int64_t size, int64_t mtime = 0) { header(name, AE_IFREG, 0644, size, mtime); }
  void data(const char* p, size_t n) {
    while (n > 0) {
      la_ssize_t w = archive_write_data(a_, p, n);
      if (w < 0) fail("write");
      if (w == 0) throw Error("save: internal error: tar entry overflow");
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void finish() {
    check(archive_write_close(a_), "close");
    done_ = true;
  }

 private:
  void header(const std::string& name, unsigned type, int perm, int64_t size, int64_t mtime) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), static_cast<mode_t>(perm));
    archive_entry_set_size(e.get(), size);
    archive_entry_set_mtime(e.get(), mtime, 0);
    check(archive_write_header(a_, e.get()), "write header of " + name);
  }
  void check(int r, const std::string& what) {
    if (r < ARCHIVE_WARN) fail(what);
  }
  [[noreturn]] void fail(const std::string& what) {
    const char* msg = archive_error_string(a_);
    throw Error("save: " + what + ": " + (msg ? msg : "libarchive error"), archive_errno(a_));
  }
  struct archive* a_;
  bool done_ = false;
};

// --- save ---------------------------------------------------------------------------------------

struct SaveImage {
  ImageRecord rec;
  std::vector<std::string> tags;  // full names
};

// True when text names a tag or digest ("busybox:1", "a@sha256:…"), not a bare repository.
bool has_tag_or_digest(std::string_view text) {
  if (text.find('@') != std::string_view::npos) return true;
  size_t colon = text.rfind(':');
  size_t slash = text.rfind('/');
  return colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash);
}

std::vector<SaveImage> resolve_for_save(ImageStore& store, const std::vector<std::string>& names) {
  std::vector<SaveImage> out;
  auto add = [&](const ImageRecord& rec, const std::string& tag) {
    auto it = std::find_if(out.begin(), out.end(), [&](const SaveImage& s) { return s.rec.id == rec.id; });
    if (it == out.end()) {
      out.push_back({rec, {}});
      it = out.end() - 1;
    }
    if (!tag.empty() && std::find(it->tags.begin(), it->tags.end(), tag) == it->tags.end()) it->tags.push_back(tag);
  };
  for (const auto& name : names) {
    if (!is_sha256_digest(name) && !has_tag_or_digest(name)) {
      // A bare repository saves all of its tags (docker's rule); failing that it may be an ID prefix.
      bool found = false;
      try {
        std::string prefix = parse_reference(name).name() + ":";
        for (const auto& rec : store.list())
          for (const auto& t : rec.repo_tags)
            if (t.compare(0, prefix.size(), prefix) == 0 && t.find('/', prefix.size()) == std::string::npos) {
              add(rec, t);
              found = true;
            }
      } catch (const Error&) {
      }
      if (found) continue;
      auto img = store.find(name);
      if (!img) throw Error("No such image: " + name);
      add(*img, "");
      continue;
    }
    auto img = store.find(name);
    if (!img) throw Error("No such image: " + name);
    std::string tag;
    if (!is_sha256_digest(name)) {
      Reference r = parse_reference(name);
      if (r.digest.empty()) tag = r.name() + ":" + r.tag;
    }
    add(*img, tag);
  }
  return out;
}

struct LayerOut {
  std::string diff_id, blob_digest;
  int64_t tar_size = 0;
  bool compressed = false;
};

// Streams the uncompressed layer tar of a stored blob to sink, verifying it hashes to diff_id.
// Returns the uncompressed size.
int64_t stream_layer(ImageStore& store, const LayerOut& l, const std::function<void(const char*, size_t)>& sink) {
  std::string path = store.blob_path(l.blob_digest);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw Error("layer " + l.diff_id + ": blob " + l.blob_digest + " is not in the content store");
    throw_errno("open " + path);
  }
  UniqueFd owner(fd);
  Sha256 hash;
  int64_t total = 0;
  auto emit = [&](const char* p, size_t n) {
    hash.update(p, n);
    total += static_cast<int64_t>(n);
    sink(p, n);
  };
  std::unique_ptr<char[]> buf(new char[kChunk]);
  if (l.compressed) {
    Decompressor d([&](char* b, size_t len) { return read_some(fd, b, len, path); });
    for (size_t n; (n = d.read(buf.get(), kChunk)) > 0;) emit(buf.get(), n);
  } else {
    for (size_t n; (n = read_some(fd, buf.get(), kChunk, path)) > 0;) emit(buf.get(), n);
  }
  std::string got = hash.digest();
  if (got != l.diff_id)
    throw Error("layer " + l.diff_id + ": the stored blob " + l.blob_digest + " holds " + got +
                " (content store corrupt?)");
  return total;
}

int64_t created_time(const std::string& config) {
  json c = json::parse(config, nullptr, false);
  if (!c.is_object() || !c.contains("created") || !c["created"].is_string()) return 0;
  return std::max<int64_t>(0, parse_rfc3339(c["created"].get<std::string>()));
}

// --- load ---------------------------------------------------------------------------------------

// Lexically cleans a relative path inside the archive ("./a//b/../c" → "a/c"). dotdot: whether
// ".." may pop a component (JSON paths, link targets) or is refused outright (entry names).
// Returns nullopt when the path is absolute or climbs out of the archive.
std::optional<std::string> clean_archive_path(std::string_view raw, bool dotdot) {
  if (raw.empty() || raw.front() == '/') return std::nullopt;
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string_view comp = raw.substr(i, j - i);
    i = j + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (!dotdot || parts.empty()) return std::nullopt;
      parts.pop_back();
      continue;
    }
    parts.push_back(comp);
  }
  std::string out;
  for (auto p : parts) {
    if (!out.empty()) out += '/';
    out += p;
  }
  return out;
}

// The archive, extracted: regular files and directories on disk, links only as a table, so
// nothing on disk can point outside the directory.
struct Extracted {
  std::string dir;
  std::map<std::string, std::string> symlinks;   // path → target as written
  std::map<std::string, std::string> hardlinks;  // path → cleaned target path

  // The on-disk path of a file named in the archive's JSON, links followed inside the archive.
  std::string resolve(const std::string& raw, const std::string& what) const {
    auto cleaned = clean_archive_path(raw, true);
    if (!cleaned || cleaned->empty()) throw Error(what + ": path \"" + raw + "\" escapes the archive");
    std::string path = *cleaned;
    for (int hops = 0; hops < 64; hops++) {
      bool changed = false;
      for (size_t pos = 0;;) {
        size_t slash = path.find('/', pos);
        std::string prefix = path.substr(0, slash);
        if (auto it = symlinks.find(prefix); it != symlinks.end()) {
          size_t up = prefix.rfind('/');
          std::string joined = up == std::string::npos ? it->second : prefix.substr(0, up) + "/" + it->second;
          if (slash != std::string::npos) joined += path.substr(slash);
          auto next = clean_archive_path(joined, true);
          if (!next || next->empty())
            throw Error(what + ": \"" + raw + "\" leads through link \"" + prefix + "\" out of the archive");
          path = *next;
          changed = true;
          break;
        }
        if (slash == std::string::npos) break;
        pos = slash + 1;
      }
      if (!changed) {
        auto h = hardlinks.find(path);
        if (h == hardlinks.end()) return dir + "/" + path;
        path = h->second;
      }
    }
    throw Error(what + ": too many levels of links resolving \"" + raw + "\"");
  }

  bool exists(const std::string& raw) const {
    try {
      struct stat st {};
      return ::lstat(resolve(raw, "").c_str(), &st) == 0 && S_ISREG(st.st_mode);
    } catch (const Error&) {
      return false;
    }
  }

  UniqueFd open(const std::string& raw, const std::string& what) const {
    std::string path = resolve(raw, what);
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
        throw Error(what + ": \"" + raw + "\" is not in the archive");
      throw_errno("open " + path);
    }
    UniqueFd owner(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0) throw_errno("stat " + path);
    if (!S_ISREG(st.st_mode)) throw Error(what + ": \"" + raw + "\" is not a regular file in the archive");
    return owner;
  }

  std::string read(const std::string& raw, const std::string& what) const {
    UniqueFd fd = open(raw, what);
    if (fd_size(fd.get(), raw) > kMaxJson) throw Error(what + ": \"" + raw + "\" is larger than 64 MiB");
    std::string out;
    char buf[65536];
    for (size_t n; (n = read_some(fd.get(), buf, sizeof buf, raw)) > 0;) out.append(buf, n);
    return out;
  }
};

struct ArchiveReader {
  struct archive* a = archive_read_new();
  ~ArchiveReader() { archive_read_free(a); }
  std::string error() const {
    const char* m = archive_error_string(a);
    return m ? m : "libarchive error";
  }
};

void extract_archive(int in_fd, Extracted& x) {
  Utf8Locale utf8;
  ArchiveReader r;
  if (!r.a) throw Error("load: out of memory");
  archive_read_support_filter_all(r.a);
  archive_read_support_format_tar(r.a);
  // Opening reads the first block and detects the format: failing here means "not a tar".
  if (archive_read_open_fd(r.a, in_fd, 1 << 16) != ARCHIVE_OK)
    throw Error("load: the input is not a tar archive: " + r.error());
  std::unique_ptr<char[]> buf(new char[kChunk]);
  bool first = true;
  for (;;) {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(r.a, &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      if (first) throw Error("load: the input is not a tar archive: " + r.error());
      throw Error("load: reading the archive: " + r.error());
    }
    first = false;
    const char* raw_name = archive_entry_pathname(e);
    std::string raw = raw_name ? raw_name : "";
    auto name = clean_archive_path(raw, false);
    if (!name) throw Error("load: archive entry \"" + raw + "\": refusing a path outside the archive");
    if (name->empty()) continue;  // "./"
    if (const char* link = archive_entry_hardlink(e)) {
      auto target = clean_archive_path(link, false);
      if (!target || target->empty())
        throw Error("load: archive entry \"" + raw + "\": hard link to \"" + link + "\" outside the archive");
      x.hardlinks[*name] = *target;
      continue;
    }
    std::string path = x.dir + "/" + *name;
    switch (archive_entry_filetype(e)) {
      case AE_IFDIR:
        mkdir_p(path, 0700);
        break;
      case AE_IFLNK:
        x.symlinks[*name] = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
        break;
      case AE_IFREG: {
        if (size_t slash = path.rfind('/'); slash > x.dir.size()) mkdir_p(path.substr(0, slash), 0700);
        x.symlinks.erase(*name);
        x.hardlinks.erase(*name);
        UniqueFd out = open_or_throw(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
        for (;;) {
          la_ssize_t n = archive_read_data(r.a, buf.get(), kChunk);
          if (n < 0) throw Error("load: reading \"" + raw + "\" from the archive: " + r.error());
          if (n == 0) break;
          write_all(out.get(), std::string_view(buf.get(), static_cast<size_t>(n)), "write " + path);
        }
        break;
      }
      default:
        break;  // devices, fifos: nothing an image archive needs
    }
  }
}

json parse_json_text(const std::string& text, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(what + ": malformed JSON: " + e.what());
  }
}

struct PlannedLayer {
  std::string file;         // path in the archive
  std::string blob_digest;  // expected, from an OCI descriptor; empty: computed
  std::string media_type;   // from the descriptor; empty: sniffed
};

struct PlannedImage {
  std::string id, config_body;
  std::vector<std::string> diff_ids;
  std::vector<PlannedLayer> layers;
  std::string manifest_body, manifest_digest;  // from an OCI layout; empty: generated
  std::vector<std::string> tags;               // full names
  std::string what;                            // for messages
};

void add_tag(PlannedImage& p, const std::string& tag) {
  if (std::find(p.tags.begin(), p.tags.end(), tag) == p.tags.end()) p.tags.push_back(tag);
}

// Finds or creates the plan for config_body (images are merged by ID).
PlannedImage& plan_for(std::vector<PlannedImage>& plans, const std::string& config_body, const std::string& what,
                       bool& created) {
  std::string id = sha256_digest(config_body);
  for (auto& p : plans)
    if (p.id == id) {
      created = false;
      return p;
    }
  created = true;
  PlannedImage p;
  p.id = id;
  p.config_body = config_body;
  p.what = what;
  json cfg = parse_json_text(config_body, what + ": image config");
  if (cfg.is_object() && cfg.contains("os") && cfg["os"].is_string() && cfg["os"] != "linux")
    throw Error(what + ": image operating system \"" + cfg["os"].get<std::string>() +
                "\" cannot be used on this platform");
  try {
    p.diff_ids = config_diff_ids(cfg);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  plans.push_back(std::move(p));
  return plans.back();
}

struct DockerEntry {
  std::string config;
  std::vector<std::string> repo_tags, layers;
};

std::vector<DockerEntry> parse_docker_manifest(const std::string& text) {
  json j = parse_json_text(text, "manifest.json");
  if (!j.is_array()) throw Error("manifest.json: not a JSON array");
  std::vector<DockerEntry> out;
  for (const auto& item : j) {
    if (!item.is_object() || !item.contains("Config") || !item["Config"].is_string())
      throw Error("manifest.json: an entry without a Config path");
    DockerEntry d;
    d.config = item["Config"].get<std::string>();
    if (!item.contains("Layers") || !item["Layers"].is_array()) throw Error("manifest.json: an entry without Layers");
    for (const auto& l : item["Layers"]) {
      if (!l.is_string()) throw Error("manifest.json: a layer path is not a string");
      d.layers.push_back(l.get<std::string>());
    }
    if (item.contains("RepoTags") && !item["RepoTags"].is_null()) {
      if (!item["RepoTags"].is_array()) throw Error("manifest.json: RepoTags is not an array");
      for (const auto& t : item["RepoTags"]) {
        if (!t.is_string()) throw Error("manifest.json: a RepoTags entry is not a string");
        d.repo_tags.push_back(t.get<std::string>());
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

void plan_docker_archive(const Extracted& x, std::vector<PlannedImage>& plans) {
  for (const auto& d : parse_docker_manifest(x.read("manifest.json", "manifest.json"))) {
    std::string what = "manifest.json: image " + (d.repo_tags.empty() ? d.config : d.repo_tags[0]);
    std::string body = x.read(d.config, what + ": config");
    bool created = false;
    PlannedImage& p = plan_for(plans, body, what, created);
    if (created) {
      if (d.layers.size() != p.diff_ids.size())
        throw Error(what + ": " + std::to_string(d.layers.size()) + " layers listed but the image config has " +
                    std::to_string(p.diff_ids.size()));
      for (const auto& l : d.layers) {
        x.open(l, what + ": layer");  // present and inside the archive, checked before anything is stored
        p.layers.push_back({l, "", ""});
      }
    }
    for (const auto& t : d.repo_tags) add_tag(p, full_tag(t, what + ": RepoTags"));
  }
}

std::string blob_file(const std::string& digest) { return "blobs/sha256/" + std::string(digest_hex(digest)); }

// Reads a blob of an OCI layout, verified against its digest.
std::string read_verified_blob(const Extracted& x, const Descriptor& d, const std::string& what) {
  std::string body = x.read(blob_file(d.digest), what);
  if (sha256_digest(body) != d.digest)
    throw Error(what + ": blob " + d.digest + " in the archive does not match its digest");
  return body;
}

bool is_attestation(const Descriptor& d) {
  if (d.platform && d.platform->os == "unknown") return true;
  return d.annotations.is_object() && d.annotations.contains("vnd.docker.reference.type");
}

void plan_oci_layout(const Extracted& x, std::vector<PlannedImage>& plans) {
  Index index;
  try {
    index = parse_index(x.read("index.json", "index.json"));
  } catch (const Error& e) {
    if (std::string_view(e.what()).substr(0, 10) == "index.json") throw;
    throw Error(std::string("index.json: ") + e.what());
  }
  Platform host = host_platform();
  for (const auto& top : index.manifests) {
    if (is_attestation(top)) continue;
    std::string what = "index.json: " + top.digest;
    std::vector<std::string> names;
    if (top.annotations.is_object()) {
      auto ann = [&](std::string_view key) -> std::string {
        auto it = top.annotations.find(std::string(key));
        return it != top.annotations.end() && it->is_string() ? it->get<std::string>() : "";
      };
      std::string image_name = ann(kAnnotationImageName), ref_name = ann(kAnnotationRefName);
      // ref.name may be a whole reference or just a tag ("latest"), which names nothing by itself.
      if (image_name.empty() && ref_name.find_first_of(":/") != std::string::npos) image_name = ref_name;
      if (!image_name.empty()) {
        what = "index.json: " + image_name;
        names.push_back(full_tag(image_name, what));
      }
    }
    Descriptor desc = top;
    std::string body = read_verified_blob(x, desc, what);
    std::string type = desc.media_type.empty() ? sniff_media_type(body) : desc.media_type;
    if (is_index_type(type)) {
      Index nested = parse_index(body);
      const Descriptor* pick = nullptr;
      for (const auto& m : nested.manifests)
        if (!is_attestation(m) && m.platform && platform_matches(host, *m.platform) && x.exists(blob_file(m.digest))) {
          pick = &m;
          break;
        }
      if (!pick) throw Error(what + ": no manifest for " + host.str() + " in the archive");
      desc = *pick;
      body = read_verified_blob(x, desc, what);
      type = desc.media_type.empty() ? sniff_media_type(body) : desc.media_type;
    }
    if (!is_manifest_type(type)) throw Error(what + ": unsupported media type \"" + type + "\"");
    Manifest m = parse_manifest(body);
    std::string config_body = read_verified_blob(x, m.config, what + ": config");
    bool created = false;
    PlannedImage& p = plan_for(plans, config_body, what, created);
    if (created) {
      if (m.layers.size() != p.diff_ids.size())
        throw Error(what + ": the manifest has " + std::to_string(m.layers.size()) +
                    " layers but the image config lists " + std::to_string(p.diff_ids.size()));
      for (const auto& l : m.layers) {
        x.open(blob_file(l.digest), what + ": layer");
        p.layers.push_back({blob_file(l.digest), l.digest, l.media_type});
      }
      p.manifest_body = body;
      p.manifest_digest = desc.digest;
    }
    for (const auto& n : names) add_tag(p, n);
  }
}

// docker >= 25 writes manifest.json beside index.json: its RepoTags name images whose index entry
// may lack a name annotation.
void merge_docker_tags(const Extracted& x, std::vector<PlannedImage>& plans) {
  std::vector<DockerEntry> entries;
  try {
    entries = parse_docker_manifest(x.read("manifest.json", "manifest.json"));
  } catch (const Error&) {
    return;  // the layout is complete without it
  }
  for (const auto& d : entries) {
    std::string id;
    try {
      id = sha256_digest(x.read(d.config, "manifest.json"));
    } catch (const Error&) {
      continue;
    }
    for (auto& p : plans)
      if (p.id == id)
        for (const auto& t : d.repo_tags) add_tag(p, full_tag(t, "manifest.json: RepoTags"));
  }
}

LayerResult ingest_archive_layer(ImageStore& store, const Extracted& x, const PlannedImage& p, size_t i,
                                 const std::string& parent_chain) {
  const PlannedLayer& pl = p.layers[i];
  std::string what = p.what + ": layer " + std::to_string(i + 1) + " of " + std::to_string(p.layers.size());
  UniqueFd fd = x.open(pl.file, what);
  std::string path = pl.file;
  LayerSpec spec{pl.blob_digest, pl.media_type, p.diff_ids[i], parent_chain};
  if (spec.media_type.empty()) {
    char head[4];
    ssize_t n = ::pread(fd.get(), head, sizeof head, 0);
    spec.media_type = layer_media_type(sniff_compression(std::string_view(head, n > 0 ? size_t(n) : 0)));
  }
  // An uncompressed layer is its own diff: already stored means nothing to read. Otherwise the blob
  // digest stays unset so a bad layer is reported against the config's diff_id.
  if (spec.blob_digest.empty() && spec.media_type == media::kOciLayer) {
    LayerSpec probe = spec;
    probe.blob_digest = spec.diff_id;
    if (store.layer_ready(probe)) spec = probe;
  }
  try {
    return store.ingest_layer(spec, [&](const Sink& sink) {
      if (::lseek(fd.get(), 0, SEEK_SET) < 0) throw_errno("seek " + path);
      std::unique_ptr<char[]> buf(new char[kChunk]);
      for (size_t n; (n = read_some(fd.get(), buf.get(), kChunk, path)) > 0;) sink(buf.get(), n);
    });
  } catch (const Error& e) {
    throw Error(what + ": " + e.what(), e.errnum());
  }
}

// --- import -------------------------------------------------------------------------------------

std::string now_rfc3339() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return rfc3339_nano(ts.tv_sec, ts.tv_nsec);
}

}  // namespace

std::string rfc3339_nano(int64_t seconds, long nanos) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (nanos > 0 && nanos < 1000000000) {
    char frac[32];
    snprintf(frac, sizeof frac, ".%09ld", nanos);
    std::string f = frac;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "Z";
}

void save_images(ImageStore& store, const std::vector<std::string>& names, const std::function<int()>& open_output) {
  FileLock lease = store.writer_lease();  // nothing saved is collected meanwhile
  std::vector<SaveImage> images = resolve_for_save(store, names);

  // Layer sizes go in the tar headers and the manifests, so every compressed layer is decompressed
  // once here (which also verifies it) and once more while it is written. An uncompressed blob is
  // its own tar: its size is the file's, and it is verified while it is written.
  std::map<std::string, LayerOut> layers;  // diff_id → how to write it
  for (const auto& img : images) {
    if (sha256_digest(img.rec.config) != img.rec.id)
      throw Error("image " + img.rec.id + ": the stored config does not match the image ID");
    for (const auto& l : img.rec.layers) {
      if (layers.count(l.diff_id)) continue;
      LayerOut out{l.diff_id, l.blob_digest, 0, l.blob_digest != l.diff_id};
      if (out.compressed) {
        out.tar_size = stream_layer(store, out, [](const char*, size_t) {});
      } else {
        struct stat st {};
        if (::stat(store.blob_path(l.blob_digest).c_str(), &st) < 0)
          throw Error("layer " + l.diff_id + ": blob " + l.blob_digest + " is not in the content store");
        out.tar_size = st.st_size;
      }
      layers[l.diff_id] = out;
    }
  }

  std::map<std::string, std::string> small_blobs;  // hex → configs and manifests
  std::map<std::string, int64_t> config_mtime;
  ojson index_entries = ojson::array();
  ojson docker_manifest = ojson::array();
  json repositories = json::object();
  for (const auto& img : images) {
    small_blobs[std::string(digest_hex(img.rec.id))] = img.rec.config;
    config_mtime[std::string(digest_hex(img.rec.id))] = created_time(img.rec.config);
    ojson ls = ojson::array();
    ojson layer_paths = ojson::array();
    for (const auto& l : img.rec.layers) {
      ls.push_back(ojson{{"mediaType", media::kOciLayer}, {"digest", l.diff_id}, {"size", layers[l.diff_id].tar_size}});
      layer_paths.push_back(blob_file(l.diff_id));
    }
    ojson manifest{
        {"schemaVersion", 2},
        {"mediaType", media::kOciManifest},
        {"config", ojson{{"mediaType", media::kOciConfig}, {"digest", img.rec.id}, {"size", img.rec.config.size()}}},
        {"layers", ls}};
    std::string body = manifest.dump();
    std::string manifest_digest = sha256_digest(body);
    small_blobs[std::string(digest_hex(manifest_digest))] = body;
    ojson desc{{"mediaType", media::kOciManifest}, {"digest", manifest_digest}, {"size", body.size()}};
    ojson repo_tags = img.tags.empty() ? ojson(nullptr) : ojson::array();
    if (img.tags.empty()) index_entries.push_back(desc);
    for (const auto& t : img.tags) {
      Reference r = parse_reference(t);
      ojson d = desc;
      d["annotations"] = ojson{{kAnnotationImageName, t}, {kAnnotationRefName, r.tag}};
      index_entries.push_back(d);
      repo_tags.push_back(r.familiar());
      if (!img.rec.layers.empty())
        repositories[r.familiar_name()][r.tag] = std::string(digest_hex(img.rec.layers.back().diff_id));
    }
    docker_manifest.push_back(
        ojson{{"Config", blob_file(img.rec.id)}, {"RepoTags", repo_tags}, {"Layers", layer_paths}});
  }
  ojson index{{"schemaVersion", 2}, {"mediaType", media::kOciIndex}, {"manifests", index_entries}};

  TarWriter tar(open_output());
  tar.dir("blobs/");
  tar.dir("blobs/sha256/");
  std::set<std::string> hexes;
  for (const auto& [hex, body] : small_blobs) hexes.insert(hex);
  for (const auto& [diff, l] : layers) hexes.insert(std::string(digest_hex(diff)));
  for (const auto& hex : hexes) {
    std::string name = "blobs/sha256/" + hex;
    if (auto it = small_blobs.find(hex); it != small_blobs.end()) {
      auto mt = config_mtime.find(hex);
      tar.file(name, it->second, mt == config_mtime.end() ? 0 : mt->second);
      continue;
    }
    const LayerOut& l = layers.at("sha256:" + hex);
    tar.begin(name, l.tar_size);
    int64_t written = stream_layer(store, l, [&](const char* p, size_t n) { tar.data(p, n); });
    if (written != l.tar_size) throw Error("layer " + l.diff_id + " changed size while it was being saved");
  }
  tar.file("index.json", index.dump() + "\n");
  tar.file("manifest.json", docker_manifest.dump() + "\n");
  tar.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"
                         "\n");
  if (!repositories.empty()) tar.file("repositories", repositories.dump() + "\n");
  tar.finish();
}

std::vector<LoadedImage> load_images(ImageStore& store, int in_fd) {
  std::optional<FileLock> lease;
  lease.emplace(store.writer_lease());  // also keeps the collector away from the extraction dir
  std::vector<PlannedImage> plans;
  std::vector<LoadedImage> loaded;
  bool stored = false;
  {
    Extracted x;
    TempDir tmp(store.root() + "/content/ingest/load-" + random_suffix());
    x.dir = tmp.path();
    extract_archive(in_fd, x);

    bool has_index = x.exists("index.json"), has_docker = x.exists("manifest.json");
    if (has_index) {
      plan_oci_layout(x, plans);
      if (has_docker) merge_docker_tags(x, plans);
    } else if (has_docker) {
      plan_docker_archive(x, plans);
    } else if (x.exists("repositories")) {
      throw Error("load: legacy docker-archive without manifest.json (docker < 1.10) is not supported");
    } else {
      throw Error("load: the archive holds neither manifest.json nor index.json (not a docker-archive or OCI layout)");
    }
    if (plans.empty()) throw Error("load: the archive holds no image");

    // Every layer of every image before any image is added: a bad archive adds nothing.
    try {
      std::vector<std::vector<ImageLayer>> layers(plans.size());
      for (size_t i = 0; i < plans.size(); i++) {
        std::string parent;
        for (size_t l = 0; l < plans[i].layers.size(); l++) {
          LayerResult r = ingest_archive_layer(store, x, plans[i], l, parent);
          stored = stored || r.fetched;
          layers[i].push_back({r.chain_id, r.diff_id, r.blob_digest, r.media_type, r.blob_size, r.size});
          parent = r.chain_id;
        }
      }
      std::vector<ImageRecord> records;
      for (size_t i = 0; i < plans.size(); i++) {
        PlannedImage& p = plans[i];
        ImageRecord rec;
        rec.id = store.put_blob(p.config_body, p.id);
        rec.config = p.config_body;
        if (p.manifest_body.empty()) p.manifest_body = make_manifest(p.id, p.config_body.size(), layers[i]);
        stored = true;
        rec.manifest_digest = store.put_blob(p.manifest_body, p.manifest_digest);
        rec.layers = layers[i];
        rec.repo_tags = p.tags;
        records.push_back(std::move(rec));
      }
      for (const auto& rec : records) {
        LoadedImage li{rec.id, rec.repo_tags, {}};
        for (const auto& t : rec.repo_tags)
          if (auto old = store.find(t); old && old->id != rec.id) li.replaced.emplace_back(t, old->id);
        store.add_image(rec);
        loaded.push_back(std::move(li));
      }
    } catch (...) {
      if (stored && loaded.empty()) {
        // Collect what this load stored: the collector waits for our lease and other writers.
        lease.reset();
        try {
          store.collect_garbage();
        } catch (...) {
        }
      }
      throw;
    }
  }
  return loaded;
}

ImageRecord import_image(ImageStore& store, int in_fd, const ImportOptions& o) {
  Platform platform = o.platform.value_or(host_platform());
  if (platform.os != "linux") throw Error("import: unsupported operating system \"" + platform.os + "\"");
  std::string tag;
  if (!o.reference.empty()) {
    Reference r = parse_reference(o.reference);
    if (!r.digest.empty()) throw Error("import: cannot import to a digest reference: " + o.reference);
    tag = r.name() + ":" + r.tag;
  }
  ojson config = apply_changes(empty_container_config(), o.changes);
  std::string message = o.message.empty() ? "Imported from " + o.source : o.message;
  std::string what = o.input_name.empty() ? "standard input" : o.input_name;

  std::optional<FileLock> lease;
  lease.emplace(store.writer_lease());
  // The first bytes tell the stored blob's media type, before the stream goes to the store.
  std::string head(kChunk, '\0');
  size_t got = 0;
  while (got < 8) {
    size_t n = read_some(in_fd, head.data() + got, head.size() - got, what);
    if (n == 0) break;
    got += n;
  }
  head.resize(got);
  if (const char* c = unsupported_compression(head))
    throw Error("import: " + what + " is " + c + "-compressed, which berth cannot read; decompress it first");
  LayerSpec spec{"", layer_media_type(sniff_compression(head)), "", ""};
  LayerResult r;
  try {
    r = store.ingest_layer(spec, [&](const Sink& sink) {
      if (!head.empty()) sink(head.data(), head.size());
      std::unique_ptr<char[]> buf(new char[kChunk]);
      for (size_t n; (n = read_some(in_fd, buf.get(), kChunk, what)) > 0;) sink(buf.get(), n);
    });
  } catch (const Error& e) {
    throw Error("import: " + what + ": " + e.what(), e.errnum());
  }
  try {
    std::string created = now_rfc3339();
    ojson img;
    img["comment"] = message;
    img["created"] = created;
    img["config"] = config;
    img["architecture"] = platform.architecture;
    if (!platform.variant.empty()) img["variant"] = platform.variant;
    img["os"] = platform.os;
    img["rootfs"] = ojson{{"type", "layers"}, {"diff_ids", ojson::array({r.diff_id})}};
    img["history"] = ojson::array({ojson{{"created", created}, {"comment", message}}});
    std::string body = img.dump();
    ImageRecord rec;
    rec.id = store.put_blob(body);
    rec.config = body;
    rec.layers.push_back({r.chain_id, r.diff_id, r.blob_digest, r.media_type, r.blob_size, r.size});
    rec.manifest_digest = store.put_blob(make_manifest(rec.id, body.size(), rec.layers));
    if (!tag.empty()) rec.repo_tags.push_back(tag);
    store.add_image(rec);
    return store.get(rec.id);
  } catch (...) {
    if (r.fetched) {
      lease.reset();
      try {
        store.collect_garbage();
      } catch (...) {
      }
    }
    throw;
  }
}

// --- --change ------------------------------------------------------------------------------------

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// One instruction as the Dockerfile parser splits it.
struct Line {
  std::string cmd;                 // as written: "CMD", "cmd"
  std::vector<std::string> flags;  // "--interval=5s"
  std::string rest;                // the arguments after the flags
  std::string original;            // the whole (joined) line
};

// buildkit's extractBuilderFlags: leading "--words" (quotes and backslashes processed), then the rest.
std::pair<std::string, std::vector<std::string>> extract_flags(const std::string& line) {
  enum { kSpaces, kWord, kQuote } phase = kSpaces;
  std::vector<std::string> words;
  std::string word;
  char quote = 0;
  bool blank_ok = false;
  for (size_t pos = 0; pos <= line.size(); pos++) {
    char ch = pos < line.size() ? line[pos] : 0;
    if (phase == kSpaces) {
      if (pos == line.size()) break;
      if (is_space(ch)) continue;
      if (ch != '-' || pos + 1 == line.size() || line[pos + 1] != '-') return {line.substr(pos), words};
      phase = kWord;
    }
    if (pos == line.size()) {
      if (word != "--" && (blank_ok || !word.empty())) words.push_back(word);
      break;
    }
    if (phase == kWord) {
      if (is_space(ch)) {
        phase = kSpaces;
        if (word == "--") return {line.substr(pos), words};
        if (blank_ok || !word.empty()) words.push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kQuote;
        continue;
      }
      if (ch == '\\') {
        if (pos + 1 == line.size()) continue;
        ch = line[++pos];
      }
      word += ch;
      continue;
    }
    if (ch == quote) {
      phase = kWord;
      continue;
    }
    if (ch == '\\') {
      if (pos + 1 == line.size()) {
        phase = kWord;
        continue;
      }
      ch = line[++pos];
    }
    word += ch;
  }
  return {"", words};
}

Line split_command(const std::string& raw) {
  std::string_view t = trim(raw);
  size_t sp = 0;
  while (sp < t.size() && !is_space(t[sp])) sp++;
  Line l;
  l.cmd = std::string(t.substr(0, sp));
  l.original = std::string(t);
  std::string_view args = t.substr(sp);
  while (!args.empty() && is_space(args.front())) args.remove_prefix(1);
  if (!args.empty()) {
    auto [rest, flags] = extract_flags(std::string(args));
    l.rest = std::string(trim(rest));
    l.flags = std::move(flags);
  }
  return l;
}

// The changes joined by newlines and read as a Dockerfile: comments, blank lines and "\"
// continuations as buildkit's parser treats them.
std::vector<Line> parse_lines(const std::vector<std::string>& changes) {
  std::string text;
  for (size_t i = 0; i < changes.size(); i++) text += (i ? "\n" : "") + changes[i];
  std::vector<Line> out;
  std::string pending;
  bool continuing = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    std::string_view body = continuing ? std::string_view(line) : t;
    size_t end = body.size();
    while (end > 0 && (body[end - 1] == ' ' || body[end - 1] == '\t')) end--;
    if (end > 0 && body[end - 1] == '\\') {
      pending += body.substr(0, end - 1);
      continuing = true;
      continue;
    }
    pending += body;
    out.push_back(split_command(pending));
    pending.clear();
    continuing = false;
  }
  if (!trim(pending).empty()) out.push_back(split_command(pending));
  return out;
}

// buildkit's parseWords: splits on unquoted whitespace, keeping quotes and escapes in the words.
std::vector<std::string> parse_words(std::string_view rest) {
  enum { kSpaces, kWord, kQuote } phase = kSpaces;
  std::vector<std::string> words;
  std::string word;
  char quote = 0;
  bool blank_ok = false;
  for (size_t pos = 0; pos <= rest.size(); pos++) {
    char ch = pos < rest.size() ? rest[pos] : 0;
    if (phase == kSpaces) {
      if (pos == rest.size()) break;
      if (is_space(ch)) continue;
      phase = kWord;
    }
    if (pos == rest.size()) {
      if (blank_ok || !word.empty()) words.push_back(word);
      break;
    }
    if (phase == kWord) {
      if (is_space(ch)) {
        phase = kSpaces;
        if (blank_ok || !word.empty()) words.push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kQuote;
      }
      if (ch == '\\') {
        if (pos + 1 == rest.size()) continue;
        word += ch;
        ch = rest[++pos];
      }
      word += ch;
      continue;
    }
    if (ch == quote) phase = kWord;
    if (ch == '\\' && quote != '\'') {
      if (pos + 1 == rest.size()) {
        phase = kWord;
        continue;
      }
      word += ch;
      ch = rest[++pos];
    }
    word += ch;
  }
  return words;
}

std::vector<std::string> split_whitespace(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') j++;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// parseJSON: a JSON array of strings, or nullopt when rest is not JSON; throws for non-strings.
std::optional<std::vector<std::string>> parse_json_array(std::string_view rest) {
  while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
  if (rest.empty() || rest.front() != '[') return std::nullopt;
  json j = json::parse(rest, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) throw Error("when using JSON array syntax, arrays must be comprised of strings only");
    out.push_back(v.get<std::string>());
  }
  return out;
}

// The shell lexer of Dockerfiles (ProcessWord / ProcessWords): quotes, "\" escapes and $VAR,
// ${VAR}, ${VAR:-w}, ${VAR-w}, ${VAR:+w}, ${VAR+w}, ${VAR:?msg}, ${VAR?msg} against env.
class Lexer {
 public:
  Lexer(std::string_view in, const std::vector<std::string>& env) : in_(in), env_(env) {}

  std::string word() { return process(0, nullptr); }
  std::vector<std::string> words() {
    Words w;
    process(0, &w);
    if (!w.word.empty()) w.out.push_back(w.word);
    return w.out;
  }

 private:
  // Word splitting: unquoted whitespace (also inside unquoted expansions) separates words.
  struct Words {
    std::vector<std::string> out;
    std::string word;
    bool in_word = false;
    void add_char(char c) {
      if (is_space(c)) {
        if (in_word) {
          in_word = false;
          if (!word.empty()) out.push_back(word);
          word.clear();
        }
        return;
      }
      add_raw(c);
    }
    void add_raw(char c) {
      in_word = true;
      word += c;
    }
    void add_raw(const std::string& s) {
      in_word = true;
      word += s;
    }
    void add_string(const std::string& s) {
      for (char c : s) add_char(c);
    }
  };

  bool eof() const { return pos_ >= in_.size(); }

  // stop: the character that ends this level ('}' inside ${…}), or 0 for the end of input.
  std::string process(char stop, Words* w) {
    std::string out;
    while (!eof()) {
      char ch = in_[pos_];
      if (stop && ch == stop) {
        pos_++;
        return out;
      }
      if (ch == '\'') {
        std::string s = single_quote();
        out += s;
        if (w) w->add_raw(s);
      } else if (ch == '"') {
        std::string s = double_quote();
        out += s;
        if (w) w->add_raw(s);
      } else if (ch == '$') {
        std::string s = dollar();
        out += s;
        if (w) w->add_string(s);
      } else {
        pos_++;
        if (ch == '\\') {
          if (eof()) break;
          ch = in_[pos_++];
          if (w) w->add_raw(ch);
        } else if (w) {
          w->add_char(ch);
        }
        out += ch;
      }
    }
    if (stop) throw Error(std::string("unexpected end of statement while looking for matching ") + stop);
    return out;
  }

  std::string single_quote() {
    pos_++;
    size_t end = in_.find('\'', pos_);
    if (end == std::string_view::npos)
      throw Error("unexpected end of statement while looking for matching single-quote");
    std::string s(in_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }

  std::string double_quote() {
    pos_++;
    std::string out;
    for (;;) {
      if (eof()) throw Error("unexpected end of statement while looking for matching double-quote");
      char ch = in_[pos_];
      if (ch == '"') {
        pos_++;
        return out;
      }
      if (ch == '$') {
        out += dollar();
        continue;
      }
      pos_++;
      if (ch == '\\') {
        if (eof()) continue;
        char next = in_[pos_];
        if (next == '"' || next == '$' || next == '\\') {
          ch = next;
          pos_++;
        }
      }
      out += ch;
    }
  }

  std::string name() {
    std::string n;
    if (!eof() && std::isdigit(static_cast<unsigned char>(in_[pos_]))) {
      while (!eof() && std::isdigit(static_cast<unsigned char>(in_[pos_]))) n += in_[pos_++];
      return n;
    }
    if (!eof() && std::string_view("@*#?-$!").find(in_[pos_]) != std::string_view::npos)
      return std::string(1, in_[pos_++]);
    while (!eof() && (std::isalnum(static_cast<unsigned char>(in_[pos_])) || in_[pos_] == '_')) n += in_[pos_++];
    return n;
  }

  std::optional<std::string> lookup(const std::string& key) const {
    for (const auto& kv : env_) {
      size_t eq = kv.find('=');
      if (kv.compare(0, eq, key) == 0 && (eq == std::string::npos ? kv.size() : eq) == key.size())
        return eq == std::string::npos ? std::string() : kv.substr(eq + 1);
    }
    return std::nullopt;
  }

  std::string dollar() {
    pos_++;
    if (eof() || in_[pos_] != '{') {
      std::string n = name();
      if (n.empty()) return "$";
      return lookup(n).value_or("");
    }
    pos_++;
    if (eof()) throw Error("syntax error: missing '}'");
    if (in_[pos_] == '{' || in_[pos_] == '}' || in_[pos_] == ':') throw Error("syntax error: bad substitution");
    std::string n = name();
    if (eof()) throw Error("syntax error: missing '}'");
    char ch = in_[pos_++];
    auto value = lookup(n);
    bool set = value.has_value();
    bool nonempty = set && !value->empty();
    switch (ch) {
      case '}':
        return value.value_or("");
      case '?': {
        std::string word = process('}', nullptr);
        if (!set) throw Error(n + ": " + (word.empty() ? "is not allowed to be unset" : word));
        return *value;
      }
      case '-': {
        std::string word = process('}', nullptr);
        return set ? *value : word;
      }
      case '+': {
        std::string word = process('}', nullptr);
        return set ? word : "";
      }
      case ':': {
        if (eof()) throw Error("syntax error: missing '}'");
        char mod = in_[pos_++];
        std::string word = process('}', nullptr);
        if (mod == '-') return nonempty ? *value : word;
        if (mod == '+') return nonempty ? word : "";
        if (mod == '?') {
          if (!nonempty) throw Error(n + ": " + (word.empty() ? "is not allowed to be empty" : word));
          return *value;
        }
        throw Error(std::string("unsupported modifier (") + mod + ") in substitution");
      }
      default:
        throw Error(std::string("unsupported modifier (") + ch + ") in substitution");
    }
  }

  std::string_view in_;
  const std::vector<std::string>& env_;
  size_t pos_ = 0;
};

bool valid_signal(const std::string& raw) {
  static const std::set<std::string> names = {
      "ABRT", "ALRM", "BUS",  "CHLD", "CLD",  "CONT", "FPE",    "HUP",    "ILL",  "INT",  "IO",    "IOT",
      "KILL", "PIPE", "POLL", "PROF", "PWR",  "QUIT", "SEGV",   "STKFLT", "STOP", "SYS",  "TERM",  "TRAP",
      "TSTP", "TTIN", "TTOU", "URG",  "USR1", "USR2", "VTALRM", "WINCH",  "XCPU", "XFSZ", "RTMIN", "RTMAX"};
  if (!raw.empty()) {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(raw.c_str(), &end, 10);
    if (*end == '\0' && errno == 0 && !std::isspace(static_cast<unsigned char>(raw[0]))) return n != 0;
  }
  std::string name = upper(raw);
  if (name.compare(0, 3, "SIG") == 0) name = name.substr(3);
  if (names.count(name)) return true;
  for (int i = 1; i <= 15; i++)
    if (name == "RTMIN+" + std::to_string(i) || name == "RTMAX-" + std::to_string(i)) return true;
  return false;
}

// nat.ParsePortSpec, as EXPOSE uses it: "80", "80/udp", "8000-8002/tcp" → "80/tcp" keys.
std::vector<std::string> parse_port_spec(const std::string& raw) {
  std::string container = raw;
  if (size_t colon = raw.rfind(':'); colon != std::string::npos) container = raw.substr(colon + 1);
  std::string proto = "tcp";
  if (size_t slash = container.find('/'); slash != std::string::npos) {
    std::string p = container.substr(slash + 1);
    size_t more = p.find('/');
    if (more != std::string::npos) p = p.substr(0, more);
    if (!p.empty()) proto = p;
    container = container.substr(0, slash);
  }
  if (container.empty()) throw Error("no port specified: " + raw + "<empty>");
  auto parse_port = [&](const std::string& s) -> unsigned long {
    if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw Error("invalid containerPort: " + container);
    unsigned long n = std::stoul(s);
    if (n > 65535) throw Error("invalid containerPort: " + container);
    return n;
  };
  unsigned long start, end;
  if (size_t dash = container.find('-'); dash != std::string::npos) {
    start = parse_port(container.substr(0, dash));
    end = parse_port(container.substr(dash + 1));
    if (end < start) throw Error("invalid range specified for container port: " + container);
  } else {
    start = end = parse_port(container);
  }
  std::string lp = lower(proto);
  if (lp != "tcp" && lp != "udp" && lp != "sctp") throw Error("invalid proto: " + proto);
  std::vector<std::string> out;
  for (unsigned long p = start; p <= end; p++) out.push_back(std::to_string(p) + "/" + lp);
  return out;
}

// filepath.Clean of an absolute path.
std::string clean_abs(const std::string& p) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string comp = p.substr(i, j - i);
    i = j + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(comp);
  }
  std::string out;
  for (const auto& c : parts) out += "/" + c;
  return out.empty() ? "/" : out;
}

// One parsed instruction, ready to dispatch.
struct Change {
  std::string kind;  // lowercase instruction
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> kvs;  // ENV, LABEL
  bool json_form = false;                                // CMD, ENTRYPOINT: exec form
  ojson health;                                          // HEALTHCHECK
};

// BFlags.Parse for an instruction that accepts the given string flags.
std::map<std::string, std::string> parse_flags(const Line& l, const std::set<std::string>& known) {
  std::map<std::string, std::string> out;
  for (const auto& f : l.flags) {
    if (f.compare(0, 2, "--") != 0) throw Error("arg should start with -- : " + f);
    if (f == "--") break;
    std::string name = f.substr(2);
    size_t eq = name.find('=');
    std::string value;
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (!known.count(name)) throw Error("unknown flag: " + name);
    if (eq == std::string::npos) throw Error("missing a value on flag: " + name);
    out[name] = value;
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_name_val(const std::string& rest, const std::string& cmd) {
  std::vector<std::string> words = parse_words(rest);
  std::vector<std::pair<std::string, std::string>> out;
  if (words.empty()) return out;
  if (words[0].find('=') == std::string::npos) {
    // The legacy form: KEY name value…
    size_t sp = 0;
    while (sp < rest.size() && !is_space(rest[sp])) sp++;
    std::string_view value = rest.size() > sp ? std::string_view(rest).substr(sp) : std::string_view();
    while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
    if (sp >= rest.size()) throw Error(cmd + " must have two arguments");
    out.emplace_back(rest.substr(0, sp), std::string(value));
    return out;
  }
  for (const auto& w : words) {
    size_t eq = w.find('=');
    if (eq == std::string::npos)
      throw Error("Syntax error - can't find = in \"" + w + "\". Must be of the form: name=value");
    out.emplace_back(w.substr(0, eq), w.substr(eq + 1));
  }
  return out;
}

ojson parse_healthcheck(const Line& l) {
  std::string_view rest = l.rest;
  size_t sep = 0;
  while (sep < rest.size() && !is_space(rest[sep])) sep++;
  if (sep == 0) throw Error("HEALTHCHECK requires at least one argument");
  std::string type = upper(rest.substr(0, sep));
  std::string_view cmd = trim(rest.substr(sep));
  if (type == "NONE") {
    if (!cmd.empty()) throw Error("HEALTHCHECK NONE takes no arguments");
    return ojson{{"Test", ojson::array({"NONE"})}};
  }
  auto flags = parse_flags(l, {"interval", "timeout", "start-period", "start-interval", "retries"});
  if (type != "CMD") throw Error("Unknown type \"" + type + "\" in HEALTHCHECK (try CMD)");
  std::vector<std::string> test;
  auto exec = cmd.empty() ? std::optional<std::vector<std::string>>() : parse_json_array(cmd);
  if (exec) {
    test = *exec;
  } else if (!cmd.empty()) {
    test = {std::string(cmd)};
  }
  if (test.empty()) throw Error("Missing command after HEALTHCHECK CMD");
  test.insert(test.begin(), exec ? "CMD" : "CMD-SHELL");
  ojson h{{"Test", test}};
  for (auto [flag, key] : {std::pair{"interval", "Interval"},
                           {"timeout", "Timeout"},
                           {"start-period", "StartPeriod"},
                           {"start-interval", "StartInterval"}}) {
    auto it = flags.find(flag);
    if (it == flags.end() || it->second.empty()) continue;
    int64_t ns = parse_go_duration(it->second);
    if (ns == 0) continue;
    if (ns < 1000000) throw Error(std::string("Interval \"") + flag + "\" cannot be less than 1ms");
    h[key] = ns;
  }
  if (auto it = flags.find("retries"); it != flags.end() && !it->second.empty()) {
    const std::string& v = it->second;
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || n < INT32_MIN || n > INT32_MAX || is_space(v[0]))
      throw Error("strconv.ParseInt: parsing \"" + v + "\": invalid syntax");
    if (n < 0) throw Error("--retries cannot be negative (" + std::to_string(n) + ")");
    if (n > 0) h["Retries"] = n;
  }
  return h;
}

Change parse_change(const Line& l) {
  Change c;
  c.kind = lower(l.cmd);
  std::string name = upper(l.cmd);
  if (c.kind != "healthcheck") parse_flags(l, {});
  if (c.kind == "cmd" || c.kind == "entrypoint") {
    if (l.rest.empty()) return c;
    if (auto exec = parse_json_array(l.rest)) {
      c.args = *exec;
      c.json_form = true;
    } else {
      c.args = {l.rest};
    }
  } else if (c.kind == "env" || c.kind == "label") {
    c.kvs = parse_name_val(l.rest, name);
    if (c.kvs.empty()) throw Error(name + " requires at least one argument");
    for (const auto& [k, v] : c.kvs)
      if (k.empty()) throw Error(name + " names can not be blank");
  } else if (c.kind == "expose") {
    c.args = split_whitespace(l.rest);
    if (c.args.empty()) throw Error("EXPOSE requires at least one argument");
  } else if (c.kind == "volume") {
    auto list = parse_json_array(l.rest);
    c.args = list ? *list : split_whitespace(l.rest);
    if (c.args.empty()) throw Error("VOLUME requires at least one argument");
    for (auto& v : c.args) {
      v = std::string(trim(v));
      if (v.empty()) throw Error("VOLUME specified can not be an empty string");
    }
  } else if (c.kind == "user" || c.kind == "workdir" || c.kind == "stopsignal") {
    if (l.rest.empty()) throw Error(name + " requires exactly one argument");
    c.args = {l.rest};
  } else if (c.kind == "healthcheck") {
    c.health = parse_healthcheck(l);
  } else if (c.kind == "onbuild") {
    if (l.rest.empty()) throw Error("ONBUILD requires at least one argument");
    std::string trigger = upper(split_whitespace(l.rest)[0]);
    if (trigger == "ONBUILD") throw Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if (trigger == "MAINTAINER" || trigger == "FROM") throw Error(trigger + " isn't allowed as an ONBUILD trigger");
    // The expression is the line as written, less the ONBUILD keyword.
    std::string_view expr = trim(l.original);
    expr.remove_prefix(std::min(expr.size(), l.cmd.size()));
    c.args = {std::string(trim(expr))};
  }
  return c;
}

std::vector<std::string> env_of(const ojson& config) {
  std::vector<std::string> env;
  if (config.contains("Env") && config["Env"].is_array())
    for (const auto& e : config["Env"])
      if (e.is_string()) env.push_back(e.get<std::string>());
  return env;
}

ojson with_shell(const ojson& config, const std::vector<std::string>& args, bool json_form) {
  if (args.empty()) return ojson::array();
  if (json_form) return ojson(args);
  ojson out = ojson::array();
  if (config.contains("Shell") && config["Shell"].is_array() && !config["Shell"].empty())
    out = config["Shell"];
  else
    out = ojson::array({"/bin/sh", "-c"});
  for (const auto& a : args) out.push_back(a);
  return out;
}

// Docker's key order for container.Config: what it marshals, whatever order the changes set.
ojson canonical_order(const ojson& config) {
  static const char* const kOrder[] = {"Hostname",     "Domainname",   "User",        "AttachStdin",     "AttachStdout",
                                       "AttachStderr", "ExposedPorts", "Tty",         "OpenStdin",       "StdinOnce",
                                       "Env",          "Cmd",          "Healthcheck", "ArgsEscaped",     "Image",
                                       "Volumes",      "WorkingDir",   "Entrypoint",  "NetworkDisabled", "MacAddress",
                                       "OnBuild",      "Labels",       "StopSignal",  "StopTimeout",     "Shell"};
  ojson out = ojson::object();
  std::set<std::string> known;
  for (const char* k : kOrder) {
    known.insert(k);
    if (config.contains(k)) out[k] = config[k];
  }
  for (const auto& [k, v] : config.items())
    if (!known.count(k)) out[k] = v;
  return out;
}

}  // namespace

ojson empty_container_config() {
  return ojson{{"Hostname", ""},       {"Domainname", ""},      {"User", ""},
               {"AttachStdin", false}, {"AttachStdout", false}, {"AttachStderr", false},
               {"Tty", false},         {"OpenStdin", false},    {"StdinOnce", false},
               {"Env", nullptr},       {"Cmd", nullptr},        {"Image", ""},
               {"Volumes", nullptr},   {"WorkingDir", ""},      {"Entrypoint", nullptr},
               {"OnBuild", nullptr},   {"Labels", nullptr}};
}

ojson apply_changes(const ojson& input, const std::vector<std::string>& changes) {
  if (changes.empty()) return input;
  static const std::set<std::string> kValid = {"cmd",     "entrypoint", "healthcheck", "env",    "expose", "label",
                                               "onbuild", "stopsignal", "user",        "volume", "workdir"};
  std::vector<Line> lines = parse_lines(changes);
  for (const auto& l : lines)
    if (!kValid.count(lower(l.cmd))) throw Error(l.cmd + " is not a valid change command");
  std::vector<Change> parsed;
  for (const auto& l : lines) parsed.push_back(parse_change(l));

  ojson config = input.is_object() ? input : empty_container_config();
  bool cmd_set = false;
  for (const auto& c : parsed) {
    std::vector<std::string> env = env_of(config);
    auto expand = [&](const std::string& s) { return Lexer(s, env).word(); };
    if (c.kind == "cmd") {
      config["Cmd"] = with_shell(config, c.args, c.json_form);
      cmd_set = true;
    } else if (c.kind == "entrypoint") {
      config["Entrypoint"] = with_shell(config, c.args, c.json_form);
      if (!cmd_set) config["Cmd"] = nullptr;
    } else if (c.kind == "env") {
      std::vector<std::pair<std::string, std::string>> kvs;
      for (const auto& [k, v] : c.kvs) kvs.emplace_back(expand(k), expand(v));
      for (const auto& [k, v] : kvs) {
        std::string entry = k + "=" + v;
        bool replaced = false;
        for (auto& e : env)
          if (e.substr(0, e.find('=')) == k) {
            e = entry;
            replaced = true;
            break;
          }
        if (!replaced) env.push_back(entry);
      }
      config["Env"] = env;
    } else if (c.kind == "label") {
      if (!config.contains("Labels") || !config["Labels"].is_object()) config["Labels"] = ojson::object();
      for (const auto& [k, v] : c.kvs) config["Labels"][expand(k)] = expand(v);
    } else if (c.kind == "expose") {
      std::vector<std::string> ports;
      for (const auto& p : c.args)
        for (const auto& w : Lexer(p, env).words()) ports.push_back(w);
      std::vector<std::string> keys;
      for (const auto& p : ports)
        for (const auto& k : parse_port_spec(p)) keys.push_back(k);
      if (!config.contains("ExposedPorts") || !config["ExposedPorts"].is_object())
        config["ExposedPorts"] = ojson::object();
      for (const auto& k : keys) config["ExposedPorts"][k] = ojson::object();
    } else if (c.kind == "volume") {
      std::vector<std::string> vols;
      for (const auto& v : c.args) {
        vols.push_back(expand(v));
        if (vols.back().empty()) throw Error("VOLUME specified can not be an empty string");
      }
      if (!config.contains("Volumes") || !config["Volumes"].is_object()) config["Volumes"] = ojson::object();
      for (const auto& v : vols) config["Volumes"][v] = ojson::object();
    } else if (c.kind == "user") {
      config["User"] = expand(c.args[0]);
    } else if (c.kind == "workdir") {
      std::string dir = expand(c.args[0]);
      if (dir.empty()) throw Error("cannot normalize nothing");
      if (dir.front() != '/') {
        std::string current = config.contains("WorkingDir") && config["WorkingDir"].is_string()
                                  ? config["WorkingDir"].get<std::string>()
                                  : "";
        dir = clean_abs("/" + current + "/" + dir);
      }
      config["WorkingDir"] = dir;
    } else if (c.kind == "stopsignal") {
      std::string sig = expand(c.args[0]);
      if (!valid_signal(sig)) throw Error("invalid signal: " + sig);
      config["StopSignal"] = sig;
    } else if (c.kind == "healthcheck") {
      config["Healthcheck"] = c.health;
    } else if (c.kind == "onbuild") {
      if (!config.contains("OnBuild") || !config["OnBuild"].is_array()) config["OnBuild"] = ojson::array();
      config["OnBuild"].push_back(c.args[0]);
    }
  }
  return canonical_order(config);
}

}  // namespace berth::image
