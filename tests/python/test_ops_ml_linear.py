"""ai.onnx.ml linear models (kernels/ops/ml_linear.cc) on one-node models against onnxruntime."""

import numpy as np
import pytest

from ml_forest import close, ml_model, predict
from op_harness import ort_run


@pytest.mark.parametrize("op", ["LinearRegressor", "LinearClassifier"])
def test_probit_matches_onnxruntime_in_linear_models(op):
    # PROBIT is shared with the linear models: onnxruntime's erf^-1 approximation, evaluated alike.
    p = np.linspace(0.02, 0.98, 97, dtype=np.float32)
    x = np.stack([p, p[::-1], np.full_like(p, 0.5)], axis=1)
    coef = np.eye(3, dtype=np.float32).ravel().tolist()
    attrs = dict(coefficients=coef, post_transform="PROBIT")
    if op == "LinearRegressor":
        attrs["targets"] = 3
        outputs = [("Y", np.float32)]
    else:
        attrs.update(classlabels_ints=[0, 1, 2], intercepts=[0.0, 0.0, 0.0])
        outputs = [("label", np.int64), ("Y", np.float32)]
    model = ml_model(op, attrs, np.float32, 3, outputs, 1)
    close(predict(model, x)[-1], ort_run(model, {"X": x})[-1])
