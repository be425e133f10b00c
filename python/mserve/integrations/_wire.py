"""The REST bodies of TensorFlow Serving's predict API and KServe v2's infer API <-> numpy, for
deployments that answer HTTP in Python (``mserve.integrations.ray``). The rules are the C++
server's (README "REST API"): the row format ("instances") and the columnar one ("inputs"), the
answer in the format asked in, strings as JSON strings or {"b64": ...} (always for outputs whose
name ends in "_bytes"), bare NaN / Infinity; v2 "data" flat or nested, the binary tensor extension
(``Inference-Header-Content-Length``) both ways, BYTES length-prefixed. No silent casts: a float
given for an integer input, or a v2 datatype that is not the input's, is an error."""
from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import Model, TensorSpec
from ..errors import InvalidArgument
from ..monitoring import V2_DTYPES

_V2_OF = {np.dtype(t): name for name, t in V2_DTYPES.items()}


def v2_datatype(dtype: np.dtype[Any]) -> str:
    return _V2_OF.get(np.dtype(dtype), "INVALID")


def _strings(value: Any, what: str) -> Any:
    if isinstance(value, list):
        return [_strings(v, what) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise InvalidArgument(f"{what}: malformed base64") from None
    if isinstance(value, (str, bytes)):
        return value
    raise InvalidArgument(f"{what}: a string tensor takes strings or {{\"b64\": ...}}, got {type(value).__name__}")


def as_array(spec: TensorSpec, value: Any, what: str) -> np.ndarray[Any, Any]:
    """`value` (nested lists or a scalar) as an array of the input's dtype, refusing lossy casts
    and ragged nesting."""
    if spec.dtype == np.object_:
        nested = _strings(value, what)
        try:
            arr = np.array(nested, dtype=object)
        except ValueError as e:
            raise InvalidArgument(f"{what}: {e}") from None
        if any(not isinstance(s, (str, bytes)) for s in arr.ravel()):
            raise InvalidArgument(f"{what}: ragged nesting")
        return arr
    try:
        raw = np.asarray(value)
    except ValueError as e:  # ragged lists
        raise InvalidArgument(f"{what}: {e}") from None
    kind = spec.dtype.kind
    if raw.dtype.kind not in "biuf" or (kind in "iu" and raw.dtype.kind == "f") or (kind == "b" and raw.dtype.kind
                                                                                    != "b"):
        found = "ragged or non-numeric values" if raw.dtype.kind in "OUS" else f"{raw.dtype.name} values"
        raise InvalidArgument(f"{what}: expected {spec.dtype.name}, got {found}")
    if kind in "iu" and raw.size:
        info = np.iinfo(spec.dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise InvalidArgument(f"{what}: values out of {spec.dtype.name}'s range")
    return np.ascontiguousarray(raw, dtype=spec.dtype)


def decode_tfs(model: Model, body: Any) -> tuple[list[np.ndarray[Any, Any]], bool]:
    """(inputs in model order, row format?) of a TensorFlow Serving predict body."""
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object with \"instances\" or \"inputs\"")
    if ("instances" in body) == ("inputs" in body):
        raise InvalidArgument("the body needs exactly one of \"instances\" (row format) or \"inputs\" (columnar)")
    names = [s.name for s in model.inputs]
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise InvalidArgument("\"instances\" must be a non-empty list")
        if len(names) == 1 and not all(isinstance(r, dict) and set(r) == set(names) for r in rows):
            return [as_array(model.inputs[0], rows, f"input '{names[0]}'")], True
        for i, r in enumerate(rows):
            if not isinstance(r, dict) or set(r) != set(names):
                raise InvalidArgument(f"instance {i}: expected an object with the inputs {names}")
        return [as_array(s, [r[s.name] for r in rows], f"input '{s.name}'") for s in model.inputs], True
    cols = body["inputs"]
    if isinstance(cols, dict) and (len(names) > 1 or set(cols) == set(names)):
        missing = [n for n in names if n not in cols]
        unknown = [n for n in cols if n not in names]
        if missing or unknown:
            raise InvalidArgument(f"\"inputs\": missing {missing}, unknown {unknown}; the model takes {names}")
        return [as_array(s, cols[s.name], f"input '{s.name}'") for s in model.inputs], False
    if len(names) > 1:
        raise InvalidArgument(f"\"inputs\" must be an object naming the inputs {names}")
    return [as_array(model.inputs[0], cols, f"input '{names[0]}'")], False


def _jsonable(name: str, value: Any) -> Any:
    if not isinstance(value, np.ndarray):
        return value  # ZipMap rows: lists of {label: probability}
    if value.dtype == np.object_:
        def text(s: Any) -> Any:
            if isinstance(s, str) and not name.endswith("_bytes"):
                return s
            b = s.encode() if isinstance(s, str) else bytes(s)
            return {"b64": base64.b64encode(b).decode()}
        return np.vectorize(text, otypes=[object])(value).tolist() if value.size else value.tolist()
    return value.tolist()


def encode_tfs(model: Model, outputs: Sequence[Any], row_format: bool) -> bytes:
    named = {s.name: _jsonable(s.name, y) for s, y in zip(model.outputs, outputs)}
    if not row_format:
        body: Any = {"outputs": next(iter(named.values())) if len(named) == 1 else named}
    elif len(named) == 1:
        body = {"predictions": next(iter(named.values()))}
    else:
        n = len(next(iter(named.values())))
        body = {"predictions": [{k: v[i] for k, v in named.items()} for i in range(n)]}
    return json.dumps(body, separators=(",", ":")).encode()


class V2Request:
    """A decoded v2 infer request: inputs in model order, the outputs asked for (None: all) and
    which of them go back as binary, and the request's id."""

    def __init__(self, inputs: list[np.ndarray[Any, Any]], wanted: list[tuple[int, bool]], req_id: str | None):
        self.inputs = inputs
        self.wanted = wanted
        self.id = req_id


def _from_binary(spec: TensorSpec, raw: bytes, shape: list[int], what: str) -> np.ndarray[Any, Any]:
    count = int(np.prod(shape)) if shape else 1
    if spec.dtype != np.object_:
        if len(raw) != count * spec.dtype.itemsize:
            raise InvalidArgument(f"{what}: {len(raw)} bytes of binary data do not hold shape {shape}")
        return np.frombuffer(raw, dtype=spec.dtype).reshape(shape).copy()
    items: list[bytes] = []
    at = 0
    while at < len(raw):
        if len(raw) - at < 4:
            raise InvalidArgument(f"{what}: BYTES data ends inside a length")
        (n,) = struct.unpack_from("<I", raw, at)
        if n > len(raw) - at - 4:
            raise InvalidArgument(f"{what}: a BYTES element runs past its data")
        items.append(raw[at + 4:at + 4 + n])
        at += 4 + n
    if len(items) != count:
        raise InvalidArgument(f"{what}: {len(items)} BYTES elements for shape {shape}")
    arr = np.empty(count, dtype=object)
    arr[:] = items
    return arr.reshape(shape)


def decode_v2(model: Model, body: bytes, header_length: str | None) -> V2Request:
    """A v2 infer body: JSON, or (with ``Inference-Header-Content-Length``) a JSON header and the
    inputs' binary data after it, in the order the header lists them."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise InvalidArgument("Inference-Header-Content-Length is not a number") from None
        if not 0 < n <= len(body):
            raise InvalidArgument("Inference-Header-Content-Length is past the body")
        head, rest = body[:n], body[n:]
    else:
        head, rest = body, b""
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"malformed JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise InvalidArgument("a v2 infer request is an object with an \"inputs\" list")
    by_name = {s.name: (i, s) for i, s in enumerate(model.inputs)}
    found: dict[int, np.ndarray[Any, Any]] = {}
    at = 0
    for t in doc["inputs"]:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise InvalidArgument("each of \"inputs\" is an object with a \"name\"")
        name = t["name"]
        what = f"input '{name}'"
        if name not in by_name:
            raise InvalidArgument(f"{what}: the model has no such input; it takes {list(by_name)}")
        i, spec = by_name[name]
        if i in found:
            raise InvalidArgument(f"{what} appears twice")
        shape = t.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise InvalidArgument(f"{what}: \"shape\" must be a list of non-negative integers")
        if t.get("datatype") != v2_datatype(spec.dtype):
            raise InvalidArgument(f"{what}: datatype {t.get('datatype')!r}, the model takes "
                                  f"{v2_datatype(spec.dtype)}")
        params = t.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or at + size > len(rest):
                raise InvalidArgument(f"{what}: binary_data_size runs past the body")
            found[i] = _from_binary(spec, rest[at:at + size], shape, what)
            at += size
            continue
        if "data" not in t:
            raise InvalidArgument(f"{what}: no \"data\" and no binary_data_size")
        flat = as_array(spec, t["data"], what).ravel()
        if flat.size != (int(np.prod(shape)) if shape else 1):
            raise InvalidArgument(f"{what}: {flat.size} values for shape {shape}")
        found[i] = flat.reshape(shape)
    if at != len(rest):
        raise InvalidArgument("the body holds binary data past the inputs that name it")
    missing = [s.name for i, s in enumerate(model.inputs) if i not in found]
    if missing:
        raise InvalidArgument(f"missing input(s) {missing}")
    out_index = {s.name: i for i, s in enumerate(model.outputs)}
    all_binary = bool((doc.get("parameters") or {}).get("binary_data_output", False))
    wanted: list[tuple[int, bool]] = []
    for o in doc.get("outputs") or []:
        if not isinstance(o, dict) or o.get("name") not in out_index:
            raise InvalidArgument(f"requested output {o.get('name') if isinstance(o, dict) else o!r}: the model "
                                  f"has {list(out_index)}")
        binary = (o.get("parameters") or {}).get("binary_data", all_binary)
        wanted.append((out_index[o["name"]], bool(binary)))
    if not wanted:
        wanted = [(i, all_binary) for i in range(len(model.outputs))]
    req_id = doc.get("id")
    return V2Request([found[i] for i in range(len(model.inputs))], wanted, req_id if isinstance(req_id, str)
                     else None)


def encode_v2(model: Model, name: str, version: int, req: V2Request,
              outputs: Sequence[Any]) -> tuple[bytes, dict[str, str]]:
    """(body, extra headers) of the answer to `req`."""
    described: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for i, binary in req.wanted:
        spec, y = model.outputs[i], outputs[i]
        if not isinstance(y, np.ndarray):
            raise InvalidArgument(f"output '{spec.name}' is a sequence of maps, which v2 cannot carry")
        t: dict[str, Any] = {"name": spec.name, "datatype": v2_datatype(y.dtype), "shape": list(y.shape)}
        if binary:
            if y.dtype == np.object_:
                blob = b"".join(struct.pack("<I", len(b)) + b for b in
                                (s.encode() if isinstance(s, str) else bytes(s) for s in y.ravel()))
            else:
                blob = np.ascontiguousarray(y).tobytes()
            t["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            t["data"] = [s if isinstance(s, str) else bytes(s).decode("utf-8", "replace") for s in y.ravel()] \
                if y.dtype == np.object_ else y.ravel().tolist()
        described.append(t)
    doc: dict[str, Any] = {"model_name": name, "model_version": str(version), "outputs": described}
    if req.id is not None:
        doc["id"] = req.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, {"Content-Type": "application/json"}
    return head + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                    "Inference-Header-Content-Length": str(len(head))}


def v2_metadata(model: Model, name: str, version: int) -> dict[str, Any]:
    def tensors(specs: Sequence[TensorSpec]) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": v2_datatype(s.dtype),
                 "shape": [d if isinstance(d, int) else -1 for d in (s.shape or ())]} for s in specs]
    return {"name": name, "versions": [str(version)], "platform": "onnxruntime_onnx",
            "inputs": tensors(model.inputs), "outputs": tensors(model.outputs)}


def tfs_status(version: int) -> dict[str, Any]:
    return {"model_version_status": [{"version": str(version), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def is_v2_body(doc: Any) -> bool:
    """A v2 infer request ({"inputs": [{"name", "datatype", ...}]}) rather than TF Serving's."""
    return (isinstance(doc, Mapping) and isinstance(doc.get("inputs"), list) and bool(doc["inputs"])
            and all(isinstance(t, Mapping) and "datatype" in t for t in doc["inputs"]))
