#include "server/codec/tfs_rest.h"

#include "server/codec/protocol.h"

namespace mserve::server {
namespace {

// A ZipMap output row as {"label": probability, ...}.
void zipmap_row(std::string* o, const Value& v, const Tensor& t, int64_t row) {
  *o += "{";
  const int64_t c = t.rank() == 2 ? t.dim(1) : 0;
  const float* p = t.data<float>() + row * c;
  const bool strings = !v.zipmap_string_labels.empty();
  const int64_t n_labels = static_cast<int64_t>(strings ? v.zipmap_string_labels.size() : v.zipmap_labels.size());
  for (int64_t j = 0; j < c && j < n_labels; ++j) {
    if (j) *o += ",";
    if (strings)
      json_string(o, v.zipmap_string_labels[j]);
    else
      *o += "\"" + std::to_string(v.zipmap_labels[j]) + "\"";
    *o += ":";
    Tensor one(DType::kFloat32, Shape{}, const_cast<float*>(p + j));
    json_tensor(o, one);
  }
  *o += "}";
}

Tensor row_of(const Tensor& t, int64_t i) {
  Shape s;
  for (int d = 1; d < t.rank(); ++d) s.push_back(t.dim(d));
  const int64_t n = t.dim(0) ? t.numel() / t.dim(0) : 0;
  return Tensor(t.dtype(), s, static_cast<char*>(t.raw()) + i * n * static_cast<int64_t>(dtype_size(t.dtype())));
}

// TensorFlow Serving writes string outputs named "*_bytes" as {"b64": ...}.
bool b64_output(const std::string& name) { return name.size() >= 6 && name.compare(name.size() - 6, 6, "_bytes") == 0; }

// An instance that names the model's inputs; {"b64": "..."} is a value (a bytes element), not that.
bool named_instance(JsonElement r) {
  simdjson::dom::object o;
  if (r.get(o) != simdjson::SUCCESS) return false;
  JsonElement b;
  return !(o.size() == 1 && o["b64"].get(b) == simdjson::SUCCESS);
}

}  // namespace

StatusOr<std::vector<Tensor>> decode_predict(JsonElement doc, const Signature& sig, bool* row_format) {
  if (!doc.is_object()) return InvalidArgument("the request body must be a JSON object");
  auto obj = doc.get_object().value_unsafe();
  JsonElement sig_name, instances, inputs;
  bool has_inst = obj["instances"].get(instances) == simdjson::SUCCESS;
  bool has_inputs = obj["inputs"].get(inputs) == simdjson::SUCCESS;
  if (obj["signature_name"].get(sig_name) == simdjson::SUCCESS) {
    std::string_view name;
    if (sig_name.get(name) != simdjson::SUCCESS) return InvalidArgument("signature_name must be a string");
    if (!name.empty() && name != "serving_default")
      return InvalidArgument("signature '" + std::string(name) + "' not found; ONNX models have one: serving_default");
  }
  if (has_inst == has_inputs)
    return InvalidArgument(
        "the request must have exactly one of \"instances\" (row format) or \"inputs\" (columnar format)");
  *row_format = has_inst;
  const size_t n_in = sig.inputs.size();
  std::vector<Tensor> out(n_in);
  if (has_inst) {
    simdjson::dom::array rows;
    if (instances.get(rows) != simdjson::SUCCESS) return InvalidArgument("\"instances\" must be a list");
    if (rows.size() == 0) return InvalidArgument("\"instances\" is empty");
    const bool named = named_instance(*rows.begin());
    if (!named && n_in != 1)
      return InvalidArgument("the model has " + std::to_string(n_in) +
                             " inputs: each instance must be an object naming them");
    for (size_t i = 0; i < n_in; ++i) {
      const Value& v = sig.inputs[i];
      std::vector<JsonElement> per_row;
      per_row.reserve(rows.size());
      for (JsonElement r : rows) {
        if (!named) {
          if (named_instance(r)) return InvalidArgument("instances mix objects and plain values");
          per_row.push_back(r);
          continue;
        }
        if (!named_instance(r)) return InvalidArgument("instances mix objects and plain values");
        JsonElement x;
        if (r.get_object().value_unsafe()[v.name].get(x) != simdjson::SUCCESS)
          return InvalidArgument("an instance lacks input '" + v.name + "'");
        per_row.push_back(x);
      }
      MS_ASSIGN_OR_RETURN(out[i], tensor_from_json(per_row, true, v.dtype, "input '" + v.name + "'"));
    }
    if (named)
      for (JsonElement r : rows) {
        simdjson::dom::object fields = r.get_object().value_unsafe();
        for (auto field : fields) {
          if (position_of(sig.inputs, field.key) == sig.inputs.size())
            return InvalidArgument("the model has no input '" + std::string(field.key) + "'");
        }
      }
    return out;
  }
  if (inputs.is_object()) {
    auto o = inputs.get_object().value_unsafe();
    for (size_t i = 0; i < n_in; ++i) {
      const Value& v = sig.inputs[i];
      JsonElement x;
      if (o[v.name].get(x) != simdjson::SUCCESS) return InvalidArgument("\"inputs\" lacks input '" + v.name + "'");
      MS_ASSIGN_OR_RETURN(out[i], tensor_from_json({x}, false, v.dtype, "input '" + v.name + "'"));
    }
    for (auto field : o) {
      if (position_of(sig.inputs, field.key) == sig.inputs.size())
        return InvalidArgument("the model has no input '" + std::string(field.key) + "'");
    }
    return out;
  }
  if (n_in != 1)
    return InvalidArgument("the model has " + std::to_string(n_in) +
                           " inputs: \"inputs\" must be an object naming them");
  const Value& v = sig.inputs[0];
  MS_ASSIGN_OR_RETURN(out[0], tensor_from_json({inputs}, false, v.dtype, "input '" + v.name + "'"));
  return out;
}

Status encode_predict(const Signature& sig, const std::vector<Tensor>& outs, bool row_format, std::string* o) {
  const size_t n = outs.size();
  if (!row_format) {
    *o += "{\"outputs\":";
    if (n == 1 && !sig.outputs[0].zipmap) {
      json_tensor(o, outs[0], 0, -1, b64_output(sig.outputs[0].name));
    } else {
      *o += "{";
      for (size_t i = 0; i < n; ++i) {
        const Value& v = sig.outputs[i];
        if (i) *o += ",";
        json_string(o, v.name);
        *o += ":";
        if (v.zipmap) {
          *o += "[";
          for (int64_t r = 0; r < outs[i].dim(0); ++r) {
            if (r) *o += ",";
            zipmap_row(o, v, outs[i], r);
          }
          *o += "]";
        } else {
          json_tensor(o, outs[i], 0, -1, b64_output(v.name));
        }
      }
      *o += "}";
    }
    *o += "}";
    return Status::OK();
  }
  int64_t rows = -1;
  for (size_t i = 0; i < n; ++i) {
    const Tensor& t = outs[i];
    const std::string& name = sig.outputs[i].name;
    if (t.rank() == 0)
      return InvalidArgument("output '" + name +
                             "' is a scalar: the row format needs a batch dimension; "
                             "use the columnar format (\"inputs\")");
    if (rows >= 0 && t.dim(0) != rows)
      return InvalidArgument("outputs disagree on the batch size (" + std::to_string(rows) + " vs " +
                             std::to_string(t.dim(0)) + " for '" + name + "'); use the columnar format");
    rows = t.dim(0);
  }
  *o += "{\"predictions\":";
  if (n == 1 && !sig.outputs[0].zipmap) {
    json_tensor(o, outs[0], 0, -1, b64_output(sig.outputs[0].name));
  } else {
    *o += "[";
    for (int64_t r = 0; r < rows; ++r) {
      if (r) *o += ",";
      if (n == 1) {
        zipmap_row(o, sig.outputs[0], outs[0], r);
        continue;
      }
      *o += "{";
      for (size_t i = 0; i < n; ++i) {
        const Value& v = sig.outputs[i];
        if (i) *o += ",";
        json_string(o, v.name);
        *o += ":";
        if (v.zipmap)
          zipmap_row(o, v, outs[i], r);
        else
          json_tensor(o, row_of(outs[i], r), 0, -1, b64_output(v.name));
      }
      *o += "}";
    }
    *o += "]";
  }
  *o += "}";
  return Status::OK();
}

}  // namespace mserve::server
