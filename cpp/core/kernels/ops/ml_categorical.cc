// ai.onnx.ml categorical encoders, on string and integer tensors:
//   LabelEncoder 1: classes_strings; a string input maps to its index (default_int64, -1), an
//     int64 input to classes_strings[x] (default_string, "_Unused").
//   LabelEncoder 2: keys_{strings,int64s,floats} -> values_{strings,int64s,floats}, with the
//     default_{string,int64,float} matching the values' type.
//   LabelEncoder 4: also keys_tensor / values_tensor / default_tensor, of string, int64, int32,
//     int16, float or double. Without default_tensor the default is default_string,
//     default_int64 or default_float by the values' type.
//   CategoryMapper 1: cats_strings <-> cats_int64s; the input's type picks the direction
//     (string -> int64 with default_int64, int64 -> string with default_string).
//   OneHotEncoder 1: one float column per category of cats_int64s (int and float inputs,
//     truncated to int64) or cats_strings (string inputs); output shape X.shape + [categories].
//     zeros=0 makes an input outside the categories an error.
// Keys are looked up in hash maps built at load time. A repeated key maps to its last value.
// Float keys compare by value; a NaN key matches every NaN input.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

bool is_int_dtype(DType t) {
  return t == DType::kInt64 || t == DType::kInt32 || t == DType::kInt16 || t == DType::kInt8 || t == DType::kUInt8 ||
         t == DType::kUInt16 || t == DType::kUInt32 || t == DType::kUInt64;
}

// Copies element `si` of `src` into element `di` of `dst` (same dtype).
void assign_element(const Tensor& src, int64_t si, Tensor& dst, int64_t di) {
  if (src.dtype() == DType::kString) {
    dst.str(di) = src.str(si);
  } else {
    const size_t es = dtype_size(src.dtype());
    std::memcpy(static_cast<char*>(dst.raw()) + di * es, static_cast<const char*>(src.raw()) + si * es, es);
  }
}

// Keys of one dtype -> positions into `values`; `fallback` (one element) for missing keys.
class Mapping {
 public:
  static StatusOr<Mapping> make(const Tensor& keys, Tensor values, Tensor fallback) {
    if (keys.numel() != values.numel())
      return InvalidArgument("keys (" + std::to_string(keys.numel()) + ") and values (" +
                             std::to_string(values.numel()) + ") have different lengths");
    if (fallback.numel() != 1 || fallback.dtype() != values.dtype())
      return InvalidArgument("the default must be one value of the values' type " +
                             std::string(dtype_name(values.dtype())) + ", got " + fallback.desc());
    Mapping m;
    m.key_dtype_ = keys.dtype();
    for (int64_t i = 0; i < keys.numel(); ++i) {
      if (keys.dtype() == DType::kString)
        m.by_str_[keys.str(i)] = i;
      else if (dtype_is_float(keys.dtype()) && std::isnan(keys.float_at(i)))
        m.nan_ = i;
      else if (dtype_is_float(keys.dtype()))
        m.by_float_[keys.float_at(i)] = i;
      else if (is_int_dtype(keys.dtype()))
        m.by_int_[keys.int_at(i)] = i;
      else
        return Unsupported(std::string("keys of dtype ") + dtype_name(keys.dtype()) + " are not supported");
    }
    m.values_ = std::move(values);
    m.fallback_ = std::move(fallback);
    return m;
  }
  DType key_dtype() const { return key_dtype_; }
  DType value_dtype() const { return values_.dtype(); }
  // Maps every element of x (of key_dtype()) into y (of value_dtype()).
  void apply(const Tensor& x, Tensor& y) const {
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t k = find(x, i);
      if (k >= 0)
        assign_element(values_, k, y, i);
      else
        assign_element(fallback_, 0, y, i);
    }
  }

 private:
  int64_t find(const Tensor& x, int64_t i) const {
    if (key_dtype_ == DType::kString) {
      auto it = by_str_.find(x.str(i));
      return it == by_str_.end() ? -1 : it->second;
    }
    if (dtype_is_float(key_dtype_)) {
      const double v = x.float_at(i);
      if (std::isnan(v)) return nan_;
      auto it = by_float_.find(v);
      return it == by_float_.end() ? -1 : it->second;
    }
    auto it = by_int_.find(x.int_at(i));
    return it == by_int_.end() ? -1 : it->second;
  }
  DType key_dtype_ = DType::kUndefined;
  std::unordered_map<std::string, int64_t> by_str_;
  std::unordered_map<int64_t, int64_t> by_int_;
  std::unordered_map<double, int64_t> by_float_;
  int64_t nan_ = -1;
  Tensor values_, fallback_;
};

