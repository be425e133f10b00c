"""Soak: the CLI server for a set time under mixed traffic while model versions keep swapping.

Traffic (8 client threads): TensorFlow Serving REST predicts, KServe v2 gRPC infers, malformed
JSON (400), unknown models (404), oversized bodies (413), metrics scrapes. Every answer is
checked: a predict must come from one of the versions written so far (y = x * version), every
error must be the expected one. A new version is written every --swap_seconds (the policy
serves the latest, so the previous one unloads under load). The server's resident memory is
sampled every second.

Prints requests, answers by kind and status, unexpected answers, p50/p99 latency per kind and
memory; writes the memory and throughput over time as a PNG (--plot). Passes (exit 0) when no
answer was unexpected, the server drained on SIGTERM, and memory stayed flat: the resident set
after warm-up (the first tenth of the run) grew by at most 10% + 16 MB, and the second half's
slope is under 5 MB/min.

    python bench/soak.py [--minutes 10] [--plot soak.png]
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import onnx
import requests
from onnx import helper, numpy_helper


def scale_model(factor: float):
    g = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["y"])], "scale",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 4])],
                          [numpy_helper.from_array(np.array(factor, np.float32), "k")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def write_version(base: str, v: int) -> None:
    d = os.path.join(base, str(v))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, "model.onnx.tmp")
    onnx.save(scale_model(float(v)), tmp)
    os.replace(tmp, os.path.join(d, "model.onnx"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.answers = collections.Counter()     # (kind, status)
        self.unexpected = collections.Counter()  # (kind, what)
        self.latency = collections.defaultdict(list)
        self.examples = {}

    def add(self, kind, status, ms, problem=None):
        with self.lock:
            self.answers[(kind, status)] += 1
            self.latency[kind].append(ms)
            if problem:
                self.unexpected[(kind, problem)] += 1
                self.examples.setdefault((kind, problem), str(status))


def client(rest: str, grpc_target: str, stop: threading.Event, stats: Stats, newest: list, seed: int,
           max_body: int) -> None:
    import tritonclient.grpc as tc
    rng = random.Random(seed)
    sess = requests.Session()
    triton = tc.InferenceServerClient(grpc_target)
    oversized = b'{"instances": [' + b"1.0," * (max_body // 4) + b"1.0]}"
    while not stop.is_set():
        r = rng.random()
        x = rng.randint(1, 9)
        t0 = time.perf_counter()
        try:
            if r < 0.65:
                kind = "rest_predict"
                resp = sess.post(f"{rest}/v1/models/m:predict", json={"instances": [[x] * 4]}, timeout=30)
                ok = resp.status_code == 200
                factor = resp.json()["predictions"][0][0] / x if ok else None
                problem = None if ok and float(factor).is_integer() and 1 <= factor <= newest[0] else "wrong answer"
                stats.add(kind, resp.status_code, (time.perf_counter() - t0) * 1e3, problem)
            elif r < 0.80:
                kind = "grpc_infer"
                i = tc.InferInput("x", [1, 4], "FP32")
                i.set_data_from_numpy(np.full((1, 4), x, np.float32))
                out = triton.infer("m", [i], client_timeout=30).as_numpy("y")
                factor = out[0, 0] / x
                problem = None if float(factor).is_integer() and 1 <= factor <= newest[0] else "wrong answer"
                stats.add(kind, "OK", (time.perf_counter() - t0) * 1e3, problem)
            elif r < 0.88:
                kind = "malformed_json"
                resp = sess.post(f"{rest}/v1/models/m:predict", data=b'{"instances": [1, 2,', timeout=30)
                stats.add(kind, resp.status_code, (time.perf_counter() - t0) * 1e3,
                          None if resp.status_code == 400 else "not 400")
            elif r < 0.93:
                kind = "unknown_model"
                resp = sess.post(f"{rest}/v1/models/nope:predict", json={"instances": [[1] * 4]}, timeout=30)
                stats.add(kind, resp.status_code, (time.perf_counter() - t0) * 1e3,
                          None if resp.status_code == 404 else "not 404")
            elif r < 0.96:
                kind = "oversized"
                try:
                    resp = requests.post(f"{rest}/v1/models/m:predict", data=oversized, timeout=30)
                    code = resp.status_code
                except requests.ConnectionError:
                    code = "closed"  # the server may close while the client still sends
                stats.add(kind, code, (time.perf_counter() - t0) * 1e3, None if code in (413, "closed") else "not 413")
            else:
                kind = "metrics"
                resp = sess.get(f"{rest}/metrics", timeout=30)
                stats.add(kind, resp.status_code, (time.perf_counter() - t0) * 1e3,
                          None if resp.status_code == 200 and "mserve_requests_total" in resp.text else "bad metrics")
        except Exception as e:  # noqa: BLE001 - every failure is counted, by kind
            stats.add(kind, type(e).__name__, (time.perf_counter() - t0) * 1e3, f"{type(e).__name__}")
            stats.examples.setdefault((kind, type(e).__name__), str(e)[:200])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--swap_seconds", type=float, default=5.0)
    ap.add_argument("--plot", default="soak.png")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mserve-soak-")
    base = os.path.join(work, "m")
    write_version(base, 1)
    newest = [1]
    rest_port, grpc_port = free_port(), free_port()
    max_body = 1 << 20
    server = subprocess.Popen([sys.executable, "-m", "mserve", "serve", "--model_name=m", f"--model_base_path={base}",
                               f"--rest_api_port={rest_port}", f"--port={grpc_port}", "--host=127.0.0.1",
                               "--file_system_poll_wait_seconds=1", f"--max_body_bytes={max_body}", "--threads=1",
                               "--enable_batching"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rest = f"http://127.0.0.1:{rest_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{rest}/v2/health/ready", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            print("the server did not start", file=sys.stderr)
            return 1
        time.sleep(0.1)

    stats, stop = Stats(), threading.Event()
    samples = []  # (seconds, rss MB, answers so far)
    threads = [threading.Thread(target=client, args=(rest, f"127.0.0.1:{grpc_port}", stop, stats, newest, i, max_body))
               for i in range(args.clients)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    end = t_start + args.minutes * 60
    next_swap = t_start + args.swap_seconds
    while time.monotonic() < end:
        now = time.monotonic()
        with stats.lock:
            total = sum(stats.answers.values())
        samples.append((now - t_start, rss_mb(server.pid), total))
        if now >= next_swap:
            write_version(base, newest[0] + 1)
            newest[0] += 1
            # Keep the folder small: versions older than the last three are removed from disk.
            old = os.path.join(base, str(newest[0] - 3))
            if os.path.isdir(old):
                shutil.rmtree(old, ignore_errors=True)
            next_swap = now + args.swap_seconds
        time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    server.send_signal(signal.SIGTERM)
    try:
        drained = server.wait(timeout=60) == 0
    except subprocess.TimeoutExpired:
        server.kill()
        drained = False
    shutil.rmtree(work, ignore_errors=True)

    total = sum(stats.answers.values())
    unexpected = sum(stats.unexpected.values())
    print(f"soak: {elapsed / 60:.1f} min, {args.clients} clients, {newest[0]} versions swapped in, "
          f"{total} requests ({total / elapsed:.0f}/s)")
    print("| kind | answers (status: count) | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for kind in sorted(stats.latency):
        by = ", ".join(f"{s}: {n}" for (k, s), n in sorted(stats.answers.items(), key=str) if k == kind)
        lat = np.array(stats.latency[kind])
        print(f"| {kind} | {by} | {np.percentile(lat, 50):.2f} | {np.percentile(lat, 99):.2f} |")
    print(f"unexpected answers: {unexpected}")
    for (kind, what), n in stats.unexpected.items():
        print(f"  {kind}: {what} x{n} (e.g. {stats.examples.get((kind, what), '')})")
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    warm = rss[t >= 0.1 * elapsed]
    base_rss = warm[0] if len(warm) else rss[0]
    second = t >= elapsed / 2
    slope = np.polyfit(t[second] / 60, rss[second], 1)[0] if second.sum() > 2 else 0.0
    flat = rss[-1] <= base_rss * 1.10 + 16 and slope < 5
    print(f"server RSS: {rss[0]:.0f} MB at start, {base_rss:.0f} MB after warm-up, {rss[-1]:.0f} MB at the end, "
          f"max {rss.max():.0f} MB; second-half slope {slope:+.2f} MB/min -> {'flat' if flat else 'GROWING'}")
    print(f"drained on SIGTERM: {'yes' if drained else 'NO'}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(t / 60, rss, label="server RSS (MB)")
        ax.set_xlabel("minutes")
        ax.set_ylabel("MB")
        ax2 = ax.twinx()
        counts = np.array([s[2] for s in samples], np.float64)
        rps = np.diff(counts, prepend=0) / np.maximum(np.diff(t, prepend=t[0] - 1), 1e-3)
        ax2.plot(t / 60, rps, color="tab:orange", alpha=0.6, label="requests/s")
        ax2.set_ylabel("requests/s")
        ax.set_title(f"mserve soak: {total} requests, {unexpected} unexpected, {newest[0]} versions")
        fig.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"plot: {args.plot}")
    except ImportError:
        print("plot: skipped (matplotlib is not installed)")
    ok = unexpected == 0 and flat and drained
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
