"""RMSNormalization (kernels/ops/rms_norm.cc) on one-node models, against onnxruntime;
float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(0)
CASES = Cases(opsets=(23,), f16_tol={"rtol": 2e-3, "atol": 2e-3})
case = CASES.add

N = "RMSNormalization"
case("rms-default", N, [("x", rand(2, 3, 8)), ("w", rand(8))])
case("rms-axis1", N, [("x", rand(2, 3, 8)), ("w", rand(3, 8))], attrs={"axis": 1, "epsilon": 1e-3})
case("rms-axis0", N, [("x", rand(4, 5)), ("w", rand(4, 5))], attrs={"axis": 0})
case("rms-neg2-bcast", N, [("x", rand(2, 3, 4, 5)), ("w", rand(1, 5))], attrs={"axis": -2})
case("rms-f64", N, [("x", rand(3, 7, dtype=np.float64)), ("w", rand(7, dtype=np.float64))])


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()

