// The opset versions the importer understands.
#pragma once
#include <cstdint>

namespace mserve {

// The newest opset version of the default domain whose semantics this runtime knows: a model
// importing a newer one is refused at load (onnx/loader.cc).
constexpr int64_t kMaxOnnxOpset = 28;

}  // namespace mserve
