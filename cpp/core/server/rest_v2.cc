// KServe v2 / Open Inference Protocol REST, with the binary tensor data extension:
//   GET  /v2                                   server metadata
//   GET  /v2/health/live, /v2/health/ready     200 (ready: 503 until every model has a version)
//   GET  /v2/models/{m}[/versions/{v}]         model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready   200 or 400
//   GET  /v2/models/{m}[/versions/{v}]/config  a minimal Triton-style config (max_batch_size, io)
//   POST /v2/models/{m}[/versions/{v}]/infer   JSON and/or binary tensors in, JSON and/or binary out
#include <cctype>
#include <charconv>
#include <cstring>

#include "core/server/json.h"
#include "core/server/model_server.h"
#include "core/server/protocol.h"

namespace mserve::server {
namespace {

void v2_tensors(std::string* o, const Graph& g, const std::vector<int>& ids) {
  *o += "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    const Value& v = g.values[ids[i]];
    if (i) *o += ",";
    *o += "{\"name\":";
    json_string(o, v.name);
    *o += ",\"datatype\":\"";
    *o += v2_dtype(v.dtype);
    *o += "\",\"shape\":[";
    if (v.has_shape)
      for (size_t d = 0; d < v.dims.size(); ++d)
        *o += (d ? "," : "") + std::to_string(v.dims[d].known() ? v.dims[d].value : -1);
    *o += "]}";
  }
  *o += "]";
}

bool get_bool_param(JsonElement obj, const char* key) {
  JsonElement params, v;
  if (!obj.is_object() || obj.get_object().value_unsafe()["parameters"].get(params) != simdjson::SUCCESS) return false;
  if (!params.is_object() || params.get_object().value_unsafe()[key].get(v) != simdjson::SUCCESS) return false;
  bool b = false;
  return v.get(b) == simdjson::SUCCESS && b;
}

}  // namespace

