// Program: a loaded graph with its kernels in execution order (shape-independent).
// Plan: a Program specialized to one set of input shapes: every value's dtype, shape and storage,
// plan-time-folded constants, and one arena layout that intermediates share by liveness.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/device/device.h"
#include "core/graph/graph.h"
#include "core/kernels/kernel.h"

namespace mserve {

class ThreadPool;

// A host tensor copied into new device memory of `backend` (synchronously).
StatusOr<Tensor> upload_constant(const Tensor& host, const Backend& backend);

// Initializers uploaded to the device, once per session: the first plan that places a reader of
// one on the device uploads it; later plans reuse the copy. Thread-safe.
class DeviceConstants {
 public:
  // The device copy of initializer `value` (whose host bytes are `host`).
  StatusOr<const Tensor*> get(int value, const Tensor& host, const Backend& backend);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<int, Tensor> uploaded_;  // node-based: pointers stay valid
};

struct Program {
  Graph graph;                     // initializers include load-time-folded constants
  std::vector<KernelPtr> kernels;  // per node index of graph.nodes; null for folded nodes
  std::vector<int> order;          // node indices to run, topologically sorted
  // The device, when the session has one: a second kernel per node from the backend's table
  // (null where it has none, with the reason in no_device_kernel), and its uploaded constants.
  std::shared_ptr<const Backend> backend;
  std::vector<KernelPtr> device_kernels;
  std::vector<std::string> no_device_kernel;
  std::unique_ptr<DeviceConstants> device_constants;
  // Where kernels take and put packed weights while they are created (not owned; null: none).
  PackStore* packs = nullptr;
};

// Orders nodes topologically (stable w.r.t. file order); LoadError on a cycle.
StatusOr<std::vector<int>> topological_order(const Graph& g);

// Builds kernels for every node; an Unsupported error lists every unsupported node at once.
// `release_packed`: an initializer that every reader packed into its own form, and that
// folding will not read again, drops its bytes as soon as its last reader has packed it (the
// session's final release_packed_constants catches the rest).
Status create_kernels(Program& p, bool release_packed = false);

// Evaluates nodes whose inputs are all constant once, turning their outputs into initializers.
Status fold_constants(Program& p, ThreadPool& pool);

// Builds p.backend's kernel for every node left to run (after folding). A node the device has no
// kernel for keeps the CPU's, with the reason recorded; any other error is a load error.
Status create_device_kernels(Program& p);

enum class Storage : uint8_t {
  kUnused,    // never read
  kInput,     // a graph input, borrowed from the caller
  kConstant,  // an initializer or a value folded at plan time
  kArena,     // an intermediate, at `offset` in the run's arena
  kOutput,    // a graph output: a fresh buffer per call, handed to the caller
  kDynamic,   // shape known only at run time: allocated when produced
  kOwned,     // an intermediate that cannot live in the arena (strings): a fresh owned buffer
              // per call, released when the call ends
};

struct ValuePlan {
  Storage storage = Storage::kUnused;
  DType dtype = DType::kUndefined;
  Shape shape;
  DeviceType device = DeviceType::kCpu;  // where the bytes live (kArena: in that device's arena)
  size_t offset = 0;                     // kArena
  const Tensor* constant = nullptr;      // kConstant
};

enum class StepKind : uint8_t {
  kNode,      // run node `node`'s kernel (the device's when device != kCpu)
  kToDevice,  // copy inputs[0] (host) to outputs[0] (device), stream-ordered
  kToHost,    // copy inputs[0] (device) to outputs[0] (host), stream-ordered
};

struct Step {
  StepKind kind = StepKind::kNode;
  int node = -1;
  bool dynamic = false;  // infer at run time (an input shape or a needed value is known only then)
  DeviceType device = DeviceType::kCpu;
  // The value ids read and written: the node's own, or the copies the planner made of them on
  // the device the step runs on. A copy step has one of each.
  std::vector<int> inputs, outputs;
  bool sync = false;            // kToHost: wait for the device before the next step (a CPU step reads it)
  size_t workspace_offset = 0;  // in the arena of `device`
  size_t workspace_bytes = 0;
};

// Where the nodes of a plan run, and why a node the device could not take stayed on the CPU.
struct Placement {
  struct Fallback {
    std::string node;  // Node::describe()
    std::string op;
    std::string reason;
  };
  std::string device = "cpu";       // the session's device
  int device_nodes = 0;             // steps on the device
  int cpu_nodes = 0;                // steps on the CPU
  int copies = 0;                   // copy steps between host and device
  int uploads = 0;                  // constants read from the device
  std::vector<Fallback> fallbacks;  // each CPU step of a session with a device
  // Why the plan cannot be recorded as one graph (empty: it can; see Plan::graph).
  std::string no_graph = "no device";
};

// What a plan depends on besides its inputs' dtypes and shapes (part of the cache key).
struct PlanKey {
  std::vector<DeviceType> input_devices;  // where each input lives; empty: all on the host
  bool device_outputs = false;            // outputs computed on the device are handed out there
  bool operator==(const PlanKey& o) const {
    return input_devices == o.input_devices && device_outputs == o.device_outputs;
  }
};

struct Plan {
  std::vector<Shape> input_shapes;  // the cache key, with `key`
  PlanKey key;
  // Per value id: the graph's values, then the device or host copies the planner added.
  std::vector<ValuePlan> values;
  std::vector<Step> steps;
  std::unordered_map<int, Tensor> folded;         // value id -> constant computed at plan time
  std::unordered_map<int, Tensor> device_folded;  // copy id -> a folded constant uploaded
  size_t arena_bytes = 0;
  size_t device_arena_bytes = 0;
  bool uses_device = false;  // some step runs on or copies to the device
  size_t max_arity = 0;      // the most inputs or outputs of any step
  Placement placement;
  // A graph: every node step on the device and none dynamic, host values read by device kernels
  // all constant, the only copies the graph inputs' way in and the outputs' way out. Those go
  // through the run context's staging memory, at these offsets (value id -> bytes).
  bool graph = false;
  std::unordered_map<int, size_t> staged;
  size_t staging_bytes = 0;
};

// The string-tensor safety net: Unsupported when a string value (DType::kString) reaches a kernel
// that does not declare supports_strings() (an input it reads, or any output). `in` are the
// node's inputs (null for omitted ones); `out` its outputs' infos, or null to check inputs only.
Status check_string_support(const Node& node, const Kernel& k, const std::vector<const ValueInfo*>& in,
                            const InferContext* out);

// Plans `prog` for inputs of these dtypes/shapes (graph input order). Folding at plan time
// runs kernels on `pool`.
StatusOr<std::shared_ptr<const Plan>> make_plan(const Program& prog, const std::vector<ValueInfo>& inputs,
                                                ThreadPool& pool, const PlanKey& key = {});

}  // namespace mserve
