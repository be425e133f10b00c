"""The GPU checks that need a device, run by bench/gpu_check.sh on a GPU machine: each table
activation computed by the CUDA backend (mserve._core_cuda) against the same operator run by
mserve's CPU kernels, on fresh random inputs with the edge values mixed in; fp32 relative L2
error must stay under 1e-5 and NaN must land where the CPU puts it. Prints one line per check."""
from __future__ import annotations

import sys

import numpy as np

import mserve
from mserve import _onnx_writer as w
from mserve import cuda

# (ONNX operator, attributes, table row): the unary activations of kernels/activation_table.h.
CASES = [("Relu", {}, "Relu"), ("LeakyRelu", {"alpha": 0.1}, "LeakyRelu"), ("Tanh", {}, "Tanh"),
         ("Sigmoid", {}, "Sigmoid"), ("HardSwish", {}, "HardSwish"), ("Gelu", {}, "Gelu"),
         ("Elu", {"alpha": 0.7}, "Elu"), ("Selu", {}, "Selu"), ("Celu", {"alpha": 1.5}, "Celu"),
         ("Softplus", {}, "Softplus"), ("Softsign", {}, "Softsign"),
         ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, "HardSigmoid"), ("Mish", {}, "Mish"),
         ("ThresholdedRelu", {"alpha": 0.5}, "ThresholdedRelu"), ("Shrink", {"lambd": 0.3, "bias": 0.1}, "Shrink")]
PARAMS = {"alpha": 0, "gamma": 1, "lambd": 0, "beta": 1, "bias": 1}


def cpu(op: str, attrs: dict[str, float], x: np.ndarray) -> np.ndarray:
    model = w.model([w.node(op, ["x"], ["y"], **attrs)], "g", [w.value_info("x", w.FLOAT, [x.size])],
                    [w.value_info("y", w.FLOAT, [x.size])], [], 22, "gpu_check")
    return mserve.load(model, threads=4).predict(x)


def main() -> int:
    backend = cuda.backend()  # mserve.Unavailable, with the reason, when there is no device
    count, _ = backend.device_count()
    print(f"devices: {count}")
    rng = np.random.default_rng(int.from_bytes(np.random.bytes(4), "little"))  # fresh every run
    edges = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e-40, 88.0, -88.0, 0.5, -0.5], np.float32)
    failed = 0
    for op, attrs, row in CASES:
        x = np.concatenate([edges, (rng.standard_normal(1 << 20) * 4).astype(np.float32)])
        params = [attrs[k] for k in ("alpha", "lambd", "gamma", "beta", "bias") if k in attrs]
        a = params[0] if params else None
        b = params[1] if len(params) > 1 else None
        if op == "Selu":
            a, b = None, None  # the table's defaults, as the operator's
        got = backend.activation(row, x, a, b)
        want = cpu(op, attrs, x)
        nan_ok = np.array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        inf_ok = np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
        err = float(np.linalg.norm((got - want)[finite]) / max(np.linalg.norm(want[finite]), 1e-30))
        ok = nan_ok and inf_ok and err < 1e-5
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} activation {row:16s} rel L2 {err:.2e} nan {nan_ok} inf {inf_ok}")
    print(f"{len(CASES) - failed} of {len(CASES)} activation checks pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
