// Quantization row kernels for one instruction set (see isa.h): DynamicQuantizeLinear's range
// and its float32 -> uint8 rounding.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "core/kernels/isa/isa.h"

namespace mserve::MSERVE_ISA {

void min_max(const float* x, int64_t n, float* lo, float* hi) {
  if (n <= 0) return;
  Eigen::Map<const Eigen::ArrayXf> a(x, n);
  *lo = std::min(*lo, a.minCoeff());
  *hi = std::max(*hi, a.maxCoeff());
}

void quantize_u8(const float* x, int64_t n, float scale, float zero_point, uint8_t* y) {
  // Written so that GCC vectorizes it: nearbyint is vrndscaleps / roundps; NaN ends at 0.
  for (int64_t i = 0; i < n; ++i) {
    float v = __builtin_nearbyintf(x[i] / scale) + zero_point;
    v = v > 0.0f ? v : 0.0f;
    v = v < 255.0f ? v : 255.0f;
    y[i] = static_cast<uint8_t>(static_cast<int>(v));
  }
}

}  // namespace mserve::MSERVE_ISA
