"""Container lifecycle: create/start/state/kill/delete, run, list, ps, pause/resume, pid files."""
import json
import os
import re
import signal
import time

import pytest

from berthtest import CGROUP_ROOT, cgroup_v1_dir, pid_cgroups


def freezer_state(pid):
    """'frozen' or 'thawed', from the v1 freezer or the v2 cgroup.freeze of PID's cgroup."""
    cgs = pid_cgroups(pid)
    if "freezer" in cgs:
        return (cgroup_v1_dir(pid, "freezer") / "freezer.state").read_text().strip().lower()
    frozen = (CGROUP_ROOT / cgs[""].lstrip("/") / "cgroup.freeze").read_text().strip()
    return "frozen" if frozen == "1" else "thawed"


def test_create_reports_created_state(runtime, bundle):
    bundle.set_args("sleep", "1000")
    bundle.config["annotations"] = {"org.berth.test": "yes"}
    cid = runtime.create(bundle)
    st = runtime.state(cid)
    assert st["id"] == cid
    assert st["status"] == "created"
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert os.path.exists(f"/proc/{st['pid']}")
    assert st["bundle"] == str(bundle.path)
    assert st["ociVersion"]
    assert st.get("annotations", {}).get("org.berth.test") == "yes"


def test_process_does_not_run_before_start(runtime, bundle):
    bundle.sh("echo started; sleep 1000")
    cid = runtime.create(bundle)
    assert runtime.output(cid) == ""
    runtime.start(cid)
    assert runtime.status(cid) == "running"
    assert runtime.wait_output(cid, "started") == "started\n"


@pytest.mark.parametrize("sig", ["KILL", "9", "SIGKILL"])
def test_start_kill_stop_delete(runtime, bundle, sig):
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    pid = runtime.state(cid)["pid"]
    runtime.start(cid)
    st = runtime.state(cid)
    assert st["status"] == "running"
    assert st["pid"] == pid
    runtime.ok(["kill", cid, sig])
    runtime.wait_status(cid, "stopped")
    assert not os.path.exists(f"/proc/{pid}/cmdline") or open(f"/proc/{pid}/cmdline").read() == ""
    runtime.ok(["delete", cid])
    r = runtime.run(["state", cid])
    assert r.returncode != 0
    assert r.stderr.strip()
    assert cid not in runtime.container_dirs()


def test_kill_default_signal_is_sigterm(runtime, bundle):
    # pid 1 in a pid namespace ignores signals it has no handler for, so trap TERM.
    bundle.sh("trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.05; done")
    cid = runtime.create_start(bundle)
    runtime.wait_output(cid, "ready")
    runtime.ok(["kill", cid])
    runtime.wait_status(cid, "stopped")
    assert "got TERM" in runtime.output(cid)


