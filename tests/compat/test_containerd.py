"""containerd compatibility: drive an OCI runtime through Debian's containerd + ctr.

The module starts its own containerd (private root, state, socket, config and
runtime root in a temporary directory), imports a busybox OCI image that it
builds by hand, and runs containers with `ctr ... --runc-binary WRAPPER`, where
WRAPPER logs every call that containerd's runc shim (containerd-shim-runc-v2)
makes and then execs the runtime under test.

Environment:
  BERTH_RUNTIME           runtime under test (default: $BERTH_BUILD_DIR/src/cli/berth-runtime)
  BERTH_BUILD_DIR         build directory (default: <repo>/build)
  BERTH_RUNTIME_ARGS      extra global flags put before the shim's own arguments
                          (e.g. "--debug")
  BERTH_COMPAT_WRAP       "exec" (default): the wrapper logs then execs the runtime;
                          "trace": it runs the runtime as a child and also records
                          the exit status, the runtime's --log output and the
                          stdout of ps/state
  BERTH_COMPAT_TIMEOUT    seconds one ctr command may take (default 30)
  BERTH_COMPAT_LOG_DIR    if set, the runtime call log, containerd's log and the
                          config are copied there at the end of the module

Run as root:  /usr/bin/python3 -m pytest -v tests/compat/test_containerd.py
Validate the test itself against runc:  BERTH_RUNTIME=/usr/sbin/runc ...
crun 1.8 refuses every container on a hybrid cgroup host whose cgroup2 has a
controller ("cgroups in hybrid mode not supported"); run it in a private mount
namespace that hides the cgroup2 mount (the host is untouched):
  unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified &&
    BERTH_RUNTIME=/usr/bin/crun /usr/bin/python3 -m pytest tests/compat/test_containerd.py'
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import os
import pty
import secrets
import select
import shlex
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("BERTH_BUILD_DIR", REPO / "build"))
RUNTIME = os.environ.get("BERTH_RUNTIME", str(BUILD_DIR / "src" / "cli" / "berth-runtime"))
RUNTIME_ARGS = shlex.split(os.environ.get("BERTH_RUNTIME_ARGS", ""))
WRAP_MODE = os.environ.get("BERTH_COMPAT_WRAP", "exec")
LOG_DIR = os.environ.get("BERTH_COMPAT_LOG_DIR")
FIXTURE_SCRIPT = REPO / "tests" / "fixtures" / "make-busybox-rootfs.sh"

IMAGE = "docker.io/library/berth-busybox:test"
CONTAINERD_RUN_DIR = Path("/run/containerd")  # shim sockets always go to .../s
TIMEOUT = float(os.environ.get("BERTH_COMPAT_TIMEOUT", "30"))  # seconds per ctr command


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin")


CONTAINERD = _which("containerd")
CTR = _which("ctr")
SHIM = _which("containerd-shim-runc-v2")


def _preconditions() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for name, path in (("containerd", CONTAINERD), ("ctr", CTR), ("containerd-shim-runc-v2", SHIM)):
        if not path:
            return f"{name} not installed (apt-get install containerd)"
    if not (os.path.isfile(RUNTIME) and os.access(RUNTIME, os.X_OK)):
        return f"runtime {RUNTIME} not built (set BERTH_RUNTIME or BERTH_BUILD_DIR)"
    return None


_why_skip = _preconditions()
if _why_skip and os.environ.get("BERTH_TEST_STRICT") == "1":
    # scripts/test sets BERTH_TEST_STRICT: a missing peer or binary fails the run.
    raise RuntimeError(f"containerd compat tests cannot run: {_why_skip}")
pytestmark = pytest.mark.skipif(_why_skip is not None, reason=_why_skip or "")


# --------------------------------------------------------------------------
# OCI image, built by hand from the busybox fixture rootfs

def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_oci_image_tar(rootfs: Path, out: Path, name: str = IMAGE) -> None:
    """Writes an OCI image layout tarball with one gzip layer holding rootfs."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for entry in sorted(dirnames + filenames):
                path = os.path.join(dirpath, entry)
                layer.add(path, arcname=os.path.relpath(path, rootfs), recursive=False)
    layer_tar = raw.getvalue()
    layer_gz = gzip.compress(layer_tar, mtime=0)

    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [_sha256(layer_tar)]},
        "history": [{"created_by": "berth tests/compat/test_containerd.py"}],
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha256(layer_gz), "size": len(layer_gz)}],
    }).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _sha256(manifest), "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
        }],
    }).encode()

    with tarfile.open(out, "w") as tar:
        def add(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", index)
        for blob in (config, manifest, layer_gz):
            add("blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob)


# --------------------------------------------------------------------------
# The --runc-binary wrapper: logs each call as one JSON line

WRAPPER = r'''#!/usr/bin/python3 -IS
import json, os, subprocess, sys, time
CFG = json.loads(%(cfg)r)
def fds():
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink("/proc/self/fd/" + name)
        except OSError:
            pass  # the directory fd listdir used
    return dict(sorted(out.items()))
def parent():
    try:
        with open("/proc/%%d/comm" %% os.getppid()) as f:
            return f.read().strip()
    except OSError:
        return "?"
def log_path(argv):
    for i, a in enumerate(argv):
        if a == "--log" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--log="):
            return a[6:]
    return None
def subcommand(argv):
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--root", "--log", "--log-format", "--criu", "--rootless", "--cgroup-manager"):
            skip = True
        elif not a.startswith("-"):
            return a
    return None
def write(rec):
    fd = os.open(CFG["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(rec) + "\n").encode())
    finally:
        os.close(fd)
argv = sys.argv[1:]
try:
    with open(CFG["mode_file"]) as f:
        mode = f.read().strip() or CFG["mode"]
except OSError:
    mode = CFG["mode"]
rec = {"t": time.time(), "pid": os.getpid(), "parent": parent(), "argv": argv,
       "cwd": os.getcwd(), "fds": fds(), "env": dict(os.environ), "mode": mode}
def slurp(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return "<%%s>" %% e
for i, a in enumerate(argv[:-1]):
    if a in ("--process", "-p"):
        rec["process_json"] = slurp(argv[i + 1])  # exec: the shim deletes it afterwards
    if a in ("--bundle", "-b") and subcommand(argv) == "create":
        rec["config_json"] = slurp(os.path.join(argv[i + 1], "config.json"))
cmd = [CFG["runtime"]] + CFG["extra"] + argv
if mode != "trace":
    write(rec)
    os.execv(cmd[0], cmd)
lp = log_path(argv)
try:
    start = os.path.getsize(lp) if lp else 0
except OSError:
    start = 0
capture = subcommand(argv) in ("ps", "state", "list", "features")
p = subprocess.run(cmd, close_fds=False, stdout=subprocess.PIPE if capture else None)
rec["rc"] = p.returncode
rec["elapsed"] = time.time() - rec["t"]
if capture:
    rec["stdout"] = p.stdout.decode(errors="replace")
    sys.stdout.buffer.write(p.stdout)
    sys.stdout.flush()
if lp:
    try:
        with open(lp, "rb") as f:
            f.seek(start)
            rec["log_added"] = f.read().decode(errors="replace")
    except OSError as e:
        rec["log_added"] = "<%%s>" %% e
write(rec)
sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)
'''


def render_calls(records: list[dict]) -> str:
    """Human-readable rendering of the wrapper's JSON lines."""
    out = []
    base_env: dict | None = None
    shown_config = False
    t0 = records[0]["t"] if records else 0.0
    for r in records:
        out.append(f"[+{r['t'] - t0:8.3f}s] runtime {shlex.join(r['argv'])}")
        fds = " ".join(f"{k}={v}" for k, v in r.get("fds", {}).items())
        out.append(f"    parent={r.get('parent')} cwd={r.get('cwd')}")
        out.append(f"    fds: {fds}")
        env = r.get("env", {})
        if base_env is None:
            base_env = env
            out.append("    env: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
        else:
            diff = {k: v for k, v in env.items() if base_env.get(k) != v}
            gone = [k for k in base_env if k not in env]
            if diff or gone:
                out.append("    env changes: " + " ".join(f"{k}={v}" for k, v in sorted(diff.items()))
                           + "".join(f" -{k}" for k in gone))
        if "process_json" in r:
            out.append("    --process file: " + json.dumps(r["process_json"], sort_keys=True))
        if "config_json" in r and not shown_config:
            shown_config = True
            out.append("    bundle config.json (first create only):\n"
                       + json.dumps(r["config_json"], indent=2, sort_keys=True))
        if "rc" in r:
            out.append(f"    rc={r['rc']} elapsed={r.get('elapsed', 0) * 1000:.1f}ms")
        if r.get("stdout"):
            out.append("    stdout: " + r["stdout"].strip().replace("\n", "\n            "))
        if r.get("log_added"):
            out.append("    --log file gained: " + r["log_added"].strip().replace("\n", "\n            "))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# Private containerd

def _mountinfo() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            points.append(mp)
    return points


def _cgroup_mounts() -> list[str]:
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                roots.append(left.split()[4])
    return roots


def _unmounted_v1_hierarchies() -> list[str]:
    """v1 hierarchies /proc/self/cgroup lists but nothing mounts (a hierarchy mounted once and
    unmounted lives on in the kernel): containerd's shim cannot load any task's cgroups then."""
    mounted = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            _, _, right = line.partition(" - ")
            fields = right.split()
            if fields and fields[0] == "cgroup":
                opts = set(fields[2].split(","))
                mounted.add(",".join(sorted(o for o in opts if o not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec"))))
    missing = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, _ = line.rstrip("\n").split(":", 2)
            if not controllers:
                continue
            wanted = set(controllers.split(","))
            if not any(wanted <= set(m.split(",")) for m in mounted):
                missing.append(controllers)
    return missing


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Containerd:
    def __init__(self) -> None:
        self.suffix = secrets.token_hex(4)
        self.ns = f"berthtest-{self.suffix}"
        self.dir = Path(tempfile.mkdtemp(prefix="berth-ctd-"))
        self.sock = str(self.dir / "containerd.sock")
        self.root = self.dir / "root"
        self.state = self.dir / "state"
        self.runc_root = self.dir / "runtime-root"     # passed as ctr --runc-root
        self.fifo_dir = self.dir / "fifo"
        self.tmp = self.dir / "t"                      # TMPDIR of containerd and shims
        self.config = self.dir / "config.toml"
        self.log = self.dir / "containerd.log"
        self.calls = self.dir / "runtime-calls.jsonl"
        self.mode_file = self.dir / "wrap-mode"
        self.wrapper = self.dir / "runtime-wrapper"
        self.proc: subprocess.Popen | None = None
        self.ids: set[str] = set()
        self.run_dirs_before = {p: p.exists() for p in (
            CONTAINERD_RUN_DIR, CONTAINERD_RUN_DIR / "s", CONTAINERD_RUN_DIR / "fifo",
            CONTAINERD_RUN_DIR / "runc")}
        for d in (self.runc_root, self.fifo_dir, self.tmp):
            d.mkdir(parents=True)

    # -- setup --------------------------------------------------------------
    def write_config(self) -> None:
        d = self.dir
        self.config.write_text(f'''version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{self.sock}"

[ttrpc]
  address = "{self.sock}.ttrpc"

[debug]
  level = "debug"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
  [plugins."io.containerd.runtime.v1.linux"]
    runtime_root = "{d}/v1-runtime-root"
    no_shim = false
''')

    def write_wrapper(self) -> None:
        cfg = json.dumps({"runtime": RUNTIME, "extra": RUNTIME_ARGS, "log": str(self.calls),
                          "mode_file": str(self.mode_file), "mode": WRAP_MODE})
        self.wrapper.write_text(WRAPPER % {"cfg": cfg})
        self.wrapper.chmod(0o755)

    def start(self) -> None:
        self.write_config()
        self.write_wrapper()
        env = dict(os.environ, TMPDIR=str(self.tmp))
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([CONTAINERD, "--config", str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True, close_fds=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if os.path.exists(self.sock):
                r = subprocess.run([CTR, "-a", self.sock, "version"], capture_output=True, timeout=10)
                if r.returncode == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"containerd socket {self.sock} not ready after 30 s:\n{self.log_tail()}")

    # -- helpers --------------------------------------------------------------
    def new_id(self, name: str) -> str:
        cid = f"{name}-{secrets.token_hex(3)}"
        self.ids.add(cid)
        return cid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no containerd log>"

    def call_records(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.calls.read_text().splitlines() if line.strip()]
        except OSError:
            return []

    def ctr(self, *args: str, check: bool = True, timeout: float = TIMEOUT,
            input: str | None = None) -> subprocess.CompletedProcess:
        mark = len(self.call_records())
        cmd = [CTR, "-a", self.sock, "-n", self.ns, *args]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                               input=input, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            if not check:
                return subprocess.CompletedProcess(cmd, -signal.SIGKILL, "", f"timed out after {timeout}s")
            raise AssertionError(f"timed out after {timeout}s: {shlex.join(cmd)}\n"
                                 + self.diagnostics(mark)) from e
        if check and r.returncode != 0:
            raise AssertionError(f"{shlex.join(cmd)} exited {r.returncode}\nstdout: {r.stdout}\n"
                                 f"stderr: {r.stderr}\n" + self.diagnostics(mark))
        return r

    def diagnostics(self, mark: int = 0) -> str:
        calls = self.call_records()[mark:]
        return ("runtime calls during the command (trace mode logs a call when it ends):\n"
                + (render_calls(calls) if calls else "  (none)\n")
                + "processes of this containerd (shims, runtime calls, containers):\n" + self.process_table()
                + "containerd log tail:\n" + self.log_tail())

    def process_table(self) -> str:
        rows = []
        for pid in sorted(self.our_processes()):
            try:
                wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            rows.append(f"  {pid:>7} {state} wchan={wchan:<24} {shlex.join(_cmdline(pid)[:-1] or ['?'])[:300]}")
        return "\n".join(rows) + "\n" if rows else "  (none)\n"

    def run_args(self) -> list[str]:
        return ["--fifo-dir", str(self.fifo_dir), "--runc-root", str(self.runc_root),
                "--runc-binary", str(self.wrapper)]

    def task_status(self, cid: str) -> tuple[int, str] | None:
        r = self.ctr("task", "ls")
        for line in r.stdout.splitlines()[1:]:
            f = line.split()
            if len(f) >= 3 and f[0] == cid:
                return int(f[1]), f[2]
        return None

    def wait_status(self, cid: str, want: str, timeout: float = 10) -> tuple[int, str] | None:
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.task_status(cid)
            if st and st[1] == want:
                return st
            time.sleep(0.1)
        return st

    def set_wrap_mode(self, mode: str | None) -> None:
        if mode is None:
            self.mode_file.unlink(missing_ok=True)
        else:
            self.mode_file.write_text(mode)

    # -- teardown -------------------------------------------------------------
    def remove_all_containers(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # A hung shim or runtime must not stall the teardown: short timeouts, and a
        # container whose shim stops answering is left to stop() and kill_leftovers().
        r = self.ctr("containers", "ls", "-q", check=False, timeout=10)
        for cid in r.stdout.split():
            self.ids.add(cid)
            st = self.ctr("task", "ls", check=False, timeout=10)
            if st.returncode != 0:
                return
            if f"{cid} " in st.stdout:
                steps = [("task", "resume", cid), ("task", "kill", "-a", "-s", "SIGKILL", cid)]
                if any(self.ctr(*a, check=False, timeout=10).returncode < 0 for a in steps):
                    continue
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    st = self.ctr("task", "ls", check=False, timeout=10)
                    if st.returncode != 0 or not any(line.split()[:1] == [cid] and "STOPPED" in line
                                                     for line in st.stdout.splitlines()):
                        time.sleep(0.1)
                        continue
                    break
                if self.ctr("task", "delete", "-f", cid, check=False, timeout=10).returncode < 0:
                    continue
            self.ctr("containers", "rm", cid, check=False, timeout=10)
        self.ctr("images", "rm", IMAGE, check=False, timeout=10)
        self.ctr("namespaces", "rm", self.ns, check=False, timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def our_processes(self) -> list[int]:
        """Shims started by our containerd, and processes of our containers."""
        own_pidns = os.readlink("/proc/self/ns/pid")
        task_pids: set[int] = set()
        task_dir = self.state / "io.containerd.runtime.v2.task" / self.ns
        if task_dir.is_dir():
            for pidfile in task_dir.glob("*/*.pid"):
                try:
                    task_pids.add(int(pidfile.read_text().strip()))
                except (OSError, ValueError):
                    pass
        found = []
        for pid in _pids():
            if pid == os.getpid():
                continue
            argv = _cmdline(pid)
            if argv and argv[0].endswith("containerd-shim-runc-v2") and self.sock in argv:
                found.append(pid)
                continue
            if any(str(self.dir) + "/" in a for a in argv):
                found.append(pid)  # runtime calls (--root/--bundle are in our dir), wrapper
                continue
            try:
                cg = Path(f"/proc/{pid}/cgroup").read_text()
                if f"/{self.ns}/" in cg:
                    found.append(pid)
                    continue
                if pid in task_pids and os.readlink(f"/proc/{pid}/ns/pid") != own_pidns:
                    found.append(pid)
            except OSError:
                pass
        return found

    def kill_leftovers(self) -> None:
        for _ in range(50):
            pids = [p for p in self.our_processes() if _alive(p)]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def remove_cgroups(self) -> None:
        for mount in _cgroup_mounts():
            top = Path(mount) / self.ns
            if not top.is_dir():
                continue
            dirs = sorted((Path(dp) for dp, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
            for d in dirs:
                for f, v in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                    try:
                        (d / f).write_text(v)
                    except OSError:
                        pass
                for _ in range(50):
                    try:
                        d.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)

    def unmount_all(self) -> None:
        prefix = str(self.dir) + "/"
        for _ in range(5):
            points = [p for p in _mountinfo() if p.startswith(prefix) or p == str(self.dir)]
            if not points:
                return
            for p in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
                subprocess.run(["umount", "-l", p], capture_output=True)

    def remove_run_dirs(self) -> None:
        sdir = CONTAINERD_RUN_DIR / "s"
        for cid in self.ids:
            h = hashlib.sha256(os.path.join(self.sock, self.ns, cid).encode()).hexdigest()
            try:
                (sdir / h).unlink()
            except OSError:
                pass
        shutil.rmtree(CONTAINERD_RUN_DIR / "runc" / self.ns, ignore_errors=True)
        for path in sorted(self.run_dirs_before, key=lambda p: len(p.parts), reverse=True):
            if not self.run_dirs_before[path]:
                try:
                    path.rmdir()  # only if empty: someone else may use it by now
                except OSError:
                    pass

    def save_logs(self) -> None:
        if not LOG_DIR:
            return
        out = Path(LOG_DIR)
        out.mkdir(parents=True, exist_ok=True)
        tag = Path(RUNTIME).name
        records = self.call_records()
        (out / f"containerd-runtime-calls.{tag}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records))
        (out / f"containerd-runtime-calls.{tag}.txt").write_text(render_calls(records))
        for src in (self.log, self.config):
            if src.exists():
                shutil.copy(src, out / f"{src.stem}.{tag}{src.suffix}")

    def cleanup(self) -> None:
        steps = (self.remove_all_containers, self.stop, self.kill_leftovers, self.remove_cgroups,
                 self.unmount_all, self.remove_run_dirs, self.save_logs)
        errors = []
        for step in steps:
            try:
                step()
            except Exception as e:  # keep going: every step frees something
                errors.append(f"{step.__name__}: {e!r}")
        self.unmount_all()
        if not any(p.startswith(str(self.dir) + "/") for p in _mountinfo()):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            errors.append(f"mounts remain under {self.dir}; left it in place")
        if errors:
            raise RuntimeError("containerd cleanup: " + "; ".join(errors))


# --------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def ctd():
    c = Containerd()
    try:
        rootfs = c.dir / "rootfs"
        r = subprocess.run(["sh", str(FIXTURE_SCRIPT), str(rootfs)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"busybox fixture: {r.stderr.strip()}")
        image = c.dir / "image.tar"
        build_oci_image_tar(rootfs, image)
        shutil.rmtree(rootfs)
        c.start()
        c.ctr("images", "import", "--platform", "linux/amd64", str(image))
        yield c
    finally:
        c.cleanup()


@pytest.fixture(scope="module")
def sleeper(ctd):
    """A detached container running `sleep 300`, shared by the read-only tests."""
    cid = ctd.new_id("sleeper")
    ctd.ctr("run", "-d", *ctd.run_args(), IMAGE, cid, "sleep", "300")
    yield cid
    ctd.ctr("task", "resume", cid, check=False)
    ctd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
    ctd.wait_status(cid, "STOPPED")
    ctd.ctr("task", "delete", cid, check=False)
    ctd.ctr("containers", "rm", cid, check=False)


def run_in_pty(cmd: list[str], timeout: float = TIMEOUT) -> tuple[int, str]:
    """Runs cmd with a pseudo-terminal as its stdin/stdout/stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every slave end closed
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        else:
            p.kill()
        rc = p.wait(10)
    finally:
        os.close(master)
    return rc, out.decode(errors="replace")


# --------------------------------------------------------------------------
# Tests

def test_run_echo_hello(ctd):
    cid = ctd.new_id("echo")
    r = ctd.ctr("run", "--rm", *ctd.run_args(), IMAGE, cid, "echo", "hello")
    assert r.stdout == "hello\n"
    assert r.returncode == 0


def test_exit_code_propagates(ctd):
    cid = ctd.new_id("exit7")
    r = ctd.ctr("run", "--rm", *ctd.run_args(), IMAGE, cid, "sh", "-c", "exit 7", check=False)
    assert r.returncode == 7, r.stderr + ctd.diagnostics()


def test_stdin_and_stderr(ctd):
    cid = ctd.new_id("stdio")
    r = ctd.ctr("run", "--rm", *ctd.run_args(), IMAGE, cid, "sh", "-c", "read x; echo got:$x; echo err >&2",
                input="line1\n")
    assert r.stdout == "got:line1\n"
    assert "err" in r.stderr


def test_process_spec_fields(ctd):
    """cwd, env and args from containerd's generated spec reach the process (ctr run has no --user)."""
    cid = ctd.new_id("spec")
    r = ctd.ctr("run", "--rm", "--cwd", "/tmp", "--env", "BERTH_X=y z", *ctd.run_args(), IMAGE, cid,
                "sh", "-c", 'echo "$(pwd)|$BERTH_X|$(id -u):$(id -g)|$#|$PATH"', "a0", "a1")
    assert r.stdout == "/tmp|y z|0:0|1|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"


def test_read_only_rootfs(ctd):
    cid = ctd.new_id("ro")
    r = ctd.ctr("run", "--rm", "--read-only", *ctd.run_args(), IMAGE, cid,
                "sh", "-c", "touch /x 2>/dev/null && echo writable || echo readonly")
    assert r.stdout == "readonly\n", r.stdout + r.stderr


def test_tty(ctd):
    cid = ctd.new_id("tty")
    cmd = [CTR, "-a", ctd.sock, "-n", ctd.ns, "run", "--rm", "-t", *ctd.run_args(), IMAGE, cid,
           "sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo both-tty; exit 3"]
    mark = len(ctd.call_records())
    rc, out = run_in_pty(cmd)
    lines = [line.strip() for line in out.splitlines()]
    assert any(line.startswith("/dev/pts/") for line in lines), out + ctd.diagnostics(mark)
    assert "both-tty" in lines, out
    assert rc == 3, out


def test_create_error_reported(ctd):
    """A failing create surfaces the runtime's --log error through containerd."""
    cid = ctd.new_id("enoent")
    ctd.set_wrap_mode("trace")  # keep the --log output before the shim removes the bundle
    try:
        r = ctd.ctr("run", "--rm", *ctd.run_args(), IMAGE, cid, "/does-not-exist", check=False)
    finally:
        ctd.set_wrap_mode(None)
    assert r.returncode != 0
    assert "does-not-exist" in r.stderr, r.stderr + ctd.diagnostics()
    assert cid not in ctd.ctr("containers", "ls", "-q").stdout.split()
    assert not (ctd.runc_root / ctd.ns / cid).exists(), "runtime state left behind after a failed create"


def test_task_ls_running(ctd, sleeper):
    st = ctd.task_status(sleeper)
    assert st is not None and st[1] == "RUNNING", st
    assert st[0] > 0


def test_exec(ctd, sleeper):
    r = ctd.ctr("task", "exec", "--fifo-dir", str(ctd.fifo_dir), "--exec-id", "e1", sleeper, "echo", "inside")
    assert r.stdout == "inside\n"


def test_exec_exit_code_cwd_user(ctd, sleeper):
    r = ctd.ctr("task", "exec", "--fifo-dir", str(ctd.fifo_dir), "--exec-id", "e2", "--cwd", "/etc",
                "--user", "1000", sleeper, "sh", "-c", "echo $(pwd):$(id -u); exit 3", check=False)
    assert r.stdout == "/etc:1000\n", r.stderr
    assert r.returncode == 3


def test_exec_tty(ctd, sleeper):
    cmd = [CTR, "-a", ctd.sock, "-n", ctd.ns, "task", "exec", "-t", "--fifo-dir", str(ctd.fifo_dir),
           "--exec-id", "e3", sleeper, "sh", "-c", "tty; exit 4"]
    mark = len(ctd.call_records())
    rc, out = run_in_pty(cmd)
    assert "/dev/pts/" in out, out + ctd.diagnostics(mark)
    assert rc == 4, out


def test_ps(ctd, sleeper):
    pid, _ = ctd.task_status(sleeper)
    r = ctd.ctr("task", "ps", sleeper)
    pids = [int(line.split()[0]) for line in r.stdout.splitlines()[1:] if line.strip()]
    assert pid in pids, r.stdout


def test_metrics(ctd, sleeper):
    """The shim reads the task's cgroups itself: the runtime must have put it in them."""
    missing = _unmounted_v1_hierarchies()
    if missing:
        pytest.skip(f"this host lists cgroup v1 hierarchies with no mount point ({', '.join(missing)}): containerd's own shim cannot read metrics here")
    r = ctd.ctr("task", "metrics", "--format", "json", sleeper)
    metrics = json.loads(r.stdout)
    assert metrics.get("pids", {}).get("current", 0) >= 1, r.stdout


def test_pause_resume(ctd, sleeper):
    ctd.ctr("task", "pause", sleeper)
    assert ctd.task_status(sleeper)[1] == "PAUSED"
    ctd.ctr("task", "resume", sleeper)
    assert ctd.task_status(sleeper)[1] == "RUNNING"
    r = ctd.ctr("task", "exec", "--fifo-dir", str(ctd.fifo_dir), "--exec-id", "after-resume", sleeper, "echo", "ok")
    assert r.stdout == "ok\n"


def test_kill_delete(ctd):
    cid = ctd.new_id("kill")
    ctd.ctr("run", "-d", *ctd.run_args(), IMAGE, cid, "sleep", "300")
    assert ctd.wait_status(cid, "RUNNING")[1] == "RUNNING"
    ctd.ctr("task", "kill", "-s", "SIGKILL", cid)
    st = ctd.wait_status(cid, "STOPPED")
    assert st and st[1] == "STOPPED", st
    r = ctd.ctr("task", "delete", cid)
    assert "137" in r.stderr, r.stderr  # containerd warns: exit code 137 (128 + SIGKILL)
    ctd.ctr("containers", "rm", cid)
    assert ctd.task_status(cid) is None
    assert not (ctd.runc_root / ctd.ns / cid).exists(), "runtime state left after delete"
    for mount in _cgroup_mounts():
        assert not (Path(mount) / ctd.ns / cid).exists(), f"cgroup {mount}/{ctd.ns}/{cid} left after delete"


def test_kill_sigterm_handled(ctd):
    """Default `ctr task kill` (SIGTERM) reaches a pid-1 shell that traps it; exit status 0."""
    cid = ctd.new_id("term")
    ctd.ctr("run", "-d", *ctd.run_args(), IMAGE, cid,
            "sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done")
    # Until the shell has installed its trap, pid 1 ignores SIGTERM: send it until the task stops.
    st = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ctd.ctr("task", "kill", cid)
        st = ctd.wait_status(cid, "STOPPED", timeout=1)
        if st and st[1] == "STOPPED":
            break
    assert st and st[1] == "STOPPED", st
    r = ctd.ctr("task", "delete", cid)
    assert "non-zero exit code" not in r.stderr, r.stderr
    ctd.ctr("containers", "rm", cid)


def test_kill_all(ctd):
    """`ctr task kill -a` (runtime `kill --all`) also kills exec'd processes."""
    cid = ctd.new_id("killall")
    ctd.ctr("run", "-d", *ctd.run_args(), IMAGE, cid, "sleep", "300")
    ctd.ctr("task", "exec", "-d", "--fifo-dir", str(ctd.fifo_dir), "--exec-id", "bg", cid, "sleep", "300")
    ctd.ctr("task", "kill", "-a", "-s", "SIGKILL", cid)
    st = ctd.wait_status(cid, "STOPPED")
    assert st and st[1] == "STOPPED", st
    ctd.ctr("task", "delete", cid, check=False)
    ctd.ctr("containers", "rm", cid)
