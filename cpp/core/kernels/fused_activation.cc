#include "core/kernels/fused_activation.h"

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>  // vectorized erf, for Gelu

namespace mserve {
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

bool FusedActivation::kind_of(const std::string& name, Kind* kind) {
  static const std::pair<const char*, Kind> kNames[] = {
      {"Relu", Kind::kRelu}, {"LeakyRelu", Kind::kLeakyRelu}, {"Clip", Kind::kClip}, {"HardSwish", Kind::kHardSwish},
      {"Gelu", Kind::kGelu}, {"GeluTanh", Kind::kGeluTanh},   {"Tanh", Kind::kTanh}, {"Sigmoid", Kind::kSigmoid}};
  for (const auto& [s, k] : kNames)
    if (name == s) {
      *kind = k;
      return true;
    }
  *kind = Kind::kNone;
  return false;
}

void FusedActivation::apply(float* y, int64_t n) const { eval(*this, y, n); }
void FusedActivation::apply(double* y, int64_t n) const { eval(*this, y, n); }

}  // namespace mserve
