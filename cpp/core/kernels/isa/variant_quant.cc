// Quantization row kernels for one instruction set (see isa.h): DynamicQuantizeLinear's range,
// float32 -> 8-bit rounding and 8-bit -> float32 scaling, and both in one pass; the passes around
// a 7-bit int8 convolution (int8_window.h).
#include <Eigen/Core>
#ifdef __AVX2__
#include <immintrin.h>
#endif
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

int64_t clamp_to_window(const uint8_t* x, bool flip, int64_t pixels, int64_t C, int32_t lo, uint8_t* xc,
                        uint8_t* flags) {
  const uint8_t f = flip ? 0x80 : 0, l = static_cast<uint8_t>(lo), h = static_cast<uint8_t>(lo + 127);
  int64_t outside = 0;
  for (int64_t p = 0; p < pixels; ++p) {
    const uint8_t* in = x + p * C;
    uint8_t* out = xc + p * C;
    int32_t n = 0;
    for (int64_t c = 0; c < C; ++c) {
      const uint8_t v = in[c] ^ f;
      const uint8_t w = v < l ? l : (v > h ? h : v);
      out[c] = static_cast<uint8_t>(w - l);
      n += v != w;
    }
    flags[p] = n != 0;
    outside += n;
  }
  return outside;
}

// Blocks of 32 values are tested at once (vectorized); values are looked at one by one only in a
// block with one outside (a QDQ ResNet-50: 0.02-0.9% of the values, about one block in ten).
int64_t outside_window(const uint8_t* x, int64_t C, bool flip, int32_t lo, int32_t* channel, int32_t* excess) {
  const uint8_t f = flip ? 0x80 : 0, l = static_cast<uint8_t>(lo), h = static_cast<uint8_t>(lo + 127);
  int64_t n = 0;
  for (int64_t c0 = 0; c0 < C; c0 += 32) {
    const int64_t c1 = std::min<int64_t>(C, c0 + 32);
    uint8_t any = 0;
    for (int64_t c = c0; c < c1; ++c) {
      const uint8_t v = x[c] ^ f;
      any |= static_cast<uint8_t>(v ^ (v < l ? l : (v > h ? h : v)));
    }
    if (!any) continue;
    for (int64_t c = c0; c < c1; ++c) {
      const int32_t v = x[c] ^ f;
      const int32_t e = v < lo ? v - lo : (v > lo + 127 ? v - lo - 127 : 0);
      if (e == 0) continue;
      channel[n] = static_cast<int32_t>(c);
      excess[n++] = e;
    }
  }
  return n;
}

void add_scaled_int8(int32_t* acc, const int8_t* w, int32_t e, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += e * static_cast<int32_t>(w[i]);
}

// With AVX2, 32 codes at a time: the table as 16 rows of 16, vpshufb looks up the low nibble in
// every row and the row of each code's high nibble is kept.
void lookup_8bit(const uint8_t* x, int64_t n, const uint8_t* table, uint8_t* y) {
  int64_t i = 0;
#ifdef __AVX2__
  __m256i rows[16];
  for (int r = 0; r < 16; ++r)
    rows[r] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * r)));
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    __m256i out = _mm256_setzero_si256();
    for (int r = 0; r < 16; ++r) {
      const __m256i in_row = _mm256_cmpeq_epi8(hi, _mm256_set1_epi8(static_cast<char>(r)));
      out = _mm256_or_si256(out, _mm256_and_si256(in_row, _mm256_shuffle_epi8(rows[r], lo)));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), out);
  }
#endif
  for (; i < n; ++i) y[i] = table[x[i]];
}

