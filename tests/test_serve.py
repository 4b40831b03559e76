"""ppviz serve: settings, the panel serve command it builds, and a real server with a login.

Unit tests check :func:`ppviz.serve.panel_serve_args` / :func:`panel_serve_env` exactly (no
server). The integration tests start ``python -m ppviz serve`` on a free loopback port with basic
auth and check, over plain HTTP: /liveness answers without a login, the app does not, the Panel
login form lets a user in, the websocket origin allow-list holds, secrets stay off command lines,
and the default bind is loopback only.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from ppviz import serve as serve_mod
from ppviz.serve import APP, SERVE_SETUP, ServeSettings, panel_serve_args, panel_serve_env
from ppviz.serve_probe import liveness_url, wait_for_liveness

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct-horse-battery-staple"
COOKIE_SECRET = "0123456789abcdef0123456789abcdef"
FERNET_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes


# --------------------------------------------------------------------------------------------
# settings and the argument builder


def test_defaults_are_loopback_with_a_localhost_allow_list():
    s = ServeSettings()
    assert (s.address, s.port, s.num_procs, s.auth) == ("127.0.0.1", 5006, 1, "none")
    assert panel_serve_args(s) == [
        str(APP), "--index", "app", "--port", "5006", "--address", "127.0.0.1",
        "--allow-websocket-origin", "localhost:5006", "--allow-websocket-origin", "127.0.0.1:5006",
        "--num-procs", "1", "--liveness", "--liveness-endpoint", "liveness", "--setup", str(SERVE_SETUP),
        "--warm",
    ]


def test_from_env_reads_every_setting():
    env = {
        "PPVIZ_PORT": "8080",
        "PPVIZ_ADDRESS": "0.0.0.0",
        "PPVIZ_ALLOWED_ORIGINS": " dash.example.org , dash.example.org:8443,,",
        "PPVIZ_NUM_PROCS": "4",
        "PPVIZ_PREFIX": "ppviz/",
        "PPVIZ_USE_XHEADERS": "yes",
        "UNRELATED": "x",
    }
    s = ServeSettings.from_env(env)
    assert s.origins == ("dash.example.org", "dash.example.org:8443")
    assert s.prefix == "/ppviz" and s.use_xheaders
    args = panel_serve_args(s)
    assert args[:7] == [str(APP), "--index", "app", "--port", "8080", "--address", "0.0.0.0"]
    assert _flag_values(args, "--allow-websocket-origin") == ["dash.example.org", "dash.example.org:8443"]
    assert _flag_values(args, "--num-procs") == ["4"]
    assert _flag_values(args, "--prefix") == ["/ppviz"]
    assert "--use-xheaders" in args and "--liveness" in args


def test_flags_win_over_environment_and_none_means_not_given():
    env = {"PPVIZ_PORT": "8080", "PPVIZ_ALLOWED_ORIGINS": "a.example.org", "PPVIZ_NUM_PROCS": "3"}
    s = ServeSettings.from_env(env, port=9000, allowed_origins=["b.example.org:443", "c.example.org"],
                               num_procs=None, address=None)
    assert (s.port, s.num_procs, s.address) == (9000, 3, "127.0.0.1")
    assert s.origins == ("b.example.org:443", "c.example.org")  # the flag list replaces the variable's


def test_default_origins_follow_the_port_and_an_explicit_list_replaces_them():
    assert ServeSettings(port=7000).origins == ("localhost:7000", "127.0.0.1:7000")
    s = ServeSettings(port=7000, allowed_origins=("dash.example.org",))
    assert s.origins == ("dash.example.org",)
    assert "localhost:7000" not in panel_serve_args(s)


@pytest.mark.parametrize("origin", ["localhost", "localhost:5006", "dash.example.org", "*.example.org:443",
                                    "192.168.1.*", "10.0.0.5:*"])
def test_origins_of_the_host_port_form_are_accepted(origin):
    assert ServeSettings(allowed_origins=(origin,)).origins == (origin,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(port=0), r"--port 0 is out of range; allowed a whole number 1\.\.65535"),
        (dict(port=65536), r"allowed a whole number 1\.\.65535"),
        (dict(num_procs=0), r"--num-procs 0 is out of range; allowed a whole number >= 1"),
        (dict(num_procs=-2), r"allowed a whole number >= 1"),
        (dict(allowed_origins=("https://dash.example.org",)), r"HOST\[:PORT\].*leave out the scheme"),
        (dict(allowed_origins=("dash.example.org/app",)), r"HOST\[:PORT\].*leave out the path"),
        (dict(allowed_origins=("dash.example.org:99999",)), r"not of the form HOST\[:PORT\]"),
        (dict(allowed_origins=("two words",)), r"not of the form HOST\[:PORT\]"),
        (dict(allowed_origins=()), r"allow-list is empty; give at least one HOST\[:PORT\]"),
        (dict(address="http://0.0.0.0"), r"--address .* is not an IP address or host name"),
        (dict(address=""), r"--address .* is not an IP address or host name"),
        (dict(prefix="my app"), r"--prefix .* is not a URL path like /ppviz"),
        (dict(cookie_secret="short"), r"--cookie-secret is too short \(5 characters\); allowed at least 16"),
        (dict(basic_auth=""), r"--basic-auth is empty"),
        (dict(basic_auth="/nonexistent/users.json"), r"file .* does not exist; give a password or an existing JSON"),
        (dict(basic_auth=PASSWORD, oauth_provider="github", oauth_key="k", oauth_secret="s"),
         r"choose one login: --basic-auth or --oauth-provider"),
        (dict(oauth_provider="github"), r"needs the OAuth client id and secret; set PPVIZ_OAUTH_KEY and PPVIZ_OAUTH_SECRET"),
        (dict(oauth_provider="Git Hub", oauth_key="k", oauth_secret="s"), r"not a Panel OAuth provider name"),
        (dict(oauth_provider="github", oauth_key="k", oauth_secret="s", oauth_encryption_key="short"),
         r"not 32 url-safe base64-encoded bytes; make one with"),
    ],
)
def test_bad_settings_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ServeSettings(**kwargs)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PPVIZ_PORT": "http"}, r"PPVIZ_PORT='http' is not a whole number; allowed 1\.\.65535"),
        ({"PPVIZ_PORT": "0"}, r"--port 0 is out of range.*\(from PPVIZ_PORT\)"),
        ({"PPVIZ_NUM_PROCS": "many"}, r"PPVIZ_NUM_PROCS='many' is not a whole number; allowed >= 1"),
        ({"PPVIZ_NUM_PROCS": "0"}, r"allowed a whole number >= 1 \(from PPVIZ_NUM_PROCS\)"),
        ({"PPVIZ_ALLOWED_ORIGINS": "ok.example.org,http://bad.example.org"},
         r"'http://bad\.example\.org' is not of the form HOST\[:PORT\].*\(from PPVIZ_ALLOWED_ORIGINS\)"),
        ({"PPVIZ_USE_XHEADERS": "maybe"}, r"PPVIZ_USE_XHEADERS='maybe' is not a yes/no value"),
    ],
)
def test_bad_environment_names_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        ServeSettings.from_env(env)


def test_credentials_file_goes_on_the_command_line_by_path(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": "wonderland-1", "bob": "builder-22"}))
    s = ServeSettings(basic_auth=str(users), cookie_secret=COOKIE_SECRET)
    assert _flag_values(panel_serve_args(s), "--basic-auth") == [str(users.resolve())]
    env = panel_serve_env(s, {})
    assert "PANEL_BASIC_AUTH" not in env and env["PANEL_COOKIE_SECRET"] == COOKIE_SECRET


@pytest.mark.parametrize("content", ["not json", "[1, 2]", "{}", '{"alice": 3}'])
def test_a_bad_credentials_file_is_refused(tmp_path, content):
    users = tmp_path / "users.json"
    users.write_text(content)
    with pytest.raises(ValueError, match=r'--basic-auth file .*\{"user": "password", \.\.\.\}'):
        ServeSettings(basic_auth=str(users))


def test_secrets_travel_in_the_environment_never_on_the_command_line():
    base = {
        "PATH": "/usr/bin", "PPVIZ_DATA_DIR": "/data",
        # inherited login variables: Panel refuses a setting given twice, and the app need not see them
        "PANEL_BASIC_AUTH": "stale", "BOKEH_COOKIE_SECRET": "stale", "PANEL_OAUTH_PROVIDER": "google",
        "PPVIZ_BASIC_AUTH": PASSWORD, "PPVIZ_OAUTH_SECRET": "stale",
    }
    s = ServeSettings(basic_auth=PASSWORD, cookie_secret=COOKIE_SECRET)
    args = panel_serve_args(s)
    assert PASSWORD not in " ".join(args) and COOKIE_SECRET not in " ".join(args)
    assert "--basic-auth" not in args and "--cookie-secret" not in args
    env = panel_serve_env(s, base)
    assert env["PANEL_BASIC_AUTH"] == PASSWORD and env["PANEL_COOKIE_SECRET"] == COOKIE_SECRET
    for gone in ("BOKEH_COOKIE_SECRET", "PANEL_OAUTH_PROVIDER", "PPVIZ_BASIC_AUTH", "PPVIZ_OAUTH_SECRET"):
        assert gone not in env
    assert env["PATH"] == "/usr/bin" and env["PPVIZ_DATA_DIR"] == "/data"


def test_oauth_passes_through_panel():
    env = {
        "PPVIZ_OAUTH_PROVIDER": "github", "PPVIZ_OAUTH_KEY": "client-id", "PPVIZ_OAUTH_SECRET": "client-secret",
        "PPVIZ_OAUTH_REDIRECT_URI": "https://dash.example.org/login", "PPVIZ_OAUTH_ENCRYPTION_KEY": FERNET_KEY,
        "PPVIZ_OAUTH_EXTRA_PARAMS": "{'scope': 'read:user'}", "PPVIZ_COOKIE_SECRET": COOKIE_SECRET,
    }
    s = ServeSettings.from_env(env)
    assert s.auth == "oauth:github"
    args = panel_serve_args(s)
    assert _flag_values(args, "--oauth-provider") == ["github"]
    assert _flag_values(args, "--oauth-redirect-uri") == ["https://dash.example.org/login"]
    assert _flag_values(args, "--oauth-extra-params") == ["{'scope': 'read:user'}"]
    assert not {"client-secret", FERNET_KEY, "client-id"} & set(args)
    child = panel_serve_env(s, env)
    assert (child["PANEL_OAUTH_KEY"], child["PANEL_OAUTH_SECRET"], child["PANEL_OAUTH_ENCRYPTION"]) == (
        "client-id", "client-secret", FERNET_KEY)


def test_panel_variables_are_fallbacks_and_ppviz_ones_win():
    assert ServeSettings.from_env({"PANEL_BASIC_AUTH": "from-panel"}).basic_auth == "from-panel"
    both = {"PANEL_BASIC_AUTH": "from-panel", "PPVIZ_BASIC_AUTH": "from-ppviz"}
    assert ServeSettings.from_env(both).basic_auth == "from-ppviz"
    assert ServeSettings.from_env({"BOKEH_COOKIE_SECRET": COOKIE_SECRET}).cookie_secret == COOKIE_SECRET


def test_a_login_without_cookie_secret_gets_a_random_one():
    s = ServeSettings(basic_auth=PASSWORD)
    a, b = s.with_cookie_secret(), s.with_cookie_secret()
    assert len(a.cookie_secret) >= 32 and a.cookie_secret != b.cookie_secret
    given = ServeSettings(basic_auth=PASSWORD, cookie_secret=COOKIE_SECRET)
    assert given.with_cookie_secret().cookie_secret == COOKIE_SECRET
    assert ServeSettings().with_cookie_secret().cookie_secret is None  # no login, no secret


def test_secrets_are_not_in_the_repr():
    text = repr(ServeSettings(basic_auth=PASSWORD, cookie_secret=COOKIE_SECRET))
    assert PASSWORD not in text and COOKIE_SECRET not in text


def test_every_flag_we_pass_exists_in_this_panel_serve():
    from panel.command.serve import Serve

    known = {name for name, _ in Serve.args if name.startswith("--")}
    s = ServeSettings(port=5100, address="0.0.0.0", allowed_origins=("a.example.org",), num_procs=2,
                      prefix="/ppviz", use_xheaders=True, show=True, oauth_provider="generic",
                      oauth_key="k", oauth_secret="s", oauth_redirect_uri="https://a.example.org/login",
                      oauth_extra_params="{}", oauth_jwt_user="email", cookie_secret=COOKIE_SECRET)
    used = {a for a in panel_serve_args(s) if a.startswith("--")}
    assert used <= known, f"flags panel serve does not know: {sorted(used - known)}"
    assert "--basic-auth" in known and "--cookie-secret" in known  # what the docs promise


def test_describe_warns_about_open_binds():
    text = serve_mod.describe(ServeSettings(address="0.0.0.0"))
    assert "only localhost pages may open the websocket" in text and "without a login" in text
    assert "note" not in serve_mod.describe(ServeSettings())


def test_cli_passes_flags_to_the_settings(monkeypatch):
    from ppviz import cli

    seen = {}
    monkeypatch.setattr(serve_mod, "serve", lambda settings: seen.setdefault("s", settings) and 0)
    for var in ("PPVIZ_PORT", "PPVIZ_ADDRESS", "PPVIZ_ALLOWED_ORIGINS", "PPVIZ_NUM_PROCS", "PPVIZ_BASIC_AUTH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PPVIZ_NUM_PROCS", "3")
    rc = cli.main(["serve", "--port", "5123", "--allow-websocket-origin", "a.example.org",
                   "--allow-websocket-origin", "b.example.org:8443", "--use-xheaders"])
    s = seen["s"]
    assert rc == 0
    assert (s.port, s.address, s.num_procs, s.use_xheaders) == (5123, "127.0.0.1", 3, True)
    assert s.origins == ("a.example.org", "b.example.org:8443")


def test_cli_reports_bad_settings_in_one_line(capsys):
    from ppviz import cli

    assert cli.main(["serve", "--num-procs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ppviz: error: --num-procs 0 is out of range; allowed a whole number >= 1"


# --------------------------------------------------------------------------------------------
# a real server


def _flag_values(args, flag):
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(port, method, path, headers=None, body=None):
    """One request to 127.0.0.1:port, no redirects followed: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=90)  # the first page of a session builds the app: slow on a busy 2-core machine
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def _cookies(headers) -> dict[str, str]:
    out = {}
    for line in headers.get_all("Set-Cookie") or []:
        name, _, rest = line.partition("=")
        out[name.strip()] = rest.split(";", 1)[0]
    return out


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def stop_server(proc: subprocess.Popen) -> None:
    """End ``ppviz serve`` (SIGTERM, which it passes on to panel serve), then SIGKILL leftovers.

    The leftovers are this server's own descendants: panel serve runs in a process group of its
    own, and with --num-procs its workers too.
    """
    family = descendants(proc.pid)
    family += [p for c in list(family) for p in descendants(c) if p not in family]
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    deadline = time.time() + 5
    for pid in family:
        while time.time() < deadline and Path(f"/proc/{pid}").exists() and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """``python -m ppviz serve`` with basic auth on a free port (default address); stopped afterwards."""
    port = _free_port()
    tmp = tmp_path_factory.mktemp("serve")
    log = tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANEL_", "BOKEH_", "PPVIZ_OAUTH"))}
    for var in ("PPVIZ_ADDRESS", "PPVIZ_ALLOWED_ORIGINS", "PPVIZ_PORT", "PPVIZ_PREFIX", "PPVIZ_NUM_PROCS"):
        env.pop(var, None)
    env.update(PPVIZ_BASIC_AUTH=PASSWORD, PPVIZ_COOKIE_SECRET=COOKIE_SECRET, PPVIZ_SYNTH_DAYS="3")
    env.setdefault("PPVIZ_DATA_DIR", str(tmp / "data"))
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "ppviz", "serve", "--port", str(port)], cwd=REPO, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for_liveness(proc, liveness_url(port), timeout=120, log=log)  # ppviz serve warms the app first
        yield {"port": port, "proc": proc, "log": log}
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def login_cookies(auth_server):
    port = auth_server["port"]
    status, headers, _ = _http(port, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                               urllib.parse.urlencode({"username": "alice", "password": PASSWORD}))
    cookies = _cookies(headers)
    assert status == 302 and "user" in cookies, (status, dict(headers))
    return "; ".join(f"{k}={v}" for k, v in cookies.items() if v and v != '""')


