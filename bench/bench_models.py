"""Latency of mserve vs ONNX Runtime on the example models, both called from Python with the same
thread count, measured in the same run. Prints median latencies and the ratio
(speedup = onnxruntime / mserve; above 1 means mserve is faster). No thresholds: a report.

    python bench/bench_models.py [--threads N] [--calls 300]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import helper

import mserve
from mserve import examples


def median_ms(fn, calls: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def ort_session(model, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def one_node_model():
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", 1, [1, 4])], [helper.make_tensor_value_info("y", 1, [1, 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    print(f"mserve {mserve.__version__} vs onnxruntime {ort.__version__}; {args.threads} threads; "
          f"median of {args.calls} calls")
    rows = []
    for name in ["linear_regression", "mlp", "cnn_nhwc"]:
        model = examples.EXAMPLES[name]()
        ms = mserve.load(model, threads=args.threads)
        os_ = ort_session(model, args.threads)
        in_name = ms.inputs[0].name
        for batch in (1, 32):
            x = examples.example_input(name, batch)
            np.testing.assert_allclose(ms.predict(x), os_.run(None, {in_name: x})[0], rtol=1e-3, atol=1e-4)
            t_ms = median_ms(lambda: ms.predict(x), args.calls)
            t_ort = median_ms(lambda: os_.run(None, {in_name: x}), args.calls)
            rows.append((name, batch, t_ms, t_ort))
    tiny = one_node_model()
    x = np.ones((1, 4), np.float32)
    ms, os_ = mserve.load(tiny, threads=args.threads), ort_session(tiny, args.threads)
    rows.append(("one-node overhead", 1, median_ms(lambda: ms.predict(x), args.calls * 10),
                 median_ms(lambda: os_.run(None, {"x": x}), args.calls * 10)))
    print(f"| {'model':<18} | batch | mserve ms | onnxruntime ms | speedup |")
    print(f"|{'-' * 20}|-------|-----------|----------------|---------|")
    for name, batch, a, b in rows:
        print(f"| {name:<18} | {batch:>5} | {a:>9.4f} | {b:>14.4f} | {b / a:>6.2f}x |")


if __name__ == "__main__":
    main()
