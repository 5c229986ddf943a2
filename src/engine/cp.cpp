#include "engine/cp.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <map>

#include "engine/engine.hpp"
#include "storage/overlay.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::engine::cp {

namespace {

constexpr size_t kChunk = size_t{1} << 16;
constexpr int kMaxSymlinks = 40;

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    std::string part = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (!part.empty()) out.push_back(part);
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return out;
}

std::string join(const std::string& dir, const std::string& name) {
  if (name.empty()) return dir;
  return dir == "/" ? "/" + name : dir + "/" + name;
}

// Lexical cleaning of an absolute path ("a/../b/" → "/b"), for mount destinations.
std::string clean_abs(const std::string& path) {
  std::vector<std::string> parts;
  for (const auto& p : split_path(path)) {
    if (p == ".") continue;
    if (p == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(p);
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

std::string dirname_of(const std::string& canonical) {
  size_t slash = canonical.rfind('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return canonical.substr(0, slash);
}

// The name docker gives the copied object: the last component as written ("/a/b/" → "b",
// "/a/b/." → "b", "/" → ".").
std::string lexical_base(const std::string& path) {
  std::vector<std::string> parts = split_path(path);
  while (!parts.empty() && parts.back() == ".") parts.pop_back();
  if (parts.empty()) return ".";
  return parts.back();
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

UniqueFd dup_fd(int fd) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) throw_errno("dup");
  return UniqueFd(d);
}

// One name below dirfd, never through a symlink or out of the directory; O_PATH|O_NOFOLLOW gives
// an fd of a trailing symlink itself. Returns an invalid fd with errno set on failure.
UniqueFd open_beneath(int dirfd, const std::string& name, uint64_t flags) {
  struct open_how how {};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  do {
    fd = ::syscall(SYS_openat2, dirfd, name.c_str(), &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN);
  return UniqueFd(static_cast<int>(fd));
}

std::string readlink_fd(int fd, const std::string& what) {
  std::string buf(PATH_MAX, '\0');
  ssize_t n = ::readlinkat(fd, "", buf.data(), buf.size());
  if (n < 0) throw_errno("readlink " + what);
  buf.resize(static_cast<size_t>(n));
  return buf;
}

// An O_PATH fd reopened for reading (the same inode: /proc/self/fd is the fd's own file).
UniqueFd reopen(int opath_fd, int flags, const std::string& what) {
  std::string proc = "/proc/self/fd/" + std::to_string(opath_fd);
  int fd = ::open(proc.c_str(), flags | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw_errno("open " + what);
  return UniqueFd(fd);
}

UniqueFd open_dir(int opath_fd, const std::string& what) {
  int fd = ::openat(opath_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + what);
  return UniqueFd(fd);
}

size_t read_some(int fd, char* buf, size_t len, const std::string& what) {
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) throw_errno("read " + what);
  }
}

// What flows from a source (a walked tree, a tar stream) to a sink (a tree, a tar stream).
struct Entry {
  std::string path;  // relative, "/"-separated
  mode_t type = 0;   // S_IFREG, S_IFDIR, …
  mode_t perm = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  struct timespec atime {};
  struct timespec mtime {};
  int64_t size = 0;
  std::string link;      // symlink target
  std::string hardlink;  // path (as in this stream) of an earlier entry with the same inode
  dev_t rdev = 0;
};

class DataReader {
 public:
  virtual ~DataReader() = default;
  // 0 at the end.
  virtual size_t read(char* buf, size_t len) = 0;
};

class FdReader : public DataReader {
 public:
  FdReader(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  size_t read(char* buf, size_t len) override { return read_some(fd_, buf, len, what_); }

 private:
  int fd_;
  std::string what_;
};

class ArchiveReader : public DataReader {
 public:
  explicit ArchiveReader(struct archive* a) : a_(a) {}
  size_t read(char* buf, size_t len) override {
    la_ssize_t n = archive_read_data(a_, buf, len);
    if (n < 0) throw Error(std::string("read tar stream: ") + archive_error_string(a_));
    return static_cast<size_t>(n);
  }

 private:
  struct archive* a_;
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void put(const Entry& e, DataReader* data) = 0;
  virtual void finish() {}
};

// Writes entries as a tar stream (PAX, like docker's).
class TarSink : public Sink {
 public:
  explicit TarSink(int fd) : a_(archive_write_new()) {
    if (!a_) throw Error("tar: out of memory");
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_bytes_in_last_block(a_, 1);
    if (archive_write_open_fd(a_, fd) != ARCHIVE_OK) fail("open");
  }
  ~TarSink() override {
    if (a_) archive_write_free(a_);
  }
  TarSink(const TarSink&) = delete;
  TarSink& operator=(const TarSink&) = delete;

  void put(const Entry& e, DataReader* data) override {
    struct archive_entry* ae = archive_entry_new();
    if (!ae) throw Error("tar: out of memory");
    std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)> guard(ae, archive_entry_free);
    archive_entry_set_pathname_utf8(ae, e.path.c_str());
    archive_entry_set_perm(ae, e.perm);
    archive_entry_set_uid(ae, e.uid);
    archive_entry_set_gid(ae, e.gid);
    archive_entry_set_mtime(ae, e.mtime.tv_sec, e.mtime.tv_nsec);
    if (!e.hardlink.empty()) {
      archive_entry_set_filetype(ae, AE_IFREG);
      archive_entry_set_hardlink_utf8(ae, e.hardlink.c_str());
      archive_entry_set_size(ae, 0);
    } else {
      archive_entry_set_filetype(ae, e.type);
      if (S_ISLNK(e.type)) archive_entry_set_symlink_utf8(ae, e.link.c_str());
      if (S_ISCHR(e.type) || S_ISBLK(e.type)) archive_entry_set_rdev(ae, e.rdev);
      archive_entry_set_size(ae, S_ISREG(e.type) ? e.size : 0);
    }
    if (archive_write_header(a_, ae) < ARCHIVE_WARN) fail("write " + e.path);
    if (!e.hardlink.empty() || !S_ISREG(e.type)) return;
    std::vector<char> buf(kChunk);
    int64_t left = e.size;
    while (left > 0) {
      size_t want = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(buf.size())));
      size_t n = data ? data->read(buf.data(), want) : 0;
      if (n == 0) {  // the file shrank while it was copied: pad, the header promised size bytes
        std::fill(buf.begin(), buf.begin() + static_cast<long>(want), '\0');
        n = want;
      }
      if (archive_write_data(a_, buf.data(), n) < 0) fail("write " + e.path);
      left -= static_cast<int64_t>(n);
    }
  }

  void finish() override {
    if (archive_write_close(a_) != ARCHIVE_OK) fail("close");
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw Error("tar stream: " + what + ": " + (archive_error_string(a_) ? archive_error_string(a_) : "error"));
  }
  struct archive* a_;
};

enum class Owner { Keep, Root, Unchanged };

// Extracts entries below a directory of a Tree, resolving every parent in the tree's scope and
// umask 0 for this thread only: unshare(CLONE_FS) first gives the thread its own umask, so the API
// server's other threads keep theirs while one of them extracts.
mode_t thread_umask_zero() {
  ::unshare(CLONE_FS);
  return ::umask(0);
}

// creating each object with *at() calls on the parent's fd (never through a symlink).
class TreeSink : public Sink {
 public:
  TreeSink(const Tree& tree, std::string base, Owner owner)
      : tree_(tree), base_(std::move(base)), owner_(owner), old_umask_(thread_umask_zero()) {}
  ~TreeSink() override { ::umask(old_umask_); }
  TreeSink(const TreeSink&) = delete;
  TreeSink& operator=(const TreeSink&) = delete;

  int64_t bytes() const { return bytes_; }

  // Directories a tar names only as parents ("pkg/readme" without "pkg/"): made 0755 and owned by
  // root, as docker's untar does.
  void make_parents(const std::vector<std::string>& parts) {
    std::string cur = base_;
    for (size_t i = 0; i + 1 < parts.size(); i++) {
      cur = join(cur, parts[i]);
      // Never through a symlink: an entry below a link (even one the tar made) is refused below.
      Tree::Lookup l = tree_.resolve(cur, false);
      if (l.exists && S_ISLNK(l.st.st_mode)) return;
      if (l.exists) continue;
      check_writable(l);
      if (::mkdirat(l.parent.get(), l.name.c_str(), 0755) < 0 && errno != EEXIST) throw_errno("mkdir " + cur);
    }
  }

  void put(const Entry& e, DataReader* data) override {
    std::vector<std::string> parts = clean_relative(e.path);
    if (parts.empty()) return;  // "." (the destination itself) keeps its metadata
    std::string path = base_;
    for (const auto& p : parts) path = join(path, p);
    std::string name = parts.back();
    make_parents(parts);
    Tree::Lookup parent = tree_.resolve(dirname_of(path), true);
    if (!parent.exists || !S_ISDIR(parent.st.st_mode))
      throw Error("cannot extract " + e.path + ": " + parent.path + " is not a directory", ENOTDIR);
    check_writable(parent);
    std::string target = join(parent.path, name);
    if (tree_.mount_at(target)) {
      if (S_ISDIR(e.type) && e.hardlink.empty()) return;
      throw Error("cannot overwrite mount point " + target + " in " + tree_.description(), EBUSY);
    }
    int dfd = parent.fd.get();
    struct stat cur {};
    bool exists = ::fstatat(dfd, name.c_str(), &cur, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) throw_errno("lstat " + target);
    uid_t uid = owner_ == Owner::Keep ? e.uid : 0;
    gid_t gid = owner_ == Owner::Keep ? e.gid : 0;
    bool chown = owner_ != Owner::Unchanged;
    struct timespec times[2] = {e.atime.tv_sec ? e.atime : e.mtime, e.mtime};

    if (S_ISDIR(e.type) && e.hardlink.empty()) {
      if (exists && !S_ISDIR(cur.st_mode))
        throw Error("cannot overwrite non-directory \"" + target + "\" with directory \"" + e.path + "\"", EEXIST);
      if (!exists && ::mkdirat(dfd, name.c_str(), 0700) < 0 && errno != EEXIST) throw_errno("mkdir " + target);
      int fd = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) throw_errno("open " + target);
      UniqueFd d(fd);
      if (chown && ::fchown(fd, uid, gid) < 0) throw_errno("chown " + target);
      if (::fchmod(fd, e.perm) < 0) throw_errno("chmod " + target);
      dirs_.push_back({target, times[0], times[1]});
      return;
    }
    if (exists && S_ISDIR(cur.st_mode))
      throw Error("cannot overwrite directory \"" + target + "\" with non-directory \"" + e.path + "\"", EISDIR);
    if (exists && ::unlinkat(dfd, name.c_str(), 0) < 0 && errno != ENOENT) throw_errno("remove " + target);

    if (!e.hardlink.empty()) {
      std::string link_path = base_;
      for (const auto& p : clean_relative(e.hardlink)) link_path = join(link_path, p);
      Tree::Lookup src = tree_.resolve(link_path, false);
      if (!src.exists) throw Error("hard link " + e.path + ": " + link_path + " not found in " + tree_.description());
      if (::linkat(src.fd.get(), "", dfd, name.c_str(), AT_EMPTY_PATH) < 0) throw_errno("link " + target);
      return;
    }
    if (S_ISREG(e.type)) {
      int fd = ::openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0) throw_errno("create " + target);
      UniqueFd f(fd);
      std::vector<char> buf(kChunk);
      int64_t left = e.size;
      while (left > 0 && data) {
        size_t want = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(buf.size())));
        size_t n = data->read(buf.data(), want);
        if (n == 0) break;
        write_all(fd, std::string_view(buf.data(), n), target);
        left -= static_cast<int64_t>(n);
        bytes_ += static_cast<int64_t>(n);
      }
      if (chown && ::fchown(fd, uid, gid) < 0) throw_errno("chown " + target);
      if (::fchmod(fd, e.perm) < 0) throw_errno("chmod " + target);
      if (::futimens(fd, times) < 0) throw_errno("set times of " + target);
      return;
    }
    if (S_ISLNK(e.type)) {
      if (::symlinkat(e.link.c_str(), dfd, name.c_str()) < 0) throw_errno("symlink " + target);
    } else if (S_ISCHR(e.type) || S_ISBLK(e.type) || S_ISFIFO(e.type)) {
      if (::mknodat(dfd, name.c_str(), e.type | e.perm, e.rdev) < 0) throw_errno("mknod " + target);
    } else {
      return;  // sockets and the like: nothing to create
    }
    if (chown && ::fchownat(dfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0) throw_errno("chown " + target);
    if (::utimensat(dfd, name.c_str(), times, AT_SYMLINK_NOFOLLOW) < 0) throw_errno("set times of " + target);
  }

  // Directory times last (their contents changed them), deepest first.
  void finish() override {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      Tree::Lookup l = tree_.resolve(it->path, false);
      if (!l.exists || !S_ISDIR(l.st.st_mode)) continue;
      UniqueFd d = open_dir(l.fd.get(), it->path);
      struct timespec times[2] = {it->atime, it->mtime};
      if (::futimens(d.get(), times) < 0) throw_errno("set times of " + it->path);
    }
  }

 private:
  struct Dir {
    std::string path;
    struct timespec atime, mtime;
  };

  static std::vector<std::string> clean_relative(const std::string& path) {
    std::vector<std::string> out;
    for (const auto& p : split_path(path)) {
      if (p == ".") continue;
      if (p == "..") throw Error("invalid path in archive (\"..\" is not allowed): " + path, EINVAL);
      out.push_back(p);
    }
    return out;
  }

  void check_writable(const Tree::Lookup& dir) const {
    if (!dir.read_only) return;
    throw Error(dir.in_mount ? "mounted volume is marked read-only" : "container rootfs is marked read-only", EROFS);
  }

  const Tree& tree_;
  std::string base_;
  Owner owner_;
  mode_t old_umask_;
  std::vector<Dir> dirs_;
  int64_t bytes_ = 0;
};

