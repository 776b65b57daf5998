// The rule parser: every keyword, the header's addresses/ports/variables, and what is skipped.
#include "ids/rules.h"

#include <gtest/gtest.h>

namespace cw::ids {
namespace {

Rule parseOk(std::string_view text, const Variables& vars = defaultVariables()) {
  auto r = parseRule(text, vars, 1);
  EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().reason);
  return r ? *r : Rule{};
}

Skipped parseBad(std::string_view text, const Variables& vars = defaultVariables()) {
  auto r = parseRule(text, vars, 7);
  EXPECT_FALSE(r.has_value()) << text;
  return r ? Skipped{} : r.error();
}

IpAddr ip(const char* s) {
  return *IpAddr::parse(s);
}

TEST(IdsRules, EveryKeyword) {
  Rule r = parseOk(
      R"(alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"all \"keywords\"\; here"; )"
      R"(flow:to_server,established; content:"GET"; depth:3; offset:0; nocase; fast_pattern; )"
      R"(content:"a\;b\"c\\d|41 42|"; distance:1; within:20; content:!"Host"; )"
      R"(pcre:"/ev[i]l\d+/ism"; dsize:>10; flags:+PA,12; )"
      R"(threshold:type limit, track by_src, count 2, seconds 60; )"
      R"(detection_filter:track by_dst, count 5, seconds 30; classtype:trojan-activity; )"
      R"(reference:url,example.org; metadata:created_at 2024; priority:1; sid:100; rev:3;))");
  EXPECT_EQ(r.sid, 100u);
  EXPECT_EQ(r.rev, 3u);
  EXPECT_EQ(r.msg, "all \"keywords\"; here");
  EXPECT_EQ(r.proto, Proto::kTcp);
  EXPECT_TRUE(r.flow.to_server);
  EXPECT_TRUE(r.flow.established);
  ASSERT_EQ(r.patterns.size(), 4u);
  EXPECT_EQ(r.patterns[0].bytes, "GET");
  EXPECT_TRUE(r.patterns[0].nocase);
  EXPECT_EQ(r.patterns[0].depth, 3u);
  EXPECT_EQ(r.patterns[0].offset, 0u);
  EXPECT_EQ(r.patterns[1].bytes, "a;b\"c\\dAB");
  EXPECT_EQ(r.patterns[1].distance, 1);
  EXPECT_EQ(r.patterns[1].within, 20u);
  EXPECT_FALSE(r.patterns[1].nocase);
  EXPECT_TRUE(r.patterns[2].negated);
  EXPECT_EQ(r.patterns[3].kind, Pattern::Kind::kPcre);
  EXPECT_EQ(r.patterns[3].bytes, "ev[i]l\\d+");
  EXPECT_TRUE(r.patterns[3].nocase && r.patterns[3].dotall && r.patterns[3].multiline);
  ASSERT_TRUE(r.dsize);
  EXPECT_EQ(r.dsize->op, Dsize::Op::kGt);
  EXPECT_EQ(r.dsize->lo, 10u);
  ASSERT_TRUE(r.flags);
  EXPECT_EQ(r.flags->mode, FlagsTest::Mode::kAll);
  EXPECT_EQ(r.flags->bits, 0x18);
  EXPECT_EQ(r.flags->ignore, 0xc0);
  ASSERT_TRUE(r.threshold);
  EXPECT_EQ(r.threshold->type, Threshold::Type::kLimit);
  EXPECT_EQ(r.threshold->count, 2u);
  ASSERT_TRUE(r.detection_filter);
  EXPECT_EQ(r.detection_filter->track, Threshold::Track::kByDst);
  EXPECT_EQ(r.detection_filter->seconds, 30u);
  EXPECT_TRUE(r.dport.matches(8080));
  EXPECT_FALSE(r.dport.matches(443));
}

TEST(IdsRules, ActionsAndProtocols) {
  EXPECT_EQ(parseOk("drop udp any any -> any 53 (sid:1;)").proto, Proto::kUdp);
  EXPECT_EQ(parseOk("reject icmp any any -> any any (sid:1;)").proto, Proto::kIcmp);
  EXPECT_EQ(parseOk("alert ip any any <> any any (sid:1;)").bidirectional, true);
  Skipped s = parseBad("alert http any any -> any any (msg:\"x\"; sid:5;)");
  EXPECT_EQ(s.keyword, "http");
  EXPECT_EQ(s.sid, 5u);
  EXPECT_EQ(s.line, 7);
  EXPECT_EQ(parseBad("pass tcp any any -> any any (sid:5;)").keyword, "pass");
  EXPECT_EQ(parseBad("alert tcp any any => any any (sid:5;)").keyword, "=>");
  EXPECT_EQ(parseBad("alert tcp any any -> any (sid:5;)").keyword, "");
}

