"""`berth serve`'s tar endpoints driven by the real docker CLI and raw HTTP: docker cp (HEAD, GET and
PUT /containers/{id}/archive), docker export, docker save and docker load."""
from __future__ import annotations

import base64
import gzip
import io
import json
import os
import time
import socket
import stat
import tarfile
import urllib.parse

from apitest import DOCKER, UnixHTTPConnection, api, engine, busybox_tar  # noqa: F401 (fixtures)
from containertest import poll


def q(path: str) -> str:
    return urllib.parse.quote(path, safe="")


def path_stat(headers: dict) -> dict:
    return json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))


def tar_bytes(*members) -> bytes:
    """A tar of (name, kind, payload, mode): kind "file" (payload bytes), "dir", "symlink" (target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "file":
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                t.addfile(info)
    return buf.getvalue()


def run_sleeper(api, name="box") -> str:
    return api.docker_ok("run", "-d", "--name", name, "busybox", "sleep", "1000").strip()


def sh(api, container: str, script: str) -> str:
    return api.docker_ok("exec", container, "sh", "-c", script)


def docker_sh(api, script: str):
    """A shell pipeline with the docker CLI in it (for binary stdin/stdout)."""
    return api.engine.host("sh", "-c", f"export DOCKER_HOST=unix://{api.sock} DOCKER_CONFIG={api.config_dir} "
                                       f"DOCKER={DOCKER}; {script}")


# --- docker cp ------------------------------------------------------------------------------

def test_cp_files_both_ways_keeps_contents_and_modes(api, tmp_path):
    run_sleeper(api)
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from the host\n\x00binary\xff tail\n")
    os.chmod(src, 0o640)
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\necho tool\n")
    os.chmod(script, 0o755)

    # Into an existing directory, and to a new name.
    r = api.docker("cp", src, "box:/tmp")
    assert r.returncode == 0, r.stderr
    r = api.docker("cp", script, "box:/usr/bin/renamed-tool")
    assert r.returncode == 0, r.stderr
    assert sh(api, "box", "od -An -c /tmp/hello.txt") == \
        api.engine.host("od", "-An", "-c", src, check=True).stdout
    assert sh(api, "box", "stat -c '%a %s' /tmp/hello.txt /usr/bin/renamed-tool") == \
        f"640 {src.stat().st_size}\n755 {script.stat().st_size}\n"
    assert api.docker_ok("exec", "box", "renamed-tool") == "tool\n"

    # Overwriting an existing file replaces its contents.
    src.write_text("second version\n")
    assert api.docker("cp", src, "box:/tmp/hello.txt").returncode == 0
    assert sh(api, "box", "cat /tmp/hello.txt") == "second version\n"

    # Out of the container: contents and mode, to a new name and into a directory.
    sh(api, "box", "printf 'made inside\\n' > /made.txt && chmod 604 /made.txt")
    out = tmp_path / "out.txt"
    r = api.docker("cp", "box:/made.txt", out)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "made inside\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o604
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    assert api.docker("cp", "box:/etc/passwd", outdir).returncode == 0
    assert (outdir / "passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh\n")

    # A symlink is copied as a link; -L copies what it points at.
    sh(api, "box", "ln -s /made.txt /link-to-made")
    r = api.docker("cp", "box:/link-to-made", tmp_path / "as-link")
    assert r.returncode == 0, r.stderr
    assert os.readlink(tmp_path / "as-link") == "/made.txt"
    r = api.docker("cp", "-L", "box:/link-to-made", tmp_path / "followed")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "followed").is_symlink()
    assert (tmp_path / "followed").read_text() == "made inside\n"

    # To stdout: the tar stream the API serves.
    r = docker_sh(api, '"$DOCKER" cp box:/made.txt - | tar -xOf - made.txt')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "made inside\n"
    # Missing paths and containers.
    r = api.docker("cp", "box:/does/not/exist", tmp_path / "x")
    assert r.returncode == 1
    assert "Could not find the file /does/not/exist in container box" in r.stderr
    assert not (tmp_path / "x").exists()
    r = api.docker("cp", src, "nosuchbox:/tmp")
    assert r.returncode == 1 and "No such container" in r.stderr


def test_cp_works_on_a_stopped_container(api, tmp_path):
    api.docker_ok("run", "--name", "done", "busybox", "sh", "-c", "echo written > /result")
    out = tmp_path / "result"
    r = api.docker("cp", "done:/result", out)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "written\n"
    (tmp_path / "in.txt").write_text("after the end\n")
    r = api.docker("cp", tmp_path / "in.txt", "done:/in.txt")
    assert r.returncode == 0, r.stderr
    out2 = tmp_path / "back.txt"
    assert api.docker("cp", "done:/in.txt", out2).returncode == 0
    assert out2.read_text() == "after the end\n"


def make_tree(root):
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "top.txt").write_text("top\n")
    (root / "sub" / "mid.bin").write_bytes(bytes(range(256)) * 300)
    (root / "sub" / "deeper" / "leaf.txt").write_text("leaf\n")
    (root / "with space.txt").write_text("spaced\n")
    os.symlink("sub/deeper/leaf.txt", root / "rel-link")
    os.chmod(root / "sub", 0o750)
    os.chmod(root / "sub" / "mid.bin", 0o600)
    os.chmod(root / "top.txt", 0o444)


def listing(root) -> dict:
    """path → (mode, contents or link target) for everything below root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = (oct(stat.S_IMODE(st.st_mode)), "dir")
            else:
                out[rel] = (oct(stat.S_IMODE(st.st_mode)), open(p, "rb").read())
    return out


