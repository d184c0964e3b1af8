#!/bin/sh
# ci.sh - the fuzzing step of CI: build every libFuzzer target, replay the
# seed corpora and tests/fuzz/regressions/, then fuzz each target for a short
# bounded time (FUZZ_CI_SECONDS, default 20). Exits non-zero on a build
# failure, a replay failure or a new crash (whose reproducer run.sh prints).
# Run from anywhere; needs clang with libFuzzer (clang 14, libclang-rt-14-dev).
# Takes about 3.5 minutes: build ~25 s from clean, replay ~2 s, 9 targets x 20 s.
set -u
cd "$(dirname "$0")/../.." || exit 2
secs=${FUZZ_CI_SECONDS:-20}
command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1 || { echo "fuzz ci: ${FUZZ_CC:-clang} not found" >&2; exit 2; }
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)
make -j"$jobs" fuzz-build >/tmp/belfry-fuzz-build.$$ 2>&1 || {
    tail -n 30 /tmp/belfry-fuzz-build.$$; rm -f /tmp/belfry-fuzz-build.$$
    echo "fuzz ci: build failed"; exit 1; }
rm -f /tmp/belfry-fuzz-build.$$
rc=0
sh tests/fuzz/run.sh --replay || rc=1
sh tests/fuzz/run.sh "$secs" || rc=1
echo "fuzz ci: $( [ $rc -eq 0 ] && echo ok || echo FAILED ) in $(( $(date +%s) - start ))s"
exit $rc
