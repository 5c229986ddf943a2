"""Cgroups (v1 controllers, as on the hybrid test machine; v2-only hosts read the unified files)."""
import os
from pathlib import Path

import pytest

import berthtest as bt
from berthtest import CGROUP_ROOT, pid_cgroups

MiB = 1024 * 1024


def is_v1(controller: str) -> bool:
    return (CGROUP_ROOT / controller).is_dir() and not (CGROUP_ROOT / "cgroup.controllers").exists()


def own_cgroup(controller: str) -> str:
    return pid_cgroups(os.getpid())[controller]


def cgroup_file(pid: int, controller: str, name: str) -> str:
    cgs = pid_cgroups(pid)
    if controller in cgs:
        base = CGROUP_ROOT / controller / cgs[controller].lstrip("/")
    else:
        base = CGROUP_ROOT / cgs[""].lstrip("/")
    return (base / name).read_text().strip()


@pytest.fixture
def need_v1():
    for c in ("memory", "pids", "cpu", "cpuset", "freezer", "devices"):
        if not is_v1(c):
            pytest.skip(f"these tests read cgroup v1 files; no v1 {c} hierarchy")


def test_memory_limit_oom_kills_init(runtime, bundle, need_v1):
    bundle.linux["resources"]["memory"] = {"limit": 32 * MiB}
    bundle.set_args("tail", "/dev/zero")  # buffers an endless "line" until the OOM killer fires
    r = runtime.run_container(bundle, timeout=120)
    assert r.returncode == 137, r.stderr


def test_memory_limit_oom_kills_child(runtime, bundle, need_v1):
    bundle.linux["resources"]["memory"] = {"limit": 32 * MiB}
    bundle.sh("tail /dev/zero; echo tail-status=$?")
    r = runtime.run_container(bundle, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "tail-status=137\n"


def test_memory_values_in_cgroup_files(runtime, bundle, need_v1):
    bundle.linux["resources"]["memory"] = {"limit": 64 * MiB, "reservation": 32 * MiB}
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    pid = runtime.state(cid)["pid"]
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert cgroup_file(pid, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)


def test_kernel_tcp_limit_in_cgroup_file(runtime, bundle, need_v1):
    # kernel (kmem) is ignored as runc does; kernelTCP is still written where v1 has the file.
    bundle.linux["resources"]["memory"] = {"limit": 64 * MiB, "kernel": 32 * MiB, "kernelTCP": 48 * MiB}
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    pid = runtime.state(cid)["pid"]
    assert cgroup_file(pid, "memory", "memory.kmem.tcp.limit_in_bytes") == str(48 * MiB)
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 * MiB)


def test_pids_limit(runtime, bundle, need_v1):
    bundle.linux["resources"]["pids"] = {"limit": 10}
    # The inner shell dies on its first failed fork; its sleeps stay, reparented to pid 1.
    # The outer shell counts with a glob (no fork needed once the limit is hit).
    bundle.sh("sh -c 'for i in $(seq 20); do sleep 1000 & done'; set -- /proc/[0-9]*; echo count=$#")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert "can't fork" in r.stderr
    count = int(r.stdout.strip().split("=")[1])
    assert 2 <= count <= 10


def test_pids_value_in_cgroup_file(runtime, bundle, need_v1):
    bundle.linux["resources"]["pids"] = {"limit": 10}
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    assert cgroup_file(runtime.state(cid)["pid"], "pids", "pids.max") == "10"


