"""Quantization operators (kernels/ops/quant.cc, and onnxruntime's com.microsoft QLinear ops in
quant_contrib.cc) on one-node models, against onnxruntime (onnx.reference where onnxruntime lacks a
kernel); quantized outputs exactly, float32 rtol 1e-4, atol 1e-5."""
import ml_dtypes
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, check_outputs, make_model, one_node, ort_run, predict_outputs, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

f32 = lambda v: np.array(v, np.float32)  # noqa: E731
u8 = lambda v: np.array(v, np.uint8)  # noqa: E731
i8 = lambda v: np.array(v, np.int8)  # noqa: E731

# QuantizeLinear / DequantizeLinear
case("Quantize-u8", "QuantizeLinear", {"x": rand(3, 5, lo=-20, hi=20)}, {"s": f32(0.3), "z": u8(128)},
     opsets=(10, 13, 19))
case("Quantize-i8", "QuantizeLinear", {"x": rand(3, 5, lo=-60, hi=60)}, {"s": f32(0.37), "z": i8(-3)}, opsets=(13, 21))
case("Quantize-nozp", "QuantizeLinear", {"x": rand(4, 4, lo=0, hi=80)}, {"s": f32(0.5)}, opsets=(13,))
case("Quantize-axis", "QuantizeLinear", {"x": rand(2, 3, 4, lo=-30, hi=30)},
     {"s": f32([0.2, 0.5, 1.0]), "z": u8([100, 128, 3])}, opsets=(13, 21))
case("Quantize-axis2", "QuantizeLinear", {"x": rand(2, 3, 4, lo=-30, hi=30)},
     {"s": f32([0.2, 0.5, 1.0, 2.0]), "z": i8([1, -2, 3, 0])}, attrs={"axis": -1}, opsets=(13,))
case("Quantize-blocked", "QuantizeLinear", {"x": rand(3, 5, lo=-30, hi=30)},
     {"s": rand(3, 3, lo=0.1, hi=1.0), "z": rand(3, 3, dtype=np.int8, lo=-5, hi=5)},
     attrs={"axis": 1, "block_size": 2}, opsets=(21,), oracle="reference")
case("Quantize-i16", "QuantizeLinear", {"x": rand(10, lo=-5000, hi=5000)}, {"s": f32(0.1), "z": np.array(7, np.int16)},
     opsets=(21,))
case("Dequantize-u8", "DequantizeLinear", {"x": rand(3, 5, dtype=np.uint8, lo=0, hi=255)},
     {"s": f32(0.3), "z": u8(128)},
     opsets=(10, 13, 19))
case("Dequantize-i8-nozp", "DequantizeLinear", {"x": rand(7, dtype=np.int8, lo=-128, hi=127)}, {"s": f32(0.05)},
     opsets=(13,))
case("Dequantize-i32", "DequantizeLinear", {"x": rand(7, dtype=np.int32, lo=-9999, hi=9999)}, {"s": f32(0.05)},
     opsets=(13,))
case("Dequantize-axis", "DequantizeLinear", {"x": rand(2, 3, 4, dtype=np.uint8, lo=0, hi=255)},
     {"s": f32([0.2, 0.5, 1.0]), "z": u8([100, 128, 3])}, opsets=(13, 21))
case("Dequantize-blocked", "DequantizeLinear", {"x": rand(4, 6, dtype=np.int8, lo=-100, hi=100)},
     {"s": rand(2, 6, lo=0.1, hi=1.0), "z": rand(2, 6, dtype=np.int8, lo=-5, hi=5)},
     attrs={"axis": 0, "block_size": 3}, opsets=(21,), oracle="reference")
# onnxruntime's static quantizer writes a [1] scale with a scalar zero point (and the reverse).
case("Dequantize-scale1-zpscalar", "DequantizeLinear", {"x": rand(6, dtype=np.int32, lo=-9999, hi=9999)},
     {"s": f32([0.05]), "z": np.array(0, np.int32)}, opsets=(13, 21))
case("Dequantize-scalescalar-zp1", "DequantizeLinear", {"x": rand(2, 3, dtype=np.uint8, lo=0, hi=255)},
     {"s": f32(0.3), "z": u8([7])}, opsets=(13, 21))
case("Quantize-scale1-zpscalar", "QuantizeLinear", {"x": rand(3, 5, lo=-20, hi=20)}, {"s": f32([0.3]), "z": i8(-4)},
     opsets=(13, 21))
