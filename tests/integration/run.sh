#!/usr/bin/env bash
# tests/integration/run.sh — runs the integration suite (real PostgreSQL, one
# broker, two gateways, socket.io-client and python-socketio) against the
# binaries in $BELFRY_BUILD (default build/). Prints the node test runner's
# output and a closing line "integration: N passed, N failed"; exits non-zero
# on any failure. Extra arguments are test files (default: all *.test.js).
set -u
cd "$(dirname "$0")/../.."
export BELFRY_BUILD="${BELFRY_BUILD:-build}"
mkdir -p tests/out
tap="tests/out/integration-$(basename "$BELFRY_BUILD").tap"
if [ "$#" -gt 0 ]; then files=("$@"); else files=(tests/integration/*.test.js); fi
# Files run one at a time (each starts its own PostgreSQL and processes).
flags=()
node --help | grep -q -- '--test-concurrency' && flags+=(--test-concurrency=1)
node --help | grep -q -- '--test-timeout' && flags+=(--test-timeout=600000)
node --test "${flags[@]}" \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "${files[@]}"
rc=$?
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -n1)
fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -n1)
cancelled=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$tap" | tail -n1)
pass=${pass:-0}; fail=$(( ${fail:-0} + ${cancelled:-0} ))
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "integration: $pass passed, $fail failed"
[ "$rc" -eq 0 ] && [ "$fail" -eq 0 ]
