#include "core/tensor/lowbit.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace mserve {
namespace {

// A small float format: sign, `ebits` exponent bits, `mbits` mantissa bits.
struct FloatFormat {
  int ebits, mbits, bias;
  enum Special { kIeee, kFN, kFNUZ, kNone } special;  // E5M2 / E4M3FN / *FNUZ / E2M1
  uint8_t max_code;                                   // the largest finite positive code
};

const FloatFormat* float_format(DType t) {
  static const FloatFormat e4m3fn{4, 3, 7, FloatFormat::kFN, 0x7E};
  static const FloatFormat e4m3fnuz{4, 3, 8, FloatFormat::kFNUZ, 0x7F};
  static const FloatFormat e5m2{5, 2, 15, FloatFormat::kIeee, 0x7B};
  static const FloatFormat e5m2fnuz{5, 2, 16, FloatFormat::kFNUZ, 0x7F};
  static const FloatFormat e2m1{2, 1, 1, FloatFormat::kNone, 0x7};
  switch (t) {
    case DType::kFloat8E4M3FN: return &e4m3fn;
    case DType::kFloat8E4M3FNUZ: return &e4m3fnuz;
    case DType::kFloat8E5M2: return &e5m2;
    case DType::kFloat8E5M2FNUZ: return &e5m2fnuz;
    case DType::kFloat4E2M1: return &e2m1;
    default: return nullptr;
  }
}

// Decodes one code of a float format (in double: every value is exact).
double decode_float(const FloatFormat& f, unsigned code) {
  const int width = 1 + f.ebits + f.mbits;
  code &= (1u << width) - 1;
  const bool neg = (code >> (width - 1)) & 1;
  const unsigned e = (code >> f.mbits) & ((1u << f.ebits) - 1);
  const unsigned m = code & ((1u << f.mbits) - 1);
  const unsigned emax = (1u << f.ebits) - 1, mmax = (1u << f.mbits) - 1;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  switch (f.special) {
    case FloatFormat::kIeee:
      if (e == emax) return m == 0 ? (neg ? -INFINITY : INFINITY) : nan;
      break;
    case FloatFormat::kFN:
      if (e == emax && m == mmax) return nan;
      break;
    case FloatFormat::kFNUZ:
      if (neg && e == 0 && m == 0) return -nan;  // ml_dtypes reads it as a negative NaN
      break;
    case FloatFormat::kNone: break;
  }
  double v = e == 0 ? std::ldexp(static_cast<double>(m), 1 - f.bias - f.mbits)
                    : std::ldexp(static_cast<double>((1u << f.mbits) | m), static_cast<int>(e) - f.bias - f.mbits);
  return neg ? -v : v;
}

struct Tables {
  std::array<std::array<float, 256>, kNumDTypes> value{};
  Tables() {
    for (int d = static_cast<int>(DType::kFloat8E4M3FN); d < kNumDTypes; ++d) {
      const DType t = static_cast<DType>(d);
      for (unsigned c = 0; c < 256; ++c) {
        double v = 0;
        if (const FloatFormat* f = float_format(t)) {
          v = decode_float(*f, c);
        } else {
          switch (t) {
            case DType::kFloat8E8M0:
              v = c == 0xFF ? std::numeric_limits<double>::quiet_NaN() : std::ldexp(1.0, static_cast<int>(c) - 127);
              break;
            case DType::kUInt4: v = c & 0xF; break;
            case DType::kInt4: v = static_cast<int>(c & 0xF) - ((c & 0x8) ? 16 : 0); break;
            case DType::kUInt2: v = c & 0x3; break;
            case DType::kInt2: v = static_cast<int>(c & 0x3) - ((c & 0x2) ? 4 : 0); break;
            default: break;
          }
        }
        value[d][c] = static_cast<float>(v);
      }
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

uint8_t encode_float(const FloatFormat& f, double x, bool saturate) {
  const int width = 1 + f.ebits + f.mbits;
  const uint8_t sign_bit = static_cast<uint8_t>(1u << (width - 1));
  const bool neg = std::signbit(x);
  if (std::isnan(x)) {
    switch (f.special) {
      case FloatFormat::kIeee: return static_cast<uint8_t>((neg ? sign_bit : 0) | 0x7E);
      case FloatFormat::kFN: return static_cast<uint8_t>((neg ? sign_bit : 0) | 0x7F);
      case FloatFormat::kFNUZ: return 0x80;
      case FloatFormat::kNone: return neg ? 0 : sign_bit;  // no NaN: ml_dtypes gives a zero
    }
  }
  if (f.special == FloatFormat::kNone) saturate = true;  // float4 has no inf or NaN
  double a = std::fabs(x);
  const double max = decode_float(f, f.max_code);
  if (saturate && a > max) a = max;
  unsigned code;
  if (std::isinf(a)) {
    code = f.max_code + 1u;  // overflows below
  } else {
    // The codes 0..max_code are the positive values in increasing order; max_code + 1 stands for
    // the value one step above the largest (where rounding overflows).
    unsigned lo = 0, hi = f.max_code + 1u;  // value(lo) <= a < value(hi) once narrowed
    const double top = 2 * max - decode_float(f, f.max_code - 1u);
    auto value = [&](unsigned c) { return c > f.max_code ? top : decode_float(f, c); };
    if (a >= top) {
      code = f.max_code + 1u;
    } else {
      while (hi - lo > 1) {
        const unsigned mid = (lo + hi) / 2;
        if (value(mid) <= a)
          lo = mid;
        else
          hi = mid;
      }
      const double vl = value(lo), vh = value(hi);
      if (a == vl) {
        code = lo;
      } else {
        const double half = (vl + vh) / 2;  // exact: both are short binary fractions
        code = a < half ? lo : a > half ? hi : ((lo & 1) ? hi : lo);
      }
    }
  }
  if (code > f.max_code) {  // overflow
    if (saturate) return static_cast<uint8_t>((neg ? sign_bit : 0) | f.max_code);
    switch (f.special) {
      case FloatFormat::kIeee: return static_cast<uint8_t>((neg ? sign_bit : 0) | 0x7C);
      case FloatFormat::kFN: return static_cast<uint8_t>((neg ? sign_bit : 0) | 0x7F);
      default: return 0x80;
    }
  }
  if (code == 0 && f.special == FloatFormat::kFNUZ) return 0;  // no -0
  return static_cast<uint8_t>((neg ? sign_bit : 0) | code);
}

// onnx.numpy_helper.to_float8e8m0, on the float32 value's bits.
uint8_t encode_e8m0(float x, const LowBitCast& opt) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  uint32_t e = (b >> 23) & 0xFF;
  if (e == 0xFF) return 0xFF;  // NaN and inf
  bool up = false;
  switch (opt.e8m0_round) {
    case E8M0Round::kNearest: {
      const bool g = b & 0x400000, r = b & 0x200000, s = b & 0x1FFFFF, lsb = e > 0;
      up = g && (r || s || lsb);
      break;
    }
    case E8M0Round::kUp: up = (b & 0x7FFFFF) != 0; break;
    case E8M0Round::kDown: break;
  }
  if (up && opt.saturate && e == 0xFE) up = false;
  return static_cast<uint8_t>(e + (up ? 1 : 0));
}

uint8_t wrap_int(DType t, uint64_t v) { return static_cast<uint8_t>(v & (lowbit_width(t) == 4 ? 0xF : 0x3)); }

}  // namespace

int lowbit_width(DType t) {
  switch (t) {
    case DType::kFloat8E4M3FN:
    case DType::kFloat8E4M3FNUZ:
    case DType::kFloat8E5M2:
    case DType::kFloat8E5M2FNUZ:
    case DType::kFloat8E8M0: return 8;
    case DType::kUInt4:
    case DType::kInt4:
    case DType::kFloat4E2M1: return 4;
    case DType::kUInt2:
    case DType::kInt2: return 2;
    default: return 0;
  }
}

bool dtype_is_lowbit_int(DType t) {
  return t == DType::kUInt4 || t == DType::kInt4 || t == DType::kUInt2 || t == DType::kInt2;
}

const float* lowbit_table(DType t) { return tables().value[static_cast<int>(t)].data(); }

float lowbit_to_float(DType t, uint8_t code) { return tables().value[static_cast<int>(t)][code]; }

uint8_t lowbit_from_double(DType t, double v, const LowBitCast& opt) {
  if (const FloatFormat* f = float_format(t)) return encode_float(*f, v, opt.saturate);
  if (t == DType::kFloat8E8M0) return encode_e8m0(static_cast<float>(v), opt);
  if (!std::isfinite(v)) return 0;
  const double m = std::fmod(std::trunc(v), lowbit_width(t) == 4 ? 16.0 : 4.0);  // exact
  return wrap_int(t, static_cast<uint64_t>(static_cast<int64_t>(m)));
}

uint8_t lowbit_from_int(DType t, int64_t v, const LowBitCast& opt) {
  if (dtype_is_lowbit_int(t)) return wrap_int(t, static_cast<uint64_t>(v));
  if (t == DType::kFloat8E8M0) return encode_e8m0(static_cast<float>(v), opt);
  return lowbit_from_double(t, static_cast<double>(v), opt);
}

uint8_t lowbit_from_uint(DType t, uint64_t v, const LowBitCast& opt) {
  if (dtype_is_lowbit_int(t)) return wrap_int(t, v);
  if (t == DType::kFloat8E8M0) return encode_e8m0(static_cast<float>(v), opt);
  return lowbit_from_double(t, static_cast<double>(v), opt);
}

int64_t lowbit_packed_bytes(DType t, int64_t n) {
  switch (lowbit_width(t)) {
    case 4: return (n + 1) / 2;
    case 2: return (n + 3) / 4;
    default: return n;
  }
}

void lowbit_unpack(DType t, const uint8_t* packed, int64_t n, uint8_t* out) {
  const int w = lowbit_width(t);
  if (w == 8) {
    std::memcpy(out, packed, static_cast<size_t>(n));
    return;
  }
  const int per = 8 / w;
  const unsigned mask = (1u << w) - 1;
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((packed[i / per] >> (w * (i % per))) & mask);
}

}  // namespace mserve
