// ai.onnx.ml TreeEnsembleRegressor and TreeEnsembleClassifier (opsets 1 and 3), as skl2onnx,
// onnxmltools, LightGBM and XGBoost exporters emit them. Trees are flattened at load time into
// index-linked arrays; each row walks every tree (step-bounded, so a malformed cyclic tree is
// an error, never a hang) and leaf weights are aggregated per target or class.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/exec/thread_pool.h"
#include "core/kernels/common.h"
#include "core/kernels/ml_common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

enum class Rule : uint8_t { kLeq, kLt, kGte, kGt, kEq, kNeq, kLeaf };
enum class Aggregate { kSum, kAverage, kMin, kMax };

struct Forest {
  std::vector<int32_t> feature, on_true, on_false;  // per node; children as node indices
  std::vector<float> threshold;
  std::vector<Rule> rule;
  std::vector<uint8_t> nan_true;
  std::vector<int32_t> roots, tree_size;
  std::vector<int32_t> leaf_begin, leaf_end;  // per node: range into leaf_target / leaf_weight
  std::vector<int32_t> leaf_target;
  std::vector<float> leaf_weight;
  int64_t max_feature = -1;
};

std::vector<float> float_list(const Node& n, const std::string& name) {
  if (const Attribute* t = n.attr(name + "_as_tensor"); t && t->kind == Attribute::Kind::kTensor) {
    std::vector<float> v(t->t.numel());
    for (int64_t i = 0; i < t->t.numel(); ++i) v[i] = static_cast<float>(t->t.float_at(i));
    return v;
  }
  const Attribute* a = n.attr(name);
  return a ? a->floats : std::vector<float>{};
}

StatusOr<Rule> parse_rule(const std::string& s) {
  if (s == "BRANCH_LEQ") return Rule::kLeq;
  if (s == "BRANCH_LT") return Rule::kLt;
  if (s == "BRANCH_GTE") return Rule::kGte;
  if (s == "BRANCH_GT") return Rule::kGt;
  if (s == "BRANCH_EQ") return Rule::kEq;
  if (s == "BRANCH_NEQ") return Rule::kNeq;
  if (s == "LEAF") return Rule::kLeaf;
  return InvalidArgument("unknown node mode '" + s + "'");
}

