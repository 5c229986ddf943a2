"""Fixtures and helpers for the container tests: a private data root with the busybox fixture
imported as busybox:latest (CMD ["sh"]), and cleanup of every container, mount and shim after."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import berthtest as bt
from imagetest import Berth


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory):
    """A tarball of the busybox fixture rootfs (built once per session)."""
    d = tmp_path_factory.mktemp("busybox-image")
    rootfs = d / "rootfs"
    r = subprocess.run(["sh", str(bt.FIXTURES / "make-busybox-rootfs.sh"), str(rootfs)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build the busybox rootfs: {r.stderr.strip()}")
    tar = d / "busybox.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    return tar


def poll(fn, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Engine(Berth):
    """berth with a private root and run dir; knows how to clean up after itself."""

    def __init__(self, root: Path, run_dir: Path):
        super().__init__(root)
        self.run_dir = Path(run_dir)

    def run(self, *args, input=None, timeout=120, check=False, env=None) -> subprocess.CompletedProcess:
        cmd = [self.binary, "--root", str(self.root), "--config", str(self.config_dir), *[str(a) for a in args]]
        e = dict(os.environ)
        e.pop("DOCKER_CONFIG", None)
        e["BERTH_RUN_DIR"] = str(self.run_dir)
        if env:
            e.update(env)
        r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=e)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    @property
    def binary(self) -> str:
        from imagetest import BERTH
        return BERTH

    def popen(self, *args, **kw) -> subprocess.Popen:
        cmd = [self.binary, "--root", str(self.root), "--config", str(self.config_dir), *[str(a) for a in args]]
        e = dict(os.environ)
        e.pop("DOCKER_CONFIG", None)
        e["BERTH_RUN_DIR"] = str(self.run_dir)
        return subprocess.Popen(cmd, env=e, **kw)

    def inspect(self, name: str) -> dict:
        return json.loads(self.ok("inspect", "--type", "container", name))[0]

    def state(self, name: str) -> dict:
        return self.inspect(name)["State"]

    def wait_state(self, name: str, status: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(name)
            if st["Status"] == status:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} is {st['Status']}, not {status}, after {timeout}s")
            time.sleep(0.05)

    def wait_log(self, name: str, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self.run("logs", name).stdout
            if text in out:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the logs of {name} after {timeout}s: {out!r}")
            time.sleep(0.05)

    def container_ids(self) -> list[str]:
        r = self.run("ps", "-aq", "--no-trunc")
        return [l for l in r.stdout.split() if l]

    def mounts_under_root(self) -> list[str]:
        """Mount points (from /proc/self/mountinfo) below the data root."""
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return sorted(m for m in points if m.startswith(str(self.root) + "/"))

    def snapshot(self) -> dict:
        """What exists: containers, volumes (by the CLI and on disk) and mounts under the root, for
        'a failed command created nothing' checks."""
        def listing(d: Path) -> list[str]:
            return sorted(p.name for p in d.iterdir()) if d.exists() else []
        return {
            "containers": sorted(self.container_ids()),
            "volumes": sorted(l for l in self.run("volume", "ls", "-q").stdout.split() if l),
            "container_dirs": listing(self.root / "containers"),
            "volume_dirs": [n for n in listing(self.root / "volumes") if n not in ("metadata.db",)],
            "mounts": self.mounts_under_root(),
        }

    def cleanup(self) -> list[str]:
        """Removes every container (force), then checks nothing is left: mounts, shims, run dirs."""
        problems = []
        ids = self.container_ids()
        if ids:
            r = self.run("rm", "-f", "-v", *ids)
            if r.returncode != 0:
                problems.append(f"rm -f failed: {r.stderr.strip()}")
        # Shims of this run dir: anything still holding a shim.lock gets killed (by pid) as a last resort.
        if self.run_dir.exists():
            for d in self.run_dir.iterdir():
                if d.name == "runtime":
                    continue
                problems.append(f"run dir left behind: {d}")
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for m in mounts:
            if m.startswith(str(self.root) + "/"):
                problems.append(f"mount left behind: {m}")
                subprocess.run(["umount", "-l", m], capture_output=True)
        return problems


def import_busybox(engine: Engine, busybox_tar, ref="busybox:latest", *changes) -> str:
    args = ["import", "--change", 'CMD ["sh"]']
    for c in changes:
        args += ["--change", c]
    return engine.ok(*args, busybox_tar, ref).strip()


@pytest.fixture
def engine(tmp_path, busybox_tar):
    """berth with a private root (busybox:latest imported) and a private run dir."""
    # The run dir holds unix sockets (at most 107 bytes of path): keep it short, not under tmp_path.
    run_dir = Path(tempfile.mkdtemp(prefix="bt-", dir="/run"))
    e = Engine(tmp_path / "root", run_dir)
    import_busybox(e, busybox_tar)
    yield e
    problems = e.cleanup()
    subprocess.run(["umount", "-R", "-l", str(e.root)], capture_output=True)
    shutil.rmtree(e.root, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    if problems:
        pytest.fail("cleanup: " + "; ".join(problems), pytrace=False)
