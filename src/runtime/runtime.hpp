// berth's OCI runtime: the runc-compatible operations behind `berth runtime`.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/spec.hpp"

namespace berth::runtime {

struct GlobalOptions {
  std::string root = "/run/berth-runtime";
  bool systemd_cgroup = false;
};

struct CreateOptions {
  std::string id;
  std::string bundle = ".";
  std::string pid_file;
  std::string console_socket;
  bool no_pivot = false;
  int preserve_fds = 0;
};

struct ExecOptions {
  std::string id;
  std::string process_file;  // --process
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd;
  std::string user;  // uid[:gid]
  std::vector<uint32_t> additional_gids;
  std::vector<std::string> caps;
  bool tty = false;
  bool detach = false;
  bool no_new_privs = false;
  std::string console_socket;
  std::string pid_file;
  std::string apparmor;
  std::string process_label;
  int preserve_fds = 0;
  bool ignore_paused = false;
};

void create_container(const GlobalOptions& g, const CreateOptions& o);
// create + start + wait; returns the exit code (128+signal when killed).
int run_container(const GlobalOptions& g, const CreateOptions& o, bool detach, bool keep);
void start_container(const GlobalOptions& g, const std::string& id);
nlohmann::json container_state(const GlobalOptions& g, const std::string& id);
void kill_container(const GlobalOptions& g, const std::string& id, int signal, bool all);
void delete_container(const GlobalOptions& g, const std::string& id, bool force);
nlohmann::json list_containers(const GlobalOptions& g);
std::vector<pid_t> container_pids(const GlobalOptions& g, const std::string& id);
void pause_container(const GlobalOptions& g, const std::string& id);
void resume_container(const GlobalOptions& g, const std::string& id);
int exec_in_container(const GlobalOptions& g, const ExecOptions& o);
void update_container(const GlobalOptions& g, const std::string& id, const Resources& resources);
nlohmann::json runtime_features();

// "KILL", "SIGKILL", "9" → 9; throws on anything else.
int parse_signal(const std::string& text);

// Re-executes the running binary from a sealed memfd copy, so nothing in a
// container can ever write to the host's berth binary (CVE-2019-5736).
void ensure_sealed_self(char** argv);

// An O_PATH descriptor of the binary at path, seen through a read-only bind mount made in a
// throwaway mount namespace: a process exec'ed from it (execveat, AT_EMPTY_PATH) cannot write its
// own binary, and ensure_sealed_self then has nothing to do. -1 when that is not possible; the
// caller owns the descriptor (close-on-exec).
int open_read_only_view(const std::string& path);

// The argv to re-execute with (main's own, before any command was stripped).
void set_reexec_argv(char** argv);

// `berth runtime …` command line; returns the process exit code.
int runtime_main(int argc, char** argv);

}  // namespace berth::runtime
