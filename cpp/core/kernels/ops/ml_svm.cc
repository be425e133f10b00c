// ai.onnx.ml SVMClassifier and SVMRegressor, as skl2onnx exports scikit-learn's SVC, NuSVC, SVR,
// NuSVR and OneClassSVM (libsvm models: support vectors and, for classifiers, one-vs-one dual
// coefficients) and onnxmltools' liblinear-style models (no support vectors: one weight row per
// class, every class offset by rho[0]).
//
// Kernels: LINEAR x.v, POLY (gamma x.v + coef0)^degree, RBF exp(-gamma |x - v|^2),
// SIGMOID tanh(gamma x.v + coef0); kernel_params is [gamma, coef0, degree].
//
// SVMClassifier with support vectors (libsvm's layout): classes i < j are compared by
// sum_{m in i} coef[j-1][m] k[m] + sum_{m in j} coef[i][m] k[m] + rho[pair], summed in double;
// a positive value votes for i, otherwise for j, and the label is the class with the most votes
// (the first on a tie), as libsvm predicts. Scores: with prob_a/prob_b, the pairwise Platt
// probabilities 1 - logistic(a s + b), clipped to [1e-7, 1 - 1e-7], coupled into one
// probability per class by libsvm's iterative method (Wu, Lin and Weng 2004, in float, as ONNX
// Runtime runs it); without them, the pairwise decision values (two classes: [-s, s]).
// Without support vectors the scores are X . coef^T + rho[0], and the label their argmax; with
// two classes and no probabilities the second label wins on a score above 0 (0.5 when every
// coefficient is non-negative), as ONNX Runtime decides. post_transform then applies to each row.
//
// SVMRegressor: sum_m coef[m] k[m] + rho[0] (X . coef + rho[0] without support vectors);
// one_class maps the value to +1 (> 0) or -1. X [N, F] or [F] of float, double, int32 or int64;
// everything is computed in float apart from the one-vs-one sums.
#include <algorithm>
#include <cmath>

#include "core/kernels/common.h"
#include "core/kernels/ml_common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

Status check_input(const InferContext& ctx, int64_t features, const char* op) {
  const DType t = ctx.dtype(0);
  if (t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kInt64 && t != DType::kInt32)
    return InvalidArgument(std::string(op) + " takes float, double, int32 or int64 features, got " + dtype_name(t));
  MS_ASSIGN_OR_RETURN(Rows r, rows_of(ctx.shape(0)));
  MS_CHECK_ARG(r.f == features, std::string(op) + ": X has " + std::to_string(r.f) + " features, the model expects " +
                                    std::to_string(features));
  return Status::OK();
}

void to_float(const Tensor& x, float* out) {
  MS_SWITCH_NUMERIC(x.dtype(), T, return,
                    for (int64_t i = 0; i < x.numel(); ++i) out[i] = static_cast<float>(x.data<T>()[i]));
}

enum class SvmKernelType { kLinear, kPoly, kRbf, kSigmoid };

struct SvmKernelFn {
  SvmKernelType type = SvmKernelType::kLinear;
  float gamma = 0, coef0 = 0, degree = 0;

  // k[v] = K(x, vectors[v]) for `count` vectors of `f` features.
  void eval(const float* x, const float* vectors, int64_t count, int64_t f, float* k) const {
    for (int64_t v = 0; v < count; ++v) {
      const float* sv = vectors + v * f;
      float acc = 0;
      if (type == SvmKernelType::kRbf) {
        for (int64_t j = 0; j < f; ++j) {
          const float d = x[j] - sv[j];
          acc += d * d;
        }
        k[v] = std::exp(-gamma * acc);
        continue;
      }
      for (int64_t j = 0; j < f; ++j) acc += x[j] * sv[j];
      if (type == SvmKernelType::kLinear) {
        k[v] = acc;
      } else if (type == SvmKernelType::kPoly) {
        const float b = gamma * acc + coef0;
        k[v] = degree == 2 ? b * b : degree == 3 ? b * b * b : std::pow(b, degree);
      } else {
        k[v] = std::tanh(gamma * acc + coef0);
      }
    }
  }
};

