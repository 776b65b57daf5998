"""Network environments with VPN uplinks (issue 7): two sites that both use 192.168.11.0/24,
each with a host 192.168.11.5 and a DNS server that answers www.site.test differently
(tests/e2e/sites.py). App A lives in the "local" environment, whose uplink is the local site;
app B in the "remote" environment, whose uplink is a tunnel (wireguard-go, or OpenVPN) to the
remote site over a carrier through the local site. Each must reach its own site, by address
and by name, at the same time; nothing of B's may show in the clear on the local side; when
the tunnel goes down B loses connectivity (the kill switch) while A keeps it; and the host's
routes, rules, nftables and resolv.conf stay as they were.

The "local" environment's uplink is a namespace (the local site) rather than the host's own
connectivity: a test must not route 192.168.11.0/24 on the machine it runs on."""
import difflib
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CELLWALL, Capture, Daemon, leftovers, sh
from sites import Sites
from test_host_uplink import host_state

POOL = "10.201.0.0/24"  # the same for both environments: the switch keeps them apart by port
REMOTE_GW = "cw-g-remote"
ALLOW = 'default = "allow"\nenv = "{env}"\n'

# Each fetch prints one line: "<what> <answer>"; the answer is the site's body, or "fail".
FETCHES = r"""
for i in $(seq {rounds}); do
  echo "ip $(curl -s --max-time 5 http://192.168.11.5/ || echo fail)"
  echo "name $(curl -s --max-time 5 http://www.site.test/ || echo fail)"
  echo "ptr $(getent hosts 192.168.11.5 | awk '{{print $2}}')"
done
"""


def config(sites, tunnel_kind, tunnel_file, env_dns, second_wireguard=None):
    """second_wireguard: a WireGuard file for a second tunnel environment, "wg", at once."""
    dns_line = f'dns = ["{sites.LOCAL_DNS}"]\n' if env_dns else ""
    second = "" if second_wireguard is None else f"""
[env.wg]
pool = "{POOL}"
[env.wg.uplink]
kind = "wireguard"
config = "{second_wireguard}"
carrier = "netns"
netns = "{sites.lan_ns}"
address = "10.254.2.2/30"
peer_address = "10.254.2.1/30"
"""
    return second + f"""
[env.local]
pool = "{POOL}"
dns = ["{sites.LOCAL_DNS}"]
[env.local.uplink]
kind = "netns"
netns = "{sites.lan_ns}"
address = "10.254.0.2/30"
peer_address = "10.254.0.1/30"

[env.remote]
pool = "{POOL}"
{dns_line}[env.remote.uplink]
kind = "{tunnel_kind}"
config = "{tunnel_file}"
carrier = "netns"
netns = "{sites.lan_ns}"
address = "10.254.1.2/30"
peer_address = "10.254.1.1/30"
"""


