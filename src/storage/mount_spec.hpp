// docker's mount flags (-v/--volume, --mount, --tmpfs) parsed into one value. Pure: nothing here
// looks at the filesystem or the environment; callers act on the parsed MountSpec.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace berth::storage {

enum class MountType { Bind, Volume, Tmpfs };

// "bind", "volume", "tmpfs" (docker's Type strings).
std::string_view to_string(MountType type);

// Every member has an initializer so callers (and tests) can use designated initializers naming
// only what they set without -Wmissing-field-initializers.
struct MountSpec {
  MountType type = MountType::Volume;
  // bind: absolute host path, cleaned; volume: the name, empty for an anonymous volume; tmpfs: empty.
  std::string source{};
  // Absolute container path, cleaned; never "/", and never had a ".." element.
  std::string target{};
  bool read_only = false;
  // "" (the default, rprivate) | private | rprivate | shared | rshared | slave | rslave. Binds, and
  // tmpfs from --tmpfs.
  std::string propagation{};
  // --mount bind-recursive: "" | enabled | disabled | writable | readonly.
  std::string bind_recursive{};
  // A plain bind instead of rbind: bind-nonrecursive, or bind-recursive=disabled.
  bool bind_nonrecursive = false;
  // -v (and --mount bind-create-src) create a missing host directory; --mount otherwise refuses a
  // missing source. The caller checks; this is only the decision.
  bool create_host_path = false;
  // volume-nocopy / :nocopy: don't copy the image's content into a new volume.
  bool nocopy = false;
  // volume-subpath: relative, cleaned, no "..".
  std::string subpath{};
  // Volumes: volume-driver, "local" by default. Empty for binds and tmpfs.
  std::string driver{};
  // volume-opt=K=V and volume-label=K=V (repeatable; a later K replaces an earlier one).
  std::map<std::string, std::string> driver_opts{};
  std::map<std::string, std::string> labels{};
  // tmpfs size in bytes, 0 = unlimited; mode bits (<= 07777), 0 = the default (1777).
  int64_t tmpfs_size = 0;
  uint32_t tmpfs_mode = 0;
  // The other --tmpfs options, allow-listed and normalized ("uid=1000", "noexec", "nr_inodes=1k").
  // A later option replaces an earlier one of its kind (noexec after exec), as docker merges them.
  std::vector<std::string> tmpfs_options{};
  // consistent | cached | delegated | default: accepted and ignored, as docker does on Linux.
  std::string consistency{};
  // "z" / "Z" from -v: accepted; there is nothing to relabel without SELinux.
  std::string selinux_relabel{};

  bool operator==(const MountSpec&) const = default;
};

// -v/--volume: [SRC:]DST[:OPTS]. SRC starting with "/" is a bind of that host path, otherwise the
// name of a volume (validated). A SRC starting with "." ("." "./x" "../x") is a host path relative
// to base_dir, as docker's CLI resolves it against its working directory (compose passes the
// project directory); with an empty base_dir it is refused as an invalid volume name, which is what
// docker's daemon says. OPTS is a comma list of at most one each of: ro|rw, z|Z, a propagation mode
// (binds only), nocopy (volumes only), consistent|cached|delegated.
// Errors (berth::Error, EINVAL) are one line naming the value, in docker's words:
//   invalid volume specification: '/a:/b:/c:/d'
//   invalid volume specification: '/a:/b:xx': invalid mode: xx
//   invalid volume specification: 'v:d': invalid mount config for type "volume": invalid mount path: 'd' mount
//   path must be absolute
//   create data/x: "data/x" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are
//   allowed. If you intended to pass a host directory, use absolute path
MountSpec parse_volume_flag(std::string_view value, std::string_view base_dir = {});

// --mount: docker's CSV (quoted fields allowed) of key=value with keys type, source|src,
// target|destination|dst, readonly|ro, bind-propagation, bind-recursive, bind-nonrecursive,
// bind-create-src, volume-nocopy, volume-subpath, volume-driver, volume-opt, volume-label,
// tmpfs-size, tmpfs-mode, consistency. Keys are case-insensitive; readonly, ro, volume-nocopy,
// bind-nonrecursive and bind-create-src may stand alone (=true) or take true|1|false|0. The type
// defaults to volume; npipe, cluster and image are docker types berth does not support. A relative
// bind source is resolved against base_dir as in parse_volume_flag. Errors read like docker's CLI:
//   invalid argument "foo=bar,dst=/x" for "--mount" flag: unexpected key 'foo' in 'foo=bar'
MountSpec parse_mount_flag(std::string_view value, std::string_view base_dir = {});

// --tmpfs: DST[:OPTS] with OPTS a comma list of size=<RAMInBytes>, mode=<octal>, uid=<n>, gid=<n>,
// nr_inodes=, nr_blocks=, mpol=, ro|rw, a propagation mode and the mount flags docker accepts for a
// tmpfs (exec|noexec, suid|nosuid, dev|nodev, sync|async, dirsync, [no]atime, [no]diratime,
// [no]relatime, [no]strictatime, [no]mand, defaults). Errors:
//   invalid argument "/x:foo" for "--tmpfs" flag: invalid tmpfs option 'foo'
MountSpec parse_tmpfs_flag(std::string_view value);

// The local volume driver's rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+, and at most 255 bytes (berth keeps
// each volume in a directory named after it). Throws, in docker's words:
//   create a: volume name is too short, names should be at least two alphanumeric characters
//   create a/b: "a/b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are
//   allowed. If you intended to pass a host directory, use absolute path
void validate_volume_name(std::string_view name);

// Throws "Duplicate mount point: /data" when two specs share a target (compared cleaned).
void check_duplicate_targets(const std::vector<MountSpec>& specs);

// docker's units.RAMInBytes: a decimal number, optionally with a fraction, an optional space and
// an optional binary unit k|m|g|t|p (case-insensitive, optionally followed by "b" or "ib"), or "b":
// "100", "64m", "1.5g", "512 KiB". The result is truncated to whole bytes. Throws
// "invalid size: '<text>'" for anything else, including negative numbers and values over INT64_MAX.
int64_t parse_ram_size(std::string_view text);

// Go's path.Clean: one slash between elements, no "." elements, ".." removes the element before
// it, "/.." is "/", no trailing slash except for "/" itself, "" is ".".
std::string clean_path(std::string_view path);

}  // namespace berth::storage
