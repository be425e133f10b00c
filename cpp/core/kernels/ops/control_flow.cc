// If, Loop and Scan. Each subgraph is a Session of its own, created at load time; it runs on the
// caller's thread pool. Subgraphs may read values of enclosing graphs: the loader appends those
// as implicit inputs of the node, and each subgraph's capture_positions say which ones it reads.
// Output shapes are known only by running the body, so these kernels produce their own outputs.
// String tensors pass through (stacking and slicing assign them element-wise).
#include <algorithm>
#include <cstring>

#include "core/exec/session.h"
#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

StatusOr<std::shared_ptr<Session>> subgraph_session(const Node& n, const KernelInit& init, const char* attr) {
  const Attribute* a = n.attr(attr);
  if (!a || a->kind != Attribute::Kind::kGraph || !a->g)
    return InvalidArgument(std::string("missing graph attribute '") + attr + "'");
  SessionOptions o;
  o.threads = 1;  // bodies run on the caller's pool (Session::run's pool argument)
  o.subgraph = true;
  o.packs = init.packs();
  auto s = Session::create(*a->g, o);
  if (!s.ok()) return s.status().with_context(std::string("subgraph '") + attr + "': ");
  return s;
}

// Appends the captured outer values `body` reads to `inputs`.
void add_captures(const ComputeContext& ctx, const Session& body, std::vector<Tensor>& inputs) {
  for (int pos : body.graph().capture_positions) inputs.push_back(ctx.input(pos));
}

StatusOr<bool> scalar_bool(const Tensor& t, const char* what) {
  if (t.numel() != 1) return InvalidArgument(std::string(what) + " must hold one element, got " + t.desc());
  return t.float_at(0) != 0.0;
}

// Stacks equal-shaped tensors along a new axis `axis` (0 <= axis <= rank), in `order`.
StatusOr<Tensor> stack(const std::vector<Tensor>& parts, int64_t axis, bool reverse) {
  const Tensor& first = parts.front();
  for (const Tensor& p : parts)
    if (p.shape() != first.shape() || p.dtype() != first.dtype())
      return InvalidArgument("scan outputs change shape across iterations: " + first.desc() + " vs " + p.desc());
  const int r = first.rank();
  if (!Shape::fits(r + 1)) return Unsupported("scan output rank too large");
  if (axis < 0) axis += r + 1;
  if (axis < 0 || axis > r) return InvalidArgument("scan output axis out of range");
  Shape out = first.shape();
  out.insert(static_cast<int>(axis), static_cast<int64_t>(parts.size()));
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(first.dtype(), out));
  const int64_t outer = first.shape().prod(0, static_cast<int>(axis));
  const size_t block = static_cast<size_t>(first.shape().prod(static_cast<int>(axis), r)) * dtype_size(first.dtype());
  char* dst = static_cast<char*>(t.raw());
  const int64_t n = static_cast<int64_t>(parts.size());
  if (t.dtype() == DType::kString) {
    const int64_t len = first.shape().prod(static_cast<int>(axis), r);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i) {
        const Tensor& p = parts[reverse ? n - 1 - i : i];
        for (int64_t k = 0; k < len; ++k) t.str((o * n + i) * len + k) = p.str(o * len + k);
      }
    return t;
  }
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n; ++i) {
      const Tensor& p = parts[reverse ? n - 1 - i : i];
      std::memcpy(dst + (o * n + i) * block, static_cast<const char*>(p.raw()) + o * block, block);
    }
  return t;
}

// Slice `i` of `t` along `axis` (the axis removed), copied into a new tensor.
StatusOr<Tensor> take(const Tensor& t, int axis, int64_t i) {
  Shape s = t.shape();
  const int64_t n = s[axis];
  s.erase(axis);
  MS_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(t.dtype(), s));
  const int64_t outer = t.shape().prod(0, axis);
  if (t.dtype() == DType::kString) {
    const int64_t len = t.shape().prod(axis + 1, t.rank());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < len; ++k) out.str(o * len + k) = t.str((o * n + i) * len + k);
    return out;
  }
  const size_t block = static_cast<size_t>(t.shape().prod(axis + 1, t.rank())) * dtype_size(t.dtype());
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(static_cast<char*>(out.raw()) + o * block, static_cast<const char*>(t.raw()) + (o * n + i) * block,
                block);
  return out;
}

class IfKernel final : public Kernel {
 public:
  IfKernel(std::shared_ptr<Session> then_b, std::shared_ptr<Session> else_b)
      : then_(std::move(then_b)), else_(std::move(else_b)) {}
  bool produces_own_outputs() const override { return true; }
  bool supports_strings() const override { return true; }  // tensors pass through; copies are typed
  Status infer(InferContext& ctx) const override { return ctx.need_value(); }
  Status compute(const ComputeContext& ctx) const override {
    MS_ASSIGN_OR_RETURN(bool cond, scalar_bool(ctx.input(0), "cond"));
    const Session& branch = cond ? *then_ : *else_;
    std::vector<Tensor> inputs, outputs;
    add_captures(ctx, branch, inputs);
    MS_RETURN_IF_ERROR(
        branch.run(inputs, &outputs, &ctx.pool()).with_context(cond ? "then branch: " : "else branch: "));
    if (static_cast<int>(outputs.size()) != ctx.num_outputs())
      return InvalidArgument("the branch returns " + std::to_string(outputs.size()) + " values, the node has " +
                             std::to_string(ctx.num_outputs()) + " outputs");
    for (int o = 0; o < ctx.num_outputs(); ++o)
      if (ctx.has_output(o)) ctx.output(o) = std::move(outputs[o]);
    return Status::OK();
  }

