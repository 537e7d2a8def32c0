//! An RTP peer for media tests: one UDP socket on 127.0.0.1 whose port goes into the SDP offer.
//! A background thread records every packet the engine sends (arrival time, header, payload);
//! the test sends RFC 4733 telephone-events or G.711 audio from the same socket (so the
//! engine's symmetric RTP keeps answering here). Also: SDP helpers, G.711 decoding, the
//! prompts' WAV samples, DTMF tone synthesis and normalized cross-correlation.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zentrale::media::g711;

use super::engine::Engine;
use super::ports::LOOPBACK;
use super::sip::{CallLeg, SipClient};

/// Samples per 20 ms G.711 frame.
pub const FRAME: usize = 160;

/// One packet the engine sent.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    pub from: SocketAddr,
}

impl Received {
    /// The payload decoded as µ-law (PT 0) or A-law (PT 8).
    pub fn pcm(&self) -> Vec<i16> {
        decode(self.pt, &self.payload)
    }
}

/// Decodes a G.711 payload by payload type (0 µ-law, 8 A-law).
pub fn decode(pt: u8, payload: &[u8]) -> Vec<i16> {
    match pt {
        0 => payload.iter().map(|&c| g711::ulaw_to_linear(c)).collect(),
        8 => payload.iter().map(|&c| g711::alaw_to_linear(c)).collect(),
        other => panic!("not a G.711 payload type: {other}"),
    }
}

