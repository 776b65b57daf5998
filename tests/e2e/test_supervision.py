"""Supervision and adoption (issue 19, items 3 and 4).

- A dead embedded Open vSwitch daemon (kill -9 of ovs-vswitchd or ovsdb-server) is restarted
  from the same database: cells get their network back on the same OpenFlow ports, `cellwall
  status` says what happened, and nothing a policy denies leaks meanwhile.
- A killed and restarted cellwalld adopts the running gateway (same port, NAT and conntrack
  intact), so a transfer that outlived the daemon (fail-secure) keeps going after it is back.
"""
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import CELLWALL, TESTHOST_IP, sh
from test_core import ALLOW_WEB, CURL

# Tries, without end, what its policy denies: TCP to the test host's echo port and UDP to its
# echo. Neither port is used by anything else in these tests, so any such packet on the test
# host's uplink is a leak.
DENY_ALL = 'default = "deny"\n'
KNOCK = ["sh", "-c", f"while true; do curl -s --max-time 1 http://{TESTHOST_IP}:7777/ >/dev/null; "
         f"echo x | timeout 1 nc -u -w1 {TESTHOST_IP} 5353 >/dev/null 2>&1; sleep 0.1; done"]
LEAK_FILTER = "(tcp port 7777 or udp port 5353) or (vlan and (tcp port 7777 or udp port 5353))"


def ofport(d, ifname):
    out = sh(["ovs-vsctl", f"--db=unix:{d.state}/ovs/db.sock", "--no-wait", "get", "Interface", ifname,
              "ofport"]).stdout.strip()
    return int(out)


def daemon_pid(d, name):
    return int(Path(d.state, "ovs", name + ".pid").read_text().strip())


def running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def ui_switch_state(d):
    """The web UI's `switch` state, as a browser's event stream gets it in its first snapshot."""
    url = d.ui_url()  # http://127.0.0.1:PORT/?token=...
    base, token = url.split("?token=")
    with urllib.request.urlopen(f"{base}events?token={token}", timeout=10) as stream:
        event = None
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "switch":
                return json.loads(line[6:])
    return None


def status_line(d):
    lines = [l for l in d.cli("status").stdout.splitlines() if l.startswith("openvswitch ")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("victim", ["ovs-vswitchd", "ovsdb-server"])
def test_a_killed_open_vswitch_daemon_is_restarted_and_nothing_leaks(daemon, testhost, victim):
    d = daemon
    assert "state=up" in status_line(d) and "restarts=0" in status_line(d)
    ok_proc, ok_cell = d.start_cell(ALLOW_WEB, ["sleep", "300"], app="ok")
    bad_proc, bad_cell = d.start_cell(DENY_ALL, KNOCK, app="knock")
    in_cell = ["ip", "netns", "exec", ok_cell["netns"]]
    try:
        assert sh(in_cell + CURL, check=False).returncode == 0
        ports = {name: ofport(d, name) for name in (ok_cell["netns"], bad_cell["netns"], "cw-g-default")}
        cap = testhost.capture(LEAK_FILTER)
        old = daemon_pid(d, victim)
        os.kill(old, signal.SIGKILL)
        killed = time.time()

        # Traffic back within seconds.
        back = None
        while time.time() - killed < 15:
            if sh(in_cell + ["curl", "-sS", "--max-time", "1", f"http://{TESTHOST_IP}:8080/"],
                  check=False).returncode == 0:
                back = time.time() - killed
                break
            time.sleep(0.2)
        assert back is not None, d.new_log()[-3000:]
        print(f"{victim}: traffic back {back:.1f} s after kill -9")

        # Restarted (a new process), said so in status and in the log.
        new = daemon_pid(d, victim)
        assert new != old and running(new), (old, new)
        line = status_line(d)
        assert "state=up" in line and "restarts=1" in line and f"{victim} (pid {old}) died" in line, line
        log = d.new_log()
        assert f"Open vSwitch: {victim} (pid {old}) died; restarting it" in log, log[-3000:]
        assert "Open vSwitch: restarted after" in log and "3 of 3 ports back on their OpenFlow numbers" in log, \
            log[-3000:]
        ui = ui_switch_state(d)
        assert ui["state"] == "up" and "restarted 1×" in ui["text"] and victim in ui["text"], ui
        # Same OpenFlow ports, and the database answers: a new cell starts and is served.
        assert {name: ofport(d, name) for name in ports} == ports
        assert d.run_cell(ALLOW_WEB, CURL, app="fresh").returncode == 0

        # The denied cell kept knocking all along: not one packet of it got out.
        time.sleep(1)
        leaked = cap.lines()
        assert leaked == [], leaked[:10]
    finally:
        for p in (ok_proc, bad_proc):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)


IPERF_POLICY = f"""
default = "deny"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 5201
"""
# "[  5]   3.00-4.00   sec  1.19 MBytes  10.0 Mbits/sec    0    133 KBytes"
INTERVAL = re.compile(r"^\[\s*\d+\]\s+([\d.]+)-([\d.]+)\s+sec\s+([\d.]+)\s+(Bytes|KBytes|MBytes|GBytes)")
UNIT = {"Bytes": 1, "KBytes": 1 << 10, "MBytes": 1 << 20, "GBytes": 1 << 30}


def test_a_transfer_outlives_a_kill_and_restart_of_cellwalld(daemon, testhost):
    d = daemon
    server = testhost.spawn(["iperf3", "-s", "-p", "5201"])
    time.sleep(0.5)
    gw_port = ofport(d, "cw-g-default")
    pf = Path(d.state, "iperf.toml")
    pf.write_text(IPERF_POLICY)
    # 10 Mbit/s: enough to see every second's bytes, gentle on a shared machine. SIGINT at the
    # latest after 40 s: a transfer that died would otherwise wait for its end for ever.
    client = subprocess.Popen(
        [str(CELLWALL), "--state-dir", d.state, "run", "--app", "iperf", "--policy", str(pf), "--user", "nobody", "--",
         "timeout", "-s", "INT", "40", "iperf3", "-c", TESTHOST_IP, "-t", "20", "-i", "1", "-b", "10M",
         "--forceflush"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.time()
        time.sleep(4)
        d.kill9()
        time.sleep(1.5)  # the controller is gone: the established transfer rides its flows
        d.start()
        restarted = time.time() - started
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        server.kill()
        server.wait()
    intervals = []
    for line in out.splitlines():
        m = INTERVAL.match(line)
        if m and float(m.group(2)) - float(m.group(1)) <= 1.01:
            intervals.append((float(m.group(1)), float(m.group(3)) * UNIT[m.group(4)]))
    after = [b for (t, b) in intervals if t >= restarted + 1]
    print(f"cellwalld back {restarted:.1f} s into the transfer; bytes per second after: {after}")
    assert len(after) >= 3, (restarted, out, err)
    assert all(b > 0 for b in after), (restarted, out)
    # The gateway was adopted, not rebuilt: same port, and the log says so.
    assert ofport(d, "cw-g-default") == gw_port
    assert "environment 'default': adopted the running gateway" in d.new_log(), d.new_log()[-3000:]
