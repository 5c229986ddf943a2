#include "engine/diff.hpp"

#include "engine/engine.hpp"
#include "image/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::engine {

namespace {

// Everything is read relative to fds, nothing followed: the upper dir's contents are the
// container's to choose.
struct Walk {
  std::vector<UniqueFd> lowers;
  const std::set<std::string>& skip;
  std::vector<Change> changes;
  std::set<std::string> changed_dirs;

  // A lower layer's object at path (followed within that layer, as os.Stat of layer+path would
  // be, but never out of it).
  bool stat_lower(int layer_fd, const std::string& path, struct stat& st) {
    struct open_how how {};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    std::string rel = path.substr(1);
    long fd = ::syscall(SYS_openat2, layer_fd, rel.c_str(), &how, sizeof how);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return false;
      throw_errno("stat " + path + " in an image layer");
    }
    UniqueFd guard(static_cast<int>(fd));
    if (::fstat(guard.get(), &st) < 0) throw_errno("stat " + path + " in an image layer");
    return true;
  }

  // A directory the runtime wrote mount points into (/etc for /etc/hosts…): its times changed
  // because of those, which docker keeps in a layer of their own, so they don't count.
  bool holds_skipped(int fd, const std::string& path) {
    for (const auto& s : skip) {
      if (s.size() <= path.size() + 1 || s.compare(0, path.size(), path) != 0 || s[path.size()] != '/') continue;
      std::string name = s.substr(path.size() + 1);
      if (name.find('/') != std::string::npos) continue;
      struct stat st {};
      if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return true;
    }
    return false;
  }

  static bool same_time(const struct timespec& a, const struct timespec& b) {
    if (a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec) return true;
    // docker's sameFsTime: a zero nanosecond part on either side compares seconds only.
    return a.tv_sec == b.tv_sec && (a.tv_nsec == 0 || b.tv_nsec == 0);
  }

  void visit(int dir_fd, const std::string& name, const std::string& path) {
    if (skip.count(path)) return;
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) return;
      throw_errno("lstat " + path + " in the container's upper directory");
    }
    Change change{'A', path};
    bool deleted = false;
    if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0) deleted = true;
    UniqueFd self;
    if (S_ISDIR(st.st_mode)) {
      int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) throw_errno("open " + path + " in the container's upper directory");
      self.reset(fd);
      char value[8];
      ssize_t n = ::fgetxattr(fd, "trusted.overlay.opaque", value, sizeof value);
      if (n == 1 && value[0] == 'y') deleted = true;
    }
    bool record = true;
    if (deleted) {
      change.kind = 'D';
    } else {
      for (const auto& layer : lowers) {
        struct stat lst {};
        if (!stat_lower(layer.get(), path, lst)) continue;
        if (S_ISDIR(lst.st_mode) && S_ISDIR(st.st_mode) && st.st_mode == lst.st_mode &&
            ((st.st_size == lst.st_size && same_time(st.st_mtim, lst.st_mtim)) || holds_skipped(self.get(), path)))
          record = false;
        change.kind = 'C';
        break;
      }
    }
    if (record) {
      if (S_ISDIR(st.st_mode)) changed_dirs.insert(path);
      if (change.kind == 'A' || change.kind == 'D') {
        std::string parent = path.substr(0, path.rfind('/'));
        if (!parent.empty() && !changed_dirs.count(parent)) {
          changes.push_back({'C', parent});
          changed_dirs.insert(parent);
        }
      }
      changes.push_back(change);
    }
    if (self) children(self.get(), path);
  }

  void children(int fd, const std::string& path) {
    std::vector<std::string> names;
    int dfd = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) throw_errno("open " + path);
    DIR* dir = ::fdopendir(dfd);
    if (!dir) {
      ::close(dfd);
      throw_errno("opendir " + path);
    }
    errno = 0;
    while (struct dirent* de = ::readdir(dir)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    int err = errno;
    ::closedir(dir);
    if (err) throw_errno("readdir " + path, err);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) visit(fd, n, (path == "/" ? "" : path) + "/" + n);
  }
};

}  // namespace

std::vector<Change> container_changes(const std::string& upper, const std::vector<std::string>& lowers,
                                      const std::set<std::string>& skip) {
  Walk w{{}, skip, {}, {}};
  for (const auto& l : lowers) {
    int fd = ::open(l.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno("open layer " + l);
    w.lowers.emplace_back(fd);
  }
  int fd = ::open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + upper);
  UniqueFd root(fd);
  w.children(root.get(), "/");
  return w.changes;
}

std::vector<Change> changes_of(Engine& engine, image::ImageStore& images, const Container& c) {
  // What docker keeps in a container's init layer (mount points and files it bind-mounts), and
  // the container's mount points: the runtime creates them, the user did not change them.
  std::set<std::string> skip = {"/dev",        "/proc",     "/sys",     "/etc/hosts",       "/etc/hostname",
                                "/.dockerenv", "/etc/mtab", "/dev/pts", "/etc/resolv.conf", "/dev/shm",
                                "/dev/console"};
  if (c.mounts.is_array())
    for (const auto& m : c.mounts)
      if (m.is_object() && !m.value("Destination", "").empty()) skip.insert(m.value("Destination", ""));
  std::vector<std::string> lowers;
  auto image = images.get(c.image_id);
  for (size_t i = image.layers.size(); i-- > 0;) lowers.push_back(images.layer_dir(image.layers[i].chain_id));
  return container_changes(engine.container_dir(c.id) + "/upper", lowers, skip);
}

}  // namespace berth::engine
