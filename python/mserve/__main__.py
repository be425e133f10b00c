"""``python -m mserve serve --model_base_path=DIR``: serves models over HTTP and gRPC (TensorFlow Serving
flags). ``python -m mserve demo [DIR]``: writes the example models, loads one, predicts, prints.
``python -m mserve ops``: lists the supported operators."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

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


def _serve(args: argparse.Namespace) -> int:
    import mserve
    from mserve import options
    try:
        models, values = options.from_arguments(args)
    except mserve.InvalidArgument as e:
        print(f"mserve serve: {e}", file=sys.stderr)
        return 2
    try:
        mserve.serve(models, **values)
    except mserve.Error as e:
        print(f"mserve serve: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mserve", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve models over HTTP (TensorFlow Serving REST, KServe v2, metrics) and gRPC",
                       description="tensorflow_model_server's flags (same names and defaults), plus mserve's",
                       allow_abbrev=False)
    from mserve import options
    options.add_arguments(s)
    d = sub.add_parser("demo", help="build the example models, load one and predict")
    d.add_argument("directory", nargs="?", default="models")
    o = sub.add_parser("ops", help="list supported operators")
    o.add_argument("--markdown", action="store_true", help="print docs/ops.md")
    k = sub.add_parser("keygen", help="make an Ed25519 signing key pair: PREFIX.key (private) and PREFIX.pub")
    k.add_argument("prefix")
    g = sub.add_parser("sign", help="sign model version folders (writes mserve.manifest and its signature)")
    g.add_argument("--key", required=True, help="the private key file (from mserve keygen, or any Ed25519 PEM key)")
    g.add_argument("folders", nargs="+")
    e = sub.add_parser("encrypt", help="encrypt a model file with AES-256-GCM for serving with --model_key_file")
    e.add_argument("--key_file", default="", help="a 32-byte key: 64 hex digits, base64 or raw")
    e.add_argument("--key_env", default="", help="an environment variable holding the key")
    e.add_argument("--new_key", default="", help="write a new random key (hex) to this file and use it")
    e.add_argument("input")
    e.add_argument("output")
    pr = sub.add_parser("profile", help="write a version's reference profile for drift monitoring "
                                        "(mserve.profile.json beside the model)")
    pr.add_argument("model", help="a model file in a numbered version folder, or the folder")
    pr.add_argument("data", help="reference data: an .npy file (one input) or an .npz of input arrays")
    pr.add_argument("--out", default=None, help="where to write it (default: the version folder)")
    pr.add_argument("--inputs", default=None, help="comma-separated inputs to monitor (default: all)")
    pr.add_argument("--columns", default=None,
                    help="the columns (images: channels) to monitor per input: 'x=0,3,7;y=1' (default: the first)")
    pr.add_argument("--max_features", type=int, default=64, help="input features at most")
    pr.add_argument("--bins", type=int, default=10, help="numeric bins (reference quantiles)")
    pr.add_argument("--top_k", type=int, default=20, help="categorical values kept")
    pr.add_argument("--channel_axis", type=int, default=None, help="channel axis of image inputs")
    dr = sub.add_parser("drift-report", help="draw a payload log against a version's profile: per-feature "
                                              "histograms and PSI over time, as PNGs")
    dr.add_argument("profile", help="the version's mserve.profile.json")
    dr.add_argument("payload_logs", nargs="+", help="payload log files (JSON lines from --payload_log)")
    dr.add_argument("--out", default="drift-report", help="folder for the PNGs")
    dr.add_argument("--model", default=None, help="only this model's records")
    dr.add_argument("--buckets", type=int, default=12, help="time slices of the PSI-over-time chart")
    args = p.parse_args(argv)
    if args.cmd == "profile":
        return _profile(args)
    if args.cmd == "drift-report":
        return _drift_report(args)
    if args.cmd == "serve":
        return _serve(args)
    if args.cmd in ("keygen", "sign", "encrypt"):
        return _security(args)
    if args.cmd == "demo":
        return _demo(args.directory)
    print(ops_markdown() if args.markdown else ops_table(), end="")
    return 0


def _profile(args: argparse.Namespace) -> int:
    import mserve
    try:
        columns = None
        if args.columns:
            columns = {}
            for part in args.columns.split(";"):
                name, _, cols = part.partition("=")
                columns[name.strip()] = [int(c) for c in cols.split(",") if c.strip()]
        prof = mserve.profile(args.model, args.data, out=args.out,
                              inputs=args.inputs.split(",") if args.inputs else None, columns=columns,
                              max_features=args.max_features, bins=args.bins, top_k=args.top_k,
                              channel_axis=args.channel_axis)
    except (OSError, ValueError, mserve.Error) as e:
        print(f"mserve profile: {e}", file=sys.stderr)
        return 1
    print(f"profiled {prof['rows']} rows, {len(prof['features'])} features")
    return 0


def _drift_report(args: argparse.Namespace) -> int:
    import mserve
    from mserve.monitoring import drift_report
    try:
        r = drift_report(args.profile, args.payload_logs, args.out, model=args.model, buckets=args.buckets)
    except (OSError, ValueError, KeyError, mserve.Error) as e:
        print(f"mserve drift-report: {e}", file=sys.stderr)
        return 1
    for name, v in sorted(r["features"].items(), key=lambda kv: -kv[1]):
        print(f"{name:32s} PSI {v:.4f}{'  drifting' if v > 0.25 else ''}")
    print(f"wrote {len(r['files'])} PNGs to {args.out}")
    return 0


def _write_private(path: str, data: bytes) -> None:
    """Writes a secret readable by its owner only (created 0600, replaced atomically)."""
    import os
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _security(args: argparse.Namespace) -> int:
    import os

    import mserve
    from mserve import _server
    try:
        if args.cmd == "keygen":
            private, public = _server.generate_signing_key()
            _write_private(args.prefix + ".key", private.encode())
            with open(args.prefix + ".pub", "w") as f:
                f.write(public)
            print(f"wrote {args.prefix}.key (keep it secret) and {args.prefix}.pub (give it to the server)")
        elif args.cmd == "sign":
            with open(args.key) as f:
                private = f.read()
            for folder in args.folders:
                _server.sign_folder(folder, private)
                print(f"signed {folder}")
        else:
            if args.new_key:
                _write_private(args.new_key, os.urandom(32).hex().encode() + b"\n")
                key = _server.read_model_key(args.new_key, "")
            else:
                key = _server.read_model_key(args.key_file, args.key_env)
            with open(args.input, "rb") as f:
                data = _server.encrypt_model(f.read(), key)
            _write_private(args.output, data)
            print(f"wrote {args.output}")
    except (OSError, mserve.Error) as e:
        print(f"mserve {args.cmd}: {e}", file=sys.stderr)
        return 1
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
