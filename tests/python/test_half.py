"""float16 and bfloat16 models: whole zoo models converted to float16 by onnxruntime's converter,
bfloat16 graphs, Cast rounding, and where 16-bit values are rounded.

Oracles: the float32 framework outputs stored with the zoo (a float16 model answers within what
float16 allows: its relative L2 error against float32 is held to that of onnxruntime running the
same float16 model), ml_dtypes' conversions (bit-exact Cast), and float64 numpy on the 16-bit
weights (bfloat16 MLP).
"""
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper

import mserve
from op_harness import make_model, ort_run

MODELS = Path(__file__).resolve().parent.parent / "models"
BF16 = np.dtype(ml_dtypes.bfloat16)


def rel_l2(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def zoo_case(name):
    import onnx
    data = dict(np.load(MODELS / f"{name}.npz"))
    feeds = {k.split(":")[2]: v for k, v in data.items() if k.startswith("0:in:")}
    want = [v for k, v in data.items() if k.startswith("0:out:")]
    return onnx.load(MODELS / f"{name}.onnx"), feeds, want


# A CNN (Conv, BatchNorm folded by the exporter, residual Add, pooling, Gemm), a transformer
# encoder (LayerNormalization, MatMul, Softmax, Erf, the mask arithmetic), an LSTM and a GRU model.
@pytest.mark.parametrize("name", ["resnet18", "bert_encoder", "bilstm", "gru_recommender", "cnn_nhwc", "mlp"])
@pytest.mark.parametrize("keep_io_types", [False, True])
def test_float16_conversion_of_zoo_model_answers_within_float16_error(name, keep_io_types):
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model, feeds, want = zoo_case(name)
    m16 = convert_float_to_float16(model, keep_io_types=keep_io_types)
    if not keep_io_types:
        feeds = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feeds.items()}
    sess = mserve.load(m16.SerializeToString())
    got = sess.predict(feeds)
    got = [got[o.name] for o in sess.outputs] if isinstance(got, dict) else [got]
    peer = ort_run(m16, feeds)
    for g, w, p in zip(got, want, peer):
        assert g.dtype == p.dtype and g.shape == w.shape
        err, peer_err = rel_l2(g, w), rel_l2(p, w)
        # float16 keeps 11 significant bits (unit roundoff 4.9e-4). mserve rounds every node's
        # result as the graph says; onnxruntime on CPU keeps runs of float32 nodes unrounded
        # (it drops the Cast pairs it inserts), which is worth up to 2-5x here: within 3x of it,
        # or within two float16 roundings.
        assert err < max(3 * peer_err, 1e-3) and err < 3e-2, (err, peer_err)


def test_float16_conv_and_matmul_compute_in_float32_and_round_once():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float16)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float16)
    b = rng.standard_normal(4).astype(np.float16)
    m_w = (rng.standard_normal((4 * 7 * 7, 5)) * 0.1).astype(np.float16)
    model = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Flatten", ["r"], ["f"]), helper.make_node("MatMul", ["f", "m"], ["y"])],
        [("x", np.float16, [None, 3, 9, 9])], [("y", np.float16, None)], {"w": w, "b": b, "m": m_w})
    got = mserve.load(model.SerializeToString()).predict({"x": x})
    # float64 on the float16 values, rounded to float16 after each node as the graph says.
    from numpy.lib.stride_tricks import sliding_window_view
    win = sliding_window_view(x.astype(np.float64), (3, 3), axis=(2, 3))  # N, C, 7, 7, 3, 3
    conv = np.einsum("ncijkl,ockl->noij", win, w.astype(np.float64)) + b.astype(np.float64)[:, None, None]
    r = np.maximum(conv.astype(np.float16), 0)
    want = (r.reshape(2, -1).astype(np.float64) @ m_w.astype(np.float64)).astype(np.float16)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=2e-3, atol=2e-3)


