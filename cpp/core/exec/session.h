// Session: a loaded, validated model ready to run.
//
// Thread-safety: run() may be called from any number of threads at once. Plans (one per input
// shape signature) are cached in a bounded LRU; each plan keeps a pool of run contexts (value
// tables) and runs borrow scratch arenas from the session, so a call whose shapes were seen
// before allocates nothing but its outputs.
#pragma once
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/exec/pack_cache.h"
#include "core/parallel/thread_pool.h"
#include "core/plan/plan.h"

namespace mserve {

// A model's interface as code outside the runtime sees it (the server's codecs and handlers):
// its inputs and outputs as declared (name, element type, dims, ZipMap labels), in the order
// run() takes and returns them. Fixed for the session's life.
struct Signature {
  std::vector<Value> inputs;
  std::vector<Value> outputs;
};

// The position of the tensor called `name` in `specs`; specs.size() when none is. Several with
// the name: the last, as the request decoders always took. Inline so that the request decoders
// link without the runtime (the fuzz targets build them alone).
inline size_t position_of(const std::vector<Value>& specs, std::string_view name) {
  size_t idx = specs.size();
  for (size_t i = 0; i < specs.size(); ++i)
    if (specs[i].name == name) idx = i;
  return idx;
}

struct SessionOptions {
  int threads = 0;              // intra-op threads; <= 0 means the machine's cores
  size_t plan_cache_size = 32;  // distinct input shape signatures kept planned
  bool optimize = true;         // graph clean-up passes and load-time constant folding
  bool subgraph = false;        // a control-flow body: inputs may be untyped, no trial plan
  // The device to run on besides the CPU (null: the CPU only). Each node runs on the device when
  // the backend has a kernel for it that takes its shapes, else on the CPU; inputs and outputs
  // stay host tensors (copied in and out).
  std::shared_ptr<const Backend> backend;
  // Record a plan whose every step runs on the device as one graph on its context's second run
  // and replay it after (Plan::graph says which plans can be).
  bool graphs = true;
  // load_file: keep packed weights in a cache file in this directory (exec/pack_cache.h), so
  // processes loading the model share them; empty: none.
  std::string pack_cache;
  // Where kernels take and put packed weights while the session is created (not owned; set by
  // load_file from pack_cache, and passed on to control-flow bodies).
  PackStore* packs = nullptr;
};

// How one run hands out its outputs.
struct RunOptions {
  // Outputs computed on the session's device stay there (device tensors, fresh buffers the
  // caller owns) instead of being copied to the host; outputs computed on the CPU are host
  // tensors either way.
  bool device_outputs = false;
};

class Session {
 public:
  static StatusOr<std::shared_ptr<Session>> create(Graph graph, const SessionOptions& opts);
  static StatusOr<std::shared_ptr<Session>> load_file(const std::string& path, const SessionOptions& opts);
  static StatusOr<std::shared_ptr<Session>> load_bytes(const void* data, size_t size, const SessionOptions& opts,
                                                       const std::string& base_dir = "");
  ~Session();

  // The model as imported and rewritten by the graph passes (for the bindings and tests; serving
  // code reads signature()).
  const Graph& graph() const { return prog_.graph; }
  const Signature& signature() const { return signature_; }
  int threads() const { return pool_->threads(); }

  // Runs the model. `inputs` in graph input order, on the host or on the session's device (a
  // device tensor is read where it is: no copy); each is checked against the declared dtype,
  // rank and static dimensions. `outputs` receives owned tensors in graph output order.
  // `pool` overrides the session's own pool (control-flow bodies run on their caller's).
  Status run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs, ThreadPool* pool = nullptr,
             const RunOptions& options = {}) const;

  // Nodes left to run after load-time clean-up and folding.
  size_t num_nodes() const { return prog_.order.size(); }
  // Their op types in run order (after the graph passes), for tests and debugging.
  std::vector<std::string> node_ops() const {
    std::vector<std::string> ops;
    for (int i : prog_.order) ops.push_back(prog_.graph.nodes[i].op_type);
    return ops;
  }

  // Where the nodes of the most recent plan run (the trial plan at load, with symbolic
  // dimensions set to 1, until a run plans other shapes); null before any plan was made.
  std::shared_ptr<const Placement> placement() const;
  // What the pack cache did for this load (SessionOptions::pack_cache; empty path: none).
  const PackCache::Report& pack_cache() const { return pack_cache_; }
  // The session's device backend (null: the CPU only).
  const std::shared_ptr<const Backend>& backend() const { return prog_.backend; }
  // The session's device ("cpu" without a backend).
  std::string device() const { return prog_.backend ? prog_.backend->name() : "cpu"; }

  // Number of plans currently cached (for tests and monitoring).
  size_t cached_plans() const;
  // Scratch arenas allocated so far (for tests and monitoring): it stops growing once the
  // largest shape in use has run, however many shapes come and go.
  size_t arena_allocations() const { return arena_allocations_.load(); }

  // Per-operator time, for finding where a model spends it. While on, every run adds each
  // node's compute time to its op type's entry (two clock reads per node); off by default.
  struct OpTime {
    std::string op_type;
    int64_t calls = 0;
    int64_t nanos = 0;
  };
  void set_profiling(bool on);
  std::vector<OpTime> profile() const;  // the totals since profiling was last turned on

 private:
  struct RunContext;
  struct CachedPlan;
  Session() = default;
  Status validate(const std::vector<Tensor>& inputs) const;
  StatusOr<std::shared_ptr<CachedPlan>> plan_for(const std::vector<Tensor>& inputs, const PlanKey& key) const;
  void note_placement(const Plan& plan) const;
  Status execute(const Plan& plan, RunContext& rc, const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs,
                 ThreadPool& pool) const;
  // The graph path: inputs staged, the context's graph recorded (second run) or replayed.
  Status execute_graph(const Plan& plan, RunContext& rc, const std::vector<Tensor>& inputs,
                       std::vector<Tensor>* outputs, ThreadPool* pool) const;
  // Queues every step of a graph plan, copying through the staging memory at `stage`.
  Status enqueue_graph(const Plan& plan, RunContext& rc, char* stage, ThreadPool* pool) const;
  // Hands the graph outputs to the caller (values copied out of `stage` for a graph run).
  Status collect_outputs(const Plan& plan, RunContext& rc, const char* stage, std::vector<Tensor>* outputs) const;
  void add_op_time(const std::string& op, std::chrono::steady_clock::duration d) const;
  // Scratch arenas are the session's, not the plans': a run borrows one at least as big as its
  // plan needs, so memory follows the runs in flight, not the number of cached shapes.
  std::shared_ptr<Buffer> take_arena(size_t bytes) const;
  void give_arena(std::shared_ptr<Buffer> arena) const;

  Program prog_;
  Signature signature_;
  SessionOptions opts_;
  PackCache::Report pack_cache_;
  std::unique_ptr<ThreadPool> pool_;
  mutable std::mutex cache_mu_;
  mutable std::vector<std::shared_ptr<CachedPlan>> cache_;
  mutable std::shared_ptr<const Placement> placement_;  // guarded by cache_mu_
  mutable uint64_t tick_ = 0;
  mutable std::mutex arena_mu_;
  mutable std::vector<std::shared_ptr<Buffer>> spare_arenas_;
  mutable std::atomic<size_t> arena_allocations_{0};
  std::atomic<bool> profiling_{false};
  mutable std::mutex profile_mu_;
  mutable std::vector<OpTime> profile_;  // one per op type, in first-seen order
};

}  // namespace mserve
