"""Slice, Split, Tile, Expand (kernels/ops/slice_tile.cc) on one-node models, numbers and strings,
against onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, i64, make_model, one_node, random_inputs, strings

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

# ---- Slice
x345 = rand(3, 4, 5)
case("Slice-attrs", "Slice", {"x": x345}, attrs={"starts": [0, 1], "ends": [2, 3]}, opsets=(1,))
case("Slice-attrs-axes", "Slice", {"x": x345}, attrs={"starts": [-3, 1], "ends": [1000, -1], "axes": [2, 0]},
     opsets=(1,))
case("Slice", "Slice", {"x": x345}, {"s": i64(0, 1), "e": i64(2, 3)}, opsets=(10, 11, 13))
case("Slice-axes-steps", "Slice", {"x": x345}, {"s": i64(1, 0), "e": i64(5, 4), "a": i64(-1, 1), "st": i64(2, 3)},
     opsets=(10, 13))
case("Slice-neg-steps", "Slice", {"x": x345}, {"s": i64(-1, 10), "e": i64(-1000, 0), "a": i64(2, 1),
                                                "st": i64(-2, -1)}, opsets=(10, 13))
case("Slice-clamp", "Slice", {"x": x345}, {"s": i64(-100, 2), "e": i64(100, 2**62), "a": i64(0, 2)})
case("Slice-empty", "Slice", {"x": x345}, {"s": i64(3), "e": i64(1), "a": i64(1)})
case("Slice-runtime", "Slice", {"x": x345, "s": i64(1, 1), "e": i64(3, -1), "a": i64(0, 2), "st": i64(1, 2)})
case("Slice-int32-idx", "Slice", {"x": x345}, {"s": np.array([1], np.int32), "e": np.array([4], np.int32)})
case("Slice-no-axes-steps", "Slice", {"x": x345}, {"s": i64(1), "e": i64(3), "st": i64(1)},
     names=["x", "s", "e", "", "st"])
case("Slice-int64", "Slice", {"x": rand(6, 7, dtype=np.int64, lo=-99, hi=99)}, {"s": i64(5, 1), "e": i64(0, 7),
                                                                              "a": i64(0, 1), "st": i64(-2, 3)})
case("Slice-bool", "Slice", {"x": rand(6, 7, dtype=np.bool_)}, {"s": i64(1), "e": i64(-1), "a": i64(1)})
case("Slice-f16", "Slice", {"x": rand(4, 6).astype(np.float16)}, {"s": i64(1), "e": i64(5), "a": i64(1), "st": i64(3)})
case("Slice-5d", "Slice", {"x": rand(2, 3, 2, 4, 3)}, {"s": i64(1, 0, 2), "e": i64(3, 2, 0), "a": i64(1, 2, 4),
                                                        "st": i64(1, 1, -1)})

# ---- Split
case("Split-equal", "Split", {"x": rand(6, 4)}, outputs=3, opsets=(2, 11, 13))
case("Split-attr", "Split", {"x": rand(3, 7)}, attrs={"axis": 1, "split": [2, 4, 1]}, outputs=3, opsets=(2, 11))
case("Split-input", "Split", {"x": rand(3, 7)}, {"sp": i64(2, 0, 5)}, attrs={"axis": -1}, outputs=3, opsets=(13, 18))
case("Split-runtime", "Split", {"x": rand(4, 5), "sp": i64(1, 3)}, outputs=2, opsets=(13,))
case("Split-num-outputs", "Split", {"x": rand(2, 7)}, attrs={"axis": 1, "num_outputs": 3}, outputs=3, opsets=(18,))
case("Split-num-outputs-even", "Split", {"x": rand(6, 2, 3)}, attrs={"num_outputs": 2}, outputs=2, opsets=(18,))
case("Split-int", "Split", {"x": rand(4, 6, dtype=np.int32, lo=-9, hi=9)}, attrs={"axis": 1}, outputs=2)

# ---- Tile
case("Tile", "Tile", {"x": rand(2, 3)}, {"r": i64(2, 3)}, opsets=(6, 13))
case("Tile-3d", "Tile", {"x": rand(2, 1, 3)}, {"r": i64(1, 4, 2)})
case("Tile-runtime", "Tile", {"x": rand(3, 2), "r": i64(3, 1)})
case("Tile-zero", "Tile", {"x": rand(2, 3)}, {"r": i64(0, 2)})
case("Tile-int64", "Tile", {"x": rand(4, dtype=np.int64, lo=-9, hi=9)}, {"r": i64(3)})
case("Tile-bool", "Tile", {"x": rand(2, 2, dtype=np.bool_)}, {"r": i64(2, 2)})

# ---- Expand
case("Expand", "Expand", {"x": rand(3, 1)}, {"s": i64(2, 3, 4)}, opsets=(8, 13))
case("Expand-smaller-shape", "Expand", {"x": rand(2, 1, 4)}, {"s": i64(3, 1)})
case("Expand-scalar", "Expand", {"x": np.array(2.5, np.float32)}, {"s": i64(2, 2)})
case("Expand-same", "Expand", {"x": rand(2, 3)}, {"s": i64(2, 3)})
case("Expand-runtime", "Expand", {"x": rand(1, 3), "s": i64(4, 1)})
case("Expand-int32", "Expand", {"x": rand(1, 5, dtype=np.int32, lo=-9, hi=9)}, {"s": i64(3, 1, 1)})
case("Expand-f64", "Expand", {"x": rand(3, 1, dtype=np.float64)}, {"s": i64(3, 6)})
# --- shape and copy operators on strings
GRID = np.array([f"s{i}" for i in range(24)], dtype=object).reshape(2, 3, 4)
case("Slice-strings", "Slice", {"x": GRID},
     {"s": np.array([0, 3], np.int64), "e": np.array([2, 0], np.int64), "ax": np.array([1, 2], np.int64),
      "st": np.array([1, -2], np.int64)}, opsets=(13,))
case("Expand-strings", "Expand", {"x": strings("a", "b", "c", shape=(3, 1))}, {"s": np.array([2, 3, 4], np.int64)},
     opsets=(13,))
case("Tile-strings", "Tile", {"x": strings("a", "b", "c", "d", shape=(2, 2))}, {"r": np.array([2, 3], np.int64)},
     opsets=(13,))
case("Split-strings", "Split", {"x": GRID}, {"sp": np.array([1, 3], np.int64)}, attrs={"axis": 2}, opsets=(13,),
     outputs=2)


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


@pytest.mark.parametrize("op,inputs,consts,attrs", [
    ("Slice", {"x": rand(3, 4)}, {"s": i64(0), "e": i64(2), "a": i64(0), "st": i64(0)}, {}),
    ("Slice", {"x": rand(3, 4)}, {"s": i64(0, 0), "e": i64(2, 2), "a": i64(1, -1)}, {}),
    ("Tile", {"x": rand(3, 4)}, {"r": i64(2)}, {}),
    ("Expand", {"x": rand(3, 4)}, {"s": i64(2, 4)}, {}),
    ("Pad", {"x": rand(3, 4)}, {"p": i64(1, 1)}, {}),
    ("Pad", {"x": rand(3, 4)}, {"p": i64(-4, 0, 0, 0)}, {}),
    ("Range", {}, {"s": np.array(0.0, np.float32), "l": np.array(2.0, np.float32),
                   "d": np.array(0.0, np.float32)}, {}),
])
def test_bad_values_are_invalid_argument(op, inputs, consts, attrs):
    with pytest.raises(mserve.Error):
        m = mserve.load(one_node(op, inputs, consts, attrs, out_type=1)[0].SerializeToString())
        m.predict(dict(inputs))


def test_split_uneven_before_18_is_rejected():
    with pytest.raises(mserve.Error):
        m = mserve.load(one_node("Split", {"x": rand(7)}, outputs=2, opset=13, out_type=1)[0].SerializeToString())
        m.predict({"x": rand(7)})


def test_runtime_shapes_change_between_calls():
    # Slice bounds fed at run time: the plan must follow them call after call.
    node = helper.make_node("Slice", ["x", "s", "e"], ["y"])
    model = make_model([node], [("x", np.float32, [6, 5]), ("s", np.int64, [1]), ("e", np.int64, [1])],
                       [("y", 1, None)], opset=13)
    m = mserve.load(model.SerializeToString())
    x = rand(6, 5)
    for s, e in [(0, 3), (2, 6), (-2, 100), (4, 1)]:
        got = m.predict({"x": x, "s": i64(s), "e": i64(e)})
        np.testing.assert_array_equal(got, x[s:e])


def test_large_pad_and_tile_use_threads():
    x = rand(64, 33, 17)
    model = one_node("Pad", {"x": x}, {"p": i64(1, 2, 3, 4, 5, 6)}, {"mode": "reflect"}, opset=13, out_type=1)[0]
    got = mserve.load(model.SerializeToString(), threads=4).predict({"x": x})
    np.testing.assert_array_equal(got, np.pad(x, [(1, 4), (2, 5), (3, 6)], mode="reflect"))
    model = one_node("Tile", {"x": x}, {"r": i64(2, 1, 3)}, opset=13, out_type=1)[0]
    got = mserve.load(model.SerializeToString(), threads=4).predict({"x": x})
    np.testing.assert_array_equal(got, np.tile(x, (2, 1, 3)))


def test_supported_ops_lists_slicing_padding_and_generator_ops():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in ["Slice", "Split", "Tile", "Pad", "Expand", "Range", "ConstantOfShape", "Size", "EyeLike", "Dropout",
               "CastLike"]:
        assert op in names
