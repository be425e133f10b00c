// Elementwise unary math: Abs, Neg, Exp, Log, Sqrt, Reciprocal, Floor, Ceil, Round, Sign, Erf,
// the trigonometric and hyperbolic functions and their inverses, Softsign, IsNaN, IsInf, Not,
// BitwiseNot.
//
// Float32/float64 run as Eigen array expressions (vectorized where Eigen vectorizes the
// function); float16 is converted to float32 in small stack chunks, computed, and rounded back.
// Integer types where the spec lists them: Abs and Sign (every int), Neg (signed ints), Erf
// (every int, opset 9-12 only), BitwiseNot (every int). Round is half to even (rint). IsNaN and
// IsInf return bool; Not takes bool only.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include <unsupported/Eigen/SpecialFunctions>  // Eigen's (vectorized) erf

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class U {
  kAbs,
  kNeg,
  kExp,
  kLog,
  kSqrt,
  kReciprocal,
  kFloor,
  kCeil,
  kRound,
  kSign,
  kErf,
  kSin,
  kCos,
  kTan,
  kAsin,
  kAcos,
  kAtan,
  kSinh,
  kCosh,
  kAsinh,
  kAcosh,
  kAtanh,
  kSoftsign,
  kIsNaN,
  kIsInf,
  kNot,
  kBitwiseNot,
};

template <class C>
using Arr = Eigen::Array<C, Eigen::Dynamic, 1>;

// Eigen's vectorized exp and log are exact to an ulp or two over the normal range but not at its
// edges: exp of x below log(min normal) (about -87.3 for float) comes out as ~2.9e-39 instead of
// a subnormal or 0 (exp(-inf) included), and log of a subnormal as log of the smallest normal.
// Those elements are recomputed with the C library. y may alias x: blocks go through a copy.
template <class C, class Vector, class Edge, class Scalar>
void with_exact_edges(const C* xp, C* yp, int64_t n, Vector vector, Edge edge, Scalar scalar) {
  constexpr int64_t kBlock = 256;
  C buf[kBlock];
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    std::copy(xp + b, xp + b + m, buf);
    vector(Eigen::Map<const Arr<C>>(buf, m), Eigen::Map<Arr<C>>(yp + b, m));
    for (int64_t j = 0; j < m; ++j)
      if (edge(buf[j])) yp[b + j] = scalar(buf[j]);
  }
}

// y = op(x) over n floats or doubles; y may alias x.
template <class C>
void float_eval(U op, const C* xp, C* yp, int64_t n) {
  Eigen::Map<const Arr<C>> x(xp, n);
  Eigen::Map<Arr<C>> y(yp, n);
  switch (op) {
    case U::kAbs: y = x.abs(); break;
    case U::kNeg: y = -x; break;
    case U::kExp: {
      const C lo = std::log(std::numeric_limits<C>::min());
      with_exact_edges<C>(
          xp, yp, n, [](auto in, auto out) { out = in.exp(); }, [lo](C v) { return v < lo; },
          [](C v) { return std::exp(v); });
      break;
    }
    case U::kLog:
      with_exact_edges<C>(
          xp, yp, n, [](auto in, auto out) { out = in.log(); },
          [](C v) { return v > C(0) && v < std::numeric_limits<C>::min(); }, [](C v) { return std::log(v); });
      break;
    case U::kSqrt:
      // IEEE square root, correctly rounded (sqrt(4) is 2, sqrt(inf) inf, subnormals kept):
      // Eigen's vectorized form is a reciprocal-square-root estimate refined once.
      for (int64_t i = 0; i < n; ++i) yp[i] = std::sqrt(xp[i]);
      break;
    case U::kReciprocal: y = x.inverse(); break;
    case U::kFloor: y = x.floor(); break;
    case U::kCeil: y = x.ceil(); break;
    case U::kRound:
      y = x.rint();
      break;  // round half to even
    // NaN and signed zeros pass through, as numpy's sign does.
    case U::kSign: y = (x > C(0)).select(C(1), (x < C(0)).select(C(-1), x)); break;
    case U::kErf: y = x.erf(); break;
    case U::kSin: y = x.sin(); break;
    case U::kCos: y = x.cos(); break;
    case U::kTan: y = x.tan(); break;
    case U::kAsin: y = x.asin(); break;
    case U::kAcos: y = x.acos(); break;
    case U::kAtan: y = x.atan(); break;
    case U::kSinh: y = x.sinh(); break;
    case U::kCosh: y = x.cosh(); break;
    case U::kAsinh:
      for (int64_t i = 0; i < n; ++i) yp[i] = std::asinh(xp[i]);
      break;
    case U::kAcosh:
      for (int64_t i = 0; i < n; ++i) yp[i] = std::acosh(xp[i]);
      break;
    case U::kAtanh:
      for (int64_t i = 0; i < n; ++i) yp[i] = std::atanh(xp[i]);
      break;
    case U::kSoftsign: y = x / (C(1) + x.abs()); break;
    default: break;  // not a float -> float op
  }
}

template <class T>
void int_eval(U op, const T* x, T* y, int64_t n) {
  switch (op) {
    case U::kAbs:
      if constexpr (std::is_signed_v<T>) {
        for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(x[i] < 0 ? -x[i] : x[i]);
      } else {
        std::copy(x, x + n, y);
      }
      break;
    case U::kNeg:
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(-x[i]);
      break;
    case U::kSign:
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(x[i] > 0 ? 1 : (x[i] < 0 ? -1 : 0));
      break;
    case U::kErf:
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(std::erf(static_cast<double>(x[i])));
      break;
    case U::kBitwiseNot:
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(~x[i]);
      break;
    default: break;
  }
}

