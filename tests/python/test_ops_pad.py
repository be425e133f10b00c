"""Pad and CenterCropPad (kernels/ops/pad.cc) on one-node models, against onnxruntime (onnx.reference where
onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, i64, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

# ---- Pad
x34 = rand(3, 4)
for mode in ["constant", "reflect", "edge"]:
    case(f"Pad-attr-{mode}", "Pad", {"x": x34}, attrs={"mode": mode, "pads": [1, 2, 2, 1]}, opsets=(2,))
    case(f"Pad-{mode}", "Pad", {"x": rand(2, 3, 4)}, {"p": i64(0, 1, 2, 1, 2, 1)}, attrs={"mode": mode},
         opsets=(11, 13, 18, 19))
    case(f"Pad-{mode}-crop", "Pad", {"x": rand(3, 5)}, {"p": i64(-1, 2, 1, -2)}, attrs={"mode": mode}, opsets=(13,))
case("Pad-attr-value", "Pad", {"x": x34}, attrs={"pads": [0, 1, 1, 0], "value": 1.5}, opsets=(2,))
case("Pad-value", "Pad", {"x": x34}, {"p": i64(1, 1, 1, 1), "v": np.array(-3.0, np.float32)}, opsets=(11, 18))
case("Pad-wrap", "Pad", {"x": x34}, {"p": i64(2, 3, 1, 2)}, attrs={"mode": "wrap"}, opsets=(19, 21))
case("Pad-axes", "Pad", {"x": rand(2, 3, 4)}, {"p": i64(1, 2), "v": np.array(0.5, np.float32), "a": i64(-1)},
     opsets=(18, 19))
case("Pad-axes-reflect", "Pad", {"x": rand(2, 3, 4)}, {"p": i64(1, 2, 1, 1), "a": i64(0, 2)},
     attrs={"mode": "reflect"}, names=["x", "p", "", "a"], opsets=(18,))
case("Pad-runtime", "Pad", {"x": x34, "p": i64(1, 0, 0, 2)}, opsets=(13,))
case("Pad-int64", "Pad", {"x": rand(3, 3, dtype=np.int64, lo=-9, hi=9)}, {"p": i64(1, 1, 0, 2),
                                                                         "v": np.array(7, np.int64)})
case("Pad-int32-edge", "Pad", {"x": rand(2, 3, dtype=np.int32, lo=-9, hi=9)}, {"p": i64(2, 2, 2, 2)},
     attrs={"mode": "edge"})
case("Pad-bool", "Pad", {"x": rand(2, 3, dtype=np.bool_)}, {"p": i64(1, 0, 0, 1)})
case("Pad-f64-reflect", "Pad", {"x": rand(1, 2, 5, 5, dtype=np.float64)}, {"p": i64(0, 0, 2, 3, 0, 0, 4, 1)},
     attrs={"mode": "reflect"})
case("Pad-1d", "Pad", {"x": rand(5)}, {"p": i64(3, 0)}, attrs={"mode": "reflect"})

# CenterCropPad (no onnxruntime kernel)
cc_x = rand(5, 8, 3)
case("CenterCropPad-crop", "CenterCropPad", {"x": cc_x}, {"s": np.array([3, 5, 3], np.int64)}, opsets=(18,),
     oracle="reference")
case("CenterCropPad-pad", "CenterCropPad", {"x": cc_x}, {"s": np.array([8, 11, 4], np.int64)}, opsets=(18,),
     oracle="reference")
case("CenterCropPad-mixed-axes", "CenterCropPad", {"x": cc_x}, {"s": np.array([6, 7], np.int64)},
     attrs={"axes": [0, -2]}, opsets=(18,), oracle="reference")
case("CenterCropPad-int-runtime-shape", "CenterCropPad",
     {"x": rand(4, 5, dtype=np.int32, lo=-9, hi=9), "s": np.array([7, 2], np.int64)}, opsets=(18,), oracle="reference")


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()
