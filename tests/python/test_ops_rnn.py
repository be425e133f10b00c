"""Recurrent layers (RNN, GRU, LSTM; kernels/ops/rnn.cc) on one-node models, against onnxruntime (float32: rtol 1e-4,
atol 1e-5)."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import mserve
from op_harness import check_outputs, make_model, ort_run, random_inputs

uniform = random_inputs(0)
RNG = uniform.rng

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
N_OUT = {"RNN": 2, "GRU": 2, "LSTM": 3}


def rand(*shape, dtype=np.float32, scale=0.5):
    return uniform(*shape, dtype=dtype, lo=-scale, hi=scale)


CASES = []


def case(id_, op, seq=5, batch=3, inp=4, hidden=6, direction="forward", layout=0, bias=True, lens=None,
         init_h=False, init_c=False, peep=False, outputs=None, opsets=(14,), dtype=np.float32, attrs=None,
         const_weights=False):
    """Builds the inputs of one case; lens: a list of batch lengths (sequence_lens), or None."""
    for opset in opsets:
        CASES.append(pytest.param(dict(op=op, seq=seq, batch=batch, inp=inp, hidden=hidden, direction=direction,
                                       layout=layout, bias=bias, lens=lens, init_h=init_h, init_c=init_c, peep=peep,
                                       outputs=outputs, opset=opset, dtype=dtype, attrs=attrs or {},
                                       const_weights=const_weights), id=f"{id_}-op{opset}"))


def gen_inputs(spec):
    G, H = GATES[spec["op"]], spec["hidden"]
    nd = 2 if spec["direction"] == "bidirectional" else 1
    dt = spec["dtype"]
    S, B, I = spec["seq"], spec["batch"], spec["inp"]
    layout = spec["layout"]
    inputs = {"X": rand(B, S, I, dtype=dt, scale=1.0) if layout else rand(S, B, I, dtype=dt, scale=1.0),
              "W": rand(nd, G * H, I, dtype=dt), "R": rand(nd, G * H, H, dtype=dt)}
    if spec["bias"]:
        inputs["B"] = rand(nd, 2 * G * H, dtype=dt)
    if spec["lens"] is not None:
        inputs["sequence_lens"] = np.array(spec["lens"], np.int32)
    state = (B, nd, H) if layout else (nd, B, H)
    if spec["init_h"]:
        inputs["initial_h"] = rand(*state, dtype=dt)
    if spec["init_c"]:
        inputs["initial_c"] = rand(*state, dtype=dt)
    if spec["peep"]:
        inputs["P"] = rand(nd, 3 * H, dtype=dt)
    return inputs


def build(spec, inputs):
    """The one-node model for `spec` over `inputs` (a dict: W, R, B, P become constants with const_weights)."""
    op, H = spec["op"], spec["hidden"]
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h"] + (["initial_c", "P"] if op == "LSTM" else [])
    names = [n if n in inputs else "" for n in order]
    while names and names[-1] == "":
        names.pop()
    outs = spec["outputs"] or ["Y", "Y_h", "Y_c"][:N_OUT[op]]
    attrs = dict(hidden_size=H, direction=spec["direction"], **spec["attrs"])
    if spec["opset"] >= 14 and spec["layout"]:
        attrs["layout"] = spec["layout"]
    node = helper.make_node(op, names, outs, **attrs)
    inputs = dict(inputs)
    consts = {k: inputs.pop(k) for k in ["W", "R", "B", "P"] if spec["const_weights"] and k in inputs}
    out_names = [o for o in outs if o]
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, 0, None) for o in out_names], consts, opset=spec["opset"])
    return model, inputs, out_names


def oracle(spec, inputs):
    """onnxruntime's outputs. Its CPU kernels lack layout=1 and float64: those cases run the
    layout-0 float32 twin (inputs/outputs transposed and cast)."""
    inputs = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in inputs.items()}
    if spec["layout"]:
        inputs["X"] = inputs["X"].transpose(1, 0, 2).copy()
        for k in ["initial_h", "initial_c"]:
            if k in inputs:
                inputs[k] = inputs[k].transpose(1, 0, 2).copy()
    model, feeds, out_names = build(dict(spec, layout=0), inputs)
    outs = ort_run(model, feeds)
    res = []
    for name, o in zip(out_names, outs):
        if spec["layout"]:
            o = o.transpose(2, 0, 1, 3) if name == "Y" else o.transpose(1, 0, 2)
        res.append(o.astype(spec["dtype"]))
    return res


for op in ["RNN", "GRU", "LSTM"]:
    case(op + "-defaults", op, bias=False, opsets=(7, 14, 22) if op != "RNN" else (7, 14))
    case(op + "-bias", op)
    case(op + "-reverse", op, direction="reverse", init_h=True)
    case(op + "-bidir", op, direction="bidirectional", init_h=True, init_c=op == "LSTM")
    case(op + "-lens", op, lens=[5, 2, 4], init_h=True)
    case(op + "-lens-reverse", op, lens=[3, 5, 1], direction="reverse")
    case(op + "-lens-bidir", op, lens=[1, 5, 3], direction="bidirectional", init_h=True, init_c=op == "LSTM")
    case(op + "-batchwise", op, layout=1, lens=[4, 5, 2], direction="bidirectional", init_h=True)
    case(op + "-batchwise-fwd", op, layout=1, init_h=True)
    case(op + "-only-Yh", op, outputs=["", "Y_h"])
    case(op + "-only-Y", op, outputs=["Y"])
    case(op + "-f64", op, dtype=np.float64, direction="bidirectional")
    case(op + "-batch1", op, batch=1, seq=7, inp=3, hidden=2)
    case(op + "-clip", op, attrs={"clip": 0.3})
    case(op + "-const-weights", op, const_weights=True, direction="bidirectional")

case("RNN-relu", "RNN", attrs={"activations": ["Relu"]})
case("RNN-bidir-acts", "RNN", direction="bidirectional", attrs={"activations": ["Relu", "Sigmoid"]})
case("GRU-lbr", "GRU", attrs={"linear_before_reset": 1})
case("GRU-lbr-bidir-lens", "GRU", attrs={"linear_before_reset": 1}, direction="bidirectional", lens=[2, 5, 4],
     init_h=True)
case("GRU-acts", "GRU", attrs={"activations": ["HardSigmoid", "Tanh"], "activation_alpha": [0.3],
                               "activation_beta": [0.4]})
case("LSTM-peepholes", "LSTM", peep=True, init_h=True, init_c=True)
case("LSTM-peepholes-bidir", "LSTM", peep=True, init_h=True, init_c=True, direction="bidirectional",
     lens=[5, 3, 1])
case("LSTM-input-forget", "LSTM", attrs={"input_forget": 1}, peep=True, init_c=True)
case("LSTM-acts", "LSTM", attrs={"activations": ["HardSigmoid", "Tanh", "Tanh"]})
case("LSTM-acts-bidir", "LSTM", direction="bidirectional",
     attrs={"activations": ["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Tanh", "Softsign"],
            "activation_alpha": [0.25], "activation_beta": [0.45]})
case("LSTM-batchwise-peep", "LSTM", layout=1, peep=True, init_h=True, init_c=True, lens=[2, 5, 3])
case("LSTM-big", "LSTM", seq=12, batch=9, inp=33, hidden=40, direction="bidirectional")


@pytest.mark.parametrize("spec", CASES)
def test_recurrent_matches_onnxruntime(spec):
    all_inputs = gen_inputs(spec)
    model, inputs, out_names = build(spec, all_inputs)
    expected = oracle(spec, all_inputs)
    m = mserve.load(model.SerializeToString(), threads=2)
    got = m.predict(dict(inputs))
    got = [got] if len(out_names) == 1 else [got[o] for o in out_names]
    check_outputs(got, expected)


def test_lstm_float16_matches_float32():
    spec = dict(op="LSTM", seq=4, batch=2, inp=3, hidden=5, direction="bidirectional", layout=0, bias=True,
                lens=None, init_h=True, init_c=True, peep=False, outputs=None, opset=14, dtype=np.float16,
                attrs={}, const_weights=False)
    inputs = gen_inputs(spec)
    model, inputs, out_names = build(spec, inputs)
    got = mserve.load(model.SerializeToString()).predict(dict(inputs))
    f32 = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in inputs.items()}
    expected = oracle(dict(spec, dtype=np.float32), f32)
    for o, e in zip(out_names, expected):
        assert got[o].dtype == np.float16
        np.testing.assert_allclose(got[o].astype(np.float32), e, rtol=1e-2, atol=1e-2)


def test_bilstm_text_classifier():
    """A PyTorch-like BiLSTM text classifier: embeddings [seq, batch, emb] with padded lengths, a
    bidirectional LSTM, the final states of both directions concatenated, then a linear layer."""
    S, B, E, H, C = 20, 6, 16, 24, 4
    lens = np.array([20, 13, 7, 20, 1, 16], np.int32)
    x = RNG.normal(size=(S, B, E)).astype(np.float32)
    for b, n in enumerate(lens):
        x[n:, b] = 0  # padding
    W, R, Bias = rand(2, 4 * H, E), rand(2, 4 * H, H), rand(2, 8 * H)
    fc_w, fc_b = rand(2 * H, C), rand(C)
    nodes = [
        helper.make_node("LSTM", ["x", "W", "R", "B", "lens"], ["Y", "Y_h"], hidden_size=H,
                         direction="bidirectional"),
        helper.make_node("Transpose", ["Y_h"], ["hT"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["hT", "shape"], ["feat"]),
        helper.make_node("Gemm", ["feat", "fc_w", "fc_b"], ["logits"]),
    ]
    consts = {"W": W, "R": R, "B": Bias, "fc_w": fc_w, "fc_b": fc_b, "shape": np.array([B, 2 * H], np.int64)}
    model = make_model(nodes, [("x", np.float32, [S, B, E]), ("lens", np.int32, [B])],
                       [("logits", TensorProto.FLOAT, [B, C]), ("Y", TensorProto.FLOAT, [S, 2, B, H])], consts,
                       opset=14)
    feeds = {"x": x, "lens": lens}
    expected = ort_run(model, feeds)
    m = mserve.load(model.SerializeToString(), threads=2)
    got = m.predict(feeds)
    check_outputs([got["logits"], got["Y"]], expected)
    # Padded steps of Y are zero.
    assert not got["Y"][7:, :, 2].any() and not got["Y"][1:, :, 4].any()
    # Batch-first (layout=1) variant of the same layer gives the same final states.
    node = helper.make_node("LSTM", ["xb", "W", "R", "B", "lens"], ["", "Y_h"], hidden_size=H,
                            direction="bidirectional", layout=1)
    mb = make_model([node], [("xb", np.float32, [B, S, E]), ("lens", np.int32, [B])],
                    [("Y_h", TensorProto.FLOAT, [B, 2, H])], {"W": W, "R": R, "B": Bias}, opset=14)
    yb = mserve.load(mb.SerializeToString()).predict({"xb": x.transpose(1, 0, 2).copy(), "lens": lens})
    # (onnxruntime lacks layout=1: compare with the [seq, batch] run's Y_h, transposed.)
    model_h = make_model([helper.make_node("LSTM", ["x", "W", "R", "B", "lens"], ["", "Y_h"], hidden_size=H,
                                           direction="bidirectional")],
                         [("x", np.float32, [S, B, E]), ("lens", np.int32, [B])],
                         [("Y_h", TensorProto.FLOAT, [2, B, H])], {"W": W, "R": R, "B": Bias}, opset=14)
    np.testing.assert_allclose(yb, ort_run(model_h, feeds)[0].transpose(1, 0, 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op,attrs,msg", [
    ("LSTM", {"direction": "sideways"}, "direction"),
    ("GRU", {"activations": ["Sigmoid", "Swish"]}, "activation"),
])
def test_recurrent_bad_attributes(op, attrs, msg):
    H = 2
    node = helper.make_node(op, ["X", "W", "R"], ["Y"], hidden_size=H, **attrs)
    G = GATES[op]
    model = make_model([node], [("X", np.float32, [3, 1, 2])], [("Y", TensorProto.FLOAT, None)],
                       {"W": rand(1, G * H, 2), "R": rand(1, G * H, H)}, opset=14)
    with pytest.raises(Exception, match=msg):
        mserve.load(model.SerializeToString()).predict({"X": rand(3, 1, 2)})


def test_recurrent_bad_sequence_lens():
    node = helper.make_node("RNN", ["X", "W", "R", "", "lens"], ["Y"], hidden_size=2)
    model = make_model([node], [("X", np.float32, [3, 2, 2]), ("lens", np.int32, [2])],
                       [("Y", TensorProto.FLOAT, None)], {"W": rand(1, 2, 2), "R": rand(1, 2, 2)}, opset=14)
    with pytest.raises(Exception, match="sequence_lens"):
        mserve.load(model.SerializeToString()).predict({"X": rand(3, 2, 2), "lens": np.array([1, 4], np.int32)})


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("op,gates,attrs", [("LSTM", 4, {}), ("GRU", 3, {"linear_before_reset": 1}),
                                             ("GRU", 3, {}), ("RNN", 1, {})])
def test_constant_weights_on_the_packed_engine(op, gates, attrs, threads):
    # Constant float32 W and R run their products on oneDNN from ~128k multiply-adds (batch 64,
    # hidden 48 here); smaller batches stay on Eigen. Both against onnxruntime.
    rng = np.random.default_rng(3)
    H, I = 48, 40
    consts = {"W": (rng.standard_normal((2, gates * H, I)) * 0.3).astype(np.float32),
              "R": (rng.standard_normal((2, gates * H, H)) * 0.3).astype(np.float32),
              "B": (rng.standard_normal((2, 2 * gates * H)) * 0.1).astype(np.float32)}
    node = helper.make_node(op, ["x", "W", "R", "B"], ["y", "yh"], hidden_size=H, direction="bidirectional",
                                 **attrs)
    m = make_model([node], [("x", np.float32, ["s", "b", I])], [("y", np.float32, None), ("yh", np.float32, None)],
                   consts, opset=14)
    model = mserve.load(m.SerializeToString(), threads=threads)
    for s, b in [(5, 64), (3, 2), (7, 64)]:
        x = rng.standard_normal((s, b, I)).astype(np.float32)
        got, want = model.predict(x), ort_run(m, {"x": x})
        np.testing.assert_allclose(got["y"], want[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got["yh"], want[1], rtol=1e-4, atol=1e-5)


# --- com.microsoft DynamicQuantizeLSTM (onnxruntime's quantize_dynamic of an LSTM) ----------------

def quantized_lstm(direction, weight_type, per_channel, tmp_path, H=24, I=16, lens=True, init=True):
    """An LSTM with constant weights and what onnxruntime's quantize_dynamic makes of it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    nd = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(11)
    consts = {"W": (rng.standard_normal((nd, 4 * H, I)) * 0.3).astype(np.float32),
              "R": (rng.standard_normal((nd, 4 * H, H)) * 0.3).astype(np.float32),
              "B": (rng.standard_normal((nd, 8 * H)) * 0.1).astype(np.float32)}
    names = ["x", "W", "R", "B", "lens" if lens else "", "h0" if init else "", "c0" if init else ""]
    node = helper.make_node("LSTM", names, ["y", "yh", "yc"], hidden_size=H, direction=direction)
    ins = [("x", np.float32, ["s", "b", I])] + ([("lens", np.int32, ["b"])] if lens else []) + \
          ([("h0", np.float32, [nd, "b", H]), ("c0", np.float32, [nd, "b", H])] if init else [])
    m = make_model([node], ins, [(o, np.float32, None) for o in ("y", "yh", "yc")], consts, opset=14)
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    src.write_bytes(m.SerializeToString())
    quantize_dynamic(str(src), str(dst), weight_type={"s8": QuantType.QInt8, "u8": QuantType.QUInt8}[weight_type],
                     per_channel=per_channel)
    import onnx
    q = onnx.load(str(dst))
    assert [n.op_type for n in q.graph.node] == ["DynamicQuantizeLSTM"], [n.op_type for n in q.graph.node]
    return m, q