 private:
  std::shared_ptr<Session> then_, else_;
};

class LoopKernel final : public Kernel {
 public:
  LoopKernel(std::shared_ptr<Session> body, int explicit_inputs)
      : body_(std::move(body)), n_explicit_(explicit_inputs) {}
  bool produces_own_outputs() const override { return true; }
  bool supports_strings() const override { return true; }  // tensors pass through; copies are typed
  Status infer(InferContext& ctx) const override { return ctx.need_value(); }

  Status compute(const ComputeContext& ctx) const override {
    const int n_carried = n_explicit_ - 2;
    const int n_scan = ctx.num_outputs() - n_carried;
    int64_t max_trips = std::numeric_limits<int64_t>::max();
    if (ctx.has_input(0)) {
      MS_CHECK_ARG(ctx.input(0).numel() == 1, "M must hold one element");
      max_trips = ctx.input(0).int_at(0);
    }
    bool cond = true;
    if (ctx.has_input(1)) {
      MS_ASSIGN_OR_RETURN(cond, scalar_bool(ctx.input(1), "cond"));
    }
    std::vector<Tensor> carried;
    for (int i = 0; i < n_carried; ++i) carried.push_back(ctx.input(2 + i));
    std::vector<std::vector<Tensor>> scans(std::max(n_scan, 0));
    MS_ASSIGN_OR_RETURN(Tensor iter, Tensor::empty(DType::kInt64, Shape{}));
    MS_ASSIGN_OR_RETURN(Tensor cond_t, Tensor::empty(DType::kBool, Shape{}));
    std::vector<Tensor> inputs, outputs;
    for (int64_t i = 0; i < max_trips && cond; ++i) {
      *iter.data<int64_t>() = i;
      *cond_t.data<bool>() = cond;
      inputs.assign({iter, cond_t});
      inputs.insert(inputs.end(), carried.begin(), carried.end());
      add_captures(ctx, *body_, inputs);
      MS_RETURN_IF_ERROR(body_->run(inputs, &outputs, &ctx.pool()).with_context("loop body: "));
      if (static_cast<int>(outputs.size()) != 1 + n_carried + n_scan)
        return InvalidArgument("the loop body returns " + std::to_string(outputs.size()) + " values, expected " +
                               std::to_string(1 + n_carried + n_scan));
      MS_ASSIGN_OR_RETURN(cond, scalar_bool(outputs[0], "the body's condition"));
      for (int c = 0; c < n_carried; ++c) carried[c] = std::move(outputs[1 + c]);
      for (int k = 0; k < n_scan; ++k) scans[k].push_back(std::move(outputs[1 + n_carried + k]));
    }
    for (int c = 0; c < n_carried; ++c) {
      if (!ctx.has_output(c)) continue;
      // Zero iterations hand back the initial values: copy them (they are the caller's).
      if (carried[c].raw() == ctx.input(2 + c).raw()) {
        MS_ASSIGN_OR_RETURN(carried[c], carried[c].clone());
      }
      ctx.output(c) = std::move(carried[c]);
    }
    for (int k = 0; k < n_scan; ++k) {
      if (!ctx.has_output(n_carried + k)) continue;
      if (scans[k].empty()) {
        MS_ASSIGN_OR_RETURN(ctx.output(n_carried + k), Tensor::empty(DType::kFloat32, Shape{0}));
        continue;
      }
      MS_ASSIGN_OR_RETURN(ctx.output(n_carried + k), stack(scans[k], 0, false));
    }
    return Status::OK();
  }

 private:
  std::shared_ptr<Session> body_;
  int n_explicit_;
};

class ScanKernel final : public Kernel {
 public:
  ScanKernel(const Node& n, std::shared_ptr<Session> body, int explicit_inputs)
      : body_(std::move(body)),
        n_explicit_(explicit_inputs),
        n_scan_in_(static_cast<int>(n.attr_int("num_scan_inputs", 0))),
        in_axes_(n.attr_ints("scan_input_axes")),
        in_dirs_(n.attr_ints("scan_input_directions")),
        out_axes_(n.attr_ints("scan_output_axes")),
        out_dirs_(n.attr_ints("scan_output_directions")) {}
  bool produces_own_outputs() const override { return true; }
  bool supports_strings() const override { return true; }  // tensors pass through; copies are typed
  Status infer(InferContext& ctx) const override { return ctx.need_value(); }

