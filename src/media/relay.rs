//! The caller⇄agent relay, without I/O: how one RTP packet received on one side becomes the
//! packet sent on the other. The media task ([`super::session`]) owns the sockets and calls
//! [`Rewriter::rewrite`] once per packet, into a buffer it reuses; nothing here allocates.
//!
//! # One stream per direction
//! We are a B2BUA, not a mixer: each side sees one RTP stream from us, with one SSRC we chose,
//! for the whole call. Toward the caller that is the SSRC our prompts were sent with, so the
//! caller's jitter buffer sees the same stream go on when the agent starts talking; toward the
//! agent it is a new random SSRC.
//!
//! The source's sequence numbers and timestamps are kept up to a constant offset per source
//! stream, so its gaps, reordering and silence suppression reach the other side unchanged. The
//! offset is chosen at the first packet of a source (and again when its SSRC changes, e.g. a
//! new agent or a gateway restarting its stream) so that our stream *continues*: the sequence
//! number follows the last one we sent by one (RFC 3550 §5.1 — a jump of thousands would make
//! the receiver drop packets until it re-synchronises, appendix A.1), and the timestamp follows
//! the last one by the last packet's duration. The first audio packet of a new source carries
//! the marker bit, the RFC 3550/3551 sign of a new talkspurt, so the receiver re-aligns its
//! playout to the new timing. Toward the caller our stream so far is the prompt stream, so the
//! first relayed packet continues it (see [`Rewriter::continuing`]); toward the agent there is
//! no earlier stream, and the caller's numbers are kept as they are (offset 0).
//!
//! After a pause in forwarding (the caller put us on hold), [`Rewriter::resume`] makes the next
//! packet continue the sequence without a gap (the skipped packets were never sent, not lost)
//! while the timestamp keeps following the source (time did pass), with the marker set.
//!
//! # Payload types
//! Each side has its [`Codecs`]: its G.711 law and its RFC 4733 payload type, if any. Audio
//! goes out as the receiving side's law (PT 0 or 8), transcoded through a direct 256-entry
//! table when the laws differ. G.711 is accepted in either law from the source, whatever it
//! negotiated (both are static payload types we can always decode). Telephone-events keep
//! their payload and get the receiving side's payload type, or are dropped if it has none.
//! Comfort noise (PT 13) and anything else is dropped: neither side was offered it.
//!
//! The header we send is the fixed 12 bytes: no CSRCs (we are the source now), no header
//! extension (none was negotiated with the other side), no padding.

use std::sync::LazyLock;

use rtp_rs::RtpReader;

use super::g711;
use super::pacer::{FRAME_SAMPLES, RTP_HEADER_LEN};
use super::prompts::Law;

/// Comfort noise (RFC 3389), static payload type 13.
pub const COMFORT_NOISE: u8 = 13;

/// What one side negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codecs {
    pub law: Law,
    /// Its RFC 4733 telephone-event payload type, if it has one.
    pub telephone_event: Option<u8>,
}

/// What becomes of a received payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// G.711 audio, sent with `payload_type`; `transcode` maps each code when the laws differ.
    Audio {
        payload_type: u8,
        transcode: Option<&'static [u8; 256]>,
    },
    /// An RFC 4733 event, sent unchanged with the receiver's telephone-event payload type.
    TelephoneEvent { payload_type: u8 },
    /// Not forwarded (comfort noise, an unknown type, or an event the receiver cannot take).
    Drop,
}

/// The law a static G.711 payload type stands for.
pub fn law_of(payload_type: u8) -> Option<Law> {
    match payload_type {
        0 => Some(Law::Ulaw),
        8 => Some(Law::Alaw),
        _ => None,
    }
}

/// How a packet with `payload_type` from the side with `from` goes to the side with `to`.
pub fn map_payload_type(payload_type: u8, from: Codecs, to: Codecs) -> Mapping {
    if let Some(law) = law_of(payload_type) {
        return Mapping::Audio {
            payload_type: to.law.payload_type(),
            transcode: transcoding(law, to.law),
        };
    }
    if Some(payload_type) == from.telephone_event {
        return match to.telephone_event {
            Some(payload_type) => Mapping::TelephoneEvent { payload_type },
            None => Mapping::Drop,
        };
    }
    Mapping::Drop
}

/// The code-to-code table from one law to the other; `None` when they are the same.
pub fn transcoding(from: Law, to: Law) -> Option<&'static [u8; 256]> {
    match (from, to) {
        (Law::Ulaw, Law::Alaw) => Some(&ULAW_TO_ALAW),
        (Law::Alaw, Law::Ulaw) => Some(&ALAW_TO_ULAW),
        _ => None,
    }
}

/// µ-law code → the A-law code of the sample it decodes to (exactly what decoding to linear and
/// encoding again gives, one lookup instead of two).
static ULAW_TO_ALAW: LazyLock<[u8; 256]> =
    LazyLock::new(|| std::array::from_fn(|code| g711::linear_to_alaw(g711::ULAW_TO_LINEAR[code])));

/// A-law code → the µ-law code of the sample it decodes to.
static ALAW_TO_ULAW: LazyLock<[u8; 256]> =
    LazyLock::new(|| std::array::from_fn(|code| g711::linear_to_ulaw(g711::ALAW_TO_LINEAR[code])));

/// One forwarded packet: `out[..len]` is ready to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub len: usize,
    /// The payload was transcoded between the laws.
    pub transcoded: bool,
}

/// The source stream being forwarded and the offsets that map it into ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source {
    ssrc: u32,
    sequence_offset: u16,
    timestamp_offset: u32,
}

/// One direction of the relay: turns the packets one side sends into our stream to the other.
#[derive(Debug, Clone)]
pub struct Rewriter {
    ssrc: u32,
    from: Codecs,
    to: Codecs,
    source: Option<Source>,
    /// Sequence number and timestamp our next packet continues with, once there is a stream to
    /// continue (our prompts, or packets forwarded before).
    next: Option<(u16, u32)>,
    /// The next audio packet starts a talkspurt.
    marker_pending: bool,
    /// The next packet re-bases the sequence number only (after a pause in forwarding).
    resequence_pending: bool,
}

impl Rewriter {
    /// A new stream with `ssrc` that keeps the first source's numbers as they are.
    pub fn new(ssrc: u32, from: Codecs, to: Codecs) -> Rewriter {
        Rewriter {
            ssrc,
            from,
            to,
            source: None,
            next: None,
            marker_pending: true,
            resequence_pending: false,
        }
    }

