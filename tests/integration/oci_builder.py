"""Builds OCI image layouts in Python for the registry and pull tests, and pushes them.

The test image (per platform) has three layers over an optional base root filesystem:

  base   (gzip)  etc/{os-release,arch,motd,passwd,group}, hardlink etc/motd-hard -> etc/motd,
                 symlinks link -> etc/os-release and abs-link -> /etc/motd, bin/hello (0755),
                 dir/{a,b,sub/c}, data/{old1,old2}, empty (0 bytes), app/
  changes(gzip)  whiteout dir/.wh.a, opaque data/.wh..wh..opq with data/new, newdir/file and
                 its hardlink newdir/file-link, etc/changed
  extra  (zstd,  zstd/hello, app/config.txt
          or gzip with zstd=False)

etc/arch holds the architecture ("amd64\n", "arm64\n") and the arm64 image also has
etc/only-arm64, so a test can tell which platform was pulled. `BuiltImage.expected(platform)`
is the root filesystem the layers produce (whiteouts applied), for comparing an unpacked tree.

    img = build_layout(tmp / "layout", tag="v1")                  # index: linux/amd64 + linux/arm64
    img = build_layout(tmp / "one", tag="v1", platforms=["linux/amd64"])   # a single manifest
    ref = push(img, registry, "test/multi")                        # skopeo copy --all
    ref = push(img1, registry, "test/v2s2", format="v2s2")          # docker schema2 (needs zstd=False)

Stdlib only, plus the `zstd` and `skopeo` commands.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

MTIME = 1700000000  # fixed, so layers (and digests) are reproducible
CREATED = "2023-11-14T22:13:20Z"

IMAGE_CONFIG = {
    "User": "app",
    "Env": [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "GREETING=hello world",
    ],
    "Entrypoint": ["/bin/hello"],
    "Cmd": ["--greet", "berth"],
    "WorkingDir": "/app",
    "Labels": {"org.berth.test": "yes", "maintainer": "berth tests"},
    "ExposedPorts": {"8080/tcp": {}, "5353/udp": {}},
    "Volumes": {"/data": {}},
    "StopSignal": "SIGQUIT",
}

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ntty:x:5:\napp:x:1000:\nnogroup:x:65534:\n"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- layer entries ---------------------------------------------------------------------
# ("dir", path, mode) ("file", path, bytes, mode) ("symlink", path, target)
# ("hardlink", path, target) ("whiteout", path) ("opaque", dirpath)


def _tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            kind, path = e[0], e[1]
            if kind == "whiteout":
                parent, base = os.path.split(path)
                path = os.path.join(parent, ".wh." + base)
            elif kind == "opaque":
                path = os.path.join(path, ".wh..wh..opq")
            ti = tarfile.TarInfo(path)
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            data = None
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, e[2]
            elif kind == "file":
                data, ti.mode = e[2], e[3]
                ti.size = len(data)
            elif kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, e[2], 0o777
            elif kind == "hardlink":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, e[2], 0o644
            elif kind in ("whiteout", "opaque"):
                ti.mode, ti.size = 0o644, 0
                data = b""
            else:
                raise ValueError(kind)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _rootfs_entries(root: Path):
    """A directory tree (e.g. the busybox fixture) as layer entries, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out.append(("symlink", rel, os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                out.append(("dir", rel, stat.S_IMODE(st.st_mode)))
            elif stat.S_ISREG(st.st_mode):
                out.append(("file", rel, Path(full).read_bytes(), stat.S_IMODE(st.st_mode)))
    return out


def _apply(tree: dict, entries) -> None:
    """Applies a layer to an expected tree the way an OCI unpacker must."""
    for e in entries:
        if e[0] == "opaque":
            d = e[1]
            for k in [k for k in tree if k.startswith(d + "/")]:
                del tree[k]
    for e in entries:
        if e[0] == "whiteout":
            p = e[1]
            for k in [k for k in tree if k == p or k.startswith(p + "/")]:
                del tree[k]
    for e in entries:
        kind, path = e[0], e[1]
        if kind == "dir":
            tree[path] = {"type": "dir", "mode": e[2]}
        elif kind == "file":
            tree[path] = {"type": "file", "content": e[2], "mode": e[3]}
        elif kind == "symlink":
            tree[path] = {"type": "symlink", "target": e[2]}
        elif kind == "hardlink":
            target = dict(tree[e[2]])
            target["hardlink_of"] = e[2]
            tree[path] = target


def image_layers(arch: str, zstd: bool = True):
    """The three layers of the test image for one architecture: [(name, entries, compression)]."""
    base = [
        ("dir", "etc", 0o755),
        ("file", "etc/os-release", b"NAME=berth-test\nID=berth\n", 0o644),
        ("file", "etc/arch", f"{arch}\n".encode(), 0o644),
        ("file", "etc/motd", b"welcome to the berth test image\n", 0o644),
        ("hardlink", "etc/motd-hard", "etc/motd"),
        ("file", "etc/passwd", PASSWD.encode(), 0o644),
        ("file", "etc/group", GROUP.encode(), 0o644),
        ("symlink", "link", "etc/os-release"),
        ("symlink", "abs-link", "/etc/motd"),
        ("dir", "bin", 0o755),
        ("file", "bin/hello", b"#!/bin/sh\necho hello from the berth test image\n", 0o755),
        ("dir", "dir", 0o755),
        ("file", "dir/a", b"a\n", 0o644),
        ("file", "dir/b", b"b\n", 0o600),
        ("dir", "dir/sub", 0o700),
        ("file", "dir/sub/c", b"c\n", 0o644),
        ("dir", "data", 0o755),
        ("file", "data/old1", b"old1\n", 0o644),
        ("file", "data/old2", b"old2\n", 0o644),
        ("file", "empty", b"", 0o644),
        ("dir", "app", 0o755),
    ]
    if arch == "arm64":
        base.append(("file", "etc/only-arm64", b"this is the arm64 image\n", 0o644))
    changes = [
        ("dir", "dir", 0o755),
        ("whiteout", "dir/a"),
        ("dir", "data", 0o755),
        ("opaque", "data"),
        ("file", "data/new", b"new\n", 0o644),
        ("dir", "newdir", 0o755),
        ("file", "newdir/file", b"linked content\n", 0o644),
        ("hardlink", "newdir/file-link", "newdir/file"),
        ("file", "etc/changed", b"added by the second layer\n", 0o644),
    ]
    extra = [
        ("dir", "zstd", 0o755),
        ("file", "zstd/hello", b"this layer is compressed with zstd\n" if zstd else b"gzip after all\n", 0o644),
        ("dir", "app", 0o755),
        ("file", "app/config.txt", f"arch={arch}\n".encode(), 0o644),
    ]
    return [("base", base, "gzip"), ("changes", changes, "gzip"), ("extra", extra, "zstd" if zstd else "gzip")]


# --- layout --------------------------------------------------------------------------


@dataclass
class LayerInfo:
    digest: str  # of the compressed blob
    diff_id: str  # of the uncompressed tar
    size: int
    media_type: str


@dataclass
class ManifestInfo:
    platform: str  # "linux/amd64"
    digest: str
    size: int
    media_type: str
    config_digest: str
    config: dict
    layers: list[LayerInfo]
    tree: dict  # the expected root filesystem: path -> {"type", "content"/"target"/"mode", "hardlink_of"?}


@dataclass
class BuiltImage:
    layout: Path
    tag: str
    media_type: str  # of what the tag names: an index, or a manifest for a single platform
    digest: str  # of what the tag names
    manifests: dict[str, ManifestInfo] = field(default_factory=dict)

    @property
    def multi_platform(self) -> bool:
        return self.media_type == MT_OCI_INDEX

    def expected(self, platform: str = "linux/amd64") -> dict:
        return self.manifests[platform].tree

    def oci_ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


class _Layout:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def put(self, data: bytes) -> str:
        d = sha256(data)
        p = self.root / "blobs" / "sha256" / d[7:]
        if not p.exists():
            p.write_bytes(data)
        return d


def _compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "zstd":
        if shutil.which("zstd") is None:
            raise RuntimeError("the zstd command is missing (apt-get install zstd)")
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE, check=True).stdout
    raise ValueError(how)


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False).encode()


