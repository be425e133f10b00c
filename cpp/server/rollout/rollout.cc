#include "server/rollout/rollout.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#define XXH_INLINE_ALL  // header-only: no library to ship in the wheels
#include <xxhash.h>

#include "server/codec/json.h"
#include "server/rollout/shadow.h"

namespace mserve::server {
namespace {

constexpr double kMinLatency = 1e-6;            // the upper edge of ArmWindow's bin 0
constexpr uint64_t kSplit = uint64_t{1} << 63;  // draws are 63-bit

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A uniform 64-bit draw from this thread's generator.
uint64_t random64() {
  thread_local uint64_t state = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}() ^
                                std::hash<std::thread::id>{}(std::this_thread::get_id());
  return splitmix64(state);
}

int latency_bin(double seconds) {
  if (!(seconds >= kMinLatency)) return 0;
  const int b = 1 + static_cast<int>(std::floor(std::log2(seconds / kMinLatency) * 4));
  return std::min(b, ArmWindow::kBins - 1);
}

double bin_upper(int b) { return kMinLatency * std::exp2(b / 4.0); }

// RolloutModel::ShadowOutcome's names, in its order (status JSON keys, metric labels).
const char* const kShadowOutcomeNames[RolloutModel::kShadowOutcomes] = {"compared", "dropped", "failed", "unavailable",
                                                                        "mismatched"};

const std::vector<double>& diff_bounds() {
  static const std::vector<double> b = {0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100};
  return b;
}

std::string percent(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g%%", v);
  return b;
}

}  // namespace

// ---- ArmWindow ----

ArmWindow::Slice& ArmWindow::slice(double now) {
  const auto index = static_cast<int64_t>(std::floor(now / slice_seconds_));
  Slice& s = slices_[static_cast<size_t>(((index % kSlices) + kSlices) % kSlices)];
  if (s.index.load(std::memory_order_acquire) != index) {
    std::lock_guard<std::mutex> lk(rotate_mu_);
    if (s.index.load(std::memory_order_relaxed) != index) {
      s.requests.store(0, std::memory_order_relaxed);
      s.errors.store(0, std::memory_order_relaxed);
      for (auto& b : s.bins) b.store(0, std::memory_order_relaxed);
      s.index.store(index, std::memory_order_release);
    }
  }
  return s;
}

void ArmWindow::add(double now, bool ok, double seconds) {
  Slice& s = slice(now);
  s.requests.fetch_add(1, std::memory_order_relaxed);
  if (!ok) s.errors.fetch_add(1, std::memory_order_relaxed);
  s.bins[static_cast<size_t>(latency_bin(seconds))].fetch_add(1, std::memory_order_relaxed);
}

ArmWindow::Summary ArmWindow::summary(double now) const {
  const auto index = static_cast<int64_t>(std::floor(now / slice_seconds_));
  Summary out;
  std::array<uint64_t, kBins> bins{};
  for (const Slice& s : slices_) {
    const int64_t at = s.index.load(std::memory_order_acquire);
    if (at < 0 || at > index || at <= index - kSlices) continue;
    out.requests += s.requests.load(std::memory_order_relaxed);
    out.errors += s.errors.load(std::memory_order_relaxed);
    for (int b = 0; b < kBins; ++b)
      bins[static_cast<size_t>(b)] += s.bins[static_cast<size_t>(b)].load(std::memory_order_relaxed);
  }
  if (!out.requests) return out;
  const auto rank = static_cast<uint64_t>(std::ceil(0.99 * static_cast<double>(out.requests)));
  uint64_t seen = 0;
  for (int b = 0; b < kBins; ++b) {
    seen += bins[static_cast<size_t>(b)];
    if (seen >= rank) {
      out.p99 = bin_upper(b);
      break;
    }
  }
  return out;
}

// ---- RolloutModel ----