def test_liveness_answers_without_login(auth_server):
    status, headers, body = _http(auth_server["port"], "GET", "/liveness")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"/liveness": True}


@pytest.mark.parametrize("path", ["/app", "/"])
def test_unauthenticated_requests_are_refused(auth_server, path):
    status, headers, body = _http(auth_server["port"], "GET", path)
    assert status in (301, 302, 303, 307, 401, 403), status
    if status in (301, 302, 303, 307):
        assert "login" in headers["Location"]
    assert b"ppviz" not in body


def test_wrong_password_gets_no_session(auth_server):
    status, headers, _ = _http(auth_server["port"], "POST", "/login",
                               {"Content-Type": "application/x-www-form-urlencoded"},
                               urllib.parse.urlencode({"username": "alice", "password": "guess"}))
    assert status == 302 and "error" in headers["Location"]
    assert "user" not in _cookies(headers)


def test_login_form_then_the_app_is_served(auth_server, login_cookies):
    status, _, body = _http(auth_server["port"], "GET", "/login")
    assert status == 200 and b'name="password"' in body  # Panel's own login form
    status, _, body = _http(auth_server["port"], "GET", "/app", {"Cookie": login_cookies})
    assert status == 200
    # the root serves the app itself, so a shared link's query (the view) is not lost in a redirect
    status, _, _ = _http(auth_server["port"], "GET", "/?region=alps&page=2", {"Cookie": login_cookies})
    assert status == 200
    assert b"ppviz: pseudo-precipitation over Europe" in body


