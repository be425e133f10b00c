// A static QDQ model rounds its float activations to 8 bits and back between operators:
//   y = DequantizeLinear(QuantizeLinear(x, s, z), s, z)
// Where the pair is per tensor with the same constant scale and zero point, and the 8-bit value
// is read by that DequantizeLinear alone, it becomes one com.mserve QuantizeDequantize node
// (kernels/ops/quant.cc): the same floats in one pass, without the 8-bit tensor. Run last, after
// the passes that look for the pairs around a Conv or MatMul (fuse_qdq_conv, fuse_qdq_matmul)
// and after nhwc_convs has moved the layout changes across them.
#include <vector>

#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {

Status fold_qdq_pairs(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& q = g.nodes[i];
    if (q.op_type != "QuantizeLinear" || !q.domain.empty() || q.outputs.size() != 1 || !per_tensor_8bit(g, q)) continue;
    if (q.attr_int("output_dtype", 0) != 0) continue;
    const int dqi = ix.sole_reader(q.outputs[0]);
    if (dqi < 0 || removed[dqi]) continue;
    const Node& dq = g.nodes[dqi];
    if (dq.op_type != "DequantizeLinear" || !dq.domain.empty() || dq.outputs.size() != 1 ||
        dq.inputs[0] != q.outputs[0] || !per_tensor_8bit(g, dq) || dq.attr_int("output_dtype", 0) != 0)
      continue;
    const Tensor &qs = *input_constant(g, q, 1), &qz = *input_constant(g, q, 2);
    const Tensor &ds = *input_constant(g, dq, 1), &dz = *input_constant(g, dq, 2);
    if (qs.data<float>()[0] != ds.data<float>()[0] || qz.dtype() != dz.dtype() || qz.int_at(0) != dz.int_at(0))
      continue;
    q.op_type = "QuantizeDequantize";
    q.domain = "com.mserve";
    q.opset = 1;
    q.attrs.clear();
    q.outputs[0] = dq.outputs[0];
    removed[dqi] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
