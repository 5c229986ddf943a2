#!/usr/bin/env python3
"""Container start-to-exit latency: wall time of

    RUNTIME --root TMP run --bundle BUNDLE ID

for a busybox bundle whose process is `true` (runc's default spec from
`runc spec`, terminal off, read-only root on a fixture rootfs built once), for
berth, runc and crun, next to the floor
`unshare --mount --pid --net --uts --ipc --fork true`.

Every run uses a fresh container id; contenders alternate within each round
(the leader rotates each round); warm-up rounds are discarded. Everything it
creates (containers, state roots, bundle, rootfs, cgroups) is removed at the end.

Run as root:  python3 bench/runtime_run.py [-n 50] [--json out.json]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

FLOOR_ARGV = ["unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "true"]
FIXTURE = bl.REPO / "tests" / "fixtures" / "make-busybox-rootfs.sh"
NS_MARK = "BERTH_BENCH_PRIVATE_MNTNS"


def default_berth() -> Path:
    build = Path(os.environ.get("BERTH_BUILD_DIR", bl.REPO / "build"))
    return build / "src" / "cli" / "berth-runtime"


@dataclass
class Contender:
    name: str
    path: str               # runtime binary; empty for the floor
    root: Path | None       # runtime --root state dir; None for the floor
    series: bl.Series
    ids: list[str] = field(default_factory=list)
    cgroups: dict[str, str] = field(default_factory=dict)  # hierarchy -> container cgroup path


    def argv(self, bundle: Path, cid: str) -> list[str]:
        if not self.path:
            return list(FLOOR_ARGV)
        return [self.path, "--root", str(self.root), "run", "--bundle", str(bundle), cid]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prefix = "bench-" + secrets.token_hex(3)
        self.dir = Path(tempfile.mkdtemp(prefix="berth-bench-"))
        self.bundle = self.dir / "bundle"
        self.contenders: list[Contender] = []
        self.counter = 0
        self.leaked_cgroups: list[str] = []
        self.leaked_state: list[str] = []
        self.host_start = bl.host_info()
        self.probe_bundle = self.dir / "bundle-cgroup-probe"
        self.cgroups_before = all_cgroup_dirs()
        self.removed_parents: list[str] = []

    # -- setup ----------------------------------------------------------------
    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def add_runtime(self, name: str, path: str | None) -> None:
        series = bl.Series(name=name, argv0=path or "")
        if not path or not (os.path.isfile(path) and os.access(path, os.X_OK)):
            series.skipped = f"{path or name} not found" + (" (build berth or pass --berth PATH)"
                                                            if name == "berth" else "")
            self.contenders.append(Contender(name, "", None, series))
            return
        series.version = bl.version_of([path])
        root = self.dir / f"root-{name}"
        root.mkdir()
        self.contenders.append(Contender(name, path, root, series))

    def add_floor(self) -> None:
        series = bl.Series(name="unshare floor", argv0=" ".join(FLOOR_ARGV))
        if not shutil.which("unshare"):
            series.skipped = "unshare not found"
        self.contenders.append(Contender("unshare floor", "", None, series))

    def make_bundle(self) -> None:
        rootfs = Path(self.args.rootfs).resolve() if self.args.rootfs else self.dir / "rootfs"
        if not self.args.rootfs:
            subprocess.run(["sh", str(FIXTURE), str(rootfs)], check=True)
        self.bundle.mkdir()
        spec_tool = shutil.which("runc") or shutil.which("crun")
        if not spec_tool:
            raise SystemExit("runtime_run: need runc (or crun) for `spec` to write the default config")
        subprocess.run([spec_tool, "spec"], cwd=self.bundle, check=True)
        cfg_path = self.bundle / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["true"]
        cfg["root"] = {"path": str(rootfs), "readonly": True}
        cfg_path.write_text(json.dumps(cfg, indent=2))
        # same bundle, but the process reports where the runtime put it
        self.probe_bundle.mkdir()
        cfg["process"]["args"] = ["cat", "/proc/self/cgroup"]
        (self.probe_bundle / "config.json").write_text(json.dumps(cfg, indent=2))

    # -- measuring --------------------------------------------------------------
    def active(self) -> list[Contender]:
        return [c for c in self.contenders if not c.series.skipped and not c.series.failed]

    def run_once(self, c: Contender) -> bl.Timed:
        self.counter += 1
        cid = f"{self.prefix}-{c.name}-{self.counter}"
        if c.path:
            c.ids.append(cid)
        t = bl.time_command(c.argv(self.bundle, cid), timeout=self.args.timeout)
        if t.returncode != 0 or t.timed_out:
            why = "timed out" if t.timed_out else f"exit {t.returncode}"
            err = t.stderr.strip().splitlines()
            c.series.failed = f"{why}: {err[-1] if err else '(no stderr)'}"
            self.log(f"{c.name}: {c.series.failed}")
            self.remove_container(c, cid)
        return t

    def probe(self) -> None:
        """One run each before warming up: a contender that cannot run is skipped, not fatal."""
        for c in self.active():
            t = self.run_once(c)
            if c.series.failed:
                c.series.skipped, c.series.failed = "probe failed: " + c.series.failed, None
            else:
                self.log(f"{c.name}: probe ok ({t.elapsed_ms:.1f} ms)")
                if c.path:
                    self.probe_cgroups(c)

    def probe_cgroups(self, c: Contender) -> None:
        """Runs `cat /proc/self/cgroup` in a container: where this runtime puts the
        cgroups (reported, and used to remove parents it created and left behind)."""
        cid = f"{self.prefix}-{c.name}-cg"
        c.ids.append(cid)
        r = subprocess.run([c.path, "--root", str(c.root), "run", "--bundle", str(self.probe_bundle), cid],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.args.timeout)
        if r.returncode != 0:
            self.log(f"{c.name}: cgroup probe failed ({r.returncode}): {r.stderr.strip()[-200:]}")
            self.remove_container(c, cid)
            return
        for line in r.stdout.splitlines():
            num, ctrls, path = (line.split(":", 2) + ["", ""])[:3]
            c.cgroups[ctrls or "cgroup2"] = path.replace(cid, "<id>")
        paths = sorted(set(c.cgroups.values()))
        self.log(f"{c.name}: container cgroup " + ", ".join(
            p + " (" + ",".join(k for k, v in c.cgroups.items() if v == p) + ")" for p in paths))

    def measure(self) -> None:
        order = self.active()
        for w in range(self.args.warmup):
            for c in bl.rotated(order, w):
                if not c.series.failed:
                    self.run_once(c)
        for i in range(self.args.iterations):
            for c in bl.rotated(order, i):
                if c.series.failed:
                    continue
                t = self.run_once(c)
                if not c.series.failed:
                    c.series.samples_ms.append(t.elapsed_ms)
            if self.args.progress and (i + 1) % 10 == 0:
                self.log(f"  {i + 1}/{self.args.iterations} rounds")

    # -- cleanup ----------------------------------------------------------------
    def remove_container(self, c: Contender, cid: str) -> None:
        if not c.path or not (c.root / cid).exists():
            return
        subprocess.run([c.path, "--root", str(c.root), "kill", cid, "KILL"], capture_output=True, timeout=30)
        subprocess.run([c.path, "--root", str(c.root), "delete", "--force", cid],
                       capture_output=True, timeout=30)

    def cleanup(self) -> None:
        for c in self.contenders:
            if not c.path or not c.root or not c.root.exists():
                continue
            leftovers = sorted(p.name for p in c.root.iterdir() if p.is_dir())
            for cid in leftovers:
                self.leaked_state.append(f"{c.name}: {cid}")
                self.remove_container(c, cid)
        self.remove_cgroups()
        shutil.rmtree(self.dir, ignore_errors=True)

    def remove_cgroups(self) -> None:
        self.remove_leaked_cgroups()
        self.remove_new_parents()

    def remove_new_parents(self) -> None:
        """Removes the empty parent cgroups (e.g. /berth) that a runtime created during this run."""
        mounts = hierarchy_mounts()
        for c in self.contenders:
            for hier, path in c.cgroups.items():
                mount = mounts.get(hier)
                if not mount:
                    continue
                parent = os.path.dirname(path.rstrip("/"))
                while parent not in ("", "/"):
                    d = mount + parent
                    if d in self.cgroups_before or not os.path.isdir(d):
                        break
                    try:
                        os.rmdir(d)  # fails, as it should, if anything is still inside
                        self.removed_parents.append(d)
                    except OSError:
                        break
                    parent = os.path.dirname(parent)

    def remove_leaked_cgroups(self) -> None:
        """Finds cgroups named after our container ids (a runtime that leaked them) and removes them."""
        for mount in cgroup_mounts():
            found = []
            for dirpath, dirnames, _ in os.walk(mount):
                for d in list(dirnames):
                    if d.startswith(self.prefix):
                        found.append(os.path.join(dirpath, d))
                        dirnames.remove(d)  # what is inside goes with it
            for top in found:
                self.leaked_cgroups.append(top)
                for dirpath, _, _ in sorted(os.walk(top), key=lambda t: t[0].count("/"), reverse=True):
                    for f, v in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                        try:
                            Path(dirpath, f).write_text(v)
                        except OSError:
                            pass
                    try:
                        os.rmdir(dirpath)
                    except OSError as e:
                        self.log(f"could not remove leaked cgroup {dirpath}: {e}")

    # -- report -----------------------------------------------------------------
    def report(self) -> dict:
        base = next((c for c in self.contenders if c.name == self.args.baseline), None)
        base_med = bl.median(base.series.samples_ms) if base and base.series.samples_ms else None
        rows = []
        for c in self.contenders:
            s = c.series
            if s.skipped or not s.samples_ms:
                rows.append([s.name, "-", "-", "-", "-", "-", "skipped: " + (s.skipped or s.failed or "no samples")])
                continue
            sm = bl.summarize(s.samples_ms)
            note = f"FAILED after {sm['n']} runs: {s.failed}" if s.failed else ""
            rows.append([s.name, sm["n"], bl.fmt_ms(sm["median_ms"]), bl.fmt_ms(sm["p90_ms"]),
                         bl.fmt_ms(sm["min_ms"]), bl.fmt_ratio(bl.ratio(sm["median_ms"], base_med)), note])
        table = bl.format_table(
            ["runtime", "n", "median ms", "p90 ms", "min ms", f"vs {self.args.baseline}", ""],
            rows, align="lrrrrrl")
        print(f"`RUNTIME --root TMP run --bundle B ID` (process: true), {self.args.iterations} rounds "
              f"after {self.args.warmup} warm-up, contenders interleaved")
        host = dict(self.host_start)
        host["loadavg_at_end"] = bl.host_info().get("loadavg")
        print("host: " + ", ".join(f"{k}={v}" for k, v in host.items())
              + (", private mount ns with cgroup2 hidden" if os.environ.get(NS_MARK) else ""))
        for c in self.contenders:
            if c.series.version:
                print(f"  {c.name}: {c.path} ({c.series.version})")
        print()
        print(table)
        if base_med is None:
            print(f"\n(ratio column empty: baseline '{self.args.baseline}' was not measured)")
        else:
            print(f"\nratio = contender median / {self.args.baseline} median (below 1.00x: faster than "
                  f"{self.args.baseline})")
        if self.leaked_state:
            print("WARNING: container state left in --root after `run` (deleted now): "
                  + ", ".join(self.leaked_state))
        placement = {c.name: sorted(set(c.cgroups.values())) for c in self.contenders if c.cgroups}
        if placement:
            print("container cgroups: " + "; ".join(f"{n}: {', '.join(p)}" for n, p in placement.items()))
        if self.removed_parents:
            print("removed parent cgroups created during the run: " + ", ".join(self.removed_parents[:10]))
        if self.leaked_cgroups:
            print(f"WARNING: {len(self.leaked_cgroups)} cgroup(s) left after `run` (removed now): "
                  + ", ".join(self.leaked_cgroups[:10]))
        return {
            "benchmark": "runtime_run",
            "command": "RUNTIME --root TMP run --bundle B ID",
            "iterations": self.args.iterations,
            "warmup": self.args.warmup,
            "baseline": self.args.baseline,
            "host": host,
            "legacy_cgroups_view": bool(os.environ.get(NS_MARK)),
            "results": {c.name: c.series.summary() for c in self.contenders},
            "leaked_cgroups": self.leaked_cgroups,
            "leaked_state": self.leaked_state,
            "cgroup_placement": {c.name: c.cgroups for c in self.contenders if c.cgroups},
            "removed_parent_cgroups": self.removed_parents,
        }


def cgroup_mounts() -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                out.append(left.split()[4])
    return out


def hierarchy_mounts() -> dict[str, str]:
    """/proc/self/cgroup hierarchy names ("cpu,cpuacct", "name=systemd", "cgroup2") -> mount point."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = (right.split() + ["", "", ""])[:3]
            mp = left.split()[4]
            if fstype == "cgroup2":
                out.setdefault("cgroup2", mp)
            elif fstype == "cgroup":
                names = [o for o in opts.split(",") if o not in ("rw", "ro") and "=" not in o or o.startswith("name=")]
                known = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio",
                         "perf_event", "hugetlb", "pids", "rdma", "misc"}
                key = ",".join(n for n in names if n in known or n.startswith("name="))
                out.setdefault(key, mp)
    return out


