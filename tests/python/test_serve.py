"""The HTTP server's endpoints against real HTTP clients: TensorFlow Serving REST (requests),
KServe v2 (requests and tritonclient.http), metrics, limits and errors."""
import json
import os
import re
import socket
import threading

import numpy as np
import pytest
import requests

import mserve
from serve_util import scale_model, string_model, two_io_model, write_version

tritonclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    write_version(root / "scale", 1, scale_model(1.0))
    write_version(root / "scale", 2, scale_model(2.0))
    write_version(root / "two", 1, two_io_model())
    write_version(root / "str", 1, string_model())
    cfg = root / "models.config"
    cfg.write_text(f"""model_config_list {{
  config {{ name: 'scale' base_path: '{root / "scale"}' model_platform: 'onnx'
           model_version_policy {{ all {{}} }}
           version_labels {{ key: 'stable' value: 1 }} version_labels {{ key: 'canary' value: 2 }} }}
  config {{ name: 'two' base_path: '{root / "two"}' }}
  config {{ name: 'str' base_path: '{root / "str"}' }}
}}""")
    with mserve.start(str(cfg), port=0, quiet=True, max_body_bytes=1 << 20) as s:
        s.wait_ready()
        yield s


def post(server, path, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.url + path, data=data, **kw)


X = np.arange(8, dtype=np.float32).reshape(2, 4) / 3


# ---- TensorFlow Serving REST ----

def test_row_format_uses_newest_version(server):
    r = post(server, "/v1/models/scale:predict", {"instances": X.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], X * 2, rtol=1e-6)


@pytest.mark.parametrize("path,factor", [("/v1/models/scale/versions/1:predict", 1.0),
                                          ("/v1/models/scale/labels/stable:predict", 1.0),
                                          ("/v1/models/scale/labels/canary:predict", 2.0),
                                          ("/V1/Models/scale/VERSIONS/1:PREDICT", 1.0)])
def test_versions_and_labels(server, path, factor):
    r = post(server, path, {"signature_name": "serving_default", "instances": X.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], X * factor, rtol=1e-6)


def test_columnar_format(server):
    r = post(server, "/v1/models/scale:predict", {"inputs": X.tolist()})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["outputs"], X * 2, rtol=1e-6)
    r = post(server, "/v1/models/scale:predict", {"inputs": {"x": X.tolist()}})
    np.testing.assert_allclose(r.json()["outputs"], X * 2, rtol=1e-6)


def test_multi_input_row_and_columnar(server):
    a = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    b = np.array([[3, 2, 1], [0, 9, 0]], np.float32)
    rows = [{"a": a[i].tolist(), "b": b[i].tolist()} for i in range(2)]
    r = post(server, "/v1/models/two:predict", {"instances": rows})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 2
    for i in range(2):
        np.testing.assert_allclose(preds[i]["sum"], a[i] + b[i])
        assert preds[i]["flag"] == (a[i] > b[i]).tolist()
    r = post(server, "/v1/models/two:predict", {"inputs": {"a": a.tolist(), "b": b.tolist()}})
    out = r.json()["outputs"]
    np.testing.assert_allclose(out["sum"], a + b)
    assert out["flag"] == (a > b).tolist()


def test_nan_and_infinity_tokens(server):
    r = post(server, "/v1/models/scale/versions/1:predict", '{"instances": [[NaN, Infinity, -Infinity, 1.5]]}')
    assert r.status_code == 200, r.text
    assert r.text.replace(" ", "") == '{"predictions":[[NaN,Infinity,-Infinity,1.5]]}'
    metrics = requests.get(server.url + "/monitoring/prometheus/metrics").text
    assert 'mserve_nonfinite_outputs_total{model="scale",version="1"}' in metrics


