"""The op cases: for each (domain, op) a kernel may have on the device, small ONNX models (built
with onnx.helper) and a way to draw fresh inputs for them. Odd sizes, broadcasting, attribute
variants, large flat tensors and, for the activations, the edge values (NaN, infinities, signed
zeros, huge and denormal numbers) mixed in.

Most cases are one node loaded with optimize=False, so the model runs exactly that node and
placement must say 1 node on the device. The com.mserve operators exist only as fusions of what
exporters write (FusedMatMul, SkipLayerNormalization, MultiHeadAttention, NhwcConv, Nhwc*Pool):
their cases are the exporters' patterns, loaded with optimize=True; the optimized graph must hold
the operator (else the pattern no longer fuses and the case no longer tests it), and every node of
it must run on the device.

A case for an op without a CUDA kernel costs nothing on the GPU machine (only ops that
mserve._core_cuda.ops() lists run there); device="mock" runs them all, which keeps every builder
here working before its kernel exists."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import helper, numpy_helper

OPSET = 24
MSERVE_DOMAIN = "com.mserve"
Gen = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]

# NaN, infinities, signed zeros, overflow and denormal range, exp()'s limits, the halves.
EDGES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e-40, -1e-40, 88.0, -88.0, 0.5, -0.5],
                 np.float32)


def normal(scale: float = 1.0) -> Gen:
    return lambda rng, shape: (rng.standard_normal(shape) * scale).astype(np.float32)


def uniform(lo: float, hi: float) -> Gen:
    return lambda rng, shape: rng.uniform(lo, hi, shape).astype(np.float32)


def nonzero(lo: float = 0.5, hi: float = 2.0) -> Gen:
    """Magnitudes in [lo, hi] with random signs: divisors."""
    return lambda rng, shape: (rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


def small_ints(lo: int = -3, hi: int = 3, dtype: Any = np.float32) -> Gen:
    """Whole numbers in [lo, hi]: ties for comparisons, Max/Min and ArgMax."""
    return lambda rng, shape: rng.integers(lo, hi + 1, shape).astype(dtype)


def bools(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 2, shape).astype(bool)


def with_edges(scale: float = 4.0) -> Gen:
    """Normal values with EDGES at random places (all of them when there is room)."""
    def gen(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        x = (rng.standard_normal(shape) * scale).astype(np.float32)
        flat = x.reshape(-1)
        k = min(flat.size, EDGES.size)
        if flat.size < 64 * k:
            places = rng.permutation(flat.size)[:k]
        else:  # distinct places without permuting a large array
            places = np.unique(rng.integers(0, flat.size, 4 * k))[:k]
            k = places.size
        flat[places] = EDGES[:k]
        return x
    return gen


def indices(n: int, negative: bool = True) -> Gen:
    """int64 indices into a dimension of n, negative ones (counted from the end) mixed in."""
    return lambda rng, shape: rng.integers(-n if negative else 0, n, shape).astype(np.int64)


class Graph:
    """One ONNX graph under construction, with a generator per graph input."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.inits: list[Any] = []
        self.gens: dict[str, tuple[Gen, tuple[int, ...]]] = {}
        self.domains = {""}

    def input(self, name: str, shape: tuple[int, ...], gen: Gen | None = None, dtype: Any = np.float32) -> str:
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        self.inputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
        self.gens[name] = (gen or normal(), tuple(shape))
        return name

    def const(self, name: str, value: Any, dtype: Any = None) -> str:
        """An initializer; a float array without a dtype stays float32."""
        a = np.asarray(value, dtype=dtype if dtype is not None else None)
        if dtype is None and a.dtype == np.float64:
            a = a.astype(np.float32)
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def weight(self, name: str, shape: tuple[int, ...], scale: float | None = None) -> str:
        """A random float32 initializer, scaled like a trained layer's (1/sqrt(fan-in))."""
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        s = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
        return self.const(name, (self.rng.standard_normal(shape) * s).astype(np.float32))

    def node(self, op: str, inputs: list[str], outputs: list[str], domain: str = "", **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, domain=domain or None, **attrs))
        self.domains.add(domain)

    def output(self, name: str, dtype: Any = np.float32) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                                          None))

    def model(self) -> Any:
        graph = helper.make_graph(self.nodes, "gpu_check", self.inputs, self.outputs, self.inits)
        opsets = [helper.make_opsetid(d, OPSET if d == "" else 1) for d in sorted(self.domains)]
        m = helper.make_model(graph, opset_imports=opsets, producer_name="gpu_check")
        m.ir_version = 10
        return m

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Fresh values for every graph input."""
        return {name: np.array(gen(rng, shape), order="C") for name, (gen, shape) in self.gens.items()}


@dataclasses.dataclass
class Case:
    op: tuple[str, str]            # the (domain, op) row of the kernel table it tests
    name: str                      # what varies: shapes, attributes
    make: Callable[[np.random.Generator], Graph]
    pattern: bool = False          # an exporter's pattern that fuses into `op`: loaded with optimize=True
    quick: bool = True             # part of --quick
    small: bool = False            # cheap enough to run under compute-sanitizer
    error: bool = False            # the inputs are invalid: both devices must refuse them
    rtol: float | None = None      # None: common.OP_RTOL
    precision: str = "fp32"        # mserve.load's precision on CUDA (other devices run fp32)

    @property
    def optimize(self) -> bool:
        return self.pattern

    @property
    def label(self) -> str:
        op = self.op[1] if not self.op[0] else f"{self.op[0]}.{self.op[1]}"
        return f"{op} {self.name}" + (f" {self.precision}" if self.precision != "fp32" else "")


CASES: list[Case] = []


def case(op: str, name: str, make: Callable[[np.random.Generator], Graph], **kw: Any) -> None:
    """A case of an ONNX operator (the default domain)."""
    CASES.append(Case(("", op), name, make, **kw))


def fused(op: str, name: str, make: Callable[[np.random.Generator], Graph], **kw: Any) -> None:
    """A case of a com.mserve operator: an exporter's pattern that the optimizer fuses into it."""
    CASES.append(Case((MSERVE_DOMAIN, op), name, make, pattern=True, **kw))