def dequantized_twin(float_model, qmodel):
    """The float LSTM whose weights are exactly the quantized model's, dequantized: what mserve computes."""
    from onnx import numpy_helper
    init = {t.name: numpy_helper.to_array(t) for t in qmodel.graph.initializer}
    node = qmodel.graph.node[0]

    def deq(qi, si, zi):
        q, s = init[node.input[qi]].astype(np.int64), init[node.input[si]].astype(np.float32)
        z = init[node.input[zi]].astype(np.int64) if len(node.input) > zi and node.input[zi] else np.zeros_like(q[0, 0])
        if s.ndim == 1:                         # per direction
            s, z = s[:, None, None], np.reshape(z, (-1, 1, 1))
        else:                                   # per gate row [dirs, 4H]: the last axis of q
            s, z = s[:, None, :], z[:, None, :]
        return ((q - z).astype(np.float32) * s).transpose(0, 2, 1).copy()

    twin = float_model.__deepcopy__()
    for t in twin.graph.initializer:
        if t.name in ("W", "R"):
            t.CopyFrom(numpy_helper.from_array(deq(1, 8, 9) if t.name == "W" else deq(2, 10, 11), t.name))
    return twin


def lstm_feeds(rng, nd, S=9, B=5, I=16, H=24):
    return {"x": rng.standard_normal((S, B, I)).astype(np.float32),
            "lens": np.array([9, 4, 1, 9, 6][:B], np.int32),
            "h0": (rng.standard_normal((nd, B, H)) * 0.5).astype(np.float32),
            "c0": (rng.standard_normal((nd, B, H)) * 0.5).astype(np.float32)}


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("direction,weight_type,per_channel", [
    ("forward", "s8", False), ("bidirectional", "s8", True), ("bidirectional", "u8", False),
    ("reverse", "u8", True)])
