"""Quantization operators (kernels/ops/quant.cc) on one-node models, against onnxruntime (onnx.reference
where onnxruntime lacks a kernel); quantized outputs exactly, float32 rtol 1e-4, atol 1e-5."""
import ml_dtypes
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, random_inputs

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


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


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
