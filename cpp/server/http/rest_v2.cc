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

#include "server/codec/json.h"
#include "server/codec/protocol.h"
#include "server/codec/v2_rest.h"
#include "server/model_server.h"

namespace mserve::server {
namespace {

void v2_tensors(std::string* o, const std::vector<Value>& specs) {
  *o += "[";
  for (size_t i = 0; i < specs.size(); ++i) {
    const Value& v = specs[i];
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

}  // namespace

void ModelServer::v2(HttpRequest&& req, const std::string& rest, Respond respond) {
  // Split "/models/{m}[/versions/{v}][/tail]" (fixed words are case-insensitive).
  const std::vector<std::string> seg = path_segments(rest);
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
    if (what == "ready")
      return manager_->ready() ? reply.json(200, "") : reply.error(Unavailable("models are still loading"));
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
  Rollouts::Ticket ticket;
  auto found = tail == "infer" ? route(
                                     model, version, std::nullopt,
                                     [&req](std::string_view name) { return req.header(name); }, req.identity, &ticket)
                               : manager_->get(model, version, std::nullopt);
  if (tail == "ready") {
    if (found.ok()) return reply.json(200, "");
    return reply.json(found.status().code() == Code::kNotFound && !version ? 404 : 400, "");
  }
  if (!found.ok()) return reply.error(found.status());
  std::shared_ptr<const server::Servable> sv = std::move(found).value();
  reply.model(sv->model, sv->version);
  reply.ticket(ticket);
  const Signature& sig = sv->session->signature();
  if (tail.empty()) {
    if (req.method != "GET") return reply.error(InvalidArgument("use GET for model metadata"));
    std::string o = "{\"name\":";
    json_string(&o, sv->model);
    o += ",\"versions\":[";
    auto st = manager_->status(sv->model, std::nullopt, std::nullopt);
    bool first = true;
    if (st.ok())
      for (const auto& v : st.value())
        if (v.state == server::VersionState::kAvailable) {
          o += (first ? "\"" : ",\"") + std::to_string(v.version) + "\"";
          first = false;
        }
    o += "],\"platform\":\"" + std::string(kV2Platform) + "\",\"inputs\":";
    v2_tensors(&o, sig.inputs);
    o += ",\"outputs\":";
    v2_tensors(&o, sig.outputs);
    o += "}";
    return reply.json(200, std::move(o));
  }
  if (tail == "config") {
    std::string o = "{\"name\":";
    json_string(&o, sv->model);
    o += ",\"platform\":\"" + std::string(kV2Platform) + "\",\"backend\":\"mserve\",\"max_batch_size\":" +
         std::to_string(sv->batcher ? sv->batcher->options().max_batch_size : 0) + ",\"input\":";
    v2_tensors(&o, sig.inputs);
    o += ",\"output\":";
    v2_tensors(&o, sig.outputs);
    o += "}";
    return reply.json(200, std::move(o));
  }
  if (tail != "infer") return reply.error(NotFound("no such endpoint: /v2" + rest));
  if (req.method != "POST") return reply.error(InvalidArgument("infer takes POST"));

  auto decoded = decode_v2_infer(req.body, req.body_at, req.header("inference-header-content-length"), sig);
  if (!decoded.ok()) return reply.error(decoded.status());
  reply.decoded();
  std::vector<Tensor> inputs = std::move(decoded.value().inputs);
  const std::vector<std::pair<size_t, bool>> wanted = std::move(decoded.value().wanted);
  const std::string id = std::move(decoded.value().id);
  std::shared_ptr<Session> session = sv->session;
  server::Metrics* metrics = metrics_.get();
  const std::string mname = sv->model;
  const int64_t mversion = sv->version;
  run(
      sv, std::move(inputs), deadline(),
      [reply, session, wanted, id, metrics, mname, mversion](Status st, std::vector<Tensor> outs) {
        reply.ran();
        if (!st.ok()) return reply.error(st);
        const Signature& sig = session->signature();
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
          json_string(&o, sig.outputs[wanted[w].first].name);
          o += ",\"datatype\":\"";
          o += v2_dtype(t.dtype());
          o += "\",\"shape\":[";
          for (int d = 0; d < t.rank(); ++d) o += (d ? "," : "") + std::to_string(t.dim(d));
          o += "]";
          if (wanted[w].second) {
            const size_t before = binary.size();
            if (t.dtype() == DType::kString)
              encode_length_prefixed(t, &binary);
            else
              binary.append(static_cast<const char*>(t.raw()), t.nbytes());
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
      },
      &ticket, req.request_id);
}

}  // namespace mserve::server
