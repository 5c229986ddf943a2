#!/usr/bin/env python3
"""Image pull from a loopback registry, side by side in one run:

    berth --root TMP pull -q 127.0.0.1:PORT/bench/pull:latest
    skopeo copy docker://… oci:TMP/oci:bench && umoci unpack --image TMP/oci:bench TMP/bundle
    podman --root TMP/root --runroot TMP/run pull --tls-verify=false 127.0.0.1:PORT/…   (if installed)
    docker pull 127.0.0.1:PORT/…                                                       (if dockerd answers)

for a 6-layer, ~200 MB (uncompressed) image of gzip layers mixing random and
text data, served by Debian's docker-registry on 127.0.0.1. Then the unpack
throughput: GNU `tar -xf` of the 6 uncompressed layer tars against
`berth import` of the same tars.

The image is built once with umoci from a fixed seed and cached; the registry,
its storage and every store the tools pull into are temporary. Every timed run
starts from a fresh, empty store; contenders alternate within each round (the
leader rotates each round); one discarded warm-up run per contender.

Entry point: bench/pull.sh (needs root). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

# Bump when the generator changes: the cache key includes it.
IMAGE_VERSION = 1
SEED = 20261128
LAYERS = 6
LAYER_BYTES = 200_000_000 // LAYERS      # file content per layer (uncompressed, before tar headers)
RANDOM_SHARE = 0.40                      # share of incompressible bytes in each layer
FIXED_MTIME = 1_700_000_000              # every file and directory, for reproducible layers
FIXED_CREATED = "2023-11-14T22:13:20Z"
TAG = "bench"
REPO_PATH = "bench/pull"
GOAL_PULL_S = 0.8                        # issue: berth pull median <= 0.8 s
GOAL_UNPACK_RATIO = 1.2                  # issue: unpack within 1.2x of GNU tar -x

CURRENT: subprocess.Popen | None = None  # the child being waited for, killed on SIGTERM/SIGINT


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Untimed helper command; raises with its stderr on failure."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r


# --------------------------------------------------------------------------
# deterministic image content

class Generator:
    """Files for one layer: random (incompressible) blobs and text files of
    generated words, in directories up to 7 levels deep, plus a few symlinks."""

    def __init__(self, layer: int) -> None:
        self.rng = random.Random(SEED * 100 + layer)
        self.layer = layer
        rng = self.rng
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.words = ["".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(3000)]
        # Zipf-like word frequencies, as in real text: gzip gets about 3x on it
        weights = [1.0 / (rank + 1) for rank in range(len(self.words))]
        cum = list(itertools.accumulate(weights))
        pool = []
        for _ in range(30_000):
            kind = rng.random()
            if kind < 0.75:
                line = " ".join(rng.choices(self.words, cum_weights=cum, k=rng.randint(3, 14)))
            elif kind < 0.9:
                line = ",".join(str(rng.randint(0, 10 ** rng.randint(1, 9))) for _ in range(rng.randint(3, 8)))
            else:
                line = f"{rng.choice(self.words)}_{rng.choice(self.words)} = \"{' '.join(rng.choices(self.words, k=3))}\""
            pool.append(line + "\n")
        self.lines = pool

    def dirs(self) -> list[str]:
        rng = self.rng
        roots = ["usr/lib/x86_64-linux-gnu", "usr/share/doc", "usr/share/locale", "usr/src",
                 "opt/app", "var/lib/data", "etc/conf.d", "usr/share/man/man1"]
        out = []
        for _ in range(48):
            parts = [rng.choice(roots), f"pkg{self.layer}-{rng.choice(self.words)}"]
            parts += [rng.choice(self.words) for _ in range(rng.randint(0, 5))]
            out.append("/".join(parts))
        return out

    def text(self, size: int) -> bytes:
        out, have = [], 0
        while have < size:
            chunk = "".join(self.rng.choices(self.lines, k=max(1, (size - have) // 40 + 1))).encode()
            out.append(chunk)
            have += len(chunk)
        return b"".join(out)[:size]

    def files(self):
        """Yields (relative path, bytes, mode) until the layer's budget is spent."""
        rng = self.rng
        dirs = self.dirs()
        names: set[str] = set()

        def name(d: str, ext: str) -> str:
            while True:
                p = f"{d}/{rng.choice(self.words)}{rng.randint(0, 999)}{ext}"
                if p not in names:
                    names.add(p)
                    return p

        rand_budget = int(LAYER_BYTES * RANDOM_SHARE)
        text_budget = LAYER_BYTES - rand_budget
        # random: two large "libraries", then many small/medium binaries
        for size in (rng.randint(2_000_000, 4_000_000), rng.randint(1_000_000, 3_000_000)):
            yield name(rng.choice(dirs), ".so"), rng.randbytes(size), 0o755
            rand_budget -= size
        while rand_budget > 0:
            size = min(rand_budget, int(2 ** rng.uniform(12, 19)))   # 4 KiB .. 512 KiB
            yield name(rng.choice(dirs), rng.choice([".bin", ".so", ".dat", ""])), rng.randbytes(size), \
                rng.choice([0o644, 0o755])
            rand_budget -= size
        # text: two big ones, then many small/medium files
        for size in (rng.randint(1_000_000, 2_000_000), rng.randint(500_000, 1_500_000)):
            yield name(rng.choice(dirs), ".txt"), self.text(size), 0o644
            text_budget -= size
        while text_budget > 0:
            size = min(text_budget, int(2 ** rng.uniform(7.5, 17.5)))  # ~180 B .. ~185 KiB
            yield name(rng.choice(dirs), rng.choice([".txt", ".conf", ".csv", ".md", ".py", ".h"])), \
                self.text(size), 0o644
            text_budget -= size


