#include "image/unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <locale.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "image/digest.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::image {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";  // aufs bookkeeping (.wh..wh.plnk, …)
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";
constexpr std::string_view kOverlayXattrPrefix = "trusted.overlay.";

constexpr uint64_t kResolveInLayer = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

int openat2_retry(int dirfd, const char* path, uint64_t flags, uint64_t resolve) {
  struct open_how how {};
  how.flags = flags;
  how.resolve = resolve;
  for (;;) {
    int fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
    // EAGAIN: a concurrent rename somewhere on the host; the lookup is safe to repeat.
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) return fd;
  }
}

// "./a//b/." → "a/b"; "" is the layer root. Returns why the name is refused, or nullptr.
const char* clean_name(std::string_view raw, std::string& out) {
  out.clear();
  if (raw.empty()) return "empty name";
  if (raw.front() == '/') return "absolute path escapes the layer";
  size_t i = 0;
  while (i < raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string_view comp = raw.substr(i, j - i);
    i = j + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return "\"..\" component escapes the layer";
    if (!out.empty()) out += '/';
    out += comp;
  }
  return nullptr;
}

bool has_prefix(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Removes everything below dirfd, never following symlinks.
void remove_contents(int dirfd) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open directory to remove");
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    ::close(fd);
    throw_errno("fdopendir");
  }
  std::unique_ptr<DIR, int (*)(DIR*)> owner(dir, ::closedir);
  // Until a pass finds nothing: readdir may skip entries of a directory changing under it.
  for (bool removed = true; removed;) {
    removed = false;
    ::rewinddir(dir);
    while (struct dirent* ent = ::readdir(dir)) {
      std::string_view n = ent->d_name;
      if (n == "." || n == "..") continue;
      removed = true;
      if (::unlinkat(::dirfd(dir), ent->d_name, 0) == 0) continue;
      if (errno != EISDIR) throw_errno("unlink " + std::string(n));
      UniqueFd sub(::openat(::dirfd(dir), ent->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) throw_errno("open " + std::string(n));
      remove_contents(sub.get());
      if (::unlinkat(::dirfd(dir), ent->d_name, AT_REMOVEDIR) != 0) throw_errno("rmdir " + std::string(n));
    }
  }
}

// The decompressed tar stream, produced on a helper thread: reading, decompressing and
// hashing overlap with writing the files (hashing alone is a fifth of the work).
class TarSource {
 public:
  explicit TarSource(const ReadFn& read) : dec_(read) {
    for (auto& slot : slots_) slot.buf = std::make_unique_for_overwrite<char[]>(kSlotSize);
    thread_ = std::thread([this] { produce(); });
  }
  ~TarSource() { stop(); }
  TarSource(const TarSource&) = delete;
  TarSource& operator=(const TarSource&) = delete;

  // The next chunk, valid until the next call; empty at the end. Rethrows read errors.
  std::string_view next() {
    std::unique_lock lock(m_);
    if (holding_) {
      holding_ = false;
      consumed_++;
      cv_.notify_all();
    }
    cv_.wait(lock, [&] { return produced_ > consumed_ || error_ || done_; });
    if (produced_ > consumed_) {
      holding_ = true;
      const Slot& slot = slots_[consumed_ % kSlots];
      return {slot.buf.get(), slot.len};
    }
    if (error_) std::rethrow_exception(error_);
    return {};
  }

  // Call after next() returned empty.
  std::string digest() {
    stop();
    return sha_.digest();
  }
  uint64_t bytes() const { return bytes_; }
  Compression compression() const { return compression_; }

  static la_ssize_t read_cb(struct archive* a, void* client, const void** buf) {
    auto* self = static_cast<TarSource*>(client);
    try {
      std::string_view chunk = self->next();
      *buf = chunk.data();
      return static_cast<la_ssize_t>(chunk.size());
    } catch (...) {
      // libarchive is C: the exception waits here until its call returns.
      self->read_error = std::current_exception();
      archive_set_error(a, EIO, "layer stream read failed");
      return ARCHIVE_FATAL;
    }
  }
  std::exception_ptr read_error;

