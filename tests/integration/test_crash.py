"""kill -9 of the runtime in the middle of create: `delete` finishes the job
from the intent recorded in the state directory, leaving nothing behind."""
import os
import signal
import subprocess
import time

import pytest

import berthtest as bt
from test_bad_input import assert_nothing_left

pytestmark = pytest.mark.skipif(bt.is_runc(), reason="berth's crash recovery (runc leaves the init behind)")


def _wait_for(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("hook", ["createRuntime", "createContainer"])
def test_create_killed_in_a_hook_is_cleaned_up_by_delete(runtime, bundle, tmp_path, hook):
    cid = runtime.new_id()
    runtime.ids.append(cid)
    marker = tmp_path / "hook.pid"
    # The hook stands still so the runtime can be killed at that step.
    bundle.config["hooks"] = {hook: [{"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {marker}; exec sleep 60"]}]}
    bundle.set_args("true")
    bundle.write()
    with open(tmp_path / "out", "wb") as out:
        p = subprocess.Popen(runtime.cmd(["create", "--bundle", bundle.path, cid]), stdout=out, stderr=out,
                             stdin=subprocess.DEVNULL)
    hook_pid = int(_wait_for(marker))
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    os.kill(hook_pid, signal.SIGKILL)  # ours: the hook we made sleep

    state = runtime.run(["state", cid])
    assert state.returncode == 0, state.stderr
    assert '"status": "creating"' in state.stdout
    assert bt.cgroup_dirs_named(cid) != []  # the half-made container really exists

    r = runtime.run(["delete", cid])
    assert r.returncode == 0, r.stderr
    assert_nothing_left(runtime, bundle, cid)


def test_delete_refuses_a_create_still_in_progress(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    runtime.ids.append(cid)
    marker = tmp_path / "hook.pid"
    release = tmp_path / "release"
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
        "sh", "-c", f"echo $$ > {marker}; while [ ! -e {release} ]; do sleep 0.05; done"]}]}
    bundle.set_args("true")
    bundle.write()
    with open(tmp_path / "out", "wb") as out:
        p = subprocess.Popen(runtime.cmd(["create", "--bundle", bundle.path, cid]), stdout=out, stderr=out,
                             stdin=subprocess.DEVNULL)
    try:
        _wait_for(marker)
        r = runtime.run(["delete", cid])
        assert r.returncode != 0
        assert "being created" in r.stderr
    finally:
        release.write_text("go")
        assert p.wait(timeout=30) == 0
    assert runtime.status(cid) == "created"
