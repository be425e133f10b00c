#include "core/kernels/ml_common.h"

#include <algorithm>
#include <cmath>

namespace mserve {

StatusOr<Rows> rows_of(const Shape& s) {
  if (s.rank() == 1) return Rows{1, s[0]};
  if (s.rank() == 2) return Rows{s[0], s[1]};
  return InvalidArgument("expected a 1-D or 2-D input, got shape " + s.str());
}

StatusOr<PostTransform> parse_post_transform(const std::string& s) {
  if (s.empty() || s == "NONE") return PostTransform::kNone;
  if (s == "SOFTMAX") return PostTransform::kSoftmax;
  if (s == "LOGISTIC") return PostTransform::kLogistic;
  if (s == "SOFTMAX_ZERO") return PostTransform::kSoftmaxZero;
  if (s == "PROBIT") return PostTransform::kProbit;
  return Unsupported("post_transform '" + s + "' is not supported");
}

namespace {

template <class T>
T logistic_t(T x) {
  const T v = T(1) / (T(1) + std::exp(-std::fabs(x)));
  return x < 0 ? T(1) - v : v;
}

// sqrt(2) * erf^-1(2p - 1) with erf^-1(x) ~ sgn(x) sqrt(sqrt(t^2 - ln(1 - x^2) / a) - t),
// t = 2 / (pi a) + ln(1 - x^2) / 2, a = 0.147.
template <class T>
T probit_t(T p) {
  const T x = T(2) * p - T(1);
  const T sgn = x < 0 ? T(-1) : T(1);
  const T ln = std::log((T(1) - x) * (T(1) + x));
  const T t = T(2) / (static_cast<T>(M_PI) * T(0.147)) + T(0.5) * ln;
  const T u = T(1) / T(0.147) * ln;
  return static_cast<T>(M_SQRT2) * (sgn * std::sqrt(-t + std::sqrt(t * t - u)));
}

template <class T>
void apply(PostTransform pt, T* scores, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    T* s = scores + r * cols;
    switch (pt) {
      case PostTransform::kNone: break;
      case PostTransform::kLogistic:
        for (int64_t c = 0; c < cols; ++c) s[c] = logistic_t(s[c]);
        break;
      case PostTransform::kSoftmax: {
        const T m = *std::max_element(s, s + cols);
        T sum = 0;
        for (int64_t c = 0; c < cols; ++c) sum += s[c] = std::exp(s[c] - m);
        for (int64_t c = 0; c < cols; ++c) s[c] /= sum;
        break;
      }
      case PostTransform::kSoftmaxZero: {
        // Softmax where exact zeros stay zero (they mean "no score").
        const T m = *std::max_element(s, s + cols);
        T sum = 0;
        for (int64_t c = 0; c < cols; ++c) {
          s[c] = std::fabs(s[c]) > T(1e-7) ? std::exp(s[c] - m) : s[c] * std::exp(-m);
          sum += s[c];
        }
        for (int64_t c = 0; c < cols; ++c) s[c] = sum == 0 ? T(0.5) : s[c] / sum;
        break;
      }
      case PostTransform::kProbit:
        for (int64_t c = 0; c < cols; ++c) s[c] = probit_t(s[c]);
        break;
    }
  }
}

}  // namespace

void apply_post_transform(PostTransform pt, float* scores, int64_t rows, int64_t cols) {
  apply(pt, scores, rows, cols);
}
void apply_post_transform(PostTransform pt, double* scores, int64_t rows, int64_t cols) {
  apply(pt, scores, rows, cols);
}
float logistic(float x) { return logistic_t(x); }
double logistic(double x) { return logistic_t(x); }
float probit(float x) { return probit_t(x); }
double probit(double x) { return probit_t(x); }

}  // namespace mserve
