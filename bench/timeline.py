#!/usr/bin/env python3
"""Runs a command and prefixes each line it prints (stdout and stderr together) with the
milliseconds since it started: where a multi-step command such as `berth compose down` spends its
time, from its own progress lines.

    python3 bench/timeline.py berth compose -p demo down -v -t 1
"""
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert p.stdout is not None
    for line in p.stdout:
        print(f"{(time.perf_counter() - t0) * 1000:8.1f} {line.rstrip()}")
    p.wait()
    print(f"{(time.perf_counter() - t0) * 1000:8.1f} exit {p.returncode}")
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