pub struct RtpPeer {
    socket: Arc<UdpSocket>,
    pub local: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl Default for RtpPeer {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpPeer {
    /// Binds an even port on 127.0.0.1 and starts recording.
    pub fn new() -> RtpPeer {
        let socket = (0..100)
            .find_map(|_| {
                let s = UdpSocket::bind((LOOPBACK, 0)).ok()?;
                (s.local_addr().ok()?.port() % 2 == 0).then_some(s)
            })
            .expect("bind an even UDP port for RTP");
        let local = socket.local_addr().expect("local address");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set read timeout");
        let socket = Arc::new(socket);
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (socket, received, stop) = (socket.clone(), received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let at = Instant::now();
                    let Ok(rtp) = rtp_rs::RtpReader::new(&buf[..n]) else {
                        continue;
                    };
                    let packet = Received {
                        at,
                        pt: rtp.payload_type(),
                        marker: rtp.mark(),
                        seq: u16::from(rtp.sequence_number()),
                        ts: rtp.timestamp(),
                        ssrc: rtp.ssrc(),
                        payload: rtp.payload().to_vec(),
                        from,
                    };
                    received.lock().expect("lock").push(packet);
                }
            })
        };
        RtpPeer {
            socket,
            local,
            received,
            stop,
            thread: Some(thread),
            ssrc: rand::random(),
            seq: rand::random(),
            ts: rand::random(),
        }
    }

    /// An SDP offer for this socket: `payload_types` as on the `m=` line, each with its
    /// rtpmap (0 PCMU, 8 PCMA, anything else telephone-event/8000).
    pub fn sdp_offer(&self, payload_types: &[u8]) -> String {
        let list: Vec<String> = payload_types.iter().map(u8::to_string).collect();
        let mut sdp = format!(
            "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {}\r\n",
            self.local.port(),
            list.join(" ")
        );
        for pt in payload_types {
            let map = match pt {
                0 => "PCMU/8000".to_string(),
                8 => "PCMA/8000".to_string(),
                _ => "telephone-event/8000".to_string(),
            };
            sdp.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
            if !matches!(pt, 0 | 8) {
                sdp.push_str(&format!("a=fmtp:{pt} 0-16\r\n"));
            }
        }
        sdp.push_str("a=ptime:20\r\na=sendrecv\r\n");
        sdp
    }

    /// Everything received so far.
    pub fn packets(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    /// Waits until at least `n` packets arrived (or `timeout`); returns how many did.
    pub fn wait_for_packets(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self.count();
            if have >= n || Instant::now() >= deadline {
                return have;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn send_packet(&mut self, to: SocketAddr, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        let mut buf = [0u8; 1500];
        let len = rtp_rs::RtpPacketBuilder::new()
            .payload_type(pt)
            .ssrc(self.ssrc)
            .sequence(rtp_rs::Seq::from(self.seq))
            .timestamp(ts)
            .marked(marker)
            .payload(payload)
            .build_into(&mut buf)
            .expect("build RTP packet");
        self.seq = self.seq.wrapping_add(1);
        self.socket
            .send_to(&buf[..len], to)
            .unwrap_or_else(|e| panic!("send RTP to {to}: {e}"));
    }

    /// One 20 ms audio frame (its timestamp advances by its sample count).
    pub fn send_audio(&mut self, to: SocketAddr, pt: u8, payload: &[u8]) {
        let ts = self.ts;
        self.send_packet(to, pt, false, ts, payload);
        self.ts = self.ts.wrapping_add(payload.len() as u32);
    }

    /// The first packet of an RFC 4733 event for `key` (0–9 digits, 10 `*`, 11 `#`): marker
    /// set, duration 160. Returns when it was sent; finish with [`Self::finish_event`].
    pub fn start_event(&mut self, to: SocketAddr, pt: u8, key: u8) -> Instant {
        let payload = [key, 10, 0, 160];
        let ts = self.ts;
        let at = Instant::now();
        self.send_packet(to, pt, true, ts, &payload);
        at
    }

    /// The rest of the event begun with [`Self::start_event`]: updates every 20 ms up to
    /// `duration` samples, then the end packet three times.
    pub fn finish_event(&mut self, to: SocketAddr, pt: u8, key: u8, duration: u16) {
        let ts = self.ts;
        let mut d = 320u16;
        while d < duration {
            std::thread::sleep(Duration::from_millis(20));
            self.send_packet(to, pt, false, ts, &[key, 10, (d >> 8) as u8, d as u8]);
            d += 160;
        }
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            self.send_packet(
                to,
                pt,
                false,
                ts,
                &[key, 0x80 | 10, (duration >> 8) as u8, duration as u8],
            );
        }
        self.ts = self.ts.wrapping_add(u32::from(duration));
    }

    /// A whole key press (about 100 ms) as RFC 4733 events; returns when it began.
    pub fn press(&mut self, to: SocketAddr, pt: u8, key: u8) -> Instant {
        let at = self.start_event(to, pt, key);
        self.finish_event(to, pt, key, 800);
        at
    }

    /// Sends `pcm` as 20 ms µ-law (PT 0) frames paced every 20 ms.
    pub fn send_ulaw_paced(&mut self, to: SocketAddr, pcm: &[i16]) {
        let start = Instant::now();
        for (i, chunk) in pcm.chunks(FRAME).enumerate() {
            let due = start + Duration::from_millis(20 * i as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let payload: Vec<u8> = chunk.iter().map(|&s| g711::linear_to_ulaw(s)).collect();
            self.send_audio(to, 0, &payload);
        }
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The engine's RTP address from an SDP body (`c=` address and `m=audio` port).
pub fn sdp_media_addr(sdp: &str) -> SocketAddr {
    let ip = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .unwrap_or_else(|| panic!("no c= line in SDP:\n{sdp}"))
        .trim()
        .to_string();
    let port = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no m=audio port in SDP:\n{sdp}"));
    format!("{ip}:{port}").parse().expect("RTP address")
}

/// The payload types on the `m=audio` line of an SDP body.
pub fn sdp_payload_types(sdp: &str) -> Vec<u8> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .map(|rest| {
            rest.split_whitespace()
                .skip(2)
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `routing-rules/prompts/` of this checkout.
pub fn prompts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("routing-rules/prompts")
}

/// The samples of a WAV file (8 kHz mono 16-bit).
pub fn read_wav(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16),
        "{} is not 8 kHz mono 16-bit",
        path.display()
    );
    reader
        .samples::<i16>()
        .map(|s| s.expect("WAV sample"))
        .collect()
}

/// A shipped prompt's samples by name (`greeting` → `routing-rules/prompts/greeting.wav`).
pub fn prompt_samples(name: &str) -> Vec<i16> {
    read_wav(&prompts_dir().join(format!("{name}.wav")))
}

/// Writes `pcm` as an 8 kHz mono 16-bit WAV.
pub fn write_wav(path: &Path, pcm: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    for &s in pcm {
        writer.write_sample(s).expect("write WAV sample");
    }
    writer.finalize().expect("finish WAV");
}

/// A DTMF key's two frequencies (low, high) in Hz.
pub fn dtmf_frequencies(key: char) -> (f64, f64) {
    let low = match key {
        '1' | '2' | '3' | 'A' => 697.0,
        '4' | '5' | '6' | 'B' => 770.0,
        '7' | '8' | '9' | 'C' => 852.0,
        _ => 941.0,
    };
    let high = match key {
        '1' | '4' | '7' | '*' => 1209.0,
        '2' | '5' | '8' | '0' => 1336.0,
        '3' | '6' | '9' | '#' => 1477.0,
        _ => 1633.0,
    };
    (low, high)
}

/// `ms` milliseconds of the dual tone for `key` at 8 kHz, each tone at `amplitude`.
pub fn dtmf_tone(key: char, ms: usize, amplitude: f64) -> Vec<i16> {
    let (low, high) = dtmf_frequencies(key);
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let v = amplitude
                * ((2.0 * std::f64::consts::PI * low * t).sin()
                    + (2.0 * std::f64::consts::PI * high * t).sin());
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Normalized cross-correlation of `a` and `b` (same length): 1.0 identical up to gain.
pub fn ncc(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let (x, y) = (f64::from(a[i]), f64::from(b[i]));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// Where `template` best matches inside `signal`: `(offset, normalized correlation)`. Searches
/// every frame boundary first, then every sample around the best one (prompts start on a
/// frame boundary, but this does not rely on it).
pub fn find(signal: &[i16], template: &[i16]) -> (usize, f64) {
    if signal.len() < template.len() {
        return (0, 0.0);
    }
    let last = signal.len() - template.len();
    let mut best = (0usize, f64::MIN);
    for offset in (0..=last).step_by(FRAME) {
        let c = ncc(&signal[offset..offset + template.len()], template);
        if c > best.1 {
            best = (offset, c);
        }
    }
    let from = best.0.saturating_sub(FRAME);
    let to = (best.0 + FRAME).min(last);
    for offset in from..=to {
        let c = ncc(&signal[offset..offset + template.len()], template);
        if c > best.1 {
            best = (offset, c);
        }
    }
    best
}

/// Root mean square of samples.
pub fn rms(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

/// The median of durations (sorted copy).
pub fn median(values: &[Duration]) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// A call from the Rust client: INVITE with `peer`'s SDP offer → 200 → ACK. Returns the SIP
/// client, the dialog and the engine's RTP address from the answer.
pub fn answered_call(
    engine: &Engine,
    peer: &RtpPeer,
    payload_types: &[u8],
) -> (SipClient, CallLeg, SocketAddr) {
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, "490");
    let offer = peer.sdp_offer(payload_types);
    client.send(leg.invite_with("", Some(("application/sdp", &offer))));
    let answer = client.expect_final(Duration::from_secs(5), "INVITE");
    assert_eq!(
        answer.status(),
        Some(200),
        "INVITE answered with:\n{answer:?}"
    );
    leg.take_answer(&answer);
    client.send(leg.ack_2xx());
    let engine_rtp = sdp_media_addr(answer.body());
    (client, leg, engine_rtp)
}

pub fn hang_up(client: &SipClient, leg: &mut CallLeg) {
    client.send(leg.bye());
    let (reply, others) = client.recv_until(Duration::from_secs(5), |m| {
        m.cseq().is_some_and(|(_, method)| method == "BYE") && m.is_final()
    });
    let reply = reply.unwrap_or_else(|| panic!("no answer to BYE; got {others:#?}"));
    assert_eq!(reply.status(), Some(200), "BYE answered with {reply:?}");
}