RolloutModel::RolloutModel(std::string model, RolloutConfig config, Now now)
    : model_(std::move(model)),
      config_(std::move(config)),
      now_(std::move(now)),
      seed_(XXH3_64bits(model_.data(), model_.size())) {
  double total = 0;
  for (const auto& a : config_.arms) total += a.weight;
  for (const auto& a : config_.arms) {
    weight_.push_back(total > 0 ? a.weight * 100 / total : 0);
    arms_.push_back(std::make_unique<ArmState>(config_.guard.window_seconds));
  }
  for (size_t i = 1; i < arms_.size(); ++i) order_.push_back(static_cast<int>(i));
  if (!arms_.empty()) order_.push_back(0);
  const double t = now_();
  next_eval_ = t;
  next_step_ = t + config_.guard.step_interval_seconds;
  set_bounds();
}

void RolloutModel::set_bounds() {
  double total = 0;
  for (double w : weight_) total += w;
  double cum = 0;
  int last = -1;  // the last arm in split order with a share
  for (int i : order_)
    if (weight_[static_cast<size_t>(i)] > 0) last = i;
  bool after_last = false;
  for (int i : order_) {
    cum += weight_[static_cast<size_t>(i)];
    uint64_t bound = static_cast<uint64_t>(std::ldexp(std::min(cum / total, 1.0), 63));
    if (i == last || after_last) {
      bound = kSplit;
      after_last = true;
    }
    upto_[static_cast<size_t>(i)].store(bound, std::memory_order_relaxed);
  }
}

int RolloutModel::pick(std::string_view key) const {
  if (order_.empty()) return -1;
  const uint64_t draw = (key.empty() ? random64() : XXH3_64bits_withSeed(key.data(), key.size(), seed_)) >> 1;
  for (int i : order_)
    if (draw < upto_[static_cast<size_t>(i)].load(std::memory_order_relaxed)) return i;
  return order_.back();
}

bool RolloutModel::draw_shadow() const {
  const double p = config_.shadow.percent;
  if (config_.shadow.label.empty() || !(p > 0)) return false;
  return static_cast<double>(random64() >> 11) * 0x1p-53 * 100 < p;
}

std::vector<RolloutEvent> RolloutModel::record(int arm, int64_t version, bool ok, double seconds) {
  const double t = now_();
  ArmState& a = *arms_[static_cast<size_t>(arm)];
  a.window.add(t, ok, seconds);
  const std::vector<double>& bounds = latency_bounds();
  const auto bucket = static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin());
  a.latency[bucket].fetch_add(1, std::memory_order_relaxed);
  a.latency_ns.fetch_add(static_cast<uint64_t>(std::max(0.0, seconds) * 1e9), std::memory_order_relaxed);
  (ok ? a.ok : a.errors).fetch_add(1, std::memory_order_relaxed);
  if (a.version.load(std::memory_order_relaxed) != version) a.version.store(version, std::memory_order_relaxed);
  // The guard: one thread at a time, at most every window / 50 (or 0.1 s); the others go on.
  if (!config_.guard.enabled || t < next_eval_.load(std::memory_order_relaxed)) return {};
  std::unique_lock<std::mutex> lk(mu_, std::try_to_lock);
  if (!lk.owns_lock() || t < next_eval_.load(std::memory_order_relaxed)) return {};
  next_eval_.store(t + std::min(config_.guard.window_seconds / 50, 0.1), std::memory_order_relaxed);
  return evaluate_locked(t);
}

std::vector<RolloutEvent> RolloutModel::evaluate() {
  const double t = now_();
  std::lock_guard<std::mutex> lk(mu_);
  if (!config_.guard.enabled) return {};
  return evaluate_locked(t);
}

