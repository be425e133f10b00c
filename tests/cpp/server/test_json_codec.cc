// The JSON codec of the REST front ends (server/codec/json.h): base64 against RFC 4648's test
// vectors, parsing in place and from a copy, bare NaN / Infinity, numbers read straight into
// tensors (the fast path) and the values that take the long way, checked against values written
// out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "server/codec/json.h"

namespace mserve::server {
namespace {

TEST(Base64, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    std::string enc, dec;
    base64_encode(plain, &enc);
    EXPECT_EQ(enc, coded);
    ASSERT_TRUE(base64_decode(coded, &dec)) << coded;
    EXPECT_EQ(dec, plain);
  }
}

TEST(Base64, LongInputsLineBreaksAndUrlSafe) {
  std::string bytes;
  for (int i = 0; i < 3000; ++i) bytes.push_back(static_cast<char>((i * 37 + 11) & 0xff));
  for (size_t n : {size_t(0), size_t(1), size_t(2), size_t(3), size_t(998), size_t(999), size_t(1000), bytes.size()}) {
    const std::string plain = bytes.substr(0, n);
    std::string enc, dec;
    base64_encode(plain, &enc);
    ASSERT_TRUE(base64_decode(enc, &dec));
    EXPECT_EQ(dec, plain) << n;
    // MIME-style line breaks every 76 characters leave the fast path midway.
    std::string wrapped;
    for (size_t i = 0; i < enc.size(); i += 76) wrapped += enc.substr(i, 76) + "\r\n";
    ASSERT_TRUE(base64_decode(wrapped, &dec));
    EXPECT_EQ(dec, plain) << n;
  }
  std::string dec;
  ASSERT_TRUE(base64_decode("-_-_", &dec));  // URL-safe alphabet: 62, 63, 62, 63
  EXPECT_EQ(dec, std::string("\xfb\xff\xbf", 3));
  ASSERT_TRUE(base64_decode("+/+/", &dec));
  EXPECT_EQ(dec, std::string("\xfb\xff\xbf", 3));
}

TEST(Base64, RejectsMalformedInput) {
  std::string dec;
  EXPECT_FALSE(base64_decode("Zm9v!mFy", &dec));       // a character outside both alphabets
  EXPECT_FALSE(base64_decode("Zm9vYmFyZm9v!", &dec));  // ... after whole groups
  EXPECT_FALSE(base64_decode("Zg==Zm9v", &dec));       // data after padding
  EXPECT_FALSE(base64_decode("Zg===", &dec));          // too much padding
  EXPECT_FALSE(base64_decode("Z", &dec));              // six bits are not a byte
}

std::vector<JsonElement> rows_of(JsonElement list) {
  std::vector<JsonElement> rows;
  simdjson::dom::array a = list.get_array().value_unsafe();
  for (JsonElement e : a) rows.push_back(e);
  return rows;
}

std::vector<float> floats(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

TEST(Json, ParsesInPlaceAndFromACopy) {
  simdjson::dom::parser parser;
  std::string padded = "{\"instances\": [[1, 2.5], [-3e2, 4]]}";
  const size_t len = padded.size();
  padded.reserve(len + 64);  // what the HTTP layer allocates after a body: read in place
  std::string tight = padded;
  tight.shrink_to_fit();  // no room after: read from a padded copy
  for (const std::string* body : {&padded, &tight}) {
    auto doc = parse_json(parser, *body, 0, len);
    ASSERT_TRUE(doc.ok()) << doc.status().message();
    auto t = tensor_from_json(rows_of(doc.value()["instances"].value_unsafe()), true, DType::kFloat32, "x");
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t.value().shape(), Shape({2, 2}));
    EXPECT_EQ(floats(t.value()), (std::vector<float>{1, 2.5f, -300, 4}));
  }
  // Only the `len` bytes at `begin` are the document.
  std::string longer = "xx[1, 2]garbage";
  auto doc = parse_json(parser, longer, 2, 6);
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ(doc.value().get_array().value_unsafe().size(), 2u);
  EXPECT_FALSE(parse_json(parser, longer).ok());
}

TEST(Json, BareNonFiniteNumbersAndTheirLookalikes) {
  simdjson::dom::parser parser;
  auto doc = parse_json(parser, std::string("{\"Name\": \"NaN Infinity\", \"v\": [NaN, Infinity, -Infinity, 1]}"));
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ(std::string_view(doc.value()["Name"].get_string().value_unsafe()), "NaN Infinity");
  auto t = tensor_from_json_flat(doc.value()["v"].value_unsafe(), Shape({4}), DType::kFloat32, "v");
  ASSERT_TRUE(t.ok()) << t.status().message();
  const std::vector<float> v = floats(t.value());
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], INFINITY);
  EXPECT_EQ(v[2], -INFINITY);
  EXPECT_EQ(v[3], 1.0f);
  // Malformed JSON with an 'N' or 'I' in it is still reported as malformed.
  auto bad = parse_json(parser, std::string("{\"In\": [1, 2}"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("malformed JSON"), std::string::npos);
}

