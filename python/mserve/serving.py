"""``mserve.serve()``: the C++ model server (TensorFlow Serving REST, KServe v2, Prometheus).

Python only starts and stops the server; requests are parsed, batched, run and answered in C++.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from . import _core
from .errors import InvalidArgument, Unavailable

ModelsArg = Union[str, os.PathLike, Mapping[str, Any]]

_BATCHING_KEYS = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                  "allowed_batch_sizes", "pad_variable_length_inputs"}


def _read_text(path: Union[str, os.PathLike]) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise InvalidArgument(f"cannot read trusted key {os.fspath(path)!r}: {e.strerror}") from None


def _batching(b: Any) -> Optional[Dict[str, Any]]:
    """None, True (TensorFlow Serving's defaults), a dict of BatchingParameters fields, or the
    path of a batching parameters text file."""
    if b is None or b is False:
        return None
    if b is True:
        return {}
    if isinstance(b, (str, os.PathLike)):
        with open(b, encoding="utf-8") as f:
            return _core.parse_batching_parameters(f.read())
    if isinstance(b, Mapping):
        unknown = set(b) - _BATCHING_KEYS
        if unknown:
            raise InvalidArgument(f"unknown batching parameter(s) {sorted(unknown)}; known: {sorted(_BATCHING_KEYS)}")
        return dict(b)
    raise InvalidArgument(f"batching must be None, True, a dict or a file path, not {type(b).__name__}")


def _model_entry(name: str, path: Union[str, os.PathLike]) -> Dict[str, Any]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidArgument(f"model {name!r}: {path!r} does not exist")
    return {"name": name, "base_path": os.path.abspath(path)}


_MODEL_KEYS = {"base_path", "batching", "version_policy", "versions", "num_versions", "labels"}


def _model_options(name: str, m: Mapping[str, Any]) -> Dict[str, Any]:
    """A model given as a dict: base_path plus per-model batching, version_policy ("latest",
    "all" or "specific"), num_versions, versions and labels (label -> version)."""
    unknown = set(m) - _MODEL_KEYS
    if unknown:
        raise InvalidArgument(f"model {name!r}: unknown option(s) {sorted(unknown)}; known: {sorted(_MODEL_KEYS)}")
    entry = _model_entry(name, m["base_path"])
    policy = m.get("version_policy", "latest")
    if policy not in ("latest", "all", "specific"):
        raise InvalidArgument(f"model {name!r}: version_policy must be 'latest', 'all' or 'specific'")
    entry.update(policy=policy, num_versions=int(m.get("num_versions", 1)),
                 versions=[int(v) for v in m.get("versions", [])],
                 labels={str(k): int(v) for k, v in dict(m.get("labels", {})).items()},
                 batching=_batching(m.get("batching")))
    return entry


def _is_config_file(path: str) -> bool:
    if not os.path.isfile(path) or path.endswith(".onnx"):
        return False
    with open(path, "rb") as f:
        head = f.read(4096)
    return b"model_config_list" in head


def _plan(models: ModelsArg, model_name: Optional[str]):
    """(disk models, in-memory sessions, config file) for serve()'s `models` argument."""
    from . import Model  # late: mserve/__init__ imports this module
    if isinstance(models, Model):
        return [], [(model_name or "model", models._s)], None
    if isinstance(models, Mapping):
        disk, mem = [], []
        for name, m in models.items():
            if isinstance(m, Model):
                mem.append((str(name), m._s))
            elif isinstance(m, (str, os.PathLike)):
                disk.append(_model_entry(str(name), m))
            elif isinstance(m, Mapping) and "base_path" in m:
                disk.append(_model_options(str(name), m))
            else:
                raise InvalidArgument(f"model {name!r}: expected a path, an mserve.Model or a dict with "
                                      f"'base_path', got {type(m).__name__}")
        return disk, mem, None
    if isinstance(models, (str, os.PathLike)):
        path = os.fspath(models)
        if _is_config_file(path):
            return [], [], os.path.abspath(path)
        name = model_name or os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "model"
        return [_model_entry(name, path)], [], None
    raise InvalidArgument("models must be a model file, a folder of numbered versions, a config file, "
                          "an mserve.Model, or a dict name -> path or Model")


class Server:
    """A running model server. ``url`` is its base address; use it as a context manager (or call
    ``stop()``) to shut it down after draining in-flight requests."""

    def __init__(self, core: "_core.Server", host: str, tls: bool = False):
        self._core = core
        self._host = host
        self._tls = tls
        self._stopped = False

    @property
    def port(self) -> int:
        return self._core.port

    @property
    def grpc_port(self) -> Optional[int]:
        """The gRPC port, or None when the server has no gRPC front end."""
        p = self._core.grpc_port
        return None if p < 0 else p

    @property
    def grpc_target(self) -> Optional[str]:
        """``host:port`` for ``grpc.insecure_channel`` (None without gRPC)."""
        if self.grpc_port is None:
            return None
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.grpc_port}"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}"

    @property
    def ready(self) -> bool:
        """True when every model has at least one available version."""
        return self._core.ready

    def wait_ready(self, timeout: float = 60.0) -> "Server":
        """Blocks until every model has an available version; raises Unavailable on timeout."""
        deadline = time.monotonic() + timeout
        while not self._core.ready:
            if time.monotonic() > deadline:
                raise Unavailable(f"models not ready after {timeout} s")
            time.sleep(0.02)
        return self

    def poll(self) -> None:
        """Scans the model folders now instead of waiting for the next poll."""
        self._core.poll()

    def stop(self, drain_timeout: float = 30.0) -> None:
        """Stops accepting requests, lets in-flight ones finish (up to drain_timeout), stops."""
        if not self._stopped:
            self._stopped = True
            self._core.stop(int(drain_timeout * 1000))

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("ready" if self.ready else "loading")
        return f"<mserve.Server {self.url} {state}>"