# The narrow types (onnx.reference is the oracle: onnxruntime has no CPU kernels for most).
case("Quantize-int4-axis", "QuantizeLinear", {"x": rand(2, 3, 4, lo=-20, hi=20)},
     {"s": f32([0.5, 1.5, 3.0]), "z": np.array([-1, 0, 2], ml_dtypes.int4)}, opsets=(21,), oracle="reference")
case("Quantize-uint4-blocked", "QuantizeLinear", {"x": rand(3, 6, lo=-5, hi=40)},
     {"s": rand(3, 2, lo=0.5, hi=3.0), "z": np.array([[1, 2], [0, 3], [7, 15]], ml_dtypes.uint4)},
     attrs={"axis": 1, "block_size": 3}, opsets=(21,), oracle="reference")
case("Quantize-int2", "QuantizeLinear", {"x": rand(9, lo=-4, hi=4)}, {"s": f32(1.0), "z": np.array(0, ml_dtypes.int2)},
     opsets=(25,), oracle="reference")
case("Quantize-e4m3fn-saturate", "QuantizeLinear", {"x": rand(12, lo=-2000, hi=2000)},
     {"s": f32(1.5), "z": np.array(0, ml_dtypes.float8_e4m3fn)}, opsets=(21,), oracle="reference")
case("Quantize-e5m2-nosaturate", "QuantizeLinear", {"x": rand(12, lo=-1e6, hi=1e6)},
     {"s": f32(0.5), "z": np.array(0, ml_dtypes.float8_e5m2)}, attrs={"saturate": 0}, opsets=(21,),
     oracle="reference")
case("Quantize-float4", "QuantizeLinear", {"x": rand(10, lo=-30, hi=30)},
     {"s": f32(2.0), "z": np.array(0, ml_dtypes.float4_e2m1fn)}, opsets=(23,), oracle="reference")
case("Dequantize-int4-zp", "DequantizeLinear", {"x": np.arange(-8, 8).astype(ml_dtypes.int4).reshape(2, 8)},
     {"s": f32([0.25, 2.0]), "z": np.array([3, -2], ml_dtypes.int4)}, attrs={"axis": 0}, opsets=(21,),
     oracle="reference")
case("Dequantize-uint2", "DequantizeLinear", {"x": np.array([0, 1, 2, 3, 3, 0], ml_dtypes.uint2)},
     {"s": f32(0.5), "z": np.array(1, ml_dtypes.uint2)}, opsets=(25,), oracle="reference")
case("Dequantize-e4m3fnuz", "DequantizeLinear", {"x": rand(8, lo=-200, hi=200).astype(ml_dtypes.float8_e4m3fnuz)},
     {"s": f32(0.1)}, opsets=(21,), oracle="reference")
case("DynamicQuantize", "DynamicQuantizeLinear", {"x": rand(4, 7, lo=-3, hi=5)}, opsets=(11,), outputs=3)
case("DynamicQuantize-pos", "DynamicQuantizeLinear", {"x": rand(9, lo=1, hi=5)}, opsets=(11,), outputs=3)

# MatMulInteger / QLinearMatMul
case("MatMulInteger", "MatMulInteger", {"a": rand(4, 5, dtype=np.uint8, lo=0, hi=255),
                                        "b": rand(5, 3, dtype=np.uint8, lo=0, hi=255)},
     {"za": u8(12), "zb": u8(200)}, opsets=(10,))
case("MatMulInteger-i8-batched", "MatMulInteger", {"a": rand(2, 4, 5, dtype=np.int8, lo=-128, hi=127),
                                                   "b": rand(5, 3, dtype=np.int8, lo=-128, hi=127)}, opsets=(10,))
case("MatMulInteger-u8i8-rowzp", "MatMulInteger", {"a": rand(4, 5, dtype=np.uint8, lo=0, hi=255),
                                                   "b": rand(5, 3, dtype=np.int8, lo=-128, hi=127)},
     {"za": u8(77)}, opsets=(10,), oracle="reference")  # onnxruntime u8*s8 saturates
