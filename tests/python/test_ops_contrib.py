"""onnxruntime's com.microsoft contrib operators (kernels/ops/activation.cc, layer_norm.cc,
rms_norm.cc, contrib_attention.cc, matmul.cc) on one-node models against onnxruntime's CPU
kernels, and a BERT encoder and a GPT decoder rewritten by onnxruntime's transformer optimizer.

Tolerances: float32 rtol 1e-4, atol 1e-5 (harness default) for the element-wise and normalization
operators; attention rtol 1e-4, atol 2e-5: onnxruntime sums the products in another order (MLAS)
and rounds the mask and bias into the scores in another order, a few float32 ulps of values of
order 1."""
import pathlib

import numpy as np
import onnx
import pytest
from onnx import helper

import mserve
from op_harness import check_outputs, make_model, ort_run, ort_saturates_u8s8, random_inputs, unsaturated_twin

rand = random_inputs(7)
MS = "com.microsoft"
ATT_TOL = {"rtol": 1e-4, "atol": 2e-5}


def contrib_model(op, inputs, consts=None, attrs=None, outputs=1, domain=MS, opset=17, out_types=None):
    """One `op` node over runtime `inputs` then constant `consts` ({name: array or None for an
    omitted optional input}); `outputs` an int or a list of names ("" leaves one out), of the
    first float input's dtype unless `out_types` ({name: dtype}) says otherwise."""
    consts = dict(consts or {})
    names = list(inputs) + [k if v is not None else "" for k, v in consts.items()]
    outs = [f"y{i}" for i in range(outputs)] if isinstance(outputs, int) else list(outputs)
    node = helper.make_node(op, names, outs, domain=domain, **(attrs or {}))
    dt = next(v for v in list(inputs.values()) + list(consts.values()) if v is not None and v.dtype.kind == "f").dtype
    types = {**{o: dt for o in outs}, **(out_types or {})}
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, types[o], None) for o in outs if o],
                       {k: v for k, v in consts.items() if v is not None}, opset=opset)
    model.opset_import.append(helper.make_opsetid(MS, 1))
    return model, [o for o in outs if o]


CASES = []


def case(id_, op, inputs, consts=None, attrs=None, outputs=1, tol=None, domain=MS, opset=17, out_types=None):
    CASES.append(pytest.param((op, inputs, consts, attrs, outputs, tol, domain, opset, out_types), id=id_))


def run_case(c):
    op, inputs, consts, attrs, outputs, tol, domain, opset, out_types = c
    model, outs = contrib_model(op, inputs, consts, attrs, outputs, domain, opset, out_types)
    expected = ort_run(model, inputs)
    got = mserve.load(model.SerializeToString(), threads=2).predict(dict(inputs))
    got = [got] if len(outs) == 1 else [got[o] for o in outs]
    check_outputs(got, expected, tol)


def case_n(id_, op, names, inputs, consts, attrs, outputs, tol=ATT_TOL, out_types=None):
    """A node whose inputs interleave runtime inputs and constants (`names` in node order)."""
    CASES.append(pytest.param(("named", op, names, inputs, consts, attrs, outputs, tol, out_types), id=id_))


def run_named(c):
    _, op, names, inputs, consts, attrs, outputs, tol, out_types = c
    outs = [f"y{i}" for i in range(outputs)] if isinstance(outputs, int) else list(outputs)
    node = helper.make_node(op, names, outs, domain=MS, **attrs)
    types = {**{o: np.float32 for o in outs}, **(out_types or {})}
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, types[o], None) for o in outs if o],
                       {k: v for k, v in consts.items() if v is not None})
    model.opset_import.append(helper.make_opsetid(MS, 1))
    expected = ort_run(model, inputs)
    got = mserve.load(model.SerializeToString(), threads=2).predict(dict(inputs))
    outs = [o for o in outs if o]
    got = [got] if len(outs) == 1 else [got[o] for o in outs]
    check_outputs(got, expected, tol)