def shape_name(*shapes: tuple[int, ...]) -> str:
    return " ".join("(" + ",".join(str(d) for d in s) + ")" for s in shapes)


# ---- element-wise: one input -------------------------------------------------------------------

UNARY_SHAPES = [((7, 13, 3), True, True), ((1,), False, True), ((1 << 20,), True, False)]  # (shape, quick, small)

# (op, attributes, activation_table.h row, its A and B parameters): the activations, with the edge
# values; the row is what mserve._core_cuda.activation() takes for the direct kernel check.
ACTIVATIONS: list[tuple[str, dict[str, Any], str, float | None, float | None]] = [
    ("Relu", {}, "Relu", None, None), ("LeakyRelu", {"alpha": 0.1}, "LeakyRelu", 0.1, None),
    ("Tanh", {}, "Tanh", None, None), ("Sigmoid", {}, "Sigmoid", None, None),
    ("HardSwish", {}, "HardSwish", None, None), ("Gelu", {}, "Gelu", None, None),
    ("Gelu", {"approximate": "tanh"}, "GeluTanh", None, None), ("Elu", {"alpha": 0.7}, "Elu", 0.7, None),
    ("Selu", {}, "Selu", None, None), ("Selu", {"alpha": 1.2, "gamma": 0.9}, "Selu", 1.2, 0.9),
    ("Celu", {"alpha": 1.5}, "Celu", 1.5, None), ("Softplus", {}, "Softplus", None, None),
    ("Softsign", {}, "Softsign", None, None), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, "HardSigmoid", 0.3, 0.4),
    ("Mish", {}, "Mish", None, None), ("ThresholdedRelu", {"alpha": 0.5}, "ThresholdedRelu", 0.5, None),
    ("Shrink", {"lambd": 0.3, "bias": 0.1}, "Shrink", 0.3, 0.1), ("Swish", {"alpha": 0.8}, "Swish", 0.8, None),
]

# (op, input generator, output dtype): the other one-input element-wise operators.
MATH: list[tuple[str, Gen, Any]] = [
    ("Abs", normal(), np.float32), ("Neg", normal(), np.float32), ("Exp", uniform(-10, 10), np.float32),
    ("Log", uniform(0.01, 100), np.float32), ("Sqrt", uniform(0, 100), np.float32),
    ("Reciprocal", nonzero(), np.float32), ("Erf", normal(2), np.float32), ("Floor", normal(5), np.float32),
    ("Ceil", normal(5), np.float32), ("Round", normal(5), np.float32), ("Sin", normal(3), np.float32),
    ("Cos", normal(3), np.float32), ("Sign", small_ints(), np.float32), ("Identity", with_edges(), np.float32),
    ("IsNaN", with_edges(), bool), ("IsInf", with_edges(), bool), ("Not", bools, bool),
]


def _unary(op: str, attrs: dict[str, Any], shape: tuple[int, ...], gen: Gen, in_dtype: Any, out_dtype: Any):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape, gen, in_dtype)
        g.node(op, ["x"], ["y"], **attrs)
        g.output("y", out_dtype)
        return g
    return make


def _attr_name(attrs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in attrs.items())


for _op, _attrs, _row, _a, _b in ACTIVATIONS:
    for _shape, _quick, _small in UNARY_SHAPES:
        case(_op, f"{shape_name(_shape)} {_attr_name(_attrs)}".strip(),
             _unary(_op, _attrs, _shape, with_edges(), np.float32, np.float32), quick=_quick, small=_small)

for _op, _gen, _out in MATH:
    _in = bool if _op == "Not" else np.float32
    for _shape, _quick, _small in UNARY_SHAPES:
        case(_op, shape_name(_shape), _unary(_op, {}, _shape, _gen, _in, _out), quick=_quick, small=_small)


def _clip(shape: tuple[int, ...], lo: float | None, hi: float | None):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape, with_edges(1.0))
        ins = ["x", g.const("lo", np.float32(lo)) if lo is not None else "",
               g.const("hi", np.float32(hi)) if hi is not None else ""]
        while ins[-1] == "":
            ins.pop()
        g.node("Clip", ins, ["y"])
        g.output("y")
        return g
    return make


case("Clip", "(7,13,3) [-0.5, 0.7]", _clip((7, 13, 3), -0.5, 0.7), small=True)
case("Clip", "(1048576,) [0, 6]", _clip((1 << 20,), 0.0, 6.0))
case("Clip", "(33,65) min only", _clip((33, 65), -0.25, None), quick=False)


