"""The data stories (docker 28 behaviour): the writable layer, bind mounts, named and anonymous
volumes with copy-up, sharing, tmpfs, --read-only, and bad input that must create nothing."""
from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from containertest import Engine, busybox_tar, engine, import_busybox, poll  # noqa: F401

FULL_ID = re.compile(r"^[0-9a-f]{64}$")
LOOP = ["sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done"]


def volumes(engine: Engine) -> list[str]:
    return sorted(l for l in engine.ok("volume", "ls", "-q").split() if l)


def volume_path(engine: Engine, name: str) -> Path:
    return Path(json.loads(engine.ok("volume", "inspect", name))[0]["Mountpoint"])


def mounts_of(engine: Engine, name: str) -> dict:
    return {m["Destination"]: m for m in engine.inspect(name)["Mounts"]}


@pytest.fixture(scope="session")
def seeded_tar(busybox_tar, tmp_path_factory):
    """The busybox rootfs plus /data: a 0770 1000:1000 directory with seed.txt (1000:1000 0750),
    sub/deep.txt (0:1000 0640, in a 0700 dir) and link -> seed.txt."""
    out_path = tmp_path_factory.mktemp("seeded") / "seeded.tar"
    with tarfile.open(busybox_tar) as src, tarfile.open(out_path, "w", format=tarfile.GNU_FORMAT) as out:
        for m in src.getmembers():
            out.addfile(m, src.extractfile(m) if m.isfile() else None)

        def add(name, kind, mode, uid, gid, data=b"", target=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, 1700000000
            if kind == tarfile.SYMTYPE:
                ti.linkname = target
            ti.size = len(data) if kind == tarfile.REGTYPE else 0
            out.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("./data", tarfile.DIRTYPE, 0o770, 1000, 1000)
        add("./data/seed.txt", tarfile.REGTYPE, 0o750, 1000, 1000, b"seed\n")
        add("./data/sub", tarfile.DIRTYPE, 0o700, 1000, 1000)
        add("./data/sub/deep.txt", tarfile.REGTYPE, 0o640, 0, 1000, b"deep\n")
        add("./data/link", tarfile.SYMTYPE, 0o777, 0, 0, target="seed.txt")
    return out_path


@pytest.fixture
def seeded(engine, seeded_tar):
    """seeded:1 (no VOLUME) and seeded:vol (VOLUME /data) imported into the engine."""
    import_busybox(engine, seeded_tar, "seeded:1")
    import_busybox(engine, seeded_tar, "seeded:vol", "VOLUME /data")
    return engine


def assert_seed_copied(d: Path):
    st = d.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o770, 1000, 1000)
    seed = d / "seed.txt"
    st = seed.lstat()
    assert seed.read_bytes() == b"seed\n"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1000, 1000)
    st = (d / "sub").lstat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 1000, 1000)
    st = (d / "sub" / "deep.txt").lstat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, 1000)
    assert (d / "sub" / "deep.txt").read_bytes() == b"deep\n"
    assert (d / "link").is_symlink() and os.readlink(d / "link") == "seed.txt"


# ---------------------------------------------------------------------------------------------
# (a) the writable layer


def test_writable_layer_survives_stop_start_and_restart(engine):
    engine.ok("create", "--name", "ww", "busybox", "sh", "-c",
              "trap 'exit 0' TERM; cat /state 2>/dev/null; echo gen >> /state; echo ready; "
              "while :; do sleep 0.1; done")
    engine.ok("start", "ww")
    engine.wait_log("ww", "ready")
    engine.ok("stop", "ww")
    engine.ok("start", "ww")
    poll(lambda: engine.ok("logs", "ww").count("ready") == 2, "the second start")
    engine.ok("restart", "-t", "1", "ww")
    poll(lambda: engine.ok("logs", "ww").count("ready") == 3, "the restart")
    assert engine.ok("logs", "ww") == "ready\ngen\nready\ngen\ngen\nready\n"


