// Multi-head attention as exporters write it, from the final product back:
//   MatMul(Softmax(Add(scale(MatMul(Q, K^T)), mask)), V)
// becomes one com.mserve.MultiHeadAttention node (kernels/ops/attention.cc): the scores of a
// head are computed, masked, normalized and multiplied by V while they are in cache, instead of
// as five [B, H, Lq, Lk] tensors through memory.
//  - scale: Mul or Div of the scores by a constant scalar (or none: 1), or constant scalar Muls of
//    Q and of K^T (torch's scaled_dot_product_attention export);
//  - mask: Add of any tensor (float, added as numpy broadcasts it), Where(c, -inf, scores)
//    (a bool mask, attending where c is false; c = Not(m) gives m itself) or
//    Where(c, scores, -inf), or none;
//  - Softmax over the last axis, or Where(IsNaN(Softmax), 0, Softmax) (NaN rows zeroed);
// Layouts: when Q and V come from Transpose(perm [0, 2, 1, 3]) (the heads split off
// [B, L, H, D]), K^T from Transpose(perm [0, 2, 3, 1]) and the output goes through
// Transpose(perm [0, 2, 1, 3]), those four Transposes go too (layout "bshd"); otherwise Q and V
// must be 4-D and K^T a Transpose (turned into the one that gives K) (layout "bhsd").
// Every intermediate must be read by nothing else. One difference remains by design: a query row
// with every key masked by -inf gives 0 here, where the unfused Softmax gives NaN.
#include <cmath>
#include <limits>
#include <vector>

#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

class AttentionMatcher {
 public:
  explicit AttentionMatcher(Graph& g) : g_(g), ix_(g), removed_(g.nodes.size(), false) {}

  std::vector<bool>& removed() { return removed_; }

