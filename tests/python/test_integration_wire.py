"""The REST codec of Python deployments (mserve/integrations/_wire.py) against the C++ server: the
same bodies give the same answers (values compared as float32) and the same bodies are refused."""
import json

import numpy as np
import pytest
import requests

import mserve
from mserve.errors import InvalidArgument
from mserve.integrations import _wire
from serve_util import scale_model, string_model, two_io_model

BODIES = [
    ("scale", "tfs", {"instances": [[1, 2, 3, 4], [5, 6, 7, 8.5]]}),
    ("scale", "tfs", {"inputs": [[1, 2, 3, 4]]}),
    ("scale", "tfs", {"inputs": {"x": [[1, 2, 3, 4]]}}),
    ("scale", "tfs", {"instances": [[1, 2, 3, 4]], "signature_name": "serving_default"}),
    ("two_io", "tfs", {"instances": [{"a": [1, 2, 3], "b": [3, 2, 1]}, {"a": [0, 0, 0], "b": [1, 1, 1]}]}),
    ("two_io", "tfs", {"inputs": {"a": [[1, 2, 3]], "b": [[3, 2, 1]]}}),
    ("strings", "tfs", {"instances": ["abc", {"b64": "eHl6"}]}),
    ("scale", "v2", {"id": "7", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
    ("scale", "v2", {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                 "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}),
    ("two_io", "v2", {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                                 {"name": "b", "shape": [1, 3], "datatype": "FP32", "data": [3, 2, 1]}],
                      "outputs": [{"name": "flag"}]}),
    ("strings", "v2", {"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["ab", "cd"]}]}),
]

REFUSED = [
    ("scale", "tfs", b"{"),
    ("scale", "tfs", b'{"instances": [[1, 2], [1, 2, 3, 4]]}'),
    ("scale", "tfs", b'{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}'),
    ("scale", "tfs", b'{"instances": [["a", "b", "c", "d"]]}'),
    ("two_io", "tfs", b'{"instances": [{"a": [1, 2, 3]}]}'),
    ("two_io", "tfs", b'{"inputs": {"a": [[1, 2, 3]], "c": [[1, 2, 3]]}}'),
    ("scale", "v2", b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3, 4]}]}'),
    ("scale", "v2", b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'),
    ("scale", "v2", b'{"inputs": [{"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'),
    ("scale", "v2", b'{"inputs": []}'),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import onnx
    d = tmp_path_factory.mktemp("wire")
    paths = {}
    for name, m in (("scale", scale_model(1.5)), ("two_io", two_io_model()), ("strings", string_model())):
        paths[name] = str(d / f"{name}.onnx")
        onnx.save(m, paths[name])
    with mserve.start(paths, port=0, grpc_port=None, quiet=True) as s:
        yield s, {name: mserve.load(p) for name, p in paths.items()}


def local(model, name, style, body: bytes):
    if style == "tfs":
        inputs, rows = _wire.decode_tfs(model, json.loads(body))
        outs = model.predict(inputs)
        return json.loads(_wire.encode_tfs(model, list(outs.values()) if isinstance(outs, dict) else [outs], rows))
    req = _wire.decode_v2(model, body, None)
    outs = model.predict(req.inputs)
    data, _ = _wire.encode_v2(model, name, 1, req, list(outs.values()) if isinstance(outs, dict) else [outs])
    return json.loads(data)


def remote(server, name, style, body: bytes):
    path = f"/v1/models/{name}:predict" if style == "tfs" else f"/v2/models/{name}/infer"
    return requests.post(server.url + path, data=body, timeout=30)


def same(a, b):
    """Equal JSON, numbers compared as float32 (the server writes float32's shortest form)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return np.float32(a) == np.float32(b)
    return a == b


@pytest.mark.parametrize("name,style,body", BODIES)
def test_same_answers_as_the_server(served, name, style, body):
    server, models = served
    raw = json.dumps(body).encode()
    r = remote(server, name, style, raw)
    assert r.status_code == 200, r.text
    want = r.json()
    got = local(models[name], name, style, raw)
    if style == "v2":  # the server adds parameters / its own version naming; compare the tensors
        want = {k: want[k] for k in ("outputs", "id") if k in want}
        got = {k: got[k] for k in ("outputs", "id") if k in got}
    assert same(want, got), (want, got)


@pytest.mark.parametrize("name,style,body", REFUSED)
def test_same_bodies_refused(served, name, style, body):
    server, models = served
    assert remote(server, name, style, body).status_code == 400
    with pytest.raises((InvalidArgument, ValueError)):
        local(models[name], name, style, body)


def test_v2_binary_round_trip(served):
    _, models = served
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    head = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    req = _wire.decode_v2(models["scale"], head + x.tobytes(), str(len(head)))
    np.testing.assert_array_equal(req.inputs[0], x)
    data, headers = _wire.encode_v2(models["scale"], "scale", 1, req, [models["scale"].predict(req.inputs)])
    n = int(headers["Inference-Header-Content-Length"])
    meta = json.loads(data[:n])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 32
    np.testing.assert_array_equal(np.frombuffer(data[n:], np.float32).reshape(2, 4), x * 1.5)
    with pytest.raises(InvalidArgument, match="past"):
        _wire.decode_v2(models["scale"], head + x.tobytes()[:-4], str(len(head)))


def test_ray_app_builder_reads_cli_strings(served, tmp_path):
    pytest.importorskip("ray.serve")
    import onnx

    from mserve.integrations.ray import app
    path = str(tmp_path / "m.onnx")
    onnx.save(scale_model(2.0), path)
    bound = app({"model": path, "name": "m", "threads": "2", "max_batch_size": "8", "batch_wait_timeout_s": "0.001"})
    assert type(bound).__name__ == "Application"
    with pytest.raises(InvalidArgument, match="unknown arg"):
        app({"model": path, "thread": "2"})
    with pytest.raises(InvalidArgument, match="threads: 'two' is not a number"):
        app({"model": path, "threads": "two"})
