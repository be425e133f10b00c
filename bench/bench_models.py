"""Latency of mserve vs ONNX Runtime (all graph optimizations on) on the model zoo (tests/models:
real PyTorch and scikit-learn exports), the bench models (bench/models: the zoo's BERT- and
GPT-style transformers at hidden 256, 4 layers, sequence 128) and the example models, at batch 1 and 32, with 1 and 2
threads, both called from Python and measured in the same run. Prints median latencies, the
speedup (onnxruntime / mserve; above 1 means mserve is faster), the geometric mean of the
mserve/onnxruntime latency ratio per batch size, and the first-call latency (load + first run).
No thresholds: a report.

    python bench/bench_models.py [--threads 1 2] [--batches 1 32] [--only NAME ...] [--seconds 0.3]
                                 [--precision fp32 fp16] [--busy N]

--busy N keeps N other processes busy-looping on the machine while both runtimes are measured
(what a shared host looks like). --precision fp16 runs each model as onnxruntime's float16
converter writes it (weights, inputs and outputs in float16), in both runtimes; its rows are
named MODEL/fp16.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

import mserve
from mserve import examples

ZOO = Path(__file__).resolve().parent.parent / "tests" / "models"
BENCH_MODELS = Path(__file__).resolve().parent / "models"  # realistic widths, weights stripped


def with_weights(path: Path) -> bytes:
    """A bench model (tests/models/generate.py --families bench) with its stripped float
    initializers filled: N(0, 0.05), seeded by the tensor's name, the same in every run."""
    m = onnx.load(str(path))
    for t in m.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT and not t.raw_data and not t.float_data and t.dims:
            rng = np.random.default_rng(sum(map(ord, t.name)))
            t.raw_data = (rng.standard_normal(tuple(t.dims)) * 0.05).astype(np.float32).tobytes()
    return m.SerializeToString()


