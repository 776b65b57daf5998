"""Rules that change while cells run: lifetimes, removal, persistence. Real OVS, real cells,
a real TCP echo server on the test host."""
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from conftest import CELLWALL, GATEWAY_UPLINK_IP, TESTHOST_IP, curl_in_cell, finish, sh

# Connects to the test host's TCP echo server (retrying until a rule lets it), then echoes one
# byte every 100 ms; prints "connected", then "cut N" when an echo does not come back within
# 1.5 s (N echoes made it), or "closed N".
ECHO_CLIENT = f"""
import socket, sys, time
t0 = time.time(); s = None
while time.time() - t0 < 15:
    try:
        s = socket.create_connection(("{TESTHOST_IP}", 7777), timeout=0.5); break
    except OSError:
        time.sleep(0.2)
if s is None:
    print("never", flush=True); sys.exit(1)
print("connected", flush=True)
s.settimeout(1.5); n = 0
while time.time() - t0 < 40:
    try:
        s.sendall(b"x"); d = s.recv(16)
        if not d:
            print("closed", n, flush=True); break
        n += 1; time.sleep(0.1)
    except OSError:
        print("cut", n, flush=True); break
"""


def curl_code(host, port=8080):
    return f"curl -s -o /dev/null --max-time 3 -w '%{{http_code}}\\n' http://{host}:{port}/ || true"


def rules_of(d, app):
    out = d.cli("rules", "list", "--app", app, "--json").stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def test_a_rule_for_three_connections_admits_exactly_three(mdaemon):
    policy = f"""default = "deny"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 8080
connections = 3
"""
    r = mdaemon.run_cell(policy, ["sh", "-c", "; ".join([curl_code(TESTHOST_IP)] * 5)], app="count3")
    assert r.stdout.split() == ["200", "200", "200", "000", "000"], r.stdout + r.stderr
    time.sleep(0.6)  # the daemon retires the used-up rule on its next tick
    assert rules_of(mdaemon, "count3") == []


def test_a_two_second_rule_expires_and_cuts_the_open_connection(mdaemon):
    policy = f"""default = "deny"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 7777
for = "2s"
"""
    t0 = time.time()
    r = mdaemon.run_cell(policy, ["python3", "-c", ECHO_CLIENT], app="expire2s")
    elapsed = time.time() - t0
    lines = r.stdout.splitlines()
    assert lines[0] == "connected", r.stdout + r.stderr
    verdict, n = lines[1].split()
    assert verdict == "cut", lines
    assert int(n) > 0  # the connection worked before the rule ran out
    assert elapsed < 15, elapsed  # ... and was cut, not left to the client's 40 s
    assert rules_of(mdaemon, "expire2s") == []


def removing_the_rule_cuts(d, app, *rule_args):
    """An echo connection through a rule added with `rule_args`, then the rule removed: cut."""
    p, cell = d.start_cell('default = "deny"\n', ["python3", "-c", ECHO_CLIENT], app=app)
    try:
        added = json.loads(d.cli("rules", "add", "--app", app, "--allow", "--proto", "tcp", "--to", TESTHOST_IP,
                                 "--port", "7777", *rule_args, "--json").stdout)
        assert p.stdout.readline().strip() == "connected"
        time.sleep(1.0)
        assert p.poll() is None  # echoing happily
        d.cli("rules", "rm", str(added["id"]))
        t_rm = time.time()
        line = p.stdout.readline().split()
        assert line[0] == "cut" and int(line[1]) > 3, line
        assert time.time() - t_rm < 5
    finally:
        p.kill()
        p.wait(timeout=30)


def test_removing_a_rule_cuts_its_connections(mdaemon):
    removing_the_rule_cuts(mdaemon, "rmcut")


def test_a_counted_rules_connection_outlives_its_count_but_not_its_removal(mdaemon):
    # connections = 1: the echo connection uses the count up; the rule retires, the connection
    # stays (it was admitted). Then the same with connections = 5, removed by hand: cut.
    p, cell = mdaemon.start_cell('default = "deny"\n', ["python3", "-c", ECHO_CLIENT], app="cntcut")
    try:
        mdaemon.cli("rules", "add", "--app", "cntcut", "--allow", "--proto", "tcp", "--to", TESTHOST_IP,
                    "--port", "7777", "--connections", "1")
        assert p.stdout.readline().strip() == "connected"
        deadline = time.time() + 5
        while rules_of(mdaemon, "cntcut") and time.time() < deadline:
            time.sleep(0.2)
        assert rules_of(mdaemon, "cntcut") == []  # used up, retired: the app's epoch moved
        time.sleep(2.0)
        assert p.poll() is None  # still echoing: what the rule admitted stays
    finally:
        p.kill()
        p.wait(timeout=30)
    removing_the_rule_cuts(mdaemon, "cntrm", "--connections", "5")


