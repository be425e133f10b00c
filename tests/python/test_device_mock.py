"""device="mock": the runtime's device placement (kernels on a device, copies at device boundaries,
the device arena, constants uploaded once, CPU fallback, outputs copied back) on a device whose
memory is host memory. Its kernels are the CPU's, so every output must equal the CPU model's bit
for bit; the zoo runs through it, and the CUDA backend runs through the same planner."""
import gc
import threading

import numpy as np
import pytest
from onnx import TensorProto, helper
from test_zoo import NAMES, ZOO, load_sets

import mserve
from op_harness import make_model


def _same(got, want):
    if isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            _same(got[k], want[k])
    elif isinstance(want, list):
        assert got == want
    else:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", NAMES)
def test_zoo_replayed_as_graphs_equals_the_cpu(name):
    # Each input set three times through one plan: step by step, recorded, replayed; the inputs
    # of the other sets in between, so a replay that kept stale inputs shows.
    cpu = mserve.load(str(ZOO / f"{name}.onnx"))
    dev = mserve.load(str(ZOO / f"{name}.onnx"), device="mock")
    sets, _, _ = load_sets(name)
    for _ in range(3):
        for inputs, _ in sets:
            _same(dev.predict(inputs), cpu.predict(inputs))


def test_graphs_can_be_turned_off_and_placement_says_why_not():
    w = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", np.float32, [2, 4])],
                   [("y", np.float32, [2, 3])], {"w": w})
    assert mserve.load(m, device="mock").placement().no_graph == ""
    assert "one graph per run" in str(mserve.load(m, device="mock").placement())
    off = mserve.load(m, device="mock", cuda_graphs=False)
    x = np.ones((2, 4), np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(off.predict(x), x @ w)
    nz = make_model([helper.make_node("NonZero", ["x"], ["y"])], [("x", np.float32, [3])], [("y", np.int64, None)])
    assert mserve.load(nz, device="mock").placement().no_graph == "no node runs on the device"
    assert mserve.load(m).placement().no_graph == "no device"


@pytest.mark.parametrize("name", NAMES)
def test_zoo_on_the_mock_device_equals_the_cpu(name):
    cpu = mserve.load(str(ZOO / f"{name}.onnx"))
    dev = mserve.load(str(ZOO / f"{name}.onnx"), device="mock")
    assert dev.device == "mock" and cpu.device == "cpu"
    sets, _, _ = load_sets(name)
    for inputs, _ in sets:
        _same(dev.predict(inputs), cpu.predict(inputs))
    p = dev.placement()
    assert p is not None and p.device == "mock"
    assert p.device_nodes + p.cpu_nodes >= 1
    assert len(p.fallbacks) == p.cpu_nodes
    assert all(reason for _, _, reason in p.fallbacks)
    if p.device_nodes:
        assert p.copies >= 2  # inputs in, outputs out


def test_placement_reports_counts_and_reasons():
    # x -> Relu -> NonZero (data-dependent shape: CPU) -> Cast -> y
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("NonZero", ["r"], ["nz"]),
             helper.make_node("Cast", ["nz"], ["y"], to=TensorProto.FLOAT)]
    m = make_model(nodes, [("x", np.float32, [4, 5])], [("y", np.float32, None)])
    model = mserve.load(m, device="mock")
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    _same(model.predict(x), mserve.load(m).predict(x))
    p = model.placement()
    assert (p.device_nodes, p.cpu_nodes) == (1, 2)
    assert [op for _, op, _ in p.fallbacks] == ["NonZero", "Cast"]
    assert all("run time" in why for _, _, why in p.fallbacks), p.fallbacks
    assert "mock: 1 node(s), cpu: 2 node(s)" in str(p)
    assert mserve.load(m).placement().fallbacks == []  # no device, nothing fell back


def test_cpu_models_report_their_placement_too():
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [2])], [("y", np.float32, [2])])
    p = mserve.load(m).placement()
    assert (p.device, p.device_nodes, p.cpu_nodes, p.copies) == ("cpu", 0, 1, 0)


