// KServe v2 REST infer request bodies -> tensors (what rest_v2.cc serves): the JSON header with
// "data" tensors and/or the binary tensor extension (Inference-Header-Content-Length, then each
// input's bytes; BYTES length-prefixed), and the requested outputs. Kept apart from the server so
// the fuzz targets reach it.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/exec/session.h"

namespace mserve::server {

struct V2InferRequest {
  std::vector<Tensor> inputs;                   // signature input order
  std::vector<std::pair<size_t, bool>> wanted;  // output index, answered as binary
  std::string id;
};

// `body`: the whole request body from byte `body_at` on (binary inputs that are aligned are used
// in place and keep it alive); `header_length`: the Inference-Header-Content-Length value (""
// when absent); `sig`: the model's. InvalidArgument naming what is wrong.
StatusOr<V2InferRequest> decode_v2_infer(const std::shared_ptr<std::string>& body, size_t body_at,
                                         std::string_view header_length, const Signature& sig);

}  // namespace mserve::server
