// The one table of element-wise activations. Every user expands MSERVE_ACTIVATIONS(X) and takes
// the columns it needs:
//   the stand-alone operators (ops/activation.cc), the activations fused into Conv, Gemm and
//   MatMul and the recurrent gates (FusedActivation::apply, isa/variant_activation.cc), the
//   oneDNN post-op (dnnl_common.h) and the fusion pass (passes/fuse_activation.cc, through
//   FusedActivation). A row added here reaches all of them.
//
// X(Kind, A attribute, A default, B attribute, B default, fuses, recurrent, oneDNN algorithm, y)
//   Kind       FusedActivation::Kind::k<Kind>, and the mserve_activation attribute's value. It is
//              the ONNX operator's name, except GeluTanh (Gelu with approximate = "tanh") and
//              Affine and ScaledTanh (recurrent gates only, no operator).
//   A, B       the two parameters: the operator's attribute (nullptr: none) and its default.
//              Clip's are its min and max (inputs; the importer turns Clip-6's attributes into them).
//   fuses      fuse_activation moves it into a Conv, Gemm or MatMul that feeds it; such a row names
//              the dnnl::algorithm that computes the same function with alpha = A, beta = B.
//   recurrent  an RNN / GRU / LSTM gate activation (matched ignoring case, as the reference does).
//   y          the function of x, written once for scalars and Eigen arrays alike: `C` is the
//              element type, `a` and `b` the parameters, `zero` and `one` constants of type C;
//              the functions are activation_math's. NaN stays NaN unless the ONNX operator says
//              otherwise (Shrink, ThresholdedRelu: a comparison with NaN is false).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

// A table: clang-format would read the expressions in its rows as declarations.
// clang-format off
#define MSERVE_ACTIVATIONS(X)                                                                                         \
  X(Relu, nullptr, 0.0f, nullptr, 0.0f, true, true, eltwise_relu, where(x < zero, zero, x))                          \
  X(LeakyRelu, "alpha", 0.01f, nullptr, 0.0f, true, true, eltwise_relu, where(x < zero, a * x, x))                    \
  X(Clip, "min", -std::numeric_limits<float>::infinity(), "max", std::numeric_limits<float>::infinity(), true, false, \
    eltwise_clip_v2, where(x < a, a, where(x > b, b, x)))                                                             \
  X(HardSwish, nullptr, 0.0f, nullptr, 0.0f, true, false, eltwise_hardswish,                                          \
    x * min(max(x * C(1.0 / 6.0) + C(0.5), zero), one))                                                               \
  X(Gelu, nullptr, 0.0f, nullptr, 0.0f, true, false, eltwise_gelu_erf,                                                \
    C(0.5) * x * (one + erf(x * C(0.70710678118654752440))))                                                          \
  X(GeluTanh, nullptr, 0.0f, nullptr, 0.0f, true, false, eltwise_gelu_tanh,                                           \
    C(0.5) * x * (one + tanh(C(0.79788456080286535588) * (x + C(0.044715) * cube(x)))))                               \
  X(Tanh, nullptr, 0.0f, nullptr, 0.0f, true, true, eltwise_tanh, tanh(x))                                            \
  /* 1 / (1 + e^-x) as written: Eigen's logistic() rounds to 1 from x ~ 16, where the formula */                      \
  /* still gives 1 - 2^-24, and a GRU's (1 - z) * h~ keeps those bits. */                                             \
  X(Sigmoid, nullptr, 0.0f, nullptr, 0.0f, true, true, eltwise_logistic, recip(one + exp(-x)))                        \
  X(Elu, "alpha", 1.0f, nullptr, 0.0f, false, true, undef, where(x < zero, a * (exp(x) - one), x))                    \
  X(Selu, "alpha", 1.67326319217681884765625f, "gamma", 1.05070102214813232421875f, false, false, undef,              \
    b * where(x > zero, x, a * exp(x) - a))                                                                           \
  X(Celu, "alpha", 1.0f, nullptr, 0.0f, false, false, undef, max(x, zero) + min(a * (exp(x / a) - one), zero))        \
  /* log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|). */                                                     \
  X(Softplus, nullptr, 0.0f, nullptr, 0.0f, false, true, undef, max(x, zero) + log1p(exp(-abs(x))))                   \
  X(Softsign, nullptr, 0.0f, nullptr, 0.0f, false, true, undef, x / (one + abs(x)))                                   \
  X(HardSigmoid, "alpha", 0.2f, "beta", 0.5f, false, true, undef, min(max(a * x + b, zero), one))                     \
  /* Below -88 e^x is under float's normal range and vectorized exp stops at a denormal, which x */                   \
  /* then multiplies up (-0.88 at -3e38): there x * e^x is below 1e-36, so x * 0 (NaN at -inf, as the formula). */    \
  X(Mish, nullptr, 0.0f, nullptr, 0.0f, false, false, undef,                                                          \
    where(x < C(-88), x * zero, x * tanh(max(x, zero) + log1p(exp(-abs(x))))))                                       \
  X(ThresholdedRelu, "alpha", 1.0f, nullptr, 0.0f, false, true, undef, where(x > a, x, zero))                         \
  X(Shrink, "lambd", 0.5f, "bias", 0.0f, false, false, undef, where(x < -a, x + b, where(x > a, x - b, zero)))        \
  X(Swish, "alpha", 1.0f, nullptr, 0.0f, true, false, eltwise_swish, x * recip(one + exp(-(a * x))))                  \
  X(Affine, "alpha", 1.0f, "beta", 0.0f, false, true, undef, a * x + b)                                               \
  X(ScaledTanh, "alpha", 1.0f, "beta", 1.0f, false, true, undef, a * tanh(b * x))
