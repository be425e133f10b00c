// Run-time instruction-set dispatch for mserve's own vectorized code (oneDNN dispatches its
// own). The translation units in this directory are compiled three times (CMakeLists.txt):
// for baseline x86-64, for AVX2 + FMA and for AVX-512 (F, BW, DQ, VL), each into its own
// namespace (MSERVE_ISA = isa_base, isa_avx2, isa_avx512) and with Eigen's namespace renamed,
// so the variants share no symbols. Callers pick a variant with cpu_isa().
#pragma once
#include <cstdint>

namespace mserve {

class ThreadPool;
struct FusedActivation;
struct NhwcPoolGeo;
struct QuantizedBinary;

enum class Isa { kBase, kAvx2, kAvx512 };

// The best variant this CPU runs (checked once), or the one the MSERVE_ISA environment variable
// names (base, avx2, avx512: for tests and comparisons; a variant the CPU lacks is not taken).
Isa cpu_isa();
const char* isa_name(Isa isa);

// The variants' entry points are part of the runtime library's interface (the tests call each
// variant); the rest of a variant's code stays hidden.
#define MSERVE_ISA_DECLARE(ns)                                                                                         \
  namespace __attribute__((visibility("default"))) ns {                                                                \
    template <class T>                                                                                                 \
    void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,           \
              const T* B, int64_t ldb, T beta, T* C, int64_t ldc, ThreadPool& pool);                                   \
    void apply_activation(const FusedActivation& a, const float* x, float* y, int64_t n);                              \
    void apply_activation(const FusedActivation& a, const double* x, double* y, int64_t n);                            \
    template <class T>                                                                                                 \
    void softmax_row(T* row, int64_t n, const T* add);                                                                 \
    void layer_norm_row(const float* a, const float* b, float* y, float* sum, const float* scale, const float* bias,   \
                        int64_t n, float eps);                                                                         \
    template <class T>                                                                                                 \
    void nhwc_pool_rows(const NhwcPoolGeo& g, const T* x, T* y, int64_t q0, int64_t q1);                               \
    void min_max(const float* x, int64_t n, float* lo, float* hi);                                                     \
    void quantize_8bit(const float* x, int64_t n, float scale, float zero_point, bool is_signed, uint8_t* y);          \
    void dequantize_8bit(const uint8_t* x, bool is_signed, int64_t n, float scale, int32_t zero_point, float* y);      \
    void quantize_dequantize_8bit(const float* x, int64_t n, float scale, float zero_point, bool is_signed, float* y); \
    int64_t clamp_to_window(const uint8_t* x, bool flip, int64_t pixels, int64_t C, int32_t lo, uint8_t* xc,           \
                            uint8_t* flags);                                                                           \
    void requantize_s32(const int32_t* acc, int64_t pixels, int64_t M, const int32_t* bias, const float* scales,       \
                        int32_t y_zero, bool y_signed, uint8_t* y);                                                    \
    int64_t outside_window(const uint8_t* x, int64_t C, bool flip, int32_t lo, int32_t* channel, int32_t* excess);     \
    void add_scaled_int8(int32_t* acc, const int8_t* w, int32_t e, int64_t n);                                         \
    void lookup_8bit(const uint8_t* x, int64_t n, const uint8_t* table, uint8_t* y);                                   \
    void quantized_binary_8bit(const QuantizedBinary& q, const uint8_t* a, const uint8_t* b, int64_t n, uint8_t* y);   \
  }
MSERVE_ISA_DECLARE(isa_base)
MSERVE_ISA_DECLARE(isa_avx2)
MSERVE_ISA_DECLARE(isa_avx512)
#undef MSERVE_ISA_DECLARE

// Row kernels of the attention and LayerNorm fast paths (variant_rows.cc), for this CPU:
// softmax_row: row[j] (+ add[j] when add is not null) then softmax over the row; a row whose
//   values are all -inf becomes zeros (the fused attention's fully masked query).
// layer_norm_row: y = (x - mean) / sqrt(var + eps) * scale (+ bias), x = a (+ b when not null);
//   the sum x goes to `sum` when it is not null. y may alias a.
template <class T>
void softmax_row(T* row, int64_t n, const T* add);
void layer_norm_row(const float* a, const float* b, float* y, float* sum, const float* scale, const float* bias,
                    int64_t n, float eps);

