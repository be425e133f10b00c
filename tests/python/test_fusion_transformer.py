"""Fusion passes of transformer and MLP graphs (MatMul/Gemm + activation, tanh GELU, Transposes
and scales folded into MatMul, multi-head attention): the fused graph must compute what the
unfused one does (optimize=False runs the model as exported) and what onnxruntime computes."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import mserve
from op_harness import make_model, ort_run

RNG = np.random.default_rng(11)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def f32(v):
    return np.array(v, np.float32)


def ops(model):
    return sorted(model._s.node_ops)


def check(m, feeds, want_ops, threads=1, rtol=1e-4, atol=1e-5):
    """Loads `m` fused and unfused, checks the fused op list and both results against onnxruntime."""
    fused = mserve.load(m.SerializeToString(), threads=threads)
    assert ops(fused) == sorted(want_ops)
    want = ort_run(m, feeds)
    plain = mserve.load(m.SerializeToString(), threads=threads, optimize=False)
    for model in (plain, fused):
        got = model.predict(feeds)
        got = [got] if not isinstance(got, dict) else [got[o.name] for o in m.graph.output]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return fused


# --- MatMul / Gemm + activation -----------------------------------------------------------------

# (id, nodes from "p" to "y", extra initializers, opset)
ACTIVATIONS = [
    ("relu", [helper.make_node("Relu", ["p"], ["y"])], {}),
    ("leaky", [helper.make_node("LeakyRelu", ["p"], ["y"], alpha=0.1)], {}),
    ("clip", [helper.make_node("Clip", ["p", "lo", "hi"], ["y"])], {"lo": f32(-0.5), "hi": f32(0.7)}),
    ("hardswish", [helper.make_node("HardSwish", ["p"], ["y"])], {}),
    ("gelu", [helper.make_node("Gelu", ["p"], ["y"])], {}),
    ("gelu-tanh", [helper.make_node("Gelu", ["p"], ["y"], approximate="tanh")], {}),
    ("tanh", [helper.make_node("Tanh", ["p"], ["y"])], {}),
    ("sigmoid", [helper.make_node("Sigmoid", ["p"], ["y"])], {}),
]
# (id, producer nodes from "x" to "p", initializers, the fused op)
PRODUCERS = [
    ("matmul", [helper.make_node("MatMul", ["x", "W"], ["p"])], {"W": rand(48, 40)}, "MatMul"),
    ("matmul-bias", [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["p"])],
     {"W": rand(48, 40), "b": rand(40)}, "FusedMatMul"),
    ("gemm", [helper.make_node("Gemm", ["x2", "W", "b"], ["p"], transB=1, alpha=0.5)],
     {"W": rand(40, 48), "b": rand(40)}, "Gemm"),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [3, 512])  # the Eigen and the oneDNN products
@pytest.mark.parametrize("producer", [pytest.param(p, id=p[0]) for p in PRODUCERS])
@pytest.mark.parametrize("act", [pytest.param(a, id=a[0]) for a in ACTIVATIONS])
def test_activation_fuses_into_matmul_and_gemm(act, producer, rows, threads):
    _, act_nodes, act_consts = act
    pid, p_nodes, p_consts, fused_op = producer
    nodes = list(p_nodes) + list(act_nodes)
    if pid == "gemm":  # Gemm is 2-D
        nodes = [helper.make_node("Reshape", ["x", "shape2"], ["x2"])] + nodes
        p_consts = dict(p_consts, shape2=np.array([-1, 48], np.int64))
    m = make_model(nodes, [("x", np.float32, ["b", "s", 48])], [("y", np.float32, None)],
                   dict(p_consts, **act_consts), opset=20)
    x = rand(2, rows // 2 + 1, 48)
    want_ops = [fused_op] + (["Reshape"] if pid == "gemm" else [])
    fused = check(m, {"x": x}, want_ops, threads=threads)
    assert fused._s.num_nodes == len(want_ops)


def test_activation_stays_when_the_product_is_read_twice():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["p"]), helper.make_node("Tanh", ["p"], ["t"]),
             helper.make_node("Add", ["p", "t"], ["y"])]
    m = make_model(nodes, [("x", np.float32, [4, 48])], [("y", np.float32, None)], {"W": rand(48, 40)})
    check(m, {"x": rand(4, 48)}, ["Add", "MatMul", "Tanh"])


def test_integer_matmul_takes_no_activation():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["p"]), helper.make_node("Relu", ["p"], ["y"])]
    m = make_model(nodes, [("x", np.int32, [3, 4])], [("y", np.int32, None)],
                   {"W": RNG.integers(-3, 3, (4, 5)).astype(np.int32)})
    check(m, {"x": RNG.integers(-3, 3, (3, 4)).astype(np.int32)}, ["MatMul", "Relu"])


# --- GELU, tanh form ------------------------------------------------------------------------------

def gelu_tanh_nodes(cube, outer):
    """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) as torch (cube "mul") or
    Hugging Face's gelu_new (cube "pow") write it; outer "half-last" or "half-first"."""
    c = {"k": f32(0.044715), "s": f32(np.sqrt(2 / np.pi)), "one": f32(1.0), "half": f32(0.5), "three": f32(3.0)}
    if cube == "pow":
        nodes = [helper.make_node("Pow", ["x", "three"], ["x3"])]
    else:
        nodes = [helper.make_node("Mul", ["x", "x"], ["x2"]), helper.make_node("Mul", ["x", "x2"], ["x3"])]
    nodes += [helper.make_node("Mul", ["k", "x3"], ["kx3"]), helper.make_node("Add", ["x", "kx3"], ["in"]),
              helper.make_node("Mul", ["s", "in"], ["sin"]), helper.make_node("Tanh", ["sin"], ["t"]),
              helper.make_node("Add", ["one", "t"], ["t1"])]
    if outer == "half-last":
        nodes += [helper.make_node("Mul", ["x", "t1"], ["xt"]), helper.make_node("Mul", ["half", "xt"], ["y"])]
    else:
        nodes += [helper.make_node("Mul", ["half", "x"], ["hx"]), helper.make_node("Mul", ["hx", "t1"], ["y"])]
    return nodes, c