TEST(IdsRules, Addresses) {
  Variables v = defaultVariables();
  v["HOME_NET"] = "[10.0.0.0/8,192.168.1.0/24,!10.9.0.0/16]";
  v["DMZ"] = "[$HOME_NET,2001:db8::/32]";
  Rule r = parseOk("alert tcp $HOME_NET any -> !$HOME_NET any (sid:1;)", v);
  EXPECT_TRUE(r.src.matches(ip("10.1.2.3")));
  EXPECT_TRUE(r.src.matches(ip("192.168.1.9")));
  EXPECT_FALSE(r.src.matches(ip("10.9.1.1")));
  EXPECT_FALSE(r.src.matches(ip("8.8.8.8")));
  EXPECT_TRUE(r.dst.matches(ip("8.8.8.8")));
  EXPECT_FALSE(r.dst.matches(ip("10.1.2.3")));
  Rule d = parseOk("alert tcp $DMZ any -> [1.2.3.4, 5.6.7.0/24] any (sid:1;)", v);
  EXPECT_TRUE(d.src.matches(ip("2001:db8::1")));
  EXPECT_TRUE(d.src.matches(ip("10.0.0.1")));
  EXPECT_TRUE(d.dst.matches(ip("5.6.7.8")));
  EXPECT_FALSE(d.dst.matches(ip("1.2.3.5")));
  Rule neg = parseOk("alert tcp ![1.1.1.1,2.2.2.2] any -> any any (sid:1;)");
  EXPECT_FALSE(neg.src.matches(ip("1.1.1.1")));
  EXPECT_TRUE(neg.src.matches(ip("3.3.3.3")));
  EXPECT_EQ(parseBad("alert tcp $NOPE any -> any any (sid:1;)").reason, "unknown variable $NOPE");
  EXPECT_EQ(parseBad("alert tcp 1.2.3.999 any -> any any (sid:1;)").keyword, "address");
  EXPECT_EQ(parseBad("alert tcp !any any -> any any (sid:1;)").keyword, "address");
  EXPECT_EQ(parseBad("alert tcp [1.2.3.4 any -> any any (sid:1;)").keyword, "");
  Variables loop;
  loop["A"] = "$B";
  loop["B"] = "$A";
  EXPECT_EQ(parseBad("alert tcp $A any -> any any (sid:1;)", loop).keyword, "address");
}

TEST(IdsRules, Ports) {
  Rule r = parseOk("alert tcp any [80,8000:8080,!8001] -> any !22 (sid:1;)");
  EXPECT_TRUE(r.sport.matches(80));
  EXPECT_TRUE(r.sport.matches(8000));
  EXPECT_FALSE(r.sport.matches(8001));
  EXPECT_TRUE(r.sport.matches(8080));
  EXPECT_FALSE(r.sport.matches(81));
  EXPECT_FALSE(r.dport.matches(22));
  EXPECT_TRUE(r.dport.matches(23));
  Rule open = parseOk("alert tcp any 1024: -> any :1023 (sid:1;)");
  EXPECT_TRUE(open.sport.matches(65535));
  EXPECT_FALSE(open.sport.matches(1023));
  EXPECT_TRUE(open.dport.matches(0));
  EXPECT_FALSE(open.dport.matches(1024));
  Rule sc = parseOk("alert tcp any $SHELLCODE_PORTS -> any any (sid:1;)");
  EXPECT_FALSE(sc.sport.matches(80));
  EXPECT_TRUE(sc.sport.matches(81));
  EXPECT_EQ(parseBad("alert tcp any 70000 -> any any (sid:1;)").keyword, "port");
  EXPECT_EQ(parseBad("alert tcp any 9:1 -> any any (sid:1;)").keyword, "port");
}

