// compose ↔ Kubernetes without an engine: the objects `compose kube` writes for a project loaded
// from a compose document, and the compose project `kube play` builds from Kubernetes objects
// (kube_plan writes nothing; its errors name the object and field).
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "compose/kube.hpp"
#include "compose/model.hpp"
#include "compose/yaml.hpp"
#include "util/error.hpp"

using berth::Error;
using nlohmann::json;
using namespace berth::compose;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

Project project_of(const std::string& yaml_text) {
  LoadOptions o;
  o.project_name = "shop";
  return load_document(yaml_to_json(yaml_text, "compose.yaml"), "compose.yaml", "/tmp", o);
}

const json* find(const std::vector<json>& objects, const std::string& kind, const std::string& name) {
  for (const auto& o : objects)
    if (o["kind"] == kind && o["metadata"]["name"] == name) return &o;
  return nullptr;
}

KubePlan plan_of(const std::string& yaml_text, const std::string& project = "") {
  std::vector<KubeDocument> documents;
  for (auto& d : yaml_documents(yaml_text, "/tmp/app.yaml")) documents.push_back({std::move(d), "/tmp/app.yaml"});
  return kube_plan(documents, project, "/var/lib/berth/kube", [](const std::string&) {});
}

}  // namespace

TEST(ComposeKube, ServicesBecomeWorkloadsAndServices) {
  std::vector<std::string> warnings;
  Project p = project_of(R"(
services:
  db:
    image: postgres
    volumes: ["data:/var/lib/postgresql/data"]
    ulimits: {nofile: 1024}
  web:
    image: nginx
    ports: ["8080:80"]
    environment: {DB_URL: "postgres://db:5432/shop"}
    deploy: {replicas: 2, resources: {limits: {cpus: "0.5", memory: 256M}}}
    volumes: ["static:/srv", {type: tmpfs, target: /cache, tmpfs: {size: 64m}}]
  worker:
    image: busybox
    volumes: ["static:/srv:ro"]
volumes: {data: {}, static: {}}
)");
  auto objects = kube_manifests(p, [&](const std::string& w) { warnings.push_back(w); });
  // db alone uses "data" with one replica: a StatefulSet owning its claim, and a Service found
  // from web's DB_URL.
  const json* db = find(objects, "StatefulSet", "db");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ((*db)["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data");
  EXPECT_EQ((*db)["spec"]["serviceName"], "db");
  const json* db_service = find(objects, "Service", "db");
  ASSERT_NE(db_service, nullptr);
  EXPECT_EQ((*db_service)["spec"]["ports"][0]["port"], 5432);
  // "static" is shared: a ReadWriteMany claim; web is a Deployment of 2 with limits.
  const json* claim = find(objects, "PersistentVolumeClaim", "static");
  ASSERT_NE(claim, nullptr);
  EXPECT_EQ((*claim)["spec"]["accessModes"][0], "ReadWriteMany");
  const json* web = find(objects, "Deployment", "web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ((*web)["spec"]["replicas"], 2);
  const json& container = (*web)["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(container["resources"]["limits"]["cpu"], "500m");
  EXPECT_EQ(container["resources"]["limits"]["memory"], "256Mi");
  EXPECT_EQ(container["ports"][0]["containerPort"], 80);
  EXPECT_EQ(container["ports"][0]["hostPort"], 8080);
  const json& volumes = (*web)["spec"]["template"]["spec"]["volumes"];
  bool memory = false;
  for (const auto& v : volumes)
    if (v.contains("emptyDir")) memory = v["emptyDir"]["medium"] == "Memory" && v["emptyDir"]["sizeLimit"] == "64Mi";
  EXPECT_TRUE(memory) << volumes.dump();
  EXPECT_EQ((*web)["spec"]["selector"]["matchLabels"], (*web)["spec"]["template"]["metadata"]["labels"]);
  // Nothing reaches worker: no Service. ulimits is named in a warning.
  EXPECT_EQ(find(objects, "Service", "worker"), nullptr);
  bool warned = false;
  for (const auto& w : warnings) warned = warned || w == "service db: ulimits has no Kubernetes equivalent; left out";
  EXPECT_TRUE(warned);
}

TEST(ComposeKube, PlayBuildsTheComposeProject) {
  KubePlan plan = plan_of(R"(
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: production, app.conf: "listen 80\n"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: aHVudGVyMg==}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app.kubernetes.io/part-of: shop}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx
          envFrom: [{configMapRef: {name: settings}}]
          env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}]
          ports: [{containerPort: 80, hostPort: 8080}]
          resources: {limits: {cpu: 250m, memory: 128Mi}}
          volumeMounts: [{name: conf, mountPath: /etc/app}, {name: data, mountPath: /data}]
      volumes:
        - {name: conf, configMap: {name: settings, items: [{key: app.conf, path: app.conf}]}}
        - {name: data, persistentVolumeClaim: {claimName: web-data}}
---
apiVersion: v1
kind: Service
metadata: {name: frontend}
spec: {selector: {app: web}, ports: [{port: 80}]}
)");
  EXPECT_EQ(plan.project.name, "shop");  // from the part-of label
  const json& web = plan.project.service("web");
  EXPECT_EQ(web["scale"], 3);
  EXPECT_EQ(web["environment"]["MODE"], "production");
  EXPECT_EQ(web["environment"]["PASSWORD"], "hunter2");
  EXPECT_EQ(web["ports"][0]["published"], "8080");
  EXPECT_EQ(web["mem_limit"], 128 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(web["cpus"].get<double>(), 0.25);
  EXPECT_EQ(web["networks"]["default"]["aliases"], json::array({"frontend"}));
  EXPECT_EQ(plan.project.model["volumes"]["web-data"]["name"], "shop_web-data");
  ASSERT_EQ(plan.files.size(), 1u);
  EXPECT_EQ(plan.files[0].path, "/var/lib/berth/kube/shop/web/conf/app.conf");
  EXPECT_EQ(plan.files[0].content, "listen 80\n");
  bool conf_mounted = false;
  for (const auto& v : web["volumes"])
    conf_mounted = conf_mounted || (v["type"] == "bind" && v["source"] == "/var/lib/berth/kube/shop/web/conf" &&
                                    v["target"] == "/etc/app" && v.value("read_only", false));
  EXPECT_TRUE(conf_mounted) << web["volumes"].dump();
}

