"""One cell cannot fill the conntrack table the others share (docs/pipeline.md): each cell's zone
holds at most `conntrack_per_cell` connections. Beyond it the cell's new connections are not
admitted, another cell's still are, and cellwalld says which cell is full."""
import json
import re
import time

import pytest

from conftest import TESTHOST_IP, _daemon

LIMIT = 30

ALLOW = f"""
default = "deny"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 8080
"""

# New connections one after the other (each closed connection stays in conntrack ~30 s);
# stops after 3 failures in a row. Prints [connections that worked, attempts].
CLIENT = f"""
import json, socket, sys
ok = fails = tries = 0
while tries < int(sys.argv[1]) and fails < 3:
    tries += 1
    try:
        c = socket.create_connection(("{TESTHOST_IP}", 8080), timeout=1.5)
        c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        data = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
        c.close()
        if b"hello from the test host" in data:
            ok += 1
            fails = 0
        else:
            fails += 1
    except OSError:
        fails += 1
print(json.dumps([ok, tries]))
"""


@pytest.fixture
def limited_daemon(testhost):
    yield from _daemon(testhost, ["--conntrack-per-cell", str(LIMIT)])


def connect(d, cell, attempts):
    r = d.sh_in_cell(cell, ["python3", "-c", CLIENT, str(attempts)], timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_cell_gets_at_most_its_limit_and_the_others_still_connect(limited_daemon):
    d = limited_daemon
    greedy_p, greedy = d.start_cell(ALLOW, ["sleep", "120"], app="greedy")
    other_p, other = d.start_cell(ALLOW, ["sleep", "120"], app="other")
    try:
        time.sleep(0.5)
        ok, tries = connect(d, greedy, 2 * LIMIT)
        # Every connection of the greedy cell is still in its zone (closed TCP connections
        # linger), so exactly LIMIT were admitted and the next ones were not.
        assert ok == LIMIT, (ok, tries)
        assert tries > LIMIT
        # Its zone is full; the other cell's is not.
        ok2, _ = connect(d, other, 5)
        assert ok2 == 5
        # cellwalld checks every 5 s, and says so once.
        full = f"cell{greedy['id']}={LIMIT}(full)"
        others = re.compile(rf"cell{other['id']}=5(?![\d(])")
        deadline = time.time() + 12
        line = ""
        while time.time() < deadline:
            line = next(l for l in d.cli("status").stdout.splitlines() if l.startswith("conntrack "))
            if full in line and others.search(line):
                break
            time.sleep(0.5)
        assert f"per_cell_limit={LIMIT}" in line
        assert full in line, line
        assert others.search(line), line
        assert re.search(rf"cell {greedy['id']} \(greedy\): {LIMIT} connections in conntrack, its limit", d.new_log())
    finally:
        for p in (greedy_p, other_p):
            p.kill()
            p.communicate()
