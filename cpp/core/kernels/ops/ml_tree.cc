// ai.onnx.ml TreeEnsembleRegressor and TreeEnsembleClassifier (opsets 1 and 3), as skl2onnx,
// onnxmltools, LightGBM and XGBoost exporters emit them. Trees are flattened at load time into
// index-linked arrays; each row walks every tree (step-bounded, so a malformed cyclic tree is
// an error, never a hang) and leaf weights are aggregated per target or class.
//
// Scores follow ONNX Runtime: features are compared in double (exact for float and double
// inputs), weights summed in float; MIN/MAX only see targets some tree scored; base_values are
// added after aggregation; with several targets, one that no tree scores for a row reads 0. A
// single-target regressor applies only PROBIT. A two-class classifier whose weights all go to one
// class id ("binary case") scores that class as the positive one: with class id 0 and at most
// one base value it outputs [1 - s, s] (all weights >= 0) or [-s, s] (LOGISTIC:
// [logistic(-s), logistic(s)]; PROBIT: [probit(s), 0]), and predicts the second label when
// s > 0.5 (weights >= 0) or s > 0; otherwise the transform applies to both classes (an unscored
// one reads 0). Other classifiers predict the first top raw score among scored classes (ONNX
// Runtime returns a literal 0/1 label when both of two classes are scored).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>

#include "core/kernels/common.h"
#include "core/kernels/ml_common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class Rule : uint8_t { kLeq, kLt, kGte, kGt, kEq, kNeq, kLeaf };
enum class Aggregate { kSum, kAverage, kMin, kMax };

struct Forest {
  std::vector<int32_t> feature, on_true, on_false;  // per node; children as node indices
  std::vector<double> threshold;
  std::vector<Rule> rule;
  std::vector<uint8_t> nan_true;
  std::vector<int32_t> roots, tree_size;
  std::vector<int32_t> leaf_begin, leaf_end;  // per node: range into leaf_target / leaf_weight
  std::vector<int32_t> leaf_target;
  std::vector<float> leaf_weight;
  int64_t max_feature = -1;
  // The walk's view of a node, in one cache line: what the arrays above hold per node.
  struct Step {
    double threshold;
    int32_t feature, on_true, on_false;
    Rule rule;
    uint8_t nan_true;
  };
  std::vector<Step> steps;
  bool all_leq = false;  // every branch is BRANCH_LEQ (what skl2onnx writes): see `pairs`
  // BRANCH_LEQ forests whose trees are proper trees are also laid out breadth-first with each
  // node's children side by side (true child, then false child), and every leaf looping to
  // itself: a walk is then `depth` branch-free steps, slot = first + !(x <= threshold), with no
  // test for having reached a leaf (that test mispredicted once per walk: ~5 ns).
  struct Pair {
    double threshold;  // +inf for a leaf (with nan_true: every row stays)
    int32_t feature;   // 0 for a leaf (any valid feature)
    int32_t first;     // slot of the true child, the false one is first + 1; a leaf's own slot
    uint8_t nan_true;
  };
  std::vector<Pair> pairs;
  std::vector<int32_t> pair_leaf;   // per slot: the leaf's node index in the arrays above, or -1
  std::vector<int32_t> pair_roots;  // per tree; empty when the forest is not laid out
  std::vector<int32_t> pair_depth;  // per tree: steps from the root to its deepest leaf
};