def all_cgroup_dirs() -> set[str]:
    dirs: set[str] = set()
    for mount in cgroup_mounts():
        for dirpath, _, _ in os.walk(mount):
            dirs.add(dirpath)
    return dirs


def enter_legacy_view() -> None:
    """Re-executes this script in a private mount namespace without the cgroup2
    mount of a hybrid host: crun 1.8 refuses hybrid hosts whose cgroup2 has
    controllers; without the mount every runtime sees plain cgroup v1."""
    if os.environ.get(NS_MARK):
        r = subprocess.run(["umount", "/sys/fs/cgroup/unified"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"runtime_run: umount /sys/fs/cgroup/unified: {r.stderr.strip()}")
        return
    if bl.cgroup_mode() != "hybrid":
        print(f"--legacy-cgroups: host cgroup mode is {bl.cgroup_mode()}, not hybrid; ignored", file=sys.stderr)
        return
    env = dict(os.environ, **{NS_MARK: "1"})
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                           sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--iterations", type=int, default=50, help="measured rounds (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="discarded rounds first (default 3)")
    ap.add_argument("--berth", default=str(default_berth()),
                    help="berth runtime binary (default $BERTH_BUILD_DIR or <repo>/build, src/cli/berth-runtime)")
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    ap.add_argument("--crun", default=shutil.which("crun") or "/usr/bin/crun")
    ap.add_argument("--runtime", action="append", default=[], metavar="NAME=PATH",
                    help="another runc-compatible runtime to measure (repeatable)")
    ap.add_argument("--only", help="comma-separated subset of: berth,runc,crun,floor and --runtime names")
    ap.add_argument("--baseline", default="berth", help="ratio column divides by this one's median")
    ap.add_argument("--rootfs", help="use this rootfs instead of building the busybox fixture")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before one run counts as hung")
    ap.add_argument("--legacy-cgroups", action="store_true",
                    help="on a hybrid cgroup host, run everything in a private mount namespace with "
                         "/sys/fs/cgroup/unified unmounted (lets crun 1.8 run there)")
    ap.add_argument("--json", metavar="PATH", help="also write all samples and summaries as JSON ('-': stdout)")
    ap.add_argument("--progress", action="store_true", help="print progress every 10 rounds")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("runtime_run: needs root (creates namespaces and cgroups)", file=sys.stderr)
        return 2
    if args.legacy_cgroups:
        enter_legacy_view()

    only = set(args.only.split(",")) if args.only else None
    bench = Bench(args)
    try:
        wanted = [("berth", args.berth), ("runc", args.runc), ("crun", args.crun)]
        for spec in args.runtime:
            name, _, path = spec.partition("=")
            wanted.append((name, path))
        for name, path in wanted:
            if only is None or name in only:
                bench.add_runtime(name, path)
        if only is None or "floor" in only:
            bench.add_floor()
        for c in bench.contenders:
            if c.series.skipped:
                bench.log(f"{c.name}: skipped: {c.series.skipped}")
        bench.make_bundle()
        bench.probe()
        bench.measure()
    finally:
        bench.cleanup()
    payload = bench.report()
    if args.json:
        bl.dump_json(args.json, payload)
    failed = [c.name for c in bench.contenders if c.series.failed]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
