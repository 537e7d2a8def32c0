//! Sending RTP for one call, without I/O: the header state (SSRC, sequence number, timestamp,
//! marker bit; RFC 3550 §5.1) and the 20 ms schedule the packets follow. The call task sleeps
//! until [`RtpSender::next_due`], asks for the packet and sends the bytes; time is always an
//! argument, so the tests drive ten minutes of a call in milliseconds.
//!
//! # Pacing without drift
//! Packet `n` of the schedule is due at `origin + n × 20 ms`, computed from `n` — never as
//! "last send + 20 ms". A late wake-up therefore delays one packet, not all that follow: after
//! ten minutes the 30 000th packet is due exactly 599.98 s after the first.
//!
//! # Falling behind
//! Late by up to [`MAX_CATCH_UP_FRAMES`] frames (under 80 ms): the missed packets go out back
//! to back until the schedule is met again — a burst of at most four packets, which every
//! receiver's jitter buffer absorbs, and no audio is lost.
//!
//! Later than that (the machine stalled): we do not burst the backlog, which would flood the
//! receiver's jitter buffer and it would discard most of it anyway. The schedule jumps to the
//! slot that is current now; the RTP timestamp jumps with it (it keeps matching wall-clock
//! time, as after silence suppression), the sequence number does not (nothing was lost in the
//! network), and the marker bit is set so the receiver re-aligns its playout (RFC 3551 §4.1).
//! The audio is not skipped: the prompt continues where it paused; the caller hears a gap.

use std::time::{Duration, Instant};

use rand::Rng;
use rtp_rs::{RtpPacketBuilder, Seq};

/// The RTP clock of G.711 (RFC 3551 §4.5.14).
pub const CLOCK_RATE: u32 = 8000;
/// One packet's worth of audio (the `ptime` we offer and send).
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// Samples per 20 ms at 8 kHz — also bytes, one G.711 code per sample.
pub const FRAME_SAMPLES: usize = 160;
/// One 20 ms G.711 frame.
pub type Frame = [u8; FRAME_SAMPLES];
/// Fixed RTP header without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;
pub const PACKET_LEN: usize = RTP_HEADER_LEN + FRAME_SAMPLES;
/// How many whole frames late a packet may be and still be sent (with the ones after it, back
/// to back); later than this, the schedule skips ahead instead.
pub const MAX_CATCH_UP_FRAMES: u64 = 3;

const FRAME_NANOS: u64 = 20_000_000;
const TIMESTAMP_STEP: u64 = FRAME_SAMPLES as u64;

/// The slots packets are sent in: slot `n` is due at `origin + n × 20 ms`.
#[derive(Debug, Clone)]
pub struct Schedule {
    origin: Instant,
    next_slot: u64,
}

/// The slot a packet was sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub index: u64,
    pub due: Instant,
    /// Slots passed over because the sender fell more than [`MAX_CATCH_UP_FRAMES`] behind.
    pub skipped: u64,
}

impl Schedule {
    /// Slot 0 is due at `origin`.
    pub fn new(origin: Instant) -> Schedule {
        Schedule {
            origin,
            next_slot: 0,
        }
    }

    /// When slot `index` is due. Exact: integer nanoseconds, no accumulated rounding.
    pub fn due(&self, index: u64) -> Instant {
        self.origin + Duration::from_nanos(index * FRAME_NANOS)
    }

    pub fn next_due(&self) -> Instant {
        self.due(self.next_slot)
    }

    /// Takes the slot for a packet sent at `now` (see the module notes for the late policy).
    /// Called before the next slot is due, the packet simply goes out early in that slot.
    pub fn claim(&mut self, now: Instant) -> Slot {
        let behind = self.frames_behind(now);
        let skipped = if behind > MAX_CATCH_UP_FRAMES {
            behind
        } else {
            0
        };
        let index = self.next_slot + skipped;
        self.next_slot = index + 1;
        Slot {
            index,
            due: self.due(index),
            skipped,
        }
    }

