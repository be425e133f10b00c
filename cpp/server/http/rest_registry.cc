// The registry view over REST (mserve's; gRPC: mserve.ConfigService/ListModels):
//   GET /v1/registry                          every model, its versions and where they came from
//   GET /v1/registry/{m}                      one model
//   GET /v1/registry/{m}/versions/{v}         one version
#include "server/codec/json.h"
#include "server/metrics/metrics.h"
#include "server/model_server.h"

namespace mserve::server {
namespace {

void version_json(std::string* o, const VersionStatus& st, const std::shared_ptr<const Servable>& sv) {
  *o += "{\"version\":\"" + std::to_string(st.version) + "\",\"state\":\"" + state_name(st.state) + "\",\"error\":";
  json_string(o, st.error.message());
  if (sv) {
    const std::string digest = sv->digest();
    *o += ",\"path\":";
    json_string(o, sv->path);
    *o += ",\"digest\":";
    json_string(o, digest.empty() ? "" : "sha256:" + digest);
    *o += ",\"signer\":";
    json_string(o, sv->signer);
    *o += std::string(",\"encrypted\":") + (sv->encrypted ? "true" : "false") + ",\"loaded_at\":";
    json_string(o, sv->loaded_at);
    *o += ",\"load_seconds\":" + prometheus_number(sv->load_seconds);
  }
  *o += "}";
}

void model_json(std::string* o, const ModelManager::RegistryModel& m) {
  *o += "{\"name\":";
  json_string(o, m.name);
  *o += ",\"source\":";
  json_string(o, m.source);
  *o += ",\"labels\":{";
  bool first = true;
  for (const auto& [label, v] : m.labels) {
    if (!first) *o += ",";
    first = false;
    json_string(o, label);
    *o += ":\"" + std::to_string(v) + "\"";
  }
  *o += "},\"versions\":[";
  for (size_t i = 0; i < m.versions.size(); ++i) {
    if (i) *o += ",";
    version_json(o, m.versions[i].first, m.versions[i].second);
  }
  *o += "]}";
}

}  // namespace

void ModelServer::registry(HttpRequest&& req, const std::string& rest, Respond respond) {
  Reply reply(std::move(respond), metrics_.get(), "registry", req, audit_.get());
  if (req.method != "GET") return reply.error(InvalidArgument("the registry is read with GET"));
  const std::vector<std::string> seg = path_segments(rest);
  if (seg.size() == 2 || seg.size() > 3 || (seg.size() == 3 && seg[1] != "versions"))
    return reply.error(NotFound("no such endpoint: /v1/registry" + rest));
  const std::string model = seg.size() >= 1 ? seg[0] : "";
  if (seg.size() == 3 &&
      (seg[2].empty() || seg[2].size() > 18 || seg[2].find_first_not_of("0123456789") != std::string::npos))
    return reply.error(InvalidArgument("version '" + seg[2] + "' is not a number"));
  auto models = manager_->registry(model);
  if (!models.ok()) return reply.error(models.status());
  std::string o;
  if (model.empty()) {
    o = "{\"models\":[";
    for (size_t i = 0; i < models.value().size(); ++i) {
      if (i) o += ",";
      model_json(&o, models.value()[i]);
    }
    o += "]}";
  } else if (seg.size() == 1) {
    model_json(&o, models.value()[0]);
  } else {
    const int64_t v = std::stoll(seg[2]);
    for (const auto& [st, sv] : models.value()[0].versions)
      if (st.version == v) version_json(&o, st, sv);
    if (o.empty()) return reply.error(NotFound("model '" + model + "' has no version " + seg[2]));
  }
  reply.json(200, std::move(o));
}

}  // namespace mserve::server
