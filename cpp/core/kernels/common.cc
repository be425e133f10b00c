#include "core/kernels/common.h"

#include <algorithm>

#include "core/parallel/thread_pool.h"

namespace mserve {

StatusOr<int> normalize_axis(int64_t axis, int rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    return InvalidArgument("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return static_cast<int>(a);
}

StatusOr<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  int r = std::max(a.rank(), b.rank());
  Shape out;
  for (int i = 0; i < r; ++i) {
    int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return InvalidArgument("shapes " + a.str() + " and " + b.str() + " cannot be broadcast together");
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

void broadcast_strides(const Shape& in, const Shape& out, int64_t* strides) {
  int off = out.rank() - in.rank();
  int64_t s = 1;
  for (int i = out.rank() - 1; i >= 0; --i) {
    int ii = i - off;
    if (ii < 0 || in[ii] == 1) {
      strides[i] = 0;
    } else {
      strides[i] = s;
    }
    if (ii >= 0) s *= in[ii];
  }
}

StatusOr<std::vector<int64_t>> read_ints(const Tensor& t, const char* what) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return InvalidArgument(std::string(what) + " must be int64 or int32, got " + dtype_name(t.dtype()));
  if (t.rank() > 1) return InvalidArgument(std::string(what) + " must be 1-D, got shape " + t.shape().str());
  std::vector<int64_t> v(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.int_at(i);
  return v;
}

StatusOr<int64_t> read_scalar_int(const Tensor& t, const char* what) {
  if (t.numel() != 1 || t.rank() > 1)
    return InvalidArgument(std::string(what) + " must be a scalar or a 1-element tensor, got " + t.desc());
  if (dtype_is_float(t.dtype()) || t.dtype() == DType::kBool)
    return InvalidArgument(std::string(what) + " must be an integer tensor, got " + t.desc());
  return t.int_at(0);
}

std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

StatusOr<AutoPad> parse_auto_pad(const std::string& s) {
  if (s.empty() || s == "NOTSET") return AutoPad::kNotSet;
  if (s == "SAME_UPPER") return AutoPad::kSameUpper;
  if (s == "SAME_LOWER") return AutoPad::kSameLower;
  if (s == "VALID") return AutoPad::kValid;
  return Unsupported("auto_pad '" + s + "' is not supported (NOTSET, SAME_UPPER, SAME_LOWER, VALID are)");
}

WindowAxis window_axis(AutoPad ap, int64_t in, int64_t k, int64_t s, int64_t d, int64_t pad_begin, int64_t pad_end,
                       bool ceil_mode) {
  const int64_t dk = (k - 1) * d + 1;  // extent of the dilated window
  WindowAxis w;
  if (ap == AutoPad::kNotSet) {
    w.pad_begin = pad_begin;
    w.pad_end = pad_end;
    const int64_t span = in + pad_begin + pad_end - dk;
    if (span < 0) return w;
    if (!ceil_mode) {
      w.out = span / s + 1;
    } else {
      w.out = (span + s - 1) / s + 1;
      if ((w.out - 1) * s >= in + pad_begin) --w.out;
    }
  } else if (ap == AutoPad::kValid) {
    w.out = in < dk ? 0 : (in - dk) / s + 1;
  } else {
    w.out = (in + s - 1) / s;
    const int64_t total = std::max<int64_t>(0, (w.out - 1) * s + dk - in);
    // SAME_UPPER puts the odd extra cell at the end, SAME_LOWER at the beginning.
    w.pad_begin = ap == AutoPad::kSameUpper ? total / 2 : total - total / 2;
    w.pad_end = total - w.pad_begin;
  }
  return w;
}

Status copy_input_to_output(const ComputeContext& ctx) {
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  if (in.nbytes() != out.nbytes() || in.dtype() != out.dtype()) return Internal("copy size mismatch");
  if (in.dtype() == DType::kString) {
    if (in.raw() == out.raw()) return Status::OK();
    ctx.pool().parallel_for(in.numel(), 1 << 12, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out.str(i) = in.str(i);
    });
    return Status::OK();
  }
  const char* src = static_cast<const char*>(in.raw());
  char* dst = static_cast<char*>(out.raw());
  if (src == dst || in.nbytes() == 0) return Status::OK();
  ctx.pool().parallel_for(static_cast<int64_t>(in.nbytes()), 1 << 20,
                          [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, static_cast<size_t>(e - b)); });
  return Status::OK();
}

}  // namespace mserve
