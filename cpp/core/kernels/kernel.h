// Kernel contract.
//
// A Kernel is created once per node at load time (attributes parsed, constant weights may be
// prepacked), then used in two steps:
//   infer   — plan time, once per input-shape signature: output dtypes and shapes from the
//             inputs' dtypes/shapes (and values, where an input is known: a constant or a
//             value the planner could fold), plus the scratch workspace `compute` needs.
//             A device kernel (device() != kCpu) may refuse shapes or dtypes it does not run
//             (refuse): the planner then runs the node on the CPU and reports why.
//   compute — per call, const and safe to run concurrently on different contexts. Outputs are
//             already allocated with the shapes `infer` returned. It must not allocate on
//             the heap for shapes it has seen in `infer`.
// Kernels never throw; errors travel as Status.
#pragma once
#include <memory>
#include <vector>

#include "core/graph/graph.h"
#include "core/status.h"
#include "core/tensor/tensor.h"

namespace mserve {

class ThreadPool;
class DeviceContext;
class PackStore;

struct ValueInfo {
  DType dtype = DType::kUndefined;
  Shape shape;
  const Tensor* value = nullptr;  // set when the value itself is known
};

class InferContext {
 public:
  InferContext(const Node& node, const std::vector<const ValueInfo*>& inputs, int threads)
      : node_(node), inputs_(inputs), outputs_(node.outputs.size()), threads_(threads) {}
  const Node& node() const { return node_; }
  // Threads compute will run on (workspace may be sized per thread).
  int threads() const { return threads_; }
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  bool has_input(int i) const { return i < num_inputs() && inputs_[i] != nullptr; }
  // Precondition: has_input(i).
  const ValueInfo& input(int i) const { return *inputs_[i]; }
  DType dtype(int i) const { return inputs_[i]->dtype; }
  const Shape& shape(int i) const { return inputs_[i]->shape; }
  // The value of input i when known now, else nullptr (see need_value).
  const Tensor* value(int i) const { return has_input(i) ? inputs_[i]->value : nullptr; }
  // Call when an output shape depends on an input value that is not known at plan time:
  // the planner then infers this node again at run time with every value known.
  Status need_value() {
    deferred_ = true;
    return Status::OK();
  }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  void set_output(int i, DType dtype, const Shape& shape) {
    outputs_[i].dtype = dtype;
    outputs_[i].shape = shape;
  }
  void set_workspace(size_t bytes) { workspace_ = bytes; }
  // A device kernel's answer for shapes or dtypes it does not run: the node falls back to the
  // CPU with `why` as the reason (an Unsupported status, which the planner recognizes).
  static Status refuse(const std::string& why) { return Unsupported(why); }

  // Read by the planner.
  bool deferred() const { return deferred_; }
  const ValueInfo& output(int i) const { return outputs_[i]; }
  size_t workspace() const { return workspace_; }

 private:
  const Node& node_;
  const std::vector<const ValueInfo*>& inputs_;
  std::vector<ValueInfo> outputs_;
  int threads_;
  size_t workspace_ = 0;
  bool deferred_ = false;
};

class ComputeContext {
 public:
  ComputeContext(const Tensor* const* inputs, int n_in, Tensor* const* outputs, int n_out, void* workspace,
                 ThreadPool* pool, DeviceContext* device = nullptr)
      : in_(inputs), out_(outputs), n_in_(n_in), n_out_(n_out), ws_(workspace), pool_(pool), device_(device) {}
  int num_inputs() const { return n_in_; }
  bool has_input(int i) const { return i < n_in_ && in_[i] != nullptr; }
  const Tensor& input(int i) const { return *in_[i]; }
  int num_outputs() const { return n_out_; }
  bool has_output(int i) const { return i < n_out_ && out_[i] != nullptr; }
  Tensor& output(int i) const { return *out_[i]; }
  void* workspace() const { return ws_; }
  // Never null: a single-threaded pool is passed when no pool is configured.
  ThreadPool& pool() const { return *pool_; }
  // The run's device context (stream, handles) for device kernels; null for CPU kernels. The
  // workspace of a device kernel is device memory.
  DeviceContext* device() const { return device_; }

