"""ConvTranspose, Col2Im, LpPool, GlobalMaxPool, GlobalLpPool on one-node models, against onnxruntime
(onnx.reference where onnxruntime lacks a kernel or departs from the spec); float32 rtol 1e-4, atol 1e-5."""
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


def case(id_, op, inputs, consts=None, attrs=None, opsets=(17,), oracle="onnxruntime"):
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, oracle, id=f"{id_}-op{opset}"))


# ---- ConvTranspose ----
x2 = rand(2, 3, 5, 4)
w2 = rand(3, 2, 3, 3)
case("ConvT-2d", "ConvTranspose", {"x": x2}, {"w": w2}, opsets=(1, 11, 22))
case("ConvT-2d-bias", "ConvTranspose", {"x": x2}, {"w": w2, "b": rand(2)}, opsets=(11,))
case("ConvT-strides", "ConvTranspose", {"x": x2}, {"w": w2, "b": rand(2)}, attrs={"strides": [2, 3]}, opsets=(11, 22))
case("ConvT-pads", "ConvTranspose", {"x": x2}, {"w": w2},
     attrs={"strides": [2, 2], "pads": [1, 0, 2, 1]}, opsets=(11,))
case("ConvT-dilations", "ConvTranspose", {"x": x2}, {"w": w2}, attrs={"dilations": [2, 1], "strides": [1, 2]})
case("ConvT-output-padding", "ConvTranspose", {"x": x2}, {"w": w2},
     attrs={"strides": [3, 2], "output_padding": [1, 1], "pads": [1, 1, 0, 0]}, opsets=(11,))
case("ConvT-output-shape", "ConvTranspose", {"x": x2}, {"w": w2},
     attrs={"strides": [2, 2], "output_shape": [12, 10]}, opsets=(11,))
case("ConvT-output-shape-crop", "ConvTranspose", {"x": x2}, {"w": w2},
     attrs={"strides": [2, 2], "output_shape": [10, 8]}, opsets=(11,))
case("ConvT-same-upper", "ConvTranspose", {"x": x2}, {"w": w2},
     attrs={"strides": [2, 2], "auto_pad": "SAME_UPPER"}, opsets=(11,), oracle="reference")
case("ConvT-same-lower", "ConvTranspose", {"x": x2}, {"w": w2},
     attrs={"strides": [2, 2], "auto_pad": "SAME_LOWER"}, opsets=(11,), oracle="reference")
case("ConvT-same-even", "ConvTranspose", {"x": x2}, {"w": rand(3, 2, 2, 2)},
     attrs={"strides": [2, 2], "auto_pad": "SAME_UPPER"}, opsets=(11,))
case("ConvT-valid", "ConvTranspose", {"x": x2}, {"w": w2}, attrs={"strides": [2, 1], "auto_pad": "VALID"})
case("ConvT-group", "ConvTranspose", {"x": rand(2, 4, 5, 5)}, {"w": rand(4, 3, 3, 2), "b": rand(6)},
     attrs={"group": 2, "strides": [2, 1]}, opsets=(11, 22))
case("ConvT-depthwise", "ConvTranspose", {"x": rand(1, 6, 4, 4)}, {"w": rand(6, 1, 3, 3)},
     attrs={"group": 6, "pads": [1, 1, 1, 1]})
case("ConvT-1d", "ConvTranspose", {"x": rand(2, 3, 7)}, {"w": rand(3, 4, 3), "b": rand(4)},
     attrs={"strides": [2], "pads": [1, 0]})
case("ConvT-3d", "ConvTranspose", {"x": rand(1, 2, 3, 4, 3)}, {"w": rand(2, 3, 2, 3, 2)},
     attrs={"strides": [2, 1, 2], "pads": [0, 1, 1, 1, 0, 0]})
case("ConvT-kernel-shape", "ConvTranspose", {"x": x2}, {"w": w2}, attrs={"kernel_shape": [3, 3]})
case("ConvT-f64", "ConvTranspose", {"x": rand(1, 2, 4, 4, dtype=np.float64)}, {"w": rand(2, 3, 3, 3, dtype=np.float64)},
     attrs={"strides": [2, 2]}, oracle="reference")
