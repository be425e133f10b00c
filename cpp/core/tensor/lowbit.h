// The ONNX element types narrower than 16 bits: float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ,
// E8M0), float4 (E2M1) and the 4- and 2-bit integers. Tensors hold them unpacked, one byte per
// element (as numpy does through ml_dtypes): a float8 code is the whole byte, the 4- and 2-bit
// types sit in the low bits (the high bits are ignored when read). The ONNX format packs the
// 4-bit types two to a byte and the 2-bit types four to a byte, lowest bits first
// (lowbit_unpack).
//
// Conversions (bit-exact with ml_dtypes and onnx.reference):
//  - decoding is exact into float (lowbit_to_float, a table per type);
//  - to the float8 and float4 types: round to nearest, ties to even. With `saturate` (Cast's
//    attribute, float8 only) values beyond the largest finite, infinities included, become it;
//    without, they overflow to inf (E5M2) or NaN (the others). float4 always saturates and has
//    no NaN (NaN becomes a zero of the opposite sign, as ml_dtypes does). The FNUZ types have
//    no -0: negative values that round to zero give +0;
//  - to E8M0 (powers of two): from the float32 value's exponent, rounded as `round` says (up:
//    any fraction goes up; down: truncate; nearest), NaN, inf, and overflow without saturate
//    give NaN; the sign is ignored (as onnx.reference does);
//  - to the 4- and 2-bit integers: truncate toward zero and wrap modulo 2^bits (NaN and inf
//    give 0), as ml_dtypes' astype does.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/tensor/dtype.h"

namespace mserve {

// Bits per element in the ONNX format (8, 4 or 2); 0 for the other types.
int lowbit_width(DType t);
// The 4- and 2-bit integer types.
bool dtype_is_lowbit_int(DType t);

// The value of `code` (exact). The 4- and 2-bit types read the low bits only.
float lowbit_to_float(DType t, uint8_t code);
// The 256 values of a type's codes, indexed by code.
const float* lowbit_table(DType t);

enum class E8M0Round { kUp, kDown, kNearest };
struct LowBitCast {
  bool saturate = true;                   // float8 only (Cast's `saturate`)
  E8M0Round e8m0_round = E8M0Round::kUp;  // E8M0 only (Cast's `round_mode`)
};
// The code of `v` in type t (any narrow type).
uint8_t lowbit_from_double(DType t, double v, const LowBitCast& opt = {});
// The code of an integer in type t: exact wrapping for the 4- and 2-bit integers, through double
// for the floats.
uint8_t lowbit_from_int(DType t, int64_t v, const LowBitCast& opt = {});
uint8_t lowbit_from_uint(DType t, uint64_t v, const LowBitCast& opt = {});

// Bytes the ONNX format packs n elements of t into (n for the 8-bit types).
int64_t lowbit_packed_bytes(DType t, int64_t n);
// Unpacks n elements of t from `packed` (lowbit_packed_bytes(t, n) bytes) into one byte each.
void lowbit_unpack(DType t, const uint8_t* packed, int64_t n, uint8_t* out);

}  // namespace mserve
