// Row kernels for one instruction set (see isa.h): the softmax of the fused attention and the
// LayerNorm fast path, with Eigen's vectorized math.
#include <Eigen/Core>
#include <cmath>
#include <limits>

#include "core/kernels/isa/isa.h"

namespace mserve::MSERVE_ISA {

template <class T>
void softmax_row(T* row, int64_t n, const T* add) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> r(row, n);
  if (add) r += Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(add, n);
  const T mx = r.maxCoeff();
  if (mx == -std::numeric_limits<T>::infinity()) {
    r.setZero();
    return;
  }
  r = (r - mx).exp();
  r *= T(1) / r.sum();
}
template void softmax_row<float>(float*, int64_t, const float*);
template void softmax_row<double>(double*, int64_t, const double*);

void layer_norm_row(const float* a, const float* b, float* y, float* sum, const float* scale, const float* bias,
                    int64_t n, float eps) {
  using Row = Eigen::Map<Eigen::ArrayXf>;
  using CRow = Eigen::Map<const Eigen::ArrayXf>;
  Row yr(y, n);
  if (b)
    yr = CRow(a, n) + CRow(b, n);
  else if (a != y)
    yr = CRow(a, n);
  if (sum) Row(sum, n) = yr;
  const float inv_n = n ? 1.0f / static_cast<float>(n) : 0.0f;
  const float mean = yr.sum() * inv_n;
  yr -= mean;
  const float inv = 1.0f / std::sqrt(yr.square().sum() * inv_n + eps);
  if (bias)
    yr = yr * inv * CRow(scale, n) + CRow(bias, n);
  else
    yr = yr * inv * CRow(scale, n);
}

}  // namespace mserve::MSERVE_ISA
