"""Example models: a linear regression, an MLP classifier and a Keras-style NHWC CNN classifier,
with fixed random weights, and TensorFlow Serving's half_plus_two. Used by the README, the demo,
the tests and the benchmarks. They need only numpy: each is written as ONNX bytes by
``mserve._onnx_writer``, and returned as an ``onnx.ModelProto`` (checked by onnx's checker) when
the ``onnx`` package is installed, else as those bytes; ``mserve.load`` takes either."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from . import _onnx_writer as w


def _finish(data: bytes) -> Any:
    try:
        import onnx
    except ImportError:
        return data
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    return model


def _producer() -> str:
    return "mserve.examples"


def linear_regression(features: int = 64, seed: int = 0) -> Any:
    """y[N,1] = x[N,features] @ W + b (MatMul + Add, as sklearn/Keras exports look)."""
    rng = np.random.default_rng(seed)
    inits = [w.tensor(rng.standard_normal((features, 1)).astype(np.float32), "W"),
             w.tensor(np.array([0.5], np.float32), "b")]
    nodes = [w.node("MatMul", ["x", "W"], ["xw"]), w.node("Add", ["xw", "b"], ["y"])]
    return _finish(w.model(nodes, "linear_regression", [w.value_info("x", w.FLOAT, ["batch", features])],
                           [w.value_info("y", w.FLOAT, ["batch", 1])], inits, 13, _producer()))


def mlp(features: int = 256, hidden: tuple[int, ...] = (512, 256), classes: int = 10, seed: int = 0) -> Any:
    """Gemm+Relu layers and a Softmax head."""
    rng = np.random.default_rng(seed)
    nodes: list[bytes] = []
    inits: list[bytes] = []
    prev, width = "x", features
    for i, h in enumerate(list(hidden) + [classes]):
        inits.append(w.tensor((rng.standard_normal((h, width)) / np.sqrt(width)).astype(np.float32), f"W{i}"))
        inits.append(w.tensor((rng.standard_normal(h) * 0.1).astype(np.float32), f"b{i}"))
        out = f"h{i}"
        nodes.append(w.node("Gemm", [prev, f"W{i}", f"b{i}"], [out], transB=1))
        if i < len(hidden):
            nodes.append(w.node("Relu", [out], [out + "r"]))
            out += "r"
        prev, width = out, h
    nodes.append(w.node("Softmax", [prev], ["probs"], axis=-1))
    return _finish(w.model(nodes, "mlp", [w.value_info("x", w.FLOAT, ["batch", features])],
                           [w.value_info("probs", w.FLOAT, ["batch", classes])], inits, 17, _producer()))


def cnn_nhwc(size: int = 32, channels: int = 3, classes: int = 10, seed: int = 0) -> Any:
    """A Keras-style image classifier as tf2onnx exports it: NHWC input transposed to NCHW,
    Conv/BatchNorm/Relu/MaxPool blocks, a depthwise conv, global pooling and a dense head."""
    rng = np.random.default_rng(seed)
    inits: list[bytes] = []

    def param(name: str, shape: Sequence[int], scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        s = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        inits.append(w.tensor((rng.standard_normal(shape) * s).astype(np.float32), name))
        return name

    def bn(prefix: str, c: int, x: str, y: str) -> bytes:
        inits.append(w.tensor(rng.uniform(0.5, 1.5, c).astype(np.float32), prefix + "_s"))
        inits.append(w.tensor((rng.standard_normal(c) * 0.1).astype(np.float32), prefix + "_b"))
        inits.append(w.tensor((rng.standard_normal(c) * 0.1).astype(np.float32), prefix + "_m"))
        inits.append(w.tensor(rng.uniform(0.5, 1.5, c).astype(np.float32), prefix + "_v"))
        return w.node("BatchNormalization", [x] + [prefix + s for s in ("_s", "_b", "_m", "_v")], [y], epsilon=1e-3)

    n: list[bytes] = []
    n.append(w.node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
    n.append(w.node("Conv", ["nchw", param("c1w", (16, channels, 3, 3)), param("c1b", (16,), 0.1)], ["c1"],
                    pads=[1, 1, 1, 1]))
    n.append(bn("bn1", 16, "c1", "b1"))
    n.append(w.node("Relu", ["b1"], ["r1"]))
    n.append(w.node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]))
    n.append(w.node("Conv", ["p1", param("dww", (16, 1, 3, 3))], ["dw"], group=16, auto_pad="SAME_UPPER"))
    n.append(w.node("Conv", ["dw", param("c2w", (32, 16, 1, 1)), param("c2b", (32,), 0.1)], ["c2"]))
    n.append(bn("bn2", 32, "c2", "b2"))
    n.append(w.node("Clip", ["b2", "zero", "six"], ["r2"]))
    inits.append(w.tensor(np.array(0, np.float32), "zero"))
    inits.append(w.tensor(np.array(6, np.float32), "six"))
    n.append(w.node("Conv", ["r2", param("c3w", (64, 32, 3, 3)), param("c3b", (64,), 0.1)], ["c3"],
                    strides=[2, 2], pads=[1, 1, 1, 1]))
    n.append(w.node("Relu", ["c3"], ["r3"]))
    n.append(w.node("AveragePool", ["r3"], ["a3"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0))
    n.append(w.node("GlobalAveragePool", ["a3"], ["gap"]))
    n.append(w.node("Flatten", ["gap"], ["flat"]))
    n.append(w.node("Gemm", ["flat", param("fcw", (classes, 64)), param("fcb", (classes,), 0.1)], ["logits"],
                    transB=1))
    n.append(w.node("Softmax", ["logits"], ["probs"], axis=1))
    return _finish(w.model(n, "cnn_nhwc", [w.value_info("image", w.FLOAT, ["N", size, size, channels])],
                           [w.value_info("probs", w.FLOAT, ["N", classes])], inits, 13, _producer()))


EXAMPLES: dict[str, Callable[[], Any]] = {"linear_regression": linear_regression, "mlp": mlp, "cnn_nhwc": cnn_nhwc}


def half_plus_two() -> Any:
    """y = 0.5 * x + 2 on float32[batch]: the model of TensorFlow Serving's REST tutorial, so its
    curl example works unchanged against `make serve`."""
    nodes = [w.node("Mul", ["x", "half"], ["xh"]), w.node("Add", ["xh", "two"], ["y"])]
    inits = [w.tensor(np.array(0.5, np.float32), "half"), w.tensor(np.array(2.0, np.float32), "two")]
    return _finish(w.model(nodes, "half_plus_two", [w.value_info("x", w.FLOAT, ["batch"])],
                           [w.value_info("y", w.FLOAT, ["batch"])], inits, 17, _producer()))


def _save(model: Any, path: str) -> None:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)


def save_repository(directory: str) -> str:
    """Writes a model repository as tensorflow_model_server expects one: numbered version folders
    per model (half_plus_two/1, mlp/1, cnn_nhwc/1) and a model_config_list file naming them.
    Returns the config file's path."""
    directory = os.path.abspath(directory)
    models: dict[str, Callable[[], Any]] = {"half_plus_two": half_plus_two, "mlp": mlp, "cnn_nhwc": cnn_nhwc}
    entries = []
    for name, make in models.items():
        vdir = os.path.join(directory, name, "1")
        os.makedirs(vdir, exist_ok=True)
        _save(make(), os.path.join(vdir, "model.onnx"))
        entries.append(f"  config {{\n    name: '{name}'\n    base_path: '{os.path.join(directory, name)}'\n"
                       f"    model_platform: 'onnx'\n  }}\n")
    config = os.path.join(directory, "models.config")
    with open(config, "w", encoding="utf-8") as f:
        f.write("model_config_list {\n" + "".join(entries) + "}\n")
    return config


def example_input(name: str, batch: int, seed: int = 1) -> np.ndarray[Any, Any]:
    """A random input batch for example model `name`."""
    rng = np.random.default_rng(seed)
    shapes = {"linear_regression": (batch, 64), "mlp": (batch, 256), "cnn_nhwc": (batch, 32, 32, 3)}
    return rng.standard_normal(shapes[name]).astype(np.float32)


def save_examples(directory: str) -> dict[str, str]:
    """Writes every example model to `directory`/<name>.onnx; returns name -> path."""
    os.makedirs(directory, exist_ok=True)
    paths: dict[str, str] = {}
    for name, make in EXAMPLES.items():
        path = os.path.join(directory, name + ".onnx")
        _save(make(), path)
        paths[name] = path
    return paths
