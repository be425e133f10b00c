#include "server/repository/manager.h"

#include "server/codec/protocol.h"
#include "server/logs/line_log.h"
#include "server/security/digest.h"

#include <fstream>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

namespace mserve::server {
namespace fs = std::filesystem;

const char* state_name(VersionState s) {
  switch (s) {
    case VersionState::kStart: return "START";
    case VersionState::kLoading: return "LOADING";
    case VersionState::kAvailable: return "AVAILABLE";
    case VersionState::kUnloading: return "UNLOADING";
    case VersionState::kEnd: return "END";
  }
  return "UNKNOWN";
}

namespace {

bool parse_version(const std::string& s, int64_t* v) {
  if (s.empty() || s.size() > 18) return false;
  int64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + (c - '0');
  }
  *v = x;
  return true;
}

// The model file of a version folder: model.onnx, else the only *.onnx file; "" when none.
std::string model_file_in(const fs::path& dir, std::string* why) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "model.onnx", ec)) return (dir / "model.onnx").string();
  std::string found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".onnx" || !e.is_regular_file(ec)) continue;
    if (!found.empty()) {
      *why = "several .onnx files and no model.onnx in " + dir.string();
      return "";
    }
    found = e.path().string();
  }
  if (found.empty()) *why = "no model.onnx in " + dir.string();
  return found;
}

// Size and modification time of the model file and its folder's other files: changes when
// anything is (re)copied, so a failed version is retried only once its files change.
std::string signature(const std::string& file) {
  std::error_code ec;
  std::string sig;
  const fs::path dir = fs::path(file).parent_path();
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    sig += e.path().string() + ":" + std::to_string(e.file_size(ec)) + ":" +
           std::to_string(e.last_write_time(ec).time_since_epoch().count()) + ";";
  }
  return sig;
}

// The reference profile of a model file in a numbered version folder, "" when there is none.
std::string profile_path(const std::string& model_file) {
  const fs::path dir = fs::path(model_file).parent_path();
  int64_t v;
  std::error_code ec;
  if (!parse_version(dir.filename().string(), &v) || !fs::is_regular_file(dir / kProfileFile, ec)) return "";
  return (dir / kProfileFile).string();
}

// Zero inputs of the declared shapes (free dims as 1): the first run plans and touches memory.
std::vector<Tensor> warmup_inputs(const Signature& sig) {
  std::vector<Tensor> in;
  for (const Value& v : sig.inputs) {
    Shape s;
    if (v.has_shape)
      for (const Dim& d : v.dims) s.push_back(d.known() ? d.value : 1);
    auto t = Tensor::empty(v.dtype, s);
    if (!t.ok()) return {};
    std::memset(t.value().raw(), 0, t.value().nbytes());
    in.push_back(std::move(t).value());
  }
  return in;
}

}  // namespace

ModelManager::ModelManager(ManagerOptions opts) : opts_(std::move(opts)) {}
ModelManager::~ModelManager() = default;

void ModelManager::log(const std::string& line) const {
  if (opts_.log) opts_.log(line);
}

Status ModelManager::set_config(const std::vector<ModelConfig>& models) {
  std::set<std::string> names;
  std::map<std::string, std::shared_ptr<Mirror>> mirrors;  // remote base paths, kept when unchanged
  for (const ModelConfig& m : models) {
    if (m.name.empty()) return InvalidArgument("a model needs a name");
    if (!names.insert(m.name).second) return InvalidArgument("model name '" + m.name + "' appears twice");
    if (m.batching) MS_RETURN_IF_ERROR(m.batching->validate());
    if (!is_remote(m.base_path)) continue;
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = models_.find(m.name);
      if (it != models_.end() && it->second.mirror && it->second.mirror->uri() == m.base_path) {
        mirrors[m.name] = it->second.mirror;
        continue;
      }
    }
    auto source = open_source(m.base_path, opts_.remote);
    if (!source.ok()) return InvalidArgument("model '" + m.name + "': " + source.status().message());
    mirrors[m.name] =
        std::make_shared<Mirror>(std::move(source).value(), mirror_dir(opts_.remote, m.name, m.base_path));
  }
  std::vector<std::string> removed;
  {
    std::lock_guard<std::mutex> lk(mu_);
    // Refused as a whole before anything changes.
    for (const ModelConfig& m : models) {
      auto it = models_.find(m.name);
      if (it != models_.end() && it->second.from_memory)
        return InvalidArgument("model name '" + m.name + "' is already served from memory");
    }
    for (auto it = models_.begin(); it != models_.end();) {
      if (!it->second.from_memory && !names.count(it->first)) {
        log("model '" + it->first + "' removed from the config; unloading");
        removed.push_back(it->first);
        it = models_.erase(it);  // in-flight requests keep their servable alive
      } else {
        ++it;
      }
    }
    for (const ModelConfig& m : models) {
      Model& model = models_[m.name];
      model.mirror = mirrors.count(m.name) ? mirrors[m.name] : nullptr;
      if (!(model.config.monitoring == m.monitoring))
        for (auto& [_, v] : model.versions)
          if (v.servable && v.servable->monitor) v.servable->monitor->configure(m.monitoring);
      model.config = m;
    }
  }
  if (opts_.on_forget)
    for (const std::string& name : removed) opts_.on_forget(name, -1);
  poll();
  return Status::OK();
}

