"""The gRPC server against real clients: TensorFlow Serving's PredictionService and ModelService
through Python stubs generated from mserve's protos (used as TensorFlow Serving's documented
client uses its own), KServe v2 through tritonclient.grpc, health through grpcio-health-checking.
Answers are checked against onnxruntime."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import requests
from onnx import TensorProto as OnnxType
from onnx import helper

import mserve
from op_harness import make_model, ort_run
from serve_util import scale_model, string_model, two_io_model, write_version

grpc = pytest.importorskip("grpc")
tc = pytest.importorskip("tritonclient.grpc")
pytest.importorskip("grpc_tools")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
from grpc_health.v1 import health_pb2_grpc  # noqa: E402

PROTO_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "cpp", "server", "proto")
# KServe's messages are tritonclient's here: its stubs hold the same package (inference) in the
# process's descriptor pool, so mserve's own kserve proto is checked against them instead.
TFS_PROTOS = ["tensorflow/core/framework/types.proto", "tensorflow/core/framework/tensor_shape.proto",
              "tensorflow/core/framework/tensor.proto", "tensorflow/core/protobuf/meta_graph.proto",
              "tensorflow/core/protobuf/error_codes.proto", "mserve_apis/rollout.proto", "mserve_apis/monitoring.proto",
              "tensorflow_serving/config/model_server_config.proto",
              "tensorflow_serving/apis/model.proto", "tensorflow_serving/apis/predict.proto",
              "tensorflow_serving/apis/get_model_metadata.proto", "tensorflow_serving/apis/status.proto",
              "tensorflow_serving/apis/get_model_status.proto", "tensorflow_serving/apis/model_management.proto",
              "tensorflow_serving/apis/model_service.proto", "tensorflow_serving/apis/prediction_service.proto",
              "mserve_apis/config_service.proto"]


def protoc(out_dir, protos, *extra):
    import grpc_tools
    from grpc_tools import protoc as grpc_protoc
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", *extra] + [os.path.join(PROTO_ROOT, p) for p in protos]
    assert grpc_protoc.main(args) == 0, f"protoc failed on {protos}"


@pytest.fixture(scope="module")
def tfs(tmp_path_factory):
    """TensorFlow Serving's Python API modules, generated from mserve's protos."""
    out = tmp_path_factory.mktemp("stubs")
    protoc(out, TFS_PROTOS, f"--python_out={out}", f"--grpc_python_out={out}")
    sys.path.append(str(out))
    import types

    # The namespace is built from locals(): every import here is used.
    from mserve_apis import config_service_pb2, config_service_pb2_grpc  # noqa: F401
    from tensorflow.core.framework import tensor_pb2, types_pb2  # noqa: F401
    from tensorflow_serving.apis import (  # noqa: F401
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_management_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )
    from tensorflow_serving.config import model_server_config_pb2  # noqa: F401
    return types.SimpleNamespace(**locals())


def mixed_model():
    """Identity per element type: f32, i8, u16, i64, f16, u64, bool, string in and out."""
    kinds = [("f32", np.float32), ("i8", np.int8), ("u16", np.uint16), ("i64", np.int64), ("f16", np.float16),
             ("u64", np.uint64), ("b", np.bool_), ("s", OnnxType.STRING)]
    return make_model([helper.make_node("Identity", [k], [k + "_out"]) for k, _ in kinds],
                      [(k, t, ["n"]) for k, t in kinds], [(k + "_out", t, ["n"]) for k, t in kinds])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    write_version(root / "scale", 1, scale_model(1.0))
    write_version(root / "scale", 2, scale_model(2.0))
    write_version(root / "two", 1, two_io_model())
    write_version(root / "str", 1, string_model())
    write_version(root / "mixed", 1, mixed_model())
    from mserve import examples
    mlp = examples.mlp()
    write_version(root / "mlp", 1, mlp)
    cfg = root / "models.config"
    cfg.write_text(f"""model_config_list {{
  config {{ name: 'scale' base_path: '{root / "scale"}' model_platform: 'onnx'
           model_version_policy {{ all {{}} }}
           version_labels {{ key: 'stable' value: 1 }} version_labels {{ key: 'canary' value: 2 }} }}
  config {{ name: 'two' base_path: '{root / "two"}' }}
  config {{ name: 'str' base_path: '{root / "str"}' }}
  config {{ name: 'mixed' base_path: '{root / "mixed"}' }}
  config {{ name: 'mlp' base_path: '{root / "mlp"}' }}
}}""")
    with mserve.start(str(cfg), port=0, grpc_port=0, quiet=True, max_body_bytes=1 << 20) as s:
        s.wait_ready()
        s.root = root
        s.mlp = mlp
        yield s


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(server.grpc_target)
    yield ch
    ch.close()


def make_tensor_proto(tfs, x, typed=False):
    """What tf.make_tensor_proto builds for an array: tensor_content (typed=False) or the typed field."""
    numbers = {np.float32: "DT_FLOAT", np.float64: "DT_DOUBLE", np.int8: "DT_INT8", np.uint16: "DT_UINT16",
               np.int64: "DT_INT64", np.float16: "DT_HALF", np.uint64: "DT_UINT64", np.bool_: "DT_BOOL",
               np.int32: "DT_INT32", np.uint8: "DT_UINT8"}
    t = tfs.tensor_pb2.TensorProto()
    x = np.asarray(x)
    if x.dtype.kind in "OSU":
        t.dtype = tfs.types_pb2.DT_STRING
        t.string_val.extend([v.encode() if isinstance(v, str) else v for v in x.ravel()])
    else:
        t.dtype = getattr(tfs.types_pb2, numbers[x.dtype.type])
        if not typed:
            t.tensor_content = x.tobytes()
        elif x.dtype == np.float32:
            t.float_val.extend(x.ravel().tolist())
        elif x.dtype == np.float64:
            t.double_val.extend(x.ravel().tolist())
        elif x.dtype == np.float16:
            t.half_val.extend(x.ravel().view(np.uint16).tolist())
        elif x.dtype == np.int64:
            t.int64_val.extend(x.ravel().tolist())
        elif x.dtype == np.uint64:
            t.uint64_val.extend(x.ravel().tolist())
        elif x.dtype == np.bool_:
            t.bool_val.extend(x.ravel().tolist())
        else:
            t.int_val.extend(x.ravel().tolist())
    for d in x.shape:
        t.tensor_shape.dim.add().size = d
    return t


def make_ndarray(tfs, t):
    """What tf.make_ndarray returns for the typed fields mserve answers with."""
    shape = [d.size for d in t.tensor_shape.dim]
    T = tfs.types_pb2
    if t.dtype == T.DT_STRING:
        return np.array(list(t.string_val), dtype=object).reshape(shape)
    field, dtype = {T.DT_FLOAT: ("float_val", np.float32), T.DT_DOUBLE: ("double_val", np.float64),
                    T.DT_INT8: ("int_val", np.int8), T.DT_UINT16: ("int_val", np.uint16),
                    T.DT_INT64: ("int64_val", np.int64), T.DT_UINT64: ("uint64_val", np.uint64),
                    T.DT_BOOL: ("bool_val", np.bool_), T.DT_HALF: ("half_val", np.uint16)}[t.dtype]
    a = np.array(getattr(t, field), dtype=dtype)
    if t.dtype == T.DT_HALF:
        a = a.view(np.float16)
    return a.reshape(shape)


def predict(tfs, channel, name, inputs, typed=False, timeout=10, **spec):
    stub = tfs.prediction_service_pb2_grpc.PredictionServiceStub(channel)
    req = tfs.predict_pb2.PredictRequest()
    req.model_spec.name = name
    for k, v in spec.items():
        if k == "version":
            req.model_spec.version.value = v
        elif k == "output_filter":
            req.output_filter.extend(v)
        else:
            setattr(req.model_spec, k, v)
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(v if isinstance(v, tfs.tensor_pb2.TensorProto) else make_tensor_proto(tfs, v, typed))
    return stub.Predict(req, timeout=timeout)


def rpc_error(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


# ---- TensorFlow Serving PredictionService ----

@pytest.mark.parametrize("typed", [False, True])
def test_predict_matches_onnxruntime(tfs, channel, server, typed):
    x = np.random.default_rng(0).standard_normal((5, 256)).astype(np.float32)
    r = predict(tfs, channel, "mlp", {"x": x}, typed=typed)
    assert r.model_spec.name == "mlp" and r.model_spec.version.value == 1
    assert r.model_spec.signature_name == "serving_default"
    assert list(r.outputs) == ["probs"]
    out = r.outputs["probs"]
    assert out.dtype == tfs.types_pb2.DT_FLOAT and len(out.float_val) == 50 and not out.tensor_content
    (want,) = ort_run(server.mlp, {"x": x})
    np.testing.assert_allclose(make_ndarray(tfs, out), want, rtol=1e-5, atol=1e-6)


def test_mnist_client_style_float_val(tfs, channel):
    """TensorFlow Serving's example client: inputs by tf.make_tensor_proto, result read from float_val."""
    x = np.ones((1, 4), np.float32)
    result = predict(tfs, channel, "scale", {"x": x}, version=1)
    scores = np.array(result.outputs["y"].float_val)
    np.testing.assert_array_equal(scores, [1, 1, 1, 1])


