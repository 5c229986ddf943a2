#include "build/build.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/commit.hpp"
#include "engine/cp.hpp"
#include "engine/diff.hpp"
#include "engine/engine.hpp"
#include "image/archive.hpp"
#include "image/digest.hpp"
#include "image/dockerfile.hpp"
#include "image/reference.hpp"
#include "storage/overlay.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace berth::build {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using image::DockerfileInstruction;
using image::ImageRecord;

constexpr size_t kChunk = 1 << 16;
const std::set<std::string> kCopyFlags = {"from", "chown", "chmod", "checksum", "keep-git-dir"};
const std::set<std::string> kCopyBoolFlags = {"link", "parents"};

std::string upper_case(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

UniqueFd dup_fd(int fd) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) throw_errno("dup");
  return UniqueFd(d);
}

bool has_glob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

// ---- sources of COPY and ADD ----------------------------------------------------------------

// Opens rel (relative, cleaned) inside root, symlinks resolved as if root were "/".
int open_in_root(int root_fd, const std::string& rel, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, rel.empty() ? "." : rel.c_str(), &how, sizeof how));
}

std::vector<std::string> list_dir(int dir_fd, const std::string& what) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + what);
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    ::close(fd);
    throw_errno("opendir " + what);
  }
  std::vector<std::string> names;
  while (struct dirent* de = ::readdir(dir)) {
    std::string n = de->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

// Where the files of a COPY come from: the build context (with its .dockerignore) or the root
// filesystem of a stage or image (--from).
struct SourceRoot {
  UniqueFd fd;
  const image::DockerIgnore* ignore = nullptr;  // the context's only
  std::string what;                             // "build context", "stage build"
};

// One object handed to a walk's visitor: its name in the copy, its metadata and (regular files)
// an fd to read.
using Visitor = std::function<void(const std::string& name, const struct stat& st, int fd, const std::string& link)>;

// Cleans a source argument to a path relative to the root; refuses one that leaves it.
std::string clean_source(const std::string& src, const std::string& what) {
  std::vector<std::string_view> parts;
  for (std::string_view c : split(src, '/')) {
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (parts.empty()) throw BuildError("forbidden path outside the " + what + ": " + src);
      parts.pop_back();
      continue;
    }
    parts.push_back(c);
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + std::string(p);
  return out;
}

bool ignored(const SourceRoot& root, const std::string& rel) {
  return root.ignore && !rel.empty() && root.ignore->excluded(rel);
}

// The paths (relative to the root) that a source argument names: itself, or its wildcard matches.
std::vector<std::string> match_sources(const SourceRoot& root, const std::string& src) {
  std::string rel = clean_source(src, root.what);
  if (!has_glob(rel)) {
    int fd = open_in_root(root.fd.get(), rel, O_PATH);
    if (fd < 0 || ignored(root, rel)) {
      if (fd >= 0) ::close(fd);
      throw BuildError("file not found in " + root.what + " or excluded by .dockerignore: stat " + src +
                       ": file does not exist");
    }
    ::close(fd);
    return {rel};
  }
  std::vector<std::string> candidates = {""};
  for (std::string_view comp_view : split(rel, '/')) {
    std::string comp(comp_view);
    std::vector<std::string> next;
    for (const auto& c : candidates) {
      if (!has_glob(comp)) {
        next.push_back(c.empty() ? comp : c + "/" + comp);
        continue;
      }
      int dfd = open_in_root(root.fd.get(), c, O_RDONLY | O_DIRECTORY);
      if (dfd < 0) continue;
      UniqueFd d(dfd);
      for (const auto& n : list_dir(dfd, c))
        if (::fnmatch(comp.c_str(), n.c_str(), 0) == 0) next.push_back(c.empty() ? n : c + "/" + n);
    }
    candidates = std::move(next);
  }
  std::vector<std::string> out;
  for (const auto& c : candidates) {
    int fd = open_in_root(root.fd.get(), c, O_PATH);
    if (fd < 0 || ignored(root, c)) {
      if (fd >= 0) ::close(fd);
      continue;
    }
    ::close(fd);
    out.push_back(c);
  }
  if (out.empty()) throw BuildError("no source files were specified: no file in the " + root.what + " matches " + src);
  return out;
}

// Visits rel (followed, within the root) and, for a directory, everything below it (not
// followed), skipping what .dockerignore excludes. name: what rel is called in the copy ("" for a
// directory whose contents are copied).
void walk_source(const SourceRoot& root, const std::string& rel, const std::string& name, const Visitor& visit) {
  int fd = open_in_root(root.fd.get(), rel, O_RDONLY | O_NONBLOCK);
  if (fd < 0) fd = open_in_root(root.fd.get(), rel, O_PATH);
  if (fd < 0) throw_errno("open " + rel + " in the " + root.what);
  UniqueFd top(fd);
  struct stat st {};
  if (::fstat(fd, &st) < 0) throw_errno("stat " + rel + " in the " + root.what);
  if (!S_ISDIR(st.st_mode)) {
    visit(name, st, S_ISREG(st.st_mode) ? fd : -1, "");
    return;
  }
  bool exceptions = root.ignore && root.ignore->has_exceptions();
  // Excluded directories walked for their exceptions: emitted only once something below is.
  std::vector<std::pair<std::string, struct stat>> pending;
  auto emit = [&](const std::string& n, const struct stat& s2, int f, const std::string& link) {
    for (const auto& [pn, pst] : pending) visit(pn, pst, -1, "");
    pending.clear();
    visit(n, s2, f, link);
  };
  std::function<void(int, const std::string&, const std::string&)> recurse = [&](int dir_fd, const std::string& r,
                                                                                 const std::string& n) {
    for (const auto& child : list_dir(dir_fd, r)) {
      std::string crel = r.empty() ? child : r + "/" + child;
      std::string cname = n.empty() ? child : n + "/" + child;
      bool skip = ignored(root, crel);
      struct stat cst {};
      if (::fstatat(dir_fd, child.c_str(), &cst, AT_SYMLINK_NOFOLLOW) < 0) throw_errno("stat " + crel);
      if (skip && !(exceptions && S_ISDIR(cst.st_mode))) continue;
      if (S_ISDIR(cst.st_mode)) {
        int cfd = ::openat(dir_fd, child.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) throw_errno("open " + crel);
        UniqueFd c(cfd);
        size_t depth = pending.size();
        if (!skip)
          emit(cname, cst, -1, "");
        else
          pending.emplace_back(cname, cst);
        recurse(cfd, crel, cname);
        if (pending.size() > depth) pending.resize(depth);
      } else if (!skip) {
        if (S_ISREG(cst.st_mode)) {
          int ffd = ::openat(dir_fd, child.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
          if (ffd < 0) throw_errno("open " + crel);
          UniqueFd f(ffd);
          emit(cname, cst, ffd, "");
        } else if (S_ISLNK(cst.st_mode)) {
          std::string target(4096, '\0');
          ssize_t len = ::readlinkat(dir_fd, child.c_str(), target.data(), target.size());
          if (len < 0) throw_errno("readlink " + crel);
          target.resize(static_cast<size_t>(len));
          emit(cname, cst, -1, target);
        } else {
          emit(cname, cst, -1, "");
        }
      }
    }
  };
  if (!name.empty()) visit(name, st, -1, "");
  recurse(fd, rel, name);
}

// What COPY/ADD do to each entry's owner and mode.
struct Ownership {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<mode_t> mode;  // --chmod
};

// Hashes what a walk visits: names, types, modes, owners, link targets and contents (not times),
// so an unchanged file keeps its step cached whatever its mtime.
class ContentHash {
 public:
  void add(const std::string& name, const struct stat& st, int fd, const std::string& link) {
    h_.update(name + '\0' + std::to_string(st.st_mode) + ' ' + std::to_string(st.st_uid) + ' ' +
              std::to_string(st.st_gid) + ' ' + link + '\0');
    if (fd < 0) return;
    std::unique_ptr<char[]> buf(new char[kChunk]);
    for (;;) {
      ssize_t n = ::pread(fd, buf.get(), kChunk, offset_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("read " + name);
      if (n == 0) break;
      h_.update(buf.get(), static_cast<size_t>(n));
      offset_ += n;
    }
    offset_ = 0;
  }
  void add_text(const std::string& s) { h_.update(s + '\0'); }
  std::string hex() { return h_.hex(); }

 private:
  image::Sha256 h_;
  off_t offset_ = 0;
};

// Writes a tar stream of visited objects to fd, with the copy's owner and mode.
class TarOut {
 public:
  TarOut(int fd, const Ownership& own) : own_(own), a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    if (archive_write_open_fd(a_, fd) != ARCHIVE_OK) fail("open");
  }
  ~TarOut() { archive_write_free(a_); }
  TarOut(const TarOut&) = delete;
  TarOut& operator=(const TarOut&) = delete;

  void add(const std::string& name, const struct stat& st, int fd, const std::string& link) {
    std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), st.st_mode & S_IFMT);
    archive_entry_set_perm(e.get(), own_.mode ? *own_.mode : (st.st_mode & 07777));
    archive_entry_set_uid(e.get(), own_.uid.value_or(0));
    archive_entry_set_gid(e.get(), own_.gid.value_or(0));
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    if (S_ISLNK(st.st_mode)) archive_entry_set_symlink(e.get(), link.c_str());
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) archive_entry_set_rdev(e.get(), st.st_rdev);
    struct stat now = st;
    if (fd >= 0 && ::fstat(fd, &now) < 0) throw_errno("stat " + name);
    archive_entry_set_size(e.get(), S_ISREG(st.st_mode) ? now.st_size : 0);
    if (archive_write_header(a_, e.get()) < ARCHIVE_WARN) fail("write " + name);
    if (fd < 0 || !S_ISREG(st.st_mode)) return;
    std::unique_ptr<char[]> buf(new char[kChunk]);
    int64_t left = now.st_size;
    off_t off = 0;
    while (left > 0) {
      ssize_t n = ::pread(fd, buf.get(), static_cast<size_t>(std::min<int64_t>(left, kChunk)), off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("read " + name);
      if (n == 0) {
        n = static_cast<ssize_t>(std::min<int64_t>(left, kChunk));
        std::fill(buf.get(), buf.get() + n, '\0');
      }
      if (archive_write_data(a_, buf.get(), static_cast<size_t>(n)) < 0) fail("write " + name);
      left -= n;
      off += n;
    }
  }
  void finish() {
    if (archive_write_close(a_) != ARCHIVE_OK) fail("close");
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    const char* m = archive_error_string(a_);
    throw Error("tar: " + what + ": " + (m ? m : "error"));
  }
  Ownership own_;
  struct archive* a_;
};

