// Drift monitoring: a version's reference profile (mserve.profile.json in its folder, written by
// `mserve profile`) and the live statistics of what the version is asked and answers, compared
// with it.
//
// A profile is a list of features. Each reads one value per row of one input or output tensor:
//   "column"  element `index` of the row (a [batch] tensor has one, index 0);
//   "channel" the mean of channel `index` along `axis` over the row's other positions, from at
//             most kChannelSamples of them taken at an even stride (images are summarized per
//             channel, not per pixel);
//   "argmax"  the row's argmax (a classifier's [batch, classes] scores: the class).
// and bins it: "numeric" features by their reference quantile `edges` (bin i holds
// edges[i-1] <= v < edges[i]), "categorical" ones by their reference `values` (strings, or
// integers) plus one bin for everything else. The reference share of each bin is `fractions`.
//
// DriftMonitor keeps, per feature, the bin counts of a sliding window (ten time slices) and
// lifetime counters of values outside the reference range (numeric: below min or above max;
// categorical: unseen values) and NaN; PSI and a binned KS statistic per feature compare the
// window with the reference:
//   PSI = sum_i (p_i - q_i) ln(p_i / q_i),   KS = max_i |P_i - Q_i|   (numeric features only)
// with p the window's shares, q the reference's, both floored at kShareFloor, and P, Q their
// running sums. The version is "drifting" while the window holds at least min_rows rows and some
// feature's PSI exceeds the threshold; each change of the flag is an event (log, audit log).
//
// Cost: O(features) per row (a binary search over the edges; channels: at most kChannelSamples
// reads) with no lock held, then one increment per value under the monitor's mutex; no allocation
// (a thread's scratch grows to its largest request once). The statistics are computed at most once
// a second on the request path, and at each scrape.
//
// Thread-safety: every method may be called from any thread.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/exec/session.h"
#include "server/repository/config.h"

namespace mserve::server {

struct ProfileFeature {
  enum class Select { kColumn, kChannel, kArgmax };
  enum class Kind { kNumeric, kCategorical };
  std::string name;    // shown in metrics ("x[3]", "image[c=0]", "class")
  std::string tensor;  // the input or output it reads
  bool output = false;
  size_t tensor_index = 0;  // position in the signature's inputs or outputs
  Select select = Select::kColumn;
  int axis = 0;       // kChannel: the channel axis (1..rank-1)
  int64_t index = 0;  // kColumn: the element; kChannel: the channel
  Kind kind = Kind::kNumeric;
  std::vector<double> edges;         // kNumeric: ascending, bins = edges + 1
  std::vector<std::string> strings;  // kCategorical over a string tensor
  std::vector<int64_t> integers;     // kCategorical otherwise (argmax classes, integer codes)
  std::vector<double> fractions;     // reference share per bin (categorical: values, then other)
  double min = 0, max = 0;           // kNumeric: the reference range
  double nan = 0;                    // reference share of NaN
  size_t bins() const { return fractions.size(); }
};

struct Profile {
  int64_t rows = 0;  // reference rows it was made from
  std::vector<ProfileFeature> features;
};

// The profile file's name in a version folder.
inline constexpr const char* kProfileFile = "mserve.profile.json";
// Parses a profile (JSON) and checks it against the version's signature: every feature names one
// of its inputs or outputs of a type that fits the selector and kind. InvalidArgument naming the
// feature and what is wrong.
StatusOr<Profile> parse_profile(const std::string& json, const Signature& sig);

// Population stability index and binned KS of `window` counts against reference `fractions`.
double psi(const std::vector<double>& fractions, const uint64_t* counts);
double binned_ks(const std::vector<double>& fractions, const uint64_t* counts);
inline constexpr double kShareFloor = 1e-4;
inline constexpr int kChannelSamples = 256;

struct DriftEvent {
  std::string model;
  int64_t version = 0;
  bool drifting = false;
  std::string detail;  // the features over the threshold, with their PSI
};

class DriftMonitor {
 public:
  using Now = std::function<double()>;  // seconds on a steady clock; default: steady_clock
  using OnEvent = std::function<void(const DriftEvent&)>;
  DriftMonitor(std::string model, int64_t version, Profile profile, MonitoringConfig config, Now now = nullptr,
               OnEvent on_event = nullptr);
  // The model config changed: thresholds apply from now; a new window length starts empty.
  void configure(const MonitoringConfig& config);

  // One request's inputs (before the run) or outputs (after it), in signature order. A change of
  // the drifting flag (judged at most once a second here) is reported to `on_event`.
  void observe(const std::vector<Tensor>& tensors, bool outputs);

  struct FeatureStats {
    std::string name;
    bool output = false, numeric = true;
    uint64_t rows = 0;  // in the window
    double psi = 0, ks = 0;
    uint64_t out_of_range = 0, nan = 0;
    std::vector<std::pair<std::string, double>> shares;  // categorical: value -> window share
  };
  struct Stats {
    uint64_t rows = 0;  // rows in the window (the most any feature saw)
    bool drifting = false;
    double threshold = 0;
    uint32_t min_rows = 0;
    std::vector<FeatureStats> features;
  };
  // The statistics now (the flag judged afresh).
  Stats stats() const;
  const std::string& model() const { return model_; }
  int64_t version() const { return version_; }
  const Profile& profile() const { return profile_; }

 private:
  static constexpr int kSlices = 10;
  struct Slice {
    int64_t index = -1;
    std::vector<uint64_t> counts;  // every feature's bins, at offset_[f]
    std::vector<uint64_t> rows;    // per feature
  };
  // mu_ held for all of these.
  Slice& slice(double now);
  void sum_window(double now);                              // into window_, window_rows_
  std::optional<DriftEvent> judge(double now, bool force);  // the flag, from the window

  const std::string model_;
  const int64_t version_;
  const Profile profile_;
  const Now now_;
  const OnEvent on_event_;
  mutable std::mutex mu_;
  MonitoringConfig config_;
  std::vector<size_t> offset_;  // first bin of each feature in a slice's counts
  std::array<Slice, kSlices> slices_;
  std::vector<uint64_t> window_, window_rows_;  // scratch: the window's sums
  std::vector<uint64_t> out_of_range_, nan_;
  double next_judge_ = 0;
  bool drifting_ = false;
};

// The Prometheus series of every monitor (families grouped), appended to `o`.
void write_drift_metrics(const std::vector<std::shared_ptr<DriftMonitor>>& monitors, std::string* o);
// ,"monitoring":[{"version":"3","drifting":false,...}] for a model's status (nothing when none).
void write_drift_status(const std::vector<std::shared_ptr<DriftMonitor>>& monitors, std::string* o);

}  // namespace mserve::server
