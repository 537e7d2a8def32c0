//! DTMF in: the keys a caller presses, from whichever of the three ways their phone or gateway
//! sends them, each press reported exactly once as a `char` (`'0'..='9'`, `'*'`, `'#'`,
//! `'A'..='D'`).
//!
//! - [`TelephoneEventReceiver`] — RFC 4733 telephone-events in RTP (the common case; SIPp's
//!   `dtmf_2833_*.pcap` are this), built on [`parse_telephone_events`].
//! - [`parse_sip_info`] — SIP INFO bodies `application/dtmf-relay` and `application/dtmf`.
//! - [`DtmfDetector`] — in-band tones in the decoded audio (Goertzel), for gateways that send
//!   the keys as sound.
//!
//! Everything here is pure: no sockets and no clock; the call task passes packets, samples and
//! arrival times in and acts on the digits that come out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The DTMF keys by RFC 4733 event code (§3.2): 0–9, then `*` (10), `#` (11), A–D.
const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// The key for an RFC 4733 event code; `None` for codes that are not keys (16 is flash-hook).
pub fn event_to_digit(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).copied()
}

/// The RFC 4733 event code for a key (`'a'..='d'` are accepted as `'A'..='D'`).
pub fn digit_to_event(digit: char) -> Option<u8> {
    let digit = digit.to_ascii_uppercase();
    DIGITS.iter().position(|&d| d == digit).map(|i| i as u8)
}

// ---------------------------------------------------------------------------------------------
// RFC 4733 telephone-event payload
// ---------------------------------------------------------------------------------------------

/// One event block of a telephone-event payload (RFC 4733 §2.3):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     event     |E|R| volume    |          duration             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    /// The E bit: this packet reports the end of the event (§2.3.2).
    pub end: bool,
    /// Power level in −dBm0, 0..=63 (§2.3.4).
    pub volume: u8,
    /// Since the event began (the RTP timestamp), in RTP timestamp units (§2.3.5).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Bytes per event block.
    pub const LEN: usize = 4;

    /// The key this event is, if it is one.
    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }

    fn from_block(block: [u8; 4]) -> Self {
        TelephoneEvent {
            event: block[0],
            end: block[1] & 0x80 != 0,
            // The R bit (0x40) is reserved: senders set 0, receivers ignore it (§2.3.3).
            volume: block[1] & 0x3F,
            duration: u16::from_be_bytes([block[2], block[3]]),
        }
    }

    /// The 4-byte wire form (R bit 0, volume truncated to 6 bits).
    pub fn to_bytes(&self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d0,
            d1,
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TelephoneEventError {
    #[error("empty telephone-event payload")]
    Empty,
    #[error("telephone-event payload of {0} bytes is not a whole number of 4-byte event blocks")]
    PartialBlock(usize),
}

/// The event blocks of a telephone-event payload, in order. A packet normally carries one;
/// RFC 4733 §2.5.1.5 lets a sender pack several consecutive events, oldest first, the RTP
/// timestamp being the start of the first. A payload that is not whole blocks is rejected
/// rather than half-read.
pub fn parse_telephone_events(
    payload: &[u8],
) -> Result<impl ExactSizeIterator<Item = TelephoneEvent> + '_, TelephoneEventError> {
    if payload.is_empty() {
        return Err(TelephoneEventError::Empty);
    }
    if !payload.len().is_multiple_of(TelephoneEvent::LEN) {
        return Err(TelephoneEventError::PartialBlock(payload.len()));
    }
    Ok(payload
        .chunks_exact(TelephoneEvent::LEN)
        .map(|b| TelephoneEvent::from_block([b[0], b[1], b[2], b[3]])))
}