@pytest.mark.parametrize("cube", ["mul", "pow"])
@pytest.mark.parametrize("outer", ["half-last", "half-first"])
def test_tanh_gelu_pattern_becomes_gelu(cube, outer):
    nodes, c = gelu_tanh_nodes(cube, outer)
    m = make_model(nodes, [("x", np.float32, ["n", 64])], [("y", np.float32, None)], c)
    fused = check(m, {"x": rand(8, 64, scale=3.0)}, ["Gelu"], rtol=1e-5, atol=1e-6)
    assert fused._s.num_nodes == 1
    # After a MatMul + bias, the GELU becomes the product's activation.
    mm = [helper.make_node("MatMul", ["a", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["x"])]
    m = make_model(mm + nodes, [("a", np.float32, ["n", 32])], [("y", np.float32, None)],
                   dict(c, W=rand(32, 64), b=rand(64)))
    check(m, {"a": rand(8, 32)}, ["FusedMatMul"])


def test_tanh_gelu_lookalike_is_left_alone():
    nodes, c = gelu_tanh_nodes("mul", "half-last")
    c["k"] = f32(0.05)  # not GELU's constant
    m = make_model(nodes, [("x", np.float32, ["n", 64])], [("y", np.float32, None)], c)
    fused = mserve.load(m.SerializeToString())
    assert "Gelu" not in fused._s.node_ops
    x = rand(4, 64)
    np.testing.assert_allclose(fused.predict(x), ort_run(m, {"x": x})[0], rtol=1e-5, atol=1e-6)


# --- Transposes and scales folded into MatMul -----------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("side", ["A", "B", "both"])
@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)])
def test_transpose_folds_into_matmul(side, batch_shape, threads):
    r = len(batch_shape) + 2
    swap = list(range(r - 2)) + [r - 1, r - 2]
    a_shape, b_shape = batch_shape + (5, 7), batch_shape + (7, 6)
    nodes, a, b = [], "a", "b"
    if side in ("A", "both"):
        a_shape = batch_shape + (7, 5)
        nodes.append(helper.make_node("Transpose", ["a"], ["at"], perm=swap))
        a = "at"
    if side in ("B", "both"):
        b_shape = batch_shape + (6, 7)
        nodes.append(helper.make_node("Transpose", ["b"], ["bt"], perm=swap))
        b = "bt"
    nodes.append(helper.make_node("MatMul", [a, b], ["y"]))
    m = make_model(nodes, [("a", np.float32, list(a_shape)), ("b", np.float32, list(b_shape))],
                   [("y", np.float32, None)])
    check(m, {"a": rand(*a_shape), "b": rand(*b_shape)}, ["FusedMatMul"], threads=threads)


