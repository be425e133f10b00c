"""The model zoo (tests/models) quantized with onnxruntime's own quantizer (onnxruntime.quantization),
as users do before serving: static QDQ and QOperator formats (uint8/int8/uint16 activations, int8/uint8
weights, per tensor and per channel, symmetric or not, reduce_range, MinMax/Entropy/Percentile
calibration on the stored input sets) and dynamic quantization. Each quantized model runs in mserve
and in onnxruntime on the same inputs.

Tolerance. Both runtimes compute the same integer arithmetic, but not always in the same order:
onnxruntime fuses QDQ groups into integer kernels (QLinearConv, QLinearMatMul, ...) while mserve runs
DequantizeLinear -> float op -> QuantizeLinear, and float sums in another order can land a
requantized value on the other side of a rounding tie. One such flip moves an activation by one
step of its scale, and later layers carry it on. So the float outputs must agree within a few
quantization steps of the output's scale (OUT_STEPS, where the output comes from a
DequantizeLinear), their relative L2 difference must be small (REL_L2_VS_ORT), and the top class
must agree wherever onnxruntime's margin between the two best classes exceeds the difference
bound. Against the float32 model (the outputs the zoo stores), mserve's relative L2 error is
printed beside onnxruntime's and may not be much worse than it.

Where mserve runs a convolution as one int8 convolution (NhwcQLinearConv: QOperator QLinearConv, or
a QDQ Conv between DequantizeLinear and QuantizeLinear, on CPUs with AVX2), it requantizes the exact
integer sum with one float multiply, as a fused int8 kernel does, where the graph as written sums
dequantized floats and divides: a value within a float ulp of a rounding tie lands on the other
side, and a small random-weight network can amplify one such flip (in MobileNetV3-small with
uint8 activations one value of 1,152 at the 16th conv moves the logits by 14% relative L2). For
those models the comparison with onnxruntime is loose (INT8_CONV_VS_ORT, which a wrong scale, zero
point or bias exceeds many times over); the error against the float32 model (no worse than
onnxruntime's) and the confident labels carry the check; the single-conv cases in test_ops_quant.py
compare them with onnxruntime exactly. The same flips happen where both run float convolutions
between DequantizeLinear and QuantizeLinear (CPUs without AVX2) but sum in another order, so
MobileNetV3-small is checked that way on every CPU (TIE_AMPLIFIERS).

Where onnxruntime's uint8 x int8 kernels saturate (x86 CPUs without VNNI; probed at run time), its
answer is not the model's: it then runs a twin of the model whose int8 weights are stored as uint8
(w + 128 with zero point + 128, the same integer arithmetic), which its kernels compute exactly."""
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import mserve
from op_harness import ort_saturates_u8s8, unsaturated_twin

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

ZOO = Path(__file__).resolve().parent.parent / "models"
OUT_STEPS = 6            # |mserve - onnxruntime| <= OUT_STEPS * output scale (outputs of a DequantizeLinear)
REL_L2_VS_ORT = 0.03     # relative L2 of mserve against onnxruntime, static quantization
REL_L2_VS_ORT_DYNAMIC = 1e-4  # dynamic: float activations, exact integer products, float epilogue
# Dynamic quantization of an LSTM (com.microsoft DynamicQuantizeLSTM): mserve runs the float cell over
# the dequantized weights, onnxruntime's kernel also rounds X and each step's hidden state to uint8:
# they differ by that rounding carried through the steps, which is onnxruntime's own error against
# the float32 model (2.5e-2 to 6.5e-2 on the BiLSTM; mserve's is 2e-3 to 7e-3). So the bound against
# onnxruntime is loose and mserve's error against the float32 model may not exceed onnxruntime's.
REL_L2_VS_ORT_DYNAMIC_LSTM = 0.1
INT8_CONV_VS_ORT = 0.25  # relative L2 with int8 convolutions (see above)
TIE_AMPLIFIERS = {"mobilenet_v3_small"}


def load_sets(name):
    """[(inputs, float outputs)] of the zoo model."""
    data = np.load(ZOO / f"{name}.npz")
    sets = {}
    for key in data.files:
        if key.startswith(("meta:", "zipmap:")):
            continue
        i, kind, tensor = key.split(":", 2)
        sets.setdefault(int(i), ({}, {}))[0 if kind == "in" else 1][tensor] = data[key]
    return [sets[i] for i in sorted(sets)]


class Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


