// `berth cp`: copying between a container's filesystem and the host (or tar streams), docker's
// path semantics, without ever leaving the container's filesystem.
//
// Container paths are resolved one component at a time, by us, from directory fds: each step is an
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) of a single name, symlinks
// are read and expanded in the container's scope (an absolute target restarts at the container's
// root, ".." stops there), and a path that reaches a mount point (a volume, a bind mount) continues
// in that mount's source directory. Files are created and changed with *at() calls and fds from
// that resolution, so a symlink planted by the container (even while the copy runs) can't make a
// read or write land outside the container's root or its mounts.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "util/fd.hpp"

namespace berth::engine {

struct Container;
class Engine;

namespace cp {

struct MountPoint {
  std::string destination;  // container path, normalized ("/data")
  std::string source;       // host path
  bool read_only = false;
};

// A directory tree addressed by absolute paths: a container's root filesystem plus its mounts, or
// a host directory (no mounts) used as the root of an extraction.
class Tree {
 public:
  // description: "container <name>" (for "Could not find the file … in container x").
  Tree(const std::string& root_dir, std::vector<MountPoint> mounts, bool read_only_root, std::string description);
  // A tree whose mount sources are opened already (tmpfs mounts of a running container).
  void add_mount_fd(const std::string& destination, UniqueFd fd, bool read_only);

  struct Lookup {
    bool exists = false;
    UniqueFd fd;  // O_PATH fd of the object (when it exists)
    struct stat st {};
    std::string path;         // its canonical path in the tree
    UniqueFd parent;          // O_PATH fd of the parent directory (none for "/")
    std::string name;         // the last component
    bool read_only = false;   // on a read-only mount (the object's, or its parent's when missing)
    bool in_mount = false;    // below a mount point (a volume or bind mount), not on the rootfs
    bool mount_root = false;  // the object is a mount point
  };
  // Resolves path (absolute; relative is taken from "/"). Symlinks in the middle are always
  // followed in scope, the last one only with follow_last. A missing last component gives
  // exists=false with parent and name set; a missing or non-directory middle one throws.
  Lookup resolve(const std::string& path, bool follow_last) const;

  // The mount whose destination is exactly path, or nullptr.
  struct Mount {
    std::string destination;
    UniqueFd fd;
    bool read_only = false;
  };
  const Mount* mount_at(const std::string& path) const;
  const std::string& description() const { return description_; }
  bool read_only_root() const { return read_only_root_; }

 private:
  UniqueFd root_;
  std::vector<Mount> mounts_;
  bool read_only_root_ = false;
  std::string description_;
};

// The tree of a container: containers/<id>/rootfs (mounted again if a reboot unmounted it) with the
// container's volumes and bind mounts (and /etc/hosts, hostname, resolv.conf), tmpfs mounts too
// while it runs. lowers: the image's layer directories (top-most first), to remount the rootfs.
std::unique_ptr<Tree> container_tree(Engine& engine, const Container& c, const std::vector<std::string>& lowers);

struct Options {
  bool archive = false;      // -a: keep uid/gid (copy-in: of the host files; copy-out: of the container's)
  bool follow_link = false;  // -L: follow a symlink given as the source
};

// docker cp CONTAINER:SRC DEST: dest is a host path or "-" (a tar stream on out_fd).
// Returns the number of content bytes copied.
int64_t copy_from(const Tree& tree, const std::string& src, const std::string& dest, const Options& options,
                  int out_fd);
// docker cp SRC CONTAINER:DEST: src is a host path or "-" (a tar stream from in_fd).
// dest_arg is what the user wrote (for messages). Returns the number of content bytes copied.
int64_t copy_to(const std::string& src, const Tree& tree, const std::string& dest, const std::string& dest_arg,
                const Options& options, int in_fd);

}  // namespace cp
}  // namespace berth::engine