void ModelServer::v2(HttpRequest&& req, const std::string& rest, Respond respond) {
  // Split "/models/{m}[/versions/{v}][/tail]" (fixed words are case-insensitive).
  std::vector<std::string> seg;
  for (size_t i = 1; i <= rest.size();) {
    size_t j = rest.find('/', i);
    if (j == std::string::npos) j = rest.size();
    seg.push_back(rest.substr(i, j - i));
    i = j + 1;
  }
  if (!seg.empty() && seg.back().empty()) seg.pop_back();
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const bool infer = seg.size() >= 3 && lower(seg[0]) == "models" && lower(seg.back()) == "infer";
  Reply reply(std::move(respond), metrics_.get(), infer ? "v2_infer" : "v2", req, audit_.get());
  if (seg.empty()) {
    if (req.method != "GET") return reply.error(InvalidArgument("use GET"));
    return reply.json(200, std::string("{\"name\":\"") + kServerName + "\",\"version\":\"" + kServerVersion +
                                 "\",\"extensions\":[\"binary_tensor_data\"]}");
  }
  if (lower(seg[0]) == "health" && seg.size() == 2) {
    const std::string what = lower(seg[1]);
    if (what == "live") return reply.json(200, "");
    if (what == "ready") return manager_->ready() ? reply.json(200, "") : reply.error(Unavailable("models are still loading"));
  }
  if (lower(seg[0]) != "models" || seg.size() < 2) return reply.error(NotFound("no such endpoint: /v2" + rest));
  const std::string& model = seg[1];
  std::optional<int64_t> version;
  size_t k = 2;
  if (seg.size() >= 4 && lower(seg[2]) == "versions") {
    const std::string& v = seg[3];
    if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
      return reply.error(InvalidArgument("version '" + v + "' is not a number"));
    version = std::stoll(v);
    k = 4;
  }
  const std::string tail = k < seg.size() ? lower(seg[k]) : "";
  if (k + 1 < seg.size()) return reply.error(NotFound("no such endpoint: /v2" + rest));
  auto found = manager_->get(model, version, std::nullopt);
  if (tail == "ready") {
    if (found.ok()) return reply.json(200, "");
    return reply.json(found.status().code() == Code::kNotFound && !version ? 404 : 400, "");
  }
  if (!found.ok()) return reply.error(found.status());
  std::shared_ptr<const serving::Servable> sv = std::move(found).value();
  reply.model(sv->model, sv->version);
  const Graph& g = sv->session->graph();
  if (tail.empty()) {
    if (req.method != "GET") return reply.error(InvalidArgument("use GET for model metadata"));
    std::string o = "{\"name\":";
    json_string(&o, sv->model);
    o += ",\"versions\":[";
    auto st = manager_->status(sv->model, std::nullopt, std::nullopt);
    bool first = true;
    if (st.ok())
      for (const auto& v : st.value())
        if (v.state == serving::VersionState::kAvailable) {
          o += (first ? "\"" : ",\"") + std::to_string(v.version) + "\"";
          first = false;
        }
    o += "],\"platform\":\"" + std::string(kV2Platform) + "\",\"inputs\":";
    v2_tensors(&o, g, g.inputs);
    o += ",\"outputs\":";
    v2_tensors(&o, g, g.outputs);
    o += "}";
    return reply.json(200, std::move(o));
  }
  if (tail == "config") {
    std::string o = "{\"name\":";
    json_string(&o, sv->model);
    o += ",\"platform\":\"" + std::string(kV2Platform) + "\",\"backend\":\"mserve\",\"max_batch_size\":" +
         std::to_string(sv->batcher ? sv->batcher->options().max_batch_size : 0) + ",\"input\":";
    v2_tensors(&o, g, g.inputs);
    o += ",\"output\":";
    v2_tensors(&o, g, g.outputs);
    o += "}";
    return reply.json(200, std::move(o));
  }
  if (tail != "infer") return reply.error(NotFound("no such endpoint: /v2" + rest));
  if (req.method != "POST") return reply.error(InvalidArgument("infer takes POST"));

  // The JSON header, then (binary extension) the input tensors' bytes in order.
  const std::string& body = *req.body;
  size_t json_len = body.size();
  std::string_view hl = req.header("inference-header-content-length");
  if (!hl.empty()) {
    size_t n = 0;
    auto r = std::from_chars(hl.data(), hl.data() + hl.size(), n);
    if (r.ec != std::errc() || r.ptr != hl.data() + hl.size() || n > body.size())
      return reply.error(InvalidArgument("Inference-Header-Content-Length is not a valid length within the body"));
    json_len = n;
  }
  thread_local simdjson::dom::parser parser;
  auto parsed = parse_json(parser, std::string_view(body.data(), json_len));
  if (!parsed.ok()) return reply.error(parsed.status());
  JsonElement doc = parsed.value();
  if (!doc.is_object()) return reply.error(InvalidArgument("the request body must be a JSON object"));
  auto obj = doc.get_object().value_unsafe();
  std::string id;
  {
    JsonElement e;
    std::string_view s;
    if (obj["id"].get(e) == simdjson::SUCCESS && e.get(s) == simdjson::SUCCESS) id = std::string(s);
  }
  simdjson::dom::array in_list;
  if (obj["inputs"].get(in_list) != simdjson::SUCCESS) return reply.error(InvalidArgument("\"inputs\" must be a list"));
  std::vector<Tensor> inputs(g.inputs.size());
  std::vector<bool> seen(g.inputs.size(), false);
  size_t offset = json_len;
  for (JsonElement in : in_list) {
    if (!in.is_object()) return reply.error(InvalidArgument("each input must be an object"));
    auto io = in.get_object().value_unsafe();
    std::string_view name, datatype;
    simdjson::dom::array shape_arr;
    if (io["name"].get(name) != simdjson::SUCCESS) return reply.error(InvalidArgument("an input has no \"name\""));
    const std::string what = "input '" + std::string(name) + "'";
    if (io["datatype"].get(datatype) != simdjson::SUCCESS) return reply.error(InvalidArgument(what + " has no \"datatype\""));
    if (io["shape"].get(shape_arr) != simdjson::SUCCESS) return reply.error(InvalidArgument(what + " has no \"shape\" list"));
    size_t idx = g.inputs.size();
    for (size_t i = 0; i < g.inputs.size(); ++i)
      if (g.values[g.inputs[i]].name == name) idx = i;
    if (idx == g.inputs.size()) return reply.error(InvalidArgument("the model has no " + what));
    if (seen[idx]) return reply.error(InvalidArgument(what + " appears twice"));
    seen[idx] = true;
    const DType dt = g.values[g.inputs[idx]].dtype;
    if (datatype != v2_dtype(dt))
      return reply.error(InvalidArgument(what + " has datatype " + std::string(datatype) + "; the model expects " +
                                         v2_dtype(dt)));
    if (!Shape::fits(shape_arr.size())) return reply.error(InvalidArgument(what + ": rank exceeds the maximum"));
    Shape shape;
    for (JsonElement d : shape_arr) {
      int64_t v;
      if (d.get(v) != simdjson::SUCCESS || v < 0) return reply.error(InvalidArgument(what + ": bad shape"));
      shape.push_back(v);
    }
    JsonElement params, size_el;
    int64_t bin_size = -1;
    if (io["parameters"].get(params) == simdjson::SUCCESS && params.is_object() &&
        params.get_object().value_unsafe()["binary_data_size"].get(size_el) == simdjson::SUCCESS) {
      if (size_el.get(bin_size) != simdjson::SUCCESS || bin_size < 0)
        return reply.error(InvalidArgument(what + ": binary_data_size must be a non-negative integer"));
    }
    if (bin_size >= 0 && dt == DType::kString) {
      if (offset + static_cast<size_t>(bin_size) > body.size())
        return reply.error(InvalidArgument(what + ": the body ends before its binary data"));
      auto t = decode_length_prefixed(body.data() + offset, static_cast<size_t>(bin_size), shape, what);
      if (!t.ok()) return reply.error(t.status());
      inputs[idx] = std::move(t).value();
      offset += static_cast<size_t>(bin_size);
      continue;
    }
    if (bin_size >= 0) {
      auto need = aligned_bytes(dt, shape);
      const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dt);
      if (!need.ok() || static_cast<size_t>(bin_size) != bytes)
        return reply.error(InvalidArgument(what + ": binary_data_size " + std::to_string(bin_size) + " does not match " +
                                           "shape " + shape.str() + " of " + v2_dtype(dt) + " (" +
                                           std::to_string(bytes) + " bytes)"));
      if (offset + bytes > body.size())
        return reply.error(InvalidArgument(what + ": the body ends before its binary data"));
      const char* p = body.data() + offset;
      if (reinterpret_cast<uintptr_t>(p) % dtype_size(dt) == 0) {
        // Used in place: the tensor shares the request body's lifetime.
        auto buf = Buffer::borrow(const_cast<char*>(p), bytes, req.body);
        inputs[idx] = Tensor(dt, shape, buf, const_cast<char*>(p));
      } else {
        auto t = Tensor::empty(dt, shape);
        if (!t.ok()) return reply.error(t.status());
        std::memcpy(t.value().raw(), p, bytes);
        inputs[idx] = std::move(t).value();
      }
      offset += bytes;
      continue;
    }
    JsonElement data;
    if (io["data"].get(data) != simdjson::SUCCESS)
      return reply.error(InvalidArgument(what + " has neither \"data\" nor binary_data_size"));
    auto t = tensor_from_json_flat(data, shape, dt, what);
    if (!t.ok()) return reply.error(t.status());
    inputs[idx] = std::move(t).value();
  }
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) return reply.error(InvalidArgument("missing input '" + g.values[g.inputs[i]].name + "'"));
  if (offset != body.size())
    return reply.error(InvalidArgument("the body holds " + std::to_string(body.size() - offset) +
                                       " bytes of binary data that no input claims"));

  // Requested outputs (all when none are named), binary or JSON each.
  const bool binary_default = get_bool_param(doc, "binary_data_output");
  std::vector<std::pair<size_t, bool>> wanted;  // output index, binary
  simdjson::dom::array out_list;
  if (obj["outputs"].get(out_list) == simdjson::SUCCESS) {
    for (JsonElement o : out_list) {
      std::string_view name;
      if (!o.is_object() || o.get_object().value_unsafe()["name"].get(name) != simdjson::SUCCESS)
        return reply.error(InvalidArgument("each requested output must be an object with a \"name\""));
      size_t idx = g.outputs.size();
      for (size_t i = 0; i < g.outputs.size(); ++i)
        if (g.values[g.outputs[i]].name == name) idx = i;
      if (idx == g.outputs.size()) return reply.error(InvalidArgument("the model has no output '" + std::string(name) + "'"));
      JsonElement params, b;
      bool binary = binary_default;
      if (o.get_object().value_unsafe()["parameters"].get(params) == simdjson::SUCCESS && params.is_object() &&
          params.get_object().value_unsafe()["binary_data"].get(b) == simdjson::SUCCESS)
        binary = b.is_bool() && b.get_bool().value_unsafe();
      wanted.emplace_back(idx, binary);
    }
  } else {
    for (size_t i = 0; i < g.outputs.size(); ++i) wanted.emplace_back(i, binary_default);
  }

  std::shared_ptr<Session> session = sv->session;
  serving::Metrics* metrics = metrics_.get();
  const std::string mname = sv->model;
  const int64_t mversion = sv->version;
  run(sv, std::move(inputs), deadline(),
      [reply, session, wanted, id, metrics, mname, mversion](Status st, std::vector<Tensor> outs) {
        if (!st.ok()) return reply.error(st);
        const Graph& g = session->graph();
        std::string o = "{";
        if (!id.empty()) {
          o += "\"id\":";
          json_string(&o, id);
          o += ",";
        }
        o += "\"model_name\":";
        json_string(&o, mname);
        o += ",\"model_version\":\"" + std::to_string(mversion) + "\",\"outputs\":[";
        std::string binary;
        int64_t bad = 0;
        for (size_t w = 0; w < wanted.size(); ++w) {
          const Tensor& t = outs[wanted[w].first];
          bad += count_nonfinite(t);
          if (w) o += ",";
          o += "{\"name\":";
          json_string(&o, g.values[g.outputs[wanted[w].first]].name);
          o += ",\"datatype\":\"";
          o += v2_dtype(t.dtype());
          o += "\",\"shape\":[";
          for (int d = 0; d < t.rank(); ++d) o += (d ? "," : "") + std::to_string(t.dim(d));
          o += "]";
          if (wanted[w].second) {
            const size_t before = binary.size();
            if (t.dtype() == DType::kString) encode_length_prefixed(t, &binary);
            else binary.append(static_cast<const char*>(t.raw()), t.nbytes());
            o += ",\"parameters\":{\"binary_data_size\":" + std::to_string(binary.size() - before) + "}}";
          } else {
            o += ",\"data\":";
            json_tensor_flat(&o, t);
            o += "}";
          }
        }
        o += "]}";
        if (bad) metrics->nonfinite_outputs(mname, mversion, bad);
        HttpResponse r;
        if (!binary.empty() || std::any_of(wanted.begin(), wanted.end(), [](auto& w) { return w.second; })) {
          r.headers.emplace_back("Inference-Header-Content-Length", std::to_string(o.size()));
          r.content_type = "application/octet-stream";
          o += binary;
        }
        r.body = std::move(o);
        reply(std::move(r));
      });
}

}  // namespace mserve::server
