"""berth's registry client (src/image/registry.cpp) against real docker-registry instances,
driven through tests/tools/registry_probe. Reference results come from skopeo.

Needs docker-registry, skopeo, openssl, htpasswd (apache2-utils) and zstd.
"""
from __future__ import annotations

import base64
import json
import os
import re
import time

import pytest

import oci_builder as ob
import registry_env as renv
from registry_env import basic_registry, plain_registry, registry_factory, token_registry  # noqa: F401 (fixtures)


@pytest.fixture(scope="module", autouse=True)
def _probe_built():
    if not (os.path.isfile(renv.PROBE_PATH) and os.access(renv.PROBE_PATH, os.X_OK)):
        why = f"registry_probe not built: {renv.PROBE_PATH} (build tests/tools, or set BERTH_REGISTRY_PROBE)"
        if os.environ.get("BERTH_TEST_STRICT") == "1":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The test image as an index (amd64 + arm64, with a zstd layer) and single-platform gzip-only."""
    d = tmp_path_factory.mktemp("layouts")
    return {
        "multi": ob.build_layout(d / "multi", tag="v1"),
        "single": ob.build_layout(d / "single", tag="v1", platforms=["linux/amd64"], zstd=False),
    }


@pytest.fixture(scope="module")
def plain_pushed(plain_registry, images):  # noqa: F811
    """The images pushed to the plain registry: test/multi:v1 (OCI index), test/v2s2:v1 (docker schema2)."""
    return {
        "multi": ob.push(images["multi"], plain_registry, "test/multi"),
        "v2s2": ob.push(images["single"], plain_registry, "test/v2s2", format="v2s2"),
    }


def fail_line(r) -> str:
    """The probe failed with exactly one line on stderr; returns it."""
    assert r.returncode == 1, f"expected failure, got {r.returncode}: {r.stdout} {r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"error is not one line: {r.stderr!r}"
    return lines[0]


def write_random(path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return ob.sha256(data)


# --- manifests -----------------------------------------------------------------------------


def test_index_digest_matches_skopeo(plain_registry, plain_pushed, images):  # noqa: F811
    raw = ob.inspect_raw(plain_registry, plain_pushed["multi"])
    m = renv.probe_json("manifest", plain_pushed["multi"])
    assert m["media_type"] == ob.MT_OCI_INDEX
    assert m["digest"] == ob.sha256(raw) == images["multi"].digest
    assert m["body"].encode() == raw
    platforms = {(d["platform"]["os"], d["platform"]["architecture"]) for d in json.loads(m["body"])["manifests"]}
    assert platforms == {("linux", "amd64"), ("linux", "arm64")}


def test_platform_manifest_by_digest(plain_registry, plain_pushed, images):  # noqa: F811
    for platform, info in images["multi"].manifests.items():
        ref = plain_registry.ref("test/multi", info.digest)
        m = renv.probe_json("manifest", ref)
        assert m["digest"] == info.digest, platform
        assert m["media_type"] == ob.MT_OCI_MANIFEST
        body = json.loads(m["body"])
        assert body["config"]["digest"] == info.config_digest
        assert [l["digest"] for l in body["layers"]] == [l.digest for l in info.layers]
    amd64 = json.loads(renv.probe_json("manifest", plain_registry.ref("test/multi", images["multi"].manifests[
        "linux/amd64"].digest))["body"])
    assert amd64["layers"][-1]["mediaType"] == ob.MT_OCI_LAYER_ZSTD


def test_docker_schema2_manifest(plain_registry, plain_pushed):  # noqa: F811
    raw = ob.inspect_raw(plain_registry, plain_pushed["v2s2"])
    m = renv.probe_json("manifest", plain_pushed["v2s2"])
    assert m["media_type"] == ob.MT_DOCKER_MANIFEST
    assert m["digest"] == ob.sha256(raw)
    assert m["body"].encode() == raw


def test_docker_manifest_list(plain_registry, images, tmp_path):  # noqa: F811
    layout = ob.build_layout(tmp_path / "gz", tag="v1", zstd=False)
    ref = ob.push(layout, plain_registry, "test/dockerlist", format="v2s2")
    raw = ob.inspect_raw(plain_registry, ref)
    m = renv.probe_json("manifest", ref)
    assert m["media_type"] == ob.MT_DOCKER_LIST
    assert m["digest"] == ob.sha256(raw)


def test_missing_manifest_is_one_clear_line(plain_registry, plain_pushed):  # noqa: F811
    line = fail_line(renv.probe("manifest", plain_registry.ref("test/multi", "nosuchtag")))
    assert line == f"manifest for {plain_registry.host}/test/multi:nosuchtag not found: manifest unknown"
    line = fail_line(renv.probe("manifest", plain_registry.ref("no/such/repo", "v1")))
    assert line.startswith(f"manifest for {plain_registry.host}/no/such/repo:v1 not found")
    digest = "sha256:" + "0" * 64
    line = fail_line(renv.probe("manifest", plain_registry.ref("test/multi", digest)))
    assert line.startswith(f"manifest for {plain_registry.host}/test/multi@{digest} not found")


# --- blobs -------------------------------------------------------------------------------


def test_blobs_hash_to_their_digest(plain_registry, plain_pushed, images, tmp_path):  # noqa: F811
    info = images["multi"].manifests["linux/amd64"]
    ref = plain_pushed["multi"]
    for layer in info.layers:
        out = tmp_path / layer.digest[7:]
        got = renv.probe_json("blob", ref, layer.digest, out)
        assert got == {"digest": layer.digest, "size": layer.size}
        assert renv.sha256_file(out) == layer.digest
    out = tmp_path / "config"
    renv.probe_json("blob", ref, info.config_digest, out)
    assert json.loads(out.read_bytes())["config"]["StopSignal"] == "SIGQUIT"


def test_parallel_blob_downloads_share_one_client(plain_registry, plain_pushed, images):  # noqa: F811
    digests = sorted({l.digest for m in images["multi"].manifests.values() for l in m.layers})
    got = renv.probe_json("blobs", plain_pushed["multi"], *digests)
    assert got == {d: d for d in digests}


def test_blob_exists_and_missing_blob(plain_registry, plain_pushed, images):  # noqa: F811
    ref = plain_pushed["multi"]
    layer = images["multi"].manifests["linux/arm64"].layers[0].digest
    assert renv.probe("blob-exists", ref, layer).stdout.strip() == "true"
    missing = "sha256:" + "ab" * 32
    assert renv.probe("blob-exists", ref, missing).stdout.strip() == "false"
    line = fail_line(renv.probe("blob", ref, missing, "/dev/null"))
    assert line == f"blob {missing} not found in {plain_registry.host}/test/multi"


def test_blob_redirect_is_followed(plain_registry, plain_pushed, images, tmp_path):  # noqa: F811
    layer = images["multi"].manifests["linux/amd64"].layers[1]
    with renv.redirecting_proxy(plain_registry) as front:
        out = tmp_path / "blob"
        got = renv.probe_json("blob", f"{front.host}/test/multi:v1", layer.digest, out)
        assert got["digest"] == layer.digest
        assert f"/v2/test/multi/blobs/{layer.digest}" in front.hits


# --- auth ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def basic_pushed(basic_registry, images):  # noqa: F811
    return ob.push(images["single"], basic_registry, "private/app")


def test_basic_auth_right_credentials(basic_registry, basic_pushed, images, tmp_path):  # noqa: F811
    m = renv.probe_json("manifest", basic_pushed, *basic_registry.probe_auth())
    assert m["digest"] == images["single"].digest
    layer = images["single"].manifests["linux/amd64"].layers[0]
    got = renv.probe_json("blob", basic_pushed, layer.digest, tmp_path / "b", *basic_registry.probe_auth())
    assert got["digest"] == layer.digest
    assert renv.probe("check-auth", basic_pushed, *basic_registry.probe_auth()).stdout.strip() == "ok"


def test_basic_auth_wrong_or_missing_credentials(basic_registry, basic_pushed):  # noqa: F811
    wrong = ["--user", basic_registry.username, "--password", "not-the-password"]
    line = fail_line(renv.probe("manifest", basic_pushed, *wrong))
    assert line == f"wrong credentials for {basic_registry.host}: unauthorized: authentication required"
    assert fail_line(renv.probe("check-auth", basic_pushed, *wrong)).startswith(
        f"wrong credentials for {basic_registry.host}")
    line = fail_line(renv.probe("manifest", basic_pushed))
    assert "unauthorized: authentication required" in line and "no credentials" in line


def test_credentials_from_docker_config(basic_registry, basic_pushed, tmp_path):  # noqa: F811
    cfg = tmp_path / "config.json"
    auth = base64.b64encode(f"{basic_registry.username}:{basic_registry.password}".encode()).decode()
    cfg.write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth}}, "credsStore": "none"}))
    assert renv.probe_json("manifest", basic_pushed, "--auth-config", cfg)["digest"].startswith("sha256:")


@pytest.fixture(scope="module")
def token_pushed(token_registry, images):  # noqa: F811
    return ob.push(images["multi"], token_registry, "private/multi")


def test_token_auth_right_credentials(token_registry, token_pushed, images, tmp_path):  # noqa: F811
    token_registry.token_server.requests.clear()
    m = renv.probe_json("manifest", token_pushed, *token_registry.probe_auth())
    assert m["digest"] == images["multi"].digest
    layers = [l.digest for l in images["multi"].manifests["linux/arm64"].layers]
    got = renv.probe_json("blobs", token_pushed, *layers, *token_registry.probe_auth())
    assert got == {d: d for d in layers}
    # One token per client and scope, asked for with the user's credentials.
    reqs = token_registry.token_server.requests
    assert reqs.count((token_registry.username, ["repository:private/multi:pull"])) == 2, reqs
    assert renv.probe("check-auth", token_pushed, *token_registry.probe_auth()).stdout.strip() == "ok"


def test_token_auth_wrong_or_missing_credentials(token_registry, token_pushed):  # noqa: F811
    wrong = ["--user", token_registry.username, "--password", "nope"]
    line = fail_line(renv.probe("manifest", token_pushed, *wrong))
    assert line == f"wrong credentials for {token_registry.host}: incorrect username or password"
    assert fail_line(renv.probe("check-auth", token_pushed, *wrong)).startswith(
        f"wrong credentials for {token_registry.host}")
    # Anonymous: the token server grants a token without access, the registry refuses it.
    line = fail_line(renv.probe("manifest", token_pushed))
    assert "unauthorized" in line and "no credentials" in line


def test_token_auth_push(token_registry, tmp_path):  # noqa: F811
    token_registry.token_server.requests.clear()
    f = tmp_path / "blob"
    digest = write_random(f, 200_000)
    got = renv.probe_json("push-blob", token_registry.ref("private/pushed"), f, *token_registry.probe_auth())
    assert got == {"digest": digest, "size": 200_000, "uploaded": True}
    assert (token_registry.username, ["repository:private/pushed:pull,push"]) in token_registry.token_server.requests
    out = tmp_path / "back"
    renv.probe_json("blob", token_registry.ref("private/pushed"), digest, out, *token_registry.probe_auth())
    assert out.read_bytes() == f.read_bytes()


# --- transport failures --------------------------------------------------------------------


def test_unreachable_registry():
    port = renv.free_port()  # nothing listens there
    line = fail_line(renv.probe("manifest", f"127.0.0.1:{port}/x:latest"))
    assert line == f"connect to 127.0.0.1:{port}: Connection refused"


def test_stalled_registry_times_out():
    with renv.stalling_server() as port:
        start = time.monotonic()
        line = fail_line(renv.probe("manifest", f"127.0.0.1:{port}/x:latest", "--stall-timeout", "2", timeout=60))
        elapsed = time.monotonic() - start
    assert f"127.0.0.1:{port}" in line and "stalled" in line, line
    assert elapsed < 30


def test_tls_registry(registry_factory, images):  # noqa: F811
    reg = registry_factory(tls=True)
    ref = ob.push(images["single"], reg, "tls/app")
    # Loopback: plain HTTP is tried first and HTTPS (unverified) when the port speaks TLS.
    assert renv.probe_json("manifest", ref)["digest"] == images["single"].digest
    # By a name that is not a loopback literal, TLS is verified: the self-signed certificate fails...
    named = f"reg.localhost:{reg.port}/tls/app:v1"
    line = fail_line(renv.probe("manifest", named))
    assert line.startswith(f"TLS connection to reg.localhost:{reg.port}: certificate not trusted"), line
    # ...unless the registry is listed as insecure.
    m = renv.probe_json("manifest", named, "--insecure", f"reg.localhost:{reg.port}")
    assert m["digest"] == images["single"].digest


def test_insecure_registry_falls_back_to_plain_http(plain_registry, plain_pushed, images):  # noqa: F811
    named = f"reg.localhost:{plain_registry.port}/test/multi:v1"
    line = fail_line(renv.probe("manifest", named))
    assert line.startswith(f"TLS connection to reg.localhost:{plain_registry.port}:"), line
    m = renv.probe_json("manifest", named, "--insecure", f"reg.localhost:{plain_registry.port}")
    assert m["digest"] == images["multi"].digest


# --- pushing -------------------------------------------------------------------------------


def _upload_requests(reg, repo: str, method: str) -> int:
    return len(re.findall(rf'"{method} /v2/{re.escape(repo)}/blobs/uploads/', reg.log()))


@pytest.mark.parametrize("size,chunk,patches", [
    (3_000_000, None, 0),
    (2_500_000, 1_000_000, 3),
    (1_000_000, 1_000_000, 1),
    (0, None, 0),
])
def test_push_blob_round_trip(plain_registry, tmp_path, size, chunk, patches):  # noqa: F811
    repo = f"push/blob{size}-{chunk or 0}"
    f = tmp_path / "data"
    digest = write_random(f, size)
    args = ["push-blob", plain_registry.ref(repo), f] + (["--chunk", chunk] if chunk else [])
    assert renv.probe_json(*args) == {"digest": digest, "size": size, "uploaded": True}
    assert _upload_requests(plain_registry, repo, "PATCH") == patches
    assert renv.probe("blob-exists", plain_registry.ref(repo), digest).stdout.strip() == "true"
    out = tmp_path / "back"
    assert renv.probe_json("blob", plain_registry.ref(repo), digest, out) == {"digest": digest, "size": size}
    assert out.read_bytes() == f.read_bytes()
    # A second push finds the blob there and skips the upload.
    assert renv.probe_json(*args)["uploaded"] is False


def test_push_image_round_trip(plain_registry, tmp_path):  # noqa: F811
    repo = "push/image"
    layer = tmp_path / "layer"
    layer_digest = write_random(layer, 1_500_000)
    config = tmp_path / "config"
    config.write_bytes(json.dumps({"architecture": "amd64", "os": "linux",
                                   "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode())
    config_digest = ob.sha256(config.read_bytes())
    renv.probe_json("push-blob", plain_registry.ref(repo), layer, "--chunk", 600_000)
    renv.probe_json("push-blob", plain_registry.ref(repo), config)
    manifest = {"schemaVersion": 2, "mediaType": ob.MT_OCI_MANIFEST,
                "config": {"mediaType": ob.MT_OCI_CONFIG, "digest": config_digest,
                           "size": config.stat().st_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer_digest, "size": layer.stat().st_size}]}
    mfile = tmp_path / "manifest.json"
    mfile.write_bytes(json.dumps(manifest, indent=1).encode())
    got = renv.probe_json("push-manifest", plain_registry.ref(repo, "v1"), mfile, ob.MT_OCI_MANIFEST)
    assert got["digest"] == ob.sha256(mfile.read_bytes())
    assert ob.inspect_raw(plain_registry, plain_registry.ref(repo, "v1")) == mfile.read_bytes()
    # skopeo fetches and verifies every blob the manifest names.
    ob.skopeo(["copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{plain_registry.ref(repo, 'v1')}",
               f"oci:{tmp_path / 'copy'}:v1"])
    assert (tmp_path / "copy" / "blobs" / "sha256" / layer_digest[7:]).read_bytes() == layer.read_bytes()


def test_push_manifest_with_missing_blob_is_refused(plain_registry, tmp_path):  # noqa: F811
    manifest = {"schemaVersion": 2, "mediaType": ob.MT_OCI_MANIFEST,
                "config": {"mediaType": ob.MT_OCI_CONFIG, "digest": "sha256:" + "1" * 64, "size": 2},
                "layers": []}
    mfile = tmp_path / "manifest.json"
    mfile.write_text(json.dumps(manifest))
    line = fail_line(renv.probe("push-manifest", plain_registry.ref("push/broken", "v1"), mfile,
                                ob.MT_OCI_MANIFEST))
    assert line.startswith(f"push manifest {plain_registry.host}/push/broken:v1: ")
    assert "blob unknown" in line or "manifest invalid" in line, line
