// ai.onnx.ml TreeEnsemble (opset 5): the successor of TreeEnsembleRegressor/Classifier. Interior
// nodes are `nodes_*` tuples; a branch points at another node or, when nodes_trueleafs /
// nodes_falseleafs says so, at a leaf (leaf_targetids, leaf_weights). tree_roots index the nodes;
// a root whose two branches are the same leaf is a one-leaf tree. Modes: 0 BRANCH_LEQ, 1 LT,
// 2 GTE, 3 GT, 4 EQ, 5 NEQ, 6 MEMBER (feature in the node's set; the sets are listed in
// membership_values in node order, each ended by a NaN). A NaN feature takes the true branch when
// the comparison holds or nodes_missing_value_tracks_true is set.
//
// X [N, F] (or [F]) of float, double or float16; Y [N, n_targets] of X's type. Features are
// compared in double (exact for every input type); scores are accumulated in double. Aggregates:
// 0 AVERAGE (sum / number of trees), 1 SUM, 2 MIN, 3 MAX (MIN/MAX over the trees that score the
// target; a target no tree scores is 0, as in ONNX Runtime). post_transform follows the spec's
// numbering (0 NONE, 1 SOFTMAX, 2 LOGISTIC, 3 SOFTMAX_ZERO, 4 PROBIT) and applies to every row.
#include <algorithm>
#include <atomic>
#include <cmath>

#include "core/kernels/common.h"
#include "core/kernels/ml_common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum Mode : uint8_t { kLeq, kLt, kGte, kGt, kEq, kNeq, kMember };
enum class Agg { kAverage, kSum, kMin, kMax };

struct Ensemble {
  // Per node. Children: >= 0 is a node index, < 0 is leaf ~child.
  std::vector<int32_t> feature, on_true, on_false;
  std::vector<uint8_t> mode, nan_true;
  std::vector<double> split;
  std::vector<int32_t> set_begin, set_end;  // MEMBER nodes: range of `members`
  std::vector<double> members;
  std::vector<int32_t> roots;  // encoded like children
  std::vector<int32_t> leaf_target;
  std::vector<double> leaf_weight;
  int64_t max_feature = -1;
  int64_t targets = 0;
};

std::vector<double> tensor_values(const Node& n, const char* name) {
  const Attribute* a = n.attr(name);
  if (!a) return {};
  if (a->kind == Attribute::Kind::kTensor) {
    std::vector<double> v(a->t.numel());
    for (int64_t i = 0; i < a->t.numel(); ++i) v[i] = a->t.float_at(i);
    return v;
  }
  return std::vector<double>(a->floats.begin(), a->floats.end());
}

std::vector<int64_t> tensor_ints(const Node& n, const char* name) {
  const Attribute* a = n.attr(name);
  if (!a) return {};
  if (a->kind == Attribute::Kind::kTensor) {
    std::vector<int64_t> v(a->t.numel());
    for (int64_t i = 0; i < a->t.numel(); ++i) v[i] = a->t.int_at(i);
    return v;
  }
  return a->ints;
}

