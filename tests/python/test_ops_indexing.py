"""Indexing, scatter and layout operators on one-node models, against onnxruntime (onnx.reference
where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
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


def ints(values, dtype=np.int64):
    return np.array(values, dtype)


# (op, runtime inputs, constant inputs, attrs, opset, n_outputs, oracle); node inputs are the
# runtime inputs, then the constants, in dict order (a None value is an omitted optional input).
CASES = []


def case(id_, op, inputs, consts=None, attrs=None, opsets=(17,), outputs=1, oracle="onnxruntime"):
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, outputs, oracle, id=f"{id_}-op{opset}"))


# ---------------------------------------------------------------------------- GatherElements
case("GatherElements-axis0", "GatherElements", {"x": rand(4, 3)}, {"i": ints([[0, 3, 1], [2, 2, 0]])},
     opsets=(11, 13))
case("GatherElements-axis1-neg", "GatherElements", {"x": rand(3, 5)}, {"i": ints([[-1, 0], [4, -5], [2, 2]], np.int32)},
     attrs={"axis": 1}, opsets=(13,))
case("GatherElements-3d", "GatherElements", {"x": rand(3, 4, 5), "i": rand(2, 6, 3, dtype=np.int64, lo=0, hi=3)},
     attrs={"axis": -2})
case("GatherElements-int", "GatherElements", {"x": rand(5, 4, dtype=np.int32, lo=-9, hi=9),
                                              "i": rand(5, 4, dtype=np.int64, lo=0, hi=4)})

# ---------------------------------------------------------------------------------- GatherND
case("GatherND-full", "GatherND", {"x": rand(3, 4)}, {"i": ints([[0, 0], [2, 3], [-1, -2]])}, opsets=(11, 12, 13))
case("GatherND-slices", "GatherND", {"x": rand(3, 4, 5)}, {"i": ints([[[1], [0]], [[2], [-1]]])})
case("GatherND-partial", "GatherND", {"x": rand(3, 4, 5, dtype=np.int32, lo=-50, hi=50)}, {"i": ints([[1, 2], [0, 3]])})
case("GatherND-batch1", "GatherND", {"x": rand(2, 3, 4)}, {"i": ints([[[1], [0]], [[2], [2]]])},
     attrs={"batch_dims": 1}, opsets=(12, 13))
case("GatherND-batch2", "GatherND", {"x": rand(2, 3, 4, 5)}, {"i": rand(2, 3, 2, 1, dtype=np.int64, lo=0, hi=3)},
     attrs={"batch_dims": 2})

# --------------------------------------------------------------------------------- ScatterND
case("ScatterND-elements", "ScatterND", {"x": rand(8)}, {"i": ints([[4], [3], [1], [7]]), "u": rand(4)},
     opsets=(11, 13, 16, 18))
case("ScatterND-slices", "ScatterND", {"x": rand(4, 4, 4)}, {"i": ints([[0], [-2]]), "u": rand(2, 4, 4)})
case("ScatterND-2d-idx", "ScatterND", {"x": rand(3, 4, 5), "i": ints([[0, 1], [2, 3]]), "u": rand(2, 5)})
for red in ["add", "mul"]:
    case(f"ScatterND-{red}-dup", "ScatterND", {"x": rand(4, 3)}, {"i": ints([[1], [1], [3]]), "u": rand(3, 3)},
         attrs={"reduction": red}, opsets=(16, 18))
for red in ["max", "min"]:
    case(f"ScatterND-{red}-dup", "ScatterND", {"x": rand(4, 3)}, {"i": ints([[1], [1], [3]]), "u": rand(3, 3)},
         attrs={"reduction": red}, opsets=(18,))
case("ScatterND-int", "ScatterND", {"x": rand(6, dtype=np.int64, lo=0, hi=9)},
     {"i": ints([[5], [0]]), "u": rand(2, dtype=np.int64, lo=0, hi=9)}, attrs={"reduction": "add"}, opsets=(16,))

# -------------------------------------------------------------------------- ScatterElements
case("ScatterElements-axis0", "ScatterElements", {"x": np.zeros((3, 3), np.float32)},
     {"i": ints([[1, 0, 2], [0, 2, 1]]), "u": rand(2, 3)}, opsets=(11, 13, 16, 18))
case("ScatterElements-axis1-neg", "ScatterElements", {"x": rand(1, 5)}, {"i": ints([[1, -2]], np.int32), "u": rand(1, 2)},
     attrs={"axis": 1}, opsets=(13,))
case("ScatterElements-3d", "ScatterElements", {"x": rand(3, 4, 5)},
     {"i": ints([[[0, 1, 2, 3, 0], [3, 2, 1, 0, 1]], [[1, 1, 0, 0, 2], [2, 3, 3, 1, 0]]]), "u": rand(2, 2, 5)}, attrs={"axis": 1})
for red, ops in [("add", (16, 18)), ("mul", (16, 18)), ("max", (18,)), ("min", (18,))]:
    case(f"ScatterElements-{red}", "ScatterElements", {"x": rand(3, 4)},
         {"i": ints([[1, 1, 3], [0, 0, 0], [2, 3, 2]]), "u": rand(3, 3)}, attrs={"axis": 1, "reduction": red}, opsets=ops)

# ------------------------------------------------------------------------------------ OneHot
case("OneHot-last", "OneHot", {"i": ints([[1, 5], [0, 2]])}, {"d": np.array(6, np.int64), "v": np.array([0, 1], np.int64)},
     opsets=(9, 11))
case("OneHot-axis0-float", "OneHot", {"i": ints([1, 3, 0], np.int32)},
     {"d": np.array(4, np.float32), "v": np.array([-1.5, 2.5], np.float32)}, attrs={"axis": 0}, opsets=(11,))
case("OneHot-neg-indices", "OneHot", {"i": ints([[-1, 2, 7], [-4, 0, -9]])},
     {"d": np.array(4, np.int64), "v": np.array([0.0, 3.0], np.float32)}, attrs={"axis": 1}, opsets=(11,))
case("OneHot-neg-axis", "OneHot", {"i": rand(2, 3, dtype=np.int64, lo=0, hi=4)},
     {"d": np.array(5, np.int64), "v": np.array([0, 1], np.int32)}, attrs={"axis": -2}, opsets=(11,), oracle="reference")

# ----------------------------------------------------------------------------------- NonZero
case("NonZero-float", "NonZero", {"x": (rand(3, 4) * (rand(3, 4) > 0)).astype(np.float32)}, opsets=(9, 13))
case("NonZero-int-3d", "NonZero", {"x": rand(2, 3, 4, dtype=np.int32, lo=-1, hi=1)})
case("NonZero-bool", "NonZero", {"x": rand(5, dtype=np.int64, lo=0, hi=1).astype(bool)})
case("NonZero-const", "NonZero", {}, {"x": ints([[0, 3], [2, 0]])})

# -------------------------------------------------------------------------------------- TopK
case("TopK-attr", "TopK", {"x": rand(3, 6)}, attrs={"k": 2}, opsets=(1,), outputs=2)
case("TopK-input", "TopK", {"x": rand(3, 6)}, {"k": ints([3])}, opsets=(10, 11), outputs=2)
case("TopK-axis0", "TopK", {"x": rand(5, 4)}, {"k": ints([2])}, attrs={"axis": 0}, opsets=(10, 11), outputs=2)
case("TopK-smallest", "TopK", {"x": rand(2, 7, 3)}, {"k": ints([4])}, attrs={"axis": 1, "largest": 0}, opsets=(11,),
     outputs=2)
case("TopK-ties", "TopK", {"x": rand(3, 8, dtype=np.int64, lo=0, hi=3)}, {"k": ints([5])}, opsets=(11,), outputs=2)
case("TopK-ties-smallest", "TopK", {"x": rand(3, 8, dtype=np.int32, lo=0, hi=2)}, {"k": ints([5])},
     attrs={"largest": 0, "axis": -1}, opsets=(11,), outputs=2)
case("TopK-f64-k0", "TopK", {"x": rand(3, 4, dtype=np.float64)}, {"k": ints([0])}, opsets=(11,), outputs=2)
case("TopK-runtime-k", "TopK", {"x": rand(4, 9), "k": ints([5])}, opsets=(11,), outputs=2)

# ------------------------------------------------------------------------------------ CumSum
for ex in (0, 1):
    for rev in (0, 1):
        case(f"CumSum-ex{ex}-rev{rev}", "CumSum", {"x": rand(3, 4, 5)}, {"a": np.array(1, np.int32)},
             attrs={"exclusive": ex, "reverse": rev}, opsets=(11, 14))
case("CumSum-axis0", "CumSum", {"x": rand(5, 70)}, {"a": np.array(0, np.int64)})
case("CumSum-neg-axis", "CumSum", {"x": rand(2, 3, 4, dtype=np.float64)}, {"a": np.array(-1, np.int64)},
     attrs={"reverse": 1})
case("CumSum-int32", "CumSum", {"x": rand(4, 5, dtype=np.int32, lo=-9, hi=9)}, {"a": np.array(1, np.int64)},
     attrs={"exclusive": 1})
case("CumSum-int64-runtime-axis", "CumSum", {"x": rand(4, 5, dtype=np.int64, lo=-9, hi=9), "a": np.array(0, np.int64)})

# ------------------------------------------------------------------------------------- Trilu
for upper in (0, 1):
    case(f"Trilu-u{upper}", "Trilu", {"x": rand(4, 5)}, attrs={"upper": upper}, opsets=(14,))
    for k in (-2, -1, 1, 3, 7, -7):
        case(f"Trilu-u{upper}-k{k}", "Trilu", {"x": rand(2, 4, 5)}, {"k": np.array(k, np.int64)}, attrs={"upper": upper},
             opsets=(14,))
case("Trilu-int-batched", "Trilu", {"x": rand(2, 3, 3, 4, dtype=np.int64, lo=-9, hi=9), "k": np.array(1, np.int64)},
     attrs={"upper": 0}, opsets=(14,))

# ---------------------------------------------------------------------------------- Compress
case("Compress-axis0", "Compress", {"x": rand(4, 3)}, {"c": np.array([0, 1, 1, 0], bool)}, attrs={"axis": 0},
     opsets=(11, 13))
case("Compress-axis1-short", "Compress", {"x": rand(3, 5)}, {"c": np.array([1, 0, 1], bool)}, attrs={"axis": 1})
case("Compress-neg-axis", "Compress", {"x": rand(2, 3, 4)}, {"c": np.array([1, 0, 1, 1], bool)}, attrs={"axis": -1},
     opsets=(11,))
case("Compress-flat", "Compress", {"x": rand(3, 3, dtype=np.int32, lo=0, hi=9)},
     {"c": np.array([0, 1, 0, 0, 1, 1, 0, 0, 1], bool)})
case("Compress-runtime-cond", "Compress", {"x": rand(4, 3), "c": np.array([1, 0, 0, 1], bool)}, attrs={"axis": 0})

# ------------------------------------------------------------------------ Depth/SpaceToDepth
case("DepthToSpace", "DepthToSpace", {"x": rand(2, 8, 3, 2)}, attrs={"blocksize": 2}, opsets=(1, 11, 13))
case("DepthToSpace-CRD", "DepthToSpace", {"x": rand(1, 18, 2, 3)}, attrs={"blocksize": 3, "mode": "CRD"},
     opsets=(11, 13))
case("DepthToSpace-DCR-int", "DepthToSpace", {"x": rand(1, 12, 2, 2, dtype=np.int64, lo=0, hi=99)},
     attrs={"blocksize": 2, "mode": "DCR"}, opsets=(13,), oracle="reference")
case("SpaceToDepth", "SpaceToDepth", {"x": rand(2, 3, 4, 6)}, attrs={"blocksize": 2}, opsets=(1, 13))
case("SpaceToDepth-int8", "SpaceToDepth", {"x": rand(1, 2, 6, 3, dtype=np.int8, lo=-9, hi=9)}, attrs={"blocksize": 3})
for mode in ["DCR", "CRD"]:
    case(f"SpaceToDepth-{mode}-op28", "SpaceToDepth", {"x": rand(2, 3, 4, 6)}, attrs={"blocksize": 2, "mode": mode},
         opsets=(28,), oracle="reference")
    case(f"DepthToSpace-{mode}-op28", "DepthToSpace", {"x": rand(2, 12, 2, 3)}, attrs={"blocksize": 2, "mode": mode},
         opsets=(28,), oracle="reference")


# -------------------------------------------------------------------- float16 and bool inputs
case("GatherElements-f16", "GatherElements", {"x": rand(3, 4).astype(np.float16)}, {"i": ints([[2, 0, 1, 1]])},
     opsets=(13,), oracle="reference")
case("TopK-f16", "TopK", {"x": rand(3, 7).astype(np.float16)}, {"k": ints([3])}, opsets=(11,), outputs=2,
     oracle="reference")
case("CumSum-f16", "CumSum", {"x": rand(3, 5).astype(np.float16)}, {"a": np.array(1, np.int64)}, opsets=(14,),
     oracle="reference")
case("Trilu-bool", "Trilu", {"x": rand(3, 4, dtype=np.int64, lo=0, hi=1).astype(bool)}, opsets=(14,), oracle="reference")
case("Compress-bool", "Compress", {"x": rand(4, 2, dtype=np.int64, lo=0, hi=1).astype(bool)},
     {"c": np.array([1, 1, 0, 1], bool)}, attrs={"axis": 0}, opsets=(11,), oracle="reference")
case("ScatterElements-f16", "ScatterElements", {"x": rand(2, 4).astype(np.float16)},
     {"i": ints([[3, 0]]), "u": rand(1, 2).astype(np.float16)}, attrs={"axis": 1, "reduction": "add"}, opsets=(18,),
     oracle="reference")
case("OneHot-uint8-values", "OneHot", {"i": ints([[2, 0], [1, 3]], np.int32)},
     {"d": np.array(4, np.int32), "v": np.array([7, 9], np.uint8)}, attrs={"axis": 0}, opsets=(11,), oracle="reference")


def build(op, inputs, consts, attrs, opset, outputs):
    names = list(inputs) + list(consts)
    out_names = ["y"] if outputs == 1 else [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, **attrs)
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, 0, None) for o in out_names], consts, opset=opset)
    return model, out_names


def run_mserve(model, inputs, out_names):
    got = mserve.load(model.SerializeToString(), threads=2).predict(dict(inputs))
    return [got] if len(out_names) == 1 else [got[o] for o in out_names]


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,outputs,oracle", CASES)
def test_op_matches_oracle(op, inputs, consts, attrs, opset, outputs, oracle):
    model, out_names = build(op, inputs, consts, attrs, opset, outputs)
    if oracle == "reference":
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)
    else:
        expected = ort_run(model, inputs)
    got = run_mserve(model, inputs, out_names)
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if np.issubdtype(e.dtype, np.floating):
            tol = dict(rtol=1e-3, atol=1e-3) if e.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(g, e, **tol)
        else:
            np.testing.assert_array_equal(g, e)


def test_topk_unsorted_selects_the_same_elements():
    x = rand(4, 10)
    model, _ = build("TopK", {"x": x}, {"k": ints([4])}, {"sorted": 0}, 11, 2)
    vals, inds = run_mserve(model, {"x": x}, ["y0", "y1"])
    ev, ei = ort_run(model, {"x": x})
    np.testing.assert_array_equal(np.sort(inds, axis=1), np.sort(ei, axis=1))
    np.testing.assert_allclose(np.sort(vals, axis=1), np.sort(ev, axis=1))
    np.testing.assert_array_equal(np.take_along_axis(x, inds, axis=1), vals)


def test_onehot_before_opset11_treats_negative_indices_as_out_of_range():
    # The opset 9 spec selects only indices in [0, depth); opset 11 counts negative ones from the end.
    # (onnxruntime and onnx.reference wrap negative indices at every opset.)
    i = ints([-1, 1, 5])
    for opset, first_row in [(9, [0, 0, 0]), (11, [0, 0, 1])]:
        model, _ = build("OneHot", {"i": i}, {"d": np.array(3, np.int64), "v": np.array([0, 1], np.float32)}, {}, opset, 1)
        y = run_mserve(model, {"i": i}, ["y"])[0]
        np.testing.assert_array_equal(y, np.array([first_row, [0, 1, 0], [0, 0, 0]], np.float32))


def test_onehot_runtime_depth():
    i = ints([0, 2, 1])
    model, _ = build("OneHot", {"i": i, "d": np.array(3, np.int64)}, {"v": np.array([0, 1], np.float32)}, {}, 11, 1)
    for depth in (3, 5):
        feeds = {"i": i, "d": np.array(depth, np.int64)}
        np.testing.assert_array_equal(run_mserve(model, feeds, ["y"])[0], ort_run(model, feeds)[0])


def test_nonzero_shape_follows_each_input():
    model, _ = build("NonZero", {"x": rand(3, 3)}, {}, {}, 13, 1)
    m = mserve.load(model.SerializeToString())
    for x in (np.eye(3, dtype=np.float32), np.zeros((3, 3), np.float32), np.ones((3, 3), np.float32)):
        np.testing.assert_array_equal(m.predict({"x": x}), np.array(np.nonzero(x), np.int64))


@pytest.mark.parametrize("op,inputs,consts,attrs", [
    ("GatherElements", {"x": rand(3, 4)}, {"i": ints([[0, 3], [3, 1]])}, {}),
    ("GatherElements", {"x": rand(3, 4)}, {"i": ints([[0, -4]])}, {}),
    ("GatherND", {"x": rand(3, 4)}, {"i": ints([[0, 4]])}, {}),
    ("ScatterND", {"x": rand(5)}, {"i": ints([[1], [5]]), "u": rand(2)}, {}),
    ("ScatterElements", {"x": rand(3, 4)}, {"i": ints([[0, 4]]), "u": rand(1, 2)}, {"axis": 1}),
])
def test_out_of_range_indices_are_invalid_argument(op, inputs, consts, attrs):
    model, out_names = build(op, inputs, consts, attrs, 18, 1)
    m = mserve.load(model.SerializeToString())
    with pytest.raises(mserve.InvalidArgument, match="out of range"):
        m.predict(dict(inputs))


def test_bad_attributes_and_shapes():
    bad = [
        ("ScatterND", {"x": rand(5)}, {"i": ints([[1]]), "u": rand(1)}, {"reduction": "max"}, 16),
        ("ScatterElements", {"x": rand(5)}, {"i": ints([1]), "u": rand(1)}, {"reduction": "sub"}, 18),
        ("DepthToSpace", {"x": rand(1, 6, 2, 2)}, {}, {"blocksize": 2}, 13),
        ("SpaceToDepth", {"x": rand(1, 2, 3, 4)}, {}, {"blocksize": 2}, 13),
        ("TopK", {"x": rand(2, 3)}, {"k": ints([4])}, {}, 11),
    ]
    for op, inputs, consts, attrs, opset in bad:
        model, _ = build(op, inputs, consts, attrs, opset, 2 if op == "TopK" else 1)
        with pytest.raises(mserve.Error):
            mserve.load(model.SerializeToString()).predict(dict(inputs))


def test_supported_ops_lists_indexing_ops():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in ["GatherElements", "GatherND", "ScatterND", "ScatterElements", "OneHot", "NonZero", "TopK", "CumSum",
               "Trilu", "Compress", "DepthToSpace", "SpaceToDepth"]:
        assert op in names
