"""LRN (kernels/ops/lrn.cc) on one-node models, against onnxruntime and a float64 formula; float32: rtol 1e-4,
atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(0)
CASES = Cases()
case = CASES.add

# LRN
case("LRN", "LRN", {"x": rand(2, 5, 4, 3)}, attrs={"size": 3}, opsets=(1, 13))
case("LRN-attrs", "LRN", {"x": rand(1, 7, 6, 5)}, attrs={"size": 5, "alpha": 0.01, "beta": 0.6, "bias": 2.0})
case("LRN-wide", "LRN", {"x": rand(1, 3, 2, 2)}, attrs={"size": 7, "alpha": 0.1})


def lrn(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    """The spec's formula. onnxruntime runs float32 4-D inputs with odd sizes only, and onnx.reference sums
    the window of channel c only for c < N (it loops over the batch dimension)."""
    sq = np.zeros(x.shape, np.float64)
    for c in range(x.shape[1]):
        lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1] - 1, c + size // 2)
        sq[:, c] = (x[:, lo:hi + 1].astype(np.float64) ** 2).sum(axis=1)
    return [(x / (bias + alpha / size * sq) ** beta).astype(x.dtype)]


for id_, shape, dt, attrs in [("even", (1, 7, 6, 5), np.float32, {"size": 4, "alpha": 0.01, "beta": 0.6, "bias": 2.0}),
                              ("size1-3d", (3, 4, 5), np.float32, {"size": 1, "alpha": 0.5}),
                              ("5d", (1, 3, 2, 2, 2), np.float32, {"size": 3, "alpha": 0.1}),
                              ("f64", (2, 6, 3, 3), np.float64, {"size": 6}),
                              ("f16", (2, 6, 3, 3), np.float16, {"size": 3})]:
    case("LRN-" + id_, "LRN", {"x": rand(*shape, dtype=dt)}, attrs=attrs,
         oracle=lambda inputs, a=attrs: lrn(inputs["x"], **a))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()

