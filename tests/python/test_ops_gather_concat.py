"""Gather and Concat (kernels/ops/gather_concat.cc) on one-node models, numbers and strings,
against onnxruntime; float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(0)
CASES = Cases()
case = CASES.add

case("Concat", "Concat", {"a": rand(2, 3), "b": rand(2, 5)}, attrs={"axis": 1}, opsets=(4, 11, 13))
case("Concat-neg", "Concat", {"a": rand(2, 3), "b": rand(4, 3)}, {"c": rand(1, 3)}, attrs={"axis": -2}, opsets=(11,))
case("Gather", "Gather", {"x": rand(5, 4)}, {"i": np.array([[0, 4], [2, 1]], np.int64)}, opsets=(1, 11, 13))
case("Gather-axis1-neg", "Gather", {"x": rand(3, 5, 2)}, {"i": np.array([-1, 0, 3], np.int32)}, attrs={"axis": 1},
     opsets=(13,))
case("Gather-scalar", "Gather", {"x": rand(5, 4)}, {"i": np.array(3, np.int64)})
case("Gather-int", "Gather", {"x": rand(6, dtype=np.int64, lo=0, hi=100), "i": np.array([5, 0, 1], np.int64)})
# --- shape and copy operators on strings
GRID = np.array([f"s{i}" for i in range(24)], dtype=object).reshape(2, 3, 4)
case("Concat-strings-0", "Concat", {"a": GRID, "b": GRID[:1]}, attrs={"axis": 0})
case("Concat-strings-2", "Concat", {"a": GRID, "b": GRID[:, :, :1], "c": GRID[:, :, 2:]}, attrs={"axis": -1})
# onnxruntime 1.31's Gather copies only the first string of each gathered block: use the reference.
case("Gather-strings-0", "Gather", {"x": GRID}, {"i": np.array([1, 0, -1], np.int64)}, attrs={"axis": 0},
     oracle="reference")
case("Gather-strings-1", "Gather", {"x": GRID}, {"i": np.array([[2, 0], [1, 1]], np.int32)}, attrs={"axis": 1},
     oracle="reference")
case("Gather-strings-last", "Gather", {"x": GRID}, {"i": np.array([3, 0], np.int64)}, attrs={"axis": 2})


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()