def test_cp_directories_both_ways(api, tmp_path):
    run_sleeper(api)
    src = tmp_path / "tree"
    make_tree(src)
    expected = listing(src)

    # A new name: the directory is created as /srv.
    r = api.docker("cp", src, "box:/srv")
    assert r.returncode == 0, r.stderr
    assert sh(api, "box", "cd /srv && find . | sort") == \
        ".\n./rel-link\n./sub\n./sub/deeper\n./sub/deeper/leaf.txt\n./sub/mid.bin\n./top.txt\n./with space.txt\n"
    assert sh(api, "box", "cat /srv/rel-link; stat -c '%a' /srv/sub /srv/sub/mid.bin /srv/top.txt") == \
        "leaf\n750\n600\n444\n"
    # Into an existing directory: below it, under its own name.
    r = api.docker("cp", src, "box:/tmp")
    assert r.returncode == 0, r.stderr
    assert sh(api, "box", "cat /tmp/tree/sub/deeper/leaf.txt") == "leaf\n"

    # Back out: to a new name, into an existing directory, and only the contents ("dir/.").
    back = tmp_path / "back"
    r = api.docker("cp", "box:/srv", back)
    assert r.returncode == 0, r.stderr
    assert listing(back) == expected
    into = tmp_path / "into"
    into.mkdir()
    r = api.docker("cp", "box:/srv", into)
    assert r.returncode == 0, r.stderr
    assert listing(into / "srv") == expected
    contents = tmp_path / "contents"
    contents.mkdir()
    r = api.docker("cp", "box:/srv/.", contents)
    assert r.returncode == 0, r.stderr
    assert listing(contents) == expected
    r = api.docker("cp", "box:/srv/", tmp_path / "slash")
    assert r.returncode == 0, r.stderr
    assert listing(tmp_path / "slash") == expected

    # A directory onto a file is refused.
    sh(api, "box", "echo file > /plainfile")
    r = api.docker("cp", src, "box:/plainfile")
    assert r.returncode == 1
    assert sh(api, "box", "cat /plainfile") == "file\n"


def test_cp_unicode_long_and_hard_linked_names(api, tmp_path):
    run_sleeper(api)
    src = tmp_path / "names"
    (src / "dé").mkdir(parents=True)
    (src / "dé" / "é ü.txt").write_text("accents\n")
    long_dir = src / ("d" * 90) / ("e" * 90)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 150)).write_text("long\n")
    (src / "a.txt").write_text("linked\n")
    os.link(src / "a.txt", src / "b.txt")
    expected = listing(src)

    r = api.docker("cp", src, "box:/n")
    assert r.returncode == 0, r.stderr
    assert sh(api, "box", "cat '/n/dé/é ü.txt' /n/d*/e*/f*; stat -c %i /n/a.txt /n/b.txt | uniq | wc -l") == \
        "accents\nlong\n1\n"
    for source, dest in (("box:/n", tmp_path / "back"), ("box:/n/.", tmp_path / "contents")):
        if dest.name == "contents":
            dest.mkdir()
        r = api.docker("cp", source, dest)
        assert r.returncode == 0, (source, r.stderr)
        assert listing(dest) == expected
        assert os.stat(dest / "a.txt").st_ino == os.stat(dest / "b.txt").st_ino
    # The server is still there (a crash would end every connection).
    assert api.proc.poll() is None


