# Shared by the benchmark scripts (sourced, not run): the engine binary, a work directory,
# cleanup of exactly the processes a script started, and free loopback ports.
# The sourcing script sets ROOT and BENCH_NAME first and stores its pids in ENGINE_PID/SIPP_PID.
# BENCH_NEEDS_ENGINE=0 (set before sourcing) skips building/finding the engine (Kamailio only).
# The Kamailio anchor (kamailio_require, kamailio_start, kamailio_stop), the SIPp UAS (uas_start)
# and the call-rate sweep (find_max_rate) are at the end; see bench/README.md.

command -v sipp >/dev/null || {
    echo "sipp not found: install the Debian package sip-tester (apt-get install -y sip-tester)" >&2
    exit 1
}

# shellcheck source=bench/engine-bin.sh
source "$ROOT/bench/engine-bin.sh"
BIN=""
[[ ${BENCH_NEEDS_ENGINE:-1} == 0 ]] || engine_bin

WORK=$(mktemp -d -t "zentrale-$BENCH_NAME.XXXXXX")
ENGINE_PID=""
SIPP_PID=""
UAS_PID=""
KAM_PID=""
# Further pids the sourcing script started (a second SIPp UAS, a sampler loop): killed too.
EXTRA_PIDS=""
cleanup() {
    local rc=$?
    # Only the processes this script started, by pid.
    local pid
    # SIPP_PID may be /usr/bin/time, which does not pass a signal on: its sipp child first.
    for pid in $([[ -n $SIPP_PID ]] && child_pids "$SIPP_PID") $SIPP_PID $UAS_PID $EXTRA_PIDS; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        # (wait returns at once for a grandchild: give it up to 2 s to be gone)
        for _ in $(seq 1 20); do [[ -d /proc/$pid && $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) != Z ]] || break; sleep 0.1; done
    done
    kamailio_stop
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
# Ctrl-C, kill, hang-up: exit through the EXIT trap above (bash does not always run it on a
# signal, e.g. while waiting for a child).
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Whether a port is bound on this machine (read from /proc/net: no helper tool needed).
port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    # awk reads everything and decides (a `grep -q` ending the pipe early would make `cat`
    # die of SIGPIPE, which pipefail reports as "not found" once the tables are long, e.g.
    # with an engine holding its RTP sockets).
    cat /proc/net/udp /proc/net/tcp /proc/net/udp6 /proc/net/tcp6 2>/dev/null \
        | awk -v hex="$hex" 'substr($2, length($2) - 4) == hex { found = 1 } END { exit !found }'
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

# ---------------------------------------------------------------------------------------------
# Shared by the call-rate sweeps (find_max_rate, basic-call.sh).

