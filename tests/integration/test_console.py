"""process.terminal: the pty master goes to --console-socket (received by tests/tools/recvtty)."""
import pytest

import berthtest as bt


@pytest.fixture
def tty_bundle(bundle):
    bundle.process["terminal"] = True
    return bundle


def test_terminal_output_via_console_socket(runtime, tty_bundle, recvtty_bin, short_tmp):
    tty_bundle.sh("echo hello from tty; tty; for fd in 0 1 2; do readlink /proc/self/fd/$fd; done")
    with bt.ConsoleReceiver(recvtty_bin, short_tmp) as console:
        cid = runtime.create(tty_bundle, extra=["--console-socket", console.path])
        runtime.start(cid)
        text = console.wait()
    assert text.splitlines() == ["hello from tty", "/dev/pts/0", "/dev/pts/0", "/dev/pts/0", "/dev/pts/0"]
    # nothing went to the runtime's own stdio
    assert runtime.output(cid) == ""
    runtime.wait_status(cid, "stopped")


def test_dev_console_with_terminal(runtime, tty_bundle, recvtty_bin, short_tmp):
    tty_bundle.sh("stat -c '%F %t:%T' /dev/console; ls /dev/pts")
    with bt.ConsoleReceiver(recvtty_bin, short_tmp) as console:
        runtime.create_start(tty_bundle, extra=["--console-socket", console.path])
        text = console.wait()
    lines = text.splitlines()
    assert lines[0] == "character special file 88:0"  # /dev/pts/0 (major 136) bound over /dev/console
    assert lines[1].split() == ["0", "ptmx"]


def test_console_size(runtime, tty_bundle, recvtty_bin, short_tmp):
    tty_bundle.process["consoleSize"] = {"height": 40, "width": 100}
    tty_bundle.set_args("stty", "size")
    with bt.ConsoleReceiver(recvtty_bin, short_tmp) as console:
        runtime.create_start(tty_bundle, extra=["--console-socket", console.path])
        text = console.wait()
    assert text.strip() == "40 100"


def test_terminal_is_controlling_tty(runtime, tty_bundle, recvtty_bin, short_tmp):
    # /dev/tty opens only for a process with a controlling terminal
    tty_bundle.sh("echo via-dev-tty > /dev/tty && echo ctty-ok")
    with bt.ConsoleReceiver(recvtty_bin, short_tmp) as console:
        runtime.create_start(tty_bundle, extra=["--console-socket", console.path])
        text = console.wait()
    assert text.splitlines() == ["via-dev-tty", "ctty-ok"]


def test_run_detached_with_console_socket(runtime, tty_bundle, recvtty_bin, short_tmp):
    tty_bundle.set_args("echo", "run-d-tty")
    with bt.ConsoleReceiver(recvtty_bin, short_tmp) as console:
        cid = runtime.new_id()
        tty_bundle.write()
        r = runtime.run(["run", "-d", "--console-socket", console.path, "--bundle", tty_bundle.path, cid])
        assert r.returncode == 0, r.stderr
        assert console.wait() == "run-d-tty\n"


def test_terminal_without_console_socket_fails(runtime, tty_bundle):
    tty_bundle.set_args("true")
    cid = runtime.new_id()
    r = runtime.create(tty_bundle, cid, check=False)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.container_dirs() == []


def test_console_socket_without_terminal_fails(runtime, bundle, recvtty_bin, short_tmp):
    bundle.set_args("true")
    with bt.ConsoleReceiver(recvtty_bin, short_tmp) as console:
        cid = runtime.new_id()
        r = runtime.create(bundle, cid, check=False, extra=["--console-socket", console.path])
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.container_dirs() == []


def test_console_socket_that_does_not_exist(runtime, tty_bundle, short_tmp):
    tty_bundle.set_args("true")
    cid = runtime.new_id()
    r = runtime.create(tty_bundle, cid, check=False, extra=["--console-socket", short_tmp / "nobody-listens.sock"])
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.container_dirs() == []
    assert bt.procs_rooted_in(tty_bundle.rootfs) == []
