"""``python -m mserve demo [DIR]``: writes the example models, loads one, predicts, prints.
``python -m mserve ops``: lists the supported operators."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _demo(directory: str) -> int:
    import mserve
    from mserve import examples

    paths = examples.save_examples(directory)
    print(f"wrote example models to {directory}: {', '.join(sorted(paths))}")
    model = mserve.load(paths["cnn_nhwc"])
    print(model)
    x = examples.example_input("cnn_nhwc", batch=4)
    t0 = time.perf_counter()
    probs = model.predict(x)
    ms = (time.perf_counter() - t0) * 1e3
    print(f"predict on {x.shape} {x.dtype} took {ms:.2f} ms (first call, includes planning)")
    np.set_printoptions(precision=4, suppress=True)
    print("class probabilities:\n", probs)
    print("predicted classes:", probs.argmax(axis=1))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mserve", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="build the example models, load one and predict")
    d.add_argument("directory", nargs="?", default="models")
    o = sub.add_parser("ops", help="list supported operators")
    o.add_argument("--markdown", action="store_true", help="print docs/ops.md")
    args = p.parse_args(argv)
    if args.cmd == "demo":
        return _demo(args.directory)
    print(ops_markdown() if args.markdown else ops_table(), end="")
    return 0


def ops_table() -> str:
    import mserve
    return "".join(f"{op.domain or 'ai.onnx'}\t{op.op_type}\tsince opset {op.since_opset}\t{op.family}\n"
                   for op in mserve.supported_ops())


def ops_markdown() -> str:
    """docs/ops.md, generated from the runtime's one op list (make docs)."""
    import mserve
    from mserve import _core
    lines = ["# Supported operators", "",
             "Generated from `cpp/core/kernels/op_list.inc` by `make docs`; do not edit by hand.",
             f"Opsets up to {_core.max_opset} of the default domain are understood.", "",
             "| domain | operator | opsets | family (`cpp/core/kernels/ops/<family>.cc`) |",
             "|---|---|---|---|"]
    for op in mserve.supported_ops():
        lines.append(f"| {op.domain or 'ai.onnx'} | {op.op_type} | {op.since_opset}+ | {op.family} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
