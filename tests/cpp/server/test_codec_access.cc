// Server helpers: the wire-protocol helpers shared by the REST and gRPC front ends
// (server/codec/protocol.h), the gRPC value copies (server/grpc/grpc_common.h) and the client
// allow-list of AccessControl (server/security/access.h; tokens are tested end to end in Python).
#include <google/protobuf/repeated_field.h>
#include <gtest/gtest.h>

#include "server/codec/protocol.h"
#include "server/grpc/grpc_common.h"
#include "server/security/access.h"

namespace mserve::server {
namespace {

const DType kServed[] = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt8,    DType::kInt16,
                         DType::kInt32,   DType::kInt64,   DType::kUInt8,   DType::kUInt16,  DType::kUInt32,
                         DType::kUInt64,  DType::kBool,    DType::kString,  DType::kBFloat16};

TEST(Protocol, TypeNamesRoundTripBothProtocols) {
  for (DType t : kServed) {
    ASSERT_EQ(dtype_from_tf(tf_dtype_number(t)), t) << dtype_name(t);
    ASSERT_EQ(dtype_from_v2(v2_dtype(t)), t) << dtype_name(t);
    EXPECT_STREQ(tf_dtype_number_name(tf_dtype_number(t)), tf_dtype_name(t));
  }
  // TensorFlow's published numbers.
  EXPECT_EQ(tf_dtype_number(DType::kFloat32), 1);
  EXPECT_EQ(tf_dtype_number(DType::kString), 7);
  EXPECT_EQ(tf_dtype_number(DType::kFloat16), 19);
  EXPECT_EQ(tf_dtype_number(DType::kUInt64), 23);
  EXPECT_FALSE(dtype_from_tf(8).has_value());  // DT_COMPLEX64
  EXPECT_EQ(tf_dtype_number(DType::kBFloat16), 14);
  EXPECT_STREQ(v2_dtype(DType::kBFloat16), "BF16");
  EXPECT_FALSE(dtype_from_tf(999).has_value());
  EXPECT_STREQ(tf_dtype_number_name(8), "DT_COMPLEX64");
  EXPECT_STREQ(tf_dtype_number_name(-3), "an unknown dtype");
  EXPECT_FALSE(dtype_from_v2("fp32").has_value());  // names are case-sensitive, as the protocol says
  EXPECT_STREQ(v2_dtype(DType::kUndefined), "INVALID");
}

TEST(Protocol, LengthPrefixedBytesRoundTrip) {
  Tensor t = Tensor::empty(DType::kString, Shape{3}).value();
  t.str(0) = "ab";
  t.str(1) = "";
  t.str(2) = std::string("\0\xff", 2);
  std::string wire;
  encode_length_prefixed(t, &wire);
  EXPECT_EQ(wire.size(), 3 * 4 + 4u);
  auto back = decode_length_prefixed(wire.data(), wire.size(), Shape{3}, "x");
  ASSERT_TRUE(back.ok()) << back.status().message();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(back.value().str(i), t.str(i));
}

TEST(Protocol, LengthPrefixedBytesRejectsBadData) {
  std::string wire;
  Tensor one = Tensor::empty(DType::kString, Shape{1}).value();
  one.str(0) = "abc";
  encode_length_prefixed(one, &wire);
  // Too short for the shape, a length past the end, trailing bytes, a huge length.
  EXPECT_FALSE(decode_length_prefixed(wire.data(), wire.size(), Shape{2}, "x").ok());
  EXPECT_FALSE(decode_length_prefixed(wire.data(), wire.size() - 1, Shape{1}, "x").ok());
  EXPECT_FALSE(decode_length_prefixed(wire.data(), 2, Shape{1}, "x").ok());
  std::string extra = wire + "z";
  auto st = decode_length_prefixed(extra.data(), extra.size(), Shape{1}, "input 's'");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("input 's'"), std::string::npos);
  const char huge[] = {'\xff', '\xff', '\xff', '\xff', 'a'};
  EXPECT_FALSE(decode_length_prefixed(huge, sizeof huge, Shape{1}, "x").ok());
  EXPECT_TRUE(decode_length_prefixed(nullptr, 0, Shape{0}, "x").ok());
}

TEST(GrpcValues, FitsChecksIntegerRanges) {
  using grpc_front::fits;
  EXPECT_TRUE(fits<int8_t>(int32_t{-128}));
  EXPECT_FALSE(fits<int8_t>(int32_t{128}));
  EXPECT_FALSE(fits<uint8_t>(int32_t{-1}));
  EXPECT_TRUE(fits<uint16_t>(int32_t{65535}));
  EXPECT_FALSE(fits<uint16_t>(int32_t{65536}));
  EXPECT_FALSE(fits<int32_t>(uint32_t{0x80000000u}));
  EXPECT_TRUE(fits<uint64_t>(uint64_t{~0ull}));
  EXPECT_TRUE(fits<float>(1e300));  // floats narrow without a range check
  EXPECT_TRUE(fits<bool>(true));
}

