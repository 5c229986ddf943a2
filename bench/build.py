#!/usr/bin/env python3
"""Issue 8's build targets: a cold build (no cache) of a 5-step Dockerfile on the busybox base
(≤ 1.5 s) and rebuilding the example's two images from a warm cache (≤ 0.3 s for both).

    sudo python3 bench/build.py                  # berth (and docker/podman when installed); 10 rounds
    sudo python3 bench/build.py -n 20 --berth build/src/cli/berth

berth runs with a private root. docker (`DOCKER_BUILDKIT=0 docker build`, against a running
dockerd) and `podman build` are timed on the same Dockerfiles when they can build here; each
needs a busybox:latest image of its own, which this script does not download. Everything
created is removed at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "frontend-backend"

COLD = """\
FROM busybox
ENV APP_HOME=/app
COPY app.txt /app/
RUN echo built > /app/built && chmod 600 /app/built
CMD ["cat", "/app/app.txt", "/app/built"]
"""


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10, help="rounds (default 10)")
    ap.add_argument("--berth", default=str(REPO / "build/src/cli/berth"))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="berth-bench-build-"))
    root = work / "root"
    berth = [args.berth, "--root", str(root)]
    run_dir = Path(tempfile.mkdtemp(prefix="bb-", dir="/run"))  # unix socket paths must stay short
    env = dict(os.environ, BERTH_RUN_DIR=str(run_dir))
    print(f"host: {benchlib.host_info()}  load at start: {os.getloadavg()[0]:.2f}")
    try:
        rootfs = work / "rootfs"
        run(["sh", REPO / "tests/fixtures/make-busybox-rootfs.sh", rootfs], check=True)
        run(["tar", "-C", rootfs, "-cf", work / "busybox.tar", "."], check=True)
        for ref in ("busybox:latest", "berth-example/base:latest"):
            run([*berth, "import", "--change", 'CMD ["sh"]', work / "busybox.tar", ref], check=True, env=env)
        ctx = work / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(COLD)
        (ctx / "app.txt").write_text("hello\n" * 1000)

        contenders = {"berth": [*berth, "build", "--no-cache", "-q", "-t", "bench-cold", ctx]}
        if shutil.which("podman") and run(["podman", "image", "exists", "busybox"]).returncode == 0:
            contenders["podman"] = ["podman", "build", "--no-cache", "-q", "-t", "bench-cold", ctx]
        if shutil.which("docker") and run(["docker", "image", "inspect", "busybox"]).returncode == 0:
            contenders["docker"] = ["env", "DOCKER_BUILDKIT=0", "docker", "build", "--no-cache", "-q", "-t",
                                    "bench-cold", ctx]
        samples: dict[str, list[float]] = {k: [] for k in contenders}
        for i in range(args.n + 1):
            for name in benchlib.rotated(list(contenders), i):
                t = benchlib.time_command([str(a) for a in contenders[name]], timeout=300, env=env)
                if t.returncode != 0:
                    raise SystemExit(f"{name} build failed: {t.stderr}")
                if i > 0:  # the first round warms the page cache
                    samples[name].append(t.elapsed_ms)

        # Warm: the example's images, built once, then rebuilt from the cache (what build-images does).
        example = [[*berth, "build", "-q", "-t", f"berth-example/{p}:latest", EXAMPLE / p]
                   for p in ("backend", "frontend")]
        for argv in example:
            run(argv, check=True, env=env)
        warm = []
        for _ in range(args.n):
            total = 0.0
            for argv in example:
                t = benchlib.time_command([str(a) for a in argv], timeout=120, env=env)
                if t.returncode != 0:
                    raise SystemExit(f"warm build failed: {t.stderr}")
                total += t.elapsed_ms
            warm.append(total)

        base = benchlib.median(samples["berth"])
        rows = []
        for name, xs in samples.items():
            s = benchlib.summarize(xs)
            rows.append([f"cold 5-step build: {name}", benchlib.fmt_ms(s["median_ms"]), benchlib.fmt_ms(s["p90_ms"]),
                         benchlib.fmt_ratio(benchlib.ratio(s["median_ms"], base)), "≤ 1500 ms" if name == "berth" else ""])
        s = benchlib.summarize(warm)
        rows.append(["example's 2 images, warm cache: berth", benchlib.fmt_ms(s["median_ms"]), benchlib.fmt_ms(s["p90_ms"]),
                     "", "≤ 300 ms"])
        print(benchlib.format_table(["measure", "median ms", "p90 ms", "vs berth", "target"], rows))
        print(f"load at end: {os.getloadavg()[0]:.2f}")
    finally:
        subprocess.run(["umount", "-R", "-l", str(root)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