@pytest.mark.parametrize("spec,factor", [({}, 2.0), ({"version": 1}, 1.0), ({"version_label": "stable"}, 1.0),
                                         ({"version_label": "canary"}, 2.0),
                                         ({"signature_name": "serving_default"}, 2.0)])
def test_versions_and_labels(tfs, channel, spec, factor):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    r = predict(tfs, channel, "scale", {"x": x}, **spec)
    np.testing.assert_array_equal(make_ndarray(tfs, r.outputs["y"]), x * factor)
    assert r.model_spec.version.value == (1 if factor == 1.0 else 2)


def test_every_element_type_round_trips(tfs, channel):
    rng = np.random.default_rng(1)
    n = 6
    feeds = {"f32": rng.standard_normal(n).astype(np.float32), "i8": np.array([-128, -1, 0, 1, 2, 127], np.int8),
             "u16": np.array([0, 1, 2, 3, 40000, 65535], np.uint16),
             "i64": np.array([-2**62, -1, 0, 1, 2, 2**62], np.int64),
             "f16": rng.standard_normal(n).astype(np.float16),
             "u64": np.array([0, 1, 2, 3, 2**63, 2**64 - 1], np.uint64),
             "b": np.array([True, False] * 3), "s": np.array([b"a", b"", "\u00e9".encode(), b"\xff\x00", b"x", b"y"],
                                                              dtype=object)}
    for typed in (False, True):
        r = predict(tfs, channel, "mixed", feeds, typed=typed)
        for k, v in feeds.items():
            got = make_ndarray(tfs, r.outputs[k + "_out"])
            if v.dtype == object:
                assert list(got) == list(v)
            else:
                np.testing.assert_array_equal(got, v)
                assert got.dtype == v.dtype


