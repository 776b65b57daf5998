"""Who can use the web UI: only someone with the token, from this host's loopback. Checked
against a real cellwalld: requests without (or with a wrong) token, the token file's
permissions, another user, a cell whose policy allows everything, and another user's slow
connections, which must not keep the token's requests waiting."""
import json
import pwd
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from conftest import CELLWALL, GATEWAY_UPLINK_IP, TESTHOST_IP, sh

ALLOW_ALL = 'default = "allow"\n'


def request(url, data=None, headers=None, method=None, timeout=10):
    """(status, body) of one request."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def api(origin, body, token=None, ctype="application/json"):
    headers = {"Content-Type": ctype}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    return request(origin + "api", data=json.dumps(body).encode(), headers=headers, method="POST")


def test_requests_without_the_token_are_refused(mdaemon):
    url = mdaemon.ui_url()
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}/"
    token = parts.query.split("token=", 1)[1]
    assert len(token) == 64
    for path in ("", "index.html", "app.js", "app.css", "events"):
        assert request(origin + path)[0] == 401, path
        assert request(origin + path + "?token=" + "0" * 64)[0] == 401, path
    assert api(origin, {"cmd": "status"})[0] == 401
    assert api(origin, {"cmd": "status"}, token="f" * 64)[0] == 401
    status, body = api(origin, {"cmd": "status"}, token=token)
    assert status == 200 and json.loads(body)["ok"], body
    assert request(url)[0] == 200
    # With the token, still not: what only the command line may do, or a foreign Host.
    for cmd in ({"cmd": "shutdown"}, {"cmd": "cell.create", "app": "x"}, {"cmd": "rules.import", "app": "x", "text": ""}):
        status, body = api(origin, cmd, token=token)
        assert status == 403, (cmd, status, body)
    assert request(url, headers={"Host": f"rebind.example:{parts.port}"})[0] == 421
    assert api(origin, {"cmd": "status"}, token=token, ctype="text/plain")[0] == 415
    assert mdaemon.cli("status").returncode == 0  # and it is still running


def test_token_file_is_readable_by_its_owner_only(mdaemon):
    f = Path(mdaemon.state, "ui-token")
    st = f.stat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, oct(st.st_mode)
    assert stat.S_IMODE(Path(mdaemon.state).stat().st_mode) == 0o700
    token = f.read_text().strip()
    assert token in mdaemon.ui_url()
    r = sh(["runuser", "-u", "nobody", "--", "cat", str(f)], check=False)
    assert r.returncode != 0 and token not in r.stdout, r
    # `cellwall ui` as another user cannot ask the daemon either (its socket is the owner's).
    r = sh(["runuser", "-u", "nobody", "--", str(CELLWALL), "--state-dir", mdaemon.state, "ui"], check=False)
    assert r.returncode != 0 and token not in r.stdout, r


def test_the_ui_listens_on_loopback_only(mdaemon):
    port = urlsplit(mdaemon.ui_url()).port
    listening = sh(["ss", "-Hltn", f"sport = :{port}"]).stdout.split()
    local = [w for w in listening if w.endswith(f":{port}")]
    assert local == [f"127.0.0.1:{port}"], listening


def test_a_cell_cannot_reach_the_ui_or_the_control_socket(mdaemon):
    d = mdaemon
    url = d.ui_url()
    port = urlsplit(url).port
    probe = (
        "import socket, sys\n"
        "bad = []\n"
        f"for host in ('127.0.0.1', '{GATEWAY_UPLINK_IP}', '{TESTHOST_IP}'):\n"
        "    s = socket.socket(); s.settimeout(2)\n"
        f"    try: s.connect((host, {port})); bad.append(host)\n"
        "    except OSError: pass\n"
        "    s.close()\n"
        "u = socket.socket(socket.AF_UNIX)\n"
        f"try: u.connect('{d.state}/cellwall.sock'); bad.append('control socket')\n"
        "except OSError as e: print('control socket:', e)\n"
        f"try: open('{d.state}/ui-token').read(); bad.append('token file')\n"
        "except OSError as e: print('token file:', e)\n"
        "print('reached:', bad)\n"
        "sys.exit(1 if bad else 0)\n")
    # Allowed to go anywhere: only the cell's isolation can stop it.
    r = d.run_cell(ALLOW_ALL, ["python3", "-c", probe], app="web-probe", user="nobody")
    assert r.returncode == 0 and "reached: []" in r.stdout, (r.stdout, r.stderr)
    # The same probe run as root in the cell's network namespace: the UI is still not there.
    p, cell = d.start_cell(ALLOW_ALL, ["sleep", "30"], app="web-probe2")
    try:
        for host in ("127.0.0.1", GATEWAY_UPLINK_IP, TESTHOST_IP):
            r = d.sh_in_cell(cell, ["curl", "-s", "-o", "/dev/null", "--max-time", "2", "-w", "%{http_code}",
                                    f"http://{host}:{port}/"])
            assert r.stdout == "000", (host, r.stdout)
    finally:
        p.kill()
        p.wait()


# Another local user (nobody) holds 200 connections to the UI without the token: half trickle
# a request line a byte every 2 s (which no idle timeout ends), half stop after a partial
# request line. Each one the server closes is opened again after 0.5 s, so the pressure stays.
SLOW_CLIENTS = r"""
import json, selectors, socket, sys, time
port, seconds, count = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sel = selectors.DefaultSelector()
stats = {"opened": 0, "failed": 0, "closed_by_server": 0, "open_at_end": 0}
trickle = b"GET /" + b"a" * 4000 + b" HTTP/1.1\r\n"
socks = {}  # socket -> [kind, bytes sent, next send time]
reopen = []  # times at which to open one more