    /// Moves the next slot to the one current at `now`, however little behind we are; for
    /// resuming after a pause in sending. Returns how many slots were passed over.
    pub fn resume(&mut self, now: Instant) -> u64 {
        let behind = self.frames_behind(now);
        self.next_slot += behind;
        behind
    }

    /// Whole frames between the next slot's due time and `now` (0 if not yet due).
    fn frames_behind(&self, now: Instant) -> u64 {
        let late = now.saturating_duration_since(self.next_due()).as_nanos();
        u64::try_from(late / u128::from(FRAME_NANOS)).unwrap_or(u64::MAX / 2)
    }
}

/// The RTP sending state of one call's outgoing stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
    /// The timestamp of slot 0; slot `n` carries `timestamp_base + n × 160` (mod 2³²), so the
    /// timestamp can never drift from the schedule.
    timestamp_base: u32,
    schedule: Schedule,
    marker_pending: bool,
    packets_sent: u64,
    frames_skipped: u64,
    /// Reused for every packet: building one allocates nothing.
    buf: [u8; PACKET_LEN],
}

/// One built packet, borrowed from the sender's buffer until the next one is built.
#[derive(Debug)]
pub struct Packet<'a> {
    pub bytes: &'a [u8],
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// When its slot was due; `late_by` is how long after that it was built.
    pub due: Instant,
    pub late_by: Duration,
    /// Slots passed over before this packet (late policy); 0 normally.
    pub skipped: u64,
}

impl RtpSender {
    /// A new stream whose first packet is due at `start`, with random SSRC, first sequence
    /// number and first timestamp (RFC 3550 §5.1, §8.1).
    ///
    /// # Panics
    /// If `payload_type` is not a valid RTP payload type (0–127).
    pub fn new(payload_type: u8, start: Instant) -> RtpSender {
        let mut rng = rand::rng();
        RtpSender::with_initial_state(
            payload_type,
            start,
            rng.random(),
            rng.random(),
            rng.random(),
        )
    }

    /// Like [`RtpSender::new`] with chosen initial values (tests, reproducible captures).
    pub fn with_initial_state(
        payload_type: u8,
        start: Instant,
        ssrc: u32,
        first_sequence: u16,
        first_timestamp: u32,
    ) -> RtpSender {
        assert!(payload_type <= 127, "RTP payload type {payload_type} > 127");
        RtpSender {
            ssrc,
            payload_type,
            next_sequence: first_sequence,
            timestamp_base: first_timestamp,
            schedule: Schedule::new(start),
            // the first packet of a stream starts a talkspurt
            marker_pending: true,
            packets_sent: 0,
            frames_skipped: 0,
            buf: [0; PACKET_LEN],
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// For a codec change in a re-INVITE (PCMU ⇄ PCMA); the stream itself continues.
    ///
    /// # Panics
    /// If `payload_type` is not a valid RTP payload type (0–127).
    pub fn set_payload_type(&mut self, payload_type: u8) {
        assert!(payload_type <= 127, "RTP payload type {payload_type} > 127");
        self.payload_type = payload_type;
    }

    /// The sequence number the next packet will carry (for a relay continuing this stream).
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// The timestamp of the next slot (for a relay continuing this stream).
    pub fn next_timestamp(&self) -> u32 {
        let slot = self.schedule.next_slot;
        self.timestamp_base
            .wrapping_add(slot.wrapping_mul(TIMESTAMP_STEP) as u32)
    }

    /// When the next packet should be sent: sleep until then, then call [`RtpSender::packet`].
    pub fn next_due(&self) -> Instant {
        self.schedule.next_due()
    }

    /// Call before the first packet after a pause in sending (hold, or a gap between prompts
    /// when the call sends nothing): the next packet carries the marker bit and goes into the
    /// slot current at `now`, its timestamp advanced by the pause. Not counted as lateness.
    pub fn start_talkspurt(&mut self, now: Instant) {
        self.marker_pending = true;
        self.schedule.resume(now);
    }

    /// Builds the packet carrying `frame` for a send at `now` and advances the state.
    pub fn packet(&mut self, now: Instant, frame: &Frame) -> Packet<'_> {
        let slot = self.schedule.claim(now);
        self.frames_skipped += slot.skipped;
        let marker = self.marker_pending || slot.skipped > 0;
        self.marker_pending = false;

        let sequence = self.next_sequence;
        self.next_sequence = sequence.wrapping_add(1);
        // mod 2³² is exactly RTP timestamp wrap-around (RFC 3550 §5.1)
        let timestamp = self
            .timestamp_base
            .wrapping_add(slot.index.wrapping_mul(TIMESTAMP_STEP) as u32);

        let len = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(sequence))
            .timestamp(timestamp)
            .marked(marker)
            .payload(frame)
            .build_into(&mut self.buf)
            .expect("the buffer holds a header and one frame, and the payload type is checked");
        self.packets_sent += 1;

        Packet {
            bytes: &self.buf[..len],
            sequence,
            timestamp,
            marker,
            due: slot.due,
            late_by: now.saturating_duration_since(slot.due),
            skipped: slot.skipped,
        }
    }