def test_one_value_fills_the_shape(tfs, channel):
    """Version 0 of TensorProto: a typed field with one value fills the whole shape."""
    t = tfs.tensor_pb2.TensorProto(dtype=tfs.types_pb2.DT_FLOAT, float_val=[3.0])
    t.tensor_shape.dim.add().size = 2
    t.tensor_shape.dim.add().size = 4
    r = predict(tfs, channel, "scale", {"x": t}, version=1)
    np.testing.assert_array_equal(make_ndarray(tfs, r.outputs["y"]), np.full((2, 4), 3.0))


def test_output_filter_and_multiple_inputs(tfs, channel):
    a = np.array([[1, 5, 3]], np.float32)
    b = np.array([[2, 2, 2]], np.float32)
    r = predict(tfs, channel, "two", {"a": a, "b": b})
    assert sorted(r.outputs) == ["flag", "sum"]
    np.testing.assert_array_equal(make_ndarray(tfs, r.outputs["flag"]), a > b)
    r = predict(tfs, channel, "two", {"a": a, "b": b}, output_filter=["sum"])
    assert list(r.outputs) == ["sum"]
    np.testing.assert_array_equal(make_ndarray(tfs, r.outputs["sum"]), a + b)


def test_string_model(tfs, channel):
    r = predict(tfs, channel, "str", {"s": np.array(["abc", "xY"], dtype=object)})
    assert list(r.outputs["up"].string_val) == [b"ABC", b"XY"]


def _tensor(tfs, dtype, dims, **fields):
    t = tfs.tensor_pb2.TensorProto(dtype=getattr(tfs.types_pb2, dtype), **fields)
    for d in dims:
        t.tensor_shape.dim.add().size = d
    return t