def test_writable_layer_gone_after_rm(engine):
    engine.ok("run", "--name", "ww", "busybox", "sh", "-c", "echo data > /state; rm /etc/berth-fixture")
    cid = engine.inspect("ww")["Id"]
    engine.ok("rm", "ww")
    assert not (engine.root / "containers" / cid).exists()
    # a new container from the same image starts from the image alone
    r = engine.run("run", "--rm", "busybox", "sh", "-c", "cat /state; cat /etc/berth-fixture")
    assert r.returncode == 0
    assert "No such file or directory" in r.stderr
    assert r.stdout == "berth busybox test image\n"


def test_containers_from_one_image_do_not_share_the_layer(engine):
    engine.ok("run", "--name", "aa", "busybox", "sh", "-c", "echo a > /mine")
    r = engine.run("run", "--name", "bb", "busybox", "cat", "/mine")
    assert r.returncode == 1
    assert "No such file or directory" in r.stderr


# ---------------------------------------------------------------------------------------------
# (b) bind mounts


def test_bind_mount_read_write(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    out = engine.ok("run", "--rm", "-v", f"{host}:/ctr", "busybox", "sh", "-c", "cat /ctr/in.txt; echo back > /ctr/out.txt")
    assert out == "from host\n"
    assert (host / "out.txt").read_text() == "back\n"


def test_bind_mount_read_only_is_enforced(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    (host / "in.txt").write_text("keep\n")
    r = engine.run("run", "--rm", "-v", f"{host}:/ctr:ro", "busybox", "sh", "-c",
                   "cat /ctr/in.txt; echo x > /ctr/in.txt")
    assert r.returncode != 0
    assert r.stdout == "keep\n"
    assert "Read-only file system" in r.stderr
    assert (host / "in.txt").read_text() == "keep\n"
    r = engine.run("run", "--rm", "--mount", f"type=bind,src={host},dst=/ctr,readonly", "busybox", "touch", "/ctr/new")
    assert r.returncode == 1 and "Read-only file system" in r.stderr
    assert sorted(p.name for p in host.iterdir()) == ["in.txt"]


def test_bind_mount_read_only_is_recursive(engine, tmp_path):
    host = tmp_path / "h"
    sub = host / "sub"
    sub.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(sub)], check=True)
    try:
        (sub / "inner.txt").write_text("inner\n")
        r = engine.run("run", "--rm", "-v", f"{host}:/ctr:ro", "busybox", "sh", "-c",
                       "cat /ctr/sub/inner.txt; touch /ctr/sub/new")
        assert r.stdout == "inner\n"  # the sub-mount is visible (rbind)
        assert r.returncode == 1
        assert "Read-only file system" in r.stderr
        assert sorted(p.name for p in sub.iterdir()) == ["inner.txt"]
        # and read-write when rw
        engine.ok("run", "--rm", "-v", f"{host}:/ctr", "busybox", "touch", "/ctr/sub/new")
        assert (sub / "new").exists()
    finally:
        subprocess.run(["umount", "-l", str(sub)], check=False)


def test_bind_mount_creates_a_missing_host_dir(engine, tmp_path):
    host = tmp_path / "missing" / "deep"
    engine.ok("run", "--rm", "-v", f"{host}:/ctr", "busybox", "sh", "-c", "echo made > /ctr/f")
    assert host.is_dir()
    assert (host / "f").read_text() == "made\n"


def test_mount_bind_refuses_a_missing_source(engine, tmp_path):
    host = tmp_path / "missing"
    before = engine.snapshot()
    r = engine.fails("run", "--mount", f"type=bind,source={host},target=/ctr", "busybox", "true")
    assert r.returncode == 125
    assert f"bind source path does not exist: {host}" in r.stderr
    assert not host.exists()
    assert engine.snapshot() == before


