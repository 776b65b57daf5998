"""The IDS (issue 6): what cells send is copied to a monitor port and matched against
signatures; an alert denies just the process that raised it, at once, and K such processes of
one user become one rule for that user. Real cells, real processes, a real test host."""
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TESTHOST_IP, _daemon

POLICY = f'default = "deny"\n[[allow]]\nto = "{TESTHOST_IP}"\n'

# One TCP connection to the test host's echo server, echoing every 100 ms for `secs` seconds.
# With `bad` (or `badN`), after 1 s (or N s) it sends the shipped test signature's marker. Prints
# "<name> <pid> connected", then "<name> <pid> cut <seconds after the marker>" when an echo does
# not come back within 1 s, or "<name> <pid> ok <echoes after the marker>".
CLIENT = f"""
import os, socket, sys, time
name, bad, secs = sys.argv[1], sys.argv[2].startswith("bad"), float(sys.argv[3])
at = float(sys.argv[2][3:] or 1) if bad else 0  # "bad2.5": the marker 2.5 s in
pid = os.getpid()
def say(*words):  # one write: lines of the clients sharing the pipe never interleave
    os.write(1, (" ".join(str(w) for w in words) + "\\n").encode())
s = socket.create_connection(("{TESTHOST_IP}", 7777), timeout=3)
say(name, pid, "connected")
s.settimeout(1.0)
t0 = time.time(); marked = None; after = 0
while time.time() - t0 < secs:
    if bad and marked is None and time.time() - t0 > at:
        s.sendall(b"exfil: CW-EXFIL-TEST payload"); s.recv(64); marked = time.time()
    try:
        s.sendall(b"x")
        if not s.recv(16):
            break
    except OSError:
        say(name, pid, "cut", round(time.time() - (marked or t0), 2)); sys.exit(0)
    if marked is not None or not bad:
        after += 1
    time.sleep(0.1)
say(name, pid, "ok", after)
"""


@pytest.fixture(scope="module")
def idaemon(module_testhost):
    yield from _daemon(module_testhost, ["--ids", "--ids-fold", "2"])


@pytest.fixture(scope="module")
def client():
    """The client script, where the cell's user (nobody) can read it."""
    d = tempfile.mkdtemp(prefix="cw-ids-client-")
    os.chmod(d, 0o755)
    path = Path(d, "client.py")
    path.write_text(CLIENT)
    path.chmod(0o644)
    yield str(path)
    shutil.rmtree(d, ignore_errors=True)


def rules_of(d, app):
    out = d.cli("rules", "list", "--app", app, "--json").stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def run_clients(d, client, app, clients, secs=6):
    """Runs the clients side by side in one cell, which stays up after them (an IDS rule lasts
    until the app exits) while the app's IDS rules are read. Returns ({name: (pid, outcome,
    value)}, the IDS rules then, every line the cell printed)."""
    script = " ".join(f"python3 {client} {name} {kind} {secs} &" for name, kind in clients)
    p, cell = d.start_cell(POLICY, ["sh", "-c", f"{script} wait; echo done; sleep 60"], app=app)
    out, lines = {}, []
    try:
        deadline = time.time() + secs + 20
        while time.time() < deadline:
            line = p.stdout.readline()
            if not line or line.strip() == "done":
                break
            lines.append(line.strip())
            f = line.split()
            if len(f) >= 4 and f[2] != "connected":
                out[f[0]] = (int(f[1]), f[2], float(f[3]))
        rules = [x for x in rules_of(d, app) if x["origin"].startswith("ids")]
    finally:
        p.terminate()
        p.wait(timeout=30)
    return out, rules, lines


def test_an_alert_blocks_only_the_offending_process_at_once(idaemon, client):
    out, auto, lines = run_clients(idaemon, client, "idsone", [("good", "plain"), ("bad", "bad")])
    assert set(out) == {"good", "bad"}, (lines, idaemon.cli("status").stdout, idaemon.new_log()[-3000:])
    bad_pid, bad_what, bad_after = out["bad"]
    good_pid, good_what, good_echoes = out["good"]
    assert bad_what == "cut" and bad_after < 5, out  # blocked within a bounded time
    assert good_what == "ok" and good_echoes >= 40, out  # the other kept working throughout
    assert len(auto) == 1 and auto[0]["origin"] == "ids", auto
    assert f"pid = {bad_pid}" in auto[0]["text"] and 'exe = "/usr/bin/python3' in auto[0]["text"], auto
    log = [json.loads(l) for l in idaemon.cli("log", "--app", "idsone", "--json").stdout.splitlines() if l.strip()]
    alerts = [e for e in log if e["verdict"] == "alert"]
    assert alerts and alerts[0]["process"]["pid"] == bad_pid and "9000001" in alerts[0]["reason"], alerts
    # The rule lasted until the app's cell exited.
    assert not [x for x in rules_of(idaemon, "idsone") if x["origin"].startswith("ids")]


def test_an_ids_rule_is_explained_like_any_rule(idaemon, client):
    """While it lives, `rules explain` names it for that process and not for another."""
    script = f"python3 {client} bad bad 3; sleep 60"
    p, cell = idaemon.start_cell(POLICY, ["sh", "-c", script], app="idsexplain")
    try:
        bad_pid, what = 0, ""
        for _ in range(3):
            f = p.stdout.readline().split()
            if len(f) >= 3 and f[2] != "connected":
                bad_pid, what = int(f[1]), f[2]
                break
        auto = [x for x in rules_of(idaemon, "idsexplain") if x["origin"] == "ids"]
        assert what == "cut" and len(auto) == 1, (what, auto)
        exe = auto[0]["text"].split('exe = "')[1].split('"')[0]
        args = ["rules", "explain", "--app", "idsexplain", "--exe", exe, "--user", "65534", TESTHOST_IP, "7777"]
        why = idaemon.cli(*args[:4], "--pid", str(bad_pid), *args[4:]).stdout
        assert f"deny by rule {auto[0]['id']} (ids)" in why, why
        other = idaemon.cli(*args[:4], "--pid", str(bad_pid + 1), *args[4:]).stdout
        assert "allow by rule" in other, other
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_k_offending_processes_of_one_user_become_one_rule_for_the_user(idaemon, client):
    # Two offenders (K = 2) of one user, one second apart, while a third process of that user
    # runs.
    out, rules, lines = run_clients(idaemon, client, "idsfold", [("bad2", "bad1"), ("bad3", "bad2"), ("late", "plain")],
                                    secs=8)
    assert out.get("bad2", (0, ""))[1] == "cut" and out.get("bad3", (0, ""))[1] == "cut", (
        lines, rules, idaemon.cli("status").stdout, idaemon.new_log()[-4000:])
    # Folded: the user's rule replaced the two process rules, and it denies every process of
    # that user, so the plain client (same user, no alert of its own) is cut too.
    assert out.get("late", (0, ""))[1] == "cut", (out, rules)
    assert [x["origin"] for x in rules] == ["ids-fold"], rules
    assert "user = 65534" in rules[0]["text"], rules