def test_adding_a_rule_redecides_open_connections_it_changes(mdaemon):
    # The app's default allows; an HTTP connection to another port must survive the new rule.
    p, cell = mdaemon.start_cell('default = "allow"\n', ["python3", "-c", ECHO_CLIENT], app="addcut")
    try:
        assert p.stdout.readline().strip() == "connected"
        time.sleep(1.0)
        mdaemon.cli("rules", "add", "--app", "addcut", "--deny", "--proto", "tcp",
                    "--to", TESTHOST_IP, "--port", "8080")
        time.sleep(1.0)
        assert p.poll() is None  # a rule about port 8080 leaves the echo connection alone
        mdaemon.cli("rules", "add", "--app", "addcut", "--deny", "--proto", "tcp",
                    "--to", TESTHOST_IP, "--port", "7777")
        t_add = time.time()
        line = p.stdout.readline().split()
        assert line[0] == "cut" and int(line[1]) > 10, line
        assert time.time() - t_add < 5
    finally:
        p.kill()
        p.wait(timeout=30)


def test_a_rule_until_exit_ends_with_the_apps_last_cell(mdaemon):
    policy = f"""default = "deny"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 8080
until = "exit"

[[deny]]
to = "192.0.2.1"
"""
    r = mdaemon.run_cell(policy, ["sh", "-c", curl_code(TESTHOST_IP)], app="untilexit")
    assert r.stdout.split() == ["200"], r.stdout + r.stderr
    left = rules_of(mdaemon, "untilexit")
    assert [x["action"] for x in left] == ["deny"], left  # the forever rule stays


def test_export_import_export_is_identical(mdaemon, tmp_path):
    src = tmp_path / "rt.toml"
    src.write_text("""default = "reject"
env = "default"

[[allow]]
proto = "tcp"
hosts = ["*.example.test", "api.example.org"]
ports = [443, "8000-8100"]
for = "1h"
connections = 50
comment = "web \\"apis\\""

[[deny]]
to = ["10.0.0.0/8", "2001:db8::/32"]

[[rule]]
action = "reject"
proto = "udp"
ports = 53

[[allow]]
proto = "icmp"
until = "exit"
""")
    mdaemon.cli("rules", "import", "--app", "roundtrip", str(src))
    first = mdaemon.cli("rules", "export", "--app", "roundtrip").stdout
    again = tmp_path / "again.toml"
    again.write_text(first)
    mdaemon.cli("rules", "import", "--app", "roundtrip", str(again))
    second = mdaemon.cli("rules", "export", "--app", "roundtrip").stdout
    assert first == second
    assert "*.example.test" in first and "connections = 50" in first


def test_a_bad_rule_is_refused_with_its_reason(mdaemon, tmp_path):
    r = mdaemon.cli("rules", "add", "--app", "bad", "--allow", "--host", "*", check=False)
    assert r.returncode != 0 and "hosts" in r.stderr, r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('default = "deny"\n\n[[allow]]\nproto = "tcp"\nfor = "soon"\n')
    r = mdaemon.cli("rules", "import", "--app", "bad", str(bad), check=False)
    assert r.returncode != 0 and "bad.toml:5" in r.stderr, r.stderr


def test_the_log_records_decisions_with_names_and_rules(mdaemon):
    policy = """default = "deny"
[[allow]]
proto = "tcp"
hosts = ["api.example.test"]
ports = 8080
"""
    mdaemon.run_cell(policy, ["sh", "-c", curl_code("api.example.test") + "; " + curl_code(TESTHOST_IP)],
                     app="logged")
    time.sleep(0.6)
    entries = [json.loads(l) for l in
               mdaemon.cli("log", "--app", "logged", "--json").stdout.splitlines() if l.strip()]
    allowed = [e for e in entries if e["remote_port"] == 8080 and e["verdict"] == "allow"]
    denied = [e for e in entries if e["remote_port"] == 8080 and e["verdict"] == "deny"]
    assert allowed and "api.example.test" in allowed[0]["names"] and allowed[0]["rule_id"] > 0, entries
    assert denied and denied[0]["remote_ip"] == TESTHOST_IP and denied[0]["rule_id"] == 0, entries
    # (Packets and bytes per connection came from per-connection flows, which are gone:
    # Open vSwitch's userspace conntrack counts nothing per connection. docs/pipeline.md.)


