"""Bridge networking, written to docker 28's behaviour: the default bridge, user networks with name
resolution (the per-network DNS responder on the gateway), aliases, connect/disconnect, isolation,
--internal, published ports (nftables DNAT, source address kept), inspect, the network commands,
bad input that creates nothing, crash safety of every network step, and teardown when a container
ends by itself. Everything runs in the test's own network namespace: no traffic leaves the machine."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from containertest import Engine, busybox_tar, engine, import_busybox, poll  # noqa: F401

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
BODY = "backend bytes: \x01\x02 <&> 42\n"
DNSSTUB = Path(__file__).with_name("dnsstub.py")
LOCAL_ADDR = "10.99.0.1"

# A host-side client (run in the test's namespace): PROTO HOST PORT SRC PAYLOAD; prints what came back.
CLIENT = r"""
import socket, sys
proto, host, port, src, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(3)
if src:
    s.bind((src, 0))
s.connect((host, port))
if proto == "udp":
    s.send(payload.encode())
    sys.stdout.buffer.write(s.recv(65536))
else:
    s.sendall(payload.encode())
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    sys.stdout.buffer.write(data)
"""
# A host process holding a TCP port (HOST PORT) until killed; prints "ready".
HOLD = r"""
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
time.sleep(3600)
"""
# A host-side http server (HOST PORT) answering every request with "host-side\n"; prints "ready".
HOST_WEB = r"""
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\n\r\nhost-side\n")
    c.close()
"""

# Run inside a container's network namespace (busybox here has no tcpsvd/udpsvd and no nc -u):
# on PORT, TCP answers the client's address, UDP echoes each datagram upper-cased; prints "ready".
PEER_SERVER = r"""
import select, socket, sys
port = int(sys.argv[1])
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", port))
t.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", port))
print("ready", flush=True)
while True:
    for s in select.select([t, u], [], [])[0]:
        if s is t:
            c, peer = t.accept()
            c.sendall(peer[0].encode() + b"\n")
            c.close()
        else:
            data, peer = u.recvfrom(65536)
            u.sendto(data.upper(), peer)
