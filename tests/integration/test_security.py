"""Known container-escape classes, reproduced and shown to fail.

(a) CVE-2019-5736: overwrite the runtime binary through /proc/<pid>/exe.
(b) host file descriptors leaking into the container.
(c) symlinks in the rootfs that point mounts (or mount-point creation) at host paths.
(d) maskedPaths still hold when the rootfs is hostile.
"""
import hashlib
import os
import time
from pathlib import Path

import pytest

import berthtest as bt


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class BinaryGuard:
    """The real runtime binary's hash and inode, taken before a test attacks it."""

    def __init__(self):
        self.path = os.path.realpath(bt.RUNTIME_PATH)
        self.original = Path(self.path).read_bytes()
        self.hash = hashlib.sha256(self.original).hexdigest()
        self.stat = os.stat(self.path)

    def tampered(self) -> bool:
        # only a change to the same inode counts: a rebuild replaces the file (new inode)
        now = os.stat(self.path)
        same_file = (now.st_dev, now.st_ino) == (self.stat.st_dev, self.stat.st_ino)
        return same_file and sha256(self.path) != self.hash

    def restore(self):
        tmp = self.path + ".bt-restore"
        Path(tmp).write_bytes(self.original)
        os.chmod(tmp, self.stat.st_mode & 0o7777)
        os.rename(tmp, self.path)


@pytest.fixture
def runtime_binary_guard():
    """Yields a BinaryGuard; restores the binary (and fails) if a test managed to change it."""
    guard = BinaryGuard()
    yield guard
    if guard.tampered():
        guard.restore()
        pytest.fail(f"the runtime binary {guard.path} was modified from inside a container (restored)")


def wait_for(path: Path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.01)


# --- (a) CVE-2019-5736 -----------------------------------------------------------

ATTACK_HELD_FD = r"""
readlink /proc/1/exe > /tmp/init-exe 2>&1
if exec 3< /proc/1/exe; then echo opened > /tmp/opened.tmp; else echo open-failed > /tmp/opened.tmp; exit 0; fi
mv /tmp/opened.tmp /tmp/opened
until [ -e /tmp/go ]; do usleep 10000; done
i=0
while [ $i -lt 200 ]; do
  if { echo pwned >> /proc/self/fd/3; } 2>/tmp/write-err; then echo wrote > /tmp/result.tmp; mv /tmp/result.tmp /tmp/result; exit 0; fi
  i=$((i+1)); usleep 5000
done
echo gave-up > /tmp/result.tmp; mv /tmp/result.tmp /tmp/result
"""


def test_cve_2019_5736_init_exe_cannot_be_overwritten(runtime, bundle, runtime_binary_guard):
    """While the container is 'created', pid 1 is the runtime's own init. A process exec'd into the
    container opens /proc/1/exe, waits until no runtime process runs any more (so ETXTBSY no longer
    protects the file) and writes through the held descriptor. The host binary must not change."""
    (bundle.rootfs / "attack.sh").write_text(ATTACK_HELD_FD)
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    r = runtime.run(["exec", "-d", cid, "sh", "/attack.sh"])
    assert r.returncode == 0, r.stderr
    tmp = bundle.rootfs / "tmp"
    wait_for(tmp / "opened")
    runtime.start(cid)
    (tmp / "go").write_text("")
    if (tmp / "opened").read_text().strip() == "opened":
        wait_for(tmp / "result")
        assert (tmp / "result").read_text().strip() == "gave-up", (tmp / "write-err").read_text()
    assert not runtime_binary_guard.tampered()


def test_write_to_init_exe_of_created_container_fails(runtime, bundle, runtime_binary_guard):
    """Before start, pid 1 in the container is the runtime's own init: writing to /proc/1/exe
    (directly, or with truncation) must fail and leave the host binary alone."""
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    r = runtime.exec(cid, "sh", "-c", "echo x >> /proc/1/exe; echo append=$?; echo x > /proc/1/exe; echo trunc=$?")
    assert r.stdout.split() == ["append=1", "trunc=1"], r.stderr
    assert not runtime_binary_guard.tampered()
    runtime.start(cid)
    assert runtime.status(cid) == "running"


