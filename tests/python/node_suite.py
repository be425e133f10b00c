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
                if e.dtype.kind in "fc":
                    np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol)
                else:
                    np.testing.assert_array_equal(g, e)
            except AssertionError as err:
                return "mismatch", f"{spec.name}: " + first_line(err).replace("\t", " ")
    return "pass", ""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", default="")
    ap.add_argument("--out", default="-")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from onnx.backend.test.loader import load_node_model_tests
    cases = [c for c in load_node_model_tests() if args.filter in c.name]
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    for case in sorted(cases, key=lambda c: c.name):
        status, detail = check_case(case)
        out.write(f"{case.name}\t{status}\t{detail}\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
