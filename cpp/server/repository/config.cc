#include "server/repository/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "tensorflow_serving/config/model_server_config.pb.h"

namespace mserve::server {
namespace {

namespace pb = ::tensorflow::serving;

// Collects the parser's complaints so the error names line and column.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber col, const std::string& msg) override {
    if (text_.empty()) text_ = "line " + std::to_string(line + 1) + ", column " + std::to_string(col + 1) + ": " + msg;
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

template <class Msg>
Status parse_text(const std::string& text, Msg* msg, const char* what) {
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, msg))
    return InvalidArgument(std::string("cannot parse the ") + what + ": " +
                           (errors.text().empty() ? "malformed text" : errors.text()));
  return Status::OK();
}

}  // namespace

Status BatchingOptions::validate() const {
  if (max_batch_size < 1) return InvalidArgument("batching: max_batch_size must be at least 1");
  if (batch_timeout_micros < 0) return InvalidArgument("batching: batch_timeout_micros must not be negative");
  if (max_enqueued_batches < 1) return InvalidArgument("batching: max_enqueued_batches must be at least 1");
  for (size_t i = 0; i < allowed_batch_sizes.size(); ++i) {
    if (allowed_batch_sizes[i] < 1 || (i && allowed_batch_sizes[i] <= allowed_batch_sizes[i - 1]))
      return InvalidArgument("batching: allowed_batch_sizes must be positive and strictly increasing");
  }
  if (!allowed_batch_sizes.empty() && allowed_batch_sizes.back() != max_batch_size)
    return InvalidArgument("batching: the last of allowed_batch_sizes (" + std::to_string(allowed_batch_sizes.back()) +
                           ") must equal max_batch_size (" + std::to_string(max_batch_size) + ")");
  return Status::OK();
}

bool RolloutConfig::operator==(const RolloutConfig& o) const {
  auto arm_eq = [](const Arm& a, const Arm& b) { return a.label == b.label && a.weight == b.weight; };
  const Guard &g = guard, &h = o.guard;
  return std::equal(arms.begin(), arms.end(), o.arms.begin(), o.arms.end(), arm_eq) &&
         sticky_header == o.sticky_header && shadow.label == o.shadow.label && shadow.percent == o.shadow.percent &&
         shadow.queue == o.shadow.queue && g.enabled == h.enabled && g.window_seconds == h.window_seconds &&
         g.min_requests == h.min_requests && g.max_error_rate_increase == h.max_error_rate_increase &&
         g.max_p99_ratio == h.max_p99_ratio && g.p99_slack_ms == h.p99_slack_ms && g.step_percent == h.step_percent &&
         g.step_interval_seconds == h.step_interval_seconds && g.max_percent == h.max_percent;
}

