"""Runs the ONNX backend node test suite (the cases onnx.backend.test.loader generates) through
mserve, with each case's own tolerances; dtype and shape must match exactly.

    python tests/python/node_suite.py [--filter SUBSTR] [--out results.tsv]

Writes one line per case, `name<TAB>status<TAB>detail`, flushed as it goes (so a crash points at
its case). status: pass, unsupported (load refused with UnsupportedOperator), error (another
mserve error), mismatch (wrong values, dtype or shape).
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np


def first_line(msg: str, limit: int = 160) -> str:
    lines = [l.strip() for l in str(msg).splitlines() if l.strip()]
    text = " | ".join(lines[:3])
    return (text[:limit] + "...") if len(text) > limit else text


def check_case(case) -> tuple[str, str]:
    import mserve
    try:
        model = mserve.load(case.model.SerializeToString(), threads=2)
    except mserve.UnsupportedOperator as e:
        return "unsupported", first_line(e)
    except mserve.Error as e:
        return "error", "load: " + first_line(e)
    from onnx import numpy_helper
    as_array = lambda v: numpy_helper.to_array(v) if hasattr(v, "SerializeToString") else v  # noqa: E731
    for inputs, expected in case.data_sets:
        inputs, expected = [as_array(v) for v in inputs], [as_array(v) for v in expected]
        feeds = {spec.name: x for spec, x in zip(model.inputs, inputs)}
        if len(inputs) != len(model.inputs):
            return "error", f"the case feeds {len(inputs)} inputs, the model takes {len(model.inputs)}"
        try:
            out = model.predict(feeds)
        except mserve.Error as e:
            return "error", "predict: " + first_line(e)
        got = [out] if len(model.outputs) == 1 else [out[s.name] for s in model.outputs]
        for spec, g, e in zip(model.outputs, got, expected):
            e = np.asarray(e)
            if g.dtype != e.dtype:
                return "mismatch", f"{spec.name}: dtype {g.dtype} != {e.dtype}"
            if g.shape != e.shape:
                return "mismatch", f"{spec.name}: shape {g.shape} != {e.shape}"
            try:
                if e.dtype.name == "bfloat16":  # ml_dtypes' kind 'V': compared as the floats it holds
                    np.testing.assert_allclose(g.astype(np.float32), e.astype(np.float32), rtol=case.rtol,
                                               atol=case.atol)
                elif e.dtype.itemsize == 1 and e.dtype.name.startswith("float"):
                    # ml_dtypes' float8/float4: exact, NaN where NaN is expected (their == says NaN != NaN)
                    np.testing.assert_array_equal(g.astype(np.float32), e.astype(np.float32))
                elif e.dtype.kind in "fc":
                    np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol)
                else:
                    np.testing.assert_array_equal(g, e)
            except AssertionError as err:
                return "mismatch", f"{spec.name}: " + first_line(err).replace("\t", " ")
    return "pass", ""


def _explained(path: str) -> dict:
    """(name, status) -> reason for the hand-written reasons ('known ...') in an expectations file."""
    kept = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3 and not line.startswith("#") and parts[2].startswith("known"):
                    kept[(parts[0], parts[1])] = parts[2]
    except FileNotFoundError:
        pass
    return kept


def node_cases() -> list:
    """The node cases of the installed onnx: its loader's (onnx >= 1.23), else read from the
    files it ships (model.onnx and test_data_set_*/input_*.pb, output_*.pb), as its backend test
    runner reads them."""
    try:
        from onnx.backend.test.loader import load_node_model_tests
        return load_node_model_tests()
    except ImportError:
        pass
    import glob
    import os
    from types import SimpleNamespace

    import onnx
    from onnx.backend.test.loader import load_model_tests

    def tensors(folder, prefix):
        paths = sorted(glob.glob(os.path.join(folder, f"{prefix}_*.pb")),
                       key=lambda p: int(p.rsplit("_", 1)[1][:-3]))
        out = []
        for path in paths:
            t = onnx.TensorProto()
            with open(path, "rb") as f:
                t.ParseFromString(f.read())
            out.append(t)
        return out

    cases = []
    for c in load_model_tests(kind="node"):
        folders = sorted(glob.glob(os.path.join(c.model_dir, "test_data_set_*")))
        cases.append(SimpleNamespace(name=c.name, model=onnx.load(os.path.join(c.model_dir, "model.onnx")),
                                     data_sets=[(tensors(d, "input"), tensors(d, "output")) for d in folders],
                                     rtol=c.rtol, atol=c.atol))
    return cases


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", default="")
    ap.add_argument("--out", default="-")
    ap.add_argument("--expectations", metavar="TSV",
                    help="write the cases that do not pass, with why, to TSV (the checked-in list)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    cases = [c for c in node_cases() if args.filter in c.name]
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    failing = []
    for case in sorted(cases, key=lambda c: c.name):
        status, detail = check_case(case)
        out.write(f"{case.name}\t{status}\t{detail}\n")
        out.flush()
        if status != "pass":
            failing.append((case.name, status, detail))
    if args.expectations:
        kept = _explained(args.expectations)
        with open(args.expectations, "w") as f:
            f.write("# ONNX backend node cases that mserve does not pass, and why (generated by\n"
                    "# `make node-expectations`; keep names and statuses. A reason written by hand starts\n"
                    "# with 'known' and is kept while the case keeps its status).\n")
            for name, status, detail in failing:
                detail = kept.get((name, status), detail)
                f.write(f"{name}\t{status}\t{detail}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
