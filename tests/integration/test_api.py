"""`berth serve` driven by the real docker CLI and by raw HTTP: the API is what clients see."""
from __future__ import annotations

import grp
import json
import os
import pty
import re
import resource
import select
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from apitest import ApiServer, api, engine, busybox_tar  # noqa: F401 (fixtures)


# --- system ---------------------------------------------------------------------------------

def test_ping_and_version_negotiation(api):
    status, headers, body = api.request("GET", "/_ping")
    assert status == 200 and body == b"OK"
    assert headers["api-version"] == "1.41"
    status, headers, body = api.request("HEAD", "/_ping")
    assert status == 200 and body == b""
    v = api.json("GET", "/v1.41/version")
    assert v["ApiVersion"] == "1.41" and v["MinAPIVersion"] == "1.24"
    assert api.json("GET", "/version")["ApiVersion"] == "1.41"
    status, _, body = api.request("GET", "/v1.99/version")
    assert status == 400 and b"too new" in body
    status, _, body = api.request("GET", "/v1.12/version")
    assert status == 400 and b"too old" in body
    out = api.docker_ok("version", "--format", "{{.Server.APIVersion}}")
    assert out.strip() == "1.41"


def _socket_owner_and_mode(server) -> tuple[int, int, int]:
    st = os.stat(server.sock)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_unix_socket_is_root_only_or_open_to_group_berth(engine):
    """Mode 0600 root:root without a `berth` group, 0660 root:berth with one; the group is looked
    up without loading NSS modules into the long-lived server."""
    try:
        existing = grp.getgrnam("berth").gr_gid
    except KeyError:
        existing = None
    server = ApiServer(engine)
    try:
        want = (0o600, 0, 0) if existing is None else (0o660, 0, existing)
        assert _socket_owner_and_mode(server) == want
        assert "libnss_" not in Path(f"/proc/{server.pid}/maps").read_text()
    finally:
        server.cleanup()
    if existing is not None:
        return
    subprocess.run(["groupadd", "--system", "berth"], check=True, capture_output=True)
    try:
        gid = grp.getgrnam("berth").gr_gid
        server = ApiServer(engine)
        try:
            assert _socket_owner_and_mode(server) == (0o660, 0, gid)
        finally:
            server.cleanup()
    finally:
        subprocess.run(["groupdel", "berth"], check=True, capture_output=True)


def test_unknown_path_and_method(api):
    status, _, body = api.request("GET", "/nothing/here")
    assert status == 404 and json.loads(body)["message"]
    status, _, body = api.request("PUT", "/containers/json")
    assert status == 405 and json.loads(body)["message"]
    # A build whose body holds no Dockerfile is refused before any step runs.
    status, _, body = api.request("POST", "/build", body=b"")
    assert status == 400 and "Dockerfile" in json.loads(body)["message"]


def test_info_counts_containers(api):
    api.docker_ok("create", "--name", "c1", "busybox", "true")
    info = api.json("GET", "/info")
    assert info["Containers"] == 1 and info["ContainersStopped"] == 1
    assert info["Images"] == 1
    assert api.docker_ok("info", "--format", "{{.Containers}}").strip() == "1"


# --- containers -----------------------------------------------------------------------------

def test_run_rm_streams_and_exit_codes(api):
    r = api.docker("run", "--rm", "busybox", "echo", "hello from the api")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from the api\n"
    r = api.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    # --rm: nothing left.
    assert api.docker_ok("ps", "-aq") == ""
    assert api.engine.ok("ps", "-aq") == ""