def test_status_and_metadata(server):
    st = requests.get(server.url + "/v1/models/scale").json()
    assert [(v["version"], v["state"]) for v in st["model_version_status"]] == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
    assert st["model_version_status"][0]["status"]["error_code"] == "OK"
    st = requests.get(server.url + "/v1/models/scale/labels/stable").json()
    assert [v["version"] for v in st["model_version_status"]] == ["1"]
    md = requests.get(server.url + "/v1/models/two/metadata").json()
    assert md["model_spec"] == {"name": "two", "signature_name": "", "version": "1"}
    sig = md["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["a"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["a"]["tensor_shape"]["dim"]] == ["-1", "3"]
    assert sig["outputs"]["flag"]["dtype"] == "DT_BOOL"


@pytest.mark.parametrize("path,body,code,needle", [
    ("/v1/models/scale:predict", "{not json", 400, "malformed JSON"),
    ("/v1/models/scale:predict", {"instances": [[1, 2]]}, 400, "dimension 1 must be 4"),
    ("/v1/models/scale:predict", {"instances": [[1, 2, 3, 4], [1, 2]]}, 400, "ragged"),
    ("/v1/models/scale:predict", {"instances": [["a", 2, 3, 4]]}, 400, "expected a number"),
    ("/v1/models/scale:predict", {"instances": [], "inputs": []}, 400, "exactly one"),
    ("/v1/models/scale:predict", {"inputs": {"zz": [[1, 2, 3, 4]]}}, 400, "lacks input 'x'"),
    ("/v1/models/scale:predict", {"signature_name": "other", "instances": [[1, 2, 3, 4]]}, 400, "signature"),
    ("/v1/models/two:predict", {"instances": [[1, 2, 3]]}, 400, "object naming them"),
    ("/v1/models/nope:predict", {"instances": [[1]]}, 404, "not served"),
    ("/v1/models/scale/versions/7:predict", {"instances": [[1]]}, 404, "version 7"),
    ("/v1/models/scale/labels/none:predict", {"instances": [[1]]}, 404, "label"),
    ("/v1/models/scale:classify", {"examples": []}, 501, "predict"),
    ("/v1/models/scale:regress", {"examples": []}, 501, "predict"),
    ("/v1/models/scale:explode", {}, 404, "no such method"),
    ("/v1/nothing", {}, 404, "no such endpoint"),
])
def test_tfs_errors(server, path, body, code, needle):
    r = post(server, path, body)
    assert r.status_code == code, r.text
    assert needle in r.json()["error"]


def test_body_limit_is_413(server):
    big = b'{"instances": [' + b"0," * (600 * 1024) + b"0]}"
    r = post(server, "/v1/models/scale:predict", big)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]
    assert requests.get(server.url + "/v2/health/live").status_code == 200  # still serving


