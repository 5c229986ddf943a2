"""berth pull / push / login / images / rmi against a real docker-registry on loopback.

The test images are built by oci_builder (several layers, whiteouts, an opaque dir, hardlinks,
symlinks, a zstd layer, a two-platform index) and pushed with skopeo.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

import oci_builder as ob
from imagetest import Berth, hardlink_groups, mounted, walk_tree
from registry_env import basic_registry, plain_registry, registry_factory, token_registry  # noqa: F401


@pytest.fixture
def berth(tmp_path):
    b = Berth(tmp_path / "root")
    yield b
    subprocess.run(["umount", "-R", "-l", str(tmp_path / "mnt")], capture_output=True)


@pytest.fixture(scope="module")
def single(tmp_path_factory, plain_registry):
    img = ob.build_layout(tmp_path_factory.mktemp("single") / "layout", tag="v1", platforms=["linux/amd64"])
    return img, ob.push(img, plain_registry, "test/single")


@pytest.fixture(scope="module")
def multi(tmp_path_factory, plain_registry):
    img = ob.build_layout(tmp_path_factory.mktemp("multi") / "layout", tag="v1")
    return img, ob.push(img, plain_registry, "test/multi")


def umoci_tree(img: ob.BuiltImage, dest: Path) -> Path:
    r = subprocess.run(["umoci", "unpack", "--image", f"{img.layout}:{img.tag}", str(dest)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dest / "rootfs"


def test_pull_equals_umoci_unpack(berth, plain_registry, tmp_path):
    # Debian's umoci can't read zstd layers: this image is gzip-only (zstd is checked below).
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=["linux/amd64"], zstd=False)
    ref = ob.push(img, plain_registry, "test/umoci")
    out = berth.ok("pull", ref)
    assert out.strip().splitlines()[-1] == ref
    theirs = umoci_tree(img, tmp_path / "bundle")
    with mounted(berth, ref, tmp_path / "mnt") as ours:
        assert walk_tree(ours) == walk_tree(theirs)
        assert hardlink_groups(ours) == hardlink_groups(theirs)
        assert not (ours / "dir/a").exists()  # whiteout
        assert sorted(os.listdir(ours / "data")) == ["new"]  # opaque dir
    berth.no_partials()


def test_pull_zstd_layers_match_the_built_tree(berth, single, tmp_path):
    img, ref = single
    berth.ok("pull", ref)
    with mounted(berth, ref, tmp_path / "mnt") as ours:
        assert (ours / "zstd/hello").read_bytes() == b"this layer is compressed with zstd\n"
        tree = walk_tree(ours)
        for path, want in img.expected().items():
            assert path in tree, path
            kind = {"file": "file", "dir": "dir", "symlink": "symlink"}[want["type"]]
            assert tree[path][0] == kind, path
            if kind == "file":
                assert tree[path][4] == want["content"], path
                assert int(tree[path][1], 8) == want["mode"], path
            if kind == "symlink":
                assert tree[path][1] == want["target"], path
        assert set(tree) == set(img.expected())
    berth.no_partials()


def test_pull_index_picks_platform(berth, multi, tmp_path):
    img, ref = multi
    berth.ok("pull", ref)
    with mounted(berth, ref, tmp_path / "mnt") as root:
        assert (root / "etc/arch").read_text() == "amd64\n"
        assert not (root / "etc/only-arm64").exists()
    other = Berth(tmp_path / "root-arm")
    other.ok("pull", "--platform", "linux/arm64", ref)
    with mounted(other, ref, tmp_path / "mnt2") as root:
        assert (root / "etc/arch").read_text() == "arm64\n"
        assert (root / "etc/only-arm64").exists()
    insp = json.loads(other.ok("image", "inspect", ref))[0]
    assert insp["Architecture"] == "arm64"
    # RepoDigests names what the tag resolved to: the index.
    assert insp["RepoDigests"] == [f"{ref.rsplit(':', 1)[0]}@{img.digest}"]


def test_pull_unknown_platform_fails(berth, multi):
    _, ref = multi
    r = berth.fails("pull", "--platform", "linux/s390x", ref)
    assert "linux/s390x" in r.stderr
    assert berth.store_snapshot()["images"] == []


def test_pull_docker_schema2_and_by_digest(berth, plain_registry, tmp_path):
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=["linux/amd64"], zstd=False)
    ref = ob.push(img, plain_registry, "test/v2s2", format="v2s2")
    raw = ob.inspect_raw(plain_registry, ref)
    assert json.loads(raw)["mediaType"] == ob.MT_DOCKER_MANIFEST
    digest = "sha256:" + __import__("hashlib").sha256(raw).hexdigest()
    by_digest = ref.rsplit(":", 1)[0] + "@" + digest
    out = berth.ok("pull", by_digest)
    assert f"Digest: {digest}" in out
    with mounted(berth, by_digest, tmp_path / "mnt") as root:
        assert (root / "zstd/hello").read_bytes() == b"gzip after all\n"
    images = berth.ok("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}")
    assert images.strip() == f"{ref.rsplit(':', 1)[0]} <none> {digest}"


def test_inspect_and_history(berth, single):
    img, ref = single
    berth.ok("pull", ref)
    info = img.manifests["linux/amd64"]
    insp = json.loads(berth.ok("image", "inspect", ref))
    assert len(insp) == 1
    i = insp[0]
    assert i["Id"] == info.config_digest
    assert i["RepoTags"] == [ref]
    assert i["RepoDigests"] == [f"{ref.rsplit(':', 1)[0]}@{img.digest}"]
    assert i["Created"] == ob.CREATED
    assert i["Os"] == "linux" and i["Architecture"] == "amd64"
    assert i["RootFS"] == {"Type": "layers", "Layers": [l.diff_id for l in info.layers]}
    cfg = i["Config"]
    assert cfg["Entrypoint"] == ["/bin/hello"] and cfg["Cmd"] == ["--greet", "berth"]
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "app"
    assert "GREETING=hello world" in cfg["Env"]
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "5353/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["Labels"]["org.berth.test"] == "yes"
    assert i["Size"] > 0
    assert berth.ok("image", "inspect", "--format", "{{.Id}}", ref).strip() == info.config_digest
    hist = berth.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", ref).strip().splitlines()
    assert hist[0].startswith("berth-test: layer extra|")
    assert "berth-test: ENV GREETING|0B" in hist


def test_second_pull_is_up_to_date_and_downloads_nothing(berth, single, plain_registry):
    img, ref = single
    berth.ok("pull", ref)
    before = plain_registry.log().count("/blobs/sha256:")
    out = berth.ok("pull", ref)
    assert "Status: Image is up to date for" in out
    assert plain_registry.log().count("GET /v2/test/single/blobs/") == 0 or \
        plain_registry.log().count("/blobs/sha256:") == before


def test_concurrent_pulls_download_each_layer_once(berth, registry_factory, tmp_path):
    reg = registry_factory()
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=["linux/amd64"])
    ref = ob.push(img, reg, "test/conc")
    start_log = len(reg.log())
    results = []

    def pull():
        results.append(berth.run("pull", "-q", ref))

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    log = reg.log()[start_log:]
    for layer in img.manifests["linux/amd64"].layers:
        gets = [l for l in log.splitlines() if f"/blobs/{layer.digest}" in l and '"GET ' in l and " 200 " in l]
        assert len(gets) == 1, f"layer {layer.digest} fetched {len(gets)} times"
    assert len(json.loads(berth.ok("image", "inspect", ref))) == 1


def _login_flow(berth, reg, ref_repo, tmp_path):
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=["linux/amd64"])
    ref = ob.push(img, reg, ref_repo)
    # Anonymous pull is refused.
    r = berth.fails("pull", ref)
    assert "unauthorized" in r.stderr.lower() or "authentication" in r.stderr.lower()
    r = berth.fails("login", "-u", reg.username, "--password-stdin", reg.host, input="wrong\n")
    assert reg.host in r.stderr or "unauthorized" in r.stderr.lower() or "credentials" in r.stderr.lower()
    assert not (berth.config_dir / "config.json").exists()
    out = berth.ok("login", "-u", reg.username, "--password-stdin", reg.host, input=reg.password + "\n")
    assert "Login Succeeded" in out
    cfg_path = berth.config_dir / "config.json"
    assert (cfg_path.stat().st_mode & 0o777) == 0o600
    auths = json.loads(cfg_path.read_text())["auths"]
    assert reg.host in auths and "auth" in auths[reg.host]
    berth.ok("pull", ref)
    out = berth.ok("logout", reg.host)
    assert "Removing login credentials" in out
    assert reg.host not in json.loads(cfg_path.read_text()).get("auths", {})


def test_basic_auth(berth, registry_factory, tmp_path):
    _login_flow(berth, registry_factory(auth="basic"), "test/basic", tmp_path)


def test_token_auth(berth, registry_factory, tmp_path):
    _login_flow(berth, registry_factory(auth="token"), "test/token", tmp_path)


@pytest.mark.parametrize("chunk", [None, "4096"])
def test_push_round_trip(berth, single, plain_registry, chunk):
    img, ref = single
    berth.ok("pull", ref)
    repo = "test/pushed-chunked" if chunk else "test/pushed"
    target = f"{plain_registry.host}/{repo}:again"
    berth.ok("tag", ref, target)
    args = ["push", target] + (["--chunk-size", chunk] if chunk else [])
    out = berth.ok(*args)
    manifest_digest = img.manifests["linux/amd64"].digest
    assert f"again: digest: {manifest_digest}" in out
    raw = ob.inspect_raw(plain_registry, target)
    assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == manifest_digest
    # Every layer is there, byte for byte: pull it into a fresh store.
    fresh = Berth(berth.root.parent / "fresh")
    fresh.ok("pull", target)
    assert fresh.ok("image", "inspect", "--format", "{{.Id}}", target) == \
        berth.ok("image", "inspect", "--format", "{{.Id}}", ref)
    # A second push finds everything there.
    assert "Layer already exists" in berth.ok("push", target)


def test_tag_images_rmi_prune(berth, single, plain_registry):
    img, ref = single
    berth.ok("pull", ref)
    image_id = img.manifests["linux/amd64"].config_digest
    berth.ok("tag", ref, "mine:1")
    berth.ok("tag", ref, "mine:2")
    rows = berth.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert sorted(rows) == sorted([ref, "mine:1", "mine:2"])
    assert berth.ok("images", "-q").split() == [image_id[7:19]]
    assert berth.ok("images", "--filter", "reference=mine", "--format", "{{.Tag}}").split() == ["1", "2"]
    assert berth.ok("images", "--filter", "label=org.berth.test=yes", "-q").split() == [image_id[7:19]]
    assert berth.ok("images", "--filter", "label=org.berth.test=no", "-q").split() == []
    # By ID with several names: refused unless forced.
    r = berth.fails("rmi", image_id[7:19])
    assert "must be forced" in r.stderr
    assert berth.ok("rmi", "mine:1").strip() == "Untagged: mine:1"
    berth.ok("rmi", "mine:2")
    out = berth.ok("rmi", ref)
    assert f"Deleted: {image_id}" in out
    snap = berth.store_snapshot()
    assert snap == {"images": [], "layers": [], "blobs": []}
    # prune: dangling only, then everything with -a.
    berth.ok("pull", ref)
    berth.ok("tag", ref, "keep:1")
    assert "Total reclaimed space: 0B" in berth.ok("image", "prune", "-f")
    out = berth.ok("image", "prune", "-a", "-f")
    assert f"deleted: {image_id}" in out
    assert berth.store_snapshot() == {"images": [], "layers": [], "blobs": []}


def test_rmi_unknown_and_bad_input(berth, plain_registry):
    r = berth.fails("rmi", "nosuch:1")
    assert "No such image: nosuch:1" in r.stderr
    r = berth.fails("pull", "Bad//Ref")
    assert "Bad//Ref" in r.stderr
    r = berth.fails("pull", f"{plain_registry.host}/test/never-pushed:v1")
    assert "not found" in r.stderr or "unknown" in r.stderr.lower()
    r = berth.run("pull")
    assert r.returncode == 125
    r = berth.run("images", "--bogus")
    assert r.returncode == 125 and "--bogus" in r.stderr
    assert berth.store_snapshot()["images"] == []


def test_unreachable_registry(berth):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = berth.fails("pull", f"127.0.0.1:{port}/x/y:1")
    assert f"127.0.0.1:{port}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    berth.no_partials()


def test_corrupted_blob_is_refused_and_store_stays_consistent(berth, registry_factory, tmp_path):
    reg = registry_factory()
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=["linux/amd64"])
    ref = ob.push(img, reg, "test/corrupt")
    layer = img.manifests["linux/amd64"].layers[1]
    data = next(reg.storage.rglob(f"blobs/sha256/{layer.digest[7:9]}/{layer.digest[7:]}/data"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    r = berth.fails("pull", ref)
    assert layer.digest in r.stderr or "corrupt" in r.stderr or "mismatch" in r.stderr, r.stderr
    snap = berth.store_snapshot()
    assert snap["images"] == []
    berth.no_partials()
    assert f"{layer.digest[7:]}" not in snap["blobs"]


def test_disk_full_fails_cleanly(registry_factory, tmp_path):
    reg = registry_factory()
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=["linux/amd64"],
                          base_rootfs=_big_rootfs(tmp_path / "big"))
    ref = ob.push(img, reg, "test/big")
    small = tmp_path / "small"
    small.mkdir()
    # A small loop-mounted ext4 as the data root: the image does not fit.
    disk = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "6M", str(disk)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(disk)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(disk), str(small)], check=True)
    try:
        b = Berth(small / "root", config_dir=tmp_path / "cfg")
        r = b.fails("pull", ref)
        # ENOSPC surfaces from a file write or from SQLite, whichever fills the disk first.
        assert "No space left on device" in r.stderr or "disk is full" in r.stderr, r.stderr
        assert b.store_snapshot()["images"] == []
        b.no_partials()
    finally:
        subprocess.run(["umount", "-l", str(small)])


def _big_rootfs(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "big").write_bytes(os.urandom(4 << 20))
    return d


# --- hostile layers, served by a real registry -------------------------------------------


def _tar_bytes(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m, data in members:
            t.addfile(m, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    m = tarfile.TarInfo(name)
    m.type = kind
    m.mode = 0o644
    m.mtime = ob.MTIME
    if kind == tarfile.REGTYPE:
        m.size = len(data)
    m.linkname = linkname
    return (m, data if kind == tarfile.REGTYPE else None)


def _raw_image(layout: Path, tar: bytes) -> ob.BuiltImage:
    """A one-layer OCI layout whose layer is exactly `tar` (uncompressed)."""
    lay = ob._Layout(layout)
    d = lay.put(tar)
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [d]}, "config": {}}
    cb = ob._json_bytes(config)
    cd = lay.put(cb)
    manifest = {"schemaVersion": 2, "mediaType": ob.MT_OCI_MANIFEST,
                "config": {"mediaType": ob.MT_OCI_CONFIG, "digest": cd, "size": len(cb)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(tar)}]}
    mb = ob._json_bytes(manifest)
    md = lay.put(mb)
    (layout / "index.json").write_bytes(ob._json_bytes({"schemaVersion": 2, "manifests": [
        {"mediaType": ob.MT_OCI_MANIFEST, "digest": md, "size": len(mb),
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    return ob.BuiltImage(layout=layout, tag="v1", media_type=ob.MT_OCI_MANIFEST, digest=md)


HOSTILE = {
    "dotdot": lambda out: [_member("../" * 8 + str(out).lstrip("/") + "/pwned", data=b"x")],
    "absolute": lambda out: [_member(str(out) + "/pwned", data=b"x")],
    "symlink-then-write": lambda out: [_member("a", tarfile.SYMTYPE, linkname=str(out)),
                                       _member("a/pwned", data=b"x")],
    "symlink-chain": lambda out: [_member("b", tarfile.SYMTYPE, linkname="../../../../../../../.." + str(out)),
                                  _member("a", tarfile.SYMTYPE, linkname="b"),
                                  _member("a/pwned", data=b"x")],
    "hardlink-outside": lambda out: [_member("h", tarfile.LNKTYPE, linkname="../" * 8 + str(out).lstrip("/") +
                                             "/victim")],
    "whiteout-dotdot": lambda out: [_member("dir/.wh..."), ],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused(case, berth, registry_factory, tmp_path):
    reg = registry_factory()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("victim")
    before = sorted(os.listdir(outside))
    img = _raw_image(tmp_path / "layout", _tar_bytes(HOSTILE[case](outside)))
    ref = ob.push(img, reg, f"test/hostile-{case}")
    r = berth.fails("pull", ref)
    assert "layer entry" in r.stderr or "entry" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(os.listdir(outside)) == before
    assert (outside / "victim").read_text() == "victim"
    assert berth.store_snapshot()["images"] == []
    assert berth.store_snapshot()["layers"] == []
    berth.no_partials()


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.4])
def test_kill_9_during_pull_leaves_a_consistent_store(delay, berth, registry_factory, tmp_path):
    import signal
    import time

    reg = registry_factory()
    img = ob.build_layout(tmp_path / "layout", tag="v1", platforms=["linux/amd64"],
                          base_rootfs=_big_rootfs(tmp_path / "big"))
    ref = ob.push(img, reg, "test/killed")
    from imagetest import BERTH
    p = subprocess.Popen([BERTH, "--root", str(berth.root), "--config", str(berth.config_dir), "pull", "-q", ref],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    # Either the whole image or none of it; never a half layer in use.
    images = berth.ok("images", "-q", "--no-trunc").split()
    assert images in ([], [img.manifests["linux/amd64"].config_digest])
    for layer_dir in (berth.root / "layers").iterdir():
        assert layer_dir.name == ".tmp" or len(layer_dir.name) == 64
    # The next pull completes it and the result is the image, whole.
    berth.ok("pull", ref)
    with mounted(berth, ref, tmp_path / "mnt") as root:
        assert (root / "big").read_bytes() == (tmp_path / "big" / "big").read_bytes()
        assert (root / "zstd/hello").exists()
    # Collection removes whatever the killed pull left half done.
    berth.ok("image", "prune", "-f")
    berth.no_partials()


def test_rmi_and_prune_spare_an_image_in_use(berth, single):
    # Containers register as users of their image (state.db image_users); until `berth run`
    # exists (issue 4) the row is written here directly, as a container would.
    import sqlite3

    img, ref = single
    berth.ok("pull", ref)
    image_id = img.manifests["linux/amd64"].config_digest
    container = "sha256:" + "c" * 64
    with sqlite3.connect(berth.root / "state.db") as db:
        db.execute("INSERT INTO image_users(image_id, user) VALUES(?, ?)", (image_id, container))
    r = berth.fails("rmi", ref)
    assert "must force" in r.stderr and "cccccccccccc" in r.stderr
    r = berth.fails("rmi", image_id)
    assert "must be forced" in r.stderr
    assert "Total reclaimed space: 0B" in berth.ok("image", "prune", "-a", "-f")
    out = berth.ok("rmi", "-f", ref)
    assert out.strip().splitlines() == [f"Untagged: {ref}", f"Untagged: {ref.rsplit(':', 1)[0]}@{img.digest}"]
    # Kept, untagged, with its layers: the container's root filesystem still mounts.
    assert berth.ok("images", "-q", "--no-trunc").split() == [image_id]
    with sqlite3.connect(berth.root / "state.db") as db:
        db.execute("DELETE FROM image_users")
    berth.ok("image", "prune", "-f")
    assert berth.store_snapshot() == {"images": [], "layers": [], "blobs": []}
