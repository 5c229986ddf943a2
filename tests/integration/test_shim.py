"""berth-shim, the per-container parent process (src/shim/protocol.hpp is the contract).

The tests drive the shim directly, as the engine will: a sync pipe, a status file, the json-file
log and the attach socket, with a private --runtime-root.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

import berthtest as bt

SHIM_PATH = bt.BUILD_DIR / "src" / "cli" / "berth-shim"


def sanitized_build() -> bool:
    cache = bt.BUILD_DIR / "CMakeCache.txt"
    return cache.exists() and "BERTH_SANITIZE:BOOL=ON" in cache.read_text()
RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")

STDIN, STDOUT, STDERR, EXIT, CLOSE_STDIN, RESIZE, HELLO = 0, 1, 2, 3, 4, 5, 16


def frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


class Attach:
    """An attach client: hello first, then frames both ways."""

    def __init__(self, path: Path, stdin=False, stdout=True, stderr=True, extra: bytes = b""):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(path))
        hello = json.dumps({"stdin": stdin, "stdout": stdout, "stderr": stderr}).encode()
        # extra frames go in the same write as the hello (a resize before a deferred start)
        self.sock.sendall(frame(HELLO, hello) + extra)
        self.buf = b""

    def send(self, kind: int, payload: bytes = b""):
        self.sock.sendall(frame(kind, payload))

    def read_frame(self):
        while True:
            if len(self.buf) >= 8:
                kind, n = struct.unpack(">BxxxI", self.buf[:8])
                if len(self.buf) >= 8 + n:
                    payload = self.buf[8:8 + n]
                    self.buf = self.buf[8 + n:]
                    return kind, payload
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def until_exit(self):
        """Frames up to and including the exit frame: ({stream: bytes}, exit payload dict)."""
        out = {STDOUT: b"", STDERR: b""}
        while True:
            f = self.read_frame()
            assert f is not None, f"connection closed before the exit frame; got {out}"
            kind, payload = f
            if kind == EXIT:
                return out, json.loads(payload)
            out[kind] += payload

    def read_until(self, text: bytes, kind=STDOUT) -> bytes:
        got = b""
        while text not in got:
            f = self.read_frame()
            assert f is not None, f"closed before {text!r}; got {got!r}"
            if f[0] == kind:
                got += f[1]
        return got

    def close(self):
        self.sock.close()


class ShimRun:
    """One shim (one container) with its state dir; started by ShimEnv.start."""

    def __init__(self, env: "ShimEnv", bundle: bt.Bundle, cid: str, state_dir: Path):
        self.env = env
        self.bundle = bundle
        self.id = cid
        self.state_dir = state_dir
        self.status_file = state_dir / "status.json"
        self.log_path = state_dir / "ctr.log"
        self.attach_path = state_dir / "attach.sock"
        self.sync: dict = {}
        self.shim_pid = 0

    def args(self, *extra, log=True) -> list[str]:
        a = [str(SHIM_PATH), "--id", self.id, "--bundle", str(self.bundle.path), "--runtime", bt.RUNTIME_PATH,
             "--runtime-root", str(self.env.runtime_root), "--state-dir", str(self.state_dir),
             "--status-file", str(self.status_file)]
        if log:
            a += ["--log-path", str(self.log_path), "--log-max-size", "100000000", "--log-max-file", "2"]
        return a + [str(x) for x in extra]

    def status(self) -> dict:
        return json.loads(self.status_file.read_text())

    def wait_status(self, state="exited", timeout=30.0, **fields) -> dict:
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            try:
                st = self.status()
                if st["state"] == state and all(st.get(k) == v for k, v in fields.items()):
                    return st
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.02)
        raise AssertionError(f"shim status never became {state} {fields}; last: {st}")

    def alive(self) -> bool:
        """protocol.hpp: the shim is alive exactly while shim.lock is locked."""
        with open(self.state_dir / "shim.lock", "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def wait_gone(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.alive():
            assert time.monotonic() < deadline, "shim still holds shim.lock"
            time.sleep(0.02)

    def log_entries(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def runtime(self, *args, check=True) -> subprocess.CompletedProcess:
        r = subprocess.run([bt.RUNTIME_PATH, "--root", str(self.env.runtime_root), *[str(a) for a in args]],
                           capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, f"runtime {args}: {r.stderr}"
        return r

    def runtime_status(self) -> str | None:
        r = self.runtime("state", self.id, check=False)
        return json.loads(r.stdout)["status"] if r.returncode == 0 else None


class ShimEnv:
    def __init__(self, tmp_path: Path, short_tmp: Path):
        self.tmp = tmp_path
        self.short = short_tmp  # state dirs: the attach socket path must fit in sun_path
        self.runtime_root = tmp_path / "runtime-root"
        self.runs: list[ShimRun] = []

    def new(self, bundle: bt.Bundle, state_dir: Path | None = None) -> ShimRun:
        cid = bt.new_id()
        state_dir = state_dir or self.short / cid
        state_dir.mkdir(parents=True)
        run = ShimRun(self, bundle, cid, state_dir)
        self.runs.append(run)
        return run

    def start(self, bundle: bt.Bundle, *extra, log=True, run: ShimRun | None = None) -> ShimRun:
        """Starts a shim; returns once the first process has exited and the sync line is read."""
        run = run or self.new(bundle)
        bundle.write()
        r, w = os.pipe()
        try:
            p = subprocess.Popen(run.args("--sync-fd", w, *extra, log=log), pass_fds=(w,),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        finally:
            os.close(w)
        # The process the engine starts exits at once (the shim lives on in its child).
        p.wait(timeout=30)
        run.first_rc = p.returncode
        run.first_stderr = p.stderr.read().decode()
        p.stdout.close()
        p.stderr.close()
        with os.fdopen(r, "rb") as f:
            data = f.read()
        lines = data.decode().splitlines()
        assert len(lines) == 1, f"sync pipe: {data!r}; stderr: {run.first_stderr}"
        run.sync = json.loads(lines[0])
        run.shim_pid = run.sync.get("shim_pid", 0)
        return run

    def cleanup(self):
        for run in self.runs:
            if run.shim_pid > 0:
                try:
                    os.kill(run.shim_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for run in self.runs:
            st = subprocess.run([bt.RUNTIME_PATH, "--root", str(self.runtime_root), "state", run.id],
                                capture_output=True, text=True)
            if st.returncode == 0:
                subprocess.run([bt.RUNTIME_PATH, "--root", str(self.runtime_root), "delete", "--force", run.id],
                               capture_output=True, timeout=60)
            bt.remove_cgroup_dirs(run.id)


@pytest.fixture(scope="module", autouse=True)
def _shim_built():
    if not (SHIM_PATH.is_file() and os.access(SHIM_PATH, os.X_OK)):
        pytest.skip(f"berth-shim not built: {SHIM_PATH}")


@pytest.fixture
def shims(tmp_path, short_tmp):
    env = ShimEnv(tmp_path, short_tmp)
    yield env
    env.cleanup()


# --- start, log, status, exit -------------------------------------------------------------------

def test_output_goes_to_log_and_status_records_exit(shims, bundle):
    bundle.sh("echo out1; echo err1 >&2; echo out2")
    run = shims.start(bundle)
    assert run.first_rc == 0
    assert run.sync["ok"] is True
    assert run.sync["pid"] > 0 and run.shim_pid > 0 and run.shim_pid != run.sync["pid"]
    st = run.wait_status("exited")
    assert st["exit_code"] == 0
    assert st["shim_pid"] == run.shim_pid
    assert st["restart_count"] == 0 and st["oom_killed"] is False and st["log_dropped"] == 0
    assert st["error"] == ""
    assert RFC3339NANO.match(st["started_at"]), st
    assert RFC3339NANO.match(st["finished_at"]), st
    assert st["started_at"] <= st["finished_at"]
    run.wait_gone()
    entries = run.log_entries()
    by_stream = {s: [e["log"] for e in entries if e["stream"] == s] for s in ("stdout", "stderr")}
    assert by_stream == {"stdout": ["out1\n", "out2\n"], "stderr": ["err1\n"]}
    for e in entries:
        assert set(e) == {"log", "stream", "time"}
        assert RFC3339NANO.match(e["time"]), e
    # after the final exit: runtime state deleted, attach socket removed
    assert run.runtime_status() is None
    assert not run.attach_path.exists()
    assert not (run.state_dir / "status.json.tmp").exists()


def test_exit_code(shims, bundle):
    bundle.sh("exit 3")
    run = shims.start(bundle)
    assert run.wait_status("exited")["exit_code"] == 3


def test_log_rotation_flags(shims, bundle):
    bundle.sh("i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done")
    run = shims.new(bundle)
    shims.start(bundle, "--log-path", run.log_path, "--log-max-size", "2000", "--log-max-file", "2",
                log=False, run=run)
    run.wait_status("exited")
    run.wait_gone()
    rotated = Path(str(run.log_path) + ".1")
    assert rotated.exists() and not Path(str(run.log_path) + ".2").exists()
    assert 0 < run.log_path.stat().st_size <= 2000 and rotated.stat().st_size <= 2000
    last = [json.loads(line)["log"] for line in run.log_path.read_text().splitlines()]
    assert last[-1] == "line-199\n"


def test_killed_by_signal_is_128_plus_signal(shims, bundle):
    bundle.set_args("sleep", "1000")
    run = shims.start(bundle, log=False)
    st = run.wait_status("running")
    assert st["pid"] == run.sync["pid"]
    assert st["finished_at"] == "0001-01-01T00:00:00Z"
    assert run.runtime_status() == "running"
    run.runtime("kill", run.id, "KILL")
    assert run.wait_status("exited")["exit_code"] == 137
    run.wait_gone()


@pytest.mark.parametrize("args,code,needle", [
    (["/nonexistent"], 127, "/nonexistent"),
    (["no-such-command"], 127, "not found"),
    (["/etc/passwd"], 126, "ermission denied"),
])
def test_command_that_cannot_run(shims, bundle, args, code, needle):
    # berth-runtime resolves the executable in `create` (runc does too), so `create` fails.
    bundle.set_args(*args)
    run = shims.start(bundle)
    assert run.sync["ok"] is False
    assert run.sync["exit_code"] == code
    assert needle in run.sync["error"]
    assert "\n" not in run.sync["error"] and not run.sync["error"].startswith("berth:")
    run.wait_gone()
    st = run.status()
    assert st["state"] == "exited" and st["exit_code"] == code and needle in st["error"]
    assert run.runtime_status() is None
    assert not run.attach_path.exists()


def test_failure_before_detaching_goes_to_stderr(shims, bundle):
    bundle.set_args("true")
    run = shims.new(bundle)
    r, w = os.pipe()
    p = subprocess.run(run.args("--sync-fd", w, "--restart", "sometimes"), pass_fds=(w,),
                       capture_output=True, text=True, timeout=30)
    os.close(w)
    with os.fdopen(r) as f:
        sync = json.loads(f.read())
    assert p.returncode != 0
    assert "sometimes" in p.stderr
    assert sync["ok"] is False and sync["exit_code"] == 125


def test_second_shim_for_the_same_state_dir_is_refused(shims, bundle):
    bundle.set_args("sleep", "1000")
    run = shims.start(bundle, log=False)
    assert run.sync["ok"]
    r, w = os.pipe()
    p = subprocess.run(run.args("--sync-fd", w, log=False), pass_fds=(w,), capture_output=True, text=True,
                       timeout=30)
    os.close(w)
    os.close(r)
    assert p.returncode != 0 and "already running" in p.stderr
    assert run.alive()
    run.runtime("kill", run.id, "KILL")
    run.wait_status("exited")


# --- attach ---------------------------------------------------------------------------------------

def test_wait_attach_misses_no_output(shims, bundle):
    bundle.sh("echo first; echo to-stderr >&2; echo second; exit 5")
    run = shims.start(bundle, "--wait-attach")
    assert run.sync["ok"] is True and run.sync["created"] is True and run.sync["pid"] > 0
    assert run.status()["state"] == "created"
    assert run.runtime_status() == "created"
    client = Attach(run.attach_path)
    out, exit_frame = client.until_exit()
    assert out[STDOUT] == b"first\nsecond\n"
    assert out[STDERR] == b"to-stderr\n"
    assert exit_frame == {"exit_code": 5}
    assert client.read_frame() is None  # the shim closes the connection after the final exit
    client.close()
    assert run.wait_status("exited")["exit_code"] == 5


def test_init_runs_from_a_read_only_view_of_the_runtime(shims, bundle):
    """Before start, the container's pid 1 is still the runtime's binary (CVE-2019-5736): the shim
    execs the runtime from a read-only bind mount, so that binary cannot be written through
    /proc/PID/exe, and the runtime need not re-exec itself to get there."""
    bundle.sh("echo ran")
    run = shims.start(bundle, "--wait-attach")
    pid = run.sync["pid"]
    exe = f"/proc/{pid}/exe"
    assert os.path.samefile(exe, bt.RUNTIME_PATH)
    assert os.statvfs(exe).f_flag & os.ST_RDONLY, "the init's binary is writable"
    with pytest.raises(OSError) as e:
        open(exe, "ab").close()
    assert e.value.errno in (errno.EROFS, errno.ETXTBSY), e.value
    client = Attach(run.attach_path)
    out, exit_frame = client.until_exit()
    client.close()
    assert out[STDOUT] == b"ran\n" and exit_frame == {"exit_code": 0}


def test_container_killed_before_start_is_not_restarted(shims, bundle):
    bundle.set_args("echo", "never")
    run = shims.start(bundle, "--wait-attach", "--restart", "always")
    assert run.sync["created"] is True
    run.runtime("kill", run.id, "KILL")
    st = run.wait_status("exited")
    assert st["exit_code"] == 137 and st["restart_count"] == 0
    assert st["started_at"] == "0001-01-01T00:00:00Z"
    run.wait_gone()
    assert run.log_entries() == []


def test_attach_selects_streams(shims, bundle):
    bundle.sh("echo o; echo e >&2")
    run = shims.start(bundle, "--wait-attach")
    client = Attach(run.attach_path, stdout=False, stderr=True)
    out, exit_frame = client.until_exit()
    assert out == {STDOUT: b"", STDERR: b"e\n"}
    assert exit_frame["exit_code"] == 0
    client.close()


def test_attach_to_running_container(shims, bundle):
    bundle.sh("i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.05; done")
    run = shims.start(bundle, log=False)
    client = Attach(run.attach_path)
    client.read_until(b"tick", STDOUT)
    run.runtime("kill", run.id, "KILL")
    _, exit_frame = client.until_exit()
    assert exit_frame == {"exit_code": 137}
    client.close()


def test_stdin_and_close_stdin(shims, bundle):
    bundle.set_args("cat")
    run = shims.start(bundle, "--stdin")
    client = Attach(run.attach_path, stdin=True)
    client.send(STDIN, b"hello ")
    client.send(STDIN, b"world\n")
    assert client.read_until(b"world\n") == b"hello world\n"
    client.send(STDIN, b"x" * 200000 + b"\n")
    client.send(CLOSE_STDIN)
    out, exit_frame = client.until_exit()
    assert len(out[STDOUT]) == 200001
    assert exit_frame == {"exit_code": 0}
    client.close()
    st = run.wait_status("exited")
    logged = "".join(e["log"] for e in run.log_entries())
    if st["log_dropped"] == 0:
        assert logged == "hello world\n" + "x" * 200000 + "\n"
    else:  # a writer starved of CPU for 250 ms: dropped, and counted
        assert len(logged) + st["log_dropped"] == 200013


def test_without_stdin_the_container_reads_dev_null(shims, bundle):
    bundle.sh("cat; echo eof-seen")
    run = shims.start(bundle, "--wait-attach")
    client = Attach(run.attach_path, stdin=True)
    client.send(STDIN, b"ignored\n")
    out, exit_frame = client.until_exit()
    assert out[STDOUT] == b"eof-seen\n" and exit_frame["exit_code"] == 0
    client.close()


def test_stdin_once_closes_stdin_when_the_client_leaves(shims, bundle):
    bundle.sh("cat; echo done")
    run = shims.start(bundle, "--stdin", "--stdin-once")
    client = Attach(run.attach_path, stdin=True)
    client.send(STDIN, b"abc\n")
    client.read_until(b"abc\n")
    client.close()
    run.wait_status("exited", exit_code=0)
    assert [e["log"] for e in run.log_entries()] == ["abc\n", "done\n"]


def test_slow_attach_client_does_not_block_the_container(shims, bundle):
    # 4 MB of output to a client that never reads: the shim disconnects it, the container finishes.
    bundle.sh("i=0; while [ $i -lt 4000 ]; do head -c 1000 /dev/zero | tr '\\0' x; echo; i=$((i+1)); done")
    run = shims.start(bundle, "--wait-attach")
    client = Attach(run.attach_path)
    st = run.wait_status("exited", timeout=60)
    assert st["exit_code"] == 0
    logged = sum(len(e["log"]) for e in run.log_entries())
    assert logged + st["log_dropped"] == 4000 * 1001
    client.close()


# --- tty --------------------------------------------------------------------------------------------

def test_tty_output_and_resize(shims, bundle):
    bundle.process["terminal"] = True
    bundle.sh("echo hello-tty; tty; stty size")
    run = shims.start(bundle, "--tty", "--wait-attach")
    assert run.sync["ok"] is True
    resize = frame(RESIZE, json.dumps({"rows": 40, "cols": 100}).encode())
    client = Attach(run.attach_path, extra=resize)
    out, exit_frame = client.until_exit()
    text = out[STDOUT].decode().replace("\r\n", "\n")
    assert text == "hello-tty\n/dev/pts/0\n40 100\n"
    assert out[STDERR] == b""
    assert exit_frame == {"exit_code": 0}
    client.close()
    run.wait_status("exited")
    assert {e["stream"] for e in run.log_entries()} == {"stdout"}


def test_tty_output_before_exit_is_not_lost(shims, bundle):
    # pty output reaches the master asynchronously: the exit frame must still come after all of it
    bundle.process["terminal"] = True
    bundle.sh("seq 1 3000")
    run = shims.start(bundle, "--tty", "--wait-attach")
    client = Attach(run.attach_path)
    out, exit_frame = client.until_exit()
    assert out[STDOUT].decode().replace("\r\n", "\n") == "".join(f"{i}\n" for i in range(1, 3001))
    assert exit_frame == {"exit_code": 0}
    client.close()


def test_long_state_dir_path(shims, bundle, tmp_path):
    # attach.sock and console.sock past sun_path's 108 bytes: reached through /proc/.../fd/N
    state_dir = tmp_path / ("d" * 60) / ("e" * 60)
    run = shims.new(bundle, state_dir=state_dir)
    assert len(str(run.attach_path)) > 108
    bundle.process["terminal"] = True
    bundle.sh("echo long-path")
    shims.start(bundle, "--tty", "--wait-attach", run=run)
    assert run.sync["ok"] is True, run.sync
    dir_fd = os.open(state_dir, os.O_PATH)
    try:
        client = Attach(Path(f"/proc/self/fd/{dir_fd}/attach.sock"))
    finally:
        os.close(dir_fd)
    out, exit_frame = client.until_exit()
    assert out[STDOUT] == b"long-path\r\n" and exit_frame == {"exit_code": 0}
    client.close()
    run.wait_gone()
    assert not run.attach_path.exists()


def test_tty_resize_while_running_and_stdin(shims, bundle):
    bundle.process["terminal"] = True
    bundle.sh("read line; stty size; echo got-$line")
    run = shims.start(bundle, "--tty", "--stdin")
    client = Attach(run.attach_path, stdin=True)
    client.send(RESIZE, json.dumps({"rows": 33, "cols": 77}).encode())
    client.send(STDIN, b"abc\r")
    out, exit_frame = client.until_exit()
    text = out[STDOUT].decode().replace("\r\n", "\n")
    assert "33 77\ngot-abc\n" in text
    assert exit_frame == {"exit_code": 0}
    client.close()


# --- restart policy -----------------------------------------------------------------------------

def test_restart_on_failure_limit(shims, bundle):
    bundle.sh("echo run; exit 3")
    run = shims.start(bundle, "--restart", "on-failure:2")
    st = run.wait_status("exited", timeout=60)
    assert st["exit_code"] == 3 and st["restart_count"] == 2
    run.wait_gone()
    assert [e["log"] for e in run.log_entries()] == ["run\n"] * 3
    assert run.runtime_status() is None


def test_restart_on_failure_stops_after_success(shims, bundle):
    # the first run fails, the second succeeds: no third run
    bundle.sh("if [ -e /tmp/once ]; then echo second; exit 0; fi; touch /tmp/once; echo first; exit 1")
    run = shims.start(bundle, "--restart", "on-failure")
    st = run.wait_status("exited", timeout=60)
    assert st["exit_code"] == 0 and st["restart_count"] == 1
    assert [e["log"] for e in run.log_entries()] == ["first\n", "second\n"]


def test_restart_keeps_attach_clients(shims, bundle):
    bundle.sh("echo run; exit 1")
    run = shims.start(bundle, "--restart", "on-failure:1", "--wait-attach")
    client = Attach(run.attach_path)
    out1, exit1 = client.until_exit()
    out2, exit2 = client.until_exit()
    assert (out1[STDOUT], exit1, out2[STDOUT], exit2) == (b"run\n", {"exit_code": 1}, b"run\n", {"exit_code": 1})
    assert client.read_frame() is None
    client.close()


def test_stop_file_suppresses_restart(shims, bundle):
    bundle.set_args("sleep", "1000")
    run = shims.start(bundle, "--restart", "always", log=False)
    first_pid = run.wait_status("running")["pid"]
    (run.state_dir / "stop").touch()  # what the engine does before stop/kill/rm
    run.runtime("kill", run.id, "KILL")
    st = run.wait_status("exited")
    assert st["exit_code"] == 137 and st["restart_count"] == 0
    run.wait_gone()
    assert first_pid > 0


def test_restart_always_restarts_until_stopped(shims, bundle):
    bundle.set_args("sleep", "1000")
    run = shims.start(bundle, "--restart", "always", log=False)
    first_pid = run.wait_status("running")["pid"]
    run.runtime("kill", run.id, "KILL")
    st = run.wait_status("running", restart_count=1)
    assert st["pid"] != first_pid and st["exit_code"] == 0  # docker: 0 while running
    (run.state_dir / "stop").touch()
    run.runtime("kill", run.id, "KILL")
    assert run.wait_status("exited")["restart_count"] == 1


def test_stop_file_during_backoff_ends_the_shim(shims, bundle):
    # exits at once, so the back-off grows; the stop file ends the wait
    bundle.sh("exit 1")
    run = shims.start(bundle, "--restart", "always", log=False)
    run.wait_status("restarting", restart_count=4)
    (run.state_dir / "stop").touch()
    st = run.wait_status("exited", timeout=10)
    assert st["exit_code"] == 1
    run.wait_gone(timeout=10)


# --- exit command, detaching, resources -------------------------------------------------------

def test_exit_command_runs_after_the_final_exit(shims, bundle, tmp_path):
    marker = tmp_path / "exit-command.out"
    bundle.sh("exit 4")
    run = shims.new(bundle)
    # Records its arguments, the status it finds and whether the shim's lock was already free.
    script = (f'st=$(cat {run.status_file}); '
              f'if flock -n -s {run.state_dir}/shim.lock true; then lock=free; else lock=held; fi; '
              f'echo "$0 $1|$lock|$st" > {marker}')
    shims.start(bundle, "--exit-command", "/bin/sh", "--exit-arg", "-c", "--exit-arg", script,
                "--exit-arg", "rm", "--exit-arg", run.id, run=run)
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text().endswith("\n"):
        assert time.monotonic() < deadline, "the exit command did not run"
        time.sleep(0.02)
    args, lock, status = marker.read_text().strip().split("|", 2)
    assert args == f"rm {run.id}"
    assert json.loads(status)["state"] == "exited" and json.loads(status)["exit_code"] == 4
    if shutil.which("flock"):
        assert lock == "free"


def holders_of(path: Path) -> list[int]:
    """Pids of processes with an open fd on path (also once it is unlinked)."""
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        if any(l == str(path) or l == f"{path} (deleted)" for l in links):
            pids.append(int(fd_dir.parent.name))
    return pids


def wait_pid_gone(pid: int, timeout=30.0):
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text():
        assert time.monotonic() < deadline, f"process {pid} still there"
        time.sleep(0.02)


@pytest.mark.parametrize("claimer_removes", [True, False])
def test_exit_command_defers_to_a_removal_claim(shims, bundle, tmp_path, claimer_removes):
    # protocol.hpp "Exit command": while a client holds the claim file's exclusive lock the exit
    # command waits; if the file is gone when the lock is released, it is skipped, else it runs.
    marker = tmp_path / "exit-command.out"
    claim = tmp_path / "removal.claim"
    bundle.sh("exit 0")
    run = shims.new(bundle)
    with open(claim, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        shims.start(bundle, "--exit-command", "/bin/sh", "--exit-arg", "-c", "--exit-arg", f"echo ran > {marker}",
                    "--removal-claim", str(claim), run=run)
        run.wait_gone()
        deadline = time.monotonic() + 30
        while not (waiting := [p for p in holders_of(claim) if p != os.getpid()]):
            assert time.monotonic() < deadline, "no exit command waiting on the claim"
            time.sleep(0.02)
        assert not marker.exists()  # it waits while the claim is held
        if claimer_removes:
            claim.unlink()
    for pid in waiting:
        wait_pid_gone(pid)
    if claimer_removes:
        assert not marker.exists()
    else:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the exit command did not run after the claim was released"
            time.sleep(0.02)
        assert marker.read_text() == "ran\n"


def test_killing_the_launching_process_leaves_the_container_running(shims, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    run = shims.new(bundle)
    bundle.write()
    sync = tmp_path / "sync.out"
    # A stand-in for the engine: starts the shim and lingers; its whole process group is killed.
    cmd = " ".join(f"'{a}'" for a in run.args("--sync-fd", "3", log=False))
    engine = subprocess.Popen(["sh", "-c", f"{cmd} 3>{sync}; sleep 1000"], start_new_session=True)
    deadline = time.monotonic() + 30
    while not sync.exists() or not sync.read_text().endswith("\n"):
        assert time.monotonic() < deadline, "no sync line"
        time.sleep(0.02)
    info = json.loads(sync.read_text())
    run.shim_pid = info["shim_pid"]
    assert info["ok"]
    os.killpg(engine.pid, signal.SIGKILL)
    engine.wait()
    os.kill(run.shim_pid, signal.SIGHUP)  # a closing terminal's hangup is ignored too
    time.sleep(0.3)
    assert run.alive()
    assert run.runtime_status() == "running"
    assert run.status()["state"] == "running"
    # the shim is in its own session, and the container's parent
    assert os.getsid(run.shim_pid) == run.shim_pid
    ppid = int(bt.proc_status_field(Path(f"/proc/{info['pid']}/status").read_text(), "PPid"))
    assert ppid == run.shim_pid
    run.runtime("kill", run.id, "KILL")
    assert run.wait_status("exited")["exit_code"] == 137


@pytest.mark.skipif(sanitized_build(), reason="ASan's shadow memory is not the shim's")
def test_shim_resident_memory(shims, bundle):
    bundle.set_args("sleep", "1000")
    run = shims.start(bundle)
    run.wait_status("running")
    time.sleep(0.2)
    rss_kb = int(bt.proc_status_field(Path(f"/proc/{run.shim_pid}/status").read_text(), "VmRSS").split()[0])
    print(f"berth-shim VmRSS: {rss_kb} kB")
    assert rss_kb < 1536, f"berth-shim uses {rss_kb} kB"
    run.runtime("kill", run.id, "KILL")
    run.wait_status("exited")

