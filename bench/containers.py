#!/usr/bin/env python3
"""Container engine benchmarks, against the issue's targets (medians):

    run      berth run --rm --network none busybox true              <= 10 ms
             (next to podman run --rm, and docker run --rm when dockerd answers)
    churn    COUNT x `berth run -d --network none busybox sleep 1000`, then one
             `berth rm -f ID` per container: total                  <= 4 s for 200
    ps       berth ps -a with 1000 containers (created)             <= 50 ms
    volume   berth volume create / volume ls with 10,000 volumes    <= 2 ms / <= 100 ms
             (runs bench/volumes.sh)
    write    dd if=/dev/zero bs=1M count=SIZE conv=fsync into a bind mount, a named
             volume and the writable layer, each / the same dd on a host directory
                                                                    >= 0.95x
    shim     VmRSS (and Pss) of each berth-shim with SHIMS containers running
                                                                    <= 1 MiB

Everything lives in a private data root and run dir (BERTH_RUN_DIR=/run/bb-XXXX),
removed at the end, also on Ctrl-C / SIGTERM: containers, volumes, mounts,
shims, cgroups left behind, and podman's private store.

Run as root:  python3 bench/containers.py [-n 20] [--only run,ps] [--json out.json]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

FIXTURE = bl.REPO / "tests" / "fixtures" / "make-busybox-rootfs.sh"
VOLUMES_SH = Path(__file__).resolve().parent / "volumes.sh"
SECTIONS = ("run", "churn", "ps", "volume", "write", "shim")
IMAGE = "busybox:latest"
PODMAN_IMAGE = "localhost/bbbench"

# The issue's targets.
TARGET_RUN_MS = 10.0
TARGET_CHURN_S = 4.0           # for 200 containers
TARGET_CHURN_COUNT = 200
TARGET_PS_MS = 50.0            # with 1000 containers
TARGET_VOLUME_CREATE_MS = 2.0
TARGET_VOLUME_LS_MS = 100.0    # with 10,000 volumes
TARGET_WRITE_RATIO = 0.95
TARGET_SHIM_KIB = 1024
# The issue's reference numbers for `run --rm busybox true` (same machine kind).
ISSUE_RUN_MS = {"docker": 201.0, "podman (runc)": 148.0, "runc": 21.0}
# podman's defaults (RLIMIT_NOFILE 1048576, RLIMIT_NPROC) fail where root lacks CAP_SYS_RESOURCE.
PODMAN_ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
ID_RE = re.compile(r"[0-9a-f]{64}")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Interrupted(SystemExit):
    pass


def on_signal(signum, frame):
    raise Interrupted(128 + signum)


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


def goal(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "NOT MET")


def kib(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} KiB"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.berth = str(Path(args.build) / "src" / "cli" / "berth")
        self.work = Path(tempfile.mkdtemp(prefix="berth-bench-containers.",
                                          dir=os.environ.get("TMPDIR", "/var/tmp")))
        # Short: it holds the containers' unix sockets (108-byte limit).
        self.run_dir = Path(tempfile.mkdtemp(prefix="bb-", dir="/run"))
        self.root = self.work / "root"
        self.env = dict(os.environ, BERTH_RUN_DIR=str(self.run_dir))
        self.env.pop("DOCKER_CONFIG", None)
        self.tar: Path | None = None
        self.busybox: Path | None = None
        self.live: set[subprocess.Popen] = set()       # children being waited for
        self.killable: set[subprocess.Popen] = set()   # ... of which these are killed at once on cleanup
        self.stopping = False
        self.ids: set[str] = set()                     # every berth container id this run made
        self.podman: list[str] | None = None           # podman argv prefix once its private store exists
        self.docker_image: str | None = None
        self.results: dict = {}
        self.summary: list[list[str]] = []
        self.warnings: list[str] = []
        self.cleanup_notes: list[str] = []
        self.host_start = bl.host_info()
        self.host_start["root_fs"] = bl._fstype(str(self.work))

    # -- running commands ------------------------------------------------------
    def b(self, *args: str) -> list[str]:
        return [self.berth, "--root", str(self.root), *args]

    def run(self, argv: list[str], timeout: float | None = None, capture: bool = False,
            env: dict | None = None) -> Run:
        """Wall time of one command, fork+exec to exit. Children get their own process group,
        so Ctrl-C reaches only this script, which then lets the command finish and cleans up."""
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

    # -- setup -----------------------------------------------------------------
    def prepare_image(self) -> None:
        if self.tar:
            return
        rootfs = self.work / "rootfs"
        subprocess.run(["sh", str(FIXTURE), str(rootfs)], check=True, stdout=subprocess.DEVNULL)
        self.busybox = rootfs / "bin" / "busybox"
        self.tar = self.work / "bb.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(self.tar), "."], check=True)
        self.ok(self.b("import", "--change", 'CMD ["sh"]', str(self.tar), IMAGE))

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

    def shims(self, ids: set[str] | None = None) -> dict[str, int]:
        """berth-shim processes: container id -> pid (found by --id in the command line)."""
        found: dict[str, int] = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if not argv or not argv[0].endswith(b"berth-shim"):
                continue
            for a in argv[1:]:
                s = a.decode(errors="replace")
                if ID_RE.fullmatch(s) and (ids is None or s in ids):
                    found[s] = int(pid)
                    break
        return found

    def check_after_rm(self, what: str, ids: list[str]) -> None:
        """After removing containers: no shim, run dir or state left for them."""
        deadline = time.monotonic() + 3   # a shim may still be exiting when rm -f returns
        alive = self.shims(set(ids))
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = self.shims(set(ids))
        if alive:
            self.warnings.append(f"{what}: {len(alive)} shim(s) still running after rm -f (e.g. pid "
                                 f"{next(iter(alive.values()))})")
        idset = set(ids)
        left = [p.name for p in self.run_dir.iterdir() if p.name in idset]
        if left:
            self.warnings.append(f"{what}: {len(left)} run dir(s) left in {self.run_dir} after rm")
        cdir = self.root / "containers"
        left = [i for i in ids if (cdir / i).exists()]
        if left:
            self.warnings.append(f"{what}: {len(left)} container dir(s) left in {cdir} after rm")

    def start_detached(self, n: int, what: str, times: list[float] | None = None) -> list[str]:
        ids = []
        for i in range(n):
            r = self.run(self.b("run", "-d", "--network", "none", IMAGE, "sleep", "1000"), capture=True)
            cid = r.out.strip()
            if ID_RE.fullmatch(cid):
                ids.append(cid)
                self.ids.add(cid)
            if r.rc != 0 or not ID_RE.fullmatch(cid):
                raise RuntimeError(f"{what}: run -d #{i + 1} failed: {r.why()}")
            if times is not None:
                times.append(r.ms)
            if self.args.progress and (i + 1) % 50 == 0:
                log(f"  {what}: {i + 1}/{n} started")
        return ids

    # -- 1. run --rm true --------------------------------------------------------
    def section_run(self) -> None:
        a = self.args
        contenders: list[tuple[str, list[str], str]] = [
            ("berth", self.b("run", "--rm", "--network", "none", IMAGE, "true"), bl.version_of([self.berth]))]
        if shutil.which("podman"):
            c = self.setup_podman()
            if c:
                contenders.append(c)
        else:
            self.warnings.append("run: podman not installed")
        if shutil.which("docker") and self.run(["docker", "info"], timeout=15).rc == 0:
            img = f"bbbench-{secrets.token_hex(3)}:latest"
            r = self.run(["docker", "import", "--change", 'CMD ["sh"]', str(self.tar), img], timeout=120)
            if r.rc == 0:
                self.docker_image = img
                argv = ["docker", "run", "--rm", "--network", "none", img, "true"]
                p = self.run(argv, timeout=60)
                if p.rc == 0:
                    contenders.append(("docker", argv, bl.version_of(["docker"])))
                else:
                    self.warnings.append(f"run: docker probe failed: {p.why()}")
            else:
                self.warnings.append(f"run: docker import failed: {r.why()}")
        floor = ("floor: berth --version", [self.berth, "--version"], "process spawn, no container")
        contenders.append(floor)

        series = {name: [] for name, _, _ in contenders}
        failed: dict[str, str] = {}
        for i in range(-a.warmup, a.iterations):
            for name, argv, _ in bl.rotated(contenders, i):
                if name in failed:
                    continue
                r = self.run(argv)
                if r.rc != 0 or r.timed_out:
                    failed[name] = r.why()
                    log(f"run: {name}: {failed[name]}")
                elif i >= 0:
                    series[name].append(r.ms)
            if a.progress and i >= 0 and (i + 1) % 10 == 0:
                log(f"  run: {i + 1}/{a.iterations} rounds")
        left = self.container_ids()
        if left:
            self.warnings.append(f"run: {len(left)} container(s) left after `run --rm` (removed now)")
            self.rm_containers(left)

        base = bl.median(series["berth"]) if series["berth"] else None
        rows = []
        for name, argv, note in contenders:
            s = series[name]
            if not s:
                rows.append([name, "-", "-", "-", "-", "-", "FAILED: " + failed.get(name, "no samples")])
                continue
            sm = bl.summarize(s)
            rows.append([name, sm["n"], bl.fmt_ms(sm["median_ms"]), bl.fmt_ms(sm["p90_ms"]), bl.fmt_ms(sm["min_ms"]),
                         bl.fmt_ratio(bl.ratio(sm["median_ms"], base)),
                         ("FAILED later: " + failed[name] + "; " if name in failed else "") + note])
        for name, ms in ISSUE_RUN_MS.items():
            rows.append([f"{name}, issue", "-", f"{ms:.2f}", "-", "-", bl.fmt_ratio(bl.ratio(ms, base)),
                         "quoted from the issue (reference machine), not measured here"])
        print(f"1. run --rm --network none busybox true: {a.iterations} rounds after {a.warmup} warm-up, "
              f"contenders interleaved (target: berth median <= {TARGET_RUN_MS:g} ms)")
        for name, argv, _ in contenders:
            print(f"   {name}: {shlex.join(argv)}")
        print(bl.format_table(["contender", "n", "median ms", "p90 ms", "min ms", "vs berth", ""], rows,
                              align="lrrrrrl"))
        print()
        self.summary.append([f"run --rm true (berth median)", bl.fmt_ms(base) + " ms" if base else "-",
                             f"<= {TARGET_RUN_MS:g} ms", goal(None if base is None else base <= TARGET_RUN_MS)])
        pm = next((bl.median(series[n]) for n, _, _ in contenders if n.startswith("podman") and series[n]), None)
        if pm:
            self.summary.append(["run --rm true (podman median)", f"{pm:.2f} ms",
                                 f"{bl.fmt_ratio(bl.ratio(pm, base))} of berth", ""])
        self.results["run"] = {"commands": {n: argv for n, argv, _ in contenders},
                               "samples_ms": series, "failed": failed, "issue_ms": ISSUE_RUN_MS,
                               "target_ms": TARGET_RUN_MS}

    def setup_podman(self) -> tuple[str, list[str], str] | None:
        """Imports the tarball into a private podman store (under the work dir) and finds a
        podman run command line that works on this host."""
        proot = self.work / "podman"
        self.podman = ["podman", "--root", str(proot / "root"), "--runroot", str(self.run_dir / "podman"),
                       "--tmpdir", str(self.run_dir / "podman-tmp")]
        r = self.run(self.podman + ["import", "--change", 'CMD ["sh"]', str(self.tar), PODMAN_IMAGE],
                     timeout=300, capture=True)
        if r.rc != 0:
            self.warnings.append(f"run: podman import failed: {r.why()}")
            return None
        version = bl.version_of(["podman"]).replace("podman version ", "podman ")
        runtimes = [["--runtime", "runc"]] if shutil.which("runc") else []
        runtimes.append([])
        tried = []
        for rt in runtimes:
            for extra in ([], PODMAN_ULIMITS):
                argv = self.podman + rt + ["run", "--rm", "--network", "none", *extra, PODMAN_IMAGE, "true"]
                p = self.run(argv, timeout=120)
                if p.rc == 0:
                    rt_name = rt[1] if rt else "default runtime"
                    note = f"{version}, {rt_name}, private store"
                    if extra:
                        note += " (--ulimit: this host refuses podman's default rlimits)"
                    return (f"podman ({rt_name})", argv, note)
                tried.append(f"{' '.join(rt + extra) or 'defaults'}: {p.why()}")
        self.warnings.append("run: podman probe failed: " + " | ".join(tried))
        return None

    # -- 2. run -d / rm -f churn -------------------------------------------------------
    def section_churn(self) -> None:
        n = self.args.count
        runs: list[float] = []
        rms: list[float] = []
        t0 = time.perf_counter()
        ids = self.start_detached(n, "churn", runs)   # on failure, the caller removes what was made
        t_run = time.perf_counter() - t0
        t1 = time.perf_counter()
        for k, cid in enumerate(ids):
            r = self.run(self.b("rm", "-f", cid))
            if r.rc != 0:
                raise RuntimeError(f"churn: rm -f #{k + 1} failed: {r.why()}")
            rms.append(r.ms)
            if self.args.progress and (k + 1) % 50 == 0:
                log(f"  churn: {k + 1}/{n} removed")
        t_rm = time.perf_counter() - t1
        self.check_after_rm("churn", ids)
        total = t_run + t_rm
        scaled = total * TARGET_CHURN_COUNT / n
        rows = []
        for name, s in ((f"run -d --network none busybox sleep 1000", runs), ("rm -f ID (running)", rms)):
            sm = bl.summarize(s)
            rows.append([name, sm["n"], bl.fmt_ms(sm["median_ms"]), bl.fmt_ms(sm["p90_ms"]), bl.fmt_ms(sm["min_ms"]),
                         bl.fmt_ms(sm["max_ms"])])
        print(f"2. {n} x `berth run -d --network none busybox sleep 1000`, then `berth rm -f ID` for each, "
              f"one command per container (target: {TARGET_CHURN_COUNT} of each in <= {TARGET_CHURN_S:g} s)")
        print(bl.format_table(["command", "n", "median ms", "p90 ms", "min ms", "max ms"], rows))
        print(f"total: {total:.2f} s ({t_run:.2f} s of run -d, {t_rm:.2f} s of rm -f)"
              + (f"; x{TARGET_CHURN_COUNT}/{n} = {scaled:.2f} s for {TARGET_CHURN_COUNT}" if n != TARGET_CHURN_COUNT
                 else ""))
        print()
        self.summary.append([f"{TARGET_CHURN_COUNT} x (run -d + rm -f), total"
                             + (f" (scaled from {n})" if n != TARGET_CHURN_COUNT else ""),
                             f"{scaled:.2f} s", f"<= {TARGET_CHURN_S:g} s", goal(scaled <= TARGET_CHURN_S)])
        self.results["churn"] = {"count": n, "run_d_ms": runs, "rm_f_ms": rms, "total_s": total,
                                 "run_s": t_run, "rm_s": t_rm, "scaled_total_s": scaled,
                                 "target_s": TARGET_CHURN_S}

    # -- 3. ps -a with many containers ----------------------------------------------------
    def section_ps(self) -> None:
        a = self.args
        n, jobs = a.ps_containers, max(1, a.jobs)
        log(f"ps: creating {n} containers in {jobs} parallel loops")
        made: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for i in range(k, n, jobs):
                if self.stopping or errors:
                    return
                r = self.run(self.b("create", "--network", "none", IMAGE, "true"), capture=True)
                cid = r.out.strip()
                with lock:
                    if ID_RE.fullmatch(cid):
                        made.append(cid)
                        self.ids.add(cid)
                    if r.rc != 0:
                        errors.append(r.why())
                    elif a.progress and len(made) % 100 == 0:
                        log(f"  ps: {len(made)}/{n} created")

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(jobs)]
        self.threads = threads
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
        if errors:
            raise RuntimeError(f"ps: create failed: {errors[0]}")
        listed = set(self.container_ids())
        lost = [i for i in made if i not in listed]
        if lost:
            # berth bug seen here: a concurrent command's reconcile() removes a container whose
            # create it saw in flight. Top up one at a time, so `ps -a` still sees n containers.
            self.warnings.append(f"ps: {len(lost)} of {len(made)} containers made by parallel `berth create` "
                                 f"(exit 0) are gone, e.g. {lost[0][:12]}; made again one at a time")
            for k in range(n - len(listed)):
                r = self.run(self.b("create", "--network", "none", IMAGE, "true"), capture=True)
                if r.rc != 0:
                    raise RuntimeError(f"ps: create failed: {r.why()}")
                self.ids.add(r.out.strip())
            listed = set(self.container_ids())
        t_create = time.perf_counter() - t0
        if len(listed) != n:
            self.warnings.append(f"ps: wanted {n} containers, `ps -aq` lists {len(listed)}")
        made = sorted(listed)
        cmds = [("ps -a", self.b("ps", "-a")), ("ps -a -q --no-trunc", self.b("ps", "-a", "-q", "--no-trunc"))]
        series = {name: [] for name, _ in cmds}
        for i in range(-1, a.iterations):
            for name, argv in bl.rotated(cmds, i):
                r = self.run(argv)
                if r.rc != 0:
                    raise RuntimeError(f"ps: {name} failed: {r.why()}")
                if i >= 0:
                    series[name].append(r.ms)
        t1 = time.perf_counter()
        errs = self.rm_containers(made, batch=100)
        t_rm = time.perf_counter() - t1
        if errs:
            self.warnings.append(f"ps: rm of the created containers: {errs[0]}")
        self.check_after_rm("ps", made)
        rows = []
        for name, s in series.items():
            sm = bl.summarize(s)
            rows.append([name, sm["n"], bl.fmt_ms(sm["median_ms"]), bl.fmt_ms(sm["p90_ms"]), bl.fmt_ms(sm["min_ms"]),
                         f"<= {TARGET_PS_MS:g}" if name == "ps -a" else ""])
        print(f"3. berth ps with {n} containers (Created), {a.iterations} runs after 1 warm-up "
              f"(target: ps -a median <= {TARGET_PS_MS:g} ms with 1000)")
        print(bl.format_table(["command", "n", "median ms", "p90 ms", "min ms", "target ms"], rows))
        print(f"(setup: {n} x `berth create` in {jobs} parallel loops took {t_create:.1f} s, "
              f"{t_create / max(1, n) * 1000 * jobs:.1f} ms each per loop; `rm` in batches of 100 took {t_rm:.1f} s)")
        print()
        med = bl.median(series["ps -a"])
        self.summary.append([f"ps -a with {n} containers", f"{med:.2f} ms", f"<= {TARGET_PS_MS:g} ms"
                             + ("" if n == 1000 else " (at 1000)"), goal(med <= TARGET_PS_MS)])
        self.results["ps"] = {"containers": n, "samples_ms": series, "create_s": t_create, "rm_s": t_rm,
                              "target_ms": TARGET_PS_MS}

    # -- 4. volumes (bench/volumes.sh) ---------------------------------------------------
    def section_volume(self) -> None:
        a = self.args
        argv = ["bash", str(VOLUMES_SH), "-n", str(a.iterations), "-l", str(a.iterations),
                "--volumes", str(a.volumes), "--root-dir", str(self.work)]
        env = dict(self.env, BERTH_BIN=self.berth)
        print(f"4. volumes: {shlex.join(['bench/volumes.sh', *argv[2:-2]])} (own root under the work dir; "
              f"targets: create <= {TARGET_VOLUME_CREATE_MS:g} ms, ls with 10,000 <= {TARGET_VOLUME_LS_MS:g} ms)")
        r = self.run(argv, capture=True, env=env, timeout=max(self.args.timeout, 3600))
        for line in r.out.splitlines():
            print("   " + line)
        if r.rc != 0:
            raise RuntimeError(f"volumes.sh: {r.why()}")
        found = {}
        for line in r.out.splitlines():
            m = re.match(r"^(.*?): median ([\d.]+) ms wall, ([\d.]+) ms CPU", line)
            if m:
                found[m.group(1)] = (float(m.group(2)), float(m.group(3)))
        print()
        create = next((v for k, v in found.items() if k.startswith("volume create")), None)
        ls = next((v for k, v in found.items() if k.startswith("volume ls with")), None)
        self.summary.append(["volume create", f"{create[0]:.2f} ms" if create else "-",
                             f"<= {TARGET_VOLUME_CREATE_MS:g} ms",
                             goal(None if not create else create[0] <= TARGET_VOLUME_CREATE_MS)])
        self.summary.append([f"volume ls with {a.volumes} volumes", f"{ls[0]:.2f} ms" if ls else "-",
                             f"<= {TARGET_VOLUME_LS_MS:g} ms" + ("" if a.volumes == 10000 else " (at 10,000)"),
                             goal(None if not ls else ls[0] <= TARGET_VOLUME_LS_MS)])
        self.results["volume"] = {"command": argv, "medians_ms": {k: v[0] for k, v in found.items()},
                                  "cpu_ms": {k: v[1] for k, v in found.items()}, "output": r.out}

    # -- 5. sequential write with fsync ----------------------------------------------------
    def section_write(self) -> None:
        a = self.args
        size = a.size
        runs = a.write_runs if a.write_runs is not None else min(a.iterations, 3)
        wdir = self.work / "write"
        host_dir, bind_dir, sync_dir = wdir / "host", wdir / "bind", wdir / "sync"
        for d in (host_dir, bind_dir, sync_dir):
            d.mkdir(parents=True)
        vol = "bbbench-write"
        self.ok(self.b("volume", "create", vol))
        vol_dir = Path(self.ok(self.b("volume", "inspect", "-f", "{{.Mountpoint}}", vol)).strip())
        ctr = ["run", "--rm", "--network", "none", "-v", f"{sync_dir}:/sync"]
        targets = {
            "host directory": (None, host_dir / "bench.dat"),
            "bind mount": (self.b(*ctr, "-v", f"{bind_dir}:/data", IMAGE), bind_dir / "bench.dat"),
            "named volume": (self.b(*ctr, "-v", f"{vol}:/data", IMAGE), vol_dir / "bench.dat"),
            "writable layer": (self.b(*ctr, IMAGE), None),
        }
        inside = {"bind mount": "/data/bench.dat", "named volume": "/data/bench.dat",
                  "writable layer": "/bench.dat"}

        def one(name: str, mib: int) -> float:
            prefix, host_file = targets[name]
            for f in ("ctl", "go", "dd.err"):
                try:
                    os.unlink(sync_dir / f)
                except FileNotFoundError:
                    pass
            os.mkfifo(sync_dir / "ctl")
            os.mkfifo(sync_dir / "go")
            if prefix is None:   # the same static busybox, on the host
                bb, sync, out = str(self.busybox), str(sync_dir), str(host_file)
            else:
                bb, sync, out = "/bin/busybox", "/sync", inside[name]
            script = (f"echo ready > {sync}/ctl; read x < {sync}/go; "
                      f"{bb} dd if=/dev/zero of={out} bs=1M count={mib} conv=fsync 2>{sync}/dd.err; "
                      f"echo rc=$? > {sync}/ctl")
            argv = ([bb, "sh", "-c", script] if prefix is None else [*prefix, "sh", "-c", script])
            ctl = os.open(sync_dir / "ctl", os.O_RDWR | os.O_NONBLOCK)
            go = os.open(sync_dir / "go", os.O_RDWR | os.O_NONBLOCK)
            errf = open(wdir / "stderr", "w+b")
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                                 env=self.env, process_group=0)
            self.live.add(p)
            self.killable.add(p)
            buf = b""

            def wait_line(deadline: float) -> str:
                nonlocal buf
                while b"\n" not in buf:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"write: {name}: no answer from the dd script in time")
                    rl, _, _ = select.select([ctl], [], [], 0.1)
                    if rl:
                        buf += os.read(ctl, 4096)
                    elif p.poll() is not None and b"\n" not in buf:
                        errf.seek(0)
                        raise RuntimeError(f"write: {name}: exited {p.returncode} early: "
                                           f"{errf.read().decode(errors='replace').strip()[-300:]}")
                line, _, buf = buf.partition(b"\n")
                return line.decode()

            try:
                os.sync()
                if wait_line(time.monotonic() + 120) != "ready":
                    raise RuntimeError(f"write: {name}: unexpected handshake")
                t0 = time.perf_counter()
                os.write(go, b"x\n")
                status = wait_line(time.monotonic() + a.timeout + mib)
                t1 = time.perf_counter()
                p.wait(timeout=300)
            finally:
                os.close(ctl)
                os.close(go)
                self.killable.discard(p)
                if p.poll() is None:
                    p.kill()
                    p.wait()
                self.live.discard(p)
                errf.close()
            if status != "rc=0" or p.returncode != 0:
                err = (sync_dir / "dd.err").read_text(errors="replace") if (sync_dir / "dd.err").exists() else ""
                raise RuntimeError(f"write: {name}: dd {status}, run exit {p.returncode}: {err.strip()[-300:]}")
            if host_file is not None:
                got = host_file.stat().st_size
                if got != mib << 20:
                    raise RuntimeError(f"write: {name}: {host_file} has {got} bytes, not {mib << 20}")
                host_file.unlink()
            return t1 - t0

        names = list(targets)
        for name in names:     # probe: 1 MiB each, untimed
            one(name, 1)
        samples: dict[str, list[float]] = {n: [] for n in names}
        for i in range(runs):
            for name in bl.rotated(names, i):
                s = one(name, size)
                samples[name].append(s)
                if a.progress:
                    log(f"  write: round {i + 1}: {name} {size / s:.0f} MiB/s")
        self.ok(self.b("volume", "rm", vol))
        host_med = bl.median(samples["host directory"])
        nbytes = size << 20
        rows = []
        for name in names:
            med = bl.median(samples[name])
            r = host_med / med if med else None
            rows.append([name, len(samples[name]), f"{med:.3f}", f"{min(samples[name]):.3f}",
                         f"{max(samples[name]):.3f}", f"{nbytes / 1e6 / med:.0f}",
                         bl.fmt_ratio(r), "" if name == "host directory" else f">= {TARGET_WRITE_RATIO:.2f}x"])
            if name != "host directory":
                self.summary.append([f"write {size} MiB + fsync: {name} / host", bl.fmt_ratio(r),
                                     f">= {TARGET_WRITE_RATIO:.2f}x", goal(r is not None and r >= TARGET_WRITE_RATIO)])
        print(f"5. sequential write, busybox `dd if=/dev/zero bs=1M count={size} conv=fsync` ({size} MiB), "
              f"{runs} rounds after a 1 MiB probe, targets interleaved; data root on {self.host_start['root_fs']} "
              f"(target: >= {TARGET_WRITE_RATIO:.2f}x of the host directory's throughput)")
        print("   timed from the container's `go` to dd's exit status (fifo handshake), so container start and "
              "removal are excluded; the host row runs the same static busybox")
        print(bl.format_table(["target", "n", "median s", "min s", "max s", "MB/s", "vs host", "target"], rows))
        print("   (vs host = host median time / this median time: above 1.00x is faster than the host directory)")
        print()
        self.results["write"] = {"size_mib": size, "rounds": runs, "samples_s": samples,
                                 "target_ratio": TARGET_WRITE_RATIO, "root_fs": self.host_start["root_fs"]}

    # -- 6. shim memory ---------------------------------------------------------------
    def section_shim(self) -> None:
        n = self.args.shims
        ids = self.start_detached(n, "shim")
        time.sleep(0.5)
        found = self.shims(set(ids))
        rss, pss, anon = [], [], []
        for cid in ids:
            pid = found.get(cid)
            if pid is None:
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            st = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
            ro = dict(l.split(":", 1) for l in rollup.splitlines()[1:] if ":" in l)
            rss.append(int(st["VmRSS"].split()[0]))
            anon.append(int(st.get("RssAnon", "0 kB").split()[0]))
            pss.append(int(ro["Pss"].split()[0]))
        errs = self.rm_containers(ids)
        if errs:
            self.warnings.append(f"shim: rm -f: {errs[0]}")
        self.check_after_rm("shim", ids)
        if len(rss) != n:
            self.warnings.append(f"shim: found {len(rss)} berth-shim processes for {n} running containers")
        if not rss:
            raise RuntimeError("shim: no berth-shim process found")

        def row(name, xs, target=""):
            return [name, len(xs), kib(statistics.median(xs)), kib(min(xs)), kib(max(xs)), kib(sum(xs)), target]

        print(f"6. berth-shim memory with {n} containers running `sleep 1000` (target: <= 1 MiB resident each)")
        print(bl.format_table(["per shim", "n", "median", "min", "max", "sum", "target"],
                              [row("VmRSS", rss, f"<= {TARGET_SHIM_KIB} KiB"), row("Pss", pss),
                               row("RssAnon", anon)]))
        print("   (VmRSS counts the binary's text pages in every shim; Pss divides shared pages among the "
              "processes that map them, so sum(Pss) is what the shims cost together)")
        print()
        med_rss, med_pss = statistics.median(rss), statistics.median(pss)
        self.summary.append([f"berth-shim VmRSS, median of {len(rss)}", kib(med_rss), f"<= {TARGET_SHIM_KIB} KiB",
                             goal(med_rss <= TARGET_SHIM_KIB)])
        self.summary.append([f"berth-shim Pss, median of {len(pss)}", kib(med_pss), f"<= {TARGET_SHIM_KIB} KiB",
                             goal(med_pss <= TARGET_SHIM_KIB)])
        self.results["shim"] = {"containers": n, "vmrss_kib": rss, "pss_kib": pss, "rss_anon_kib": anon,
                                "target_kib": TARGET_SHIM_KIB}

    # -- cleanup --------------------------------------------------------------------
    def cleanup(self) -> None:
        self.stopping = True
        for t in getattr(self, "threads", []):
            t.join(300)
        for p in list(self.killable):
            if p.poll() is None:
                p.kill()
        for p in list(self.live):      # let berth commands in flight finish: no half-made state
            try:
                p.wait(timeout=300)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.root.exists():
            ids = self.container_ids()
            if ids:
                self.cleanup_notes.append(f"removed {len(ids)} container(s) left in the root")
                errs = self.rm_containers(ids)
                if errs:
                    self.cleanup_notes.append(f"rm -f: {errs[0]}")
            r = self.run(self.b("volume", "ls", "-q"), capture=True)
            vols = [v for v in r.out.split() if v] if r.rc == 0 else []
            if vols:
                self.cleanup_notes.append(f"removed {len(vols)} volume(s)")
                self.run(self.b("volume", "rm", "-f", *vols))
        if self.podman:
            self.run(self.podman + ["rm", "-af"], timeout=120)
            self.run(self.podman + ["rmi", "-af"], timeout=120)
        if self.docker_image:
            self.run(["docker", "rmi", "-f", self.docker_image], timeout=120)
        # Shims still running for this root or run dir (by pid; a berth bug if any).
        for pid in os.listdir("/proc"):
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
                self.cleanup_notes.append(f"unmounted {m}")
                subprocess.run(["umount", "-l", m], capture_output=True)
        leftover = sorted(p.name for p in self.run_dir.iterdir()
                          if p.name not in ("runtime", "podman", "podman-tmp")) if self.run_dir.exists() else []
        if leftover:
            self.cleanup_notes.append(f"run dir entries left: {', '.join(leftover[:5])}")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.work)], capture_output=True)
        for p in (self.work, self.run_dir):
            if p.exists():
                self.cleanup_notes.append(f"could not remove {p}")

    def remove_cgroups(self) -> None:
        """Container cgroups (<mount>/berth/<id>) of our ids still present: a berth bug if any."""
        if not self.ids:
            return
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split()[0] in ("cgroup", "cgroup2"):
                    mounts.append(left.split()[4])
        leaked = []
        for m in mounts:
            parent = Path(m) / "berth"
            if not parent.is_dir():
                continue
            for d in parent.iterdir():
                if d.name in self.ids:
                    leaked.append(d)
        for d in leaked:
            for sub, _, _ in sorted(os.walk(d), key=lambda t: t[0].count("/"), reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
        if leaked:
            self.cleanup_notes.append(f"{len(leaked)} container cgroup(s) left behind (removed), e.g. {leaked[0]}")

    # -- report --------------------------------------------------------------------
    def header(self, argv: list[str]) -> None:
        print("command: " + shlex.join(argv))
        print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
        print(f"berth: {self.berth} ({bl.version_of([self.berth])})")
        print("host: " + ", ".join(f"{k}={v}" for k, v in self.host_start.items()))
        print(f"data root: {self.root}, run dir: {self.run_dir}")
        print()

    def footer(self, argv: list[str]) -> None:
        host_end = bl.host_info().get("loadavg")
        print(f"loadavg at end: {host_end}")
        for w in self.warnings:
            print(f"WARNING: {w}")
        if not self.summary:
            return
        print("\nsummary:")
        print(bl.format_table(["measure", "value", "target", "status"], self.summary, align="lrrl"))
        print("\nfor docs/PERFORMANCE.md:")
        print(f"Command: `{shlex.join(argv)}` ({datetime.date.today()}, load "
              f"{' '.join(self.host_start.get('loadavg', []))})\n")
        print("| measure | value | target | status |")
        print("|---|---|---|---|")
        for r in self.summary:
            print("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    build_default = os.environ.get("BERTH_BUILD_DIR", str(bl.REPO / "build"))
    ap.add_argument("-n", "--iterations", type=int, default=20,
                    help="repetitions of each timed command (run, ps, volume create/ls; default 20)")
    ap.add_argument("--build", default=build_default,
                    help="build directory holding src/cli/berth (default $BERTH_BUILD_DIR or <repo>/build)")
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(SECTIONS))
    ap.add_argument("--warmup", type=int, default=2, help="discarded rounds before `run` is timed (default 2)")
    ap.add_argument("--count", type=int, default=200, help="containers in the run -d / rm -f churn (default 200)")
    ap.add_argument("--ps-containers", type=int, default=1000, help="containers for `ps -a` (default 1000)")
    ap.add_argument("--jobs", type=int, default=4, help="parallel `create` loops making them (default 4)")
    ap.add_argument("--volumes", type=int, default=10000, help="volumes for `volume ls` (default 10000)")
    ap.add_argument("--size", type=int, default=1024, help="MiB written by each dd (default 1024)")
    ap.add_argument("--write-runs", type=int, help="dd rounds (default: min(-n, 3))")
    ap.add_argument("--shims", type=int, default=100, help="running containers whose shims are measured "
                                                           "(default 100)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before one command counts as hung")
    ap.add_argument("--json", metavar="PATH", help="also write all samples as JSON ('-': stdout)")
    ap.add_argument("--progress", action="store_true", help="progress messages on stderr")
    args = ap.parse_args()
    argv = [os.path.basename(sys.executable)] + sys.argv

    only = args.only.split(",") if args.only else list(SECTIONS)
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"--only: unknown section(s) {', '.join(bad)} (choose from {', '.join(SECTIONS)})")
    if os.geteuid() != 0:
        print("containers: needs root (containers, mounts, cgroups)", file=sys.stderr)
        return 2
    berth = Path(args.build) / "src" / "cli" / "berth"
    if not os.access(berth, os.X_OK):
        print(f"containers: {berth} not found (build berth or pass --build DIR)", file=sys.stderr)
        return 2
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    bench = Bench(args)
    failed: list[str] = []
    interrupted = None
    bench.header(argv)
    try:
        for name in SECTIONS:
            if name not in only:
                continue
            try:
                if name != "volume":
                    bench.prepare_image()
                getattr(bench, f"section_{name}")()
            except Exception as e:  # noqa: BLE001 - one broken section must not stop the others
                failed.append(name)
                if not isinstance(e, (RuntimeError, OSError, subprocess.SubprocessError)):
                    traceback.print_exc()
                print(f"{name}: FAILED: {e}\n")
                # what the section made goes now, so the next one starts from an empty root
                ids = bench.container_ids()
                if ids:
                    bench.rm_containers(ids)
            sys.stdout.flush()
    except Interrupted as e:
        interrupted = e.code
        print(f"\ninterrupted (signal {e.code - 128}): cleaning up", file=sys.stderr)
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        bench.cleanup()
    bench.footer(argv)
    if bench.cleanup_notes:
        print("\ncleanup: " + "; ".join(bench.cleanup_notes))
    if args.json:
        bl.dump_json(args.json, {"benchmark": "containers", "command": argv, "host": bench.host_start,
                                 "results": bench.results, "summary": bench.summary,
                                 "warnings": bench.warnings, "cleanup": bench.cleanup_notes,
                                 "failed_sections": failed})
    if interrupted:
        return interrupted
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