// `prefix` is "target" (regressor) or "class" (classifier).
StatusOr<Forest> build_forest(const Node& n, const std::string& prefix) {
  Forest f;
  const auto tree = n.attr_ints("nodes_treeids"), id = n.attr_ints("nodes_nodeids"),
             feat = n.attr_ints("nodes_featureids"), t_id = n.attr_ints("nodes_truenodeids"),
             f_id = n.attr_ints("nodes_falsenodeids"), nan_true = n.attr_ints("nodes_missing_value_tracks_true");
  const auto values = float_list(n, "nodes_values");
  const Attribute* modes = n.attr("nodes_modes");
  const size_t count = tree.size();
  MS_CHECK_ARG(count > 0, "the ensemble has no nodes");
  MS_CHECK_ARG(id.size() == count && feat.size() == count && t_id.size() == count && f_id.size() == count &&
                   values.size() == count && modes && modes->strings.size() == count &&
                   (nan_true.empty() || nan_true.size() == count),
               "the nodes_* attributes have different lengths");
  std::map<std::pair<int64_t, int64_t>, int32_t> index;
  std::map<int64_t, int32_t> tree_index;
  for (size_t i = 0; i < count; ++i) {
    if (!index.emplace(std::make_pair(tree[i], id[i]), static_cast<int32_t>(i)).second)
      return InvalidArgument("node " + std::to_string(id[i]) + " of tree " + std::to_string(tree[i]) + " is defined twice");
    if (tree_index.emplace(tree[i], static_cast<int32_t>(f.roots.size())).second) {
      f.roots.push_back(static_cast<int32_t>(i));  // a tree's first node is its root
      f.tree_size.push_back(0);
    }
    ++f.tree_size[tree_index[tree[i]]];
  }
  f.feature.resize(count);
  f.on_true.resize(count);
  f.on_false.resize(count);
  f.threshold = values;
  f.rule.resize(count);
  f.nan_true.resize(count);
  for (size_t i = 0; i < count; ++i) {
    MS_ASSIGN_OR_RETURN(f.rule[i], parse_rule(modes->strings[i]));
    f.nan_true[i] = !nan_true.empty() && nan_true[i] != 0;
    if (f.rule[i] == Rule::kLeaf) continue;
    MS_CHECK_ARG(feat[i] >= 0, "negative feature id");
    f.feature[i] = static_cast<int32_t>(feat[i]);
    f.max_feature = std::max(f.max_feature, feat[i]);
    auto t = index.find({tree[i], t_id[i]}), e = index.find({tree[i], f_id[i]});
    MS_CHECK_ARG(t != index.end() && e != index.end(),
                 "node " + std::to_string(id[i]) + " of tree " + std::to_string(tree[i]) + " points at a missing child");
    f.on_true[i] = t->second;
    f.on_false[i] = e->second;
  }
  const auto l_tree = n.attr_ints(prefix + "_treeids"), l_node = n.attr_ints(prefix + "_nodeids"),
             l_id = n.attr_ints(prefix + "_ids");
  const auto l_w = float_list(n, prefix + "_weights");
  MS_CHECK_ARG(l_node.size() == l_tree.size() && l_id.size() == l_tree.size() && l_w.size() == l_tree.size(),
               "the " + prefix + "_* attributes have different lengths");
  // Group leaf weights by node.
  std::vector<std::vector<std::pair<int32_t, float>>> per_node(count);
  for (size_t k = 0; k < l_tree.size(); ++k) {
    auto it = index.find({l_tree[k], l_node[k]});
    MS_CHECK_ARG(it != index.end(), "a " + prefix + " weight refers to a missing node");
    MS_CHECK_ARG(l_id[k] >= 0, "negative " + prefix + " id");
    per_node[it->second].emplace_back(static_cast<int32_t>(l_id[k]), l_w[k]);
  }
  f.leaf_begin.resize(count);
  f.leaf_end.resize(count);
  for (size_t i = 0; i < count; ++i) {
    f.leaf_begin[i] = static_cast<int32_t>(f.leaf_target.size());
    for (auto [t, w] : per_node[i]) {
      f.leaf_target.push_back(t);
      f.leaf_weight.push_back(w);
    }
    f.leaf_end[i] = static_cast<int32_t>(f.leaf_target.size());
  }
  return f;
}

inline bool goes_true(Rule r, float x, float th) {
  switch (r) {
    case Rule::kLeq: return x <= th;
    case Rule::kLt: return x < th;
    case Rule::kGte: return x >= th;
    case Rule::kGt: return x > th;
    case Rule::kEq: return x == th;
    case Rule::kNeq: return x != th;
    case Rule::kLeaf: return false;
  }
  return false;
}

// The leaf that row `x` reaches in tree `t`, or -1 when the walk does not end (a cycle).
int32_t find_leaf(const Forest& f, size_t t, const float* x) {
  int32_t i = f.roots[t];
  for (int32_t steps = 0; steps <= f.tree_size[t]; ++steps) {
    if (f.rule[i] == Rule::kLeaf) return i;
    const float v = x[f.feature[i]];
    const bool right = std::isnan(v) ? f.nan_true[i] != 0 : goes_true(f.rule[i], v, f.threshold[i]);
    i = right ? f.on_true[i] : f.on_false[i];
  }
  return -1;
}

