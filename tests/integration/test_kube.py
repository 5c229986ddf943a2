"""Kubernetes manifests, both ways (issue 7, section 3): `berth compose kube` writes a compose
project as Kubernetes objects, and `berth kube play` / `kube down` run Kubernetes YAML on this
machine as a compose project.

The generated manifests are checked against the official models of the Kubernetes Python client
(python3-kubernetes: every object deserializes with client-side validation on, and serializes back
to the same document, so no field is unknown to Kubernetes), against the references between
objects (selectors, volumes, claims, ConfigMaps, Services), and against the mapping of the example
and of a richer compose file. `kube play` runs the example's manifests through run-demo --kube, and
hand-written manifests exercise ConfigMaps, Secrets, replicas, Services, claims, hostPort,
NodePort, emptyDir, StatefulSets and idempotence. Bad input fails with one line naming the object
and field, and creates nothing. Everything runs in the test's own network namespace."""
from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from test_example import DEMO_CHECKS

from containertest import (  # noqa: F401 (fixtures)
    Engine, berth_wrapper, busybox_tar, engine, poll, project_objects, remove_objects, run_in_netns)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "frontend-backend"
EXAMPLE_PORT = "18090"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
PART_OF = "app.kubernetes.io/part-of"
NAME_LABEL = "app.kubernetes.io/name"

MODELS = {
    "Deployment": "V1Deployment",
    "StatefulSet": "V1StatefulSet",
    "Service": "V1Service",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "ConfigMap": "V1ConfigMap",
    "Secret": "V1Secret",
    "Pod": "V1Pod",
}



# ---------------------------------------------------------------- helpers


def docs_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def find(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d.get("kind") == kind and d.get("metadata", {}).get("name") == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} in {[(d.get('kind'), d['metadata']['name']) for d in docs]}"
    return found[0]


def kinds(docs: list[dict]) -> list[tuple[str, str]]:
    return sorted((d["kind"], d["metadata"]["name"]) for d in docs)


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload: dict) -> dict:
    cs = pod_spec(workload)["containers"]
    assert len(cs) == 1, cs
    return cs[0]


def pod_volume(workload: dict, name: str) -> dict:
    vols = [v for v in pod_spec(workload).get("volumes", []) if v["name"] == name]
    assert len(vols) == 1, f"volume {name} in {pod_spec(workload).get('volumes')}"
    return vols[0]


def mount_at(workload: dict, path: str) -> dict:
    ms = [m for m in container(workload).get("volumeMounts", []) if m["mountPath"] == path]
    assert len(ms) == 1, f"mount at {path} in {container(workload).get('volumeMounts')}"
    return ms[0]


def warn_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.startswith("WARN ")]


def error_lines(stderr: str) -> list[str]:
    """stderr without WARN lines and progress lines (" Container … Creating")."""
    return [l for l in stderr.splitlines() if l.strip() and not l.startswith("WARN") and not l.startswith(" ")]


def volume_names(engine: Engine, project: str) -> list[str]:
    out = engine.ok("volume", "ls", "--format", "{{.Name}}", "--filter", f"label={PROJECT_LABEL}={project}")
    return sorted(l for l in out.split() if l)


def container_names(engine: Engine, project: str) -> list[str]:
    out = engine.ok("ps", "-a", "--format", "{{.Names}}", "--filter", f"label={PROJECT_LABEL}={project}")
    return sorted(l for l in out.split() if l)


def container_ids(engine: Engine, project: str) -> list[str]:
    out = engine.ok("ps", "-aq", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}")
    return sorted(l for l in out.split() if l)


def env_of(engine: Engine, name: str) -> dict:
    return dict(e.split("=", 1) for e in engine.inspect(name)["Config"]["Env"])


def compose_kube(engine: Engine, compose_file: Path, *args, env=None) -> subprocess.CompletedProcess:
    return engine.run("compose", "-f", compose_file, "kube", *args, env=env, input="")


def example_env(project: str = "frontend-backend") -> dict:
    return {"FRONTEND_PORT": EXAMPLE_PORT, "PROJECT_NAME": project}


@pytest.fixture
def example_manifests(engine):
    """`compose kube` of the example: (documents, the run)."""
    r = compose_kube(engine, EXAMPLE / "compose.yaml", env=example_env())
    assert r.returncode == 0, r.stderr
    return docs_of(r.stdout), r


class Kube:
    """`berth kube play/down` and `berth compose -p PROJECT …` for manifests written under tmp_path."""

    def __init__(self, engine: Engine, directory: Path):
        self.engine = engine
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.played: list[tuple[str, list[Path]]] = []

    def write(self, name: str, text: str) -> Path:
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        return p

    def track(self, project: str, *paths: Path):
        self.played.append((project, [Path(p) for p in paths]))

    def play(self, project: str, *paths, extra=()) -> subprocess.CompletedProcess:
        self.track(project, *paths)
        return self.engine.run("kube", "play", "-p", project, *extra, *paths, input="", timeout=300)

    def play_ok(self, project: str, *paths, extra=()) -> subprocess.CompletedProcess:
        r = self.play(project, *paths, extra=extra)
        assert r.returncode == 0, f"kube play failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r

    def down(self, project: str, *paths, extra=()) -> subprocess.CompletedProcess:
        r = self.engine.run("kube", "down", "-p", project, "-t", "1", *extra, *paths, input="")
        assert r.returncode == 0, f"kube down failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r

    def compose(self, project: str, *args) -> subprocess.CompletedProcess:
        return self.engine.run("compose", "-p", project, *args, input="")

    def exec(self, project: str, service: str, *cmd, index: int | None = None) -> subprocess.CompletedProcess:
        extra = ["--index", str(index)] if index else []
        return self.compose(project, "exec", "-T", *extra, service, *cmd)

    def exec_ok(self, project: str, service: str, *cmd, index: int | None = None) -> str:
        r = self.exec(project, service, *cmd, index=index)
        assert r.returncode == 0, f"exec {service} {cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r.stdout


@pytest.fixture
def kube(engine, tmp_path):
    """Kube(engine, tmp_path/'manifests'); after the test every played project is taken down
    (--volumes), and anything still carrying its label is a failure (and removed)."""
    k = Kube(engine, tmp_path / "manifests")
    yield k
    problems = []
    seen = set()
    for project, paths in k.played:
        if project in seen:
            continue
        seen.add(project)
        existing = [p for p in paths if p.exists()]
        r = None
        if existing:
            r = engine.run("kube", "down", "-p", project, "--volumes", "-t", "1", *existing, input="")
        left = project_objects(engine, project)
        if any(left.values()):
            problems.append(f"project {project} left {left} (kube down: {r and r.returncode} {r and r.stderr.strip()})")
            engine.run("compose", "-p", project, "down", "-v", "-t", "1", input="")
            left = project_objects(engine, project)
            remove_objects(engine, left)
    if problems:
        pytest.fail("kube cleanup: " + "; ".join(problems), pytrace=False)


