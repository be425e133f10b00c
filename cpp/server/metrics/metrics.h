// Metrics: counters and histograms for the Prometheus text endpoint.
// Thread-safety: every method may be called from any thread (one mutex; updates are a few map
// operations, far below a request's cost).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace mserve::server {

class ModelManager;

class Metrics {
 public:
  // One finished request: model ("" when none was resolved), version (0 when none), the API
  // ("tfs_predict", "v2_infer", ...), the HTTP status and the latency.
  void request(const std::string& model, int64_t version, const std::string& api, int status, double seconds);
  void batch(const std::string& model, size_t rows);
  void nonfinite_outputs(const std::string& model, int64_t version, int64_t count);
  // Drops the series of a version (-1: every version of the model) that is no longer served.
  void forget(const std::string& model, int64_t version);
  // Prometheus text exposition format 0.0.4, with live gauges (model state, queue depth).
  std::string prometheus(const ModelManager& manager) const;

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // one per bucket bound, cumulative on output
    uint64_t count = 0;
    double sum = 0;
  };
  static void observe(Histogram& h, const std::vector<double>& bounds, double v);
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, int64_t, std::string, int>, uint64_t> requests_;
  std::map<std::tuple<std::string, int64_t, std::string>, Histogram> latency_;
  std::map<std::string, Histogram> batch_;
  std::map<std::pair<std::string, int64_t>, uint64_t> nonfinite_;
};

}  // namespace mserve::server
