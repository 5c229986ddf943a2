// The steps of a container's life after create: start (open exec.fifo), state, kill, delete.
// Apart from container.cpp (create, exec, the container's own setup), so that the shim can link
// just these (it runs start and delete itself) without namespaces, mounts, seccomp or
// capabilities code in its binary and resident memory.
#include "runtime/lifecycle.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "runtime/cgroups.hpp"
#include "runtime/hooks.hpp"
#include "runtime/runtime.hpp"
#include "runtime/state.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

namespace berth::runtime {

bool wait_exit(pid_t pid, int timeout_ms) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH;
  UniqueFd owner(pidfd);
  struct pollfd pfd = {pidfd, POLLIN, 0};
  int n;
  while ((n = ::poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  return n > 0;
}

// Opens exec.fifo's read end and waits for init's byte: init then execs.
void signal_start(const StateStore& store, const ContainerState& state) {
  std::string fifo = store.fifo_path(state.id);
  UniqueFd fd(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) throw_errno("open " + fifo);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, state.pid, 0));
  UniqueFd pidfd_owner(pidfd);
  for (;;) {
    struct pollfd fds[2] = {{fd.get(), POLLIN, 0}, {pidfd, POLLIN, 0}};
    int n = ::poll(fds, pidfd >= 0 ? 2 : 1, 100);
    if (n < 0 && errno != EINTR) throw_errno("wait for container " + state.id + " to start");
    char byte;
    ssize_t r = ::read(fd.get(), &byte, 1);
    if (r == 1) break;
    if (pidfd >= 0 && (fds[1].revents & POLLIN)) throw Error("container init of " + state.id + " exited before start");
    if (!process_alive(state.pid, state.pid_start_time))
      throw Error("container init of " + state.id + " exited before start");
  }
  ::unlink(fifo.c_str());
  // Then EOF: init's write end closes at its execve (startContainer hooks ran before).
  for (;;) {
    struct pollfd pfd = {fd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 100) < 0 && errno != EINTR) break;
    char byte;
    ssize_t r = ::read(fd.get(), &byte, 1);
    if (r == 0) break;
    if (r < 0 && errno != EAGAIN && errno != EINTR) break;
    if (!process_alive(state.pid, state.pid_start_time)) break;
  }
}

void run_poststart(const ContainerState& state, const Hooks& hooks) {
  if (hooks.poststart.empty()) return;
  std::string json = oci_state_json(state, Status::Running).dump();
  run_hooks_warning(hooks.poststart, json, "poststart", state.bundle);
}

// hooks: the container's when the caller has its parsed config (else parsed from the state).
void cleanup_stopped(const StateStore& store, const ContainerState& state, const Hooks* hooks) {
  if (!state.cgroup_path.empty()) {
    Cgroup cg = state_cgroup(state);
    try {
      cg.thaw();
    } catch (...) {
    }
    cg.destroy();
  }
  if (hooks || state.config.is_object()) {
    try {
      std::optional<Hooks> parsed;
      if (!hooks) hooks = &parsed.emplace(parse_spec_hooks(state.config));
      if (!hooks->poststop.empty())
        run_hooks_warning(hooks->poststop, oci_state_json(state, Status::Stopped).dump(), "poststop", state.bundle);
    } catch (const Error& e) {
      log::warn(e.what());
    }
  }
  store.remove(state.id);
}

void kill_all(const ContainerState& state, int sig) {
  if (state.cgroup_path.empty()) return;
  Cgroup cg = state_cgroup(state);
  for (pid_t p : cg.pids()) ::kill(p, sig);
  if (sig == SIGKILL) {
    try {
      cg.thaw();  // frozen tasks can't die
    } catch (...) {
    }
  }
}

void start_container(const GlobalOptions& g, const std::string& id) {
  StateStore store(g.root);
  ContainerState state = store.load(id);
  UniqueFd lock = store.lock(id);
  Status st = current_status(store, state);
  if (st == Status::Stopped) throw Error("cannot start a container that has stopped");
  if (st != Status::Created) throw Error("cannot start an already running container");
  signal_start(store, state);
  run_poststart(state, parse_spec_hooks(state.config));
}

nlohmann::json container_state(const GlobalOptions& g, const std::string& id) {
  StateStore store(g.root);
  ContainerState state = store.load(id);
  return oci_state_json(state, current_status(store, state));
}

void kill_container(const GlobalOptions& g, const std::string& id, int sig, bool all) {
  StateStore store(g.root);
  ContainerState state = store.load(id);
  Status st = current_status(store, state);
  if (all) {
    kill_all(state, sig);
    return;
  }
  if (st == Status::Stopped || st == Status::Creating) throw Error("container not running");
  if (::kill(state.pid, sig) != 0) throw_errno("kill container " + id);
}

void delete_container(const GlobalOptions& g, const std::string& id, bool force) {
  StateStore store(g.root);
  ContainerState state;
  try {
    state = store.load(id);
  } catch (const Error& e) {
    if (force && e.errnum() == ENOENT) return;
    throw;
  }
  Status st = current_status(store, state);
  if ((st == Status::Running || st == Status::Paused) && !force)
    throw Error("cannot delete container " + id + " that is not stopped: " + status_name(st));
  if (st == Status::Creating) {
    // Either a create is still running (it holds the lock), or one was killed
    // midway: then finish its rollback from the recorded intent.
    UniqueFd lock = store.try_lock(id);
    if (!lock) throw Error("container " + id + " is being created; try again when create has finished");
    kill_all(state, SIGKILL);
    if (state.pid > 0 && process_alive(state.pid, state.pid_start_time)) {
      ::kill(state.pid, SIGKILL);
      wait_exit(state.pid, 10000);
    }
    if (!state.cgroup_path.empty()) state_cgroup(state).destroy();
    store.remove(id);
    return;
  }
  if (st != Status::Stopped) {
    kill_all(state, SIGKILL);
    if (state.pid > 0 && process_alive(state.pid, state.pid_start_time)) ::kill(state.pid, SIGKILL);
    if (state.pid > 0 && !wait_exit(state.pid, 10000)) throw Error("container " + id + " did not exit after SIGKILL");
  }
  cleanup_stopped(store, state);
}

nlohmann::json list_containers(const GlobalOptions& g) {
  StateStore store(g.root);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& id : store.list()) {
    try {
      ContainerState s = store.load(id);
      out.push_back(oci_state_json(s, current_status(store, s)));
    } catch (const Error&) {
      // A directory that is not a container (or vanished meanwhile).
    }
  }
  return out;
}

}  // namespace berth::runtime