 private:
  const Tensor* const* in_;
  Tensor* const* out_;
  int n_in_, n_out_;
  void* ws_;
  ThreadPool* pool_;
  DeviceContext* device_;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual Status infer(InferContext& ctx) const = 0;
  virtual Status compute(const ComputeContext& ctx) const = 0;
  // Where compute runs and where it expects its inputs and writes its outputs.
  virtual DeviceType device() const { return DeviceType::kCpu; }
  // For a device kernel: input `i` is read on the host, if at all (a shape, axes, pads): the
  // planner leaves it in host memory instead of copying it to the device.
  virtual bool host_input(int /*i*/) const { return false; }
  // False for kernels that read only their inputs' dtypes and shapes (Shape): the planner then
  // folds them as soon as shapes are known, and compute sees inputs with no data.
  virtual bool reads_input_data() const { return true; }
  // True for kernels whose output shapes are known only by running them (control flow): the
  // planner never folds them, `infer` is not called, and compute assigns each output itself
  // (ctx.output(i) = tensor).
  virtual bool produces_own_outputs() const { return false; }
  // True for kernels that handle string tensors (DType::kString) correctly: they copy elements
  // with std::string assignment (copy_data, copy_input_to_output), never memcpy. The planner
  // refuses (Unsupported) any node whose inputs or outputs are strings when its kernel returns
  // false, unless the kernel reads only its inputs' shapes (reads_input_data() false).
  // String kernels may allocate in compute (the strings' own storage).
  virtual bool supports_strings() const { return false; }
  // True for views (Reshape, Flatten, Squeeze, Unsqueeze, Identity): output 0 holds input 0's
  // bytes unchanged, so the planner may give both the same arena memory (compute then copies
  // nothing: copy_input_to_output skips equal pointers).
  virtual bool output_is_input_view() const { return false; }
  // True when the kernel made its own copy of constant input `i` (packed weights, a bias in
  // oneDNN memory) and never reads the original again: if no other node reads it, the session
  // releases the initializer's bytes, so weights are held once.
  virtual bool packed_constant(int /*i*/) const { return false; }
};

// What a kernel factory may see besides the node: the constant value of an input, if any, and
// whether the kernel will run at all.
class KernelInit {
 public:
  explicit KernelInit(const Graph& g, bool prepack = true, PackStore* packs = nullptr);
  const Tensor* constant(const Node& node, int input) const;
  // Where packed weights come from and go (pack_store.h); null: packed here, kept here.
  PackStore* packs() const { return prepack_ ? packs_ : nullptr; }
  // False for a kernel that only infers shapes (a device kernel's source of output shapes): it
  // must not make packed copies of weights, which would be host memory never used.
  bool prepack() const { return prepack_; }
  // The same graph, for a shapes-only kernel.
  KernelInit shapes_only() const;
  // Whether a kernel of the graph may see float16 or bfloat16 (needs_half_as_float): only then
  // are kernels wrapped in HalfAsFloat (half_as_float.h).
  bool has_half() const { return has_half_; }
  // The same graph where constant input i of the node being created reads `by_input[i]` instead
  // (when non-null): HalfAsFloat's float32 copies of 16-bit weights. The tensors must outlive
  // the kernel's creation; a kernel that keeps them must copy or pack them.
  KernelInit with_constants(std::vector<const Tensor*> by_input) const;

 private:
  const Graph& graph_;
  bool prepack_;
  PackStore* packs_;
  bool has_half_ = false;
  std::vector<const Tensor*> by_input_;
};

using KernelPtr = std::unique_ptr<Kernel>;
// An op's kernel factory (one per op_list.inc row).
using KernelFactory = StatusOr<KernelPtr> (*)(const Node&, const KernelInit&);

}  // namespace mserve
