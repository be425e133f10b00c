#include "core/kernels/conv_geometry.h"

#include <algorithm>
#include <string>

namespace mserve {
namespace {

Status check_min(const std::vector<int64_t>& v, const char* what, int64_t min) {
  for (int64_t e : v)
    MS_CHECK_ARG(e >= min, std::string(what) + " " + ints_str(v) + " must be >= " + std::to_string(min));
  return Status::OK();
}

Status check_len(const std::vector<int64_t>& v, size_t n, const char* what) {
  MS_CHECK_ARG(v.empty() || v.size() == n,
               std::string(what) + " " + ints_str(v) + " must have " + std::to_string(n) + " values");
  return Status::OK();
}

// The checks shared by the ops with a weight input: ranks and attribute lengths. Returns the
// number of spatial dims.
StatusOr<size_t> check_ranks(const WindowAttrs& a, const Shape& x, const Shape& w) {
  const int r = x.rank();
  MS_CHECK_ARG(r >= 3, "X must have rank >= 3 (N, C, spatial...), got shape " + x.str());
  if (r > 5) return Unsupported("only 1-D, 2-D and 3-D windows are supported, X has shape " + x.str());
  MS_CHECK_ARG(w.rank() == r, "W must have the rank of X: X " + x.str() + ", W " + w.str());
  const size_t sp = static_cast<size_t>(r - 2);
  MS_RETURN_IF_ERROR(check_window_lengths(a, sp));
  for (size_t i = 0; i < sp; ++i) {
    const int64_t k = w[static_cast<int>(2 + i)];
    MS_CHECK_ARG(k >= 1, "W " + w.str() + " has an empty kernel dimension");
    MS_CHECK_ARG(a.kernel_shape.empty() || a.kernel_shape[i] == k,
                 "kernel_shape " + ints_str(a.kernel_shape) + " differs from the kernel of W " + w.str());
  }
  return sp;
}

// Spatial axis i of sp (X dim 2 + i) by the forward window rule.
Status forward_axis(const WindowAttrs& a, const Shape& x, size_t sp, size_t i, int64_t k, bool ceil_mode,
                    ConvGeometry* g) {
  const int j = static_cast<int>(3 - sp + i);
  const int64_t in = x[static_cast<int>(2 + i)];
  const int64_t s = a.strides.empty() ? 1 : a.strides[i];
  const int64_t d = a.dilations.empty() ? 1 : a.dilations[i];
  const WindowAxis wa = window_axis(a.auto_pad, in, k, s, d, a.pads.empty() ? 0 : a.pads[i],
                                    a.pads.empty() ? 0 : a.pads[sp + i], ceil_mode);
  MS_CHECK_ARG(wa.out > 0, "output spatial dimension " + std::to_string(i) + " would be empty: input " + x.str() +
                               ", kernel " + std::to_string(k) + ", stride " + std::to_string(s) + ", dilation " +
                               std::to_string(d));
  g->in[j] = in;
  g->k[j] = k;
  g->s[j] = s;
  g->d[j] = d;
  g->pb[j] = wa.pad_begin;
  g->pe[j] = wa.pad_end;
  g->out[j] = wa.out;
  return Status::OK();
}

}  // namespace

StatusOr<WindowAttrs> parse_window_attrs(const Node& n) {
  WindowAttrs a;
  MS_ASSIGN_OR_RETURN(a.auto_pad, parse_auto_pad(n.attr_string("auto_pad", "NOTSET")));
  a.group = n.attr_int("group", 1);
  a.kernel_shape = n.attr_ints("kernel_shape");
  a.strides = n.attr_ints("strides");
  a.dilations = n.attr_ints("dilations");
  a.pads = n.attr_ints("pads");
  a.output_padding = n.attr_ints("output_padding");
  a.output_shape = n.attr_ints("output_shape");
  MS_CHECK_ARG(a.group >= 1, "group must be >= 1, got " + std::to_string(a.group));
  MS_RETURN_IF_ERROR(check_min(a.kernel_shape, "kernel_shape", 1));
  MS_RETURN_IF_ERROR(check_min(a.strides, "strides", 1));
  MS_RETURN_IF_ERROR(check_min(a.dilations, "dilations", 1));
  MS_RETURN_IF_ERROR(check_min(a.pads, "pads", 0));
  MS_RETURN_IF_ERROR(check_min(a.output_padding, "output_padding", 0));
  MS_RETURN_IF_ERROR(check_min(a.output_shape, "output_shape", 0));
  MS_CHECK_ARG(a.pads.size() % 2 == 0, "pads " + ints_str(a.pads) + " must have an even number of values");
  return a;
}

Status check_window_lengths(const WindowAttrs& a, size_t sp) {
  MS_RETURN_IF_ERROR(check_len(a.kernel_shape, sp, "kernel_shape"));
  MS_RETURN_IF_ERROR(check_len(a.strides, sp, "strides"));
  MS_RETURN_IF_ERROR(check_len(a.dilations, sp, "dilations"));
  MS_RETURN_IF_ERROR(check_len(a.output_padding, sp, "output_padding"));
  return check_len(a.pads, 2 * sp, "pads");
}

Shape ConvGeometry::output_shape() const {
  Shape y{N, M};
  for (int j = 3 - sp; j < 3; ++j) y.push_back(out[j]);
  return y;
}

Status conv_geometry(const WindowAttrs& a, const Shape& x, const Shape& w, ConvGeometry* g) {
  MS_ASSIGN_OR_RETURN(size_t sp, check_ranks(a, x, w));
  MS_CHECK_ARG(w[1] * a.group == x[1], "X has " + std::to_string(x[1]) + " channels but W " + w.str() + " with group " +
                                           std::to_string(a.group) +
                                           " expects W.shape[1] * group = " + std::to_string(w[1] * a.group));
  MS_CHECK_ARG(w[0] % a.group == 0, "the " + std::to_string(w[0]) + " output channels of W " + w.str() +
                                        " are not divisible by group " + std::to_string(a.group));
  g->N = x[0];
  g->C = x[1];
  g->M = w[0];
  g->group = a.group;
  g->Cg = w[1];
  g->Mg = w[0] / a.group;
  g->sp = static_cast<int>(sp);
  for (size_t i = 0; i < sp; ++i) MS_RETURN_IF_ERROR(forward_axis(a, x, sp, i, w[static_cast<int>(2 + i)], false, g));
  return Status::OK();
}

Status conv_transpose_geometry(const WindowAttrs& a, const Shape& x, const Shape& w, ConvGeometry* g) {
  MS_ASSIGN_OR_RETURN(size_t sp, check_ranks(a, x, w));
  // output_shape may also carry the N and C dims (older exporters): only the spatial ones count.
  MS_CHECK_ARG(a.output_shape.empty() || a.output_shape.size() == sp || a.output_shape.size() == sp + 2,
               "output_shape " + ints_str(a.output_shape) + " must have " + std::to_string(sp) + " values");
  const size_t os_off = a.output_shape.size() == sp + 2 ? 2 : 0;
  MS_CHECK_ARG(w[0] == x[1], "W " + w.str() + " must have X's " + std::to_string(x[1]) + " channels as dim 0");
  MS_CHECK_ARG(x[1] % a.group == 0,
               "the " + std::to_string(x[1]) + " channels of X are not divisible by group " + std::to_string(a.group));
  g->N = x[0];
  g->C = x[1];
  g->M = w[1] * a.group;
  g->group = a.group;
  g->Cg = x[1] / a.group;
  g->Mg = w[1];
  g->sp = static_cast<int>(sp);
  const bool same = a.auto_pad == AutoPad::kSameUpper || a.auto_pad == AutoPad::kSameLower;
  for (size_t i = 0; i < sp; ++i) {
    const int j = static_cast<int>(3 - sp + i);
    const int64_t in = x[static_cast<int>(2 + i)], k = w[static_cast<int>(2 + i)];
    const int64_t s = a.strides.empty() ? 1 : a.strides[i];
    const int64_t d = a.dilations.empty() ? 1 : a.dilations[i];
    const int64_t op = a.output_padding.empty() ? 0 : a.output_padding[i];
    const int64_t natural = s * (in - 1) + op + (k - 1) * d + 1;
    int64_t out, pb;
    if (!a.output_shape.empty() || same) {
      out = a.output_shape.empty() ? in * s : a.output_shape[os_off + i];
      const int64_t total = std::max<int64_t>(0, natural - out);
      pb = a.auto_pad == AutoPad::kSameUpper ? total / 2 : total - total / 2;
    } else if (a.auto_pad == AutoPad::kValid || a.pads.empty()) {
      out = natural;
      pb = 0;
    } else {
      pb = a.pads[i];
      out = natural - a.pads[i] - a.pads[sp + i];
    }
    MS_CHECK_ARG(out > 0, "output spatial dimension " + std::to_string(i) + " would be empty (" + std::to_string(out) +
                              "): X " + x.str() + ", W " + w.str());
    g->in[j] = in;
    g->k[j] = k;
    g->s[j] = s;
    g->d[j] = d;
    g->pb[j] = pb;
    g->pe[j] = natural - out - pb;
    g->out[j] = out;
  }
  return Status::OK();
}

Status pool_geometry(const WindowAttrs& a, const Shape& x, bool ceil_mode, ConvGeometry* g) {
  const size_t sp = a.kernel_shape.size();
  MS_CHECK_ARG(x.rank() == static_cast<int>(sp) + 2, "X of shape " + x.str() + " does not match kernel_shape " +
                                                         ints_str(a.kernel_shape) + " (rank must be " +
                                                         std::to_string(sp + 2) + ")");
  g->N = x[0];
  g->C = g->M = g->group = x[1];
  g->Cg = g->Mg = 1;
  g->sp = static_cast<int>(sp);
  for (size_t i = 0; i < sp; ++i) MS_RETURN_IF_ERROR(forward_axis(a, x, sp, i, a.kernel_shape[i], ceil_mode, g));
  return Status::OK();
}

}  // namespace mserve
