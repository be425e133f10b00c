"""Step 4: the model zoo (tests/models, or zoo/ in the bundle) on the device against the CPU.

Every model is loaded twice (device and "cpu", both optimized as users load them) and every
input set of its .npz runs through both; float32 outputs must agree within a relative L2 error of
1e-4, labels exactly. The placement of each model is printed: how many nodes run on the device
and on the CPU, the copies between them, and why each CPU node stayed there (grouped by op),
which is the to-do list of the backend.

On CUDA the reduced precisions follow (precision_errors): the models of PRECISION_MODELS (the
zoo's transformers, CNNs and recurrent models; --quick: those of QUICK) again with precision
"tf32", "fp16" and "bf16", its float outputs' relative L2 error against the CPU's float32 ones
reported per precision and held to PRECISION_RTOL (labels and other exact outputs may flip near
a decision boundary: counted, not failed)."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .common import MODEL_RTOL, Result, compare, compare_outputs, device_unavailable, rel_l2, zoo_dir

# --quick: a transformer, a CNN, a recurrent model, a classic-ML pipeline and the smallest MLP.
QUICK = ["mlp", "bert_encoder", "resnet18", "bilstm", "sk_scaler_logistic_zipmap"]

# Relative L2 error of a whole model's float outputs against float32 on the CPU, by precision:
# TF32 and float16 keep 10 bits of mantissa in the products' operands (2^-11 relative per
# rounding), bfloat16 7 (2^-8), accumulated over a dozen layers.
PRECISION_RTOL = {"tf32": 1e-2, "fp16": 1e-2, "bf16": 5e-2}
# Where precision matters (products, convolutions, attention), within the step's time: three more
# loads each.
PRECISION_MODELS = ["mlp", "bert_encoder", "gpt_decoder", "dynamo_bert_base", "dynamo_vit_b_16", "resnet18",
                    "mobilenet_v2", "cnn_nhwc", "dynamo_efficientnet_b0", "bilstm", "textcnn", "dlrm"]


def input_sets(path: Path) -> list[dict[str, np.ndarray]]:
    """The input sets of a zoo model's .npz ("<i>:in:<name>" keys, tests/models/README.md)."""
    data = np.load(path)
    sets: dict[int, dict[str, np.ndarray]] = {}
    for key in data.files:
        parts = key.split(":", 2)
        if len(parts) == 3 and parts[1] == "in":
            sets.setdefault(int(parts[0]), {})[parts[2]] = data[key]
    return [sets[i] for i in sorted(sets)]


def fallback_reasons(fallbacks: list[tuple[str, str, str]]) -> list[str]:
    """CPU nodes grouped by (op, reason): "Loop x2: control flow stays on the CPU"."""
    counts = Counter((op, why) for _, op, why in fallbacks)
    return [f"{op} x{n}: {why}" for (op, why), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def run_model(mserve: Any, root: Path, name: str, device: str) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name, "ok": True, "err": 0.0, "problems": []}
    t0 = time.perf_counter()
    try:
        cpu = mserve.load(str(root / f"{name}.onnx"))
        dev = mserve.load(str(root / f"{name}.onnx"), device=device)
        sets = input_sets(root / f"{name}.npz")
        for i, feeds in enumerate(sets):
            want = cpu.predict(feeds)
            got = dev.predict(feeds)
            err, problems = compare_outputs(got, want, MODEL_RTOL)
            row["err"] = max(row["err"], err)
            row["problems"] += [f"set {i} {p}" for p in problems]
        p = dev.placement()
        row["sets"] = len(sets)
        if p is not None:
            row.update(device_nodes=p.device_nodes, cpu_nodes=p.cpu_nodes, copies=p.copies, uploads=p.uploads,
                       fallbacks=fallback_reasons(p.fallbacks))
    except Exception as e:  # noqa: BLE001 (a model's failure is its row)
        row["problems"].append(f"{type(e).__name__}: {e}")
    row["ok"] = not row["problems"]
    row["ms"] = (time.perf_counter() - t0) * 1e3
    return row