def test_explicit_casts_round_where_the_graph_says():
    # float32 -> float16 -> float32: the round trip is the model's meaning and is kept.
    model = make_model([helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
                        helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)],
                       [("x", np.float32, [5])], [("y", np.float32, [5])])
    x = np.array([1 + 2 ** -12, 70000.0, 1e-8, -0.1, np.pi], np.float32)
    got = mserve.load(model.SerializeToString()).predict({"x": x})
    with np.errstate(over="ignore"):  # 70000 is past float16's range: inf
        np.testing.assert_array_equal(got, x.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("src,dst", [(np.float32, BF16), (BF16, np.float32), (np.float16, BF16),
                                     (BF16, np.float16), (BF16, np.int32), (np.int64, BF16), (BF16, np.bool_)])
def test_bfloat16_cast_matches_ml_dtypes_bit_for_bit(src, dst):
    special = [0.0, -0.0, 1.0, 1.00390625, 1.01171875, -3.5, 65504.0, 3.0e38, 1e-40, np.inf, -np.inf, np.nan]
    vals = np.array(special + list(np.random.default_rng(1).standard_normal(20) * 100), np.float32)
    if np.dtype(src).kind in "iu":
        vals = np.array([0, 1, -7, 255, 1 << 20, (1 << 24) + 1], np.int64)
    with np.errstate(over="ignore"):  # 3e38 is past float16's range
        x = vals.astype(src)
    if np.dtype(dst).kind in "iub":  # float -> int out of range (inf, NaN) is undefined
        x = x[np.abs(np.nan_to_num(x.astype(np.float32), nan=np.inf)) < 2 ** 31]
    model = make_model([helper.make_node("Cast", ["x"], ["y"], to=helper.np_dtype_to_tensor_dtype(np.dtype(dst)))],
                       [("x", np.dtype(src), [len(x)])], [("y", np.dtype(dst), [len(x)])], opset=21)
    got = mserve.load(model.SerializeToString()).predict({"x": x})
    with np.errstate(over="ignore"):
        want = x.astype(np.float32).astype(dst) if BF16 in (np.dtype(src), np.dtype(dst)) else x.astype(dst)
    assert got.dtype == np.dtype(dst)
    if np.dtype(dst) == BF16:
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    else:
        np.testing.assert_array_equal(got, want)


def bf16_mlp():
    rng = np.random.default_rng(2)
    w1 = rng.standard_normal((16, 32)).astype(BF16)
    b1 = rng.standard_normal(32).astype(BF16)
    w2 = rng.standard_normal((32, 4)).astype(BF16)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
         helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("Gemm", ["r", "w2"], ["z"]),
         helper.make_node("Softmax", ["z"], ["y"], axis=-1)],
        [("x", TensorProto.BFLOAT16, [None, 16])], [("y", TensorProto.BFLOAT16, None)],
        {"w1": w1, "b1": b1, "w2": w2}, opset=21)
    x = rng.standard_normal((3, 16)).astype(BF16)

    def reference(rnd):  # float64, `rnd` applied to each node's result
        f = lambda a: np.asarray(a, np.float64)  # noqa: E731
        h = rnd(f(x) @ f(w1))
        r = np.maximum(rnd(f(h) + f(b1)), 0)
        z = f(rnd(f(r) @ f(w2)))
        e = np.exp(z - z.max(1, keepdims=True))
        return f(rnd(e / e.sum(1, keepdims=True)).astype(np.float32).astype(BF16))
    return model, x, reference


def to_bf16_and_back(a):
    return np.asarray(a, np.float32).astype(BF16).astype(np.float64)


@pytest.mark.parametrize("optimize", [True, False])
def test_bfloat16_mlp_computes_in_float32(optimize):
    model, x, reference = bf16_mlp()
    sess = mserve.load(model.SerializeToString(), optimize=optimize)
    got = sess.predict({"x": x})
    assert got.dtype == BF16 and got.shape == (3, 4)
    # A bfloat16 model computes in float32 and rounds at its output; optimize=False keeps the
    # graph's rounding after every node.
    want = reference(lambda a: a) if optimize else reference(to_bf16_and_back)
    # bfloat16 keeps 8 significant bits: results may differ by one unit in the last place.
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=2 ** -7, atol=1e-3)
    with pytest.raises(mserve.InvalidArgument):
        sess.predict({"x": x.astype(np.float32)})


