"""Crash safety of the container commands: BERTH_FAULT=<step> makes berth SIGKILL itself at that step
of create / rm; the next berth command (ps -a) must reconcile: no row pointing at nothing, no mount
under the root, no container dir without a row, named volume data never lost, the half-created
container gone. And kill -9 of a container's shim: the next `ps -a` shows the container exited."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from containertest import Engine, busybox_tar, engine, poll  # noqa: F401

CREATE_STEPS = ["create.row", "create.mount", "create.volume", "create.spec"]
RM_STEPS = ["rm.mark", "rm.unmount", "rm.dir", "rm.row"]
LOOP = ["sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done"]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def killed(r) -> bool:
    return r.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)


def volumes(engine: Engine) -> list[str]:
    return sorted(l for l in engine.ok("volume", "ls", "-q").split() if l)


def volume_path(engine: Engine, name: str) -> Path:
    return Path(json.loads(engine.ok("volume", "inspect", name))[0]["Mountpoint"])


def keep_volume(engine: Engine) -> Path:
    """A named volume `keep` holding data that must survive everything."""
    engine.ok("volume", "create", "keep")
    p = volume_path(engine, "keep")
    (p / "precious.txt").write_text("precious\n")
    (p / "dir").mkdir()
    (p / "dir" / "nested.txt").write_text("nested\n")
    return p


def assert_keep_intact(engine: Engine, p: Path):
    assert "keep" in volumes(engine)
    assert (p / "precious.txt").read_text() == "precious\n"
    assert (p / "dir" / "nested.txt").read_text() == "nested\n"


def assert_consistent(engine: Engine):
    """Every listed container is complete (inspect works, its dir exists); every container dir has
    a row; nothing is mounted under the root but what belongs to a listed container."""
    ids = engine.container_ids()
    for cid in ids:
        c = engine.inspect(cid)
        assert c["Id"] == cid
        assert c["State"]["Status"] in ("created", "running", "exited", "paused", "restarting"), c["State"]
        assert (engine.root / "containers" / cid).is_dir(), f"container {cid} has no dir"
    cdir = engine.root / "containers"
    dirs = sorted(p.name for p in cdir.iterdir()) if cdir.exists() else []
    assert sorted(set(dirs) - set(ids)) == [], "container dirs without a row"
    for m in engine.mounts_under_root():
        assert any(m.startswith(str(engine.root / "containers" / cid) + "/") for cid in ids), \
            f"mount left behind: {m}"


# ---------------------------------------------------------------------------------------------
# create


@pytest.mark.parametrize("cmd", [["create"], ["run", "-d"]], ids=["create", "run"])
@pytest.mark.parametrize("step", CREATE_STEPS)
def test_crash_in_create(engine, step, cmd):
    keep = keep_volume(engine)
    engine.ok("create", "--name", "bystander", "-v", "keep:/k", "busybox")
    before = engine.snapshot()
    r = engine.run(*cmd, "--name", "half", "-v", "keep:/data", "busybox", *LOOP, env={"BERTH_FAULT": step})
    assert killed(r), f"berth {cmd} with BERTH_FAULT={step} did not die by SIGKILL ({r.returncode}): {r.stderr}"
    out = engine.ok("ps", "-a", "--format", "{{.Names}}")
    assert out.split() == ["bystander"]  # the half-created container is gone
    assert_consistent(engine)
    assert engine.snapshot() == before
    assert_keep_intact(engine, keep)
    # the name is free again and the engine works
    engine.ok("run", "-d", "--name", "half", "-v", "keep:/data", "busybox", *LOOP)
    assert engine.ok("run", "--rm", "-v", "keep:/data", "busybox", "cat", "/data/precious.txt") == "precious\n"


@pytest.mark.parametrize("step", ["create.volume", "create.spec"])
def test_crash_in_create_removes_its_anonymous_volume(engine, step):
    keep = keep_volume(engine)
    r = engine.run("create", "--name", "half", "-v", "keep:/k", "-v", "/anon", "busybox", env={"BERTH_FAULT": step})
    assert killed(r), f"create with BERTH_FAULT={step} did not die by SIGKILL ({r.returncode}): {r.stderr}"
    assert engine.ok("ps", "-a", "-q") == ""
    assert volumes(engine) == ["keep"]
    assert_consistent(engine)
    assert_keep_intact(engine, keep)


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_crash_in_create_releases_the_image(engine, step):
    r = engine.run("create", "--name", "half", "-v", "/anon", "busybox", env={"BERTH_FAULT": step})
    assert killed(r), f"create with BERTH_FAULT={step} did not die by SIGKILL ({r.returncode}): {r.stderr}"
    assert engine.ok("ps", "-a", "-q") == ""
    # no container uses busybox any more: it can be removed
    r = engine.run("rmi", "busybox")
    assert r.returncode == 0, r.stderr
    assert engine.ok("images", "-q") == ""


def test_crash_in_create_reconciled_by_any_command(engine):
    r = engine.run("create", "--name", "half", "busybox", env={"BERTH_FAULT": "create.mount"})
    assert killed(r)
    engine.ok("volume", "ls")  # not a container command, still reconciles
    cdir = engine.root / "containers"
    assert not cdir.exists() or list(cdir.iterdir()) == []
    assert engine.mounts_under_root() == []


# ---------------------------------------------------------------------------------------------
# rm


@pytest.mark.parametrize("running", [False, True], ids=["exited", "running"])
@pytest.mark.parametrize("step", RM_STEPS)
def test_crash_in_rm(engine, step, running):
    keep = keep_volume(engine)
    if running:
        engine.ok("run", "-d", "--name", "cc", "-v", "keep:/data", "-v", "/anon", "busybox", *LOOP)
        engine.wait_log("cc", "ready")
    else:
        engine.ok("run", "--name", "cc", "-v", "keep:/data", "-v", "/anon", "busybox", "sh", "-c",
                  "cat /data/precious.txt; echo from-c > /data/written-by-c")
    c = engine.inspect("cc")
    cid, pid = c["Id"], c["State"]["Pid"]
    anon = next(m["Name"] for m in c["Mounts"] if m["Destination"] == "/anon")
    args = ["rm", "-v", "-f", "cc"] if running else ["rm", "-v", "cc"]
    r = engine.run(*args, env={"BERTH_FAULT": step})
    assert killed(r), f"rm with BERTH_FAULT={step} did not die by SIGKILL ({r.returncode}): {r.stderr}"
    ids = engine.container_ids()  # reconciles
    assert_consistent(engine)
    if cid in ids:
        # rolled back: the container is whole and can be removed normally
        engine.ok("rm", "-v", "-f", "cc")
    assert engine.container_ids() == []
    assert not (engine.root / "containers" / cid).exists()
    assert engine.mounts_under_root() == []
    if running:
        poll(lambda: not alive(pid), "the container's process to be gone")
    assert_keep_intact(engine, keep)
    if not running:
        assert (keep / "written-by-c").read_text() == "from-c\n"
    if step != "rm.row":
        # the row still said what rm -v was asked to do: the anonymous volume went with it
        assert anon not in volumes(engine)
    assert "keep" in volumes(engine)


def test_crash_in_rm_of_a_shared_volume_user(engine):
    keep = keep_volume(engine)
    engine.ok("create", "--name", "aa", "-v", "keep:/data", "busybox")
    engine.ok("create", "--name", "bb", "-v", "keep:/data", "busybox")
    for step in RM_STEPS:
        r = engine.run("rm", "-v", "aa", env={"BERTH_FAULT": step})
        if not killed(r):
            assert r.returncode == 1 and "No such container: aa" in r.stderr  # removed by an earlier round
        engine.container_ids()
        assert_consistent(engine)
        assert_keep_intact(engine, keep)
    # b still uses keep: it can't be removed
    r = engine.fails("volume", "rm", "keep")
    assert "volume is in use" in r.stderr
    assert_keep_intact(engine, keep)


# ---------------------------------------------------------------------------------------------
# the shim


def shim_pids(cid: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and any(b"berth-shim" in a for a in cmd[:1]) and any(cid.encode() in a for a in cmd):
            out.append(int(d.name))
    return out


def test_kill_9_of_the_shim_shows_the_container_exited(engine):
    cid = engine.ok("run", "-d", "--name", "ss", *["busybox"], *LOOP).strip()
    engine.wait_log("ss", "ready")
    pid = engine.state("ss")["Pid"]
    shims = shim_pids(cid)
    assert len(shims) == 1, f"shims of {cid}: {shims}"
    os.kill(shims[0], signal.SIGKILL)
    poll(lambda: not alive(shims[0]), "the shim to die")
    out = engine.ok("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert out == "ss exited\n"
    st = engine.state("ss")
    assert st["Status"] == "exited" and st["Running"] is False and st["Pid"] == 0
    # nothing of it keeps running unsupervised
    poll(lambda: not alive(pid), "the container's process to be gone")
    assert_consistent(engine)
    # and it can be started again
    engine.ok("start", "ss")
    assert engine.state("ss")["Status"] == "running"
    engine.wait_log("ss", "ready\nready")


def test_kill_9_of_the_shim_then_rm(engine):
    cid = engine.ok("run", "-d", "--name", "ss", "-v", "keep:/data", "busybox", *LOOP).strip()
    engine.wait_log("ss", "ready")
    p = volume_path(engine, "keep")
    (p / "f").write_text("data\n")
    shims = shim_pids(cid)
    assert len(shims) == 1
    os.kill(shims[0], signal.SIGKILL)
    poll(lambda: not alive(shims[0]), "the shim to die")
    assert engine.ok("rm", "-v", "ss").strip() == "ss"
    assert engine.container_ids() == []
    assert engine.mounts_under_root() == []
    assert (p / "f").read_text() == "data\n"
