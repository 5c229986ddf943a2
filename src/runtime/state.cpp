#include "runtime/state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <ctime>

#include "runtime/cgroups.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/time_text.hpp"

namespace berth::runtime {

const char* status_name(Status s) {
  switch (s) {
    case Status::Creating:
      return "creating";
    case Status::Created:
      return "created";
    case Status::Running:
      return "running";
    case Status::Paused:
      return "paused";
    case Status::Stopped:
      return "stopped";
  }
  return "unknown";
}

nlohmann::json ContainerState::to_json() const {
  return {{"id", id},
          {"bundle", bundle},
          {"rootfs", rootfs},
          {"pid", pid},
          {"pid_start_time", pid_start_time},
          {"created", created},
          {"owner", owner},
          {"cgroup_path", cgroup_path},
          {"cgroup_layout", cgroup_layout},
          {"config", config}};
}

ContainerState ContainerState::from_json(const nlohmann::json& j) {
  ContainerState s;
  s.id = j.at("id").get<std::string>();
  s.bundle = j.value("bundle", "");
  s.rootfs = j.value("rootfs", "");
  s.pid = j.value("pid", 0);
  s.pid_start_time = j.value("pid_start_time", uint64_t{0});
  s.created = j.value("created", "");
  s.owner = j.value("owner", "");
  s.cgroup_path = j.value("cgroup_path", "");
  if (j.contains("config")) s.config = j.at("config");
  if (j.contains("cgroup_layout")) s.cgroup_layout = j.at("cgroup_layout");
  return s;
}

void validate_container_id(const std::string& id) {
  if (id.empty()) throw Error("container id cannot be empty");
  if (id[0] == '.') throw Error("invalid container id: " + id + " (may not start with \".\")");
  if (id.size() > 1024) throw Error("invalid container id: too long");
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
              c == '-' || c == '.';
    if (!ok) throw Error("invalid container id: " + id);
  }
}

StateStore::StateStore(std::string root) : root_(std::move(root)) {}

std::string StateStore::dir(const std::string& id) const { return path_join(root_, id); }
std::string StateStore::fifo_path(const std::string& id) const { return path_join(dir(id), "exec.fifo"); }

void StateStore::create_dir(const std::string& id) {
  mkdir_p(root_, 0711);
  if (::mkdir(dir(id).c_str(), 0711) != 0) {
    if (errno == EEXIST) throw Error("container with id exists: " + id, EEXIST);
    throw_errno("mkdir " + dir(id));
  }
}

bool StateStore::exists(const std::string& id) const { return path_exists(dir(id)); }

ContainerState StateStore::load(const std::string& id) const {
  validate_container_id(id);
  auto text = read_file_if_exists(path_join(dir(id), "state.json"));
  if (!text) {
    if (!path_exists(dir(id))) throw Error("container does not exist: " + id, ENOENT);
    // Create still running, or killed midway: what it recorded so far.
    ContainerState s;
    s.id = id;
    if (auto intent = read_file_if_exists(path_join(dir(id), "intent.json"))) {
      try {
        s = ContainerState::from_json(nlohmann::json::parse(*intent));
      } catch (const nlohmann::json::exception&) {
        // Torn by a kill mid-write: nothing was made from it yet.
      }
    }
    if (auto pid = read_file_if_exists(path_join(dir(id), "init.pid"))) {
      // "<pid> <start time>" (parsed without sscanf: the shim links this file and counts its bytes).
      unsigned long long p = 0, start = 0;
      const char* end = pid->data() + pid->size();
      auto [mid, ec1] = std::from_chars(pid->data(), end, p);
      while (mid < end && *mid == ' ') ++mid;
      auto [last, ec2] = std::from_chars(mid, end, start);
      if (ec1 == std::errc() && ec2 == std::errc() && last > mid) {
        s.pid = static_cast<pid_t>(p);
        s.pid_start_time = start;
      }
    }
    s.created.clear();
    return s;
  }
  try {
    return ContainerState::from_json(nlohmann::json::parse(*text));
  } catch (const nlohmann::json::exception& e) {
    throw Error("state of container " + id + " is corrupt: " + e.what());
  }
}

void StateStore::save(const ContainerState& state) const {
  write_file_atomic(path_join(dir(state.id), "state.json"), state.to_json().dump(), 0600);
}

void StateStore::save_intent(const ContainerState& state) const {
  write_file_atomic(path_join(dir(state.id), "intent.json"), state.to_json().dump(), 0600);
}

