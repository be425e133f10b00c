"""Quantization and misc math operators on one-node models, against onnxruntime (or onnx.reference
where onnxruntime lacks a kernel). float32: rtol 1e-4, atol 1e-5; quantized outputs exactly."""
import numpy as np
import pytest
from onnx import helper

import mserve
from conftest import make_model, ort_run

RNG = np.random.default_rng(1)


def rand(*shape, dtype=np.float32, lo=-2.0, hi=2.0):
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


CASES = []


def case(id_, op, inputs, consts=None, attrs=None, opsets=(17,), outputs=1, oracle="onnxruntime"):
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, outputs, oracle, id=f"{id_}-op{opset}"))


f32 = lambda v: np.array(v, np.float32)  # noqa: E731
u8 = lambda v: np.array(v, np.uint8)  # noqa: E731
i8 = lambda v: np.array(v, np.int8)  # noqa: E731

# QuantizeLinear / DequantizeLinear
case("Quantize-u8", "QuantizeLinear", {"x": rand(3, 5, lo=-20, hi=20)}, {"s": f32(0.3), "z": u8(128)}, opsets=(10, 13, 19))
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
case("Dequantize-u8", "DequantizeLinear", {"x": rand(3, 5, dtype=np.uint8, lo=0, hi=255)}, {"s": f32(0.3), "z": u8(128)},
     opsets=(10, 13, 19))
case("Dequantize-i8-nozp", "DequantizeLinear", {"x": rand(7, dtype=np.int8, lo=-128, hi=127)}, {"s": f32(0.05)}, opsets=(13,))
case("Dequantize-i32", "DequantizeLinear", {"x": rand(7, dtype=np.int32, lo=-9999, hi=9999)}, {"s": f32(0.05)}, opsets=(13,))
case("Dequantize-axis", "DequantizeLinear", {"x": rand(2, 3, 4, dtype=np.uint8, lo=0, hi=255)},
     {"s": f32([0.2, 0.5, 1.0]), "z": u8([100, 128, 3])}, opsets=(13, 21))
case("Dequantize-blocked", "DequantizeLinear", {"x": rand(4, 6, dtype=np.int8, lo=-100, hi=100)},
     {"s": rand(2, 6, lo=0.1, hi=1.0), "z": rand(2, 6, dtype=np.int8, lo=-5, hi=5)},
     attrs={"axis": 0, "block_size": 3}, opsets=(21,), oracle="reference")
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
     {"xs": f32(0.02), "xz": i8(1), "w": rand(3, 2, 2, 2, dtype=np.int8, lo=-127, hi=127), "ws": f32([0.01, 0.02, 0.03]),
      "wz": np.zeros(3, np.int8), "ys": f32(0.2), "yz": i8(-4)}, attrs={"strides": [2, 2]}, opsets=(10,))

# CumProd (onnxruntime lacks it: onnx.reference)
case("CumProd", "CumProd", {"x": rand(3, 4, lo=0.5, hi=1.5)}, {"axis": np.array(1, np.int64)}, opsets=(26,),
     oracle="reference")
case("CumProd-excl-rev", "CumProd", {"x": rand(3, 4, 2, lo=0.5, hi=1.5)}, {"axis": np.array(-2, np.int64)},
     attrs={"exclusive": 1, "reverse": 1}, opsets=(26,), oracle="reference")
case("CumProd-int", "CumProd", {"x": rand(5, dtype=np.int64, lo=-3, hi=3)}, {"axis": np.array(0, np.int32)},
     attrs={"exclusive": 1}, opsets=(26,), oracle="reference")

# Einsum
for eq, shapes in [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii->i", [(4, 4)]),
                   ("ii", [(4, 4)]), ("ij->ji", [(3, 4)]), ("...ii->...i", [(2, 3, 3)]), ("i,i", [(5,), (5,)]),
                   ("ij,k", [(2, 3), (4,)]), ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 2)]), ("abc,cd,de->abe",
                   [(2, 3, 4), (4, 5), (5, 2)]), ("ij->", [(3, 4)])]:
    ins = {f"x{i}": rand(*s) for i, s in enumerate(shapes)}
    case("Einsum-" + eq.replace("->", "_to_").replace(",", "_").replace("...", "E"), "Einsum", ins,
         attrs={"equation": eq}, opsets=(12,))
case("Einsum-int", "Einsum", {"a": rand(3, 4, dtype=np.int64, lo=-5, hi=5), "b": rand(4, dtype=np.int64, lo=-5, hi=5)},
     attrs={"equation": "ij,j->i"}, opsets=(12,))
case("Einsum-f64", "Einsum", {"a": rand(3, 4, dtype=np.float64)}, attrs={"equation": "ij->j"}, opsets=(12,))

# Unique
case("Unique-flat", "Unique", {"x": rand(12, dtype=np.int64, lo=0, hi=5)}, opsets=(11,), outputs=4)
case("Unique-unsorted", "Unique", {"x": rand(3, 4, lo=0, hi=3).round()}, attrs={"sorted": 0}, opsets=(11,), outputs=4)
case("Unique-axis", "Unique", {"x": rand(5, 3, dtype=np.int64, lo=0, hi=1)}, attrs={"axis": 0}, opsets=(11,), outputs=4)
case("Unique-axis-neg", "Unique", {"x": rand(2, 5, 2, dtype=np.int64, lo=0, hi=1)}, attrs={"axis": -2}, opsets=(11,),
     outputs=4)

# Det
case("Det-2d", "Det", {"x": rand(4, 4)}, opsets=(11, 22))
case("Det-nd", "Det", {"x": rand(2, 3, 3, 3)}, opsets=(11,))
case("Det-f64", "Det", {"x": rand(5, 5, dtype=np.float64)}, opsets=(22,), oracle="reference")

# NonMaxSuppression
boxes = np.concatenate([rand(1, 8, 2, lo=0, hi=5), rand(1, 8, 2, lo=5, hi=10)], axis=2).astype(np.float32)
case("NMS", "NonMaxSuppression", {"boxes": boxes, "scores": rand(1, 2, 8, lo=0, hi=1)},
     {"m": np.array([3], np.int64), "iou": f32([0.3]), "st": f32([0.2])}, opsets=(10, 11))
case("NMS-center", "NonMaxSuppression", {"boxes": rand(2, 6, 4, lo=1, hi=4), "scores": rand(2, 1, 6, lo=0, hi=1)},
     {"m": np.array([10], np.int64), "iou": f32([0.1])}, attrs={"center_point_box": 1}, opsets=(11,))


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,outputs,oracle", CASES)
def test_op_matches_oracle(op, inputs, consts, attrs, opset, outputs, oracle):
    names = list(inputs) + list(consts)
    out_names = ["y"] if outputs == 1 else [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, **attrs)
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, 0, None) for o in out_names], consts, opset=opset)
    if oracle == "reference":
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)
    else:
        expected = ort_run(model, inputs)
    m = mserve.load(model.SerializeToString(), threads=2)
    got = m.predict(dict(inputs))
    got = [got] if outputs == 1 else [got[o] for o in out_names]
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if np.issubdtype(e.dtype, np.floating):
            tol = dict(rtol=1e-3, atol=1e-3) if e.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(g, e, **tol)
        else:
            np.testing.assert_array_equal(g, e)


def test_quantize_rejects_bad_scale_shape():
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"])
    model = make_model([node], [("x", np.float32, [2, 3])], [("y", np.uint8, None)], {"s": f32([1.0, 2.0])}, opset=13)
    with pytest.raises(Exception):
        mserve.load(model.SerializeToString()).predict({"x": rand(2, 3)})
