"""mserve: load ONNX models and predict on numpy arrays, with a C++ core.

Quick start::

    import mserve
    model = mserve.load("model.onnx")
    y = model.predict(x)            # x: numpy array; y: numpy array (or dict for many outputs)
"""
from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Union, cast

import numpy as np

from . import _core, cuda  # noqa: F401  (mserve.cuda: the CUDA loader, public)
from ._device import backend_for
from .cuda import cuda_available
from .errors import Error, InvalidArgument, ModelLoadError, NotFound, Unavailable, UnsupportedOperator

__all__ = [
    "load", "Model", "TensorSpec", "OpSupport", "Placement", "DeviceTensor", "supported_ops", "start", "serve",
    "Server", "cuda_available", "profile",
    "Error", "InvalidArgument", "ModelLoadError", "UnsupportedOperator", "NotFound", "Unavailable",
]
__version__: str = _core.__version__  # pyproject.toml's, compiled in

Dim = Union[int, str, None]

# A tensor on a device: an output kept there (predict(..., output_device=...)), an input of the
# next model on that device.
DeviceTensor = _core.DeviceTensor
_DLPACK_CPU = 1  # DLPack's kDLCPU


class TensorSpec(NamedTuple):
    """A model input or output: name, numpy dtype and shape (None when the model doesn't
    declare one). Dimensions are ints, or a str / None for symbolic (free) dimensions.
    A classifier's ZipMap output (a sequence of maps in ONNX) has dtype object and
    ``labels`` (ints, or strs for string class labels): predict returns it as a list of
    {label: probability} dicts, as onnxruntime does.
    String tensors (ONNX ``tensor(string)``) have dtype object: inputs take numpy arrays of
    str/bytes objects, or of dtype ``U`` / ``S`` (copied in), and outputs are object arrays of
    str, as onnxruntime returns them."""

    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...] | None
    labels: list[int] | None = None

    def __repr__(self) -> str:
        return f"TensorSpec(name={self.name!r}, dtype={self.dtype.name}, shape={_fmt_shape(self.shape)})"


class OpSupport(NamedTuple):
    domain: str       # "" is the default ONNX domain
    op_type: str
    since_opset: int  # first supported opset version
    family: str


class Placement(NamedTuple):
    """Where a model's nodes run (``Model.placement()``): the device's name, how many nodes run
    on it and on the CPU, the copies between host and device, the constants uploaded, and for
    every node left on the CPU of a model with a device ``(node, op_type, reason)``."""

    device: str
    device_nodes: int
    cpu_nodes: int
    copies: int
    uploads: int
    fallbacks: list[tuple[str, str, str]]
    no_graph: str = ""  # why the plan is not replayed as one CUDA graph ("": it is)

    def __str__(self) -> str:
        lines = [f"{self.device}: {self.device_nodes} node(s), cpu: {self.cpu_nodes} node(s), "
                 f"{self.copies} copies, {self.uploads} constant(s) uploaded"]
        lines += [f"  cpu  {op:<20} {node}: {why}" for node, op, why in self.fallbacks]
        if self.device != "cpu":
            lines.append("  one graph per run" if not self.no_graph else f"  step by step: {self.no_graph}")
        return "\n".join(lines)


def _fmt_shape(shape: tuple[Dim, ...] | None) -> str:
    if shape is None:
        return "unknown"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _specs(raw: Sequence[Any]) -> list[TensorSpec]:
    return [TensorSpec(name, np.dtype(object) if labels is not None or dt == "string" else np.dtype(dt),
                       shape, labels)
            for name, dt, shape, labels in raw]


def _zipmap(scores: np.ndarray[Any, Any], labels: Sequence[int | str]) -> list[dict[Any, float]]:
    keys = list(labels) if labels else list(range(scores.shape[1]))
    return _core.zipmap(scores.reshape(-1, len(keys)) if scores.ndim != 2 else scores, keys)


