"""Access control on both front ends: bearer tokens (file, environment variable, per-model
limits, hot reload), the client address allow-list, open health checks; HTTP answers 401/403
with JSON errors, gRPC UNAUTHENTICATED / PERMISSION_DENIED."""
import os
import time

import numpy as np
import pytest
import requests

import mserve
from serve_util import scale_model, write_version

grpc = pytest.importorskip("grpc")
tc = pytest.importorskip("tritonclient.grpc")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
from grpc_health.v1 import health_pb2_grpc  # noqa: E402

ADMIN = "admin-token-0123456789"
LIMITED = "limited-token-abcdefgh"
X = np.ones((1, 4), np.float32)


def tokens_file(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def repo(tmp_path):
    write_version(tmp_path / "scale", 1, scale_model(2.0))
    write_version(tmp_path / "other", 1, scale_model(3.0))
    return {"scale": str(tmp_path / "scale"), "other": str(tmp_path / "other")}


@pytest.fixture
def secured(tmp_path, repo):
    f = tokens_file(tmp_path / "tokens", f"# tokens\n{ADMIN} ops\n{LIMITED} ci-bot models=scale\n")
    with mserve.start(repo, port=0, grpc_port=0, quiet=True, auth_tokens_file=f) as s:
        s.wait_ready()
        s.tokens_path = tmp_path / "tokens"
        yield s


def rest_predict(s, model, token=None, scheme="Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    return requests.post(f"{s.url}/v1/models/{model}:predict", json={"instances": X.tolist()}, headers=headers)


def grpc_infer(s, model, token=None):
    c = tc.InferenceServerClient(s.grpc_target)
    i = tc.InferInput("x", [1, 4], "FP32")
    i.set_data_from_numpy(X)
    headers = {"authorization": f"Bearer {token}"} if token else None
    try:
        return c.infer(model, [i], headers=headers).as_numpy("y")
    finally:
        c.close()


def grpc_code(fn):
    from tritonclient.utils import InferenceServerException
    with pytest.raises(InferenceServerException) as e:
        fn()
    return e.value.status()


def test_rest_needs_a_valid_token(secured):
    r = rest_predict(secured, "scale")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert "bearer token" in r.json()["error"]
    assert rest_predict(secured, "scale", "wrong-token-xxxxxxxx").status_code == 401
    assert rest_predict(secured, "scale", ADMIN, scheme="Basic").status_code == 401
    r = rest_predict(secured, "scale", ADMIN)
    assert r.status_code == 200 and r.json()["predictions"] == [[2.0] * 4]
    assert rest_predict(secured, "other", ADMIN, scheme="bearer").status_code == 200  # scheme is case-insensitive
    # An unauthenticated client cannot tell served from unknown models.
    assert rest_predict(secured, "no-such-model").status_code == 401


def test_rest_per_model_tokens(secured):
    assert rest_predict(secured, "scale", LIMITED).status_code == 200
    r = rest_predict(secured, "other", LIMITED)
    assert r.status_code == 403 and "ci-bot" in r.json()["error"] and "'other'" in r.json()["error"]
    auth = {"Authorization": f"Bearer {LIMITED}"}
    assert requests.get(f"{secured.url}/v2/models/other", headers=auth).status_code == 403
    assert requests.get(f"{secured.url}/v2/models/scale", headers=auth).status_code == 200
    # Server-wide endpoints need a token that is not limited to some models.
    assert requests.get(f"{secured.url}/metrics", headers=auth).status_code == 403
    assert requests.get(f"{secured.url}/metrics").status_code == 401
    assert requests.get(f"{secured.url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_health_stays_open(secured):
    assert requests.get(f"{secured.url}/v2/health/ready").status_code == 200
    assert requests.get(f"{secured.url}/v2/health/live").status_code == 200
    assert requests.get(f"{secured.url}/v2/models/scale/ready").status_code == 200
    c = tc.InferenceServerClient(secured.grpc_target)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("scale")
    with grpc.insecure_channel(secured.grpc_target) as ch:
        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == \
            health_pb2.HealthCheckResponse.SERVING


def test_health_can_need_tokens(tmp_path, repo):
    f = tokens_file(tmp_path / "tokens", f"{ADMIN}\n")
    with mserve.start(repo, port=0, grpc_port=0, quiet=True, auth_tokens_file=f,
                      open_health_checks=False) as s:
        s.wait_ready()
        assert requests.get(f"{s.url}/v2/health/ready").status_code == 401
        assert requests.get(f"{s.url}/v2/health/ready", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
        code = grpc_code(lambda: tc.InferenceServerClient(s.grpc_target).is_server_ready())
        assert code == "StatusCode.UNAUTHENTICATED"


def test_grpc_needs_a_valid_token(secured):
    assert grpc_code(lambda: grpc_infer(secured, "scale")) == "StatusCode.UNAUTHENTICATED"
    assert grpc_code(lambda: grpc_infer(secured, "scale", "wrong-token-xxxxxxxx")) == "StatusCode.UNAUTHENTICATED"
    assert grpc_infer(secured, "scale", ADMIN).tolist() == [[2.0] * 4]
    assert grpc_infer(secured, "scale", LIMITED).tolist() == [[2.0] * 4]
    assert grpc_code(lambda: grpc_infer(secured, "other", LIMITED)) == "StatusCode.PERMISSION_DENIED"
    c = tc.InferenceServerClient(secured.grpc_target)
    assert grpc_code(lambda: c.get_server_metadata(headers={"authorization": f"Bearer {LIMITED}"})) == \
        "StatusCode.PERMISSION_DENIED"
    assert c.get_server_metadata(headers={"authorization": f"Bearer {ADMIN}"}).name == "mserve"
    assert grpc_code(lambda: c.get_model_metadata("scale")) == "StatusCode.UNAUTHENTICATED"


def test_tokens_file_is_reloaded(secured):
    new = "rotated-token-ZYXWVUTS"
    path = secured.tokens_path
    tmp = path.with_suffix(".new")
    tmp.write_text(f"{new} rotated\n")
    os.replace(tmp, path)
    deadline = time.monotonic() + 10
    while rest_predict(secured, "scale", new).status_code != 200:
        assert time.monotonic() < deadline, "the new token was not picked up"
        time.sleep(0.2)
    assert rest_predict(secured, "scale", ADMIN).status_code == 401
    assert grpc_infer(secured, "other", new).tolist() == [[3.0] * 4]
    # A broken file keeps the tokens in force.
    tmp.write_text(f"{new} a b c\n")
    os.replace(tmp, path)
    time.sleep(1.5)
    assert rest_predict(secured, "scale", new).status_code == 200


def test_tokens_from_the_environment(repo, monkeypatch):
    monkeypatch.setenv("MSERVE_TEST_TOKENS", f"{ADMIN} ops; {LIMITED} bot models=other")
    with mserve.start(repo, port=0, quiet=True, auth_tokens_env="MSERVE_TEST_TOKENS") as s:
        s.wait_ready()
        assert rest_predict(s, "scale", ADMIN).status_code == 200
        assert rest_predict(s, "other", LIMITED).status_code == 200
        assert rest_predict(s, "scale", LIMITED).status_code == 403
        assert rest_predict(s, "scale").status_code == 401


@pytest.mark.parametrize("text,needle", [("short\n", "at least 8"), (f"{ADMIN} a b\n", "extra word"),
                                         (f"{ADMIN} models=\n", "lists no model"), ("# nothing\n", "no tokens")])
def test_bad_tokens_file_is_refused_at_start(tmp_path, repo, text, needle):
    f = tokens_file(tmp_path / "t", text)
    with pytest.raises(mserve.InvalidArgument, match=needle):
        mserve.start(repo, port=0, quiet=True, auth_tokens_file=f)


def test_missing_tokens_sources_are_refused(tmp_path, repo):
    with pytest.raises(mserve.InvalidArgument, match="cannot read"):
        mserve.start(repo, port=0, quiet=True, auth_tokens_file=str(tmp_path / "absent"))
    with pytest.raises(mserve.InvalidArgument, match="MSERVE_NO_SUCH_VAR"):
        mserve.start(repo, port=0, quiet=True, auth_tokens_env="MSERVE_NO_SUCH_VAR")


@pytest.mark.parametrize("cidrs,allowed", [(["10.0.0.0/8"], False), (["127.0.0.0/8"], True),
                                           (["127.0.0.1"], True), (["::1/128", "192.168.0.0/16"], False),
                                           (["127.0.0.2/32", "0.0.0.0/0"], True), (["127.0.0.0/31"], True)])
def test_client_allow_list(repo, cidrs, allowed):
    with mserve.start(repo, port=0, grpc_port=0, quiet=True, allow_cidrs=cidrs) as s:
        s.wait_ready()
        r = rest_predict(s, "scale")
        assert r.status_code == (200 if allowed else 403), r.text
        if allowed:
            assert grpc_infer(s, "scale").tolist() == [[2.0] * 4]
        else:
            assert "127.0.0.1" in r.json()["error"]
            assert grpc_code(lambda: grpc_infer(s, "scale")) == "StatusCode.PERMISSION_DENIED"
            # Health checks pass the token check, never the allow-list.
            assert requests.get(f"{s.url}/v2/health/ready").status_code == 403
            assert grpc_code(lambda: tc.InferenceServerClient(s.grpc_target).is_server_live()) == \
                "StatusCode.PERMISSION_DENIED"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-an-ip", "::1/129", "10.0.0.0/x"])
def test_bad_allow_list_is_refused(repo, bad):
    with pytest.raises(mserve.InvalidArgument, match="allow-list"):
        mserve.start(repo, port=0, quiet=True, allow_cidrs=[bad])
