"""`berth compose`, written to docker compose v2's behaviour: names and labels (PROJECT-SERVICE-N,
PROJECT_default, PROJECT_VOLUME, com.docker.compose.*), an idempotent `up` that recreates only what
changed, `down` (named volumes kept unless -v), the other commands (ps, logs, exec, run, start, stop,
restart, rm, config, ls, top, port, events, pull), interpolation (.env, defaults, required
variables, $$), env_file, several -f files merged, profiles, depends_on conditions, replicas and
--scale, service DNS and network isolation, bad input that creates nothing, and a failed `up` that
removes what it created. Every container, network and registry runs in the test's own network
namespace (the engine's prefix): no traffic leaves the machine."""
from __future__ import annotations

import json
import os
import pty
import queue
import re
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from containertest import Engine, busybox_tar, engine, poll, project_objects, remove_objects  # noqa: F401

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
HASH_LABEL = "com.docker.compose.config-hash"
NETWORK_LABEL = "com.docker.compose.network"
VOLUME_LABEL = "com.docker.compose.volume"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sleeper(**extra) -> dict:
    """A long-running service (sleep as PID 1 ignores SIGTERM: a short stop_grace_period)."""
    return {"image": "busybox", "command": ["sleep", "3600"], "stop_grace_period": "1s", **extra}