def test_cpu_values_in_cgroup_files(runtime, bundle, need_v1):
    bundle.linux["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    pid = runtime.state(cid)["pid"]
    assert cgroup_file(pid, "cpu", "cpu.shares") == "512"
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cgroup_file(pid, "cpu", "cpu.cfs_period_us") == "100000"
    assert cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
    assert cgroup_file(pid, "cpuset", "cpuset.mems") == "0"
    assert Path(f"/proc/{pid}/status").read_text().count("Cpus_allowed_list:\t0\n") == 1


def test_devices_cgroup_rules(runtime, bundle, need_v1):
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    rules = cgroup_file(runtime.state(cid)["pid"], "devices", "devices.list").splitlines()
    assert "a *:* rwm" not in rules
    for dev in ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm"):
        assert dev in rules, rules


def test_default_cgroup_path_ends_with_id(runtime, bundle, need_v1):
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    cgs = pid_cgroups(runtime.state(cid)["pid"])
    for c in ("memory", "pids", "cpu", "freezer", "devices"):
        assert cgs[c].endswith("/" + cid), (c, cgs[c])


def test_relative_cgroups_path(runtime, bundle, need_v1):
    # The spec lets the runtime pick where a relative path is rooted; runc roots it at its own
    # cgroup (here memory:/process_api/<hash>, the others at /). Required: the path ends as given,
    # and the leaf goes away on delete.
    cid = runtime.new_id()
    bundle.linux["cgroupsPath"] = f"{cid}-parent/leaf"
    bundle.set_args("sleep", "1000")
    runtime.create(bundle, cid)
    pid = runtime.state(cid)["pid"]
    cgs = pid_cgroups(pid)
    try:
        for c in ("memory", "pids", "cpu", "freezer"):
            assert cgs[c].endswith(f"/{cid}-parent/leaf"), (c, cgs[c])
            if bt.is_runc():
                assert cgs[c] == own_cgroup(c).rstrip("/") + f"/{cid}-parent/leaf", c
        runtime.ok(["delete", "--force", cid])
        for c in ("memory", "pids", "cpu", "freezer"):
            assert not (CGROUP_ROOT / c / cgs[c].lstrip("/")).exists(), c
    finally:
        bt.remove_cgroup_dirs(f"{cid}-parent")


def test_absolute_cgroups_path(runtime, bundle, need_v1):
    cid = runtime.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}-top/leaf"
    bundle.set_args("sleep", "1000")
    runtime.create(bundle, cid)
    try:
        pid = runtime.state(cid)["pid"]
        cgs = pid_cgroups(pid)
        for c in ("memory", "pids", "cpu", "freezer", "devices"):
            assert cgs[c] == f"/{cid}-top/leaf", c
            procs = (CGROUP_ROOT / c / f"{cid}-top" / "leaf" / "cgroup.procs").read_text().split()
            assert str(pid) in procs
        runtime.ok(["delete", "--force", cid])
        for c in ("memory", "pids", "cpu", "freezer", "devices"):
            assert not (CGROUP_ROOT / c / f"{cid}-top" / "leaf").exists(), c
    finally:
        bt.remove_cgroup_dirs(f"{cid}-top")


def test_cgroup_dirs_removed_after_delete(runtime, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 64 * MiB}
    bundle.linux["resources"]["pids"] = {"limit": 100}
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    assert bt.cgroup_dirs_named(cid), "the container has no cgroup directories"
    runtime.ok(["kill", cid, "KILL"])
    runtime.wait_status(cid, "stopped")
    runtime.ok(["delete", cid])
    assert bt.cgroup_dirs_named(cid) == []


def test_cgroup_dirs_removed_after_run(runtime, bundle):
    bundle.set_args("true")
    r = runtime.run_container(bundle)
    assert r.returncode == 0
    assert bt.cgroup_dirs_named(r.cid) == []


def test_all_container_processes_in_the_cgroup(runtime, bundle, need_v1):
    bundle.sh("sleep 1000 & sleep 1001 & wait")
    cid = runtime.create_start(bundle)
    pid = runtime.state(cid)["pid"]
    pids = runtime.wait_pids(cid, 3)
    path = pid_cgroups(pid)["memory"]
    procs = sorted(int(p) for p in (CGROUP_ROOT / "memory" / path.lstrip("/") / "cgroup.procs").read_text().split())
    assert procs == sorted(pids)