def open_one(kind):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        stats["failed"] += 1
        s.close()
        reopen.append((time.time() + 0.5, kind))
        return
    s.setblocking(False)
    stats["opened"] += 1
    if kind == "idle":
        try: s.send(b"GET /?tok")
        except OSError: pass
    socks[s] = [kind, 0, time.time()]
    sel.register(s, selectors.EVENT_READ)

def gone(s):
    kind = socks.pop(s)[0]
    sel.unregister(s)
    s.close()
    stats["closed_by_server"] += 1
    reopen.append((time.time() + 0.5, kind))

for i in range(count):
    open_one("trickle" if i % 2 else "idle")
print("ready", flush=True)
end = time.time() + seconds
while time.time() < end:
    for key, _ in sel.select(timeout=0.1):
        try:
            if key.fileobj.recv(65536) == b"":
                gone(key.fileobj)
        except OSError:
            gone(key.fileobj)
    now = time.time()
    for s, st in list(socks.items()):
        if st[0] == "trickle" and st[2] <= now:
            try:
                s.send(trickle[st[1]:st[1] + 1])
                st[1] += 1
                st[2] = now + 2
            except OSError:
                gone(s)
    due = [r for r in reopen if r[0] <= now]
    reopen[:] = [r for r in reopen if r[0] > now]
    for _, kind in due:
        open_one(kind)
stats["open_at_end"] = len(socks)
for s in socks:
    s.close()
print(json.dumps(stats), flush=True)
"""


def test_slow_clients_without_the_token_cannot_starve_the_ui(mdaemon):
    url = mdaemon.ui_url()
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}/"
    token = parts.query.split("token=", 1)[1]
    attack = subprocess.Popen(["runuser", "-u", "nobody", "--", "python3", "-c", SLOW_CLIENTS,
                               str(parts.port), "12", "200"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert attack.stdout.readline().strip() == "ready", attack.stderr.read()
        answered = []
        started = time.monotonic()
        while time.monotonic() - started < 10:
            for what, call in (
                    # As the page does it: POST /api with the token, JSON, from its own origin.
                    ("api", lambda: api_timed(origin, token, parts.netloc)),
                    ("page", lambda: request(url, timeout=5))):
                t0 = time.monotonic()
                try:
                    status, body = call()
                except OSError as e:
                    status, body = None, repr(e)
                took = time.monotonic() - t0
                assert status == 200 and took < 1.0, (what, status, round(took, 2), body[:200], answered)
                answered.append((what, round(took, 3)))
            time.sleep(0.5)
        assert len(answered) >= 10, answered
        out, err = attack.communicate(timeout=30)
        stats = json.loads(out.strip().splitlines()[-1])
        print("answered (what, seconds):", answered, "\nslow clients:", stats)
        # The attack was real: 200 connections were made, and kept being made as they were closed.
        assert stats["opened"] >= 200 and stats["closed_by_server"] > 0, (stats, err)
        # The server knew whose connections they were (sock_diag), and closed them for it.
        nobody = pwd.getpwnam("nobody").pw_uid
        log = mdaemon.new_log()
        assert f"uid {nobody} holds more than 16 connections that have not shown the token" in log, log[-2000:]
    finally:
        if attack.poll() is None:
            attack.kill()
        attack.communicate()
    assert mdaemon.cli("status").returncode == 0


def api_timed(origin, token, netloc):
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token,
               "Origin": "http://" + netloc}
    return request(origin + "api", data=json.dumps({"cmd": "status"}).encode(), headers=headers,
                   method="POST", timeout=5)
