"""Det and Einsum (kernels/ops/linalg.cc) on one-node models, against onnxruntime (onnx.reference where
onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

# Det
case("Det-2d", "Det", {"x": rand(4, 4)}, opsets=(11, 22))
case("Det-nd", "Det", {"x": rand(2, 3, 3, 3)}, opsets=(11,))
case("Det-f64", "Det", {"x": rand(5, 5, dtype=np.float64)}, opsets=(22,), oracle="reference")

# Einsum
for eq, shapes in [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii->i", [(4, 4)]),
                   ("ii", [(4, 4)]), ("ij->ji", [(3, 4)]), ("...ii->...i", [(2, 3, 3)]), ("i,i", [(5,), (5,)]),
                   ("ij,k", [(2, 3), (4,)]), ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 2)]), ("abc,cd,de->abe",
                   [(2, 3, 4), (4, 5), (5, 2)]), ("ij->", [(3, 4)])]:
    ins = {f"x{i}": rand(*s) for i, s in enumerate(shapes)}
    case("Einsum-" + eq.replace("->", "_to_").replace(",", "_").replace("...", "E"), "Einsum", ins,
         attrs={"equation": eq}, opsets=(12,))
case("Einsum-int", "Einsum", {"a": rand(3, 4, dtype=np.int64, lo=-5, hi=5), "b": rand(4, dtype=np.int64, lo=-5, hi=5)},
     attrs={"equation": "ij,j->i"}, opsets=(12,))
case("Einsum-f64", "Einsum", {"a": rand(3, 4, dtype=np.float64)}, attrs={"equation": "ij->j"}, opsets=(12,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()