def build_layout(dest, tag: str = "v1", platforms=("linux/amd64", "linux/arm64"), zstd: bool = True,
                 base_rootfs=None, config_overrides: dict | None = None) -> BuiltImage:
    """Writes an OCI image layout at DEST with the test image under TAG.

    More than one platform: TAG names an image index. One platform: TAG names the manifest.
    base_rootfs: a directory (e.g. the busybox fixture) added as the first layer, so the image
    can be run. config_overrides: keys replacing those of IMAGE_CONFIG.
    """
    layout = _Layout(Path(dest))
    infos: dict[str, ManifestInfo] = {}
    descriptors = []
    for platform in platforms:
        os_name, arch, *variant = platform.split("/")
        layers_spec = image_layers(arch, zstd=zstd)
        if base_rootfs is not None:
            layers_spec.insert(0, ("rootfs", _rootfs_entries(Path(base_rootfs)), "gzip"))
        tree: dict = {}
        layers: list[LayerInfo] = []
        history = []
        for name, entries, how in layers_spec:
            raw = _tar(entries)
            blob = _compress(raw, how)
            d = layout.put(blob)
            mt = MT_OCI_LAYER_ZSTD if how == "zstd" else MT_OCI_LAYER_GZIP
            layers.append(LayerInfo(digest=d, diff_id=sha256(raw), size=len(blob), media_type=mt))
            history.append({"created": CREATED, "created_by": f"berth-test: layer {name}"})
            _apply(tree, entries)
        history.insert(1, {"created": CREATED, "created_by": "berth-test: ENV GREETING", "empty_layer": True})
        cfg = dict(IMAGE_CONFIG)
        cfg["Env"] = list(cfg["Env"]) + [f"ARCH={arch}"]
        if config_overrides:
            cfg.update(config_overrides)
        config = {
            "created": CREATED,
            "architecture": arch,
            "os": os_name,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
            "history": history,
        }
        if variant:
            config["variant"] = variant[0]
        config_bytes = _json_bytes(config)
        config_digest = layout.put(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size} for l in layers],
            "annotations": {"org.opencontainers.image.created": CREATED},
        }
        manifest_bytes = _json_bytes(manifest)
        manifest_digest = layout.put(manifest_bytes)
        plat = {"architecture": arch, "os": os_name}
        if variant:
            plat["variant"] = variant[0]
        descriptors.append({"mediaType": MT_OCI_MANIFEST, "digest": manifest_digest,
                            "size": len(manifest_bytes), "platform": plat})
        infos[platform] = ManifestInfo(platform=platform, digest=manifest_digest, size=len(manifest_bytes),
                                       media_type=MT_OCI_MANIFEST, config_digest=config_digest, config=config,
                                       layers=layers, tree=tree)

    ref_annotation = {"org.opencontainers.image.ref.name": tag}
    if len(descriptors) > 1:
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": descriptors}
        index_bytes = _json_bytes(index)
        top = {"mediaType": MT_OCI_INDEX, "digest": layout.put(index_bytes), "size": len(index_bytes),
               "annotations": ref_annotation}
    else:
        top = dict(descriptors[0])
        top["annotations"] = ref_annotation
    (layout.root / "index.json").write_bytes(_json_bytes({"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                                                          "manifests": [top]}))
    return BuiltImage(layout=layout.root, tag=tag, media_type=top["mediaType"], digest=top["digest"],
                      manifests=infos)


# --- pushing -------------------------------------------------------------------------


def skopeo(args, timeout=120) -> subprocess.CompletedProcess:
    """Runs skopeo with a private, empty auth file (the host's logins are never used)."""
    env = dict(os.environ)
    env.pop("REGISTRY_AUTH_FILE", None)
    r = subprocess.run(["skopeo", "--insecure-policy", *[str(a) for a in args]], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if r.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def push(image: BuiltImage, registry, repo: str, tag: str | None = None, format: str | None = None,
         creds: bool = True) -> str:
    """Copies the layout's TAG to REGISTRY/REPO:TAG with skopeo; returns that reference.

    format="v2s2" converts to docker schema2 (single platform, gzip layers only).
    creds: send the registry's user/password when it has auth.
    """
    tag = tag or image.tag
    dest = f"{registry.host}/{repo}:{tag}"
    args = ["copy", "--dest-tls-verify=false"]
    if image.multi_platform:
        args.append("--all")
    if format:
        args += ["--format", format]
    if creds and getattr(registry, "username", None):
        args += ["--dest-creds", f"{registry.username}:{registry.password}"]
    args += [image.oci_ref(), f"docker://{dest}"]
    skopeo(args, timeout=300)
    return dest


def inspect_raw(registry, ref: str, creds: bool = True) -> bytes:
    """The manifest bytes the registry serves for REF (`skopeo inspect --raw`)."""
    args = ["inspect", "--raw", "--tls-verify=false"]
    if creds and getattr(registry, "username", None):
        args += ["--creds", f"{registry.username}:{registry.password}"]
    args.append(f"docker://{ref}")
    env = dict(os.environ)
    r = subprocess.run(["skopeo", *args], capture_output=True, timeout=120, env=env)
    if r.returncode != 0:
        raise AssertionError(f"skopeo inspect --raw {ref} failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout
