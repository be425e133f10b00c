// TensorFlow Serving's REST API (as tensorflow_model_server answers it):
//   GET  /v1/models/{m}[/versions/{v}|/labels/{l}]             model status
//   GET  /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata    signature_def from the ONNX graph
//   POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict     row ("instances") or columnar ("inputs")
//   POST ...:classify / ...:regress                             501: ONNX models have no such signatures
#include <cctype>

#include "server/codec/json.h"
#include "server/codec/protocol.h"
#include "server/codec/tfs_rest.h"
#include "server/model_server.h"

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
    if (k + 1 == seg.size() && lower(seg[k]) == "metadata" && r.tail.empty())
      r.tail = "metadata";
    else
      return NotFound("no such endpoint under /v1/models/" + r.model);
  }
  return r;
}

void signature_tensors(std::string* o, const std::vector<Value>& specs) {
  *o += "{";
  bool first = true;
  for (const Value& v : specs) {
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
        o += "{\"version\":\"" + std::to_string(v.version) + "\",\"state\":\"" + server::state_name(v.state) +
             "\",\"status\":{\"error_code\":\"" + (v.error.ok() ? "OK" : "UNKNOWN") + "\",\"error_message\":";
        json_string(&o, v.error.message());
        o += "}}";
      }
      o += "]";
      if (!r.version && !r.label) rollout_status(r.model, &o);
      monitoring_status(r.model, &o);
      if (!r.version && !r.label) source_status(r.model, &o);
      o += "}";
      return reply.json(200, std::move(o));
    }
    auto s = manager_->get(r.model, r.version, r.label);
    if (!s.ok()) return reply.error(s.status());
    const auto& sv = s.value();
    reply.model(sv->model, sv->version);
    const Signature& sig = sv->session->signature();
    std::string o = "{\"model_spec\":{\"name\":";
    json_string(&o, sv->model);
    o += ",\"signature_name\":\"\",\"version\":\"" + std::to_string(sv->version) + "\"},";
    o += "\"metadata\":{\"signature_def\":{\"signature_def\":{\"serving_default\":{\"inputs\":";
    signature_tensors(&o, sig.inputs);
    o += ",\"outputs\":";
    signature_tensors(&o, sig.outputs);
    o += ",\"method_name\":\"tensorflow/serving/predict\"}}}}}";
    return reply.json(200, std::move(o));
  }
  if (r.tail == ":classify" || r.tail == ":regress")
    return reply.error(Unimplemented(r.tail.substr(1) + " is not available: ONNX models expose only the predict "
                                                        "signature (serving_default); use :predict"));
  if (!predict) return reply.error(NotFound("no such method '" + r.tail + "'; use :predict"));
  if (req.method != "POST") return reply.error(InvalidArgument(":predict takes POST"));
  Rollouts::Ticket ticket;
  auto s = ModelServer::route(
      r.model, r.version, r.label, [&req](std::string_view name) { return req.header(name); }, req.identity, &ticket);
  if (!s.ok()) return reply.error(s.status());
  std::shared_ptr<const server::Servable> sv = std::move(s).value();
  reply.model(sv->model, sv->version);
  reply.ticket(ticket);
  thread_local simdjson::dom::parser parser;
  auto doc = parse_json(parser, *req.body, req.body_at, req.body->size() - req.body_at);
  if (!doc.ok()) return reply.error(doc.status());
  bool row_format = false;
  auto inputs = decode_predict(doc.value(), sv->session->signature(), &row_format);
  if (!inputs.ok()) return reply.error(inputs.status());
  reply.decoded();
  server::Metrics* metrics = metrics_.get();
  // `done` keeps the session (for its signature) but not the servable: see manager.h.
  std::shared_ptr<Session> session = sv->session;
  const std::string model = sv->model;
  const int64_t version = sv->version;
  run(
      sv, std::move(inputs).value(), deadline(),
      [reply, session, row_format, metrics, model, version](Status st, std::vector<Tensor> outs) {
        reply.ran();
        if (!st.ok()) return reply.error(st);
        int64_t bad = 0;
        for (const Tensor& t : outs) bad += count_nonfinite(t);
        if (bad) metrics->nonfinite_outputs(model, version, bad);
        std::string o;
        Status enc = encode_predict(session->signature(), outs, row_format, &o);
        if (!enc.ok()) return reply.error(enc);
        reply.json(200, std::move(o));
      },
      &ticket, req.request_id);
}

}  // namespace mserve::server
