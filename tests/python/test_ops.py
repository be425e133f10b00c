"""Every foundation operator, on one-node models, against onnxruntime (float32: rtol 1e-4, atol 1e-5)."""
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


# (op, runtime inputs {name: array}, constant inputs {name: array}, attrs, opset, n_outputs, oracle);
# node inputs are the runtime inputs, then the constants, in dict order.
CASES = []


def case(id_, op, inputs, consts=None, attrs=None, opsets=(17,), outputs=1, oracle="onnxruntime"):
    """oracle: "onnxruntime", or "reference" (onnx.reference) where onnxruntime lacks a kernel."""
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, outputs, oracle, id=f"{id_}-op{opset}"))


for op in ["Add", "Sub", "Mul", "Div"]:
    case(op + "-same", op, {"a": rand(3, 4), "b": rand(3, 4, lo=0.5)}, opsets=(7, 13, 14))
    case(op + "-bcast", op, {"a": rand(2, 3, 4), "b": rand(4, lo=0.5)})
    case(op + "-bcast2", op, {"a": rand(2, 1, 5), "b": rand(3, 1, lo=0.5)})
    case(op + "-bcast-se", op, {"a": rand(2, 6, 3, 4), "b": rand(2, 6, 1, 1, lo=0.5)})  # merges to [12, 12]
    case(op + "-bcast-mixed", op, {"a": rand(2, 1, 3, 1, 4), "b": rand(1, 5, 3, 2, 1, lo=0.5)})
    case(op + "-scalar", op, {"a": rand(6, 5)}, {"b": np.array(1.5, np.float32)})
    case(op + "-int64", op, {"a": rand(4, 5, dtype=np.int64, lo=-50, hi=50), "b": rand(5, dtype=np.int64, lo=1, hi=9)})
    case(op + "-f64", op, {"a": rand(4, 5, dtype=np.float64), "b": rand(4, 1, dtype=np.float64, lo=0.5)})
    case(op + "-int32", op, {"a": rand(7, dtype=np.int32, lo=-50, hi=50), "b": rand(7, dtype=np.int32, lo=1, hi=9)})

for op in ["Relu", "Sigmoid", "Tanh"]:
    case(op, op, {"x": rand(3, 17, lo=-6, hi=6)}, opsets=(6, 13))
case("Relu-int", "Relu", {"x": rand(10, dtype=np.int32, lo=-5, hi=5)}, opsets=(14,))
case("Sigmoid-f64", "Sigmoid", {"x": rand(40, dtype=np.float64, lo=-9, hi=9)})
case("Clip-attrs", "Clip", {"x": rand(4, 6)}, attrs={"min": -0.5, "max": 0.7}, opsets=(6,))
case("Clip-inputs", "Clip", {"x": rand(4, 6)}, {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)},
     opsets=(11, 13))
case("Clip-min-only", "Clip", {"x": rand(4, 6)}, {"lo": np.array(0.1, np.float32)}, opsets=(13,))
case("Clip-int", "Clip", {"x": rand(9, dtype=np.int64, lo=-9, hi=9)},
     {"lo": np.array(-2, np.int64), "hi": np.array(3, np.int64)}, opsets=(12,))

case("Softmax-legacy", "Softmax", {"x": rand(2, 3, 4)}, opsets=(1, 11))
case("Softmax-legacy-axis2", "Softmax", {"x": rand(2, 3, 4)}, attrs={"axis": 2}, opsets=(11,))
case("Softmax-13", "Softmax", {"x": rand(2, 3, 4)}, opsets=(13,))
case("Softmax-13-axis1", "Softmax", {"x": rand(2, 3, 4)}, attrs={"axis": 1}, opsets=(13,))

case("Gemm", "Gemm", {"a": rand(5, 7)}, {"b": rand(7, 3), "c": rand(3)}, opsets=(7, 9, 11, 13))
case("Gemm-trans", "Gemm", {"a": rand(7, 5)}, {"b": rand(3, 7), "c": rand(5, 1)},
     attrs={"transA": 1, "transB": 1, "alpha": 0.7, "beta": 1.3}, opsets=(13,))