void StateStore::save_init_pid(const std::string& id, pid_t pid, uint64_t start_time) const {
  write_file_atomic(path_join(dir(id), "init.pid"), std::to_string(pid) + " " + std::to_string(start_time), 0600);
}

void StateStore::remove(const std::string& id) const { remove_tree(dir(id)); }

std::vector<std::string> StateStore::list() const {
  std::vector<std::string> out;
  DIR* d = ::opendir(root_.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    throw_errno("opendir " + root_);
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name[0] == '.') continue;  // ".", "..", and the runtime's own (kSeccompCacheDir)
    // Where earlier builds kept the seccomp cache: not a container.
    if (name == "seccomp-cache" && !path_exists(path_join(dir(name), "state.json")) &&
        !path_exists(path_join(dir(name), "intent.json")))
      continue;
    if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

UniqueFd StateStore::lock(const std::string& id) const {
  UniqueFd fd = open_or_throw(dir(id), O_RDONLY | O_DIRECTORY);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) throw_errno("lock container " + id);
  }
  return fd;
}

UniqueFd StateStore::try_lock(const std::string& id) const {
  UniqueFd fd = open_or_throw(dir(id), O_RDONLY | O_DIRECTORY);
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return UniqueFd();
    if (errno != EINTR) throw_errno("lock container " + id);
  }
  return fd;
}

uint64_t process_start_time(pid_t pid) {
  auto text = read_file_if_exists("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return 0;
  // The command name may contain spaces and ')'; fields resume after the last ')'.
  auto close = text->rfind(')');
  if (close == std::string::npos) return 0;
  std::string rest = text->substr(close + 2);
  // rest starts at field 3 (state); start time is field 22.
  size_t pos = 0;
  for (int field = 3; field < 22; ++field) {
    pos = rest.find(' ', pos);
    if (pos == std::string::npos) return 0;
    ++pos;
  }
  return std::strtoull(rest.c_str() + pos, nullptr, 10);
}

static char process_state_char(pid_t pid) {
  auto text = read_file_if_exists("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return 0;
  auto close = text->rfind(')');
  if (close == std::string::npos || close + 2 >= text->size()) return 0;
  return (*text)[close + 2];
}

bool process_alive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  char st = process_state_char(pid);
  if (st == 0 || st == 'Z' || st == 'X') return false;
  return start_time == 0 || process_start_time(pid) == start_time;
}

nlohmann::json cgroup_layout_to_json(const CgroupLayout& layout) {
  return {{"unified", layout.unified}, {"unified_mount", layout.unified_mount}, {"v1_mounts", layout.v1_mounts}};
}

CgroupLayout cgroup_layout_from_json(const nlohmann::json& j) {
  CgroupLayout l;
  l.unified = j.value("unified", false);
  l.unified_mount = j.value("unified_mount", "");
  if (j.contains("v1_mounts")) l.v1_mounts = j.at("v1_mounts").get<std::map<std::string, std::string>>();
  return l;
}

Cgroup state_cgroup(const ContainerState& state) {
  CgroupLayout layout =
      state.cgroup_layout.is_object() ? cgroup_layout_from_json(state.cgroup_layout) : CgroupLayout::detect();
  return Cgroup(layout, state.cgroup_path);
}

Status current_status(const StateStore& store, const ContainerState& state) {
  // No creation time yet: create has not finished (or was killed midway).
  if (state.created.empty()) return Status::Creating;
  if (state.pid == 0) return Status::Stopped;
  if (!process_alive(state.pid, state.pid_start_time)) return Status::Stopped;
  if (!state.cgroup_path.empty()) {
    try {
      if (state_cgroup(state).frozen()) return Status::Paused;
    } catch (const Error&) {
      // No freezer reachable: the container cannot be paused.
    }
  }
  if (path_exists(store.fifo_path(state.id))) return Status::Created;
  return Status::Running;
}

nlohmann::json oci_state_json(const ContainerState& state, Status status) {
  nlohmann::json j = {
      {"ociVersion", "1.0.2"},         {"id", state.id},         {"pid", status == Status::Stopped ? 0 : state.pid},
      {"status", status_name(status)}, {"bundle", state.bundle}, {"rootfs", state.rootfs},
      {"created", state.created},      {"owner", state.owner},
  };
  if (state.config.is_object() && state.config.contains("annotations")) j["annotations"] = state.config["annotations"];
  return j;
}

std::string rfc3339_now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return rfc3339_utc(int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec, Fraction::Nine);
}

}  // namespace berth::runtime
