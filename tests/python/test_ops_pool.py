"""Pools (kernels/ops/pool.cc: MaxPool, AveragePool, LpPool, their global forms, MaxUnpool) on one-node models,
against onnxruntime (onnx.reference where onnxruntime lacks a kernel or departs from the spec); float32: rtol 1e-4,
atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, ort_run, random_inputs

rand = random_inputs(0)
CASES = Cases()
case = CASES.add

pool_x = rand(2, 3, 9, 8)
case("MaxPool", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [3, 3], "strides": [2, 2]},
     opsets=(1, 8, 10, 11, 12, 22))
case("MaxPool-pads", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [3, 2], "pads": [1, 0, 1, 1]})
case("MaxPool-ceil", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
     opsets=(10, 12))
case("MaxPool-dilations", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [2, 2], "dilations": [2, 2]}, opsets=(12,))
case("MaxPool-same", "MaxPool", {"x": pool_x},
     attrs={"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"})
case("MaxPool-1d", "MaxPool", {"x": rand(2, 3, 11)}, attrs={"kernel_shape": [3], "strides": [2]})
case("MaxPool-indices", "MaxPool", {"x": pool_x}, attrs={"kernel_shape": [2, 2], "strides": [2, 2]}, outputs=2)
case("MaxPool-uint8", "MaxPool", {"x": rand(1, 2, 6, 6, dtype=np.uint8, lo=0, hi=255)}, attrs={"kernel_shape": [2, 2]},
     opsets=(12,))
case("AveragePool", "AveragePool", {"x": pool_x}, attrs={"kernel_shape": [3, 3], "strides": [2, 2]},
     opsets=(7, 10, 11, 19, 22))
case("AveragePool-pads-excl", "AveragePool", {"x": pool_x}, attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})
case("AveragePool-pads-incl", "AveragePool", {"x": pool_x},
     attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1})
case("AveragePool-ceil", "AveragePool", {"x": pool_x},
     attrs={"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1})
case("AveragePool-1d", "AveragePool", {"x": rand(2, 3, 11)}, attrs={"kernel_shape": [4], "strides": [3]})
case("GlobalAveragePool", "GlobalAveragePool", {"x": pool_x}, opsets=(1, 22))
case("GlobalAveragePool-1d", "GlobalAveragePool", {"x": rand(2, 5, 7)})
# ---- LpPool ----
px = rand(2, 3, 9, 8)
case("LpPool-p2", "LpPool", {"x": px}, attrs={"kernel_shape": [3, 3]}, opsets=(2, 11, 18, 22))
case("LpPool-p1", "LpPool", {"x": px}, attrs={"kernel_shape": [2, 3], "strides": [2, 1], "p": 1}, opsets=(11, 18))
case("LpPool-p3", "LpPool", {"x": px}, attrs={"kernel_shape": [2, 2], "p": 3}, opsets=(18,))
case("LpPool-pads", "LpPool", {"x": px}, attrs={"kernel_shape": [3, 3], "pads": [1, 0, 1, 2]}, opsets=(11, 18))
case("LpPool-same", "LpPool", {"x": px}, attrs={"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
     opsets=(11,))
case("LpPool-dilations", "LpPool", {"x": px}, attrs={"kernel_shape": [2, 2], "dilations": [2, 2]}, opsets=(18,))
case("LpPool-ceil", "LpPool", {"x": px}, attrs={"kernel_shape": [2, 2], "strides": [2, 3], "ceil_mode": 1},
     opsets=(18,))
case("LpPool-1d", "LpPool", {"x": rand(2, 3, 11)}, attrs={"kernel_shape": [3], "strides": [2]}, opsets=(11,))
case("LpPool-3d", "LpPool", {"x": rand(1, 2, 4, 5, 6)}, attrs={"kernel_shape": [2, 2, 3]}, opsets=(11,))
case("LpPool-f64", "LpPool", {"x": rand(1, 2, 5, 5, dtype=np.float64)}, attrs={"kernel_shape": [2, 2]}, opsets=(11,),
     oracle="reference")

# ---- GlobalMaxPool, GlobalLpPool ----
case("GlobalMaxPool", "GlobalMaxPool", {"x": px}, opsets=(1, 22))
case("GlobalMaxPool-1d", "GlobalMaxPool", {"x": rand(2, 5, 7)})
case("GlobalMaxPool-3d", "GlobalMaxPool", {"x": rand(1, 3, 2, 3, 4)})
case("GlobalMaxPool-f64", "GlobalMaxPool", {"x": rand(1, 3, 3, 4, dtype=np.float64)}, oracle="reference")
case("GlobalLpPool", "GlobalLpPool", {"x": px}, opsets=(2,))
case("GlobalLpPool-p1", "GlobalLpPool", {"x": px}, attrs={"p": 1})
case("GlobalLpPool-p3", "GlobalLpPool", {"x": rand(2, 3, 7)}, attrs={"p": 3})


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


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


# 2-D pools run as separable passes over chunks of padded planes; windows that hang over the
# edges (pads, ceil_mode), strides, counts with and without padding, NaN in a max.
POOL_PLANES = [
    ("avg-3x3-p1-excl", "AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ("avg-3x3-p1-incl", "AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("avg-2x3-s2-ceil", "AveragePool",
     {"kernel_shape": [2, 3], "strides": [2, 2], "pads": [0, 1, 1, 0], "ceil_mode": 1}),
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


def test_lppool_opset1_float_p():
    # Opset 1 declares p as a float attribute.
    x = rand(1, 2, 5, 5)
    node = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], p=3.0)
    model = make_model([node], [("x", np.float32, [1, 2, 5, 5])], [("y", np.float32, None)], opset=1)
    got = mserve.load(model.SerializeToString()).predict(x)
    win = np.lib.stride_tricks.sliding_window_view(np.abs(x), (2, 2), axis=(2, 3))
    np.testing.assert_allclose(got, (win ** 3).sum(axis=(-1, -2)) ** (1 / 3), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset,p", [(1, 2.5), (2, 3), (22, 2)])
def test_global_lp_pool_all_opsets(opset, p):
    # onnxruntime stops at opset 2 and onnx.reference has no kernel: numpy is the oracle.
    x = rand(2, 3, 4, 5)
    node = helper.make_node("GlobalLpPool", ["x"], ["y"], p=p)
    model = make_model([node], [("x", np.float32, list(x.shape))], [("y", np.float32, None)], opset=opset)
    expected = (np.abs(x) ** p).sum(axis=(2, 3), keepdims=True) ** (1 / p)
    np.testing.assert_allclose(mserve.load(model.SerializeToString()).predict(x), expected, rtol=1e-4, atol=1e-5)


def test_maxunpool_errors_are_invalid_argument():
    node = helper.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2])
    m = mserve.load(make_model([node], [("x", np.float32, [1, 1, 2]), ("i", np.int64, [1, 1, 2])],
                               [("y", np.float32, None)], opset=17).SerializeToString())
    with pytest.raises(mserve.Error, match="index"):
        m.predict({"x": np.ones((1, 1, 2), np.float32), "i": np.array([[[0, 7]]], np.int64)})