// Walks a tree from one object, handing each entry (with its data) to a sink. Nothing is
// followed: symlinks are entries, and a directory's children are opened below its fd. Mount
// points of the tree (when given) continue in their sources.
class Walker {
 public:
  Walker(const Tree* tree, Sink& sink) : tree_(tree), sink_(sink) {}

  int64_t bytes() const { return bytes_; }

  // rel: the name of the object in the stream; empty: only its children (a directory's contents).
  void walk(int fd, const struct stat& st, const std::string& tree_path, const std::string& rel) {
    if (!rel.empty() && !emit(fd, st, tree_path, rel)) return;
    if (!S_ISDIR(st.st_mode)) return;
    std::vector<std::string> names;
    {
      UniqueFd d = open_dir(fd, tree_path);
      DIR* dir = ::fdopendir(d.get());
      if (!dir) throw_errno("opendir " + tree_path);
      d.release();
      errno = 0;
      while (struct dirent* de = ::readdir(dir)) {
        std::string n = de->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      int err = errno;
      ::closedir(dir);
      if (err) throw_errno("readdir " + tree_path, err);
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string child_path = join(tree_path, n);
      UniqueFd child;
      const Tree::Mount* m = tree_ ? tree_->mount_at(child_path) : nullptr;
      if (m) {
        child = dup_fd(m->fd.get());
      } else {
        child = open_beneath(fd, n, O_PATH | O_NOFOLLOW);
        if (!child) {
          if (errno == ENOENT) continue;  // removed while we looked
          throw_errno("open " + child_path);
        }
      }
      struct stat cst {};
      if (::fstat(child.get(), &cst) < 0) throw_errno("stat " + child_path);
      walk(child.get(), cst, child_path, rel.empty() ? n : rel + "/" + n);
    }
  }

 private:
  bool emit(int fd, const struct stat& st, const std::string& tree_path, const std::string& rel) {
    Entry e;
    e.path = rel;
    e.type = st.st_mode & S_IFMT;
    e.perm = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.atime = st.st_atim;
    e.mtime = st.st_mtim;
    if (S_ISSOCK(st.st_mode)) return false;
    if (S_ISREG(st.st_mode)) {
      if (st.st_nlink > 1) {
        auto key = std::make_pair(st.st_dev, st.st_ino);
        auto it = links_.find(key);
        if (it != links_.end()) {
          e.hardlink = it->second;
          sink_.put(e, nullptr);
          return false;
        }
        links_[key] = rel;
      }
      UniqueFd f = reopen(fd, O_RDONLY | O_NONBLOCK, tree_path);
      struct stat fst {};
      if (::fstat(f.get(), &fst) < 0) throw_errno("stat " + tree_path);
      if (fst.st_ino != st.st_ino || fst.st_dev != st.st_dev) throw Error("file changed while copied: " + tree_path);
      e.size = fst.st_size;
      FdReader r(f.get(), tree_path);
      sink_.put(e, &r);
      bytes_ += e.size;
      return false;
    }
    if (S_ISLNK(st.st_mode)) e.link = readlink_fd(fd, tree_path);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) e.rdev = st.st_rdev;
    sink_.put(e, nullptr);
    return true;
  }

