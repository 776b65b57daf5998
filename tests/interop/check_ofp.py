#!/usr/bin/python3
"""Cross-checks cw_ofp's encoder against two independent OpenFlow decoders.

Runs ofp_emit (which encodes a fixed set of 1.3 and 1.0 messages), then:
  1. feeds each message to `ovs-ofctl ofp-print <hex>` and checks the fields it prints;
  2. reads the pcap ofp_emit wrote with `tshark` (openflow_v4 / openflow_v1 dissectors) and
     checks type, xid, length and a few fields per message.
The expected values mirror what ofp_emit.cc encodes. Exit status 0 when everything matches.

Usage: check_ofp.py path/to/ofp_emit
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# ovs-ofctl ofp-print: regexes that must all match its output for the message.
OVS = {
    "hello13": [r"OFPT_HELLO \(OF1\.3\) \(xid=0x1\)", r"version bitmap: 0x01, 0x04"],
    "hello10": [r"OFPT_HELLO \(xid=0x65\)"],
    "echo13": [r"OFPT_ECHO_REQUEST \(OF1\.3\) \(xid=0x2\): 4 bytes of payload", r"01 02 03 04"],
    "echo10": [r"OFPT_ECHO_REQUEST \(xid=0x66\): 4 bytes of payload"],
    "barrier13": [r"OFPT_BARRIER_REQUEST \(OF1\.3\) \(xid=0x3\)"],
    "barrier10": [r"OFPT_BARRIER_REQUEST \(xid=0x67\)"],
    "set_config13": [r"OFPT_SET_CONFIG \(OF1\.3\) \(xid=0x4\): frags=normal miss_send_len=1500"],
    "set_config10": [r"OFPT_SET_CONFIG \(xid=0x68\): frags=normal miss_send_len=1500"],
    "role13": [r"OFPT_ROLE_REQUEST \(OF1\.3\) \(xid=0x5\): role=(primary|master) generation_id=17"],
    "flow_mod13": [r"OFPT_FLOW_MOD \(OF1\.3\) \(xid=0x6\): ADD table:1 ", r"priority=100,tcp,",
                   r"metadata=0x10/0xff", r"in_port=3", r"dl_vlan=5", r"dl_src=02:00:0a:c9:00:02",
                   r"dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", r"nw_src=10\.201\.0\.2[, ]",
                   r"nw_dst=192\.168\.0\.0/16", r"tp_dst=80 ", r"cookie:0xc0ffee", r"idle:60", r"hard:300",
                   r"send_flow_rem",
                   r"actions=meter:3,set_field:10\.0\.0\.9->(ip|nw)_dst,output:2,write_metadata:0x5/0xf,goto_table:2$"],
    "flow_mod10": [r"OFPT_FLOW_MOD \(xid=0x6a\): ADD priority=100,tcp,", r"in_port=3", r"dl_vlan=5",
                   r"dl_src=02:00:0a:c9:00:02", r"nw_src=10\.0\.0\.0/8", r"nw_dst=8\.8\.8\.8", r"tp_dst=80 ",
                   r"cookie:0xc0ffee", r"idle:60", r"hard:300", r"send_flow_rem",
                   r"actions=mod_dl_dst:02:00:00:00:00:bb,mod_nw_dst:10\.0\.0\.9,output:2$"],
    "flow_mod_v6_13": [r"\(xid=0x7\): DEL_STRICT priority=10,udp6,", r"ipv6_src=2001:db8::1[, ]",
                       r"ipv6_dst=2001:db8::/32", r"tp_dst=53", r"out_port:7", r"actions=drop"],
    # Table 0's admit flows: untagged only. OpenFlow 1.3's OFPVID_NONE, and 1.0's dl_vlan=0xffff
    # (OFP_VLAN_NONE), as Open vSwitch reads them: a priority tag (VID 0) does not match either.
    "flow_mod_untagged13": [r"\(xid=0xf\): ADD priority=100,ip,in_port=3,vlan_tci=0x0000/0x1fff,"
                            r"dl_src=02:00:0a:c9:00:02,nw_src=10\.201\.0\.2 actions=goto_table:1$"],
    "flow_mod_untagged10": [r"\(xid=0x73\): ADD priority=100,ip,in_port=3,vlan_tci=0x0000,"
                            r"dl_src=02:00:0a:c9:00:02,nw_src=10\.201\.0\.2 actions=output:2$"],
    "packet_out13": [r"\(xid=0x8\): in_port=CONTROLLER actions=push_vlan:0x8100,set_field:4106->vlan_vid,"
                     r"output:5 data_len=60"],
    "packet_out10": [r"\(xid=0x6c\): in_port=CONTROLLER actions=output:5 data_len=60"],
    "packet_in13": [r"OFPT_PACKET_IN \(OF1\.3\) \(xid=0x9\): table_id=2 cookie=0xabc total_len=60 in_port=4 "
                    r"\(via action\) data_len=60"],
    "packet_in10": [r"OFPT_PACKET_IN \(xid=0x6d\): total_len=60 in_port=4 \(via action\) data_len=60"],
    "meter_mod13": [r"\(xid=0xa\): ADD meter=3 pktps burst bands=", r"type=drop rate=1000 burst_size=100"],
    "flow_stats13": [r"OFPST_FLOW request \(OF1\.3\) \(xid=0xb\): table=1 .*in_port=3"],
    "flow_stats10": [r"OFPST_FLOW request \(xid=0x6f\): in_port=3"],
    "flow_removed13": [r"\(xid=0xc\): priority=200,udp,in_port=1,tp_dst=53 reason=idle table_id=3 cookie:0x77 "
                       r"duration10\.500s idle30 pkts1000 bytes64000"],
    "flow_removed10": [r"\(xid=0x70\): priority=200,udp,in_port=1,tp_dst=53 reason=idle cookie:0x77 "
                       r"duration10\.500s idle30 pkts1000 bytes64000"],
    "port_status13": [r"\(xid=0xd\): MOD: 1\(cw-firefox-1\): addr:02:00:00:00:00:01", r"state: +LIVE",
                      r"speed: 10000 Mbps now, 10000 Mbps max"],
    "port_status10": [r"\(xid=0x71\): MOD: 1\(cw-firefox-1\): addr:02:00:00:00:00:01"],
    "port_desc13": [r"OFPST_PORT_DESC request \(OF1\.3\) \(xid=0xe\)"],
    # Conntrack (Nicira extensions: NXM_NX_CT_* fields as OXMs, NXAST_CT / NXAST_CT_CLEAR,
    # NXT_CT_FLUSH_ZONE / NXT_CT_FLUSH).
    "ct_flow_mod13": [r"\(xid=0x20\): ADD table:2 priority=200,ct_state=\+est\+trk,ct_zone=7,ct_mark=0x5/0x7 "
                      r"actions=goto_table:4$"],
    "ct_recirc13": [r"\(xid=0x21\): ADD table:1 priority=10,ct_state=-inv\+trk,ct_label=0x10/0xff,ip "
                    r"actions=ct\(table=3,zone=7\)$"],
    "ct_packet_out13": [r"\(xid=0x22\): in_port=CONTROLLER "
                        r"actions=ct\(commit,zone=5,exec\(set_field:0x9->ct_mark\)\),ct_clear,output:5 data_len=60"],
    "ct_commit13": [r"\(xid=0x23\): ADD table:3 ct_state=\+new\+trk,ip actions=ct\(commit,force,zone=9,"
                    r"exec\(set_field:0x9->ct_mark,set_field:0x10000000000000002->ct_label\)\),output:2$"],
    "ct_packet_in13": [r"OFPT_PACKET_IN \(OF1\.3\) \(xid=0x24\): table_id=3 cookie=0x0 total_len=60 "
                       r"ct_state=est\|trk,ct_zone=7,ct_mark=0x5,ct_label=0x1,in_port=4 \(via action\)"],
    "ct_flush_zone13": [r"NXT_CT_FLUSH_ZONE \(OF1\.3\) \(xid=0x25\): zone_id=5$"],
    "ct_flush_zone10": [r"NXT_CT_FLUSH_ZONE \(xid=0x125\): zone_id=5$"],
    "ct_flush13": [r"NXT_CT_FLUSH \(OF1\.3\) \(xid=0x26\): zone=5 "
                   r"'ct_nw_src=10\.1\.2\.3,ct_nw_dst=10\.4\.5\.6,ct_tp_src=1234,ct_tp_dst=80,ct_nw_proto=6' "
                   r"'ct_nw_src=10\.4\.5\.6,ct_nw_dst=10\.1\.2\.3,ct_tp_src=80,ct_tp_dst=1234'$"],
    # No zone property: ofp-print shows the default zone 0.
    "ct_flush_icmp13": [r"NXT_CT_FLUSH \(OF1\.3\) \(xid=0x27\): zone=0 "
                        r"'ct_nw_src=10\.1\.2\.3,ct_nw_dst=10\.4\.5\.6,icmp_id=7,icmp_type=8,icmp_code=0,ct_nw_proto=1' "
                        r"'ct_nw_src=::,ct_nw_dst=::,icmp_id=0,icmp_type=0,icmp_code=0'$"],
    "ct_flush_partial13": [r"NXT_CT_FLUSH \(OF1\.3\) \(xid=0x28\): zone=6 "
                           r"'ct_nw_src=10\.1\.2\.3,ct_nw_dst=::,ct_tp_src=0,ct_tp_dst=0,ct_nw_proto=17' "],
    # Nothing but the header: ofp-print shows zone 0 and empty (IPv6-looking) tuples.
    "ct_flush_all13": [r"NXT_CT_FLUSH \(OF1\.3\) \(xid=0x29\): zone=0 'ct_ipv6_src=::,ct_ipv6_dst=::,"
                       r"ct_tp_src=0,ct_tp_dst=0,ct_nw_proto=0'"],
    # Masked L4 ports (OXM hasmask): a port range as prefix blocks.
    "port_mask13": [r"\(xid=0x2a\): ADD table:6 priority=7,tcp,in_port=3,tp_dst=0x400/0xfc00 actions=drop$"],
    "udp_port_mask13": [r"\(xid=0x2b\): ADD table:6 priority=7,udp,tp_src=0x8000/0x8000,tp_dst=53 actions=drop$"],
    "controller2_13": [r"\(xid=0x2d\): ADD table:6 priority=9,ip,in_port=3 actions=controller\(max_len=128,meter_id=7\),output:2$"],
    "resubmit13": [r"\(xid=0x2e\): ADD table:3 priority=200,", r"ct_zone=7", r"ct_mark=0x9/0xfffffffb",
                   r"actions=resubmit\(,7\),goto_table:4$"],
    "count13": [r"\(xid=0x2f\): ADD table:7 priority=101,", r"ct_zone=7", r"ct_label=0x2a", r"in_port=3",
                r"actions=drop$"],
    "tcp_flags13": [r"\(xid=0x2c\): ADD table:3 priority=2,", r"ct_state=\+new-inv\+trk", r"ct_mark=0",
                    r"tcp,in_port=1", r"tcp_flags=\+syn-ack", r"actions=goto_table:6$"],
}

# tshark: field → expected value (a list for repeated fields), per message.
V4 = "openflow_v4."
TSHARK = {
    "hello13": {V4 + "hello_element.version.bitmap": "00000012"},
    "set_config13": {V4 + "switch_config.miss_send_len": "1500"},
    "set_config10": {"openflow.miss_send_len": "1500"},
    "role13": {V4 + "role_request.role": "2", V4 + "role_request.generation_id": "17"},
    "flow_mod13": {
        V4 + "flowmod.priority": "100", V4 + "flowmod.cookie": "0xc0ffee", V4 + "flowmod.table_id": "1",
        V4 + "flowmod.idle_timeout": "60", V4 + "flowmod.hard_timeout": "300",
        V4 + "oxm.field": ["0", "2", "3", "4", "5", "6", "10", "11", "12", "14", "12"],
        V4 + "oxm.value_ipv4addr": ["10.201.0.2", "192.168.0.0", "10.0.0.9"],
        V4 + "oxm.value_etheraddr": ["01:00:00:00:00:00", "02:00:0a:c9:00:02"],
        V4 + "oxm.value_uint16": ["80"],
        V4 + "instruction.type": ["6", "4", "2", "1"], V4 + "action.type": ["25", "0"],
        V4 + "instruction.meter.meter_id": "3", V4 + "instruction.goto_table.table_id": "2",
        V4 + "action.output.port": "2",
    },
    "flow_mod10": {"openflow.priority": "100", "openflow.cookie": "0xc0ffee", "openflow.in_port": "3",
                   "openflow.ofp_match.dest_port": "80", "openflow.idle_timeout": "60",
                   "openflow.hard_timeout": "300", "openflow.ofp_match.source_addr": "10.0.0.0",
                   "openflow.ofp_match.dest_addr": "8.8.8.8"},
    "flow_mod_v6_13": {V4 + "flowmod.priority": "10", V4 + "flowmod.command": "4",
                       V4 + "flowmod.out_port": "7", V4 + "oxm.field": ["5", "10", "16", "26", "27"],
                       V4 + "oxm.value_ipv6addr": ["2001:db8::1", "2001:db8::"]},
    "flow_mod_untagged13": {V4 + "oxm.field": ["0", "4", "5", "6", "11"], V4 + "oxm.hm": ["0"] * 5,
                            V4 + "oxm.value_vlan_present": "0", V4 + "oxm.value_vlan_vid": "0"},
    "flow_mod_untagged10": {"openflow.dl_vlan": "65535", "openflow.in_port": "3"},
    "packet_out13": {V4 + "packet_out.in_port": "4294967293", V4 + "action.type": ["17", "25", "0"],
                     V4 + "action.output.port": "5", V4 + "packet_out.acts_len": "40"},
    "packet_out10": {"openflow.in_port": "65533", "openflow.output_port": "5"},
    "packet_in13": {V4 + "packet_in.cookie": "0xabc", V4 + "packet_in.table_id": "2",
                    V4 + "packet_in.total_len": "60", V4 + "packet_in.reason": "1", V4 + "oxm.field": "0",
                    V4 + "oxm.value_uint32": "4"},
    "packet_in10": {"openflow.in_port": "4", "openflow.total_len": "60"},
    "meter_mod13": {V4 + "meter_band.rate": "1000", V4 + "meter_band.burst_size": "100"},
    "flow_stats13": {V4 + "multipart_request.type": "1"},
    "flow_removed13": {V4 + "flow_removed.priority": "200", V4 + "flow_removed.cookie": "0x77",
                       V4 + "flow_removed.table_id": "3", V4 + "flow_removed.idle_timeout": "30",
                       V4 + "flow_removed.packet_count": "1000", V4 + "flow_removed.byte_count": "64000",
                       V4 + "flow_removed.duration_sec": "10"},
    "port_status13": {V4 + "port.name": "cw-firefox-1", V4 + "port.port_no": "1",
                      V4 + "port.hw_addr": "02:00:00:00:00:01", V4 + "port_status.reason": "2"},
    "port_desc13": {V4 + "multipart_request.type": "13"},
    # Wireshark knows the NXM class and the Nicira vendor id, not the fields' bodies.
    "ct_flow_mod13": {V4 + "oxm.class": ["0x0001"] * 3, V4 + "oxm.field": ["105", "106", "107"]},
    "ct_recirc13": {V4 + "oxm.class": ["0x8000", "0x0001", "0x0001"], V4 + "oxm.field": ["5", "105", "108"],
                    V4 + "action.type": "65535", V4 + "action_experimenter.experimenter": "0x00002320"},
    "ct_packet_out13": {V4 + "action.type": ["65535", "65535", "0"],
                        V4 + "action_experimenter.experimenter": ["0x00002320", "0x00002320"]},
    "ct_packet_in13": {V4 + "oxm.field": ["0", "105", "106", "107", "108"]},
    "ct_flush_zone13": {V4 + "experimenter.experimenter": "0x00002320", V4 + "experimenter.exp_type": "29"},
    "ct_flush13": {V4 + "experimenter.experimenter": "0x00002320", V4 + "experimenter.exp_type": "32"},
    "port_mask13": {V4 + "oxm.field": ["0", "5", "10", "14"], V4 + "oxm.hm": ["0", "0", "0", "1"]},
}


def same(want, got):
    if want == got:
        return True
    try:
        return int(want, 0) == int(got, 0)
    except ValueError:
        return False


def main():
    emit = sys.argv[1]
    missing = [tool for tool in ("ovs-ofctl", "tshark") if shutil.which(tool) is None]
    if missing:
        print(f"SKIP: {', '.join(missing)} not installed (apt install openvswitch-common tshark)")
        return 77
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "ofp.pcap")
        lines = subprocess.run([emit, pcap], check=True, capture_output=True, text=True).stdout.splitlines()
        msgs = []
        for line in lines:
            name, version, xid, mtype, length, hexbytes = line.split()
            msgs.append(dict(name=name, version=int(version), xid=int(xid), type=int(mtype), length=int(length),
                             hex=hexbytes))
        names = {m["name"] for m in msgs}
        for table in (OVS, TSHARK):
            for name in table:
                if name not in names:
                    failures.append(f"{name}: expected by check_ofp.py but not emitted")

        # 1. ovs-ofctl
        for m in msgs:
            out = subprocess.run(["ovs-ofctl", "ofp-print", m["hex"]], capture_output=True, text=True)
            text = out.stdout + out.stderr
            if out.returncode != 0 or re.search(r"decode error|\*\*\*|bad|invalid", text, re.I):
                failures.append(f"{m['name']}: ovs-ofctl could not parse it:\n{text}")
                continue
            for pattern in OVS.get(m["name"], []):
                if not re.search(pattern, text, re.M):
                    failures.append(f"{m['name']}: ovs-ofctl output lacks /{pattern}/:\n{text}")

        # 2. tshark
        fields = sorted({f for exp in TSHARK.values() for f in exp} |
                        {V4 + "type", V4 + "xid", V4 + "length", V4 + "version",
                         "openflow_1_0.type", "openflow.xid", "openflow.length"})
        cmd = ["tshark", "-r", pcap, "-d", "tcp.port==6653,openflow", "-T", "json"]
        for f in fields:
            cmd += ["-e", f]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            failures.append(f"tshark failed: {out.stderr}")
            frames = []
        else:
            frames = json.loads(out.stdout)
        if len(frames) != len(msgs):
            failures.append(f"tshark saw {len(frames)} frames, emitted {len(msgs)}")
        for m, frame in zip(msgs, frames):
            layers = frame["_source"]["layers"]
            def get(field):
                return layers.get(field, [])
            if m["version"] == 4:
                header = {V4 + "type": m["type"], V4 + "xid": m["xid"], V4 + "length": m["length"]}
            else:
                header = {"openflow_1_0.type": m["type"], "openflow.xid": m["xid"], "openflow.length": m["length"]}
            for field, want in header.items():
                got = get(field)
                if len(got) != 1 or not same(str(want), got[0]):
                    failures.append(f"{m['name']}: tshark {field}={got}, we encoded {want}")
            for field, want in TSHARK.get(m["name"], {}).items():
                got = get(field)
                want_list = want if isinstance(want, list) else [want]
                if len(got) != len(want_list) or not all(same(w, g) for w, g in zip(want_list, got)):
                    failures.append(f"{m['name']}: tshark {field}={got}, expected {want_list}")

    for f in failures:
        print("FAIL", f)
    print(f"{len(msgs)} messages checked against ovs-ofctl and tshark: "
          f"{'ok' if not failures else str(len(failures)) + ' failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
