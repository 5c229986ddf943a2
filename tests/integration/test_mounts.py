"""Mounts: binds, tmpfs options, read-only root, propagation, /dev, devices, masked and read-only paths, sysctl."""
import os
import subprocess
from pathlib import Path

import pytest

import berthtest as bt


def mount_line(mounts_text: str, target: str) -> list[str]:
    """The last /proc/mounts entry for TARGET, split into fields."""
    found = [line.split() for line in mounts_text.splitlines() if line.split()[1:2] == [target]]
    assert found, f"{target} not mounted:\n{mounts_text}"
    return found[-1]


def mountinfo_line(mountinfo_text: str, target: str) -> list[str]:
    found = [line.split() for line in mountinfo_text.splitlines() if line.split()[4:5] == [target]]
    assert found, f"{target} not in mountinfo:\n{mountinfo_text}"
    return found[-1]


def test_bind_mount_rw(runtime, bundle, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "from-host").write_text("host data\n")
    bundle.add_mount(destination="/data", type="bind", source=str(vol), options=["rbind", "rw"])
    bundle.sh("cat /data/from-host; echo container data > /data/from-container")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "host data\n"
    assert (vol / "from-container").read_text() == "container data\n"


def test_bind_mount_ro(runtime, bundle, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "f").write_text("original\n")
    bundle.add_mount(destination="/data", type="bind", source=str(vol), options=["rbind", "ro"])
    bundle.sh("cat /data/f; echo changed > /data/f; touch /data/new; grep ' /data ' /proc/mounts")
    r = runtime.run_container(bundle)
    assert r.stdout.splitlines()[0] == "original"
    assert "Read-only file system" in r.stderr
    assert mount_line(r.stdout.split("\n", 1)[1], "/data")[3].split(",")[0] == "ro"
    assert (vol / "f").read_text() == "original\n"
    assert not (vol / "new").exists()


def test_bind_mount_of_a_file(runtime, bundle, tmp_path):
    f = tmp_path / "hosts"
    f.write_text("127.0.0.1 bt-file-bind\n")
    bundle.add_mount(destination="/etc/hosts", type="bind", source=str(f), options=["bind", "ro"])
    bundle.set_args("cat", "/etc/hosts")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "127.0.0.1 bt-file-bind\n"
    # at most an empty mount point was left in the rootfs; the host file was not copied in
    mount_point = bundle.rootfs / "etc" / "hosts"
    assert not mount_point.exists() or mount_point.read_text() == ""


def test_mount_destination_is_created(runtime, bundle, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "x").write_text("deep\n")
    bundle.add_mount(destination="/new/deep/dir", type="bind", source=str(vol), options=["rbind"])
    bundle.set_args("cat", "/new/deep/dir/x")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "deep\n"
    # the mount point was created inside the rootfs, and the mount itself stayed in the container
    assert (bundle.rootfs / "new" / "deep" / "dir").is_dir()
    assert not (bundle.rootfs / "new" / "deep" / "dir" / "x").exists()


def test_tmpfs_size_mode_and_flags(runtime, bundle):
    bundle.add_mount(destination="/scratch", type="tmpfs", source="tmpfs",
                     options=["size=1m", "mode=700", "nosuid", "nodev", "noexec"])
    bundle.sh("stat -c %a /scratch; cat /proc/mounts")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    mode, mounts = r.stdout.split("\n", 1)
    assert mode == "700"
    fields = mount_line(mounts, "/scratch")
    assert fields[2] == "tmpfs"
    opts = fields[3].split(",")
    for want in ("rw", "nosuid", "nodev", "noexec", "size=1024k", "mode=700"):
        assert want in opts, opts


def test_tmpfs_size_is_enforced(runtime, bundle):
    bundle.add_mount(destination="/scratch", type="tmpfs", source="tmpfs", options=["size=1m"])
    bundle.sh("dd if=/dev/zero of=/scratch/big bs=1024 count=2048; ls -l /scratch/big")
    r = runtime.run_container(bundle)
    assert "No space left on device" in r.stderr
    size = int(r.stdout.split()[4])
    assert size <= 1024 * 1024


def test_noexec_is_enforced(runtime, bundle):
    bundle.add_mount(destination="/scratch", type="tmpfs", source="tmpfs", options=["noexec"])
    bundle.sh("cp /bin/busybox /scratch/bb && /scratch/bb true; echo rc=$?")
    r = runtime.run_container(bundle)
    assert "rc=126" in r.stdout
    assert "Permission denied" in r.stderr