std::vector<RolloutEvent> RolloutModel::evaluate_locked(double t) {
  const RolloutConfig::Guard& g = config_.guard;
  std::vector<RolloutEvent> events;
  const ArmWindow::Summary base = arms_[0]->window.summary(t);
  const std::string& base_label = config_.arms[0].label;
  std::vector<size_t> healthy;
  for (size_t i = 1; i < arms_.size(); ++i) {
    ArmState& a = *arms_[i];
    if (!a.rolled_back.empty() || !(weight_[i] > 0)) continue;
    const ArmWindow::Summary c = a.window.summary(t);
    if (c.requests < g.min_requests) continue;
    std::string why;
    if (c.error_rate() - base.error_rate() > g.max_error_rate_increase) {
      why = "error rate " + percent(100 * c.error_rate()) + " over " + std::to_string(c.requests) + " requests vs " +
            percent(100 * base.error_rate()) + " on " + base_label;
    } else if (g.max_p99_ratio > 0 && base.requests >= g.min_requests && c.p99 > g.max_p99_ratio * base.p99 &&
               (c.p99 - base.p99) * 1e3 > g.p99_slack_ms) {
      char b[128];
      std::snprintf(b, sizeof b, "p99 latency %.3g ms vs %.3g ms on ", c.p99 * 1e3, base.p99 * 1e3);
      why = b + base_label;
    }
    if (why.empty()) {
      healthy.push_back(i);
      continue;
    }
    const double was = weight_[i];
    weight_[0] += weight_[i];
    weight_[i] = 0;
    a.rolled_back = why;
    ++a.rollbacks;
    events.push_back(
        {model_, config_.arms[i].label, "rollback", a.version, "weight " + percent(was) + " -> 0: " + why});
  }
  if (g.step_percent > 0 && t >= next_step_) {
    next_step_ = t + g.step_interval_seconds;
    double canaries = 0;
    for (size_t i = 1; i < weight_.size(); ++i) canaries += weight_[i];
    const double delta = std::min({g.step_percent, g.max_percent - canaries, weight_[0]});
    if (!healthy.empty() && delta > 1e-9) {
      for (size_t i : healthy) {
        const double was = weight_[i];
        weight_[i] += delta / static_cast<double>(healthy.size());
        events.push_back({model_, config_.arms[i].label, "step", arms_[i]->version.load(std::memory_order_relaxed),
                          "weight " + percent(was) + " -> " + percent(weight_[i])});
      }
      weight_[0] -= delta;
      if (weight_[0] < 1e-9) weight_[0] = 0;
    }
  }
  if (!events.empty()) set_bounds();
  return events;
}

void RolloutModel::fallback(int arm) {
  arms_[static_cast<size_t>(arm)]->fallbacks.fetch_add(1, std::memory_order_relaxed);
}

std::vector<double> RolloutModel::weights() const {
  std::lock_guard<std::mutex> lk(mu_);
  return weight_;
}

void RolloutModel::shadow_outcome(ShadowOutcome outcome) {
  std::lock_guard<std::mutex> lk(mu_);
  ++shadow_counts_[outcome];
}

void RolloutModel::shadow_compared(double max_abs_diff, uint64_t argmax_rows, uint64_t argmax_agree) {
  std::lock_guard<std::mutex> lk(mu_);
  shadow_diff_.observe(diff_bounds(), max_abs_diff);
  argmax_rows_ += argmax_rows;
  argmax_agree_ += argmax_agree;
}

RolloutModel::Snapshot RolloutModel::snapshot() const {
  const double t = now_();
  std::lock_guard<std::mutex> lk(mu_);
  Snapshot s;
  double total = 0;
  for (const auto& a : config_.arms) total += a.weight;
  for (size_t i = 0; i < arms_.size(); ++i) {
    const ArmState& a = *arms_[i];
    ArmSnapshot o;
    o.label = config_.arms[i].label;
    o.weight = weight_[i];
    o.configured = config_.arms[i].weight * 100 / total;
    o.ok = a.ok.load(std::memory_order_relaxed);
    o.errors = a.errors.load(std::memory_order_relaxed);
    o.fallbacks = a.fallbacks.load(std::memory_order_relaxed);
    o.rollbacks = a.rollbacks;
    o.rolled_back = a.rolled_back;
    o.version = a.version.load(std::memory_order_relaxed);
    o.latency.counts.assign(latency_bounds().size(), 0);
    for (size_t b = 0; b < a.latency.size(); ++b) {
      const uint64_t n = a.latency[b].load(std::memory_order_relaxed);
      if (b < o.latency.counts.size()) o.latency.counts[b] = n;
      o.latency.count += n;
    }
    o.latency.sum = static_cast<double>(a.latency_ns.load(std::memory_order_relaxed)) * 1e-9;
    o.window = a.window.summary(t);
    s.arms.push_back(std::move(o));
  }
  s.shadow = shadow_counts_;
  s.shadow_queued = shadow_queued_.load(std::memory_order_relaxed);
  s.shadow_diff = shadow_diff_;
  s.argmax_rows = argmax_rows_;
  s.argmax_agree = argmax_agree_;
  return s;
}

