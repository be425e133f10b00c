"""Regenerates the LightGBM / XGBoost ONNX exports that test_ops_ml_tree.py checks mserve against.

Run in a separate environment (these packages are not test dependencies):
    python -m venv /tmp/gbm && /tmp/gbm/bin/pip install lightgbm xgboost-cpu onnxmltools scikit-learn onnx packaging
    /tmp/gbm/bin/python tests/python/data/gbm/make_exports.py
Each export NAME.onnx comes with NAME.npz: the input X and the library's own predictions
(pred: regression values or labels, proba: class probabilities).
"""
import os
import warnings

import lightgbm as lgb
import numpy as np
import onnxmltools
import xgboost as xgb
from onnxmltools.convert.common.data_types import FloatTensorType

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 6)).astype(np.float32)
X[rng.random(X.shape) < 0.05] = np.nan  # missing values take the trees' default branches
Xf = np.nan_to_num(X)
Y_REG = Xf @ np.float32([1, -2, 0.5, 0, 3, 1]) + 0.3 * np.sin(3 * Xf[:, 0])
Y_BIN = (Xf[:, 0] + Xf[:, 1] * Xf[:, 2] > 0).astype(np.int64)
Y_MULTI = np.digitize(Xf[:, 0] - Xf[:, 3], [-0.7, 0.0, 0.7]).astype(np.int64)

models = {
    "lgbm_regressor": (lgb.LGBMRegressor(n_estimators=25, num_leaves=8, verbose=-1), Y_REG),
    "lgbm_binary": (lgb.LGBMClassifier(n_estimators=25, num_leaves=8, verbose=-1), Y_BIN),
    "lgbm_multiclass": (lgb.LGBMClassifier(n_estimators=15, num_leaves=6, verbose=-1), Y_MULTI),
    "xgb_regressor": (xgb.XGBRegressor(n_estimators=25, max_depth=3), Y_REG),
    "xgb_binary": (xgb.XGBClassifier(n_estimators=25, max_depth=3), Y_BIN),
    "xgb_multiclass": (xgb.XGBClassifier(n_estimators=15, max_depth=3), Y_MULTI),
}
for name, (est, y) in models.items():
    est.fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conv = onnxmltools.convert_lightgbm if name.startswith("lgbm") else onnxmltools.convert_xgboost
        opts = {"zipmap": False} if name.startswith("lgbm") and "regressor" not in name else {}
        onx = conv(est, initial_types=[("X", FloatTensorType([None, X.shape[1]]))], target_opset=15, **opts)
    with open(os.path.join(HERE, name + ".onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    extra = {"proba": est.predict_proba(X).astype(np.float32)} if hasattr(est, "predict_proba") else {}
    np.savez_compressed(os.path.join(HERE, name + ".npz"), X=X, pred=est.predict(X), **extra)
    print(name, os.path.getsize(os.path.join(HERE, name + ".onnx")), [n.op_type for n in onx.graph.node])