def test_transpose_folds_into_integer_and_recommender_matmuls():
    # x @ x^T (the DLRM interaction), int64.
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["x", "xt"], ["y"])]
    m = make_model(nodes, [("x", np.int64, [2, 4, 3])], [("y", np.int64, None)])
    check(m, {"x": RNG.integers(-5, 5, (2, 4, 3))}, ["FusedMatMul"])
    m = make_model(nodes, [("x", np.float32, [2, 4, 3])], [("y", np.float32, None)])
    check(m, {"x": rand(2, 4, 3)}, ["FusedMatMul"])


def test_other_transposes_stay():
    # perm [1, 0, 2] moves a batch dim: not a transpose of the matrices.
    nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=[1, 0, 2]),
             helper.make_node("MatMul", ["a", "bt"], ["y"])]
    m = make_model(nodes, [("a", np.float32, [3, 5, 7]), ("b", np.float32, [7, 3, 6])], [("y", np.float32, None)])
    check(m, {"a": rand(3, 5, 7), "b": rand(7, 3, 6)}, ["MatMul", "Transpose"])
    # A Transpose read twice stays (its output is needed).
    nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=[1, 0]), helper.make_node("MatMul", ["a", "bt"], ["m"]),
             helper.make_node("Add", ["m", "bt"], ["y"])]
    m = make_model(nodes, [("a", np.float32, [4, 4]), ("b", np.float32, [4, 4])], [("y", np.float32, None)])
    check(m, {"a": rand(4, 4), "b": rand(4, 4)}, ["Add", "MatMul", "Transpose"])


@pytest.mark.parametrize("op,c,first", [("Mul", 0.125, False), ("Mul", 0.125, True), ("Div", 8.0, False)])
def test_scalar_scale_folds_into_matmul(op, c, first):
    nodes = [helper.make_node("MatMul", ["a", "W"], ["m"]),
             helper.make_node(op, ["c", "m"] if first else ["m", "c"], ["y"])]
    m = make_model(nodes, [("a", np.float32, ["n", 16])], [("y", np.float32, None)], {"W": rand(16, 8), "c": f32(c)})
    check(m, {"a": rand(5, 16)}, ["FusedMatMul"])
    # Not a scalar (a per-column scale), or dividing the scalar by the product: no fold.
    for nodes2, consts in (([nodes[0], helper.make_node(op, ["m", "c"], ["y"])], {"c": rand(8)}),
                           ([nodes[0], helper.make_node("Div", ["c", "m"], ["y"])], {"c": f32(c)})):
        m = make_model(nodes2, [("a", np.float32, ["n", 16])], [("y", np.float32, None)], dict(consts, W=rand(16, 8)))
        check(m, {"a": rand(5, 16)}, ["MatMul", nodes2[1].op_type])


# --- multi-head attention -------------------------------------------------------------------------

