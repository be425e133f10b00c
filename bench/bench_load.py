"""Loading the real-size zoo (build/zoo-real, `make zoo-real`): memory and time, mserve against
ONNX Runtime, each load in a fresh process of its own. No thresholds: a report.

Per model and engine: the file size, peak RSS while loading (the process's high-water mark, the
interpreter's own memory included and reported apart), RSS after loading and after 1,000 calls
(batch 1, 2 intra-op threads), load time and load + first call, and for 4 processes that serve one
model at once the total PSS (proportional set size: memory shared between them counted once)
against one process's PSS when it runs alone. "mserve+cache" loads with a pack cache
(`mserve.load(..., pack_cache=DIR)`) that a load before the measured ones wrote: its processes map
one copy of the packed weights.

    python bench/bench_load.py [--only NAME ...] [--calls 1000] [--processes 4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_real import NAMES, ZOO, feeds  # noqa: E402


def status_mb(field: str, pid: str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker(engine: str, path: str, name: str, calls: int, hold: bool) -> None:
    x = feeds(name, 1)
    import numpy as np  # noqa: F401  (loaded before the baseline)
    if engine.startswith("mserve"):
        import mserve
        cache = os.environ["MSERVE_BENCH_PACK_CACHE"] if engine == "mserve+cache" else False
        base = status_mb("VmRSS")
        t0 = time.perf_counter()
        model = mserve.load(path, threads=2, pack_cache=cache)
        loaded = time.perf_counter() - t0
        model.predict(x)
        run = lambda: model.predict(x)  # noqa: E731
    else:
        import onnxruntime as ort
        base = status_mb("VmRSS")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        t0 = time.perf_counter()
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        loaded = time.perf_counter() - t0
        sess.run(None, x)
        run = lambda: sess.run(None, x)  # noqa: E731
    first = time.perf_counter() - t0
    peak = status_mb("VmHWM")  # the first call included
    after_load = status_mb("VmRSS")
    for _ in range(calls):
        run()
    print(json.dumps({"base": base, "peak": peak, "after_load": after_load, "after_calls": status_mb("VmRSS"),
                      "load_s": loaded, "first_s": first}), flush=True)
    if hold:  # stay up for the PSS count, until told to go
        sys.stdin.readline()


def spawn(engine: str, path: Path, name: str, calls: int, hold: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", engine, str(path), name, str(calls),
                             "1" if hold else "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def measure(engine: str, path: Path, name: str, calls: int, processes: int) -> dict:
    if engine == "mserve+cache":  # a load that writes the cache the measured ones map
        w = spawn(engine, path, name, 1, False)
        w.stdout.readline()
        w.wait()
    p = spawn(engine, path, name, calls, False)
    res = json.loads(p.stdout.readline())
    p.wait()
    procs = [spawn(engine, path, name, 10, True)]
    procs[0].stdout.readline()  # loaded and called
    res["pss_1"] = pss_mb(procs[0].pid)  # alone
    procs += [spawn(engine, path, name, 10, True) for _ in range(processes - 1)]
    for q in procs[1:]:
        q.stdout.readline()
    res["pss_n"] = sum(pss_mb(q.pid) for q in procs)
    for q in procs:
        q.stdin.write("\n")
        q.stdin.flush()
        q.wait()
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        engine, path, name, calls, hold = sys.argv[2:7]
        worker(engine, path, name, int(calls), hold == "1")
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="model names (default: every fp32 model in the zoo)")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=4)
    args = ap.parse_args()
    names = [n for n in (args.only or NAMES) if (ZOO / f"{n}.onnx").exists()]
    if not names:
        sys.exit(f"no models in {ZOO}: run `make zoo-real` first")
    n = args.processes
    os.environ["MSERVE_BENCH_PACK_CACHE"] = tempfile.mkdtemp(prefix="mserve-packs-")
    print(f"Loading in a fresh process per load, 2 intra-op threads; MB; peak and RSS include the "
          f"interpreter's own (base); PSS: {n} processes serving the model at once vs one")
    print(f"| model | file | engine | base | peak | peak - base | after load | after {args.calls} calls | load s "
          f"| load + 1st call s | PSS x1 | PSS x{n} | x{n} / x1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        path = ZOO / f"{name}.onnx"
        size = path.stat().st_size / 2**20
        for engine in ("mserve", "mserve+cache", "onnxruntime"):
            r = measure(engine, path, name, args.calls, n)
            print(f"| {name} | {size:.0f} | {engine} | {r['base']:.0f} | {r['peak']:.0f} | "
                  f"{r['peak'] - r['base']:.0f} | {r['after_load']:.0f} | {r['after_calls']:.0f} | {r['load_s']:.2f} | "
                  f"{r['first_s']:.2f} | {r['pss_1']:.0f} | {r['pss_n']:.0f} | {r['pss_n'] / r['pss_1']:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
