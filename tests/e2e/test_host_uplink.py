"""The default environment for desktops: the gateway reaches the network through the host's own
connectivity (user-mode networking, slirp4netns), and nothing on the host — routes, rules,
nftables, resolv.conf, forwarding — is changed.

The "network" here is a namespace the test creates and connects to the root namespace with a
veth of its own, so traffic never leaves the machine."""
import difflib
import shutil
import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CELLWALL, Capture, Daemon, leftovers, sh

NET_IP = "10.251.7.2"   # the server's address in the test namespace
HOST_IP = "10.251.7.1"  # the root namespace's end of the test veth


def host_state():
    return {
        "routes": sh(["ip", "route", "show", "table", "all"]).stdout,
        "rules": sh(["ip", "rule"]).stdout,
        "nft": sh(["nft", "list", "ruleset"]).stdout,
        "resolv": open("/etc/resolv.conf").read(),
        "forwarding": sh(["sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding",
                          "net.ipv4.conf.default.forwarding"]).stdout,
    }


@pytest.fixture
def lan():
    """A namespace reachable from the root namespace, serving HTTP and DNS."""
    tag = "%04x" % random.randrange(0x10000)
    ns, veth = "cw-hu" + tag, "cw-hu" + tag
    procs = []
    try:
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        # No IPv6 on the test's own link: its link-local routes would appear asynchronously
        # and blur the before/after comparison of the host's routes.
        sh(["sysctl", "-q", "-w", f"net.ipv6.conf.{veth}.disable_ipv6=1"])
        sh(["ip", "addr", "add", HOST_IP + "/24", "dev", veth])
        sh(["ip", "link", "set", veth, "up"])
        sh(["ip", "-n", ns, "addr", "add", NET_IP + "/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        for argv in (["/usr/bin/python3", "-m", "http.server", "8080", "--bind", NET_IP],
                     ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                      "--bind-interfaces", f"--listen-address={NET_IP}", "--pid-file=",
                      "--user=root", f"--address=/test.example/{NET_IP}"]):
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns] + argv,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        yield ns
    finally:
        for p in procs:
            p.kill()
            p.wait()
        sh(["ip", "netns", "del", ns], check=False)
        sh(["ip", "link", "del", veth], check=False)


