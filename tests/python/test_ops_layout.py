"""DepthToSpace, SpaceToDepth and ReverseSequence (kernels/ops/layout.cc) on one-node models, against
onnxruntime."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

# ------------------------------------------------------------------------ Depth/SpaceToDepth
case("DepthToSpace", "DepthToSpace", {"x": rand(2, 8, 3, 2)}, attrs={"blocksize": 2}, opsets=(1, 11, 13))
case("DepthToSpace-CRD", "DepthToSpace", {"x": rand(1, 18, 2, 3)}, attrs={"blocksize": 3, "mode": "CRD"},
     opsets=(11, 13))
case("DepthToSpace-DCR-int", "DepthToSpace", {"x": rand(1, 12, 2, 2, dtype=np.int64, lo=0, hi=99)},
     attrs={"blocksize": 2, "mode": "DCR"}, opsets=(13,), oracle="reference")
case("SpaceToDepth", "SpaceToDepth", {"x": rand(2, 3, 4, 6)}, attrs={"blocksize": 2}, opsets=(1, 13))
case("SpaceToDepth-int8", "SpaceToDepth", {"x": rand(1, 2, 6, 3, dtype=np.int8, lo=-9, hi=9)}, attrs={"blocksize": 3})
for mode in ["DCR", "CRD"]:
    case(f"SpaceToDepth-{mode}-op28", "SpaceToDepth", {"x": rand(2, 3, 4, 6)}, attrs={"blocksize": 2, "mode": mode},
         opsets=(28,), oracle="reference")
    case(f"DepthToSpace-{mode}-op28", "DepthToSpace", {"x": rand(2, 12, 2, 3)}, attrs={"blocksize": 2, "mode": mode},
         opsets=(28,), oracle="reference")

# ---------------------------------------------------------------------------- ReverseSequence
case("ReverseSequence-time", "ReverseSequence", {"x": rand(5, 3, 2), "lens": np.array([5, 1, 3], np.int64)},
     attrs={"batch_axis": 1, "time_axis": 0}, opsets=(10, 21))
case("ReverseSequence-batch", "ReverseSequence", {"x": rand(4, 6), "lens": np.array([0, 6, 2, 1], np.int64)},
     attrs={"batch_axis": 0, "time_axis": 1})
case("ReverseSequence-int", "ReverseSequence",
     {"x": rand(3, 4, 2, 2, dtype=np.int64, lo=-9, hi=9), "lens": np.array([2, 4, 3], np.int64)},
     attrs={"batch_axis": 0, "time_axis": 1})


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_reverse_sequence_errors_are_invalid_argument():
    x = rand(3, 4)
    node = helper.make_node("ReverseSequence", ["x", "l"], ["y"], batch_axis=0, time_axis=1)
    m = mserve.load(make_model([node], [("x", np.float32, [3, 4]), ("l", np.int64, [3])], [("y", np.float32, None)],
                               opset=17).SerializeToString())
    with pytest.raises(mserve.Error, match="sequence_lens"):
        m.predict({"x": x, "l": np.array([1, 5, 2], np.int64)})
    with pytest.raises(mserve.Error, match="batch_axis"):
        mserve.load(make_model([helper.make_node("ReverseSequence", ["x", "l"], ["y"], batch_axis=2)],
                               [("x", np.float32, [3, 4, 2]), ("l", np.int64, [3])], [("y", np.float32, None)],
                               opset=17).SerializeToString())