  const Tree* tree_;
  Sink& sink_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  int64_t bytes_ = 0;
};

// Reads a tar stream (uncompressed or compressed) into a sink.
void read_tar(int fd, Sink& sink) {
  struct archive* a = archive_read_new();
  if (!a) throw Error("tar: out of memory");
  std::unique_ptr<struct archive, int (*)(struct archive*)> guard(a, archive_read_free);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  archive_read_support_filter_all(a);
  if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK)
    throw Error(std::string("read tar stream: ") + archive_error_string(a));
  for (;;) {
    struct archive_entry* ae = nullptr;
    int r = archive_read_next_header(a, &ae);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw Error(std::string("read tar stream: ") + archive_error_string(a));
    Entry e;
    const char* name = archive_entry_pathname(ae);
    e.path = name ? name : "";
    e.type = archive_entry_filetype(ae);
    e.perm = archive_entry_perm(ae);
    e.uid = static_cast<uid_t>(archive_entry_uid(ae));
    e.gid = static_cast<gid_t>(archive_entry_gid(ae));
    e.mtime = {archive_entry_mtime(ae), archive_entry_mtime_nsec(ae)};
    e.atime =
        archive_entry_atime_is_set(ae) ? timespec{archive_entry_atime(ae), archive_entry_atime_nsec(ae)} : e.mtime;
    e.size = archive_entry_size(ae);
    if (const char* h = archive_entry_hardlink(ae)) e.hardlink = h;
    if (const char* s = archive_entry_symlink(ae)) e.link = s;
    e.rdev = archive_entry_rdev(ae);
    ArchiveReader data(a);
    sink.put(e, &data);
  }
  sink.finish();
}

