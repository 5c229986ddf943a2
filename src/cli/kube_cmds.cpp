// `berth compose kube` (a project as Kubernetes manifests) and `berth kube play` / `kube down`
// (Kubernetes manifests run on this machine as a compose project); the mapping is in
// src/compose/kube.cpp and kube_play.cpp.
#include "cli/compose_cli.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli_util.hpp"
#include "cli/context.hpp"
#include "cli/handlers.hpp"
#include "compose/compose.hpp"
#include "compose/kube.hpp"
#include "compose/yaml.hpp"
#include "engine/engine.hpp"
#include "engine/volumes.hpp"
#include "image/reference.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::cli {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

void warn_line(const std::string& message) { std::cerr << "WARN " << message << "\n"; }

std::string read_all(std::istream& in) {
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The objects of FILE… ("-": stdin; a directory: its *.yaml, *.yml and *.json, by name).
std::vector<compose::KubeDocument> read_manifests(const std::vector<std::string>& paths) {
  std::vector<compose::KubeDocument> documents;
  auto add_file = [&](const std::string& path) {
    std::string content = path == "-" ? read_all(std::cin) : read_file(path);
    for (auto& d : compose::yaml_documents(content, path))
      if (!d.is_null()) documents.push_back({std::move(d), path});
  };
  for (const auto& path : paths) {
    std::error_code ec;
    if (path != "-" && fs::is_directory(path, ec)) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(path)) {
        std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      if (files.empty()) throw Error(path + ": no *.yaml, *.yml or *.json files in the directory");
      for (const auto& f : files) add_file(f);
    } else {
      add_file(path);
    }
  }
  return documents;
}

std::string files_base(Context& ctx) { return ctx.engine().root() + "/kube"; }

// The project's emptyDir volumes (scratch space by definition) and its ConfigMap/Secret files.
void remove_pod_scratch(Context& ctx, const std::string& project) {
  for (const auto& v : ctx.volumes().list()) {
    auto p = v.labels.find(compose::kProjectLabel);
    if (p == v.labels.end() || p->second != project || !v.labels.count(compose::kEmptyDirLabel)) continue;
    std::cerr << " Volume " << v.name << "  Removing\n";
    ctx.volumes().remove(v.name, false);
    std::cerr << " Volume " << v.name << "  Removed\n";
  }
  std::error_code ec;
  fs::remove_all(files_base(ctx) + "/" + project, ec);
}

}  // namespace

int compose_kube(const compose::LoadOptions& load_in, const Invocation& inv) {
  CommandHelp help{
      "berth compose kube [OPTIONS]",
      "Write Kubernetes manifests for the project",
      {{"output", 'o', true, "Write to a directory (one file per object), or to FILE.yaml; default: standard output",
        "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  compose::LoadOptions load = load_in;
  load.warn = [](const std::string& m) { std::cerr << "WARN[0000] " << m << "\n"; };
  compose::Project project = compose::load_project(load);
  auto objects = compose::kube_manifests(project, warn_line);
  std::string output = a.get("output");
  auto single = [&]() {
    std::string text;
    for (const auto& o : objects) text += "---\n" + compose::json_to_yaml(o);
    return text;
  };
  if (output.empty()) {
    std::cout << single();
    return 0;
  }
  auto write = [](const std::string& path, const std::string& text) {
    write_file_atomic(path, text);
    std::cerr << " Wrote " << path << "\n";
  };
  std::string ext = fs::path(output).extension().string();
  if (ext == ".yaml" || ext == ".yml") {
    write(output, single());
    return 0;
  }
  std::error_code ec;
  if (fs::exists(output, ec) && !fs::is_directory(output, ec))
    throw UsageError("-o " + output + ": not a directory (give a directory or a FILE.yaml)");
  fs::create_directories(output);
  for (const auto& o : objects)
    write((fs::path(output) / compose::kube_file_name(o)).string(), compose::json_to_yaml(o));
  return 0;
}

int cmd_kube_play(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth kube play [OPTIONS] FILE|DIR [FILE|DIR...]",
                   "Run Pods, Deployments, StatefulSets and Services from Kubernetes YAML on this machine",
                   {{"project-name", 'p', true,
                     "Project name (default: the objects' app.kubernetes.io/part-of label, "
                     "else the file's name)",
                     "string"},
                    {"replace", 0, false, "Take down what the project runs first", ""}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  auto documents = read_manifests(a.positionals);
  compose::KubePlan plan = compose::kube_plan(documents, a.get("project-name"), files_base(ctx), warn_line);
  compose::Backend backend = compose_backend(ctx);
  if (a.has("replace")) compose::down(backend, compose::project_from_labels(plan.project.name), {});
  bool had_containers = !compose::project_containers(ctx.engine(), plan.project.name, {}).empty();
  compose::write_kube_files(plan);
  try {
    compose::UpOptions up;
    up.services = compose::kube_services_to_up(backend, plan.project);
    up.no_deps = true;  // what kube_services_to_up left out is either not wanted or already done
    if (!up.services.empty()) compose::up(backend, plan.project, up);
  } catch (...) {
    // up removed what it created; the files go too unless earlier plays' containers use them.
    if (!had_containers && compose::project_containers(ctx.engine(), plan.project.name, {}).empty()) {
      std::error_code ec;
      fs::remove_all(plan.files_root, ec);
    }
    throw;
  }
  return 0;
}

int cmd_kube_down(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth kube down [OPTIONS] FILE|DIR [FILE|DIR...]",
                   "Remove what `berth kube play` runs for the files",
                   {{"project-name", 'p', true, "Project name (as given to kube play)", "string"},
                    {"volumes", 'v', false, "Remove the volumes of the persistent volume claims too", ""},
                    {"force", 0, false, "Same as --volumes (podman's name)", ""},
                    {"timeout", 't', true, "Seconds to wait for each container to stop", "int"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 1, -1);
  auto documents = read_manifests(a.positionals);
  std::string name = compose::kube_project_name(documents, a.get("project-name"));
  compose::Project project = compose::project_from_labels(name);
  compose::DownOptions options;
  options.volumes = a.has("volumes") || a.has("force");
  if (a.has("timeout")) {
    try {
      options.timeout = std::stoi(a.get("timeout"));
    } catch (const std::exception&) {
      throw UsageError("invalid argument \"" + a.get("timeout") + "\" for \"-t, --timeout\" flag");
    }
  }
  compose::Backend backend = compose_backend(ctx);
  compose::down(backend, project, options);
  remove_pod_scratch(ctx, name);
  return 0;
}

}  // namespace berth::cli
