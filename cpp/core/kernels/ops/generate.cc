// Generators: Range (11+), ConstantOfShape (9+), EyeLike (9+), OneHot (9+). Each writes a new
// tensor from a few given values (start, limit and delta; a fill value; a diagonal offset; depth
// and the off/on values) rather than from the elements of a data input. The output shapes of
// Range, ConstantOfShape and OneHot depend on input values: their infer asks the planner for the
// value when it is not known at plan time.
//
// Range: float types count and step in double (as numpy.arange on the values), float16 in float
// when opset 27's stash_type asks for it; integer types in int64. OneHot: negative indices count
// back from depth from opset 11 (before, they are out of range and select nothing).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/kernels/cast.h"
#include "core/kernels/common.h"
#include "core/kernels/copy_view.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// ------------------------------------------------------------------------------------ Range

bool range_dtype(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16 || t == DType::kInt16 ||
         t == DType::kInt32 || t == DType::kInt64;
}

class RangeKernel final : public Kernel {
 public:
  explicit RangeKernel(bool f16_in_float) : f16_in_float_(f16_in_float) {}

  Status infer(InferContext& ctx) const override {
    for (int i = 0; i < 3; ++i) MS_CHECK_ARG(ctx.has_input(i), "needs start, limit and delta inputs");
    const DType dt = ctx.dtype(0);
    if (!range_dtype(dt)) return Unsupported(std::string("Range of ") + dtype_name(dt) + " is not supported");
    for (int i = 1; i < 3; ++i)
      if (ctx.dtype(i) != dt) return InvalidArgument("start, limit and delta must have the same dtype");
    for (int i = 0; i < 3; ++i)
      if (ctx.shape(i).numel() != 1) return InvalidArgument("start, limit and delta must be scalars");
    if (!ctx.value(0) || !ctx.value(1) || !ctx.value(2)) return ctx.need_value();
    int64_t n = 0;
    MS_RETURN_IF_ERROR(count(*ctx.value(0), *ctx.value(1), *ctx.value(2), n));
    ctx.set_output(0, dt, Shape{n});
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& out = ctx.output(0);
    const int64_t n = out.numel();
    const Tensor &s = ctx.input(0), &d = ctx.input(2);
    switch (out.dtype()) {
      case DType::kFloat32: fill_float<float>(out, s.float_at(0), d.float_at(0), n); break;
      case DType::kFloat64: fill_float<double>(out, s.float_at(0), d.float_at(0), n); break;
      case DType::kFloat16:
        if (f16_in_float_) {
          const float s0 = static_cast<float>(s.float_at(0)), d0 = static_cast<float>(d.float_at(0));
          Eigen::half* o = out.data<Eigen::half>();
          for (int64_t i = 0; i < n; ++i) o[i] = Eigen::half(s0 + static_cast<float>(i) * d0);
        } else {
          fill_float<Eigen::half>(out, s.float_at(0), d.float_at(0), n);
        }
        break;
      case DType::kInt16: fill_int<int16_t>(out, s.int_at(0), d.int_at(0), n); break;
      case DType::kInt32: fill_int<int32_t>(out, s.int_at(0), d.int_at(0), n); break;
      case DType::kInt64: fill_int<int64_t>(out, s.int_at(0), d.int_at(0), n); break;
      default: return Internal("Range dtype");
    }
    return Status::OK();
  }

