"""Fail-secure: without the controller nothing new gets out (once the switch's lease on deciding
by the rules has run out, RULES_LEASE_S); a restarted controller adopts the cells that kept
running and service comes back."""
import signal
import time

from conftest import RULES_LEASE_S, TESTHOST_IP, sh
from test_core import ALLOW_WEB, CURL


def test_no_controller_no_new_connections(daemon, testhost):
    proc, cell = daemon.start_cell(ALLOW_WEB, ["sleep", "300"], app="longlived")
    in_cell = ["ip", "netns", "exec", cell["netns"]]
    try:
        assert sh(in_cell + CURL, check=False).returncode == 0
        daemon.kill9()
        time.sleep(RULES_LEASE_S + 0.5)
        cap = testhost.capture("tcp dst port 8080")
        r = sh(in_cell + ["curl", "-sS", "--max-time", "3", "--local-port", "45000-45100",
                          f"http://{TESTHOST_IP}:8080/"], check=False)
        assert r.returncode != 0
        assert cap.count() == 0
        # A restarted daemon adopts the running cell and service comes back.
        daemon.start()
        deadline = time.time() + 20
        ok = None
        while time.time() < deadline:
            ok = sh(in_cell + CURL, check=False)
            if ok.returncode == 0:
                break
            time.sleep(0.5)
        assert ok is not None and ok.returncode == 0, ok.stderr if ok else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # The adopted cell goes away once its launcher is gone.
    deadline = time.time() + 15
    while time.time() < deadline and daemon.cells():
        time.sleep(0.3)
    assert daemon.cells() == []