def median_ms(fn, seconds: float, min_calls: int = 20, max_calls: int = 2000, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    t_end = time.perf_counter() + seconds
    while len(times) < min_calls or (time.perf_counter() < t_end and len(times) < max_calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def ort_session(model_bytes: bytes, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def one_node_model():
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", 1, [1, 4])],
                          [helper.make_tensor_value_info("y", 1, [1, 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def matmul_model(m: int, k: int, n: int) -> bytes:
    rng = np.random.default_rng(0)
    b = onnx.numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "B")
    g = helper.make_graph([helper.make_node("MatMul", ["a", "B"], ["c"])], "mm",
                          [helper.make_tensor_value_info("a", 1, [m, k])],
                          [helper.make_tensor_value_info("c", 1, [m, n])],
                          [b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def gemm_report(threads_list, seconds: float) -> None:
    """MatMul GFLOP/s of mserve and onnxruntime as a fraction of the machine's measured peak: the
    best rate onnxruntime's MLAS (a tuned GEMM library) reaches on a 2048^3 product."""
    print("\n| GEMM M x K x N | threads | mserve GFLOP/s | onnxruntime GFLOP/s | mserve / peak |")
    print("|---|---|---|---|---|")
    for threads in threads_list:
        big = 2048
        a = np.random.default_rng(1).standard_normal((big, big)).astype(np.float32)
        peak_s = ort_session(matmul_model(big, big, big), threads)
        peak = 2 * big ** 3 / (median_ms(partial(peak_s.run, None, {"a": a}), 0, 3, 3, warmup=1) * 1e6)
        print(f"| peak (onnxruntime 2048^3) | {threads} | | {peak:.0f} | |")
        for m, k, n in [(1024, 1024, 1024), (256, 768, 768), (8, 1024, 4096), (32, 256, 512)]:
            model = matmul_model(m, k, n)
            x = np.random.default_rng(2).standard_normal((m, k)).astype(np.float32)
            ms, os_ = mserve.load(model, threads=threads), ort_session(model, threads)
            flops = 2.0 * m * k * n
            g_ms = flops / (median_ms(partial(ms.predict, x), seconds) * 1e6)
            g_ort = flops / (median_ms(partial(os_.run, None, {"a": x}), seconds) * 1e6)
            print(f"| {m}x{k}x{n} | {threads} | {g_ms:.0f} | {g_ort:.0f} | {g_ms / peak:.0%} |", flush=True)


RSS_CHILD = r"""
import resource, sys, numpy as np
sys.path.insert(0, {bench!r})
from pathlib import Path
from bench_models import zoo_feeds
runtime, path, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
name, where = Path(path).stem, Path(sys.argv[4])
import mserve, onnxruntime as ort
def current_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
base = current_mb()
if runtime == "mserve":
    m = mserve.load(path, threads=1)
    run = lambda feeds: m.predict(feeds)
else:
    so = ort.SessionOptions(); so.intra_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    run = lambda feeds: s.run(None, feeds)
run(zoo_feeds(name, 1, where))
loaded = current_mb() - base
marks = []
for i in range(calls):
    run(zoo_feeds(name, 1 + i % 64, where))
    if i + 1 in (min(1000, calls // 2), calls):
        marks.append(current_mb())
print(loaded, *marks)
"""


def memory_report(names, calls: int) -> None:
    """Resident-set growth from loading and one call (1 thread), against the file size; and the
    resident size after 1,000 and `calls` calls with batch sizes cycling through 1..64 (it should
    stay flat: plans and oneDNN primitives are bounded caches)."""
    import subprocess
    import sys
    code = RSS_CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)))
    print("\n| model | file MB | mserve load + 1st call MB | onnxruntime MB | "
          f"mserve RSS after 1k / {calls // 1000}k calls"
          " (batch 1..64; bench models 64 / 128) | onnxruntime |")
    print("|---|---|---|---|---|---|")
    import tempfile
    for name in names:
        out = {}
        with tempfile.TemporaryDirectory() as tmp:
            path, where = ZOO / f"{name}.onnx", ZOO
            n = calls
            if not path.exists():  # a bench model: written with its weights; 128 calls (up to ~1 s each)
                path, where, n = Path(tmp) / f"{name}.onnx", BENCH_MODELS, min(calls, 128)
                path.write_bytes(with_weights(BENCH_MODELS / f"{name}.onnx"))
            for rt in ("mserve", "onnxruntime"):
                res = subprocess.run([sys.executable, "-c", code, rt, str(path), str(n), str(where)],
                                     capture_output=True, text=True)
                out[rt] = [float(v) for v in res.stdout.split()] if res.returncode == 0 else None
            size = path.stat().st_size / 2**20
        a, b = out["mserve"], out["onnxruntime"]
        fmt = lambda r: f"{r[1]:.0f} / {r[2]:.0f}" if r and len(r) == 3 else "-"  # noqa: E731
        print(f"| {name} | {size:.1f} | {a[0]:.1f} | {b[0]:.1f} | {fmt(a)} | {fmt(b)} |" if a and b else
              f"| {name} | {size:.1f} | failed | | | |", flush=True)


def zoo_feeds(name: str, batch: int, where: Path = ZOO) -> dict:
    """Inputs for zoo model `name` at `batch` rows: the first row of its first stored input set,
    repeated (DLRM's bags are rebuilt: the same bag per row)."""
    data = np.load(where / f"{name}.npz")
    first = {k.split(":", 2)[2]: data[k] for k in data.files if k.startswith("0:in:")}
    if name == "dlrm":
        feeds = {"dense": np.repeat(first["dense"][:1], batch, axis=0)}
        for t in range(3):
            idx, off = first[f"idx{t}"], first[f"off{t}"]
            bag = idx[off[0]:(off[1] if len(off) > 1 else len(idx))]
            feeds[f"idx{t}"] = np.tile(bag, batch)
            feeds[f"off{t}"] = (np.arange(batch) * len(bag)).astype(np.int64)
        return feeds
    return {k: np.repeat(v[:1], batch, axis=0) for k, v in first.items()}


def cases(only):
    """(name, model bytes, feeds(batch))."""
    out = []
    for path in sorted(ZOO.glob("*.onnx")):
        if only and path.stem not in only:
            continue
        out.append((path.stem, path.read_bytes(), lambda b, n=path.stem: zoo_feeds(n, b)))
    for path in sorted(BENCH_MODELS.glob("*.onnx")):
        if only and path.stem not in only:
            continue
        out.append((path.stem, with_weights(path), lambda b, n=path.stem: zoo_feeds(n, b, BENCH_MODELS)))
    for name in ("mlp", "cnn_nhwc"):
        key = "example_" + name
        if only and key not in only:
            continue
        model = examples.EXAMPLES[name]().SerializeToString()
        in_name = onnx.load_from_string(model).graph.input[0].name
        out.append((key, model, lambda b, n=name, i=in_name: {i: examples.example_input(n, b)}))
    return out


def as_float16(cases_):
    """The cases converted to float16 by onnxruntime's converter (those it converts)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    out = []
    for name, model, feeds_for in cases_:
        try:
            m16 = convert_float_to_float16(onnx.load_from_string(model), keep_io_types=False)
        except Exception as e:  # noqa: BLE001 - a model the converter refuses is reported, not benched
            print(f"({name}: not converted to float16: {str(e)[:80]})")
            continue
        half = lambda b, f=feeds_for: {k: v.astype(np.float16) if v.dtype == np.float32 else v  # noqa: E731
                                       for k, v in f(b).items()}
        out.append((name + "/fp16", m16.SerializeToString(), half))
    return out


def outputs_close(ms_out, ort_out, names, fp16=False):
    ms_list = [ms_out] if len(names) == 1 else [ms_out[n] for n in names]
    # float16: each runtime rounds differently between nodes (onnxruntime keeps runs of float32)
    tol = {"rtol": 5e-2, "atol": 5e-2} if fp16 else {"rtol": 1e-3, "atol": 1e-4}
    for a, b in zip(ms_list, ort_out):
        if isinstance(b, list):  # ZipMap: list of dicts
            continue
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), **tol)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--seconds", type=float, default=0.3, help="time per measurement (at least 20 calls)")
    ap.add_argument("--only", nargs="*", help="zoo names (or example_mlp, example_cnn_nhwc)")
    ap.add_argument("--memory-calls", type=int, default=10000, help="calls of the memory-growth check")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "fp16"])
    ap.add_argument("--busy", type=int, default=0, help="other processes busy-looping during the run")
    args = ap.parse_args()
    spin = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass"  # stops by itself
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for h in hogs:
            h.kill()


def run(args) -> None:
    print(f"mserve {mserve.__version__} (own kernels: {mserve._core.cpu_isa()}) vs onnxruntime {ort.__version__} "
          f"(ORT_ENABLE_ALL); median latency; {os.cpu_count()} cores; {args.busy} busy processes beside")
    print("| model | threads | batch | mserve ms | onnxruntime ms | speedup |")
    print("|---|---|---|---|---|---|")
    ratios = {}  # batch -> [mserve / ort]
    first_calls = []
    all_cases = cases(set(args.only or []))
    all_cases = (all_cases if "fp32" in args.precision else []) + (
        as_float16(all_cases) if "fp16" in args.precision else [])
    for name, model, feeds_for in all_cases:
        for threads in args.threads:
            t0 = time.perf_counter()
            ms = mserve.load(model, threads=threads)
            f1 = feeds_for(1)
            ms.predict(f1)
            ms_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            os_ = ort_session(model, threads)
            os_.run(None, f1)
            ort_first = time.perf_counter() - t0
            if threads == args.threads[0]:
                first_calls.append((name, ms_first * 1e3, ort_first * 1e3))
            out_names = [o.name for o in os_.get_outputs()]
            for batch in args.batches:
                feeds = feeds_for(batch)
                outputs_close(ms.predict(feeds), os_.run(None, feeds), out_names, name.endswith("/fp16"))
                t_ms = median_ms(partial(ms.predict, feeds), args.seconds)
                t_ort = median_ms(partial(os_.run, None, feeds), args.seconds)
                ratios.setdefault(batch, []).append((t_ms / t_ort, name, threads))
                print(f"| {name} | {threads} | {batch} | {t_ms:.4f} | {t_ort:.4f} | {t_ort / t_ms:.2f}x |", flush=True)
    tiny = one_node_model().SerializeToString()
    x = np.ones((1, 4), np.float32)
    ms, os_ = mserve.load(tiny, threads=1), ort_session(tiny, 1)
    a = median_ms(partial(ms.predict, x), args.seconds * 3)
    b = median_ms(lambda: os_.run(None, {"x": x}), args.seconds * 3)
    print(f"\nper-call overhead (one Relu node, 1 thread): mserve {a * 1e3:.2f} us, onnxruntime {b * 1e3:.2f} us, "
          f"ratio {a / b:.2f}")
    print("\n| batch | geomean mserve/onnxruntime latency | worst (model, threads) |")
    print("|---|---|---|")
    for batch, rs in ratios.items():
        g = math.exp(sum(math.log(r) for r, _, _ in rs) / len(rs))
        worst = max(rs)
        print(f"| {batch} | {g:.2f} | {worst[0]:.2f} ({worst[1]}, {worst[2]}) |")
    gemm_report(args.threads, args.seconds)
    memory_report([n for n in ("mlp", "cnn_nhwc", "resnet18", "bert_encoder", "sk_random_forest_zipmap", "bert_seq128")
                   if not args.only or n in args.only], args.memory_calls)
    print("\n| model | first call mserve ms | first call onnxruntime ms |")
    print("|---|---|---|")
    for name, a, b in first_calls:
        print(f"| {name} | {a:.1f} | {b:.1f} |")


if __name__ == "__main__":
    main()
