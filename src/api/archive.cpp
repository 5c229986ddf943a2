// Tar streams in and out: /containers/{id}/archive (docker cp), /containers/{id}/export,
// /images/get and /images/{name}/get (docker save), /images/load. The work is the engine's cp code
// (engine/cp.hpp: every path resolved in the container's scope) and the image archive code
// (image/archive.hpp); both read and write fds, so bodies go through pipes: a thread feeds the
// request body to the reader, or drains the writer into chunks of the response.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <functional>
#include <memory>
#include <thread>

#include "api/server.hpp"
#include "engine/cp.hpp"
#include "engine/engine.hpp"
#include "image/archive.hpp"
#include "image/auth_config.hpp"
#include "image/reference.hpp"
#include "image/store.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::api {

using nlohmann::json;

namespace {

constexpr size_t kChunk = size_t{1} << 16;

// --- locale -------------------------------------------------------------------------------------

// libarchive converts entry names through the charset of the current locale: in the "C" locale a
// UTF-8 name does not convert, and libarchive 3.6's pax writer then crashes on a regular file (a
// NULL name: the whole server would go). The tar work runs with a UTF-8 LC_CTYPE of its own
// thread (uselocale), given back when it ends.
class Utf8Locale {
 public:
  Utf8Locale() {
    for (const char* name : {"C.UTF-8", "C.utf8", "en_US.UTF-8"}) {
      loc_ = ::newlocale(LC_CTYPE_MASK, name, static_cast<locale_t>(0));
      if (loc_) break;
    }
    if (loc_) old_ = ::uselocale(loc_);
  }
  ~Utf8Locale() {
    if (!loc_) return;
    ::uselocale(old_);
    ::freelocale(loc_);
  }
  Utf8Locale(const Utf8Locale&) = delete;
  Utf8Locale& operator=(const Utf8Locale&) = delete;

 private:
  locale_t loc_ = static_cast<locale_t>(0);
  locale_t old_ = static_cast<locale_t>(0);
};

// --- pipes ----------------------------------------------------------------------------------------

// Runs produce(fd) on a thread that writes into a pipe, and consume(fd) here on its read end, both
// in a UTF-8 locale. Each end is closed when its side returns, so a consumer that stops early makes
// the producer's writes fail (EPIPE: the server ignores SIGPIPE) instead of blocking. The
// consumer's exception wins, unless producer_first (a producer's failure truncates what the
// consumer reads: its own error is the one worth reporting).
void through_pipe(const std::function<void(int)>& produce, const std::function<void(int)>& consume,
                  bool producer_first = false) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) throw_errno("pipe2");
  UniqueFd r(p[0]), w(p[1]);
  std::exception_ptr produced, consumed;
  Utf8Locale utf8;
  std::thread t([&] {
    Utf8Locale thread_utf8;
    try {
      produce(w.get());
    } catch (...) {
      produced = std::current_exception();
    }
    w.reset();
  });
  try {
    consume(r.get());
  } catch (...) {
    consumed = std::current_exception();
  }
  r.reset();
  t.join();
  if (producer_first && produced) std::rethrow_exception(produced);
  if (consumed) std::rethrow_exception(consumed);
  if (produced) std::rethrow_exception(produced);
}