template <class T>
void eval(U op, const T* x, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    float_eval<T>(op, x, y, n);
  } else if constexpr (std::is_same_v<T, Eigen::half>) {
    constexpr int64_t kChunk = 256;
    float buf[kChunk];
    for (int64_t s = 0; s < n; s += kChunk) {
      const int64_t m = std::min(kChunk, n - s);
      for (int64_t j = 0; j < m; ++j) buf[j] = static_cast<float>(x[s + j]);
      float_eval<float>(op, buf, buf, m);
      for (int64_t j = 0; j < m; ++j) y[s + j] = static_cast<Eigen::half>(buf[j]);
    }
  } else {
    int_eval<T>(op, x, y, n);
  }
}

bool is_signed_int(DType t) {
  return t == DType::kInt8 || t == DType::kInt16 || t == DType::kInt32 || t == DType::kInt64;
}

class UnaryKernel final : public Kernel {
 public:
  UnaryKernel(U op, const Node& n) : op_(op) {
    detect_neg_ = n.attr_int("detect_negative", 1) != 0;
    detect_pos_ = n.attr_int("detect_positive", 1) != 0;
  }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs one input");
    const DType t = ctx.dtype(0);
    if (!allowed(t, ctx.node().opset)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const bool to_bool = op_ == U::kIsNaN || op_ == U::kIsInf;
    ctx.set_output(0, to_bool ? DType::kBool : t, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    const int64_t n = x.numel();
    constexpr int64_t kGrain = 1 << 14;
    if (op_ == U::kIsNaN || op_ == U::kIsInf) {
      bool* out = y.data<bool>();
      MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"), {
        const T* in = x.data<T>();
        ctx.pool().parallel_for(n, kGrain, [&](int64_t b, int64_t e) { classify<T>(in, out, b, e); });
      });
      return Status::OK();
    }
    if (op_ == U::kNot) {
      const bool* in = x.data<bool>();
      bool* out = y.data<bool>();
      for (int64_t i = 0; i < n; ++i) out[i] = !in[i];
      return Status::OK();
    }
    const U op = op_;
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), {
      const T* in = x.data<T>();
      T* out = y.data<T>();
      ctx.pool().parallel_for(n, kGrain, [&](int64_t b, int64_t e) { eval<T>(op, in + b, out + b, e - b); });
    });
    return Status::OK();
  }

 private:
  bool allowed(DType t, int opset) const {
    const bool f = dtype_is_float(t);
    const bool b = t == DType::kBool;
    const bool i = !f && !b && t != DType::kUndefined;
    switch (op_) {
      case U::kAbs:
      case U::kSign: return f || i;
      case U::kNeg: return f || is_signed_int(t);
      case U::kErf: return f || (i && opset < 13);  // ints were dropped at opset 13
      case U::kNot: return b;
      case U::kBitwiseNot: return i;
      default: return f;
    }
  }

  template <class T>
  void classify(const T* in, bool* out, int64_t b, int64_t e) const {
    for (int64_t i = b; i < e; ++i) {
      // float16 widens to float exactly; doubles stay doubles (1e300 is not an infinity).
      using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
      const C v = static_cast<C>(in[i]);
      if (op_ == U::kIsNaN) {
        out[i] = std::isnan(v);
      } else {
        out[i] = std::isinf(v) && (v > 0 ? detect_pos_ : detect_neg_);
      }
    }
  }

  U op_;
  bool detect_neg_, detect_pos_;
};

StatusOr<KernelPtr> make(U op, const Node& n) { return KernelPtr(new UnaryKernel(op, n)); }

}  // namespace

#define MS_UNARY_FACTORY(NAME) \
  StatusOr<KernelPtr> create_onnx_##NAME(const Node& n, const KernelInit&) { return make(U::k##NAME, n); }
MS_UNARY_FACTORY(Abs)
MS_UNARY_FACTORY(Neg)
MS_UNARY_FACTORY(Exp)
MS_UNARY_FACTORY(Log)
MS_UNARY_FACTORY(Sqrt)
MS_UNARY_FACTORY(Reciprocal)
MS_UNARY_FACTORY(Floor)
MS_UNARY_FACTORY(Ceil)
MS_UNARY_FACTORY(Round)
MS_UNARY_FACTORY(Sign)
MS_UNARY_FACTORY(Erf)
MS_UNARY_FACTORY(Sin)
MS_UNARY_FACTORY(Cos)
MS_UNARY_FACTORY(Tan)
MS_UNARY_FACTORY(Asin)
MS_UNARY_FACTORY(Acos)
MS_UNARY_FACTORY(Atan)
MS_UNARY_FACTORY(Sinh)
MS_UNARY_FACTORY(Cosh)
MS_UNARY_FACTORY(Asinh)
MS_UNARY_FACTORY(Acosh)
MS_UNARY_FACTORY(Atanh)
MS_UNARY_FACTORY(Softsign)
MS_UNARY_FACTORY(IsNaN)
MS_UNARY_FACTORY(IsInf)
MS_UNARY_FACTORY(Not)
MS_UNARY_FACTORY(BitwiseNot)
#undef MS_UNARY_FACTORY

}  // namespace mserve