[[noreturn]] void not_found(const Tree& tree, const std::string& path) {
  throw Error("Could not find the file " + path + " in " + tree.description(), ENOENT);
}

}  // namespace

Tree::Tree(const std::string& root_dir, std::vector<MountPoint> mounts, bool read_only_root, std::string description)
    : read_only_root_(read_only_root), description_(std::move(description)) {
  int fd = ::open(root_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + root_dir);
  root_.reset(fd);
  for (const auto& m : mounts) {
    int mfd = ::open(m.source.c_str(), O_PATH | O_CLOEXEC);
    if (mfd < 0) continue;  // a bind source that went away: the path shows the rootfs there
    UniqueFd source(mfd);
    // The runtime resolved the destination in the rootfs, following symlinks (a volume at
    // /var/run lands on /run when that is a link): so does the table.
    std::string destination = clean_abs(m.destination);
    if (destination != "/") {
      std::string base = destination.substr(destination.rfind('/') + 1);
      try {
        Lookup target = resolve(destination, true);
        if (target.exists) {
          destination = target.path;
        } else {
          Lookup parent = resolve(dirname_of(destination), true);
          if (parent.exists && S_ISDIR(parent.st.st_mode)) destination = join(parent.path, base);
        }
      } catch (const Error&) {
        // a missing parent: the runtime creates it, as written
      }
    }
    mounts_.push_back({destination, std::move(source), m.read_only});
  }
}

