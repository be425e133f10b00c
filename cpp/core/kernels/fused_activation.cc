#include "core/kernels/fused_activation.h"

#include <cctype>
#include <cstring>

#include "core/graph/graph.h"
#include "core/kernels/isa/isa.h"

namespace mserve {
namespace {

using Kind = FusedActivation::Kind;

const FusedActivation::Info kInfos[] = {
#define MSERVE_ACTIVATION_INFO(KIND, A_ATTR, A_DEF, B_ATTR, B_DEF, FUSES, RECURRENT, DNNL, Y) \
  {#KIND, A_ATTR, A_DEF, B_ATTR, B_DEF, FUSES, RECURRENT},
    MSERVE_ACTIVATIONS(MSERVE_ACTIVATION_INFO)
#undef MSERVE_ACTIVATION_INFO
};
static_assert(sizeof(kInfos) / sizeof(kInfos[0]) == FusedActivation::kKinds);

bool same_name(const char* a, const std::string& b, bool any_case) {
  if (std::strlen(a) != b.size()) return false;
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = a[i], y = b[i];
    if (any_case ? std::tolower(x) != std::tolower(y) : x != y) return false;
  }
  return true;
}

FusedActivation with_defaults(Kind k) {
  FusedActivation a;
  a.kind = k;
  a.alpha = FusedActivation::info(k).alpha_default;
  a.beta = FusedActivation::info(k).beta_default;
  return a;
}

std::string param_attr(const char* prefix, const char* suffix) { return std::string(prefix) + suffix; }

}  // namespace

const FusedActivation::Info& FusedActivation::info(Kind k) { return kInfos[static_cast<int>(k) - 1]; }

FusedActivation FusedActivation::named(const std::string& name, bool any_case) {
  for (int i = 0; i < FusedActivation::kKinds; ++i)
    if (same_name(kInfos[i].name, name, any_case)) return with_defaults(static_cast<Kind>(i + 1));
  return {};
}

FusedActivation FusedActivation::of_operator(const Node& n) {
  if (!n.domain.empty()) return {};
  FusedActivation a = named(n.op_type);
  if (a.kind == Kind::kNone) return {};
  // Names that are no operator, or whose operator is another's form.
  if (a.kind == Kind::kGeluTanh || a.kind == Kind::kAffine || a.kind == Kind::kScaledTanh) return {};
  if (a.kind == Kind::kGelu) {
    const std::string approx = n.attr_string("approximate", "none");
    if (approx == "tanh") return with_defaults(Kind::kGeluTanh);
    return approx == "none" ? a : FusedActivation{};
  }
  const Info& in = info(a.kind);
  if (in.alpha_attr) a.alpha = n.attr_float(in.alpha_attr, in.alpha_default);
  if (in.beta_attr) a.beta = n.attr_float(in.beta_attr, in.beta_default);
  if (a.kind == Kind::kCelu && a.alpha == 0) return {};  // Celu divides by alpha
  return a;
}

void FusedActivation::write(Node& n, const char* prefix) const {
  n.attrs[prefix] = Attribute::of_string(info(kind).name);
  n.attrs[param_attr(prefix, "_alpha")] = Attribute::of_float(alpha);
  n.attrs[param_attr(prefix, "_beta")] = Attribute::of_float(beta);
}

FusedActivation FusedActivation::of(const Node& n, const char* prefix) {
  FusedActivation a = named(n.attr_string(prefix, ""));
  a.alpha = n.attr_float(param_attr(prefix, "_alpha"), 0.0f);
  a.beta = n.attr_float(param_attr(prefix, "_beta"), 0.0f);
  return a;
}

bool FusedActivation::fused(const Node& n, const char* prefix) { return n.attr(prefix) != nullptr; }

void FusedActivation::write_residual(Node& n) { n.attrs[kResidualAttr] = Attribute::of_int(1); }

bool FusedActivation::has_residual(const Node& n) { return n.attr_int(kResidualAttr, 0) != 0; }

void FusedActivation::apply(const float* x, float* y, int64_t n) const {
  MSERVE_ISA_DISPATCH(apply_activation, *this, x, y, n);
}
void FusedActivation::apply(const double* x, double* y, int64_t n) const {
  MSERVE_ISA_DISPATCH(apply_activation, *this, x, y, n);
}

}  // namespace mserve
