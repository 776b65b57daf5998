"""The web UI in a real browser: Debian's headless chromium, driven by playwright-core
(tests/web/browser.mjs), against a real cellwalld with real cells, curl and the test host.
Screenshots of every view go to $CW_ARTIFACTS/web-ui (default build/artifacts/web-ui)."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from browser import Browser
from conftest import CELLWALL, TESTHOST_IP, _daemon, curl_in_cell, finish

PROMPT = 'default = "prompt"\n'
ARTIFACTS = Path(os.environ.get("CW_ARTIFACTS", Path(__file__).resolve().parents[2] / "build" / "artifacts"),
                 "web-ui")


def rules_of(d, app):
    out = d.cli("rules", "list", "--app", app, "--json").stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def open_questions(d):
    out = d.cli("prompt", "--json").stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


@pytest.fixture(scope="module")
def adaemon(module_testhost):
    """The module's daemon, attributing every connection to its process: the page shows which."""
    yield from _daemon(module_testhost, ["--attribution", "always"])


@pytest.fixture(scope="module")
def ui(adaemon):
    """(daemon, browser on the UI page, url)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = adaemon.ui_url()
    b = Browser()
    try:
        b("goto", url=url)
        b("visible", testid="live")
        yield adaemon, b, url
        assert b("errors") == [], "the page logged errors"
    finally:
        b.close()


def test_allow_for_5_minutes_in_the_browser_releases_the_held_curl(ui):
    d, b, _ = ui
    p = curl_in_cell(d, PROMPT, "web-allow", host="test.example")  # a name the cell resolves
    try:
        b("visible", testid="prompt-dialog")
        assert "web-allow" in b("texts", testid="prompt-app")[0]
        target = b("texts", testid="prompt-target")[0]
        assert "test.example" in target and TESTHOST_IP in target and "8080" in target, target
        # Which process asks: curl, its pid, and its command line with the URL.
        b("visible", testid="prompt-process")
        assert b("texts", testid="prompt-process-name") == ["curl"]
        assert b("texts", testid="prompt-process-who")[0].startswith("(pid "), b("texts", testid="prompt-process-who")
        cmd = b("texts", testid="prompt-process-cmd")[0]
        assert cmd.split(" ")[0].endswith("/curl") and "http://test.example:8080/" in cmd, cmd
        # The terminal's question says the same.
        asked = subprocess.run([str(CELLWALL), "--state-dir", d.state, "prompt"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=30).stdout
        assert "  asked by curl (pid " in asked and "http://test.example:8080/" in asked, asked
        b("screenshot", path=str(ARTIFACTS / "prompt.png"))
        time.sleep(1.5)
        assert p.poll() is None, "curl is held while the question is open"
        b("click", button="Allow for 5 minutes", within="prompt-dialog")
        code, err = finish(p)
        assert code == "200", (code, err, d.new_log()[-2000:])
        b("hidden", testid="prompt-dialog")
    finally:
        if p.poll() is None:
            p.kill()
    rules = rules_of(d, "web-allow")
    assert len(rules) == 1 and rules[0]["origin"] == "prompt", rules
    left_s = (rules[0]["expires_ms"] - time.time() * 1000) / 1000
    assert 240 < left_s <= 300, left_s
    # The quick answer is for the name the cell resolved, and this port.
    assert '"test.example"' in rules[0]["text"] and "8080" in rules[0]["text"], rules[0]["text"]
    # One connection, logged once, though its SYN was held twice (curl retransmitted it after
    # 1 s): the released copies follow the first one's decision.
    time.sleep(0.6)  # the log is written every 250 ms
    log = [json.loads(l) for l in d.cli("log", "--app", "web-allow", "--json").stdout.splitlines()]
    assert [(e["verdict"], e["remote_port"]) for e in log] == [("allow", 8080)], log
    assert log[0]["process"]["pid"] > 0 and log[0]["process"]["exe"].endswith("/curl"), log
    row = d.cli("log", "--app", "web-allow").stdout.splitlines()[-1]
    assert "curl (pid %d, " % log[0]["process"]["pid"] in row, row


def test_more_options_domain_any_port_for_two_connections(ui):
    d, b, _ = ui
    p = curl_in_cell(d, PROMPT, "web-more", host="api.example.test")
    try:
        b("visible", testid="prompt-dialog")
        b("click_testid", testid="more-options")
        b("select", testid="ans-scope", value="*.example.test")
        b("check", testid="ans-anyport")
        b("select", testid="ans-lifetime", value="connections")
        b("fill", testid="ans-connections", value="2")
        b("screenshot", path=str(ARTIFACTS / "prompt-more-options.png"))
        b("click", button="Answer", within="prompt-dialog")
        code, err = finish(p)
        assert code == "200", (code, err)
    finally:
        if p.poll() is None:
            p.kill()
    rules = rules_of(d, "web-more")
    assert len(rules) == 1, rules
    text = rules[0]["text"]
    assert '"example.test"' in text and '"*.example.test"' in text and "ports" not in text, text
    assert rules[0]["connections_max"] == 2, rules[0]
    # The second connection: another name of the domain, another port's worth of rule; no question.
    again = d.cli("run", "--app", "web-more", "--", "curl", "-s", "-o", "/dev/null", "--max-time", "5",
                  "-w", "%{http_code}", "http://direct.example.test:8080/", check=False)
    assert again.stdout == "200", (again.stdout, again.stderr)
    assert open_questions(d) == []
    deadline = time.time() + 5  # counts are persisted every 250 ms; the rule is then used up
    while rules_of(d, "web-more") and time.time() < deadline:
        time.sleep(0.2)
    assert rules_of(d, "web-more") == []


def answer_in_browser(d, b, app, button, max_time):
    """A held curl of a new cell of `app`, answered by clicking `button`; its HTTP code."""
    p = curl_in_cell(d, PROMPT, app, max_time=max_time)
    try:
        b("visible", testid="prompt-dialog")
        b("click", button=button, within="prompt-dialog")
        return finish(p)[0]
    finally:
        if p.poll() is None:
            p.kill()


def test_reject_and_deny_answers_in_the_browser(ui):
    d, b, _ = ui
    # Reject forever: the held curl fails, and so does the next attempt, at once.
    assert answer_in_browser(d, b, "web-reject", "Reject forever", max_time=10) == "000"
    t0 = time.time()
    # (no policy: the app's stored one, with the rule the answer made)
    again = finish(curl_in_cell(d, None, "web-reject", max_time=8))
    assert again[0] == "000" and time.time() - t0 < 5, (again, time.time() - t0)
    # Deny forever: dropped; the next attempt is not asked about again and gets nowhere.
    assert answer_in_browser(d, b, "web-deny", "Deny forever", max_time=3) == "000"
    assert finish(curl_in_cell(d, None, "web-deny", max_time=3))[0] == "000"
    assert open_questions(d) == []
    assert [r["action"] for r in rules_of(d, "web-deny")] == ["deny"]
    b("hidden", testid="prompt-dialog")


def test_an_unanswered_prompt_times_out_with_the_configured_action(ui):
    d, b, _ = ui
    policy = PROMPT + 'prompt_timeout = "4s"\nprompt_timeout_action = "reject"\n'
    t0 = time.time()
    p = curl_in_cell(d, policy, "web-timeout")
    try:
        b("visible", testid="prompt-dialog")
        countdown = b("texts", testid="prompt-countdown")[0]
        assert "reject" in countdown.lower(), countdown
        b("hidden", testid="prompt-dialog", timeout=10000)  # gone when the timeout struck
        code, _ = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    took = time.time() - t0
    assert code == "000" and 3 < took < 12, (code, took)
    assert rules_of(d, "web-timeout") == []


def test_several_prompts_at_once_are_listed_and_answered_one_by_one(ui):
    d, b, _ = ui
    procs = {port: curl_in_cell(d, PROMPT, f"web-many{i}", port=port, max_time=10)
             for i, port in enumerate((8080, 7777, 9999))}
    try:
        b("wait_count", testid="prompt-item", count=3, timeout=15000)
        b("screenshot", path=str(ARTIFACTS / "prompts-several.png"))
        answered = {}
        for _ in range(3):
            target = b("texts", testid="prompt-target")[0]
            port = next(x for x in procs if str(x) in target and x not in answered)
            button = "Allow once" if port != 7777 else "Deny once"
            answered[port] = button
            b("click", button=button, within="prompt-dialog")
            b("wait_count", testid="prompt-item", count=3 - len(answered), timeout=10000)
        # 8080 and 9999 are served by the test host; 7777 was denied.
        results = {port: finish(p)[0] for port, p in procs.items()}
        assert results[8080] == "200" and results[7777] == "000", results
        assert results[9999] in ("200", "000"), results  # nothing listens there: refused
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    assert open_questions(d) == []
    for i in range(3):
        assert rules_of(d, f"web-many{i}") == [], "once makes no rule"


def test_views_connections_rules_cells_traffic(ui):
    d, b, _ = ui
    # A cell that stays up and makes traffic while we look.
    # The rule names an address, and the loop reaches it by a name: under default = "deny" that
    # name would be refused (docs/dns.md), so this cell may resolve any name.
    policy = 'default = "deny"\nresolve = "any"\n[[allow]]\nproto = "tcp"\nto = "%s"\nports = 8080\n' % TESTHOST_IP
    pf = Path(d.state, "web-busy.toml")
    pf.write_text(policy)
    loop = ("for i in $(seq 60); do curl -s -o /dev/null --max-time 2 http://test.example:8080/; "
            "curl -s -o /dev/null --max-time 1 http://%s:7777/; sleep 0.3; done" % TESTHOST_IP)
    p = subprocess.Popen([str(CELLWALL), "--state-dir", d.state, "run", "--app", "web-busy", "--policy", str(pf),
                          "--", "sh", "-c", loop], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        b("click_testid", testid="tab-connections")
        b("select", testid="app-filter", value="web-busy")
        b("visible", testid="conn-row", timeout=15000)
        deadline = time.time() + 15
        verdicts = set()
        while time.time() < deadline and not {"allow", "deny"} <= verdicts:
            n = len(b("texts", testid="conn-row"))
            verdicts = {b("attr", testid="conn-row", name="data-verdict", nth=i) for i in range(min(n, 20))}
            time.sleep(0.3)
        assert {"allow", "deny"} <= verdicts, verdicts
        # Each row names the process that made the connection: the loop's curl.
        procs = [t.split()[0] for t in b("texts", testid="conn-process")[:20]]
        assert "curl" in procs and set(procs) <= {"curl", "—"}, procs
        tip = b("attr", testid="conn-process", name="title", nth=procs.index("curl"))
        assert "executable: " in tip and "command line: curl " in tip and "http://" in tip, tip
        b("screenshot", path=str(ARTIFACTS / "connections.png"))

        b("click_testid", testid="tab-cells")
        b("visible", testid="cell-row")
        assert any("web-busy" in t for t in b("texts", testid="cell-row"))
        b("screenshot", path=str(ARTIFACTS / "cells.png"))

        b("click_testid", testid="tab-traffic")
        b("visible", testid="traffic-canvas")
        time.sleep(3)  # a few samples
        b("screenshot", path=str(ARTIFACTS / "traffic.png"))

        # Rules: add one in the editor, edit it, delete it.
        b("click_testid", testid="tab-rules")
        b("select", testid="rules-app", value="web-busy")
        b("wait_count", testid="rule-row", count=1)
        b("fill", testid="rule-new-text", value='action = "reject"\nproto = "tcp"\nports = 7777\n')
        b("click", button="Add rule")
        try:
            b("wait_count", testid="rule-row", count=2)
        except AssertionError as e:
            raise AssertionError(f"{e}\nshown error: {b('texts', testid='error')}\n{d.new_log()[-1500:]}")
        rules = rules_of(d, "web-busy")
        added = [r for r in rules if r["action"] == "reject"]
        assert len(added) == 1 and added[0]["origin"] == "web", rules
        b("screenshot", path=str(ARTIFACTS / "rules.png"))
        row = f'[data-testid="rule-row"][data-rule-id="{added[0]["id"]}"]'
        b("click", button="Edit", within_css=row)
        b("visible", testid="rule-editor")
        b("fill", testid="rule-editor", value='action = "reject"\nproto = "tcp"\nports = [7777, 7778]\nfor = "1h"\n')
        b("click", button="Save")
        deadline = time.time() + 10
        while time.time() < deadline:
            edited = [r for r in rules_of(d, "web-busy") if r["id"] == added[0]["id"]]
            if edited and "7778" in edited[0]["text"]:
                break
            time.sleep(0.2)
        assert edited and "7778" in edited[0]["text"] and edited[0]["expires_ms"] > 0, edited
        b("click", button="Delete", within_css=row)  # the confirm() is accepted
        b("wait_count", testid="rule-row", count=1)
        assert [r["action"] for r in rules_of(d, "web-busy")] == ["allow"]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_scripts_verdict_names_the_script_in_the_rule_column(ui, tmp_path):
    d, b, _ = ui
    f = tmp_path / "ui_no9999.lua"
    f.write_text('function on_packet(pkt) if pkt.port_dst == 9999 then return "drop" end end\n')
    d.cli("script", "load", str(f))
    try:
        assert finish(curl_in_cell(d, 'default = "allow"\n', "web-verdict", port=9999, max_time=3))[0] == "000"
        b("click_testid", testid="tab-connections")
        b("select", testid="app-filter", value="")
        rule = '[data-testid="conn-row"][data-app="web-verdict"] td.rule-ref'
        b("wait_css", css=rule, timeout=15000)
        assert "script:ui_no9999" in b("texts_css", css=rule), b("texts_css", css=rule)
    finally:
        d.cli("script", "unload", "ui_no9999", check=False)


def test_scripts_view_counters_a_disabled_script_and_reload(ui, tmp_path):
    d, b, _ = ui
    b("click_testid", testid="tab-scripts")
    # No scripts yet: the view says how to load one.
    b("visible", testid="scripts-empty")
    assert "cellwall script load FILE" in b("texts", testid="scripts-empty")[0]
    b("hidden", testid="scripts-alert")

    good = tmp_path / "ui_seen.lua"
    good.write_text('function on_packet(pkt) count("seen") end\n')
    bad = tmp_path / "ui_boom.lua"
    bad.write_text('function on_packet(pkt) error("boom") end\n')
    d.cli("script", "load", str(good))
    d.cli("script", "load", str(bad))
    good_row = '[data-testid="script-row"][data-script="ui_seen"]'
    bad_row = '[data-testid="script-row"][data-script="ui_boom"]'
    try:
        b("wait_count", testid="script-row", count=2)
        b("hidden", testid="scripts-empty")
        assert b("attr_css", css=bad_row, name="data-state") == "running"
        # One connection: the failing script is disabled at its first packet, the other counts it.
        assert finish(curl_in_cell(d, 'default = "allow"\n', "web-scripts"))[0] == "200"

        b("wait_css", css=bad_row + '[data-state="disabled"]')
        why = b("texts_css", css=bad_row + ' [data-testid="script-why"]')
        assert len(why) == 1 and "boom" in why[0], why
        b("visible", testid="scripts-alert")
        assert b("texts", testid="scripts-alert") == ["1"]
        assert b("attr_css", css=good_row, name="data-state") == "running"
        assert b("texts_css", css=good_row + ' [data-testid="script-why"]') == [""]  # hidden, empty

        # The counters come again every 2 s while the page watches.
        seen = good_row + ' [data-testid="script-counter"][data-counter="seen"]'
        b("wait_css", css=seen, timeout=10000)
        deadline = time.time() + 10
        value = 0
        while time.time() < deadline:
            value = int(b("attr_css", css=seen, name="data-value"))
            if value >= 1:
                break
            time.sleep(0.3)
        assert value >= 1, value
        assert "seen" in b("texts_css", css=seen)[0]
        # The log is there, collapsed.
        assert b("attr_css", css=good_row + ' [data-testid="script-logs"]', name="open") is None
        b("screenshot", path=str(ARTIFACTS / "scripts.png"))

        b("click", button="Reload", within_css=bad_row)
        b("wait_css", css=bad_row + '[data-state="running"]')
        b("hidden", testid="scripts-alert")
        b("hidden", testid="error")
        info = {s["name"]: s for s in (json.loads(l) for l in
                                       d.cli("script", "list", "--json").stdout.splitlines() if l.strip())}
        assert info["ui_boom"]["state"] == "running", info
    finally:
        for name in ("ui_seen", "ui_boom"):
            d.cli("script", "unload", name, check=False)
    b("visible", testid="scripts-empty")
    b("click_testid", testid="tab-connections")