# --- activations ------------------------------------------------------------------------------
x = rand(2, 3, 8, lo=-4, hi=4)
b8 = rand(8)
case("Gelu", "Gelu", {"x": x})
case("QuickGelu", "QuickGelu", {"x": x})
case("QuickGelu-alpha", "QuickGelu", {"x": x}, attrs={"alpha": 1.0})
case("FastGelu", "FastGelu", {"x": x})
case("FastGelu-bias", "FastGelu", {"x": x}, {"b": b8})
case("FastGelu-runtime-bias", "FastGelu", {"x": x, "b": b8})
case("BiasGelu", "BiasGelu", {"x": x}, {"b": b8})
case("BiasGelu-2d", "BiasGelu", {"x": rand(5, 8)}, {"b": b8})

# --- normalizations ---------------------------------------------------------------------------
B, S, H = 2, 5, 16
xs, sk = rand(B, S, H), rand(B, S, H)
g, be, bi = rand(H), rand(H), rand(H)
case("SkipLN-all", "SkipLayerNormalization", {"x": xs, "s": sk}, {"g": g, "b": be, "bias": bi}, outputs=4)
case("SkipLN-sum-only", "SkipLayerNormalization", {"x": xs, "s": sk}, {"g": g, "b": be, "bias": bi},
     outputs=["y0", "", "", "y3"])
case("SkipLN-nobeta", "SkipLayerNormalization", {"x": xs, "s": sk}, {"g": g}, attrs={"epsilon": 1e-5})
case("SkipLN-bias-no-beta", "SkipLayerNormalization", {"x": xs, "s": sk}, {"g": g, "b": None, "bias": bi})
case("SkipLN-2d", "SkipLayerNormalization", {"x": rand(7, H), "s": rand(7, H)}, {"g": g, "b": be})
case("SkipLN-skip-1SH", "SkipLayerNormalization", {"x": xs, "s": rand(1, S, H)}, {"g": g, "b": be})
case("SkipLN-skip-SH", "SkipLayerNormalization", {"x": xs, "s": rand(S, H)}, {"g": g, "b": be})
case("SkipSimplified", "SkipSimplifiedLayerNormalization", {"x": xs, "s": sk}, {"g": g},
     attrs={"epsilon": 1e-6})
case("SkipSimplified-bias", "SkipSimplifiedLayerNormalization", {"x": xs, "s": sk}, {"g": g, "bias": bi},
     outputs=["y0", "", "y2", "y3"])
case("SimplifiedLN", "SimplifiedLayerNormalization", {"x": xs}, {"g": g}, outputs=2, domain="")
case("SimplifiedLN-axis1", "SimplifiedLayerNormalization", {"x": xs}, {"g": rand(S, H)},
     attrs={"axis": 1, "epsilon": 1e-3}, domain="")
case("LayerNorm-opset13", "LayerNormalization", {"x": xs}, {"g": g, "b": be}, outputs=3, domain="", opset=13)

# EmbedLayerNormalization: ids int32 (B, S); tables word [V, H], position [P, H], segment [2, H].
V, P = 30, 12
ids = rand(B, S, dtype=np.int32, lo=0, hi=V - 1)
seg = rand(B, S, dtype=np.int32, lo=0, hi=1)
mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
MI = {"y1": np.int32}
tables = {"word": rand(V, H), "pos": rand(P, H)}
case("EmbedLN-all", "EmbedLayerNormalization", {"ids": ids, "seg": seg},
     {**tables, "segt": rand(2, H), "g": g, "b": be}, outputs=2, attrs={"epsilon": 1e-12}, out_types=MI)
EMB = ["ids", "seg", "word", "pos", "segt", "g", "b"]
case_n("EmbedLN-mask-sum", "EmbedLayerNormalization", EMB + ["mask"], {"ids": ids, "seg": seg, "mask": mask},
       {**tables, "segt": rand(2, H), "g": g, "b": be}, {}, 3, None, out_types=MI)
pos_ids = rand(B, S, dtype=np.int32, lo=0, hi=P - 1)
case_n("EmbedLN-position-ids", "EmbedLayerNormalization", EMB + ["mask", "pos_ids"],
       {"ids": ids, "seg": seg, "mask": mask, "pos_ids": pos_ids}, {**tables, "segt": rand(2, H), "g": g, "b": be},
       {"epsilon": 1e-5}, 2, None, out_types=MI)
