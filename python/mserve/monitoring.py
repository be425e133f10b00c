"""Reference profiles for drift monitoring: ``mserve.profile()`` and ``mserve profile``.

A profile describes, per monitored feature, how a version's reference data is distributed: the
server (``cpp/server/monitor/drift.h``, which documents the format) reads ``mserve.profile.json``
from a version folder and compares the live traffic with it (PSI and binned KS per feature, out
of range and NaN counters, a drifting flag). Features:

- a numeric column of a ``[batch]`` or ``[batch, features]`` input (its reference deciles), or a
  categorical one (strings, or integers with few distinct values: the top values and "other");
- for inputs of rank 3 and more (images), each channel's mean over the row, from at most 256
  positions at an even stride, exactly as the server samples it;
- outputs: a classifier's ``[batch, classes]`` scores as the argmax class shares, a
  ``[batch]`` / ``[batch, 1]`` score as numeric bins, labels as categorical.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Union

import numpy as np

from .errors import InvalidArgument

PROFILE_FILE = "mserve.profile.json"
CHANNEL_SAMPLES = 256  # drift.h kChannelSamples
SHARE_FLOOR = 1e-4     # drift.h kShareFloor

Batches = Union[str, "os.PathLike[str]", np.ndarray, Mapping[str, Any], Callable[[], Iterable[Any]]]


def _batches(data: Batches, names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """The reference data as a list of {input name: array} batches."""
    def as_dict(b: Any) -> dict[str, np.ndarray]:
        if isinstance(b, Mapping):
            return {str(k): np.asarray(v) for k, v in b.items()}
        if len(names) != 1:
            raise InvalidArgument(f"the model has {len(names)} inputs ({', '.join(names)}): give batches as dicts")
        return {names[0]: np.asarray(b)}

    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return [{k: loaded[k] for k in loaded.files}]
        return [as_dict(loaded)]
    if callable(data):
        return [as_dict(b) for b in data()]
    return [as_dict(data)]


def _numeric(name: str, tensor: str, io: str, select: dict[str, Any], values: np.ndarray,
             bins: int) -> dict[str, Any]:
    v = values.astype(np.float64)
    finite = v[~np.isnan(v)]
    if finite.size == 0:
        raise InvalidArgument(f"feature {name!r}: the reference holds no numbers")
    edges = np.unique(np.quantile(finite, np.arange(1, bins) / bins))
    edges = edges[np.isfinite(edges)]
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1)
    return {"name": name, "tensor": tensor, "io": io, **select, "kind": "numeric", "edges": edges.tolist(),
            "fractions": (counts / finite.size).tolist(), "min": float(finite.min()), "max": float(finite.max()),
            "nan": float(1 - finite.size / v.size)}


def _categorical(name: str, tensor: str, io: str, select: dict[str, Any], values: np.ndarray,
                 top_k: int) -> dict[str, Any]:
    strings = values.dtype.kind in "OUS"
    keys = [str(x) if strings else int(x) for x in values.reshape(-1)]
    uniq, counts = np.unique(np.array(keys, dtype=object if strings else np.int64), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top_k]
    top = [uniq[i] for i in order]
    shares = [float(counts[i] / len(keys)) for i in order]
    return {"name": name, "tensor": tensor, "io": io, **select, "kind": "categorical",
            "values": [str(x) if strings else int(x) for x in top], "fractions": shares + [max(0.0, 1 - sum(shares))]}


def channel_means(x: np.ndarray, axis: int, channel: int) -> np.ndarray:
    """Each row's mean of `channel` along `axis`, from at most CHANNEL_SAMPLES positions at an
    even stride: what the server computes for a channel feature."""
    n = x.shape[0]
    outer = int(np.prod(x.shape[1:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    rows = np.ascontiguousarray(x).reshape(n, outer, x.shape[axis], inner)[:, :, channel, :].reshape(n, -1)
    stride = max(1, (outer * inner) // CHANNEL_SAMPLES)
    means: np.ndarray = rows[:, ::stride].astype(np.float64).mean(axis=1)
    return means


def feature_values(feature: Mapping[str, Any], tensor: np.ndarray) -> np.ndarray:
    """One value per row of `tensor` for a profile feature (the server's selectors)."""
    x = np.asarray(tensor)
    n = x.shape[0] if x.ndim else 1
    rows = x.reshape(n, -1)
    if feature.get("select", "column") == "column":
        return rows[:, int(feature.get("index", 0))]
    if feature["select"] == "channel":
        return channel_means(x, int(feature["axis"]), int(feature["index"]))
    classes: np.ndarray = np.argmax(rows, axis=1)
    return classes


def bin_counts(feature: Mapping[str, Any], values: np.ndarray) -> np.ndarray:
    """Counts per bin of a feature's values (NaN left out), as the server bins them."""
    if feature["kind"] == "numeric":
        v = np.asarray(values, np.float64)
        v = v[~np.isnan(v)]
        return np.bincount(np.searchsorted(np.asarray(feature["edges"], np.float64), v, side="right"),
                           minlength=len(feature["fractions"]))
    index = {k: i for i, k in enumerate(feature["values"])}
    other = len(feature["values"])
    strings = bool(feature["values"]) and isinstance(feature["values"][0], str)
    keys = [str(x) if strings else int(x) for x in np.asarray(values).reshape(-1)]
    return np.bincount([index.get(k, other) for k in keys], minlength=other + 1)


def psi(fractions: Sequence[float], counts: np.ndarray) -> float:
    """Population stability index of `counts` against reference `fractions`, both floored at
    SHARE_FLOOR (as the server computes it)."""
    counts = np.asarray(counts, np.float64)
    if counts.sum() == 0:
        return 0.0
    p = np.maximum(counts / counts.sum(), SHARE_FLOOR)
    q = np.maximum(np.asarray(fractions, np.float64), SHARE_FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def profile(model: Any, data: Batches, *, out: str | os.PathLike[str] | None = None,
            inputs: Sequence[str] | None = None, columns: Mapping[str, Sequence[int]] | None = None,
            max_features: int = 64, bins: int = 10, top_k: int = 20, channel_axis: int | None = None,
            outputs: bool = True) -> dict[str, Any]:
    """Profiles reference data for drift monitoring and writes it as the version's profile.

    model: a model file in a numbered version folder (the profile goes beside it, so signing the
    folder covers it), a version folder, or an ``mserve.Model`` (then give ``out``).
    data: an ``.npy`` / ``.npz`` file, an array (one-input models), a dict of arrays, or a
    callable returning an iterable of such batches.
    inputs: the inputs to monitor (default: all); columns: per input, the columns (images: the
    channels) to monitor (default: the first ones); max_features: at most this many input
    features in all; bins: numeric bins (quantiles of the reference); top_k: categorical values
    kept (the rest is "other"); channel_axis: the channel axis of image inputs (default: the
    last when it has at most 4 entries, else 1); outputs: profile the model's outputs too (it is
    run on the data). Returns the profile (a dict) after writing it."""
    from . import Model, load
    path = None
    if isinstance(model, Model):
        m = model
    else:
        path = os.fspath(model)
        if os.path.isdir(path):
            path = os.path.join(path, "model.onnx")
        m = load(path)
    target = os.fspath(out) if out is not None else (os.path.join(os.path.dirname(path), PROFILE_FILE)
                                                       if path else None)
    if target is None:
        raise InvalidArgument("profile: give out= for a model not read from a version folder")
    in_names = [s.name for s in m.inputs]
    watch = list(inputs) if inputs is not None else in_names
    for name in watch:
        if name not in in_names:
            raise InvalidArgument(f"profile: the model has no input {name!r}; it has {in_names}")
    batches = _batches(data, in_names)
    if not batches:
        raise InvalidArgument("profile: the reference data holds no batches")
    ref = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    for name in columns or {}:
        if name not in watch:
            raise InvalidArgument(f"profile: columns names input {name!r}, which is not monitored")
    features: list[dict[str, Any]] = []
    budget = max_features

    def chosen(name: str, n: int) -> list[int]:
        picked = [int(c) for c in (columns or {}).get(name, range(n))]
        bad = [c for c in picked if not 0 <= c < n]
        if bad:
            raise InvalidArgument(f"profile: input {name!r} has {n} columns (or channels); {bad} are not among them")
        return picked[:budget]

    for name in watch:
        if name not in ref:
            raise InvalidArgument(f"profile: the reference data has no input {name!r}")
        x = ref[name]
        if x.ndim >= 3:
            axis = channel_axis if channel_axis is not None else (x.ndim - 1 if x.shape[-1] <= 4 else 1)
            picked = chosen(name, x.shape[axis])
            for c in picked:
                sel = {"select": "channel", "axis": axis, "index": c}
                features.append(_numeric(f"{name}[c={c}]", name, "input", sel, channel_means(x, axis, c), bins))
            budget -= len(picked)
            continue
        cols = x.reshape(x.shape[0], -1)
        picked = chosen(name, cols.shape[1])
        for c in picked:
            label = name if x.ndim == 1 else f"{name}[{c}]"
            sel = {"select": "column", "index": c}
            v = cols[:, c]
            if v.dtype.kind in "OUS" or (v.dtype.kind in "iub" and np.unique(v).size <= top_k):
                features.append(_categorical(label, name, "input", sel, v, top_k))
            else:
                features.append(_numeric(label, name, "input", sel, v, bins))
        budget -= len(picked)
    if outputs:
        features += _output_features(m, batches, bins, top_k)
    prof = {"mserve_profile": 1, "rows": int(next(iter(ref.values())).shape[0]), "features": features}
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        json.dump(prof, f)
    os.replace(tmp, target)
    return prof


def _output_features(m: Any, batches: list[dict[str, np.ndarray]], bins: int, top_k: int) -> list[dict[str, Any]]:
    outs: dict[str, list[np.ndarray]] = {}
    for b in batches:
        got = m.predict(b)
        got = got if isinstance(got, (list, tuple)) else [got]
        for spec, y in zip(m.outputs, got):
            if isinstance(y, np.ndarray) and y.ndim >= 1:  # per row: a scalar output has no rows
                outs.setdefault(spec.name, []).append(y)
    features = []
    for name, parts in outs.items():
        y = np.concatenate(parts)
        if y.dtype.kind == "f" and y.ndim == 2 and y.shape[1] > 1:
            features.append(_categorical(f"{name}:class", name, "output", {"select": "argmax"},
                                         np.argmax(y, axis=1), top_k))
        elif y.dtype.kind == "f" and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
            features.append(_numeric(name, name, "output", {"select": "column", "index": 0}, y.reshape(-1), bins))
        elif y.ndim == 1 and y.dtype.kind in "OUSiu":
            features.append(_categorical(name, name, "output", {"select": "column", "index": 0}, y, top_k))
    return features


# KServe v2 datatype names -> numpy (also the Python deployments' codec, integrations/_wire.py).
V2_DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
             "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
             "FP32": np.float32, "FP64": np.float64, "BYTES": object}


def _tensor(t: Mapping[str, Any]) -> np.ndarray:
    dtype = V2_DTYPES.get(t["datatype"], np.float64)
    data = [float("nan") if v is None else v for v in t["data"]] if dtype is not object else t["data"]
    arr: np.ndarray = np.array(data, dtype=dtype).reshape(t["shape"])
    return arr


def read_payload_log(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """The records of payload log files (JSON lines; rotated files may be given too), oldest first."""
    records = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            records += [json.loads(line) for line in f if line.strip()]
    records.sort(key=lambda r: r["time"])
    return records


def drift_report(profile_path: str | os.PathLike[str], payload_logs: Sequence[str | os.PathLike[str]],
                 out_dir: str | os.PathLike[str], *, model: str | None = None, buckets: int = 12) -> dict[str, Any]:
    """Draws what a payload log says about drift, against a version's profile, as PNGs in out_dir:
    one ``<feature>.png`` per feature (reference shares per bin beside the logged traffic's, PSI
    in the title) and ``psi_over_time.png`` (each feature's PSI over `buckets` equal slices of the
    log's time span, with the 0.25 rule-of-thumb line). Returns {"features": {name: psi},
    "times": [bucket start ISO times], "psi_over_time": {name: [psi per bucket]}, "files": [...]}.
    Needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgument("drift-report draws with matplotlib: pip install matplotlib") from None
    from datetime import datetime
    with open(profile_path, encoding="utf-8") as f:
        prof = json.load(f)
    records = [r for r in read_payload_log(payload_logs) if model is None or r["model_name"] == model]
    if not records:
        which = f" of model {model!r}" if model else ""
        raise InvalidArgument(f"drift-report: the payload log holds no records{which}")
    times = np.array([datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in records])
    span = max(float(times.max() - times.min()), 1e-9)
    bucket_of = np.minimum(((times - times.min()) / span * buckets).astype(int), buckets - 1)
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    result: dict[str, Any] = {"features": {}, "psi_over_time": {}, "files": [],
                              "times": [datetime.fromtimestamp(float(times.min()) + span * b / buckets).isoformat()
                                        for b in range(buckets)]}
    for feat in prof["features"]:
        key = "outputs" if feat.get("io", "input") == "output" else "inputs"
        per_bucket: list[list[np.ndarray]] = [[] for _ in range(buckets)]
        for r, b in zip(records, bucket_of):
            for t in r.get(key, []):
                if t["name"] == feat["tensor"] and t["data"] is not None:
                    per_bucket[b].append(np.asarray(feature_values(feat, _tensor(t))))
        every = [v for vs in per_bucket for v in vs]
        if not every:
            continue
        counts = bin_counts(feat, np.concatenate(every))
        name = feat["name"]
        result["features"][name] = psi(feat["fractions"], counts)
        result["psi_over_time"][name] = [psi(feat["fractions"], bin_counts(feat, np.concatenate(vs))) if vs else None
                                         for vs in per_bucket]
        if feat["kind"] == "numeric":
            e = feat["edges"]
            labels = ([f"<{e[0]:.3g}"] + [f"[{a:.3g},{b:.3g})" for a, b in zip(e, e[1:])] + [f">={e[-1]:.3g}"]
                      if e else ["all"])
        else:
            labels = [str(v) for v in feat["values"]] + ["other"]
        share = counts / max(int(counts.sum()), 1)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(labels)), 3.5))
        pos = np.arange(len(labels))
        ax.bar(pos - 0.2, feat["fractions"], 0.4, label="reference")
        ax.bar(pos + 0.2, share, 0.4, label=f"logged ({int(counts.sum())} rows)")
        ax.set_xticks(pos, labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share")
        ax.set_title(f"{name}: PSI {result['features'][name]:.3f}")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out, "".join(c if c.isalnum() or c in "-_." else "_" for c in name) + ".png")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        result["files"].append(path)
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, series in result["psi_over_time"].items():
        ax.plot(range(buckets), [np.nan if v is None else v for v in series], marker="o", label=name)
    ax.axhline(0.25, color="red", linestyle="--", linewidth=1, label="0.25")
    ax.set_xticks(range(buckets), [t[11:19] for t in result["times"]], rotation=45, fontsize=7)
    ax.set_ylabel("PSI")
    ax.set_title("PSI over time")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = os.path.join(out, "psi_over_time.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    result["files"].append(path)
    return result
