#include "common/bytes.h"
#include "common/net.h"

#include <gtest/gtest.h>

namespace cw {
namespace {

TEST(Net, ParsesAndFormatsAddresses) {
  EXPECT_EQ(MacAddr::parse("02:00:0a:c9:00:02")->str(), "02:00:0a:c9:00:02");
  EXPECT_FALSE(MacAddr::parse("02:00:0a:c9:00"));
  EXPECT_FALSE(MacAddr::parse("02-00-0a-c9-00-02"));
  EXPECT_EQ(Ip4::parse("10.201.0.2")->v, 0x0ac90002u);
  EXPECT_FALSE(Ip4::parse("10.201.0.256"));
  auto a = IpAddr::parse("10.1.2.3");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v4());
  EXPECT_EQ(a->str(), "10.1.2.3");
  auto b = IpAddr::parse("2001:db8::1");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->is_v4());
  EXPECT_EQ(b->str(), "2001:db8::1");
}

TEST(Net, CidrContainsAndCanonicalizes) {
  auto c = Cidr::parse("10.1.2.3/8");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->str(), "10.0.0.0/8");
  EXPECT_TRUE(c->contains(*IpAddr::parse("10.200.1.1")));
  EXPECT_FALSE(c->contains(*IpAddr::parse("11.0.0.1")));
  EXPECT_FALSE(c->contains(*IpAddr::parse("::ffff:b00:1") /* 11.0.0.1 mapped */));
  auto six = Cidr::parse("2001:db8::/33");
  ASSERT_TRUE(six);
  EXPECT_TRUE(six->contains(*IpAddr::parse("2001:db8:7fff::1")));
  EXPECT_FALSE(six->contains(*IpAddr::parse("2001:db8:8000::1")));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/"));
  EXPECT_EQ(Cidr::parse("0.0.0.0/0")->bits(), 96u);
}

TEST(Bytes, ReaderNeverOverruns) {
  const std::uint8_t data[] = {0x01, 0x02, 0x03};
  ByteReader r{Bytes(data)};
  EXPECT_EQ(r.u16(), 0x0102);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.u16(), 0);  // only one byte left
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.u8(), 0);  // sticky
}

TEST(Bytes, WriterPatchesAndPads) {
  std::vector<std::uint8_t> out;
  ByteWriter w(out);
  w.u16(0);
  w.u8(7);
  w.pad_to(8);
  w.patch_u16(0, 0xbeef);
  ASSERT_EQ(out.size(), 8u);
  EXPECT_EQ(out[0], 0xbe);
  EXPECT_EQ(out[1], 0xef);
  EXPECT_EQ(out[2], 7);
}

}  // namespace
}  // namespace cw