"""

# ---------------------------------------------------------------- helpers


def killed(r) -> bool:
    return r.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)


def running(engine: Engine, name: str, *args, cmd=LOOP) -> str:
    return engine.ok("run", "-d", "--name", name, *args, "busybox", *cmd).strip()


def server(engine: Engine, name: str, *args, body: str = BODY, port: int = 8080) -> str:
    """A container serving /file (body) over http on `port`."""
    script = f"mkdir -p /www && printf '%s' \"$BODY\" > /www/file && exec httpd -f -p {port} -h /www"
    return running(engine, name, "-e", f"BODY={body}", *args, cmd=["sh", "-c", script])


def ex(engine: Engine, name: str, *cmd) -> subprocess.CompletedProcess:
    return engine.run("exec", name, *cmd)


def wget(engine: Engine, name: str, url: str) -> subprocess.CompletedProcess:
    # Not wget -T: busybox 1.35's wget segfaults with it; timeout(1) bounds a dropped connection.
    return ex(engine, name, "timeout", "3", "wget", "-q", "-O", "-", url)


def fetch_ok(engine: Engine, name: str, url: str) -> str:
    """wget from a container, retried until the server answers."""
    return poll(lambda: (r := wget(engine, name, url)).returncode == 0 and r.stdout, f"{name} fetching {url}")


def lookup(engine: Engine, name: str, host: str) -> subprocess.CompletedProcess:
    return ex(engine, name, "nslookup", "-type=a", host)


def addresses(nslookup_out: str) -> list[str]:
    """The answer's addresses (the "Address:" lines after the server's)."""
    return sorted(re.findall(r"^Address: (\d+\.\d+\.\d+\.\d+)$", nslookup_out, re.M))


def client(engine: Engine, proto: str, host: str, port: int, src: str = "", payload: str = ""):
    return engine.host(sys.executable, "-c", CLIENT, proto, host, port, src, payload, timeout=30)


def host_http(engine: Engine, host: str, port: int, path: str = "/file", src: str = "") -> str:
    """GET path from the host side, retried until it answers; the body (text mode: CRLF read as LF)."""
    def get():
        r = client(engine, "tcp", host, port, src, f"GET {path} HTTP/1.0\r\n\r\n")
        return r.returncode == 0 and " 200 " in r.stdout.split("\n", 1)[0] and r.stdout
    return poll(get, f"http://{host}:{port}{path} from the host").split("\n\n", 1)[1]


def host_proc(engine: Engine, *args) -> subprocess.Popen:
    """A host-side process in the test's namespace; waits for its first line ("ready")."""
    p = subprocess.Popen([*engine.prefix(), *map(str, args)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "ready", f"{args} did not start: {line!r}"
    return p


def stop_proc(p: subprocess.Popen):
    p.kill()
    p.wait()


def add_local_address(engine: Engine):
    """LOCAL_ADDR/24 as a second local address of the test's host (a veth pair: no dummy module here)."""
    engine.host("ip", "link", "add", "tv0", "type", "veth", "peer", "name", "tv1", check=True)
    engine.host("ip", "addr", "add", f"{LOCAL_ADDR}/24", "dev", "tv0", check=True)
    engine.host("ip", "link", "set", "tv1", "up", check=True)
    engine.host("ip", "link", "set", "tv0", "up", check=True)


def net(engine: Engine, name: str) -> dict:
    return json.loads(engine.ok("network", "inspect", name))[0]


def ip_of(engine: Engine, ctr: str, network: str) -> str:
    return engine.inspect(ctr)["NetworkSettings"]["Networks"][network]["IPAddress"]


def links(engine: Engine) -> list[str]:
    out = engine.host("ip", "-o", "link", "show", check=True).stdout
    return sorted(l.split(":")[1].strip().split("@")[0] for l in out.splitlines())


def veths(engine: Engine) -> list[str]:
    return [l for l in links(engine) if l.startswith("bv")]


def network_names(engine: Engine) -> list[str]:
    return sorted(engine.ok("network", "ls", "--format", "{{.Name}}").split())


def nft_table(engine: Engine) -> str:
    return engine.host("nft", "list", "table", "ip", "berth").stdout


def publishes_port(engine: Engine, port: int) -> bool:
    """Whether berth's table maps `port`: a whole number, not digits inside a bridge's name (br-37fa1808008f)."""
    return re.search(rf"(?<![\w-]){port}(?![\w-])", nft_table(engine)) is not None


def assert_no_endpoints(engine: Engine):
    """No veth, no netns file, no published port left; one bridge per user network, no other."""
    assert veths(engine) == []
    nsdir = engine.run_dir / "netns"
    assert not nsdir.exists() or list(nsdir.iterdir()) == []
    assert not publishes_port(engine, 18080)
    user = [n for n in json.loads(engine.ok("network", "inspect", *network_names(engine)))
            if n["Name"] not in ("bridge", "host", "none")]
    assert sorted(l for l in links(engine) if l.startswith("br-")) == sorted("br-" + n["Id"][:12] for n in user)


def refused(r, code: int, *names: str):
    assert r.returncode == code, f"exit {r.returncode}, want {code}: {r.stdout}{r.stderr}"
    for n in names:
        assert n in r.stderr, f"{n!r} not named in: {r.stderr!r}"


# ---------------------------------------------------------------- the default bridge


def test_default_bridge(engine):
    assert network_names(engine) == ["bridge", "host", "none"]
    ipam = net(engine, "bridge")["IPAM"]["Config"][0]
    subnet, gateway = ipam["Subnet"], ipam["Gateway"]
    out = engine.ok("run", "--rm", "--hostname", "box1", "--add-host", "db.local:10.1.2.3", "busybox", "sh", "-c",
                    "ip -4 -o addr show eth0; ip route; cat /etc/hosts")
    ip, prefix = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", out).groups()
    net_addr, net_len = subnet.split("/")
    assert prefix == net_len
    mask = (0xFFFFFFFF << (32 - int(net_len))) & 0xFFFFFFFF
    as_int = lambda a: int.from_bytes(bytes(map(int, a.split("."))), "big")  # noqa: E731
    assert as_int(ip) & mask == as_int(net_addr) and ip != gateway
    assert f"default via {gateway} dev eth0" in out
    assert f"{ip}\tbox1" in out.splitlines()
    assert "10.1.2.3\tdb.local" in out.splitlines()
    # docker's default bridge: no name resolution between containers.
    running(engine, "other")
    running(engine, "asker")
    assert "other" not in ex(engine, "asker", "cat", "/etc/hosts").stdout
    for cmd in (["nslookup", "-type=a", "other"], ["nslookup", "-type=a", "other", gateway],
                ["ping", "-c", "1", "-W", "1", "other"]):
        r = ex(engine, "asker", "timeout", "3", *cmd)
        assert r.returncode != 0 and ip_of(engine, "other", "bridge") not in r.stdout, r.stdout
    # ...but plain IP connectivity between them (icc).
    assert ex(engine, "asker", "ping", "-c", "1", "-W", "5", ip_of(engine, "other", "bridge")).returncode == 0


# ---------------------------------------------------------------- user networks and names


def test_frontend_backend_story(engine):
    engine.ok("network", "create", "appnet")
    engine.ok("network", "create", "othernet")
    server(engine, "backend", "--network", "appnet", "--network-alias", "api")
    running(engine, "frontend", "--network", "appnet")
    assert fetch_ok(engine, "frontend", "http://backend:8080/file") == BODY
    assert fetch_ok(engine, "frontend", "http://api:8080/file") == BODY
    backend_ip = ip_of(engine, "backend", "appnet")
    # Another network: no name, no route to the IP.
    running(engine, "stranger", "--network", "othernet")
    assert lookup(engine, "stranger", "backend").returncode != 0
    assert wget(engine, "stranger", "http://backend:8080/file").returncode != 0
    assert wget(engine, "stranger", f"http://{backend_ip}:8080/file").returncode != 0
    # Connected to othernet too: reachable by name there.
    engine.ok("network", "connect", "othernet", "backend")
    assert fetch_ok(engine, "stranger", "http://backend:8080/file") == BODY
    other_ip = ip_of(engine, "backend", "othernet")
    assert addresses(lookup(engine, "stranger", "backend").stdout) == [other_ip]
    assert fetch_ok(engine, "frontend", "http://backend:8080/file") == BODY
    engine.ok("network", "disconnect", "othernet", "backend")
    assert "othernet" not in engine.inspect("backend")["NetworkSettings"]["Networks"]
    assert lookup(engine, "stranger", "backend").returncode != 0
    assert wget(engine, "stranger", f"http://{other_ip}:8080/file").returncode != 0
    assert wget(engine, "stranger", f"http://{backend_ip}:8080/file").returncode != 0
    assert fetch_ok(engine, "frontend", "http://api:8080/file") == BODY


def test_default_bridge_container_connected_to_a_user_network_resolves_names(engine):
    """As docker: connecting a default-bridge container to a user network gives it the network's
    DNS (its resolv.conf switches to the responder), and disconnecting takes it away again."""
    engine.ok("network", "create", "appnet")
    server(engine, "backend", "--network", "appnet")
    running(engine, "plain")  # the default bridge: no name resolution
    assert lookup(engine, "plain", "backend").returncode != 0
    engine.ok("network", "connect", "appnet", "plain")
    assert fetch_ok(engine, "plain", "http://backend:8080/file") == BODY
    engine.ok("network", "disconnect", "appnet", "plain")
    assert lookup(engine, "plain", "backend").returncode != 0


def test_alias_round_robin(engine):
    engine.ok("network", "create", "rr")
    running(engine, "w1", "--network", "rr", "--network-alias", "workers")
    running(engine, "w2", "--network", "rr", "--network-alias", "workers")
    running(engine, "asker", "--network", "rr")
    r = lookup(engine, "asker", "workers")
    assert r.returncode == 0, r.stdout + r.stderr
    assert addresses(r.stdout) == sorted([ip_of(engine, "w1", "rr"), ip_of(engine, "w2", "rr")])
    # Names and 12-char short IDs resolve too.
    w1 = engine.inspect("w1")["Id"]
    assert addresses(lookup(engine, "asker", w1[:12]).stdout) == [ip_of(engine, "w1", "rr")]
    assert addresses(lookup(engine, "asker", "w2").stdout) == [ip_of(engine, "w2", "rr")]


def test_isolation_and_internal(engine):
    add_local_address(engine)
    web = host_proc(engine, sys.executable, "-c", HOST_WEB, LOCAL_ADDR, 18099)
    try:
        engine.ok("network", "create", "--subnet", "10.60.0.0/24", "n")
        engine.ok("network", "create", "--subnet", "10.62.0.0/24", "m")
        engine.ok("network", "create", "--internal", "--subnet", "10.61.0.0/24", "inner")
        server(engine, "on-m", "--network", "m")
        running(engine, "on-n", "--network", "n")
        running(engine, "also-m", "--network", "m")
        m_ip = ip_of(engine, "on-m", "m")
        assert fetch_ok(engine, "also-m", f"http://{m_ip}:8080/file") == BODY
        assert wget(engine, "on-n", f"http://{m_ip}:8080/file").returncode != 0
        # A normal network reaches the host's address; an internal one has no default route.
        assert fetch_ok(engine, "on-n", f"http://{LOCAL_ADDR}:18099/") == "host-side\n"
        server(engine, "in1", "--network", "inner")
        running(engine, "in2", "--network", "inner")
        routes = ex(engine, "in2", "ip", "route").stdout
        assert "default" not in routes and "10.61.0.0/24" in routes
        assert wget(engine, "in2", f"http://{LOCAL_ADDR}:18099/").returncode != 0
        assert fetch_ok(engine, "in2", "http://in1:8080/file") == BODY
        assert fetch_ok(engine, "in2", f"http://{ip_of(engine, 'in1', 'inner')}:8080/file") == BODY
        masq = engine.host("nft", "list", "set", "ip", "berth", "masq_subnets", check=True).stdout
        assert "10.60.0.0/24" in masq and "10.62.0.0/24" in masq
        assert "10.61.0.0/24" not in masq
    finally:
        stop_proc(web)


def mac(engine: Engine, link: str) -> str:
    return re.search(r"link/ether (\S+)", engine.host("ip", "link", "show", link, check=True).stdout).group(1)


def test_gateway_mac_is_stable(engine):
    """The bridge keeps one MAC (docker sets it at creation): else it follows the lowest MAC of its
    ports, and when that container goes, the others' ARP entry for the gateway goes stale."""
    engine.ok("network", "create", "macs")
    bridge = "br-" + net(engine, "macs")["Id"][:12]
    gw = net(engine, "macs")["IPAM"]["Config"][0]["Gateway"]
    created = mac(engine, bridge)
    running(engine, "stays", "--network", "macs")
    for i in range(3):
        running(engine, f"goes{i}", "--network", "macs")
        assert mac(engine, bridge) == created
        assert ex(engine, "stays", "ping", "-c", "1", "-W", "2", gw).returncode == 0
        engine.ok("stop", f"goes{i}")
        assert mac(engine, bridge) == created
        assert ex(engine, "stays", "ping", "-c", "1", "-W", "2", gw).returncode == 0


def test_dns_forwarding_rename_and_stop(engine):
    stub = host_proc(engine, sys.executable, DNSSTUB, "--listen", "127.0.0.1", "--port", "53",
                     "--answer", "ext.example=192.0.2.7")
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(l.strip() for l in stub.stdout), daemon=True)
    reader.start()
    try:
        engine.ok("network", "create", "dn")
        running(engine, "asker", "--network", "dn", "--dns", "127.0.0.1")
        gw = net(engine, "dn")["IPAM"]["Config"][0]["Gateway"]
        resolv = ex(engine, "asker", "cat", "/etc/resolv.conf").stdout
        assert [l for l in resolv.splitlines() if l.startswith("nameserver")] == [f"nameserver {gw}"]
        r = lookup(engine, "asker", "ext.example")
        assert r.returncode == 0, r.stdout + r.stderr
        assert addresses(r.stdout) == ["192.0.2.7"]
        poll(lambda: "ext.example" in seen, "the stub to log ext.example")
        r = lookup(engine, "asker", "nosuchname")
        assert r.returncode != 0 and "NXDOMAIN" in r.stdout + r.stderr
        # Names update at once: rename, stop.
        running(engine, "c1", "--network", "dn")
        c1_ip = ip_of(engine, "c1", "dn")
        assert addresses(lookup(engine, "asker", "c1").stdout) == [c1_ip]
        engine.ok("rename", "c1", "renamed")
        assert addresses(lookup(engine, "asker", "renamed").stdout) == [c1_ip]
        r = lookup(engine, "asker", "c1")
        assert r.returncode != 0 and "NXDOMAIN" in r.stdout + r.stderr
        engine.ok("stop", "renamed")
        r = lookup(engine, "asker", "renamed")
        assert r.returncode != 0 and "NXDOMAIN" in r.stdout + r.stderr
        # Single-label names are never forwarded.
        assert "nosuchname" not in seen and "c1" not in seen and "renamed" not in seen
    finally:
        stop_proc(stub)


def test_dns_upstream_from_network_option(engine):
    stub = host_proc(engine, sys.executable, DNSSTUB, "--listen", "127.0.0.1", "--port", "5353",
                     "--answer", "opt.example=192.0.2.9")
    try:
        engine.ok("network", "create", "-o", "com.berth.dns.upstream=127.0.0.1:5353", "up")
        running(engine, "asker", "--network", "up")
        r = lookup(engine, "asker", "opt.example")
        assert r.returncode == 0, r.stdout + r.stderr
        assert addresses(r.stdout) == ["192.0.2.9"]
    finally:
        stop_proc(stub)
    assert set(stub.stdout.read().split()) == {"opt.example"}


# ---------------------------------------------------------------- published ports


def test_published_ports(engine):
    add_local_address(engine)
    engine.ok("network", "create", "pub")
    server(engine, "web", "--network", "pub", "-p", "18080:8080")
    assert host_http(engine, "127.0.0.1", 18080) == BODY
    assert host_http(engine, LOCAL_ADDR, 18080) == BODY
    assert engine.ok("port", "web") == "8080/tcp -> 0.0.0.0:18080\n"
    assert publishes_port(engine, 18080)
    assert "0.0.0.0:18080->8080/tcp" in engine.ok("ps", "--format", "{{.Ports}}")
    running(engine, "peer", "--network", "pub", "-p", "18081:9000", "-p", "18082:9000/udp")
    assert sorted(engine.ok("port", "peer").splitlines()) == ["9000/tcp -> 0.0.0.0:18081",
                                                              "9000/udp -> 0.0.0.0:18082"]
    sandbox = engine.inspect("peer")["NetworkSettings"]["SandboxKey"]
    srv = subprocess.Popen(["nsenter", f"--net={sandbox}", sys.executable, "-c", PEER_SERVER, "9000"],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline() == "ready\n"
        # The client's own address reaches the container: no masquerade, no proxy.
        assert client(engine, "tcp", LOCAL_ADDR, 18081, LOCAL_ADDR).stdout == f"{LOCAL_ADDR}\n"
        # UDP: the datagram goes in and the reply comes back, byte for byte.
        r = client(engine, "udp", "127.0.0.1", 18082, "", "ping me")
        assert (r.returncode, r.stdout) == (0, "PING ME"), r.stderr
        r = client(engine, "udp", LOCAL_ADDR, 18082, LOCAL_ADDR, "again")
        assert (r.returncode, r.stdout) == (0, "AGAIN"), r.stderr
    finally:
        stop_proc(srv)


def test_host_port_conflicts(engine):
    running(engine, "first", "-p", "18080:80")
    before = engine.snapshot()
    r = engine.run("run", "-d", "--name", "second", "-p", "18080:80", "busybox", *LOOP)
    refused(r, 125, "18080")
    assert engine.snapshot() == before
    holder = host_proc(engine, sys.executable, "-c", HOLD, "0.0.0.0", 18090)
    try:
        r = engine.run("run", "-d", "--name", "third", "-p", "18090:80", "busybox", *LOOP)
        refused(r, 125, "18090")
        assert engine.snapshot() == before
    finally:
        stop_proc(holder)
    # After stop the port is free for another container.
    engine.ok("stop", "first")
    server(engine, "second", "-p", "18080:8080", body="second\n")
    assert host_http(engine, "127.0.0.1", 18080) == "second\n"


def test_publish_all(engine, busybox_tar):
    import_busybox(engine, busybox_tar, "busybox:expose", "EXPOSE 8080")
    script = "mkdir -p /www && echo exposed > /www/file && exec httpd -f -p 8080 -h /www"
    engine.ok("run", "-d", "--name", "pa", "-P", "busybox:expose", "sh", "-c", script)
    out = engine.ok("port", "pa")
    m = re.fullmatch(r"8080/tcp -> 0\.0\.0\.0:(\d+)\n", out)
    assert m, out
    port = int(m.group(1))
    assert engine.ok("port", "pa", "8080/tcp") == f"0.0.0.0:{port}\n"
    assert host_http(engine, "127.0.0.1", port) == "exposed\n"
    assert engine.inspect("pa")["NetworkSettings"]["Ports"] == {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}


# ---------------------------------------------------------------- inspect and the network commands


def test_inspect(engine):
    engine.ok("network", "create", "insp")
    cid = running(engine, "c1", "--network", "insp", "--network-alias", "svc", "-p", "18080:80",
                  "-p", "127.0.0.1:18081:81/udp")
    ns = engine.inspect("c1")["NetworkSettings"]
    ep = ns["Networks"]["insp"]
    addr = ex(engine, "c1", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    ip, prefix = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", addr).groups()
    assert (ep["IPAddress"], ep["IPPrefixLen"]) == (ip, int(prefix))
    assert ep["MacAddress"] == ex(engine, "c1", "cat", "/sys/class/net/eth0/address").stdout.strip()
    info = net(engine, "insp")
    assert ep["Gateway"] == info["IPAM"]["Config"][0]["Gateway"]
    assert ep["NetworkID"] == info["Id"]
    assert ep["Aliases"] == ["svc"]
    assert sorted(ep["DNSNames"]) == sorted(["c1", "svc", cid[:12]])
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}],
                           "81/udp": [{"HostIp": "127.0.0.1", "HostPort": "18081"}]}
    ctr = info["Containers"][cid]
    assert ctr["Name"] == "c1"
    assert ctr["IPv4Address"] == f"{ip}/{prefix}"
    assert ctr["MacAddress"] == ep["MacAddress"]