# Constant weights: the packed int8 GEMM (kernels/int8_gemm.h), large enough for oneDNN's int8
# matmul where the CPU has VNNI, every signedness, zero points scalar and per column.
for ta, tb, zb in ((np.uint8, np.int8, None), (np.uint8, np.uint8, 131), (np.int8, np.int8, "col"),
                   (np.int8, np.uint8, "col")):
    lo_a, hi_a = (0, 255) if ta == np.uint8 else (-128, 127)
    lo_b, hi_b = (0, 255) if tb == np.uint8 else (-128, 127)
    consts = {"b": rand(300, 520, dtype=tb, lo=lo_b, hi=hi_b), "za": np.array(3 if ta == np.int8 else 140, ta)}
    if zb is not None:
        consts["zb"] = rand(520, dtype=tb, lo=lo_b, hi=hi_b) if zb == "col" else np.array(zb, tb)
    case(f"MatMulInteger-const-{np.dtype(ta).name}-{np.dtype(tb).name}-zb{zb}", "MatMulInteger",
         {"a": rand(2, 9, 300, dtype=ta, lo=lo_a, hi=hi_a)}, consts, opsets=(10,), oracle="reference")
for yt in (np.uint8, np.int8):
    lo, hi = (0, 255) if yt == np.uint8 else (-128, 127)
    case(f"QLinearMatMul-{np.dtype(yt).name}", "QLinearMatMul",
         {"a": rand(2, 4, 6, dtype=yt, lo=lo, hi=hi)},
         {"as": f32(0.02), "az": np.array(3, yt), "b": rand(6, 3, dtype=yt, lo=lo, hi=hi), "bs": f32(0.01),
          "bz": np.array(-1 if yt == np.int8 else 120, yt), "ys": f32(0.05), "yz": np.array(5, yt)}, opsets=(10, 21))

# ConvInteger / QLinearConv
case("ConvInteger", "ConvInteger", {"x": rand(1, 2, 5, 5, dtype=np.uint8, lo=0, hi=255)},
     {"w": rand(3, 2, 3, 3, dtype=np.uint8, lo=0, hi=255), "zx": u8(10), "zw": u8(100)}, attrs={"pads": [1, 1, 1, 1]},
     opsets=(10,))
case("ConvInteger-stride-group", "ConvInteger", {"x": rand(2, 4, 7, 6, dtype=np.uint8, lo=0, hi=255)},
     {"w": rand(4, 2, 2, 3, dtype=np.uint8, lo=0, hi=255)}, attrs={"strides": [2, 1], "group": 2}, opsets=(10,))
case("ConvInteger-1d", "ConvInteger", {"x": rand(1, 3, 9, dtype=np.uint8, lo=0, hi=255)},
     {"w": rand(2, 3, 3, dtype=np.uint8, lo=0, hi=255), "zx": u8(7)}, attrs={"dilations": [2]}, opsets=(10,))
case("QLinearConv", "QLinearConv", {"x": rand(1, 2, 6, 6, dtype=np.uint8, lo=0, hi=255)},
     {"xs": f32(0.02), "xz": u8(120), "w": rand(3, 2, 3, 3, dtype=np.uint8, lo=0, hi=255), "ws": f32(0.01),
      "wz": u8(128), "ys": f32(0.3), "yz": u8(100), "b": np.array([5, -300, 1000], np.int32)},
     attrs={"pads": [1, 1, 1, 1]}, opsets=(10,))
case("QLinearConv-perchannel", "QLinearConv", {"x": rand(1, 2, 5, 5, dtype=np.int8, lo=-128, hi=127)},
     {"xs": f32(0.02), "xz": i8(1), "w": rand(3, 2, 2, 2, dtype=np.int8, lo=-127, hi=127),
      "ws": f32([0.01, 0.02, 0.03]),
      "wz": np.zeros(3, np.int8), "ys": f32(0.2), "yz": i8(-4)}, attrs={"strides": [2, 2]}, opsets=(10,))

