"""The default environment for desktops: the gateway reaches the network through the host's own
connectivity (user-mode networking, slirp4netns), and nothing on the host — routes, rules,
nftables, resolv.conf, forwarding — is changed.

The "network" here is a namespace the test creates and connects to the root namespace with a
veth of its own, so traffic never leaves the machine."""
import difflib
import shutil
import random
import subprocess
import time

import pytest

from conftest import Capture, Daemon, leftovers, sh

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
        allow = f'default = "deny"\n[[allow]]\nproto = "tcp"\nto = "{NET_IP}"\nports = 8080\n'
        cap = Capture(lan, "eth0", f"tcp port 8080 and src host {HOST_IP}")
        ok = d.run_cell(allow, ["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w",
                                "%{http_code}", "http://test.example:8080/"])
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == "200"
        # The connection arrived from the host's own address: it left through the host.
        assert cap.count() > 0
        cap = Capture(lan, "eth0", "tcp port 8080")
        denied = d.run_cell('default = "deny"\n', ["curl", "-sS", "--max-time", "3",
                                                    f"http://{NET_IP}:8080/"])
        assert denied.returncode != 0
        assert cap.count() == 0
        during = host_state()
    finally:
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
