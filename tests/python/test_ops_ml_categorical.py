"""ai.onnx.ml LabelEncoder, CategoryMapper, OneHotEncoder (kernels/ops/ml_categorical.cc) on
one-node models, against onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32 rtol 1e-4,
atol 1e-5, other types exactly."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import mserve
from op_harness import Cases, build_model, strings

CASES = Cases()
case = CASES.add

# --- ai.onnx.ml: LabelEncoder (1, 2, 4), CategoryMapper, OneHotEncoder
LABELS = strings("cat", "dog", "bird", "cow", "dog", "fish", shape=(2, 3))
case("LabelEncoder-v1-str-int", "LabelEncoder", {"x": LABELS},
     attrs={"classes_strings": ["bird", "cat", "dog"], "default_int64": 99}, ml=1)
case("LabelEncoder-v1-int-str", "LabelEncoder", {"x": np.array([0, 2, 5, -1], np.int64)},
     attrs={"classes_strings": ["bird", "cat", "dog"], "default_string": "?"}, ml=1)
case("LabelEncoder-v2-str-float", "LabelEncoder", {"x": LABELS},
     attrs={"keys_strings": ["cat", "dog"], "values_floats": [0.5, -1.5]}, ml=2)
case("LabelEncoder-v2-int-str", "LabelEncoder", {"x": np.array([[3, 7], [9, 3]], np.int64)},
     attrs={"keys_int64s": [3, 9], "values_strings": ["three", "nine"], "default_string": "none"}, ml=2)
case("LabelEncoder-v2-float-int", "LabelEncoder", {"x": np.array([0.5, 1.5, -0.0, 2.5], np.float32)},
     attrs={"keys_floats": [0.5, 2.5, 0.0], "values_int64s": [1, 2, 3], "default_int64": -7}, ml=2)
# A NaN key matches NaN inputs (the spec says so for opsets 2 and 4; onnxruntime does it from 4).
case("LabelEncoder-v4-float-nan", "LabelEncoder", {"x": np.array([0.5, np.nan, 1.5], np.float32)},
     attrs={"keys_floats": [0.5, np.nan], "values_int64s": [1, 3], "default_int64": -7}, ml=4)
case("LabelEncoder-v2-str-str-default", "LabelEncoder", {"x": LABELS},
     attrs={"keys_strings": ["cat", "dog"], "values_strings": ["feline", "canine"]}, ml=2)
case("LabelEncoder-v4-str-int64", "LabelEncoder", {"x": LABELS},
     attrs={"keys_strings": ["cat", "dog"], "values_int64s": [1, 2], "default_int64": 0}, ml=4)
# "If a key is repeated, the last key takes precedence" (opset 4): onnxruntime keeps the first.
case("LabelEncoder-v4-repeated-key", "LabelEncoder", {"x": LABELS},
     attrs={"keys_strings": ["cat", "dog", "cat"], "values_int64s": [1, 2, 3], "default_int64": 0}, ml=4,
     oracle="reference")
case("LabelEncoder-v4-tensors", "LabelEncoder", {"x": np.array([1, 2, 3, 4], np.int64)},
     attrs={"keys_tensor": helper.make_tensor("k", TensorProto.INT64, [3], [1, 2, 4]),
            "values_tensor": helper.make_tensor("v", TensorProto.STRING, [3], [b"one", b"two", b"four"]),
            "default_tensor": helper.make_tensor("d", TensorProto.STRING, [1], [b"other"])}, ml=4)
case("LabelEncoder-v4-double", "LabelEncoder", {"x": np.array([1.25, 2.0, -1.0], np.float64)},
     attrs={"keys_tensor": helper.make_tensor("k", TensorProto.DOUBLE, [2], [1.25, -1.0]),
            "values_tensor": helper.make_tensor("v", TensorProto.DOUBLE, [2], [10.0, 20.0]),
            "default_tensor": helper.make_tensor("d", TensorProto.DOUBLE, [1], [-5.0])}, ml=4)
case("CategoryMapper-str-int", "CategoryMapper", {"x": LABELS},
     attrs={"cats_strings": ["cat", "dog", "cow"], "cats_int64s": [10, 20, 30], "default_int64": -9}, ml=1)
case("CategoryMapper-int-str", "CategoryMapper", {"x": np.array([[30, 10, 5]], np.int64)},
     attrs={"cats_strings": ["cat", "dog", "cow"], "cats_int64s": [10, 20, 30], "default_string": "unk"}, ml=1)
case("OneHotEncoder-strings", "OneHotEncoder", {"x": LABELS}, attrs={"cats_strings": ["dog", "cat", "cow"]}, ml=1)
case("OneHotEncoder-int64", "OneHotEncoder", {"x": np.array([[1, 5, 3]], np.int64)},
     attrs={"cats_int64s": [3, 1, 2, 5]}, ml=1)
case("OneHotEncoder-float", "OneHotEncoder", {"x": np.array([1.0, 2.7, 5.0], np.float32)},
     attrs={"cats_int64s": [1, 2, 5]}, ml=1)
case("OneHotEncoder-int32-1d", "OneHotEncoder", {"x": np.array([4, 2, 4], np.int32)},
     attrs={"cats_int64s": [2, 4]}, ml=1, oracle="reference")  # no int32 kernel in onnxruntime


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_one_hot_encoder_zeros_0_rejects_unknown():
    x = np.array([1, 9], np.int64)
    model, _ = build_model("OneHotEncoder", {"x": x}, attrs={"cats_int64s": [1, 2], "zeros": 0}, ml=1)
    m = mserve.load(model)
    np.testing.assert_array_equal(m.predict(np.array([2, 1], np.int64)), [[0, 1], [1, 0]])
    with pytest.raises(mserve.InvalidArgument, match="categories"):
        m.predict(x)