def test_nosuid_nodev_noexec_on_default_mounts(runtime, bundle):
    bundle.set_args("cat", "/proc/mounts")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    for target, flags in [
        ("/dev", ["nosuid"]),
        ("/dev/pts", ["nosuid", "noexec"]),
        ("/dev/shm", ["nosuid", "noexec", "nodev"]),
        ("/dev/mqueue", ["nosuid", "noexec", "nodev"]),
        ("/sys", ["ro", "nosuid", "noexec", "nodev"]),
    ]:
        opts = mount_line(r.stdout, target)[3].split(",")
        for f in flags:
            assert f in opts, (target, opts)
    assert mount_line(r.stdout, "/proc")[2] == "proc"
    assert mount_line(r.stdout, "/dev/pts")[2] == "devpts"
    assert mount_line(r.stdout, "/dev/mqueue")[2] == "mqueue"
    assert mount_line(r.stdout, "/sys")[2] == "sysfs"
    assert mount_line(r.stdout, "/")[3].split(",")[0] == "rw"


def test_readonly_root(runtime, bundle):
    bundle.config["root"]["readonly"] = True
    bundle.sh("touch /x; touch /tmp/y; echo ok > /dev/shm/z && cat /dev/shm/z; grep ' / ' /proc/mounts")
    r = runtime.run_container(bundle)
    assert r.stderr.count("Read-only file system") == 2, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "ok"  # mounts on top of the read-only root stay writable
    assert out[1].split()[3].split(",")[0] == "ro"
    assert not (bundle.rootfs / "x").exists()
    assert not (bundle.rootfs / "tmp" / "y").exists()


@pytest.fixture
def host_dir_with_submount(tmp_path):
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "top-file").write_text("top\n")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "bt-sub", str(top / "sub")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs on the host: {r.stderr.strip()}")
    try:
        (top / "sub" / "sub-file").write_text("sub\n")
        yield top
    finally:
        subprocess.run(["umount", "-l", str(top / "sub")], capture_output=True)


def test_rbind_includes_submounts(runtime, bundle, host_dir_with_submount):
    top = host_dir_with_submount
    bundle.add_mount(destination="/r", type="bind", source=str(top), options=["rbind"])
    bundle.sh("cat /r/top-file /r/sub/sub-file")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "top\nsub\n"


def test_plain_bind_excludes_submounts(runtime, bundle, host_dir_with_submount):
    top = host_dir_with_submount
    bundle.add_mount(destination="/r", type="bind", source=str(top), options=["bind"])
    bundle.sh("cat /r/top-file; ls -A /r/sub")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "top\n"  # the tmpfs under sub/ is not carried along


@pytest.mark.parametrize("prop", ["slave", "private", "shared", "rslave", "rprivate", "rshared", "unbindable",
                                  "runbindable"])
def test_rootfs_propagation_accepted(runtime, bundle, prop):
    bundle.linux["rootfsPropagation"] = prop
    # The container's root mount: mount point (field 5) "/", then options and optional fields.
    bundle.sh("echo ok; awk '$5 == \"/\"' /proc/self/mountinfo")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    ok, root = r.stdout.split("\n", 1)
    assert ok == "ok"
    if "unbindable" in prop:  # set on the new root after pivot_root (the rootfs can't be bound below it)
        assert "unbindable" in root.split(" - ")[0], root


def test_mount_propagation_options(runtime, bundle, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    for dest, prop in [("/p-shared", "rshared"), ("/p-private", "rprivate"), ("/p-slave", "rslave"),
                       ("/p-unbindable", "runbindable")]:
        bundle.add_mount(destination=dest, type="bind", source=str(vol), options=["rbind", prop])
    bundle.set_args("cat", "/proc/self/mountinfo")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr

    def optional_fields(target):
        fields = mountinfo_line(r.stdout, target)
        return fields[6:fields.index("-")]

    assert any(f.startswith("shared:") for f in optional_fields("/p-shared"))
    assert optional_fields("/p-private") == []
    assert "unbindable" in optional_fields("/p-unbindable")
    assert not any(f.startswith("shared:") for f in optional_fields("/p-slave"))


def test_dev_contents(runtime, bundle):
    bundle.sh("for f in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$f; done;"
              " for l in ptmx fd stdin stdout stderr; do echo /dev/$l '->' $(readlink /dev/$l); done;"
              " test -d /dev/pts && test -d /dev/shm && echo dirs-ok; test -e /dev/console || echo no-console")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:6] == [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
    ]
    assert lines[6:11] == [
        "/dev/ptmx -> pts/ptmx",
        "/dev/fd -> /proc/self/fd",
        "/dev/stdin -> /proc/self/fd/0",
        "/dev/stdout -> /proc/self/fd/1",
        "/dev/stderr -> /proc/self/fd/2",
    ]
    assert lines[11:] == ["dirs-ok", "no-console"]


