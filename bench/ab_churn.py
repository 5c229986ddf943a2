#!/usr/bin/env python3
"""Interleaved A/B timing of container churn: for each round, every berth (given as a shell-quoted
command prefix, e.g. a wrapper that sets BERTH_RUN_DIR and --root) runs one `run -d` and then one
`rm -f` of that container, alternating which berth goes first. Prints each one's median per step.
Like bench/ab.py, interleaving puts both under the same drift of this VM's speed.

    python3 bench/ab_churn.py -n 30 'env BERTH_RUN_DIR=/run/a old/berth --root /var/tmp/a' \
                                    'env BERTH_RUN_DIR=/run/b new/berth --root /var/tmp/b'

Each berth needs an image (default busybox) in its root. Containers this script made are removed
on the way out, also after a failure or Ctrl-C.
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True)
    return (time.perf_counter() - t0) * 1000, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=30, help="rounds (default 30)")
    ap.add_argument("-w", type=int, default=2, help="warm-up rounds, not counted (default 2)")
    ap.add_argument("--image", default="busybox")
    ap.add_argument("berths", nargs="+", help="shell-quoted berth command prefixes")
    a = ap.parse_args()
    prefixes = [shlex.split(b) for b in a.berths]
    steps = ("run -d", "rm -f")
    times = {(k, s): [] for k in range(len(prefixes)) for s in steps}
    left: dict[int, list[str]] = {k: [] for k in range(len(prefixes))}
    try:
        for i in range(a.w + a.n):
            order = list(range(len(prefixes)))
            if i % 2:
                order.reverse()
            made = {}
            for k in order:
                ms, r = timed(prefixes[k] + ["run", "-d", "--network", "none", a.image, "sleep", "1000"])
                if r.returncode != 0:
                    print(f"run -d failed ({r.returncode}): {a.berths[k]}\n{r.stderr}", file=sys.stderr)
                    return 1
                made[k] = r.stdout.strip()
                left[k].append(made[k])
                if i >= a.w:
                    times[(k, "run -d")].append(ms)
            for k in order:
                ms, r = timed(prefixes[k] + ["rm", "-f", made[k]])
                if r.returncode != 0:
                    print(f"rm -f failed ({r.returncode}): {a.berths[k]}\n{r.stderr}", file=sys.stderr)
                    return 1
                left[k].remove(made[k])
                if i >= a.w:
                    times[(k, "rm -f")].append(ms)
    finally:
        for k, ids in left.items():
            if ids:
                subprocess.run(prefixes[k] + ["rm", "-f", *ids], capture_output=True)
    for s in steps:
        base = statistics.median(times[(0, s)])
        for k, b in enumerate(a.berths):
            med = statistics.median(times[(k, s)])
            print(f"{s:7} median {med:8.2f} ms  ratio {med / base:5.2f}  {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
