"""Fusion passes: the fused graph must compute what the unfused one does (mserve.load with
optimize=False runs the model as exported) and what onnxruntime computes."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import make_model, ort_run

RNG = np.random.default_rng(7)


def ops(model):
    """The model's op types after the graph passes, without the layout Transposes."""
    return sorted(op for op in model._s.node_ops if op != "Transpose")


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


# (id, activation node(s) on "c" -> "y", extra initializers, opset)
ACTIVATIONS = [
    ("relu", [helper.make_node("Relu", ["c"], ["y"])], {}, 17),
    ("leaky", [helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.2)], {}, 17),
    ("clip6", [helper.make_node("Clip", ["c", "lo", "hi"], ["y"])],
     {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}, 17),
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
    assert ops(fused) == ["NhwcConv"] and plain._s.num_nodes == 2
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
    assert ops(model) == ["Add", "NhwcConv", "Relu"]
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
    assert ops(model) == ["Clip", "NhwcConv"]
    x, lo = rand(1, 3, 9, 9), np.array(0.3, np.float32)
    np.testing.assert_allclose(model.predict({"x": x, "lo": lo}), ort_run(m, {"x": x, "lo": lo})[0], rtol=1e-4,
                               atol=1e-4)


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
    assert ops(fused) == ["NhwcConv"]  # Conv + BN (+ Relu) is one conv
    x = rand(3, 8, 12, 12)
    want = ort_run(m, {"x": x})[0]
    np.testing.assert_allclose(mserve.load(m.SerializeToString(), optimize=False).predict(x), want, rtol=1e-4,
                               atol=1e-4)
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
    assert ops(model) == ["Add", "BatchNormalization", "NhwcConv"]
    x = rand(2, 3, 7, 7)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)
    scale = {"bn_s": bn_consts(4)["bn_s"]}
    rest = {k: v for k, v in bn_consts(4).items() if k != "bn_s"}
    m = make_model([helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "y")],
                   [("x", np.float32, [2, 3, 7, 7]), ("bn_s", np.float32, [4])], [("y", np.float32, None)],
                   dict(rest, w=consts["w"]))
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["BatchNormalization", "NhwcConv"]
    feeds = {"x": x, "bn_s": scale["bn_s"]}
    np.testing.assert_allclose(model.predict(feeds), ort_run(m, feeds)[0], rtol=1e-4, atol=1e-4)


