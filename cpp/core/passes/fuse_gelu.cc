// GELU as exporters write it becomes one Gelu node: one pass over the data instead of five to
// nine (and then usually an activation fused into the MatMul before it, fuse_activation.cc).
//   erf form:  x * (1 + erf(x / sqrt 2)) * 0.5     (x * (1/sqrt 2) accepted)
//   tanh form: x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) * 0.5    (approximate="tanh";
//              x^3 as Pow(x, 3), x * (x * x) or (x * x) * x)
// The outer product is accepted as 0.5 * (x * t) or (0.5 * x) * t, operands in either order.
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
    float c;
    return float_scalar(g_, v, &c) && std::abs(c - want) <= 1e-5 * std::abs(want);
  }
  // For a binary node with a scalar `want` on one side: the other input, or kNoValue.
  int other_than_scalar(const Node* n, double want) const {
    if (!n || n->inputs.size() != 2) return kNoValue;
    if (scalar(n->inputs[1], want)) return n->inputs[0];
    if (scalar(n->inputs[0], want)) return n->inputs[1];
    return kNoValue;
  }
  // For a binary node with `x` on one side: the other input, or kNoValue.
  static int other_than(const Node* n, int x) {
    if (!n || n->inputs.size() != 2 || x == kNoValue) return kNoValue;
    if (n->inputs[0] == x) return n->inputs[1];
    if (n->inputs[1] == x) return n->inputs[0];
    return kNoValue;
  }
  int producer(int v) const { return ix_.producer[v]; }

  // `t` is 1 + erf(x / sqrt 2) or 1 + tanh(...) of this `x`: the approximate mode ("none" or
  // "tanh") and the nodes it spans (added to `span`), or nullptr.
  const char* inner(int t, int x, std::vector<int>* span) const {
    const Node* add = only_use(t, "Add");
    const int f = other_than_scalar(add, 1.0);
    if (const Node* erf = only_use(f, "Erf"); erf && erf->inputs.size() == 1) {
      const int e = erf->inputs[0];
      const Node* d = only_use(e, "Div");
      const bool div = d && d->inputs.size() == 2 && d->inputs[0] == x && scalar(d->inputs[1], std::sqrt(2.0));
      if (!div && other_than_scalar(only_use(e, "Mul"), 1.0 / std::sqrt(2.0)) != x) return nullptr;
      span->insert(span->end(), {t, f, e});
      return "none";
    }
    const Node* th = only_use(f, "Tanh");
    if (!th || th->inputs.size() != 1) return nullptr;
    const int s = th->inputs[0];
    const int a = other_than_scalar(only_use(s, "Mul"), std::sqrt(2.0 / M_PI));
    const int c = other_than(only_use(a, "Add"), x);  // 0.044715 x^3
    const int cube = other_than_scalar(only_use(c, "Mul"), 0.044715);
    if (cube == kNoValue || !is_cube(cube, x, span)) return nullptr;
    span->insert(span->end(), {t, f, s, a, c, cube});
    return "tanh";
  }

 private:
  bool is_cube(int v, int x, std::vector<int>* span) const {
    if (const Node* p = only_use(v, "Pow"); p && p->inputs.size() == 2 && p->inputs[0] == x)
      return scalar(p->inputs[1], 3.0);
    const int sq = other_than(only_use(v, "Mul"), x);
    const Node* m = only_use(sq, "Mul");
    if (!m || m->inputs[0] != x || m->inputs[1] != x) return false;
    span->push_back(sq);
    return true;
  }

  const Graph& g_;
  GraphIndex ix_;
};

}  // namespace

Status fuse_gelu(Graph& g) {
  const Matcher m(g);
  std::vector<bool> removed(g.nodes.size(), false);
  struct Found {
    size_t node;
    int x;
    const char* mode;
  };
  std::vector<Found> found;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& out = g.nodes[i];
    if (out.op_type != "Mul" || !out.domain.empty() || out.inputs.size() != 2 || out.outputs.size() != 1) continue;
    for (int side = 0; side < 2; ++side) {
      // (x * 0.5) * t: the half product is on `side`, t on the other; 0.5 * (x * t): the
      // scalar is on `side`.
      std::vector<int> span;
      int x = kNoValue, t = kNoValue;
      if (m.scalar(out.inputs[side], 0.5)) {
        const Node* xt = m.only_use(out.inputs[1 - side], "Mul");
        if (!xt || xt->inputs.size() != 2) continue;
        span.push_back(out.inputs[1 - side]);
        for (int s2 = 0; s2 < 2 && x == kNoValue; ++s2) {
          std::vector<int> probe;
          if (m.inner(xt->inputs[1 - s2], xt->inputs[s2], &probe)) x = xt->inputs[s2], t = xt->inputs[1 - s2];
        }
      } else {
        const int hx = m.other_than_scalar(m.only_use(out.inputs[side], "Mul"), 0.5);
        if (hx == kNoValue) continue;
        span.push_back(out.inputs[side]);
        x = hx, t = out.inputs[1 - side];
      }
      if (x == kNoValue) continue;
      const char* mode = m.inner(t, x, &span);
      if (!mode) continue;
      for (int v : span) removed[m.producer(v)] = true;
      found.push_back({i, x, mode});
      break;
    }
  }
  for (const Found& f : found) {
    Node& n = g.nodes[f.node];
    n.op_type = "Gelu";
    n.opset = 20;  // Gelu's first opset; this node's own (the model may import an older one)
    n.inputs = {f.x};
    n.attrs.clear();
    if (std::string(f.mode) == "tanh") n.attrs["approximate"] = Attribute::of_string("tanh");
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
