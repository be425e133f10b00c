"""mserve models as a Ray Serve deployment (needs ``pip install "ray[serve]"``).

    from ray import serve
    from mserve.integrations.ray import ModelDeployment

    app = ModelDeployment.options(num_replicas=2).bind("model.onnx", name="mlp")
    serve.run(app, route_prefix="/")
    # TF Serving: POST /v1/models/mlp:predict {"instances": ...}; v2: POST /v2/models/mlp/infer

Each replica loads the model itself (a path every node can read). Concurrent requests are merged
by ``@serve.batch`` (up to ``max_batch_size`` rows, waiting at most ``batch_wait_timeout_s``) into
one ``predict``, which releases the GIL while the model computes; ``threads`` is each replica's
intra-op threads. ``num_replicas`` / ``autoscaling_config`` are Ray's, set with ``.options()``.

``user_config`` (``.options(user_config={...})``) swaps the model without restarting replicas:
``{"model": path, "version": 2, "max_batch_size": 16, "batch_wait_timeout_s": 0.001}`` (every key
optional). The new model is loaded beside the old one, which answers until the swap; a request is
answered by the model it was decoded for. Answers carry ``X-Model-Version``.

HTTP, under the deployment's route prefix: ``POST .../v1/models/NAME[/versions/N]:predict`` (TF
Serving's row and columnar formats), ``POST .../v2/models/NAME[/versions/N]/infer`` (KServe v2,
JSON or the binary extension), ``GET .../v1/models/NAME``, ``GET .../v2/models/NAME``,
``GET .../v2/health/ready`` and ``.../live``; a POST to any other path takes either body style.
Python callers use the handle: ``await handle.predict.remote(x)`` (x as ``Model.predict`` takes it).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError("mserve.integrations.ray needs Ray Serve: pip install \"ray[serve]\"") from e

from .. import Model, load
from ..errors import Error, InvalidArgument, NotFound
from . import _wire

_CONFIG_KEYS = {"model", "version", "max_batch_size", "batch_wait_timeout_s"}
_PREDICT = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/(\d+))?/infer$")
_TFS_STATUS = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?$")
_V2_META = re.compile(r"/v2/models/([^/]+)(?:/versions/(\d+))?(/ready)?$")


@dataclass(frozen=True)
class _Loaded:
    """A model and what it was loaded as; swapped as one reference."""

    model: Model
    source: str
    version: int

    def batchable(self) -> bool:
        """Whether requests can be stacked: every input has a free first dimension."""
        return all(s.shape and not isinstance(s.shape[0], int) for s in self.model.inputs)


@dataclass
class _Item:
    loaded: _Loaded
    inputs: list[np.ndarray[Any, Any]]

    def rows(self) -> int:
        return int(self.inputs[0].shape[0]) if self.inputs and self.inputs[0].ndim else 1


def _rows(items: list[_Item]) -> int:
    return sum(i.rows() for i in items)


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type="application/json")


@serve.deployment(max_ongoing_requests=128)
class ModelDeployment:
    """A Ray Serve deployment answering for one mserve model (module docstring)."""

    def __init__(self, model: str | os.PathLike[str] | None = None, *, name: str = "model", version: int = 1,
                 threads: int | None = None, device: str = "cpu", pack_cache: bool | str = False,
                 max_batch_size: int = 32, batch_wait_timeout_s: float = 0.002):
        self._name = name
        self._options: dict[str, Any] = {"threads": threads, "device": device, "pack_cache": pack_cache}
        self._loaded: _Loaded | None = None
        self._stats = {"requests": 0, "batches": 0, "largest_batch": 0, "swaps": 0}
        self._set_batching(max_batch_size, batch_wait_timeout_s)
        if model is not None:
            self._loaded = self._load(os.fspath(model), version)

    def _load(self, source: str, version: int) -> _Loaded:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidArgument(f"version must be a positive int, got {version!r}")
        return _Loaded(load(source, **self._options), source, version)

    def _set_batching(self, max_batch_size: Any, wait: Any) -> None:
        self._batching = _batching(max_batch_size, wait)
        self._run_batch.set_max_batch_size(self._batching[0])
        self._run_batch.set_batch_wait_timeout_s(self._batching[1])

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Ray calls this with the deployment's ``user_config`` at start and on every change."""
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise InvalidArgument(f"user_config: unknown key(s) {sorted(unknown)}; known: {sorted(_CONFIG_KEYS)}")
        batching = _batching(config.get("max_batch_size", self._batching[0]),
                             config.get("batch_wait_timeout_s", self._batching[1]))  # checked before the swap
        if "model" in config:
            source = os.fspath(config["model"])
            current = self._loaded
            default = 1 if current is None else current.version + (source != current.source)
            version = config.get("version", default)
            if current is None or (source, version) != (current.source, current.version):
                # Loaded off the event loop, where requests keep being answered by the current
                # model; the swap is one reference assignment on it.
                self._loaded = await asyncio.to_thread(self._load, source, version)
                self._stats["swaps"] += 1
        elif "version" in config:
            raise InvalidArgument("user_config: \"version\" needs \"model\"")
        self._set_batching(*batching)

    def _current(self) -> _Loaded:
        loaded = self._loaded
        if loaded is None:
            raise NotFound("no model loaded yet: give a path or user_config {\"model\": ...}")
        return loaded

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002, batch_size_fn=_rows)  # type: ignore[untyped-decorator]
    async def _run_batch(self, items: list[_Item]) -> list[Any]:
        self._stats["batches"] += 1
        self._stats["largest_batch"] = max(self._stats["largest_batch"], _rows(items))
        return await asyncio.to_thread(_run_items, items)

    async def predict(self, x: Any) -> Any:
        """``Model.predict(x)`` through the replica's batcher (x: an array, a dict or a list)."""
        loaded = self._current()
        arrays = loaded.model._bind(x)
        inputs = [loaded.model._convert(s, v) for s, v in zip(loaded.model.inputs, arrays)]
        outs = await self._submit(_Item(loaded, inputs))
        if len(outs) == 1:
            return outs[0]
        return {s.name: y for s, y in zip(loaded.model.outputs, outs)}

    async def _submit(self, item: _Item) -> list[Any]:
        self._stats["requests"] += 1
        if item.rows() > self._batching[0]:  # larger than a batch: runs alone, as it came
            result = (await asyncio.to_thread(_run_items, [item]))[0]
        else:
            result = await self._run_batch(item)
        if isinstance(result, BaseException):
            raise result
        return list(result)

    def stats(self) -> dict[str, Any]:
        """This replica's counters: requests, batches run, the largest batch (rows), model swaps; its
        model version, replica id, Ray node and process."""
        import ray
        loaded = self._loaded
        return dict(self._stats, version=loaded.version if loaded else None,
                    replica=serve.get_replica_context().replica_tag, node=ray.get_runtime_context().get_node_id(),
                    pid=os.getpid())

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._http(request)
        except InvalidArgument as e:
            return _error(400, str(e))
        except NotFound as e:
            return _error(404, str(e))
        except Error as e:
            return _error(500, str(e))
        except Exception as e:  # a bug, not the request: still an answer that says what happened
            return _error(500, f"{type(e).__name__}: {e}")

    def _check(self, name: str, version: str | None) -> _Loaded:
        loaded = self._current()
        if name != self._name:
            raise NotFound(f"model '{name}' is not served here (this deployment serves '{self._name}')")
        if version is not None and int(version) != loaded.version:
            raise NotFound(f"model '{name}' version {version} is not served (version {loaded.version} is)")
        return loaded

    async def _http(self, request: Request) -> Response:
        path = request.url.path
        if request.method == "GET":
            if path.endswith(("/v2/health/ready", "/v2/health/live")):
                return Response(status_code=200 if self._loaded else 503)
            if m := _V2_META.search(path):
                loaded = self._check(m.group(1), m.group(2))
                if m.group(3):
                    return Response(status_code=200)
                return self._json(_wire.v2_metadata(loaded.model, self._name, loaded.version), loaded)
            if m := _TFS_STATUS.search(path):
                loaded = self._check(m.group(1), m.group(2))
                return self._json(_wire.tfs_status(loaded.version), loaded)
            raise NotFound(f"no GET route {path}")
        if request.method != "POST":
            return _error(405, f"{request.method} is not served")
        body = await request.body()
        header_length = request.headers.get("inference-header-content-length")
        if m := _INFER.search(path):
            return await self._v2(self._check(m.group(1), m.group(2)), body, header_length)
        if m := _PREDICT.search(path):
            return await self._tfs(self._check(m.group(1), m.group(2)), body)
        loaded = self._current()
        if header_length is not None:
            return await self._v2(loaded, body, header_length)
        doc = _parse(body)
        if _wire.is_v2_body(doc):
            return await self._v2(loaded, body, None)
        return await self._tfs(loaded, body, doc)

    async def _tfs(self, loaded: _Loaded, body: bytes, doc: Any = None) -> Response:
        inputs, row_format = _wire.decode_tfs(loaded.model, _parse(body) if doc is None else doc)
        outs = await self._submit(_Item(loaded, inputs))
        return Response(_wire.encode_tfs(loaded.model, outs, row_format), media_type="application/json",
                        headers={"X-Model-Version": str(loaded.version)})

    async def _v2(self, loaded: _Loaded, body: bytes, header_length: str | None) -> Response:
        req = _wire.decode_v2(loaded.model, body, header_length)
        outs = await self._submit(_Item(loaded, req.inputs))
        data, headers = _wire.encode_v2(loaded.model, self._name, loaded.version, req, outs)
        headers["X-Model-Version"] = str(loaded.version)
        return Response(data, headers=headers)

    def _json(self, doc: Any, loaded: _Loaded) -> Response:
        return Response(json.dumps(doc), media_type="application/json",
                        headers={"X-Model-Version": str(loaded.version)})


