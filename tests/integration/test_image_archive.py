"""berth save / load / import: docker-archive and OCI-layout tars, root filesystem tarballs.

Archives from other tools come from skopeo (docker-archive) and oci_builder (OCI layouts);
bad input must fail with one line on stderr and leave the store exactly as it was.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import pty
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import berthtest as bt
import oci_builder as ob
from imagetest import BERTH, Berth, hardlink_groups, mounted, walk_tree

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
ID_RE = re.compile(r"sha256:[0-9a-f]{64}")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run_bin(b: Berth, *args, stdin=None, stdout=None, input: bytes | None = None) -> subprocess.CompletedProcess:
    """berth with binary stdin/stdout (Berth.run is text-only)."""
    cmd = [BERTH, "--root", str(b.root), "--config", str(b.config_dir), *[str(a) for a in args]]
    return subprocess.run(cmd, stdin=stdin, stdout=stdout if stdout is not None else subprocess.PIPE,
                          stderr=subprocess.PIPE, input=input, timeout=300)


def make_berth(path: Path):
    b = Berth(path)
    yield b
    subprocess.run(["umount", "-R", "-l", str(path.parent / "mnt")], capture_output=True)
    shutil.rmtree(b.root, ignore_errors=True)
    shutil.rmtree(b.config_dir, ignore_errors=True)


@pytest.fixture
def berth(tmp_path):
    """berth with a private, empty --root (removed after the test)."""
    yield from make_berth(tmp_path / "root")


@pytest.fixture
def other(tmp_path):
    """A second, fresh root: where archives get loaded back."""
    yield from make_berth(tmp_path / "root2")


@pytest.fixture(scope="module")
def busybox(tmp_path_factory):
    """(rootfs dir, tarball of it made by GNU tar)."""
    d = tmp_path_factory.mktemp("busybox")
    rootfs = d / "rootfs"
    r = subprocess.run(["sh", str(bt.FIXTURES / "make-busybox-rootfs.sh"), str(rootfs)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build the busybox rootfs: {r.stderr.strip()}")
    tar = d / "busybox.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    return rootfs, tar


def import_busybox(b: Berth, busybox, ref="busybox:latest", *changes) -> str:
    args = ["import"]
    for c in changes:
        args += ["--change", c]
    out = b.ok(*args, busybox[1], ref)
    image_id = out.strip()
    assert ID_RE.fullmatch(image_id), out
    return image_id


def inspect(b: Berth, name: str) -> dict:
    return json.loads(b.ok("image", "inspect", name))[0]


def config_blob(b: Berth, image_id: str) -> tuple[bytes, dict]:
    raw = (b.root / "content/blobs/sha256" / image_id[7:]).read_bytes()
    assert sha256(raw) == image_id
    return raw, json.loads(raw)


def layer_dir(b: Berth, chain_id: str) -> Path:
    return b.root / "layers" / chain_id[7:]


def tar_bytes(members) -> bytes:
    """A tar from (name, bytes) / (name, "symlink", target) / TarInfo members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
                continue
            ti = tarfile.TarInfo(m[0])
            ti.mtime = ob.MTIME
            if len(m) == 3 and m[1] == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, m[2]
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(m[1]), 0o644
                tf.addfile(ti, io.BytesIO(m[1]))
    return buf.getvalue()


def small_layer(name: str, content: bytes) -> bytes:
    return tar_bytes([(name, content)])


def docker_archive(layers: list[bytes], diff_ids=None, tags=("bad/image:v1",), layer_names=None, extra=(),
                   os_name="linux"):
    """A docker-archive built by hand: config.json, layerN.tar, manifest.json (+ extra members)."""
    config = json.dumps({"architecture": HOST_ARCH, "os": os_name, "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha256(l) for l in layers]}}).encode()
    names = layer_names or [f"layer{i}.tar" for i in range(len(layers))]
    members = [("config.json", config)] + list(zip([f"layer{i}.tar" for i in range(len(layers))], layers))
    manifest = [{"Config": "config.json", "RepoTags": list(tags), "Layers": names}]
    return tar_bytes(members + list(extra) + [("manifest.json", json.dumps(manifest).encode())])


def tar_dir(src: Path, dest: Path):
    with tarfile.open(dest, "w") as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(src)), recursive=False)


