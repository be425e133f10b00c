#include "core/onnx/skeleton.h"

namespace mserve {
namespace {

enum class Kind { kModel, kGraph, kNode, kAttribute, kTensor, kOther };

// The message kind of field `field` of a `kind` message, on the paths to tensors.
Kind child(Kind kind, uint64_t field) {
  switch (kind) {
    case Kind::kModel: return field == 7 ? Kind::kGraph : Kind::kOther;
    case Kind::kGraph: return field == 1 ? Kind::kNode : field == 5 ? Kind::kTensor : Kind::kOther;
    case Kind::kNode: return field == 5 ? Kind::kAttribute : Kind::kOther;
    case Kind::kAttribute:
      return field == 5 || field == 10 ? Kind::kTensor : field == 6 || field == 11 ? Kind::kGraph : Kind::kOther;
    default: return Kind::kOther;
  }
}

constexpr uint64_t kRawDataField = 9;
constexpr int kMaxDepth = 100;  // protobuf's own recursion limit
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kGroupStart = 3, kGroupEnd = 4, kFixed32 = 5 };

bool read_varint(const char*& p, const char* end, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const auto b = static_cast<uint8_t>(*p++);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// One field of a message: its number, wire type, and where its payload lies.
struct Field {
  uint64_t number = 0;
  uint32_t wire = 0;
  const char* begin = nullptr;  // the tag
  const char* after_tag = nullptr;
  const char* payload = nullptr;
  const char* end = nullptr;  // past the field
};

class Stripper {
 public:
  Stripper(const char* data, size_t size) : base_(data), end_(data + size) {}

  StatusOr<Skeleton> run() {
    out_.reserve(1 << 16);
    MS_RETURN_IF_ERROR(message(base_, end_, Kind::kModel, 0));
    return Skeleton{std::move(out_), std::move(weights_)};
  }

 private:
  // Reads the field at p (p < end); false when it does not fit or is malformed.
  bool next(const char*& p, const char* end, Field& f, int depth = 0) {
    f.begin = p;
    uint64_t tag;
    if (!read_varint(p, end, tag) || tag >> 32) return false;
    f.number = tag >> 3;
    f.wire = static_cast<uint32_t>(tag & 7);
    if (f.number == 0) return false;
    f.after_tag = f.payload = p;
    uint64_t v;
    switch (f.wire) {
      case kVarint:
        if (!read_varint(p, end, v)) return false;
        break;
      case kFixed64:
        if (end - p < 8) return false;
        p += 8;
        break;
      case kFixed32:
        if (end - p < 4) return false;
        p += 4;
        break;
      case kLen:
        if (!read_varint(p, end, v) || v > static_cast<uint64_t>(end - p)) return false;
        f.payload = p;
        p += v;
        break;
      case kGroupStart: {  // skipped to its matching end
        if (depth >= kMaxDepth) return false;
        for (;;) {
          if (p >= end) return false;
          Field inner;
          if (!next(p, end, inner, depth + 1)) return false;
          if (inner.wire == kGroupEnd) {
            if (inner.number != f.number) return false;
            break;
          }
        }
        break;
      }
      case kGroupEnd: break;  // the caller checks where it may appear
      default: return false;
    }
    f.end = p;
    return true;
  }

  Status malformed() const {
    return LoadError("not an ONNX model: the bytes do not parse as an ONNX ModelProto (wrong file, or truncated)");
  }

  Status message(const char* p, const char* end, Kind kind, int depth) {
    if (depth > kMaxDepth) return LoadError("the model nests graphs deeper than " + std::to_string(kMaxDepth));
    if (kind == Kind::kTensor) return tensor(p, end);
    while (p < end) {
      Field f;
      if (!next(p, end, f) || f.wire == kGroupEnd) return malformed();
      const Kind sub = child(kind, f.number);
      if (sub == Kind::kOther || f.wire != kLen) {
        out_.append(f.begin, f.end);
        continue;
      }
      // The tag, then the rewritten length, which is not known yet: 5 bytes are kept for it (a
      // varint padded with continuation bits, which parsers accept) and filled in after.
      out_.append(f.begin, f.after_tag);
      const size_t len_at = out_.size();
      out_.append(5, '\0');
      MS_RETURN_IF_ERROR(message(f.payload, f.end, sub, depth + 1));
      const uint64_t len = out_.size() - len_at - 5;
      if (len >> 35) return malformed();
      for (int i = 0; i < 5; ++i) out_[len_at + i] = static_cast<char>(((len >> (7 * i)) & 0x7f) | (i < 4 ? 0x80 : 0));
    }
    return Status::OK();
  }

  // A TensorProto: every field but raw_data (and any field numbered kWeightRefField), then the
  // reference to the last raw_data (protobuf keeps the last of a repeated scalar field).
  Status tensor(const char* p, const char* end) {
    const char* raw = nullptr;
    size_t raw_size = 0;
    while (p < end) {
      Field f;
      if (!next(p, end, f) || f.wire == kGroupEnd) return malformed();
      if (f.number == kRawDataField && f.wire == kLen) {
        raw = f.payload;
        raw_size = static_cast<size_t>(f.end - f.payload);
        continue;
      }
      if (f.number == kWeightRefField) continue;
      out_.append(f.begin, f.end);
    }
    if (raw) {
      put_varint(out_, static_cast<uint64_t>(kWeightRefField) << 3 | kVarint);
      put_varint(out_, weights_.size());
      weights_.push_back({static_cast<size_t>(raw - base_), raw_size});
    }
    return Status::OK();
  }

  const char* base_;
  const char* end_;
  std::string out_;
  std::vector<WeightSpan> weights_;
};

}  // namespace

StatusOr<Skeleton> strip_weights(const char* data, size_t size) { return Stripper(data, size).run(); }

}  // namespace mserve