 private:
  static constexpr size_t kSlots = 8;
  static constexpr size_t kSlotSize = size_t{128} << 10;
  struct Slot {
    std::unique_ptr<char[]> buf;
    size_t len = 0;
  };

  void produce() {
    try {
      compression_ = dec_.compression();
      for (;;) {
        Slot* slot;
        {
          std::unique_lock lock(m_);
          cv_.wait(lock, [&] { return produced_ - consumed_ < kSlots || stop_; });
          if (stop_) return;
          slot = &slots_[produced_ % kSlots];
        }
        // Full slots: fewer, larger chunks for libarchive and the hash.
        size_t len = 0;
        while (len < kSlotSize && !stop_) {
          size_t n = dec_.read(slot->buf.get() + len, kSlotSize - len);
          if (n == 0) break;
          len += n;
        }
        if (stop_) return;
        sha_.update(slot->buf.get(), len);
        bytes_ += len;
        std::lock_guard lock(m_);
        if (len == 0) {
          done_ = true;
          cv_.notify_all();
          return;
        }
        slot->len = len;
        produced_++;
        cv_.notify_all();
      }
    } catch (...) {
      std::lock_guard lock(m_);
      error_ = std::current_exception();
      cv_.notify_all();
    }
  }

  // Waits for the producer; if it is inside the caller's ReadFn, until that returns.
  void stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Decompressor dec_;
  Sha256 sha_;
  uint64_t bytes_ = 0;
  Compression compression_ = Compression::none;
  Slot slots_[kSlots];
  std::mutex m_;
  std::condition_variable cv_;
  uint64_t produced_ = 0;  // slots filled
  uint64_t consumed_ = 0;  // slots handed back by the consumer
  bool holding_ = false;   // the consumer has slot consumed_ % kSlots
  bool done_ = false;
  std::atomic<bool> stop_ = false;  // also checked between reads, without the lock
  std::exception_ptr error_;
  std::thread thread_;
};

// libarchive converts pax (UTF-8) names to the thread's locale charset. In the C locale that
// is a byte copy, even of invalid UTF-8; pin it in case the process chose another locale.
class CLocale {
 public:
  CLocale() : loc_(::newlocale(LC_CTYPE_MASK, "C", locale_t{})) {
    if (loc_) old_ = ::uselocale(loc_);
  }
  ~CLocale() {
    if (loc_) {
      ::uselocale(old_);
      ::freelocale(loc_);
    }
  }
  CLocale(const CLocale&) = delete;
  CLocale& operator=(const CLocale&) = delete;

 private:
  locale_t loc_;
  locale_t old_ = locale_t{};
};

struct Times {
  struct timespec ts[2];
};

// The umask, read without changing it (umask(2) would, for every thread); nullopt if unknown.
std::optional<mode_t> current_umask() {
  std::optional<std::string> status;
  try {
    status = read_file_if_exists("/proc/self/status");
  } catch (const Error&) {
    return std::nullopt;
  }
  auto at = status ? status->find("\nUmask:") : std::string::npos;
  if (at == std::string::npos) return std::nullopt;
  return static_cast<mode_t>(std::strtoul(status->c_str() + at + 7, nullptr, 8));
}

class Unpacker {
 public:
  Unpacker(int root, TarSource& src)
      : root_(root), src_(src), euid_(::geteuid()), egid_(::getegid()), umask_(current_umask()) {
    struct stat st;
    if (::fstat(root_, &st) != 0) throw_errno("stat layer directory");
    root_setgid_ = st.st_mode & S_ISGID;
  }

  void extract(struct archive* a, struct archive_entry* e);
  void apply_dir_times();
  uint64_t content_bytes() const { return content_bytes_; }

 private:
  [[noreturn]] void refuse(std::string_view why) const {
    throw Error("layer entry \"" + raw_ + "\": " + std::string(why));
  }
  [[noreturn]] void fail(std::string_view what, int err) const {
    throw Error(errno_message("layer entry \"" + raw_ + "\": " + std::string(what), err), err);
  }
  [[noreturn]] void archive_failed(struct archive* a) const {
    if (src_.read_error) std::rethrow_exception(src_.read_error);
    const char* msg = archive_error_string(a);
    refuse(msg ? msg : "tar read failed");
  }

