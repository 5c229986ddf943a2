"""Real registries for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

Context managers (usable outside pytest):

    with run_registry() as reg:                    # plain HTTP, no auth
    with run_registry(auth="basic") as reg:        # htpasswd (reg.username / reg.password)
    with run_registry(auth="token") as reg:        # bearer tokens from TokenServer (a JWT issuer here)
    with run_registry(tls=True) as reg:            # HTTPS with a self-signed certificate (reg.ca_cert)
    with redirecting_proxy(reg) as front:          # answers everything with a 307 to reg
    with stalling_server() as port:                # accepts, reads the request, never answers

Each yields a `Registry`: host ("127.0.0.1:PORT"), port, scheme, url("/v2/"), ref("repo", "tag"),
username/password (None without auth), token_server (auth="token"), log() (the registry's log),
storage (its filesystem root). Everything is stopped and removed on exit.

pytest fixtures (import them into a test module or conftest.py):
    registry_factory   function-scoped: start(**run_registry kwargs) -> Registry, all stopped after
    plain_registry, basic_registry, token_registry: module-scoped, one registry each

The probe over berth's registry client: PROBE_PATH ($BERTH_REGISTRY_PROBE, default
$BERTH_BUILD_DIR/tests/tools/registry_probe) and probe(*args) -> CompletedProcess.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import berthtest as bt

REGISTRY_BIN = os.environ.get("BERTH_REGISTRY_BIN", "/usr/bin/docker-registry")
PROBE_PATH = os.environ.get("BERTH_REGISTRY_PROBE", str(bt.BUILD_DIR / "tests" / "tools" / "registry_probe"))

DEFAULT_USER = "berth"
DEFAULT_PASSWORD = "s3cret-pass"
TOKEN_SERVICE = "berth-test-registry"
TOKEN_ISSUER = "berth-test-token-issuer"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_tools(auth=None) -> list[str]:
    """Commands a registry with this auth needs that the host lacks (for pytest.skip)."""
    need = [REGISTRY_BIN, "skopeo", "openssl"]
    if auth == "basic":
        need.append("htpasswd")
    return [t for t in need if shutil.which(t) is None]


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.strip()}")
    return r


def make_cert(directory: Path, name: str, cn: str) -> tuple[Path, Path]:
    """An RSA key and a self-signed certificate valid for 127.0.0.1, localhost and *.localhost."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", f"/CN={cn}",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:reg.localhost,DNS:*.localhost")
    return key, cert


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A token issuer for docker-registry's `auth: token` (the docker token spec).

    GET /token?service=S&scope=repository:NAME:ACTIONS (scope repeatable) with Basic credentials
    returns {"token", "access_token", "expires_in", "issued_at"}: a JWT signed RS256 by a
    self-signed certificate, carried in the header's "x5c" (the registry's rootcertbundle holds
    the same certificate). Right credentials get every action asked for; no credentials get an
    anonymous token granting nothing (or pull, with anonymous_pull); wrong ones get a 401.
    `requests` records (user or None, [scopes]) for each call.
    """

    def __init__(self, workdir: Path, username: str, password: str, anonymous_pull=False):
        self.username, self.password = username, password
        self.anonymous_pull = anonymous_pull
        self.key, self.cert = make_cert(workdir, "token", TOKEN_ISSUER)
        pem = self.cert.read_text()
        der_b64 = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
        self.x5c = [der_b64]
        self.requests: list[tuple[str | None, list[str]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="token-server", daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def sign(self, payload: bytes) -> bytes:
        r = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=payload,
                           capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"openssl dgst -sign: {r.stderr.decode(errors='replace')}")
        return r.stdout

    def issue(self, subject: str, access: list[dict], expires_in: int = 300) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {"iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE, "exp": now + expires_in,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())).encode()
        return signing_input.decode() + "." + _b64url(self.sign(signing_input))

    def _handle(self, h: http.server.BaseHTTPRequestHandler):
        url = urllib.parse.urlparse(h.path)
        query = urllib.parse.parse_qs(url.query)
        scopes = query.get("scope", [])
        user = None
        authz = h.headers.get("Authorization", "")
        if authz.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(authz[6:]).decode().partition(":")
            except Exception:
                user, pw = "", ""
            if user != self.username or pw != self.password:
                with self._lock:
                    self.requests.append((user, scopes))
                return self._reply(h, 401, {"details": "incorrect username or password"})
        with self._lock:
            self.requests.append((user, scopes))
        if url.path != "/token":
            return self._reply(h, 404, {"details": "not found"})
        if query.get("service", [TOKEN_SERVICE])[0] != TOKEN_SERVICE:
            return self._reply(h, 400, {"details": "unknown service"})
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if user is None:
                actions = [a for a in actions if a == "pull"] if self.anonymous_pull else []
            access.append({"type": typ, "name": name, "actions": actions})
        token = self.issue(user or "", access)
        self._reply(h, 200, {"token": token, "access_token": token, "expires_in": 300,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    @staticmethod
    def _reply(h, status: int, body: dict):
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        if status == 401:
            h.send_header("WWW-Authenticate", 'Basic realm="berth-test-token"')
        h.end_headers()
        h.wfile.write(data)


@dataclass
class Registry:
    host: str
    port: int
    scheme: str
    workdir: Path
    storage: Path
    log_path: Path
    auth: str | None = None
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    ca_cert: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def url(self, path: str = "/v2/") -> str:
        return f"{self.scheme}://{self.host}{path}"

    def ref(self, repo: str, tag: str = "latest") -> str:
        sep = "@" if tag.startswith("sha256:") else ":"
        return f"{self.host}/{repo}{sep}{tag}"

    def creds_args(self, flag: str = "--creds") -> list[str]:
        """skopeo's credentials flag for this registry ([] without auth)."""
        return [flag, f"{self.username}:{self.password}"] if self.username else []

    def probe_auth(self) -> list[str]:
        """registry_probe's credential flags for this registry ([] without auth)."""
        return ["--user", self.username, "--password", self.password] if self.username else []

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _registry_config(port: int, storage: Path, auth_cfg: dict | None, tls: tuple[Path, Path] | None) -> dict:
    http_cfg = {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]}}
    if tls:
        http_cfg["tls"] = {"certificate": str(tls[1]), "key": str(tls[0])}
    cfg = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http_cfg,
        "health": {"storagedriver": {"enabled": False}},
    }
    if auth_cfg:
        cfg["auth"] = auth_cfg
    return cfg