# int8 weights with zero zero points: oneDNN's int8 convolution where the CPU has VNNI
# (NhwcQLinearConv), the plain loops elsewhere; padding with a non-zero x zero point, depthwise,
# strided, several images, bias. uint8 x int8 against onnx.reference: onnxruntime's kernels for that
# pair saturate on x86 CPUs without VNNI.
for xt, group, stride in ((np.uint8, 1, 1), (np.uint8, 8, 2), (np.int8, 2, 1)):
    lo, hi = (0, 255) if xt == np.uint8 else (-128, 127)
    case(f"QLinearConv-int8w-{np.dtype(xt).name}-g{group}-s{stride}", "QLinearConv",
         {"x": rand(3, 8, 9, 9, dtype=xt, lo=lo, hi=hi)},
         {"xs": f32(0.0147), "xz": np.array(15 if xt == np.uint8 else -3, xt),
          "w": rand(16, 8 // group, 3, 3, dtype=np.int8, lo=-127, hi=127), "ws": rand(16, lo=0.001, hi=0.003),
          "wz": np.zeros(16, np.int8), "ys": f32(0.5), "yz": np.array(100 if xt == np.uint8 else 7, xt),
          "b": rand(16, dtype=np.int32, lo=-5000, hi=5000)},
         attrs={"pads": [1, 1, 1, 1], "group": group, "strides": [stride, stride]}, opsets=(10,),
         oracle="reference" if xt == np.uint8 else "onnxruntime")


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


# onnxruntime's com.microsoft quantized ops, as its quantizer writes them in QOperator format. The
# inputs avoid exact rounding ties, where float evaluation order may pick the other integer.
MS = "com.microsoft"


def qp(scale, zp, t):
    return f32(scale), np.array(zp, t)


CONTRIB = []
for t, lo, hi in ((np.uint8, 0, 255), (np.int8, -128, 127)):
    q = lambda *shape, t=t, lo=lo, hi=hi: rand(*shape, dtype=t, lo=lo, hi=hi)  # noqa: E731
    n = np.dtype(t).name
    sa, za = qp(0.031, 7 if t == np.int8 else 131, t)
    sb, zb = qp(0.017, -3 if t == np.int8 else 120, t)
    sc, zc = qp(0.045, 2 if t == np.int8 else 128, t)
    for op in ("QLinearAdd", "QLinearMul"):
        CONTRIB.append((f"{op}-{n}", op, {"a": q(2, 3, 4), "b": q(3, 1)},
                        [("a", None), ("as", sa), ("az", za), ("b", None), ("bs", sb), ("bz", zb), ("cs", sc),
                         ("cz", zc)], {}))
    CONTRIB.append((f"QLinearSigmoid-{n}", "QLinearSigmoid", {"x": q(4, 9)},
                    [("xs", sa), ("xz", za), ("ys", f32(1 / 256)), ("yz", np.array(lo, t))], {}))
    CONTRIB.append((f"QLinearLeakyRelu-{n}", "QLinearLeakyRelu", {"x": q(4, 9)},
                    [("xs", sa), ("xz", za), ("ys", sc), ("yz", zc)], {"alpha": 0.1}))
    CONTRIB.append((f"QLinearGlobalAveragePool-{n}", "QLinearGlobalAveragePool", {"x": q(2, 3, 5, 7)},
                    [("xs", sa), ("xz", za), ("ys", sb), ("yz", zb)], {"channels_last": 0}))
    CONTRIB.append((f"QLinearGlobalAveragePool-nhwc-{n}", "QLinearGlobalAveragePool", {"x": q(2, 5, 7, 3)},
                    [("xs", sa), ("xz", za), ("ys", sb), ("yz", zb)], {"channels_last": 1}))
    CONTRIB.append((f"QLinearConcat-{n}", "QLinearConcat", {"x0": q(2, 3, 4), "x1": q(2, 2, 4), "x2": q(2, 1, 4)},
                    [("ys", sc), ("yz", zc), ("x0", None), ("s0", sa), ("z0", za), ("x1", None), ("s1", sc),
                     ("z1", zc), ("x2", None), ("s2", sb), ("z2", zb)], {"axis": 1}))
    for opset, axis in ((13, -1), (13, 1), (11, 1)):
        CONTRIB.append((f"QLinearSoftmax-op{opset}-axis{axis}-{n}", "QLinearSoftmax", {"x": q(2, 5, 6)},
                        [("xs", f32(0.09)), ("xz", za), ("ys", f32(1 / 256)), ("yz", np.array(lo, t))],
                        {"opset": opset, "axis": axis}))
    for ta, tb, out in ((0, 0, True), (1, 1, True), (0, 1, False)):
        a = q(5, 4) if ta else q(4, 5)
        bz = np.array([zb, zb + 1, zb - 2], t) if tb else zb
        bs = f32([0.017, 0.02, 0.011]) if tb else sb
        CONTRIB.append((f"QGemm-t{ta}{tb}-{'q' if out else 'f'}-{n}", "QGemm", {"a": a},
                        [("as", sa), ("az", za), ("b", q(3, 5) if tb else q(5, 3)), ("bs", bs), ("bz", bz),
                         ("c", np.array([100, -2000, 33], np.int32)), ("ys", sc if out else None),
                         ("yz", zc if out else None)], {"transA": ta, "transB": tb, "alpha": 0.8}))

# MatMulIntegerToFloat (what onnxruntime's optimizer and mserve's fuse_matmul_integer make of
# dynamic quantization): int8 weights within +-63, where onnxruntime's non-VNNI kernel
# (vpmaddubsw) cannot saturate, so both sides are exact before the float epilogue.
for ta, tb in ((np.uint8, np.int8), (np.uint8, np.uint8), (np.int8, np.int8)):
    lo_a, hi_a = (0, 255) if ta == np.uint8 else (-128, 127)
    lo_b, hi_b = (0, 255) if tb == np.uint8 else (-63, 63)
    for K, N, per_col in ((5, 3, False), (300, 520, True), (300, 520, False)):
        name = f"MatMulIntegerToFloat-{np.dtype(ta).name}-{np.dtype(tb).name}-{K}x{N}-{'col' if per_col else 'tensor'}"
        CONTRIB.append((name, "MatMulIntegerToFloat", {"a": rand(2, 7, K, dtype=ta, lo=lo_a, hi=hi_a)},
                        [("b", rand(K, N, dtype=tb, lo=lo_b, hi=hi_b)), ("as", f32(0.0213)),
                         ("bs", rand(N, lo=0.001, hi=0.01) if per_col else f32(0.0071)),
                         ("az", np.array(5 if ta == np.int8 else 133, ta)),
                         ("bz", np.array(100 if tb == np.uint8 else 0, tb)), ("bias", rand(N))], {}))


@pytest.mark.parametrize("case", CONTRIB, ids=[c[0] for c in CONTRIB])
def test_contrib_quant_op_matches_onnxruntime(case):
    _, op, inputs, consts, attrs = case
    # consts: (name, array) pairs in input order; None leaves an optional input out, and (name, None)
    # places the runtime input of that name there (else the runtime inputs come first).
    names = [c[0] if c and (c[1] is not None or c[0] in inputs) else "" for c in consts]
    if not any(c and c[0] in inputs for c in consts):
        names = list(inputs) + names
    while names and names[-1] == "":
        names.pop()
    consts_d = {c[0]: c[1] for c in consts if c and c[1] is not None}
    float_out = op == "MatMulIntegerToFloat" or (op == "QGemm" and "ys" not in consts_d)
    dtype = np.float32 if float_out else next(iter(inputs.values())).dtype
    model, outs = one_node(op, inputs, consts_d, attrs, domain=MS, names=names,
                           out_type=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    model.opset_import.append(helper.make_opsetid(MS, 1))
    check_outputs(predict_outputs(model, inputs, outs), ort_run(model, inputs))


def test_quantize_rejects_bad_scale_shape():
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"])
    model = make_model([node], [("x", np.float32, [2, 3])], [("y", np.uint8, None)], {"s": f32([1.0, 2.0])}, opset=13)
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict({"x": rand(2, 3)})


def test_dequantize_float8_refuses_a_nonzero_zero_point():
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])
    model = make_model([node], [("x", np.dtype(ml_dtypes.float8_e4m3fn), [3])], [("y", np.float32, None)],
                       {"s": f32(2.0), "z": np.array(1.0, ml_dtypes.float8_e4m3fn)}, opset=21)
    with pytest.raises(mserve.InvalidArgument, match="zero"):
        mserve.load(model.SerializeToString()).predict({"x": np.array([1, 2, 3], ml_dtypes.float8_e4m3fn)})


