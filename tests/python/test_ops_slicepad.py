"""Slicing, padding, tiling and generator operators on one-node models, against onnxruntime (or
onnx.reference where onnxruntime lacks a kernel). float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from conftest import make_model, ort_run

RNG = np.random.default_rng(1)


def rand(*shape, dtype=np.float32, lo=-2.0, hi=2.0):
    if dtype == np.bool_:
        return RNG.integers(0, 2, size=shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def i64(*v):
    return np.array(v, np.int64)


CASES = []


def case(id_, op, inputs, consts=None, attrs=None, opsets=(17,), outputs=1, oracle="onnxruntime", names=None):
    """inputs: runtime inputs, consts: initializers; node inputs are both, in dict order, unless
    `names` lists them explicitly ("" for an omitted optional input)."""
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, outputs, oracle, names,
                                  id=f"{id_}-op{opset}"))


# ---- Slice
x345 = rand(3, 4, 5)
case("Slice-attrs", "Slice", {"x": x345}, attrs={"starts": [0, 1], "ends": [2, 3]}, opsets=(1,))
case("Slice-attrs-axes", "Slice", {"x": x345}, attrs={"starts": [-3, 1], "ends": [1000, -1], "axes": [2, 0]}, opsets=(1,))
case("Slice", "Slice", {"x": x345}, {"s": i64(0, 1), "e": i64(2, 3)}, opsets=(10, 11, 13))
case("Slice-axes-steps", "Slice", {"x": x345}, {"s": i64(1, 0), "e": i64(5, 4), "a": i64(-1, 1), "st": i64(2, 3)},
     opsets=(10, 13))
case("Slice-neg-steps", "Slice", {"x": x345}, {"s": i64(-1, 10), "e": i64(-1000, 0), "a": i64(2, 1),
                                                "st": i64(-2, -1)}, opsets=(10, 13))
case("Slice-clamp", "Slice", {"x": x345}, {"s": i64(-100, 2), "e": i64(100, 2**62), "a": i64(0, 2)})
case("Slice-empty", "Slice", {"x": x345}, {"s": i64(3), "e": i64(1), "a": i64(1)})
case("Slice-runtime", "Slice", {"x": x345, "s": i64(1, 1), "e": i64(3, -1), "a": i64(0, 2), "st": i64(1, 2)})
case("Slice-int32-idx", "Slice", {"x": x345}, {"s": np.array([1], np.int32), "e": np.array([4], np.int32)})
case("Slice-no-axes-steps", "Slice", {"x": x345}, {"s": i64(1), "e": i64(3), "st": i64(1)}, names=["x", "s", "e", "", "st"])
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

# ---- Pad
x34 = rand(3, 4)
for mode in ["constant", "reflect", "edge"]:
    case(f"Pad-attr-{mode}", "Pad", {"x": x34}, attrs={"mode": mode, "pads": [1, 2, 2, 1]}, opsets=(2,))
    case(f"Pad-{mode}", "Pad", {"x": rand(2, 3, 4)}, {"p": i64(0, 1, 2, 1, 2, 1)}, attrs={"mode": mode},
         opsets=(11, 13, 18, 19))
    case(f"Pad-{mode}-crop", "Pad", {"x": rand(3, 5)}, {"p": i64(-1, 2, 1, -2)}, attrs={"mode": mode}, opsets=(13,))
case("Pad-attr-value", "Pad", {"x": x34}, attrs={"pads": [0, 1, 1, 0], "value": 1.5}, opsets=(2,))
case("Pad-value", "Pad", {"x": x34}, {"p": i64(1, 1, 1, 1), "v": np.array(-3.0, np.float32)}, opsets=(11, 18))
case("Pad-wrap", "Pad", {"x": x34}, {"p": i64(2, 3, 1, 2)}, attrs={"mode": "wrap"}, opsets=(19, 21))
case("Pad-axes", "Pad", {"x": rand(2, 3, 4)}, {"p": i64(1, 2), "v": np.array(0.5, np.float32), "a": i64(-1)},
     opsets=(18, 19))
case("Pad-axes-reflect", "Pad", {"x": rand(2, 3, 4)}, {"p": i64(1, 2, 1, 1), "a": i64(0, 2)},
     attrs={"mode": "reflect"}, names=["x", "p", "", "a"], opsets=(18,))
case("Pad-runtime", "Pad", {"x": x34, "p": i64(1, 0, 0, 2)}, opsets=(13,))
case("Pad-int64", "Pad", {"x": rand(3, 3, dtype=np.int64, lo=-9, hi=9)}, {"p": i64(1, 1, 0, 2),
                                                                         "v": np.array(7, np.int64)})
case("Pad-int32-edge", "Pad", {"x": rand(2, 3, dtype=np.int32, lo=-9, hi=9)}, {"p": i64(2, 2, 2, 2)},
     attrs={"mode": "edge"})
case("Pad-bool", "Pad", {"x": rand(2, 3, dtype=np.bool_)}, {"p": i64(1, 0, 0, 1)})
case("Pad-f64-reflect", "Pad", {"x": rand(1, 2, 5, 5, dtype=np.float64)}, {"p": i64(0, 0, 2, 3, 0, 0, 4, 1)},
     attrs={"mode": "reflect"})
case("Pad-1d", "Pad", {"x": rand(5)}, {"p": i64(3, 0)}, attrs={"mode": "reflect"})

# ---- Range, ConstantOfShape, Size, EyeLike, Dropout, CastLike
for dt, (s, l, d) in [(np.float32, (1.0, 5.5, 0.5)), (np.float64, (-1.0, 3.0, 0.3)), (np.int32, (10, -3, -3)),
                      (np.int64, (0, 7, 2)), (np.int16, (3, 4, 5)), (np.float32, (5.0, 1.0, 1.0))]:
    name = f"Range-{np.dtype(dt).name}-{s}-{l}-{d}"
    case(name, "Range", {}, {"s": np.array(s, dt), "l": np.array(l, dt), "d": np.array(d, dt)}, opsets=(11,))
case("Range-runtime", "Range", {"s": np.array(2, np.int64), "l": np.array(11, np.int64), "d": np.array(3, np.int64)})
case("ConstantOfShape-default", "ConstantOfShape", {}, {"s": i64(2, 3)}, opsets=(9, 20))
case("ConstantOfShape-int", "ConstantOfShape", {}, {"s": i64(4)},
     attrs={"value": helper.make_tensor("v", 7, [1], [5])}, opsets=(9,))
case("ConstantOfShape-runtime", "ConstantOfShape", {"s": i64(3, 2, 1)},
     attrs={"value": helper.make_tensor("v", 1, [1], [0.25])})
case("ConstantOfShape-scalar", "ConstantOfShape", {"s": np.zeros(0, np.int64)},
     attrs={"value": helper.make_tensor("v", 11, [1], [2.5])})
case("ConstantOfShape-bool", "ConstantOfShape", {}, {"s": i64(2, 2)}, attrs={"value": helper.make_tensor("v", 9, [1], [1])})
case("Size", "Size", {"x": rand(3, 4, 5)}, opsets=(1, 13, 19, 21))
case("Size-scalar", "Size", {"x": np.array(1.0, np.float32)})
case("Size-empty", "Size", {"x": rand(3, 0, dtype=np.int32)})
case("EyeLike", "EyeLike", {"x": rand(4, 5)}, opsets=(9, 22))
case("EyeLike-k", "EyeLike", {"x": rand(5, 3)}, attrs={"k": -2})
case("EyeLike-k-pos-dtype", "EyeLike", {"x": rand(3, 6)}, attrs={"k": 2, "dtype": 7})
case("EyeLike-int32", "EyeLike", {"x": rand(3, 3, dtype=np.int32)}, attrs={"dtype": 11})
case("Dropout-7", "Dropout", {"x": rand(3, 4)}, attrs={"ratio": 0.3}, opsets=(7,))
case("Dropout-mask", "Dropout", {"x": rand(3, 4)}, outputs=2, opsets=(12, 13))
# onnxruntime's opset 10/11 kernel returns an all-false mask; the spec and onnx.reference say all true.
case("Dropout-mask-10", "Dropout", {"x": rand(3, 4)}, outputs=2, opsets=(10,), oracle="reference")
case("Dropout-ratio", "Dropout", {"x": rand(3, 4)}, {"r": np.array(0.4, np.float32)}, outputs=2, opsets=(12, 13))
case("Dropout-training-off", "Dropout", {"x": rand(5)}, {"r": np.array(0.4, np.float32), "t": np.array(False)},
     outputs=2, opsets=(13,))
case("Dropout-training-zero-ratio", "Dropout", {"x": rand(5)}, {"r": np.array(0.0, np.float32), "t": np.array(True)},
     outputs=2, opsets=(13,), oracle="reference")
case("Dropout-f64", "Dropout", {"x": rand(2, 3, dtype=np.float64)}, opsets=(13,))
for src, dst in [(np.float32, np.float64), (np.float32, np.int32), (np.float64, np.float16), (np.float16, np.float32),
                 (np.int64, np.float32), (np.float32, np.bool_), (np.bool_, np.float32), (np.int32, np.int8)]:
    name = f"CastLike-{np.dtype(src).name}-{np.dtype(dst).name}"
    case(name, "CastLike", {"x": rand(3, 4, dtype=src, lo=-20, hi=20)}, {"t": np.zeros(1, dst)}, opsets=(15, 19, 21))


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,outputs,oracle,names", CASES)
def test_op_matches_oracle(op, inputs, consts, attrs, opset, outputs, oracle, names):
    if names is None:
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
    got = m.predict(dict(inputs)) if inputs else m.predict({})
    got = [got] if outputs == 1 else [got[o] for o in out_names]
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if np.issubdtype(e.dtype, np.floating):
            tol = dict(rtol=1e-3, atol=1e-3) if e.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(g, e, **tol)
        else:
            np.testing.assert_array_equal(g, e)


def _single(op, inputs, consts=None, attrs=None, opset=17, outputs=1):
    names = list(inputs) + list(consts or {})
    out_names = ["y"] if outputs == 1 else [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, **(attrs or {}))
    return make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                      [(o, 1, None) for o in out_names], consts or {}, opset=opset)


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
        m = mserve.load(_single(op, inputs, consts, attrs).SerializeToString())
        m.predict(dict(inputs))


def test_split_uneven_before_18_is_rejected():
    with pytest.raises(mserve.Error):
        m = mserve.load(_single("Split", {"x": rand(7)}, outputs=2, opset=13).SerializeToString())
        m.predict({"x": rand(7)})


def test_dropout_training_with_ratio_is_unsupported():
    model = _single("Dropout", {"x": rand(4)}, {"r": np.array(0.5, np.float32), "t": np.array(True)}, opset=13)
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict({"x": rand(4)})


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
    model = _single("Pad", {"x": x}, {"p": i64(1, 2, 3, 4, 5, 6)}, {"mode": "reflect"}, opset=13)
    got = mserve.load(model.SerializeToString(), threads=4).predict({"x": x})
    np.testing.assert_array_equal(got, np.pad(x, [(1, 4), (2, 5), (3, 6)], mode="reflect"))
    model = _single("Tile", {"x": x}, {"r": i64(2, 1, 3)}, opset=13)
    got = mserve.load(model.SerializeToString(), threads=4).predict({"x": x})
    np.testing.assert_array_equal(got, np.tile(x, (2, 1, 3)))


def test_supported_ops_lists_slicepad_ops():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in ["Slice", "Split", "Tile", "Pad", "Expand", "Range", "ConstantOfShape", "Size", "EyeLike", "Dropout",
               "CastLike"]:
        assert op in names