// Lays out `f.pairs` (see Forest::Pair); leaves it empty when a tree shares or revisits a node.
void pair_layout(Forest& f) {
  if (!f.all_leq || f.max_feature < 0) return;
  std::vector<Forest::Pair> pairs;
  std::vector<int32_t> leaf_of, roots, depths;
  std::vector<uint8_t> seen(f.rule.size(), 0);
  for (int32_t root : f.roots) {
    // Breadth-first: (node, slot, level) in visiting order; a node's children get the next two slots.
    struct Item {
      int32_t node, slot, level;
    };
    std::vector<Item> queue{{root, static_cast<int32_t>(pairs.size()), 0}};
    roots.push_back(static_cast<int32_t>(pairs.size()));
    pairs.emplace_back();
    leaf_of.push_back(-1);
    int32_t depth = 0;
    for (size_t q = 0; q < queue.size(); ++q) {
      const Item it = queue[q];
      if (seen[it.node]) return;  // shared or cyclic: keep the general walk
      seen[it.node] = 1;
      if (f.rule[it.node] == Rule::kLeaf) {
        pairs[it.slot] = Forest::Pair{std::numeric_limits<double>::infinity(), 0, it.slot, 1};
        leaf_of[it.slot] = it.node;
        depth = std::max(depth, it.level);
        continue;
      }
      const int32_t first = static_cast<int32_t>(pairs.size());
      pairs.resize(pairs.size() + 2);
      leaf_of.resize(leaf_of.size() + 2, -1);
      pairs[it.slot] = Forest::Pair{f.threshold[it.node], f.feature[it.node], first, f.nan_true[it.node]};
      queue.push_back({f.on_true[it.node], first, it.level + 1});
      queue.push_back({f.on_false[it.node], first + 1, it.level + 1});
    }
    depths.push_back(depth);
  }
  f.pairs = std::move(pairs);
  f.pair_leaf = std::move(leaf_of);
  f.pair_roots = std::move(roots);
  f.pair_depth = std::move(depths);
}

std::vector<float> float_list(const Node& n, const std::string& name) {
  if (const Attribute* t = n.attr(name + "_as_tensor"); t && t->kind == Attribute::Kind::kTensor) {
    std::vector<float> v(t->t.numel());
    for (int64_t i = 0; i < t->t.numel(); ++i) v[i] = static_cast<float>(t->t.float_at(i));
    return v;
  }
  const Attribute* a = n.attr(name);
  return a ? a->floats : std::vector<float>{};
}

// Thresholds keep double precision when given as a double tensor (nodes_values_as_tensor).
std::vector<double> double_list(const Node& n, const std::string& name) {
  if (const Attribute* t = n.attr(name + "_as_tensor"); t && t->kind == Attribute::Kind::kTensor) {
    std::vector<double> v(t->t.numel());
    for (int64_t i = 0; i < t->t.numel(); ++i) v[i] = t->t.float_at(i);
    return v;
  }
  const Attribute* a = n.attr(name);
  return a ? std::vector<double>(a->floats.begin(), a->floats.end()) : std::vector<double>{};
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
  const auto values = double_list(n, "nodes_values");
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
      return InvalidArgument("node " + std::to_string(id[i]) + " of tree " + std::to_string(tree[i]) +
                             " is defined twice");
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
    MS_CHECK_ARG(t != index.end() && e != index.end(), "node " + std::to_string(id[i]) + " of tree " +
                                                           std::to_string(tree[i]) + " points at a missing child");
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
  f.steps.resize(count);
  f.all_leq = true;
  for (size_t i = 0; i < count; ++i) {
    f.steps[i] = Forest::Step{f.threshold[i], f.feature[i], f.on_true[i], f.on_false[i], f.rule[i], f.nan_true[i]};
    f.all_leq = f.all_leq && (f.rule[i] == Rule::kLeq || f.rule[i] == Rule::kLeaf);
  }
  pair_layout(f);
  return f;
}

