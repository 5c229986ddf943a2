// Per-container runtime state under --root: <root>/<id>/{state.json,exec.fifo}.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/cgroups.hpp"
#include "util/fd.hpp"

namespace berth::runtime {

enum class Status { Creating, Created, Running, Paused, Stopped };
const char* status_name(Status s);

struct ContainerState {
  std::string id;
  std::string bundle;
  std::string rootfs;
  pid_t pid = 0;
  uint64_t pid_start_time = 0;  // /proc/<pid>/stat field 22: tells a reused pid apart
  std::string created;          // RFC 3339, UTC
  std::string owner;
  std::string cgroup_path;
  nlohmann::json cgroup_layout;  // the hierarchies (rebased for a relative cgroupsPath) at create
  nlohmann::json config;         // the config.json the container was created from

  nlohmann::json to_json() const;
  static ContainerState from_json(const nlohmann::json& j);
};

// Container ids as runc accepts them: [A-Za-z0-9_+.-]+, not "." or "..".
// Container ids are runc's ([A-Za-z0-9_+.-]+), except that they may not start with "." (the
// runtime's own entries under its root do, and `list` skips them).
void validate_container_id(const std::string& id);

// Under the runtime's root: compiled seccomp filters (not a container).
inline constexpr const char* kSeccompCacheDir = ".seccomp-cache";

class StateStore {
 public:
  explicit StateStore(std::string root);

  const std::string& root() const { return root_; }
  std::string dir(const std::string& id) const;
  std::string fifo_path(const std::string& id) const;

  // Creates <root>/<id>; throws "container with id exists: <id>" when taken.
  void create_dir(const std::string& id);
  bool exists(const std::string& id) const;
  // Throws "container does not exist: <id>" (errnum ENOENT) when missing.
  ContainerState load(const std::string& id) const;
  // The final record, written once when create has finished.
  void save(const ContainerState& state) const;
  // Create's intent (intent.json) and, once known, init's pid (init.pid): new
  // files, never replaced — a rename over an existing file makes ext4 flush.
  void save_intent(const ContainerState& state) const;
  void save_init_pid(const std::string& id, pid_t pid, uint64_t start_time) const;
  void remove(const std::string& id) const;
  std::vector<std::string> list() const;

  // An exclusive flock on the container directory, held for one operation.
  UniqueFd lock(const std::string& id) const;
  // The same without waiting: an invalid fd when someone else holds it.
  UniqueFd try_lock(const std::string& id) const;

 private:
  std::string root_;
};

// The container's cgroup as recorded at create time.
Cgroup state_cgroup(const ContainerState& state);
nlohmann::json cgroup_layout_to_json(const CgroupLayout& layout);
CgroupLayout cgroup_layout_from_json(const nlohmann::json& j);

// The status as the kernel and the state dir show it now.
Status current_status(const StateStore& store, const ContainerState& state);

// Whether pid is alive and is the same process (start time matches); zombies count as dead.
bool process_alive(pid_t pid, uint64_t start_time);
uint64_t process_start_time(pid_t pid);

// OCI state JSON (id, status, pid, bundle, annotations …) as `state` prints it.
nlohmann::json oci_state_json(const ContainerState& state, Status status);

std::string rfc3339_now();

}  // namespace berth::runtime
