"""ai.onnx.ml TreeEnsembleRegressor and TreeEnsembleClassifier (kernels/ops/ml_tree.cc): every aggregate /
post_transform / base_values mode against onnxruntime, and onnxmltools exports of LightGBM and XGBoost models."""
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import mserve
from ml_forest import MODES, POST, close, features, legacy_attrs, legacy_node_to_v5, ml_model, predict, random_forest
from op_harness import ort_run

# ---- TreeEnsembleRegressor / TreeEnsembleClassifier modes against onnxruntime

REG_CASES = [(nt, agg, pt, base) for nt in (1, 3) for agg in ["SUM", "AVERAGE", "MIN", "MAX"] for pt in POST
             for base in (False, True)]


@pytest.mark.parametrize("nt,agg,pt,base", REG_CASES, ids=[f"t{c[0]}-{c[1]}-{c[2]}-{'base' if c[3] else 'nobase'}"
                                                          for c in REG_CASES])
def test_tree_regressor_modes_match_onnxruntime(nt, agg, pt, base):
    rng = np.random.default_rng(len(pt) + nt)
    # per_leaf < n_targets leaves targets unscored for some rows (MIN/MAX then read 0 plus the base value).
    forest = random_forest(rng, 5, 3, 4, nt, modes=MODES, per_leaf=min(nt, 2), missing=True,
                           weights=(0.0, 0.2) if pt == "PROBIT" else (-1.0, 1.0))
    a = legacy_attrs(forest, "target")
    a.update(n_targets=nt, aggregate_function=agg, post_transform=pt)
    if base:
        a["base_values"] = list(np.linspace(0.05, 0.15, nt))
    model = ml_model("TreeEnsembleRegressor", a, np.float32, 4, [("Y", np.float32)], 3)
    x = features(rng, 60, 4, nan=True)
    close(predict(model, x)[0], ort_run(model, {"X": x})[0])


CLS_CASES = [  # (id, n classes, class id of every weight or None, weights per leaf, weight range, base values)
    ("binary-pos", 2, 0, 1, (0.0, 0.3), None), ("binary-pos-base1", 2, 0, 1, (0.0, 0.3), [0.1]),
    ("binary-mixed", 2, 0, 1, (-1.0, 1.0), None), ("binary-mixed-base1", 2, 0, 1, (-1.0, 1.0), [0.2]),
    ("binary-mixed-base2", 2, 0, 1, (-1.0, 1.0), [0.2, 0.3]), ("binary-id1", 2, 1, 1, (-1.0, 1.0), None),
    ("binary-id1-base1", 2, 1, 1, (0.0, 0.3), [0.4]),
    ("multi", 4, None, 4, (0.0, 1.0), None), ("multi-base", 3, None, 3, (-1.0, 1.0), [0.1, -0.2, 0.3]),
    ("multi-sparse", 4, None, 1, (-1.0, 1.0), None), ("multi-sparse-base", 4, None, 1, (0.0, 0.2), [0.0, 0.1, 0, 0.2]),
]


@pytest.mark.parametrize("pt", POST)
@pytest.mark.parametrize("n,cid,per_leaf,wts,base", [c[1:] for c in CLS_CASES], ids=[c[0] for c in CLS_CASES])
def test_tree_classifier_modes_match_onnxruntime(n, cid, per_leaf, wts, base, pt):
    rng = np.random.default_rng(n * 7 + per_leaf)
    forest = random_forest(rng, 5, 3, 4, n, modes=MODES, per_leaf=per_leaf, weights=wts,
                           tree_target=None if cid is None else (lambda t: cid))
    a = legacy_attrs(forest, "class")
    a.update(post_transform=pt, classlabels_int64s=list(range(10, 10 + n)))
    if base:
        a["base_values"] = base
    model = ml_model("TreeEnsembleClassifier", a, np.float32, 4, [("label", np.int64), ("probs", np.float32)], 3)
    x = features(rng, 60, 4)
    label, probs = predict(model, x)
    want_label, want_probs = ort_run(model, {"X": x})
    np.testing.assert_array_equal(label, want_label)
    if n == 2 and cid == 0 and pt == "PROBIT" and (base is None or len(base) == 1):
        # onnxruntime writes only the first column here (the second is left uninitialized); mserve writes 0.
        close(probs[:, 0], want_probs[:, 0])
        assert (probs[:, 1] == 0).all()
    else:
        close(probs, want_probs)


