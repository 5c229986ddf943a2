// A compose project: its files read, interpolated, validated, merged and brought to one long form.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace berth::compose {

struct LoadOptions {
  std::vector<std::string> files;      // -f, in order; empty: COMPOSE_FILE or compose.yaml & co. found upwards
  std::string project_name;            // -p
  std::string project_directory;       // --project-directory (default: the first file's directory)
  std::vector<std::string> env_files;  // --env-file (default: <project dir>/.env when it exists)
  std::vector<std::string> profiles;   // --profile (default: COMPOSE_PROFILES)
  std::vector<std::string> services;   // services named on the command line: enabled whatever their profiles
  std::function<void(const std::string&)> warn;  // "WARN[0000] …" lines; may be empty
};

struct Project {
  std::string name;                       // normalised: [a-z0-9][a-z0-9_-]*
  std::string working_dir;                // absolute
  std::vector<std::string> config_files;  // absolute
  // The resolved model, as `compose config` prints it: "name", "services", "networks", "volumes";
  // every service in long form (see model.cpp), only enabled services, with "scale".
  nlohmann::json model;
  std::map<std::string, std::string> environment;  // what interpolation saw (.env under the process's)
  // `-p NAME` without a compose file: the project is what carries its labels (docker compose lets
  // down, ps, logs, stop, start and rm work that way); the model has no services.
  bool from_labels = false;
  // Per service, the variables its env_files set (folded into "environment" in the model; compose
  // kube makes a ConfigMap of them).
  std::map<std::string, std::map<std::string, std::string>> env_file_variables;

  const nlohmann::json& service(const std::string& name) const;
  bool has_service(const std::string& name) const;
  // Services in dependency order (a service after everything it depends on); throws on a cycle.
  std::vector<std::string> ordered_services() const;
  // The names given plus everything they depend on, in dependency order (all when names is empty).
  std::vector<std::string> with_dependencies(const std::vector<std::string>& names) const;
};

// Reads the project; throws berth::Error naming the file, the key and the value at fault.
Project load_project(const LoadOptions& options);

// A project from one compose document already in memory (no interpolation; `berth kube play`
// builds one from Kubernetes objects): the same validation, long form and checks as files get.
// source names the document in errors; relative bind sources are taken from working_dir.
Project load_document(const nlohmann::json& document, const std::string& source, const std::string& working_dir,
                      const LoadOptions& options);

// The project `name` as its labels describe it (from_labels); throws on an invalid name.
Project project_from_labels(const std::string& name);

// docker compose's rule for a project name from a directory: lower case, [a-z0-9_-] kept.
std::string normalize_project_name(const std::string& text);

// A scalar as compose reads it into a string field (8080 → "8080", true → "true", null → "").
std::string scalar_text(const nlohmann::json& value);

// Go durations ("1m30s") as compose accepts them (a plain number is seconds) → nanoseconds.
int64_t compose_duration(const nlohmann::json& value, const std::string& where);

}  // namespace berth::compose
