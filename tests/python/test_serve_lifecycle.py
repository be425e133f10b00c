"""Model repository lifecycle (versions appear, break, vanish; config changes), batching,
deadlines, draining and SIGTERM, against a real server."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
from onnx import helper

import mserve
from serve_util import scale_model, write_version

X = np.ones((1, 4), np.float32)


def predict(url, model="m", x=X, suffix=""):
    return requests.post(f"{url}/v1/models/{model}{suffix}:predict", data=json.dumps({"instances": x.tolist()}))


def factor(url, model="m", suffix=""):
    r = predict(url, model, suffix=suffix)
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0][0]


def states(url, model="m"):
    status = requests.get(f"{url}/v1/models/{model}").json()["model_version_status"]
    return {int(v["version"]): v["state"] for v in status}


def test_new_version_replaces_old_and_removed_version_unloads(tmp_path):
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    with mserve.start(str(base), model_name="m", port=0, quiet=True,
                      file_system_poll_wait_seconds=0) as s:
        assert factor(s.url) == 1.0
        write_version(base, 2, scale_model(2.0))
        s.poll()
        assert factor(s.url) == 2.0
        assert states(s.url) == {2: "AVAILABLE", 1: "END"}  # latest{1}: version 1 unloaded
        assert predict(s.url, suffix="/versions/1").status_code == 404
        shutil.rmtree(base / "2")  # the serving version vanishes; nothing else is on disk
        write_version(base, 3, scale_model(3.0))
        s.poll()
        assert factor(s.url) == 3.0
        assert states(s.url)[2] == "END"


def test_folder_holding_the_model_file_is_version_1_until_version_folders_appear(tmp_path):
    """KServe's /mnt/models: the storage URI's files copied into the base path itself."""
    import onnx
    base = tmp_path / "m"
    base.mkdir()
    onnx.save(scale_model(5.0), str(base / "model.onnx"))
    with mserve.start(str(base), model_name="m", port=0, quiet=True, file_system_poll_wait_seconds=0) as s:
        assert factor(s.url) == 5.0
        assert states(s.url) == {1: "AVAILABLE"}
        write_version(base, 4, scale_model(4.0))  # numbered folders take over
        s.poll()
        assert factor(s.url) == 4.0
        assert states(s.url)[4] == "AVAILABLE"


def test_versions_gone_from_disk_are_forgotten_with_their_metrics(tmp_path):
    """Swapping versions for a long time keeps the status list and the metrics bounded: a version
    whose folder is gone is reported END for one poll, then forgotten with its series."""
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    with mserve.start({"m": str(base)}, port=0, quiet=True, file_system_poll_wait_seconds=0) as s:
        s.wait_ready()
        for v in range(2, 8):
            assert factor(s.url) == v - 1
            write_version(base, v, scale_model(float(v)))
            shutil.rmtree(base / str(v - 1))
            s.poll()
            s.poll()
        assert factor(s.url) == 7.0
        assert set(states(s.url)) <= {6, 7}
        metrics = requests.get(f"{s.url}/metrics").text
        versions = set(re.findall(r'mserve_requests_total\{model="m",version="(\d+)"', metrics))
        assert versions - {"0"} <= {"6", "7"}, versions  # 0: status calls, which name no version


def test_broken_version_never_served_and_retried_when_fixed(tmp_path):
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    with mserve.start(str(base), model_name="m", port=0, quiet=True,
                      file_system_poll_wait_seconds=0) as s:
        os.makedirs(base / "2")
        full = scale_model(2.0).SerializeToString()
        (base / "2" / "model.onnx").write_bytes(full[: len(full) // 2])  # half-copied
        s.poll()
        st = requests.get(f"{s.url}/v1/models/m").json()["model_version_status"]
        v2 = [v for v in st if v["version"] == "2"][0]
        assert v2["state"] == "END" and v2["status"]["error_message"]
        assert factor(s.url) == 1.0  # the serving version is undisturbed
        s.poll()  # unchanged files are not reloaded
        assert factor(s.url) == 1.0
        write_version(base, 2, scale_model(2.0))  # copy completes
        s.poll()
        assert factor(s.url) == 2.0
        assert states(s.url) == {2: "AVAILABLE", 1: "END"}


def test_version_swap_under_load_fails_no_request(tmp_path):
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    with mserve.start(str(base), model_name="m", port=0, quiet=True,
                      file_system_poll_wait_seconds=1) as s:
        stop = threading.Event()
        failures, seen = [], set()

        def client():
            with requests.Session() as sess:
                while not stop.is_set():
                    r = sess.post(f"{s.url}/v1/models/m:predict", data=json.dumps({"instances": X.tolist()}))
                    if r.status_code != 200:
                        failures.append(r.text)
                    else:
                        seen.add(r.json()["predictions"][0][0])

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while 1.0 not in seen and not failures and time.monotonic() < deadline:  # version 1 answers first
            time.sleep(0.01)
        for v in (2, 3, 4):
            write_version(base, v, scale_model(float(v)))
            s.poll()
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
        assert not failures
        assert {1.0, 4.0} <= seen
        assert factor(s.url) == 4.0


def test_config_file_polling_adds_and_removes_models(tmp_path):
    for name, k in (("a", 1.0), ("b", 5.0)):
        write_version(tmp_path / name, 1, scale_model(k))
    cfg = tmp_path / "models.config"

    def write_cfg(names):
        body = "".join(f"config {{ name: '{n}' base_path: '{tmp_path / n}' model_platform: 'onnx' }}\n" for n in names)
        cfg.write_text("model_config_list {\n" + body + "}\n")

    write_cfg(["a"])
    with mserve.start(str(cfg), port=0, quiet=True, model_config_file_poll_wait_seconds=1) as s:
        assert factor(s.url, "a") == 1.0
        assert predict(s.url, "b").status_code == 404
        write_cfg(["b"])
        deadline = time.time() + 10
        while predict(s.url, "b").status_code != 200 and time.time() < deadline:
            time.sleep(0.1)
        assert factor(s.url, "b") == 5.0
        while predict(s.url, "a").status_code != 404 and time.time() < deadline:
            time.sleep(0.1)
        assert predict(s.url, "a").status_code == 404


@pytest.mark.parametrize("text,needle", [
    ("model_config_list { config { name: 'a' } }", "no base_path"),
    ("model_config_list { config { name: 'a' base_path: '/x' } config { name: 'a' base_path: '/y' } }", "twice"),
    ("model_config_list { config { nme: 'a' } }", "line 1"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, needle):
    cfg = tmp_path / "bad.config"
    cfg.write_text(text)
    with pytest.raises(mserve.InvalidArgument, match=needle):
        mserve.start(str(cfg), port=0, quiet=True)


def test_batching_merges_requests_and_splits_results(tmp_path):
    base = tmp_path / "m"
    write_version(base, 1, scale_model(2.0))
    batching = {"max_batch_size": 16, "batch_timeout_micros": 20000, "num_batch_threads": 1,
                "allowed_batch_sizes": [4, 8, 16]}
    with mserve.start(str(base), model_name="m", port=0, quiet=True, batching=batching) as s:
        results, errors = {}, []

        def client(i):
            x = np.full((1 + i % 3, 4), float(i), np.float32)
            r = predict(s.url, x=x)
            if r.status_code != 200:
                errors.append(r.text)
            else:
                results[i] = (x, np.asarray(r.json()["predictions"]))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for x, y in results.values():
            np.testing.assert_array_equal(y, x * 2)  # every caller gets its own rows back
        text = requests.get(s.url + "/metrics").text
        count = float(re.search(r'mserve_batch_size_count\{model="m"\} (\S+)', text).group(1))
        rows = float(re.search(r'mserve_batch_size_sum\{model="m"\} (\S+)', text).group(1))
        assert rows == sum(len(x) for x, _ in results.values())
        assert count < len(results)  # some requests were merged
        r = predict(s.url, x=np.ones((17, 4), np.float32))
        assert r.status_code == 400 and "max_batch_size" in r.json()["error"]


def _concurrent_predicts(url, xs):
    """Posts every x at once; returns the predictions in order (asserting each succeeded)."""
    out = [None] * len(xs)

    def client(i):
        r = predict(url, x=xs[i])
        assert r.status_code == 200, r.text
        out[i] = np.asarray(r.json()["predictions"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize("pad", [True, False])
def test_pad_variable_length_inputs(tmp_path, pad):
    # y[b] = sum over the sequence of x[b, :]: zero padding leaves it unchanged, so padded and
    # merged requests of different lengths must each get their own exact sums back.
    from conftest import make_model
    model = make_model([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
                       [("x", np.float32, ["batch", "seq"])], [("y", np.float32, ["batch"])],
                       {"axes": np.array([1], np.int64)})
    base = tmp_path / "m"
    write_version(base, 1, model)
    batching = {"max_batch_size": 32, "batch_timeout_micros": 500_000, "num_batch_threads": 1,
                "pad_variable_length_inputs": pad}
    xs = [np.arange(1 + i % 4 * 3, dtype=np.float32).reshape(1, -1) + i for i in range(8)]
    with mserve.start(str(base), model_name="m", port=0, quiet=True, batching=batching) as s:
        got = _concurrent_predicts(s.url, xs)
        for x, y in zip(xs, got):
            np.testing.assert_array_equal(y, x.sum(axis=1))
        metrics = requests.get(s.url + "/metrics").text
        count = float(re.search(r'mserve_batch_size_count\{model="m"\} (\S+)', metrics).group(1))
        # Four lengths: padding merges them, without it at least one batch per length runs.
        assert count < 4 if pad else count >= 4


def test_batching_full_queue_is_503_and_deadline_is_504(tmp_path):
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    batching = {"max_batch_size": 2, "batch_timeout_micros": 1_500_000, "max_enqueued_batches": 1,
                "num_batch_threads": 1}
    with mserve.start(str(base), model_name="m", port=0, quiet=True, batching=batching,
                      request_timeout_ms=300) as s:
        codes = []
        t = threading.Thread(target=lambda: codes.append(predict(s.url).status_code))
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        full = predict(s.url, x=np.ones((2, 4), np.float32))  # 1 + 2 rows > 1 batch of 2
        assert full.status_code == 503 and "queue is full" in full.json()["error"]
        assert time.monotonic() - t0 < 1.0  # refused at once, not queued
        t.join()
        assert codes == [504]  # its deadline passed while queued: dropped, not run


def test_stop_drains_in_flight_requests(tmp_path):
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    s = mserve.start(str(base), model_name="m", port=0, quiet=True,
                     batching={"max_batch_size": 8, "batch_timeout_micros": 400_000, "num_batch_threads": 1})
    codes = []
    t = threading.Thread(target=lambda: codes.append(predict(s.url).status_code))
    t.start()
    deadline = time.time() + 10
    while 'mserve_queue_rows{model="m",version="1"} 1' not in requests.get(s.url + "/metrics").text:
        assert time.time() < deadline, "the request never arrived"
        time.sleep(0.01)
    s.stop()  # the request is queued for batching: it is answered before the server stops
    t.join()
    assert codes == [200]
    with pytest.raises(requests.ConnectionError):
        predict(s.url)


def test_cli_serves_and_drains_on_sigterm(tmp_path):
    base = tmp_path / "m"
    write_version(base, 1, scale_model(7.0))
    proc = subprocess.Popen([sys.executable, "-m", "mserve", "serve", "--model_name=m",
                             f"--model_base_path={base}", "--rest_api_port=0", "--port=0", "--host=127.0.0.1"],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = target = None
        deadline = time.time() + 60
        while (url is None or target is None) and time.time() < deadline:
            line = proc.stderr.readline()
            m = re.search(r"serving on (http://\S+)", line)
            if m:
                url = m.group(1)
            m = re.search(r"serving gRPC on (\S+)", line)
            if m:
                target = m.group(1)
        assert url and target, "the server did not start"
        assert factor(url) == 7.0
        grpc = pytest.importorskip("grpc")
        health = pytest.importorskip("grpc_health.v1.health_pb2")
        from grpc_health.v1 import health_pb2_grpc
        with grpc.insecure_channel(target) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health.HealthCheckRequest(), timeout=10).status
        assert status == health.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_flag_errors():
    r = subprocess.run([sys.executable, "-m", "mserve", "serve"], capture_output=True, text=True)
    assert r.returncode == 2 and "--model_base_path" in r.stderr


def test_per_model_options_policy_labels_and_batching(tmp_path):
    base = tmp_path / "m"
    for v in (1, 2, 3):
        write_version(base, v, scale_model(float(v)))
    models = {"m": {"base_path": str(base), "version_policy": "specific", "versions": [1, 3],
                    "labels": {"stable": 1}, "batching": {"max_batch_size": 4, "batch_timeout_micros": 1000}},
              "n": {"base_path": str(base), "version_policy": "latest", "num_versions": 2}}
    with mserve.start(models, port=0, quiet=True) as s:
        assert states(s.url, "m") == {3: "AVAILABLE", 1: "AVAILABLE"}
        assert states(s.url, "n") == {3: "AVAILABLE", 2: "AVAILABLE"}
        assert factor(s.url, "m", "/labels/stable") == 1.0
        assert factor(s.url, "m") == 3.0
        r = predict(s.url, "m", x=np.ones((5, 4), np.float32))  # batched model: max_batch_size 4
        assert r.status_code == 400 and "max_batch_size" in r.json()["error"]
        assert predict(s.url, "n", x=np.ones((5, 4), np.float32)).status_code == 200
    with pytest.raises(mserve.InvalidArgument, match="unknown option"):
        mserve.start({"m": {"base_path": str(base), "bogus": 1}}, port=0)


def test_model_with_types_no_protocol_carries_is_refused_with_why(tmp_path):
    from onnx import TensorProto
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    int4 = helper.make_model(helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT4)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT4, [1, 4])]), opset_imports=[helper.make_opsetid("", 21)])
    int4.ir_version = 10
    mserve.load(int4)  # the runtime runs it; the protocols have no int4
    with mserve.start(str(base), model_name="m", port=0, quiet=True, file_system_poll_wait_seconds=0) as s:
        write_version(base, 2, int4)
        s.poll()
        v2 = [v for v in requests.get(f"{s.url}/v1/models/m").json()["model_version_status"] if v["version"] == "2"][0]
        assert v2["state"] == "END"
        assert "output 'y' is int4" in v2["status"]["error_message"]
        assert factor(s.url) == 1.0
