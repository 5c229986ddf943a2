"""Bad input: every failure exits non-zero, says what is wrong on stderr, and leaves nothing behind."""
import json
import shutil

import pytest

import berthtest as bt


def assert_error(r, *keywords):
    """Non-zero exit and a non-empty stderr. For berth: exactly one line. KEYWORDS: one must appear."""
    assert r.returncode != 0, f"unexpected success: {r.args}"
    err = r.stderr.strip()
    assert err, "no error message on stderr"
    if not bt.is_runc():
        assert len(err.splitlines()) == 1, f"expected one error line, got:\n{err}"
    if keywords:
        low = err.lower()
        assert any(k.lower() in low for k in keywords), f"stderr names none of {keywords}: {err}"


def assert_nothing_left(runtime, bundle, cid):
    assert runtime.container_dirs() == [], "a container directory was left in --root"
    assert runtime.run(["state", cid]).returncode != 0
    assert bt.mounts_mentioning(str(bundle.path)) == []
    assert bt.cgroup_dirs_named(cid) == []
    assert bt.procs_rooted_in(bundle.path) == []


def create_fails(runtime, bundle, *keywords, write=True, cid=None):
    cid = cid or runtime.new_id()
    if write:
        bundle.write()
    r = runtime.run(["create", "--bundle", bundle.path, cid],
                    stdout_path=runtime.out_path(cid), stderr_path=runtime.err_path(cid))
    assert_error(r, *keywords)
    assert_nothing_left(runtime, bundle, cid)
    return r


def test_malformed_json(runtime, bundle):
    bundle.write()
    (bundle.path / "config.json").write_text("{]")
    create_fails(runtime, bundle, "config.json", "json", "invalid character", "parse", write=False)


def test_empty_config(runtime, bundle):
    bundle.write()
    (bundle.path / "config.json").write_text("")
    create_fails(runtime, bundle, write=False)


def test_config_not_an_object(runtime, bundle):
    bundle.write()
    (bundle.path / "config.json").write_text("[1, 2, 3]")
    create_fails(runtime, bundle, write=False)


def test_relative_cwd(runtime, bundle):
    bundle.process["cwd"] = "x"
    create_fails(runtime, bundle, "cwd")


def test_wrong_type(runtime, bundle):
    bundle.config["root"]["readonly"] = "yes"
    create_fails(runtime, bundle, "readonly", "bool")


@pytest.mark.xfail(bt.is_runc(), strict=True, reason="runc 1.1 accepts a config without ociVersion (REQUIRED by the spec)")
def test_missing_oci_version(runtime, bundle):
    del bundle.config["ociVersion"]
    create_fails(runtime, bundle, "ociVersion")


def test_missing_process(runtime, bundle):
    del bundle.config["process"]
    create_fails(runtime, bundle, "process")


def test_empty_args(runtime, bundle):
    bundle.process["args"] = []
    create_fails(runtime, bundle, "args")


def test_missing_rootfs(runtime, bundle):
    shutil.rmtree(bundle.rootfs)
    create_fails(runtime, bundle, "rootfs")


def test_missing_config_json(runtime, bundle):
    create_fails(runtime, bundle, "config.json", write=False)


def test_missing_bundle_dir(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    missing = tmp_path / "no-such-bundle"
    r = runtime.run(["create", "--bundle", missing, cid])
    assert_error(r, str(missing), "no such file")
    assert runtime.container_dirs() == []


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "", "-dash", ".", ".seccomp-cache", ".hidden"])
def test_invalid_container_id(runtime, bundle, bad_id):
    bundle.set_args("true")
    bundle.write()
    r = runtime.run(["create", "--bundle", bundle.path, bad_id])
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.container_dirs() == []
    assert not (runtime.root.parent / "escape").exists()


def test_unknown_namespace_type(runtime, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "foo"})
    create_fails(runtime, bundle, "foo", "namespace")


def test_bind_source_missing(runtime, bundle):
    bundle.add_mount(destination="/m", type="bind", source="/nonexistent/bt-src", options=["rbind"])
    bundle.set_args("true")
    create_fails(runtime, bundle, "/nonexistent/bt-src")


def test_duplicate_id(runtime, bundle, make_bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle)
    first = runtime.state(cid)
    other = make_bundle("other")
    other.set_args("sleep", "1000")
    other.write()
    r = runtime.run(["create", "--bundle", other.path, cid])
    assert_error(r, "exists", "already")
    # the original container is untouched
    st = runtime.state(cid)
    assert (st["pid"], st["status"], st["bundle"]) == (first["pid"], "created", str(bundle.path))
    assert bt.procs_rooted_in(other.path) == []
    assert bt.mounts_mentioning(str(other.path)) == []


def test_duplicate_id_with_run(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    r = runtime.run(["run", "--bundle", bundle.path, cid])
    assert_error(r, "exists", "already")
    assert runtime.status(cid) == "running"


@pytest.mark.parametrize("command", [
    ["state"], ["start"], ["kill"], ["kill", "--all"], ["delete"], ["pause"], ["resume"], ["ps"],
])
def test_unknown_id(runtime, command):
    cid = bt.new_id()
    r = runtime.run(command + [cid])
    assert_error(r, "not exist", "no such", "not found", "unknown")


def test_delete_force_of_unknown_id_succeeds(runtime):
    # runc makes `delete --force` idempotent: an unknown id is not an error (containerd relies on it)
    r = runtime.run(["delete", "--force", bt.new_id()])
    assert r.returncode == 0
    assert r.stderr == ""


def test_missing_id_argument(runtime):
    r = runtime.run(["state"])
    assert_error(r)


def test_unknown_command(runtime):
    r = runtime.run(["frobnicate"])
    assert r.returncode != 0
    assert r.stderr.strip()


@pytest.mark.parametrize("sig", ["SIGFOO", "FOO", "99", "0x9"])
def test_unknown_signal(runtime, bundle, sig):
    bundle.set_args("sleep", "1000")
    cid = runtime.create_start(bundle)
    r = runtime.run(["kill", cid, sig])
    assert_error(r)
    assert runtime.status(cid) == "running"


def test_create_failure_in_container_init_leaves_nothing(runtime, bundle):
    # a failure late in the container's setup, inside its mount namespace: a bind mount whose
    # destination runs through a regular file
    (bundle.rootfs / "blocker").write_text("a file, not a directory")
    src = bundle.path / "src-dir"
    src.mkdir()
    bundle.add_mount(destination="/blocker/sub", type="bind", source=str(src), options=["rbind"])
    bundle.set_args("true")
    create_fails(runtime, bundle)
    assert (bundle.rootfs / "blocker").read_text() == "a file, not a directory"


def test_state_json_is_valid_after_errors(runtime, bundle):
    # a failed create must not corrupt `list`
    bundle.write()
    (bundle.path / "config.json").write_text("{]")
    cid = runtime.new_id()
    runtime.run(["create", "--bundle", bundle.path, cid])
    r = runtime.ok(["list", "--format", "json"])
    assert json.loads(r.stdout or "null") in (None, [])
