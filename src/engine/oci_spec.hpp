// The OCI runtime spec (config.json) of a container, built like moby's default spec from docker's
// create body (Config + HostConfig), the image's config and the mounts the engine resolved.
// Pure: the only I/O is reading /etc/passwd and /etc/group inside the given rootfs (resolved in
// the root, so a symlink there can't point at the host's files).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "storage/mount_spec.hpp"

namespace berth::engine {

// One resolved mount, made by the engine.
struct MountPlan {
  std::string destination;           // absolute container path
  std::string type;                  // "bind" | "tmpfs"
  std::string source;                // host path for binds; "tmpfs" for tmpfs
  std::vector<std::string> options;  // OCI options: "rbind"/"bind", "ro"/"rw", "rprivate"…, tmpfs "size=…"
};

// A device node to create in the container (--device, resolved by the engine from the host node).
struct DevicePlan {
  std::string path;  // container path
  std::string type;  // "c" | "b"
  int64_t major = 0;
  int64_t minor = 0;
  uint32_t file_mode = 0666;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string permissions = "rwm";  // cgroup access
};

struct SpecInput {
  std::string id;                 // container id (64 hex)
  nlohmann::json config;          // body["Config"], raw: merged with image_config here
  nlohmann::json host_config;     // body["HostConfig"]
  nlohmann::json image_config;    // the image's OCI config JSON as stored (its "config" member is used)
  std::string rootfs;             // absolute path of the mounted rootfs (for /etc/passwd, /etc/group)
  std::vector<MountPlan> mounts;  // user mounts (binds, volumes, tmpfs), in order
  std::vector<DevicePlan> devices;
  // Engine-written files bound at /etc/hosts, /etc/resolv.conf, /etc/hostname (skipped when empty).
  std::string hosts_path, resolv_conf_path, hostname_path;
  std::string init_path;     // host path of the init binary for --init
  std::string cgroups_path;  // linux.cgroupsPath; "" → "/berth/<id>"
  std::string netns_path;    // NetworkMode container:X → that container's /proc/PID/ns/net
  // CgroupnsMode when the body leaves it empty: dockerd's default is "private" on cgroup v2 and
  // "host" on v1.
  std::string default_cgroupns = "private";
  // Seccomp rule selection: the Go arch name of the host ("" = this build's arch) and the kernel
  // release ("" = new enough for every minKernel rule).
  std::string arch;
  std::string kernel_release;
};

// The container's process and identity after docker's merge of the image config.
struct EffectiveConfig {
  std::vector<std::string> entrypoint, cmd;  // merged; Entrypoint [""] (reset) comes out empty
  std::vector<std::string> args;             // entrypoint + cmd (without the --init prefix)
  std::vector<std::string> env;              // the process env: PATH, HOSTNAME, TERM, then Config.Env
  std::string cwd = "/";
  std::string user;
  std::string hostname, domainname;
  std::string stop_signal;
};

// docker's daemon-side merge (daemon/commit.go merge): fields the user left empty come from the
// image; Env, Labels, ExposedPorts and Volumes are unions with the user winning per key;
// --entrypoint drops the image's Cmd. Returns the Config the container is stored with.
nlohmann::json merge_config(const nlohmann::json& config, const nlohmann::json& image_config);

// Throws Error "no command specified" when there is nothing to run, and for a relative WorkingDir.
EffectiveConfig effective_config(const SpecInput& in);

// config.json for berth-runtime; root.path = "rootfs" (bundle-relative). Throws berth::Error for
// an unknown user/group/capability, a bad SecurityOpt, or --init without an init binary.
nlohmann::json build_oci_spec(const SpecInput& in);

// The memory, cpu, pids and blockIO members of linux.resources for a HostConfig, as
// build_oci_spec sets them (and `update` applies to a running container).
nlohmann::json resource_limits(const nlohmann::json& host_config);

// The memory+swap limit a HostConfig gives: MemorySwap, or twice Memory when only Memory is set
// (the daemon's default); 0 is none, -1 unlimited.
int64_t memory_swap_limit(const nlohmann::json& host_config);

// docker's capability set: the default 14 ± adds/drops (ALL, with or without CAP_, any case),
// or every capability when privileged. Throws Error `unknown capability: "CAP_X"`.
std::vector<std::string> effective_capabilities(const std::vector<std::string>& cap_add,
                                                const std::vector<std::string>& cap_drop, bool privileged);

// Every capability the spec knows, CAP_CHOWN … CAP_CHECKPOINT_RESTORE.
const std::vector<std::string>& all_capabilities();

// moby's seccomp profile format → OCI linux.seccomp for one arch (Go name: amd64, arm64…) and
// capability set; rules are kept or dropped by includes/excludes {caps, arches, minKernel}.
nlohmann::json seccomp_profile_to_oci(const nlohmann::json& profile, const std::vector<std::string>& caps,
                                      std::string_view go_arch, std::string_view kernel_release = {});

// docker's default profile (/work/shared/specs/seccomp-default.json, embedded at build time).
const nlohmann::json& default_seccomp_profile();

// The Go arch name of this build: "amd64", "arm64", …
std::string_view native_go_arch();

// The MountPlan of a parsed -v/--mount/--tmpfs, with moby's options: binds and volumes are
// "rbind" ("bind" for bind-nonrecursive), "ro" when read-only ("ro","rro" for
// bind-recursive=readonly; plain "ro" leaves submounts writable, docker's pre-v1.44 default), and their propagation
// (default rprivate); tmpfs gets noexec,nosuid,nodev,rprivate then the user's options (a later one of a kind wins: exec
// after noexec), size= and mode= (octal). host_source: the bind's host path or the volume's data directory (ignored for
// tmpfs).
MountPlan plan_mount(const storage::MountSpec& m, const std::string& host_source = {});

// Resolved process.user: uid, gid and additionalGids (primary gid first, as moby does).
struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string home = "/";
};

// docker's user[:group] against passwd/group text (pure). group_add: HostConfig.GroupAdd.
ResolvedUser resolve_user(std::string_view spec, std::string_view passwd_text, std::string_view group_text,
                          const std::vector<std::string>& group_add = {});

// docker's default masked and read-only /proc and /sys paths (none with --privileged or
// --security-opt systempaths=unconfined).
const std::vector<std::string>& default_masked_paths();
const std::vector<std::string>& default_readonly_paths();

}  // namespace berth::engine