def test_network_create_options_and_ls(engine):
    engine.ok("network", "create", "--subnet", "10.50.0.0/24", "--gateway", "10.50.0.254",
              "--ip-range", "10.50.0.128/25", "--label", "team=blue", "--label", "tier", "--internal", "custom")
    engine.ok("network", "create", "plain")
    info = net(engine, "custom")
    assert info["IPAM"]["Config"] == [{"Subnet": "10.50.0.0/24", "IPRange": "10.50.0.128/25", "Gateway": "10.50.0.254"}]
    assert info["Labels"] == {"team": "blue", "tier": ""}
    assert info["Internal"] is True and info["Driver"] == "bridge"
    running(engine, "dyn", "--network", "custom")
    last = int(ip_of(engine, "dyn", "custom").split(".")[3])
    assert ip_of(engine, "dyn", "custom").startswith("10.50.0.") and 128 <= last < 254
    running(engine, "static", "--network", "custom", "--ip", "10.50.0.200")
    assert ip_of(engine, "static", "custom") == "10.50.0.200"
    assert "inet 10.50.0.200/24" in ex(engine, "static", "ip", "-4", "addr", "show", "eth0").stdout
    ls = lambda *a: sorted(engine.ok("network", "ls", "--format", "{{.Name}}", *a).split())  # noqa: E731
    assert ls() == ["bridge", "custom", "host", "none", "plain"]
    assert ls("-f", "name=cust") == ["custom"]
    assert ls("-f", "driver=bridge") == ["bridge", "custom", "plain"]
    assert ls("-f", "label=team=blue") == ["custom"]
    assert ls("-f", "label=tier") == ["custom"]
    assert ls("-f", "type=custom") == ["custom", "plain"]
    assert ls("-f", "type=builtin") == ["bridge", "host", "none"]
    ids = engine.ok("network", "ls", "-q", "-f", "name=plain").split()
    assert ids == [net(engine, "plain")["Id"][:12]]


