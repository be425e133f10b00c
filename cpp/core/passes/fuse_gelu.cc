// The Erf form of GELU as exporters write it, x * (1 + erf(x / sqrt(2))) * 0.5 (PyTorch:
// Div, Erf, Add, Mul, Mul; operand orders and x * (1/sqrt 2) accepted), becomes one Gelu node:
// one pass over the data instead of five.
#include <cmath>
#include <vector>

#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

class Matcher {
 public:
  explicit Matcher(const Graph& g) : g_(g), ix_(g) {}

  // The node producing `v` if it is `op` (default domain) and `v` has no other reader.
  const Node* only_use(int v, const char* op) const {
    if (v == kNoValue || ix_.uses[v] != 1 || ix_.producer[v] < 0) return nullptr;
    const Node& n = g_.nodes[ix_.producer[v]];
    return n.op_type == op && n.domain.empty() && n.outputs.size() == 1 ? &n : nullptr;
  }
  bool scalar(int v, double want) const {
    auto it = g_.initializers.find(v);
    if (it == g_.initializers.end() || it->second.numel() != 1 || it->second.dtype() != DType::kFloat32) return false;
    return std::abs(it->second.data<float>()[0] - want) <= 1e-5 * std::abs(want);
  }
  // For a binary node with a scalar `want` on one side: the other input, or kNoValue.
  int other_than_scalar(const Node& n, double want) const {
    if (n.inputs.size() != 2) return kNoValue;
    if (scalar(n.inputs[1], want)) return n.inputs[0];
    if (scalar(n.inputs[0], want)) return n.inputs[1];
    return kNoValue;
  }
  int producer(int v) const { return ix_.producer[v]; }

 private:
  const Graph& g_;
  GraphIndex ix_;
};

}  // namespace

Status fuse_gelu(Graph& g) {
  const Matcher m(g);
  std::vector<bool> removed(g.nodes.size(), false);
  std::vector<std::pair<size_t, int>> gelus;  // (final Mul, x)
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& half = g.nodes[i];
    if (half.op_type != "Mul" || !half.domain.empty() || half.outputs.size() != 1) continue;
    const Node* m1 = m.only_use(m.other_than_scalar(half, 0.5), "Mul");
    if (!m1 || m1->inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const int x = m1->inputs[side];
      const Node* add = m.only_use(m1->inputs[1 - side], "Add");
      const Node* erf = add ? m.only_use(m.other_than_scalar(*add, 1.0), "Erf") : nullptr;
      if (!erf || erf->inputs.size() != 1) continue;
      int div_x = kNoValue;
      if (const Node* d = m.only_use(erf->inputs[0], "Div");
          d && d->inputs.size() == 2 && m.scalar(d->inputs[1], std::sqrt(2.0)))
        div_x = d->inputs[0];
      else if (const Node* s = m.only_use(erf->inputs[0], "Mul"))
        div_x = m.other_than_scalar(*s, 1.0 / std::sqrt(2.0));
      if (div_x != x || x == kNoValue) continue;
      for (int v : {m1->outputs[0], add->outputs[0], erf->outputs[0], erf->inputs[0]}) removed[m.producer(v)] = true;
      gelus.emplace_back(i, x);
      break;
    }
  }
  for (auto [i, x] : gelus) {
    Node& n = g.nodes[i];
    n.op_type = "Gelu";
    n.opset = 20;  // Gelu's first opset; this node's own (the model may import an older one)
    n.inputs = {x};
    n.attrs.clear();
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
