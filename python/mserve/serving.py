"""``mserve.start()`` and ``mserve.serve()``: the C++ model server (TensorFlow Serving REST and gRPC,
KServe v2, Prometheus).

Python only starts and stops the server; requests are parsed, batched, run and answered in C++. The
options are the rows of ``mserve.options.OPTIONS``.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, Union, overload

from . import _core, _server
from . import options as _options
from ._device import backend_for
from .errors import InvalidArgument, Unavailable

if TYPE_CHECKING:
    from . import Model

ModelsArg = Union[str, "os.PathLike[str]", "Model", Mapping[str, Any]]

_DiskModel = dict[str, Any]
_MemoryModel = tuple[str, "_core.Session"]


# Base paths the server mirrors itself (README "Models on object stores"), and MLflow registry URIs
# mirrored from Python (mlflow_source.py).
_REMOTE = ("s3://", "webhdfs://", "models:/")


def _model_entry(name: str, path: str | os.PathLike[str]) -> _DiskModel:
    path = os.fspath(path)
    if path.startswith(_REMOTE):
        return {"name": name, "base_path": path}
    if not os.path.exists(path):
        raise InvalidArgument(f"model {name!r}: {path!r} does not exist")
    return {"name": name, "base_path": os.path.abspath(path)}


_MODEL_KEYS = {"base_path", "batching", "version_policy", "versions", "num_versions", "labels", "device", "precision",
               "rollout"}
_ROLLOUT_KEYS = {"arms", "sticky_header", "shadow", "guard"}
_SHADOW_KEYS = {"label", "percent", "queue"}
_GUARD_KEYS = {"window_seconds", "min_requests", "max_error_rate_increase", "max_p99_ratio", "p99_slack_ms",
               "step_percent", "step_interval_seconds", "max_percent"}


def _rollout_text(name: str, r: Mapping[str, Any] | str) -> str:
    """A model's ``rollout`` option as the config's rollout block text: the text itself, or a dict
    {"arms": {label: weight, ...} (the first is the baseline), "sticky_header": "x-user-id" or
    "identity", "shadow": {"label", "percent", "queue"}, "guard": {"window_seconds", ...}} (README
    "Rollouts"). The server checks the values."""
    if isinstance(r, str):
        return r
    if not isinstance(r, Mapping):
        raise InvalidArgument(f"model {name!r}: rollout must be a dict or the rollout block's text")

    def check(what: str, d: Any, known: set[str]) -> Mapping[str, Any]:
        if not isinstance(d, Mapping):
            raise InvalidArgument(f"model {name!r}: rollout {what} must be a dict")
        unknown = set(d) - known
        if unknown:
            raise InvalidArgument(f"model {name!r}: rollout {what}: unknown option(s) {sorted(unknown)}; "
                                  f"known: {sorted(known)}")
        return d

    def field(key: str, v: Any) -> str:
        if isinstance(v, str):
            return f"{key}: {json.dumps(v, ensure_ascii=False)}"
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidArgument(f"model {name!r}: rollout {key} must be a number, got {v!r}")
        return f"{key}: {v!r}"

    check("", r, _ROLLOUT_KEYS)
    parts = [f"arm {{ {field('label', str(label))} {field('weight', w)} }}"
             for label, w in check("arms", r.get("arms", {}), set(r.get("arms", {}))).items()]
    if "sticky_header" in r:
        parts.append(field("sticky_header", str(r["sticky_header"])))
    for block, known in (("shadow", _SHADOW_KEYS), ("guard", _GUARD_KEYS)):
        if block in r:
            body = check(block, r[block], known)
            parts.append(f"{block} {{ " + " ".join(field(k, v) for k, v in body.items()) + " }")
    return " ".join(parts)



def _model_options(name: str, m: Mapping[str, Any], server: Mapping[str, Any]) -> _DiskModel:
    """A model given as a dict: base_path plus per-model batching, version_policy ("latest",
    "all" or "specific"), num_versions, versions, labels (label -> version), device ("cpu",
    "cuda" or "mock"; default: the server's), precision (default: the server's where the model
    runs on the server's device, else "fp32") and rollout (a weighted split between labels, a
    shadow and a guard: ``_rollout_text``)."""
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
                 batching=_options.batching_options(f"model {name!r}: batching", m.get("batching")))
    if "device" in m or "precision" in m:
        device = m.get("device", server["device"])
        precision = m.get("precision", server["precision"] if device == server["device"] else "fp32")
        entry["device"] = backend_for(f"model {name!r}: device", device, precision)
    if m.get("rollout") is not None:
        entry["rollout"] = _rollout_text(name, m["rollout"])
    return entry


def _is_config_file(path: str) -> bool:
    if not os.path.isfile(path) or path.endswith(".onnx"):
        return False
    with open(path, "rb") as f:
        head = f.read(4096)
    return b"model_config_list" in head


def _plan(models: ModelsArg, model_name: str | None,
          server: Mapping[str, Any]) -> tuple[list[_DiskModel], list[_MemoryModel], str | None]:
    """(disk models, in-memory sessions, config file) for serve()'s `models` argument."""
    from . import Model  # late: mserve/__init__ imports this module
    if isinstance(models, Model):
        return [], [(model_name or "model", models._s)], None
    if isinstance(models, Mapping):
        disk: list[_DiskModel] = []
        mem: list[_MemoryModel] = []
        for name, m in models.items():
            if isinstance(m, Model):
                mem.append((str(name), m._s))
            elif isinstance(m, (str, os.PathLike)):
                disk.append(_model_entry(str(name), m))
            elif isinstance(m, Mapping) and "base_path" in m:
                disk.append(_model_options(str(name), m, server))
            else:
                raise InvalidArgument(f"model {name!r}: expected a path, an mserve.Model or a dict with "
                                      f"'base_path', got {type(m).__name__}")
        return disk, mem, None
    if isinstance(models, (str, os.PathLike)):
        path = os.fspath(models)
        if _is_config_file(path):
            return [], [], os.path.abspath(path)
        tail = path.rstrip("/").rsplit("/", 1)[-1] if path.startswith(_REMOTE) else os.path.normpath(path)
        name = model_name or os.path.splitext(os.path.basename(tail))[0] or "model"
        return [_model_entry(name, path)], [], None
    raise InvalidArgument("models must be a model file, a folder of numbered versions, a config file, "
                          "an mserve.Model, or a dict name -> path or Model")