def test_numpy_in_numpy_out_and_concurrent_predicts():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Tanh", ["h"], ["y"])]
    m = make_model(nodes, [("x", np.float32, ["n", 16])], [("y", np.float32, ["n", 8])], {"w": w})
    dev, cpu = mserve.load(m, device="mock"), mserve.load(m)
    xs = [rng.standard_normal((n, 16)).astype(np.float32) for n in (1, 3, 9, 3)]
    want = [cpu.predict(x) for x in xs]
    errors = []

    def worker():
        try:
            for _ in range(30):
                for x, y in zip(xs, want):
                    got = dev.predict(x)
                    assert isinstance(got, np.ndarray) and got.flags.owndata or got.base is not None
                    np.testing.assert_array_equal(got, y)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_unknown_device_is_a_clear_error():
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [2])], [("y", np.float32, [2])])
    with pytest.raises(mserve.InvalidArgument, match="'cpu', 'cuda' or 'mock'"):
        mserve.load(m, device="tpu")


# ---- serving models on a device ----

def _metric(server, model, device):
    import re

    import requests
    text = requests.get(server.url + "/metrics", timeout=10).text
    m = re.search(rf'mserve_model_nodes{{model="{model}",version="1",device="{device}"}} (\d+)', text)
    return int(m.group(1)) if m else None


def _predict(server, model, rows):
    import requests
    r = requests.post(f"{server.url}/v1/models/{model}:predict", json={"instances": rows}, timeout=10)
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["predictions"], np.float32)


def test_a_served_model_runs_on_its_own_device(tmp_path):
    from serve_util import scale_model, write_version
    write_version(tmp_path / "dev", 1, scale_model(3.0))
    write_version(tmp_path / "cpu", 1, scale_model(3.0))
    models = {"dev": {"base_path": str(tmp_path / "dev"), "device": "mock"}, "cpu": str(tmp_path / "cpu")}
    with mserve.start(models, port=0, quiet=True) as s:
        rows = [[1, 2, 3, 4], [5, 6, 7, 8]]
        np.testing.assert_array_equal(_predict(s, "dev", rows), _predict(s, "cpu", rows))
        assert _metric(s, "dev", "mock") == 1 and _metric(s, "dev", "cpu") == 0
        assert _metric(s, "cpu", "cpu") == 1 and _metric(s, "cpu", "mock") is None
        import re

        import requests
        text = requests.get(s.url + "/metrics", timeout=10).text
        used = re.search(r'mserve_device_memory_bytes{device="mock",kind="used"} (\d+)', text)
        assert used and int(used.group(1)) > 0, text


def test_the_server_wide_device_and_a_model_that_overrides_it(tmp_path):
    from serve_util import scale_model, write_version
    write_version(tmp_path / "a", 1, scale_model(2.0))
    write_version(tmp_path / "b", 1, scale_model(2.0))
    models = {"a": str(tmp_path / "a"), "b": {"base_path": str(tmp_path / "b"), "device": "cpu"}}
    with mserve.start(models, port=0, quiet=True, device="mock", batching=True) as s:
        np.testing.assert_array_equal(_predict(s, "a", [[1, 1, 1, 1]]), [[2, 2, 2, 2]])
        np.testing.assert_array_equal(_predict(s, "b", [[1, 1, 1, 1]]), [[2, 2, 2, 2]])
        assert _metric(s, "a", "mock") == 1
        assert _metric(s, "b", "mock") is None and _metric(s, "b", "cpu") == 1


def test_unknown_serving_devices_are_clear_errors(tmp_path):
    from serve_util import scale_model, write_version
    write_version(tmp_path / "m", 1, scale_model(2.0))
    with pytest.raises(mserve.InvalidArgument, match="device 'tpu' is not known"):
        mserve.start(str(tmp_path / "m"), port=0, quiet=True, device="tpu")
    with pytest.raises(mserve.InvalidArgument, match="model 'm': device 'gpu0' is not known"):
        mserve.start({"m": {"base_path": str(tmp_path / "m"), "device": "gpu0"}}, port=0, quiet=True)


