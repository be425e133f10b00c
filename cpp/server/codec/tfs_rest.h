// TensorFlow Serving REST predict bodies <-> tensors (what rest_tfs.cc serves): the row format
// ("instances") and the columnar format ("inputs"), ZipMap outputs as {"label": p} rows, string
// outputs named "*_bytes" as {"b64": ...}. Kept apart from the server so the fuzz targets reach
// them.
#pragma once
#include <string>
#include <vector>

#include "core/exec/session.h"
#include "server/codec/json.h"

namespace mserve::server {

// The model's inputs, in `sig` input order, from a parsed predict body; `row_format` says which
// format the body used (the answer uses the same). InvalidArgument naming what is wrong.
StatusOr<std::vector<Tensor>> decode_predict(JsonElement doc, const Signature& sig, bool* row_format);
// Appends the answer body for `outs` (`sig` output order).
Status encode_predict(const Signature& sig, const std::vector<Tensor>& outs, bool row_format, std::string* o);

}  // namespace mserve::server
