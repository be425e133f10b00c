// MatMul(A, B) + bias -> com.mserve.FusedMatMul(A, B, bias) when B is a constant float32 matrix
// [K, N] and bias a constant float32 vector of N values (any shape whose only non-1 dim is the
// last): PyTorch exports Linear on 3-D inputs (every transformer layer) that way.
#include <vector>

#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

const Tensor* float_constant(const Graph& g, int v) {
  auto it = g.initializers.find(v);
  return it == g.initializers.end() || it->second.dtype() != DType::kFloat32 ? nullptr : &it->second;
}

bool is_bias_of(const Tensor& b, int64_t n) { return b.rank() >= 1 && b.dim(b.rank() - 1) == n && b.numel() == n; }

}  // namespace

Status fuse_matmul_bias(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& add = g.nodes[i];
    if (add.op_type != "Add" || !add.domain.empty() || add.inputs.size() != 2 || add.outputs.size() != 1) continue;
    for (int side = 0; side < 2; ++side) {
      const int mm_out = add.inputs[side], bias_v = add.inputs[1 - side];
      if (mm_out == kNoValue || bias_v == kNoValue || ix.uses[mm_out] != 1 || ix.producer[mm_out] < 0) continue;
      Node& mm = g.nodes[ix.producer[mm_out]];
      if (mm.op_type != "MatMul" || !mm.domain.empty() || mm.inputs.size() != 2 || mm.outputs.size() != 1) continue;
      const Tensor* b = float_constant(g, mm.inputs[1]);
      const Tensor* bias = float_constant(g, bias_v);
      if (!b || b->rank() != 2 || !bias || !is_bias_of(*bias, b->dim(1))) continue;
      // A 1-D bias broadcast against a 1-D product would change the output's rank: only fuse
      // when A is known to have rank >= 2 or the bias is 1-D.
      if (bias->rank() > 1) {
        const Value& a = g.values[mm.inputs[0]];
        if (!a.has_shape || static_cast<int>(a.dims.size()) < bias->rank()) continue;
      }
      mm.op_type = "FusedMatMul";
      mm.domain = "com.mserve";
      mm.opset = 1;
      mm.inputs.push_back(bias_v);
      mm.outputs[0] = add.outputs[0];
      removed[i] = true;
      break;
    }
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