// A producer writing the request body (for a reader that takes an fd). A reader that stops early
// (a bad archive) ends it quietly: the reader's error is the one to report.
std::function<void(int)> body_writer(const std::string& body) {
  return [&body](int fd) {
    std::string_view data = body;
    while (!data.empty()) {
      ssize_t n = ::write(fd, data.data(), std::min(data.size(), size_t{1} << 20));
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
  };
}

// A consumer sending what it reads as a chunked 200 response. The headers go out with the first
// bytes, so a producer that fails before writing anything (no such image) still gets its error
// status.
std::function<void(int)> response_writer(Call& call, std::string content_type,
                                         std::map<std::string, std::string> headers = {}) {
  return [&call, content_type = std::move(content_type), headers = std::move(headers)](int fd) {
    std::unique_ptr<char[]> buf(new char[kChunk]);
    for (;;) {
      ssize_t n = ::read(fd, buf.get(), kChunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("read the response stream");
      }
      if (n == 0) return;
      if (!call.conn.responded()) call.conn.begin_chunked(200, content_type, headers);
      if (!call.conn.chunk(std::string_view(buf.get(), static_cast<size_t>(n)))) {
        call.conn.close_after();  // the client went away: the producer's next write fails
        return;
      }
    }
  };
}

// The end of a response that response_writer streamed (or an empty one, when nothing came).
void finish_stream(Call& call, std::string_view content_type, const std::map<std::string, std::string>& headers = {}) {
  if (!call.conn.responded()) call.conn.begin_chunked(200, content_type, headers);
  call.conn.end_chunked();
}

// --- tar renaming -----------------------------------------------------------------------------------

[[noreturn]] void tar_fail(struct archive* a, const std::string& what) {
  const char* m = archive_error_string(a);
  throw Error("tar stream: " + what + ": " + (m ? m : "error"));
}

// Copies a tar stream, renaming its top entry `from` and everything below it to `to`: docker names
// the entries of "/dir/." "./…", the engine's cp code "dir/…". An empty `to` drops the top entry and
// lifts its children to the top ("./bin" → "bin": docker export's names).
void rebase_tar(int in_fd, int out_fd, const std::string& from, const std::string& to) {
  std::unique_ptr<struct archive, int (*)(struct archive*)> in(archive_read_new(), archive_read_free);
  std::unique_ptr<struct archive, int (*)(struct archive*)> out(archive_write_new(), archive_write_free);
  if (!in || !out) throw Error("tar: out of memory");
  archive_read_support_format_tar(in.get());
  if (archive_read_open_fd(in.get(), in_fd, kChunk) != ARCHIVE_OK) tar_fail(in.get(), "open");
  archive_write_set_format_pax_restricted(out.get());
  archive_write_set_bytes_in_last_block(out.get(), 1);
  if (archive_write_open_fd(out.get(), out_fd) != ARCHIVE_OK) tar_fail(out.get(), "open");
  // False: drop the entry.
  auto rename = [&](std::string name, std::string& result) {
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    if (name == from) {
      result = to;
      return !to.empty();
    }
    if (name.compare(0, from.size() + 1, from + "/") == 0) {
      result = to.empty() ? name.substr(from.size() + 1) : to + name.substr(from.size());
      return true;
    }
    result = name;
    return true;
  };
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (;;) {
    struct archive_entry* e = nullptr;
    int r = archive_read_next_header(in.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) tar_fail(in.get(), "read");
    const char* utf8 = archive_entry_pathname_utf8(e);
    const char* plain = archive_entry_pathname(e);
    std::string name = utf8 ? utf8 : (plain ? plain : ""), renamed;
    if (!rename(name, renamed)) {
      if (archive_read_data_skip(in.get()) != ARCHIVE_OK) tar_fail(in.get(), "read");
      continue;
    }
    archive_entry_set_pathname_utf8(e, renamed.c_str());
    const char* link_utf8 = archive_entry_hardlink_utf8(e);
    const char* link_plain = archive_entry_hardlink(e);
    if (link_utf8 || link_plain) {
      std::string link = link_utf8 ? link_utf8 : link_plain, relinked;
      rename(link, relinked);
      archive_entry_set_hardlink_utf8(e, relinked.c_str());
    }
    if (archive_write_header(out.get(), e) < ARCHIVE_WARN) tar_fail(out.get(), "write " + renamed);
    for (;;) {
      la_ssize_t n = archive_read_data(in.get(), buf.get(), kChunk);
      if (n < 0) tar_fail(in.get(), "read " + name);
      if (n == 0) break;
      if (archive_write_data(out.get(), buf.get(), static_cast<size_t>(n)) < 0) tar_fail(out.get(), "write " + renamed);
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) tar_fail(out.get(), "close");
}

// --- containers -------------------------------------------------------------------------------------

// The engine's cp errors carry an errno: docker's statuses for them.
template <class F>
void cp_errors(F&& f) {
  try {
    f();
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    int status = 0;
    switch (e.errnum()) {
      case ENOENT:
        status = 404;
        break;
      case EROFS:
        status = 403;
        break;
      case ENOTDIR:
      case EISDIR:
      case EEXIST:
      case EINVAL:
      case ELOOP:
      case EBUSY:
      case ENAMETOOLONG:
        status = 400;
        break;
      default:
        break;
    }
    std::string m = e.what();
    if (m.rfind("read tar stream", 0) == 0) status = 400;  // the body is not a (readable) tar
    if (status) throw HttpError(status, m);
    throw;
  }
}

struct Opened {
  engine::Container container;
  std::unique_ptr<engine::cp::Tree> tree;
};

// The container's tree (its rootfs, mounted again if a reboot unmounted it, and its mounts).
Opened open_container(Call& call) {
  auto& eng = call.engine();
  auto& images = call.images();
  Opened o{eng.get(call.params[0]), nullptr};
  std::vector<std::string> lowers;
  image::ImageRecord img = images.get(o.container.image_id);
  for (size_t i = img.layers.size(); i-- > 0;) lowers.push_back(images.layer_dir(img.layers[i].chain_id));
  o.tree = engine::cp::container_tree(eng, o.container, lowers);
  return o;
}

// A container path as docker's daemon takes it: made absolute and lexically cleaned, keeping a
// trailing "/" (follow a last symlink, must be a directory) or "/." (a directory's contents).
struct ContainerPath {
  std::string raw;      // as given (for messages)
  std::string request;  // what the cp code gets: clean, clean + "/", or clean + "/."
  std::string clean;    // "/a/b"
  std::string name;     // docker's stat name: the base name ("." for "/a/.", "/" for "/")
  std::string top;      // the name the cp code gives the object in a tar
  bool follow = false;  // trailing "/" or "/.": the last component is followed
};

ContainerPath container_path(const Call& call) {
  ContainerPath p;
  p.raw = call.req.q("path");
  if (p.raw.empty()) throw HttpError(400, "path is empty");
  if (p.raw.find('\0') != std::string::npos) throw HttpError(400, "invalid path: it contains a NUL byte");
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= p.raw.size()) {
    size_t slash = p.raw.find('/', pos);
    if (slash == std::string::npos) slash = p.raw.size();
    std::string c = p.raw.substr(pos, slash - pos);
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!c.empty() && c != ".") {
      parts.push_back(c);
    }
    pos = slash + 1;
  }
  for (const auto& c : parts) p.clean += "/" + c;
  if (p.clean.empty()) p.clean = "/";
  std::string trimmed = p.raw;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  bool dot = trimmed == "." || (trimmed.size() >= 2 && trimmed.compare(trimmed.size() - 2, 2, "/.") == 0);
  bool slash = p.raw.back() == '/';
  if (dot) {
    p.request = p.clean == "/" ? "/." : p.clean + "/.";
    p.name = ".";
  } else {
    p.request = slash && p.clean != "/" ? p.clean + "/" : p.clean;
    p.name = p.clean == "/" ? "/" : parts.back();
  }
  p.follow = dot || slash || p.clean == "/";
  p.top = parts.empty() ? "." : parts.back();
  return p;
}