TEST(ComposeKube, PlayStatefulSetReplicasHaveTheirOwnClaims) {
  KubePlan plan = plan_of(R"(
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres, volumeMounts: [{name: data, mountPath: /data}]}]
  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce]}}]
)",
                          "p");
  EXPECT_TRUE(plan.project.has_service("db-0"));
  EXPECT_TRUE(plan.project.has_service("db-1"));
  EXPECT_EQ(plan.project.service("db-1")["hostname"], "db-1");
  EXPECT_EQ(plan.project.model["volumes"]["data-db-1"]["name"], "p_data-db-1");
}

TEST(ComposeKube, PlayErrorsNameTheObjectAndField) {
  EXPECT_EQ(error_of([] {
              plan_of(
                  "kind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {a: b}}\n"
                  "  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: web}]}}\n",
                  "p");
            }),
            "/tmp/app.yaml: Deployment web: containers.web.image: required");
  EXPECT_EQ(error_of([] {
              plan_of(
                  "kind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {a: b}}\n"
                  "  template: {metadata: {labels: {a: c}}, spec: {containers: [{name: web, image: x}]}}\n",
                  "p");
            }),
            "/tmp/app.yaml: Deployment web: spec.selector.matchLabels a=b does not match the template's labels");
  EXPECT_EQ(error_of([] {
              plan_of(
                  "kind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: x, envFrom: "
                  "[{configMapRef: {name: nope}}]}]\n",
                  "p");
            }),
            "/tmp/app.yaml: Pod web: containers.web.envFrom: ConfigMap nope not found");
  EXPECT_EQ(error_of([] {
              plan_of(
                  "kind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: x}]\n  volumes: "
                  "[{name: n, nfs: {server: s, path: /}}]\n",
                  "p");
            }),
            "/tmp/app.yaml: Pod web: spec.volumes.n: volume type nfs is not supported by kube play");
  EXPECT_EQ(error_of([] { plan_of("kind: ConfigMap\nmetadata: {name: c}\n", "p"); }),
            "/tmp/app.yaml: no Pod, Deployment or StatefulSet to run");
}
