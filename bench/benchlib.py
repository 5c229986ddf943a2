"""Shared helpers for berth benchmarks (stdlib only).

Statistics, command timing, fair interleaving, host facts and plain-text /
JSON reporting, so every benchmark under bench/ prints results the same way.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------
# statistics

def median(xs: Sequence[float]) -> float:
    return percentile(xs, 50)


def percentile(xs: Sequence[float], p: float) -> float:
    """p-th percentile, linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return math.nan
    s = sorted(xs)
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def stdev(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return math.nan
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def summarize(samples_ms: Sequence[float]) -> dict:
    """The numbers every benchmark reports for one series of samples (milliseconds)."""
    return {
        "n": len(samples_ms),
        "median_ms": median(samples_ms),
        "p90_ms": percentile(samples_ms, 90),
        "min_ms": min(samples_ms) if samples_ms else math.nan,
        "max_ms": max(samples_ms) if samples_ms else math.nan,
        "mean_ms": mean(samples_ms),
        "stdev_ms": stdev(samples_ms),
    }


# --------------------------------------------------------------------------
# formatting

def fmt_ms(v: float | None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0 or math.isnan(value) or math.isnan(base):
        return None
    return value / base


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
                 align: str | None = None) -> str:
    """Plain-text table. align: one char per column, 'l' or 'r' (default: first l, rest r)."""
    rows = [[str(c) for c in row] for row in rows]
    align = align or ("l" + "r" * (len(headers) - 1))
    widths = [len(h) for h in headers]
    for row in rows:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            out.append(c.ljust(widths[i]) if align[i] == "l" else c.rjust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths).rstrip()
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


# --------------------------------------------------------------------------
# timing

@dataclass
class Timed:
    elapsed_ms: float
    returncode: int
    stderr: str = ""
    timed_out: bool = False


def time_command(argv: Sequence[str], timeout: float = 60.0, cwd: str | None = None,
                 env: dict | None = None) -> Timed:
    """Wall time of one command: fork+exec to exit, stdin and stdout on /dev/null."""
    t0 = time.perf_counter_ns()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, cwd=cwd, env=env)
    try:
        _, err = p.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        timed_out = True
    t1 = time.perf_counter_ns()
    return Timed((t1 - t0) / 1e6, p.returncode, err.decode(errors="replace"), timed_out)


def rotated(items: Sequence, iteration: int) -> list:
    """items rotated by iteration: each item leads equally often, so drift over the
    run (thermal, page cache, background load) hits every contender alike."""
    if not items:
        return []
    k = iteration % len(items)
    return list(items[k:]) + list(items[:k])


# --------------------------------------------------------------------------
# host facts

def cgroup_mode() -> str:
    """'v2' (unified), 'hybrid' (v1 + cgroup2 at /sys/fs/cgroup/unified) or 'v1'."""
    try:
        fstype = _fstype("/sys/fs/cgroup")
    except OSError:
        return "none"
    if fstype == "cgroup2":
        return "v2"
    if os.path.isdir("/sys/fs/cgroup/unified") and _fstype("/sys/fs/cgroup/unified") == "cgroup2":
        return "hybrid"
    return "v1"


def _fstype(path: str) -> str:
    best, fstype = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mp = left.split()[4]
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, fstype = mp, right.split()[0]
    return fstype


def host_info() -> dict:
    info = {"kernel": platform.release(), "cpus": os.cpu_count(), "cgroup": cgroup_mode()}
    try:
        info["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return info


def version_of(argv: Sequence[str]) -> str:
    try:
        r = subprocess.run(list(argv) + ["--version"], capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def dump_json(path: str, payload: dict) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    if path == "-":
        print(text, end="")
    else:
        Path(path).write_text(text)


@dataclass
class Series:
    """Samples of one contender in a benchmark."""
    name: str
    argv0: str = ""
    version: str = ""
    samples_ms: list[float] = field(default_factory=list)
    skipped: str | None = None   # reason, when the contender was not measured
    failed: str | None = None    # reason, when it broke during the run

    def summary(self) -> dict:
        d = {"name": self.name, "path": self.argv0, "version": self.version,
             "skipped": self.skipped, "failed": self.failed, "samples_ms": self.samples_ms}
        d.update(summarize(self.samples_ms))
        return d
