"""Start the dashboard (``app.py``: :data:`ppviz.resources.APP`) with ``panel serve``, secure by default.

Defaults: bind ``127.0.0.1`` only, accept websocket connections only from pages served as
``localhost:PORT`` or ``127.0.0.1:PORT``, one process, a ``/liveness`` endpoint, no login, security
headers on every response (:mod:`ppviz.http_headers`; ``PPVIZ_FRAME_ANCESTORS`` lists origins
that may frame the app, none by default).
Everything else is opt-in, by ``ppviz serve`` flag or environment variable (a flag wins):

  --port                    PPVIZ_PORT              1..65535 (default 5006)
  --address                 PPVIZ_ADDRESS           address to bind (default 127.0.0.1; 0.0.0.0 = all)
  --allow-websocket-origin  PPVIZ_ALLOWED_ORIGINS   HOST[:PORT] that may open the websocket; the flag
                                                    repeats, the variable is comma-separated
                                                    (default localhost:PORT,127.0.0.1:PORT)
  --num-procs               PPVIZ_NUM_PROCS         worker processes, >= 1 (default 1)
  --prefix                  PPVIZ_PREFIX            URL prefix when proxied under a sub-path
  --use-xheaders            PPVIZ_USE_XHEADERS      trust X-Forwarded-* headers from a reverse proxy
  --basic-auth              PPVIZ_BASIC_AUTH        password, or JSON file {"user": "password", ...}
  --cookie-secret           PPVIZ_COOKIE_SECRET     signs login cookies (>= 16 characters)
  --oauth-provider          PPVIZ_OAUTH_PROVIDER    Panel OAuth provider (github, google, azure, ...)
  (environment only)        PPVIZ_OAUTH_KEY, PPVIZ_OAUTH_SECRET, PPVIZ_OAUTH_ENCRYPTION_KEY,
                            PPVIZ_OAUTH_REDIRECT_URI, PPVIZ_OAUTH_EXTRA_PARAMS, PPVIZ_OAUTH_JWT_USER

Authentication is Panel's own (``--basic-auth`` / ``--oauth-*`` of ``panel serve``); Panel's
``PANEL_BASIC_AUTH``, ``PANEL_COOKIE_SECRET`` and ``PANEL_OAUTH_*`` variables are honoured as
fallbacks. Secrets (password, cookie secret, OAuth key/secret/encryption key) reach ``panel serve``
through its environment, never its command line, so they do not show in ``ps``. With a login and no
cookie secret a random one is generated per start (logins then do not survive a restart, and several
containers need one shared secret).

:func:`panel_serve_args` and :func:`panel_serve_env` are pure, so tests can check exactly what
would run; :func:`serve` runs it.
"""

from __future__ import annotations

import base64
import importlib.util
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from ppviz.http_headers import frame_ancestors
from ppviz.resources import APP  # app.py in a checkout, ppviz/dashboard/app.py in a wheel

SERVE_SETUP = Path(__file__).resolve().with_name("serve_setup.py")

DEFAULT_PORT = 5006
DEFAULT_ADDRESS = "127.0.0.1"
LIVENESS_ENDPOINT = "liveness"
MIN_COOKIE_SECRET = 16