// NHWC max / average pooling (ops/pool.cc's NhwcMaxPool / NhwcAveragePool): output rows
// q = n * OH + oh in [q0, q1) of Y [N, OH, OW, C] from X [N, H, W, C]; H and W indices [0]/[1].
struct NhwcPoolGeo {
  int64_t H = 0, W = 0, C = 0, OH = 0, OW = 0;
  int64_t k[2] = {1, 1}, s[2] = {1, 1}, d[2] = {1, 1}, pb[2] = {0, 0}, pe[2] = {0, 0};
  bool max = true, count_include_pad = false;
};
template <class T>
void nhwc_pool_rows(const NhwcPoolGeo& g, const T* x, T* y, int64_t q0, int64_t q1);

// Per-tensor quantization (variant_quant.cc): min_max lowers *lo and raises *hi to the least and
// greatest of x[0, n) (NaN: unspecified); quantize_8bit writes
// y = clamp(nearbyint(x / scale) + zero_point) to uint8 (or int8, is_signed), NaN to the type's
// minimum; dequantize_8bit y = float(x - zero_point) * scale.
void min_max(const float* x, int64_t n, float* lo, float* hi);
void quantize_8bit(const float* x, int64_t n, float scale, float zero_point, bool is_signed, uint8_t* y);
void dequantize_8bit(const uint8_t* x, bool is_signed, int64_t n, float scale, int32_t zero_point, float* y);
// quantize_dequantize_8bit: y = dequantize_8bit(quantize_8bit(x)) in one pass, the same floats.
void quantize_dequantize_8bit(const float* x, int64_t n, float scale, float zero_point, bool is_signed, float* y);

// The passes around an int8 convolution on activations narrowed to 7 bits (kernels/int8_window.h):
// clamp_to_window reads `pixels` rows of C 8-bit values (int8 read as uint8 after x ^ 0x80 when
// `flip`), writes xc = clamp(v, lo, lo + 127) - lo and flags[p] = 1 where pixel p had a value
// outside the window (else 0), and returns how many values were outside; requantize_s32 writes
// y = clamp(nearbyint(float(acc + bias[m]) * scales[m]) + y_zero) to uint8 (int8 when y_signed)
// for `pixels` rows of M sums; outside_window lists the values of one pixel's C outside the
// window (channel c, excess v - clamp(v)) and returns how many; add_scaled_int8 acc[i] += e * w[i].
int64_t clamp_to_window(const uint8_t* x, bool flip, int64_t pixels, int64_t C, int32_t lo, uint8_t* xc,
                        uint8_t* flags);
void requantize_s32(const int32_t* acc, int64_t pixels, int64_t M, const int32_t* bias, const float* scales,
                    int32_t y_zero, bool y_signed, uint8_t* y);
int64_t outside_window(const uint8_t* x, int64_t C, bool flip, int32_t lo, int32_t* channel, int32_t* excess);
void add_scaled_int8(int32_t* acc, const int8_t* w, int32_t e, int64_t n);
// lookup_8bit: y[i] = table[x[i]] over 8-bit codes (Lookup8); y may be x.
void lookup_8bit(const uint8_t* x, int64_t n, const uint8_t* table, uint8_t* y);
// quantized_binary_8bit: y = quantize_8bit(dequantize_8bit(a) op dequantize_8bit(b), then
// max(., 0) where relu), the same float operations as the operators (QuantizedAdd / QuantizedMul).
struct QuantizedBinary {
  bool mul = false, relu = false, is_signed = false;  // op: a * b or a + b; int8 or uint8 data
  float sa = 1, sb = 1, sy = 1, zy = 0;
  int32_t za = 0, zb = 0;
};
void quantized_binary_8bit(const QuantizedBinary& q, const uint8_t* a, const uint8_t* b, int64_t n, uint8_t* y);

// Calls ns::fn(args...) for the variant cpu_isa() picks.
#define MSERVE_ISA_DISPATCH(fn, ...)                                   \
  do {                                                                 \
    switch (::mserve::cpu_isa()) {                                     \
      case ::mserve::Isa::kAvx512: return isa_avx512::fn(__VA_ARGS__); \
      case ::mserve::Isa::kAvx2: return isa_avx2::fn(__VA_ARGS__);     \
      default: return isa_base::fn(__VA_ARGS__);                       \
    }                                                                  \
  } while (0)

}  // namespace mserve