    /// Continues a stream we were already sending with `ssrc` (our prompts): the first
    /// forwarded packet gets `next_sequence` and `next_timestamp`.
    pub fn continuing(
        ssrc: u32,
        next_sequence: u16,
        next_timestamp: u32,
        from: Codecs,
        to: Codecs,
    ) -> Rewriter {
        Rewriter {
            next: Some((next_sequence, next_timestamp)),
            ..Rewriter::new(ssrc, from, to)
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sending side renegotiated (re-INVITE).
    pub fn set_from(&mut self, from: Codecs) {
        self.from = from;
    }

    /// The receiving side renegotiated (re-INVITE).
    pub fn set_to(&mut self, to: Codecs) {
        self.to = to;
    }

    /// The next packet starts a new source stream (another agent), even with the same SSRC.
    pub fn new_source(&mut self) {
        self.source = None;
        self.marker_pending = true;
        self.resequence_pending = false;
    }

    /// Forwarding paused (packets were received but not sent): the next packet continues our
    /// sequence without a gap and starts a talkspurt.
    pub fn resume(&mut self) {
        self.resequence_pending = true;
        self.marker_pending = true;
    }

    /// Writes the packet to send for the received `packet` into `out`, or `None` if it is not
    /// forwarded (not RTP, a payload type the receiver does not take, or too big for `out`).
    pub fn rewrite(&mut self, packet: &[u8], out: &mut [u8]) -> Option<Forward> {
        let rtp = RtpReader::new(packet).ok()?;
        let (payload_type, transcode, audio) =
            match map_payload_type(rtp.payload_type(), self.from, self.to) {
                Mapping::Audio {
                    payload_type,
                    transcode,
                } => (payload_type, transcode, true),
                Mapping::TelephoneEvent { payload_type } => (payload_type, None, false),
                Mapping::Drop => return None,
            };
        let payload = rtp.payload();
        let len = RTP_HEADER_LEN + payload.len();
        if len > out.len() {
            return None;
        }
        let sequence = u16::from(rtp.sequence_number());
        let timestamp = rtp.timestamp();
        let source = self.source_for(rtp.ssrc(), sequence, timestamp);
        let out_sequence = sequence.wrapping_add(source.sequence_offset);
        let out_timestamp = timestamp.wrapping_add(source.timestamp_offset);
        // The marker starts a talkspurt on audio; on an event it means "new event" (RFC 4733
        // §2.5.1.1), so an event keeps its own and a pending talkspurt waits for audio.
        let marker = if audio {
            let marker = rtp.mark() || self.marker_pending;
            self.marker_pending = false;
            marker
        } else {
            rtp.mark()
        };

        out[0] = 0x80; // version 2, no padding, no extension, no CSRC
        out[1] = (u8::from(marker) << 7) | payload_type;
        out[2..4].copy_from_slice(&out_sequence.to_be_bytes());
        out[4..8].copy_from_slice(&out_timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let body = &mut out[RTP_HEADER_LEN..len];
        match transcode {
            Some(table) => {
                for (to, &from) in body.iter_mut().zip(payload) {
                    *to = table[usize::from(from)];
                }
            }
            None => body.copy_from_slice(payload),
        }

        // Where a later source continues: after the newest packet sent (reordered older ones
        // do not move it back).
        let duration = if audio {
            payload.len() as u32
        } else {
            FRAME_SAMPLES as u32
        };
        let following = (
            out_sequence.wrapping_add(1),
            out_timestamp.wrapping_add(duration),
        );
        match self.next {
            Some((next_sequence, _)) if (out_sequence.wrapping_sub(next_sequence) as i16) < 0 => {}
            _ => self.next = Some(following),
        }
        Some(Forward {
            len,
            transcoded: transcode.is_some(),
        })
    }

    /// The offsets for a packet of `ssrc`, re-based if it starts a new source or follows a pause.
    fn source_for(&mut self, ssrc: u32, sequence: u16, timestamp: u32) -> Source {
        match self.source {
            Some(source) if source.ssrc == ssrc && !self.resequence_pending => source,
            Some(source) if source.ssrc == ssrc => {
                self.resequence_pending = false;
                let sequence_offset = match self.next {
                    Some((next_sequence, _)) => next_sequence.wrapping_sub(sequence),
                    None => source.sequence_offset,
                };
                let source = Source {
                    sequence_offset,
                    ..source
                };
                self.source = Some(source);
                source
            }
            _ => {
                self.resequence_pending = false;
                self.marker_pending = true;
                let (sequence_offset, timestamp_offset) = match self.next {
                    Some((next_sequence, next_timestamp)) => (
                        next_sequence.wrapping_sub(sequence),
                        next_timestamp.wrapping_sub(timestamp),
                    ),
                    None => (0, 0),
                };
                let source = Source {
                    ssrc,
                    sequence_offset,
                    timestamp_offset,
                };
                self.source = Some(source);
                source
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::{RtpPacketBuilder, Seq};

    const PCMU: Codecs = Codecs {
        law: Law::Ulaw,
        telephone_event: Some(101),
    };
    const PCMA: Codecs = Codecs {
        law: Law::Alaw,
        telephone_event: Some(96),
    };
    const PCMA_NO_EVENTS: Codecs = Codecs {
        law: Law::Alaw,
        telephone_event: None,
    };

    fn packet(pt: u8, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 12 + payload.len()];
        let len = RtpPacketBuilder::new()
            .payload_type(pt)
            .ssrc(ssrc)
            .sequence(Seq::from(seq))
            .timestamp(ts)
            .marked(marker)
            .payload(payload)
            .build_into(&mut buf)
            .expect("packet");
        buf.truncate(len);
        buf
    }

    /// (pt, ssrc, seq, ts, marker, payload) of a rewritten packet.
    fn fields(bytes: &[u8]) -> (u8, u32, u16, u32, bool, Vec<u8>) {
        let r = RtpReader::new(bytes).expect("valid RTP");
        assert_eq!(r.csrc_count(), 0);
        assert!(r.extension().is_none());
        assert_eq!(r.padding(), None);
        (
            r.payload_type(),
            r.ssrc(),
            u16::from(r.sequence_number()),
            r.timestamp(),
            r.mark(),
            r.payload().to_vec(),
        )
    }

    fn forward(
        rewriter: &mut Rewriter,
        packet: &[u8],
    ) -> Option<(u8, u32, u16, u32, bool, Vec<u8>)> {
        let mut out = [0u8; 512];
        let forward = rewriter.rewrite(packet, &mut out)?;
        Some(fields(&out[..forward.len]))
    }

    #[test]
    fn payload_types_map_by_each_sides_law_and_events() {
        let same = map_payload_type(0, PCMU, PCMU);
        assert_eq!(
            same,
            Mapping::Audio {
                payload_type: 0,
                transcode: None
            }
        );
        assert!(matches!(
            map_payload_type(0, PCMU, PCMA),
            Mapping::Audio {
                payload_type: 8,
                transcode: Some(_)
            }
        ));
        assert!(matches!(
            map_payload_type(8, PCMA, PCMU),
            Mapping::Audio {
                payload_type: 0,
                transcode: Some(_)
            }
        ));
        // G.711 in the other law than negotiated is still understood.
        assert!(matches!(
            map_payload_type(8, PCMU, PCMU),
            Mapping::Audio {
                payload_type: 0,
                transcode: Some(_)
            }
        ));
        assert_eq!(
            map_payload_type(101, PCMU, PCMA),
            Mapping::TelephoneEvent { payload_type: 96 }
        );
        assert_eq!(
            map_payload_type(96, PCMA, PCMU),
            Mapping::TelephoneEvent { payload_type: 101 }
        );
        assert_eq!(map_payload_type(101, PCMU, PCMA_NO_EVENTS), Mapping::Drop);
        // The receiver's event type is not the sender's: 96 from the PCMU side is unknown.
        assert_eq!(map_payload_type(96, PCMU, PCMA), Mapping::Drop);
        assert_eq!(map_payload_type(COMFORT_NOISE, PCMU, PCMA), Mapping::Drop);
        assert_eq!(map_payload_type(18, PCMU, PCMU), Mapping::Drop);
        assert_eq!(map_payload_type(127, PCMU, PCMU), Mapping::Drop);
    }

    #[test]
    fn transcoding_tables_equal_decode_then_encode() {
        for code in 0..=255u8 {
            assert_eq!(
                ULAW_TO_ALAW[usize::from(code)],
                g711::linear_to_alaw(g711::ulaw_to_linear(code)),
            );
            assert_eq!(
                ALAW_TO_ULAW[usize::from(code)],
                g711::linear_to_ulaw(g711::alaw_to_linear(code)),
            );
        }
        assert_eq!(
            ULAW_TO_ALAW[usize::from(Law::Ulaw.silence())],
            Law::Alaw.silence()
        );
        // A-law has no zero (its silence code stands for +8), so silence comes back as +8.
        assert_eq!(
            g711::ulaw_to_linear(ALAW_TO_ULAW[usize::from(Law::Alaw.silence())]),
            8
        );
        assert!(transcoding(Law::Ulaw, Law::Ulaw).is_none());
        assert!(transcoding(Law::Alaw, Law::Alaw).is_none());
    }

    #[test]
    fn transcoding_round_trips_stay_within_one_quantisation_step() {
        // A code that goes to the other law and back lands on itself or a neighbour: the sample
        // it stands for moves by less than the coarser law's step at that level (G.711 steps
        // are at most 1/16 of the segment, so 1/8 of the value is a generous bound, plus the
        // finest steps near zero).
        for (there, back, decode) in [
            (
                &*ULAW_TO_ALAW,
                &*ALAW_TO_ULAW,
                g711::ulaw_to_linear as fn(u8) -> i16,
            ),
            (&*ALAW_TO_ULAW, &*ULAW_TO_ALAW, g711::alaw_to_linear),
        ] {
            let mut exact = 0;
            for code in 0..=255u8 {
                let again = back[usize::from(there[usize::from(code)])];
                let (a, b) = (i32::from(decode(code)), i32::from(decode(again)));
                assert!(
                    (a - b).abs() <= a.abs() / 8 + 16,
                    "code {code:#04x}: {a} → {b}"
                );
                assert!(
                    a.signum() * b.signum() >= 0,
                    "code {code:#04x} keeps its sign"
                );
                exact += usize::from(code == again);
            }
            assert!(exact >= 128, "most codes survive the round trip: {exact}");
        }
    }

    #[test]
    fn a_relayed_packet_keeps_numbers_and_gets_our_ssrc_and_the_receivers_type() {
        let mut rewriter = Rewriter::new(0xAAAA_0001, PCMU, PCMU);
        let audio = [0x11u8; 160];
        let got = forward(&mut rewriter, &packet(0, 7, 1000, 50_000, false, &audio));
        assert_eq!(
            got,
            Some((0, 0xAAAA_0001, 1000, 50_000, true, audio.to_vec())),
            "the first packet starts a talkspurt"
        );
        // A gap (loss upstream) and reordering pass through unchanged.
        let got = forward(&mut rewriter, &packet(0, 7, 1003, 50_480, false, &audio));
        assert_eq!(got.map(|f| (f.2, f.3, f.4)), Some((1003, 50_480, false)));
        let got = forward(&mut rewriter, &packet(0, 7, 1002, 50_320, false, &audio));
        assert_eq!(got.map(|f| (f.2, f.3)), Some((1002, 50_320)));
        // The source's own marker is kept.
        let got = forward(&mut rewriter, &packet(0, 7, 1004, 52_000, true, &audio));
        assert_eq!(got.map(|f| f.4), Some(true));
    }

    #[test]
    fn headers_are_reduced_to_twelve_bytes() {
        let mut rewriter = Rewriter::new(5, PCMU, PCMU);
        let payload = [0x42u8; 160];
        let mut buf = [0u8; 256];
        let len = RtpPacketBuilder::new()
            .payload_type(0)
            .ssrc(9)
            .sequence(Seq::from(1))
            .timestamp(2)
            .add_csrc(77)
            .extension(0xBEDE, &[1, 2, 3, 4])
            .padded(rtp_rs::Pad::round_to(16))
            .payload(&payload)
            .build_into(&mut buf)
            .expect("packet");
        let mut out = [0u8; 256];
        let forward = rewriter.rewrite(&buf[..len], &mut out).expect("forwarded");
        assert_eq!(forward.len, 12 + 160);
        assert_eq!(fields(&out[..forward.len]).5, payload.to_vec());
    }

    #[test]
    fn relaying_continues_our_prompt_stream() {
        // Our prompts reached sequence 40 000 and timestamp 123 456 + 160; the agent's stream
        // starts elsewhere.
        let mut rewriter = Rewriter::continuing(0xCAFE, 40_000, 123_616, PCMA, PCMU);
        let audio = [0xD5u8; 160];
        let got = forward(&mut rewriter, &packet(8, 99, 7, 900, false, &audio));
        assert_eq!(
            got.map(|f| (f.0, f.1, f.2, f.3, f.4)),
            Some((0, 0xCAFE, 40_000, 123_616, true))
        );
        let got = forward(&mut rewriter, &packet(8, 99, 8, 1060, false, &audio));
        assert_eq!(got.map(|f| (f.2, f.3, f.4)), Some((40_001, 123_776, false)));
        // A new source (another agent, or a restarted stream) continues where we are, marked.
        let got = forward(&mut rewriter, &packet(8, 55, 60_000, 7, false, &audio));
        assert_eq!(
            got.map(|f| (f.1, f.2, f.3, f.4)),
            Some((0xCAFE, 40_002, 123_936, true))
        );
    }

    #[test]
    fn sequence_and_timestamp_offsets_wrap() {
        let mut rewriter = Rewriter::continuing(1, 65_535, u32::MAX - 159, PCMU, PCMU);
        let audio = [0xFFu8; 160];
        let got = forward(&mut rewriter, &packet(0, 2, 10, 1000, false, &audio));
        assert_eq!(got.map(|f| (f.2, f.3)), Some((65_535, u32::MAX - 159)));
        let got = forward(&mut rewriter, &packet(0, 2, 11, 1160, false, &audio));
        assert_eq!(got.map(|f| (f.2, f.3)), Some((0, 0)));
    }

    #[test]
    fn resuming_after_hold_closes_the_sequence_gap_but_not_the_time_gap() {
        let mut rewriter = Rewriter::new(3, PCMU, PCMU);
        let audio = [0x55u8; 160];
        forward(&mut rewriter, &packet(0, 2, 100, 16_000, false, &audio));
        // 50 packets (1 s) were received on hold and not sent.
        rewriter.resume();
        let got = forward(
            &mut rewriter,
            &packet(0, 2, 151, 16_000 + 51 * 160, false, &audio),
        );
        assert_eq!(
            got.map(|f| (f.2, f.3, f.4)),
            Some((101, 16_000 + 51 * 160, true))
        );
        let got = forward(
            &mut rewriter,
            &packet(0, 2, 152, 16_000 + 52 * 160, false, &audio),
        );
        assert_eq!(got.map(|f| (f.2, f.4)), Some((102, false)));
    }

    #[test]
    fn transcoded_audio_matches_g711_decode_sample_by_sample() {
        let mut rewriter = Rewriter::new(1, PCMU, PCMA);
        let audio: Vec<u8> = (0..160).map(|n| (n * 37 % 256) as u8).collect();
        let mut out = [0u8; 512];
        let forward = rewriter
            .rewrite(&packet(0, 2, 1, 1, false, &audio), &mut out)
            .expect("forwarded");
        assert!(forward.transcoded);
        let (pt, .., payload) = fields(&out[..forward.len]);
        assert_eq!(pt, 8);
        for (&u, &a) in audio.iter().zip(&payload) {
            assert_eq!(a, g711::linear_to_alaw(g711::ulaw_to_linear(u)));
            let (before, after) = (g711::ulaw_to_linear(u), g711::alaw_to_linear(a));
            assert!(
                (i32::from(before) - i32::from(after)).abs() <= i32::from(before).abs() / 16 + 8
            );
        }
        let mut back = Rewriter::new(1, PCMA, PCMU);
        let forward = back
            .rewrite(&packet(8, 2, 1, 1, false, &payload), &mut out)
            .expect("forwarded");
        let (pt, .., again) = fields(&out[..forward.len]);
        assert_eq!(pt, 0);
        for (&a, &u) in payload.iter().zip(&again) {
            assert_eq!(u, g711::linear_to_ulaw(g711::alaw_to_linear(a)));
        }
    }

    #[test]
    fn telephone_events_are_mapped_or_dropped_and_keep_their_marker() {
        let mut rewriter = Rewriter::new(1, PCMU, PCMA);
        let event = [5u8, 10, 0, 160];
        // An event first: its marker is its own; the pending talkspurt waits for audio.
        let got = forward(&mut rewriter, &packet(101, 2, 10, 800, false, &event));
        assert_eq!(
            got,
            Some((96, 1, 10, 800, false, event.to_vec())),
            "payload unchanged, type mapped"
        );
        let got = forward(&mut rewriter, &packet(0, 2, 11, 960, false, &[0xFF; 160]));
        assert_eq!(got.map(|f| f.4), Some(true));
        let got = forward(&mut rewriter, &packet(101, 2, 12, 1120, true, &event));
        assert_eq!(got.map(|f| (f.0, f.4)), Some((96, true)));

        let mut deaf = Rewriter::new(1, PCMU, PCMA_NO_EVENTS);
        assert_eq!(
            forward(&mut deaf, &packet(101, 2, 10, 800, true, &event)),
            None
        );
    }

    #[test]
    fn comfort_noise_unknown_types_and_junk_are_dropped() {
        let mut rewriter = Rewriter::new(1, PCMU, PCMU);
        let mut out = [0u8; 512];
        assert_eq!(
            rewriter.rewrite(&packet(COMFORT_NOISE, 2, 1, 1, false, &[40]), &mut out),
            None
        );
        assert_eq!(
            rewriter.rewrite(&packet(18, 2, 1, 1, false, &[1; 20]), &mut out),
            None
        );
        assert_eq!(rewriter.rewrite(&[0u8; 8], &mut out), None);
        assert_eq!(rewriter.rewrite(b"not RTP at all, v0", &mut out), None);
        // Too big for the buffer: dropped, not truncated.
        let mut small = [0u8; 100];
        assert_eq!(
            rewriter.rewrite(&packet(0, 2, 1, 1, false, &[0xFF; 160]), &mut small),
            None
        );
        // Dropped packets did not consume the talkspurt marker.
        let got = forward(&mut rewriter, &packet(0, 2, 2, 161, false, &[0xFF; 160]));
        assert_eq!(got.map(|f| f.4), Some(true));
    }

    #[test]
    fn renegotiation_changes_the_mapping() {
        let mut rewriter = Rewriter::new(1, PCMU, PCMU);
        let got = forward(&mut rewriter, &packet(0, 2, 1, 1, false, &[0xFF; 160]));
        assert_eq!(got.map(|f| f.0), Some(0));
        rewriter.set_to(PCMA_NO_EVENTS);
        let got = forward(&mut rewriter, &packet(0, 2, 2, 161, false, &[0xFF; 160]));
        assert_eq!(got.map(|f| (f.0, f.5[0])), Some((8, 0xD5)));
        assert_eq!(
            forward(&mut rewriter, &packet(101, 2, 3, 321, false, &[1, 2, 3, 4])),
            None
        );
        rewriter.set_from(PCMA);
        rewriter.set_to(PCMU);
        let got = forward(&mut rewriter, &packet(96, 2, 4, 481, false, &[1, 2, 3, 4]));
        assert_eq!(got.map(|f| f.0), Some(101));
    }
}