def attention_model(B=2, S=6, H=3, D=4, mask="add", scale="div", layout="split", kv_len=None, mask_shape=None,
                    softmax_axis=-1, nan_to=None):
    """The attention block as torch exports it: x [B, S, H*D] -> q, k, v projections, heads split
    (Reshape + Transpose; or Q/K/V as 4-D graph inputs with layout "4d"), softmax(q k^T * scale +
    mask) v, heads merged. nan_to: the softmax's NaNs replaced by this value, Where(IsNaN(p), c, p)
    (torch 2.9's export with c = 0)."""
    T = kv_len or S
    E = H * D
    c = {"Wq": rand(E, E, scale=0.5), "Wk": rand(E, E, scale=0.5), "Wv": rand(E, E, scale=0.5),
         "split": np.array([0, 0, H, D], np.int64), "merge": np.array([0, 0, E], np.int64)}
    nodes, inputs, feeds = [], [], {}
    if layout == "split":
        inputs += [("x", np.float32, ["b", "s", E])]
        feeds["x"] = rand(B, S, E)
        for n in "qkv":
            nodes += [helper.make_node("MatMul", ["x", "W" + n], [n + "p"]),
                      helper.make_node("Reshape", [n + "p", "split"], [n + "r"])]
        nodes += [helper.make_node("Transpose", ["qr"], ["q"], perm=[0, 2, 1, 3]),
                  helper.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1]),
                  helper.make_node("Transpose", ["vr"], ["v"], perm=[0, 2, 1, 3])]
    else:  # "4d": [B, H, L, D] inputs, K^T by Transpose [0, 1, 3, 2]
        inputs += [("q", np.float32, [B, H, S, D]), ("k", np.float32, [B, H, T, D]), ("v", np.float32, [B, H, T, D])]
        feeds.update(q=rand(B, H, S, D), k=rand(B, H, T, D), v=rand(B, H, T, D))
        nodes.append(helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]))
    q = "q"
    if scale == "qk":  # torch's scaled_dot_product_attention: sqrt(scale) on each side
        c["sq"] = f32(D ** -0.25)
        nodes += [helper.make_node("Mul", ["q", "sq"], ["qs"]), helper.make_node("Mul", ["kt", "sq"], ["kts"])]
        nodes.append(helper.make_node("MatMul", ["qs", "kts"], ["s"]))
    else:
        nodes.append(helper.make_node("MatMul", [q, "kt"], ["s"]))
    scores = "s"
    if scale == "div":
        c["d"] = f32(np.sqrt(D))
        nodes.append(helper.make_node("Div", ["s", "d"], ["ss"]))
        scores = "ss"
    elif scale == "mul":
        c["d"] = f32(1 / np.sqrt(D))
        nodes.append(helper.make_node("Mul", ["d", "s"], ["ss"]))
        scores = "ss"
    if mask == "add":
        shape = mask_shape or [B, 1, 1, T]
        inputs.append(("mask", np.float32, shape))
        m = np.zeros(shape, np.float32)
        m[..., -1:] = -10000.0
        feeds["mask"] = m
        nodes.append(helper.make_node("Add", [scores, "mask"], ["sm"]))
        scores = "sm"
    elif mask in ("where", "where-keep"):
        c["ninf"] = f32(-np.inf)
        inputs.append(("causal", np.bool_, [S, T]))
        feeds["causal"] = np.tril(np.ones((S, T), bool))  # True: attend
        if mask == "where":
            nodes += [helper.make_node("Not", ["causal"], ["nc"]),
                      helper.make_node("Where", ["nc", "ninf", scores], ["sm"])]
        else:
            nodes.append(helper.make_node("Where", ["causal", scores, "ninf"], ["sm"]))
        scores = "sm"
    if nan_to is None:
        nodes.append(helper.make_node("Softmax", [scores], ["p"], axis=softmax_axis))
    else:
        c["nan_to"] = f32(nan_to)
        nodes += [helper.make_node("Softmax", [scores], ["p0"], axis=softmax_axis),
                  helper.make_node("IsNaN", ["p0"], ["pn"]), helper.make_node("Where", ["pn", "nan_to", "p0"], ["p"])]
    nodes.append(helper.make_node("MatMul", ["p", "v"], ["o" if layout == "split" else "y"]))
    if layout == "split":
        nodes += [helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", ["ot", "merge"], ["y"])]
    return make_model(nodes, inputs, [("y", np.float32, None)], c), feeds


SPLIT_OPS = ["MatMul", "MatMul", "MatMul", "MultiHeadAttention", "Reshape", "Reshape", "Reshape", "Reshape"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mask,scale", [("add", "div"), ("add", "mul"), ("none", "none"), ("where", "mul"),
                                        ("where-keep", "div"), ("add", "qk")])
