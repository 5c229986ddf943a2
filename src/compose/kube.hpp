// The road to Kubernetes: `berth compose kube` writes a project as Kubernetes objects, and
// `berth kube play` runs Kubernetes objects on this machine as a compose project (so the same
// manifests can be tried locally). The mapping both ways is documented at the top of kube.cpp.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compose/compose.hpp"
#include "compose/model.hpp"

namespace berth::compose {

using Warn = std::function<void(const std::string&)>;

// The label that ties generated objects to their compose project (kube play reads it back).
inline constexpr const char* kPartOfLabel = "app.kubernetes.io/part-of";
// The label that selects a service's pods.
inline constexpr const char* kNameLabel = "app.kubernetes.io/name";

// `compose kube`: ConfigMaps, PersistentVolumeClaims, Services, then Deployments and StatefulSets,
// in the order `kubectl apply` wants them. What has no Kubernetes equivalent is reported by warn.
std::vector<nlohmann::json> kube_manifests(const Project& project, const Warn& warn);

// "<name>-<kind>.yaml" for `compose kube -o DIR`.
std::string kube_file_name(const nlohmann::json& object);

// A file that `kube play` writes for a ConfigMap or Secret volume (bind-mounted read-only).
struct KubeFile {
  std::string path;  // absolute
  std::string content;
  unsigned mode = 0644;
};

struct KubePlan {
  Project project;                        // the compose project that runs the objects
  std::vector<KubeFile> files;            // under files_root
  std::vector<std::string> create_files;  // hostPath FileOrCreate files that do not exist yet
  std::string files_root;
};

// An object read from a manifest file (errors and warnings name the file).
struct KubeDocument {
  nlohmann::json object;
  std::string file;
};

// `kube play`: documents are the objects read from the files (List objects are expanded).
// project_name: --project-name, else as kube_project_name finds it. files_root_base: where
// ConfigMap and Secret volumes are written (<base>/<project>/…). Throws Error naming the file,
// the object and the field at fault; nothing is created by this call.
KubePlan kube_plan(const std::vector<KubeDocument>& documents, const std::string& project_name,
                   const std::string& files_root_base, const Warn& warn);

// The project kube play runs the documents as: requested (--project-name), else the objects'
// app.kubernetes.io/part-of label when they agree, else the first file's stem, normalised.
std::string kube_project_name(const std::vector<KubeDocument>& documents, const std::string& requested);

// What a `kube play` of this project starts: every service, except init services of pods whose
// containers already run with this configuration (Kubernetes runs init containers when a pod
// starts, not on every apply; their exited containers still satisfy the pod's depends_on) and
// services scaled to 0 that have no containers, with their init services (a Deployment with
// replicas 0 creates nothing, not even its network). Services come in dependency order; empty when there is nothing to
// start.
std::vector<std::string> kube_services_to_up(Backend& backend, const Project& project);

// Creates the plan's FileOrCreate host files and writes (or updates in place) its files; files of the project's earlier
// plays that are no longer named are removed.
void write_kube_files(const KubePlan& plan);

// The label kube play puts on emptyDir volumes: `kube down` removes them (they are the pod's
// scratch space by definition); persistent volume claims stay unless asked.
inline constexpr const char* kEmptyDirLabel = "berth.kube.emptydir";

}  // namespace berth::compose