 private:
  Status count(const Tensor& start, const Tensor& limit, const Tensor& delta, int64_t& n) const {
    if (dtype_is_float(start.dtype())) {
      double s = start.float_at(0), l = limit.float_at(0), d = delta.float_at(0);
      if (d == 0) return InvalidArgument("delta must not be 0");
      if (start.dtype() == DType::kFloat16 && f16_in_float_) {
        const float c = std::ceil((static_cast<float>(l) - static_cast<float>(s)) / static_cast<float>(d));
        return finish(static_cast<double>(c), n);
      }
      return finish(std::ceil((l - s) / d), n);
    }
    const int64_t s = start.int_at(0), l = limit.int_at(0), d = delta.int_at(0);
    if (d == 0) return InvalidArgument("delta must not be 0");
    if (d > 0)
      n = l > s ? (l - s + d - 1) / d : 0;
    else
      n = s > l ? (s - l + (-d) - 1) / (-d) : 0;
    return Status::OK();
  }
  static Status finish(double c, int64_t& n) {
    if (!std::isfinite(c)) return InvalidArgument("Range has an infinite or undefined number of elements");
    if (c > 1e15) return InvalidArgument("Range is too long");
    n = c > 0 ? static_cast<int64_t>(c) : 0;
    return Status::OK();
  }
  template <class T>
  static void fill_float(Tensor& out, double s, double d, int64_t n) {
    T* o = out.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      const double v = s + static_cast<double>(i) * d;
      if constexpr (std::is_same_v<T, Eigen::half>)
        o[i] = Eigen::half(static_cast<float>(v));
      else
        o[i] = static_cast<T>(v);
    }
  }
  template <class T>
  static void fill_int(Tensor& out, int64_t s, int64_t d, int64_t n) {
    T* o = out.data<T>();
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(s + i * d);
  }

  bool f16_in_float_;
};

// -------------------------------------------------------------------------- ConstantOfShape

class ConstantOfShapeKernel final : public Kernel {
 public:
  explicit ConstantOfShapeKernel(Tensor value) : value_(std::move(value)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs a shape input");
    const Tensor* t = ctx.value(0);
    if (!t) return ctx.need_value();
    if (t->dtype() != DType::kInt64) return InvalidArgument(std::string("shape must be int64, got ") + t->desc());
    MS_ASSIGN_OR_RETURN(std::vector<int64_t> dims, read_ints(*t, "shape"));
    if (!Shape::fits(dims.size()))
      return Unsupported("output rank " + std::to_string(dims.size()) + " exceeds the maximum " +
                         std::to_string(Shape::kMaxRank));
    for (int64_t d : dims)
      if (d < 0) return InvalidArgument("shape " + ints_str(dims) + " has a negative dimension");
    ctx.set_output(0, value_.dtype(), Shape(dims.begin(), dims.end()));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& out = ctx.output(0);
    fill_bytes(out.raw(), out.numel(), value_.raw(), dtype_size(value_.dtype()), ctx.pool());
    return Status::OK();
  }

 private:
  Tensor value_;
};

// ---------------------------------------------------------------------------------- EyeLike

class EyeLikeKernel final : public Kernel {
 public:
  EyeLikeKernel(DType dtype, int64_t k) : dtype_(dtype), k_(k) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    if (ctx.shape(0).rank() != 2) return InvalidArgument("input must be 2-D, got shape " + ctx.shape(0).str());
    const DType dt = dtype_ == DType::kUndefined ? ctx.dtype(0) : dtype_;
    if (dt == DType::kUndefined) return InvalidArgument("input has no dtype");
    ctx.set_output(0, dt, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    std::memset(out.raw(), 0, out.nbytes());
    const int64_t rows = out.dim(0), cols = out.dim(1);
    MS_SWITCH_ALL(out.dtype(), T, return Internal("EyeLike dtype"), {
      const T one = one_of<T>();
      T* o = out.data<T>();
      for (int64_t i = std::max<int64_t>(0, -k_); i < rows && i + k_ < cols; ++i) o[i * cols + i + k_] = one;
    });
    return Status::OK();
  }
  bool reads_input_data() const override { return false; }

 private:
  DType dtype_;  // kUndefined: the input's
  int64_t k_;
};

// --------------------------------------------------------------------------------- OneHot

