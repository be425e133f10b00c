// TensorFlow Serving's REST API (as tensorflow_model_server answers it):
//   GET  /v1/models/{m}[/versions/{v}|/labels/{l}]             model status
//   GET  /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata    signature_def from the ONNX graph
//   POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict     row ("instances") or columnar ("inputs")
//   POST ...:classify / ...:regress                             501: ONNX models have no such signatures
#include <cctype>

#include "core/server/json.h"
#include "core/server/model_server.h"
#include "core/server/protocol.h"

namespace mserve::server {
namespace {

struct Route {
  std::string model;
  std::optional<int64_t> version;
  std::optional<std::string> label;
  std::string tail;  // "", "metadata", ":predict", ":classify", ":regress", or something unknown
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

StatusOr<Route> parse_route(const std::string& rest) {
  Route r;
  std::string path = rest;
  size_t colon = path.rfind(':');
  if (colon != std::string::npos && path.find('/', colon) == std::string::npos) {
    r.tail = lower(path.substr(colon));
    path = path.substr(0, colon);
  }
  std::vector<std::string> seg;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    seg.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  if (seg.empty() || seg[0].empty()) return NotFound("no model name in the path");
  r.model = seg[0];
  size_t k = 1;
  if (k + 1 < seg.size()) {
    const std::string kind = lower(seg[k]);
    if (kind == "versions") {
      const std::string& v = seg[k + 1];
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
        return InvalidArgument("version '" + v + "' is not a number");
      r.version = std::stoll(v);
      k += 2;
    } else if (kind == "labels") {
      r.label = seg[k + 1];
      k += 2;
    }
  }
  if (k < seg.size()) {
    if (k + 1 == seg.size() && lower(seg[k]) == "metadata" && r.tail.empty()) r.tail = "metadata";
    else return NotFound("no such endpoint under /v1/models/" + r.model);
  }
  return r;
}

void signature_tensors(std::string* o, const Graph& g, const std::vector<int>& ids) {
  *o += "{";
  bool first = true;
  for (int id : ids) {
    const Value& v = g.values[id];
    if (!first) *o += ",";
    first = false;
    json_string(o, v.name);
    *o += ":{\"dtype\":\"";
    *o += tf_dtype_name(v.dtype);
    *o += "\",\"tensor_shape\":{";
    if (v.has_shape) {
      *o += "\"dim\":[";
      for (size_t i = 0; i < v.dims.size(); ++i) {
        if (i) *o += ",";
        *o += "{\"size\":\"" + std::to_string(v.dims[i].known() ? v.dims[i].value : -1) + "\",\"name\":";
        json_string(o, v.dims[i].symbol);
        *o += "}";
      }
      *o += "],\"unknown_rank\":false";
    } else {
      *o += "\"dim\":[],\"unknown_rank\":true";
    }
    *o += "},\"name\":";
    json_string(o, v.name);
    *o += "}";
  }
  *o += "}";
}

// A ZipMap output row as {"label": probability, ...}.
void zipmap_row(std::string* o, const Value& v, const Tensor& t, int64_t row) {
  *o += "{";
  const int64_t c = t.rank() == 2 ? t.dim(1) : 0;
  const float* p = t.data<float>() + row * c;
  const bool strings = !v.zipmap_string_labels.empty();
  const int64_t n_labels = static_cast<int64_t>(strings ? v.zipmap_string_labels.size() : v.zipmap_labels.size());
  for (int64_t j = 0; j < c && j < n_labels; ++j) {
    if (j) *o += ",";
    if (strings) json_string(o, v.zipmap_string_labels[j]);
    else *o += "\"" + std::to_string(v.zipmap_labels[j]) + "\"";
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
bool b64_output(const std::string& name) {
  return name.size() >= 6 && name.compare(name.size() - 6, 6, "_bytes") == 0;
}

// An instance that names the model's inputs; {"b64": "..."} is a value (a bytes element), not that.
bool named_instance(JsonElement r) {
  simdjson::dom::object o;
  if (r.get(o) != simdjson::SUCCESS) return false;
  JsonElement b;
  return !(o.size() == 1 && o["b64"].get(b) == simdjson::SUCCESS);
}

StatusOr<std::vector<Tensor>> decode_predict(JsonElement doc, const Graph& g, bool* row_format) {
  if (!doc.is_object()) return InvalidArgument("the request body must be a JSON object");
  auto obj = doc.get_object().value_unsafe();
  JsonElement sig, instances, inputs;
  bool has_inst = obj["instances"].get(instances) == simdjson::SUCCESS;
  bool has_inputs = obj["inputs"].get(inputs) == simdjson::SUCCESS;
  if (obj["signature_name"].get(sig) == simdjson::SUCCESS) {
    std::string_view name;
    if (sig.get(name) != simdjson::SUCCESS) return InvalidArgument("signature_name must be a string");
    if (!name.empty() && name != "serving_default")
      return InvalidArgument("signature '" + std::string(name) + "' not found; ONNX models have one: serving_default");
  }
  if (has_inst == has_inputs)
    return InvalidArgument("the request must have exactly one of \"instances\" (row format) or \"inputs\" (columnar format)");
  *row_format = has_inst;
  const size_t n_in = g.inputs.size();
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
      const Value& v = g.values[g.inputs[i]];
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
          bool known = false;
          for (int id : g.inputs) known = known || g.values[id].name == field.key;
          if (!known) return InvalidArgument("the model has no input '" + std::string(field.key) + "'");
        }
      }
    return out;
  }
  if (inputs.is_object()) {
    auto o = inputs.get_object().value_unsafe();
    for (size_t i = 0; i < n_in; ++i) {
      const Value& v = g.values[g.inputs[i]];
      JsonElement x;
      if (o[v.name].get(x) != simdjson::SUCCESS) return InvalidArgument("\"inputs\" lacks input '" + v.name + "'");
      MS_ASSIGN_OR_RETURN(out[i], tensor_from_json({x}, false, v.dtype, "input '" + v.name + "'"));
    }
    for (auto field : o) {
      bool known = false;
      for (int id : g.inputs) known = known || g.values[id].name == field.key;
      if (!known) return InvalidArgument("the model has no input '" + std::string(field.key) + "'");
    }
    return out;
  }
  if (n_in != 1)
    return InvalidArgument("the model has " + std::to_string(n_in) + " inputs: \"inputs\" must be an object naming them");
  const Value& v = g.values[g.inputs[0]];
  MS_ASSIGN_OR_RETURN(out[0], tensor_from_json({inputs}, false, v.dtype, "input '" + v.name + "'"));
  return out;
}

Status encode_predict(const Graph& g, const std::vector<Tensor>& outs, bool row_format, std::string* o) {
  const size_t n = outs.size();
  if (!row_format) {
    *o += "{\"outputs\":";
    if (n == 1 && !g.values[g.outputs[0]].zipmap) {
      json_tensor(o, outs[0], 0, -1, b64_output(g.values[g.outputs[0]].name));
    } else {
      *o += "{";
      for (size_t i = 0; i < n; ++i) {
        const Value& v = g.values[g.outputs[i]];
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
    const std::string& name = g.values[g.outputs[i]].name;
    if (t.rank() == 0)
      return InvalidArgument("output '" + name + "' is a scalar: the row format needs a batch dimension; "
                             "use the columnar format (\"inputs\")");
    if (rows >= 0 && t.dim(0) != rows)
      return InvalidArgument("outputs disagree on the batch size (" + std::to_string(rows) + " vs " +
                             std::to_string(t.dim(0)) + " for '" + name + "'); use the columnar format");
    rows = t.dim(0);
  }
  *o += "{\"predictions\":";
  if (n == 1 && !g.values[g.outputs[0]].zipmap) {
    json_tensor(o, outs[0], 0, -1, b64_output(g.values[g.outputs[0]].name));
  } else {
    *o += "[";
    for (int64_t r = 0; r < rows; ++r) {
      if (r) *o += ",";
      if (n == 1) {
        zipmap_row(o, g.values[g.outputs[0]], outs[0], r);
        continue;
      }
      *o += "{";
      for (size_t i = 0; i < n; ++i) {
        const Value& v = g.values[g.outputs[i]];
        if (i) *o += ",";
        json_string(o, v.name);
        *o += ":";
        if (v.zipmap) zipmap_row(o, v, outs[i], r);
        else json_tensor(o, row_of(outs[i], r), 0, -1, b64_output(v.name));
      }
      *o += "}";
    }
    *o += "]";
  }
  *o += "}";
  return Status::OK();
}

}  // namespace

void ModelServer::tfs(HttpRequest&& req, const std::string& rest, Respond respond) {
  auto route = parse_route(rest);
  const bool predict = route.ok() && route.value().tail == ":predict";
  Reply reply(std::move(respond), metrics_.get(), predict ? "tfs_predict" : "tfs", req, audit_.get());
  if (!route.ok()) return reply.error(route.status());
  const Route& r = route.value();
  if (r.tail.empty() || r.tail == "metadata") {
    if (req.method != "GET") return reply.error(InvalidArgument("use GET for model status and metadata"));
    if (r.tail.empty()) {
      reply.model(r.model, r.version.value_or(0));
      auto st = manager_->status(r.model, r.version, r.label);
      if (!st.ok()) return reply.error(st.status());
      std::string o = "{\"model_version_status\":[";
      bool first = true;
      for (const auto& v : st.value()) {
        if (!first) o += ",";
        first = false;
        o += "{\"version\":\"" + std::to_string(v.version) + "\",\"state\":\"" + serving::state_name(v.state) +
             "\",\"status\":{\"error_code\":\"" + (v.error.ok() ? "OK" : "UNKNOWN") + "\",\"error_message\":";
        json_string(&o, v.error.message());
        o += "}}";
      }
      o += "]}";
      return reply.json(200, std::move(o));
    }
    auto s = manager_->get(r.model, r.version, r.label);
    if (!s.ok()) return reply.error(s.status());
    const auto& sv = s.value();
    reply.model(sv->model, sv->version);
    const Graph& g = sv->session->graph();
    std::string o = "{\"model_spec\":{\"name\":";
    json_string(&o, sv->model);
    o += ",\"signature_name\":\"\",\"version\":\"" + std::to_string(sv->version) + "\"},";
    o += "\"metadata\":{\"signature_def\":{\"signature_def\":{\"serving_default\":{\"inputs\":";
    signature_tensors(&o, g, g.inputs);
    o += ",\"outputs\":";
    signature_tensors(&o, g, g.outputs);
    o += ",\"method_name\":\"tensorflow/serving/predict\"}}}}}";
    return reply.json(200, std::move(o));
  }
  if (r.tail == ":classify" || r.tail == ":regress")
    return reply.error(Unimplemented(r.tail.substr(1) + " is not available: ONNX models expose only the predict "
                                     "signature (serving_default); use :predict"));
  if (!predict) return reply.error(NotFound("no such method '" + r.tail + "'; use :predict"));
  if (req.method != "POST") return reply.error(InvalidArgument(":predict takes POST"));
  auto s = manager_->get(r.model, r.version, r.label);
  if (!s.ok()) return reply.error(s.status());
  std::shared_ptr<const serving::Servable> sv = std::move(s).value();
  reply.model(sv->model, sv->version);
  thread_local simdjson::dom::parser parser;
  auto doc = parse_json(parser, *req.body);
  if (!doc.ok()) return reply.error(doc.status());
  const Graph& g = sv->session->graph();
  bool row_format = false;
  auto inputs = decode_predict(doc.value(), g, &row_format);
  if (!inputs.ok()) return reply.error(inputs.status());
  serving::Metrics* metrics = metrics_.get();
  // `done` keeps the session (for its graph) but not the servable: see manager.h.
  std::shared_ptr<Session> session = sv->session;
  const std::string model = sv->model;
  const int64_t version = sv->version;
  run(sv, std::move(inputs).value(), deadline(),
      [reply, session, row_format, metrics, model, version](Status st, std::vector<Tensor> outs) {
        if (!st.ok()) return reply.error(st);
        int64_t bad = 0;
        for (const Tensor& t : outs) bad += count_nonfinite(t);
        if (bad) metrics->nonfinite_outputs(model, version, bad);
        std::string o;
        Status enc = encode_predict(session->graph(), outs, row_format, &o);
        if (!enc.ok()) return reply.error(enc);
        reply.json(200, std::move(o));
      });
}

}  // namespace mserve::server
