"""`berth serve` driven by Debian's docker-compose 1.29 (python, on docker-py): a back end serving a
named volume over http with a published port, a front end that reaches it by service name on a
user network, shares the volume and has a read-only bind mount of a host directory; then `up -d`,
`ps`, `exec`, `logs`, `down` (containers and network gone, the named volume kept) and `down -v`
(the volume gone too). Written to Docker's behaviour. Every compose, docker and http client runs
in the test's network namespace (the engine's prefix)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from apitest import api, engine, busybox_tar  # noqa: F401 (fixtures)
from containertest import poll

COMPOSE = "/usr/bin/docker-compose"
PORT = 18181

pytestmark = pytest.mark.skipif(not os.access(COMPOSE, os.X_OK), reason="docker-compose is not installed")

# An http GET from the test's namespace: prints the body, exits 1 on any error.
HTTP_GET = r"""
import sys, urllib.request
try:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(sys.argv[1], timeout=5) as r:
        sys.stdout.write(r.read().decode())
except Exception as e:
    sys.stderr.write(f"{type(e).__name__}: {e}\n")
    sys.exit(1)
"""

COMPOSE_FILE = """\
version: "3.8"
services:
  backend:
    image: busybox
    command: ["sh", "-c", "echo backend-starting; echo backend-ok > /www/index.html; exec httpd -f -p 8080 -h /www"]
    volumes:
      - www:/www
    networks:
      - appnet
    ports:
      - "{port}:8080"
    labels:
      tier: back
  frontend:
    image: busybox
    depends_on:
      - backend
    command:
      - sh
      - -c
      - |
        until wget -q -O /tmp/got http://backend:8080/; do sleep 0.1; done
        echo "frontend got: $$(cat /tmp/got)"
        trap 'exit 0' TERM
        while :; do sleep 0.1; done
    environment:
      GREETING: hello-compose
    volumes:
      - www:/shared
      - {config}:/config:ro
    networks:
      - appnet
volumes:
  www: {{}}
networks:
  appnet: {{}}