def test_network_rm_and_prune(engine):
    engine.ok("network", "create", "busy")
    engine.ok("network", "create", "idle1")
    engine.ok("network", "create", "idle2")
    running(engine, "user", "--network", "busy")
    r = engine.run("network", "rm", "busy")
    refused(r, 1, "busy")
    assert "busy" in network_names(engine)
    for builtin in ("bridge", "host", "none"):
        refused(engine.run("network", "rm", builtin), 1, builtin)
    assert engine.ok("network", "rm", "idle1") == "idle1\n"
    out = engine.ok("network", "prune", "-f")
    assert "idle2" in out and "busy" not in out
    assert network_names(engine) == ["bridge", "busy", "host", "none"]
    engine.ok("rm", "-f", "user")
    engine.ok("network", "rm", "busy")
    assert network_names(engine) == ["bridge", "host", "none"]
    assert [l for l in links(engine) if l.startswith("br-")] == []


# ---------------------------------------------------------------- bad input creates nothing


def state(engine: Engine) -> tuple:
    return engine.snapshot(), sorted(engine.ok("network", "ls", "-q").split()), links(engine), nft_table(engine)


BAD_CREATES = [
    (["--subnet", "10.0.0.1/24", "x"], "10.0.0.1/24"),
    (["--subnet", "300.1.1.0/24", "x"], "300.1.1.0/24"),
    (["--subnet", "10.40.0.0/24", "--gateway", "10.41.0.1", "x"], "10.41.0.1"),
    (["--subnet", "10.30.1.0/24", "x"], "taken"),  # overlaps taken's 10.30.0.0/16: named like docker's
    (["taken"], "taken"),
    (["bad/name"], "bad/name"),
]


