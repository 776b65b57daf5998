"""Rules the switch can decide, it decides (docs/pipeline.md, table 6): an address rule, a host rule
(through the name the cell resolved: the resolver's answer waits at the controller until the
name's flows are in), the default. The controller still logs every connection, from a copy of its
first packet, with the rule it would have chosen; `disagreed` counts copies whose flow named
another rule. With `--decide controller` the controller decides them all, the same way."""
import json
import re
import time

import pytest

from conftest import TESTHOST_IP, _daemon
from test_conntrack import bridge_flows

NAMED = f"""
default = "deny"
resolve = "any"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 8080
[[allow]]
proto = "tcp"
hosts = "api.example.test"
ports = 8080
"""

THREE = ("curl -s -o /dev/null --max-time 5 -w '%{http_code} ' http://" + TESTHOST_IP + ":8080/; "
         "curl -s -o /dev/null --max-time 5 -w '%{http_code} ' http://api.example.test:8080/; "
         "curl -s -o /dev/null --max-time 3 -w '%{http_code}' http://" + TESTHOST_IP + ":7777/")


def switch_counts(d):
    m = re.search(r"^switch_decided (\d+) disagreed (\d+)$", d.cli("status").stdout, re.M)
    assert m, d.cli("status").stdout
    return int(m.group(1)), int(m.group(2))


def three_connections(d):
    r = d.run_cell(NAMED, ["sh", "-c", THREE], app="decided")
    assert r.stdout.split() == ["200", "200", "000"], (r.stdout, r.stderr)
    time.sleep(0.6)  # the log is written every 250 ms
    log = [json.loads(l) for l in d.cli("log", "--app", "decided", "--json").stdout.splitlines() if l.strip()]
    by_port = {}
    for e in log:
        by_port.setdefault((e["remote_ip"], e["remote_port"]), e)
    address, name, denied = (by_port.get((TESTHOST_IP, 8080)), by_port.get(("10.250.1.10", 8080)),
                             by_port.get((TESTHOST_IP, 7777)))
    assert address and address["verdict"] == "allow" and address["rule_id"] > 0, log
    assert name and name["verdict"] == "allow" and "api.example.test" in name["names"], log
    assert name["rule_id"] == address["rule_id"] + 1, log
    assert denied and denied["verdict"] == "deny" and denied["rule_id"] == 0, log


def test_the_switch_decides_what_the_rules_alone_can(daemon):
    three_connections(daemon)
    decided, disagreed = switch_counts(daemon)
    assert decided >= 3 and disagreed == 0, (decided, disagreed)
    # The cell has exited: its rules' flows went with it.
    assert not [l for l in bridge_flows(daemon) if "table=6" in l and "priority=0" not in l]


@pytest.fixture
def controller_daemon(testhost):
    yield from _daemon(testhost, ["--decide", "controller"])


def test_with_decide_controller_every_connection_is_the_controllers(controller_daemon):
    three_connections(controller_daemon)
    assert switch_counts(controller_daemon) == (0, 0)
    assert not [l for l in bridge_flows(controller_daemon) if "table=6" in l and "priority=0" not in l]
