"""`berth serve` driven by Debian's python3-docker (docker-py, the Docker SDK for Python): a short
scenario written to Docker's behaviour (run, logs, exec, volumes, networks, list, stop, remove), and
the JSON of the main read endpoints, of container create and of errors validated against the v1.41
spec's response schemas (Swagger 2.0: `#/definitions/...` refs, `x-nullable: true` is the only way a
value may be null). Known mismatches are listed in KNOWN_MISMATCHES (those tests xfail, naming them);
where berth differs from docker 20.10.24 (the v1.41 daemon) too, a test asserts docker's answer.

The SDK talks to the unix socket from the test process: the server (and so every container) runs
in the test's own network namespace, whatever namespace the client is in."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import berthtest as bt
from apitest import api, engine, busybox_tar  # noqa: F401 (fixtures)
from containertest import poll

docker = pytest.importorskip("docker", reason="python3-docker is not installed")

# docker-py 5 compares versions with distutils' StrictVersion.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SPEC = bt.SHARED_SPECS / "docker-engine-api-v1.41.yaml"
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


@pytest.fixture
def client(api):
    c = docker.DockerClient(base_url="unix://" + str(api.sock), version="1.41", timeout=60)
    yield c
    c.close()


def wait_logs(container, text: str, timeout: float = 30.0) -> bytes:
    def seen():
        out = container.logs()
        return out if text.encode() in out else None
    return poll(seen, f"{text!r} in the logs of {container.name}", timeout)


# --------------------------------------------------------------------------------------------------
# The SDK scenario


def test_run_remove_returns_output(client):
    assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"
    # stdout and stderr both come back by default (docker-py asks for both); nothing is left over.
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True,
                                stderr=True)
    assert sorted(out.splitlines()) == [b"err", b"out"]
    assert client.containers.list(all=True) == []


def test_run_failure_raises_container_error(client):
    with pytest.raises(docker.errors.ContainerError) as e:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert e.value.exit_status == 3
    assert b"bad" in e.value.stderr
    assert client.containers.list(all=True) == []


def test_missing_image_is_not_found(client):
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("berth-test-no-such-image:latest")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("berth-test-no-such-container")


def test_sdk_scenario(client):
    # Volumes: create (with labels), list, inspect.
    vol = client.volumes.create(name="sdkdata", driver="local", labels={"tier": "data"})
    assert vol.name == "sdkdata"
    assert vol.attrs["Driver"] == "local"
    assert vol.attrs["Labels"] == {"tier": "data"}
    assert "sdkdata" in [v.name for v in client.volumes.list()]
    assert client.volumes.get("sdkdata").attrs["Mountpoint"] == vol.attrs["Mountpoint"]

    # Networks: a user network, two containers on it that resolve each other by name.
    net = client.networks.create("sdknet", driver="bridge", labels={"app": "sdk"})
    assert client.networks.get(net.id).name == "sdknet"
    assert client.networks.get(net.id).attrs["Labels"] == {"app": "sdk"}
    assert "sdknet" in [n.name for n in client.networks.list()]

    # A detached container with the volume, logs, exec.
    web = client.containers.run(
        "busybox", ["sh", "-c", "echo hello-from-web > /data/index.html; echo started; "
                    "exec httpd -f -p 8080 -h /data"],
        name="web", detach=True, volumes={"sdkdata": {"bind": "/data", "mode": "rw"}},
        network="sdknet", labels={"role": "web"})
    assert isinstance(web, docker.models.containers.Container)
    wait_logs(web, "started")
    web.reload()
    assert web.status == "running"
    assert web.name == "web"
    assert web.labels == {"role": "web"}
    assert web.logs() == b"started\n"
    assert web.logs(stdout=True, stderr=False) == b"started\n"
    assert web.logs(stdout=False, stderr=True) == b""

    r = web.exec_run(["cat", "/data/index.html"])
    assert (r.exit_code, r.output) == (0, b"hello-from-web\n")
    r = web.exec_run(["sh", "-c", "echo to-stderr >&2; exit 7"])
    assert (r.exit_code, r.output) == (7, b"to-stderr\n")
    r = web.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert r.exit_code == 0
    assert r.output == (b"o\n", b"e\n")
    r = web.exec_run("id -u", user="1000")
    assert (r.exit_code, r.output) == (0, b"1000\n")
    r = web.exec_run(["sh", "-c", "echo $GREETING; pwd"], environment={"GREETING": "hey"}, workdir="/tmp")
    assert (r.exit_code, r.output) == (0, b"hey\n/tmp\n")

    # Another container on the network reaches the first by name.
    peer = client.containers.run("busybox", LOOP, name="peer", detach=True, network="sdknet")
    r = peer.exec_run(["wget", "-qO-", "http://web:8080/index.html"])
    assert (r.exit_code, r.output) == (0, b"hello-from-web\n")

    # Connect a running container to a second network: it gets an address there, and a container
    # on that network reaches it by name.
    other = client.networks.create("sdkother")
    other.connect(web)
    other.reload()
    assert [c.name for c in other.containers] == ["web"]
    web.reload()
    nets = web.attrs["NetworkSettings"]["Networks"]
    assert sorted(nets) == ["sdknet", "sdkother"]
    other_ip = nets["sdkother"]["IPAddress"]
    assert other_ip
    r = web.exec_run(["ip", "-o", "-4", "addr", "show"])
    assert r.exit_code == 0 and f" {other_ip}/" in r.output.decode(), r.output
    lonely = client.containers.run("busybox", LOOP, name="lonely", detach=True, network="sdkother")
    r = lonely.exec_run(["wget", "-qO-", "http://web:8080/index.html"])
    assert (r.exit_code, r.output) == (0, b"hello-from-web\n")
    other.disconnect(web)
    web.reload()
    assert sorted(web.attrs["NetworkSettings"]["Networks"]) == ["sdknet"]
    lonely.remove(force=True)
    other.remove()
    assert "sdkother" not in [n.name for n in client.networks.list()]

    # Listing: running only by default, all=True also shows stopped ones; filters by label.
    done = client.containers.run("busybox", ["true"], name="done", detach=True)
    assert done.wait()["StatusCode"] == 0
    assert sorted(c.name for c in client.containers.list()) == ["peer", "web"]
    assert sorted(c.name for c in client.containers.list(all=True)) == ["done", "peer", "web"]
    assert [c.name for c in client.containers.list(filters={"label": "role=web"})] == ["web"]
    done.reload()
    assert done.status == "exited"
    assert done.attrs["State"]["ExitCode"] == 0

    # Stop: the TERM trap ends the loop with 0; httpd is pid 1 without a TERM handler, so the
    # signal is ignored and it is killed when the timeout runs out (137, as docker reports it).
    peer.stop(timeout=10)
    peer.reload()
    assert peer.status == "exited"
    assert peer.attrs["State"]["ExitCode"] == 0
    web.stop(timeout=1)
    web.reload()
    assert web.status == "exited"
    assert web.attrs["State"]["ExitCode"] == 137

    # The data outlives the container.
    out = client.containers.run("busybox", ["cat", "/data/index.html"], remove=True,
                                volumes={"sdkdata": {"bind": "/data", "mode": "ro"}})
    assert out == b"hello-from-web\n"

    # Remove everything.
    for c in (web, peer, done):
        c.remove()
    assert client.containers.list(all=True) == []
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("web")
    net.remove()
    assert "sdknet" not in [n.name for n in client.networks.list()]
    with pytest.raises(docker.errors.NotFound):
        client.networks.get(net.id)
    vol.remove()
    assert "sdkdata" not in [v.name for v in client.volumes.list()]
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("sdkdata")


def test_in_use_volume_and_network_are_kept(client):
    vol = client.volumes.create(name="busyvol")
    net = client.networks.create("busynet")
    c = client.containers.run("busybox", LOOP, name="user", detach=True, network="busynet",
                              volumes={"busyvol": {"bind": "/data", "mode": "rw"}})
    # docker: 409 "volume is in use - [ID]".
    with pytest.raises(docker.errors.APIError) as e:
        vol.remove()
    assert e.value.status_code == 409
    assert "busyvol" in [v.name for v in client.volumes.list()]
    # docker: 403 "error while removing network: network busynet id ... has active endpoints".
    with pytest.raises(docker.errors.APIError) as e:
        net.remove()
    assert e.value.status_code == 403
    assert "has active endpoints" in str(e.value.explanation)
    assert "busynet" in [n.name for n in client.networks.list()]
    c.remove(force=True)
    net.remove()
    vol.remove()
    assert "busynet" not in [n.name for n in client.networks.list()]
    assert "busyvol" not in [v.name for v in client.volumes.list()]


def test_sdk_images_and_system(client):
    assert client.ping() is True
    v = client.version()
    assert v["ApiVersion"] == "1.41"
    assert v["Os"] == "linux"
    info = client.info()
    assert info["Images"] == 1
    img = client.images.get("busybox")
    assert "busybox:latest" in img.tags
    assert img.attrs["Config"]["Cmd"] == ["sh"]
    assert [i.id for i in client.images.list()] == [img.id]
    img.tag("sdk/busybox", "v1")
    assert sorted(client.images.get(img.id).tags) == ["busybox:latest", "sdk/busybox:v1"]
    client.images.remove("sdk/busybox:v1")
    assert client.images.get(img.id).tags == ["busybox:latest"]


# --------------------------------------------------------------------------------------------------
# Response schemas


def _swagger_to_jsonschema(node):
    """Swagger 2.0 schema -> JSON Schema draft 4: null is allowed only where `x-nullable: true`."""
    if isinstance(node, list):
        return [_swagger_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _swagger_to_jsonschema(v) for k, v in node.items() if k not in ("example", "x-go-name")}
    if node.get("x-nullable") is True:
        if "$ref" in out:
            out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
        elif "type" in out:
            t = out["type"]
            out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
        else:
            out = {"anyOf": [dict(out), {"type": "null"}]}
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    return out


@pytest.fixture(scope="module")
def spec():
    yaml = pytest.importorskip("yaml", reason="python3-yaml is not installed")
    with open(SPEC) as f:
        return yaml.safe_load(f)


def schema_errors(spec, path: str, method: str, status: int, body) -> dict[str, str]:
    """Every mismatch of `body` with the spec's response schema: {where: message}, where is the
    JSON path with list indexes as `*` (so it does not depend on the order of a list)."""
    jsonschema = pytest.importorskip("jsonschema", reason="python3-jsonschema is not installed")
    raw = spec["paths"][path][method]["responses"][status]["schema"]
    schema = _swagger_to_jsonschema(copy.deepcopy(raw))
    schema["definitions"] = _swagger_to_jsonschema(copy.deepcopy(spec["definitions"]))
    errs = {}
    for e in jsonschema.Draft4Validator(schema).iter_errors(body):
        where = "/".join("*" if isinstance(p, int) else str(p) for p in e.absolute_path) or "(root)"
        errs.setdefault(where, e.message[:200])
    return dict(sorted(errs.items()))


def check_schema(spec, path: str, method: str, status: int, body, known: dict[str, str]):
    """Fails on a mismatch that is not in `known`, and on a `known` one that is gone (remove it
    from the list); xfails, naming them, when only known mismatches are left."""
    errs = schema_errors(spec, path, method, status, body)
    new = {w: m for w, m in errs.items() if w not in known}
    assert new == {}, f"{method.upper()} {path} does not match the v1.41 schema:\n" + \
        "\n".join(f"  {w}: {m}" for w, m in new.items())
    gone = [w for w in known if w not in errs]
    assert gone == [], f"{method.upper()} {path}: known mismatches fixed, remove them from KNOWN: {gone}"
    if errs:
        pytest.xfail("known schema mismatches: " + "; ".join(f"{w}: {m} ({known[w]})" for w, m in errs.items()))


@pytest.fixture
def populated(api):
    """A volume, a user network and a running container using both (with a published port), plus
    a created one that never ran."""
    api.docker_ok("volume", "create", "--label", "k=v", "schemavol")
    api.docker_ok("network", "create", "--label", "k=v", "schemanet")
    api.docker_ok("run", "-d", "--name", "schema-run", "--network", "schemanet", "-v", "schemavol:/data",
                  "-p", "18090:8080", "-l", "k=v", "-e", "A=b", "busybox", *LOOP)
    api.docker_ok("create", "--name", "schema-stopped", "busybox", "true")
    return api


def _get(api, path):
    status, hdrs, out = api.request("GET", path)
    assert status == 200, f"GET {path}: {status} {out!r}"
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    return json.loads(out)


# Docker 20.10.24 (the v1.41 daemon) answers null for these nil Go slices and maps too, where the
# spec has no `x-nullable`: strictly a spec mismatch, but what every docker client already copes with.
AS_DOCKER = "null, as docker 20.10 answers, but not x-nullable in the spec"
NIL_HOST_CONFIG = {f"HostConfig/{k}": AS_DOCKER for k in (
    "CapAdd", "CapDrop", "DeviceCgroupRules", "DeviceRequests", "ExtraHosts", "GroupAdd", "Links",
    "SecurityOpt", "VolumesFrom", "MemorySwappiness")}
KNOWN_MISMATCHES: dict[str, dict[str, str]] = {
    "/info": {"GenericResources": AS_DOCKER, "Plugins/Authorization": AS_DOCKER},
    "/containers/json?all=1": {
        "*/NetworkSettings/Networks/schemanet/Aliases": AS_DOCKER,
    },
    "/containers/schema-run/json": {
        **NIL_HOST_CONFIG,
        "Config/Entrypoint": AS_DOCKER,
        "NetworkSettings/Networks/schemanet/Links": AS_DOCKER,
    },
    "/containers/schema-stopped/json": {
        **NIL_HOST_CONFIG,
        "Config/Entrypoint": AS_DOCKER, "Config/Env": AS_DOCKER, "HostConfig/Binds": AS_DOCKER,
        "NetworkSettings/Networks/bridge/Aliases": AS_DOCKER,
        "NetworkSettings/Networks/bridge/Links": AS_DOCKER,
    },
    "/networks": {"*/IPAM/Options": AS_DOCKER},
    "/images/busybox/json": {f"{c}/{k}": AS_DOCKER for c in ("Config", "ContainerConfig")
                             for k in ("Entrypoint", "Env", "Labels", "Volumes")},
}

READS = [
    ("/version", "/version"),
    ("/info", "/info"),
    ("/containers/json", "/containers/json?all=1"),
    ("/containers/{id}/json", "/containers/schema-run/json"),
    ("/containers/{id}/json", "/containers/schema-stopped/json"),
    ("/images/json", "/images/json"),
    ("/images/{name}/json", "/images/busybox/json"),
    ("/volumes", "/volumes"),
    ("/volumes/{name}", "/volumes/schemavol"),
    ("/networks", "/networks"),
    ("/networks/{id}", "/networks/schemanet"),
    ("/networks/{id}", "/networks/bridge"),
]


@pytest.mark.parametrize("spec_path,url", [pytest.param(p, u, id=u) for p, u in READS])
def test_read_schema(populated, spec, spec_path, url):
    check_schema(spec, spec_path, "get", 200, _get(populated, url), KNOWN_MISMATCHES.get(url, {}))


def test_ping_schema(api, spec):
    status, hdrs, out = api.request("GET", "/_ping")
    assert (status, out) == (200, b"OK")
    assert hdrs["api-version"] == "1.41"
    assert hdrs.get("content-type", "").startswith("text/plain"), hdrs
    check_schema(spec, "/_ping", "get", 200, out.decode(), {})
    status, hdrs, out = api.request("HEAD", "/_ping")
    assert (status, out) == (200, b"")
    assert hdrs["api-version"] == "1.41"


def test_empty_lists_schema(api, spec):
    """With nothing but the image: the lists are empty arrays."""
    assert _get(api, "/containers/json?all=1") == []
    check_schema(spec, "/containers/json", "get", 200, [], {})
    vols = _get(api, "/volumes")
    assert vols["Volumes"] == []
    check_schema(spec, "/volumes", "get", 200, vols, {})


def test_create_schema(api, spec):
    body = {"Image": "busybox", "Cmd": ["true"], "Labels": {"k": "v"}}
    status, hdrs, out = api.request("POST", "/containers/create?name=schema-created", body)
    assert status == 201, f"POST /containers/create: {status} {out!r}"
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    created = json.loads(out)
    assert _get(api, f"/containers/{created['Id']}/json")["Name"] == "/schema-created"
    assert created["Warnings"] == []
    check_schema(spec, "/containers/create", "post", 201, created, {})


# What docker answers where the schema test found berth differing from docker itself (not just from
# the spec): checked against docker 20.10.24, the v1.41 daemon.


def test_inspect_cgroupns_mode_is_the_daemon_default(populated):
    """Unset, HostConfig.CgroupnsMode is the mode applied. berth's default is private on cgroup v1
    and v2 alike (docker's is host on v1): a deliberate difference (docs/ARCHITECTURE.md)."""
    for name in ("schema-run", "schema-stopped"):
        mode = _get(populated, f"/containers/{name}/json")["HostConfig"]["CgroupnsMode"]
        assert mode == "private", name


def test_inspect_memory_swappiness_unset_is_null(populated):
    for name in ("schema-run", "schema-stopped"):
        assert _get(populated, f"/containers/{name}/json")["HostConfig"]["MemorySwappiness"] is None, name


def test_inspect_masked_and_readonly_paths_are_the_defaults(populated):
    """Docker fills in its default masked and read-only /proc and /sys paths at create."""
    for name in ("schema-run", "schema-stopped"):
        hc = _get(populated, f"/containers/{name}/json")["HostConfig"]
        assert isinstance(hc["MaskedPaths"], list) and {"/proc/kcore", "/proc/keys", "/sys/firmware"} <= \
            set(hc["MaskedPaths"]), (name, hc["MaskedPaths"])
        assert isinstance(hc["ReadonlyPaths"], list) and {"/proc/bus", "/proc/sys", "/proc/sysrq-trigger"} <= \
            set(hc["ReadonlyPaths"]), (name, hc["ReadonlyPaths"])
    # docker run --privileged: none.
    populated.docker_ok("create", "--name", "schema-privileged", "--privileged", "busybox", "true")
    hc = _get(populated, "/containers/schema-privileged/json")["HostConfig"]
    assert (hc["MaskedPaths"], hc["ReadonlyPaths"]) == (None, None)


def test_image_inspect_has_container_config(api):
    """v1.41's image inspect has ContainerConfig (docker 25 dropped it with API 1.44): compose 1.29
    reads image_config['ContainerConfig'] when it recreates a container."""
    img = _get(api, "/images/busybox/json")
    assert isinstance(img.get("ContainerConfig"), dict), "keys: " + ", ".join(sorted(img))
    assert isinstance(img["Config"], dict) and img["Config"]["Cmd"] == ["sh"]


def test_inspect_user_network_aliases_have_the_short_id(populated):
    """Before API 1.45, a container's endpoint on a user network lists its short ID as an alias
    (and the compose service name, a --network-alias, ...)."""
    c = _get(populated, "/containers/schema-run/json")
    assert c["NetworkSettings"]["Networks"]["schemanet"]["Aliases"] == [c["Id"][:12]]
    populated.docker_ok("run", "-d", "--name", "aliased", "--network", "schemanet", "--network-alias", "api",
                        "busybox", *LOOP)
    c = _get(populated, "/containers/aliased/json")
    assert sorted(c["NetworkSettings"]["Networks"]["schemanet"]["Aliases"]) == sorted(["api", c["Id"][:12]])


@pytest.mark.parametrize("method,url,body,status,spec_path", [
    ("POST", "/containers/create?name=schema-created", {"Image": "busybox"}, 409, "/containers/create"),
    ("POST", "/containers/create", {"Image": "berth-test-no-such-image:1"}, 404, "/containers/create"),
    ("GET", "/containers/nosuch/json", None, 404, "/containers/{id}/json"),
    ("GET", "/volumes/nosuch", None, 404, "/volumes/{name}"),
    ("GET", "/networks/nosuch", None, 404, "/networks/{id}"),
], ids=["create-conflict", "create-no-image", "container-404", "volume-404", "network-404"])
def test_error_schema(api, spec, method, url, body, status, spec_path):
    api.json("POST", "/containers/create?name=schema-created", {"Image": "busybox"}, expect=201)
    got, hdrs, out = api.request(method, url, body)
    assert got == status, f"{method} {url}: {got} {out!r}"
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    err = json.loads(out)
    assert isinstance(err.get("message"), str) and err["message"], err
    check_schema(spec, spec_path, method.lower(), status, err, {})