void Tree::add_mount_fd(const std::string& destination, UniqueFd fd, bool read_only) {
  mounts_.push_back({clean_abs(destination), std::move(fd), read_only});
}

const Tree::Mount* Tree::mount_at(const std::string& path) const {
  // The last one wins: a user's mount over /etc/hosts replaces berth's.
  for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it)
    if (it->destination == path) return &*it;
  return nullptr;
}

Tree::Lookup Tree::resolve(const std::string& path, bool follow_last) const {
  struct Frame {
    UniqueFd fd;
    std::string path;
    struct stat st;
    bool read_only, in_mount, mount_root;
  };
  std::vector<Frame> stack;
  {
    Frame root{dup_fd(root_.get()), "/", {}, read_only_root_, false, false};
    if (::fstat(root.fd.get(), &root.st) < 0) throw_errno("stat the root of " + description_);
    stack.push_back(std::move(root));
  }
  std::deque<std::string> todo;
  for (const auto& p : split_path(path)) todo.push_back(p);
  int links = 0;
  while (!todo.empty()) {
    std::string c = todo.front();
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    bool last = todo.empty();
    Frame& top = stack.back();
    std::string child_path = join(top.path, c);
    Frame f{UniqueFd(), child_path, {}, top.read_only, top.in_mount, false};
    if (const Mount* m = mount_at(child_path)) {
      f.fd = dup_fd(m->fd.get());
      f.read_only = m->read_only;
      f.in_mount = true;
      f.mount_root = true;
    } else {
      f.fd = open_beneath(top.fd.get(), c, O_PATH | O_NOFOLLOW);
      if (!f.fd) {
        int err = errno;
        if (err == ENOENT && last) {
          Lookup r;
          r.path = child_path;
          r.parent = dup_fd(top.fd.get());
          r.name = c;
          r.read_only = top.read_only;
          r.in_mount = top.in_mount;
          return r;
        }
        if (err == ENOENT) not_found(*this, path);
        if (err == ENOTDIR) throw Error(child_path + " in " + description_ + ": not a directory", ENOTDIR);
        throw Error(errno_message("open " + child_path + " in " + description_, err), err);
      }
    }
    if (::fstat(f.fd.get(), &f.st) < 0) throw_errno("stat " + child_path);
    if (S_ISLNK(f.st.st_mode) && (!last || follow_last)) {
      if (++links > kMaxSymlinks)
        throw Error(path + " in " + description_ + ": too many levels of symbolic links", ELOOP);
      std::string target = readlink_fd(f.fd.get(), child_path);
      std::vector<std::string> parts = split_path(target);
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_front(*it);
      if (!target.empty() && target[0] == '/') stack.resize(1);
      continue;
    }
    if (!last && !S_ISDIR(f.st.st_mode)) throw Error(child_path + " in " + description_ + ": not a directory", ENOTDIR);
    stack.push_back(std::move(f));
  }
  Lookup r;
  Frame& f = stack.back();
  r.exists = true;
  r.fd = std::move(f.fd);
  r.st = f.st;
  r.path = f.path;
  r.read_only = f.read_only;
  r.in_mount = f.in_mount;
  r.mount_root = f.mount_root;
  if (stack.size() >= 2) {
    r.parent = dup_fd(stack[stack.size() - 2].fd.get());
    r.name = r.path.substr(r.path.rfind('/') + 1);
  }
  return r;
}

