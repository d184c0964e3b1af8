#!/bin/sh
# run.sh - run the libFuzzer targets (built by `make fuzz-build`)
#
#   sh tests/fuzz/run.sh [SECONDS]   fuzz every target SECONDS each (default 60),
#                                    one after another, one process at a time
#   sh tests/fuzz/run.sh --replay    run every target once over its seed corpus
#                                    and tests/fuzz/regressions/<name>/ (seconds)
#
# Environment:
#   FUZZ_BIN      directory of the fuzz_<name> binaries (default build-fuzz)
#   FUZZ_TARGETS  names to run, space separated (default: every tests/fuzz/fuzz_*.c)
#   FUZZ_WORK     scratch directory: <name>/corpus (the seeds are copied there,
#                 new inputs land there, never in the repo), <name>/log and any
#                 crash artifact. Default: a fresh temporary directory, removed
#                 when every target passed. Set it to keep a growing corpus
#                 between runs.
#   FUZZ_ARGS     extra libFuzzer flags. The targets' own stdout/stderr are
#                 closed (-close_fd_mask=3: cfg prints a message per input);
#                 libFuzzer and sanitizer reports still reach the log.
#
# Exits 0 when no target crashed, 1 otherwise, after printing each
# reproducer: build-fuzz/fuzz_<name> <artifact>. Run from the repository root.
set -u
BIN=${FUZZ_BIN:-build-fuzz}
HERE=tests/fuzz
if [ -z "${FUZZ_TARGETS:-}" ]; then
    FUZZ_TARGETS=$(for f in "$HERE"/fuzz_*.c; do b=${f##*/fuzz_}; printf '%s ' "${b%.c}"; done)
fi

fail=0
if [ "${1:-}" = "--replay" ]; then
    for t in $FUZZ_TARGETS; do
        exe="$BIN/fuzz_$t"
        [ -x "$exe" ] || { echo "fuzz replay $t: $exe missing (make fuzz-build)"; fail=1; continue; }
        files=$(find "$HERE/corpus/$t" "$HERE/regressions/$t" -type f 2>/dev/null | sort)
        [ -n "$files" ] || { echo "fuzz replay $t: no inputs"; continue; }
        n=$(printf '%s\n' "$files" | wc -l)
        # one input per argument: libFuzzer runs each file once and exits
        # non-zero at the first crash, naming the file in its output
        if out=$(printf '%s\n' "$files" | xargs "$exe" 2>&1); then
            echo "fuzz replay $t: $n inputs ok"
        else
            printf '%s\n' "$out" | grep -E 'Running:|ERROR|SUMMARY|runtime error' | tail -n 8
            echo "fuzz replay $t: FAILED"
            fail=1
        fi
    done
    exit $fail
fi

secs=${1:-60}
case $secs in ''|*[!0-9]*) echo "usage: $0 [SECONDS] | --replay" >&2; exit 2;; esac
if [ -n "${FUZZ_WORK:-}" ]; then work=$FUZZ_WORK; keep=1; else work=$(mktemp -d /tmp/belfry-fuzz.XXXXXX); keep=0; fi
for t in $FUZZ_TARGETS; do
    exe="$BIN/fuzz_$t"
    [ -x "$exe" ] || { echo "fuzz $t: $exe missing (make fuzz-build)"; fail=1; continue; }
    d="$work/$t"
    mkdir -p "$d/corpus"
    for src in "$HERE/corpus/$t" "$HERE/regressions/$t"; do
        [ -d "$src" ] && find "$src" -type f -exec cp -p {} "$d/corpus/" \;
    done
    start=$(date +%s)
    "$exe" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=5 \
        -close_fd_mask=3 -artifact_prefix="$d/" -print_final_stats=1 ${FUZZ_ARGS:-} \
        "$d/corpus" >"$d/log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -n 1)
    cov=$(grep -E '^#[0-9]+' "$d/log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2/p')
    echo "fuzz $t: rc=$rc $(( $(date +%s) - start ))s runs=${runs:-?} $cov"
    if [ $rc -ne 0 ]; then
        fail=1; keep=1
        grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x[0-9a-f]+ in ' "$d/log" | head -n 14
        for a in "$d"/crash-* "$d"/leak-* "$d"/timeout-* "$d"/oom-* "$d"/slow-unit-*; do
            [ -f "$a" ] && echo "reproduce: $exe $a"
        done
        echo "log: $d/log"
    fi
done
[ $keep -eq 1 ] || rm -rf "$work"
exit $fail