def _wait_ready(reg: Registry, timeout: float = 30.0):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while True:
        if reg.proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {reg.proc.returncode}: {reg.log()[-2000:]}")
        try:
            urllib.request.urlopen(reg.url("/v2/"), timeout=2, context=ctx if reg.scheme == "https" else None)
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"docker-registry did not answer on {reg.host} within {timeout}s: {reg.log()[-2000:]}")
        time.sleep(0.05)


def _die_with_parent():
    """preexec_fn: SIGKILL the child when the test process dies (a killed pytest leaves no registry)."""
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _stop(proc: subprocess.Popen):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def run_registry(workdir=None, *, auth: str | None = None, tls: bool = False, username: str = DEFAULT_USER,
                 password: str = DEFAULT_PASSWORD, anonymous_pull: bool = False):
    """Starts docker-registry on 127.0.0.1:<free port>; yields a Registry; stops and cleans up.

    auth: None, "basic" (htpasswd) or "token" (a TokenServer in this process).
    workdir: where config, storage and log go (a new temporary directory, removed after, if None).
    """
    if auth not in (None, "basic", "token"):
        raise ValueError(f"auth must be None, 'basic' or 'token', not {auth!r}")
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="berth-registry-")) if own_dir else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    token_server = None
    proc = None
    try:
        storage = work / "storage"
        storage.mkdir(exist_ok=True)
        auth_cfg = None
        if auth == "basic":
            r = subprocess.run(["htpasswd", "-Bbn", username, password], capture_output=True, text=True, check=True)
            (work / "htpasswd").write_text(r.stdout)
            auth_cfg = {"htpasswd": {"realm": "berth-test-basic", "path": str(work / "htpasswd")}}
        elif auth == "token":
            token_server = TokenServer(work, username, password, anonymous_pull=anonymous_pull)
            auth_cfg = {"token": {"realm": token_server.realm, "service": TOKEN_SERVICE, "issuer": TOKEN_ISSUER,
                                  "rootcertbundle": str(token_server.cert)}}
        tls_files = make_cert(work, "registry", "berth-test-registry") if tls else None
        for attempt in range(5):
            port = free_port()
            reg = Registry(host=f"127.0.0.1:{port}", port=port, scheme="https" if tls else "http", workdir=work,
                           storage=storage, log_path=work / f"registry-{attempt}.log", auth=auth,
                           username=username if auth else None, password=password if auth else None,
                           token_server=token_server, ca_cert=tls_files[1] if tls_files else None)
            config = work / "config.yml"
            # JSON is YAML: no YAML writer needed.
            config.write_text(json.dumps(_registry_config(port, storage, auth_cfg, tls_files), indent=2))
            with open(reg.log_path, "wb") as log:
                proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_parent)
            reg.proc = proc
            try:
                _wait_ready(reg)
                break
            except RuntimeError:
                _stop(proc)
                # Another process may have taken the port between free_port() and the bind.
                if "address already in use" not in reg.log() or attempt == 4:
                    raise
        yield reg
    finally:
        if proc is not None:
            _stop(proc)
        if token_server is not None:
            token_server.close()
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
        else:
            # The log stays for a failing test's report; the blobs go.
            shutil.rmtree(work / "storage", ignore_errors=True)


