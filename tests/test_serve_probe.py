"""ppviz.serve_probe: one liveness probe (the image's HEALTHCHECK) and the wait for a started server.

A real ``ppviz serve`` is probed in tests/test_serve.py, tests/test_wheel.py and
tests/test_dockerfile.py (which also runs the Dockerfile's HEALTHCHECK command); here a small
standard-library HTTP server stands in, so the failures can be forced.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading

import pytest

from ppviz.serve_probe import liveness_url, main, probe, wait_for_liveness


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server name
        if self.path.endswith("/liveness"):
            body, status = json.dumps({self.path: True}).encode(), 200
        else:
            body, status = b"no", 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_liveness_url_follows_port_and_prefix():
    assert liveness_url(5006) == "http://127.0.0.1:5006/liveness"
    assert liveness_url(8000, prefix="/ppviz/") == "http://127.0.0.1:8000/ppviz/liveness"
    assert liveness_url(8000, prefix="a/b") == "http://127.0.0.1:8000/a/b/liveness"


def test_probe_and_wait_on_a_live_server(server):
    assert probe(liveness_url(server)) == (True, '{"/liveness": true}')
    assert wait_for_liveness(None, liveness_url(server, prefix="p"), timeout=5) == '{"/p/liveness": true}'
    ok, why = probe(f"http://127.0.0.1:{server}/other")
    assert not ok and why.endswith("/other answered 404")


def test_wait_fails_at_once_when_the_server_died_and_shows_its_output(tmp_path):
    log = tmp_path / "serve.log"
    log.write_text("starting\nTraceback: port in use\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(RuntimeError, match=r"(?s)server exited with 3 before http://127\.0\.0\.1:\d+/liveness "
                                           r"answered\nstarting\nTraceback: port in use"):
        wait_for_liveness(proc, liveness_url(_closed_port()), timeout=30, log=log)


def test_wait_times_out_naming_the_url_and_the_last_failure(tmp_path):
    port = _closed_port()
    with pytest.raises(RuntimeError, match=rf"no answer from http://127\.0\.0\.1:{port}/liveness within 0\.6 s "
                                           rf"\(last: http://127\.0\.0\.1:{port}/liveness did not answer"):
        wait_for_liveness(None, liveness_url(port), timeout=0.6, interval=0.1)


def test_command_line_exit_status(server, monkeypatch, capsys):
    monkeypatch.setenv("PPVIZ_PORT", str(server))
    monkeypatch.setenv("PPVIZ_PREFIX", "/dash")
    assert main([]) == 0  # the URL from PPVIZ_PORT and PPVIZ_PREFIX, as ppviz serve reads them
    assert main(["--url", f"http://127.0.0.1:{server}/nope"]) == 1
    assert "/nope answered 404" in capsys.readouterr().err
    monkeypatch.setenv("PPVIZ_PORT", str(_closed_port()))
    assert main(["--wait", "0.5"]) == 1
    assert "no answer from" in capsys.readouterr().err
    monkeypatch.setenv("PPVIZ_PORT", "http")
    assert main([]) == 1
    assert "PPVIZ_PORT='http' is not a whole number" in capsys.readouterr().err