def test_tree_classifier_two_scored_classes_take_the_top_label():
    # Both classes scored: onnxruntime returns a literal 0/1 label (not the class labels); mserve the
    # label of the top score. Probabilities agree.
    rng = np.random.default_rng(5)
    forest = random_forest(rng, 5, 3, 4, 2, modes=MODES, per_leaf=2, weights=(0.0, 1.0))
    a = legacy_attrs(forest, "class")
    a.update(post_transform="NONE", classlabels_int64s=[10, 11])
    model = ml_model("TreeEnsembleClassifier", a, np.float32, 4, [("label", np.int64), ("probs", np.float32)], 3)
    x = features(rng, 40, 4)
    label, probs = predict(model, x)
    close(probs, ort_run(model, {"X": x})[1])
    np.testing.assert_array_equal(label, np.array([10, 11])[probs.argmax(1)])


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_tree_ensembles_take_other_input_types(dtype):
    # onnxruntime has no integer-input tree kernels: integers are compared with the float model.
    rng = np.random.default_rng(2)
    forest = random_forest(rng, 4, 3, 3, 2, modes=MODES, per_leaf=2, weights=(0.0, 1.0))
    x = (features(rng, 50, 3) if dtype == np.float64 else rng.integers(-2, 3, (50, 3))).astype(dtype)
    oracle_dtype = np.float64 if dtype == np.float64 else np.float32
    for op, prefix, outputs, extra in [("TreeEnsembleRegressor", "target", [("Y", np.float32)], {"n_targets": 2}),
                                       ("TreeEnsembleClassifier", "class", [("label", np.int64), ("probs", np.float32)],
                                        {"classlabels_int64s": [3, 4]})]:
        a = legacy_attrs(forest, prefix)
        a.update(extra)
        if dtype == np.float64:  # double thresholds: compared in double
            a["nodes_values_as_tensor"] = numpy_helper.from_array(np.array(a.pop("nodes_values"), np.float64) + 1e-9)
        got = predict(ml_model(op, a, dtype, 3, outputs, 3), x)
        want = ort_run(ml_model(op, a, oracle_dtype, 3, outputs, 3), {"X": x.astype(oracle_dtype)})
        close(got[-1], want[-1])
        if len(got) == 2:  # both classes scored: the top score's label (onnxruntime: a literal 0/1)
            np.testing.assert_array_equal(got[0], np.array([3, 4])[got[1].argmax(1)])


def test_tree_regressor_rejects_bad_base_values_and_target_ids():
    rng = np.random.default_rng(0)
    a = legacy_attrs(random_forest(rng, 2, 2, 3, 3, per_leaf=3), "target")
    with pytest.raises(mserve.Error, match="base_values"):
        mserve.load(ml_model("TreeEnsembleRegressor", {**a, "n_targets": 3, "base_values": [0.1]}, np.float32, 3,
                             [("Y", np.float32)], 3).SerializeToString())
    with pytest.raises(mserve.Error, match="n_targets"):
        mserve.load(ml_model("TreeEnsembleRegressor", {**a, "n_targets": 2}, np.float32, 3,
                             [("Y", np.float32)], 3).SerializeToString())


GBM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "gbm")


@pytest.mark.parametrize("name", ["lgbm_regressor", "lgbm_binary", "lgbm_multiclass", "xgb_regressor", "xgb_binary",
                                  "xgb_multiclass"])
def test_lightgbm_and_xgboost_exports(name):
    """onnxmltools exports (made by data/gbm/make_exports.py) against onnxruntime and the libraries' own
    predictions; regressors also in TreeEnsemble form."""
    path = f"{GBM}/{name}.onnx"
    data = np.load(f"{GBM}/{name}.npz")
    x = data["X"]
    model = onnx.load(path)
    got = predict(model, x)
    want = ort_run(model, {"X": x})
    for g, w in zip(got, want):
        if g.dtype.kind == "f":
            close(g, w.reshape(g.shape))
        else:
            np.testing.assert_array_equal(g, w)
    if "proba" in data:
        np.testing.assert_array_equal(got[0], data["pred"])
        np.testing.assert_allclose(got[1], data["proba"], rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(got[0].ravel(), data["pred"], rtol=1e-4, atol=1e-4)
        node = next(n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor")
        attrs, base = legacy_node_to_v5(node)
        v5 = predict(ml_model("TreeEnsemble", attrs, np.float32, x.shape[1], [("Y", np.float32)], 5), x)[0]
        np.testing.assert_allclose(v5 + base.astype(np.float32), got[0], rtol=1e-4, atol=1e-4)
