"""Seccomp filters from linux.seccomp, including Docker's default profile converted to OCI."""
import json
import platform

import pytest

import berthtest as bt

X86_ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


@pytest.fixture(autouse=True)
def _x86_64_only():
    if platform.machine() != "x86_64":
        pytest.skip("the seccomp tests name x86_64 architectures")


def allow_all_but(*rules, **extra) -> dict:
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": list(X86_ARCHES), "syscalls": list(rules)}
    prof.update(extra)
    return prof


def test_errno_rule_blocks_mkdir(runtime, bundle):
    bundle.linux["seccomp"] = allow_all_but(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    bundle.sh("mkdir /tmp/x; echo mkdir=$?; touch /tmp/y; echo touch=$?; grep ^Seccomp: /proc/self/status")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["mkdir=1", "touch=0", "Seccomp:\t2"]
    assert "mkdir: can't create directory '/tmp/x': Operation not permitted" in r.stderr
    assert not (bundle.rootfs / "tmp" / "x").exists()
    assert (bundle.rootfs / "tmp" / "y").exists()


def test_errno_ret_is_used(runtime, bundle):
    bundle.linux["seccomp"] = allow_all_but({"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    bundle.sh("cd /tmp; echo cd=$?")
    r = runtime.run_container(bundle)
    assert "Function not implemented" in r.stderr  # ENOSYS == 38
    assert "cd=" in r.stdout and "cd=0" not in r.stdout


def test_errno_defaults_to_eperm(runtime, bundle):
    bundle.linux["seccomp"] = allow_all_but({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    bundle.sh("mkdir /tmp/x")
    r = runtime.run_container(bundle)
    assert r.returncode == 1
    assert "Operation not permitted" in r.stderr


def test_default_errno_ret(runtime, bundle):
    # deny-by-default profile: everything not listed fails with defaultErrnoRet
    prof = docker_default_profile(bt.DEFAULT_CAPS)
    prof["defaultErrnoRet"] = 13  # EACCES
    bundle.linux["seccomp"] = prof
    bundle.sh("unshare -U true")
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert "Permission denied" in r.stderr


def test_kill_action(runtime, bundle):
    bundle.linux["seccomp"] = allow_all_but({"names": ["rmdir"], "action": "SCMP_ACT_KILL"})
    bundle.sh("rmdir /tmp; echo rmdir=$?")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "rmdir=159\n"  # 128 + SIGSYS
    assert (bundle.rootfs / "tmp").is_dir()


def test_argument_filter(runtime, bundle):
    # personality(PER_LINUX32) is refused, personality(PER_LINUX) is not
    bundle.linux["seccomp"] = allow_all_but(
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]})
    bundle.sh("linux64 true; echo l64=$?; linux32 true; echo l32=$?")
    r = runtime.run_container(bundle)
    assert r.stdout.splitlines() == ["l64=0", "l32=1"]
    assert "personality(0x8): Operation not permitted" in r.stderr


def test_unknown_syscall_names_are_ignored(runtime, bundle):
    # runc skips names libseccomp does not know (profiles outlive kernels)
    bundle.linux["seccomp"] = allow_all_but(
        {"names": ["not_a_syscall", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    bundle.sh("mkdir /tmp/x; echo mkdir=$?")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "mkdir=1\n"


def test_invalid_action_is_rejected(runtime, bundle):
    bundle.linux["seccomp"] = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"})
    bundle.set_args("true")
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.container_dirs() == []


def test_seccomp_applies_to_exec(runtime, bundle):
    bundle.linux["seccomp"] = allow_all_but(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    r = runtime.exec(cid, "mkdir", "/tmp/from-exec")
    assert r.returncode == 1
    assert "Operation not permitted" in r.stderr
    assert not (bundle.rootfs / "tmp" / "from-exec").exists()


# --- Docker's default profile -------------------------------------------------

DOCKER_PROFILE = bt.SHARED_SPECS / "seccomp-default.json"
DOCKER_ARCH_NAMES = {"amd64", "x86", "x32"}  # the profile's names for what runs here


def _kernel_at_least(version: str) -> bool:
    want = tuple(int(x) for x in version.split("."))
    have = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:len(want)])
    return have >= want


def docker_default_profile(caps) -> dict:
    """Converts moby's profile (with includes/excludes) into a plain OCI linux.seccomp."""
    if not DOCKER_PROFILE.is_file():
        pytest.skip(f"{DOCKER_PROFILE} is missing")
    src = json.loads(DOCKER_PROFILE.read_text())
    caps = set(caps)
    arch = next(a for a in src["archMap"] if a["architecture"] == "SCMP_ARCH_X86_64")
    out = {
        "defaultAction": src["defaultAction"],
        "architectures": [arch["architecture"]] + (arch["subArchitectures"] or []),
        "syscalls": [],
    }
    if "defaultErrnoRet" in src:
        out["defaultErrnoRet"] = src["defaultErrnoRet"]
    for entry in src["syscalls"]:
        inc = entry.get("includes") or {}
        exc = entry.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if inc.get("arches") and not set(inc["arches"]) & DOCKER_ARCH_NAMES:
            continue
        if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]):
            continue
        if exc.get("caps") and set(exc["caps"]) & caps:
            continue
        if exc.get("arches") and set(exc["arches"]) & DOCKER_ARCH_NAMES:
            continue
        rule = {"names": entry["names"], "action": entry["action"]}
        for k in ("errnoRet", "args"):
            if entry.get(k) is not None:
                rule[k] = entry[k]
        out["syscalls"].append(rule)
    return out


def test_docker_default_profile_runs_normal_programs(runtime, bundle):
    bundle.linux["seccomp"] = docker_default_profile(bt.DEFAULT_CAPS)
    bundle.sh("true && echo true-ok; mkdir /tmp/d && echo mkdir-ok; ls / >/dev/null && echo ls-ok;"
              " sleep 0 & wait && echo fork-ok")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["true-ok", "mkdir-ok", "ls-ok", "fork-ok"]


def test_docker_default_profile_blocks_unshare(runtime, bundle):
    # control: without the profile the unprivileged user namespace is allowed
    bundle.set_args("unshare", "-U", "true")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, f"unshare -U fails even without seccomp: {r.stderr}"
    bundle.linux["seccomp"] = docker_default_profile(bt.DEFAULT_CAPS)
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr


def test_docker_default_profile_argument_rules(runtime, bundle):
    # personality() is allowed only for the listed values: 0x0 (linux64) and 0x8 (linux32) are;
    # mount is refused (no CAP_SYS_ADMIN, so not in the converted profile either).
    bundle.linux["seccomp"] = docker_default_profile(bt.DEFAULT_CAPS)
    bundle.sh("linux32 true; echo l32=$?; linux64 true; echo l64=$?; mount -t tmpfs t /mnt; echo mount=$?;"
              " grep ^Seccomp: /proc/self/status")
    r = runtime.run_container(bundle)
    assert r.stdout.splitlines() == ["l32=0", "l64=0", "mount=1", "Seccomp:\t2"]
    assert "mount: permission denied" in r.stderr  # busybox's wording for EPERM


def test_profile_that_predates_close_range(runtime, bundle):
    # An allow-list written before close_range existed (the runtime-tools generator's default is
    # one): the runtime's own close-on-exec sweep must not run under it. No no_new_privileges, so
    # the filter is loaded before the runtime drops privileges.
    prof = docker_default_profile(bt.DEFAULT_CAPS)
    for rule in prof["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n != "close_range"]
    bundle.linux["seccomp"] = prof
    bundle.process["noNewPrivileges"] = False
    bundle.sh("echo ran; ls -l /proc/self/fd | grep -c -- '->'")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "ran"
    assert int(lines[1]) <= 4, r.stdout  # stdio plus ls's own directory fd: nothing of the runtime's


def test_profile_refusing_getcwd_is_reported_as_such(runtime, bundle):
    # Without no_new_privileges the filter is in place before the runtime checks the cwd with
    # getcwd (CVE-2024-21626), so that check fails as runc's does; the error says why.
    bundle.linux["seccomp"] = allow_all_but({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    bundle.process["noNewPrivileges"] = False
    bundle.set_args("true")
    cid = runtime.new_id()
    r = runtime.create(bundle, cid, check=False)
    assert r.returncode != 0
    assert "getcwd" in r.stderr and "Operation not permitted" in r.stderr, r.stderr
    assert "outside the container root" not in r.stderr
