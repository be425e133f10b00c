// Metrics: counters and histograms for the Prometheus text endpoint.
// Thread-safety: every method may be called from any thread (one mutex; updates are a few map
// operations, far below a request's cost).
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "server/http/http.h"

namespace mserve::server {

class ModelManager;

// Where a predict request's time went, in seconds: reading its inputs from the body (parse and
// convert), running the model (with the batching queue's wait when batching is on), and writing
// the answer's body. 0 for stages a request did not reach.
struct Stages {
  double decode = 0, run = 0, encode = 0;
  // The stages of a request that started at `start`, had its inputs decoded at `decoded`, its
  // outputs at `ran` and ended at `end`; a default time point is a stage not reached. nullopt
  // when the inputs were never decoded.
  using Time = std::chrono::steady_clock::time_point;
  static std::optional<Stages> of(Time start, Time decoded, Time ran, Time end);
};

// A Prometheus histogram: counts per bucket (not cumulative), their total and sum.
struct Histogram {
  std::vector<uint64_t> counts;  // one per bucket bound
  uint64_t count = 0;
  double sum = 0;
  void observe(const std::vector<double>& bounds, double v);
};
// The bucket bounds (seconds) of every latency histogram.
const std::vector<double>& latency_bounds();
// Appends a histogram's _bucket (cumulative), _sum and _count lines; `labels` without braces.
void write_histogram(std::string* o, const std::string& name, const std::string& labels, const Histogram& h,
                     const std::vector<double>& bounds);
// A label value escaped (backslash, quote, newline), and a number, as the exposition format wants.
std::string prometheus_escape(const std::string& s);
std::string prometheus_number(double v);

class Metrics {
 public:
  // One finished request: model ("" when none was resolved), version (0 when none), the API
  // ("tfs_predict", "v2_infer", ...), the HTTP status, the latency and, for predicts, its stages.
  void request(const std::string& model, int64_t version, const std::string& api, int status, double seconds,
               const Stages* stages = nullptr);
  void batch(const std::string& model, size_t rows);
  void nonfinite_outputs(const std::string& model, int64_t version, int64_t count);
  void nonfinite_inputs(const std::string& model, int64_t version, int64_t count);
  // Drops the series of a version (-1: every version of the model) that is no longer served.
  void forget(const std::string& model, int64_t version);
  // Prometheus text exposition format 0.0.4, with live gauges (model state, queue depth) and the
  // HTTP front end's reading and writing time (`io`, exported beside the stages).
  std::string prometheus(const ModelManager& manager, const HttpServer::Io& io) const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, int64_t, std::string, int>, uint64_t> requests_;
  std::map<std::tuple<std::string, int64_t, std::string>, Histogram> latency_;
  struct StageSums {
    uint64_t count = 0;
    Stages sum;
  };
  std::map<std::tuple<std::string, int64_t, std::string>, StageSums> stages_;
  std::map<std::string, Histogram> batch_;
  std::map<std::pair<std::string, int64_t>, uint64_t> nonfinite_, nonfinite_in_;
};

}  // namespace mserve::server
