#!/usr/bin/env bash
# Instructions per queue-routed call (not a test): the engine runs under Valgrind's callgrind
# while bench/acd-calls.sh (engine phase only) sends it RATE calls/s; after a warm-up the
# counters are zeroed, and WINDOW seconds later dumped. Prints the user-space instructions
# (Ir) per completed call and the functions with the most instructions.
#
# Why: CPU time per call on this kind of machine (a shared VM) varies by ±15 % from run to run,
# more than most single changes save. Instruction counts repeat to within about 1 % (the calls
# that fall into the window vary a little), so a change is measured by comparing two builds' Ir
# per call, best over two runs each. They do
# not see the kernel (send/receive), cache misses or contention between threads: confirm
# changes that move memory between threads with acd-calls.sh runs as well.
#
# The count includes what the engine does per second regardless of calls (timers, the overload
# probe, metrics): at 100 calls/s about 4 % of the total. Compare builds at the same RATE.
#
# Knobs (environment): RATE (calls/s, 100), WARMUP (s, 10), WINDOW (s, 10), TOP (functions
# listed, 25), ZENTRALE_BIN (skip the build; a frame-pointer build is not needed), KEEP=1
# (keep the callgrind output and the work directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=${RATE:-100}
WARMUP=${WARMUP:-10}
WINDOW=${WINDOW:-10}
TOP=${TOP:-25}
for tool in valgrind callgrind_control callgrind_annotate curl; do
    command -v "$tool" >/dev/null || {
        echo "$tool not found: install the Debian packages valgrind and curl" >&2
        exit 1
    }
done

# shellcheck source=bench/engine-bin.sh
source "$ROOT/bench/engine-bin.sh"
engine_bin
BIN=$(realpath "$BIN")

OUT=$(mktemp -d -t zentrale-instructions.XXXXXX)
BENCH_PID=""
cleanup() {
    # acd-calls.sh stops its engine and SIPp itself (its own EXIT trap).
    if [[ -n $BENCH_PID ]]; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    if [[ ${KEEP:-0} == 1 ]]; then echo "callgrind output kept in $OUT" >&2; else rm -rf "$OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# The engine as acd-calls.sh starts it, under callgrind (`rules check` runs plain).
cat >"$OUT/zentrale" <<EOF
#!/usr/bin/env bash
if [[ \$1 == serve ]]; then
    exec valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" "$BIN" "\$@"
fi
exec "$BIN" "\$@"
EOF
chmod +x "$OUT/zentrale"

RATES=$RATE DURATION=$((WARMUP + WINDOW + 10)) REPEAT=1 THRESHOLD=0 PHASES=engine \
    ZENTRALE_BIN="$OUT/zentrale" bash "$ROOT/bench/acd-calls.sh" >"$OUT/bench.log" 2>&1 &
BENCH_PID=$!

http=""
for _ in $(seq 1 240); do
    http=$(grep -o 'HTTP 127.0.0.1:[0-9]*' "$OUT/bench.log" | head -1 | cut -d: -f2 || true)
    [[ -n $http ]] && break
    kill -0 "$BENCH_PID" 2>/dev/null || { cat "$OUT/bench.log" >&2; exit 1; }
    sleep 0.5
done
[[ -n $http ]] || { echo "the engine did not come up; log: $OUT/bench.log" >&2; KEEP=1; exit 1; }
pid=$(pgrep -f "valgrind.*--callgrind-out-file=$OUT" | head -1 || true)
[[ -n $pid ]] || { echo "no callgrind process found" >&2; KEEP=1; exit 1; }

calls() { curl -s "http://127.0.0.1:$http/metrics" | awk '/^zentrale_calls_total / { print $2 }'; }
sleep "$WARMUP"
c0=$(calls)
callgrind_control --zero "$pid" >/dev/null
sleep "$WINDOW"
c1=$(calls)
callgrind_control --dump "$pid" >/dev/null
sleep 1
dump=$(ls -t "$OUT"/callgrind.out.*.* 2>/dev/null | head -1 || true)
[[ -n $dump ]] || { echo "callgrind wrote no dump" >&2; KEEP=1; exit 1; }
ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
wait "$BENCH_PID" 2>/dev/null || true
BENCH_PID=""

awk -v c0="$c0" -v c1="$c1" -v ir="$ir" -v rate="$RATE" -v w="$WINDOW" -v bin="$BIN" 'BEGIN {
    n = c1 - c0
    printf "\n== instructions per call: %s at %d calls/s, %d s window\n", bin, rate, w
    if (n <= 0) { print "no calls completed in the window"; exit 1 }
    printf "calls in the window %d, instructions %.0f, per call %.0f (user space, all threads)\n", n, ir, ir / n
}'
printf '\n== the %s functions with the most instructions\n' "$TOP"
# callgrind_annotate lists the thread entry frames (clone, the runtime's worker loop) with
# everything below them (inlined async code is theirs): the lines over 50 % are left out.
callgrind_annotate --auto=no --threshold=100 "$dump" 2>/dev/null |
    awk '/^-+$/ { dashes++ } dashes >= 4 && /^ *[0-9,]+ \(/ {
        pct = $2; gsub(/[(%)]/, "", pct); if (pct + 0 < 50) print }' | head -"$TOP" |
    sed -E 's#/[^ ]*/(src|library)/##; s# \[[^]]*\]$##' | cut -c1-160
