"""Overload and faults: at ten times its capacity the server sheds the excess with 503 while the
admitted requests finish, memory stays bounded and it recovers fully; slow clients (slowloris)
time out and cannot keep connections; a model that fails at run time fails only its own
requests; a kill -9 during a version swap leaves nothing that blocks the next start."""
import concurrent.futures as cf
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
from onnx import helper

import mserve
from op_harness import make_model
from serve_util import scale_model, write_version

tc = pytest.importorskip("tritonclient.grpc")


def slow_model():
    """y = sum(relu(X W)^6 chain) for X = x broadcast to [256, 1024]: a few milliseconds a call."""
    w = (np.random.default_rng(0).standard_normal((1024, 1024)) / 32).astype(np.float32)
    nodes = [helper.make_node("Expand", ["x", "shape"], ["h0"])]
    for i in range(4):
        nodes += [helper.make_node("MatMul", [f"h{i}", "w"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"h{i + 1}"])]
    nodes.append(helper.make_node("ReduceSum", ["h4"], ["y"], keepdims=0))
    return make_model(nodes, [("x", np.float32, [1, 1])], [("y", np.float32, [])],
                      {"w": w, "shape": np.array([256, 1024], np.int64)})


def rss_mb():
    with open(f"/proc/{os.getpid()}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def test_ten_times_capacity_is_shed_and_the_server_recovers(tmp_path):
    write_version(tmp_path / "slow", 1, slow_model())
    batching = {"max_batch_size": 1, "batch_timeout_micros": 0, "max_enqueued_batches": 2, "num_batch_threads": 1}
    with mserve.start({"slow": str(tmp_path / "slow")}, port=0, quiet=True, threads=1,
                      batching=batching, request_timeout_ms=60000, http_threads=4) as s:
        s.wait_ready()
        url = f"{s.url}/v1/models/slow:predict"
        body = {"inputs": [[1.0]]}
        want = requests.post(url, json=body).json()["outputs"]

        def burst(n):
            with requests.Session() as sess:
                r = sess.post(url, json=body)
                return r.status_code, (r.json().get("outputs") if r.status_code == 200 else r.json()["error"])

        before = rss_mb()
        for _ in range(5):
            with cf.ThreadPoolExecutor(30) as pool:
                results = list(pool.map(burst, range(30)))
            codes = [c for c, _ in results]
            assert set(codes) <= {200, 503}, codes
            assert codes.count(503) >= 10, codes  # capacity is ~3 requests in flight
            assert all(v == want for c, v in results if c == 200)  # admitted ones are answered right
            assert all("queue" in v for c, v in results if c == 503)
        # Load gone: every request is served again.
        for _ in range(5):
            assert requests.post(url, json=body).json()["outputs"] == want
        assert rss_mb() - before < 64


def test_grpc_beyond_its_threads_is_resource_exhausted_and_recovers():
    from tritonclient.utils import InferenceServerException
    with mserve.start({"slow": mserve.load(slow_model())}, port=0, grpc_port=0, grpc_max_threads=4,
                      quiet=True, threads=1) as s:
        def call(_):
            c = tc.InferenceServerClient(s.grpc_target)
            x = tc.InferInput("x", [1, 1], "FP32")
            x.set_data_from_numpy(np.ones((1, 1), np.float32))
            try:
                return float(c.infer("slow", [x], client_timeout=60).as_numpy("y"))
            except InferenceServerException as e:
                return e.status()
            finally:
                c.close()

        want = call(0)
        with cf.ThreadPoolExecutor(30) as pool:
            results = list(pool.map(call, range(30)))
        shed = [r for r in results if r == "StatusCode.RESOURCE_EXHAUSTED"]
        assert len(shed) >= 10 and all(r == want for r in results if r not in shed), results
        assert [call(0) for _ in range(3)] == [want] * 3


def _slowloris(port, stop, closed):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(0.1)
        while not stop.is_set():
            try:
                s.sendall(b"X")  # a header that never ends, one byte at a time
                if s.recv(1) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        closed.append(True)
    finally:
        s.close()


def test_slow_clients_time_out_and_cannot_hold_connections(tmp_path):
    with mserve.start(mserve.load(scale_model(2.0)), model_name="m", port=0, quiet=True,
                      max_connections=16, idle_timeout_ms=400, read_timeout_ms=400) as s:
        stop, closed = threading.Event(), []
        threads = [threading.Thread(target=_slowloris, args=(s.port, stop, closed)) for _ in range(16)]
        for t in threads:
            t.start()
        try:
            # Every slow connection is cut by the server; then a normal client is served.
            deadline = time.monotonic() + 20
            while len(closed) < 16 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(closed) == 16, f"only {len(closed)} of 16 slow connections were closed"
            r = requests.post(f"{s.url}/v1/models/m:predict", json={"instances": [[1, 1, 1, 1]]}, timeout=10)
            assert r.json()["predictions"] == [[2.0] * 4]
        finally:
            stop.set()
            for t in threads:
                t.join()


def reshape_model():
    """y = reshape(x, s): x float32[6], s int64[2], given by the client; a bad s fails at run time."""
    return make_model([helper.make_node("Reshape", ["x", "s"], ["y"])],
                      [("x", np.float32, [6]), ("s", np.int64, [2])], [("y", np.float32, None)])


def test_a_model_failing_at_run_time_fails_only_its_requests(tmp_path):
    write_version(tmp_path / "r", 1, reshape_model())
    write_version(tmp_path / "ok", 1, scale_model(3.0))
    with mserve.start({"r": str(tmp_path / "r"), "ok": str(tmp_path / "ok")}, port=0, grpc_port=0,
                      quiet=True) as s:
        s.wait_ready()
        x = list(range(6))

        def call(i):
            good = i % 2 == 0
            body = {"inputs": {"x": x, "s": [2, 3] if good else [4, 4]}}
            r = requests.post(f"{s.url}/v1/models/r:predict", json=body)
            other = requests.post(f"{s.url}/v1/models/ok:predict", json={"instances": [[1, 1, 1, 1]]})
            return good, r.status_code, r.json(), other.status_code

        with cf.ThreadPoolExecutor(8) as pool:
            for good, code, out, other in pool.map(call, range(40)):
                assert other == 200
                if good:
                    assert code == 200 and np.array(out["outputs"]).shape == (2, 3)
                else:
                    assert code == 400 and "error" in out
        c = tc.InferenceServerClient(s.grpc_target)
        xs = tc.InferInput("x", [6], "FP32")
        xs.set_data_from_numpy(np.arange(6, dtype=np.float32))
        bad = tc.InferInput("s", [2], "INT64")
        bad.set_data_from_numpy(np.array([5, 5], np.int64))
        from tritonclient.utils import InferenceServerException
        with pytest.raises(InferenceServerException) as e:
            c.infer("r", [xs, bad])
        assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
        good = tc.InferInput("s", [2], "INT64")
        good.set_data_from_numpy(np.array([3, 2], np.int64))
        assert c.infer("r", [xs, good]).as_numpy("y").shape == (3, 2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cli(base, rest, grpc_port):
    proc = subprocess.Popen([sys.executable, "-m", "mserve", "serve", "--model_name=m", f"--model_base_path={base}",
                             f"--rest_api_port={rest}", f"--port={grpc_port}", "--host=127.0.0.1",
                             "--file_system_poll_wait_seconds=1"], stderr=subprocess.PIPE, text=True)
    return proc


def wait_line(proc, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r}")


def test_kill_9_during_a_version_swap_leaves_nothing_behind(tmp_path):
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    rest, grpc_port = free_port(), free_port()
    proc = start_cli(base, rest, grpc_port)
    try:
        wait_line(proc, r"serving gRPC on")
        write_version(base, 2, slow_model())  # a bigger model: the swap takes a moment
        wait_line(proc, r"version 2: loading")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sorted(os.listdir(base)) == ["1", "2"] and sorted(os.listdir(base / "2")) == ["model.onnx"]
    # The next start on the same ports serves the newest version.
    proc = start_cli(base, rest, grpc_port)
    try:
        wait_line(proc, r"serving gRPC on")
        deadline = time.monotonic() + 60
        while True:
            st = requests.get(f"http://127.0.0.1:{rest}/v1/models/m").json()["model_version_status"]
            if any(v["version"] == "2" and v["state"] == "AVAILABLE" for v in st):
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
        assert tc.InferenceServerClient(f"127.0.0.1:{grpc_port}").is_model_ready("m", "2")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
