// The fused activations' math for one instruction set (see isa.h), with Eigen's vectorized
// functions; called through FusedActivation::apply.
#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>  // vectorized erf, for Gelu

#include "core/kernels/fused_activation.h"
#include "core/kernels/isa/isa.h"

namespace mserve::MSERVE_ISA {
namespace {

// The same expressions as the stand-alone operators (ops/activation.cc), so a
// fused activation computes what the unfused node does.
template <class C>
void eval(const FusedActivation& a, C* yp, int64_t n) {
  using K = FusedActivation::Kind;
  Eigen::Map<Eigen::Array<C, Eigen::Dynamic, 1>> y(yp, n);
  const C lo = static_cast<C>(a.alpha), hi = static_cast<C>(a.beta), zero(0), one(1);
  switch (a.kind) {
    case K::kNone:
      return;
    case K::kRelu:
      y = (y < zero).select(zero, y);
      return;
    case K::kLeakyRelu:
      y = (y < zero).select(y * lo, y);
      return;
    case K::kClip:
      y = (y < lo).select(lo, (y > hi).select(hi, y));
      return;
    case K::kHardSwish:
      y = y * (y * C(1.0 / 6.0) + C(0.5)).max(zero).min(one);
      return;
    case K::kGelu:
      y = C(0.5) * y * (one + (y * C(0.70710678118654752440)).erf());
      return;
    case K::kGeluTanh:
      y = C(0.5) * y * (one + (C(0.79788456080286535588) * (y + C(0.044715) * y.cube())).tanh());
      return;
    case K::kTanh:
      y = y.tanh();
      return;
    case K::kSigmoid:
      y = y.logistic();
      return;
  }
}

}  // namespace

void apply_activation(const FusedActivation& a, float* y, int64_t n) { eval(a, y, n); }
void apply_activation(const FusedActivation& a, double* y, int64_t n) { eval(a, y, n); }

}  // namespace mserve::MSERVE_ISA
