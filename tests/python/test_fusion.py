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


def bn_consts(c, prefix="bn"):
    return {f"{prefix}_s": RNG.uniform(0.5, 1.5, c).astype(np.float32), f"{prefix}_b": rand(c),
            f"{prefix}_m": rand(c), f"{prefix}_v": RNG.uniform(0.5, 1.5, c).astype(np.float32)}


def bn_node(x, y, prefix="bn", **attrs):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "sbmv"], [y], **attrs)


@pytest.mark.parametrize("bias,group,act", [(True, 1, None), (False, 1, "Relu"), (True, 4, "Relu"), (False, 8, None)])
def test_batchnorm_folds_into_conv(bias, group, act):
    consts = dict(bn_consts(8), w=rand(8, 8 // group, 3, 3))
    ins = ["x", "w"]
    if bias:
        consts["b"] = rand(8)
        ins.append("b")
    nodes = [helper.make_node("Conv", ins, ["c"], pads=[1, 1, 1, 1], group=group),
             bn_node("c", "n" if act else "y", epsilon=1e-3)]
    if act:
        nodes.append(helper.make_node(act, ["n"], ["y"]))
    m = make_model(nodes, [("x", np.float32, ["n", 8, 12, 12])], [("y", np.float32, None)], consts)
    fused = mserve.load(m.SerializeToString())
    assert fused._s.num_nodes == 1  # Conv + BN (+ Relu) is one Conv
    x = rand(3, 8, 12, 12)
    want = ort_run(m, {"x": x})[0]
    np.testing.assert_allclose(mserve.load(m.SerializeToString(), optimize=False).predict(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused.predict(x), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (6,), (1, 6), ()])
def test_batchnorm_folds_into_gemm(trans_b, c_shape):
    consts = dict(bn_consts(6), B=rand(6, 5) if trans_b else rand(5, 6))
    ins = ["x", "B"]
    if c_shape is not None:
        consts["C"] = rand(*c_shape) if c_shape else np.array(0.7, np.float32)
        ins.append("C")
    nodes = [helper.make_node("Gemm", ins, ["g"], transB=trans_b, alpha=0.5, beta=2.0), bn_node("g", "y")]
    m = make_model(nodes, [("x", np.float32, ["n", 5])], [("y", np.float32, None)], consts)
    fused = mserve.load(m.SerializeToString())
    assert fused._s.num_nodes == 1
    x = rand(4, 5)
    np.testing.assert_allclose(fused.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_batchnorm_stays_when_it_cannot_fold():
    # The Conv output is read twice, and a BN with runtime parameters: neither folds.
    consts = dict(bn_consts(4), w=rand(4, 3, 3, 3))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "n"), helper.make_node("Add", ["c", "n"], ["y"])]
    m = make_model(nodes, [("x", np.float32, [2, 3, 7, 7])], [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString())
    assert model._s.num_nodes == 3
    x = rand(2, 3, 7, 7)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)
    scale = {"bn_s": bn_consts(4)["bn_s"]}
    rest = {k: v for k, v in bn_consts(4).items() if k != "bn_s"}
    m = make_model([helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "y")],
                   [("x", np.float32, [2, 3, 7, 7]), ("bn_s", np.float32, [4])], [("y", np.float32, None)],
                   dict(rest, w=consts["w"]))
    model = mserve.load(m.SerializeToString())
    assert model._s.num_nodes == 2
    feeds = {"x": x, "bn_s": scale["bn_s"]}
    np.testing.assert_allclose(model.predict(feeds), ort_run(m, feeds)[0], rtol=1e-4, atol=1e-4)