def host_get(engine: Engine, port: int, path: str = "/") -> str:
    """GET from a published port on the test's host (its netns), retried until it answers."""
    def get():
        r = engine.host("timeout", "5", "busybox", "wget", "-q", "-O", "-", f"http://127.0.0.1:{port}{path}")
        return r.returncode == 0 and r.stdout
    return poll(get, f"http://127.0.0.1:{port}{path} from the host")


def fetch_from(k: Kube, project: str, service: str, url: str) -> str:
    """wget from inside a service's container, retried until it answers (timeout(1), not wget -T)."""
    def get():
        r = k.exec(project, service, "timeout", "3", "wget", "-q", "-O", "-", url)
        return r.returncode == 0 and r.stdout
    return poll(get, f"{service} fetching {url}")


def httpd_container(name: str, body: str, port: int = 8080, **extra) -> dict:
    script = f"mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p {port} -h /www"
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


def sleeper_container(name: str, **extra) -> dict:
    return {"name": name, "image": "busybox", "command": ["sleep", "3600"], **extra}


def deployment(name: str, containers: list[dict], replicas: int = 1, volumes: list | None = None,
               labels: dict | None = None) -> dict:
    labels = labels or {"app": name}
    spec = {"containers": containers, "terminationGracePeriodSeconds": 1}
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": spec}}}


def pod(name: str, containers: list[dict], volumes: list | None = None, labels: dict | None = None) -> dict:
    spec = {"containers": containers, "terminationGracePeriodSeconds": 1}
    if volumes:
        spec["volumes"] = volumes
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def pvc(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def stream(*objects: dict) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objects)


# ---------------------------------------------------------------- 1. official models


class _Response:
    def __init__(self, data: str):
        self.data = data


def deserialize(obj: dict):
    import kubernetes.client
    client = kubernetes.client.ApiClient()
    return client, client.deserialize(_Response(json.dumps(obj)), MODELS[obj["kind"]])


def test_example_manifests_deserialize_into_the_official_kubernetes_models(example_manifests):
    docs, _ = example_manifests
    assert {d["kind"] for d in docs} <= set(MODELS), kinds(docs)
    for obj in docs:
        where = f"{obj['kind']} {obj['metadata']['name']}"
        assert obj.get("apiVersion") == ("apps/v1" if obj["kind"] in ("Deployment", "StatefulSet") else "v1"), where
        client, model = deserialize(obj)
        assert type(model).__name__ == MODELS[obj["kind"]], where
        # Serialized back, the model is the document: no field the model does not know (it would
        # be dropped silently), no value of the wrong type (a quoted number, an unquoted "true").
        assert client.sanitize_for_serialization(model) == obj, where