    pub fn packets_sent(&self) -> u64 {
        self.packets_sent
    }

    /// Slots passed over by the late policy so far (each one 20 ms the caller did not hear).
    pub fn frames_skipped(&self) -> u64 {
        self.frames_skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    const MS: Duration = Duration::from_millis(1);

    fn frame(fill: u8) -> Frame {
        [fill; FRAME_SAMPLES]
    }

    /// Parses a built packet back and checks every header field.
    fn check(bytes: &[u8], pt: u8, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &Frame) {
        let reader = RtpReader::new(bytes).expect("a valid RTP packet");
        assert_eq!(reader.version(), 2);
        assert_eq!(reader.payload_type(), pt);
        assert_eq!(reader.ssrc(), ssrc);
        assert_eq!(u16::from(reader.sequence_number()), seq);
        assert_eq!(reader.timestamp(), ts);
        assert_eq!(reader.mark(), marker);
        assert_eq!(reader.padding(), None);
        assert_eq!(reader.csrc_count(), 0);
        assert!(reader.extension().is_none());
        assert_eq!(reader.payload(), payload);
        assert_eq!(bytes.len(), PACKET_LEN);
    }

    #[test]
    fn ten_minutes_of_frames_without_drift() {
        let t0 = Instant::now();
        let (ssrc, seq0, ts0) = (0x1234_5678, 40_000, 3_000_000_000);
        let mut sender = RtpSender::with_initial_state(0, t0, ssrc, seq0, ts0);
        let payload = frame(0x55);
        // a deterministic wake-up jitter of 0–19 ms, and now and then a 70 ms stall (caught
        // up by a burst, since it stays within MAX_CATCH_UP_FRAMES)
        let mut jitter = 7u64;
        let mut last_due = t0;
        for n in 0..30_000u64 {
            let due = sender.next_due();
            assert_eq!(due, t0 + FRAME_DURATION * n as u32, "packet {n}");
            jitter = (jitter * 1_103_515_245 + 12_345) % 2_147_483_648;
            let late = if n % 997 == 0 { 70 } else { jitter % 20 };
            let now = due + MS * late as u32;
            let packet = sender.packet(now, &payload);
            assert_eq!(packet.skipped, 0);
            assert_eq!(packet.due, due);
            assert!(packet.late_by <= 70 * MS);
            let seq = seq0.wrapping_add(n as u16);
            let ts = ts0.wrapping_add((n * 160) as u32);
            assert_eq!((packet.sequence, packet.timestamp), (seq, ts));
            check(packet.bytes, 0, ssrc, seq, ts, n == 0, &payload);
            last_due = due;
        }
        assert_eq!(last_due, t0 + Duration::from_secs(600) - 20 * MS);
        assert_eq!(sender.next_due(), t0 + Duration::from_secs(600));
        assert_eq!(sender.packets_sent(), 30_000);
        assert_eq!(sender.frames_skipped(), 0);
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(8, t0, 7, 65_534, u32::MAX - 159);
        let expected = [(65_534, u32::MAX - 159), (65_535, 0), (0, 160), (1, 320)];
        for (n, (seq, ts)) in expected.into_iter().enumerate() {
            let now = sender.next_due();
            let payload = frame(n as u8);
            let packet = sender.packet(now, &payload);
            check(packet.bytes, 8, 7, seq, ts, n == 0, &payload);
        }
    }

    #[test]
    fn marker_on_the_first_packet_of_each_talkspurt_only() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(0, t0, 1, 100, 1000);
        let silence = frame(0xFF);
        let mut markers = Vec::new();
        for _ in 0..3 {
            let now = sender.next_due();
            markers.push(sender.packet(now, &silence).marker);
        }
        assert_eq!(markers, [true, false, false]);

        // a new prompt after continuous sending: marker, no change to the schedule
        let now = sender.next_due();
        sender.start_talkspurt(now);
        assert_eq!(sender.next_due(), now);
        let packet = sender.packet(now, &silence);
        assert!(packet.marker);
        assert_eq!((packet.sequence, packet.timestamp), (103, 1000 + 3 * 160));
        let now = sender.next_due();
        assert!(!sender.packet(now, &silence).marker);
    }