def test_dev_devices_work(runtime, bundle):
    bundle.sh("echo discard > /dev/null; head -c 4 /dev/zero | od -An -tx1; head -c 16 /dev/urandom | wc -c;"
              " echo x > /dev/full; echo full-rc=$?")
    r = runtime.run_container(bundle)
    out = r.stdout.splitlines()
    assert out[0].split() == ["00", "00", "00", "00"]
    assert out[1].strip() == "16"
    assert out[2] == "full-rc=1"
    assert "No space left on device" in r.stderr


def test_spec_device_created(runtime, bundle):
    bundle.linux["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 5},
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0},
    ]
    bundle.linux["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229,
                                                 "access": "rwm"})
    bundle.sh("stat -c '%n %F %t:%T %a %u:%g' /dev/mynull /dev/fuse; echo hi > /dev/mynull && echo write-ok")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "/dev/mynull character special file 1:3 640 0:5",
        "/dev/fuse character special file a:e5 666 0:0",
        "write-ok",
    ]


def test_device_cgroup_denies_unlisted_device(runtime, bundle):
    # CAP_MKNOD lets the container make the node, but the device cgroup forbids opening it.
    bundle.sh("mknod /tmp/sda b 8 0 && echo mknod-ok; head -c 1 /tmp/sda >/dev/null; echo rc=$?")
    r = runtime.run_container(bundle)
    assert r.stdout.splitlines() == ["mknod-ok", "rc=1"]
    assert "Operation not permitted" in r.stderr


def test_masked_paths(runtime, bundle):
    masked_files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                                "/proc/latency_stats", "/proc/timer_stats") if os.path.isfile(p)]
    masked_dirs = [p for p in ("/proc/acpi", "/proc/scsi", "/sys/firmware", "/proc/asound") if os.path.isdir(p)]
    if not masked_files or not masked_dirs:
        pytest.skip("the host has none of the default masked files or directories")
    script = "; ".join([f"echo {p} $(wc -c < {p})" for p in masked_files] +
                       [f"echo {d} $(ls -A {d} | wc -l)" for d in masked_dirs])
    bundle.sh(script)
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    got = dict(line.split() for line in r.stdout.splitlines())
    assert got == {p: "0" for p in masked_files + masked_dirs}


def test_masked_paths_cannot_be_written(runtime, bundle):
    if not os.path.isdir("/sys/firmware"):
        pytest.skip("no /sys/firmware on this host")
    bundle.sh("touch /sys/firmware/x; echo rc=$?")
    r = runtime.run_container(bundle)
    assert "rc=1" in r.stdout
    assert "Read-only file system" in r.stderr


def test_readonly_paths(runtime, bundle):
    bundle.sh("echo bt > /proc/sys/kernel/hostname; echo rc=$?; grep -E ' /proc/(sys|bus|fs|irq|sysrq-trigger) '"
              " /proc/mounts")
    r = runtime.run_container(bundle)
    out = r.stdout.splitlines()
    assert out[0] == "rc=1"
    assert "Read-only file system" in r.stderr
    ro = {line.split()[1]: line.split()[3].split(",")[0] for line in out[1:]}
    assert ro.get("/proc/sys") == "ro"
    for p in ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"):
        if os.path.exists(p):
            assert ro.get(p) == "ro", p


def test_sysctl_in_new_network_namespace(runtime, bundle):
    host_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "net.ipv4.ping_group_range": "0 0"}
    bundle.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ping_group_range")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1].split() == ["0", "0"]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_before


def test_sysctl_for_host_namespace_is_rejected(runtime, bundle):
    # net.* sysctls need a private network namespace; runc refuses them otherwise.
    bundle.remove_namespace("network")
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    bundle.set_args("true")
    host_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_before


def test_mounts_do_not_leak_to_host(runtime, bundle, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    bundle.add_mount(destination="/data", type="bind", source=str(vol), options=["rbind"])
    bundle.add_mount(destination="/scratch", type="tmpfs", source="tmpfs", options=["size=1m"])
    bundle.set_args("sleep", "1000")
    runtime.create_start(bundle)
    assert bt.mounts_mentioning(str(bundle.path)) == []
