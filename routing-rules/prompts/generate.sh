#!/usr/bin/env bash
# Regenerates the JenaZentral voice prompts in this folder.
#
#   ./generate.sh                    every prompt in texts.tsv
#   ./generate.sh greeting menu      only these prompts
#   ./generate.sh --import FILE NAME convert a studio recording (any format sox reads) into NAME.wav
#   ./generate.sh --check            check that every WAV here is 8 kHz, mono, 16-bit PCM
#
# Needs espeak-ng and sox (Debian/Ubuntu: apt-get install espeak-ng sox).
# Voice settings can be overridden: VOICE=de+f3 SPEED=140 ./generate.sh
#
# Every output is 8000 Hz, mono, 16-bit signed PCM WAV, the only format zentrale loads.
# `sox -D` everywhere: no dither noise is added, so the G.711 that zentrale encodes from these
# samples carries no hiss in the pauses.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
texts="$here/texts.tsv"
VOICE="${VOICE:-de}"
SPEED="${SPEED:-150}"
PITCH="${PITCH:-50}"

# Silence around each prompt (seconds): a full prompt gets a short breath before and a pause
# after; the fragments that are chained into "Sie sind an Position | drei | in der
# Warteschlange" get only a short gap so the sentence flows.
LEAD=0.10
TAIL=0.35
FRAGMENT_LEAD=0.03
FRAGMENT_TAIL=0.08

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "generate.sh: $1 is not installed (apt-get install $2)" >&2; exit 1; }
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

is_fragment() {
    case "$1" in
        position_prefix | position_suffix | num_*) return 0 ;;
        *) return 1 ;;
    esac
}

speak() { # name text
    local name="$1" text="$2" lead="$LEAD" tail="$TAIL"
    if is_fragment "$name"; then
        lead="$FRAGMENT_LEAD"
        tail="$FRAGMENT_TAIL"
    fi
    printf '%s\n' "$text" >"$tmp/text.txt"
    espeak-ng -v "$VOICE" -s "$SPEED" -p "$PITCH" -f "$tmp/text.txt" -w "$tmp/raw.wav"
    # trim espeak's leading/trailing silence, drop rumble, resample to 8 kHz (sox's rate
    # filters everything above 4 kHz), normalise the peak to -3 dBFS, add our own pauses.
    sox -D -V1 "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$here/$name.wav" \
        highpass 100 \
        silence 1 0.02 -45d reverse silence 1 0.02 -45d reverse \
        rate -v 8000 gain -n -3 pad "$lead" "$tail"
}

# Music on hold: a slow, soft arpeggio (sine notes with a gentle decay and some reverb) over
# the progression C – Am – F – G – C – Am – Dm – G, 24 s, made to loop without a click. No
# samples, nothing licensed: every note comes from sox's synthesiser.
music_on_hold() { # name
    local name="$1" beat=0.5 note_len=1.8 notes=() i=0 t
    # semitones relative to A4 (440 Hz) for sox's %n notation, 6 notes per chord, played one
    # octave higher (+12) so every note is inside the telephone band (about 300–3400 Hz)
    local chords=(
        "-9 -5 -2 3 -2 -5"    # C  : C4 E4 G4 C5 G4 E4
        "-12 -9 -5 0 -5 -9"   # Am : A3 C4 E4 A4 E4 C4
        "-16 -12 -9 -4 -9 -12" # F : F3 A3 C4 F4 C4 A3
        "-14 -10 -7 -2 -7 -10" # G : G3 B3 D4 G4 D4 B3
        "-9 -5 -2 3 -2 -5"    # C
        "-12 -9 -5 0 -5 -9"   # Am
        "-19 -16 -12 -7 -12 -16" # Dm : D3 F3 A3 D4 A3 F3
        "-14 -10 -7 -2 -7 -10" # G
    )
    # two passes; the reverb tail of pass one rings into pass two, and we keep pass two, so
    # the end of the file flows into its own start when the call loops it
    local pass chord n
    for pass in 1 2; do
        for chord in "${chords[@]}"; do
            for n in $chord; do
                t=$(awk -v i="$i" -v b="$beat" 'BEGIN { printf "%.3f", i * b }')
                sox -D -V1 -n -r 8000 -c 1 -b 32 -e signed-integer "$tmp/note$i.wav" \
                    synth "$note_len" sine "%$((n + 12))" \
                    fade q 0.02 "$note_len" 1.6 vol 0.5 pad "$t" 0
                notes+=("$tmp/note$i.wav")
                i=$((i + 1))
            done
        done
    done
    local loop_len
    loop_len=$(awk -v i="$i" -v b="$beat" 'BEGIN { printf "%.3f", i * b / 2 }')
    sox -D -V1 -m "${notes[@]}" -b 32 "$tmp/mix.wav"
    sox -D -V1 "$tmp/mix.wav" -r 8000 -c 1 -b 16 -e signed-integer "$here/$name.wav" \
        highpass 150 reverb 40 50 60 \
        trim "$loop_len" "$loop_len" \
        gain -n -16
}

generate() { # name
    local name="$1" text
    text="$(awk -F'\t' -v n="$name" '$1 == n { print $2; found = 1 } END { exit !found }' "$texts")" || {
        echo "generate.sh: no prompt '$name' in texts.tsv" >&2
        exit 1
    }
    case "$text" in
        @recorded)
            echo "  $name.wav: recorded, kept as is"
            return
            ;;
        @music_on_hold) music_on_hold "$name" ;;
        *) speak "$name" "$text" ;;
    esac
    echo "  $name.wav ($(soxi -D "$here/$name.wav") s)"
}

check() {
    local bad=0 f spec
    for f in "$here"/*.wav; do
        spec="$(soxi -r "$f") Hz, $(soxi -c "$f") channel(s), $(soxi -b "$f") bit, $(soxi -e "$f")"
        if [ "$spec" != "8000 Hz, 1 channel(s), 16 bit, Signed Integer PCM" ]; then
            echo "$(basename "$f"): $spec — must be 8000 Hz, 1 channel, 16 bit, Signed Integer PCM" >&2
            bad=1
        fi
    done
    [ "$bad" = 0 ] && echo "all prompts are 8 kHz mono 16-bit PCM"
    return "$bad"
}

need sox sox
case "${1:-}" in
    --check)
        check
        ;;
    --import)
        [ $# -eq 3 ] || { echo "usage: $0 --import FILE NAME" >&2; exit 2; }
        # a recording: any rate/channels/format in; 8 kHz mono 16-bit out, peak at -3 dBFS
        # (through a temporary file, so FILE may be the prompt itself, e.g. a 16 kHz greeting.wav)
        sox -D -V1 "$2" -r 8000 -c 1 -b 16 -e signed-integer "$tmp/import.wav" \
            highpass 100 rate -v 8000 gain -n -3
        mv "$tmp/import.wav" "$here/$3.wav"
        echo "  $3.wav ($(soxi -D "$here/$3.wav") s) imported from $2"
        echo "  mark it '@recorded' in texts.tsv so ./generate.sh does not overwrite it"
        ;;
    -h | --help)
        sed -n '2,14p' "$0"
        ;;
    *)
        need espeak-ng espeak-ng
        if [ $# -gt 0 ]; then
            names=("$@")
        else
            mapfile -t names < <(awk -F'\t' '!/^#/ && NF >= 2 { print $1 }' "$texts")
        fi
        for name in "${names[@]}"; do
            generate "$name"
        done
        ;;
esac
