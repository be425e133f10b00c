#include "server/monitor/drift.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "server/codec/json.h"
#include "server/metrics/metrics.h"

namespace mserve::server {
namespace {

constexpr size_t kMaxFeatures = 4096, kMaxBins = 4096;

bool floating(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16 || t == DType::kBFloat16;
}

// One feature from its JSON object.
StatusOr<ProfileFeature> feature_of(simdjson::dom::object o, const Signature& sig, size_t k) {
  ProfileFeature f;
  std::string where = "feature " + std::to_string(k);
  auto bad = [&](const std::string& why) { return InvalidArgument("profile: " + where + ": " + why); };
  auto str = [&](const char* key, std::string* out, bool required) -> Status {
    std::string_view v;
    auto e = o[key];
    if (e.error() == simdjson::NO_SUCH_FIELD && !required) return Status::OK();
    if (e.get(v)) return bad(std::string("\"") + key + "\" must be a string");
    *out = std::string(v);
    return Status::OK();
  };
  auto num = [&](const char* key, double* out) -> Status {
    auto e = o[key];
    if (e.error() == simdjson::NO_SUCH_FIELD) return Status::OK();
    double d;
    int64_t i;
    if (!e.get(d))
      *out = d;
    else if (!e.get(i))
      *out = static_cast<double>(i);
    else
      return bad(std::string("\"") + key + "\" must be a number");
    return Status::OK();
  };
  auto list = [&](const char* key, std::vector<double>* out) -> Status {
    simdjson::dom::array a;
    if (o[key].get(a)) return bad(std::string("\"") + key + "\" must be a list of numbers");
    for (auto v : a) {
      double d;
      int64_t i;
      if (!v.get(d))
        out->push_back(d);
      else if (!v.get(i))
        out->push_back(static_cast<double>(i));
      else
        return bad(std::string("\"") + key + "\" must be a list of numbers");
    }
    return Status::OK();
  };
  std::string io = "input", select = "column", kind = "numeric";
  MS_RETURN_IF_ERROR(str("name", &f.name, true));
  where = "feature '" + f.name + "'";
  MS_RETURN_IF_ERROR(str("tensor", &f.tensor, true));
  MS_RETURN_IF_ERROR(str("io", &io, false));
  MS_RETURN_IF_ERROR(str("select", &select, false));
  MS_RETURN_IF_ERROR(str("kind", &kind, false));
  if (io != "input" && io != "output") return bad("\"io\" is \"input\" or \"output\"");
  f.output = io == "output";
  const std::vector<Value>& specs = f.output ? sig.outputs : sig.inputs;
  f.tensor_index = position_of(specs, f.tensor);
  if (f.tensor_index == specs.size()) return bad("the model has no " + io + " '" + f.tensor + "'");
  const Value& spec = specs[f.tensor_index];
  double axis = 0, index = 0;
  MS_RETURN_IF_ERROR(num("axis", &axis));
  MS_RETURN_IF_ERROR(num("index", &index));
  if (index < 0 || index != std::floor(index) || index > 1e12) return bad("\"index\" must be a whole number >= 0");
  f.index = static_cast<int64_t>(index);
  if (select == "column") {
    f.select = ProfileFeature::Select::kColumn;
  } else if (select == "channel") {
    f.select = ProfileFeature::Select::kChannel;
    f.axis = static_cast<int>(axis);
    if (f.axis < 1 || axis != f.axis || (spec.has_shape && f.axis >= static_cast<int>(spec.dims.size())))
      return bad("\"axis\" must name a dimension of '" + f.tensor + "' after the batch");
  } else if (select == "argmax") {
    f.select = ProfileFeature::Select::kArgmax;
    if (!floating(spec.dtype)) return bad("argmax reads float scores; '" + f.tensor + "' is " + dtype_name(spec.dtype));
  } else {
    return bad("\"select\" is \"column\", \"channel\" or \"argmax\"");
  }
  MS_RETURN_IF_ERROR(list("fractions", &f.fractions));
  for (double q : f.fractions)
    if (!(q >= 0 && q <= 1)) return bad("fractions lie in 0..1");
  if (kind == "numeric") {
    f.kind = ProfileFeature::Kind::kNumeric;
    if (spec.dtype == DType::kString || f.select == ProfileFeature::Select::kArgmax)
      return bad("a numeric feature reads numbers");
    MS_RETURN_IF_ERROR(list("edges", &f.edges));
    for (size_t i = 0; i < f.edges.size(); ++i)
      if (!std::isfinite(f.edges[i]) || (i && f.edges[i] <= f.edges[i - 1]))
        return bad("edges must be finite and strictly increasing");
    if (f.fractions.size() != f.edges.size() + 1)
      return bad(std::to_string(f.edges.size()) + " edges make " + std::to_string(f.edges.size() + 1) + " bins, " +
                 std::to_string(f.fractions.size()) + " fractions given");
    MS_RETURN_IF_ERROR(num("min", &f.min));
    MS_RETURN_IF_ERROR(num("max", &f.max));
    if (!(f.min <= f.max)) return bad("min must not exceed max");
  } else if (kind == "categorical") {
    f.kind = ProfileFeature::Kind::kCategorical;
    if (f.select == ProfileFeature::Select::kChannel) return bad("a channel's mean is numeric");
    simdjson::dom::array values;
    if (o["values"].get(values)) return bad("\"values\" must be a list");
    const bool strings = spec.dtype == DType::kString && f.select == ProfileFeature::Select::kColumn;
    for (auto v : values) {
      std::string_view s;
      int64_t i;
      if (strings && !v.get(s))
        f.strings.emplace_back(s);
      else if (!strings && !v.get(i))
        f.integers.push_back(i);
      else
        return bad(std::string("\"values\" must be ") + (strings ? "strings" : "whole numbers"));
    }
    const size_t n = strings ? f.strings.size() : f.integers.size();
    if (f.fractions.size() != n + 1)
      return bad(std::to_string(n) + " values make " + std::to_string(n + 1) + " bins (the last: any other value), " +
                 std::to_string(f.fractions.size()) + " fractions given");
  } else {
    return bad("\"kind\" is \"numeric\" or \"categorical\"");
  }
  if (f.bins() > kMaxBins) return bad("more than " + std::to_string(kMaxBins) + " bins");
  MS_RETURN_IF_ERROR(num("nan", &f.nan));
  return f;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

StatusOr<Profile> parse_profile(const std::string& json, const Signature& sig) {
  simdjson::dom::parser parser;
  MS_ASSIGN_OR_RETURN(JsonElement doc, parse_json(parser, json));
  simdjson::dom::object root;
  if (doc.get(root)) return InvalidArgument("profile: not a JSON object");
  int64_t format = 0;
  if (root["mserve_profile"].get(format) || format != 1)
    return InvalidArgument("profile: \"mserve_profile\" must be 1 (the format this server reads)");
  Profile p;
  if (root["rows"].get(p.rows) != simdjson::SUCCESS) p.rows = 0;
  simdjson::dom::array features;
  if (root["features"].get(features)) return InvalidArgument("profile: \"features\" must be a list");
  for (auto e : features) {
    simdjson::dom::object o;
    if (e.get(o)) return InvalidArgument("profile: every feature is an object");
    if (p.features.size() == kMaxFeatures)
      return InvalidArgument("profile: more than " + std::to_string(kMaxFeatures) + " features");
    MS_ASSIGN_OR_RETURN(ProfileFeature f, feature_of(o, sig, p.features.size()));
    p.features.push_back(std::move(f));
  }
  return p;
}

double psi(const std::vector<double>& fractions, const uint64_t* counts) {
  uint64_t n = 0;
  for (size_t i = 0; i < fractions.size(); ++i) n += counts[i];
  if (!n) return 0;
  double s = 0;
  for (size_t i = 0; i < fractions.size(); ++i) {
    const double p = std::max(static_cast<double>(counts[i]) / static_cast<double>(n), kShareFloor);
    const double q = std::max(fractions[i], kShareFloor);
    s += (p - q) * std::log(p / q);
  }
  return s;
}

double binned_ks(const std::vector<double>& fractions, const uint64_t* counts) {
  uint64_t n = 0;
  for (size_t i = 0; i < fractions.size(); ++i) n += counts[i];
  if (!n) return 0;
  double P = 0, Q = 0, ks = 0;
  for (size_t i = 0; i < fractions.size(); ++i) {
    P += static_cast<double>(counts[i]) / static_cast<double>(n);
    Q += fractions[i];
    ks = std::max(ks, std::fabs(P - Q));
  }
  return ks;
}

DriftMonitor::DriftMonitor(std::string model, int64_t version, Profile profile, MonitoringConfig config, Now now,
                           OnEvent on_event)
    : model_(std::move(model)),
      version_(version),
      profile_(std::move(profile)),
      now_(now ? std::move(now) : Now(now_seconds)),
      on_event_(std::move(on_event)),
      config_(config) {
  size_t total = 0;
  for (const ProfileFeature& f : profile_.features) {
    offset_.push_back(total);
    total += f.bins();
  }
  for (Slice& s : slices_) {
    s.counts.assign(total, 0);
    s.rows.assign(profile_.features.size(), 0);
  }
  window_.assign(total, 0);
  window_rows_.assign(profile_.features.size(), 0);
  out_of_range_.assign(profile_.features.size(), 0);
  nan_.assign(profile_.features.size(), 0);
}

void DriftMonitor::configure(const MonitoringConfig& config) {
  std::lock_guard<std::mutex> lk(mu_);
  if (config.window_seconds != config_.window_seconds)
    for (Slice& s : slices_) s.index = -1;
  config_ = config;
  next_judge_ = 0;
}

DriftMonitor::Slice& DriftMonitor::slice(double now) {
  const auto index = static_cast<int64_t>(std::floor(now / (config_.window_seconds / kSlices)));
  Slice& s = slices_[static_cast<size_t>(((index % kSlices) + kSlices) % kSlices)];
  if (s.index != index) {
    s.index = index;
    std::fill(s.counts.begin(), s.counts.end(), 0);
    std::fill(s.rows.begin(), s.rows.end(), 0);
  }
  return s;
}

namespace {

// A value read by a feature, as the window will count it: feature << 32 | bin << 2 | flags.
constexpr uint64_t kNan = 1, kOutOfRange = 2;
uint64_t hit(size_t feature, size_t bin, uint64_t flags) {
  return static_cast<uint64_t>(feature) << 32 | static_cast<uint64_t>(bin) << 2 | flags;
}

uint64_t bin_of(const ProfileFeature& f, size_t k, double v) {
  if (std::isnan(v)) return hit(k, 0, kNan);
  if (f.kind == ProfileFeature::Kind::kNumeric) {
    size_t bin = 0;
    if (f.edges.size() <= 32) {  // a branch-free count beats a binary search's mispredictions
      for (double e : f.edges) bin += v >= e;
    } else {
      bin = static_cast<size_t>(std::upper_bound(f.edges.begin(), f.edges.end(), v) - f.edges.begin());
    }
    return hit(k, bin, v < f.min || v > f.max ? kOutOfRange : 0);
  }
  const auto i = static_cast<int64_t>(v);
  const auto bin = static_cast<size_t>(std::find(f.integers.begin(), f.integers.end(), i) - f.integers.begin());
  return hit(k, bin, bin == f.integers.size() ? kOutOfRange : 0);
}

uint64_t bin_of(const ProfileFeature& f, size_t k, const std::string& v) {
  const auto bin = static_cast<size_t>(std::find(f.strings.begin(), f.strings.end(), v) - f.strings.begin());
  return hit(k, bin, bin == f.strings.size() ? kOutOfRange : 0);
}

double element(const Tensor& t, int64_t at) {
  return t.dtype() == DType::kFloat32 ? t.data<float>()[at] : t.float_at(at);
}

}  // namespace

void DriftMonitor::observe(const std::vector<Tensor>& tensors, bool outputs) {
  // The bins are found first, with no lock held (a thread's scratch grows to its largest request
  // once); the window takes them under the lock.
  thread_local std::vector<uint64_t> scratch;
  std::vector<uint64_t>& hits = scratch;
  hits.clear();
  size_t shaped = SIZE_MAX;  // the tensor batch and per_row were computed for (features come grouped)
  int64_t batch = 0, per_row = 0;
  for (size_t k = 0; k < profile_.features.size(); ++k) {
    const ProfileFeature& f = profile_.features[k];
    if (f.output != outputs || f.tensor_index >= tensors.size()) continue;
    const Tensor& t = tensors[f.tensor_index];
    if (f.tensor_index != shaped) {
      shaped = f.tensor_index;
      const int64_t numel = t.defined() && t.on_host() ? t.numel() : 0;
      batch = t.rank() >= 1 ? t.dim(0) : 1;
      per_row = numel > 0 && batch > 0 ? numel / batch : 0;
    }
    if (per_row == 0) continue;
    switch (f.select) {
      case ProfileFeature::Select::kColumn:
        if (f.index >= per_row) break;
        for (int64_t r = 0; r < batch; ++r) {
          const int64_t at = r * per_row + f.index;
          hits.push_back(t.dtype() == DType::kString ? bin_of(f, k, t.str(at)) : bin_of(f, k, element(t, at)));
        }
        break;
      case ProfileFeature::Select::kChannel: {
        if (f.axis >= t.rank() || f.index >= t.dim(f.axis)) break;
        int64_t inner = 1, outer = 1;
        for (int d = f.axis + 1; d < t.rank(); ++d) inner *= t.dim(d);
        for (int d = 1; d < f.axis; ++d) outer *= t.dim(d);
        const int64_t channels = t.dim(f.axis), positions = inner * outer;
        const int64_t stride = std::max<int64_t>(1, positions / kChannelSamples);
        for (int64_t r = 0; r < batch; ++r) {
          double sum = 0;
          int64_t n = 0;
          for (int64_t p = 0; p < positions; p += stride, ++n)
            sum += element(t, r * per_row + (p / inner) * channels * inner + f.index * inner + p % inner);
          hits.push_back(bin_of(f, k, sum / static_cast<double>(n)));
        }
        break;
      }
      case ProfileFeature::Select::kArgmax:
        for (int64_t r = 0; r < batch; ++r) {
          int64_t best = 0;
          double top = -INFINITY;
          for (int64_t c = 0; c < per_row; ++c) {
            const double v = element(t, r * per_row + c);
            if (v > top) {
              top = v;
              best = c;
            }
          }
          hits.push_back(bin_of(f, k, static_cast<double>(best)));
        }
        break;
    }
  }
  const double now = now_();
  std::optional<DriftEvent> event;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Slice& s = slice(now);
    for (uint64_t h : hits) {
      const size_t k = h >> 32;
      if (h & kNan) {
        ++nan_[k];
        continue;
      }
      ++s.counts[offset_[k] + ((h & 0xffffffffu) >> 2)];
      ++s.rows[k];
      if (h & kOutOfRange) ++out_of_range_[k];
    }
    event = judge(now, false);
  }
  if (event && on_event_) on_event_(*event);
}

void DriftMonitor::sum_window(double now) {
  const auto index = static_cast<int64_t>(std::floor(now / (config_.window_seconds / kSlices)));
  std::fill(window_.begin(), window_.end(), 0);
  std::fill(window_rows_.begin(), window_rows_.end(), 0);
  for (const Slice& s : slices_) {
    if (s.index < 0 || s.index > index || s.index <= index - kSlices) continue;
    for (size_t i = 0; i < window_.size(); ++i) window_[i] += s.counts[i];
    for (size_t k = 0; k < window_rows_.size(); ++k) window_rows_[k] += s.rows[k];
  }
}

std::optional<DriftEvent> DriftMonitor::judge(double now, bool force) {
  if (!force && now < next_judge_) return std::nullopt;
  next_judge_ = now + 1;
  sum_window(now);
  const uint64_t rows = window_rows_.empty() ? 0 : *std::max_element(window_rows_.begin(), window_rows_.end());
  bool drifting = false;
  if (rows >= config_.min_rows)
    for (size_t k = 0; k < profile_.features.size() && !drifting; ++k)
      drifting = psi(profile_.features[k].fractions, &window_[offset_[k]]) > config_.drift_threshold;
  if (drifting == drifting_) return std::nullopt;
  drifting_ = drifting;
  DriftEvent e{model_, version_, drifting, ""};
  char b[64];
  std::snprintf(b, sizeof b, "%llu rows in the window, threshold PSI %.3g", static_cast<unsigned long long>(rows),
                config_.drift_threshold);
  e.detail = b;
  if (drifting)
    for (size_t k = 0; k < profile_.features.size(); ++k) {
      const double v = psi(profile_.features[k].fractions, &window_[offset_[k]]);
      if (v <= config_.drift_threshold) continue;
      std::snprintf(b, sizeof b, " PSI %.3g", v);
      e.detail += "; " + profile_.features[k].name + b;
    }
  return e;
}

DriftMonitor::Stats DriftMonitor::stats() const {
  const double now = now_();
  std::optional<DriftEvent> event;
  Stats st;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto* self = const_cast<DriftMonitor*>(this);  // the window sums are scratch
    event = self->judge(now, true);
    st.drifting = drifting_;
    st.threshold = config_.drift_threshold;
    st.min_rows = config_.min_rows;
    for (size_t k = 0; k < profile_.features.size(); ++k) {
      const ProfileFeature& f = profile_.features[k];
      const uint64_t* counts = &window_[offset_[k]];
      FeatureStats fs;
      fs.name = f.name;
      fs.output = f.output;
      fs.numeric = f.kind == ProfileFeature::Kind::kNumeric;
      fs.rows = window_rows_[k];
      fs.psi = psi(f.fractions, counts);
      fs.ks = fs.numeric ? binned_ks(f.fractions, counts) : 0;
      fs.out_of_range = out_of_range_[k];
      fs.nan = nan_[k];
      if (!fs.numeric) {
        const double n = static_cast<double>(std::max<uint64_t>(fs.rows, 1));
        const size_t values = f.strings.empty() ? f.integers.size() : f.strings.size();
        for (size_t i = 0; i <= values; ++i)
          fs.shares.emplace_back(i == values         ? std::string("(other)")
                                 : f.strings.empty() ? std::to_string(f.integers[i])
                                                     : f.strings[i],
                                 static_cast<double>(counts[i]) / n);
      }
      st.rows = std::max(st.rows, fs.rows);
      st.features.push_back(std::move(fs));
    }
  }
  if (event && on_event_) on_event_(*event);
  return st;
}

void write_drift_metrics(const std::vector<std::shared_ptr<DriftMonitor>>& monitors, std::string* o) {
  std::vector<std::pair<std::string, DriftMonitor::Stats>> all;
  for (const auto& m : monitors)
    all.emplace_back("model=\"" + prometheus_escape(m->model()) + "\",version=\"" + std::to_string(m->version()) + "\"",
                     m->stats());
  const auto num = prometheus_number;
  auto family = [o](const char* name, const char* type, const char* help) {
    *o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto each = [&](const std::function<void(const std::string&, const DriftMonitor::FeatureStats&)>& fn) {
    for (const auto& [labels, st] : all)
      for (const auto& f : st.features)
        fn(labels + ",feature=\"" + prometheus_escape(f.name) + "\",io=\"" + (f.output ? "output" : "input") + "\"", f);
  };
  family("mserve_drift_psi", "gauge",
         "Population stability index of a feature's window against its reference profile.");
  each([&](const std::string& l, const auto& f) { *o += "mserve_drift_psi{" + l + "} " + num(f.psi) + "\n"; });
  family("mserve_drift_ks", "gauge", "Binned Kolmogorov-Smirnov statistic of a numeric feature's window.");
  each([&](const std::string& l, const auto& f) {
    if (f.numeric) *o += "mserve_drift_ks{" + l + "} " + num(f.ks) + "\n";
  });
  family("mserve_drift_out_of_range_total", "counter",
         "Values outside the reference range (numeric: below min or above max; categorical: unseen).");
  each([&](const std::string& l, const auto& f) {
    *o += "mserve_drift_out_of_range_total{" + l + "} " + std::to_string(f.out_of_range) + "\n";
  });
  family("mserve_drift_nan_total", "counter", "NaN values a feature read.");
  each([&](const std::string& l, const auto& f) {
    *o += "mserve_drift_nan_total{" + l + "} " + std::to_string(f.nan) + "\n";
  });
  family("mserve_drift_share", "gauge",
         "A categorical feature's window share per reference value (outputs: class shares).");
  each([&](const std::string& l, const auto& f) {
    for (const auto& [value, share] : f.shares)
      *o += "mserve_drift_share{" + l + ",value=\"" + prometheus_escape(value) + "\"} " + num(share) + "\n";
  });
  family("mserve_drift_window_rows", "gauge", "Rows in a version's drift window.");
  for (const auto& [labels, st] : all)
    *o += "mserve_drift_window_rows{" + labels + "} " + std::to_string(st.rows) + "\n";
  family("mserve_drifting", "gauge", "1 while some feature's PSI is over the model's drift threshold.");
  for (const auto& [labels, st] : all) *o += "mserve_drifting{" + labels + "} " + (st.drifting ? "1" : "0") + "\n";
}

void write_drift_status(const std::vector<std::shared_ptr<DriftMonitor>>& monitors, std::string* o) {
  if (monitors.empty()) return;
  const auto num = prometheus_number;
  *o += ",\"monitoring\":[";
  for (size_t i = 0; i < monitors.size(); ++i) {
    const DriftMonitor::Stats st = monitors[i]->stats();
    *o += (i ? ",{\"version\":\"" : "{\"version\":\"") + std::to_string(monitors[i]->version()) +
          "\",\"drifting\":" + (st.drifting ? "true" : "false") + ",\"threshold\":" + num(st.threshold) +
          ",\"min_rows\":" + std::to_string(st.min_rows) + ",\"window_rows\":" + std::to_string(st.rows) +
          ",\"features\":[";
    for (size_t k = 0; k < st.features.size(); ++k) {
      const auto& f = st.features[k];
      *o += k ? ",{\"name\":" : "{\"name\":";
      json_string(o, f.name);
      *o += std::string(",\"io\":\"") + (f.output ? "output" : "input") + "\",\"rows\":" + std::to_string(f.rows) +
            ",\"psi\":" + num(f.psi);
      if (f.numeric) *o += ",\"ks\":" + num(f.ks);
      *o += ",\"out_of_range\":" + std::to_string(f.out_of_range) + ",\"nan\":" + std::to_string(f.nan) + "}";
    }
    *o += "]}";
  }
  *o += "]";
}

}  // namespace mserve::server