def test_attention_block_becomes_one_node(mask, scale, threads):
    m, feeds = attention_model(mask=mask, scale=scale)
    check(m, feeds, SPLIT_OPS, threads=threads)  # Where(Not(causal), -inf, s): the Not goes too


@pytest.mark.parametrize("mask", ["where", "add"])
def test_attention_with_nan_rows_zeroed_becomes_one_node(mask):
    # torch 2.9: Where(IsNaN(p), 0, p) after the Softmax. The first query attends no key: its
    # softmax row is NaN, zeroed, and the fused kernel gives the same zeros.
    m, feeds = attention_model(mask=mask, scale="qk", nan_to=0.0)
    if mask == "where":
        feeds["causal"][0] = False
    else:
        feeds["mask"][0, ..., :] = -np.inf
    check(m, feeds, SPLIT_OPS)
    assert not np.isnan(mserve.load(m.SerializeToString()).predict(feeds)).any()
    # NaNs replaced by anything else: left alone.
    m, feeds = attention_model(mask=mask, scale="qk", nan_to=1.0)
    assert "MultiHeadAttention" not in mserve.load(m.SerializeToString())._s.node_ops


@pytest.mark.parametrize("mask_shape", [[2, 1, 1, 6], [1, 1, 6, 6], [6], [2, 3, 6, 1], [2, 1, 6, 1]])
def test_attention_masks_broadcast_like_add(mask_shape):
    m, feeds = attention_model(mask_shape=mask_shape)
    feeds["mask"] = rand(*mask_shape, scale=3.0)
    check(m, feeds, SPLIT_OPS)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mask", ["add", "none"])
def test_attention_on_4d_inputs(mask, threads):
    # Keys longer than queries (a cross-attention shape); the mask covers every key.
    m, feeds = attention_model(layout="4d", mask=mask, kv_len=9, mask_shape=[2, 1, 1, 9])
    check(m, feeds, ["MultiHeadAttention"], threads=threads)


