#include "runtime/mounts.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>

#include "runtime/cgroups.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace berth::runtime {
namespace {

struct OptionFlag {
  bool clear;
  unsigned long flag;
};

const std::map<std::string, OptionFlag>& option_table() {
  static const std::map<std::string, OptionFlag> table = {
      {"async", {true, MS_SYNCHRONOUS}},
      {"atime", {true, MS_NOATIME}},
      {"bind", {false, MS_BIND}},
      {"defaults", {false, 0}},
      {"dev", {true, MS_NODEV}},
      {"diratime", {true, MS_NODIRATIME}},
      {"dirsync", {false, MS_DIRSYNC}},
      {"exec", {true, MS_NOEXEC}},
      {"iversion", {false, MS_I_VERSION}},
      {"lazytime", {false, MS_LAZYTIME}},
      {"loud", {true, MS_SILENT}},
      {"mand", {false, MS_MANDLOCK}},
      {"noatime", {false, MS_NOATIME}},
      {"nodev", {false, MS_NODEV}},
      {"nodiratime", {false, MS_NODIRATIME}},
      {"noexec", {false, MS_NOEXEC}},
      {"noiversion", {true, MS_I_VERSION}},
      {"nolazytime", {true, MS_LAZYTIME}},
      {"nomand", {true, MS_MANDLOCK}},
      {"norelatime", {true, MS_RELATIME}},
      {"nostrictatime", {true, MS_STRICTATIME}},
      {"nosuid", {false, MS_NOSUID}},
      {"nosymfollow", {false, MS_NOSYMFOLLOW}},
      {"rbind", {false, MS_BIND | MS_REC}},
      {"relatime", {false, MS_RELATIME}},
      {"remount", {false, MS_REMOUNT}},
      {"ro", {false, MS_RDONLY}},
      {"rw", {true, MS_RDONLY}},
      {"silent", {false, MS_SILENT}},
      {"strictatime", {false, MS_STRICTATIME}},
      {"suid", {true, MS_NOSUID}},
      {"symfollow", {true, MS_NOSYMFOLLOW}},
      {"sync", {false, MS_SYNCHRONOUS}},
  };
  return table;
}

struct RecursiveAttr {
  bool clear;
  uint64_t attr;
};

const std::map<std::string, RecursiveAttr>& recursive_table() {
  static const std::map<std::string, RecursiveAttr> table = {
      {"rro", {false, MOUNT_ATTR_RDONLY}},
      {"rrw", {true, MOUNT_ATTR_RDONLY}},
      {"rnosuid", {false, MOUNT_ATTR_NOSUID}},
      {"rsuid", {true, MOUNT_ATTR_NOSUID}},
      {"rnodev", {false, MOUNT_ATTR_NODEV}},
      {"rdev", {true, MOUNT_ATTR_NODEV}},
      {"rnoexec", {false, MOUNT_ATTR_NOEXEC}},
      {"rexec", {true, MOUNT_ATTR_NOEXEC}},
      {"rnodiratime", {false, MOUNT_ATTR_NODIRATIME}},
      {"rdiratime", {true, MOUNT_ATTR_NODIRATIME}},
      {"rrelatime", {false, MOUNT_ATTR_RELATIME}},
      {"rnorelatime", {true, MOUNT_ATTR_RELATIME}},
      {"rnoatime", {false, MOUNT_ATTR_NOATIME}},
      {"ratime", {true, MOUNT_ATTR_NOATIME}},
      {"rstrictatime", {false, MOUNT_ATTR_STRICTATIME}},
      {"rnostrictatime", {true, MOUNT_ATTR_STRICTATIME}},
      {"rnosymfollow", {false, MOUNT_ATTR_NOSYMFOLLOW}},
      {"rsymfollow", {true, MOUNT_ATTR_NOSYMFOLLOW}},
  };
  return table;
}

long sys_openat2(int dirfd, const char* path, struct open_how* how) {
  return ::syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/'))
    if (!part.empty() && part != ".") parts.push_back(part);
  return parts;
}

std::string join_parts(const std::vector<std::string>& parts, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += "/" + parts[i];
  return out.empty() ? "/" : out;
}

void do_mount(const std::string& source, const std::string& target, const char* type, unsigned long flags,
              const std::string& data, const std::string& what) {
  if (::mount(source.empty() ? nullptr : source.c_str(), target.c_str(), type, flags,
              data.empty() ? nullptr : data.c_str()) != 0)
    throw_errno(what);
}

// Flags a remount must keep: the kernel refuses to clear locked ones in a user namespace.
unsigned long locked_flags(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) return 0;
  unsigned long out = 0;
  if (st.f_flag & ST_NOSUID) out |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) out |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) out |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) out |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) out |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) out |= MS_RELATIME;
  return out;
}