case("Gemm-noC", "Gemm", {"a": rand(5, 7), "b": rand(7, 3)}, opsets=(11, 13))
case("Gemm-scalarC", "Gemm", {"a": rand(5, 7), "b": rand(7, 3)}, {"c": np.array(0.25, np.float32)})
case("MatMul-2d", "MatMul", {"a": rand(5, 7), "b": rand(7, 3)}, opsets=(1, 9, 13))
case("MatMul-batched", "MatMul", {"a": rand(2, 3, 5, 7), "b": rand(3, 7, 4)})
case("MatMul-bcast", "MatMul", {"a": rand(2, 1, 5, 7), "b": rand(4, 7, 2)})
case("MatMul-1d-left", "MatMul", {"a": rand(7), "b": rand(2, 7, 3)})
case("MatMul-1d-right", "MatMul", {"a": rand(4, 7), "b": rand(7)})
case("MatMul-int64", "MatMul", {"a": rand(3, 4, dtype=np.int64, lo=-5, hi=5), "b": rand(4, 2, dtype=np.int64, lo=-5, hi=5)})

conv_x = rand(2, 4, 9, 8)
case("Conv-basic", "Conv", {"x": conv_x}, {"w": rand(6, 4, 3, 3), "b": rand(6)}, opsets=(1, 11, 22))
case("Conv-pads-strides", "Conv", {"x": conv_x}, {"w": rand(6, 4, 3, 2)},
     attrs={"pads": [1, 0, 2, 1], "strides": [2, 3]})
case("Conv-dilations", "Conv", {"x": conv_x}, {"w": rand(3, 4, 2, 3)}, attrs={"dilations": [2, 2], "pads": [1, 1, 1, 1]})
case("Conv-groups", "Conv", {"x": conv_x}, {"w": rand(6, 2, 3, 3)}, attrs={"group": 2})
case("Conv-depthwise", "Conv", {"x": conv_x}, {"w": rand(4, 1, 3, 3), "b": rand(4)}, attrs={"group": 4, "pads": [1, 1, 1, 1]})
for ap in ["SAME_UPPER", "SAME_LOWER", "VALID"]:
    case("Conv-" + ap, "Conv", {"x": conv_x}, {"w": rand(5, 4, 4, 3)}, attrs={"auto_pad": ap, "strides": [2, 2]})
case("Conv-1x1", "Conv", {"x": conv_x}, {"w": rand(8, 4, 1, 1)})
case("Conv-1d", "Conv", {"x": rand(2, 3, 20)}, {"w": rand(5, 3, 4), "b": rand(5)}, attrs={"pads": [1, 2], "strides": [2]})
case("Conv-1d-same", "Conv", {"x": rand(1, 3, 10)}, {"w": rand(2, 3, 3)}, attrs={"auto_pad": "SAME_UPPER"})
case("Conv-1d-same-dilated", "Conv", {"x": rand(1, 3, 10)}, {"w": rand(2, 3, 3)},
     attrs={"auto_pad": "SAME_LOWER", "dilations": [2]}, oracle="reference")
case("Conv-3d", "Conv", {"x": rand(1, 2, 5, 6, 4)}, {"w": rand(3, 2, 2, 3, 2), "b": rand(3)},
     attrs={"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 1]})
case("Conv-f64", "Conv", {"x": rand(1, 2, 6, 6, dtype=np.float64)}, {"w": rand(3, 2, 3, 3, dtype=np.float64)},
     oracle="reference")

pool_x = rand(2, 3, 9, 8)
case("MaxPool", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [3, 3], "strides": [2, 2]}, opsets=(1, 8, 10, 11, 12, 22))
case("MaxPool-pads", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [3, 2], "pads": [1, 0, 1, 1]})
case("MaxPool-ceil", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
     opsets=(10, 12))
case("MaxPool-dilations", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [2, 2], "dilations": [2, 2]}, opsets=(12,))
case("MaxPool-same", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"})
case("MaxPool-1d", "MaxPool", {"x": rand(2, 3, 11)}, attrs={"kernel_shape": [3], "strides": [2]})
case("MaxPool-indices", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [2, 2], "strides": [2, 2]}, outputs=2)
case("MaxPool-uint8", "MaxPool", {"x": rand(1, 2, 6, 6, dtype=np.uint8, lo=0, hi=255)}, attrs={"kernel_shape": [2, 2]},
     opsets=(12,))
