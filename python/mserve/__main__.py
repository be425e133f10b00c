"""``python -m mserve serve --model_base_path=DIR``: serves models over HTTP and gRPC (TensorFlow Serving
flags). ``python -m mserve demo [DIR]``: writes the example models, loads one, predicts, prints.
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


def _bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")


def _add_serve_flags(s: argparse.ArgumentParser) -> None:
    """tensorflow_model_server's flags (same names and defaults), plus --host."""
    s.add_argument("--port", type=int, default=8500, help="gRPC port (0 picks a free one; -1: no gRPC)")
    s.add_argument("--rest_api_port", type=int, default=8501, help="HTTP port (0 picks a free one)")
    s.add_argument("--host", default="0.0.0.0", help="address to listen on")
    s.add_argument("--model_name", default="default", help="name of the model served from --model_base_path")
    s.add_argument("--model_base_path", default="", help="a folder of numbered versions, or one .onnx file")
    s.add_argument("--model_config_file", default="", help="a model_config_list text file (several models)")
    s.add_argument("--model_config_file_poll_wait_seconds", type=int, default=0,
                   help="re-read --model_config_file this often (0: never)")
    s.add_argument("--file_system_poll_wait_seconds", type=int, default=1,
                   help="scan model folders for new versions this often (0: only at start)")
    s.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False)
    s.add_argument("--batching_parameters_file", default="", help="BatchingParameters text file")
    s.add_argument("--rest_api_num_threads", type=int, default=0, help="HTTP threads (0: the machine's cores)")
    s.add_argument("--rest_api_timeout_in_ms", type=int, default=30000, help="per-request deadline")
    s.add_argument("--tensorflow_intra_op_parallelism", "--threads", dest="threads", type=int, default=0,
                   help="threads per model run (0: the machine's cores)")
    s.add_argument("--auth_tokens_file", default="", help="bearer tokens, one per line: TOKEN [IDENTITY] [models=a,b]")
    s.add_argument("--auth_tokens_env", default="", help="an environment variable holding tokens (lines or ';')")
    s.add_argument("--allow_cidrs", default="", help="client addresses allowed, comma-separated CIDR blocks")
    s.add_argument("--open_health_checks", type=_bool, nargs="?", const=True, default=True,
                   help="health checks need no token (default true)")
    s.add_argument("--tls_cert_file", default="", help="PEM certificate chain: HTTPS and gRPC over TLS")
    s.add_argument("--tls_key_file", default="", help="PEM private key of --tls_cert_file")
    s.add_argument("--trusted_keys", default="", help="Ed25519 public key files (PEM), comma-separated")
    s.add_argument("--require_signatures", type=_bool, nargs="?", const=True, default=False,
                   help="refuse model versions not signed with a trusted key")
    s.add_argument("--model_key_file", default="", help="AES-256 key of encrypted models (hex, base64 or raw)")
    s.add_argument("--model_key_env", default="", help="an environment variable holding that key")
    s.add_argument("--audit_log", default="", help="one JSON line per request to this file (rotated)")
    s.add_argument("--audit_log_max_bytes", type=int, default=100 << 20, help="rotate the audit log past this size")
    s.add_argument("--audit_log_keep", type=int, default=5, help="rotated audit logs kept")
    s.add_argument("--grpc_max_threads", type=int, default=0,
                   help="gRPC calls served at once (0: 4 per core, at least 16)")
    s.add_argument("--max_body_bytes", type=int, default=64 << 20,
                   help="larger request bodies get 413 (RESOURCE_EXHAUSTED over gRPC)")


def _serve(args: argparse.Namespace) -> int:
    import mserve
    if bool(args.model_base_path) == bool(args.model_config_file):
        print("mserve serve: give exactly one of --model_base_path or --model_config_file", file=sys.stderr)
        return 2
    batching = None
    if args.enable_batching:
        batching = args.batching_parameters_file or True
    models = args.model_config_file or {args.model_name: args.model_base_path}
    try:
        mserve.serve(models, host=args.host, port=args.rest_api_port, batching=batching,
                     grpc_port=None if args.port < 0 else args.port, grpc_max_threads=args.grpc_max_threads,
                     auth_tokens_file=args.auth_tokens_file or None, auth_tokens_env=args.auth_tokens_env or None,
                     allow_cidrs=[c for c in args.allow_cidrs.split(",") if c.strip()],
                     open_health_checks=args.open_health_checks,
                     tls_cert_file=args.tls_cert_file or None, tls_key_file=args.tls_key_file or None,
                     trusted_keys=[k for k in args.trusted_keys.split(",") if k.strip()],
                     require_signatures=args.require_signatures, model_key_file=args.model_key_file or None,
                     model_key_env=args.model_key_env or None, audit_log=args.audit_log or None,
                     audit_log_max_bytes=args.audit_log_max_bytes, audit_log_keep=args.audit_log_keep,
                     http_threads=args.rest_api_num_threads, request_timeout_ms=args.rest_api_timeout_in_ms,
                     file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
                     model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
                     threads=args.threads, max_body_bytes=args.max_body_bytes)
    except mserve.Error as e:
        print(f"mserve serve: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mserve", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve models over HTTP (TensorFlow Serving REST, KServe v2, metrics)")
    _add_serve_flags(s)
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
    args = p.parse_args(argv)
    if args.cmd == "serve":
        return _serve(args)
    if args.cmd in ("keygen", "sign", "encrypt"):
        return _security(args)
    if args.cmd == "demo":
        return _demo(args.directory)
    print(ops_markdown() if args.markdown else ops_table(), end="")
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
    from mserve import _core
    try:
        if args.cmd == "keygen":
            private, public = _core.generate_signing_key()
            _write_private(args.prefix + ".key", private.encode())
            with open(args.prefix + ".pub", "w") as f:
                f.write(public)
            print(f"wrote {args.prefix}.key (keep it secret) and {args.prefix}.pub (give it to the server)")
        elif args.cmd == "sign":
            with open(args.key) as f:
                private = f.read()
            for folder in args.folders:
                _core.sign_folder(folder, private)
                print(f"signed {folder}")
        else:
            if args.new_key:
                _write_private(args.new_key, os.urandom(32).hex().encode() + b"\n")
                key = _core.read_model_key(args.new_key, "")
            else:
                key = _core.read_model_key(args.key_file, args.key_env)
            with open(args.input, "rb") as f:
                data = _core.encrypt_model(f.read(), key)
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
