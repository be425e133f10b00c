"""mserve vs ONNX Runtime on the real-size zoo (build/zoo-real, `make zoo-real`): BERT-base, GPT-2,
ResNet-50, ViT-B/16, the Keras models, ... as exported (fp32), as onnxruntime's quantizer writes
them (NAME.int8.onnx dynamic, NAME.qdq.onnx static QDQ) and converted to float16 (NAME.fp16.onnx,
its float inputs given in float16). Each engine runs in its own process (two
runtimes in one process disturb each other's thread pools), the order of the two alternates from
one measurement to the next, and each number is the best of several rounds' medians (the round
least disturbed by the rest of the machine). No thresholds: a report.

    python bench/bench_real.py [--batches 1 8] [--threads 1 2] [--only NAME ...] [--kinds fp32 int8]
                               [--busy] [--callers 1 4 16] [--rounds 3] [--seconds 1.0]

Tables (ratio = mserve / onnxruntime latency; below 1 means mserve is faster):
  quiet        latency per model, batch and thread count, with the geometric mean of the ratios;
               with fp16 among the kinds, each engine's float16 model against its float32 original
  --busy       the same with one other process busy-looping at normal priority, and each engine's
               slowdown against its quiet latency
  --callers    throughput (calls/s) with C Python threads calling one model at once (2 intra-op
               threads), and the ratio mserve / onnxruntime of the throughputs (above 1: mserve)
Inputs: the first stored input set's first row, repeated to the batch size.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ZOO = Path(os.environ.get("MSERVE_REAL_ZOO", ROOT / "build" / "zoo-real"))
NAMES = ["bert_base", "distilbert", "minilm", "roberta", "gpt2", "resnet50", "mobilenet_v3_large",
         "efficientnet_b0", "convnext_tiny", "vit_b_16", "keras_cnn", "keras_bilstm", "keras_two_tower",
         "keras_mobilenet_v2", "keras_efficientnet_b0"]
KINDS = {"fp32": "", "int8": ".int8", "qdq": ".qdq", "fp16": ".fp16"}
SPIN = "while True: pass"


def feeds(name: str, batch: int, half: bool = False) -> dict[str, np.ndarray]:
    """The first stored input set's first row repeated to `batch`; float inputs in float16 for a
    float16 model (`half`)."""
    data = np.load(ZOO / f"{name}.npz")
    out = {}
    for key in data.files:
        if key.startswith("0:in:"):
            v = np.repeat(data[key][:1], batch, axis=0)
            out[key[5:]] = np.ascontiguousarray(v.astype(np.float16) if half and v.dtype == np.float32 else v)
    return out


# ------------------------------------------------------------------------------ worker process

def worker(engine: str, path: str, name: str, batch: int, threads: int, rounds: int, seconds: float,
           callers: int) -> dict:
    x = feeds(name, batch, half=path.endswith(KINDS["fp16"] + ".onnx"))
    t0 = time.perf_counter()
    if engine == "mserve":
        import mserve
        model = mserve.load(path, threads=threads)
        run = lambda: model.predict(x)  # noqa: E731
    else:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        run = lambda: sess.run(None, x)  # noqa: E731
    load_s = time.perf_counter() - t0
    for _ in range(3):
        run()
    if callers > 0:  # concurrency mode
        return {"load_s": load_s, "calls_per_s": max(throughput(run, callers, seconds) for _ in range(rounds))}
    medians = []
    for _ in range(rounds):
        times, end = [], time.perf_counter() + seconds
        while len(times) < 5 or (time.perf_counter() < end and len(times) < 1000):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        medians.append(statistics.median(times) * 1e3)
    return {"load_s": load_s, "ms": min(medians)}


def throughput(run, callers: int, seconds: float) -> float:
    count, stop = [0] * callers, time.perf_counter() + seconds

    def loop(i):
        while time.perf_counter() < stop:
            run()
            count[i] += 1

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(count) / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------ driver

def measure(engine, path, name, batch, threads, args, callers=0):
    """Latency (callers 0) or throughput with `callers` threads, in a process of its own."""
    cmd = [sys.executable, __file__, "--worker", engine, str(path), name, str(batch), str(threads),
           str(args.rounds), str(args.seconds), str(callers)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:100]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def models(args):
    for name in args.only or NAMES:
        for kind in args.kinds:
            path = ZOO / f"{name}{KINDS[kind]}.onnx"
            if path.exists() and (ZOO / f"{name}.npz").exists():
                yield f"{name}{KINDS[kind]}", name, path


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def latency_table(args, title):
    print(f"\n### {title}\n")
    print("| model | batch | threads | mserve ms | onnxruntime ms | ratio |")
    print("|---|---|---|---|---|---|")
    rows, flip = [], False
    for label, name, path in models(args):
        for batch in args.batches:
            for threads in args.threads:
                order = ["ort", "mserve"] if flip else ["mserve", "ort"]
                flip = not flip
                res = {e: measure(e, path, name, batch, threads, args) for e in order}
                m, o = res["mserve"].get("ms"), res["ort"].get("ms")
                ratio = m / o if m and o else None
                rows.append((label, batch, threads, m, o, ratio))
                cell = lambda r, k="ms": f"{r[k]:.2f}" if k in r else r.get("error", "-")  # noqa: E731
                print(f"| {label} | {batch} | {threads} | {cell(res['mserve'])} | {cell(res['ort'])} | "
                      f"{ratio:.2f} |" if ratio else f"| {label} | {batch} | {threads} | {cell(res['mserve'])} | "
                      f"{cell(res['ort'])} | - |", flush=True)
    print()
    for batch in args.batches:
        for threads in args.threads:
            sel = [r[5] for r in rows if r[1] == batch and r[2] == threads]
            worst = max((r for r in rows if r[1] == batch and r[2] == threads and r[5]), key=lambda r: r[5],
                        default=None)
            print(f"geomean ratio, batch {batch}, {threads} threads: {geomean(sel):.3f} over {len(sel)} models"
                  + (f"; worst {worst[0]} {worst[5]:.2f}" if worst else ""))
    return rows


def half_table(rows):
    """Each engine's float16 model against its float32 original, from the quiet rows."""
    by = {(r[0], r[1], r[2]): r for r in rows}
    pairs = [(r, by.get((r[0][: -len(KINDS["fp16"])], r[1], r[2]))) for r in rows if r[0].endswith(KINDS["fp16"])]
    pairs = [(h, f) for h, f in pairs if f]
    if not pairs:
        return
    print("\n| model | batch | threads | mserve fp16 / fp32 | onnxruntime fp16 / fp32 |")
    print("|---|---|---|---|---|")
    for h, f in pairs:
        cell = lambda a, b: f"{a / b:.2f}x" if a and b else "-"  # noqa: E731
        print(f"| {f[0]} | {h[1]} | {h[2]} | {cell(h[3], f[3])} | {cell(h[4], f[4])} |")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        engine, path, name, batch, threads, rounds, seconds, callers = sys.argv[2:10]
        print(json.dumps(worker(engine, path, name, int(batch), int(threads), int(rounds), float(seconds),
                                int(callers))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--kinds", nargs="+", default=["fp32", "int8", "qdq", "fp16"], choices=list(KINDS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0, help="time per round")
    ap.add_argument("--busy", action="store_true", help="also measure beside one busy-looping process")
    ap.add_argument("--callers", type=int, nargs="*", default=[], help="concurrency mode: caller thread counts")
    args = ap.parse_args()
    if not any(True for _ in models(args)):
        sys.exit(f"no models in {ZOO}: run `make zoo-real`")
    print(f"mserve vs onnxruntime, real-size zoo ({ZOO}); {os.cpu_count()} cores; each engine in its own "
          f"process, best of {args.rounds} rounds' medians, {args.seconds} s per round")
    quiet = latency_table(args, "quiet")
    half_table(quiet)
    if args.busy:
        hog = subprocess.Popen([sys.executable, "-c", SPIN])
        try:
            busy = latency_table(args, "beside one busy process")
        finally:
            hog.kill()
        print("\n| model | batch | threads | mserve slowdown | onnxruntime slowdown |")
        print("|---|---|---|---|---|")
        for q, b in zip(quiet, busy):
            if q[3] and b[3] and q[4] and b[4]:
                print(f"| {q[0]} | {q[1]} | {q[2]} | {b[3] / q[3]:.2f}x | {b[4] / q[4]:.2f}x |")
    if args.callers:
        print("\n### concurrency: calls/s with C callers on one model, 2 intra-op threads\n")
        print("| model | batch | callers | mserve calls/s | onnxruntime calls/s | mserve / onnxruntime |")
        print("|---|---|---|---|---|---|")
        for label, name, path in models(args):
            for c in args.callers:
                m = measure("mserve", path, name, args.batches[0], 2, args, callers=c).get("calls_per_s")
                o = measure("ort", path, name, args.batches[0], 2, args, callers=c).get("calls_per_s")
                ratio = f"{m / o:.2f}" if m and o else "-"
                print(f"| {label} | {args.batches[0]} | {c} | {m or 0:.1f} | {o or 0:.1f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
