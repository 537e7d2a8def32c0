# Shared by the benchmark scripts (sourced, not run): the engine binary, a work directory,
# cleanup of exactly the processes a script started, and free loopback ports.
# The sourcing script sets ROOT and BENCH_NAME first and stores its pids in ENGINE_PID/SIPP_PID.

command -v sipp >/dev/null || {
    echo "sipp not found: install the Debian package sip-tester (apt-get install -y sip-tester)" >&2
    exit 1
}

if [[ -n ${ZENTRALE_BIN:-} ]]; then
    BIN=$ZENTRALE_BIN
else
    echo "building release binary ..." >&2
    (cd "$ROOT" && cargo build --release --quiet --bin zentrale)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/zentrale
fi
[[ -x $BIN ]] || { echo "no engine binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d -t "zentrale-$BENCH_NAME.XXXXXX")
ENGINE_PID=""
SIPP_PID=""
cleanup() {
    local rc=$?
    # Only the processes this script started, by pid.
    [[ -n $SIPP_PID ]] && kill -KILL "$SIPP_PID" 2>/dev/null || true
    if [[ -n $ENGINE_PID ]]; then
        kill -TERM "$ENGINE_PID" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$ENGINE_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 || $rc -ne 0 ]]; then
        echo "logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# Whether a port is bound on this machine (read from /proc/net: no helper tool needed).
port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    cat /proc/net/udp /proc/net/tcp /proc/net/udp6 /proc/net/tcp6 2>/dev/null \
        | awk '{print $2}' | grep -q -- "$hex\$"
}
USED_PORTS=" "
# A free port (even, with the next LEN-1 ports free too; LEN defaults to 1) in 20000-29999,
# below the kernel's ephemeral range and outside the engine's RTP range (30000-49999).
free_port() {
    local len=${1:-1} p ok i
    for _ in $(seq 1 200); do
        p=$(((20000 + RANDOM % 9000) & ~1))
        ok=1
        for ((i = 0; i < len; i++)); do
            if [[ $USED_PORTS == *" $((p + i)) "* ]] || port_in_use "$((p + i))"; then ok=0; break; fi
        done
        if [[ $ok == 1 ]]; then
            for ((i = 0; i < len; i++)); do USED_PORTS+="$((p + i)) "; done
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# Waits until the engine (ENGINE_PID, listening on SIP_PORT) answers an OPTIONS with 200.
wait_ready() {
    local _
    for _ in $(seq 1 30); do
        kill -0 "$ENGINE_PID" 2>/dev/null || { echo "engine exited:" >&2; tail -20 "$WORK/engine.log" >&2; exit 1; }
        if (cd "$WORK" && sipp -sf "$ROOT/tests/sipp/uac_options.xml" -s 490 -i 127.0.0.1 \
            -p "$SIPP_PORT" -m 1 -timeout 1s -timeout_error -nostdin "127.0.0.1:$SIP_PORT" \
            >/dev/null 2>&1); then
            return 0
        fi
        sleep 0.5
    done
    echo "engine did not answer OPTIONS within 15 s" >&2
    tail -20 "$WORK/engine.log" >&2
    exit 1
}

# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat; the
# command name in field 2 may contain spaces, so cut after its closing parenthesis).
proc_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