Status ModelManager::add_session(const std::string& name, std::shared_ptr<Session> session) {
  if (name.empty()) return InvalidArgument("a model needs a name");
  auto s = std::make_shared<Servable>();
  s->model = name;
  s->version = 1;
  s->source = "memory";
  s->loaded_at = utc_timestamp();
  s->session = std::move(session);
  std::optional<BatchingOptions> b = opts_.batching;
  if (b) {
    auto on_batch = opts_.on_batch;
    s->batcher = std::make_shared<Batcher>(s->session, *b, [on_batch, name](size_t n) {
      if (on_batch) on_batch(name, n);
    });
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (models_.count(name)) return InvalidArgument("model name '" + name + "' appears twice");
  Model& m = models_[name];
  m.from_memory = true;
  m.config.name = name;
  Version& v = m.versions[1];
  v.status = {1, VersionState::kAvailable, Status::OK()};
  v.servable = std::move(s);
  return Status::OK();
}

void ModelManager::poll() {
  std::lock_guard<std::mutex> plk(poll_mu_);
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [name, m] : models_)
      if (!m.from_memory) names.push_back(name);
  }
  for (const std::string& n : names) poll_model(n);
}

StatusOr<std::shared_ptr<Session>> ModelManager::open_model(const ModelConfig& cfg, const std::string& path,
                                                            int64_t version, Servable* servable) const {
  SessionOptions so = opts_.session;
  if (!opts_.pack_cache_dir.empty())
    so.pack_cache = (fs::path(opts_.pack_cache_dir) / cfg.name / std::to_string(version)).string();
  if (cfg.backend) so.backend = *cfg.backend;
  std::error_code ec;
  const bool folder = fs::is_directory(cfg.base_path, ec);
  const std::string dir = fs::path(path).parent_path().string();
  const bool check = folder && (opts_.integrity.active() || has_manifest(dir));
  if (!folder && opts_.integrity.require_signatures)
    return LoadError("'" + path + "' is a single file: signed models are version folders (base/1/model.onnx)");
  if (!check && opts_.model_key.empty()) {
    // The common case: no integrity or encryption to apply; the loader reads the file itself.
    char head[16] = {};
    std::ifstream f(path, std::ios::binary);
    f.read(head, sizeof head);
    if (is_encrypted(std::string(head, static_cast<size_t>(f.gcount()))))
      return LoadError("'" + path + "' is encrypted; give the server its model key");
    auto s = Session::load_file(path, so);
    if (s.ok() && !s.value()->pack_cache().error.empty() && opts_.log)
      opts_.log("model '" + cfg.name + "' version " + std::to_string(version) + ": " + s.value()->pack_cache().error);
    return s;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return LoadError("cannot read '" + path + "'");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (check) MS_RETURN_IF_ERROR(verify_folder(dir, opts_.integrity, path, &bytes, &servable->signer));
  servable->digest_ = sha256_hex(bytes);
  if (is_encrypted(bytes)) {
    servable->encrypted = true;
    if (opts_.model_key.empty()) return LoadError("'" + path + "' is encrypted; give the server its model key");
    auto plain = decrypt_model(bytes, opts_.model_key);
    if (!plain.ok()) return plain.status().with_context("'" + path + "': ");
    bytes = std::move(plain).value();
  }
  auto s = Session::load_bytes(bytes.data(), bytes.size(), so, dir);
  if (!s.ok()) return s.status().with_context("'" + path + "': ");
  return s;
}

namespace {
// Every declared input and output must have a wire type (TensorFlow Serving and KServe v2 have
// none for float8, 4-bit and 2-bit tensors): refused at load, never answered as nulls.
Status check_wire_types(const Signature& sig) {
  for (const auto* values : {&sig.inputs, &sig.outputs})
    for (const Value& v : *values)
      if (v.dtype != DType::kUndefined && !v.zipmap && tf_dtype_number(v.dtype) == 0)
        return Unsupported(std::string(values == &sig.inputs ? "input '" : "output '") + v.name + "' is " +
                           dtype_name(v.dtype) + ", which neither TensorFlow Serving nor KServe v2 can carry");
  return Status::OK();
}
}  // namespace

StatusOr<std::shared_ptr<const Servable>> ModelManager::load_version(const ModelConfig& cfg, int64_t version,
                                                                     const std::string& path,
                                                                     const std::string& source) const {
  const auto started = std::chrono::steady_clock::now();
  auto s = std::make_shared<Servable>();
  MS_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, open_model(cfg, path, version, s.get()));
  MS_RETURN_IF_ERROR(check_wire_types(session->signature()).with_context("'" + path + "': "));
  if (opts_.warmup) {
    std::vector<Tensor> in = warmup_inputs(session->signature()), out;
    Status st = session->run(in, &out);
    if (!st.ok())
      log("model '" + cfg.name + "' version " + std::to_string(version) + ": warm-up with zero inputs failed (" +
          st.message() + "); serving it anyway");
  }
  s->model = cfg.name;
  s->version = version;
  s->path = path;
  s->source = source;
  s->session = std::move(session);
  const std::string profile = profile_path(path);
  if (!profile.empty()) {
    MS_ASSIGN_OR_RETURN(std::string text, read_text_file(profile));
    auto parsed = parse_profile(text, s->session->signature());
    if (!parsed.ok()) return InvalidArgument("'" + profile + "': " + parsed.status().message());
    s->monitor = std::make_shared<DriftMonitor>(cfg.name, version, std::move(parsed).value(), cfg.monitoring, nullptr,
                                                opts_.on_drift);
  }
  std::optional<BatchingOptions> b = cfg.batching ? cfg.batching : opts_.batching;
  if (b) {
    auto on_batch = opts_.on_batch;
    std::string name = cfg.name;
    std::function<void(const std::vector<Tensor>&)> on_outputs;
    if (auto monitor = s->monitor) on_outputs = [monitor](const std::vector<Tensor>& o) { monitor->observe(o, true); };
    s->batcher = std::make_shared<Batcher>(
        s->session, *b,
        [on_batch, name](size_t n) {
          if (on_batch) on_batch(name, n);
        },
        std::move(on_outputs));
  }
  s->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  s->loaded_at = utc_timestamp();
  return std::shared_ptr<const Servable>(std::move(s));
}