def _contrib_model(op, inputs, consts, out_dtype, attrs=None):
    model, _ = one_node(op, inputs, consts, attrs, domain=MS,
                        out_type=helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype)))
    model.opset_import.append(helper.make_opsetid(MS, 1))
    return model


@pytest.mark.parametrize("op, consts, match", [
    ("QLinearAdd", {"as": f32(0.1), "az": i8(0), "b": u8([1, 2]), "bs": f32(0.1), "bz": u8(0), "cs": f32(0.2),
                    "cz": u8(0)}, "zero point must be uint8"),
    ("QLinearAdd", {"as": f32([0.1, 0.2]), "az": u8(0), "b": u8([1, 2]), "bs": f32(0.1), "bz": u8(0),
                    "cs": f32(0.2), "cz": u8(0)}, "one element"),
    ("QLinearMul", {"as": f32(0.1), "az": u8(0), "b": u8([1, 2]), "bs": np.array(0.1, np.float64), "bz": u8(0),
                    "cs": f32(0.2), "cz": u8(0)}, "float32"),
    ("QLinearSigmoid", {"xs": f32(0.1), "xz": u8(0), "ys": f32(1 / 256), "yz": i8(0)}, "zero point must be uint8"),
    ("QGemm", {"as": f32(0.1), "az": u8(0), "b": u8([[1, 2], [3, 4]]), "bs": f32([0.1, 0.2, 0.3]), "bz": u8(0)},
     "b_scale"),
    ("QGemm", {"as": f32(0.1), "az": u8(0), "b": u8([[1, 2], [3, 4]]), "bs": f32([0.1, 0.2]), "bz": u8([0, 1]),
               "c": np.array([1, 2], np.int64)}, "C must be int32"),
    ("MatMulIntegerToFloat", {"b": u8([[1, 2], [3, 4]]), "as": f32(0.1), "bs": f32([0.1, 0.2, 0.3])}, "b_scale"),
    ("MatMulIntegerToFloat", {"b": u8([[1, 2], [3, 4]]), "as": f32([0.1, 0.2]), "bs": f32(0.1)}, "a_scale"),
    ("MatMulIntegerToFloat", {"b": u8([[1, 2], [3, 4]]), "as": f32(0.1), "bs": f32(0.1), "az": u8(0), "bz": u8(0),
                              "bias": f32([1, 2, 3])}, "bias"),
    ("MatMulIntegerToFloat", {"b": u8([[1, 2], [3, 4]]), "as": f32(0.1), "bs": f32(0.1), "az": u8(0),
                              "bz": u8([1, 2, 3])}, "b_zero_point"),
])
def test_contrib_quant_ops_reject_bad_quantization_parameters(op, consts, match):
    x = u8([[3, 4]])
    out = np.float32 if op in ("QGemm", "MatMulIntegerToFloat") else np.uint8
    model = _contrib_model(op, {"x": x}, consts, out)
    with pytest.raises(mserve.InvalidArgument, match=match):
        mserve.load(model.SerializeToString()).predict({"x": x})