case("AveragePool", "AveragePool", {"x": pool_x}, attrs={"kernel_shape": [3, 3], "strides": [2, 2]},
     opsets=(7, 10, 11, 19, 22))
case("AveragePool-pads-excl", "AveragePool", {"x": pool_x}, attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})
case("AveragePool-pads-incl", "AveragePool", {"x": pool_x},
     attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1})
case("AveragePool-ceil", "AveragePool", {"x": pool_x}, attrs={"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1})
case("AveragePool-1d", "AveragePool", {"x": rand(2, 3, 11)}, attrs={"kernel_shape": [4], "strides": [3]})
case("GlobalAveragePool", "GlobalAveragePool", {"x": pool_x}, opsets=(1, 22))
case("GlobalAveragePool-1d", "GlobalAveragePool", {"x": rand(2, 5, 7)})

bn = {"s": rand(3, lo=0.5), "b": rand(3), "m": rand(3), "v": rand(3, lo=0.5, hi=2)}
case("BatchNormalization", "BatchNormalization", {"x": pool_x}, dict(bn), attrs={"epsilon": 1e-3},
     opsets=(7, 9, 14, 15))
case("BatchNormalization-2d", "BatchNormalization", {"x": rand(4, 3)}, dict(bn))

case("Flatten", "Flatten", {"x": rand(2, 3, 4, 5)}, opsets=(1, 9, 11, 13, 21))
case("Flatten-axis", "Flatten", {"x": rand(2, 3, 4, 5)}, attrs={"axis": 2})
case("Flatten-axis0", "Flatten", {"x": rand(2, 3, 4)}, attrs={"axis": 0})
case("Flatten-neg", "Flatten", {"x": rand(2, 3, 4, 5)}, attrs={"axis": -1}, opsets=(11,))
case("Reshape", "Reshape", {"x": rand(2, 3, 4)}, {"shape": np.array([4, -1], np.int64)}, opsets=(5, 13, 14, 19, 21))
case("Reshape-zero", "Reshape", {"x": rand(2, 3, 4)}, {"shape": np.array([0, 0, 2, 2], np.int64)})
case("Reshape-runtime-shape", "Reshape", {"x": rand(2, 3, 4), "shape": np.array([3, 8], np.int64)})
case("Transpose", "Transpose", {"x": rand(2, 3, 4)}, opsets=(1, 13, 21))
case("Transpose-perm", "Transpose", {"x": rand(2, 3, 4, 5)}, attrs={"perm": [0, 3, 1, 2]})
case("Transpose-int", "Transpose", {"x": rand(3, 5, dtype=np.int64, lo=0, hi=100)}, attrs={"perm": [1, 0]})
case("Identity", "Identity", {"x": rand(3, 4)}, opsets=(1, 13, 14, 16, 19, 21))
case("Identity-bool", "Identity", {"x": rand(3, dtype=np.int64, lo=0, hi=1).astype(bool)})
case("Concat", "Concat", {"a": rand(2, 3), "b": rand(2, 5)}, attrs={"axis": 1}, opsets=(4, 11, 13))
case("Concat-neg", "Concat", {"a": rand(2, 3), "b": rand(4, 3)}, {"c": rand(1, 3)}, attrs={"axis": -2}, opsets=(11,))
case("Shape", "Shape", {"x": rand(2, 3, 4)}, opsets=(1, 13, 15))
case("Shape-slice", "Shape", {"x": rand(2, 3, 4, 5)}, attrs={"start": 1, "end": -1}, opsets=(15, 21))
case("Gather", "Gather", {"x": rand(5, 4)}, {"i": np.array([[0, 4], [2, 1]], np.int64)}, opsets=(1, 11, 13))
case("Gather-axis1-neg", "Gather", {"x": rand(3, 5, 2)}, {"i": np.array([-1, 0, 3], np.int32)}, attrs={"axis": 1},
     opsets=(13,))
case("Gather-scalar", "Gather", {"x": rand(5, 4)}, {"i": np.array(3, np.int64)})
case("Gather-int", "Gather", {"x": rand(6, dtype=np.int64, lo=0, hi=100), "i": np.array([5, 0, 1], np.int64)})
case("Unsqueeze-attr", "Unsqueeze", {"x": rand(3, 4)}, attrs={"axes": [0, 3]}, opsets=(1, 11))
case("Unsqueeze-input", "Unsqueeze", {"x": rand(3, 4)}, {"axes": np.array([-1, 0], np.int64)}, opsets=(13, 21))
case("Squeeze-attr", "Squeeze", {"x": rand(1, 3, 1, 4)}, attrs={"axes": [0, 2]}, opsets=(1, 11))
case("Squeeze-all", "Squeeze", {"x": rand(1, 3, 1, 4)}, opsets=(11, 13))
case("Squeeze-input", "Squeeze", {"x": rand(1, 3, 1, 4)}, {"axes": np.array([-2], np.int64)}, opsets=(13, 21))
for to, dt in [(1, np.float32), (11, np.float64), (10, np.float16), (7, np.int64), (6, np.int32), (3, np.int8),
               (2, np.uint8), (9, np.bool_), (12, np.uint32)]:
    case(f"Cast-f32-to-{np.dtype(dt).name}", "Cast", {"x": rand(3, 5, lo=-3, hi=200)}, attrs={"to": to},
         opsets=(6, 13, 19, 21))
case("Cast-int-to-f32", "Cast", {"x": rand(9, dtype=np.int64, lo=-9, hi=9)}, attrs={"to": 1})
case("Cast-bool-to-f32", "Cast", {"x": rand(9, dtype=np.int64, lo=0, hi=1).astype(bool)}, attrs={"to": 1})
case("Cast-f16-to-f32", "Cast", {"x": rand(9).astype(np.float16)}, attrs={"to": 1})


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,outputs,oracle", CASES)
def test_op_matches_oracle(op, inputs, consts, attrs, opset, outputs, oracle):
    names = list(inputs) + list(consts)
    out_names = ["y"] if outputs == 1 else [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, **attrs)
    out_elem = 0  # undefined: let the runtime infer
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, out_elem, None) for o in out_names], consts, opset=opset)
    if oracle == "reference":
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)
    else:
        expected = ort_run(model, inputs)
    m = mserve.load(model.SerializeToString(), threads=2)
    got = m.predict(dict(inputs))
    if outputs == 1:
        got = [got]
    else:
        got = [got[o] for o in out_names]
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if np.issubdtype(e.dtype, np.floating):
            tol = dict(rtol=1e-3, atol=1e-3) if e.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(g, e, **tol)
        else:
            np.testing.assert_array_equal(g, e)


