// Cast (opset 6+) and CastLike (15+: to the dtype of its second input), through one conversion
// (cast_tensor): between every pair of the runtime's dtypes. Float to integer truncates toward
// zero (static_cast, as ONNX Runtime does; out-of-range values are unspecified), nonzero to bool
// is true, float16 converts through float. The narrow types (float8, float4, int4, int2:
// core/tensor/lowbit.h) decode exactly to float and encode as ml_dtypes and onnx.reference do;
// `saturate` (opset 19+, default 1) clamps out-of-range values to the largest finite float8
// instead of inf/NaN, and `round_mode` (opset 25+: up, down, nearest) rounds to float8e8m0.
// Strings do not convert to or from the narrow types.
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
#include "core/tensor/lowbit.h"

namespace mserve {

StatusOr<DType> dtype_from_onnx(int64_t to) {
  const DType t = dtype_of_onnx(to);
  if (t != DType::kUndefined) return t;
  return Unsupported("Cast to " + onnx_type_name(to) + " is not supported");
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

// From or to a narrow type: through float (decoding is exact) or the source's own value.
Status cast_lowbit(const Tensor& in, Tensor& out, const LowBitCast& opt, ThreadPool& pool) {
  const int64_t n = in.numel();
  const DType from = in.dtype(), to = out.dtype();
  if (from == DType::kString || to == DType::kString)
    return Unsupported(std::string("Cast between string and ") + dtype_name(dtype_is_lowbit(from) ? from : to) +
                       " is not supported");
  if (dtype_is_lowbit(from)) {
    const float* table = lowbit_table(from);
    const uint8_t* src = in.data<uint8_t>();
    if (dtype_is_lowbit(to)) {
      uint8_t* dst = out.data<uint8_t>();
      pool.parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) dst[i] = lowbit_from_double(to, table[src[i]], opt);
      });
      return Status::OK();
    }
    MS_SWITCH_CONVERTIBLE(to, To, return Internal(std::string("cast to ") + dtype_name(to)), {
      To* dst = out.data<To>();
      pool.parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const float v = table[src[i]];
          if constexpr (std::is_integral_v<To> && !std::is_same_v<To, bool>) {
            dst[i] = std::isfinite(v) ? convert<To, float>(v) : To(0);  // NaN and inf have no integer
          } else {
            dst[i] = convert<To, float>(v);
          }
        }
      });
    });
    return Status::OK();
  }
  uint8_t* dst = out.data<uint8_t>();
  MS_SWITCH_CONVERTIBLE(from, From, return Internal(std::string("cast from ") + dtype_name(from)), {
    const From* src = in.data<From>();
    pool.parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if constexpr (std::is_same_v<From, bool>)
          dst[i] = lowbit_from_int(to, src[i] ? 1 : 0, opt);
        else if constexpr (std::is_integral_v<From> && std::is_signed_v<From>)
          dst[i] = lowbit_from_int(to, static_cast<int64_t>(src[i]), opt);
        else if constexpr (std::is_integral_v<From>)
          dst[i] = lowbit_from_uint(to, static_cast<uint64_t>(src[i]), opt);
        else
          dst[i] = lowbit_from_double(to, to_double(src[i]), opt);
      }
    });
  });
  return Status::OK();
}

}  // namespace

Status cast_tensor(const Tensor& in, Tensor& out, ThreadPool& pool) { return cast_tensor(in, out, LowBitCast{}, pool); }

Status cast_tensor(const Tensor& in, Tensor& out, const LowBitCast& opt, ThreadPool& pool) {
  if (in.numel() != out.numel())
    return Internal("cast of " + in.desc() + " into " + out.desc() + ": element counts differ");
  if (in.numel() == 0) return Status::OK();
  if (in.dtype() == out.dtype()) {
    copy_data(in, out);
    return Status::OK();
  }
  if (dtype_is_lowbit(in.dtype()) || dtype_is_lowbit(out.dtype())) return cast_lowbit(in, out, opt, pool);
  if (in.dtype() == DType::kString || out.dtype() == DType::kString) return cast_strings(in, out);
  MS_SWITCH_CONVERTIBLE(in.dtype(), From, return Internal(std::string("cast from ") + dtype_name(in.dtype())),
                        return cast_from<From>(in, out, pool));
  return Status::OK();
}

StatusOr<Tensor> cast_copy(const Tensor& in, DType to) {
  MS_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(to, in.shape()));
  ThreadPool one(1);
  MS_RETURN_IF_ERROR(cast_tensor(in, out, one));
  return out;
}

namespace {

class CastKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  CastKernel(DType to, LowBitCast opt) : to_(to), opt_(opt) {}

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
    return cast_tensor(in, out, opt_, ctx.pool());
  }

 private:
  DType to_;
  LowBitCast opt_;
};

// --------------------------------------------------------------------------------- CastLike

