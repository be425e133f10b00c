// Layout ops that rearrange elements without arithmetic, for every dtype (only bytes move):
// DepthToSpace and SpaceToDepth on [N, C, H, W] tensors, and ReverseSequence.
//
// DepthToSpace: mode DCR (default; the only mode before opset 11) reads the output's channel c,
// block row i and block column j from input channel (i * bs + j) * C' + c; mode CRD from
// c * bs * bs + i * bs + j. SpaceToDepth is the inverse with the same channel orders: DCR at
// every opset, CRD from opset 28 (its `mode` attribute).
//
// ReverseSequence (10): reverses the first sequence_lens[b] steps of each batch entry b along
// time_axis (batch_axis/time_axis are 0 and 1, in either order); later steps are copied.
#include <algorithm>
#include <cstring>
#include <string>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

template <class F>
void with_elem_type(size_t esize, F&& f) {
  switch (esize) {
    case 1: f(uint8_t{}); break;
    case 2: f(uint16_t{}); break;
    case 4: f(uint32_t{}); break;
    default: f(uint64_t{}); break;
  }
}

StatusOr<bool> parse_crd(const Node& node, bool has_mode) {
  if (!has_mode) return false;
  const std::string m = node.attr_string("mode", "DCR");
  if (m == "DCR") return false;
  if (m == "CRD") return true;
  return InvalidArgument("mode must be DCR or CRD, got '" + m + "'");
}

class DepthSpaceKernel final : public Kernel {
 public:
  // to_space: DepthToSpace, else SpaceToDepth.
  DepthSpaceKernel(bool to_space, int64_t bs, bool crd) : to_space_(to_space), bs_(bs), crd_(crd) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() == 4, "input must be 4-D [N, C, H, W], got shape " + s.str());
    const int64_t bb = bs_ * bs_;
    Shape out;
    if (to_space_) {
      MS_CHECK_ARG(s[1] % bb == 0,
                   "channels " + std::to_string(s[1]) + " are not divisible by blocksize^2 = " + std::to_string(bb));
      out = Shape{s[0], s[1] / bb, s[2] * bs_, s[3] * bs_};
    } else {
      MS_CHECK_ARG(s[2] % bs_ == 0 && s[3] % bs_ == 0,
                   "spatial dims of " + s.str() + " are not divisible by blocksize " + std::to_string(bs_));
      out = Shape{s[0], s[1] * bb, s[2] / bs_, s[3] / bs_};
    }
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    with_elem_type(dtype_size(ctx.input(0).dtype()), [&](auto u) { run<decltype(u)>(ctx); });
    return Status::OK();
  }

 private:
  // Input channel (DepthToSpace) / output channel (SpaceToDepth) of channel c, block offset (i, j).
  int64_t channel(int64_t c, int64_t i, int64_t j, int64_t C) const {
    return crd_ ? (c * bs_ + i) * bs_ + j : (i * bs_ + j) * C + c;
  }

  template <class U>
  void run(const ComputeContext& ctx) const {
    const Tensor& x = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return;
    const U* src = x.data<U>();
    U* dst = out.data<U>();
    const int64_t bs = bs_;
    if (to_space_) {
      // Output [N, C, H * bs, W * bs]; one task per output row.
      const int64_t N = out.dim(0), C = out.dim(1), H = x.dim(2), W = x.dim(3);
      const int64_t OW = W * bs, rows = N * C * H * bs;
      ctx.pool().parallel_for(rows, std::max<int64_t>(1, 8192 / OW), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t oy = r % (H * bs), nc = r / (H * bs);
          const int64_t n = nc / C, c = nc % C, h = oy / bs, i = oy % bs;
          U* d = dst + r * OW;
          for (int64_t j = 0; j < bs; ++j) {
            const U* sr = src + ((n * C * bs * bs + channel(c, i, j, C)) * H + h) * W;
            for (int64_t w = 0; w < W; ++w) d[w * bs + j] = sr[w];
          }
        }
      });
    } else {
      // Output [N, C * bs * bs, H / bs, W / bs]; one task per (n, input channel, output row).
      const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
      const int64_t OH = H / bs, OW = W / bs, rows = N * C * OH;
      ctx.pool().parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, W * bs)),
                              [&](int64_t b, int64_t e) {
                                for (int64_t r = b; r < e; ++r) {
                                  const int64_t oh = r % OH, nc = r / OH;
                                  const int64_t n = nc / C, c = nc % C;
                                  for (int64_t i = 0; i < bs; ++i) {
                                    const U* sr = src + ((n * C + c) * H + oh * bs + i) * W;
                                    for (int64_t j = 0; j < bs; ++j) {
                                      U* d = dst + ((n * C * bs * bs + channel(c, i, j, C)) * OH + oh) * OW;
                                      for (int64_t w = 0; w < OW; ++w) d[w] = sr[w * bs + j];
                                    }
                                  }
                                }
                              });
    }
  }

  bool to_space_;
  int64_t bs_;
  bool crd_;
};

