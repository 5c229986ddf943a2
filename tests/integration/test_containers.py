"""Container lifecycle stories, written to docker's behaviour (docker 28): run/create/start/stop/kill/
restart/rm, ps, inspect, wait, rename, pause/unpause, the run flags that shape the process, restart
policies, resources, networking modes and json-file logs."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from containertest import Engine, busybox_tar, engine, poll  # noqa: F401

FULL_ID = re.compile(r"^[0-9a-f]{64}$")
SHORT_ID = re.compile(r"^[0-9a-f]{12}$")
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"

# A container that runs until stopped and stops at once on SIGTERM (exit 0).
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
# Same, announcing itself in the log once its trap is set.
READY_LOOP = ["sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done"]


def run_detached(engine: Engine, *args) -> str:
    out = engine.ok("run", "-d", *args).strip()
    assert FULL_ID.match(out), f"run -d printed {out!r}, not a container ID"
    return out


def names(engine: Engine, *ps_args) -> list[str]:
    out = engine.ok("ps", *ps_args, "--format", "{{.Names}}")
    return [l for l in out.splitlines() if l]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def cgroup_file(pid: int, controller: str, v1_name: str, v2_name: str) -> Path:
    """The host path of a cgroup interface file of the cgroup that pid is in (v1 or v2)."""
    v2_path = None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if hid == "0" and ctrls == "":
                v2_path = path
            elif controller in ctrls.split(","):
                return Path("/sys/fs/cgroup") / ctrls / path.lstrip("/") / v1_name
    assert v2_path is not None, f"pid {pid} is in no {controller} cgroup"
    return Path("/sys/fs/cgroup") / v2_path.lstrip("/") / v2_name


def read_until(proc: subprocess.Popen, text: str, timeout: float = 30.0) -> str:
    """Reads proc.stdout (bytes) until text shows up; returns what was read."""
    buf = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while text.encode() not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{text!r} not read after {timeout}s: {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"EOF before {text!r}: {buf!r}")
            buf += chunk
    return buf.decode()


def ts_ns(text: str) -> int:
    """RFC3339Nano (UTC, 'Z') to unix nanoseconds."""
    import calendar
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$", text)
    assert m, f"not an RFC3339Nano UTC time: {text!r}"
    secs = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    frac = (m.group(7) or "").ljust(9, "0")
    return secs * 1_000_000_000 + int(frac)


# ---------------------------------------------------------------------------------------------
# run: exit codes and output


def test_run_exit_code_zero(engine):
    r = engine.run("run", "busybox", "true")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


def test_run_exit_code_of_the_process(engine):
    r = engine.run("run", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3, r.stderr


def test_run_attaches_stdout_and_stderr_separately(engine):
    r = engine.run("run", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr
    assert "out" not in r.stderr


def test_run_missing_image_never_pull_exits_125(engine):
    r = engine.fails("run", "--pull", "never", "nope:latest", "true")
    assert r.returncode == 125
    assert "No such image: nope:latest" in r.stderr
    assert engine.container_ids() == []


def test_run_missing_image_unreachable_registry_exits_125(engine):
    r = engine.fails("run", "localhost:1/nope:latest", "true")
    assert r.returncode == 125
    assert "Unable to find image 'localhost:1/nope:latest' locally" in r.stderr
    assert engine.container_ids() == []


def test_run_not_executable_exits_126(engine):
    r = engine.fails("run", "busybox", "/etc/passwd")
    assert r.returncode == 126
    assert "permission denied" in r.stderr.lower()


def test_run_missing_command_exits_127(engine):
    r = engine.fails("run", "busybox", "nope")
    assert r.returncode == 127
    assert '"nope": executable file not found in $PATH' in r.stderr


def test_run_missing_absolute_command_exits_127(engine):
    r = engine.fails("run", "busybox", "/nope")
    assert r.returncode == 127
    assert "no such file or directory" in r.stderr.lower()


def test_run_detached_prints_id_and_runs(engine):
    cid = run_detached(engine, "--name", "bg", "busybox", *LOOP)
    c = engine.inspect("bg")
    assert c["Id"] == cid
    assert c["State"]["Status"] == "running"
    assert c["State"]["Running"] is True
    pid = c["State"]["Pid"]
    assert pid > 0 and alive(pid)
    assert engine.ok("ps", "-q").split() == [cid[:12]]
    assert engine.ok("ps", "-q", "--no-trunc").split() == [cid]


def test_create_then_start(engine):
    cid = engine.ok("create", "--name", "cc", "busybox", "sh", "-c", "echo started; exit 4").strip()
    assert FULL_ID.match(cid)
    st = engine.state("cc")
    assert st["Status"] == "created" and st["Running"] is False and st["Pid"] == 0
    assert engine.ok("start", "cc").strip() == "cc"
    assert engine.ok("wait", "cc").strip() == "4"
    assert engine.ok("logs", "cc") == "started\n"


def test_container_names_are_unique(engine):
    engine.ok("create", "--name", "same", "busybox")
    r = engine.fails("create", "--name", "same", "busybox")
    assert r.returncode == 125
    assert 'The container name "/same" is already in use' in r.stderr
    assert len(engine.container_ids()) == 1


def test_generated_name(engine):
    cid = engine.ok("create", "busybox").strip()
    name = engine.inspect(cid)["Name"]
    assert re.match(r"^/[a-z]+_[a-z]+\d*$", name), name


def test_short_id_and_prefix_refer_to_the_container(engine):
    cid = engine.ok("create", "--name", "pp", "busybox").strip()
    assert engine.inspect(cid[:12])["Name"] == "/pp"
    assert engine.inspect(cid[:5])["Name"] == "/pp"


# ---------------------------------------------------------------------------------------------
# stop / start / restart / kill / rm


def test_stop_start_keep_the_id(engine):
    cid = run_detached(engine, "--name", "ss", "busybox", *LOOP)
    pid1 = engine.state("ss")["Pid"]
    assert engine.ok("stop", "ss").strip() == "ss"
    st = engine.state("ss")
    assert st["Status"] == "exited" and st["Running"] is False
    assert st["ExitCode"] == 0  # the trap exits 0 on SIGTERM
    assert st["Pid"] == 0
    assert not alive(pid1)
    assert engine.ok("start", "ss").strip() == "ss"
    c = engine.inspect("ss")
    assert c["Id"] == cid
    assert c["State"]["Status"] == "running"
    assert c["State"]["Pid"] not in (0, pid1)
    assert engine.container_ids() == [cid]


def test_stop_kills_after_the_timeout(engine):
    # sleep as pid 1 has no SIGTERM handler: the kernel ignores the signal, stop sends SIGKILL.
    run_detached(engine, "--name", "kk", "busybox", "sleep", "1000")
    assert engine.ok("stop", "-t", "1", "kk").strip() == "kk"
    st = engine.state("kk")
    assert st["Status"] == "exited"
    assert st["ExitCode"] == 137


def test_stop_of_a_stopped_container_succeeds(engine):
    engine.ok("create", "--name", "cc", "busybox")
    assert engine.ok("stop", "cc").strip() == "cc"


def test_restart(engine):
    cid = run_detached(engine, "--name", "rr", "busybox", *LOOP)
    before = engine.inspect("rr")
    assert engine.ok("restart", "-t", "1", "rr").strip() == "rr"
    after = engine.inspect("rr")
    assert after["Id"] == cid
    assert after["State"]["Status"] == "running"
    assert after["State"]["Pid"] != before["State"]["Pid"]
    assert alive(after["State"]["Pid"]) and not alive(before["State"]["Pid"])
    assert after["State"]["StartedAt"] != before["State"]["StartedAt"]
    assert after["RestartCount"] == 0  # a manual restart is not counted


def test_restart_of_an_exited_container_starts_it(engine):
    engine.ok("run", "--name", "rr", "busybox", "sh", "-c", "echo run")
    engine.ok("restart", "rr")
    poll(lambda: engine.ok("logs", "rr") == "run\nrun\n", "the second run's output")


def test_kill_sends_sigkill_by_default(engine):
    run_detached(engine, "--name", "kk", "busybox", *LOOP)
    assert engine.ok("kill", "kk").strip() == "kk"
    st = engine.wait_state("kk", "exited")
    assert st["ExitCode"] == 137


def test_kill_with_signal(engine):
    run_detached(engine, "--name", "kk", "busybox", "sh", "-c",
                 "trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 0.1; done")
    engine.wait_log("kk", "ready")
    assert engine.ok("kill", "-s", "USR1", "kk").strip() == "kk"
    assert engine.ok("wait", "kk").strip() == "7"
    assert "got-usr1" in engine.ok("logs", "kk")


@pytest.mark.parametrize("sig", ["SIGUSR1", "10", "usr1"])
def test_kill_signal_spellings(engine, sig):
    run_detached(engine, "--name", "kk", "busybox", "sh", "-c",
                 "trap 'exit 7' USR1; echo ready; while :; do sleep 0.1; done")
    engine.wait_log("kk", "ready")
    engine.ok("kill", "--signal", sig, "kk")
    assert engine.ok("wait", "kk").strip() == "7"


def test_kill_of_a_stopped_container_fails(engine):
    engine.ok("create", "--name", "cc", "busybox")
    r = engine.fails("kill", "cc")
    assert r.returncode == 1
    assert "is not running" in r.stderr


def test_rm_refuses_a_running_container(engine):
    cid = run_detached(engine, "--name", "busy", "busybox", *LOOP)
    r = engine.fails("rm", "busy")
    assert r.returncode == 1
    assert "busy" in r.stderr
    assert "container is running: stop the container before removing or force remove" in r.stderr
    assert engine.state("busy")["Running"] is True
    assert engine.container_ids() == [cid]


def test_rm_force_removes_a_running_container(engine):
    cid = run_detached(engine, "--name", "busy", "busybox", *LOOP)
    pid = engine.state("busy")["Pid"]
    assert engine.ok("rm", "-f", "busy").strip() == "busy"
    assert engine.container_ids() == []
    assert not alive(pid)
    assert not (engine.root / "containers" / cid).exists()


def test_rm_of_an_exited_container(engine):
    cid = engine.ok("create", "--name", "gone", "busybox").strip()
    assert engine.ok("rm", "gone").strip() == "gone"
    assert engine.container_ids() == []
    assert not (engine.root / "containers" / cid).exists()
    r = engine.fails("inspect", "--type", "container", "gone")
    assert "No such container: gone" in r.stderr


def test_run_rm_leaves_nothing(engine):
    r = engine.run("run", "--rm", "busybox", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    assert engine.ok("ps", "-a", "-q") == ""
    cdir = engine.root / "containers"
    assert not cdir.exists() or list(cdir.iterdir()) == []


def _overlay_options(engine, cid: str) -> list[str]:
    rootfs = str(engine.root / "containers" / cid / "rootfs")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == rootfs:
                return right.split()[2].split(",")
    raise AssertionError(f"{rootfs} is not mounted")


def test_rm_containers_writable_layer_is_volatile_and_others_are_not(engine):
    # A --rm container's layer is never written back (its unmount costs no sync); a kept one's is.
    gone = engine.ok("create", "--rm", "busybox", "true").strip()
    kept = engine.ok("create", "busybox", "true").strip()
    # Shown as "volatile" by older kernels, "fsync=volatile" by newer ones.
    assert {"volatile", "fsync=volatile"} & set(_overlay_options(engine, gone))
    assert not {"volatile", "fsync=volatile"} & set(_overlay_options(engine, kept))
    # After a reboot (rootfs unmounted) the --rm container starts again: the kernel's
    # "volatile" mark, left by the first mount, does not stop the second.
    subprocess.run(["umount", str(engine.root / "containers" / gone / "rootfs")], check=True)
    assert (engine.root / "containers" / gone / "work" / "work" / "incompat" / "volatile").exists()
    r = engine.run("start", "-a", gone)
    assert r.returncode == 0, r.stderr
    engine.ok("rm", "-f", kept)


def test_run_rm_keeps_the_exit_code(engine):
    r = engine.run("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3
    assert engine.ok("ps", "-a", "-q") == ""


def test_run_rm_removes_its_anonymous_volume_and_keeps_named_ones(engine):
    engine.ok("volume", "create", "kept")
    r = engine.run("run", "--rm", "-v", "/scratch", "-v", "kept:/data", "busybox", "sh", "-c",
                   "echo x > /scratch/f; echo y > /data/f")
    assert r.returncode == 0, r.stderr
    assert engine.ok("ps", "-a", "-q") == ""
    assert engine.ok("volume", "ls", "-q").split() == ["kept"]
    assert engine.ok("run", "--rm", "-v", "kept:/data", "busybox", "cat", "/data/f") == "y\n"


def test_run_rm_is_removed_when_the_client_is_killed(engine):
    # The client normally removes the container itself; without it the shim's exit command does.
    p = engine.popen("run", "--rm", "--name", "orphan", "busybox", "sh", "-c", "sleep 1")
    poll(lambda: engine.run("inspect", "-f", "{{.State.Status}}", "orphan").stdout.strip() == "running",
         "the container to run")
    p.kill()
    p.wait()
    poll(lambda: engine.ok("ps", "-a", "-q") == "", "the --rm container to go without its client")


def test_run_rm_detached_is_removed_when_it_stops(engine):
    run_detached(engine, "--rm", "--name", "tmp", "busybox", *LOOP)
    engine.ok("stop", "tmp")
    poll(lambda: engine.ok("ps", "-a", "-q") == "", "the --rm container to go")
    # its shim finishes too (nothing left in the run dir)
    # (runtime/ is berth-runtime's root; netns/ and dns/ belong to networking)
    poll(lambda: [d.name for d in engine.run_dir.iterdir() if d.name not in ("runtime", "netns", "dns")] == [],
         "the shim to finish")


# ---------------------------------------------------------------------------------------------
# ps


def test_ps_shows_running_only_unless_all(engine):
    run_detached(engine, "--name", "up", "busybox", *LOOP)
    engine.ok("run", "--name", "done", "busybox", "true")
    engine.ok("create", "--name", "new", "busybox")
    assert names(engine) == ["up"]
    assert sorted(names(engine, "-a")) == ["done", "new", "up"]


def test_ps_quiet(engine):
    a = engine.ok("create", "busybox").strip()
    b = engine.ok("create", "busybox").strip()
    out = engine.ok("ps", "-a", "-q").split()
    assert out == [b[:12], a[:12]]  # newest first
    assert engine.ok("ps", "-aq", "--no-trunc").split() == [b, a]
    assert engine.ok("ps", "-q") == ""


def test_ps_last_and_latest(engine):
    for n in ("c1", "c2", "c3"):
        engine.ok("create", "--name", n, "busybox")
    assert names(engine, "-n", "2") == ["c3", "c2"]
    assert names(engine, "-n", "5") == ["c3", "c2", "c1"]
    assert names(engine, "-l") == ["c3"]
    assert names(engine, "--latest") == ["c3"]


def test_ps_filter_status(engine):
    run_detached(engine, "--name", "up", "busybox", *LOOP)
    engine.ok("run", "--name", "done", "busybox", "true")
    engine.ok("create", "--name", "new", "busybox")
    assert names(engine, "-a", "--filter", "status=running") == ["up"]
    assert names(engine, "-a", "--filter", "status=exited") == ["done"]
    assert names(engine, "-a", "-f", "status=created") == ["new"]
    assert sorted(names(engine, "-a", "-f", "status=created", "-f", "status=exited")) == ["done", "new"]


def test_ps_filter_status_invalid(engine):
    r = engine.fails("ps", "-a", "--filter", "status=sleepy")
    assert "invalid filter 'status=sleepy'" in r.stderr


def test_ps_filter_unknown_key(engine):
    r = engine.fails("ps", "--filter", "colour=red")
    assert "invalid filter 'colour'" in r.stderr


def test_ps_filter_name(engine):
    for n in ("web1", "web2", "db"):
        engine.ok("create", "--name", n, "busybox")
    assert sorted(names(engine, "-a", "--filter", "name=web")) == ["web1", "web2"]
    assert names(engine, "-a", "--filter", "name=^db$") == ["db"]


def test_ps_filter_label(engine):
    engine.ok("create", "--name", "aa", "-l", "tier=web", "-l", "x", "busybox")
    engine.ok("create", "--name", "bb", "-l", "tier=db", "busybox")
    engine.ok("create", "--name", "cc", "busybox")
    assert names(engine, "-a", "--filter", "label=tier=web") == ["aa"]
    assert sorted(names(engine, "-a", "--filter", "label=tier")) == ["aa", "bb"]
    assert names(engine, "-a", "--filter", "label=x") == ["aa"]


def test_ps_filter_volume(engine, tmp_path):
    (tmp_path / "h").mkdir()
    engine.ok("create", "--name", "withvol", "-v", "data:/data", "busybox")
    engine.ok("create", "--name", "withbind", "-v", f"{tmp_path / 'h'}:/h", "busybox")
    engine.ok("create", "--name", "none", "busybox")
    assert names(engine, "-a", "--filter", "volume=data") == ["withvol"]
    assert names(engine, "-a", "--filter", "volume=/data") == ["withvol"]  # by destination too
    assert names(engine, "-a", "--filter", f"volume={tmp_path / 'h'}") == ["withbind"]


def test_ps_filter_ancestor(engine, busybox_tar):
    from containertest import import_busybox
    import_busybox(engine, busybox_tar, "other:1")
    engine.ok("create", "--name", "bb", "busybox")
    engine.ok("create", "--name", "ot", "other:1")
    assert names(engine, "-a", "--filter", "ancestor=busybox") == ["bb"]
    assert names(engine, "-a", "--filter", "ancestor=busybox:latest") == ["bb"]
    assert names(engine, "-a", "--filter", "ancestor=other:1") == ["ot"]


def test_ps_filter_exited(engine):
    engine.ok("run", "--name", "zero", "busybox", "true")
    engine.run("run", "--name", "three", "busybox", "sh", "-c", "exit 3")
    assert names(engine, "-a", "--filter", "exited=3") == ["three"]
    assert names(engine, "-a", "--filter", "exited=0") == ["zero"]


def test_ps_format_status(engine):
    up = run_detached(engine, "--name", "up", "busybox", *LOOP)
    engine.run("run", "--name", "three", "busybox", "sh", "-c", "exit 3")
    new = engine.ok("create", "--name", "new", "busybox").strip()
    three = engine.inspect("three")["Id"]
    lines = engine.ok("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}").splitlines()
    assert len(lines) == 3
    assert lines[0] == f"{new[:12]} new Created"
    assert re.match(rf"^{three[:12]} three Exited \(3\) (Less than a second|\d+ seconds?) ago$", lines[1]), lines[1]
    assert re.match(rf"^{up[:12]} up Up (Less than a second|\d+ seconds?)$", lines[2]), lines[2]


def test_ps_table(engine):
    engine.run("run", "--name", "three", "busybox", "sh", "-c", "exit 3")
    lines = engine.ok("ps", "-a").splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                                      "PORTS", "NAMES"]
    assert len(lines) == 2
    row = lines[1]
    assert row.startswith(engine.inspect("three")["Id"][:12] + " ")
    assert " busybox " in row
    assert '"sh -c \'exit 3\'"' in row
    assert "Exited (3)" in row
    assert row.endswith("three")
    # the NAMES column starts where its header does
    assert row.index("three") == lines[0].index("NAMES")


def test_ps_table_header_only_when_empty(engine):
    out = engine.ok("ps", "-a")
    assert out.splitlines() == [out.splitlines()[0]]
    assert out.startswith("CONTAINER ID")


def test_ps_format_json(engine):
    engine.ok("create", "--name", "jj", "-l", "a=1", "busybox", "echo", "hi")
    lines = engine.ok("ps", "-a", "--format", "json").splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert {"Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks",
            "Ports", "RunningFor", "Size", "State", "Status"} <= set(obj)
    assert obj["Names"] == "jj"
    assert obj["Image"] == "busybox"
    assert obj["State"] == "created"
    assert obj["Status"] == "Created"
    assert obj["Labels"] == "a=1"
    assert obj["ID"] == engine.inspect("jj")["Id"][:12]
    assert obj["Command"] == '"echo hi"'


def test_ps_format_go_template_json(engine):
    engine.ok("create", "--name", "jj", "busybox")
    out = engine.ok("ps", "-a", "--format", "{{json .Names}}")
    assert out == '"jj"\n'


# ---------------------------------------------------------------------------------------------
# inspect / wait / rename / pause


def test_inspect_state_fields(engine):
    cid = run_detached(engine, "--name", "xx", "busybox", *LOOP)
    c = engine.inspect("xx")
    assert c["Id"] == cid
    assert c["Name"] == "/xx"
    assert c["Image"].startswith("sha256:")
    assert c["Config"]["Image"] == "busybox"
    assert c["Config"]["Cmd"] == LOOP
    assert c["Path"] == "sh"
    assert c["Args"] == LOOP[1:]
    st = c["State"]
    assert st["Status"] == "running" and st["Running"] is True and st["Paused"] is False
    assert st["ExitCode"] == 0
    assert st["Pid"] > 0
    with open(f"/proc/{st['Pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sh"
    assert re.match(TIMESTAMP, st["StartedAt"])
    assert st["FinishedAt"] == "0001-01-01T00:00:00Z"
    engine.ok("kill", "xx")
    st = engine.wait_state("xx", "exited")
    assert st["Running"] is False and st["Pid"] == 0 and st["ExitCode"] == 137
    assert st["FinishedAt"] != "0001-01-01T00:00:00Z"
    assert ts_ns(st["FinishedAt"]) >= ts_ns(st["StartedAt"])


def test_inspect_created_state(engine):
    engine.ok("create", "--name", "cc", "busybox")
    c = engine.inspect("cc")
    assert c["State"]["Status"] == "created"
    assert c["State"]["Pid"] == 0
    assert c["Config"]["Cmd"] == ["sh"]  # the image's CMD
    assert c["State"]["StartedAt"] == "0001-01-01T00:00:00Z"


def test_inspect_format(engine):
    engine.ok("create", "--name", "cc", "busybox")
    assert engine.ok("inspect", "-f", "{{.State.Status}} {{.Name}}", "cc") == "created /cc\n"
    assert engine.ok("container", "inspect", "--format", "{{json .Config.Cmd}}", "cc") == '["sh"]\n'


def test_inspect_mounts(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    engine.ok("create", "--name", "mm", "-v", "named:/data", "-v", f"{host}:/ro:ro",
              "--mount", f"type=bind,source={host},target=/rw", "-v", "/anon", "busybox")
    mounts = {m["Destination"]: m for m in engine.inspect("mm")["Mounts"]}
    assert set(mounts) == {"/data", "/ro", "/rw", "/anon"}
    v = mounts["/data"]
    assert v["Type"] == "volume" and v["Name"] == "named" and v["Driver"] == "local"
    assert v["Source"] == str(engine.root / "volumes" / "named" / "_data")
    assert v["RW"] is True and v["Propagation"] == ""
    ro = mounts["/ro"]
    assert ro["Type"] == "bind" and ro["Source"] == str(host)
    assert ro["RW"] is False and ro["Mode"] == "ro" and ro["Propagation"] == "rprivate"
    assert "Name" not in ro and "Driver" not in ro
    rw = mounts["/rw"]
    assert rw["Type"] == "bind" and rw["Source"] == str(host)
    assert rw["RW"] is True and rw["Mode"] == "" and rw["Propagation"] == "rprivate"
    anon = mounts["/anon"]
    assert anon["Type"] == "volume" and FULL_ID.match(anon["Name"]) and anon["Driver"] == "local"
    assert anon["RW"] is True
    # moby's registerMountPoints: setBindModeIfNull gives a -v named volume of the local driver Mode "z"
    assert v["Mode"] == "z"


def test_inspect_missing(engine):
    r = engine.fails("inspect", "--type", "container", "nope")
    assert r.returncode == 1
    assert "No such container: nope" in r.stderr


def test_wait_prints_the_exit_code(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    run_detached(engine, "--name", "ww", "-v", f"{host}:/h", "busybox", "sh", "-c",
                 "while [ ! -e /h/go ]; do sleep 0.05; done; exit 5")
    waiter = engine.popen("wait", "ww", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (host / "go").touch()
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert out == "5\n"
    # and again once it has exited
    assert engine.ok("wait", "ww") == "5\n"


def test_wait_several(engine):
    engine.run("run", "--name", "aa", "busybox", "sh", "-c", "exit 1")
    engine.run("run", "--name", "bb", "busybox", "sh", "-c", "exit 2")
    assert engine.ok("wait", "aa", "bb") == "1\n2\n"


def test_rename(engine):
    cid = engine.ok("create", "--name", "old", "busybox").strip()
    r = engine.run("rename", "old", "new")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert engine.inspect("new")["Id"] == cid
    assert engine.inspect("new")["Name"] == "/new"
    assert "No such container: old" in engine.fails("inspect", "--type", "container", "old").stderr
    assert names(engine, "-a") == ["new"]


def test_rename_running(engine):
    cid = run_detached(engine, "--name", "old", "busybox", *LOOP)
    engine.ok("rename", "old", "new")
    assert engine.inspect("new")["Id"] == cid
    assert engine.ok("stop", "new").strip() == "new"


def test_rename_to_a_taken_name_fails(engine):
    engine.ok("create", "--name", "aa", "busybox")
    engine.ok("create", "--name", "bb", "busybox")
    r = engine.fails("rename", "aa", "bb")
    assert r.returncode == 1
    assert 'The container name "/bb" is already in use' in r.stderr
    assert sorted(names(engine, "-a")) == ["aa", "bb"]


def test_pause_unpause(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    run_detached(engine, "--name", "pp", "-v", f"{host}:/h", "busybox", "sh", "-c",
                 "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo $i > /h/n.tmp; mv /h/n.tmp /h/n; "
                 "sleep 0.05; done")
    poll(lambda: (host / "n").exists(), "the counter file")
    pid = engine.state("pp")["Pid"]
    assert engine.ok("pause", "pp").strip() == "pp"
    st = engine.state("pp")
    assert st["Status"] == "paused" and st["Paused"] is True and st["Running"] is True
    freezer = cgroup_file(pid, "freezer", "freezer.state", "cgroup.events")
    text = freezer.read_text()
    assert ("FROZEN" in text) if freezer.name == "freezer.state" else ("frozen 1" in text), text
    frozen = (host / "n").read_text()
    time.sleep(0.3)  # the counter advances every 50 ms when it runs
    assert (host / "n").read_text() == frozen
    assert [l for l in engine.ok("ps", "--format", "{{.Status}}").splitlines()][0].endswith("(Paused)")
    assert engine.ok("unpause", "pp").strip() == "pp"
    assert engine.state("pp")["Status"] == "running"
    poll(lambda: (host / "n").read_text() != frozen, "the counter to move after unpause")


def test_pause_of_a_stopped_container_fails(engine):
    engine.ok("create", "--name", "cc", "busybox")
    r = engine.fails("pause", "cc")
    assert r.returncode == 1
    assert "is not running" in r.stderr


# ---------------------------------------------------------------------------------------------
# the process: env, workdir, user, entrypoint, hostname, labels, stdin


def test_env(engine, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=file value\n\nOVERRIDE=file\n")
    out = engine.ok("run", "-e", "A=1", "--env", "B=two words", "--env-file", env_file, "-e", "OVERRIDE=flag",
                    "busybox", "env")
    env = dict(l.split("=", 1) for l in out.splitlines())
    assert env["A"] == "1"
    assert env["B"] == "two words"
    assert env["FROM_FILE"] == "file value"
    assert env["OVERRIDE"] == "flag"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert "HOSTNAME" in env and env["HOME"] == "/root"


def test_env_from_host(engine):
    r = engine.run("run", "-e", "BERTH_TEST_HOSTVAR", "-e", "BERTH_TEST_UNSET_VAR", "busybox", "env",
                   env={"BERTH_TEST_HOSTVAR": "from-host"})
    assert r.returncode == 0, r.stderr
    assert "BERTH_TEST_HOSTVAR=from-host" in r.stdout.splitlines()
    assert "BERTH_TEST_UNSET_VAR" not in r.stdout


def test_env_file_missing(engine, tmp_path):
    r = engine.fails("run", "--env-file", tmp_path / "nope", "busybox", "true")
    assert r.returncode == 125
    assert "no such file or directory" in r.stderr
    assert engine.container_ids() == []


def test_workdir(engine):
    assert engine.ok("run", "-w", "/tmp", "busybox", "pwd") == "/tmp\n"
    # a missing working directory is created
    assert engine.ok("run", "--workdir", "/new/dir", "busybox", "pwd") == "/new/dir\n"


def test_workdir_relative_is_refused(engine):
    r = engine.fails("run", "-w", "rel", "busybox", "pwd")
    assert r.returncode == 125
    assert "the working directory 'rel' is invalid, it needs to be an absolute path" in r.stderr


def test_user_by_name(engine):
    assert engine.ok("run", "-u", "app", "busybox", "id", "-u") == "1000\n"
    assert engine.ok("run", "--user", "app", "busybox", "id", "-g") == "1000\n"
    assert engine.ok("run", "-u", "app", "busybox", "sh", "-c", "echo $HOME") == "/home/app\n"


def test_user_by_number(engine):
    assert engine.ok("run", "-u", "1234:5678", "busybox", "sh", "-c", "id -u; id -g") == "1234\n5678\n"


def test_user_unknown(engine):
    r = engine.fails("run", "-u", "nobody-here", "busybox", "true")
    assert "nobody-here" in r.stderr


def test_entrypoint(engine):
    assert engine.ok("run", "--entrypoint", "echo", "busybox", "hi", "there") == "hi there\n"
    engine.ok("create", "--name", "ee", "--entrypoint", "echo", "busybox", "x")
    c = engine.inspect("ee")
    assert c["Config"]["Entrypoint"] == ["echo"]
    assert c["Config"]["Cmd"] == ["x"]


def test_entrypoint_replaces_the_image_cmd(engine):
    # docker: --entrypoint resets the image's CMD; `echo` alone prints an empty line.
    assert engine.ok("run", "--entrypoint", "echo", "busybox") == "\n"


def test_hostname(engine):
    assert engine.ok("run", "--hostname", "box", "busybox", "hostname") == "box\n"
    cid = engine.ok("create", "busybox", "hostname").strip()
    engine.ok("start", cid)
    engine.ok("wait", cid)
    assert engine.ok("logs", cid) == cid[:12] + "\n"


def test_labels(engine):
    engine.ok("create", "--name", "ll", "-l", "a=1", "--label", "b=two", "-l", "flag", "busybox")
    assert engine.inspect("ll")["Config"]["Labels"] == {"a": "1", "b": "two", "flag": ""}


def test_stdin_piped_with_i(engine):
    r = engine.run("run", "-i", "busybox", "cat", input="hi\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_stdin_large(engine):
    data = "".join(f"line {i}\n" for i in range(20000))
    r = engine.run("run", "-i", "--rm", "busybox", "wc", "-l", input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "20000"


def test_stdin_not_attached_without_i(engine):
    r = engine.run("run", "busybox", "cat", input="hi\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


# ---------------------------------------------------------------------------------------------
# the shim owns the container: killing the CLI never kills it


def test_killing_the_cli_of_a_foreground_run_keeps_the_container(engine):
    proc = engine.popen("run", "--name", "fg", "busybox", "sh", "-c",
                        "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.05; done",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        read_until(proc, "tick3")
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and anything left in its process group
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    st = engine.state("fg")
    assert st["Status"] == "running"
    assert alive(st["Pid"])
    # it is still running and its output still reaches the log
    n = len(engine.ok("logs", "fg").splitlines())
    engine.wait_log("fg", f"tick{n + 5}\n")
    assert engine.ok("stop", "fg").strip() == "fg"
    assert engine.state("fg")["ExitCode"] == 0


def test_killing_the_cli_of_run_d_keeps_the_container(engine):
    proc = engine.popen("run", "-d", "--name", "bg", "busybox", *READY_LOOP, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, start_new_session=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing of the CLI's session is left, as it should be
    st = engine.state("bg")
    assert st["Status"] == "running"
    assert alive(st["Pid"])
    engine.wait_log("bg", "ready")


def test_sigterm_to_a_foreground_run_is_forwarded(engine):
    # docker's --sig-proxy (default true): the CLI forwards the signals it gets to the container.
    proc = engine.popen("run", "--name", "fg", "busybox", "sh", "-c",
                        "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.05; done",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(proc, "ready")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 9
    assert b"got-term" in out
    assert engine.state("fg")["ExitCode"] == 9


# ---------------------------------------------------------------------------------------------
# restart policies


def test_restart_on_failure_max_retries(engine):
    run_detached(engine, "--name", "rf", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 1")

    def done():
        c = engine.inspect("rf")
        return c if (c["State"]["Status"] == "exited" and c["RestartCount"] == 2) else None

    c = poll(done, "three failed runs", timeout=60)
    assert c["State"]["ExitCode"] == 1
    assert c["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert engine.ok("logs", "rf") == "run\nrun\nrun\n"


def test_restart_on_failure_not_after_success(engine):
    run_detached(engine, "--name", "ok", "--restart", "on-failure", "busybox", "sh", "-c", "echo run; exit 0")
    engine.ok("wait", "ok")
    c = engine.inspect("ok")
    assert c["RestartCount"] == 0
    assert engine.ok("logs", "ok") == "run\n"


def test_restart_always_restarts(engine):
    run_detached(engine, "--name", "al", "--restart", "always", "busybox", "sh", "-c", "echo run; exit 0")
    poll(lambda: engine.ok("logs", "al").count("run\n") >= 2, "a second run")
    assert engine.inspect("al")["RestartCount"] >= 1


def test_restart_always_then_stop_stays_stopped(engine):
    run_detached(engine, "--name", "al", "--restart", "always", "busybox", *READY_LOOP)
    engine.wait_log("al", "ready")
    assert engine.ok("stop", "al").strip() == "al"
    assert engine.state("al")["Status"] == "exited"
    time.sleep(1.0)  # longer than the first restart delay (100 ms): a restart would have happened
    c = engine.inspect("al")
    assert c["State"]["Status"] == "exited"
    assert c["RestartCount"] == 0
    assert engine.ok("logs", "al") == "ready\n"


def test_restart_policy_invalid(engine):
    r = engine.fails("run", "--restart", "sometimes", "busybox", "true")
    assert r.returncode == 125
    assert engine.container_ids() == []


def test_restart_and_rm_conflict(engine):
    r = engine.fails("run", "--rm", "--restart", "always", "busybox", "true")
    assert r.returncode == 125
    assert "conflicting options: cannot specify both --restart and --rm" in r.stderr
    assert engine.container_ids() == []


# ---------------------------------------------------------------------------------------------
# filesystem, init, network, resources


def test_read_only_root(engine):
    r = engine.run("run", "--read-only", "busybox", "touch", "/x")
    assert r.returncode == 1
    assert "Read-only file system" in r.stderr
    assert engine.ok("run", "--read-only", "--tmpfs", "/t", "busybox", "sh", "-c",
                     "echo ok > /t/x && cat /t/x") == "ok\n"
    assert engine.ok("run", "--read-only", "-v", "rovol:/v", "busybox", "sh", "-c",
                     "echo ok > /v/x && cat /v/x") == "ok\n"
    assert engine.inspect(engine.container_ids()[0])["HostConfig"]["ReadonlyRootfs"] is True


def test_init_is_pid_1_and_reaps_zombies(engine):
    out = engine.ok("run", "--init", "busybox", "sh", "-c",
                    "echo $$; grep PPid /proc/$$/status; cat /proc/1/cmdline | tr '\\0' ' '; echo")
    lines = out.splitlines()
    assert lines[0] != "1"
    assert lines[1].split() == ["PPid:", "1"]
    assert "init" in lines[2].split()[0]
    # an orphan that exits is reaped by the init (no zombie stays)
    script = ("(sh -c 'touch /tmp/gone' &); while [ ! -e /tmp/gone ]; do sleep 0.05; done; "
              "i=0; while [ $i -lt 200 ]; do "
              "  grep -q '^State:.Z' /proc/[0-9]*/status 2>/dev/null || { echo reaped; exit 0; }; "
              "  i=$((i+1)); sleep 0.05; done; echo zombie; exit 1")
    r = engine.run("run", "--init", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "reaped\n"


def test_init_passes_exit_code_and_signals(engine):
    assert engine.run("run", "--init", "busybox", "sh", "-c", "exit 6").returncode == 6
    run_detached(engine, "--init", "--name", "ii", "busybox", *READY_LOOP)
    engine.wait_log("ii", "ready")
    engine.ok("stop", "ii")
    assert engine.state("ii")["ExitCode"] == 0  # SIGTERM reached sh through the init


def net_devs(text: str) -> set[str]:
    return {l.split(":")[0].strip() for l in text.splitlines()[2:] if ":" in l}


def test_network_none(engine):
    out = engine.ok("run", "--network", "none", "busybox", "cat", "/proc/net/dev")
    assert net_devs(out) == {"lo"}


def test_network_host(engine):
    out = engine.ok("run", "--network", "host", "busybox", "cat", "/proc/net/dev")
    host = net_devs(engine.host("cat", "/proc/net/dev", check=True).stdout)  # the test's namespace
    assert net_devs(out) == host
    assert engine.inspect(engine.container_ids()[0])["HostConfig"]["NetworkMode"] == "host"


def test_memory_and_pids_limits(engine):
    run_detached(engine, "--name", "lim", "--memory", "64m", "--pids-limit", "50", "busybox", *LOOP)
    c = engine.inspect("lim")
    assert c["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert c["HostConfig"]["PidsLimit"] == 50
    pid = c["State"]["Pid"]
    mem = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert int(mem.read_text()) == 64 * 1024 * 1024
    pids = cgroup_file(pid, "pids", "pids.max", "pids.max")
    assert pids.read_text().strip() == "50"


def test_update_changes_limits_live_and_for_later_starts(engine):
    run_detached(engine, "--name", "upd", "--memory", "64m", "busybox", *LOOP)
    pid = engine.inspect("upd")["State"]["Pid"]
    r = engine.run("update", "--memory", "96m", "--pids-limit", "40", "--cpu-shares", "512", "upd")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "upd\n"
    c = engine.inspect("upd")
    assert c["HostConfig"]["Memory"] == 96 * 1024 * 1024
    assert c["HostConfig"]["PidsLimit"] == 40 and c["HostConfig"]["CpuShares"] == 512
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max").read_text()) == 96 * 1024 * 1024
    assert cgroup_file(pid, "pids", "pids.max", "pids.max").read_text().strip() == "40"
    # Kept for the next start.
    engine.ok("stop", "-t", "0", "upd")
    engine.ok("start", "upd")
    pid = engine.inspect("upd")["State"]["Pid"]
    assert cgroup_file(pid, "pids", "pids.max", "pids.max").read_text().strip() == "40"
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max").read_text()) == 96 * 1024 * 1024
    # docker's refusals, each with nothing changed.
    for args, message in [
        (["--memory", "1m"], "Minimum memory limit allowed is 6MB"),
        (["--memory", "512m"], "Memory limit should be smaller than already set memoryswap limit"),
        (["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
        (["--restart", "sometimes"], "sometimes"),
        ([], "you must provide one or more flags"),
    ]:
        r = engine.run("update", *args, "upd")
        assert r.returncode != 0 and message in r.stderr.splitlines()[0], (args, r.stderr)
    r = engine.run("update", "--memory", "96m", "nosuch")
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr
    assert engine.inspect("upd")["HostConfig"]["Memory"] == 96 * 1024 * 1024
    engine.ok("rm", "-f", "upd")


def test_update_restart_policy_of_a_running_container(engine):
    run_detached(engine, "--name", "rp", "busybox", "sh", "-c", "sleep 1; exit 3")
    engine.ok("update", "--restart", "on-failure:2", "rp")
    assert engine.inspect("rp")["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    # The running shim restarts it under the new policy: twice, then it stays exited.
    poll(lambda: engine.state("rp")["Status"] == "exited" and engine.inspect("rp")["RestartCount"] == 2,
         "two restarts under the updated policy", timeout=30)
    assert engine.state("rp")["ExitCode"] == 3
    r = engine.run("run", "-d", "--rm", "--name", "auto", "busybox", *LOOP)
    assert r.returncode == 0, r.stderr
    r = engine.run("update", "--restart", "always", "auto")
    assert r.returncode == 1
    assert "Restart policy cannot be updated because AutoRemove is enabled for the container" in r.stderr
    engine.ok("rm", "-f", "auto")


# ---------------------------------------------------------------------------------------------
# logs


def test_logs_stdout_and_stderr_separated(engine):
    engine.ok("run", "--name", "ll", "busybox", "sh", "-c", "echo out; echo err >&2; echo out2")
    r = engine.run("logs", "ll")
    assert r.returncode == 0
    assert r.stdout == "out\nout2\n"
    assert r.stderr == "err\n"


def test_logs_of_a_detached_container_after_exit(engine):
    run_detached(engine, "--name", "ll", "busybox", "sh", "-c", "echo one; echo two")
    engine.ok("wait", "ll")
    assert engine.ok("logs", "ll") == "one\ntwo\n"


def test_logs_of_a_created_container_are_empty(engine):
    engine.ok("create", "--name", "cc", "busybox")
    r = engine.run("logs", "cc")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_logs_timestamps(engine):
    engine.ok("run", "--name", "ll", "busybox", "sh", "-c", "echo a; echo b >&2")
    out = engine.run("logs", "-t", "ll")
    # docker prints RFC3339Nano with all nine digits (jsonmessage.RFC3339NanoFixed)
    fixed = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
    assert re.match(rf"^{fixed} a\n$", out.stdout), out.stdout
    assert re.match(rf"^{fixed} b\n$", out.stderr), out.stderr


def test_logs_tail(engine):
    engine.ok("run", "--name", "ll", "busybox", "seq", "1", "10")
    assert engine.ok("logs", "--tail", "3", "ll") == "8\n9\n10\n"
    assert engine.ok("logs", "-n", "1", "ll") == "10\n"
    assert engine.ok("logs", "--tail", "0", "ll") == ""
    assert engine.ok("logs", "--tail", "all", "ll") == "".join(f"{i}\n" for i in range(1, 11))
    assert engine.ok("logs", "--tail", "50", "ll") == "".join(f"{i}\n" for i in range(1, 11))


def test_logs_since(engine):
    engine.ok("run", "--name", "ll", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo $i; sleep 0.02; done")
    stamped = engine.ok("logs", "-t", "ll").splitlines()
    times = [ts_ns(l.split()[0]) for l in stamped]
    assert times == sorted(times)
    # from the first entry later than the first one on
    k = next(i for i, t in enumerate(times) if t > times[0])
    since = stamped[k].split()[0]
    want = "".join(l.split(" ", 1)[1] + "\n" for l in stamped if ts_ns(l.split()[0]) >= ts_ns(since))
    assert engine.ok("logs", "--since", since, "ll") == want
    assert engine.ok("logs", "--since", "1h", "ll") == "1\n2\n3\n4\n5\n"
    assert engine.ok("logs", "--since", str(int(time.time()) + 3600), "ll") == ""


def test_logs_follow_until_exit(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    run_detached(engine, "--name", "ff", "-v", f"{host}:/h", "busybox", "sh", "-c",
                 "echo one; while [ ! -e /h/go ]; do sleep 0.05; done; echo two")
    proc = engine.popen("logs", "-f", "ff", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = read_until(proc, "one\n")
        (host / "go").touch()
        rest, err = proc.communicate(timeout=60)  # returns once the container exited
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert first + rest.decode() == "one\ntwo\n"


def test_logs_follow_of_an_exited_container_returns(engine):
    engine.ok("run", "--name", "ll", "busybox", "echo", "done")
    r = engine.run("logs", "-f", "ll", timeout=60)
    assert r.returncode == 0
    assert r.stdout == "done\n"


def test_logs_of_a_foreground_run(engine):
    engine.ok("run", "--name", "ll", "busybox", "echo", "hi")
    assert engine.ok("logs", "ll") == "hi\n"


def test_log_json_format_on_disk(engine):
    engine.ok("run", "--name", "ll", "busybox", "sh", "-c", "echo out; echo err >&2")
    c = engine.inspect("ll")
    path = Path(c["LogPath"])
    assert path == engine.root / "containers" / c["Id"] / (c["Id"] + "-json.log")
    entries = [json.loads(l) for l in path.read_text().splitlines()]
    assert [set(e) for e in entries] == [{"log", "stream", "time"}] * 2
    by_stream = {e["stream"]: e["log"] for e in entries}
    assert by_stream == {"stdout": "out\n", "stderr": "err\n"}
    for e in entries:
        assert re.match(rf"^{TIMESTAMP}$", e["time"]), e["time"]


def test_log_rotation(engine):
    lines = 400  # ~ 40 bytes of payload, ~ 90 bytes a JSON entry: 36 KB of log for 2 files of 1k
    engine.ok("run", "--name", "rot", "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox", "sh", "-c",
              f"i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo line-$i-padding-padding-padding; done")
    c = engine.inspect("rot")
    cdir = engine.root / "containers" / c["Id"]
    logs = sorted(p.name for p in cdir.iterdir() if p.name.startswith(c["Id"] + "-json.log"))
    assert logs == [c["Id"] + "-json.log", c["Id"] + "-json.log.1"]
    for name in logs:
        size = (cdir / name).stat().st_size
        assert 0 < size <= 1000 + 200, (name, size)  # one entry may cross the limit
    out = engine.ok("logs", "rot")
    got = out.splitlines()
    assert got[-1] == f"line-{lines}-padding-padding-padding"
    assert "line-1-padding-padding-padding" not in got  # rotated away
    # what is left is a contiguous tail
    nums = [int(l.split("-")[1]) for l in got]
    assert nums == list(range(nums[0], lines + 1))
    assert c["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}


def test_log_opt_unknown(engine):
    before = engine.snapshot()
    r = engine.fails("run", "--log-opt", "colour=red", "busybox", "true")
    assert r.returncode == 125
    assert "unknown log opt 'colour' for json-file log driver" in r.stderr
    assert engine.snapshot() == before