  // Rewrites the pattern ending at node `i` (the P V MatMul); false, changing nothing, when it
  // does not match.
  bool match(size_t i, std::vector<Node>* added) {
    const Node& pv = g_.nodes[i];
    if (pv.op_type != "MatMul" || !pv.domain.empty() || pv.inputs.size() != 2 || pv.outputs.size() != 1) return false;
    std::vector<int> span;  // values whose producers the fused node replaces
    const Node* sm = sole(pv.inputs[0], "Softmax", &span);
    if (!sm) sm = nan_zeroed_softmax(pv.inputs[0], &span);
    if (!sm || sm->inputs.size() != 1) return false;
    const int64_t axis = sm->attr_int("axis", -1);  // opset 13's form: the importer rewrites older ones
    if (axis != -1 && axis != 3) return false;
    // The mask, and the scaled scores under it.
    int x = sm->inputs[0], mask = kNoValue, cond = kNoValue;
    bool attend_if_false = false;
    Scores sc;
    if (!scores(x, &sc)) {
      if (const Node* add = sole(x, "Add", &span); add && add->inputs.size() == 2) {
        for (int side = 0; side < 2 && mask == kNoValue; ++side)
          if (scores(add->inputs[side], &sc)) mask = add->inputs[1 - side];
      } else if (const Node* w = sole(x, "Where", &span); w && w->inputs.size() == 3) {
        if (is_scalar(w->inputs[1], -INFINITY) && scores(w->inputs[2], &sc))
          cond = w->inputs[0], attend_if_false = true;
        else if (is_scalar(w->inputs[2], -INFINITY) && scores(w->inputs[1], &sc))
          cond = w->inputs[0];
      }
      if (mask == kNoValue && cond == kNoValue) return false;
    }
    span.insert(span.end(), sc.span.begin(), sc.span.end());
    const Node& qk = g_.nodes[ix_.producer[sc.qk]];
    int q = qk.inputs[0], kt = qk.inputs[1], v = pv.inputs[1];
    float scale = sc.scale;
    peel_scale(&q, &scale, &span);
    peel_scale(&kt, &scale, &span);

    // Layout.
    const Node* tq = sole(q, "Transpose", nullptr);
    const Node* tk = sole(kt, "Transpose", nullptr);
    const Node* tv = sole(v, "Transpose", nullptr);
    const Node* to = only_reader(pv.outputs[0], "Transpose");
    if (!tk) return false;
    const bool bshd = tq && tv && to && perm_is(*tq, {0, 2, 1, 3}) && perm_is(*tk, {0, 2, 3, 1}) &&
                      perm_is(*tv, {0, 2, 1, 3}) && perm_is(*to, {0, 2, 1, 3});
    int k = kNoValue, out = pv.outputs[0];
    if (bshd) {
      span.insert(span.end(), {q, kt, v});
      q = tq->inputs[0], k = tk->inputs[0], v = tv->inputs[0];
      out = to->outputs[0];
      removed_[index_of(to)] = true;
    } else {
      const Attribute* p = tk->attr("perm");
      if (!p || p->ints.size() != 4 || !rank4(q) || !rank4(v)) return false;
      if (perm_is(*tk, {0, 1, 3, 2})) {
        span.push_back(kt);
        k = tk->inputs[0];
      } else {  // the Transpose that gives K^T now gives K
        Node& t = g_.nodes[index_of(tk)];
        std::swap(t.attrs["perm"].ints[2], t.attrs["perm"].ints[3]);
        g_.values[kt].has_shape = false;
        k = kt;
      }
    }
    for (int s : span) removed_[ix_.producer[s]] = true;

    if (cond != kNoValue) {
      mask = cond;
      if (attend_if_false) {
        // Where(Not(m), -inf, s), with or without a Cast to bool between: m is the mask.
        std::vector<int> nots;
        int c = cond;
        if (const Node* cast = sole(c, "Cast", &nots);
            cast && cast->attr_int("to", 0) == 9 && sole(cast->inputs[0], "Not", nullptr))
          c = cast->inputs[0];
        if (const Node* n = sole(c, "Not", &nots)) {
          for (int s : nots) removed_[ix_.producer[s]] = true;
          mask = n->inputs[0];
          attend_if_false = false;
        }
      }
      if (attend_if_false) {  // the kernel's bool mask attends where true
        Value mv;
        mv.name = g_.values[cond].name + "/mserve_not";
        mv.dtype = DType::kBool;
        mask = g_.add_value(std::move(mv));
        Node n;
        n.name = pv.name + "/mask_not";
        n.op_type = "Not";
        n.opset = 1;
        n.inputs = {cond};
        n.outputs = {mask};
        added->push_back(std::move(n));
      }
    }
    Node att;
    att.name = pv.name;
    att.op_type = "MultiHeadAttention";
    att.domain = "com.mserve";
    att.opset = 1;
    att.inputs = {q, k, v};
    if (mask != kNoValue) att.inputs.push_back(mask);
    att.outputs = {out};
    att.attrs["scale"] = Attribute::of_float(scale);
    att.attrs["layout"] = Attribute::of_string(bshd ? "bshd" : "bhsd");
    g_.nodes[i] = std::move(att);
    return true;
  }

 private:
  struct Scores {
    int qk = kNoValue;  // the Q K^T MatMul's output
    float scale = 1.0f;
    std::vector<int> span;
  };

  // `v` is the output of op (default domain, one output) and read by nothing else: its node
  // (its value added to `span`).
  const Node* sole(int v, const char* op, std::vector<int>* span) const {
    if (v == kNoValue || ix_.uses[v] != 1 || ix_.producer[v] < 0 || removed_[ix_.producer[v]]) return nullptr;
    const Node& n = g_.nodes[ix_.producer[v]];
    if (n.op_type != op || !n.domain.empty() || n.outputs.size() != 1) return nullptr;
    if (span) span->push_back(v);
    return &n;
  }
  // The one node reading `v` (as its first input), if it is `op` and `v` is not a graph output.
  const Node* only_reader(int v, const char* op) const {
    const int j = ix_.sole_reader(v);
    if (j < 0 || removed_[j]) return nullptr;
    const Node& n = g_.nodes[j];
    return n.op_type == op && n.domain.empty() && n.inputs[0] == v && n.outputs.size() == 1 ? &n : nullptr;
  }
  size_t index_of(const Node* n) const { return static_cast<size_t>(n - g_.nodes.data()); }