def test_cp_through_symlinks_pointing_outside_stays_inside(api, tmp_path):
    run_sleeper(api)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    before = listing(outside)
    payload = tmp_path / "payload"
    payload.write_text("payload\n")
    depth = "../" * 12
    sh(api, "box", f"ln -s {outside} /abs-escape && ln -s {depth}{str(outside).lstrip('/')} /rel-escape")

    for link in ("/abs-escape", "/rel-escape"):
        # The link leads to a path that does not exist in the container: nothing is written.
        for dest in (f"box:{link}", f"box:{link}/", f"box:{link}/payload"):
            r = api.docker("cp", payload, dest)
            assert r.returncode == 1, (dest, r.stdout, r.stderr)
        # Reading through it does not reach the host's file either.
        r = api.docker("cp", f"box:{link}/secret", tmp_path / "stolen")
        assert r.returncode == 1
        assert "Could not find the file" in r.stderr
        assert not (tmp_path / "stolen").exists()
    assert listing(outside) == before

    # Once the path exists in the container, the copy lands there, still not on the host.
    sh(api, "box", f"mkdir -p {outside}")
    r = api.docker("cp", payload, "box:/abs-escape")
    assert r.returncode == 0, r.stderr
    r = api.docker("cp", payload, "box:/rel-escape/payload2")
    assert r.returncode == 0, r.stderr
    assert sh(api, "box", f"cat {outside}/payload {outside}/payload2") == "payload\npayload\n"
    assert listing(outside) == before

    # A tar whose entries climb out or go through their own symlink is refused as bad input.
    target = tmp_path / "planted"
    target.mkdir()
    for members in (
        [("../../../../../../../../../" + str(target / "pwned").lstrip("/"), "file", b"x", 0o644)],
        [("evil", "symlink", str(target), 0o777), ("evil/pwned", "file", b"x", 0o644)],
    ):
        status, _, body = api.request("PUT", "/containers/box/archive?path=/tmp", body=tar_bytes(*members),
                                      headers={"Content-Type": "application/x-tar"})
        assert status == 400, body
        assert json.loads(body)["message"]
    assert list(target.iterdir()) == []
    # The symlink entry itself was extracted in the container (before the refused entry).
    assert sh(api, "box", "readlink /tmp/evil") == f"{target}\n"


# --- the archive endpoints over raw HTTP -----------------------------------------------------

