"""TLS on both front ends with a self-signed certificate made here (openssl): HTTPS with
requests, gRPC with tritonclient and grpcio health; TLS 1.2+ only; clear errors for bad files."""
import shutil
import socket
import ssl
import subprocess

import numpy as np
import pytest
import requests

import mserve
from serve_util import scale_model, write_version

grpc = pytest.importorskip("grpc")
tc = pytest.importorskip("tritonclient.grpc")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
from grpc_health.v1 import health_pb2_grpc  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def make_cert(d, name="server"):
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = make_cert(d)
    write_version(d / "scale", 1, scale_model(2.0))
    with mserve.start({"scale": str(d / "scale")}, port=0, grpc_port=0, quiet=True,
                      tls_cert_file=cert, tls_key_file=key) as s:
        s.wait_ready()
        s.cert = cert
        s.dir = d
        yield s


def test_https_predict(tls_server):
    assert tls_server.url.startswith("https://127.0.0.1:")
    r = requests.post(f"{tls_server.url}/v1/models/scale:predict", json={"instances": [[1, 2, 3, 4]]},
                      verify=tls_server.cert)
    assert r.status_code == 200 and r.json()["predictions"] == [[2, 4, 6, 8]]
    # Keep-alive over TLS: several requests on one session.
    with requests.Session() as sess:
        for _ in range(3):
            assert sess.get(f"{tls_server.url}/v2/health/ready", verify=tls_server.cert).status_code == 200


def test_untrusted_certificate_is_refused_by_clients(tls_server):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_server.url}/v2/health/ready")  # not in the default trust store


def test_plain_http_to_the_tls_port_gets_no_answer(tls_server):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_server.port}/v2/health/ready", timeout=5)
    # The server carries on.
    assert requests.get(f"{tls_server.url}/v2/health/live", verify=tls_server.cert).status_code == 200


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_protocol_versions_are_refused(tls_server, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = getattr(ssl.TLSVersion, version)
        ctx.maximum_version = getattr(ssl.TLSVersion, version)
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip(f"this OpenSSL cannot offer {version}")
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(100)


def test_tls12_and_tls13_are_served(tls_server):
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=tls_server.cert)
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                assert s.version() == version.name.replace("_", ".").replace("TLSv1.", "TLSv1.")
                s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                assert s.recv(100).startswith(b"HTTP/1.1 200")


def test_grpc_over_tls(tls_server):
    c = tc.InferenceServerClient(tls_server.grpc_target, ssl=True, root_certificates=tls_server.cert)
    i = tc.InferInput("x", [1, 4], "FP32")
    i.set_data_from_numpy(np.ones((1, 4), np.float32))
    assert c.infer("scale", [i]).as_numpy("y").tolist() == [[2.0] * 4]
    creds = grpc.ssl_channel_credentials(root_certificates=open(tls_server.cert, "rb").read())
    with grpc.secure_channel(tls_server.grpc_target, creds) as ch:
        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(tls_server.grpc_target) as ch:  # plain text to the TLS port
        with pytest.raises(grpc.RpcError) as e:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_tls_and_tokens_together(tls_server, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("secret-token-12345678\n")
    cert, key = make_cert(tmp_path)
    with mserve.start(mserve.load(scale_model(5.0)), model_name="m", port=0, quiet=True,
                      tls_cert_file=cert, tls_key_file=key, auth_tokens_file=str(tokens)) as s:
        url = f"{s.url}/v1/models/m:predict"
        body = {"instances": [[1, 1, 1, 1]]}
        assert requests.post(url, json=body, verify=cert).status_code == 401
        r = requests.post(url, json=body, verify=cert, headers={"Authorization": "Bearer secret-token-12345678"})
        assert r.json()["predictions"] == [[5.0] * 4]


def test_bad_tls_files_are_clear_errors(tls_server, tmp_path):
    cert, key = tls_server.cert, str(tls_server.dir / "server.key")
    other_cert, _ = make_cert(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    m = mserve.load(scale_model(1.0))
    cases = [({"tls_cert_file": cert}, "both"), ({"tls_cert_file": str(garbage), "tls_key_file": key}, "certificate"),
             ({"tls_cert_file": cert, "tls_key_file": str(tmp_path / "absent.key")}, "private key"),
             ({"tls_cert_file": other_cert, "tls_key_file": key}, "mismatch|does not match")]
    for kw, needle in cases:
        with pytest.raises(mserve.InvalidArgument, match=needle):
            mserve.start(m, port=0, quiet=True, **kw)
