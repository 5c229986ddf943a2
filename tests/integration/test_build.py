"""berth build and berth commit: images from Dockerfiles and from containers, as docker's legacy
builder makes them — file contents, users, working directories, the cache (which steps ran),
multi-stage builds, .dockerignore, and bad input that tags nothing and leaves nothing behind."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from containertest import Engine, busybox_tar, engine  # noqa: F401


def write(ctx: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return ctx


def build(engine: Engine, ctx: Path, *args) -> subprocess.CompletedProcess:
    return engine.run("build", *args, str(ctx), timeout=300)


def steps_ran(out: str) -> list[int]:
    """The step numbers that did work (not "Using cache")."""
    ran, current = [], None
    for line in out.splitlines():
        m = re.match(r"^Step (\d+)/\d+ : ", line)
        if m:
            current = int(m.group(1))
            continue
        if current and line.startswith(" ---> Running in"):
            ran.append(current)
    return ran


def cached_steps(out: str) -> int:
    return out.count(" ---> Using cache")


def image_inspect(engine: Engine, ref: str) -> dict:
    return json.loads(engine.ok("image", "inspect", ref))[0]


def leftovers(engine: Engine) -> dict:
    build_dir = engine.root / "build"
    return {
        "containers": engine.container_ids(),
        "mounts": engine.mounts_under_root(),
        "build_dirs": sorted(p.name for p in build_dir.iterdir()) if build_dir.exists() else [],
    }


NOTHING_LEFT = {"containers": [], "mounts": [], "build_dirs": []}


def test_build_copy_run_env_workdir_user_and_run_the_image(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": (
            "# a comment\n"
            "FROM busybox\n"
            "ENV GREETING=hello \\\n"
            "    TARGET=world\n"
            "WORKDIR /app\n"
            "COPY hello.txt .\n"
            "COPY conf/ /etc/myconf/\n"
            "RUN echo \"$GREETING $TARGET\" > /app/generated && chown app /app/generated\n"
            "USER app\n"
            "CMD [\"sh\", \"-c\", \"cat /app/hello.txt /app/generated /etc/myconf/a.conf; id -un; pwd\"]\n"),
        "hello.txt": "from the context\n",
        "conf/a.conf": "setting=1\n",
    })
    r = build(engine, ctx, "-t", "app:1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Step 1/8 : FROM busybox" in r.stdout
    assert re.search(r"Successfully built [0-9a-f]{12}\n", r.stdout)
    assert "Successfully tagged app:1\n" in r.stdout
    out = engine.ok("run", "--rm", "app:1")
    assert out == "from the context\nhello world\nsetting=1\napp\n/app\n", out
    info = image_inspect(engine, "app:1")
    cfg = info["Config"]
    assert "GREETING=hello" in cfg["Env"] and "TARGET=world" in cfg["Env"]
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "app"
    assert cfg["Cmd"][0] == "sh"
    # The COPY'd file belongs to root (docker's default), the RUN's chown stuck.
    out = engine.ok("run", "--rm", "app:1", "stat", "-c", "%U %a %n", "/app/hello.txt", "/app/generated")
    assert out.splitlines() == ["root 644 /app/hello.txt", "app 644 /app/generated"], out
    # Intermediate images are hidden from `images` but listed with -a; history has every step.
    shown = engine.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert "app:1" in shown and "<none>:<none>" not in shown
    assert len(engine.ok("images", "-a", "-q").split()) > len(engine.ok("images", "-q").split())
    assert leftovers(engine) == NOTHING_LEFT


def test_unchanged_rebuild_is_all_cache_and_a_changed_file_reruns_from_its_step(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": ("FROM busybox\n"
                       "RUN echo one > /one\n"
                       "COPY data.txt /data.txt\n"
                       "RUN cat /data.txt > /copy\n"
                       "CMD [\"cat\", \"/copy\"]\n"),
        "data.txt": "version 1\n",
    })
    first = build(engine, ctx, "-t", "cached")
    assert first.returncode == 0, first.stdout + first.stderr
    assert steps_ran(first.stdout) == [2, 4]
    id1 = image_inspect(engine, "cached")["Id"]

    again = build(engine, ctx, "-t", "cached")
    assert again.returncode == 0, again.stderr
    assert steps_ran(again.stdout) == []
    assert cached_steps(again.stdout) == 4, again.stdout
    assert image_inspect(engine, "cached")["Id"] == id1
    # Touching the file without changing it keeps the cache (content, not times, is the key).
    os.utime(ctx / "data.txt", (1, 1))
    assert image_inspect(engine, "cached")["Id"] == id1
    touched = build(engine, ctx, "-t", "cached")
    assert steps_ran(touched.stdout) == [] and image_inspect(engine, "cached")["Id"] == id1

    (ctx / "data.txt").write_text("version 2\n")
    changed = build(engine, ctx, "-t", "cached")
    assert changed.returncode == 0, changed.stderr
    assert steps_ran(changed.stdout) == [4], changed.stdout
    assert cached_steps(changed.stdout) == 1  # RUN echo one
    assert engine.ok("run", "--rm", "cached") == "version 2\n"

    nocache = build(engine, ctx, "--no-cache", "-t", "cached")
    assert steps_ran(nocache.stdout) == [2, 4] and cached_steps(nocache.stdout) == 0


def test_multi_stage_copy_from_and_unused_stages_skipped(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": ("FROM busybox AS builder\n"
                       "RUN mkdir /out && echo built-artifact > /out/artifact && echo extra > /out/extra\n"
                       "\n"
                       "FROM busybox AS broken\n"
                       "RUN exit 7\n"
                       "\n"
                       "FROM busybox\n"
                       "COPY --from=builder /out/artifact /opt/artifact\n"
                       "COPY --from=0 /out/ /opt/all/\n"
                       "CMD [\"cat\", \"/opt/artifact\", \"/opt/all/extra\"]\n"),
    })
    r = build(engine, ctx, "-t", "multi")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "exit 7" not in r.stdout  # the stage nothing uses never ran
    assert engine.ok("run", "--rm", "multi") == "built-artifact\nextra\n"
    # --target stops at a stage (and builds only what it needs).
    r = build(engine, ctx, "--target", "builder", "-t", "just-builder")
    assert r.returncode == 0, r.stderr
    assert engine.ok("run", "--rm", "just-builder", "cat", "/out/artifact") == "built-artifact\n"
    r = build(engine, ctx, "--target", "broken", "-t", "broken")
    assert r.returncode == 7, (r.returncode, r.stdout, r.stderr)
    assert "The command '/bin/sh -c exit 7' returned a non-zero code: 7" in r.stderr
    engine.fails("image", "inspect", "broken")
    assert leftovers(engine) == NOTHING_LEFT


def test_dockerignore_patterns_and_exceptions(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
        ".dockerignore": "# comment\n*.log\n**/*.tmp\nbuild/\n!build/keep.txt\nsecret\n",
        "app.py": "print(1)\n",
        "debug.log": "x\n",
        "deep/a/b/c.tmp": "x\n",
        "deep/a/b/c.txt": "kept\n",
        "build/out.o": "x\n",
        "build/keep.txt": "kept\n",
        "secret/key": "x\n",
    })
    r = build(engine, ctx, "-t", "ignored")
    assert r.returncode == 0, r.stdout + r.stderr
    listing = engine.ok("run", "--rm", "ignored", "find", "/ctx", "-type", "f").split()
    assert sorted(listing) == sorted([
        "/ctx/Dockerfile", "/ctx/.dockerignore", "/ctx/app.py", "/ctx/deep/a/b/c.txt", "/ctx/build/keep.txt"]), listing
    # An excluded file named directly is "not found".
    write(ctx, {"Dockerfile": "FROM busybox\nCOPY debug.log /\n"})
    r = build(engine, ctx)
    assert r.returncode != 0 and "debug.log" in r.stderr, r.stderr


def test_args_env_substitution_and_build_args(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": ("ARG BASE=busybox\n"
                       "FROM ${BASE}:latest\n"
                       "ARG WHO=nobody\n"
                       "ARG UNSET\n"
                       "ENV DIR=/srv/${WHO:-x} MODE=${UNSET:-fallback}\n"
                       "WORKDIR $DIR\n"
                       "RUN echo \"who=$WHO mode=$MODE pwd=$(pwd)\" > out.txt\n"
                       "LABEL owner=\"${WHO}\"\n"),
    })
    r = build(engine, ctx, "--build-arg", "WHO=alice", "--build-arg", "NOTUSED=1", "-t", "args")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[Warning] One or more build-args [NOTUSED] were not consumed" in r.stdout
    assert engine.ok("run", "--rm", "args", "cat", "/srv/alice/out.txt") == "who=alice mode=fallback pwd=/srv/alice\n"
    cfg = image_inspect(engine, "args")["Config"]
    assert cfg["WorkingDir"] == "/srv/alice"
    assert cfg["Labels"] == {"owner": "alice"}
    # ARG values are not kept in the image's environment.
    assert not any(e.startswith("WHO=") for e in cfg["Env"]), cfg["Env"]


def test_heredocs_volume_expose_healthcheck_and_more_in_inspect(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": ("FROM busybox\n"
                       "RUN <<EOF\n"
                       "echo first > /first\n"
                       "echo second >> /first\n"
                       "EOF\n"
                       "RUN cat <<-END > /second\n"
                       "\tindented line\n"
                       "\tEND\n"
                       "COPY <<CONF /etc/app.conf\n"
                       "key=value\n"
                       "CONF\n"
                       "VOLUME /data\n"
                       "EXPOSE 8080 53/udp\n"
                       "STOPSIGNAL SIGINT\n"
                       "HEALTHCHECK --interval=5s --retries=2 CMD true\n"
                       "ENTRYPOINT [\"sh\", \"-c\"]\n"
                       "CMD [\"cat /first /second /etc/app.conf\"]\n"),
    })
    r = build(engine, ctx, "-t", "heredoc")
    assert r.returncode == 0, r.stdout + r.stderr
    assert engine.ok("run", "--rm", "heredoc") == "first\nsecond\nindented line\nkey=value\n"
    cfg = image_inspect(engine, "heredoc")["Config"]
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"] and cfg["Healthcheck"]["Retries"] == 2
    assert cfg["Entrypoint"] == ["sh", "-c"]


def test_add_extracts_local_archives_and_copy_chown_chmod(engine, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"inside the archive\n"
        info = tarfile.TarInfo("pkg/readme")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    (ctx / "pkg.tar.gz").write_bytes(buf.getvalue())
    write(ctx, {
        "Dockerfile": ("FROM busybox\n"
                       "ADD pkg.tar.gz /opt/\n"
                       "COPY --chown=app:app --chmod=600 script.sh /home/app/\n"
                       "ADD plain.txt /plain.txt\n"),
        "script.sh": "echo hi\n",
        "plain.txt": "plain\n",
    })
    r = build(engine, ctx, "-t", "adds")
    assert r.returncode == 0, r.stdout + r.stderr
    assert engine.ok("run", "--rm", "adds", "cat", "/opt/pkg/readme", "/plain.txt") == "inside the archive\nplain\n"
    out = engine.ok("run", "--rm", "adds", "stat", "-c", "%U:%G %a", "/home/app/script.sh")
    assert out == "app:app 600\n", out


def test_bad_dockerfiles_fail_with_one_line_and_tag_nothing(engine, tmp_path):
    cases = {
        "FROM busybox\nFOO bar\n": "unknown instruction: FOO",
        "FROM busybox\nCOPY ../outside /x\n": "outside the build context",
        "FROM busybox\nCOPY missing.txt /x\n": "missing.txt",
        "RUN true\n": "FROM",
        "": "empty",
    }
    (tmp_path / "outside").write_text("host file\n")
    for i, (text, message) in enumerate(cases.items()):
        ctx = write(tmp_path / f"ctx{i}", {"Dockerfile": text})
        r = build(engine, ctx, "-t", f"bad{i}")
        assert r.returncode != 0, (text, r.stdout)
        assert message in r.stderr, (text, r.stderr)
        assert len([l for l in r.stderr.splitlines() if l.strip()]) == 1, r.stderr
        engine.fails("image", "inspect", f"bad{i}")
    # A failing RUN shows its output and exit code; nothing is tagged, its container is gone.
    ctx = write(tmp_path / "ctxrun", {"Dockerfile": "FROM busybox\nRUN echo about to fail && exit 3\n"})
    r = build(engine, ctx, "-t", "failing")
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "about to fail" in r.stdout
    assert "returned a non-zero code: 3" in r.stderr
    engine.fails("image", "inspect", "failing")
    # Bad flags are usage errors (125), before anything is read.
    r = engine.run("build", "--progress", "fancy", str(ctx))
    assert r.returncode == 125 and "fancy" in r.stderr
    r = engine.run("build", "-t", "UPPER:case", str(ctx))
    assert r.returncode == 125 and "UPPER:case" in r.stderr
    r = engine.run("build", str(tmp_path / "nosuchdir"))
    assert r.returncode != 0 and "nosuchdir" in r.stderr
    assert leftovers(engine) == {"containers": engine.container_ids(), "mounts": [], "build_dirs": []}
    assert engine.container_ids() == []


def test_build_from_stdin_dockerfile_and_tar_context(engine, tmp_path):
    r = engine.run("build", "-t", "fromstdin", "-", input="FROM busybox\nRUN echo piped > /piped\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert engine.ok("run", "--rm", "fromstdin", "cat", "/piped") == "piped\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "from a tarball\n"})
    tar = tmp_path / "ctx.tar"
    subprocess.run(["tar", "-C", str(ctx), "-cf", str(tar), "."], check=True)
    r = engine.run("build", "-q", "-t", "fromtar", str(tar))
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.stdout), r.stdout
    assert engine.ok("run", "--rm", "fromtar", "cat", "/f") == "from a tarball\n"
    # -f names a Dockerfile outside the context.
    (tmp_path / "Other.dockerfile").write_text("FROM busybox\nCOPY f /other\n")
    r = engine.run("build", "-f", str(tmp_path / "Other.dockerfile"), "--iidfile", str(tmp_path / "iid"), str(ctx))
    assert r.returncode == 0, r.stderr
    iid = (tmp_path / "iid").read_text()
    assert engine.ok("run", "--rm", iid, "cat", "/other") == "from a tarball\n"


def test_rmi_of_a_built_image_removes_its_intermediate_images(engine, tmp_path):
    before = set(engine.ok("images", "-a", "-q", "--no-trunc").split())
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo a > /a\nENV X=1\nRUN echo b > /b\n"})
    assert build(engine, ctx, "-t", "chain").returncode == 0
    assert len(set(engine.ok("images", "-a", "-q", "--no-trunc").split()) - before) == 3
    # The base image has children now: by ID it can't go; the chain goes with the tagged image.
    base = image_inspect(engine, "busybox")["Id"]
    r = engine.run("rmi", base)
    assert r.returncode != 0 and "dependent child images" in r.stderr, r.stderr
    out = engine.ok("rmi", "chain")
    assert out.count("Deleted: ") == 3, out
    assert set(engine.ok("images", "-a", "-q", "--no-trunc").split()) == before
    assert engine.ok("run", "--rm", "busybox", "echo", "base intact") == "base intact\n"


def test_commit_makes_an_image_of_a_containers_changes(engine):
    engine.ok("run", "--name", "src", "busybox", "sh", "-c",
              "echo committed > /data.txt && rm /etc/group && mkdir -p /srv/x && echo y > /srv/x/y")
    out = engine.ok("commit", "-a", "tester", "-m", "a message", "-c", 'CMD ["cat", "/data.txt"]', "src", "snap:v1")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), out
    assert engine.ok("run", "--rm", "snap:v1") == "committed\n"
    # Deletions are whiteouts in the new layer: /etc/group is gone in the image.
    r = engine.run("run", "--rm", "snap:v1", "cat", "/etc/group")
    assert r.returncode != 0
    assert engine.ok("run", "--rm", "snap:v1", "cat", "/srv/x/y") == "y\n"
    info = image_inspect(engine, "snap:v1")
    assert info["Author"] == "tester" and info["Comment"] == "a message"
    assert info["Parent"] == image_inspect(engine, "busybox")["Id"]
    assert len(info["RootFS"]["Layers"]) == len(image_inspect(engine, "busybox")["RootFS"]["Layers"]) + 1
    # A running container is committed paused and goes on running.
    engine.ok("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo live > /live; sleep 1000")
    engine.wait_state("live", "running")
    import time
    deadline = time.monotonic() + 10
    while engine.run("exec", "live", "cat", "/live").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.ok("commit", "live", "snap:live")
    assert engine.state("live")["Status"] == "running"
    assert engine.ok("run", "--rm", "snap:live", "cat", "/live") == "live\n"
    # Bad input: no such container, a bad change, a bad reference.
    assert "nosuch" in engine.fails("commit", "nosuch", "x").stderr
    assert "RUN" in engine.fails("commit", "-c", "RUN true", "src", "x").stderr
    engine.fails("commit", "src", "Bad:Ref")


def test_compose_builds_services_with_a_build_section(engine, tmp_path):
    proj = tmp_path / "proj"
    write(proj, {
        "web/Dockerfile": "FROM busybox\nARG MSG=unset\nRUN echo $MSG > /msg\nCMD [\"cat\", \"/msg\"]\n",
        "compose.yaml": ("services:\n"
                         "  web:\n"
                         "    build:\n"
                         "      context: ./web\n"
                         "      args:\n"
                         "        MSG: built-by-compose\n"
                         "    network_mode: none\n"
                         "  named:\n"
                         "    build: ./web\n"
                         "    image: named-image:2\n"
                         "    network_mode: none\n"),
    })
    def compose(*args):
        return engine.run("compose", "-f", str(proj / "compose.yaml"), "-p", "bp", *args, timeout=300)
    r = compose("build")
    assert r.returncode == 0, r.stdout + r.stderr
    # Docker compose's name for a built image: PROJECT-SERVICE.
    assert engine.ok("run", "--rm", "bp-web") == "built-by-compose\n"
    assert engine.ok("run", "--rm", "named-image:2") == "unset\n"
    # up builds what is missing, then runs it.
    engine.ok("rmi", "bp-web")
    r = compose("up", "-d")
    assert r.returncode == 0, r.stdout + r.stderr
    assert engine.ok("image", "inspect", "--format", "{{.Id}}", "bp-web").startswith("sha256:")
    r = compose("down")
    assert r.returncode == 0, r.stderr


def test_onbuild_triggers_and_shell(engine, tmp_path):
    base = write(tmp_path / "base", {"Dockerfile": ("FROM busybox\n"
                                                     "ONBUILD COPY marker.txt /from-child-context.txt\n"
                                                     "ONBUILD RUN echo triggered > /triggered\n")})
    assert build(engine, base, "-t", "onb-base").returncode == 0
    assert engine.run("run", "--rm", "onb-base", "cat", "/triggered").returncode != 0
    assert image_inspect(engine, "onb-base")["Config"]["OnBuild"] == [
        "COPY marker.txt /from-child-context.txt", "RUN echo triggered > /triggered"]
    child = write(tmp_path / "child", {"Dockerfile": ("FROM onb-base\n"
                                                       "SHELL [\"/bin/sh\", \"-xc\"]\n"
                                                       "RUN echo shell-form\n"),
                                        "marker.txt": "child's file\n"})
    r = build(engine, child, "-t", "onb-child")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "# Executing 2 build triggers" in r.stdout
    assert "+ echo shell-form" in r.stdout  # the SHELL's -x
    assert engine.ok("run", "--rm", "onb-child", "cat", "/triggered", "/from-child-context.txt") == \
        "triggered\nchild's file\n"
    info = image_inspect(engine, "onb-child")
    assert not info["Config"].get("OnBuild")
    assert info["Config"]["Shell"] == ["/bin/sh", "-xc"]


def test_a_killed_build_leaves_no_mount_and_the_next_build_sweeps_its_files(engine, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY big /big\nRUN sleep 30\n", "big": "x" * 100000})
    p = engine.popen("build", "-t", "killed", str(ctx), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = ""
    while "Running in" not in seen:
        line = p.stdout.readline()
        assert line, seen
        seen += line
    p.kill()
    p.wait()
    p.stdout.close()
    assert engine.mounts_under_root() == [] or all("/containers/" in m for m in engine.mounts_under_root())
    assert [d for d in (engine.root / "build").iterdir()]  # the dead build's directory is still there
    engine.ok("rm", "-f", *engine.container_ids())
    write(ctx, {"Dockerfile": "FROM busybox\nCOPY big /big\n"})
    r = build(engine, ctx, "-t", "after")
    assert r.returncode == 0, r.stderr
    assert leftovers(engine) == NOTHING_LEFT
    engine.fails("image", "inspect", "killed")
