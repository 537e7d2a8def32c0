# The engine binary a benchmark runs (sourced, not run; needs ROOT): sets BIN to ZENTRALE_BIN
# when given, else builds the release binary and sets BIN to it. Sourced by lib.sh and by
# instructions.sh (which cannot source lib.sh: that one starts a work directory and traps).
engine_bin() {
    if [[ -n ${ZENTRALE_BIN:-} ]]; then
        BIN=$ZENTRALE_BIN
    else
        echo "building release binary ..." >&2
        (cd "$ROOT" && cargo build --release --quiet --bin zentrale)
        BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/zentrale
    fi
    [[ -x $BIN ]] || { echo "no engine binary at $BIN" >&2; exit 1; }
}