def test_archive_head_get_put_raw(api):
    run_sleeper(api)
    sh(api, "box", "mkdir -p /d/e && printf 12345 > /d/f && chmod 4755 /d/f && ln -s /d/f /d/l && "
                   "ln -s ../../missing/x /d/dangling")

    status, headers, body = api.request("HEAD", "/containers/box/archive?path=/d/f")
    assert status == 200 and body == b""
    st = path_stat(headers)
    assert st["name"] == "f" and st["size"] == 5 and st["linkTarget"] == ""
    assert st["mode"] == 0o755 | (1 << 23)  # Go's os.ModeSetuid
    assert st["mtime"].endswith("Z")
    st = path_stat(api.request("HEAD", "/containers/box/archive?path=/d")[1])
    assert st["name"] == "d" and st["mode"] & (1 << 31)  # os.ModeDir
    st = path_stat(api.request("HEAD", "/containers/box/archive?path=/d/l")[1])
    assert st["name"] == "l" and st["mode"] & (1 << 27) and st["linkTarget"] == "/d/f"
    st = path_stat(api.request("HEAD", "/containers/box/archive?path=/d/dangling")[1])
    assert st["mode"] & (1 << 27) and st["linkTarget"] == "/missing/x"
    st = path_stat(api.request("HEAD", "/containers/box/archive?path=/d/.")[1])
    assert st["name"] == "." and st["mode"] & (1 << 31)

    for path, code in (("/nope", 404), ("/nope/deeper", 404)):
        status, headers, body = api.request("HEAD", f"/containers/box/archive?path={q(path)}")
        assert (status, body) == (code, b""), path
    status, _, body = api.request("HEAD", "/containers/nosuch/archive?path=/")
    assert (status, body) == (404, b"")

    # A HEAD error leaves a kept-alive connection usable (no body sneaks into the next response).
    c = UnixHTTPConnection(str(api.sock))
    c.request("HEAD", "/containers/box/archive?path=/nope")
    r = c.getresponse()
    r.read()
    assert r.status == 404
    c.request("GET", "/containers/box/archive?path=/d/f")
    r = c.getresponse()
    data = r.read()
    assert r.status == 200
    c.close()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert t.getnames() == ["f"]
        assert t.extractfile("f").read() == b"12345"

    # GET names entries like docker: "d/…", "./…" for "d/.".
    status, headers, data = api.request("GET", "/containers/box/archive?path=/d")
    assert status == 200 and headers["content-type"] == "application/x-tar"
    assert path_stat(headers)["name"] == "d"
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert sorted(t.getnames()) == ["d", "d/dangling", "d/e", "d/f", "d/l"]
        assert t.getmember("d/l").linkname == "/d/f"
    status, _, data = api.request("GET", "/containers/box/archive?path=" + q("/d/."))
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert sorted(t.getnames()) == [".", "./dangling", "./e", "./f", "./l"]
        assert t.extractfile("./f").read() == b"12345"
    status, _, data = api.request("GET", "/containers/box/archive?path=" + q("d/e/../f"))
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert t.getnames() == ["f"]

    # Errors: 404 for missing things, 400 for bad input.
    status, _, body = api.request("GET", "/containers/box/archive?path=/nope")
    assert status == 404
    assert json.loads(body)["message"] == "Could not find the file /nope in container box"
    status, _, body = api.request("GET", "/containers/nosuch/archive?path=/")
    assert status == 404 and json.loads(body)["message"] == "No such container: nosuch"
    status, _, body = api.request("GET", "/containers/box/archive")
    assert status == 400 and json.loads(body)["message"] == "path is empty"
    status, _, body = api.request("GET", "/containers/box/archive?path=" + q("/d/f/"))
    assert status == 400, body

    # PUT: extracts into an existing directory (gzip too); the directory must exist and be one.
    tar = tar_bytes(("new", "dir", b"", 0o711), ("new/a.txt", "file", b"alpha\n", 0o640),
                    ("new/ln", "symlink", "a.txt", 0o777))
    status, _, body = api.request("PUT", "/containers/box/archive?path=/d/e&noOverwriteDirNonDir=true",
                                  body=tar, headers={"Content-Type": "application/x-tar"})
    assert (status, body) == (200, b"")
    assert sh(api, "box", "stat -c '%a %n' /d/e/new /d/e/new/a.txt; cat /d/e/new/ln") == \
        "711 /d/e/new\n640 /d/e/new/a.txt\nalpha\n"
    status, _, _ = api.request("PUT", "/containers/box/archive?path=/d/l/..", body=gzip.compress(
        tar_bytes(("gz.txt", "file", b"gzipped\n", 0o644))))
    assert status == 200
    assert sh(api, "box", "cat /d/gz.txt") == "gzipped\n"  # "/d/l/.." is "/d": cleaned first, like docker
    status, _, body = api.request("PUT", "/containers/box/archive?path=/d/l", body=tar)  # a link to a file
    assert status == 400 and json.loads(body)["message"] == "extraction point is not a directory"
    status, _, body = api.request("PUT", "/containers/box/archive?path=/nope", body=tar)
    assert status == 404 and "Could not find the file /nope" in json.loads(body)["message"]
    status, _, body = api.request("PUT", "/containers/nosuch/archive?path=/", body=tar)
    assert status == 404
    status, _, body = api.request("PUT", "/containers/box/archive?path=/tmp", body=b"")  # an empty tar, as docker
    assert (status, body) == (200, b"")
    status, _, body = api.request("PUT", "/containers/box/archive?path=/tmp", body=b"this is not a tar" * 100)
    assert status == 400 and json.loads(body)["message"]
    # A file where a directory is (and the reverse) is refused.
    status, _, body = api.request("PUT", "/containers/box/archive?path=/d", body=tar_bytes(("e", "file", b"x", 0o644)))
    assert status == 400, body
    status, _, body = api.request("PUT", "/containers/box/archive?path=/d", body=tar_bytes(("f", "dir", b"", 0o755)))
    assert status == 400, body
    assert sh(api, "box", "cat /d/f; test -d /d/e && echo dir") == "12345dir\n"


