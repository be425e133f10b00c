"""GridSample and AffineGrid (kernels/ops/grid_sample.cc) on one-node models, against onnxruntime
(or onnx.reference); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, i64, random_inputs

rand = random_inputs(7)
CASES = Cases(opsets=(19,))
case = CASES.add

# GridSample.
GX = rand(2, 3, 5, 6)
GG = rand(2, 4, 7, 2, lo=-1.3, hi=1.3)
for mode16, mode20 in [("bilinear", "linear"), ("nearest", "nearest"), ("bicubic", "cubic")]:
    for pad in ["zeros", "border", "reflection"]:
        for ac in [0, 1]:
            attrs = {"padding_mode": pad, "align_corners": ac}
            # cubic + border: onnxruntime clamps only the taps, the reference (and the spec's
            # test data) first clamps the coordinate.
            oracle = "reference" if mode20 == "cubic" and pad == "border" else "onnxruntime"
            if oracle == "onnxruntime":  # the reference knows only the opset-20 mode names
                case(f"GridSample-{mode16}-{pad}-ac{ac}", "GridSample", {"x": GX, "g": GG},
                     attrs=dict(attrs, mode=mode16), opsets=(16,))
            case(f"GridSample-{mode20}-{pad}-ac{ac}", "GridSample", {"x": GX, "g": GG},
                 attrs=dict(attrs, mode=mode20), opsets=(20,), oracle=oracle)
GX3 = rand(1, 2, 3, 4, 5)
GG3 = rand(1, 2, 3, 4, 3, lo=-1.2, hi=1.2)
for mode in ["linear", "nearest"]:
    for pad in ["zeros", "border", "reflection"]:
        case(f"GridSample3d-{mode}-{pad}", "GridSample", {"x": GX3, "g": GG3},
             attrs={"mode": mode, "padding_mode": pad, "align_corners": 1}, opsets=(20,))
case("GridSample-f64", "GridSample", {"x": rand(1, 2, 4, 4, dtype=np.float64), "g": rand(1, 3, 3, 2, dtype=np.float64)},
     opsets=(16,), oracle="reference")

# AffineGrid.
for ac in [0, 1]:
    case(f"AffineGrid2d-ac{ac}", "AffineGrid", {"t": rand(2, 2, 3)}, {"z": i64(2, 3, 5, 4)},
         {"align_corners": ac}, opsets=(20,))
    case(f"AffineGrid3d-ac{ac}", "AffineGrid", {"t": rand(2, 3, 4)}, {"z": i64(2, 1, 3, 4, 5)},
         {"align_corners": ac}, opsets=(20,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()

