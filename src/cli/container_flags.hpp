// `berth create` / `berth run` flags → docker's ContainerCreate body
// {"Name", "Config", "HostConfig", "NetworkingConfig"}, with docker's field names and JSON types,
// validated as docker's CLI (and, where the CLI leaves it to the daemon, as dockerd) validates
// them, so a bad flag fails with docker's one-line message before anything is created.
// Pure except for reading --env-file/--label-file/--security-opt seccomp=FILE and the process
// environment (-e NAME copies NAME's value).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/flags.hpp"

namespace berth::cli {

// Flags of `berth create` (run=false) and `berth run` (run=true adds -d/--detach, --sig-proxy,
// --detach-keys; --rm is in both).
std::vector<FlagSpec> container_create_flags(bool run);

// args: parse_args(..., interspersed=false) over container_create_flags(run); positionals are
// IMAGE [COMMAND [ARG...]]. cwd resolves relative bind sources ("./data:/data"). Throws
// UsageError (exit 125) naming the bad value.
nlohmann::json create_body_from_flags(const ParsedArgs& args, bool run, const std::string& cwd);

// Flags of `berth update` and docker's ContainerUpdate body from them (only what was given).
std::vector<FlagSpec> container_update_flags();
nlohmann::json update_body_from_flags(const ParsedArgs& args);

// Pieces, exposed for the API server and compose (same rules, same messages).

// util/docker_syntax.hpp's parsers with their errors as UsageError (exit 125): Go's
// time.ParseDuration → nanoseconds (`time: invalid duration "x"`, `time: missing unit in duration
// "5"`…), --cpus → nanoCPUs ("failed to parse x as a rational number" / "value is too precise") and
// --restart → {"Name","MaximumRetryCount"}.
int64_t parse_go_duration(std::string_view text);
int64_t parse_nano_cpus(std::string_view text);
nlohmann::json parse_restart_policy(std::string_view text);

// --ulimit NAME=SOFT[:HARD] → {"Name","Soft","Hard"}.
nlohmann::json parse_ulimit(std::string_view text);

// -p/--publish specs: adds "80/tcp" keys to exposed (an object) and bindings
// {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} to port_bindings.
void parse_publish(std::string_view spec, nlohmann::json& exposed, nlohmann::json& port_bindings);

// docker's env/label file format: KEY=VALUE lines, '#' comments, blank lines; a bare KEY takes its
// value from the environment (env files) or is kept as is (label files, lookup_env=false).
std::vector<std::string> read_kv_file(const std::string& path, bool lookup_env);

}  // namespace berth::cli