# Column value from the last row of a SIPp statistics CSV.
stat_col() {
    [[ -f $1 ]] || { echo 0; return; }
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i }
        NF > 1 { last = $0 } END { if (!c) { print 0; exit } split(last, f, ";"); print f[c] + 0 }' "$1"
}
# Upper bound (ms) of the response-time bucket holding the 99th percentile of call setup
# (INVITE -> 200), from SIPp's ResponseTimeRepartition1 columns.
p99_setup() {
    [[ -f $1 ]] || { echo -; return; }
    awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^ResponseTimeRepartition1_/) { c[++n] = i; name[n] = $i } }
        NF > 1 { last = $0 }
        END { split(last, f, ";"); total = 0; for (k = 1; k <= n; k++) total += f[c[k]];
              if (total == 0) { print "-"; exit }
              acc = 0; for (k = 1; k <= n; k++) { acc += f[c[k]]; if (acc >= 0.99 * total) {
                  b = name[k]; sub(/^ResponseTimeRepartition1_/, "", b); print b " ms"; exit } } }' "$1"
}
# Calls per second SIPp actually started, from a SIPp statistics CSV (-trace_stat -fd 1):
# TotalCallCreated over the time it took to create them. (CallRate(C) divides by the whole run,
# which includes waiting for the last calls to end: after a few retransmissions that is 30 s.)
# The end of creation is interpolated inside the 1 s period in which the last call was created,
# at the rate of the period before.
achieved_rate() {
    [[ -f $1 ]] || { echo 0; return; }
    awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "TotalCallCreated") cc = i
            if ($i == "StartTime") cs = i; if ($i == "CurrentTime") ct = i } next }
        NF > 1 { n++; split($cs, a, "\t"); split($ct, b, "\t"); t[n] = b[3] - a[3]; c[n] = $cc + 0 }
        END { if (!n || !cc || c[n] == 0) { print 0; exit }
              for (k = 1; k <= n && c[k] < c[n]; k++) ;
              T = t[k]
              if (k >= 3 && t[k - 1] > t[k - 2] && c[k - 1] > c[k - 2]) {
                  r = (c[k - 1] - c[k - 2]) / (t[k - 1] - t[k - 2])
                  e = t[k - 1] + (c[n] - c[k - 1]) / r
                  if (e < T) T = e }
              printf "%.0f\n", (T > 0) ? c[n] / T : 0 }' "$1"
}
# udp_drops PORT...: datagrams the kernel dropped (receive buffer full) on the UDP sockets bound
# to these local ports, so far (the last column of /proc/net/udp; all sockets sharing a port,
# e.g. SO_REUSEPORT workers, are summed). The namespace-wide RcvbufErrors would count the
# neighbours' drops too.
udp_drops() {
    local hex="" p
    for p in "$@"; do hex+=" $(printf '%04X' "$p")"; done
    awk -v ports="$hex" 'BEGIN { n = split(ports, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
        FNR > 1 { split($2, x, ":"); if (x[2] in want) d += $NF } END { print d + 0 }' \
        /proc/net/udp /proc/net/udp6 2>/dev/null || echo 0
}
# CPU pressure (PSI): microseconds in which some runnable task waited for a CPU, and the wall
# clock in microseconds. Their ratio over a run says how saturated the machine was, by us or by
# neighbours. (/proc/stat's busy/idle ticks are not usable here: in this VM they miss most of
# the engine's and SIPp's CPU time.)
cpu_pressure() {
    local stall=-1
    [[ -r /proc/pressure/cpu ]] && stall=$(awk '/^some/ { for (i = 1; i <= NF; i++) if ($i ~ /^total=/) { sub(/total=/, "", $i); print $i } }' /proc/pressure/cpu)
    echo "$stall $(date +%s%6N)"
}
# "machine: N cores, load average A B C, CPU pressure P % (1 s, before the runs)": the line
# every script prints before it measures. The pressure is measured over one quiet second here:
# on a shared VM it is often well above 0 with nothing of ours running (neighbours), and then
# figures from that hour read lower than another hour's.
machine_line() {
    local s0 w0 s1 w1 pressure="-"
    read -r s0 w0 < <(cpu_pressure)
    sleep 1
    read -r s1 w1 < <(cpu_pressure)
    if [[ $s0 != -1 ]]; then pressure=$(awk -v s=$((s1 - s0)) -v w=$((w1 - w0)) 'BEGIN { printf "%.0f", (w > 0 ? 100 * s / w : 0) }'); fi
    printf 'machine: %s cores, load average %s, CPU pressure %s %% (1 s, before the runs)' \
        "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$pressure"
}
# "TOTAL SYSTEM": utime + stime, and stime alone (clock ticks), of a process and its direct
# children together (Kamailio's workers are children of its main process; the engine has none).
# (cat, not awk, opens the files: a process may vanish meanwhile, and mawk stops at a missing file.)
tree_ticks() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '{ pid = $1; line = $0; sub(/^.*\) /, "", line)
            split(line, f, " "); if (pid == root || f[2] == root) { t += f[12] + f[13]; k += f[13] } }
        END { print t + 0, k + 0 }'
}
# Pids of the direct children of a process.
child_pids() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '{ pid = $1; line = $0; sub(/^.*\) /, "", line)
            split(line, f, " "); if (f[2] == root) print pid }'
}

# ---------------------------------------------------------------------------------------------
# SIPp UAS: the callee for the Kamailio anchor and the engine's agents.

