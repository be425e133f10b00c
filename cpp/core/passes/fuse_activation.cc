// Moves an activation into the Conv that feeds it (see kernels/fused_activation.h), so the
// activation runs on the Conv's output while it is still in cache (a oneDNN post-op, or a pass
// right after the GEMM) instead of as a separate node over memory.
#include <limits>
#include <vector>

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
  auto it = g.initializers.find(n.inputs[i]);
  if (it == g.initializers.end() || it->second.dtype() != DType::kFloat32 || it->second.numel() != 1) return false;
  *out = it->second.data<float>()[0];
  return true;
}

// The activation `n` as fused attributes; false when `n` is not one that fuses.
bool activation_of(const Graph& g, const Node& n, std::string* kind, float* alpha, float* beta) {
  if (!n.domain.empty() || n.inputs.empty() || n.outputs.size() != 1) return false;
  *alpha = *beta = 0;
  *kind = n.op_type;
  if (n.op_type == "Relu" || n.op_type == "HardSwish") return n.inputs.size() == 1;
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

}  // namespace

Status fuse_conv_activation(Graph& g) {
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
    Node& conv = g.nodes[producer[x]];
    if (conv.op_type != "Conv" || !conv.domain.empty() || conv.attr("mserve_activation") || conv.outputs.size() != 1 ||
        conv.outputs[0] != x)
      continue;
    conv.attrs["mserve_activation"] = Attribute::of_string(kind);
    conv.attrs["mserve_activation_alpha"] = Attribute::of_float(alpha);
    conv.attrs["mserve_activation_beta"] = Attribute::of_float(beta);
    conv.outputs[0] = act.outputs[0];
    producer[act.outputs[0]] = producer[x];
    removed[i] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