// Whether a regular file is an archive that ADD extracts (is_archive of its first bytes).
bool looks_like_archive(int fd) {
  char head[512];
  ssize_t n = ::pread(fd, head, sizeof head, 0);
  return n > 0 && is_archive(std::string_view(head, static_cast<size_t>(n)));
}

// ---- filesystem steps in a private mount namespace -------------------------------------------

// Runs fn with the step's root filesystem (an overlay of lowers with upper on top, or upper alone
// for an image without layers) mounted at merged, in a child process with its own mount namespace:
// a builder killed half-way leaves no mount behind. Throws fn's error.
void in_step_root(const std::vector<std::string>& lowers, const std::string& dir,
                  const std::function<void(const std::string& root, const std::string& from_dir)>& fn) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) throw_errno("pipe");
  UniqueFd rd(pipe_fds[0]), wr(pipe_fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    rd.reset();
    std::string message;
    try {
      if (::unshare(CLONE_NEWNS) < 0) throw_errno("unshare the mount namespace");
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) throw_errno("make / private");
      std::string root = dir + "/upper";
      if (!lowers.empty()) {
        storage::mount_overlay(lowers, dir + "/upper", dir + "/work", dir + "/merged");
        root = dir + "/merged";
      }
      fn(root, dir + "/from");
    } catch (const std::exception& e) {
      message = e.what();
      if (message.empty()) message = "failed";
    }
    if (!message.empty()) {
      (void)!::write(wr.get(), message.data(), message.size());
      ::_exit(1);
    }
    ::_exit(0);
  }
  wr.reset();
  std::string message;
  char buf[4096];
  for (ssize_t n; (n = ::read(rd.get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    message.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!message.empty()) throw BuildError(message);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw BuildError("a build step's process failed");
}

std::vector<std::string> lowers_of(image::ImageStore& images, const ImageRecord* img) {
  std::vector<std::string> out;
  if (!img) return out;
  for (size_t i = img->layers.size(); i-- > 0;) out.push_back(images.layer_dir(img->layers[i].chain_id));
  return out;
}

// Resolves each prefix of an absolute path in a tree ("/a", "/a/b", …) until at() says stop.
void each_prefix(const engine::cp::Tree& tree, const std::string& path,
                 const std::function<bool(const std::string&, engine::cp::Tree::Lookup&)>& at) {
  std::string cur;
  for (std::string_view comp : split(path, '/')) {
    if (comp.empty()) continue;
    cur += "/" + std::string(comp);
    auto l = tree.resolve(cur, true);
    if (!at(cur, l)) return;
  }
}

// mkdir -p of an absolute path in a tree (new directories 0755 root:root, as docker makes them).
void make_dirs(const engine::cp::Tree& tree, const std::string& path) {
  each_prefix(tree, path, [&](const std::string& cur, engine::cp::Tree::Lookup& l) {
    if (l.exists) {
      if (!S_ISDIR(l.st.st_mode)) throw BuildError("cannot copy to " + path + ": " + cur + " is not a directory");
      return true;
    }
    if (::mkdirat(l.parent.get(), l.name.c_str(), 0755) < 0 && errno != EEXIST) throw_errno("mkdir " + cur);
    return true;
  });
}

// Whether path is a directory in the tree (false when it or a parent is missing).
bool is_directory(const engine::cp::Tree& tree, const std::string& path) {
  bool dir = true;
  each_prefix(tree, path, [&](const std::string&, engine::cp::Tree::Lookup& l) {
    dir = l.exists && S_ISDIR(l.st.st_mode);
    return dir;
  });
  return dir;
}

// "user[:group]" of --chown, names looked up in the step's /etc/passwd and /etc/group.
Ownership parse_chown(const std::string& spec, const engine::cp::Tree& tree) {
  Ownership own;
  if (spec.empty()) return own;
  auto lookup = [&](const std::string& file, const std::string& name, int field) -> std::optional<unsigned long> {
    auto l = tree.resolve(file, true);
    if (!l.exists) return std::nullopt;
    // An O_PATH fd can't be read: reopen the object it holds (no path lookup again).
    std::string proc = "/proc/self/fd/" + std::to_string(l.fd.get());
    int fd = ::open(proc.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    UniqueFd f(fd);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    for (std::string_view line : split(text, '\n')) {
      std::vector<std::string_view> fields = split(line, ':');
      if (fields.size() <= static_cast<size_t>(field) || fields[0] != name) continue;
      try {
        return std::stoul(std::string(fields[static_cast<size_t>(field)]));
      } catch (...) {
        return std::nullopt;
      }
    }
    return std::nullopt;
  };
  auto numeric = [](const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  size_t colon = spec.find(':');
  std::string user = spec.substr(0, colon);
  std::string group = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (numeric(user)) {
    own.uid = static_cast<uid_t>(std::stoul(user));
  } else {
    auto uid = lookup("/etc/passwd", user, 2);
    if (!uid) throw BuildError("unable to find user " + user + ": no matching entries in passwd file");
    own.uid = static_cast<uid_t>(*uid);
    if (group.empty()) {
      auto gid = lookup("/etc/passwd", user, 3);
      own.gid = static_cast<gid_t>(gid.value_or(*uid));
    }
  }
  if (!group.empty()) {
    if (numeric(group)) {
      own.gid = static_cast<gid_t>(std::stoul(group));
    } else {
      auto gid = lookup("/etc/group", group, 2);
      if (!gid) throw BuildError("unable to find group " + group + ": no matching entries in group file");
      own.gid = static_cast<gid_t>(*gid);
    }
  } else if (!own.gid) {
    own.gid = static_cast<gid_t>(*own.uid);
  }
  return own;
}

// ---- the build --------------------------------------------------------------------------------

struct Stage {
  std::string name;  // lowercased AS name, or ""
  size_t index = 0;
  const DockerfileInstruction* from = nullptr;
  std::vector<const DockerfileInstruction*> steps;
  std::string base;  // the FROM image (expanded)
  std::optional<ImageRecord> result;
};

ojson container_config_of(const ImageRecord* img) {
  if (!img) return image::empty_container_config();
  ojson cfg = ojson::parse(img->config, nullptr, false);
  if (cfg.is_object() && cfg.contains("config") && cfg["config"].is_object()) return cfg["config"];
  return image::empty_container_config();
}

std::vector<std::string> env_list(const ojson& config) {
  std::vector<std::string> out;
  if (config.contains("Env") && config["Env"].is_array())
    for (const auto& e : config["Env"])
      if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

std::string env_key(const std::string& kv) { return kv.substr(0, kv.find('=')); }

// ARG NAME[=default] …: the defaults keep their quotes, for expansion when the ARG is reached.
std::vector<std::pair<std::string, std::optional<std::string>>> parse_arg(const std::string& rest) {
  std::vector<std::pair<std::string, std::optional<std::string>>> out;
  for (const auto& w : image::parse_words(rest)) {
    size_t eq = w.find('=');
    if (eq == 0) throw BuildError("ARG names can not be blank");
    if (eq == std::string::npos)
      out.emplace_back(w, std::nullopt);
    else
      out.emplace_back(w.substr(0, eq), w.substr(eq + 1));
  }
  if (out.empty()) throw BuildError("ARG requires at least one argument");
  return out;
}

class Builder {
 public:
  Builder(engine::Engine& engine, image::ImageStore& images, const BuildOptions& options, const Output& out,
          const BaseResolver& resolve_base)
      : engine_(engine), images_(images), o_(options), out_(out), resolve_base_(resolve_base) {}

  BuildResult run() {
    // Everything that can be refused is checked before anything is built.
    std::vector<std::string> tags;
    for (const auto& t : o_.tags) {
      image::Reference r;
      try {
        r = image::parse_reference(t);
      } catch (const Error& e) {
        throw BuildError("invalid tag \"" + t + "\": " + e.what());
      }
      if (!r.digest.empty()) throw BuildError("invalid tag \"" + t + "\": a tag cannot carry a digest");
      tags.push_back(r.name() + ":" + r.tag);
    }
    std::string text = load_dockerfile();
    try {
      df_ = image::parse_dockerfile(text);
    } catch (const Error& e) {
      throw BuildError(e.what());
    }
    plan();
    int fd = ::open(o_.context_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno("open the build context " + o_.context_dir);
    context_fd_.reset(fd);
    if (auto ig = read_in_context(context_fd_.get(), ".dockerignore")) {
      try {
        ignore_ = image::DockerIgnore(*ig);
      } catch (const Error& e) {
        throw BuildError(std::string(".dockerignore: ") + e.what());
      }
    }

    work_.emplace(images_.root());
    std::optional<ImageRecord> last;
    for (auto& st : stages_) {
      if (!needed_.count(st.index)) continue;
      build_stage(st);
      last = st.result;
    }
    if (!last) throw BuildError("no build stage in the Dockerfile");
    if (!o_.labels.empty()) {
      ojson cfg = container_config_of(&*last);
      if (!cfg.contains("Labels") || !cfg["Labels"].is_object()) cfg["Labels"] = ojson::object();
      for (const auto& [k, v] : o_.labels) cfg["Labels"][k] = v;
      image::ChildImage child;
      child.config = cfg;
      child.created_by = "/bin/sh -c #(nop)  LABEL";
      for (const auto& [k, v] : o_.labels) child.created_by += " " + k + "=" + v;
      last = cached_or(&*last, "labels\n" + json(o_.labels).dump(),
                       [&] { return image::store_child_image(images_, &*last, std::nullopt, child); });
    }
    std::vector<std::string> unused;
    for (const auto& [k, v] : o_.build_args)
      if (!consumed_.count(k)) unused.push_back(k);
    if (!unused.empty()) {
      std::string list;
      for (const auto& k : unused) list += (list.empty() ? "" : " ") + k;
      say("[Warning] One or more build-args [" + list + "] were not consumed\n");
    }
    for (const auto& t : tags) images_.add_ref(last->id, t, false);
    return {last->id, tags};
  }

 private:
  void say(const std::string& s) { out_(s); }

  // A regular file of the context (resolved inside it: a context from an API client may hold
  // symlinks to anywhere, and FIFOs), or nullopt.
  static std::optional<std::string> read_in_context(int context_fd, const std::string& rel) {
    int fd = open_in_root(context_fd, rel, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return std::nullopt;
    UniqueFd f(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    std::string text;
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    return text;
  }

  std::string load_dockerfile() {
    if (o_.dockerfile_text) return *o_.dockerfile_text;
    std::string name = o_.dockerfile.empty() ? "Dockerfile" : o_.dockerfile;
    std::string rel = clean_source(name, "build context");
    int cfd = ::open(o_.context_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cfd < 0) throw_errno("open the build context " + o_.context_dir);
    UniqueFd ctx(cfd);
    auto text = read_in_context(cfd, rel);
    if (!text && name == "Dockerfile") text = read_in_context(cfd, "dockerfile");
    if (!text) throw BuildError("Cannot locate specified Dockerfile: " + name);
    return *text;
  }

  // Splits the file into stages, expands their FROM lines with the ARGs before the first FROM,
  // and marks the stages the target needs.
  void plan() {
    const Stage* current = nullptr;
    for (const auto& ins : df_.instructions) {
      if (ins.keyword == "from") {
        Stage st;
        st.index = stages_.size();
        st.from = &ins;
        image::parse_instruction_flags(ins.flags, {"platform"});
        std::vector<std::string> words = image::expand_words(ins.rest, meta_env(), df_.escape);
        if (words.size() == 3 && lower(words[1]) == "as") {
          st.name = lower(words[2]);
        } else if (words.size() != 1) {
          throw BuildError("FROM requires either one or three arguments (line " + std::to_string(ins.line) + ")");
        }
        st.base = words[0];
        for (const auto& other : stages_)
          if (!st.name.empty() && other.name == st.name)
            throw BuildError("duplicate name " + words[2] + " (line " + std::to_string(ins.line) + ")");
        stages_.push_back(std::move(st));
        current = &stages_.back();
        continue;
      }
      if (!current) {
        if (ins.keyword != "arg")
          throw BuildError("no build stage in current context: " + upper_case(ins.keyword) + " before FROM (line " +
                           std::to_string(ins.line) + ")");
        for (const auto& [k, v] : parse_arg(ins.rest)) {
          auto given = o_.build_args.find(k);
          if (given != o_.build_args.end()) {
            meta_args_[k] = given->second;
            consumed_.insert(k);
          } else if (v) {
            meta_args_[k] = image::expand_word(*v, meta_env(), df_.escape);
          } else {
            meta_args_[k] = std::nullopt;
          }
        }
        continue;
      }
      stages_.back().steps.push_back(&ins);
    }
    if (stages_.empty()) throw BuildError("no build stage in the Dockerfile: it needs a FROM");
    size_t target = stages_.size() - 1;
    if (!o_.target.empty()) {
      bool found = false;
      for (const auto& st : stages_)
        if (st.name == lower(o_.target)) {
          target = st.index;
          found = true;
        }
      if (!found) throw BuildError("failed to reach build target " + o_.target + " in Dockerfile");
    }
    stages_.resize(target + 1);
    mark_needed(target);
    total_steps_ = 0;
    for (const auto& st : stages_)
      if (needed_.count(st.index)) total_steps_ += 1 + static_cast<int>(st.steps.size());
  }

  std::optional<size_t> stage_named(const std::string& name, size_t before) const {
    std::string n = lower(name);
    for (const auto& st : stages_)
      if (st.index < before && !st.name.empty() && st.name == n) return st.index;
    if (!n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      size_t i = std::stoul(n);
      if (i < before) return i;
      throw BuildError("invalid stage index " + name + ": a stage can only copy from the stages before it");
    }
    return std::nullopt;
  }

  void mark_needed(size_t index) {
    if (!needed_.insert(index).second) return;
    const Stage& st = stages_[index];
    if (auto dep = stage_named(st.base, index)) mark_needed(*dep);
    for (const auto* ins : st.steps) {
      if (ins->keyword != "copy" && ins->keyword != "add") continue;
      auto flags = image::parse_instruction_flags(ins->flags, kCopyFlags, kCopyBoolFlags);
      auto from = flags.find("from");
      if (from == flags.end()) continue;
      if (auto dep = stage_named(from->second, index)) mark_needed(*dep);
    }
  }

  std::vector<std::string> meta_env() const {
    std::vector<std::string> env;
    for (const auto& [k, v] : meta_args_)
      if (v) env.push_back(k + "=" + *v);
    return env;
  }

  // ---- one stage ----

  struct State {
    std::optional<ImageRecord> image;
    ojson config;
    bool cmd_set = false;
    std::map<std::string, std::optional<std::string>> args;  // this stage's ARGs
  };

  // What $VAR sees: the stage's ARGs, overridden by its ENV (docker's precedence).
  std::vector<std::string> expansion_env(const State& s) const {
    std::vector<std::string> env;
    std::vector<std::string> cfg_env = env_list(s.config);
    std::set<std::string> keys;
    for (const auto& e : cfg_env) keys.insert(env_key(e));
    for (const auto& [k, v] : s.args)
      if (v && !keys.count(k)) env.push_back(k + "=" + *v);
    env.insert(env.end(), cfg_env.begin(), cfg_env.end());
    return env;
  }

  // The ARG values in effect, as a cache key part and docker's "|N K=V" prefix of created_by.
  std::vector<std::string> arg_pairs(const State& s) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : s.args)
      if (v) out.push_back(k + "=" + *v);
    return out;
  }

  void step_header(const DockerfileInstruction& ins) {
    say("Step " + std::to_string(++step_) + "/" + std::to_string(total_steps_) + " : " + display(ins) + "\n");
  }

  static std::string display(const DockerfileInstruction& ins) {
    std::string s = upper_case(ins.keyword);
    for (const auto& f : ins.flags) s += " " + f;
    if (!ins.rest.empty()) s += " " + ins.rest;
    return s;
  }

  void build_stage(Stage& st) {
    step_header(*st.from);
    State s;
    if (lower(st.base) == "scratch") {
      s.config = image::empty_container_config();
      say(" ---> <scratch>\n");  // docker legacy prints nothing for scratch
    } else if (auto dep = stage_named(st.base, st.index)) {
      s.image = stages_[*dep].result;
      s.config = container_config_of(&*s.image);
      say(" ---> " + image::short_id(s.image->id) + "\n");
    } else {
      ImageRecord base = resolve_base_(st.base);
      s.image = base;
      s.config = container_config_of(&base);
      say(" ---> " + image::short_id(base.id) + "\n");
    }
    // ONBUILD triggers of the base image run first, then are cleared.
    if (s.config.contains("OnBuild") && s.config["OnBuild"].is_array() && !s.config["OnBuild"].empty()) {
      std::string triggers;
      for (const auto& t : s.config["OnBuild"])
        if (t.is_string()) triggers += t.get<std::string>() + "\n";
      s.config["OnBuild"] = nullptr;
      onbuild_.push_back(image::parse_dockerfile(triggers));
      say("# Executing " + std::to_string(onbuild_.back().instructions.size()) + " build trigger" +
          (onbuild_.back().instructions.size() == 1 ? "" : "s") + "\n");
      for (const auto& ins : onbuild_.back().instructions) run_step(st, s, ins);
    }
    for (const auto* ins : st.steps) {
      step_header(*ins);
      run_step(st, s, *ins);
    }
    if (!s.image || !image_matches(s)) {
      // Config-only changes (or scratch with none) since the last stored image: store them.
      image::ChildImage child;
      child.config = s.config;
      const ImageRecord* parent = s.image ? &*s.image : nullptr;
      s.image = cached_or(parent, "config\n" + s.config.dump(),
                          [&] { return image::store_child_image(images_, parent, std::nullopt, child); });
      say(" ---> " + image::short_id(s.image->id) + "\n");
    }
    st.result = s.image;
  }

  bool image_matches(const State& s) const { return container_config_of(&*s.image) == s.config; }

  // The image that the step with key_text made from parent before, unless --no-cache.
  std::optional<ImageRecord> cached(const ImageRecord* parent, const std::string& key_text) {
    if (o_.no_cache) return std::nullopt;
    auto id = images_.cached_step(parent ? parent->id : "scratch", image::sha256_digest(key_text));
    if (!id) return std::nullopt;
    return images_.find(*id);
  }

  // The image a step with key made from parent: the cached one, or make()'s (then cached).
  ImageRecord cached_or(const ImageRecord* parent, const std::string& key_text,
                        const std::function<ImageRecord()>& make, bool* hit = nullptr) {
    if (auto img = cached(parent, key_text)) {
      if (hit) *hit = true;
      return *img;
    }
    ImageRecord made = make();
    images_.record_step(parent ? parent->id : "scratch", image::sha256_digest(key_text), made.id);
    return made;
  }

  void run_step(Stage& st, State& s, const DockerfileInstruction& ins) {
    const std::string& k = ins.keyword;
    if (k == "arg") {
      for (const auto& [name, def] : parse_arg(ins.rest)) {
        std::optional<std::string> value;
        auto given = o_.build_args.find(name);
        if (given != o_.build_args.end()) {
          value = given->second;
          consumed_.insert(name);
        } else if (def) {
          value = image::expand_word(*def, expansion_env(s), df_.escape);
        } else if (auto meta = meta_args_.find(name); meta != meta_args_.end()) {
          value = meta->second;
        }
        s.args[name] = value;
      }
      return;
    }
    if (k == "run") return run_run(s, ins);
    if (k == "copy" || k == "add") return run_copy(st, s, ins);
    if (k == "from") throw BuildError("FROM in the middle of a stage");
    // Config-only instructions: a new image with the changed config (cached by its content).
    ojson before = s.config;
    std::vector<std::string> env = expansion_env(s);
    try {
      image::apply_config_instruction(s.config, ins, env, s.cmd_set, df_.escape);
    } catch (const BuildError&) {
      throw;
    } catch (const Error& e) {
      throw BuildError(std::string(e.what()) + " (line " + std::to_string(ins.line) + ")");
    }
    if (k == "workdir" && ensure_workdir(s)) return;
    image::ChildImage child;
    child.config = s.config;
    child.created_by = "/bin/sh -c #(nop)  " + display(ins);
    const ImageRecord* parent = s.image ? &*s.image : nullptr;
    bool hit = false;
    ImageRecord img = cached_or(
        parent, "nop\n" + display(ins) + "\n" + s.config.dump(),
        [&] { return image::store_child_image(images_, parent, std::nullopt, child); }, &hit);
    if (hit) say(" ---> Using cache\n");
    s.image = img;
    say(" ---> " + image::short_id(img.id) + "\n");
  }

  // WORKDIR makes its directory when the image lacks it (docker does, as root): then the step's
  // image has that layer. False when the directory was there (a config-only step).
  bool ensure_workdir(State& s) {
    std::string dir = s.config.value("WorkingDir", "");
    if (dir.empty() || dir == "/") return false;
    const ImageRecord* parent = s.image ? &*s.image : nullptr;
    std::string key_text = "workdir\n" + dir + "\n" + s.config.dump();
    if (auto img = cached(parent, key_text)) {
      say(" ---> Using cache\n ---> " + image::short_id(img->id) + "\n");
      s.image = *img;
      return true;
    }
    std::string step = work_->step_dir();
    std::vector<std::string> lowers = lowers_of(images_, parent);
    in_step_root(lowers, step, [&](const std::string& root, const std::string&) {
      engine::cp::Tree tree(root, {}, false, "the image");
      make_dirs(tree, dir);
    });
    auto changes = engine::container_changes(step + "/upper", lowers, {});
    if (changes.empty()) return false;
    auto layer = engine::store_layer(images_, parent, step + "/upper", changes);
    image::ChildImage child;
    child.config = s.config;
    child.created_by = "/bin/sh -c #(nop) WORKDIR " + dir;
    s.image = image::store_child_image(images_, parent, layer, child);
    images_.record_step(parent ? parent->id : "scratch", image::sha256_digest(key_text), s.image->id);
    say(" ---> " + image::short_id(s.image->id) + "\n");
    return true;
  }

  // ---- RUN ----

  void run_run(State& s, const DockerfileInstruction& ins) {
    auto flags = image::parse_instruction_flags(ins.flags, {"network", "mount", "security"});
    if (flags.count("mount"))
      throw BuildError("RUN --mount is not supported by berth yet (line " + std::to_string(ins.line) + ")");
    std::string network = o_.network;
    if (auto n = flags.find("network"); n != flags.end()) network = n->second == "default" ? o_.network : n->second;
    if (!s.image) throw BuildError("RUN in an image without layers (FROM scratch) has nothing to run");
    std::vector<std::string> argv;
    bool json_form = false;
    if (auto exec = image::parse_json_array(ins.rest)) {
      argv = *exec;
      json_form = true;
    } else {
      std::vector<std::string> shell = {"/bin/sh", "-c"};
      if (s.config.contains("Shell") && s.config["Shell"].is_array() && !s.config["Shell"].empty())
        shell = s.config["Shell"].get<std::vector<std::string>>();
      argv = shell;
      argv.push_back(shell_command(ins));
    }
    if (argv.empty()) throw BuildError("RUN requires at least one argument (line " + std::to_string(ins.line) + ")");
    std::vector<std::string> args = arg_pairs(s);
    std::string created_by;
    if (!args.empty()) {
      created_by = "|" + std::to_string(args.size());
      for (const auto& a : args) created_by += " " + a;
      created_by += " ";
    }
    for (size_t i = 0; i < argv.size(); i++) created_by += (i ? " " : "") + argv[i];
    std::string key = "run\n" + json(argv).dump() + "\n" + json(args).dump() + "\n" + network + "\n" + s.config.dump() +
                      (json_form ? "\nexec" : "");
    ImageRecord parent = *s.image;
    if (auto img = cached(&parent, key)) {
      say(" ---> Using cache\n ---> " + image::short_id(img->id) + "\n");
      s.image = *img;
      return;
    }
    // The process's env: the image's, plus the ARGs that no ENV overrides.
    std::vector<std::string> env = env_list(s.config);
    std::set<std::string> keys;
    for (const auto& e : env) keys.insert(env_key(e));
    for (const auto& a : args)
      if (!keys.count(env_key(a))) env.push_back(a);
    json cfg = {{"Image", parent.id},
                {"Cmd", argv},
                {"Entrypoint", json::array({""})},
                {"Env", env},
                {"User", s.config.value("User", "")},
                {"WorkingDir", s.config.value("WorkingDir", "")},
                {"Labels", json::object()}};
    json host = {{"NetworkMode", network}, {"LogConfig", {{"Type", "none"}, {"Config", json::object()}}}};
    std::string id = engine_.create({{"Config", cfg}, {"HostConfig", host}});
    say(" ---> Running in " + id.substr(0, 12) + "\n");
    bool ok = false;
    try {
      int code = run_attached(id);
      if (code != 0) {
        std::string shown;
        for (size_t i = 0; i < argv.size(); i++) shown += (i ? " " : "") + argv[i];
        throw BuildError("The command '" + shown + "' returned a non-zero code: " + std::to_string(code), code);
      }
      engine::Container c = engine_.get(id);
      image::ChildImage child;
      child.config = s.config;
      child.created_by = created_by;
      child.container = id;
      ImageRecord img = engine::commit_container(engine_, images_, c, child);
      images_.record_step(parent.id, image::sha256_digest(key), img.id);
      s.image = img;
      ok = true;
    } catch (...) {
      // Unlike docker (which keeps a failed step's container unless --force-rm), a failed
      // build leaves nothing behind unless --rm=false asked to keep its containers.
      if (o_.force_remove || o_.remove_intermediate) remove_container(id);
      throw;
    }
    if (ok && o_.remove_intermediate) {
      remove_container(id);
      say("Removing intermediate container " + id.substr(0, 12) + "\n");
    }
    say(" ---> " + image::short_id(s.image->id) + "\n");
  }

  // A shell-form RUN's command: heredocs go to the shell as written (it reads them itself), and a
  // RUN that is only a heredoc runs that script.
  static std::string shell_command(const DockerfileInstruction& ins) {
    if (ins.heredocs.empty()) return ins.rest;
    std::string_view rest = trim(ins.rest);
    if (ins.heredocs.size() == 1 && rest.substr(0, 2) == "<<" && rest.find_first_of(" \t") == std::string_view::npos)
      return ins.heredocs[0].content;
    std::string cmd = ins.rest;
    for (const auto& h : ins.heredocs) cmd += "\n" + h.content + h.name;
    return cmd;
  }

  int run_attached(const std::string& id) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe");
    UniqueFd rd(fds[0]), wr(fds[1]);
    std::exception_ptr relay_error;
    std::thread relay([&] {
      char buf[8192];
      for (ssize_t n; (n = ::read(rd.get(), buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (relay_error) continue;  // the reader went away: drain, so the container never blocks
        try {
          out_(std::string_view(buf, static_cast<size_t>(n)));
        } catch (...) {
          relay_error = std::current_exception();
        }
      }
    });
    int code = -1;
    try {
      engine::AttachIo io;
      io.stdin_fd = -1;
      io.stdout_fd = wr.get();
      io.stderr_fd = wr.get();
      code = engine_.start_attached(id, io);
    } catch (...) {
      wr.reset();
      relay.join();
      throw;
    }
    wr.reset();
    relay.join();
    if (relay_error) std::rethrow_exception(relay_error);
    return code;
  }

  void remove_container(const std::string& id) {
    try {
      engine_.remove(id, true, true);
    } catch (...) {
    }
  }

  // ---- COPY and ADD ----

  void run_copy(Stage& st, State& s, const DockerfileInstruction& ins) {
    bool add = ins.keyword == "add";
    auto flags = image::parse_instruction_flags(ins.flags, kCopyFlags, kCopyBoolFlags);
    std::vector<std::string> env = expansion_env(s);
    std::vector<std::string> words;
    if (auto exec = image::parse_json_array(ins.rest))
      words = *exec;
    else
      words = image::parse_words(ins.rest);
    if (!ins.heredocs.empty())  // "<<EOF" words name heredocs, not files
      words.erase(
          std::remove_if(words.begin(), words.end(), [](const std::string& w) { return w.rfind("<<", 0) == 0; }),
          words.end());
    for (auto& w : words) w = image::expand_word(w, env, df_.escape);
    std::string name = upper_case(ins.keyword);
    if (words.size() + ins.heredocs.size() < 2)
      throw BuildError(name + " requires at least two arguments, but only " + std::to_string(words.size()) +
                       " provided (line " + std::to_string(ins.line) + ")");
    std::string dest = words.back();
    words.pop_back();
    std::optional<mode_t> chmod;
    if (auto c = flags.find("chmod"); c != flags.end() && !c->second.empty()) {
      char* end = nullptr;
      unsigned long m = std::strtoul(c->second.c_str(), &end, 8);
      if (*end || m > 07777) throw BuildError("invalid chmod parameter: " + c->second);
      chmod = static_cast<mode_t>(m);
    }
    std::string chown;
    if (auto c = flags.find("chown"); c != flags.end()) chown = image::expand_word(c->second, env, df_.escape);

    // Where the sources come from.
    std::optional<ImageRecord> from_image;
    std::string from_what = "build context";
    if (auto f = flags.find("from"); f != flags.end()) {
      std::string ref = image::expand_word(f->second, env, df_.escape);
      if (auto dep = stage_named(ref, st.index)) {
        from_image = stages_[*dep].result;
        from_what = "stage " + ref;
      } else {
        from_image = resolve_base_(ref);
        from_what = "image " + ref;
      }
    }
    for (const auto& w : words)
      if (w.rfind("http://", 0) == 0 || w.rfind("https://", 0) == 0 || w.rfind("git@", 0) == 0) {
        if (!add)
          throw BuildError("COPY does not take URLs (" + w + "): use ADD, or put the file in the build context");
        throw BuildError("ADD " + w + ": berth does not download remote sources; put the file in the build context");
      }

    // Destination: relative to WORKDIR; a directory when it ends in "/" or takes several sources.
    std::string workdir = s.config.value("WorkingDir", "");
    bool dest_dir = !dest.empty() &&
                    (dest.back() == '/' || dest == "." || (dest.size() > 1 && dest.substr(dest.size() - 2) == "/."));
    std::string dest_abs = dest.front() == '/' ? dest : (workdir.empty() ? "/" : workdir) + "/" + dest;
    dest_abs = image::clean_absolute_path(dest_abs);

    // The cache key: the instruction, the owner and mode, and the content of every source.
    ContentHash hash;
    hash.add_text(name + "\n" + dest_abs + (dest_dir ? "/" : "") + "\n" + chown + "\n" +
                  (chmod ? std::to_string(*chmod) : "") + "\n" + (from_image ? from_image->id : ""));
    std::vector<std::string> matched;
    if (!from_image) {
      SourceRoot root{dup_fd(context_fd_.get()), ignore_.empty() ? nullptr : &ignore_, "build context"};
      for (const auto& w : words)
        for (const auto& m : match_sources(root, w)) {
          matched.push_back(m);
          hash.add_text("src " + m);
          walk_source(root, m, m, [&](const std::string& n, const struct stat& st2, int fd, const std::string& link) {
            hash.add(n, st2, fd, link);
          });
        }
      for (const auto& h : ins.heredocs) hash.add_text("heredoc " + h.name + "\n" + h.content);
    } else {
      for (const auto& w : words) hash.add_text("src " + w);
    }
    if (words.size() + ins.heredocs.size() > 1 || matched.size() > 1) {
      if (!dest_dir)
        throw BuildError("When using " + name +
                         " with more than one source file, the destination must be a directory and end with a /");
    }
    std::string key = hash.hex();
    ImageRecord* parent = s.image ? &*s.image : nullptr;
    std::string parent_id = parent ? parent->id : "scratch";
    if (auto img = cached(parent, key)) {
      say(" ---> Using cache\n ---> " + image::short_id(img->id) + "\n");
      s.image = *img;
      return;
    }

    std::string step = work_->step_dir();
    std::vector<std::string> lowers = lowers_of(images_, parent);
    std::vector<std::string> from_lowers = from_image ? lowers_of(images_, &*from_image) : std::vector<std::string>{};
    const image::DockerIgnore* ignore = ignore_.empty() ? nullptr : &ignore_;
    int context_fd = context_fd_.get();
    in_step_root(lowers, step, [&](const std::string& root, const std::string& from_dir) {
      engine::cp::Tree tree(root, {}, false, "the image");
      Ownership own = parse_chown(chown, tree);
      own.mode = chmod;
      SourceRoot src;
      if (from_image) {
        if (!from_lowers.empty()) {
          if (from_lowers.size() == 1) {
            if (::mount(from_lowers[0].c_str(), from_dir.c_str(), nullptr, MS_BIND, nullptr) < 0)
              throw_errno("bind " + from_lowers[0]);
          } else {
            storage::mount_overlay(from_lowers, "", "", from_dir);
          }
        }
        int fd = ::open(from_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) throw_errno("open " + from_dir);
        src = SourceRoot{UniqueFd(fd), nullptr, from_what};
        matched.clear();
        for (const auto& w : words)
          for (const auto& m : match_sources(src, w)) matched.push_back(m);
        if (matched.size() > 1 && !dest_dir)
          throw BuildError("When using " + name +
                           " with more than one source file, the destination must be a directory and end with a /");
      } else {
        src = SourceRoot{dup_fd(context_fd), ignore, "build context"};
      }
      auto copy_one = [&](const std::string& rel) {
        int fd = open_in_root(src.fd.get(), rel, O_PATH);
        if (fd < 0) throw_errno("open " + rel + " in the " + src.what);
        UniqueFd obj(fd);
        struct stat sst {};
        if (::fstat(fd, &sst) < 0) throw_errno("stat " + rel);
        std::string base = rel.empty() ? "" : rel.substr(rel.rfind('/') + 1);
        std::string into, entry;
        if (S_ISDIR(sst.st_mode)) {
          into = dest_abs;
        } else if (add && !from_image && S_ISREG(sst.st_mode)) {
          int afd = open_in_root(src.fd.get(), rel, O_RDONLY);
          if (afd < 0) throw_errno("open " + rel);
          UniqueFd archive(afd);
          if (looks_like_archive(afd)) {
            make_dirs(tree, dest_abs);
            engine::cp::Options co;
            co.archive = true;
            engine::cp::copy_to("-", tree, dest_abs, dest, co, afd);
            return;
          }
        }
        if (!S_ISDIR(sst.st_mode)) {
          if (dest_dir || is_directory(tree, dest_abs)) {
            into = dest_abs;
            entry = base;
          } else {
            size_t slash = dest_abs.rfind('/');
            into = slash == 0 ? "/" : dest_abs.substr(0, slash);
            entry = dest_abs.substr(slash + 1);
          }
        }
        make_dirs(tree, into);
        send_tar(tree, into, dest, own, [&](TarOut& tar) {
          walk_source(src, rel, entry,
                      [&](const std::string& n, const struct stat& st2, int f, const std::string& link) {
                        tar.add(n, st2, f, link);
                      });
        });
      };
      for (const auto& m : matched) copy_one(m);
      // COPY <<EOF /dest: each heredoc is a file named after its delimiter.
      for (const auto& h : ins.heredocs) {
        // Written as is: the lexer would also take quotes and backslashes out of the file.
        const std::string& content = h.content;
        std::string into = dest_dir || ins.heredocs.size() > 1 ? dest_abs : dest_abs.substr(0, dest_abs.rfind('/'));
        std::string file = dest_dir || ins.heredocs.size() > 1 ? h.name : dest_abs.substr(dest_abs.rfind('/') + 1);
        if (into.empty()) into = "/";
        make_dirs(tree, into);
        send_tar(tree, into, dest, own, [&](TarOut& tar) {
          std::string tmp = from_dir + "/.heredoc";
          write_file(tmp, content, O_CREAT | O_TRUNC | O_WRONLY, 0644);
          UniqueFd f = open_or_throw(tmp, O_RDONLY);
          struct stat hst {};
          ::fstat(f.get(), &hst);
          tar.add(file, hst, f.get(), "");
        });
      }
    });
    auto changes = engine::container_changes(step + "/upper", lowers, {});
    auto layer = engine::store_layer(images_, parent, step + "/upper", changes);
    image::ChildImage child;
    child.config = s.config;
    child.created_by = "/bin/sh -c #(nop) " + name + " " +
                       (from_image ? "from:" + from_image->id.substr(7, 12) : "file:" + key.substr(0, 16)) + " in " +
                       dest_abs;
    ImageRecord img = image::store_child_image(images_, parent, layer, child);
    images_.record_step(parent_id, image::sha256_digest(key), img.id);
    s.image = img;
    say(" ---> " + image::short_id(img.id) + "\n");
  }

  // Streams a tar that fill writes into the tree at into (a thread writes, this one extracts).
  static void send_tar(const engine::cp::Tree& tree, const std::string& into, const std::string& dest_arg,
                       const Ownership& own, const std::function<void(TarOut&)>& fill) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe");
    UniqueFd rd(fds[0]), wr(fds[1]);
    std::exception_ptr error;
    std::thread writer([&] {
      try {
        TarOut tar(wr.get(), own);
        fill(tar);
        tar.finish();
      } catch (...) {
        error = std::current_exception();
      }
      wr.reset();
    });
    try {
      engine::cp::Options co;
      co.archive = true;
      engine::cp::copy_to("-", tree, into, dest_arg, co, rd.get());
    } catch (...) {
      rd.reset();
      writer.join();
      if (error) std::rethrow_exception(error);
      throw;
    }
    rd.reset();
    writer.join();
    if (error) std::rethrow_exception(error);
  }

  engine::Engine& engine_;
  image::ImageStore& images_;
  const BuildOptions& o_;
  const Output& out_;
  const BaseResolver& resolve_base_;
  image::Dockerfile df_;
  std::vector<image::Dockerfile> onbuild_;  // parsed triggers, alive while their steps run
  std::vector<Stage> stages_;
  std::set<size_t> needed_;
  std::map<std::string, std::optional<std::string>> meta_args_;
  std::set<std::string> consumed_;
  int step_ = 0, total_steps_ = 0;
  UniqueFd context_fd_;
  image::DockerIgnore ignore_;
  std::optional<ScratchDir> work_;
};

}  // namespace

bool is_archive(std::string_view head) {
  auto u = [&](size_t i) { return i < head.size() ? static_cast<unsigned char>(head[i]) : 0; };
  if (head.size() < 6) return false;
  if (u(0) == 0x1f && u(1) == 0x8b) return true;  // gzip
  if (head.substr(0, 3) == "BZh") return true;    // bzip2
  if (head.substr(0, 5) == std::string_view("\xfd"
                                            "7zXZ",
                                            5))
    return true;                                                                  // xz
  if (u(0) == 0x28 && u(1) == 0xb5 && u(2) == 0x2f && u(3) == 0xfd) return true;  // zstd
  return head.size() >= 262 && head.substr(257, 5) == "ustar";                    // tar
}

// ---- scratch directories ------------------------------------------------------------------

ScratchDir::ScratchDir(const std::string& root) {
  std::string base = root + "/build";
  mkdir_p(base, 0700);
  sweep(base);
  path_ = base + "/" + random_suffix();
  mkdir_p(path_, 0700);
  int fd = ::open((path_ + "/.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno("create " + path_ + "/.lock");
  lock_.reset(fd);
  if (::flock(fd, LOCK_EX) < 0) throw_errno("lock " + path_);
}

ScratchDir::~ScratchDir() {
  try {
    remove_tree(path_);
  } catch (...) {
  }
}

std::string ScratchDir::step_dir() {
  std::string d = path_ + "/step-" + std::to_string(++steps_);
  for (const char* sub : {"upper", "work", "merged", "from"}) mkdir_p(d + "/" + sub, 0755);
  return d;
}

void ScratchDir::sweep(const std::string& base) {
  DIR* dir = ::opendir(base.c_str());
  if (!dir) return;
  std::vector<std::string> stale;
  while (struct dirent* de = ::readdir(dir)) {
    std::string n = de->d_name;
    if (n == "." || n == "..") continue;
    int fd = ::open((base + "/" + n + "/.lock").c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      stale.push_back(n);
      continue;
    }
    UniqueFd l(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) stale.push_back(n);
  }
  ::closedir(dir);
  for (const auto& n : stale) {
    try {
      remove_tree(base + "/" + n);
    } catch (...) {
    }
  }
}

BuildResult build_image(engine::Engine& engine, image::ImageStore& images, const BuildOptions& options,
                        const Output& out, const BaseResolver& resolve_base) {
  Builder b(engine, images, options, out, resolve_base);
  return b.run();
}

int64_t extract_context(int fd, const std::string& dir) {
  struct archive* a = archive_read_new();
  std::unique_ptr<struct archive, int (*)(struct archive*)> in(a, archive_read_free);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  archive_read_support_format_empty(a);  // no body: an empty context (then "no Dockerfile")
  archive_read_support_filter_all(a);
  if (archive_read_open_fd(a, fd, kChunk) != ARCHIVE_OK)
    throw BuildError(std::string("read the build context: ") + archive_error_string(a));
  std::unique_ptr<struct archive, int (*)(struct archive*)> disk(archive_write_disk_new(), archive_write_free);
  archive_write_disk_set_options(disk.get(), ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                                 ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                 ARCHIVE_EXTRACT_UNLINK);
  int64_t bytes = 0;
  for (;;) {
    struct archive_entry* e = nullptr;
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw BuildError(std::string("read the build context: ") + archive_error_string(a));
    std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    // Entries are placed below dir by prefixing it, so absolute names are refused here (libarchive's
    // own check would see dir's absolute path); ".." and links out are libarchive's to refuse.
    const char* hl = archive_entry_hardlink(e);
    if ((!name.empty() && name[0] == '/') || (hl && hl[0] == '/'))
      throw BuildError("build context entry " + name + ": absolute paths are not allowed");
    archive_entry_set_pathname(e, (dir + "/" + name).c_str());
    if (hl) archive_entry_set_hardlink(e, (dir + "/" + hl).c_str());
    if (archive_write_header(disk.get(), e) < ARCHIVE_WARN)
      throw BuildError("build context entry " + name + ": " + archive_error_string(disk.get()));
    const void* buf;
    size_t size;
    la_int64_t offset;
    while ((r = archive_read_data_block(a, &buf, &size, &offset)) == ARCHIVE_OK) {
      if (archive_write_data_block(disk.get(), buf, size, offset) < ARCHIVE_WARN)
        throw BuildError("build context entry " + name + ": " + archive_error_string(disk.get()));
      bytes += static_cast<int64_t>(size);
    }
    if (r < ARCHIVE_WARN) throw BuildError(std::string("read the build context: ") + archive_error_string(a));
    archive_write_finish_entry(disk.get());
  }
  archive_write_close(disk.get());
  return bytes;
}

}  // namespace berth::build