TEST(GrpcValues, FillValuesCopiesBroadcastsAndRejects) {
  google::protobuf::RepeatedField<int32_t> f;
  f.Add(1);
  f.Add(-2);
  f.Add(3);
  Tensor t = Tensor::empty(DType::kInt8, Shape{3}).value();
  ASSERT_TRUE(grpc_front::fill_values<int8_t>(f, false, &t, "x").ok());
  EXPECT_EQ(t.data<int8_t>()[1], -2);
  google::protobuf::RepeatedField<int32_t> one;
  one.Add(7);
  ASSERT_TRUE(grpc_front::fill_values<int8_t>(one, true, &t, "x").ok());
  EXPECT_EQ(t.data<int8_t>()[2], 7);
  EXPECT_FALSE(grpc_front::fill_values<int8_t>(one, false, &t, "x").ok());  // KServe: no broadcast
  f.Set(0, 1000);
  auto st = grpc_front::fill_values<int8_t>(f, false, &t, "x");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("out of range"), std::string::npos);
  Tensor u = Tensor::empty(DType::kUInt16, Shape{2}).value();
  google::protobuf::RepeatedField<int32_t> neg;
  neg.Add(-1);
  neg.Add(1);
  EXPECT_FALSE(grpc_front::fill_values<uint16_t>(neg, false, &u, "x").ok());
}

TEST(GrpcValues, AppendValuesWidens) {
  Tensor t = Tensor::empty(DType::kUInt16, Shape{2}).value();
  t.data<uint16_t>()[0] = 65535;
  t.data<uint16_t>()[1] = 3;
  google::protobuf::RepeatedField<int32_t> out;
  grpc_front::append_values<uint16_t>(t, &out);
  ASSERT_EQ(out.size(), 2);
  EXPECT_EQ(out.Get(0), 65535);
  Tensor f = Tensor::empty(DType::kFloat32, Shape{2}).value();
  f.data<float>()[0] = 1.5f;
  f.data<float>()[1] = -2.f;
  google::protobuf::RepeatedField<float> fo;
  grpc_front::append_values<float>(f, &fo);
  EXPECT_EQ(fo.Get(1), -2.f);
}

}  // namespace
}  // namespace mserve::server

namespace mserve::server {
namespace {

TEST(Access, AllowListMatchesBothFamiliesAndPeerFormats) {
  AccessOptions o;
  o.allow_cidrs = {"10.0.0.0/8", "2001:db8::/32", "192.168.1.7"};
  auto ac = AccessControl::create(o);
  ASSERT_TRUE(ac.ok()) << ac.status().message();
  const AccessControl& a = *ac.value();
  EXPECT_TRUE(a.check("10.200.3.4", "", "m", false).ok());
  EXPECT_TRUE(a.check("ipv4:10.1.2.3:5000", "", "m", false).ok());
  EXPECT_TRUE(a.check("ipv6:[::ffff:10.1.2.3]:5000", "", "m", false).ok());  // IPv4-mapped
  EXPECT_TRUE(a.check("ipv6:[2001:db8:ffff::1]:1", "", "m", false).ok());
  EXPECT_TRUE(a.check("192.168.1.7", "", "", false).ok());
  EXPECT_EQ(a.check("192.168.1.8", "", "", false).code(), Code::kPermissionDenied);
  EXPECT_EQ(a.check("11.0.0.1", "", "m", false).code(), Code::kPermissionDenied);
  EXPECT_EQ(a.check("ipv6:[2001:db9::1]:1", "", "m", false).code(), Code::kPermissionDenied);
  EXPECT_EQ(a.check("unix:/tmp/sock", "", "m", false).code(), Code::kPermissionDenied);
  EXPECT_EQ(a.check("", "", "m", true).code(), Code::kPermissionDenied);  // health too
  EXPECT_FALSE(a.tokens_required());
}

TEST(Access, PrefixBoundaries) {
  AccessOptions o;
  o.allow_cidrs = {"172.16.0.0/12", "fe80::/10"};
  auto ac = AccessControl::create(o);
  ASSERT_TRUE(ac.ok());
  EXPECT_TRUE(ac.value()->check("172.31.255.255", "", "", false).ok());
  EXPECT_FALSE(ac.value()->check("172.32.0.0", "", "", false).ok());
  EXPECT_TRUE(ac.value()->check("ipv6:[fe80::1%eth0]:80", "", "", false).ok());  // zone index
  EXPECT_FALSE(ac.value()->check("fec0::1", "", "", false).ok());
  for (const char* bad : {"1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/33", "::/129", "1.2.3", "host.example"}) {
    AccessOptions b;
    b.allow_cidrs = {bad};
    EXPECT_FALSE(AccessControl::create(b).ok()) << bad;
  }
}

}  // namespace
}  // namespace mserve::server
