#include "server/codec/json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace mserve::server {

bool base64_decode(std::string_view in, std::string* out) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(a[i])] = static_cast<int8_t>(i);
    t['-'] = 62;  // the URL-safe alphabet is accepted too
    t['_'] = 63;
    return t;
  }();
  // Whole groups of four plain characters first (no line breaks or padding), three bytes each;
  // from the first group that is not, one character at a time.
  out->resize(in.size() / 4 * 3);
  char* o = out->data();
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  size_t i = 0;
  for (; i + 4 < in.size(); i += 4) {  // the last group may hold padding: the slow loop's
    const int a = table[s[i]], b = table[s[i + 1]], c = table[s[i + 2]], d = table[s[i + 3]];
    if ((a | b | c | d) < 0) break;
    const uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6) | uint32_t(d);
    o[0] = static_cast<char>(v >> 16);
    o[1] = static_cast<char>(v >> 8);
    o[2] = static_cast<char>(v);
    o += 3;
  }
  out->resize(static_cast<size_t>(o - out->data()));
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in.substr(i)) {
    if (c == '=') {
      ++pad;
      continue;
    }
    if (c == '\n' || c == '\r') continue;
    if (pad) return false;  // data after padding
    int v = table[static_cast<unsigned char>(c)];
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return pad <= 2 && bits < 6;
}

void base64_encode(std::string_view in, std::string* out) {
  const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out->push_back(a[v >> 18]);
    out->push_back(a[(v >> 12) & 63]);
    out->push_back(a[(v >> 6) & 63]);
    out->push_back(a[v & 63]);
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out->append({a[v >> 18], a[(v >> 12) & 63], '=', '='});
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out->append({a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '='});
  }
}

namespace {

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0) return false;
    for (int k = 1; k <= n; ++k)
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n + 1;
  }
  return true;
}

// A string element: a JSON string, or {"b64": "..."} for arbitrary bytes (TensorFlow Serving).
Status read_string(JsonElement e, std::string* out, const std::string& what) {
  std::string_view sv;
  if (e.get(sv) == simdjson::SUCCESS) {
    out->assign(sv.data(), sv.size());
    return Status::OK();
  }
  simdjson::dom::object o;
  JsonElement b;
  if (e.get(o) == simdjson::SUCCESS && o.size() == 1 && o["b64"].get(b) == simdjson::SUCCESS &&
      b.get(sv) == simdjson::SUCCESS) {
    if (!base64_decode(sv, out)) return InvalidArgument(what + ": malformed base64 in {\"b64\": ...}");
    return Status::OK();
  }
  return InvalidArgument(what + ": expected a string or {\"b64\": \"...\"}, got " + simdjson::to_string(e));
}

// Quotes bare NaN / Infinity / -Infinity tokens outside strings; "" when there are none.
std::string quote_nonfinite(std::string_view s) {
  std::string out;
  bool in_str = false, changed = false;
  size_t copied = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_str) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
      continue;
    }
    size_t len = 0;
    if (c == 'N' && s.substr(i, 3) == "NaN")
      len = 3;
    else if (c == 'I' && s.substr(i, 8) == "Infinity")
      len = 8;
    else if (c == '-' && s.substr(i, 9) == "-Infinity")
      len = 9;
    if (!len) continue;
    if (!changed) out.reserve(s.size() + 64);
    changed = true;
    out.append(s.data() + copied, i - copied);
    out += '"';
    out.append(s.data() + i, len);
    out += '"';
    i += len - 1;
    copied = i + 1;
  }
  if (!changed) return {};
  out.append(s.data() + copied, s.size() - copied);
  return out;
}