namespace {

// The rollout block of `model`, checked against its version labels. Zeros are proto3's unset
// fields and take the defaults.
StatusOr<RolloutConfig> rollout_from_proto(const ::mserve::Rollout& p, const std::string& model,
                                           const std::map<std::string, int64_t>& labels) {
  const std::string where = "model config: model '" + model + "': rollout: ";
  auto bad = [&](const std::string& why) { return InvalidArgument(where + why); };
  auto known = [&](const std::string& label, const char* what) -> Status {
    if (label.empty()) return bad(std::string(what) + " has no label");
    if (!labels.count(label))
      return bad(std::string(what) + " label '" + label + "' is not one of the model's version_labels");
    return Status::OK();
  };
  RolloutConfig r;
  if (static_cast<size_t>(p.arm_size()) > RolloutConfig::kMaxArms)
    return bad("at most " + std::to_string(RolloutConfig::kMaxArms) + " arms");
  double total = 0;
  for (const auto& a : p.arm()) {
    MS_RETURN_IF_ERROR(known(a.label(), "an arm"));
    for (const auto& seen : r.arms)
      if (seen.label == a.label()) return bad("label '" + a.label() + "' has two arms");
    if (!std::isfinite(a.weight()) || a.weight() < 0)
      return bad("arm '" + a.label() + "' has weight " + std::to_string(a.weight()) + "; weights are >= 0");
    total += a.weight();
    r.arms.push_back({a.label(), a.weight()});
  }
  if (!r.arms.empty() && !(total > 0)) return bad("the arms' weights are all 0");
  for (char c : p.sticky_header()) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
      return bad("sticky_header '" + p.sticky_header() + "' is not a header name");
    r.sticky_header += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (p.has_shadow()) {
    const auto& s = p.shadow();
    MS_RETURN_IF_ERROR(known(s.label(), "the shadow"));
    if (!(s.percent() >= 0 && s.percent() <= 100)) return bad("shadow percent must lie in 0..100");
    if (s.queue() > 100000) return bad("shadow queue holds at most 100000 requests");
    r.shadow.label = s.label();
    r.shadow.percent = s.percent();
    if (s.queue()) r.shadow.queue = s.queue();
  }
  if (r.arms.empty() && r.shadow.label.empty()) return bad("give arms, a shadow or both");
  if (p.has_guard()) {
    const auto& g = p.guard();
    RolloutConfig::Guard& o = r.guard;
    if (r.arms.size() < 2) return bad("a guard needs a baseline arm and at least one canary arm");
    o.enabled = true;
    auto positive = [&](double v, double fallback, const char* name, double* out) -> Status {
      if (!std::isfinite(v) || v < 0) return bad(std::string("guard ") + name + " must be a number >= 0");
      *out = v > 0 ? v : fallback;
      return Status::OK();
    };
    MS_RETURN_IF_ERROR(positive(g.window_seconds(), 60, "window_seconds", &o.window_seconds));
    o.min_requests = g.min_requests() ? g.min_requests() : 100;
    MS_RETURN_IF_ERROR(
        positive(g.max_error_rate_increase(), 0.01, "max_error_rate_increase", &o.max_error_rate_increase));
    if (!std::isfinite(g.max_p99_ratio())) return bad("guard max_p99_ratio must be a number");
    o.max_p99_ratio = g.max_p99_ratio() == 0 ? 2 : g.max_p99_ratio();  // negative: no latency check
    MS_RETURN_IF_ERROR(positive(g.p99_slack_ms(), 1, "p99_slack_ms", &o.p99_slack_ms));
    MS_RETURN_IF_ERROR(positive(g.step_percent(), 0, "step_percent", &o.step_percent));
    MS_RETURN_IF_ERROR(positive(g.step_interval_seconds(), 0, "step_interval_seconds", &o.step_interval_seconds));
    MS_RETURN_IF_ERROR(positive(g.max_percent(), 100, "max_percent", &o.max_percent));
    if (o.step_percent > 100 || o.max_percent > 100) return bad("guard step_percent and max_percent are at most 100");
    if (o.step_percent > 0 && o.step_interval_seconds <= 0)
      return bad("guard step_percent needs step_interval_seconds");
  }
  return r;
}

::mserve::Rollout rollout_to_proto(const RolloutConfig& r) {
  ::mserve::Rollout p;
  for (const auto& a : r.arms) {
    auto* arm = p.add_arm();
    arm->set_label(a.label);
    arm->set_weight(a.weight);
  }
  p.set_sticky_header(r.sticky_header);
  if (!r.shadow.label.empty()) {
    auto* s = p.mutable_shadow();
    s->set_label(r.shadow.label);
    s->set_percent(r.shadow.percent);
    s->set_queue(r.shadow.queue);
  }
  if (r.guard.enabled) {
    const auto& g = r.guard;
    auto* o = p.mutable_guard();
    o->set_window_seconds(g.window_seconds);
    o->set_min_requests(g.min_requests);
    o->set_max_error_rate_increase(g.max_error_rate_increase);
    o->set_max_p99_ratio(g.max_p99_ratio);
    o->set_p99_slack_ms(g.p99_slack_ms);
    o->set_step_percent(g.step_percent);
    o->set_step_interval_seconds(g.step_interval_seconds);
    o->set_max_percent(g.max_percent);
  }
  return p;
}

StatusOr<MonitoringConfig> monitoring_from_proto(const ::mserve::Monitoring& p, const std::string& model) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("model config: model '" + model + "': monitoring: " + why);
  };
  MonitoringConfig m;
  if (!std::isfinite(p.drift_threshold()) || p.drift_threshold() < 0) return bad("drift_threshold must be >= 0");
  if (!std::isfinite(p.window_seconds()) || p.window_seconds() < 0) return bad("window_seconds must be >= 0");
  if (!std::isfinite(p.payload_sample_percent()) || p.payload_sample_percent() > 100)
    return bad("payload_sample_percent must be at most 100");
  if (p.drift_threshold() > 0) m.drift_threshold = p.drift_threshold();
  if (p.window_seconds() > 0) m.window_seconds = p.window_seconds();
  if (p.min_rows()) m.min_rows = p.min_rows();
  m.payload_sample_percent = p.payload_sample_percent() == 0 ? -1 : std::max(-1.0, p.payload_sample_percent());
  m.forbid_payload_logging = p.forbid_payload_logging();
  return m;
}

::mserve::Monitoring monitoring_to_proto(const MonitoringConfig& m) {
  ::mserve::Monitoring p;
  p.set_drift_threshold(m.drift_threshold);
  p.set_window_seconds(m.window_seconds);
  p.set_min_rows(m.min_rows);
  p.set_payload_sample_percent(m.payload_sample_percent);
  p.set_forbid_payload_logging(m.forbid_payload_logging);
  return p;
}

