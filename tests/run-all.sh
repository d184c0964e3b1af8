#!/usr/bin/env bash
# tests/run-all.sh — THE test command (README, .ci/run): on a Debian 12
# machine, as root (or with sudo), installs what is missing, then builds and
# runs every test twice: the normal build (build/) and the ASan+UBSan build
# (build-san/), each with the unit tests and the integration suite (a real
# PostgreSQL, one broker, two gateways, socket.io-client and python-socketio).
# Ends with the line "all: N passed, N failed" and exits non-zero on any
# failure.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
start=$(date +%s)

say() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

# --- dependencies ---------------------------------------------------------
bash deploy/install-deps.sh || exit 1
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.belfry-lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
    say "npm ci"
    npm ci --no-audit --no-fund || { echo "npm ci failed"; exit 1; }
    echo "$lock_sum" > node_modules/.belfry-lock-sha256
fi

# --- sanitizer options ----------------------------------------------------
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${ASAN_OPTIONS:-}" ]; then
    # LeakSanitizer needs ptrace-like access that some sandboxes refuse: probe it.
    probe_dir=$(mktemp -d)
    printf '#include <stdlib.h>\nvoid *volatile g;\nint main(void){g=malloc(7);g=0;return 0;}\n' > "$probe_dir/p.c"
    if cc -fsanitize=address "$probe_dir/p.c" -o "$probe_dir/p" 2>/dev/null; then
        out=$("$probe_dir/p" 2>&1)
        if printf '%s' "$out" | grep -q 'ERROR: LeakSanitizer: detected memory leaks'; then
            export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1
        else
            echo "note: LeakSanitizer does not work here; running with detect_leaks=0"
            export ASAN_OPTIONS=detect_leaks=0
        fi
    fi
    rm -rf "$probe_dir"
fi

# --- build and test -------------------------------------------------------
pass=0; fail=0; failed_steps=""
count() {  # count LABEL FILE: adds the last "LABEL: N passed, N failed" line
    local line p f
    line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed" "$2" | tail -n1)
    if [ -z "$line" ]; then p=0; f=1; else
        p=$(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
        f=$(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
    fi
    pass=$((pass + p)); fail=$((fail + f))
}
step() {  # step NAME LABEL CMD...: runs CMD, tees its output, counts LABEL
    local name=$1 label=$2 log rc; shift 2
    log=$(mktemp)
    say "$name"
    "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
    if [ -n "$label" ]; then count "$label" "$log"; fi
    if [ "$rc" -ne 0 ]; then
        failed_steps="$failed_steps; $name (exit $rc)"
        # A step that failed without reporting a failure still counts as one.
        if [ -z "$label" ] || ! grep -qE "^$label: [0-9]+ passed, [1-9][0-9]* failed" "$log"; then fail=$((fail + 1)); fi
    fi
    rm -f "$log"
    return "$rc"
}

# Build folders can be moved (e.g. to keep parallel runs apart).
BUILD_DIR=${BELFRY_RUNALL_BUILD:-build}
SAN_DIR=${BELFRY_RUNALL_SAN:-build-san}
for variant in normal sanitize; do
    if [ "$variant" = normal ]; then b=$BUILD_DIR; mk=(make BUILD="$b"); else b=$SAN_DIR; mk=(make SANITIZE=1 BUILD="$b"); fi
    if step "$variant: build ($b)" "" "${mk[@]}" -j"$JOBS"; then
        step "$variant: unit tests ($b)" unit "${mk[@]}" test
        step "$variant: integration suite ($b)" integration env BELFRY_BUILD="$b" bash tests/integration/run.sh
    else
        # Still run whatever unit tests build, so their failures are visible.
        step "$variant: unit tests ($b)" unit "${mk[@]}" -k test
    fi
done

# Fuzzing: every libFuzzer target (ASan+UBSan) replays its corpus and the
# regressions, then runs briefly (docs/fuzzing.md; `make fuzz` for longer).
fuzz_step() {
    if FUZZ_CI_SECONDS=${FUZZ_CI_SECONDS:-8} sh tests/fuzz/ci.sh; then
        echo "fuzz: 1 passed, 0 failed"
    else
        echo "fuzz: 0 passed, 1 failed"; return 1
    fi
}
step "fuzz (libFuzzer, short runs)" fuzz fuzz_step

say "done"
[ -n "$failed_steps" ] && echo "failed steps:${failed_steps#;}"
echo "all: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ -z "$failed_steps" ]