@pytest.mark.parametrize("args,named", BAD_CREATES, ids=["host-bits", "bad-octet", "gateway-outside", "overlap",
                                                          "duplicate", "bad-name"])
def test_bad_network_create(engine, args, named):
    engine.ok("network", "create", "--subnet", "10.30.0.0/16", "taken")
    before = state(engine)
    refused(engine.run("network", "create", *args), 1, named)
    assert state(engine) == before


BAD_RUNS = [
    (["--network", "doesnotexist"], "doesnotexist"),
    (["--network", "sub", "--ip", "10.9.9.9"], "10.9.9.9"),
    (["--ip", "172.17.0.9"], "user defined networks"),  # docker: "...supported on user defined networks only"
    (["-p", "70000:80"], "70000"),
]


@pytest.mark.parametrize("args,named", BAD_RUNS, ids=["no-such-network", "ip-outside-subnet", "ip-on-default-bridge",
                                                       "port-out-of-range"])
def test_bad_run(engine, args, named):
    engine.ok("network", "create", "--subnet", "10.31.0.0/24", "sub")
    before = state(engine)
    refused(engine.run("run", "-d", "--name", "bad", *args, "busybox", *LOOP), 125, named)
    assert state(engine) == before


# ---------------------------------------------------------------- crash safety and teardown