def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_publish_on_host(d, lan):
    """--publish on the host uplink (slirp4netns's API): by default the port listens on the
    host's loopback only, and connections from the host reach the cell from slirp's host
    address, 10.0.2.2; with a listen address it is offered to the network, and there each
    connection keeps its client's own address, so `from` tells clients apart."""
    port = free_loopback_port()

    def fetch(host, netns=None):
        argv = ["curl", "-s", "-o", "/dev/null", "--max-time", "3", "-w", "%{http_code}",
                f"http://{host}:{port}/"]
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        r = sh(argv, check=False)
        return "refused" if r.returncode == 7 else r.stdout

    inbound = 'default = "deny"\n[[allow]]\ndirection = "inbound"\nproto = "tcp"\nports = 8000\n'
    # (listen address, inbound rule's `from`, from the host's loopback, from the test LAN)
    cases = ((None, "10.0.2.2", "200", "refused"),    # loopback only: the LAN cannot connect
             (None, "127.0.0.1", "000", "refused"),   # the host's own address is not what the cell sees
             ("0.0.0.0", NET_IP, "000", "200"))       # offered to the LAN, filtered by client
    for listen, source, want_local, want_lan in cases:
        pf = Path(d.state, "pub.toml")
        pf.write_text(inbound + f'from = "{source}"\n')
        spec = f"{listen}:{port}:8000" if listen else f"{port}:8000"
        p = subprocess.Popen([str(CELLWALL), "--state-dir", d.state, "run", "--app", "pub",
                              "--policy", str(pf), "--publish", spec, "--",
                              "python3", "-m", "http.server", "8000", "--bind", "0.0.0.0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Wait for the forward (slirp listening on the host), then for the admitted side to
            # answer (the server starting), then check both sides.
            listen_at = "127.0.0.1" if listen is None else HOST_IP
            for _ in range(50):
                try:
                    socket.create_connection((listen_at, port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            admitted = ("127.0.0.1", None) if want_local == "200" else \
                (HOST_IP, lan) if want_lan == "200" else None
            for _ in range(30):
                if admitted is None or fetch(*admitted) == "200":
                    break
                time.sleep(0.3)
            got = (fetch("127.0.0.1"), fetch(HOST_IP, netns=lan))
            assert got == (want_local, want_lan), (spec, source, got, d.new_log()[-2000:])
        finally:
            p.terminate()
            _, err = p.communicate(timeout=30)
        where = f"0.0.0.0:{port}/tcp on the host" if listen else \
            f"127.0.0.1:{port}/tcp on the host (loopback only"
        assert f"published {where}" in err, err
        # The forward ends with its cell: nothing listens on the port any more.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_host_uplink_reaches_the_network_and_changes_nothing_on_the_host(lan):
    before = host_state()
    d = Daemon(None, config_text=f"""
[env.default]
pool = "10.200.0.0/16"
dns = ["{NET_IP}"]
[env.default.uplink]
kind = "host"
""")
    try:
        d.start()
        allow = f'default = "deny"\nresolve = "any"\n[[allow]]\nproto = "tcp"\nto = "{NET_IP}"\nports = 8080\n'
        cap = Capture(lan, "eth0", f"tcp port 8080 and src host {HOST_IP}")
        ok = d.run_cell(allow, ["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w",
                                "%{http_code}", "http://test.example:8080/"])
        assert ok.returncode == 0, (ok.stderr, d.new_log()[-3000:],
                                    sh(["ip", "-n", "cw-g-default", "route", "show", "table", "all"], check=False).stdout,
                                    sh(["ip", "-n", "cw-g-default", "rule"], check=False).stdout,
                                    sh(["ip", "netns", "exec", "cw-g-default", "nft", "list", "ruleset"], check=False).stdout,
                                    open(Path(d.state, "env", "default", "slirp4netns.log")).read()[-2000:])
        assert ok.stdout == "200"
        # The connection arrived from the host's own address: it left through the host.
        assert cap.count() > 0
        cap = Capture(lan, "eth0", "tcp port 8080")
        denied = d.run_cell('default = "deny"\n', ["curl", "-sS", "--max-time", "3",
                                                    f"http://{NET_IP}:8080/"])
        assert denied.returncode != 0
        assert cap.count() == 0
        check_publish_on_host(d, lan)
        # slirp4netns can forward to the host's loopback (10.0.2.2), where the web UI listens:
        # not for cells, even with a policy that allows everything.
        ui_port = int(d.ui_url().split("/")[2].rsplit(":", 1)[1])
        probe = d.run_cell('default = "allow"\n', ["curl", "-s", "-o", "/dev/null", "--max-time", "3", "-w",
                                                   "%{http_code}", f"http://10.0.2.2:{ui_port}/"])
        assert probe.stdout == "000" and probe.returncode != 0, (probe.stdout, probe.stderr)
        during = host_state()
        # The gateway is IPv4 only: no IPv6 address on any of its interfaces.
        v6 = sh(["ip", "-n", "cw-g-default", "-6", "addr", "show"]).stdout
        assert v6.strip() == "", v6
    finally:
        # Everything goes even when a check above failed: the daemon, what it left, its state.
        d.stop()
        ns, links, procs = leftovers()
        if ns or links or procs:
            d.force_cleanup()
        shutil.rmtree(d.state, ignore_errors=True)
    assert not ns and not links and not procs, (ns, links, procs)
    after = host_state()
    for name, state in (("during", during), ("after", after)):
        for key in before:
            diff = "\n".join(difflib.unified_diff(before[key].splitlines(), state[key].splitlines(),
                                                  "before", name, lineterm=""))
            assert not diff, f"host {key} changed:\n{diff}"
