// What onnxruntime's dynamic quantizer writes for every MatMul with constant weights,
//   (a_q, a_scale, a_zp) = DynamicQuantizeLinear(x)
//   y = Cast<float>(MatMulInteger(a_q, B, a_zp, b_zp)) * Mul(a_scale, b_scale) [+ bias]
// becomes com.microsoft MatMulIntegerToFloat(a_q, B, a_scale, b_scale, a_zp, b_zp, bias): one
// packed int8 GEMM with the scaling and bias in its finishing pass, instead of an int32 tensor
// written, cast, scaled and added. The arithmetic is the same float operations in the same order:
// float(acc) * float(a_scale * b_scale) + bias. B must be a constant int8/uint8 matrix, b_scale
// and bias constant vectors (1 or N values, rank <= 1), and the scale product's other factor one
// value (DynamicQuantizeLinear's scale, or a constant). A scale that is one constant is split as
// (scale, 1) or (1, scale).
//
// A static QDQ model's MatMul, MatMul(DequantizeLinear(x_q), DequantizeLinear(w_q)) [+ bias], with
// x per tensor and w a constant int8/uint8 matrix (scale and zero point per tensor or per column),
// becomes the same op (fuse_qdq_matmul): the product of the integers scaled once, where the graph
// sums products of dequantized floats (float32 rounding apart, the same values).
#include <string>
#include <vector>

#include "core/kernels/int8_gemm.h"
#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

const Tensor* constant(const Graph& g, int v) {
  if (v == kNoValue) return nullptr;
  auto it = g.initializers.find(v);
  return it == g.initializers.end() ? nullptr : &it->second;
}

bool float_vector(const Tensor* t, int64_t n) {
  return t && t->dtype() == DType::kFloat32 && t->rank() <= 1 && (t->numel() == 1 || t->numel() == n);
}

// Whether v is known to hold one float32 value: a constant, or DynamicQuantizeLinear's scale.
bool one_value(const Graph& g, const GraphIndex& ix, int v) {
  if (const Tensor* t = constant(g, v)) return t->dtype() == DType::kFloat32 && t->numel() == 1 && t->rank() <= 1;
  const int p = ix.producer[v];
  if (p < 0) return false;
  const Node& n = g.nodes[p];
  return n.op_type == "DynamicQuantizeLinear" && n.domain.empty() && n.outputs.size() > 1 && n.outputs[1] == v;
}

}  // namespace

