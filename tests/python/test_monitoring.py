"""Drift monitoring with real servers: a version profiled with ``mserve.profile`` (reference
data in, mserve.profile.json beside the model), requests drawn from the reference stay below PSI
0.1, a shifted distribution flips the drifting flag within one window (status endpoint, metric,
audit event), NaN inputs are counted, the server's PSI equals a naive numpy computation on the
same bins, and REST, gRPC and batched requests all count."""
import json
import math
import re
import time

import numpy as np
import pytest
import requests
from onnx import helper

import mserve
from op_harness import make_model
from serve_util import write_version

grpc = pytest.importorskip("grpc")
pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402

FEATURES = 4


def classifier():
    """probs = softmax(x @ w), x: float32[batch, 4], 3 classes."""
    w = np.array([[1.0, -1.0, 0.0], [0.5, 0.5, -1.0], [0.0, 1.0, 1.0], [-1.0, 0.0, 0.5]], np.float32)
    return make_model([helper.make_node("MatMul", ["x", "w"], ["logits"]),
                       helper.make_node("Softmax", ["logits"], ["probs"], axis=1)],
                      [("x", np.float32, ["batch", FEATURES])], [("probs", np.float32, ["batch", 3])], {"w": w})


def reference(n=4000, seed=0):
    return np.random.default_rng(seed).standard_normal((n, FEATURES)).astype(np.float32)


@pytest.fixture
def profiled(tmp_path):
    path = write_version(tmp_path / "clf", 1, classifier())
    prof = mserve.profile(path, reference())
    assert json.load(open(tmp_path / "clf" / "1" / "mserve.profile.json")) == prof
    return str(tmp_path / "clf"), prof


def start(base, tmp_path, window=5, **options):
    cfg = tmp_path / "models.config"
    cfg.write_text(f"""model_config_list {{ config {{ name: 'clf' base_path: '{base}'
      monitoring {{ drift_threshold: 0.25 window_seconds: {window} min_rows: 200 }} }} }}""")
    return mserve.start(str(cfg), port=0, quiet=True, **options)


def predict(session, url, x):
    r = session.post(f"{url}/v1/models/clf:predict", data=json.dumps({"instances": x.tolist()}))
    assert r.status_code == 200, r.text
    return r


def metric(url, name, **labels):
    for line in requests.get(f"{url}/metrics").text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and all(f'{k}="{v}"' in (m.group(2) or "").split(",") for k, v in labels.items()):
            return float(m.group(3))
    raise AssertionError(f"no {name}{labels} in the metrics")


def monitoring(url):
    (v,) = requests.get(f"{url}/v1/models/clf").json()["monitoring"]
    return v


def naive_psi(edges, fractions, values):
    """PSI of `values` binned at `edges` (bin i: edges[i-1] <= v < edges[i]) against `fractions`,
    shares floored at 1e-4: written out element by element, independent of mserve's code."""
    counts = [0] * (len(edges) + 1)
    for v in values:
        i = 0
        while i < len(edges) and v >= edges[i]:
            i += 1
        counts[i] += 1
    total = sum(counts)
    out = 0.0
    for c, q in zip(counts, fractions):
        p, q = max(c / total, 1e-4), max(q, 1e-4)
        out += (p - q) * math.log(p / q)
    return out


def test_the_profile_describes_the_reference(profiled):
    _, prof = profiled
    names = [f["name"] for f in prof["features"]]
    assert names == ["x[0]", "x[1]", "x[2]", "x[3]", "probs:class"]
    x1 = prof["features"][1]
    assert len(x1["edges"]) == 9 and x1["fractions"] == pytest.approx([0.1] * 10, abs=0.002)
    assert x1["min"] < -3 and x1["max"] > 3 and x1["nan"] == 0
    cls = prof["features"][4]
    assert cls["kind"] == "categorical" and sorted(cls["values"]) == [0, 1, 2]
    assert sum(cls["fractions"]) == pytest.approx(1)