def test_malformed_http_gets_400(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")


def _raw_request(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def _read_responses(s: socket.socket, n: int) -> list:
    """`n` HTTP responses (status, body) read from `s`, framed by their Content-Length."""
    buf, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, "connection closed early"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        if head.startswith(b"HTTP/1.1 100"):
            continue
        length = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
        while len(buf) < length:
            buf += s.recv(65536)
        out.append((int(head.split()[1]), buf[:length]))
        buf = buf[length:]
    return out


def test_bodies_in_pieces_pipelined_chunked_and_continued(server):
    """Every way a body can arrive reads the same tensor: in small pieces with pauses, two
    requests in one send, chunked, after Expect: 100-continue, a large body then a small one on
    one connection (its buffer reused, then shrunk), and a body cut short."""
    body = json.dumps({"instances": X.tolist()}).encode()
    want = (X * 2).tolist()
    path = "/v1/models/scale:predict"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        req = _raw_request(path, body)
        for i in range(0, len(req), 7):  # a slow client: headers and body in 7-byte pieces
            s.sendall(req[i:i + 7])
        s.sendall(req + req)  # pipelined: the second request follows the first body at once
        chunked = (f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n".encode()
                   + body[:5] + f"\r\n{len(body) - 5:x}\r\n".encode() + body[5:] + b"\r\n0\r\n\r\n")
        s.sendall(chunked)
        big = np.random.default_rng(0).random((3000, 4), dtype=np.float32)
        s.sendall(_raw_request(path, json.dumps({"instances": big.tolist()}).encode()))
        s.sendall(_raw_request(path, body))
        answers = _read_responses(s, 6)
    for status, text in answers[:4] + answers[5:]:
        assert status == 200, text
        np.testing.assert_allclose(json.loads(text)["predictions"], want, rtol=1e-6)
    assert answers[4][0] == 200
    np.testing.assert_allclose(json.loads(answers[4][1])["predictions"], big * 2, rtol=1e-6)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(_raw_request(path, body, "Expect: 100-continue\r\n")[:-len(body)])
        assert s.recv(4096).startswith(b"HTTP/1.1 100")
        s.sendall(body)
        (status, text), = _read_responses(s, 1)
        assert status == 200
        np.testing.assert_allclose(json.loads(text)["predictions"], want, rtol=1e-6)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(_raw_request(path, body)[:-10])  # the client gives up mid-body
    np.testing.assert_allclose(post(server, path, body).json()["predictions"], want, rtol=1e-6)  # still serving


# ---- KServe v2 ----

def test_v2_health_and_metadata(server):
    assert requests.get(server.url + "/v2/health/live").status_code == 200
    assert requests.get(server.url + "/v2/health/ready").status_code == 200
    meta = requests.get(server.url + "/v2").json()
    assert "binary_tensor_data" in meta["extensions"]
    m = requests.get(server.url + "/v2/models/two").json()
    assert m["name"] == "two" and m["versions"] == ["1"]
    assert m["inputs"] == [{"name": "a", "datatype": "FP32", "shape": [-1, 3]},
                           {"name": "b", "datatype": "FP32", "shape": [-1, 3]}]
    assert {"name": "flag", "datatype": "BOOL", "shape": [-1, 3]} in m["outputs"]
    assert requests.get(server.url + "/v2/models/scale/versions/1/ready").status_code == 200
    assert requests.get(server.url + "/v2/models/scale/versions/9/ready").status_code == 400
    assert requests.get(server.url + "/v2/models/nope/ready").status_code == 404


def test_v2_json_infer(server):
    body = {"id": "req-1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.tolist()}]}
    r = post(server, "/v2/models/scale/versions/1/infer", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "req-1" and out["model_name"] == "scale" and out["model_version"] == "1"
    assert out["outputs"][0]["shape"] == [2, 4] and out["outputs"][0]["datatype"] == "FP32"
    np.testing.assert_allclose(out["outputs"][0]["data"], X.ravel(), rtol=1e-6)


@pytest.mark.parametrize("body,needle", [
    ({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "INT32", "data": [0] * 8}]}, "datatype"),
    ({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [0] * 7}]}, "7 values"),
    ({"inputs": [{"name": "q", "shape": [1], "datatype": "FP32", "data": [0]}]}, "no input 'q'"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}],
      "outputs": [{"name": "nope"}]}, "no output 'nope'"),
    ({"inputs": []}, "missing input 'x'"),
])
def test_v2_errors(server, body, needle):
    r = post(server, "/v2/models/scale/infer", body)
    assert r.status_code == 400
    assert needle in r.json()["error"]


def test_v2_binary_header_checks(server):
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    ok = post(server, "/v2/models/scale/versions/1/infer", header + np.ones(4, np.float32).tobytes(),
              headers={"Inference-Header-Content-Length": str(len(header))})
    assert ok.status_code == 200, ok.text
    np.testing.assert_allclose(ok.json()["outputs"][0]["data"], [1, 1, 1, 1])
    short = post(server, "/v2/models/scale/infer", header + b"\0" * 8,
                 headers={"Inference-Header-Content-Length": str(len(header))})
    assert short.status_code == 400 and "ends before" in short.json()["error"]
    bad = post(server, "/v2/models/scale/infer", header, headers={"Inference-Header-Content-Length": "99999"})
    assert bad.status_code == 400