  int parent(std::string_view ppath);
  UniqueFd open_dir(const std::string& ppath);
  UniqueFd make_dirs(const std::string& ppath);
  bool clear_slot(int pfd, const char* name, bool keep_dir);
  void forget_dir_tree(std::string_view path);
  void set_owner_mode(int pfd, const char* name, int fd, bool is_symlink);
  void set_xattrs(int pfd, const char* name, int fd, bool regular_or_dir);
  void whiteout(std::string_view ppath, const char* base);
  void hardlink(int pfd, const char* name);
  void write_data(struct archive* a, int fd);

  int root_;
  TarSource& src_;
  // Most files are root's with a plain mode: created so, they need no fchown or fchmod.
  const uid_t euid_;
  const gid_t egid_;
  const std::optional<mode_t> umask_;
  bool root_setgid_ = false;    // files made in a setgid directory take its group
  bool cache_setgid_ = false;   // … of cache_fd_
  bool parent_setgid_ = false;  // … of the directory parent() returned last
  uint64_t content_bytes_ = 0;
  // Consecutive entries mostly share a directory; its fd saves a lookup per entry.
  std::string cache_path_;
  UniqueFd cache_fd_;
  // Applied last: creating entries inside a directory changes its mtime.
  std::map<std::string, Times> dir_times_;
  struct archive_entry* e_ = nullptr;
  std::string raw_, path_, link_;  // current entry: name as in the tar, cleaned, hardlink target
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  mode_t perm_ = 0;
  Times times_{};
};

int Unpacker::parent(std::string_view ppath) {
  if (ppath.empty()) {
    parent_setgid_ = root_setgid_;
    return root_;
  }
  if (!cache_fd_ || ppath != cache_path_) {
    std::string p(ppath);
    UniqueFd fd = open_dir(p);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) fail("stat parent \"" + p + "\"", errno);
    cache_path_ = std::move(p);
    cache_fd_ = std::move(fd);
    cache_setgid_ = st.st_mode & S_ISGID;
  }
  parent_setgid_ = cache_setgid_;
  return cache_fd_.get();
}

UniqueFd Unpacker::open_dir(const std::string& ppath) {
  int fd = openat2_retry(root_, ppath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, kResolveInLayer);
  if (fd >= 0) return UniqueFd(fd);
  int err = errno;
  if (err == ENOENT) return make_dirs(ppath);
  if (err == ELOOP) refuse("parent \"" + ppath + "\" is or passes through a symlink (not followed)");
  if (err == ENOTDIR) refuse("parent \"" + ppath + "\" is not a directory");
  fail("open parent \"" + ppath + "\"", err);
}

// Creates missing parents one component at a time (0755, owned by us, as tar does).
UniqueFd Unpacker::make_dirs(const std::string& ppath) {
  UniqueFd cur;
  int curfd = root_;
  size_t i = 0;
  while (i < ppath.size()) {
    size_t j = ppath.find('/', i);
    if (j == std::string::npos) j = ppath.size();
    std::string comp = ppath.substr(i, j - i);
    std::string shown = ppath.substr(0, j);
    i = j + 1;
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = ::openat(curfd, comp.c_str(), flags);
    if (fd < 0 && errno == ENOENT) {
      if (::mkdirat(curfd, comp.c_str(), 0755) != 0 && errno != EEXIST) fail("mkdir \"" + shown + "\"", errno);
      fd = ::openat(curfd, comp.c_str(), flags);
      // Not left to the umask: layers must not depend on the caller's.
      if (fd >= 0 && ::fchmod(fd, 0755) != 0) fail("chmod \"" + shown + "\"", errno);
    }
    if (fd < 0) {
      int err = errno;
      struct stat st;
      if ((err == ENOTDIR || err == ELOOP) && ::fstatat(curfd, comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) refuse("parent \"" + shown + "\" is a symlink (not followed)");
        refuse("parent \"" + shown + "\" is not a directory");
      }
      fail("open parent \"" + shown + "\"", err);
    }
    cur.reset(fd);
    curfd = fd;
  }
  return cur;
}