case_n("EmbedLN-position-ids-1S", "EmbedLayerNormalization", EMB + ["mask", "pos_ids"],
       {"ids": ids, "seg": seg, "mask": mask, "pos_ids": np.array([[4, 3, 2, 1, 0]], np.int32)},
       {**tables, "segt": rand(2, H), "g": g, "b": be}, {}, 2, None, out_types=MI)


# --- attention --------------------------------------------------------------------------------
def attention_case(id_, b=2, s=4, din=12, heads=3, mask=None, past=None, attn_bias=None, attrs=None, qkv=None,
                   bias=True, outputs=1):
    qkv = qkv or [din, din, din]
    inputs = {"x": rand(b, s, din)}
    consts = {"w": rand(din, sum(qkv), lo=-0.5, hi=0.5), "bias": rand(sum(qkv)) if bias else None}
    extra = {"mask": mask, "past": past, "attn_bias": attn_bias}
    last = max([i for i, v in enumerate(extra.values()) if v is not None], default=-1)
    for i, (k, v) in enumerate(extra.items()):
        if i <= last:
            if v is None:
                consts[k] = None
            else:
                inputs[k] = v
    # Runtime inputs must come first in contrib_model: move the weights behind them by name order.
    ordered = {"x": inputs["x"]}
    attrs = {"num_heads": heads, **(attrs or {})}
    if qkv != [din, din, din]:
        attrs["qkv_hidden_sizes"] = qkv
    names = ["x", "w", "bias" if bias else ""] + [k if extra[k] is not None else "" for k in list(extra)[:last + 1]]
    case_n(id_, "Attention", names, {**ordered, **{k: v for k, v in inputs.items() if k != "x"}}, consts, attrs,
           outputs)


i32 = np.int32
attention_case("Attention-nomask")
attention_case("Attention-mask-lengths", mask=np.array([3, 1], i32))
attention_case("Attention-mask-end-start", mask=np.array([4, 3, 1, 0], i32))
attention_case("Attention-mask-raw", mask=np.array([[1, 1, 0, 1], [1, 0, 0, 0]], i32))
attention_case("Attention-mask-3d", mask=rand(2, 4, 4, dtype=i32, lo=0, hi=1))
attention_case("Attention-mask-all-padding", mask=np.array([[0, 0, 0, 0], [1, 1, 1, 1]], i32))
attention_case("Attention-unidirectional", attrs={"unidirectional": 1})
attention_case("Attention-unidirectional-mask", mask=np.array([[1, 1, 1, 0], [1, 1, 1, 1]], i32),
               attrs={"unidirectional": 1})
attention_case("Attention-scale-filter", mask=np.array([2, 4], i32), attrs={"scale": 0.3, "mask_filter_value": -50.0})
attention_case("Attention-qkv-sizes", qkv=[12, 12, 6], din=10)
attention_case("Attention-bias-BNST", attn_bias=rand(2, 3, 4, 4))
attention_case("Attention-bias-11ST-mask", mask=np.array([[1, 1, 0, 1], [1, 1, 1, 0]], i32),
               attn_bias=rand(1, 1, 4, 4))
attention_case("Attention-past-present", s=1, past=rand(2, 2, 3, 5, 4), outputs=2,
               mask=np.ones((2, 6), i32), attrs={"unidirectional": 1})
attention_case("Attention-past-present-s3", s=3, past=rand(2, 2, 3, 5, 4), outputs=2,
               mask=np.array([[1] * 8, [0, 0] + [1] * 6], i32), attrs={"unidirectional": 1})