def _cast(shape: tuple[int, ...], gen: Gen, src: Any, dst: Any):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape, gen, src)
        g.node("Cast", ["x"], ["y"], to=helper.np_dtype_to_tensor_dtype(np.dtype(dst)))
        g.output("y", dst)
        return g
    return make


case("Cast", "int64->float32 (2,129)", _cast((2, 129), small_ints(-1000, 1000, np.int64), np.int64, np.float32),
     small=True)
case("Cast", "bool->float32 (37,65)", _cast((37, 65), bools, bool, np.float32))
case("Cast", "float32->int64 (1000,)", _cast((1000,), normal(100), np.float32, np.int64))
case("Cast", "float32->float16 (3,333)", _cast((3, 333), normal(10), np.float32, np.float16), quick=False)

# ---- element-wise: two or more inputs, broadcasting ---------------------------------------------

# (shape of A, shape of B, quick, small)
BROADCAST = [((37, 129), (37, 129), True, True), ((37, 129), (129,), True, False), ((37, 1), (1, 129), True, False),
             ((), (5, 7, 9), False, False), ((2, 3, 17, 19), (3, 1, 1), True, False),
             ((5, 1, 7), (1, 3, 1), False, False), ((1000003,), (1,), False, False)]

# (op, generator of A, generator of B, output dtype, attributes)
BINARY: list[tuple[str, Gen, Gen, Any, dict[str, Any]]] = [
    ("Add", normal(), normal(), np.float32, {}), ("Sub", normal(), normal(), np.float32, {}),
    ("Mul", normal(), normal(), np.float32, {}), ("Div", normal(), nonzero(), np.float32, {}),
    ("Pow", uniform(0.1, 3), uniform(-2, 2), np.float32, {}), ("Max", small_ints(), normal(), np.float32, {}),
    ("Min", small_ints(), normal(), np.float32, {}), ("Mod", normal(5), nonzero(), np.float32, {"fmod": 1}),
    ("Equal", small_ints(), small_ints(), bool, {}), ("Less", small_ints(), small_ints(), bool, {}),
    ("Greater", small_ints(), small_ints(), bool, {}), ("LessOrEqual", small_ints(), small_ints(), bool, {}),
    ("GreaterOrEqual", small_ints(), small_ints(), bool, {}),
    ("And", bools, bools, bool, {}), ("Or", bools, bools, bool, {}), ("Xor", bools, bools, bool, {}),
]


def _binary(op: str, sa: tuple[int, ...], sb: tuple[int, ...], ga: Gen, gb: Gen, out: Any, attrs: dict[str, Any],
            const_b: bool = False):
    boolean = op in ("And", "Or", "Xor")

    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("a", sa, ga, bool if boolean else np.float32)
        if const_b:
            g.const("b", gb(rng, sb))
        else:
            g.input("b", sb, gb, bool if boolean else np.float32)
        g.node(op, ["a", "b"], ["y"], **attrs)
        g.output("y", out)
        return g
    return make


for _op, _ga, _gb, _out, _attrs in BINARY:
    for _sa, _sb, _quick, _small in BROADCAST:
        case(_op, shape_name(_sa, _sb), _binary(_op, _sa, _sb, _ga, _gb, _out, _attrs), quick=_quick, small=_small)
    if _op in ("Add", "Mul", "Div", "Pow"):  # a constant operand, as exporters write biases and scales
        case(_op, "(3,17,768) const (768,)", _binary(_op, (3, 17, 768), (768,), _ga, _gb, _out, _attrs, True))

for _sa, _sb in [((37, 129), (129,)), ((2, 3, 17, 19), (3, 1, 1)), ((37, 129), (37, 129))]:
    case("PRelu", shape_name(_sa, _sb), _binary("PRelu", _sa, _sb, with_edges(1.0), uniform(0, 0.5), np.float32, {}))


def _variadic(op: str, shapes: list[tuple[int, ...]]):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        names = [g.input(f"x{i}", s, small_ints() if op in ("Max", "Min") else normal()) for i, s in enumerate(shapes)]
        g.node(op, names, ["y"])
        g.output("y")
        return g
    return make


for _op in ("Sum", "Mean", "Max", "Min"):
    case(_op, "3 inputs (4,1,5) (3,1) (5,)", _variadic(_op, [(4, 1, 5), (3, 1), (5,)]))


def _where(sc: tuple[int, ...], sx: tuple[int, ...], sy: tuple[int, ...], fill: float | None = None):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("c", sc, bools, bool)
        x = g.const("x", np.float32(fill)) if fill is not None else g.input("x", sx)
        g.input("y", sy)
        g.node("Where", ["c", x, "y"], ["z"])
        g.output("z")
        return g
    return make


case("Where", "(37,1) (37,129) (129,)", _where((37, 1), (37, 129), (129,)), small=True)
case("Where", "mask fill -1e4 (2,1,1,19) (2,4,17,19)", _where((2, 1, 1, 19), (), (2, 4, 17, 19), -1e4))
case("Where", "(1000003,) same shapes", _where((1000003,), (1000003,), (1000003,)), quick=False)

# ---- products ---------------------------------------------------------------------------------


def _matmul(sa: tuple[int, ...], sb: tuple[int, ...], const_b: bool):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("a", sa)
        if const_b:
            g.weight("b", sb, 1.0 / np.sqrt(sb[-2]))
        else:
            g.input("b", sb)
        g.node("MatMul", ["a", "b"], ["y"])
        g.output("y")
        return g
    return make