std::string Servable::digest() const {
  std::lock_guard<std::mutex> lk(digest_mu);
  if (digest_.empty() && !path.empty()) digest_ = file_sha256_hex(path);
  return digest_;
}

StatusOr<std::vector<ModelManager::RegistryModel>> ModelManager::registry(const std::string& model) const {
  std::vector<RegistryModel> out;
  std::lock_guard<std::mutex> lk(mu_);
  if (!model.empty() && !models_.count(model)) return NotFound("no model '" + model + "'");
  for (const auto& [name, m] : models_) {
    if (!model.empty() && name != model) continue;
    RegistryModel r;
    r.name = name;
    r.source = m.from_memory ? "memory" : m.external ? m.external->uri : m.config.base_path;
    r.labels = m.config.labels;
    for (auto it = m.versions.rbegin(); it != m.versions.rend(); ++it)
      r.versions.emplace_back(it->second.status, it->second.servable);
    out.push_back(std::move(r));
  }
  return out;
}

void ModelManager::poll_model(const std::string& name) {
  ModelConfig cfg;
  std::shared_ptr<Mirror> mirror;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    cfg = it->second.config;
    mirror = it->second.mirror;
  }
  const std::string source = cfg.base_path;
  if (mirror) {
    // The remote versions the policy wants, brought into the local folder polled below; when the
    // source cannot be read, what is mirrored stays and keeps being served.
    const Status before = mirror->state().last;
    const int64_t syncs = mirror->state().syncs;
    Status st = mirror->sync(cfg.policy);
    if (!st.ok() && (syncs == 0 || before.ok() || before.message() != st.message()))
      log("model '" + name + "': cannot sync " + mirror->uri() + ": " + st.message() + " (serving what was mirrored)");
    else if (st.ok() && syncs > 0 && !before.ok())
      log("model '" + name + "': " + mirror->uri() + " is readable again");
    cfg.base_path = mirror->dir();
  }
  // What is on disk: version -> model file.
  std::map<int64_t, std::string> on_disk;
  std::map<int64_t, std::string> not_ready;  // version folders without a usable model file
  std::error_code ec;
  const fs::path base(cfg.base_path);
  if (fs::is_regular_file(base, ec)) {
    on_disk[1] = base.string();
  } else if (fs::is_directory(base, ec)) {
    for (const auto& e : fs::directory_iterator(base, ec)) {
      int64_t v;
      if (!e.is_directory(ec) || !parse_version(e.path().filename().string(), &v)) continue;
      std::string why, file = model_file_in(e.path(), &why);
      if (file.empty())
        not_ready[v] = why;
      else
        on_disk[v] = file;
    }
    // A folder holding the model file itself and no version folders (KServe's /mnt/models, where
    // the storage initializer copies what the storage URI holds) serves that file as version 1.
    if (on_disk.empty() && not_ready.empty()) {
      std::string why, file = model_file_in(base, &why);
      if (!file.empty()) on_disk[1] = file;
    }
  }
  // The aspired versions under the policy.
  std::set<int64_t> aspired;
  const VersionPolicy& p = cfg.policy;
  if (p.kind == VersionPolicy::Kind::kAll) {
    for (const auto& [v, f] : on_disk) aspired.insert(v);
  } else if (p.kind == VersionPolicy::Kind::kSpecific) {
    for (int64_t v : p.versions)
      if (on_disk.count(v)) aspired.insert(v);
  } else {
    int k = 0;
    for (auto it = on_disk.rbegin(); it != on_disk.rend() && k < p.num_versions; ++it, ++k) aspired.insert(it->first);
  }

  // Load what is aspired and not yet available (outside the lock: loading takes time).
  for (int64_t v : aspired) {
    std::string sig = signature(on_disk[v]);
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = models_.find(name);
      if (it == models_.end()) return;
      auto vit = it->second.versions.find(v);
      if (vit != it->second.versions.end()) {
        const Version& ver = vit->second;
        if (ver.status.state == VersionState::kAvailable) continue;
        if (ver.status.state == VersionState::kEnd && !ver.status.error.ok() && ver.signature == sig) continue;
      }
      it->second.versions[v].status = {v, VersionState::kLoading, Status::OK()};
    }
    log("model '" + name + "' version " + std::to_string(v) + ": loading " + on_disk[v]);
    auto loaded = load_version(cfg, v, on_disk[v], source);
    std::lock_guard<std::mutex> lk(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    Version& ver = it->second.versions[v];
    if (loaded.ok()) {
      ver.status = {v, VersionState::kAvailable, Status::OK()};
      ver.servable = std::move(loaded).value();
      ver.signature.clear();
      log("model '" + name + "' version " + std::to_string(v) + ": available");
    } else {
      ver.status = {v, VersionState::kEnd, loaded.status()};
      ver.signature = sig;
      log("model '" + name + "' version " + std::to_string(v) + ": failed to load: " + loaded.status().message() +
          " (retried when its files change)");
    }
  }

  // Unload what is no longer aspired, keeping the newest available one while no aspired version is.
  std::vector<int64_t> gone;     // versions forgotten: their metrics go too (outside the lock)
  std::set<int64_t> just_ended;  // reported as END until the next pass
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    Model& m = it->second;
    bool aspired_available = false;
    for (int64_t v : aspired) {
      auto vit = m.versions.find(v);
      if (vit != m.versions.end() && vit->second.status.state == VersionState::kAvailable) aspired_available = true;
    }
    int64_t keep = -1;
    if (!aspired_available)
      for (auto vit = m.versions.rbegin(); vit != m.versions.rend(); ++vit)
        if (vit->second.status.state == VersionState::kAvailable) {
          keep = vit->first;
          break;
        }
    for (auto& [v, ver] : m.versions) {
      if (aspired.count(v) || v == keep) continue;
      if (ver.status.state == VersionState::kAvailable) {
        ver.status.state = VersionState::kUnloading;
        ver.servable.reset();  // freed when its last in-flight request finishes
        ver.status.state = VersionState::kEnd;
        just_ended.insert(v);
        log("model '" + name + "' version " + std::to_string(v) + ": unloaded");
      } else if (ver.status.state == VersionState::kEnd && !on_disk.count(v)) {
        ver.signature.clear();
      }
    }
    // Forget ended versions whose folder disappeared, one pass after they ended (a server swapping
    // versions for months keeps a bounded status list and metrics); keep the rest for the status
    // endpoint.
    for (auto vit = m.versions.begin(); vit != m.versions.end();) {
      if (vit->second.status.state == VersionState::kEnd && !on_disk.count(vit->first) &&
          !just_ended.count(vit->first)) {
        gone.push_back(vit->first);
        vit = m.versions.erase(vit);
      } else {
        ++vit;
      }
    }
  }
  if (opts_.on_forget)
    for (int64_t v : gone) opts_.on_forget(name, v);
  (void)not_ready;
}

