"""Held connections: an app with default = "prompt" asks about what no rule covers, and the
answer (or the timeout) decides. Real OVS, real cells, real curl against the test host; the
terminal prompt is driven through a pty."""
import json
import os
import pty
import select
import subprocess
import time

from conftest import CELLWALL, TESTHOST_IP, curl_in_cell, finish

PROMPT = 'default = "prompt"\n'


def questions(d):
    out = d.cli("prompt", "--json").stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def wait_questions(d, n, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        q = questions(d)
        if len(q) >= n:
            return q
        time.sleep(0.1)
    raise AssertionError(f"expected {n} question(s), have {questions(d)}\n{d.new_log()[-2000:]}")


def test_an_allow_answer_releases_the_held_connection_and_becomes_a_rule(mdaemon):
    d = mdaemon
    p = curl_in_cell(d, PROMPT, "ask-allow")
    try:
        q = wait_questions(d, 1)
        assert q[0]["app"] == "ask-allow" and q[0]["remote_ip"] == TESTHOST_IP, q
        assert q[0]["remote_port"] == 8080 and q[0]["proto"] == "tcp", q
        time.sleep(1.5)  # curl is held, not refused: it is still waiting
        assert p.poll() is None
        r = d.cli("answer", str(q[0]["id"]), "--allow", "--for", "5m", "--json")
        rule = json.loads(r.stdout)
        code, err = finish(p)
        assert code == "200", (code, err, d.new_log()[-2000:])
    finally:
        if p.poll() is None:
            p.kill()
    assert questions(d) == []
    # The answer is a rule of the app, persisted, with its lifetime.
    rules = [json.loads(l) for l in d.cli("rules", "list", "--app", "ask-allow", "--json").stdout.splitlines()]
    assert [x["id"] for x in rules] == [rule["id"]], rules
    assert rules[0]["origin"] == "prompt" and rules[0]["expires_ms"] > 0, rules
    # The next connection is decided by it without asking (no --policy: the app's stored one).
    again = d.cli("run", "--app", "ask-allow", "--", "curl", "-s", "-o", "/dev/null", "--max-time", "5",
                  "-w", "%{http_code}", f"http://{TESTHOST_IP}:8080/", check=False)
    assert again.stdout == "200", (again.stdout, again.stderr)
    assert questions(d) == []


def test_a_deny_answer_fails_the_connection_and_the_next_attempt_at_once(mdaemon):
    d = mdaemon
    p = curl_in_cell(d, PROMPT, "ask-deny", max_time=8)
    try:
        q = wait_questions(d, 1)
        d.cli("answer", str(q[0]["id"]), "--reject", "--forever")
        code, _ = finish(p)
        assert code == "000"
    finally:
        if p.poll() is None:
            p.kill()
    t0 = time.time()
    again = d.cli("run", "--app", "ask-deny", "--", "curl", "-s", "-o", "/dev/null", "--max-time", "8",
                  "-w", "%{http_code}", f"http://{TESTHOST_IP}:8080/", check=False)
    assert again.stdout == "000", again.stderr
    assert time.time() - t0 < 5, "a reject rule answers at once, it does not hold or time out"
    assert questions(d) == []


def test_an_unanswered_question_times_out_with_the_configured_action(mdaemon):
    d = mdaemon
    policy = PROMPT + 'prompt_timeout = "2s"\nprompt_timeout_action = "allow"\n'
    t0 = time.time()
    p = curl_in_cell(d, policy, "ask-timeout")
    code, err = finish(p)
    took = time.time() - t0
    assert code == "200", (code, err, took, d.new_log()[-3000:])  # the timeout action here is allow
    assert took > 1.5, took  # it was held until the timeout
    assert questions(d) == []
    deadline = time.time() + 3  # the log is written every 250 ms
    while True:
        entries = [json.loads(l) for l in d.cli("log", "--app", "ask-timeout", "--json").stdout.splitlines()]
        if any(e["reason"] == "prompt_timeout" and e["verdict"] == "allow" for e in entries):
            break
        assert time.time() < deadline, entries
        time.sleep(0.2)
    # Nothing was made a rule: the next connection asks again (and times out again).
    assert d.cli("rules", "list", "--app", "ask-timeout", "--json").stdout.strip() == ""


def test_several_questions_are_open_at_once(mdaemon):
    d = mdaemon
    a = curl_in_cell(d, PROMPT, "ask-many", port=8080, max_time=10)
    b = curl_in_cell(d, PROMPT, "ask-many2", port=7777, max_time=10)
    try:
        q = wait_questions(d, 2)
        assert sorted((x["app"], x["remote_port"]) for x in q) == [("ask-many", 8080), ("ask-many2", 7777)]
        for x in q:
            d.cli("answer", str(x["id"]), "--deny")  # once: no rule
        assert finish(a)[0] == "000"
        assert finish(b)[0] == "000"
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
    assert d.cli("rules", "list", "--app", "ask-many", "--json").stdout.strip() == ""


def test_the_terminal_prompt_answers_through_a_pty(mdaemon):
    d = mdaemon
    master, slave = pty.openpty()
    term = subprocess.Popen([str(CELLWALL), "--state-dir", d.state, "prompt"],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""

    def read_until(text, timeout=15):
        nonlocal seen
        deadline = time.time() + timeout
        while text not in seen and time.time() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert text in seen, seen.decode(errors="replace")

    p = curl_in_cell(d, PROMPT, "ask-term")
    try:
        read_until(b"waiting for questions")
        read_until(b"answer #")
        assert b"ask-term" in seen and TESTHOST_IP.encode() in seen, seen
        os.write(master, b"a\n")  # allow once
        read_until(b"allow once")
        code, err = finish(p)
        assert code == "200", (code, err, seen.decode(errors="replace"), questions(d), d.new_log()[-3000:])
    finally:
        for x in (p, term):
            if x.poll() is None:
                x.kill()
                x.wait()
        os.close(master)
    # Once: no rule was made.
    assert d.cli("rules", "list", "--app", "ask-term", "--json").stdout.strip() == ""
