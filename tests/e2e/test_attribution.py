"""Process attribution (issue 6): each connection of a cell is attributed to the process that
owns it, from kernel state (sock_diag in the cell, cellwall's BPF owner programs, /proc); rules
by executable and by user decide as written. Real cells, real processes, a real test host."""
import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CELLWALL, GATEWAY_UPLINK_IP, TESTHOST_IP, _daemon

ALLOW_ALL = 'default = "allow"\n'


@pytest.fixture(scope="module")
def adaemon(module_testhost):
    """A daemon that attributes every connection (the log shows who), not only those of apps
    whose rules name a process."""
    yield from _daemon(module_testhost, ["--attribution", "always"])


def log_entries(d, app, want, timeout=10):
    """The app's log entries, polled until one satisfies `want` (the log is written every
    250 ms); returns (match or None, all entries)."""
    deadline = time.time() + timeout
    entries = []
    while time.time() < deadline:
        out = d.cli("log", "--app", app, "--json", check=False).stdout
        entries = [json.loads(l) for l in out.splitlines() if l.strip()]
        for e in entries:
            if want(e):
                return e, entries
        time.sleep(0.25)
    return None, entries


def test_a_forked_child_is_attributed_to_itself_not_its_parent(adaemon):
    r = adaemon.run_cell(ALLOW_ALL, ["sh", "-c", f"curl -s -o /dev/null http://{TESTHOST_IP}:8080/ & "
                                                 "echo $!; wait"], app="fork")
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[0])
    e, entries = log_entries(adaemon, "fork", lambda e: e["remote_port"] == 8080)
    assert e is not None, entries
    p = e["process"]
    assert p["pid"] == pid, (pid, e)
    assert p["exe"] == "/usr/bin/curl", e
    assert p["user"] == "nobody" and p["uid"] == 65534, e
    assert p["cmdline"].startswith(f"curl -s -o /dev/null http://{TESTHOST_IP}:8080/"), e


# The process connects (without waiting for the handshake) and exits at once; a child it forked
# before keeps the socket, so the connection lives on. The connection is the exited process's.
EXITS_AT_ONCE = f"""
import os, socket, time
s = socket.socket(); s.setblocking(False)
if os.fork() == 0:
    time.sleep(2); os._exit(0)
print(os.getpid(), flush=True)
s.connect_ex(("{TESTHOST_IP}", 7777))
os._exit(0)
"""


def test_a_process_that_exits_right_after_connect_is_still_attributed(adaemon):
    r = adaemon.run_cell(ALLOW_ALL, ["sh", "-c", f"python3 -c '{EXITS_AT_ONCE}'; sleep 1"], app="quick")
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[0])
    e, entries = log_entries(adaemon, "quick", lambda e: e["remote_port"] == 7777)
    assert e is not None, entries
    p = e["process"]
    assert p["pid"] == pid, (pid, e)
    assert p["uid"] == 65534, e
    # Read from /proc if it was still there, else what the kernel recorded at connect().
    assert p["exe"].startswith("/usr/bin/python3") or p["exe"] == "[python3]", e


def test_an_inbound_connection_is_attributed_to_the_listening_process(adaemon, module_testhost):
    policy = (f'default = "deny"\n[[allow]]\ndirection = "inbound"\nproto = "tcp"\n'
              f'from = "{TESTHOST_IP}"\nports = 8001\n')
    p, cell = adaemon.start_cell(policy, ["sh", "-c", "echo $$; exec python3 -m http.server 8001 --bind 0.0.0.0"],
                                 app="inbound", run_args=["--publish", "18001:8001"])
    try:
        server_pid = int(p.stdout.readline())
        code = "000"
        for _ in range(30):
            code = module_testhost.exec(["curl", "-s", "-o", "/dev/null", "--max-time", "3", "-w", "%{http_code}",
                                         f"http://{GATEWAY_UPLINK_IP}:18001/"], check=False).stdout
            if code == "200":
                break
            time.sleep(0.3)
        assert code == "200", adaemon.new_log()[-2000:]
        # The connection that got through (tries before the server listened found no listener).
        e, entries = log_entries(adaemon, "inbound", lambda e: e["reason"] == "inbound_rule" and e["process"]["pid"])
        assert e is not None, entries
        newest = max((x for x in entries if x["reason"] == "inbound_rule"), key=lambda x: x["id"])
        assert newest["process"]["pid"] == server_pid, (server_pid, newest)
        assert e["process"]["exe"].startswith("/usr/bin/python3"), e
    finally:
        p.terminate()
        p.wait(timeout=30)


UDP_ONE_SHOT = f"""
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print(os.getpid(), flush=True)
s.sendto(b"once", ("{TESTHOST_IP}", 5353))
{{wait}}
"""


@pytest.mark.parametrize("wait", ["s.settimeout(3); print(s.recv(64), flush=True)", "os._exit(0)"],
                         ids=["waits-for-the-answer", "closes-at-once"])
def test_udp_is_attributed_even_when_the_socket_is_closed_at_once(adaemon, wait):
    app = "udp" + str(len(wait))
    code = UDP_ONE_SHOT.replace("{wait}", wait)
    r = adaemon.run_cell(ALLOW_ALL, ["sh", "-c", f"python3 -c '{code}'; sleep 0.5"], app=app)
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[0])
    e, entries = log_entries(adaemon, app, lambda e: e["remote_port"] == 5353 and e["proto"] == "udp")
    assert e is not None, entries
    assert e["process"]["pid"] == pid, (pid, e)
    assert e["process"]["uid"] == 65534, e


def test_rules_by_executable_allow_and_deny_as_written(adaemon):
    policy = 'default = "deny"\n[[allow]]\nexe = "/usr/bin/curl"\nports = 8080\n'
    r = adaemon.run_cell(policy, ["sh", "-c",
                                  f"curl -s -o /dev/null --max-time 3 -w '%{{http_code}}\\n' http://{TESTHOST_IP}:8080/; "
                                  f"python3 -c 'import urllib.request as u; print(u.urlopen(\"http://{TESTHOST_IP}:8080/\", timeout=3).status)' "
                                  "2>/dev/null || echo refused"], app="byexe")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["200", "refused"], r.stdout
    e, entries = log_entries(adaemon, "byexe", lambda e: e["verdict"] == "deny" and e["process"]["pid"] != 0)
    assert e is not None and e["process"]["exe"].startswith("/usr/bin/python3"), entries


def test_rules_by_user_allow_and_deny_as_written(adaemon):
    policy = 'default = "allow"\n[[deny]]\nuser = "nobody"\n'
    fetch = ["curl", "-s", "-o", "/dev/null", "--max-time", "3", "-w", "%{http_code}", f"http://{TESTHOST_IP}:8080/"]
    denied = adaemon.run_cell(policy, fetch, app="byuser", user="nobody")
    allowed = adaemon.run_cell(policy, fetch, app="byuser", user="daemon")
    assert (denied.stdout, allowed.stdout) == ("000", "200"), (denied, allowed)
