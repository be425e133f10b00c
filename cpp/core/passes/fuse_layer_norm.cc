// LayerNormalization in the form older exporters write (opset < 17, TF / Keras converters):
//   d = x - ReduceMean(x); y = d / Sqrt(ReduceMean(d^2) + eps) [* gamma] [+ beta]
// (d^2 as Pow(d, 2) or d * d; the division also as d * Reciprocal(...)), over the last axis,
// becomes one LayerNormalization (8 nodes and 4 passes over memory -> 1).
// Then the residual Add feeding a LayerNormalization becomes com.mserve.SkipLayerNormalization
// (kernels/ops/layer_norm.cc), which also hands out the sum when another node reads it (the
// residual stream of pre-LN transformers).
#include <algorithm>
#include <vector>

#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

class LayerNormMatcher {
 public:
  explicit LayerNormMatcher(Graph& g) : g_(g), ix_(g), removed_(g.nodes.size(), false) {}
  std::vector<bool>& removed() { return removed_; }

  // The decomposed pattern ending at node `i` (the division) becomes a LayerNormalization.
  void match(size_t i) {
    const Node& dv = g_.nodes[i];
    if (!dv.domain.empty() || dv.inputs.size() != 2 || dv.outputs.size() != 1) return;
    std::vector<int> span;  // values whose producers the new node replaces
    int d = dv.inputs[0], sd = kNoValue;
    if (dv.op_type == "Div") {
      sd = dv.inputs[1];
    } else if (dv.op_type == "Mul") {  // d * Reciprocal(sd), either order
      for (int side = 0; side < 2 && sd == kNoValue; ++side)
        if (const Node* r = sole(dv.inputs[1 - side], "Reciprocal", &span)) d = dv.inputs[side], sd = r->inputs[0];
      if (sd == kNoValue) return;
    } else {
      return;
    }
    const Node* sqrt = sole(sd, "Sqrt", &span);
    const Node* add = sqrt ? sole(sqrt->inputs[0], "Add", &span) : nullptr;
    float eps;
    if (!add || !scalar(add->inputs[1], &eps)) return;
    const Node* var = sole(add->inputs[0], "ReduceMean", &span);
    if (!var || !last_axis_mean(*var)) return;
    const int sq = var->inputs[0];
    const Node* sqn = producer(sq);
    if (!sqn || ix_.uses[sq] != 1 || sqn->outputs.size() != 1) return;
    float two;
    const bool is_sq = (sqn->op_type == "Pow" && sqn->inputs[0] == d && scalar(sqn->inputs[1], &two) && two == 2.0f) ||
                       (sqn->op_type == "Mul" && sqn->inputs[0] == d && sqn->inputs[1] == d);
    if (!is_sq || !sqn->domain.empty()) return;
    span.push_back(sq);
    // d = x - mean(x), read by the square and the division only.
    const Node* sub = producer(d);
    if (!sub || sub->op_type != "Sub" || !sub->domain.empty() || sub->inputs.size() != 2) return;
    if (ix_.uses[d] != (sqn->op_type == "Mul" ? 3 : 2)) return;
    const int x = sub->inputs[0];
    const Node* mean = sole(sub->inputs[1], "ReduceMean", &span);
    if (!mean || mean->inputs[0] != x || !last_axis_mean(*mean)) return;
    span.push_back(d);
    // Optional gamma and beta (constant float32 vectors).
    int out = dv.outputs[0], gamma = kNoValue, beta = kNoValue;
    if (const Node* m = only_reader(out, "Mul")) {
      const int other = m->inputs[0] == out ? m->inputs[1] : m->inputs[0];
      if (vector_const(other)) {
        gamma = other;
        span.push_back(out);
        out = m->outputs[0];
      }
    }
    if (gamma != kNoValue)
      if (const Node* b = only_reader(out, "Add")) {
        const int other = b->inputs[0] == out ? b->inputs[1] : b->inputs[0];
        if (vector_const(other) && g_.initializers.at(other).numel() == g_.initializers.at(gamma).numel()) {
          beta = other;
          span.push_back(out);
          out = b->outputs[0];
        }
      }
    if (gamma == kNoValue) {  // LayerNormalization needs a Scale: ones, if the width is known
      const Value& xv = g_.values[x];
      if (!xv.has_shape || xv.dims.empty() || !xv.dims.back().known()) return;
      const int64_t c = xv.dims.back().value;
      auto ones = Tensor::empty(DType::kFloat32, Shape{c});
      if (!ones.ok()) return;
      std::fill(ones.value().data<float>(), ones.value().data<float>() + c, 1.0f);
      Value v;
      v.name = dv.name + "/mserve_ones";
      v.dtype = DType::kFloat32;
      gamma = g_.add_value(std::move(v));
      g_.initializers.emplace(gamma, std::move(ones.value()));
    }
    for (int v : span) removed_[ix_.producer[v]] = true;
    if (out != dv.outputs[0]) removed_[ix_.producer[out]] = true;
    Node ln;
    ln.name = dv.name;
    ln.op_type = "LayerNormalization";
    ln.opset = 17;
    ln.inputs = {x, gamma};
    if (beta != kNoValue) ln.inputs.push_back(beta);
    ln.outputs = {out};
    ln.attrs["axis"] = Attribute::of_int(-1);
    ln.attrs["epsilon"] = Attribute::of_float(eps);
    removed_[i] = false;  // the division (in `span` when gamma follows) becomes the LayerNormalization
    g_.nodes[i] = std::move(ln);
  }

