// String operators of the default domain, on string tensors (DType::kString):
//   StringNormalizer (10): drops `stopwords` from a [C] or [1, C] tensor (compared after
//     lower-casing unless is_case_sensitive), then applies case_change_action (LOWER, UPPER,
//     NONE). When every element is dropped the output is one empty string ([1] or [1, 1]), as
//     the spec says. Case mapping is Unicode-aware through the C.UTF-8 locale; the `locale`
//     attribute is not consulted (ONNX Runtime's default en_US maps the same way). Bytes that are
//     not valid UTF-8 pass through unchanged.
//   StringConcat (20): element-wise concatenation with numpy broadcasting.
//   StringSplit (20): splits on `delimiter` (consecutive delimiters delimit empty strings) or,
//     when it is empty or absent, on runs of ASCII whitespace with leading and trailing
//     whitespace dropped. `maxsplit` bounds the splits; the rest of the string stays one piece
//     (trailing whitespace dropped in whitespace mode). Y pads each row with empty strings to
//     the longest split, Z counts the pieces. An empty string has no pieces, as in ONNX
//     Runtime (Python's "".split(",") would give one).
//   RegexFullMatch (20): whether each element fully matches `pattern` (RE2 syntax, via RE2).
// Output shapes of StringNormalizer (with stopwords) and StringSplit depend on the values:
// they are inferred when the input is known (at run time otherwise).
#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <re2/re2.h>

#include "core/kernels/broadcast.h"
#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

Status need_strings(const InferContext& ctx, int i, const char* what) {
  if (ctx.dtype(i) != DType::kString)
    return InvalidArgument(std::string(what) + " must be a string tensor, got " + dtype_name(ctx.dtype(i)));
  return Status::OK();
}

// ------------------------------------------------------------------------- case conversion

locale_t utf8_locale() {
  static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return loc;
}