def test_attention_lookalikes_are_left_alone():
    # Softmax over another axis.
    m, feeds = attention_model(softmax_axis=2)
    fused = check(m, feeds, ["MatMul"] * 5 + ["Add", "Div", "Reshape", "Reshape", "Reshape", "Reshape", "Softmax",
                                             "Transpose", "Transpose", "Transpose", "Transpose"])
    assert "MultiHeadAttention" not in fused._s.node_ops
    # The probabilities are a second output.
    m, feeds = attention_model()
    m.graph.output.append(helper.make_tensor_value_info("p", TensorProto.FLOAT, None))
    assert "MultiHeadAttention" not in mserve.load(m.SerializeToString())._s.node_ops
    out = mserve.load(m.SerializeToString()).predict(feeds)
    want = ort_run(m, feeds)
    np.testing.assert_allclose(out["y"], want[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["p"], want[1], rtol=1e-4, atol=1e-5)


def test_attention_reports_a_mask_that_does_not_fit():
    m, feeds = attention_model(mask_shape=[2, 1, 1, 6])
    model = mserve.load(m.SerializeToString())
    feeds["mask"] = np.zeros([2, 1, 1, 4], np.float32)  # 4 keys' worth for 6 keys
    with pytest.raises(mserve.InvalidArgument, match="mask"):
        model.predict(feeds)


# --- LayerNorm: the decomposed form, and the residual Add before it --------------------------------

def decomposed_layer_norm(opset, square="pow", divide="div", affine="both", axis=-1):
    """x [n, 7, 24] -> LayerNorm over the last axis, as exporters before opset 17 write it."""
    c = {"eps": f32(1e-5), "two": f32(2.0), "gamma": RNG.uniform(0.5, 1.5, 24).astype(np.float32), "beta": rand(24)}
    if opset >= 18:
        c["axes"] = np.array([axis], np.int64)
        mean = lambda i, o: helper.make_node("ReduceMean", [i, "axes"], [o])  # noqa: E731
    else:
        mean = lambda i, o: helper.make_node("ReduceMean", [i], [o], axes=[axis])  # noqa: E731
    nodes = [mean("x", "mu"), helper.make_node("Sub", ["x", "mu"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["sq"]) if square == "pow" else
             helper.make_node("Mul", ["d", "d"], ["sq"]),
             mean("sq", "var"), helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"],
                                                                                                  ["sd"])]
    if divide == "div":
        nodes.append(helper.make_node("Div", ["d", "sd"], ["n"]))
    else:
        nodes += [helper.make_node("Reciprocal", ["sd"], ["r"]), helper.make_node("Mul", ["r", "d"], ["n"])]
    out = "n"
    if affine in ("gamma", "both"):
        nodes.append(helper.make_node("Mul", ["gamma", "n"], ["g"]))
        out = "g"
    if affine == "both":
        nodes.append(helper.make_node("Add", ["g", "beta"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [out], ["y"]))
    return make_model(nodes, [("x", np.float32, ["n", 7, 24])], [("y", np.float32, None)], c, opset=opset)


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("square,divide,affine", [("pow", "div", "both"), ("mul", "div", "gamma"),
                                                  ("pow", "reciprocal", "both"), ("mul", "reciprocal", "none")])
def test_decomposed_layer_norm_becomes_one_node(opset, square, divide, affine):
    m = decomposed_layer_norm(opset, square, divide, affine)
    want = ["LayerNormalization"] + (["Identity"] if affine != "both" else [])
    check(m, {"x": rand(3, 7, 24, scale=2.0) + 1.0}, want)


def test_layer_norm_lookalikes_are_left_alone():
    # Statistics over axis 1: not the last axis.
    m = decomposed_layer_norm(13, axis=1)
    fused = mserve.load(m.SerializeToString())
    assert "LayerNormalization" not in fused._s.node_ops
    x = rand(3, 7, 24)
    np.testing.assert_allclose(fused.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-5)
    # The centred values are read by a third node.
    m = decomposed_layer_norm(13)
    m.graph.output.append(helper.make_tensor_value_info("d", TensorProto.FLOAT, None))
    fused = mserve.load(m.SerializeToString())
    assert "LayerNormalization" not in fused._s.node_ops
    out, want = fused.predict(x), ort_run(m, {"x": x})
    np.testing.assert_allclose(out["y"], want[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["d"], want[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("b_shape", [[4, 9, 32], [32], [1, 9, 32], [4, 1, 32]])
@pytest.mark.parametrize("sum_read", [False, True])
def test_residual_add_fuses_into_layer_norm(b_shape, sum_read, threads):
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], epsilon=1e-6)]
    outputs = [("y", np.float32, None)]
    if sum_read:  # pre-LN: the residual stream is read on
        nodes.append(helper.make_node("Mul", ["s", "two"], ["z"]))
        outputs.append(("z", np.float32, None))
    c = {"gamma": RNG.uniform(0.5, 1.5, 32).astype(np.float32), "beta": rand(32), "two": f32(2.0)}
    m = make_model(nodes, [("a", np.float32, [4, 9, 32]), ("b", np.float32, b_shape)], outputs, c)
    want = ["SkipLayerNormalization"] + (["Mul"] if sum_read else [])
    check(m, {"a": rand(4, 9, 32, scale=3.0), "b": rand(*b_shape)}, want, threads=threads)


def test_residual_add_with_layer_norm_statistics_stays():
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma"], ["y", "mean"])]
    m = make_model(nodes, [("a", np.float32, [2, 8]), ("b", np.float32, [2, 8])],
                   [("y", np.float32, None), ("mean", np.float32, None)], {"gamma": rand(8)})
    check(m, {"a": rand(2, 8), "b": rand(2, 8)}, ["Add", "LayerNormalization"])
    # float64 runs the general (double) path.
    m = make_model(nodes[:1] + [helper.make_node("LayerNormalization", ["s", "gamma"], ["y"])],
                   [("a", np.float64, [2, 8]), ("b", np.float64, [2, 8])], [("y", np.float64, None)],
                   {"gamma": rand(8).astype(np.float64)})
    check(m, {"a": rand(2, 8).astype(np.float64), "b": rand(2, 8).astype(np.float64)}, ["SkipLayerNormalization"])