# uas_start PORT SECONDS [NAME]: starts a SIPp UAS on udp 127.0.0.1:PORT with UAS_SCENARIO
# (default bench/sipp/uas_answer.xml: answers every INVITE with 200 at once, then takes ACK and
# BYE; bench/sipp/uas_answer_bye.xml hangs up itself after UAS_PAUSE_MS, default 0); it quits by
# itself after SECONDS (SIPp -timeout) and is killed by the cleanup trap. Sets UAS_PID and
# UAS_PORT; statistics (every second) in $WORK/NAME-stat.csv, unexpected messages in
# $WORK/NAME-errors.log, output in $WORK/NAME.out (NAME defaults to uas). UAS_TRACE=1: every
# message with its time in $WORK/NAME-msg.log (SIPp -trace_msg; for short runs only).
# For a second UAS next to the first: UAS_PID is overwritten, so save it and put the new one in
# EXTRA_PIDS (see bench/acd-calls.sh).
# `-aa` answers out-of-call OPTIONS with 200: the engine's keep-alives to its agents' static
# URIs (every 30 s; two unanswered make the agent unreachable) would otherwise take the whole
# bench's agents out of service a minute into a sweep.
uas_start() {
    local port=$1 secs=$2 name=${3:-uas} _
    local scenario=${UAS_SCENARIO:-$ROOT/bench/sipp/uas_answer.xml} trace=()
    [[ ${UAS_TRACE:-0} == 1 ]] && trace=(-trace_msg -message_file "$WORK/$name-msg.log")
    (cd "$WORK" && exec sipp -sf "$scenario" -i 127.0.0.1 -p "$port" -t u1 -aa "${trace[@]}" \
        -d "${UAS_PAUSE_MS:-0}" -timeout "${secs}s" -nostdin -buff_size 4194304 \
        -trace_stat -stf "$WORK/$name-stat.csv" -fd 1 \
        -trace_err -error_file "$WORK/$name-errors.log" >"$WORK/$name.out" 2>&1) &
    UAS_PID=$!
    UAS_PORT=$port
    for _ in $(seq 1 50); do
        kill -0 "$UAS_PID" 2>/dev/null || { echo "SIPp UAS exited:" >&2; tail -20 "$WORK/$name.out" >&2; exit 1; }
        port_in_use "$port" && return 0
        sleep 0.1
    done
    echo "SIPp UAS did not bind 127.0.0.1:$port within 5 s" >&2
    exit 1
}

# uas_settled_count [NAME]: a UAS's SuccessfulCall and FailedCall totals (statistics
# $WORK/NAME-stat.csv, NAME default uas) once they stopped changing (SIPp writes the file every
# second; gives up after 8 s), as "ok failed".
uas_settled_count() {
    local file="$WORK/${1:-uas}-stat.csv" prev="" now _
    for _ in $(seq 1 8); do
        sleep 1.1
        now="$(stat_col "$file" 'SuccessfulCall(C)') $(stat_col "$file" 'FailedCall(C)')"
        [[ $now == "$prev" ]] && break
        prev=$now
    done
    echo "$now"
}

# ---------------------------------------------------------------------------------------------
# The Kamailio anchor (BENCHMARKING.md): transaction-stateful forwarding proxy, tuned.

# KAM_ACC=1: the comparable anchor, bench/kamailio/kamailio.cfg with WITH_ACC (dialog tracking and two acc
# rows per call, INVITE and BYE, into SQLite on /dev/shm) instead of plain forwarding. One
# worker by default: with two, SQLite's lock made Kamailio drop ~40 % of the rows ("database
# is locked") already at 2,000 calls/s.
KAM_ACC=${KAM_ACC:-0}
if [[ $KAM_ACC == 1 ]]; then KAM_CHILDREN=${KAM_CHILDREN:-1}; fi
KAM_CHILDREN=${KAM_CHILDREN:-2}     # UDP workers (-n): one per core
KAM_SHM=${KAM_SHM:-2048}            # shared memory MB (-m): the default 64 fails half the calls at 1,000/s
KAM_PKG=${KAM_PKG:-32}              # private memory MB per process (-M)
KAM_MALLOC=${KAM_MALLOC:-tlsf}      # memory manager (-x; empty = the package default, qm/fm)
KAM_RCVBUF=${KAM_RCVBUF:-4194304}   # UDP receive buffer ceiling (-b), bytes

