#!/usr/bin/env python3
"""Interleaved A/B timing: runs each command once per round, alternating the order every round,
and prints each command's median and quartiles. This VM's speed drifts by 20-30 % over minutes
(its hypervisor's load), so two commands timed one after the other (hyperfine's order) can
differ by more than the change being measured; interleaving puts both under the same drift.

    python3 bench/ab.py -n 40 'old/berth run --rm busybox true' 'new/berth run --rm busybox true'
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=30, help="rounds (default 30)")
    ap.add_argument("-w", type=int, default=2, help="warm-up rounds, not counted (default 2)")
    ap.add_argument("commands", nargs="+", help="shell-quoted commands, run without a shell")
    a = ap.parse_args()
    cmds = [shlex.split(c) for c in a.commands]
    times: list[list[float]] = [[] for _ in cmds]
    for i in range(a.w + a.n):
        order = list(range(len(cmds))) if i % 2 == 0 else list(reversed(range(len(cmds))))
        for k in order:
            t0 = time.perf_counter()
            r = subprocess.run(cmds[k], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = (time.perf_counter() - t0) * 1000
            if r.returncode != 0:
                print(f"failed ({r.returncode}): {a.commands[k]}\n{r.stderr.decode(errors='replace')}", file=sys.stderr)
                return 1
            if i >= a.w:
                times[k].append(elapsed)
    base = statistics.median(times[0])
    for c, t in zip(a.commands, times):
        q = statistics.quantiles(t, n=4)
        med = statistics.median(t)
        print(f"median {med:8.2f} ms  p25 {q[0]:8.2f}  p75 {q[2]:8.2f}  ratio {med / base:5.2f}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