ORIGIN_FORM = "HOST[:PORT] without scheme or path, e.g. dashboard.example.org or localhost:5006"
_LABEL = r"(?:\*|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
_ORIGIN_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::(?:\*|[0-9]{{1,5}}))?$")
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*$")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Settings field -> (ppviz variable, Panel's own variable(s) honoured as fallback).
ENV_VARS: dict[str, tuple[str, ...]] = {
    "port": ("PPVIZ_PORT",),
    "address": ("PPVIZ_ADDRESS",),
    "allowed_origins": ("PPVIZ_ALLOWED_ORIGINS",),
    "num_procs": ("PPVIZ_NUM_PROCS",),
    "prefix": ("PPVIZ_PREFIX",),
    "use_xheaders": ("PPVIZ_USE_XHEADERS",),
    "basic_auth": ("PPVIZ_BASIC_AUTH", "PANEL_BASIC_AUTH"),
    "cookie_secret": ("PPVIZ_COOKIE_SECRET", "PANEL_COOKIE_SECRET", "BOKEH_COOKIE_SECRET"),
    "oauth_provider": ("PPVIZ_OAUTH_PROVIDER", "PANEL_OAUTH_PROVIDER"),
    "oauth_key": ("PPVIZ_OAUTH_KEY", "PANEL_OAUTH_KEY"),
    "oauth_secret": ("PPVIZ_OAUTH_SECRET", "PANEL_OAUTH_SECRET"),
    "oauth_encryption_key": ("PPVIZ_OAUTH_ENCRYPTION_KEY", "PANEL_OAUTH_ENCRYPTION"),
    "oauth_redirect_uri": ("PPVIZ_OAUTH_REDIRECT_URI", "PANEL_OAUTH_REDIRECT_URI"),
    "oauth_extra_params": ("PPVIZ_OAUTH_EXTRA_PARAMS", "PANEL_OAUTH_EXTRA_PARAMS"),
    "oauth_jwt_user": ("PPVIZ_OAUTH_JWT_USER", "PANEL_OAUTH_JWT_USER"),
}

# How validation messages name each setting (to add the variable a bad value came from).
_FLAGS = {"port": "--port", "address": "--address", "num_procs": "--num-procs", "prefix": "--prefix",
          "allowed_origins": "websocket origin", "basic_auth": "--basic-auth", "cookie_secret": "--cookie-secret",
          "oauth_provider": "--oauth-provider"}

# Secrets travel to ``panel serve`` in these variables of its environment.
_SECRET_ENV = {
    "cookie_secret": "PANEL_COOKIE_SECRET",
    "oauth_key": "PANEL_OAUTH_KEY",
    "oauth_secret": "PANEL_OAUTH_SECRET",
    "oauth_encryption_key": "PANEL_OAUTH_ENCRYPTION",
}


def _check_origin(origin: str) -> str:
    text = origin.strip()
    port = text.rsplit(":", 1)[1] if ":" in text else None
    if not _ORIGIN_RE.match(text) or (port not in (None, "*") and not 1 <= int(port) <= 65535):
        hint = ""
        if "://" in text:
            hint = "; leave out the scheme (http://, https://)"
        elif "/" in text:
            hint = "; leave out the path"
        raise ValueError(f"websocket origin {origin!r} is not of the form {ORIGIN_FORM}{hint}")
    return text


def _check_address(address: str) -> str:
    try:
        ipaddress.ip_address(address)
        return address
    except ValueError:
        pass
    if not _HOST_RE.match(address or ""):
        raise ValueError(
            f"--address {address!r} is not an IP address or host name "
            "(e.g. 127.0.0.1, 0.0.0.0 for all interfaces, or ::1); no scheme, port or path"
        )
    return address


FERNET_HINT = "python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (ValueError, UnicodeEncodeError):
        return False