"""


class Compose:
    def __init__(self, api, tmp_path):
        self.api = api
        self.project = "bt" + uuid.uuid4().hex[:8]
        self.dir = tmp_path / "proj"
        self.dir.mkdir()
        self.config = tmp_path / "config"
        self.config.mkdir()
        (self.config / "settings.txt").write_text("from-the-host\n")
        self.file = self.dir / "docker-compose.yml"
        self.file.write_text(COMPOSE_FILE.format(port=PORT, config=self.config))
        self.env = dict(api.env)
        # exec through the API (docker-py), not by running the docker CLI.
        self.env["COMPOSE_INTERACTIVE_NO_CLI"] = "1"
        self.env.pop("COMPOSE_FILE", None)
        self.env.pop("COMPOSE_PROJECT_NAME", None)

    def run(self, *args, timeout=180, cli=False) -> subprocess.CompletedProcess:
        """docker-compose ARGS; cli=True lets compose hand `run` to the docker CLI (`docker start
        --attach`): its own API path attaches only after the start (dockerpty's lazy map of sockets,
        with logs=0), so it loses the output of a short one-off container whatever the engine."""
        env = dict(self.env)
        if cli:
            env.pop("COMPOSE_INTERACTIVE_NO_CLI")
        cmd = [*self.api.engine.prefix(), COMPOSE, "--ansi", "never", "-p", self.project, "-f", str(self.file),
               *[str(a) for a in args]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(self.dir))

    def ok(self, *args, **kw) -> str:
        r = self.run(*args, **kw)
        assert r.returncode == 0, f"docker-compose {' '.join(map(str, args))} failed ({r.returncode}):\n" \
                                  f"{r.stdout}\n{r.stderr}"
        return r.stdout

    def container_names(self) -> list[str]:
        out = self.api.docker_ok("ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
                                 "--format", "{{.Names}}")
        return sorted(out.split())

    def networks(self) -> list[str]:
        return sorted(n for n in self.api.docker_ok("network", "ls", "--format", "{{.Name}}").split()
                      if n.startswith(self.project))

    def volumes(self) -> list[str]:
        return sorted(v for v in self.api.docker_ok("volume", "ls", "--format", "{{.Name}}").split()
                      if v.startswith(self.project))

    def cleanup(self):
        self.run("down", "-v", "--remove-orphans", "-t", "1")


@pytest.fixture
def compose(api, tmp_path):
    c = Compose(api, tmp_path)
    yield c
    c.cleanup()


def host_get(api, url: str) -> subprocess.CompletedProcess:
    return api.engine.host(sys.executable, "-c", HTTP_GET, url, timeout=30)


def wait_http(api, url: str) -> str:
    return poll(lambda: (r := host_get(api, url)).returncode == 0 and r.stdout, f"{url} from the host")


def test_compose_up_ps_logs_down(compose, api):
    p = compose.project
    backend, frontend = f"{p}_backend_1", f"{p}_frontend_1"

    compose.ok("up", "-d")
    assert compose.container_names() == [backend, frontend]
    assert compose.networks() == [f"{p}_appnet"]
    assert compose.volumes() == [f"{p}_www"]

    # ps: both services up, in compose's table and by id.
    out = compose.ok("ps")
    rows = {l.split()[0]: l for l in out.splitlines()[2:] if l.strip()}
    assert sorted(rows) == [backend, frontend], out
    assert "Up" in rows[backend] and "Up" in rows[frontend], out
    assert f"0.0.0.0:{PORT}->8080/tcp" in rows[backend], out
    assert sorted(compose.ok("ps", "--services").split()) == ["backend", "frontend"]
    ids = compose.ok("ps", "-q").split()
    assert len(ids) == 2
    inspected = json.loads(api.docker_ok("inspect", *ids))
    assert sorted(c["Name"] for c in inspected) == [f"/{backend}", f"/{frontend}"]
    by_name = {c["Name"].lstrip("/"): c for c in inspected}
    assert all(c["State"]["Running"] for c in inspected)
    assert by_name[backend]["Config"]["Labels"]["tier"] == "back"
    assert by_name[backend]["Config"]["Labels"]["com.docker.compose.service"] == "backend"
    assert by_name[frontend]["Config"]["Labels"]["com.docker.compose.project"] == p
    assert "GREETING=hello-compose" in by_name[frontend]["Config"]["Env"]
    assert list(by_name[frontend]["NetworkSettings"]["Networks"]) == [f"{p}_appnet"]

    # The published port, from the test's namespace.
    assert wait_http(api, f"http://127.0.0.1:{PORT}/") == "backend-ok\n"

    # The front end reaches the back end by service name (and by container name).
    r = compose.run("exec", "-T", "frontend", "wget", "-q", "-O", "-", "http://backend:8080/")
    assert (r.returncode, r.stdout) == (0, "backend-ok\n"), r.stderr
    r = compose.run("exec", "-T", "frontend", "wget", "-q", "-O", "-", f"http://{backend}:8080/index.html")
    assert (r.returncode, r.stdout) == (0, "backend-ok\n"), r.stderr
    r = compose.run("exec", "-T", "frontend", "sh", "-c", "echo $GREETING")
    assert (r.returncode, r.stdout) == (0, "hello-compose\n"), r.stderr

    # The shared named volume: what the front end writes, the back end serves.
    r = compose.run("exec", "-T", "frontend", "sh", "-c", "echo written-by-frontend > /shared/front.html")
    assert r.returncode == 0, r.stderr
    assert wait_http(api, f"http://127.0.0.1:{PORT}/front.html") == "written-by-frontend\n"

    # The read-only bind mount: readable, not writable, the host directory untouched.
    r = compose.run("exec", "-T", "frontend", "cat", "/config/settings.txt")
    assert (r.returncode, r.stdout) == (0, "from-the-host\n"), r.stderr
    r = compose.run("exec", "-T", "frontend", "sh", "-c", "echo nope > /config/new.txt")
    assert r.returncode != 0
    assert "Read-only file system" in r.stderr + r.stdout
    r = compose.run("exec", "-T", "frontend", "sh", "-c", "echo nope >> /config/settings.txt")
    assert r.returncode != 0
    assert sorted(p_.name for p_ in compose.config.iterdir()) == ["settings.txt"]
    assert (compose.config / "settings.txt").read_text() == "from-the-host\n"
    mounts = {m["Destination"]: m for m in by_name[frontend]["Mounts"]}
    assert mounts["/config"]["Type"] == "bind" and mounts["/config"]["RW"] is False
    assert mounts["/config"]["Source"] == str(compose.config)
    assert mounts["/shared"]["Type"] == "volume" and mounts["/shared"]["Name"] == f"{p}_www"

    # logs: each service's output, prefixed with the container's name without the project.
    def frontend_logged():
        out = compose.ok("logs", "--no-color", "frontend")
        return "frontend got: backend-ok" in out and out
    out = poll(frontend_logged, "the front end's log line")
    lines = [l for l in out.splitlines() if "|" in l]
    assert out.splitlines()[0] == f"Attaching to {frontend}", out
    assert [l.split("|", 1)[0].strip() for l in lines] == ["frontend_1"], out
    assert [l.split("|", 1)[1].strip() for l in lines] == ["frontend got: backend-ok"], out
    out = compose.ok("logs", "--no-color", "backend")
    lines = [l for l in out.splitlines() if "|" in l]
    assert [(l.split("|", 1)[0].strip(), l.split("|", 1)[1].strip()) for l in lines] == \
        [("backend_1", "backend-starting")], out
    out = compose.ok("logs", "--no-color")
    assert sum("|" in l for l in out.splitlines()) == 2, out

    # down: containers and the network gone, the named volume (and its data) kept.
    compose.ok("down", "-t", "1")
    assert compose.container_names() == []
    assert compose.networks() == []
    assert compose.volumes() == [f"{p}_www"]
    assert host_get(api, f"http://127.0.0.1:{PORT}/").returncode != 0
    assert api.docker_ok("run", "--rm", "-v", f"{p}_www:/www", "busybox", "cat", "/www/front.html") == \
        "written-by-frontend\n"
    assert compose.ok("ps", "-q").split() == []

    # up again: the same volume, the data still there; then down -v removes it.
    compose.ok("up", "-d")
    assert compose.container_names() == [backend, frontend]
    assert wait_http(api, f"http://127.0.0.1:{PORT}/front.html") == "written-by-frontend\n"
    compose.ok("down", "-v", "-t", "1")
    assert compose.container_names() == []
    assert compose.networks() == []
    assert compose.volumes() == []
    assert api.docker_ok("ps", "-aq") == ""


def test_compose_lifecycle_of_one_service(compose, api):
    """`config` (no engine involved), `up` of one service, an `up -d` that changes nothing, `run
    --rm`, stop/start/restart, a forced recreate (the volume and the port move to the new container),
    `rm -s`."""
    p = compose.project
    backend = f"{p}_backend_1"
    cfg = compose.ok("config")
    assert "backend:" in cfg and "frontend:" in cfg
    compose.ok("up", "-d", "backend")
    assert compose.container_names() == [backend]
    assert wait_http(api, f"http://127.0.0.1:{PORT}/") == "backend-ok\n"
    first = compose.ok("ps", "-q", "backend").split()
    assert len(first) == 1

    # Nothing changed: the same container.
    r = compose.run("up", "-d", "backend")
    assert r.returncode == 0, r.stderr
    assert f"{backend} is up-to-date" in r.stderr
    assert compose.ok("ps", "-q", "backend").split() == first

    # One-off containers: their output, their exit code, removed afterwards.
    r = compose.run("run", "--rm", "-T", "--no-deps", "frontend", "cat", "/config/settings.txt", cli=True)
    assert (r.returncode, r.stdout) == (0, "from-the-host\n"), r.stderr
    r = compose.run("run", "--rm", "-T", "--no-deps", "frontend", "sh", "-c", "echo failing; exit 3", cli=True)
    assert (r.returncode, r.stdout) == (3, "failing\n"), r.stderr
    assert compose.container_names() == [backend]

    compose.ok("stop", "-t", "1", "backend")
    st = json.loads(api.docker_ok("inspect", backend))[0]["State"]
    assert (st["Status"], st["Running"]) == ("exited", False)
    assert host_get(api, f"http://127.0.0.1:{PORT}/").returncode != 0
    compose.ok("start", "backend")
    assert wait_http(api, f"http://127.0.0.1:{PORT}/") == "backend-ok\n"
    compose.ok("restart", "-t", "1", "backend")
    assert wait_http(api, f"http://127.0.0.1:{PORT}/") == "backend-ok\n"
    assert compose.ok("ps", "-q", "backend").split() == first

    # Recreated: a new container with the old one's name, the volume's data still served.
    api.docker_ok("exec", backend, "sh", "-c", "echo kept > /www/kept.html")
    compose.ok("up", "-d", "--force-recreate", "-t", "1", "backend")
    second = compose.ok("ps", "-q", "backend").split()
    assert len(second) == 1 and second != first
    assert compose.container_names() == [backend]
    assert wait_http(api, f"http://127.0.0.1:{PORT}/kept.html") == "kept\n"

    compose.ok("rm", "-s", "-f", "backend")
    assert compose.container_names() == []
    compose.ok("down", "-v")
    assert compose.networks() == [] and compose.volumes() == []
