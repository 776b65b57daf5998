// parseResponse on the answers the controller sees most: a CDN name (one CNAME, four A
// records, compressed) and an HTTPS answer with ipv4/ipv6 hints behind a CNAME; plus the
// TCP framer cutting a stream of such answers into messages. Each iteration parses one
// message and builds its Answer (strings and vectors included).
#include <benchmark/benchmark.h>

#include <algorithm>

#include "dns/build.h"
#include "dns/dns.h"

namespace {

using namespace cw;
using namespace cw::dns;

std::vector<std::uint8_t> cnameFourA() {
  ResponseSpec spec;
  spec.qname = "www.example.com";
  spec.answers = {cnameRecord("www.example.com", "www.example.com.cdn.cloudflare.net", 300)};
  for (std::uint32_t i = 1; i <= 4; ++i)
    spec.answers.push_back(
        aRecord("www.example.com.cdn.cloudflare.net", Ip4{0x68100000u + i}, 300));
  return buildResponse(spec);
}

std::vector<std::uint8_t> httpsHints() {
  ResponseSpec spec;
  spec.qname = "www.example.com";
  spec.qtype = kTypeHttps;
  SvcbSpec svc;
  svc.alpn = {"h3", "h2"};
  svc.ipv4hint = {*Ip4::parse("104.16.1.1"), *Ip4::parse("104.16.1.2")};
  svc.ipv6hint = {*Ip6::parse("2606:4700::6810:101"), *Ip6::parse("2606:4700::6810:102")};
  spec.answers = {cnameRecord("www.example.com", "svc.example.net", 60),
                  svcbRecord("svc.example.net", svc, kTypeHttps, 300)};
  return buildResponse(spec);
}

void parse(benchmark::State& state, const std::vector<std::uint8_t>& msg, std::size_t mappings) {
  for (auto _ : state) {
    auto r = parseResponse(msg);
    if (!r || r->mappings.size() != mappings) {
      state.SkipWithError("unexpected parse result");
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(msg.size()));
}

void BM_ParseCnameFourA(benchmark::State& state) {
  parse(state, cnameFourA(), 8);
}
BENCHMARK(BM_ParseCnameFourA);

void BM_ParseHttpsHints(benchmark::State& state) {
  parse(state, httpsHints(), 8);
}
BENCHMARK(BM_ParseHttpsHints);

void BM_TcpFramerTenMessages(benchmark::State& state) {
  std::vector<std::uint8_t> stream;
  for (int i = 0; i < 10; ++i) {
    const auto framed = frameTcp(cnameFourA());
    stream.insert(stream.end(), framed.begin(), framed.end());
  }
  for (auto _ : state) {
    TcpFramer framer(1);
    std::size_t got = 0;
    // MSS-sized segments, so messages straddle segment boundaries.
    for (std::size_t at = 0; at < stream.size(); at += 536) {
      const std::size_t n = std::min<std::size_t>(536, stream.size() - at);
      got += framer.feed(static_cast<std::uint32_t>(1 + at), Bytes(stream).subspan(at, n)).size();
    }
    if (got != 10) {
      state.SkipWithError("framer lost messages");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(stream.size()));
}
BENCHMARK(BM_TcpFramerTenMessages);

}  // namespace

BENCHMARK_MAIN();
