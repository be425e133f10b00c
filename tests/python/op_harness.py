"""Operator tests on one-node models: building the model, random inputs, the oracles (onnxruntime,
onnx.reference or a function), running mserve and comparing with tolerances.

A test file lists its cases in a `Cases` and runs them with one parametrized test:

    rand = random_inputs(seed=1)
    CASES = Cases(opsets=(17,))
    case = CASES.add
    case("Add-bcast", "Add", {"a": rand(2, 3), "b": rand(3)})

    @pytest.mark.parametrize("c", CASES)
    def test_op_matches_oracle(c):
        c.check()

Defaults of the comparison: floating outputs within rtol 1e-4, atol 1e-5 (float16: 1e-3, 1e-3),
other dtypes exactly; dtypes and shapes must match the oracle's.
"""
import copy
import dataclasses
import functools
from typing import Any, Callable, Optional, Union

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mserve

F32_TOL = {"rtol": 1e-4, "atol": 1e-5}
F16_TOL = {"rtol": 1e-3, "atol": 1e-3}


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


def ort_run(model, feeds, as_written=False):
    """onnxruntime's outputs for `feeds` (one thread, CPU). as_written: graph optimizations off, so
    that a QDQ graph runs as its float ops (its fused uint8 x int8 kernels saturate on x86 CPUs
    without VNNI)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if as_written:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def reference_run(model, feeds):
    """onnx.reference's outputs for `feeds`."""
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feeds)


def random_inputs(seed, lo=-2.0, hi=2.0):
    """A function rand(*shape, dtype=np.float32, lo=..., hi=...) drawing from its own generator:
    uniform floats, or integers in [lo, hi], or booleans."""
    rng = np.random.default_rng(seed)
    default_lo, default_hi = lo, hi

    def rand(*shape, dtype=np.float32, lo=default_lo, hi=default_hi):
        if dtype in (bool, np.bool_):
            return rng.integers(0, 2, size=shape).astype(bool)
        if np.issubdtype(dtype, np.integer):
            return rng.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
        return rng.uniform(lo, hi, size=shape).astype(dtype)
    rand.rng = rng
    return rand


def f32(*v):
    return np.array(v, np.float32)


def i64(*v):
    return np.array(v, np.int64)


def ints(values, dtype=np.int64):
    return np.array(values, dtype)


def strings(*values, shape=None):
    """An object array of str (onnxruntime's string tensor type)."""
    a = np.array(list(values), dtype=object)
    return a.reshape(shape) if shape is not None else a


def io_info(arrays):
    """(name, dtype, shape) of each array of a {name: array} dict, for make_model."""
    return [(k, v.dtype, list(v.shape)) for k, v in arrays.items()]


def one_node(op, inputs, consts=None, attrs=None, opset=17, outputs=1, out_type=0, names=None, domain=""):
    """The model of one `op` node over runtime `inputs` then constant `consts` (initializers); a None
    constant leaves its optional input out. Outputs are of `out_type` (0: inferred).
    Returns the model and the output names."""
    consts = dict(consts or {})
    if names is None:
        names = list(inputs) + [k if v is not None else "" for k, v in consts.items()]
    consts = {k: v for k, v in consts.items() if v is not None}
    # Outputs y (y0, y1, ...), or out (out0, ...) where an input has that name.
    stem = "out" if ({"y"} | {f"y{i}" for i in range(outputs)}) & (set(inputs) | set(consts)) else "y"
    out_names = [stem] if outputs == 1 else [f"{stem}{i}" for i in range(outputs)]
    node = helper.make_node(op, list(names), out_names, domain=domain, **(attrs or {}))
    model = make_model([node], io_info(inputs), [(o, out_type, None) for o in out_names], consts, opset=opset)
    return model, out_names


def build_model(op, inputs, consts=None, attrs=None, opset=17, outputs=1, ml=None, **kw):
    """The model of OpCase(...) (see there) and its output names."""
    return OpCase(op, inputs, dict(consts or {}), dict(attrs or {}), opset, outputs, ml=ml, **kw).build()


def run_one(op, x, attrs=None, consts=None, opset=17):
    """mserve's output of one `op` node over the runtime input x and constant inputs `consts`."""
    model, _ = one_node(op, {"x": x}, consts, attrs, opset)
    return mserve.load(model.SerializeToString()).predict(x)


def check_outputs(got, expected, tol=None, f16_tol=None):
    """Each output's dtype and shape equal the oracle's; values within `tol` (floating types; float16
    within `f16_tol`) or equal."""
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if np.issubdtype(e.dtype, np.floating):
            t = tol or ((f16_tol or F16_TOL) if e.dtype == np.float16 else F32_TOL)
            np.testing.assert_allclose(g, e, **t)
        elif e.dtype.kind == "V":  # ml_dtypes' narrow types: the values each code stands for, NaN == NaN
            np.testing.assert_array_equal(g.astype(np.float32), e.astype(np.float32))
        else:
            np.testing.assert_array_equal(g, e)


def predict_outputs(model, inputs, out_names, threads=2):
    """mserve's outputs, in the order of `out_names`."""
    got = mserve.load(model.SerializeToString(), threads=threads).predict(dict(inputs))
    return [got] if len(out_names) == 1 else [got[o] for o in out_names]


