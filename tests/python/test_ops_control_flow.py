"""If, Loop and Scan, with subgraphs reading values of enclosing graphs, against onnxruntime."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

import mserve
from op_harness import make_model, ort_run

vi = helper.make_tensor_value_info


def if_model():
    then_g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"])], "then", [], [vi("t", TP.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "w"], ["e"])], "else", [], [vi("e", TP.FLOAT, None)])
    nodes = [helper.make_node("Relu", ["x0"], ["x"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    return make_model(nodes, [("x0", np.float32, [3]), ("c", np.bool_, [])], [("y", np.float32, [3])],
                      {"w": np.array([1, 2, 3], np.float32)}, opset=13)


@pytest.mark.parametrize("cond", [True, False])
def test_if_reads_outer_values(cond):
    model = if_model()
    feeds = {"x0": np.array([-1, 5, 2], np.float32), "c": np.array(cond)}
    np.testing.assert_allclose(mserve.load(model).predict(feeds), ort_run(model, feeds)[0])


def loop_model():
    # acc_{i+1} = acc_i + w * i (w captured from the outer graph); scan output: acc at each step.
    # Inside, an If (a subgraph of the subgraph) reads `bias` from the outermost graph.
    inner_then = helper.make_graph([helper.make_node("Add", ["acc2", "bias"], ["b1"])], "t", [], [vi("b1", TP.FLOAT,
                                                                                                     None)])
    inner_else = helper.make_graph([helper.make_node("Identity", ["acc2"], ["b2"])], "e", [], [vi("b2", TP.FLOAT,
                                                                                                  None)])
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=TP.FLOAT),
         helper.make_node("Mul", ["w", "fi"], ["step"]),
         helper.make_node("Add", ["acc", "step"], ["acc2"]),
         helper.make_node("Cast", ["i"], ["late"], to=TP.BOOL),  # i >= 1
         helper.make_node("If", ["late"], ["acc_out"], then_branch=inner_then, else_branch=inner_else),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["acc_out"], ["scan"])],
        "body",
        [vi("i", TP.INT64, []), vi("cond_in", TP.BOOL, []), vi("acc", TP.FLOAT, [2])],
        [vi("cond_out", TP.BOOL, []), vi("acc_out", TP.FLOAT, [2]), vi("scan", TP.FLOAT, [2])])
    nodes = [helper.make_node("Loop", ["M", "", "acc0"], ["acc_final", "history"], body=body)]
    return make_model(nodes, [("M", np.int64, []), ("acc0", np.float32, [2])],
                      [("acc_final", np.float32, [2]), ("history", np.float32, None)],
                      {"w": np.array([1.0, -2.0], np.float32),
                       "bias": np.array([100.0, 0.5], np.float32)}, opset=13)


@pytest.mark.parametrize("trips", [0, 1, 5])
def test_loop_with_nested_if_and_captures(trips):
    model = loop_model()
    feeds = {"M": np.array(trips, np.int64), "acc0": np.array([0.5, 1.0], np.float32)}
    got = mserve.load(model).predict(feeds)
    want = ort_run(model, feeds)
    np.testing.assert_allclose(got["acc_final"], want[0])
    if trips:
        np.testing.assert_allclose(got["history"], want[1])


def test_loop_stops_on_condition():
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "i"], ["s2"]),
         helper.make_node("Sub", ["limit", "s2"], ["left"]),
         helper.make_node("Cast", ["left"], ["go"], to=TP.BOOL)],  # stop once s2 == limit
        "body", [vi("i", TP.INT64, []), vi("c", TP.BOOL, []), vi("s", TP.INT64, [])],
        [vi("go", TP.BOOL, []), vi("s2", TP.INT64, [])])
    model = make_model([helper.make_node("Loop", ["", "c0", "s0"], ["s_final"], body=body)],
                       [("c0", np.bool_, []), ("s0", np.int64, [])], [("s_final", np.int64, [])],
                       {"limit": np.array(21, np.int64)}, opset=13)
    feeds = {"c0": np.array(True), "s0": np.array(0, np.int64)}
    assert mserve.load(model).predict(feeds) == ort_run(model, feeds)[0] == 21


@pytest.mark.parametrize("direction", [0, 1])
def test_scan_cumulative_sum(direction):
    body = helper.make_graph([helper.make_node("Add", ["sum_in", "x"], ["sum_out"]),
                              helper.make_node("Mul", ["sum_out", "k"], ["y"])],
                             "body", [vi("sum_in", TP.FLOAT, [2]), vi("x", TP.FLOAT, [2])],
                             [vi("sum_out", TP.FLOAT, [2]), vi("y", TP.FLOAT, [2])])
    node = helper.make_node("Scan", ["init", "seq"], ["final", "ys"], body=body, num_scan_inputs=1,
                            scan_input_directions=[direction], scan_output_directions=[direction])
    model = make_model([node], [("init", np.float32, [2]), ("seq", np.float32, [4, 2])],
                       [("final", np.float32, [2]), ("ys", np.float32, [4, 2])],
                       {"k": np.array(0.5, np.float32)}, opset=16)
    feeds = {"init": np.zeros(2, np.float32), "seq": np.arange(8, dtype=np.float32).reshape(4, 2)}
    got = mserve.load(model).predict(feeds)
    want = ort_run(model, feeds)
    np.testing.assert_allclose(got["final"], want[0])
    np.testing.assert_allclose(got["ys"], want[1])


def test_unsupported_op_inside_a_body_is_reported_at_load():
    body = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], name="inner")], "b", [],
                             [vi("y", TP.FLOAT, None)])
    nodes = [helper.make_node("If", ["c"], ["out"], then_branch=body, else_branch=body)]
    model = make_model(nodes, [("c", np.bool_, []), ("x", np.float32, [1])], [("out", np.float32, None)], opset=13)
    with pytest.raises(mserve.UnsupportedOperator, match="Frobnicate.*inner"):
        mserve.load(model)
