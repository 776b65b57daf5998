"""Two sites that use the same private range, for end-to-end tests of VPN environments.

    lan  (cw-ts<t>l)                                     remote (cw-ts<t>r)
    the LOCAL site, also the "internet router"            the REMOTE site, behind its VPN servers
    cw-site: 192.168.11.5, .53                            cw-site: 192.168.11.5, .7, .53
      HTTP 192.168.11.5:80  -> "local 192.168.11.5"        HTTP .5:80 / .7:80 -> "remote <addr>"
      DNS  192.168.11.53: www.site.test -> .5,             DNS  .53: www.site.test -> .7,
           PTR 192.168.11.5 -> host5.local.test                 PTR 192.168.11.5 -> host5.remote.test
    cw-ts<t>a 172.31.0.1/30  ======= veth =======  cw-ts<t>b 172.31.0.2/30 (remote_public_ip)
    ip_forward=1, masquerade out of cw-ts<t>a              wireguard-go cw-ts<t>w: 10.66.0.1/24, :51820
                                                           openvpn      cw-ts<t>o: 10.67.0.0/24, :1194

Anything forwarded by lan (from a veth cellwall moves into lan_ns, or from a ClientNs) towards
the remote site's public address is masqueraded to 172.31.0.1, so the remote site needs no
route back. The remote site's 192.168.11.0/24 is reachable only through a tunnel.

Every namespace, interface and process carries the instance's tag cw-ts<t> in its name (the
processes in their command line), and close() removes all of it, even after a failed build.
"""
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import links, netns_list
from conftest import sh as _conftest_sh


def sh(cmd, check=True, timeout=60, **kw):
    """conftest's sh(), with the command's stderr in the error."""
    r = _conftest_sh([str(c) for c in cmd], check=False, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} -> {r.returncode}: {r.stderr.strip()}")
    return r

SITE_NET = "192.168.11.0/24"
HOST = "192.168.11.5"          # on both sites
REMOTE_ONLY_HOST = "192.168.11.7"
DNS = "192.168.11.53"          # on both sites
NAME = "www.site.test"
ANSWER = {"local": HOST, "remote": REMOTE_ONLY_HOST}          # what each site's DNS says NAME is
PTR = {"local": "host5.local.test", "remote": "host5.remote.test"}  # each site's name of HOST

LAN_PUBLIC_IP = "172.31.0.1"
REMOTE_PUBLIC_IP = "172.31.0.2"
WG_PORT = 51820
WG_SERVER_ADDR = "10.66.0.1/24"
WG_CLIENT_ADDR = "10.66.0.2/32"
OVPN_PORT = 1194
OVPN_NET = ("10.67.0.0", "255.255.255.0")

WG_SOCKET_DIR = Path("/run/wireguard")

# "<site> <local address it was reached on>\n" for any request, on each address given (port 80);
# one request per connection (Connection: close). Plain sockets: starts faster than http.server.
HTTP_SERVER = r"""
import socket, sys, threading
site, addrs = sys.argv[2], sys.argv[3:]
def serve(c):
    with c:
        c.settimeout(10)
        req = b""
        try:
            while b"\r\n\r\n" not in req:
                d = c.recv(4096)
                if not d:
                    return
                req += d
            body = ("%s %s\n" % (site, c.getsockname()[0])).encode()
            head = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                    "Connection: close\r\n\r\n" % len(body)).encode()
            c.sendall(head if req.startswith(b"HEAD ") else head + body)
        except OSError:
            pass
def loop(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
socks = []
for a in addrs:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a, 80))
    s.listen(128)
    socks.append(s)
for s in socks[1:]:
    threading.Thread(target=loop, args=(s,), daemon=True).start()
print("ready", flush=True)
loop(socks[0])
"""