TEST(IdsRules, Content) {
  Rule r =
      parseOk(R"(alert tcp any any -> any any (content:"|00 0a|x|ff|"; content:!"no"; sid:1;))");
  EXPECT_EQ(r.patterns[0].bytes, std::string("\0\nx\xff", 4));
  EXPECT_TRUE(r.patterns[1].negated);
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:"|0|"; sid:1;))").keyword, "content");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:"|zz|"; sid:1;))").keyword,
            "content");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:"ab|41"; sid:1;))").keyword,
            "content");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:""; sid:1;))").keyword, "content");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:abc; sid:1;))").keyword, "content");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (nocase; content:"a"; sid:1;))").keyword,
            "nocase");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:"abcd"; depth:2; sid:1;))").keyword,
            "depth");
  EXPECT_EQ(
      parseBad(R"(alert tcp any any -> any any (content:"a"; content:"bc"; within:1; sid:1;))")
          .keyword,
      "within");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:"a"; offset:1; distance:2; sid:1;))")
                .keyword,
            "distance");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:"a"; offset:x; sid:1;))").keyword,
            "offset");
  EXPECT_EQ(
      parseOk(R"(alert tcp any any -> any any (content:"a"; content:"b"; distance:-3; sid:1;))")
          .patterns[1]
          .distance,
      -3);
}

TEST(IdsRules, Pcre) {
  Rule r = parseOk(R"(alert tcp any any -> any any (pcre:!"/a\;b\/c/xAGEBO"; sid:1;))");
  ASSERT_EQ(r.patterns.size(), 1u);
  EXPECT_TRUE(r.patterns[0].negated);
  EXPECT_EQ(r.patterns[0].bytes, "a;b\\/c");
  EXPECT_TRUE(r.patterns[0].extended && r.patterns[0].anchored && r.patterns[0].ungreedy &&
              r.patterns[0].dollar_endonly);
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (pcre:"/a/R"; sid:1;))").reason,
            "pcre flag R (relative) is not supported");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (pcre:"/a/U"; sid:1;))").keyword, "pcre");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (pcre:"a"; sid:1;))").keyword, "pcre");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (pcre:"//"; sid:1;))").keyword, "pcre");
}

TEST(IdsRules, DsizeFlagsFlow) {
  auto dsize = [](const char* v) {
    return parseOk(std::string("alert tcp any any -> any any (dsize:") + v + "; sid:1;)")
        .dsize.value();
  };
  EXPECT_TRUE(dsize("5").matches(5));
  EXPECT_FALSE(dsize("5").matches(6));
  EXPECT_TRUE(dsize("<5").matches(4));
  EXPECT_FALSE(dsize("<5").matches(5));
  EXPECT_TRUE(dsize(">5").matches(6));
  EXPECT_TRUE(dsize("2<>5").matches(3));
  EXPECT_FALSE(dsize("2<>5").matches(5));
  EXPECT_FALSE(dsize("2<>5").matches(2));
  EXPECT_EQ(parseBad("alert tcp any any -> any any (dsize:5<>2; sid:1;)").keyword, "dsize");

  auto flags = [](const char* v) {
    return parseOk(std::string("alert tcp any any -> any any (flags:") + v + "; sid:1;)")
        .flags.value();
  };
  EXPECT_TRUE(flags("S").matches(0x02));
  EXPECT_FALSE(flags("S").matches(0x12));  // exact: SYN-ACK is not SYN
  EXPECT_TRUE(flags("S,12").matches(0xc2));
  EXPECT_TRUE(flags("S+").matches(0x12));
  EXPECT_TRUE(flags("+S").matches(0x12));
  EXPECT_TRUE(flags("*SF").matches(0x01));
  EXPECT_FALSE(flags("*SF").matches(0x10));
  EXPECT_TRUE(flags("!R").matches(0x10));
  EXPECT_FALSE(flags("!R").matches(0x14));
  EXPECT_TRUE(flags("0").matches(0));
  EXPECT_EQ(parseBad("alert tcp any any -> any any (flags:SX; sid:1;)").keyword, "flags");

  Rule f =
      parseOk("alert tcp any any -> any any (flow:from_server,not_established,stateless; sid:1;)");
  EXPECT_TRUE(f.flow.to_client && f.flow.not_established && f.flow.stateless);
  parseOk("alert tcp any any -> any any (flow:only_stream; flow:no_stream; sid:1;)");
  EXPECT_EQ(parseBad("alert tcp any any -> any any (flow:to_server,to_client; sid:1;)").keyword,
            "flow");
  EXPECT_EQ(parseBad("alert tcp any any -> any any (flow:sideways; sid:1;)").keyword, "flow");
}