// Decodes one UTF-8 sequence at s[i]; returns its length (0 when invalid) and sets *cp.
size_t decode_utf8(const std::string& s, size_t i, uint32_t* cp) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    n = 2;
    v = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    v = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return 0;
    v = (v << 6) | (d & 0x3F);
  }
  const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < min[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

void encode_utf8(uint32_t v, std::string& out) {
  if (v < 0x80) {
    out += static_cast<char>(v);
  } else if (v < 0x800) {
    out += static_cast<char>(0xC0 | (v >> 6));
    out += static_cast<char>(0x80 | (v & 0x3F));
  } else if (v < 0x10000) {
    out += static_cast<char>(0xE0 | (v >> 12));
    out += static_cast<char>(0x80 | ((v >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (v & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (v >> 18));
    out += static_cast<char>(0x80 | ((v >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((v >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (v & 0x3F));
  }
}

enum class CaseChange { kNone, kLower, kUpper };

std::string change_case(const std::string& s, CaseChange cc) {
  if (cc == CaseChange::kNone) return s;
  const locale_t loc = utf8_locale();
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = decode_utf8(s, i, &cp);
    if (n == 0) {  // not UTF-8: keep the byte
      out += s[i++];
      continue;
    }
    uint32_t m = cp;
    if (loc) {
      const auto w = static_cast<wint_t>(cp);
      m = static_cast<uint32_t>(cc == CaseChange::kLower ? towlower_l(w, loc) : towupper_l(w, loc));
    } else if (cp < 0x80) {
      m = static_cast<uint32_t>(cc == CaseChange::kLower ? tolower(static_cast<int>(cp))
                                                         : toupper(static_cast<int>(cp)));
    }
    encode_utf8(m, out);
    i += n;
  }
  return out;
}

// -------------------------------------------------------------------------- StringNormalizer

class StringNormalizerKernel final : public Kernel {
 public:
  StringNormalizerKernel(CaseChange cc, bool case_sensitive, std::vector<std::string> stopwords)
      : cc_(cc), case_sensitive_(case_sensitive) {
    for (const auto& w : stopwords) stop_.insert(case_sensitive ? w : change_case(w, CaseChange::kLower));
  }
  bool supports_strings() const override { return true; }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    MS_RETURN_IF_ERROR(need_strings(ctx, 0, "X"));
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() == 1 || (s.rank() == 2 && s[0] == 1), "X must have shape [C] or [1, C], got " + s.str());
    if (stop_.empty()) {
      ctx.set_output(0, DType::kString, s.numel() == 0 ? one_shape(s) : s);
      return Status::OK();
    }
    const Tensor* x = ctx.value(0);
    if (!x) return ctx.need_value();
    int64_t kept = 0;
    for (int64_t i = 0; i < x->numel(); ++i) kept += keep(x->str(i));
    Shape out = s;
    out[s.rank() - 1] = kept;
    ctx.set_output(0, DType::kString, kept == 0 ? one_shape(s) : out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    int64_t k = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (!keep(x.str(i))) continue;
      if (k >= y.numel()) return Internal("StringNormalizer output size");
      y.str(k++) = change_case(x.str(i), cc_);
    }
    if (k == 0 && y.numel() == 1) y.str(0).clear();  // everything dropped: one empty string
    return Status::OK();
  }

 private:
  static Shape one_shape(const Shape& s) { return s.rank() == 1 ? Shape{1} : Shape{1, 1}; }
  bool keep(const std::string& w) const {
    if (stop_.empty()) return true;
    return !stop_.count(case_sensitive_ ? w : change_case(w, CaseChange::kLower));
  }
  CaseChange cc_;
  bool case_sensitive_;
  std::unordered_set<std::string> stop_;
};

// ------------------------------------------------------------------------------ StringConcat

class StringConcatKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs two inputs");
    MS_RETURN_IF_ERROR(need_strings(ctx, 0, "X"));
    MS_RETURN_IF_ERROR(need_strings(ctx, 1, "Y"));
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(1)));
    ctx.set_output(0, DType::kString, out);
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& out = ctx.output(0);
    for_each_broadcast_row<2>({&a.shape(), &b.shape()}, out.shape(), ctx.pool(),
                              [&](int64_t o, const int64_t* off, const int64_t* rs, int64_t n) {
                                for (int64_t i = 0; i < n; ++i) {
                                  std::string& z = out.str(o + i);
                                  z = a.str(off[0] + i * rs[0]);
                                  z += b.str(off[1] + i * rs[1]);
                                }
                              });
    return Status::OK();
  }
};

// ------------------------------------------------------------------------------- StringSplit

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Splits `s` (see the top of the file): calls fn(piece) for each piece; returns the count.
template <class F>
int64_t split_string(const std::string& s, const std::string& delim, int64_t maxsplit, F&& fn) {
  int64_t count = 0, splits = 0;
  const bool limited = maxsplit >= 0;
  if (s.empty()) return 0;
  if (delim.empty()) {
    size_t i = 0;
    const size_t n = s.size();
    while (true) {
      while (i < n && is_space(s[i])) ++i;
      if (i >= n) break;
      if (limited && splits >= maxsplit) {  // the rest, without its trailing whitespace
        size_t end = n;
        while (end > i && is_space(s[end - 1])) --end;
        fn(s.substr(i, end - i));
        ++count;
        break;
      }
      size_t j = i;
      while (j < n && !is_space(s[j])) ++j;
      fn(s.substr(i, j - i));
      ++count;
      ++splits;
      i = j;
    }
    return count;
  }
  size_t start = 0;
  while (true) {
    const size_t pos = limited && splits >= maxsplit ? std::string::npos : s.find(delim, start);
    if (pos == std::string::npos) {
      fn(s.substr(start));
      return count + 1;
    }
    fn(s.substr(start, pos - start));
    ++count;
    ++splits;
    start = pos + delim.size();
  }
}

class StringSplitKernel final : public Kernel {
 public:
  StringSplitKernel(std::string delim, int64_t maxsplit) : delim_(std::move(delim)), maxsplit_(maxsplit) {}
  bool supports_strings() const override { return true; }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    MS_RETURN_IF_ERROR(need_strings(ctx, 0, "X"));
    const Shape& s = ctx.shape(0);
    if (!Shape::fits(static_cast<size_t>(s.rank()) + 1))
      return Unsupported("output rank " + std::to_string(s.rank() + 1) + " exceeds the maximum " +
                         std::to_string(Shape::kMaxRank));
    const Tensor* x = ctx.value(0);
    if (!x && s.numel() != 0) return ctx.need_value();
    int64_t most = 0;
    for (int64_t i = 0; x && i < x->numel(); ++i)
      most = std::max(most, split_string(x->str(i), delim_, maxsplit_, [](std::string&&) {}));
    Shape y = s;
    y.push_back(most);
    ctx.set_output(0, DType::kString, y);
    if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kInt64, s);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const bool has_y = ctx.has_output(0), has_z = ctx.has_output(1);
    const int64_t width = has_y ? ctx.output(0).dim(ctx.output(0).rank() - 1) : 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t k = 0;
      const int64_t n = split_string(x.str(i), delim_, maxsplit_, [&](std::string&& piece) {
        if (has_y && k < width) ctx.output(0).str(i * width + k) = std::move(piece);
        ++k;
      });
      if (has_y && n > width) return Internal("StringSplit output width");
      for (; has_y && k < width; ++k) ctx.output(0).str(i * width + k).clear();
      if (has_z) ctx.output(1).data<int64_t>()[i] = n;
    }
    return Status::OK();
  }

 private:
  std::string delim_;
  int64_t maxsplit_;  // < 0: no limit
};

