"""cp, diff, top, stats, attach, container prune, events and info, written to docker 28's behaviour.
cp's tests include escape attempts: symlinks planted in the container (absolute, relative, as
parent directories), ".." in paths and in tar entries must never let a copy read or write a host
file outside the container's root and mounts."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from containertest import Engine, busybox_tar, engine, poll  # noqa: F401

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


def sh(engine: Engine, name: str, script: str) -> str:
    return engine.ok("exec", name, "sh", "-c", script)


def running(engine: Engine, name: str, *run_args) -> str:
    return engine.ok("run", "-d", "--name", name, *run_args, "busybox", *LOOP).strip()


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def run_bytes(engine: Engine, *args, input: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = [engine.binary, "--root", str(engine.root), "--config", str(engine.config_dir), *map(str, args)]
    env = dict(os.environ)
    env.pop("DOCKER_CONFIG", None)
    env["BERTH_RUN_DIR"] = str(engine.run_dir)
    return subprocess.run(cmd, capture_output=True, input=input, timeout=120, env=env)


# ---------------------------------------------------------------- cp


def test_cp_file_out_and_in(engine, tmp_path):
    running(engine, "c1")
    engine.ok("cp", "c1:/etc/passwd", tmp_path / "passwd")
    assert (tmp_path / "passwd").read_text().startswith("root:x:0:0:")
    src = tmp_path / "hello.txt"
    src.write_text("hello from the host\n")
    os.chown(src, 1234, 5678)
    os.chmod(src, 0o640)
    engine.ok("cp", src, "c1:/tmp/")
    assert sh(engine, "c1", "cat /tmp/hello.txt") == "hello from the host\n"
    # Not -a: owned by the container's root; the mode is kept.
    assert sh(engine, "c1", "stat -c '%u:%g %a' /tmp/hello.txt").strip() == "0:0 640"
    engine.ok("cp", "-a", src, "c1:/tmp/kept.txt")
    assert sh(engine, "c1", "stat -c '%u:%g' /tmp/kept.txt").strip() == "1234:5678"
    # A new name for the copy; then overwrite it.
    engine.ok("cp", src, "c1:/tmp/renamed")
    assert sh(engine, "c1", "cat /tmp/renamed") == "hello from the host\n"
    src.write_text("second\n")
    engine.ok("cp", src, "c1:/tmp/renamed")
    assert sh(engine, "c1", "cat /tmp/renamed") == "second\n"


def test_cp_non_ascii_names_to_a_tar_stream(engine, tmp_path):
    """UTF-8 names through libarchive (which crashed on them in the C locale)."""
    running(engine, "c1")
    sh(engine, "c1", "mkdir /tmp/d && echo accent > '/tmp/d/é ü.txt'")
    r = subprocess.run([*engine.prefix(), engine.binary, "--root", str(engine.root), "cp", "c1:/tmp/d", "-"],
                       capture_output=True, env={**os.environ, "BERTH_RUN_DIR": str(engine.run_dir), "LC_ALL": "C"})
    assert r.returncode == 0, r.stderr
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        names = t.getnames()
        assert "d/é ü.txt" in names, names
        assert t.extractfile("d/é ü.txt").read() == b"accent\n"


def test_cp_directory_semantics(engine, tmp_path):
    running(engine, "c1")
    sh(engine, "c1", "mkdir -p /srv/d/sub && echo a > /srv/d/a && echo b > /srv/d/sub/b && ln -s a /srv/d/link")
    # DEST missing: created as a copy of the directory.
    engine.ok("cp", "c1:/srv/d", tmp_path / "new")
    assert (tmp_path / "new/a").read_text() == "a\n"
    assert (tmp_path / "new/sub/b").read_text() == "b\n"
    assert os.readlink(tmp_path / "new/link") == "a"
    # DEST an existing directory: copied into it.
    (tmp_path / "exists").mkdir()
    engine.ok("cp", "c1:/srv/d", tmp_path / "exists")
    assert (tmp_path / "exists/d/sub/b").read_text() == "b\n"
    # SRC ending in /. : the contents.
    (tmp_path / "contents").mkdir()
    engine.ok("cp", "c1:/srv/d/.", tmp_path / "contents")
    assert sorted(os.listdir(tmp_path / "contents")) == ["a", "link", "sub"]
    # A directory onto a file fails; a missing source names the file and container.
    (tmp_path / "file").write_text("x")
    r = engine.fails("cp", "c1:/srv/d", tmp_path / "file")
    assert "cannot copy directory" in r.stderr
    r = engine.fails("cp", "c1:/nope", tmp_path / "x")
    assert "Could not find the file /nope in container c1" in r.stderr
    # Host → container, same rules.
    hd = tmp_path / "hostdir"
    (hd / "in").mkdir(parents=True)
    (hd / "in/f").write_text("f\n")
    engine.ok("cp", hd, "c1:/srv/")
    assert sh(engine, "c1", "cat /srv/hostdir/in/f") == "f\n"
    engine.ok("cp", hd, "c1:/srv/fresh")
    assert sh(engine, "c1", "cat /srv/fresh/in/f") == "f\n"
    engine.ok("cp", f"{hd}/.", "c1:/srv/d")
    assert sh(engine, "c1", "cat /srv/d/in/f") == "f\n"
    r = engine.fails("cp", hd, "c1:/etc/passwd")
    assert "cannot copy directory" in r.stderr


def test_cp_usage_errors(engine, tmp_path):
    running(engine, "c1")
    r = engine.fails("cp", tmp_path, tmp_path / "x")
    assert "must specify at least one container source" in r.stderr
    r = engine.fails("cp", "c1:/etc", "c1:/tmp")
    assert "copying between containers is not supported" in r.stderr
    r = engine.fails("cp", "nosuch:/etc", tmp_path)
    assert "No such container: nosuch" in r.stderr
    r = engine.run("cp", "c1:/etc")
    assert r.returncode == 125


def test_cp_tar_streams(engine, tmp_path):
    running(engine, "c1")
    r = run_bytes(engine, "cp", "c1:/etc", "-")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        names = t.getnames()
        assert "etc" in names and "etc/passwd" in names
        assert t.extractfile("etc/berth-fixture").read() == b"berth busybox test image\n"
    info = tarfile.TarInfo("from-tar/file")
    info.size = 6
    info.uid, info.gid, info.mode = 42, 43, 0o600
    d = tarfile.TarInfo("from-tar")
    d.type = tarfile.DIRTYPE
    d.mode = 0o755
    data = tar_bytes([(d, None), (info, b"tar!!\n")])
    r = run_bytes(engine, "cp", "-", "c1:/tmp", input=data)
    assert r.returncode == 0, r.stderr
    assert sh(engine, "c1", "cat /tmp/from-tar/file; stat -c '%u:%g %a' /tmp/from-tar/file") == "tar!!\n42:43 600\n"
    r = run_bytes(engine, "cp", "-", "c1:/etc/passwd", input=data)
    assert r.returncode != 0
    assert b"must be a directory" in r.stderr


def test_cp_works_on_stopped_and_created_containers(engine, tmp_path):
    engine.ok("create", "--name", "c1", "busybox", "cat", "/tmp/note")
    note = tmp_path / "note"
    note.write_text("copied before start\n")
    engine.ok("cp", note, "c1:/tmp/note")
    engine.ok("start", "c1")
    engine.wait_state("c1", "exited")
    assert engine.ok("logs", "c1") == "copied before start\n"
    engine.ok("cp", "c1:/tmp/note", tmp_path / "back")
    assert (tmp_path / "back").read_text() == "copied before start\n"


def test_cp_sees_volumes_and_bind_mounts(engine, tmp_path):
    bind = tmp_path / "bind"
    bind.mkdir()
    running(engine, "c1", "-v", "vol1:/data", "-v", f"{bind}:/bound")
    f = tmp_path / "f"
    f.write_text("to the volume\n")
    engine.ok("cp", f, "c1:/data/f")
    engine.ok("cp", f, "c1:/bound/g")
    assert sh(engine, "c1", "cat /data/f /bound/g") == "to the volume\n" * 2
    assert (bind / "g").read_text() == "to the volume\n"
    src = Path(engine.inspect("c1")["Mounts"][0]["Source"]) if engine.inspect("c1")["Mounts"][0]["Destination"] == \
        "/data" else Path(engine.inspect("c1")["Mounts"][1]["Source"])
    assert (src / "f").read_text() == "to the volume\n"
    engine.ok("stop", "c1")
    (bind / "h").write_text("from the host\n")
    engine.ok("cp", "c1:/bound/h", tmp_path / "h")
    assert (tmp_path / "h").read_text() == "from the host\n"
    engine.ok("cp", "c1:/data/f", tmp_path / "vf")
    assert (tmp_path / "vf").read_text() == "to the volume\n"


def test_cp_into_read_only_mount_or_rootfs_fails(engine, tmp_path):
    bind = tmp_path / "ro"
    bind.mkdir()
    running(engine, "c1", "-v", f"{bind}:/ro:ro")
    f = tmp_path / "f"
    f.write_text("x")
    r = engine.fails("cp", f, "c1:/ro/")
    assert "read-only" in r.stderr
    assert list(bind.iterdir()) == []
    running(engine, "c2", "--read-only")
    r = engine.fails("cp", f, "c2:/tmp/")
    assert "container rootfs is marked read-only" in r.stderr


# -- escape attempts: nothing outside the container's root (and mounts) is read or written.


@pytest.fixture
def host_secret(tmp_path):
    d = tmp_path / "host-secret-dir"
    d.mkdir()
    (d / "secret").write_text("HOST SECRET\n")
    return d


def test_cp_absolute_symlink_does_not_read_the_host(engine, tmp_path, host_secret):
    running(engine, "c1")
    sh(engine, "c1", f"ln -s {host_secret}/secret /etc/evil && ln -s {host_secret} /etc/evildir")
    # Without -L the link itself is copied.
    engine.ok("cp", "c1:/etc/evil", tmp_path / "out1")
    assert os.readlink(tmp_path / "out1") == f"{host_secret}/secret"
    # Followed, it resolves inside the container, where nothing is.
    r = engine.fails("cp", "-L", "c1:/etc/evil", tmp_path / "out2")
    assert "Could not find the file" in r.stderr
    assert not (tmp_path / "out2").exists()
    r = engine.fails("cp", "c1:/etc/evildir/secret", tmp_path / "out3")
    assert "Could not find the file" in r.stderr
    # A tar stream too.
    r = run_bytes(engine, "cp", "c1:/etc/evildir/", "-")
    assert r.returncode != 0 and b"HOST SECRET" not in r.stdout


def test_cp_relative_symlink_stops_at_the_container_root(engine, tmp_path, host_secret):
    running(engine, "c1")
    up = "../" * 30
    sh(engine, "c1", f"ln -s {up}{str(host_secret)[1:]}/secret /tmp/rel && ln -s {up}etc /tmp/up-etc")
    r = engine.fails("cp", "-L", "c1:/tmp/rel", tmp_path / "o")
    assert "Could not find the file" in r.stderr
    # ../../.. from the container's view ends at its root: this is the container's /etc.
    engine.ok("cp", "c1:/tmp/up-etc/berth-fixture", tmp_path / "fixture")
    assert (tmp_path / "fixture").read_text() == "berth busybox test image\n"
    # ".." in the given path is clamped at the container's root as well.
    engine.ok("cp", f"c1:/{up}etc/berth-fixture", tmp_path / "fixture2")
    assert (tmp_path / "fixture2").read_text() == "berth busybox test image\n"


def test_cp_symlinked_destination_does_not_write_the_host(engine, tmp_path, host_secret):
    running(engine, "c1")
    before = {p.name: p.read_bytes() for p in host_secret.iterdir()}
    sh(engine, "c1", f"ln -s {host_secret} /etc/evildir && ln -s {host_secret}/secret /etc/evilfile && "
                     f"ln -s {'../' * 20} /escape")
    f = tmp_path / "payload"
    f.write_text("PWNED\n")
    # Into a symlinked directory: it points nowhere inside the container.
    r = engine.fails("cp", f, "c1:/etc/evildir/")
    assert "Could not find the file" in r.stderr or "no such" in r.stderr.lower()
    # Onto a symlinked file: the link is followed in the container's scope, not on the host.
    r = engine.fails("cp", f, "c1:/etc/evilfile")
    assert "Could not find the file" in r.stderr
    # Through a symlinked parent that climbs out: it lands in the container's own /tmp.
    engine.ok("cp", f, "c1:/escape/tmp/payload-via-escape")
    assert sh(engine, "c1", "cat /tmp/payload-via-escape") == "PWNED\n"
    assert not Path("/tmp/payload-via-escape").exists()
    engine.ok("cp", f, f"c1:/{'../' * 20}tmp/payload-dotdot")
    assert sh(engine, "c1", "cat /tmp/payload-dotdot") == "PWNED\n"
    assert not Path("/tmp/payload-dotdot").exists()
    assert {p.name: p.read_bytes() for p in host_secret.iterdir()} == before


def test_cp_tar_entries_cannot_escape(engine, tmp_path, host_secret):
    running(engine, "c1")
    before = {p.name: p.read_bytes() for p in host_secret.iterdir()}
    bad = tarfile.TarInfo(f"../../../../../../../../..{host_secret}/secret")
    bad.size = 6
    r = run_bytes(engine, "cp", "-", "c1:/tmp", input=tar_bytes([(bad, b"PWNED\n")]))
    assert r.returncode != 0
    # A symlink entry to the host path, then a file through it: stays in the container.
    link = tarfile.TarInfo("hostlink")
    link.type = tarfile.SYMTYPE
    link.linkname = str(host_secret)
    through = tarfile.TarInfo("hostlink/secret")
    through.size = 6
    r = run_bytes(engine, "cp", "-", "c1:/tmp", input=tar_bytes([(link, None), (through, b"PWNED\n")]))
    assert r.returncode != 0  # the link's target does not exist in the container
    # A hard link to a host path is resolved in the container too.
    hard = tarfile.TarInfo("hard")
    hard.type = tarfile.LNKTYPE
    hard.linkname = f"../../../..{host_secret}/secret"
    r = run_bytes(engine, "cp", "-", "c1:/tmp", input=tar_bytes([(hard, None)]))
    assert r.returncode != 0
    assert {p.name: p.read_bytes() for p in host_secret.iterdir()} == before
    assert (host_secret / "secret").stat().st_nlink == 1


def test_cp_out_does_not_follow_container_symlinks_on_the_host(engine, tmp_path, host_secret):
    """A container symlink copied to the host stays a symlink: later entries never go through it."""
    running(engine, "c1")
    sh(engine, "c1", f"mkdir /x && ln -s {host_secret} /x/a && echo hi > /x/b")
    out = tmp_path / "out"
    engine.ok("cp", "c1:/x", out)
    assert os.readlink(out / "a") == str(host_secret)
    assert (out / "b").read_text() == "hi\n"
    assert sorted(p.name for p in host_secret.iterdir()) == ["secret"]


# ---------------------------------------------------------------- diff


def test_diff_added_changed_deleted(engine):
    engine.ok("run", "--name", "d1", "busybox", "sh", "-c",
              "echo new > /tmp/new && echo more >> /etc/passwd && rm /etc/group && mkdir -p /srv/a && "
              "touch /srv/a/f && rm -r /home/app")
    out = engine.ok("diff", "d1")
    assert out.splitlines() == [
        "C /etc",
        "D /etc/group",
        "C /etc/passwd",
        "C /home",
        "D /home/app",
        "A /srv",
        "A /srv/a",
        "A /srv/a/f",
        "C /tmp",
        "A /tmp/new",
    ], out


def test_diff_of_an_unchanged_container_is_empty(engine):
    engine.ok("run", "--name", "d2", "busybox", "true")
    assert engine.ok("diff", "d2") == ""
    engine.fails("diff", "nosuch")
    # A changed file alone: its directory is not reported (docker's dir comparison).
    engine.ok("run", "--name", "d3", "busybox", "sh", "-c", "echo more >> /etc/passwd")
    assert engine.ok("diff", "d3") == "C /etc/passwd\n"


# ---------------------------------------------------------------- top


def test_top_lists_the_container_processes(engine):
    engine.ok("run", "-d", "--name", "t1", "busybox", "sleep", "1000")
    out = engine.ok("top", "t1")
    lines = out.splitlines()
    assert re.match(r"^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$", lines[0]), out
    assert len(lines) == 2, out
    assert lines[1].endswith("sleep 1000")
    pid = engine.inspect("t1")["State"]["Pid"]
    assert str(pid) in lines[1].split()
    out = engine.ok("top", "t1", "-o", "pid,comm")
    assert out.splitlines()[0].split() == ["PID", "COMMAND"]
    assert out.splitlines()[1].split() == [str(pid), "sleep"]
    engine.ok("kill", "t1")
    engine.wait_state("t1", "exited")
    r = engine.fails("top", "t1")
    assert "is not running" in r.stderr


# ---------------------------------------------------------------- stats


def test_stats_no_stream(engine):
    cid = engine.ok("run", "-d", "--name", "s1", "busybox", "sh", "-c", "sleep 1000; true").strip()
    out = engine.ok("stats", "--no-stream")
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert len(lines) == 2 and lines[1].startswith(cid[:12]) and " s1 " in lines[1]
    out = engine.ok("stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", "s1")
    name, mem, pids, cpu = out.strip().split("|")
    assert name == "s1"
    usage, limit = mem.split(" / ")
    assert re.match(r"^[\d.]+(B|KiB|MiB)$", usage) and usage != "0B", mem
    assert re.match(r"^[\d.]+(MiB|GiB|TiB)$", limit), mem
    assert int(pids) >= 2  # sh and sleep
    assert re.match(r"^\d+\.\d\d%$", cpu)
    engine.ok("create", "--name", "s2", "busybox", "true")
    assert "s2" not in engine.ok("stats", "--no-stream")
    assert "s2" in engine.ok("stats", "--no-stream", "-a")


# ---------------------------------------------------------------- attach


def test_attach_relays_streams_and_exit_code(engine):
    engine.ok("run", "-d", "-i", "--name", "a1", "busybox", "sh", "-c", "read x; echo got $x; echo err >&2; exit 3")
    r = engine.run("attach", "a1", input="hello\n")
    assert r.returncode == 3
    assert r.stdout == "got hello\n"
    assert r.stderr == "err\n"
    r = engine.fails("attach", "a1")
    assert "You cannot attach to a stopped container, start it first" in r.stderr


def test_attach_no_stdin(engine):
    engine.ok("run", "-d", "-i", "--name", "a2", "busybox", "sh", "-c", "sleep 1; echo done; exit 4")
    r = engine.run("attach", "--no-stdin", "a2", input="ignored\n")
    assert r.returncode == 4
    assert "done" in r.stdout


# ---------------------------------------------------------------- container prune


def test_container_prune_removes_only_stopped(engine):
    keep = engine.ok("run", "-d", "--name", "p-running", "busybox", *LOOP).strip()
    gone1 = engine.ok("create", "--name", "p-created", "busybox", "true").strip()
    engine.ok("run", "--name", "p-exited", "busybox", "true")
    gone2 = engine.inspect("p-exited")["Id"]
    r = engine.run("container", "prune", input="n\n")
    assert r.returncode == 0
    assert r.stdout.startswith("WARNING! This will remove all stopped containers.\n"
                               "Are you sure you want to continue? [y/N] ")
    assert len(engine.container_ids()) == 3
    out = engine.ok("container", "prune", "-f")
    lines = out.splitlines()
    assert lines[0] == "Deleted Containers:"
    assert sorted(lines[1:3]) == sorted([gone1, gone2])
    assert lines[3] == ""
    assert re.match(r"^Total reclaimed space: [\d.]+k?B$", lines[4])
    assert engine.container_ids() == [keep]
    assert engine.ok("container", "prune", "-f") == "Total reclaimed space: 0B\n"


def test_container_prune_filters(engine):
    engine.ok("create", "--name", "l1", "--label", "keep=yes", "busybox", "true")
    engine.ok("create", "--name", "l2", "busybox", "true")
    engine.ok("container", "prune", "-f", "--filter", "label!=keep")
    assert sorted(engine.ok("ps", "-a", "--format", "{{.Names}}").split()) == ["l1"]
    engine.ok("container", "prune", "-f", "--filter", "until=1h")
    assert engine.ok("ps", "-a", "--format", "{{.Names}}").split() == ["l1"]
    engine.ok("container", "prune", "-f", "--filter", "label=keep=yes")
    assert engine.container_ids() == []


# ---------------------------------------------------------------- events


def test_events_since_until(engine):
    start = time.time()
    engine.ok("run", "--name", "ev1", "busybox", "true")
    cid = engine.inspect("ev1")["Id"]
    engine.ok("rm", "ev1")
    end = time.time() + 0.01
    out = engine.ok("events", "--since", f"{start:.3f}", "--until", f"{end:.3f}", "--filter", "container=ev1")
    lines = out.splitlines()
    actions = [l.split()[2] for l in lines]
    assert actions == ["create", "start", "die", "destroy"], out
    pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) container (\w+) " + cid + r" \((.*)\)$")
    for l in lines:
        m = pat.match(l)
        assert m, l
        assert "image=busybox" in m.group(3) and "name=ev1" in m.group(3)
    assert "exitCode=0" in lines[2]
    out = engine.ok("events", "--since", f"{start:.3f}", "--until", f"{end:.3f}", "--filter", "event=die",
                    "--format", "{{json .}}")
    msgs = [json.loads(l) for l in out.splitlines()]
    assert len(msgs) == 1
    m = msgs[0]
    assert m["status"] == "die" and m["id"] == cid and m["from"] == "busybox"
    assert m["Type"] == "container" and m["Action"] == "die" and m["scope"] == "local"
    assert m["Actor"] == {"ID": cid, "Attributes": {"exitCode": "0", "image": "busybox", "name": "ev1"}}
    assert m["time"] == m["timeNano"] // 10**9
    assert list(m) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    out = engine.ok("events", "--since", f"{start:.3f}", "--until", f"{end:.3f}", "--filter", "container=ev1",
                    "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    assert out.splitlines() == ["create ev1", "start ev1", "die ev1", "destroy ev1"]
    # Nothing before --since.
    assert engine.ok("events", "--since", f"{end:.3f}", "--until", f"{end + 0.01:.3f}") == ""


def test_events_follow(engine):
    p = engine.popen("events", "--filter", "type=container", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)
    try:
        time.sleep(0.5)
        engine.ok("create", "--name", "ev2", "busybox", "true")
        line = p.stdout.readline()
        assert " container create " in line and "name=ev2" in line
    finally:
        p.terminate()
        p.wait(timeout=10)


# ---------------------------------------------------------------- info


def test_info(engine):
    engine.ok("run", "-d", "--name", "i1", "busybox", *LOOP)
    engine.ok("create", "--name", "i2", "busybox", "true")
    out = engine.ok("info")
    for line in [" Containers: 2", "  Running: 1", "  Paused: 0", "  Stopped: 1", " Images: 1",
                 " Storage Driver: overlay2", " Logging Driver: json-file", " Cgroup Driver: cgroupfs",
                 " OSType: linux", f" Docker Root Dir: {engine.root}"]:
        assert line + "\n" in out, (line, out)
    assert re.search(r"^ Cgroup Version: [12]$", out, re.M)
    assert re.search(r"^ Kernel Version: " + re.escape(os.uname().release) + "$", out, re.M)
    assert re.search(r"^ CPUs: " + str(os.cpu_count()) + "$", out, re.M)
    assert re.search(r"^ Total Memory: [\d.]+GiB$", out, re.M)
    out = engine.ok("info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}} "
                                        "{{.Driver}} {{.NCPU}} {{.OSType}}")
    assert out == f"2 1 1 1 overlay2 {os.cpu_count()} linux\n"
    info = json.loads(engine.ok("info", "--format", "{{json .}}"))
    assert info["DockerRootDir"] == str(engine.root)
    assert info["MemTotal"] > 0 and info["KernelVersion"] == os.uname().release


def test_cp_mount_behind_a_symlinked_destination(engine, tmp_path, busybox_tar):
    """A volume whose destination is a symlink in the image is mounted where the link points; cp
    follows the same way."""
    image_tar = tmp_path / "linked.tar"
    image_tar.write_bytes(Path(busybox_tar).read_bytes())
    real = tarfile.TarInfo("./real")
    real.type = tarfile.DIRTYPE
    real.mode = 0o755
    lnk = tarfile.TarInfo("./lnk")
    lnk.type = tarfile.SYMTYPE
    lnk.linkname = "real"
    with tarfile.open(image_tar, "a") as t:
        t.addfile(real)
        t.addfile(lnk)
    engine.ok("import", "--change", 'CMD ["sh"]', image_tar, "linked:1")
    engine.ok("run", "-d", "--name", "c1", "-v", "vol2:/lnk", "linked:1", *LOOP)
    f = tmp_path / "f"
    f.write_text("in the volume\n")
    engine.ok("cp", f, "c1:/lnk/f")
    assert sh(engine, "c1", "cat /real/f") == "in the volume\n"
    src = Path(engine.inspect("c1")["Mounts"][0]["Source"])
    assert (src / "f").read_text() == "in the volume\n"
    engine.ok("cp", "c1:/real/f", tmp_path / "back")
    assert (tmp_path / "back").read_text() == "in the volume\n"


def test_device_is_created_in_the_container_from_the_host_node(engine, tmp_path):
    r = engine.run("run", "--rm", "--device", "/dev/null:/dev/mynull:rw", "busybox", "sh", "-c",
                   "stat -c '%F %t:%T' /dev/mynull; echo data > /dev/mynull && echo written")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "character special file 1:3\nwritten\n", r.stdout
    # A directory: every device node under it, as docker walks it (other files are skipped).
    nodes = tmp_path / "nodes"
    (nodes / "sub").mkdir(parents=True)
    os.mknod(nodes / "zero", 0o620 | 0o020000, os.makedev(1, 5))
    os.mknod(nodes / "sub" / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.chmod(nodes / "zero", 0o620)  # past the umask: the container's nodes keep the host's modes
    os.chmod(nodes / "sub" / "null", 0o666)
    (nodes / "plain.txt").write_text("not a device\n")
    r = engine.run("run", "--rm", "--device", f"{nodes}:/dev/mine", "busybox", "sh", "-c",
                   "stat -c '%n %a %t:%T' /dev/mine/zero /dev/mine/sub/null; ls /dev/mine")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/dev/mine/zero 620 1:5\n/dev/mine/sub/null 666 1:3\nsub\nzero\n", r.stdout


def test_missing_device_is_refused_and_creates_nothing(engine):
    before = engine.ok("ps", "-aq").split()
    r = engine.run("run", "--rm", "--device", "/dev/berth-no-such-device", "busybox", "true")
    assert r.returncode == 125
    assert 'error gathering device information while adding custom device "/dev/berth-no-such-device": ' \
           "no such file or directory" in r.stderr, r.stderr
    assert engine.ok("ps", "-aq").split() == before
