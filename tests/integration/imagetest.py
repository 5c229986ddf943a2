"""Helpers for the image tests: run `berth` with a private data root, walk and compare trees."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import berthtest as bt

BERTH = os.environ.get("BERTH_BIN", str(bt.BUILD_DIR / "src" / "cli" / "berth"))


class Berth:
    """`berth --root ROOT …` with a private credentials dir, so host logins never leak in."""

    def __init__(self, root: Path, config_dir: Path | None = None):
        self.root = Path(root)
        self.config_dir = Path(config_dir) if config_dir else self.root.parent / (self.root.name + "-config")

    def run(self, *args, input=None, timeout=300, check=False) -> subprocess.CompletedProcess:
        cmd = [BERTH, "--root", str(self.root), "--config", str(self.config_dir), *[str(a) for a in args]]
        env = dict(os.environ)
        env.pop("DOCKER_CONFIG", None)
        r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def ok(self, *args, **kw) -> str:
        return self.run(*args, check=True, **kw).stdout

    def fails(self, *args, **kw) -> subprocess.CompletedProcess:
        r = self.run(*args, **kw)
        assert r.returncode != 0, f"berth {' '.join(map(str, args))} succeeded:\n{r.stdout}"
        lines = [l for l in r.stderr.strip().splitlines() if l]
        assert len(lines) >= 1, "no error message"
        return r

    def store_snapshot(self) -> dict:
        """What the store holds: image IDs, names, layer and blob files (for 'unchanged' checks)."""
        images = self.ok("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").split("\n")
        layers = sorted(p.name for p in (self.root / "layers").iterdir() if p.name != ".tmp") \
            if (self.root / "layers").exists() else []
        blobs = sorted(p.name for p in (self.root / "content/blobs/sha256").iterdir()) \
            if (self.root / "content/blobs/sha256").exists() else []
        return {"images": sorted(i for i in images if i), "layers": layers, "blobs": blobs}

    def no_partials(self):
        """Nothing half-done left: partial blobs or layers."""
        for d in ("content/ingest", "layers/.tmp"):
            p = self.root / d
            if p.exists():
                assert list(p.iterdir()) == [], f"leftovers in {p}: {list(p.iterdir())}"


def walk_tree(root: Path) -> dict:
    """path -> (type, mode, uid, gid, content-or-target); hardlinks as a list of inode groups."""
    out = {}
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", oct(mode), st.st_uid, st.st_gid)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", oct(mode), st.st_uid, st.st_gid, p.read_bytes())
            else:
                out[rel] = ("other", st.st_mode, st.st_rdev)
    return out


def hardlink_groups(root: Path) -> list:
    groups = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups.setdefault(st.st_ino, []).append(str(p.relative_to(root)))
    return sorted(sorted(g) for g in groups.values())


def mounted(berth: Berth, image: str, target: Path):
    """Context manager: the image's layers mounted read-only at target."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        target.mkdir(parents=True, exist_ok=True)
        berth.ok("image", "mount", image, target)
        try:
            yield target
        finally:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)

    return cm()