/// Appends the payload for `events` (one block each) to `out`.
pub fn encode_telephone_events(events: &[TelephoneEvent], out: &mut Vec<u8>) {
    for event in events {
        out.extend_from_slice(&event.to_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 4733 receiver: packets → key presses
// ---------------------------------------------------------------------------------------------

/// Turns the telephone-event packets of one RTP stream into key presses, each reported once.
///
/// An event is identified by its start, the RTP timestamp (RFC 4733 §2.2.1): every packet of
/// one key press carries the same timestamp with a growing duration, the final one (E bit) is
/// sent three times (§2.5.1.4), and the next press — even of the same key — gets a new
/// timestamp. So a packet whose (start, event) is already known is an update or a
/// retransmission and reports nothing; an unknown one is a new press.
///
/// **A press is reported on the first packet of it that arrives**, not when it ends: the menu
/// must stop the prompt at once (barge-in), and waiting for the E bit would add the whole key
/// press (100–300 ms) plus, if all three end packets are lost, a timeout. Nothing is lost by
/// reporting early, because the menu only needs *which* key, never how long. For the same
/// reason lost packets need no timer: if the first packets of a press are lost, the first one
/// that does arrive (marker bit or not) reports it; lost end packets change nothing.
///
/// Two quirks seen in practice are handled:
/// - **Long presses** longer than 0xFFFF timestamp units (8.2 s at 8 kHz) continue as a new
///   segment with a new timestamp and no marker bit (§2.5.1.3); that is not a new press.
/// - **Reused timestamps**: SIPp's `play_pcap_audio` replays a capture without rewriting the
///   RTP header, so playing `dtmf_2833_1.pcap` twice sends two presses with the *same*
///   timestamp (and any capture may go back in time). A packet of a known event counts as a
///   new press when it restarts the event (marker bit, or a duration shorter than already
///   seen) at least [`Self::REUSE_GUARD`] after the event's last packet. Timestamps are never
///   compared as older/newer for the same reason.
#[derive(Debug, Default)]
pub struct TelephoneEventReceiver {
    /// The most recent events, oldest first; enough to recognise late retransmissions of a
    /// press after the next one has started.
    recent: VecDeque<SeenEvent>,
}

#[derive(Debug, Clone, Copy)]
struct SeenEvent {
    start: u32,
    event: u8,
    ended: bool,
    /// The longest duration seen.
    duration: u16,
    last_arrival: Instant,
}

/// How many events the receiver remembers.
const RECENT_EVENTS: usize = 8;

/// A long press continues in a new segment 0xFFFF units after the previous one started
/// (RFC 4733 §2.5.1.3); senders that cut segments at a multiple of their packet interval start
/// it a little earlier, so the window allows half a second (4096 units at 8 kHz) either side.
const SEGMENT_MIN: u32 = 0xFFFF - 0x1000;
const SEGMENT_MAX: u32 = 0xFFFF + 0x1000;

impl TelephoneEventReceiver {
    /// A packet of an already seen event restarting it this long after that event's last
    /// packet is a new press with a reused timestamp. Longer than any reordering of packets
    /// sent 20–50 ms apart; shorter than a person needs to press a key again.
    pub const REUSE_GUARD: Duration = Duration::from_millis(200);

    pub fn new() -> Self {
        Self::default()
    }

    /// Forget all events, e.g. when the stream's SSRC changes (a re-INVITE to a new source).
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    /// One telephone-event packet (its payload type already checked against the negotiated
    /// one): returns the keys newly pressed, usually none, at most one per event block.
    /// Events that are not keys (flash-hook, tones) are tracked but not returned.
    pub fn receive(
        &mut self,
        rtp_timestamp: u32,
        marker: bool,
        payload: &[u8],
        arrival: Instant,
    ) -> Result<Vec<char>, TelephoneEventError> {
        let blocks = parse_telephone_events(payload)?;
        let last = blocks.len() - 1;
        let mut pressed = Vec::new();
        // Packed events follow each other without gaps: each starts where the previous
        // one ended (§2.5.1.5, §2.5.2.4). Earlier blocks are usually ones we have already
        // seen, repeated for redundancy, and are recognised by their start like any other.
        let mut start = rtp_timestamp;
        for (i, block) in blocks.enumerate() {
            // The marker bit belongs to the packet's newest event, the last block.
            let new_press = self.observe(start, i == last && marker, block, arrival);
            if new_press && let Some(digit) = block.digit() {
                pressed.push(digit);
            }
            start = start.wrapping_add(u32::from(block.duration));
        }
        Ok(pressed)
    }

    /// Records one event block; true when it is a new press.
    fn observe(&mut self, start: u32, marker: bool, block: TelephoneEvent, now: Instant) -> bool {
        let fresh = SeenEvent {
            start,
            event: block.event,
            ended: block.end,
            duration: block.duration,
            last_arrival: now,
        };
        if let Some(seen) = self.recent.iter_mut().find(|s| s.start == start) {
            let quiet = now.saturating_duration_since(seen.last_arrival) >= Self::REUSE_GUARD;
            let restarts = marker || block.duration < seen.duration;
            if seen.event != block.event || (quiet && restarts) {
                // A reused timestamp: a different key, or the same key pressed again.
                *seen = fresh;
                return true;
            }
            seen.ended |= block.end;
            seen.duration = seen.duration.max(block.duration);
            seen.last_arrival = now;
            return false;
        }
        let continues_long_press = !marker
            && self.recent.iter().any(|s| {
                s.event == block.event
                    && !s.ended
                    && (SEGMENT_MIN..=SEGMENT_MAX).contains(&start.wrapping_sub(s.start))
            });
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(fresh);
        !continues_long_press
    }
}

// ---------------------------------------------------------------------------------------------
// SIP INFO
// ---------------------------------------------------------------------------------------------

/// The key in a SIP INFO request's body, by its Content-Type; `None` for other content types
/// and bodies without a key.
///
/// Neither body format has an RFC: both predate INFO packages (RFC 6086 calls this "legacy
/// INFO usage") and are what gateways and phones send. `application/dtmf-relay` (Cisco) is
/// lines of `Key=Value` with `Signal=5` and `Duration=160` (ms); `application/dtmf` is just the
/// key. Some senders write `*` and `#` as their event codes 10 and 11; both forms are accepted.
pub fn parse_sip_info(content_type: &str, body: &[u8]) -> Option<char> {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let body = std::str::from_utf8(body).ok()?;
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        parse_dtmf_relay(body)
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        parse_key(body)
    } else {
        None
    }
}

/// The `Signal=` of an `application/dtmf-relay` body (key case-insensitive, CRLF or LF).
pub fn parse_dtmf_relay(body: &str) -> Option<char> {
    body.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("signal")
            .then(|| parse_key(value))
            .flatten()
    })
}

/// A key written as itself (`5`, `*`, `#`, `A`/`a`) or as its event code (`10` for `*`).
fn parse_key(text: &str) -> Option<char> {
    let text = text.trim();
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => digit_to_event(c).and_then(event_to_digit),
        _ => text.parse::<u8>().ok().and_then(event_to_digit),
    }
}

// ---------------------------------------------------------------------------------------------
// In-band DTMF (Goertzel)
// ---------------------------------------------------------------------------------------------

const SAMPLE_RATE: f32 = 8000.0;

/// The low (row) and high (column) group frequencies in Hz (ITU-T Q.23).
const ROW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COL_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Samples per analysis window (12.75 ms). 102 separates 697 Hz from 770 Hz (73 Hz apart) by
/// over 20 dB even with a 1.5 % frequency error (the value spandsp and Asterisk use).
const WINDOW_LEN: usize = 102;

/// A window is analysed every half window (6.4 ms), so that the duration checks resolve
/// tones and pauses finely enough to tell 20 ms from 40 ms, which one decision per 12.75 ms
/// cannot (a tone may fill two windows partly or one wholly).
const HOP: usize = WINDOW_LEN / 2;

/// The peak amplitude of a 0 dBm0 sine in 16-bit samples: G.711 puts its largest sine at
/// +3.17 dBm0 (µ-law) / +3.14 dBm0 (A-law), i.e. 32 636 / 10^(3.17/20) ≈ 22 660.
const DBM0_PEAK: f32 = 22_660.0;

/// Each of the two tones must be at least this loud. Receivers are usually required to accept
/// tones down to about −25 dBm0 (the exact figure varies by network, ITU-T Q.24); this leaves
/// margin for line loss while ignoring faint cross-talk.
const MIN_TONE_DBM0: f32 = -35.0;

/// The low-group tone may be up to 8 dB louder than the high one (a long line loses more of
/// the high frequencies), the high one up to 4 dB louder than the low one — the twist limits
/// spandsp and Asterisk use.
const MAX_LOW_OVER_HIGH_DB: f32 = 8.0;
const MAX_HIGH_OVER_LOW_DB: f32 = 4.0;

/// The strongest frequency of each group must beat the other three of its group by this much.
const RELATIVE_PEAK_DB: f32 = 8.0;

/// The two tones must carry at least this share of the window's energy — the check that
/// tells DTMF from speech and music, whose energy is spread over many frequencies. A clean
/// key gives ~1.0, a key 1.5 % off frequency ~0.8 (the window's response falls off), a key
/// with 10 dB of noise ~0.9; a window that a tone fills to a fraction f gives about f.
///
/// The value trades talk-off against tolerance. Measured on 20 minutes of synthetic voiced
/// speech made to be hard (pure harmonics shaped by narrow formants; the tests' generator):
/// 0.70 → 5 false keys, 0.75 → 3, 0.80 → 1 — but at 0.80 keys 1.5 % off frequency (which
/// Q.24 requires to be accepted) start to be missed. The false keys were voices whose
/// harmonics sat on a DTMF pair, e.g. 232.5 Hz × 3 and × 7 = 697.5 + 1627.5 Hz (key A).
const MIN_TONE_SHARE: f32 = 0.75;

