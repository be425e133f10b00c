"""Random tree ensembles for the ai.onnx.ml tree operators: forests as nested tuples, their TreeEnsemble (opset 5)
and TreeEnsembleRegressor / TreeEnsembleClassifier attributes, one-node models, features, mserve's outputs."""
import numpy as np
from onnx import helper, numpy_helper

import mserve

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

        def walk(n, t=t, counter=counter):
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
