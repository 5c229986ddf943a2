// The container engine: containers as rows in state.db plus a directory each, started under a
// berth-shim (which stays their parent), never a daemon. Every command folds what the shims
// recorded (status files) into the database when it looks at a container.
//
// On disk, under the data root:
//   containers/<id>/config.json   the OCI spec (the bundle is this directory)
//   containers/<id>/rootfs        overlay of the image's layers + upper/ (+ work/)
//   containers/<id>/{hostname,hosts,resolv.conf}
//   containers/<id>/<id>-json.log the log (json-file, rotated)
//   containers/<id>/status.json   written by the shim
// and under the run directory (/run/berth, tmpfs: gone after a reboot, which is how a reboot is
// noticed): <id>/shim.lock, <id>/attach.sock, <id>/stop; runtime/ is berth-runtime's --root.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::image {
class ImageStore;
}
namespace berth::sql {
class Db;
}

namespace berth::engine {

class VolumeStore;
class NetworkStore;
struct EndpointRequest;

// An error with the exit status docker's CLI gives it: 125 (the engine failed), 126 (the command
// could not be invoked), 127 (the command was not found), 1 for daemon-side errors of other commands.
class StatusError : public Error {
 public:
  StatusError(const std::string& message, int status) : Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// "No such container: x" (docker's words).
class NotFound : public Error {
 public:
  using Error::Error;
};

struct Container {
  std::string id, name, image_id, image_name, state;
  int64_t created_ns = 0;
  nlohmann::json config;  // {"Config":…,"HostConfig":…}
  nlohmann::json mounts;  // docker inspect's Mounts[]
  int pid = 0;
  int exit_code = 0;
  std::string started_at, finished_at, error;
  int restart_count = 0;
  int64_t log_dropped = 0;
  nlohmann::json health;  // docker's State.Health from the shim's status.json (null: none); not in the DB

  bool running() const { return state == "running" || state == "paused" || state == "restarting"; }
  // HostConfig.AutoRemove (--rm): removed when it exits, its writable layer never written back.
  bool auto_remove() const;
};

struct StartOptions {
  // Foreground: the shim waits for attach() before starting the process, so nothing is missed.
  bool wait_attach = false;
  // Called once the shim reports the container created, before start records it running: a
  // foreground run connects its attach here (attach_connect), so the shim starts the process
  // while the engine commits instead of after.
  std::function<void()> on_created;
};

// What attach() connects: which local fds get the container's streams.
struct AttachIo {
  int stdin_fd = -1;  // -1: no stdin
  int stdout_fd = 1;
  int stderr_fd = 2;
  bool tty = false;
  // Called with the signal number for each proxied signal (SIGINT, SIGTERM, …); may be empty.
  bool proxy_signals = false;
  // The API's non-tty attach: stdout and stderr as docker's 8-byte-header frames, on stdout_fd.
  bool multiplex = false;
  // When this fd hangs up (the API client went away), attach returns -1 at once.
  int hangup_fd = -1;
  // A socket from attach_connect: attach() uses it (and takes the container's full id as ref).
  int connected = -1;
};

class Engine {
 public:
  Engine(std::string root, image::ImageStore& images, VolumeStore& volumes);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const std::string& root() const { return root_; }
  std::string container_dir(const std::string& id) const;
  std::string state_dir(const std::string& id) const;
  std::string log_path(const std::string& id) const;

  // Finishes or undoes changes a crash interrupted (rows in creating/removing). Cheap when none.
  void reconcile();

  // Resolves a name, full ID or unique ID prefix; throws NotFound.
  Container get(const std::string& ref);
  std::vector<Container> list();
  // As list(), but each config holds only what a `ps` row reads (Config.Labels, .Healthcheck,
  // .Shell, HostConfig.NetworkMode, BerthNetworks, Args), extracted by SQLite: building every
  // container's whole stored document was most of `ps -a` with many containers.
  std::vector<Container> list_summaries();
  // Whether a row with this full ID exists in any state (also mid-create or mid-removal).
  bool exists(const std::string& id);