def test_deserialize_check_fails_on_a_container_without_name(example_manifests):
    """The negative control: the models do reject a broken object."""
    docs, _ = example_manifests
    deploy = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))
    broken = copy.deepcopy(deploy)
    del broken["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(ValueError, match="name"):
        deserialize(broken)
    broken = copy.deepcopy(deploy)
    del broken["spec"]["selector"]
    with pytest.raises(ValueError, match="selector"):
        deserialize(broken)
    # And the round trip notices an unknown field.
    extra = copy.deepcopy(deploy)
    extra["spec"]["template"]["spec"]["containers"][0]["imageName"] = "x"
    client, model = deserialize(extra)
    assert client.sanitize_for_serialization(model) != extra


# ---------------------------------------------------------------- 2. references between objects


def check_references(docs: list[dict]):
    """Every reference between the objects resolves within the output."""
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    pvcs = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert workloads, kinds(docs)
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), f"objects with the same kind and name: {sorted(names)}"
    for d in docs:
        labels = d["metadata"].get("labels", {})
        assert PART_OF in labels, f"{d['kind']} {d['metadata']['name']} has no {PART_OF} label"
    for w in workloads:
        where = f"{w['kind']} {w['metadata']['name']}"
        template_labels = w["spec"]["template"]["metadata"]["labels"]
        match = w["spec"]["selector"]["matchLabels"]
        assert match and match.items() <= template_labels.items(), where
        spec = pod_spec(w)
        pod_volumes = [v["name"] for v in spec.get("volumes", [])]
        claim_templates = [t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])]
        assert len(set(pod_volumes)) == len(pod_volumes), f"{where}: volume names repeat: {pod_volumes}"
        assert not set(pod_volumes) & set(claim_templates), \
            f"{where}: volumes {pod_volumes} and claim templates {claim_templates} share a name"
        names = set(pod_volumes) | set(claim_templates)
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                assert m["name"] in names, f"{where}: volumeMount {m['name']} has no volume"
            for f in c.get("envFrom", []):
                if "configMapRef" in f:
                    assert f["configMapRef"]["name"] in config_maps, f"{where}: envFrom {f}"
        for v in spec.get("volumes", []):
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in pvcs, f"{where}: volume {v}"
        if w["kind"] == "StatefulSet":
            assert w["spec"]["serviceName"] in services, f"{where}: serviceName"
    for name, s in services.items():
        selector = s["spec"].get("selector")
        assert selector, f"Service {name} has no selector"
        matching = [w for w in workloads
                    if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert matching, f"Service {name}: selector {selector} matches no workload"


def test_example_manifests_references_resolve(example_manifests):
    docs, _ = example_manifests
    check_references(docs)
    for d in docs:
        assert d["metadata"]["labels"][PART_OF] == "frontend-backend", d["metadata"]
    for w in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        name = w["metadata"]["name"]
        assert w["spec"]["selector"]["matchLabels"] == {NAME_LABEL: name, PART_OF: "frontend-backend"}


def test_reference_check_fails_on_a_dangling_claim(example_manifests):
    """The negative control for check_references."""
    docs, _ = example_manifests
    broken = copy.deepcopy(docs)
    for d in broken:
        if d["kind"] == "PersistentVolumeClaim":
            d["metadata"]["name"] += "-renamed"
    with pytest.raises(AssertionError, match="volume"):
        check_references(broken)


# ---------------------------------------------------------------- 3. the example's mapping


def test_example_mapping(example_manifests):
    docs, r = example_manifests
    assert kinds(docs) == [("Deployment", "frontend"), ("PersistentVolumeClaim", "shared-data"),
                           ("Service", "backend"), ("Service", "frontend"), ("StatefulSet", "backend")]
    # Each object starts with "---".
    assert r.stdout.startswith("---\n") and r.stdout.count("---\n") == len(docs)

    backend = find(docs, "StatefulSet", "backend")
    frontend = find(docs, "Deployment", "frontend")
    assert backend["spec"]["serviceName"] == "backend"
    assert backend["spec"]["replicas"] == 1 and frontend["spec"]["replicas"] == 1
    templates = backend["spec"]["volumeClaimTemplates"]
    assert [t["metadata"]["name"] for t in templates] == ["logs"]
    assert templates[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert templates[0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert mount_at(backend, "/var/log/backend")["name"] == "logs"

    shared = find(docs, "PersistentVolumeClaim", "shared-data")
    assert shared["spec"]["accessModes"] == ["ReadWriteMany"]
    assert shared["spec"]["resources"]["requests"]["storage"] == "1Gi"
    for w in (backend, frontend):
        claims = [v for v in pod_spec(w)["volumes"] if "persistentVolumeClaim" in v]
        assert [v["persistentVolumeClaim"]["claimName"] for v in claims] == ["shared-data"], w["metadata"]["name"]
    fm = mount_at(frontend, "/srv/www/shared")
    assert fm["readOnly"] is True
    assert pod_volume(frontend, fm["name"])["persistentVolumeClaim"]["claimName"] == "shared-data"
    bm = mount_at(backend, "/shared")
    assert not bm.get("readOnly", False)

    fc = container(frontend)
    assert fc["image"] == "berth-example/frontend:latest"
    assert fc["args"] == ["httpd", "-f", "-p", "80", "-h", "/srv/www"]
    assert {"containerPort": 80, "hostPort": int(EXAMPLE_PORT), "protocol": "TCP"}.items() <= fc["ports"][0].items()
    assert len(fc["ports"]) == 1
    assert {"name": "BACKEND_URL", "value": "http://backend:8080"} in fc["env"]

    svc_backend = find(docs, "Service", "backend")
    svc_frontend = find(docs, "Service", "frontend")
    assert [p["port"] for p in svc_backend["spec"]["ports"]] == [8080]
    assert [p["targetPort"] for p in svc_backend["spec"]["ports"]] == [8080]
    assert [p["port"] for p in svc_frontend["spec"]["ports"]] == [80]
    assert svc_backend["spec"]["selector"] == backend["spec"]["template"]["metadata"]["labels"]
    assert svc_frontend["spec"]["selector"] == frontend["spec"]["template"]["metadata"]["labels"]
    assert svc_backend["spec"].get("clusterIP") != "None"

    # The bind mount: a hostPath of the example's reference directory, and a warning naming it.
    reference = str(EXAMPLE / "reference")
    rm = mount_at(backend, "/reference")
    assert rm["readOnly"] is True
    host = pod_volume(backend, rm["name"])["hostPath"]
    assert host["path"] == reference and host["type"] == "Directory"
    warns = warn_lines(r.stderr)
    assert any(reference in w and "backend" in w for w in warns), r.stderr

    bc = container(backend)
    test = ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/cgi-bin/health"]
    assert bc["readinessProbe"]["exec"]["command"] == test
    assert bc["livenessProbe"]["exec"]["command"] == test
    assert bc["readinessProbe"]["periodSeconds"] == 1
    assert bc["readinessProbe"]["timeoutSeconds"] == 2
    assert bc["readinessProbe"]["failureThreshold"] == 30
    assert {e["name"]: e["value"] for e in bc["env"]} == {
        "LOG_FILE": "/var/log/backend/requests.log", "SHARED_DIR": "/shared",
        "REFERENCE_FILE": "/reference/reference.txt"}

    for w in (backend, frontend):
        assert w["spec"]["template"]["metadata"]["annotations"]["berth/init"] == "true"
    deps = frontend["spec"]["template"]["metadata"]["annotations"]["berth/depends-on"]
    assert "backend:service_healthy" in deps.split(",")
    assert "berth/depends-on" not in backend["spec"]["template"]["metadata"]["annotations"]


def test_example_project_name_is_the_part_of_label(engine):
    r = compose_kube(engine, EXAMPLE / "compose.yaml", env=example_env("shop-7"))
    assert r.returncode == 0, r.stderr
    docs = docs_of(r.stdout)
    assert {d["metadata"]["labels"][PART_OF] for d in docs} == {"shop-7"}
    r = engine.run("compose", "-f", EXAMPLE / "compose.yaml", "-p", "other", "kube",
                   env=example_env("shop-7"), input="")
    assert r.returncode == 0, r.stderr
    assert {d["metadata"]["labels"][PART_OF] for d in docs_of(r.stdout)} == {"other"}


# ---------------------------------------------------------------- 4. a richer compose file


RICH = """\
name: rich
services:
  web:
    image: busybox
    command: ["sleep", "3600"]
    env_file: [web.env]
    environment:
      ONLY_ENV: env-value
      SHARED: from-environment
    expose: ["8080"]
    tmpfs: ["/run:size=64m"]
    volumes:
      - type: tmpfs
        target: /cache
        tmpfs:
          size: 64m
      - data:/data
    deploy:
      replicas: 3
      resources:
        limits:
          cpus: "0.5"
          memory: 256M
        reservations:
          cpus: "0.25"
          memory: 64m
    networks:
      default:
        aliases: [www]
    ulimits:
      nofile: 1024
  db:
    image: busybox
    command: ["sleep", "3600"]
    mem_limit: 1g
    cpus: 1.5
    volumes:
      - dbdata:/var/lib/db
    devices:
      - /dev/null:/dev/xnull
volumes:
  data:
  dbdata:
"""


@pytest.fixture
def rich(tmp_path):
    d = tmp_path / "rich"
    d.mkdir()
    (d / "web.env").write_text("FROM_FILE=file-value\nSHARED=from-file\n")
    f = d / "compose.yaml"
    f.write_text(RICH)
    return f


def test_rich_compose_file_mapping(engine, rich):
    r = compose_kube(engine, rich)
    assert r.returncode == 0, r.stderr
    docs = docs_of(r.stdout)
    assert kinds(docs) == [("ConfigMap", "web-env"), ("Deployment", "web"), ("PersistentVolumeClaim", "data"),
                           ("Service", "db"), ("Service", "web"), ("Service", "www"), ("StatefulSet", "db")]
    check_references(docs)
    for obj in docs:
        client, model = deserialize(obj)
        assert client.sanitize_for_serialization(model) == obj, f"{obj['kind']} {obj['metadata']['name']}"

    # env_file → ConfigMap + envFrom; what only environment sets (or overrides) → env.
    cm = find(docs, "ConfigMap", "web-env")
    assert cm["data"] == {"FROM_FILE": "file-value", "SHARED": "from-file"}
    web = find(docs, "Deployment", "web")
    wc = container(web)
    assert wc["envFrom"] == [{"configMapRef": {"name": "web-env"}}]
    env = {e["name"]: e.get("value") for e in wc["env"]}
    assert env == {"ONLY_ENV": "env-value", "SHARED": "from-environment"}

    # tmpfs, short and long form → emptyDir in memory with a size limit.
    for path in ("/run", "/cache"):
        v = pod_volume(web, mount_at(web, path)["name"])
        assert v["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}, (path, v)

    # replicas 3: a Deployment, and its named volume a ReadWriteMany claim (not a template).
    assert web["spec"]["replicas"] == 3
    data = find(docs, "PersistentVolumeClaim", "data")
    assert data["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pod_volume(web, mount_at(web, "/data")["name"])["persistentVolumeClaim"]["claimName"] == "data"

    # Resources: docker's units (m = MiB), CPUs in millicores.
    assert wc["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                               "requests": {"cpu": "250m", "memory": "64Mi"}}
    db = find(docs, "StatefulSet", "db")
    assert container(db)["resources"] == {"limits": {"cpu": "1500m", "memory": "1Gi"}}

    # expose → containerPort and a Service; the alias → a second Service like it.
    assert [p["containerPort"] for p in wc["ports"]] == [8080]
    assert "hostPort" not in wc["ports"][0]
    for name in ("web", "www"):
        s = find(docs, "Service", name)
        assert [p["port"] for p in s["spec"]["ports"]] == [8080], name
        assert s["spec"]["selector"] == web["spec"]["template"]["metadata"]["labels"], name

    # db: alone on its volume with one replica → a StatefulSet; no port → a headless Service.
    assert db["spec"]["serviceName"] == "db"
    assert [t["metadata"]["name"] for t in db["spec"]["volumeClaimTemplates"]] == ["dbdata"]
    assert find(docs, "Service", "db")["spec"].get("clusterIP") == "None"
    assert "ports" not in find(docs, "Service", "db")["spec"]

    warns = warn_lines(r.stderr)
    assert "WARN service web: ulimits has no Kubernetes equivalent; left out" in warns, r.stderr
    assert "WARN service db: devices has no Kubernetes equivalent; left out" in warns, r.stderr
    # Warnings stay off stdout.
    assert "WARN" not in r.stdout


def test_output_to_a_directory_and_to_a_file(engine, rich, tmp_path):
    r = compose_kube(engine, rich)
    assert r.returncode == 0, r.stderr
    expected_docs = docs_of(r.stdout)

    out = tmp_path / "out.yaml"
    r2 = compose_kube(engine, rich, "-o", out)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == ""
    assert out.read_text() == r.stdout

    d = tmp_path / "manifests"
    r3 = compose_kube(engine, rich, "-o", d)
    assert r3.returncode == 0, r3.stderr
    assert r3.stdout == ""
    names = sorted(p.name for p in d.iterdir())
    assert names == ["data-persistentvolumeclaim.yaml", "db-service.yaml", "db-statefulset.yaml",
                     "web-deployment.yaml", "web-env-configmap.yaml", "web-service.yaml", "www-service.yaml"]
    for p in d.iterdir():
        one = docs_of(p.read_text())
        assert len(one) == 1, p
        obj = one[0]
        assert f"{obj['metadata']['name']}-{obj['kind'].lower()}.yaml" == p.name
        assert obj in expected_docs, p


def test_strings_read_back_as_the_same_strings(engine, tmp_path):
    """Values YAML 1.1 readers (PyYAML, and the go-yaml v2 under kubectl: yes/no/on/off, 1_000,
    timestamps) would type as booleans, numbers or dates are quoted; line breaks are escaped."""
    values = ["yes", "no", "on", "Off", "2001-12-14", "1_000", "1:20", "a\rb", "true", "8080", "null", "",
              "a\nb", "a: b", "#x", "0x1F", "012", "1e3", "~"]
    wrong = {}
    for value in values:
        f = tmp_path / "compose.yaml"
        f.write_text(json.dumps({"services": {"a": {"image": "busybox", "environment": {"V": value},
                                                    "command": ["echo", value]}}}))
        r = compose_kube(engine, f)
        assert r.returncode == 0, r.stderr
        try:
            workload = find(docs_of(r.stdout), "Deployment", "a")
        except yaml.YAMLError as e:
            wrong[value] = f"unreadable: {str(e).splitlines()[0]}"
            continue
        got = (container(workload)["env"][0].get("value"), container(workload)["args"][1])
        if got != (value, value):
            line = next(l.strip() for l in r.stdout.splitlines() if l.strip().startswith("value:"))
            wrong[value] = f"written as '{line}', read back as {got[0]!r}"
    assert wrong == {}, "\n".join(f"{k!r}: {v}" for k, v in wrong.items())


@pytest.mark.parametrize("case", ["alias-named-like-a-service", "names-alike-after-normalizing"])
def test_generated_object_names_are_unique(engine, tmp_path, case):
    """Two compose names must not become one Kubernetes object (the second would replace the
    first, and with -o DIR overwrite its file); two volumes must not become one claim."""
    models = {
        "alias-named-like-a-service": {
            "services": {"a": {"image": "busybox", "expose": ["80"], "networks": {"default": {"aliases": ["b"]}}},
                         "b": {"image": "busybox", "expose": ["81"]}}},
        "names-alike-after-normalizing": {
            "services": {"my_app": {"image": "busybox", "volumes": ["my_data:/a"], "deploy": {"replicas": 2}},
                         "my-app": {"image": "busybox", "volumes": ["my-data:/b"], "deploy": {"replicas": 2}}},
            "volumes": {"my_data": {}, "my-data": {}}},
    }
    f = tmp_path / "compose.yaml"
    f.write_text(json.dumps(models[case]))
    r = compose_kube(engine, f)
    if r.returncode != 0:  # refusing is fine, with a message naming the names
        assert error_lines(r.stderr), r.stderr
        return
    docs = docs_of(r.stdout)
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), f"objects with the same kind and name: {sorted(names)}\n{r.stderr}"
    claims = set()
    for w in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        claims |= {v["persistentVolumeClaim"]["claimName"] for v in pod_spec(w).get("volumes", [])
                   if "persistentVolumeClaim" in v}
    if case == "names-alike-after-normalizing":
        assert len(claims) == 2, f"two compose volumes share the claims {claims}"


@pytest.mark.parametrize("replicas", [1, 2])
def test_bind_mount_and_named_volume_with_the_same_name(engine, tmp_path, replicas):
    """A bind mount of ./data and the named volume data in one service: two pod volumes."""
    (tmp_path / "data").mkdir()
    f = tmp_path / "compose.yaml"
    f.write_text(json.dumps({"services": {"a": {"image": "busybox", "deploy": {"replicas": replicas},
                                                "volumes": ["./data:/host", "data:/vol"]}},
                             "volumes": {"data": {}}}))
    r = compose_kube(engine, f)
    assert r.returncode == 0, r.stderr
    docs = docs_of(r.stdout)
    w = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))
    check_references(docs)
    host = mount_at(w, "/host")["name"]
    vol = mount_at(w, "/vol")["name"]
    assert host != vol, container(w)["volumeMounts"]
    assert pod_volume(w, host)["hostPath"]["path"] == str(tmp_path / "data")
    if w["kind"] == "StatefulSet":
        assert [t["metadata"]["name"] for t in w["spec"]["volumeClaimTemplates"]] == [vol]
    else:
        assert pod_volume(w, vol)["persistentVolumeClaim"]["claimName"] == "data"


# ---------------------------------------------------------------- 5. the example, the Kubernetes way


def test_example_runs_with_kube_play_and_kube_down_keeps_the_claims(engine, tmp_path):
    project = "fb-kube"
    manifests = tmp_path / "kube"
    wrapper = berth_wrapper(engine, tmp_path)
    env = {**example_env(project), "KUBE_DIR": str(manifests)}
    reference = EXAMPLE / "reference" / "reference.txt"
    before = reference.read_bytes()
    try:
        r = run_in_netns(engine, EXAMPLE / "run-demo", "--kube", wrapper, env=env)
        out = r.stdout
        assert r.returncode == 0, out + r.stderr
        assert "FAILED" not in out, out
        for check in DEMO_CHECKS:
            assert f"ok: {check}\n" in out, out
        assert f"The example is running at http://127.0.0.1:{EXAMPLE_PORT}/" in out
        assert reference.read_bytes() == before

        # The manifests are compose kube's, one file per object.
        assert sorted(p.name for p in manifests.iterdir()) == [
            "backend-service.yaml", "backend-statefulset.yaml", "frontend-deployment.yaml",
            "frontend-service.yaml", "shared-data-persistentvolumeclaim.yaml"]
        # The project runs as compose names it, with compose's labels.
        assert container_names(engine, project) == [f"{project}-backend-1", f"{project}-frontend-1"]
        for svc in ("backend", "frontend"):
            labels = engine.inspect(f"{project}-{svc}-1")["Config"]["Labels"]
            assert labels[PROJECT_LABEL] == project and labels[SERVICE_LABEL] == svc
        port = run_in_netns(engine, wrapper, "compose", "-p", project, "port", "frontend", "80")
        assert port.returncode == 0 and port.stdout.strip().endswith(f":{EXAMPLE_PORT}"), port

        volumes = volume_names(engine, project)
        assert f"{project}_shared-data" in volumes, volumes
        logs_volume = [v for v in volumes if v.startswith(f"{project}_logs")]
        assert len(logs_volume) == 1, volumes
        log_dir = Path(engine.ok("volume", "inspect", "--format", "{{.Mountpoint}}", logs_volume[0]).strip())
        lines = (log_dir / "requests.log").read_text().splitlines()
        assert len(lines) >= 3 and all(" GET /cgi-bin/items " in l for l in lines), lines

        # kube down: the containers and network go, the claims' volumes stay with their data.
        r = run_in_netns(engine, wrapper, "kube", "down", "-t", "1", manifests)
        assert r.returncode == 0, r.stderr
        left = project_objects(engine, project)
        assert left["containers"] == [] and left["networks"] == [], left
        assert volume_names(engine, project) == volumes
        assert (log_dir / "requests.log").read_text().splitlines() == lines

        # kube down --volumes: they go too.
        r = run_in_netns(engine, wrapper, "kube", "down", "--volumes", "-t", "1", manifests)
        assert r.returncode == 0, r.stderr
        assert project_objects(engine, project) == {"containers": [], "networks": [], "volumes": []}
    finally:
        if manifests.exists():
            run_in_netns(engine, wrapper, "kube", "down", "--volumes", "-t", "1", manifests)
        run_in_netns(engine, wrapper, "compose", "-p", project, "down", "-v", "-t", "1")


def test_compose_kube_then_kube_play_keeps_env_file_precedence(engine, kube, rich, tmp_path):
    """A round trip of env_file and environment: the ConfigMap under env, as in compose."""
    d = rich.parent
    (d / "compose.yaml").write_text(textwrap.dedent("""\
        services:
          app:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            env_file: [web.env]
            environment:
              ONLY_ENV: env-value
              SHARED: from-environment
        """))
    out = tmp_path / "rt.yaml"
    r = compose_kube(engine, d / "compose.yaml", "-o", out)
    assert r.returncode == 0, r.stderr
    kube.play_ok("rt", out)
    env = env_of(engine, "rt-app-1")
    assert env["FROM_FILE"] == "file-value"
    assert env["ONLY_ENV"] == "env-value"
    assert env["SHARED"] == "from-environment"


def test_kube_play_of_compose_kube_output_keeps_the_compose_projects_volumes(engine, kube, tmp_path):
    """Moving a project from `compose up` to `kube play` on the same machine keeps its data: a
    claim is the volume PROJECT_<claim>, as the kube play mapping says (kube_play.cpp)."""
    d = tmp_path / "mig"
    d.mkdir()
    f = d / "compose.yaml"
    f.write_text(textwrap.dedent("""\
        services:
          writer:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            volumes: [own:/own, shared:/shared]
          reader:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            volumes: [shared:/shared]
        volumes:
          own:
          shared:
        """))
    out = tmp_path / "mig-kube"
    kube.track("mig", out)
    r = engine.run("compose", "-f", f, "-p", "mig", "up", "-d", input="")
    assert r.returncode == 0, r.stderr
    kube.exec_ok("mig", "writer", "sh", "-c", "echo own-data > /own/f && echo shared-data > /shared/f")
    r = engine.run("compose", "-f", f, "-p", "mig", "down", "-t", "1", input="")
    assert r.returncode == 0, r.stderr
    assert volume_names(engine, "mig") == ["mig_own", "mig_shared"]

    r = compose_kube(engine, f, "-o", out)
    assert r.returncode == 0, r.stderr
    kube.play_ok("mig", out)
    assert kube.exec_ok("mig", "reader", "cat", "/shared/f") == "shared-data\n"
    assert kube.exec_ok("mig", "writer", "cat", "/shared/f") == "shared-data\n"
    # own is the writer's alone: compose kube makes the writer a StatefulSet with a claim
    # template, and kube play names that claim own-writer-0, not own.
    r = kube.exec("mig", "writer", "cat", "/own/f")
    assert r.returncode == 0 and r.stdout == "own-data\n", \
        f"the writer's volume own was not carried over: {r.stderr.strip()}; volumes {volume_names(engine, 'mig')}"


# ---------------------------------------------------------------- 6. hand-written manifests


def test_configmap_and_secret_as_env_and_files(engine, kube):
    secret_value = "s3cr3t value\n"
    manifest = stream(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
         "data": {"GREETING": "hello", "key": "file content"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "type": "Opaque",
         "data": {"password": base64.b64encode(secret_value.encode()).decode()}},
        deployment("app", [sleeper_container(
            "app",
            command=["sh", "-c", "echo started $GREETING; exec sleep 3600"],
            envFrom=[{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds"}, "prefix": "S_"}],
            env=[{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                 {"name": "PLAIN", "value": "plain"}],
            volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"},
                          {"name": "sec", "mountPath": "/etc/secret", "readOnly": True}])],
            volumes=[{"name": "cfg", "configMap": {"name": "settings"}},
                     {"name": "sec", "secret": {"secretName": "creds"}}]))
    f = kube.write("app.yaml", manifest)
    kube.play_ok("cfg", f)
    assert container_names(engine, "cfg") == ["cfg-app-1"]

    env = env_of(engine, "cfg-app-1")
    assert env["GREETING"] == "hello" and env["key"] == "file content"
    assert env["PASSWORD"] == secret_value and env["PLAIN"] == "plain"
    assert env["S_password"] == secret_value
    assert kube.exec_ok("cfg", "app", "cat", "/etc/cfg/key") == "file content"
    assert kube.exec_ok("cfg", "app", "cat", "/etc/cfg/GREETING") == "hello"
    assert kube.exec_ok("cfg", "app", "cat", "/etc/secret/password") == secret_value
    # The files are mounted read-only.
    assert kube.exec("cfg", "app", "sh", "-c", "echo x > /etc/cfg/key").returncode != 0
    assert kube.exec("cfg", "app", "sh", "-c", "echo x > /etc/secret/password").returncode != 0
    # compose logs sees the project.
    poll(lambda: "started hello" in kube.compose("cfg", "logs", "app").stdout, "the app's log line")

    files = engine.root / "kube" / "cfg"
    assert files.exists()
    kube.down("cfg", f)
    assert project_objects(engine, "cfg") == {"containers": [], "networks": [], "volumes": []}
    assert not files.exists(), sorted(str(p) for p in files.rglob("*"))


def test_replicas_a_service_by_another_name_and_a_second_play_changes_nothing(engine, kube):
    manifest = stream(
        deployment("web", [httpd_container("web", "body-from-web", ports=[{"containerPort": 8080}])], replicas=2),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080}]}},
        pod("client", [sleeper_container("client")]))
    f = kube.write("web.yaml", manifest)
    kube.play_ok("svc", f)
    assert container_names(engine, "svc") == ["svc-client-1", "svc-web-1", "svc-web-2"]
    for n in ("svc-web-1", "svc-web-2"):
        labels = engine.inspect(n)["Config"]["Labels"]
        assert labels[PROJECT_LABEL] == "svc" and labels[SERVICE_LABEL] == "web", labels
    assert fetch_from(kube, "svc", "client", "http://api:8080/") == "body-from-web\n"
    ps = kube.compose("svc", "ps", "--format", "{{.Name}}")
    assert ps.returncode == 0 and sorted(ps.stdout.split()) == ["svc-client-1", "svc-web-1", "svc-web-2"], ps

    ids = container_ids(engine, "svc")
    r = kube.play_ok("svc", f)
    assert container_ids(engine, "svc") == ids, r.stderr
    for n in ("svc-client-1", "svc-web-1", "svc-web-2"):
        assert engine.state(n)["Status"] == "running", n


def test_claim_data_survives_down_and_play_and_empty_dir_does_not(engine, kube):
    manifest = stream(
        pvc("data"),
        deployment("store", [sleeper_container(
            "store", volumeMounts=[{"name": "d", "mountPath": "/data"},
                                   {"name": "scratch", "mountPath": "/scratch"},
                                   {"name": "mem", "mountPath": "/mem"}])],
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                     {"name": "scratch", "emptyDir": {}},
                     {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]))
    f = kube.write("store.yaml", manifest)
    kube.play_ok("pv", f)
    vols = volume_names(engine, "pv")
    assert "pv_data" in vols, vols
    scratch = [v for v in vols if v != "pv_data"]
    assert len(scratch) == 1, vols
    kube.exec_ok("pv", "store", "sh", "-c", "echo persisted > /data/f && echo temp > /scratch/t")
    mounts = kube.exec_ok("pv", "store", "cat", "/proc/mounts")
    mem = [l.split() for l in mounts.splitlines() if l.split()[1] == "/mem"]
    assert len(mem) == 1 and mem[0][2] == "tmpfs" and "size=16384k" in mem[0][3], mounts
    assert [l for l in mounts.splitlines() if l.split()[1] == "/scratch" and l.split()[2] == "tmpfs"] == []

    kube.down("pv", f)
    left = project_objects(engine, "pv")
    assert left["containers"] == [] and left["networks"] == [], left
    assert volume_names(engine, "pv") == ["pv_data"], "the claim stays, the emptyDir goes"

    kube.play_ok("pv", f)
    assert kube.exec_ok("pv", "store", "cat", "/data/f") == "persisted\n"
    assert kube.exec("pv", "store", "test", "-e", "/scratch/t").returncode != 0

    kube.down("pv", f, extra=["--force"])  # podman's name for --volumes
    assert project_objects(engine, "pv") == {"containers": [], "networks": [], "volumes": []}


def test_host_port_and_node_port_are_published(engine, kube):
    manifest = stream(
        pod("front", [httpd_container("front", "via-host-port", port=80,
                                      ports=[{"containerPort": 80, "hostPort": 18181}])]),
        deployment("back", [httpd_container("back", "via-node-port", ports=[{"containerPort": 8080}])]),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "back-np"},
         "spec": {"type": "NodePort", "selector": {"app": "back"},
                  "ports": [{"port": 8080, "targetPort": 8080, "nodePort": 30080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "back-lb"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "back"}, "ports": [{"port": 8080}]}})
    f = kube.write("ports.yaml", manifest)
    kube.play_ok("ports", f)
    assert host_get(engine, 18181) == "via-host-port\n"
    assert host_get(engine, 30080) == "via-node-port\n"
    assert host_get(engine, 8080) == "via-node-port\n"
    r = kube.compose("ports", "port", "front", "80")
    assert r.returncode == 0 and r.stdout.strip().endswith(":18181"), r
    kube.down("ports", f)
    assert engine.host("timeout", "5", "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:18181/").returncode != 0


