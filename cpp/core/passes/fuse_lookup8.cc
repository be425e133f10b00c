// A static QDQ model computes its activations in float between an 8-bit tensor and the next
// one: EfficientNet's SiLU is
//   d = DequantizeLinear(x); s = DequantizeLinear(QuantizeLinear(Sigmoid(d))); y = QuantizeLinear(d * s)
// five passes over float tensors four times x's size. Where everything between x and y is
// element-wise (unary ops, binary ops of values from x or scalar constants, per-tensor
// Quantize/DequantizeLinear) y is a function of x's 8-bit value alone: 256 outcomes. The chain
// becomes com.mserve Lookup8(x, table), and a copy of the chain applied to a constant holding all
// 256 codes (in bit order: int8 0..127, -128..-1) computes the table, which the planner's constant
// folding evaluates with the same kernels (so each entry is what the chain gives that code, up to
// the kernels' own tail handling). Intermediate values read outside the chain keep it as is.
// Chains are taken from their last QuantizeLinear backwards, so the longest one wins; a chain
// goes back through Quantize/DequantizeLinear pairs as far as it stays element-wise, and starts
// at the 8-bit tensor where it stops (a product's quantized output, before a GELU).
#include <algorithm>
#include <set>
#include <vector>

#include "core/kernels/registry.h"
#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

constexpr size_t kMaxChainNodes = 32;

bool is_op(const Node& n, const char* op) { return n.op_type == op && n.domain.empty(); }

bool scalar_constant(const Graph& g, int v) {
  auto it = g.initializers.find(v);
  return it != g.initializers.end() && it->second.numel() == 1;
}

// The chain ending at QuantizeLinear `root`: its nodes (indices) and the 8-bit value x they
// start from; false when something in it is not element-wise, or it starts from two values.
struct Chain {
  std::set<int> nodes;
  int x = kNoValue;
  DType x_dtype = DType::kUndefined;
};

bool collect(const Graph& g, const GraphIndex& ix, const std::vector<bool>& removed, int v, Chain* c) {
  if (scalar_constant(g, v)) return true;  // (a QDQ model quantizes its scalars too: Q/DQ of one)
  const int pi = v == kNoValue ? -1 : ix.producer[v];
  if (pi < 0 || removed[pi]) return false;
  if (c->nodes.count(pi)) return true;
  if (c->nodes.size() >= kMaxChainNodes) return false;
  const Node& p = g.nodes[pi];
  if (p.outputs.size() != 1) return false;
  c->nodes.insert(pi);
  if (is_op(p, "DequantizeLinear") || is_op(p, "QuantizeLinear")) {
    if (!per_tensor_8bit(g, p) || p.attr_int("output_dtype", 0) != 0) return false;
    const int in = p.inputs[0];
    if (is_op(p, "QuantizeLinear")) return collect(g, ix, removed, in, c);
    // A DequantizeLinear continues through the QuantizeLinear writing its input where the chain
    // goes on behind it, else starts the chain: its input is x.
    const int src = in == kNoValue ? -1 : ix.producer[in];
    if (src >= 0 && is_op(g.nodes[src], "QuantizeLinear")) {
      Chain through = *c;
      if (collect(g, ix, removed, in, &through)) {
        *c = std::move(through);
        return true;
      }
    }
    const DType t = input_constant(g, p, 2)->dtype();
    if (c->x != kNoValue && (c->x != in || c->x_dtype != t)) return false;
    c->x = in;
    c->x_dtype = t;
    return true;
  }
  const OpInfo::Elementwise kind = elementwise(p);
  if (kind == OpInfo::Elementwise::kUnary) {
    for (size_t k = 1; k < p.inputs.size(); ++k)
      if (p.inputs[k] != kNoValue && !scalar_constant(g, p.inputs[k])) return false;
    return collect(g, ix, removed, p.inputs[0], c);
  }
  if (kind != OpInfo::Elementwise::kNary || p.num_implicit_inputs != 0) return false;
  for (int in : p.inputs)
    if (in == kNoValue || (!scalar_constant(g, in) && !collect(g, ix, removed, in, c))) return false;
  return true;
}