@pytest.mark.parametrize("case,code,needle", [
    ("unknown_model", "NOT_FOUND", "nope"),
    ("unknown_version", "NOT_FOUND", "7"),
    ("unknown_label", "NOT_FOUND", "gold"),
    ("signature", "INVALID_ARGUMENT", "serving_default"),
    ("double_for_float", "INVALID_ARGUMENT", "DT_DOUBLE; the model expects DT_FLOAT"),
    ("missing_input", "INVALID_ARGUMENT", "missing input 'b'"),
    ("extra_input", "INVALID_ARGUMENT", "no input 'zzz'"),
    ("short_content", "INVALID_ARGUMENT", "tensor_content has 12 bytes"),
    ("few_values", "INVALID_ARGUMENT", "holds 2 values"),
    ("int8_out_of_range", "INVALID_ARGUMENT", "out of range"),
    ("bad_filter", "INVALID_ARGUMENT", "output_filter"),
    ("complex", "INVALID_ARGUMENT", "DT_COMPLEX64"),
    ("negative_dim", "INVALID_ARGUMENT", "negative dimension"),
    ("unknown_rank", "INVALID_ARGUMENT", "unknown rank"),
    ("wrong_rank", "INVALID_ARGUMENT", "rank"),
    ("no_name", "INVALID_ARGUMENT", "model_spec.name"),
])
def test_predict_errors(tfs, channel, case, code, needle):
    x = np.ones((1, 4), np.float32)
    a = np.ones((1, 3), np.float32)
    calls = {
        "unknown_model": lambda: predict(tfs, channel, "nope", {"x": x}),
        "unknown_version": lambda: predict(tfs, channel, "scale", {"x": x}, version=7),
        "unknown_label": lambda: predict(tfs, channel, "scale", {"x": x}, version_label="gold"),
        "signature": lambda: predict(tfs, channel, "scale", {"x": x}, signature_name="classify"),
        "double_for_float": lambda: predict(tfs, channel, "scale", {"x": x.astype(np.float64)}),
        "missing_input": lambda: predict(tfs, channel, "two", {"a": a}),
        "extra_input": lambda: predict(tfs, channel, "two", {"a": a, "b": a, "zzz": a}),
        "short_content": lambda: predict(tfs, channel, "scale", {"x": _tensor(tfs, "DT_FLOAT", [1, 4],
                                                                              tensor_content=b"\0" * 12)}),
        "few_values": lambda: predict(tfs, channel, "scale", {"x": _tensor(tfs, "DT_FLOAT", [1, 4],
                                                                           float_val=[1, 2])}),
        "int8_out_of_range": lambda: predict(tfs, channel, "mixed", {
            **{k: np.zeros(1, t) for k, t in [("f32", np.float32), ("u16", np.uint16), ("i64", np.int64),
                                              ("f16", np.float16), ("u64", np.uint64), ("b", np.bool_)]},
            "s": np.array([b"x"], dtype=object), "i8": _tensor(tfs, "DT_INT8", [1], int_val=[300])}),
        "bad_filter": lambda: predict(tfs, channel, "two", {"a": a, "b": a}, output_filter=["nope"]),
        "complex": lambda: predict(tfs, channel, "scale", {"x": _tensor(tfs, "DT_COMPLEX64", [1, 4])}),
        "negative_dim": lambda: predict(tfs, channel, "scale", {"x": _tensor(tfs, "DT_FLOAT", [-1, 4])}),
        "unknown_rank": lambda: predict(tfs, channel, "scale", {"x": tfs.tensor_pb2.TensorProto(
            dtype=tfs.types_pb2.DT_FLOAT, tensor_shape={"unknown_rank": True})}),
        "wrong_rank": lambda: predict(tfs, channel, "scale", {"x": np.ones(4, np.float32)}),
        "no_name": lambda: predict(tfs, channel, "", {"x": x}),
    }
    got_code, details = rpc_error(calls[case])
    assert got_code == getattr(grpc.StatusCode, code), details
    assert needle in details


