"""Range, ConstantOfShape, EyeLike, OneHot (kernels/ops/generate.cc) on one-node models, against
onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

from op_harness import Cases, build_model, i64, ints, ort_run, predict_outputs, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

# ---- Range, ConstantOfShape, EyeLike
for dt, (s, l, d) in [(np.float32, (1.0, 5.5, 0.5)), (np.float64, (-1.0, 3.0, 0.3)), (np.int32, (10, -3, -3)),
                      (np.int64, (0, 7, 2)), (np.int16, (3, 4, 5)), (np.float32, (5.0, 1.0, 1.0))]:
    name = f"Range-{np.dtype(dt).name}-{s}-{l}-{d}"
    case(name, "Range", {}, {"s": np.array(s, dt), "l": np.array(l, dt), "d": np.array(d, dt)}, opsets=(11,))
case("Range-runtime", "Range", {"s": np.array(2, np.int64), "l": np.array(11, np.int64), "d": np.array(3, np.int64)})
case("ConstantOfShape-default", "ConstantOfShape", {}, {"s": i64(2, 3)}, opsets=(9, 20))
case("ConstantOfShape-int", "ConstantOfShape", {}, {"s": i64(4)},
     attrs={"value": helper.make_tensor("v", 7, [1], [5])}, opsets=(9,))
case("ConstantOfShape-runtime", "ConstantOfShape", {"s": i64(3, 2, 1)},
     attrs={"value": helper.make_tensor("v", 1, [1], [0.25])})
case("ConstantOfShape-scalar", "ConstantOfShape", {"s": np.zeros(0, np.int64)},
     attrs={"value": helper.make_tensor("v", 11, [1], [2.5])})
case("ConstantOfShape-bool", "ConstantOfShape", {}, {"s": i64(2, 2)},
     attrs={"value": helper.make_tensor("v", 9, [1], [1])})
case("EyeLike", "EyeLike", {"x": rand(4, 5)}, opsets=(9, 22))
case("EyeLike-k", "EyeLike", {"x": rand(5, 3)}, attrs={"k": -2})
case("EyeLike-k-pos-dtype", "EyeLike", {"x": rand(3, 6)}, attrs={"k": 2, "dtype": 7})
case("EyeLike-int32", "EyeLike", {"x": rand(3, 3, dtype=np.int32)}, attrs={"dtype": 11})
# ------------------------------------------------------------------------------------ OneHot
case("OneHot-last", "OneHot", {"i": ints([[1, 5], [0, 2]])},
     {"d": np.array(6, np.int64), "v": np.array([0, 1], np.int64)},
     opsets=(9, 11))
case("OneHot-axis0-float", "OneHot", {"i": ints([1, 3, 0], np.int32)},
     {"d": np.array(4, np.float32), "v": np.array([-1.5, 2.5], np.float32)}, attrs={"axis": 0}, opsets=(11,))
case("OneHot-neg-indices", "OneHot", {"i": ints([[-1, 2, 7], [-4, 0, -9]])},
     {"d": np.array(4, np.int64), "v": np.array([0.0, 3.0], np.float32)}, attrs={"axis": 1}, opsets=(11,))
case("OneHot-neg-axis", "OneHot", {"i": rand(2, 3, dtype=np.int64, lo=0, hi=4)},
     {"d": np.array(5, np.int64),
      "v": np.array([0, 1], np.int32)}, attrs={"axis": -2}, opsets=(11,), oracle="reference")
case("OneHot-uint8-values", "OneHot", {"i": ints([[2, 0], [1, 3]], np.int32)},
     {"d": np.array(4, np.int32), "v": np.array([7, 9], np.uint8)}, attrs={"axis": 0}, opsets=(11,), oracle="reference")


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_onehot_before_opset11_treats_negative_indices_as_out_of_range():
    # The opset 9 spec selects only indices in [0, depth); opset 11 counts negative ones from the end.
    # (onnxruntime and onnx.reference wrap negative indices at every opset.)
    i = ints([-1, 1, 5])
    for opset, first_row in [(9, [0, 0, 0]), (11, [0, 0, 1])]:
        model, _ = build_model("OneHot", {"i": i}, {"d": np.array(3, np.int64), "v": np.array([0, 1], np.float32)},
                               {}, opset, 1)
        y = predict_outputs(model, {"i": i}, ["y"])[0]
        np.testing.assert_array_equal(y, np.array([first_row, [0, 1, 0], [0, 0, 0]], np.float32))


def test_onehot_runtime_depth():
    i = ints([0, 2, 1])
    model, _ = build_model("OneHot", {"i": i, "d": np.array(3, np.int64)}, {"v": np.array([0, 1], np.float32)}, {},
                           11, 1)
    for depth in (3, 5):
        feeds = {"i": i, "d": np.array(depth, np.int64)}
        np.testing.assert_array_equal(predict_outputs(model, feeds, ["y"])[0], ort_run(model, feeds)[0])