def test_host_path_binds_a_host_directory_and_creates_a_missing_one(engine, kube, tmp_path):
    shared = tmp_path / "host-dir"
    shared.mkdir()
    (shared / "from-host.txt").write_text("host data\n")
    created = tmp_path / "to-create" / "sub"
    manifest = stream(deployment("hp", [sleeper_container(
        "hp", volumeMounts=[{"name": "h", "mountPath": "/h"}, {"name": "ro", "mountPath": "/ro", "readOnly": True},
                            {"name": "c", "mountPath": "/c"}])],
        volumes=[{"name": "h", "hostPath": {"path": str(shared), "type": "Directory"}},
                 {"name": "ro", "hostPath": {"path": str(shared)}},
                 {"name": "c", "hostPath": {"path": str(created), "type": "DirectoryOrCreate"}}]))
    f = kube.write("hp.yaml", manifest)
    kube.play_ok("hp", f)
    assert kube.exec_ok("hp", "hp", "cat", "/h/from-host.txt") == "host data\n"
    kube.exec_ok("hp", "hp", "sh", "-c", "echo from-container > /h/back.txt && echo c > /c/made")
    assert (shared / "back.txt").read_text() == "from-container\n"
    assert (created / "made").read_text() == "c\n"
    assert kube.exec("hp", "hp", "sh", "-c", "echo x > /ro/nope").returncode != 0
    assert not (shared / "nope").exists()
    kube.down("hp", f, extra=["--volumes"])
    # kube down never touches host paths.
    assert (shared / "from-host.txt").read_text() == "host data\n" and (created / "made").exists()


