"""``ppviz serve``: the dashboard (:mod:`ppviz.serve`)."""

from __future__ import annotations



def _cmd_serve(args) -> int:
    from ppviz.serve import ServeSettings, serve

    settings = ServeSettings.from_env(
        port=args.port, address=args.address, allowed_origins=args.allow_websocket_origin,
        num_procs=args.num_procs, prefix=args.prefix, use_xheaders=args.use_xheaders or None,
        show=args.show, basic_auth=args.basic_auth, cookie_secret=args.cookie_secret,
        oauth_provider=args.oauth_provider,
    )
    return serve(settings)


def add_parsers(sub) -> None:
    """Add this module's subcommands to ``sub`` (the ``ppviz`` subparsers)."""
    sv = sub.add_parser("serve", help="run the dashboard (secure defaults; see docs/deploy.md)",
                        description="Run the dashboard with panel serve. Each flag falls back to the "
                                    "environment variable named in its help, then to the default.")
    sv.add_argument("--port", type=int, default=None, help="1..65535 ($PPVIZ_PORT, default 5006)")
    sv.add_argument("--address", default=None,
                    help="address to bind ($PPVIZ_ADDRESS, default 127.0.0.1; 0.0.0.0 = all interfaces)")
    sv.add_argument("--allow-websocket-origin", action="append", default=None, metavar="HOST[:PORT]",
                    help="host allowed to open the websocket, repeatable ($PPVIZ_ALLOWED_ORIGINS, "
                         "comma-separated; default localhost:PORT and 127.0.0.1:PORT)")
    sv.add_argument("--num-procs", type=int, default=None, help="worker processes ($PPVIZ_NUM_PROCS, default 1)")
    sv.add_argument("--prefix", default=None, help="URL prefix behind a proxy, e.g. /ppviz ($PPVIZ_PREFIX)")
    sv.add_argument("--use-xheaders", action="store_true",
                    help="trust X-Forwarded-* headers from a reverse proxy ($PPVIZ_USE_XHEADERS)")
    sv.add_argument("--basic-auth", default=None, metavar="PASSWORD|FILE.json",
                    help="require a login: one password, or a JSON file {\"user\": \"password\"} "
                         "($PPVIZ_BASIC_AUTH; prefer the variable or a file, a flag shows in ps)")
    sv.add_argument("--cookie-secret", default=None,
                    help="secret that signs login cookies ($PPVIZ_COOKIE_SECRET; default: random per start)")
    sv.add_argument("--oauth-provider", default=None,
                    help="Panel OAuth provider, e.g. github ($PPVIZ_OAUTH_PROVIDER; key and secret from "
                         "$PPVIZ_OAUTH_KEY / $PPVIZ_OAUTH_SECRET)")
    sv.add_argument("--show", action="store_true", help="open a browser")
    sv.set_defaults(func=_cmd_serve)