StatusOr<KernelPtr> make(const Node& node, bool to_space, bool has_mode) {
  if (!node.attr("blocksize")) return InvalidArgument("attribute 'blocksize' is required");
  const int64_t bs = node.attr_int("blocksize", 0);
  if (bs < 1) return InvalidArgument("blocksize must be >= 1, got " + std::to_string(bs));
  MS_ASSIGN_OR_RETURN(bool crd, parse_crd(node, has_mode));
  return KernelPtr(new DepthSpaceKernel(to_space, bs, crd));
}

// ------------------------------------------------------------------------ ReverseSequence

class ReverseSequenceKernel final : public Kernel {
 public:
  ReverseSequenceKernel(int64_t batch_axis, int64_t time_axis) : batch_axis_(batch_axis), time_axis_(time_axis) {}

  Status infer(InferContext& ctx) const override {
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() >= 2, "input must have rank >= 2, got " + s.str());
    const Shape& l = ctx.shape(1);
    MS_CHECK_ARG(ctx.dtype(1) == DType::kInt64 || ctx.dtype(1) == DType::kInt32, "sequence_lens must be int64");
    MS_CHECK_ARG(l.rank() == 1 && l[0] == s[static_cast<int>(batch_axis_)],
                 "sequence_lens must have shape [batch], got " + l.str() + " for input " + s.str());
    ctx.set_output(0, ctx.dtype(0), s);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& lens = ctx.input(1);
    Tensor& y = ctx.output(0);
    const Shape& s = x.shape();
    const int ba = static_cast<int>(batch_axis_), ta = static_cast<int>(time_axis_);
    const int64_t batch = s[ba], steps = s[ta];
    const size_t slice = static_cast<size_t>(s.prod(2, s.rank())) * dtype_size(x.dtype());
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = lens.int_at(b);
      MS_CHECK_ARG(len >= 0 && len <= steps, "sequence_lens[" + std::to_string(b) + "] = " + std::to_string(len) +
                                                 " is outside [0, " + std::to_string(steps) + "]");
    }
    // Slice (t, b) starts at (t * stride_t + b * stride_b) slices.
    const int64_t st = ta == 0 ? batch : 1, sb = ba == 0 ? steps : 1;
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(y.raw());
    ctx.pool().parallel_for(batch * steps, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / steps, t = i % steps, len = lens.int_at(b);
        const int64_t from = t < len ? len - 1 - t : t;
        std::memcpy(dst + (t * st + b * sb) * slice, src + (from * st + b * sb) * slice, slice);
      }
    });
    return Status::OK();
  }

 private:
  int64_t batch_axis_, time_axis_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_DepthToSpace(const Node& node, const KernelInit&) {
  return make(node, true, node.opset >= 11);
}

StatusOr<KernelPtr> create_onnx_SpaceToDepth(const Node& node, const KernelInit&) {
  return make(node, false, node.opset >= 28);
}

StatusOr<KernelPtr> create_onnx_ReverseSequence(const Node& n, const KernelInit&) {
  const int64_t b = n.attr_int("batch_axis", 1), t = n.attr_int("time_axis", 0);
  MS_CHECK_ARG((b == 0 && t == 1) || (b == 1 && t == 0),
               "batch_axis and time_axis must be 0 and 1 (either order), got " + std::to_string(b) + " and " +
                   std::to_string(t));
  return KernelPtr(new ReverseSequenceKernel(b, t));
}

}  // namespace mserve
