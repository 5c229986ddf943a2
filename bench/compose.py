#!/usr/bin/env python3
"""Issue 7's compose targets: `compose up -d` and `compose down` of a two-service project (two
named volumes, one network, a published port, a read-only bind), images already present.

    sudo python3 bench/compose.py                 # berth; 10 rounds
    sudo python3 bench/compose.py -n 20 --berth build/src/cli/berth

berth runs with a private root and run dir in a private network namespace (the published port
and bridge stay there). No docker daemon runs on the project's machines, so the docker-compose
column quotes the issue's figures (docker-compose 1.29 against dockerd 20.10 on this machine
kind) rather than timing it here. Everything created is removed at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

PROJECT = """\
services:
  backend:
    image: {backend}
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv/www"]
    init: true
    volumes: ["logs:/var/log/backend", "shared:/shared", "./ref:/ref:ro"]
    networks: [app]
  frontend:
    image: {frontend}
    command: ["httpd", "-f", "-p", "80", "-h", "/srv/www"]
    init: true
    ports: ["18080:80"]
    volumes: ["shared:/srv/www/shared:ro"]
    networks: [app]
    depends_on: [backend]
volumes: {{logs: {{}}, shared: {{}}}}
networks: {{app: {{}}}}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10, help="rounds (default 10)")
    ap.add_argument("--berth", default=str(REPO / "build" / "src" / "cli" / "berth"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/compose.py: needs root", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="berth-bench-compose-"))
    run_dir = Path(tempfile.mkdtemp(prefix="bbc-", dir="/run"))
    netns = run_dir / "net"
    netns.touch()
    subprocess.run(["unshare", f"--net={netns}", "true"], check=True)
    subprocess.run(["nsenter", f"--net={netns}", "ip", "link", "set", "lo", "up"], check=True)
    wrapper = work / "berth"
    wrapper.write_text(f"#!/bin/sh\nBERTH_RUN_DIR='{run_dir}/run' exec nsenter --net='{netns}' "
                       f"'{args.berth}' --root '{work}/root' \"$@\"\n")
    wrapper.chmod(0o755)
    project = work / "project"
    (project / "ref").mkdir(parents=True)
    (project / "ref" / "r.txt").write_text("reference\n")
    (project / "compose.yaml").write_text(PROJECT.format(backend="berth-example/backend:latest",
                                                         frontend="berth-example/frontend:latest"))
    compose = [str(wrapper), "compose", "-f", str(project / "compose.yaml"), "-p", "bench"]
    up: list[float] = []
    down: list[float] = []
    try:
        subprocess.run([str(REPO / "examples" / "frontend-backend" / "build-images"), str(wrapper)], check=True,
                       stdout=subprocess.DEVNULL)
        for i in range(args.n + 1):
            t0 = time.perf_counter()
            subprocess.run([*compose, "up", "-d"], check=True, capture_output=True)
            t1 = time.perf_counter()
            subprocess.run([*compose, "down", "-v", "-t", "1"], check=True, capture_output=True)
            t2 = time.perf_counter()
            if i > 0:  # the first round warms caches
                up.append((t1 - t0) * 1000)
                down.append((t2 - t1) * 1000)
        rows = [["compose up -d", benchlib.fmt_ms(benchlib.median(up)), "≤ 150 ms", "1.03 s (issue's figure)"],
                ["compose down -v -t 1", benchlib.fmt_ms(benchlib.median(down)), "≤ 100 ms + exit",
                 "1.76 s (issue's figure)"]]
        print(benchlib.format_table(["step", "berth median (ms)", "target", "docker-compose 1.29 + dockerd 20.10"], rows))
        print(f"({args.n} rounds; host: {benchlib.host_info()})")
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "1"], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(work / "root")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(run_dir / "run" / "netns")], capture_output=True)
        subprocess.run(["umount", "-l", str(netns)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