class Server:
    """A running model server. ``url`` is its base address; use it as a context manager (or call
    ``stop()``) to shut it down after draining in-flight requests."""

    def __init__(self, core: _server.Server, host: str, tls: bool = False, bridge: Any = None):
        self._core = core
        self._host = host
        self._tls = tls
        self._stopped = False
        self._bridge = bridge  # models:/ base paths kept in step with the MLflow registry

    @property
    def port(self) -> int:
        return self._core.port

    @property
    def grpc_port(self) -> int | None:
        """The gRPC port, or None when the server has no gRPC front end."""
        p = self._core.grpc_port
        return None if p < 0 else p

    @property
    def grpc_target(self) -> str | None:
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

    def wait_ready(self, timeout: float = 60.0) -> Server:
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
            if self._bridge is not None:
                self._bridge.stop()
            self._core.stop(int(drain_timeout * 1000))

    def __enter__(self) -> Server:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("ready" if self.ready else "loading")
        return f"<mserve.Server {self.url} {state}>"


def start(models: ModelsArg, **options: Any) -> Server:
    """Starts serving ``models`` and returns the running Server at once (use it as a context
    manager, or call ``stop()``). Over HTTP: TensorFlow Serving's REST API (/v1/models/...),
    KServe v2 (/v2/...) and Prometheus metrics (/metrics); with ``grpc_port``, over gRPC too:
    TensorFlow Serving's PredictionService and ModelService, KServe v2's GRPCInferenceService
    and grpc.health.v1.Health, on the same models.

    models: a .onnx file; a base path of numbered version folders (base/1/model.onnx, ..., local,
        s3://, webhdfs://, or an MLflow registry's models:/name@alias or models:/name/3);
        a TensorFlow Serving model_config_list text file; an mserve.Model; or a dict
        name -> path, Model, or {"base_path": ..., "batching": ..., "version_policy": ...,
        "num_versions": ..., "versions": [...], "labels": {label: version}}.

    An unknown option is a TypeError naming it. The options (keyword, type, default; the flags of
    ``python -m mserve serve``):

"""
    values = _options.check("start", options)
    disk, mem, config_file = _plan(models, values["model_name"], values)
    core = _options.core_options(values, config_file or "")
    sources = []
    if any(d["base_path"].startswith("models:/") for d in disk):
        from .mlflow_source import Bridge, MlflowSource
        cache = values["remote_cache_dir"] or ""
        for i, d in enumerate(disk):
            if d["base_path"].startswith("models:/"):
                src = MlflowSource(d["name"], d["base_path"], cache, d.get("rollout"))
                keep = {k: v for k, v in d.items() if k not in ("policy", "versions", "labels", "rollout")}
                disk[i] = {**keep, **src.sync()}
                sources.append(src)
    server = _server.Server.start(core, disk, mem)
    bridge = None
    if sources:
        def log(line: str) -> None:
            print(time.strftime("%Y-%m-%d %H:%M:%S"), f"mserve: {line}", file=sys.stderr, flush=True)
        bridge = Bridge(sources, disk, float(values["file_system_poll_wait_seconds"]), server.reload_config,
                        None if values["quiet"] else log, server.report_source)
        for src in sources:
            server.report_source(src.name, src.uri, "")
        bridge.start()
    return Server(server, values["host"], bool(values["tls_cert_file"]), bridge)


@overload
def serve(models: ModelsArg, *, blocking: Literal[True] = ..., **options: Any) -> None: ...
@overload
def serve(models: ModelsArg, *, blocking: Literal[False], **options: Any) -> Server: ...
@overload
def serve(models: ModelsArg, *, blocking: bool, **options: Any) -> Server | None: ...


def serve(models: ModelsArg, *, blocking: bool = True, **options: Any) -> Server | None:
    """Serves ``models`` until SIGINT or SIGTERM, then drains in-flight requests, stops and
    returns None. ``models`` and the options are start()'s.

    ``blocking=False`` is a deprecated alias of ``start()``: it returns the running Server.
    """
    if not blocking:
        warnings.warn("serve(..., blocking=False) is deprecated; use mserve.start(...)", DeprecationWarning,
                      stacklevel=2)
        return start(models, **options)
    values = _options.check("serve", options)  # before the handlers go in
    # The handlers go in before the server starts: a SIGTERM right after it reports that it is
    # serving must drain it, not kill the process.
    done = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        server = start(models, **values)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()  # drains in-flight requests
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return None


start.__doc__ = (start.__doc__ or "") + _options.describe() + "\n"
