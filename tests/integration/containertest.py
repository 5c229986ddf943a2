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

    def __init__(self, root: Path, run_dir: Path, netns: Path | None = None):
        super().__init__(root)
        self.run_dir = Path(run_dir)
        # berth runs in the test's own network namespace: its bridges, veths, nftables table and
        # DNS responders never touch the host's network (and tests don't see each other's).
        self.netns = netns

    def prefix(self) -> list[str]:
        return ["nsenter", f"--net={self.netns}"] if self.netns else []

    def host(self, *args, input=None, timeout=60, check=False) -> subprocess.CompletedProcess:
        """Runs a command on the test's 'host' (its network namespace)."""
        cmd = [*self.prefix(), *[str(a) for a in args]]
        r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def run(self, *args, input=None, timeout=120, check=False, env=None) -> subprocess.CompletedProcess:
        cmd = [*self.prefix(), self.binary, "--root", str(self.root), "--config", str(self.config_dir),
               *[str(a) for a in args]]
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
        cmd = [*self.prefix(), self.binary, "--root", str(self.root), "--config", str(self.config_dir),
               *[str(a) for a in args]]
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

    def network_leftovers(self) -> list[str]:
        """After every container is gone: no veths, no netns files, no DNS responders of this engine
        (a responder exits within a couple of seconds of its network's last container)."""
        problems = []
        links = self.host("ip", "-o", "link", "show").stdout
        veths = [l.split(":")[1].strip().split("@")[0] for l in links.splitlines() if ": bv" in l]
        if veths:
            problems.append(f"veths left behind: {veths}")
        netns_dir = self.run_dir / "netns"
        if netns_dir.exists() and any(netns_dir.iterdir()):
            problems.append(f"netns left behind: {sorted(p.name for p in netns_dir.iterdir())}")
        def responders():
            out = subprocess.run(["pgrep", "-f", "--", f"--root {self.root} network dns-serve"],
                                 capture_output=True, text=True).stdout.split()
            return out
        deadline = time.monotonic() + 10
        while responders() and time.monotonic() < deadline:
            time.sleep(0.1)
        if responders():
            problems.append(f"DNS responders left running: {responders()}")
        return problems

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
                if d.name in ("runtime", "netns", "dns"):
                    continue  # netns/ is checked by network_leftovers(); dns/ keeps lock files
                problems.append(f"run dir left behind: {d}")
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for m in mounts:
            if m.startswith(str(self.root) + "/"):
                problems.append(f"mount left behind: {m}")
                subprocess.run(["umount", "-l", m], capture_output=True)
        return problems


def berth_wrapper(engine: Engine, tmp_path: Path) -> Path:
    """A `berth` command for scripts (run-demo): this test's root, run dir and config."""
    path = tmp_path / "berth"
    path.write_text(
        "#!/bin/sh\n"
        f"BERTH_RUN_DIR='{engine.run_dir}' exec '{engine.binary}' --root '{engine.root}' "
        f"--config '{engine.config_dir}' \"$@\"\n")
    path.chmod(0o755)
    return path


def run_in_netns(engine: Engine, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Runs a command in the test's network namespace (no DOCKER_CONFIG; env added)."""
    e = dict(os.environ)
    e.pop("DOCKER_CONFIG", None)
    if env:
        e.update(env)
    return subprocess.run(["nsenter", f"--net={engine.netns}", *[str(a) for a in args]], capture_output=True,
                          text=True, timeout=timeout, env=e)


COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


def project_objects(engine: Engine, project: str) -> dict:
    """The containers, networks and volumes labelled with a compose project."""
    flt = f"label={COMPOSE_PROJECT_LABEL}={project}"
    return {
        "containers": [l for l in engine.run("ps", "-aq", "--filter", flt).stdout.split() if l],
        "networks": [l for l in engine.run("network", "ls", "-q", "--filter", flt).stdout.split() if l],
        "volumes": [l for l in engine.run("volume", "ls", "-q", "--filter", flt).stdout.split() if l],
    }


def remove_objects(engine: Engine, left: dict) -> None:
    """Forced removal of what project_objects found (a test's cleanup of last resort)."""
    if left["containers"]:
        engine.run("rm", "-f", "-v", *left["containers"])
    for n in left["networks"]:
        engine.run("network", "rm", n)
    for v in left["volumes"]:
        engine.run("volume", "rm", "-f", v)


def import_busybox(engine: Engine, busybox_tar, ref="busybox:latest", *changes) -> str:
    args = ["import", "--change", 'CMD ["sh"]']
    for c in changes:
        args += ["--change", c]
    return engine.ok(*args, busybox_tar, ref).strip()


def make_netns() -> Path:
    """A fresh network namespace (loopback up), kept by a bind mount of its nsfs file."""
    d = Path(tempfile.mkdtemp(prefix="bt-ns-", dir="/run"))
    path = d / "net"
    path.touch()  # unshare bind-mounts the namespace onto an existing file
    subprocess.run(["unshare", f"--net={path}", "true"], check=True)
    subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True)
    return path


def drop_netns(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture
def engine(tmp_path, busybox_tar):
    """berth with a private root (busybox:latest imported) and a private run dir."""
    # The run dir holds unix sockets (at most 107 bytes of path): keep it short, not under tmp_path.
    run_dir = Path(tempfile.mkdtemp(prefix="bt-", dir="/run"))
    netns = make_netns()
    e = Engine(tmp_path / "root", run_dir, netns)
    import_busybox(e, busybox_tar)
    yield e
    problems = e.cleanup()
    problems += e.network_leftovers()
    subprocess.run(["umount", "-R", "-l", str(e.root)], capture_output=True)
    shutil.rmtree(e.root, ignore_errors=True)
    # run_dir/netns is a shared bind mount of itself (as `ip netns` makes /run/netns).
    subprocess.run(["umount", "-R", "-l", str(run_dir / "netns")], capture_output=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    drop_netns(netns)
    if problems:
        pytest.fail("cleanup: " + "; ".join(problems), pytrace=False)
