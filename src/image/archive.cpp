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
#include "image/dockerfile.hpp"
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

ImageRecord store_child_image(ImageStore& store, const ImageRecord* parent, const std::optional<LayerResult>& layer,
                              const ChildImage& child) {
  ojson img = ojson::object();
  ojson history = ojson::array();
  ojson diff_ids = ojson::array();
  if (parent) {
    ojson base = ojson::parse(parent->config, nullptr, false);
    if (base.is_object()) {
      img = base;
      if (base.contains("history") && base["history"].is_array()) history = base["history"];
    }
    for (const auto& l : parent->layers) diff_ids.push_back(l.diff_id);
  }
  std::string created = now_rfc3339();
  Platform platform = host_platform();
  if (!img.contains("architecture")) img["architecture"] = platform.architecture;
  if (!img.contains("os")) img["os"] = platform.os;
  img["config"] = child.config;
  if (!child.container_config.is_null()) img["container_config"] = child.container_config;
  if (!child.container.empty()) img["container"] = child.container;
  img["created"] = created;
  img.erase("author");
  img.erase("comment");
  if (!child.author.empty()) img["author"] = child.author;
  if (!child.comment.empty()) img["comment"] = child.comment;
  ojson entry{{"created", created}};
  if (!child.author.empty()) entry["author"] = child.author;
  if (!child.created_by.empty()) entry["created_by"] = child.created_by;
  if (!child.comment.empty()) entry["comment"] = child.comment;
  if (!layer) entry["empty_layer"] = true;
  history.push_back(entry);
  if (layer) diff_ids.push_back(layer->diff_id);
  img["rootfs"] = ojson{{"type", "layers"}, {"diff_ids", diff_ids}};
  img["history"] = history;
  std::string body = img.dump();
  ImageRecord rec;
  rec.id = store.put_blob(body);
  rec.config = body;
  if (parent) {
    rec.layers = parent->layers;
    rec.parent = parent->id;
  }
  if (layer)
    rec.layers.push_back(
        {layer->chain_id, layer->diff_id, layer->blob_digest, layer->media_type, layer->blob_size, layer->size});
  rec.manifest_digest = store.put_blob(make_manifest(rec.id, body.size(), rec.layers));
  store.add_image(rec);
  return store.get(rec.id);
}

// --- --change ------------------------------------------------------------------------------------

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
  std::vector<DockerfileInstruction> lines = parse_change_lines(changes);
  // As BuildFromConfig: every instruction is checked before any is applied.
  for (const auto& l : lines)
    if (!kValid.count(l.keyword))
      throw Error(l.original.substr(0, l.keyword.size()) + " is not a valid change command");
  for (const auto& l : lines) check_config_instruction(l);
  ojson config = input.is_object() ? input : empty_container_config();
  bool cmd_set = false;
  for (const auto& l : lines) apply_config_instruction(config, l, config_env(config), cmd_set);
  return docker_config_order(config);
}

}  // namespace berth::image
