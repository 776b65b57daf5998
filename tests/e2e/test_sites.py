"""The two-sites fixture of sites.py, checked with hand-made clients (no cellwall here): a
client namespace joined to lan reaches the local site directly, and the remote site (same
addresses, other answers) through WireGuard or OpenVPN set up by hand."""
import tempfile
import time
from pathlib import Path

import pytest

from conftest import links, netns_list, sh
from sites import (HOST, NAME, PTR, REMOTE_ONLY_HOST, WG_SOCKET_DIR, ClientNs, Sites,
                   bare_openvpn_client, bare_wireguard_client, wait_http)

URL = f"http://{HOST}/"
URL7 = f"http://{REMOTE_ONLY_HOST}/"


@pytest.fixture(scope="module")
def sites():
    # OpenVPN lazily: only the OpenVPN test starts it.
    with Sites(openvpn=False) as s:
        yield s


@pytest.fixture
def client(sites):
    with ClientNs(sites) as c:
        yield c


def routes(ns):
    return sh(["ip", "-n", ns, "-4", "route", "show"]).stdout


def check_remote(client):
    assert client.get(URL) == "remote 192.168.11.5\n"
    assert client.get(URL7) == "remote 192.168.11.7\n"
    assert client.dns(NAME) == [REMOTE_ONLY_HOST]
    assert client.dns(HOST, "PTR") == [PTR["remote"]]


def test_local_site_without_tunnel(sites, client):
    assert client.get(URL) == "local 192.168.11.5\n"
    assert client.dns(NAME) == [HOST]
    assert client.dns(HOST, "PTR") == [PTR["local"]]
    assert client.dns("nothing.test") == ["rcode 5"]   # refused at once, not a timeout
    # 192.168.11.7 exists only at the remote site.
    assert client.get(URL7, timeout=0.5) is None


def test_remote_site_over_wireguard(sites, client):
    before = routes(client.ns)
    conf = sites.wireguard_client_config()
    assert "Address = 10.66.0.2/32" in conf and "DNS = 192.168.11.53" in conf
    assert f"Endpoint = {sites.remote_public_ip}:51820" in conf
    with bare_wireguard_client(sites, client.ns) as wg:
        assert wg.ifname.startswith(sites.tag)
        check_remote(client)
        # The tunnel's own packets leave by the veth, everything else by the tunnel.
        assert f"dev {client.link}" in sh(["ip", "-n", client.ns, "route", "get", sites.remote_public_ip]).stdout
        assert f"dev {wg.ifname}" in sh(["ip", "-n", client.ns, "route", "get", HOST]).stdout

        sites.stop_wireguard()
        assert not list(WG_SOCKET_DIR.glob(sites.wg_ifname + ".sock"))
        assert client.get(URL, timeout=0.5) is None
        sites.start_wireguard()
        assert wait_http(client.ns, URL, timeout=5) == "remote 192.168.11.5\n"
        assert client.dns(NAME) == [REMOTE_ONLY_HOST]
    # Closed: the local site again, routes as they were, device and socket gone.
    assert routes(client.ns) == before
    assert client.get(URL) == "local 192.168.11.5\n"
    assert not list(WG_SOCKET_DIR.glob(wg.ifname + "*"))


def test_remote_site_over_openvpn(sites, client):
    """The slower one (about 3 s): PKI, server start, a TLS handshake, a reconnect."""
    before = routes(client.ns)
    sites.start_openvpn()
    conf = sites.openvpn_client_config()
    for line in ("client", "dev tun", "proto udp", f"remote {sites.remote_public_ip} 1194", "nobind",
                 "remote-cert-tls server", "<ca>", "<cert>", "<key>"):
        assert line in conf.splitlines()
    with bare_openvpn_client(sites, client.ns) as ovpn:
        check_remote(client)
        assert f"dev {ovpn.ifname}" in sh(["ip", "-n", client.ns, "route", "get", HOST]).stdout

        sites.stop_openvpn()
        assert client.get(URL, timeout=0.5) is None
        sites.start_openvpn()
        assert wait_http(client.ns, URL, timeout=8) == "remote 192.168.11.5\n"
    assert routes(client.ns) == before
    assert client.get(URL) == "local 192.168.11.5\n"


def leftovers(tag):
    return {
        "netns": [n for n in netns_list() if n.startswith(tag)],
        "links": [l for l in links(tag)],
        "procs": sh(["pgrep", "-a", "-f", tag], check=False).stdout.strip(),
        "sockets": [str(p) for p in WG_SOCKET_DIR.glob(tag + "*")],
        "dirs": [str(p) for p in Path(tempfile.gettempdir()).glob(tag + "*")],
    }


NOTHING = {"netns": [], "links": [], "procs": "", "sockets": [], "dirs": []}


def test_close_removes_everything():
    s = Sites(openvpn=True).build()
    try:
        c0, c1 = ClientNs(s, 0), ClientNs(s, 1)
        bare_wireguard_client(s, c0.ns)
        bare_openvpn_client(s, c1.ns)
        assert leftovers(s.tag)["procs"].count("\n") >= 7   # 2 HTTP, 2 dnsmasq, 2 wg-go, 2 openvpn
    finally:
        s.close()   # with the clients still open
    assert leftovers(s.tag) == NOTHING
    s.close()       # again: nothing to do


def test_failed_build_cleans_up():
    class Broken(Sites):
        def start_wireguard(self, reach_out=True):
            super().start_wireguard(reach_out)
            raise RuntimeError("injected")

    s = Broken(openvpn=True)
    t = time.time()
    with pytest.raises(RuntimeError, match="injected"):
        with s:
            pass
    assert leftovers(s.tag) == NOTHING
    assert time.time() - t < 10