def test_reference_traffic_stays_below_0_1_and_a_shift_flips_the_flag(profiled, tmp_path):
    base, prof = profiled
    audit = tmp_path / "audit.log"
    with start(base, tmp_path, audit_log=str(audit)) as s:
        s.wait_ready()
        sess = requests.Session()
        live = reference(2000, seed=1)
        for i in range(0, 2000, 20):
            predict(sess, s.url, live[i:i + 20])
        st = monitoring(s.url)
        assert st["window_rows"] == 2000 and not st["drifting"]
        assert all(f["psi"] < 0.1 for f in st["features"]), st["features"]
        assert metric(s.url, "mserve_drifting", model="clf", version="1") == 0
        # The server's PSI is the naive one on the same bins, for the rows it saw.
        for k in range(FEATURES):
            f = prof["features"][k]
            want = naive_psi(f["edges"], f["fractions"], live[:, k].astype(np.float64))
            assert st["features"][k]["psi"] == pytest.approx(want, rel=1e-8, abs=1e-12)  # 9 digits shown
            assert metric(s.url, "mserve_drift_psi", model="clf", feature=f"x[{k}]") == pytest.approx(want, rel=1e-6)
        # Shifted by 1.5 on x[2]: within one window (5 s) the flag is up.
        t0 = time.monotonic()
        shifted = reference(2000, seed=2)
        shifted[:, 2] += 1.5
        flipped = None
        for i in range(0, 2000, 20):
            predict(sess, s.url, shifted[i:i + 20])
            if monitoring(s.url)["drifting"]:
                flipped = time.monotonic() - t0
                break
        assert flipped is not None and flipped < 5, monitoring(s.url)
        st = monitoring(s.url)
        by_name = {f["name"]: f for f in st["features"]}
        assert by_name["x[2]"]["psi"] > 0.25 and by_name["x[0]"]["psi"] < 0.1
        assert metric(s.url, "mserve_drifting", model="clf", version="1") == 1
        assert metric(s.url, "mserve_drift_ks", model="clf", feature="x[2]") > 0.1  # a mixed window
        shares = {v: metric(s.url, "mserve_drift_share", model="clf", feature="probs:class", value=str(v))
                  for v in (0, 1, 2)}
        assert sum(shares.values()) == pytest.approx(1, abs=1e-6)
    events = [json.loads(line) for line in audit.read_text().splitlines() if '"event"' in line]
    assert [(e["event"], e["model"], e["version"]) for e in events] == [("drift_started", "clf", 1)]
    assert "x[2] PSI" in events[0]["detail"]


def test_nan_inputs_are_counted(profiled, tmp_path):
    base, _ = profiled
    with start(base, tmp_path) as s:
        s.wait_ready()
        sess = requests.Session()
        x = reference(10, seed=3)
        x[2, 1] = np.nan
        x[5, 1] = np.nan
        x[7, 3] = np.inf
        predict(sess, s.url, x)
        assert metric(s.url, "mserve_nonfinite_inputs_total", model="clf", version="1") == 3
        assert metric(s.url, "mserve_drift_nan_total", model="clf", feature="x[1]") == 2
        assert metric(s.url, "mserve_drift_out_of_range_total", model="clf", feature="x[3]") == 1
        by_name = {f["name"]: f for f in monitoring(s.url)["features"]}
        assert by_name["x[1]"]["rows"] == 8 and by_name["x[1]"]["nan"] == 2


def test_grpc_and_batched_requests_are_watched(profiled, tmp_path):
    base, _ = profiled
    with start(base, tmp_path, grpc_port=0, batching=True) as s:
        s.wait_ready()
        stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(s.grpc_target))
        x = reference(300, seed=4)
        for i in range(0, 300, 3):
            req = service_pb2.ModelInferRequest(model_name="clf")
            req.inputs.add(name="x", datatype="FP32", shape=[3, FEATURES])
            req.raw_input_contents.append(x[i:i + 3].tobytes())
            stub.ModelInfer(req)
        predict(requests.Session(), s.url, x[:50])
        st = monitoring(s.url)
        by_name = {f["name"]: f for f in st["features"]}
        assert by_name["x[0]"]["rows"] == 350 and by_name["probs:class"]["rows"] == 350