class CastLikeKernel final : public Kernel {
 public:
  explicit CastLikeKernel(LowBitCast opt) : opt_(opt) {}
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs input and target_type");
    if (ctx.dtype(0) == DType::kUndefined || ctx.dtype(1) == DType::kUndefined)
      return InvalidArgument("inputs have no dtype");
    ctx.set_output(0, ctx.dtype(1), ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    return cast_tensor(ctx.input(0), ctx.output(0), opt_, ctx.pool());
  }

 private:
  LowBitCast opt_;
};

// `saturate` and `round_mode`, the attributes of Cast and CastLike that only the narrow float
// types read.
StatusOr<LowBitCast> lowbit_options(const Node& node) {
  LowBitCast opt;
  opt.saturate = node.attr_int("saturate", 1) != 0;
  if (const Attribute* a = node.attr("round_mode")) {
    if (a->kind != Attribute::Kind::kString) return InvalidArgument("attribute 'round_mode' must be a string");
    if (a->s == "up")
      opt.e8m0_round = E8M0Round::kUp;
    else if (a->s == "down")
      opt.e8m0_round = E8M0Round::kDown;
    else if (a->s == "nearest")
      opt.e8m0_round = E8M0Round::kNearest;
    else
      return InvalidArgument("attribute 'round_mode' must be 'up', 'down' or 'nearest', not '" + a->s + "'");
  }
  return opt;
}

// ---------------------------------------------------------------------------------- BitCast

// The bits of one element in the ONNX format (4 and 2 for the packed narrow types).
int onnx_bits(DType t) { return dtype_is_lowbit(t) ? lowbit_width(t) : static_cast<int>(dtype_size(t)) * 8; }

class BitCastKernel final : public Kernel {
 public:
  explicit BitCastKernel(DType to) : to_(to) {}
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const DType from = ctx.dtype(0);
    if (from == DType::kString || to_ == DType::kString) return Unsupported("BitCast of strings is not defined");
    if (from == DType::kUndefined) return InvalidArgument("input has no dtype");
    if (onnx_bits(from) != onnx_bits(to_))
      return InvalidArgument(std::string("BitCast from ") + dtype_name(from) + " (" + std::to_string(onnx_bits(from)) +
                             " bits) to " + dtype_name(to_) + " (" + std::to_string(onnx_bits(to_)) +
                             " bits): the widths must be equal");
    ctx.set_output(0, to_, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (to_ == DType::kBool) {  // a byte other than 0 or 1 is no bool: nonzero reads as true
      const auto* src = static_cast<const uint8_t*>(in.raw());
      bool* dst = out.data<bool>();
      for (int64_t i = 0; i < in.numel(); ++i) dst[i] = src[i] != 0;
      return Status::OK();
    }
    if (!dtype_is_lowbit(to_)) {
      if (in.raw() != out.raw() && in.nbytes()) std::memcpy(out.raw(), in.raw(), in.nbytes());
      return Status::OK();
    }
    // One element a byte, the code in the low bits: re-encoded so the byte is the target's own.
    const int bits = lowbit_width(to_);
    const auto mask = static_cast<uint8_t>((1u << bits) - 1u);
    const auto* src = static_cast<const uint8_t*>(in.raw());
    auto* dst = static_cast<uint8_t*>(out.raw());
    const bool is_signed = to_ == DType::kInt4 || to_ == DType::kInt2;
    for (int64_t i = 0; i < in.numel(); ++i) {
      const int code = src[i] & mask;
      if (dtype_is_lowbit_int(to_))
        dst[i] = lowbit_from_int(to_, is_signed && code >= (1 << (bits - 1)) ? code - (1 << bits) : code);
      else
        dst[i] = static_cast<uint8_t>(code);
    }
    return Status::OK();
  }

 private:
  DType to_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_BitCast(const Node& node, const KernelInit&) {
  const Attribute* a = node.attr("to");
  if (!a || a->kind != Attribute::Kind::kInt) return InvalidArgument("integer attribute 'to' is required");
  MS_ASSIGN_OR_RETURN(DType to, dtype_from_onnx(a->i));
  return KernelPtr(new BitCastKernel(to));
}

StatusOr<KernelPtr> create_onnx_Cast(const Node& node, const KernelInit&) {
  const Attribute* a = node.attr("to");
  if (!a || a->kind != Attribute::Kind::kInt) return InvalidArgument("integer attribute 'to' is required");
  MS_ASSIGN_OR_RETURN(DType to, dtype_from_onnx(a->i));
  MS_ASSIGN_OR_RETURN(LowBitCast opt, lowbit_options(node));
  return KernelPtr(new CastKernel(to, opt));
}

StatusOr<KernelPtr> create_onnx_CastLike(const Node& node, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(LowBitCast opt, lowbit_options(node));
  return KernelPtr(new CastLikeKernel(opt));
}

}  // namespace mserve