// Go's os.FileMode bits, as docker's ContainerPathStat carries them.
uint32_t go_mode(mode_t m) {
  uint32_t out = m & 0777;
  switch (m & S_IFMT) {
    case S_IFDIR:
      out |= 1u << 31;
      break;
    case S_IFLNK:
      out |= 1u << 27;
      break;
    case S_IFBLK:
      out |= 1u << 26;
      break;
    case S_IFCHR:
      out |= (1u << 26) | (1u << 21);
      break;
    case S_IFIFO:
      out |= 1u << 25;
      break;
    case S_IFSOCK:
      out |= 1u << 24;
      break;
    default:
      break;
  }
  if (m & S_ISUID) out |= 1u << 23;
  if (m & S_ISGID) out |= 1u << 22;
  if (m & S_ISVTX) out |= 1u << 20;
  return out;
}

// X-Docker-Container-Path-Stat: base64 of {name,size,mode,mtime,linkTarget}; 404 when missing.
std::string path_stat(const Opened& o, const ContainerPath& p) {
  engine::cp::Tree::Lookup l;
  cp_errors([&] { l = o.tree->resolve(p.request, p.follow); });
  if (!l.exists) throw HttpError(404, "Could not find the file " + p.raw + " in container " + o.container.name);
  if (p.follow && !S_ISDIR(l.st.st_mode))
    throw HttpError(400, p.raw + " in container " + o.container.name + ": not a directory");
  std::string link_target;
  if (S_ISLNK(l.st.st_mode)) {
    // Where the link leads in the container's scope (docker's FollowSymlinkInScope), missing or not.
    try {
      link_target = o.tree->resolve(p.clean, true).path;
    } catch (const std::exception&) {
      // A missing middle directory: the target cleaned lexically, from the link's directory.
      std::string target;
      char buf[4096];
      ssize_t n = ::readlinkat(l.fd.get(), "", buf, sizeof buf);
      if (n > 0) target.assign(buf, static_cast<size_t>(n));
      std::string dir = p.clean.substr(0, p.clean.rfind('/'));
      std::string joined = !target.empty() && target[0] == '/' ? target : dir + "/" + target;
      std::vector<std::string> parts;
      size_t pos = 0;
      while (pos <= joined.size()) {
        size_t slash = joined.find('/', pos);
        if (slash == std::string::npos) slash = joined.size();
        std::string c = joined.substr(pos, slash - pos);
        if (c == "..") {
          if (!parts.empty()) parts.pop_back();
        } else if (!c.empty() && c != ".") {
          parts.push_back(c);
        }
        pos = slash + 1;
      }
      for (const auto& c : parts) link_target += "/" + c;
      if (link_target.empty()) link_target = "/";
    }
  }
  json stat{{"name", p.name},
            {"size", static_cast<int64_t>(l.st.st_size)},
            {"mode", go_mode(l.st.st_mode)},
            {"mtime", image::rfc3339_nano(l.st.st_mtim.tv_sec, l.st.st_mtim.tv_nsec)},
            {"linkTarget", link_target}};
  return image::base64_encode(stat.dump());
}