def httpd(body: str, **extra) -> dict:
    """A service serving BODY (plus a newline) at / with busybox httpd on 8080."""
    script = f"mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"
    return {"image": "busybox", "command": ["sh", "-c", script], "stop_grace_period": "1s", **extra}


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and scalars (strings double-quoted, as JSON writes them)."""
    pad = " " * indent

    def scalar(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if v is None:
            return "null"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, dict) and not v:
            return "{}"
        if isinstance(v, list) and not v:
            return "[]"
        return json.dumps(v)

    def nested(v) -> bool:
        return isinstance(v, (dict, list)) and bool(v)

    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            if nested(v):
                out.append(f"{pad}{k}:\n{to_yaml(v, indent + 2)}")
            else:
                out.append(f"{pad}{k}: {scalar(v)}\n")
    else:
        for v in value:
            if isinstance(v, dict) and v:
                first, *rest = to_yaml(v, indent + 2).splitlines(keepends=True)
                out.append(f"{pad}- {first.lstrip()}" + "".join(rest))
            elif nested(v):
                out.append(f"{pad}-\n{to_yaml(v, indent + 2)}")
            else:
                out.append(f"{pad}- {scalar(v)}\n")
    return "".join(out)


# ---------------------------------------------------------------- helpers


class Compose:
    """`berth compose -f FILE… -p PROJECT …` for one project whose directory is `dir`."""

    def __init__(self, engine: Engine, directory: Path, project: str | None, cleanup_name: str | None = None):
        self.engine = engine
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.project = project
        self.cleanup_name = cleanup_name or project  # the project name its resources carry
        self.files = [self.dir / "compose.yaml"]

    @property
    def file(self) -> Path:
        return self.files[0]

    def write(self, text: str, name: str = "compose.yaml") -> Path:
        """Writes YAML text (dedented) as the project's file NAME."""
        p = self.dir / name
        p.write_text(textwrap.dedent(text))
        return p

    def model(self, model: dict, name: str = "compose.yaml") -> Path:
        """Writes a compose model (a dict) as block YAML."""
        p = self.dir / name
        p.write_text(to_yaml(model))
        return p

    def global_args(self) -> list[str]:
        args = []
        for f in self.files:
            args += ["-f", str(f)]
        if self.project:
            args += ["-p", self.project]
        return args

    def run(self, *args, env=None, timeout=180, pre=()) -> subprocess.CompletedProcess:
        # stdin is an empty pipe: no terminal, nothing for `run`/`exec` to read.
        return self.engine.run("compose", *self.global_args(), *pre, *args, env=env, input="", timeout=timeout)

    def ok(self, *args, **kw) -> subprocess.CompletedProcess:
        r = self.run(*args, **kw)
        assert r.returncode == 0, f"compose {' '.join(map(str, args))} failed ({r.returncode}):\n" \
                                  f"stdout: {r.stdout}\nstderr: {r.stderr}"
        return r

    def fails(self, *args, **kw) -> subprocess.CompletedProcess:
        r = self.run(*args, **kw)
        assert r.returncode != 0, f"compose {' '.join(map(str, args))} succeeded:\n{r.stdout}\n{r.stderr}"
        assert r.stderr.strip(), "no error message on stderr"
        return r

    def up(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.ok("up", "-d", *args, **kw)

    def down(self, *args) -> subprocess.CompletedProcess:
        return self.ok("down", "-t", "1", *args)

    def exec(self, service: str, *cmd, index: int | None = None) -> subprocess.CompletedProcess:
        extra = ["--index", str(index)] if index else []
        return self.run("exec", "-T", *extra, service, *cmd)


@pytest.fixture
def compose(engine, tmp_path):
    """make(project="t1", directory=tmp_path/project) -> Compose. After the test: `down -v
    --remove-orphans -t 1` for each project, then a forced removal (and a failure) of anything
    still carrying its project label."""
    made: list[Compose] = []

    def make(project: str | None = "t1", directory: Path | None = None, cleanup_name: str | None = None) -> Compose:
        c = Compose(engine, directory or tmp_path / (project or "proj"), project, cleanup_name)
        made.append(c)
        return c

    yield make
    problems = []
    for c in made:
        name = c.cleanup_name
        r = c.run("down", "-v", "--remove-orphans", "-t", "1")
        if name is None:
            continue
        left = project_objects(engine, name)
        if any(left.values()):
            problems.append(f"project {name} left {left} (down: {r.returncode} {r.stderr.strip()})")
            remove_objects(engine, left)
    if problems:
        pytest.fail("compose cleanup: " + "; ".join(problems), pytrace=False)


def names(engine: Engine, project: str = "t1", all_=True) -> list[str]:
    args = ["ps", "--format", "{{.Names}}", "--filter", f"label={PROJECT_LABEL}={project}"]
    if all_:
        args.insert(1, "-a")
    return sorted(l for l in engine.ok(*args).split() if l)


def cid(engine: Engine, name: str) -> str:
    return engine.inspect(name)["Id"]


def labels(engine: Engine, name: str) -> dict:
    return engine.inspect(name)["Config"]["Labels"] or {}


def env_of(engine: Engine, name: str) -> dict:
    return dict(e.split("=", 1) for e in engine.inspect(name)["Config"]["Env"])


def exists(engine: Engine, name: str) -> bool:
    return engine.run("inspect", "--type", "container", name).returncode == 0


def network_names(engine: Engine) -> list[str]:
    return sorted(engine.ok("network", "ls", "--format", "{{.Name}}").split())


def volume_names(engine: Engine) -> list[str]:
    return sorted(engine.ok("volume", "ls", "--format", "{{.Name}}").split())


def net_inspect(engine: Engine, name: str) -> dict:
    return json.loads(engine.ok("network", "inspect", name))[0]


def vol_inspect(engine: Engine, name: str) -> dict:
    return json.loads(engine.ok("volume", "inspect", name))[0]


def world(engine: Engine) -> dict:
    """Everything that exists: containers, volumes, mounts (engine.snapshot()) and networks."""
    s = engine.snapshot()
    s["networks"] = network_names(engine)
    return s


def host_get(engine: Engine, port: int, path: str = "/") -> str:
    """GET from a published port on the test's host, retried until it answers."""
    def get():
        r = engine.host("timeout", "5", "busybox", "wget", "-q", "-O", "-", f"http://127.0.0.1:{port}{path}")
        return r.returncode == 0 and r.stdout
    return poll(get, f"http://127.0.0.1:{port}{path} from the host")


def fetch_from(c: Compose, service: str, url: str) -> str:
    """wget from inside a service's container, retried until it answers. (timeout(1), not wget -T:
    busybox 1.35's wget segfaults with -T.)"""
    def get():
        r = c.exec(service, "timeout", "3", "wget", "-q", "-O", "-", url)
        return r.returncode == 0 and r.stdout
    return poll(get, f"{service} fetching {url}")


def ps_json(c: Compose, *args) -> list[dict]:
    """`compose ps --format json`: one object per line (compose >= 2.21) or one array (older)."""
    out = c.ok("ps", "--format", "json", *args).stdout.strip()
    if not out:
        return []
    if out.startswith("["):
        return json.loads(out)
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def progress(stderr: str, kind: str, name: str, what: str) -> bool:
    """A progress line (" Container t1-web-1  Started"; the plain writer's spacing varies)."""
    return re.search(rf"^\s*{kind} \"?{re.escape(name)}\"?\s+{what}\s*$", stderr, re.M) is not None


class LineReader:
    """Reads a process's stdout lines on a thread; until(pred) waits for a matching one."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, pred, what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.seen!r}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"output ended before {what}; got {self.seen!r}")
            self.seen.append(line)
            if pred(line):
                return line


def stop_proc(p: subprocess.Popen):
    if p.poll() is None:
        p.kill()
    p.wait(10)


# ---------------------------------------------------------------- up, names and labels


def test_up_creates_containers_and_default_network_with_compose_names_and_labels(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": httpd("hello-from-web", ports=["18080:8080"]), "worker": sleeper()}})
    r = c.up()
    assert progress(r.stderr, "Network", "t1_default", "Created"), r.stderr
    assert progress(r.stderr, "Container", "t1-web-1", "Started"), r.stderr
    assert progress(r.stderr, "Container", "t1-worker-1", "Started"), r.stderr

    assert names(engine) == ["t1-web-1", "t1-worker-1"]
    for name, service in (("t1-web-1", "web"), ("t1-worker-1", "worker")):
        assert engine.state(name)["Status"] == "running"
        lab = labels(engine, name)
        assert lab[PROJECT_LABEL] == "t1"
        assert lab[SERVICE_LABEL] == service
        assert lab[NUMBER_LABEL] == "1"
        assert lab[ONEOFF_LABEL] == "False"
        assert HEX64.match(lab[HASH_LABEL]), lab
        assert lab["com.docker.compose.project.working_dir"] == str(c.dir)
        assert lab["com.docker.compose.project.config_files"] == str(c.file)
        assert list(engine.inspect(name)["NetworkSettings"]["Networks"]) == ["t1_default"]
    # One network, PROJECT_default, labelled as compose labels it.
    net = net_inspect(engine, "t1_default")
    assert net["Labels"][PROJECT_LABEL] == "t1"
    assert net["Labels"][NETWORK_LABEL] == "default"
    assert net["Driver"] == "bridge"
    # The published port serves the container's file to the host.
    assert host_get(engine, 18080) == "hello-from-web\n"


def test_up_attached_streams_prefixed_logs_until_the_containers_exit(engine, compose):
    c = compose("t1")
    c.model({"services": {"once": {"image": "busybox", "command": ["sh", "-c", "echo attached-out; echo second-line"]}}})
    r = c.ok("up")
    assert re.search(r"^t1-once-1 +\| attached-out$", r.stdout, re.M), r.stdout
    assert re.search(r"^t1-once-1 +\| second-line$", r.stdout, re.M), r.stdout
    st = engine.state("t1-once-1")
    assert st["Status"] == "exited" and st["ExitCode"] == 0


def test_container_name_overrides_the_generated_name(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(container_name="bt-custom-web")}})
    c.up()
    assert names(engine) == ["bt-custom-web"]
    lab = labels(engine, "bt-custom-web")
    assert (lab[PROJECT_LABEL], lab[SERVICE_LABEL], lab[NUMBER_LABEL]) == ("t1", "web", "1")
    assert [row["Name"] for row in ps_json(c)] == ["bt-custom-web"]


def test_up_twice_keeps_the_same_running_containers(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(), "worker": sleeper()}})
    c.up()
    before = {n: (cid(engine, n), engine.state(n)["StartedAt"]) for n in names(engine)}
    r = c.up()
    after = {n: (cid(engine, n), engine.state(n)["StartedAt"]) for n in names(engine)}
    assert after == before
    assert progress(r.stderr, "Container", "t1-web-1", "Running"), r.stderr
    assert progress(r.stderr, "Container", "t1-worker-1", "Running"), r.stderr
    assert not re.search(r"Recreate|Created", r.stderr), r.stderr


def test_changed_service_is_recreated_alone_and_keeps_its_named_volume_data(engine, compose):
    c = compose("t1")
    model = {"services": {"web": sleeper(environment={"GREETING": "first"}, volumes=["data:/data"]),
                          "worker": sleeper()},
             "volumes": {"data": {}}}
    c.model(model)
    c.up()
    assert c.exec("web", "sh", "-c", "echo kept-data > /data/f").returncode == 0
    web, worker = cid(engine, "t1-web-1"), cid(engine, "t1-worker-1")
    web_hash = labels(engine, "t1-web-1")[HASH_LABEL]

    model["services"]["web"]["environment"]["GREETING"] = "second"
    c.model(model)
    r = c.up()
    assert progress(r.stderr, "Container", "t1-web-1", "Recreated"), r.stderr
    assert cid(engine, "t1-web-1") != web
    assert cid(engine, "t1-worker-1") == worker
    assert labels(engine, "t1-web-1")[HASH_LABEL] != web_hash
    assert env_of(engine, "t1-web-1")["GREETING"] == "second"
    assert engine.state("t1-web-1")["Status"] == "running"
    assert c.exec("web", "cat", "/data/f").stdout == "kept-data\n"
    assert names(engine) == ["t1-web-1", "t1-worker-1"]


def test_force_recreate_replaces_every_container(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(), "worker": sleeper()}})
    c.up()
    before = {n: cid(engine, n) for n in names(engine)}
    c.up("--force-recreate")
    after = {n: cid(engine, n) for n in names(engine)}
    assert sorted(after) == sorted(before)
    assert all(after[n] != before[n] for n in before)
    assert all(engine.state(n)["Status"] == "running" for n in after)


def test_no_deps_and_named_services_start_only_what_is_asked(engine, compose):
    c = compose("t1")
    c.model({"services": {"db": sleeper(), "web": sleeper(depends_on=["db"]), "other": sleeper()}})
    c.up("--no-deps", "web")
    assert names(engine) == ["t1-web-1"]
    c.up("web")
    assert names(engine) == ["t1-db-1", "t1-web-1"]
    assert engine.state("t1-db-1")["Status"] == "running"


# ---------------------------------------------------------------- down and volumes


def test_down_removes_containers_and_networks_but_keeps_named_volume_data(engine, compose):
    c = compose("t1")
    c.model({"services": {"app": sleeper(volumes=["data:/data"])}, "volumes": {"data": {}}})
    c.up()
    assert c.exec("app", "sh", "-c", "echo persisted > /data/f").returncode == 0
    vol = vol_inspect(engine, "t1_data")
    assert vol["Labels"][PROJECT_LABEL] == "t1" and vol["Labels"][VOLUME_LABEL] == "data"
    mounts = {m["Destination"]: m for m in engine.inspect("t1-app-1")["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == "t1_data"

    r = c.down()
    assert progress(r.stderr, "Container", "t1-app-1", "Removed"), r.stderr
    assert progress(r.stderr, "Network", "t1_default", "Removed"), r.stderr
    assert names(engine) == []
    assert "t1_default" not in network_names(engine)
    assert "t1_data" in volume_names(engine)

    # Up again (at once, as a user would): the data is still there.
    c.up()
    assert c.exec("app", "cat", "/data/f").stdout == "persisted\n"


def test_down_v_removes_the_named_volumes(engine, compose):
    c = compose("t1")
    c.model({"services": {"app": sleeper(volumes=["data:/data"])}, "volumes": {"data": {}}})
    c.up()
    assert c.exec("app", "sh", "-c", "echo gone-soon > /data/f").returncode == 0
    r = c.down("-v")
    assert progress(r.stderr, "Volume", "t1_data", "Removed"), r.stderr
    assert "t1_data" not in volume_names(engine)
    assert not (engine.root / "volumes" / "t1_data").exists()
    assert names(engine) == [] and "t1_default" not in network_names(engine)
    assert project_objects(engine, "t1") == {"containers": [], "networks": [], "volumes": []}


def test_declared_volumes_and_networks_are_named_and_project_objects(engine, compose):
    c = compose("t1")
    c.model({"services": {"app": sleeper(volumes=["data:/data", "shared:/shared"], networks=["back", "custom"])},
             "volumes": {"data": {}, "shared": {"name": "bt-compose-shared"}},
             "networks": {"back": {}, "custom": {"name": "bt-compose-net"}}})
    c.up()
    assert {"t1_data", "bt-compose-shared"} <= set(volume_names(engine))
    for vol, key in (("t1_data", "data"), ("bt-compose-shared", "shared")):
        lab = vol_inspect(engine, vol)["Labels"]
        assert lab[PROJECT_LABEL] == "t1" and lab[VOLUME_LABEL] == key
    nets = set(network_names(engine))
    assert {"t1_back", "bt-compose-net"} <= nets
    assert "t1_default" not in nets  # no service uses the default network
    for net, key in (("t1_back", "back"), ("bt-compose-net", "custom")):
        lab = net_inspect(engine, net)["Labels"]
        assert lab[PROJECT_LABEL] == "t1" and lab[NETWORK_LABEL] == key
    assert sorted(engine.inspect("t1-app-1")["NetworkSettings"]["Networks"]) == ["bt-compose-net", "t1_back"]
    mounts = {m["Destination"]: m.get("Name") for m in engine.inspect("t1-app-1")["Mounts"]}
    assert mounts == {"/data": "t1_data", "/shared": "bt-compose-shared"}

    c.down()
    nets = set(network_names(engine))
    assert "t1_back" not in nets and "bt-compose-net" not in nets
    assert {"t1_data", "bt-compose-shared"} <= set(volume_names(engine))
    c.down("-v")
    assert not {"t1_data", "bt-compose-shared"} & set(volume_names(engine))


def test_external_volume_and_network_are_used_and_never_removed(engine, compose):
    engine.ok("volume", "create", "bt-ext-vol")
    engine.ok("network", "create", "bt-ext-net")
    try:
        engine.ok("run", "--rm", "-v", "bt-ext-vol:/v", "busybox", "sh", "-c", "echo external-data > /v/f")
        c = compose("t1")
        c.model({"services": {"app": sleeper(volumes=["ext:/ext"], networks=["bt-ext-net"])},
                 "volumes": {"ext": {"external": True, "name": "bt-ext-vol"}},
                 "networks": {"bt-ext-net": {"external": True}}})
        c.up()
        assert c.exec("app", "cat", "/ext/f").stdout == "external-data\n"
        assert list(engine.inspect("t1-app-1")["NetworkSettings"]["Networks"]) == ["bt-ext-net"]
        c.down("-v")
        assert names(engine) == []
        assert "bt-ext-vol" in volume_names(engine)
        assert "bt-ext-net" in network_names(engine)
    finally:
        engine.run("rm", "-f", "t1-app-1")
        engine.run("network", "rm", "bt-ext-net")
        engine.run("volume", "rm", "bt-ext-vol")


def test_short_bind_syntax_creates_a_missing_host_directory(engine, compose):
    c = compose("t1")
    (c.dir / "existing").mkdir()
    (c.dir / "existing" / "f").write_text("from-host\n")
    c.model({"services": {"app": sleeper(volumes=["./made-by-up:/m", "./existing:/e:ro"])}})
    c.up()
    assert (c.dir / "made-by-up").is_dir()
    assert c.exec("app", "sh", "-c", "echo from-container > /m/out").returncode == 0
    assert (c.dir / "made-by-up" / "out").read_text() == "from-container\n"
    assert c.exec("app", "cat", "/e/f").stdout == "from-host\n"
    assert c.exec("app", "touch", "/e/g").returncode != 0  # read-only
    assert not (c.dir / "existing" / "g").exists()


# ---------------------------------------------------------------- networking


def test_service_dns_aliases_and_network_isolation(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": httpd("web-body", networks={"front": {"aliases": ["www-alias"]}}),
                          "client": sleeper(networks=["front"]),
                          "outsider": sleeper(networks=["back"])},
             "networks": {"front": {}, "back": {}}})
    c.up()
    assert "t1_default" not in network_names(engine)
    assert fetch_from(c, "client", "http://web:8080/") == "web-body\n"
    assert fetch_from(c, "client", "http://www-alias:8080/") == "web-body\n"
    assert fetch_from(c, "client", "http://t1-web-1:8080/") == "web-body\n"
    # The outsider is on another network of the project: neither the name nor the address works.
    assert c.exec("outsider", "timeout", "3", "wget", "-q", "-O", "-", "http://web:8080/").returncode != 0
    assert c.exec("outsider", "timeout", "3", "wget", "-q", "-O", "-", "http://www-alias:8080/").returncode != 0
    ip = engine.inspect("t1-web-1")["NetworkSettings"]["Networks"]["t1_front"]["IPAddress"]
    assert ip
    r = c.exec("outsider", "timeout", "3", "wget", "-q", "-O", "-", f"http://{ip}:8080/")
    assert r.returncode != 0 and "web-body" not in r.stdout
    # ... while the client reaches the same address.
    assert fetch_from(c, "client", f"http://{ip}:8080/") == "web-body\n"


def test_port_and_top(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": httpd("port-body", ports=["18083:8080"])}})
    c.up()
    r = c.ok("port", "web", "8080")
    assert r.stdout.splitlines()[0] == "0.0.0.0:18083"
    assert host_get(engine, 18083) == "port-body\n"
    c.fails("port", "nosuch", "8080")
    r = c.ok("top")
    assert r.stdout.splitlines()[0] == "t1-web-1"
    assert "httpd -f -p 8080 -h /www" in r.stdout


# ---------------------------------------------------------------- ps, logs, ls, events


def test_ps_formats_and_filters(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": httpd("ps", ports=["18084:8080"]), "worker": sleeper()}})
    c.up()
    rows = {r["Name"]: r for r in ps_json(c)}
    assert sorted(rows) == ["t1-web-1", "t1-worker-1"]
    for name, service in (("t1-web-1", "web"), ("t1-worker-1", "worker")):
        row = rows[name]
        assert row["Service"] == service
        assert row["State"] == "running"
        assert row["Project"] == "t1"
        assert row["ID"] == cid(engine, name)
        assert row["Image"] == "busybox"
    pubs = [p for p in rows["t1-web-1"]["Publishers"] if p["PublishedPort"]]
    assert {(p["TargetPort"], p["PublishedPort"], p["Protocol"]) for p in pubs} == {(8080, 18084, "tcp")}

    assert sorted(c.ok("ps", "-q").stdout.split()) == sorted([cid(engine, "t1-web-1"), cid(engine, "t1-worker-1")])
    assert sorted(c.ok("ps", "--services").stdout.split()) == ["web", "worker"]
    assert c.ok("ps", "--format", "{{.Name}} {{.Service}} {{.State}}", "worker").stdout == "t1-worker-1 worker running\n"
    table = c.ok("ps").stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]
    assert sorted(l.split()[0] for l in table[1:]) == ["t1-web-1", "t1-worker-1"]

    # A stopped container: listed only with -a (or a status filter), as exited.
    c.ok("stop", "-t", "1", "worker")
    assert [r["Name"] for r in ps_json(c)] == ["t1-web-1"]
    rows = {r["Name"]: r for r in ps_json(c, "-a")}
    assert rows["t1-worker-1"]["State"] == "exited"
    assert rows["t1-web-1"]["State"] == "running"
    assert [r["Name"] for r in ps_json(c, "--status", "exited")] == ["t1-worker-1"]


def test_logs_prefix_tail_no_prefix_and_service_filter(engine, compose):
    c = compose("t1")
    c.model({"services": {
        "a": sleeper(command=["sh", "-c", "echo one; echo two; echo three; exec sleep 3600"]),
        "longer": sleeper(command=["sh", "-c", "echo alpha; exec sleep 3600"])}})
    c.up()
    engine.wait_log("t1-a-1", "three")
    engine.wait_log("t1-longer-1", "alpha")
    assert c.ok("logs", "a").stdout == "t1-a-1  | one\nt1-a-1  | two\nt1-a-1  | three\n"
    assert c.ok("logs", "--tail", "1", "a").stdout == "t1-a-1  | three\n"
    assert c.ok("logs", "--no-log-prefix", "a").stdout == "one\ntwo\nthree\n"
    lines = c.ok("logs").stdout.splitlines()
    assert len(lines) == 4, lines
    a = [l for l in lines if l.startswith("t1-a-1 ")]
    longer = [l for l in lines if l.startswith("t1-longer-1 ")]
    assert [re.sub(r"^t1-a-1 +\| ", "", l) for l in a] == ["one", "two", "three"], lines
    assert [re.sub(r"^t1-longer-1 +\| ", "", l) for l in longer] == ["alpha"], lines
    c.fails("logs", "nosuch")


def test_logs_follow_streams_new_lines_and_ends_when_the_containers_stop(engine, compose):
    c = compose("t1")
    c.model({"services": {"talker": {
        "image": "busybox",
        "command": ["sh", "-c", "echo first; while [ ! -f /tmp/go ]; do sleep 0.1; done; echo second"]}}})
    c.up()
    p = engine.popen("compose", *c.global_args(), "logs", "-f", stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out = LineReader(p)
        out.until(lambda l: l == "t1-talker-1  | first\n", "the first line")
        assert c.exec("talker", "touch", "/tmp/go").returncode == 0
        out.until(lambda l: l == "t1-talker-1  | second\n", "the line written after -f started")
        assert p.wait(30) == 0
    finally:
        stop_proc(p)


def test_ls_lists_running_and_stopped_projects(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(), "worker": sleeper()}})
    c.up()
    rows = {r["Name"]: r for r in json.loads(engine.ok("compose", "ls", "--format", "json"))}
    assert rows["t1"] == {"Name": "t1", "Status": "running(2)", "ConfigFiles": str(c.file)}
    assert "t1" in engine.ok("compose", "ls", "-q").split()
    table = engine.ok("compose", "ls").splitlines()
    assert table[0].split() == ["NAME", "STATUS", "CONFIG", "FILES"]
    assert ["t1", "running(2)", str(c.file)] in [l.split() for l in table[1:]]

    c.ok("stop", "-t", "1")
    assert "t1" not in {r["Name"] for r in json.loads(engine.ok("compose", "ls", "--format", "json"))}
    rows = {r["Name"]: r for r in json.loads(engine.ok("compose", "ls", "-a", "--format", "json"))}
    assert rows["t1"]["Status"] == "exited(2)"
    c.down()
    assert "t1" not in {r["Name"] for r in json.loads(engine.ok("compose", "ls", "-a", "--format", "json"))}


def test_events_json_reports_container_actions_with_the_service(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(), "worker": sleeper()}})
    c.up()
    web = cid(engine, "t1-web-1")
    p = engine.popen("compose", *c.global_args(), "events", "--json", "web", stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out = LineReader(p)
        # The subscription gives no "ready" signal: restart until a start event arrives.
        got = None
        deadline = time.monotonic() + 60
        while got is None:
            assert time.monotonic() < deadline, f"no start event; got {out.seen!r}"
            c.ok("restart", "-t", "0", "web")
            c.ok("restart", "-t", "0", "worker")
            try:
                got = out.until(lambda l: '"start"' in l, "a start event", timeout=3)
            except AssertionError:
                assert p.poll() is None, f"events exited: {p.stderr.read()}"
        ev = json.loads(got)
        assert ev["type"] == "container"
        assert ev["action"] == "start"
        assert ev["service"] == "web"
        assert ev["id"] == web
        assert ev["attributes"]["name"] == "t1-web-1"
        assert not any(k.startswith("com.docker.compose.") for k in ev["attributes"])
        assert "time" in ev
        # Only the service asked for.
        assert all(json.loads(l)["service"] == "web" for l in out.seen), out.seen
    finally:
        stop_proc(p)


# ---------------------------------------------------------------- exec, run


def test_exec_status_env_user_workdir_and_index(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(deploy={"replicas": 2})}})
    c.up()
    assert c.exec("web", "sh", "-c", "exit 7").returncode == 7
    r = c.run("exec", "-T", "-e", "K=V", "-u", "1234", "-w", "/tmp", "web", "sh", "-c", 'echo "$K $(id -u) $(pwd)"')
    assert (r.returncode, r.stdout) == (0, "V 1234 /tmp\n"), r.stderr
    assert c.exec("web", "sh", "-c", "echo second > /tmp/which", index=2).returncode == 0
    assert c.exec("web", "sh", "-c", "echo first > /tmp/which").returncode == 0
    assert engine.ok("exec", "t1-web-2", "cat", "/tmp/which") == "second\n"
    assert engine.ok("exec", "t1-web-1", "cat", "/tmp/which") == "first\n"
    assert c.run("exec", "-T", "nosuch", "true").returncode != 0
    c.ok("stop", "-t", "1")
    r = c.exec("web", "true")
    assert r.returncode != 0 and "web" in r.stderr, r.stderr


def test_run_rm_prints_the_output_removes_the_container_and_starts_dependencies(engine, compose):
    c = compose("t1")
    c.model({"services": {"db": sleeper(),
                          "web": sleeper(depends_on=["db"], environment={"FROM_FILE": "file-value"},
                                         volumes=["data:/data"])},
             "volumes": {"data": {}}})
    oneoff = f"label={ONEOFF_LABEL}=True"
    # --no-deps: only the one-off container (then removed), no db.
    r = c.ok("run", "--rm", "--no-deps", "web", "sh", "-c", "echo run-output; echo $FROM_FILE; echo x > /data/f")
    assert r.stdout == "run-output\nfile-value\n"
    assert names(engine) == []
    # Without it: db is started first; the service's own container is not created.
    r = c.ok("run", "--rm", "web", "cat", "/data/f")
    assert r.stdout == "x\n"
    assert names(engine) == ["t1-db-1"]
    assert engine.state("t1-db-1")["Status"] == "running"
    assert engine.run("ps", "-aq", "--filter", oneoff).stdout.split() == []
    # Exit status, -e, --entrypoint, -u, -w.
    assert c.run("run", "--rm", "web", "sh", "-c", "exit 5").returncode == 5
    assert c.ok("run", "--rm", "-e", "X=42", "web", "sh", "-c", "echo $X").stdout == "42\n"
    assert c.ok("run", "--rm", "--entrypoint", "echo", "web", "a", "b").stdout == "a b\n"
    assert c.ok("run", "--rm", "-u", "4321", "-w", "/tmp", "web", "sh", "-c", "echo $(id -u) $(pwd)").stdout \
        == "4321 /tmp\n"
    assert engine.run("ps", "-aq", "--filter", oneoff).stdout.split() == []


def test_run_without_rm_keeps_a_one_off_container(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper()}})
    assert c.ok("run", "--name", "bt-oneoff", "web", "echo", "kept").stdout == "kept\n"
    lab = labels(engine, "bt-oneoff")
    assert (lab[PROJECT_LABEL], lab[SERVICE_LABEL], lab[ONEOFF_LABEL]) == ("t1", "web", "True")
    assert engine.state("bt-oneoff")["Status"] == "exited"
    # ps shows one-off containers with -a only.
    assert [r["Name"] for r in ps_json(c)] == []
    assert [r["Name"] for r in ps_json(c, "-a")] == ["bt-oneoff"]
    # -d: started in the background, its id printed; named PROJECT-SERVICE-run-<12 hex>.
    r = c.ok("run", "-d", "web", "sleep", "3600")
    detached = [n for n in names(engine) if n.startswith("t1-web-run-")]
    assert len(detached) == 1 and re.match(r"^t1-web-run-[0-9a-f]{12}$", detached[0]), detached
    assert engine.state(detached[0])["Status"] == "running"
    assert labels(engine, detached[0])[ONEOFF_LABEL] == "True"
    assert r.stdout.strip() == cid(engine, detached[0]), r.stdout
    # down --remove-orphans removes one-off containers too.
    c.down("--remove-orphans")
    assert names(engine) == []


# ---------------------------------------------------------------- start, stop, restart, rm


def test_stop_start_restart(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(), "worker": sleeper()}})
    c.up()
    ids = {n: cid(engine, n) for n in names(engine)}
    r = c.ok("stop", "-t", "1", "web")
    assert progress(r.stderr, "Container", "t1-web-1", "Stopped"), r.stderr
    assert engine.state("t1-web-1")["Status"] == "exited"
    assert engine.state("t1-worker-1")["Status"] == "running"

    r = c.ok("start")
    assert progress(r.stderr, "Container", "t1-web-1", "Started"), r.stderr
    assert all(engine.state(n)["Status"] == "running" for n in ids)
    started = {n: engine.state(n)["StartedAt"] for n in ids}

    c.ok("restart", "-t", "1")
    for n in ids:
        st = engine.state(n)
        assert st["Status"] == "running" and st["StartedAt"] != started[n], n
    c.ok("stop", "-t", "1")
    assert all(engine.state(n)["Status"] == "exited" for n in ids)
    # The same containers throughout.
    assert {n: cid(engine, n) for n in names(engine)} == ids


def test_rm_removes_stopped_containers_and_with_s_running_ones(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(volumes=["/anon"]), "worker": sleeper()}})
    c.up()
    anon = [m["Name"] for m in engine.inspect("t1-web-1")["Mounts"] if m["Destination"] == "/anon"]
    assert len(anon) == 1 and anon[0] in volume_names(engine)
    # Nothing stopped: nothing removed.
    c.ok("rm", "-f")
    assert names(engine) == ["t1-web-1", "t1-worker-1"]
    c.ok("stop", "-t", "1", "web")
    r = c.ok("rm", "-f", "-v")
    assert progress(r.stderr, "Container", "t1-web-1", "Removed"), r.stderr
    assert names(engine) == ["t1-worker-1"]
    assert anon[0] not in volume_names(engine)
    c.ok("rm", "-s", "-f")
    assert names(engine) == []


# ---------------------------------------------------------------- config


def test_config_json_is_the_long_form(engine, compose):
    c = compose("t1")
    c.write("""\
        services:
          web:
            image: busybox
            command: ["sleep", "3600"]
            ports:
              - "8080:80"
              - "127.0.0.1:9090:90/udp"
            volumes:
              - ./data:/data
              - named:/named:ro
            environment:
              - A=1
        volumes:
          named: {}
        """)
    before = world(engine)
    cfg = json.loads(c.ok("config", "--format", "json").stdout)
    assert cfg["name"] == "t1"
    web = cfg["services"]["web"]
    assert web["image"] == "busybox"
    assert web["command"] == ["sleep", "3600"]
    assert web["environment"] == {"A": "1"}
    ports = web["ports"]
    assert len(ports) == 2, ports
    assert {k: ports[0].get(k) for k in ("target", "published", "protocol")} == \
        {"target": 80, "published": "8080", "protocol": "tcp"}
    assert not ports[0].get("host_ip")
    assert {k: ports[1].get(k) for k in ("host_ip", "target", "published", "protocol")} == \
        {"host_ip": "127.0.0.1", "target": 90, "published": "9090", "protocol": "udp"}
    vols = {v["target"]: v for v in web["volumes"]}
    assert {k: vols["/data"].get(k) for k in ("type", "source", "target")} == \
        {"type": "bind", "source": str(c.dir / "data"), "target": "/data"}
    assert {k: vols["/named"].get(k) for k in ("type", "source", "target", "read_only")} == \
        {"type": "volume", "source": "named", "target": "/named", "read_only": True}
    assert cfg["networks"]["default"]["name"] == "t1_default"
    assert cfg["volumes"]["named"]["name"] == "t1_named"

    assert c.ok("config", "--services").stdout == "web\n"
    assert c.ok("config", "--volumes").stdout == "named\n"
    assert c.ok("config", "-q").stdout == ""
    yaml_out = c.ok("config").stdout
    assert re.search(r"^name: t1$", yaml_out, re.M) and re.search(r"^services:$", yaml_out, re.M), yaml_out
    # config creates nothing, not even the bind source.
    assert world(engine) == before
    assert not (c.dir / "data").exists()


# ---------------------------------------------------------------- interpolation, env files, names


def test_interpolation_from_dotenv_defaults_escapes_and_process_environment(engine, compose):
    c = compose("t1")
    (c.dir / ".env").write_text("BT_IMG=busybox\nBT_GREETING=from-dotenv\nBT_OVERRIDE=dotenv\n")
    c.write("""\
        services:
          web:
            image: ${BT_IMG}
            command: ["sh", "-c", "echo home=$$HOME; exec sleep 3600"]
            stop_grace_period: 1s
            environment:
              G: ${BT_GREETING}
              D: ${BT_COMPOSE_UNSET_VAR:-fallback}
              E: "$${NOT_INTERPOLATED}"
              O: ${BT_OVERRIDE}
              U: "${BT_COMPOSE_UNSET_VAR}"
        """)
    env = {"BT_OVERRIDE": "from-process"}
    cfg = json.loads(c.ok("config", "--format", "json", env=env).stdout)
    want = {"G": "from-dotenv", "D": "fallback", "E": "${NOT_INTERPOLATED}", "O": "from-process", "U": ""}
    assert cfg["services"]["web"]["environment"] == want
    assert cfg["services"]["web"]["image"] == "busybox"
    assert cfg["services"]["web"]["command"] == ["sh", "-c", "echo home=$HOME; exec sleep 3600"]
    r = c.up(env=env)
    assert '"BT_COMPOSE_UNSET_VAR" variable is not set' in r.stderr, r.stderr
    e = env_of(engine, "t1-web-1")
    assert {k: e.get(k) for k in want} == want
    assert engine.wait_log("t1-web-1", "home=") == "home=/root\n"


def test_env_file_option_replaces_dotenv(engine, compose):
    c = compose("t1")
    (c.dir / ".env").write_text("BT_VALUE=dotenv\n")
    (c.dir / "other.env").write_text("BT_VALUE=other-file\n")
    c.model({"services": {"web": {"image": "busybox", "environment": {"V": "${BT_VALUE:-unset}"}}}})
    assert json.loads(c.ok("config", "--format", "json").stdout)["services"]["web"]["environment"] == {"V": "dotenv"}
    cfg = json.loads(c.ok("config", "--format", "json", pre=["--env-file", str(c.dir / "other.env")]).stdout)
    assert cfg["services"]["web"]["environment"] == {"V": "other-file"}


def test_service_env_file_is_loaded_and_environment_wins(engine, compose):
    c = compose("t1")
    (c.dir / "web.env").write_text("# a comment\nA=from-env-file\nB=from-env-file\nQ=\"quoted value\"\n")
    c.model({"services": {"web": sleeper(env_file=["web.env"], environment={"B": "from-environment"})}})
    c.up()
    e = env_of(engine, "t1-web-1")
    assert (e["A"], e["B"], e["Q"]) == ("from-env-file", "from-environment", "quoted value")
    assert c.exec("web", "sh", "-c", 'echo "$A|$B"').stdout == "from-env-file|from-environment\n"


def test_project_name_from_directory_name_key_and_project_directory(engine, compose, tmp_path):
    # No -p: the (normalised) name of the first file's directory.
    c = compose(None, tmp_path / "My_Proj", cleanup_name="my_proj")
    c.model({"services": {"web": sleeper()}})
    assert json.loads(c.ok("config", "--format", "json").stdout)["name"] == "my_proj"
    c.up()
    assert names(engine, "my_proj") == ["my_proj-web-1"]
    assert "my_proj_default" in network_names(engine)
    c.ok("down", "-t", "1")
    assert names(engine, "my_proj") == []

    # name: in the file; -p wins over it.
    n = compose(None, tmp_path / "named", cleanup_name="from-key")
    n.model({"name": "from-key", "services": {"web": {"image": "busybox"}}})
    assert json.loads(n.ok("config", "--format", "json").stdout)["name"] == "from-key"
    assert json.loads(n.ok("config", "--format", "json", pre=["-p", "from-flag"]).stdout)["name"] == "from-flag"

    # --project-directory: relative paths and .env from there, not from the file's directory.
    pd = tmp_path / "pd"
    pd.mkdir()
    (pd / ".env").write_text("BT_PD=from-project-dir\n")
    d = compose("t3", tmp_path / "files")
    (d.dir / ".env").write_text("BT_PD=from-file-dir\n")
    d.model({"services": {"web": {"image": "busybox", "environment": {"P": "${BT_PD}"}, "volumes": ["./data:/data"]}}})
    cfg = json.loads(d.ok("config", "--format", "json", pre=["--project-directory", str(pd)]).stdout)
    assert cfg["services"]["web"]["environment"] == {"P": "from-project-dir"}
    assert cfg["services"]["web"]["volumes"][0]["source"] == str(pd / "data")


# ---------------------------------------------------------------- several files, profiles


def test_several_files_are_merged(engine, compose):
    c = compose("t1")
    for d, body in (("a", "from-a"), ("b", "from-b"), ("x", "from-x")):
        (c.dir / d).mkdir(parents=True)
        (c.dir / d / "name").write_text(body + "\n")
    base = c.model({"services": {"web": sleeper(environment={"A": "base", "B": "base"}, labels={"tier": "base"},
                                                ports=["18081:8080"], volumes=["./a:/data", "./x:/x"])}},
                   "base.yaml")
    script = "mkdir -p /www && cp /data/name /www/index.html && exec httpd -f -p 8080 -h /www"
    over = c.model({"services": {"web": {"command": ["sh", "-c", script],
                                         "environment": {"B": "override", "C": "override"},
                                         "labels": {"extra": "yes"},
                                         "ports": ["18082:8080"],
                                         "volumes": ["./b:/data"]}}},
                   "override.yaml")
    c.files = [base, over]
    cfg = json.loads(c.ok("config", "--format", "json").stdout)["services"]["web"]
    assert cfg["environment"] == {"A": "base", "B": "override", "C": "override"}
    assert cfg["command"] == ["sh", "-c", script]
    assert sorted(p["published"] for p in cfg["ports"]) == ["18081", "18082"]
    assert {v["target"]: v["source"] for v in cfg["volumes"]} == {"/data": str(c.dir / "b"), "/x": str(c.dir / "x")}
    assert cfg["labels"] == {"tier": "base", "extra": "yes"}

    c.up()
    e = env_of(engine, "t1-web-1")
    assert (e["A"], e["B"], e["C"]) == ("base", "override", "override")
    lab = labels(engine, "t1-web-1")
    assert (lab["tier"], lab["extra"]) == ("base", "yes")
    assert lab["com.docker.compose.project.config_files"] == f"{base},{over}"
    assert host_get(engine, 18081) == "from-b\n"
    assert host_get(engine, 18082) == "from-b\n"
    assert c.exec("web", "cat", "/x/name").stdout == "from-x\n"


def test_profiles_enable_services(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(), "debug": sleeper(profiles=["debug"]),
                          "tools": sleeper(profiles=["tools"])}})
    assert c.ok("config", "--services").stdout == "web\n"
    assert sorted(c.ok("config", "--services", pre=["--profile", "debug"]).stdout.split()) == ["debug", "web"]
    c.up()
    assert names(engine) == ["t1-web-1"]
    c.up(pre=["--profile", "debug"])
    assert names(engine) == ["t1-debug-1", "t1-web-1"]
    # Named on the command line: enabled whatever its profiles.
    c.up("tools")
    assert "t1-tools-1" in names(engine)
    assert all(engine.state(n)["Status"] == "running" for n in names(engine))
    c.ok("down", "-t", "1", pre=["--profile", "debug", "--profile", "tools"])
    assert names(engine) == []


# ---------------------------------------------------------------- dependencies, replicas, orphans


def test_depends_on_service_healthy_waits_for_the_health_check(engine, compose):
    c = compose("t1")
    c.write("""\
        services:
          db:
            image: busybox
            command: ["sh", "-c", "sleep 2; touch /shared/ready; exec sleep 3600"]
            stop_grace_period: 1s
            volumes: [shared:/shared]
            healthcheck:
              test: ["CMD", "test", "-f", "/shared/ready"]
              interval: 1s
              timeout: 1s
              retries: 60
          web:
            image: busybox
            command: ["sh", "-c", "if [ -f /shared/ready ]; then echo saw-ready; else echo not-ready; fi; exec sleep 3600"]
            stop_grace_period: 1s
            volumes: [shared:/shared]
            depends_on:
              db:
                condition: service_healthy
        volumes:
          shared: {}
        """)
    r = c.up()
    healthy = re.search(r"^\s*Container t1-db-1\s+Healthy\s*$", r.stderr, re.M)
    started = re.search(r"^\s*Container t1-web-1\s+Started\s*$", r.stderr, re.M)
    assert healthy and started and healthy.start() < started.start(), r.stderr
    assert engine.state("t1-db-1")["Health"]["Status"] == "healthy"
    assert engine.wait_log("t1-web-1", "ready") == "saw-ready\n"


def test_depends_on_service_completed_successfully(engine, compose):
    c = compose("t1")
    c.model({"services": {
        "init": {"image": "busybox", "command": ["sh", "-c", "sleep 1; echo initialized > /shared/init"],
                 "volumes": ["shared:/shared"]},
        "web": sleeper(command=["sh", "-c", "cat /shared/init || echo missing; exec sleep 3600"],
                       volumes=["shared:/shared"],
                       depends_on={"init": {"condition": "service_completed_successfully"}})},
        "volumes": {"shared": {}}})
    c.up()
    st = engine.state("t1-init-1")
    assert st["Status"] == "exited" and st["ExitCode"] == 0
    assert engine.wait_log("t1-web-1", "\n") == "initialized\n"  # whatever it printed


def test_depends_on_a_failed_one_shot_service_fails_up(engine, compose):
    c = compose("t1")
    c.model({"services": {
        "init": {"image": "busybox", "command": ["sh", "-c", "exit 3"]},
        "web": sleeper(depends_on={"init": {"condition": "service_completed_successfully"}})}})
    r = c.fails("up", "-d")
    assert "init" in r.stderr and "didn't complete successfully: exit 3" in r.stderr, r.stderr
    assert not exists(engine, "t1-web-1") or engine.state("t1-web-1")["Status"] != "running"


HEALTH = {"interval": "1s", "timeout": "1s", "retries": 60}


def test_up_wait_returns_once_the_services_are_healthy(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(command=["sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 3600"],
                                         healthcheck={"test": ["CMD", "test", "-f", "/tmp/ok"], **HEALTH})}})
    c.ok("up", "--wait")  # --wait implies -d
    assert engine.state("t1-web-1")["Health"]["Status"] == "healthy"


def test_up_wait_fails_when_a_service_is_unhealthy(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(healthcheck={"test": ["CMD", "false"], **HEALTH, "retries": 1})}})
    r = c.fails("up", "--wait")
    assert "t1-web-1" in r.stderr and "unhealthy" in r.stderr, r.stderr


def test_replicas_and_scale(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(deploy={"replicas": 2})}})
    c.up()
    assert names(engine) == ["t1-web-1", "t1-web-2"]
    assert [labels(engine, n)[NUMBER_LABEL] for n in names(engine)] == ["1", "2"]
    first = {n: cid(engine, n) for n in names(engine)}
    c.up("--scale", "web=3")
    assert names(engine) == ["t1-web-1", "t1-web-2", "t1-web-3"]
    assert all(cid(engine, n) == first[n] for n in first)
    assert all(engine.state(n)["Status"] == "running" for n in names(engine))
    assert labels(engine, "t1-web-3")[NUMBER_LABEL] == "3"
    c.up("--scale", "web=1")
    assert names(engine) == ["t1-web-1"]
    assert cid(engine, "t1-web-1") == first["t1-web-1"]


def test_a_dependency_scaled_to_zero_is_not_waited_for(engine, compose):
    # As docker compose (since 2.3): nothing runs to become healthy or complete, so no wait.
    c = compose("t1")
    c.model({"services": {"db": sleeper(deploy={"replicas": 0}),
                          "web": sleeper(depends_on={"db": {"condition": "service_healthy"}})}})
    c.up(timeout=60)
    assert names(engine) == ["t1-web-1"]


def test_orphans_are_kept_with_a_warning_and_removed_on_request(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(), "old": sleeper()}})
    c.up()
    c.model({"services": {"web": sleeper()}})
    r = c.up()
    assert "orphan" in r.stderr.lower() and "t1-old-1" in r.stderr, r.stderr
    assert names(engine) == ["t1-old-1", "t1-web-1"]
    c.up("--remove-orphans")
    assert names(engine) == ["t1-web-1"]


# ---------------------------------------------------------------- bad input: nothing created


BAD_INPUT = {
    "invalid_yaml": ("""\
        services:
          web:
            image: [busybox
        volumes:
          data: {}
        """, [], ["compose.yaml"]),
    "misspelled_key": ("""\
        services:
          web:
            imgae: busybox
          db:
            image: busybox
            volumes: [data:/data]
        volumes:
          data: {}
        """, [], ["compose.yaml", "imgae"]),
    "unknown_dependency": ("""\
        services:
          web:
            image: busybox
            depends_on: [nosuchservice]
            volumes: [data:/data]
        volumes:
          data: {}
        """, [], ["web", "nosuchservice"]),
    "dependency_cycle": ("""\
        services:
          a:
            image: busybox
            depends_on: [b]
          b:
            image: busybox
            depends_on: [c]
          c:
            image: busybox
            depends_on: [a]
            volumes: [data:/data]
        volumes:
          data: {}
        """, [], ["cycle"]),
    "missing_required_variable": ("""\
        services:
          web:
            image: busybox:${BT_COMPOSE_REQUIRED_TAG:?the tag must be set}
          db:
            image: busybox
            volumes: [data:/data]
        volumes:
          data: {}
        """, [], ["BT_COMPOSE_REQUIRED_TAG", "the tag must be set"]),
    "missing_external_volume": ("""\
        services:
          db:
            image: busybox
            command: ["sleep", "3600"]
            volumes: [data:/data]
          web:
            image: busybox
            command: ["sleep", "3600"]
            volumes: [ext:/ext]
        volumes:
          data: {}
          ext:
            external: true
            name: bt-no-such-volume
        """, [], ["bt-no-such-volume"]),
    "missing_external_network": ("""\
        services:
          db:
            image: busybox
            command: ["sleep", "3600"]
            volumes: [data:/data]
          web:
            image: busybox
            command: ["sleep", "3600"]
            networks: [outside]
        volumes:
          data: {}
        networks:
          outside:
            external: true
            name: bt-no-such-network
        """, [], ["bt-no-such-network"]),
    "unknown_service_argument": ("""\
        services:
          web:
            image: busybox
            command: ["sleep", "3600"]
            volumes: [data:/data]
        volumes:
          data: {}
        """, ["nosuchservice"], ["nosuchservice"]),
    "no_image": ("""\
        services:
          web:
            command: ["sleep", "3600"]
          db:
            image: busybox
            volumes: [data:/data]
        volumes:
          data: {}
        """, [], ["web"]),
    "missing_image_pull_never": ("""\
        services:
          db:
            image: busybox
            command: ["sleep", "3600"]
            volumes: [data:/data]
          web:
            image: 127.0.0.1:9/bt-no-such-image:1
            pull_policy: never
        volumes:
          data: {}
        """, [], ["bt-no-such-image"]),
}
# What `config` cannot know about (it looks at no engine state) or may not check.
CONFIG_ACCEPTS = {"missing_external_volume", "missing_external_network", "unknown_service_argument",
                  "missing_image_pull_never", "dependency_cycle"}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_and_creates_nothing(engine, compose, case):
    text, args, expected = BAD_INPUT[case]
    c = compose("t1")
    c.write(text)
    before = world(engine)
    r = c.fails("up", "-d", *args)
    for e in expected:
        assert e.lower() in r.stderr.lower(), f"{e!r} not in stderr: {r.stderr}"
    assert r.stdout == ""
    if case == "missing_image_pull_never":
        # pull_policy never: no pull is even tried (the image's registry is a dead port of the
        # test's loopback, so a wrong attempt cannot leave the namespace).
        assert not re.search(r"pull", r.stderr, re.I), r.stderr
    assert world(engine) == before
    assert project_objects(engine, "t1") == {"containers": [], "networks": [], "volumes": []}
    if case not in CONFIG_ACCEPTS:
        r = c.fails("config")
        for e in expected:
            assert e.lower() in r.stderr.lower(), f"{e!r} not in config's stderr: {r.stderr}"


# ---------------------------------------------------------------- a failed up rolls back


def test_failed_up_port_conflict_removes_what_it_created(engine, compose):
    c = compose("t1")
    c.model({"services": {"first": httpd("one", ports=["18090:8080"], volumes=["data:/data"]),
                          "second": httpd("two", ports=["18090:8080"], depends_on=["first"])},
             "volumes": {"data": {}}})
    before = world(engine)
    r = c.fails("up", "-d")
    assert "18090" in r.stderr, r.stderr
    assert world(engine) == before
    assert project_objects(engine, "t1") == {"containers": [], "networks": [], "volumes": []}


def test_up_after_a_failed_up_works(engine, compose):
    c = compose("t1")
    c.model({"services": {"first": httpd("one", ports=["18090:8080"]),
                          "second": httpd("two", ports=["18090:8080"], depends_on=["first"])}})
    c.fails("up", "-d")
    # The file fixed: the same names, network and port are free again.
    c.model({"services": {"first": httpd("one", ports=["18090:8080"])}})
    c.up()
    assert names(engine) == ["t1-first-1"]
    assert host_get(engine, 18090) == "one\n"


def test_failed_up_missing_bind_source_removes_what_it_created(engine, compose):
    c = compose("t1")
    missing = c.dir / "does-not-exist"
    c.model({"services": {"first": sleeper(volumes=["data:/data"]),
                          "second": sleeper(depends_on=["first"],
                                            volumes=[{"type": "bind", "source": "./does-not-exist", "target": "/x"}])},
             "volumes": {"data": {}}})
    before = world(engine)
    r = c.fails("up", "-d")
    assert str(missing) in r.stderr, r.stderr
    assert not missing.exists()  # the long syntax never creates the source
    assert world(engine) == before
    assert project_objects(engine, "t1") == {"containers": [], "networks": [], "volumes": []}


def test_failed_up_keeps_what_existed_before(engine, compose):
    c = compose("t1")
    model = {"services": {"web": httpd("kept", ports=["18091:8080"], volumes=["data:/data"])},
             "volumes": {"data": {}}}
    c.model(model)
    c.up()
    assert c.exec("web", "sh", "-c", "echo still-here > /data/f").returncode == 0
    web = cid(engine, "t1-web-1")
    # A second service, on a new network, with web's host port.
    model["services"]["clash"] = httpd("clash", ports=["18091:8080"], networks=["extra"])
    model["networks"] = {"extra": {}}
    c.model(model)
    r = c.fails("up", "-d")
    assert "18091" in r.stderr, r.stderr
    assert names(engine) == ["t1-web-1"]
    assert cid(engine, "t1-web-1") == web
    assert engine.state("t1-web-1")["Status"] == "running"
    assert "t1_extra" not in network_names(engine)
    assert "t1_default" in network_names(engine)
    assert c.exec("web", "cat", "/data/f").stdout == "still-here\n"
    assert host_get(engine, 18091) == "kept\n"


# ---------------------------------------------------------------- pull


def test_pull_and_up_pull_missing_images_from_a_loopback_registry(engine, compose, tmp_path):
    import registry_env as renv
    if not os.access(renv.REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry is not installed")
    storage = tmp_path / "registry"
    storage.mkdir()
    config = tmp_path / "registry.yml"
    config.write_text(json.dumps(renv._registry_config(5000, storage, None, None)))
    log = open(tmp_path / "registry.log", "wb")
    reg = subprocess.Popen([*engine.prefix(), renv.REGISTRY_BIN, "serve", str(config)],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        poll(lambda: reg.poll() is not None or engine.host("timeout", "5", "busybox", "wget", "-q", "-O", "-",
                                                           "http://127.0.0.1:5000/v2/").returncode == 0,
             "the registry")
        assert reg.poll() is None, (tmp_path / "registry.log").read_text()
        ref = "127.0.0.1:5000/bt/bb:1"
        engine.ok("tag", "busybox", ref)
        engine.ok("push", ref)
        engine.ok("rmi", ref)
        c = compose("t1")
        c.model({"services": {"web": sleeper(image=ref)}})
        c.ok("pull")
        images = lambda: engine.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()  # noqa: E731
        assert ref in images()
        engine.ok("rmi", ref)
        c.up()  # pull_policy "missing": up pulls it
        assert engine.state("t1-web-1")["Status"] == "running"
        assert ref in images()

        c2 = compose("t2")
        c2.model({"services": {"web": {"image": "127.0.0.1:5000/bt/none:1"}}})
        r = c2.fails("pull")
        assert "bt/none" in r.stderr, r.stderr
        c2.ok("pull", "--ignore-pull-failures")
    finally:
        reg.terminate()
        reg.wait(10)
        log.close()


def test_project_name_alone_finds_the_project_by_its_labels(engine, compose, tmp_path):
    """`-p NAME` without a compose file (docker compose allows it for ps, stop, start, down …):
    the project is what carries its labels."""
    c = compose("t1")
    c.model({"services": {"web": sleeper(volumes=["data:/data"], networks=["back"]), "worker": sleeper()},
             "volumes": {"data": {}}, "networks": {"back": {}}})
    c.up()
    assert c.exec("web", "sh", "-c", "echo kept > /data/f").returncode == 0
    bare = Compose(engine, tmp_path / "elsewhere", "t1")
    bare.files = []
    r = bare.ok("ps", "--format", "{{.Name}}")
    assert sorted(r.stdout.split()) == ["t1-web-1", "t1-worker-1"]
    bare.ok("stop", "-t", "1", "worker")
    assert engine.state("t1-worker-1")["Status"] == "exited"
    assert engine.state("t1-web-1")["Status"] == "running"
    bare.ok("start")
    assert engine.state("t1-worker-1")["Status"] == "running"
    # down without -v: containers and the project's networks go, the named volume stays.
    r = bare.ok("down", "-t", "1")
    assert names(engine) == []
    assert not any(n.startswith("t1_") for n in network_names(engine)), r.stderr
    assert "t1_data" in volume_names(engine)
    r = bare.ok("down", "-v", "-t", "1")
    assert "t1_data" not in volume_names(engine)
    assert project_objects(engine, "t1") == {"containers": [], "networks": [], "volumes": []}
    # Commands that need the model still say that the file is missing.
    r = bare.fails("up", "-d")
    assert "no configuration file provided" in r.stderr


def test_secrets_and_configs_are_read_only_files_in_the_container(engine, compose):
    c = compose("t1")
    (c.dir / "pw.txt").write_text("s3cret\n")
    c.model({"services": {"web": sleeper(
                 user="1000",
                 secrets=["pw", {"source": "token", "target": "api-token"}],
                 configs=["app.conf", {"source": "other", "target": "/etc/other.conf"}])},
             "secrets": {"pw": {"file": "./pw.txt"}, "token": {"environment": "BT_TOKEN"}},
             "configs": {"app.conf": {"content": "listen 80\n"}, "other": {"file": "./pw.txt"}}})
    c.ok("up", "-d", env={"BT_TOKEN": "tok-123"})
    # Read as the service's user (1000): secrets and configs are readable, not writable.
    r = c.ok("exec", "-T", "web", "sh", "-c",
             "cat /run/secrets/pw /run/secrets/api-token; echo; cat /app.conf /etc/other.conf")
    assert r.stdout == "s3cret\ntok-123\nlisten 80\ns3cret\n", r.stdout
    r = c.run("exec", "-T", "-u", "0", "web", "sh", "-c", "echo x > /run/secrets/pw")
    assert r.returncode != 0 and "Read-only" in r.stderr, r.stderr
    assert (c.dir / "pw.txt").read_text() == "s3cret\n"
    c.ok("down", "-t", "1")
    assert not (Path(engine.root) / "compose" / "t1").exists()


def test_undefined_secret_is_refused_before_anything_is_created(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(secrets=["nope"])}})
    r = c.run("up", "-d")
    assert r.returncode != 0
    assert 'service "web" refers to undefined secret nope' in r.stderr, r.stderr
    assert project_objects(engine, "t1") == {"containers": [], "networks": [], "volumes": []}


def test_extends_builds_on_a_service_of_another_file_with_its_relative_paths(engine, compose):
    c = compose("t1")
    (c.dir / "common" / "data").mkdir(parents=True)
    (c.dir / "common" / "data" / "seed.txt").write_text("from the base\n")
    c.write(textwrap.dedent("""\
        services:
          base:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            environment: {FROM_BASE: "yes", SHARED: base}
            volumes: ["./data:/data:ro"]
        """), "common/base.yml")
    c.write(textwrap.dedent("""\
        services:
          web:
            extends: {file: common/base.yml, service: base}
            environment: {SHARED: web}
          worker:
            extends: web
            environment: {ROLE: worker}
        """))
    c.up()
    assert names(engine) == ["t1-web-1", "t1-worker-1"]
    web, worker = env_of(engine, "t1-web-1"), env_of(engine, "t1-worker-1")
    assert (web["FROM_BASE"], web["SHARED"]) == ("yes", "web")
    assert (worker["FROM_BASE"], worker["SHARED"], worker["ROLE"]) == ("yes", "web", "worker")
    # ./data in common/base.yml is common/data, as the base's own file says.
    assert c.exec("worker", "cat", "/data/seed.txt").stdout == "from the base\n"


def test_extends_cycle_is_an_error_naming_the_chain(engine, compose):
    c = compose("t1")
    c.write("services:\n  a: {extends: b, image: busybox}\n  b: {extends: a, image: busybox}\n")
    r = c.run("up", "-d")
    assert r.returncode != 0
    assert "services.a.extends: circular reference: a -> b -> a" in r.stderr, r.stderr
    assert project_objects(engine, "t1") == {"containers": [], "networks": [], "volumes": []}


def test_depends_on_restart_restarts_dependents_when_the_dependency_is_updated(engine, compose):
    c = compose("t1")

    def model(greeting: str) -> dict:
        return {"services": {
            "db": sleeper(environment={"GREETING": greeting}),
            "web": sleeper(depends_on={"db": {"condition": "service_started", "restart": True}}),
            "other": sleeper(depends_on={"db": {"condition": "service_started"}})}}

    c.model(model("first"))
    c.up()
    started = {n: (cid(engine, n), engine.state(n)["StartedAt"]) for n in names(engine)}
    c.model(model("second"))
    r = c.up()
    assert progress(r.stderr, "Container", "t1-db-1", "Recreated"), r.stderr
    assert progress(r.stderr, "Container", "t1-web-1", "Restarting"), r.stderr
    web = (cid(engine, "t1-web-1"), engine.state("t1-web-1")["StartedAt"])
    assert web[0] == started["t1-web-1"][0] and web[1] != started["t1-web-1"][1]
    assert (cid(engine, "t1-other-1"), engine.state("t1-other-1")["StartedAt"]) == started["t1-other-1"]
    # An explicit restart of db restarts web as well, and leaves other alone.
    before_other = engine.state("t1-other-1")["StartedAt"]
    before_web = engine.state("t1-web-1")["StartedAt"]
    r = c.ok("restart", "db")
    assert progress(r.stderr, "Container", "t1-web-1", "Restarting"), r.stderr
    assert engine.state("t1-web-1")["StartedAt"] != before_web
    assert engine.state("t1-other-1")["StartedAt"] == before_other


def test_logs_on_a_terminal_are_coloured_per_service_and_plain_otherwise(engine, compose):
    c = compose("t1")
    c.model({"services": {"a": {"image": "busybox", "command": ["echo", "from-a"]},
                          "b": {"image": "busybox", "command": ["echo", "from-b"]}}})
    c.up()
    poll(lambda: all(engine.state(n)["Status"] == "exited" for n in ["t1-a-1", "t1-b-1"]), "both exited")

    def logs_on_tty(*flags) -> str:
        master, slave = pty.openpty()
        cmd = [*engine.prefix(), engine.binary, "--root", str(engine.root), "--config", str(engine.config_dir),
               "compose", *c.global_args(), "logs", *flags]
        env = {**os.environ, "BERTH_RUN_DIR": str(engine.run_dir)}
        env.pop("DOCKER_CONFIG", None)
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        assert p.wait(timeout=60) == 0, p.stderr.read()
        return out.decode().replace("\r\n", "\n")

    coloured = logs_on_tty()
    lines = {l for l in coloured.splitlines() if l}
    # Each service's prefix in its own colour, reset before the text.
    colour_of = {}
    for line in lines:
        m = re.match(r"^(\x1b\[[0-9;]+m)(t1-[ab]-1)\s+\|\x1b\[0m (.*)$", line)
        assert m, repr(line)
        colour_of[m.group(2)] = m.group(1)
        assert m.group(3) == "from-" + m.group(2)[3]
    assert set(colour_of) == {"t1-a-1", "t1-b-1"} and colour_of["t1-a-1"] != colour_of["t1-b-1"], colour_of
    plain = logs_on_tty("--no-color")
    assert "\x1b[" not in plain and re.search(r"^t1-a-1\s+\| from-a$", plain, re.M), repr(plain)
    piped = c.ok("logs").stdout
    assert "\x1b[" not in piped and re.search(r"^t1-b-1\s+\| from-b$", piped, re.M), repr(piped)


def test_devices_are_passed_to_the_container(engine, compose):
    c = compose("t1")
    c.model({"services": {"web": sleeper(devices=["/dev/null:/dev/mynull", {"source": "/dev/zero",
                                                                          "target": "/dev/myzero",
                                                                          "permissions": "r"}])}})
    c.up()
    r = c.exec("web", "sh", "-c", "stat -c '%t:%T' /dev/mynull /dev/myzero; head -c 3 /dev/myzero | wc -c")
    assert r.stdout == "1:3\n1:5\n3\n", r.stdout + r.stderr
    devices = engine.inspect("t1-web-1")["HostConfig"]["Devices"]
    assert {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/myzero", "CgroupPermissions": "r"} in devices


def test_include_brings_in_another_application_with_its_own_directory_and_env(engine, compose):
    c = compose("t1")
    (c.dir / "db" / "seed").mkdir(parents=True)
    (c.dir / "db" / "seed" / "rows.txt").write_text("row1\n")
    (c.dir / "db" / ".env").write_text("DB_NAME=shop\n")
    c.write(textwrap.dedent("""\
        services:
          db:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            environment: {DB_NAME: "${DB_NAME:-unset}"}
            volumes: ["./seed:/seed:ro", "dbdata:/data"]
        volumes:
          dbdata:
        """), "db/compose.yaml")
    c.write(textwrap.dedent("""\
        include:
          - db/compose.yaml
        services:
          web:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            depends_on: [db]
        """))
    c.up()
    assert names(engine) == ["t1-db-1", "t1-web-1"]
    assert env_of(engine, "t1-db-1")["DB_NAME"] == "shop"  # the included directory's .env
    assert c.exec("db", "cat", "/seed/rows.txt").stdout == "row1\n"  # ./seed from db/
    assert "t1_dbdata" in engine.ok("volume", "ls", "-q").split()
    # A service defined both here and in the included file is an error.
    c.write("include: [db/compose.yaml]\nservices:\n  db: {image: busybox}\n", "clash.yaml")
    r = engine.run("compose", "-f", c.dir / "clash.yaml", "-p", "t2", "config")
    assert r.returncode != 0 and "services.db conflicts with an imported resource" in r.stderr, r.stderr


def test_override_file_reset_and_override_tags(engine, compose):
    c = compose("t1")
    c.write(textwrap.dedent("""\
        services:
          web:
            image: busybox
            command: ["sleep", "3600"]
            environment: {A: "1", B: "2"}
            ports: ["18081:80", "18082:90"]
            labels: {keep: "yes"}
        """))
    c.write(textwrap.dedent("""\
        services:
          web:
            environment: !reset {}
            ports: !override ["18083:70"]
            labels: {added: "yes"}
        """), "compose.override.yaml")
    c.files = [c.dir / "compose.yaml", c.dir / "compose.override.yaml"]
    model = json.loads(c.ok("config", "--format", "json").stdout)["services"]["web"]
    assert "environment" not in model, model
    assert [(p["published"], p["target"]) for p in model["ports"]] == [("18083", 70)]
    assert model["labels"] == {"keep": "yes", "added": "yes"}  # untagged mappings still merge
