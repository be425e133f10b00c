// Binary arithmetic with numpy multidirectional broadcasting, on the shared row walker
// (kernels/broadcast.h):
//   Add, Sub, Mul, Div (7+; 6 and earlier used a `broadcast` attribute and are not supported).
//     Every numeric dtype; integer Div truncates toward zero, as C++ does (and ONNX Runtime);
//     integer division by zero is an error.
//   Pow (7+): the output has the base's dtype; from opset 12 the exponent may have another numeric
//     dtype (accepted at every opset). Integer ** integer is exact (wrapping on overflow; a
//     negative exponent gives 1/x^n truncated); other combinations compute in floating point and
//     convert to the base dtype.
//   Mod (10+): fmod=1 truncates the quotient (C fmod, the sign of the dividend); fmod=0 floors it
//     (Python %, the sign of the divisor), for integers and, as opset 28 spells out, for floats
//     (numpy's mod: ±0 takes the divisor's sign, x mod ±inf is x or the divisor). Integer modulo
//     by zero is an error.
//   BitShift (11+): unsigned integers; from opset 28 also signed ones (arithmetic right shift,
//     left shifts wrap). Shifts that are negative or >= the bit width give 0 (-1 for a right shift
//     of a negative value), as opset 28 defines.
//   Sum, Min, Max, Mean (6+): 1..N inputs of one dtype, broadcast together (opset 8+; before that
//     the shapes must be equal). Min/Max propagate NaN. Mean takes floating types only.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/kernels/broadcast.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

Status require_same_dtypes(const InferContext& ctx, int n) {
  for (int i = 1; i < n; ++i)
    if (ctx.dtype(i) != ctx.dtype(0))
      return InvalidArgument(std::string("input dtypes differ: ") + dtype_name(ctx.dtype(0)) + " and " +
                             dtype_name(ctx.dtype(i)));
  return Status::OK();
}

Status unsupported_dtype(DType t) { return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported"); }

// True when some element of an integer tensor is zero.
bool has_zero(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (t.int_at(i) == 0) return true;
  return false;
}

// ---- Add, Sub, Mul, Div ---------------------------------------------------------------------

enum class BinOp { kAdd, kSub, kMul, kDiv };

template <BinOp OP>
struct Arith {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (OP == BinOp::kAdd) return static_cast<T>(a + b);
    if constexpr (OP == BinOp::kSub) return static_cast<T>(a - b);
    if constexpr (OP == BinOp::kMul) return static_cast<T>(a * b);
    if constexpr (OP == BinOp::kDiv) {
      // The most negative integer over -1 overflows (x86's idiv traps): negate as two's complement.
      if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
        if (b == T(-1)) return static_cast<T>(T(0) - static_cast<std::make_unsigned_t<T>>(a));
      return static_cast<T>(a / b);
    }
  }
};

template <BinOp OP>
class BinaryKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs two inputs");
    MS_RETURN_IF_ERROR(require_same_dtypes(ctx, 2));
    if (ctx.dtype(0) == DType::kBool) return Unsupported("bool inputs are not supported");
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(1)));
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    if constexpr (OP == BinOp::kDiv) {
      if (!dtype_is_float(b.dtype()) && has_zero(b)) return InvalidArgument("integer division by zero");
    }
    MS_SWITCH_NUMERIC(out.dtype(), T, return unsupported_dtype(out.dtype()),
                      broadcast_binary<T, T, T>(a, b, out, ctx.pool(), Arith<OP>()));
    return Status::OK();
  }
};

// ---- Pow ------------------------------------------------------------------------------------

template <class T, class U>
inline T pow_elem(T x, U y) {
  if constexpr (std::is_integral_v<T> && std::is_integral_v<U>) {
    using UT = std::make_unsigned_t<T>;
    if constexpr (std::is_signed_v<U>) {
      if (y < 0) {  // 1 / x^|y|, truncated toward zero
        if (x == 1) return 1;
        if (x == -1) return (y & 1) ? T(-1) : T(1);
        return 0;
      }
    }
    UT r = 1, b = static_cast<UT>(x);  // unsigned: wraps instead of overflowing
    for (uint64_t e = static_cast<uint64_t>(y); e; e >>= 1) {
      if (e & 1) r = static_cast<UT>(r * b);
      b = static_cast<UT>(b * b);
    }
    return static_cast<T>(r);
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(std::pow(to_double(x), to_double(y)));
  } else if constexpr (std::is_same_v<T, Eigen::half>) {
    return T(std::pow(static_cast<float>(x), static_cast<float>(to_double(y))));
  } else {
    return std::pow(x, static_cast<T>(to_double(y)));
  }
}

// Base dtypes Pow runs.
#define MS_SWITCH_POW_BASE(dt, T, OTHER, ...) \
  switch (dt) {                               \
    MS_FLOAT_CASES(T, __VA_ARGS__)            \
    MS_CASE(kInt32, int32_t, T, __VA_ARGS__)  \
    MS_CASE(kInt64, int64_t, T, __VA_ARGS__)  \
    default: OTHER;                           \
  }

class PowKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs two inputs");
    const DType t = ctx.dtype(0), u = ctx.dtype(1);
    if (!dtype_is_float(t) && t != DType::kInt32 && t != DType::kInt64) return unsupported_dtype(t);
    if (u == DType::kBool) return unsupported_dtype(u);
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(1)));
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    auto f = [](auto x, auto y) { return pow_elem(x, y); };
    MS_SWITCH_POW_BASE(a.dtype(), T, return unsupported_dtype(a.dtype()),
                       MS_SWITCH_NUMERIC(b.dtype(), U, return unsupported_dtype(b.dtype()),
                                         broadcast_binary<T, U, T>(a, b, out, ctx.pool(), f)));
    return Status::OK();
  }
};

// ---- Mod ------------------------------------------------------------------------------------

template <class T>
inline T float_mod_floor(T a, T b) {  // numpy's mod
  T m = std::fmod(a, b);
  if (b == 0) return m;  // NaN
  if (m != 0) {
    if ((b < 0) != (m < 0)) m += b;
  } else {
    m = std::copysign(T(0), b);
  }
  return m;
}

template <bool FMOD>
struct ModOp {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, Eigen::half>) {
      return T((*this)(static_cast<float>(a), static_cast<float>(b)));
    } else if constexpr (std::is_floating_point_v<T>) {
      return FMOD ? std::fmod(a, b) : float_mod_floor(a, b);
    } else if constexpr (std::is_unsigned_v<T>) {
      return static_cast<T>(a % b);
    } else {
      if (b == -1) return 0;  // INT_MIN % -1 overflows
      T r = static_cast<T>(a % b);
      if (!FMOD && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
      return r;
    }
  }
};

class ModKernel final : public Kernel {
 public:
  explicit ModKernel(bool fmod) : fmod_(fmod) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs two inputs");
    MS_RETURN_IF_ERROR(require_same_dtypes(ctx, 2));
    if (ctx.dtype(0) == DType::kBool) return unsupported_dtype(ctx.dtype(0));
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(1)));
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    if (!dtype_is_float(b.dtype()) && has_zero(b)) return InvalidArgument("integer modulo by zero");
    if (fmod_) {
      MS_SWITCH_NUMERIC(out.dtype(), T, return unsupported_dtype(out.dtype()),
                        broadcast_binary<T, T, T>(a, b, out, ctx.pool(), ModOp<true>()));
    } else {
      MS_SWITCH_NUMERIC(out.dtype(), T, return unsupported_dtype(out.dtype()),
                        broadcast_binary<T, T, T>(a, b, out, ctx.pool(), ModOp<false>()));
    }
    return Status::OK();
  }

 private:
  bool fmod_;
};

// ---- BitShift -------------------------------------------------------------------------------

template <bool LEFT>
struct ShiftOp {
  template <class T>
  T operator()(T x, T y) const {
    constexpr uint64_t kBits = sizeof(T) * 8;
    bool negative_x = false, out_of_range = false;
    if constexpr (std::is_signed_v<T>) {
      negative_x = x < 0;
      out_of_range = y < 0;
    }
    if (out_of_range || static_cast<uint64_t>(y) >= kBits) return (!LEFT && negative_x) ? T(-1) : T(0);
    using UT = std::make_unsigned_t<T>;
    if constexpr (LEFT)
      return static_cast<T>(static_cast<UT>(static_cast<UT>(x) << y));
    else
      return static_cast<T>(x >> y);  // arithmetic for signed T
  }
};

class BitShiftKernel final : public Kernel {
 public:
  BitShiftKernel(bool left, bool signed_ok) : left_(left), signed_ok_(signed_ok) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs two inputs");
    MS_RETURN_IF_ERROR(require_same_dtypes(ctx, 2));
    const DType t = ctx.dtype(0);
    const bool is_unsigned = t == DType::kUInt8 || t == DType::kUInt16 || t == DType::kUInt32 || t == DType::kUInt64;
    const bool is_signed = t == DType::kInt8 || t == DType::kInt16 || t == DType::kInt32 || t == DType::kInt64;
    if (!is_unsigned && !(is_signed && signed_ok_))
      return Unsupported(std::string("BitShift of ") + dtype_name(t) +
                         (is_signed ? " needs opset 28" : " is not supported"));
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(1)));
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    switch (out.dtype()) {
      MS_INT_CASES(T, if (left_) broadcast_binary<T, T, T>(a, b, out, ctx.pool(), ShiftOp<true>());
                   else broadcast_binary<T, T, T>(a, b, out, ctx.pool(), ShiftOp<false>()))
      default: return unsupported_dtype(out.dtype());
    }
    return Status::OK();
  }

 private:
  bool left_, signed_ok_;
};

// ---- Sum, Min, Max, Mean --------------------------------------------------------------------