def run(args: Any, result: Result, names: list[str] | None = None) -> None:
    import mserve
    device = args.device
    why = device_unavailable(device)
    if why:
        result.fail(why)
        result.summary = "mserve cannot use the device: " + why[:80]
        return
    root = zoo_dir(getattr(args, "zoo", None))
    available = sorted(p.stem for p in root.glob("*.onnx") if p.with_suffix(".npz").exists())
    if not available:
        result.fail(f"no zoo models in {root}")
        result.summary = f"no models in {root}"
        return
    if names is None:
        names = [n for n in QUICK if n in available] if args.quick else available
    print(f"zoo: {root}, {len(names)} of {len(available)} models on device {device!r}")
    rows = []
    result.line(f"{'model':<36} {'sets':>4} {device:>6} {'cpu':>5} {'copies':>6} {'max rel L2':>10}  status")
    for name in names:
        row = run_model(mserve, root, name, device)
        rows.append(row)
        status = "ok" if row["ok"] else "FAIL " + "; ".join(row["problems"])[:200]
        counts = [row.get(k, "?") for k in ("sets", "device_nodes", "cpu_nodes", "copies")]
        result.line(f"{name:<36} {counts[0]:>4} {counts[1]:>6} {counts[2]:>5} {counts[3]:>6} "
                    f"{row['err']:>10.1e}  {status}")
        for reason in row.get("fallbacks", []):
            print(f"    cpu  {reason}")
        if not row["ok"]:
            result.fail(f"zoo {name}: " + "; ".join(row["problems"]))
    n_dev = sum(r.get("device_nodes", 0) for r in rows)
    n_all = n_dev + sum(r.get("cpu_nodes", 0) for r in rows)
    worst = max([r["err"] for r in rows if r["ok"]] + [0.0])
    n_fail = sum(not r["ok"] for r in rows)
    if device == "cuda":
        ok = {r["model"] for r in rows if r["ok"]}
        prec = precision_errors(mserve, root, [n for n in PRECISION_MODELS if n in ok])
        for line in prec["lines"]:
            result.line(line)
        for problem in prec["problems"]:
            result.fail(f"precision: {problem}")
    interop = device_interop(mserve, root, device, [n for n in names if n in ("mlp", "resnet18", "bert_encoder")])
    for line in interop["lines"]:
        result.line(line)
    for problem in interop["problems"]:
        result.fail(f"interop: {problem}")
    result.summary = (f"{len(rows)} models, {n_fail} failed, max rel L2 {worst:.1e}, "
                      f"{n_dev} of {n_all} nodes on {device}; interop {interop['status']}")
    result.data = {"zoo": str(root), "models": rows, "interop": interop}


def float_error(got: Any, want: Any) -> tuple[float, int]:
    """(worst relative L2 over the float outputs, number of other outputs that differ)."""
    if not isinstance(want, dict):
        got, want = {"y": got}, {"y": want}
    worst, exact_differ = 0.0, 0
    for name, w in want.items():
        g = got[name]
        w_arr, g_arr = (np.asarray(w), np.asarray(g)) if not isinstance(w, list) else (None, None)
        if w_arr is not None and w_arr.dtype.kind == "f" and g_arr is not None and g_arr.shape == w_arr.shape:
            finite = np.isfinite(w_arr) & np.isfinite(g_arr)
            same_specials = np.array_equal(np.isnan(w_arr), np.isnan(g_arr))
            worst = max(worst, rel_l2(g_arr[finite], w_arr[finite]) if same_specials else float("inf"))
        elif compare(g, w, 0.0)[1]:
            exact_differ += 1
    return worst, exact_differ


def precision_errors(mserve: Any, root: Path, names: list[str], device: str = "cuda") -> dict[str, Any]:
    """Each model loaded once per reduced precision (PRECISION_RTOL) on the device, its outputs on
    every input set against the CPU's float32 ones: a table of the worst relative L2 error per
    model and precision; a problem for each error over its precision's tolerance (or a load or
    run that fails)."""
    out: dict[str, Any] = {"lines": [], "problems": [], "worst": dict.fromkeys(PRECISION_RTOL, 0.0)}
    out["lines"].append(f"{'precision: rel L2 vs cpu fp32':<36} " +
                        " ".join(f"{p:>8}" for p in PRECISION_RTOL) + "  (tolerance " +
                        ", ".join(f"{p} {t:.0e}" for p, t in PRECISION_RTOL.items()) + ")")
    for name in names:
        cells, flipped = [], 0
        try:
            cpu = mserve.load(str(root / f"{name}.onnx"))
            sets = input_sets(root / f"{name}.npz")
            wants = [cpu.predict(feeds) for feeds in sets]
        except Exception as e:  # noqa: BLE001 (the fp32 zoo step reports it)
            out["problems"].append(f"{name}: {type(e).__name__}: {e}")
            continue
        for precision, tol in PRECISION_RTOL.items():
            try:
                model = mserve.load(str(root / f"{name}.onnx"), device=device, precision=precision)
                err = 0.0
                for feeds, want in zip(sets, wants):
                    e, n = float_error(model.predict(feeds), want)
                    err, flipped = max(err, e), flipped + n
            except Exception as e:  # noqa: BLE001 (a model's failure is its cell)
                out["problems"].append(f"{name} {precision}: {type(e).__name__}: {e}")
                cells.append(f"{'error':>8}")
                continue
            out["worst"][precision] = max(out["worst"][precision], err)
            if err > tol:
                out["problems"].append(f"{name} {precision}: relative L2 {err:.1e} over {tol:.0e}")
            cells.append(f"{err:>8.1e}")
        out["lines"].append(f"{name:<36} " + " ".join(cells) +
                            (f"  ({flipped} exact outputs differ)" if flipped else ""))
    return out