def test_float16_model_rounds_once_unless_optimize_is_off():
    # x * (1 + 2^-10), ten times: rounding to float16 after each product drops the small cross
    # terms that float32 keeps until the single rounding at the output.
    k = np.array(1 + 2 ** -10, np.float16)
    nodes = [helper.make_node("Mul", ["x" if i == 0 else f"m{i - 1}", "k"], [f"m{i}" if i < 9 else "y"])
             for i in range(10)]
    model = make_model(nodes, [("x", np.float16, [4])], [("y", np.float16, [4])], {"k": k})
    x = np.array([1.0, 2.0, 0.5, -3.0], np.float16)
    widened = mserve.load(model.SerializeToString()).predict({"x": x})
    per_node = mserve.load(model.SerializeToString(), optimize=False).predict({"x": x})
    np.testing.assert_array_equal(widened, (x.astype(np.float64) * float(k) ** 10).astype(np.float16))
    want = x
    for _ in range(10):
        want = (want.astype(np.float32) * np.float32(k)).astype(np.float16)
    np.testing.assert_array_equal(per_node, want)
    assert not np.array_equal(widened, per_node)


def test_bfloat16_inputs_reach_shape_only_kernels_without_conversion():
    model = make_model([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Identity", ["x"], ["y"])],
                       [("x", TensorProto.BFLOAT16, [None, 3])], [("s", np.int64, [2]), ("y", TensorProto.BFLOAT16,
                                                                                           None)], opset=21)
    x = np.arange(6, dtype=np.float32).reshape(2, 3).astype(BF16)
    out = mserve.load(model.SerializeToString()).predict({"x": x})
    np.testing.assert_array_equal(out["s"], [2, 3])
    np.testing.assert_array_equal(out["y"].view(np.uint16), x.view(np.uint16))


def to_bfloat16(model):
    """The model with every float32 tensor in bfloat16: weights, constants, inputs, outputs and
    the types its Casts and value infos name (what a bfloat16 export holds)."""
    import onnx
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph

    def retype(vi):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.BFLOAT16
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(BF16), t.name))
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        retype(vi)
    for n in g.node:
        for a in n.attribute:
            if a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.BFLOAT16
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(BF16), a.t.name))
    return m


def rounded_to_bfloat16(model):
    """The float32 model with its float weights rounded to bfloat16 values (still float32)."""
    import onnx
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, t in enumerate(m.graph.initializer):
        if t.data_type == TensorProto.FLOAT:
            w = numpy_helper.to_array(t).astype(BF16).astype(np.float32)
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(w, t.name))
    return m


@pytest.mark.parametrize("name", ["mlp", "cnn_nhwc", "bert_encoder", "resnet18"])
def test_bfloat16_conversion_of_zoo_model_rounds_once(name):
    # Oracle: onnxruntime running the float32 model on the same bfloat16-rounded weights and
    # inputs, in float32 throughout. A bfloat16 model computes in float32 and rounds at its
    # outputs, so it must land within about one bfloat16 unit (2^-8 relative) of that, and its
    # error against the float32 framework outputs is what bfloat16 weights and inputs cost.
    model, feeds, want = zoo_case(name)
    bf = {k: v.astype(BF16) if v.dtype == np.float32 else v for k, v in feeds.items()}
    sess = mserve.load(to_bfloat16(model).SerializeToString())
    got = sess.predict(bf)
    got = [got[o.name] for o in sess.outputs] if isinstance(got, dict) else [got]
    oracle = ort_run(rounded_to_bfloat16(model),
                     {k: v.astype(np.float32) if v.dtype == BF16 else v for k, v in bf.items()})
    for g, o, w in zip(got, oracle, want):
        assert g.dtype == BF16 and g.shape == w.shape
        assert rel_l2(g, o) < 2 ** -8, (rel_l2(g, o), name)
        assert rel_l2(g, w) < 5e-2, (rel_l2(g, w), name)