def test_constant_op_all_forms():
    for opset, attrs, expected in [
        (9, {"value": helper.make_tensor("v", 1, [2], [1.5, 2.5])}, np.array([1.5, 2.5], np.float32)),
        (12, {"value_float": 3.0}, np.array(3.0, np.float32)),
        (12, {"value_floats": [1.0, 2.0]}, np.array([1.0, 2.0], np.float32)),
        (13, {"value_int": 7}, np.array(7, np.int64)),
        (13, {"value_ints": [4, 5, 6]}, np.array([4, 5, 6], np.int64)),
    ]:
        nodes = [helper.make_node("Constant", [], ["c"], **attrs), helper.make_node("Add", ["x", "c"], ["y"])]
        model = make_model(nodes, [("x", expected.dtype, list(expected.shape))], [("y", 0, None)], opset=opset)
        x = np.ones(expected.shape, expected.dtype)
        np.testing.assert_array_equal(mserve.load(model).predict(x), ort_run(model, {"x": x})[0])


def test_supported_ops_lists_foundation_ops():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in ["Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax", "Conv", "MaxPool",
               "AveragePool", "GlobalAveragePool", "BatchNormalization", "Flatten", "Reshape", "Transpose",
               "Identity", "Constant", "Concat", "Shape", "Gather", "Unsqueeze", "Squeeze", "Cast", "Clip"]:
        assert op in names