ATTACK_LOOP = r"""
while :; do
  for p in /proc/[0-9]*; do
    [ "$p" = /proc/1 ] && continue
    t=$(readlink $p/exe 2>/dev/null) || continue
    case "$t" in /bin/busybox|"") continue;; esac
    if { echo pwned >> $p/exe; } 2>/dev/null; then echo "wrote $t" >> /tmp/attack.log; fi
  done
done
"""


def test_cve_2019_5736_exec_race(runtime, bundle, runtime_binary_guard):
    """The classic shape: a process in the container watches for the runtime's init entering the
    container during `exec` (and for #!/proc/self/exe entry points) and writes to its exe."""
    (bundle.rootfs / "attack.sh").write_text(ATTACK_LOOP)
    (bundle.rootfs / "evil").write_text("#!/proc/self/exe\n")
    os.chmod(bundle.rootfs / "evil", 0o755)
    bundle.set_args("sh", "/attack.sh")
    cid = runtime.create_start(bundle)
    for _ in range(10):
        runtime.exec(cid, "/evil")  # may fail; what matters is what it exposes meanwhile
        runtime.exec(cid, "true")
    assert not runtime_binary_guard.tampered()
    log = bundle.rootfs / "tmp" / "attack.log"
    assert not log.exists() or "wrote" not in log.read_text()


def test_write_to_own_exe_fails(runtime, bundle, runtime_binary_guard):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    original = sha256(bundle.rootfs / "bin" / "busybox")
    r = runtime.exec(cid, "sh", "-c", "echo x >> /proc/self/exe")
    assert r.returncode != 0
    assert "Text file busy" in r.stderr or "Read-only" in r.stderr or "denied" in r.stderr
    r = runtime.exec(cid, "sh", "-c", "readlink /proc/self/exe")
    assert r.stdout == "/bin/busybox\n"
    assert sha256(bundle.rootfs / "bin" / "busybox") == original
    assert not runtime_binary_guard.tampered()


# --- (b) file descriptors ---------------------------------------------------------

def container_fds(out: str) -> list[int]:
    return sorted(int(x) for x in out.split())