std::unique_ptr<Tree> container_tree(Engine& engine, const Container& c, const std::vector<std::string>& lowers) {
  std::string dir = engine.container_dir(c.id);
  std::string rootfs = dir + "/rootfs";
  struct stat dst {
  }, rst{};
  if (::stat(dir.c_str(), &dst) < 0) throw_errno("stat " + dir);
  if (::stat(rootfs.c_str(), &rst) < 0) throw_errno("stat " + rootfs);
  // After a reboot a stopped container's rootfs is not mounted (start mounts it again).
  if (dst.st_dev == rst.st_dev && !lowers.empty())
    storage::mount_overlay(lowers, dir + "/upper", dir + "/work", rootfs, c.auto_remove());
  std::vector<MountPoint> mounts = {{"/etc/resolv.conf", dir + "/resolv.conf", false},
                                    {"/etc/hostname", dir + "/hostname", false},
                                    {"/etc/hosts", dir + "/hosts", false}};
  std::vector<std::string> tmpfs;
  if (c.mounts.is_array()) {
    for (const auto& m : c.mounts) {
      if (!m.is_object()) continue;
      std::string type = m.value("Type", "");
      std::string source = m.value("Source", "");
      std::string destination = m.value("Destination", "");
      if (destination.empty()) continue;
      if (type == "tmpfs") {
        tmpfs.push_back(destination);
        continue;
      }
      if (source.empty()) continue;
      mounts.push_back({destination, source, !m.value("RW", true)});
    }
  }
  bool ro = c.config.is_object() && c.config.contains("HostConfig") && c.config["HostConfig"].is_object() &&
            c.config["HostConfig"].value("ReadonlyRootfs", false);
  auto tree = std::make_unique<Tree>(rootfs, mounts, ro, "container " + c.name);
  // A running container's tmpfs mounts exist only in its mount namespace: reach them through its
  // root, resolved in that root.
  if (c.running() && c.pid > 0 && !tmpfs.empty()) {
    std::string proc_root = "/proc/" + std::to_string(c.pid) + "/root";
    int rfd = ::open(proc_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd >= 0) {
      UniqueFd root(rfd);
      for (const auto& d : tmpfs) {
        struct open_how how {};
        how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
        long fd = ::syscall(SYS_openat2, root.get(), d.c_str(), &how, sizeof how);
        if (fd >= 0) tree->add_mount_fd(d, UniqueFd(static_cast<int>(fd)), false);
      }
    }
  }
  return tree;
}