// Whether only the chain reads what it computes (but for the root's output).
bool closed(const Graph& g, const GraphIndex& ix, const Chain& c, int root) {
  for (int ni : c.nodes) {
    if (ni == root) continue;
    const int v = g.nodes[ni].outputs[0];
    int inside = 0;
    for (int r : c.nodes)
      for (int in : g.nodes[r].inputs) inside += in == v;
    if (inside != ix.uses[v]) return false;  // read elsewhere, or a graph output
  }
  return true;
}

}  // namespace

Status fuse_lookup8(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  std::vector<std::vector<Node>> before(g.nodes.size());  // the table's nodes, placed before node i
  bool any = false;
  for (size_t r = g.nodes.size(); r-- > 0;) {
    const Node& q = g.nodes[r];
    if (removed[r] || !is_op(q, "QuantizeLinear") || q.outputs.size() != 1 || !per_tensor_8bit(g, q) ||
        q.attr_int("output_dtype", 0) != 0)
      continue;
    Chain c;
    c.nodes.insert(static_cast<int>(r));
    if (!collect(g, ix, removed, q.inputs[0], &c) || c.x == kNoValue || c.nodes.size() < 2 ||
        !closed(g, ix, c, static_cast<int>(r)))
      continue;
    const DType y_dtype = input_constant(g, q, 2)->dtype();
    // The codes, and the chain copied onto them (its values renamed, constants shared).
    auto codes = Tensor::empty(c.x_dtype, Shape{256});
    if (!codes.ok()) continue;
    for (int k = 0; k < 256; ++k) static_cast<uint8_t*>(codes.value().raw())[k] = static_cast<uint8_t>(k);
    const std::string base = g.values[q.outputs[0]].name + "/mserve_lookup8";
    const int codes_v = add_initializer(g, base + "/codes", std::move(codes).value());
    std::vector<int> copy_of(g.values.size(), kNoValue);
    copy_of[c.x] = codes_v;
    for (int ni : c.nodes) {  // std::set: graph order, producers first
      Node n = g.nodes[ni];
      for (int& in : n.inputs)
        if (in != kNoValue && copy_of[in] != kNoValue) in = copy_of[in];
      Value out;
      out.name = g.values[n.outputs[0]].name + "/mserve_lookup8";
      out.dtype = g.values[n.outputs[0]].dtype;
      const int old = n.outputs[0];
      n.outputs[0] = g.add_value(std::move(out));
      copy_of.resize(g.values.size(), kNoValue);
      copy_of[old] = n.outputs[0];
      n.name += "/mserve_lookup8";
      before[r].push_back(std::move(n));
      if (ni != static_cast<int>(r)) removed[ni] = true;
    }
    Node& root = g.nodes[r];
    const int table = before[r].back().outputs[0];
    root.op_type = "Lookup8";
    root.domain = "com.mserve";
    root.opset = 1;
    root.attrs.clear();
    root.inputs = {c.x, table};
    g.values[root.outputs[0]].dtype = y_dtype;
    any = true;
  }
  if (!any) return Status::OK();
  std::vector<Node> nodes;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (removed[i]) continue;
    for (Node& n : before[i]) nodes.push_back(std::move(n));
    nodes.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(nodes);
  return Status::OK();
}

Status fold_lookup8_into_convs(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& l = g.nodes[i];
    if (l.op_type != "Lookup8" || l.domain != "com.mserve" || l.inputs.size() != 2) continue;
    const int ci = ix.producer[l.inputs[0]];
    if (ci < 0 || ix.sole_reader(l.inputs[0]) != static_cast<int>(i)) continue;
    Node& conv = g.nodes[ci];
    if (conv.op_type != "NhwcQLinearConv" || conv.domain != "com.mserve" || conv.inputs.size() > 9) continue;
    conv.inputs.resize(9, kNoValue);
    conv.inputs.push_back(l.inputs[1]);
    conv.outputs[0] = l.outputs[0];
    removed[i] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