// A directory tree at path was removed: its fd and pending mtimes no longer apply.
void Unpacker::forget_dir_tree(std::string_view path) {
  auto inside = [&](std::string_view p) { return p == path || (has_prefix(p, path) && p[path.size()] == '/'); };
  if (cache_fd_ && inside(cache_path_)) {
    cache_fd_.reset();
    cache_path_.clear();
  }
  std::string first(path), last(path);
  last += '0';  // '/' + 1: the end of the "path/…" range
  auto it = dir_times_.lower_bound(first);
  auto end = dir_times_.lower_bound(last);
  while (it != end) it = inside(it->first) ? dir_times_.erase(it) : std::next(it);
}

// Makes room for a new entry at name (a duplicate in the tar, or a whiteout over an earlier
// entry). Returns true if an existing directory was kept (keep_dir).
bool Unpacker::clear_slot(int pfd, const char* name, bool keep_dir) {
  struct stat st;
  if (::fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    fail("stat existing entry", errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(pfd, name, 0) != 0 && errno != ENOENT) fail("unlink existing entry", errno);
    return false;
  }
  if (keep_dir) return true;
  // name is the last component of path_, so path_ is the directory being removed.
  forget_dir_tree(path_);
  try {
    UniqueFd dir(::openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) throw_errno("open");
    remove_contents(dir.get());
  } catch (const Error& err) {
    refuse("removing the existing directory: " + std::string(err.what()));
  }
  if (::unlinkat(pfd, name, AT_REMOVEDIR) != 0) fail("rmdir existing directory", errno);
  return false;
}

void Unpacker::set_owner_mode(int pfd, const char* name, int fd, bool is_symlink) {
  // chown clears setuid/setgid and file capabilities, so mode and xattrs come after it.
  if (fd >= 0) {
    if (::fchown(fd, uid_, gid_) != 0) fail("chown", errno);
    if (::fchmod(fd, perm_) != 0) fail("chmod", errno);
    return;
  }
  if (::fchownat(pfd, name, uid_, gid_, AT_SYMLINK_NOFOLLOW) != 0) fail("chown", errno);
  // Symlinks keep their mode (Linux ignores it). Otherwise name is a device or fifo we just
  // made in pfd, so following it is not a concern.
  if (!is_symlink && ::fchmodat(pfd, name, perm_, 0) != 0) fail("chmod", errno);
}

void Unpacker::set_xattrs(int pfd, const char* name, int fd, bool regular_or_dir) {
  if (archive_entry_xattr_reset(e_) == 0) return;
  std::string proc_path;  // for entries we don't open (symlinks, devices, fifos)
  const char* key;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e_, &key, &value, &size) == ARCHIVE_OK) {
    std::string_view k = key;
    // overlayfs' own attributes (redirect, metacopy, origin…) are not for a layer to set;
    // opaque is the same as a .wh..wh..opq entry.
    if (has_prefix(k, kOverlayXattrPrefix) && k != kOpaqueXattr) continue;
    int r;
    if (fd >= 0) {
      r = ::fsetxattr(fd, key, value, size, 0);
    } else {
      if (proc_path.empty()) proc_path = "/proc/self/fd/" + std::to_string(pfd) + "/" + name;
      r = ::lsetxattr(proc_path.c_str(), key, value, size, 0);
    }
    if (r == 0) continue;
    int err = errno;
    if (err == ENOTSUP) continue;  // the filesystem has no such namespace
    // The kernel allows user.* only on regular files and directories.
    if (err == EPERM && !regular_or_dir && has_prefix(k, "user.")) continue;
    fail("set xattr " + std::string(k), err);
  }
}