# ---- outputs kept on the device ----

def _two_models():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((8, 16)).astype(np.float32)
    first = make_model([helper.make_node("MatMul", ["x", "w"], ["h"])], [("x", np.float32, ["n", 8])],
                       [("h", np.float32, ["n", 16])], {"w": w})
    second = make_model([helper.make_node("Relu", ["h"], ["y"])], [("h", np.float32, ["n", 16])],
                        [("y", np.float32, ["n", 16])])
    return first, second


def test_outputs_kept_on_the_device_feed_the_next_model_without_copies():
    first, second = _two_models()
    a, b = mserve.load(first, device="mock"), mserve.load(second, device="mock")
    x = np.random.default_rng(6).standard_normal((3, 8)).astype(np.float32)
    h = a.predict(x, output_device="mock")
    assert isinstance(h, mserve.DeviceTensor)
    assert (h.shape, h.dtype, h.device) == ((3, 16), np.dtype(np.float32), "mock")
    assert "DeviceTensor float32[3, 16] on mock" in repr(h)
    want_h = mserve.load(first).predict(x)
    np.testing.assert_array_equal(h.numpy(), want_h)
    y = b.predict(h)  # read where it is
    np.testing.assert_array_equal(y, np.maximum(want_h, 0))
    assert b.predict({"h": h}).shape == (3, 16) and b.predict([h]).shape == (3, 16)
    with pytest.raises(AttributeError, match="no __cuda_array_interface__"):
        h.__cuda_array_interface__  # noqa: B018 (only CUDA tensors export it)


def test_device_tensors_are_refused_where_they_do_not_belong():
    first, second = _two_models()
    h = mserve.load(first, device="mock").predict(np.ones((2, 8), np.float32), output_device="mock")
    with pytest.raises(mserve.InvalidArgument, match="on device 'mock' given to a model on 'cpu'"):
        mserve.load(second).predict(h)
    with pytest.raises(mserve.InvalidArgument, match="output_device 'cuda': this model runs on 'mock'"):
        mserve.load(first, device="mock").predict(np.ones((2, 8), np.float32), output_device="cuda")
    ints = make_model([helper.make_node("Neg", ["h"], ["y"])], [("h", np.int64, [2, 16])],
                      [("y", np.int64, [2, 16])])
    with pytest.raises(mserve.InvalidArgument, match="expected dtype int64"):
        mserve.load(ints, device="mock").predict(h)
    # With host outputs asked for (the default), outputs come back as numpy.
    assert isinstance(mserve.load(first, device="mock").predict(np.ones((2, 8), np.float32)), np.ndarray)


class _ForeignCudaArray:
    """Another library's CUDA array, as far as its interface goes (nothing is read here)."""

    def __init__(self, shape, typestr="<f4", strides=None):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (0x10000, False),
                                         "strides": strides, "version": 3, "stream": None}


def test_foreign_cuda_arrays_are_read_only_by_cuda_models():
    first, _ = _two_models()
    for device in ("cpu", "mock"):
        with pytest.raises(mserve.InvalidArgument, match=f"a CUDA array given to a model on '{device}'"):
            mserve.load(first, device=device).predict(_ForeignCudaArray((2, 8)))


# ---- DLPack ----

class _DLPackOnly:
    """Another library's array that speaks only DLPack (as JAX or TensorFlow arrays do), here
    backed by numpy: it counts the capsules it hands out."""

    def __init__(self, a):
        self.a, self.exports = a, 0

    def __dlpack__(self, stream=None, **kw):
        self.exports += 1
        return self.a.__dlpack__()

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