TEST(Json, NumbersTakeTheFastPathTheRestTheLongWay) {
  simdjson::dom::parser parser;
  // Integers, big exponents, the strings "NaN" / "Infinity" (as TensorFlow Serving writes them
  // quoted), in rows (stacked) and nested flat data.
  auto doc = parse_json(parser, std::string("[[1, -2, 1e3, \"NaN\"], [18446744073709551615, 0.1, \"-Infinity\", 7]]"));
  ASSERT_TRUE(doc.ok());
  auto t = tensor_from_json(rows_of(doc.value()), true, DType::kFloat64, "x");
  ASSERT_TRUE(t.ok()) << t.status().message();
  const double* p = t.value().data<double>();
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[1], -2);
  EXPECT_EQ(p[2], 1000);
  EXPECT_TRUE(std::isnan(p[3]));
  EXPECT_EQ(p[4], 18446744073709551615.0);
  EXPECT_EQ(p[5], 0.1);
  EXPECT_EQ(p[6], -INFINITY);
  EXPECT_EQ(p[7], 7);
  auto flat = tensor_from_json_flat(doc.value(), Shape({4, 2}), DType::kFloat32, "x");
  ASSERT_TRUE(flat.ok()) << flat.status().message();
  EXPECT_EQ(flat.value().data<float>()[5], 0.1f);
}

TEST(Json, BadValuesAreClearErrors) {
  simdjson::dom::parser parser;
  auto expect_error = [&](const std::string& text, const Shape* flat_shape, const std::string& says) {
    auto doc = parse_json(parser, text);
    ASSERT_TRUE(doc.ok()) << text;
    StatusOr<Tensor> t = Unsupported("unset");
    if (flat_shape) {
      t = tensor_from_json_flat(doc.value(), *flat_shape, DType::kFloat32, "input 'x'");
    } else {
      t = tensor_from_json(rows_of(doc.value()), true, DType::kFloat32, "input 'x'");
    }
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_NE(t.status().message().find(says), std::string::npos) << t.status().message();
  };
  expect_error("[[1, 2], [3, [4]]]", nullptr, "ragged nesting");
  expect_error("[[1, 2], [3]]", nullptr, "ragged nesting");
  expect_error("[[1, \"two\"]]", nullptr, "expected a number, got the string \"two\"");
  expect_error("[[1, true]]", nullptr, "expected a number");
  expect_error("[[1, null]]", nullptr, "expected a number");
  const Shape three({3});
  expect_error("[1, 2, 3, 4]", &three, "4 values for shape");
  expect_error("[1, 2]", &three, "2 values for shape");
  expect_error("[1, [2, \"x\"]]", &three, "expected a number");
}