@dataclasses.dataclass
class OpCase:
    """One operator at one opset. oracle: "onnxruntime", "reference" (onnx.reference, where
    onnxruntime lacks a kernel), "auto" (onnxruntime, or onnx.reference where it reports
    NOT_IMPLEMENTED) or a function of the inputs returning the expected outputs."""
    op: str
    inputs: dict
    consts: dict
    attrs: dict
    opset: int
    outputs: int = 1
    oracle: Union[str, Callable[[dict], Any]] = "onnxruntime"
    tol: Optional[dict] = None
    f16_tol: Optional[dict] = None
    names: Optional[list] = None
    out_type: int = 0
    ml: Optional[int] = None  # an ai.onnx.ml opset: the node is in that domain

    def build(self):
        """The one-node model and its output names."""
        model, out_names = one_node(self.op, self.inputs, self.consts, self.attrs, self.opset, self.outputs,
                                    TensorProto.FLOAT if self.ml else self.out_type, self.names,
                                    "ai.onnx.ml" if self.ml else "")
        if self.ml:  # typed by onnx shape inference once the ai.onnx.ml opset is imported
            model.opset_import.append(helper.make_opsetid("ai.onnx.ml", self.ml))
            for o in model.graph.output:
                o.type.tensor_type.elem_type = TensorProto.UNDEFINED
            model = onnx.shape_inference.infer_shapes(model)
        for o in model.graph.output:
            if o.type.tensor_type.elem_type == 0:  # ONNX infers no type for some functions (GroupNormalization)
                o.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(next(iter(self.inputs.values())).dtype)
        return model, out_names

    def expected(self, model):
        if callable(self.oracle):
            return self.oracle(self.inputs)
        if self.oracle == "reference":
            return reference_run(model, self.inputs)
        if self.oracle == "auto":
            try:
                return ort_run(model, self.inputs)
            except Exception as e:  # onnxruntime has no kernel for this dtype/opset: use the reference
                if "NOT_IMPLEMENTED" not in str(e):
                    raise
            return reference_run(model, self.inputs)
        return ort_run(model, self.inputs)

    def check(self):
        """Runs the model on mserve (2 threads) and compares with the oracle."""
        model, out_names = self.build()
        expected = self.expected(model)
        check_outputs(predict_outputs(model, self.inputs, out_names), expected, self.tol, self.f16_tol)


class Cases(list):
    """pytest parameters, one OpCase per case and opset, with ids <id>-op<opset>."""

    def __init__(self, opsets=(17,), **defaults):
        super().__init__()
        self.opsets = opsets
        self.defaults = defaults

    def add(self, id_, op, inputs, consts=None, attrs=None, opsets=None, **kw):
        """inputs: runtime inputs {name: array}; consts: initializer inputs, after the runtime ones (a
        None value leaves an optional input out), or a list of (name, array) pairs, None for an omitted
        input, whose outputs then have the first input's dtype; other keywords: the fields of OpCase."""
        kw = {**self.defaults, **kw}
        if isinstance(inputs, list):  # [(name, array) or None (an omitted optional input), ...]
            kw.setdefault("names", [i[0] if i else "" for i in inputs])
            kw.setdefault("out_type", helper.np_dtype_to_tensor_dtype(inputs[0][1].dtype))
            inputs = {i[0]: i[1] for i in inputs if i}
        for opset in opsets or self.opsets:
            c = OpCase(op, inputs, dict(consts or {}), dict(attrs or {}), opset, **kw)
            self.append(pytest.param(c, id=f"{id_}-op{c.ml or opset}"))


@functools.cache
def ort_saturates_u8s8():
    """Whether onnxruntime's uint8 x int8 integer products saturate on this CPU: without VNNI its x86
    kernels multiply with VPMADDUBSW, whose 16-bit sums of two products overflow (255 * 127 * 2 here)."""
    import onnxruntime as ort
    node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])],
                              [numpy_helper.from_array(np.full((2, 1), 127, np.int8), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return int(sess.run(None, {"a": np.full((1, 2), 255, np.uint8)})[0][0, 0]) != 255 * 127 * 2


# Integer kernels: (weight input, its zero point, the activation's zero point)
INTEGER_WEIGHTS = {"MatMulInteger": (1, 3, 2), "ConvInteger": (1, 3, 2), "QLinearConv": (3, 5, 2),
                   "QLinearMatMul": (3, 5, 2), "QGemm": (3, 5, 2), "QAttention": (1, 7, 6)}


def unsaturated_twin(model):
    """The same model with each constant int8 weight of an integer kernel stored as uint8 (w + 128,
    zero point + 128): the same integer arithmetic, which onnxruntime's uint8 x uint8 kernels compute
    exactly (they widen to 16 bits before multiplying). None when there is no such weight."""
    twin = copy.deepcopy(model)
    inits = {t.name: t for t in twin.graph.initializer}
    dynamic = {o for n in twin.graph.node if n.op_type == "DynamicQuantizeLinear" for o in n.output}
    changed = False
    for node in twin.graph.node:
        if node.op_type not in INTEGER_WEIGHTS:
            continue
        wi, zi, xzi = INTEGER_WEIGHTS[node.op_type]
        w = inits.get(node.input[wi])
        x_zp = node.input[xzi] if len(node.input) > xzi else ""
        x_u8 = x_zp in dynamic or (x_zp in inits and inits[x_zp].data_type == TensorProto.UINT8)
        if w is None or w.data_type != TensorProto.INT8 or not x_u8:   # (int8 x int8 does not saturate)
            continue
        has_zp = len(node.input) > zi and node.input[zi]
        zp = numpy_helper.to_array(inits[node.input[zi]]) if has_zp else np.int8(0)
        wu = (numpy_helper.to_array(w).astype(np.int16) + 128).astype(np.uint8)
        zu = (np.asarray(zp).astype(np.int16) + 128).astype(np.uint8)
        name = f"{node.name or node.output[0]}_u8"
        twin.graph.initializer.extend([numpy_helper.from_array(wu, name + "_w"),
                                       numpy_helper.from_array(zu, name + "_zp")])
        while len(node.input) <= zi:
            node.input.append("")
        node.input[wi], node.input[zi] = name + "_w", name + "_zp"
        changed = True
    return twin if changed else None
