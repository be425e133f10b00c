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
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "base";
  }
}

template <class T>
void softmax_row(T* row, int64_t n, const T* add) {
  MSERVE_ISA_DISPATCH(softmax_row<T>, row, n, add);
}
template void softmax_row<float>(float*, int64_t, const float*);
template void softmax_row<double>(double*, int64_t, const double*);

void layer_norm_row(const float* a, const float* b, float* y, float* sum, const float* scale, const float* bias,
                    int64_t n, float eps) {
  MSERVE_ISA_DISPATCH(layer_norm_row, a, b, y, sum, scale, bias, n, eps);
}

template <class T>
void nhwc_pool_rows(const NhwcPoolGeo& g, const T* x, T* y, int64_t q0, int64_t q1) {
  MSERVE_ISA_DISPATCH(nhwc_pool_rows<T>, g, x, y, q0, q1);
}
template void nhwc_pool_rows<float>(const NhwcPoolGeo&, const float*, float*, int64_t, int64_t);
template void nhwc_pool_rows<double>(const NhwcPoolGeo&, const double*, double*, int64_t, int64_t);

void min_max(const float* x, int64_t n, float* lo, float* hi) { MSERVE_ISA_DISPATCH(min_max, x, n, lo, hi); }

void quantize_8bit(const float* x, int64_t n, float scale, float zero_point, bool is_signed, uint8_t* y) {
  MSERVE_ISA_DISPATCH(quantize_8bit, x, n, scale, zero_point, is_signed, y);
}

void dequantize_8bit(const uint8_t* x, bool is_signed, int64_t n, float scale, int32_t zero_point, float* y) {
  MSERVE_ISA_DISPATCH(dequantize_8bit, x, is_signed, n, scale, zero_point, y);
}

void quantize_dequantize_8bit(const float* x, int64_t n, float scale, float zero_point, bool is_signed, float* y) {
  MSERVE_ISA_DISPATCH(quantize_dequantize_8bit, x, n, scale, zero_point, is_signed, y);
}

int64_t clamp_to_window(const uint8_t* x, bool flip, int64_t pixels, int64_t C, int32_t lo, uint8_t* xc,
                        uint8_t* flags) {
  MSERVE_ISA_DISPATCH(clamp_to_window, x, flip, pixels, C, lo, xc, flags);
}

void requantize_s32(const int32_t* acc, int64_t pixels, int64_t M, const int32_t* bias, const float* scales,
                    int32_t y_zero, bool y_signed, uint8_t* y) {
  MSERVE_ISA_DISPATCH(requantize_s32, acc, pixels, M, bias, scales, y_zero, y_signed, y);
}

int64_t outside_window(const uint8_t* x, int64_t C, bool flip, int32_t lo, int32_t* channel, int32_t* excess) {
  MSERVE_ISA_DISPATCH(outside_window, x, C, flip, lo, channel, excess);
}

void add_scaled_int8(int32_t* acc, const int8_t* w, int32_t e, int64_t n) {
  MSERVE_ISA_DISPATCH(add_scaled_int8, acc, w, e, n);
}

void lookup_8bit(const uint8_t* x, int64_t n, const uint8_t* table, uint8_t* y) {
  MSERVE_ISA_DISPATCH(lookup_8bit, x, n, table, y);
}

void quantized_binary_8bit(const QuantizedBinary& q, const uint8_t* a, const uint8_t* b, int64_t n, uint8_t* y) {
  MSERVE_ISA_DISPATCH(quantized_binary_8bit, q, a, b, n, y);
}
}  // namespace mserve