@pytest.mark.parametrize("op, consts", [
    ("QLinearConv", {"xs": f32(0.1), "xz": i8(0), "w": u8(np.ones((1, 1, 1, 1))), "ws": f32(0.1), "wz": u8(0),
                     "ys": f32(0.2), "yz": u8(0)}),
    ("QLinearMatMul", {"as": f32(0.1), "az": i8(0), "b": u8(np.ones((2, 2))), "bs": f32(0.1), "bz": u8(0),
                       "ys": f32(0.2), "yz": u8(0)}),
    ("QLinearMatMul", {"as": f32(0.1), "az": u8(0), "b": u8(np.ones((2, 2))), "bs": f32([0.1, 0.2]), "bz": u8(0),
                       "ys": f32(0.2), "yz": u8(0)}),
    ("MatMulInteger", {"b": u8(np.ones((2, 2))), "az": i8(0)}),
])
def test_quant_ops_reject_mismatched_zero_points(op, consts):
    x = u8(np.ones((1, 1, 2, 2))) if op == "QLinearConv" else u8([[3, 4]])
    model, _ = one_node(op, {"x": x}, consts, opset=13,
                        out_type=helper.np_dtype_to_tensor_dtype(np.dtype(np.int32 if op == "MatMulInteger"
                                                                          else np.uint8)))
    with pytest.raises(mserve.InvalidArgument):
        mserve.load(model.SerializeToString()).predict({"x": x})


def test_quantize_nan_is_the_minimum_as_in_onnxruntime():
    # A calibration range with an infinity (a causal mask's -inf) gives a scale of inf and x / scale
    # NaN: onnxruntime writes the type's minimum.
    for zt in (np.uint8, np.int8, np.uint16, np.int16):
        model, _ = one_node("QuantizeLinear", {"x": f32([0, 1, -np.inf, np.nan, np.inf])},
                            {"s": f32(0.5), "z": np.array(3, zt)}, opset=21)
        x = f32([0, 1, -np.inf, np.nan, np.inf])
        np.testing.assert_array_equal(mserve.load(model.SerializeToString()).predict({"x": x}),
                                      ort_run(model, {"x": x})[0])