/// A key is reported once this many consecutive windows hold it: the windows then span at
/// least 204 samples (25.5 ms) of tone. Every tone of 40 ms (Q.24's must-accept duration)
/// fills four whole windows at any alignment; no tone of 20 ms (Q.24's must-reject) can pass.
const HITS_TO_BEGIN: u32 = 4;

/// A key is over after this many consecutive windows without it: a pause of 40 ms spoils at
/// least seven windows, a drop-out of 20 ms (one lost RTP packet played as silence) at most
/// five, so the first separates two presses of the same key and the second does not.
const MISSES_TO_END: u32 = 6;

fn db_to_power_ratio(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// One Goertzel filter over half a window: the DFT at one frequency, one sample at a time.
#[derive(Debug, Clone, Copy)]
struct Goertzel {
    coeff: f32,
    cos: f32,
    sin: f32,
    s1: f32,
    s2: f32,
}

impl Goertzel {
    fn new(hz: f32) -> Self {
        let omega = 2.0 * std::f32::consts::PI * hz / SAMPLE_RATE;
        Goertzel {
            coeff: 2.0 * omega.cos(),
            cos: omega.cos(),
            sin: omega.sin(),
            s1: 0.0,
            s2: 0.0,
        }
    }

    #[inline]
    fn push(&mut self, x: f32) {
        let s = x + self.coeff * self.s1 - self.s2;
        self.s2 = self.s1;
        self.s1 = s;
    }

    /// The complex output `s[M-1] - e^(-jω) s[M-2]`, which is the DFT of the M samples since
    /// the last reset times `e^(jω(M-1))`; resets.
    fn take(&mut self) -> Complex {
        let y = Complex {
            re: self.s1 - self.cos * self.s2,
            im: self.sin * self.s2,
        };
        self.s1 = 0.0;
        self.s2 = 0.0;
        y
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Complex {
    re: f32,
    im: f32,
}

impl Complex {
    fn mul_add(self, factor: Complex, add: Complex) -> Complex {
        Complex {
            re: self.re * factor.re - self.im * factor.im + add.re,
            im: self.re * factor.im + self.im * factor.re + add.im,
        }
    }

    fn norm_sqr(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
}

/// The eight DFT values and the energy of one half window.
#[derive(Debug, Clone, Copy)]
struct Half {
    dft: [Complex; 8],
    energy: f32,
}

/// A key as its row and column on the keypad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    row: usize,
    col: usize,
}

/// The mean squares of one window at the eight frequencies (A²/2 for a sine of amplitude A
/// that fills the window) and overall, comparable with each other.
struct Window {
    rows: [f32; 4],
    cols: [f32; 4],
    total: f32,
}

impl Window {
    /// The key the window holds, if it passes every check.
    fn key(&self) -> Option<Key> {
        let (row, row_ms) = strongest(&self.rows);
        let (col, col_ms) = strongest(&self.cols);
        let min_ms = (DBM0_PEAK * DBM0_PEAK / 2.0) * db_to_power_ratio(MIN_TONE_DBM0);
        let peak = db_to_power_ratio(RELATIVE_PEAK_DB);
        let others_below = |group: &[f32; 4], best: usize| {
            group
                .iter()
                .enumerate()
                .all(|(i, &ms)| i == best || ms * peak <= group[best])
        };
        let is_key = row_ms >= min_ms
            && col_ms >= min_ms
            && row_ms <= col_ms * db_to_power_ratio(MAX_LOW_OVER_HIGH_DB)
            && col_ms <= row_ms * db_to_power_ratio(MAX_HIGH_OVER_LOW_DB)
            && others_below(&self.rows, row)
            && others_below(&self.cols, col)
            && row_ms + col_ms >= MIN_TONE_SHARE * self.total;
        is_key.then_some(Key { row, col })
    }
}

/// Detects DTMF keys in 8 kHz audio, each press reported once.
///
/// Feed it the decoded samples of the caller's stream in order (any slice length; 20 ms
/// frames are typical). Every 51 samples it looks at the last 102 and decides whether they
/// hold a key: both group tones loud enough, within the twist limits, each clearly the
/// strongest of its group, and together nearly all of the energy. A key is reported once
/// [`HITS_TO_BEGIN`] windows in a row hold it (~25 ms of tone; ≥ 40 ms always suffices), and
/// not again until [`MISSES_TO_END`] windows in a row have not (a pause of ≥ 40 ms).
///
/// The windows overlap by half, yet each sample passes through only eight filters: the
/// filters run over half windows, and two neighbouring halves are joined by rotating the
/// second's DFT by its offset (`X = X₁ + e^(-jω·51)·X₂`).
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    /// Rows then columns.
    filters: [Goertzel; 8],
    /// `e^(-jω·HOP)` per filter: moves a half's DFT to its place in the window.
    shift: [Complex; 8],
    energy: f32,
    filled: usize,
    previous: Option<Half>,
    /// The key of the current run of windows and how many windows it has lasted.
    candidate: Option<Key>,
    hits: u32,
    /// The key reported and not yet released, and the windows since it was last heard.
    pressed: Option<Key>,
    misses: u32,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> Self {
        let hz: [f32; 8] = [ROW_HZ, COL_HZ]
            .concat()
            .try_into()
            .expect("eight frequencies");
        DtmfDetector {
            filters: hz.map(Goertzel::new),
            shift: hz.map(|hz| {
                let phase = 2.0 * std::f32::consts::PI * hz * HOP as f32 / SAMPLE_RATE;
                Complex {
                    re: phase.cos(),
                    im: -phase.sin(),
                }
            }),
            energy: 0.0,
            filled: 0,
            previous: None,
            candidate: None,
            hits: 0,
            pressed: None,
            misses: 0,
        }
    }

    /// Forget the audio so far (e.g. after a gap in the stream).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The next samples of the stream; returns the keys whose press was recognised in them.
    pub fn process(&mut self, samples: &[i16]) -> Vec<char> {
        let mut pressed = Vec::new();
        for &sample in samples {
            let x = f32::from(sample);
            for filter in &mut self.filters {
                filter.push(x);
            }
            self.energy += x * x;
            self.filled += 1;
            if self.filled == HOP {
                let half = Half {
                    dft: self.filters.each_mut().map(|f| f.take()),
                    energy: self.energy,
                };
                self.energy = 0.0;
                self.filled = 0;
                if let Some(previous) = self.previous.replace(half)
                    && let Some(Key { row, col }) = self.track(self.window(&previous, &half))
                {
                    pressed.push(KEYPAD[row][col]);
                }
            }
        }
        pressed
    }

    /// The window made of two consecutive halves.
    fn window(&self, first: &Half, second: &Half) -> Window {
        let scale = 2.0 / (WINDOW_LEN * WINDOW_LEN) as f32;
        let ms: [f32; 8] = std::array::from_fn(|i| {
            second.dft[i]
                .mul_add(self.shift[i], first.dft[i])
                .norm_sqr()
                * scale
        });
        Window {
            rows: [ms[0], ms[1], ms[2], ms[3]],
            cols: [ms[4], ms[5], ms[6], ms[7]],
            total: (first.energy + second.energy) / WINDOW_LEN as f32,
        }
    }

    /// Turns window decisions into presses; returns a key when its press is recognised.
    fn track(&mut self, window: Window) -> Option<Key> {
        let heard = window.key();
        if let Some(key) = self.pressed {
            if heard == Some(key) {
                self.misses = 0;
                return None;
            }
            self.misses += 1;
            if self.misses >= MISSES_TO_END {
                self.pressed = None;
            }
        }
        if heard.is_some() && heard == self.candidate {
            self.hits += 1;
        } else {
            self.candidate = heard;
            self.hits = u32::from(heard.is_some());
        }
        if self.pressed.is_none() && self.hits >= HITS_TO_BEGIN {
            self.pressed = self.candidate;
            self.misses = 0;
            self.hits = 0;
            return self.pressed;
        }
        None
    }
}

/// The index and value of the largest of four.
fn strongest(values: &[f32; 4]) -> (usize, f32) {
    values.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, v)| if v > best.1 { (i, v) } else { best },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::f32::consts::PI;

    // -----------------------------------------------------------------------------------------
    // digits and RFC 4733 payload
    // -----------------------------------------------------------------------------------------

    #[test]
    fn event_codes_map_to_keys_and_back() {
        let keys: String = (0..16).map(|e| event_to_digit(e).unwrap()).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        for event in 0..16 {
            assert_eq!(digit_to_event(event_to_digit(event).unwrap()), Some(event));
        }
        assert_eq!(event_to_digit(16), None, "16 is flash-hook, not a key");
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(digit_to_event('E'), None);
    }

    #[test]
    fn telephone_event_payload_parses_and_encodes() {
        // SIPp's dtmf_2833_1.pcap, last packet: event 1, E, volume 10, duration 2240.
        let events: Vec<_> = parse_telephone_events(&[0x01, 0x8A, 0x08, 0xC0])
            .unwrap()
            .collect();
        let one = TelephoneEvent {
            event: 1,
            end: true,
            volume: 10,
            duration: 2240,
        };
        assert_eq!(events, [one]);
        assert_eq!(one.to_bytes(), [0x01, 0x8A, 0x08, 0xC0]);
        assert_eq!(one.digit(), Some('1'));

        // The R bit is ignored; two blocks come out in order.
        let two = [0x0B, 0xC5, 0x01, 0x40, 0x0C, 0x05, 0x00, 0xA0];
        let events: Vec<_> = parse_telephone_events(&two).unwrap().collect();
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].event, events[0].end, events[0].volume),
            (11, true, 5)
        );
        assert_eq!(
            (events[1].digit(), events[1].end, events[1].duration),
            (Some('A'), false, 160)
        );
        let mut out = vec![];
        encode_telephone_events(&events, &mut out);
        assert_eq!(
            out,
            [0x0B, 0x85, 0x01, 0x40, 0x0C, 0x05, 0x00, 0xA0],
            "R bit written as 0"
        );

        assert_eq!(
            parse_telephone_events(&[]).err(),
            Some(TelephoneEventError::Empty)
        );
        assert_eq!(
            parse_telephone_events(&[1, 2, 3, 4, 5]).err(),
            Some(TelephoneEventError::PartialBlock(5))
        );
    }

    // -----------------------------------------------------------------------------------------
    // RFC 4733 receiver
    // -----------------------------------------------------------------------------------------

    fn block(event: u8, end: bool, duration: u16) -> Vec<u8> {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
        .to_vec()
    }

    /// One packet as the receiver sees it, at `ms` after the test's start.
    struct Packet {
        ts: u32,
        marker: bool,
        payload: Vec<u8>,
        ms: u64,
    }

    /// The packets of one press as RFC 4733 senders make them: marker on the first, an update
    /// every 20 ms (160 units), then the end packet three times.
    fn press(event: u8, ts: u32, updates: u16, at_ms: u64) -> Vec<Packet> {
        let mut packets: Vec<Packet> = (0..updates)
            .map(|i| Packet {
                ts,
                marker: i == 0,
                payload: block(event, false, i * 160),
                ms: at_ms + u64::from(i) * 20,
            })
            .collect();
        let end_ms = at_ms + u64::from(updates) * 20;
        for _ in 0..3 {
            packets.push(Packet {
                ts,
                marker: false,
                payload: block(event, true, updates * 160),
                ms: end_ms,
            });
        }
        packets
    }

    /// Feeds packets in order; returns the keys with the index of the packet that reported.
    fn receive_all(rx: &mut TelephoneEventReceiver, packets: &[Packet]) -> Vec<(usize, char)> {
        let t0 = Instant::now();
        let mut keys = vec![];
        for (i, p) in packets.iter().enumerate() {
            let at = t0 + Duration::from_millis(p.ms);
            for key in rx.receive(p.ts, p.marker, &p.payload, at).unwrap() {
                keys.push((i, key));
            }
        }
        keys
    }

    fn keys(packets: &[Packet]) -> String {
        let mut rx = TelephoneEventReceiver::new();
        receive_all(&mut rx, packets)
            .into_iter()
            .map(|(_, k)| k)
            .collect()
    }

    #[test]
    fn a_press_is_reported_once_on_its_first_packet() {
        let packets = press(5, 1000, 8, 0);
        let mut rx = TelephoneEventReceiver::new();
        assert_eq!(
            receive_all(&mut rx, &packets),
            [(0, '5')],
            "at once, for barge-in"
        );
    }

    #[test]
    fn a_long_press_with_many_updates_is_one_key() {
        assert_eq!(keys(&press(9, 1000, 150, 0)), "9");
    }

    #[test]
    fn the_same_key_twice_has_two_timestamps_and_is_two_keys() {
        let mut packets = press(3, 1000, 5, 0);
        packets.extend(press(3, 1000 + 2400, 5, 300));
        assert_eq!(keys(&packets), "33");
    }

    #[test]
    fn lost_first_packets_report_the_key_on_the_first_that_arrives() {
        let mut packets = press(7, 1000, 6, 0);
        packets.drain(..3);
        let mut rx = TelephoneEventReceiver::new();
        assert_eq!(receive_all(&mut rx, &packets), [(0, '7')]);
        // Only the end packets arrived: still one key.
        let mut packets = press(8, 5000, 6, 0);
        packets.drain(..6);
        assert_eq!(keys(&packets), "8");
    }

    #[test]
    fn lost_end_packets_do_not_swallow_or_repeat_keys() {
        let mut first = press(1, 1000, 5, 0);
        first.truncate(5);
        let mut second = press(1, 1000 + 1600, 5, 200);
        second.truncate(5);
        let mut packets = first;
        packets.extend(second);
        packets.extend(press(2, 1000 + 3200, 5, 400));
        assert_eq!(keys(&packets), "112");
    }

    #[test]
    fn reordered_and_late_packets_are_not_new_keys() {
        let mut first = press(4, 1000, 6, 0);
        // An update overtaken by the end packets …
        let late_update = first.remove(3);
        first.insert(7, late_update);
        let mut packets = first;
        let mut second = press(6, 1000 + 2000, 6, 250);
        // … and a retransmitted end of the first press after the second has begun.
        second.insert(
            2,
            Packet {
                ts: 1000,
                marker: false,
                payload: block(4, true, 960),
                ms: 280,
            },
        );
        packets.extend(second);
        assert_eq!(keys(&packets), "46");
    }

    #[test]
    fn a_press_longer_than_the_duration_field_continues_in_a_new_segment() {
        // RFC 4733 §2.5.1.3: at 0xFFFF the sender starts a new segment, timestamp + 0xFFFF,
        // without the marker bit. 12 s of key 0: two segments, one key.
        let start = 0xFFFF_F000u32; // and the timestamp wraps on the way
        let mut packets = vec![];
        for i in 0..=409u16 {
            packets.push(Packet {
                ts: start,
                marker: i == 0,
                payload: block(0, false, i * 160),
                ms: u64::from(i) * 20,
            });
        }
        packets.push(Packet {
            ts: start,
            marker: false,
            payload: block(0, false, 0xFFFF),
            ms: 8192,
        });
        let second = start.wrapping_add(0xFFFF);
        for i in 0..=240u16 {
            packets.push(Packet {
                ts: second,
                marker: false,
                payload: block(0, i == 240, i * 160),
                ms: 8200 + u64::from(i) * 20,
            });
        }
        assert_eq!(keys(&packets), "0");
        // A key pressed after the long one is still reported.
        packets.extend(press(0, second.wrapping_add(0xA000), 3, 13_000));
        assert_eq!(keys(&packets), "00");
    }

    #[test]
    fn a_replayed_capture_with_the_same_timestamp_is_a_new_press() {
        // SIPp's play_pcap_audio sends the captured RTP headers unchanged.
        let mut packets = press(1, 13280, 7, 0);
        packets.extend(press(1, 13280, 7, 1000));
        // A different key with the same timestamp, and time going backwards.
        packets.extend(press(2, 13280, 7, 2000));
        packets.extend(press(9, 500, 7, 3000));
        assert_eq!(keys(&packets), "1129");
    }

    #[test]
    fn packed_events_each_start_where_the_previous_ended() {
        // RFC 4733 §2.5.1.5: '1' (ended, 800 units) then '#' in one packet.
        let mut payload = block(1, true, 800);
        payload.extend(block(11, false, 320));
        let packed = |ms| Packet {
            ts: 4000,
            marker: true,
            payload: payload.clone(),
            ms,
        };
        // '1' was already seen in its own packets: only '#' is new.
        let mut packets = press(1, 4000, 5, 0);
        packets.push(packed(120));
        packets.push(Packet {
            ts: 4800,
            marker: false,
            payload: block(11, true, 480),
            ms: 140,
        });
        assert_eq!(keys(&packets), "1#");
        // '1' lost: both come from the packed packet, in order.
        assert_eq!(keys(&[packed(0)]), "1#");
    }

    #[test]
    fn non_key_events_and_bad_payloads_report_nothing() {
        let mut rx = TelephoneEventReceiver::new();
        let now = Instant::now();
        assert_eq!(rx.receive(10, true, &block(16, false, 0), now), Ok(vec![]));
        assert_eq!(
            rx.receive(20, true, &[1, 2, 3], now),
            Err(TelephoneEventError::PartialBlock(3))
        );
        assert_eq!(
            rx.receive(20, true, &block(5, false, 0), now),
            Ok(vec!['5'])
        );
        rx.reset();
        assert_eq!(
            rx.receive(20, false, &block(5, true, 800), now),
            Ok(vec!['5'])
        );
    }

    // -----------------------------------------------------------------------------------------
    // RFC 2833 captures shipped with SIPp
    // -----------------------------------------------------------------------------------------

    /// The UDP payloads of a pcap file with their capture times: Ethernet (optionally one
    /// 802.1Q tag), IPv4, UDP. Just enough for SIPp's captures; anything else fails loudly.
    fn pcap_udp_payloads(file: &[u8]) -> Vec<(Duration, Vec<u8>)> {
        let u32_at = |b: &[u8], big: bool| {
            let b = [b[0], b[1], b[2], b[3]];
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        assert!(file.len() >= 24, "pcap global header truncated");
        let (big_endian, nanos) = match u32_at(&file[..4], false) {
            0xA1B2_C3D4 => (false, false),
            0xD4C3_B2A1 => (true, false),
            0xA1B2_3C4D => (false, true),
            0x4D3C_B2A1 => (true, true),
            magic => panic!("not a pcap file (magic {magic:#010x})"),
        };
        let link_type = u32_at(&file[20..24], big_endian);
        assert_eq!(link_type, 1, "only Ethernet captures are supported");
        let mut packets = vec![];
        let mut rest = &file[24..];
        while !rest.is_empty() {
            assert!(rest.len() >= 16, "pcap record header truncated");
            let secs = u32_at(&rest[0..4], big_endian);
            let frac = u32_at(&rest[4..8], big_endian);
            let captured = u32_at(&rest[8..12], big_endian) as usize;
            let frame = &rest[16..16 + captured];
            rest = &rest[16 + captured..];
            let at = Duration::new(u64::from(secs), if nanos { frac } else { frac * 1000 });

            let mut ether_type = u16::from_be_bytes([frame[12], frame[13]]);
            let mut ip = &frame[14..];
            if ether_type == 0x8100 {
                ether_type = u16::from_be_bytes([ip[2], ip[3]]);
                ip = &ip[4..];
            }
            assert_eq!(ether_type, 0x0800, "only IPv4 is supported");
            assert_eq!(ip[0] >> 4, 4);
            let header_len = usize::from(ip[0] & 0x0F) * 4;
            let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert_eq!(ip[9], 17, "only UDP is supported");
            let udp = &ip[header_len..total_len];
            let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
            packets.push((at, udp[8..udp_len].to_vec()));
        }
        packets
    }

    /// A SIPp capture: from our fixtures, else from the installed sip-tester package.
    fn sipp_capture(name: &str) -> Vec<u8> {
        let ours = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dtmf")
            .join(name);
        let installed = std::path::Path::new("/usr/share/sip-tester").join(name);
        std::fs::read(&ours)
            .or_else(|_| std::fs::read(&installed))
            .unwrap_or_else(|e| {
                panic!(
                    "{name} is neither in {} nor in {}: {e}. Restore the fixture from git, or \
                     install SIPp's captures with `apt-get install sip-tester`.",
                    ours.display(),
                    installed.display()
                )
            })
    }

    const SIPP_CAPTURES: [(&str, char); 12] = [
        ("dtmf_2833_0.pcap", '0'),
        ("dtmf_2833_1.pcap", '1'),
        ("dtmf_2833_2.pcap", '2'),
        ("dtmf_2833_3.pcap", '3'),
        ("dtmf_2833_4.pcap", '4'),
        ("dtmf_2833_5.pcap", '5'),
        ("dtmf_2833_6.pcap", '6'),
        ("dtmf_2833_7.pcap", '7'),
        ("dtmf_2833_8.pcap", '8'),
        ("dtmf_2833_9.pcap", '9'),
        ("dtmf_2833_star.pcap", '*'),
        ("dtmf_2833_pound.pcap", '#'),
    ];

    /// Plays captures one after another through one receiver, each starting `gap` after the
    /// previous one started, with the capture's own packet spacing — as SIPp does.
    fn play_captures(names: &[&str], gap: Duration) -> String {
        let mut rx = TelephoneEventReceiver::new();
        let t0 = Instant::now();
        let mut keys = String::new();
        for (n, name) in names.iter().enumerate() {
            let packets = pcap_udp_payloads(&sipp_capture(name));
            assert!(!packets.is_empty(), "{name} holds no packets");
            let first = packets[0].0;
            for (at, udp) in &packets {
                let rtp = rtp_rs::RtpReader::new(udp)
                    .unwrap_or_else(|e| panic!("{name}: not RTP: {e:?}"));
                assert_eq!(rtp.payload_type(), 101, "{name}: SIPp captures use PT 101");
                let arrival = t0 + gap * n as u32 + (*at - first);
                let pressed = rx
                    .receive(rtp.timestamp(), rtp.mark(), rtp.payload(), arrival)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                keys.extend(pressed);
            }
        }
        keys
    }

    #[test]
    fn each_sipp_capture_yields_its_key_once() {
        for (name, key) in SIPP_CAPTURES {
            assert_eq!(
                play_captures(&[name], Duration::ZERO),
                key.to_string(),
                "{name}"
            );
        }
    }

    #[test]
    fn sipp_captures_played_in_a_row_yield_each_key_once() {
        // The captures share one SSRC; 9 then 0 goes back in time, and playing the same
        // capture twice repeats its timestamp exactly.
        let names: Vec<&str> = SIPP_CAPTURES.iter().map(|(n, _)| *n).collect();
        let all: String = SIPP_CAPTURES.iter().map(|(_, k)| *k).collect();
        assert_eq!(play_captures(&names, Duration::from_secs(1)), all);
        let twice = ["dtmf_2833_9.pcap", "dtmf_2833_1.pcap", "dtmf_2833_1.pcap"];
        assert_eq!(play_captures(&twice, Duration::from_millis(500)), "911");
    }

    // -----------------------------------------------------------------------------------------
    // SIP INFO
    // -----------------------------------------------------------------------------------------

    #[test]
    fn sip_info_dtmf_relay_bodies() {
        let relay = |body: &str| parse_sip_info("application/dtmf-relay", body.as_bytes());
        assert_eq!(relay("Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(relay("Signal=5\r\nDuration=160"), Some('5'));
        assert_eq!(relay("Duration=250\nsignal = #\n"), Some('#'));
        assert_eq!(relay("Signal=*\r\nDuration=100\r\n"), Some('*'));
        assert_eq!(relay("Signal=10\r\n"), Some('*'));
        assert_eq!(relay("Signal=11\r\n"), Some('#'));
        assert_eq!(relay("Signal=d\r\n"), Some('D'));
        assert_eq!(relay("Signal=\r\nDuration=160\r\n"), None);
        assert_eq!(relay("Signal=16\r\n"), None, "flash-hook is not a key");
        assert_eq!(relay("Signal=55\r\n"), None);
        assert_eq!(relay("Duration=160\r\n"), None);
        assert_eq!(relay(""), None);
        assert_eq!(
            parse_sip_info("Application/DTMF-Relay; charset=UTF-8", b"Signal=7\r\n"),
            Some('7')
        );
    }

    #[test]
    fn sip_info_dtmf_bodies_and_other_types() {
        assert_eq!(parse_sip_info("application/dtmf", b"5"), Some('5'));
        assert_eq!(parse_sip_info("application/dtmf", b"#\r\n"), Some('#'));
        assert_eq!(parse_sip_info("application/dtmf", b" 11 "), Some('#'));
        assert_eq!(parse_sip_info("application/dtmf", b"12"), Some('A'));
        assert_eq!(parse_sip_info("application/dtmf", b"55"), None);
        assert_eq!(parse_sip_info("application/dtmf", b""), None);
        assert_eq!(parse_sip_info("application/dtmf", b"\xFF"), None);
        assert_eq!(parse_sip_info("application/sdp", b"5"), None);
        assert_eq!(parse_sip_info("text/plain", b"Signal=5"), None);
    }

    // -----------------------------------------------------------------------------------------
    // in-band: signal synthesis
    // -----------------------------------------------------------------------------------------

    const RATE: f32 = 8000.0;

    fn samples_for_ms(ms: f32) -> usize {
        (ms * RATE / 1000.0).round() as usize
    }

    fn peak(dbm0: f32) -> f32 {
        DBM0_PEAK * 10f32.powf(dbm0 / 20.0)
    }

    fn key_hz(key: char) -> (f32, f32) {
        for (r, row) in KEYPAD.iter().enumerate() {
            if let Some(c) = row.iter().position(|&k| k == key) {
                return (ROW_HZ[r], COL_HZ[c]);
            }
        }
        panic!("{key} is not a DTMF key")
    }

    /// A sum of sines (Hz, dBm0) over `len` samples, as f32 so signals can be mixed.
    fn sines(parts: &[(f32, f32)], len: usize) -> Vec<f32> {
        (0..len)
            .map(|n| {
                parts
                    .iter()
                    .map(|&(hz, dbm0)| peak(dbm0) * (2.0 * PI * hz * n as f32 / RATE + 0.3).sin())
                    .sum()
            })
            .collect()
    }

    /// A key's two tones: low group at `low` dBm0, high group at `high` dBm0.
    fn key_tone(key: char, low: f32, high: f32, ms: f32) -> Vec<f32> {
        let (row, col) = key_hz(key);
        sines(&[(row, low), (col, high)], samples_for_ms(ms))
    }

    fn silence(ms: f32) -> Vec<f32> {
        vec![0.0; samples_for_ms(ms)]
    }

    /// White Gaussian noise with an RMS of `dbm0` (Box–Muller).
    fn noise(dbm0: f32, len: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let rms = peak(dbm0) / 2f32.sqrt();
        (0..len)
            .map(|_| {
                let (u1, u2): (f32, f32) = (rng.random_range(1e-9..1.0), rng.random());
                rms * (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
            })
            .collect()
    }

    fn concat(parts: &[Vec<f32>]) -> Vec<f32> {
        parts.concat()
    }

    fn mix(a: &[f32], b: &[f32]) -> Vec<f32> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }

    fn to_pcm(signal: &[f32]) -> Vec<i16> {
        signal
            .iter()
            .map(|&x| x.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    /// Runs the detector over 20 ms frames, as the call task will.
    fn detect(signal: &[f32]) -> String {
        let mut detector = DtmfDetector::new();
        to_pcm(signal)
            .chunks(160)
            .flat_map(|frame| detector.process(frame))
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // in-band: tests
    // -----------------------------------------------------------------------------------------

    /// The joined half windows give the same power as a DFT over the whole window.
    #[test]
    fn half_windows_join_into_the_window_dft() {
        let mut rng = StdRng::seed_from_u64(11);
        let detector = DtmfDetector::new();
        let hz: Vec<f32> = ROW_HZ.iter().chain(&COL_HZ).copied().collect();
        for _ in 0..20 {
            let x: Vec<f32> = (0..WINDOW_LEN)
                .map(|_| rng.random_range(-20000.0..20000.0))
                .collect();
            let mut filters = detector.filters;
            let mut half = |samples: &[f32]| Half {
                dft: filters.each_mut().map(|f| {
                    samples.iter().for_each(|&s| f.push(s));
                    f.take()
                }),
                energy: samples.iter().map(|s| s * s).sum(),
            };
            let (first, second) = (half(&x[..HOP]), half(&x[HOP..]));
            let window = detector.window(&first, &second);
            let joined: Vec<f32> = window.rows.iter().chain(&window.cols).copied().collect();
            for (i, &f) in hz.iter().enumerate() {
                let w = 2.0 * PI * f / RATE;
                let (re, im) = x
                    .iter()
                    .enumerate()
                    .fold((0.0f64, 0.0f64), |(re, im), (n, &v)| {
                        let a = f64::from(w) * n as f64;
                        (re + f64::from(v) * a.cos(), im - f64::from(v) * a.sin())
                    });
                let direct = ((re * re + im * im) * 2.0 / (WINDOW_LEN * WINDOW_LEN) as f64) as f32;
                assert!(
                    (joined[i] - direct).abs() <= 1e-3 * direct.max(1.0),
                    "{f} Hz: {} vs {direct}",
                    joined[i]
                );
            }
            let total: f32 = x.iter().map(|s| s * s).sum::<f32>() / WINDOW_LEN as f32;
            assert!((window.total - total).abs() <= 1e-4 * total);
        }
    }

    #[test]
    fn every_key_at_every_level() {
        for key in "0123456789*#ABCD".chars() {
            for level in [-3.0, -10.0, -20.0, -30.0] {
                let signal = concat(&[
                    silence(60.0),
                    key_tone(key, level, level, 80.0),
                    silence(60.0),
                ]);
                assert_eq!(detect(&signal), key.to_string(), "{key} at {level} dBm0");
            }
        }
    }

    #[test]
    fn a_sequence_of_keys() {
        let keys = "0123456789*#ABCD159#";
        let mut parts = vec![];
        for key in keys.chars() {
            parts.push(key_tone(key, -8.0, -6.0, 70.0));
            parts.push(silence(60.0));
        }
        assert_eq!(detect(&concat(&parts)), keys);
    }

    #[test]
    fn too_quiet_tones_are_ignored() {
        let signal = concat(&[silence(20.0), key_tone('5', -42.0, -42.0, 200.0)]);
        assert_eq!(detect(&signal), "");
    }

    #[test]
    fn twist_within_limits_is_accepted_and_beyond_rejected() {
        let with = |low, high| detect(&key_tone('8', low, high, 100.0));
        assert_eq!(with(-10.0, -16.0), "8", "low group 6 dB louder");
        assert_eq!(with(-10.0, -7.0), "8", "high group 3 dB louder");
        assert_eq!(with(-10.0, -20.0), "", "low group 10 dB louder");
        assert_eq!(with(-10.0, -4.0), "", "high group 6 dB louder");
    }

    #[test]
    fn frequencies_off_by_one_and_a_half_percent_are_accepted() {
        for key in "0123456789*#ABCD".chars() {
            for factor in [0.985, 1.015] {
                for offset in [0, 25, 51, 76] {
                    let (row, col) = key_hz(key);
                    let tone = sines(&[(row * factor, -10.0), (col * factor, -10.0)], 320);
                    let signal = concat(&[vec![0.0; offset], tone, silence(50.0)]);
                    assert_eq!(detect(&signal), key.to_string(), "40 ms {key} × {factor}");
                }
            }
        }
    }

    #[test]
    fn a_single_tone_or_a_dial_tone_is_not_a_key() {
        for hz in ROW_HZ.iter().chain(&COL_HZ).chain(&[425.0, 1000.0]) {
            assert_eq!(detect(&sines(&[(*hz, -6.0)], 8000)), "", "{hz} Hz");
        }
        // Two tones of the same group.
        assert_eq!(detect(&sines(&[(697.0, -10.0), (852.0, -10.0)], 8000)), "");
    }

    #[test]
    fn forty_ms_tones_are_accepted_and_twenty_ms_rejected_at_every_alignment() {
        for offset in 0..WINDOW_LEN {
            let lead = vec![0.0; offset];
            let short = concat(&[
                lead.clone(),
                key_tone('3', -10.0, -10.0, 20.0),
                silence(60.0),
            ]);
            assert_eq!(detect(&short), "", "20 ms tone, offset {offset}");
            let long = concat(&[lead, key_tone('3', -10.0, -10.0, 40.0), silence(60.0)]);
            assert_eq!(detect(&long), "3", "40 ms tone, offset {offset}");
        }
    }

    #[test]
    fn a_pause_separates_two_presses_of_the_same_key_but_a_drop_out_does_not() {
        for offset in 0..WINDOW_LEN {
            let lead = vec![0.0; offset];
            let tone = || key_tone('0', -12.0, -10.0, 80.0);
            for pause_ms in [50.0, 40.0] {
                let twice = concat(&[lead.clone(), tone(), silence(pause_ms), tone()]);
                assert_eq!(detect(&twice), "00", "{pause_ms} ms pause, offset {offset}");
            }
            let dropout = concat(&[lead.clone(), tone(), silence(20.0), tone()]);
            assert_eq!(detect(&dropout), "0", "20 ms drop-out, offset {offset}");
        }
    }

    #[test]
    fn a_long_press_is_one_key() {
        assert_eq!(detect(&key_tone('#', -7.0, -5.0, 3000.0)), "#");
    }

    #[test]
    fn the_frame_size_does_not_matter() {
        let signal = to_pcm(&concat(&[
            key_tone('4', -10.0, -10.0, 60.0),
            silence(45.0),
            key_tone('4', -10.0, -10.0, 45.0),
            silence(45.0),
            key_tone('B', -10.0, -10.0, 60.0),
        ]));
        for frame in [1, 7, 80, 160, 240, signal.len()] {
            let mut detector = DtmfDetector::new();
            let keys: String = signal
                .chunks(frame)
                .flat_map(|f| detector.process(f))
                .collect();
            assert_eq!(keys, "44B", "frames of {frame} samples");
        }
    }

    #[test]
    fn keys_in_noise_are_found_and_noise_alone_is_not_a_key() {
        let len = samples_for_ms(120.0);
        for (i, key) in "147*2580369#ABCD".chars().enumerate() {
            // Tones at −20 dBm0 each in noise at −32 dBm0: ~15 dB signal-to-noise.
            let noisy = mix(
                &key_tone(key, -20.0, -20.0, 120.0),
                &noise(-32.0, len, i as u64),
            );
            let signal = concat(&[noise(-32.0, 800, 100 + i as u64), noisy]);
            assert_eq!(detect(&signal), key.to_string(), "{key} in noise");
        }
        for (seed, level) in [(1, -30.0), (2, -15.0), (3, -3.0)] {
            assert_eq!(
                detect(&noise(level, 10 * 8000, seed)),
                "",
                "noise at {level} dBm0"
            );
        }
    }

    /// Voiced speech, roughly: harmonics of a gliding pitch (90–300 Hz) shaped by three moving
    /// formants with random strengths, in syllables of 120–400 ms.
    fn speech_like(seconds: f32, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let len = (seconds * RATE) as usize;
        let mut out = Vec::with_capacity(len);
        let mut phases = [0f32; 40];
        while out.len() < len {
            let syllable = samples_for_ms(rng.random_range(120.0..400.0));
            let (f0_from, f0_to) = (rng.random_range(90.0..300.0), rng.random_range(90.0..300.0));
            let formants: Vec<(f32, f32, f32)> =
                [(250.0, 900.0), (850.0, 2500.0), (2300.0, 3400.0)]
                    .iter()
                    .map(|&(lo, hi)| {
                        let from = rng.random_range(lo..hi);
                        let to = rng.random_range(lo..hi);
                        (from, to, rng.random_range(0.2..1.0))
                    })
                    .collect();
            let bandwidth = rng.random_range(60.0..160.0);
            let level = peak(rng.random_range(-25.0..-5.0));
            for n in 0..syllable {
                let t = n as f32 / syllable as f32;
                let f0 = f0_from + (f0_to - f0_from) * t;
                let envelope = (PI * t).sin();
                let mut x = 0.0;
                for (k, phase) in phases.iter_mut().enumerate() {
                    let hz = f0 * (k + 1) as f32;
                    if hz > 3400.0 {
                        break;
                    }
                    *phase = (*phase + 2.0 * PI * hz / RATE) % (2.0 * PI);
                    let gain: f32 = formants
                        .iter()
                        .map(|&(from, to, strength)| {
                            let centre = from + (to - from) * t;
                            strength * (-((hz - centre) / bandwidth).powi(2) / 2.0).exp()
                        })
                        .sum();
                    x += gain * phase.sin();
                }
                out.push(level * envelope * x / 2.0);
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn speech_like_sounds_and_sweeps_are_not_keys() {
        for seed in 0..6 {
            let speech = speech_like(20.0, seed);
            assert_eq!(detect(&speech), "", "speech-like signal, seed {seed}");
        }
        // A sum of random harmonics of a fixed pitch, changed every 200 ms.
        let mut rng = StdRng::seed_from_u64(7);
        let mut chords = vec![];
        for _ in 0..100 {
            let f0: f32 = rng.random_range(80.0..350.0);
            let parts: Vec<(f32, f32)> = (1..=(3400.0 / f0) as usize)
                .map(|k| (f0 * k as f32, rng.random_range(-40.0..-12.0)))
                .collect();
            chords.extend(sines(&parts, 1600));
        }
        assert_eq!(detect(&chords), "", "random harmonics");
        // A slow sweep through both groups, and a fast one.
        for seconds in [4.0f32, 0.5] {
            let len = (seconds * RATE) as usize;
            let (f_from, f_to) = (300.0f32, 3400.0f32);
            let rate = (f_to - f_from) / len as f32;
            let chirp: Vec<f32> = (0..len)
                .map(|n| {
                    let n = n as f32;
                    let phase = 2.0 * PI * (f_from * n + rate * n * n / 2.0) / RATE;
                    peak(-8.0) * phase.sin()
                })
                .collect();
            assert_eq!(detect(&chirp), "", "{seconds} s chirp");
        }
    }

    #[test]
    fn keys_survive_a_g711_round_trip() {
        for law in ["µ-law", "A-law"] {
            let round_trip = |signal: &[f32]| -> Vec<f32> {
                let pcm = to_pcm(signal);
                let (mut codes, mut back) = (vec![], vec![]);
                if law == "µ-law" {
                    g711::encode_ulaw(&pcm, &mut codes);
                    g711::decode_ulaw(&codes, &mut back);
                } else {
                    g711::encode_alaw(&pcm, &mut codes);
                    g711::decode_alaw(&codes, &mut back);
                }
                back.into_iter().map(f32::from).collect()
            };
            for key in "0123456789*#ABCD".chars() {
                for level in [-5.0, -25.0] {
                    let tone = concat(&[silence(40.0), key_tone(key, level, level, 60.0)]);
                    let heard = detect(&round_trip(&tone));
                    assert_eq!(
                        heard,
                        key.to_string(),
                        "{key} at {level} dBm0 through {law}"
                    );
                }
            }
            let tone = || key_tone('7', -10.0, -8.0, 80.0);
            let twice = concat(&[tone(), silence(50.0), tone()]);
            assert_eq!(detect(&round_trip(&twice)), "77", "{law}");
            assert_eq!(
                detect(&round_trip(&speech_like(10.0, 99))),
                "",
                "{law} speech"
            );
        }
    }

    /// CPU cost, for the record (`--nocapture`; no assertion on time).
    #[test]
    fn detector_speed() {
        let signal = to_pcm(&speech_like(
            if cfg!(debug_assertions) { 2.0 } else { 20.0 },
            5,
        ));
        let mut detector = DtmfDetector::new();
        let start = Instant::now();
        for frame in signal.chunks(160) {
            std::hint::black_box(detector.process(std::hint::black_box(frame)));
        }
        let per_frame = start.elapsed() / (signal.len() / 160) as u32;
        println!("dtmf detector: {per_frame:?} per 20 ms frame");
    }
}
