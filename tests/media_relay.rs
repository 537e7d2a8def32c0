//! The caller⇄agent relay end to end over loopback: a media task on a caller port hears the
//! caller, is bridged to an agent port, and two plain UDP sockets play caller and agent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use zentrale::media::g711;
use zentrale::media::prompts::Law;
use zentrale::media::rtp_ports::{Leg, RtpPortPool};
use zentrale::media::session::{
    self, Bridge, MediaCommand, MediaConfig, MediaEvent, MediaHandle, MediaStats,
};

const WAIT: Duration = Duration::from_secs(2);
const CALLER_SSRC: u32 = 0x0C0F_FEE0;
const AGENT_SSRC: u32 = 0x0A6E_0001;

fn rtp(pt: u8, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(pt)
        .ssrc(ssrc)
        .sequence(Seq::from(seq))
        .timestamp(ts)
        .marked(marker)
        .payload(payload)
        .build()
        .expect("packet")
}

/// A received packet's header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    pt: u8,
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker: bool,
    payload: Vec<u8>,
    from: SocketAddr,
}

async fn recv(socket: &UdpSocket, within: Duration) -> Option<Got> {
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(within, socket.recv_from(&mut buf))
        .await
        .ok()?
        .expect("recv");
    let r = RtpReader::new(&buf[..n]).expect("RTP from the engine");
    Some(Got {
        pt: r.payload_type(),
        ssrc: r.ssrc(),
        seq: u16::from(r.sequence_number()),
        ts: r.timestamp(),
        marker: r.mark(),
        payload: r.payload().to_vec(),
        from,
    })
}

/// The next packet at the caller that is not one of our prompt frames (silence), and the last
/// prompt frame before it.
async fn recv_relayed(caller: &UdpSocket, silence: u8) -> (Got, Option<Got>) {
    let mut last_prompt = None;
    for _ in 0..500 {
        let got = recv(caller, WAIT).await.expect("a packet at the caller");
        if got.payload.iter().all(|&b| b == silence) && got.payload.len() == 160 {
            last_prompt = Some(got);
            continue;
        }
        return (got, last_prompt);
    }
    panic!("nothing but prompt frames at the caller");
}

/// Nothing but prompt frames (or nothing) arrives at the caller for `quiet`.
async fn assert_nothing_relayed(caller: &UdpSocket, silence: u8, quiet: Duration) {
    let end = tokio::time::Instant::now() + quiet;
    while let Some(left) = end.checked_duration_since(tokio::time::Instant::now()) {
        let Some(got) = recv(caller, left).await else {
            return;
        };
        assert!(
            got.payload.iter().all(|&b| b == silence),
            "relayed while it should not be: {got:?}"
        );
    }
}

struct Call {
    pool: Arc<RtpPortPool>,
    media: MediaHandle,
    events: mpsc::Receiver<MediaEvent>,
    stats: Arc<MediaStats>,
    caller: UdpSocket,
    agent: UdpSocket,
    /// The engine's caller-side and agent-side addresses.
    engine_caller: SocketAddr,
    engine_agent: SocketAddr,
    caller_seq: u16,
    /// The first prompt frame the caller got.
    prompt: Got,
}

impl Call {
    /// A media task that heard the caller (and so sends it prompt frames), then bridged.
    async fn bridged(
        ports: (u16, u16),
        caller_law: Law,
        caller_te: Option<u8>,
        agent_law: Law,
        agent_te: Option<u8>,
        rtp_timeout: Duration,
    ) -> Call {
        let ip = "127.0.0.1".parse().expect("ip");
        let pool = RtpPortPool::new(ip, ports.0, ports.1);
        let port = pool.allocate(Leg::Caller).expect("caller port");
        let engine_caller = SocketAddr::new(ip, port.port);
        let stats = Arc::new(MediaStats::default());
        let (media, events) = session::spawn(
            port,
            MediaConfig {
                law: caller_law,
                telephone_event: caller_te,
                remote: None,
                rtp_timeout,
                inband_dtmf: false,
                held: false,
            },
            stats.clone(),
        );
        let caller = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let agent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        // The caller speaks first; the engine answers with its prompt stream (silence).
        caller
            .send_to(
                &rtp(
                    caller_law.payload_type(),
                    CALLER_SSRC,
                    0,
                    0,
                    true,
                    &[1; 160],
                ),
                engine_caller,
            )
            .await
            .expect("send");
        let prompt = recv(&caller, WAIT).await.expect("prompt frames");
        assert_eq!(prompt.pt, caller_law.payload_type());

        let agent_port = pool.allocate(Leg::Agent).expect("agent port");
        let engine_agent = SocketAddr::new(ip, agent_port.port);
        media.command(MediaCommand::Bridge(Bridge {
            port: agent_port,
            remote: agent.local_addr().expect("addr"),
            law: agent_law,
            telephone_event: agent_te,
        }));
        let mut call = Call {
            pool,
            media,
            events,
            stats,
            caller,
            agent,
            engine_caller,
            engine_agent,
            caller_seq: 1,
            prompt,
        };
        // Packets may reach the task before the command does: send until one comes through.
        let payload = [0x33u8; 160];
        for _ in 0..50 {
            call.caller_sends(caller_law.payload_type(), false, &payload)
                .await;
            if let Some(got) = recv(&call.agent, Duration::from_millis(100)).await {
                assert_eq!(got.from, engine_agent, "sent from the agent-side port");
                assert_eq!(got.pt, agent_law.payload_type());
                return call;
            }
        }
        panic!("the bridge never forwarded the caller's audio");
    }