# kamailio_require: sets KAMAILIO to the kamailio binary, installing the Debian package
# kamailio (apt-get, as root or through sudo) when it is missing; exits with a message if it
# cannot.
kamailio_require() {
    KAMAILIO=${KAMAILIO:-$(command -v kamailio || echo /usr/sbin/kamailio)}
    [[ -x $KAMAILIO ]] || kamailio_install kamailio
    KAMAILIO=$(command -v kamailio || echo /usr/sbin/kamailio)
    [[ -x $KAMAILIO ]] || { echo "kamailio still not found after installing the package" >&2; exit 1; }
    if [[ $KAM_ACC == 1 ]]; then
        compgen -G "/usr/lib/*/kamailio/modules/db_sqlite.so" >/dev/null || kamailio_install kamailio-sqlite-modules
        [[ -r /usr/share/kamailio/db_sqlite/acc-create.sql ]] ||
            { echo "KAM_ACC=1: no /usr/share/kamailio/db_sqlite/acc-create.sql (package kamailio-sqlite-modules)" >&2; exit 1; }
        command -v python3 >/dev/null || { echo "KAM_ACC=1 needs python3 (to create the acc database)" >&2; exit 1; }
    fi
}

# Which anchor runs, for the headings.
kamailio_config_name() {
    if [[ $KAM_ACC == 1 ]]; then
        echo "bench/kamailio/kamailio.cfg with WITH_ACC: dialog + acc rows to SQLite (KAM_ACC=1)"
    else
        echo "bench/kamailio/kamailio.cfg: plain forwarding"
    fi
}

