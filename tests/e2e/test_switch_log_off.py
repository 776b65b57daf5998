"""cellwalld --log-switch-decided off (docs/pipeline.md, table 6): the connections the switch
decides are not copied to the controller, so they cost no Packet-In and are not in the log; each
rule that allows them is counted from its first packet, its count flows installed with the rule
flows instead of when the controller first hears of a connection."""
import json
import signal
import time
from pathlib import Path

import pytest

from conftest import TESTHOST_IP, _daemon
from test_conntrack import bridge_flows
from test_rule_counters import DOWNLOAD, ECHOED, POLICY, counters, reached_controller, transfer


@pytest.fixture
def quiet_daemon(testhost):
    Path(testhost.www, "big.bin").write_bytes(b"y" * DOWNLOAD)
    yield from _daemon(testhost, ["--log-switch-decided", "off"])


def logged(d, app):
    out = d.cli("log", "--app", app, "--json", "-n", "100").stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def test_switch_decided_connections_are_counted_not_copied(quiet_daemon):
    d = quiet_daemon
    proc, cell = d.start_cell(POLICY, ["sleep", "60"], app="quiet")
    try:
        rules, _ = counters(d, "quiet")
        http_rule = next(i for i, r in rules.items() if "8080" in r["text"])
        echo_rule = next(i for i, r in rules.items() if "7777" in r["text"])
        # The count flows are there before any connection: two rules x (sent, received).
        deadline = time.time() + 5
        while time.time() < deadline:
            label_flows = [l for l in bridge_flows(d) if "table=7" in l and "ct_label=" in l]
            if len(label_flows) == 4:
                break
            time.sleep(0.1)
        assert len(label_flows) == 4, label_flows
        # No copy in the rule flows: nothing of them goes to the controller.
        table6 = [l for l in bridge_flows(d) if "table=6" in l and "ct(commit" in l]
        assert table6 and not [l for l in table6 if "controller" in l], table6

        seen = reached_controller(d)
        transfer(d, cell, "http")
        transfer(d, cell, "echo")
        assert reached_controller(d) == seen  # the controller heard of neither connection
        # Counted under their rules from the first packet (Open vSwitch moves counts to the
        # flows about twice a second).
        deadline = time.time() + 5
        while True:
            _, c = counters(d, "quiet")
            ok = (c.get(http_rule, {}).get("received_bytes", 0) >= DOWNLOAD and
                  c.get(echo_rule, {}).get("sent_bytes", 0) >= ECHOED)
            if ok or time.time() > deadline:
                break
            time.sleep(0.2)
        assert ok, c
        assert not [e for e in logged(d, "quiet") if e.get("remote_port") in (8080, 7777)], logged(d, "quiet")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
