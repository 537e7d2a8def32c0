#!/usr/bin/env bash
# Profile-guided build of the engine (optional; not what `cargo run --release` builds):
#
#  1. builds an instrumented release binary (target/pgo-gen, `-Cprofile-generate`),
#  2. trains it on the benchmarks' own loopback load: bench/acd-calls.sh (dispatch latency and
#     queue-routed calls at TRAIN_RATES) and bench/menu-calls.sh (TRAIN_MENU concurrent menu
#     calls with prompts), so the profile covers SIP, the ACD, records and media,
#  3. merges the profiles with the toolchain's llvm-profdata (rustup component llvm-tools,
#     added here when missing) and builds the optimised binary with `-Cprofile-use`.
#
# Prints the path of the optimised binary (target/pgo-use/release/zentrale) last; run a
# benchmark on it with ZENTRALE_BIN=<that path>. Figures: bench/README.md (a few percent less
# CPU per call than the LTO release build). Takes ~9 minutes on 2 cores (two full builds and
# ~1 minute of training). Needs what the benchmarks need (sipp, curl).
#
# Knobs (environment): TRAIN_RATES (calls/s, default "1000 3000"), TRAIN_MENU (concurrent
# menu calls, default 500).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TRAIN_RATES=${TRAIN_RATES:-"1000 3000"}
TRAIN_MENU=${TRAIN_MENU:-500}
GEN_DIR=$ROOT/target/pgo-gen
USE_DIR=$ROOT/target/pgo-use
PROFILES=$ROOT/target/pgo-profiles

cd "$ROOT"
sysroot=$(rustc --print sysroot)
profdata=$(find "$sysroot/lib/rustlib" -name llvm-profdata -type f 2>/dev/null | head -1)
if [[ -z $profdata ]]; then
    echo "llvm-profdata missing: rustup component add llvm-tools" >&2
    rustup component add llvm-tools >&2 || {
        echo "cannot add the llvm-tools component (no network?); add it by hand and rerun" >&2
        exit 1
    }
    profdata=$(find "$sysroot/lib/rustlib" -name llvm-profdata -type f | head -1)
fi

echo "== 1/3 instrumented build ($GEN_DIR)" >&2
rm -rf "$PROFILES"
mkdir -p "$PROFILES"
RUSTFLAGS="-Cprofile-generate=$PROFILES" CARGO_TARGET_DIR=$GEN_DIR \
    cargo build --release --quiet --bin zentrale
# Build scripts ran instrumented too: only the engine's runs below count.
rm -f "$PROFILES"/*.profraw

echo "== 2/3 training: queue-routed calls at $TRAIN_RATES calls/s, $TRAIN_MENU menu calls" >&2
export ZENTRALE_BIN=$GEN_DIR/release/zentrale
RATES=$TRAIN_RATES DURATION=10 REPEAT=1 PHASES="latency engine" bash bench/acd-calls.sh >"$PROFILES/acd.log" 2>&1 ||
    { echo "training with bench/acd-calls.sh failed; see $PROFILES/acd.log" >&2; exit 1; }
COUNTS=$TRAIN_MENU DURATION=5 bash bench/menu-calls.sh >"$PROFILES/menu.log" 2>&1 ||
    { echo "training with bench/menu-calls.sh failed; see $PROFILES/menu.log" >&2; exit 1; }
unset ZENTRALE_BIN
shopt -s nullglob
raw=("$PROFILES"/*.profraw)
((${#raw[@]} > 0)) || { echo "the training wrote no profiles to $PROFILES" >&2; exit 1; }
"$profdata" merge -o "$PROFILES/merged.profdata" "${raw[@]}"

echo "== 3/3 optimised build ($USE_DIR)" >&2
RUSTFLAGS="-Cprofile-use=$PROFILES/merged.profdata" CARGO_TARGET_DIR=$USE_DIR \
    cargo build --release --quiet --bin zentrale
echo "$USE_DIR/release/zentrale"