StatusOr<const ModelManager::Model*> ModelManager::find(const std::string& model,
                                                        const std::optional<std::string>& label,
                                                        std::optional<int64_t>* version) const {
  auto it = models_.find(model);
  if (it == models_.end()) return NotFound("model '" + model + "' is not served here");
  const Model& m = it->second;
  if (label) {
    auto l = m.config.labels.find(*label);
    if (l == m.config.labels.end()) return NotFound("model '" + model + "' has no version label '" + *label + "'");
    *version = l->second;
  }
  return &m;
}

StatusOr<std::shared_ptr<const Servable>> ModelManager::get(const std::string& model, std::optional<int64_t> version,
                                                            const std::optional<std::string>& label) const {
  std::lock_guard<std::mutex> lk(mu_);
  MS_ASSIGN_OR_RETURN(const Model* found, find(model, label, &version));
  const Model& m = *found;
  if (version) {
    auto v = m.versions.find(*version);
    if (v == m.versions.end() || !v->second.servable)
      return NotFound("model '" + model + "' version " + std::to_string(*version) + " is not available");
    return v->second.servable;
  }
  for (auto v = m.versions.rbegin(); v != m.versions.rend(); ++v)
    if (v->second.servable) return v->second.servable;
  return Unavailable("model '" + model + "' has no available version yet");
}

