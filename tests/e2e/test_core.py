"""The core promise: a cell reaches only what its policy allows, nothing else gets past the
switch, and the switch stays closed when the controller is gone."""
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import CELLWALL, GATEWAY_IP, TESTHOST_IP, sh

ALLOW_WEB = f"""
default = "deny"
[[allow]]
proto = "tcp"
to = "{TESTHOST_IP}"
ports = 8080
"""
ALLOW_ALL_TO_HOST = f"""
default = "deny"
[[allow]]
to = "{TESTHOST_IP}"
"""
DENY_ALL = 'default = "deny"\n'
CURL = ["curl", "-sS", "--max-time", "4", f"http://{TESTHOST_IP}:8080/index.html"]
UDP = ["/usr/bin/python3", "-c",
       "import socket,sys\n"
       "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3)\n"
       f"s.sendto(b'ping',('{TESTHOST_IP}',5353))\n"
       "try: print(s.recvfrom(100)[0].decode())\n"
       "except OSError as e: print('udp failed', e); sys.exit(1)\n"]
PING = ["ping", "-c", "1", "-W", "2", TESTHOST_IP]


def test_allowed_tcp_reaches_the_server(mdaemon):
    r = mdaemon.run_cell(ALLOW_WEB, CURL)
    assert r.returncode == 0, r.stderr
    assert "hello from the test host" in r.stdout


def test_denied_tcp_never_leaves_the_gateway(mdaemon, module_testhost):
    cap = module_testhost.capture("tcp port 8080")
    r = mdaemon.run_cell(DENY_ALL, CURL)
    assert r.returncode != 0
    assert "hello" not in r.stdout
    assert cap.count() == 0


def test_capture_sees_allowed_traffic(mdaemon, module_testhost):
    # The capture used to prove "nothing got out" must see what does get out.
    cap = module_testhost.capture("tcp port 8080")
    r = mdaemon.run_cell(ALLOW_WEB, CURL)
    assert r.returncode == 0, r.stderr
    assert cap.count() > 0


def test_udp_allowed_and_denied(mdaemon, module_testhost):
    ok = mdaemon.run_cell(ALLOW_ALL_TO_HOST, UDP)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "echo:ping" in ok.stdout
    cap = module_testhost.capture("udp port 5353")
    denied = mdaemon.run_cell(DENY_ALL, UDP)
    assert denied.returncode != 0
    assert cap.count() == 0


def test_icmp_allowed_and_denied(mdaemon, module_testhost):
    ok = mdaemon.run_cell(ALLOW_ALL_TO_HOST, PING)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    cap = module_testhost.capture("icmp")
    denied = mdaemon.run_cell(DENY_ALL, PING)
    assert denied.returncode != 0
    assert cap.count() == 0


def test_port_rule_is_exact(mdaemon):
    # Allowed: tcp 8080 only. The UDP echo on the same host stays out of reach.
    r = mdaemon.run_cell(ALLOW_WEB, UDP)
    assert r.returncode != 0


def test_reject_answers_at_once(mdaemon):
    policy = f'default = "deny"\n[[rule]]\naction = "reject"\nto = "{TESTHOST_IP}"\n'
    t0 = time.time()
    r = mdaemon.run_cell(policy, ["curl", "-sS", "--max-time", "10", f"http://{TESTHOST_IP}:8080/"])
    elapsed = time.time() - t0
    assert r.returncode == 7, r.stderr  # curl: connection refused (TCP RST)
    assert elapsed < 8  # not the 10 s timeout a silent drop would cost


def test_dns_goes_to_the_environment_resolver(mdaemon):
    r = mdaemon.run_cell(DENY_ALL, ["cat", "/etc/resolv.conf"])
    assert r.returncode == 0
    assert f"nameserver {GATEWAY_IP}" in r.stdout