// HEAD /containers/{id}/archive?path=P: only the stat header. A HEAD response has no body, errors'
// included (a body would be read as the start of the next response on a kept-alive connection).
void archive_head(Call& call) {
  try {
    ContainerPath p = container_path(call);
    Opened o = open_container(call);
    call.release();
    std::string stat = path_stat(o, p);
    call.conn.respond(200, "", "", {{"X-Docker-Container-Path-Stat", stat}});
  } catch (const std::exception& e) {
    if (call.conn.responded()) throw;
    call.conn.respond(status_for(e), "application/json", "");
  }
}

// GET /containers/{id}/archive?path=P: a tar of P, named as docker names it.
void archive_get(Call& call) {
  if (call.req.method == "HEAD") return archive_head(call);
  ContainerPath p = container_path(call);
  Opened o = open_container(call);
  call.release();
  std::string stat = path_stat(o, p);
  const std::string content_type = "application/x-tar";
  const std::map<std::string, std::string> headers = {{"X-Docker-Container-Path-Stat", stat}};
  const engine::cp::Tree& tree = *o.tree;
  auto copy = [&](int fd) { cp_errors([&] { engine::cp::copy_from(tree, p.request, "-", {}, fd); }); };
  std::string to = p.name == "." ? "." : p.top;
  if (to == p.top) {
    through_pipe(copy, response_writer(call, content_type, headers));
  } else {
    through_pipe(
        [&](int fd) {
          through_pipe(
              copy, [&](int in) { rebase_tar(in, fd, p.top, to); }, true);
        },
        response_writer(call, content_type, headers));
  }
  finish_stream(call, content_type, headers);
}

// PUT /containers/{id}/archive?path=DIR: extracts the body (a tar, maybe compressed) into DIR.
// Ownership comes from the archive (docker's default). An existing directory is never replaced by
// a non-directory or the reverse, whatever noOverwriteDirNonDir says (docker's CLI always sets it).
void archive_put(Call& call) {
  ContainerPath p = container_path(call);
  Opened o = open_container(call);
  call.release();
  engine::cp::Tree::Lookup l;
  cp_errors([&] { l = o.tree->resolve(p.request, true); });
  if (!l.exists) throw HttpError(404, "Could not find the file " + p.raw + " in container " + o.container.name);
  if (!S_ISDIR(l.st.st_mode)) throw HttpError(400, "extraction point is not a directory");
  if (l.read_only)
    throw HttpError(403, l.in_mount ? "mounted volume is marked read-only" : "container rootfs is marked read-only");
  const engine::cp::Tree& tree = *o.tree;
  if (call.req.body.empty()) {  // docker reads an empty body as an empty tar
    call.conn.respond(200, "", "");
    return;
  }
  through_pipe(body_writer(call.req.body),
               [&](int fd) { cp_errors([&] { engine::cp::copy_to("-", tree, p.request, p.raw, {}, fd); }); });
  call.conn.respond(200, "", "");
}