StatusOr<std::vector<VersionStatus>> ModelManager::status(const std::string& model, std::optional<int64_t> version,
                                                          const std::optional<std::string>& label) const {
  std::lock_guard<std::mutex> lk(mu_);
  MS_ASSIGN_OR_RETURN(const Model* found, find(model, label, &version));
  const Model& m = *found;
  std::vector<VersionStatus> out;
  for (auto v = m.versions.rbegin(); v != m.versions.rend(); ++v)
    if (!version || v->first == *version) out.push_back(v->second.status);
  if (version && out.empty()) return NotFound("model '" + model + "' has no version " + std::to_string(*version));
  return out;
}

std::vector<std::string> ModelManager::models() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::string> out;
  for (const auto& [name, m] : models_) out.push_back(name);
  return out;
}

std::vector<std::shared_ptr<const Servable>> ModelManager::available() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::shared_ptr<const Servable>> out;
  for (const auto& [name, m] : models_)
    for (const auto& [v, ver] : m.versions)
      if (ver.servable) out.push_back(ver.servable);
  return out;
}

bool ModelManager::ready() const {
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& [name, m] : models_) {
    bool any = false;
    for (const auto& [v, ver] : m.versions) any = any || ver.servable != nullptr;
    if (!any) return false;
  }
  return true;
}

std::optional<ModelManager::Source> ModelManager::source(const std::string& model) const {
  std::shared_ptr<Mirror> mirror;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = models_.find(model);
    if (it == models_.end()) return std::nullopt;
    if (!it->second.mirror) return it->second.external;
    mirror = it->second.mirror;
  }
  return Source{mirror->uri(), mirror->state()};
}

Status ModelManager::report_source(const std::string& model, const std::string& uri, const Status& outcome) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = models_.find(model);
  if (it == models_.end()) return NotFound("no model '" + model + "'");
  Source& src = it->second.external ? *it->second.external : it->second.external.emplace();
  src.uri = uri;
  src.state.last = outcome;
  ++src.state.syncs;
  if (!outcome.ok()) ++src.state.failures;
  return Status::OK();
}

std::vector<ModelConfig> ModelManager::config() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<ModelConfig> out;
  for (const auto& [name, m] : models_) out.push_back(m.config);
  return out;
}

}  // namespace mserve::server
