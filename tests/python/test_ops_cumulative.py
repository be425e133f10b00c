"""CumSum and CumProd (kernels/ops/cumulative.cc) on one-node models, against onnxruntime (onnx.reference
where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

# ------------------------------------------------------------------------------------ CumSum
for ex in (0, 1):
    for rev in (0, 1):
        case(f"CumSum-ex{ex}-rev{rev}", "CumSum", {"x": rand(3, 4, 5)}, {"a": np.array(1, np.int32)},
             attrs={"exclusive": ex, "reverse": rev}, opsets=(11, 14))
case("CumSum-axis0", "CumSum", {"x": rand(5, 70)}, {"a": np.array(0, np.int64)})
case("CumSum-neg-axis", "CumSum", {"x": rand(2, 3, 4, dtype=np.float64)}, {"a": np.array(-1, np.int64)},
     attrs={"reverse": 1})
case("CumSum-int32", "CumSum", {"x": rand(4, 5, dtype=np.int32, lo=-9, hi=9)}, {"a": np.array(1, np.int64)},
     attrs={"exclusive": 1})
case("CumSum-int64-runtime-axis", "CumSum", {"x": rand(4, 5, dtype=np.int64, lo=-9, hi=9), "a": np.array(0, np.int64)})
case("CumSum-f16", "CumSum", {"x": rand(3, 5).astype(np.float16)}, {"a": np.array(1, np.int64)}, opsets=(14,),
     oracle="reference")

# ----------------------------------------------------------------------------------- CumProd
# onnxruntime lacks CumProd: onnx.reference
case("CumProd", "CumProd", {"x": rand(3, 4, lo=0.5, hi=1.5)}, {"axis": np.array(1, np.int64)}, opsets=(26,),
     oracle="reference")
case("CumProd-excl-rev", "CumProd", {"x": rand(3, 4, 2, lo=0.5, hi=1.5)}, {"axis": np.array(-2, np.int64)},
     attrs={"exclusive": 1, "reverse": 1}, opsets=(26,), oracle="reference")
case("CumProd-int", "CumProd", {"x": rand(5, dtype=np.int64, lo=-3, hi=3)}, {"axis": np.array(0, np.int32)},
     attrs={"exclusive": 1}, opsets=(26,), oracle="reference")


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()