def conv(x, y, cin, cout, consts, k=3, **attrs):
    consts[y + "_w"] = rand(cout, cin // attrs.get("group", 1), k, k, scale=0.3)
    consts[y + "_b"] = rand(cout, scale=0.1)
    return helper.make_node("Conv", [x, y + "_w", y + "_b"], [y], pads=[k // 2] * 4, **attrs)


def check_layout_pass(nodes, consts, x_shape, outputs=("y",), max_transposes=None):
    m = make_model(nodes, [("x", np.float32, ["n"] + list(x_shape[1:]))], [(o, np.float32, None) for o in outputs],
                   consts)
    fast, plain = mserve.load(m.SerializeToString()), mserve.load(m.SerializeToString(), optimize=False)
    assert "Conv" not in fast._s.node_ops  # every conv runs channels-last
    if max_transposes is not None:
        assert fast._s.node_ops.count("Transpose") <= max_transposes, fast._s.node_ops
    for n in (1, 3):
        x = rand(n, *x_shape[1:])
        want = ort_run(m, {"x": x})
        got = fast.predict(x)
        got = [got] if len(outputs) == 1 else [got[o] for o in outputs]
        ref = plain.predict(x)
        ref = [ref] if len(outputs) == 1 else [ref[o] for o in outputs]
        for g, r, w in zip(got, ref, want):
            np.testing.assert_allclose(r, w, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_layout_pass_residual_block():
    c = {}
    nodes = [conv("x", "c1", 8, 16, c, strides=[2, 2]), helper.make_node("Relu", ["c1"], ["r1"]),
             conv("r1", "c2", 16, 16, c), helper.make_node("Relu", ["c2"], ["r2"]),
             conv("r2", "c3", 16, 16, c), helper.make_node("Add", ["c3", "r1"], ["s"]),
             helper.make_node("Relu", ["s"], ["r3"]), conv("r3", "c4", 16, 16, c, group=16),
             helper.make_node("GlobalAveragePool", ["c4"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    # One layout change in, one before the pooling.
    check_layout_pass(nodes, c, (1, 8, 14, 14), max_transposes=2)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("after", [None, "Relu", "Clip"])
@pytest.mark.parametrize("shortcut", ["identity", "conv", "bias"])
def test_residual_add_and_activation_fuse_into_the_conv(shortcut, after, threads):
    # ResNet's join: conv(conv(x)) + shortcut, then the activation, as one NhwcConv.
    c = {"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32), "cb": np.array([0.25], np.float32)}
    nodes = [conv("x", "stem", 3, 16, c), helper.make_node("Relu", ["stem"], ["b"]),  # the block input
             conv("b", "c1", 16, 16, c), helper.make_node("Relu", ["c1"], ["r1"]), conv("r1", "c2", 16, 16, c)]
    if shortcut == "identity":
        other = "b"
    elif shortcut == "conv":  # the downsampling branch
        nodes.append(conv("b", "sc", 16, 16, c, k=1))
        other = "sc"
    else:  # a constant that broadcasts over the output (the layout pass moves scalars only)
        other = "cb"
    nodes.append(helper.make_node("Add", ["c2", other], ["s" if after else "j"]))
    if after == "Relu":
        nodes.append(helper.make_node("Relu", ["s"], ["j"]))
    elif after == "Clip":
        nodes.append(helper.make_node("Clip", ["s", "lo", "hi"], ["j"]))
    nodes.append(conv("j", "y", 16, 8, c))  # the next block's conv reads the join channels-last
    m = make_model(nodes, [("x", np.float32, ["n", 3, 12, 12])], [("y", np.float32, None)], c)
    fused = mserve.load(m.SerializeToString(), threads=threads)
    assert ops(fused) == ["NhwcConv"] * (5 if shortcut == "conv" else 4)
    plain = mserve.load(m.SerializeToString(), threads=threads, optimize=False)
    for n in (1, 3):
        x = rand(n, 3, 12, 12)
        want = ort_run(m, {"x": x})[0]
        np.testing.assert_allclose(plain.predict(x), want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(fused.predict(x), want, rtol=1e-4, atol=1e-4)


def test_residual_add_stays_when_the_conv_output_is_read_twice():
    c = {}
    nodes = [conv("x", "c1", 8, 8, c), helper.make_node("Add", ["c1", "x"], ["s"]),
             helper.make_node("Mul", ["s", "c1"], ["y"])]
    m = make_model(nodes, [("x", np.float32, ["n", 8, 6, 6])], [("y", np.float32, None)], c)
    fused = mserve.load(m.SerializeToString())
    assert ops(fused) == ["Add", "Mul", "NhwcConv"]
    x = rand(2, 8, 6, 6)
    np.testing.assert_allclose(fused.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_layout_pass_squeeze_excitation_and_scalars():
    c = {"three": np.array(3.0, np.float32), "six": np.array(6.0, np.float32)}
    nodes = [conv("x", "c1", 4, 16, c), helper.make_node("HardSwish", ["c1"], ["h"]),
             helper.make_node("GlobalAveragePool", ["h"], ["p"]), conv("p", "s1", 16, 4, c, k=1),
             helper.make_node("Relu", ["s1"], ["s1r"]), conv("s1r", "s2", 4, 16, c, k=1),
             helper.make_node("HardSigmoid", ["s2"], ["gate"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["h", "gate"], ["se"]), helper.make_node("Add", ["se", "three"], ["a"]),
             helper.make_node("Div", ["a", "six"], ["d"]), conv("d", "y", 16, 8, c, k=1)]
    check_layout_pass(nodes, c, (1, 4, 10, 10))


def test_layout_pass_keeps_nchw_where_ops_need_it():
    # A per-channel NCHW bias ([C, 1, 1]) must not be added to channels-last data, a conv output
    # that is a graph output keeps NCHW, and Reshape/Transpose users see NCHW.
    c = {"bias": rand(16, 1, 1), "shape": np.array([0, -1], np.int64)}
    nodes = [conv("x", "c1", 3, 16, c), helper.make_node("Add", ["c1", "bias"], ["b"]),
             conv("b", "c2", 16, 16, c), helper.make_node("Relu", ["c2"], ["mid"]),
             conv("mid", "c3", 16, 4, c), helper.make_node("Reshape", ["c3", "shape"], ["y"])]
    check_layout_pass(nodes, c, (1, 3, 9, 9), outputs=("y", "mid"))


def test_clip_bounds_from_constant_nodes_fuse():
    # PyTorch exports ReLU6 as Clip(x, Constant, Constant).
    lo = helper.make_node("Constant", [], ["lo"], value=helper.make_tensor("lo", 1, [], [0.0]))
    hi = helper.make_node("Constant", [], ["hi"], value_float=6.0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), lo, hi,
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    m = make_model(nodes, [("x", np.float32, [2, 8, 12, 12])], [("y", np.float32, None)], {"w": rand(16, 8, 3, 3)})
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["NhwcConv"]
    x = rand(2, 8, 12, 12, scale=3.0)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op,attrs,opset", [
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, 12),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, 12),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1, "dilations": [2, 1]}, 12),
    ("MaxPool", {"kernel_shape": [3, 2], "strides": [1, 2]}, 8),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, 19),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [0, 1, 1, 0], "count_include_pad": 1, "strides": [2, 2]}, 19),
    ("AveragePool", {"kernel_shape": [2, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2], "ceil_mode": 1}, 19),
])
def test_layout_pass_pools_run_channels_last(op, attrs, opset):
    c = {}
    nodes = [conv("x", "c1", 4, 16, c), helper.make_node("Relu", ["c1"], ["r"]),
             helper.make_node(op, ["r"], ["p"], **attrs), conv("p", "y", 16, 8, c)]
    m = make_model(nodes, [("x", np.float32, ["n", 4, 11, 13])], [("y", np.float32, None)], c, opset=opset)
    fast, plain = mserve.load(m.SerializeToString()), mserve.load(m.SerializeToString(), optimize=False)
    assert "Nhwc" + op in fast._s.node_ops and fast._s.node_ops.count("Transpose") == 2
    for n in (1, 2):
        x = rand(n, 4, 11, 13)
        want = ort_run(m, {"x": x})[0]
        np.testing.assert_allclose(plain.predict(x), want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(fast.predict(x), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bias_shape,bias_first", [((24,), False), ((24,), True), ((1, 1, 24), False)])
@pytest.mark.parametrize("rows", [3, 600])  # Eigen and oneDNN products
def test_matmul_bias_fusion(bias_shape, bias_first, rows, threads):
    consts = {"B": rand(40, 24), "bias": rand(*bias_shape)}
    add = helper.make_node("Add", ["bias", "mm"] if bias_first else ["mm", "bias"], ["y"])
    m = make_model([helper.make_node("MatMul", ["x", "B"], ["mm"]), add], [("x", np.float32, ["b", "s", 40])],
                   [("y", np.float32, None)], consts)
    fused = mserve.load(m.SerializeToString(), threads=threads)
    assert ops(fused) == ["FusedMatMul"]
    x = rand(2, rows, 40)
    want = ort_run(m, {"x": x})[0]
    np.testing.assert_allclose(mserve.load(m.SerializeToString(), optimize=False).predict(x), want, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(fused.predict(x), want, rtol=1e-4, atol=1e-4)


def test_matmul_bias_not_fused_when_it_would_change_the_result():
    x = rand(2, 5, 40)
    cases = [
        # The product is read twice.
        ([helper.make_node("MatMul", ["x", "B"], ["mm"]), helper.make_node("Add", ["mm", "bias"], ["a"]),
          helper.make_node("Mul", ["mm", "a"], ["y"])], {"bias": rand(24)}, ["Add", "MatMul", "Mul"]),
        # A bias per row and column ([S, N]) is not a bias vector.
        ([helper.make_node("MatMul", ["x", "B"], ["mm"]), helper.make_node("Add", ["mm", "bias"], ["y"])],
         {"bias": rand(5, 24)}, ["Add", "MatMul"]),
    ]
    for nodes, extra, want_ops in cases:
        m = make_model(nodes, [("x", np.float32, [2, 5, 40])], [("y", np.float32, None)], dict(extra, B=rand(40, 24)))
        model = mserve.load(m.SerializeToString())
        assert ops(model) == want_ops
        np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)


def gelu_nodes(div=True, swap=False, one=1.0, x2="x"):
    c = {"sqrt2": np.array(np.sqrt(2), np.float32), "inv": np.array(1 / np.sqrt(2), np.float32),
         "one": np.array(one, np.float32), "half": np.array(0.5, np.float32)}
    scale = helper.make_node("Div", ["x", "sqrt2"], ["d"]) if div else helper.make_node("Mul", ["inv", "x"], ["d"])
    nodes = [scale, helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["one", "e"] if swap else ["e", "one"], ["a"]),
             helper.make_node("Mul", ["a", x2] if swap else [x2, "a"], ["m"]),
             helper.make_node("Mul", ["half", "m"] if swap else ["m", "half"], ["y"])]
    return nodes, c


@pytest.mark.parametrize("div,swap", [(True, False), (False, True), (True, True)])
def test_erf_gelu_pattern_becomes_gelu(div, swap):
    nodes, c = gelu_nodes(div, swap)
    m = make_model(nodes, [("x", np.float32, ["n", 64])], [("y", np.float32, None)], c)
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["Gelu"]
    x = rand(8, 64, scale=3.0)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_gelu_lookalikes_are_left_alone():
    for nodes, c, extra in [(*gelu_nodes(one=2.0), []),  # 1 + erf is 2 + erf here
                            (*gelu_nodes(x2="x2"), [("x2", np.float32, ["n", 64])])]:  # another x
        m = make_model(nodes, [("x", np.float32, ["n", 64])] + extra, [("y", np.float32, None)], c)
        model = mserve.load(m.SerializeToString())
        assert "Gelu" not in model._s.node_ops
        feeds = {"x": rand(4, 64)}
        if extra:
            feeds["x2"] = rand(4, 64)
        np.testing.assert_allclose(model.predict(feeds), ort_run(m, feeds)[0], rtol=1e-5, atol=1e-6)


# tf2onnx's BatchNorm after a depthwise conv (Mul, Add of [C, 1, 1] constants) and Keras'
# ZeroPadding2D (a Pad before a strided conv): both fold into the conv.
@pytest.mark.parametrize("mul_shape,add_shape,bias", [((8, 1, 1), (8, 1, 1), True), ((1, 8, 1, 1), (), False),
                                                      ((), (8, 1, 1), True)])
def test_per_channel_mul_add_fold_into_conv(mul_shape, add_shape, bias):
    consts = {"w": rand(8, 1, 3, 3), "m": rand(*mul_shape), "a": rand(*add_shape)}
    ins = ["x", "w"] + (["b"] if bias else [])
    if bias:
        consts["b"] = rand(8)
    nodes = [helper.make_node("Conv", ins, ["c"], group=8, pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["m", "c"], ["p"]), helper.make_node("Add", ["p", "a"], ["y"])]
    m = make_model(nodes, [("x", np.float32, ["n", 8, 10, 10])], [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["NhwcConv"]
    x = rand(2, 8, 10, 10)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_mul_by_a_spatial_constant_does_not_fold():
    # [1, 10, 10] varies over H and W, not per channel: it stays a Mul
    consts = {"w": rand(8, 8, 1, 1), "m": rand(1, 10, 10)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Mul", ["c", "m"], ["y"])]
    m = make_model(nodes, [("x", np.float32, [2, 8, 10, 10])], [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString())
    assert "Mul" in ops(model)
    x = rand(2, 8, 10, 10)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pads,value,folds", [([0, 0, 0, 0, 0, 0, 1, 1], None, True),
                                              ([0, 0, 1, 2, 0, 0, 1, 0], 0.0, True),
                                              ([0, 0, 1, 1, 0, 0, 1, 1], 0.5, False),
                                              ([0, 1, 1, 1, 0, 0, 1, 1], None, False)])
def test_zero_pad_folds_into_conv(pads, value, folds):
    consts = {"w": rand(4, 4, 3, 3), "pads": np.array(pads, np.int64)}
    pad_ins = ["x", "pads"]
    if value is not None:
        consts["v"] = np.array(value, np.float32)
        pad_ins.append("v")
    cin = 4 + pads[1] + pads[5]
    consts["w"] = rand(4, cin, 3, 3)
    nodes = [helper.make_node("Pad", pad_ins, ["p"]), helper.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2])]
    m = make_model(nodes, [("x", np.float32, [2, 4, 9, 9])], [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString())
    assert ("Pad" not in ops(model)) == folds
    x = rand(2, 4, 9, 9)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_static_qdq_convs_run_channels_last():
    # DQ(x) -> Conv(DQ(w int8 per channel)) -> Q -> DQ -> Conv -> Q: each conv becomes oneDNN's int8
    # convolution (QLinearConv, channels-last) where oneDNN has them (AVX2 and later; exact without
    # VNNI too), else a float32 conv on the folded weights; either way no layout change sits between them.
    consts = {"xs": np.array(0.05, np.float32), "xz": np.array(128, np.uint8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"])]
    src = "xq"
    for i in range(2):
        consts.update({f"w{i}": RNG.integers(-127, 128, (4, 4, 3, 3)).astype(np.int8),
                       f"ws{i}": RNG.uniform(0.01, 0.02, 4).astype(np.float32), f"wz{i}": np.zeros(4, np.int8),
                       f"ys{i}": np.array(0.1, np.float32), f"yz{i}": np.array(128, np.uint8)})
        s_in, z_in = ("xs", "xz") if i == 0 else ("ys0", "yz0")
        nodes += [helper.make_node("DequantizeLinear", [src, s_in, z_in], [f"d{i}"]),
                  helper.make_node("DequantizeLinear", [f"w{i}", f"ws{i}", f"wz{i}"], [f"wf{i}"], axis=0),
                  helper.make_node("Conv", [f"d{i}", f"wf{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("QuantizeLinear", [f"c{i}", f"ys{i}", f"yz{i}"], [f"q{i}"])]
        src = f"q{i}"
    nodes.append(helper.make_node("DequantizeLinear", ["q1", "ys1", "yz1"], ["y"]))
    m = make_model(nodes, [("x", np.float32, ["n", 4, 8, 8])], [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString())
    assert model._s.node_ops.count("Transpose") == 2  # into channels-last once, and out
    int8 = mserve._core.int8_convs()
    conv = "NhwcQLinearConv" if int8 else "NhwcConv"
    # without int8 convolutions the pairs between the float convs are one QuantizeDequantize each
    assert ops(model).count(conv) == 2 and ("DequantizeLinear" if int8 else "QuantizeDequantize") in ops(model)
    x = rand(2, 4, 8, 8)
    got, want = model.predict(x), ort_run(m, {"x": x}, as_written=True)[0]
    # one quantization step of the output where a value lands on a rounding tie
    np.testing.assert_allclose(got, want, rtol=0, atol=0.1 + 1e-6)
    assert np.mean(got != want) < 0.01


@pytest.mark.parametrize("wt,per_column,uniform", [(np.int8, True, False), (np.uint8, False, False),
                                                   (np.int8, True, True), (np.uint8, True, True)])
@pytest.mark.parametrize("spread", [0.4, 3.0])
def test_static_qdq_matmul_runs_on_integers(wt, per_column, uniform, spread):
    # MatMul(DQ(x_q), DQ(w_q)) + bias -> MatMulIntegerToFloat: the integer products scaled once,
    # the same values as the dequantized floats' products to float32 rounding. Without VNNI,
    # weights as a quantizer writes them (bell-shaped) run in one pass through unsaturating
    # weights; uniform ones with x in a 7-bit window around its zero point (spread 0.4: a few
    # values outside it, added back) or split in two (spread 3: most values outside).
    lo, hi = (-127, 127) if wt == np.int8 else (0, 255)
    K, N = 512, 256  # big enough for oneDNN's product
    w = (RNG.integers(lo, hi + 1, (K, N)) if uniform
         else np.clip(np.rint(RNG.normal((lo + hi) / 2, 30, (K, N))), lo, hi)).astype(wt)
    consts = {"xs": np.array(0.02, np.float32), "xz": np.array(120, np.uint8), "w": w,
              "ws": RNG.uniform(0.001, 0.01, N if per_column else ()).astype(np.float32),
              "wz": (np.zeros(N, wt) if per_column else np.array(131, wt)), "bias": rand(N)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["p"]), helper.make_node("Add", ["p", "bias"], ["y"])]
    m = make_model(nodes, [("x", np.float32, ["n", 20, K])], [("y", np.float32, None)], consts, opset=13)
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["MatMulIntegerToFloat", "QuantizeLinear"]
    x = rand(3, 20, K, scale=spread)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x}, as_written=True)[0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("order", ["x_first", "sigmoid_first"])
def test_silu_becomes_swish_and_fuses_into_the_conv(order):
    consts = {"w": rand(8, 4, 3, 3), "b": rand(8)}
    mul_in = ["c", "s"] if order == "x_first" else ["s", "c"]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", mul_in, ["y"])]
    m = make_model(nodes, [("x", np.float32, ["n", 4, 10, 10])], [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["NhwcConv"]
    x = rand(2, 4, 10, 10, scale=3.0)
    np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_sigmoid_read_elsewhere_stays():
    # the Sigmoid's output is a graph output too: x * sigmoid(x) is not rewritten
    consts = {"w": rand(8, 4, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Mul", ["c", "s"], ["y"])]
    m = make_model(nodes, [("x", np.float32, [2, 4, 5, 5])], [("y", np.float32, None), ("s", np.float32, None)],
                   consts)
    model = mserve.load(m.SerializeToString())
    assert "Swish" not in ops(model) and "Sigmoid" in " ".join(ops(model))
    x = rand(2, 4, 5, 5)
    got, want = model.predict(x), ort_run(m, {"x": x})
    np.testing.assert_allclose(got["y"], want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["s"], want[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("zt,z", [(np.uint8, 128), (np.int8, -3), (np.uint8, 0)])
def test_activation_qdq_pairs_become_one_node(zt, z):
    # x -> Q -> DQ -> Transpose -> Sigmoid -> Q -> DQ: each pair one QuantizeDequantize, the same
    # floats as the two operators (onnx.reference), NaN and the infinities included. (Without the
    # Transpose, DQ -> Sigmoid -> Q is one Lookup8.)
    from onnx.reference import ReferenceEvaluator
    consts = {"s": np.array(0.037, np.float32), "z": np.array(z, zt),
              "s2": np.array(1 / 255, np.float32), "z2": np.array(z, zt)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("Transpose", ["d"], ["t"], perm=[1, 0]),
             helper.make_node("Sigmoid", ["t"], ["g"]),
             helper.make_node("QuantizeLinear", ["g", "s2", "z2"], ["q2"]),
             helper.make_node("DequantizeLinear", ["q2", "s2", "z2"], ["y"])]
    m = make_model(nodes, [("x", np.float32, ["n", 40000])], [("y", np.float32, None)], consts, opset=19)
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["QuantizeDequantize", "QuantizeDequantize", "Sigmoid"]  # ops() leaves Transposes out
    x = rand(3, 40000, scale=8.0)
    x[0, :2] = 0.037 * 2.5, -0.037 * 3.5  # rounding ties: to even
    x[1] = np.round(x[1] / 0.037) * 0.037 + 0.0185  # near ties everywhere
    np.testing.assert_array_equal(model.predict(x), ReferenceEvaluator(m).run(None, {"x": x})[0])
    # NaN and the infinities (which onnx.reference casts as C leaves undefined): as the two operators
    x[2, :3] = np.nan, np.inf, -np.inf
    np.testing.assert_array_equal(model.predict(x), mserve.load(m.SerializeToString(), optimize=False).predict(x))


def test_activation_qdq_lookalikes_stay():
    consts = {"s": np.array(0.05, np.float32), "z": np.array(128, np.uint8), "s2": np.array(0.06, np.float32)}
    x = rand(2, 64, scale=4.0)
    cases = {
        # the DequantizeLinear's scale differs from the QuantizeLinear's
        "scale": ([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                   helper.make_node("DequantizeLinear", ["q", "s2", "z"], ["y"])], ["y"]),
        # the 8-bit tensor is a graph output too
        "output": ([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                    helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], ["y", "q"]),
        # two DequantizeLinears read it
        "two": ([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["a"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["b"]),
                 helper.make_node("Add", ["a", "b"], ["y"])], ["y"]),
    }
    for name, (nodes, outs) in cases.items():
        m = make_model(nodes, [("x", np.float32, [2, 64])],
                       [(o, np.float32 if o != "q" else np.uint8, None) for o in outs], consts, opset=13)
        model = mserve.load(m.SerializeToString())
        assert "QuantizeDequantize" not in ops(model), name
        got = model.predict(x)
        got = [got] if not isinstance(got, dict) else [got[o] for o in outs]
        for g, w in zip(got, ort_run(m, {"x": x})):
            np.testing.assert_array_equal(g, w, err_msg=name)


# Element-wise chains between two 8-bit tensors in a static QDQ model become one Lookup8 (a table
# of the chain's 256 outcomes): SiLU as EfficientNet's export writes it, HardSwish, a scalar
# Add and Mul around a Tanh, GELU with quantized scalars, and a plain requantization. Checked over every code against
# onnxruntime running the graph as written; the table is computed by mserve's own kernels, whose
# float results may sit an ulp from onnxruntime's next to a rounding tie: at most one step apart,
# for a few of the 256 codes.
def _qdq_chain(kind, xt, yt):
    lo = -128 if xt == np.int8 else 0
    c = {"xs": np.array(0.05, np.float32), "xz": np.array(lo + 100, xt), "ss": np.array(1 / 255, np.float32),
         "sz": np.array(0 if yt == np.uint8 else -128, yt), "ys": np.array(0.04, np.float32),
         "yz": np.array(7 if yt == np.uint8 else -9, yt)}
    n = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["d"])]
    if kind == "silu":
        n += [helper.make_node("Sigmoid", ["d"], ["sg"]),
              helper.make_node("QuantizeLinear", ["sg", "ss", "sz"], ["sq"]),
              helper.make_node("DequantizeLinear", ["sq", "ss", "sz"], ["sd"]),
              helper.make_node("Mul", ["d", "sd"], ["f"])]
    elif kind == "hardswish":
        n += [helper.make_node("HardSwish", ["d"], ["f"])]
    elif kind == "affine-tanh":
        c.update(k=np.array(0.75, np.float32), b=np.array(-0.5, np.float32))
        n += [helper.make_node("Mul", ["d", "k"], ["m"]), helper.make_node("Tanh", ["m"], ["t"]),
              helper.make_node("Add", ["b", "t"], ["f"])]
    elif kind == "gelu":  # as a QDQ ConvNeXt writes it: its scalars quantized too (Q -> DQ of each)
        for name, v in (("r2", 1.4142135), ("one", 1.0), ("half", 0.5)):
            c.update({name: np.array(v, np.float32), name + "s": np.array(v / 127, np.float32),
                      name + "z": np.array(0, np.int8)})
            n += [helper.make_node("QuantizeLinear", [name, name + "s", name + "z"], [name + "q"]),
                  helper.make_node("DequantizeLinear", [name + "q", name + "s", name + "z"], [name + "d"])]
        n += [helper.make_node("Div", ["d", "r2d"], ["dv"]), helper.make_node("Erf", ["dv"], ["e"]),
              helper.make_node("Add", ["e", "oned"], ["e1"]), helper.make_node("Mul", ["d", "e1"], ["g"]),
              helper.make_node("Mul", ["g", "halfd"], ["f"])]
    else:  # requantize
        n += [helper.make_node("Identity", ["d"], ["f"])]
    n.append(helper.make_node("QuantizeLinear", ["f", "ys", "yz"], ["y"]))
    return n, c


@pytest.mark.parametrize("kind", ["silu", "hardswish", "affine-tanh", "gelu", "requantize"])
@pytest.mark.parametrize("xt,yt", [(np.uint8, np.uint8), (np.int8, np.int8), (np.uint8, np.int8)])
def test_qdq_chain_becomes_a_lookup_table(kind, xt, yt):
    nodes, consts = _qdq_chain(kind, xt, yt)
    m = make_model(nodes, [("x", xt, [4, 64, 3])], [("y", yt, None)], consts, opset=17)
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["Lookup8"]
    codes = np.arange(256, dtype=np.uint8).view(xt)
    x = np.concatenate([codes, RNG.integers(0, 256, 4 * 64 * 3 - 256).astype(np.uint8).view(xt)]).reshape(4, 64, 3)
    got, want = model.predict(x), ort_run(m, {"x": x}, as_written=True)[0]
    assert got.dtype == want.dtype == yt and got.shape == want.shape
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1 and np.count_nonzero(diff.reshape(-1)[:256]) <= 4  # the first 256: every code once
    assert np.array_equal(model.predict(x[::-1].copy()), got[::-1])  # a table, whatever the order


def test_qdq_chain_read_midway_stays_as_written():
    nodes, consts = _qdq_chain("silu", np.uint8, np.uint8)
    m = make_model(nodes, [("x", np.uint8, [2, 8])], [("y", np.uint8, None), ("sg", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString())
    assert "Lookup8" not in ops(model) and "Sigmoid" in ops(model)
    x = RNG.integers(0, 256, (2, 8)).astype(np.uint8)
    got, want = model.predict(x, outputs=["y", "sg"]), ort_run(m, {"x": x}, as_written=True)
    np.testing.assert_array_equal(got["y"], want[0])
    np.testing.assert_allclose(got["sg"], want[1], rtol=1e-5)


@pytest.mark.parametrize("xt", [np.uint8, np.int8])
def test_qdq_conv_then_silu_is_one_int8_convolution(xt):
    # DQ -> Conv -> Q, then SiLU between two 8-bit tensors: the table is applied as the int8
    # convolution writes its output (a depthwise conv too, which over uint8 runs without the window).
    zx = np.array(3 if xt == np.uint8 else -3, xt)
    for group in (1, 8):
        consts = {"xs": np.array(0.05, np.float32), "xz": zx,
                  "w": RNG.integers(-127, 128, (8, 8 // group, 3, 3)).astype(np.int8),
                  "ws": RNG.uniform(0.01, 0.02, 8).astype(np.float32), "wz": np.zeros(8, np.int8),
                  "cs": np.array(0.1, np.float32), "cz": np.array(128, np.uint8)}
        nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
                 helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1], group=group),
                 helper.make_node("QuantizeLinear", ["c", "cs", "cz"], ["x2"])]
        chain, c2 = _qdq_chain("silu", np.uint8, np.uint8)
        for nd in chain:  # the chain reads the conv's output, quantized with cs / cz
            nd.input[:] = [{"x": "x2", "xs": "cs", "xz": "cz"}.get(i, i) for i in nd.input]
        consts.update({k: v for k, v in c2.items() if k not in ("xs", "xz")})
        nodes += chain + [helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["out"])]
        m = make_model(nodes, [("x", xt, [2, 8, 9, 9])], [("out", np.float32, None)], consts, opset=17)
        model = mserve.load(m.SerializeToString())
        assert ops(model) == ["DequantizeLinear", "NhwcQLinearConv"], ops(model)
        x = RNG.integers(0, 256, (2, 8, 9, 9)).astype(np.uint8).view(xt)
        got, want = model.predict(x), ort_run(m, {"x": x}, as_written=True)[0]
        step = 0.04  # one step of the output's scale where a value lands next to a rounding tie
        assert np.max(np.abs(got - want)) <= step + 1e-6 and np.mean(got != want) < 0.01


@pytest.mark.parametrize("op", ["Add", "Mul"])
@pytest.mark.parametrize("t", [np.uint8, np.int8])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("b_shape", [(4, 37), (1, 37), (4, 1)])
def test_qdq_residual_sum_or_product_is_one_node(op, t, relu, b_shape):
    # Q([Relu](DQ(a) op DQ(b))) -> com.mserve QuantizedAdd / QuantizedMul: the same float operations
    # in one pass, so onnxruntime running the graph as written gives the same codes (broadcast b
    # too, along rows and across them). A DequantizeLinear also read elsewhere stays for that reader.
    consts = {"as": np.array(0.031, np.float32), "az": np.array(9, t), "bs": np.array(0.017, np.float32),
              "bz": np.array(-5 if t == np.int8 else 250, t), "ys": np.array(0.05, np.float32), "yz": np.array(3, t)}
    nodes = [helper.make_node("DequantizeLinear", ["a", "as", "az"], ["da"]),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["db"]),
             helper.make_node(op, ["da", "db"], ["s"])]
    nodes += [helper.make_node("Relu", ["s"], ["r"]), helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["y"])] \
        if relu else [helper.make_node("QuantizeLinear", ["s", "ys", "yz"], ["y"])]
    m = make_model(nodes, [("a", t, [4, 37]), ("b", t, list(b_shape))], [("y", t, None), ("da", np.float32, None)],
                   consts, opset=17)
    model = mserve.load(m.SerializeToString())
    assert ops(model) == ["DequantizeLinear", "Quantized" + op]
    info = np.iinfo(t)
    a = RNG.integers(info.min, info.max + 1, (4, 37)).astype(t)
    b = RNG.integers(info.min, info.max + 1, b_shape).astype(t)
    got, want = model.predict({"a": a, "b": b}, outputs=["y", "da"]), ort_run(m, {"a": a, "b": b}, as_written=True)
    np.testing.assert_array_equal(got["y"], want[0])
    np.testing.assert_array_equal(got["da"], want[1])


@pytest.mark.parametrize("t", [np.uint8, np.int8])
@pytest.mark.parametrize("axes,keepdims", [([1, 2], 1), ([2, 3], 0), ([-1], 1), ([0, 1, 2, 3], 0), ([1, 3], 1)])
def test_qdq_mean_is_one_node(t, axes, keepdims):
    # Q(ReduceMean(DQ(x))) over consecutive axes -> com.mserve QuantizedMean: the codes summed
    # exactly in int32, where the graph sums rounded floats, so a mean next to a rounding tie may
    # land one step away from onnxruntime's as-written answer. Axes 1 and 3 are not consecutive:
    # left as written.
    consts = {"xs": np.array(0.043, np.float32), "xz": np.array(-7 if t == np.int8 else 121, t),
              "ys": np.array(0.011, np.float32), "yz": np.array(2, t), "axes": np.array(axes, np.int64)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["d"]),
             helper.make_node("ReduceMean", ["d", "axes"], ["m"], keepdims=keepdims),
             helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["y"])]
    m = make_model(nodes, [("x", t, [3, 14, 14, 40])], [("y", t, None)], consts, opset=18)
    model = mserve.load(m.SerializeToString())
    fused = axes != [1, 3]
    assert (ops(model) == ["QuantizedMean"]) == fused, ops(model)
    info = np.iinfo(t)
    x = RNG.integers(info.min, info.max + 1, (3, 14, 14, 40)).astype(t)
    got, want = model.predict(x), ort_run(m, {"x": x}, as_written=True)[0]
    assert got.shape == want.shape and got.dtype == want.dtype
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max(initial=0) <= 1 and np.mean(diff != 0) <= 0.02
