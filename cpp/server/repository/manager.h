// ModelManager: the set of served models and their versions (TensorFlow Serving's model
// repository semantics).
//
// A model is either a base path of numbered version folders (base/<version>/model.onnx, or any one
// .onnx file in the folder; other folders are ignored), a single .onnx file (version 1), or a
// Session handed in from memory (version 1, never polled). poll() applies each model's version
// policy to what is on disk: a new version is loaded and warmed up before it takes traffic; a
// version that is no longer wanted is unloaded only once another is available (availability is
// preserved), and its memory is freed when its last in-flight request finishes (requests hold a
// shared_ptr to the Servable). A version that fails to load is reported (state END with the
// error) and retried when its files change; it never disturbs the serving versions. A version
// folder's mserve.profile.json (drift.h) is read with the model; a broken one fails the load.
//
// Thread-safety: every method may be called from any thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/exec/session.h"
#include "server/batching/batcher.h"
#include "server/monitor/drift.h"
#include "server/remote/mirror.h"
#include "server/repository/config.h"
#include "server/security/integrity.h"

namespace mserve::server {

enum class VersionState { kStart, kLoading, kAvailable, kUnloading, kEnd };
const char* state_name(VersionState s);  // "START", "LOADING", "AVAILABLE", "UNLOADING", "END"

// One loaded model version. Immutable once published.
struct Servable {
  std::string model;
  int64_t version = 0;
  std::string path;
  // Where it came from and how it was loaded (the registry API shows them).
  std::string source;      // the model's base path as configured (s3://... for a mirrored one)
  std::string signer;      // id of the trusted key that verified its folder; "" when not checked
  bool encrypted = false;  // decrypted at load
  std::string loaded_at;   // UTC, ISO 8601
  double load_seconds = 0;
  // SHA-256 of the model file as stored, hex: taken at load when the bytes were read anyway
  // (verified or decrypted), else computed on first call.
  std::string digest() const;
  mutable std::mutex digest_mu;
  mutable std::string digest_;
  std::shared_ptr<Session> session;
  std::shared_ptr<Batcher> batcher;  // null when the model is not batched
  // Watches inputs and outputs against the version's reference profile (drift.h); null when its
  // folder has no mserve.profile.json.
  std::shared_ptr<DriftMonitor> monitor;
};

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::kStart;
  Status error;  // why the last load failed (state END)
};

struct ManagerOptions {
  SessionOptions session;
  std::optional<BatchingOptions> batching;  // default for every model without its own
  bool warmup = true;                       // run each new version once before serving it
  IntegrityOptions integrity;               // manifests and signatures of version folders (security.h)
  std::string model_key;                    // 32-byte AES-256-GCM key for encrypted model files; "" : none
  // Packed weights of model files kept in <pack_cache_dir>/<model name>/<version> (a version's
  // processes then share them; exec/pack_cache.h); "": none. Models read into memory to be
  // verified or decrypted are packed as usual.
  std::string pack_cache_dir;
  // Remote base paths (s3://...) are mirrored under remote.cache_dir (remote/source.h).
  RemoteOptions remote;
  std::function<void(const std::string&)> log;                          // one line per lifecycle event; may be empty
  std::function<void(const std::string& model, size_t rows)> on_batch;  // for metrics
  DriftMonitor::OnEvent on_drift;  // a version's drifting flag changed; may be empty
  // A version the manager no longer reports (unloaded and gone from disk; -1: the whole model left
  // the config), so per-version metrics can go too. Called without the manager's lock held.
  std::function<void(const std::string& model, int64_t version)> on_forget;
};

class ModelManager {
 public:
  explicit ModelManager(ManagerOptions opts);
  ~ModelManager();

  // Sets the models served from disk: new names are added, missing ones unloaded, changed
  // policies and labels applied. Loads what is needed at once (the first poll).
  Status set_config(const std::vector<ModelConfig>& models);
  // Serves an in-memory session as `name`, version 1.
  Status add_session(const std::string& name, std::shared_ptr<Session> session);
  // One pass over every disk model: load new versions, unload unwanted ones.
  void poll();

  // The servable for a request: a specific version, a label, or (neither) the newest available.
  StatusOr<std::shared_ptr<const Servable>> get(const std::string& model, std::optional<int64_t> version,
                                                const std::optional<std::string>& label) const;
  // Every version known for `model` (or only `version` / `label`), newest first.
  StatusOr<std::vector<VersionStatus>> status(const std::string& model, std::optional<int64_t> version,
                                              const std::optional<std::string>& label) const;
  std::vector<std::string> models() const;
  std::vector<std::shared_ptr<const Servable>> available() const;  // every available version
  // True when every model has at least one available version.
  bool ready() const;
  // The configured models, as given (for reading the config back).
  std::vector<ModelConfig> config() const;
  // A model served from a remote base path: its URI and its mirror's state; nullopt otherwise.
  struct Source {
    std::string uri;
    Mirror::State state;
  };
  std::optional<Source> source(const std::string& model) const;
  // For a model whose versions a source outside the manager brings into its folder (an MLflow
  // registry, python/mserve/mlflow_source.py): the outcome of its latest look, shown as source().
  Status report_source(const std::string& model, const std::string& uri, const Status& outcome);

  // The registry view of the served models (or only `model`): every version known with its state
  // and, while available, its servable (digest, signer, load time ...). NotFound for an unknown
  // model.
  struct RegistryModel {
    std::string name, source;
    std::map<std::string, int64_t> labels;
    std::vector<std::pair<VersionStatus, std::shared_ptr<const Servable>>> versions;  // newest first
  };
  StatusOr<std::vector<RegistryModel>> registry(const std::string& model = "") const;

 private:
  struct Version {
    VersionStatus status;
    std::shared_ptr<const Servable> servable;  // set while AVAILABLE
    std::string signature;                     // files' size+mtime when the last load failed
  };
  struct Model {
    ModelConfig config;
    bool from_memory = false;
    std::shared_ptr<Mirror> mirror;  // a remote base path's local copy
    std::optional<Source> external;  // report_source()
    std::map<int64_t, Version> versions;
  };
  void poll_model(const std::string& name);
  // The served model `model` (mu_ held) and, when `label` is given, the version it names written
  // to `version`; NotFound naming what is missing.
  StatusOr<const Model*> find(const std::string& model, const std::optional<std::string>& label,
                              std::optional<int64_t>* version) const;
  // The session of a model file: integrity checked and decrypted when configured (integrity.h);
  // `s` receives the signer, whether it was encrypted, and the file's digest when it was read.
  StatusOr<std::shared_ptr<Session>> open_model(const ModelConfig& cfg, const std::string& path, int64_t version,
                                                Servable* s) const;
  // `source`: the base path as configured (cfg's may be a remote one's mirror).
  StatusOr<std::shared_ptr<const Servable>> load_version(const ModelConfig& cfg, int64_t version,
                                                         const std::string& path, const std::string& source) const;
  void log(const std::string& line) const;

  ManagerOptions opts_;
  mutable std::mutex mu_;  // guards models_
  std::mutex poll_mu_;     // one poll at a time
  std::map<std::string, Model> models_;
};

}  // namespace mserve::server