def test_replace_recreates_the_containers(engine, kube):
    f = kube.write("r.yaml", stream(deployment("r", [sleeper_container("r")], replicas=2)))
    kube.play_ok("rep", f)
    ids = container_ids(engine, "rep")
    assert len(ids) == 2
    kube.play_ok("rep", f, extra=["--replace"])
    new_ids = container_ids(engine, "rep")
    assert len(new_ids) == 2 and not set(new_ids) & set(ids)
    assert container_names(engine, "rep") == ["rep-r-1", "rep-r-2"]
    for n in ("rep-r-1", "rep-r-2"):
        assert engine.state(n)["Status"] == "running", n


def test_resources_and_security_context(engine, kube):
    manifest = stream(deployment("res", [sleeper_container(
        "res", workingDir="/tmp",
        resources={"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"memory": "32Mi"}},
        securityContext={"runAsUser": 1000, "runAsGroup": 1000, "readOnlyRootFilesystem": True,
                         "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})]))
    f = kube.write("res.yaml", manifest)
    kube.play_ok("res", f)
    c = engine.inspect("res-res-1")
    hc = c["HostConfig"]
    assert hc["Memory"] == 64 * 1024 * 1024 and hc["MemoryReservation"] == 32 * 1024 * 1024
    assert hc["NanoCpus"] == 500_000_000
    assert hc["CapAdd"] == ["NET_BIND_SERVICE"] and hc["CapDrop"] == ["ALL"]
    assert hc["ReadonlyRootfs"] is True
    assert kube.exec_ok("res", "res", "id", "-u").strip() == "1000"
    assert kube.exec_ok("res", "res", "pwd").strip() == "/tmp"


def test_dependent_environment_variables_are_expanded(engine, kube):
    """Kubernetes expands $(VAR) in env values, command and args from the container's earlier
    variables ($$(VAR) escapes); manifests rely on it (--name=$(POD_NAME))."""
    manifest = stream(deployment("dep", [sleeper_container(
        "dep", command=["sh", "-c", "echo \"arg=$0 escaped=$1\"; exec sleep 3600"],
        args=["$(A)", "$$(A)"],
        env=[{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-y"}, {"name": "C", "value": "$(UNSET)"}])]))
    f = kube.write("dep.yaml", manifest)
    kube.play_ok("dep", f)
    env = env_of(engine, "dep-dep-1")
    problems = []
    if env["B"] != "x-y":
        problems.append(f"B={env['B']!r}, not 'x-y'")
    if env["C"] != "$(UNSET)":
        problems.append(f"C={env['C']!r}, not '$(UNSET)' (an unknown reference stays as written)")
    logs = poll(lambda: kube.compose("dep", "logs", "--no-log-prefix", "dep").stdout, "the dep's log line")
    if "arg=x escaped=$(A)" not in logs:
        problems.append(f"args printed {logs.strip()!r}, not 'arg=x escaped=$(A)'")
    assert problems == [], "; ".join(problems)


def test_stateful_set_replicas_get_their_own_names_claims_and_hostnames(engine, kube):
    manifest = stream(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
         "spec": {"clusterIP": "None", "selector": {"app": "db"}}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
         "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
                  "template": {"metadata": {"labels": {"app": "db"}},
                               "spec": {"terminationGracePeriodSeconds": 1, "containers": [sleeper_container(
                                   "db", command=["sh", "-c", "hostname > /data/who; exec sleep 3600"],
                                   volumeMounts=[{"name": "data", "mountPath": "/data"}])]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                            "spec": {"accessModes": ["ReadWriteOnce"],
                                                     "resources": {"requests": {"storage": "1Gi"}}}}]}})
    f = kube.write("db.yaml", manifest)
    kube.play_ok("sts", f)
    assert container_names(engine, "sts") == ["sts-db-0-1", "sts-db-1-1"]
    assert volume_names(engine, "sts") == ["sts_data-db-0", "sts_data-db-1"]
    for i in (0, 1):
        assert engine.inspect(f"sts-db-{i}-1")["Config"]["Labels"][SERVICE_LABEL] == f"db-{i}"
        who = poll(lambda: kube.exec("sts", f"db-{i}", "cat", "/data/who").stdout, f"db-{i}'s file")
        assert who == f"db-{i}\n"


def test_project_name_from_part_of_label_else_file_stem(engine, kube):
    labelled_manifest = deployment("one", [sleeper_container("one")])
    labelled_manifest["metadata"]["labels"] = {PART_OF: "shop"}
    f1 = kube.write("labelled.yaml", stream(labelled_manifest))
    kube.track("shop", f1)
    r = engine.run("kube", "play", f1, input="")
    assert r.returncode == 0, r.stderr
    assert container_names(engine, "shop") == ["shop-one-1"]

    f2 = kube.write("my-stem.yaml", stream(deployment("two", [sleeper_container("two")])))
    kube.track("my-stem", f2)
    r = engine.run("kube", "play", f2, input="")
    assert r.returncode == 0, r.stderr
    assert container_names(engine, "my-stem") == ["my-stem-two-1"]

    for project, f in (("shop", f1), ("my-stem", f2)):
        r = engine.run("kube", "down", "-t", "1", f, input="")
        assert r.returncode == 0, r.stderr
        assert project_objects(engine, project) == {"containers": [], "networks": [], "volumes": []}, project


# ---------------------------------------------------------------- 7. bad input


GOOD = stream(
    pvc("keep"),
    deployment("good", [sleeper_container("good", volumeMounts=[{"name": "d", "mountPath": "/d"},
                                                                {"name": "s", "mountPath": "/s"}])],
               volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "keep"}},
                        {"name": "s", "emptyDir": {}}]),
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "present"}, "data": {"a": "b"}})


def bad_deployment(**change) -> dict:
    d = deployment("bad", [sleeper_container("bad")])
    spec = d["spec"]
    c = spec["template"]["spec"]["containers"][0]
    for key, value in change.items():
        if key == "containers":
            spec["template"]["spec"]["containers"] = value
        elif key == "no_image":
            del c["image"]
        elif key == "matchLabels":
            spec["selector"]["matchLabels"] = value
        elif key == "volumes":
            spec["template"]["spec"]["volumes"] = value
            c["volumeMounts"] = [{"name": value[0]["name"], "mountPath": "/v"}]
        else:
            c[key] = value
    return d


BAD = {
    "invalid-yaml": ("---\nkind: Deployment\nmetadata: {name: bad\n  spec: [\n", ["bad.yaml"]),
    "no-containers": (stream(bad_deployment(containers=[])), ["Deployment bad", "containers"]),
    "no-image": (stream(bad_deployment(no_image=True)), ["Deployment bad", "image"]),
    "unknown-configmap-envfrom": (stream(bad_deployment(envFrom=[{"configMapRef": {"name": "absent"}}])),
                                  ["Deployment bad", "envFrom", "ConfigMap absent"]),
    "unknown-configmap-key": (stream(bad_deployment(env=[{"name": "X", "valueFrom": {
        "configMapKeyRef": {"name": "absent", "key": "k"}}}])), ["Deployment bad", "ConfigMap absent"]),
    "unknown-configmap-volume": (stream(bad_deployment(volumes=[{"name": "v", "configMap": {"name": "absent"}}])),
                                 ["Deployment bad", "ConfigMap absent"]),
    "selector-mismatch": (stream(bad_deployment(matchLabels={"app": "other"})),
                          ["Deployment bad", "selector"]),
    "unsupported-volume": (stream(bad_deployment(volumes=[{"name": "v", "nfs": {"server": "x", "path": "/"}}])),
                           ["Deployment bad", "nfs"]),
    "missing-host-directory": (stream(bad_deployment(volumes=[{"name": "v", "hostPath": {
        "path": "/nonexistent/berth-kube-test", "type": "Directory"}}])),
        ["Deployment bad", "hostPath", "/nonexistent/berth-kube-test"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_with_one_line_and_creates_nothing(engine, kube, case):
    bad, expected = BAD[case]
    # The good objects first (and in another file too): a late check would have created them.
    f_good = kube.write("good.yaml", GOOD)
    f_bad = kube.write("bad.yaml", GOOD + bad)
    for paths in ([f_bad], [f_good, f_bad]):
        r = kube.play("badp", *paths)
        assert r.returncode != 0, f"kube play succeeded:\n{r.stdout}\n{r.stderr}"
        errors = error_lines(r.stderr)
        assert len(errors) == 1, r.stderr
        for text in expected:
            assert text in errors[0], f"{text!r} not in {errors[0]!r}"
        assert project_objects(engine, "badp") == {"containers": [], "networks": [], "volumes": []}, r.stderr
        assert not (engine.root / "kube" / "badp").exists()
    assert engine.ok("volume", "ls", "-q").split() == []


def test_error_names_the_file_that_holds_the_object(engine, kube):
    f_good = kube.write("good.yaml", GOOD)
    f_bad = kube.write("bad.yaml", stream(bad_deployment(containers=[])))
    r = kube.play("badp", f_good, f_bad)
    assert r.returncode != 0, r.stderr
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "Deployment bad" in errors[0], r.stderr
    assert "bad.yaml" in errors[0] and "good.yaml" not in errors[0], errors[0]


def test_failed_play_creates_no_host_path(engine, kube, tmp_path):
    """A hostPath of type FileOrCreate is created only when the play goes ahead."""
    made = tmp_path / "made" / "file"
    ok = deployment("fc", [sleeper_container("fc", volumeMounts=[{"name": "h", "mountPath": "/h"}])],
                    volumes=[{"name": "h", "hostPath": {"path": str(made), "type": "FileOrCreate"}}])
    f = kube.write("fc.yaml", stream(ok, bad_deployment(no_image=True)))
    r = kube.play("fcp", f)
    assert r.returncode != 0, r.stderr
    assert project_objects(engine, "fcp") == {"containers": [], "networks": [], "volumes": []}
    assert not made.parent.exists(), "the failed play created " + str(made)


def test_secrets_and_configs_become_secret_and_config_map_files(engine, kube, tmp_path):
    d = tmp_path / "sc"
    d.mkdir()
    (d / "pw.txt").write_text("s3cret\n")
    (d / "compose.yaml").write_text(textwrap.dedent("""\
        services:
          app:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            secrets: [pw, {source: token, target: api-token}]
            configs: [{source: app.conf, target: /etc/app.conf}]
        secrets:
          pw: {file: ./pw.txt}
          token: {environment: BT_TOKEN}
        configs:
          app.conf: {content: "listen 80\\n"}
        """))
    out = tmp_path / "sc.yaml"
    r = compose_kube(engine, d / "compose.yaml", "-o", out, env={"BT_TOKEN": "tok-123"})
    assert r.returncode == 0, r.stderr
    docs = [o for o in yaml.safe_load_all(out.read_text()) if o]
    secrets = {o["metadata"]["name"]: o for o in docs if o["kind"] == "Secret"}
    assert base64.b64decode(secrets["pw"]["data"]["pw"]) == b"s3cret\n"
    assert base64.b64decode(secrets["token"]["data"]["token"]) == b"tok-123"
    config = next(o for o in docs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "app-conf")
    assert config["data"] == {"app.conf": "listen 80\n"}
    mounts = {m["mountPath"]: m for m in next(o for o in docs if o["kind"] == "Deployment")
              ["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/run/secrets/api-token"]["subPath"] == "token" and mounts["/run/secrets/api-token"]["readOnly"]
    kube.play_ok("sc", out)
    r = engine.run("compose", "-p", "sc", "exec", "-T", "app", "sh", "-c",
                   "cat /run/secrets/pw /run/secrets/api-token; echo; cat /etc/app.conf")
    assert r.stdout == "s3cret\ntok-123\nlisten 80\n", r.stdout + r.stderr


def test_init_containers_run_in_order_before_the_pod_and_not_again_on_a_second_play(engine, kube):
    log_mount = [{"name": "work", "mountPath": "/work"}]
    workload = pod("job", [sleeper_container("job", volumeMounts=log_mount)], volumes=[{"name": "work", "emptyDir": {}}])
    workload["spec"]["initContainers"] = [
        {"name": "first", "image": "busybox", "command": ["sh", "-c", "echo first >> /work/log"],
         "volumeMounts": log_mount},
        {"name": "second", "image": "busybox", "command": ["sh", "-c", "echo second >> /work/log"],
         "volumeMounts": log_mount},
    ]
    f = kube.write("job.yaml", stream(workload))
    kube.play_ok("ini", f)
    assert kube.exec_ok("ini", "job", "cat", "/work/log") == "first\nsecond\n"
    main = engine.inspect("ini-job-1")["Id"]

    # The pod runs unchanged: Kubernetes would not run its init containers again.
    kube.play_ok("ini", f)
    assert kube.exec_ok("ini", "job", "cat", "/work/log") == "first\nsecond\n"
    assert engine.inspect("ini-job-1")["Id"] == main
    assert engine.state("ini-job-1")["Status"] == "running"

    # A changed pod starts anew, init containers first.
    workload["spec"]["containers"][0]["env"] = [{"name": "CHANGED", "value": "1"}]
    f = kube.write("job.yaml", stream(workload))
    kube.play_ok("ini", f)
    assert kube.exec_ok("ini", "job", "cat", "/work/log") == "first\nsecond\nfirst\nsecond\n"
    assert engine.inspect("ini-job-1")["Id"] != main


def test_deployment_with_zero_replicas_creates_nothing(engine, kube):
    idle = deployment("idle", [sleeper_container("idle")], replicas=0)
    idle["spec"]["template"]["spec"]["initContainers"] = [{"name": "prep", "image": "busybox", "command": ["true"]}]
    f = kube.write("idle.yaml", stream(idle))
    kube.play_ok("zero", f)
    left = project_objects(engine, "zero")
    assert left["containers"] == [] and left["networks"] == [], left
    # Scaled up, the pod starts with its init container; back to 0, the replicas go.
    idle["spec"]["replicas"] = 1
    kube.play_ok("zero", kube.write("idle.yaml", stream(idle)))
    assert container_names(engine, "zero") == ["zero-idle-1", "zero-idle-init-prep-1"]
    idle["spec"]["replicas"] = 0
    kube.play_ok("zero", kube.write("idle.yaml", stream(idle)))
    assert container_names(engine, "zero") == []