 private:
  const Node* producer(int v) const {
    return v == kNoValue || ix_.producer[v] < 0 || removed_[ix_.producer[v]] ? nullptr : &g_.nodes[ix_.producer[v]];
  }
  const Node* sole(int v, const char* op, std::vector<int>* span) const {
    const Node* n = producer(v);
    if (!n || ix_.uses[v] != 1 || n->op_type != op || !n->domain.empty() || n->outputs.size() != 1) return nullptr;
    span->push_back(v);
    return n;
  }
  // The one node reading `v`, if it is the binary `op` and `v` is not a graph output.
  const Node* only_reader(int v, const char* op) const {
    const int j = ix_.sole_reader(v);
    if (j < 0 || removed_[j]) return nullptr;
    const Node& n = g_.nodes[j];
    return n.op_type == op && n.domain.empty() && n.inputs.size() == 2 && n.outputs.size() == 1 ? &n : nullptr;
  }
  bool scalar(int v, float* out) const { return float_scalar(g_, v, out); }
  bool vector_const(int v) const {
    auto it = g_.initializers.find(v);
    return it != g_.initializers.end() && it->second.dtype() == DType::kFloat32 && it->second.rank() == 1;
  }
  // ReduceMean over the last axis, keeping dims (axes [-1], as an attribute or a constant input).
  bool last_axis_mean(const Node& n) const {
    if (n.attr_int("keepdims", 1) != 1 || n.inputs.empty()) return false;
    std::vector<int64_t> axes;
    if (n.inputs.size() > 1 && n.inputs[1] != kNoValue) {
      auto it = g_.initializers.find(n.inputs[1]);
      if (it == g_.initializers.end() || it->second.dtype() != DType::kInt64) return false;
      axes.assign(it->second.data<int64_t>(), it->second.data<int64_t>() + it->second.numel());
    } else {
      axes = n.attr_ints("axes");
    }
    if (axes.size() != 1) return false;
    if (axes[0] == -1) return true;
    const Value& x = g_.values[n.inputs[0]];
    return x.has_shape && axes[0] == static_cast<int64_t>(x.dims.size()) - 1;
  }

  Graph& g_;
  GraphIndex ix_;
  std::vector<bool> removed_;
};

void fuse_skip(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (Node& ln : g.nodes) {
    if (ln.op_type != "LayerNormalization" || !ln.domain.empty() || ln.inputs.size() < 2 || ln.outputs.empty())
      continue;
    bool only_y = true;
    for (size_t o = 1; o < ln.outputs.size(); ++o) only_y = only_y && ln.outputs[o] == kNoValue;
    const int s = ln.inputs[0];
    if (!only_y || s == kNoValue || ix.producer[s] < 0) continue;
    const size_t ai = static_cast<size_t>(ix.producer[s]);
    const Node& add = g.nodes[ai];
    if (add.op_type != "Add" || !add.domain.empty() || add.inputs.size() != 2 || add.outputs.size() != 1 ||
        removed[ai] || add.inputs[0] == kNoValue || add.inputs[1] == kNoValue)
      continue;
    std::vector<int> inputs = {add.inputs[0], add.inputs[1], ln.inputs[1]};
    if (ln.inputs.size() > 2) inputs.push_back(ln.inputs[2]);
    ln.outputs.resize(1);
    if (ix.uses[s] > 1) ln.outputs.push_back(s);  // the residual stream goes on: hand out the sum
    ln.inputs = std::move(inputs);
    ln.op_type = "SkipLayerNormalization";
    ln.domain = "com.mserve";
    ln.opset = 1;
    ln.attrs.erase("stash_type");
    removed[ai] = true;
  }
  erase_nodes(g, removed);
}

}  // namespace

Status fuse_layer_norm(Graph& g) {
  {
    LayerNormMatcher m(g);
    for (size_t i = 0; i < g.nodes.size(); ++i) m.match(i);
    erase_nodes(g, m.removed());
  }
  fuse_skip(g);
  return Status::OK();
}

}  // namespace mserve