StatusOr<SvmKernelFn> parse_kernel(const Node& n) {
  SvmKernelFn k;
  const std::string t = n.attr_string("kernel_type", "LINEAR");
  if (t == "LINEAR")
    k.type = SvmKernelType::kLinear;
  else if (t == "POLY")
    k.type = SvmKernelType::kPoly;
  else if (t == "RBF")
    k.type = SvmKernelType::kRbf;
  else if (t == "SIGMOID")
    k.type = SvmKernelType::kSigmoid;
  else
    return Unsupported("kernel_type '" + t + "' is not supported (LINEAR, POLY, RBF, SIGMOID are)");
  if (const Attribute* a = n.attr("kernel_params"); a && !a->floats.empty()) {
    MS_CHECK_ARG(a->floats.size() == 3,
                 "kernel_params must hold [gamma, coef0, degree], got " + std::to_string(a->floats.size()) + " values");
    k.gamma = a->floats[0];
    k.coef0 = a->floats[1];
    k.degree = a->floats[2];
  }
  return k;
}

std::vector<float> floats(const Node& n, const char* name) {
  const Attribute* a = n.attr(name);
  return a ? a->floats : std::vector<float>{};
}

// libsvm's multiclass_probability: p (classes) from the pairwise probabilities r (classes^2,
// r[i][j] = P(i | i or j)); q (classes^2) and qp (classes) are scratch.
void couple_probabilities(int64_t c, const float* r, float* p, float* q, float* qp) {
  std::fill(q, q + c * c, 0.0f);
  const float eps = 0.005f / static_cast<float>(c);
  for (int64_t i = 0; i < c; ++i) {
    p[i] = 1.0f / static_cast<float>(c);
    for (int64_t j = 0; j < i; ++j) {
      q[i * c + i] += r[j * c + i] * r[j * c + i];
      q[i * c + j] = q[j * c + i];
    }
    for (int64_t j = i + 1; j < c; ++j) {
      q[i * c + i] += r[j * c + i] * r[j * c + i];
      q[i * c + j] = -r[j * c + i] * r[i * c + j];
    }
  }
  for (int iter = 0; iter < 100; ++iter) {
    float pqp = 0;
    for (int64_t i = 0; i < c; ++i) {
      qp[i] = 0;
      for (int64_t j = 0; j < c; ++j) qp[i] += q[i * c + j] * p[j];
      pqp += p[i] * qp[i];
    }
    float max_error = 0;
    for (int64_t i = 0; i < c; ++i) max_error = std::max(max_error, std::fabs(qp[i] - pqp));
    if (max_error < eps) break;
    for (int64_t i = 0; i < c; ++i) {
      const float diff = (-qp[i] + pqp) / q[i * c + i];
      p[i] += diff;
      pqp = (pqp + diff * (diff * q[i * c + i] + 2 * qp[i])) / (1 + diff) / (1 + diff);
      for (int64_t j = 0; j < c; ++j) {
        qp[j] = (qp[j] + diff * q[i * c + j]) / (1 + diff);
        p[j] /= (1 + diff);
      }
    }
  }
}

struct SvmClassifierSpec {
  SvmKernelFn kernel;
  std::vector<int64_t> per_class, start;  // support vectors of each class, and where they start
  int64_t vectors = 0, features = 0, classes = 0;
  std::vector<float> coef, support, rho, prob_a, prob_b;
  std::vector<int64_t> labels;
  std::vector<std::string> string_labels;
  PostTransform pt = PostTransform::kNone;
  bool all_positive = false;
  bool svc() const { return vectors > 0; }
  bool proba() const { return !prob_a.empty(); }
  int64_t pairs() const { return classes * (classes - 1) / 2; }
  int64_t score_cols() const {
    if (!svc() || proba()) return classes;
    return classes > 2 ? pairs() : 2;
  }
};