def refused(b: Berth, *args, input: bytes | None = None, match: str = "") -> str:
    """Runs berth expecting failure: one 'berth: …' line on stderr, the store untouched."""
    before = b.store_snapshot()
    r = run_bin(b, *args, input=input)
    err = r.stderr.decode(errors="replace")
    assert r.returncode != 0, f"berth {args} succeeded: {r.stdout!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"want one line on stderr, got: {err!r}"
    assert lines[0].startswith("berth: "), err
    assert match in lines[0], err
    assert b.store_snapshot() == before
    b.no_partials()
    return lines[0]


# --- import ----------------------------------------------------------------------------------


def test_import_busybox_with_changes(berth, busybox):
    rootfs, tar = busybox
    image_id = import_busybox(berth, busybox, "busybox:imported", 'CMD ["sh"]', "ENV A=b")
    info = inspect(berth, "busybox:imported")
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["busybox:imported"]
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Config"]["Env"] == ["A=b"]
    assert info["Config"]["Entrypoint"] is None
    assert info["Comment"] == "Imported from -"
    assert (info["Os"], info["Architecture"]) == ("linux", HOST_ARCH)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", info["Created"])

    raw, cfg = config_blob(berth, image_id)
    # docker's import config: these keys, in this order, the tarball as the only layer.
    assert list(cfg) == ["comment", "created", "config", "architecture", "os", "rootfs", "history"]
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [sha256(tar.read_bytes())]}
    assert cfg["history"] == [{"created": cfg["created"], "comment": "Imported from -"}]
    assert cfg["config"]["Volumes"] is None and cfg["config"]["Labels"] is None

    layer = layer_dir(berth, cfg["rootfs"]["diff_ids"][0])
    assert (layer / "bin/busybox").read_bytes() == (rootfs / "bin/busybox").read_bytes()
    assert walk_tree(layer) == walk_tree(rootfs)
    berth.no_partials()


def test_import_gzip_from_stdin_with_message_untagged(berth, busybox):
    data = gzip.compress(busybox[1].read_bytes())
    r = run_bin(berth, "import", "-m", "made by a test", "-", input=data)
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.decode().strip()
    assert ID_RE.fullmatch(image_id)
    info = inspect(berth, image_id)
    assert info["RepoTags"] == []
    assert info["Comment"] == "made by a test"
    _, cfg = config_blob(berth, image_id)
    assert cfg["history"][0]["comment"] == "made by a test"
    assert cfg["rootfs"]["diff_ids"] == [sha256(busybox[1].read_bytes())]  # the diff, not the gzip
    layer = layer_dir(berth, cfg["rootfs"]["diff_ids"][0])
    assert (layer / "etc/berth-fixture").read_text() == "berth busybox test image\n"