void Unpacker::whiteout(std::string_view ppath, const char* base) {
  std::string_view b = base;
  if (b == kOpaqueMarker) {
    int pfd = parent(ppath);
    if (::fsetxattr(pfd, kOpaqueXattr, "y", 1, 0) != 0) fail(std::string("set ") + kOpaqueXattr, errno);
    return;
  }
  if (has_prefix(b, kWhiteoutMetaPrefix)) return;
  std::string target(b.substr(kWhiteoutPrefix.size()));
  if (target.empty() || target == "." || target == "..") refuse("whiteout names no file in its directory");
  int pfd = parent(ppath);
  // From here path_ names the whited-out entry, which replaces whatever an earlier entry
  // of this layer put there (base and ppath pointed into path_: not used below).
  path_.resize(path_.size() - b.size());
  path_ += target;
  for (int attempt = 0;; attempt++) {
    if (::mknodat(pfd, target.c_str(), S_IFCHR, makedev(0, 0)) == 0) return;
    if (errno != EEXIST || attempt > 0) fail("mknod whiteout", errno);
    clear_slot(pfd, target.c_str(), false);
  }
}

void Unpacker::hardlink(int pfd, const char* name) {
  const char* raw_target = archive_entry_hardlink(e_);
  if (const char* why = clean_name(raw_target, link_))
    refuse("hardlink target \"" + std::string(raw_target) + "\": " + why);
  if (link_.empty()) refuse("hardlink to the layer root");
  std::string_view tbase = link_;
  if (auto slash = tbase.rfind('/'); slash != std::string_view::npos) tbase.remove_prefix(slash + 1);
  if (has_prefix(tbase, kWhiteoutPrefix)) refuse("hardlink to a whiteout \"" + link_ + "\"");
  if (link_ == path_) return;  // a link to itself: already there

  int fd = openat2_retry(root_, link_.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC, kResolveInLayer);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) refuse("hardlink target \"" + link_ + "\" is not in the layer");
    if (err == ELOOP) refuse("hardlink target \"" + link_ + "\" passes through a symlink (not followed)");
    fail("open hardlink target \"" + link_ + "\"", err);
  }
  UniqueFd target(fd);
  struct stat st;
  if (::fstat(target.get(), &st) != 0) fail("stat hardlink target", errno);
  if (S_ISDIR(st.st_mode)) refuse("hardlink target \"" + link_ + "\" is a directory");
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) refuse("hardlink to a whiteout \"" + link_ + "\"");
  const std::string proc_path = "/proc/self/fd/" + std::to_string(target.get());
  for (int attempt = 0;; attempt++) {
    // Both link exactly the inode checked above, whatever happens to the name. AT_EMPTY_PATH
    // needs CAP_DAC_READ_SEARCH (ENOENT without it); the magic link does not.
    if (::linkat(target.get(), "", pfd, name, AT_EMPTY_PATH) == 0) return;
    if (errno == ENOENT && ::linkat(AT_FDCWD, proc_path.c_str(), pfd, name, AT_SYMLINK_FOLLOW) == 0) return;
    if (errno != EEXIST || attempt > 0) fail("link to \"" + link_ + "\"", errno);
    clear_slot(pfd, name, false);
  }
}

void Unpacker::write_data(struct archive* a, int fd) {
  const void* buf;
  size_t len;
  la_int64_t off;
  int64_t end = 0;
  for (;;) {
    int r = archive_read_data_block(a, &buf, &len, &off);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) archive_failed(a);
    const char* p = static_cast<const char*>(buf);
    // pwrite at the block's offset: holes in sparse entries stay holes.
    while (len > 0) {
      ssize_t n = ::pwrite(fd, p, len, off);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write", errno);
      }
      p += n;
      off += n;
      len -= static_cast<size_t>(n);
    }
    end = std::max<int64_t>(end, off);
  }
  int64_t size = archive_entry_size(e_);
  if (end < size && ::ftruncate(fd, size) != 0) fail("truncate", errno);  // a trailing hole
}