// GET /containers/{id}/export: the container's root filesystem (without its volumes and bind
// mounts), entries named as docker export names them ("bin/sh").
void export_container(Call& call) {
  Opened o = open_container(call);  // mounts the rootfs when a reboot unmounted it
  std::string rootfs = call.engine().container_dir(o.container.id) + "/rootfs";
  call.release();
  engine::cp::Tree tree(rootfs, {}, false, "container " + o.container.name);
  auto copy = [&](int fd) { engine::cp::copy_from(tree, "/", "-", {}, fd); };
  through_pipe(
      [&](int fd) {
        through_pipe(
            copy, [&](int in) { rebase_tar(in, fd, ".", ""); }, true);
      },
      response_writer(call, "application/x-tar"));
  finish_stream(call, "application/x-tar");
}

// --- images -----------------------------------------------------------------------------------------

void save(Call& call, const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (n.empty() || n.find('\0') != std::string::npos) throw HttpError(400, "invalid image name \"" + n + "\"");
  image::ImageStore& store = call.images();
  through_pipe([&](int fd) { image::save_images(store, names, [fd] { return fd; }); },
               response_writer(call, "application/x-tar"));
  finish_stream(call, "application/x-tar");
}

// GET /images/get?names=a&names=b
void save_many(Call& call) {
  std::vector<std::string> names;
  auto [b, e] = call.req.query.equal_range("names");
  for (auto it = b; it != e; ++it) names.push_back(it->second);
  save(call, names);
}

// GET /images/{name}/get
void save_one(Call& call) { save(call, {call.params[0]}); }

// POST /images/load: docker's JSON stream, always 200 (a failed load ends with an error line).
void load(Call& call) {
  image::ImageStore& store = call.images();
  std::vector<image::LoadedImage> loaded;
  std::string error;
  try {
    through_pipe(body_writer(call.req.body), [&](int fd) { loaded = image::load_images(store, fd); });
  } catch (const std::exception& e) {
    error = e.what();
  }
  call.release();
  call.conn.begin_chunked(200, "application/json");
  auto send = [&](const json& j) { call.conn.chunk(j.dump() + "\n"); };
  for (const auto& img : loaded) {
    for (const auto& [tag, old] : img.replaced)
      send({{"stream", "The image " + image::parse_reference(tag).familiar() +
                           " already exists, renaming the old one with ID " + old + " to empty string\n"}});
    for (const auto& t : img.tags) send({{"stream", "Loaded image: " + image::parse_reference(t).familiar() + "\n"}});
    if (img.tags.empty()) send({{"stream", "Loaded image ID: " + img.id + "\n"}});
  }
  if (!error.empty()) send({{"errorDetail", {{"message", error}}}, {"error", error}});
  call.conn.end_chunked();
}

}  // namespace

void import_from_body(Call& call) {
  std::string source = call.req.q("fromSrc");
  // docker's daemon downloads a URL itself; berth's server reaches no network for it.
  if (source != "-")
    throw HttpError(501, "berth serve imports only from the request body (fromSrc=-), not from " + source);
  image::ImportOptions o;
  for (auto [it, end] = call.req.query.equal_range("changes"); it != end; ++it) o.changes.push_back(it->second);
  o.message = call.req.q("message");
  o.input_name = "the request body";
  std::string repo = call.req.q("repo");
  if (!repo.empty()) {
    std::string tag = call.req.q("tag");
    o.reference = tag.empty() ? repo : repo + ":" + tag;
    try {
      image::parse_reference(o.reference);
    } catch (const std::exception& e) {
      throw HttpError(400, e.what());
    }
  }
  try {
    if (!call.req.q("platform").empty()) o.platform = image::parse_platform(call.req.q("platform"));
    // A bad --change is refused before the body is read, as docker does.
    image::apply_changes(image::empty_container_config(), o.changes);
  } catch (const std::exception& e) {
    throw HttpError(400, e.what());
  }
  image::ImageRecord rec;
  through_pipe(body_writer(call.req.body), [&](int fd) { rec = image::import_image(call.images(), fd, o); });
  call.release();
  // Nothing was written before the import ended, so its errors went out above with their own
  // status; docker's stream for a body import is the one status line with the image ID.
  call.conn.begin_chunked(200, "application/json");
  call.conn.chunk(json({{"status", rec.id}}).dump() + "\r\n");
  call.conn.end_chunked();
}

std::vector<Route> archive_routes() {
  return {{"HEAD", "/containers/{}/archive", archive_head},
          {"GET", "/containers/{}/archive", archive_get},
          {"PUT", "/containers/{}/archive", archive_put},
          {"GET", "/containers/{}/export", export_container},
          {"GET", "/images/get", save_many},
          {"GET", "/images/{*}/get", save_one},
          {"POST", "/images/load", load}};
}

}  // namespace berth::api
