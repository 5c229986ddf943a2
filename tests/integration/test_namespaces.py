"""Namespaces: new ones are created, existing ones are joined, user and time namespaces."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import berthtest as bt

NS_FILES = {"ipc": "ipc", "uts": "uts", "mount": "mnt", "network": "net", "pid": "pid", "cgroup": "cgroup"}


def ns_inode(link: str) -> str:
    m = re.fullmatch(r"\w+:\[(\d+)\]", link.strip())
    assert m, f"unexpected namespace link {link!r}"
    return m.group(1)


def test_hostname(runtime, bundle):
    bundle.config["hostname"] = "bt-host-name"
    bundle.set_args("hostname")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bt-host-name\n"


def test_pid_namespace_process_is_pid_1(runtime, bundle):
    bundle.sh('echo $$; cat /proc/1/cmdline | tr "\\0" " "; echo; ls /proc | grep -E "^[0-9]+$" | sort -n')
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("sh -c echo $$;")
    pids = [int(x) for x in lines[2:]]
    # pid 1 plus the short-lived pipeline members; no host process is visible
    assert pids[0] == 1
    assert max(pids) < 20


def test_network_namespace_has_only_loopback(runtime, bundle):
    bundle.sh("ls /sys/class/net; echo --; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    sysfs, procnet = r.stdout.split("--\n")
    assert sysfs.split() == ["lo"]
    assert procnet.split() == ["lo"]


def test_loopback_is_up_in_new_network_namespace(runtime, bundle):
    # runc brings lo up (IFF_UP) in a network namespace it creates; containerd relies on it.
    bundle.set_args("cat", "/sys/class/net/lo/flags")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip(), 16) & 0x1 == 0x1


@pytest.mark.parametrize("ns", ["ipc", "uts", "mount", "network", "pid", "cgroup"])
def test_new_namespace_differs_from_host(runtime, bundle, ns):
    if ns == "cgroup":
        if not os.path.exists("/proc/self/ns/cgroup"):
            pytest.skip("kernel has no cgroup namespaces")
        bundle.add_namespace("cgroup")
    f = NS_FILES[ns]
    bundle.set_args("readlink", f"/proc/self/ns/{f}")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    inside = ns_inode(r.stdout)
    host = ns_inode(os.readlink(f"/proc/self/ns/{f}"))
    assert inside != host


@pytest.mark.parametrize("ns", ["ipc", "uts", "network"])
def test_namespace_not_in_config_is_shared_with_host(runtime, bundle, ns):
    bundle.remove_namespace(ns)
    if ns == "uts":
        bundle.config.pop("hostname", None)  # a hostname needs a private uts namespace
    f = NS_FILES[ns]
    bundle.set_args("readlink", f"/proc/self/ns/{f}")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert ns_inode(r.stdout) == ns_inode(os.readlink(f"/proc/self/ns/{f}"))


def test_container_without_a_mount_namespace_runs(runtime, bundle):
    # No mount namespace: the host's mount table (berth chroots into the rootfs, where nothing is
    # mounted, so not even /proc is there). Init must still get past exec.fifo and run the process.
    bundle.remove_namespace("mount")
    bundle.sh("echo no-mount-ns; ls /proc | wc -l; exit 7")
    r = runtime.run_container(bundle)
    assert r.returncode == 7, r.stderr
    assert r.stdout.split() == ["no-mount-ns", "0"]
    # create + start, as containerd would
    bundle.sh("exit 0")
    cid = runtime.create(bundle)
    assert runtime.status(cid) == "created"
    runtime.start(cid)
    runtime.wait_status(cid, "stopped")


def test_cgroup_namespace_hides_host_cgroup_path(runtime, bundle):
    if not os.path.exists("/proc/self/ns/cgroup"):
        pytest.skip("kernel has no cgroup namespaces")
    bundle.add_namespace("cgroup")
    bundle.set_args("cat", "/proc/self/cgroup")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    paths = [line.split(":", 2)[2] for line in r.stdout.splitlines()]
    assert paths and all(p == "/" for p in paths), r.stdout


@pytest.fixture
def netns():
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    name = bt.new_id()
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"ip netns add failed: {r.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_join_network_namespace_by_path(runtime, bundle, netns):
    # a dummy link if the kernel has it, else a veth pair (both ends stay in the netns)
    r = subprocess.run(["ip", "-n", netns, "link", "add", "btdummy0", "type", "dummy"], capture_output=True)
    if r.returncode == 0:
        expected = ["btdummy0", "lo"]
    else:
        r = subprocess.run(["ip", "-n", netns, "link", "add", "btveth0", "type", "veth", "peer", "name", "btveth1"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot add a dummy or veth link: {r.stderr.strip()}")
        expected = ["btveth0", "btveth1", "lo"]
    path = f"/var/run/netns/{netns}"
    bundle.add_namespace("network", path)
    bundle.sh("ls /sys/class/net; readlink /proc/self/ns/net")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    *links, link = r.stdout.split()
    assert sorted(links) == expected
    assert ns_inode(link) == str(os.stat(path).st_ino)


def test_join_namespaces_of_another_container(runtime, bundle, make_bundle):
    bundle.config["hostname"] = "alpha"
    bundle.set_args("sleep", "1000")
    a = runtime.create_start(bundle)
    pid = runtime.state(a)["pid"]

    b = make_bundle("second")
    b.config.pop("hostname", None)
    b.add_namespace("uts", f"/proc/{pid}/ns/uts")
    b.add_namespace("ipc", f"/proc/{pid}/ns/ipc")
    b.add_namespace("network", f"/proc/{pid}/ns/net")
    b.sh("hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/net")
    r = runtime.run_container(b)
    assert r.returncode == 0, r.stderr
    host, ipc, net = r.stdout.split()
    assert host == "alpha"
    assert ns_inode(ipc) == ns_inode(os.readlink(f"/proc/{pid}/ns/ipc"))
    assert ns_inode(net) == ns_inode(os.readlink(f"/proc/{pid}/ns/net"))


def test_join_nonexistent_namespace_path_fails(runtime, bundle, tmp_path):
    bundle.add_namespace("network", str(tmp_path / "no-such-netns"))
    bundle.set_args("true")
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.container_dirs() == []


@pytest.fixture
def open_tmp():
    """A bundle parent that the user-namespace root (host uid 100000) can traverse."""
    d = Path(tempfile.mkdtemp(prefix="bt-userns-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def userns_bundle(open_tmp, rootfs_template) -> bt.Bundle:
    b = bt.Bundle(open_tmp / "bundle", rootfs_template)
    os.chmod(b.path, 0o755)
    subprocess.run(["chown", "-R", "100000:100000", str(b.rootfs)], check=True)
    b.add_namespace("user")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return b


def test_user_namespace_mappings(runtime, open_tmp, rootfs_template):
    if not os.path.exists("/proc/self/ns/user"):
        pytest.skip("kernel has no user namespaces")
    b = userns_bundle(open_tmp, rootfs_template)
    vol = open_tmp / "vol"
    vol.mkdir()
    os.chown(vol, 100000, 100000)
    b.add_mount(destination="/vol", type="bind", source=str(vol), options=["rbind", "rw"])
    b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; echo data > /vol/made-inside; ls -ln /vol")
    r = runtime.run_container(b)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2:4] == ["0", "0"]
    # inside, the file belongs to root; on the host to the mapped uid
    assert lines[5].split()[2:4] == ["0", "0"]
    st = os.stat(vol / "made-inside")
    assert (st.st_uid, st.st_gid) == (100000, 100000)
    assert (vol / "made-inside").read_text() == "data\n"


def test_user_namespace_differs_from_host(runtime, open_tmp, rootfs_template):
    b = userns_bundle(open_tmp, rootfs_template)
    b.set_args("readlink", "/proc/self/ns/user")
    r = runtime.run_container(b)
    assert r.returncode == 0, r.stderr
    assert ns_inode(r.stdout) != ns_inode(os.readlink("/proc/self/ns/user"))


def test_user_namespace_root_cannot_touch_unmapped_host_files(runtime, open_tmp, rootfs_template):
    b = userns_bundle(open_tmp, rootfs_template)
    vol = open_tmp / "hostowned"
    vol.mkdir()
    os.chmod(vol, 0o755)  # owned by real root: not writable by the mapped root
    b.add_mount(destination="/vol", type="bind", source=str(vol), options=["rbind", "rw"])
    b.sh("touch /vol/x")
    r = runtime.run_container(b)
    assert r.returncode != 0
    assert "Permission denied" in r.stderr
    assert not (vol / "x").exists()


@pytest.mark.xfail(bt.is_runc(), reason="runc 1.1 has no time namespace support (added in runc 1.2)", strict=True)
def test_time_namespace_offsets(runtime, bundle):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel has no time namespaces")
    bundle.add_namespace("time")
    bundle.linux["timeOffsets"] = {
        "monotonic": {"secs": 864000, "nanosecs": 0},
        "boottime": {"secs": 1728000, "nanosecs": 0},
    }
    bundle.sh("cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime; readlink /proc/self/ns/time")
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["monotonic", "864000", "0"]
    assert lines[1].split() == ["boottime", "1728000", "0"]
    assert float(lines[2]) >= 1728000 + host_uptime
    assert ns_inode(lines[3]) != ns_inode(os.readlink("/proc/self/ns/time"))
