#include "server/repository/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

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

namespace {

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
