"""Lua scripts on the decision path (docs/scripts.md), with real nmap, curl and netcat.

The shipped port-scan guard against a cell scanning out and a host scanning a cell's published
ports; the seed-style telnet blocker (also against IP options); scripts that fail, loop or eat memory; hot reload."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (CELLWALL, GATEWAY_UPLINK_IP, NAMES, TESTHOST_IP, Daemon, curl_in_cell, finish,
                      leftovers)

ALLOW_ALL = 'default = "allow"\n'
LEGIT_IP = NAMES["cdn.example.net"]  # a second address of the test host: its legitimate client


def start(testhost, config_extra):
    d = Daemon(testhost)
    d.config.write_text(d.config.read_text() + config_extra)
    return d


def stop(d):
    d.stop()
    ns, ls, procs = leftovers()
    clean = not ns and not ls and not procs
    if not clean:
        d.force_cleanup()
    else:
        shutil.rmtree(d.state, ignore_errors=True)
    assert clean, f"cellwalld left behind: netns={ns} links={ls} procs={procs}"


@pytest.fixture
def daemon_with(testhost):
    made = []

    def make(config_extra=""):
        d = start(testhost, config_extra)
        made.append(d)
        d.start()
        testhost.start_servers()
        return d

    yield make
    for d in made:
        stop(d)


def scripts(d):
    out = d.cli("script", "list", "--json").stdout
    return {s["name"]: s for s in (json.loads(l) for l in out.splitlines() if l.strip())}


def counter(info, name):
    return dict((k, v) for k, v in info.get("counters", [])).get(name, 0)


def syn_capture(testhost, dst=TESTHOST_IP, src=None):
    bpf = f"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst host {dst}"
    if src:
        bpf += f" and src host {src}"
    return testhost.capture(bpf)


def test_portscan_guard_stops_a_cell_scanning_out_and_others_keep_working(daemon_with, testhost):
    d = daemon_with("[script.portscan_guard]\n")
    assert scripts(d)["portscan_guard"]["state"] == "running"
    assert finish(curl_in_cell(d, ALLOW_ALL, "legit"))[0] == "200"

    scanner, cell = d.start_cell(ALLOW_ALL, ["sleep", "300"], app="scanner")
    stealthy, cell2 = d.start_cell(ALLOW_ALL, ["sleep", "300"], app="stealthy")
    try:
        cap = syn_capture(testhost)
        time.sleep(0.5)
        # A connect scan of 40 ports (more than twice what gets through: an unguarded scan fails
        # the count below), then the same cell tries a real request.
        r = d.sh_in_cell(cell, ["sh", "-c",
                                f"nmap -sT -Pn -n -p 1-40 --max-retries 1 --host-timeout 60s {TESTHOST_IP}; "
                                f"curl -s -o /dev/null --max-time 5 -w '%{{http_code}}' http://{TESTHOST_IP}:8080/"],
                         timeout=120)
        probes = cap.count()
        # The guard's default: 15 ports of one host in 10 s; the 15th is dropped, and so is
        # everything after it. Retransmissions of what got through may add a few.
        assert 10 <= probes <= 20, (probes, r.stdout)
        assert r.stdout.strip().endswith("000"), r.stdout  # the scanner's own request: blocked
        guard = scripts(d)["portscan_guard"]
        assert counter(guard, "blocked") == 1, guard
        assert any(f"blocked cell {cell['id']} ({cell['ip']}, app scanner)" in l for l in guard["logs"]), guard
        assert "script portscan_guard: blocked" in d.new_log()
        # The drop flow is in the script table, with the block's hard timeout.
        flows = d.cli("flows").stdout.splitlines()
        assert any("table=1 " in l and f"nw_src={cell['ip']}" in l and "hard_timeout=300" in l for l in flows), flows
        # A NULL scan (raw packets: as root in the cell's namespace) is a scan by itself.
        # (Counted from any source: the gateway does not rewrite a packet its conntrack finds
        # invalid, so one that got through would still carry the cell's address.)
        cap = testhost.capture(f"tcp[tcpflags] == 0 and dst host {TESTHOST_IP} and dst port 80")
        time.sleep(0.5)
        d.sh_in_cell(cell2, ["nmap", "-sN", "-Pn", "-n", "-p", "80", "--max-retries", "2", TESTHOST_IP], timeout=60)
        assert cap.count() == 0
        assert counter(scripts(d)["portscan_guard"], "blocked") == 2
        # Another app's connections go on, before and after.
        assert finish(curl_in_cell(d, ALLOW_ALL, "legit"))[0] == "200"
    finally:
        for p in (scanner, stealthy):
            p.terminate()
            p.wait(timeout=30)


def test_portscan_guard_stops_udp_fin_and_xmas_scans_from_cells(daemon_with, testhost):
    d = daemon_with("[script.portscan_guard]\n")
    # At most 14 distinct ports get through before the 15th is dropped (the default: 15).
    kinds = [("-sU", "udp and dst host %s" % TESTHOST_IP, 14),
             ("-sF", "tcp[tcpflags] & (tcp-fin|tcp-syn|tcp-ack) == tcp-fin and dst host %s" % TESTHOST_IP, 14),
             ("-sX", "tcp[tcpflags] & (tcp-fin|tcp-push|tcp-urg) == (tcp-fin|tcp-push|tcp-urg) and dst host %s"
              % TESTHOST_IP, 0)]
    cells = []
    try:
        for i, (flag, bpf, most) in enumerate(kinds):
            p, cell = d.start_cell(ALLOW_ALL, ["sleep", "300"], app=f"scan{i}")
            cells.append(p)
            cap = testhost.capture(bpf)
            time.sleep(0.5)
            # Raw-socket scans: as root in the cell's namespace (what an app with root in its
            # cell could do).
            # 31 ports: twice what the guard lets through, and few dropped probes to wait out.
            d.sh_in_cell(cell, ["nmap", flag, "-Pn", "-n", "-p", "1000-1030", "--max-retries", "1",
                                "--host-timeout", "40s", TESTHOST_IP], timeout=90)
            # Probes: distinct destination ports (nmap sends a probe again when no answer comes).
            probes = {l.split(" > ")[1].split(":")[0].rsplit(".", 1)[1] for l in cap.lines() if " > " in l}
            assert len(probes) <= most, (flag, sorted(probes))
            assert counter(scripts(d)["portscan_guard"], "blocked") == i + 1, flag
    finally:
        for p in cells:
            p.terminate()
            p.wait(timeout=30)


def test_portscan_guard_stops_a_host_scanning_published_ports(daemon_with, testhost):
    d = daemon_with("[script.portscan_guard]\nports = 10\n")
    ports = list(range(18000, 18016))
    publish = []
    for i, p in enumerate(ports):
        publish += ["--publish", f"{p}:{9000 + i}"]
    policy = ('default = "deny"\n[[allow]]\ndirection = "inbound"\nproto = "tcp"\nports = "9000-9015"\n')
    pf = Path(d.state, "svc.toml")
    pf.write_text(policy)
    svc = subprocess.Popen([str(CELLWALL), "--state-dir", d.state, "run", "--app", "svc", "--policy", str(pf)]
                           + publish + ["--", "python3", "-m", "http.server", "9000", "--bind", "0.0.0.0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def fetch(src):
        return testhost.exec(["curl", "-s", "-o", "/dev/null", "--max-time", "3", "--interface", src,
                              "-w", "%{http_code}", f"http://{GATEWAY_UPLINK_IP}:18000/"], check=False).stdout

    try:
        code = "000"
        for _ in range(40):
            code = fetch(LEGIT_IP)
            if code == "200":
                break
            time.sleep(0.3)
        assert code == "200", d.new_log()[-2000:]
        assert fetch(TESTHOST_IP) == "200"  # the future scanner, before it scans
        r = testhost.exec(["nmap", "-sS", "-Pn", "-n", "-p", f"{ports[0]}-{ports[-1]}", "--max-retries", "1",
                           "-S", TESTHOST_IP, "-e", "cw-u-default", GATEWAY_UPLINK_IP], check=False, timeout=120)
        guard = scripts(d)["portscan_guard"]
        assert counter(guard, "blocked") == 1, (guard, r.stdout)
        assert any(f"blocked {TESTHOST_IP}" in l for l in guard["logs"]), guard
        assert fetch(TESTHOST_IP) == "000"  # the scanner: dropped at the switch
        assert fetch(LEGIT_IP) == "200"     # the legitimate client: served, after as before
        # (NULL, FIN and Xmas probes from the uplink never get this far: the gateway's
        # conntrack finds them invalid, so they are not forwarded to a published port at all.)
    finally:
        svc.terminate()
        svc.wait(timeout=30)


TELNET_SERVER = ("import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                 "s.bind(('0.0.0.0',23)); s.listen(8)\nwhile True:\n  c,_=s.accept(); c.sendall(b'login: '); c.close()\n")


def test_seed_style_telnet_script_blocks_telnet_and_nothing_else(daemon_with, testhost):
    d = daemon_with("[script.telnet_block]\n")
    testhost.spawn(["/usr/bin/python3", "-c", TELNET_SERVER])
    time.sleep(0.5)
    p, cell = d.start_cell(ALLOW_ALL, ["sleep", "60"], app="seed")
    try:
        r = d.sh_in_cell(cell, ["sh", "-c",
                                f"nc -z -w 3 {TESTHOST_IP} 7777; echo echo=$?; nc -z -w 3 {TESTHOST_IP} 23; "
                                f"echo telnet=$?; curl -s -o /dev/null --max-time 5 -w 'http=%{{http_code}}' "
                                f"http://{TESTHOST_IP}:8080/"])
        flows = [l for l in d.cli("flows").stdout.splitlines() if "table=1 " in l and "priority=1100" in l]
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert "echo=0" in r.stdout and "telnet=1" in r.stdout and "http=200" in r.stdout, r.stdout + r.stderr
    info = scripts(d)["telnet_block"]
    assert info["dropped"] >= 1 and info["state"] == "running", info
    # The log names the script as what decided the telnet connection (not the app's default),
    # in the table's RULE column and in the JSON; the others were decided by the default.
    deadline = time.time() + 5
    while True:
        entries = [json.loads(l) for l in d.cli("log", "--app", "seed", "--json").stdout.splitlines() if l.strip()]
        telnet = [e for e in entries if e["remote_port"] == 23]
        if telnet or time.time() > deadline:
            break
        time.sleep(0.2)
    assert telnet and all(e["verdict"] == "deny" and e["decided_by"] == "script:telnet_block" for e in telnet), entries
    assert all(e["decided_by"] == "default" for e in entries if e["remote_port"] in (7777, 8080)), entries
    rows = [l for l in d.cli("log", "--app", "seed").stdout.splitlines() if f"{TESTHOST_IP}:23 " in l]
    assert rows and all(" deny    script:telnet_block " in l for l in rows), rows
    # drop(ip_src, port_dst): a flow for that source and port 23 only (TCP and UDP).
    # (Read while the cell lives: its address's script flows end with it.)
    assert len(flows) == 2 and all("_dst=23" in l and "nw_src=10.200." in l for l in flows), flows
    # ...and end with the cell: the next cell to get its address must not inherit the block.
    deadline = time.time() + 10
    while time.time() < deadline and any("priority=1100" in l for l in d.cli("flows").stdout.splitlines()):
        time.sleep(0.2)
    assert not [l for l in d.cli("flows").stdout.splitlines() if "table=1 " in l and "priority=1100" in l]


# An unprivileged app whose sockets carry IP options (NOPs and an end of options: 4 bytes, so
# the TCP header starts at 24, not 20). Prints what each connection did.
OPTIONS_CLIENT = f"""
import socket
def attempt(port):
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([1, 1, 1, 0]))
    s.settimeout(3)
    try:
        s.connect(("{TESTHOST_IP}", port))
        return "open"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return type(e).__name__