// ---- Rollouts ----

Rollouts::Rollouts(Options opts) : opts_(std::move(opts)) {
  if (!opts_.now)
    opts_.now = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    };
}

Rollouts::~Rollouts() = default;

void Rollouts::configure(const std::vector<ModelConfig>& models) {
  auto next = std::make_unique<Map>();
  bool shadows = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    static const Map kNone;
    const Map* current = current_.load(std::memory_order_acquire);
    const Map& before = current ? *current : kNone;
    for (const ModelConfig& m : models) {
      if (!m.rollout) continue;
      shadows |= !m.rollout->shadow.label.empty();
      auto it = before.find(m.name);
      if (it != before.end() && it->second->config() == *m.rollout) {
        next->emplace(m.name, it->second);
        continue;
      }
      auto r = std::make_shared<RolloutModel>(m.name, *m.rollout, opts_.now);
      if (opts_.log) {
        std::string line = "rollout of '" + m.name + "':";
        const auto w = r->weights();
        for (size_t i = 0; i < w.size(); ++i) line += (i ? ", " : " ") + m.rollout->arms[i].label + " " + percent(w[i]);
        if (!m.rollout->shadow.label.empty())
          line += "; shadow " + m.rollout->shadow.label + " " + percent(m.rollout->shadow.percent);
        if (m.rollout->guard.enabled) line += "; guarded";
        opts_.log(line);
      }
      next->emplace(m.name, std::move(r));
    }
    for (const auto& [name, _] : before)
      if (!next->count(name) && opts_.log) opts_.log("rollout of '" + name + "' ended");
    if (!shadow_ && shadows) {
      shadow_ = std::make_unique<ShadowRunner>(opts_.manager);
      has_shadow_.store(true, std::memory_order_release);
    }
    const Map* published = next->empty() ? nullptr : next.get();
    generations_.push_back(std::move(next));
    current_.store(published, std::memory_order_release);
  }
}

std::shared_ptr<RolloutModel> Rollouts::find(const std::string& model) const {
  const Map* map = current_.load(std::memory_order_acquire);
  if (!map) return nullptr;
  auto it = map->find(model);
  return it == map->end() ? nullptr : it->second;
}

const std::string* Rollouts::Ticket::label() const {
  return model_ && arm_ >= 0 ? &model_->config().arms[static_cast<size_t>(arm_)].label : nullptr;
}

void Rollouts::Ticket::finish(int64_t version, bool ok, double seconds) const {
  if (!model_ || arm_ < 0) return;
  owner_->report(model_->record(arm_, version, ok, seconds));
}

Rollouts::Ticket Rollouts::pick(const std::string& model,
                                const std::function<std::string_view(std::string_view)>& header,
                                std::string_view identity) const {
  Ticket t;
  t.model_ = find(model);
  if (!t.model_) return t;
  const std::string& sticky = t.model_->config().sticky_header;
  std::string_view key;
  if (sticky == "identity")
    key = identity;
  else if (!sticky.empty())
    key = header(sticky);
  t.owner_ = this;
  t.arm_ = t.model_->pick(key);
  t.shadow_ = has_shadow_.load(std::memory_order_acquire) && t.model_->draw_shadow();
  return t;
}

Rollouts::Ticket Rollouts::fall_back(const Ticket& t) const {
  Ticket b = t;
  if (t.model_ && t.arm_ > 0) {
    t.model_->fallback(t.arm_);
    b.arm_ = 0;
  }
  return b;
}

bool Rollouts::reserve_shadow(const Ticket& t) const { return t.shadow_ && shadow_->reserve(*t.model_); }

void Rollouts::shadow(const Ticket& t, std::vector<Tensor> inputs, std::vector<Tensor> answer) const {
  shadow_->submit(t.model_, std::move(inputs), std::move(answer));
}

void Rollouts::release_shadow(const Ticket& t) const { shadow_->release(*t.model_); }

void Rollouts::report(const std::vector<RolloutEvent>& events) const {
  for (const RolloutEvent& e : events) {
    if (opts_.log) opts_.log("rollout of '" + e.model + "': " + e.kind + " of " + e.arm + ": " + e.detail);
    if (opts_.on_event) opts_.on_event(e);
  }
}

