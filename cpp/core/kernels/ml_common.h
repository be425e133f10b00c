// Shared by the ai.onnx.ml families: the [rows, features] view of an input, score
// post-transforms.
#pragma once
#include <string>

#include "core/status.h"
#include "core/tensor/shape.h"

namespace mserve {

// X as [rows, features]; a 1-D input is one row. Other ranks are refused.
struct Rows {
  int64_t n, f;
};
StatusOr<Rows> rows_of(const Shape& s);

enum class PostTransform { kNone, kSoftmax, kLogistic, kSoftmaxZero, kProbit };

StatusOr<PostTransform> parse_post_transform(const std::string& s);

// Applies `pt` to each of `rows` rows of `cols` scores, in place. LOGISTIC and PROBIT act on each
// score; SOFTMAX and SOFTMAX_ZERO (a softmax where exact zeros stay zero) on each row. PROBIT
// uses the closed-form erf^-1 approximation (Winitzki, a = 0.147) that ONNX Runtime and the ONNX
// reference use, evaluated in the same order, so scores agree with them (probit(0) = -inf, NaN
// outside [0, 1]).
void apply_post_transform(PostTransform pt, float* scores, int64_t rows, int64_t cols);
void apply_post_transform(PostTransform pt, double* scores, int64_t rows, int64_t cols);

// The single-score transforms.
float logistic(float x);
double logistic(double x);
float probit(float x);
double probit(double x);

}  // namespace mserve