S8, U8, U16 = QuantType.QInt8, QuantType.QUInt8, QuantType.QUInt16
SETTINGS = {
    "qdq-u8s8": ("static", dict(quant_format=QuantFormat.QDQ, activation_type=U8, weight_type=S8)),
    "qdq-s8s8-perchannel-sym": ("static", dict(quant_format=QuantFormat.QDQ, activation_type=S8, weight_type=S8,
                                               per_channel=True,
                                               extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})),
    "qdq-u8u8-reducerange-asym": ("static", dict(quant_format=QuantFormat.QDQ, activation_type=U8, weight_type=U8,
                                                 reduce_range=True, extra_options={"WeightSymmetric": False})),
    "qdq-u16s8": ("static", dict(quant_format=QuantFormat.QDQ, activation_type=U16, weight_type=S8)),
    "qdq-entropy": ("static", dict(quant_format=QuantFormat.QDQ, calibrate_method=CalibrationMethod.Entropy)),
    "qdq-percentile": ("static", dict(quant_format=QuantFormat.QDQ, calibrate_method=CalibrationMethod.Percentile)),
    "qop-u8s8": ("static", dict(quant_format=QuantFormat.QOperator, activation_type=U8, weight_type=S8)),
    "qop-s8s8-perchannel": ("static", dict(quant_format=QuantFormat.QOperator, activation_type=S8, weight_type=S8,
                                           per_channel=True)),
    "qop-u8u8-reducerange": ("static", dict(quant_format=QuantFormat.QOperator, activation_type=U8,
                                            weight_type=U8, reduce_range=True)),
    "dynamic-s8": ("dynamic", dict(weight_type=S8)),
    "dynamic-u8-perchannel": ("dynamic", dict(weight_type=U8, per_channel=True)),
}
MODELS = ["mlp", "cnn_nhwc", "resnet18", "mobilenet_v2", "mobilenet_v3_small", "textcnn", "bert_encoder",
          "gpt_decoder", "bilstm", "gru_recommender"]
# What the quantizer itself cannot write (checked below, so the list stays true): its QOperator pass
# fails on the GPT decoder's causal-mask Mul, and its histogram calibrators on the infinite ranges
# of the masks.
QUANTIZER_FAILS = {**{("gpt_decoder", s): "unknown initializers" for s in SETTINGS if s.startswith("qop")},
                   ("gpt_decoder", "qdq-entropy"): "bins|finite", ("gpt_decoder", "qdq-percentile"): "finite",
                   ("bert_encoder", "qdq-percentile"): "finite"}
# onnxruntime's QLinearMatMul kernel with uint8 activations and int8 weights saturates its 16-bit
# pair sums (x86 VPMADDUBSW) even with graph optimizations off; mserve accumulates exactly.
ORT_SATURATES = {("bert_encoder", "qop-u8s8"), ("bert_encoder", "qop-u8u8-reducerange")}
# The fast tier: every setting on the small MLP and CNN, every format on resnet18, one transformer
# and one recurrent model; the rest is slow.
FAST = ({("mlp", s) for s in SETTINGS} | {("cnn_nhwc", s) for s in SETTINGS}
        | {("resnet18", s) for s in ("qdq-u8s8", "qop-s8s8-perchannel", "dynamic-s8")}
        | {("bert_encoder", "qop-u8s8"), ("gpt_decoder", "qdq-u8s8"), ("gru_recommender", "qop-u8s8"),
           ("textcnn", "qdq-s8s8-perchannel-sym"), ("bilstm", "dynamic-u8-perchannel")})


def quantize(name, setting, path):
    kind, kw = SETTINGS[setting]
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice on pre-processing
    if kind == "static":
        feeds = [i for i, _ in load_sets(name)]
        if "calibrate_method" in kw:  # the histogram calibrators need one input shape: the first set
            feeds = feeds[:1]
        quantize_static(str(ZOO / f"{name}.onnx"), str(path), Reader(feeds), **kw)
    else:
        quantize_dynamic(str(ZOO / f"{name}.onnx"), str(path), **kw)
    return onnx.load(str(path))


