// ai.onnx.ml linear models and feature transforms, as skl2onnx and onnxmltools emit them:
// LinearRegressor, LinearClassifier, Scaler, Normalizer, Binarizer, Imputer,
// ArrayFeatureExtractor, ZipMap. Scores are computed in float, as ONNX Runtime does.
// String class labels (classlabels_strings) make the label output a string tensor.
#include <algorithm>
#include <cmath>

#include "core/kernels/common.h"
#include "core/kernels/ml_common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

bool ml_input_dtype(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kInt64 || t == DType::kInt32;
}

// Reads X into float (row-major, n * f values).
void to_float(const Tensor& x, float* out) {
  MS_SWITCH_NUMERIC(x.dtype(), T, return,
                    for (int64_t i = 0; i < x.numel(); ++i) out[i] = static_cast<float>(x.data<T>()[i]));
}

Status check_ml_input(const InferContext& ctx) {
  if (!ml_input_dtype(ctx.dtype(0)))
    return Unsupported(std::string("input dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
  return rows_of(ctx.shape(0)).status();
}

// scores[n, t] = X[n, :] . coef[t, :] + intercept[t], in float.
void linear_scores(const Tensor& x, const std::vector<float>& coef, const std::vector<float>& icpt, int64_t targets,
                   float* xf, float* scores) {
  const Rows r = rows_of(x.shape()).value();
  to_float(x, xf);
  for (int64_t i = 0; i < r.n; ++i)
    for (int64_t t = 0; t < targets; ++t) {
      float acc = icpt.empty() ? 0.0f : icpt[t];
      for (int64_t j = 0; j < r.f; ++j) acc += xf[i * r.f + j] * coef[t * r.f + j];
      scores[i * targets + t] = acc;
    }
}

class LinearRegressorKernel final : public Kernel {
 public:
  LinearRegressorKernel(std::vector<float> coef, std::vector<float> icpt, int64_t targets, PostTransform pt)
      : coef_(std::move(coef)), icpt_(std::move(icpt)), targets_(targets), pt_(pt) {}
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_ml_input(ctx));
    const Rows r = rows_of(ctx.shape(0)).value();
    MS_CHECK_ARG(static_cast<int64_t>(coef_.size()) == targets_ * r.f,
                 "coefficients hold " + std::to_string(coef_.size()) +
                     " values, expected targets x features = " + std::to_string(targets_ * r.f));
    ctx.set_output(0, DType::kFloat32, Shape{r.n, targets_});
    ctx.set_workspace(static_cast<size_t>(r.n * r.f) * sizeof(float));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    Tensor& y = ctx.output(0);
    linear_scores(ctx.input(0), coef_, icpt_, targets_, static_cast<float*>(ctx.workspace()), y.data<float>());
    apply_post_transform(pt_, y.data<float>(), y.dim(0), targets_);
    return Status::OK();
  }

 private:
  std::vector<float> coef_, icpt_;
  int64_t targets_;
  PostTransform pt_;
};

class LinearClassifierKernel final : public Kernel {
 public:
  // With string labels, `labels` are their indices 0..L-1 and the label output is a string.
  LinearClassifierKernel(std::vector<float> coef, std::vector<float> icpt, std::vector<int64_t> labels,
                         std::vector<std::string> string_labels, PostTransform pt)
      : coef_(std::move(coef)),
        icpt_(std::move(icpt)),
        labels_(std::move(labels)),
        string_labels_(std::move(string_labels)),
        pt_(pt) {}
  bool supports_strings() const override { return !string_labels_.empty(); }
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_ml_input(ctx));
    const Rows r = rows_of(ctx.shape(0)).value();
    MS_CHECK_ARG(r.f > 0 && coef_.size() % r.f == 0,
                 "coefficients (" + std::to_string(coef_.size()) + ") are not a multiple of the features");
    const int64_t classes = static_cast<int64_t>(coef_.size()) / r.f;
    ctx.set_output(0, string_labels_.empty() ? DType::kInt64 : DType::kString, Shape{r.n});
    ctx.set_output(1, DType::kFloat32, Shape{r.n, out_cols(classes)});
    ctx.set_workspace(static_cast<size_t>(r.n * (r.f + classes)) * sizeof(float));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Rows r = rows_of(x.shape()).value();
    const int64_t classes = static_cast<int64_t>(coef_.size()) / r.f;
    float* xf = static_cast<float*>(ctx.workspace());
    float* raw = xf + r.n * r.f;
    linear_scores(x, coef_, icpt_, classes, xf, raw);
    const int64_t cols = out_cols(classes);
    float* z = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    for (int64_t i = 0; i < r.n; ++i) {
      float row[2];
      float* s = z ? z + i * cols : (cols == 2 ? row : raw + i * classes);
      if (cols == 2 && classes == 1) {
        // One score for two labels: the first class scores its negation.
        s[0] = -raw[i];
        s[1] = raw[i];
      } else if (s != raw + i * classes) {
        std::copy(raw + i * classes, raw + (i + 1) * classes, s);
      }
      apply_post_transform(pt_, s, 1, cols);
      int64_t label;
      if (cols > 1) {
        const int64_t best = std::max_element(s, s + cols) - s;
        label = labels_.empty() ? best : labels_[best];
      } else {
        const float threshold = pt_ == PostTransform::kNone ? 0.0f : 0.5f;
        const bool pos = s[0] >= threshold;
        label = labels_.empty() ? int64_t{pos} : (pos ? labels_[0] : 0);
      }
      if (!ctx.has_output(0)) continue;
      if (string_labels_.empty()) {
        ctx.output(0).data<int64_t>()[i] = label;
      } else {
        const bool known = label >= 0 && label < static_cast<int64_t>(string_labels_.size());
        ctx.output(0).str(i) = known ? string_labels_[label] : std::string();
      }
    }
    return Status::OK();
  }

 private:
  int64_t out_cols(int64_t classes) const { return classes == 1 && labels_.size() == 2 ? 2 : classes; }
  std::vector<float> coef_, icpt_;
  std::vector<int64_t> labels_;
  std::vector<std::string> string_labels_;
  PostTransform pt_;
};