// Shared by both kernels: X [N, F] (or [F]) read as float into the workspace.
class TreeKernelBase : public Kernel {
 protected:
  explicit TreeKernelBase(Forest f, int64_t outputs) : f_(std::move(f)), outputs_(outputs) {}
  Status check_input(InferContext& ctx, int64_t* n) const {
    const DType t = ctx.dtype(0);
    if (t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kInt64 && t != DType::kInt32)
      return Unsupported(std::string("input dtype ") + dtype_name(t) + " is not supported");
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() == 1 || s.rank() == 2, "X must be 1-D or 2-D, got " + s.str());
    const int64_t feats = s[s.rank() - 1];
    MS_CHECK_ARG(f_.max_feature < feats, "the trees read feature " + std::to_string(f_.max_feature) + " but X has " +
                                             std::to_string(feats) + " features");
    *n = s.rank() == 1 ? 1 : s[0];
    ctx.set_workspace(static_cast<size_t>(s.numel()) * sizeof(float));
    return Status::OK();
  }
  // scores[N, outputs] aggregated over trees (no base values, no post-transform).
  Status score(const ComputeContext& ctx, Aggregate agg, float* scores) const {
    const Tensor& x = ctx.input(0);
    float* xf = static_cast<float*>(ctx.workspace());
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"),
                      for (int64_t i = 0; i < x.numel(); ++i) xf[i] = static_cast<float>(x.data<T>()[i]));
    const int64_t feats = x.dim(x.rank() - 1), rows = feats ? x.numel() / feats : 0;
    bool cyclic = false;
    ctx.pool().parallel_for(rows, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float* s = scores + r * outputs_;
        const float init = agg == Aggregate::kMin   ? std::numeric_limits<float>::max()
                           : agg == Aggregate::kMax ? std::numeric_limits<float>::lowest()
                                                    : 0.0f;
        std::fill(s, s + outputs_, init);
        for (size_t t = 0; t < f_.roots.size(); ++t) {
          const int32_t leaf = find_leaf(f_, t, xf + r * feats);
          if (leaf < 0) {
            cyclic = true;
            continue;
          }
          for (int32_t k = f_.leaf_begin[leaf]; k < f_.leaf_end[leaf]; ++k) {
            const int32_t c = f_.leaf_target[k];
            if (c >= outputs_) continue;
            const float w = f_.leaf_weight[k];
            s[c] = agg == Aggregate::kMin ? std::min(s[c], w) : agg == Aggregate::kMax ? std::max(s[c], w) : s[c] + w;
          }
        }
        if (agg == Aggregate::kAverage)
          for (int64_t c = 0; c < outputs_; ++c) s[c] /= static_cast<float>(f_.roots.size());
      }
    });
    if (cyclic) return InvalidArgument("a tree does not end in a leaf (cyclic node links)");
    return Status::OK();
  }
  Forest f_;
  int64_t outputs_;
};

class TreeRegressorKernel final : public TreeKernelBase {
 public:
  TreeRegressorKernel(Forest f, int64_t targets, Aggregate agg, std::vector<float> base, PostTransform pt)
      : TreeKernelBase(std::move(f), targets), agg_(agg), base_(std::move(base)), pt_(pt) {}
  Status infer(InferContext& ctx) const override {
    int64_t n;
    MS_RETURN_IF_ERROR(check_input(ctx, &n));
    ctx.set_output(0, DType::kFloat32, Shape{n, outputs_});
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    Tensor& y = ctx.output(0);
    MS_RETURN_IF_ERROR(score(ctx, agg_, y.data<float>()));
    float* s = y.data<float>();
    for (int64_t r = 0; r < y.dim(0); ++r)
      for (int64_t c = 0; c < outputs_ && !base_.empty(); ++c) s[r * outputs_ + c] += base_[c];
    apply_post_transform(pt_, s, y.dim(0), outputs_);
    return Status::OK();
  }

 private:
  Aggregate agg_;
  std::vector<float> base_;
  PostTransform pt_;
};