StatusOr<Ensemble> build(const Node& n) {
  Ensemble e;
  const auto feat = n.attr_ints("nodes_featureids"), t_id = n.attr_ints("nodes_truenodeids"),
             f_id = n.attr_ints("nodes_falsenodeids"), t_leaf = n.attr_ints("nodes_trueleafs"),
             f_leaf = n.attr_ints("nodes_falseleafs"), miss = n.attr_ints("nodes_missing_value_tracks_true"),
             roots = n.attr_ints("tree_roots"), targets = n.attr_ints("leaf_targetids");
  const auto modes = tensor_ints(n, "nodes_modes");
  const auto splits = tensor_values(n, "nodes_splits"), weights = tensor_values(n, "leaf_weights"),
             members = tensor_values(n, "membership_values");
  const size_t count = feat.size(), leaves = targets.size();
  MS_CHECK_ARG(count > 0, "the ensemble has no nodes");
  MS_CHECK_ARG(modes.size() == count && splits.size() == count && t_id.size() == count && f_id.size() == count &&
                   t_leaf.size() == count && f_leaf.size() == count && (miss.empty() || miss.size() == count),
               "the nodes_* attributes have different lengths");
  MS_CHECK_ARG(weights.size() == leaves, "leaf_targetids and leaf_weights have different lengths");
  MS_CHECK_ARG(!roots.empty(), "tree_roots is empty");
  MS_CHECK_ARG(count < (1u << 30) && leaves < (1u << 30), "too many nodes");

  const int64_t n_targets = n.attr("n_targets") ? n.attr_int("n_targets", 0)
                                                : (leaves ? *std::max_element(targets.begin(), targets.end()) + 1 : 1);
  MS_CHECK_ARG(n_targets >= 1, "n_targets must be positive");
  e.targets = n_targets;
  for (int64_t t : targets)
    MS_CHECK_ARG(t >= 0 && t < n_targets, "leaf target id " + std::to_string(t) + " is outside [0, n_targets)");
  e.leaf_target.assign(targets.begin(), targets.end());
  e.leaf_weight = weights;

  auto child = [&](int64_t id, int64_t is_leaf, int32_t* out) -> Status {
    if (is_leaf) {
      MS_CHECK_ARG(id >= 0 && id < static_cast<int64_t>(leaves), "leaf index " + std::to_string(id) + " out of range");
      *out = ~static_cast<int32_t>(id);
    } else {
      MS_CHECK_ARG(id >= 0 && id < static_cast<int64_t>(count), "node index " + std::to_string(id) + " out of range");
      *out = static_cast<int32_t>(id);
    }
    return Status::OK();
  };

  e.feature.resize(count);
  e.on_true.resize(count);
  e.on_false.resize(count);
  e.mode.resize(count);
  e.nan_true.resize(count);
  e.split = splits;
  e.set_begin.assign(count, 0);
  e.set_end.assign(count, 0);
  size_t next_member = 0;
  for (size_t i = 0; i < count; ++i) {
    MS_CHECK_ARG(modes[i] >= kLeq && modes[i] <= kMember, "unknown node mode " + std::to_string(modes[i]));
    e.mode[i] = static_cast<uint8_t>(modes[i]);
    e.nan_true[i] = !miss.empty() && miss[i] != 0;
    MS_CHECK_ARG(feat[i] >= 0 && feat[i] < (int64_t{1} << 31),
                 "feature id " + std::to_string(feat[i]) + " out of range");
    e.feature[i] = static_cast<int32_t>(feat[i]);
    MS_RETURN_IF_ERROR(child(t_id[i], t_leaf[i], &e.on_true[i]));
    MS_RETURN_IF_ERROR(child(f_id[i], f_leaf[i], &e.on_false[i]));
    if (e.mode[i] == kMember) {
      // The next NaN-terminated run of membership_values (a missing final NaN ends it too).
      MS_CHECK_ARG(next_member < members.size(), "membership_values has fewer sets than BRANCH_MEMBER nodes");
      e.set_begin[i] = static_cast<int32_t>(e.members.size());
      for (; next_member < members.size() && !std::isnan(members[next_member]); ++next_member)
        e.members.push_back(members[next_member]);
      ++next_member;
      e.set_end[i] = static_cast<int32_t>(e.members.size());
    }
  }
  for (int64_t r : roots) {
    MS_CHECK_ARG(r >= 0 && r < static_cast<int64_t>(count), "tree root " + std::to_string(r) + " out of range");
    if (t_leaf[r] && f_leaf[r] && t_id[r] == f_id[r]) {
      e.roots.push_back(e.on_true[r]);  // a one-leaf tree
    } else {
      e.roots.push_back(static_cast<int32_t>(r));
    }
  }
  // Features read by nodes reachable from the roots.
  std::vector<uint8_t> seen(count, 0);
  std::vector<int32_t> stack;
  for (int32_t r : e.roots)
    if (r >= 0) stack.push_back(r);
  while (!stack.empty()) {
    const int32_t i = stack.back();
    stack.pop_back();
    if (seen[i]) continue;
    seen[i] = 1;
    e.max_feature = std::max<int64_t>(e.max_feature, e.feature[i]);
    if (e.on_true[i] >= 0) stack.push_back(e.on_true[i]);
    if (e.on_false[i] >= 0) stack.push_back(e.on_false[i]);
  }
  return e;
}

bool goes_true(const Ensemble& e, int32_t i, double x) {
  bool r = false;
  switch (e.mode[i]) {
    case kLeq: r = x <= e.split[i]; break;
    case kLt: r = x < e.split[i]; break;
    case kGte: r = x >= e.split[i]; break;
    case kGt: r = x > e.split[i]; break;
    case kEq: r = x == e.split[i]; break;
    case kNeq: r = x != e.split[i]; break;
    case kMember:
      for (int32_t k = e.set_begin[i]; k < e.set_end[i] && !r; ++k) r = x == e.members[k];
      break;
  }
  return r || (e.nan_true[i] && std::isnan(x));
}