def test_names_resolve_through_the_environment(mdaemon):
    # resolve = "any": every name, as under default = "allow" (a default-deny cell resolves only
    # the names its rules name: test_resolve.py).
    r = mdaemon.run_cell(DENY_ALL + 'resolve = "any"\n', ["getent", "hosts", "test.example"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == TESTHOST_IP


def test_bad_policy_is_rejected_with_its_line(mdaemon):
    r = mdaemon.run_cell('default = "deny"\n[[allow]]\nto = "10.0.0.0/33"\n', ["true"])
    assert r.returncode != 0
    assert ":3:" in r.stderr, r.stderr
    assert mdaemon.cells() == []


def test_exit_status_is_relayed_and_cell_removed(mdaemon):
    r = mdaemon.run_cell(DENY_ALL, ["sh", "-c", "exit 42"])
    assert r.returncode == 42
    assert mdaemon.cells() == []
    assert not [n for n in sh(["ip", "netns", "list"]).stdout.split() if n.startswith("cw-c")]


def _cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            dev, where, kind = line.split()[:3]
            if kind == "cgroup2":
                return where
    return None


def _running(pid):
    """pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_what_the_app_leaves_running_ends_with_its_cell(mdaemon):
    # CMD exits at once, leaving a child in the background: the child is killed with the cell,
    # and the cell's cgroup is removed.
    r = mdaemon.run_cell(DENY_ALL, ["sh", "-c", "grep '^0::' /proc/self/cgroup; sleep 300 >/dev/null 2>&1 & echo $!"])
    assert r.returncode == 0, r.stderr
    cgroup_line, pid = r.stdout.split()
    mount = _cgroup2_mount()
    assert mount is not None
    cgroup = mount + cgroup_line[len("0::"):]
    assert "/cellwall/cw-c" in cgroup, cgroup

    def alive():
        return _running(pid)

    deadline = time.time() + 3
    while alive() and time.time() < deadline:
        time.sleep(0.05)
    if alive():
        os.kill(int(pid), signal.SIGKILL)  # the test's own leftover: never left running
        time.sleep(0.5)
        if os.path.isdir(cgroup):
            os.rmdir(cgroup)
        raise AssertionError(f"the app's background child {pid} outlived its cell")
    assert not os.path.exists(cgroup), cgroup
    assert "warning" not in r.stderr, r.stderr


def test_a_killed_launcher_takes_its_apps_processes_with_it(mdaemon):
    # `cellwall run` killed with SIGKILL cannot clean up: cellwalld notices its launcher is
    # gone, removes the cell and kills what ran in it.
    p, cell = mdaemon.start_cell(DENY_ALL, ["sh", "-c", "grep '^0::' /proc/self/cgroup; exec sleep 300"],
                                 app="orphan")
    cgroup_line = p.stdout.readline().strip()
    mount = _cgroup2_mount()
    cgroup = mount + cgroup_line[len("0::"):]
    assert "/cellwall/" + cell["netns"] in cgroup, cgroup
    with open(cgroup + "/cgroup.procs") as f:
        pids = [int(x) for x in f.read().split()]
    assert pids, "the app is not in its cell's cgroup"
    p.kill()
    p.communicate()
    deadline = time.time() + 10
    while os.path.exists(cgroup) and time.time() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in pids if _running(pid)]
    for pid in survivors:  # the test's own leftover: never left running
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"{survivors} outlived their cell"
    assert not os.path.exists(cgroup), cgroup
    assert not [c for c in mdaemon.cells() if c["app"] == "orphan"]


def test_app_runs_unprivileged(mdaemon):
    r = mdaemon.run_cell(DENY_ALL, ["sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "65534"
    assert "CapEff:\t0000000000000000" in r.stdout
    assert "NoNewPrivs:\t1" in r.stdout


def test_the_cell_sees_its_own_interfaces_in_sys(mdaemon):
    # /sys/class/net is the cell's namespace's, not the host's (where cw-br0 is); the cgroup
    # tree under /sys/fs is still there for runtimes that read their limits.
    r = mdaemon.run_cell(DENY_ALL, ["sh", "-c", "ls /sys/class/net; echo --; ls /sys/fs/cgroup"])
    assert r.returncode == 0, r.stderr
    net, cgroup = r.stdout.split("--\n")
    assert sorted(net.split()) == ["eth0", "lo"], r.stdout
    assert sorted(cgroup.split()) == sorted(os.listdir("/sys/fs/cgroup")), r.stdout
    assert cgroup.split(), "the host has a cgroup tree: the cell must see it"
    assert "cw-br0" in os.listdir("/sys/class/net")  # the host's view, for contrast


def test_gateway_services_are_not_reachable(mdaemon, module_testhost):
    # A listener in the gateway namespace stands in for any host-side service.
    gw_ns = "cw-g-default"
    listener = subprocess.Popen(["ip", "netns", "exec", gw_ns, "/usr/bin/python3", "-m", "http.server",
                                 "8081", "--bind", GATEWAY_IP], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        allow_all = 'default = "allow"\n'
        r = mdaemon.run_cell(allow_all, ["curl", "-sS", "--max-time", "3", f"http://{GATEWAY_IP}:8081/"])
        assert r.returncode != 0
        # ...while the same policy does reach the test host: the refusal is the gateway rule.
        ok = mdaemon.run_cell(allow_all, CURL)
        assert ok.returncode == 0, ok.stderr
    finally:
        listener.kill()
        listener.wait()


def env_in_cell(d, env, run_args=(), policy=DENY_ALL, app="envapp"):
    """`env` as a cell's command sees it, run by a caller whose environment is `env`."""
    pf = Path(d.state, f"{app}.toml")
    pf.write_text(policy)
    r = sh([str(CELLWALL), "--state-dir", d.state, "run", "--app", app, *run_args, "--policy", str(pf),
            "--user", "nobody", "--", "env"], check=False, env=env)
    assert r.returncode == 0, r.stderr
    return dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)


def test_clean_env_keeps_the_callers_secrets_out_of_the_cell(mdaemon):
    caller = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "TERM": "xterm",
              "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG", "SSH_AUTH_SOCK": "/tmp/ssh-cw/agent.1",
              "GITHUB_TOKEN": "ghp_secret", "MYAPP_MODE": "fast"}
    # Without it, today's behaviour: the caller's environment, with the user's HOME.
    plain = env_in_cell(mdaemon, caller)
    assert plain["AWS_SECRET_ACCESS_KEY"] == caller["AWS_SECRET_ACCESS_KEY"] and "SSH_AUTH_SOCK" in plain, plain
    for got in (env_in_cell(mdaemon, caller, ["--clean-env"]),
                env_in_cell(mdaemon, caller, policy=DENY_ALL + "clean_env = true\n")):
        assert not {"AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK", "GITHUB_TOKEN", "MYAPP_MODE"} & set(got), got
        assert got["PATH"] == caller["PATH"] and got["LANG"] == "C.UTF-8" and got["TERM"] == "xterm", got
        assert got["HOME"] == "/nonexistent" and got["USER"] == "nobody", got  # nobody's, from passwd
    # Named variables pass: by the flag, or by the policy's pass_env.
    got = env_in_cell(mdaemon, caller, ["--clean-env", "--pass-env", "MYAPP_MODE"])
    assert got["MYAPP_MODE"] == "fast" and "AWS_SECRET_ACCESS_KEY" not in got, got
    got = env_in_cell(mdaemon, caller, policy=DENY_ALL + 'clean_env = true\npass_env = ["MYAPP_*", "SSH_AUTH_SOCK"]\n')
    assert got["MYAPP_MODE"] == "fast" and got["SSH_AUTH_SOCK"] == caller["SSH_AUTH_SOCK"], got
    assert "AWS_SECRET_ACCESS_KEY" not in got and "GITHUB_TOKEN" not in got, got
    # The app's stored policy (no --policy) carries it too.
    r = sh([str(CELLWALL), "--state-dir", mdaemon.state, "run", "--app", "envapp", "--user", "nobody", "--", "env"],
           check=False, env=caller)
    assert r.returncode == 0 and "MYAPP_MODE=fast" in r.stdout and "AWS_SECRET" not in r.stdout, r.stdout + r.stderr
