// Rollouts: a model's requests that name neither a version nor a label are split between version
// labels by weight (canary / A-B), sticky per user when a header or the identity names one; a
// share of them is mirrored to a candidate label after the answer (shadow.h); a guard compares
// each canary with the baseline over a sliding window and sets a failing canary's weight to 0,
// and may step a healthy canary's share up. The split is configured per model (RolloutConfig,
// config.h) and replaced when the config changes; a model's state survives a reload that leaves
// its rollout block as it was.
//
// The request path: Rollouts::pick() returns a Ticket (one model lookup, one hash or random draw,
// no allocation); the front end answers from the servable of the ticket's label and calls
// Ticket::finish() with the outcome (atomic increments). No lock on the request path; a server
// without rollouts costs one atomic load.
//
// Thread-safety: every method may be called from any thread.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor/tensor.h"
#include "server/metrics/metrics.h"
#include "server/repository/config.h"

namespace mserve::server {

class ShadowRunner;
class ModelManager;

// Requests, errors and a latency histogram over a sliding window of `kSlices` time slices.
// add() is lock-free (relaxed atomic increments; a slice is cleared under a lock when time moves
// into it), so concurrent requests never wait on each other; summary() reads what is there.
class ArmWindow {
 public:
  static constexpr int kSlices = 10;
  // Latency bins: four per octave from 1 µs (bin 0: below 1 µs; the last: everything above).
  static constexpr int kBins = 112;
  explicit ArmWindow(double window_seconds = 60) : slice_seconds_(window_seconds / kSlices) {}
  ArmWindow(const ArmWindow&) = delete;
  ArmWindow& operator=(const ArmWindow&) = delete;
  void add(double now, bool ok, double seconds);
  struct Summary {
    uint64_t requests = 0, errors = 0;
    double p99 = 0;  // seconds (the upper edge of the bin that holds the 99th percentile)
    double error_rate() const { return requests ? static_cast<double>(errors) / requests : 0; }
  };
  Summary summary(double now) const;  // the slices within the window ending at `now`

 private:
  struct Slice {
    std::atomic<int64_t> index{-1};  // floor(time / slice_seconds); -1: empty
    std::atomic<uint64_t> requests{0}, errors{0};
    std::array<std::atomic<uint32_t>, kBins> bins{};
  };
  Slice& slice(double now);
  double slice_seconds_;
  std::array<Slice, kSlices> slices_;
  std::mutex rotate_mu_;  // one thread clears a slice time moves into
};

// Something the guard did, for the log, the audit log and the metrics.
struct RolloutEvent {
  std::string model, arm, kind;  // kind: "rollback" or "step"
  int64_t version = 0;
  std::string detail;
};

// One model's split, shadow and guard.
class RolloutModel {
 public:
  using Now = std::function<double()>;  // seconds on a steady clock
  RolloutModel(std::string model, RolloutConfig config, Now now);
  const std::string& model() const { return model_; }
  const RolloutConfig& config() const { return config_; }

  // The arm for a request with sticky key `key` ("" : at random); -1 when there are no arms.
  int pick(std::string_view key) const;
  // Whether this request is also sent to the shadow (drawn at random).
  bool draw_shadow() const;
  // A request answered by arm `arm`: its outcome and latency. Returns what the guard did, if
  // anything (evaluated at most every window / 50 or 0.1 s).
  std::vector<RolloutEvent> record(int arm, int64_t version, bool ok, double seconds);
  // A request for arm `arm` was answered by the baseline (its label had no available version).
  void fallback(int arm);
  // Runs the guard now (record() calls it when due).
  std::vector<RolloutEvent> evaluate();

  // The current weights in percent (sum 100), in arm order.
  std::vector<double> weights() const;

  // Shadow outcomes (shadow.h reports them here).
  enum ShadowOutcome { kCompared, kDropped, kFailed, kUnavailable, kMismatched, kShadowOutcomes };
  void shadow_outcome(ShadowOutcome outcome);
  // A compared shadow request: the largest |shadow - answer| over its outputs, and of its rows
  // (classifier outputs [rows, classes]) how many have the same argmax.
  void shadow_compared(double max_abs_diff, uint64_t argmax_rows, uint64_t argmax_agree);
  std::atomic<uint32_t>& shadow_queued() { return shadow_queued_; }

  // Everything the status endpoint and the metrics show, copied at once.
  struct ArmSnapshot {
    std::string label;
    double weight = 0, configured = 0;  // percent
    uint64_t ok = 0, errors = 0, fallbacks = 0, rollbacks = 0;
    std::string rolled_back;
    int64_t version = 0;
    Histogram latency;
    ArmWindow::Summary window;
  };
  struct Snapshot {
    std::vector<ArmSnapshot> arms;
    std::array<uint64_t, kShadowOutcomes> shadow{};
    uint32_t shadow_queued = 0;
    Histogram shadow_diff;
    uint64_t argmax_rows = 0, argmax_agree = 0;
  };
  Snapshot snapshot() const;