class Model:
    """A loaded model. Thread-safe: ``predict`` may run from many threads at once (the GIL is
    released while the model computes)."""

    def __init__(self, session: _core.Session, source: str):
        self._s = session
        self._source = source
        self.inputs: list[TensorSpec] = _specs(session.inputs)
        self.outputs: list[TensorSpec] = _specs(session.outputs)
        self._input_index = {s.name: i for i, s in enumerate(self.inputs)}
        self._output_index = {s.name: i for i, s in enumerate(self.outputs)}
        # predict's fast path (one numeric input, one output that is an array): a C function that
        # checks and runs in one call, returning None for anything it does not take.
        self._fast = session.fast_run()

    @property
    def threads(self) -> int:
        """Intra-op threads this model computes with."""
        return self._s.threads

    @property
    def pack_cache(self) -> dict[str, Any] | None:
        """What the pack cache did for this load (``load(..., pack_cache=...)``): its ``path``,
        the weights ``found`` in it, ``packed`` by this load and ``copied`` from the model file by it
        (used as stored but not aligned there: kept in the cache while used), whether the file was
        ``written``, and an ``error`` (empty when none); None without a cache."""
        return self._s.pack_cache

    @property
    def device(self) -> str:
        """The device this model runs on besides the CPU ("cpu" when it runs only there)."""
        return self._s.device

    def placement(self) -> Placement | None:
        """Where the nodes of the latest plan run (the plan made at load, with symbolic
        dimensions set to 1, until a predict plans other shapes); None when no plan was made
        yet (inputs without declared shapes)."""
        p = self._s.placement()
        if p is None:
            return None
        return Placement(p["device"], p["device_nodes"], p["cpu_nodes"], p["copies"], p["uploads"],
                         [tuple(f) for f in p["fallbacks"]], p["no_graph"])

    @property
    def opsets(self) -> dict[str, int]:
        return dict(self._s.opsets)

    @property
    def producer(self) -> str:
        return self._s.producer

    def predict(self, x: Any, *, outputs: None | str | Sequence[str] = None,
                output_device: str | None = None) -> Any:
        """Runs the model.

        ``x`` is one array (single-input models), a dict name -> array, or a list/tuple of
        arrays in input order. A C-contiguous numpy array of the input's dtype is read in place
        (no copy). A non-contiguous array is copied once into C order; a non-numpy value (list,
        scalar) is converted once with ``np.asarray(value, dtype=<input dtype>)``. A numpy array
        of another dtype is rejected with ``InvalidArgument`` (no silent casts). String inputs
        (dtype object) take arrays of str/bytes objects or of dtype ``U`` / ``S``, or lists of str.

        An input may also be a ``DeviceTensor`` on this model's device (an output of a model on
        it, kept there with ``output_device``), or another library's array on it: CUDA arrays
        exporting ``__cuda_array_interface__`` or DLPack (CuPy, PyTorch, JAX, Numba; the
        producer's stream is waited for, not the whole device), and on the CPU any DLPack array
        in host memory. Each is read where it is, with no copy.

        Returns one array for a single-output model, else a dict name -> array. ``outputs``
        selects outputs by name: a str returns that array, a sequence returns a dict.
        ``output_device``: None or "cpu" returns numpy arrays; the model's device (``"cuda"``,
        ``"mock"``) keeps the outputs computed there on it, as ``DeviceTensor``s (they export
        DLPack, and on CUDA ``__cuda_array_interface__``, so ``torch.from_dlpack(y)``,
        ``cupy.asarray(y)`` or ``torch.as_tensor(y, device="cuda")`` take them without a copy;
        ``y.numpy()`` copies one to the host).
        """
        on_device = output_device not in (None, "cpu")
        if on_device and output_device != self.device:
            raise InvalidArgument(f"output_device {output_device!r}: this model runs on {self.device!r}")
        if outputs is None and self._fast is not None and not on_device:
            y = self._fast(x)  # what the general path does for this case, without its checks
            if y is not None:
                return y
        arrays = [self._convert(spec, v) for spec, v in zip(self.inputs, self._bind(x))]
        # (device_outputs only when asked for: a keyword costs pybind11 a few hundred ns per call)
        results: list[Any] = self._s.run(arrays, True) if on_device else self._s.run(arrays)
        for i, spec in enumerate(self.outputs):
            if spec.labels is not None:
                results[i] = _zipmap(results[i], spec.labels)
        if outputs is None:
            if len(results) == 1:
                return results[0]
            return {spec.name: r for spec, r in zip(self.outputs, results)}
        if isinstance(outputs, str):
            return results[self._output_position(outputs)]
        return {name: results[self._output_position(name)] for name in outputs}

    __call__ = predict

    def profile(self, x: Any, *, runs: int = 100) -> list[tuple[str, int, float]]:
        """Runs ``predict(x)`` ``runs`` times (after one untimed warm-up call) and returns where the
        time went: ``(op_type, calls, total_ms)`` per operator type, slowest first. For finding
        hot spots; the model is not slower when not profiling."""
        if runs < 1:
            raise InvalidArgument("runs must be >= 1")
        self.predict(x)
        self._s.set_profiling(True)
        try:
            for _ in range(runs):
                self.predict(x)
            rows = self._s.profile()
        finally:
            self._s.set_profiling(False)
        return sorted(((op, calls, ns / 1e6) for op, calls, ns in rows), key=lambda r: -r[2])

    def _output_position(self, name: str) -> int:
        try:
            return self._output_index[name]
        except KeyError:
            raise InvalidArgument(
                f"unknown output {name!r}; the model's outputs are {list(self._output_index)}") from None

    def _bind(self, x: Any) -> list[Any]:
        n = len(self.inputs)
        if isinstance(x, Mapping):
            unknown = [k for k in x if k not in self._input_index]
            if unknown:
                raise InvalidArgument(f"unknown input(s) {unknown}; the model's inputs are {list(self._input_index)}")
            missing = [s.name for s in self.inputs if s.name not in x]
            if missing:
                raise InvalidArgument(f"missing input(s) {missing}")
            return [x[s.name] for s in self.inputs]
        # A list/tuple is positional when the model has several inputs or it holds arrays;
        # otherwise (a nested list of numbers) it is the data of the single input.
        if isinstance(x, (list, tuple)) and (n > 1 or (x and all(isinstance(v, (np.ndarray, DeviceTensor))
                                                                for v in x))):
            if len(x) != n:
                raise InvalidArgument(f"the model takes {n} input(s) {list(self._input_index)}, got {len(x)}")
            return list(x)
        if n != 1:
            raise InvalidArgument(
                f"the model takes {n} inputs {list(self._input_index)}: pass a dict name -> array or a list")
        return [x]

    def _foreign(self, spec: TensorSpec, v: Any) -> Any:
        """Another library's array, read in place: a CUDA array (__cuda_array_interface__, or
        DLPack on a CUDA device) as a DeviceTensor; a DLPack array in host memory as numpy (on
        the mock device, whose memory is host memory, as a DeviceTensor)."""
        try:
            if hasattr(v, "__cuda_array_interface__"):  # CuPy, PyTorch CUDA tensors, Numba
                return _core.DeviceTensor.from_cuda_array(v, self._s)
            if hasattr(v, "__dlpack__") and hasattr(v, "__dlpack_device__"):  # JAX, TensorFlow, PyTorch
                on_host = int(v.__dlpack_device__()[0]) == _DLPACK_CPU
                if on_host and self.device != "mock":
                    return np.from_dlpack(v)
                return _core.DeviceTensor.from_dlpack(v, self._s)
        except (ValueError, TypeError, BufferError, RuntimeError) as e:
            raise InvalidArgument(f"input {spec.name!r}: {e}") from None
        return v

    def _convert(self, spec: TensorSpec, v: Any) -> Any:
        if isinstance(v, np.ndarray) and spec.dtype != object:  # the common case, first
            if v.dtype != spec.dtype:
                raise InvalidArgument(f"input {spec.name!r}: expected dtype {spec.dtype.name}, got {v.dtype.name}")
            if not v.flags.c_contiguous or not v.flags.aligned:
                v = v.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
            return v
        if not isinstance(v, (np.ndarray, DeviceTensor)):
            v = self._foreign(spec, v)
        if isinstance(v, DeviceTensor):  # read on its device (the run checks it is this model's)
            if v.dtype != spec.dtype:
                raise InvalidArgument(f"input {spec.name!r}: expected dtype {spec.dtype.name}, got {v.dtype.name}")
            return v
        if isinstance(v, np.generic):  # a numpy scalar: a 0-d array of its own dtype
            v = np.asarray(v)
        if spec.dtype == object and spec.labels is None:  # a string input
            if not isinstance(v, np.ndarray):
                v = np.asarray(v, dtype=object)
            if v.dtype.kind not in "OUS":
                raise InvalidArgument(f"input {spec.name!r}: expected strings (an array of dtype object, "
                                      f"str_ or bytes_), got {v.dtype.name}")
            return cast("np.ndarray[Any, Any]", v)
        if isinstance(v, np.ndarray):  # (a numpy scalar made one above)
            if v.dtype != spec.dtype:
                raise InvalidArgument(f"input {spec.name!r}: expected dtype {spec.dtype.name}, got {v.dtype.name}")
            return v
        try:
            return np.asarray(v, dtype=spec.dtype, order="C")
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"input {spec.name!r}: cannot convert {type(v).__name__} to "
                                  f"{spec.dtype.name}: {e}") from None

    def __repr__(self) -> str:
        def rows(specs: Sequence[TensorSpec]) -> str:
            return "\n".join(f"    {s.name}: {s.dtype.name} {_fmt_shape(s.shape)}" for s in specs)
        return (f"<mserve.Model {self._source!r}\n  inputs:\n{rows(self.inputs)}\n"
                f"  outputs:\n{rows(self.outputs)}>")

    def _repr_html_(self) -> str:
        def rows(kind: str, specs: Sequence[TensorSpec]) -> str:
            return "".join(
                f"<tr><td>{kind}</td><td><code>{html.escape(s.name)}</code></td><td>{s.dtype.name}</td>"
                f"<td>{html.escape(_fmt_shape(s.shape))}</td></tr>" for s in specs)
        return (f"<p><b>mserve.Model</b> <code>{html.escape(self._source)}</code> "
                f"({self.threads} threads)</p><table><tr><th></th><th>name</th><th>dtype</th><th>shape</th></tr>"
                f"{rows('input', self.inputs)}{rows('output', self.outputs)}</table>")