for _sa, _sb, _const, _quick in [((1, 768), (768, 768), True, True), ((127, 65), (65, 33), False, True),
                                 ((2, 3, 17, 31), (31, 9), True, True), ((4, 17, 31), (4, 31, 9), False, True),
                                 ((5, 1, 17, 31), (3, 31, 9), False, False), ((33,), (33, 7), False, False),
                                 ((1, 1), (1, 1), False, False), ((256, 1024), (1024, 4096), True, False)]:
    case("MatMul", f"{shape_name(_sa, _sb)}{' B const' if _const else ''}", _matmul(_sa, _sb, _const),
         quick=_quick, small=_sa == (127, 65))


def _gemm(m: int, k: int, n: int, c_shape: tuple[int, ...] | None, **attrs: Any):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("a", (k, m) if attrs.get("transA") else (m, k))
        g.weight("b", (n, k) if attrs.get("transB") else (k, n))
        ins = ["a", "b"]
        if c_shape is not None:
            ins.append(g.const("c", rng.standard_normal(c_shape).astype(np.float32)))
        g.node("Gemm", ins, ["y"], **attrs)
        g.output("y")
        return g
    return make


case("Gemm", "31x65x17 C (17,) transB", _gemm(31, 65, 17, (17,), transB=1), small=True)
case("Gemm", "1x768x3072 C (3072,) transB", _gemm(1, 768, 3072, (3072,), transB=1))
case("Gemm", "31x65x17 C (31,1) transA alpha beta", _gemm(31, 65, 17, (31, 1), transA=1, alpha=0.5, beta=2.0))
case("Gemm", "7x9x5 no C", _gemm(7, 9, 5, None), quick=False)
case("Gemm", "7x9x5 C scalar", _gemm(7, 9, 5, (), transA=1, transB=1), quick=False)


def _linear(shape: tuple[int, ...], n: int, act: str | None, alpha: float | None = None):
    """PyTorch's Linear on 3-D input: MatMul by a constant and Add of a bias [N] (-> FusedMatMul),
    an activation after it fused too; or a constant scale (-> alpha)."""
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        g.weight("w", (shape[-1], n), 1.0 / np.sqrt(shape[-1]))
        g.node("MatMul", ["x", "w"], ["p"])
        g.node("Add", ["p", g.const("b", rng.standard_normal(n).astype(np.float32))], ["s"])
        last = "s"
        if act:
            g.node(act, ["s"], ["h"])
            last = "h"
        if alpha is not None:
            g.node("Mul", [last, g.const("alpha", np.float32(alpha))], ["m"])
            last = "m"
        g.nodes[-1].output[0] = "y"
        g.output("y")
        return g
    return make


def _matmul_transposed_b(sa: tuple[int, ...], sb: tuple[int, ...]):
    """x @ y^T with y a graph input: the Transpose becomes FusedMatMul's transB."""
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("a", sa)
        g.input("b", sb)
        g.node("Transpose", ["b"], ["bt"], perm=[*range(len(sb) - 2), len(sb) - 1, len(sb) - 2])
        g.node("MatMul", ["a", "bt"], ["p"])
        g.node("Div", ["p", g.const("scale", np.float32(8.0))], ["y"])
        g.output("y")
        return g
    return make


fused("FusedMatMul", "Linear (2,17,64)->48 + bias", _linear((2, 17, 64), 48, None), small=True)
fused("FusedMatMul", "Linear (1,128,768)->3072 + bias + Gelu", _linear((1, 128, 768), 3072, "Gelu"))
fused("FusedMatMul", "Linear (3,33,65)->31 + bias + Relu", _linear((3, 33, 65), 31, "Relu"))
fused("FusedMatMul", "(3,17,32) @ (3,29,32)^T / 8", _matmul_transposed_b((3, 17, 32), (3, 29, 32)))

# ---- normalization, softmax --------------------------------------------------------------------


def _softmax(op: str, shape: tuple[int, ...], axis: int):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape, normal(8.0))
        g.node(op, ["x"], ["y"], axis=axis)
        g.output("y")
        return g
    return make


for _op in ("Softmax", "LogSoftmax"):
    for _shape, _axis, _quick in [((3, 7, 129), -1, True), ((4, 33, 5), 1, True), ((2, 12, 128, 128), -1, True),
                                  ((2, 5003), -1, False), ((1, 1), -1, False)]:
        case(_op, f"{shape_name(_shape)} axis {_axis}", _softmax(_op, _shape, _axis), quick=_quick,
             small=_shape == (3, 7, 129))


def _layer_norm(shape: tuple[int, ...], axis: int, eps: float, bias: bool = True):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape, normal(3.0))
        norm_shape = shape[axis:]
        ins = ["x", g.const("scale", rng.uniform(0.5, 1.5, norm_shape).astype(np.float32))]
        if bias:
            ins.append(g.const("bias", rng.standard_normal(norm_shape).astype(np.float32)))
        g.node("LayerNormalization", ins, ["y"], axis=axis, epsilon=eps)
        g.output("y")
        return g
    return make


case("LayerNormalization", "(2,9,768) axis -1", _layer_norm((2, 9, 768), -1, 1e-12), small=True)
case("LayerNormalization", "(3,17,33) axis -1 no bias", _layer_norm((3, 17, 33), -1, 1e-5, bias=False))
case("LayerNormalization", "(4,6,10) axis 1", _layer_norm((4, 6, 10), 1, 1e-5))
case("LayerNormalization", "(1,128,1024) axis -1", _layer_norm((1, 128, 1024), -1, 1e-5), quick=False)


