// The activation table's (activation_table.h) expressions on Eigen arrays, for one instruction
// set (see isa.h); called through FusedActivation::apply.
#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>  // vectorized erf, for Gelu

#include "core/kernels/activation_table.h"
#include "core/kernels/fused_activation.h"
#include "core/kernels/isa/isa.h"

namespace mserve::MSERVE_ISA {
namespace {

template <class C>
void eval(const FusedActivation& f, const C* xp, C* yp, int64_t n) {
  using K = FusedActivation::Kind;
  Eigen::Map<const Eigen::Array<C, Eigen::Dynamic, 1>> x(xp, n);
  Eigen::Map<Eigen::Array<C, Eigen::Dynamic, 1>> y(yp, n);
  const C a = static_cast<C>(f.alpha), b = static_cast<C>(f.beta);
  switch (f.kind) {
    case K::kNone:
      if (xp != yp) y = x;
      return;
#define MSERVE_ACTIVATION_CASE(KIND, ...) \
  case K::k##KIND: y = activation_math::KIND<C>(x, a, b); return;
      MSERVE_ACTIVATIONS(MSERVE_ACTIVATION_CASE)
#undef MSERVE_ACTIVATION_CASE
  }
}

}  // namespace

void apply_activation(const FusedActivation& f, const float* x, float* y, int64_t n) { eval(f, x, y, n); }
void apply_activation(const FusedActivation& f, const double* x, double* y, int64_t n) { eval(f, x, y, n); }

}  // namespace mserve::MSERVE_ISA
