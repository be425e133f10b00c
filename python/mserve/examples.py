"""Example models built with ``onnx.helper`` (needs the ``onnx`` package): a linear regression,
an MLP classifier and a Keras-style NHWC CNN classifier, with fixed random weights. Used by the
demo, the tests and the benchmarks."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np


def _onnx() -> tuple[Any, Any, Any]:
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:  # pragma: no cover - the test/dev environment has onnx
        raise ImportError("mserve.examples needs the 'onnx' package: pip install onnx") from e
    return onnx, helper, numpy_helper


def _finish(graph: Any, opset: int) -> Any:
    onnx, helper, _ = _onnx()
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="mserve.examples")
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return model


def linear_regression(features: int = 64, seed: int = 0) -> Any:
    """y[N,1] = x[N,features] @ W + b (MatMul + Add, as sklearn/Keras exports look)."""
    _, helper, nh = _onnx()
    rng = np.random.default_rng(seed)
    w = nh.from_array(rng.standard_normal((features, 1)).astype(np.float32), "W")
    b = nh.from_array(np.array([0.5], np.float32), "b")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear_regression",
        [helper.make_tensor_value_info("x", 1, ["batch", features])],
        [helper.make_tensor_value_info("y", 1, ["batch", 1])],
        [w, b])
    return _finish(g, 13)


def mlp(features: int = 256, hidden: tuple[int, ...] = (512, 256), classes: int = 10, seed: int = 0) -> Any:
    """Gemm+Relu layers and a Softmax head."""
    _, helper, nh = _onnx()
    rng = np.random.default_rng(seed)
    nodes: list[Any] = []
    inits: list[Any] = []
    prev, width = "x", features
    for i, h in enumerate(list(hidden) + [classes]):
        inits.append(nh.from_array((rng.standard_normal((h, width)) / np.sqrt(width)).astype(np.float32), f"W{i}"))
        inits.append(nh.from_array((rng.standard_normal(h) * 0.1).astype(np.float32), f"b{i}"))
        out = f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [out], transB=1))
        if i < len(hidden):
            nodes.append(helper.make_node("Relu", [out], [out + "r"]))
            out += "r"
        prev, width = out, h
    nodes.append(helper.make_node("Softmax", [prev], ["probs"], axis=-1))
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", 1, ["batch", features])],
                          [helper.make_tensor_value_info("probs", 1, ["batch", classes])], inits)
    return _finish(g, 17)


def cnn_nhwc(size: int = 32, channels: int = 3, classes: int = 10, seed: int = 0) -> Any:
    """A Keras-style image classifier as tf2onnx exports it: NHWC input transposed to NCHW,
    Conv/BatchNorm/Relu/MaxPool blocks, a depthwise conv, global pooling and a dense head."""
    _, helper, nh = _onnx()
    rng = np.random.default_rng(seed)
    inits: list[Any] = []

    def param(name: str, shape: Sequence[int], scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        s = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        inits.append(nh.from_array((rng.standard_normal(shape) * s).astype(np.float32), name))
        return name

    def bn(prefix: str, c: int, x: str, y: str) -> Any:
        inits.append(nh.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), prefix + "_s"))
        inits.append(nh.from_array((rng.standard_normal(c) * 0.1).astype(np.float32), prefix + "_b"))
        inits.append(nh.from_array((rng.standard_normal(c) * 0.1).astype(np.float32), prefix + "_m"))
        inits.append(nh.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), prefix + "_v"))
        return helper.make_node("BatchNormalization", [x] + [prefix + s for s in ("_s", "_b", "_m", "_v")], [y],
                                epsilon=1e-3)

    n: list[Any] = []
    n.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
    n.append(helper.make_node("Conv", ["nchw", param("c1w", (16, channels, 3, 3)), param("c1b", (16,), 0.1)], ["c1"],
                              pads=[1, 1, 1, 1]))
    n.append(bn("bn1", 16, "c1", "b1"))
    n.append(helper.make_node("Relu", ["b1"], ["r1"]))
    n.append(helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]))
    n.append(helper.make_node("Conv", ["p1", param("dww", (16, 1, 3, 3))], ["dw"], group=16, auto_pad="SAME_UPPER"))
    n.append(helper.make_node("Conv", ["dw", param("c2w", (32, 16, 1, 1)), param("c2b", (32,), 0.1)], ["c2"]))
    n.append(bn("bn2", 32, "c2", "b2"))
    n.append(helper.make_node("Clip", ["b2", "zero", "six"], ["r2"]))
    inits.append(nh.from_array(np.array(0, np.float32), "zero"))
    inits.append(nh.from_array(np.array(6, np.float32), "six"))
    n.append(helper.make_node("Conv", ["r2", param("c3w", (64, 32, 3, 3)), param("c3b", (64,), 0.1)], ["c3"],
                              strides=[2, 2], pads=[1, 1, 1, 1]))
    n.append(helper.make_node("Relu", ["c3"], ["r3"]))
    n.append(helper.make_node("AveragePool", ["r3"], ["a3"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              count_include_pad=0))
    n.append(helper.make_node("GlobalAveragePool", ["a3"], ["gap"]))
    n.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    n.append(helper.make_node("Gemm", ["flat", param("fcw", (classes, 64)), param("fcb", (classes,), 0.1)],
                              ["logits"], transB=1))
    n.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    g = helper.make_graph(n, "cnn_nhwc",
                          [helper.make_tensor_value_info("image", 1, ["N", size, size, channels])],
                          [helper.make_tensor_value_info("probs", 1, ["N", classes])], inits)
    return _finish(g, 13)


EXAMPLES: dict[str, Callable[[], Any]] = {"linear_regression": linear_regression, "mlp": mlp, "cnn_nhwc": cnn_nhwc}


def half_plus_two() -> Any:
    """y = 0.5 * x + 2 on float32[batch]: the model of TensorFlow Serving's REST tutorial, so its
    curl example works unchanged against `make serve`."""
    _, helper, nh = _onnx()
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "half"], ["xh"]), helper.make_node("Add", ["xh", "two"], ["y"])],
        "half_plus_two",
        [helper.make_tensor_value_info("x", 1, ["batch"])],
        [helper.make_tensor_value_info("y", 1, ["batch"])],
        [nh.from_array(np.array(0.5, np.float32), "half"), nh.from_array(np.array(2.0, np.float32), "two")])
    return _finish(g, 17)


def save_repository(directory: str) -> str:
    """Writes a model repository as tensorflow_model_server expects one: numbered version folders
    per model (half_plus_two/1, mlp/1, cnn_nhwc/1) and a model_config_list file naming them.
    Returns the config file's path."""
    onnx, _, _ = _onnx()
    directory = os.path.abspath(directory)
    models: dict[str, Callable[[], Any]] = {"half_plus_two": half_plus_two, "mlp": mlp, "cnn_nhwc": cnn_nhwc}
    entries = []
    for name, make in models.items():
        vdir = os.path.join(directory, name, "1")
        os.makedirs(vdir, exist_ok=True)
        onnx.save(make(), os.path.join(vdir, "model.onnx"))
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
    onnx, _, _ = _onnx()
    os.makedirs(directory, exist_ok=True)
    paths: dict[str, str] = {}
    for name, make in EXAMPLES.items():
        path = os.path.join(directory, name + ".onnx")
        onnx.save(make(), path)
        paths[name] = path
    return paths