bool is_bind(const Mount& m, const MountFlags& f) { return f.bind || m.type == "bind"; }

// cpu → cpu,cpuacct links, as a host shows them.
void continue_after_symlinks(const std::vector<std::string>& names, const std::string& dirname, int target_fd) {
  for (auto& n : names)
    if (n != dirname && n.rfind("name=", 0) != 0) ::symlinkat(dirname.c_str(), target_fd, n.c_str());
}

void mount_cgroup(const RootfsContext& ctx, const Mount& m, const MountFlags& f, int root_fd) {
  const CgroupLayout& layout = *ctx.host_cgroups;
  unsigned long flags = (f.flags & ~(MS_RDONLY | MS_BIND | MS_REC)) | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  UniqueFd target = mkdir_all_in_root(root_fd, m.destination, false);
  if (layout.unified) {
    do_mount("cgroup2", fd_path(target.get()), "cgroup2", flags | (f.flags & MS_RDONLY), "",
             "mount cgroup2 on " + m.destination);
    return;
  }
  do_mount("tmpfs", fd_path(target.get()), "tmpfs", flags, "mode=755", "mount tmpfs for cgroups on " + m.destination);
  // Group comounted controllers (cpu,cpuacct) by mount point.
  std::map<std::string, std::vector<std::string>> by_mount;
  for (auto& [name, mnt] : layout.v1_mounts) by_mount[mnt].push_back(name);
  auto based = [&](const std::string& name, const std::string& mnt) {
    auto it = ctx.container_cgroups->v1_mounts.find(name);
    return it == ctx.container_cgroups->v1_mounts.end() ? mnt : it->second;
  };
  for (auto& [mnt, names] : by_mount) {
    std::string dirname = mnt.substr(mnt.find_last_of('/') + 1);
    std::string dest = m.destination + "/" + dirname;
    UniqueFd sub = mkdir_all_in_root(root_fd, dest, false);
    if (ctx.new_cgroupns) {
      std::string opts;
      for (auto& n : names) opts += (opts.empty() ? "" : ",") + n;
      // Read-only from the start: one mount(2) instead of mount + remount.
      do_mount("cgroup", fd_path(sub.get()), "cgroup", flags | (f.flags & MS_RDONLY), opts,
               "mount cgroup " + opts + " on " + dest);
      continue_after_symlinks(names, dirname, target.get());
      continue;
    } else {
      // Without a cgroup namespace, show only the container's own cgroup, as runc does.
      std::string src = based(names.front(), mnt) + ctx.cgroup_path;
      if (!path_exists(src)) src = mnt;
      do_mount(src, fd_path(sub.get()), nullptr, MS_BIND | MS_REC, "", "bind " + src + " on " + dest);
    }
    if (f.flags & MS_RDONLY) {
      UniqueFd again = open_in_root(root_fd, dest);
      std::string p = fd_path(again.get());
      do_mount("", p, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(p), "", "remount " + dest + " ro");
    }
    continue_after_symlinks(names, dirname, target.get());
  }
  if (f.flags & MS_RDONLY) {
    UniqueFd again = open_in_root(root_fd, m.destination);
    std::string p = fd_path(again.get());
    do_mount("", p, nullptr, MS_REMOUNT | MS_RDONLY | flags, "mode=755", "remount " + m.destination + " ro");
  }
}

