"""The CUDA backend is optional: importing mserve never needs it, and device="cuda" says exactly
what is missing (the backend module, or the CUDA library that does not load)."""
import ctypes.util
import importlib
import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest

import mserve
from mserve import cuda, examples


@pytest.fixture
def fresh_loader(monkeypatch):
    monkeypatch.setattr(cuda, "_backend", None)
    monkeypatch.setattr(cuda, "_failure", None)
    return cuda


def test_cpu_needs_no_cuda():
    m = mserve.load(examples.mlp())
    assert m.predict(np.zeros((2, 256), np.float32)).shape == (2, 10)


def test_without_the_backend_cuda_is_unavailable_and_says_why(fresh_loader, monkeypatch):
    monkeypatch.setattr(cuda, "BACKEND_MODULE", "mserve._no_such_backend")
    assert mserve.cuda_available() is False
    with pytest.raises(mserve.Unavailable, match="built without its CUDA backend"):
        mserve.load(examples.mlp(), device="cuda")


def test_the_built_backend_imports_without_a_gpu_and_says_why_it_cannot_run(fresh_loader):
    # Where the backend is built (nvcc found) it must import on a machine without a GPU or driver,
    # and device="cuda" must name the reason; where it is not built, the message says that.
    with pytest.raises(mserve.Unavailable, match="device 'cuda' is not available: ") as e:
        mserve.load(examples.mlp(), device="cuda")
    count = 0
    if importlib.util.find_spec("mserve._core_cuda") is not None:
        count, why = importlib.import_module("mserve._core_cuda").device_count()
        if count == 0:
            assert "no usable CUDA device" in str(e.value) and why in str(e.value)
    assert mserve.cuda_available() is (count > 0)


def test_no_device_is_unavailable(fresh_loader, tmp_path, monkeypatch):
    fake_backend(tmp_path, monkeypatch, devices=0)
    assert mserve.cuda_available() is False
    with pytest.raises(mserve.Unavailable, match="no usable CUDA device .cudaErrorNoDevice"):
        cuda.backend()


def test_unknown_device_is_invalid_argument():
    with pytest.raises(mserve.InvalidArgument, match="'tpu'"):
        mserve.load(examples.mlp(), device="tpu")


def fake_backend(tmp_path, monkeypatch, name="fake_cuda_backend", devices=1):
    # Its backend() hands over the runtime's mock device, as _core_cuda hands over its capsule.
    why = "" if devices else "cudaErrorNoDevice: no CUDA-capable device is detected"
    (tmp_path / f"{name}.py").write_text(f"LOADED = True\ndef device_count():\n    return {devices}, {why!r}\n"
                                         "def backend(precision='fp32'):\n    return 'mock'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cuda, "BACKEND_MODULE", name)
    sys.modules.pop(name, None)


def test_a_missing_cuda_library_is_named(fresh_loader, tmp_path, monkeypatch):
    fake_backend(tmp_path, monkeypatch)
    monkeypatch.setattr(cuda, "CUDA_LIBRARIES", (("libmserve_absent_cudart.so.13", "cuda_runtime"),))
    assert mserve.cuda_available() is False
    with pytest.raises(mserve.Unavailable, match="libmserve_absent_cudart.so.13"):
        cuda.backend()
    # The answer is remembered: no second search, the same message.
    with pytest.raises(mserve.Unavailable, match="libmserve_absent_cudart.so.13"):
        mserve.load(examples.mlp(), device="cuda")


@pytest.mark.parametrize("folder", ["cuda_runtime", "cu13"], ids=["per-package", "cuda13-wheels"])
def test_libraries_are_found_in_nvidia_pip_packages(fresh_loader, tmp_path, monkeypatch, folder):
    # A pip-style layout site/nvidia/<package>/lib/<soname> holding a real shared library under
    # the CUDA library's name: the loader preloads it by path, then imports the backend.
    real = ctypes.util.find_library("z")
    path = next(p for p in ("/usr/lib/x86_64-linux-gnu/" + (real or ""), "/lib/x86_64-linux-gnu/" + (real or ""))
                if real and os.path.exists(p))
    site = tmp_path / "site"
    lib = site / "nvidia" / folder / "lib"
    lib.mkdir(parents=True)
    shutil.copy(path, lib / "libmserve_test_cudart.so.13")
    monkeypatch.syspath_prepend(str(site))
    fake_backend(tmp_path, monkeypatch)
    monkeypatch.setattr(cuda, "CUDA_LIBRARIES", (("libmserve_test_cudart.so.13", "cuda_runtime"),))
    assert mserve.cuda_available() is True
    assert cuda.backend().LOADED


def test_device_cuda_runs_on_the_backend_the_module_hands_over(fresh_loader, tmp_path, monkeypatch):
    fake_backend(tmp_path, monkeypatch)
    monkeypatch.setattr(cuda, "CUDA_LIBRARIES", ())
    model = mserve.load(examples.mlp(), device="cuda")
    x = np.random.default_rng(0).standard_normal((3, 256)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), mserve.load(examples.mlp()).predict(x))
    placement = model.placement()
    assert placement.device == "mock" and placement.device_nodes >= 1 and placement.cpu_nodes == 0


def test_a_capsule_from_another_build_is_refused():
    with pytest.raises(TypeError, match="backend capsule"):
        mserve._core.Session.load_bytes(examples.mlp().SerializeToString(), device=object())


