"""`berth volume create/ls/inspect/rm/prune`: docker's syntax, output and exit codes, and crash safety
(a kill -9 at every step of create and rm, then the next command reconciles)."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from imagetest import BERTH, Berth

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def b(tmp_path) -> Berth:
    return Berth(tmp_path / "root")


def db_rows(root: Path) -> dict:
    con = sqlite3.connect(str(root / "state.db"))
    try:
        return {n: s for n, s in con.execute("SELECT name, state FROM volumes")}
    finally:
        con.close()


def add_user(root: Path, cid: str, name: str, volume: str):
    """What the engine writes when a container uses a volume."""
    con = sqlite3.connect(str(root / "state.db"))
    with con:
        con.execute("INSERT INTO containers(id, name, image_id, image_name, created_ns, state, config) "
                    "VALUES(?, ?, 'sha256:x', 'img', 0, 'created', '{}')", (cid, name))
        con.execute("INSERT INTO container_volumes(container_id, volume) VALUES(?, ?)", (cid, volume))
    con.close()


def drop_users(root: Path):
    con = sqlite3.connect(str(root / "state.db"))
    with con:
        con.execute("DELETE FROM container_volumes")
        con.execute("DELETE FROM containers")
    con.close()


def consistent(root: Path):
    """No row pointing at nothing, no directory without a row, no intent left."""
    rows = db_rows(root)
    assert all(s == "ready" for s in rows.values()), rows
    dirs = {p.name for p in (root / "volumes").iterdir()}
    assert set(rows) == dirs, (rows, dirs)
    for n in rows:
        assert (root / "volumes" / n / "_data").is_dir(), n


def test_create_prints_the_name_and_makes_the_directory(b):
    assert b.ok("volume", "create", "data") == "data\n"
    assert (b.root / "volumes/data/_data").is_dir()
    assert oct((b.root / "volumes/data/_data").stat().st_mode & 0o7777) == "0o755"
    # An existing name is returned as is (docker), even with other labels.
    assert b.ok("volume", "create", "--label", "x=y", "data") == "data\n"
    assert json.loads(b.ok("volume", "inspect", "data"))[0]["Labels"] == {}
    # --name is docker's older spelling.
    assert b.ok("volume", "create", "--name", "other") == "other\n"


def test_create_without_a_name_makes_a_random_64_hex_name(b):
    name = b.ok("volume", "create").strip()
    assert HEX64.match(name)
    assert name in b.ok("volume", "ls", "-q").split()


def test_inspect_prints_dockers_json(b):
    b.ok("volume", "create", "--label", "a=1", "--label", "flag", "-o", "type=tmpfs", "--opt", "device=tmpfs",
         "-o", "o=size=1m,uid=1000", "tv")
    out = b.ok("volume", "inspect", "tv")
    assert out.startswith("[\n    {\n")
    [v] = json.loads(out)
    assert sorted(v) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert v["Name"] == "tv"
    assert v["Driver"] == "local"
    assert v["Scope"] == "local"
    assert v["Labels"] == {"a": "1", "flag": ""}
    assert v["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000"}
    assert v["Mountpoint"] == str(b.root / "volumes/tv/_data")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$", v["CreatedAt"])
    b.ok("volume", "create", "plain")
    [p] = json.loads(b.ok("volume", "inspect", "plain"))
    assert p["Labels"] == {} and p["Options"] == {}
    assert b.ok("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{json .Labels}}", "tv", "plain") == \
        'tv local {"a":"1","flag":""}\nplain local {}\n'


def test_inspect_of_a_missing_volume_fails_after_printing_the_others(b):
    b.ok("volume", "create", "here")
    r = b.run("volume", "inspect", "here", "gone")
    assert r.returncode == 1
    assert [v["Name"] for v in json.loads(r.stdout)] == ["here"]
    assert "No such volume: gone" in r.stderr
    r = b.run("volume", "inspect", "gone")
    assert r.returncode == 1 and r.stdout == "[]\n"


@pytest.mark.parametrize("name", ["../x", "a/b", ".x", "x", "_x", "a b", "../../etc"])
def test_invalid_names_are_refused_like_docker(b, name):
    r = b.fails("volume", "create", name)
    assert r.returncode == 1  # docker's daemon refuses them: exit 1, not a usage error
    assert f"create {name}:" in r.stderr
    assert not (b.root / "x").exists() and not (b.root.parent / "x").exists()
    vols = b.root / "volumes"
    assert not vols.exists() or list(vols.iterdir()) == []


def test_bad_options_driver_and_usage(b):
    r = b.fails("volume", "create", "-o", "foo=bar", "v1")
    assert r.returncode == 1 and 'invalid option key: "foo"' in r.stderr
    r = b.fails("volume", "create", "-o", "type=tmpfs", "v1")
    assert r.returncode == 1 and 'missing required option: "device"' in r.stderr
    r = b.fails("volume", "create", "-d", "flocker", "v1")
    assert r.returncode == 1 and 'plugin "flocker" not found' in r.stderr
    assert b.run("volume", "create", "a1", "a2").returncode == 125
    assert b.run("volume", "create", "--bogus", "a1").returncode == 125
    assert b.run("volume", "create", "--name", "a1", "a2").returncode == 125
    assert b.run("volume", "inspect").returncode == 125
    assert b.run("volume", "rm").returncode == 125
    assert b.run("volume", "ls", "extra").returncode == 125
    assert b.ok("volume", "ls", "-q") == ""


def test_ls_table_quiet_format_and_filters(b):
    for args in (["v10"], ["v2"], ["--label", "tier=db", "db1"], ["--label", "tier=web", "web1"]):
        b.ok("volume", "create", *args)
    out = b.ok("volume", "ls")
    assert out.splitlines()[0] == "DRIVER    VOLUME NAME"
    # docker's natural order: v2 before v10.
    assert [l.split()[1] for l in out.splitlines()[1:]] == ["db1", "v2", "v10", "web1"]
    assert out.splitlines()[1] == "local     db1"
    assert b.ok("volume", "ls", "-q") == "db1\nv2\nv10\nweb1\n"
    assert b.ok("volume", "ls", "-q", "--filter", "label=tier") == "db1\nweb1\n"
    assert b.ok("volume", "ls", "-q", "--filter", "label=tier=db") == "db1\n"
    assert b.ok("volume", "ls", "-q", "-f", "name=v") == "v2\nv10\n"
    assert b.ok("volume", "ls", "-q", "-f", "name=^v1") == "v10\n"
    assert b.ok("volume", "ls", "-q", "-f", "driver=local", "-f", "label=tier=web") == "web1\n"
    add_user(b.root, "c" * 64, "app", "v2")
    assert b.ok("volume", "ls", "-q", "-f", "dangling=false") == "v2\n"
    assert b.ok("volume", "ls", "-q", "-f", "dangling=true") == "db1\nv10\nweb1\n"
    assert b.ok("volume", "ls", "--format", "{{.Name}}:{{.Driver}}:{{.Scope}}:{{.Labels}}", "-f", "name=db") == \
        "db1:local:local:tier=db\n"
    assert b.ok("volume", "ls", "--format", "table {{.Name}}\t{{.Mountpoint}}", "-f", "name=web").splitlines() == [
        "VOLUME NAME   MOUNTPOINT", f"web1          {b.root}/volumes/web1/_data"]
    row = json.loads(b.ok("volume", "ls", "--format", "json", "-f", "name=web1"))
    assert row["Name"] == "web1" and row["Driver"] == "local"
    r = b.fails("volume", "ls", "-f", "color=blue")
    assert r.returncode == 1 and "invalid filter 'color'" in r.stderr
    assert b.fails("volume", "ls", "-f", "dangling=maybe").returncode == 1


def test_rm_removes_data_refuses_in_use_and_continues(b):
    for n in ("one", "two", "busy"):
        b.ok("volume", "create", n)
    (b.root / "volumes/one/_data/file").write_text("x")
    add_user(b.root, "a" * 64, "web", "busy")
    r = b.run("volume", "rm", "one", "busy", "missing", "two")
    assert r.returncode == 1
    assert r.stdout == "one\ntwo\n"
    assert f"remove busy: volume is in use - [{'a' * 64}]" in r.stderr
    assert "get missing: no such volume" in r.stderr
    assert not (b.root / "volumes/one").exists() and not (b.root / "volumes/two").exists()
    assert (b.root / "volumes/busy/_data").is_dir()
    # -f ignores a missing volume, not a used one.
    assert b.ok("volume", "rm", "-f", "missing") == "missing\n"
    assert b.run("volume", "rm", "-f", "busy").returncode == 1
    drop_users(b.root)
    assert b.ok("volume", "remove", "busy") == "busy\n"
    consistent(b.root)


def test_prune_asks_and_removes_unused_anonymous_volumes(b, tmp_path):
    b.ok("volume", "create", "named")
    # Anonymous volumes come from containers; make one through the engine's path: a volume row
    # created with anonymous=1 (as `run -v /data` does) via the label docker puts on them.
    anon = b.ok("volume", "create", "--label", "com.docker.volume.anonymous=").strip()
    (b.root / "volumes" / anon / "_data/f").write_bytes(b"x" * 1200)
    r = b.run("volume", "prune", input="n\n")
    assert r.returncode == 0
    assert "WARNING! This will remove anonymous local volumes not used by at least one container.\n" \
           "Are you sure you want to continue? [y/N] " in r.stdout
    assert anon in b.ok("volume", "ls", "-q")
    out = b.ok("volume", "prune", input="y\n")
    assert f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 1.2kB\n" in out
    assert b.ok("volume", "ls", "-q") == "named\n"
    # -a takes named ones too; label filters narrow it.
    b.ok("volume", "create", "--label", "keep=1", "kept")
    out = b.ok("volume", "prune", "-a", "-f", "--filter", "label!=keep")
    assert out == "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"
    assert b.ok("volume", "prune", "-f") == "Total reclaimed space: 0B\n"
    assert b.ok("volume", "ls", "-q") == "kept\n"
    consistent(b.root)


def run_with_fault(b: Berth, step: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, BERTH_FAULT=step)
    return subprocess.run([BERTH, "--root", str(b.root), *args], capture_output=True, text=True, env=env,
                          timeout=60)


CREATE_STEPS = ["volume-create.row", "volume-create.dir", "volume-create.data", "volume-create.ready"]
RM_STEPS = ["volume-rm.marked", "volume-rm.unmounted", "volume-rm.deleted"]


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_crash_in_create_is_reconciled(b, step):
    b.ok("volume", "create", "bystander")
    (b.root / "volumes/bystander/_data/precious").write_text("keep me")
    r = run_with_fault(b, step, "volume", "create", "crashy")
    assert r.returncode == -9, (step, r.returncode, r.stderr)
    names = b.ok("volume", "ls", "-q").split()  # the next command reconciles
    consistent(b.root)
    assert (b.root / "volumes/bystander/_data/precious").read_text() == "keep me"
    # Either the create happened completely or not at all; either way it can be done again.
    if "crashy" in names:
        assert (b.root / "volumes/crashy/_data").is_dir()
    assert b.ok("volume", "create", "crashy") == "crashy\n"
    consistent(b.root)


@pytest.mark.parametrize("step", RM_STEPS)
def test_crash_in_rm_is_finished(b, step):
    b.ok("volume", "create", "bystander")
    (b.root / "volumes/bystander/_data/precious").write_text("keep me")
    b.ok("volume", "create", "doomed")
    (b.root / "volumes/doomed/_data/sub").mkdir()
    (b.root / "volumes/doomed/_data/sub/f").write_text("bye")
    r = run_with_fault(b, step, "volume", "rm", "doomed")
    assert r.returncode == -9, (step, r.returncode, r.stderr)
    assert b.ok("volume", "ls", "-q") == "bystander\n"
    consistent(b.root)
    assert (b.root / "volumes/bystander/_data/precious").read_text() == "keep me"


def test_crash_loop_over_every_step_repeatedly(b):
    """Many rounds of create/rm crashes on a growing store: never a dangling row or directory."""
    for i in range(3):
        b.ok("volume", "create", f"keep{i}")
        (b.root / f"volumes/keep{i}/_data/f").write_text(str(i))
        for step in CREATE_STEPS:
            run_with_fault(b, step, "volume", "create", f"c{i}")
            b.ok("volume", "ls")
            consistent(b.root)
        for step in RM_STEPS:
            b.ok("volume", "create", f"r{i}")
            run_with_fault(b, step, "volume", "rm", f"r{i}")
            b.ok("volume", "ls")
            consistent(b.root)
            assert f"r{i}" not in db_rows(b.root)
    for i in range(3):
        assert (b.root / f"volumes/keep{i}/_data/f").read_text() == str(i)


def test_orphan_directories_are_cleaned_or_adopted_never_deleted(b):
    b.ok("volume", "create", "real")
    (b.root / "volumes/skeleton/_data").mkdir(parents=True)
    (b.root / "volumes/withdata/_data").mkdir(parents=True)
    (b.root / "volumes/withdata/_data/important").write_text("x")
    names = b.ok("volume", "ls", "-q").split()
    assert names == ["real", "withdata"]
    assert not (b.root / "volumes/skeleton").exists()
    assert (b.root / "volumes/withdata/_data/important").read_text() == "x"
    consistent(b.root)
