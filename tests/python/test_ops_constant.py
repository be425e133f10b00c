"""Constant (kernels/ops/constant.cc) in every attribute form, numbers and strings, against
onnxruntime."""
import numpy as np
from onnx import TensorProto, helper

import mserve
from op_harness import check_outputs, make_model, ort_run


def test_constant_op_all_forms():
    for opset, attrs, expected in [
        (9, {"value": helper.make_tensor("v", 1, [2], [1.5, 2.5])}, np.array([1.5, 2.5], np.float32)),
        (12, {"value_float": 3.0}, np.array(3.0, np.float32)),
        (12, {"value_floats": [1.0, 2.0]}, np.array([1.0, 2.0], np.float32)),
        (13, {"value_int": 7}, np.array(7, np.int64)),
        (13, {"value_ints": [4, 5, 6]}, np.array([4, 5, 6], np.int64)),
    ]:
        nodes = [helper.make_node("Constant", [], ["c"], **attrs), helper.make_node("Add", ["x", "c"], ["y"])]
        model = make_model(nodes, [("x", expected.dtype, list(expected.shape))], [("y", 0, None)], opset=opset)
        x = np.ones(expected.shape, expected.dtype)
        np.testing.assert_array_equal(mserve.load(model).predict(x), ort_run(model, {"x": x})[0])


def test_string_constants_and_initializers():
    """Constant value_string(s) (opset 12+), a string tensor attribute and a string initializer."""
    for attrs, shape in [({"value_string": "hi"}, []), ({"value_strings": ["a", "bc", ""]}, [3]),
                         ({"value": helper.make_tensor("v", TensorProto.STRING, [2], [b"p", b"q"])}, [2])]:
        nodes = [helper.make_node("Constant", [], ["c"], **attrs), helper.make_node("StringConcat", ["x", "c"], ["y"])]
        x = np.array(["x"] * (shape[0] if shape else 1), dtype=object).reshape(shape)
        model = make_model(nodes, [("x", object, shape)], [("y", 0, None)], opset=20)
        check_outputs([mserve.load(model).predict(x)], ort_run(model, {"x": x}))
    init = {"w": np.array(["one", "two", "three"], dtype=object)}
    model = make_model([helper.make_node("Gather", ["w", "i"], ["y"])], [("i", np.int64, [2])], [("y", 0, None)],
                       init)
    i = np.array([2, 0], np.int64)
    check_outputs([mserve.load(model).predict(i)], ort_run(model, {"i": i}))
