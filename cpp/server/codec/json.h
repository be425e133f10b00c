// JSON <-> Tensor for the REST APIs. Parsing uses simdjson's DOM (values are read straight into
// the tensor's buffer, no intermediate lists); writing uses std::to_chars (shortest round-trip
// form for floats). NaN and +-Infinity are read and written as the bare tokens NaN, Infinity and
// -Infinity, as TensorFlow Serving does.
#pragma once
#include <simdjson.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/tensor/tensor.h"

namespace mserve::server {

using JsonElement = simdjson::dom::element;

// Parses the `len` bytes at `begin` of `buffer`; bare NaN / Infinity / -Infinity outside strings
// are accepted (read back by tensor_from_json for float tensors). `parser` owns the returned
// document's memory. Read in place when `buffer` has simdjson's padding allocated after them
// (HTTP bodies read with a Content-Length do: http.h kBodyPadding), else from a padded copy.
StatusOr<JsonElement> parse_json(simdjson::dom::parser& parser, const std::string& buffer, size_t begin, size_t len);
inline StatusOr<JsonElement> parse_json(simdjson::dom::parser& parser, const std::string& text) {
  return parse_json(parser, text, 0, text.size());
}

// A tensor of `dtype` from nested arrays. With `stack`, `rows` are the batch's rows (one element
// each, stacked along a new dim 0; every row must have the same shape); otherwise `rows` holds
// one element: the whole tensor (a scalar, or nested arrays).
StatusOr<Tensor> tensor_from_json(const std::vector<JsonElement>& rows, bool stack, DType dtype,
                                  const std::string& what);
// A tensor of `dtype` and `shape` from `data` nested any way (KServe v2: flat or nested); the
// number of values must equal the shape's.
StatusOr<Tensor> tensor_from_json_flat(JsonElement data, const Shape& shape, DType dtype, const std::string& what);

// Appends JSON text.
void json_string(std::string* out, std::string_view s);  // quoted, escaped
// Rows [begin, begin + n) of dim 0 as nested arrays (whole tensor when n < 0). Strings are JSON
// strings, or {"b64": "..."} when they are not valid UTF-8 or `b64` is set (TensorFlow Serving
// encodes outputs whose name ends in "_bytes" that way).
void json_tensor(std::string* out, const Tensor& t, int64_t begin = 0, int64_t n = -1, bool b64 = false);
// Every value flat, in row-major order (KServe v2 "data").
void json_tensor_flat(std::string* out, const Tensor& t);
// Standard (or URL-safe) base64; false on malformed input.
bool base64_decode(std::string_view in, std::string* out);
void base64_encode(std::string_view in, std::string* out);
// Number of NaN / infinite values (0 for non-float tensors).
int64_t count_nonfinite(const Tensor& t);

}  // namespace mserve::server
