"""The front-end/back-end example (examples/frontend-backend), berth's main job.

The walk-through scripts/demo runs (run-demo) is run here against a private berth, in the test's
network namespace, and each of its points is checked again from outside: the back end is
removed and recreated, its log lines and shared data survive in named volumes, the writable
layer's scratch file does not, and the host's reference file is readable but not writable.
Headless Chromium loads the page and must render the data the front end got from the back end."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from containertest import Engine, berth_wrapper, busybox_tar, engine, run_in_netns  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "frontend-backend"
PROJECT = "frontend-backend"
PORT = "18080"
# The checks run-demo prints ("ok: …"), in compose mode and with --kube (test_kube.py).
DEMO_CHECKS = ["the front end reached the back end by name",
               "the back end read the host's reference data",
               "the front end serves the back end's file from shared-data",
               "the log lines survived (named volume logs)",
               "the shared data survived (named volume shared-data)",
               "the scratch file in the writable layer did not survive",
               "the host file is readable from the container",
               "the host file is not writable from the container",
               "the page data comes from the new back end"]


def in_netns(engine: Engine, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return run_in_netns(engine, *args, env={"FRONTEND_PORT": PORT, **(env or {})}, timeout=timeout)


@pytest.fixture
def example(engine: Engine, tmp_path: Path):
    """The example's compose command for this engine; the project is taken down (-v) after."""
    wrapper = berth_wrapper(engine, tmp_path)

    def compose(*args):
        return in_netns(engine, wrapper, "compose", "-f", EXAMPLE / "compose.yaml", *args)

    try:
        yield wrapper, compose
    finally:
        compose("down", "-v", "-t", "1")


def test_walkthrough_keeps_volumes_and_drops_the_writable_layer(engine, example):
    wrapper, compose = example
    reference = EXAMPLE / "reference" / "reference.txt"
    before = reference.read_bytes()
    r = in_netns(engine, EXAMPLE / "run-demo", wrapper)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "FAILED" not in out, out
    for check in DEMO_CHECKS:
        assert f"ok: {check}\n" in out, out
    assert f"The example is running at http://127.0.0.1:{PORT}/" in out

    # From outside the walk-through: the host file is untouched, the volumes hold the data.
    assert reference.read_bytes() == before
    volumes = engine.ok("volume", "ls", "--format", "{{.Name}}").split()
    assert f"{PROJECT}_logs" in volumes and f"{PROJECT}_shared-data" in volumes
    log_dir = Path(engine.ok("volume", "inspect", "--format", "{{.Mountpoint}}", f"{PROJECT}_logs").strip())
    lines = (log_dir / "requests.log").read_text().splitlines()
    assert len(lines) >= 3 and all(" GET /cgi-bin/items " in l for l in lines), lines
    shared_dir = Path(engine.ok("volume", "inspect", "--format", "{{.Mountpoint}}", f"{PROJECT}_shared-data").strip())
    assert (shared_dir / "latest.txt").read_text().startswith("Published by the back end at ")
    # Both services run, from the project's containers, and the back end is a new container.
    names = sorted(engine.ok("ps", "--format", "{{.Names}}").split())
    assert names == [f"{PROJECT}-backend-1", f"{PROJECT}-frontend-1"]

    # down keeps the named volumes; down -v removes them.
    r = compose("down", "-t", "1")
    assert r.returncode == 0, r.stderr
    assert engine.container_ids() == []
    assert (log_dir / "requests.log").read_text().splitlines() == lines
    r = compose("down", "-v", "-t", "1")
    assert r.returncode == 0, r.stderr
    volumes = engine.ok("volume", "ls", "--format", "{{.Name}}").split()
    assert f"{PROJECT}_logs" not in volumes and f"{PROJECT}_shared-data" not in volumes


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (scripts/bootstrap installs it)")
def test_page_renders_backend_data_in_chromium(engine, example, tmp_path):
    wrapper, compose = example
    r = in_netns(engine, EXAMPLE / "build-images", wrapper)
    assert r.returncode == 0, r.stderr
    r = compose("up", "-d")
    assert r.returncode == 0, r.stderr
    # The page fetches its data with JavaScript; the virtual time budget lets those fetches finish
    # before the DOM is dumped.
    r = in_netns(engine, "chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium'}",
                 "--virtual-time-budget=15000", "--dump-dom", f"http://127.0.0.1:{PORT}/", timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    backend_id = engine.inspect(f"{PROJECT}-backend-1")["Config"]["Hostname"]
    assert f"backend: {backend_id}" in dom, dom
    assert "reference: berth reference data" in dom, dom
    assert "Published by the back end at" in dom, dom
    assert "loading…" not in dom and "error" not in dom.split("<script>")[0], dom