TEST(IdsRules, Thresholds) {
  Rule r = parseOk(
      "alert tcp any any -> any any (threshold: type both, track by_both, count 3, seconds 9; "
      "sid:1;)");
  EXPECT_EQ(r.threshold->type, Threshold::Type::kBoth);
  EXPECT_EQ(r.threshold->track, Threshold::Track::kByBoth);
  EXPECT_EQ(
      parseBad("alert tcp any any -> any any (threshold:type limit, count 3, seconds 9; sid:1;)")
          .keyword,
      "threshold");
  EXPECT_EQ(
      parseBad(
          "alert tcp any any -> any any (threshold:type often, track by_src, count 3, seconds 9; "
          "sid:1;)")
          .keyword,
      "threshold");
  EXPECT_EQ(
      parseBad("alert tcp any any -> any any (detection_filter:track by_src, count 0, seconds 9; "
               "sid:1;)")
          .keyword,
      "detection_filter");
}

TEST(IdsRules, UnsupportedKeywordIsReportedWithItsSid) {
  // The sid comes after the keyword at fault and is still reported.
  Skipped s =
      parseBad(R"(alert tcp any any -> any any (msg:"x"; flowbits:set,foo; sid:42; rev:1;))");
  EXPECT_EQ(s.keyword, "flowbits");
  EXPECT_EQ(s.sid, 42u);
  EXPECT_EQ(s.reason, "unsupported keyword flowbits");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (content:"a"; http_uri; sid:3;))").keyword,
            "http_uri");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (msg:"no sid";))").keyword, "sid");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any (sid:0;))").keyword, "sid");
  EXPECT_EQ(parseBad(R"(alert tcp any any -> any any sid:1;)").keyword, "");
}

TEST(IdsRules, FileCommentsContinuationVarsDuplicates) {
  const char* text =
      "# a comment\n"
      "\n"
      "var MYNET [10.1.0.0/16]\n"
      "portvar MYPORTS [1000:2000]\n"
      "alert tcp $MYNET any -> any $MYPORTS (msg:\"one\"; \\\n"
      "   content:\"abc\"; \\\n"
      "   sid:1;)\n"
      "alert tcp any any -> any any (msg:\"bad\"; byte_test:4,>,1,0; sid:2;)\n"
      "   # alert tcp any any -> any any (sid:3;)\n"
      "alert tcp any any -> any any (msg:\"dup\"; sid:1;)\n"
      "var\n"
      "alert udp any any -> any 53 (msg:\"last, no newline\"; sid:4;)";
  LoadReport report;
  auto rules = parseRules(text, defaultVariables(), report);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].sid, 1u);
  EXPECT_EQ(rules[0].line, 5);
  EXPECT_EQ(rules[0].patterns.at(0).bytes, "abc");
  EXPECT_TRUE(rules[0].src.matches(*IpAddr::parse("10.1.2.3")));
  EXPECT_TRUE(rules[0].dport.matches(1500));
  EXPECT_FALSE(rules[0].dport.matches(80));
  EXPECT_EQ(rules[1].sid, 4u);
  EXPECT_EQ(rules[1].line, 12);
  ASSERT_EQ(report.skipped.size(), 3u);
  EXPECT_EQ(report.skipped[0].line, 8);
  EXPECT_EQ(report.skipped[0].sid, 2u);
  EXPECT_EQ(report.skipped[0].keyword, "byte_test");
  EXPECT_EQ(report.skipped[1].line, 10);
  EXPECT_EQ(report.skipped[1].reason, "duplicate sid 1 (first on line 5)");
  EXPECT_EQ(report.skipped[2].keyword, "var");
  EXPECT_EQ(report.loaded, 0u);  // parseRules leaves counting to the compiler
}

TEST(IdsRules, GarbageNeverThrows) {
  LoadReport report;
  const char* junk[] = {"(",
                        ")",
                        "alert",
                        "alert tcp any any -> any any (",
                        "alert tcp any any -> any any ()",
                        "alert tcp [[[[ any -> any any (sid:1;)",
                        "\\",
                        "alert tcp any any -> any any (;;;;sid:1;)",
                        "alert tcp any any -> any any (content:\"\\\"; sid:1;)"};
  for (const char* j : junk) parseRules(j, defaultVariables(), report);
  EXPECT_GE(report.skipped.size(), 6u);
}

}  // namespace
}  // namespace cw::ids