def write_layer_files(rootfs: Path, layer: int) -> tuple[int, int]:
    """Writes one layer's files under rootfs; returns (files, bytes)."""
    gen = Generator(layer)
    count = total = 0
    written: list[str] = []
    made_dirs: set[Path] = set()
    for rel, data, mode in gen.files():
        p = rootfs / rel
        if p.parent not in made_dirs:
            p.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(p.parent)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))
        written.append(rel)
        count += 1
        total += len(data)
    # a few relative symlinks to files of this layer
    for i in range(12):
        target = gen.rng.choice(written)
        link = rootfs / f"usr/lib/bench-links-{layer}" / f"link{i}"
        link.parent.mkdir(parents=True, exist_ok=True)
        rel_target = os.path.relpath(rootfs / target, link.parent)
        os.symlink(rel_target, link)
        os.utime(link, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
        count += 1
    # directory times last (writing into them changed them)
    dirs = {p for p in rootfs.rglob("*") if p.is_dir() and not p.is_symlink()} | {rootfs}
    for d in sorted(dirs, reverse=True):
        os.utime(d, (FIXED_MTIME, FIXED_MTIME))
    return count, total


def cache_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    base = os.environ.get("XDG_CACHE_HOME")
    key = f"berth-bench-pull-v{IMAGE_VERSION}-{SEED}"
    return Path(base) / key if base else Path("/var/tmp") / key


def build_image(cache: Path, rebuild: bool) -> dict:
    """The OCI layout cache/oci (tag 'bench'), built with umoci unless cached."""
    info_path = cache / "info.json"
    if info_path.exists() and not rebuild:
        info = json.loads(info_path.read_text())
        info["cached"] = True
        return info
    for tool in ("umoci",):
        if not shutil.which(tool):
            raise SystemExit(f"pull: {tool} not found (apt-get install umoci)")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=cache.name + ".build-", dir=cache.parent))
    t0 = time.monotonic()
    try:
        layout = tmp / "oci"
        image = f"{layout}:{TAG}"
        bundle = tmp / "bundle"
        log(f"building the benchmark image in {tmp} (once; cached in {cache})")
        run(["umoci", "init", "--layout", str(layout)])
        run(["umoci", "new", "--image", image])
        run(["umoci", "config", "--image", image, "--no-history", "--created", FIXED_CREATED,
             "--config.cmd", "/bin/sh", "--config.workingdir", "/"])
        run(["umoci", "unpack", "--image", image, str(bundle)])
        files = content = 0
        for layer in range(LAYERS):
            n, b = write_layer_files(bundle / "rootfs", layer)
            files += n
            content += b
            run(["umoci", "repack", "--refresh-bundle", "--image", image,
                 "--history.created", FIXED_CREATED, "--history.created_by", f"berth bench layer {layer}",
                 str(bundle)])
            log(f"  layer {layer + 1}/{LAYERS}: {n} entries, {b / 1e6:.1f} MB of file data "
                f"({time.monotonic() - t0:.1f} s)")
        run(["umoci", "gc", "--layout", str(layout)])
        shutil.rmtree(bundle)
        layers = layer_blobs(layout)
        info = {
            "version": IMAGE_VERSION, "seed": SEED, "layers": len(layers),
            "entries": files, "file_bytes": content,
            "compressed_bytes": sum(l["size"] for l in layers),
            "layer_digests": [l["digest"] for l in layers],
            "build_seconds": round(time.monotonic() - t0, 1),
            "built_at": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        if cache.exists():
            shutil.rmtree(cache)
        os.rename(tmp, cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info["cached"] = False
    return info


def layer_blobs(layout: Path) -> list[dict]:
    index = json.loads((layout / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == TAG)
    algo, hexd = desc["digest"].split(":", 1)
    manifest = json.loads((layout / "blobs" / algo / hexd).read_text())
    return [{"digest": l["digest"], "size": l["size"], "mediaType": l["mediaType"],
             "path": str(layout / "blobs" / l["digest"].split(":")[0] / l["digest"].split(":")[1])}
            for l in manifest["layers"]]


def gunzip_layers(layout: Path, dest: Path) -> tuple[list[Path], int]:
    """The image's layers, uncompressed, as dest/layer-N.tar (untimed setup)."""
    dest.mkdir(parents=True, exist_ok=True)
    out, total = [], 0
    for i, l in enumerate(layer_blobs(layout)):
        p = dest / f"layer-{i + 1}.tar"
        with gzip.open(l["path"], "rb") as src, open(p, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        out.append(p)
        total += p.stat().st_size
    return out, total


# --------------------------------------------------------------------------
# registry

class Registry:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.logf = None

    def start(self, binary: str) -> None:
        storage = self.work / "registry"
        storage.mkdir()
        for attempt in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            cfg = self.work / "registry.yml"
            cfg.write_text(
                "version: 0.1\n"
                "log:\n  level: error\n  accesslog:\n    disabled: true\n"
                "storage:\n"
                "  cache:\n    blobdescriptor: inmemory\n"
                f"  filesystem:\n    rootdirectory: {storage}\n"
                "  delete:\n    enabled: true\n"
                "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n"
                "  headers:\n    X-Content-Type-Options: [nosniff]\n")
            self.logf = open(self.work / "registry.log", "ab")
            self.proc = subprocess.Popen([binary, "serve", str(cfg)], stdin=subprocess.DEVNULL,
                                         stdout=self.logf, stderr=subprocess.STDOUT)
            (self.work / "registry.pid").write_text(f"{self.proc.pid}\n")
            if self.wait_ready():
                return
            self.stop()
        tail = (self.work / "registry.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"pull: docker-registry did not answer on /v2/:\n{tail}")

    def wait_ready(self, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None
        try:
            (self.work / "registry.pid").unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------
# contenders

@dataclass
class Contender:
    name: str
    series: bl.Series
    setup: Callable[[Path], list[list[str]]]     # fresh dir -> commands to time, run in sequence
    teardown: Callable[[Path], None] | None = None
    phase: str = "pull"
    note: str = ""
    verify: Callable[[Path], str | None] | None = None   # after the warm-up run: problem or None
    runs: int = 0
    last_stderr: str = ""


def time_sequence(cmds: list[list[str]], timeout: float) -> bl.Timed:
    """Wall time of commands run one after another (stops at the first failure):
    fork+exec to exit of each, stdin and stdout on /dev/null."""
    global CURRENT
    t0 = time.perf_counter_ns()
    rc, err, timed_out = 0, b"", False
    deadline = time.monotonic() + timeout
    for argv in cmds:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        CURRENT = p
        try:
            _, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            timed_out = True
        CURRENT = None
        rc = p.returncode
        if rc != 0 or timed_out:
            if len(cmds) > 1:   # say which step of the sequence failed
                err = (os.path.basename(argv[0]) + ": ").encode() + err
            break
    t1 = time.perf_counter_ns()
    return bl.Timed((t1 - t0) / 1e6, rc, err.decode(errors="replace"), timed_out)


def umount_under(path: Path) -> None:
    """Lazily unmounts anything mounted at or below path (e.g. podman's overlay home)."""
    prefix = str(path).rstrip("/") + "/"
    mps = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == str(path) or mp.startswith(prefix):
                mps.append(mp)
    for mp in sorted(mps, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


def remove_tree(path: Path) -> None:
    if not path.exists():
        return
    umount_under(path)
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], capture_output=True)


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.contenders: list[Contender] = []
        self.counter = 0
        self.registry = Registry(work)
        self.ref = ""
        self.image: dict = {}
        self.tars: list[Path] = []
        self.tar_bytes = 0
        self.host_start = bl.host_info()
        self.host_start["workdir_fs"] = fs_type(work)
        self.warnings: list[str] = []

    def wanted(self, name: str) -> bool:
        return self.args.only is None or name in self.args.only.split(",")

    # -- setup --------------------------------------------------------------------
    def prepare_image(self) -> None:
        cache = cache_dir(self.args.cache_dir)
        self.image = build_image(cache, self.args.rebuild)
        self.layout = cache / "oci"
        if self.image["cached"]:
            log(f"image: cached in {cache} (built in {self.image['build_seconds']} s on {self.image['built_at']})")
        else:
            log(f"image: built in {self.image['build_seconds']} s, cached in {cache}")

    def start_registry(self) -> None:
        binary = self.args.registry
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise SystemExit(f"pull: {binary} not found (apt-get install docker-registry)")
        self.registry.start(binary)
        self.ref = f"127.0.0.1:{self.registry.port}/{REPO_PATH}:latest"
        log(f"registry: {binary} on 127.0.0.1:{self.registry.port} (pid {self.registry.proc.pid})")
        t0 = time.monotonic()
        run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
             f"oci:{self.layout}:{TAG}", f"docker://{self.ref}"], timeout=600)
        log(f"pushed {self.ref} with skopeo ({time.monotonic() - t0:.1f} s)")

    def add(self, c: Contender) -> None:
        self.contenders.append(c)
        if c.series.skipped:
            log(f"{c.name}: skipped: {c.series.skipped}")

    def add_contenders(self) -> None:
        a = self.args
        berth = a.berth
        berth_ok = os.path.isfile(berth) and os.access(berth, os.X_OK)
        timeout = a.timeout

        # -- pull ----------------------------------------------------------------
        if self.wanted("berth"):
            s = bl.Series("berth", argv0=berth)
            if berth_ok:
                s.version = bl.version_of([berth])
            else:
                s.skipped = f"{berth} not found (build berth, or set BERTH=PATH)"

            def berth_pull(d: Path) -> list[list[str]]:
                (d / "root").mkdir()
                return [[berth, "--root", str(d / "root"), "pull", "-q", self.ref]]
            def berth_check(d: Path) -> str | None:
                r = subprocess.run([berth, "--root", str(d / "root"), "image", "inspect", self.ref],
                                   capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    return f"`berth image inspect REF` after the pull failed: {r.stderr.strip()[-300:]}"
                return None
            self.add(Contender("berth", s, berth_pull, note="berth --root TMP pull -q REF", verify=berth_check))

        if self.wanted("skopeo+umoci"):
            s = bl.Series("skopeo+umoci", argv0=shutil.which("skopeo") or "skopeo")
            missing = [t for t in ("skopeo", "umoci") if not shutil.which(t)]
            if missing:
                s.skipped = " and ".join(missing) + " not found"
            else:
                s.version = f"{bl.version_of(['skopeo'])}; {bl.version_of(['umoci'])}"

            def skopeo_umoci(d: Path) -> list[list[str]]:
                return [["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{self.ref}",
                         f"oci:{d}/oci:{TAG}"],
                        ["umoci", "unpack", "--image", f"{d}/oci:{TAG}", f"{d}/bundle"]]
            def bundle_check(d: Path) -> str | None:
                n = sum(len(fs) + len(ds) for _, ds, fs in os.walk(d / "bundle" / "rootfs"))
                want = self.image["entries"]
                return None if n >= want else f"unpacked rootfs has {n} entries, the image {want}"
            self.add(Contender("skopeo+umoci", s, skopeo_umoci, verify=bundle_check,
                               note="skopeo copy docker://REF oci:TMP/oci:bench && umoci unpack"))

        if self.wanted("podman"):
            podman = shutil.which("podman")
            s = bl.Series("podman", argv0=podman or "podman")
            if not podman:
                s.skipped = "podman not installed"
            else:
                s.version = bl.version_of([podman])

            def podman_pull(d: Path) -> list[list[str]]:
                return [[podman, "--root", str(d / "root"), "--runroot", str(d / "run"),
                         "pull", "--quiet", "--tls-verify=false", self.ref]]
            self.add(Contender("podman", s, podman_pull,
                               note="podman --root TMP/root --runroot TMP/run pull --tls-verify=false REF"))

        if self.wanted("docker"):
            s = bl.Series("docker", argv0=shutil.which("docker") or "docker")
            why = self.docker_unusable()
            if why:
                s.skipped = why
            else:
                s.version = bl.version_of(["docker"])

            def docker_pull(d: Path) -> list[list[str]]:
                subprocess.run(["docker", "rmi", "-f", self.ref], capture_output=True, timeout=120)
                return [["docker", "pull", "-q", self.ref]]

            def docker_rmi(d: Path) -> None:
                subprocess.run(["docker", "rmi", "-f", self.ref], capture_output=True, timeout=120)
            self.add(Contender("docker", s, docker_pull, docker_rmi,
                               note="docker pull REF, `docker rmi` untimed after each run"))

        # -- unpack ----------------------------------------------------------------
        if self.args.no_unpack:
            return
        if self.wanted("tar") or self.wanted("berth-import") or self.wanted("berth-unpack"):
            log("unpack: gunzipping the layers once (untimed)")
            self.tars, self.tar_bytes = gunzip_layers(self.layout, self.work / "tars")

        if self.wanted("tar"):
            s = bl.Series("GNU tar -x", argv0=shutil.which("tar") or "tar")
            s.version = bl.version_of(["tar"])

            def tar_x(d: Path) -> list[list[str]]:
                cmds = []
                for i, t in enumerate(self.tars):
                    (d / str(i + 1)).mkdir()
                    cmds.append(["tar", "-xf", str(t), "-C", str(d / str(i + 1))])
                return cmds
            self.add(Contender("GNU tar -x", s, tar_x, phase="unpack",
                               note="tar -xf layer-N.tar -C TMP/N for N in 1..6 (one dir per layer)"))

        unpacker = str(Path(berth).resolve().parents[2] / "bench" / "tools" / "berth-unpack-layer") \
            if berth_ok else ""
        if self.wanted("berth-unpack") and unpacker and os.access(unpacker, os.X_OK):
            s = bl.Series("berth unpack", argv0=unpacker)

            def berth_unpack(d: Path) -> list[list[str]]:
                return [[unpacker, str(t), str(d / str(i + 1))] for i, t in enumerate(self.tars)]
            self.add(Contender("berth unpack", s, berth_unpack, phase="unpack",
                               note="berth-unpack-layer layer-N.tar TMP/N for N in 1..6 (the unpacker alone)"))

        if self.wanted("berth-import"):
            s = bl.Series("berth import", argv0=berth)
            if not berth_ok:
                s.skipped = f"{berth} not found"
            else:
                s.version = bl.version_of([berth])

            def berth_import(d: Path) -> list[list[str]]:
                (d / "root").mkdir()
                return [[berth, "--root", str(d / "root"), "import", str(t)] for t in self.tars]
            self.add(Contender("berth import", s, berth_import, phase="unpack",
                               note="berth --root TMP import layer-N.tar for N in 1..6"))

    def docker_unusable(self) -> str | None:
        if not shutil.which("docker"):
            return "docker not installed"
        try:
            r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                               capture_output=True, text=True, timeout=20)
            if r.returncode != 0 or not r.stdout.strip():
                first = next((l for l in r.stderr.splitlines() if l.strip()), f"exit {r.returncode}")
                return f"no dockerd reachable (`docker info`: {first.strip()})"
            r = subprocess.run(["docker", "info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}}"],
                               capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError) as e:
            return f"docker info failed: {e}"
        if r.returncode != 0 or "127.0.0.0/8" not in r.stdout:
            return f"dockerd does not treat 127.0.0.0/8 as an insecure registry ({r.stdout.strip() or r.stderr.strip()})"
        return None

    # -- measuring --------------------------------------------------------------------
    def active(self, phase: str) -> list[Contender]:
        return [c for c in self.contenders if c.phase == phase and not c.series.skipped and not c.series.failed]

    def run_once(self, c: Contender, verify: bool = False) -> bl.Timed | None:
        self.counter += 1
        d = self.work / f"run-{self.counter}-{c.name.replace(' ', '_').replace('+', '_')}"
        d.mkdir()
        try:
            cmds = c.setup(d)
            os.sync()
            t = time_sequence(cmds, self.args.timeout)
            c.runs += 1
            if t.returncode != 0 or t.timed_out:
                why = "timed out" if t.timed_out else f"exit {t.returncode}"
                c.last_stderr = t.stderr.strip()
                err = [l for l in c.last_stderr.splitlines() if l.strip()]
                c.series.failed = f"{why}: {err[-1] if err else '(no stderr)'}"
                log(f"{c.name}: {c.series.failed}")
                return None
            if verify and c.verify:
                problem = c.verify(d)
                if problem:
                    self.warnings.append(f"{c.name}: {problem}")
                    log(f"WARNING: {c.name}: {problem}")
            return t
        finally:
            if c.teardown:
                c.teardown(d)
            remove_tree(d)

    def measure(self, phase: str) -> None:
        # warm-up / probe: a contender that fails here is skipped, not fatal
        for c in self.active(phase):
            for _ in range(max(1, self.args.warmup)):
                t = self.run_once(c, verify=True)
                if t is None:
                    c.series.skipped, c.series.failed = "probe failed: " + c.series.failed, None
                    break
                log(f"{c.name}: warm-up ok ({t.elapsed_ms / 1000:.2f} s)")
        order = self.active(phase)
        for i in range(self.args.iterations):
            for c in bl.rotated(order, i):
                if c.series.failed:
                    continue
                t = self.run_once(c)
                if t is not None:
                    c.series.samples_ms.append(t.elapsed_ms)
            if order:
                log(f"  {phase} round {i + 1}/{self.args.iterations}: " + ", ".join(
                    f"{c.name} {c.series.samples_ms[-1] / 1000:.2f} s" for c in bl.rotated(order, i)
                    if c.series.samples_ms and not c.series.failed))

    def cleanup(self) -> None:
        global CURRENT
        if CURRENT and CURRENT.poll() is None:
            CURRENT.kill()
            CURRENT.wait()
        for c in self.contenders:
            if c.name == "docker" and not c.series.skipped:
                subprocess.run(["docker", "rmi", "-f", self.ref], capture_output=True, timeout=120)
        self.registry.stop()

    # -- report -----------------------------------------------------------------------
    def table(self, phase: str, base_name: str, extra_mbps: bool) -> tuple[str, dict]:
        cs = [c for c in self.contenders if c.phase == phase]
        base = next((c for c in cs if c.name == base_name), None)
        base_med = bl.median(base.series.samples_ms) if base and base.series.samples_ms else None
        rows, meds = [], {}
        for c in cs:
            s = c.series
            if s.skipped or not s.samples_ms:
                row = [s.name, "-", "-", "-", "-", "-"] + (["-"] if extra_mbps else [])
                rows.append(row + ["skipped: " + (s.skipped or s.failed or "no samples")])
                continue
            sm = bl.summarize(s.samples_ms)
            meds[c.name] = sm["median_ms"]
            note = f"FAILED after {sm['n']} runs: {s.failed}" if s.failed else ""
            row = [s.name, sm["n"], sec(sm["median_ms"]), sec(sm["min_ms"]), sec(sm["max_ms"]),
                   bl.fmt_ratio(bl.ratio(sm["median_ms"], base_med))]
            if extra_mbps:
                row.append(f"{self.tar_bytes / 1e6 / (sm['median_ms'] / 1000):.0f}")
            rows.append(row + [note])
        headers = ["tool", "n", "median s", "min s", "max s", f"vs {base_name}"]
        if extra_mbps:
            headers.append("MB/s")
        headers.append("")
        return bl.format_table(headers, rows, align="lrrrrr" + ("r" if extra_mbps else "") + "l"), meds

    def report(self) -> dict:
        a = self.args
        img = self.image
        host = dict(self.host_start)
        host["loadavg_at_end"] = bl.host_info().get("loadavg")
        print(f"image pull from a loopback registry, {a.iterations} rounds after {max(1, a.warmup)} warm-up "
              f"run(s) each, tools interleaved, fresh empty store every run, `sync` before each")
        print("host: " + ", ".join(f"{k}={v}" for k, v in host.items()))
        print(f"image: {img['layers']} gzip layers, {img['file_bytes'] / 1e6:.0f} MB of file data in "
              f"{img['entries']} entries, {img['compressed_bytes'] / 1e6:.0f} MB compressed "
              f"({self.tar_bytes / 1e6:.0f} MB as uncompressed tars); ref {self.ref}")
        for c in self.contenders:
            if c.series.version and not c.series.skipped:
                print(f"  {c.name}: {c.series.argv0} ({c.series.version}): {c.note}")
        print()
        pull_table, pull_meds = self.table("pull", "berth", False)
        print("pull (registry -> ready-to-run image):")
        print(pull_table)
        unpack_meds: dict = {}
        if not a.no_unpack:
            unpack_table, unpack_meds = self.table("unpack", "GNU tar -x", True)
            print()
            print(f"unpack of the same {img['layers']} layers, uncompressed ({self.tar_bytes / 1e6:.0f} MB of tar), "
                  f"one layer after another, fresh target each run:")
            print(unpack_table)
        print("\nratio = tool median / baseline median (below 1.00x: faster than the baseline)")
        for w in self.warnings:
            print(f"WARNING: {w}")
        for c in self.contenders:
            probe_failed = (c.series.skipped or "").startswith("probe failed")
            if (c.series.failed or probe_failed) and c.last_stderr:
                print(f"\n{c.name} stderr (last run):\n" + indent(c.last_stderr[-3000:]))

        # summary
        print("\nsummary:")
        rows = []
        bp = pull_meds.get("berth")
        rows.append(["berth pull median", sec(bp) + " s" if bp else "-", f"<= {GOAL_PULL_S:.2f} s",
                     goal(bp is not None and bp / 1000 <= GOAL_PULL_S, bp is None)])
        for name in ("podman", "docker", "skopeo+umoci"):
            m = pull_meds.get(name)
            rows.append([f"{name} pull median", sec(m) + " s" if m else "-",
                         bl.fmt_ratio(bl.ratio(m, bp)) + " of berth" if m and bp else "", ""])
        if not a.no_unpack:
            tm, um, bm = (unpack_meds.get(k) for k in ("GNU tar -x", "berth unpack", "berth import"))
            r = bl.ratio(um, tm)
            rows.append(["unpack: berth unpacker / tar -x", bl.fmt_ratio(r), f"<= {GOAL_UNPACK_RATIO:.2f}x",
                         goal(r is not None and r <= GOAL_UNPACK_RATIO, r is None)])
            rows.append(["berth import (unpack + blob copy + image) / tar -x", bl.fmt_ratio(bl.ratio(bm, tm)), "",
                         ""])
        print(bl.format_table(["measure", "value", "goal", "status"], rows, align="lrrl"))

        print("\nfor docs/PERFORMANCE.md:")
        print(perf_line(self, pull_meds, unpack_meds, host))
        return {
            "benchmark": "pull",
            "ref": self.ref,
            "iterations": a.iterations,
            "warmup": max(1, a.warmup),
            "host": host,
            "image": img,
            "uncompressed_tar_bytes": self.tar_bytes,
            "results": {c.name: dict(c.series.summary(), phase=c.phase, command=c.note) for c in self.contenders},
            "goals": {"pull_s": GOAL_PULL_S, "unpack_ratio": GOAL_UNPACK_RATIO},
            "warnings": self.warnings,
        }


def perf_line(b: Bench, pull: dict, unpack: dict, host: dict) -> str:
    img = b.image
    parts = []
    bp = pull.get("berth")
    for name in ("berth", "podman", "docker", "skopeo+umoci"):
        m = pull.get(name)
        if m is None:
            c = next((c for c in b.contenders if c.name == name), None)
            why = "not measured" if c is None else ("failed" if (c.series.failed or (c.series.skipped or "")
                                                                   .startswith("probe")) else "not available")
            parts.append(f"{name} — ({why})")
        elif name == "berth":
            parts.append(f"berth {m / 1000:.2f} s")
        else:
            parts.append(f"{name} {m / 1000:.2f} s" + (f" ({m / bp:.2f}×)" if bp else ""))
    tmpdir = f"TMPDIR={os.environ['TMPDIR']} " if os.environ.get("TMPDIR") else ""
    line = (f"Pull, {img['layers']} gzip layers / {img['file_bytes'] / 1e6:.0f} MB "
            f"({img['compressed_bytes'] / 1e6:.0f} MB compressed) from docker-registry on loopback, medians of "
            f"{b.args.iterations}, stores on {host.get('workdir_fs', '?')} (`sudo {tmpdir}bench/pull.sh "
            f"{cli_args()}`, {datetime.date.today()}, load {' '.join(host.get('loadavg', []))}): "
            + "; ".join(parts) + ".")
    if unpack:
        tm, um, bm = unpack.get("GNU tar -x"), unpack.get("berth unpack"), unpack.get("berth import")
        if tm and um:
            line += (f" Unpack of the same layers uncompressed: berth's unpacker {um / 1000:.2f} s vs GNU tar -x "
                     f"{tm / 1000:.2f} s ({um / tm:.2f}×)")
            line += f", berth import {bm / 1000:.2f} s ({bm / tm:.2f}×)." if bm else "."
        elif tm and bm:
            line += (f" Unpack of the same layers uncompressed: berth import {bm / 1000:.2f} s vs GNU tar -x "
                     f"{tm / 1000:.2f} s ({bm / tm:.2f}×, {b.tar_bytes / 1e6 / (bm / 1000):.0f} vs "
                     f"{b.tar_bytes / 1e6 / (tm / 1000):.0f} MB/s).")
        elif tm:
            line += f" Unpack: GNU tar -x {tm / 1000:.2f} s; berth import not measured."
    return line


def cli_args() -> str:
    """This run's options as typed to pull.sh (without the --workdir it adds)."""
    out, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--workdir":
            skip = True
        elif not a.startswith("--workdir="):
            out.append(a)
    return " ".join(out)


def sec(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.3f}"


def goal(ok: bool, unknown: bool) -> str:
    return "not measured" if unknown else ("met" if ok else "NOT MET")


def indent(s: str) -> str:
    return "\n".join("    " + l for l in s.splitlines())


def fs_type(path: Path) -> str:
    try:
        return bl._fstype(str(path))
    except OSError:
        return "?"


def default_berth() -> str:
    if os.environ.get("BERTH"):
        return os.environ["BERTH"]
    build = Path(os.environ.get("BERTH_BUILD_DIR", bl.REPO / "build"))
    return str(build / "src" / "cli" / "berth")


def on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--iterations", type=int, default=5, help="measured rounds (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="discarded runs per tool first (default 1, minimum 1)")
    ap.add_argument("--berth", default=default_berth(),
                    help="berth binary (default $BERTH, else $BERTH_BUILD_DIR or <repo>/build, src/cli/berth)")
    ap.add_argument("--registry", default="/usr/bin/docker-registry", help="Debian's docker-registry binary")
    ap.add_argument("--only", help="comma-separated subset of: berth,skopeo+umoci,podman,docker,tar,berth-unpack,berth-import")
    ap.add_argument("--no-unpack", action="store_true", help="skip the tar -x / berth import comparison")
    ap.add_argument("--cache-dir", help="where the built image is kept "
                                        "(default $XDG_CACHE_HOME or /var/tmp, berth-bench-pull-v<N>-<seed>)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached image")
    ap.add_argument("--build-only", action="store_true", help="build (or find) the cached image and exit")
    ap.add_argument("--workdir", help="scratch directory (pull.sh makes one and removes it)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds before one run counts as hung")
    ap.add_argument("--json", metavar="PATH", help="also write all samples and summaries as JSON ('-': stdout)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("pull: needs root (umoci unpack, berth's store, podman/docker)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)   # pull.sh runs it in the background, where INT starts ignored

    own_work = not args.workdir
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="berth-bench-pull.",
                                                                         dir=os.environ.get("TMPDIR", "/var/tmp")))
    bench = Bench(args, work)
    try:
        bench.prepare_image()
        if args.build_only:
            print(json.dumps(bench.image, indent=2))
            return 0
        for tool in ("skopeo",):
            if not shutil.which(tool):
                raise SystemExit(f"pull: {tool} not found (needed to push the image)")
        bench.start_registry()
        bench.add_contenders()
        bench.measure("pull")
        if not args.no_unpack:
            bench.measure("unpack")
    finally:
        bench.cleanup()
        for p in sorted(work.glob("run-*")):
            remove_tree(p)
        if own_work:
            remove_tree(work)
    payload = bench.report()
    if args.json:
        bl.dump_json(args.json, payload)
    failed = [c.name for c in bench.contenders if c.series.failed]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