def test_archive_put_read_only_rootfs_is_403(api, tmp_path):
    api.docker_ok("run", "-d", "--name", "ro", "--read-only", "-v", "/data", "busybox", "sleep", "1000")
    tar = tar_bytes(("x.txt", "file", b"x\n", 0o644))
    for data in (tar, b""):
        status, _, body = api.request("PUT", "/containers/ro/archive?path=/tmp", body=data)
        assert status == 403 and json.loads(body)["message"] == "container rootfs is marked read-only"
    # A volume of a read-only container is writable.
    status, _, body = api.request("PUT", "/containers/ro/archive?path=/data", body=tar)
    assert status == 200, body
    assert api.docker_ok("exec", "ro", "cat", "/data/x.txt") == "x\n"


def test_clients_leaving_mid_stream_leave_nothing_behind(api):
    api.docker_ok("run", "-d", "--name", "big", "busybox", "sh", "-c",
                  "dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null && touch /ready && sleep 1000")
    poll(lambda: api.docker("exec", "big", "test", "-e", "/ready").returncode == 0, "/big")
    # The baseline is taken once the server is idle: the exec's connection and threads may still be
    # winding down just after the CLI returned (slow under ASan).
    def idle_count():
        if len(os.listdir(f"/proc/{api.pid}/task")) != 1:
            return None
        n = api.fd_count()
        time.sleep(0.2)
        return n if n == api.fd_count() and len(os.listdir(f"/proc/{api.pid}/task")) == 1 else None
    before = poll(idle_count, "the server to be idle")
    for path in ("/containers/big/archive?path=/big", "/containers/big/export", "/images/busybox/get"):
        for _ in range(3):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(api.sock))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert s.recv(100).startswith(b"HTTP/1.1 200 OK")
            s.close()
    # The producers see the broken pipe and end: no fds (pipes, trees) or threads stay.
    poll(lambda: api.fd_count() == before and len(os.listdir(f"/proc/{api.pid}/task")) == 1, "the streams to end")
    status, _, data = api.request("GET", "/containers/big/archive?path=/big")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert t.getmember("big").size == 32 << 20


# --- docker export -----------------------------------------------------------------------------

def test_export_is_the_root_filesystem(api, tmp_path):
    api.docker_ok("run", "--name", "exp", "-v", "/vol", "busybox", "sh", "-c",
                  "echo exported > /marker && echo in-volume > /vol/v && rm /etc/berth-fixture")
    out = tmp_path / "exp.tar"
    r = api.docker("export", "exp", "-o", out)
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as t:
        names = t.getnames()
        assert "marker" in names and "bin/busybox" in names and "etc/passwd" in names
        assert not any(n == "." or n.startswith("./") or n.startswith("/") for n in names)
        assert t.extractfile("marker").read() == b"exported\n"
        assert t.getmember("bin/sh").issym() and t.getmember("bin/sh").linkname == "busybox"
        assert "etc/berth-fixture" not in names  # removed in the container: the merged view
        assert "vol/v" not in names  # volumes are not part of the container's filesystem
    # To stdout, too.
    r = api.docker("export", "nosuch")
    assert r.returncode == 1 and "No such container" in r.stderr


# --- docker save / load ------------------------------------------------------------------------