def test_a_backend_built_against_another_runtime_is_a_clear_error():
    # A capsule named as the runtime expects, holding a BackendHandle whose abi is not this build's.
    handle = (ctypes.c_uint64 * 4)(0, 0, 0, 0)
    name = ctypes.create_string_buffer(b"mserve.Backend")
    new = ctypes.pythonapi.PyCapsule_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    capsule = new(ctypes.addressof(handle), ctypes.addressof(name), None)
    with pytest.raises(ValueError, match="another mserve runtime"):
        mserve._core.Session.load_bytes(examples.mlp().SerializeToString(), device=capsule)


def test_precision_is_checked_before_any_device_is_touched():
    with pytest.raises(mserve.InvalidArgument, match="precision 'tf32' is for device 'cuda', not 'cpu'"):
        mserve.load(examples.mlp(), precision="tf32")
    with pytest.raises(mserve.InvalidArgument, match="precision 'fp16' is for device 'cuda', not 'mock'"):
        mserve.load(examples.mlp(), device="mock", precision="fp16")
    with pytest.raises(mserve.InvalidArgument, match="precision 'half'"):
        mserve.load(examples.mlp(), precision="half")
    assert mserve.load(examples.mlp(), precision="fp32").placement().device == "cpu"


def recording_backend(tmp_path, monkeypatch, name):
    """A stand-in backend module that records the precision each backend is asked for (ASKED) and
    hands over the mock device; `name` is its module's name."""
    (tmp_path / f"{name}.py").write_text("ASKED = []\ndef device_count():\n    return 1, ''\n"
                                         "def backend(precision='fp32'):\n    ASKED.append(precision)\n"
                                         "    return 'mock'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cuda, "BACKEND_MODULE", name)
    monkeypatch.setattr(cuda, "CUDA_LIBRARIES", ())
    sys.modules.pop(name, None)


def test_precision_reaches_the_backend_module(fresh_loader, tmp_path, monkeypatch):
    name = "fake_precision_backend"
    recording_backend(tmp_path, monkeypatch, name)
    for precision in ("tf32", "fp16", "bf16"):
        mserve.load(examples.mlp(), device="cuda", precision=precision)
    mserve.load(examples.mlp(), device="cuda")
    assert importlib.import_module(name).ASKED == ["tf32", "fp16", "bf16", "fp32"]


def test_serving_asks_the_backend_for_each_models_precision(fresh_loader, tmp_path, monkeypatch):
    # The server's device and precision for models that do not say, a model's own precision, a
    # model moved to the CPU.
    from serve_util import scale_model, write_version
    name = "fake_serving_backend"
    recording_backend(tmp_path, monkeypatch, name)
    for m in ("a", "b", "c"):
        write_version(tmp_path / m, 1, scale_model(2.0))
    models = {"a": str(tmp_path / "a"), "b": {"base_path": str(tmp_path / "b"), "precision": "fp16"},
              "c": {"base_path": str(tmp_path / "c"), "device": "cpu"}}
    with mserve.start(models, port=0, quiet=True, device="cuda", precision="bf16") as s:
        s.wait_ready()
    assert sorted(importlib.import_module(name).ASKED) == ["bf16", "fp16"]  # the server's, model b's
    with pytest.raises(mserve.InvalidArgument, match="precision 'fp16' is for device 'cuda', not 'cpu'"):
        mserve.start({"b": {"base_path": str(tmp_path / "b"), "precision": "fp16"}}, port=0, quiet=True)
    with pytest.raises(mserve.InvalidArgument, match="precision must be one of fp32, tf32, fp16, bf16"):
        mserve.start(str(tmp_path / "a"), port=0, quiet=True, precision="half")


def _matmul_model(dtype):
    from onnx import TensorProto, helper, numpy_helper
    elem = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16}.get(dtype, TensorProto.BFLOAT16)
    if dtype == "bfloat16":
        w = helper.make_tensor("w", TensorProto.BFLOAT16, [4, 3], np.arange(12, dtype=np.float32).tolist())
    else:
        w = numpy_helper.from_array(np.arange(12, dtype=dtype).reshape(4, 3), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", elem, [2, 4])],
                          [helper.make_tensor_value_info("y", elem, [2, 3])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_a_16_bit_model_runs_in_its_own_precision_on_cuda(fresh_loader, tmp_path, monkeypatch):
    name = "fake_own_precision_backend"
    recording_backend(tmp_path, monkeypatch, name)
    half = tmp_path / "half.onnx"
    half.write_bytes(_matmul_model(np.float16).SerializeToString())
    assert mserve._core.weight_dtype(str(half)) == "float16"
    assert mserve._core.weight_dtype(_matmul_model("bfloat16").SerializeToString()) == "bfloat16"
    assert mserve._core.weight_dtype(examples.mlp().SerializeToString()) == "float32"
    mserve.load(str(half), device="cuda")                       # a path
    mserve.load(_matmul_model("bfloat16"), device="cuda")       # a ModelProto
    mserve.load(examples.mlp(), device="cuda")                  # float32
    mserve.load(str(half), device="cuda", precision="fp32")     # asked for: kept
    assert importlib.import_module(name).ASKED == ["fp16", "bf16", "fp32", "fp32"]
    assert mserve.load(str(half)).placement().device == "cpu"  # the CPU has no precisions
    with pytest.raises(mserve.ModelLoadError):
        mserve.load(b"not a model", device="cuda")  # the load says why, not the precision's guess