def test_a_published_port_is_reachable_only_through_an_inbound_rule(mdaemon, module_testhost):
    serve = ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0"]
    url = f"http://{GATEWAY_UPLINK_IP}:18000/"

    def fetch():
        r = module_testhost.exec(["curl", "-s", "-o", "/dev/null", "--max-time", "3", "-w", "%{http_code}", url],
                                 check=False)
        return r.stdout

    for policy, want in (('default = "allow"\n', "000"),  # no inbound rule: refused, even so
                         (f'default = "deny"\n[[allow]]\ndirection = "inbound"\nproto = "tcp"\n'
                          f'from = "{TESTHOST_IP}"\nports = 8000\n', "200"),
                         (f'default = "deny"\n[[allow]]\ndirection = "inbound"\nproto = "tcp"\n'
                          f'from = "192.0.2.0/24"\nports = 8000\n', "000")):  # not from there
        pf = Path(mdaemon.state, "pub.toml")
        pf.write_text(policy)
        p = subprocess.Popen([str(CELLWALL), "--state-dir", mdaemon.state, "run", "--app", "pub",
                              "--policy", str(pf), "--publish", "18000:8000", "--"] + serve,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            code = "000"
            for _ in range(30):  # until the server listens (or, when refused, ~3 s of tries)
                code = fetch()
                if code == "200" or (want == "000" and _ >= 1):
                    break
                time.sleep(0.3)
            assert code == want, (policy, code, mdaemon.new_log()[-2000:])
        finally:
            p.terminate()
            p.wait(timeout=30)
    # Published ports end with their cell.
    assert fetch() == "000"


def ui_api(d, body):
    """POST /api of the web UI with its token: (status, reply object)."""
    url = urlsplit(d.ui_url())
    token = url.query.split("token=", 1)[1]
    req = urllib.request.Request(f"{url.scheme}://{url.netloc}/api", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + token},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def open_questions(d):
    return [json.loads(l) for l in d.cli("prompt", "--json").stdout.splitlines() if l.strip()]


def test_a_count_of_zero_is_refused_wherever_a_rule_is_made(mdaemon, tmp_path):
    d = mdaemon
    # The command line: refused before anything is sent, and no unlimited rule appears.
    r = d.cli("rules", "add", "--app", "zero", "--allow", "--to", TESTHOST_IP, "--connections", "0", check=False)
    assert r.returncode != 0 and "connections = 0 is out of range" in r.stderr, r.stderr
    assert "leave the count out for no limit" in r.stderr, r.stderr
    # The typed command set, as the web UI and REST clients send it.
    status, reply = ui_api(d, {"cmd": "rules.add", "app": "zero", "rule_text": "action = \"allow\"\nconnections = 0\n"})
    assert status == 400 and not reply["ok"] and "connections = 0 is out of range" in reply["error"], reply
    # A policy file, as before.
    f = tmp_path / "zero.toml"
    f.write_text('default = "deny"\n[[allow]]\nto = "192.0.2.1"\nconnections = 0\n')
    r = d.cli("rules", "import", "--app", "zero", str(f), check=False)
    assert r.returncode != 0 and "zero.toml:4:15: connections = 0 is out of range" in r.stderr, r.stderr
    assert rules_of(d, "zero") == []
    # An answer to a prompt that asks for 0 connections, through the web UI's API and the
    # command line: refused, and the question stays open.
    p = curl_in_cell(d, 'default = "prompt"\n', "zero-ask", max_time=20)
    try:
        deadline = time.time() + 15
        while not open_questions(d) and time.time() < deadline:
            time.sleep(0.1)
        q = open_questions(d)
        assert len(q) == 1, q
        status, reply = ui_api(d, {"cmd": "prompt.answer", "id": q[0]["id"], "action": "allow", "scope": "ip",
                                   "lifetime": "forever", "connections": 0})
        assert status == 400 and not reply["ok"] and "connections = 0 is out of range" in reply["error"], reply
        r = d.cli("answer", str(q[0]["id"]), "--allow", "--forever", "--connections", "0", check=False)
        assert r.returncode != 0 and "connections = 0 is out of range" in r.stderr, r.stderr
        assert [x["id"] for x in open_questions(d)] == [q[0]["id"]]
        # A count that is given answers it.
        d.cli("answer", str(q[0]["id"]), "--allow", "--forever", "--connections", "2")
        assert finish(p)[0] == "200"
    finally:
        if p.poll() is None:
            p.kill()
    made = rules_of(d, "zero-ask")
    assert [x["connections_max"] for x in made] == [2], made


# Bytes that are not UTF-8 (here a Latin-1 "é" in a comment, which `cellwall` used to send to
# cellwalld as U+FFFD, and the file was accepted) make the whole file refused, with its line,
# wherever a policy file is read.
NOT_UTF8 = b'default = "deny"\n# caf\xe9\n[[allow]]\nto = "192.0.2.1"\n'


def test_a_policy_file_that_is_not_utf8_is_refused_with_its_line(mdaemon, tmp_path):
    d = mdaemon
    f = tmp_path / "latin1.toml"
    f.write_bytes(NOT_UTF8)
    r = d.cli("rules", "import", "--app", "latin", str(f), check=False)
    assert r.returncode != 0, r.stdout
    assert "latin1.toml:2:6: the file is not valid UTF-8 here (byte 0xE9)" in r.stderr, r.stderr
    assert "save it as UTF-8" in r.stderr, r.stderr
    r = sh([str(CELLWALL), "--state-dir", d.state, "run", "--app", "latin", "--policy", str(f), "--user", "nobody",
            "--", "true"], check=False)
    assert r.returncode != 0 and "latin1.toml:2:6: the file is not valid UTF-8" in r.stderr, r.stderr
    assert rules_of(d, "latin") == [] and d.cells() == []


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_goes_back_after_a_big_policy_is_replaced(mdaemon, tmp_path):
    """100,000 rules imported, the app busy (a cell's packet decided under them), then the
    policy replaced by 2 rules: cellwalld's resident memory must come back near where it was.
    Before, it stayed near the peak (a switch thread kept the replaced view until its next
    Packet-In, and glibc kept what was freed: bench/RESULTS.md, section 13)."""
    d = mdaemon
    n = 100000
    big = tmp_path / "big.toml"
    big.write_text('default = "deny"\n' + "".join(
        f'\n[[allow]]\nproto = "tcp"\nhosts = "h{i}.s{i % 97}.example.com"\nports = {1 + i % 60000}\n' if i % 2 == 0 else
        f'\n[[deny]]\nto = "10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"\nports = "{1000 + i % 5000}-{2000 + i % 5000}"\n'
        for i in range(n)))
    small = tmp_path / "small.toml"
    small.write_text('default = "deny"\n\n[[allow]]\nproto = "tcp"\nports = 443\n\n[[deny]]\nto = "192.0.2.1"\n')
    p, cell = d.start_cell(small.read_text(), ["sleep", "120"], app="bigpol")
    try:
        pid = d.proc.pid
        before = rss_mib(pid)
        d.cli("rules", "import", "--app", "bigpol", str(big), timeout=120)
        peak = rss_mib(pid)
        d.sh_in_cell(cell, ["ping", "-c", "1", "-W", "1", "192.0.2.9"])  # decided under the big policy
        d.cli("rules", "import", "--app", "bigpol", str(small))
        # The memory is given back off the packet path, a moment after the reply: the lowest
        # reading within 5 s counts.
        after = rss_mib(pid)
        deadline = time.time() + 5
        while time.time() < deadline and after > before + 32:
            time.sleep(0.1)
            after = min(after, rss_mib(pid))
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert peak > before + 100, (before, peak)  # the import itself took what it takes
    # The margin: measured here, the replaced policy leaves cellwalld 2-3 MiB above where it was
    # (SQLite's page cache, allocator bookkeeping); 32 MiB leaves room for another machine's
    # allocator and is a seventh of what was kept before (224 MiB above the start, this test on
    # the code before the fix: 15 MiB, 273 MiB with the rules, 239 MiB after).
    print(f"rss: {before:.1f} MiB before, {peak:.1f} MiB with {n} rules, {after:.1f} MiB after; "
          + " | ".join(l for l in d.new_log().splitlines() if "back to the system" in l))
    assert after <= before + 32, f"{before:.0f} MiB before, {peak:.0f} MiB with {n} rules, {after:.0f} MiB after " \
                                 f"they were replaced\n" + d.new_log()[-1500:]
    assert "gave " in d.new_log() and "back to the system" in d.new_log()


# Last in this module: it kills and restarts the module's daemon.
def test_kill9_during_rule_writes_loses_no_acknowledged_rule(mdaemon):
    daemon = mdaemon
    acked = []
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set() and i < 2000:
            r = daemon.cli("rules", "add", "--app", "k9", "--deny", "--to",
                           f"10.9.{i // 250}.{i % 250 + 1}", "--json", check=False, timeout=30)
            if r.returncode == 0:
                acked.append(json.loads(r.stdout)["id"])
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(2.0)
    daemon.kill9()
    stop.set()
    t.join(timeout=60)
    assert len(acked) > 10, len(acked)  # the kill landed in the middle of the writes
    daemon.start()
    kept = {r["id"] for r in rules_of(daemon, "k9")}
    missing = [i for i in acked if i not in kept]
    assert not missing, f"{len(missing)} acknowledged rules lost: {missing[:10]}"