  Status compute(const ComputeContext& ctx) const override {
    const int n_state = n_explicit_ - n_scan_in_;
    const int n_scan_out = ctx.num_outputs() - n_state;
    MS_CHECK_ARG(n_state >= 0 && n_scan_in_ >= 1, "num_scan_inputs does not match the inputs");
    int64_t length = -1;
    std::vector<int> axes(n_scan_in_);
    for (int j = 0; j < n_scan_in_; ++j) {
      const Tensor& x = ctx.input(n_state + j);
      MS_ASSIGN_OR_RETURN(axes[j], normalize_axis(in_axes_.empty() ? 0 : in_axes_[j], x.rank()));
      const int64_t len = x.dim(axes[j]);
      MS_CHECK_ARG(length < 0 || len == length, "scan inputs have different sequence lengths");
      length = len;
    }
    std::vector<Tensor> state;
    for (int i = 0; i < n_state; ++i) state.push_back(ctx.input(i));
    std::vector<std::vector<Tensor>> scans(std::max(n_scan_out, 0));
    std::vector<Tensor> inputs, outputs;
    for (int64_t t = 0; t < length; ++t) {
      inputs.assign(state.begin(), state.end());
      for (int j = 0; j < n_scan_in_; ++j) {
        const bool rev = !in_dirs_.empty() && in_dirs_[j] != 0;
        MS_ASSIGN_OR_RETURN(Tensor slice, take(ctx.input(n_state + j), axes[j], rev ? length - 1 - t : t));
        inputs.push_back(std::move(slice));
      }
      add_captures(ctx, *body_, inputs);
      MS_RETURN_IF_ERROR(body_->run(inputs, &outputs, &ctx.pool()).with_context("scan body: "));
      if (static_cast<int>(outputs.size()) != n_state + n_scan_out)
        return InvalidArgument("the scan body returns " + std::to_string(outputs.size()) + " values, expected " +
                               std::to_string(n_state + n_scan_out));
      for (int i = 0; i < n_state; ++i) state[i] = std::move(outputs[i]);
      for (int k = 0; k < n_scan_out; ++k) scans[k].push_back(std::move(outputs[n_state + k]));
    }
    for (int i = 0; i < n_state; ++i) {
      if (!ctx.has_output(i)) continue;
      if (state[i].raw() == ctx.input(i).raw()) {
        MS_ASSIGN_OR_RETURN(state[i], state[i].clone());
      }
      ctx.output(i) = std::move(state[i]);
    }
    for (int k = 0; k < n_scan_out; ++k) {
      if (!ctx.has_output(n_state + k)) continue;
      if (scans[k].empty()) return Unsupported("Scan over an empty sequence (output shapes are unknown)");
      const bool rev = !out_dirs_.empty() && out_dirs_[k] != 0;
      MS_ASSIGN_OR_RETURN(ctx.output(n_state + k), stack(scans[k], out_axes_.empty() ? 0 : out_axes_[k], rev));
    }
    return Status::OK();
  }

 private:
  std::shared_ptr<Session> body_;
  int n_explicit_, n_scan_in_;
  std::vector<int64_t> in_axes_, in_dirs_, out_axes_, out_dirs_;
};

int explicit_inputs(const Node& n) { return static_cast<int>(n.inputs.size()) - n.num_implicit_inputs; }

}  // namespace

StatusOr<KernelPtr> create_onnx_If(const Node& n, const KernelInit& init) {
  MS_ASSIGN_OR_RETURN(auto then_b, subgraph_session(n, init, "then_branch"));
  MS_ASSIGN_OR_RETURN(auto else_b, subgraph_session(n, init, "else_branch"));
  if (then_b->graph().num_formal_inputs || else_b->graph().num_formal_inputs)
    return InvalidArgument("If branches take no inputs");
  return KernelPtr(new IfKernel(std::move(then_b), std::move(else_b)));
}

StatusOr<KernelPtr> create_onnx_Loop(const Node& n, const KernelInit& init) {
  MS_ASSIGN_OR_RETURN(auto body, subgraph_session(n, init, "body"));
  const int ex = explicit_inputs(n);
  MS_CHECK_ARG(ex >= 2, "Loop needs inputs M and cond (either may be empty)");
  MS_CHECK_ARG(static_cast<int>(body->graph().num_formal_inputs) == ex,
               "the loop body takes " + std::to_string(body->graph().num_formal_inputs) + " inputs, expected " +
                   std::to_string(ex) + " (iteration, condition, loop-carried values)");
  return KernelPtr(new LoopKernel(std::move(body), ex));
}

StatusOr<KernelPtr> create_onnx_Scan(const Node& n, const KernelInit& init) {
  if (n.opset < 9) return Unsupported("Scan before opset 9 (batched, with sequence_lens) is not supported");
  MS_ASSIGN_OR_RETURN(auto body, subgraph_session(n, init, "body"));
  const int ex = explicit_inputs(n);
  MS_CHECK_ARG(static_cast<int>(body->graph().num_formal_inputs) == ex,
               "the scan body takes " + std::to_string(body->graph().num_formal_inputs) + " inputs, expected " +
                   std::to_string(ex));
  return KernelPtr(new ScanKernel(n, std::move(body), ex));
}

}  // namespace mserve
