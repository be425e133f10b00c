// Comparisons the GPU tests share.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/tensor/tensor.h"

namespace mserve::gpu {

// float32 tensors: non-finite values must agree exactly (any NaN with any NaN); returns the
// relative L2 error over the finite ones.
inline double rel_l2(const Tensor& got, const Tensor& want, const std::string& what) {
  EXPECT_EQ(got.shape(), want.shape()) << what;
  if (got.shape() != want.shape()) return 1.0;
  double num = 0, den = 0;
  int bad = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float g = got.data<float>()[i], w = want.data<float>()[i];
    if (!std::isfinite(g) || !std::isfinite(w)) {
      const bool same = (std::isnan(g) && std::isnan(w)) || g == w;
      if (!same && bad++ < 5) ADD_FAILURE() << what << ": at " << i << " got " << g << " want " << w;
      continue;
    }
    num += (static_cast<double>(g) - w) * (static_cast<double>(g) - w);
    den += static_cast<double>(w) * w;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace mserve::gpu
