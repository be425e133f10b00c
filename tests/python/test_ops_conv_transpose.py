"""ConvTranspose and Col2Im (kernels/ops/conv_transpose.cc) on one-node models, against onnxruntime
(onnx.reference where onnxruntime lacks a kernel or departs from the spec); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, random_inputs

rand = random_inputs(0)
CASES = Cases()
case = CASES.add

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


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


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