class TreeEnsembleKernel final : public Kernel {
 public:
  TreeEnsembleKernel(Ensemble e, Agg agg, PostTransform pt) : e_(std::move(e)), agg_(agg), pt_(pt) {}

  Status infer(InferContext& ctx) const override {
    const DType t = ctx.dtype(0);
    if (t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kFloat16)
      return Unsupported(std::string("input dtype ") + dtype_name(t) + " is not supported");
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() == 1 || s.rank() == 2, "X must be 1-D or 2-D, got " + s.str());
    const int64_t feats = s[s.rank() - 1], rows = s.rank() == 1 ? 1 : s[0];
    MS_CHECK_ARG(e_.max_feature < feats, "the trees read feature " + std::to_string(e_.max_feature) + " but X has " +
                                             std::to_string(feats) + " features");
    ctx.set_output(0, t, Shape{rows, e_.targets});
    ctx.set_workspace(static_cast<size_t>(rows * e_.targets) * (sizeof(double) + 1));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    Status st;
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"), st = run<T>(ctx, x, y));
    return st;
  }

 private:
  template <class T>
  Status run(const ComputeContext& ctx, const Tensor& x, Tensor& y) const {
    const int64_t feats = x.dim(x.rank() - 1), rows = y.dim(0), nt = e_.targets;
    double* score = static_cast<double*>(ctx.workspace());
    uint8_t* has = reinterpret_cast<uint8_t*>(score + rows * nt);
    const T* xs = x.data<T>();
    T* out = y.data<T>();
    const int32_t max_steps = static_cast<int32_t>(e_.feature.size());
    std::atomic<bool> cyclic{false};
    ctx.pool().parallel_for(rows, 16, [&](int64_t b, int64_t end) {
      for (int64_t r = b; r < end; ++r) {
        const T* xr = xs + r * feats;
        double* s = score + r * nt;
        uint8_t* h = has + r * nt;
        std::fill(s, s + nt, 0.0);
        std::fill(h, h + nt, uint8_t{0});
        for (int32_t root : e_.roots) {
          int32_t i = root;
          for (int32_t steps = 0; i >= 0 && steps <= max_steps; ++steps)
            i = goes_true(e_, i, to_double(xr[e_.feature[i]])) ? e_.on_true[i] : e_.on_false[i];
          if (i >= 0) {
            cyclic = true;
            continue;
          }
          const int32_t leaf = ~i, c = e_.leaf_target[leaf];
          const double w = e_.leaf_weight[leaf];
          switch (agg_) {
            case Agg::kAverage:
            case Agg::kSum: s[c] += w; break;
            case Agg::kMin: s[c] = h[c] ? std::min(s[c], w) : w; break;
            case Agg::kMax: s[c] = h[c] ? std::max(s[c], w) : w; break;
          }
          h[c] = 1;
        }
        if (agg_ == Agg::kAverage)
          for (int64_t c = 0; c < nt; ++c) s[c] /= static_cast<double>(e_.roots.size());
        apply_post_transform(pt_, s, 1, nt);
        for (int64_t c = 0; c < nt; ++c) out[r * nt + c] = from_double<T>(s[c]);
      }
    });
    if (cyclic) return InvalidArgument("a tree does not end in a leaf (cyclic node links)");
    return Status::OK();
  }

  Ensemble e_;
  Agg agg_;
  PostTransform pt_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_ml_TreeEnsemble(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(Ensemble e, build(n));
  const int64_t agg = n.attr_int("aggregate_function", 1), pt = n.attr_int("post_transform", 0);
  MS_CHECK_ARG(agg >= 0 && agg <= 3, "aggregate_function must be in [0, 3], got " + std::to_string(agg));
  MS_CHECK_ARG(pt >= 0 && pt <= 4, "post_transform must be in [0, 4], got " + std::to_string(pt));
  static const PostTransform kPt[] = {PostTransform::kNone, PostTransform::kSoftmax, PostTransform::kLogistic,
                                      PostTransform::kSoftmaxZero, PostTransform::kProbit};
  return KernelPtr(new TreeEnsembleKernel(std::move(e), static_cast<Agg>(agg), kPt[pt]));
}

}  // namespace mserve
