"""BatchNormalization, InstanceNormalization, GroupNormalization, LpNormalization
(kernels/ops/normalization.cc) on one-node models, against onnxruntime (onnx.reference where onnxruntime lacks a
kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(1)
CASES = Cases(opsets=(18,))
case = CASES.add

pool_x = rand(2, 3, 9, 8)
bn = {"s": rand(3, lo=0.5), "b": rand(3), "m": rand(3), "v": rand(3, lo=0.5, hi=2)}
case("BatchNormalization", "BatchNormalization", {"x": pool_x}, dict(bn), attrs={"epsilon": 1e-3},
     opsets=(7, 9, 14, 15))
case("BatchNormalization-2d", "BatchNormalization", {"x": rand(4, 3)}, dict(bn), opsets=(17,))
case("InstanceNorm", "InstanceNormalization", {"x": rand(2, 3, 5, 4)}, {"s": rand(3), "b": rand(3)},
     opsets=(6, 22))
case("InstanceNorm-eps-3d", "InstanceNormalization", {"x": rand(2, 4, 7)}, {"s": rand(4), "b": rand(4)},
     attrs={"epsilon": 0.01})
case("InstanceNorm-5d", "InstanceNormalization", {"x": rand(1, 2, 3, 4, 2)}, {"s": rand(2), "b": rand(2)})
case("GroupNorm-18", "GroupNormalization", {"x": rand(2, 6, 3, 4)}, {"s": rand(3), "b": rand(3)},
     attrs={"num_groups": 3}, opsets=(18,), oracle="reference")
case("GroupNorm-21", "GroupNormalization", {"x": rand(2, 6, 3, 4)}, {"s": rand(6), "b": rand(6)},
     attrs={"num_groups": 2, "epsilon": 1e-3}, opsets=(21,))
case("GroupNorm-21-1group", "GroupNormalization", {"x": rand(3, 4, 5)}, {"s": rand(4), "b": rand(4)},
     attrs={"num_groups": 1}, opsets=(21,))
case("LpNorm", "LpNormalization", {"x": rand(3, 4, 5)}, opsets=(1, 22))
case("LpNorm-l1-axis0", "LpNormalization", {"x": rand(3, 4, 5)}, attrs={"p": 1, "axis": 0}, opsets=(1,))
case("LpNorm-axis1-zero", "LpNormalization", {"x": np.array([[0, 0, 0], [1, 2, 2]], np.float32)},
     attrs={"axis": 1}, opsets=(1,), oracle="reference")
# float16 (compared at rtol/atol 1e-3 below).
x16 = rand(3, 4, 5, lo=0.1, hi=1.5).astype(np.float16)
case("InstanceNorm-f16", "InstanceNormalization", {"x": x16}, {"s": rand(4).astype(np.float16),
                                                                 "b": rand(4).astype(np.float16)}, opsets=(6,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()

