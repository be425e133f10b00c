// ONNX ModelProto -> Graph. The only part of mserve that sees protobuf types.
//
// Protobuf parses the model without its weights (onnx/skeleton.h). A model file is mmapped and its
// initializers, like external data, view the mapping where their bytes are aligned for their type
// (else one copy each): weights used as stored stay in the page cache, shared by every process
// that maps the file, and the pages of a released view are dropped. The Graph's Tensors hold the
// mappings alive. A model given as bytes has its weights copied out.
#pragma once
#include <string>

#include "core/graph/graph.h"
#include "core/status.h"

namespace mserve {

// The newest ONNX IR version whose file layout the loader understands.
constexpr int64_t kMaxIrVersion = 14;

class PackStore;

// Loads a model file. External data paths resolve against the file's directory and may not
// leave it. With a pack store (kernels/pack_store.h), weights that must be copied (unaligned in
// the file) come from the store when it has them and are offered to it when not.
StatusOr<Graph> load_onnx_file(const std::string& path, PackStore* packs = nullptr);

// Loads a model from bytes (copied as needed). `base_dir` resolves external data; when empty,
// a model with external data is rejected.
StatusOr<Graph> load_onnx_bytes(const void* data, size_t size, const std::string& base_dir = "");

}  // namespace mserve
