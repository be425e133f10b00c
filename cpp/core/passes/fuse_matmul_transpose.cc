// Folds what surrounds a MatMul into com.mserve.FusedMatMul's attributes (kernels/ops/matmul.cc):
//  - a Transpose that swaps the last two dims of an operand (perm [0, .., r-1, r-2]) becomes
//    transA / transB: the GEMM reads the operand in its stored layout instead of a transposed
//    copy (x @ x^T in recommenders, Q K^T left outside fused attention);
//  - a Mul or Div of the product by a constant float32 scalar becomes alpha.
// Only Transposes and products read by nothing else are folded.
#include <vector>

#include "core/kernels/fused_activation.h"
#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

bool swaps_last_two(const Node& t) {
  const Attribute* a = t.attr("perm");
  if (!a || a->ints.size() < 2) return false;
  const int64_t r = static_cast<int64_t>(a->ints.size());
  for (int64_t i = 0; i < r - 2; ++i)
    if (a->ints[i] != i) return false;
  return a->ints[r - 2] == r - 1 && a->ints[r - 1] == r - 2;
}

bool is_matmul(const Node& n) {
  return (n.op_type == "MatMul" && n.domain.empty()) || (n.op_type == "FusedMatMul" && n.domain == "com.mserve");
}

void make_fused(Node& n) {
  if (n.domain == "com.mserve") return;
  n.op_type = "FusedMatMul";
  n.domain = "com.mserve";
  n.opset = 1;
}

}  // namespace

Status fuse_matmul_transpose(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& mm = g.nodes[i];
    if (!is_matmul(mm) || mm.inputs.size() < 2 || mm.outputs.size() != 1) continue;
    for (int side = 0; side < 2; ++side) {
      const int v = mm.inputs[side];
      if (v == kNoValue || ix.uses[v] != 1 || ix.producer[v] < 0) continue;
      const size_t ti = static_cast<size_t>(ix.producer[v]);
      const Node& t = g.nodes[ti];
      if (t.op_type != "Transpose" || !t.domain.empty() || removed[ti] || !swaps_last_two(t)) continue;
      make_fused(mm);
      const char* name = side == 0 ? "transA" : "transB";
      mm.attrs[name] = Attribute::of_int(mm.attr_int(name, 0) != 0 ? 0 : 1);
      mm.inputs[side] = t.inputs[0];
      removed[ti] = true;
    }
  }
  // Scalar scales of the products (a second sweep: the index above is stale for the rewired
  // Transposes, but not for the MatMul outputs used here).
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& s = g.nodes[i];
    if ((s.op_type != "Mul" && s.op_type != "Div") || !s.domain.empty() || s.inputs.size() != 2 ||
        s.outputs.size() != 1)
      continue;
    for (int side = 0; side < (s.op_type == "Mul" ? 2 : 1); ++side) {
      const int p = s.inputs[side];
      float c;
      if (p == kNoValue || ix.uses[p] != 1 || ix.producer[p] < 0 || !float_scalar(g, s.inputs[1 - side], &c)) continue;
      Node& mm = g.nodes[ix.producer[p]];
      // Scaling commutes with the product alone: not with a bias or activation already fused.
      if (!is_matmul(mm) || mm.outputs.size() != 1 || mm.outputs[0] != p || FusedActivation::fused(mm) ||
          (mm.inputs.size() > 2 && mm.inputs[2] != kNoValue) || c == 0.0f)
        continue;
      // Float products only: B a float32 initializer, or A's type known to be float32.
      auto bi = g.initializers.find(mm.inputs[1]);
      const bool is_f32 = bi != g.initializers.end() ? bi->second.dtype() == DType::kFloat32
                                                     : g.values[mm.inputs[0]].dtype == DType::kFloat32;
      if (!is_f32) continue;
      make_fused(mm);
      const float alpha = mm.attr_float("alpha", 1.0f) * (s.op_type == "Mul" ? c : 1.0f / c);
      mm.attrs["alpha"] = Attribute::of_float(alpha);
      mm.outputs[0] = s.outputs[0];
      ix.producer[s.outputs[0]] = ix.producer[p];
      removed[i] = true;
      break;
    }
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