void Unpacker::extract(struct archive* a, struct archive_entry* e) {
  e_ = e;
  const char* raw = archive_entry_pathname(e);
  raw_ = raw ? raw : "";
  if (const char* why = clean_name(raw_, path_)) refuse(why);

  int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
  if (uid < 0 || uid >= UINT32_MAX || gid < 0 || gid >= UINT32_MAX) refuse("owner out of range");
  uid_ = static_cast<uid_t>(uid);
  gid_ = static_cast<gid_t>(gid);
  perm_ = archive_entry_perm(e) & 07777;
  times_.ts[1] = archive_entry_mtime_is_set(e) ? timespec{archive_entry_mtime(e), archive_entry_mtime_nsec(e)}
                                               : timespec{0, UTIME_OMIT};
  times_.ts[0] =
      archive_entry_atime_is_set(e) ? timespec{archive_entry_atime(e), archive_entry_atime_nsec(e)} : times_.ts[1];
  const bool is_link = archive_entry_hardlink(e) != nullptr;
  const mode_t type = archive_entry_filetype(e);

  if (path_.empty()) {  // "." or "./": the layer root itself
    if (is_link || type != AE_IFDIR) refuse("the layer root must be a directory");
    set_owner_mode(-1, nullptr, root_, false);
    root_setgid_ = perm_ & S_ISGID;
    set_xattrs(-1, nullptr, root_, true);
    dir_times_[path_] = times_;
    return;
  }

  size_t slash = path_.rfind('/');
  size_t base_at = slash == std::string::npos ? 0 : slash + 1;
  std::string_view ppath = std::string_view(path_).substr(0, slash == std::string::npos ? 0 : slash);
  const char* name = path_.c_str() + base_at;  // NUL-terminated: the tail of path_

  if (has_prefix(name, kWhiteoutPrefix)) return whiteout(ppath, name);

  int pfd = parent(ppath);
  if (is_link) return hardlink(pfd, name);

  switch (type) {
    case AE_IFREG: {
      const int flags = O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC;
      // Created with its final mode and owner when the umask and the parent's setgid bit
      // allow, which saves two syscalls on most files of a layer.
      const bool mode_ok = umask_ && (perm_ & ~0777) == 0 && (perm_ & *umask_) == 0;
      const bool owner_ok = !parent_setgid_ && uid_ == euid_ && gid_ == egid_;
      const mode_t create_mode = mode_ok ? perm_ : 0600;
      int fd = ::openat(pfd, name, flags, create_mode);
      if (fd < 0 && errno == EEXIST) {
        clear_slot(pfd, name, false);
        fd = ::openat(pfd, name, flags, create_mode);
      }
      if (fd < 0) fail("create file", errno);
      UniqueFd file(fd);
      // Data first: writing drops security.capability, which is set with the other xattrs.
      write_data(a, fd);
      if (!owner_ok && ::fchown(fd, uid_, gid_) != 0) fail("chown", errno);
      // After chown, which clears setuid/setgid.
      if (!mode_ok && ::fchmod(fd, perm_) != 0) fail("chmod", errno);
      set_xattrs(-1, nullptr, fd, true);
      if (::futimens(fd, times_.ts) != 0) fail("set times", errno);
      content_bytes_ += static_cast<uint64_t>(std::max<int64_t>(archive_entry_size(e), 0));
      return;
    }
    case AE_IFDIR: {
      if (::mkdirat(pfd, name, 0700) != 0) {
        if (errno != EEXIST) fail("mkdir", errno);
        // An existing directory is kept with its contents, as tar does.
        if (!clear_slot(pfd, name, true) && ::mkdirat(pfd, name, 0700) != 0) fail("mkdir", errno);
      }
      UniqueFd dir(::openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir) fail("open directory", errno);
      set_owner_mode(-1, nullptr, dir.get(), false);
      set_xattrs(-1, nullptr, dir.get(), true);
      dir_times_[path_] = times_;
      // Its entries usually come next.
      cache_path_ = path_;
      cache_fd_ = std::move(dir);
      cache_setgid_ = perm_ & S_ISGID;
      return;
    }
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      if (!target || !*target) refuse("symlink without a target");
      // Stored verbatim: a symlink may point anywhere, it is only never followed here.
      if (::symlinkat(target, pfd, name) != 0) {
        if (errno != EEXIST) fail("symlink", errno);
        clear_slot(pfd, name, false);
        if (::symlinkat(target, pfd, name) != 0) fail("symlink", errno);
      }
      set_owner_mode(pfd, name, -1, true);
      set_xattrs(pfd, name, -1, false);
      if (::utimensat(pfd, name, times_.ts, AT_SYMLINK_NOFOLLOW) != 0) fail("set times", errno);
      return;
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
      dev_t dev = type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
      if (::mknodat(pfd, name, type | perm_, dev) != 0) {
        if (errno != EEXIST) fail("mknod", errno);
        clear_slot(pfd, name, false);
        if (::mknodat(pfd, name, type | perm_, dev) != 0) fail("mknod", errno);
      }
      set_owner_mode(pfd, name, -1, false);
      set_xattrs(pfd, name, -1, false);
      if (::utimensat(pfd, name, times_.ts, AT_SYMLINK_NOFOLLOW) != 0) fail("set times", errno);
      return;
    }
    case AE_IFSOCK:
      return;  // a socket is meaningless once its process is gone; tar skips them too
    default:
      refuse("unsupported entry type " + std::to_string(type));
  }
}

