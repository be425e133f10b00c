"""ai.onnx.ml tree ensembles: TreeEnsemble (opset 5) against onnx.reference and onnxruntime, the same
forests in TreeEnsembleRegressor form, and every aggregate / post_transform / base_values mode of
TreeEnsembleRegressor and TreeEnsembleClassifier against onnxruntime."""
import os
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import mserve
from conftest import ort_run

MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]
POST = ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"]
AGG = ["AVERAGE", "SUM", "MIN", "MAX"]  # TreeEnsemble's numbering
GRID = np.float32([-0.75, -0.5, -0.25, 0.25, 0.5, 0.75])  # thresholds and features share values: EQ/NEQ hit


# ---- forests as nested tuples: ("node", mode, feature, split, nan_true, true, false) or ("leaf", [(target, w)])

def random_forest(rng, n_trees, depth, n_features, n_targets, modes=("BRANCH_LEQ",), per_leaf=1, missing=False,
                  weights=(-1.0, 1.0), tree_target=None, member=False):
    def leaf(t):
        targets = [tree_target(t)] if tree_target else sorted(rng.choice(n_targets, per_leaf, replace=False).tolist())
        return ("leaf", [(int(k), float(np.float32(rng.uniform(*weights)))) for k in targets])

    def build(d, t):
        if d == 0 or (d < depth and rng.random() < 0.2):
            return leaf(t)
        mode = modes[rng.integers(len(modes))]
        if member and rng.random() < 0.3:
            mode, split = "BRANCH_MEMBER", sorted(rng.choice(GRID, rng.integers(1, 4), replace=False).tolist())
        else:
            split = float(rng.choice(GRID))
        return ("node", mode, int(rng.integers(n_features)), split, bool(missing and rng.random() < 0.5),
                build(d - 1, t), build(d - 1, t))
    return [build(depth, t) for t in range(n_trees)]


def legacy_attrs(forest, prefix):
    """nodes_* and target_* (prefix 'target') or class_* ('class') attributes of the opset-1/3 ops."""
    keys = ["treeids", "nodeids", "featureids", "modes", "values", "truenodeids", "falsenodeids",
            "missing_value_tracks_true"]
    a = {"nodes_" + k: [] for k in keys}
    a.update({prefix + k: [] for k in ["_treeids", "_nodeids", "_ids", "_weights"]})
    for t, tree in enumerate(forest):
        counter = [0]

        def walk(n):
            nid, pos = counter[0], len(a["nodes_treeids"])
            counter[0] += 1
            for k in keys:
                a["nodes_" + k].append(0)
            a["nodes_treeids"][pos], a["nodes_nodeids"][pos] = t, nid
            if n[0] == "leaf":
                a["nodes_modes"][pos], a["nodes_values"][pos] = "LEAF", 0.0
                for target, w in n[1]:
                    for k, v in zip(["_treeids", "_nodeids", "_ids", "_weights"], [t, nid, target, w]):
                        a[prefix + k].append(v)
                return nid
            _, mode, feat, split, miss, tn, fn = n
            assert mode != "BRANCH_MEMBER"
            a["nodes_modes"][pos], a["nodes_featureids"][pos], a["nodes_values"][pos] = mode, feat, split
            a["nodes_missing_value_tracks_true"][pos] = int(miss)
            a["nodes_truenodeids"][pos] = walk(tn)
            a["nodes_falsenodeids"][pos] = walk(fn)
            return nid
        walk(tree)
    return a


