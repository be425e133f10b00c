import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import mserve


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=None):
    """inputs/outputs: list of (name, np.dtype or onnx elem type, shape or None)."""
    def vi(name, dt, shape):
        et = dt if isinstance(dt, int) else helper.np_dtype_to_tensor_dtype(np.dtype(dt))
        return helper.make_tensor_value_info(name, et, shape)
    g = helper.make_graph(nodes, "g", [vi(*i) for i in inputs], [vi(*o) for o in outputs],
                          [numpy_helper.from_array(v, k) for k, v in dict(initializers).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    # onnxruntime accepts IR <= 10; pick the lowest IR that carries this opset.
    m.ir_version = ir_version or (7 if opset <= 12 else 8 if opset <= 17 else 9 if opset <= 20 else 10)
    if any(o.type.tensor_type.elem_type == 0 for o in m.graph.output):
        # Outputs declared without a type: let ONNX's shape inference fill them in (the
        # oracle needs them; mserve infers its own).
        m = onnx.shape_inference.infer_shapes(m)
    return m


def ort_run(model, feeds):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture
def tmp_model(tmp_path):
    def save(model, name="m.onnx"):
        p = tmp_path / name
        onnx.save(model, str(p))
        return str(p)
    return save


def pytest_terminal_summary(terminalreporter):
    """Prints the ONNX node suite pass count when that test ran."""
    try:
        from test_onnx_node_suite import SUMMARY
    except ImportError:
        return
    if SUMMARY:
        terminalreporter.write_line(
            f"ONNX backend node suite: {SUMMARY['passed']} of {SUMMARY['total']} cases pass in mserve")
