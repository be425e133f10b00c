"""Softmax, LogSoftmax, Hardmax (kernels/ops/softmax.cc) on one-node models, against onnxruntime;
float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(1)
CASES = Cases(opsets=(18,))
case = CASES.add

case("Softmax-legacy", "Softmax", {"x": rand(2, 3, 4)}, opsets=(1, 11))
case("Softmax-legacy-axis2", "Softmax", {"x": rand(2, 3, 4)}, attrs={"axis": 2}, opsets=(11,))
case("Softmax-13", "Softmax", {"x": rand(2, 3, 4)}, opsets=(13,))
case("Softmax-13-axis1", "Softmax", {"x": rand(2, 3, 4)}, attrs={"axis": 1}, opsets=(13,))
for op in ["LogSoftmax", "Hardmax", "Softmax"]:
    xs = rand(2, 3, 4, lo=-4, hi=4)
    case(f"{op}-legacy", op, {"x": xs}, opsets=(1, 11))
    case(f"{op}-legacy-axis0", op, {"x": xs}, attrs={"axis": 0}, opsets=(11,))
    case(f"{op}-legacy-axis-neg", op, {"x": xs}, attrs={"axis": -1}, opsets=(11,))
    case(f"{op}-13", op, {"x": xs}, opsets=(13,))
    case(f"{op}-13-axis1", op, {"x": xs}, attrs={"axis": 1}, opsets=(13,))
    case(f"{op}-13-axis0", op, {"x": xs}, attrs={"axis": 0}, opsets=(13,))
    case(f"{op}-f64", op, {"x": rand(3, 7, dtype=np.float64)}, opsets=(13,),
         oracle="reference" if op == "Hardmax" else "onnxruntime")
case("LogSoftmax-large", "LogSoftmax", {"x": np.array([[0, 1, 2, 3], [10000, 10001, 10002, 10003]], np.float32)},
     opsets=(13,))
case("Hardmax-ties", "Hardmax", {"x": np.array([[1, 3, 3, 2], [2, 2, 2, 2]], np.float32)}, opsets=(13,))
# float16 (compared at rtol/atol 1e-3 below).
x16 = rand(3, 4, 5, lo=0.1, hi=1.5).astype(np.float16)
case("Softmax-f16", "Softmax", {"x": x16}, opsets=(13,))
case("LogSoftmax-f16", "LogSoftmax", {"x": x16}, opsets=(13,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()

