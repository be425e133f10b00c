"""Fusion passes: the fused graph must compute what the unfused one does (mserve.load with
optimize=False runs the model as exported) and what onnxruntime computes."""
import numpy as np
import pytest
from onnx import helper

import mserve
from conftest import make_model, ort_run

RNG = np.random.default_rng(7)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


# (id, activation node(s) on "c" -> "y", extra initializers, opset)
ACTIVATIONS = [
    ("relu", [helper.make_node("Relu", ["c"], ["y"])], {}, 17),
    ("leaky", [helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.2)], {}, 17),
    ("clip6", [helper.make_node("Clip", ["c", "lo", "hi"], ["y"])], {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}, 17),
    ("clip-max-only", [helper.make_node("Clip", ["c", "", "hi"], ["y"])], {"hi": np.array(0.5, np.float32)}, 17),
    ("clip-attrs", [helper.make_node("Clip", ["c"], ["y"], min=-1.0, max=1.0)], {}, 6),
    ("hardswish", [helper.make_node("HardSwish", ["c"], ["y"])], {}, 17),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [4, 20])  # below and above the oneDNN threshold
@pytest.mark.parametrize("nodes,consts,opset", [pytest.param(*a[1:], id=a[0]) for a in ACTIVATIONS])
def test_conv_activation_fusion(nodes, consts, opset, size, threads):
    consts = dict(consts, w=rand(16, 8, 3, 3, scale=0.5), b=rand(16))
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])
    m = make_model([conv] + nodes, [("x", np.float32, ["n", 8, size, size])], [("y", np.float32, None)], consts,
                   opset=opset)
    fused = mserve.load(m.SerializeToString(), threads=threads)
    plain = mserve.load(m.SerializeToString(), threads=threads, optimize=False)
    assert fused._s.num_nodes == 1 and plain._s.num_nodes == 2
    x = rand(2, 8, size, size, scale=2.0)
    want = ort_run(m, {"x": x})[0]
    np.testing.assert_allclose(plain.predict(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused.predict(x), want, rtol=1e-4, atol=1e-4)


def test_no_fusion_when_the_conv_output_is_used_elsewhere():
    consts = {"w": rand(4, 3, 3, 3)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Add", ["c", "r"], ["y"])]
    m = make_model(nodes, [("x", np.float32, [1, 3, 9, 9])], [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString())
    assert model._s.num_nodes == 3
    x = rand(1, 3, 9, 9)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)
    # The Conv output is itself a graph output: it must stay un-activated.
    m = make_model(nodes[:2], [("x", np.float32, [1, 3, 9, 9])], [("c", np.float32, None), ("r", np.float32, None)],
                   consts)
    out = mserve.load(m.SerializeToString()).predict(x)
    want = ort_run(m, {"x": x})
    np.testing.assert_allclose(out["c"], want[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["r"], want[1], rtol=1e-4, atol=1e-4)


def test_clip_with_runtime_bounds_is_not_fused():
    m = make_model([helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Clip", ["c", "lo"], ["y"])],
                   [("x", np.float32, [1, 3, 9, 9]), ("lo", np.float32, [])], [("y", np.float32, None)],
                   {"w": rand(4, 3, 3, 3)})
    model = mserve.load(m.SerializeToString())
    assert model._s.num_nodes == 2
    x, lo = rand(1, 3, 9, 9), np.array(0.3, np.float32)
    np.testing.assert_allclose(model.predict({"x": x, "lo": lo}), ort_run(m, {"x": x, "lo": lo})[0], rtol=1e-4, atol=1e-4)
