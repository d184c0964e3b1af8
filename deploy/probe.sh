#!/bin/bash
# deploy/probe.sh — the container health probe, installed in the image as
# /usr/local/bin/belfry-probe (Dockerfile HEALTHCHECK, compose healthchecks).
#
# Design: the runtime image ships no curl (curl + libcurl4 bring about twenty
# more shared libraries and their security updates into an image that needs
# none of them). bash is already there (Essential in Debian), and its
# /dev/tcp redirection is enough for one HTTP/1.1 GET on loopback. The probe
# finds which Belfry program runs in the container by name in /proc, so one
# image-wide HEALTHCHECK fits both:
#   belfry-gateway  GET /healthz (or /readyz with `ready`) on the port of
#                   BELFRY_LISTEN (default 8080); healthy = status 200;
#   belfry-broker   GET /healthz (or /readyz with `ready`: connected to
#                   PostgreSQL, leader or standby alike) on the port of
#                   BELFRY_HTTP (default 127.0.0.1:9100); with BELFRY_HTTP
#                   set empty (no HTTP endpoint), a TCP connection to the
#                   port of BELFRY_RPC_BIND (default 5556) instead, which the
#                   broker binds before it contacts PostgreSQL ("alive").
# Usage: belfry-probe [live|ready]   (default live)
#        belfry-probe http PORT PATH | belfry-probe tcp PORT
# Exit 0 healthy, 1 unhealthy, 2 usage. Every attempt is bounded by
# BELFRY_PROBE_TIMEOUT seconds (default 2).
set -u
T=${BELFRY_PROBE_TIMEOUT:-2}
HOST=127.0.0.1

port_of() {  # port_of ENDPOINT DEFAULT: the digits after the last ':'
    local p=${1##*:}
    case "$p" in ''|*[!0-9]*) echo "$2" ;; *) echo "$p" ;; esac
}

probe_tcp() {  # probe_tcp PORT
    timeout "$T" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

probe_http() {  # probe_http PORT PATH: 0 iff the status line says 200
    timeout "$T" bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
        IFS= read -r line <&3 || exit 1
        case "$line" in "HTTP/1."?" 200 "*) exit 0 ;; esac
        echo "belfry-probe: $2: $line" >&2
        exit 1' "$HOST" "$1" "$2"
}

running() {  # running NAME: 0 iff a process of that name runs here
    local f c
    for f in /proc/[0-9]*/comm; do
        IFS= read -r c <"$f" 2>/dev/null || continue
        [ "$c" = "$1" ] && return 0
    done
    return 1
}

mode=${1:-live}
case "$mode" in
    http) [ $# -eq 3 ] || { echo "usage: belfry-probe http PORT PATH" >&2; exit 2; }
          probe_http "$2" "$3"; exit $? ;;
    tcp)  [ $# -eq 2 ] || { echo "usage: belfry-probe tcp PORT" >&2; exit 2; }
          probe_tcp "$2"; exit $? ;;
    live|ready) ;;
    *) echo "usage: belfry-probe [live|ready] | http PORT PATH | tcp PORT" >&2; exit 2 ;;
esac

if running belfry-gateway; then
    port=$(port_of "${BELFRY_LISTEN:-127.0.0.1:8080}" 8080)
    if [ "$mode" = ready ]; then probe_http "$port" /readyz; else probe_http "$port" /healthz; fi
    exit $?
fi
if running belfry-broker; then
    http=${BELFRY_HTTP-127.0.0.1:9100}
    if [ -z "$http" ]; then
        probe_tcp "$(port_of "${BELFRY_RPC_BIND:-tcp://127.0.0.1:5556}" 5556)"
        exit $?
    fi
    port=$(port_of "$http" 9100)
    if [ "$mode" = ready ]; then probe_http "$port" /readyz; else probe_http "$port" /healthz; fi
    exit $?
fi
echo "belfry-probe: neither belfry-gateway nor belfry-broker is running" >&2
exit 1