class SvmClassifierKernel final : public Kernel {
 public:
  explicit SvmClassifierKernel(SvmClassifierSpec s) : s_(std::move(s)) {}
  bool supports_strings() const override { return !s_.string_labels.empty(); }
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_input(ctx, s_.features, "SVMClassifier"));
    const Rows r = rows_of(ctx.shape(0)).value();
    ctx.set_output(0, s_.string_labels.empty() ? DType::kInt64 : DType::kString, Shape{r.n});
    ctx.set_output(1, DType::kFloat32, Shape{r.n, s_.score_cols()});
    ctx.set_workspace(workspace_floats(r) * sizeof(float));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Rows r = rows_of(x.shape()).value();
    const int64_t c = s_.classes, cols = s_.score_cols();
    float* xf = static_cast<float*>(ctx.workspace());
    float* k = xf + r.n * r.f;         // kernel values, one per support vector
    float* pair = k + s_.vectors;      // one-vs-one decision values
    float* votes = pair + s_.pairs();  // small counts, exact in float
    float* rm = votes + c;             // pairwise probabilities (classes^2)
    float* q = rm + c * c;             // coupling scratch (classes^2 + classes)
    float* row = q + c * c + c;        // this row's scores (cols)
    to_float(x, xf);
    for (int64_t i = 0; i < r.n; ++i) {
      const float* xi = xf + i * r.f;
      int64_t best = 0;
      float max_weight = 0;
      if (s_.svc()) {
        s_.kernel.eval(xi, s_.support.data(), s_.vectors, r.f, k);
        std::fill(votes, votes + c, 0.0f);
        int64_t p = 0;
        for (int64_t a = 0; a + 1 < c; ++a)
          for (int64_t b = a + 1; b < c; ++b, ++p) {
            double sum = 0;
            const float* ca = s_.coef.data() + (b - 1) * s_.vectors;
            const float* cb = s_.coef.data() + a * s_.vectors;
            for (int64_t m = s_.start[a]; m < s_.start[a] + s_.per_class[a]; ++m) sum += ca[m] * k[m];
            for (int64_t m = s_.start[b]; m < s_.start[b] + s_.per_class[b]; ++m) sum += cb[m] * k[m];
            sum += s_.rho[p];
            pair[p] = static_cast<float>(sum);
            votes[sum > 0 ? a : b] += 1;
          }
        best = std::max_element(votes, votes + c) - votes;
        if (s_.proba()) {
          std::fill(rm, rm + c * c, 0.0f);
          p = 0;
          for (int64_t a = 0; a + 1 < c; ++a)
            for (int64_t b = a + 1; b < c; ++b, ++p) {
              const float v = 1.0f - logistic(pair[p] * s_.prob_a[p] + s_.prob_b[p]);
              const float clipped = std::min(std::max(v, 1.0e-7f), 1 - 1.0e-7f);
              rm[a * c + b] = clipped;
              rm[b * c + a] = 1 - clipped;
            }
          couple_probabilities(c, rm, row, q, q + c * c);
        } else if (c > 2) {
          std::copy(pair, pair + cols, row);
        } else {
          row[0] = -pair[0];  // two classes: the first scores the negated decision value
          row[1] = pair[0];
        }
      } else {
        for (int64_t t = 0; t < c; ++t) {
          float acc = 0;
          for (int64_t j = 0; j < r.f; ++j) acc += xi[j] * s_.coef[t * r.f + j];
          row[t] = acc + s_.rho[0];
        }
        best = std::max_element(row, row + c) - row;
        max_weight = row[best];
      }
      if (!(s_.svc() && !s_.proba() && c == 2)) apply_post_transform(s_.pt, row, 1, cols);
      if (c == 2 && !s_.proba() && ((s_.all_positive && max_weight >= 0.5f) || (!s_.all_positive && max_weight > 0)))
        best = 1;
      if (ctx.has_output(1)) std::copy(row, row + cols, ctx.output(1).data<float>() + i * cols);
      if (!ctx.has_output(0)) continue;
      if (s_.string_labels.empty())
        ctx.output(0).data<int64_t>()[i] = s_.labels[best];
      else
        ctx.output(0).str(i) = s_.string_labels[best];
    }
    return Status::OK();
  }

 private:
  size_t workspace_floats(const Rows& r) const {
    const int64_t c = s_.classes;
    return static_cast<size_t>(r.n * r.f + s_.vectors + s_.pairs() + c + 2 * c * c + c + s_.score_cols());
  }
  SvmClassifierSpec s_;
};

