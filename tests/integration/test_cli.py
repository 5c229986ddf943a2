"""berth-specific command-line behaviour: entry points, spec, features, --no-pivot, warnings."""
import json
import os
import subprocess
from pathlib import Path

import pytest

import berthtest as bt

pytestmark = pytest.mark.skipif(bt.is_runc(), reason="berth's own entry points and messages")


def test_berth_runtime_and_symlink_are_the_same_program(runtime, tmp_path):
    binary = Path(runtime.binary)
    berth = binary.parent / "berth"
    if not berth.exists():
        pytest.skip("no berth binary beside berth-runtime")
    a = subprocess.run([str(berth), "runtime", "--version"], capture_output=True, text=True)
    b = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    assert a.returncode == 0 and b.returncode == 0
    assert a.stdout == b.stdout
    assert "berth runtime version" in a.stdout
    unknown = subprocess.run([str(berth), "frobnicate"], capture_output=True, text=True)
    assert unknown.returncode == 125
    assert "frobnicate" in unknown.stderr


def test_spec_writes_a_runnable_default_and_refuses_to_overwrite(runtime, tmp_path):
    r = runtime.run(["spec", "--bundle", tmp_path])
    assert r.returncode == 0, r.stderr
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"]
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert {n["type"] for n in spec["linux"]["namespaces"]} >= {"pid", "network", "ipc", "uts", "mount"}
    again = runtime.run(["spec", "--bundle", tmp_path])
    assert again.returncode != 0
    assert "exists" in again.stderr


def test_features_lists_what_is_implemented(runtime):
    r = runtime.ok(["features"])
    f = json.loads(r.stdout)
    assert "time" in f["linux"]["namespaces"] and "user" in f["linux"]["namespaces"]
    assert f["linux"]["seccomp"]["enabled"] is True
    assert "createRuntime" in f["hooks"] and "poststop" in f["hooks"]
    assert "CAP_SYS_ADMIN" in f["linux"]["capabilities"]
    assert "rro" in f["mountOptions"]


def test_no_pivot_runs_in_a_chroot(runtime, bundle):
    bundle.sh("cat /etc/berth-fixture; head -1 /proc/self/mountinfo")
    r = runtime.run_container(bundle, extra=["--no-pivot"])
    assert r.returncode == 0, r.stderr
    assert "berth busybox test image" in r.stdout
    assert str(bundle.path / "rootfs") in r.stdout  # the moved mount still names its source


def test_missing_lsm_and_unknown_capability_warn_but_run(runtime, bundle):
    bundle.process["apparmorProfile"] = "berth-test-profile"
    bundle.process["capabilities"]["bounding"].append("CAP_NOT_A_CAP")
    bundle.set_args("true")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    if not Path("/sys/kernel/security/apparmor").exists():
        assert "apparmor" in r.stderr and "berth-test-profile" in r.stderr
    assert "CAP_NOT_A_CAP" in r.stderr


def test_log_file_gets_json_errors(runtime, tmp_path):
    log = tmp_path / "log.json"
    r = subprocess.run([runtime.binary, "--root", str(runtime.root), "--log", str(log), "--log-format", "json",
                        "state", "no-such-container"], capture_output=True, text=True)
    assert r.returncode == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[-1]["level"] == "error"
    assert "no-such-container" in lines[-1]["msg"]


def test_usage_errors_name_the_flag(runtime):
    r = runtime.run(["create", "--bogus-flag", "x"])
    assert r.returncode == 1
    assert "--bogus-flag" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