def mha_case(id_, b=2, s=3, length=5, heads=2, hsz=4, vsz=3, bias=True, mask=None, attn_bias=None, past=False,
             bnsh=False, attrs=None, outputs=1):
    d, dv = heads * hsz, heads * vsz
    inputs = {"q": rand(b, s, d)}
    if bnsh:
        inputs["k"], inputs["v"] = rand(b, heads, length, hsz), rand(b, heads, length, vsz)
    else:
        inputs["k"], inputs["v"] = rand(b, length, d), rand(b, length, dv)
    names = ["q", "k", "v"]
    consts = {}
    tail = [("bias", rand(2 * d + dv) if bias else None, True), ("mask", mask, False),
            ("attn_bias", attn_bias, False),
            ("past_k", rand(b, heads, 2, hsz) if past else None, False),
            ("past_v", rand(b, heads, 2, vsz) if past else None, False)]
    last = max([i for i, t in enumerate(tail) if t[1] is not None], default=-1)
    for name, v, const in tail[:last + 1]:
        if v is None:
            names.append("")
        else:
            names.append(name)
            (consts if const else inputs)[name] = v
    case_n(id_, "MultiHeadAttention", names, inputs, consts, {"num_heads": heads, **(attrs or {})}, outputs)


mha_case("MHA-plain", bias=False)
mha_case("MHA-bias")
mha_case("MHA-self", length=3, bias=False, attrs={"unidirectional": 1})
mha_case("MHA-mask-lengths", mask=np.array([4, 2], i32))
mha_case("MHA-mask-raw", mask=np.array([[1, 1, 0, 1, 1], [1, 0, 0, 0, 0]], i32))
mha_case("MHA-mask-3d", mask=rand(2, 3, 5, dtype=i32, lo=0, hi=1))
mha_case("MHA-attn-bias", attn_bias=rand(2, 1, 3, 5), attrs={"scale": 0.25})
mha_case("MHA-past-present", past=True, vsz=4, mask=np.array([[1] * 7, [0] + [1] * 6], i32), outputs=3)
mha_case("MHA-bnsh-kv", bnsh=True, vsz=4, bias=False, mask=np.array([5, 3], i32))

case_n("EmbedLN-no-segment", "EmbedLayerNormalization", ["ids", "", "word", "pos", "", "g", "b", "mask"],
       {"ids": ids, "mask": mask}, {**tables, "g": g, "b": be}, {}, 2, None, out_types=MI)
case_n("EmbedLN-no-mask-output", "EmbedLayerNormalization", ["ids", "seg", "word", "pos", "segt", "g", "b"],
       {"ids": ids, "seg": seg}, {**tables, "segt": rand(2, H), "g": g, "b": be}, {}, ["y0", ""], None)

# FusedMatMul: alpha, transA, transB over batched operands.
case_n("FusedMatMul-transB-alpha", "FusedMatMul", ["a", "b"], {"a": rand(2, 3, 4), "b": rand(2, 5, 4)}, {},
       {"transB": 1, "alpha": 0.5}, 1, None)
case_n("FusedMatMul-transA-const", "FusedMatMul", ["a", "w"], {"a": rand(2, 4, 3)}, {"w": rand(4, 6)},
       {"transA": 1}, 1, None)
case_n("FusedMatMul-both", "FusedMatMul", ["a", "b"], {"a": rand(4, 3), "b": rand(5, 4)}, {},
       {"transA": 1, "transB": 1, "alpha": 2.0}, 1, None)


@pytest.mark.parametrize("c", CASES)
def test_op_matches_onnxruntime(c):
    if c[0] == "named":
        run_named(c)
    else:
        run_case(c)


def test_attention_without_bias_is_a_zero_bias():
    """onnxruntime's CPU kernel crashes on an omitted bias; its answer with a zero bias is the oracle."""
    x3, w = rand(2, 4, 12), rand(12, 36)
    attrs = {"num_heads": 3, "unidirectional": 1}
    with_zero = helper.make_node("Attention", ["x", "w", "b"], ["y"], domain=MS, **attrs)
    without = helper.make_node("Attention", ["x", "w"], ["y"], domain=MS, **attrs)
    models = []
    for node, consts in ((with_zero, {"w": w, "b": np.zeros(36, np.float32)}), (without, {"w": w})):
        m = make_model([node], [("x", np.float32, [2, 4, 12])], [("y", np.float32, None)], consts)
        m.opset_import.append(helper.make_opsetid(MS, 1))
        models.append(m)
    expected = ort_run(models[0], {"x": x3})
    check_outputs([mserve.load(models[1].SerializeToString()).predict(x3)], expected, ATT_TOL)


