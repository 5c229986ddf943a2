#!/usr/bin/env python3
"""Docker Engine API benchmarks of `berth serve`, against issue #6's targets:

    run      docker run --rm busybox true, the real docker CLI through berth serve
             (default bridge), median of -n runs                     <= 40 ms
             (dockerd: 278 ms on this machine kind, quoted from the issue);
             next to `docker run --rm --network none` through the API and
             `berth run --rm [--network none]` straight from the CLI
    list     GET /containers/json?all=1 with 100 containers, p50 of 200 requests
             on one keep-alive connection (http.client over the unix socket)
                                                                     <= 5 ms
    inspect  GET /containers/{id}/json for 3 s on one keep-alive connection:
             requests per second                                     >= 5000/s
    rss      VmRSS of the idle `berth serve`, after startup and after the runs
             above (and dockerd's, when one is running)              <= 15 MiB

Everything runs in a private network namespace (the script re-executes itself under
`unshare --net` and sets lo up), with a private data root (under $TMPDIR, default
/var/tmp), run dir (BERTH_RUN_DIR=/run/ba-XXXXXX) and DOCKER_CONFIG; all of it is
removed at the end, also on Ctrl-C / SIGTERM / SIGHUP: containers, the server
(SIGTERM), shims, mounts, both directories.

Run as root:  python3 bench/api.py [-n 20] [--only run,list,inspect,rss] [--json out.json]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

FIXTURE = bl.REPO / "tests" / "fixtures" / "make-busybox-rootfs.sh"
SECTIONS = ("run", "list", "inspect", "rss")
IMAGE = "busybox:latest"
API = "/v1.41"                 # the prefix the docker CLI sends (berth serves API 1.41)
DOCKER = "/usr/local/bin/docker"
INNER_ENV = "BERTH_BENCH_API_INNER"
CMDLINE_ENV = "BERTH_BENCH_API_CMDLINE"

# Issue #6's targets.
TARGET_RUN_MS = 40.0
TARGET_LIST_MS = 5.0           # p50, with 100 containers
TARGET_INSPECT_RPS = 5000.0
TARGET_RSS_KIB = 15 * 1024
ISSUE_DOCKERD_RUN_MS = 278.0   # `docker run --rm busybox true` against dockerd, same machine kind
ID_RE = re.compile(r"[0-9a-f]{64}")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Interrupted(SystemExit):
    pass


def on_signal(signum, frame):
    raise Interrupted(128 + signum)


def goal(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "NOT MET")


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


@dataclass
class Run:
    ms: float
    rc: int
    out: str
    err: str
    timed_out: bool = False

    def why(self) -> str:
        lines = self.err.strip().splitlines()
        return ("timed out" if self.timed_out else f"exit {self.rc}") + (f": {lines[-1]}" if lines else "")


# ------------------------------------------------------------------------------------------
# API clients over the unix socket

class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket; counts its connects, so keep-alive can be checked."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path
        self.connects = 0

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s
        self.connects += 1

    def get(self, target: str) -> tuple[int, bytes]:
        self.request("GET", target)
        r = self.getresponse()
        return r.status, r.read()


class RawClient:
    """A minimal keep-alive HTTP/1.1 client: one pre-encoded request, responses framed by
    Content-Length. Costs the client far less CPU per request than http.client, so a
    requests-per-second loop measures the server rather than Python."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def get(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        buf = self.buf
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        head = buf[:i].decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        clen = None
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                clen = int(v)
            elif k == "transfer-encoding" or (k == "connection" and v.strip().lower() == "close"):
                raise ConnectionError(f"unexpected response header: {line}")
        if clen is None:
            raise ConnectionError("response without Content-Length")
        need = i + 4 + clen
        while len(buf) < need:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("server closed the connection mid-body")
            buf += chunk
        self.buf = buf[need:]
        return status, buf[i + 4:need]


def proc_status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (l.partition(":") for l in text.splitlines())}


def proc_kib(st: dict[str, str], key: str) -> int | None:
    v = st.get(key)
    return int(v.split()[0]) if v else None