case("ConvT-runtime-w", "ConvTranspose", {"x": rand(1, 3, 4, 4), "w": rand(3, 2, 2, 2)}, attrs={"strides": [2, 2]})

# ---- Col2Im (onnxruntime has it from opset 18) ----
case("Col2Im", "Col2Im", {"x": rand(1, 5, 5)},
     {"i": np.array([5, 5], np.int64), "b": np.array([1, 5], np.int64)}, opsets=(18,), oracle="reference")
case("Col2Im-strides-pads", "Col2Im", {"x": rand(2, 2 * 4, 12)},
     {"i": np.array([6, 5], np.int64), "b": np.array([2, 2], np.int64)},
     attrs={"strides": [2, 2], "pads": [1, 0, 1, 1]}, opsets=(18,), oracle="reference")
case("Col2Im-dilations", "Col2Im", {"x": rand(1, 3 * 4, 9)},
     {"i": np.array([5, 5], np.int64), "b": np.array([2, 2], np.int64)},
     attrs={"dilations": [2, 2]}, opsets=(18,), oracle="reference")
case("Col2Im-3d", "Col2Im", {"x": rand(1, 2 * 8, 2 * 3 * 4)},
     {"i": np.array([3, 4, 5], np.int64), "b": np.array([2, 2, 2], np.int64)}, opsets=(18,), oracle="reference")
case("Col2Im-f64", "Col2Im", {"x": rand(1, 4, 9, dtype=np.float64)},
     {"i": np.array([4, 4], np.int64), "b": np.array([2, 2], np.int64)}, opsets=(18,), oracle="reference")

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


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,oracle", CASES)
def test_op_matches_oracle(op, inputs, consts, attrs, opset, oracle):
    names = list(inputs) + list(consts)
    node = helper.make_node(op, names, ["y"], **attrs)
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()], [("y", 0, None)], consts,
                       opset=opset)
    if oracle == "reference":
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)[0]
    else:
        expected = ort_run(model, inputs)[0]
    got = mserve.load(model.SerializeToString(), threads=2).predict(dict(inputs))
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


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


def test_col2im_runtime_shape_inputs():
    # image_shape and block_shape fed at run time: the output shape is settled when they arrive.
    x = rand(1, 4, 9)
    node = helper.make_node("Col2Im", ["x", "i", "b"], ["y"])
    model = make_model([node], [("x", np.float32, [1, 4, 9]), ("i", np.int64, [2]), ("b", np.int64, [2])],
                       [("y", np.float32, None)], opset=18)
    feeds = {"x": x, "i": np.array([4, 4], np.int64), "b": np.array([2, 2], np.int64)}
    from onnx.reference import ReferenceEvaluator
    np.testing.assert_allclose(mserve.load(model.SerializeToString()).predict(feeds),
                               ReferenceEvaluator(model).run(None, feeds)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op,x,consts,attrs,opset", [
    ("ConvTranspose", rand(1, 3, 4, 4), {"w": rand(2, 2, 3, 3)}, {}, 11),            # W dim 0 != C
    ("ConvTranspose", rand(1, 4, 4, 4), {"w": rand(4, 2, 3, 3)}, {"group": 3}, 11),  # C not divisible
    ("ConvTranspose", rand(1, 2, 2, 2), {"w": rand(2, 1, 3, 3)}, {"pads": [3, 3, 3, 3]}, 11),  # empty
    ("Col2Im", rand(1, 4, 8), {"i": np.array([4, 4], np.int64), "b": np.array([2, 2], np.int64)}, {}, 18),
    ("LpPool", rand(1, 2, 3, 3), {}, {"kernel_shape": [4, 4]}, 11),
])
def test_bad_shapes_are_invalid_argument(op, x, consts, attrs, opset):
    node = helper.make_node(op, ["x"] + list(consts), ["y"], **attrs)
    model = make_model([node], [("x", np.float32, list(x.shape))], [("y", np.float32, None)], consts, opset=opset)
    with pytest.raises(mserve.InvalidArgument):
        mserve.load(model.SerializeToString()).predict(x)