# --- bad input --------------------------------------------------------------------------------
def load_bad(op, inputs, consts=None, attrs=None, outputs=1, domain=MS, out_types=None):
    model, _ = contrib_model(op, inputs, consts, attrs, outputs, domain, out_types=out_types)
    with pytest.raises(mserve.Error) as e:
        mserve.load(model.SerializeToString()).predict(dict(inputs))
    return str(e.value)


def test_bias_gelu_bias_of_wrong_size():
    assert "bias" in load_bad("BiasGelu", {"x": rand(2, 8)}, {"b": rand(7)})


def test_skip_layer_norm_bad_shapes():
    assert "skip" in load_bad("SkipLayerNormalization", {"x": rand(2, 3, 8), "s": rand(2, 4, 8)}, {"g": rand(8)})
    assert "gamma" in load_bad("SkipLayerNormalization", {"x": rand(2, 3, 8), "s": rand(2, 3, 8)}, {"g": rand(6)})
    assert "2-D or 3-D" in load_bad("SkipLayerNormalization", {"x": rand(8), "s": rand(8)}, {"g": rand(8)})


def test_embed_layer_norm_index_out_of_range():
    bad = ids.copy()
    bad[1, 2] = V + 3
    msg = load_bad("EmbedLayerNormalization", {"ids": bad, "seg": seg},
                   {**tables, "segt": rand(2, H), "g": g, "b": be}, outputs=2, out_types=MI)
    assert "out of range" in msg
    msg = load_bad("EmbedLayerNormalization", {"ids": ids, "seg": seg[:, :3]},
                   {**tables, "segt": rand(2, H), "g": g, "b": be}, outputs=2, out_types=MI)
    assert "segment_ids" in msg


def attention_bad(names, inputs, consts, attrs):
    node = helper.make_node("Attention", names, ["y"], domain=MS, **attrs)
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()], [("y", np.float32, None)],
                       consts)
    model.opset_import.append(helper.make_opsetid(MS, 1))
    with pytest.raises(mserve.Error) as e:
        mserve.load(model.SerializeToString()).predict(dict(inputs))
    return str(e.value)


def test_attention_bad_input():
    x3 = rand(2, 4, 12)
    w, bias = rand(12, 36), rand(36)
    assert "weights" in attention_bad(["x", "w", "b"], {"x": x3}, {"w": rand(10, 36), "b": bias}, {"num_heads": 3})
    assert "divisible" in attention_bad(["x", "w", "b"], {"x": x3}, {"w": w, "b": bias}, {"num_heads": 5})
    assert "mask_index" in attention_bad(["x", "w", "b", "m"], {"x": x3, "m": np.ones((2, 5), i32)},
                                         {"w": w, "b": bias}, {"num_heads": 3})
    assert "4-D" in attention_bad(["x", "w", "b", "m"], {"x": x3, "m": np.ones((2, 1, 4, 4), i32)},
                                  {"w": w, "b": bias}, {"num_heads": 3})
    assert "input must be 3-D" in attention_bad(["x", "w", "b"], {"x": rand(8, 12)}, {"w": w, "b": bias},
                                                {"num_heads": 3})


def test_multi_head_attention_bad_input():
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain=MS, num_heads=2)
    inputs = {"q": rand(2, 3, 8), "k": rand(2, 5, 6), "v": rand(2, 5, 8)}
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()], [("y", np.float32, None)])
    model.opset_import.append(helper.make_opsetid(MS, 1))
    with pytest.raises(mserve.Error, match="key"):
        mserve.load(model.SerializeToString()).predict(inputs)


def test_fused_matmul_trans_batch_is_refused():
    node = helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain=MS, transBatchA=1)
    model = make_model([node], [("a", np.float32, [2, 3, 4]), ("b", np.float32, [4, 5])], [("y", np.float32, None)])
    model.opset_import.append(helper.make_opsetid(MS, 1))
    with pytest.raises(mserve.Error, match="transBatchA"):
        mserve.load(model.SerializeToString()).predict({"a": rand(2, 3, 4), "b": rand(4, 5)})


