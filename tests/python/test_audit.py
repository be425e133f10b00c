"""The audit log: one JSON line per request over REST and gRPC (client, identity, model, version,
endpoint, status, latency, request id; never the payload), size-based rotation, and a disk that
refuses writes never failing a request."""
import json
import os
import time

import numpy as np
import pytest
import requests

import mserve
from serve_util import scale_model, write_version

grpc = pytest.importorskip("grpc")
tc = pytest.importorskip("tritonclient.grpc")

TOKEN = "audit-token-123456789"
SECRET_VALUE = 12345.678  # a payload value that must never appear in the log


def read_lines(path, n, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(l) for l in open(path).read().splitlines() if l.strip()] if os.path.exists(path) else []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


@pytest.fixture
def audited(tmp_path):
    write_version(tmp_path / "m", 1, scale_model(2.0))
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} alice\n")
    log = tmp_path / "audit.log"
    with mserve.start({"m": str(tmp_path / "m")}, port=0, grpc_port=0, quiet=True,
                      auth_tokens_file=str(tokens), audit_log=str(log)) as s:
        s.wait_ready()
        s.log = log
        yield s


def test_one_line_per_request_without_payloads(audited):
    s = audited
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"instances": [[SECRET_VALUE, 1, 2, 3]]}
    r = requests.post(f"{s.url}/v1/models/m:predict", json=body, headers={**auth, "X-Request-Id": "req-42"})
    assert r.status_code == 200 and r.headers["X-Request-Id"] == "req-42"
    r = requests.post(f"{s.url}/v1/models/m/versions/9:predict", json=body, headers=auth)
    assert r.status_code == 404 and r.headers["X-Request-Id"]  # a generated id comes back
    assert requests.post(f"{s.url}/v1/models/m:predict", json=body).status_code == 401
    c = tc.InferenceServerClient(s.grpc_target)
    x = tc.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.array([[SECRET_VALUE, 0, 0, 0]], np.float32))
    c.infer("m", [x], headers={"authorization": f"Bearer {TOKEN}", "x-request-id": "grpc-7"})
    lines = read_lines(s.log, 4)
    assert len(lines) == 4, lines
    ok, missing, denied, g = lines
    assert ok["protocol"] == "http" and ok["client"] == "127.0.0.1" and ok["identity"] == "alice"
    assert (ok["model"], ok["version"], ok["endpoint"], ok["method"], ok["status"]) == ("m", 1, "tfs_predict", "POST",
                                                                                        200)
    assert ok["request_id"] == "req-42" and ok["latency_ms"] >= 0
    assert ok["time"].endswith("Z") and "T" in ok["time"]
    assert missing["status"] == 404 and missing["request_id"] and missing["request_id"] != "req-42"
    assert denied["status"] == 401 and denied["identity"] == "" and denied["endpoint"] == "denied"
    assert g["protocol"] == "grpc" and g["endpoint"] == "grpc_v2_infer" and g["status"] == 0
    assert g["status_name"] == "OK" and g["identity"] == "alice" and g["request_id"] == "grpc-7"
    assert g["client"].startswith("ipv4:127.0.0.1:") and (g["model"], g["version"]) == ("m", 1)
    text = open(s.log).read()
    assert "12345" not in text and "instances" not in text


def test_bad_request_ids_are_replaced(audited):
    s = audited
    for given in ("x" * 200, "a b", "<script>"):
        r = requests.get(f"{s.url}/v2/health/ready", headers={"X-Request-Id": given})
        assert r.headers["X-Request-Id"] != given and len(r.headers["X-Request-Id"]) <= 40


def test_rotation_keeps_a_bounded_number_of_files(tmp_path):
    log = tmp_path / "audit.log"
    with mserve.start(mserve.load(scale_model(1.0)), model_name="m", port=0, quiet=True,
                      audit_log=str(log), audit_log_max_bytes=2048, audit_log_keep=2) as s:
        with requests.Session() as sess:
            for _ in range(150):
                assert sess.get(f"{s.url}/v2/health/live").status_code == 200
    names = sorted(os.listdir(tmp_path))
    assert names == ["audit.log", "audit.log.1", "audit.log.2"], names
    total = 0
    for n in names:
        size = os.path.getsize(tmp_path / n)
        assert size <= 2048
        total += len([json.loads(l) for l in open(tmp_path / n).read().splitlines()])
    assert 0 < total <= 150  # the oldest went away, whole lines only


def test_a_failing_disk_never_fails_requests(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    with mserve.start(mserve.load(scale_model(3.0)), model_name="m", port=0, quiet=True,
                      audit_log="/dev/full") as s:
        for _ in range(20):
            r = requests.post(f"{s.url}/v1/models/m:predict", json={"instances": [[1, 1, 1, 1]]})
            assert r.status_code == 200 and r.json()["predictions"] == [[3.0] * 4]
        deadline = time.monotonic() + 5
        while True:
            metrics = requests.get(f"{s.url}/metrics").text
            lost = [line for line in metrics.splitlines()
                    if line.startswith('mserve_audit_lines_lost_total{reason="write_error"}')]
            if lost and int(lost[0].split()[-1]) > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert lost and int(lost[0].split()[-1]) > 0


def test_unopenable_audit_log_is_refused_at_start(tmp_path):
    with pytest.raises(mserve.InvalidArgument, match="cannot open the audit log"):
        mserve.start(mserve.load(scale_model(1.0)), port=0, quiet=True,
                     audit_log=str(tmp_path / "no" / "such" / "dir" / "audit.log"))
    with pytest.raises(mserve.InvalidArgument, match="at least 1024"):
        mserve.start(mserve.load(scale_model(1.0)), port=0, quiet=True,
                     audit_log=str(tmp_path / "a.log"), audit_log_max_bytes=10)