# kamailio_install PACKAGE: apt-get install, as root or through sudo; exits with a hint if it cannot.
kamailio_install() {
    echo "$1 not found: installing the Debian package $1" >&2
    local as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            echo "cannot install $1: not root and no sudo; run 'apt-get install $1' as root" >&2
            exit 1
        fi
    fi
    if ! { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update &&
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1"; } >&2; then
        echo "cannot install $1 with apt-get; install the Debian package $1 by hand (or set KAMAILIO=/path/to/kamailio)" >&2
        exit 1
    fi
}

# kamailio_start PORT UAS: starts Kamailio in the foreground (as the current user) with
# bench/kamailio/kamailio.cfg (with WITH_ACC when KAM_ACC=1, see above) on udp 127.0.0.1:PORT, forwarding every call to UAS
# (host:port, e.g. 127.0.0.1:20002), tuned by KAM_CHILDREN/KAM_SHM/KAM_PKG/KAM_MALLOC/KAM_RCVBUF.
# Waits until it answers OPTIONS. Sets KAM_PID (the main process; the workers are its children);
# log in $WORK/kamailio.log. kamailio_stop (also run by the cleanup trap) stops it.
kamailio_start() {
    local port=$1 uas=$2 probe _
    [[ -n ${KAMAILIO:-} ]] || kamailio_require
    mkdir -p "$WORK/kamailio-run"
    local tune=(-n "$KAM_CHILDREN" -m "$KAM_SHM" -M "$KAM_PKG" -b "$KAM_RCVBUF")
    if [[ $KAM_MALLOC == tlsf && $("$KAMAILIO" -v 2>/dev/null) != *TLSF_MALLOC* ]]; then
        echo "this kamailio has no TLSF allocator: using its default (slower, see BENCHMARKING.md)" >&2
        KAM_MALLOC=""
    fi
    [[ -n $KAM_MALLOC ]] && tune+=(-x "$KAM_MALLOC")
    if [[ $KAM_ACC == 1 ]]; then
        # On tmpfs: Kamailio commits every row on its own, and SQLite's default in WAL mode
        # syncs each commit (the engine batches its rows and syncs at checkpoints only).
        KAM_ACC_DB=/dev/shm/zentrale-bench-acc-$$.db
        rm -f "$KAM_ACC_DB" "$KAM_ACC_DB-wal" "$KAM_ACC_DB-shm"
        python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for part in ("standard", "acc"):
    with open(f"/usr/share/kamailio/db_sqlite/{part}-create.sql") as sql:
        db.executescript(sql.read())
db.execute("PRAGMA journal_mode=WAL")
db.commit()
' "$KAM_ACC_DB" || { echo "could not create the acc database $KAM_ACC_DB" >&2; exit 1; }
        tune+=(-A WITH_ACC -A "ACC_DB_URL=\"sqlite:///$KAM_ACC_DB\"")
    fi
    "$KAMAILIO" -f "$ROOT/bench/kamailio/kamailio.cfg" -DD -E -T -S \
        -l "udp:127.0.0.1:$port" -A "UAS_URI=\"sip:$uas\"" "${tune[@]}" \
        -Y "$WORK/kamailio-run" -P "$WORK/kamailio.pid" -w "$WORK" >"$WORK/kamailio.log" 2>&1 &
    KAM_PID=$!
    probe=$(free_port)
    for _ in $(seq 1 30); do
        kill -0 "$KAM_PID" 2>/dev/null || { echo "kamailio exited:" >&2; tail -20 "$WORK/kamailio.log" >&2; exit 1; }
        if (cd "$WORK" && sipp -sf "$ROOT/tests/sipp/uac_options.xml" -s ping -i 127.0.0.1 \
            -p "$probe" -m 1 -timeout 1s -timeout_error -nostdin "127.0.0.1:$port" \
            >/dev/null 2>&1); then
            return 0
        fi
        sleep 0.5
    done
    echo "kamailio did not answer OPTIONS within 15 s" >&2
    tail -20 "$WORK/kamailio.log" >&2
    exit 1
}

# kamailio_stop: stops the Kamailio started by kamailio_start (TERM, then KILL after 3 s, and
# KILL for any of its workers that outlived it). Nothing when none is running.
kamailio_stop() {
    [[ -n ${KAM_PID:-} ]] || return 0
    local kids k _
    kids=$(child_pids "$KAM_PID")
    kill -TERM "$KAM_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$KAM_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KAM_PID" 2>/dev/null || true
    wait "$KAM_PID" 2>/dev/null || true
    for k in $kids; do
        # Only if the pid still belongs to a kamailio process (not reused since).
        [[ $(cat "/proc/$k/comm" 2>/dev/null) == kamailio ]] && kill -KILL "$k" 2>/dev/null || true
    done
    KAM_PID=""
    if [[ -n ${KAM_ACC_DB:-} ]]; then
        # What Kamailio recorded, to compare with the calls SIPp completed (it writes nothing
        # for a call whose INVITE or BYE failed).
        python3 -c '
import sqlite3, sys
rows = dict(sqlite3.connect(sys.argv[1]).execute("SELECT method, count(*) FROM acc GROUP BY method"))
print("kamailio acc rows: INVITE %d, BYE %d" % (rows.get("INVITE", 0), rows.get("BYE", 0)))
' "$KAM_ACC_DB" >&2 || true
        rm -f "$KAM_ACC_DB" "$KAM_ACC_DB-wal" "$KAM_ACC_DB-shm"
        KAM_ACC_DB=""
    fi
}

# ---------------------------------------------------------------------------------------------
# find_max_rate TARGET LABEL [USER [CPU_PID]]
#   TARGET   host:port the SIPp caller sends to (127.0.0.1:<port>); whatever answers there must
#            already be running and reach a callee (e.g. uas_start) by itself
#   LABEL    name for the table heading and the files in $WORK (e.g. kamailio, engine)
#   USER     Request-URI user dialled (SIPp -s), default 491 (the ACD queue number)
#   CPU_PID  optional: pid of the system under test; its CPU (with its child processes) is shown
#            per run and per successful call
# Steps through RATES (calls/s), REPEAT runs of DURATION s each, with UAC_SCENARIO (default
# tests/sipp/uac_basic.xml: INVITE -> 200 -> ACK -> BYE -> 200, no pause, no media; the UAS's
# scenario is whatever uas_start ran, UAS_SCENARIO). RTD_LABEL names the last column (default
# "p99 setup": the scenario's response time 1). UAS_CHECK=1: after each run wait until the UAS's
# statistics settle and show how many calls the UAS completed in the run ("uas ok", "uas fail"),
# to check that the caller's successful calls really reached the callee. A rate passes
# if every run has >= THRESHOLD % successful calls and SIPp started >= 99 % of the calls asked
# for at >= 95 % of the rate asked for. Stops at the first rate that does not pass. Prints a table on stdout and sets:
#   MAX_RATE       highest passing rate in calls/s (0: none passed)
#   MAX_RATE_US    CPU us per successful call of CPU_PID at MAX_RATE, mean of its runs ("-": none)
#   MAX_RATE_SYS   the share of that CPU spent in the kernel (stime), in %, mean of the runs:
#                  sending and receiving the datagrams, the part a proxy and a B2BUA share
#   MAX_RATE_STOP  why the sweep stopped: failed (calls failed or timed out at the target),
#                  caller (SIPp could not start the calls: its own CPU was near 100 %),
#                  behind (fewer calls started than asked though SIPp had CPU: calls stayed
#                  open so long that the open-call limit -l was reached), all-passed
#   MAX_RATE_WHY   the same as a sentence, with the figures of the failing run
#   MAX_RATE_FAST  highest passing rate at which every run also had its p99 call setup (INVITE ->
#                  200) within P99_LIMIT ms (default 50; BENCHMARKING.md's second column; 0: none)
#   MAX_RATE_OK, MAX_RATE_UAS_OK, MAX_RATE_UAS_FAIL   (UAS_CHECK=1) the caller's successful
#                  calls and the UAS's successful / failed calls, summed over the runs at MAX_RATE
find_max_rate() {
    local target=$1 label=$2 user=${3:-491} cpu_pid=${4:-}
    local rates=${RATES:-"500 1000 2000 4000 6000 8000 10000 12000 16000"}
    local p99_limit=${P99_LIMIT:-50} fast_ok fast_streak=1
    local duration=${DURATION:-10} repeat=${REPEAT:-2} threshold=${THRESHOLD:-99.9}
    local scenario=${UAC_SCENARIO:-$ROOT/tests/sipp/uac_basic.xml}
    local hz port rate run rate_ok calls limit stat tag t0 t1 k0 k1 u0 u1 s0 s1 w0 w1 timer sys sys_sum
    local d0 drops created ok failed achieved p99 sipp_cpu uas_cpu pct tgt_s us_call stall verdict us_sum us_n
    local uas_check=${UAS_CHECK:-0} rtd_label=${RTD_LABEL:-p99 setup} ua0 uf0 ua1 uf1 uas_cols ok_sum ua_sum uf_sum
    [[ -n ${UAS_PID:-} ]] || uas_check=0
    hz=$(getconf CLK_TCK)
    port=$(free_port)
    MAX_RATE=0 MAX_RATE_FAST=0 MAX_RATE_US=- MAX_RATE_SYS=- MAX_RATE_STOP=all-passed MAX_RATE_WHY="every rate asked for passed: the ceiling is higher; extend RATES"
    MAX_RATE_OK=0 MAX_RATE_UAS_OK=- MAX_RATE_UAS_FAIL=-
    uas_cols=""
    [[ $uas_check == 1 ]] && uas_cols=$(printf ' %8s %8s' 'uas ok' 'uas fail')

    printf '\n%s: SIPp -> %s, user %s, %s s per run, %s runs per rate, pass >= %s %%  (%s)\n' \
        "$label" "$target" "$user" "$duration" "$repeat" "$threshold" "$(date -u +%H:%M:%SZ)"
    printf '%s\n' "$(machine_line)"
    printf '%7s %4s %9s %9s %7s %8s %9s %8s %8s %6s %7s %6s %7s %9s %10s%s\n' \
        rate run attempted success failed 'ok %' achieved 'tgt CPU' 'us/call' 'sys %' 'sipp s' 'uas s' 'stall %' 'drops' "$rtd_label" "$uas_cols"
    for rate in $rates; do
        rate_ok=1 fast_ok=1 us_sum=0 us_n=0 sys_sum=0 ok_sum=0 ua_sum=0 uf_sum=0
        for run in $(seq 1 "$repeat"); do
            [[ -z $cpu_pid ]] || kill -0 "$cpu_pid" 2>/dev/null || { echo "$label (pid $cpu_pid) died" >&2; exit 1; }
            [[ -z $UAS_PID ]] || kill -0 "$UAS_PID" 2>/dev/null || { echo "SIPp UAS died:" >&2; tail -20 "$WORK/uas.out" >&2; exit 1; }
            calls=$((rate * duration))
            limit=$((rate > 200 ? rate : 200))
            tag="$label-$rate-$run"
            stat="$WORK/stat-$tag.csv"
            t0=0 k0=0 u0=0
            if [[ $uas_check == 1 ]]; then
                if [[ -n ${ua1:-} ]]; then ua0=$ua1 uf0=$uf1; else read -r ua0 uf0 <<<"$(uas_settled_count)"; fi
            fi
            [[ -n $cpu_pid ]] && read -r t0 k0 <<<"$(tree_ticks "$cpu_pid")"
            [[ -n $UAS_PID ]] && u0=$(proc_ticks "$UAS_PID")
            read -r s0 w0 < <(cpu_pressure)
            d0=$(udp_drops "${target##*:}" ${UAS_PORT:+"$UAS_PORT"})
            timer=()
            [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f '%U %S %e' -o "$WORK/sipp-time-$tag")
            (cd "$WORK" && exec "${timer[@]}" sipp -sf "$scenario" -s "$user" -i 127.0.0.1 -p "$port" -t u1 \
                -m "$calls" -r "$rate" -l "$limit" -d 0 -timeout "$((duration + 20))s" -nostdin \
                -buff_size 4194304 -trace_stat -stf "$stat" -fd 1 \
                -trace_err -error_file "$WORK/errors-$tag.log" \
                "$target" >"$WORK/sipp-$tag.out" 2>&1) &
            SIPP_PID=$!
            # SIPp's own -timeout is not enough: a run at 16,000 calls/s through Kamailio once
            # hung for 16 minutes past it. Past the same deadline plus 20 s, SIPp is killed
            # (its calls then count as unfinished).
            local deadline=$((SECONDS + duration + 40))
            while kill -0 "$SIPP_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
            if kill -0 "$SIPP_PID" 2>/dev/null; then
                echo "SIPp ($tag) still running $((duration + 40)) s after it started: killed" >&2
                for pid in $(child_pids "$SIPP_PID") $SIPP_PID; do kill -KILL "$pid" 2>/dev/null || true; done
            fi
            wait "$SIPP_PID" || true
            SIPP_PID=""
            t1=0 k1=0 u1=0
            [[ -n $cpu_pid ]] && read -r t1 k1 <<<"$(tree_ticks "$cpu_pid")"
            [[ -n $UAS_PID ]] && u1=$(proc_ticks "$UAS_PID" 2>/dev/null || echo "$u0")
            read -r s1 w1 < <(cpu_pressure)
            drops=$(($(udp_drops "${target##*:}" ${UAS_PORT:+"$UAS_PORT"}) - d0))
            uas_cols=""
            if [[ $uas_check == 1 ]]; then
                read -r ua1 uf1 <<<"$(uas_settled_count)"
                uas_cols=$(printf ' %8s %8s' "$((ua1 - ua0))" "$((uf1 - uf0))")
                ua_sum=$((ua_sum + ua1 - ua0)) uf_sum=$((uf_sum + uf1 - uf0))
            fi

            created=$(stat_col "$stat" 'TotalCallCreated')
            ok=$(stat_col "$stat" 'SuccessfulCall(C)')
            failed=$(stat_col "$stat" 'FailedCall(C)')
            achieved=$(achieved_rate "$stat")
            p99=$(p99_setup "$stat")
            # (the last line: GNU time puts "Command exited with non-zero status" before it)
            sipp_cpu=$(tail -1 "$WORK/sipp-time-$tag" 2>/dev/null | awk '{printf "%.1f", $1 + $2}' || true)
            [[ -n $sipp_cpu ]] || sipp_cpu=-
            read -r pct tgt_s us_call sys uas_cpu stall <<<"$(awk -v ok="$ok" -v c="$created" -v dt="$((t1 - t0))" \
                -v dk="$((k1 - k0))" -v du="$((u1 - u0))" -v hz="$hz" -v s0="$s0" -v s1="$s1" -v dw="$((w1 - w0))" \
                -v have_t="${cpu_pid:+1}" -v have_u="${UAS_PID:+1}" 'BEGIN {
                    pct = (c > 0) ? 100 * ok / c : 0
                    tgt = have_t ? sprintf("%.2fs", dt / hz) : "-"
                    per = (have_t && ok > 0) ? sprintf("%.0f", dt / hz * 1e6 / ok) : "-"
                    sys = (have_t && dt > 0) ? sprintf("%.0f", 100 * dk / dt) : "-"
                    uas = have_u ? sprintf("%.1f", du / hz) : "-"
                    stall = (s0 >= 0 && dw > 0) ? sprintf("%.0f", 100 * (s1 - s0) / dw) : "-"
                    printf "%.2f %s %s %s %s %s\n", pct, tgt, per, sys, uas, stall }')"
            printf '%7s %4s %9s %9s %7s %8s %9s %8s %8s %6s %7s %6s %7s %9s %10s%s\n' \
                "$rate" "$run" "$created" "$ok" "$failed" "$pct" "$achieved" "$tgt_s" "$us_call" \
                "$sys" "$sipp_cpu" "$uas_cpu" "$stall" "$drops" "$p99" "$uas_cols"
            ok_sum=$((ok_sum + ok))
            [[ $us_call != - && $sys != - ]] && us_sum=$((us_sum + us_call)) && sys_sum=$((sys_sum + sys)) && us_n=$((us_n + 1))
            # Verdict of the run: pass, or why not.
            verdict=$(awk -v p="$pct" -v t="$threshold" -v c="$created" -v want="$calls" \
                -v a="$achieved" -v r="$rate" -v cpu="$sipp_cpu" -v d="$duration" 'BEGIN {
                    if (c < 0.99 * want || a < 0.95 * r) { print ((cpu != "-" && cpu >= 0.8 * d) ? "caller" : "behind"); exit }
                    print (p >= t) ? "pass" : "failed" }')
            if [[ $verdict != pass && $rate_ok == 1 ]]; then
                rate_ok=0
                MAX_RATE_STOP=$verdict
                case $verdict in
                    failed) MAX_RATE_WHY="at $rate calls/s (run $run) only $pct % of $created calls succeeded ($failed failed, $((created - ok - failed)) unfinished at SIPp's timeout): the target's limit" ;;
                    caller) MAX_RATE_WHY="at $rate calls/s (run $run) SIPp started $created of $calls calls at ${achieved}/s with ${sipp_cpu} s CPU in a ${duration} s run: the caller, not the target, is the limit" ;;
                    behind) MAX_RATE_WHY="at $rate calls/s (run $run) SIPp started $created of $calls calls at only ${achieved}/s, with ${sipp_cpu} s CPU in a ${duration} s run (p99 setup $p99, machine stalled $stall % of the time): calls stayed open until the limit of $limit open calls, or the cores were saturated by caller, callee and target together" ;;
                esac
            fi
            # p99 bucket label: "<N ms" is within N ms, ">=500 ms" is beyond every bucket.
            [[ $p99 =~ ^\<([0-9]+)\ ms$ && ${BASH_REMATCH[1]} -le $p99_limit ]] || fast_ok=0
            sleep 1
        done
        if [[ $rate_ok == 1 ]]; then
            MAX_RATE=$rate
            MAX_RATE_OK=$ok_sum
            [[ $uas_check == 1 ]] && MAX_RATE_UAS_OK=$ua_sum MAX_RATE_UAS_FAIL=$uf_sum
            [[ $fast_ok == 1 && $fast_streak == 1 ]] && MAX_RATE_FAST=$rate || fast_streak=0
            MAX_RATE_US=- MAX_RATE_SYS=-
            ((us_n > 0)) && MAX_RATE_US=$((us_sum / us_n)) MAX_RATE_SYS=$((sys_sum / us_n))
        else
            break
        fi
    done
    echo "stopped: $MAX_RATE_WHY"
    if [[ $MAX_RATE -gt 0 ]]; then
        echo "$label: highest rate with >= $threshold % successful calls in all $repeat runs: $MAX_RATE calls/s (CPU per call there: $MAX_RATE_US us, $MAX_RATE_SYS % of it in the kernel)"
        echo "$label: highest such rate with p99 call setup <= $p99_limit ms in all runs: $MAX_RATE_FAST calls/s"
    else
        echo "$label: no rate reached $threshold % successful calls"
    fi
}
