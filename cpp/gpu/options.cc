#include "gpu/options.h"

namespace mserve::gpu {

namespace {
constexpr struct {
  const char* name;
  Precision value;
} kPrecisions[] = {
    {"fp32", Precision::kFp32}, {"tf32", Precision::kTf32}, {"fp16", Precision::kFp16}, {"bf16", Precision::kBf16}};
}  // namespace

bool parse_precision(const std::string& name, Precision* out) {
  for (const auto& p : kPrecisions)
    if (name == p.name) {
      *out = p.value;
      return true;
    }
  return false;
}

const char* precision_name(Precision p) {
  for (const auto& q : kPrecisions)
    if (q.value == p) return q.name;
  return "?";
}

}  // namespace mserve::gpu
