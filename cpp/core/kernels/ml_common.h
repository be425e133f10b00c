// Shared by the ai.onnx.ml families: score post-transforms.
#pragma once
#include <string>

#include "core/status.h"

namespace mserve {

enum class PostTransform { kNone, kSoftmax, kLogistic, kSoftmaxZero, kProbit };

StatusOr<PostTransform> parse_post_transform(const std::string& s);

// Applies `pt` to each of `rows` rows of `cols` scores, in place.
void apply_post_transform(PostTransform pt, float* scores, int64_t rows, int64_t cols);

}  // namespace mserve
