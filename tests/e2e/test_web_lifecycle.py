"""The web UI's token lives as long as cellwalld, and a UI that cannot start never stops the
firewall: `cellwall ui` then says why there is none."""
import socket
import stat
from pathlib import Path

from conftest import _daemon


def run_daemon(testhost, args):
    """(daemon, cleanup): the conftest fixture's start and teardown, driven by hand."""
    g = _daemon(testhost, args)
    return next(g), lambda: next(g, None)


def test_token_file_is_made_at_start_and_removed_at_stop(testhost):
    d, cleanup = run_daemon(testhost, [])
    try:
        token = Path(d.state, "ui-token")
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        first = token.read_text().strip()
        assert first in d.ui_url()
        d.stop()
        assert not token.exists(), "a token that opens nothing any more is still on disk"
        d.start()  # a new start, a new token
        assert token.read_text().strip() not in ("", first)
    finally:
        cleanup()


def test_a_ui_that_cannot_listen_leaves_the_firewall_running(testhost):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d, cleanup = run_daemon(testhost, ["--ui-listen", f"127.0.0.1:{port}"])
        try:
            r = d.cli("ui", check=False)
            assert r.returncode != 0 and "cannot listen on 127.0.0.1:%d" % port in r.stderr, r
            assert d.cli("status").returncode == 0
            assert d.run_cell('default = "allow"\n', ["true"]).returncode == 0
        finally:
            cleanup()
    d, cleanup = run_daemon(testhost, ["--ui-listen", "off"])
    try:
        r = d.cli("ui", check=False)
        assert r.returncode != 0 and "off" in r.stderr, r
    finally:
        cleanup()