# dns SERVER NAME TYPE TIMEOUT: one query over UDP; prints the answers (A/AAAA addresses, PTR
# and CNAME names), one per line; exits 2 on timeout, 3 on an error rcode (printed).
DNS_QUERY = r"""
import ipaddress, random, socket, struct, sys
server, name, qtype, timeout = sys.argv[1], sys.argv[2], sys.argv[3].upper(), float(sys.argv[4])
types = {"A": 1, "AAAA": 28, "PTR": 12, "CNAME": 5}
if qtype == "PTR" and not name.endswith(".arpa"):
    name = ipaddress.ip_address(name).reverse_pointer
def enc(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.rstrip(".").split(".")) + b"\0"
def dec(m, i):
    labels, end = [], None
    while True:
        n = m[i]
        if n == 0:
            return ".".join(labels), (end if end is not None else i + 1)
        if n & 0xC0 == 0xC0:
            if end is None:
                end = i + 2
            i = ((n & 0x3F) << 8) | m[i + 1]
            continue
        labels.append(m[i + 1:i + 1 + n].decode())
        i += n + 1
qid = random.randrange(65536)
q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + enc(name) + struct.pack("!HH", types[qtype], 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout)
s.sendto(q, (server, 53))
try:
    while True:
        m, _ = s.recvfrom(4096)
        if m[:2] == q[:2]:
            break
except socket.timeout:
    sys.exit(2)
_, flags, qd, an, _, _ = struct.unpack("!HHHHHH", m[:12])
if flags & 0xF:
    print("rcode", flags & 0xF)
    sys.exit(3)
i = 12
for _ in range(qd):
    i = dec(m, i)[1] + 4
for _ in range(an):
    i = dec(m, i)[1]
    rtype, _, _, rdlen = struct.unpack("!HHIH", m[i:i + 10])
    i += 10
    if rtype in (1, 28):
        print(ipaddress.ip_address(m[i:i + rdlen]))
    elif rtype in (5, 12):
        print(dec(m, i)[0])
    i += rdlen
"""


def ns_exec(ns, argv, **kw):
    """Runs argv in namespace ns (sh(): check=True unless told)."""
    return sh(["ip", "netns", "exec", ns] + list(argv), **kw)


def ip_batch(ns, commands):
    """Several `ip` commands in namespace ns, in one run."""
    r = _conftest_sh(["ip", "-n", ns, "-batch", "-"], check=False, input="\n".join(commands) + "\n")
    if r.returncode != 0:
        raise AssertionError(f"ip -n {ns} -batch: {r.stderr.strip()}\n" + "\n".join(commands))


def dns_query(ns, server, name, qtype="A", timeout=2.0):
    """One DNS query from namespace ns. The answers as a list of strings (addresses for A/AAAA,
    names for PTR/CNAME; PTR takes an address or an .arpa name); None when no answer came in
    `timeout` seconds; ["rcode N"] for an error answer."""
    r = ns_exec(ns, ["/usr/bin/python3", "-c", DNS_QUERY, server, name, qtype, str(timeout)],
                check=False, timeout=timeout + 10)
    if r.returncode == 2:
        return None
    if r.returncode not in (0, 3):
        raise AssertionError(f"dns query failed: {r.stderr}")
    return r.stdout.split("\n")[:-1] if r.stdout else []


def http_get(ns, url, timeout=2.0):
    """curl from namespace ns: the body, or None when the fetch failed."""
    r = ns_exec(ns, ["curl", "-s", "--fail", "--noproxy", "*", "--max-time", str(timeout), url],
                check=False, timeout=timeout + 10)
    return r.stdout if r.returncode == 0 else None