def test_a_broken_profile_fails_the_version_with_the_reason(tmp_path):
    write_version(tmp_path / "clf", 1, classifier())
    (tmp_path / "clf" / "1" / "mserve.profile.json").write_text(
        json.dumps({"mserve_profile": 1, "features": [{"name": "a", "tensor": "nope", "edges": [], "fractions": [1]}]}))
    with mserve.start({"clf": str(tmp_path / "clf")}, port=0, quiet=True) as s:
        deadline = time.time() + 30
        while time.time() < deadline:
            (v,) = requests.get(f"{s.url}/v1/models/clf").json()["model_version_status"]
            if v["state"] == "END":
                break
            time.sleep(0.05)
        assert v["state"] == "END" and "the model has no input 'nope'" in v["status"]["error_message"], v


def test_profile_from_the_command_line(tmp_path):
    import subprocess
    import sys
    path = write_version(tmp_path / "clf", 1, classifier())
    np.save(tmp_path / "ref.npy", reference(500))
    r = subprocess.run([sys.executable, "-m", "mserve", "profile", path, str(tmp_path / "ref.npy"), "--bins", "5"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "profiled 500 rows, 5 features" in r.stdout
    prof = json.load(open(tmp_path / "clf" / "1" / "mserve.profile.json"))
    assert len(prof["features"][0]["edges"]) == 4
    bad = subprocess.run([sys.executable, "-m", "mserve", "profile", path, str(tmp_path / "ref.npy"),
                          "--inputs", "nope"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no input 'nope'" in bad.stderr


def scale_repo(tmp_path):
    from serve_util import scale_model
    write_version(tmp_path / "a", 1, scale_model(2.0))
    write_version(tmp_path / "b", 1, scale_model(3.0))
    cfg = tmp_path / "models.config"
    cfg.write_text(f"""model_config_list {{
      config {{ name: 'a' base_path: '{tmp_path / "a"}' }}
      config {{ name: 'b' base_path: '{tmp_path / "b"}' monitoring {{ forbid_payload_logging: true }} }} }}""")
    return str(cfg)


def test_payload_sampling_logs_10_percent_with_the_audit_log_ids(tmp_path):
    import threading
    from concurrent.futures import ThreadPoolExecutor
    payload, audit = tmp_path / "payload.jsonl", tmp_path / "audit.log"
    with mserve.start(scale_repo(tmp_path), port=0, quiet=True, payload_log=str(payload), payload_sample_percent=10,
                      audit_log=str(audit)) as s:
        s.wait_ready()
        local = threading.local()
        sent = {}

        def call(i):
            if not hasattr(local, "s"):
                local.s = requests.Session()
            x = [[float(i), 1.0, 2.0, 3.0]]
            r = local.s.post(f"{s.url}/v1/models/a:predict", json={"instances": x})
            assert r.status_code == 200
            sent[r.headers["X-Request-Id"]] = x
            if i % 10 == 0:  # the forbidden model is never logged
                assert local.s.post(f"{s.url}/v1/models/b:predict", json={"instances": x}).status_code == 200

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(call, range(5000)))
        deadline = time.time() + 10
        while time.time() < deadline and metric(s.url, "mserve_payload_records_total", sink="file",
                                                outcome="written") < 2 * metric(s.url, "mserve_payload_sampled_total"):
            time.sleep(0.05)
        assert metric(s.url, "mserve_payload_records_total", sink="file", outcome="dropped") == 0
    records = [json.loads(line) for line in payload.read_text().splitlines()]
    requests_ = {r["id"]: r for r in records if r["type"] == "request"}
    responses = {r["id"]: r for r in records if r["type"] == "response"}
    assert 400 <= len(requests_) <= 600, len(requests_)  # 10% of 5000, +-2 points
    assert requests_.keys() == responses.keys()
    assert {r["model_name"] for r in records} == {"a"}
    audited = {json.loads(line)["request_id"] for line in audit.read_text().splitlines()}
    assert requests_.keys() <= audited
    for rid, r in requests_.items():
        (x,) = r["inputs"]
        assert (x["name"], x["datatype"], x["shape"]) == ("x", "FP32", [1, 4])
        assert x["data"] == sent[rid][0]
        (y,) = responses[rid]["outputs"]
        assert y["data"] == [2 * v for v in sent[rid][0]]


class _Collector:
    """An HTTP server that records the CloudEvents posted to it."""

    def __init__(self):
        import http.server
        import threading
        events = self.events = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_payloads_are_posted_as_kserve_cloudevents(profiled, tmp_path):
    base, _ = profiled
    collector = _Collector()
    try:
        with start(base, tmp_path, grpc_port=0, payload_log_url=collector.url, payload_sample_percent=100) as s:
            s.wait_ready()
            sess = requests.Session()
            ids = []
            for i in range(20):
                r = predict(sess, s.url, reference(2, seed=i))
                ids.append(r.headers["X-Request-Id"])
            stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(s.grpc_target))
            req = service_pb2.ModelInferRequest(model_name="clf")
            req.inputs.add(name="x", datatype="FP32", shape=[1, FEATURES])
            req.raw_input_contents.append(reference(1).tobytes())
            stub.ModelInfer(req, metadata=[("x-request-id", "grpc-call-1")])
            ids.append("grpc-call-1")
            deadline = time.time() + 10
            while time.time() < deadline and len(collector.events) < 2 * len(ids):
                time.sleep(0.05)
            assert metric(s.url, "mserve_payload_records_total", sink="url", outcome="written") == 2 * len(ids)
    finally:
        collector.close()
    by_type = {}
    for headers, body in collector.events:
        assert headers["ce-specversion"] == "1.0" and headers["ce-source"] == "mserve/clf"
        assert headers["content-type"] == "application/json" and headers["ce-inferenceservicename"] == "clf"
        assert headers["ce-id"] == body["id"] and body["model_name"] == "clf" and body["model_version"] == "1"
        by_type.setdefault(headers["ce-type"], []).append(body["id"])
    assert sorted(by_type["org.kubeflow.serving.inference.request"]) == sorted(ids)
    assert sorted(by_type["org.kubeflow.serving.inference.response"]) == sorted(ids)


def test_a_blocked_payload_sink_never_holds_up_a_request(profiled, tmp_path):
    import socket
    base, _ = profiled
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(16)  # accepts connections, never reads or answers
    url = f"http://127.0.0.1:{sink.getsockname()[1]}/"
    try:
        with start(base, tmp_path, payload_log_url=url, payload_sample_percent=100) as s:
            s.wait_ready()
            sess = requests.Session()
            for i in range(300):
                predict(sess, s.url, reference(1, seed=i))
            # Every request was answered while the sink had taken none of the 600 records: the
            # first post is still waiting for its answer (2 s), the rest are queued.
            done = metric(s.url, "mserve_payload_records_total", sink="url", outcome="written") + metric(
                s.url, "mserve_payload_records_total", sink="url", outcome="failed")
            assert done < 10 and metric(s.url, "mserve_payload_sampled_total") == 300
        # ... and the server stopped without waiting for the sink.
    finally:
        sink.close()


def test_payload_log_options_are_checked(tmp_path):
    cfg = scale_repo(tmp_path)
    with pytest.raises(mserve.InvalidArgument, match="payload_sample_percent must lie in 0..100"):
        mserve.start(cfg, port=0, quiet=True, payload_log=str(tmp_path / "p.jsonl"), payload_sample_percent=150)
    with pytest.raises(mserve.InvalidArgument, match="is not an http:// or https:// URL"):
        mserve.start(cfg, port=0, quiet=True, payload_log_url="ftp://example.com/x", payload_sample_percent=5)
    with pytest.raises(mserve.InvalidArgument, match="cannot open the payload log"):
        mserve.start(cfg, port=0, quiet=True, payload_log=str(tmp_path / "no" / "dir" / "p.jsonl"))


def test_drift_report_draws_the_payload_log(profiled, tmp_path):
    import subprocess
    import sys

    from mserve.monitoring import drift_report
    base, prof = profiled
    payload = tmp_path / "payload.jsonl"
    with start(base, tmp_path, payload_log=str(payload), payload_sample_percent=100) as s:
        s.wait_ready()
        sess = requests.Session()
        ref = reference(1000, seed=5)
        for i in range(0, 1000, 10):
            predict(sess, s.url, ref[i:i + 10])
        time.sleep(1.5)  # the two halves of the log's time span: one phase each
        shifted = reference(1000, seed=6)
        shifted[:, 0] -= 2
        for i in range(0, 1000, 10):
            predict(sess, s.url, shifted[i:i + 10])
        server_psi = {f["name"]: f["psi"] for f in monitoring(s.url)["features"]}
        deadline = time.time() + 10
        while time.time() < deadline and metric(s.url, "mserve_payload_records_total", sink="file",
                                                outcome="written") < 400:
            time.sleep(0.05)
    r = drift_report(tmp_path / "clf" / "1" / "mserve.profile.json", [payload], tmp_path / "report", buckets=2)
    # The log holds what the server's window held: the same PSI per feature.
    for name, v in r["features"].items():
        assert v == pytest.approx(server_psi[name], rel=1e-6, abs=1e-9), name
    first, second = r["psi_over_time"]["x[0]"]
    assert first < 0.1 and second > 0.25
    assert r["psi_over_time"]["x[1]"][1] < 0.1
    assert len(r["files"]) == len(prof["features"]) + 1
    for f in r["files"]:
        with open(f, "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    cli = subprocess.run([sys.executable, "-m", "mserve", "drift-report", str(tmp_path / "clf" / "1" /
                          "mserve.profile.json"), str(payload), "--out", str(tmp_path / "cli")],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines()[0].startswith("x[0]") and "drifting" in cli.stdout.splitlines()[0]
    assert (tmp_path / "cli" / "psi_over_time.png").exists()


def test_profile_chooses_columns_channels_and_kinds(tmp_path):
    # Columns picked per input, and the kinds: strings and few-valued integers are categorical.
    path = write_version(tmp_path / "clf", 1, classifier())
    prof = mserve.profile(path, reference(), columns={"x": [3, 1]}, outputs=False)
    assert [(f["name"], f["index"]) for f in prof["features"]] == [("x[3]", 3), ("x[1]", 1)]
    with pytest.raises(mserve.InvalidArgument, match=r"has 4 columns \(or channels\); \[9\]"):
        mserve.profile(path, reference(), columns={"x": [9]})
    with pytest.raises(mserve.InvalidArgument, match="not monitored"):
        mserve.profile(path, reference(), inputs=["x"], columns={"y": [0]})
    # An NHWC image: one feature per channel, the row mean exactly as the server samples it.
    image = make_model([helper.make_node("ReduceMean", ["img"], ["m"], axes=[1, 2, 3], keepdims=0)],
                       [("img", np.float32, ["batch", 32, 32, 3])], [("m", np.float32, ["batch"])])
    ipath = write_version(tmp_path / "img", 1, image)
    imgs = np.random.default_rng(0).random((64, 32, 32, 3), np.float32)
    imgs[..., 2] += 1
    prof = mserve.profile(ipath, imgs)
    names = [f["name"] for f in prof["features"]]
    assert names == ["img[c=0]", "img[c=1]", "img[c=2]", "m"]
    c2 = prof["features"][2]
    assert (c2["select"], c2["axis"], c2["index"]) == ("channel", 3, 2) and 1.4 < c2["min"] < c2["max"] < 1.6
    from mserve.monitoring import channel_means
    assert channel_means(imgs, 3, 2) == pytest.approx(imgs[:, :, :, 2].reshape(64, -1)[:, ::4].mean(1))
    # Served: the server's channel means bin the same as the profile's.
    with mserve.start({"img": str(tmp_path / "img")}, port=0, quiet=True) as s:
        s.wait_ready()
        sess = requests.Session()
        shifted = imgs[:32].copy()
        shifted[..., 0] += 0.2
        for i in range(0, 32, 8):
            assert sess.post(f"{s.url}/v1/models/img:predict", json={"instances": shifted[i:i + 8].tolist()}).ok
        (st,) = requests.get(f"{s.url}/v1/models/img").json()["monitoring"]
    for k in range(3):
        f = prof["features"][k]
        want = naive_psi(f["edges"], f["fractions"], channel_means(shifted, 3, k))
        assert st["features"][k]["psi"] == pytest.approx(want, rel=1e-8, abs=1e-12), k
    assert st["features"][0]["psi"] > 1 > st["features"][1]["psi"]
