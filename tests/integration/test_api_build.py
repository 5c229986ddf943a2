"""docker build (the CLI's legacy builder, DOCKER_BUILDKIT=0), docker commit and docker-compose's
build: against `berth serve`: the stream the CLI shows, exit codes, the cache, tags and images."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from apitest import COMPOSE_BIN, DOCKER, api, engine, busybox_tar  # noqa: F401 (fixtures)


def legacy(api, *args, **kw) -> subprocess.CompletedProcess:
    env = api.env
    env["DOCKER_BUILDKIT"] = "0"
    cmd = [*api.engine.prefix(), DOCKER, *[str(a) for a in args]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.get("timeout", 300), env=env,
                          cwd=kw.get("cwd"))


def context(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "ctx"
    for name, text in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return d


def test_docker_build_streams_steps_tags_and_caches(api, tmp_path):
    ctx = context(tmp_path, {
        "Dockerfile": ("FROM busybox\n"
                       "ARG WHO=nobody\n"
                       "COPY greeting.txt /greeting.txt\n"
                       "RUN echo \"built for $WHO\" > /who\n"
                       "EXPOSE 8080\n"
                       "CMD [\"cat\", \"/greeting.txt\", \"/who\"]\n"),
        "greeting.txt": "hello from the context\n",
        ".dockerignore": "secret.txt\n",
        "secret.txt": "do not send\n",
    })
    r = legacy(api, "build", "-t", "web:1", "--build-arg", "WHO=docker", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Step 1/6 : FROM busybox" in r.stdout
    assert re.search(r"Successfully built [0-9a-f]{12}", r.stdout)
    assert "Successfully tagged web:1" in r.stdout
    assert api.docker_ok("run", "--rm", "web:1") == "hello from the context\nbuilt for docker\n"
    info = json.loads(api.docker_ok("image", "inspect", "web:1"))[0]
    assert info["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert info["Parent"], info  # a build step's image has its parent
    # Unchanged: everything comes from the cache and the image is the same.
    again = legacy(api, "build", "-t", "web:1", "--build-arg", "WHO=docker", str(ctx))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("Using cache") == 4, again.stdout
    assert "Running in" not in again.stdout
    assert json.loads(api.docker_ok("image", "inspect", "web:1"))[0]["Id"] == info["Id"]
    # -q prints the image ID alone (from the stream the server sends a quiet build).
    q = legacy(api, "build", "-q", "--build-arg", "WHO=docker", str(ctx))
    assert q.returncode == 0, q.stderr
    assert q.stdout.strip() == info["Id"], q.stdout
    # Intermediate images are listed only with -a.
    assert "<none>" not in api.docker_ok("images")
    assert len(api.docker_ok("images", "-a", "-q").split()) > len(api.docker_ok("images", "-q").split())


def test_docker_build_failures(api, tmp_path):
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo going down && exit 5\n"})
    r = legacy(api, "build", "-t", "broken", str(ctx))
    assert r.returncode == 5, (r.returncode, r.stdout, r.stderr)
    assert "going down" in r.stdout
    assert "The command '/bin/sh -c echo going down && exit 5' returned a non-zero code: 5" in r.stderr
    assert api.docker("image", "inspect", "broken").returncode != 0
    assert api.docker_ok("ps", "-aq") == ""
    (ctx / "Dockerfile").write_text("FROM busybox\nNOPE x\n")
    r = legacy(api, "build", str(ctx))
    assert r.returncode != 0 and "unknown instruction: NOPE" in r.stderr, r.stderr
    # A missing base image is pulled (here from a registry that is not there: nothing listens on
    # 127.0.0.1:9, so no name is looked up and nothing leaves the machine).
    (ctx / "Dockerfile").write_text("FROM 127.0.0.1:9/no-such-base:1\n")
    r = legacy(api, "build", str(ctx))
    assert r.returncode != 0 and "127.0.0.1:9/no-such-base:1" in r.stderr, r.stderr


def test_docker_commit(api):
    api.docker_ok("run", "--name", "src", "busybox", "sh", "-c", "echo saved > /saved && rm /etc/group")
    out = api.docker_ok("commit", "-c", "CMD [\"cat\", \"/saved\"]", "-m", "snapshot", "src", "snap:1")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), out
    assert api.docker_ok("run", "--rm", "snap:1") == "saved\n"
    assert api.docker("run", "--rm", "snap:1", "cat", "/etc/group").returncode != 0
    info = json.loads(api.docker_ok("image", "inspect", "snap:1"))[0]
    assert info["Comment"] == "snapshot"
    r = api.docker("commit", "nosuch", "x")
    assert r.returncode != 0 and "nosuch" in r.stderr


@pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK), reason="docker-compose is not installed")
def test_docker_compose_build(api, tmp_path):
    proj = tmp_path / "proj"
    (proj / "app").mkdir(parents=True)
    (proj / "app" / "Dockerfile").write_text("FROM busybox\nARG MSG=default\nRUN echo $MSG > /msg\n"
                                             "CMD [\"cat\", \"/msg\"]\n")
    (proj / "docker-compose.yml").write_text(
        "version: '3.8'\nservices:\n  app:\n    build:\n      context: ./app\n      args:\n"
        "        MSG: from-compose\n    image: proj-app:latest\n    network_mode: none\n")
    env = api.env
    cmd = [*api.engine.prefix(), COMPOSE_BIN, "--ansi", "never", "-p", "bproj"]
    r = subprocess.run([*cmd, "build"], capture_output=True, text=True, env=env, cwd=proj, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Successfully tagged proj-app:latest" in r.stdout + r.stderr
    r = subprocess.run([*cmd, "run", "--rm", "app"], capture_output=True, text=True, env=env, cwd=proj, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("from-compose"), r.stdout + r.stderr
    subprocess.run([*cmd, "down", "--rmi", "all"], capture_output=True, text=True, env=env, cwd=proj, timeout=120)


def _tar(members) -> bytes:
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                t.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                t.addfile(info)
    return buf.getvalue()


def test_hostile_build_contexts_stay_inside(api, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host secret line\n")
    cases = [
        # A Dockerfile that is a link to a host file: resolved inside the context, where it is not.
        [("Dockerfile", "symlink", str(secret))],
        # A FIFO named Dockerfile would block a reader forever.
        [("Dockerfile", "fifo", None)],
        # Entries that climb out of the context.
        [("../../escaped", "file", b"x"), ("Dockerfile", "file", b"FROM busybox\n")],
        [("/abs-escaped", "file", b"x"), ("Dockerfile", "file", b"FROM busybox\n")],
    ]
    for members in cases:
        status, _, body = api.request("POST", "/build?t=hostile", body=_tar(members),
                                      headers={"Content-Type": "application/x-tar"})
        assert status == 400, (members, status, body)
        assert b"host secret" not in body
    # A .dockerignore linked to a host file is not read from the host, and COPY of a link copies
    # the link (never what it points at on the host).
    status, _, body = api.request("POST", "/build?t=hostile", body=_tar([
        (".dockerignore", "symlink", str(secret)),
        ("link", "symlink", str(secret)),
        ("Dockerfile", "file", b"FROM busybox\nCOPY . /ctx/\n"),
    ]), headers={"Content-Type": "application/x-tar"})
    assert status == 200 and b"errorDetail" not in body, body
    out = api.docker("run", "--rm", "hostile", "sh", "-c", "readlink /ctx/link; cat /ctx/link; true")
    assert out.stdout.splitlines()[0] == str(secret)
    assert "host secret" not in out.stdout
    assert not (tmp_path / "escaped").exists() and not os.path.exists("/abs-escaped")


def test_image_prune_removes_a_failed_builds_chain_and_builder_prune_drops_the_cache(api, tmp_path):
    before = set(api.docker_ok("images", "-a", "-q", "--no-trunc").split())
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo one > /one\nENV A=1\nRUN exit 2\n"})
    assert legacy(api, "build", str(ctx)).returncode == 2
    left = set(api.docker_ok("images", "-a", "-q", "--no-trunc").split()) - before
    assert len(left) == 2, left  # RUN echo, ENV: the failed step made nothing
    out = api.docker_ok("image", "prune", "-f")
    assert out.count("deleted: sha256:") == 2, out
    assert set(api.docker_ok("images", "-a", "-q", "--no-trunc").split()) == before
    # The cache goes with `builder prune`: the next build runs its steps again.
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo two > /two\n")
    assert legacy(api, "build", "-t", "pruned", str(ctx)).returncode == 0
    r = api.docker("builder", "prune", "-f")
    assert r.returncode == 0, r.stderr
    again = legacy(api, "build", "-t", "pruned", str(ctx))
    assert "Running in" in again.stdout and "Using cache" not in again.stdout, again.stdout
