// ONNX ModelProto -> Graph. The only part of mserve that sees protobuf types.
//
// Initializers keep pointing at the parsed protobuf's bytes (no second copy) or, for external
// data, at an mmapped file; the Graph's Tensors hold those alive.
#pragma once
#include <string>

#include "core/graph/graph.h"
#include "core/status.h"

namespace mserve {

// The newest ONNX IR version whose file layout the loader understands.
constexpr int64_t kMaxIrVersion = 14;

// Loads a model file. External data paths resolve against the file's directory and may not
// leave it.
StatusOr<Graph> load_onnx_file(const std::string& path);

// Loads a model from bytes (copied as needed). `base_dir` resolves external data; when empty,
// a model with external data is rejected.
StatusOr<Graph> load_onnx_bytes(const void* data, size_t size, const std::string& base_dir = "");

}  // namespace mserve