class TreeClassifierKernel final : public TreeKernelBase {
 public:
  // With string labels, `labels` are their indices and the label output is a string tensor.
  TreeClassifierKernel(Forest f, std::vector<int64_t> labels, std::vector<std::string> string_labels, bool binary,
                       std::vector<float> base, PostTransform pt)
      : TreeKernelBase(std::move(f), static_cast<int64_t>(labels.size())),
        labels_(std::move(labels)),
        string_labels_(std::move(string_labels)),
        binary_(binary),
        base_(std::move(base)),
        pt_(pt) {}
  bool supports_strings() const override { return !string_labels_.empty(); }
  Status infer(InferContext& ctx) const override {
    int64_t n;
    MS_RETURN_IF_ERROR(check_input(ctx, &n));
    ctx.set_output(0, string_labels_.empty() ? DType::kInt64 : DType::kString, Shape{n});
    ctx.set_output(1, DType::kFloat32, Shape{n, outputs_});
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    Tensor& z = ctx.output(1);
    float* s = z.data<float>();
    MS_RETURN_IF_ERROR(score(ctx, Aggregate::kSum, s));
    const int64_t n = z.dim(0), c = outputs_;
    for (int64_t r = 0; r < n; ++r) {
      float* row = s + r * c;
      for (int64_t k = 0; k < c && k < static_cast<int64_t>(base_.size()); ++k) row[k] += base_[k];
      if (binary_ && c == 2) {
        // One class scored (typical of binary boosted trees): derive the other one.
        row[1] = row[0];
        row[0] = (pt_ == PostTransform::kNone || pt_ == PostTransform::kProbit) ? 1.0f - row[1] : -row[1];
      }
      apply_post_transform(pt_, row, 1, c);
      const int64_t label = labels_[std::max_element(row, row + c) - row];
      if (string_labels_.empty()) ctx.output(0).data<int64_t>()[r] = label;
      else ctx.output(0).str(r) = string_labels_[label];
    }
    return Status::OK();
  }

 private:
  std::vector<int64_t> labels_;
  std::vector<std::string> string_labels_;
  bool binary_;
  std::vector<float> base_;
  PostTransform pt_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_ml_TreeEnsembleRegressor(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(Forest f, build_forest(n, "target"));
  MS_ASSIGN_OR_RETURN(PostTransform pt, parse_post_transform(n.attr_string("post_transform", "NONE")));
  const std::string a = n.attr_string("aggregate_function", "SUM");
  Aggregate agg;
  if (a == "SUM") agg = Aggregate::kSum;
  else if (a == "AVERAGE") agg = Aggregate::kAverage;
  else if (a == "MIN") agg = Aggregate::kMin;
  else if (a == "MAX") agg = Aggregate::kMax;
  else return Unsupported("aggregate_function '" + a + "' is not supported");
  const int64_t targets = n.attr_int("n_targets", 1);
  MS_CHECK_ARG(targets >= 1, "n_targets must be positive");
  return KernelPtr(new TreeRegressorKernel(std::move(f), targets, agg, float_list(n, "base_values"), pt));
}

StatusOr<KernelPtr> create_onnx_ml_TreeEnsembleClassifier(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(Forest f, build_forest(n, "class"));
  MS_ASSIGN_OR_RETURN(PostTransform pt, parse_post_transform(n.attr_string("post_transform", "NONE")));
  std::vector<int64_t> labels = n.attr_ints("classlabels_int64s");
  std::vector<std::string> string_labels;
  if (const Attribute* a = n.attr("classlabels_strings"); a && !a->strings.empty()) {
    MS_CHECK_ARG(labels.empty(), "classlabels_int64s and classlabels_strings must not both be set");
    string_labels = a->strings;
    for (size_t i = 0; i < string_labels.size(); ++i) labels.push_back(static_cast<int64_t>(i));
  }
  MS_CHECK_ARG(!labels.empty(), "classlabels_int64s or classlabels_strings is required");
  const auto ids = n.attr_ints("class_ids");
  const bool one_id = !ids.empty() && std::all_of(ids.begin(), ids.end(), [&](int64_t v) { return v == ids[0]; });
  if (labels.size() == 1 && string_labels.empty()) labels = {0, labels[0]};  // a single label: "positive class"
  return KernelPtr(new TreeClassifierKernel(std::move(f), std::move(labels), std::move(string_labels),
                                            one_id && labels.size() == 2, float_list(n, "base_values"), pt));
}

}  // namespace mserve