  // body: docker's ContainerCreate body, with "Name". Returns the new container's ID.
  std::string create(const nlohmann::json& body);
  void start(const std::string& id, const StartOptions& options = {});
  // Connects to a started container's attach socket and relays until it exits (or, when the shim
  // waits for it, starts it first). Returns the container's exit code.
  int attach(const std::string& id, const AttachIo& io);
  // attach()'s first half: connects to container id's shim and says what io wants (the shim
  // waiting for an attach starts the process now). Pass the socket to attach as io.connected.
  UniqueFd attach_connect(const std::string& id, const AttachIo& io);
  // start + attach of a foreground container (run, start -a): attached as soon as the shim has
  // created it, so the process starts while start records it running. Returns attach's code.
  int start_attached(const std::string& id, AttachIo io);
  // Sends the stop signal, waits up to timeout seconds (default: the container's StopTimeout or 10),
  // then SIGKILL.
  void stop(const std::string& id, std::optional<int> timeout = std::nullopt);
  // Sets the window size of a running container's terminal (through its shim).
  void resize(const std::string& id, int rows, int cols);
  void kill(const std::string& id, int signal);
  void remove(const std::string& id, bool force, bool volumes);
  // run --rm, attached: the container has exited. Waits (up to timeout) for its shim to end and
  // removes the container here, rather than waiting for the shim's exit command (`berth rm -v`)
  // to start and do it; whichever of the two comes second finds it gone.
  void remove_exited(const std::string& id, bool volumes, std::chrono::milliseconds timeout);
  // Tells the container's shim that this process will remove the container when it exits
  // (run --rm attached, the API's wait for removal): while the returned fd is open, the shim's
  // exit command waits, and it is skipped if the container is gone once the fd closes — a
  // client killed before removing releases it and the exit command runs. Invalid fd when
  // another process holds the claim.
  UniqueFd claim_removal(const std::string& id);
  // A pidfd of the container's shim while it runs (readable once the shim has ended: the
  // container exited, unless a restart policy keeps the shim), or an invalid fd.
  UniqueFd shim_pidfd(const std::string& id);
  // Blocks until the container is not running; returns its exit code.
  int wait(const std::string& id);
  void rename(const std::string& id, const std::string& new_name);
  // `berth system boot`: after reconciling, starts the containers whose restart policy says so
  // (always; unless-stopped unless stopped by the user). Returns their IDs.
  std::vector<std::string> boot();
  void pause(const std::string& id);
  void unpause(const std::string& id);
  // docker update: body is docker's ContainerUpdate body (resource limits and RestartPolicy).
  // Stored for later starts and applied at once to a running container (its cgroup through the
  // runtime, its restart policy through the shim); a failed live change leaves the old settings.
  // Returns docker's Warnings.
  std::vector<std::string> update(const std::string& id, const nlohmann::json& body);
  // network connect / disconnect: recorded in the container's config, and made in its network
  // namespace at once when it runs.
  void connect(const std::string& network, const std::string& container, const EndpointRequest& request);
  void disconnect(const std::string& network, const std::string& container, bool force);
  // Tears down the network of a container that is no longer running (the shim's exit command).
  void cleanup(const std::string& id);

  NetworkStore& networks();

  // Paths of berth's binaries, next to the running one.
  std::string runtime_path() const;
  std::string shim_path() const;
  std::string berth_path() const;
  std::string runtime_root() const;

  sql::Db& db();

 private:
  std::vector<Container> list_rows(bool summaries);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string root_;
};

// The networks a container is on, in order: BerthNetworks once network connect/disconnect changed
// them, else `mode` (its NetworkMode, as the caller normalised it) and NetworkingConfig's others.
std::vector<std::string> container_networks(const nlohmann::json& stored, const std::string& mode);

struct ExecRequest {
  std::vector<std::string> args, env;
  std::string user, workdir;
  bool tty = false, interactive = false, detach = false;
  // Where the process's stdio goes (the API server passes its client's socket and pipes).
  int in_fd = 0, out_fd = 1, err_fd = 2;
  // With tty: called with the terminal's master once the process runs (resize), before relaying.
  std::function<void(int master_fd)> on_terminal;
};

// Runs a process in the running container c with this process's stdio (a relayed pty with tty);
// returns its exit code (126/127 when it could not be run, as docker's exec).
int exec_in(Engine& engine, const Container& c, const ExecRequest& request);

// "TERM", "SIGTERM", "15", "RTMIN+3" → the number; throws Error("invalid signal: …").
int parse_signal_name(const std::string& text);

// docker's name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (a leading "/" is dropped).
void validate_container_name(const std::string& name);

}  // namespace berth::engine