def load(path_or_bytes: str | os.PathLike[str] | bytes | bytearray | memoryview | Any, *,
         device: str = "cpu", threads: int | None = None, optimize: bool = True,
         cuda_graphs: bool = True, precision: str | None = None,
         pack_cache: bool | str | os.PathLike[str] = False) -> Model:
    """Loads an ONNX model from a file path, from bytes, or from an ``onnx.ModelProto``.

    ``device``: ``"cpu"``; ``"cuda"``, which raises ``Unavailable`` naming what is missing (the
    CUDA backend, a CUDA library it needs, or a GPU; see ``mserve.cuda_available()``); or
    ``"mock"``, a device whose memory is host memory, for testing placement without a GPU. With
    a device, each node runs there when the device has a kernel for it, else on the CPU
    (``Model.placement()`` says which and why); inputs and outputs stay numpy arrays.
    ``threads``: intra-op threads (default: the machine's cores). Idle threads sleep.
    ``precision``: "fp32" (exact float32 everywhere), or with ``device="cuda"``: "tf32", float32
    matrix products and convolutions on TF32 tensor cores (10-bit mantissa products, float32
    accumulation; relative errors around 1e-3); "fp16" or "bf16", their constant weights
    converted once at load to float16 / bfloat16 and kept on the GPU in 16 bits, the other
    operand converted per call, on the tensor cores with float32 accumulation and output (every
    other operator stays float32; relative errors around 1e-3 for fp16, 1e-2 for bf16). None (the
    default): "fp32", except that a float16 or bfloat16 model (most of its weight bytes in 16
    bits) loaded with ``device="cuda"`` runs its own 16-bit weights that way, in "fp16" / "bf16".
    ``cuda_graphs``: with a device, a plan whose every node runs there is recorded as one graph on
    its second run and replayed after (one launch instead of one per node); False runs it step by
    step. ``Model.placement().no_graph`` says why a plan is not recorded.
    ``optimize``: graph clean-up (Identity/Dropout removal, dead nodes, constant folding);
    turn it off to debug a model exactly as exported.
    ``pack_cache``: keep the weights packed for this CPU (matrix products and convolutions) in a
    file, ``<model file>.<build>.mspack``, in the directory given, or with True in
    ``.mserve-cache`` beside the model. A load that finds the file maps it instead of packing:
    processes serving one model then share one copy of its packed weights. The file is written
    (atomically) by a load that packed weights it lacked; a missing, stale, corrupt or unwritable
    cache never fails a load (``Model.pack_cache`` reports what happened). Model files only.
    Raises ``ModelLoadError`` for malformed files and ``UnsupportedOperator`` (listing every
    unsupported node) when the model needs something the runtime cannot run.
    """
    if hasattr(path_or_bytes, "SerializeToString"):
        path_or_bytes = path_or_bytes.SerializeToString()
    if precision is None:
        precision = _own_precision(path_or_bytes) if device == "cuda" else "fp32"
    backend = backend_for("device", device, precision)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidArgument(f"threads must be a positive int, got {threads!r}")
    t = threads or 0
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        if pack_cache:
            raise InvalidArgument("pack_cache needs the model's file path; it was given as bytes")
        return Model(_core.Session.load_bytes(bytes(path_or_bytes), t, optimize=optimize, device=backend,
                                              graphs=cuda_graphs), "<bytes>")
    if isinstance(path_or_bytes, (str, os.PathLike)):
        path = os.fspath(path_or_bytes)
        cache = _pack_cache_dir(path, pack_cache)
        return Model(_core.Session.load_file(path, t, optimize=optimize, device=backend, graphs=cuda_graphs,
                                             pack_cache=cache), path)
    raise InvalidArgument(f"load() takes a path, bytes or an onnx.ModelProto, got {type(path_or_bytes).__name__}")


