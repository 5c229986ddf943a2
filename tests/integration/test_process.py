"""The container process: args, cwd, env, user, umask, capabilities, rlimits, noNewPrivileges, oomScoreAdj."""
import pytest

import berthtest as bt
from berthtest import cap_mask, proc_status_field


def run_ok(runtime, bundle):
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_args_are_passed_verbatim(runtime, bundle):
    bundle.set_args("sh", "-c", 'for a in "$@"; do echo "[$a]"; done', "argv0", "a b", "", "*", "$HOME")
    assert run_ok(runtime, bundle) == "[a b]\n[]\n[*]\n[$HOME]\n"


def test_args_resolved_through_path(runtime, bundle):
    bundle.process["env"] = ["PATH=/usr/sbin:/bin"]
    bundle.set_args("echo", "found via PATH")
    assert run_ok(runtime, bundle) == "found via PATH\n"


def test_cwd(runtime, bundle):
    bundle.process["cwd"] = "/tmp"
    bundle.set_args("pwd")
    assert run_ok(runtime, bundle) == "/tmp\n"


def test_missing_cwd_is_created(runtime, bundle):
    bundle.process["cwd"] = "/does/not/exist"
    bundle.set_args("pwd")
    assert run_ok(runtime, bundle) == "/does/not/exist\n"
    assert (bundle.rootfs / "does" / "not" / "exist").is_dir()


def test_env_exact(runtime, bundle):
    bundle.process["env"] = ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "HOME=/custom"]
    bundle.set_args("cat", "/proc/self/environ")
    out = run_ok(runtime, bundle)
    assert out.split("\0")[:-1] == ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "HOME=/custom"]


def test_home_is_added_from_passwd(runtime, bundle):
    # like runc: HOME comes from the user's /etc/passwd entry when env has none
    bundle.process["env"] = ["PATH=/bin"]
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.set_args("cat", "/proc/self/environ")
    out = run_ok(runtime, bundle)
    assert sorted(out.split("\0")[:-1]) == ["HOME=/home/app", "PATH=/bin"]


def test_home_for_root(runtime, bundle):
    bundle.process["env"] = ["PATH=/bin"]
    bundle.set_args("cat", "/proc/self/environ")
    assert sorted(run_ok(runtime, bundle).split("\0")[:-1]) == ["HOME=/root", "PATH=/bin"]


def test_user_uid_gid_additional_gids(runtime, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 100]}
    bundle.sh("id; grep -E '^(Uid|Gid|Groups):' /proc/self/status")
    out = run_ok(runtime, bundle).splitlines()
    assert out[0] == "uid=1000(app) gid=1000(app) groups=5(tty),100"
    assert out[1].split() == ["Uid:", "1000", "1000", "1000", "1000"]
    assert out[2].split() == ["Gid:", "1000", "1000", "1000", "1000"]
    assert out[3].split() == ["Groups:", "5", "100"]


def test_user_without_passwd_entry(runtime, bundle):
    bundle.process["user"] = {"uid": 4242, "gid": 4343}
    bundle.process["env"] = ["PATH=/bin"]
    bundle.sh("id -u; id -g; echo HOME=$HOME")
    # runc falls back to HOME=/ for a uid that has no passwd entry
    assert run_ok(runtime, bundle).splitlines() == ["4242", "4343", "HOME=/"]


def test_root_has_no_supplementary_groups_by_default(runtime, bundle):
    bundle.set_args("grep", "^Groups:", "/proc/self/status")
    assert run_ok(runtime, bundle).split() == ["Groups:"]


def test_umask(runtime, bundle):
    bundle.process["user"]["umask"] = 0o077
    bundle.sh("umask; touch /tmp/f; stat -c %a /tmp/f")
    assert run_ok(runtime, bundle).splitlines() == ["0077", "600"]


def test_default_umask_is_0022(runtime, bundle):
    bundle.set_args("sh", "-c", "umask")
    assert run_ok(runtime, bundle) == "0022\n"


