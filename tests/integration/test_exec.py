"""`exec`: extra processes in a running container."""
import json
import os
import time

import pytest

import berthtest as bt

# runc exits 255 when exec itself fails, so that never collides with the process's own status.
EXEC_ERROR = 255


@pytest.fixture
def running(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    return cid


def ns_link(pid, ns):
    return os.readlink(f"/proc/{pid}/ns/{ns}")


def test_exec_ls(runtime, running):
    r = runtime.exec(running, "ls", "/")
    assert r.returncode == 0, r.stderr
    names = r.stdout.split()
    for d in ("bin", "etc", "proc", "dev", "tmp"):
        assert d in names


@pytest.mark.parametrize("code", [0, 1, 7, 254])
def test_exec_exit_code(runtime, running, code):
    assert runtime.exec(running, "sh", "-c", f"exit {code}").returncode == code


def test_exec_stdout_stderr_stdin(runtime, running):
    r = runtime.exec(running, "sh", "-c", "cat; echo err >&2", input="from stdin\n")
    assert r.returncode == 0
    assert r.stdout == "from stdin\n"
    assert r.stderr == "err\n"


def test_exec_shares_container_namespaces(runtime, running):
    init = runtime.state(running)["pid"]
    r = runtime.exec(running, "sh", "-c",
                     "cat /proc/1/cmdline | tr '\\0' ' '; echo; for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done;"
                     " hostname")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "sleep 1000 "
    assert lines[1:6] == [ns_link(init, n) for n in ("pid", "net", "ipc", "uts", "mnt")]
    assert lines[6] == "berth-test"


def test_exec_joins_container_cgroup(runtime, running):
    init = runtime.state(running)["pid"]
    r = runtime.exec(running, "cat", "/proc/self/cgroup")
    assert r.returncode == 0
    # compare the controller paths as the host sees them: same file, read for the init
    assert r.stdout == open(f"/proc/{init}/cgroup").read()


def test_exec_inherits_process_security_settings(runtime, running):
    r = runtime.exec(running, "grep", "-E", "^(CapEff|CapBnd|NoNewPrivs|Seccomp):", "/proc/self/status")
    assert r.returncode == 0
    fields = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert int(fields["CapEff"], 16) == bt.cap_mask(bt.DEFAULT_CAPS)
    assert int(fields["CapBnd"], 16) == bt.cap_mask(bt.DEFAULT_CAPS)
    assert fields["NoNewPrivs"] == "1"


def test_exec_options_env_cwd_user(runtime, running):
    r = runtime.run(["exec", "-e", "FOO=bar baz", "--cwd", "/tmp", "-u", "1000:1000", running,
                     "sh", "-c", 'echo "$FOO"; pwd; id -u; id -g; grep ^CapEff: /proc/self/status'])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["bar baz", "/tmp", "1000", "1000", "CapEff:\t0000000000000000"]


def test_exec_inherits_container_env(runtime, running):
    r = runtime.exec(running, "sh", "-c", 'echo "$TERM $PATH"')
    assert r.stdout == "xterm /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"


def test_exec_process_json(runtime, running, tmp_path):
    proc = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
        "args": ["sh", "-c", 'echo "$GREETING"; pwd; id; grep ^CapEff: /proc/self/status; exit 4'],
        "env": ["PATH=/bin:/usr/bin", "GREETING=hello from process.json"],
        "cwd": "/home/app",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                         "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
        "noNewPrivileges": True,
    }
    p = tmp_path / "process.json"
    p.write_text(json.dumps(proc))
    r = runtime.run(["exec", "--process", p, running])
    assert r.returncode == 4, r.stderr
    assert r.stdout.splitlines() == [
        "hello from process.json",
        "/home/app",
        "uid=1000(app) gid=1000(app) groups=5(tty)",
        "CapEff:\t%016x" % bt.cap_mask(["CAP_KILL"]),
    ]