# Convs with constant weights run on oneDNN, planned per input shape and thread count; the same
# model is called with changing batch and image sizes on 1 and 2 threads (shapes as in
# ResNet/MobileNet layers: 3x3, strided, depthwise, pointwise, dilated, SAME padding, 1-D).
CONV_ENGINE = [
    ("3x3", (16, 8, 3, 3), {"pads": [1, 1, 1, 1]}, True, 2),
    ("strided-7x7", (16, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}, True, 2),
    ("depthwise", (48, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 48}, True, 2),
    ("grouped", (24, 6, 3, 3), {"pads": [0, 1, 1, 0], "group": 4}, False, 2),
    ("pointwise", (32, 48, 1, 1), {}, True, 2),
    ("dilated", (16, 8, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, True, 2),
    ("same-upper-s2", (16, 8, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, False, 2),
    ("same-lower-s2", (16, 8, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, True, 2),
    ("ceilish-stride", (16, 8, 2, 2), {"strides": [3, 3]}, True, 2),
    ("1d", (32, 16, 5), {"pads": [2, 2], "strides": [2]}, True, 1),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("wshape,attrs,bias,spatial", [pytest.param(*c[1:], id=c[0]) for c in CONV_ENGINE])
def test_conv_engine_matches_onnxruntime_across_shapes(wshape, attrs, bias, spatial, threads):
    cin = wshape[1] * attrs.get("group", 1)
    consts = {"w": rand(*wshape)}
    if bias:
        consts["b"] = rand(wshape[0])
    x_dims = ["n", cin] + ["s%d" % i for i in range(spatial)]
    m = make_model([helper.make_node("Conv", ["x"] + list(consts), ["y"], **attrs)],
                   [("x", np.float32, x_dims)], [("y", np.float32, None)], consts, opset=17)
    model = mserve.load(m.SerializeToString(), threads=threads)
    # Sizes above and below the engine's threshold (~256 kFLOP), repeated and interleaved.
    for n, size in [(1, 32), (3, 24), (1, 32), (2, 5), (4, 33) if spatial == 2 else (4, 500)]:
        x = rand(n, cin, *([size] * spatial))
        np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_profile_reports_time_per_op():
    m = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Sigmoid", ["c"], ["y"])],
                   [("x", np.float32, [1, 3, 8, 8])], [("y", np.float32, None)], {"w": rand(4, 3, 3, 3)})
    model = mserve.load(m.SerializeToString(), optimize=False)
    rows = model.profile(rand(1, 3, 8, 8), runs=7)
    assert sorted(op for op, _, _ in rows) == ["Conv", "Sigmoid"]
    assert all(calls == 7 and ms > 0 for _, calls, ms in rows)
    assert model.profile(rand(1, 3, 8, 8), runs=2)[0][1] == 2  # totals restart with each profile
    with pytest.raises(mserve.InvalidArgument):
        model.profile(rand(1, 3, 8, 8), runs=0)


# 2-D pools run as separable passes over chunks of padded planes; windows that hang over the
# edges (pads, ceil_mode), strides, counts with and without padding, NaN in a max.
POOL_PLANES = [
    ("avg-3x3-p1-excl", "AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ("avg-3x3-p1-incl", "AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("avg-2x3-s2-ceil", "AveragePool", {"kernel_shape": [2, 3], "strides": [2, 2], "pads": [0, 1, 1, 0], "ceil_mode": 1}),
    ("avg-4x4-s3-incl-ceil", "AveragePool", {"kernel_shape": [4, 4], "strides": [3, 3], "pads": [1, 2, 2, 1],
                                             "count_include_pad": 1, "ceil_mode": 1}),
    ("max-2x2-s2", "MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("max-3x3-s2-p1", "MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("max-3x1-ceil", "MaxPool", {"kernel_shape": [3, 1], "strides": [2, 1], "ceil_mode": 1}),
    ("max-5x5-same", "MaxPool", {"kernel_shape": [5, 5], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("op,attrs", [pytest.param(*c[1:], id=c[0]) for c in POOL_PLANES])
def test_pool_planes_match_onnxruntime(op, attrs, threads):
    m = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", np.float32, ["n", "c", "h", "w"])],
                   [("y", np.float32, None)], opset=19 if op == "AveragePool" else 12)
    model = mserve.load(m.SerializeToString(), threads=threads)
    for shape in [(2, 3, 8, 8), (1, 37, 9, 13), (3, 2, 33, 40), (1, 1, 5, 4)]:
        x = rand(*shape)
        np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-5, atol=1e-6)
    if op == "MaxPool":
        # A window holding a NaN gives NaN, as numpy's max does (onnxruntime skips NaN, and
        # onnx.reference keeps one only when it is a window's first tap): the oracle is
        # onnxruntime on the NaN-free input, masked by onnxruntime's max of a NaN indicator.
        x = rand(2, 3, 11, 10)
        x.ravel()[::7] = np.nan
        has_nan = ort_run(m, {"x": np.isnan(x).astype(np.float32)})[0] > 0
        want = np.where(has_nan, np.nan, ort_run(m, {"x": np.where(np.isnan(x), -np.inf, x)})[0])
        np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-6)


def test_conv_engine_keeps_working_past_its_shape_cache():
    # More image sizes than the engine keeps primitives for (64): old ones are dropped and made
    # again when they come back.
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                   [("x", np.float32, [1, 8, "h", "w"])], [("y", np.float32, None)], {"w": rand(16, 8, 3, 3)})
    model = mserve.load(m.SerializeToString(), threads=1)
    for size in list(range(12, 82)) + [12, 13]:
        x = rand(1, 8, size, 12)
        np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)


# MatMul and Gemm with constant weights run on oneDNN from ~128k multiply-adds (smaller ones on
# Eigen): several row counts per model, above and below that, on 1 and 2 threads.
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("a_dims", [["m", 96], ["b", "m", 96], [96]])
def test_matmul_engine_matches_onnxruntime(a_dims, threads):
    m = make_model([helper.make_node("MatMul", ["a", "B"], ["y"])], [("a", np.float32, a_dims)],
                   [("y", np.float32, None)], {"B": rand(96, 160)})
    model = mserve.load(m.SerializeToString(), threads=threads)
    for rows in [40, 3, 200, 40]:
        shape = {2: (rows, 96), 3: (2, rows // 2 + 1, 96), 1: (96,)}[len(a_dims)]
        a = rand(*shape)
        np.testing.assert_allclose(model.predict(a), ort_run(m, {"a": a})[0], rtol=1e-4, atol=1e-4)


GEMM_ENGINE = [
    ("plain", {}, None),
    ("transB-bias", {"transB": 1}, (160,)),
    ("alpha-beta-row", {"alpha": 0.5, "beta": 3.0}, (1, 160)),
    ("scalar-c", {"transB": 1}, ()),        # C broadcast from a scalar: Eigen
    ("full-c", {"beta": 0.5}, ("m", 160)),  # C [M, N]: Eigen
    ("transA", {"transA": 1}, (160,)),      # Eigen
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("attrs,c_shape", [pytest.param(*c[1:], id=c[0]) for c in GEMM_ENGINE])
def test_gemm_engine_matches_onnxruntime(attrs, c_shape, threads):
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)
    consts = {"B": rand(160, 96) if trans_b else rand(96, 160)}
    inputs = [("a", np.float32, [96, "m"] if trans_a else ["m", 96])]
    names = ["a", "B"]
    if c_shape is not None and "m" not in c_shape:
        consts["C"] = rand(*c_shape) if c_shape else np.array(0.25, np.float32)
        names.append("C")
    elif c_shape is not None:
        inputs.append(("C", np.float32, list(c_shape)))
        names.append("C")
    m = make_model([helper.make_node("Gemm", names, ["y"], **attrs)], inputs, [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString(), threads=threads)
    for rows in [64, 5, 300]:
        feeds = {"a": rand(96, rows) if trans_a else rand(rows, 96)}
        if len(inputs) > 1:
            feeds["C"] = rand(rows, 160)
        np.testing.assert_allclose(model.predict(feeds), ort_run(m, feeds)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
@pytest.mark.parametrize("shape,perm", [
    ((3, 70, 45), (0, 2, 1)), ((2, 3, 33, 40), (0, 2, 3, 1)), ((2, 33, 40, 3), (0, 3, 1, 2)),
    ((65, 70), (1, 0)), ((5, 1000), (1, 0)), ((1000, 5), (1, 0)), ((2, 4, 3, 5), (2, 0, 3, 1)),
    ((1, 16, 1, 40), (0, 3, 1, 2)), ((4, 5, 6), (1, 0, 2)),
])
def test_transpose_matches_numpy(shape, perm, dtype):
    m = make_model([helper.make_node("Transpose", ["x"], ["y"], perm=list(perm))], [("x", dtype, list(shape))],
                   [("y", dtype, None)])
    x = rand(*shape, dtype=dtype, lo=0, hi=100)
    for threads in (1, 2):
        np.testing.assert_array_equal(mserve.load(m.SerializeToString(), threads=threads).predict(x), x.transpose(perm))