def wait_http(ns, url, timeout=10.0, step=0.2):
    """Fetches url until it answers; the body, or None after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        body = http_get(ns, url, timeout=min(1.0, max(0.2, deadline - time.time())))
        if body is not None or time.time() >= deadline:
            return body
        time.sleep(step)


def _stop(p, timeout=5):
    """SIGTERM, then SIGKILL after `timeout` seconds; waits for the process."""
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _wait_for(what, cond, proc=None, timeout=10.0, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.02)
    if cond():
        return
    detail = ""
    if log is not None and Path(log).exists():
        detail = "\n" + Path(log).read_text(errors="replace")[-4000:]
    state = f" (exited {proc.returncode})" if proc is not None and proc.poll() is not None else ""
    raise AssertionError(f"{what}: not ready in {timeout} s{state}{detail}")


def _unix_listening(path):
    """Whether a process accepts connections on the unix socket `path` (the file appears at
    bind(), a moment before listen())."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        try:
            c.connect(str(path))
            return True
        except OSError:
            return False


def _default_route(ns):
    """(gateway, device) of ns's IPv4 default route."""
    routes = json.loads(sh(["ip", "-n", ns, "-j", "-4", "route", "show", "default"]).stdout or "[]")
    if not routes or "gateway" not in routes[0]:
        raise AssertionError(f"{ns} has no default route via a gateway: {routes}")
    return routes[0]["gateway"], routes[0]["dev"]


def _log_has(path, text, offset=0):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return text.encode() in f.read()
    except FileNotFoundError:
        return False


def _size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


