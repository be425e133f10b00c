"""ai.onnx.ml TreeEnsemble (opset 5; kernels/ops/ml_tree_ensemble.cc) against onnx.reference and onnxruntime, and the
same forests in TreeEnsembleRegressor form."""
import warnings

import numpy as np
import pytest
from onnx import numpy_helper

import mserve
from ml_forest import (
    AGG,
    MODES,
    close,
    features,
    legacy_attrs,
    legacy_node_to_v5,
    ml_model,
    predict,
    random_forest,
    v5_attrs,
)
from op_harness import ort_run

# ---- TreeEnsemble (ai.onnx.ml opset 5)

V5_CASES = [  # (id, n_targets, aggregate, modes, missing, member, dtype)
    ("sum-leq", 1, 1, MODES[:1], False, False, np.float32),
    ("sum-all-modes", 3, 1, MODES, False, False, np.float32),
    ("avg-member", 2, 0, MODES[:4], False, True, np.float32),
    ("sum-missing", 2, 1, MODES, True, True, np.float32),
    ("min", 1, 2, MODES, True, False, np.float32),
    ("max", 1, 3, MODES, False, True, np.float32),
    ("f64", 3, 1, MODES, True, True, np.float64),
    ("f64-avg", 1, 0, MODES[:4], False, False, np.float64),
    ("f16", 2, 1, MODES[:4], False, True, np.float16),
]


@pytest.mark.parametrize("nt,agg,modes,missing,member,dtype", [c[1:] for c in V5_CASES], ids=[c[0] for c in V5_CASES])
def test_tree_ensemble_matches_reference(nt, agg, modes, missing, member, dtype):
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(nt * 10 + agg)
    forest = random_forest(rng, 7, 4, 5, nt, modes=modes, missing=missing, member=member)
    # A one-leaf tree, first: onnx.reference reads a one-leaf root's weight at the root's node index
    # rather than at the leaf its branches name, which only agree there.
    forest.insert(0, ("leaf", [(nt - 1, 0.125)]))
    model = ml_model("TreeEnsemble", v5_attrs(forest, nt, dtype, aggregate=agg), dtype, 5, [("Y", dtype)], 5)
    x = features(rng, 64, 5, nan=missing, dtype=dtype)
    tol = dict(rtol=1e-3, atol=1e-2) if dtype == np.float16 else {}
    close(predict(model, x)[0], ReferenceEvaluator(model).run(None, {"X": x})[0], **tol)


@pytest.mark.parametrize("agg", [0, 1, 2, 3])
@pytest.mark.parametrize("post", [0, 1, 2, 3, 4])
def test_tree_ensemble_post_transforms_match_onnxruntime(agg, post):
    # onnxruntime reads post_transform 1 as LOGISTIC and 2 as SOFTMAX (the spec: 1 SOFTMAX, 2 LOGISTIC),
    # and applies no transform but PROBIT to a single target: compare multi-target models, swapping.
    rng = np.random.default_rng(post)
    weights = (0.0, 0.3) if post == 4 else (-1.0, 1.0)
    forest = random_forest(rng, 6, 3, 4, 3, modes=MODES, weights=weights)
    x = features(rng, 50, 4)
    got = predict(ml_model("TreeEnsemble", v5_attrs(forest, 3, aggregate=agg, post=post), np.float32, 4,
                           [("Y", np.float32)], 5), x)[0]
    ort_post = {1: 2, 2: 1}.get(post, post)
    want = ort_run(ml_model("TreeEnsemble", v5_attrs(forest, 3, aggregate=agg, post=ort_post), np.float32, 4,
                            [("Y", np.float32)], 5), {"X": x})[0]
    close(got, want)


def test_tree_ensemble_single_target_transform_follows_the_spec():
    rng = np.random.default_rng(3)
    forest = random_forest(rng, 4, 3, 3, 1, modes=MODES)
    x = features(rng, 20, 3)
    raw = predict(ml_model("TreeEnsemble", v5_attrs(forest, 1), np.float32, 3, [("Y", np.float32)], 5), x)[0]
    lg = predict(ml_model("TreeEnsemble", v5_attrs(forest, 1, post=2), np.float32, 3, [("Y", np.float32)], 5), x)[0]
    close(lg, (1 / (1 + np.exp(-raw.astype(np.float64)))).astype(np.float32))


def test_tree_ensemble_equals_the_regressor_form():
    rng = np.random.default_rng(11)
    forest = random_forest(rng, 8, 4, 6, 3, modes=MODES, missing=True)
    x = features(rng, 80, 6, nan=True)
    for agg in ["SUM", "AVERAGE", "MIN", "MAX"]:
        a = legacy_attrs(forest, "target")
        a.update(n_targets=3, aggregate_function=agg)
        legacy = ml_model("TreeEnsembleRegressor", a, np.float32, 6, [("Y", np.float32)], 3)
        v5 = ml_model("TreeEnsemble", v5_attrs(forest, 3, aggregate=AGG.index(agg)), np.float32, 6,
                      [("Y", np.float32)], 5)
        want = ort_run(legacy, {"X": x})[0]
        close(predict(v5, x)[0], want)
        close(predict(legacy, x)[0], want)


@pytest.mark.parametrize("kind", ["tree", "forest", "boosting", "forest-multi"])
def test_tree_ensemble_from_sklearn_exports(kind):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 5)).astype(np.float32)
    y = x @ np.float32([1, -2, 0.5, 0, 3]) + 0.3
    est = {"tree": DecisionTreeRegressor(max_depth=6), "forest": RandomForestRegressor(6, max_depth=5, random_state=0),
           "boosting": GradientBoostingRegressor(n_estimators=12, random_state=0),
           "forest-multi": RandomForestRegressor(4, max_depth=4, random_state=0)}[kind]
    est.fit(x, np.stack([y, -y], axis=1) if kind.endswith("multi") else y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = skl2onnx.to_onnx(est, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    node = next(n for n in onx.graph.node if n.op_type == "TreeEnsembleRegressor")
    attrs, base = legacy_node_to_v5(node)
    got = predict(ml_model("TreeEnsemble", attrs, np.float32, 5, [("Y", np.float32)], 5), x)[0]
    got = got + base.astype(np.float32)
    want = ort_run(onx, {"X": x})[0]
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-4, atol=1e-4)


def test_tree_ensemble_errors():
    rng = np.random.default_rng(0)
    good = v5_attrs(random_forest(rng, 2, 2, 3, 2), 2)
    for change, match in [({"leaf_targetids": [5] * len(good["leaf_targetids"])}, "target"),
                          ({"tree_roots": [99]}, "root"),
                          ({"nodes_truenodeids": [99] * len(good["nodes_truenodeids"])}, "out of range"),
                          ({"aggregate_function": 7}, "aggregate"),
                          ({"nodes_modes": numpy_helper.from_array(
                              np.full(len(good["nodes_featureids"]), 6, np.uint8))}, "membership")]:
        with pytest.raises(mserve.Error, match=match):
            mserve.load(ml_model("TreeEnsemble", {**good, **change}, np.float32, 3, [("Y", np.float32)], 5)
                        .SerializeToString())
    m = mserve.load(ml_model("TreeEnsemble", good, np.float32, None, [("Y", np.float32)], 5).SerializeToString())
    with pytest.raises(mserve.Error, match="feature"):
        m.predict({"X": np.zeros((2, 1), np.float32)})


def test_tree_ensemble_is_listed():
    ops = {(op.domain, op.op_type, op.since_opset) for op in mserve.supported_ops()}
    assert any(o[1] == "TreeEnsemble" and o[2] == 5 for o in ops), ops