int64_t copy_from(const Tree& tree, const std::string& src, const std::string& dest, const Options& options,
                  int out_fd) {
  std::string s = src.empty() ? "/" : src;
  bool slash = s.back() == '/';
  bool contents = s == "." || ends_with(s, "/.");
  Tree::Lookup l = tree.resolve(s, options.follow_link || slash || contents);
  if (!l.exists) not_found(tree, src);
  bool is_dir = S_ISDIR(l.st.st_mode);
  if ((slash || contents) && !is_dir) throw Error(src + " in " + tree.description() + ": not a directory", ENOTDIR);
  std::string top = lexical_base(s);

  if (dest == "-") {
    TarSink sink(out_fd);
    Walker w(&tree, sink);
    w.walk(l.fd.get(), l.st, l.path, top);
    sink.finish();
    return w.bytes();
  }

  // Where on the host, and under which name (empty: the directory's contents).
  struct stat hst {};
  bool exists = ::stat(dest.c_str(), &hst) == 0;
  if (!exists && errno != ENOENT) throw_errno("stat " + dest);
  std::string into, name;
  if (exists && S_ISDIR(hst.st_mode)) {
    into = dest;
    name = is_dir && (contents || top == ".") ? "" : top;
  } else {
    if (exists && is_dir) throw Error("cannot copy directory " + src + " to file " + dest, EISDIR);
    if (!exists && dest.back() == '/' && !is_dir) throw Error("no such directory: " + dest, ENOENT);
    std::string d = dest;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    size_t cut = d.rfind('/');
    into = cut == std::string::npos ? "." : (cut == 0 ? "/" : d.substr(0, cut));
    name = cut == std::string::npos ? d : d.substr(cut + 1);
  }
  char real[PATH_MAX];
  if (!::realpath(into.c_str(), real)) throw_errno("lstat " + into);
  Tree host(real, {}, false, "directory " + std::string(real));
  TreeSink sink(host, "/", options.archive ? Owner::Keep : Owner::Unchanged);
  Walker w(&tree, sink);
  w.walk(l.fd.get(), l.st, l.path, name);
  sink.finish();
  return w.bytes();
}

int64_t copy_to(const std::string& src, const Tree& tree, const std::string& dest, const std::string& dest_arg,
                const Options& options, int in_fd) {
  std::string d = dest.empty() ? "/" : dest;
  Tree::Lookup l = tree.resolve(d, true);
  auto check_writable = [&](const Tree::Lookup& x) {
    if (x.read_only)
      throw Error(x.in_mount ? "mounted volume is marked read-only" : "container rootfs is marked read-only", EROFS);
  };

  if (src == "-") {
    if (!l.exists || !S_ISDIR(l.st.st_mode)) throw Error("destination \"" + dest_arg + "\" must be a directory");
    check_writable(l);
    TreeSink sink(tree, l.path, Owner::Keep);
    read_tar(in_fd, sink);
    return sink.bytes();
  }

  bool slash = src.back() == '/';
  bool contents = src == "." || ends_with(src, "/.");
  bool follow = options.follow_link || slash || contents;
  int sfd = ::open(src.c_str(), O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
  if (sfd < 0) {
    std::string clean = src;
    while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
    throw_errno("lstat " + clean);
  }
  UniqueFd source(sfd);
  struct stat sst {};
  if (::fstat(sfd, &sst) < 0) throw_errno("stat " + src);
  bool is_dir = S_ISDIR(sst.st_mode);
  if ((slash || contents) && !is_dir) throw Error(src + ": not a directory", ENOTDIR);
  std::string top = lexical_base(src);

  std::string into, name;
  if (l.exists && S_ISDIR(l.st.st_mode)) {
    check_writable(l);
    into = l.path;
    name = is_dir && (contents || top == ".") ? "" : top;
  } else {
    if (l.exists && is_dir) throw Error("cannot copy directory " + src + " to file " + dest_arg, EISDIR);
    if (!l.exists && d.back() == '/' && !is_dir) throw Error("no such directory: " + dest_arg, ENOENT);
    Tree::Lookup parent = tree.resolve(dirname_of(l.path), true);
    check_writable(parent);
    into = parent.path;
    name = l.name;
  }
  TreeSink sink(tree, into, options.archive ? Owner::Keep : Owner::Root);
  Walker w(nullptr, sink);
  w.walk(sfd, sst, src, name);
  sink.finish();
  return w.bytes();
}

}  // namespace berth::engine::cp
