#include "server/codec/v2_rest.h"

#include <charconv>
#include <cstring>

#include "server/codec/json.h"
#include "server/codec/protocol.h"

namespace mserve::server {
namespace {

bool get_bool_param(JsonElement obj, const char* key) {
  JsonElement params, v;
  if (!obj.is_object() || obj.get_object().value_unsafe()["parameters"].get(params) != simdjson::SUCCESS) return false;
  if (!params.is_object() || params.get_object().value_unsafe()[key].get(v) != simdjson::SUCCESS) return false;
  bool b = false;
  return v.get(b) == simdjson::SUCCESS && b;
}

}  // namespace

StatusOr<V2InferRequest> decode_v2_infer(const std::shared_ptr<std::string>& body_ptr, size_t body_at,
                                         std::string_view header_length, const Signature& sig) {
  // The JSON header, then (binary extension) the input tensors' bytes in order.
  if (body_at > body_ptr->size()) return InvalidArgument("the body starts past its end");
  const std::string_view body(body_ptr->data() + body_at, body_ptr->size() - body_at);
  size_t json_len = body.size();
  std::string_view hl = header_length;
  if (!hl.empty()) {
    size_t n = 0;
    auto r = std::from_chars(hl.data(), hl.data() + hl.size(), n);
    if (r.ec != std::errc() || r.ptr != hl.data() + hl.size() || n > body.size())
      return InvalidArgument("Inference-Header-Content-Length is not a valid length within the body");
    json_len = n;
  }
  thread_local simdjson::dom::parser parser;
  auto parsed = parse_json(parser, *body_ptr, body_at, json_len);
  if (!parsed.ok()) return parsed.status();
  JsonElement doc = parsed.value();
  if (!doc.is_object()) return InvalidArgument("the request body must be a JSON object");
  auto obj = doc.get_object().value_unsafe();
  V2InferRequest out;
  std::string& id = out.id;
  {
    JsonElement e;
    std::string_view s;
    if (obj["id"].get(e) == simdjson::SUCCESS && e.get(s) == simdjson::SUCCESS) id = std::string(s);
  }
  simdjson::dom::array in_list;
  if (obj["inputs"].get(in_list) != simdjson::SUCCESS) return InvalidArgument("\"inputs\" must be a list");
  std::vector<Tensor>& inputs = out.inputs;
  inputs.resize(sig.inputs.size());
  std::vector<bool> seen(sig.inputs.size(), false);
  size_t offset = json_len;
  for (JsonElement in : in_list) {
    if (!in.is_object()) return InvalidArgument("each input must be an object");
    auto io = in.get_object().value_unsafe();
    std::string_view name, datatype;
    simdjson::dom::array shape_arr;
    if (io["name"].get(name) != simdjson::SUCCESS) return InvalidArgument("an input has no \"name\"");
    const std::string what = "input '" + std::string(name) + "'";
    if (io["datatype"].get(datatype) != simdjson::SUCCESS) return InvalidArgument(what + " has no \"datatype\"");
    if (io["shape"].get(shape_arr) != simdjson::SUCCESS) return InvalidArgument(what + " has no \"shape\" list");
    const size_t idx = position_of(sig.inputs, name);
    if (idx == sig.inputs.size()) return InvalidArgument("the model has no " + what);
    if (seen[idx]) return InvalidArgument(what + " appears twice");
    seen[idx] = true;
    const DType dt = sig.inputs[idx].dtype;
    if (datatype != v2_dtype(dt))
      return InvalidArgument(what + " has datatype " + std::string(datatype) + "; the model expects " + v2_dtype(dt));
    if (!Shape::fits(shape_arr.size())) return InvalidArgument(what + ": rank exceeds the maximum");
    Shape shape;
    for (JsonElement d : shape_arr) {
      int64_t v;
      if (d.get(v) != simdjson::SUCCESS || v < 0) return InvalidArgument(what + ": bad shape");
      shape.push_back(v);
    }
    JsonElement params, size_el;
    int64_t bin_size = -1;
    if (io["parameters"].get(params) == simdjson::SUCCESS && params.is_object() &&
        params.get_object().value_unsafe()["binary_data_size"].get(size_el) == simdjson::SUCCESS) {
      if (size_el.get(bin_size) != simdjson::SUCCESS || bin_size < 0)
        return InvalidArgument(what + ": binary_data_size must be a non-negative integer");
    }
    if (bin_size >= 0 && dt == DType::kString) {
      if (offset + static_cast<size_t>(bin_size) > body.size())
        return InvalidArgument(what + ": the body ends before its binary data");
      auto t = decode_length_prefixed(body.data() + offset, static_cast<size_t>(bin_size), shape, what);
      if (!t.ok()) return t.status();
      inputs[idx] = std::move(t).value();
      offset += static_cast<size_t>(bin_size);
      continue;
    }
    if (bin_size >= 0) {
      auto need = aligned_bytes(dt, shape);
      const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dt);
      if (!need.ok() || static_cast<size_t>(bin_size) != bytes)
        return InvalidArgument(what + ": binary_data_size " + std::to_string(bin_size) + " does not match " + "shape " +
                               shape.str() + " of " + v2_dtype(dt) + " (" + std::to_string(bytes) + " bytes)");
      if (offset + bytes > body.size()) return InvalidArgument(what + ": the body ends before its binary data");
      const char* p = body.data() + offset;
      if (reinterpret_cast<uintptr_t>(p) % dtype_size(dt) == 0) {
        // Used in place: the tensor shares the request body's lifetime.
        auto buf = Buffer::borrow(const_cast<char*>(p), bytes, body_ptr);
        inputs[idx] = Tensor(dt, shape, buf, const_cast<char*>(p));
      } else {
        auto t = Tensor::empty(dt, shape);
        if (!t.ok()) return t.status();
        std::memcpy(t.value().raw(), p, bytes);
        inputs[idx] = std::move(t).value();
      }
      offset += bytes;
      continue;
    }
    JsonElement data;
    if (io["data"].get(data) != simdjson::SUCCESS)
      return InvalidArgument(what + " has neither \"data\" nor binary_data_size");
    auto t = tensor_from_json_flat(data, shape, dt, what);
    if (!t.ok()) return t.status();
    inputs[idx] = std::move(t).value();
  }
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) return InvalidArgument("missing input '" + sig.inputs[i].name + "'");
  if (offset != body.size())
    return InvalidArgument("the body holds " + std::to_string(body.size() - offset) +
                           " bytes of binary data that no input claims");

  // Requested outputs (all when none are named), binary or JSON each.
  const bool binary_default = get_bool_param(doc, "binary_data_output");
  std::vector<std::pair<size_t, bool>>& wanted = out.wanted;
  simdjson::dom::array out_list;
  if (obj["outputs"].get(out_list) == simdjson::SUCCESS) {
    for (JsonElement o : out_list) {
      std::string_view name;
      if (!o.is_object() || o.get_object().value_unsafe()["name"].get(name) != simdjson::SUCCESS)
        return InvalidArgument("each requested output must be an object with a \"name\"");
      const size_t idx = position_of(sig.outputs, name);
      if (idx == sig.outputs.size()) return InvalidArgument("the model has no output '" + std::string(name) + "'");
      JsonElement params, b;
      bool binary = binary_default;
      if (o.get_object().value_unsafe()["parameters"].get(params) == simdjson::SUCCESS && params.is_object() &&
          params.get_object().value_unsafe()["binary_data"].get(b) == simdjson::SUCCESS)
        binary = b.is_bool() && b.get_bool().value_unsafe();
      wanted.emplace_back(idx, binary);
    }
  } else {
    for (size_t i = 0; i < sig.outputs.size(); ++i) wanted.emplace_back(i, binary_default);
  }

  return out;
}

}  // namespace mserve::server