// ---------------------------------------------------------------------------- RegexFullMatch

class RegexFullMatchKernel final : public Kernel {
 public:
  explicit RegexFullMatchKernel(std::unique_ptr<RE2> re) : re_(std::move(re)) {}
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    MS_RETURN_IF_ERROR(need_strings(ctx, 0, "X"));
    ctx.set_output(0, DType::kBool, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    bool* y = ctx.output(0).data<bool>();
    ctx.pool().parallel_for(x.numel(), 256, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = RE2::FullMatch(x.str(i), *re_);
    });
    return Status::OK();
  }

 private:
  std::unique_ptr<RE2> re_;  // RE2 objects are thread-safe for matching
};

}  // namespace

StatusOr<KernelPtr> create_onnx_StringNormalizer(const Node& n, const KernelInit&) {
  const std::string action = n.attr_string("case_change_action", "NONE");
  CaseChange cc;
  if (action == "NONE")
    cc = CaseChange::kNone;
  else if (action == "LOWER")
    cc = CaseChange::kLower;
  else if (action == "UPPER")
    cc = CaseChange::kUpper;
  else
    return InvalidArgument("case_change_action must be LOWER, UPPER or NONE, got '" + action + "'");
  const Attribute* stop = n.attr("stopwords");
  return KernelPtr(new StringNormalizerKernel(cc, n.attr_int("is_case_sensitive", 0) != 0,
                                              stop ? stop->strings : std::vector<std::string>{}));
}

StatusOr<KernelPtr> create_onnx_StringConcat(const Node&, const KernelInit&) {
  return KernelPtr(new StringConcatKernel());
}

StatusOr<KernelPtr> create_onnx_StringSplit(const Node& n, const KernelInit&) {
  const Attribute* m = n.attr("maxsplit");
  return KernelPtr(new StringSplitKernel(n.attr_string("delimiter", ""), m ? m->i : -1));
}

StatusOr<KernelPtr> create_onnx_RegexFullMatch(const Node& n, const KernelInit&) {
  const Attribute* p = n.attr("pattern");
  if (!p || p->kind != Attribute::Kind::kString) return InvalidArgument("string attribute 'pattern' is required");
  RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_unique<RE2>(p->s, opts);
  if (!re->ok()) return InvalidArgument("invalid RE2 pattern '" + p->s + "': " + re->error());
  return KernelPtr(new RegexFullMatchKernel(std::move(re)));
}

}  // namespace mserve
