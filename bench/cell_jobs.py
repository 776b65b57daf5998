"""Commands run inside a long-lived cell as the cell's own processes.

`ip netns exec` would give a command the cell's network but not its cgroup, user or process
tree, so cellwall could not attribute its connections to it: a rule naming the process would
never match. Instead the cell runs a small job runner (as the cell's user) that polls a
directory for jobs (argv as JSON) and writes each one's result next to it.

    jobs = CellJobs(tmpdir)                 # tmpdir: readable by the cell's user
    cellwall run ... -- *jobs.command()
    rc, out, err = jobs.run(["ab", ...], alive=lambda: cell_proc.poll() is None)
"""
import json
import os
import pwd
import time
from pathlib import Path

RUNNER = r"""
import json, os, subprocess, sys, time
d = sys.argv[1]
while True:
    for f in sorted(os.listdir(d)):
        if f.endswith(".job"):
            p = os.path.join(d, f)
            with open(p) as j:
                argv = json.load(j)
            os.unlink(p)
            r = subprocess.run(argv, capture_output=True, text=True)
            with open(p[:-4] + ".tmp", "w") as o:
                json.dump({"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr}, o)
            os.rename(p[:-4] + ".tmp", p[:-4] + ".out")
    time.sleep(0.02)
"""


class CellJobs:
    def __init__(self, tmpdir, user="nobody"):
        """Writes the runner into `tmpdir` and makes a jobs directory there owned by `user`."""
        self.dir = Path(tmpdir, "jobs")
        self.dir.mkdir(mode=0o755)
        pw = pwd.getpwnam(user)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.runner = Path(tmpdir, "runner.py")
        self.runner.write_text(RUNNER)
        self.runner.chmod(0o644)
        self.n = 0

    def command(self):
        """The runner's argv, for `cellwall run ... --`."""
        return ["/usr/bin/python3", str(self.runner), str(self.dir)]

    def run(self, argv, timeout=600, alive=lambda: True):
        """argv run by the runner in the cell; (returncode, stdout, stderr)."""
        self.n += 1
        base = self.dir / f"{self.n:06d}"
        Path(f"{base}.jtmp").write_text(json.dumps(argv))
        os.rename(f"{base}.jtmp", f"{base}.job")
        out = Path(f"{base}.out")
        deadline = time.time() + timeout
        while not out.exists():
            if time.time() > deadline or not alive():
                raise RuntimeError(f"the cell's job runner did not run {argv} (cell "
                                   f"{'running' if alive() else 'gone'}; jobs in {self.dir})")
            time.sleep(0.01)
        r = json.loads(out.read_text())
        out.unlink()
        return r["rc"], r["stdout"], r["stderr"]