template <class T>
Status read_scalar(JsonElement e, T* out, const std::string& what) {
  using simdjson::dom::element_type;
  const element_type t = e.type();
  if constexpr (std::is_same_v<T, bool>) {
    if (t == element_type::BOOL) {
      *out = bool(e.get_bool().value_unsafe());
      return Status::OK();
    }
    if (t == element_type::INT64 || t == element_type::UINT64) {
      *out = e.get_int64().value_unsafe() != 0;
      return Status::OK();
    }
    return InvalidArgument(what + ": expected true or false, got " + simdjson::to_string(e));
  } else if constexpr (std::is_floating_point_v<T> || is_16bit_float_v<T>) {
    double v;
    if (t == element_type::DOUBLE || t == element_type::INT64 || t == element_type::UINT64) {
      v = e.get_double().value_unsafe();
    } else if (t == element_type::STRING) {
      std::string_view s = e.get_string().value_unsafe();
      if (s == "NaN")
        v = std::numeric_limits<double>::quiet_NaN();
      else if (s == "Infinity")
        v = std::numeric_limits<double>::infinity();
      else if (s == "-Infinity")
        v = -std::numeric_limits<double>::infinity();
      else
        return InvalidArgument(what + ": expected a number, got the string \"" + std::string(s) + "\"");
    } else {
      return InvalidArgument(what + ": expected a number, got " + simdjson::to_string(e));
    }
    *out = static_cast<T>(v);
    return Status::OK();
  } else {
    int64_t lo = static_cast<int64_t>(std::numeric_limits<T>::min());
    if (t == element_type::INT64) {
      int64_t v = e.get_int64().value_unsafe();
      if (v < lo || (std::is_unsigned_v<T> ? static_cast<uint64_t>(v) > std::numeric_limits<T>::max()
                                           : v > static_cast<int64_t>(std::numeric_limits<T>::max())))
        return InvalidArgument(what + ": " + std::to_string(v) + " is out of range for the input's integer type");
      *out = static_cast<T>(v);
      return Status::OK();
    }
    if (t == element_type::UINT64) {
      uint64_t v = e.get_uint64().value_unsafe();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        return InvalidArgument(what + ": " + std::to_string(v) + " is out of range for the input's integer type");
      *out = static_cast<T>(v);
      return Status::OK();
    }
    if (t == element_type::DOUBLE) {
      double v = e.get_double().value_unsafe();
      if (v != std::floor(v) || v < static_cast<double>(lo) || v > static_cast<double>(std::numeric_limits<T>::max()))
        return InvalidArgument(what + ": expected an integer, got " + simdjson::to_string(e));
      *out = static_cast<T>(v);
      return Status::OK();
    }
    return InvalidArgument(what + ": expected an integer, got " + simdjson::to_string(e));
  }
}

Status shape_of(JsonElement e, Shape* s, const std::string& what) {
  while (e.is_array()) {
    auto arr = e.get_array().value_unsafe();
    if (!Shape::fits(s->rank() + 1)) return InvalidArgument(what + ": nested deeper than the maximum rank");
    s->push_back(static_cast<int64_t>(arr.size()));
    if (arr.size() == 0) break;
    e = *arr.begin();
  }
  return Status::OK();
}

template <class T>
Status read_value(JsonElement e, T* out, const std::string& what) {
  if constexpr (std::is_same_v<T, std::string>)
    return read_string(e, out, what);
  else
    return read_scalar<T>(e, out, what);
}

template <class T>
Status fill(JsonElement e, const Shape& s, int depth, T*& out, const std::string& what) {
  if (depth == s.rank()) {
    if (e.is_array()) return InvalidArgument(what + ": ragged nesting (a list where a value was expected)");
    return read_value<T>(e, out++, what);
  }
  if (!e.is_array())
    return InvalidArgument(what + ": ragged nesting (a value where a list of " + std::to_string(s[depth]) +
                           " was expected)");
  auto arr = e.get_array().value_unsafe();
  if (static_cast<int64_t>(arr.size()) != s[depth])
    return InvalidArgument(what + ": ragged nesting (lists of " + std::to_string(arr.size()) + " and " +
                           std::to_string(s[depth]) + " elements at depth " + std::to_string(depth) + ")");
  if constexpr (std::is_floating_point_v<T>) {
    if (depth + 1 == s.rank()) {  // the innermost list: numbers go straight in, the rest the long way
      for (JsonElement c : arr) {
        double v;
        if (c.get_double().get(v) == simdjson::SUCCESS)
          *out++ = static_cast<T>(v);
        else
          MS_RETURN_IF_ERROR(fill(c, s, depth + 1, out, what));
      }
      return Status::OK();
    }
  }
  for (JsonElement c : arr) MS_RETURN_IF_ERROR(fill(c, s, depth + 1, out, what));
  return Status::OK();
}

template <class T>
Status fill_flat(JsonElement e, T* out, int64_t n, int64_t* i, const std::string& what) {
  if constexpr (std::is_floating_point_v<T>) {  // numbers straight in (count_leaves sized `out`)
    double v;
    if (e.get_double().get(v) == simdjson::SUCCESS) {
      if (*i >= n) return InvalidArgument(what + ": more values than the shape holds (" + std::to_string(n) + ")");
      out[(*i)++] = static_cast<T>(v);
      return Status::OK();
    }
  }
  if (e.is_array()) {
    simdjson::dom::array arr =
        e.get_array().value_unsafe();  // a named copy: a range-for over the temporary would dangle
    for (JsonElement c : arr) {
      if constexpr (std::is_floating_point_v<T>) {  // numbers straight in, without the call
        double v;
        if (*i < n && c.get_double().get(v) == simdjson::SUCCESS) {
          out[(*i)++] = static_cast<T>(v);
          continue;
        }
      }
      MS_RETURN_IF_ERROR(fill_flat(c, out, n, i, what));
    }
    return Status::OK();
  }
  if (*i >= n) return InvalidArgument(what + ": more values than the shape holds (" + std::to_string(n) + ")");
  return read_value<T>(e, out + (*i)++, what);
}

