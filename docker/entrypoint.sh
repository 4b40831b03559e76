#!/bin/sh
# Container entry point: run the ppviz dashboard (see docs/deploy.md).
#
#   docker run ... ppviz:cpu                       -> ppviz serve on 0.0.0.0:$PPVIZ_PORT
#   docker run ... ppviz:cpu --num-procs 4         -> the same, extra flags for ppviz serve
#   docker run ... ppviz:cpu ppviz evaluate ...    -> any other command runs as given (batch jobs)
#
# Inside a container the dashboard must listen on all interfaces (the port is published by
# `docker run -p`); everything else comes from the environment that `ppviz serve` reads:
#   PPVIZ_PORT (5006), PPVIZ_NUM_PROCS (1), PPVIZ_ALLOWED_ORIGINS (localhost:PORT,127.0.0.1:PORT),
#   PPVIZ_BASIC_AUTH, PPVIZ_COOKIE_SECRET, PPVIZ_OAUTH_*, PPVIZ_PREFIX, PPVIZ_USE_XHEADERS,
#   PPVIZ_DATA_DIR (/data: cache of the synthetic default), PPVIZ_DATA (a prepared dataset),
#   PPVIZ_NATURAL_EARTH (/opt/natural-earth: coastlines, mounted or baked).
set -eu

export PPVIZ_ADDRESS="${PPVIZ_ADDRESS:-0.0.0.0}"
export PPVIZ_PORT="${PPVIZ_PORT:-5006}"
export PPVIZ_NUM_PROCS="${PPVIZ_NUM_PROCS:-1}"

# A first argument that is not a flag is a command of its own: run it instead of the dashboard.
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

data_dir="${PPVIZ_DATA_DIR:-}"
if [ -n "$data_dir" ] && [ -z "${PPVIZ_DATA:-}" ]; then
    mkdir -p "$data_dir" 2>/dev/null || true
    if [ ! -w "$data_dir" ]; then
        echo "ppviz-entrypoint: warning: $data_dir is not writable by uid $(id -u); the synthetic" \
             "default dataset cannot be cached there (chown the volume or set PPVIZ_DATA)" >&2
    fi
fi
if [ -n "${PPVIZ_NATURAL_EARTH:-}" ] && [ ! -d "$PPVIZ_NATURAL_EARTH/shapefiles" ]; then
    echo "ppviz-entrypoint: note: no Natural Earth shapefiles under $PPVIZ_NATURAL_EARTH;" \
         "maps draw without coastlines (mount them: -v /path/natural-earth:$PPVIZ_NATURAL_EARTH:ro)" >&2
fi

exec ppviz serve --address "$PPVIZ_ADDRESS" --port "$PPVIZ_PORT" --num-procs "$PPVIZ_NUM_PROCS" "$@"