def test_save_rmi_load_run(api, tmp_path):
    image_id = api.docker_ok("image", "inspect", "--format", "{{.Id}}", "busybox").strip()
    archive = tmp_path / "busybox.tar"
    r = api.docker("save", "busybox", "-o", archive)
    assert r.returncode == 0, r.stderr
    with tarfile.open(archive) as t:
        names = t.getnames()
        assert "manifest.json" in names and "index.json" in names
        manifest = json.load(t.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["busybox:latest"]

    r = api.docker("rmi", "busybox")
    assert r.returncode == 0, r.stderr
    assert api.docker_ok("images", "-q") == ""
    r = api.docker("run", "--rm", "--pull", "never", "busybox", "true")
    assert r.returncode == 125

    r = api.docker("load", "-i", archive)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Loaded image: busybox:latest\n"
    assert api.docker_ok("image", "inspect", "--format", "{{.Id}}", "busybox").strip() == image_id
    r = api.docker("run", "--rm", "busybox", "sh", "-c", "cat /etc/berth-fixture; echo ran")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "berth busybox test image\nran\n"

    # Loading again over an existing tag, from stdin.
    with open(archive, "rb") as f:
        data = f.read()
    status, headers, body = api.request("POST", "/images/load?quiet=1", body=data,
                                        headers={"Content-Type": "application/x-tar"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert [json.loads(l) for l in body.splitlines()] == [{"stream": "Loaded image: busybox:latest\n"}]


def test_save_endpoints_and_refusals(api, tmp_path):
    api.docker_ok("tag", "busybox", "other/name:v1")
    status, headers, data = api.request("GET", "/images/get?names=busybox&names=other/name:v1")
    assert status == 200 and headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    assert sorted(manifest[0]["RepoTags"]) == ["busybox:latest", "other/name:v1"]
    status, _, data = api.request("GET", "/images/other/name:v1/get")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert json.load(t.extractfile("manifest.json"))[0]["RepoTags"] == ["other/name:v1"]

    status, _, body = api.request("GET", "/images/get?names=busybox&names=nosuch:1")
    assert status == 404 and json.loads(body)["message"] == "No such image: nosuch:1"
    status, _, body = api.request("GET", "/images/nosuch/get")
    assert status == 404
    out = tmp_path / "never.tar"
    r = api.docker("save", "nosuch:1", "-o", out)
    assert r.returncode == 1 and "No such image: nosuch:1" in r.stderr
    assert not out.exists()

    # docker save to stdout, loaded back through the API's load from stdin.
    r = docker_sh(api, f'"$DOCKER" save other/name:v1 > {tmp_path}/s.tar')
    assert r.returncode == 0, r.stderr
    api.docker_ok("rmi", "other/name:v1")
    r = docker_sh(api, f'"$DOCKER" load < {tmp_path}/s.tar')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Loaded image: other/name:v1\n"

    # A body that is no image archive: a JSON error line, docker load fails.
    (tmp_path / "junk.tar").write_bytes(tar_bytes(("hello.txt", "file", b"hi\n", 0o644)))
    r = api.docker("load", "-i", tmp_path / "junk.tar")
    assert r.returncode == 1
    assert "neither manifest.json nor index.json" in r.stderr
    status, _, body = api.request("POST", "/images/load", body=b"garbage" * 10)
    assert status == 200
    lines = [json.loads(l) for l in body.splitlines()]
    assert len(lines) == 1 and lines[0]["error"] and lines[0]["errorDetail"]["message"] == lines[0]["error"]


# --- docker import -------------------------------------------------------------------------------

def test_export_import_run_with_changes(api, tmp_path):
    api.docker_ok("run", "--name", "src", "busybox", "sh", "-c", "echo imported-data > /marker")
    exported = tmp_path / "root.tar"
    api.docker_ok("export", "src", "-o", exported)
    r = api.docker("import", "-c", "ENV GREETING=hello", "-c", "WORKDIR /etc", "-c", 'CMD ["cat", "/marker"]',
                   "-m", "from a test", exported, "imported/root:v1")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    info = json.loads(api.docker_ok("image", "inspect", "imported/root:v1"))[0]
    assert info["Id"] == image_id
    assert info["Comment"] == "from a test"
    assert "GREETING=hello" in info["Config"]["Env"] and info["Config"]["WorkingDir"] == "/etc"
    assert len(info["RootFS"]["Layers"]) == 1
    assert api.docker_ok("run", "--rm", "imported/root:v1") == "imported-data\n"
    assert api.docker_ok("run", "--rm", "imported/root:v1", "sh", "-c", "echo $GREETING; pwd") == "hello\n/etc\n"

    # From stdin, untagged, gzip-compressed.
    with open(exported, "rb") as f:
        (tmp_path / "root.tar.gz").write_bytes(gzip.compress(f.read()))
    r = docker_sh(api, f'"$DOCKER" import - < {tmp_path}/root.tar.gz')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("sha256:")
    assert api.docker_ok("run", "--rm", r.stdout.strip(), "cat", "/marker") == "imported-data\n"


def test_import_refusals_change_nothing(api, tmp_path):
    before = api.docker_ok("images", "-qa")
    (tmp_path / "junk").write_bytes(b"not a tar at all" * 100)
    r = api.docker("import", tmp_path / "junk", "bad/junk")
    assert r.returncode == 1 and r.stderr.strip()
    r = api.docker("import", "-c", "RUN true", tmp_path / "junk", "bad/change")
    assert r.returncode == 1 and "RUN is not a valid change command" in r.stderr
    status, _, body = api.request("POST", "/images/create?fromSrc=-&repo=bad/Case", body=b"")
    assert status == 400 and "bad/Case" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/images/create?fromSrc=http://127.0.0.1:9/x.tar")
    assert status == 501 and "http://127.0.0.1:9/x.tar" in json.loads(body)["message"]
    assert api.docker_ok("images", "-qa") == before
