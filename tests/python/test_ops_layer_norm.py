"""LayerNormalization and MeanVarianceNormalization (kernels/ops/layer_norm.cc) on one-node models,
against onnxruntime; float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(1)
CASES = Cases(opsets=(18,))
case = CASES.add

# LayerNormalization: Y only, and with Mean / InvStdDev.
for shape, axis in [((2, 3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4), 0), ((3, 5), -2), ((2, 3, 4, 5), 2)]:
    xs = rand(*shape)
    ns = shape[axis:] if axis >= 0 else shape[len(shape) + axis:]
    case(f"LayerNorm-{len(shape)}d-axis{axis}", "LayerNormalization", {"x": xs}, {"s": rand(*ns), "b": rand(*ns)},
         attrs={"axis": axis}, opsets=(17,), outputs=3)
case("LayerNorm-noB", "LayerNormalization", {"x": rand(4, 6)}, {"s": rand(6)}, attrs={"epsilon": 1e-2},
     opsets=(17, 21))
case("LayerNorm-bcast-scale", "LayerNormalization", {"x": rand(2, 3, 4)}, {"s": rand(1, 4), "b": rand(4)},
     attrs={"axis": 1}, opsets=(17,))
# A Scale and B of [rows, 1] hold as many values as a row when rows == cols, but vary by row.
case("LayerNorm-per-row-scale", "LayerNormalization", {"x": rand(4, 4)}, {"s": rand(4, 1), "b": rand(4, 1)},
     opsets=(17,))
case("LayerNorm-f64", "LayerNormalization", {"x": rand(3, 8, dtype=np.float64)},
     {"s": rand(8, dtype=np.float64), "b": rand(8, dtype=np.float64)}, opsets=(17,))
case("LayerNorm-runtime-scale", "LayerNormalization", {"x": rand(3, 8), "s": rand(8), "b": rand(8)}, opsets=(17,))
case("MVN", "MeanVarianceNormalization", {"x": rand(2, 3, 4, 5)}, opsets=(9, 13))
case("MVN-axes", "MeanVarianceNormalization", {"x": rand(2, 3, 4, 5)}, attrs={"axes": [1, 3]}, opsets=(13,))
case("MVN-last", "MeanVarianceNormalization", {"x": rand(4, 7)}, attrs={"axes": [-1]}, opsets=(13,))
# float16 (compared at rtol/atol 1e-3 below).
x16 = rand(3, 4, 5, lo=0.1, hi=1.5).astype(np.float16)
case("LayerNorm-f16", "LayerNormalization", {"x": x16},
     {"s": rand(5).astype(np.float16), "b": rand(5).astype(np.float16)},
     opsets=(17,), outputs=3)


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()