def _batching(max_batch_size: Any, wait: Any) -> tuple[int, float]:
    if not isinstance(max_batch_size, int) or isinstance(max_batch_size, bool) or max_batch_size < 1:
        raise InvalidArgument(f"max_batch_size must be a positive int, got {max_batch_size!r}")
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait < 0:
        raise InvalidArgument(f"batch_wait_timeout_s must be a number >= 0, got {wait!r}")
    return max_batch_size, float(wait)


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"malformed JSON: {e}") from None


def _run_items(items: list[_Item]) -> list[Any]:
    """Each item's outputs (a list per item, in the model's output order) or the exception its
    request gets. Items decoded for one model with stackable inputs run as one predict; a batch
    that fails is run item by item, so one bad request fails alone."""
    results: list[Any] = [None] * len(items)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for k, it in enumerate(items):
        key: tuple[Any, ...] = (id(it.loaded), tuple((a.dtype.str, a.shape[1:]) for a in it.inputs)) \
            if it.loaded.batchable() and all(a.ndim for a in it.inputs) else (k,)
        groups.setdefault(key, []).append(k)
    for members in groups.values():
        model = items[members[0]].loaded.model
        if len(members) > 1:
            counts = [items[k].rows() for k in members]
            try:
                stacked = [np.concatenate([items[k].inputs[i] for k in members]) for i in range(len(model.inputs))]
                outs = _as_list(model, model.predict(stacked))
                total = sum(counts)
                if all(isinstance(y, np.ndarray) and y.ndim and y.shape[0] == total for y in outs):
                    bounds = np.cumsum(counts)[:-1]
                    split = [np.split(y, bounds) for y in outs]
                    for j, k in enumerate(members):
                        results[k] = [parts[j] for parts in split]
                    continue
            except Error:
                pass  # answered one by one below: the error goes to the request that caused it
        for k in members:
            try:
                results[k] = _as_list(model, model.predict(items[k].inputs))
            except Error as e:
                results[k] = e
    return results