enum class VarOp { kSum, kMin, kMax, kMean };

template <VarOp OP>
struct VarFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (OP == VarOp::kSum || OP == VarOp::kMean) {
      return static_cast<T>(a + b);
    } else {
      if constexpr (!std::is_integral_v<T>) {
        if (a != a) return a;  // NaN propagates
        if (b != b) return b;
      }
      if constexpr (OP == VarOp::kMin)
        return b < a ? b : a;
      else
        return a < b ? b : a;
    }
  }
};

template <VarOp OP>
class VariadicKernel final : public Kernel {
 public:
  explicit VariadicKernel(bool broadcast) : broadcast_(broadcast) {}

  Status infer(InferContext& ctx) const override {
    const int n = ctx.num_inputs();
    MS_CHECK_ARG(n >= 1, "needs at least one input");
    for (int i = 0; i < n; ++i) MS_CHECK_ARG(ctx.has_input(i), "input " + std::to_string(i) + " is missing");
    MS_RETURN_IF_ERROR(require_same_dtypes(ctx, n));
    const DType t = ctx.dtype(0);
    if (t == DType::kBool || (OP == VarOp::kMean && !dtype_is_float(t))) return unsupported_dtype(t);
    if (!broadcast_) {
      for (int i = 1; i < n; ++i)
        if (ctx.shape(i) != ctx.shape(0))
          return InvalidArgument("before opset 8 the input shapes must be equal: " + ctx.shape(0).str() + " and " +
                                 ctx.shape(i).str());
    }
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_inputs(ctx, n));
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& out = ctx.output(0);
    MS_SWITCH_NUMERIC(out.dtype(), T, return unsupported_dtype(out.dtype()), run<T>(ctx, out));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx, Tensor& out) const {
    const int n = ctx.num_inputs();
    if (n == 1) {
      std::memcpy(out.raw(), ctx.input(0).raw(), out.nbytes());
    } else {
      // Fold left into the output: out = f(in0, in1), then out = f(out, in_k).
      broadcast_binary<T, T, T>(ctx.input(0), ctx.input(1), out, ctx.pool(), VarFn<OP>());
      for (int k = 2; k < n; ++k) broadcast_binary<T, T, T>(out, ctx.input(k), out, ctx.pool(), VarFn<OP>());
    }
    if constexpr (OP == VarOp::kMean) {
      if (n > 1) {
        T* p = out.data<T>();
        const T d = static_cast<T>(n);
        ctx.pool().parallel_for(out.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; ++i) p[i] = static_cast<T>(p[i] / d);
        });
      }
    }
  }

  bool broadcast_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Add(const Node&, const KernelInit&) {
  return KernelPtr(new BinaryKernel<BinOp::kAdd>());
}
StatusOr<KernelPtr> create_onnx_Sub(const Node&, const KernelInit&) {
  return KernelPtr(new BinaryKernel<BinOp::kSub>());
}
StatusOr<KernelPtr> create_onnx_Mul(const Node&, const KernelInit&) {
  return KernelPtr(new BinaryKernel<BinOp::kMul>());
}
StatusOr<KernelPtr> create_onnx_Div(const Node&, const KernelInit&) {
  return KernelPtr(new BinaryKernel<BinOp::kDiv>());
}

StatusOr<KernelPtr> create_onnx_Pow(const Node&, const KernelInit&) { return KernelPtr(new PowKernel()); }

StatusOr<KernelPtr> create_onnx_Mod(const Node& node, const KernelInit&) {
  const int64_t fmod = node.attr_int("fmod", 0);
  MS_CHECK_ARG(fmod == 0 || fmod == 1, "fmod must be 0 or 1, got " + std::to_string(fmod));
  return KernelPtr(new ModKernel(fmod == 1));
}

StatusOr<KernelPtr> create_onnx_BitShift(const Node& node, const KernelInit&) {
  const std::string dir = node.attr_string("direction", "");
  MS_CHECK_ARG(dir == "LEFT" || dir == "RIGHT", "direction must be LEFT or RIGHT, got '" + dir + "'");
  return KernelPtr(new BitShiftKernel(dir == "LEFT", node.opset >= 28));
}

StatusOr<KernelPtr> create_onnx_Sum(const Node& node, const KernelInit&) {
  return KernelPtr(new VariadicKernel<VarOp::kSum>(node.opset >= 8));
}
StatusOr<KernelPtr> create_onnx_Min(const Node& node, const KernelInit&) {
  return KernelPtr(new VariadicKernel<VarOp::kMin>(node.opset >= 8));
}
StatusOr<KernelPtr> create_onnx_Max(const Node& node, const KernelInit&) {
  return KernelPtr(new VariadicKernel<VarOp::kMax>(node.opset >= 8));
}
StatusOr<KernelPtr> create_onnx_Mean(const Node& node, const KernelInit&) {
  return KernelPtr(new VariadicKernel<VarOp::kMean>(node.opset >= 8));
}

}  // namespace mserve