void Rollouts::status_json(const std::string& model, const std::map<std::string, int64_t>& labels,
                           std::string* o) const {
  std::shared_ptr<RolloutModel> m = find(model);
  if (!m) return;
  const RolloutConfig& c = m->config();
  const RolloutModel::Snapshot s = m->snapshot();
  auto version_of = [&](const std::string& label) {
    auto it = labels.find(label);
    return std::to_string(it == labels.end() ? 0 : it->second);
  };
  const auto num = prometheus_number;
  *o += ",\"rollout\":{\"arms\":[";
  for (size_t i = 0; i < s.arms.size(); ++i) {
    const auto& a = s.arms[i];
    *o += i ? ",{\"label\":" : "{\"label\":";
    json_string(o, a.label);
    *o += ",\"version\":\"" + version_of(a.label) + "\",\"weight\":" + num(a.weight) +
          ",\"configured_weight\":" + num(a.configured) + ",\"requests\":" + std::to_string(a.ok + a.errors) +
          ",\"errors\":" + std::to_string(a.errors) + ",\"fallbacks\":" + std::to_string(a.fallbacks) +
          ",\"window\":{\"requests\":" + std::to_string(a.window.requests) +
          ",\"error_rate\":" + num(a.window.error_rate()) + ",\"p99_ms\":" + num(a.window.p99 * 1e3) +
          "},\"rolled_back\":" + (a.rolled_back.empty() ? "false" : "true");
    if (!a.rolled_back.empty()) {
      *o += ",\"reason\":";
      json_string(o, a.rolled_back);
    }
    *o += "}";
  }
  *o += "],\"sticky_header\":";
  json_string(o, c.sticky_header);
  if (!c.shadow.label.empty()) {
    *o += ",\"shadow\":{\"label\":";
    json_string(o, c.shadow.label);
    *o += ",\"version\":\"" + version_of(c.shadow.label) + "\",\"percent\":" + num(c.shadow.percent) +
          ",\"queue\":" + std::to_string(c.shadow.queue) + ",\"queued\":" + std::to_string(s.shadow_queued);
    for (int k = 0; k < RolloutModel::kShadowOutcomes; ++k)
      *o += std::string(",\"") + kShadowOutcomeNames[k] + "\":" + std::to_string(s.shadow[static_cast<size_t>(k)]);
    *o += ",\"argmax_rows\":" + std::to_string(s.argmax_rows) + ",\"argmax_agree\":" + std::to_string(s.argmax_agree) +
          "}";
  }
  if (c.guard.enabled) {
    const auto& g = c.guard;
    *o += ",\"guard\":{\"window_seconds\":" + num(g.window_seconds) +
          ",\"min_requests\":" + std::to_string(g.min_requests) +
          ",\"max_error_rate_increase\":" + num(g.max_error_rate_increase) +
          ",\"max_p99_ratio\":" + num(g.max_p99_ratio) + ",\"p99_slack_ms\":" + num(g.p99_slack_ms) +
          ",\"step_percent\":" + num(g.step_percent) + ",\"step_interval_seconds\":" + num(g.step_interval_seconds) +
          ",\"max_percent\":" + num(g.max_percent) + "}";
  }
  *o += "}";
}

