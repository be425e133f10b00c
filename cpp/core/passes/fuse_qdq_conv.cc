// A static QDQ model's quantized convolution,
//   y_q = QuantizeLinear(Conv(DequantizeLinear(x_q), DequantizeLinear(w_q), DequantizeLinear(b_q)))
// becomes the QLinearConv it stands for, QLinearConv(x_q, x_scale, x_zp, w_q, w_scale, w_zp,
// y_scale, y_zp, b_q), which nhwc_convs then runs as oneDNN's int8 convolution. Only where
// DnnlConv::int8_supported() (elsewhere the float32 convolution between the Q/DQ nodes is faster
// than the portable integer loops). Conditions: x, y per tensor with constant scale and zero point; w an
// int8 constant, scale per tensor or per output channel (axis 0), zero points zero; the bias
// absent, or an int32 constant whose scale is x_scale * w_scale (what quantizers write: then
// b_q is exactly the accumulator's units); the Conv's output read only by the QuantizeLinear.
// Run before fold_dequantize (which would turn w into float32).
#include <vector>

#include "core/kernels/dnnl_conv.h"
#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

// The DequantizeLinear or QuantizeLinear node writing v, or null.
const Node* producer_op(const Graph& g, const GraphIndex& ix, int v, const char* op) {
  if (v == kNoValue || ix.producer[v] < 0) return nullptr;
  const Node& n = g.nodes[ix.producer[v]];
  return n.op_type == op && n.domain.empty() && n.attr_int("block_size", 0) == 0 ? &n : nullptr;
}

bool all_zero(const Tensor* t) {
  if (!t) return true;
  for (int64_t i = 0; i < t->numel(); ++i)
    if (t->int_at(i) != 0) return false;
  return true;
}

}  // namespace

Status fuse_qdq_conv(Graph& g) {
  if (!DnnlConv::int8_supported()) return Status::OK();
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& conv = g.nodes[i];
    if (conv.op_type != "Conv" || !conv.domain.empty() || conv.inputs.size() < 2 || conv.outputs.size() != 1) continue;
    const Node* dx = producer_op(g, ix, conv.inputs[0], "DequantizeLinear");
    const Node* dw = producer_op(g, ix, conv.inputs[1], "DequantizeLinear");
    const bool has_b = !input_absent(conv, 2);
    const Node* db = has_b ? producer_op(g, ix, conv.inputs[2], "DequantizeLinear") : nullptr;
    const int qi = ix.sole_reader(conv.outputs[0]);
    if (!dx || !dw || (has_b && !db) || qi < 0 || removed[qi]) continue;
    const Node& q = g.nodes[qi];
    if (q.op_type != "QuantizeLinear" || !q.domain.empty() || q.attr_int("block_size", 0) != 0) continue;
    if (!per_tensor_8bit(g, *dx) || !per_tensor_8bit(g, q)) continue;
    // Weights: int8 constant, 2-D conv, zero zero points, scale per tensor or per channel.
    const Tensor *w = input_constant(g, *dw, 0), *ws = input_constant(g, *dw, 1), *wz = input_constant(g, *dw, 2);
    if (!w || !ws || w->dtype() != DType::kInt8 || w->rank() != 4 || ws->dtype() != DType::kFloat32) continue;
    if ((!input_absent(*dw, 2) && !wz) || !all_zero(wz)) continue;
    const int64_t M = w->dim(0);
    if (ws->numel() != 1 && !(ws->numel() == M && ws->rank() == 1 && dw->attr_int("axis", 1) == 0)) continue;
    // Bias: int32 with scale x_scale * w_scale.
    if (db) {
      const Tensor *b = input_constant(g, *db, 0), *bs = input_constant(g, *db, 1), *bz = input_constant(g, *db, 2);
      if (!b || !bs || b->dtype() != DType::kInt32 || b->numel() != M || bs->dtype() != DType::kFloat32) continue;
      if ((!input_absent(*db, 2) && !bz) || !all_zero(bz) || (bs->numel() != 1 && bs->numel() != M)) continue;
      const float xs = input_constant(g, *dx, 1)->data<float>()[0];
      bool units = true;
      for (int64_t m = 0; m < M && units; ++m) {
        const float want = xs * ws->data<float>()[ws->numel() == 1 ? 0 : m];
        units = bs->data<float>()[bs->numel() == 1 ? 0 : m] == want;
      }
      if (!units) continue;
    }
    std::vector<int> ins = {dx->inputs[0], dx->inputs[1], dx->inputs[2], dw->inputs[0], dw->inputs[1]};
    if (input_absent(*dw, 2)) {  // QLinearConv needs w's zero point: an int8 zero
      auto z = Tensor::empty(DType::kInt8, Shape{});
      if (!z.ok()) continue;
      z.value().data<int8_t>()[0] = 0;
      ins.push_back(add_initializer(g, g.values[dw->inputs[0]].name + "/mserve_zero", std::move(z).value()));
    } else {
      ins.push_back(dw->inputs[2]);
    }
    ins.push_back(q.inputs[1]);
    ins.push_back(q.inputs[2]);
    if (db) ins.push_back(db->inputs[0]);
    conv.op_type = "QLinearConv";
    conv.inputs = ins;
    conv.outputs[0] = q.outputs[0];
    removed[qi] = true;
    // The DequantizeLinear nodes no one else reads go too (fold_dequantize would make float
    // copies of the weights nothing uses).
    for (const Node* d : {dx, dw, db})
      if (d && ix.sole_reader(d->outputs[0]) == static_cast<int>(i)) removed[d - g.nodes.data()] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
