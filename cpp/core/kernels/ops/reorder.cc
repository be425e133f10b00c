// Ops that move elements without arithmetic:
//   ReverseSequence (10): reverses the first sequence_lens[b] steps of each batch entry b along
//     time_axis (batch_axis/time_axis are 0 and 1, in either order); later steps are copied.
//   CenterCropPad (18): crops or zero-pads each of `axes` (default all) to the length in `shape`,
//     centered: the kept (cropped) or placed (padded) range starts at floor(|diff| / 2).
//   Scatter (9, deprecated in 11): ScatterElements without a reduction; reuses its kernel.
// Elements are copied as bytes, so every dtype works.
#include <algorithm>
#include <cstring>

#include "core/parallel/thread_pool.h"
#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

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

class CenterCropPadKernel final : public Kernel {
 public:
  explicit CenterCropPadKernel(std::vector<int64_t> axes, bool has_axes)
      : axes_(std::move(axes)), has_axes_(has_axes) {}

  Status infer(InferContext& ctx) const override {
    const Shape& s = ctx.shape(0);
    const Tensor* shape = ctx.value(1);
    if (!shape) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(std::vector<int64_t> want, read_ints(*shape, "shape"));
    std::vector<int64_t> axes = axes_;
    if (!has_axes_)
      for (int i = 0; i < s.rank(); ++i) axes.push_back(i);
    MS_CHECK_ARG(want.size() == axes.size(),
                 "shape has " + std::to_string(want.size()) + " values for " + std::to_string(axes.size()) + " axes");
    Shape out = s;
    std::vector<uint8_t> seen(s.rank(), 0);
    for (size_t k = 0; k < axes.size(); ++k) {
      MS_ASSIGN_OR_RETURN(int a, normalize_axis(axes[k], s.rank()));
      MS_CHECK_ARG(!seen[a], "axis " + std::to_string(axes[k]) + " is repeated");
      seen[a] = 1;
      MS_CHECK_ARG(want[k] >= 0, "negative target length " + std::to_string(want[k]));
      out[a] = want[k];
    }
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    const Shape &in = x.shape(), &out = y.shape();
    const int rank = in.rank();
    const size_t es = dtype_size(x.dtype());
    std::memset(y.raw(), 0, y.nbytes());
    if (y.numel() == 0 || x.numel() == 0) return Status::OK();
    // Per axis: the copied length and where it starts in the input and the output.
    int64_t len[Shape::kMaxRank], src0[Shape::kMaxRank], dst0[Shape::kMaxRank];
    for (int a = 0; a < rank; ++a) {
      len[a] = std::min(in[a], out[a]);
      src0[a] = in[a] > out[a] ? (in[a] - out[a]) / 2 : 0;
      dst0[a] = out[a] > in[a] ? (out[a] - in[a]) / 2 : 0;
    }
    // Copy rows along the last axis.
    const int64_t rows = Shape(len, len + rank - 1).numel();
    const size_t row_bytes = static_cast<size_t>(len[rank - 1]) * es;
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(y.raw());
    ctx.pool().parallel_for(rows, 256, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t rem = r, si = 0, di = 0, sstride = 1, dstride = 1;
        si = src0[rank - 1];
        di = dst0[rank - 1];
        sstride = in[rank - 1];
        dstride = out[rank - 1];
        for (int a = rank - 2; a >= 0; --a) {
          const int64_t idx = rem % len[a];
          rem /= len[a];
          si += (idx + src0[a]) * sstride;
          di += (idx + dst0[a]) * dstride;
          sstride *= in[a];
          dstride *= out[a];
        }
        std::memcpy(dst + di * es, src + si * es, row_bytes);
      }
    });
    return Status::OK();
  }

 private:
  std::vector<int64_t> axes_;
  bool has_axes_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_ReverseSequence(const Node& n, const KernelInit&) {
  const int64_t b = n.attr_int("batch_axis", 1), t = n.attr_int("time_axis", 0);
  MS_CHECK_ARG((b == 0 && t == 1) || (b == 1 && t == 0),
               "batch_axis and time_axis must be 0 and 1 (either order), got " + std::to_string(b) + " and " +
                   std::to_string(t));
  return KernelPtr(new ReverseSequenceKernel(b, t));
}

StatusOr<KernelPtr> create_onnx_CenterCropPad(const Node& n, const KernelInit&) {
  return KernelPtr(new CenterCropPadKernel(n.attr_ints("axes"), n.attr("axes") != nullptr));
}

StatusOr<KernelPtr> create_onnx_Scatter(const Node& n, const KernelInit& init) {
  // Same inputs (data, indices, updates) and `axis` as ScatterElements; no reduction attribute.
  return create_onnx_ScatterElements(n, init);
}

}  // namespace mserve