void Unpacker::apply_dir_times() {
  std::vector<std::pair<const std::string*, const Times*>> dirs;
  dirs.reserve(dir_times_.size());
  for (const auto& [path, t] : dir_times_) dirs.emplace_back(&path, &t);
  // Deepest first, siblings together (so they share the cached parent fd).
  auto depth = [](const std::string& p) { return p.empty() ? 0 : 1 + std::count(p.begin(), p.end(), '/'); };
  std::sort(dirs.begin(), dirs.end(), [&](const auto& x, const auto& y) {
    auto dx = depth(*x.first), dy = depth(*y.first);
    return dx != dy ? dx > dy : *x.first < *y.first;
  });
  for (const auto& [path, t] : dirs) {
    raw_ = *path;
    if (path->empty()) {
      if (::futimens(root_, t->ts) != 0) fail("set times", errno);
      continue;
    }
    size_t slash = path->rfind('/');
    int pfd = parent(slash == std::string::npos ? std::string_view() : std::string_view(*path).substr(0, slash));
    const char* name = path->c_str() + (slash == std::string::npos ? 0 : slash + 1);
    if (::utimensat(pfd, name, t->ts, AT_SYMLINK_NOFOLLOW) != 0) fail("set times", errno);
  }
}

struct ArchiveFree {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

}  // namespace

UnpackResult unpack_layer(const ReadFn& read, const std::string& dest_dir) {
  UniqueFd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("open layer directory " + dest_dir);
  CLocale c_locale;
  TarSource src(read);
  std::unique_ptr<struct archive, ArchiveFree> a(archive_read_new());
  if (!a) throw Error("layer: libarchive init failed");
  // tar covers ustar, pax and GNU tar; empty lets a zero-byte stream be an empty layer.
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  if (archive_read_open(a.get(), &src, nullptr, &TarSource::read_cb, nullptr) != ARCHIVE_OK) {
    if (src.read_error) std::rethrow_exception(src.read_error);
    throw Error(std::string("layer: tar: ") + archive_error_string(a.get()));
  }

  Unpacker unpacker(root.get(), src);
  std::string last;
  for (;;) {
    struct archive_entry* e;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      if (src.read_error) std::rethrow_exception(src.read_error);
      const char* msg = archive_error_string(a.get());
      throw Error(std::string("layer: tar: ") + (msg ? msg : "read failed") +
                  (last.empty() ? std::string() : " (after entry \"" + last + "\")"));
    }
    unpacker.extract(a.get(), e);
    last = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
  }
  // Padding after the end-of-archive blocks is part of the diff_id too.
  while (!src.next().empty()) {
  }
  unpacker.apply_dir_times();

  UnpackResult result;
  result.diff_id = src.digest();
  result.tar_bytes = src.bytes();
  result.content_bytes = unpacker.content_bytes();
  result.compression = src.compression();
  return result;
}

UnpackResult unpack_layer_fd(int fd, const std::string& dest_dir) {
  return unpack_layer(
      [fd](char* buf, size_t len) -> size_t {
        for (;;) {
          ssize_t n = ::read(fd, buf, len);
          if (n >= 0) return static_cast<size_t>(n);
          if (errno != EINTR) throw_errno("read layer");
        }
      },
      dest_dir);
}

}  // namespace berth::image
