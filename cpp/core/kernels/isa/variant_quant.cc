// Quantization row kernels for one instruction set (see isa.h): DynamicQuantizeLinear's range,
// float32 -> 8-bit rounding and 8-bit -> float32 scaling, and both in one pass.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/kernels/isa/isa.h"

namespace mserve::MSERVE_ISA {

void min_max(const float* x, int64_t n, float* lo, float* hi) {
  if (n <= 0) return;
  Eigen::Map<const Eigen::ArrayXf> a(x, n);
  *lo = std::min(*lo, a.minCoeff());
  *hi = std::max(*hi, a.maxCoeff());
}

// Written so that GCC vectorizes them: nearbyint is vrndscaleps / roundps; NaN ends at the
// type's minimum (it fails both comparisons).
template <class Q>
void quantize_to(const float* x, int64_t n, float scale, float zero_point, Q* y) {
  constexpr float lo = std::is_signed_v<Q> ? -128.0f : 0.0f, hi = std::is_signed_v<Q> ? 127.0f : 255.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v = __builtin_nearbyintf(x[i] / scale) + zero_point;
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    y[i] = static_cast<Q>(static_cast<int>(v));
  }
}

void quantize_8bit(const float* x, int64_t n, float scale, float zero_point, bool is_signed, uint8_t* y) {
  if (is_signed)
    quantize_to(x, n, scale, zero_point, reinterpret_cast<int8_t*>(y));
  else
    quantize_to(x, n, scale, zero_point, y);
}

template <class Q>
void dequantize_from(const Q* x, int64_t n, float scale, int32_t zero_point, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<int32_t>(x[i]) - zero_point) * scale;
}

void dequantize_8bit(const uint8_t* x, bool is_signed, int64_t n, float scale, int32_t zero_point, float* y) {
  if (is_signed)
    dequantize_from(reinterpret_cast<const int8_t*>(x), n, scale, zero_point, y);
  else
    dequantize_from(x, n, scale, zero_point, y);
}

// quantize_to then dequantize_from without the 8-bit value in between: q - zero_point is a small
// integer, exact in float, as dequantize_from's int32 difference converted.
template <bool Signed>
void quantize_dequantize(const float* x, int64_t n, float scale, float zero_point, float* y) {
  constexpr float lo = Signed ? -128.0f : 0.0f, hi = Signed ? 127.0f : 255.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v = __builtin_nearbyintf(x[i] / scale) + zero_point;
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    y[i] = (v - zero_point) * scale;
  }
}

void quantize_dequantize_8bit(const float* x, int64_t n, float scale, float zero_point, bool is_signed, float* y) {
  if (is_signed)
    quantize_dequantize<true>(x, n, scale, zero_point, y);
  else
    quantize_dequantize<false>(x, n, scale, zero_point, y);
}

}  // namespace mserve::MSERVE_ISA