// LabelEncoder and CategoryMapper: the mapping whose key dtype is the input's.
class MapKernel final : public Kernel {
 public:
  explicit MapKernel(std::vector<Mapping> maps) : maps_(std::move(maps)) {}
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const Mapping* m = pick(ctx.dtype(0));
    if (!m) {
      std::string want;
      for (const Mapping& mm : maps_) want += (want.empty() ? "" : " or ") + std::string(dtype_name(mm.key_dtype()));
      return InvalidArgument(std::string("input dtype ") + dtype_name(ctx.dtype(0)) + " does not match the keys (" +
                             want + ")");
    }
    ctx.set_output(0, m->value_dtype(), ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Mapping* m = pick(ctx.input(0).dtype());
    if (!m) return InvalidArgument("input dtype does not match the keys");
    m->apply(ctx.input(0), ctx.output(0));
    return Status::OK();
  }

 private:
  const Mapping* pick(DType t) const {
    for (const Mapping& m : maps_)
      if (m.key_dtype() == t) return &m;
    return nullptr;
  }
  std::vector<Mapping> maps_;
};

class OneHotEncoderKernel final : public Kernel {
 public:
  OneHotEncoderKernel(std::vector<int64_t> ints, std::vector<std::string> strings, bool zeros)
      : zeros_(zeros), count_(static_cast<int64_t>(ints.empty() ? strings.size() : ints.size())) {
    for (size_t i = 0; i < ints.size(); ++i) by_int_.emplace(ints[i], static_cast<int64_t>(i));
    for (size_t i = 0; i < strings.size(); ++i) by_str_.emplace(strings[i], static_cast<int64_t>(i));
  }
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const DType t = ctx.dtype(0);
    if (t == DType::kString) {
      MS_CHECK_ARG(!by_str_.empty(), "a string input needs cats_strings");
    } else if (t == DType::kInt64 || t == DType::kInt32 || t == DType::kFloat32 || t == DType::kFloat64) {
      MS_CHECK_ARG(!by_int_.empty(), "a numeric input needs cats_int64s");
    } else {
      return Unsupported(std::string("input dtype ") + dtype_name(t) + " is not supported");
    }
    Shape out = ctx.shape(0);
    if (!Shape::fits(static_cast<size_t>(out.rank()) + 1)) return Unsupported("output rank too large");
    out.push_back(count_);
    ctx.set_output(0, DType::kFloat32, out);
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    float* y = ctx.output(0).data<float>();
    std::fill(y, y + ctx.output(0).numel(), 0.0f);
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t k = -1;
      if (x.dtype() == DType::kString) {
        auto it = by_str_.find(x.str(i));
        if (it != by_str_.end()) k = it->second;
      } else {
        const int64_t v = dtype_is_float(x.dtype()) ? static_cast<int64_t>(x.float_at(i)) : x.int_at(i);
        auto it = by_int_.find(v);
        if (it != by_int_.end()) k = it->second;
      }
      if (k >= 0)
        y[i * count_ + k] = 1.0f;
      else if (!zeros_)
        return InvalidArgument("element " + std::to_string(i) + " is not one of the categories (zeros=0)");
    }
    return Status::OK();
  }

 private:
  bool zeros_;
  int64_t count_;
  std::unordered_map<int64_t, int64_t> by_int_;
  std::unordered_map<std::string, int64_t> by_str_;
};

// ------------------------------------------------------------------ attribute -> tensor helpers

StatusOr<Tensor> ints_tensor(const std::vector<int64_t>& v) {
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(DType::kInt64, Shape{static_cast<int64_t>(v.size())}));
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}
StatusOr<Tensor> floats_tensor(const std::vector<float>& v) {
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(DType::kFloat32, Shape{static_cast<int64_t>(v.size())}));
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}
StatusOr<Tensor> strings_tensor(const std::vector<std::string>& v) {
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(DType::kString, Shape{static_cast<int64_t>(v.size())}));
  for (size_t i = 0; i < v.size(); ++i) t.str(static_cast<int64_t>(i)) = v[i];
  return t;
}
StatusOr<Tensor> iota_tensor(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return ints_tensor(v);
}

// One of keys_* / values_* (prefix "keys" or "values"): the list attributes, or (opset 4)
// the _tensor one. Exactly one must be set.
StatusOr<Tensor> list_attr(const Node& n, const std::string& prefix) {
  const Attribute* s = n.attr(prefix + "_strings");
  const Attribute* i = n.attr(prefix + "_int64s");
  const Attribute* f = n.attr(prefix + "_floats");
  const Attribute* t = n.opset >= 4 ? n.attr(prefix + "_tensor") : nullptr;
  if ((s != nullptr) + (i != nullptr) + (f != nullptr) + (t != nullptr) != 1)
    return InvalidArgument("exactly one " + prefix + "_* attribute must be set");
  if (s) return strings_tensor(s->strings);
  if (i) return ints_tensor(i->ints);
  if (f) return floats_tensor(f->floats);
  if (t->kind != Attribute::Kind::kTensor || !t->t.defined())
    return InvalidArgument("attribute '" + prefix + "_tensor' must be a tensor");
  return t->t.clone();
}

