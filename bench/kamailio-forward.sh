#!/usr/bin/env bash
# The Kamailio anchor of the ACD benchmark (not a test): how many calls per second a tuned,
# transaction-stateful Kamailio forwards with >= 99.9 % success, on this machine, now.
#
#   SIPp caller (tests/sipp/uac_basic.xml) -> Kamailio (bench/kamailio/kamailio.cfg)
#       -> SIPp UAS (bench/sipp/uas_answer.xml)
# Each call: INVITE -> 100 -> 200 -> ACK -> BYE -> 200, no media, all on 127.0.0.1.
# The sweep is find_max_rate in bench/lib.sh (the ACD benchmark runs the same one against the
# engine); see bench/README.md for the table.
#
# Knobs (environment): RATES, DURATION (s per run, default 10), REPEAT (runs per rate, default 2),
# THRESHOLD (%, default 99.9), DIAL (Request-URI user, default 491), KAM_ACC (1: the comparable
# anchor with dialog + acc rows to SQLite: bench/kamailio/kamailio.cfg with WITH_ACC), KAM_CHILDREN (2; 1 with KAM_ACC=1), KAM_SHM
# (2048 MB), KAM_PKG (32 MB), KAM_MALLOC (tlsf; empty = package default), KAM_RCVBUF (4194304),
# KAMAILIO (binary; installed with apt-get when missing), TOOLS=1 (afterwards the same sweep
# SIPp -> SIPp UAS directly: the tools' own ceiling), KEEP=1 (keep the work directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATES=${RATES:-"500 1000 2000 4000 6000 8000 10000 12000 16000"}
DURATION=${DURATION:-10}
REPEAT=${REPEAT:-2}
THRESHOLD=${THRESHOLD:-99.9}
DIAL=${DIAL:-491}

BENCH_NAME=kamailio-bench
BENCH_NEEDS_ENGINE=0
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
kamailio_require

KAM_PORT=$(free_port)
UAS_PORT=$(free_port)
# The UAS quits by itself after the longest the sweep can take (every SIPp run is bounded by
# DURATION + 20 s), plus a margin.
steps=$(wc -w <<<"$RATES")
[[ ${TOOLS:-0} == 1 ]] && steps=$((2 * steps))
uas_start "$UAS_PORT" "$((steps * REPEAT * (DURATION + 22) + 60))"
kamailio_start "$KAM_PORT" "127.0.0.1:$UAS_PORT"

printf 'Kamailio anchor  %s  (%s)\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(kamailio_config_name)"
printf '%s  (pid %s, %s workers, -m %s -M %s, allocator %s, rcvbuf %s)  udp 127.0.0.1:%s -> SIPp UAS 127.0.0.1:%s\n' \
    "$("$KAMAILIO" -v 2>/dev/null | head -1 | sed 's/^version: //')" "$KAM_PID" "$KAM_CHILDREN" \
    "$KAM_SHM" "$KAM_PKG" "${KAM_MALLOC:-default}" "$KAM_RCVBUF" "$KAM_PORT" "$UAS_PORT"

find_max_rate "127.0.0.1:$KAM_PORT" kamailio "$DIAL" "$KAM_PID"
kam_rate=$MAX_RATE kam_fast=$MAX_RATE_FAST kam_us=$MAX_RATE_US kam_sys=$MAX_RATE_SYS kam_stop=$MAX_RATE_STOP

if [[ ${TOOLS:-0} == 1 ]]; then
    find_max_rate "127.0.0.1:$UAS_PORT" sipp-direct "$DIAL"
    echo
    echo "result: kamailio $kam_rate calls/s ($kam_fast with p99 setup <= ${P99_LIMIT:-50} ms; ${kam_us} us CPU per call, ${kam_sys} % in the kernel; stopped: $kam_stop); SIPp -> SIPp directly $MAX_RATE calls/s (stopped: $MAX_RATE_STOP)"
else
    echo
    echo "result: kamailio $kam_rate calls/s ($kam_fast with p99 setup <= ${P99_LIMIT:-50} ms; ${kam_us} us CPU per call, ${kam_sys} % in the kernel; stopped: $kam_stop)"
fi