def v5_attrs(forest, n_targets, dtype=np.float32, aggregate=1, post=0):
    """TreeEnsemble attributes; each leaf must carry exactly one weight."""
    cols = {k: [] for k in ["featureids", "modes", "splits", "truenodeids", "falsenodeids", "trueleafs",
                            "falseleafs", "missing"]}
    members, leaf_t, leaf_w, roots = [], [], [], []
    mode_ids = {m: i for i, m in enumerate(MODES + ["BRANCH_MEMBER"])}

    def new_node():
        for v in cols.values():
            v.append(0)
        return len(cols["modes"]) - 1

    def add_leaf(n):
        assert len(n[1]) == 1
        leaf_t.append(n[1][0][0])
        leaf_w.append(n[1][0][1])
        return len(leaf_t) - 1

    def walk(n):
        pos = new_node()
        _, mode, feat, split, miss, tn, fn = n
        cols["featureids"][pos], cols["modes"][pos], cols["missing"][pos] = feat, mode_ids[mode], int(miss)
        if mode == "BRANCH_MEMBER":
            members.extend(list(split) + [np.nan])
        else:
            cols["splits"][pos] = split
        for key, child in (("true", tn), ("false", fn)):
            leaf = child[0] == "leaf"
            cols[key + "leafs"][pos] = int(leaf)
            cols[key + "nodeids"][pos] = add_leaf(child) if leaf else walk(child)
        return pos

    for tree in forest:
        if tree[0] == "leaf":  # one-leaf tree: both branches of the root name the same leaf
            pos = new_node()
            li = add_leaf(tree)
            cols["trueleafs"][pos] = cols["falseleafs"][pos] = 1
            cols["truenodeids"][pos] = cols["falsenodeids"][pos] = li
            roots.append(pos)
        else:
            roots.append(walk(tree))

    def t(v, dt):
        return numpy_helper.from_array(np.array(v, dt))
    attrs = dict(n_targets=n_targets, tree_roots=roots, nodes_featureids=cols["featureids"],
                 nodes_modes=t(cols["modes"], np.uint8), nodes_splits=t(cols["splits"], dtype),
                 nodes_truenodeids=cols["truenodeids"], nodes_falsenodeids=cols["falsenodeids"],
                 nodes_trueleafs=cols["trueleafs"], nodes_falseleafs=cols["falseleafs"],
                 leaf_targetids=leaf_t, leaf_weights=t(leaf_w, dtype), aggregate_function=aggregate,
                 post_transform=post)
    if any(cols["missing"]):
        attrs["nodes_missing_value_tracks_true"] = cols["missing"]
    if members:
        attrs["membership_values"] = t(members, dtype)
    return attrs


def ml_model(op, attrs, x_dtype, n_features, outputs, ml_opset):
    node = helper.make_node(op, ["X"], [o for o, _ in outputs], domain="ai.onnx.ml", **attrs)
    et = helper.np_dtype_to_tensor_dtype(np.dtype(x_dtype))
    outs = [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(np.dtype(d)), None) for o, d in outputs]
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", et, [None, n_features])], outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21 if ml_opset >= 5 else 17),
                                            helper.make_opsetid("ai.onnx.ml", ml_opset)])
    m.ir_version = 10 if ml_opset >= 5 else 8
    return m


def features(rng, n, f, nan=False, dtype=np.float32):
    x = np.where(rng.random((n, f)) < 0.5, rng.choice(GRID, (n, f)), rng.uniform(-1, 1, (n, f))).astype(dtype)
    if nan:
        x[rng.random((n, f)) < 0.15] = np.nan
    return x


def predict(model, x):
    out = mserve.load(model.SerializeToString(), threads=2).predict({"X": x})
    return [out[o.name] for o in model.graph.output] if isinstance(out, dict) else [out]


def close(got, want, rtol=1e-4, atol=1e-5):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


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


def legacy_node_to_v5(node):
    """TreeEnsembleRegressor attributes -> TreeEnsemble attributes (leaves with several weights become one tree
    per target, which SUM and AVERAGE -- weights scaled by the number of copies -- aggregate alike)."""
    a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
    ids = list(zip(a["nodes_treeids"], a["nodes_nodeids"]))
    index = {k: i for i, k in enumerate(ids)}
    weights = {}
    for t, n, k, w in zip(a["target_treeids"], a["target_nodeids"], a["target_ids"], a["target_weights"]):
        weights.setdefault((t, n), []).append((k, w))
    n_targets = a.get("n_targets", 1)
    per_leaf = max(len(v) for v in weights.values())
    modes = [m.decode() if isinstance(m, bytes) else m for m in a["nodes_modes"]]

    def tree(i, target):
        if modes[i] == "LEAF":
            ws = weights.get(ids[i], [])
            if per_leaf == 1:
                return ("leaf", ws)
            w = sum(v for k, v in ws if k == target)
            return ("leaf", [(target, w * (per_leaf if a.get("aggregate_function", b"SUM") == b"AVERAGE" else 1))])
        miss = a.get("nodes_missing_value_tracks_true", [0] * len(ids))[i]
        return ("node", modes[i], a["nodes_featureids"][i], a["nodes_values"][i], bool(miss),
                tree(index[(ids[i][0], a["nodes_truenodeids"][i])], target),
                tree(index[(ids[i][0], a["nodes_falsenodeids"][i])], target))
    roots = [index[(t, n)] for t, n in ids if (t, n) == next(k for k in ids if k[0] == t)]
    forest = [tree(r, k) for r in roots for k in (range(n_targets) if per_leaf > 1 else [None])]
    agg = a.get("aggregate_function", b"SUM").decode()
    return v5_attrs(forest, n_targets, aggregate=AGG.index(agg)), np.array(a.get("base_values", [0.0] * n_targets))


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


def test_tree_ensemble_is_listed():
    ops = {(op.domain, op.op_type, op.since_opset) for op in mserve.supported_ops()}
    assert any(o[1] == "TreeEnsemble" and o[2] == 5 for o in ops), ops


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
