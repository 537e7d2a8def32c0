#!/usr/bin/env bash
# Concurrent menu-call benchmark (not a test): N SIPp callers sit in the voice menu with media
# for DURATION seconds while zentrale plays prompts to each of them (20 ms G.711 frames).
#
# Each call: INVITE/SDP -> 200/SDP -> ACK -> long pause (the caller presses nothing: greeting,
# menu, 3 attempts, then the general queue with music on hold — media all the time) -> BYE.
# For each N the script ramps up N calls (-l N -m N, RAMP calls/s), then measures over a
# DURATION-second window in which all N calls are up:
#   - the engine's CPU (utime+stime from /proc/<pid>/stat) per concurrent call,
#   - RTP packets sent and sent late (> 10 ms after their due time), from the engine's own
#     counters in GET /healthz (rtp_packets_sent, rtp_packets_late),
# and SIPp's successful/failed calls at the end. The last line names the highest N with no
# failed call and < LATE_LIMIT % late packets. See bench/README.md.
#
# Knobs (environment): COUNTS (default "100 200 500 1000 2000"), DURATION (s, default 20),
# RAMP (calls/s, default 200), LATE_LIMIT (% , default 1), ECHO=1 (SIPp echoes the engine's RTP
# back, so the engine also receives and inspects RTP; default 0 = engine only sends),
# LOG_LEVEL, ZENTRALE_BIN (skip the release build), KEEP=1 (keep the work directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNTS=${COUNTS:-"100 200 500 1000 2000"}
DURATION=${DURATION:-20}
RAMP=${RAMP:-200}
LATE_LIMIT=${LATE_LIMIT:-1}
ECHO=${ECHO:-0}
LOG_LEVEL=${LOG_LEVEL:-info}
SCENARIO=$ROOT/tests/sipp/uac_basic.xml
RULES=$ROOT/tests/fixtures/rules-open   # calendars always open: the menu at any hour

BENCH_NAME=menu-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v curl >/dev/null || { echo "curl not found" >&2; exit 1; }

SIP_PORT=$(free_port)
HTTP_PORT=$(free_port)
SIPP_PORT=$(free_port)
MEDIA_PORT=$(free_port 4)
mkdir -p "$WORK/data"
MAX_LEN=$((DURATION + 60))

env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
    ZENTRALE_SIP__LISTEN="127.0.0.1:$SIP_PORT" \
    ZENTRALE_HTTP__LISTEN="127.0.0.1:$HTTP_PORT" \
    ZENTRALE_DATA__DIR="$WORK/data" \
    ZENTRALE_RULES__DIR="$RULES" \
    ZENTRALE_MEDIA__RTP_PORT_MIN=30000 \
    ZENTRALE_MEDIA__RTP_PORT_MAX=49999 \
    ZENTRALE_MEDIA__RTP_TIMEOUT_SECS="$((MAX_LEN + 600))" \
    ZENTRALE_SIP__MAX_CALLS=100000 \
    ZENTRALE_SHUTDOWN__DRAIN_SECS=1 \
    ZENTRALE_LOG__FORMAT=json \
    ZENTRALE_LOG__LEVEL="$LOG_LEVEL" \
    "$BIN" serve >"$WORK/engine.log" 2>&1 &
ENGINE_PID=$!

wait_ready
CLK_TCK=$(getconf CLK_TCK)
# A number field of the /healthz JSON (0 when missing).
health() {
    curl -s --max-time 2 "http://127.0.0.1:$HTTP_PORT/healthz" \
        | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2 | sed 's/^$/0/' || echo 0
}
active_calls() {
    local body
    body=$(curl -s --max-time 2 "http://127.0.0.1:$HTTP_PORT/healthz" || true)
    echo "$body" | grep -o '"active_calls":[0-9]*' | head -1 | cut -d: -f2
}
stat_col() {
    [[ -f $1 ]] || { echo 0; return; }
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i }
        NF > 1 { last = $0 } END { if (!c) { print 0; exit } split(last, f, ";"); print f[c] + 0 }' "$1"
}