# --- misbehaving servers -----------------------------------------------------------------


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass


@contextlib.contextmanager
def redirecting_proxy(target: Registry):
    """An HTTP server on 127.0.0.1 answering every GET/HEAD with a 307 to the same path on TARGET
    (as registries do for blobs in object storage). Yields an object with host, port and hits
    (the paths it redirected)."""
    hits: list[str] = []

    class Handler(_QuietHandler):
        def _redirect(self):
            hits.append(self.path)
            self.send_response(307)
            self.send_header("Location", target.url(self.path))
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = _redirect
        do_HEAD = _redirect

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="redirector", daemon=True)
    thread.start()

    class Front:
        port = httpd.server_address[1]
        host = f"127.0.0.1:{httpd.server_address[1]}"

    Front.hits = hits
    try:
        yield Front
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def stalling_server():
    """A TCP server on 127.0.0.1 that accepts connections and reads, but never answers.
    Yields its port."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                conns.append(c)
            except socket.timeout:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, name="staller", daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=10)
        for c in conns:
            c.close()
        srv.close()


# --- the probe ----------------------------------------------------------------------------


def probe(*args, timeout: float = 120, input=None) -> subprocess.CompletedProcess:
    """Runs registry_probe ARGS; text output."""
    return subprocess.run([PROBE_PATH, *[str(a) for a in args]], capture_output=True, text=True,
                          timeout=timeout, input=input)


def probe_json(*args, timeout: float = 120):
    r = probe(*args, timeout=timeout)
    assert r.returncode == 0, f"registry_probe {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}"
    return json.loads(r.stdout)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# --- pytest fixtures ----------------------------------------------------------------------


def _skip_if_missing(auth=None):
    missing = missing_tools(auth)
    if missing:
        pytest.skip("registry tests need: " + ", ".join(missing))


@pytest.fixture
def registry_factory(tmp_path):
    """start(**kwargs) -> Registry (kwargs as run_registry's); all are stopped after the test."""
    with contextlib.ExitStack() as stack:
        n = [0]

        def start(**kwargs) -> Registry:
            _skip_if_missing(kwargs.get("auth"))
            n[0] += 1
            return stack.enter_context(run_registry(tmp_path / f"registry{n[0]}", **kwargs))

        yield start


def _module_registry(tmp_path_factory, **kwargs):
    _skip_if_missing(kwargs.get("auth"))
    return run_registry(tmp_path_factory.mktemp("registry"), **kwargs)


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory):
    """docker-registry over plain HTTP without auth, shared by a module's tests."""
    with _module_registry(tmp_path_factory) as reg:
        yield reg


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    """docker-registry with htpasswd basic auth (reg.username / reg.password)."""
    with _module_registry(tmp_path_factory, auth="basic") as reg:
        yield reg


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    """docker-registry with bearer-token auth from a TokenServer (reg.token_server)."""
    with _module_registry(tmp_path_factory, auth="token") as reg:
        yield reg
