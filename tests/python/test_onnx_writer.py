"""mserve's own ONNX writer (what the examples use when the onnx package is absent) against onnx's
parser and checker, and the example models against the same graphs built with onnx.helper."""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from mserve import _onnx_writer as w
from mserve import examples


def test_writer_output_parses_as_the_model_onnx_helper_builds():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = w.model(
        [w.node("Gemm", ["x", "W"], ["y"], transB=1, alpha=0.5), w.node("Softmax", ["y"], ["p"], axis=-1),
         w.node("Transpose", ["p"], ["t"], perm=[1, 0]), w.node("Conv", ["t"], ["c"], auto_pad="SAME_UPPER")],
        "g", [w.value_info("x", w.FLOAT, ["batch", 3])], [w.value_info("t", w.FLOAT, [2, "batch"])],
        [w.tensor(x, "W"), w.tensor(np.array(-7, np.int64), "k")], 17, "test")
    got = onnx.load_from_string(data)
    want = helper.make_model(
        helper.make_graph(
            [helper.make_node("Gemm", ["x", "W"], ["y"], transB=1, alpha=0.5),
             helper.make_node("Softmax", ["y"], ["p"], axis=-1),
             helper.make_node("Transpose", ["p"], ["t"], perm=[1, 0]),
             helper.make_node("Conv", ["t"], ["c"], auto_pad="SAME_UPPER")],
            "g", [helper.make_tensor_value_info("x", 1, ["batch", 3])],
            [helper.make_tensor_value_info("t", 1, [2, "batch"])],
            [numpy_helper.from_array(x, "W"), numpy_helper.from_array(np.array(-7, np.int64), "k")]),
        opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    assert got.ir_version == 10 and got.producer_name == "test"
    assert [(o.domain, o.version) for o in got.opset_import] == [("", 17)]
    assert got.graph.input == want.graph.input and got.graph.output == want.graph.output
    for a, b in zip(got.graph.node, want.graph.node):
        assert (a.op_type, a.input, a.output) == (b.op_type, b.input, b.output)
        assert {x.name: helper.get_attribute_value(x) for x in a.attribute} == \
            {x.name: helper.get_attribute_value(x) for x in b.attribute}
    for a, b in zip(got.graph.initializer, want.graph.initializer):
        ta, tb = numpy_helper.to_array(a), numpy_helper.to_array(b)
        assert a.name == b.name and ta.dtype == tb.dtype and ta.shape == tb.shape and np.array_equal(ta, tb)


def test_examples_pass_the_onnx_checker():
    for make in (examples.linear_regression, examples.mlp, examples.cnn_nhwc, examples.half_plus_two):
        onnx.checker.check_model(make(), full_check=True)
