#!/usr/bin/env bash
# The project's single test command (README; CI runs it through .ci/run):
# formatting, lints, then every test target, including the end-to-end tests that start the
# real engine and drive it with SIPp.
set -euo pipefail
cd "$(dirname "$0")/.."

# The end-to-end tests need SIPp (Debian package sip-tester), the ACD tests count RTP on the
# wire with tcpdump, the deploy/ checks need promtool (package prometheus), and the call-records
# tests start a PostgreSQL server (package postgresql); tests fail, never skip, without them.
missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if ((${#missing[@]})); then
    echo "installing the Debian packages ${missing[*]}" >&2
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "cannot install ${missing[*]}: not root and no sudo; install them by hand" >&2
        exit 1
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Debug build: the tests run at 20 calls/s, far below what even a debug engine handles, and a
# debug build compiles much faster than --release on 2 cores.
cargo test --all-targets