class SvmRegressorKernel final : public Kernel {
 public:
  SvmRegressorKernel(SvmKernelFn kernel, int64_t vectors, int64_t features, std::vector<float> coef,
                     std::vector<float> support, float rho, bool one_class)
      : kernel_(kernel),
        vectors_(vectors),
        features_(features),
        coef_(std::move(coef)),
        support_(std::move(support)),
        rho_(rho),
        one_class_(one_class) {}
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_input(ctx, features_, "SVMRegressor"));
    const Rows r = rows_of(ctx.shape(0)).value();
    ctx.set_output(0, DType::kFloat32, Shape{r.n, 1});
    ctx.set_workspace(static_cast<size_t>(r.n * r.f + vectors_) * sizeof(float));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Rows r = rows_of(x.shape()).value();
    float* xf = static_cast<float*>(ctx.workspace());
    float* k = xf + r.n * r.f;
    float* y = ctx.output(0).data<float>();
    to_float(x, xf);
    for (int64_t i = 0; i < r.n; ++i) {
      const float* xi = xf + i * r.f;
      float acc = 0;
      if (vectors_ > 0) {
        kernel_.eval(xi, support_.data(), vectors_, r.f, k);
        for (int64_t m = 0; m < vectors_; ++m) acc += k[m] * coef_[m];
      } else {
        for (int64_t j = 0; j < r.f; ++j) acc += xi[j] * coef_[j];
      }
      acc += rho_;
      y[i] = one_class_ ? (acc > 0 ? 1.0f : -1.0f) : acc;
    }
    return Status::OK();
  }

 private:
  SvmKernelFn kernel_;
  int64_t vectors_, features_;
  std::vector<float> coef_, support_;
  float rho_;
  bool one_class_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_ml_SVMClassifier(const Node& n, const KernelInit&) {
  SvmClassifierSpec s;
  MS_ASSIGN_OR_RETURN(s.kernel, parse_kernel(n));
  MS_ASSIGN_OR_RETURN(s.pt, parse_post_transform(n.attr_string("post_transform", "NONE")));
  s.coef = floats(n, "coefficients");
  s.support = floats(n, "support_vectors");
  s.rho = floats(n, "rho");
  s.prob_a = floats(n, "prob_a");
  s.prob_b = floats(n, "prob_b");
  s.per_class = n.attr_ints("vectors_per_class");
  s.labels = n.attr_ints("classlabels_ints");
  if (const Attribute* a = n.attr("classlabels_strings"); a && !a->strings.empty()) {
    MS_CHECK_ARG(s.labels.empty(), "classlabels_ints and classlabels_strings must not both be set");
    s.string_labels = a->strings;
  }
  s.classes = static_cast<int64_t>(s.string_labels.empty() ? s.labels.size() : s.string_labels.size());
  MS_CHECK_ARG(s.classes >= 2, "SVMClassifier needs at least two class labels (classlabels_ints or _strings)");
  MS_CHECK_ARG(!s.coef.empty() && !s.rho.empty(), "SVMClassifier needs coefficients and rho");
  MS_CHECK_ARG(s.prob_a.size() == s.prob_b.size(), "prob_a and prob_b must have the same length");
  for (int64_t v : s.per_class) {
    MS_CHECK_ARG(v >= 0, "vectors_per_class must not be negative");
    s.start.push_back(s.vectors);
    s.vectors += v;
  }
  if (s.svc()) {
    MS_CHECK_ARG(static_cast<int64_t>(s.per_class.size()) == s.classes,
                 "vectors_per_class has " + std::to_string(s.per_class.size()) + " entries for " +
                     std::to_string(s.classes) + " classes");
    MS_CHECK_ARG(!s.support.empty() && s.support.size() % s.vectors == 0,
                 "support_vectors (" + std::to_string(s.support.size()) + " values) is not a multiple of the " +
                     std::to_string(s.vectors) + " support vectors");
    s.features = static_cast<int64_t>(s.support.size()) / s.vectors;
    MS_CHECK_ARG(static_cast<int64_t>(s.coef.size()) == (s.classes - 1) * s.vectors,
                 "coefficients hold " + std::to_string(s.coef.size()) +
                     " values, expected (classes - 1) x vectors = " + std::to_string((s.classes - 1) * s.vectors));
    MS_CHECK_ARG(static_cast<int64_t>(s.rho.size()) >= s.pairs(), "rho needs one value per pair of classes");
    MS_CHECK_ARG(!s.proba() || static_cast<int64_t>(s.prob_a.size()) >= s.pairs(),
                 "prob_a and prob_b need one value per pair of classes");
    if (s.classes == 2 && !s.proba() && s.pt != PostTransform::kNone)
      return Unsupported("post_transform on a two-class SVMClassifier without prob_a/prob_b is not supported");
  } else {
    MS_CHECK_ARG(s.coef.size() % s.classes == 0, "coefficients (" + std::to_string(s.coef.size()) +
                                                     ") are not a multiple of the " + std::to_string(s.classes) +
                                                     " classes");
    s.features = static_cast<int64_t>(s.coef.size()) / s.classes;
    s.kernel.type = SvmKernelType::kLinear;
    s.prob_a.clear();  // liblinear models have no Platt scaling
    s.prob_b.clear();
  }
  s.all_positive = std::all_of(s.coef.begin(), s.coef.end(), [](float v) { return v >= 0; });
  if (s.string_labels.empty()) return KernelPtr(new SvmClassifierKernel(std::move(s)));
  for (int64_t i = 0; i < s.classes; ++i) s.labels.push_back(i);
  return KernelPtr(new SvmClassifierKernel(std::move(s)));
}

