#!/usr/bin/env bash
# Basic-call throughput benchmark (not a test): SIPp callers -> zentrale on 127.0.0.1.
#
# Each call: INVITE/SDP -> 100 -> 200/SDP -> ACK -> BYE -> 200 (tests/sipp/uac_basic.xml with
# no pause). For each rate the run is repeated; a rate passes if every run has >= THRESHOLD %
# successful calls. The sweep stops at the first rate that fails and prints the highest rate
# that passed. See bench/README.md for how to read the table.
#
# Knobs (environment): RATES, DURATION (s per run), REPEAT (runs per rate), THRESHOLD (%),
# LOG_LEVEL (engine log level, default info = the shipped default), ZENTRALE_BIN (skip the
# release build and use this binary), KEEP=1 (keep the work directory with all logs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATES=${RATES:-"200 500 1000 2000 3000 4000 6000 8000 10000 12000"}
DURATION=${DURATION:-10}
REPEAT=${REPEAT:-2}
THRESHOLD=${THRESHOLD:-99.9}
LOG_LEVEL=${LOG_LEVEL:-info}
SCENARIO=$ROOT/tests/sipp/uac_basic.xml

BENCH_NAME=bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

SIP_PORT=$(free_port)
HTTP_PORT=$(free_port)
SIPP_PORT=$(free_port)
mkdir -p "$WORK/data"

env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
    ZENTRALE_SIP__LISTEN="127.0.0.1:$SIP_PORT" \
    ZENTRALE_HTTP__LISTEN="127.0.0.1:$HTTP_PORT" \
    ZENTRALE_DATA__DIR="$WORK/data" \
    ZENTRALE_RULES__DIR="$ROOT/routing-rules" \
    ZENTRALE_MEDIA__RTP_PORT_MIN=30000 \
    ZENTRALE_MEDIA__RTP_PORT_MAX=49999 \
    ZENTRALE_SIP__MAX_CALLS=100000 \
    ZENTRALE_SHUTDOWN__DRAIN_SECS=1 \
    ZENTRALE_LOG__FORMAT=json \
    ZENTRALE_LOG__LEVEL="$LOG_LEVEL" \
    "$BIN" serve >"$WORK/engine.log" 2>&1 &
ENGINE_PID=$!

wait_ready
CLK_TCK=$(getconf CLK_TCK)
printf 'zentrale basic-call benchmark  %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
printf 'engine %s  (pid %s, log level %s)  SIP 127.0.0.1:%s  %s s per run, %s runs per rate, pass >= %s %%\n' \
    "$BIN" "$ENGINE_PID" "$LOG_LEVEL" "$SIP_PORT" "$DURATION" "$REPEAT" "$THRESHOLD"
printf '%s\n\n' "$(machine_line)"
printf '%7s %4s %9s %9s %8s %8s %9s %9s %8s %7s %8s %9s\n' \
    rate run attempted success failed 'ok %' 'achieved' 'eng CPU' 'us/call' 'sipp s' 'stall %' 'p99 setup'

best=""
stopped=0
for rate in $RATES; do
    rate_ok=1
    for run in $(seq 1 "$REPEAT"); do
        kill -0 "$ENGINE_PID" 2>/dev/null || { echo "engine died; last log lines:" >&2; tail -20 "$WORK/engine.log" >&2; exit 1; }
        calls=$((rate * DURATION))
        limit=$((rate > 200 ? rate : 200))
        stat="$WORK/stat-$rate-$run.csv"
        e0=$(proc_ticks "$ENGINE_PID")
        read -r s0 w0 < <(cpu_pressure)
        timer=()
        [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f '%U %S' -o "$WORK/sipp-time-$rate-$run")
        (cd "$WORK" && "${timer[@]}" sipp -sf "$SCENARIO" -s 490 -i 127.0.0.1 -p "$SIPP_PORT" -t u1 \
            -m "$calls" -r "$rate" -l "$limit" -d 0 -timeout "$((DURATION + 20))s" -nostdin \
            -buff_size 4194304 -trace_stat -stf "$stat" -fd 1 \
            -trace_err -error_file "$WORK/errors-$rate-$run.log" \
            "127.0.0.1:$SIP_PORT" >"$WORK/sipp-$rate-$run.out" 2>&1) &
        SIPP_PID=$!
        wait "$SIPP_PID" || true
        SIPP_PID=""
        e1=$(proc_ticks "$ENGINE_PID")
        read -r s1 w1 < <(cpu_pressure)

        created=$(stat_col "$stat" 'TotalCallCreated')
        ok=$(stat_col "$stat" 'SuccessfulCall(C)')
        failed=$(stat_col "$stat" 'FailedCall(C)')
        achieved=$(achieved_rate "$stat")
        p99=$(p99_setup "$stat")
        # (the last line: GNU time puts "Command exited with non-zero status" before it)
        sipp_cpu=$(tail -1 "$WORK/sipp-time-$rate-$run" 2>/dev/null | awk '{printf "%.1f", $1 + $2}' || true)
        [[ -n $sipp_cpu ]] || sipp_cpu=-
        read -r pct eng_s us_call stall <<<"$(awk -v ok="$ok" -v c="$created" -v de="$((e1 - e0))" \
            -v hz="$CLK_TCK" -v s0="$s0" -v s1="$s1" -v dw="$((w1 - w0))" 'BEGIN {
                pct = (c > 0) ? 100 * ok / c : 0
                s = de / hz
                per = (ok > 0) ? sprintf("%.0f", s * 1e6 / ok) : "-"
                stall = (s0 >= 0 && dw > 0) ? sprintf("%.0f", 100 * (s1 - s0) / dw) : "-"
                printf "%.2f %.2f %s %s\n", pct, s, per, stall }')"
        printf '%7s %4s %9s %9s %8s %8s %9.0f %9s %8s %7s %8s %9s\n' \
            "$rate" "$run" "$created" "$ok" "$failed" "$pct" "$achieved" "${eng_s}s" "$us_call" "$sipp_cpu" "$stall" "$p99"
        if ! awk -v p="$pct" -v t="$THRESHOLD" -v c="$created" -v want="$calls" \
            'BEGIN { exit !(p >= t && c >= 0.99 * want) }'; then
            rate_ok=0
        fi
        sleep 1
    done
    if [[ $rate_ok == 1 ]]; then
        best=$rate
    else
        echo
        echo "rate $rate below $THRESHOLD % success (or fewer calls attempted than asked): stopping."
        stopped=1
        break
    fi
done

echo
if [[ -n $best ]]; then
    echo "highest rate with >= $THRESHOLD % successful calls in all $REPEAT runs: $best calls/s"
    [[ $stopped == 1 ]] || echo "(every rate asked for passed: the ceiling is higher; extend RATES to find it)"
else
    echo "no rate reached $THRESHOLD % successful calls"
fi