def test_start_twice_fails(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    r = runtime.start(cid, check=False)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.status(cid) == "running"


def test_start_of_stopped_container_fails(runtime, bundle):
    bundle.set_args("true")
    cid = runtime.create_start(bundle)
    runtime.wait_status(cid, "stopped")
    r = runtime.start(cid, check=False)
    assert r.returncode != 0
    assert r.stderr.strip()


def test_run_returns_exit_code_and_streams_output(runtime, bundle):
    bundle.sh("echo to-stdout; echo to-stderr >&2; exit 3")
    r = runtime.run_container(bundle)
    assert r.returncode == 3
    assert r.stdout == "to-stdout\n"
    assert "to-stderr\n" in r.stderr
    # a foreground run deletes the container when its process exits
    assert runtime.run(["state", r.cid]).returncode != 0
    assert r.cid not in runtime.container_dirs()


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_run_exit_codes(runtime, bundle, code):
    bundle.sh(f"exit {code}")
    assert runtime.run_container(bundle).returncode == code


def test_run_killed_by_signal_reports_128_plus_signo(runtime, bundle):
    # pid 1 of a pid namespace can't SIGKILL itself, so share the host pid namespace here.
    bundle.remove_namespace("pid")
    bundle.sh("kill -KILL $$")
    assert runtime.run_container(bundle).returncode == 128 + signal.SIGKILL


def test_run_passes_stdin(runtime, bundle):
    bundle.set_args("cat")
    r = runtime.run_container(bundle, input="piped through\n")
    assert r.returncode == 0
    assert r.stdout == "piped through\n"


def test_run_detached(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    bundle.write()
    r = runtime.run(["run", "-d", "--bundle", bundle.path, cid],
                    stdout_path=runtime.out_path(cid), stderr_path=runtime.err_path(cid))
    assert r.returncode == 0, r.stderr
    assert runtime.status(cid) == "running"


def test_list_table_and_json(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    pid = runtime.state(cid)["pid"]

    table = runtime.ok(["list"]).stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "PID", "STATUS", "BUNDLE"]
    rows = [line.split() for line in table[1:]]
    assert [cid, str(pid), "created", str(bundle.path)] in [row[:4] for row in rows]

    data = json.loads(runtime.ok(["list", "--format", "json"]).stdout)
    assert isinstance(data, list)
    mine = [c for c in data if c["id"] == cid]
    assert len(mine) == 1
    assert mine[0]["pid"] == pid
    assert mine[0]["status"] == "created"
    assert mine[0]["bundle"] == str(bundle.path)

    quiet = runtime.ok(["list", "-q"]).stdout.split()
    assert quiet == [cid]


def test_seccomp_cache_is_not_a_container(runtime, bundle):
    # The runtime caches compiled filters under its root; list/state/delete must not see a container
    # there, and "seccomp-cache" is an ordinary id.
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    bundle.set_args("true")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert (runtime.root / ".seccomp-cache").is_dir()
    assert json.loads(runtime.ok(["list", "--format", "json"]).stdout or "null") in (None, [])
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle, "seccomp-cache")
    assert cid == "seccomp-cache"
    assert runtime.ok(["list", "-q"]).stdout.split() == ["seccomp-cache"]
    runtime.ok(["delete", "--force", "seccomp-cache"])
    assert (runtime.root / ".seccomp-cache").is_dir()


def test_list_empty_root(runtime):
    r = runtime.ok(["list", "--format", "json"])
    assert json.loads(r.stdout or "null") in (None, [])


def test_ps_json_contains_init_pid(runtime, bundle):
    bundle.sh("sleep 1000 & exec sleep 1001")
    cid = runtime.create_start(bundle)
    pid = runtime.state(cid)["pid"]
    pids = json.loads(runtime.ok(["ps", "--format", "json", cid]).stdout)
    assert isinstance(pids, list)
    assert pid in pids
    table = runtime.ok(["ps", cid]).stdout.splitlines()
    assert "PID" in table[0].split()
    assert any(str(pid) in line.split() for line in table[1:])


def test_ps_lists_all_container_processes(runtime, bundle):
    bundle.sh("sleep 1000 & sleep 1001 & wait")
    cid = runtime.create_start(bundle)
    pids = runtime.wait_pids(cid, 3)
    assert len(pids) == 3
    # A child seen between fork and exec still shows the shell's command line
    # (or none while execve swaps its memory), so poll until both have exec'd.
    deadline = time.monotonic() + 10
    while True:
        cmdlines = sorted(open(f"/proc/{p}/cmdline").read().replace("\0", " ").strip() for p in pids)
        if ("sleep 1000" in cmdlines and "sleep 1001" in cmdlines) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "sleep 1000" in cmdlines and "sleep 1001" in cmdlines


def test_pause_resume(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    pid = runtime.state(cid)["pid"]
    runtime.ok(["pause", cid])
    assert runtime.status(cid) == "paused"
    assert freezer_state(pid) == "frozen"
    runtime.ok(["resume", cid])
    assert runtime.status(cid) == "running"
    assert freezer_state(pid) == "thawed"


def test_pause_resume_of_created_container(runtime, bundle):
    # runc freezes a created container too: status "paused", and resume returns it to "created".
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    runtime.ok(["pause", cid])
    assert runtime.status(cid) == "paused"
    runtime.ok(["resume", cid])
    assert runtime.status(cid) == "created"
    runtime.start(cid)
    assert runtime.status(cid) == "running"


def test_resume_of_running_container_fails(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    r = runtime.run(["resume", cid])
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.status(cid) == "running"


def test_pid_file(runtime, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    pid_file = tmp_path / "init.pid"
    cid = runtime.create(bundle, extra=["--pid-file", pid_file])
    pid = runtime.state(cid)["pid"]
    assert int(pid_file.read_text().strip()) == pid


def test_pid_file_relative_path(runtime, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    bundle.write()
    r = runtime.run(["create", "--bundle", bundle.path, "--pid-file", "rel.pid", cid], cwd=tmp_path,
                    stdout_path=runtime.out_path(cid), stderr_path=runtime.err_path(cid))
    assert r.returncode == 0, r.stderr
    assert int((tmp_path / "rel.pid").read_text().strip()) == runtime.state(cid)["pid"]


def test_delete_force_running(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    pid = runtime.state(cid)["pid"]
    runtime.ok(["delete", "--force", cid])
    assert runtime.run(["state", cid]).returncode != 0
    assert cid not in runtime.container_dirs()
    # the init process is gone (or a zombie reaped by our init soon; never still running sleep)
    try:
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().split()[2] in ("Z", "X")
    except FileNotFoundError:
        pass


def test_delete_force_created(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    runtime.ok(["delete", "--force", cid])
    assert runtime.run(["state", cid]).returncode != 0


def test_delete_created_without_force(runtime, bundle):
    # runc deletes a created (never started) container without --force
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    runtime.ok(["delete", cid])
    assert runtime.run(["state", cid]).returncode != 0


def test_delete_running_without_force_fails(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    r = runtime.run(["delete", cid])
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.status(cid) == "running"


def test_kill_all(runtime, bundle):
    bundle.sh("sleep 1000 & sleep 1001 & wait")
    cid = runtime.create_start(bundle)
    pids = runtime.wait_pids(cid, 3)
    assert len(pids) == 3
    runtime.ok(["kill", "--all", cid, "KILL"])
    runtime.wait_status(cid, "stopped")
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                assert f.read().split()[2] in ("Z", "X")
        except FileNotFoundError:
            pass


def test_kill_stopped_container_fails(runtime, bundle):
    bundle.set_args("true")
    cid = runtime.create_start(bundle)
    runtime.wait_status(cid, "stopped")
    r = runtime.run(["kill", cid, "KILL"])
    assert r.returncode != 0
    assert r.stderr.strip()


def test_state_of_stopped_container(runtime, bundle):
    bundle.set_args("true")
    cid = runtime.create_start(bundle)
    st = runtime.wait_status(cid, "stopped")
    assert st["id"] == cid
    assert st["bundle"] == str(bundle.path)
    assert st["pid"] == 0  # runc reports pid 0 once the container has stopped


def test_kill_created_container(runtime, bundle):
    # the spec allows kill in "created"; the process never runs
    bundle.sh("touch /ran; sleep 1000")
    cid = runtime.create(bundle)
    runtime.ok(["kill", cid, "KILL"])
    runtime.wait_status(cid, "stopped")
    runtime.ok(["delete", cid])
    assert not (bundle.rootfs / "ran").exists()
    assert runtime.container_dirs() == []


def test_state_json_fields(runtime, bundle):
    # The spec's fields plus the ones runc adds and go-runc (containerd) decodes: rootfs, created.
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    st = runtime.state(cid)
    for key in ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created"):
        assert key in st, key
    assert st["rootfs"] == str(bundle.rootfs)
    # RFC 3339 with nanoseconds, UTC: 2006-01-02T15:04:05.999999999Z
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", st["created"]), st["created"]


def test_list_shows_every_container_and_status(runtime, bundle, make_bundle):
    bundle.set_args("sleep", "1000")
    a = runtime.create(bundle)
    b2 = make_bundle("b2")
    b2.set_args("sleep", "1000")
    b = runtime.create_start(b2)
    data = {c["id"]: c["status"] for c in json.loads(runtime.ok(["list", "--format", "json"]).stdout)}
    assert data == {a: "created", b: "running"}


def test_term_stops_a_created_container(runtime, bundle):
    # Before start, init is the runtime's code, not the container's: TERM must end it
    # although pid 1 of a namespace ignores signals without a handler.
    bundle.set_args("true")
    cid = runtime.create(bundle)
    runtime.ok(["kill", cid, "TERM"])
    runtime.wait_status(cid, "stopped")
    runtime.ok(["delete", cid])
    assert runtime.run(["state", cid]).returncode != 0