def _as_list(model: Model, y: Any) -> list[Any]:
    return [y[s.name] for s in model.outputs] if isinstance(y, dict) else [y]


def app(args: dict[str, Any]) -> Any:
    """An application builder for Ray's config files and CLI: ``serve run
    mserve.integrations.ray:app model=/models/mlp.onnx name=mlp``, or ``import_path:
    mserve.integrations.ray:app`` with ``args: {model: ..., name: ...}`` in a Serve config (what
    KubeRay's RayService deploys). Args are ``ModelDeployment``'s; the CLI gives strings, so
    ``version``, ``threads`` and ``max_batch_size`` are read as ints and ``batch_wait_timeout_s`` as a
    float. Deployed this way, a change of ``user_config`` alone swaps the model in place."""
    known = {"model", "name", "version", "threads", "device", "pack_cache", "max_batch_size", "batch_wait_timeout_s"}
    unknown = set(args) - known
    if unknown:
        raise InvalidArgument(f"unknown arg(s) {sorted(unknown)}; known: {sorted(known)}")
    kw = dict(args)
    for key, kind in (("version", int), ("threads", int), ("max_batch_size", int), ("batch_wait_timeout_s", float)):
        if isinstance(kw.get(key), str):
            try:
                kw[key] = kind(kw[key])
            except ValueError:
                raise InvalidArgument(f"{key}: {kw[key]!r} is not a number") from None
    model = kw.pop("model", None)
    return ModelDeployment.bind(model, **kw)  # type: ignore[attr-defined]  # (serve.deployment made it a Deployment)
