#include "core/kernels/ml_common.h"

#include <algorithm>
#include <cmath>

namespace mserve {

StatusOr<PostTransform> parse_post_transform(const std::string& s) {
  if (s.empty() || s == "NONE") return PostTransform::kNone;
  if (s == "SOFTMAX") return PostTransform::kSoftmax;
  if (s == "LOGISTIC") return PostTransform::kLogistic;
  if (s == "SOFTMAX_ZERO") return PostTransform::kSoftmaxZero;
  if (s == "PROBIT") return PostTransform::kProbit;
  return Unsupported("post_transform '" + s + "' is not supported");
}

namespace {

// Inverse of erf by Newton steps from a rational first guess; enough for float scores.
double erf_inv(double x) {
  if (x <= -1) return -INFINITY;
  if (x >= 1) return INFINITY;
  const double a = 0.147, ln = std::log(1 - x * x);
  const double t = 2 / (M_PI * a) + ln / 2;
  double y = std::copysign(std::sqrt(std::sqrt(t * t - ln / a) - t), x);
  for (int i = 0; i < 3; ++i) y -= (std::erf(y) - x) / (2 / std::sqrt(M_PI) * std::exp(-y * y));
  return y;
}

}  // namespace

void apply_post_transform(PostTransform pt, float* scores, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * cols;
    switch (pt) {
      case PostTransform::kNone: break;
      case PostTransform::kLogistic:
        for (int64_t c = 0; c < cols; ++c) s[c] = 1.0f / (1.0f + std::exp(-s[c]));
        break;
      case PostTransform::kSoftmax: {
        const float m = *std::max_element(s, s + cols);
        float sum = 0;
        for (int64_t c = 0; c < cols; ++c) sum += s[c] = std::exp(s[c] - m);
        for (int64_t c = 0; c < cols; ++c) s[c] /= sum;
        break;
      }
      case PostTransform::kSoftmaxZero: {
        // Softmax where exact zeros stay zero (they mean "no score").
        const float m = *std::max_element(s, s + cols);
        float sum = 0;
        for (int64_t c = 0; c < cols; ++c) {
          s[c] = std::fabs(s[c]) > 1e-7f ? std::exp(s[c] - m) : s[c] * std::exp(-m);
          sum += s[c];
        }
        for (int64_t c = 0; c < cols; ++c) s[c] = sum == 0 ? 0.5f : s[c] / sum;
        break;
      }
      case PostTransform::kProbit:
        for (int64_t c = 0; c < cols; ++c) s[c] = static_cast<float>(M_SQRT2 * erf_inv(2.0 * s[c] - 1.0));
        break;
    }
  }
}

}  // namespace mserve
