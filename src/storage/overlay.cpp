#include "storage/overlay.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

namespace berth::storage {

namespace {

int sys_fsopen(const char* fs, unsigned flags) { return static_cast<int>(syscall(SYS_fsopen, fs, flags)); }
int sys_fsconfig(int fd, unsigned cmd, const char* key, const void* value, int aux) {
  return static_cast<int>(syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
int sys_fsmount(int fd, unsigned flags, unsigned attr) {
  return static_cast<int>(syscall(SYS_fsmount, fd, flags, attr));
}
int sys_move_mount(int from_dfd, const char* from, int to_dfd, const char* to, unsigned flags) {
  return static_cast<int>(syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags));
}

// The kernel's reason for a failed fsconfig is in the fs context's log, read from the fd.
std::string fs_log(int fsfd) {
  std::string out;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fsfd, buf, sizeof buf - 1);
    if (n <= 0) break;
    if (!out.empty()) out += "; ";
    out.append(buf, static_cast<size_t>(n));
    while (!out.empty() && out.back() == '\n') out.pop_back();
  }
  return out;
}

// false when the kernel lacks lowerdir+ (before 6.8): the caller falls back to mount(2).
bool mount_with_fsconfig(const std::vector<std::string>& lowerdirs, const std::string& upperdir,
                         const std::string& workdir, const std::string& target, bool volatile_upper) {
  int raw = sys_fsopen("overlay", FSOPEN_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOSYS) return false;
    throw_errno("fsopen overlay");
  }
  UniqueFd fsfd(raw);
  for (size_t i = 0; i < lowerdirs.size(); i++) {
    if (sys_fsconfig(fsfd.get(), FSCONFIG_SET_STRING, "lowerdir+", lowerdirs[i].c_str(), 0) < 0) {
      if (i == 0 && errno == EINVAL) return false;
      int e = errno;
      throw Error(errno_message("overlay lowerdir+ " + lowerdirs[i], e) + " " + fs_log(fsfd.get()), e);
    }
  }
  auto set = [&](const char* key, const std::string& value) {
    if (sys_fsconfig(fsfd.get(), FSCONFIG_SET_STRING, key, value.c_str(), 0) < 0) {
      int e = errno;
      throw Error(errno_message(std::string("overlay ") + key + " " + value, e) + " " + fs_log(fsfd.get()), e);
    }
  };
  if (!upperdir.empty()) {
    set("upperdir", upperdir);
    set("workdir", workdir);
    // EINVAL: a kernel without the option; the mount is only slower to undo.
    if (volatile_upper && sys_fsconfig(fsfd.get(), FSCONFIG_SET_FLAG, "volatile", nullptr, 0) < 0 && errno != EINVAL) {
      int e = errno;
      throw Error(errno_message("overlay volatile", e) + " " + fs_log(fsfd.get()), e);
    }
  }
  if (sys_fsconfig(fsfd.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    int e = errno;
    throw Error(errno_message("create overlay for " + target, e) + " " + fs_log(fsfd.get()), e);
  }
  int mfd = sys_fsmount(fsfd.get(), FSMOUNT_CLOEXEC, upperdir.empty() ? MOUNT_ATTR_RDONLY : 0);
  if (mfd < 0) throw_errno("fsmount overlay for " + target);
  UniqueFd mount_fd(mfd);
  if (sys_move_mount(mount_fd.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
    throw_errno("move_mount overlay onto " + target);
  return true;
}

std::string common_parent(const std::vector<std::string>& dirs) {
  std::string p = dirs.front().substr(0, dirs.front().rfind('/'));
  for (const auto& d : dirs)
    while (!p.empty() && d.compare(0, p.size() + 1, p + "/") != 0) p = p.substr(0, p.rfind('/'));
  return p;
}

void mount_legacy(const std::vector<std::string>& lowerdirs, const std::string& upperdir, const std::string& workdir,
                  const std::string& target, bool volatile_upper) {
  auto build = [&](const std::string& strip) {
    std::string data = "lowerdir=";
    for (size_t i = 0; i < lowerdirs.size(); i++) {
      if (i) data += ":";
      data += strip.empty() ? lowerdirs[i] : lowerdirs[i].substr(strip.size() + 1);
    }
    if (!upperdir.empty()) data += ",upperdir=" + upperdir + ",workdir=" + workdir;
    if (!upperdir.empty() && volatile_upper) data += ",volatile";
    return data;
  };
  unsigned long flags = upperdir.empty() ? MS_RDONLY : 0;
  std::string data = build("");
  if (data.size() < static_cast<size_t>(getpagesize())) {
    if (::mount("overlay", target.c_str(), "overlay", flags, data.c_str()) == 0) return;
    // A kernel before 5.10 does not know `volatile`: mount without it.
    if (errno == EINVAL && volatile_upper) return mount_legacy(lowerdirs, upperdir, workdir, target, false);
    throw_errno("mount overlay on " + target);
  }
  // Relative lowerdirs resolve against the cwd of the mounting process: mount from a child
  // so the caller's cwd (and other threads) are untouched.
  std::string parent = common_parent(lowerdirs);
  data = build(parent);
  if (parent.empty() || data.size() >= static_cast<size_t>(getpagesize()))
    throw Error("overlay for " + target + ": " + std::to_string(lowerdirs.size()) +
                " layers do not fit in the mount data of this kernel (no lowerdir+ support)");
  pid_t pid = fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    if (chdir(parent.c_str()) < 0) _exit(errno);
    if (::mount("overlay", target.c_str(), "overlay", flags, data.c_str()) < 0) _exit(errno);
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
  if (code == EINVAL && volatile_upper) return mount_legacy(lowerdirs, upperdir, workdir, target, false);
  if (code) throw_errno("mount overlay on " + target, code);
}

}  // namespace

void mount_overlay(const std::vector<std::string>& lowerdirs, const std::string& upperdir, const std::string& workdir,
                   const std::string& target, bool volatile_upper) {
  if (lowerdirs.empty()) throw Error("overlay for " + target + ": no lower layers");
  volatile_upper = volatile_upper && !upperdir.empty();
  // Left by an earlier volatile mount, clean or not: the kernel wants it gone before the next.
  if (volatile_upper) remove_tree(workdir + "/work/incompat/volatile");
  if (mount_with_fsconfig(lowerdirs, upperdir, workdir, target, volatile_upper)) return;
  mount_legacy(lowerdirs, upperdir, workdir, target, volatile_upper);
}

void unmount_overlay(const std::string& target) {
  if (::umount2(target.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) throw_errno("unmount " + target);
}

}  // namespace berth::storage