def test_exec_detached_pid_file(runtime, running, tmp_path):
    pid_file = tmp_path / "exec.pid"
    r = runtime.run(["exec", "-d", "--pid-file", pid_file, running, "sleep", "999"])
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text().strip())
    assert open(f"/proc/{pid}/cmdline").read() == "sleep\x00999\x00"
    init = runtime.state(running)["pid"]
    assert ns_link(pid, "pid") == ns_link(init, "pid")
    assert pid in json.loads(runtime.ok(["ps", "--format", "json", running]).stdout)
    # the container is still the init's: killing the exec'd process leaves it running
    os.kill(pid, 9)
    assert runtime.status(running) == "running"


def test_exec_detached_process_dies_with_container(runtime, running, tmp_path):
    pid_file = tmp_path / "exec.pid"
    runtime.ok(["exec", "-d", "--pid-file", pid_file, running, "sleep", "999"])
    pid = int(pid_file.read_text().strip())
    runtime.ok(["kill", running, "KILL"])
    runtime.wait_status(running, "stopped")
    # pid namespace teardown kills it; it may linger briefly as a zombie of its reaper
    for _ in range(500):
        try:
            if open(f"/proc/{pid}/stat").read().split()[2] in ("Z", "X"):
                break
        except FileNotFoundError:
            break
        time.sleep(0.01)
    else:
        pytest.fail("exec'd process survived its container's init")


def test_exec_sees_pid_1(runtime, running):
    r = runtime.exec(running, "sh", "-c", "test -d /proc/1 && echo has-pid-1; echo $$")
    lines = r.stdout.split()
    assert lines[0] == "has-pid-1"
    assert int(lines[1]) > 1


def test_exec_without_command_fails(runtime, running):
    r = runtime.run(["exec", running])
    assert r.returncode != 0
    assert r.stderr.strip()


def test_exec_missing_binary(runtime, running):
    r = runtime.exec(running, "/no/such/binary")
    assert r.returncode == EXEC_ERROR
    assert "/no/such/binary" in r.stderr
    assert runtime.status(running) == "running"


def test_exec_in_created_container(runtime, bundle):
    # runc allows exec before start; the init stays blocked in "created"
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    r = runtime.exec(cid, "echo", "in-created")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "in-created\n"
    assert runtime.status(cid) == "created"


def test_exec_in_paused_container_fails(runtime, running):
    runtime.ok(["pause", running])
    r = runtime.exec(running, "true")
    assert r.returncode == EXEC_ERROR
    assert r.stderr.strip()
    runtime.ok(["resume", running])


def test_exec_in_stopped_container_fails(runtime, running):
    runtime.ok(["kill", running, "KILL"])
    runtime.wait_status(running, "stopped")
    r = runtime.exec(running, "true")
    assert r.returncode == EXEC_ERROR
    assert r.stderr.strip()


def test_exec_in_unknown_container_fails(runtime):
    r = runtime.exec("bt-does-not-exist", "true")
    assert r.returncode == EXEC_ERROR
    assert r.stderr.strip()


def test_exec_tty_detached_needs_console_socket(runtime, running):
    r = runtime.run(["exec", "-t", "-d", running, "tty"])
    assert r.returncode != 0
    assert r.stderr.strip()


def test_exec_tty_without_terminal_fails(runtime, running):
    # no console socket and our stdio is not a terminal: nothing to attach the pty to
    r = runtime.run(["exec", "-t", running, "tty"])
    assert r.returncode != 0
    assert r.stderr.strip()


def test_exec_tty_with_console_socket(runtime, running, recvtty_bin, short_tmp):
    with bt.ConsoleReceiver(recvtty_bin, short_tmp) as console:
        # runc: "cannot use console socket if runc will not detach or allocate tty" -> needs -d
        r = runtime.run(["exec", "-t", "-d", "--console-socket", console.path, running,
                         "sh", "-c", "tty; echo exec-tty-ok"])
        assert r.returncode == 0, r.stderr
        text = console.wait()
    assert text.startswith("/dev/pts/")
    assert "exec-tty-ok\n" in text
