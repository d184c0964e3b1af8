#!/bin/sh
# Runs every unit test binary in $1 and prints one closing line
# "N passed, N failed" summed over all of them.
dir=${1:-build/tests}
pass=0; fail=0; bad=""
for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^# \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' | tail -n1)
    f=$(printf '%s\n' "$out" | sed -n 's/^# \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' | tail -n1)
    if [ -z "$p" ]; then p=0; f=1; echo "not ok $(basename "$t") (crashed, rc=$rc)"; fi
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    pass=$((pass + p)); fail=$((fail + f))
    [ "$f" -ne 0 ] && bad="$bad $(basename "$t")"
done
echo "unit: $pass passed, $fail failed"
[ -z "$bad" ] || { echo "failing:$bad"; exit 1; }
