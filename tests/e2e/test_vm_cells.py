"""VM cells (docs/vm-cells.md): a real QEMU micro-VM on the cell's tap, under KVM when this
machine has it and software emulation otherwise. One daemon for the module and one boot per
test (a boot under emulation takes several seconds): each boot checks several things."""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import tempfile
import termios
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (CELLWALL, GATEWAY_IP, RULES_LEASE_S, TESTHOST_IP, Capture, cell_cgroups, links, sh)
from test_bypass import gateway_mac
from test_core import ALLOW_WEB, DENY_ALL

HERE = Path(__file__).resolve().parent
# Runs vm_hostile.py in the guest from the sources on stdin (a JSON object: file name -> text),
# with rawframes.py as the module it imports.
LOADER = ("import json, sys, types\n"
          "files = json.loads(sys.stdin.read())\n"
          "m = types.ModuleType('rawframes')\n"
          "exec(compile(files['rawframes.py'], 'rawframes.py', 'exec'), m.__dict__)\n"
          "sys.modules['rawframes'] = m\n"
          "sys.argv = ['vm_hostile.py'] + sys.argv[1:]\n"
          "exec(compile(files['vm_hostile.py'], 'vm_hostile.py', 'exec'), {'__name__': '__main__'})\n")


def vm_argv(d, policy, app, user="nobody", extra=()):
    pf = Path(d.state, f"{app}.toml")
    pf.write_text(policy)
    return [str(CELLWALL), "--state-dir", d.state, "run", "--vm", *extra, "--app", app, "--policy", str(pf),
            "--user", user, "--"]


def vmm_processes():
    """QEMU processes of VM cells (their control port is named cw.ctl)."""
    return sh(["pgrep", "-a", "-f", "name=cw.ctl"], check=False).stdout.strip()


def wait_line(proc, want, timeout=120):
    """Reads proc's stdout until a line equal to want (the guest's command is running)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.strip() == want:
            return
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"the VM cell never printed {want!r}: {out}\n{err}")


def assert_cell_gone(d, cell_netns, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (not any(c["netns"] == cell_netns for c in d.cells()) and cell_netns not in links()
                and not vmm_processes() and not any(cg.endswith(cell_netns) for cg in cell_cgroups())):
            return
        time.sleep(0.2)
    raise AssertionError(f"VM cell {cell_netns} left behind: ps={d.cells()} vmm={vmm_processes()} "
                         f"links={[l for l in links() if l == cell_netns]} cgroups={cell_cgroups()}")


def test_vm_cell_gives_a_terminal_and_ctrl_c_reaches_the_command(mdaemon):
    """With a terminal on stdin and stdout, the guest's command gets a terminal of its own, of
    the host terminal's size; Ctrl-C typed there interrupts the command, which ends the VM."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    p = subprocess.Popen(vm_argv(mdaemon, DENY_ALL, "vmtty")
                         + ["/bin/sh", "-c", "tty; stty size; echo up; exec sleep 300"],
                         stdin=slave, stdout=slave, stderr=subprocess.PIPE, start_new_session=True)
    os.close(slave)
    seen = b""
    deadline = time.time() + 120
    while b"up" not in seen and time.time() < deadline and p.poll() is None:
        r, _, _ = select.select([master], [], [], 1)
        if r:
            seen += os.read(master, 4096)
    try:
        text = seen.decode(errors="replace")
        assert "/dev/pts/" in text and "33 101" in text and "up" in text, text
        os.write(master, b"\x03")
        p.wait(timeout=30)
        assert p.returncode == 130  # sleep's SIGINT, as the guest's shell reports it
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_vm_cell_runs_under_the_policy(mdaemon):
    """Allowed and denied connections, DNS, the user, the host's /tmp (visible, not written),
    stdin, stdout, stderr and the exit code, `cellwall ps`'s backend and the log's note on
    attribution, from one boot."""
    fd, host_tmp = tempfile.mkstemp(prefix="cw-vmtmp-", dir="/tmp")
    os.write(fd, b"from-host-tmp\n")
    os.close(fd)
    os.chmod(host_tmp, 0o644)
    try:
        check_policy_boot(mdaemon, host_tmp)
    finally:
        os.unlink(host_tmp)
        Path(host_tmp + ".new").unlink(missing_ok=True)


