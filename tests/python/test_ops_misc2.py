"""LRN, ReverseSequence, CenterCropPad, Scatter, MaxUnpool, RoiAlign, the window generators, DFT and STFT on
one-node models, against onnxruntime (or onnx.reference where onnxruntime lacks a kernel); float32 rtol 1e-4,
atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from conftest import make_model, ort_run

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32, lo=-2.0, hi=2.0):
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


CASES = []


def case(id_, op, inputs, consts=None, attrs=None, opsets=(17,), outputs=1, oracle="onnxruntime", tol=None):
    """Runtime inputs, then constant inputs (initializers), in dict order (a None constant leaves its optional
    input out). oracle: "onnxruntime", "reference"
    (onnx.reference) or a function of the inputs returning the expected outputs."""
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, outputs, oracle, tol,
                                  id=f"{id_}-op{opset}"))


# LRN
case("LRN", "LRN", {"x": rand(2, 5, 4, 3)}, attrs={"size": 3}, opsets=(1, 13))
case("LRN-attrs", "LRN", {"x": rand(1, 7, 6, 5)}, attrs={"size": 5, "alpha": 0.01, "beta": 0.6, "bias": 2.0})
case("LRN-wide", "LRN", {"x": rand(1, 3, 2, 2)}, attrs={"size": 7, "alpha": 0.1})


def lrn(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    """The spec's formula. onnxruntime runs float32 4-D inputs with odd sizes only, and onnx.reference sums
    the window of channel c only for c < N (it loops over the batch dimension)."""
    sq = np.zeros(x.shape, np.float64)
    for c in range(x.shape[1]):
        lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1] - 1, c + size // 2)
        sq[:, c] = (x[:, lo:hi + 1].astype(np.float64) ** 2).sum(axis=1)
    return [(x / (bias + alpha / size * sq) ** beta).astype(x.dtype)]


for id_, shape, dt, attrs in [("even", (1, 7, 6, 5), np.float32, {"size": 4, "alpha": 0.01, "beta": 0.6, "bias": 2.0}),
                              ("size1-3d", (3, 4, 5), np.float32, {"size": 1, "alpha": 0.5}),
                              ("5d", (1, 3, 2, 2, 2), np.float32, {"size": 3, "alpha": 0.1}),
                              ("f64", (2, 6, 3, 3), np.float64, {"size": 6}),
                              ("f16", (2, 6, 3, 3), np.float16, {"size": 3})]:
    case("LRN-" + id_, "LRN", {"x": rand(*shape, dtype=dt)}, attrs=attrs,
         oracle=lambda inputs, a=attrs: lrn(inputs["x"], **a))

# ReverseSequence
case("ReverseSequence-time", "ReverseSequence", {"x": rand(5, 3, 2), "lens": np.array([5, 1, 3], np.int64)},
     attrs={"batch_axis": 1, "time_axis": 0}, opsets=(10, 21))
case("ReverseSequence-batch", "ReverseSequence", {"x": rand(4, 6), "lens": np.array([0, 6, 2, 1], np.int64)},
     attrs={"batch_axis": 0, "time_axis": 1})
case("ReverseSequence-int", "ReverseSequence",
     {"x": rand(3, 4, 2, 2, dtype=np.int64, lo=-9, hi=9), "lens": np.array([2, 4, 3], np.int64)},
     attrs={"batch_axis": 0, "time_axis": 1})

# CenterCropPad (no onnxruntime kernel)
cc_x = rand(5, 8, 3)
case("CenterCropPad-crop", "CenterCropPad", {"x": cc_x}, {"s": np.array([3, 5, 3], np.int64)}, opsets=(18,),
     oracle="reference")
case("CenterCropPad-pad", "CenterCropPad", {"x": cc_x}, {"s": np.array([8, 11, 4], np.int64)}, opsets=(18,),
     oracle="reference")
case("CenterCropPad-mixed-axes", "CenterCropPad", {"x": cc_x}, {"s": np.array([6, 7], np.int64)},
     attrs={"axes": [0, -2]}, opsets=(18,), oracle="reference")
case("CenterCropPad-int-runtime-shape", "CenterCropPad",
     {"x": rand(4, 5, dtype=np.int32, lo=-9, hi=9), "s": np.array([7, 2], np.int64)}, opsets=(18,), oracle="reference")

# Scatter (deprecated alias of ScatterElements)
case("Scatter", "Scatter", {"data": rand(3, 4), "idx": np.array([[1, 0, 2, 1]], np.int64), "upd": rand(1, 4)},
     opsets=(9, 10))
case("Scatter-axis", "Scatter", {"data": rand(3, 5), "idx": np.array([[4, 0], [1, 3], [2, 2]], np.int64),
                                 "upd": rand(3, 2)}, attrs={"axis": 1}, opsets=(10,))

# MaxUnpool: indices from a real MaxPool
def unpool_inputs(x, **attrs):
    from onnx.reference import ReferenceEvaluator
    node = helper.make_node("MaxPool", ["x"], ["p", "i"], **attrs)
    m = make_model([node], [("x", x.dtype, list(x.shape))], [("p", x.dtype, None), ("i", np.int64, None)], opset=12)
    p, i = ReferenceEvaluator(m).run(None, {"x": x})
    return {"p": p, "i": i}


case("MaxUnpool-2d", "MaxUnpool", unpool_inputs(rand(2, 3, 6, 6), kernel_shape=[2, 2], strides=[2, 2]),
     attrs={"kernel_shape": [2, 2], "strides": [2, 2]}, opsets=(9, 11, 22))
case("MaxUnpool-pads", "MaxUnpool", unpool_inputs(rand(1, 2, 5, 7), kernel_shape=[3, 3], strides=[2, 2],
                                                  pads=[1, 1, 1, 1]),
     attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, opsets=(11,))
case("MaxUnpool-1d", "MaxUnpool", unpool_inputs(rand(2, 2, 9), kernel_shape=[3], strides=[3]),
     attrs={"kernel_shape": [3], "strides": [3]}, opsets=(11,))
case("MaxUnpool-output-shape", "MaxUnpool", unpool_inputs(rand(1, 2, 4, 4), kernel_shape=[2, 2], strides=[2, 2]),
     {"shape": np.array([1, 2, 9, 10], np.int64)}, attrs={"kernel_shape": [2, 2], "strides": [2, 2]}, opsets=(11,),
     oracle="reference")

# RoiAlign
roi_x = rand(2, 3, 10, 12, lo=0, hi=1)
rois = np.array([[0, 0, 9, 9], [1.5, 2.2, 7.1, 8.9], [0.3, 0.4, 0.9, 1.1], [-2, -1, 14, 13], [4, 4, 4.5, 9]],
                np.float32)
bidx = np.array([0, 1, 1, 0, 1], np.int64)
for mode in ["avg", "max"]:
    case(f"RoiAlign-{mode}", "RoiAlign", {"x": roi_x, "rois": rois, "b": bidx},
         attrs={"mode": mode, "output_height": 3, "output_width": 4, "sampling_ratio": 2}, opsets=(10, 16))
    case(f"RoiAlign-{mode}-adaptive", "RoiAlign", {"x": roi_x, "rois": rois, "b": bidx},
         attrs={"mode": mode, "output_height": 2, "output_width": 3, "spatial_scale": 0.5}, opsets=(16,))
    case(f"RoiAlign-{mode}-output-half-pixel", "RoiAlign", {"x": roi_x, "rois": rois, "b": bidx},
         attrs={"mode": mode, "output_height": 4, "output_width": 2,
                "coordinate_transformation_mode": "output_half_pixel"},
         opsets=(16,))
case("RoiAlign-f64", "RoiAlign", {"x": roi_x.astype(np.float64), "rois": rois.astype(np.float64), "b": bidx},
     attrs={"output_height": 2, "output_width": 2}, opsets=(16,))

# Windows (size as a constant; the node suite feeds it at run time)
def window64(op, size, periodic=True):
    a = 2 * np.pi * np.arange(size) / (size if periodic else size - 1)
    return {"HannWindow": 0.5 - 0.5 * np.cos(a), "HammingWindow": 25 / 46 - 21 / 46 * np.cos(a),
            "BlackmanWindow": 0.42 - 0.5 * np.cos(a) + 0.08 * np.cos(2 * a)}[op]


for op in ["HannWindow", "HammingWindow", "BlackmanWindow"]:
    for periodic in (0, 1):
        case(f"{op}-p{periodic}", op, {}, {"n": np.array(10, np.int64)}, attrs={"periodic": periodic}, opsets=(17,))
    case(f"{op}-f64-int32-size", op, {}, {"n": np.array(7, np.int32)}, attrs={"output_datatype": 11}, opsets=(17,))
    # float16: onnx.reference evaluates the formula in float16; compare with float64 values rounded
    case(f"{op}-f16", op, {}, {"n": np.array(16, np.int64)}, attrs={"output_datatype": 10}, opsets=(17,),
         oracle=lambda inputs, op=op: [window64(op, 16).astype(np.float16)])
    case(f"{op}-int", op, {}, {"n": np.array(9, np.int64)}, attrs={"output_datatype": 7}, opsets=(17,),
         oracle="reference")

# DFT: opset 17 (axis attribute) and 20 (axis input)
sig = rand(2, 12, 3, 1)
csig = rand(2, 9, 4, 2)
case("DFT-real", "DFT", {"x": sig}, opsets=(17,))
case("DFT-real-axis2", "DFT", {"x": sig}, attrs={"axis": 2}, opsets=(17,))
case("DFT-complex-len-pad", "DFT", {"x": csig}, {"n": np.array(13, np.int64)}, opsets=(17,))
case("DFT-complex-len-trunc", "DFT", {"x": csig}, {"n": np.array(5, np.int64)}, opsets=(17,))
case("DFT-rfft", "DFT", {"x": sig}, attrs={"onesided": 1}, opsets=(17,))
case("DFT-inverse", "DFT", {"x": csig}, attrs={"inverse": 1}, opsets=(17,))
case("DFT-20-axis-input", "DFT", {"x": csig}, {"n": np.array(4, np.int64), "a": np.array(2, np.int64)}, opsets=(20,))
case("DFT-20-axis-only", "DFT", {"x": csig}, {"skip": None, "a": np.array(1, np.int64)}, opsets=(20,))
case("DFT-20-neg-axis", "DFT", {"x": sig}, {"n": np.array(12, np.int64), "a": np.array(-3, np.int64)},
     attrs={"onesided": 1}, opsets=(20,))
case("DFT-20-default-axis", "DFT", {"x": csig}, attrs={"inverse": 1}, opsets=(20,))
case("DFT-f64", "DFT", {"x": csig.astype(np.float64)}, opsets=(20,))
for n in (None, 16, 15, 6):  # IRFFT: onnxruntime has no kernel for it
    consts = {} if n is None else {"n": np.array(n, np.int64), "a": np.array(1, np.int64)}
    case(f"DFT-irfft-{n}", "DFT", {"x": rand(2, 9, 3, 2)}, consts, attrs={"inverse": 1, "onesided": 1}, opsets=(20,),
         oracle="reference")

# STFT
stft_x = rand(2, 64, 1)
case("STFT-frame-length", "STFT", {"x": stft_x}, {"step": np.array(8, np.int64), "skip": None,
                                                  "len": np.array(16, np.int64)}, opsets=(17,))
def stft64(x, step, w, onesided=True):
    """float64 STFT (onnxruntime's float32 sums drift by ~1e-5 on this case)."""
    n = len(w)
    frames = 1 + (x.shape[1] - n) // step
    sig = x[..., 0].astype(np.float64) + (1j * x[..., 1] if x.shape[-1] == 2 else 0)
    spec = np.stack([np.fft.fft(sig[:, f * step:f * step + n] * w, axis=-1) for f in range(frames)], axis=1)
    spec = spec[..., :n // 2 + 1] if onesided else spec
    return [np.stack([spec.real, spec.imag], axis=-1).astype(x.dtype)]


case("STFT-window", "STFT", {"x": stft_x}, {"step": np.array(6, np.int64), "w": np.hanning(20).astype(np.float32)},
     opsets=(17,), oracle=lambda inputs: stft64(inputs["x"], 6, np.hanning(20).astype(np.float32)))
case("STFT-window-twosided", "STFT", {"x": stft_x}, {"step": np.array(5, np.int64),
                                                     "w": np.hamming(12).astype(np.float32)},
     attrs={"onesided": 0}, opsets=(17,))
case("STFT-window-and-length", "STFT", {"x": rand(1, 50, 1, dtype=np.float64)},
     {"step": np.array(7, np.int64), "w": np.hanning(10), "len": np.array(10, np.int64)}, opsets=(17,))
case("STFT-complex", "STFT", {"x": rand(1, 40, 2)}, {"step": np.array(4, np.int64),
                                                     "w": np.ones(8, np.float32)}, attrs={"onesided": 0}, opsets=(17,))


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,outputs,oracle,tol", CASES)
def test_op_matches_oracle(op, inputs, consts, attrs, opset, outputs, oracle, tol):
    names = list(inputs) + [k if v is not None else "" for k, v in consts.items()]
    consts = {k: v for k, v in consts.items() if v is not None}
    out_names = ["y"] if outputs == 1 else [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, **attrs)
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, 0, None) for o in out_names], consts, opset=opset)
    if callable(oracle):
        expected = oracle(inputs)
    elif oracle == "reference":
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)
    else:
        expected = ort_run(model, inputs)
    got = mserve.load(model.SerializeToString(), threads=2).predict(dict(inputs))
    got = [got] if outputs == 1 else [got[o] for o in out_names]
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if np.issubdtype(e.dtype, np.floating):
            t = tol or (dict(rtol=1e-3, atol=1e-3) if e.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5))
            np.testing.assert_allclose(g, e, **t)
        else:
            np.testing.assert_array_equal(g, e)


def test_errors_are_invalid_argument():
    x = rand(3, 4)
    node = helper.make_node("ReverseSequence", ["x", "l"], ["y"], batch_axis=0, time_axis=1)
    m = mserve.load(make_model([node], [("x", np.float32, [3, 4]), ("l", np.int64, [3])], [("y", np.float32, None)],
                               opset=17).SerializeToString())
    with pytest.raises(mserve.Error, match="sequence_lens"):
        m.predict({"x": x, "l": np.array([1, 5, 2], np.int64)})
    node = helper.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2])
    m = mserve.load(make_model([node], [("x", np.float32, [1, 1, 2]), ("i", np.int64, [1, 1, 2])],
                               [("y", np.float32, None)], opset=17).SerializeToString())
    with pytest.raises(mserve.Error, match="index"):
        m.predict({"x": np.ones((1, 1, 2), np.float32), "i": np.array([[[0, 7]]], np.int64)})
    with pytest.raises(mserve.Error, match="batch_axis"):
        mserve.load(make_model([helper.make_node("ReverseSequence", ["x", "l"], ["y"], batch_axis=2)],
                               [("x", np.float32, [3, 4, 2]), ("l", np.int64, [3])], [("y", np.float32, None)],
                               opset=17).SerializeToString())