def read_credentials(path: str | os.PathLike) -> dict[str, str]:
    """The ``{"user": "password"}`` object of a basic-auth credentials file; ValueError if not."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--basic-auth file {str(path)!r} is not readable JSON ({exc}); "
                         'expected an object {"user": "password", ...}') from None
    if not (isinstance(data, dict) and data and all(isinstance(k, str) and k and isinstance(v, str) and v
                                                    for k, v in data.items())):
        raise ValueError(f"--basic-auth file {str(path)!r} must hold a non-empty JSON object "
                         'of user names to passwords, {"user": "password", ...}')
    return data


@dataclass(frozen=True)
class ServeSettings:
    """How to run ``panel serve app.py``; validated on construction (ValueError naming the allowed form).

    ``allowed_origins`` None means the default allow-list ``localhost:PORT, 127.0.0.1:PORT``.
    ``basic_auth`` is a password (any user name) or the path of a JSON credentials file.
    """

    port: int = DEFAULT_PORT
    address: str = DEFAULT_ADDRESS
    allowed_origins: tuple[str, ...] | None = None
    num_procs: int = 1
    prefix: str | None = None
    use_xheaders: bool = False
    show: bool = False
    basic_auth: str | None = field(default=None, repr=False)
    cookie_secret: str | None = field(default=None, repr=False)
    oauth_provider: str | None = None
    oauth_key: str | None = field(default=None, repr=False)
    oauth_secret: str | None = field(default=None, repr=False)
    oauth_encryption_key: str | None = field(default=None, repr=False)
    oauth_redirect_uri: str | None = None
    oauth_extra_params: str | None = None
    oauth_jwt_user: str | None = None

    def __post_init__(self):
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"--port {self.port!r} is out of range; allowed a whole number 1..65535")
        _check_address(self.address)
        if isinstance(self.num_procs, bool) or not isinstance(self.num_procs, int) or self.num_procs < 1:
            raise ValueError(f"--num-procs {self.num_procs!r} is out of range; allowed a whole number >= 1")
        if self.allowed_origins is not None:
            origins = tuple(_check_origin(o) for o in self.allowed_origins)
            if not origins:
                raise ValueError(f"the websocket origin allow-list is empty; give at least one {ORIGIN_FORM}")
            object.__setattr__(self, "allowed_origins", origins)
        if self.prefix is not None:
            p = self.prefix.strip("/")
            if not _PREFIX_RE.match(p):
                raise ValueError(f"--prefix {self.prefix!r} is not a URL path like /ppviz (letters, digits, . _ ~ - and /)")
            object.__setattr__(self, "prefix", "/" + p)
        if self.basic_auth is not None:
            if not self.basic_auth:
                raise ValueError("--basic-auth is empty; give a password or a JSON credentials file path")
            if os.path.isfile(self.basic_auth):
                read_credentials(self.basic_auth)
            elif self.basic_auth.lower().endswith(".json"):
                raise ValueError(f"--basic-auth file {self.basic_auth!r} does not exist; give a password or an "
                                 'existing JSON file {"user": "password", ...}')
        if self.cookie_secret is not None and len(self.cookie_secret) < MIN_COOKIE_SECRET:
            raise ValueError(
                f"--cookie-secret is too short ({len(self.cookie_secret)} characters); allowed at least "
                f"{MIN_COOKIE_SECRET}, e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        frame_ancestors()  # PPVIZ_FRAME_ANCESTORS, read by the server's security headers: refuse it here
        if self.basic_auth and self.oauth_provider:
            raise ValueError("choose one login: --basic-auth or --oauth-provider, not both")
        if self.oauth_provider is not None and not re.match(r"^[a-z][a-z0-9_]*$", self.oauth_provider):
            raise ValueError(f"--oauth-provider {self.oauth_provider!r} is not a Panel OAuth provider name "
                             "(lower-case, e.g. github, google, azure, okta, auth0, generic)")
        if self.oauth_encryption_key is not None and not _is_fernet_key(self.oauth_encryption_key):
            raise ValueError(f"the OAuth encryption key is not 32 url-safe base64-encoded bytes; make one with: {FERNET_HINT}")
        if self.oauth_provider and self.oauth_provider != "pam":
            missing = [v for v, value in (("PPVIZ_OAUTH_KEY", self.oauth_key), ("PPVIZ_OAUTH_SECRET", self.oauth_secret))
                       if not value]
            if missing:
                raise ValueError(f"--oauth-provider {self.oauth_provider} needs the OAuth client id and secret; "
                                 f"set {' and '.join(missing)} (or Panel's PANEL_OAUTH_KEY / PANEL_OAUTH_SECRET)")

    @property
    def origins(self) -> tuple[str, ...]:
        """The effective websocket origin allow-list."""
        if self.allowed_origins is not None:
            return self.allowed_origins
        return (f"localhost:{self.port}", f"127.0.0.1:{self.port}")

    @property
    def basic_auth_file(self) -> bool:
        return bool(self.basic_auth) and os.path.isfile(self.basic_auth)

    @property
    def auth(self) -> str:
        """``none``, ``basic`` or ``oauth:<provider>``."""
        if self.basic_auth:
            return "basic"
        if self.oauth_provider:
            return f"oauth:{self.oauth_provider}"
        return "none"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "ServeSettings":
        """Settings from ``PPVIZ_*`` variables (Panel's ``PANEL_*`` as fallback for logins).

        ``overrides`` (e.g. command-line flags) win over the environment; None means "not given".
        """
        env = os.environ if env is None else env
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown serve settings {sorted(unknown)}; known: {sorted(names)}")
        values: dict = {}
        sources: dict[str, str] = {}
        for name, variables in ENV_VARS.items():
            var = next((v for v in variables if env.get(v, "") != ""), None)
            if var is None:
                continue
            sources[name] = var
            raw = env[var]
            if name in ("port", "num_procs"):
                try:
                    values[name] = int(raw.strip())
                except ValueError:
                    allowed = "1..65535" if name == "port" else ">= 1"
                    raise ValueError(f"{var}={raw!r} is not a whole number; allowed {allowed}") from None
            elif name == "allowed_origins":
                values[name] = tuple(o.strip() for o in raw.split(",") if o.strip())
                if not values[name]:
                    del values[name]
            elif name == "use_xheaders":
                flag = raw.strip().lower()
                if flag not in _TRUE | _FALSE:
                    raise ValueError(f"{var}={raw!r} is not a yes/no value; allowed 1/0, true/false, yes/no, on/off")
                values[name] = flag in _TRUE
            else:
                values[name] = raw
        for name, value in overrides.items():
            if value is None:
                continue
            if name == "allowed_origins":
                value = tuple(value)
            values[name] = value
            sources.pop(name, None)
        try:
            return cls(**values)
        except ValueError as exc:
            # Say which variable a bad value came from (the messages name the flag).
            msg = str(exc)
            for name, var in sources.items():
                if msg.startswith(_FLAGS.get(name, "\0")):
                    raise ValueError(f"{msg} (from {var})") from None
            raise


    def with_cookie_secret(self) -> "ServeSettings":
        """These settings, with a random cookie secret when a login needs one and none was given."""
        if self.auth != "none" and not self.cookie_secret:
            return replace(self, cookie_secret=secrets.token_urlsafe(32))
        return self


def panel_serve_args(settings: ServeSettings) -> list[str]:
    """The arguments after ``panel serve`` for ``settings`` (no secrets: those go in the environment)."""
    s = settings
    # --index: the app answers at / too, with its query (Bokeh's redirect from / to /app drops
    # the query, and with it the view a shared link carries)
    args = [str(APP), "--index", APP.stem, "--port", str(s.port), "--address", s.address]
    for origin in s.origins:
        args += ["--allow-websocket-origin", origin]
    args += ["--num-procs", str(s.num_procs), "--liveness", "--liveness-endpoint", LIVENESS_ENDPOINT]
    args += ["--setup", str(SERVE_SETUP)]  # security headers on every response (ppviz.http_headers)
    # run app.py once at start-up: the first visitor does not pay for importing HoloViews,
    # GeoViews and the pages (with the landing run warmed by the setup script, the landing opens fast)
    args.append("--warm")
    if s.prefix:
        args += ["--prefix", s.prefix]
    if s.use_xheaders:
        args.append("--use-xheaders")
    if s.basic_auth_file:
        args += ["--basic-auth", str(Path(s.basic_auth).resolve())]
    if s.oauth_provider:
        args += ["--oauth-provider", s.oauth_provider]
        for flag, value in (("--oauth-redirect-uri", s.oauth_redirect_uri),
                            ("--oauth-extra-params", s.oauth_extra_params),
                            ("--oauth-jwt-user", s.oauth_jwt_user)):
            if value:
                args += [flag, value]
    if s.show:
        args.append("--show")
    return args


def panel_serve_env(settings: ServeSettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``panel serve``: ``base`` without login variables, plus this run's secrets.

    Panel refuses a setting given both as flag and variable, so every login variable it reads is
    dropped from ``base`` and set again only from ``settings``; the ``PPVIZ_*`` secrets are dropped
    too, so the app process does not carry them twice.
    """
    env = dict(os.environ if base is None else base)
    for name, variables in ENV_VARS.items():
        if name in ("basic_auth", "cookie_secret") or name.startswith("oauth_"):
            for v in variables:
                env.pop(v, None)
    # Bokeh's and Panel's JS/CSS from this server, not from cdn.bokeh.org / cdn.holoviz.org: the
    # app must work on machines without internet (a value set by the user wins).
    env.setdefault("BOKEH_RESOURCES", "server")
    s = settings
    if s.basic_auth and not s.basic_auth_file:
        env["PANEL_BASIC_AUTH"] = s.basic_auth
    for name, var in _SECRET_ENV.items():
        value = getattr(s, name)
        if value:
            env[var] = value
    return env


def panel_serve_command(settings: ServeSettings) -> list[str]:
    """The full command line: this Python running ``panel serve``."""
    return [sys.executable, "-m", "panel", "serve", *panel_serve_args(settings)]


def describe(settings: ServeSettings) -> str:
    """One paragraph on what is being served, for the terminal."""
    s = settings
    host = s.address if s.address not in ("0.0.0.0", "::") else "<this machine>"
    prefix = s.prefix or ""
    lines = [f"ppviz dashboard on http://{host}:{s.port}{prefix}/app "
             f"(bound to {s.address}; {s.num_procs} process{'es' if s.num_procs > 1 else ''}; login: {s.auth})",
             f"  websocket origins allowed: {', '.join(s.origins)}",
             f"  liveness: http://{host}:{s.port}{prefix}/{LIVENESS_ENDPOINT}"]
    if s.allowed_origins is None and s.address not in ("127.0.0.1", "localhost", "::1"):
        lines.append("  note: only localhost pages may open the websocket; add the public host name with "
                     "--allow-websocket-origin HOST[:PORT] or PPVIZ_ALLOWED_ORIGINS")
    if s.address not in ("127.0.0.1", "localhost", "::1") and s.auth == "none":
        lines.append("  note: reachable from other machines without a login; consider --basic-auth or a proxy with auth")
    return "\n".join(lines)


def serve(settings: ServeSettings | None = None, **overrides) -> int:
    """Run ``panel serve app.py`` in the foreground and return its exit status.

    ``settings`` default to :meth:`ServeSettings.from_env` with ``overrides``. SIGTERM and Ctrl-C
    are passed on to ``panel serve`` and its worker processes (so ``docker stop`` shuts them all down).
    """
    if not APP.exists():
        raise FileNotFoundError(f"the dashboard entry {APP} is missing (a checkout has app.py at its top level; "
                                "an installed wheel has ppviz/dashboard/app.py)")
    if settings is None:
        settings = ServeSettings.from_env(**overrides)
    elif overrides:
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if settings.oauth_encryption_key and importlib.util.find_spec("cryptography") is None:
        raise ValueError("an OAuth encryption key needs the cryptography package: pip install cryptography")
    generated = settings.auth != "none" and not settings.cookie_secret
    settings = settings.with_cookie_secret()
    print(describe(settings), file=sys.stderr)
    if generated:
        print("  note: no cookie secret given; generated one for this run (logins end at restart; "
              "set PPVIZ_COOKIE_SECRET to keep them or to share them between processes/containers)",
              file=sys.stderr)
    # panel serve gets a process group of its own: with --num-procs > 1 it forks workers, and a
    # signal to the whole group stops them all (SIGTERM to the first process alone orphans them).
    posix = hasattr(os, "killpg")
    proc = subprocess.Popen(panel_serve_command(settings), env=panel_serve_env(settings), start_new_session=posix)

    def signal_group(signum) -> None:
        try:
            if posix:
                os.killpg(proc.pid, signum)
            elif proc.poll() is None:
                proc.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

    def forward(signum, _frame):
        signal_group(signum)

    try:
        previous = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread: nothing to forward
        previous = None
    try:
        return proc.wait()
    except KeyboardInterrupt:
        signal_group(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            signal_group(signal.SIGTERM)
            proc.wait()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if posix:  # workers left behind by a panel serve that ended on its own
            signal_group(signal.SIGTERM)
