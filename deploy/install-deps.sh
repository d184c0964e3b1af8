#!/usr/bin/env bash
# deploy/install-deps.sh — installs, on Debian 12, the packages Belfry needs
# to build, run and test, and only those missing (dpkg-query first, so a
# machine that has everything costs no apt-get at all). Run as root, or as a
# user with sudo. Usage: bash deploy/install-deps.sh [--no-node] [--no-browser]
#   (default)     everything the tests need: also Node.js/npm and Debian
#                 `chromium` (the headless browser of the browser tests);
#   --no-node     only what building and running needs (deploy/run-local.sh):
#                 no Node.js, no browser;
#   --no-browser  the tests' dependencies without chromium.
set -u
want_node=1
want_browser=1
for arg in "$@"; do
    case "$arg" in
        --no-node) want_node=0; want_browser=0 ;;
        --no-browser) want_browser=0 ;;
        *) echo "install-deps: unknown option $arg (use --no-node, --no-browser)" >&2; exit 2 ;;
    esac
done

DEBS="build-essential pkg-config libevent-dev libzmq3-dev libmsgpack-dev libjansson-dev
      libssl-dev libpq-dev postgresql python3-socketio python3-websocket
      libhiredis-dev libnats-dev redis-server nats-server"
missing=""
for p in $DEBS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ "$want_node" -eq 1 ]; then
    # Node.js may come from another package than Debian's (e.g. a 20.x build
    # that bundles npm); the commands are what matter.
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
if [ "$want_node" -eq 1 ]; then
    # tests/integration/deploy.test.js: `docker-compose config` (no Docker
    # engine needed), nginx (the load balancer) and iproute2 (ip netns);
    # python3-requests: python-engineio's long-polling; clang and its
    # runtime: the libFuzzer targets (tests/fuzz/ci.sh).
    for p in docker-compose nginx-light iproute2 python3-requests clang libclang-rt-14-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
    done
fi
if [ "$want_browser" -eq 1 ]; then
    # tests/integration/browser.test.js and demo.test.js drive /usr/bin/chromium
    # through npm playwright-core.
    dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed' || missing="$missing chromium"
fi
[ -z "$missing" ] && exit 0

echo "installing:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -q || { echo "apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing || { echo "apt-get install failed" >&2; exit 1; }
