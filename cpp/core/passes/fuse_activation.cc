// Moves an activation into the Conv, Gemm or MatMul that feeds it (see kernels/fused_activation.h),
// so the activation runs on the product while it is still in cache (a oneDNN post-op, or a pass
// right after the GEMM) instead of as a separate node over memory; and a residual Add (with the
// activation after it) into the NhwcConv that feeds it (a oneDNN sum post-op).
#include <limits>
#include <vector>

#include "core/kernels/fused_activation.h"
#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

// A constant float32 scalar input, or `def` when the optional input is absent; false when the
// input is present but not a constant float32 scalar.
bool scalar_input(const Graph& g, const Node& n, size_t i, float def, float* out) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) {
    *out = def;
    return true;
  }
  return float_scalar(g, n.inputs[i], out);
}

// The activation `n` as fused attributes; false when `n` is not one that fuses.
bool activation_of(const Graph& g, const Node& n, std::string* kind, float* alpha, float* beta) {
  if (!n.domain.empty() || n.inputs.empty() || n.outputs.size() != 1) return false;
  *alpha = *beta = 0;
  *kind = n.op_type;
  if (n.op_type == "Relu" || n.op_type == "HardSwish" || n.op_type == "Tanh" || n.op_type == "Sigmoid")
    return n.inputs.size() == 1;
  if (n.op_type == "Gelu") {
    const std::string approx = n.attr_string("approximate", "none");
    if (approx == "tanh") *kind = "GeluTanh";
    return n.inputs.size() == 1 && (approx == "none" || approx == "tanh");
  }
  if (n.op_type == "LeakyRelu") {
    *alpha = n.attr_float("alpha", 0.01f);
    return n.inputs.size() == 1;
  }
  if (n.op_type == "Clip") {
    const float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (n.opset < 11) {
      *alpha = n.attr_float("min", lo);
      *beta = n.attr_float("max", hi);
      return n.inputs.size() == 1;
    }
    return scalar_input(g, n, 1, lo, alpha) && scalar_input(g, n, 2, hi, beta);
  }
  return false;
}

bool is_float(DType t) { return t == DType::kFloat32 || t == DType::kFloat64; }

// `p` computes in float32 or float64 and applies a fused activation to its output.
bool takes_activation(const Graph& g, const Node& p) {
  if (p.attr("mserve_activation") || p.outputs.size() != 1) return false;
  if (p.domain == "com.mserve") return p.op_type == "FusedMatMul";
  if (!p.domain.empty()) return false;
  if (p.op_type == "Conv" || p.op_type == "Gemm") return true;
  if (p.op_type != "MatMul" || p.inputs.size() != 2) return false;
  // MatMul also multiplies integers: fuse only where the element type is known to be float.
  auto it = g.initializers.find(p.inputs[1]);
  if (it != g.initializers.end()) return is_float(it->second.dtype());
  return p.inputs[0] != kNoValue && is_float(g.values[p.inputs[0]].dtype);
}

void set_activation(Node& n, const std::string& prefix, const std::string& kind, float alpha, float beta) {
  n.attrs[prefix] = Attribute::of_string(kind);
  n.attrs[prefix + "_alpha"] = Attribute::of_float(alpha);
  n.attrs[prefix + "_beta"] = Attribute::of_float(beta);
}

}  // namespace

Status fuse_conv_residual(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& add = g.nodes[i];
    if (add.op_type != "Add" || !add.domain.empty() || add.inputs.size() != 2 || add.outputs.size() != 1 ||
        add.inputs[0] == kNoValue || add.inputs[1] == kNoValue || add.inputs[0] == add.inputs[1])
      continue;
    for (int side = 0; side < 2; ++side) {
      const int c = add.inputs[side];
      if (ix.uses[c] != 1 || ix.producer[c] < 0 || removed[ix.producer[c]]) continue;
      Node& conv = g.nodes[ix.producer[c]];
      if (conv.op_type != "NhwcConv" || conv.domain != "com.mserve" || conv.attr("mserve_residual") ||
          conv.outputs.size() != 1)
        continue;
      if (conv.inputs.size() < 3) conv.inputs.resize(3, kNoValue);
      conv.inputs.push_back(add.inputs[1 - side]);
      conv.attrs["mserve_residual"] = Attribute::of_int(1);
      conv.outputs[0] = add.outputs[0];
      removed[i] = true;
      // The activation after the sum, when it is the sum's only reader.
      const int s = add.outputs[0];
      std::string kind;
      float alpha, beta;
      if (const int r = ix.sole_reader(s); r >= 0) {
        Node& act = g.nodes[r];
        if (act.inputs[0] == s && activation_of(g, act, &kind, &alpha, &beta)) {
          set_activation(conv, "mserve_after_activation", kind, alpha, beta);
          conv.outputs[0] = act.outputs[0];
          removed[r] = true;
        }
      }
      break;
    }
  }
  erase_nodes(g, removed);
  return Status::OK();
}

Status fuse_activation(Graph& g) {
  GraphIndex ix(g);
  std::vector<int>&uses = ix.uses, &producer = ix.producer;
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& act = g.nodes[i];
    std::string kind;
    float alpha, beta;
    if (act.inputs.empty() || act.inputs[0] == kNoValue || !activation_of(g, act, &kind, &alpha, &beta)) continue;
    const int x = act.inputs[0];
    if (uses[x] != 1 || producer[x] < 0) continue;
    Node& p = g.nodes[producer[x]];
    if (!takes_activation(g, p) || p.outputs[0] != x) continue;
    set_activation(p, "mserve_activation", kind, alpha, beta);
    p.outputs[0] = act.outputs[0];
    producer[act.outputs[0]] = producer[x];
    removed[i] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