def test_no_host_fd_leaks_into_container(runtime, bundle, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    fd = os.open(secret, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        bundle.set_args("ls", "/proc/self/fd")
        r = runtime.run_container(bundle, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert r.returncode == 0, r.stderr
    # 0, 1, 2 and the directory fd ls itself opened to list /proc/self/fd
    assert container_fds(r.stdout) == [0, 1, 2, 3]


def test_no_host_fd_leaks_into_created_container(runtime, bundle, tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(fd, True)
    try:
        bundle.set_args("sleep", "1000")
        cid = runtime.create(bundle, pass_fds=(fd,))
        runtime.start(cid)
    finally:
        os.close(fd)
    pid = runtime.state(cid)["pid"]
    # seen from the host: the container process holds exactly its stdio
    assert sorted(int(x) for x in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]


def test_no_host_fd_leaks_into_exec(runtime, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(fd, True)
    try:
        r = runtime.run(["exec", cid, "ls", "/proc/self/fd"], pass_fds=(fd,))
    finally:
        os.close(fd)
    assert r.returncode == 0, r.stderr
    assert container_fds(r.stdout) == [0, 1, 2, 3]


def test_preserve_fds_passes_exactly_the_requested_fds(runtime, bundle, tmp_path):
    shared = tmp_path / "shared"
    shared.write_text("passed on purpose\n")
    fd = os.open(shared, os.O_RDONLY)
    extra = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)

    def child_setup():  # the runtime sees the file as fd 3 and a directory as fd 4
        os.dup2(fd, 3)
        os.dup2(extra, 4)

    try:
        bundle.set_args("sleep", "1000")
        cid = runtime.create(bundle, extra=["--preserve-fds", "1"], pass_fds=(3, 4), preexec_fn=child_setup)
        runtime.start(cid)
    finally:
        os.close(fd)
        os.close(extra)
    pid = runtime.state(cid)["pid"]
    assert sorted(int(x) for x in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2, 3]
    assert os.readlink(f"/proc/{pid}/fd/3") == str(shared)
    r = runtime.exec(cid, "cat", f"/proc/1/fd/3")
    assert r.stdout == "passed on purpose\n"


# --- (c) symlinks in the rootfs ---------------------------------------------------

@pytest.fixture
def decoy(tmp_path):
    """A host directory that symlinks in the rootfs point at; it must stay untouched."""
    d = tmp_path / "host-decoy"
    d.mkdir()
    (d / "keep").write_text("host file\n")
    return d


def assert_decoy_untouched(decoy: Path):
    assert sorted(os.listdir(decoy)) == ["keep"], os.listdir(decoy)
    assert (decoy / "keep").read_text() == "host file\n"
    assert bt.mounts_mentioning(str(decoy)) == []


def outcome(runtime, bundle):
    """Runs the container; returns the CompletedProcess. Failing cleanly is acceptable."""
    r = runtime.run_container(bundle)
    if r.returncode != 0:
        assert r.stderr.strip()
        assert runtime.container_dirs() == []
        assert bt.procs_rooted_in(bundle.path) == []
    return r


@pytest.mark.parametrize("style", ["absolute", "relative-escape"])
def test_bind_destination_symlink_to_host_dir(runtime, bundle, decoy, tmp_path, style):
    src = tmp_path / "src"
    src.mkdir()
    target = str(decoy) if style == "absolute" else "../" * 30 + str(decoy).lstrip("/")
    os.symlink(target, bundle.rootfs / "link")
    bundle.add_mount(destination="/link/newdir", type="bind", source=str(src), options=["rbind"])
    bundle.sh("echo from-container > /link/newdir/written")
    r = outcome(runtime, bundle)
    assert_decoy_untouched(decoy)
    if r.returncode == 0:
        # the mount landed inside the rootfs, where the symlink resolves within it
        assert (src / "written").read_text() == "from-container\n"
        assert (bundle.rootfs / str(decoy).lstrip("/") / "newdir").is_dir()


def test_file_bind_destination_symlink_to_host_file(runtime, bundle, decoy, tmp_path):
    src = tmp_path / "srcfile"
    src.write_text("bound file\n")
    os.symlink(str(decoy / "created-by-runtime"), bundle.rootfs / "flink")
    bundle.add_mount(destination="/flink", type="bind", source=str(src), options=["bind"])
    bundle.set_args("cat", "/flink")
    r = outcome(runtime, bundle)
    assert_decoy_untouched(decoy)
    if r.returncode == 0:
        assert r.stdout == "bound file\n"


def test_tmpfs_destination_symlink_to_host_dir(runtime, bundle, decoy):
    os.symlink(str(decoy), bundle.rootfs / "tlink")
    bundle.add_mount(destination="/tlink", type="tmpfs", source="tmpfs", options=["size=1m"])
    bundle.sh("touch /tlink/on-tmpfs; ls -A /tlink")
    r = outcome(runtime, bundle)
    assert_decoy_untouched(decoy)
    if r.returncode == 0:
        assert r.stdout.split() == ["on-tmpfs"]


RUNC_DEV_SYMLINK_BUG = ("runc 1.1 creates /dev/fd, /dev/stdin, /dev/ptmx... through a /dev symlink, i.e. in the "
                        "host directory it points to")


@pytest.mark.xfail(bt.is_runc(), strict=True, reason=RUNC_DEV_SYMLINK_BUG)
def test_dev_is_symlink_to_host_dir(runtime, bundle, decoy):
    os.rmdir(bundle.rootfs / "dev")
    os.symlink(str(decoy), bundle.rootfs / "dev")
    bundle.sh("ls /dev/null /dev/zero >/dev/null && echo devs-ok")
    r = outcome(runtime, bundle)
    assert_decoy_untouched(decoy)
    if r.returncode == 0:
        assert r.stdout == "devs-ok\n"


def test_proc_is_symlink_to_host_dir(runtime, bundle, decoy):
    os.rmdir(bundle.rootfs / "proc")
    os.symlink(str(decoy), bundle.rootfs / "proc")
    bundle.sh("wc -c < /proc/keys; ls /proc/1 >/dev/null && echo proc-ok")
    r = outcome(runtime, bundle)
    assert_decoy_untouched(decoy)
    if r.returncode == 0:
        assert r.stdout.splitlines() == ["0", "proc-ok"]


def test_rootfs_itself_symlink(runtime, bundle, tmp_path):
    # the bundle's rootfs is a symlink to a real root; runc refuses it ("invalid rootfs: not an
    # absolute path, or a symlink"), following it would be acceptable too
    real = tmp_path / "real-rootfs"
    os.rename(bundle.rootfs, real)
    os.symlink(str(real), bundle.rootfs)
    bundle.set_args("cat", "/etc/berth-fixture")
    r = outcome(runtime, bundle)
    if r.returncode == 0:
        assert r.stdout == "berth busybox test image\n"


# --- (d) masked paths with a hostile rootfs ----------------------------------------

def masked_files_on_host() -> list[str]:
    return [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                        "/proc/latency_stats", "/proc/timer_stats") if os.path.isfile(p)]


def test_masked_paths_hold_with_hostile_proc_contents(runtime, bundle):
    files = masked_files_on_host()
    if not files:
        pytest.skip("the host has none of the default masked /proc files")
    # the image ships its own /proc entries, including symlinks to host-sensitive places
    for f in files:
        os.symlink("/etc/shadow", bundle.rootfs / f.lstrip("/"))
    (bundle.rootfs / "proc" / "sys").mkdir()
    bundle.sh("; ".join(f"echo {f} $(wc -c < {f})" for f in files) + "; echo 1 > /proc/sys/kernel/ns_last_pid; echo rc=$?")
    r = runtime.run_container(bundle)
    lines = r.stdout.splitlines()
    assert {tuple(line.split()) for line in lines[:-1]} == {(f, "0") for f in files}
    assert lines[-1] == "rc=1"
    assert "Read-only file system" in r.stderr


@pytest.mark.xfail(bt.is_runc(), strict=True, reason=RUNC_DEV_SYMLINK_BUG)
def test_masked_paths_hold_when_dev_is_hostile(runtime, bundle, decoy):
    files = masked_files_on_host()
    if not files:
        pytest.skip("the host has none of the default masked /proc files")
    # /dev in the image points at a host directory; /dev/null used for masking must be a real one
    os.rmdir(bundle.rootfs / "dev")
    os.symlink(str(decoy), bundle.rootfs / "dev")
    bundle.sh("; ".join(f"echo {f} $(wc -c < {f})" for f in files))
    r = outcome(runtime, bundle)
    assert_decoy_untouched(decoy)
    if r.returncode == 0:
        assert {tuple(line.split()) for line in r.stdout.splitlines()} == {(f, "0") for f in files}


def test_masked_directory_is_empty_and_read_only(runtime, bundle):
    dirs = [d for d in ("/proc/acpi", "/proc/scsi", "/sys/firmware") if os.path.isdir(d)]
    if not dirs:
        pytest.skip("no default masked directory exists on this host")
    bundle.sh("; ".join(f"echo {d} $(ls -A {d} | wc -l); touch {d}/x 2>/dev/null; echo {d} touch=$?" for d in dirs))
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for i, d in enumerate(dirs):
        assert lines[2 * i].split() == [d, "0"]
        assert lines[2 * i + 1] == f"{d} touch=1"