def check_policy_boot(mdaemon, host_tmp):
    script = (f"curl -s -o /dev/null -w '%{{http_code}}\\n' http://{TESTHOST_IP}:8080/; "
              f"curl -s --max-time 3 -o /dev/null -w '%{{http_code}}\\n' http://{TESTHOST_IP}:7777/; "
              "getent hosts test.example; id -u; grep -o rdinit=/init /proc/cmdline; "
              f"cat {host_tmp}; echo from-guest > {host_tmp}.new && cat {host_tmp}.new; "
              "cat; echo to-stderr >&2; exit 7")
    # The guest resolves test.example because a rule names it: its queries are checked by the
    # controller like a namespace cell's (docs/dns.md).
    policy = ALLOW_WEB + '[[allow]]\nproto = "tcp"\nhosts = "test.example"\nports = 8080\n'
    p = subprocess.Popen(vm_argv(mdaemon, policy, "vmweb") + ["/bin/sh", "-c", script],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    backend = None
    deadline = time.time() + 30
    while backend is None and time.time() < deadline and p.poll() is None:
        backend = next((c["backend"] for c in mdaemon.cells() if c["app"] == "vmweb"), None)
        time.sleep(0.2)
    out, err = p.communicate(input="from-stdin\n", timeout=180)
    assert p.returncode == 7, f"exit {p.returncode}\n{out}\n{err}"
    lines = out.splitlines()
    assert lines[0] == "200", out            # allowed by the policy
    assert lines[1] == "000", out            # denied: no answer
    assert lines[2].split() == [TESTHOST_IP, "test.example"], out  # the environment's DNS
    assert lines[3] == "65534", out          # --user nobody inside the guest
    assert lines[4] == "rdinit=/init", out  # the guest's kernel, booted by cellwall
    assert lines[5] == "from-host-tmp", out  # the host's /tmp, seen through the overlay
    assert lines[6] == "from-guest", out     # written in the guest ...
    assert not Path(host_tmp + ".new").exists()  # ... and not on the host
    assert lines[7] == "from-stdin", out
    assert "to-stderr" in err
    assert "to-stderr" not in out
    assert backend in ("vm/tcg", "vm/kvm"), backend

    deadline = time.time() + 15
    denied = []
    while not denied and time.time() < deadline:
        entries = [json.loads(l) for l in mdaemon.cli("log", "--app", "vmweb", "--json").stdout.splitlines()
                   if l.strip()]
        denied = [e for e in entries if e.get("remote_port") == 7777]
        time.sleep(0.3)
    assert denied, "the denied connection is not in the log"
    assert denied[0]["process"]["pid"] == 0
    assert denied[0]["process"]["note"] == "not visible (VM cell)"
    assert "not visible (VM cell)" in mdaemon.cli("log", "--app", "vmweb").stdout


def test_vm_guest_root_gets_nothing_past_the_switch(mdaemon, module_testhost):
    """As root in the guest: raw frames with forged addresses, ARP, IPv6, VLAN and priority
    tags, frames to another cell and to the gateway. Captures on the uplink, in the other cell
    and on the gateway see only the control frame (each with a `vlan` term: a filter without
    one can miss a tagged frame)."""
    victim_proc, victim = mdaemon.start_cell(DENY_ALL, ["sleep", "300"], app="victim")
    try:
        # The guest learns its targets from stdin (its own addresses are known only once the
        # cell exists), then the programs: the guest's /tmp is its own, and this checkout may
        # live in the host's.
        script = 'echo booted; read args; exec /usr/bin/python3 -c "$1" $args'
        p = subprocess.Popen(vm_argv(mdaemon, ALLOW_WEB, "vmroot", user="root") + ["/bin/sh", "-c", script, "sh", LOADER],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_line(p, "booted")
        me = next(c for c in mdaemon.cells() if c["app"] == "vmroot")
        # The guest's IPv6 datagrams go to UDP port 46000; the gateway's own interfaces may
        # solicit routers over IPv6, which is not the guest's doing.
        uplink = module_testhost.capture("tcp dst port 8080 or udp port 5353 or (ip6 and udp port 46000) or vlan")
        at_victim = Capture(victim["netns"], "eth0",
                            f"ether src {me['mac']} or src host {me['ip']} or (ip6 and udp port 46000) or vlan")
        # The tagged SYNs go to port 8080 of the test host: allowed untagged, so only the tag
        # can stop them; a priority-tagged one that got here would be routed on untagged.
        # (`vlan` last in every filter: libpcap reads the terms after it 4 bytes further on.)
        at_gateway = Capture("cw-g-default", "cwgw0", f"tcp dst port 22 or (ip6 and udp port 46000) or "
                                                      f"(arp and ether src {me['mac']}) or "
                                                      f"(tcp dst port 8080 and tcp src portrange 45000-45199) or vlan")
        p.stdin.write(f"{me['mac']} {me['ip']} {gateway_mac()} {GATEWAY_IP} {TESTHOST_IP} "
                      f"{victim['mac']} {victim['ip']}\n")
        p.stdin.write(json.dumps({name: (HERE / name).read_text() for name in ("rawframes.py", "vm_hostile.py")}))
        p.stdin.flush()  # communicate() closes it
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0 and "sent" in out, f"{p.returncode}\n{out}\n{err}"
        up = uplink.lines()
        assert any(".41000 >" in l for l in up), f"the control frame did not get out: {up}"
        assert [l for l in up if ".41000 >" not in l] == [], up
        assert at_victim.lines() == []
        # The guest's kernel may answer the gateway's ARP for its own address: honest, and
        # allowed. Nothing may claim the gateway's address.
        assert [l for l in at_gateway.lines() if "ARP" not in l or GATEWAY_IP in l] == []
    finally:
        victim_proc.send_signal(signal.SIGTERM)
        victim_proc.wait(timeout=30)


@pytest.mark.parametrize("how", ["interrupt", "kill", "reader-gone"])
def test_vm_cell_ends_with_its_launcher(mdaemon, how):
    """Ctrl-C (SIGINT) ends the VM with status 130; a reader that goes away ends it as SIGPIPE
    would (141); a killed launcher's VM is ended by the daemon (its cgroup). Either way nothing
    is left: no VMM, tap, cgroup or cell."""
    command = "echo up; exec yes" if how == "reader-gone" else "echo up; exec sleep 300"
    p = subprocess.Popen(vm_argv(mdaemon, DENY_ALL, "vm" + how) + ["/bin/sh", "-c", command],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_line(p, "up")
    cell = next(c for c in mdaemon.cells() if c["app"] == "vm" + how)
    assert vmm_processes()
    if how == "reader-gone":
        p.stdout.close()
        p.wait(timeout=30)
        assert p.returncode == 141
    else:
        p.send_signal(signal.SIGINT if how == "interrupt" else signal.SIGKILL)
        p.communicate(timeout=30)
        assert p.returncode == (130 if how == "interrupt" else -signal.SIGKILL)
    assert_cell_gone(mdaemon, cell["netns"])


def test_vm_cells_across_a_daemon_crash(mdaemon):
    """Without the controller a running VM cell gets nothing new out; a restarted daemon adopts
    it (service comes back) and removes a VM cell whose launcher died meanwhile, VMM included."""
    loop = (f"echo up; while read x; do curl -s --max-time 2 -o /dev/null -w '%{{http_code}}\\n' "
            f"http://{TESTHOST_IP}:8080/; done")
    a = subprocess.Popen(vm_argv(mdaemon, ALLOW_WEB, "vmsurvivor") + ["/bin/sh", "-c", loop],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    b = subprocess.Popen(vm_argv(mdaemon, DENY_ALL, "vmorphan") + ["/bin/sh", "-c", "echo up; exec sleep 300"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_line(a, "up")
        wait_line(b, "up")
        orphan = next(c for c in mdaemon.cells() if c["app"] == "vmorphan")

        def ask():
            a.stdin.write("go\n")
            a.stdin.flush()
            return a.stdout.readline().strip()

        assert ask() == "200"
        mdaemon.kill9()
        time.sleep(RULES_LEASE_S + 0.5)  # the switch's lease on deciding by the rules runs out
        assert ask() == "000"  # fail-secure: no controller, no new connection
        b.kill()
        b.wait()
        mdaemon.start()
        deadline = time.time() + 20
        answer = ask()
        while answer != "200" and time.time() < deadline:
            time.sleep(0.5)
            answer = ask()
        assert answer == "200", "the adopted VM cell never got service back"
        deadline = time.time() + 20
        while time.time() < deadline and (orphan["netns"] in links() or len(vmm_processes().splitlines()) != 1):
            time.sleep(0.2)
        assert orphan["netns"] not in links()
        assert len(vmm_processes().splitlines()) == 1, vmm_processes()  # the survivor's only
        assert not any(c["app"] == "vmorphan" for c in mdaemon.cells())
        a.stdin.close()
        a.wait(timeout=60)
        assert a.returncode == 0
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()


KVM_FALLBACK = "QEMU under KVM ended before the guest started"


def probe_kvm():
    """This machine's KVM, asked independently of cellwall: "absent" when /dev/kvm cannot
    create a VM, "works" when QEMU under KVM boots a kernel far enough for it to print, "broken"
    when QEMU dies before the guest says a word (issue 19: "failed to set MSR 0x10a")."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return "absent", ""
    try:
        vm = fcntl.ioctl(fd, 0xAE01, 0)  # KVM_CREATE_VM
        os.close(vm)
    except OSError:
        return "absent", ""
    finally:
        os.close(fd)
    kernel = sorted(Path("/boot").glob("vmlinuz-*"))[-1]
    try:
        r = subprocess.run(["qemu-system-x86_64", "-M", "microvm,x-option-roms=off", "-accel", "kvm", "-cpu", "host",
                            "-m", "128", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1", "-serial", "stdio"],
                           capture_output=True, text=True, timeout=30)
        said = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        said = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    return ("works" if "Linux version" in said else "broken"), said


def run_vm_accel(d, app, accel):
    """One VM cell (`--vm-accel accel`, or the daemon's setting for None) that prints "up" and
    waits for stdin; returns (exit status, stdout, stderr, its `cellwall ps` backend)."""
    extra = () if accel is None else ("--vm-accel", accel)
    p = subprocess.Popen(vm_argv(d, DENY_ALL, app, extra=extra) + ["/bin/sh", "-c", "echo up; read x; echo got $x"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    backend = None
    try:
        line = p.stdout.readline()
        if line.strip() == "up":
            backend = next((c["backend"] for c in d.cells() if c["app"] == app), None)
        out, err = p.communicate(input="in\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return p.returncode, line + out, err, backend


def test_vm_accelerator_modes_on_this_machine(mdaemon):
    """--vm-accel tcg never tries KVM; kvm works or fails with a clear error, as this machine's
    KVM does (probed here with QEMU itself); auto runs the command either way, and on a host
    whose KVM is present but unusable it falls back once, says so once, and sends the next cell
    straight to software emulation."""
    d = mdaemon
    record = Path(d.state, "vm", "kvm-unusable")
    record.unlink(missing_ok=True)  # what earlier tests of the module may have recorded
    log_from = len(d.log.read_text())
    kvm, qemu_said = probe_kvm()

    rc, out, err, backend = run_vm_accel(d, "vmtcg", "tcg")
    assert (rc, out.split(), backend) == (0, ["up", "got", "in"], "vm/tcg"), (rc, out, err)
    assert KVM_FALLBACK not in err and not record.exists(), err

    rc, out, err, backend = run_vm_accel(d, "vmkvm", "kvm")
    print(f"KVM here: {kvm}\n--vm-accel kvm: exit {rc}, said:\n{err}")
    if kvm == "works":
        assert (rc, out.split(), backend) == (0, ["up", "got", "in"], "vm/kvm"), (rc, out, err)
    elif kvm == "absent":
        assert rc != 0 and "KVM is not usable here" in err and "--vm-accel tcg" in err, (rc, err)
    else:
        assert rc != 0 and out == "", (rc, out, err)
        assert "QEMU could not start the guest under KVM on this host" in err, err
        assert "failed to set MSR" not in qemu_said or "failed to set MSR" in err, err  # QEMU's own words
        assert not record.exists(), "--vm-accel kvm must not decide for auto"

    rc, out, err, backend = run_vm_accel(d, "vmauto1", None)  # the daemon's vm_accel: auto
    assert rc == 0 and out.split() == ["up", "got", "in"], (rc, out, err)
    rc2, out2, err2, backend2 = run_vm_accel(d, "vmauto2", "auto")
    assert rc2 == 0 and out2.split() == ["up", "got", "in"], (rc2, out2, err2)
    log = d.log.read_text()[log_from:]
    print(f"first auto cell ({backend}) said:\n{err}\nsecond ({backend2}) said:\n{err2}")
    if kvm == "works":
        assert (backend, backend2) == ("vm/kvm", "vm/kvm"), (err, err2)
        assert KVM_FALLBACK not in err + err2 + log and not record.exists()
    elif kvm == "absent":
        assert (backend, backend2) == ("vm/tcg", "vm/tcg")
        assert "no KVM" in err and KVM_FALLBACK not in err + err2 + log
    else:
        # The first falls back (QEMU under KVM died), says so on stderr and in the log, once,
        # and records it; the second goes straight to TCG: no second attempt, no second notice.
        assert backend == "vm/tcg" and err.count(KVM_FALLBACK) == 1, err
        assert record.exists() and "key: qemu " in record.read_text()
        assert backend2 == "vm/tcg" and KVM_FALLBACK not in err2, err2
        assert "KVM failed on this host before" in err2 and str(record) in err2, err2
        assert log.count(KVM_FALLBACK) == 1, log
        assert "vmauto2" in log and "a VM (software emulation)" in log


def test_vm_cell_with_clean_env_gets_no_secrets(mdaemon):
    """--clean-env reaches the guest's command: the caller's secrets stay out, the safe list and
    the names passed go in."""
    caller = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
              "SSH_AUTH_SOCK": "/tmp/ssh-cw/agent.1", "MYAPP_MODE": "fast"}
    r = sh(vm_argv(mdaemon, DENY_ALL, "vmenv", extra=("--clean-env", "--pass-env", "MYAPP_MODE")) + ["env"],
           check=False, env=caller, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    got = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    assert "AWS_SECRET_ACCESS_KEY" not in got and "SSH_AUTH_SOCK" not in got, got
    assert got.get("MYAPP_MODE") == "fast" and got.get("LANG") == "C.UTF-8" and got.get("PATH"), got
