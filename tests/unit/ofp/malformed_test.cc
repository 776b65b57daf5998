// Every DecodeError reachable from bytes, and the OpenFlow error each maps to.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ofp/codec.h"
#include "test_messages.h"

namespace cw::ofp {
namespace {

using testing::fromHex;

// A message with its header length filled in from the body.
std::string msg(const std::string& version_type, const std::string& body) {
  std::size_t len = 8 + fromHex(body).size();
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04zx", len);
  return version_type + " " + buf + " 00000001 " + body;
}
std::string flowMod13(const std::string& match, const std::string& instructions = "", const std::string& command = "00") {
  return msg("04 0e", "0000000000000000 0000000000000000 00 " + command +
                          " 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000 " + match + " " + instructions);
}
constexpr const char* kEmptyMatch = "0001 0004 00000000";
std::string packetOut13(const std::string& actions) {
  char len[8];
  std::snprintf(len, sizeof len, "%04zx", fromHex(actions).size());
  return msg("04 0d", std::string("ffffffff fffffffd ") + len + " 000000000000 " + actions);
}
std::string packetOut10(const std::string& actions) {
  char len[8];
  std::snprintf(len, sizeof len, "%04zx", fromHex(actions).size());
  return msg("01 0d", std::string("ffffffff fffd ") + len + " " + actions);
}

struct Case {
  const char* what;
  std::string hex;
  DecodeError want;
};

std::vector<Case> cases() {
  using E = DecodeError;
  return {
      {"shorter than a header", "04 00 00", E::kTruncated},
      {"length field past the buffer", "04 00 0010 00000001", E::kBadLength},
      {"length field below 8", "04 00 0004 00000001", E::kBadLength},
      {"buffer past the length field", "04 02 0008 00000001 00", E::kBadLength},
      {"version 1.1", "02 02 0008 00000001", E::kBadVersion},
      {"hello version 0", "00 00 0008 00000001", E::kBadVersion},
      {"unknown 1.3 type", "04 63 0008 00000001", E::kBadType},
      {"experimenter message", "04 04 0010 00000001 00002320 00000000", E::kBadType},
      {"role request in 1.0", "01 18 0008 00000001", E::kBadType},
      {"multipart desc", msg("04 12", "0000 0000 00000000"), E::kBadMultipart},
      {"multipart reply group", msg("04 13", "0006 0000 00000000"), E::kBadMultipart},
      {"1.0 stats desc", msg("01 10", "0000 0000"), E::kBadMultipart},
      {"barrier with a body", msg("04 14", "00000000"), E::kBadLength},
      {"features reply short", msg("04 06", "0000000000000001"), E::kTruncated},
      {"features reply 1.0 partial port", msg("01 06", "0000000000000001 00000100 01 000000 00000000 00000000 0001"),
       E::kBadLength},
      {"packet-in short", msg("04 0a", "ffffffff 0000 00 00"), E::kTruncated},
      {"packet-in without data pad", msg("04 0a", "ffffffff 0000 00 00 0000000000000000 0001 0004 00000000"),
       E::kTruncated},
      {"1.0 packet-in short", msg("01 0a", "ffffffff 0000 0001"), E::kTruncated},
      {"flow mod short", msg("04 0e", "0000000000000000"), E::kTruncated},
      {"1.0 flow mod short", msg("01 0e", std::string(60 * 2, '0')), E::kTruncated},
      {"oxm length wrong for field", flowMod13("0001 000b 80000003 000003 0000000000"), E::kBadMatch},
      {"mask on in_port", flowMod13("0001 0010 80000108 00000003 ffffffff"), E::kBadMatch},
      {"oxm past match", flowMod13("0001 0008 80000008 00000000"), E::kBadMatch},
      {"match past message", flowMod13("0001 0040 00000000"), E::kBadMatch},
      {"match length below header", flowMod13("0001 0002 00000000"), E::kBadMatch},
      {"standard match type", flowMod13("0000 0004 00000000"), E::kBadMatch},
      {"duplicate oxm", flowMod13("0001 0010 80000a02 0800 80000a02 0800"), E::kBadMatch},
      {"oxm header cut", flowMod13("0001 0006 8000 0000"), E::kBadMatch},
      {"unknown basic oxm", flowMod13("0001 0009 80001201 02 00000000000000"), E::kBadField},
      {"nxm oxm in flow mod", flowMod13("0001 000c 00012604 11223344 00000000"), E::kBadField},
      {"flow mod command 7", flowMod13(kEmptyMatch, "", "07"), E::kBadValue},
      {"unknown instruction", flowMod13(kEmptyMatch, "0063 0008 00000000"), E::kBadInstruction},
      {"instruction past message", flowMod13(kEmptyMatch, "0001 0010 01000000"), E::kBadInstruction},
      {"instruction len not 8k", flowMod13(kEmptyMatch, "0001 000c 01000000 00000000"), E::kBadInstruction},
      {"goto_table wrong size", flowMod13(kEmptyMatch, "0001 0010 01000000 00000000 00000000"), E::kBadInstruction},
      {"instruction header cut", flowMod13(kEmptyMatch, "0001"), E::kBadInstruction},
      {"bad action in apply", flowMod13(kEmptyMatch, "0004 0010 00000000 0063 0008 00000000"), E::kBadAction},
      {"action len 12", packetOut13("0000 000c 00000002 0000 00000000"), E::kBadAction},
      {"action len 0", packetOut13("0000 0000 00000000"), E::kBadAction},
      {"unknown action", packetOut13("0063 0008 00000000"), E::kBadAction},
      {"output action short", packetOut13("0000 0008 00000002"), E::kBadAction},
      {"set-field with mask", packetOut13("0019 0010 80001708 0a000001 ffffff00"), E::kBadAction},
      {"set-field unknown field", packetOut13("0019 0010 80001201 02 00000000000000"), E::kBadAction},
      {"set-field wrong padding", packetOut13("0019 0018 80000a02 0800 000000000000 0000000000000000"), E::kBadAction},
      {"actions_len past message", msg("04 0d", "ffffffff fffffffd 0100 000000000000"), E::kBadLength},
      {"1.0 action len 0", packetOut10("0000 0000 0000 0000"), E::kBadAction},
      {"1.0 enqueue", packetOut10("000b 0010 0001 000000000000 00000001"), E::kBadAction},
      {"1.0 dl_src action short", packetOut10("0004 0008 020000000001"), E::kBadAction},
      {"role 9", msg("04 18", "00000009 00000000 0000000000000000"), E::kBadValue},
      {"role short", msg("04 18", "00000002 00000000"), E::kTruncated},
      {"meter dscp band", msg("04 1d", "0000 0002 00000001 0002 0010 00000064 00000000 00000000"), E::kBadValue},
      {"meter band short", msg("04 1d", "0000 0002 00000001 0001 0008 00000064"), E::kBadLength},
      {"meter command 3", msg("04 1d", "0003 0002 00000001"), E::kBadValue},
      {"flow stats entry short", msg("04 13", "0001 0000 00000000 0010 00 00 00000000 00000000 0000 0000"),
       E::kBadLength},
      {"flow stats entry past message",
       msg("04 13", "0001 0000 00000000 0100" + std::string(54 * 2, '0')), E::kBadLength},
      {"port desc partial", msg("04 13", "000d 0000 00000000 00000001"), E::kBadLength},
      {"table stats partial", msg("04 13", "0003 0000 00000000 00000001"), E::kBadLength},
      {"1.0 flow stats entry short", msg("01 11", "0001 0000 0010 0000"), E::kBadLength},
      {"hello element past end", msg("04 00", "0001 0010 00000012"), E::kBadLength},
      {"hello element length 2", msg("04 00", "0001 0002 00000012"), E::kBadLength},
      // Nicira (conntrack) extensions.
      {"ct_zone with a mask", flowMod13("0001 0010 0001d504 0007 ffff 00000000"), E::kBadMatch},
      {"ct_state wrong length", flowMod13("0001 000a 0001d202 0020 000000000000"), E::kBadMatch},
      {"nx action shorter than its header", packetOut13("ffff 0008 00002320"), E::kBadAction},
      {"ct action shorter than nx_action_conntrack", packetOut13("ffff 0010 00002320 0023 000000000000"), E::kBadAction},
      {"ct nested action overruns the ct action",
       packetOut13("ffff 0020 00002320 0023 0001 00000000 0005 ff000000 0000 0019 0010 0001d604"), E::kBadAction},
      {"ct nested output", packetOut13("ffff 0028 00002320 0023 0000 00000000 0005 ff000000 0000 "
                                       "0000 0010 00000005 0000 000000000000"), E::kBadAction},
      {"ct exec sets ipv4_dst", packetOut13("ffff 0028 00002320 0023 0001 00000000 0005 ff000000 0000 "
                                            "0019 0010 80001804 0a000001 00000000"), E::kBadAction},
      {"ct zone from a field", packetOut13("ffff 0018 00002320 0023 0000 80000004 0005 ff000000 0000"), E::kBadAction},
      {"unknown nx action subtype", packetOut13("ffff 0010 00002320 0063 000000000000"), E::kBadAction},
      {"other vendor's action", packetOut13("ffff 0010 00001234 002b 000000000000"), E::kBadAction},
      {"ct_clear too long", packetOut13("ffff 0018 00002320 002b 000000000000 0000000000000000"), E::kBadAction},
      {"other vendor's message", msg("04 04", "00001234 0000001d 000000000000 0005"), E::kBadType},
      {"experimenter message short", msg("04 04", "00002320"), E::kTruncated},
      {"ct flush zone short", msg("04 04", "00002320 0000001d 00000005"), E::kBadLength},
      {"ct flush zone nonzero pad", msg("04 04", "00002320 0000001d 000000000100 0005"), E::kBadValue},
      {"ct flush short", msg("04 04", "00002320 00000020 0600"), E::kTruncated},
      {"ct flush nonzero pad", msg("04 04", "00002320 00000020 0602000000000000"), E::kBadValue},
      {"ct flush property past end", msg("04 04", "00002320 00000020 0600000000000000 0002 0010 0005 0000"),
       E::kBadLength},
      {"ct flush zone 3 bytes", msg("04 04", "00002320 00000020 0000000000000000 0002 0007 000500 00"), E::kBadLength},
      {"ct flush ipv6 tuple", msg("04 04", "00002320 00000020 0600000000000000 0000 0020 00000000 "
                                         "0000 0014 20010db8000000000000000000000001 00000000"), E::kBadValue},
      {"ct flush ports with icmp", msg("04 04", "00002320 00000020 0100000000000000 0000 0010 00000000 "
                                              "0002 0008 04d2 0000"), E::kBadValue},
      {"ct flush empty reply tuple", msg("04 04", "00002320 00000020 0600000000000000 0001 0008 00000000"),
       E::kBadValue},
      {"ct flush unknown property", msg("04 04", "00002320 00000020 0000000000000000 0009 0008 00000000"),
       E::kBadValue},
      {"1.0 ct flush zone short", msg("01 04", "00002320 0000001d 0000"), E::kBadLength},
      {"flow removed trailing", msg("04 0b", std::string(40 * 2, '0') + "0001 0004 00000000 00000000"), E::kBadLength},
  };
}

TEST(OfpMalformed, EachInputGivesItsError) {
  bool seen[static_cast<int>(DecodeError::kCount)] = {};
  for (const auto& c : cases()) {
    auto bytes = fromHex(c.hex);
    auto d = decode(bytes);
    ASSERT_FALSE(d) << c.what << ": decoded as " << format(*d);
    EXPECT_EQ(decodeErrorName(d.error()), std::string(decodeErrorName(c.want))) << c.what;
    seen[static_cast<int>(d.error())] = true;
  }
  for (int i = 0; i < static_cast<int>(DecodeError::kCount); ++i) {
    EXPECT_TRUE(seen[i]) << "no case reaches " << decodeErrorName(static_cast<DecodeError>(i));
  }
}

TEST(OfpMalformed, ErrorsMapToOpenFlow13Codes) {
  auto is = [](DecodeError e, std::uint16_t type, std::uint16_t code) {
    auto c = errorFor(e);
    return c.type == type && c.code == code;
  };
  EXPECT_TRUE(is(DecodeError::kTruncated, 1, 6));       // OFPET_BAD_REQUEST, OFPBRC_BAD_LEN
  EXPECT_TRUE(is(DecodeError::kBadLength, 1, 6));
  EXPECT_TRUE(is(DecodeError::kBadVersion, 1, 0));      // OFPBRC_BAD_VERSION
  EXPECT_TRUE(is(DecodeError::kBadType, 1, 1));         // OFPBRC_BAD_TYPE
  EXPECT_TRUE(is(DecodeError::kBadMultipart, 1, 2));    // OFPBRC_BAD_MULTIPART
  EXPECT_TRUE(is(DecodeError::kBadMatch, 4, 1));        // OFPET_BAD_MATCH, OFPBMC_BAD_LEN
  EXPECT_TRUE(is(DecodeError::kBadField, 4, 6));        // OFPBMC_BAD_FIELD
  EXPECT_TRUE(is(DecodeError::kBadAction, 2, 0));       // OFPET_BAD_ACTION, OFPBAC_BAD_TYPE
  EXPECT_TRUE(is(DecodeError::kBadInstruction, 3, 0));  // OFPET_BAD_INSTRUCTION, OFPBIC_UNKNOWN_INST
  EXPECT_TRUE(is(DecodeError::kBadValue, 1, 5));        // OFPBRC_EPERM
  for (int i = 0; i < static_cast<int>(DecodeError::kCount); ++i) {
    EXPECT_STRNE(decodeErrorName(static_cast<DecodeError>(i)), "unknown");
  }
}

}  // namespace
}  // namespace cw::ofp
