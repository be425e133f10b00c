// Pad: modes constant, reflect, edge (all opsets) and wrap (19+). pads, the optional constant_value
// and the optional axes (18+) are inputs; the importer turns the `paddings` / `pads` / `value`
// attributes of opsets before 11 into them (onnx/normalize.h). constant_value has the data's dtype,
// or, for float data, float32 (what the importer writes where the data's dtype is not declared).
//
// Negative pads crop. As in ONNX Runtime, cropping happens first and the non-constant modes then
// pad the cropped tensor (reflect/edge/wrap read only kept elements). reflect and wrap repeat
// periodically when a pad is longer than the axis, as numpy.pad does.
//
// CenterCropPad (18): crops or zero-pads each of `axes` (default all) to the length in `shape`,
// centered: the kept (cropped) or placed (padded) range starts at floor(|diff| / 2).
//
// Both support every dtype: only bytes move (Pad's constant is converted to the data's dtype).
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/copy_view.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

constexpr int kMaxRank = Shape::kMaxRank;

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// Per axis: the kept input range [lo, lo + n) and the (non-negative) padding before it.
struct PadSpec {
  int64_t lo[kMaxRank];
  int64_t n[kMaxRank];
  int64_t before[kMaxRank];
  int64_t out[kMaxRank];
};

// pads: 2 * k values (all begins, then all ends) for axes (k entries; null means 0..rank-1).
Status make_pad_spec(const Shape& in, PadMode mode, const int64_t* pads, int npads, const int64_t* axes, int naxes,
                     PadSpec& spec) {
  const int r = in.rank();
  const int k = axes ? naxes : r;
  if (npads != 2 * k)
    return InvalidArgument("pads has " + std::to_string(npads) + " values, expected " + std::to_string(2 * k) +
                           (axes ? " (2 per axis)" : " (2 per input dimension)"));
  int64_t pb[kMaxRank] = {}, pe[kMaxRank] = {};
  bool seen[kMaxRank] = {};
  for (int i = 0; i < k; ++i) {
    int64_t a = axes ? axes[i] : i;
    if (a < 0) a += r;
    if (a < 0 || a >= r) return InvalidArgument("axis " + std::to_string(axes[i]) + " is out of range");
    if (seen[a]) return InvalidArgument("axis " + std::to_string(axes[i]) + " is repeated");
    seen[a] = true;
    pb[a] = pads[i];
    pe[a] = pads[k + i];
  }
  for (int d = 0; d < r; ++d) {
    const int64_t crop_b = std::max<int64_t>(0, -pb[d]), crop_e = std::max<int64_t>(0, -pe[d]);
    spec.lo[d] = crop_b;
    spec.n[d] = in[d] - crop_b - crop_e;
    spec.before[d] = std::max<int64_t>(0, pb[d]);
    spec.out[d] = in[d] + pb[d] + pe[d];
    if (spec.n[d] < 0 || spec.out[d] < 0)
      return InvalidArgument("pads crop more than dimension " + std::to_string(d) + " of size " +
                             std::to_string(in[d]) + " holds");
    if (mode != PadMode::kConstant && spec.n[d] == 0 && spec.out[d] > 0)
      return InvalidArgument("cannot pad the empty dimension " + std::to_string(d) + " in a non-constant mode");
  }
  return Status::OK();
}

// Input index (absolute) for output index o along one axis, or -1 for the constant.
inline int64_t source_index(PadMode mode, const PadSpec& s, int d, int64_t o) {
  const int64_t n = s.n[d];
  int64_t i = o - s.before[d];
  if (i >= 0 && i < n) return s.lo[d] + i;
  if (mode == PadMode::kConstant || n == 0) return -1;
  switch (mode) {
    case PadMode::kEdge: i = i < 0 ? 0 : n - 1; break;
    case PadMode::kReflect:
      if (n == 1) {
        i = 0;
      } else {
        const int64_t p = 2 * (n - 1);
        i = ((i % p) + p) % p;
        if (i >= n) i = p - i;
      }
      break;
    default: i = ((i % n) + n) % n; break;  // wrap
  }
  return s.lo[d] + i;
}

// A float32 constant_value in the float type T.
template <class T>
T from_float(float v) {
  if constexpr (std::is_same_v<T, bool>)
    return v != 0.0f;
  else if constexpr (std::is_same_v<T, Eigen::half>)
    return Eigen::half(v);
  else
    return static_cast<T>(v);
}

template <class U>
void pad_run(const U* src, U* dst, const Shape& in, const PadSpec& s, PadMode mode, U cval, ThreadPool& pool) {
  const int r = in.rank();
  if (r == 0) {
    *dst = *src;
    return;
  }
  int64_t ist[kMaxRank];
  int64_t st = 1;
  for (int d = r - 1; d >= 0; --d) {
    ist[d] = st;
    st *= in[d];
  }
  int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= s.out[d];
  const int last = r - 1;
  const int64_t len = s.out[last], before = s.before[last], n = s.n[last];
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(len, 1));
  pool.parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      U* out = dst + q * len;
      int64_t rem = q, off = 0;
      bool constant = false;
      for (int d = last - 1; d >= 0; --d) {
        const int64_t o = rem % s.out[d];
        rem /= s.out[d];
        const int64_t i = source_index(mode, s, d, o);
        if (i < 0) {
          constant = true;
          break;
        }
        off += i * ist[d];
      }
      if (constant) {
        std::fill(out, out + len, cval);
        continue;
      }
      const U* row = src + off;
      for (int64_t j = 0; j < before; ++j) {
        const int64_t i = source_index(mode, s, last, j);
        out[j] = i < 0 ? cval : row[i];
      }
      if (n > 0) std::memcpy(out + before, row + s.lo[last], static_cast<size_t>(n) * sizeof(U));
      for (int64_t j = before + n; j < len; ++j) {
        const int64_t i = source_index(mode, s, last, j);
        out[j] = i < 0 ? cval : row[i];
      }
    }
  });
}

