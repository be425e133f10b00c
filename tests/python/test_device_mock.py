"""device="mock": the runtime's device placement (kernels on a device, copies at device boundaries,
the device arena, constants uploaded once, CPU fallback, outputs copied back) on a device whose
memory is host memory. Its kernels are the CPU's, so every output must equal the CPU model's bit
for bit; the zoo runs through it, and the CUDA backend runs through the same planner."""
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
