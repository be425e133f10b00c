// A static QDQ model's residual sum or broadcast product, QuantizeLinear([Relu](DequantizeLinear(a)
// op DequantizeLinear(b))) with op Add or Mul, every DequantizeLinear and QuantizeLinear per tensor
// and of one 8-bit type, becomes com.mserve QuantizedAdd / QuantizedMul (kernels/ops/quant.cc):
// one pass over 8-bit data with the same float operations, where four or five passes went over
// float tensors (a QDQ ResNet-50 has 16 residual sums, an EfficientNet-B0 16 squeeze-excitation
// products). The DequantizeLinear nodes stay where something else reads them. After nhwc_convs
// (which moves layout changes across the element-wise Add and Mul, not across the fused nodes).
// Likewise QuantizeLinear(ReduceMean(DequantizeLinear(x))) over consecutive constant axes (global
// pooling, which nhwc_convs writes as a ReduceMean over H and W) becomes com.mserve QuantizedMean,
// reading the 8-bit x once instead of a float copy of it.
#include <algorithm>
#include <vector>

#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

bool is_op(const Node& n, const char* op) { return n.op_type == op && n.domain.empty() && n.outputs.size() == 1; }

// Whether constant axes are consecutive dims (all counted from the front, or all from the back:
// the rank is not known here).
bool consecutive(const Tensor& axes) {
  if (axes.dtype() != DType::kInt64 || axes.numel() == 0) return false;
  std::vector<int64_t> a(axes.data<int64_t>(), axes.data<int64_t>() + axes.numel());
  std::sort(a.begin(), a.end());
  if (a.front() < 0 && a.back() >= 0) return false;
  for (size_t i = 1; i < a.size(); ++i)
    if (a[i] != a[i - 1] + 1) return false;
  return true;
}

// The per-tensor 8-bit DequantizeLinear writing v, or null.
const Node* dequantized(const Graph& g, const GraphIndex& ix, int v) {
  const int p = v == kNoValue ? -1 : ix.producer[v];
  if (p < 0) return nullptr;
  const Node& n = g.nodes[p];
  return is_op(n, "DequantizeLinear") && per_tensor_8bit(g, n) && n.attr_int("output_dtype", 0) == 0 ? &n : nullptr;
}

}  // namespace

Status fuse_qdq_binary(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& q = g.nodes[i];
    if (!is_op(q, "QuantizeLinear") || !per_tensor_8bit(g, q) || q.attr_int("output_dtype", 0) != 0) continue;
    int ai = ix.producer[q.inputs[0]], relu = -1;
    if (ai < 0 || ix.sole_reader(q.inputs[0]) != static_cast<int>(i)) continue;
    if (is_op(g.nodes[ai], "Relu")) {
      relu = ai;
      const int in = g.nodes[relu].inputs[0];
      ai = ix.producer[in];
      if (ai < 0 || ix.sole_reader(in) != relu) continue;
    }
    const Node& add = g.nodes[ai];
    if (relu < 0 && is_op(add, "ReduceMean") && add.inputs.size() == 2 &&
        add.attr_int("noop_with_empty_axes", 0) == 0) {
      const Node* dx = dequantized(g, ix, add.inputs[0]);
      const Tensor* axes = input_constant(g, add, 1);
      if (!dx || !axes || !consecutive(*axes) || input_constant(g, *dx, 2)->dtype() != input_constant(g, q, 2)->dtype())
        continue;
      q.inputs = {dx->inputs[0], dx->inputs[1], dx->inputs[2], add.inputs[1], q.inputs[1], q.inputs[2]};
      const int64_t keepdims = add.attr_int("keepdims", 1);
      q.op_type = "QuantizedMean";
      q.domain = "com.mserve";
      q.opset = 1;
      q.attrs.clear();
      q.attrs["keepdims"] = Attribute::of_int(keepdims);
      removed[ai] = true;
      continue;
    }
    const bool mul = is_op(add, "Mul");
    if ((!mul && !is_op(add, "Add")) || add.inputs.size() != 2 || removed[ai] || (relu >= 0 && removed[relu])) continue;
    const Node *da = dequantized(g, ix, add.inputs[0]), *db = dequantized(g, ix, add.inputs[1]);
    if (!da || !db) continue;
    const DType t = input_constant(g, q, 2)->dtype();
    if (input_constant(g, *da, 2)->dtype() != t || input_constant(g, *db, 2)->dtype() != t) continue;
    q.inputs = {da->inputs[0], da->inputs[1], da->inputs[2], db->inputs[0],
                db->inputs[1], db->inputs[2], q.inputs[1],   q.inputs[2]};
    q.op_type = mul ? "QuantizedMul" : "QuantizedAdd";
    q.domain = "com.mserve";
    q.opset = 1;
    q.attrs.clear();
    q.attrs["relu"] = Attribute::of_int(relu >= 0 ? 1 : 0);
    removed[ai] = true;
    if (relu >= 0) removed[relu] = true;
  }
  erase_nodes(g, removed);
  return remove_dead_nodes(g);  // the DequantizeLinear nodes nothing reads now
}

}  // namespace mserve