inline bool goes_true(Rule r, double x, double th) {
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

// The leaves that rows x[0..n) reach in tree `t` (n <= kWalkRows), or false when a walk does
// not end (a cycle). The rows walk in lockstep: their node loads are independent, so the CPU
// overlaps their cache misses (one row at a time waits on each). A NaN feature takes the true
// branch when the comparison holds (BRANCH_NEQ) or the node's nodes_missing_value_tracks_true
// is set.
constexpr int kWalkRows = 8;

// The end slots of rows x[0..n) in tree `t` on the paired layout: `depth` branch-free steps.
void find_slots_paired(const Forest& f, size_t t, const double* const* x, int n, int32_t* at) {
  const Forest::Pair* pr = f.pairs.data();
  for (int k = 0; k < n; ++k) at[k] = f.pair_roots[t];
  for (int32_t d = 0; d < f.pair_depth[t]; ++d)
    for (int k = 0; k < n; ++k) {
      const Forest::Pair& p = pr[at[k]];
      const double v = x[k][p.feature];
      const bool yes = v <= p.threshold || (p.nan_true != 0 && std::isnan(v));
      at[k] = p.first + (yes ? 0 : 1);
    }
}

// find_leaves on the paired layout (always ends: the trees are proper trees).
void find_leaves_paired(const Forest& f, size_t t, const double* const* x, int n, int32_t* leaf) {
  find_slots_paired(f, t, x, n, leaf);
  for (int k = 0; k < n; ++k) leaf[k] = f.pair_leaf[leaf[k]];
}

bool find_leaves(const Forest& f, size_t t, const double* const* x, int n, int32_t* leaf) {
  const Forest::Step* st = f.steps.data();
  for (int k = 0; k < n; ++k) leaf[k] = f.roots[t];
  for (int32_t steps = 0; steps <= f.tree_size[t]; ++steps) {
    bool moved = false;
    for (int k = 0; k < n; ++k) {
      const Forest::Step& s = st[leaf[k]];
      if (s.rule == Rule::kLeaf) continue;
      const double v = x[k][s.feature];
      const bool yes = goes_true(s.rule, v, s.threshold) || (s.nan_true != 0 && std::isnan(v));
      leaf[k] = yes ? s.on_true : s.on_false;
      moved = true;
    }
    if (!moved) return true;
  }
  for (int k = 0; k < n; ++k)
    if (st[leaf[k]].rule != Rule::kLeaf) return false;
  return true;
}

// Shared by both kernels: X [N, F] (or [F]) read as double into the workspace, then one byte per
// score saying whether some tree scored it.
class TreeKernelBase : public Kernel {
 protected:
  explicit TreeKernelBase(Forest f, int64_t outputs) : f_(std::move(f)), outputs_(outputs) {
    single_ = !f_.pair_roots.empty();
    for (size_t i = 0; i < f_.rule.size() && single_; ++i)
      if (f_.rule[i] == Rule::kLeaf) single_ = f_.leaf_end[i] - f_.leaf_begin[i] == 1;
  }
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
    ctx.set_workspace(static_cast<size_t>(s.numel()) * sizeof(double) + static_cast<size_t>(*n * outputs_));
    return Status::OK();
  }
  // Flags written by score(): scored(ctx)[r * outputs + c] != 0 when a tree scored (r, c).
  const uint8_t* scored(const ComputeContext& ctx) const {
    const Tensor& x = ctx.input(0);
    return static_cast<const uint8_t*>(ctx.workspace()) + x.numel() * sizeof(double);
  }
  // scores[N, outputs] aggregated over trees (no base values, no post-transform); unscored
  // entries are 0.
  Status score(const ComputeContext& ctx, Aggregate agg, float* scores) const {
    const Tensor& x = ctx.input(0);
    double* xd = static_cast<double*>(ctx.workspace());
    uint8_t* has = static_cast<uint8_t*>(ctx.workspace()) + x.numel() * sizeof(double);
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"),
                      for (int64_t i = 0; i < x.numel(); ++i) xd[i] = static_cast<double>(x.data<T>()[i]));
    const int64_t feats = x.dim(x.rank() - 1), rows = x.rank() == 1 ? 1 : x.dim(0);
    std::atomic<bool> cyclic{false};
    const int64_t blocks = (rows + kWalkRows - 1) / kWalkRows;
    // A block walks every tree: split only when each thread gets ~2000 row-tree walks.
    const int64_t grain = std::max<int64_t>(1, 2048 / (kWalkRows * std::max<int64_t>(1, f_.roots.size())));
    ctx.pool().parallel_for(blocks, grain, [&](int64_t b, int64_t e) {
      for (int64_t blk = b; blk < e; ++blk) {
        const int64_t r0 = blk * kWalkRows;
        const int n = static_cast<int>(std::min<int64_t>(kWalkRows, rows - r0));
        const double* xs[kWalkRows];
        for (int k = 0; k < n; ++k) {
          xs[k] = xd + (r0 + k) * feats;
          std::fill(scores + (r0 + k) * outputs_, scores + (r0 + k + 1) * outputs_, 0.0f);
          std::fill(has + (r0 + k) * outputs_, has + (r0 + k + 1) * outputs_, uint8_t{0});
        }
        int32_t leaves[kWalkRows];
        for (size_t t = 0; t < f_.roots.size(); ++t) {
          bool ended = true;
          if (single_ && (agg == Aggregate::kSum || agg == Aggregate::kAverage)) {
            // Every leaf holds one weight: add it straight from the walk's end slot.
            find_slots_paired(f_, t, xs, n, leaves);
            for (int r = 0; r < n; ++r) {
              const int32_t k = f_.leaf_begin[f_.pair_leaf[leaves[r]]];
              scores[(r0 + r) * outputs_ + f_.leaf_target[k]] += f_.leaf_weight[k];
              has[(r0 + r) * outputs_ + f_.leaf_target[k]] = 1;
            }
            continue;
          }
          if (!f_.pair_roots.empty())
            find_leaves_paired(f_, t, xs, n, leaves);
          else
            ended = find_leaves(f_, t, xs, n, leaves);
          if (!ended) {
            cyclic = true;
            break;
          }
          for (int r = 0; r < n; ++r) {
            float* s = scores + (r0 + r) * outputs_;
            uint8_t* h = has + (r0 + r) * outputs_;
            for (int32_t k = f_.leaf_begin[leaves[r]]; k < f_.leaf_end[leaves[r]]; ++k) {
              const int32_t c = f_.leaf_target[k];
              const float w = f_.leaf_weight[k];
              s[c] = !h[c] && (agg == Aggregate::kMin || agg == Aggregate::kMax) ? w
                     : agg == Aggregate::kMin                                    ? std::min(s[c], w)
                     : agg == Aggregate::kMax                                    ? std::max(s[c], w)
                                                                                 : s[c] + w;
              h[c] = 1;
            }
          }
        }
        if (agg == Aggregate::kAverage)
          for (int64_t i = r0 * outputs_; i < (r0 + n) * outputs_; ++i)
            scores[i] /= static_cast<float>(f_.roots.size());
      }
    });
    if (cyclic) return InvalidArgument("a tree does not end in a leaf (cyclic node links)");
    return Status::OK();
  }
  Forest f_;
  int64_t outputs_;
  bool single_ = false;  // paired layout and one weight per leaf: the summing fast path
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
    const uint8_t* has = scored(ctx);
    // Several targets: one no tree scores reads 0, base value or not (as in ONNX Runtime).
    for (int64_t i = 0; i < y.numel() && !base_.empty(); ++i)
      if (outputs_ == 1 || has[i]) s[i] += base_[i % outputs_];
    // One target: ONNX Runtime applies PROBIT only (the other transforms act across targets).
    if (outputs_ > 1 || pt_ == PostTransform::kProbit) apply_post_transform(pt_, s, y.dim(0), outputs_);
    return Status::OK();
  }

 private:
  Aggregate agg_;
  std::vector<float> base_;
  PostTransform pt_;
};

