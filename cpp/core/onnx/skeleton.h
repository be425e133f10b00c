// A serialized ONNX ModelProto split into its skeleton (every field but the tensors' raw_data)
// and the places of the raw_data bytes in the original: protobuf parses the skeleton, which is
// small, and the loader takes the weights straight from the model's bytes (a view of the mapped
// file, or one copy). Protobuf's own parse would copy every weight into a string first.
//
// Only the wire format is read here, along the paths where the loader meets tensors:
// ModelProto.graph -> GraphProto.initializer and .node -> NodeProto.attribute ->
// AttributeProto.t/.tensors and .g/.graphs (subgraphs, recursively). Everything else is copied
// as it is, and protobuf validates it when it parses the skeleton.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace mserve {

// A stripped tensor carries this field (unknown to ONNX) as a varint: the index of its bytes in
// Skeleton::weights. The field is removed from every tensor on the paths above before the
// skeleton's own are added, so a model cannot name bytes of its own choosing.
constexpr uint32_t kWeightRefField = 100000;

struct WeightSpan {
  size_t offset = 0;  // into the original bytes
  size_t size = 0;
};

struct Skeleton {
  std::string bytes;  // a ModelProto without raw_data
  std::vector<WeightSpan> weights;
};

// Fails (kLoadError) when the bytes are not well-formed protobuf along those paths.
StatusOr<Skeleton> strip_weights(const char* data, size_t size);

}  // namespace mserve