// Written values read back exactly (shortest round-trip text), NaN and infinities as tokens, in
// lists longer than a write block and nested.
template <class T>
void expect_round_trip(const std::vector<T>& values, DType dtype, const Shape& shape) {
  Tensor t = Tensor::empty(dtype, shape).value();
  std::copy(values.begin(), values.end(), t.data<T>());
  for (bool flat : {true, false}) {
    std::string text = "prefix";
    if (flat)
      json_tensor_flat(&text, t);
    else
      json_tensor(&text, t);
    ASSERT_EQ(text.compare(0, 6, "prefix"), 0);
    simdjson::dom::parser parser;
    auto doc = parse_json(parser, text, 6, text.size() - 6);
    ASSERT_TRUE(doc.ok()) << doc.status().message();
    auto back = tensor_from_json_flat(doc.value(), shape, dtype, "back");
    ASSERT_TRUE(back.ok()) << back.status().message();
    if (!flat) {  // nested as the shape says
      Shape got;
      JsonElement e = doc.value();
      while (e.is_array()) {
        got.push_back(static_cast<int64_t>(e.get_array().value_unsafe().size()));
        e = *e.get_array().value_unsafe().begin();
      }
      EXPECT_EQ(got, shape);
    }
    for (size_t i = 0; i < values.size(); ++i) {
      const T got = back.value().data<T>()[i];
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(values[i])) {
          EXPECT_TRUE(std::isnan(got)) << i;
          continue;
        }
        EXPECT_EQ(std::signbit(got), std::signbit(values[i])) << i;
      }
      EXPECT_EQ(got, values[i]) << i << " in " << text.substr(0, 200);
    }
  }
}

TEST(Json, WrittenNumbersReadBackExactly) {
  std::vector<float> f = {0.1f,         -0.0f, 1e20f,    -3.4028235e38f, 1.4e-45f,    1.17549435e-38f,
                          123456789.0f, NAN,   INFINITY, -INFINITY,      16777217.0f, -2.5f,
                          1.0f,         0.3f};
  uint32_t x = 12345;
  while (f.size() < 700) {  // more than two write blocks of assorted magnitudes
    x = x * 1664525u + 1013904223u;
    f.push_back(std::ldexp(static_cast<float>(x % 100000) - 50000.0f, static_cast<int>(x >> 27) - 20));
  }
  expect_round_trip(f, DType::kFloat32, Shape({7, 100}));
  std::vector<double> d = {0.1,
                           -0.0,
                           1.7976931348623157e308,
                           -4.9406564584124654e-324,
                           2.2250738585072014e-308,
                           NAN,
                           -INFINITY,
                           9007199254740993.0,
                           1e-7,
                           0.30000000000000004};
  expect_round_trip(d, DType::kFloat64, Shape({2, 5}));
  std::vector<int64_t> i = {INT64_MIN, INT64_MAX, 0, -1, 42};
  expect_round_trip(i, DType::kInt64, Shape({5}));
  std::vector<uint64_t> u = {UINT64_MAX, 0, 7};
  expect_round_trip(u, DType::kUInt64, Shape({3, 1}));
}

TEST(Json, BoolsAndStringsAsText) {
  Tensor b = Tensor::empty(DType::kBool, Shape({2, 2})).value();
  bool* bp = b.data<bool>();
  bp[0] = true, bp[1] = false, bp[2] = false, bp[3] = true;
  std::string text;
  json_tensor(&text, b);
  EXPECT_EQ(text, "[[true,false],[false,true]]");
  text.clear();
  json_tensor_flat(&text, b);
  EXPECT_EQ(text, "[true,false,false,true]");
  Tensor s = Tensor::empty(DType::kString, Shape({3})).value();
  s.data<std::string>()[0] = "a\"b";
  s.data<std::string>()[1] = std::string("\xff\x00", 2);  // not UTF-8: base64
  s.data<std::string>()[2] = "";
  text.clear();
  json_tensor(&text, s);
  EXPECT_EQ(text, "[\"a\\\"b\",{\"b64\":\"/wA=\"},\"\"]");
}

}  // namespace
}  // namespace mserve::server