def device_interop(mserve: Any, root: Path, device: str, names: list[str]) -> dict[str, Any]:
    """Outputs kept on the device (output_device) and fed back as inputs; on CUDA with PyTorch, a
    CUDA tensor as an input and a kept output taken by torch.as_tensor and torch.from_dlpack, all
    without a copy, and CUDA inputs that offer DLPack only."""
    out: dict[str, Any] = {"lines": [], "problems": [], "status": "skip"}
    if not names:
        return out
    name = names[0]
    model = mserve.load(str(root / f"{name}.onnx"), device=device)
    feeds = input_sets(root / f"{name}.npz")[0]
    want = model.predict(feeds)
    want = want if isinstance(want, dict) else {model.outputs[0].name: want}
    kept = model.predict(feeds, output_device=device)
    kept = kept if isinstance(kept, dict) else {model.outputs[0].name: kept}
    for k, w in want.items():
        got = kept[k].numpy() if isinstance(kept[k], mserve.DeviceTensor) else np.asarray(kept[k])
        if not np.array_equal(got, w):
            out["problems"].append(f"{name}/{k}: the output kept on {device} differs from the host one")
    out["lines"].append(f"interop {name}: outputs kept on {device}, "
                        f"{sum(isinstance(v, mserve.DeviceTensor) for v in kept.values())} of {len(kept)} "
                        "as DeviceTensors, equal to the host outputs" if not out["problems"] else "")
    if device == "cuda":
        try:
            import torch
        except ImportError:
            out["status"] = "ok (no torch: CUDA tensors not tried)" if not out["problems"] else "fail"
            return out
        x = {k: torch.from_numpy(v).cuda() for k, v in feeds.items()}
        got = model.predict(x)  # read in place through __cuda_array_interface__
        got = got if isinstance(got, dict) else {model.outputs[0].name: got}
        for k, w in want.items():
            if not np.array_equal(np.asarray(got[k]), w):
                out["problems"].append(f"{name}/{k}: a torch CUDA input gives another output")
        first = next(v for v in kept.values() if isinstance(v, mserve.DeviceTensor))
        t = torch.as_tensor(first, device="cuda")
        if t.data_ptr() != first.__cuda_array_interface__["data"][0]:
            out["problems"].append("torch.as_tensor copied a kept output")
        out["lines"].append(f"interop {name}: torch CUDA inputs read in place, a kept output taken by torch "
                            f"without a copy ({tuple(t.shape)})")
        # DLPack both ways: a kept output through torch.from_dlpack, torch tensors that offer only
        # __dlpack__ (as JAX's and TensorFlow's arrays do) as inputs.
        d = torch.from_dlpack(first)
        if d.data_ptr() != first.__cuda_array_interface__["data"][0] or d.device.type != "cuda":
            out["problems"].append("torch.from_dlpack copied a kept output")

        class DLPackOnly:
            def __init__(self, t: Any):
                self.t = t

            def __dlpack__(self, **kw: Any) -> Any:
                return self.t.__dlpack__(**kw)

            def __dlpack_device__(self) -> Any:
                return self.t.__dlpack_device__()
        got = model.predict({k: DLPackOnly(v) for k, v in x.items()})
        got = got if isinstance(got, dict) else {model.outputs[0].name: got}
        for k, w in want.items():
            if not np.array_equal(np.asarray(got[k]), w):
                out["problems"].append(f"{name}/{k}: a DLPack CUDA input gives another output")
        out["lines"].append(f"interop {name}: DLPack both ways (torch.from_dlpack of a kept output in place, "
                            "DLPack-only CUDA inputs)")
        try:
            import cupy
        except ImportError:
            out["lines"].append("interop: no CuPy here: cupy.asarray not tried")
        else:
            c = cupy.asarray(first)  # through __cuda_array_interface__
            if c.data.ptr != first.__cuda_array_interface__["data"][0]:
                out["problems"].append("cupy.asarray copied a kept output")
            got = model.predict({k: cupy.asarray(v) for k, v in feeds.items()})
            got = got if isinstance(got, dict) else {model.outputs[0].name: got}
            for k, w in want.items():
                if not np.array_equal(np.asarray(got[k]), w):
                    out["problems"].append(f"{name}/{k}: a CuPy input gives another output")
            out["lines"].append(f"interop {name}: CuPy inputs read in place, cupy.asarray of a kept output in place")
    out["status"] = "ok" if not out["problems"] else "fail"
    return out