def _websocket_handshake(port, origin, cookies) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall((f"GET /app/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\nCookie: {cookies}\r\n\r\n").encode())
        status_line = s.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1])


def test_websocket_origins_are_an_allow_list(auth_server, login_cookies):
    port = auth_server["port"]
    assert _websocket_handshake(port, "http://evil.example.org", login_cookies) == 403
    assert _websocket_handshake(port, f"http://127.0.0.1:{port + 1}", login_cookies) == 403
    # the allowed origin passes the origin check (the handshake itself then upgrades)
    assert _websocket_handshake(port, f"http://localhost:{port}", login_cookies) == 101


def test_secrets_are_not_on_any_command_line(auth_server):
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("no /proc on this system")
    family = [auth_server["proc"].pid, *descendants(auth_server["proc"].pid)]
    cmdlines = []
    for pid in family:
        try:
            cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError:
            continue
    assert any(b"ppviz\0serve" in c for c in cmdlines) and any(b"panel\0serve" in c for c in cmdlines)
    for c in cmdlines:
        assert PASSWORD.encode() not in c and COOKIE_SECRET.encode() not in c


def test_stopping_ppviz_serve_stops_panel_serve(tmp_path):
    """SIGTERM to ppviz serve (what docker stop sends) ends panel serve and its workers too."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANEL_", "BOKEH_", "PPVIZ_OAUTH", "PPVIZ_BASIC"))}
    env.update(PPVIZ_NUM_PROCS="2", PPVIZ_ADDRESS="127.0.0.1")
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "ppviz", "serve", "--port", str(port)], cwd=REPO, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for_liveness(proc, liveness_url(port), timeout=120, log=log)  # ppviz serve warms the app first
        family = descendants(proc.pid)
        assert len(family) >= 3, family  # panel serve and two workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) is not None
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in family):
            time.sleep(0.1)
        assert not [p for p in family if _alive(p)], "panel serve processes outlived ppviz serve"
    finally:
        stop_server(proc)


def _non_loopback_ipv4() -> str | None:
    candidates = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            candidates.append(s.getsockname()[0])
    except OSError:
        pass
    try:
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    for ip in candidates:
        if not ip.startswith("127.") and ip != "0.0.0.0":
            return ip
    return None


def test_default_bind_is_loopback_only(auth_server):
    port = auth_server["port"]
    assert "bound to 127.0.0.1" in auth_server["log"].read_text()
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    ip = _non_loopback_ipv4()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    # control: that address does accept local connections when something listens on it
    with socket.socket() as listener:
        listener.bind((ip, 0))
        listener.listen(1)
        socket.create_connection((ip, listener.getsockname()[1]), timeout=5).close()
    with pytest.raises(OSError):
        socket.create_connection((ip, port), timeout=5).close()


def test_resources_come_from_the_server_not_a_cdn(monkeypatch):
    from ppviz.serve import ServeSettings, panel_serve_env

    monkeypatch.delenv("BOKEH_RESOURCES", raising=False)
    assert panel_serve_env(ServeSettings(), {})["BOKEH_RESOURCES"] == "server"
    assert panel_serve_env(ServeSettings(), {"BOKEH_RESOURCES": "cdn"})["BOKEH_RESOURCES"] == "cdn"


@pytest.mark.parametrize("path,cookie", [("/liveness", False), ("/login", False), ("/app", True),
                                         ("/static/js/bokeh.min.js", False)])
def test_every_response_carries_the_security_headers(auth_server, login_cookies, path, cookie):
    from ppviz.http_headers import security_headers

    status, headers, _ = _http(auth_server["port"], "GET", path, {"Cookie": login_cookies} if cookie else {})
    assert status in (200, 304, 404), (path, status)
    for name, value in security_headers("").items():
        assert headers.get(name) == value, (path, name, headers.get(name))
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "connect-src 'self'" in csp


def test_frame_ancestors_are_origins_only(monkeypatch):
    from ppviz.http_headers import frame_ancestors, security_headers

    assert frame_ancestors("") == "'none'"
    h = security_headers("https://lms.example.org 'self'")
    assert "frame-ancestors https://lms.example.org 'self'" in h["Content-Security-Policy"]
    assert "X-Frame-Options" not in h  # it cannot name origins: CSP's frame-ancestors decides
    assert security_headers("")["X-Frame-Options"] == "DENY"
    for bad in ("*", "javascript:alert(1)", "https://a.org; script-src *", "'unsafe-inline'"):
        with pytest.raises(ValueError, match="PPVIZ_FRAME_ANCESTORS.*is not an origin"):
            frame_ancestors(bad)
    # ppviz serve refuses a bad value before it starts a server
    monkeypatch.setenv("PPVIZ_FRAME_ANCESTORS", "* evil")
    with pytest.raises(ValueError, match="PPVIZ_FRAME_ANCESTORS"):
        ServeSettings()