def test_import_change_instructions(berth, busybox):
    image_id = import_busybox(
        berth, busybox, "busybox:changes",
        'ENTRYPOINT ["/bin/echo"]', "CMD hello world", "EXPOSE 80 53/udp", "VOLUME /data /logs",
        "WORKDIR /srv", "WORKDIR app", "USER app", 'LABEL org.test=yes "with space"=ok', "STOPSIGNAL SIGINT",
        "HEALTHCHECK --interval=5s --retries=2 CMD true", "ONBUILD RUN true", "ENV P=/bin X=$P:/x")
    _, cfg = config_blob(berth, image_id)
    c = cfg["config"]
    assert c["Entrypoint"] == ["/bin/echo"]
    assert c["Cmd"] == ["/bin/sh", "-c", "hello world"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}, "/logs": {}}
    assert c["WorkingDir"] == "/srv/app"
    assert c["User"] == "app"
    assert c["Labels"] == {"org.test": "yes", "with space": "ok"}
    assert c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert c["OnBuild"] == ["RUN true"]
    assert c["Env"] == ["P=/bin", "X=:/x"]  # $P expands against the Env from before the instruction
    info = inspect(berth, "busybox:changes")
    assert info["Config"]["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert info["Config"]["StopSignal"] == "SIGINT"


# --- save ------------------------------------------------------------------------------------


def check_archive_structure(path: Path) -> dict:
    """The docker >= 25 layout: a docker-archive and an OCI layout in one tar, all consistent."""
    with tarfile.open(path) as tf:
        members = {m.name.rstrip("/"): m for m in tf.getmembers()}
        files = {n: tf.extractfile(m).read() for n, m in members.items() if m.isfile()}
    assert {"oci-layout", "index.json", "manifest.json", "blobs", "blobs/sha256"} <= set(members)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/"):
            assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1], f"{name} does not hash to its name"
    index = json.loads(files["index.json"])
    assert index["mediaType"] == ob.MT_OCI_INDEX
    docker = json.loads(files["manifest.json"])
    for entry in docker:
        config = json.loads(files[entry["Config"]])
        diff_ids = config["rootfs"]["diff_ids"]
        assert [f"blobs/sha256/{d[7:]}" for d in diff_ids] == entry["Layers"]
        for layer in entry["Layers"]:
            data = files[layer]
            assert data[:2] != b"\x1f\x8b", "layers must be uncompressed"
            tarfile.open(fileobj=io.BytesIO(data)).getmembers()  # a readable tar
    for desc in index["manifests"]:
        assert desc["mediaType"] == ob.MT_OCI_MANIFEST
        m = json.loads(files[f"blobs/sha256/{desc['digest'][7:]}"])
        assert desc["size"] == len(files[f"blobs/sha256/{desc['digest'][7:]}"])
        assert m["config"]["mediaType"] == ob.MT_OCI_CONFIG
        assert m["config"]["size"] == len(files[f"blobs/sha256/{m['config']['digest'][7:]}"])
        for l in m["layers"]:
            assert l["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
            assert l["size"] == len(files[f"blobs/sha256/{l['digest'][7:]}"])
        assert any(e["Config"] == f"blobs/sha256/{m['config']['digest'][7:]}" for e in docker)
    return {"index": index, "docker": docker, "files": files}


def test_save_load_round_trip(berth, other, busybox, tmp_path):
    image_id = import_busybox(berth, busybox, "busybox:latest", 'CMD ["sh"]')
    berth.ok("tag", "busybox:latest", "busybox:second")
    berth.ok("tag", "busybox:latest", "localhost:5000/team/bb:v1")
    out = tmp_path / "busybox.tar"
    berth.ok("save", "-o", out, "busybox")  # a bare repository: all of its tags
    assert oct(out.stat().st_mode & 0o777) == "0o600"  # like docker's CopyToFile
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    a = check_archive_structure(out)
    assert a["docker"][0]["Config"] == f"blobs/sha256/{image_id[7:]}"
    assert sorted(a["docker"][0]["RepoTags"]) == ["busybox:latest", "busybox:second"]
    names = sorted(d["annotations"]["io.containerd.image.name"] for d in a["index"]["manifests"])
    assert names == ["docker.io/library/busybox:latest", "docker.io/library/busybox:second"]
    refs = sorted(d["annotations"]["org.opencontainers.image.ref.name"] for d in a["index"]["manifests"])
    assert refs == ["latest", "second"]
    _, cfg = config_blob(berth, image_id)
    top = cfg["rootfs"]["diff_ids"][-1][7:]
    assert json.loads(a["files"]["repositories"]) == {"busybox": {"latest": top, "second": top}}

    loaded = other.ok("load", "-i", out)
    assert sorted(loaded.splitlines()) == ["Loaded image: busybox:latest", "Loaded image: busybox:second"]
    info = inspect(other, "busybox:second")
    assert info["Id"] == image_id
    assert sorted(info["RepoTags"]) == ["busybox:latest", "busybox:second"]
    assert info["Config"]["Cmd"] == ["sh"]
    for diff in cfg["rootfs"]["diff_ids"]:
        assert walk_tree(layer_dir(other, diff)) == walk_tree(layer_dir(berth, diff))
        assert hardlink_groups(layer_dir(other, diff)) == hardlink_groups(layer_dir(berth, diff))
    other.no_partials()

    # Explicit tags from two repositories; loading again over existing tags is idempotent.
    berth.ok("save", "-o", out, "busybox:latest", "localhost:5000/team/bb:v1")
    assert sorted(other.ok("load", "-i", out).splitlines()) == [
        "Loaded image: busybox:latest", "Loaded image: localhost:5000/team/bb:v1"]
    assert sorted(inspect(other, image_id)["RepoTags"]) == [
        "busybox:latest", "busybox:second", "localhost:5000/team/bb:v1"]
    other.no_partials()


def test_save_by_id_is_untagged(berth, other, busybox, tmp_path):
    image_id = import_busybox(berth, busybox)
    out = tmp_path / "by-id.tar"
    berth.ok("save", "-o", out, image_id[7:19])
    a = check_archive_structure(out)
    assert a["docker"][0]["RepoTags"] is None
    assert "annotations" not in a["index"]["manifests"][0]
    assert "repositories" not in a["files"]
    assert other.ok("load", "-i", out) == f"Loaded image ID: {image_id}\n"
    assert inspect(other, image_id)["RepoTags"] == []


def test_save_multilayer_round_trip_and_readers(berth, other, tmp_path):
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=[f"linux/{HOST_ARCH}"])
    src = tmp_path / "layout.tar"
    tar_dir(img.layout, src)
    berth.ok("load", "-i", src)
    image_id = img.manifests[f"linux/{HOST_ARCH}"].config_digest
    berth.ok("tag", image_id, "test/app:v1")
    out = tmp_path / "app.tar"
    berth.ok("save", "-o", out, "test/app:v1")
    check_archive_structure(out)
    # Other readers take it both ways.
    for transport in ("docker-archive", "oci-archive"):
        info = json.loads(ob.skopeo(["inspect", f"{transport}:{out}"]).stdout)
        assert info["Layers"] == [l.diff_id for l in img.manifests[f"linux/{HOST_ARCH}"].layers]
    assert other.ok("load", "-i", out) == "Loaded image: test/app:v1\n"
    assert inspect(other, "test/app:v1")["Id"] == image_id
    with mounted(berth, image_id, tmp_path / "mnt/a") as ours, mounted(other, image_id, tmp_path / "mnt/b") as theirs:
        assert walk_tree(ours) == walk_tree(theirs)
        assert hardlink_groups(ours) == hardlink_groups(theirs)
        assert not (theirs / "dir/a").exists()  # whiteouts survived the trip
        assert sorted(os.listdir(theirs / "data")) == ["new"]