// clang-format on

// The expressions also run on the GPU (cpp/gpu/ops/activation.cu): under nvcc the scalar forms
// are host and device functions, so the CPU's and the GPU's arithmetic is this one text.
#if defined(__CUDACC__)
#define MSERVE_HOST_DEVICE __host__ __device__
#else
#define MSERVE_HOST_DEVICE
#endif

namespace mserve::activation_math {

// The functions the table's expressions use, for an arithmetic scalar or an Eigen array
// expression (whose member functions are Eigen's vectorized ones; the including file brings in
// Eigen and, for erf, unsupported/Eigen/SpecialFunctions). The ISA variants instantiate these
// only on Eigen types, whose namespace differs per variant (isa.h), so no variant's code is
// shared with another's; scalars are instantiated only outside the variants.
template <class X>
inline constexpr bool kScalar = std::is_arithmetic_v<X>;

template <class X>
MSERVE_HOST_DEVICE auto exp(const X& x) {
  if constexpr (kScalar<X>)
    return std::exp(x);
  else
    return x.exp();
}
template <class X>
MSERVE_HOST_DEVICE auto tanh(const X& x) {
  if constexpr (kScalar<X>)
    return std::tanh(x);
  else
    return x.tanh();
}
template <class X>
MSERVE_HOST_DEVICE auto erf(const X& x) {
  if constexpr (kScalar<X>)
    return std::erf(x);
  else
    return x.erf();
}
template <class X>
MSERVE_HOST_DEVICE auto log1p(const X& x) {
  if constexpr (kScalar<X>)
    return std::log1p(x);
  else
    return x.log1p();
}
template <class X>
MSERVE_HOST_DEVICE auto abs(const X& x) {
  if constexpr (kScalar<X>)
    return std::abs(x);
  else
    return x.abs();
}
template <class X>
MSERVE_HOST_DEVICE auto cube(const X& x) {
  if constexpr (kScalar<X>)
    return x * x * x;
  else
    return x.cube();
}
template <class X>
MSERVE_HOST_DEVICE auto recip(const X& x) {
  if constexpr (kScalar<X>)
    return X(1) / x;
  else
    return x.inverse();
}
// max / min with a scalar bound; NaN in x stays NaN (std::max's order, which Eigen's packet
// max follows).
template <class X, class S>
MSERVE_HOST_DEVICE auto max(const X& x, S s) {
  if constexpr (kScalar<X>)
    return x < X(s) ? X(s) : x;  // std::max(x, s), which device code cannot call
  else
    return x.max(s);
}
template <class X, class S>
MSERVE_HOST_DEVICE auto min(const X& x, S s) {
  if constexpr (kScalar<X>)
    return X(s) < x ? X(s) : x;  // std::min(x, s)
  else
    return x.min(s);
}
// c ? t : e, per element.
template <class Cond, class T, class E>
MSERVE_HOST_DEVICE auto where(const Cond& c, const T& t, const E& e) {
  if constexpr (std::is_same_v<Cond, bool>)
    return c ? t : e;
  else
    return c.select(t, e);
}

// activation_math::<Kind><C>(x, a, b): the table's y for each row.
#define MSERVE_ACTIVATION_FUNCTION(KIND, A_ATTR, A_DEF, B_ATTR, B_DEF, FUSES, RECURRENT, DNNL, Y) \
  template <class C, class X>                                                                     \
  MSERVE_HOST_DEVICE auto KIND(const X& x, C a, C b) {                                            \
    [[maybe_unused]] const C zero(0), one(1);                                                     \
    return Y;                                                                                     \
  }
MSERVE_ACTIVATIONS(MSERVE_ACTIVATION_FUNCTION)
#undef MSERVE_ACTIVATION_FUNCTION

}  // namespace mserve::activation_math
