// Row statistics of the normalization kernels: InstanceNormalization and GroupNormalization
// (ops/normalization.cc), LayerNormalization, SkipLayerNormalization and
// MeanVarianceNormalization (ops/layer_norm.cc), RMSNormalization (ops/rms_norm.cc). They are
// accumulated in double for every float dtype; the vectorized float32 LayerNorm row is
// layer_norm_row (kernels/isa/isa.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/tensor/dtype.h"

namespace mserve {

// The mean of x[0, n) and 1 / sqrt(variance + eps), the variance the mean squared deviation
// from the mean (a second pass rather than E[x^2] - mean^2, which cancels for rows far from
// zero). An empty row has mean 0 and variance 0.
template <class T>
inline void row_mean_inv_std(const T* x, int64_t n, double eps, double* mean, double* inv_std) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += to_double(x[i]);
  const double m = n ? sum / static_cast<double>(n) : 0.0;
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = to_double(x[i]) - m;
    sq += d * d;
  }
  *mean = m;
  *inv_std = 1.0 / std::sqrt((n ? sq / static_cast<double>(n) : 0.0) + eps);
}

// 1 / sqrt(mean(x^2) + eps) over x[0, n); an empty row has mean(x^2) = 0.
template <class T>
inline double row_inv_rms(const T* x, int64_t n, double eps) {
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = to_double(x[i]);
    sq += v * v;
  }
  return 1.0 / std::sqrt((n ? sq / static_cast<double>(n) : 0.0) + eps);
}

}  // namespace mserve