void mount_one(const RootfsContext& ctx, const Mount& m, int root_fd) {
  MountFlags f = parse_mount_options(m.options);
  std::string dest = m.destination.empty() || m.destination[0] != '/' ? "/" + m.destination : m.destination;
  if (m.type == "cgroup" || m.type == "cgroup2") {
    Mount copy = m;
    copy.destination = dest;
    mount_cgroup(ctx, copy, f, root_fd);
    return;
  }
  bool bind = is_bind(m, f);
  bool file_target = false;
  if (bind) {
    struct stat st;
    if (::stat(m.source.c_str(), &st) != 0) throw_errno("bind mount source " + m.source);
    file_target = !S_ISDIR(st.st_mode);
  }
  if (m.type == "proc" || m.type == "sysfs") {
    // The kernel's own views must land exactly where named: refuse symlinked destinations.
    struct open_how how = {};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS;
    long fd = sys_openat2(root_fd, dest.c_str(), &how);
    if (fd < 0 && errno == ELOOP)
      throw Error("mount destination " + dest + " is a symlink; refusing to mount " + m.type);
    if (fd >= 0) {
      struct stat st;
      ::fstat(static_cast<int>(fd), &st);
      ::close(static_cast<int>(fd));
      if (!S_ISDIR(st.st_mode)) throw Error("mount destination " + dest + " is not a directory");
    }
  }
  UniqueFd target = mkdir_all_in_root(root_fd, dest, file_target);
  std::string target_path = fd_path(target.get());
  if (bind) {
    do_mount(m.source, target_path, nullptr, MS_BIND | (f.flags & MS_REC), "",
             "bind mount " + m.source + " on " + dest);
    unsigned long remount_flags = f.flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    if (remount_flags) {
      UniqueFd again = open_in_root(root_fd, dest);
      std::string p = fd_path(again.get());
      do_mount("", p, nullptr, MS_REMOUNT | MS_BIND | remount_flags | locked_flags(p), "",
               "remount " + dest + " with options");
    }
  } else {
    std::string type = m.type.empty() ? "none" : m.type;
    try {
      do_mount(m.source.empty() ? type : m.source, target_path, type.c_str(), f.flags, f.data,
               "mount " + type + " on " + dest);
    } catch (const Error& e) {
      // sysfs can't be mounted without owning the network namespace; a read-only rbind is the fallback.
      if (type != "sysfs" || (e.errnum() != EPERM && e.errnum() != EBUSY)) throw;
      do_mount("/sys", target_path, nullptr, MS_BIND | MS_REC, "", "bind /sys on " + dest);
      UniqueFd again = open_in_root(root_fd, dest);
      std::string p = fd_path(again.get());
      do_mount("", p, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(p), "", "remount " + dest + " ro");
    }
  }
  if (f.attr_set || f.attr_clr) {
    UniqueFd again = open_in_root(root_fd, dest);
    struct mount_attr attr = {};
    attr.attr_set = f.attr_set;
    attr.attr_clr = f.attr_clr;
    if (::mount_setattr(again.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
      throw_errno("set recursive mount attributes on " + dest);
  }
  if (f.propagation) {
    UniqueFd again = open_in_root(root_fd, dest);
    do_mount("", fd_path(again.get()), nullptr, f.propagation, "", "set propagation of " + dest);
  }
}

bool has_dev_bind(const Spec& spec) {
  for (const auto& m : spec.mounts) {
    if (m.destination != "/dev") continue;
    MountFlags f = parse_mount_options(m.options);
    if (is_bind(m, f)) return true;
  }
  return false;
}

void make_device(int root_fd, const Device& d, bool bind_from_host, std::map<std::string, UniqueFd>& dirs) {
  std::string path = d.path[0] == '/' ? d.path : "/" + d.path;
  auto slash = path.find_last_of('/');
  std::string parent = path.substr(0, slash);
  std::string name = path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") throw Error("invalid device path " + d.path);
  if (parent.empty()) parent = "/";
  UniqueFd& dir = dirs[parent];
  if (!dir) dir = mkdir_all_in_root(root_fd, parent, false);
  mode_t type = d.type == "b" ? S_IFBLK : d.type == "p" ? S_IFIFO : S_IFCHR;
  mode_t mode = static_cast<mode_t>(d.file_mode.value_or(0666) & 07777);
  ::unlinkat(dir.get(), name.c_str(), 0);
  if (bind_from_host) {
    int fd = ::openat(dir.get(), name.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw_errno("create device node placeholder " + path);
    ::close(fd);
    UniqueFd target = open_in_root(root_fd, path, RESOLVE_NO_SYMLINKS);
    do_mount(path, fd_path(target.get()), nullptr, MS_BIND, "", "bind device " + path);
    return;
  }
  dev_t dev = makedev(static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor));
  mode_t old = ::umask(0);
  int rc = ::mknodat(dir.get(), name.c_str(), type | mode, dev);
  ::umask(old);
  if (rc != 0) throw_errno("mknod " + path);
  if (d.uid || d.gid) {
    if (::fchownat(dir.get(), name.c_str(), d.uid.value_or(0), d.gid.value_or(0), AT_SYMLINK_NOFOLLOW) != 0)
      throw_errno("chown device " + path);
  }
}

void setup_dev(const RootfsContext& ctx, int root_fd) {
  const Spec& spec = *ctx.spec;
  std::vector<Device> devices;
  auto add = [&](const char* path, int64_t major, int64_t minor) {
    Device d;
    d.path = path;
    d.type = "c";
    d.major = major;
    d.minor = minor;
    d.file_mode = 0666;
    d.uid = 0;
    d.gid = 0;
    devices.push_back(d);
  };
  add("/dev/null", 1, 3);
  add("/dev/zero", 1, 5);
  add("/dev/full", 1, 7);
  add("/dev/random", 1, 8);
  add("/dev/urandom", 1, 9);
  add("/dev/tty", 5, 0);
  if (spec.linux_)
    for (const auto& d : spec.linux_->devices) {
      for (auto it = devices.begin(); it != devices.end(); ++it)
        if (it->path == d.path) {
          devices.erase(it);
          break;
        }
      devices.push_back(d);
    }
  std::map<std::string, UniqueFd> dirs;  // parent directories, opened once
  for (const auto& d : devices) make_device(root_fd, d, ctx.new_userns, dirs);

  UniqueFd& dev = dirs["/dev"];
  if (!dev) dev = mkdir_all_in_root(root_fd, "/dev", false);
  struct Link {
    const char* target;
    const char* name;
  };
  const Link links[] = {{"/proc/self/fd", "fd"},
                        {"/proc/self/fd/0", "stdin"},
                        {"/proc/self/fd/1", "stdout"},
                        {"/proc/self/fd/2", "stderr"}};
  for (const auto& l : links)
    if (::symlinkat(l.target, dev.get(), l.name) != 0 && errno != EEXIST)
      throw_errno(std::string("symlink /dev/") + l.name);
  if (path_exists("/proc/kcore")) ::symlinkat("/proc/kcore", dev.get(), "core");
  // /dev/ptmx must be the one of the container's devpts instance.
  struct stat st;
  if (::fstatat(dev.get(), "pts/ptmx", &st, AT_SYMLINK_NOFOLLOW) == 0) {
    ::unlinkat(dev.get(), "ptmx", 0);
    if (::symlinkat("pts/ptmx", dev.get(), "ptmx") != 0) throw_errno("symlink /dev/ptmx");
  }
}

}  // namespace

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

unsigned long parse_propagation(const std::string& value) {
  static const std::map<std::string, unsigned long> table = {
      {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
      {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
      {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
      {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
  };
  auto it = table.find(value);
  if (it == table.end()) throw Error("invalid propagation \"" + value + "\"");
  return it->second;
}

MountFlags parse_mount_options(const std::vector<std::string>& options) {
  MountFlags f;
  for (const auto& opt : options) {
    if (auto it = option_table().find(opt); it != option_table().end()) {
      if (it->second.clear)
        f.flags &= ~it->second.flag;
      else
        f.flags |= it->second.flag;
      if (opt == "bind" || opt == "rbind") f.bind = true;
      continue;
    }
    if (auto it = recursive_table().find(opt); it != recursive_table().end()) {
      if (it->second.clear) {
        f.attr_clr |= it->second.attr;
        f.attr_set &= ~it->second.attr;
      } else {
        f.attr_set |= it->second.attr;
        f.attr_clr &= ~it->second.attr;
      }
      continue;
    }
    if (opt == "private" || opt == "rprivate" || opt == "shared" || opt == "rshared" || opt == "slave" ||
        opt == "rslave" || opt == "unbindable" || opt == "runbindable") {
      f.propagation = parse_propagation(opt);
      continue;
    }
    if (opt == "tmpcopyup" || opt == "idmap" || opt == "ridmap") continue;  // runc extensions we don't act on
    f.data += (f.data.empty() ? "" : ",") + opt;
  }
  return f;
}

UniqueFd try_open_in_root(int root_fd, const std::string& path, uint64_t extra_resolve, int flags) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(O_PATH | O_CLOEXEC | flags);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve;
  std::string rel = path;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  if (rel.empty()) rel = ".";
  long fd;
  do {
    fd = sys_openat2(root_fd, rel.c_str(), &how);
  } while (fd < 0 && errno == EAGAIN);
  return UniqueFd(fd < 0 ? -1 : static_cast<int>(fd));
}

UniqueFd open_in_root(int root_fd, const std::string& path, uint64_t extra_resolve, int flags) {
  UniqueFd fd = try_open_in_root(root_fd, path, extra_resolve, flags);
  if (!fd) throw_errno("open " + path + " in container root");
  return fd;
}

UniqueFd mkdir_all_in_root(int root_fd, const std::string& path, bool final_is_file) {
  // Most targets exist (or only the last component is missing): one lookup, not one per component.
  if (UniqueFd fd = try_open_in_root(root_fd, path)) return fd;
  if (errno != ENOENT) throw_errno("open " + path + " in container root");
  std::vector<std::string> parts = split_path(path);
  for (size_t i = 1; i <= parts.size(); ++i) {
    std::string sub = join_parts(parts, i);
    // No exceptions on this path: a static binary's first throw costs milliseconds.
    if (try_open_in_root(root_fd, sub)) continue;
    if (errno != ENOENT) throw_errno("open " + sub + " in container root");
    UniqueFd parent = open_in_root(root_fd, join_parts(parts, i - 1), 0, O_DIRECTORY);
    const std::string& name = parts[i - 1];
    if (i == parts.size() && final_is_file) {
      int fd = ::openat(parent.get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd < 0 && errno != EEXIST) throw_errno("create mount target " + sub + " in container root");
      if (fd < 0) throw Error("mount target " + sub + " is a dangling symlink in the container root");
      ::close(fd);
    } else if (::mkdirat(parent.get(), name.c_str(), 0755) != 0) {
      if (errno == EEXIST) throw Error("mount target " + sub + " is a dangling symlink in the container root");
      throw_errno("mkdir " + sub + " in container root");
    }
  }
  return open_in_root(root_fd, path);
}

void prepare_rootfs(const RootfsContext& ctx) {
  const Spec& spec = *ctx.spec;
  unsigned long prop = MS_SLAVE | MS_REC;
  if (spec.linux_ && !spec.linux_->rootfs_propagation.empty()) {
    prop = parse_propagation(spec.linux_->rootfs_propagation);
    // pivot_root refuses a shared root, and an unbindable "/" refuses the bind of the rootfs below:
    // keep "/" a slave for now, the new root gets the asked propagation after pivot_root.
    if (prop & (MS_SHARED | MS_UNBINDABLE)) prop = MS_SLAVE | MS_REC;
  }
  do_mount("", "/", nullptr, prop, "", "set propagation of /");
  do_mount(ctx.rootfs, ctx.rootfs, nullptr, MS_BIND | MS_REC, "", "bind rootfs " + ctx.rootfs + " on itself");
  UniqueFd root_fd = open_or_throw(ctx.rootfs, O_PATH | O_DIRECTORY);
  for (const auto& m : spec.mounts) mount_one(ctx, m, root_fd.get());
  if (!has_dev_bind(spec)) setup_dev(ctx, root_fd.get());
}

void enter_rootfs(const std::string& rootfs, bool no_pivot) {
  if (no_pivot) {
    if (::chdir(rootfs.c_str()) != 0) throw_errno("chdir " + rootfs);
    do_mount(rootfs, "/", nullptr, MS_MOVE, "", "move rootfs to /");
    if (::chroot(".") != 0) throw_errno("chroot " + rootfs);
    if (::chdir("/") != 0) throw_errno("chdir /");
    return;
  }
  UniqueFd old_root = open_or_throw("/", O_DIRECTORY | O_RDONLY);
  UniqueFd new_root = open_or_throw(rootfs, O_DIRECTORY | O_RDONLY);
  if (::fchdir(new_root.get()) != 0) throw_errno("chdir " + rootfs);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) throw_errno("pivot_root " + rootfs);
  if (::fchdir(old_root.get()) != 0) throw_errno("chdir old root");
  // The old root must not propagate its unmount to the host.
  do_mount("", ".", nullptr, MS_SLAVE | MS_REC, "", "make old root a slave");
  if (::umount2(".", MNT_DETACH) != 0) throw_errno("unmount old root");
  if (::chdir("/") != 0) throw_errno("chdir /");
}

void finalize_rootfs(const Spec& spec) {
  UniqueFd root = open_or_throw("/", O_PATH | O_DIRECTORY);
  if (spec.linux_) {
    for (const auto& p : spec.linux_->readonly_paths) {
      UniqueFd fd = try_open_in_root(root.get(), p);
      if (!fd) {
        if (errno == ENOENT) continue;
        throw_errno("open readonly path " + p + " in container root");
      }
      std::string fp = fd_path(fd.get());
      do_mount(fp, fp, nullptr, MS_BIND | MS_REC, "", "bind readonly path " + p);
      UniqueFd again = open_in_root(root.get(), p);
      std::string ap = fd_path(again.get());
      do_mount("", ap, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(ap), "", "remount readonly path " + p);
    }
    for (const auto& p : spec.linux_->masked_paths) {
      UniqueFd fd = try_open_in_root(root.get(), p);
      if (!fd) {
        if (errno == ENOENT) continue;
        throw_errno("open masked path " + p + " in container root");
      }
      struct stat st;
      if (::fstat(fd.get(), &st) != 0) throw_errno("stat masked path " + p);
      if (S_ISDIR(st.st_mode)) {
        do_mount("tmpfs", fd_path(fd.get()), "tmpfs", MS_RDONLY, "size=0k,nr_inodes=1", "mask " + p);
      } else {
        do_mount("/dev/null", fd_path(fd.get()), nullptr, MS_BIND, "", "mask " + p);
      }
    }
    if (!spec.linux_->rootfs_propagation.empty()) {
      unsigned long prop = parse_propagation(spec.linux_->rootfs_propagation);
      if (prop & (MS_SHARED | MS_UNBINDABLE)) do_mount("", "/", nullptr, prop, "", "set propagation of /");
    }
  }
  if (spec.root_readonly)
    do_mount("", "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/"), "", "remount root read-only");
}

}  // namespace berth::runtime