class Sites:
    """The two sites; a context manager (`with Sites() as s:`), or build() then close().

    openvpn=False: the OpenVPN server (and its PKI) is made only by start_openvpn().
    """

    LOCAL_DNS = DNS
    REMOTE_DNS = DNS
    NAME = NAME
    HOST = HOST
    REMOTE_ONLY_HOST = REMOTE_ONLY_HOST
    SITE_NET = SITE_NET
    WG_PORT = WG_PORT
    OVPN_PORT = OVPN_PORT

    def __init__(self, openvpn=True):
        self.want_openvpn = openvpn
        for _ in range(100):
            t = "%04x" % random.randrange(0x10000)
            tag = f"cw-ts{t}"
            if (not any(n.startswith(tag) for n in netns_list())
                    and not any(l.startswith(tag) for l in links())
                    and not list(WG_SOCKET_DIR.glob(tag + "*"))):
                break
        else:
            raise AssertionError("no free cw-ts tag")
        self.t = t
        self.tag = tag                       # every name of this instance starts with it
        self.lan_ns = tag + "l"
        self.remote_ns = tag + "r"
        self.lan_link = tag + "a"            # veth end in lan, towards remote
        self.remote_link = tag + "b"         # veth end in remote
        self.wg_ifname = tag + "w"           # wireguard-go's device in remote
        self.ovpn_ifname = tag + "o"         # openvpn's device in remote
        self.lan_public_ip = LAN_PUBLIC_IP
        self.remote_public_ip = REMOTE_PUBLIC_IP
        self.dir = None                      # temp dir cw-ts<t>-*: keys, PKI, configs, logs
        self._namespaces = []
        self._procs = []                     # site servers (HTTP, dnsmasq)
        self.wg_proc = None
        self.ovpn_proc = None
        self._wg_keys = None                 # (server priv, server pub, client priv, client pub)
        self._wg_endpoint = None             # the client's endpoint as the last server saw it
        self._pki = None
        self._clients = []                   # ClientNs and bare clients, closed first (newest first)
        self._counter = 0

    # ---- life cycle -------------------------------------------------------------------

    def __enter__(self):
        self.build()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def build(self):
        """Makes everything; on failure removes what it made and raises."""
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self):
        self.dir = tempfile.mkdtemp(prefix=self.tag + "-")
        for ns in (self.lan_ns, self.remote_ns):
            sh(["ip", "netns", "add", ns])
            self._namespaces.append(ns)
        sh(["ip", "link", "add", self.lan_link, "netns", self.lan_ns, "type", "veth",
            "peer", "name", self.remote_link, "netns", self.remote_ns])
        # The site's hosts are addresses on cw-site. A veth whose peer (cw-site-p) is up in the
        # same namespace stands in for a dummy device (this kernel has no dummy module): up,
        # with carrier, a 192.168.11.0/24 route, and its other addresses unanswered.
        sites = {self.lan_ns: ("local", self.lan_link, LAN_PUBLIC_IP, [HOST, DNS]),
                 self.remote_ns: ("remote", self.remote_link, REMOTE_PUBLIC_IP, [HOST, REMOTE_ONLY_HOST, DNS])}
        for ns, (site, link, public, addrs) in sites.items():
            ip_batch(ns, ["link add cw-site type veth peer name cw-site-p"])
            sysctls = [f"net.ipv6.conf.{l}.disable_ipv6=1" for l in (link, "cw-site", "cw-site-p")]
            if ns == self.lan_ns:
                # lan is the internet router: it forwards anything, and masquerades what goes
                # to the remote site (below), whatever the source.
                sysctls.append("net.ipv4.ip_forward=1")
            ns_exec(ns, ["sysctl", "-q", "-w"] + sysctls)
            ip_batch(ns, ["link set lo up", f"addr add {public}/30 dev {link}", f"link set {link} up",
                          "link set cw-site-p up"]
                     + [f"addr add {a}/24 dev cw-site" for a in addrs] + ["link set cw-site up"])
        nft = Path(self.dir, "lan.nft")
        nft.write_text(f"""table ip cw_sites {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{self.lan_link}" masquerade
    }}
}}
""")
        ns_exec(self.lan_ns, ["nft", "-f", str(nft)])
        http = []
        for ns, (site, _, _, addrs) in sites.items():
            http.append((site, self.spawn(ns, ["/usr/bin/python3", "-c", HTTP_SERVER, f"{self.tag}-http", site]
                                          + [a for a in addrs if a != DNS], stdout=subprocess.PIPE)))
            self.spawn(ns, ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                            "--bind-interfaces", f"--listen-address={DNS}", "--pid-file=", "--user=root",
                            "--conf-file=/dev/null", "--log-queries", f"--log-facility={self.dns_log(site)}",
                            f"--address=/{NAME}/{ANSWER[site]}", f"--host-record={PTR[site]},{HOST}"])
        for site, p in http:
            ready, _, _ = select.select([p.stdout], [], [], 10)
            if b"ready" not in (p.stdout.readline() if ready else b""):
                raise AssertionError(f"HTTP server of the {site} site did not start (exit {p.poll()})")
        for ns, (site, _, _, _) in sites.items():
            self._wait_dns(ns, ANSWER[site])
        self.start_wireguard()
        if self.want_openvpn:
            self.start_openvpn()

    def _wait_dns(self, ns, answer):
        _wait_for(f"dnsmasq in {ns}",
                  lambda: dns_query(ns, DNS, NAME, timeout=0.3) == [answer], timeout=10)

    def dns_log(self, site):
        """The query log of a site's DNS server ("local" or "remote"): see who asked what."""
        return str(Path(self.dir, f"dnsmasq-{site}.log"))

    def spawn(self, ns, argv, log=None, stdout=None, env=None):
        """A process in ns that close() stops. Its command line should carry self.tag."""
        out = open(log, "ab") if log else (stdout or subprocess.DEVNULL)
        try:
            p = subprocess.Popen(["ip", "netns", "exec", ns] + list(argv), stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                                 env=env)
        finally:
            if log:
                out.close()
        self._procs.append(p)
        return p

    def close(self):
        """Removes everything, bare clients and ClientNs still open included; safe to call again."""
        errors = []
        for c in reversed(list(self._clients)):
            try:
                c.close()
            except Exception as e:  # keep going: the rest must go too
                errors.append(e)
        for step in (self.stop_openvpn, self.stop_wireguard):
            try:
                step()
            except Exception as e:
                errors.append(e)
        for p in self._procs:
            _stop(p)
            if p.stdout:
                p.stdout.close()
        self._procs = []
        for ns in self._namespaces:
            sh(["ip", "netns", "del", ns], check=False)
        self._namespaces = []
        for sock in WG_SOCKET_DIR.glob(self.tag + "*.sock"):
            sock.unlink(missing_ok=True)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        if errors:
            raise errors[0]

    def _name(self, kind):
        self._counter += 1
        return f"{self.tag}{kind}{self._counter}"

    # ---- WireGuard ---------------------------------------------------------------------

    def _keys(self):
        if self._wg_keys is None:
            keys = []
            for _ in range(2):
                priv = sh(["wg", "genkey"]).stdout.strip()
                keys += [priv, sh(["wg", "pubkey"], input=priv + "\n").stdout.strip()]
            self._wg_keys = tuple(keys)
        return self._wg_keys

    def wireguard_client_config(self):
        """A wg-quick style client file (Address and DNS included) for the remote site."""
        _, server_pub, client_priv, _ = self._keys()
        return f"""[Interface]
PrivateKey = {client_priv}
Address = {WG_CLIENT_ADDR}
DNS = {DNS}

[Peer]
PublicKey = {server_pub}
Endpoint = {REMOTE_PUBLIC_IP}:{WG_PORT}
AllowedIPs = 0.0.0.0/0
PersistentKeepalive = 25
"""

    def wireguard_running(self):
        return self.wg_proc is not None and self.wg_proc.poll() is None

    def start_wireguard(self, reach_out=True):
        """Starts wireguard-go in remote with the same keys as before.

        reach_out: if a client had connected before stop_wireguard(), the new server is given
        that client's last endpoint, so it starts the handshake itself at once. Without it a
        client only notices after WireGuard's own timeout (about 15 s after it sent data)."""
        if self.wireguard_running():
            return
        server_priv, _, _, client_pub = self._keys()
        sock = WG_SOCKET_DIR / f"{self.wg_ifname}.sock"
        sock.unlink(missing_ok=True)   # a stale socket of ours would make `wg` talk to nobody
        conf = Path(self.dir, "wg-server.conf")
        peer = f"[Peer]\nPublicKey = {client_pub}\nAllowedIPs = {WG_CLIENT_ADDR}\n"
        if reach_out and self._wg_endpoint:
            peer += f"Endpoint = {self._wg_endpoint}\nPersistentKeepalive = 25\n"
        conf.write_text(f"[Interface]\nPrivateKey = {server_priv}\nListenPort = {WG_PORT}\n\n{peer}")
        conf.chmod(0o600)
        log = Path(self.dir, "wireguard-go-server.log")
        self.wg_proc = self._spawn_wireguard_go(self.remote_ns, self.wg_ifname, log)
        ns_exec(self.remote_ns, ["wg", "setconf", self.wg_ifname, str(conf)])
        sh(["ip", "-n", self.remote_ns, "addr", "add", WG_SERVER_ADDR, "dev", self.wg_ifname])
        sh(["ip", "-n", self.remote_ns, "link", "set", self.wg_ifname, "up"])

    def _spawn_wireguard_go(self, ns, ifname, log):
        env = dict(os.environ, LOG_LEVEL="verbose", WG_PROCESS_FOREGROUND="1")
        with open(log, "ab") as out:
            p = subprocess.Popen(["ip", "netns", "exec", ns, "wireguard-go", "-f", ifname],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        sock = WG_SOCKET_DIR / f"{ifname}.sock"
        try:
            _wait_for(f"wireguard-go {ifname}", lambda: _unix_listening(sock), proc=p, timeout=10, log=log)
        except BaseException:
            _stop(p)
            sock.unlink(missing_ok=True)
            raise
        return p

    def stop_wireguard(self):
        """Stops the WireGuard server (its device goes away with it)."""
        if self.wg_proc is None:
            return
        if self.wg_proc.poll() is None:
            r = ns_exec(self.remote_ns, ["wg", "show", self.wg_ifname, "endpoints"], check=False)
            for line in r.stdout.splitlines():
                f = line.split()
                if len(f) == 2 and f[1] != "(none)":
                    self._wg_endpoint = f[1]
        _stop(self.wg_proc)
        self.wg_proc = None
        (WG_SOCKET_DIR / f"{self.wg_ifname}.sock").unlink(missing_ok=True)

    def wireguard_handshakes(self):
        """`wg show <server> latest-handshakes` in remote (peer key -> unix time, 0: none)."""
        r = ns_exec(self.remote_ns, ["wg", "show", self.wg_ifname, "latest-handshakes"], check=False)
        return {l.split()[0]: int(l.split()[1]) for l in r.stdout.splitlines() if len(l.split()) == 2}

    # ---- OpenVPN -----------------------------------------------------------------------

    def _make_pki(self):
        """An EC (prime256v1) CA, a server and a client certificate, in <dir>/pki."""
        if self._pki is not None:
            return self._pki
        d = Path(self.dir, "pki")
        d.mkdir(mode=0o700)
        cnf = d / "openssl.cnf"
        cnf.write_text("""[req]
distinguished_name = dn
prompt = no
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
""")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        sh(["openssl", "req", "-x509", "-new"] + ec + ["-keyout", d / "ca.key", "-out", d / "ca.crt",
            "-subj", f"/CN={self.tag}-ca", "-days", "30", "-config", cnf, "-extensions", "ca_ext"])
        for i, who in enumerate(("server", "client")):
            sh(["openssl", "req", "-new"] + ec + ["-keyout", d / f"{who}.key", "-out", d / f"{who}.csr",
                "-subj", f"/CN={self.tag}-{who}", "-config", cnf])
            sh(["openssl", "x509", "-req", "-in", d / f"{who}.csr", "-CA", d / "ca.crt",
                "-CAkey", d / "ca.key", "-set_serial", str(i + 2), "-days", "30", "-out", d / f"{who}.crt",
                "-extfile", cnf, "-extensions", f"{who}_ext"])
        self._pki = d
        return d

    def openvpn_client_config(self):
        """A complete client file (TLS, inline CA/cert/key) for the remote site."""
        d = self._make_pki()
        return f"""client
dev tun
proto udp
remote {REMOTE_PUBLIC_IP} {OVPN_PORT}
nobind
remote-cert-tls server
verb 3
<ca>
{(d / "ca.crt").read_text().strip()}
</ca>
<cert>
{(d / "client.crt").read_text().strip()}
</cert>
<key>
{(d / "client.key").read_text().strip()}
</key>
"""

    def openvpn_log(self):
        return str(Path(self.dir, "openvpn-server.log"))

    def openvpn_running(self):
        return self.ovpn_proc is not None and self.ovpn_proc.poll() is None

    def start_openvpn(self):
        """Starts the OpenVPN server (making the PKI the first time); returns once it logs
        "Initialization Sequence Completed"."""
        if self.openvpn_running():
            return
        d = self._make_pki()
        log = self.openvpn_log()
        offset = _size(log)
        self.ovpn_proc = subprocess.Popen(
            ["ip", "netns", "exec", self.remote_ns, "openvpn",
             "--dev", self.ovpn_ifname, "--dev-type", "tun", "--topology", "subnet",
             "--server", *OVPN_NET, "--proto", "udp4", "--local", REMOTE_PUBLIC_IP,
             "--port", str(OVPN_PORT), "--ca", str(d / "ca.crt"), "--cert", str(d / "server.crt"),
             "--key", str(d / "server.key"), "--dh", "none",
             "--push", f"dhcp-option DNS {DNS}", "--keepalive", "2", "10",
             # Tell the clients when the server stops, so they reconnect at once after a
             # start_openvpn() instead of after ping-restart (10 s).
             "--explicit-exit-notify", "1",
             "--duplicate-cn", "--disable-dco", "--verb", "3", "--log-append", log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for("openvpn server", lambda: _log_has(log, "Initialization Sequence Completed", offset),
                      proc=self.ovpn_proc, timeout=15, log=log)
        except BaseException:
            self.stop_openvpn()
            raise

    def stop_openvpn(self, notify=True):
        """Stops the OpenVPN server. notify=True: it tells its clients to restart
        (explicit-exit-notify: they reconnect as soon as it is back); notify=False: SIGKILL, a
        crash they notice only by ping-restart (10 s)."""
        p = self.ovpn_proc
        if p is None:
            return
        self.ovpn_proc = None
        if p.poll() is not None:
            return
        if not notify:
            p.kill()
            p.wait()
            return
        # On SIGTERM it sends RESTART to the clients at once, then waits 2 s for their
        # acknowledgements; a second SIGTERM ends that wait.
        offset = _size(self.openvpn_log())
        p.send_signal(signal.SIGTERM)
        deadline = time.time() + 0.5
        while time.time() < deadline and p.poll() is None and not _log_has(self.openvpn_log(), "'RESTART'", offset):
            time.sleep(0.02)
        time.sleep(0.05)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        _stop(p, timeout=10)


class ClientNs:
    """A hand-made client: namespace cw-ts<t>c<i> joined to lan by a veth, 10.254.200.<4i+2>/30
    with lan's side .<4i+1>, default route via lan. A context manager; close() removes it."""

    def __init__(self, sites, index=0):
        assert 0 <= index < 64
        self.sites = sites
        self.ns = f"{sites.tag}c{index}"
        self.link = self.ns + "c"         # in the client
        self.lan_link = self.ns + "l"     # in lan
        self.ip = f"10.254.200.{4 * index + 2}"
        self.gateway = f"10.254.200.{4 * index + 1}"
        self.made = False
        sites._clients.append(self)
        try:
            sh(["ip", "netns", "add", self.ns])
            self.made = True
            sh(["ip", "-n", self.ns, "link", "set", "lo", "up"])
            sh(["ip", "link", "add", self.link, "netns", self.ns, "type", "veth",
                "peer", "name", self.lan_link, "netns", sites.lan_ns])
            for ns, link, addr in ((self.ns, self.link, self.ip), (sites.lan_ns, self.lan_link, self.gateway)):
                ns_exec(ns, ["sysctl", "-q", "-w", f"net.ipv6.conf.{link}.disable_ipv6=1"])
                sh(["ip", "-n", ns, "addr", "add", addr + "/30", "dev", link])
                sh(["ip", "-n", ns, "link", "set", link, "up"])
            sh(["ip", "-n", self.ns, "route", "add", "default", "via", self.gateway])
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def exec(self, argv, **kw):
        return ns_exec(self.ns, argv, **kw)

    def get(self, url, timeout=2.0):
        return http_get(self.ns, url, timeout)

    def dns(self, name, qtype="A", server=DNS, timeout=2.0):
        return dns_query(self.ns, server, name, qtype, timeout)

    def close(self):
        if self.made:
            # Deleting the namespace deletes the veth pair; lan's end could outlive it only
            # if the namespace were kept alive by a process, so delete it by name too.
            sh(["ip", "-n", self.sites.lan_ns, "link", "del", self.lan_link], check=False)
            sh(["ip", "netns", "del", self.ns], check=False)
            self.made = False
        if self in self.sites._clients:
            self.sites._clients.remove(self)


class _BareClient:
    """Common part: a tunnel set up by hand in a caller's namespace; close() undoes it."""

    def __init__(self, sites, ns):
        self.sites = sites
        self.ns = ns
        self.proc = None
        self.ifname = None
        self.gateway, self.carrier = _default_route(ns)
        self._routed = False
        sites._clients.append(self)

    def _route(self):
        """Endpoint /32 via the original next hop, default route through the tunnel."""
        sh(["ip", "-n", self.ns, "route", "replace", f"{REMOTE_PUBLIC_IP}/32", "via", self.gateway,
            "dev", self.carrier])
        self._routed = True
        sh(["ip", "-n", self.ns, "route", "replace", "default", "dev", self.ifname])

    def close(self):
        if self._routed:
            sh(["ip", "-n", self.ns, "route", "replace", "default", "via", self.gateway,
                "dev", self.carrier], check=False)
            sh(["ip", "-n", self.ns, "route", "del", f"{REMOTE_PUBLIC_IP}/32"], check=False)
            self._routed = False
        _stop(self.proc)
        self.proc = None
        self._cleanup()
        if self in self.sites._clients:
            self.sites._clients.remove(self)

    def _cleanup(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class BareWireguardClient(_BareClient):
    def __init__(self, sites, ns):
        super().__init__(sites, ns)
        try:
            self.ifname = sites._name("g")
            self.log = Path(sites.dir, f"{self.ifname}.log")
            self.proc = sites._spawn_wireguard_go(ns, self.ifname, self.log)
            # wg setconf takes the file without wg-quick's keys (Address, DNS): apply them here.
            lines = [l for l in sites.wireguard_client_config().splitlines()
                     if not l.split("=")[0].strip() in ("Address", "DNS")]
            conf = Path(sites.dir, f"{self.ifname}.conf")
            conf.write_text("\n".join(lines) + "\n")
            conf.chmod(0o600)
            ns_exec(ns, ["wg", "setconf", self.ifname, str(conf)])
            sh(["ip", "-n", ns, "addr", "add", WG_CLIENT_ADDR, "dev", self.ifname])
            sh(["ip", "-n", ns, "link", "set", self.ifname, "up"])
            self._route()
        except BaseException:
            self.close()
            raise

    def _cleanup(self):
        if self.ifname:
            (WG_SOCKET_DIR / f"{self.ifname}.sock").unlink(missing_ok=True)


class BareOpenvpnClient(_BareClient):
    def __init__(self, sites, ns, timeout=15):
        super().__init__(sites, ns)
        try:
            if not sites.openvpn_running():
                raise AssertionError("the OpenVPN server is not running (Sites(openvpn=True) or start_openvpn())")
            self.ifname = sites._name("p")
            self.log = str(Path(sites.dir, f"{self.ifname}.log"))
            conf = Path(sites.dir, f"{self.ifname}.ovpn")
            conf.write_text(sites.openvpn_client_config())
            conf.chmod(0o600)
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "openvpn", "--config", str(conf),
                 "--dev", self.ifname, "--dev-type", "tun", "--disable-dco",
                 # Keep the device (and the routes through it) across reconnects.
                 "--persist-tun",
                 # Reconnect quickly when the server is back.
                 "--connect-retry", "1", "1", "--server-poll-timeout", "1",
                 "--log-append", self.log],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_for("openvpn client", lambda: _log_has(self.log, "Initialization Sequence Completed"),
                      proc=self.proc, timeout=timeout, log=self.log)
            self._route()
        except BaseException:
            self.close()
            raise


def bare_wireguard_client(sites, ns):
    """Makes namespace ns (the caller's, with a default route via lan) a WireGuard client of the
    remote site by hand: wireguard-go device cw-ts<t>g<n> with 10.66.0.2/32, the default route
    through it, the server's /32 via the original next hop. close() undoes it."""
    return BareWireguardClient(sites, ns)


def bare_openvpn_client(sites, ns, timeout=15):
    """Same with openvpn (device cw-ts<t>p<n>, address pushed by the server, 10.67.0.x/24);
    returns once connected. The OpenVPN server must be running."""
    return BareOpenvpnClient(sites, ns, timeout)