  bool scalar(int v, float* out) const { return float_scalar(g_, v, out); }
  bool is_scalar(int v, float want) const {
    float c;
    return scalar(v, &c) && c == want;
  }
  static bool perm_is(const Node& t, std::initializer_list<int64_t> want) {
    const Attribute* a = t.attr("perm");
    return a && a->ints == std::vector<int64_t>(want);
  }
  bool rank4(int v) const {
    const Value& val = g_.values[v];
    if (val.has_shape) return val.dims.size() == 4;
    if (ix_.producer[v] < 0) return false;
    const Node& p = g_.nodes[ix_.producer[v]];
    return p.op_type == "Transpose" && p.domain.empty() && p.attr_ints("perm").size() == 4;
  }

  // `v` is Where(IsNaN(s), 0, s) with s = Softmax(...) read by those two only (torch 2.9's
  // scaled_dot_product_attention export: a query whose keys are all masked gets zeros, as the
  // fused kernel gives them): the Softmax (the three values added to `span`).
  const Node* nan_zeroed_softmax(int v, std::vector<int>* span) const {
    const Node* w = sole(v, "Where", nullptr);
    if (!w || w->inputs.size() != 3 || !is_scalar(w->inputs[1], 0.0f)) return nullptr;
    const int s = w->inputs[2];
    const Node* isnan = sole(w->inputs[0], "IsNaN", nullptr);
    if (!isnan || isnan->inputs.size() != 1 || isnan->inputs[0] != s || ix_.uses[s] != 2 || ix_.producer[s] < 0 ||
        removed_[ix_.producer[s]])
      return nullptr;
    const Node& sm = g_.nodes[ix_.producer[s]];
    if (sm.op_type != "Softmax" || !sm.domain.empty() || sm.outputs.size() != 1) return nullptr;
    span->insert(span->end(), {v, w->inputs[0], s});
    return &sm;
  }

  // `v` is MatMul(Q, K^T), scaled by a constant scalar Mul / Div or not.
  bool scores(int v, Scores* s) const {
    Scores r;
    float c;
    const Node* n = v != kNoValue && ix_.producer[v] >= 0 ? &g_.nodes[ix_.producer[v]] : nullptr;
    if (n && ix_.uses[v] == 1 && n->domain.empty() && n->inputs.size() == 2 &&
        (n->op_type == "Mul" || n->op_type == "Div")) {
      int side = -1;
      if (scalar(n->inputs[1], &c))
        side = 1;
      else if (n->op_type == "Mul" && scalar(n->inputs[0], &c))
        side = 0;
      if (side < 0 || c == 0.0f) return false;
      r.scale = n->op_type == "Mul" ? c : 1.0f / c;
      r.span.push_back(v);
      v = n->inputs[1 - side];
    }
    const Node* mm = sole(v, "MatMul", &r.span);
    if (!mm || mm->inputs.size() != 2) return false;
    r.qk = v;
    *s = std::move(r);
    return true;
  }
  // `*v` = Mul(x, c) with c a constant scalar and *v read only here: *v becomes x, the scale
  // takes c.
  void peel_scale(int* v, float* scale, std::vector<int>* span) const {
    const Node* m = sole(*v, "Mul", nullptr);
    float c;
    if (!m || m->inputs.size() != 2) return;
    for (int side = 0; side < 2; ++side)
      if (scalar(m->inputs[1 - side], &c)) {
        span->push_back(*v);
        *scale *= c;
        *v = m->inputs[side];
        return;
      }
  }

  Graph& g_;
  GraphIndex ix_;
  std::vector<bool> removed_;
};

}  // namespace

Status fuse_attention(Graph& g) {
  AttentionMatcher m(g);
  std::vector<Node> added;
  for (size_t i = 0; i < g.nodes.size(); ++i) m.match(i, &added);
  erase_nodes(g, m.removed());
  for (Node& n : added) g.nodes.push_back(std::move(n));
  return Status::OK();
}

}  // namespace mserve