class OneHotKernel final : public Kernel {
 public:
  OneHotKernel(int64_t axis, bool negative_indices) : axis_(axis), neg_(negative_indices) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2), "needs indices, depth and values");
    for (int i = 0; i < 2; ++i)
      if (ctx.dtype(i) == DType::kBool)
        return InvalidArgument(std::string(i ? "depth" : "indices") + " must be numeric, got bool");
    MS_CHECK_ARG(ctx.shape(2).rank() == 1 && ctx.shape(2)[0] == 2,
                 "values must be a 2-element 1-D tensor, got shape " + ctx.shape(2).str());
    const Shape& is = ctx.shape(0);
    MS_CHECK_ARG(Shape::fits(static_cast<size_t>(is.rank()) + 1), "output rank exceeds the maximum");
    const int r = is.rank() + 1;
    int64_t axis = axis_ < 0 ? axis_ + r : axis_;
    MS_CHECK_ARG(axis >= 0 && axis < r,
                 "axis " + std::to_string(axis_) + " is out of range for output rank " + std::to_string(r));
    const Tensor* dt = ctx.value(1);
    if (!dt) return ctx.need_value();
    MS_CHECK_ARG(dt->numel() == 1 && dt->rank() <= 1, "depth must be a scalar, got " + dt->desc());
    const double depthf = dt->float_at(0);
    MS_CHECK_ARG(depthf >= 1 && depthf < 9.2e18, "depth must be >= 1, got " + std::to_string(depthf));
    Shape out = is;
    out.insert(static_cast<int>(axis), static_cast<int64_t>(depthf));
    ctx.set_output(0, ctx.dtype(2), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& ind = ctx.input(0);
    const Tensor& vals = ctx.input(2);
    Tensor& out = ctx.output(0);
    const int r = out.rank();
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + r : axis_);
    const int64_t depth = out.dim(axis);
    const int64_t outer = ind.shape().prod(0, axis), inner = ind.shape().prod(axis, ind.rank());
    MS_SWITCH_ALL(vals.dtype(), T, return Unsupported("dtype"), {
      const T off = vals.data<T>()[0], on = vals.data<T>()[1];
      T* y = out.data<T>();
      const int64_t total = out.numel();
      ctx.pool().parallel_for(total, 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y[i] = off;
      });
      MS_SWITCH_NUMERIC(ind.dtype(), I, return Unsupported("indices dtype"), {
        const I* ip = ind.data<I>();
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i) {
            int64_t v = static_cast<int64_t>(ip[o * inner + i]);
            if (v < 0 && neg_) v += depth;
            if (v < 0 || v >= depth) continue;
            y[(o * depth + v) * inner + i] = on;
          }
      });
    });
    return Status::OK();
  }

 private:
  int64_t axis_;
  bool neg_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Range(const Node& node, const KernelInit&) {
  // Opset 27: float16/bfloat16 compute in stash_type (default float).
  const bool f16_in_float = node.opset >= 27 && node.attr_int("stash_type", 1) == 1;
  return KernelPtr(new RangeKernel(f16_in_float));
}

StatusOr<KernelPtr> create_onnx_ConstantOfShape(const Node& node, const KernelInit&) {
  const Attribute* a = node.attr("value");
  if (!a) return KernelPtr(new ConstantOfShapeKernel(Tensor::from<float>({}, {0.0f})));
  if (a->kind != Attribute::Kind::kTensor) return InvalidArgument("attribute 'value' must be a tensor");
  if (!a->t.defined()) return Unsupported("attribute 'value' has a dtype this runtime does not support");
  if (a->t.numel() != 1) return InvalidArgument("attribute 'value' must hold exactly one value");
  return KernelPtr(new ConstantOfShapeKernel(a->t));
}

StatusOr<KernelPtr> create_onnx_EyeLike(const Node& node, const KernelInit&) {
  DType dt = DType::kUndefined;
  if (const Attribute* a = node.attr("dtype")) {
    MS_ASSIGN_OR_RETURN(dt, dtype_from_onnx(a->i));
  }
  return KernelPtr(new EyeLikeKernel(dt, node.attr_int("k", 0)));
}

StatusOr<KernelPtr> create_onnx_OneHot(const Node& node, const KernelInit&) {
  // Negative indices count back from depth since opset 11; before, they are out of range.
  return KernelPtr(new OneHotKernel(node.attr_int("axis", -1), node.opset >= 11));
}

}  // namespace mserve