def start_fetches(d, app, env, rounds):
    pf = Path(d.state, f"{app}.toml")
    pf.write_text(ALLOW.format(env=env))
    return subprocess.Popen([str(CELLWALL), "--state-dir", d.state, "run", "--app", app, "--policy", str(pf),
                             "--", "sh", "-c", FETCHES.format(rounds=rounds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fetch_lines(p, timeout=120):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return [l for l in out.splitlines() if l.strip()]


def expected(site, rounds):
    name_host = "192.168.11.5" if site == "local" else "192.168.11.7"
    return [f"ip {site} 192.168.11.5", f"name {site} {name_host}", f"ptr host5.{site}.test"] * rounds


def fetch_once(d, app, env, max_time=3, url="http://192.168.11.5/", policy=None):
    pf = Path(d.state, f"{app}.toml")
    pf.write_text(policy if policy is not None else ALLOW.format(env=env))
    r = d.cli("run", "--app", app, "--policy", str(pf), "--", "curl", "-s", "--max-time", str(max_time),
              url, check=False, timeout=60)
    return r.stdout.strip() if r.returncode == 0 else "fail"


def wait_fetch(d, app, env, want, timeout=40):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = fetch_once(d, app, env)
        if got == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{app} still gets {got!r}, not {want!r}:\n" + d.new_log()[-3000:])


def cleartext(lines, port):
    """Captured packets that are not the tunnel's own: UDP to or from the server's port, and
    the server's "port unreachable" while it is down."""
    return [l for l in lines if f".{port}:" not in l and f".{port} >" not in l
            and f"udp port {port} unreachable" not in l]


def tunnel_pid(d, timeout=10):
    """The running tunnel daemon's pid, from the gateway's state (0 while it is restarted)."""
    state = ""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = Path(d.state, "env", "remote", "gateway.state").read_text()
        pids = [int(l.split("=", 1)[1]) for l in state.splitlines() if l.startswith("tunnel_pid=")]
        assert pids, f"no tunnel_pid in the gateway's state:\n{state}"
        if pids[0] > 0:
            return pids[0]
        time.sleep(0.1)
    raise AssertionError(f"no tunnel daemon running:\n{state}")


def run_two_sites(tunnel_kind, tmp_path, rounds=3):
    """The shared scenario; tunnel_kind "wireguard" or "openvpn". With OpenVPN, a WireGuard
    environment runs at the same time: two tunnel daemons side by side, each in its gateway."""
    before = host_state()
    with Sites(openvpn=tunnel_kind == "openvpn") as sites:
        if tunnel_kind == "wireguard":
            tunnel_file, port = Path(tmp_path, "remote.conf"), sites.WG_PORT
            tunnel_file.write_text(sites.wireguard_client_config())
        else:
            tunnel_file, port = Path(tmp_path, "remote.ovpn"), sites.OVPN_PORT
            tunnel_file.write_text(sites.openvpn_client_config())
        # WireGuard: DNS from the file's DNS =; OpenVPN: pushed by the server. Neither is in
        # cellwalld.toml.
        second = None
        if tunnel_kind == "openvpn":
            second = Path(tmp_path, "wg.conf")
            second.write_text(sites.wireguard_client_config())
        d = Daemon(None, config_text=config(sites, tunnel_kind, tunnel_file, env_dns=False, second_wireguard=second))
        during = None
        try:
            started = time.time()
            d.start()
            if tunnel_kind == "openvpn":
                wait_fetch(d, "b", "remote", "remote 192.168.11.5")
            print(f"daemon with two environments up in {time.time() - started:.1f} s")

            # A and B at once, each several times, by address, by name and in reverse.
            carrier = Capture(sites.lan_ns, "cw-u-remote", "ip")
            a = start_fetches(d, "a", "local", rounds)
            b = start_fetches(d, "b", "remote", rounds)
            got_a, got_b = fetch_lines(a), fetch_lines(b)
            leaked = cleartext(carrier.lines(), port)
            assert got_a == expected("local", rounds), got_a
            assert got_b == expected("remote", rounds), (got_b, d.new_log()[-3000:])
            # Everything of B's on the local side was the tunnel's own packets.
            assert leaked == [], leaked[:20]
            # B's names were asked of the remote site's server only.
            local_log = Path(sites.dns_log("local")).read_text()
            assert "10.254.1." not in local_log, local_log[-2000:]
            if second is not None:
                assert fetch_once(d, "c", "wg", url="http://www.site.test/") == "remote 192.168.11.7"

            # Name rules work in a tunnel's environment: the switch snoops the answers there too.
            by_name = ALLOW.format(env="remote").replace('"allow"', '"deny"') + \
                '[[allow]]\nhosts = "www.site.test"\nports = 80\n'
            assert fetch_once(d, "n", "remote", url="http://www.site.test/", policy=by_name) == "remote 192.168.11.7"
            assert fetch_once(d, "n", "remote", policy=by_name) == "fail"
            # A WireGuard environment's cells get the tunnel's MTU (wireguard-go's 1420).
            pf = Path(d.state, "m.toml")
            pf.write_text(ALLOW.format(env="remote"))
            link = d.cli("run", "--app", "m", "--policy", str(pf), "--", "ip", "-o", "link", "show", "eth0").stdout
            mtu = link.split(" mtu ")[1].split()[0]
            assert mtu == ("1420" if tunnel_kind == "wireguard" else "1500"), mtu
            # An app moved to another environment: its next cell lives there.
            assert fetch_once(d, "b", "local") == "local 192.168.11.5"

            # The kill switch. The server goes away, then the gateway's tunnel daemon dies,
            # and a route through the carrier is there to fall back on: B gets nothing, and
            # nothing of B's leaves in the clear; A is unaffected.
            if tunnel_kind == "wireguard":
                sites.stop_wireguard()
            else:
                sites.stop_openvpn()
            sh(["kill", "-9", str(tunnel_pid(d))])
            sh(["ip", "-n", REMOTE_GW, "route", "add", "default", "via", "10.254.1.1", "dev", "cwup0",
                "metric", "50"])
            carrier = Capture(sites.lan_ns, "cw-u-remote", "ip")
            assert fetch_once(d, "b", "remote") == "fail"
            assert fetch_once(d, "a", "local") == "local 192.168.11.5"
            leaked = cleartext(carrier.lines(), port)
            assert leaked == [], leaked[:20]
            sh(["ip", "-n", REMOTE_GW, "route", "del", "default", "via", "10.254.1.1", "dev", "cwup0",
                "metric", "50"])

            # The daemon restarted the tunnel; with the server back, B is back.
            if tunnel_kind == "wireguard":
                sites.start_wireguard()
            else:
                sites.start_openvpn()
            wait_fetch(d, "b", "remote", "remote 192.168.11.5")
            log = d.new_log()
            assert "environment remote: restarted" in log or "is up" in log, log[-3000:]
            # cellwalld crashes: the restarted daemon adopts both gateways, tunnel and all (its
            # daemon, device and DNS servers), and B is served at once, through the tunnel.
            d.kill9()
            d.start()
            log = d.new_log()
            for env in ("local", "remote"):
                assert f"environment '{env}': adopted the running gateway" in log, log[-3000:]
            assert fetch_once(d, "b", "remote") == "remote 192.168.11.5"
            later = d.new_log()  # nothing of it was restarted: not the tunnel, not dnsmasq
            assert "environment remote: restarted" not in later and "DNS" not in later, later[-3000:]
            status = d.cli("env", "list", check=False)
            during = host_state()
        finally:
            d.stop()
            ns, links, procs = leftovers()
            if ns or links or procs:
                d.force_cleanup()
            shutil.rmtree(d.state, ignore_errors=True)
        assert not ns and not links and not procs, (ns, links, procs)
        assert not Path("/run/wireguard/cw-w-remote.sock").exists()
    after = host_state()
    for name, state in (("during", during), ("after", after)):
        for key in before:
            diff = "\n".join(difflib.unified_diff(before[key].splitlines(), state[key].splitlines(),
                                                  "before", name, lineterm=""))
            assert not diff, f"host {key} changed:\n{diff}"


def test_two_sites_over_wireguard(tmp_path):
    run_two_sites("wireguard", tmp_path)


def test_two_sites_over_openvpn(tmp_path):
    run_two_sites("openvpn", tmp_path, rounds=2)


def test_env_commands_add_list_show_rm_and_keep_across_restarts(daemon, testhost, tmp_path):
    """`cellwall env add|list|show|rm`: an environment added at run time serves cells at once,
    is kept across a restart, and is removed with its gateway; mistakes are refused with a
    reason and leave nothing stored."""
    d = daemon
    office = ["env", "add", "office", "--uplink", "netns", "--netns", testhost.ns,
              "--address", "10.250.5.2/24", "--peer-address", "10.250.5.1/24",
              "--pool", "10.202.0.0/24", "--dns", "10.250.0.1", "--search", "corp.test"]
    out = d.cli(*office).stdout
    assert "added environment office" in out, out
    policy = 'default = "allow"\n'

    # --env puts the cell in it; its names go to the environment's server, its search
    # domain is in the cell's resolv.conf.
    pf = Path(d.state, "o.toml")
    pf.write_text(policy)
    r = d.cli("run", "--app", "o", "--env", "office", "--policy", str(pf), "--", "sh", "-c",
              "grep ^search /etc/resolv.conf; curl -s --max-time 5 -o /dev/null -w '%{http_code}' "
              "http://test.example:8080/", check=False)
    assert r.stdout.split("\n") == ["search corp.test", "200"], (r.stdout, r.stderr, d.new_log()[-2000:])

    rows = {line.split()[0]: line for line in d.cli("env", "list").stdout.splitlines()[1:]}
    assert set(rows) == {"default", "office"}, rows
    assert "up" in rows["office"] and "env add" in rows["office"], rows["office"]
    show = d.cli("env", "show", "office").stdout
    assert "10.202.0.0/24" in show and "corp.test" in show and 'kind = "netns"' in show, show

    # Mistakes: refused, nothing stored, nothing left running.
    for args, why in ((office, "exists; remove it first"),
                      (["env", "add", "Bad_Name"], "invalid environment name"),
                      (["env", "add", "vpn", "--uplink", "wireguard", "--config", str(tmp_path / "none.conf")],
                       "cannot read"),
                      (["env", "rm", "default"], "defined in the configuration file"),
                      (["env", "rm", "nothere"], "no network environment named 'nothere'")):
        r = d.cli(*args, check=False)
        assert r.returncode != 0 and why in r.stderr, (args, r.stderr)
    assert sorted(p.name for p in Path(d.state, "envs").iterdir()) == ["office.toml"]
    assert "cw-g-vpn" not in sh(["ip", "netns", "list"]).stdout

    # Kept across a restart.
    d.stop()
    d.start()
    r = d.cli("run", "--app", "o", "--env", "office", "--policy", str(pf), "--", "curl", "-s", "--max-time", "5",
              "-o", "/dev/null", "-w", "%{http_code}", "http://10.250.5.1:8080/", check=False)
    assert r.stdout == "200", (r.stdout, r.stderr)

    # Not removed under a running cell, unless forced (which ends the cell).
    p, cell = d.start_cell(policy, ["sleep", "300"], app="bg", run_args=("--env", "office"))
    try:
        r = d.cli("env", "rm", "office", check=False)
        assert r.returncode != 0 and "1 cell(s) live in environment 'office'" in r.stderr, r.stderr
        assert d.cli("env", "rm", "office", "--force").stdout.strip() == "removed environment office"
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "office" not in d.cli("env", "list").stdout
    assert "cw-g-office" not in sh(["ip", "netns", "list"]).stdout
    assert not Path(d.state, "envs", "office.toml").exists()
    r = d.cli("run", "--app", "o", "--env", "office", "--policy", str(pf), "--", "true", check=False)
    assert r.returncode != 0 and "office" in r.stderr, r.stderr


def test_an_existing_interface_as_uplink_is_given_back_as_it_was():
    """uplink kind "interface": a link of the host's (here a veth the test made, standing for a
    NIC or a tunnel another program runs) is moved into the gateway while the environment
    runs, and given back with its name, address and state, after a crash (which a restarted
    daemon adopts) too."""
    tag = "%04x" % random.randrange(0x10000)
    ifname, ns = "cw-xi" + tag, "cw-xi" + tag + "n"
    server = None
    try:
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns", ns])
        sh(["sysctl", "-q", "-w", f"net.ipv6.conf.{ifname}.disable_ipv6=1"])
        sh(["ip", "addr", "add", "10.250.9.5/24", "dev", ifname])
        sh(["ip", "link", "set", ifname, "up"])
        for argv in (["addr", "add", "10.250.9.1/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                     ["link", "set", "lo", "up"]):
            sh(["ip", "-n", ns] + argv)
        server = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", "-m", "http.server", "8080",
                                   "--bind", "10.250.9.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = sh(["ip", "-json", "addr", "show", "dev", ifname]).stdout
        before_routes = sh(["ip", "route", "show", "table", "all"]).stdout
        d = Daemon(None, config_text=f"""
[env.default]
pool = "10.200.0.0/16"
[env.default.uplink]
kind = "interface"
interface = "{ifname}"
address = "10.250.9.2/24"
next_hop = "10.250.9.1"
""")
        fetch = ["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://10.250.9.1:8080/"]
        try:
            d.start()
            r = d.run_cell('default = "allow"\n', fetch)
            assert r.stdout == "200", (r.stdout, r.stderr, d.new_log()[-2000:])
            assert ifname not in sh(["ip", "-o", "link", "show"]).stdout  # in the gateway meanwhile
            # A crash: the next start adopts the gateway with the interface in it, as it is.
            d.kill9()
            d.start()
            assert "environment 'default': adopted the running gateway" in d.new_log(), d.new_log()[-2000:]
            r = d.run_cell('default = "allow"\n', fetch)
            assert r.stdout == "200", (r.stdout, r.stderr, d.new_log()[-2000:])
        finally:
            d.stop()
            ns_left, links_left, procs = leftovers()
            if ns_left or links_left or procs:
                d.force_cleanup()
            shutil.rmtree(d.state, ignore_errors=True)
        assert not ns_left and not links_left and not procs, (ns_left, links_left, procs)
        after = sh(["ip", "-json", "addr", "show", "dev", ifname], check=False).stdout

        def essentials(text):
            link = json.loads(text)[0]
            return (link["ifname"], "UP" in link["flags"],
                    sorted((a["local"], a["prefixlen"]) for a in link.get("addr_info", [])))
        assert after and essentials(after) == essentials(before), (before, after)
        assert sh(["ip", "route", "show", "table", "all"]).stdout == before_routes
    finally:
        if server:
            server.kill()
            server.wait()
        sh(["ip", "netns", "del", ns], check=False)
        sh(["ip", "link", "del", ifname], check=False)
