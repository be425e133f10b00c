"""GatherElements, GatherND, ScatterElements, ScatterND, Scatter (kernels/ops/indexing.cc) on one-node
models, against onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

import mserve
from op_harness import Cases, build_model, ints, random_inputs

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