// Vectorized like quantize_to: the sum converted to float (exact below 2^24), scaled, rounded
// half to even, shifted and clamped in float.
// dequantize_from twice, the sum or product (ReLU'd: a NaN stays NaN, as Relu's max keeps it),
// quantize_to. Not contracted to fused multiply-adds: each operator rounds its own result.
template <class Q, bool kMul, bool kRelu>
__attribute__((optimize("fp-contract=off"))) void binary_dequantized(const QuantizedBinary& q, const Q* a, const Q* b,
                                                                     int64_t n, Q* y) {
  constexpr float lo = std::is_signed_v<Q> ? -128.0f : 0.0f, hi = std::is_signed_v<Q> ? 127.0f : 255.0f;
  const float sa = q.sa, sb = q.sb, sy = q.sy, zy = q.zy;
  const int32_t za = q.za, zb = q.zb;
  for (int64_t i = 0; i < n; ++i) {
    const float fa = static_cast<float>(static_cast<int32_t>(a[i]) - za) * sa;
    const float fb = static_cast<float>(static_cast<int32_t>(b[i]) - zb) * sb;
    float s = kMul ? fa * fb : fa + fb;
    if constexpr (kRelu) s = s < 0.0f ? 0.0f : s;
    float v = __builtin_nearbyintf(s / sy) + zy;
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    y[i] = static_cast<Q>(static_cast<int>(v));
  }
}

template <class Q>
void binary_dequantized_as(const QuantizedBinary& q, const uint8_t* a, const uint8_t* b, int64_t n, uint8_t* y) {
  auto* qa = reinterpret_cast<const Q*>(a);
  auto* qb = reinterpret_cast<const Q*>(b);
  auto* qy = reinterpret_cast<Q*>(y);
  if (q.mul)
    q.relu ? binary_dequantized<Q, true, true>(q, qa, qb, n, qy) : binary_dequantized<Q, true, false>(q, qa, qb, n, qy);
  else
    q.relu ? binary_dequantized<Q, false, true>(q, qa, qb, n, qy)
           : binary_dequantized<Q, false, false>(q, qa, qb, n, qy);
}

void quantized_binary_8bit(const QuantizedBinary& q, const uint8_t* a, const uint8_t* b, int64_t n, uint8_t* y) {
  if (q.is_signed)
    binary_dequantized_as<int8_t>(q, a, b, n, y);
  else
    binary_dequantized_as<uint8_t>(q, a, b, n, y);
}

// Few channels (M < 64) go R pixels at a time against bias and scales repeated R times, so
// that the vectorized loop runs over R * M values, not a handful.
template <class Q>
void requantize_to(const int32_t* acc, int64_t pixels, int64_t M, const int32_t* bias, const float* scales,
                   float y_zero, Q* y) {
  constexpr float lo = std::is_signed_v<Q> ? -128.0f : 0.0f, hi = std::is_signed_v<Q> ? 127.0f : 255.0f;
  constexpr int64_t kRun = 64;
  int32_t bias_run[2 * kRun];
  float scale_run[2 * kRun];
  int64_t R = 1;
  if (M < kRun) {
    R = (kRun + M - 1) / M;  // R * M < 2 * kRun
    for (int64_t i = 0; i < R * M; ++i) bias_run[i] = bias[i % M], scale_run[i] = scales[i % M];
    bias = bias_run;
    scales = scale_run;
  }
  const int64_t L = R * M;
  for (int64_t p = 0; p < pixels; p += R) {
    const int64_t n = p + R <= pixels ? L : (pixels - p) * M;
    const int32_t* a = acc + p * M;
    Q* out = y + p * M;
    for (int64_t m = 0; m < n; ++m) {
      float v = __builtin_nearbyintf(static_cast<float>(a[m] + bias[m]) * scales[m]) + y_zero;
      v = v > lo ? v : lo;
      v = v < hi ? v : hi;
      out[m] = static_cast<Q>(static_cast<int>(v));
    }
  }
}

void requantize_s32(const int32_t* acc, int64_t pixels, int64_t M, const int32_t* bias, const float* scales,
                    int32_t y_zero, bool y_signed, uint8_t* y) {
  if (y_signed)
    requantize_to(acc, pixels, M, bias, scales, static_cast<float>(y_zero), reinterpret_cast<int8_t*>(y));
  else
    requantize_to(acc, pixels, M, bias, scales, static_cast<float>(y_zero), y);
}

}  // namespace mserve::MSERVE_ISA