print("echo=" + attempt(7777), "telnet=" + attempt(23))
"""


def test_telnet_block_is_not_fooled_by_ip_options(daemon_with, testhost):
    """An app that sets IP_OPTIONS (no privilege needed) moves the TCP header; the shipped
    seed-style telnet blocker must still find port 23 (IP_HEADER_LEN is the packet's)."""
    d = daemon_with("[script.telnet_block]\n")
    testhost.spawn(["/usr/bin/python3", "-c", TELNET_SERVER])
    time.sleep(0.5)
    # Options-carrying SYNs (IHL > 5) to either port, as they arrive at the test host.
    cap_echo = testhost.capture("tcp dst port 7777 and ip[0] & 0xf > 5")
    cap_telnet = testhost.capture("tcp dst port 23")
    r = d.run_cell(ALLOW_ALL, ["/usr/bin/python3", "-c", OPTIONS_CLIENT], app="optioned")
    # Control: options get through the bridge and the gateway (the echo connection opens with
    # them), so a telnet SYN with options could too, but for the script.
    assert "echo=open" in r.stdout, r.stdout + r.stderr
    assert cap_echo.count() > 0
    assert "telnet=timeout" in r.stdout, r.stdout + r.stderr
    assert cap_telnet.count() == 0
    info = scripts(d)["telnet_block"]
    assert info["dropped"] >= 1 and info["state"] == "running", info


BROKEN = {
    "raises": 'function on_packet(pkt) error("boom") end\n',
    "loops": "function on_packet(pkt) while true do end end\n",
    "eats": 'function on_packet(pkt) local t = {} while true do t[#t + 1] = string.rep("x", 4096) .. #t end end\n',
    "yields_forever": "function run() while true do local pkt = coroutine.yield() while true do end end end\n",
}


def test_scripts_that_fail_loop_or_eat_memory_are_disabled_and_traffic_goes_on(daemon_with, tmp_path):
    d = daemon_with()
    for name, text in BROKEN.items():
        f = tmp_path / f"{name}.lua"
        f.write_text(text)
        d.cli("script", "load", str(f))
    assert all(s["state"] == "running" for s in scripts(d).values())
    assert finish(curl_in_cell(d, ALLOW_ALL, "app"))[0] == "200"
    got = scripts(d)
    assert set(got) == set(BROKEN)
    assert "boom" in got["raises"]["why"]
    assert "instruction budget" in got["loops"]["why"]
    assert "memory cap" in got["eats"]["why"]
    assert "instruction budget" in got["yields_forever"]["why"]
    assert all(s["state"] == "disabled" for s in got.values()), got
    log = d.new_log()
    assert all(f"script {n} disabled" in log for n in BROKEN), log[-3000:]
    # The controller goes on serving: more connections, decided by the rules.
    for _ in range(3):
        assert finish(curl_in_cell(d, ALLOW_ALL, "app"))[0] == "200"
    assert "DISABLED" in d.cli("script", "status", "loops").stdout
    # reload runs a disabled script again (here: to fail again at its first packet).
    d.cli("script", "reload", "raises")
    assert scripts(d)["raises"]["state"] == "running"


def test_hot_reload_changes_behaviour_without_dropping_connections(daemon_with, tmp_path):
    d = daemon_with()
    v1 = 'function on_packet(pkt) count("seen") end\n'
    v2 = 'function on_packet(pkt) count("seen") if pkt.port_dst == 8080 then return "reject" end end\n'
    f = tmp_path / "gate.lua"
    f.write_text(v1)
    d.cli("script", "load", str(f))
    # A long-lived connection to the test host's echo server, open across every reload.
    client = ("import socket,sys,time\n"
              f"s=socket.create_connection(('{TESTHOST_IP}',7777),timeout=5)\n"
              "for line in sys.stdin:\n"
              "  s.sendall(line.encode()); print(s.recv(100).decode().strip(), flush=True)\n")
    pf = Path(d.state, "longlived.toml")
    pf.write_text(ALLOW_ALL)
    proc = subprocess.Popen([str(CELLWALL), "--state-dir", d.state, "run", "--app", "longlived",
                             "--policy", str(pf), "--", "python3", "-c", client],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        def roundtrip(word):
            proc.stdin.write(word + "\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        assert roundtrip("one") == "one"
        assert finish(curl_in_cell(d, ALLOW_ALL, "web"))[0] == "200"
        # An edit of the user script's file: picked up without a command.
        user_file = Path(d.state, "scripts", "gate.lua")
        user_file.write_text(v2)
        deadline = time.time() + 10
        while time.time() < deadline and "reloaded after its file changed" not in d.new_log():
            time.sleep(0.1)
        assert "script gate: reloaded after its file changed" in d.new_log()
        assert finish(curl_in_cell(d, ALLOW_ALL, "web"))[0] == "000"  # rejected by the new version
        assert roundtrip("two") == "two"
        # `cellwall script load` of the old text, and `reload`: back to allowing.
        d.cli("script", "load", str(f))
        assert finish(curl_in_cell(d, ALLOW_ALL, "web"))[0] == "200"
        d.cli("script", "reload")
        assert finish(curl_in_cell(d, ALLOW_ALL, "web"))[0] == "200"
        assert roundtrip("three") == "three"
        # A version that does not load leaves the running one in place.
        user_file.write_text("function on_packet(pkt) return 'reject' end end\n")
        deadline = time.time() + 10
        while time.time() < deadline and "did not load" not in d.new_log():
            time.sleep(0.1)
        assert "the old one keeps running" in d.new_log()
        assert finish(curl_in_cell(d, ALLOW_ALL, "web"))[0] == "200"
        # Unloading removes the user script's file.
        d.cli("script", "unload", "gate")
        assert "gate" not in scripts(d) and not user_file.exists()
        assert roundtrip("four") == "four"
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(timeout=30)


def helpers():
    """Helper processes of any cellwalld (the tests run one daemon at a time)."""
    out = subprocess.run(["pgrep", "-f", "--", "--script-helper"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_helper_process_gives_the_same_results_and_its_crash_stops_only_its_script(daemon_with, testhost, tmp_path):
    d = daemon_with()
    testhost.spawn(["/usr/bin/python3", "-c",
                    "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                    "s.bind(('0.0.0.0',23)); s.listen(8)\nwhile True:\n  c,_=s.accept(); c.close()\n"])
    seed = Path(__file__).resolve().parents[2] / "lua" / "telnet_block.lua"
    probe = (f"nc -z -w 3 {TESTHOST_IP} 7777; echo echo=$?; nc -z -w 3 {TESTHOST_IP} 23; echo telnet=$?; "
             f"curl -s -o /dev/null --max-time 5 -w 'http=%{{http_code}}' http://{TESTHOST_IP}:8080/")
    results = {}
    for mode in ("in-process", "helper"):
        args = ["script", "load", str(seed), "--name", "telnet"] + (["--helper"] if mode == "helper" else [])
        d.cli(*args)
        assert scripts(d)["telnet"]["mode"] == mode
        r = d.run_cell(ALLOW_ALL, ["sh", "-c", probe], app=f"app-{mode}")
        results[mode] = r.stdout.strip()
        info = scripts(d)["telnet"]
        assert info["state"] == "running" and info["dropped"] >= 1, info
    assert results["in-process"] == results["helper"] == "echo=0\ntelnet=1\nhttp=200", results
    # The helper is confined: its own (empty) network namespace, user nobody.
    pids = helpers()
    assert len(pids) == 1, pids
    pid = pids[0]
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert "Uid:\t65534" in Path(f"/proc/{pid}/status").read_text()
    # A crash of the helper stops that script only; the controller goes on.
    os.kill(pid, signal.SIGKILL)
    assert finish(curl_in_cell(d, ALLOW_ALL, "after-crash"))[0] == "200"
    info = scripts(d)["telnet"]
    assert info["state"] == "disabled" and "signal 9" in info["why"], info
    assert "script telnet disabled: helper process killed by signal 9" in d.new_log()
    # Reloaded: a new helper, working again.
    d.cli("script", "reload", "telnet")
    r = d.run_cell(ALLOW_ALL, ["sh", "-c", probe], app="app-again")
    assert r.stdout.strip() == "echo=0\ntelnet=1\nhttp=200", r.stdout
    d.stop()
    assert helpers() == []


INSPECTOR = """
function inspect_http(pkt)
  count("packets")
  if pkt.direction == "out" and pkt.proto == TCP and string.find(pkt.frame, "GET /forbidden", 1, true) then
    count("refused")
    return "drop"
  end
end
"""


def test_inspect_mode_sends_every_packet_through_inspect_functions(daemon_with, tmp_path):
    d = daemon_with()
    f = tmp_path / "inspector.lua"
    f.write_text(INSPECTOR)
    d.cli("script", "load", str(f))

    def curl(app, path, inspect, host=TESTHOST_IP):
        pf = Path(d.state, f"{app}.toml")
        pf.write_text(ALLOW_ALL)
        r = subprocess.run([str(CELLWALL), "--state-dir", d.state, "run", "--app", app, "--policy", str(pf)]
                           + (["--inspect"] if inspect else [])
                           + ["--", "curl", "-s", "-o", "/dev/null", "--max-time", "4", "-w", "%{http_code}",
                              f"http://{host}:8080{path}"], capture_output=True, text=True, timeout=60)
        return r.stdout.strip()

    def packets():
        return counter(scripts(d)["inspector"], "packets")

    # Not inspected: the inspect functions see nothing, and the page is served (404: no such file).
    assert curl("plain", "/forbidden", False) == "404"
    assert packets() == 0
    # Inspected: every packet, both ways; a request for /forbidden is dropped, packet by packet.
    assert curl("watched", "/", True) == "200"
    seen = packets()
    assert seen >= 8, seen  # handshake, request, answer, acknowledgements, the closing
    assert curl("watched", "/forbidden", True) == "000"
    assert counter(scripts(d)["inspector"], "refused") >= 2  # the request and its retransmissions
    # DNS works in inspect mode, and the names are learned from the answers.
    assert curl("watched", "/", True, host="test.example") == "200"
    # One log entry per connection, not per packet.
    deadline = time.time() + 5
    while True:
        entries = [json.loads(l) for l in d.cli("log", "--app", "watched", "--json").stdout.splitlines() if l.strip()]
        to_web = [e for e in entries if e["remote_port"] == 8080]
        if len(to_web) >= 3 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert len(to_web) == 3, to_web
    assert any(e["names"] == "test.example" for e in to_web), to_web
    assert "inspect mode" in d.new_log()


def test_a_script_cannot_get_around_anti_spoofing_or_reach_the_gateway(daemon_with, tmp_path):
    from test_bypass import send_raw
    d = daemon_with()
    f = tmp_path / "yes.lua"
    f.write_text('function on_packet(pkt) count("asked") return "allow" end\n')
    d.cli("script", "load", str(f))
    deny_all = 'default = "deny"\n'
    p, cell = d.start_cell(deny_all, ["sleep", "120"], app="hostile")
    try:
        # Scripts come before the rules: its "allow" admits what the app's rules refuse.
        r = d.sh_in_cell(cell, ["curl", "-s", "-o", "/dev/null", "--max-time", "5", "-w", "%{http_code}",
                                f"http://{TESTHOST_IP}:8080/"])
        assert r.stdout == "200"
        asked = counter(scripts(d)["yes"], "asked")
        assert asked >= 1
        # A forged source never reaches a script (or the test host): table 0 drops it.
        cap = d.testhost.capture("tcp dst port 8080")
        send_raw(cell, cell["mac"], "10.200.99.99", "tcp", 41000, 8080)
        assert cap.count() == 0
        # The gateway is not a service host, whatever a script says: refused before scripts.
        before = [l for l in d.cli("status").stdout.splitlines() if l.startswith("reason gateway_service")]
        d.sh_in_cell(cell, ["nc", "-z", "-w", "2", "10.200.0.1", "22"])
        after = [l for l in d.cli("status").stdout.splitlines() if l.startswith("reason gateway_service")]
        assert after and after != before, (before, after)
        assert counter(scripts(d)["yes"], "asked") == asked
    finally:
        p.terminate()
        p.wait(timeout=30)


QOS = """
local limited, lifted = {}, false
function on_packet(pkt)
  if pkt.app == "lift" then remove_flows(7); lifted = true; return end
  if pkt.app == "slow" and not lifted and not limited[pkt.ip_src] then
    limited[pkt.ip_src] = true
    -- Everything towards the cell, open connections included: 4 Mbit/s.
    limit{ip_dst = pkt.ip_src, kbps = 4000, burst = 500, cookie = 7}
  end
end
"""


def test_a_script_rate_limits_with_a_meter_and_lifts_it_by_cookie(daemon_with, testhost, tmp_path):
    d = daemon_with()
    Path(testhost.www, "big.bin").write_bytes(b"x" * (2 << 20))
    f = tmp_path / "qos.lua"
    f.write_text(QOS)
    d.cli("script", "load", str(f))

    def speed(cell):
        r = d.sh_in_cell(cell, ["curl", "-s", "-o", "/dev/null", "--max-time", "30", "-w", "%{speed_download}",
                                f"http://{TESTHOST_IP}:8080/big.bin"], timeout=60)
        return float(r.stdout or 0)

    slow_p, slow = d.start_cell(ALLOW_ALL, ["sleep", "300"], app="slow")
    fast_p, fast = d.start_cell(ALLOW_ALL, ["sleep", "300"], app="fast")
    try:
        limited = speed(slow)
        unlimited = speed(fast)
        assert 0 < limited < 1.0e6, limited          # 4 Mbit/s is 0.5 MB/s
        assert unlimited > 4 * limited, (unlimited, limited)
        flows = [l for l in d.cli("flows").stdout.splitlines() if "table=1 " in l and "meter:" in l]
        assert len(flows) == 1 and f"nw_dst={slow['ip']}" in flows[0], flows
        # A connection of app "lift" makes the script remove its flows with cookie 7.
        assert finish(curl_in_cell(d, ALLOW_ALL, "lift"))[0] == "200"
        assert not [l for l in d.cli("flows").stdout.splitlines() if "table=1 " in l and "meter:" in l]
        assert speed(slow) > 4 * limited
    finally:
        for p in (slow_p, fast_p):
            p.terminate()
            p.wait(timeout=30)