void Rollouts::prometheus(std::string* o) const {
  std::vector<std::pair<std::string, RolloutModel::Snapshot>> all;
  std::vector<std::string> shadow_labels;
  if (const Map* map = current_.load(std::memory_order_acquire))
    for (const auto& [name, m] : *map) {
      all.emplace_back(name, m->snapshot());
      shadow_labels.push_back(m->config().shadow.label);
    }
  const auto esc = prometheus_escape;
  const auto num = prometheus_number;
  auto family = [o](const char* name, const char* type, const char* help) {
    *o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto arms = [&](const std::function<void(const std::string& labels, const RolloutModel::ArmSnapshot&)>& each) {
    for (const auto& [name, s] : all)
      for (const auto& a : s.arms) each("model=\"" + esc(name) + "\",arm=\"" + esc(a.label) + "\"", a);
  };
  family("mserve_rollout_weight_percent", "gauge", "Share of a model's split requests an arm takes now.");
  arms([&](const std::string& l, const auto& a) {
    *o += "mserve_rollout_weight_percent{" + l + "} " + num(a.weight) + "\n";
  });
  family("mserve_rollout_requests_total", "counter", "Split requests answered by an arm, by outcome.");
  arms([&](const std::string& l, const auto& a) {
    *o += "mserve_rollout_requests_total{" + l + ",outcome=\"ok\"} " + std::to_string(a.ok) + "\n";
    *o += "mserve_rollout_requests_total{" + l + ",outcome=\"error\"} " + std::to_string(a.errors) + "\n";
  });
  family("mserve_rollout_latency_seconds", "histogram", "Latency of split requests, by arm.");
  arms([&](const std::string& l, const auto& a) {
    write_histogram(o, "mserve_rollout_latency_seconds", l, a.latency, latency_bounds());
  });
  family("mserve_rollout_fallbacks_total", "counter",
         "Split requests for an arm whose label had no available version, answered by the baseline.");
  arms([&](const std::string& l, const auto& a) {
    *o += "mserve_rollout_fallbacks_total{" + l + "} " + std::to_string(a.fallbacks) + "\n";
  });
  family("mserve_rollout_rollbacks_total", "counter", "Times the guard set an arm's weight to 0.");
  arms([&](const std::string& l, const auto& a) {
    *o += "mserve_rollout_rollbacks_total{" + l + "} " + std::to_string(a.rollbacks) + "\n";
  });
  family("mserve_rollout_rolled_back", "gauge", "1 while an arm is rolled back.");
  arms([&](const std::string& l, const auto& a) {
    *o += "mserve_rollout_rolled_back{" + l + "} " + (a.rolled_back.empty() ? "0" : "1") + "\n";
  });
  family("mserve_shadow_requests_total", "counter",
         "Requests mirrored to a shadow label, by outcome (compared, dropped: queue full, failed: the shadow's "
         "run failed, unavailable: no version, mismatched: other output shapes).");
  for (size_t k = 0; k < all.size(); ++k) {
    if (shadow_labels[k].empty()) continue;
    const std::string l = "model=\"" + esc(all[k].first) + "\",label=\"" + esc(shadow_labels[k]) + "\"";
    for (int j = 0; j < RolloutModel::kShadowOutcomes; ++j)
      *o += "mserve_shadow_requests_total{" + l + ",outcome=\"" + kShadowOutcomeNames[j] + "\"} " +
            std::to_string(all[k].second.shadow[static_cast<size_t>(j)]) + "\n";
  }
  family("mserve_shadow_queue_requests", "gauge", "Mirrored requests waiting for the shadow.");
  for (size_t k = 0; k < all.size(); ++k)
    if (!shadow_labels[k].empty())
      *o += "mserve_shadow_queue_requests{model=\"" + esc(all[k].first) + "\"} " +
            std::to_string(all[k].second.shadow_queued) + "\n";
  family("mserve_shadow_max_abs_diff", "histogram",
         "Per compared request, the largest absolute difference between the shadow's outputs and the answer's.");
  for (size_t k = 0; k < all.size(); ++k)
    if (!shadow_labels[k].empty())
      write_histogram(o, "mserve_shadow_max_abs_diff",
                      "model=\"" + esc(all[k].first) + "\",label=\"" + esc(shadow_labels[k]) + "\"",
                      all[k].second.shadow_diff, diff_bounds());
  family("mserve_shadow_argmax_rows_total", "counter",
         "Rows of classifier outputs compared with the shadow, by whether the argmax agreed.");
  for (size_t k = 0; k < all.size(); ++k) {
    if (shadow_labels[k].empty()) continue;
    const auto& s = all[k].second;
    const std::string l = "model=\"" + esc(all[k].first) + "\",label=\"" + esc(shadow_labels[k]) + "\"";
    *o += "mserve_shadow_argmax_rows_total{" + l + ",agree=\"true\"} " + std::to_string(s.argmax_agree) + "\n";
    *o += "mserve_shadow_argmax_rows_total{" + l + ",agree=\"false\"} " +
          std::to_string(s.argmax_rows - s.argmax_agree) + "\n";
  }
}

}  // namespace mserve::server