@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_v2_binary_at_any_alignment(server, shift):
    """Binary tensors after JSON headers of every length mod 4 read the same: placed on a boundary
    when the body has a Content-Length, copied when it comes chunked."""
    x = np.random.default_rng(shift).random((3, 4), dtype=np.float32)
    header = json.dumps({"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 48}}]}).encode() + b" " * shift
    r = post(server, "/v2/models/scale/versions/2/infer", header + x.tobytes(),
             headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(3, 4), x * 2)
    # Chunked (no Content-Length): read as it comes, a misaligned tensor is copied.
    r = requests.post(server.url + "/v2/models/scale/versions/2/infer", data=iter([header, x.tobytes()]),
                      headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(3, 4), x * 2)


def test_tritonclient_binary_roundtrip(server):
    client = tritonclient.InferenceServerClient(server.url[len("http://"):])
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("two")
    meta = client.get_model_metadata("two")
    assert [i["name"] for i in meta["inputs"]] == ["a", "b"]
    a = np.random.rand(5, 3).astype(np.float32)
    b = np.random.rand(5, 3).astype(np.float32)
    ins = [tritonclient.InferInput("a", a.shape, "FP32"), tritonclient.InferInput("b", b.shape, "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    res = client.infer("two", ins)  # binary both ways by default
    np.testing.assert_array_equal(res.as_numpy("sum"), a + b)
    np.testing.assert_array_equal(res.as_numpy("flag"), a > b)
    outs = [tritonclient.InferRequestedOutput("flag", binary_data=False)]
    res = client.infer("two", ins, outputs=outs)
    np.testing.assert_array_equal(res.as_numpy("flag"), a > b)
    assert res.as_numpy("sum") is None
    res = client.infer("scale", [_triton_input(X)], model_version="1")
    np.testing.assert_allclose(res.as_numpy("y"), X)


def _triton_input(x):
    i = tritonclient.InferInput("x", x.shape, "FP32")
    i.set_data_from_numpy(x, binary_data=False)
    return i


# ---- metrics, connections ----

def test_prometheus_metrics(server):
    post(server, "/v1/models/scale:predict", {"instances": X.tolist()})
    text = requests.get(server.url + "/metrics").text
    assert "# TYPE mserve_requests_total counter" in text
    assert 'mserve_requests_total{model="scale",version="2",api="tfs_predict",status="200"}' in text
    assert 'mserve_request_latency_seconds_bucket{model="scale",version="2",api="tfs_predict",le="+Inf"}' in text
    assert 'mserve_model_state{model="scale",version="1",state="AVAILABLE"} 1' in text


def _stage_sums(text: str) -> dict:
    sums = {}
    for m in re.finditer(r'mserve_request_stage_seconds_(sum|count)\{model="scale",version="1",api="v2_infer",'
                         r'stage="(\w+)"\} (\S+)', text):
        sums[(m.group(1), m.group(2))] = float(m.group(3))
    for m in re.finditer(r'mserve_http_io_seconds_total\{direction="(\w+)"\} (\S+)', text):
        sums[("io", m.group(1))] = float(m.group(2))
    m = re.search(r"^mserve_http_requests_total (\d+)$", text, re.M)
    sums[("io", "requests")] = float(m.group(1))
    return sums


def test_request_stages_in_metrics(server):
    """Each predict's decode, run and encode times add up to at most its latency; errors before
    decoding add no stages; the HTTP reads and writes are counted."""
    before = _stage_sums(requests.get(server.url + "/metrics").text)
    for _ in range(5):
        assert post(server, "/v2/models/scale/versions/1/infer", {"inputs": [
            {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}).status_code == 200
    assert post(server, "/v2/models/scale/versions/1/infer", b"{not json").status_code == 400
    text = requests.get(server.url + "/metrics").text
    after = _stage_sums(text)
    for stage in ("decode", "run", "encode"):
        assert after[("count", stage)] - before.get(("count", stage), 0) == 5
        assert after[("sum", stage)] > before.get(("sum", stage), 0)
    lat = re.search(r'mserve_request_latency_seconds_sum\{model="scale",version="1",api="v2_infer"\} (\S+)', text)
    assert sum(after[("sum", s)] for s in ("decode", "run", "encode")) <= float(lat.group(1))
    assert after[("io", "requests")] - before[("io", "requests")] >= 7  # 6 posts and a scrape
    assert after[("io", "write")] > before[("io", "write")] and after[("io", "read")] >= before[("io", "read")]


def test_hundreds_of_concurrent_keepalive_connections(server):
    body = json.dumps({"instances": X.tolist()}).encode()
    req = (f"POST /v1/models/scale:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(300)]
    try:
        for _rounds in range(2):  # keep-alive: a second request on every open connection
            for s in socks:
                s.sendall(req)
            for s in socks:
                data = b""
                while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
                    chunk = s.recv(65536)
                    assert chunk, "connection closed"
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()


def _content_length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":")[1])
    return 0


def test_concurrent_clients_match_direct_predict(server):
    model = mserve.load(scale_model(2.0).SerializeToString())
    errors = []

    def client(seed):
        rng = np.random.default_rng(seed)
        with requests.Session() as sess:
            for _ in range(20):
                x = rng.standard_normal((rng.integers(1, 5), 4)).astype(np.float32)
                r = sess.post(server.url + "/v1/models/scale:predict", data=json.dumps({"instances": x.tolist()}))
                if r.status_code != 200 or not np.allclose(r.json()["predictions"], model.predict(x), rtol=1e-6):
                    errors.append(r.text)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_in_memory_models_and_port_in_use(tmp_path):
    m = mserve.load(scale_model(3.0).SerializeToString())
    with mserve.start({"mem": m}, port=0, quiet=True) as s:
        r = requests.post(s.url + "/v1/models/mem:predict", json={"instances": [[1, 2, 3, 4]]})
        assert r.json() == {"predictions": [[3.0, 6.0, 9.0, 12.0]]}
        with pytest.raises(mserve.Unavailable, match="cannot listen"):
            mserve.start({"mem": m}, port=s.port, quiet=True)


def test_readme_curl_against_the_example_repository(tmp_path):
    """The curl line from the README (TensorFlow Serving's tutorial request) as written, on a
    free port instead of 8501."""
    import pathlib
    import re
    import shutil
    import subprocess

    from mserve import examples
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    cmd = re.search(r"^curl .*half_plus_two:predict$", readme, re.M).group(0)
    config = examples.save_repository(str(tmp_path / "repository"))
    with mserve.start(config, port=0, quiet=True) as s:
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # curl is not ours to sanitize
        out = subprocess.run(cmd.replace("localhost:8501", f"127.0.0.1:{s.port}"), shell=True,
                             capture_output=True, text=True, timeout=30, env=env).stdout
        assert json.loads(out) == {"predictions": [2.5, 3.0, 4.5]}
        assert requests.get(f"{s.url}/v1/models/mlp").json()["model_version_status"][0]["state"] == "AVAILABLE"


def test_string_tensors_tfs_and_b64(server):
    r = post(server, "/v1/models/str:predict", {"instances": ["abc", {"b64": "aGVsbG8="}]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [{"up": "ABC", "s_bytes": {"b64": "YWJj"}},
                                       {"up": "HELLO", "s_bytes": {"b64": "aGVsbG8="}}]
    r = post(server, "/v1/models/str:predict", {"inputs": {"s": ["x"]}})
    assert r.json()["outputs"] == {"up": ["X"], "s_bytes": [{"b64": "eA=="}]}
    bad = post(server, "/v1/models/str:predict", {"instances": [{"b64": "***"}]})
    assert bad.status_code == 400 and "base64" in bad.json()["error"]
    bad = post(server, "/v1/models/str:predict", {"instances": [3]})
    assert bad.status_code == 400 and "expected a string" in bad.json()["error"]
    md = requests.get(server.url + "/v1/models/str/metadata").json()
    assert md["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["s"]["dtype"] == "DT_STRING"


def test_string_tensors_v2_json_and_binary(server):
    r = post(server, "/v2/models/str/infer", {"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES",
                                                         "data": ["ab", "Cd"]}]})
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["up"]["datatype"] == "BYTES" and out["up"]["data"] == ["AB", "CD"]
    client = tritonclient.InferenceServerClient(server.url[len("http://"):])
    s = np.array([b"mixed Case", "\u00e9t\u00e9".encode(), b""], dtype=object)
    i = tritonclient.InferInput("s", [3], "BYTES")
    i.set_data_from_numpy(s)  # binary, length-prefixed
    res = client.infer("str", [i])
    assert res.as_numpy("up").tolist() == [b"MIXED CASE", "\u00c9T\u00c9".encode(), b""]
    assert res.as_numpy("s_bytes").tolist() == s.tolist()