def serve(models: ModelsArg, *, host: str = "127.0.0.1", port: int = 8501, grpc_port: Optional[int] = None,
          grpc_max_threads: int = 0, blocking: bool = True,
          batching: Any = None, model_name: Optional[str] = None, threads: int = 0,
          http_threads: int = 0, request_timeout_ms: int = 0, max_body_bytes: int = 64 << 20,
          file_system_poll_wait_seconds: int = 1, model_config_file_poll_wait_seconds: int = 0,
          optimize: bool = True, warmup: bool = True, quiet: bool = False,
          auth_tokens_file: Optional[Union[str, os.PathLike]] = None, auth_tokens_env: Optional[str] = None,
          allow_cidrs: Optional[Sequence[str]] = None, open_health_checks: bool = True,
          tls_cert_file: Optional[Union[str, os.PathLike]] = None,
          tls_key_file: Optional[Union[str, os.PathLike]] = None,
          trusted_keys: Optional[Sequence[Union[str, os.PathLike]]] = None, require_signatures: bool = False,
          model_key_file: Optional[Union[str, os.PathLike]] = None,
          model_key_env: Optional[str] = None, audit_log: Optional[Union[str, os.PathLike]] = None,
          audit_log_max_bytes: int = 100 << 20, audit_log_keep: int = 5, max_connections: int = 10000,
          idle_timeout_ms: int = 60000, read_timeout_ms: int = 30000) -> Optional[Server]:
    """Serves models over HTTP: TensorFlow Serving's REST API (/v1/models/...), KServe v2
    (/v2/...) and Prometheus metrics (/metrics); and, with ``grpc_port``, over gRPC:
    TensorFlow Serving's PredictionService and ModelService, KServe v2's GRPCInferenceService
    and grpc.health.v1.Health, on the same models.

    models: a .onnx file; a base path of numbered version folders (base/1/model.onnx, ...);
        a TensorFlow Serving model_config_list text file; an mserve.Model; or a dict
        name -> path, Model, or {"base_path": ..., "batching": ..., "version_policy": ...,
        "num_versions": ..., "versions": [...], "labels": {label: version}}.
    port: 0 picks a free port (read it back from Server.port / Server.url).
    grpc_port: None (no gRPC), 0 (a free port: Server.grpc_port / Server.grpc_target) or a
        port (8500 is tensorflow_model_server's). grpc_max_threads: calls served at once
        (0: 4 per core, at least 16); more get RESOURCE_EXHAUSTED.
    blocking: True serves until SIGINT/SIGTERM (then drains and returns None); False returns
        a Server at once (use it as a context manager, or call stop()).
    batching: None (off), True (TensorFlow Serving's defaults), a dict of BatchingParameters
        fields, or the path of a batching parameters text file.
    threads: intra-op threads per model (0: the machine's cores); http_threads: server threads.
    auth_tokens_file / auth_tokens_env: bearer tokens (a file, re-read when it changes, and/or an
        environment variable's name), one per line: ``<token> [identity] [models=a,b]``. Every
        call then needs ``Authorization: Bearer <token>`` (gRPC: ``authorization`` metadata):
        401 / UNAUTHENTICATED without a valid one, 403 / PERMISSION_DENIED for a model the
        token may not call. allow_cidrs: client addresses allowed (CIDR blocks), others get
        403. open_health_checks: health checks (/v2/health/*, model ready, gRPC health) need no
        token.
    tls_cert_file / tls_key_file: PEM certificate chain and private key: HTTPS and gRPC over TLS
        (1.2 and 1.3 only); Server.url then starts with https://.
    trusted_keys / require_signatures: Ed25519 public key files (PEM) that model version
        folders must be signed with (``mserve sign``); a version that is unsigned (when
        required), altered or signed with another key is refused, reported in its status, and
        the serving version stays. A folder with a manifest is checked even when not required.
    model_key_file / model_key_env: the AES-256 key of encrypted model files (``mserve
        encrypt``), decrypted in memory only.
    audit_log: a file that gets one JSON line per request (time, protocol, client, identity,
        model, version, endpoint, status, latency, request id; never the payload), rotated past
        audit_log_max_bytes into .1 ... .<audit_log_keep>. Writing never fails a request.
    max_connections: open HTTP connections (more are closed at accept); idle_timeout_ms: a
        keep-alive connection (or a client sending its headers) idle this long is closed;
        read_timeout_ms: a request body or TLS handshake must arrive within this. Slow clients
        cannot hold connections.
    request_timeout_ms: per-request deadline (504 / DEADLINE_EXCEEDED when exceeded; 0: none);
        a gRPC client's own deadline applies too.
    """
    disk, mem, config_file = _plan(models, model_name)
    opts = {
        "host": host, "port": int(port), "grpc_port": -1 if grpc_port is None else int(grpc_port),
        "grpc_max_threads": int(grpc_max_threads), "http_threads": int(http_threads), "threads": int(threads),
        "request_timeout_ms": int(request_timeout_ms), "max_body_bytes": int(max_body_bytes),
        "file_system_poll_wait_seconds": int(file_system_poll_wait_seconds),
        "model_config_file": config_file or "",
        "model_config_file_poll_wait_seconds": int(model_config_file_poll_wait_seconds),
        "auth_tokens_file": os.fspath(auth_tokens_file) if auth_tokens_file else "",
        "auth_tokens_env": auth_tokens_env or "", "allow_cidrs": list(allow_cidrs or []),
        "open_health_checks": bool(open_health_checks),
        "tls_cert_file": os.fspath(tls_cert_file) if tls_cert_file else "",
        "tls_key_file": os.fspath(tls_key_file) if tls_key_file else "",
        "trusted_keys": [_read_text(k) for k in trusted_keys or []],
        "require_signatures": bool(require_signatures),
        "model_key_file": os.fspath(model_key_file) if model_key_file else "", "model_key_env": model_key_env or "",
        "audit_log": os.fspath(audit_log) if audit_log else "", "audit_log_max_bytes": int(audit_log_max_bytes),
        "audit_log_keep": int(audit_log_keep), "max_connections": int(max_connections),
        "idle_timeout_ms": int(idle_timeout_ms), "read_timeout_ms": int(read_timeout_ms),
        "batching": _batching(batching), "optimize": bool(optimize), "warmup": bool(warmup), "quiet": bool(quiet),
    }
    if not blocking:
        return Server(_core.Server.start(opts, disk, mem), host, bool(tls_cert_file))
    # The handlers go in before the server starts: a SIGTERM right after it reports that it is
    # serving must drain it, not kill the process.
    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, lambda signum, frame: done.set())
    try:
        server = Server(_core.Server.start(opts, disk, mem), host, bool(tls_cert_file))
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()  # drains in-flight requests
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return None