def proc_pss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.berth = str(Path(args.build) / "src" / "cli" / "berth")
        self.work = Path(tempfile.mkdtemp(prefix="berth-bench-api.", dir=os.environ.get("TMPDIR", "/var/tmp")))
        # Short: it holds the API socket and the containers' sockets (108-byte limit).
        self.run_dir = Path(tempfile.mkdtemp(prefix="ba-", dir="/run"))
        self.root = self.work / "root"
        self.sock = str(self.run_dir / "api.sock")
        self.docker_config = self.work / "docker-config"
        self.docker_config.mkdir()
        self.env = dict(os.environ, BERTH_RUN_DIR=str(self.run_dir))
        self.denv = dict(self.env, DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(self.docker_config),
                         DOCKER_CLI_HINTS="false")
        for k in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"):
            self.denv.pop(k, None)
        self.server: subprocess.Popen | None = None
        self.server_log = self.work / "serve.log"
        self.live: set[subprocess.Popen] = set()
        self.ids: set[str] = set()          # containers this run created with `berth create`
        self.clients: list = []             # open API connections, closed before `rss after`
        self.results: dict = {}
        self.summary: list[list[str]] = []
        self.warnings: list[str] = []
        self.cleanup_notes: list[str] = []
        self.host_start = bl.host_info()
        self.host_start["root_fs"] = bl._fstype(str(self.work))

    # -- commands ----------------------------------------------------------------------------
    def b(self, *args: str) -> list[str]:
        return [self.berth, "--root", str(self.root), *args]

    def run(self, argv: list[str], timeout: float | None = None, capture: bool = False,
            env: dict | None = None) -> Run:
        """Wall time of one command, fork+exec to exit. Children get their own process group, so
        Ctrl-C reaches only this script, which lets the command finish and then cleans up."""
        t0 = time.perf_counter_ns()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env or self.env, process_group=0)
        self.live.add(p)
        timed_out = False
        try:
            out, err = p.communicate(timeout=timeout or self.args.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            timed_out = True
        t1 = time.perf_counter_ns()
        self.live.discard(p)
        return Run((t1 - t0) / 1e6, p.returncode, (out or b"").decode(errors="replace"),
                   err.decode(errors="replace"), timed_out)

    def ok(self, argv: list[str], timeout: float | None = None) -> str:
        r = self.run(argv, timeout=timeout, capture=True)
        if r.rc != 0 or r.timed_out:
            raise RuntimeError(f"{shlex.join(argv)}: {r.why()}")
        return r.out

    def container_ids(self) -> list[str]:
        r = self.run(self.b("ps", "-aq", "--no-trunc"), capture=True)
        return [l for l in r.out.split() if l] if r.rc == 0 else []

    def rm_containers(self, ids: list[str], batch: int = 50) -> list[str]:
        errs = []
        for i in range(0, len(ids), batch):
            r = self.run(self.b("rm", "-f", "-v", *ids[i:i + batch]), timeout=max(120, 2 * batch))
            if r.rc != 0:
                errs.append(r.why())
        return errs

    # -- setup -------------------------------------------------------------------------------
    def prepare(self) -> None:
        rootfs = self.work / "rootfs"
        subprocess.run(["sh", str(FIXTURE), str(rootfs)], check=True, stdout=subprocess.DEVNULL)
        tar = self.work / "bb.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
        self.ok(self.b("import", "--change", 'CMD ["sh"]', str(tar), IMAGE))
        shutil.rmtree(rootfs, ignore_errors=True)

    def start_server(self) -> None:
        argv = self.b("serve", "-H", f"unix://{self.sock}")
        self.server_argv = argv
        with open(self.server_log, "wb") as logf:
            self.server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                           env=self.env, process_group=0)
        t0 = time.perf_counter()
        deadline = t0 + 30
        while time.perf_counter() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"berth serve exited with {self.server.returncode}: {self.log_tail()}")
            if os.path.exists(self.sock):
                try:
                    c = UnixHTTPConnection(self.sock, timeout=5)
                    status, _ = c.get("/_ping")
                    c.close()
                    if status == 200:
                        self.startup_ms = (time.perf_counter() - t0) * 1000
                        return
                except OSError:
                    pass
            time.sleep(0.01)
        raise RuntimeError(f"berth serve: no answer on {self.sock} after 30 s: {self.log_tail()}")

    def log_tail(self, n: int = 3) -> str:
        try:
            lines = self.server_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def check_server(self, what: str) -> None:
        if self.server is None or self.server.poll() is not None:
            raise RuntimeError(f"{what}: berth serve is gone (exit {self.server.returncode if self.server else '?'}): "
                               f"{self.log_tail()}")

    def make_containers(self, n: int) -> list[str]:
        """n x `berth create --network none busybox true` (untimed), reusing ours."""
        have = [i for i in self.container_ids() if i in self.ids]
        while len(have) < n:
            out = self.ok(self.b("create", "--network", "none", IMAGE, "true")).strip()
            if not ID_RE.fullmatch(out):
                raise RuntimeError(f"berth create printed {out[:80]!r}, not an id")
            self.ids.add(out)
            have.append(out)
            if self.args.progress and len(have) % 25 == 0:
                log(f"  {len(have)}/{n} containers")
        return have[:n]

    # -- a. docker run --rm through the API -------------------------------------------------
    def section_run(self) -> None:
        a = self.args
        contenders: list[tuple[str, list[str], dict, str]] = []
        if os.access(DOCKER, os.X_OK):
            dv = bl.version_of([DOCKER])
            contenders += [
                ("docker -> berth serve", [DOCKER, "run", "--rm", IMAGE, "true"], self.denv,
                 f"{dv}; default bridge"),
                ("docker -> berth serve, none", [DOCKER, "run", "--rm", "--network", "none", IMAGE, "true"],
                 self.denv, "--network none"),
            ]
        else:
            self.warnings.append(f"run: {DOCKER} not found: the docker CLI rows are skipped")
        contenders += [
            ("berth run", self.b("run", "--rm", IMAGE, "true"), self.env, "CLI, no API; default bridge"),
            ("berth run, none", self.b("run", "--rm", "--network", "none", IMAGE, "true"), self.env,
             "CLI, no API; --network none"),
        ]
        if os.access(DOCKER, os.X_OK):
            contenders.append(("floor: docker version", [DOCKER, "version", "-f", "{{.Server.Version}}"],
                               self.denv, "CLI start + GET /_ping + GET /version"))
        series: dict[str, list[float]] = {c[0]: [] for c in contenders}
        failed: dict[str, str] = {}
        for i in range(-a.warmup, a.iterations):
            for name, argv, env, _ in bl.rotated(contenders, i):
                if name in failed:
                    continue
                r = self.run(argv, env=env)
                if r.rc != 0 or r.timed_out:
                    failed[name] = r.why()
                    log(f"run: {name}: {failed[name]}")
                elif i >= 0:
                    series[name].append(r.ms)
            self.check_server("run")
            if a.progress and i >= 0 and (i + 1) % 5 == 0:
                log(f"  run: {i + 1}/{a.iterations} rounds")
        left = self.container_ids()
        if left:
            self.warnings.append(f"run: {len(left)} container(s) left after `run --rm` (removed now)")
            self.rm_containers(left)

        key = "docker -> berth serve"
        base = bl.median(series[key]) if series.get(key) else None
        rows = []
        for name, argv, _, note in contenders:
            s = series[name]
            if not s:
                rows.append([name, "-", "-", "-", "-", "-", "FAILED: " + failed.get(name, "no samples")])
                continue
            sm = bl.summarize(s)
            rows.append([name, sm["n"], bl.fmt_ms(sm["median_ms"]), bl.fmt_ms(sm["p90_ms"]), bl.fmt_ms(sm["min_ms"]),
                         bl.fmt_ratio(bl.ratio(sm["median_ms"], base)),
                         ("FAILED later: " + failed[name] + "; " if name in failed else "") + note])
        rows.append(["docker -> dockerd, issue", "-", f"{ISSUE_DOCKERD_RUN_MS:.2f}", "-", "-",
                     bl.fmt_ratio(bl.ratio(ISSUE_DOCKERD_RUN_MS, base)),
                     "quoted from issue #6 (same machine kind), not measured here"])
        print(f"a. run --rm busybox true: {a.iterations} rounds after {a.warmup} warm-up, contenders interleaved "
              f"(target: docker -> berth serve median <= {TARGET_RUN_MS:g} ms)")
        for name, argv, env, _ in contenders:
            pre = f"DOCKER_HOST=unix://{self.sock} " if env is self.denv else f"BERTH_RUN_DIR={self.run_dir} "
            print(f"   {name}: {pre}{shlex.join(argv)}")
        print(bl.format_table(["contender", "n", "median ms", "p90 ms", "min ms", "vs docker->berth", ""], rows,
                              align="lrrrrrl"))
        print()
        self.summary.append(["docker run --rm busybox true via berth serve (median)",
                             f"{base:.2f} ms" if base else "-", f"<= {TARGET_RUN_MS:g} ms",
                             goal(None if base is None else base <= TARGET_RUN_MS)])
        for name in ("docker -> berth serve, none", "berth run", "berth run, none"):
            if series.get(name):
                self.summary.append([f"  {name} (median)", f"{bl.median(series[name]):.2f} ms", "", ""])
        self.results["run"] = {"commands": {n: argv for n, argv, _, _ in contenders}, "samples_ms": series,
                               "failed": failed, "target_ms": TARGET_RUN_MS,
                               "issue_dockerd_ms": ISSUE_DOCKERD_RUN_MS}

    # -- b. GET /containers/json?all=1 with 100 containers -----------------------------------
    def section_list(self) -> None:
        a = self.args
        t0 = time.perf_counter()
        ids = self.make_containers(a.containers)
        t_create = time.perf_counter() - t0
        target = f"{API}/containers/json?all=1"
        conn = UnixHTTPConnection(self.sock, timeout=a.timeout)
        self.clients.append(conn)
        for _ in range(5):   # warm-up: connection, the server's store pool, page cache
            status, body = conn.get(target)
            if status != 200:
                raise RuntimeError(f"list: GET {target}: HTTP {status}: {body[:200]!r}")
        listed = json.loads(body)
        if len(listed) != len(ids):
            self.warnings.append(f"list: GET {target} returned {len(listed)} containers, expected {len(ids)}")
        samples: list[float] = []
        errors: dict[int, int] = {}
        cpu0 = proc_cpu_s(self.server.pid)
        w0 = time.perf_counter()
        for _ in range(a.requests):
            t = time.perf_counter_ns()
            status, body = conn.get(target)
            samples.append((time.perf_counter_ns() - t) / 1e6)
            if status != 200:
                errors[status] = errors.get(status, 0) + 1
        wall = time.perf_counter() - w0
        server_cpu = proc_cpu_s(self.server.pid) - cpu0
        self.check_server("list")
        if errors:
            self.warnings.append(f"list: HTTP errors {errors}")
        sm = bl.summarize(samples)
        p99 = bl.percentile(samples, 99)
        print(f"b. GET {target} with {len(listed)} containers (Created, made by `berth create --network none "
              f"busybox true`, untimed: {t_create:.1f} s), {a.requests} requests after 5 warm-up on one keep-alive "
              f"connection (http.client; target: p50 <= {TARGET_LIST_MS:g} ms)")
        print(bl.format_table(["request", "n", "p50 ms", "p90 ms", "p99 ms", "min ms", "max ms", "body"],
                              [[f"GET /containers/json?all=1", sm["n"], bl.fmt_ms(sm["median_ms"], 3),
                                bl.fmt_ms(sm["p90_ms"], 3), bl.fmt_ms(p99, 3), bl.fmt_ms(sm["min_ms"], 3),
                                bl.fmt_ms(sm["max_ms"], 3), f"{len(body)} B"]]))
        print(f"   server CPU: {server_cpu / a.requests * 1e6:.0f} µs per request ({server_cpu * 1000:.0f} ms over "
              f"{wall * 1000:.0f} ms); connections opened: {conn.connects}")
        print()
        if conn.connects != 1:
            self.warnings.append(f"list: {conn.connects} connections for {a.requests + 5} requests: keep-alive broken")
        self.summary.append([f"GET /containers/json?all=1, {len(listed)} containers (p50)",
                             f"{sm['median_ms']:.3f} ms", f"<= {TARGET_LIST_MS:g} ms",
                             goal(sm["median_ms"] <= TARGET_LIST_MS)])
        self.results["list"] = {"containers": len(listed), "samples_ms": samples, "body_bytes": len(body),
                                "server_cpu_s": server_cpu, "wall_s": wall, "connections": conn.connects,
                                "http_errors": errors, "create_s": t_create, "target_ms": TARGET_LIST_MS}

    # -- c. GET /containers/{id}/json for 3 s ----------------------------------------------
    def section_inspect(self) -> None:
        a = self.args
        cid = self.make_containers(1)[0]
        target = f"{API}/containers/{cid}/json"
        raw_req = f"GET {target} HTTP/1.1\r\nHost: api\r\nUser-Agent: berth-bench\r\n\r\n".encode()

        def loop(name: str, get) -> dict:
            for _ in range(20):   # warm-up
                status, body = get()
                if status != 200:
                    raise RuntimeError(f"inspect: GET {target}: HTTP {status}: {body[:200]!r}")
            doc = json.loads(body)
            if doc.get("Id") != cid:
                raise RuntimeError(f"inspect: GET {target} answered Id {doc.get('Id')!r}")
            lat: list[float] = []
            errors: dict[int, int] = {}
            cpu0, ccpu0 = proc_cpu_s(self.server.pid), time.process_time()
            w0 = time.perf_counter_ns()
            end = w0 + int(a.seconds * 1e9)
            now = w0
            while now < end:
                status, _ = get()
                t = time.perf_counter_ns()
                lat.append((t - now) / 1e6)
                now = t
                if status != 200:
                    errors[status] = errors.get(status, 0) + 1
            wall = (now - w0) / 1e9
            server_cpu = proc_cpu_s(self.server.pid) - cpu0
            client_cpu = time.process_time() - ccpu0
            if errors:
                self.warnings.append(f"inspect ({name}): HTTP errors {errors}")
            return {"client": name, "requests": len(lat), "wall_s": wall, "rps": len(lat) / wall,
                    "p50_ms": bl.median(lat), "p99_ms": bl.percentile(lat, 99), "max_ms": max(lat),
                    "server_cpu_s": server_cpu, "client_cpu_s": client_cpu, "body_bytes": len(body),
                    "http_errors": errors}

        raw = RawClient(self.sock, timeout=a.timeout)
        self.clients.append(raw)
        res = [loop("raw socket", lambda: raw.get(raw_req))]
        raw.close()
        self.check_server("inspect")
        hc = UnixHTTPConnection(self.sock, timeout=a.timeout)
        self.clients.append(hc)
        res.append(loop("http.client", lambda: hc.get(target)))
        if hc.connects != 1:
            self.warnings.append(f"inspect: http.client opened {hc.connects} connections: keep-alive broken")
        self.check_server("inspect")
        rows = [[r["client"], r["requests"], f"{r['wall_s']:.2f}", f"{r['rps']:.0f}", bl.fmt_ms(r["p50_ms"], 3),
                 bl.fmt_ms(r["p99_ms"], 3), bl.fmt_ms(r["max_ms"], 2),
                 f"{r['server_cpu_s'] / r['requests'] * 1e6:.0f}", f"{r['client_cpu_s'] / r['wall_s'] * 100:.0f}%"]
                for r in res]
        print(f"c. GET {API}/containers/ID/json for {a.seconds:g} s on one keep-alive connection, one request at a "
              f"time ({res[0]['body_bytes']} B body; target: >= {TARGET_INSPECT_RPS:.0f} requests/s)")
        print(bl.format_table(["client", "requests", "s", "req/s", "p50 ms", "p99 ms", "max ms",
                               "server µs/req", "client cpu"], rows))
        print("   (the raw client sends one pre-encoded request and frames replies by Content-Length; "
              "client cpu near 100% means the client, not the server, set the pace)")
        print()
        best = res[0]["rps"]
        self.summary.append([f"GET /containers/ID/json, keep-alive ({res[0]['client']})", f"{best:.0f}/s",
                             f">= {TARGET_INSPECT_RPS:.0f}/s", goal(best >= TARGET_INSPECT_RPS)])
        self.results["inspect"] = {"id": cid, "runs": res, "target_rps": TARGET_INSPECT_RPS}

    # -- d. resident memory ------------------------------------------------------------------
    def rss_sample(self, label: str) -> None:
        pid = self.server.pid
        st = proc_status(pid)
        sample = {"label": label, "vmrss_kib": proc_kib(st, "VmRSS"), "rss_anon_kib": proc_kib(st, "RssAnon"),
                  "rss_file_kib": proc_kib(st, "RssFile"), "pss_kib": proc_pss_kib(pid),
                  "threads": int(st.get("Threads", "0")), "exe": os.readlink(f"/proc/{pid}/exe")}
        self.results.setdefault("rss", {"samples": []})["samples"].append(sample)

    @staticmethod
    def dockerd_processes() -> list[tuple[int, str, dict]]:
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if comm not in ("dockerd", "containerd"):
                    continue
                found.append((int(pid), comm, proc_status(int(pid))))
            except OSError:
                continue
        return found

    def section_rss(self) -> None:
        samples = self.results.get("rss", {}).get("samples", [])
        rows = []
        for s in samples:
            rows.append([f"berth serve, {s['label']}", mib(s["vmrss_kib"]), mib(s["rss_anon_kib"]),
                         mib(s["rss_file_kib"]), mib(s["pss_kib"]), s["threads"],
                         f"<= {TARGET_RSS_KIB // 1024} MiB"])
        procs = self.dockerd_processes()
        dockerd_note = None
        others = []
        if not any(c == "dockerd" for _, c, _ in procs):
            installed = shutil.which("dockerd") or next(
                (p for p in ("/usr/bin/dockerd", "/usr/sbin/dockerd") if os.access(p, os.X_OK)), None)
            dockerd_note = ("dockerd: not installed" if not installed
                            else f"dockerd: installed ({installed}) but not running")
        for pid, comm, st in sorted(procs, key=lambda t: (t[1] != "dockerd", t[0])):
            rows.append([f"{comm} (pid {pid})", mib(proc_kib(st, "VmRSS")), mib(proc_kib(st, "RssAnon")),
                         mib(proc_kib(st, "RssFile")), mib(proc_pss_kib(pid)), st.get("Threads", "?"),
                         "not idle-controlled: as found"])
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            others.append({"pid": pid, "comm": comm, "cmdline": cmd.strip(), "vmrss_kib": proc_kib(st, "VmRSS"),
                           "rss_anon_kib": proc_kib(st, "RssAnon"), "pss_kib": proc_pss_kib(pid)})
        print(f"d. resident memory of the idle server (/proc/PID/status; Pss from smaps_rollup) "
              f"(target: berth serve VmRSS <= {TARGET_RSS_KIB // 1024} MiB)")
        print(f"   berth serve pid {self.server.pid}, exe {samples[0]['exe'] if samples else '?'}; "
              f"socket answered {self.startup_ms:.0f} ms after spawn")
        print(bl.format_table(["process", "VmRSS", "RssAnon", "RssFile", "Pss", "threads", ""], rows,
                              align="lrrrrrl"))
        for o in others:
            print(f"   {o['comm']} {o['pid']}: {o['cmdline'][:150]}")
        if dockerd_note:
            print(f"   {dockerd_note}")
        print()
        for s in samples:
            self.summary.append([f"berth serve VmRSS, {s['label']}", mib(s["vmrss_kib"]),
                                 f"<= {TARGET_RSS_KIB // 1024} MiB", goal(s["vmrss_kib"] <= TARGET_RSS_KIB)])
        for o in others:
            if o["comm"] == "dockerd":
                self.summary.append([f"  dockerd VmRSS (pid {o['pid']}, as found)", mib(o["vmrss_kib"]), "", ""])
        if dockerd_note:
            self.summary.append([f"  {dockerd_note}", "", "", ""])
        self.results["rss"].update({"target_kib": TARGET_RSS_KIB, "dockerd": others, "dockerd_note": dockerd_note})

    # -- cleanup -----------------------------------------------------------------------------
    def close_clients(self) -> None:
        for c in self.clients:
            try:
                c.close()
            except OSError:
                pass
        self.clients.clear()

    def cleanup(self) -> None:
        self.close_clients()
        for p in list(self.live):      # let commands in flight finish: no half-made state
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.root.exists():
            ids = self.container_ids()
            if ids:
                errs = self.rm_containers(ids)
                unexpected = [i for i in ids if i not in self.ids]
                if unexpected:
                    self.cleanup_notes.append(f"removed {len(unexpected)} container(s) nobody asked to keep")
                if errs:
                    self.cleanup_notes.append(f"rm -f: {errs[0]}")
        if self.server is not None:
            if self.server.poll() is None:
                self.server.send_signal(signal.SIGTERM)
                try:
                    self.server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.cleanup_notes.append("berth serve ignored SIGTERM for 10 s: killed")
                    self.server.kill()
                    self.server.wait()
            if self.server.returncode not in (0, -signal.SIGTERM):
                self.cleanup_notes.append(f"berth serve exited with {self.server.returncode}")
            if os.path.exists(self.sock):
                self.cleanup_notes.append("berth serve left its socket behind")
        for pid in os.listdir("/proc"):   # shims for our root or run dir still running: a berth bug
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if (b"berth-shim" in cmd.split(b"\0")[0] and
                    (str(self.root).encode() in cmd or str(self.run_dir).encode() in cmd)):
                self.cleanup_notes.append(f"killed a berth-shim left running (pid {pid})")
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.remove_cgroups()
        for base in (self.work, self.run_dir):
            with open("/proc/self/mountinfo") as f:
                points = [l.split()[4] for l in f]
            for m in sorted((m for m in points if m.startswith(str(base) + "/")), key=len, reverse=True):
                if m != f"{self.run_dir}/netns":   # berth's shared bind mount of the netns dir itself
                    self.cleanup_notes.append(f"unmounted {m}")
                subprocess.run(["umount", "-l", m], capture_output=True)
        self.server_log_text = self.server_log.read_text(errors="replace") if self.server_log.exists() else ""
        shutil.rmtree(self.run_dir, ignore_errors=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.work)], capture_output=True)
        for p in (self.work, self.run_dir):
            if p.exists():
                self.cleanup_notes.append(f"could not remove {p}")

    def remove_cgroups(self) -> None:
        """Container cgroups (<mount>/berth/<id>) of our ids still present: a berth bug if any."""
        if not self.ids:
            return
        leaked = []
        with open("/proc/self/mountinfo") as f:
            mounts = [l.partition(" - ")[0].split()[4] for l in f
                      if l.partition(" - ")[2].split()[0] in ("cgroup", "cgroup2")]
        for m in mounts:
            parent = Path(m) / "berth"
            if parent.is_dir():
                leaked += [d for d in parent.iterdir() if d.name in self.ids]
        for d in leaked:
            for sub, _, _ in sorted(os.walk(d), key=lambda t: t[0].count("/"), reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
        if leaked:
            self.cleanup_notes.append(f"{len(leaked)} container cgroup(s) left behind (removed), e.g. {leaked[0]}")

    # -- report ------------------------------------------------------------------------------
    def header(self, cmdline: str) -> None:
        print("command: " + cmdline)
        print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
        print(f"berth: {self.berth} ({bl.version_of([self.berth])})")
        if os.access(DOCKER, os.X_OK):
            print(f"docker CLI: {DOCKER} ({bl.version_of([DOCKER])}), DOCKER_HOST=unix://{self.sock}, "
                  f"DOCKER_CONFIG={self.docker_config}")
        print("host: " + ", ".join(f"{k}={v}" for k, v in self.host_start.items()))
        print(f"data root: {self.root}, run dir: {self.run_dir}; network: a private netns (unshare --net, lo up)")
        print(flush=True)

    def footer(self, cmdline: str) -> None:
        print(f"loadavg at end: {bl.host_info().get('loadavg')}")
        errs = [l for l in getattr(self, "server_log_text", "").splitlines()
                if l.strip() and not l.startswith("berth serve: listening on")]
        if errs:
            print(f"server log ({len(errs)} line(s) besides 'listening'; last 15):")
            for l in errs[-15:]:
                print("   " + l[:300])
            self.results["server_log"] = errs
        for w in self.warnings:
            print(f"WARNING: {w}")
        if self.summary:
            print("\nsummary:")
            print(bl.format_table(["measure", "value", "target", "status"], self.summary, align="lrrl"))
            print("\nfor docs/PERFORMANCE.md:")
            print(f"Command: `{cmdline}` ({datetime.date.today()}, load "
                  f"{' '.join(self.host_start.get('loadavg', []))})\n")
            print("| measure | value | target | status |")
            print("|---|---|---|---|")
            for r in self.summary:
                print("| " + " | ".join(x.strip().replace("|", "\\|") for x in r) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    build_default = os.environ.get("BERTH_BUILD_DIR", str(bl.REPO / "build"))
    ap.add_argument("-n", "--iterations", type=int, default=20, help="timed rounds of `run` (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="discarded rounds before `run` is timed (default 2)")
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(SECTIONS))
    ap.add_argument("--containers", type=int, default=100, help="containers for `list` (default 100)")
    ap.add_argument("--requests", type=int, default=200, help="timed GET /containers/json requests (default 200)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of the `inspect` loop (default 3)")
    ap.add_argument("--build", default=build_default,
                    help="build directory holding src/cli/berth (default $BERTH_BUILD_DIR or <repo>/build)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before one command counts as hung")
    ap.add_argument("--json", metavar="PATH", help="also write all samples as JSON ('-': stdout)")
    ap.add_argument("--progress", action="store_true", help="progress messages on stderr")
    args = ap.parse_args()
    cmdline = os.environ.get(CMDLINE_ENV) or shlex.join([os.path.basename(sys.executable)] + sys.argv)

    only = args.only.split(",") if args.only else list(SECTIONS)
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"--only: unknown section(s) {', '.join(bad)} (choose from {', '.join(SECTIONS)})")
    if args.iterations < 1 or args.requests < 1 or args.containers < 1 or args.seconds <= 0:
        ap.error("-n, --requests, --containers and --seconds must be positive")
    if os.geteuid() != 0:
        print("api: needs root (namespaces, containers, mounts)", file=sys.stderr)
        return 2
    berth = Path(args.build) / "src" / "cli" / "berth"
    if not os.access(berth, os.X_OK):
        print(f"api: {berth} not found (build berth or pass --build DIR)", file=sys.stderr)
        return 2

    # Everything in a private network namespace: the default bridge, its nftables rules and the
    # containers' veths never touch the host's network.
    if os.environ.get(INNER_ENV) != "1":
        unshare = shutil.which("unshare")
        if not unshare:
            print("api: unshare (util-linux) not found", file=sys.stderr)
            return 2
        env = dict(os.environ, **{INNER_ENV: "1", CMDLINE_ENV: cmdline})
        os.execve(unshare, [unshare, "--net", "--", sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)
    if subprocess.run(["ip", "link", "set", "lo", "up"]).returncode != 0:
        print("api: ip link set lo up failed in the private netns", file=sys.stderr)
        return 1

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    bench = Bench(args)
    failed: list[str] = []
    interrupted = None
    bench.header(cmdline)
    try:
        try:
            log("setup: busybox image, then berth serve")
            bench.prepare()
            bench.start_server()
            if "rss" in only:
                time.sleep(0.5)
                bench.rss_sample("after startup")
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            failed.append("setup")
            print(f"setup: FAILED: {e}\n")
        if not failed:
            for name in SECTIONS:
                if name not in only:
                    continue
                try:
                    if name == "rss":
                        bench.close_clients()
                        if len(only) > 1:
                            time.sleep(1.0)   # connection threads exit; the server is idle again
                            bench.rss_sample(f"after {', '.join(s for s in only if s != 'rss')}")
                    else:
                        log(f"{name} ...")
                    getattr(bench, f"section_{name}")()
                except Exception as e:  # noqa: BLE001 - one broken section must not stop the others
                    failed.append(name)
                    if not isinstance(e, (RuntimeError, OSError, subprocess.SubprocessError,
                                          http.client.HTTPException)):
                        traceback.print_exc()
                    print(f"{name}: FAILED: {e}\n")
                sys.stdout.flush()
    except Interrupted as e:
        interrupted = e.code
        print(f"\ninterrupted (signal {e.code - 128}): cleaning up", file=sys.stderr)
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        bench.cleanup()
    bench.footer(cmdline)
    if bench.cleanup_notes:
        print("\ncleanup: " + "; ".join(bench.cleanup_notes))
    if args.json:
        bl.dump_json(args.json, {"benchmark": "api", "command": cmdline, "host": bench.host_start,
                                 "results": bench.results, "summary": bench.summary,
                                 "warnings": bench.warnings, "cleanup": bench.cleanup_notes,
                                 "failed_sections": failed})
    if interrupted:
        return interrupted
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