template <class U>
void pad_dispatch(const Tensor& in, Tensor& out, const PadSpec& s, PadMode mode, const unsigned char* cbytes,
                  ThreadPool& pool) {
  U cval;
  std::memcpy(&cval, cbytes, sizeof(U));
  pad_run<U>(in.data<U>(), out.data<U>(), in.shape(), s, mode, cval, pool);
}

class PadKernel final : public Kernel {
 public:
  explicit PadKernel(PadMode mode) : mode_(mode) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs a data input");
    MS_CHECK_ARG(ctx.has_input(1), "needs a pads input");
    if (!ctx.value(1) || (ctx.has_input(3) && !ctx.value(3))) return ctx.need_value();
    if (ctx.has_input(2)) {
      const DType c = ctx.dtype(2), d = ctx.dtype(0);
      if (c != d && !(c == DType::kFloat32 && dtype_is_float(d)))
        return InvalidArgument(std::string("constant_value has dtype ") + dtype_name(c) + ", data has " +
                               dtype_name(d));
      if (ctx.shape(2).numel() > 1) return InvalidArgument("constant_value must hold one value");
    }
    PadSpec spec;
    MS_RETURN_IF_ERROR(resolve(
        ctx.shape(0), [&](int i) { return ctx.value(i); }, spec));
    Shape out = ctx.shape(0);
    for (int d = 0; d < out.rank(); ++d) out[d] = spec.out[d];
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    PadSpec spec;
    MS_RETURN_IF_ERROR(resolve(
        in.shape(), [&](int i) { return ctx.has_input(i) ? &ctx.input(i) : nullptr; }, spec));
    alignas(8) unsigned char cbytes[8] = {};
    const size_t esize = dtype_size(in.dtype());
    if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
      const Tensor& c = ctx.input(2);
      if (c.dtype() == in.dtype()) {
        std::memcpy(cbytes, c.raw(), esize);
      } else {  // a float32 constant for other float data
        MS_SWITCH_FLOAT(in.dtype(), T, return Internal("pad dtype"), {
          const T t = from_float<T>(c.data<float>()[0]);
          std::memcpy(cbytes, &t, sizeof(T));
        });
      }
    }
    switch (esize) {
      case 1: pad_dispatch<uint8_t>(in, out, spec, mode_, cbytes, ctx.pool()); break;
      case 2: pad_dispatch<uint16_t>(in, out, spec, mode_, cbytes, ctx.pool()); break;
      case 4: pad_dispatch<uint32_t>(in, out, spec, mode_, cbytes, ctx.pool()); break;
      default: pad_dispatch<uint64_t>(in, out, spec, mode_, cbytes, ctx.pool()); break;
    }
    return Status::OK();
  }

 private:
  template <class Get>
  Status resolve(const Shape& in, Get get, PadSpec& spec) const {
    int64_t pads[2 * kMaxRank], axes[kMaxRank];
    const Tensor* pt = get(1);
    const int np = read_ints_fixed(*pt, pads, 2 * kMaxRank);
    if (np < 0) return InvalidArgument("pads must be a 1-D int64 tensor of at most 16 values, got " + pt->desc());
    const Tensor* at = get(3);
    if (!at) return make_pad_spec(in, mode_, pads, np, nullptr, 0, spec);
    const int na = read_ints_fixed(*at, axes, kMaxRank);
    if (na < 0) return InvalidArgument("axes must be a 1-D int tensor of at most 8 values, got " + at->desc());
    return make_pad_spec(in, mode_, pads, np, axes, na, spec);
  }

  PadMode mode_;
};

// -------------------------------------------------------------------------- CenterCropPad

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

StatusOr<KernelPtr> create_onnx_Pad(const Node& node, const KernelInit&) {
  const std::string m = node.attr_string("mode", "constant");
  PadMode mode;
  if (m == "constant")
    mode = PadMode::kConstant;
  else if (m == "reflect")
    mode = PadMode::kReflect;
  else if (m == "edge")
    mode = PadMode::kEdge;
  else if (m == "wrap" && node.opset >= 19)
    mode = PadMode::kWrap;
  else
    return InvalidArgument("mode '" + m + "' is not a Pad mode at opset " + std::to_string(node.opset));
  return KernelPtr(new PadKernel(mode));
}

StatusOr<KernelPtr> create_onnx_CenterCropPad(const Node& n, const KernelInit&) {
  return KernelPtr(new CenterCropPadKernel(n.attr_ints("axes"), n.attr("axes") != nullptr));
}

}  // namespace mserve
