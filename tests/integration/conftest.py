"""Fixtures for the `berth runtime` integration tests.

The runtime under test is $BERTH_RUNTIME (default <repo>/build/src/cli/berth-runtime,
or $BERTH_BUILD_DIR/src/cli/berth-runtime). Run against runc with
BERTH_RUNTIME=/usr/sbin/runc to check the tests themselves.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import berthtest as bt


def pytest_report_header(config):
    return f"runtime under test: {bt.RUNTIME_PATH} ({bt.runtime_name()})"


@pytest.fixture(scope="session", autouse=True)
def _preflight():
    if os.geteuid() != 0:
        if os.environ.get("BERTH_TEST_STRICT") == "1":
            pytest.exit("the runtime integration tests need root", returncode=1)
        pytest.skip("the runtime integration tests need root")
    if not (os.path.isfile(bt.RUNTIME_PATH) and os.access(bt.RUNTIME_PATH, os.X_OK)):
        why = f"runtime binary not found: {bt.RUNTIME_PATH} (build it, or set BERTH_RUNTIME)"
        # scripts/test sets BERTH_TEST_STRICT: there a missing binary is a failure, not a skip.
        if os.environ.get("BERTH_TEST_STRICT") == "1":
            pytest.exit(why, returncode=1)
        pytest.skip(why)


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory):
    """The busybox root filesystem, built once per session."""
    dest = tmp_path_factory.mktemp("template") / "rootfs"
    script = bt.FIXTURES / "make-busybox-rootfs.sh"
    r = subprocess.run(["sh", str(script), str(dest)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build the busybox rootfs: {r.stderr.strip()}")
    return dest


@pytest.fixture(scope="session")
def recvtty_bin(tmp_path_factory):
    """Path to the recvtty console-socket receiver (built by CMake, else compiled here)."""
    built = bt.BUILD_DIR / "tests" / "tools" / "recvtty"
    if built.is_file() and os.access(built, os.X_OK):
        return str(built)
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("recvtty is not built and g++ is missing")
    out = tmp_path_factory.mktemp("tools") / "recvtty"
    src = bt.REPO_ROOT / "tests" / "tools" / "recvtty.cpp"
    r = subprocess.run([gxx, "-std=c++20", "-O2", "-Wall", "-Wextra", "-o", str(out), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot compile recvtty: {r.stderr}")
    return str(out)


@pytest.fixture
def runtime(tmp_path):
    """The runtime under test with a private --root; deletes every container after the test."""
    rt = bt.Runtime(bt.RUNTIME_PATH, tmp_path / "state", tmp_path / "logs")
    yield rt
    problems = rt.cleanup()
    if problems:
        pytest.fail("cleanup: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def bundle(tmp_path, rootfs_template):
    """A bundle with a fresh copy of the busybox rootfs and the default config (edit .config)."""
    return bt.Bundle(tmp_path / "bundle", rootfs_template)


@pytest.fixture
def make_bundle(tmp_path, rootfs_template):
    """Factory for extra bundles: make_bundle('name')."""
    def make(name: str) -> bt.Bundle:
        return bt.Bundle(tmp_path / name, rootfs_template)
    return make


@pytest.fixture
def short_tmp():
    """A short temporary directory (unix socket paths must stay under 108 bytes)."""
    d = tempfile.mkdtemp(prefix="bt-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)