def ort_session(path):
    # Graph optimizations off: onnxruntime then runs the graph as written (each QuantizeLinear,
    # DequantizeLinear and float op on its own). Its optimized session fuses QDQ groups into integer
    # kernels whose uint8 x int8 products saturate in 16 bits on x86 (the reason its quantizer
    # warns against U8S8 in QOperator format) and which treat an infinite scale differently: the
    # BERT encoder with uint8 activations and the GPT decoder with symmetric int8 activations then
    # differ from the unfused graph by 40-50% relative L2, mserve agreeing exactly with the latter.
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def rel_l2(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def output_steps(model):
    """{output name: its quantization step} for outputs written by a DequantizeLinear."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    steps = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[1] in inits:
            steps[node.output[0]] = float(np.max(inits[node.input[1]]))
    return {o.name: steps[o.name] for o in model.graph.output if o.name in steps}


def emitted_ops(model):
    return sorted({(n.domain + "." if n.domain else "") + n.op_type for n in model.graph.node
                   if n.op_type in {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
                   or n.op_type.startswith(("QLinear", "QGemm", "MatMulInteger", "ConvInteger", "Dynamic"))})


def cases():
    for name in MODELS:
        for setting in SETTINGS:
            if (name, setting) in QUANTIZER_FAILS:
                continue
            marks = () if (name, setting) in FAST else (pytest.mark.slow,)
            if (name, setting) in ORT_SATURATES:
                marks += (pytest.mark.xfail(strict=True, reason="onnxruntime's u8s8 QLinearMatMul saturates"),)
            yield pytest.param(name, setting, id=f"{name}-{setting}", marks=marks)


@pytest.mark.parametrize("name, setting", list(cases()))
def test_quantized_model_matches_onnxruntime(name, setting, tmp_path):
    path = tmp_path / f"{name}.{setting}.onnx"
    qmodel = quantize(name, setting, path)
    twin = unsaturated_twin(qmodel) if ort_saturates_u8s8() else None
    if twin is not None:       # onnxruntime's own answer would be wrong on this CPU: ask it the same sums in uint8
        onnx.save(twin, str(tmp_path / "twin.onnx"))
    sess = ort_session(tmp_path / "twin.onnx" if twin is not None else path)
    names = [o.name for o in sess.get_outputs()]
    model = mserve.load(str(path))
    steps = output_steps(qmodel)
    static = SETTINGS[setting][0] == "static"
    int8_conv = "NhwcQLinearConv" in model._s.node_ops or (static and name in TIE_AMPLIFIERS)
    dynamic_lstm = "DynamicQuantizeLSTM" in model._s.node_ops
    report = []
    sets = load_sets(name)
    if "calibrate_method" in SETTINGS[setting][1]:
        sets = sets[:1]  # calibrated on the first set only: other batches may fall outside its ranges
    for i, (inputs, float_out) in enumerate(sets):
        want = dict(zip(names, sess.run(None, inputs)))
        got = model.predict(inputs, outputs=names)
        for out in names:
            g, w = np.asarray(got[out]), want[out]
            assert g.dtype == w.dtype and g.shape == w.shape, f"{out}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
            assert np.array_equal(np.isnan(g), np.isnan(w)), f"{out}: NaN where onnxruntime has none (or not)"
            diff = float(np.max(np.abs(np.float64(g) - w), initial=0.0))
            err = rel_l2(g, w)
            # 16-bit steps are finer than float32 sum-order noise carried through 20 layers: 1e-3
            # of the output's range (an 8-bit step is about 4e-3 of it) bounds that noise.
            bound = max(OUT_STEPS * steps[out], 2e-3 * float(np.max(np.abs(w)))) if out in steps else None
            if bound is not None and not int8_conv:
                assert diff <= bound * (1 + 1e-6), f"set {i} {out}: max |diff| {diff:.3g} > {OUT_STEPS} steps"
            tol = (INT8_CONV_VS_ORT if int8_conv else REL_L2_VS_ORT if static else
                   REL_L2_VS_ORT_DYNAMIC_LSTM if dynamic_lstm else REL_L2_VS_ORT_DYNAMIC)
            assert err <= tol, f"set {i} {out}: rel L2 {err:.3g}"
            if w.ndim == 2 and w.shape[1] > 1 and bound is not None and not int8_conv:
                top2 = np.sort(w, axis=1)[:, -2:]
                sure = (top2[:, 1] - top2[:, 0]) > 2 * bound
                np.testing.assert_array_equal(g.argmax(1)[sure], w.argmax(1)[sure], err_msg=f"set {i} {out}: labels")
            if out in float_out and int8_conv and w.ndim == 2 and w.shape[1] > 1:
                # the float32 model's confident labels, where onnxruntime keeps them too
                f = float_out[out]
                top2 = np.sort(f, axis=1)[:, -2:]
                sure = ((top2[:, 1] - top2[:, 0]) > 0.1 * f.std(axis=1)) & (w.argmax(1) == f.argmax(1))
                np.testing.assert_array_equal(g.argmax(1)[sure], f.argmax(1)[sure], err_msg=f"set {i} {out}: labels")
            if out in float_out:
                ms_f, ort_f = rel_l2(g, float_out[out]), rel_l2(w, float_out[out])
                assert ms_f <= 1.5 * ort_f + 0.02, f"set {i} {out}: vs float32 {ms_f:.3g}, onnxruntime {ort_f:.3g}"
                assert not dynamic_lstm or ms_f <= ort_f, \
                    f"set {i} {out}: vs float32 {ms_f:.3g}, onnxruntime {ort_f:.3g}"
                report.append(f"{out}[{i}] vs ort {err:.1e} ({diff / steps[out] if out in steps else 0:.0f} steps) "
                              f"vs float ms {ms_f:.3f} ort {ort_f:.3f}")
    print(f"\n{name} {setting}: {'; '.join(report)}; ops {emitted_ops(qmodel)}")


@pytest.mark.slow
@pytest.mark.parametrize("name, setting", sorted(QUANTIZER_FAILS))
def test_quantizer_still_fails_where_listed(name, setting, tmp_path):
    with pytest.raises(Exception, match=QUANTIZER_FAILS[name, setting]):
        quantize(name, setting, tmp_path / "q.onnx")


