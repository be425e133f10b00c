"""Serving throughput and latency, measured in one run on loopback at several concurrencies.

Where the time goes (--only stages): each payload (TF Serving JSON rows of 1, 8 and 64 x 256
floats, the same as KServe v2 JSON, a 224x224x3 float32 image as v2 binary and as gRPC) at
concurrency 1 against mserve alone; from the server's own metrics, per request: body read,
decode, run (the model), encode, write; the server's overhead (all of it but the run) beside the
time simdjson (pysimdjson, the physical limit of this path) takes to parse the same body in this
process, or a memcpy of a binary payload.

REST: mserve's C++ server against FastAPI + uvicorn + onnxruntime (the usual Python way to serve
a model), the same models and request bodies, load from wrk.
gRPC: mserve's TensorFlow Serving Predict over gRPC against a grpcio + onnxruntime server (the
usual Python way to serve that API), the same serialized PredictRequest (tensor_content, as
tf.make_tensor_proto sends it), load from h2load; beside it mserve's REST on the same model, for
a small tabular model and a 224x224x3 image model.
Every server runs in its own process with the same intra-op thread count; the load generator
shares the machine with them, equally for all. Answers are compared before anything is timed.

Rollouts (--only rollout) and drift monitoring (--only monitoring): what the split costs a request
that needs no shadow, and what watching every request against a reference profile costs, each
against the same server's model without it.

Prints requests/s and p50/p99 latency for each, and the ratios (rps: mserve / peer, above 1 means
mserve serves more; p99: peer / mserve, above 1 means mserve answers faster). No thresholds.

    python bench/bench_serve.py [--seconds 5] [--concurrency 1 8 64] [--threads N]
                                [--only rest|grpc|stages|rollout|monitoring]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from mserve import examples

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "cpp", "server", "proto")

# model name in the example repository -> request rows (a TF Serving row-format body)
CASES = [
    ("half_plus_two", "1 scalar", lambda: [1.0, 2.0, 5.0]),
    ("mlp", "1x256", lambda: examples.example_input("mlp", 1).tolist()),
    ("mlp", "8x256", lambda: examples.example_input("mlp", 8).tolist()),
    ("mlp", "64x256", lambda: examples.example_input("mlp", 64).tolist()),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it answered {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def post(url: str, body: bytes) -> dict:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, body_file: str, script: str, concurrency: int, seconds: float) -> dict:
    """rps, p50 and p99 (ms) and error counts from one wrk run."""
    threads = min(concurrency, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "--timeout", "10s",
           "-s", script, url]
    env = dict(os.environ, MSERVE_BENCH_BODY=body_file)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors:(.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sock.group(1).strip() if sock else ""}


WRK_SCRIPT = """
local f = assert(io.open(os.getenv("MSERVE_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def stop_all(servers) -> None:
    for proc in servers.values():
        proc.terminate()
    for proc in servers.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def bench_rest(args) -> None:
    import fastapi  # noqa: F401  (fail early with the module's own message)
    import uvicorn  # noqa: F401

    work = tempfile.mkdtemp(prefix="mserve-bench-serve-")
    config = examples.save_repository(os.path.join(work, "repo"))
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    names = sorted({c[0] for c in CASES})
    ms_port, peer_port = free_port(), free_port()
    servers = {
        "mserve": subprocess.Popen(
            [sys.executable, "-m", "mserve", "serve", f"--model_config_file={config}", f"--rest_api_port={ms_port}",
             "--port=-1", "--host=127.0.0.1", f"--threads={args.threads}", "--rest_api_timeout_in_ms=0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "fastapi": subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fastapi_peer.py"), f"--port={peer_port}", f"--threads={args.threads}"]
            + [f"{n}={os.path.join(work, 'repo', n, '1', 'model.onnx')}" for n in names],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    ports = {"mserve": ms_port, "fastapi": peer_port}
    try:
        for name, proc in servers.items():
            for n in names:
                wait_up(f"http://127.0.0.1:{ports[name]}/v1/models/{n}", proc)
        print(f"wrk on loopback, {args.seconds:g} s per point, {args.threads} intra-op threads per server, "
              f"{os.cpu_count()} cores shared with wrk; FastAPI + uvicorn (1 worker) + onnxruntime as the peer")
        print("| model | rows | conc | mserve rps | p50 ms | p99 ms | fastapi rps | p50 ms | p99 ms "
              "| rps ratio | p99 ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for model, rows_label, make_rows in CASES:
            body = json.dumps({"instances": make_rows()}).encode()
            body_file = os.path.join(work, f"{model}-{rows_label.replace(' ', '_')}.json")
            with open(body_file, "wb") as f:
                f.write(body)
            # Both must give the same answer before either is timed.
            answers = {s: np.asarray(post(f"http://127.0.0.1:{p}/v1/models/{model}:predict", body)["predictions"])
                       for s, p in ports.items()}
            np.testing.assert_allclose(answers["mserve"], answers["fastapi"], rtol=1e-4, atol=1e-5)
            for conc in args.concurrency:
                r = {s: run_wrk(f"http://127.0.0.1:{p}/v1/models/{model}:predict", body_file, script, conc,
                                args.seconds) for s, p in ports.items()}
                for s, res in r.items():
                    if res["non2xx"] or res["socket_errors"]:
                        print(f"  warning: {s} had {res['non2xx']} non-2xx responses, socket errors: "
                              f"{res['socket_errors'] or 'none'}")
                a, b = r["mserve"], r["fastapi"]
                print(f"| {model} | {rows_label} | {conc} | {a['rps']:.0f} | {a['p50']:.3f} | {a['p99']:.3f} "
                      f"| {b['rps']:.0f} | {b['p50']:.3f} | {b['p99']:.3f} "
                      f"| {a['rps'] / b['rps']:.1f}x | {b['p99'] / a['p99']:.1f}x |", flush=True)
    finally:
        stop_all(servers)
        shutil.rmtree(work, ignore_errors=True)


# ---- gRPC ----

# model -> (rows label, the ONNX model, its input batch)
def grpc_cases():
    return [("tabular", "mlp 1x256", examples.mlp(), examples.example_input("mlp", 1)),
            ("image", "cnn 1x224x224x3", examples.cnn_nhwc(size=224),
             np.random.default_rng(0).random((1, 224, 224, 3), np.float32))]


def make_stubs(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    import grpc_tools
    from grpc_tools import protoc
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = [os.path.join(r, f) for r, _, fs in os.walk(PROTO_ROOT) for f in fs
              if f.endswith(".proto") and "kserve" not in r]
    assert protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", *protos]) == 0
    sys.path.append(out)


def run_h2load(url: str, body_file: str, concurrency: int, seconds: float, log: str) -> dict:
    """rps, p50 and p99 (ms) of unary gRPC calls (one serialized request replayed) from h2load."""
    if os.path.exists(log):
        os.remove(log)  # h2load appends to its log
    cmd = ["h2load", f"-c{concurrency}", "-m1", f"-t{min(concurrency, 2)}", f"-D{seconds}", "--warm-up-time=1",
           "-d", body_file, "-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    ok = int(re.search(r"status codes: (\d+) 2xx", out).group(1))
    failed = int(re.search(r"(\d+) failed", out).group(1))
    with open(log) as f:
        us = np.array([int(line.split("\t")[2]) for line in f if line.strip()], np.float64)
    return {"rps": rps, "p50": float(np.percentile(us, 50)) / 1e3, "p99": float(np.percentile(us, 99)) / 1e3,
            "ok": ok, "failed": failed}


def grpc_predict(stubs, target: str, model: str, x: np.ndarray, request_bytes: bytes) -> np.ndarray:
    import grpc
    with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        stub = stubs.prediction_service_pb2_grpc.PredictionServiceStub(ch)
        (out,) = stub.Predict(stubs.predict_pb2.PredictRequest.FromString(request_bytes), timeout=30).outputs.values()
    shape = [d.size for d in out.tensor_shape.dim]
    vals = np.frombuffer(out.tensor_content, np.float32) if out.tensor_content else np.array(out.float_val, np.float32)
    return vals.reshape(shape)


def grpc_counts(url: str) -> dict:
    """mserve's gRPC Predict calls by status, from its metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    counts = {}
    for m in re.finditer(r'mserve_requests_total\{[^}]*api="grpc_predict",status="(\d+)"\} (\d+)', text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + int(m.group(2))
    return counts


def write_repository(work: str, models: dict) -> str:
    """Each model as version 1 under work/repo, and the model config file serving them all."""
    import onnx
    lines = []
    for name, model in models.items():
        d = os.path.join(work, "repo", name, "1")
        os.makedirs(d)
        onnx.save(model, os.path.join(d, "model.onnx"))
        lines.append(f"config {{ name: '{name}' base_path: '{os.path.join(work, 'repo', name)}' }}")
    config = os.path.join(work, "models.config")
    with open(config, "w") as f:
        f.write("model_config_list {\n" + "\n".join(lines) + "\n}\n")
    return config


def bench_grpc(args) -> None:
    if shutil.which("h2load") is None:
        sys.exit("bench_serve needs h2load (Debian package nghttp2-client) for gRPC")
    import types
    work = tempfile.mkdtemp(prefix="mserve-bench-grpc-")
    make_stubs(os.path.join(work, "stubs"))
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    stubs = types.SimpleNamespace(predict_pb2=predict_pb2, prediction_service_pb2_grpc=prediction_service_pb2_grpc)
    cases = grpc_cases()
    config = write_repository(work, {name: model for name, _, model, _ in cases})
    rest_port, grpc_port, peer_port = free_port(), free_port(), free_port()
    servers = {
        "mserve": subprocess.Popen(
            [sys.executable, "-m", "mserve", "serve", f"--model_config_file={config}", f"--rest_api_port={rest_port}",
             f"--port={grpc_port}", "--host=127.0.0.1", f"--threads={args.threads}", "--rest_api_timeout_in_ms=0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "grpcio": subprocess.Popen(
            [sys.executable, os.path.join(HERE, "grpc_peer.py"), f"--port={peer_port}", f"--threads={args.threads}",
             f"--stubs={os.path.join(work, 'stubs')}"]
            + [f"{n}={os.path.join(work, 'repo', n, '1', 'model.onnx')}" for n, *_ in cases],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    rest_url = f"http://127.0.0.1:{rest_port}"
    try:
        for n, *_ in cases:
            wait_up(f"{rest_url}/v1/models/{n}", servers["mserve"])
        print(f"\ngRPC (h2load) and REST (wrk) on loopback, {args.seconds:g} s per point, {args.threads} intra-op "
              f"threads per server, {os.cpu_count()} cores shared with the load generator; grpcio (thread pool) + "
              "onnxruntime as the gRPC peer")
        print("| model | request | conc | mserve gRPC rps | p50 ms | p99 ms | mserve REST rps | p50 ms | p99 ms "
              "| grpcio rps | p50 ms | p99 ms | gRPC / REST rps | rps vs grpcio | p99 vs grpcio |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, label, model, x in cases:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = name
            t = req.inputs[model.graph.input[0].name]
            t.dtype = 1  # DT_FLOAT
            for d in x.shape:
                t.tensor_shape.dim.add().size = d
            t.tensor_content = np.ascontiguousarray(x, np.float32).tobytes()
            msg = req.SerializeToString()
            body_file = os.path.join(work, f"{name}.grpc")
            with open(body_file, "wb") as f:  # gRPC framing: uncompressed flag, big-endian length, message
                f.write(b"\0" + len(msg).to_bytes(4, "big") + msg)
            rest_file = os.path.join(work, f"{name}.json")
            with open(rest_file, "wb") as f:
                f.write(json.dumps({"instances": x.tolist()}).encode())
            script = os.path.join(work, "post.lua")
            with open(script, "w") as f:
                f.write(WRK_SCRIPT)
            # Every server gives the same answer before any is timed.
            deadline = time.monotonic() + 60
            while True:
                try:
                    peer = grpc_predict(stubs, f"127.0.0.1:{peer_port}", name, x, msg)
                    break
                except Exception:
                    if time.monotonic() > deadline or servers["grpcio"].poll() is not None:
                        raise
                    time.sleep(0.2)
            ours = grpc_predict(stubs, f"127.0.0.1:{grpc_port}", name, x, msg)
            rest = np.asarray(post(f"{rest_url}/v1/models/{name}:predict", open(rest_file, "rb").read())["predictions"])
            np.testing.assert_allclose(ours, peer, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(rest, peer, rtol=1e-4, atol=1e-5)
            path = "/tensorflow.serving.PredictionService/Predict"
            for conc in args.concurrency:
                before = grpc_counts(rest_url)
                g = run_h2load(f"http://127.0.0.1:{grpc_port}{path}", body_file, conc, args.seconds,
                               os.path.join(work, "h2.log"))
                after = grpc_counts(rest_url)
                bad = {k: after.get(k, 0) - before.get(k, 0) for k in after if k != "200"}
                if any(bad.values()) or g["failed"]:
                    print(f"  warning: mserve gRPC errors {bad}, {g['failed']} failed")
                r = run_wrk(f"{rest_url}/v1/models/{name}:predict", rest_file, script, conc, args.seconds)
                p = run_h2load(f"http://127.0.0.1:{peer_port}{path}", body_file, conc, args.seconds,
                               os.path.join(work, "h2.log"))
                if p["failed"]:
                    print(f"  warning: grpcio had {p['failed']} failed requests")
                print(f"| {name} | {label} | {conc} | {g['rps']:.0f} | {g['p50']:.3f} | {g['p99']:.3f} "
                      f"| {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} "
                      f"| {p['rps']:.0f} | {p['p50']:.3f} | {p['p99']:.3f} "
                      f"| {g['rps'] / r['rps']:.1f}x | {g['rps'] / p['rps']:.1f}x | {p['p99'] / g['p99']:.1f}x |",
                      flush=True)
    finally:
        stop_all(servers)
        shutil.rmtree(work, ignore_errors=True)


# ---- where the time goes ----

STAGE_RE = re.compile(r'mserve_request_stage_seconds_(sum|count)\{model="([^"]*)",version="\d+",api="(\w+)",'
                      r'stage="(\w+)"\} (\S+)')


def server_times(url: str) -> dict:
    """Stage sums and counts by (model, api), and the HTTP read/write totals, from the metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for m in STAGE_RE.finditer(text):
        out[(m.group(2), m.group(3), m.group(4), m.group(1))] = float(m.group(5))
    for m in re.finditer(r'mserve_http_io_seconds_total\{direction="(\w+)"\} (\S+)', text):
        out[("http", m.group(1))] = float(m.group(2))
    out[("http", "requests")] = float(re.search(r"^mserve_http_requests_total (\d+)", text, re.M).group(1))
    return out


def per_request(before: dict, after: dict, model: str, api: str, http: bool) -> dict:
    """Microseconds per request of each stage between two scrapes (read/write: HTTP only)."""
    n = after[(model, api, "run", "count")] - before.get((model, api, "run", "count"), 0)
    us = {st: (after[(model, api, st, "sum")] - before.get((model, api, st, "sum"), 0)) / n * 1e6
          for st in ("decode", "run", "encode")}
    if http:
        reqs = after[("http", "requests")] - before[("http", "requests")] - 1  # less the scrape itself
        for d in ("read", "write"):
            us[d] = (after[("http", d)] - before[("http", d)]) / reqs * 1e6
    us["n"] = n
    return us


def best_us(fn, repeats: int = 7, min_seconds: float = 0.2) -> float:
    """Best of `repeats` timings of fn(), each over enough calls for min_seconds; microseconds."""
    calls = 1
    while True:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - t >= min_seconds / 10:
            break
        calls *= 2
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best * 1e6


def bench_stages(args) -> None:
    try:
        import simdjson
    except ImportError:
        sys.exit("the stages table needs pysimdjson (pip install pysimdjson)")
    if shutil.which("h2load") is None:
        sys.exit("bench_serve needs h2load (Debian package nghttp2-client) for gRPC")
    work = tempfile.mkdtemp(prefix="mserve-bench-stages-")
    image = np.random.default_rng(0).random((1, 224, 224, 3), np.float32)
    config = write_repository(work, {"mlp": examples.mlp(), "image": examples.cnn_nhwc(size=224)})
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    rest_port, grpc_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mserve", "serve", f"--model_config_file={config}", f"--rest_api_port={rest_port}",
         f"--port={grpc_port}", "--host=127.0.0.1", f"--threads={args.threads}", "--rest_api_timeout_in_ms=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{rest_port}"
    parser = simdjson.Parser()
    # label, model, api, body bytes, what to post to (REST path, or None for gRPC), extra wrk headers
    cases = []
    for rows in (1, 8, 64):
        x = examples.example_input("mlp", rows)
        cases.append((f"TFS JSON {rows}x256", "mlp", "tfs_predict", json.dumps({"instances": x.tolist()}).encode(),
                      "/v1/models/mlp:predict", {}))
        if rows > 1:
            v2 = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
            cases.append((f"v2 JSON {rows}x256", "mlp", "v2_infer", json.dumps(v2).encode(), "/v2/models/mlp/infer",
                          {}))
    header = json.dumps({"inputs": [{"name": "image", "shape": list(image.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": image.nbytes}}]}).encode()
    cases.append(("v2 binary 224x224x3", "image", "v2_infer", header + image.tobytes(), "/v2/models/image/infer",
                  {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}))
    make_stubs(os.path.join(work, "stubs"))
    from tensorflow_serving.apis import predict_pb2
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "image"
    t = req.inputs["image"]
    t.dtype = 1  # DT_FLOAT
    for d in image.shape:
        t.tensor_shape.dim.add().size = d
    t.tensor_content = image.tobytes()
    msg = req.SerializeToString()
    cases.append(("gRPC 224x224x3", "image", "grpc_predict", msg, None, {}))
    try:
        for name in ("mlp", "image"):
            wait_up(f"{url}/v1/models/{name}", server)
        print(f"\nWhere the time goes: concurrency 1, {args.seconds:g} s per payload, {args.threads} intra-op threads; "
              "microseconds per request from the server's metrics (read: body after the headers; write: the "
              "response; gRPC: protobuf parsing and transport are outside the call); overhead = all but the run; "
              "limit = simdjson's parse of the body (pysimdjson, this process) or a memcpy of the binary payload")
        print("| payload | body KB | client p50 | read | decode | run | encode | write | overhead | limit "
              "| overhead / limit | server / run |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        buf = np.empty_like(image)
        copy_us = best_us(lambda: np.copyto(buf, image))

        def cell(v):
            return "n/a" if v is None else f"{v:.1f}"

        for label, model, api, body, path, headers in cases:
            body_file = os.path.join(work, "body")
            with open(body_file, "wb") as f:
                f.write(b"\0" + len(body).to_bytes(4, "big") + body if path is None else body)
            if path is None:
                limit = copy_us
                before = server_times(url)
                g = run_h2load(f"http://127.0.0.1:{grpc_port}/tensorflow.serving.PredictionService/Predict", body_file,
                               1, args.seconds, os.path.join(work, "h2.log"))
                p50, bad = g["p50"], g["failed"]
            else:
                limit = copy_us if "binary" in label else best_us(lambda b=body: parser.parse(b))
                stage_script = script
                if headers:
                    stage_script = os.path.join(work, "post_headers.lua")
                    with open(stage_script, "w") as f:
                        f.write(WRK_SCRIPT + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items()))
                before = server_times(url)
                r = run_wrk(url + path, body_file, stage_script, 1, args.seconds)
                p50, bad = r["p50"], r["non2xx"]
            after = server_times(url)
            if bad:
                print(f"  warning: {bad} failed requests for {label}")
            us = per_request(before, after, model, api, http=path is not None)
            read, write = us.get("read"), us.get("write")
            server_us = us["decode"] + us["run"] + us["encode"] + (read or 0) + (write or 0)
            overhead = server_us - us["run"]
            print(f"| {label} | {len(body) / 1024:.0f} | {p50 * 1e3:.0f} | {cell(read)} | {us['decode']:.1f} "
                  f"| {us['run']:.1f} | {us['encode']:.1f} | {cell(write)} | {overhead:.1f} | {limit:.1f} "
                  f"| {overhead / limit:.2f}x | {server_us / us['run']:.2f}x |", flush=True)
    finally:
        stop_all({"mserve": server})
        shutil.rmtree(work, ignore_errors=True)


# ---- rollouts ----

ROLLOUT_SCRIPT = WRK_SCRIPT + """
local key = os.getenv("MSERVE_BENCH_USER")
if key ~= nil and key ~= "" then wrk.headers["X-User-Id"] = key end
"""


def server_latency(url: str) -> dict:
    """model -> (latency seconds summed, requests) of its REST predicts, every version, from the
    server's own histogram (arrival to response)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict = {}
    for m in re.finditer(r'^mserve_request_latency_seconds_(sum|count)\{model="(\w+)",version="\d+",'
                         r'api="tfs_predict"\} (\S+)', text, re.M):
        s, n = out.get(m.group(2), (0.0, 0.0))
        out[m.group(2)] = (s + float(m.group(3)), n) if m.group(1) == "sum" else (s, n + float(m.group(3)))
    return out


def ab_table(args, work: str, config: str, feature: str, names: tuple[str, str], cases) -> None:
    """One mserve process serves the mlp under two names (`names`: without and with `feature`);
    wrk alternates between them, four rounds each in ABBA order, and the medians are compared,
    beside the server's own latency per request. `cases`: (label, X-User-Id header or "")."""
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write(ROLLOUT_SCRIPT)
    body_file = os.path.join(work, "body.json")
    body = json.dumps({"instances": examples.example_input("mlp", 1).tolist()}).encode()
    with open(body_file, "wb") as f:
        f.write(body)
    port = free_port()
    servers = {"mserve": subprocess.Popen(
        [sys.executable, "-m", "mserve", "serve", f"--model_config_file={config}", f"--rest_api_port={port}",
         "--port=-1", "--host=127.0.0.1", f"--threads={args.threads}", "--rest_api_timeout_in_ms=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)}
    base = f"http://127.0.0.1:{port}/v1/models"
    plain, other = names
    try:
        for name in names:
            wait_up(f"{base}/{name}", servers["mserve"])
        np.testing.assert_array_equal(post(f"{base}/{plain}:predict", body)["predictions"],
                                      post(f"{base}/{other}:predict", body)["predictions"])
        print(f"wrk on loopback, {args.seconds:g} s per point, 4 rounds in ABBA order (median), mlp 1x256, "
              f"{args.threads} intra-op threads, {os.cpu_count()} cores shared with wrk; the peer is the same "
              f"server's model without {feature}")
        print(f"| case | conc | without rps | p50 ms | p99 ms | with {feature} rps | p50 ms | p99 ms | rps ratio "
              "| p99 ratio | server us/req, without | with |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for case, user in cases:
            os.environ["MSERVE_BENCH_USER"] = user
            for conc in args.concurrency:
                before = server_latency(f"http://127.0.0.1:{port}")
                runs = {plain: [], other: []}
                for k in range(4):  # ABBA: neither goes first more often
                    for name in (names if k % 3 == 0 else names[::-1]):
                        runs[name].append(run_wrk(f"{base}/{name}:predict", body_file, script, conc, args.seconds))
                med = {name: {k: float(np.median([r[k] for r in rs])) for k in ("rps", "p50", "p99")}
                       for name, rs in runs.items()}
                a, b = med[other], med[plain]
                after = server_latency(f"http://127.0.0.1:{port}")
                us = {m: (after[m][0] - before[m][0]) / (after[m][1] - before[m][1]) * 1e6 for m in names}
                print(f"| {case} | {conc} | {b['rps']:.0f} | {b['p50']:.3f} | {b['p99']:.3f} | {a['rps']:.0f} "
                      f"| {a['p50']:.3f} | {a['p99']:.3f} | {a['rps'] / b['rps']:.3f}x | {b['p99'] / a['p99']:.2f}x "
                      f"| {us[plain]:.1f} | {us[other]:.1f} |", flush=True)
        os.environ.pop("MSERVE_BENCH_USER", None)
    finally:
        stop_all(servers)


def save_mlp(work: str, name: str, versions) -> str:
    import onnx
    mlp = examples.mlp()
    for v in versions:
        os.makedirs(os.path.join(work, name, str(v)))
        onnx.save(mlp, os.path.join(work, name, str(v), "model.onnx"))
    return os.path.join(work, name)


def bench_rollout(args) -> None:
    """What the split costs a request that needs no shadow: the mlp as 'plain' (one version, no
    rollout) and as 'split' (versions 1 and 2, labels stable and canary, 90/10, sticky by
    X-User-Id). MSERVE_BENCH_CANARY_VERSION=1 points both labels at one version: the split's own
    cost without a second version's weights in the caches."""
    work = tempfile.mkdtemp(prefix="mserve-bench-rollout-")
    canary = int(os.environ.get("MSERVE_BENCH_CANARY_VERSION", "2"))
    plain, split = save_mlp(work, "plain", [1]), save_mlp(work, "split", sorted({1, canary}))
    config = os.path.join(work, "models.config")
    with open(config, "w") as f:
        f.write(f"""model_config_list {{
  config {{ name: 'plain' base_path: '{plain}' }}
  config {{ name: 'split' base_path: '{split}' model_version_policy {{ all {{}} }}
    version_labels {{ key: 'stable' value: 1 }} version_labels {{ key: 'canary' value: {canary} }}
    rollout {{ arm {{ label: 'stable' weight: 90 }} arm {{ label: 'canary' weight: 10 }}
              sticky_header: 'x-user-id' }} }}
}}
""")
    try:
        ab_table(args, work, config, f"a rollout (canary on version {canary})", ("plain", "split"),
                 (("random arm", ""), ("sticky header", "user-42")))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_monitoring(args) -> None:
    """What drift monitoring costs: the mlp as 'plain' and as 'watched' (a reference profile of 2,000
    example rows: 64 input columns and the output's class; the statistics of every request)."""
    import mserve
    work = tempfile.mkdtemp(prefix="mserve-bench-monitoring-")
    plain, watched = save_mlp(work, "plain", [1]), save_mlp(work, "watched", [1])
    prof = mserve.profile(os.path.join(watched, "1", "model.onnx"), examples.example_input("mlp", 2000))
    config = os.path.join(work, "models.config")
    with open(config, "w") as f:
        f.write(f"""model_config_list {{
  config {{ name: 'plain' base_path: '{plain}' }}
  config {{ name: 'watched' base_path: '{watched}' monitoring {{ drift_threshold: 0.25 }} }}
}}
""")
    try:
        ab_table(args, work, config, f"monitoring ({len(prof['features'])} features)", ("plain", "watched"),
                 (("every request watched", ""),))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="duration per measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads, every server")
    ap.add_argument("--only", choices=["rest", "grpc", "stages", "rollout", "monitoring"],
                    help="run one of the tables")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_serve needs wrk (Debian package wrk)")
    if args.only in (None, "rest"):
        bench_rest(args)
    if args.only in (None, "grpc"):
        bench_grpc(args)
    if args.only in (None, "stages"):
        bench_stages(args)
    if args.only in (None, "rollout"):
        bench_rollout(args)
    if args.only in (None, "monitoring"):
        bench_monitoring(args)


if __name__ == "__main__":
    main()