    async fn caller_sends(&mut self, pt: u8, marker: bool, payload: &[u8]) -> (u16, u32) {
        let seq = self.caller_seq;
        let ts = u32::from(seq) * 160;
        self.caller_seq += 1;
        let packet = rtp(pt, CALLER_SSRC, seq, ts, marker, payload);
        self.caller
            .send_to(&packet, self.engine_caller)
            .await
            .expect("send");
        (seq, ts)
    }

    async fn agent_sends(&self, pt: u8, seq: u16, payload: &[u8]) {
        let packet = rtp(
            pt,
            AGENT_SSRC,
            seq,
            90_000 + u32::from(seq) * 160,
            false,
            payload,
        );
        self.agent
            .send_to(&packet, self.engine_agent)
            .await
            .expect("send");
    }

    /// Drops the media handle; both ports must come back to the pool.
    async fn hang_up(self, pool_size: usize) {
        drop(self.media);
        for _ in 0..100 {
            if self.pool.available() == pool_size {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "ports not returned: {} of {pool_size} free",
            self.pool.available()
        );
    }
}

#[tokio::test]
async fn same_codec_relays_both_ways_maps_events_and_holds() {
    let mut call = Call::bridged(
        (43000, 43007),
        Law::Ulaw,
        Some(101),
        Law::Ulaw,
        Some(100),
        Duration::from_secs(30),
    )
    .await;
    let silence = Law::Ulaw.silence();

    // Caller → agent: the caller's numbers, our SSRC, PCMU.
    let audio: Vec<u8> = (0..160).map(|n| n as u8).collect();
    let (seq, ts) = call.caller_sends(0, false, &audio).await;
    let got = recv(&call.agent, WAIT).await.expect("at the agent");
    assert_eq!((got.pt, got.seq, got.ts), (0, seq, ts));
    assert_ne!(got.ssrc, CALLER_SSRC, "our own SSRC toward the agent");
    assert_eq!(got.payload, audio);
    let ssrc_to_agent = got.ssrc;

    // Comfort noise is dropped; a telephone-event gets the agent's payload type.
    call.caller_sends(13, false, &[40]).await;
    let key = [5u8, 10, 0, 160];
    call.caller_sends(101, true, &key).await;
    let got = recv(&call.agent, WAIT).await.expect("the key at the agent");
    assert_eq!((got.pt, got.marker, got.ssrc), (100, true, ssrc_to_agent));
    assert_eq!(got.payload, key);

    // Agent → caller: continues our prompt stream (SSRC, sequence), marker on the first.
    let agent_audio: Vec<u8> = (0..160).map(|n| (n as u8) ^ 0x5A).collect();
    call.agent_sends(0, 7, &agent_audio).await;
    let (got, last_prompt) = recv_relayed(&call.caller, silence).await;
    let last_prompt = last_prompt.unwrap_or_else(|| call.prompt.clone());
    assert_eq!(got.pt, 0);
    assert_eq!(
        got.from, call.engine_caller,
        "sent from the caller-side port"
    );
    assert_eq!(got.ssrc, last_prompt.ssrc, "the caller sees one stream");
    assert_eq!(got.seq, last_prompt.seq.wrapping_add(1), "no sequence jump");
    assert!(got.marker, "a new talkspurt");
    assert_eq!(got.payload, agent_audio);
    let first = got;
    call.agent_sends(0, 8, &agent_audio).await;
    let got = recv(&call.caller, WAIT).await.expect("at the caller");
    assert_eq!(got.seq, first.seq.wrapping_add(1));
    assert_eq!(got.ts, first.ts.wrapping_add(160));
    assert!(!got.marker);
    // The agent's key reaches the caller with the caller's event type.
    call.agent_sends(100, 9, &key).await;
    let got = recv(&call.caller, WAIT).await.expect("key at the caller");
    assert_eq!((got.pt, got.payload.as_slice()), (101, key.as_slice()));

    // On hold: nothing toward the caller, the caller still reaches the agent.
    call.media.command(MediaCommand::Hold(true));
    call.caller_sends(0, false, &audio).await;
    assert!(
        recv(&call.agent, WAIT).await.is_some(),
        "caller → agent on hold"
    );
    for seq in 10..15 {
        call.agent_sends(0, seq, &agent_audio).await;
    }
    assert_nothing_relayed(&call.caller, silence, Duration::from_millis(150)).await;
    call.media.command(MediaCommand::Hold(false));
    call.caller_sends(0, false, &audio).await;
    assert!(recv(&call.agent, WAIT).await.is_some());
    call.agent_sends(0, 15, &agent_audio).await;
    let got = recv(&call.caller, WAIT).await.expect("after hold");
    assert!(got.marker, "resuming starts a talkspurt");
    assert_eq!(
        got.seq,
        first.seq.wrapping_add(3),
        "the held packets leave no gap"
    );

    // Prompts are not resumed by a Play while bridged.
    call.media.command(MediaCommand::Stop);
    assert_nothing_relayed(&call.caller, silence, Duration::from_millis(100)).await;

    // No digits reported for keys passed through, no timeout.
    assert!(call.events.try_recv().is_err());
    // To the agent: setup, audio, key, 2 × audio around the hold; to the caller: 2 × audio,
    // key, audio after the hold.
    assert_eq!(call.stats.packets_relayed.load(Ordering::Relaxed), 9);
    assert_eq!(call.stats.relay_transcoded.load(Ordering::Relaxed), 0);
    call.hang_up(4).await;
}

#[tokio::test]
async fn pcmu_caller_and_pcma_agent_are_transcoded_sample_by_sample() {
    let mut call = Call::bridged(
        (43100, 43107),
        Law::Ulaw,
        Some(101),
        Law::Alaw,
        None,
        Duration::from_secs(30),
    )
    .await;
    let before = call.stats.relay_transcoded.load(Ordering::Relaxed);

    // Every µ-law code (the 160 of one packet, then the rest).
    for codes in [(0..160).collect::<Vec<u8>>(), (160..=255).collect()] {
        call.caller_sends(0, false, &codes).await;
        let got = recv(&call.agent, WAIT).await.expect("at the agent");
        assert_eq!(got.pt, 8, "the agent's law");
        assert_eq!(got.payload.len(), codes.len());
        for (&u, &a) in codes.iter().zip(&got.payload) {
            assert_eq!(
                a,
                g711::linear_to_alaw(g711::ulaw_to_linear(u)),
                "µ {u:#04x}"
            );
            let (x, y) = (
                i32::from(g711::ulaw_to_linear(u)),
                i32::from(g711::alaw_to_linear(a)),
            );
            assert!((x - y).abs() <= x.abs() / 16 + 8, "µ {u:#04x}: {x} vs {y}");
        }
    }
    // The agent has no telephone-events: the caller's key is dropped, audio after it is not.
    call.caller_sends(101, true, &[1, 10, 0, 160]).await;
    call.caller_sends(0, false, &[0xFF; 160]).await;
    let got = recv(&call.agent, WAIT).await.expect("audio at the agent");
    assert_eq!((got.pt, got.payload[0]), (8, Law::Alaw.silence()));

    // A-law from the agent reaches the caller as µ-law.
    let alaw: Vec<u8> = (0..160).map(|n| (n as u8).wrapping_mul(3)).collect();
    call.agent_sends(8, 1, &alaw).await;
    let (got, _) = recv_relayed(&call.caller, Law::Ulaw.silence()).await;
    assert_eq!(got.pt, 0);
    for (&a, &u) in alaw.iter().zip(&got.payload) {
        assert_eq!(
            u,
            g711::linear_to_ulaw(g711::alaw_to_linear(a)),
            "A {a:#04x}"
        );
    }
    assert_eq!(
        call.stats.relay_transcoded.load(Ordering::Relaxed) - before,
        4
    );
    call.hang_up(4).await;
}

#[tokio::test]
async fn a_silent_caller_still_times_out_and_a_silent_agent_breaks_nothing() {
    let mut call = Call::bridged(
        (43200, 43207),
        Law::Alaw,
        None,
        Law::Alaw,
        None,
        Duration::from_millis(300),
    )
    .await;
    // The agent never sends; the caller keeps reaching it.
    for _ in 0..3 {
        call.caller_sends(8, false, &[0xD5; 160]).await;
        assert!(recv(&call.agent, WAIT).await.is_some());
    }
    // Then the caller goes silent.
    let event = tokio::time::timeout(WAIT, call.events.recv())
        .await
        .expect("a timeout event");
    assert_eq!(event, Some(MediaEvent::RtpTimeout));
    call.hang_up(4).await;
}