// Elementwise feature maps producing float (Scaler) or the input dtype (Binarizer, Imputer).
enum class MapKind { kScaler, kBinarizer, kImputer };

class FeatureMapKernel final : public Kernel {
 public:
  FeatureMapKernel(MapKind k, std::vector<float> a, std::vector<float> b, float scalar)
      : kind_(k), a_(std::move(a)), b_(std::move(b)), scalar_(scalar) {}
  Status infer(InferContext& ctx) const override {
    if (!ml_input_dtype(ctx.dtype(0)))
      return Unsupported(std::string("input dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    // Per-feature values index the last dimension; a Binarizer takes any shape.
    const Shape& s = ctx.shape(0);
    const Rows r{1, s.rank() ? s[s.rank() - 1] : 1};
    for (const auto* v : {&a_, &b_})
      MS_CHECK_ARG(
          v->size() <= 1 || static_cast<int64_t>(v->size()) == r.f,
          "per-feature values (" + std::to_string(v->size()) + ") do not match " + std::to_string(r.f) + " features");
    ctx.set_output(0, kind_ == MapKind::kScaler ? DType::kFloat32 : ctx.dtype(0), ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    const int64_t f = x.rank() ? x.dim(x.rank() - 1) : 1;
    auto at = [](const std::vector<float>& v, int64_t j, float def) {
      return v.empty() ? def : v[v.size() == 1 ? 0 : j];
    };
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), {
      const T* in = x.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t j = f ? i % f : 0;
        const float v = static_cast<float>(in[i]);
        switch (kind_) {
          case MapKind::kScaler: y.data<float>()[i] = (v - at(a_, j, 0.0f)) * at(b_, j, 1.0f); break;
          case MapKind::kBinarizer: y.data<T>()[i] = v > scalar_ ? T(1) : T(0); break;
          case MapKind::kImputer: {
            const bool missing = std::isnan(scalar_) ? std::isnan(v) : v == scalar_;
            y.data<T>()[i] = missing ? static_cast<T>(at(a_, j, 0.0f)) : in[i];
            break;
          }
        }
      }
    });
    return Status::OK();
  }

 private:
  MapKind kind_;
  std::vector<float> a_, b_;
  float scalar_;
};

class NormalizerKernel final : public Kernel {
 public:
  explicit NormalizerKernel(int norm) : norm_(norm) {}  // 0 MAX, 1 L1, 2 L2
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_ml_input(ctx));
    ctx.set_output(0, DType::kFloat32, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Rows r = rows_of(x.shape()).value();
    float* y = ctx.output(0).data<float>();
    to_float(x, y);
    for (int64_t i = 0; i < r.n; ++i) {
      float* row = y + i * r.f;
      float d = 0;
      for (int64_t j = 0; j < r.f; ++j)
        d = norm_ == 0 ? std::max(d, std::fabs(row[j])) : norm_ == 1 ? d + std::fabs(row[j]) : d + row[j] * row[j];
      if (norm_ == 2) d = std::sqrt(d);
      d = std::max(d, 1e-30f);
      for (int64_t j = 0; j < r.f; ++j) row[j] /= d;
    }
    return Status::OK();
  }

 private:
  int norm_;
};

class ArrayFeatureExtractorKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    const Shape& x = ctx.shape(0);
    MS_CHECK_ARG(x.rank() >= 1, "X must have rank >= 1");
    MS_CHECK_ARG(ctx.dtype(1) == DType::kInt64, "indices must be int64");
    Shape out = x;
    if (out.rank() == 1) out.insert(0, 1);
    out[out.rank() - 1] = ctx.shape(1).numel();
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor &x = ctx.input(0), &idx = ctx.input(1);
    const int64_t f = x.dim(x.rank() - 1), k = idx.numel(), rows = f ? x.numel() / f : 0;
    const size_t es = dtype_size(x.dtype());
    for (int64_t j = 0; j < k; ++j) {
      const int64_t c = idx.data<int64_t>()[j];
      if (c < 0 || c >= f)
        return InvalidArgument("index " + std::to_string(c) + " is out of range for " + std::to_string(f) +
                               " features");
    }
    if (x.dtype() == DType::kString) {
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < k; ++j) ctx.output(0).str(i * k + j) = x.str(i * f + idx.data<int64_t>()[j]);
      return Status::OK();
    }
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(ctx.output(0).raw());
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < k; ++j)
        std::memcpy(dst + (i * k + j) * es, src + (i * f + idx.data<int64_t>()[j]) * es, es);
    return Status::OK();
  }
};

// ZipMap's sequence-of-maps output stays a float [N, C] tensor inside the runtime; the Python
// layer turns it into a list of {label: probability} dicts (the loader records the labels).
class ZipMapKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.dtype(0) == DType::kFloat32 && ctx.shape(0).rank() == 2, "ZipMap takes a float [N, C] tensor");
    ctx.set_output(0, DType::kFloat32, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override { return copy_input_to_output(ctx); }
};

std::vector<float> floats(const Node& n, const char* name) {
  const Attribute* a = n.attr(name);
  if (!a) return {};
  if (a->kind == Attribute::Kind::kFloat) return {a->f};
  return a->floats;
}

}  // namespace

StatusOr<KernelPtr> create_onnx_ml_LinearRegressor(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(PostTransform pt, parse_post_transform(n.attr_string("post_transform", "NONE")));
  return KernelPtr(
      new LinearRegressorKernel(floats(n, "coefficients"), floats(n, "intercepts"), n.attr_int("targets", 1), pt));
}

StatusOr<KernelPtr> create_onnx_ml_LinearClassifier(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(PostTransform pt, parse_post_transform(n.attr_string("post_transform", "NONE")));
  std::vector<int64_t> labels = n.attr_ints("classlabels_ints");
  std::vector<std::string> string_labels;
  if (const Attribute* a = n.attr("classlabels_strings"); a && !a->strings.empty()) {
    MS_CHECK_ARG(labels.empty(), "classlabels_ints and classlabels_strings must not both be set");
    string_labels = a->strings;
    for (size_t i = 0; i < string_labels.size(); ++i) labels.push_back(static_cast<int64_t>(i));
  }
  return KernelPtr(new LinearClassifierKernel(floats(n, "coefficients"), floats(n, "intercepts"), std::move(labels),
                                              std::move(string_labels), pt));
}

StatusOr<KernelPtr> create_onnx_ml_Scaler(const Node& n, const KernelInit&) {
  return KernelPtr(new FeatureMapKernel(MapKind::kScaler, floats(n, "offset"), floats(n, "scale"), 0));
}

StatusOr<KernelPtr> create_onnx_ml_Binarizer(const Node& n, const KernelInit&) {
  return KernelPtr(new FeatureMapKernel(MapKind::kBinarizer, {}, {}, n.attr_float("threshold", 0.0f)));
}

StatusOr<KernelPtr> create_onnx_ml_Imputer(const Node& n, const KernelInit&) {
  std::vector<float> values = floats(n, "imputed_value_floats");
  float replaced = n.attr_float("replaced_value_float", NAN);
  if (values.empty()) {
    for (int64_t v : n.attr_ints("imputed_value_int64s")) values.push_back(static_cast<float>(v));
    replaced = static_cast<float>(n.attr_int("replaced_value_int64", 0));
  }
  MS_CHECK_ARG(!values.empty(), "Imputer needs imputed_value_floats or imputed_value_int64s");
  return KernelPtr(new FeatureMapKernel(MapKind::kImputer, std::move(values), {}, replaced));
}

StatusOr<KernelPtr> create_onnx_ml_Normalizer(const Node& n, const KernelInit&) {
  const std::string norm = n.attr_string("norm", "MAX");
  if (norm == "MAX") return KernelPtr(new NormalizerKernel(0));
  if (norm == "L1") return KernelPtr(new NormalizerKernel(1));
  if (norm == "L2") return KernelPtr(new NormalizerKernel(2));
  return Unsupported("norm '" + norm + "' is not supported (MAX, L1, L2 are)");
}

StatusOr<KernelPtr> create_onnx_ml_ArrayFeatureExtractor(const Node&, const KernelInit&) {
  return KernelPtr(new ArrayFeatureExtractorKernel());
}

StatusOr<KernelPtr> create_onnx_ml_ZipMap(const Node&, const KernelInit&) {
  // The keys (classlabels_int64s or classlabels_strings) are recorded by the loader.
  return KernelPtr(new ZipMapKernel());
}

}  // namespace mserve
