"""`cellwall notify`: a desktop notification per question, on a real (private) D-Bus session
bus with a notification service the test plays (python3-dbus), withdrawn once answered."""
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import CELLWALL, TESTHOST_IP

SERVICE = r'''
import json, sys
import dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
log = open(sys.argv[2], "a")
IFACE = "org.freedesktop.Notifications"
class Server(dbus.service.Object):
    last = 0
    @dbus.service.method(IFACE, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):
        Server.last += 1
        log.write(json.dumps({"call": "Notify", "id": Server.last, "app": str(app), "summary": str(summary),
                              "body": str(body), "urgency": int(hints.get("urgency", -1)),
                              "timeout": int(timeout)}) + "\n")
        log.flush()
        return Server.last
    @dbus.service.method(IFACE, in_signature="u")
    def CloseNotification(self, nid):
        log.write(json.dumps({"call": "Close", "id": int(nid)}) + "\n")
        log.flush()
name = dbus.service.BusName(IFACE, bus)
Server(bus, "/org/freedesktop/Notifications")
print("ready", flush=True)
GLib.MainLoop().run()
'''


@pytest.fixture
def session_bus():
    """A private session bus: (address, directory)."""
    d = tempfile.mkdtemp(prefix="cw-bus-")
    address = f"unix:path={d}/bus"
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={address}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 10
        while not Path(d, "bus").exists():
            assert time.time() < deadline and bus.poll() is None, "dbus-daemon did not start"
            time.sleep(0.05)
        yield address, d
    finally:
        bus.kill()
        bus.wait()
        shutil.rmtree(d, ignore_errors=True)


def notifier(d, address):
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=address)
    return subprocess.Popen([str(CELLWALL), "--state-dir", d.state, "notify"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def calls(log):
    return [json.loads(l) for l in Path(log).read_text().splitlines() if l.strip()] if Path(log).exists() else []


def wait_for(pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


def test_a_question_is_notified_and_withdrawn_once_answered(daemon, session_bus):
    d = daemon
    address, tmp = session_bus
    log = Path(tmp, "calls.jsonl")
    service = subprocess.Popen(["/usr/bin/python3", "-c", SERVICE, address, str(log)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    n = curl = None
    try:
        assert service.stdout.readline().strip() == "ready", service.stderr.read()
        n = notifier(d, address)
        assert "notifying" in n.stdout.readline()
        pf = Path(d.state, "notified.toml")
        pf.write_text('default = "prompt"\n')
        curl = subprocess.Popen([str(CELLWALL), "--state-dir", d.state, "run", "--app", "notified", "--policy",
                                 str(pf), "--", "curl", "-s", "-o", "/dev/null", "--max-time", "20", "-w",
                                 "%{http_code}", f"http://{TESTHOST_IP}:8080/"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        shown = wait_for(lambda: [c for c in calls(log) if c["call"] == "Notify"])
        assert len(shown) == 1, calls(log)
        note = shown[0]
        assert note["app"] == "cellwall" and note["summary"] == "notified wants to connect", note
        assert f"tcp {TESTHOST_IP} port 8080" in note["body"] and note["urgency"] == 2, note
        assert 50_000 < note["timeout"] <= 60_000, note  # the question's time left
        q = json.loads(d.cli("prompt", "--json").stdout.splitlines()[0])
        d.cli("answer", str(q["id"]), "--allow")
        assert curl.communicate(timeout=30)[0] == "200"
        closed = wait_for(lambda: [c for c in calls(log) if c["call"] == "Close"])
        assert closed == [{"call": "Close", "id": note["id"]}], calls(log)
        assert len([c for c in calls(log) if c["call"] == "Notify"]) == 1  # no repeats
    finally:
        for p in (curl, n, service):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_no_notification_service_or_no_bus_is_not_an_error(daemon, session_bus):
    address, _ = session_bus
    n = notifier(daemon, address)  # a bus, but nobody serves notifications on it
    out, err = n.communicate(timeout=20)
    assert n.returncode == 0 and "no notification service" in out, (out, err)
    n = notifier(daemon, "unix:path=/nonexistent/cw-no-bus")
    out, err = n.communicate(timeout=20)
    assert n.returncode == 0 and "no session bus" in out, (out, err)
