"""Per-rule packet and byte counters (docs/pipeline.md, table 7; `cellwall rules list --counters`).

Open vSwitch's userspace conntrack keeps no per-connection counters, so each allowed packet is
counted by a flow of (cell, rule, direction) that the connection's ct_label selects. Two rules
allow two test-host ports; a known amount goes through each, and each rule's counters grow by at
least that much while the other rule's do not. Once with rules the switch decides (table 6), once
with `--decide controller` (the controller's PACKET_OUT commits): both label the connection.
"""
import json
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import TESTHOST_IP, _daemon, sh
from test_conntrack import bridge_flows

POLICY = f"""
default = "deny"
resolve = "any"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 8080
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 7777
"""

DOWNLOAD = 200_000  # bytes the cell receives by the HTTP rule
ECHOED = 50_000     # bytes the cell sends to the echo rule, and gets back

ECHO = ("import socket,sys\n"
        "n=int(sys.argv[1]); s=socket.create_connection((sys.argv[2],7777),timeout=10)\n"
        "s.sendall(b'x'*n); got=0\n"
        "while got<n:\n"
        "  d=s.recv(65536)\n"
        "  if not d: break\n"
        "  got+=len(d)\n"
        "print(got)\n")


@pytest.fixture(params=["switch", "controller"])
def counting_daemon(request, testhost):
    Path(testhost.www, "big.bin").write_bytes(b"y" * DOWNLOAD)
    yield from _daemon(testhost, ["--decide", request.param])


def counters(d, app):
    out = d.cli("rules", "list", "--app", app, "--counters", "--json").stdout
    rows = [json.loads(l) for l in out.splitlines() if l.strip()]
    rules = {r["id"]: r for r in rows if "text" in r}
    counts = {r["rule"]: r for r in rows if r.get("source") == "rule"}
    return rules, counts


def reached_controller(d):
    """Packets of cells' connections the controller handled: decisions (a copy of a connection
    the switch decided counts as one) and repeats (a packet that came before its commit)."""
    st = d.cli("status").stdout
    return (int(re.search(r"^decisions allowed=(\d+)", st, re.M).group(1)) +
            int(re.search(r"^repeats (\d+)$", st, re.M).group(1)))


def transfer(d, cell, what):
    if what == "http":
        r = d.sh_in_cell(cell, ["curl", "-s", "-o", "/dev/null", "--max-time", "10", "-w", "%{size_download}",
                                f"http://{TESTHOST_IP}:8080/big.bin"])
        assert r.stdout.strip() == str(DOWNLOAD), (r.stdout, r.stderr)
    else:
        r = d.sh_in_cell(cell, ["python3", "-c", ECHO, str(ECHOED), TESTHOST_IP])
        assert r.stdout.strip() == str(ECHOED), (r.stdout, r.stderr)


def test_each_rule_counts_what_it_let_through(counting_daemon):
    d = counting_daemon
    proc, cell = d.start_cell(POLICY, ["sleep", "60"], app="counted")
    try:
        rules, _ = counters(d, "counted")
        http_rule = next(i for i, r in rules.items() if "8080" in r["text"])
        echo_rule = next(i for i, r in rules.items() if "7777" in r["text"])
        # A first connection by each rule: the controller hears of it (its decision, or the
        # switch's copy) and installs the rule's count flows. What passed before they were in is
        # counted as "other", so the measured transfers come after.
        transfer(d, cell, "http")
        transfer(d, cell, "echo")
        deadline = time.time() + 5
        while time.time() < deadline:
            _, before = counters(d, "counted")
            if http_rule in before and echo_rule in before:
                break
            time.sleep(0.1)
        assert http_rule in before and echo_rule in before, before
        label_flows = [l for l in bridge_flows(d) if "table=7" in l and "ct_label=" in l]
        assert len(label_flows) == 4, label_flows  # two rules x (sent, received); nothing per connection

        seen = reached_controller(d)
        transfer(d, cell, "http")
        transfer(d, cell, "echo")
        seen = reached_controller(d) - seen
        # Open vSwitch moves a datapath flow's counts to its OpenFlow flows about twice a second.
        def grown():
            _, after = counters(d, "counted")
            delta = {rule: {k: after[rule][k] - before[rule][k] for k in
                            ("sent_packets", "sent_bytes", "received_packets", "received_bytes")}
                     for rule in (http_rule, echo_rule)}
            return delta
        deadline = time.time() + 5
        while True:
            delta = grown()
            ok = (delta[http_rule]["received_bytes"] >= DOWNLOAD and delta[echo_rule]["sent_bytes"] >= ECHOED and
                  delta[echo_rule]["received_bytes"] >= ECHOED)
            if ok or time.time() > deadline:
                break
            time.sleep(0.2)
        assert ok, delta
        # The other rule did not get them: the echo rule never saw the download, and what the
        # HTTP rule's cell sent (a request and ACKs) is far less than the echoed payload.
        assert delta[echo_rule]["received_bytes"] < DOWNLOAD, delta
        assert delta[http_rule]["sent_bytes"] < ECHOED, delta
        # Counted on the fast path: far more packets than the controller saw of these connections.
        counted = sum(v for rule in delta.values() for k, v in rule.items() if k.endswith("_packets"))
        assert 2 <= seen and counted > 5 * seen, (seen, delta)

        # The human table: aligned columns, sizes like "200.0 kB".
        table = d.cli("rules", "list", "--app", "counted", "--counters").stdout
        print(table, delta, f"reached the controller: {seen}", sep="\n")  # shown with -s
        assert table.splitlines()[0].split()[:4] == ["ID", "APP", "ACTION", "PACKETS"], table
        assert "kB" in table, table

        # Why the flows: the datapath's conntrack keeps no per-connection counters.
        ctl = next(Path(d.state).rglob("ovs-vswitchd.ctl"))
        ct = sh(["ovs-appctl", "-t", str(ctl), "dpctl/dump-conntrack", "-s", f"zone={cell['id']}"]).stdout
        assert f"dport={7777}" in ct or "dport=8080" in ct, ct
        assert "packets=" not in ct and "bytes=" not in ct, ct

        # A rule that goes takes its count flows (and counts) with it; the other rule's stay.
        d.cli("rules", "rm", str(echo_rule))
        deadline = time.time() + 5
        while time.time() < deadline:
            label_flows = [l for l in bridge_flows(d) if "table=7" in l and "ct_label=" in l]
            if len(label_flows) == 2:
                break
            time.sleep(0.1)
        assert len(label_flows) == 2 and all(f"ct_label={hex(http_rule)}" in l for l in label_flows), label_flows
        _, left = counters(d, "counted")
        assert echo_rule not in left and left[http_rule]["received_bytes"] >= DOWNLOAD, left
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    # The cell's count flows went with it.
    deadline = time.time() + 5
    while [l for l in bridge_flows(d) if "table=7" in l and "priority=0" not in l] and time.time() < deadline:
        time.sleep(0.1)
    assert not [l for l in bridge_flows(d) if "table=7" in l and "priority=0" not in l]
    # ... and its counts did not: the listing still has what the cell counted under the rule.
    _, after_exit = counters(d, "counted")
    assert after_exit.get(http_rule, {}).get("received_bytes", 0) >= left[http_rule]["received_bytes"], (left, after_exit)
