"""Host-name rules from DNS snooping, with real dnsmasq (the environment's resolver and the
test host's), real OVS and real cells."""
import json
import time
from pathlib import Path

import pytest

from conftest import CNAMES, NAMES, TESTHOST_IP

DNSQ = str(Path(__file__).with_name("dnsq.py"))


def curl_code(host, port=8080, timeout=3):
    """Shell snippet printing the HTTP status of http://host:port/ (000 when it fails)."""
    return (f"curl -s -o /dev/null --max-time {timeout} -w '%{{http_code}}\\n' "
            f"http://{host}:{port}/ || true")


def script(d, policy, lines, app):
    r = d.run_cell(policy, ["sh", "-c", "; ".join(lines)], app=app)
    return r.stdout.split()


NAME_POLICY = """default = "deny"
[[allow]]
proto = "tcp"
hosts = ["*.example.test"]
ports = 8080
"""


def test_wildcard_admits_subdomains_and_nothing_else(mdaemon):
    out = script(mdaemon, NAME_POLICY,
                 [curl_code("api.example.test"), curl_code("evil.test"), curl_code("test.example")],
                 app="names-wild")
    assert out == ["200", "000", "000"], out


def test_name_rule_needs_the_cell_to_have_resolved_the_address(mdaemon):
    ip = NAMES["api.example.test"]
    out = script(mdaemon, NAME_POLICY,
                 [curl_code(ip),                          # never resolved: the name rule cannot apply
                  "getent hosts api.example.test >/dev/null",
                  curl_code(ip)],                         # now this cell resolved it to ip
                 app="names-bind")
    assert out == ["000", "200"], out


def test_names_are_per_cell(mdaemon):
    ip = NAMES["api.example.test"]
    # One cell resolves the name; another cell of the same app never did.
    first = script(mdaemon, NAME_POLICY, ["getent hosts api.example.test >/dev/null", curl_code(ip)],
                   app="names-percell")
    second = script(mdaemon, NAME_POLICY, [curl_code(ip)], app="names-percell")
    assert first == ["200"] and second == ["000"], (first, second)


def test_an_answer_from_another_server_creates_no_name(mdaemon):
    ip = NAMES["direct.example.test"]
    policy = NAME_POLICY + f"""
[[allow]]
proto = "udp"
to = "{TESTHOST_IP}"
ports = 53
"""
    # The cell asks the test host's DNS server directly (allowed as an ordinary connection):
    # it learns the address, but the switch never takes that answer as a name.
    out = script(mdaemon, policy,
                 [f"python3 {DNSQ} {TESTHOST_IP} direct.example.test A", curl_code(ip),
                  # The same answer through the environment's resolver does teach the name.
                  "getent hosts direct.example.test >/dev/null", curl_code(ip)],
                 app="names-forged")
    assert out == [ip, "000", "200"], out


def test_cname_chain_and_aaaa_are_learned(mdaemon):
    alias, target = next(iter(CNAMES.items()))
    policy = f"""default = "deny"
[[allow]]
proto = "tcp"
hosts = ["{alias}"]
ports = 8080
"""
    out = script(mdaemon, policy, [curl_code(alias)], app="names-cname")
    assert out == ["200"], out  # the address is the CNAME target's; the alias rule admits it

    # resolve = "any": these names are asked for without a rule naming them.
    p, cell = mdaemon.start_cell('default = "deny"\nresolve = "any"\n', ["sleep", "30"], app="names-aaaa")
    try:
        gw = cell["ip"].rsplit(".", 2)[0] + ".0.1"
        r = mdaemon.sh_in_cell(cell, ["python3", DNSQ, gw, "v6.example.test", "AAAA"])
        assert r.stdout.split() == [NAMES["v6.example.test"]], r.stdout + r.stderr
        r = mdaemon.sh_in_cell(cell, ["python3", DNSQ, gw, alias, "A"])
        assert r.stdout.split() == [NAMES[target]], r.stdout + r.stderr
        names = mdaemon.cli("names", cell["id"]).stdout
        assert f"{NAMES['v6.example.test']} v6.example.test" in names, names
        assert f"{NAMES[target]} {alias}" in names, names
        assert f"{NAMES[target]} {target}" in names, names
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_explain_names_the_deciding_rule(mdaemon):
    mdaemon.run_cell(NAME_POLICY + '\n[[deny]]\nto = "10.250.0.0/16"\n', ["true"], app="names-explain")
    by_name = mdaemon.cli("rules", "explain", "--app", "names-explain", "api.example.test", "8080").stdout
    assert "allow by rule" in by_name and "*.example.test" in by_name, by_name
    by_ip = mdaemon.cli("rules", "explain", "--app", "names-explain", "10.250.1.10", "8080").stdout
    assert "deny by rule" in by_ip and "10.250.0.0/16" in by_ip, by_ip