def test_dynamic_quantize_lstm(direction, weight_type, per_channel, optimize, tmp_path):
    """Exactly the LSTM over the dequantized weights (onnxruntime on that float twin, 1e-4 / 1e-5);
    and against onnxruntime's own DynamicQuantizeLSTM, which also rounds X and every hidden state
    to uint8 at run time: mserve's error against the float model may not exceed onnxruntime's."""
    fm, qm = quantized_lstm(direction, weight_type, per_channel, tmp_path)
    nd = 2 if direction == "bidirectional" else 1
    feeds = lstm_feeds(np.random.default_rng(5), nd)
    model = mserve.load(qm.SerializeToString(), optimize=optimize, threads=2)
    assert "DynamicQuantizeLSTM" in model._s.node_ops
    got = model.predict(feeds)
    exact = ort_run(dequantized_twin(fm, qm), feeds)
    ort_q = ort_run(qm, feeds)
    floats = ort_run(fm, feeds)
    for i, name in enumerate(("y", "yh", "yc")):
        np.testing.assert_allclose(got[name], exact[i], rtol=1e-4, atol=1e-5, err_msg=name)
        ms_err = np.linalg.norm(got[name] - floats[i]) / np.linalg.norm(floats[i])
        ort_err = np.linalg.norm(ort_q[i] - floats[i]) / np.linalg.norm(floats[i])
        assert ms_err <= ort_err + 1e-6, f"{name}: {ms_err:.3g} vs onnxruntime's {ort_err:.3g}"
        assert ms_err < 0.05, name             # 8-bit weights: ~1% of the float model's values