def _rms_norm(shape: tuple[int, ...]):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape, normal(3.0))
        g.node("RMSNormalization", ["x", g.const("scale", rng.uniform(0.5, 1.5, shape[-1:]).astype(np.float32))],
               ["y"], axis=-1, epsilon=1e-6)
        g.output("y")
        return g
    return make


case("RMSNormalization", "(3,17,64) axis -1", _rms_norm((3, 17, 64)))


def _skip_layer_norm(shape: tuple[int, ...], sum_out: bool):
    """Add(x, residual) -> LayerNormalization: one SkipLayerNormalization, which also hands out the
    sum when the graph reads it (pre-LN transformers)."""
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        g.input("r", shape)
        g.node("Add", ["x", "r"], ["s"])
        scale = g.const("scale", rng.uniform(0.5, 1.5, shape[-1:]).astype(np.float32))
        bias = g.const("bias", rng.standard_normal(shape[-1:]).astype(np.float32))
        g.node("LayerNormalization", ["s", scale, bias], ["y"], axis=-1, epsilon=1e-12)
        g.output("y")
        if sum_out:
            g.output("s")
        return g
    return make


fused("SkipLayerNormalization", "(2,9,768)", _skip_layer_norm((2, 9, 768), False), small=True)
fused("SkipLayerNormalization", "(3,17,33) sum read too", _skip_layer_norm((3, 17, 33), True))


def _batch_norm(shape: tuple[int, ...]):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        c = shape[1]
        ins = ["x", g.const("s", rng.uniform(0.5, 1.5, c).astype(np.float32)),
               g.const("b", rng.standard_normal(c).astype(np.float32)),
               g.const("m", rng.standard_normal(c).astype(np.float32)),
               g.const("v", rng.uniform(0.5, 2.0, c).astype(np.float32))]
        g.node("BatchNormalization", ins, ["y"], epsilon=1e-5)
        g.output("y")
        return g
    return make


case("BatchNormalization", "(2,8,5,7)", _batch_norm((2, 8, 5, 7)))
case("BatchNormalization", "(3,20)", _batch_norm((3, 20)), quick=False)

# ---- attention ---------------------------------------------------------------------------------


def _attention_bhsd(b: int, h: int, lq: int, lk: int, d: int):
    """Q [B,H,Lq,D] @ Transpose(K [B,H,Lk,D]) * scale + mask [B,1,1,Lk] -> Softmax -> @ V."""
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("q", (b, h, lq, d))
        g.input("k", (b, h, lk, d))
        g.input("v", (b, h, lk, d))
        g.input("mask", (b, 1, 1, lk), lambda r, s: ((r.random(s) < 0.2) * -10000.0).astype(np.float32))
        g.node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2])
        g.node("MatMul", ["q", "kt"], ["s"])
        g.node("Mul", ["s", g.const("scale", np.float32(1 / np.sqrt(d)))], ["ss"])
        g.node("Add", ["ss", "mask"], ["sm"])
        g.node("Softmax", ["sm"], ["p"], axis=-1)
        g.node("MatMul", ["p", "v"], ["y"])
        g.output("y")
        return g
    return make


def _attention_bshd(b: int, lq: int, lk: int, h: int, d: int):
    """Heads split off [B, L, H, D] by Transposes, as exporters write them; scale by Div, no mask."""
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("q", (b, lq, h, d))
        g.input("k", (b, lk, h, d))
        g.input("v", (b, lk, h, d))
        g.node("Transpose", ["q"], ["qh"], perm=[0, 2, 1, 3])
        g.node("Transpose", ["k"], ["kt"], perm=[0, 2, 3, 1])
        g.node("Transpose", ["v"], ["vh"], perm=[0, 2, 1, 3])
        g.node("MatMul", ["qh", "kt"], ["s"])
        g.node("Div", ["s", g.const("scale", np.float32(np.sqrt(d)))], ["ss"])
        g.node("Softmax", ["ss"], ["p"], axis=-1)
        g.node("MatMul", ["p", "vh"], ["o"])
        g.node("Transpose", ["o"], ["y"], perm=[0, 2, 1, 3])
        g.output("y")
        return g
    return make


fused("MultiHeadAttention", "bhsd (2,4,17|19,32) mask", _attention_bhsd(2, 4, 17, 19, 32),
     small=True)
fused("MultiHeadAttention", "bhsd BERT (1,12,128,64) mask", _attention_bhsd(1, 12, 128, 128, 64))
fused("MultiHeadAttention", "bshd (2,33|33,3,16) /sqrt(d)", _attention_bshd(2, 33, 33, 3, 16))
# The fused kernel runs D (and Dv) <= 128 with Lk <= 512; past either limit the two products do
# (_core_cuda.backend(fused_attention=False) puts every case on them).
fused("MultiHeadAttention", "bhsd (2,4,64|512,128) mask, fused at its limits", _attention_bhsd(2, 4, 64, 512, 128))
fused("MultiHeadAttention", "bshd (3,1|129,8,80) /sqrt(d), fused, one query", _attention_bshd(3, 1, 129, 8, 80),
      small=True)