// Every numeric type, bfloat16, bool and strings.
#define MS_SWITCH_JSON(dt, T, OTHER, ...)               \
  switch (dt) {                                         \
    MS_FLOAT_CASES(T, __VA_ARGS__)                      \
    MS_INT_CASES(T, __VA_ARGS__)                        \
    MS_CASE(kBool, bool, T, __VA_ARGS__)                \
    MS_CASE(kBFloat16, Eigen::bfloat16, T, __VA_ARGS__) \
    MS_CASE(kString, std::string, T, __VA_ARGS__)       \
    default: OTHER;                                     \
  }

// The longest JSON text of one non-string value: a double ("-1.7976931348623157e+308": 24).
constexpr size_t kMaxValueChars = 24;

// One non-string value's JSON text at `w` (at most kMaxValueChars); returns its end. Floats in
// their shortest round-trip form (-0.0 keeps its point), NaN and +-Infinity as bare tokens.
template <class T>
char* write_value(char* w, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    std::memcpy(w, v ? "true" : "false", v ? 4 : 5);
    return w + (v ? 4 : 5);
  } else if constexpr (std::is_floating_point_v<T> || is_16bit_float_v<T>) {
    using F = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const F f = static_cast<F>(v);
    if (std::isnan(f)) {
      std::memcpy(w, "NaN", 3);
      return w + 3;
    }
    if (std::isinf(f)) {
      const char* word = f > 0 ? "Infinity" : "-Infinity";
      const size_t n = f > 0 ? 8 : 9;
      std::memcpy(w, word, n);
      return w + n;
    }
    if (f == 0 && std::signbit(f)) {  // "-0" would read back as the integer 0
      std::memcpy(w, "-0.0", 4);
      return w + 4;
    }
    return std::to_chars(w, w + kMaxValueChars, f).ptr;
  } else {
    return std::to_chars(w, w + kMaxValueChars, v).ptr;
  }
}

template <class T>
void put_value(std::string* out, const T& v, bool b64 = false) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (!b64 && valid_utf8(v)) {
      json_string(out, v);
    } else {
      out->append("{\"b64\":\"");
      base64_encode(v, out);
      out->append("\"}");
    }
  } else {
    char buf[kMaxValueChars];
    out->append(buf, write_value(buf, v));
  }
}

// p[0..n) comma-separated. Numbers are written in place a block at a time (one size change per
// block, not an append per value).
template <class T>
void put_list(std::string* out, const T* p, int64_t n, bool b64) {
  if constexpr (std::is_same_v<T, std::string>) {
    for (int64_t i = 0; i < n; ++i) {
      if (i) out->push_back(',');
      put_value(out, p[i], b64);
    }
  } else {
    constexpr int64_t kBlock = 256;
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t end = std::min(n, b + kBlock);
      const size_t at = out->size();
      out->resize(at + static_cast<size_t>(end - b) * (kMaxValueChars + 1));
      char* w = out->data() + at;
      for (int64_t i = b; i < end; ++i) {
        if (i) *w++ = ',';
        w = write_value(w, p[i]);
      }
      out->resize(static_cast<size_t>(w - out->data()));
    }
  }
}

template <class T>
void put_nested(std::string* out, const T* data, const Shape& s, int depth, int64_t stride, bool b64) {
  if (depth == s.rank()) return put_value(out, *data, b64);
  out->push_back('[');
  if (depth + 1 == s.rank()) {
    put_list(out, data, s[depth], b64);
  } else {
    const int64_t inner = stride / (s[depth] ? s[depth] : 1);
    for (int64_t i = 0; i < s[depth]; ++i) {
      if (i) out->push_back(',');
      put_nested(out, data + i * inner, s, depth + 1, inner, b64);
    }
  }
  out->push_back(']');
}

}  // namespace

StatusOr<JsonElement> parse_json(simdjson::dom::parser& parser, const std::string& buffer, size_t begin, size_t len) {
  const bool padded = buffer.capacity() - (begin + len) >= simdjson::SIMDJSON_PADDING;
  auto r = parser.parse(buffer.data() + begin, len, /*realloc_if_needed=*/!padded);
  if (r.error()) {
    // JSON has no NaN or Infinity; bodies that carry them bare (as TensorFlow Serving writes
    // them) parse once those are quoted. Only bodies that fail and hold an 'N' or 'I' are looked at.
    const std::string_view body(buffer.data() + begin, len);
    if (body.find('N') != std::string_view::npos || body.find('I') != std::string_view::npos) {
      std::string quoted = quote_nonfinite(body);
      if (!quoted.empty()) r = parser.parse(quoted.data(), quoted.size(), true);
    }
  }
  if (r.error()) return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(r.error()));
  return r.value_unsafe();
}