def _own_precision(model: Any) -> str:
    """A model's own precision on the GPU: "fp16" / "bf16" where most of its weight bytes are
    float16 / bfloat16, else "fp32" (also for what load() will refuse: it says why)."""
    try:
        if isinstance(model, (bytes, bytearray, memoryview)):
            kind = _core.weight_dtype(bytes(model))
        elif isinstance(model, (str, os.PathLike)):
            kind = _core.weight_dtype(os.fspath(model))
        else:
            return "fp32"
    except Error:
        return "fp32"
    return {"float16": "fp16", "bfloat16": "bf16"}.get(kind, "fp32")


def _pack_cache_dir(path: str, pack_cache: bool | str | os.PathLike[str]) -> str:
    if pack_cache is False or pack_cache is None:
        return ""
    if pack_cache is True:
        return os.path.join(os.path.dirname(os.path.abspath(path)), ".mserve-cache")
    if isinstance(pack_cache, (str, os.PathLike)) and os.fspath(pack_cache):
        return os.fspath(pack_cache)
    raise InvalidArgument(f"pack_cache must be True, False or a directory, got {pack_cache!r}")


def supported_ops() -> list[OpSupport]:
    """Every operator the runtime can run, with the first supported opset version."""
    return [OpSupport(*row) for row in _core.supported_ops()]


from .monitoring import profile  # noqa: E402

if TYPE_CHECKING:
    from .serving import Server, serve, start


def __getattr__(name: str) -> Any:
    # The server's names import mserve.serving, and with it the server's extension module (gRPC,
    # OpenSSL, the wire schemas), on first use: `import mserve` to predict loads none of it.
    if name in ("Server", "serve", "start"):
        from . import serving

        return getattr(serving, name)
    raise AttributeError(f"module 'mserve' has no attribute {name!r}")