fused("MultiHeadAttention", "bhsd (1,2,33|513,64) mask, products: Lk > 512", _attention_bhsd(1, 2, 33, 513, 64))
for _p, _tol in (("fp16", 3e-3), ("bf16", 2.5e-2)):  # the tensor-core form; the products on TF32 past its limits
    fused("MultiHeadAttention", "bhsd BERT (1,12,128,64) mask", _attention_bhsd(1, 12, 128, 128, 64), precision=_p,
          rtol=_tol)
    fused("MultiHeadAttention", "bshd (3,1|129,8,80) /sqrt(d), one query", _attention_bshd(3, 1, 129, 8, 80),
          precision=_p, rtol=_tol, small=_p == "fp16")
    fused("MultiHeadAttention", "bhsd (1,2,33|513,64) mask, products", _attention_bhsd(1, 2, 33, 513, 64),
          precision=_p, rtol=_tol, quick=False)
fused("MultiHeadAttention", "bhsd (1,2,16|40,160) mask, products: D > 128", _attention_bhsd(1, 2, 16, 40, 160),
      small=True)

# ---- convolution, pooling ---------------------------------------------------------------------


def _conv(x: tuple[int, ...], m: int, k: tuple[int, int], bias: bool = True, **attrs: Any):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", x)
        group = attrs.get("group", 1)
        ins = ["x", g.weight("w", (m, x[1] // group, *k))]
        if bias:
            ins.append(g.const("b", rng.standard_normal(m).astype(np.float32) * 0.1))
        g.node("Conv", ins, ["y"], **attrs)
        g.output("y")
        return g
    return make


CONVS: list[tuple[str, tuple[int, ...], int, tuple[int, int], dict[str, Any], bool]] = [
    ("3x3 pad 1", (2, 3, 17, 19), 8, (3, 3), {"pads": [1, 1, 1, 1]}, True),
    ("3x3 stride 2", (1, 16, 15, 15), 24, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, True),
    ("1x1", (1, 64, 14, 14), 32, (1, 1), {}, True),
    ("7x7 stem stride 2", (1, 3, 64, 64), 16, (7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}, False),
    ("depthwise 3x3", (1, 16, 15, 15), 16, (3, 3), {"group": 16, "pads": [1, 1, 1, 1]}, True),
    ("grouped 2", (2, 8, 9, 11), 6, (3, 3), {"group": 2}, False),
    ("dilation 2 asymmetric pads", (1, 4, 20, 17), 5, (3, 3), {"dilations": [2, 2], "pads": [2, 1, 0, 2]}, False),
    ("batch 32 3x3", (32, 64, 28, 28), 64, (3, 3), {"pads": [1, 1, 1, 1]}, False),
]
for _name, _x, _m, _k, _attrs, _quick in CONVS:
    case("Conv", f"{_name} {shape_name(_x)}->{_m}", _conv(_x, _m, _k, **_attrs), quick=_quick,
         small=_name == "3x3 pad 1")
case("Conv", "no bias (2,3,9,9)->4", _conv((2, 3, 9, 9), 4, (3, 3), bias=False))

# ---- 16-bit operands on the tensor cores (precision fp16 / bf16): weights converted at load, the
# other operand per run, float32 accumulation. A product of k terms whose operands carry a
# relative rounding of u (2^-11 fp16, 2^-8 bf16) is off by about u * sqrt(2) in relative L2.
PRECISION_RTOL = {"fp16": 2e-3, "bf16": 1.5e-2}
for _p, _tol in PRECISION_RTOL.items():
    case("MatMul", "(128,768) (768,3072) B const", _matmul((128, 768), (768, 3072), True), precision=_p, rtol=_tol)
    case("MatMul", "(4,17,31) (4,31,9)", _matmul((4, 17, 31), (4, 31, 9), False), precision=_p, rtol=_tol,
         small=True)
    case("Gemm", "1x768x3072 C (3072,) transB", _gemm(1, 768, 3072, (3072,), transB=1), precision=_p, rtol=_tol)
    fused("FusedMatMul", "Linear (1,128,768)->3072 + bias + Gelu", _linear((1, 128, 768), 3072, "Gelu"),
          precision=_p, rtol=_tol)
    case("Conv", "3x3 pad 1 (2,64,28,28)->64", _conv((2, 64, 28, 28), 64, (3, 3), pads=[1, 1, 1, 1]), precision=_p,
         rtol=_tol)
    case("Conv", "depthwise 3x3 (1,32,17,13)->32", _conv((1, 32, 17, 13), 32, (3, 3), pads=[1, 1, 1, 1], group=32),
         precision=_p, rtol=_tol, quick=False)


def _conv_block(x: tuple[int, ...], residual: bool, pool: str | None = None):
    """Conv -> Relu [-> Conv -> Add(input) -> Relu] [-> MaxPool / AveragePool]: channels-last convs
    (NhwcConv, residual and activation fused) between two layout changes."""
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", x)
        c = x[1]
        g.node("Conv", ["x", g.weight("w1", (c, c, 3, 3)), g.const("b1", np.zeros(c, np.float32) + 0.1)], ["c1"],
               pads=[1, 1, 1, 1])
        g.node("Relu", ["c1"], ["r1"])
        last = "r1"
        if residual:
            g.node("Conv", ["r1", g.weight("w2", (c, c, 3, 3))], ["c2"], pads=[1, 1, 1, 1])
            g.node("Add", ["c2", "x"], ["s"])
            g.node("Relu", ["s"], ["r2"])
            last = "r2"
        if pool == "max":
            g.node("MaxPool", [last], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
            last = "p"
        elif pool == "avg":
            g.node("AveragePool", [last], ["p"], kernel_shape=[2, 2], strides=[2, 2])
            last = "p"
        g.nodes[-1].output[0] = "y"
        g.output("y")
        return g
    return make


fused("NhwcConv", "Conv+Relu (2,8,13,11)", _conv_block((2, 8, 13, 11), False), small=True)
fused("NhwcConv", "residual block (1,16,14,14)", _conv_block((1, 16, 14, 14), True))
fused("NhwcMaxPool", "Conv+Relu+MaxPool 3x3/2 (1,8,15,15)", _conv_block((1, 8, 15, 15), False, "max"))
fused("NhwcAveragePool", "Conv+Relu+AveragePool 2x2/2 (1,8,16,16)", _conv_block((1, 8, 16, 16), False, "avg"))
for _p, _tol in PRECISION_RTOL.items():
    fused("NhwcConv", "residual block (1,16,14,14)", _conv_block((1, 16, 14, 14), True), precision=_p, rtol=_tol)


def _pool(op: str, x: tuple[int, ...], **attrs: Any):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", x)
        g.node(op, ["x"], ["y"], **attrs)
        g.output("y")
        return g
    return make


case("MaxPool", "3x3/2 pad 1 (2,8,17,19)", _pool("MaxPool", (2, 8, 17, 19), kernel_shape=[3, 3], strides=[2, 2],
                                                  pads=[1, 1, 1, 1]), small=True)
case("MaxPool", "2x2/2 ceil (1,4,15,15)", _pool("MaxPool", (1, 4, 15, 15), kernel_shape=[2, 2], strides=[2, 2],
                                                 ceil_mode=1))
case("AveragePool", "3x3/1 pad 1 exclude pad (2,8,17,19)",
     _pool("AveragePool", (2, 8, 17, 19), kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
case("AveragePool", "3x3/2 pad 1 include pad (1,4,15,15)",
     _pool("AveragePool", (1, 4, 15, 15), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1))
case("GlobalAveragePool", "(2,64,7,7)", _pool("GlobalAveragePool", (2, 64, 7, 7)))
case("GlobalAveragePool", "(32,2048,7,7)", _pool("GlobalAveragePool", (32, 2048, 7, 7)), quick=False)
case("GlobalMaxPool", "(2,33,5,3)", _pool("GlobalMaxPool", (2, 33, 5, 3)))

# ---- indexing, layout ---------------------------------------------------------------------------


def _gather(data: tuple[int, ...], idx: tuple[int, ...], axis: int, const_data: bool, bad: bool = False):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        if const_data:
            g.const("data", rng.standard_normal(data).astype(np.float32))
        else:
            g.input("data", data)
        n = data[axis]
        gen: Gen = (lambda r, s: np.full(s, n, np.int64)) if bad else indices(n)
        g.input("i", idx, gen, np.int64)
        g.node("Gather", ["data", "i"], ["y"], axis=axis)
        g.output("y")
        return g
    return make


case("Gather", "embedding (30522,64) const [2,37]", _gather((30522, 64), (2, 37), 0, True))
case("Gather", "axis 1 (7,33,5) [4]", _gather((7, 33, 5), (4,), 1, False), small=True)
case("Gather", "scalar index (9,17)", _gather((9, 17), (), 0, False))
case("Gather", "index out of range", _gather((10, 4), (3,), 0, True, bad=True), error=True)


def _transpose(shape: tuple[int, ...], perm: list[int]):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        g.node("Transpose", ["x"], ["y"], perm=perm)
        g.output("y")
        return g
    return make


for _shape, _perm, _quick in [((2, 3, 4, 5), [0, 2, 1, 3], True), ((1, 128, 12, 64), [0, 2, 1, 3], True),
                              ((2, 3, 17, 19), [0, 2, 3, 1], True), ((33, 65), [1, 0], True),
                              ((2, 3, 4, 5), [3, 2, 1, 0], False), ((1025, 1023), [1, 0], False)]:
    case("Transpose", f"{shape_name(_shape)} perm {_perm}", _transpose(_shape, _perm), quick=_quick,
         small=_shape == (33, 65))


def _reduce(op: str, shape: tuple[int, ...], axes: list[int] | None, keep: int, gen: Gen):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape, gen)
        ins = ["x"] + ([g.const("axes", np.array(axes, np.int64))] if axes is not None else [])
        g.node(op, ins, ["y"], keepdims=keep)
        g.output("y")
        return g
    return make


REDUCES = [("ReduceMean", normal()), ("ReduceSum", normal()), ("ReduceMax", normal()), ("ReduceMin", normal()),
           ("ReduceProd", uniform(0.9, 1.1)), ("ReduceSumSquare", normal()), ("ReduceL2", normal()),
           ("ReduceL1", normal()), ("ReduceLogSumExp", normal(3))]
for _op, _gen in REDUCES:
    for _shape, _axes, _keep, _quick in [((3, 17, 768), [-1], 1, True), ((4, 33, 5), [1], 0, True),
                                         ((2, 64, 7, 7), [2, 3], 1, True), ((2, 3, 4, 5), None, 1, False)]:
        case(_op, f"{shape_name(_shape)} axes {_axes if _axes is not None else 'all'} keepdims {_keep}",
             _reduce(_op, _shape, _axes, _keep, _gen), quick=_quick, small=_shape == (4, 33, 5))


def _arg(op: str, shape: tuple[int, ...], axis: int, keep: int):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        g.node(op, ["x"], ["y"], axis=axis, keepdims=keep)
        g.output("y", np.int64)
        return g
    return make


for _op in ("ArgMax", "ArgMin"):
    case(_op, "(4,33,5) axis 1", _arg(_op, (4, 33, 5), 1, 1))
    case(_op, "(7,30522) axis -1 keepdims 0", _arg(_op, (7, 30522), -1, 0))


def _concat(shapes: list[tuple[int, ...]], axis: int):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        names = [g.input(f"x{i}", s) for i, s in enumerate(shapes)]
        g.node("Concat", names, ["y"], axis=axis)
        g.output("y")
        return g
    return make


case("Concat", "axis 1 (2,3,5) (2,7,5) (2,1,5)", _concat([(2, 3, 5), (2, 7, 5), (2, 1, 5)], 1), small=True)
case("Concat", "axis -1 (4,33) (4,65)", _concat([(4, 33), (4, 65)], -1))
case("Concat", "axis 0 (1,128,768) x2", _concat([(1, 128, 768), (1, 128, 768)], 0))


def _slice(shape: tuple[int, ...], starts: list[int], ends: list[int], axes: list[int], steps: list[int]):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        consts = [g.const(n, np.array(v, np.int64)) for n, v in
                  (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))]
        g.node("Slice", ["x", *consts], ["y"])
        g.output("y")
        return g
    return make


case("Slice", "(10,20,30) [1:9:2, :, -5:]", _slice((10, 20, 30), [1, -5], [9, 1 << 30], [0, 2], [2, 1]), small=True)
case("Slice", "(33,65) reversed rows", _slice((33, 65), [-1], [-(1 << 30)], [0], [-1]))
case("Slice", "(1,512,768) first 128", _slice((1, 512, 768), [0], [128], [1], [1]))


def _split(shape: tuple[int, ...], axis: int, sizes: list[int]):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        outs = [f"y{i}" for i in range(len(sizes))]
        g.node("Split", ["x", g.const("split", np.array(sizes, np.int64))], outs, axis=axis)
        for o in outs:
            g.output(o)
        return g
    return make


case("Split", "(2,17,2304) axis -1 into 3x768", _split((2, 17, 2304), -1, [768, 768, 768]))
case("Split", "(10,7) axis 0 into 1,4,5", _split((10, 7), 0, [1, 4, 5]))


def _pad(shape: tuple[int, ...], pads: list[int], mode: str):
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        ins = ["x", g.const("pads", np.array(pads, np.int64))]
        if mode == "constant":
            ins.append(g.const("value", np.float32(-1.5)))
        g.node("Pad", ins, ["y"], mode=mode)
        g.output("y")
        return g
    return make


case("Pad", "constant (2,3,7,9)", _pad((2, 3, 7, 9), [0, 0, 1, 2, 0, 0, 3, 1], "constant"))
case("Pad", "reflect (1,4,6,5)", _pad((1, 4, 6, 5), [0, 0, 2, 1, 0, 0, 1, 2], "reflect"))
case("Pad", "edge (3,17)", _pad((3, 17), [1, 2, 2, 1], "edge"))


def _with_const(op: str, shape: tuple[int, ...], const: np.ndarray, **attrs: Any):
    """An op of a data input and a constant int64 second input (shape, repeats, axes)."""
    def make(rng: np.random.Generator) -> Graph:
        g = Graph(rng)
        g.input("x", shape)
        g.node(op, ["x", g.const("c", const)], ["y"], **attrs)
        g.output("y")
        return g
    return make


case("Expand", "(3,1) to (2,3,4)", _with_const("Expand", (3, 1), np.array([2, 3, 4], np.int64)))
case("Tile", "(3,5) x (2,3)", _with_const("Tile", (3, 5), np.array([2, 3], np.int64)))
case("Reshape", "(2,17,768) to (0,-1,12,64)", _with_const("Reshape", (2, 17, 768), np.array([0, -1, 12, 64], np.int64)))
case("Unsqueeze", "(3,5) axes [0,-1]", _with_const("Unsqueeze", (3, 5), np.array([0, -1], np.int64)))
case("Squeeze", "(1,3,1,5) axes [0,2]", _with_const("Squeeze", (1, 3, 1, 5), np.array([0, 2], np.int64)))
case("Flatten", "(2,3,4,5) axis 2", _unary("Flatten", {"axis": 2}, (2, 3, 4, 5), normal(), np.float32, np.float32))


def cases_for(ops: set[tuple[str, str]] | None, quick: bool, small_only: bool = False) -> list[Case]:
    """The cases of `ops` (every case when None), only the quick ones with quick, only the cheap
    ones with small_only (one per op)."""
    chosen = [c for c in CASES if (ops is None or c.op in ops) and (c.quick or not quick)]
    if small_only:
        seen: set[tuple[str, str]] = set()
        chosen = [c for c in chosen if c.small and not (c.op in seen or seen.add(c.op))]  # type: ignore[func-returns-value]
    return chosen


def covered_ops() -> set[tuple[str, str]]:
    return {c.op for c in CASES}