def caps_of(out: str) -> dict:
    return {f: int(proc_status_field(out, f), 16) for f in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_default_capabilities(runtime, bundle):
    bundle.set_args("cat", "/proc/self/status")
    caps = caps_of(run_ok(runtime, bundle))
    m = cap_mask(bt.DEFAULT_CAPS)
    assert caps == {"CapInh": 0, "CapPrm": m, "CapEff": m, "CapBnd": m, "CapAmb": 0}


def test_reduced_capabilities_for_root(runtime, bundle):
    c = ["CAP_CHOWN", "CAP_KILL"]
    bundle.process["capabilities"] = {"bounding": c, "effective": c, "permitted": c}
    bundle.sh("cat /proc/self/status; chown 1000 /tmp; echo chown-rc=$?; chroot / true; echo chroot-rc=$?")
    r = runtime.run_container(bundle)
    caps = caps_of(r.stdout)
    m = cap_mask(c)
    assert caps == {"CapInh": 0, "CapPrm": m, "CapEff": m, "CapBnd": m, "CapAmb": 0}
    assert "chown-rc=0" in r.stdout
    assert "chroot-rc=1" in r.stdout  # CAP_SYS_CHROOT was dropped


def test_no_capabilities(runtime, bundle):
    bundle.process["capabilities"] = {}
    bundle.set_args("cat", "/proc/self/status")
    caps = caps_of(run_ok(runtime, bundle))
    assert caps == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}


def test_ambient_and_inheritable_for_non_root(runtime, bundle):
    # After execve a non-root process keeps only ambient caps in permitted/effective;
    # inheritable and bounding carry over as configured.
    c = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {
        "bounding": c,
        "effective": c[1:],
        "permitted": c[1:],
        "inheritable": c[1:],
        "ambient": c[2:],
    }
    bundle.set_args("cat", "/proc/self/status")
    caps = caps_of(run_ok(runtime, bundle))
    assert caps == {
        "CapInh": cap_mask(c[1:]),
        "CapPrm": cap_mask(c[2:]),
        "CapEff": cap_mask(c[2:]),
        "CapBnd": cap_mask(c),
        "CapAmb": cap_mask(c[2:]),
    }


def test_non_root_without_ambient_has_no_effective_caps(runtime, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.set_args("cat", "/proc/self/status")
    caps = caps_of(run_ok(runtime, bundle))
    assert caps["CapEff"] == 0 and caps["CapPrm"] == 0 and caps["CapAmb"] == 0
    assert caps["CapBnd"] == cap_mask(bt.DEFAULT_CAPS)


def test_unknown_capability_is_ignored_with_warning(runtime, bundle):
    # runc 1.1: 'level=warning msg="ignoring unknown or unavailable capabilities: [CAP_NOT_A_CAP]"',
    # and the known capabilities still apply.
    bundle.process["capabilities"]["bounding"].append("CAP_NOT_A_CAP")
    bundle.set_args("grep", "^CapBnd:", "/proc/self/status")
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert "CAP_NOT_A_CAP" in r.stderr
    assert int(r.stdout.split()[1], 16) == cap_mask(bt.DEFAULT_CAPS)


def test_rlimits(runtime, bundle):
    bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
        {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]
    bundle.sh("ulimit -n; ulimit -Hn; grep -E '^Max (open files|processes|core file size)' /proc/self/limits")
    out = run_ok(runtime, bundle).splitlines()
    assert out[0:2] == ["1000", "2000"]
    limits = {" ".join(line.split()[:-3]): line.split()[-3:-1] for line in out[2:]}
    assert limits["Max core file size"] == ["0", "0"]
    assert limits["Max processes"] == ["500", "600"]
    assert limits["Max open files"] == ["1000", "2000"]


def test_rlimit_above_hard_limit_fails(runtime, bundle):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    bt_caps = open("/proc/self/status").read()
    if int(proc_status_field(bt_caps, "CapEff"), 16) & (1 << bt.CAP_NUMBERS["CAP_SYS_RESOURCE"]):
        pytest.skip("the test process has CAP_SYS_RESOURCE, so raising the hard limit would succeed")
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard + 1000, "hard": hard + 1000}]
    bundle.set_args("true")
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.container_dirs() == []


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(runtime, bundle, nnp):
    bundle.process["noNewPrivileges"] = nnp
    bundle.set_args("grep", "^NoNewPrivs:", "/proc/self/status")
    assert run_ok(runtime, bundle).split() == ["NoNewPrivs:", "1" if nnp else "0"]


@pytest.mark.parametrize("adj", [500, 1000, 0])
def test_oom_score_adj(runtime, bundle, adj):
    bundle.process["oomScoreAdj"] = adj
    bundle.set_args("cat", "/proc/self/oom_score_adj")
    assert run_ok(runtime, bundle) == f"{adj}\n"


def test_cmdline_is_the_configured_args(runtime, bundle):
    # argv (including argv[0]) of the container process is exactly process.args
    bundle.set_args("cat", "/proc/self/cmdline")
    assert run_ok(runtime, bundle) == "cat\0/proc/self/cmdline\0"


def test_missing_executable_fails(runtime, bundle):
    bundle.set_args("/no/such/binary")
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert "/no/such/binary" in r.stderr
    assert runtime.container_dirs() == []
