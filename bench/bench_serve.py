"""HTTP serving throughput and latency: mserve's C++ server against FastAPI + uvicorn + onnxruntime
(the usual Python way to serve a model), the same models and request bodies, measured in the same
run with wrk on loopback at several concurrencies. Both servers run in their own process with the
same intra-op thread count; wrk shares the machine with them, equally for both.

Prints requests/s and p50/p99 latency for each, and the ratios (rps: mserve / peer, above 1 means
mserve serves more; p99: peer / mserve, above 1 means mserve answers faster). No thresholds.

    python bench/bench_serve.py [--seconds 5] [--concurrency 1 8 64] [--threads N]
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

# model name in the example repository -> request rows (a TF Serving row-format body)
CASES = [
    ("half_plus_two", "1 scalar", lambda: [1.0, 2.0, 5.0]),
    ("mlp", "1x256", lambda: examples.example_input("mlp", 1).tolist()),
    ("mlp", "8x256", lambda: examples.example_input("mlp", 8).tolist()),
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="wrk duration per measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads, both servers")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_serve needs wrk (Debian package wrk)")
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
             "--host=127.0.0.1", f"--threads={args.threads}", "--rest_api_timeout_in_ms=0"],
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
        for proc in servers.values():
            proc.terminate()
        for proc in servers.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
