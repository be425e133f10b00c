#include "core/kernels/fused_activation.h"

#include <utility>

#include "core/graph/graph.h"
#include "core/kernels/isa/isa.h"

namespace mserve {

FusedActivation FusedActivation::of(const Node& n, const std::string& prefix) {
  FusedActivation a;
  kind_of(n.attr_string(prefix, ""), &a.kind);
  a.alpha = n.attr_float(prefix + "_alpha", 0.0f);
  a.beta = n.attr_float(prefix + "_beta", 0.0f);
  return a;
}

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

void FusedActivation::apply(float* y, int64_t n) const {
  if (kind != Kind::kNone) MSERVE_ISA_DISPATCH(apply_activation, *this, y, n);
}
void FusedActivation::apply(double* y, int64_t n) const {
  if (kind != Kind::kNone) MSERVE_ISA_DISPATCH(apply_activation, *this, y, n);
}

}  // namespace mserve
