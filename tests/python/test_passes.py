"""Graph clean-up: Identity/Dropout removal, dead nodes, constant folding; optimize=False keeps all."""
import numpy as np
from onnx import helper

import mserve
from op_harness import make_model, ort_run


def exported_like_model():
    # x -> Identity -> Relu -> Dropout -> (Shape->Gather->Unsqueeze->Concat->Reshape) -> y,
    # plus a dead branch and a constant subgraph feeding an Add.
    nodes = [
        helper.make_node("Identity", ["x"], ["xi"]),
        helper.make_node("Relu", ["xi"], ["r"]),
        helper.make_node("Dropout", ["r"], ["d"]),
        helper.make_node("Shape", ["d"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero_axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["d", "shape"], ["flat"]),
        helper.make_node("Mul", ["two", "two"], ["four"]),
        helper.make_node("Add", ["flat", "four"], ["y"]),
        helper.make_node("Tanh", ["x"], ["unused"]),
    ]
    inits = {"zero": np.array(0, np.int64), "zero_axes": np.array([0], np.int64),
             "minus_one": np.array([-1], np.int64), "two": np.array(2, np.float32)}
    return make_model(nodes, [("x", np.float32, ["batch", 3, 4])], [("y", np.float32, ["batch", 12])], inits, opset=13)


def test_clean_up_removes_nodes_and_keeps_results():
    model = exported_like_model()
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    (want,) = ort_run(model, {"x": x})
    m = mserve.load(model)
    np.testing.assert_allclose(m.predict(x), want, rtol=1e-6)
    # Identity, Dropout, the dead Tanh and the constant Mul are gone at load; the shape chain
    # (Shape, Gather, Unsqueeze, Concat) stays in the program and folds in each plan.
    assert m._s.num_nodes == 7


def test_optimize_false_keeps_every_node():
    model = exported_like_model()
    model.graph.node.remove(model.graph.node[2])  # no Dropout kernel needed
    model.graph.node[2].input[0] = "r"
    model.graph.node[6].input[0] = "r"
    x = np.ones((2, 3, 4), np.float32)
    m = mserve.load(model, optimize=False)
    assert m._s.num_nodes == 10
    np.testing.assert_allclose(m.predict(x), ort_run(model, {"x": x})[0])


def test_identity_feeding_graph_output_keeps_its_name():
    model = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])],
                       [("x", np.float32, [2])], [("y", np.float32, [2])])
    m = mserve.load(model)
    assert m.outputs[0].name == "y"
    np.testing.assert_array_equal(m.predict(np.array([-1, 1], np.float32)), [0, 1])