def test_dynamic_quantize_lstm_weights_as_inputs():
    """Weights that are not constants are dequantized on every call (same answers)."""
    H, I, nd = 5, 3, 2
    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, (nd, I, 4 * H), dtype=np.int8)
    r = rng.integers(-128, 128, (nd, H, 4 * H), dtype=np.int8)
    ws, rs = np.float32([0.01, 0.02]), (rng.random((nd, 4 * H)) * 0.01 + 0.001).astype(np.float32)
    wz, rz = np.int8([3, -2]), rng.integers(-5, 5, (nd, 4 * H), dtype=np.int8)
    ins = ["x", "w", "r", "", "", "", "", "", "ws", "wz", "rs", "rz"]  # W_scale is input 8
    node = helper.make_node("DynamicQuantizeLSTM", ins, ["y"], domain="com.microsoft", hidden_size=H,
                            direction="bidirectional")
    vals = {"w": w, "r": r, "ws": ws, "wz": wz, "rs": rs, "rz": rz}
    x = rng.standard_normal((4, 2, I)).astype(np.float32)
    graph_inputs = make_model([node], [("x", np.float32, [4, 2, I])] + [(k, v.dtype, list(v.shape)) for k, v in
                                                                        vals.items()], [("y", np.float32, None)])
    graph_inputs.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    consts = make_model([node], [("x", np.float32, [4, 2, I])], [("y", np.float32, None)], vals)
    consts.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    a = mserve.load(graph_inputs.SerializeToString()).predict({"x": x, **vals})
    b = mserve.load(consts.SerializeToString()).predict({"x": x})
    # naive reference of the dequantized weights through the float LSTM of onnxruntime
    W = ((w.astype(np.int64) - wz[:, None, None]) * ws[:, None, None]).astype(np.float32).transpose(0, 2, 1)
    R = ((r.astype(np.int64) - rz[:, None, :]) * rs[:, None, :]).astype(np.float32).transpose(0, 2, 1)
    ref = make_model([helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=H, direction="bidirectional")],
                     [("x", np.float32, [4, 2, I])], [("y", np.float32, None)],
                     {"W": W.copy(), "R": R.copy()}, opset=14)
    want = ort_run(ref, {"x": x})[0]
    np.testing.assert_allclose(a, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("change,msg", [
    (lambda v: v.update(w=v["w"].astype(np.int16)), "W has dtype int16"),
    (lambda v: v.update(w=v["w"][:, :2]), r"W has shape \[2, 2, 20\], expected \[2, 3, 20\]"),
    (lambda v: v.update(ws=np.float32([0.1, 0.2, 0.3])), r"W_scale has shape \[3\]"),
    (lambda v: v.update(rz=v["rz"].astype(np.uint8)), "R_zero_point has dtype uint8"),
    (lambda v: v.pop("rs"), "R_scale is required"),
])
def test_dynamic_quantize_lstm_bad_inputs(change, msg):
    H, I = 5, 3
    rng = np.random.default_rng(4)
    vals = {"w": rng.integers(-9, 9, (2, I, 4 * H), dtype=np.int8),
            "r": rng.integers(-9, 9, (2, H, 4 * H), dtype=np.int8),
            "ws": np.float32([0.1, 0.2]), "wz": np.int8([0, 0]), "rs": np.float32([0.1, 0.2]), "rz": np.int8([0, 1])}
    change(vals)
    order = ["w", "r", "", "", "", "", "", "ws", "wz", "rs", "rz"]       # inputs 1-11
    node = helper.make_node("DynamicQuantizeLSTM", ["x"] + [k if k in vals else "" for k in order], ["y"],
                            domain="com.microsoft", hidden_size=H, direction="bidirectional")
    m = make_model([node], [("x", np.float32, [4, 2, I])] + [(k, v.dtype, list(v.shape)) for k, v in vals.items()],
                   [("y", np.float32, None)])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(mserve.InvalidArgument, match=msg):
        mserve.load(m.SerializeToString()).predict({"x": rng.standard_normal((4, 2, I)).astype(np.float32), **vals})
