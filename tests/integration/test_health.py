"""Health checks (docker's --health-* and the image's HEALTHCHECK), run by berth-shim with
`berth-runtime exec`: State.Health in inspect, the ps status suffix and --filter health=."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

import berthtest as bt
from containertest import Engine, busybox_tar, engine, import_busybox, poll  # noqa: F401
from test_shim import sanitized_build

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
FAST = ["--health-interval", "200ms"]


def run(engine: Engine, name: str, *args) -> str:
    return engine.ok("run", "-d", "--name", name, *args).strip()


def health(engine: Engine, name: str) -> dict | None:
    return engine.state(name).get("Health")


def wait_health(engine: Engine, name: str, pred, what: str, timeout: float = 30.0) -> dict:
    def check():
        h = health(engine, name)
        return h if h and pred(h) else None
    return poll(check, f"{name}: {what}", timeout)


def test_passing_check_becomes_healthy(engine):
    run(engine, "ok", *FAST, "--health-cmd", "echo hello; echo err >&2", "busybox", *LOOP)
    h = wait_health(engine, "ok", lambda h: h["Status"] == "healthy", "healthy")
    assert h["FailingStreak"] == 0
    assert 1 <= len(h["Log"]) <= 5
    entry = h["Log"][-1]
    assert entry["ExitCode"] == 0
    assert entry["Output"] == "hello\nerr\n"
    assert TIMESTAMP.match(entry["Start"]) and TIMESTAMP.match(entry["End"])
    assert entry["Start"] <= entry["End"]
    status = engine.ok("ps", "--filter", "name=ok", "--format", "{{.Status}}").strip()
    assert status.endswith("(healthy)"), status
    # the log keeps the last five results
    poll(lambda: len(health(engine, "ok")["Log"]) == 5, "five results", 30)
    time.sleep(0.6)
    assert len(health(engine, "ok")["Log"]) == 5


def test_failing_check_becomes_unhealthy(engine):
    run(engine, "bad", *FAST, "--health-retries", "2", "--health-cmd", "echo nope; exit 3", "busybox", *LOOP)
    h = wait_health(engine, "bad", lambda h: h["Status"] == "unhealthy", "unhealthy")
    assert h["FailingStreak"] >= 2
    assert all(e["ExitCode"] == 3 and e["Output"] == "nope\n" for e in h["Log"])
    status = engine.ok("ps", "--filter", "name=bad", "--format", "{{.Status}}").strip()
    assert status.endswith("(unhealthy)"), status


def test_status_is_starting_before_the_first_result(engine):
    run(engine, "slow", "--health-interval", "1h", "--health-cmd", "true", "busybox", *LOOP)
    h = wait_health(engine, "slow", lambda h: True, "a Health object")
    assert h == {"Status": "starting", "FailingStreak": 0, "Log": []}
    status = engine.ok("ps", "--filter", "name=slow", "--format", "{{.Status}}").strip()
    assert status.endswith("(health: starting)"), status


def test_failures_in_the_start_period_do_not_count(engine):
    run(engine, "sp", *FAST, "--health-start-period", "3s", "--health-start-interval", "200ms", "--health-retries",
        "1", "--health-cmd", "exit 1", "busybox", *LOOP)
    h = wait_health(engine, "sp", lambda h: len(h["Log"]) >= 2, "two results")
    started = time.monotonic()
    assert h["Status"] == "starting" and h["FailingStreak"] == 0, h
    assert all(e["ExitCode"] == 1 for e in h["Log"])
    # after the start period one failure is enough
    h = wait_health(engine, "sp", lambda h: h["Status"] == "unhealthy", "unhealthy")
    assert h["FailingStreak"] >= 1
    assert time.monotonic() - started > 0.5


def test_a_success_in_the_start_period_makes_it_healthy_then_failures_count(engine):
    # healthy while /tmp/ok exists
    run(engine, "flip", *FAST, "--health-start-period", "1h", "--health-start-interval", "200ms", "--health-retries",
        "2", "--health-cmd", "test -e /tmp/ok", "busybox", "sh", "-c",
        "trap 'exit 0' TERM; touch /tmp/ok; while :; do sleep 0.1; done")
    wait_health(engine, "flip", lambda h: h["Status"] == "healthy", "healthy")
    engine.ok("exec", "flip", "rm", "/tmp/ok")
    # no longer "starting": failures count even inside the start period
    h = wait_health(engine, "flip", lambda h: h["Status"] == "unhealthy", "unhealthy")
    assert h["FailingStreak"] >= 2


def test_a_check_past_its_timeout_fails_and_is_killed(engine):
    run(engine, "to", *FAST, "--health-timeout", "300ms", "--health-retries", "1", "--health-cmd", "sleep 7",
        "busybox", *LOOP)
    h = wait_health(engine, "to", lambda h: h["Status"] == "unhealthy", "unhealthy")
    entry = h["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms)"
    # the timed-out commands were killed, not left behind: at most the one running now
    wait_health(engine, "to", lambda h: len(h["Log"]) >= 3, "three results")
    ps = engine.ok("exec", "to", "ps")
    assert len([l for l in ps.splitlines() if "sleep 7" in l]) <= 1, ps


def test_output_is_escaped_and_truncated(engine):
    run(engine, "out", *FAST, "--health-cmd", r"""printf 'q"b\\s\ttab\001\n'; printf 'x%.0s' $(seq 5000)""",
        "busybox", *LOOP)
    h = wait_health(engine, "out", lambda h: h["Log"], "a result")
    out = h["Log"][-1]["Output"]
    assert out.startswith('q"b\\s\ttab\x01\nxxx')
    assert len(out) == 4096 + 3 and out.endswith("x...")


def test_cmd_form_and_image_healthcheck(engine, busybox_tar):
    import_busybox(engine, busybox_tar, "hc:latest", "HEALTHCHECK --interval=200ms CMD [\"sh\", \"-c\", \"echo img\"]")
    run(engine, "img", "hc:latest", *LOOP)
    h = wait_health(engine, "img", lambda h: h["Status"] == "healthy", "healthy")
    assert h["Log"][-1]["Output"] == "img\n"
    assert engine.inspect("img")["Config"]["Healthcheck"]["Test"] == ["CMD", "sh", "-c", "echo img"]
    # --no-healthcheck disables the image's
    run(engine, "off", "--no-healthcheck", "hc:latest", *LOOP)
    time.sleep(1)
    assert "Health" not in engine.state("off")
    assert engine.inspect("off")["Config"]["Healthcheck"]["Test"] == ["NONE"]


def test_no_healthcheck_no_health(engine):
    run(engine, "plain", "busybox", *LOOP)
    time.sleep(0.5)
    assert "Health" not in engine.state("plain")
    status = engine.ok("ps", "--filter", "name=plain", "--format", "{{.Status}}").strip()
    assert status.startswith("Up") and "(" not in status


def test_filter_health(engine):
    run(engine, "good", *FAST, "--health-cmd", "true", "busybox", *LOOP)
    run(engine, "sick", *FAST, "--health-retries", "1", "--health-cmd", "false", "busybox", *LOOP)
    run(engine, "wait", "--health-interval", "1h", "--health-cmd", "true", "busybox", *LOOP)
    run(engine, "none", "busybox", *LOOP)
    wait_health(engine, "good", lambda h: h["Status"] == "healthy", "healthy")
    wait_health(engine, "sick", lambda h: h["Status"] == "unhealthy", "unhealthy")

    def names(value):
        return sorted(engine.ok("ps", "--filter", f"health={value}", "--format", "{{.Names}}").split())
    assert names("healthy") == ["good"]
    assert names("unhealthy") == ["sick"]
    assert names("starting") == ["wait"]
    assert names("none") == ["none"]
    r = engine.fails("ps", "--filter", "health=bogus")
    assert "Unrecognised filter value for health: bogus" in r.stderr


def test_health_restarts_with_the_container(engine):
    run(engine, "rs", *FAST, "--health-cmd", "true", "busybox", *LOOP)
    wait_health(engine, "rs", lambda h: h["Status"] == "healthy", "healthy")
    engine.ok("stop", "rs")
    # a stopped container keeps its last health
    assert engine.state("rs")["Health"]["Status"] == "healthy"
    engine.ok("start", "rs")
    wait_health(engine, "rs", lambda h: h["Status"] == "healthy", "healthy again")


@pytest.mark.skipif(sanitized_build(), reason="ASan's shadow memory is not the shim's")
def test_shim_resident_memory_with_checks(engine):
    cid = run(engine, "mem", *FAST, "--health-cmd", "printf 'x%.0s' $(seq 6000)", "busybox", *LOOP)
    poll(lambda: len(health(engine, "mem")["Log"]) == 5, "five results", 30)
    shim_pid = json.loads((engine.root / "containers" / cid / "status.json").read_text())["shim_pid"]
    rss_kb = int(bt.proc_status_field(Path(f"/proc/{shim_pid}/status").read_text(), "VmRSS").split()[0])
    print(f"berth-shim VmRSS with health checks: {rss_kb} kB")
    assert rss_kb < 1536, f"berth-shim uses {rss_kb} kB"