def test_save_to_stdout_load_from_stdin(berth, other, busybox, tmp_path):
    image_id = import_busybox(berth, busybox)
    out = tmp_path / "stdout.tar"
    with open(out, "wb") as f:
        r = run_bin(berth, "save", "busybox:latest", stdout=f)
    assert r.returncode == 0, r.stderr
    check_archive_structure(out)
    with open(out, "rb") as f:
        r = run_bin(other, "load", stdin=f)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Loaded image: busybox:latest\n"
    assert inspect(other, "busybox")["Id"] == image_id


def test_save_refuses_a_terminal(berth, busybox):
    import_busybox(berth, busybox)
    master, slave = pty.openpty()
    try:
        r = run_bin(berth, "save", "busybox", stdout=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode != 0
    assert r.stderr.decode().strip() == \
        "berth: cowardly refusing to save to a terminal. Use the -o flag or redirect"


# --- load ------------------------------------------------------------------------------------


def umoci_tree(img: ob.BuiltImage, dest: Path) -> Path:
    r = subprocess.run(["umoci", "unpack", "--image", f"{img.layout}:{img.tag}", str(dest)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dest / "rootfs"


def test_load_skopeo_docker_archive(berth, tmp_path):
    # skopeo's docker-archive takes no zstd layers.
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=[f"linux/{HOST_ARCH}"], zstd=False)
    archive = tmp_path / "skopeo.tar"
    ob.skopeo(["copy", img.oci_ref(), f"docker-archive:{archive}:test/app:v1"])
    with tarfile.open(archive) as tf:
        assert "manifest.json" in tf.getnames()
    assert berth.ok("load", "-i", archive) == "Loaded image: test/app:v1\n"
    info = inspect(berth, "test/app:v1")
    assert info["Id"] == img.manifests[f"linux/{HOST_ARCH}"].config_digest
    assert info["RootFS"]["Layers"] == [l.diff_id for l in img.manifests[f"linux/{HOST_ARCH}"].layers]
    theirs = umoci_tree(img, tmp_path / "bundle")
    with mounted(berth, "test/app:v1", tmp_path / "mnt/a") as ours:
        assert walk_tree(ours) == walk_tree(theirs)
        assert hardlink_groups(ours) == hardlink_groups(theirs)
    berth.no_partials()


def test_load_oci_layout_picks_the_host_platform(berth, other, tmp_path):
    img = ob.build_layout(tmp_path / "layout", tag="v1")  # an index: linux/amd64 + linux/arm64
    plain = tmp_path / "layout.tar"
    tar_dir(img.layout, plain)
    want = img.manifests[f"linux/{HOST_ARCH}"].config_digest
    # ref.name "v1" is only a tag: it names no repository, so the image stays untagged.
    assert berth.ok("load", "-q", "-i", plain) == f"Loaded image ID: {want}\n"
    with mounted(berth, want, tmp_path / "mnt/a") as root:
        assert (root / "etc/arch").read_text() == f"{HOST_ARCH}\n"

    index = json.loads((img.layout / "index.json").read_text())
    index["manifests"][0]["annotations"]["io.containerd.image.name"] = "docker.io/test/multi:v1"
    (img.layout / "index.json").write_text(json.dumps(index))
    named = tmp_path / "named.tar"
    tar_dir(img.layout, named)
    assert other.ok("load", "-i", named) == "Loaded image: test/multi:v1\n"
    assert inspect(other, "test/multi:v1")["Id"] == want
    other.no_partials()


@pytest.mark.parametrize("compress", [["gzip", "-c"], ["zstd", "-q", "-c"], ["xz", "-c"]])
def test_load_compressed_archive(berth, other, busybox, tmp_path, compress):
    if shutil.which(compress[0]) is None:
        pytest.skip(f"{compress[0]} is not installed")
    image_id = import_busybox(berth, busybox)
    out = tmp_path / "plain.tar"
    berth.ok("save", "-o", out, "busybox")
    packed = tmp_path / "packed"
    with open(packed, "wb") as f:
        subprocess.run([*compress, str(out)], stdout=f, check=True)
    assert other.ok("load", "-i", packed) == "Loaded image: busybox:latest\n"
    assert inspect(other, "busybox")["Id"] == image_id


def test_load_legacy_layout_with_linked_layers(berth, tmp_path):
    """docker < 25 (and skopeo) write <v1-id>/layer.tar, shared layers as symlinks; tar may use hardlinks."""
    one = small_layer("one.txt", b"one\n")
    two = small_layer("two.txt", b"two\n")
    hard = tarfile.TarInfo("h/layer.tar")
    hard.type, hard.linkname = tarfile.LNKTYPE, "layer1.tar"
    archive = tmp_path / "legacy.tar"
    archive.write_bytes(docker_archive(
        [one, two], tags=("legacy/app:v1",), layer_names=["aaa/layer.tar", "h/layer.tar"],
        extra=[("aaa", "symlink", "bbb"), ("bbb/layer.tar", "symlink", "../layer0.tar"), hard]))
    assert berth.ok("load", "-i", archive) == "Loaded image: legacy/app:v1\n"
    info = inspect(berth, "legacy/app:v1")
    assert info["RootFS"]["Layers"] == [sha256(one), sha256(two)]
    with mounted(berth, "legacy/app:v1", tmp_path / "mnt/a") as root:
        assert sorted(os.listdir(root)) == ["one.txt", "two.txt"]
    berth.no_partials()


def test_load_replaces_a_tag_like_docker(berth, other, busybox, tmp_path):
    first = import_busybox(berth, busybox, "busybox:latest")
    out = tmp_path / "first.tar"
    berth.ok("save", "-o", out, "busybox")
    second = import_busybox(other, busybox, "busybox:latest", "ENV X=1")
    assert second != first
    lines = other.ok("load", "-i", out).splitlines()
    assert lines == [f"The image busybox:latest already exists, renaming the old one with ID {second} to empty string",
                     "Loaded image: busybox:latest"]
    assert inspect(other, "busybox")["Id"] == first
    assert inspect(other, second)["RepoTags"] == []


# --- bad input: one line on stderr, non-zero exit, the store untouched ----------------------------


@pytest.fixture
def populated(berth, busybox):
    """A store that already holds an image, so 'untouched' means something."""
    import_busybox(berth, busybox)
    return berth


def test_load_refuses_non_tar_and_empty_input(populated, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"this is not a tar archive\n" * 200)
    refused(populated, "load", "-i", junk, match="not a tar archive")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    refused(populated, "load", "-i", empty)
    refused(populated, "load", "-i", tmp_path / "missing.tar", match="No such file or directory")


def test_load_refuses_a_layer_that_does_not_match_the_config(populated, tmp_path):
    good = small_layer("good.txt", b"good\n")
    bad = small_layer("bad.txt", b"bad\n")
    # The first layer is fine (and gets stored on the way), the second is not what the config says.
    archive = tmp_path / "mismatch.tar"
    archive.write_bytes(docker_archive([good, bad], diff_ids=[sha256(good), sha256(b"something else")]))
    refused(populated, "load", "-i", archive, match="diff_id mismatch")
    # Same through an OCI layout with a blob that is not what its descriptor says.
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=[f"linux/{HOST_ARCH}"])
    blob = img.layout / "blobs/sha256" / img.manifests[f"linux/{HOST_ARCH}"].layers[1].digest[7:]
    blob.write_bytes(gzip.compress(small_layer("other.txt", b"other\n")))
    layout = tmp_path / "layout.tar"
    tar_dir(img.layout, layout)
    refused(populated, "load", "-i", layout, match="digest mismatch")


def test_load_refuses_paths_outside_the_archive(populated, tmp_path):
    layer = small_layer("f.txt", b"f\n")
    for name in ("../escape.txt", "a/../../escape.txt", "/abs-escape.txt"):
        archive = tmp_path / "dotdot.tar"
        archive.write_bytes(docker_archive([layer], extra=[(name, b"x")]))
        refused(populated, "load", "-i", archive, match="refusing a path outside the archive")
    assert not (populated.root / "content/escape.txt").exists()
    assert not (populated.root / "content/ingest/escape.txt").exists()
    # Paths in manifest.json, and links inside the archive, stay inside it too.
    archive.write_bytes(docker_archive([layer], layer_names=["../../../../etc/passwd"]))
    refused(populated, "load", "-i", archive, match="escapes the archive")
    archive.write_bytes(docker_archive([layer], layer_names=["link.tar"], extra=[("link.tar", "symlink", "/etc/passwd")]))
    refused(populated, "load", "-i", archive, match="out of the archive")
    archive.write_bytes(docker_archive([layer], layer_names=["link.tar"], extra=[("link.tar", "symlink", "../x.tar")]))
    refused(populated, "load", "-i", archive, match="out of the archive")


def test_load_refuses_archives_that_are_not_images(populated, tmp_path):
    archive = tmp_path / "plain.tar"
    archive.write_bytes(tar_bytes([("hello.txt", b"hi\n")]))
    refused(populated, "load", "-i", archive, match="neither manifest.json nor index.json")
    archive.write_bytes(tar_bytes([("manifest.json", b"{not json")]))
    refused(populated, "load", "-i", archive, match="manifest.json")
    layer = small_layer("f.txt", b"f\n")
    archive.write_bytes(docker_archive([layer], layer_names=["missing.tar"]))
    refused(populated, "load", "-i", archive, match="not in the archive")
    archive.write_bytes(docker_archive([layer, layer], layer_names=["layer0.tar"]))
    refused(populated, "load", "-i", archive, match="1 layers listed but the image config has 2")
    loop = [("a.tar", "symlink", "b.tar"), ("b.tar", "symlink", "a.tar")]
    archive.write_bytes(docker_archive([layer], layer_names=["a.tar"], extra=loop))
    refused(populated, "load", "-i", archive, match="too many levels of links")
    archive.write_bytes(docker_archive([layer], os_name="windows"))
    refused(populated, "load", "-i", archive, match='image operating system "windows" cannot be used on this platform')


def test_import_refusals(populated, tmp_path, busybox):
    refused(populated, "import", tmp_path / "missing.tar", match="No such file or directory")
    refused(populated, "import", "--change", "RUN echo hi", busybox[1], match="RUN is not a valid change command")
    refused(populated, "import", "-c", "EXPOSE abc", busybox[1], match="invalid containerPort: abc")
    refused(populated, "import", "-c", "ENV", busybox[1], match="ENV requires at least one argument")
    refused(populated, "import", "http://example.com/rootfs.tar", match="URL is not supported")
    refused(populated, "import", busybox[1], "Bad:Tag", match="invalid reference format")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tarball at all\n" * 100)
    refused(populated, "import", junk)
    xz = tmp_path / "rootfs.tar.xz"
    with open(xz, "wb") as f:
        subprocess.run(["xz", "-c", str(busybox[1])], stdout=f, check=True)
    refused(populated, "import", xz, match="xz")


def test_save_refusals(populated, tmp_path):
    out = tmp_path / "out.tar"
    refused(populated, "save", "-o", out, "nosuch:image", match="No such image: nosuch:image")
    refused(populated, "save", "-o", out, "busybox", "nosuch", match="No such image: nosuch")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    r = populated.run("save")
    assert r.returncode == 125 and "requires at least 1 argument" in r.stderr
    # A store missing a layer blob: an error, and still no output file.
    diff = inspect(populated, "busybox")["RootFS"]["Layers"][0]
    (populated.root / "content/blobs/sha256" / diff[7:]).unlink()
    refused(populated, "save", "-o", out, "busybox", match="is not in the content store")
    assert not out.exists()