@pytest.mark.parametrize("step", ["network-create.row", "network-create.bridge"])
def test_crash_in_network_create(engine, step):
    r = engine.run("network", "create", "half", env={"BERTH_FAULT": step})
    assert killed(r), f"BERTH_FAULT={step}: exit {r.returncode}: {r.stderr}"
    engine.ok("ps", "-a")
    assert network_names(engine) == ["bridge", "host", "none"]
    assert_no_endpoints(engine)
    engine.ok("network", "create", "half")
    running(engine, "c0", "--network", "half")
    assert len(veths(engine)) == 1


@pytest.mark.parametrize("step", ["network-rm.mark", "network-rm.bridge"])
def test_crash_in_network_rm(engine, step):
    engine.ok("network", "create", "going")
    r = engine.run("network", "rm", "going", env={"BERTH_FAULT": step})
    assert killed(r), f"BERTH_FAULT={step}: exit {r.returncode}: {r.stderr}"
    engine.ok("ps", "-a")
    assert network_names(engine) == ["bridge", "host", "none"]
    assert_no_endpoints(engine)
    engine.ok("network", "create", "going")
    engine.ok("network", "rm", "going")
    assert_no_endpoints(engine)


WEB = ["-p", "18080:8080", "-e", f"BODY={BODY}", "busybox", "sh", "-c",
       "mkdir -p /www && printf '%s' \"$BODY\" > /www/file && exec httpd -f -p 8080 -h /www"]