// The default for values of dtype `dt`: default_tensor (opset 4), else default_string,
// default_int64 or default_float.
StatusOr<Tensor> default_for(const Node& n, DType dt) {
  if (const Attribute* a = n.opset >= 4 ? n.attr("default_tensor") : nullptr) {
    if (a->kind != Attribute::Kind::kTensor || !a->t.defined())
      return InvalidArgument("default_tensor must be a tensor");
    return a->t.reshaped(Shape{a->t.numel()}).clone();
  }
  if (dt == DType::kString) return strings_tensor({n.attr_string("default_string", "_Unused")});
  if (dtype_is_float(dt)) {
    const float f = n.attr_float("default_float", -0.0f);
    MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dt, Shape{1}));
    MS_SWITCH_FLOAT(dt, T, break, t.data<T>()[0] = static_cast<T>(f));
    return t;
  }
  if (is_int_dtype(dt)) {
    const int64_t v = n.attr_int("default_int64", -1);
    MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dt, Shape{1}));
    MS_SWITCH_NUMERIC(dt, T, break, t.data<T>()[0] = static_cast<T>(v));
    return t;
  }
  return Unsupported(std::string("values of dtype ") + dtype_name(dt) + " are not supported");
}

// Both directions between strings and int64 (LabelEncoder 1, CategoryMapper).
StatusOr<KernelPtr> string_int_maps(const Node& n, Tensor strings, Tensor ints) {
  MS_ASSIGN_OR_RETURN(Tensor def_int, ints_tensor({n.attr_int("default_int64", -1)}));
  MS_ASSIGN_OR_RETURN(Tensor def_str, strings_tensor({n.attr_string("default_string", "_Unused")}));
  MS_ASSIGN_OR_RETURN(Tensor strings2, strings.clone());
  MS_ASSIGN_OR_RETURN(Tensor ints2, ints.clone());
  std::vector<Mapping> maps;
  MS_ASSIGN_OR_RETURN(Mapping to_int, Mapping::make(strings, std::move(ints2), std::move(def_int)));
  MS_ASSIGN_OR_RETURN(Mapping to_str, Mapping::make(ints, std::move(strings2), std::move(def_str)));
  maps.push_back(std::move(to_int));
  maps.push_back(std::move(to_str));
  return KernelPtr(new MapKernel(std::move(maps)));
}

}  // namespace

StatusOr<KernelPtr> create_onnx_ml_LabelEncoder(const Node& n, const KernelInit&) {
  if (n.opset < 2) {
    const Attribute* c = n.attr("classes_strings");
    MS_ASSIGN_OR_RETURN(Tensor strings, strings_tensor(c ? c->strings : std::vector<std::string>{}));
    MS_ASSIGN_OR_RETURN(Tensor ints, iota_tensor(strings.numel()));
    return string_int_maps(n, std::move(strings), std::move(ints));
  }
  MS_ASSIGN_OR_RETURN(Tensor keys, list_attr(n, "keys"));
  MS_ASSIGN_OR_RETURN(Tensor values, list_attr(n, "values"));
  MS_ASSIGN_OR_RETURN(Tensor fallback, default_for(n, values.dtype()));
  MS_ASSIGN_OR_RETURN(Mapping m, Mapping::make(keys, std::move(values), std::move(fallback)));
  std::vector<Mapping> maps;
  maps.push_back(std::move(m));
  return KernelPtr(new MapKernel(std::move(maps)));
}

StatusOr<KernelPtr> create_onnx_ml_CategoryMapper(const Node& n, const KernelInit&) {
  const Attribute* s = n.attr("cats_strings");
  const Attribute* i = n.attr("cats_int64s");
  MS_CHECK_ARG(s && i && s->strings.size() == i->ints.size(),
               "cats_strings and cats_int64s are required and must have the same length");
  MS_ASSIGN_OR_RETURN(Tensor strings, strings_tensor(s->strings));
  MS_ASSIGN_OR_RETURN(Tensor ints, ints_tensor(i->ints));
  return string_int_maps(n, std::move(strings), std::move(ints));
}

StatusOr<KernelPtr> create_onnx_ml_OneHotEncoder(const Node& n, const KernelInit&) {
  const Attribute* s = n.attr("cats_strings");
  std::vector<int64_t> ints = n.attr_ints("cats_int64s");
  std::vector<std::string> strings = s ? s->strings : std::vector<std::string>{};
  MS_CHECK_ARG(ints.empty() != strings.empty(), "exactly one of cats_int64s and cats_strings must be set");
  return KernelPtr(new OneHotEncoderKernel(std::move(ints), std::move(strings), n.attr_int("zeros", 1) != 0));
}

}  // namespace mserve