def test_device_tensors_export_dlpack_without_a_copy():
    first, second = _two_models()
    x = np.random.default_rng(8).standard_normal((3, 8)).astype(np.float32)
    h = mserve.load(first, device="mock").predict(x, output_device="mock")
    assert h.__dlpack_device__() == (1, 0)  # the mock device's memory is host memory: kDLCPU
    view = np.from_dlpack(h)  # numpy as an independent consumer of the capsule
    np.testing.assert_array_equal(view, mserve.load(first).predict(x))
    assert view.shape == (3, 16) and view.dtype == np.float32
    again = np.from_dlpack(h)
    assert np.shares_memory(view, again), "both views read the tensor's own memory"
    del h
    gc.collect()
    np.testing.assert_array_equal(view, mserve.load(first).predict(x))  # the capsule keeps the buffer
    h = mserve.load(first, device="mock").predict(x, output_device="mock")
    with pytest.raises(BufferError, match="without a copy"):
        h.__dlpack__(copy=True)
    with pytest.raises(BufferError, match="own device"):
        h.__dlpack__(dl_device=(2, 0))
    assert h.__dlpack__(dl_device=(1, 0), stream=None, max_version=(1, 0)) is not None
    h.__dlpack__()  # a capsule nobody takes is freed with what it holds


def test_dlpack_types_round_trip_through_a_device_tensor():
    for dtype in (np.float32, np.float64, np.float16, np.int8, np.int32, np.int64, np.uint8, np.uint16, np.bool_):
        m = make_model([helper.make_node("Identity", ["x"], ["y"])], [("x", dtype, [5])], [("y", dtype, [5])])
        x = (np.arange(5) % 2 == 1) if dtype is np.bool_ else np.arange(5).astype(dtype)
        y = mserve.load(m, device="mock", optimize=False).predict(x, output_device="mock")
        np.testing.assert_array_equal(np.from_dlpack(y), x)


def test_dlpack_arrays_are_read_in_place():
    first, second = _two_models()
    x = np.random.default_rng(9).standard_normal((3, 8)).astype(np.float32)
    want = mserve.load(first).predict(x)
    for device in ("cpu", "mock"):
        src = _DLPackOnly(x)
        np.testing.assert_array_equal(mserve.load(first, device=device).predict(src), want)
        np.testing.assert_array_equal(mserve.load(first, device=device).predict({"x": src}), want)
        assert src.exports == 2
    # A DeviceTensor's own capsule feeds another model on the device.
    h = mserve.load(first, device="mock").predict(x, output_device="mock")
    np.testing.assert_array_equal(mserve.load(second, device="mock").predict(_DLPackOnly(h)),
                                  np.maximum(want, 0))


def test_dlpack_arrays_that_cannot_be_read_in_place_are_clear_errors():
    first, _ = _two_models()
    model = mserve.load(first, device="mock")
    t = np.ones((8, 3), np.float32).T  # (3, 8) with strides of a transpose
    with pytest.raises(mserve.InvalidArgument, match="input 'x': a DLPack array must be C-contiguous"):
        model.predict(_DLPackOnly(t))
    with pytest.raises(mserve.InvalidArgument, match="type code 5, 64 bits"):  # complex64
        model.predict(_DLPackOnly(np.ones((3, 8), np.complex64)))
    with pytest.raises(mserve.InvalidArgument, match="expected dtype float32, got float64"):
        model.predict(_DLPackOnly(np.ones((3, 8), np.float64)))

    class NotACapsule(_DLPackOnly):
        def __dlpack__(self, stream=None, **kw):
            return "not a capsule"
    with pytest.raises(mserve.InvalidArgument, match="did not return an unused DLPack capsule"):
        model.predict(NotACapsule(np.ones((3, 8), np.float32)))

    class OnCuda(_DLPackOnly):
        def __dlpack_device__(self):
            return (2, 0)
    with pytest.raises(mserve.InvalidArgument, match="a DLPack array given to a model on the CPU"):
        mserve.load(first).predict(OnCuda(np.ones((3, 8), np.float32)))  # a CUDA array for a CPU model