@pytest.mark.parametrize("step", ["net-setup.rows", "net-setup.veth", "net-setup.rules"])
def test_crash_in_network_setup(engine, step):
    engine.ok("network", "create", "cn")
    r = engine.run("run", "-d", "--name", "c1", "--network", "cn", *WEB, env={"BERTH_FAULT": step})
    assert killed(r), f"BERTH_FAULT={step}: exit {r.returncode}: {r.stderr}"
    engine.ok("ps", "-a")
    assert_no_endpoints(engine)
    assert net(engine, "cn")["Containers"] == {}
    # Redo: the container (if the crash left it) starts; else run it again.
    if "c1" in engine.ok("ps", "-a", "--format", "{{.Names}}").split():
        engine.ok("start", "c1")
    else:
        engine.ok("run", "-d", "--name", "c1", "--network", "cn", *WEB)
    assert host_http(engine, "127.0.0.1", 18080) == BODY
    engine.ok("rm", "-f", "c1")
    assert_no_endpoints(engine)


@pytest.mark.parametrize("step", ["net-teardown.rules", "net-teardown.netns"])
def test_crash_in_network_teardown(engine, step):
    engine.ok("network", "create", "cn")
    engine.ok("run", "-d", "--name", "c1", "--network", "cn", *WEB)
    assert host_http(engine, "127.0.0.1", 18080) == BODY
    r = engine.run("rm", "-f", "c1", env={"BERTH_FAULT": step})
    assert killed(r), f"BERTH_FAULT={step}: exit {r.returncode}: {r.stderr}"
    engine.ok("ps", "-a")
    assert_no_endpoints(engine)
    assert net(engine, "cn")["Containers"] == {}
    if "c1" in engine.ok("ps", "-a", "--format", "{{.Names}}").split():
        engine.ok("rm", "-f", "c1")  # redo the rm
    engine.ok("run", "-d", "--name", "c1", "--network", "cn", *WEB)
    assert host_http(engine, "127.0.0.1", 18080) == BODY


def test_container_exiting_by_itself_is_torn_down(engine):
    engine.ok("network", "create", "brief")
    cid = engine.ok("run", "-d", "--network", "brief", "-p", "18080:80", "busybox", "sh", "-c", "sleep 0.5").strip()
    engine.wait_state(cid, "exited")
    poll(lambda: not veths(engine), "the veth to go")
    poll(lambda: not (engine.run_dir / "netns" / cid).exists(), "the netns file to go")
    poll(lambda: not publishes_port(engine, 18080), "the port rule to go")
    assert net(engine, "brief")["Containers"] == {}
    server(engine, "next", "--network", "brief", "-p", "18080:8080", body="reused\n")
    assert host_http(engine, "127.0.0.1", 18080) == "reused\n"
