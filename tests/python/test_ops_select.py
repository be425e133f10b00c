"""NonZero, TopK, Trilu, Compress, Unique (kernels/ops/select.cc) on one-node models, against onnxruntime
(onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

import mserve
from op_harness import Cases, build_model, ints, ort_run, predict_outputs, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

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
case("TopK-f16", "TopK", {"x": rand(3, 7).astype(np.float16)}, {"k": ints([3])}, opsets=(11,), outputs=2,
     oracle="reference")

# ------------------------------------------------------------------------------------- Trilu
for upper in (0, 1):
    case(f"Trilu-u{upper}", "Trilu", {"x": rand(4, 5)}, attrs={"upper": upper}, opsets=(14,))
    for k in (-2, -1, 1, 3, 7, -7):
        case(f"Trilu-u{upper}-k{k}", "Trilu", {"x": rand(2, 4, 5)}, {"k": np.array(k, np.int64)},
             attrs={"upper": upper},
             opsets=(14,))
case("Trilu-int-batched", "Trilu", {"x": rand(2, 3, 3, 4, dtype=np.int64, lo=-9, hi=9), "k": np.array(1, np.int64)},
     attrs={"upper": 0}, opsets=(14,))
case("Trilu-bool", "Trilu", {"x": rand(3, 4, dtype=np.int64, lo=0, hi=1).astype(bool)}, opsets=(14,),
     oracle="reference")

# ---------------------------------------------------------------------------------- Compress
case("Compress-axis0", "Compress", {"x": rand(4, 3)}, {"c": np.array([0, 1, 1, 0], bool)}, attrs={"axis": 0},
     opsets=(11, 13))
case("Compress-axis1-short", "Compress", {"x": rand(3, 5)}, {"c": np.array([1, 0, 1], bool)}, attrs={"axis": 1})
case("Compress-neg-axis", "Compress", {"x": rand(2, 3, 4)}, {"c": np.array([1, 0, 1, 1], bool)}, attrs={"axis": -1},
     opsets=(11,))
case("Compress-flat", "Compress", {"x": rand(3, 3, dtype=np.int32, lo=0, hi=9)},
     {"c": np.array([0, 1, 0, 0, 1, 1, 0, 0, 1], bool)})
case("Compress-runtime-cond", "Compress", {"x": rand(4, 3), "c": np.array([1, 0, 0, 1], bool)}, attrs={"axis": 0})
case("Compress-bool", "Compress", {"x": rand(4, 2, dtype=np.int64, lo=0, hi=1).astype(bool)},
     {"c": np.array([1, 1, 0, 1], bool)}, attrs={"axis": 0}, opsets=(11,), oracle="reference")

# ------------------------------------------------------------------------------------ Unique
case("Unique-flat", "Unique", {"x": rand(12, dtype=np.int64, lo=0, hi=5)}, opsets=(11,), outputs=4)
case("Unique-unsorted", "Unique", {"x": rand(3, 4, lo=0, hi=3).round()}, attrs={"sorted": 0}, opsets=(11,), outputs=4)
case("Unique-axis", "Unique", {"x": rand(5, 3, dtype=np.int64, lo=0, hi=1)}, attrs={"axis": 0}, opsets=(11,), outputs=4)
case("Unique-axis-neg", "Unique", {"x": rand(2, 5, 2, dtype=np.int64, lo=0, hi=1)}, attrs={"axis": -2}, opsets=(11,),
     outputs=4)


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_topk_unsorted_selects_the_same_elements():
    x = rand(4, 10)
    model, _ = build_model("TopK", {"x": x}, {"k": ints([4])}, {"sorted": 0}, 11, 2)
    vals, inds = predict_outputs(model, {"x": x}, ["y0", "y1"])
    ev, ei = ort_run(model, {"x": x})
    np.testing.assert_array_equal(np.sort(inds, axis=1), np.sort(ei, axis=1))
    np.testing.assert_allclose(np.sort(vals, axis=1), np.sort(ev, axis=1))
    np.testing.assert_array_equal(np.take_along_axis(x, inds, axis=1), vals)


def test_nonzero_shape_follows_each_input():
    model, _ = build_model("NonZero", {"x": rand(3, 3)}, {}, {}, 13, 1)
    m = mserve.load(model.SerializeToString())
    for x in (np.eye(3, dtype=np.float32), np.zeros((3, 3), np.float32), np.ones((3, 3), np.float32)):
        np.testing.assert_array_equal(m.predict({"x": x}), np.array(np.nonzero(x), np.int64))
