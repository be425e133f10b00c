// Serving configuration: which models to serve from where, which versions, and how to batch.
// Plain structs (no protobuf types); config.cc parses TensorFlow Serving's text formats into them.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/device/device.h"
#include "core/status.h"

namespace mserve::server {

struct VersionPolicy {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  int num_versions = 1;           // kLatest
  std::vector<int64_t> versions;  // kSpecific
};

// TensorFlow Serving's BatchingParameters, with its defaults.
struct BatchingOptions {
  int64_t max_batch_size = 1000;
  int64_t batch_timeout_micros = 0;
  int64_t max_enqueued_batches = 100;
  int64_t num_batch_threads = 0;             // <= 0: the machine's cores
  std::vector<int64_t> allowed_batch_sizes;  // ascending; the last equals max_batch_size
  bool pad_variable_length_inputs = false;
  Status validate() const;
};

// How requests that name neither a version nor a label are split between version labels, shadowed
// and guarded (mserve's `rollout` block, mserve_apis/rollout.proto, which documents each field).
struct RolloutConfig {
  struct Arm {
    std::string label;
    double weight = 0;
  };
  std::vector<Arm> arms;      // arms[0] is the baseline
  std::string sticky_header;  // lower case; "identity": the authenticated identity
  struct Shadow {
    std::string label;  // "": no shadow
    double percent = 0;
    uint32_t queue = 64;
  } shadow;
  struct Guard {
    bool enabled = false;  // the config has a guard block
    double window_seconds = 60;
    uint32_t min_requests = 100;
    double max_error_rate_increase = 0.01;
    double max_p99_ratio = 2;
    double p99_slack_ms = 1;
    double step_percent = 0;
    double step_interval_seconds = 0;
    double max_percent = 100;
  } guard;
  static constexpr size_t kMaxArms = 8;
  bool operator==(const RolloutConfig& o) const;
};

// How a model's versions are watched against their reference profiles, and whether its payloads
// may be logged (mserve's `monitoring` block, mserve_apis/monitoring.proto).
struct MonitoringConfig {
  double drift_threshold = 0.25;
  double window_seconds = 300;
  uint32_t min_rows = 200;
  double payload_sample_percent = -1;  // < 0: the server's
  bool forbid_payload_logging = false;
  bool operator==(const MonitoringConfig& o) const {
    return drift_threshold == o.drift_threshold && window_seconds == o.window_seconds && min_rows == o.min_rows &&
           payload_sample_percent == o.payload_sample_percent && forbid_payload_logging == o.forbid_payload_logging;
  }
};

struct ModelConfig {
  std::string name;
  std::string base_path;  // a folder of numbered versions, or a single .onnx file
  std::string platform;   // accepted for compatibility ("onnx", "tensorflow", ...)
  VersionPolicy policy;
  std::map<std::string, int64_t> labels;
  std::optional<BatchingOptions> batching;  // per model; unset: the server's default
  // The device the model's versions run on besides the CPU (null: the CPU only), per model;
  // unset: the server's (ManagerOptions::session.backend). Not in TensorFlow Serving's config files.
  std::optional<std::shared_ptr<const Backend>> backend;
  std::optional<RolloutConfig> rollout;
  MonitoringConfig monitoring;
};

// Parses a model_config_list text file (TensorFlow Serving's ModelServerConfig text format).
StatusOr<std::vector<ModelConfig>> parse_model_config(const std::string& text);
// The same from a serialized ModelServerConfig message (gRPC HandleReloadConfigRequest).
StatusOr<std::vector<ModelConfig>> parse_model_config_binary(const std::string& bytes);
// `models` back as a ModelServerConfig, in the text format (a --model_config_file that
// parse_model_config reads back to the same list) or serialized. Per-model batching options and
// devices have no field there and are left out; rollouts are kept.
std::string model_config_text(const std::vector<ModelConfig>& models);
std::string model_config_binary(const std::vector<ModelConfig>& models);
// The rollout block of `model` alone, in the text format (`arm { label: "stable" weight: 90 } ...`),
// checked against the model's version labels.
StatusOr<RolloutConfig> parse_rollout(const std::string& text, const std::string& model,
                                      const std::map<std::string, int64_t>& labels);
// Parses a batching parameters text file (TensorFlow Serving's BatchingParameters).
StatusOr<BatchingOptions> parse_batching_parameters(const std::string& text);

// Reads a whole file; InvalidArgument with the path when it cannot.
StatusOr<std::string> read_text_file(const std::string& path);

}  // namespace mserve::server