def test_bind_mount_single_file(engine, tmp_path):
    f = tmp_path / "conf"
    f.write_text("setting=1\n")
    assert engine.ok("run", "--rm", "-v", f"{f}:/etc/app.conf:ro", "busybox", "cat", "/etc/app.conf") == "setting=1\n"
    engine.ok("run", "--rm", "-v", f"{f}:/etc/app.conf", "busybox", "sh", "-c", "echo setting=2 >> /etc/app.conf")
    assert f.read_text() == "setting=1\nsetting=2\n"


def test_bind_mount_logs_outlive_the_container(engine, tmp_path):
    logs = tmp_path / "host" / "logs"
    logs.mkdir(parents=True)
    engine.ok("run", "--name", "app", "-v", f"{logs}:/container/logs", "busybox", "sh", "-c",
              "echo x >> /container/logs/app.log")
    engine.ok("rm", "app")
    assert (logs / "app.log").read_text() == "x\n"
    engine.ok("run", "--rm", "-v", f"{logs}:/container/logs", "busybox", "sh", "-c",
              "echo y >> /container/logs/app.log")
    assert (logs / "app.log").read_text() == "x\ny\n"


def test_bind_mount_is_never_filled_from_the_image(seeded, tmp_path):
    host = tmp_path / "empty"
    host.mkdir()
    out = seeded.ok("run", "--rm", "-v", f"{host}:/data", "seeded:1", "ls", "-A", "/data")
    assert out == ""
    assert list(host.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# (c) named volumes


def test_named_volume_created_on_first_use(engine):
    assert volumes(engine) == []
    engine.ok("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert volumes(engine) == ["data"]
    path = volume_path(engine, "data")
    assert path == engine.root / "volumes" / "data" / "_data"
    assert (path / "f").read_text() == "kept\n"
    assert engine.ok("run", "--rm", "-v", "data:/other", "busybox", "cat", "/other/f") == "kept\n"


def test_volume_copy_up_from_the_image(seeded):
    seeded.ok("run", "--rm", "-v", "vol:/data", "seeded:1", "true")
    assert_seed_copied(volume_path(seeded, "vol"))


def test_volume_copy_up_with_mount_flag(seeded):
    seeded.ok("run", "--rm", "--mount", "type=volume,source=vol,target=/data", "seeded:1", "true")
    assert_seed_copied(volume_path(seeded, "vol"))


def test_volume_copy_up_into_an_existing_empty_volume(seeded):
    seeded.ok("volume", "create", "pre")
    seeded.ok("run", "--rm", "-v", "pre:/data", "seeded:1", "true")
    assert_seed_copied(volume_path(seeded, "pre"))


def test_volume_non_empty_is_never_merged(seeded):
    seeded.ok("run", "--rm", "-v", "vol:/data", "busybox", "sh", "-c", "echo mine > /data/mine")
    out = seeded.ok("run", "--rm", "-v", "vol:/data", "seeded:1", "ls", "-A", "/data")
    assert out == "mine\n"
    assert sorted(p.name for p in volume_path(seeded, "vol").iterdir()) == ["mine"]


def test_volume_copy_up_happens_once(seeded):
    seeded.ok("run", "--rm", "-v", "vol:/data", "seeded:1", "rm", "/data/seed.txt")
    out = seeded.ok("run", "--rm", "-v", "vol:/data", "seeded:1", "ls", "-A", "/data")
    assert out.split() == ["link", "sub"]


def test_volume_nocopy(seeded):
    assert seeded.ok("run", "--rm", "-v", "v1:/data:nocopy", "seeded:1", "ls", "-A", "/data") == ""
    assert seeded.ok("run", "--rm", "--mount", "type=volume,src=v2,dst=/data,volume-nocopy", "seeded:1",
                     "ls", "-A", "/data") == ""
    assert seeded.ok("run", "--rm", "--mount", "type=volume,src=v3,dst=/data,volume-nocopy=true", "seeded:1",
                     "ls", "-A", "/data") == ""
    for v in ("v1", "v2", "v3"):
        assert list(volume_path(seeded, v).iterdir()) == []


def test_volume_subpath(engine):
    engine.ok("run", "--rm", "-v", "vol:/v", "busybox", "sh", "-c",
              "mkdir -p /v/sub/dir && echo inner > /v/sub/dir/f && echo top > /v/top")
    out = engine.ok("run", "--rm", "--mount", "type=volume,src=vol,dst=/s,volume-subpath=sub/dir", "busybox",
                    "ls", "-A", "/s")
    assert out == "f\n"
    engine.ok("run", "--rm", "--mount", "type=volume,src=vol,dst=/s,volume-subpath=sub", "busybox",
              "sh", "-c", "echo new > /s/new")
    assert (volume_path(engine, "vol") / "sub" / "new").read_text() == "new\n"


def test_volume_rm_refused_while_a_running_container_uses_it(engine):
    cid = engine.ok("run", "-d", "--name", "user", "-v", "busyvol:/data", *["busybox"], *LOOP).strip()
    r = engine.fails("volume", "rm", "busyvol")
    assert r.returncode == 1
    assert "remove busyvol: volume is in use" in r.stderr
    assert cid in r.stderr
    assert volumes(engine) == ["busyvol"]


def test_volume_rm_refused_while_a_stopped_container_uses_it(engine):
    engine.ok("run", "--name", "user", "-v", "busyvol:/data", "busybox", "sh", "-c", "echo keep > /data/f")
    cid = engine.inspect("user")["Id"]
    r = engine.fails("volume", "rm", "busyvol")
    assert r.returncode == 1
    assert "remove busyvol: volume is in use" in r.stderr
    assert cid in r.stderr
    assert (volume_path(engine, "busyvol") / "f").read_text() == "keep\n"
    engine.ok("rm", "user")
    assert engine.ok("volume", "rm", "busyvol").strip() == "busyvol"
    assert volumes(engine) == []


# ---------------------------------------------------------------------------------------------
# (d) anonymous volumes


def test_anonymous_volume_from_v(engine):
    engine.ok("create", "--name", "aa", "-v", "/anon", "busybox")
    vols = volumes(engine)
    assert len(vols) == 1 and FULL_ID.match(vols[0])
    m = mounts_of(engine, "aa")["/anon"]
    assert m["Type"] == "volume" and m["Name"] == vols[0]
    labels = json.loads(engine.ok("volume", "inspect", vols[0]))[0]["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}
    engine.ok("rm", "-v", "aa")
    assert volumes(engine) == []


def test_anonymous_volume_from_image_volume(seeded):
    seeded.ok("create", "--name", "aa", "seeded:vol")
    vols = volumes(seeded)
    assert len(vols) == 1 and FULL_ID.match(vols[0])
    assert mounts_of(seeded, "aa")["/data"]["Name"] == vols[0]
    seeded.ok("start", "aa")
    seeded.ok("wait", "aa")
    assert_seed_copied(volume_path(seeded, vols[0]))
    assert seeded.inspect("aa")["Config"]["Volumes"] == {"/data": {}}
    seeded.ok("rm", "-v", "aa")
    assert volumes(seeded) == []


def test_image_volume_can_be_given_a_named_volume(seeded):
    seeded.ok("run", "--rm", "-v", "named:/data", "seeded:vol", "true")
    assert volumes(seeded) == ["named"]
    assert_seed_copied(volume_path(seeded, "named"))


def test_rm_without_v_keeps_anonymous_volumes(engine):
    engine.ok("create", "--name", "aa", "-v", "/anon", "busybox")
    vols = volumes(engine)
    engine.ok("rm", "aa")
    assert volumes(engine) == vols
    engine.ok("volume", "rm", vols[0])


def test_rm_v_removes_anonymous_but_never_named(engine):
    engine.ok("run", "--name", "aa", "-v", "named:/n", "-v", "/anon", "busybox", "sh", "-c",
              "echo n > /n/f; echo a > /anon/f")
    anon = mounts_of(engine, "aa")["/anon"]["Name"]
    assert volumes(engine) == sorted(["named", anon])
    engine.ok("rm", "-v", "aa")
    assert volumes(engine) == ["named"]
    assert (volume_path(engine, "named") / "f").read_text() == "n\n"
    assert not (engine.root / "volumes" / anon).exists()


def test_run_rm_removes_anonymous_but_never_named(engine):
    engine.ok("run", "--rm", "-v", "named:/n", "-v", "/anon", "busybox", "sh", "-c", "echo n > /n/f")
    assert volumes(engine) == ["named"]
    assert (volume_path(engine, "named") / "f").read_text() == "n\n"


def test_run_rm_removes_the_image_volume(seeded):
    seeded.ok("run", "--rm", "seeded:vol", "true")
    assert volumes(seeded) == []


# ---------------------------------------------------------------------------------------------
# (e) sharing


def test_two_containers_share_a_volume(engine):
    writer = ("i=0; while [ ! -e /s/from-reader ]; do i=$((i+1)); echo w$i >> /s/log; sleep 0.05; done; "
              "echo writer-saw $(cat /s/from-reader)")
    reader = ("until grep -q '^w5$' /s/log 2>/dev/null; do sleep 0.05; done; echo reader-saw-w5; "
              "echo r1 > /s/from-reader.tmp; mv /s/from-reader.tmp /s/from-reader")
    engine.ok("run", "-d", "--name", "writer", "-v", "shared:/s", "busybox", "sh", "-c", writer)
    engine.ok("run", "-d", "--name", "reader", "-v", "shared:/s", "busybox", "sh", "-c", reader)
    assert engine.ok("wait", "reader").strip() == "0"
    assert engine.ok("wait", "writer").strip() == "0"
    assert engine.ok("logs", "reader") == "reader-saw-w5\n"
    assert engine.ok("logs", "writer") == "writer-saw r1\n"


def test_volumes_from(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    engine.ok("create", "--name", "src", "-v", "data:/data", "-v", "/anon", "-v", f"{host}:/h", "busybox")
    src = mounts_of(engine, "src")
    engine.ok("run", "--name", "user", "--volumes-from", "src", "busybox", "sh", "-c",
              "echo d > /data/f; echo a > /anon/f; echo h > /h/f")
    user = mounts_of(engine, "user")
    assert set(user) == {"/data", "/anon", "/h"}
    assert user["/data"]["Name"] == "data"
    assert user["/anon"]["Name"] == src["/anon"]["Name"]
    assert user["/h"]["Source"] == str(host)
    assert (volume_path(engine, "data") / "f").read_text() == "d\n"
    assert (volume_path(engine, src["/anon"]["Name"]) / "f").read_text() == "a\n"
    assert (host / "f").read_text() == "h\n"
    assert len(volumes(engine)) == 2  # no new anonymous volume


def test_volumes_from_read_only(engine):
    engine.ok("create", "--name", "src", "-v", "data:/data", "busybox")
    r = engine.run("run", "--rm", "--volumes-from", "src:ro", "busybox", "touch", "/data/f")
    assert r.returncode == 1
    assert "Read-only file system" in r.stderr


def test_volumes_from_missing_container(engine):
    before = engine.snapshot()
    r = engine.fails("run", "--volumes-from", "nope", "busybox", "true")
    assert r.returncode == 125
    assert "No such container: nope" in r.stderr
    assert engine.snapshot() == before


# ---------------------------------------------------------------------------------------------
# (f) tmpfs


def test_tmpfs_size_is_enforced(engine):
    r = engine.run("run", "--rm", "--tmpfs", "/t:size=1m", "busybox", "dd", "if=/dev/zero", "of=/t/f", "bs=1M",
                   "count=2")
    assert r.returncode == 1
    assert "No space left on device" in r.stderr
    out = engine.ok("run", "--rm", "--tmpfs", "/t:size=1m", "busybox", "sh", "-c",
                    "dd if=/dev/zero of=/t/f bs=1k count=512 2>/dev/null; wc -c < /t/f")
    assert out.strip() == "524288"


def test_tmpfs_content_is_gone_after_restart(engine):
    engine.ok("create", "--name", "tt", "--tmpfs", "/t", "busybox", "sh", "-c",
              "trap 'exit 0' TERM; if [ -e /t/x ]; then echo stale; else echo fresh; fi; touch /t/x; "
              "while :; do sleep 0.1; done")
    engine.ok("start", "tt")
    engine.wait_log("tt", "fresh")
    engine.ok("restart", "-t", "1", "tt")
    poll(lambda: len(engine.ok("logs", "tt").splitlines()) == 2, "the restarted run")
    engine.ok("stop", "tt")
    engine.ok("start", "tt")
    poll(lambda: len(engine.ok("logs", "tt").splitlines()) == 3, "the started run")
    assert engine.ok("logs", "tt") == "fresh\nfresh\nfresh\n"
    assert engine.inspect("tt")["HostConfig"]["Tmpfs"] == {"/t": ""}


def test_mount_type_tmpfs(engine):
    r = engine.run("run", "--rm", "--mount", "type=tmpfs,destination=/t,tmpfs-size=1048576,tmpfs-mode=1770",
                   "busybox", "sh", "-c", "stat -c %a /t; dd if=/dev/zero of=/t/f bs=1M count=2")
    assert r.returncode == 1
    assert r.stdout == "1770\n"
    assert "No space left on device" in r.stderr


def test_mount_type_tmpfs_in_inspect(engine):
    engine.ok("create", "--name", "tt", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "busybox")
    m = mounts_of(engine, "tt")["/t"]
    assert m["Type"] == "tmpfs"
    assert m["Source"] == ""
    assert m["RW"] is True


# ---------------------------------------------------------------------------------------------
# (g) --read-only with volumes and tmpfs


def test_read_only_with_volume_and_tmpfs_writable(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    script = ("touch /root-file 2>/dev/null && echo root-writable || echo root-ro; "
              "echo v > /v/f && echo vol-ok; echo t > /t/f && echo tmpfs-ok; echo b > /b/f && echo bind-ok; "
              "touch /tmp/x 2>/dev/null && echo tmp-writable || echo tmp-ro")
    out = engine.ok("run", "--rm", "--read-only", "-v", "vol:/v", "--tmpfs", "/t", "-v", f"{host}:/b",
                    "busybox", "sh", "-c", script)
    assert out == "root-ro\nvol-ok\ntmpfs-ok\nbind-ok\ntmp-ro\n"
    assert (volume_path(engine, "vol") / "f").read_text() == "v\n"
    assert (host / "f").read_text() == "b\n"


# ---------------------------------------------------------------------------------------------
# bad input: one clear error, the right exit code, nothing created


def refused(engine: Engine, *args, code: int = 125, text: str) -> subprocess.CompletedProcess:
    before = engine.snapshot()
    r = engine.fails(*args)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert text in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len([l for l in lines if not l.startswith(("Usage:", "Run '", "See '"))]) == 1, r.stderr
    assert engine.snapshot() == before
    return r


@pytest.mark.parametrize("cmd", ["run", "create"])
def test_bad_mount_bind_relative_source(engine, cmd):
    refused(engine, cmd, "--mount", "type=bind,source=rel,target=/c", "busybox", "true",
            text="mount path must be absolute")


@pytest.mark.parametrize("cmd", ["run", "create"])
def test_bad_volume_name(engine, cmd):
    refused(engine, cmd, "-v", "a$b:/c", "busybox", "true",
            text='"a$b" includes invalid characters for a local volume name')


@pytest.mark.parametrize("spec", [["-v", "data:rel"], ["--mount", "type=volume,source=data,target=rel"],
                                  ["-v", "/tmp:rel"], ["--tmpfs", "rel"]])
def test_bad_non_absolute_target(engine, spec):
    refused(engine, "run", *spec, "busybox", "true", text="rel")
    assert volumes(engine) == []


def test_bad_same_target_twice(engine, tmp_path):
    refused(engine, "run", "-v", "va:/c", "-v", "vb:/c", "busybox", "true", text="Duplicate mount point: /c")
    refused(engine, "run", "-v", "va:/c", "--mount", f"type=bind,source={tmp_path},target=/c", "busybox", "true",
            text="Duplicate mount point: /c")
    assert volumes(engine) == []


def test_bad_unknown_mount_type(engine):
    refused(engine, "run", "--mount", "type=foo,target=/c", "busybox", "true", text="mount type unknown")


def test_bad_unknown_mount_key(engine):
    refused(engine, "run", "--mount", "type=bind,foo=bar,source=/tmp,target=/c", "busybox", "true",
            text="unexpected key 'foo' in 'foo=bar'")


def test_bad_readonly_and_rw(engine, tmp_path):
    refused(engine, "run", "-v", f"{tmp_path}:/c:ro,rw", "busybox", "true", text="invalid mode: ro,rw")


def test_bad_mount_missing_target(engine):
    refused(engine, "run", "--mount", "type=volume,source=v", "busybox", "true", text="target is required")


def test_bad_missing_image(engine):
    refused(engine, "run", "--pull", "never", "-v", "data:/data", "nope:latest", "true",
            text="No such image: nope:latest")
    assert volumes(engine) == []


@pytest.mark.parametrize("cmd", ["rm", "start", "logs", "stop", "kill", "wait", "pause", "unpause", "restart"])
def test_bad_missing_container(engine, cmd):
    engine.ok("create", "--name", "other", "busybox")
    r = refused(engine, cmd, "nope", code=1, text="No such container: nope")
    assert "other" not in r.stderr


def test_bad_missing_volume_rm(engine):
    engine.ok("volume", "create", "other")
    r = refused(engine, "volume", "rm", "nope", code=1, text="nope")
    assert "no such volume" in r.stderr.lower()
    assert volumes(engine) == ["other"]


def test_bad_volume_rm_in_use_names_the_container(engine):
    engine.ok("create", "--name", "user", "-v", "inuse:/d", "busybox")
    cid = engine.inspect("user")["Id"]
    r = refused(engine, "volume", "rm", "inuse", code=1, text="volume is in use")
    assert cid in r.stderr and "inuse" in r.stderr


def test_bad_volume_rm_in_use_other_volumes_still_removed(engine):
    engine.ok("create", "--name", "user", "-v", "inuse:/d", "busybox")
    engine.ok("volume", "create", "free")
    r = engine.fails("volume", "rm", "inuse", "free")
    assert r.returncode == 1
    assert "free" in r.stdout and "inuse" not in r.stdout
    assert volumes(engine) == ["inuse"]


def test_bad_volume_create_name(engine):
    refused(engine, "volume", "create", "a$b", code=1, text="includes invalid characters for a local volume name")


def test_bad_tmpfs_option(engine):
    refused(engine, "run", "--tmpfs", "/t:size=lots", "busybox", "true", text="size=lots")


def test_bad_bind_propagation(engine, tmp_path):
    refused(engine, "run", "--mount", f"type=bind,source={tmp_path},target=/c,bind-propagation=sideways",
            "busybox", "true", text="sideways")


def test_bad_volume_options_on_bind(engine, tmp_path):
    refused(engine, "run", "--mount", f"type=bind,source={tmp_path},target=/c,volume-nocopy", "busybox", "true",
            text="cannot mix 'volume-*' options with mount type 'bind'")
