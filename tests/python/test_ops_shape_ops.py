"""Flatten, Reshape, Transpose, Identity, Shape, Size, Squeeze, Unsqueeze, Dropout (kernels/ops/shape_ops.cc)
on one-node models, numbers and strings, against onnxruntime and numpy; float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, one_node, random_inputs

rand = random_inputs(0)
CASES = Cases()
case = CASES.add

case("Flatten", "Flatten", {"x": rand(2, 3, 4, 5)}, opsets=(1, 9, 11, 13, 21))
case("Flatten-axis", "Flatten", {"x": rand(2, 3, 4, 5)}, attrs={"axis": 2})
case("Flatten-axis0", "Flatten", {"x": rand(2, 3, 4)}, attrs={"axis": 0})
case("Flatten-neg", "Flatten", {"x": rand(2, 3, 4, 5)}, attrs={"axis": -1}, opsets=(11,))
case("Reshape", "Reshape", {"x": rand(2, 3, 4)}, {"shape": np.array([4, -1], np.int64)}, opsets=(5, 13, 14, 19, 21))
case("Reshape-zero", "Reshape", {"x": rand(2, 3, 4)}, {"shape": np.array([0, 0, 2, 2], np.int64)})
case("Reshape-runtime-shape", "Reshape", {"x": rand(2, 3, 4), "shape": np.array([3, 8], np.int64)})
case("Transpose", "Transpose", {"x": rand(2, 3, 4)}, opsets=(1, 13, 21))
case("Transpose-perm", "Transpose", {"x": rand(2, 3, 4, 5)}, attrs={"perm": [0, 3, 1, 2]})
case("Transpose-int", "Transpose", {"x": rand(3, 5, dtype=np.int64, lo=0, hi=100)}, attrs={"perm": [1, 0]})
case("Identity", "Identity", {"x": rand(3, 4)}, opsets=(1, 13, 14, 16, 19, 21))
case("Identity-bool", "Identity", {"x": rand(3, dtype=np.int64, lo=0, hi=1).astype(bool)})
case("Shape", "Shape", {"x": rand(2, 3, 4)}, opsets=(1, 13, 15))
case("Shape-slice", "Shape", {"x": rand(2, 3, 4, 5)}, attrs={"start": 1, "end": -1}, opsets=(15, 21))
case("Unsqueeze-attr", "Unsqueeze", {"x": rand(3, 4)}, attrs={"axes": [0, 3]}, opsets=(1, 11))
case("Unsqueeze-input", "Unsqueeze", {"x": rand(3, 4)}, {"axes": np.array([-1, 0], np.int64)}, opsets=(13, 21))
case("Squeeze-attr", "Squeeze", {"x": rand(1, 3, 1, 4)}, attrs={"axes": [0, 2]}, opsets=(1, 11))
case("Squeeze-all", "Squeeze", {"x": rand(1, 3, 1, 4)}, opsets=(11, 13))
case("Squeeze-input", "Squeeze", {"x": rand(1, 3, 1, 4)}, {"axes": np.array([-2], np.int64)}, opsets=(13, 21))
case("Size", "Size", {"x": rand(3, 4, 5)}, opsets=(1, 13, 19, 21))
case("Size-scalar", "Size", {"x": np.array(1.0, np.float32)})
case("Size-empty", "Size", {"x": rand(3, 0, dtype=np.int32)})
case("Dropout-7", "Dropout", {"x": rand(3, 4)}, attrs={"ratio": 0.3}, opsets=(7,))
case("Dropout-mask", "Dropout", {"x": rand(3, 4)}, outputs=2, opsets=(12, 13))
# onnxruntime's opset 10/11 kernel returns an all-false mask; the spec and onnx.reference say all true.
case("Dropout-mask-10", "Dropout", {"x": rand(3, 4)}, outputs=2, opsets=(10,), oracle="reference")
case("Dropout-ratio", "Dropout", {"x": rand(3, 4)}, {"r": np.array(0.4, np.float32)}, outputs=2, opsets=(12, 13))
case("Dropout-training-off", "Dropout", {"x": rand(5)}, {"r": np.array(0.4, np.float32), "t": np.array(False)},
     outputs=2, opsets=(13,))
case("Dropout-training-zero-ratio", "Dropout", {"x": rand(5)}, {"r": np.array(0.0, np.float32), "t": np.array(True)},
     outputs=2, opsets=(13,), oracle="reference")
case("Dropout-f64", "Dropout", {"x": rand(2, 3, dtype=np.float64)}, opsets=(13,))
# --- shape and copy operators on strings
GRID = np.array([f"s{i}" for i in range(24)], dtype=object).reshape(2, 3, 4)
case("Identity-strings", "Identity", {"x": GRID})
case("Reshape-strings", "Reshape", {"x": GRID}, {"s": np.array([4, -1], np.int64)}, opsets=(13, 14))
case("Flatten-strings", "Flatten", {"x": GRID}, attrs={"axis": 2}, opsets=(13,))
case("Squeeze-strings", "Squeeze", {"x": GRID.reshape(2, 1, 12)}, {"a": np.array([1], np.int64)}, opsets=(13,))
case("Unsqueeze-strings", "Unsqueeze", {"x": GRID}, {"a": np.array([0, 4], np.int64)}, opsets=(13,))
case("Unsqueeze-strings-attr", "Unsqueeze", {"x": GRID}, attrs={"axes": [1]}, opsets=(11,))
case("Transpose-strings", "Transpose", {"x": GRID}, attrs={"perm": [2, 0, 1]})
case("Transpose-strings-default", "Transpose", {"x": GRID})


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
@pytest.mark.parametrize("shape,perm", [
    ((3, 70, 45), (0, 2, 1)), ((2, 3, 33, 40), (0, 2, 3, 1)), ((2, 33, 40, 3), (0, 3, 1, 2)),
    ((65, 70), (1, 0)), ((5, 1000), (1, 0)), ((1000, 5), (1, 0)), ((2, 4, 3, 5), (2, 0, 3, 1)),
    ((1, 16, 1, 40), (0, 3, 1, 2)), ((4, 5, 6), (1, 0, 2)),
])
def test_transpose_matches_numpy(shape, perm, dtype):
    m = make_model([helper.make_node("Transpose", ["x"], ["y"], perm=list(perm))], [("x", dtype, list(shape))],
                   [("y", dtype, None)])
    x = rand(*shape, dtype=dtype, lo=0, hi=100)
    for threads in (1, 2):
        np.testing.assert_array_equal(mserve.load(m.SerializeToString(), threads=threads).predict(x), x.transpose(perm))


def test_dropout_training_with_ratio_is_unsupported():
    model = one_node("Dropout", {"x": rand(4)}, {"r": np.array(0.5, np.float32), "t": np.array(True)}, opset=13,
                     out_type=1)[0]
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict({"x": rand(4)})