def test_oversized_request_is_resource_exhausted(tfs, channel):
    big = np.zeros(((1 << 20) // 16 + 1, 4), np.float32)  # over the 1 MiB limit
    code, _ = rpc_error(lambda: predict(tfs, channel, "scale", {"x": big}))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    predict(tfs, channel, "scale", {"x": np.ones((1, 4), np.float32)})  # the server carries on


def test_get_model_metadata(tfs, channel):
    stub = tfs.prediction_service_pb2_grpc.PredictionServiceStub(channel)
    req = tfs.get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "two"
    r = stub.GetModelMetadata(req)
    assert r.model_spec.name == "two" and r.model_spec.version.value == 1
    sigs = tfs.get_model_metadata_pb2.SignatureDefMap()
    assert r.metadata["signature_def"].Unpack(sigs)
    sig = sigs.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert sorted(sig.inputs) == ["a", "b"] and sorted(sig.outputs) == ["flag", "sum"]
    a = sig.inputs["a"]
    assert a.name == "a" and a.dtype == tfs.types_pb2.DT_FLOAT
    assert [(d.size, d.name) for d in a.tensor_shape.dim] == [(-1, "batch"), (3, "")]
    assert sig.outputs["flag"].dtype == tfs.types_pb2.DT_BOOL
    req.metadata_field[:] = ["something_else"]
    code, details = rpc_error(lambda: stub.GetModelMetadata(req))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "something_else" in details


# ---- TensorFlow Serving ModelService and mserve's config service ----

def test_get_model_status(tfs, channel):
    stub = tfs.model_service_pb2_grpc.ModelServiceStub(channel)
    req = tfs.get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "scale"
    r = stub.GetModelStatus(req)
    S = tfs.get_model_status_pb2.ModelVersionStatus
    assert [(v.version, v.state) for v in r.model_version_status] == [(2, S.AVAILABLE), (1, S.AVAILABLE)]
    assert all(v.status.error_code == 0 and v.status.error_message == "" for v in r.model_version_status)
    req.model_spec.version.value = 1
    assert [v.version for v in stub.GetModelStatus(req).model_version_status] == [1]
    req.model_spec.name = "nope"
    code, _ = rpc_error(lambda: stub.GetModelStatus(req))
    assert code == grpc.StatusCode.NOT_FOUND


def test_reload_config_adds_and_removes_models(tfs, tmp_path):
    write_version(tmp_path / "a", 1, scale_model(3.0))
    write_version(tmp_path / "b", 1, scale_model(5.0))
    write_version(tmp_path / "b", 2, scale_model(6.0))
    with mserve.start({"a": str(tmp_path / "a")}, port=0, grpc_port=0, quiet=True) as s:
        s.wait_ready()
        ch = grpc.insecure_channel(s.grpc_target)
        x = np.ones((1, 4), np.float32)
        assert make_ndarray(tfs, predict(tfs, ch, "a", {"x": x}).outputs["y"])[0, 0] == 3.0
        models = tfs.model_service_pb2_grpc.ModelServiceStub(ch)
        req = tfs.model_management_pb2.ReloadConfigRequest()
        c = req.config.model_config_list.config.add()
        c.name, c.base_path, c.model_platform = "b", str(tmp_path / "b"), "onnx"
        c.model_version_policy.specific.versions.append(1)
        c.version_labels["stable"] = 1
        r = models.HandleReloadConfigRequest(req)
        assert r.status.error_code == 0
        assert make_ndarray(tfs, predict(tfs, ch, "b", {"x": x}).outputs["y"])[0, 0] == 5.0
        assert make_ndarray(tfs, predict(tfs, ch, "b", {"x": x}, version_label="stable").outputs["y"])[0, 0] == 5.0
        code, _ = rpc_error(lambda: predict(tfs, ch, "a", {"x": x}))
        assert code == grpc.StatusCode.NOT_FOUND
        # The config reads back as it was set, in both forms.
        cfg = tfs.config_service_pb2_grpc.ConfigServiceStub(ch).GetModelServerConfig(
            tfs.config_service_pb2.GetModelServerConfigRequest())
        (only,) = cfg.config.model_config_list.config
        assert (only.name, only.base_path, list(only.model_version_policy.specific.versions),
                dict(only.version_labels)) == ("b", str(tmp_path / "b"), [1], {"stable": 1})
        assert mserve._server.parse_model_config(cfg.text)[0]["versions"] == [1]
        # A config that cannot apply is refused with the reason; the served set stays.
        bad = tfs.model_management_pb2.ReloadConfigRequest()
        bad.config.model_config_list.config.add(name="c")  # no base_path
        code, details = rpc_error(lambda: models.HandleReloadConfigRequest(bad))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "base_path" in details
        assert make_ndarray(tfs, predict(tfs, ch, "b", {"x": x}).outputs["y"])[0, 0] == 5.0
        ch.close()


def test_deadline_passing_in_the_queue_drops_the_request(tfs, tmp_path):
    """A request still queued for batching when its deadline passes is answered DEADLINE_EXCEEDED
    and never run."""
    write_version(tmp_path / "m", 1, scale_model(2.0))
    batching = {"max_batch_size": 64, "batch_timeout_micros": 1_500_000}
    with mserve.start({"m": str(tmp_path / "m")}, port=0, grpc_port=0, quiet=True,
                      batching=batching, warmup=False) as s:
        s.wait_ready()
        ch = grpc.insecure_channel(s.grpc_target)
        x = np.ones((1, 4), np.float32)
        t0 = time.monotonic()
        code, _ = rpc_error(lambda: predict(tfs, ch, "m", {"x": x}, timeout=0.2))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 1.4
        time.sleep(1.8)  # the batch window closes: the request is dropped, not run
        metrics = requests.get(s.url + "/metrics").text
        assert 'mserve_batch_size_count{model="m"}' not in metrics
        r = predict(tfs, ch, "m", {"x": x}, timeout=10)
        assert make_ndarray(tfs, r.outputs["y"])[0, 0] == 2.0
        assert 'mserve_batch_size_count{model="m"} 1' in requests.get(s.url + "/metrics").text
        ch.close()


def test_stop_drains_calls_in_flight(tfs, tmp_path):
    """stop() lets a call already queued finish (here: waiting half a second for its batch)."""
    write_version(tmp_path / "m", 1, scale_model(3.0))
    s = mserve.start({"m": str(tmp_path / "m")}, port=0, grpc_port=0, quiet=True,
                     batching={"max_batch_size": 8, "batch_timeout_micros": 500_000}, warmup=False)
    s.wait_ready()
    ch = grpc.insecure_channel(s.grpc_target)
    stub = tfs.prediction_service_pb2_grpc.PredictionServiceStub(ch)
    req = tfs.predict_pb2.PredictRequest()
    req.model_spec.name = "m"
    req.inputs["x"].CopyFrom(make_tensor_proto(tfs, np.ones((1, 4), np.float32)))
    pending = stub.Predict.future(req, timeout=10)
    time.sleep(0.1)
    s.stop()
    assert make_ndarray(tfs, pending.result().outputs["y"]).tolist() == [[3.0] * 4]
    code, _ = rpc_error(lambda: stub.Predict(req, timeout=2))
    assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    ch.close()


def test_grpc_calls_are_in_the_metrics(tfs, channel, server):
    predict(tfs, channel, "scale", {"x": np.ones((1, 4), np.float32)}, version=1)
    rpc_error(lambda: predict(tfs, channel, "nope", {"x": np.ones((1, 4), np.float32)}))
    text = requests.get(server.url + "/metrics").text
    assert 'api="grpc_predict"' in text
    assert 'model="scale",version="1",api="grpc_predict",status="200"' in text
    assert 'api="grpc_predict",status="404"' in text


# ---- KServe v2 (tritonclient) ----

@pytest.fixture(scope="module")
def triton(server):
    c = tc.InferenceServerClient(server.grpc_target)
    yield c
    c.close()


def test_v2_health_and_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("scale") and triton.is_model_ready("scale", "1")
    assert not triton.is_model_ready("nope") and not triton.is_model_ready("scale", "9")
    meta = triton.get_server_metadata(as_json=True)
    assert meta["name"] == "mserve" and meta["version"] == mserve.__version__
    m = triton.get_model_metadata("two", as_json=True)
    assert m["name"] == "two" and m["versions"] == ["1"] and m["platform"] == "onnxruntime_onnx"
    assert m["inputs"] == [{"name": "a", "datatype": "FP32", "shape": ["-1", "3"]},
                           {"name": "b", "datatype": "FP32", "shape": ["-1", "3"]}]
    assert {o["name"]: o["datatype"] for o in m["outputs"]} == {"sum": "FP32", "flag": "BOOL"}


def test_v2_infer_matches_onnxruntime(triton, server):
    x = np.random.default_rng(2).standard_normal((3, 256)).astype(np.float32)
    inp = tc.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    r = triton.infer("mlp", [inp], request_id="req-7")
    resp = r.get_response()
    assert resp.model_name == "mlp" and resp.model_version == "1" and resp.id == "req-7"
    (want,) = ort_run(server.mlp, {"x": x})
    np.testing.assert_allclose(r.as_numpy("probs"), want, rtol=1e-5, atol=1e-6)


def test_v2_every_type_and_requested_outputs(triton):
    feeds = {"f32": np.array([1.5, -2], np.float32), "i8": np.array([-128, 127], np.int8),
             "u16": np.array([0, 65535], np.uint16), "i64": np.array([-2**62, 5], np.int64),
             "f16": np.array([0.5, -1], np.float16), "u64": np.array([0, 2**64 - 1], np.uint64),
             "b": np.array([True, False]), "s": np.array([b"hi", b"\xff\x00"], dtype=np.object_)}
    types = {"f32": "FP32", "i8": "INT8", "u16": "UINT16", "i64": "INT64", "f16": "FP16", "u64": "UINT64",
             "b": "BOOL", "s": "BYTES"}
    inputs = []
    for k, v in feeds.items():
        i = tc.InferInput(k, list(v.shape), types[k])
        i.set_data_from_numpy(v)
        inputs.append(i)
    wanted = [tc.InferRequestedOutput(k + "_out") for k in ("s", "u64", "f16")]
    r = triton.infer("mixed", inputs, outputs=wanted)
    assert [o.name for o in r.get_response().outputs] == ["s_out", "u64_out", "f16_out"]
    for k in ("s", "u64", "f16"):
        got = r.as_numpy(k + "_out")
        assert list(got) == list(feeds[k]) if k == "s" else np.array_equal(got, feeds[k])
    r = triton.infer("mixed", inputs)
    for k, v in feeds.items():
        got = r.as_numpy(k + "_out")
        assert list(got) == list(v) if k == "s" else (np.array_equal(got, v) and got.dtype == v.dtype)


def test_v2_typed_contents(server):
    """InferTensorContents instead of raw bytes, through tritonclient's own stubs."""
    from tritonclient.grpc import service_pb2, service_pb2_grpc
    with grpc.insecure_channel(server.grpc_target) as ch:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        req = service_pb2.ModelInferRequest(model_name="two")
        for name, vals in (("a", [1, 5, 3]), ("b", [2, 2, 2])):
            t = req.inputs.add(name=name, datatype="FP32", shape=[1, 3])
            t.contents.fp32_contents.extend(vals)
        r = stub.ModelInfer(req)
        out = {o.name: (o, raw) for o, raw in zip(r.outputs, r.raw_output_contents)}
        assert list(out["sum"][0].shape) == [1, 3]
        np.testing.assert_array_equal(np.frombuffer(out["sum"][1], np.float32), [3, 7, 5])
        np.testing.assert_array_equal(np.frombuffer(out["flag"][1], np.bool_), [False, True, True])
        req.inputs[0].contents.fp32_contents.append(9)
        code, details = rpc_error(lambda: stub.ModelInfer(req))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "holds 4 values" in details


@pytest.mark.parametrize("case,code,needle", [
    ("datatype", "INVALID_ARGUMENT", "datatype FP64; the model expects FP32"),
    ("missing", "INVALID_ARGUMENT", "missing input 'b'"),
    ("unknown_model", "NOT_FOUND", "nope"),
    ("bad_version", "INVALID_ARGUMENT", "not a number"),
    ("raw_size", "INVALID_ARGUMENT", "raw_input_contents has 8 bytes"),
    ("raw_count", "INVALID_ARGUMENT", "one per input"),
    ("bytes_prefix", "INVALID_ARGUMENT", "runs past its data"),
    ("fp16_typed", "INVALID_ARGUMENT", "only in raw_input_contents"),
    ("unknown_output", "INVALID_ARGUMENT", "no output 'zz'"),
])
def test_v2_errors(server, case, code, needle):
    from tritonclient.grpc import service_pb2, service_pb2_grpc
    req = service_pb2.ModelInferRequest(model_name="two")
    a = np.ones((1, 3), np.float32).tobytes()
    req.inputs.add(name="a", datatype="FP32", shape=[1, 3])
    req.inputs.add(name="b", datatype="FP32", shape=[1, 3])
    req.raw_input_contents.extend([a, a])
    if case == "datatype":
        req.inputs[1].datatype = "FP64"
    elif case == "missing":
        del req.inputs[1]
        del req.raw_input_contents[1]
    elif case == "unknown_model":
        req.model_name = "nope"
    elif case == "bad_version":
        req.model_version = "v1"
    elif case == "raw_size":
        req.raw_input_contents[1] = a[:8]
    elif case == "raw_count":
        del req.raw_input_contents[1]
    elif case == "bytes_prefix":
        req = service_pb2.ModelInferRequest(model_name="str")
        req.inputs.add(name="s", datatype="BYTES", shape=[1])
        req.raw_input_contents.append(b"\x09\x00\x00\x00abc")
    elif case == "fp16_typed":
        req = service_pb2.ModelInferRequest(model_name="mixed")
        req.inputs.add(name="f16", datatype="FP16", shape=[1])
    elif case == "unknown_output":
        req.outputs.add(name="zz")
    with grpc.insecure_channel(server.grpc_target) as ch:
        got_code, details = rpc_error(lambda: service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req))
    assert got_code == getattr(grpc.StatusCode, code), details
    assert needle in details


def test_kserve_proto_matches_the_published_one(tmp_path):
    """mserve's kserve/grpc_predict_v2.proto keeps KServe's names and field numbers: compared
    message by message with tritonclient's compiled copy of the same protocol."""
    from google.protobuf import descriptor_pb2
    from tritonclient.grpc import service_pb2
    out = tmp_path / "kserve.pb"
    protoc(tmp_path, ["kserve/grpc_predict_v2.proto"], f"--descriptor_set_out={out}")
    ours = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    theirs = descriptor_pb2.FileDescriptorProto()
    service_pb2.DESCRIPTOR.CopyToProto(theirs)
    assert ours.package == theirs.package == "inference"

    def fields(msg):
        out = {f.name: (f.number, f.type, f.label, f.type_name.rsplit(".", 1)[-1]) for f in msg.field}
        for n in msg.nested_type:
            out.update({f"{n.name}.{k}": v for k, v in fields(n).items()})
        return out
    published = {m.name: m for m in theirs.message_type}
    for m in ours.message_type:
        assert fields(m) == fields(published[m.name]), m.name
    (svc,) = ours.service
    (pub,) = theirs.service
    pub_methods = {x.name: (x.input_type, x.output_type) for x in pub.method}
    for x in svc.method:
        assert pub_methods[x.name] == (x.input_type, x.output_type)
    assert svc.name == pub.name == "GRPCInferenceService"


# ---- health ----

def test_health_follows_readiness(tmp_path, server):
    with grpc.insecure_channel(server.grpc_target) as ch:
        h = health_pb2_grpc.HealthStub(ch)
        for service in ("", "tensorflow.serving.PredictionService", "inference.GRPCInferenceService"):
            assert h.Check(health_pb2.HealthCheckRequest(service=service)).status == \
                health_pb2.HealthCheckResponse.SERVING
        code, _ = rpc_error(lambda: h.Check(health_pb2.HealthCheckRequest(service="no.such.Service")))
        assert code == grpc.StatusCode.NOT_FOUND
    # A model with no loadable version: the server runs but is not ready.
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"not a model")
    with mserve.start({"broken": str(tmp_path / "broken")}, port=0, grpc_port=0, quiet=True) as s:
        with grpc.insecure_channel(s.grpc_target) as ch:
            h = health_pb2_grpc.HealthStub(ch)
            deadline = time.monotonic() + 5
            status = None
            while time.monotonic() < deadline:
                status = h.Check(health_pb2.HealthCheckRequest()).status
                if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                time.sleep(0.05)
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not tc.InferenceServerClient(s.grpc_target).is_server_ready()


