"""NonMaxSuppression and RoiAlign (kernels/ops/detection.cc) on one-node models, against onnxruntime;
float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, f32, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add

# NonMaxSuppression
boxes = np.concatenate([rand(1, 8, 2, lo=0, hi=5), rand(1, 8, 2, lo=5, hi=10)], axis=2).astype(np.float32)
case("NMS", "NonMaxSuppression", {"boxes": boxes, "scores": rand(1, 2, 8, lo=0, hi=1)},
     {"m": np.array([3], np.int64), "iou": f32([0.3]), "st": f32([0.2])}, opsets=(10, 11))
case("NMS-center", "NonMaxSuppression", {"boxes": rand(2, 6, 4, lo=1, hi=4), "scores": rand(2, 1, 6, lo=0, hi=1)},
     {"m": np.array([10], np.int64), "iou": f32([0.1])}, attrs={"center_point_box": 1}, opsets=(11,))

# RoiAlign
roi_x = rand(2, 3, 10, 12, lo=0, hi=1)
rois = np.array([[0, 0, 9, 9], [1.5, 2.2, 7.1, 8.9], [0.3, 0.4, 0.9, 1.1], [-2, -1, 14, 13], [4, 4, 4.5, 9]],
                np.float32)
bidx = np.array([0, 1, 1, 0, 1], np.int64)
for mode in ["avg", "max"]:
    case(f"RoiAlign-{mode}", "RoiAlign", {"x": roi_x, "rois": rois, "b": bidx},
         attrs={"mode": mode, "output_height": 3, "output_width": 4, "sampling_ratio": 2}, opsets=(10, 16))
    case(f"RoiAlign-{mode}-adaptive", "RoiAlign", {"x": roi_x, "rois": rois, "b": bidx},
         attrs={"mode": mode, "output_height": 2, "output_width": 3, "spatial_scale": 0.5}, opsets=(16,))
    case(f"RoiAlign-{mode}-output-half-pixel", "RoiAlign", {"x": roi_x, "rois": rois, "b": bidx},
         attrs={"mode": mode, "output_height": 4, "output_width": 2,
                "coordinate_transformation_mode": "output_half_pixel"},
         opsets=(16,))
case("RoiAlign-f64", "RoiAlign", {"x": roi_x.astype(np.float64), "rois": rois.astype(np.float64), "b": bidx},
     attrs={"output_height": 2, "output_width": 2}, opsets=(16,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()