def test_run_stdin_pipe(api):
    r = api.docker("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo done", input="piped text\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "PIPED TEXT\ndone\n"


def test_detached_lifecycle_shared_with_cli(api):
    cid = api.docker_ok("run", "-d", "--name", "web", "-e", "GREETING=hi", "-w", "/tmp", "-u", "1000",
                        "busybox", "sh", "-c", "echo $GREETING from $(pwd) as $(id -u); sleep 1000").strip()
    assert len(cid) == 64
    api.engine.wait_log("web", "hi from /tmp as 1000")
    # The API and the CLI see the same engine.
    assert api.engine.ok("ps", "-q", "--no-trunc").split() == [cid]
    out = api.docker_ok("ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}}")
    assert out == f"{cid[:12]} web busybox running\n"
    assert api.docker_ok("logs", "web") == "hi from /tmp as 1000\n"
    assert api.docker_ok("inspect", "-f", "{{.State.Running}} {{.Config.WorkingDir}} {{.Config.User}}", "web") == \
        "true /tmp 1000\n"
    api.docker_ok("stop", "-t", "1", "web")
    assert api.docker_ok("inspect", "-f", "{{.State.Status}}", "web") == "exited\n"
    assert api.engine.inspect("web")["State"]["Status"] == "exited"
    api.docker_ok("start", "web")
    assert api.docker_ok("inspect", "-f", "{{.State.Status}}", "web") == "running\n"
    api.docker_ok("restart", "-t", "1", "web")
    assert api.docker_ok("inspect", "-f", "{{.State.Status}}", "web") == "running\n"
    api.docker_ok("kill", "web")
    assert api.docker_ok("wait", "web") == "137\n"
    api.docker_ok("rename", "web", "web2")
    api.docker_ok("rm", "web2")
    assert api.docker_ok("ps", "-aq") == ""


def test_logs_follow_ends_with_container(api):
    api.docker_ok("run", "-d", "--name", "counter", "busybox", "sh", "-c",
                  "for i in 1 2 3; do echo line$i; sleep 0.2; done")
    r = api.docker("logs", "-f", "counter", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "line1\nline2\nline3\n"
    r = api.docker("logs", "--tail", "1", "counter")
    assert r.stdout == "line3\n"
    r = api.docker("logs", "-t", "counter")
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[0].endswith(" line1") and lines[0][:4].isdigit()


def test_exec(api):
    api.docker_ok("run", "-d", "--name", "box", "busybox", "sleep", "1000")
    r = api.docker("exec", "box", "sh", "-c", "echo in-exec; echo oops >&2; exit 5")
    assert r.returncode == 5
    assert r.stdout == "in-exec\n" and r.stderr == "oops\n"
    r = api.docker("exec", "-i", "box", "cat", input="stdin to exec\n")
    assert r.returncode == 0 and r.stdout == "stdin to exec\n"
    r = api.docker("exec", "-e", "X=1", "-w", "/etc", "-u", "1000", "box", "sh", "-c", "echo $X $(pwd) $(id -u)")
    assert r.stdout == "1 /etc 1000\n"
    api.docker_ok("exec", "-d", "box", "sh", "-c", "echo detached > /tmp/d")
    deadline = time.monotonic() + 10
    while api.docker("exec", "box", "cat", "/tmp/d").stdout != "detached\n":
        assert time.monotonic() < deadline, "the detached exec did not run"
        time.sleep(0.05)
    r = api.docker("exec", "box", "/no/such/binary")
    assert r.returncode in (126, 127)


def _pty_session(api, args, steps, timeout=30):
    """Runs the docker CLI on a pty; steps: [(text to type or None, text to wait for)].
    Returns (everything read, exit status)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(api.engine.prefix()[0] if api.engine.prefix() else "docker",
                   [*api.engine.prefix(), "docker", *args], api.env)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        for typed, expect in steps:
            if typed is not None:
                os.write(fd, typed.encode())
            while expect.encode() not in out:
                assert time.monotonic() < deadline, f"waiting for {expect!r}; got {out!r}"
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        chunk = os.read(fd, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    out += chunk
        while True:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif time.monotonic() > deadline:
                break
            else:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    pid = 0
                    break
    finally:
        status = 0
        if pid:
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    return out.decode(errors="replace"), status


def test_run_it_through_a_pty(api):
    out, status = _pty_session(api, ["run", "-it", "--rm", "busybox", "sh"], [
        ("echo typed-$((6*7))\r", "typed-42"),
        ("tty\r", "/dev/pts/"),
        ("exit 4\r", "exit 4"),
    ])
    assert "typed-42" in out
    assert os.waitstatus_to_exitcode(status) == 4


def test_exec_it_through_a_pty(api):
    api.docker_ok("run", "-d", "--name", "box", "busybox", "sleep", "1000")
    out, status = _pty_session(api, ["exec", "-it", "box", "sh"], [
        ("echo exec-$((20+3))\r", "exec-23"),
        ("exit\r", "exit"),
    ])
    assert "exec-23" in out
    assert os.waitstatus_to_exitcode(status) == 0


# --- data -----------------------------------------------------------------------------------

def test_volumes_binds_and_tmpfs(api, tmp_path):
    api.docker_ok("volume", "create", "--label", "team=a", "shared")
    assert api.docker_ok("volume", "ls", "--format", "{{.Name}}") == "shared\n"
    assert api.docker_ok("volume", "ls", "-q", "--filter", "label=team=a") == "shared\n"
    info = json.loads(api.docker_ok("volume", "inspect", "shared"))[0]
    assert info["Name"] == "shared" and info["Labels"] == {"team": "a"} and info["Driver"] == "local"
    # Written by one container, read by another.
    api.docker_ok("run", "--rm", "-v", "shared:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert api.docker_ok("run", "--rm", "--mount", "type=volume,src=shared,dst=/v", "busybox", "cat", "/v/f") == "kept\n"
    # Bind mounts: read-write and read-only.
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    r = api.docker("run", "--rm", "-v", f"{host}:/h", "busybox", "sh", "-c", "cat /h/in.txt; echo back > /h/out.txt")
    assert r.returncode == 0 and r.stdout == "from host\n"
    assert (host / "out.txt").read_text() == "back\n"
    r = api.docker("run", "--rm", "-v", f"{host}:/h:ro", "busybox", "sh", "-c", "echo x > /h/ro.txt")
    assert r.returncode != 0 and not (host / "ro.txt").exists()
    r = api.docker("run", "--rm", "--mount", f"type=bind,src={host},dst=/b,readonly", "busybox", "cat", "/b/in.txt")
    assert r.stdout == "from host\n"
    # tmpfs, both spellings.
    r = api.docker("run", "--rm", "--tmpfs", "/scratch", "--mount", "type=tmpfs,dst=/t2", "busybox", "sh", "-c",
                   "grep -E ' /(scratch|t2) ' /proc/mounts | cut -d' ' -f3 | sort | uniq")
    assert r.stdout == "tmpfs\n"
    # --volumes-from.
    api.docker_ok("create", "--name", "holder", "-v", "shared:/data", "busybox")
    assert api.docker_ok("run", "--rm", "--volumes-from", "holder", "busybox", "cat", "/data/f") == "kept\n"
    # In use: refused, data intact.
    r = api.docker("volume", "rm", "shared")
    assert r.returncode != 0 and "in use" in r.stderr
    api.docker_ok("rm", "holder")
    assert api.docker_ok("volume", "rm", "shared") == "shared\n"
    assert api.docker_ok("volume", "ls", "-q") == ""


def test_volume_prune_keeps_named_volumes(api):
    api.docker_ok("volume", "create", "named")
    api.docker_ok("run", "--name", "anon", "-v", "/anon", "busybox", "true")
    api.docker_ok("rm", "anon")
    before = set(api.docker_ok("volume", "ls", "-q").split())
    assert "named" in before and len(before) == 2
    api.docker_ok("volume", "prune", "-f")
    assert api.docker_ok("volume", "ls", "-q").split() == ["named"]


# --- networks -------------------------------------------------------------------------------

def test_networks_dns_and_ports(api):
    api.docker_ok("network", "create", "--subnet", "10.77.0.0/24", "appnet")
    nets = api.docker_ok("network", "ls", "--format", "{{.Name}} {{.Driver}}").splitlines()
    assert "appnet bridge" in nets
    insp = json.loads(api.docker_ok("network", "inspect", "appnet"))[0]
    assert insp["IPAM"]["Config"][0]["Subnet"] == "10.77.0.0/24"
    api.docker_ok("run", "-d", "--name", "backend", "--network", "appnet", "--network-alias", "db",
                  "-p", "127.0.0.1::8080", "busybox", "sh", "-c",
                  "mkdir /www; echo backend-ok > /www/index.html; exec httpd -f -p 8080 -h /www")
    # By name and by alias, from another container on the network.
    for host in ("backend", "db"):
        r = api.docker("run", "--rm", "--network", "appnet", "busybox", "timeout", "5", "wget", "-qO-",
                       f"http://{host}:8080/")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "backend-ok\n"
    # Published port, from the test's host namespace.
    port = api.docker_ok("port", "backend", "8080/tcp").strip()
    assert port.startswith("127.0.0.1:")
    r = api.engine.host("python3", "-c",
                        f"import urllib.request;print(urllib.request.urlopen('http://{port}/', timeout=5).read().decode(), end='')")
    assert r.stdout == "backend-ok\n", r.stderr
    # connect / disconnect.
    api.docker_ok("network", "create", "side")
    api.docker_ok("run", "-d", "--name", "other", "--network", "side", "busybox", "sleep", "1000")
    api.docker_ok("network", "connect", "--alias", "o2", "appnet", "other")
    r = api.docker("exec", "other", "timeout", "5", "wget", "-qO-", "http://backend:8080/")
    assert r.stdout == "backend-ok\n"
    ips = api.docker_ok("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "other")
    assert "appnet" in ips.split()
    api.docker_ok("network", "disconnect", "appnet", "other")
    r = api.docker("exec", "other", "timeout", "3", "wget", "-qO-", "http://backend:8080/")
    assert r.returncode != 0
    # In use: refused.
    r = api.docker("network", "rm", "appnet")
    assert r.returncode != 0
    api.docker_ok("rm", "-f", "backend", "other")
    api.docker_ok("network", "rm", "appnet", "side")
    assert "appnet" not in api.docker_ok("network", "ls", "--format", "{{.Name}}").split()


# --- errors ---------------------------------------------------------------------------------

def test_errors_have_dockers_status_and_words(api):
    status, _, body = api.request("GET", "/containers/nope/json")
    assert status == 404 and json.loads(body)["message"] == "No such container: nope"
    r = api.docker("inspect", "--type", "container", "nope")
    assert r.returncode == 1 and "No such container: nope" in r.stderr
    status, _, body = api.request("POST", "/containers/create", b"{not json", {"Content-Type": "application/json"})
    assert status == 400
    status, _, body = api.request("POST", "/containers/create", {"Image": "no-such-image:1"})
    assert status == 404 and "No such image" in json.loads(body)["message"]
    # Unknown fields are ignored, as docker does.
    status, _, body = api.request("POST", "/containers/create?name=extra",
                                  {"Image": "busybox", "Cmd": ["true"], "SomethingNew": {"x": 1},
                                   "HostConfig": {"AlsoNew": True}})
    assert status == 201, body
    status, _, body = api.request("POST", "/containers/create?name=extra", {"Image": "busybox"})
    assert status == 409 and "already in use" in json.loads(body)["message"]
    api.docker_ok("run", "-d", "--name", "busy", "busybox", "sleep", "1000")
    r = api.docker("rm", "busy")
    assert r.returncode != 0 and "cannot remove" in r.stderr.lower() or "running" in r.stderr.lower()
    status, _, _ = api.request("DELETE", "/containers/busy")
    assert status == 409
    status, _, _ = api.request("POST", "/containers/busy/kill?signal=NOPE")
    assert status == 400
    # A bad bind leaves nothing behind.
    before = api.engine.snapshot()
    r = api.docker("run", "--rm", "--mount", "type=bind,src=/definitely/not/here,dst=/x", "busybox", "true")
    assert r.returncode == 125
    after = api.engine.snapshot()
    assert before == after


def pings_answered_at_once(api, count: int) -> int:
    """Opens count connections, then sends a ping on each: how many got "200 OK"."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(api.sock))
            socks.append(s)
        for s in socks:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answered = 0
        for s in socks:
            s.settimeout(30)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            answered += data.startswith(b"HTTP/1.1 200") and data.endswith(b"OK")
        return answered
    finally:
        for s in socks:
            s.close()


def test_hostile_requests_keep_the_server_serving(api):
    api.docker_ok("ps")  # the stores' database files are open from the first request on
    before = api.fd_count()
    # Malformed request lines, a huge header, an oversized body, a bad chunked body.
    assert b" 400 " in api.raw(b"NOT A REQUEST\r\n\r\n")[:20]
    assert api.raw(b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")[:12] in (
        b"HTTP/1.1 431", b"HTTP/1.1 400")
    resp = api.raw(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{")
    assert resp.startswith(b"HTTP/1.1 413")
    resp = api.raw(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert resp.startswith(b"HTTP/1.1 400")
    assert api.raw(b"GET /containers/%zz/json HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400")
    # Clients that vanish mid-request and mid-stream.
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(api.sock))
        s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Ima")
        s.close()
    api.docker_ok("run", "-d", "--name", "talker", "busybox", "sh", "-c", "while true; do echo x; sleep 0.1; done")
    for _ in range(10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(api.sock))
        s.sendall(b"GET /containers/talker/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(100)
        s.close()
    # Many connections at once (the 1000; this process may need a higher soft fd limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1200, hard), hard))
    count = min(1000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)
    assert pings_answered_at_once(api, count) == count
    api.docker_ok("rm", "-f", "talker")
    # Still serving, and no fds left behind once the connections are gone.
    assert api.json("GET", "/version")["ApiVersion"] == "1.41"
    deadline = time.monotonic() + 10
    while api.fd_count() > before:
        assert time.monotonic() < deadline, f"fds: {before} before, {api.fd_count()} after"
        time.sleep(0.1)


def test_restarting_the_server_leaves_containers_running(api):
    api.docker_ok("run", "-d", "--name", "survivor", "busybox", "sleep", "1000")
    pid = api.engine.inspect("survivor")["State"]["Pid"]
    api.stop()
    api.start()
    assert api.docker_ok("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "survivor") == f"running {pid}\n"
    r = api.docker("exec", "survivor", "echo", "still here")
    assert r.stdout == "still here\n"


def test_update_resources_and_restart_policy(api):
    api.docker_ok("run", "-d", "--name", "upd", "--memory", "64m", "busybox", "sleep", "1000")
    pid = api.engine.inspect("upd")["State"]["Pid"]
    r = api.docker("update", "--memory", "80m", "--memory-swap", "200m", "--pids-limit", "30",
                   "--restart", "unless-stopped", "upd")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "upd\n"
    hc = json.loads(api.docker_ok("inspect", "-f", "{{json .HostConfig}}", "upd"))
    assert hc["Memory"] == 80 * 1024 * 1024 and hc["MemorySwap"] == 200 * 1024 * 1024
    assert hc["PidsLimit"] == 30 and hc["RestartPolicy"]["Name"] == "unless-stopped"
    with open(f"/proc/{pid}/cgroup") as f:
        pids_cgroup = [l.split(":", 2)[2].strip() for l in f if l.split(":")[1] in ("pids", "")][0]
    base = "/sys/fs/cgroup/pids" if os.path.isdir("/sys/fs/cgroup/pids") else "/sys/fs/cgroup"
    with open(f"{base}{pids_cgroup}/pids.max") as f:
        assert f.read().strip() == "30"
    # docker's refusals: status and words; nothing changed.
    status, _, body = api.request("POST", "/containers/upd/update", body=json.dumps({"Memory": 1024}).encode())
    assert status == 400 and json.loads(body)["message"] == "Minimum memory limit allowed is 6MB"
    status, _, body = api.request("POST", "/containers/upd/update", body=json.dumps({"Memory": 1 << 30}).encode())
    assert status == 409 and "update the memoryswap at the same time" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/containers/upd/update", body=json.dumps({"Memory": "lots"}).encode())
    assert status == 400 and "lots" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/containers/nosuch/update", body=b"{}")
    assert status == 404
    r = api.docker("update", "--cpus", "0.5", "--cpu-period", "5000", "upd")
    assert r.returncode == 1 and "Conflicting options" in r.stderr
    assert json.loads(api.docker_ok("inspect", "-f", "{{json .HostConfig}}", "upd")) == hc


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while len(data) >= 8:
        n = int.from_bytes(data[4:8], "big")
        out.append((data[0], data[8:8 + n]))
        data = data[8 + n:]
    assert data == b""
    return out


def test_attach_logs_replays_what_was_written(api):
    api.docker_ok("run", "--name", "said", "busybox", "sh", "-c", "echo one; echo two >&2; echo three")
    req = (b"POST /v1.41/containers/said/attach?logs=1&stream=0&stdout=1&stderr=1 HTTP/1.1\r\n"
           b"Host: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    out = api.raw(req)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    frames = _frames(body)  # stdout and stderr are two pipes: their order between them varies
    assert [f for f in frames if f[0] == 1] == [(1, b"one\n"), (1, b"three\n")]
    assert [f for f in frames if f[0] == 2] == [(2, b"two\n")]
    out = api.raw(req.replace(b"stderr=1", b"stderr=0"))
    assert _frames(out.partition(b"\r\n\r\n")[2]) == [(1, b"one\n"), (1, b"three\n")]
    # Without logs=1 a stopped container's attach sends nothing.
    out = api.raw(req.replace(b"logs=1", b"logs=0").replace(b"stream=0", b"stream=1"))
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101") and body == b""

    # A running container: its log so far, then the live stream.
    api.docker_ok("run", "-d", "--name", "talker", "busybox", "sh", "-c",
                  "echo early; while [ ! -e /go ]; do sleep 0.05; done; echo late")
    api.engine.wait_log("talker", "early")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(api.sock))
    s.sendall(req.replace(b"stream=0", b"stream=1").replace(b"/said/", b"/talker/"))
    got = b""
    while b"early" not in got:
        chunk = s.recv(65536)
        assert chunk, f"the server closed the attach after {got!r}"
        got += chunk
    api.docker_ok("exec", "talker", "touch", "/go")
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    assert _frames(got.partition(b"\r\n\r\n")[2]) == [(1, b"early\n"), (1, b"late\n")]


def test_wait_conditions(api):
    api.docker_ok("run", "-d", "--name", "waited", "busybox", "sh", "-c", "sleep 1; exit 9")
    result = {}

    def waiter():
        result["r"] = api.docker("wait", "waited", timeout=60)

    t = threading.Thread(target=waiter)
    t.start()
    t.join(60)
    assert result["r"].stdout == "9\n"
    status, _, body = api.request("POST", "/containers/waited/wait?condition=not-running")
    assert status == 200 and json.loads(body)["StatusCode"] == 9
    status, _, body = api.request("POST", "/containers/waited/wait?condition=bogus")
    assert status == 400


def test_events_top_stats_diff_df(api):
    start = int(time.time()) - 1
    api.docker_ok("run", "--rm", "--name", "evented", "busybox", "true")
    until = int(time.time()) + 1
    time.sleep(1.1)  # until must have passed for the CLI to return (docker's semantics)
    out = api.docker_ok("events", "--since", str(start), "--until", str(until), "--filter", "container=evented",
                        "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    actions = [l.split()[1] for l in out.splitlines()]
    for a in ("create", "start", "die", "destroy"):
        assert a in actions, out
    assert actions.index("create") < actions.index("start") < actions.index("die") < actions.index("destroy")
    assert all(l.startswith("container ") and l.endswith(" evented") for l in out.splitlines())

    api.docker_ok("run", "-d", "--name", "box", "busybox", "sh", "-c", "echo x > /tmp/newfile; exec sleep 1000")
    api.engine.wait_state("box", "running")
    deadline = time.monotonic() + 10
    while "A /tmp/newfile" not in api.docker_ok("diff", "box"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "C /tmp" in api.docker_ok("diff", "box").splitlines()
    top = api.docker_ok("top", "box")
    assert top.splitlines()[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    # the host's ps -ef, as dockerd runs it: a user name and a start time, the command line whole
    row = [line.split() for line in top.splitlines()[1:] if line.endswith("sleep 1000")]
    assert len(row) == 1 and row[0][0] == "root" and re.fullmatch(r"\d\d:\d\d|\w{3}\d\d", row[0][4]), top
    # ps options go to ps (docker top CONTAINER [ps OPTIONS])
    top = api.docker_ok("top", "box", "-o", "pid,comm")
    assert [line.split() for line in top.splitlines()][0] == ["PID", "COMMAND"]
    assert any(line.split()[1:] == ["sleep"] for line in top.splitlines()[1:]), top
    stats = api.docker_ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "box")
    assert stats == "box 1\n"
    df = api.docker_ok("system", "df", "--format", "{{.Type}} {{.TotalCount}}")
    assert df.splitlines()[:3] == ["Images 1", "Containers 1", "Local Volumes 0"]


def _make_certs(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=berth-test-ca")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")


def test_tcp_needs_tls_with_client_certificates(api, tmp_path):
    r = api.engine.run("serve", "-H", "tcp://127.0.0.1:23750", timeout=30)
    assert r.returncode != 0 and "without TLS" in r.stderr
    _make_certs(tmp_path)
    c = tmp_path
    proc = api.engine.popen("serve", "-H", "tcp://127.0.0.1:23751", "--tlsverify", "--tlscacert", c / "ca.pem",
                            "--tlscert", c / "server.pem", "--tlskey", c / "server-key.pem",
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        tls = ["--tlsverify", "--tlscacert", str(c / "ca.pem"), "-H", "tcp://127.0.0.1:23751"]
        client = ["--tlscert", str(c / "client.pem"), "--tlskey", str(c / "client-key.pem")]
        deadline = time.monotonic() + 30
        while True:
            r = api.docker(*tls, *client, "version", "--format", "{{.Server.APIVersion}}")
            if r.returncode == 0:
                break
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, r.stderr
            time.sleep(0.1)
        assert r.stdout == "1.41\n"
        # Attach through the TLS relay.
        r = api.docker(*tls, *client, "run", "--rm", "busybox", "sh", "-c", "echo over-tls; exit 2")
        assert r.returncode == 2 and r.stdout == "over-tls\n", r.stderr
        # Without a client certificate: nothing.
        r = api.docker(*tls, "version", "--format", "{{.Server.APIVersion}}")
        assert r.returncode != 0 and "1.41" not in r.stdout
    finally:
        proc.terminate()
        proc.wait(10)


def test_push_pull_and_auto_pull_from_a_loopback_registry(api, tmp_path):
    """docker push / pull / run of a missing image through berth serve, against docker-registry
    started in the test's network namespace (where the server and its pulls run)."""
    import registry_env as renv
    if not os.access(renv.REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry is not installed")
    storage = tmp_path / "registry"
    storage.mkdir()
    config = tmp_path / "registry.yml"
    config.write_text(json.dumps(renv._registry_config(5000, storage, None, None)))
    log = open(tmp_path / "registry.log", "wb")
    reg = subprocess.Popen([*api.engine.prefix(), renv.REGISTRY_BIN, "serve", str(config)],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while api.engine.host("python3", "-c", "import urllib.request;urllib.request.urlopen('http://127.0.0.1:5000/v2/', timeout=2)").returncode != 0:
            assert reg.poll() is None and time.monotonic() < deadline, (tmp_path / "registry.log").read_text()
            time.sleep(0.1)
        target = "127.0.0.1:5000/test/bb:1"
        api.docker_ok("tag", "busybox", target)
        out = api.docker_ok("push", target)
        assert "1: digest: sha256:" in out
        history = api.docker_ok("history", "--format", "{{.ID}}", "busybox").split()
        assert len(history) >= 1 and history[0] != "<missing>"
        api.docker_ok("rmi", target)
        assert target not in api.docker_ok("images", "--format", "{{.Repository}}:{{.Tag}}")
        api.docker_ok("pull", target)
        assert api.docker_ok("run", "--rm", target, "echo", "pulled") == "pulled\n"
        # A missing image: the CLI's create gets 404, pulls through the API, and retries.
        api.docker_ok("rmi", target)
        r = api.docker("run", "--rm", target, "echo", "auto")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "auto\n" and "Unable to find image" in r.stderr
        # An image no registry has: docker's exit status 125.
        r = api.docker("run", "--rm", "127.0.0.1:5000/test/none:1", "true")
        assert r.returncode == 125
    finally:
        reg.terminate()
        reg.wait(10)
        log.close()


def test_a_low_fd_limit_is_raised_for_clients_not_for_containers(api):
    # Started with a soft limit of 256 (and the usual hard one), the server still answers 1000
    # clients at once; the containers it starts keep the 256 it was given, as the CLI's do.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} is below 1200")
    api.stop()
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        api.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    assert pings_answered_at_once(api, 1000) == 1000
    limits = open(f"/proc/{api.pid}/limits").read()
    assert re.search(rf"Max open files\s+{hard}\s+{hard}", limits), limits
    assert api.docker_ok("run", "--rm", "busybox", "sh", "-c", "ulimit -n") == "256\n"
    assert api.docker_ok("run", "-d", "--name", "lim", "busybox", "sleep", "100")
    assert api.docker_ok("exec", "lim", "sh", "-c", "ulimit -n") == "256\n"