# --- models rewritten by onnxruntime's transformer optimizer ---------------------------------
MODELS = pathlib.Path(__file__).parents[1] / "models"


def optimized(name, model_type, tmp_path, ort_level1=True, **options):
    """tests/models/<name>.onnx through onnxruntime's transformer optimizer: onnxruntime's basic
    graph optimizations first (what optimize_model's default opt_level 1 runs; done here directly,
    as optimize_model imports torch for it), then the Python fusions with FusionOptions `options`;
    the saved file, loaded."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    src = str(MODELS / f"{name}.onnx")
    if ort_level1:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(tmp_path / "level1.onnx")
        ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        src = so.optimized_model_filepath
    opts = FusionOptions(model_type)
    for k, v in options.items():
        if k == "raw_mask":
            opts.use_raw_attention_mask(v)
        else:
            setattr(opts, k, v)
    m = optimize_model(src, model_type=model_type, num_heads=4, hidden_size=0, opt_level=0,
                       optimization_options=opts)
    path = tmp_path / "optimized.onnx"
    m.save_model_to_file(str(path))  # as users save it: this adds the com.microsoft opset import
    return onnx.load(str(path))


def bert_feeds(rng, batch, length):
    mask = np.ones((batch, length), np.int64)
    mask[0, length - 3:] = 0  # right padding, which the 1-D mask_index form requires
    return {"input_ids": rng.integers(0, 50, (batch, length)).astype(np.int64), "attention_mask": mask,
            "token_type_ids": rng.integers(0, 2, (batch, length)).astype(np.int64)}


def contrib_ops(model):
    return {n.op_type for n in model.graph.node if n.domain == MS}


def compare(model, feeds, reference=None, tol=None):
    """mserve's outputs of `model` against onnxruntime's on the same model and, when given, on the
    unoptimized `reference`."""
    import onnxruntime as ort
    got = mserve.load(model.SerializeToString(), threads=2).predict(feeds)
    for ref in [model] + ([onnx.load(str(reference))] if reference else []):
        sess = ort.InferenceSession(ref.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        expected = sess.run(None, feeds)
        check_outputs([got[n] if isinstance(got, dict) else got for n in names], expected, tol or ATT_TOL)


@pytest.mark.parametrize("variant,options,ops", [
    ("default", {}, {"EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu"}),
    ("raw-mask", {"raw_mask": True}, {"EmbedLayerNormalization", "Attention", "SkipLayerNormalization"}),
    ("mha", {"use_multi_head_attention": True, "raw_mask": True},
     {"EmbedLayerNormalization", "MultiHeadAttention", "SkipLayerNormalization", "BiasGelu"}),
])
def test_optimized_bert_encoder(tmp_path, variant, options, ops):
    model = optimized("bert_encoder", "bert", tmp_path, **options)
    assert ops <= contrib_ops(model), contrib_ops(model)
    feeds = bert_feeds(np.random.default_rng(3), 2, 9)
    compare(model, feeds, MODELS / "bert_encoder.onnx", {"rtol": 1e-4, "atol": 1e-4})


def test_optimized_bert_encoder_gelu_approximation(tmp_path):
    """FastGelu's tanh form differs from the erf GELU of the source model: only onnxruntime on the
    optimized model is the oracle."""
    model = optimized("bert_encoder", "bert", tmp_path, ort_level1=False, enable_gelu_approximation=True)
    assert "FastGelu" in contrib_ops(model)
    compare(model, bert_feeds(np.random.default_rng(4), 3, 6))


def test_optimized_gpt_decoder(tmp_path):
    model = optimized("gpt_decoder", "gpt2", tmp_path)
    assert {"SkipLayerNormalization", "FastGelu"} <= contrib_ops(model), contrib_ops(model)
    feeds = {"input_ids": np.random.default_rng(5).integers(0, 50, (2, 7)).astype(np.int64)}
    compare(model, feeds)


@pytest.mark.parametrize("name,model_type,ops", [
    ("dynamo_bert_base", "bert", {"SkipLayerNormalization", "BiasGelu"}),
    ("dynamo_distilbert", "bert", {"EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu"}),
    ("dynamo_gpt2_past", "gpt2", {"SkipLayerNormalization", "FastGelu"}),
    ("dynamo_vit_b_16", "vit", {"SkipLayerNormalization", "BiasGelu"}),
])
def test_optimized_dynamo_exports(tmp_path, name, model_type, ops):
    """torch's dynamo exports of transformers / torchvision models (tests/models/dynamo_*) after the
    transformer optimizer: against the framework's own outputs (relative L2 1e-4, as the zoo) and
    against onnxruntime on the optimized model."""
    model = optimized(name, model_type, tmp_path)
    assert ops <= contrib_ops(model), contrib_ops(model)
    data = np.load(MODELS / f"{name}.npz")
    for i in range(2):
        feeds = {k.split(":", 2)[2]: data[k] for k in data.files if k.startswith(f"{i}:in:")}
        want = {k.split(":", 2)[2]: data[k] for k in data.files if k.startswith(f"{i}:out:")}
        got = mserve.load(model.SerializeToString(), threads=2).predict(feeds, outputs=list(want))
        for out, w in want.items():
            err = np.linalg.norm(got[out] - w) / np.linalg.norm(w)
            assert err < 1e-4, f"{name} set {i} {out}: relative L2 {err:.2e} against torch"
        compare(model, feeds)


@pytest.mark.parametrize("weight_type,per_channel", [("s8", False), ("u8", True), ("s8", True)])
def test_optimized_then_quantized_bert(tmp_path, weight_type, per_channel):
    """onnxruntime's int8 recipe for BERT: its transformer optimizer, then quantize_dynamic, which
    turns Attention into QAttention and EmbedLayerNormalization into QEmbedLayerNormalization.
    Against onnxruntime on the same model (where its uint8 x int8 products saturate, on the twin with
    uint8 weights), and both within the same distance of the float32 model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    src, dst = tmp_path / "optimized.onnx", tmp_path / "q.onnx"
    onnx.save(optimized("bert_encoder", "bert", tmp_path), str(src))
    quantize_dynamic(str(src), str(dst), per_channel=per_channel,
                     weight_type={"s8": QuantType.QInt8, "u8": QuantType.QUInt8}[weight_type],
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    q = onnx.load(str(dst))
    assert {"QAttention", "QEmbedLayerNormalization"} <= contrib_ops(q), contrib_ops(q)
    oracle = (unsaturated_twin(q) if ort_saturates_u8s8() else None) or q
    feeds = bert_feeds(np.random.default_rng(8), 2, 9)
    got = mserve.load(str(dst), threads=2).predict(feeds)
    names = [o.name for o in q.graph.output]
    want = dict(zip(names, ort_run(oracle, feeds)))
    floats = dict(zip(names, ort_run(onnx.load(str(MODELS / "bert_encoder.onnx")), feeds)))
    for name in names:
        g, w, f = got[name], want[name], floats[name]
        # the same integers, scaled after (onnxruntime) or before (mserve) the sums: float rounding
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=name)
        err, ort_err = (np.linalg.norm(v - f) / np.linalg.norm(f) for v in (g, w))
        assert err <= ort_err * 1.01 + 1e-6, f"{name}: {err:.3g} from float32, onnxruntime {ort_err:.3g}"


def test_quantized_contrib_ops_need_their_scales():
    node = helper.make_node("QAttention", ["x", "w", "b", "xs"], ["y"], domain=MS, num_heads=2)
    model = make_model([node], [("x", np.uint8, [1, 3, 4])], [("y", np.float32, None)],
                       {"w": np.ones((4, 12), np.int8), "b": np.zeros(12, np.float32), "xs": np.float32(0.1)})
    model.opset_import.append(helper.make_opsetid(MS, 1))
    with pytest.raises(mserve.Error, match="weight_scale"):
        mserve.load(model.SerializeToString())
