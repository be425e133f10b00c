#include "core/kernels/isa/isa.h"

#include <cstdlib>
#include <cstring>

namespace mserve {
namespace {

Isa detect() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  Isa best = avx512 && avx2 ? Isa::kAvx512 : avx2 ? Isa::kAvx2 : Isa::kBase;
  if (const char* want = std::getenv("MSERVE_ISA")) {
    Isa w = best;
    if (std::strcmp(want, "base") == 0)
      w = Isa::kBase;
    else if (std::strcmp(want, "avx2") == 0)
      w = Isa::kAvx2;
    else if (std::strcmp(want, "avx512") == 0)
      w = Isa::kAvx512;
    if (static_cast<int>(w) <= static_cast<int>(best)) best = w;
  }
  return best;
}

}  // namespace

Isa cpu_isa() {
  static const Isa isa = detect();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "base";
  }
}

}  // namespace mserve
