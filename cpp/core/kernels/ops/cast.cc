// Cast (opset 6+) and CastLike (15+: to the dtype of its second input), through one conversion
// (cast_tensor): between every pair of the runtime's dtypes. Float to integer truncates toward
// zero (static_cast, as ONNX Runtime does; out-of-range values are unspecified), nonzero to bool
// is true, float16 converts through float. `saturate` (opset 19+) only affects float8 targets,
// which are unsupported, so it is ignored.
//
// Strings (opset 6+ allows them both ways), as ONNX Runtime does: numbers print as decimal
// integers, bools as "1"/"0", floats with "%.8g" ("NaN", "INF", "-INF" for the specials); strings
// parse with strtof/strtod/strtoll/strtoull (leading whitespace skipped, trailing text ignored,
// "nan"/"inf"/"infinity" in any case accepted), and a string that holds no number is an error.
// A string casts to bool as a number that is nonzero.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include <cstring>

#include "core/kernels/cast.h"
#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {

StatusOr<DType> dtype_from_onnx(int64_t to) {
  switch (to) {
    case 1: return DType::kFloat32;
    case 2: return DType::kUInt8;
    case 3: return DType::kInt8;
    case 4: return DType::kUInt16;
    case 5: return DType::kInt16;
    case 6: return DType::kInt32;
    case 7: return DType::kInt64;
    case 8: return DType::kString;
    case 9: return DType::kBool;
    case 10: return DType::kFloat16;
    case 11: return DType::kFloat64;
    case 12: return DType::kUInt32;
    case 13: return DType::kUInt64;
    case 16: return DType::kBFloat16;
    default: break;
  }
  const char* name = nullptr;
  switch (to) {
    case 0: name = "UNDEFINED"; break;
    case 14: name = "COMPLEX64"; break;
    case 15: name = "COMPLEX128"; break;
    case 17: name = "FLOAT8E4M3FN"; break;
    case 18: name = "FLOAT8E4M3FNUZ"; break;
    case 19: name = "FLOAT8E5M2"; break;
    case 20: name = "FLOAT8E5M2FNUZ"; break;
    case 21: name = "UINT4"; break;
    case 22: name = "INT4"; break;
    case 23: name = "FLOAT4E2M1"; break;
    case 24: name = "FLOAT8E8M0"; break;
    default: break;
  }
  std::string what = name ? std::string(name) + " (" + std::to_string(to) + ")" : "type " + std::to_string(to);
  return Unsupported("Cast to " + what + " is not supported");
}

namespace {

template <class To, class From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<To, bool>) {
    if constexpr (is_16bit_float_v<From>)
      return static_cast<float>(v) != 0.0f;
    else
      return v != From(0);
  } else if constexpr (std::is_same_v<From, bool>) {
    return convert<To, float>(v ? 1.0f : 0.0f);
  } else if constexpr (is_16bit_float_v<To>) {
    return To(static_cast<float>(v));  // float16 and bfloat16 round from float
  } else if constexpr (is_16bit_float_v<From>) {
    return static_cast<To>(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

template <class To, class From>
void cast_run(const From* in, To* out, int64_t n, ThreadPool& pool) {
  pool.parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = convert<To, From>(in[i]);
  });
}

template <class From>
Status cast_from(const Tensor& in, Tensor& out, ThreadPool& pool) {
  const From* src = in.data<From>();
  const int64_t n = in.numel();
  MS_SWITCH_CONVERTIBLE(out.dtype(), To, return Internal(std::string("cast to ") + dtype_name(out.dtype())),
                        cast_run<To, From>(src, out.data<To>(), n, pool));
  return Status::OK();
}

template <class T>
std::string to_text(T v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "1" : "0";
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else {
    double d;
    if constexpr (std::is_same_v<T, double>)
      d = v;
    else
      d = static_cast<float>(v);
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d < 0 ? "-INF" : "INF";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.8g", d);
    return buf;
  }
}

template <class T>
Status from_text(const std::string& s, T* out) {
  const char* begin = s.c_str();
  char* end = nullptr;
  errno = 0;
  if constexpr (std::is_same_v<T, bool>) {
    const double d = std::strtod(begin, &end);
    *out = d != 0.0;
  } else if constexpr (std::is_same_v<T, float> || is_16bit_float_v<T>) {
    *out = static_cast<T>(std::strtof(begin, &end));
  } else if constexpr (std::is_same_v<T, double>) {
    *out = std::strtod(begin, &end);
  } else if constexpr (std::is_signed_v<T>) {
    *out = static_cast<T>(std::strtoll(begin, &end, 10));
  } else {
    *out = static_cast<T>(std::strtoull(begin, &end, 10));
  }
  if (end == begin) return InvalidArgument("cannot cast the string '" + s + "' to a number");
  return Status::OK();
}

Status cast_strings(const Tensor& in, Tensor& out) {
  const int64_t n = in.numel();
  if (out.dtype() == DType::kString) {
    MS_SWITCH_CONVERTIBLE(in.dtype(), T, return Internal(std::string("cast from ") + dtype_name(in.dtype())),
                          for (int64_t i = 0; i < n; ++i) out.str(i) = to_text(in.data<T>()[i]));
    return Status::OK();
  }
  MS_SWITCH_CONVERTIBLE(out.dtype(), T, return Internal(std::string("cast to ") + dtype_name(out.dtype())),
                        for (int64_t i = 0; i < n; ++i) MS_RETURN_IF_ERROR(from_text(in.str(i), out.data<T>() + i)));
  return Status::OK();
}

}  // namespace

Status cast_tensor(const Tensor& in, Tensor& out, ThreadPool& pool) {
  if (in.numel() != out.numel())
    return Internal("cast of " + in.desc() + " into " + out.desc() + ": element counts differ");
  if (in.numel() == 0) return Status::OK();
  if (in.dtype() == out.dtype()) {
    copy_data(in, out);
    return Status::OK();
  }
  if (in.dtype() == DType::kString || out.dtype() == DType::kString) return cast_strings(in, out);
  MS_SWITCH_CONVERTIBLE(in.dtype(), From, return Internal(std::string("cast from ") + dtype_name(in.dtype())),
                        return cast_from<From>(in, out, pool));
  return Status::OK();
}

namespace {

class CastKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  explicit CastKernel(DType to) : to_(to) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    if (ctx.dtype(0) == DType::kUndefined) return InvalidArgument("input has no dtype");
    ctx.set_output(0, to_, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (in.dtype() == out.dtype()) return copy_input_to_output(ctx);
    return cast_tensor(in, out, ctx.pool());
  }

 private:
  DType to_;
};

// --------------------------------------------------------------------------------- CastLike

class CastLikeKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs input and target_type");
    if (ctx.dtype(0) == DType::kUndefined || ctx.dtype(1) == DType::kUndefined)
      return InvalidArgument("inputs have no dtype");
    ctx.set_output(0, ctx.dtype(1), ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    return cast_tensor(ctx.input(0), ctx.output(0), ctx.pool());
  }
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Cast(const Node& node, const KernelInit&) {
  const Attribute* a = node.attr("to");
  if (!a || a->kind != Attribute::Kind::kInt) return InvalidArgument("integer attribute 'to' is required");
  MS_ASSIGN_OR_RETURN(DType to, dtype_from_onnx(a->i));
  return KernelPtr(new CastKernel(to));
}

StatusOr<KernelPtr> create_onnx_CastLike(const Node&, const KernelInit&) { return KernelPtr(new CastLikeKernel()); }

}  // namespace mserve