StatusOr<std::vector<ModelConfig>> from_proto(const pb::ModelServerConfig& msg) {
  if (!msg.has_model_config_list()) return InvalidArgument("the model config has no model_config_list");
  std::vector<ModelConfig> out;
  std::set<std::string> names;
  for (const pb::ModelConfig& c : msg.model_config_list().config()) {
    ModelConfig m;
    m.name = c.name();
    m.base_path = c.base_path();
    m.platform = c.model_platform();
    if (m.name.empty()) return InvalidArgument("model config: a model has no name");
    if (m.base_path.empty()) return InvalidArgument("model config: model '" + m.name + "' has no base_path");
    if (!names.insert(m.name).second) return InvalidArgument("model config: model name '" + m.name + "' appears twice");
    if (c.has_model_version_policy()) {
      const auto& p = c.model_version_policy();
      if (p.has_all()) {
        m.policy.kind = VersionPolicy::Kind::kAll;
      } else if (p.has_specific()) {
        m.policy.kind = VersionPolicy::Kind::kSpecific;
        m.policy.versions.assign(p.specific().versions().begin(), p.specific().versions().end());
        if (m.policy.versions.empty())
          return InvalidArgument("model config: model '" + m.name + "': specific version policy lists no versions");
      } else if (p.has_latest()) {
        m.policy.num_versions = p.latest().num_versions() == 0 ? 1 : static_cast<int>(p.latest().num_versions());
      }
    }
    for (const auto& [label, version] : c.version_labels()) m.labels[label] = version;
    if (c.has_rollout()) {
      MS_ASSIGN_OR_RETURN(m.rollout, rollout_from_proto(c.rollout(), m.name, m.labels));
    }
    if (c.has_monitoring()) {
      MS_ASSIGN_OR_RETURN(m.monitoring, monitoring_from_proto(c.monitoring(), m.name));
    }
    out.push_back(std::move(m));
  }
  return out;
}

pb::ModelServerConfig to_proto(const std::vector<ModelConfig>& models) {
  pb::ModelServerConfig msg;
  auto* list = msg.mutable_model_config_list();
  for (const ModelConfig& m : models) {
    pb::ModelConfig* c = list->add_config();
    c->set_name(m.name);
    c->set_base_path(m.base_path);
    c->set_model_platform(m.platform.empty() ? "onnx" : m.platform);
    auto* p = c->mutable_model_version_policy();
    switch (m.policy.kind) {
      case VersionPolicy::Kind::kLatest: p->mutable_latest()->set_num_versions(m.policy.num_versions); break;
      case VersionPolicy::Kind::kAll: p->mutable_all(); break;
      case VersionPolicy::Kind::kSpecific:
        for (int64_t v : m.policy.versions) p->mutable_specific()->add_versions(v);
        break;
    }
    for (const auto& [label, version] : m.labels) (*c->mutable_version_labels())[label] = version;
    if (m.rollout) *c->mutable_rollout() = rollout_to_proto(*m.rollout);
    if (!(m.monitoring == MonitoringConfig{})) *c->mutable_monitoring() = monitoring_to_proto(m.monitoring);
  }
  return msg;
}

}  // namespace

StatusOr<std::vector<ModelConfig>> parse_model_config(const std::string& text) {
  pb::ModelServerConfig msg;
  MS_RETURN_IF_ERROR(parse_text(text, &msg, "model config"));
  return from_proto(msg);
}

StatusOr<std::vector<ModelConfig>> parse_model_config_binary(const std::string& bytes) {
  pb::ModelServerConfig msg;
  if (!msg.ParseFromString(bytes)) return InvalidArgument("the model config is not a valid ModelServerConfig message");
  return from_proto(msg);
}

std::string model_config_text(const std::vector<ModelConfig>& models) {
  std::string out;
  google::protobuf::TextFormat::PrintToString(to_proto(models), &out);
  return out;
}

std::string model_config_binary(const std::vector<ModelConfig>& models) { return to_proto(models).SerializeAsString(); }

StatusOr<RolloutConfig> parse_rollout(const std::string& text, const std::string& model,
                                      const std::map<std::string, int64_t>& labels) {
  ::mserve::Rollout msg;
  MS_RETURN_IF_ERROR(parse_text(text, &msg, ("rollout of model '" + model + "'").c_str()));
  return rollout_from_proto(msg, model, labels);
}

StatusOr<BatchingOptions> parse_batching_parameters(const std::string& text) {
  pb::BatchingParameters msg;
  MS_RETURN_IF_ERROR(parse_text(text, &msg, "batching parameters"));
  BatchingOptions o;
  if (msg.has_max_batch_size()) o.max_batch_size = msg.max_batch_size().value();
  if (msg.has_batch_timeout_micros()) o.batch_timeout_micros = msg.batch_timeout_micros().value();
  if (msg.has_max_enqueued_batches()) o.max_enqueued_batches = msg.max_enqueued_batches().value();
  if (msg.has_num_batch_threads()) o.num_batch_threads = msg.num_batch_threads().value();
  o.allowed_batch_sizes.assign(msg.allowed_batch_sizes().begin(), msg.allowed_batch_sizes().end());
  o.pad_variable_length_inputs = msg.pad_variable_length_inputs();
  MS_RETURN_IF_ERROR(o.validate());
  return o;
}

StatusOr<std::string> read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return InvalidArgument("cannot read '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace mserve::server
