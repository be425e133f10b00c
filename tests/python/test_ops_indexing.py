"""GatherElements, GatherND, ScatterElements, ScatterND, Scatter, TensorScatter (kernels/ops/indexing.cc) on one-node
models, against onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

import mserve
from op_harness import Cases, build_model, ints, random_inputs, strings

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

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
case("ScatterElements-axis1-neg", "ScatterElements", {"x": rand(1, 5)},
     {"i": ints([[1, -2]], np.int32), "u": rand(1, 2)},
     attrs={"axis": 1}, opsets=(13,))
case("ScatterElements-3d", "ScatterElements", {"x": rand(3, 4, 5)},
     {"i": ints([[[0, 1, 2, 3, 0], [3, 2, 1, 0, 1]], [[1, 1, 0, 0, 2], [2, 3, 3, 1, 0]]]),
      "u": rand(2, 2, 5)}, attrs={"axis": 1})
for red, ops in [("add", (16, 18)), ("mul", (16, 18)), ("max", (18,)), ("min", (18,))]:
    case(f"ScatterElements-{red}", "ScatterElements", {"x": rand(3, 4)},
         {"i": ints([[1, 1, 3], [0, 0, 0], [2, 3, 2]]), "u": rand(3, 3)}, attrs={"axis": 1,
                                                                                 "reduction": red}, opsets=ops)
# -------------------------------------------------------------------- float16 and bool inputs
case("GatherElements-f16", "GatherElements", {"x": rand(3, 4).astype(np.float16)}, {"i": ints([[2, 0, 1, 1]])},
     opsets=(13,), oracle="reference")
case("ScatterElements-f16", "ScatterElements", {"x": rand(2, 4).astype(np.float16)},
     {"i": ints([[3, 0]]), "u": rand(1, 2).astype(np.float16)}, attrs={"axis": 1, "reduction": "add"}, opsets=(18,),
     oracle="reference")

# Scatter (deprecated alias of ScatterElements)
case("Scatter", "Scatter", {"data": rand(3, 4), "idx": np.array([[1, 0, 2, 1]], np.int64), "upd": rand(1, 4)},
     opsets=(9, 10))
case("Scatter-axis", "Scatter", {"data": rand(3, 5), "idx": np.array([[4, 0], [1, 3], [2, 2]], np.int64),
                                 "upd": rand(3, 2)}, attrs={"axis": 1}, opsets=(10,))


# ----------------------------------------------------------------------------- TensorScatter


def tensor_scatter_naive(past, update, write_indices=None, axis=-2, mode="linear"):
    """The ONNX pseudocode, one element at a time (independent of onnx.reference's loop)."""
    out = past.copy()
    axis %= past.ndim
    w = np.zeros(past.shape[0], np.int64) if write_indices is None else write_indices
    for idx in np.ndindex(update.shape):
        pos = int(w[idx[0]]) + idx[axis]
        if mode == "circular":
            pos %= past.shape[axis]
        out[idx[:axis] + (pos,) + idx[axis + 1:]] = update[idx]
    return [out]


def ts_case(id_, past, update, w=None, attrs=None, w_runtime=False, **kw):
    inputs = {"past": past, "update": update}
    consts = {}
    if w is not None:
        if w_runtime:
            inputs["w"] = w
        else:
            consts["w"] = w
    oracle = kw.pop("oracle", lambda i: tensor_scatter_naive(past, update, w, **(attrs or {})))
    case(id_, "TensorScatter", inputs, consts, attrs=attrs, opsets=(24,), oracle=oracle, **kw)
    if not callable(oracle):
        return
    case(id_ + "-ref", "TensorScatter", inputs, consts, attrs=attrs, opsets=(24,), oracle="reference", **kw)


ts_case("TensorScatter-prefill", rand(2, 3, 8, 4), rand(2, 3, 5, 4))
ts_case("TensorScatter-decode", rand(2, 3, 8, 4), rand(2, 3, 1, 4), ints([7, 2]), w_runtime=True)
ts_case("TensorScatter-linear-idx", rand(2, 3, 8, 4), rand(2, 3, 3, 4), ints([0, 5]))
ts_case("TensorScatter-full", rand(2, 2, 6, 3), rand(2, 2, 6, 3), ints([0, 0]))
ts_case("TensorScatter-3d-axis1", rand(3, 7, 5), rand(3, 2, 5), ints([1, 5, 0]), attrs={"axis": 1})
ts_case("TensorScatter-axis-last", rand(2, 3, 6), rand(2, 3, 4), ints([2, 0]), attrs={"axis": -1})
ts_case("TensorScatter-axis2-of-5d", rand(2, 2, 5, 3, 2), rand(2, 2, 2, 3, 2), ints([3, 1]), attrs={"axis": 2})
ts_case("TensorScatter-circular", rand(2, 3, 6, 4), rand(2, 3, 4, 4), ints([4, 1]), attrs={"mode": "circular"},
        w_runtime=True)
ts_case("TensorScatter-circular-big-idx", rand(3, 5, 2), rand(3, 5, 2), ints([13, 5, 2]),
        attrs={"mode": "circular", "axis": 1})
ts_case("TensorScatter-circular-negative", rand(2, 6, 2), rand(2, 2, 2), ints([-1, -9]),
        attrs={"mode": "circular", "axis": 1})
ts_case("TensorScatter-int32", rand(2, 6, 3, dtype=np.int32, lo=-99, hi=99),
        rand(2, 2, 3, dtype=np.int32, lo=-99, hi=99), ints([4, 0]), attrs={"axis": 1})
ts_case("TensorScatter-bool", rand(2, 5, 3, dtype=bool), rand(2, 2, 3, dtype=bool), ints([3, 1]),
        attrs={"axis": 1, "mode": "circular"})
ts_case("TensorScatter-f16", rand(1, 2, 6, 4).astype(np.float16), rand(1, 2, 3, 4).astype(np.float16), ints([2]))
ts_case("TensorScatter-f64", rand(2, 4, 3, dtype=np.float64), rand(2, 1, 3, dtype=np.float64), ints([3, 0]),
        attrs={"axis": 1})
ts_case("TensorScatter-string", strings(*"abcdefghijkl", shape=(2, 3, 2)), strings("x", "y", "z", "w", shape=(2, 1, 2)),
        ints([2, 0]), attrs={"axis": 1, "mode": "circular"})
ts_case("TensorScatter-empty-update", rand(2, 4, 3), rand(2, 0, 3), ints([4, 1]), attrs={"axis": 1})
ts_case("TensorScatter-ort", rand(2, 3, 8, 4), rand(2, 3, 3, 4), ints([1, 5]), w_runtime=True,
        oracle="auto")
ts_case("TensorScatter-ort-circular", rand(2, 3, 8, 4), rand(2, 3, 3, 4), ints([6, 7]), w_runtime=True,
        attrs={"mode": "circular"}, oracle="auto")

@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


@pytest.mark.parametrize("op,inputs,consts,attrs", [
    ("GatherElements", {"x": rand(3, 4)}, {"i": ints([[0, 3], [3, 1]])}, {}),
    ("GatherElements", {"x": rand(3, 4)}, {"i": ints([[0, -4]])}, {}),
    ("GatherND", {"x": rand(3, 4)}, {"i": ints([[0, 4]])}, {}),
    ("ScatterND", {"x": rand(5)}, {"i": ints([[1], [5]]), "u": rand(2)}, {}),
    ("ScatterElements", {"x": rand(3, 4)}, {"i": ints([[0, 4]]), "u": rand(1, 2)}, {"axis": 1}),
])
def test_out_of_range_indices_are_invalid_argument(op, inputs, consts, attrs):
    model, out_names = build_model(op, inputs, consts, attrs, 18, 1)
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
        model, _ = build_model(op, inputs, consts, attrs, opset, 2 if op == "TopK" else 1)
        with pytest.raises(mserve.Error):
            mserve.load(model.SerializeToString()).predict(dict(inputs))


def test_supported_ops_lists_indexing_ops():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in ["GatherElements", "GatherND", "ScatterND", "ScatterElements", "OneHot", "NonZero", "TopK", "CumSum",
               "Trilu", "Compress", "DepthToSpace", "SpaceToDepth"]:
        assert op in names


def test_tensor_scatter_fills_ranks_with_naive_loop():
    # Many shapes and write positions against the element-by-element pseudocode.
    rng = np.random.default_rng(7)
    for trial in range(12):
        rank = int(rng.integers(2, 5))
        shape = [int(v) for v in rng.integers(1, 5, size=rank)]
        axis = int(rng.integers(1, rank))
        shape[axis] = int(rng.integers(1, 9))
        seq = int(rng.integers(0, shape[axis] + 1))
        ushape = list(shape)
        ushape[axis] = seq
        mode = "circular" if trial % 2 else "linear"
        hi = shape[axis] - seq if mode == "linear" else 3 * shape[axis]
        w = rng.integers(0, hi + 1, size=shape[0]).astype(np.int64)
        past = rng.standard_normal(shape).astype(np.float32)
        upd = rng.standard_normal(ushape).astype(np.float32)
        model, _ = build_model("TensorScatter", {"past": past, "upd": upd, "w": w}, {},
                               {"axis": axis - rank, "mode": mode}, 24)
        got = mserve.load(model.SerializeToString(), threads=2).predict({"past": past, "upd": upd, "w": w})
        np.testing.assert_array_equal(got, tensor_scatter_naive(past, upd, w, axis, mode)[0])


@pytest.mark.parametrize("w,mode", [(ints([6, 0]), "linear"), (ints([0, -1]), "linear"), (ints([9, 0]), "linear")])
def test_tensor_scatter_write_indices_out_of_range(w, mode):
    inputs = {"past": rand(2, 3, 8, 4), "upd": rand(2, 3, 3, 4), "w": w}
    model, _ = build_model("TensorScatter", inputs, {}, {"mode": mode}, 24)
    m = mserve.load(model.SerializeToString())
    with pytest.raises(mserve.InvalidArgument, match="does not fit"):
        m.predict(inputs)
    ok = dict(inputs, w=ints([5, 0]))  # the same session still runs good input
    np.testing.assert_array_equal(m.predict(ok), tensor_scatter_naive(ok["past"], ok["upd"], ok["w"])[0])


@pytest.mark.parametrize("inputs,attrs", [
    ({"past": rand(2, 8, 4), "upd": rand(2, 9, 4)}, {"axis": 1}),                   # update longer than the cache
    ({"past": rand(2, 8, 4), "upd": rand(2, 3, 5)}, {"axis": 1}),                   # other dims differ
    ({"past": rand(2, 8, 4), "upd": rand(2, 3)}, {"axis": 1}),                      # rank differs
    ({"past": rand(2, 8, 4), "upd": rand(2, 3, 4), "w": ints([0, 0, 0])}, {"axis": 1}),  # write_indices != batch
    ({"past": rand(2, 8, 4), "upd": rand(2, 3, 4), "w": ints([[0, 0]])}, {"axis": 1}),   # write_indices not 1-D
    ({"past": rand(2, 8, 4), "upd": rand(2, 3, 4)}, {"axis": 0}),                   # the batch axis
    ({"past": rand(2, 8, 4), "upd": rand(2, 3, 4)}, {"axis": 3}),                   # out of range
    ({"past": rand(2, 8, 4), "upd": rand(2, 3, 4)}, {"axis": 1, "mode": "ring"}),   # unknown mode
    ({"past": rand(2, 8, 4), "upd": rand(2, 3, 4).astype(np.float64)}, {"axis": 1}),  # dtype differs
    ({"past": rand(8), "upd": rand(3)}, {"axis": 0}),                               # rank 1
])
def test_tensor_scatter_bad_input(inputs, attrs):
    model, _ = build_model("TensorScatter", inputs, {}, attrs, 24, out_type=1)
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict(inputs)
