// Queries to the environment's resolver from a cell whose names are checked (resolve =
// "rules", docs/dns.md "Which names a cell may resolve").
//
// Every such query reaches the controller (the cell's base flows send it, through the cell's
// meter) and is handled here with Packet-Outs only: no flow per query, so the flow table keeps
// holding policy, and each query is checked on its own (a socket reused for many lookups, as
// stub resolvers do, cannot slip a second name through a flow the first one opened).
//
//   UDP, name an allow rule names -> the frame on to the resolver's port (EDNS options removed)
//   UDP, any other name            -> REFUSED from the resolver's address, to the cell, at once
//   UDP that does not read cleanly -> REFUSED (header only when even the question is unusable)
//   TCP                            -> reset: the name arrives only after the handshake, in a
//                                     stream, once the resolver has already accepted it
#include <optional>

#include "decide/decider.h"
#include "dns/dns.h"
#include "packet/builder.h"

namespace cw::decide {

using policy::Action;

void Decider::resolverQuery(Decision& d, const CellPort& cell, const GatewayPort& gw,
                            const packet::Frame& f, Now now) const {
  d.dns_query = true;
  if (f.l4 == packet::L4::kTcp) {
    d.action = Action::kReject;
    d.reason = Reason::kDnsTcpRefused;
    rejectReply(d, f, cell.ofport);
    return;
  }
  d.reason = Reason::kDnsRefused;
  d.action = Action::kReject;
  std::optional<dns::Query> query;
  if (f.ip_fragment) {
    // A fragment carries part of a query (the rest would follow past this check): refused whole.
    d.detail = "fragment";
  } else if (auto q = dns::parseQuery(f.payload)) {
    query = std::move(*q);
  } else {
    d.detail = dns::parseErrorName(q.error());
    d.query_error = q.error();
  }
  const dns::Query* parsed = query ? &*query : nullptr;
  if (parsed != nullptr) {
    d.names = parsed->qname;
    auto usable = [&cell, unix_now = now.unix_ms](const policy::Rule& r) {
      const RuleLimit* l = cell.policy->limitOf(r.id);
      return l == nullptr || l->usable(unix_now);
    };
    if (const policy::Rule* rule =
            cell.policy->matcher->resolvableBy(parsed->qname, policy::RuleFilter::of(usable))) {
      d.action = Action::kAllow;
      d.reason = Reason::kDnsQuery;
      d.rule_id = rule->id;
      ofp::PacketOut po;
      po.in_port = cell.ofport;
      po.actions.emplace_back(ofp::ActionOutput{gw.ofport, 0});
      if (parsed->opt_rdata_size == 0) {
        po.data.assign(f.raw.begin(), f.raw.end());
      } else {
        const auto message = dns::withoutEdnsOptions(f.payload, *parsed);
        po.data = packet::buildUdp4(packet::EthSpec{f.eth_src, f.eth_dst, 0}, f.ip_src.v4(),
                                    f.ip_dst.v4(), f.src_port, f.dst_port, Bytes(message));
      }
      d.packet_outs.push_back(std::move(po));
      return;
    }
  }
  const auto answer = dns::refusedAnswer(f.payload, parsed);
  if (answer.empty()) {  // not even a header: nothing to answer, dropped
    d.action = Action::kDeny;
    return;
  }
  // From the resolver's address and MAC to the cell, as the resolver would have answered.
  ofp::PacketOut po;
  po.in_port = ofp::kPortController;
  po.actions.emplace_back(ofp::ActionOutput{cell.ofport, 0});
  po.data = packet::buildUdp4(packet::EthSpec{f.eth_dst, f.eth_src, 0}, f.ip_dst.v4(),
                              f.ip_src.v4(), f.dst_port, f.src_port, Bytes(answer));
  d.packet_outs.push_back(std::move(po));
}

}  // namespace cw::decide
