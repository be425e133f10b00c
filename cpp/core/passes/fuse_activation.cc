// Moves an activation into the Conv, Gemm or MatMul that feeds it (see kernels/fused_activation.h),
// so the activation runs on the product while it is still in cache (a oneDNN post-op, or a pass
// right after the GEMM) instead of as a separate node over memory; and a residual Add (with the
// activation after it) into the NhwcConv that feeds it (a oneDNN sum post-op).
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

// The activation `n` computes when it is one that fuses (activation_table.h); kind kNone
// otherwise. Clip fuses only with constant (or absent) min and max (inputs: the importer turns
// Clip-6's attributes into inputs).
FusedActivation fusable_activation(const Graph& g, const Node& n) {
  if (n.inputs.empty() || n.outputs.size() != 1) return {};
  FusedActivation act = FusedActivation::of_operator(n);
  if (act.kind == FusedActivation::Kind::kNone || !FusedActivation::info(act.kind).fuses) return {};
  if (act.kind == FusedActivation::Kind::kClip) {
    const FusedActivation::Info& clip = FusedActivation::info(act.kind);
    if (!scalar_input(g, n, 1, clip.alpha_default, &act.alpha) || !scalar_input(g, n, 2, clip.beta_default, &act.beta))
      return {};
  } else if (n.inputs.size() != 1) {
    return {};
  }
  return act;
}

bool is_float(DType t) { return t == DType::kFloat32 || t == DType::kFloat64; }

// `p` computes in float32 or float64 and applies a fused activation to its output.
bool takes_activation(const Graph& g, const Node& p) {
  if (FusedActivation::fused(p) || p.outputs.size() != 1) return false;
  if (p.domain == "com.mserve") return p.op_type == "FusedMatMul";
  if (!p.domain.empty()) return false;
  if (p.op_type == "Conv" || p.op_type == "Gemm") return true;
  if (p.op_type != "MatMul" || p.inputs.size() != 2) return false;
  // MatMul also multiplies integers: fuse only where the element type is known to be float.
  auto it = g.initializers.find(p.inputs[1]);
  if (it != g.initializers.end()) return is_float(it->second.dtype());
  return p.inputs[0] != kNoValue && is_float(g.values[p.inputs[0]].dtype);
}

// x * Sigmoid(x) (SiLU, as exporters write EfficientNet's activation) becomes Swish(x) (alpha 1),
// an activation that fuses; the Sigmoid must feed only that Mul.
void swish_from_sigmoid(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (Node& mul : g.nodes) {
    if (mul.op_type != "Mul" || !mul.domain.empty() || mul.inputs.size() != 2 || mul.outputs.size() != 1) continue;
    for (int side = 0; side < 2; ++side) {
      const int s = mul.inputs[side], x = mul.inputs[1 - side];
      if (s == kNoValue || x == kNoValue || ix.producer[s] < 0 || ix.uses[s] != 1) continue;
      const Node& sig = g.nodes[ix.producer[s]];
      if (sig.op_type != "Sigmoid" || !sig.domain.empty() || sig.inputs.size() != 1 || sig.inputs[0] != x) continue;
      removed[ix.producer[s]] = true;
      mul.op_type = "Swish";
      mul.opset = 24;  // the first opset with Swish; alpha defaults to 1
      mul.inputs = {x};
      break;
    }
  }
  erase_nodes(g, removed);
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
      if (conv.op_type != "NhwcConv" || conv.domain != "com.mserve" || FusedActivation::has_residual(conv) ||
          conv.outputs.size() != 1)
        continue;
      if (conv.inputs.size() < 3) conv.inputs.resize(3, kNoValue);
      conv.inputs.push_back(add.inputs[1 - side]);
      FusedActivation::write_residual(conv);
      conv.outputs[0] = add.outputs[0];
      removed[i] = true;
      // The activation after the sum, when it is the sum's only reader.
      const int s = add.outputs[0];
      if (const int r = ix.sole_reader(s); r >= 0) {
        Node& act = g.nodes[r];
        const FusedActivation f = fusable_activation(g, act);
        if (act.inputs[0] == s && f.kind != FusedActivation::Kind::kNone) {
          f.write(conv, FusedActivation::kAfterActivationAttr);
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
  swish_from_sigmoid(g);
  GraphIndex ix(g);
  std::vector<int>&uses = ix.uses, &producer = ix.producer;
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& act = g.nodes[i];
    const FusedActivation f = fusable_activation(g, act);
    if (f.kind == FusedActivation::Kind::kNone || act.inputs[0] == kNoValue) continue;
    const int x = act.inputs[0];
    if (uses[x] != 1 || producer[x] < 0) continue;
    Node& p = g.nodes[producer[x]];
    if (!takes_activation(g, p) || p.outputs[0] != x) continue;
    f.write(p);
    p.outputs[0] = act.outputs[0];
    producer[act.outputs[0]] = producer[x];
    removed[i] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