# ---- lifecycle ----

def test_grpc_port_in_use_is_a_clear_error(server):
    with pytest.raises(mserve.Error, match="gRPC"):
        mserve.start(mserve.load(scale_model(1.0)), port=0, grpc_port=server.grpc_port, quiet=True)


def test_no_grpc_unless_asked(tmp_path):
    with mserve.start(mserve.load(scale_model(1.0)), port=0, quiet=True) as s:
        assert s.grpc_port is None and s.grpc_target is None


def test_in_memory_model_over_grpc(tfs):
    with mserve.start({"mem": mserve.load(scale_model(4.0))}, port=0, grpc_port=0, quiet=True) as s:
        with grpc.insecure_channel(s.grpc_target) as ch:
            r = predict(tfs, ch, "mem", {"x": np.ones((2, 4), np.float32)})
            assert make_ndarray(tfs, r.outputs["y"]).tolist() == [[4.0] * 4] * 2


def test_tensorflow_serving_api_stubs_when_installed(server):
    """Where tensorflow and tensorflow-serving-api are installed (in this interpreter, or the one
    MSERVE_TF_PYTHON names), their own client works unchanged: make_tensor_proto / make_ndarray,
    Predict with a version label, GetModelMetadata, GetModelStatus. In a subprocess: their
    messages share names with the stubs above."""
    python = os.environ.get("MSERVE_TF_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import tensorflow_serving.apis.prediction_service_pb2_grpc"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("tensorflow-serving-api is not installed")
    code = textwrap.dedent(f"""
        import grpc, numpy as np, tensorflow as tf
        from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                             predict_pb2, prediction_service_pb2_grpc)
        ch = grpc.insecure_channel("{server.grpc_target}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "scale"
        req.model_spec.version_label = "stable"
        req.model_spec.signature_name = "serving_default"
        req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.arange(8, dtype=np.float32).reshape(2, 4)))
        r = stub.Predict(req, timeout=10)
        assert r.model_spec.version.value == 1, r.model_spec
        assert tf.make_ndarray(r.outputs["y"]).tolist() == np.arange(8).reshape(2, 4).tolist()
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "str"
        req.inputs["s"].CopyFrom(tf.make_tensor_proto(["ab", "Cd"]))
        assert tf.make_ndarray(stub.Predict(req, timeout=10).outputs["up"]).tolist() == [b"AB", b"CD"]
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "mixed"
        for k, v in dict(f32=np.float32, i8=np.int8, u16=np.uint16, i64=np.int64, f16=np.float16, u64=np.uint64,
                         b=np.bool_).items():
            req.inputs[k].CopyFrom(tf.make_tensor_proto(np.array([1, 0], v)))
        req.inputs["s"].CopyFrom(tf.make_tensor_proto([b"p", b"q"]))
        out = stub.Predict(req, timeout=10).outputs
        for k in ("f32", "i8", "u16", "i64", "f16", "u64", "b"):
            assert tf.make_ndarray(out[k + "_out"]).tolist() == [1, 0], k
        md = stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=dict(name="two"), metadata_field=["signature_def"]), timeout=10)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        md.metadata["signature_def"].Unpack(sigs)
        assert sorted(sigs.signature_def["serving_default"].inputs) == ["a", "b"]
        st = model_service_pb2_grpc.ModelServiceStub(ch).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec=dict(name="scale")), timeout=10)
        assert [v.version for v in st.model_version_status] == [2, 1]
        print("ok")
    """)
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


# ---- shapes the data cannot fill (found by fuzz_v2_infer: the server allocated before counting) ----

def test_huge_shapes_with_little_data_are_refused_before_allocating(tfs, channel, server):
    huge = [1, 555555555552]
    # KServe v2 REST, JSON data and binary BYTES.
    r = requests.post(f"{server.url}/v2/models/scale/infer",
                      json={"inputs": [{"name": "x", "datatype": "FP32", "shape": huge, "data": [1, 2]}]})
    assert r.status_code == 400 and "2 values for shape" in r.json()["error"]
    header = b'{"inputs":[{"name":"s","datatype":"BYTES","shape":[1000000000000],"parameters":{"binary_data_size":5}}]}'
    r = requests.post(f"{server.url}/v2/models/str/infer", data=header + b"\x01\x00\x00\x00a",
                      headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 400 and "cannot hold shape" in r.json()["error"]
    # KServe v2 gRPC typed contents.
    from tritonclient.grpc import service_pb2, service_pb2_grpc
    req = service_pb2.ModelInferRequest(model_name="scale")
    t = req.inputs.add(name="x", datatype="FP32", shape=huge)
    t.contents.fp32_contents.extend([1, 2])
    code, details = rpc_error(lambda: service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "holds 2 values" in details
    # TensorFlow Serving: typed values, and one value broadcast past the limit.
    code, details = rpc_error(lambda: predict(tfs, channel, "scale", {"x": _tensor(tfs, "DT_FLOAT", huge,
                                                                                    float_val=[1, 2])}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "holds 2 values" in details
    code, details = rpc_error(lambda: predict(tfs, channel, "scale", {"x": _tensor(tfs, "DT_FLOAT", [1 << 20, 64],
                                                                                    float_val=[1])}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "one value fills at most 64 MiB" in details
    s = _tensor(tfs, "DT_STRING", [1 << 40], string_val=[b"a"])
    code, _ = rpc_error(lambda: predict(tfs, channel, "str", {"s": s}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
