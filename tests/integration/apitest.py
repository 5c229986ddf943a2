"""`berth serve` under test: a server on a socket in the engine fixture's run dir (so it runs in
the test's network namespace with the test's root), the real docker CLI pointed at it, and a raw
HTTP client for what the CLI does not show (status codes, headers, malformed requests)."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from containertest import Engine, engine, busybox_tar  # noqa: F401 (fixtures)

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
COMPOSE_BIN = "/usr/bin/docker-compose"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class ApiServer:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.sock = Path(engine.run_dir) / "api.sock"
        self.config_dir = Path(tempfile.mkdtemp(prefix="bt-dockercfg-"))
        self.log = self.config_dir / "serve.log"
        self.proc = None
        self.start()

    def start(self):
        self._log = open(self.log, "ab")
        self.proc = self.engine.popen("serve", "-H", f"unix://{self.sock}", stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"berth serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(self.sock))
                s.close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("berth serve did not listen: " + self.log.read_text())
            time.sleep(0.02)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
        self.proc = None

    @property
    def env(self) -> dict:
        e = dict(os.environ)
        e["DOCKER_HOST"] = f"unix://{self.sock}"
        e["DOCKER_CONFIG"] = str(self.config_dir)
        e.pop("DOCKER_CONTEXT", None)
        e.pop("DOCKER_API_VERSION", None)
        return e

    def docker(self, *args, input=None, timeout=60) -> subprocess.CompletedProcess:
        """The real docker CLI against this server (run in the test's network namespace)."""
        cmd = [*self.engine.prefix(), DOCKER, *[str(a) for a in args]]
        return subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=self.env)

    def docker_ok(self, *args, **kw) -> str:
        r = self.docker(*args, **kw)
        assert r.returncode == 0, f"docker {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}"
        return r.stdout

    def request(self, method: str, path: str, body=None, headers=None, timeout=30):
        """One request on a fresh connection: (status, headers dict (lower-case), body bytes)."""
        c = UnixHTTPConnection(str(self.sock), timeout=timeout)
        data = body
        h = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            data = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, out

    def json(self, method: str, path: str, body=None, expect=200):
        status, _, out = self.request(method, path, body)
        assert status == expect, f"{method} {path}: {status} {out!r}"
        return json.loads(out) if out.strip() else None

    def raw(self, data: bytes, timeout=10) -> bytes:
        """Sends bytes as they are and returns everything the server answers until it closes."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(str(self.sock))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    def fd_count(self) -> int:
        """Open fds of the server process, without its pooled database connections (state.db and
        its -wal/-shm: kept open for reuse, up to a fixed number)."""
        n = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                continue
            if not target.split(" (deleted)")[0].endswith((".db", ".db-wal", ".db-shm")):
                n += 1
        return n

    @property
    def pid(self) -> int:
        return self.proc.pid if not self.engine.netns else _child_pid(self.proc.pid)

    def cleanup(self):
        self.stop()
        self.sock.unlink(missing_ok=True)
        shutil.rmtree(self.config_dir, ignore_errors=True)


def _child_pid(pid: int) -> int:
    """nsenter execs its command, so the popen pid is the server's; kept as a hook if it forks."""
    return pid


@pytest.fixture
def api(engine):
    if not os.access(DOCKER, os.X_OK):
        pytest.skip("the docker CLI is not installed")
    server = ApiServer(engine)
    yield server
    server.cleanup()
