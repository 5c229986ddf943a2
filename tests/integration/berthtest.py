"""Shared helpers for the `berth runtime` integration tests.

Everything here is plain stdlib. conftest.py builds the fixtures on top of
these; test modules import the helpers they need directly (`from berthtest
import ...`).
"""
from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("BERTH_BUILD_DIR", str(REPO_ROOT / "build")))
RUNTIME_PATH = os.environ.get("BERTH_RUNTIME", str(BUILD_DIR / "src" / "cli" / "berth-runtime"))
FIXTURES = REPO_ROOT / "tests" / "fixtures"
SHARED_SPECS = REPO_ROOT.parent / "shared" / "specs"

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

DEFAULT_MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]

DEFAULT_READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def cap_mask(names) -> int:
    mask = 0
    for n in names:
        mask |= 1 << CAP_NUMBERS[n]
    return mask


def default_spec(args=None, terminal=False) -> dict:
    """A runc-like default config.json, built here so the tests don't depend on `spec`."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args) if args else ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPS),
                "effective": list(DEFAULT_CAPS),
                "permitted": list(DEFAULT_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "berth-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
        },
    }


def new_id() -> str:
    return "bt-" + secrets.token_hex(6)


class Bundle:
    """A bundle directory: rootfs/ (a copy of the busybox fixture) and config.json.

    Tests edit `config` (a dict) freely; the runtime helpers write it to
    config.json before every create/run.
    """

    def __init__(self, path: Path, template: Path | None):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.rootfs = self.path / "rootfs"
        if template is not None:
            subprocess.run(["cp", "-a", str(template), str(self.rootfs)], check=True)
        self.config = default_spec()

    @property
    def process(self) -> dict:
        return self.config["process"]

    @property
    def linux(self) -> dict:
        return self.config["linux"]

    def set_args(self, *args):
        self.config["process"]["args"] = list(args)

    def sh(self, script: str):
        """Run `sh -c SCRIPT` as the container process."""
        self.set_args("sh", "-c", script)

    def add_mount(self, **mount):
        self.config["mounts"].append(mount)

    def namespaces(self) -> list[str]:
        return [n["type"] for n in self.config["linux"]["namespaces"]]

    def remove_namespace(self, ns: str):
        self.config["linux"]["namespaces"] = [n for n in self.config["linux"]["namespaces"] if n["type"] != ns]

    def add_namespace(self, ns: str, path: str | None = None):
        self.remove_namespace(ns)
        entry = {"type": ns}
        if path:
            entry["path"] = path
        self.config["linux"]["namespaces"].append(entry)

    def write(self):
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))

    def copy_config(self) -> dict:
        return copy.deepcopy(self.config)


class Runtime:
    """Wraps the runtime binary with a private `--root` state directory."""

    def __init__(self, binary: str, root: Path, workdir: Path):
        self.binary = binary
        self.root = Path(root)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ids: list[str] = []
        self._ncalls = 0

    # --- raw invocation -------------------------------------------------
    def cmd(self, args) -> list[str]:
        return [self.binary, "--root", str(self.root)] + [str(a) for a in args]

    def run(self, args, *, input=None, timeout=60, stdout_path=None, stderr_path=None,
            pass_fds=(), cwd=None, env=None, preexec_fn=None) -> subprocess.CompletedProcess:
        """Runs `<runtime> --root R ARGS...`.

        Output goes to files, never pipes: a created container inherits the
        runtime's stdio and would otherwise hold a pipe open long after the
        runtime exited. Returns a CompletedProcess with text stdout/stderr.
        """
        self._ncalls += 1
        n = self._ncalls
        out_p = Path(stdout_path) if stdout_path else self.workdir / f"call{n}.out"
        err_p = Path(stderr_path) if stderr_path else self.workdir / f"call{n}.err"
        with open(out_p, "wb") as out, open(err_p, "wb") as err:
            stdin = subprocess.DEVNULL if input is None else subprocess.PIPE
            p = subprocess.Popen(self.cmd(args), stdin=stdin, stdout=out, stderr=err,
                                 pass_fds=pass_fds, cwd=cwd, env=env, preexec_fn=preexec_fn)
            try:
                p.communicate(input=input.encode() if isinstance(input, str) else input, timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError(f"runtime timed out after {timeout}s: {self.cmd(args)}")
        return subprocess.CompletedProcess(
            self.cmd(args), p.returncode,
            out_p.read_bytes().decode(errors="replace"),
            err_p.read_bytes().decode(errors="replace"),
        )

    def ok(self, args, **kw) -> subprocess.CompletedProcess:
        r = self.run(args, **kw)
        assert r.returncode == 0, f"{r.args} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        return r

    # --- container helpers ----------------------------------------------
    def new_id(self) -> str:
        cid = new_id()
        self.ids.append(cid)
        return cid

    def out_path(self, cid) -> Path:
        return self.workdir / f"{cid}.stdout"

    def err_path(self, cid) -> Path:
        return self.workdir / f"{cid}.stderr"

    def create(self, bundle: Bundle, cid=None, extra=(), check=True, **kw):
        """`create --bundle B [EXTRA] ID`; the container's stdio go to per-id files."""
        cid = cid or self.new_id()
        if cid not in self.ids:
            self.ids.append(cid)
        bundle.write()
        r = self.run(["create", "--bundle", bundle.path, *extra, cid],
                     stdout_path=self.out_path(cid), stderr_path=self.err_path(cid), **kw)
        if check:
            assert r.returncode == 0, f"create failed ({r.returncode}): {r.stderr}"
        return cid if check else r

    def start(self, cid, check=True):
        r = self.run(["start", cid])
        if check:
            assert r.returncode == 0, f"start failed ({r.returncode}): {r.stderr}"
        return r

    def create_start(self, bundle: Bundle, cid=None, extra=()):
        cid = self.create(bundle, cid, extra)
        self.start(cid)
        return cid

    def run_container(self, bundle: Bundle, cid=None, extra=(), timeout=60, **kw):
        """Foreground `run --bundle B ID`; returns the CompletedProcess (stdout = the container's)."""
        cid = cid or self.new_id()
        if cid not in self.ids:
            self.ids.append(cid)
        bundle.write()
        r = self.run(["run", "--bundle", bundle.path, *extra, cid], timeout=timeout, **kw)
        r.cid = cid
        return r

    def state(self, cid) -> dict:
        r = self.ok(["state", cid])
        return json.loads(r.stdout)

    def status(self, cid) -> str:
        return self.state(cid)["status"]

    def wait_status(self, cid, status="stopped", timeout=30.0) -> dict:
        """Polls `state` until the container has STATUS."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == status:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"container {cid} still {st['status']!r}, wanted {status!r}")
            time.sleep(0.02)

    def wait_output(self, cid, text: str, timeout=30.0) -> str:
        """Waits until the container's stdout (from create/start) contains TEXT; returns it all."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.output(cid)
            if text in out:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"container {cid} never printed {text!r}; stdout so far: {out!r}")
            time.sleep(0.01)

    def wait_pids(self, cid, count: int, timeout=30.0) -> list[int]:
        """Waits until `ps --format json` lists COUNT processes; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            pids = json.loads(self.ok(["ps", "--format", "json", cid]).stdout)
            if len(pids) >= count:
                return pids
            if time.monotonic() > deadline:
                raise AssertionError(f"container {cid} has {pids}, wanted {count} processes")
            time.sleep(0.01)

    def output(self, cid) -> str:
        return self.out_path(cid).read_bytes().decode(errors="replace")

    def errors(self, cid) -> str:
        return self.err_path(cid).read_bytes().decode(errors="replace")

    def run_to_completion(self, bundle: Bundle, cid=None, extra=()):
        """create + start + wait for stopped; returns (cid, stdout, stderr)."""
        cid = self.create_start(bundle, cid, extra)
        self.wait_status(cid, "stopped")
        return cid, self.output(cid), self.errors(cid)

    def exec(self, cid, *args, extra=(), timeout=60, **kw):
        return self.run(["exec", *extra, cid, *args], timeout=timeout, **kw)

    def container_dirs(self) -> list[str]:
        if not self.root.exists():
            return []
        # Dot-directories are the runtime's own (its seccomp cache), never a container.
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def cleanup(self) -> list[str]:
        """delete --force everything this test made; returns a list of problems."""
        problems = []
        for cid in sorted(set(self.ids) | set(self.container_dirs())):
            st = self.run(["state", cid], timeout=30)
            if st.returncode != 0 and cid not in self.container_dirs():
                continue
            r = self.run(["delete", "--force", cid], timeout=30)
            if r.returncode != 0:
                problems.append(f"delete --force {cid} failed ({r.returncode}): {r.stderr.strip()}")
                try:
                    pid = json.loads(st.stdout).get("pid", 0)
                    if pid > 0:
                        os.kill(pid, signal.SIGKILL)
                except (ValueError, OSError):
                    pass
        left = self.container_dirs()
        if left:
            problems.append(f"container dirs left in --root: {left}")
        # Don't let a failing runtime litter the host: remove (empty) cgroup directories named
        # after this test's containers. Tests that care assert on them before teardown.
        for cid in self.ids:
            remove_cgroup_dirs(cid)
        return problems


# --- host-side inspection -------------------------------------------------

def host_mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


def mounts_mentioning(text: str) -> list[str]:
    return [line for line in host_mountinfo().splitlines() if text in line]


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_dirs_named(name: str, max_depth: int = 5) -> list[str]:
    """Every cgroup directory (any v1 hierarchy or the unified one) whose name contains `name`."""
    found = []
    if not CGROUP_ROOT.exists():
        return found
    for top, dirs, _files in os.walk(CGROUP_ROOT):
        depth = Path(top).relative_to(CGROUP_ROOT).parts
        if len(depth) >= max_depth:
            dirs[:] = []
        for d in dirs:
            if name in d:
                found.append(os.path.join(top, d))
    return found


def remove_cgroup_dirs(name: str):
    """rmdir (deepest first) every cgroup directory whose name contains NAME; busy ones stay."""
    for d in sorted(cgroup_dirs_named(name), key=len, reverse=True):
        subdirs = [top for top, _dirs, _files in os.walk(d)]
        for sub in sorted(subdirs, key=len, reverse=True):
            try:
                os.rmdir(sub)
            except OSError:
                pass


def procs_rooted_in(path: Path) -> list[int]:
    """PIDs of processes whose root or cwd lies inside `path` (leftover container processes)."""
    path = str(Path(path).resolve())
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for link in ("root", "cwd"):
            try:
                target = os.readlink(f"/proc/{entry}/{link}")
            except OSError:
                continue
            if target == path or target.startswith(path + "/"):
                pids.append(int(entry))
                break
    return pids


def pid_cgroups(pid: int) -> dict[str, str]:
    """controller -> path from /proc/PID/cgroup ('' key for the unified hierarchy)."""
    result = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _hid, controllers, path = line.split(":", 2)
        if controllers == "":
            result[""] = path
        for c in controllers.split(","):
            result[c] = path
    return result


def cgroup_v1_dir(pid: int, controller: str) -> Path:
    path = pid_cgroups(pid)[controller]
    return CGROUP_ROOT / controller / path.lstrip("/")


def proc_status_field(text: str, field: str) -> str:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(field)


def runtime_name() -> str:
    return os.path.basename(os.path.realpath(RUNTIME_PATH))


def is_runc() -> bool:
    return runtime_name() == "runc"


def which(name: str) -> str | None:
    return shutil.which(name)


class ConsoleReceiver:
    """Runs tests/tools/recvtty on a fresh socket; `.path` is the socket for --console-socket."""

    def __init__(self, recvtty: str, directory: Path, name: str = "console"):
        self.path = Path(directory) / f"{name}.sock"
        self.out = Path(directory) / f"{name}.out"
        self.proc = subprocess.Popen([recvtty, str(self.path), str(self.out)])
        deadline = time.monotonic() + 10
        while not self.path.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"recvtty exited early with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError("recvtty did not create its socket")
            time.sleep(0.005)

    def wait(self, timeout=30) -> str:
        """Waits for recvtty to see the terminal close; returns everything read (\\r\\n -> \\n)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError("recvtty did not finish: the terminal was never closed")
        assert rc == 0, f"recvtty exited {rc}"
        return self.out.read_bytes().decode(errors="replace").replace("\r\n", "\n")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
