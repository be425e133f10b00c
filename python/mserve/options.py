"""The server's options, in one table: ``mserve.start()`` / ``mserve.serve()`` take them as keywords,
``python -m mserve serve`` as flags (tensorflow_model_server's names where it has the option), and
each one is written into the fields of the C++ ``ServerOptions`` (``_server.ServerOptions``) it sets.

A row is (name: the keyword, flags: the CLI's, type, default: the keyword's, help), plus the CLI's
default where tensorflow_model_server's differs from the keyword's, and the C++ fields.
"""
from __future__ import annotations

import argparse
import difflib
import operator
import os
from collections.abc import Iterable, Mapping
from typing import Any, Callable, NamedTuple

from . import _server
from ._device import DEVICES, PRECISIONS, backend_for
from .errors import InvalidArgument

__all__ = ["Option", "OPTIONS", "check", "core_options", "add_arguments", "from_arguments", "describe"]


def _bool_flag(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")


class Kind(NamedTuple):
    """An option's type: how the CLI parses a flag's text into the keyword's value (``parse``),
    and how a keyword's value becomes the C++ field's (``to_core``, InvalidArgument when it can't)."""

    annotation: str
    metavar: str  # the flag's value in --help
    parse: Callable[[str], Any]
    to_core: Callable[[str, Any], Any]
    flag_optional_value: bool = False  # a bare ``--flag`` means true


def _int(name: str, v: Any) -> int:
    if isinstance(v, bool):
        raise InvalidArgument(f"{name} must be an int, got a bool")
    try:
        return operator.index(v)
    except TypeError:
        raise InvalidArgument(f"{name} must be an int, got {type(v).__name__}") from None


def _to_bool(name: str, v: Any) -> bool:
    if not isinstance(v, (bool, int)):
        raise InvalidArgument(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


def _str(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise InvalidArgument(f"{name} must be a str, got {type(v).__name__}")
    return v


def _optional_str(name: str, v: Any) -> str:
    return "" if v is None else _str(name, v)


def _path(name: str, v: Any) -> str:
    if v is None:
        return ""
    if not isinstance(v, (str, os.PathLike)):
        raise InvalidArgument(f"{name} must be a path, got {type(v).__name__}")
    return os.fspath(v)


def _strings(name: str, v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (str, os.PathLike)):
        v = os.fspath(v).split(",")
    items = [_path(name, s).strip() for s in v]
    return [s for s in items if s]


def _comma_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _read_key_files(name: str, v: Any) -> list[str]:
    texts = []
    for path in _strings(name, v):
        try:
            with open(path) as f:
                texts.append(f.read())
        except OSError as e:
            raise InvalidArgument(f"cannot read trusted key {path!r}: {e.strerror}") from None
    return texts


def _grpc_port(name: str, v: Any) -> int:
    return -1 if v is None else _int(name, v)


def _port_flag(text: str) -> int | None:
    port = int(text)
    return None if port < 0 else port


_BATCHING_KEYS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                  "allowed_batch_sizes", "pad_variable_length_inputs")


def batching_options(name: str, b: Any) -> _server.BatchingOptions | None:
    """None or False (off), True (TensorFlow Serving's defaults), a dict of BatchingParameters
    fields, or the path of a batching parameters text file."""
    if b is None or b is False:
        return None
    if b is True:
        return _server.BatchingOptions()
    if isinstance(b, (str, os.PathLike)):
        try:
            with open(b, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InvalidArgument(f"{name}: cannot read {os.fspath(b)!r}: {e.strerror}") from None
        b = _server.parse_batching_parameters(text)
    if not isinstance(b, Mapping):
        raise InvalidArgument(f"{name} must be None, True, a dict or a file path, not {type(b).__name__}")
    unknown = sorted(set(b) - set(_BATCHING_KEYS))
    if unknown:
        raise InvalidArgument(f"unknown batching parameter(s) {unknown}{_did_you_mean(unknown[0], _BATCHING_KEYS)}; "
                              f"known: {list(_BATCHING_KEYS)}")
    o = _server.BatchingOptions()
    for k, v in b.items():
        if k == "allowed_batch_sizes":
            o.allowed_batch_sizes = [_int(k, s) for s in v]
        elif k == "pad_variable_length_inputs":
            o.pad_variable_length_inputs = _to_bool(k, v)
        else:
            setattr(o, k, _int(k, v))
    return o


def _percent(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidArgument(f"{name} must be a number, got {type(v).__name__}")
    if not 0 <= v <= 100:
        raise InvalidArgument(f"{name} must lie in 0..100, got {v}")
    return float(v)


INT = Kind("int", "N", int, _int)
PERCENT = Kind("float", "PERCENT", float, _percent)
BOOL = Kind("bool", "true|false", _bool_flag, _to_bool, flag_optional_value=True)
STR = Kind("str", "TEXT", str, _str)
OPTIONAL_STR = Kind("Optional[str]", "NAME", lambda s: s or None, _optional_str)
PATH = Kind("Optional[path]", "PATH", lambda s: s or None, _path)
STRINGS = Kind("Optional[Sequence[str]]", "A,B,...", _comma_list, _strings)
KEY_FILES = Kind("Optional[Sequence[path]]", "PATH,...", _comma_list, _read_key_files)
DEVICE = Kind("str", "|".join(DEVICES), str, backend_for)


def _precision(name: str, v: Any) -> str:
    if v not in PRECISIONS:
        raise InvalidArgument(f"{name} must be one of {', '.join(PRECISIONS)}, got {v!r}")
    return str(v)


PRECISION = Kind("str", "|".join(PRECISIONS), str, _precision)
GRPC_PORT = Kind("Optional[int]", "N", _port_flag, _grpc_port)
BATCHING = Kind("None | bool | dict | path", "true|false", _bool_flag, batching_options, flag_optional_value=True)

_SAME: Any = object()


class Option(NamedTuple):
    name: str                 # the keyword of start() / serve()
    flags: tuple[str, ...]    # the CLI's flags; the first is the one --help shows first
    type: Kind
    default: Any              # the keyword's default
    help: str
    cli_default: Any = _SAME  # the flag's default where it differs (tensorflow_model_server's)
    fields: tuple[str, ...] = ()  # the _server.ServerOptions fields it sets ("http.port", ...)

    @property
    def flag_default(self) -> Any:
        return self.default if self.cli_default is _SAME else self.cli_default


# fmt: off
OPTIONS: tuple[Option, ...] = (
    # Where and how it listens.
    Option("host", ("--host",), STR, "127.0.0.1", "address to listen on",
           cli_default="0.0.0.0", fields=("http.host", "grpc.host")),
    Option("port", ("--rest_api_port",), INT, 8501, "HTTP port (0 picks a free one: Server.port)",
           fields=("http.port",)),
    Option("grpc_port", ("--port",), GRPC_PORT, None,
           "gRPC port (0 picks a free one: Server.grpc_port); None, or -1 as a flag: no gRPC",
           cli_default=8500, fields=("grpc.port",)),
    Option("grpc_max_threads", ("--grpc_max_threads",), INT, 0,
           "gRPC calls served at once (0: 4 per core, at least 16); more get RESOURCE_EXHAUSTED",
           fields=("grpc.max_threads",)),
    Option("http_threads", ("--rest_api_num_threads",), INT, 0, "HTTP threads (0: the machine's cores)",
           fields=("http.threads",)),
    Option("request_timeout_ms", ("--rest_api_timeout_in_ms",), INT, 0,
           "per-request deadline: 504 / DEADLINE_EXCEEDED past it (0: none); a gRPC client's own deadline applies too",
           cli_default=30000, fields=("request_timeout_ms",)),
    Option("max_body_bytes", ("--max_body_bytes",), INT, 64 << 20,
           "larger request bodies get 413 (RESOURCE_EXHAUSTED over gRPC)",
           fields=("http.body_limit", "grpc.max_message_bytes")),
    Option("max_connections", ("--max_connections",), INT, 10000, "open HTTP connections; more are closed at accept",
           fields=("http.max_connections",)),
    Option("idle_timeout_ms", ("--idle_timeout_ms",), INT, 60000,
           "a keep-alive connection (or a client still sending its headers) idle this long is closed",
           fields=("http.idle_timeout_ms",)),
    Option("read_timeout_ms", ("--read_timeout_ms",), INT, 30000,
           "a request body or TLS handshake must arrive within this", fields=("http.read_timeout_ms",)),
    # The models.
    Option("model_name", ("--model_name",), OPTIONAL_STR, None,
           "the model's name when one path is served (as a keyword, None: the file or folder name)",
           cli_default="default"),
    Option("threads", ("--tensorflow_intra_op_parallelism", "--threads"), INT, 0,
           "intra-op threads per model (0: the machine's cores)", fields=("manager.session.threads",)),
    Option("optimize", ("--optimize",), BOOL, True, "run the graph passes on loaded models",
           fields=("manager.session.optimize",)),
    Option("device", ("--device",), DEVICE, "cpu",
           "where models run besides the CPU: 'cuda' (nodes the GPU has kernels for), 'mock' (tests); "
           "a model's own 'device' key overrides it", fields=("manager.session.device",)),
    Option("precision", ("--precision",), PRECISION, "fp32",
           "with device 'cuda': 'tf32', 'fp16' or 'bf16' tensor cores for products and convolutions "
           "(mserve.load's precision); a model's own 'precision' key overrides it"),
    Option("remote_cache_dir", ("--remote_cache_dir",), PATH, None,
           "where s3:// base paths are mirrored (default: $XDG_CACHE_HOME/mserve or ~/.cache/mserve)",
           fields=("manager.remote.cache_dir",)),
    Option("pack_cache_dir", ("--pack_cache_dir",), PATH, None,
           "keep the weights packed for this CPU in DIR/<model>/<version>: processes serving a version "
           "map one copy (the first to load it writes it); never fails a load", fields=("manager.pack_cache_dir",)),
    Option("warmup", ("--warmup",), BOOL, True, "run each new version once before it takes traffic",
           fields=("manager.warmup",)),
    Option("batching", ("--enable_batching",), BATCHING, None,
           "merge concurrent requests: None (off), True (TensorFlow Serving's defaults), a dict of "
           "BatchingParameters fields, or a batching parameters file (CLI: --batching_parameters_file)",
           cli_default=False, fields=("manager.batching",)),
    Option("file_system_poll_wait_seconds", ("--file_system_poll_wait_seconds",), INT, 1,
           "scan model folders for new versions this often (0: only at start)",
           fields=("file_system_poll_wait_seconds",)),
    Option("model_config_file_poll_wait_seconds", ("--model_config_file_poll_wait_seconds",), INT, 0,
           "re-read the model config file this often (0: never)", fields=("model_config_file_poll_wait_seconds",)),
    Option("quiet", ("--quiet",), BOOL, False, "no lifecycle log lines on stderr", fields=("manager.quiet",)),
    # Access control and TLS.
    Option("auth_tokens_file", ("--auth_tokens_file",), PATH, None,
           "bearer tokens, one per line: TOKEN [IDENTITY] [models=a,b]; re-read when it changes",
           fields=("access.tokens_file",)),
    Option("auth_tokens_env", ("--auth_tokens_env",), OPTIONAL_STR, None,
           "an environment variable holding tokens (lines or ';')", fields=("access.tokens_env",)),
    Option("allow_cidrs", ("--allow_cidrs",), STRINGS, None,
           "client addresses allowed (CIDR blocks; comma-separated as a flag); others get 403",
           fields=("access.allow_cidrs",)),
    Option("open_health_checks", ("--open_health_checks",), BOOL, True, "health checks need no token",
           fields=("access.open_health",)),
    Option("tls_cert_file", ("--tls_cert_file",), PATH, None,
           "PEM certificate chain: HTTPS and gRPC over TLS (1.2 and 1.3 only)",
           fields=("http.tls_cert_file", "grpc.tls_cert_file")),
    Option("tls_key_file", ("--tls_key_file",), PATH, None, "PEM private key of tls_cert_file",
           fields=("http.tls_key_file", "grpc.tls_key_file")),
    # Model integrity and encryption at rest.
    Option("trusted_keys", ("--trusted_keys",), KEY_FILES, None,
           "Ed25519 public key files (PEM; comma-separated as a flag) that model versions must be signed with",
           fields=("manager.integrity.trusted_keys",)),
    Option("require_signatures", ("--require_signatures",), BOOL, False,
           "refuse model versions not signed with a trusted key", fields=("manager.integrity.require_signatures",)),
    Option("model_key_file", ("--model_key_file",), PATH, None,
           "AES-256 key of encrypted model files (hex, base64 or raw); decrypted in memory only",
           fields=("manager.model_key",)),
    Option("model_key_env", ("--model_key_env",), OPTIONAL_STR, None, "an environment variable holding that key",
           fields=("manager.model_key",)),
    # Audit log.
    Option("audit_log", ("--audit_log",), PATH, None,
           "one JSON line per request to this file (never the payload); writing never fails a request",
           fields=("audit.path",)),
    Option("audit_log_max_bytes", ("--audit_log_max_bytes",), INT, 100 << 20, "rotate the audit log past this size",
           fields=("audit.max_bytes",)),
    Option("audit_log_keep", ("--audit_log_keep",), INT, 5, "rotated audit logs kept (.1 ... .N)",
           fields=("audit.keep",)),
    # Payload log (drift analysis): off unless a sink and a sample rate are given.
    Option("payload_log", ("--payload_log",), PATH, None,
           "write sampled requests and responses as JSON lines (KServe v2 tensors) to this file",
           fields=("payload.file.path",)),
    Option("payload_log_url", ("--payload_log_url",), OPTIONAL_STR, None,
           "post sampled requests and responses as KServe CloudEvents to this http(s):// URL", fields=("payload.url",)),
    Option("payload_sample_percent", ("--payload_sample_percent",), PERCENT, 0.0,
           "the share of requests sampled into the payload log (a model's monitoring block may override it)",
           fields=("payload.sample_percent",)),
    Option("payload_log_max_bytes", ("--payload_log_max_bytes",), INT, 100 << 20,
           "rotate the payload log past this size", fields=("payload.file.max_bytes",)),
    Option("payload_log_keep", ("--payload_log_keep",), INT, 5, "rotated payload logs kept (.1 ... .N)",
           fields=("payload.file.keep",)),
)
# fmt: on

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}

# The two rows that together give one field: the key is read (file and/or environment variable) here.
_MODEL_KEY = ("model_key_file", "model_key_env")


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check(func: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Every option, the keyword's value where given, else its default; TypeError naming an
    unknown keyword (with the closest known one)."""
    for name in options:
        if name not in BY_NAME:
            raise TypeError(f"{func}() got an unknown option {name!r}{_did_you_mean(name, BY_NAME)} "
                            f"(mserve.options.OPTIONS lists them)")
    return {o.name: options.get(o.name, o.default) for o in OPTIONS}


def _set_field(target: Any, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for p in parents:
        target = getattr(target, p)
    if not hasattr(target, leaf):  # pybind11 objects refuse new attributes, but say so plainly
        raise AttributeError(f"_server.ServerOptions has no field {path!r}")
    setattr(target, leaf, value)


def core_options(values: Mapping[str, Any], model_config_file: str = "") -> _server.ServerOptions:
    """The C++ ServerOptions for checked values (see check())."""
    o = _server.ServerOptions()
    o.model_config_file = model_config_file
    for opt in OPTIONS:
        if opt.name in _MODEL_KEY:
            continue
        if opt.name == "device":  # the backend is made for the precision asked for
            value = backend_for(opt.name, values["device"], _precision("precision", values["precision"]))
        else:
            value = opt.type.to_core(opt.name, values[opt.name])
        for path in opt.fields:
            _set_field(o, path, value)
    key_file, key_env = (BY_NAME[n].type.to_core(n, values[n]) for n in _MODEL_KEY)
    if key_file or key_env:
        _set_field(o, "manager.model_key", _server.read_model_key(key_file, key_env))
    return o


# Flags of the CLI that are not options: they say which models to serve.
_MODEL_FLAGS: tuple[tuple[str, str], ...] = (
    ("--model_base_path", "a folder of numbered versions, a folder holding model.onnx (version 1), or one .onnx file"),
    ("--model_config_file", "a model_config_list text file (several models)"),
    ("--batching_parameters_file", "BatchingParameters text file (with --enable_batching)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The serve command's flags: tensorflow_model_server's (same names and defaults), then mserve's."""
    for flag, text in _MODEL_FLAGS:
        parser.add_argument(flag, default="", metavar="PATH", help=text)
    for opt in OPTIONS:
        default = opt.flag_default
        shown = f" (default: {str(default).lower() if isinstance(default, bool) else default})" if default else ""
        extra: dict[str, Any] = {"nargs": "?", "const": True} if opt.type.flag_optional_value else {}
        parser.add_argument(*opt.flags, dest=opt.name, type=opt.type.parse, default=default, metavar=opt.type.metavar,
                            help=opt.help + shown, **extra)


def from_arguments(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(models, options) for start() / serve() from parsed serve flags; InvalidArgument unless
    exactly one of --model_base_path and --model_config_file is given."""
    if bool(args.model_base_path) == bool(args.model_config_file):
        raise InvalidArgument("give exactly one of --model_base_path or --model_config_file")
    options = {opt.name: getattr(args, opt.name) for opt in OPTIONS}
    if options["batching"]:
        options["batching"] = args.batching_parameters_file or True
    else:
        options["batching"] = None
    return args.model_config_file or args.model_base_path, options


def describe() -> str:
    """The options as text, for start()'s and serve()'s docstrings."""
    lines = []
    for opt in OPTIONS:
        lines.append(f"    {opt.name} ({opt.type.annotation}, default {opt.default!r}; {', '.join(opt.flags)}):")
        lines.append(f"        {opt.help}.")
    return "\n".join(lines)