Status fuse_matmul_integer(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& mm = g.nodes[i];
    if (mm.op_type != "MatMulInteger" || !mm.domain.empty() || mm.inputs.size() < 2 || mm.outputs.size() != 1) continue;
    const Tensor* b = constant(g, mm.inputs[1]);
    if (!b || b->rank() != 2 || (b->dtype() != DType::kInt8 && b->dtype() != DType::kUInt8)) continue;
    const int64_t N = b->dim(1);
    if (mm.inputs.size() > 3 && mm.inputs[3] != kNoValue && !constant(g, mm.inputs[3])) continue;
    // Cast to float32, then the scale.
    const int ci = ix.sole_reader(mm.outputs[0]);
    if (ci < 0 || removed[ci]) continue;
    const Node& cast = g.nodes[ci];
    if (cast.op_type != "Cast" || !cast.domain.empty() || cast.attr_int("to", 0) != 1) continue;
    const int mi = ix.sole_reader(cast.outputs[0]);
    if (mi < 0 || removed[mi]) continue;
    const Node& mul = g.nodes[mi];
    if (mul.op_type != "Mul" || !mul.domain.empty() || mul.inputs.size() != 2) continue;
    const int scale = mul.inputs[0] == cast.outputs[0] ? mul.inputs[1] : mul.inputs[0];
    if (scale == kNoValue || (mul.inputs[0] == cast.outputs[0]) == (mul.inputs[1] == cast.outputs[0])) continue;
    int a_scale = kNoValue, b_scale = kNoValue, scale_node = -1;
    if (const Tensor* s = constant(g, scale)) {
      if (!float_vector(s, N)) continue;
      auto one = Tensor::empty(DType::kFloat32, Shape{});
      if (!one.ok()) continue;
      one.value().data<float>()[0] = 1.0f;
      const int id = add_initializer(g, g.values[scale].name + "/mserve_one", std::move(one).value());
      ix = GraphIndex(g);  // the value tables grew
      a_scale = s->numel() == 1 ? scale : id;
      b_scale = s->numel() == 1 ? id : scale;
    } else {
      const int si = ix.producer[scale];
      if (si < 0) continue;
      const Node& sm = g.nodes[si];
      if (sm.op_type != "Mul" || !sm.domain.empty() || sm.inputs.size() != 2) continue;
      for (int side = 0; side < 2 && a_scale == kNoValue; ++side)
        if (one_value(g, ix, sm.inputs[side]) && float_vector(constant(g, sm.inputs[1 - side]), N)) {
          a_scale = sm.inputs[side];
          b_scale = sm.inputs[1 - side];
        }
      if (a_scale == kNoValue) continue;
      if (ix.sole_reader(scale) == mi) scale_node = si;
    }
    // A constant bias of N values after it.
    int out = mul.outputs[0], bias = kNoValue, ai = ix.sole_reader(out);
    if (ai >= 0 && !removed[ai]) {
      const Node& add = g.nodes[ai];
      if (add.op_type == "Add" && add.domain.empty() && add.inputs.size() == 2) {
        const int other = add.inputs[0] == out ? add.inputs[1] : add.inputs[0];
        const Tensor* t = constant(g, other);
        if (t && t->dtype() == DType::kFloat32 && t->rank() == 1 && t->numel() == N) {
          bias = other;
          out = add.outputs[0];
          removed[ai] = true;
        }
      }
    }
    const int a_zp = mm.inputs.size() > 2 ? mm.inputs[2] : kNoValue;
    const int b_zp = mm.inputs.size() > 3 ? mm.inputs[3] : kNoValue;
    mm.op_type = "MatMulIntegerToFloat";
    mm.domain = "com.microsoft";
    mm.opset = 1;
    mm.inputs = {mm.inputs[0], mm.inputs[1], a_scale, b_scale, a_zp, b_zp, bias};
    while (mm.inputs.back() == kNoValue) mm.inputs.pop_back();
    mm.outputs[0] = out;
    removed[ci] = removed[mi] = true;
    if (scale_node >= 0) removed[scale_node] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve

namespace mserve {
namespace {

// The per-tensor DequantizeLinear writing v (constant scale and zero point), or null.
const Node* per_tensor_dq(const Graph& g, const GraphIndex& ix, int v) {
  if (v == kNoValue || ix.producer[v] < 0) return nullptr;
  const Node& d = g.nodes[ix.producer[v]];
  return d.op_type == "DequantizeLinear" && d.domain.empty() && per_tensor_8bit(g, d) ? &d : nullptr;
}

// The DequantizeLinear of a constant 8-bit [K, N] matrix writing v, per tensor or per column.
const Node* weight_dq(const Graph& g, const GraphIndex& ix, int v) {
  if (v == kNoValue || ix.producer[v] < 0) return nullptr;
  const Node& d = g.nodes[ix.producer[v]];
  if (d.op_type != "DequantizeLinear" || !d.domain.empty() || d.attr_int("block_size", 0) != 0) return nullptr;
  const Tensor *w = input_constant(g, d, 0), *s = input_constant(g, d, 1), *z = input_constant(g, d, 2);
  if (!w || !s || w->rank() != 2 || (w->dtype() != DType::kInt8 && w->dtype() != DType::kUInt8)) return nullptr;
  if (!input_absent(d, 2) && !z) return nullptr;
  const int64_t N = w->dim(1), axis = d.attr_int("axis", 1);
  if (s->dtype() != DType::kFloat32 || s->rank() > 1) return nullptr;
  if (s->numel() != 1 && !(s->numel() == N && (axis == 1 || axis == -1))) return nullptr;
  if (z && z->numel() != s->numel()) return nullptr;
  return &d;
}

}  // namespace

Status fuse_qdq_matmul(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& mm = g.nodes[i];
    if (mm.op_type != "MatMul" || !mm.domain.empty() || mm.inputs.size() != 2 || mm.outputs.size() != 1) continue;
    const Node* dx = per_tensor_dq(g, ix, mm.inputs[0]);
    const Node* dw = weight_dq(g, ix, mm.inputs[1]);
    if (!dx || !dw) continue;
    const int64_t N = input_constant(g, *dw, 0)->dim(1);
    int out = mm.outputs[0], bias = kNoValue;
    const int ai = ix.sole_reader(out);
    if (ai >= 0 && !removed[ai]) {
      const Node& add = g.nodes[ai];
      if (add.op_type == "Add" && add.domain.empty() && add.inputs.size() == 2 && add.inputs[0] != add.inputs[1]) {
        const int other = add.inputs[0] == out ? add.inputs[1] : add.inputs[0];
        const Tensor* t = input_constant(g, add, add.inputs[0] == out ? 1 : 0);
        if (t && t->dtype() == DType::kFloat32 && t->rank() == 1 && t->numel() == N) {
          bias = other;
          out = add.outputs[0];
          removed[ai] = true;
        }
      }
    }
    std::vector<int> ins = {dx->inputs[0], dw->inputs[0], dx->inputs[1],
                            dw->inputs[1], dx->inputs[2], input_absent(*dw, 2) ? kNoValue : dw->inputs[2],
                            bias};
    while (ins.back() == kNoValue) ins.pop_back();
    for (const Node* d : {dx, dw})
      if (ix.sole_reader(d->outputs[0]) == static_cast<int>(i)) removed[d - g.nodes.data()] = true;
    mm.op_type = "MatMulIntegerToFloat";
    mm.domain = "com.microsoft";
    mm.opset = 1;
    mm.inputs = ins;
    mm.outputs[0] = out;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
