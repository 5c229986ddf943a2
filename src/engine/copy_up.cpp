#include "engine/copy_up.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.hpp"
#include "util/fault.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::engine {

namespace {

// Directory entries of fd (a dup is read, so fd's own offset stays put), without . and ..
std::vector<std::string> list_dir(int fd, const std::string& display) {
  int dup = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) throw_errno("open " + display);
  DIR* dir = ::fdopendir(dup);
  if (!dir) {
    ::close(dup);
    throw_errno("fdopendir " + display);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string_view n = ent->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  int err = errno;
  ::closedir(dir);
  if (err) throw_errno("readdir " + display, err);
  return names;
}

UniqueFd open_at(int dirfd, const std::string& name, int flags, const std::string& display) {
  int fd = ::openat(dirfd, name.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw_errno("open " + display);
  return UniqueFd(fd);
}

// xattrs of src onto dst (both open fds). security.selinux is the host's business, not the
// image's; a filesystem without xattr support (ENOTSUP) keeps the copy going, as cp -a does.
void copy_xattrs(int src, int dst, const std::string& display) {
  ssize_t len = ::flistxattr(src, nullptr, 0);
  if (len < 0) {
    if (errno == ENOTSUP) return;
    throw_errno("listxattr " + display);
  }
  if (len == 0) return;
  std::string names(static_cast<size_t>(len), '\0');
  len = ::flistxattr(src, names.data(), names.size());
  if (len < 0) throw_errno("listxattr " + display);
  names.resize(static_cast<size_t>(len));
  for (size_t pos = 0; pos < names.size();) {
    std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    if (name.empty() || name == "security.selinux") continue;
    ssize_t vlen = ::fgetxattr(src, name.c_str(), nullptr, 0);
    if (vlen < 0) throw_errno("getxattr " + name + " of " + display);
    std::string value(static_cast<size_t>(vlen), '\0');
    vlen = ::fgetxattr(src, name.c_str(), value.data(), value.size());
    if (vlen < 0) throw_errno("getxattr " + name + " of " + display);
    if (::fsetxattr(dst, name.c_str(), value.data(), static_cast<size_t>(vlen), 0) != 0 && errno != ENOTSUP)
      throw_errno("setxattr " + name + " on the copy of " + display);
  }
}

// Owner, then mode (chown clears set-id bits), then xattrs (chown clears security.capability),
// then times — the order that leaves every one of them as in the source.
void copy_meta_fd(int src, int dst, const struct stat& st, const std::string& display) {
  if (::fchown(dst, st.st_uid, st.st_gid) != 0) throw_errno("chown the copy of " + display);
  if (::fchmod(dst, st.st_mode & 07777) != 0) throw_errno("chmod the copy of " + display);
  copy_xattrs(src, dst, display);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(dst, times) != 0) throw_errno("set times on the copy of " + display);
}

void copy_data(int src, int dst, const std::string& display) {
  bool use_cfr = true;
  for (;;) {
    ssize_t n;
    if (use_cfr) {
      n = ::copy_file_range(src, nullptr, dst, nullptr, 1 << 30, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        use_cfr = false;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("copy " + display);
      if (n == 0) return;
      continue;
    }
    char buf[1 << 16];
    n = ::read(src, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read " + display);
    if (n == 0) return;
    write_all(dst, std::string_view(buf, static_cast<size_t>(n)), "write the copy of " + display);
  }
}

struct TreeCopier {
  int dst_root;
  std::string display_root;
  // (dev, ino) of a multiply linked source file → its path relative to dst_root.
  std::map<std::pair<dev_t, ino_t>, std::string> links;

  void copy_dir(int src, int dst, const std::string& rel) {
    std::string display = display_root + (rel.empty() ? "" : "/" + rel);
    for (const auto& name : list_dir(src, display)) {
      std::string child_rel = rel.empty() ? name : rel + "/" + name;
      copy_entry(src, dst, name, child_rel);
    }
  }

  void copy_entry(int src_parent, int dst_parent, const std::string& name, const std::string& rel) {
    std::string display = display_root + "/" + rel;
    struct stat st;
    if (::fstatat(src_parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("stat " + display);
    const char* n = name.c_str();
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = links.find(key);
      if (it != links.end()) {
        if (::linkat(dst_root, it->second.c_str(), dst_parent, n, 0) != 0) throw_errno("link the copy of " + display);
        return;
      }
      links.emplace(key, rel);
    }
    switch (st.st_mode & S_IFMT) {
      case S_IFDIR: {
        UniqueFd s = open_at(src_parent, name, O_RDONLY | O_DIRECTORY, display);
        if (::mkdirat(dst_parent, n, 0700) != 0) throw_errno("mkdir the copy of " + display);
        UniqueFd d = open_at(dst_parent, name, O_RDONLY | O_DIRECTORY, "the copy of " + display);
        copy_dir(s.get(), d.get(), rel);
        copy_meta_fd(s.get(), d.get(), st, display);  // after the children: they change mtime
        break;
      }
      case S_IFREG: {
        UniqueFd s = open_at(src_parent, name, O_RDONLY, display);
        int fd = ::openat(dst_parent, n, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) throw_errno("create the copy of " + display);
        UniqueFd d(fd);
        copy_data(s.get(), d.get(), display);
        copy_meta_fd(s.get(), d.get(), st, display);
        break;
      }
      case S_IFLNK: {
        std::string target(static_cast<size_t>(st.st_size > 0 ? st.st_size : 255) + 1, '\0');
        ssize_t len = ::readlinkat(src_parent, n, target.data(), target.size());
        if (len < 0) throw_errno("readlink " + display);
        target.resize(static_cast<size_t>(len));
        if (::symlinkat(target.c_str(), dst_parent, n) != 0) throw_errno("symlink the copy of " + display);
        if (::fchownat(dst_parent, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0)
          throw_errno("chown the copy of " + display);
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        if (::utimensat(dst_parent, n, times, AT_SYMLINK_NOFOLLOW) != 0)
          throw_errno("set times on the copy of " + display);
        break;
      }
      case S_IFCHR:
      case S_IFBLK:
      case S_IFIFO: {
        if (::mknodat(dst_parent, n, (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0)
          throw_errno("mknod the copy of " + display);
        if (::fchownat(dst_parent, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0)
          throw_errno("chown the copy of " + display);
        // Just made by us in berth's own staging dir: not a symlink, so fchmodat can't be led astray.
        if (::fchmodat(dst_parent, n, st.st_mode & 07777, 0) != 0) throw_errno("chmod the copy of " + display);
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        if (::utimensat(dst_parent, n, times, AT_SYMLINK_NOFOLLOW) != 0)
          throw_errno("set times on the copy of " + display);
        break;
      }
      default:
        break;  // sockets belong to a running process, not to an image
    }
  }
};

void remove_at(int dirfd, const std::string& name, dev_t dev, const std::string& display) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    throw_errno("stat " + display);
  }
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) throw Error("remove " + display + ": a filesystem is mounted there; unmount it first");
    UniqueFd fd = open_at(dirfd, name, O_RDONLY | O_DIRECTORY, display);
    for (const auto& child : list_dir(fd.get(), display)) remove_at(fd.get(), child, dev, display + "/" + child);
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) throw_errno("rmdir " + display);
  } else if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
    throw_errno("unlink " + display);
  }
}

void fsync_path(const std::string& path) {
  UniqueFd fd = open_or_throw(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (::fsync(fd.get()) != 0) throw_errno("fsync " + path);
}

long sys_openat2(int dirfd, const char* path, struct open_how* how) {
  return ::syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

// The copy-up target: _data, or a subpath beneath it that must not be (or pass) a symlink, since
// containers write the volume and could plant one.
UniqueFd open_target(const std::string& volume_dir, const std::string& subpath) {
  std::string data = volume_dir + "/_data";
  UniqueFd data_fd = open_or_throw(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (subpath.empty()) return data_fd;
  struct open_how how = {};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd;
  do {
    fd = sys_openat2(data_fd.get(), subpath.c_str(), &how);
  } while (fd < 0 && errno == EAGAIN);
  if (fd < 0) throw_errno("open subpath " + subpath + " of " + data);
  return UniqueFd(static_cast<int>(fd));
}

void write_marker(const std::string& volume_dir, const std::string& phase, const std::string& subpath) {
  write_file_atomic(volume_dir + "/" + kCopyUpMarker, phase + "\n" + subpath + "\n", 0600, true);
  fsync_path(volume_dir);
}

}  // namespace

void copy_tree(int src_fd, int dst_fd, const std::string& display) {
  TreeCopier c{dst_fd, display, {}};
  c.copy_dir(src_fd, dst_fd, "");
}

void remove_tree_same_fs(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw_errno("stat " + path);
  }
  auto slash = path.find_last_of('/');
  std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  UniqueFd pfd = open_or_throw(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  remove_at(pfd.get(), path.substr(slash + 1), st.st_dev, path);
}

int64_t tree_size(const std::string& path) {
  int64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::vector<std::pair<UniqueFd, std::string>> stack;
  int root = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (root < 0) return 0;
  stack.emplace_back(UniqueFd(root), path);
  while (!stack.empty()) {
    auto [fd, display] = std::move(stack.back());
    stack.pop_back();
    for (const auto& name : list_dir(fd.get(), display)) {
      struct stat st;
      if (::fstatat(fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        int child = ::openat(fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (child >= 0) stack.emplace_back(UniqueFd(child), display + "/" + name);
      } else if (S_ISREG(st.st_mode) && (st.st_nlink == 1 || seen.insert({st.st_dev, st.st_ino}).second)) {
        total += st.st_size;
      }
    }
  }
  return total;
}

bool dir_is_empty(int dir_fd) { return list_dir(dir_fd, "volume directory").empty(); }

void resume_copy_up(const std::string& volume_dir) {
  std::string marker_path = volume_dir + "/" + kCopyUpMarker;
  auto marker = read_file_if_exists(marker_path);
  if (!marker) return;
  auto nl = marker->find('\n');
  std::string phase = marker->substr(0, nl);
  std::string subpath = nl == std::string::npos ? "" : marker->substr(nl + 1);
  while (!subpath.empty() && subpath.back() == '\n') subpath.pop_back();
  UniqueFd target;
  try {
    target = open_target(volume_dir, subpath);
  } catch (const Error& e) {
    if (e.errnum() != ENOENT) throw;
  }
  std::string staging_display = volume_dir + "/_data/" + (subpath.empty() ? "" : subpath + "/") + kCopyUpStaging;
  if (target && phase == "moving") {
    // Roll forward: the copy is complete and synced; renaming the rest is idempotent.
    int sfd = ::openat(target.get(), kCopyUpStaging, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (sfd >= 0) {
      UniqueFd staging(sfd);
      for (const auto& name : list_dir(staging.get(), staging_display)) {
        if (::renameat2(staging.get(), name.c_str(), target.get(), name.c_str(), RENAME_NOREPLACE) != 0 &&
            errno != EEXIST)
          throw_errno("move " + staging_display + "/" + name + " into the volume");
        fault_point("copy-up.moving");
      }
      struct stat st;
      if (::fstat(staging.get(), &st) != 0) throw_errno("stat " + staging_display);
      if (::fchown(target.get(), st.st_uid, st.st_gid) != 0) throw_errno("chown " + volume_dir + "/_data");
      if (::fchmod(target.get(), st.st_mode & 07777) != 0) throw_errno("chmod " + volume_dir + "/_data");
      if (::fsync(target.get()) != 0) throw_errno("fsync " + volume_dir + "/_data");
    } else if (errno != ENOENT) {
      throw_errno("open " + staging_display);
    }
  }
  // What is left in staging is berth's own copy: entries that lost a NOREPLACE race, or all of
  // it when the copy was cut short ("copying"). Nothing outside staging is touched.
  if (target) {
    struct stat st;
    if (::fstat(target.get(), &st) != 0) throw_errno("stat " + volume_dir + "/_data");
    remove_at(target.get(), kCopyUpStaging, st.st_dev, staging_display);
    if (::fsync(target.get()) != 0) throw_errno("fsync " + volume_dir + "/_data");
  }
  if (::unlink(marker_path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink " + marker_path);
  fsync_path(volume_dir);
}

bool copy_up_into(const std::string& volume_dir, const std::string& subpath, int src_fd, const std::string& display) {
  resume_copy_up(volume_dir);
  UniqueFd target = open_target(volume_dir, subpath);
  if (!dir_is_empty(target.get())) return false;  // never merged into
  write_marker(volume_dir, "copying", subpath);
  fault_point("copy-up.marked");
  if (::mkdirat(target.get(), kCopyUpStaging, 0700) != 0) throw_errno("mkdir copy-up staging in " + volume_dir);
  UniqueFd staging = open_at(target.get(), kCopyUpStaging, O_RDONLY | O_DIRECTORY, "copy-up staging");
  copy_tree(src_fd, staging.get(), display);
  fault_point("copy-up.copied");
  // The staging dir carries the image directory's owner and mode until the target takes them.
  struct stat st;
  if (::fstat(src_fd, &st) != 0) throw_errno("stat " + display);
  if (::fchown(staging.get(), st.st_uid, st.st_gid) != 0 || ::fchmod(staging.get(), st.st_mode & 07777) != 0)
    throw_errno("set owner and mode of copy-up staging in " + volume_dir);
  if (::syncfs(staging.get()) != 0) throw_errno("syncfs " + volume_dir);
  write_marker(volume_dir, "moving", subpath);
  fault_point("copy-up.synced");
  resume_copy_up(volume_dir);  // the rename phase is the roll-forward of a crash in it
  return true;
}

}  // namespace berth::engine
