#!/usr/bin/env bash
# deploy/run-local.sh — THE run command: Belfry on this machine, for
# development. Installs what is missing (Debian 12, as root or with sudo),
# builds, runs a PostgreSQL 15 in ./var/pg (created once, reused later) as the
# unprivileged `postgres` user on 127.0.0.1, applies the schema, then starts
# one broker and two gateways (127.0.0.1:8080 and :8081). Logs go to
# ./var/log/. Ctrl-C stops everything this script started, and nothing else.
# The gateways also serve the demo page (deploy/web/, copied with the official
# client bundle from node_modules/socket.io-client into ./var/web) at /; the
# script prints its address with a token for user 42.
#
# Settings (environment): BELFRY_JWT_SECRET (default: a development secret
# generated once and kept in var/dev-jwt-secret), BELFRY_PG_PORT (54329),
# BELFRY_GATEWAY_PORTS ("8080 8081"), BELFRY_PUB_PORT (5555),
# BELFRY_RPC_PORT (5556), BELFRY_LOG_LEVEL (info), BELFRY_BUILD (build),
# BELFRY_NO_BUILD=1 (use the binaries already in BELFRY_BUILD).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VAR=$ROOT/var
PGDIR=$VAR/pg
LOG=$VAR/log
PG_BIN=${BELFRY_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT=${BELFRY_PG_PORT:-54329}
GW_PORTS=${BELFRY_GATEWAY_PORTS:-8080 8081}
PUB_PORT=${BELFRY_PUB_PORT:-5555}
RPC_PORT=${BELFRY_RPC_PORT:-5556}
LEVEL=${BELFRY_LOG_LEVEL:-info}
PY=/usr/bin/python3
BUILD=${BELFRY_BUILD:-build}

die() { echo "run-local: $*" >&2; exit 1; }

bash deploy/install-deps.sh --no-node || die "installing dependencies failed"
mkdir -p "$PGDIR" "$LOG"
if [ "${BELFRY_NO_BUILD:-0}" != 1 ]; then
    make BUILD="$BUILD" -j"$(nproc 2>/dev/null || echo 2)" >"$LOG/make.log" 2>&1 ||
        { tail -n 40 "$LOG/make.log"; die "build failed (full output in var/log/make.log)"; }
fi

# PostgreSQL runs as `postgres`; when we are root, give it the folder.
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$PGDIR"
    AS_PG=(runuser -u postgres --)
    "${AS_PG[@]}" test -w "$PGDIR" ||
        die "user postgres cannot write $PGDIR (is a parent folder closed to other users?)"
else
    AS_PG=()
fi

pids=()          # every process we started, in start order
pg_pid=""        # the runuser (or postgres) process we started
stopping=0
cleanup() {
    [ "$stopping" -eq 1 ] && return
    stopping=1
    echo
    echo "run-local: stopping"
    # Gateways and broker first (reverse start order), then PostgreSQL.
    for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    if [ -n "$pg_pid" ]; then
        pm=$(head -n1 "$PGDIR/data/postmaster.pid" 2>/dev/null)
        # SIGINT = PostgreSQL's fast shutdown.
        [ -n "$pm" ] && kill -INT "$pm" 2>/dev/null
        for _ in $(seq 150); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pg_pid" 2>/dev/null
    fi
    echo "run-local: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL -----------------------------------------------------------
if [ ! -s "$PGDIR/data/PG_VERSION" ]; then
    echo "run-local: creating the database cluster in $PGDIR/data"
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PGDIR/data" -A trust -U postgres -E UTF8 --locale=C \
        >"$LOG/initdb.log" 2>&1 || { cat "$LOG/initdb.log"; die "initdb failed"; }
fi
"${AS_PG[@]}" "$PG_BIN/postgres" -D "$PGDIR/data" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -k "$PGDIR" >>"$LOG/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    kill -0 "$pg_pid" 2>/dev/null || { tail -n 20 "$LOG/postgres.log"; pg_pid=""; die "PostgreSQL did not start"; }
    sleep 0.1
done
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { tail -n 20 "$LOG/postgres.log"; die "PostgreSQL is not ready"; }
PSQL=(psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres)
if [ "$("${PSQL[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'belfry'")" != 1 ]; then
    "${PSQL[@]}" -d postgres -c 'CREATE DATABASE belfry' || die "CREATE DATABASE failed"
fi
DB_URL="postgresql://postgres@127.0.0.1:$PG_PORT/belfry"

# --- JWT secret -----------------------------------------------------------
if [ -z "${BELFRY_JWT_SECRET:-}" ]; then
    if [ ! -s "$VAR/dev-jwt-secret" ]; then
        (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$VAR/dev-jwt-secret")
        echo "run-local: generated a development JWT secret (kept in var/dev-jwt-secret):"
        echo "    $(cat "$VAR/dev-jwt-secret")"
    fi
    BELFRY_JWT_SECRET=$(cat "$VAR/dev-jwt-secret")
fi
export BELFRY_JWT_SECRET

# --- the demo page -------------------------------------------------------
# deploy/web/* plus the official client bundle, which comes from npm
# (`npm ci`); without it the page is served but cannot connect.
WEB=$VAR/web
BUNDLE=$ROOT/node_modules/socket.io-client/dist/socket.io.min.js
mkdir -p "$WEB"
cp deploy/web/* "$WEB"/ || die "copying deploy/web failed"
web_note=""
if [ -f "$BUNDLE" ]; then
    cp "$BUNDLE" "$WEB/socket.io.min.js" || die "copying $BUNDLE failed"
else
    rm -f "$WEB/socket.io.min.js"
    web_note="  (the page needs node_modules/socket.io-client: run npm ci, then restart)"
fi

# --- broker and gateways --------------------------------------------------
wait_ready() {  # wait_ready PID LOGFILE NAME
    for _ in $(seq 200); do
        grep -q 'event=ready' "$2" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || { tail -n 20 "$2"; die "$3 exited during start-up"; }
        sleep 0.1
    done
    tail -n 20 "$2"; die "$3 not ready after 20 s"
}

"$BUILD/belfry-broker" --db "$DB_URL" --init-schema --log-level "$LEVEL" >>"$LOG/broker.log" 2>&1 ||
    { tail -n 20 "$LOG/broker.log"; die "applying the schema failed"; }
: >"$LOG/broker.run.log"
"$BUILD/belfry-broker" --db "$DB_URL" --pub "tcp://127.0.0.1:$PUB_PORT" --rpc "tcp://127.0.0.1:$RPC_PORT" \
    --log-level "$LEVEL" >"$LOG/broker.run.log" 2>&1 &
pids+=($!)
wait_ready "$!" "$LOG/broker.run.log" broker

for port in $GW_PORTS; do
    : >"$LOG/gateway-$port.log"
    "$BUILD/belfry-gateway" --listen "127.0.0.1:$port" --broker-pub "tcp://127.0.0.1:$PUB_PORT" \
        --broker-rpc "tcp://127.0.0.1:$RPC_PORT" --static-dir "$WEB" --log-level "$LEVEL" \
        >"$LOG/gateway-$port.log" 2>&1 &
    pids+=($!)
    wait_ready "$!" "$LOG/gateway-$port.log" "gateway :$port"
done

# A ready-made token for user 42, valid 24 h (HS256 over the secret).
TOKEN=$("$PY" - "$BELFRY_JWT_SECRET" <<'PYEOF'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
p = b(json.dumps({"sub": "42", "exp": int(time.time()) + 86400}, separators=(",", ":")).encode())
s = b(hmac.new(sys.argv[1].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
PYEOF
)

first_port=${GW_PORTS%% *}
cat <<EOF

Belfry is running (logs in var/log/, Ctrl-C stops it):
  PostgreSQL  $DB_URL
  broker      pub tcp://127.0.0.1:$PUB_PORT, rpc tcp://127.0.0.1:$RPC_PORT
  gateways    $(for p in $GW_PORTS; do printf 'http://127.0.0.1:%s  ' "$p"; done)

Demo page (bell, unread list, mark as read) as user 42, one tab per gateway:
$(for p in $GW_PORTS; do printf '  http://127.0.0.1:%s/?token=%s\n' "$p" "$TOKEN"; done)
$web_note
Connect a Socket.IO client as user 42 (token valid 24 h):
  const socket = io("http://127.0.0.1:$first_port", { transports: ["websocket"],
                    auth: { token: "$TOKEN" } });
  socket.on("response", (data) => console.log(data));

Send it a notification:
  psql "$DB_URL" -c "INSERT INTO notifications (room, event, payload) VALUES ('user_42', 'response', '{\"meta\": \"New notifications\", \"notif_count\": 3}')"

EOF

# Run until Ctrl-C, or until one of our processes dies.
while :; do
    for p in "${pids[@]}" "$pg_pid"; do
        kill -0 "$p" 2>/dev/null || { echo "run-local: process $p exited; see var/log/"; exit 1; }
    done
    sleep 1
done