class TreeClassifierKernel final : public TreeKernelBase {
 public:
  // binary_id: the one class id every weight goes to in a two-class ensemble, else -1.
  // With string labels, `labels` are their indices and the label output is a string tensor.
  TreeClassifierKernel(Forest f, std::vector<int64_t> labels, std::vector<std::string> string_labels, int binary_id,
                       bool all_positive, std::vector<float> base, PostTransform pt)
      : TreeKernelBase(std::move(f), static_cast<int64_t>(labels.size())),
        labels_(std::move(labels)),
        string_labels_(std::move(string_labels)),
        binary_id_(binary_id),
        all_positive_(all_positive),
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
    const uint8_t* has = scored(ctx);
    const int64_t n = z.dim(0), c = outputs_, nb = static_cast<int64_t>(base_.size());
    Tensor& out_label = ctx.output(0);
    auto put_label = [&](int64_t r, int64_t label) {
      if (string_labels_.empty())
        out_label.data<int64_t>()[r] = label;
      else
        out_label.str(r) = string_labels_[label];
    };
    for (int64_t r = 0; r < n; ++r) {
      float* row = s + r * c;
      const uint8_t* h = has + r * c;
      if (binary_id_ >= 0) {
        // Base values count for scored classes only (an unscored class reads 0).
        for (int64_t k = 0; k < 2 && k < nb; ++k)
          if (h[k]) row[k] += base_[k];
        if (binary_id_ == 0 && nb <= 1) {
          if (nb == 1 && !h[0]) row[0] += base_[0];
          const float v = row[0];
          put_label(r, labels_[(all_positive_ ? v > 0.5f : v > 0.0f) ? 1 : 0]);
          if (pt_ == PostTransform::kProbit) {
            row[0] = probit(v);
            row[1] = 0.0f;
          } else if (pt_ == PostTransform::kLogistic) {
            row[0] = logistic(-v);
            row[1] = logistic(v);
          } else {
            row[0] = all_positive_ ? 1.0f - v : -v;
            row[1] = v;
          }
          continue;
        }
        const float v = h[1] ? row[1] : h[0] ? row[0] : 0.0f;
        put_label(r, labels_[(all_positive_ ? v > 0.5f : v > 0.0f) ? 1 : 0]);
      } else {
        // Base values make a class scored; the label is the first top raw score among them.
        int64_t best = -1;
        for (int64_t k = 0; k < c; ++k) {
          const bool hk = h[k] || k < nb;
          if (k < nb) row[k] += base_[k];
          if (hk && (best < 0 || row[k] > row[best])) best = k;
        }
        put_label(r, labels_[best < 0 ? 0 : best]);
      }
      apply_post_transform(pt_, row, 1, c);
    }
    return Status::OK();
  }

 private:
  std::vector<int64_t> labels_;
  std::vector<std::string> string_labels_;
  int binary_id_;
  bool all_positive_;
  std::vector<float> base_;
  PostTransform pt_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_ml_TreeEnsembleRegressor(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(Forest f, build_forest(n, "target"));
  MS_ASSIGN_OR_RETURN(PostTransform pt, parse_post_transform(n.attr_string("post_transform", "NONE")));
  const std::string a = n.attr_string("aggregate_function", "SUM");
  Aggregate agg;
  if (a == "SUM")
    agg = Aggregate::kSum;
  else if (a == "AVERAGE")
    agg = Aggregate::kAverage;
  else if (a == "MIN")
    agg = Aggregate::kMin;
  else if (a == "MAX")
    agg = Aggregate::kMax;
  else
    return Unsupported("aggregate_function '" + a + "' is not supported");
  const int64_t targets = n.attr_int("n_targets", 1);
  MS_CHECK_ARG(targets >= 1, "n_targets must be positive");
  for (int32_t t : f.leaf_target) MS_CHECK_ARG(t < targets, "target id " + std::to_string(t) + " >= n_targets");
  std::vector<float> base = float_list(n, "base_values");
  MS_CHECK_ARG(
      base.empty() || static_cast<int64_t>(base.size()) == targets,
      "base_values has " + std::to_string(base.size()) + " values for " + std::to_string(targets) + " targets");
  return KernelPtr(new TreeRegressorKernel(std::move(f), targets, agg, std::move(base), pt));
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
  for (int32_t t : f.leaf_target)
    MS_CHECK_ARG(t < static_cast<int64_t>(labels.size()), "class id " + std::to_string(t) + " has no label");
  const bool all_positive = std::all_of(f.leaf_weight.begin(), f.leaf_weight.end(), [](float w) { return w >= 0; });
  std::vector<float> base = float_list(n, "base_values");
  MS_CHECK_ARG(base.size() <= labels.size(), "more base_values than classes");
  const int binary_id = one_id && labels.size() == 2 ? static_cast<int>(ids[0]) : -1;
  return KernelPtr(new TreeClassifierKernel(std::move(f), std::move(labels), std::move(string_labels), binary_id,
                                            all_positive, std::move(base), pt));
}

}  // namespace mserve