StatusOr<KernelPtr> create_onnx_ml_SVMRegressor(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(SvmKernelFn kernel, parse_kernel(n));
  MS_ASSIGN_OR_RETURN(PostTransform pt, parse_post_transform(n.attr_string("post_transform", "NONE")));
  if (pt != PostTransform::kNone) return Unsupported("SVMRegressor's post_transform must be NONE");
  std::vector<float> coef = floats(n, "coefficients"), support = floats(n, "support_vectors"), rho = floats(n, "rho");
  const int64_t vectors = n.attr_int("n_supports", 0);
  MS_CHECK_ARG(vectors >= 0, "n_supports must not be negative");
  MS_CHECK_ARG(!coef.empty() && !rho.empty(), "SVMRegressor needs coefficients and rho");
  int64_t features;
  if (vectors > 0) {
    MS_CHECK_ARG(static_cast<int64_t>(coef.size()) == vectors, "coefficients hold " + std::to_string(coef.size()) +
                                                                   " values for " + std::to_string(vectors) +
                                                                   " support vectors");
    MS_CHECK_ARG(!support.empty() && support.size() % vectors == 0,
                 "support_vectors (" + std::to_string(support.size()) + " values) is not a multiple of n_supports");
    features = static_cast<int64_t>(support.size()) / vectors;
  } else {
    features = static_cast<int64_t>(coef.size());
    kernel.type = SvmKernelType::kLinear;
  }
  return KernelPtr(new SvmRegressorKernel(kernel, vectors, features, std::move(coef), std::move(support), rho[0],
                                          n.attr_int("one_class", 0) != 0));
}

}  // namespace mserve