printf 'zentrale menu-call benchmark  %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
printf 'engine %s  (pid %s, log level %s)  SIP 127.0.0.1:%s  window %s s, ramp %s calls/s, echo %s\n' \
    "$BIN" "$ENGINE_PID" "$LOG_LEVEL" "$SIP_PORT" "$DURATION" "$RAMP" "$ECHO"
printf '%s\n\n' "$(machine_line)"
printf '%6s %7s %8s %7s %9s %10s %8s %9s %10s %8s\n' \
    calls up success failed 'eng CPU' '%core/call' 'us/pkt' 'rtp sent' 'late>10ms' 'late %'

best=""
for n in $COUNTS; do
    kill -0 "$ENGINE_PID" 2>/dev/null || { echo "engine died; last log lines:" >&2; tail -20 "$WORK/engine.log" >&2; exit 1; }
    ramp_s=$(((n + RAMP - 1) / RAMP))
    # Each call lasts ramp + window + a margin, so all N are up during the whole window.
    call_ms=$(((ramp_s + DURATION + 3) * 1000))
    stat="$WORK/stat-$n.csv"
    echo_arg=()
    [[ $ECHO == 1 ]] && echo_arg=(-rtp_echo)
    (cd "$WORK" && sipp -sf "$SCENARIO" -s 490 -i 127.0.0.1 -p "$SIPP_PORT" -mp "$MEDIA_PORT" -t u1 \
        -m "$n" -l "$n" -r "$RAMP" -d "$call_ms" -timeout "$((ramp_s + DURATION + 40))s" -nostdin \
        "${echo_arg[@]}" -buff_size 8388608 -trace_stat -stf "$stat" -fd 1 \
        -trace_err -error_file "$WORK/errors-$n.log" \
        "127.0.0.1:$SIP_PORT" >"$WORK/sipp-$n.out" 2>&1) &
    SIPP_PID=$!
    # Wait for the ramp (all N calls up), then measure the window.
    sleep "$((ramp_s + 1))"
    up=$(active_calls)
    e0=$(proc_ticks "$ENGINE_PID"); p0=$(health rtp_packets_sent); l0=$(health rtp_packets_late)
    t0=$(date +%s%N)
    sleep "$DURATION"
    e1=$(proc_ticks "$ENGINE_PID"); p1=$(health rtp_packets_sent); l1=$(health rtp_packets_late)
    t1=$(date +%s%N)
    wait "$SIPP_PID" || true
    SIPP_PID=""
    ok=$(stat_col "$stat" 'SuccessfulCall(C)')
    failed=$(stat_col "$stat" 'FailedCall(C)')
    read -r eng_s per_call us_pkt late_pct <<<"$(awk -v de="$((e1 - e0))" -v hz="$CLK_TCK" \
        -v dt="$((t1 - t0))" -v n="$n" -v dp="$((p1 - p0))" -v dl="$((l1 - l0))" 'BEGIN {
            s = de / hz; w = dt / 1e9
            printf "%.2f %.3f %s %.3f\n", s, 100 * s / w / n, (dp > 0) ? sprintf("%.1f", s * 1e6 / dp) : "-", (dp > 0) ? 100 * dl / dp : 0 }')"
    printf '%6s %7s %8s %7s %9s %10s %8s %9s %10s %8s\n' \
        "$n" "${up:-?}" "$ok" "$failed" "${eng_s}s" "$per_call" "$us_pkt" "$((p1 - p0))" "$((l1 - l0))" "$late_pct"
    if [[ $failed == 0 && $ok == "$n" ]] && awk -v l="$late_pct" -v t="$LATE_LIMIT" 'BEGIN { exit !(l < t) }'; then
        best=$n
    fi
    sleep 2
done

echo
if [[ -n $best ]]; then
    echo "highest concurrent menu calls with no failed call and < $LATE_LIMIT % RTP packets late by > 10 ms: $best"
else
    echo "no count passed (no failed call and < $LATE_LIMIT % late)"
fi