    #[test]
    fn resuming_after_a_pause_jumps_the_timestamp_not_the_sequence() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(0, t0, 1, 100, 1000);
        let silence = frame(0xFF);
        sender.packet(t0, &silence);
        // on hold for 5 s (250 slots), resumed 7 ms into slot 251
        let now = t0 + Duration::from_secs(5) + 20 * MS + 7 * MS;
        sender.start_talkspurt(now);
        assert_eq!(sender.next_due(), t0 + 251 * FRAME_DURATION);
        let packet = sender.packet(now, &silence);
        assert_eq!(packet.skipped, 0, "a pause is not lateness");
        assert!(packet.marker);
        assert_eq!(packet.sequence, 101);
        assert_eq!(packet.timestamp, 1000 + 251 * 160);
        assert_eq!(packet.late_by, 7 * MS);
        assert_eq!(sender.next_due(), t0 + 252 * FRAME_DURATION);
        assert_eq!(sender.frames_skipped(), 0);
    }

    #[test]
    fn up_to_three_frames_late_is_caught_up_by_a_burst() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(0, t0, 1, 0, 0);
        let audio = frame(0x10);
        sender.packet(t0, &audio);
        // slot 1 was due at 20 ms; waking at 99.999 ms is 3 whole frames late
        let now = t0 + 100 * MS - Duration::from_micros(1);
        let mut burst = Vec::new();
        while sender.next_due() <= now {
            let packet = sender.packet(now, &audio);
            assert_eq!(packet.skipped, 0);
            assert!(!packet.marker);
            burst.push((packet.sequence, packet.timestamp, packet.late_by));
        }
        assert_eq!(
            burst,
            [
                (1, 160, 80 * MS - Duration::from_micros(1)),
                (2, 320, 60 * MS - Duration::from_micros(1)),
                (3, 480, 40 * MS - Duration::from_micros(1)),
                (4, 640, 20 * MS - Duration::from_micros(1)),
            ]
        );
        assert_eq!(
            sender.next_due(),
            t0 + 100 * MS,
            "back on the original grid"
        );
        assert_eq!(sender.frames_skipped(), 0);
    }

    #[test]
    fn more_than_three_frames_late_skips_ahead_with_a_marker() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(8, t0, 9, 500, 8000);
        let audio = frame(0x20);
        sender.packet(t0, &audio);
        // slot 1 was due at 20 ms; at 105 ms we are 4 whole frames (85 ms) late
        let now = t0 + 105 * MS;
        let packet = sender.packet(now, &audio);
        assert_eq!(packet.skipped, 4);
        assert!(packet.marker, "the receiver must re-align its playout");
        assert_eq!(packet.sequence, 501, "no sequence gap: nothing was lost");
        assert_eq!(packet.timestamp, 8000 + 5 * 160, "timestamp of slot 5");
        assert_eq!(packet.due, t0 + 100 * MS);
        assert_eq!(packet.late_by, 5 * MS);
        let bytes = packet.bytes.to_vec();
        check(&bytes, 8, 9, 501, 8000 + 5 * 160, true, &audio);
        // exactly one packet now, then the grid continues
        assert_eq!(sender.next_due(), t0 + 120 * MS);
        let packet = sender.packet(t0 + 120 * MS, &audio);
        assert_eq!((packet.sequence, packet.timestamp), (502, 8000 + 6 * 160));
        assert!(!packet.marker);
        assert_eq!(sender.frames_skipped(), 4);
    }

    #[test]
    fn a_long_stall_does_not_burst() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(0, t0, 1, 0, 0);
        let audio = frame(0x30);
        sender.packet(t0, &audio);
        let now = t0 + Duration::from_secs(2) + 3 * MS;
        let mut sent = 0;
        while sender.next_due() <= now {
            sender.packet(now, &audio);
            sent += 1;
        }
        assert_eq!(sent, 1, "one packet after a 2 s stall, not 100");
        assert_eq!(sender.next_due(), t0 + Duration::from_secs(2) + 20 * MS);
        assert_eq!(sender.frames_skipped(), 99);
    }

    #[test]
    fn an_early_call_uses_the_next_slot_without_moving_the_grid() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(0, t0 + 20 * MS, 1, 0, 0);
        let packet = sender.packet(t0, &frame(1));
        assert_eq!(packet.due, t0 + 20 * MS);
        assert_eq!(packet.late_by, Duration::ZERO);
        assert_eq!(sender.next_due(), t0 + 40 * MS);
    }

    #[test]
    fn next_sequence_and_timestamp_are_what_the_next_packet_carries() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(0, t0, 1, 65_535, u32::MAX - 159);
        for _ in 0..3 {
            let (seq, ts) = (sender.next_sequence(), sender.next_timestamp());
            let now = sender.next_due();
            let packet = sender.packet(now, &frame(0));
            assert_eq!((packet.sequence, packet.timestamp), (seq, ts));
        }
        // After a pause the timestamp of the slot current now, as the next packet will carry.
        sender.start_talkspurt(t0 + Duration::from_secs(1) + 5 * MS);
        let (seq, ts) = (sender.next_sequence(), sender.next_timestamp());
        let packet = sender.packet(t0 + Duration::from_secs(1) + 5 * MS, &frame(0));
        assert_eq!((packet.sequence, packet.timestamp), (seq, ts));
        assert_eq!(ts, (u32::MAX - 159).wrapping_add(50 * 160));
    }

    #[test]
    fn payload_type_follows_the_codec() {
        let t0 = Instant::now();
        let mut sender = RtpSender::with_initial_state(0, t0, 5, 0, 0);
        let payload = frame(0xFF);
        let packet = sender.packet(t0, &payload);
        check(packet.bytes, 0, 5, 0, 0, true, &payload);
        sender.set_payload_type(8);
        let now = sender.next_due();
        let payload = frame(0xD5);
        let packet = sender.packet(now, &payload);
        check(packet.bytes, 8, 5, 1, 160, false, &payload);
    }

    #[test]
    #[should_panic(expected = "payload type 128")]
    fn an_invalid_payload_type_is_a_bug() {
        RtpSender::new(128, Instant::now());
    }

    #[test]
    fn initial_state_is_random() {
        let t0 = Instant::now();
        let states: Vec<(u32, u16, u32)> = (0..4)
            .map(|_| {
                let mut sender = RtpSender::new(0, t0);
                let ssrc = sender.ssrc();
                let packet = sender.packet(t0, &frame(0));
                (ssrc, packet.sequence, packet.timestamp)
            })
            .collect();
        // 4 draws of 80 random bits: a repeat means the generator is not used
        for (i, a) in states.iter().enumerate() {
            for b in &states[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(states.iter().any(|s| s.0 != states[0].0));
    }

    #[test]
    fn schedule_due_times_are_exact_for_long_calls() {
        let t0 = Instant::now();
        let schedule = Schedule::new(t0);
        // 24 hours of slots
        assert_eq!(schedule.due(4_320_000), t0 + Duration::from_secs(86_400));
        assert_eq!(schedule.due(1), t0 + FRAME_DURATION);
    }
}
