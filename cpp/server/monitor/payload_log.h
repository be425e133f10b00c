// PayloadLog: a sample of requests and their responses, written as JSON lines to a rotating file
// (LineLog) and/or posted as KServe-format CloudEvents to a URL, for offline drift analysis
// (`mserve drift-report`) and audits of what the models were asked.
//
// Off by default. A request is sampled at its model's rate (the model config's
// monitoring.payload_sample_percent, else the server's sample_percent); never for a model whose
// config sets forbid_payload_logging. A sampled request's inputs are encoded before the run (they
// may be views of the request's body), its outputs after the answer; both are queued for the
// sinks' own threads, so a slow, failing or blocked sink never delays or fails a request: what
// does not fit the queue is dropped and counted.
//
// A record (file line, or CloudEvent body) is KServe v2 JSON:
//   {"time": "...Z", "id": "<request id>", "type": "request" | "response", "model_name": "m",
//    "model_version": "3", "inputs" | "outputs": [{"name", "datatype", "shape", "data"}, ...]}
// CloudEvents (binary mode, HTTP POST): Ce-Specversion 1.0, Ce-Id the request id, Ce-Type
// org.kubeflow.serving.inference.request / .response, Ce-Source mserve/<model>, Ce-Time,
// Ce-Inferenceservicename the model, Content-Type application/json.
//
// Thread-safety: every method may be called from any thread.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/exec/session.h"
#include "server/logs/line_log.h"
#include "server/repository/config.h"

namespace mserve::server {

struct PayloadLogOptions {
  LineLogOptions file = [] {  // file.path "": no file
    LineLogOptions o;
    o.what = "the payload log";
    o.max_queued = 10000;
    return o;
  }();
  std::string url;             // http(s)://host[:port]/path for CloudEvents; "": none
  int post_timeout_ms = 2000;  // per POST (connect, write, answer)
  size_t max_posts = 10000;    // CloudEvents waiting; more are dropped and counted
  double sample_percent = 0;   // of every model's requests, unless its config says otherwise
};

class PayloadLog {
 public:
  // Null when neither a path nor a URL is set; InvalidArgument for a file that cannot be opened or
  // a URL that is not http(s)://host[:port][/path].
  static StatusOr<std::unique_ptr<PayloadLog>> open(const PayloadLogOptions& opts);
  ~PayloadLog();  // the file's queue is written; posts still queued are dropped

  // The models' sampling rates and prohibitions (their monitoring blocks).
  void configure(const std::vector<ModelConfig>& models);
  // Whether this request to `model` is sampled (a random draw at the model's rate).
  bool sample(const std::string& model) const;
  // A sampled request's inputs (before the run) and outputs (after it), in signature order.
  void record(std::string_view id, const std::string& model, int64_t version, const Signature& sig,
              const std::vector<Tensor>& tensors, bool outputs);

  struct Counts {
    int64_t sampled = 0, written = 0, dropped = 0, failed = 0;
  };
  Counts file_counts() const;
  Counts url_counts() const;
  // mserve_payload_records_total{sink,outcome} and mserve_payload_sampled_total, appended.
  void prometheus(std::string* o) const;

  struct Poster;  // the URL sink

 private:
  PayloadLog() = default;
  PayloadLogOptions opts_;
  std::unique_ptr<LineLog> file_;
  std::unique_ptr<Poster> poster_;
  mutable std::mutex mu_;
  struct Rule {
    double percent = -1;  // < 0: the server's
    bool forbidden = false;
  };
  std::map<std::string, Rule> rules_;
  mutable std::atomic<int64_t> sampled_{0};
};

}  // namespace mserve::server