StatusOr<Tensor> tensor_from_json(const std::vector<JsonElement>& rows, bool stack, DType dtype,
                                  const std::string& what) {
  if (rows.empty()) return InvalidArgument(what + ": no values");
  Shape row_shape, shape;
  MS_RETURN_IF_ERROR(shape_of(rows[0], &row_shape, what));  // {"b64": ...} objects are values
  if (stack) {
    if (!Shape::fits(row_shape.rank() + 1)) return InvalidArgument(what + ": rank exceeds the maximum");
    shape.push_back(static_cast<int64_t>(rows.size()));
    for (int64_t d : row_shape) shape.push_back(d);
  } else {
    shape = row_shape;
  }
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dtype, shape));
  Status st = Unsupported(what + ": " + std::string(dtype_name(dtype)) + " tensors cannot be read from JSON");
  MS_SWITCH_JSON(dtype, T, (void)0, {
    T* p = t.data<T>();
    st = Status::OK();
    for (const JsonElement& r : rows) {
      st = fill(r, row_shape, 0, p, what);
      if (!st.ok()) break;
    }
  });
  MS_RETURN_IF_ERROR(st);
  return t;
}

namespace {

// Values in `e` (arrays nested any way), counted before anything is allocated: a request's shape
// must not make the server allocate more than its data holds.
int64_t count_leaves(JsonElement e) {
  if (!e.is_array()) return 1;
  int64_t n = 0;
  simdjson::dom::array arr = e.get_array().value_unsafe();
  for (JsonElement c : arr) n += count_leaves(c);
  return n;
}

}  // namespace

StatusOr<Tensor> tensor_from_json_flat(JsonElement data, const Shape& shape, DType dtype, const std::string& what) {
  MS_RETURN_IF_ERROR(aligned_bytes(dtype, shape).status());
  const int64_t values = count_leaves(data);
  if (values != shape.numel())
    return InvalidArgument(what + ": " + std::to_string(values) + " values for shape " + shape.str() + " (" +
                           std::to_string(shape.numel()) + " expected)");
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dtype, shape));
  Status st = Unsupported(what + ": " + std::string(dtype_name(dtype)) + " tensors cannot be read from JSON");
  int64_t n = 0;
  MS_SWITCH_JSON(dtype, T, (void)0, { st = fill_flat(data, t.data<T>(), t.numel(), &n, what); });
  MS_RETURN_IF_ERROR(st);
  if (n != t.numel())
    return InvalidArgument(what + ": " + std::to_string(n) + " values for shape " + shape.str() + " (" +
                           std::to_string(t.numel()) + " expected)");
  return t;
}

void json_string(std::string* out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(hex[c >> 4]);
          out->push_back(hex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

namespace {

// Room for `values` numbers (about 16 characters each as to_chars writes floats), so a body
// grows once.
void reserve_numbers(std::string* out, const Tensor& t, int64_t values) {
  if (t.dtype() != DType::kString) out->reserve(out->size() + static_cast<size_t>(values) * 16 + 64);
}

}  // namespace

void json_tensor(std::string* out, const Tensor& t, int64_t begin, int64_t n, bool b64) {
  Shape s = t.shape();
  reserve_numbers(out, t, n >= 0 && s.rank() > 0 && s[0] ? t.numel() / s[0] * n : t.numel());
  const char* base = static_cast<const char*>(t.raw());
  if (n >= 0 && s.rank() > 0) {
    const int64_t row = s[0] ? t.numel() / s[0] : 0;
    base += begin * row * static_cast<int64_t>(dtype_size(t.dtype()));
    s[0] = n;
  }
  MS_SWITCH_JSON(t.dtype(), T, out->append("null"),
                 { put_nested(out, reinterpret_cast<const T*>(base), s, 0, s.numel(), b64); });
}

void json_tensor_flat(std::string* out, const Tensor& t) {
  reserve_numbers(out, t, t.numel());
  out->push_back('[');
  MS_SWITCH_JSON(t.dtype(), T, (void)0, { put_list(out, t.data<T>(), t.numel(), false); });
  out->push_back(']');
}

int64_t count_nonfinite(const Tensor& t) {
  int64_t n = 0;
  MS_SWITCH_FLOAT(t.dtype(), T, (void)0, {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) n += !std::isfinite(static_cast<double>(p[i]));
  });
  return n;
}

}  // namespace mserve::server
