"""Pure cgroup v2, end to end: the runtime runs in a private mount namespace
whose /sys/fs/cgroup is a cgroup2 mount (the host's v1 hierarchies hidden), so
the v2 code paths (clone into cgroup, eBPF device filter, cgroup.freeze,
cgroup.procs) run for real on this hybrid host."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import berthtest as bt


def _unified_root_ok() -> bool:
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && "
                        "test -e /sys/fs/cgroup/cgroup.procs"], capture_output=True)
    return r.returncode == 0


pytestmark = [
    pytest.mark.skipif(bt.is_runc(), reason="runc 1.1 checks cgroup v2 via systemd-less paths differently"),
    pytest.mark.skipif(not _unified_root_ok(), reason="cannot mount a private cgroup2 hierarchy here"),
]


def _clean_v2_leaf(cid):
    leaf = Path("/sys/fs/cgroup/unified") / cid
    if not leaf.exists():
        return
    for line in (leaf / "cgroup.procs").read_text().split():
        try:
            os.kill(int(line), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    for _ in range(50):
        try:
            leaf.rmdir()
            return
        except OSError:
            time.sleep(0.05)


def test_lifecycle_on_pure_cgroup_v2(runtime, bundle):
    cid = runtime.new_id()
    runtime.ids.append(cid)
    bundle.set_args("sleep", "300")
    # A node for /dev/kmsg (1:11) exists in the container, but the eBPF device
    # filter (deny all, then the default allow-list) must refuse opening it.
    bundle.linux.setdefault("resources", {})["devices"] = [{"allow": False, "access": "rwm"}]
    bundle.linux.setdefault("devices", []).append(
        {"path": "/dev/berth-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666})
    bundle.write()
    rt = f"{runtime.binary} --root {runtime.root}"
    script = f"""
set -e
umount -l /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
{rt} run -d --bundle {bundle.path} {cid} >/dev/null 2>&1 </dev/null
pid=$({rt} state {cid} | sed -n 's/.*"pid": \\([0-9]*\\).*/\\1/p')
echo "cgroup=$(grep '^0::' /proc/$pid/cgroup)"
echo "incg=$(cat /sys/fs/cgroup/{cid}/cgroup.procs)"
echo "pid=$pid"
{rt} exec {cid} sh -c 'echo x > /dev/null && echo null-ok; test -c /dev/berth-kmsg && echo node-ok; head -c1 /dev/berth-kmsg >/dev/null 2>&1 && echo kmsg-open || echo kmsg-denied'
{rt} pause {cid}
echo "paused=$({rt} state {cid} | grep -o '"status": "[a-z]*"')"
echo "frozen=$(cat /sys/fs/cgroup/{cid}/cgroup.freeze)"
{rt} resume {cid}
echo "resumed=$({rt} state {cid} | grep -o '"status": "[a-z]*"')"
echo "ps=$({rt} ps --format json {cid})"
{rt} kill {cid} KILL
for i in $(seq 100); do {rt} state {cid} | grep -q stopped && break; sleep 0.05; done
{rt} delete {cid}
test -e /sys/fs/cgroup/{cid} && echo "left=yes" || echo "left=no"
"""
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=120)
    finally:
        # After a failure, end what is left in the container's v2 leaf (only ours) and remove it.
        _clean_v2_leaf(cid)
    out = r.stdout
    assert r.returncode == 0, f"stdout: {out}\nstderr: {r.stderr}"
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert fields["cgroup"].strip() == f"0::/{cid}"
    assert fields["pid"] in fields["incg"].split()
    assert "null-ok" in out and "node-ok" in out and "kmsg-denied" in out
    assert fields["paused"] == '"status": "paused"'
    assert fields["frozen"] == "1"
    assert fields["resumed"] == '"status": "running"'
    assert int(fields["pid"]) in json.loads(fields["ps"])
    assert fields["left"] == "no"
