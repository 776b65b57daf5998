"""Where a benchmark's CPU went, the whole system's: time on CPU of every thread of every process
(/proc/*/task/*/schedstat, nanoseconds), grouped by what it is, plus the CPU's softirq and
system time (/proc/stat), plus Open vSwitch's coverage counters. Take a snapshot before and
after the measured work; `delta` says what happened in between.

Used by nginx_bench.py --profile: per request, µs of CPU per group and coverage events, so a
mode's extra cost shows up where it is spent (ovs-vswitchd's threads by name, cellwalld, the
server, the client, the kernel's softirq threads), not only in our own process.
"""
import os
import re
import subprocess

TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")

# Coverage counters worth a look per connection (ovs-appctl coverage/show names).
COVERAGE = ["upcall_ukey_replace", "dpif_flow_put", "dpif_execute", "xlate_actions", "ofproto_packet_out",
            "packet_in_overflow", "conntrack_full", "datapath_drop_userspace_action_error",
            "dpif_execute_with_help", "revalidate_missed_dp_flow", "ofproto_recv_openflow", "dpif_flow_del",
            "handler_duplicate_upcall", "ukey_dp_change", "upcall_flow_limit_hit", "conntrack_l4csum_err",
            "conntrack_l3csum_err", "datapath_drop_invalid_tnl_port", "netdev_sent", "dp_netdev_miss"]


def _group(comm, pcomm):
    """A thread's group: Open vSwitch's threads by their name, everything else by process."""
    if pcomm == "ovs-vswitchd":
        return "ovs:" + re.sub(r"\d+$", "", comm)
    if pcomm in ("cellwalld", "nginx", "ab", "ovsdb-server", "python3"):
        return pcomm
    if comm.startswith("ksoftirqd"):
        return "ksoftirqd"
    if comm.startswith("kworker"):
        return "kworker"
    return "other:" + pcomm


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cpu_snapshot():
    """{group: ns on CPU} over every thread alive now, plus 'kernel:softirq' / 'kernel:system' /
    'kernel:user' / 'kernel:idle' from /proc/stat (ns, all CPUs)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        pcomm = (_read(f"/proc/{pid}/comm") or "").strip()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            s = _read(f"/proc/{pid}/task/{tid}/schedstat")
            if not s:
                continue
            comm = (_read(f"/proc/{pid}/task/{tid}/comm") or "").strip()
            g = _group(comm, pcomm)
            out[g] = out.get(g, 0) + int(s.split()[0])
    cpu = (_read("/proc/stat") or "").splitlines()[0].split()
    user, nice, system, idle, iowait, irq, softirq = (int(x) for x in cpu[1:8])
    out["kernel:user"] = (user + nice) * TICK_NS
    out["kernel:system"] = system * TICK_NS
    out["kernel:softirq"] = (softirq + irq) * TICK_NS
    out["kernel:idle"] = (idle + iowait) * TICK_NS
    return out


def coverage_snapshot(appctl):
    """{counter: total} from `ovs-appctl coverage/show` of the ovs-vswitchd at `appctl`."""
    r = subprocess.run(["ovs-appctl", "-t", appctl, "coverage/show"], capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"(\S+)\s+.*total:\s+(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


class Profile:
    """Accumulates deltas over several measured stretches (start()/stop() pairs)."""

    def __init__(self, appctl):
        self.appctl = appctl
        self.cpu, self.cov = {}, {}

    def start(self):
        self._cpu0, self._cov0 = cpu_snapshot(), coverage_snapshot(self.appctl)

    def stop(self):
        cpu1, cov1 = cpu_snapshot(), coverage_snapshot(self.appctl)
        # A thread that ended in between (ab: one process per chunk) took its time with it; the
        # kernel's totals still have it: "gone or short-lived" is the busy time no group holds.
        for k, v in cpu1.items():
            self.cpu[k] = self.cpu.get(k, 0) + v - self._cpu0.get(k, 0)
        for k in set(cov1) | set(self._cov0):
            d = cov1.get(k, 0) - self._cov0.get(k, 0)
            if d:
                self.cov[k] = self.cov.get(k, 0) + d

    def per_request(self, n):
        """(cpu µs per request by group, coverage events per request), largest first."""
        busy = sum(self.cpu.get(k, 0) for k in ("kernel:user", "kernel:system", "kernel:softirq"))
        held = sum(v for k, v in self.cpu.items() if not k.startswith("kernel:"))
        self.cpu["busy (all CPUs)"] = busy
        self.cpu["gone or short-lived"] = max(0, busy - held)
        cpu = {k: v / 1000 / n for k, v in sorted(self.cpu.items(), key=lambda kv: -kv[1]) if v > 0}
        cov = {k: v / n for k, v in sorted(self.cov.items(), key=lambda kv: -kv[1])}
        return cpu, cov