 private:
  void set_bounds();  // mu_ held: the split's thresholds from weight_
  std::vector<RolloutEvent> evaluate_locked(double now);
  // What each answer updates: atomics, no lock (latency_ns: the latency histogram's sum).
  struct ArmState {
    explicit ArmState(double window_seconds) : window(window_seconds) {}
    ArmWindow window;
    std::array<std::atomic<uint64_t>, 17> latency{};  // latency_bounds() buckets, then +Inf
    std::atomic<uint64_t> latency_ns{0}, ok{0}, errors{0}, fallbacks{0};
    std::atomic<int64_t> version{0};  // the version that last answered
    uint64_t rollbacks = 0;           // mu_
    std::string rolled_back;          // mu_: why, "" while healthy
  };
  const std::string model_;
  const RolloutConfig config_;
  const Now now_;
  const uint64_t seed_;  // the model's name hashed: keys land differently per model
  mutable std::mutex mu_;
  std::vector<double> weight_;  // percent
  std::vector<std::unique_ptr<ArmState>> arms_;
  std::atomic<double> next_eval_{0};
  double next_step_ = 0;  // mu_
  // The split: arm i takes draws in [upto_[i-1], upto_[i]) of 2^64; canaries first, baseline last.
  std::array<std::atomic<uint64_t>, RolloutConfig::kMaxArms> upto_{};
  std::vector<int> order_;  // arms in split order
  // Shadow outcomes.
  std::atomic<uint32_t> shadow_queued_{0};  // ShadowRunner's count of this model's queued requests
  std::array<uint64_t, kShadowOutcomes> shadow_counts_{};
  Histogram shadow_diff_;
  uint64_t argmax_rows_ = 0, argmax_agree_ = 0;
};

class Rollouts {
 public:
  struct Options {
    ModelManager* manager = nullptr;                    // for the shadow's servables
    std::function<void(const RolloutEvent&)> on_event;  // log and audit; may be empty
    std::function<void(const std::string&)> log;        // may be empty
    RolloutModel::Now now;                              // default: steady_clock
  };
  explicit Rollouts(Options opts);
  ~Rollouts();  // stops the shadow runner (queued shadow requests are dropped)

  // The rollouts of `models` replace the current ones; a model whose block is unchanged keeps its
  // state (weights after a rollback or steps, windows, counters).
  void configure(const std::vector<ModelConfig>& models);

  // What a split request carries from pick() to its answer.
  class Ticket {
   public:
    explicit operator bool() const { return model_ != nullptr; }
    // The label of the arm the split chose; null when the rollout has no arms (shadow only).
    const std::string* label() const;
    int arm() const { return arm_; }
    bool shadow() const { return shadow_; }
    // The request's outcome: recorded in the arm's window and metrics; guard events reported.
    void finish(int64_t version, bool ok, double seconds) const;

   private:
    friend class Rollouts;
    std::shared_ptr<RolloutModel> model_;
    const Rollouts* owner_ = nullptr;
    int arm_ = -1;
    bool shadow_ = false;
  };
  // The ticket for a request to `model` that names no version or label; empty when the model has
  // no rollout. `header(name)` reads a request header (gRPC: metadata); `identity` is the
  // authenticated identity.
  Ticket pick(const std::string& model, const std::function<std::string_view(std::string_view)>& header,
              std::string_view identity) const;
  // The ticket's arm could not be served: it is answered by the baseline arm instead.
  Ticket fall_back(const Ticket& t) const;
  // A request the ticket picked for the shadow: first a place in the model's shadow queue (false:
  // full; dropped and counted), then either shadow() with the request's inputs and answer (both
  // owning their memory) or release(). Never blocks.
  bool reserve_shadow(const Ticket& t) const;
  void shadow(const Ticket& t, std::vector<Tensor> inputs, std::vector<Tensor> answer) const;
  void release_shadow(const Ticket& t) const;

  // ,"rollout":{...} for the status of `model` (nothing when it has none); `labels` maps its labels
  // to versions.
  void status_json(const std::string& model, const std::map<std::string, int64_t>& labels, std::string* o) const;
  // Every rollout's series, Prometheus text.
  void prometheus(std::string* o) const;

 private:
  using Map = std::map<std::string, std::shared_ptr<RolloutModel>>;
  std::shared_ptr<RolloutModel> find(const std::string& model) const;
  void report(const std::vector<RolloutEvent>& events) const;
  Options opts_;
  // The request path reads the current map with one atomic load, no lock: every map configure()
  // made stays alive until the Rollouts goes (a few per config change).
  std::atomic<const Map*> current_{nullptr};
  mutable std::mutex mu_;  // configure() and the status / metrics readers
  std::vector<std::unique_ptr<const Map>> generations_;
  std::unique_ptr<ShadowRunner> shadow_;  // started with the first shadow (under mu_), never replaced
  std::atomic<bool> has_shadow_{false};   // shadow_ is set
};

}  // namespace mserve::server
