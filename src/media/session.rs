//! One call's media: a task that owns the call's RTP socket, sends 20 ms G.711 frames on the
//! pacer's schedule (prompts, music on hold, or silence — never nothing), and turns the
//! caller's key presses (RFC 4733 telephone-events or in-band tones) into events.
//!
//! It is separate from the call's signalling task so a burst of SIP work never delays a frame,
//! and the call's logic (menu, routing) never waits on a socket. Both talk through small
//! bounded channels.
//!
//! # Bridged to an agent
//! [`MediaCommand::Bridge`] hands the task the agent's port; from then on it plays nothing and
//! relays instead (the per-packet work is in [`super::relay`]). Every RTP packet from the caller
//! goes out of the agent's port to the agent, every packet from the agent out of the caller's
//! port to the caller, each side learning the other's address from its packets (symmetric RTP).
//! There is no way back to prompts: a bridge lasts until the handle is dropped, which returns
//! both ports to the pool. While bridged:
//! - `Play`, `Loop` and `Stop` are ignored (the call task sends none); the prompt that was
//!   playing is cut off without a [`MediaEvent::PlaybackFinished`].
//! - `Hold(true)` stops forwarding toward the caller (the agent's packets are dropped); the
//!   caller's packets still reach the agent. `Hold(false)` resumes with a talkspurt marker and
//!   no sequence gap.
//! - `Negotiated` and `Remote` keep their meaning for the caller's side.
//! - Another `Bridge` replaces the agent (the old port goes back to the pool); the caller's
//!   stream continues with a marker.
//! - Keys are not reported as [`MediaEvent::Digit`]: they are passed through to the agent (as
//!   telephone-events mapped to the agent's payload type, or as the audio itself), who is the
//!   one to hear them now. An agent without telephone-events does not get RFC 4733 keys.
//! - [`MediaEvent::RtpTimeout`] still reports a caller that went silent; an agent that sends
//!   nothing only means nothing is forwarded to the caller.
//! - RTCP on either port is accepted and ignored, as before; none is forwarded.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{Instrument, debug};

use super::dtmf::{DtmfDetector, TelephoneEventReceiver};
use super::g711;
use super::pacer::{FRAME_DURATION, RtpSender};
use super::prompts::{Law, Playback, Prompt};
use super::relay::{Codecs, Rewriter};
use super::rtp_ports::RtpPort;

/// What the call asks of its media.
#[derive(Debug)]
pub enum MediaCommand {
    /// Play these prompts in order, replacing whatever plays.
    Play(Vec<Prompt>),
    /// Play this prompt over and over (music on hold) until told otherwise.
    Loop(Prompt),
    /// Stop at once (barge-in); silence follows.
    Stop,
    /// Send to this address until the caller's own packets show where they come from.
    Remote(SocketAddr),
    /// The caller put us on hold (`sendonly`/`inactive`, RFC 3264 §8.4): stop sending until
    /// `Hold(false)`; keys are still heard.
    Hold(bool),
    /// The codec and telephone-event type the caller's answer chose (offerless INVITE: the
    /// answer comes in the ACK, after media started with our first choice).
    Negotiated {
        law: Law,
        telephone_event: Option<u8>,
    },
    /// An agent answered: stop playing and relay RTP between the caller and this agent (see
    /// the module notes).
    Bridge(Bridge),
}

/// The agent's side of a bridge, from the agent's SDP answer.
pub struct Bridge {
    /// The agent-side port, from the same pool as the caller's; the media task owns it now.
    pub port: RtpPort,
    /// Where to send until the agent's own packets show where they come from.
    pub remote: SocketAddr,
    /// The agent's codec.
    pub law: Law,
    /// The agent's RFC 4733 payload type, if any.
    pub telephone_event: Option<u8>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("port", &self.port.port)
            .field("remote", &self.remote)
            .field("law", &self.law)
            .field("telephone_event", &self.telephone_event)
            .finish()
    }
}

/// Where a key press came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    Rfc4733,
    InBand,
    SipInfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit(char, DtmfSource),
    /// Every prompt of the last `Play` was sent.
    PlaybackFinished,
    /// No RTP from the caller for the configured time.
    RtpTimeout,
}

/// Shared counters of all media tasks (for the benchmark and metrics).
#[derive(Debug, Default)]
pub struct MediaStats {
    pub packets_sent: AtomicU64,
    /// Packets sent more than 10 ms after their due time.
    pub packets_late: AtomicU64,
    pub packets_received: AtomicU64,
    /// Caller packets missing from the sequence (gaps in the RTP sequence numbers of one SSRC).
    pub packets_lost: AtomicU64,
    pub frames_skipped: AtomicU64,
    /// Packets forwarded between caller and agent, both directions.
    pub packets_relayed: AtomicU64,
    /// Relayed packets whose audio was transcoded between µ-law and A-law.
    pub relay_transcoded: AtomicU64,
}

pub struct MediaConfig {
    pub law: Law,
    /// Negotiated RFC 4733 payload type, if any.
    pub telephone_event: Option<u8>,
    /// Where to send before the caller's first packet arrives (from their SDP).
    pub remote: Option<SocketAddr>,
    pub rtp_timeout: Duration,
    /// Listen for DTMF tones in the audio too (for gateways that send keys as sound).
    pub inband_dtmf: bool,
    /// Start on hold, sending nothing (the caller's offer was `sendonly` or `inactive`,
    /// RFC 3264 §6.1), as after [`MediaCommand::Hold`]`(true)`.
    pub held: bool,
}

/// The call's side of its media task (its events come on the receiver `spawn` returns).
pub struct MediaHandle {
    commands: mpsc::Sender<MediaCommand>,
}

impl MediaHandle {
    /// Never waits: a full command queue means the call is issuing commands faster than it can
    /// matter (the newest state wins anyway at the next command).
    pub fn command(&self, command: MediaCommand) {
        let _ = self.commands.try_send(command);
    }
}

const COMMAND_QUEUE: usize = 16;
const EVENT_QUEUE: usize = 32;

/// Starts the media task; it ends when the handle is dropped, returning the port (and a bridged
/// agent's port) to the pool.
pub fn spawn(
    port: RtpPort,
    config: MediaConfig,
    stats: Arc<MediaStats>,
) -> (MediaHandle, mpsc::Receiver<MediaEvent>) {
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let span = tracing::Span::current();
    // Boxed first: the media task's future is ~7.6 KB (release build, 2026-11), and each
    // move on the way into the runtime would copy all of it.
    tokio::spawn(Box::pin(run(port, config, stats, command_rx, event_tx)).instrument(span));
    (
        MediaHandle {
            commands: command_tx,
        },
        event_rx,
    )
}

/// What is being sent.
struct Player {
    law: Law,
    current: Option<Playback>,
    /// The prompt `current` plays (to re-encode it if the codec changes mid-prompt).
    current_prompt: Option<Prompt>,
    queue: VecDeque<Prompt>,
    looping: Option<Prompt>,
    /// A `Play` is in progress (so its end must be reported once).
    reporting: bool,
}

impl Player {
    /// Continues the current prompt, at the same frame, in another G.711 law.
    fn switch_law(&mut self, law: Law) {
        self.law = law;
        if let (Some(current), Some(prompt)) = (&self.current, &self.current_prompt) {
            let played = current.frames_played();
            let mut again = prompt.playback(law);
            for _ in 0..played {
                if again.next_frame().is_none() {
                    break;
                }
            }
            self.current = Some(again);
        }
    }

    /// When the current `Play` would finish if played on from `now` (`None`: none to report).
    fn report_due(&self, now: Instant) -> Option<Instant> {
        if !self.reporting {
            return None;
        }
        let current = self.current.as_ref().map_or(0, Playback::frames_left);
        let queued: usize = self.queue.iter().map(Prompt::frame_count).sum();
        let frames = u32::try_from(current + queued).unwrap_or(u32::MAX);
        Some(now + FRAME_DURATION * frames)
    }

    /// Skips the rest of the current `Play` (on hold, where nothing is sent); whether it had
    /// to be reported. A music-on-hold loop starts from its beginning afterwards.
    fn skip_to_report(&mut self) -> bool {
        self.current = None;
        self.current_prompt = None;
        self.queue.clear();
        std::mem::take(&mut self.reporting)
    }

    /// The next frame to send, and whether a `Play` just finished.
    fn next_frame(&mut self, out: &mut [u8; 160]) -> bool {
        loop {
            if let Some(playback) = self.current.as_mut() {
                if let Some(frame) = playback.next_frame() {
                    out.copy_from_slice(frame);
                    return false;
                }
                self.current = None;
            }
            if let Some(next) = self.queue.pop_front() {
                self.current = Some(next.playback(self.law));
                self.current_prompt = Some(next);
                continue;
            }
            if let Some(music) = &self.looping {
                let playback = music.playback(self.law);
                if playback.is_finished() {
                    // An empty loop prompt must not spin.
                    self.looping = None;
                } else {
                    self.current = Some(playback);
                    self.current_prompt = Some(music.clone());
                    continue;
                }
            }
            out.copy_from_slice(self.law.silence_frame());
            if self.reporting {
                self.reporting = false;
                return true;
            }
            return false;
        }
    }
}

async fn run(
    port: RtpPort,
    config: MediaConfig,
    stats: Arc<MediaStats>,
    mut commands: mpsc::Receiver<MediaCommand>,
    events: mpsc::Sender<MediaEvent>,
) {
    let mut law = config.law;
    let mut telephone_event = config.telephone_event;
    let socket = &port.socket;
    let mut remote = config.remote;
    let mut latched = false;
    let mut loss = SequenceGaps::default();
    let mut sender = RtpSender::new(law.payload_type(), Instant::now());
    let mut player = Player {
        law,
        current: None,
        current_prompt: None,
        queue: VecDeque::new(),
        looping: None,
        reporting: false,
    };
    let mut telephone_events = TelephoneEventReceiver::new();
    let mut tones = config.inband_dtmf.then(DtmfDetector::new);
    let mut pcm: Vec<i16> = Vec::with_capacity(160);
    let mut frame = [0u8; 160];
    let mut receive: Vec<u8> = Vec::with_capacity(RELAY_BUFFER);
    let mut rtcp_sink = [0u8; RTCP_SINK];
    let mut last_heard = Instant::now();
    let mut timeout_reported = false;
    let mut held = config.held;
    // On hold nothing is sent, so the task does not wake every 20 ms: it sleeps until the
    // prompt being played would have finished (to report it), or until a command comes. The
    // RTP timeout is checked on those wake-ups, so it does not apply on hold, where an
    // `inactive` caller rightly sends nothing (it used to end such a call after 30 s). The
    // relay (after an agent answered) keeps its own timeout, hold or not.
    let mut held_report_at = None;
    let late_limit = Duration::from_millis(10);

    // One timer for the whole prompt loop, moved to each frame's slot: a timer made per round
    // registers with the runtime's timer wheel and deregisters when `select!` drops it, each
    // under the wheel's lock, 50 times a second per call.
    let frame_timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(frame_timer);
    let bridge = loop {
        let due = if held {
            held_report_at
        } else {
            Some(sender.next_due())
        };
        tokio::select! {
            biased;
            // A frame already due (the first one, at once) goes out without a timer: a timer
            // due within the runtime's next millisecond wakes the thread parked on the I/O
            // driver (an eventfd write and a context switch), which the start of every call's
            // media paid (0.67 wake-ups per call at 4,000 calls/s).
            () = async {
                match due.map(tokio::time::Instant::from_std) {
                    Some(due) if due > tokio::time::Instant::now() => {
                        if frame_timer.deadline() != due {
                            frame_timer.as_mut().reset(due);
                        }
                        frame_timer.as_mut().await;
                    }
                    Some(_) => {}
                    None => std::future::pending().await,
                }
            } => {
                if held {
                    held_report_at = None;
                    if player.skip_to_report() {
                        let _ = events.try_send(MediaEvent::PlaybackFinished);
                    }
                    continue;
                }
                let now = Instant::now();
                let finished = player.next_frame(&mut frame);
                let packet = sender.packet(now, &frame);
                if packet.late_by > late_limit {
                    stats.packets_late.fetch_add(1, Ordering::Relaxed);
                }
                stats.frames_skipped.fetch_add(packet.skipped, Ordering::Relaxed);
                if let Some(to) = remote {
                    // A full socket buffer drops this frame; the next one is 20 ms away.
                    let _ = socket.try_send_to(packet.bytes, to);
                    stats.packets_sent.fetch_add(1, Ordering::Relaxed);
                }
                if finished {
                    let _ = events.try_send(MediaEvent::PlaybackFinished);
                }
                if !timeout_reported && now.duration_since(last_heard) > config.rtp_timeout {
                    timeout_reported = true;
                    let _ = events.try_send(MediaEvent::RtpTimeout);
                }
            }
            received = poll_fn(|cx| poll_receive_into(socket, &mut receive, cx)) => {
                let Ok((n, from)) = received else { continue };
                let now = Instant::now();
                let Ok(rtp) = rtp_rs::RtpReader::new(&receive[..n]) else {
                    continue; // not RTP (e.g. STUN or junk): ignore
                };
                stats.packets_received.fetch_add(1, Ordering::Relaxed);
                let lost = loss.packet(rtp.ssrc(), u16::from(rtp.sequence_number()));
                if lost > 0 {
                    stats.packets_lost.fetch_add(lost, Ordering::Relaxed);
                }
                last_heard = now;
                timeout_reported = false;
                // Symmetric RTP: answer where the caller's packets come from (NAT).
                if remote != Some(from) {
                    if !latched {
                        debug!(%from, "RTP source latched");
                    }
                    remote = Some(from);
                }
                latched = true;
                let pt = rtp.payload_type();
                if Some(pt) == telephone_event {
                    if let Ok(keys) = telephone_events.receive(rtp.timestamp(), rtp.mark(), rtp.payload(), now) {
                        for key in keys {
                            let _ = events.try_send(MediaEvent::Digit(key, DtmfSource::Rfc4733));
                        }
                    }
                } else if pt == law.payload_type()
                    && let Some(detector) = tones.as_mut()
                {
                    pcm.clear();
                    match law {
                        Law::Ulaw => g711::decode_ulaw(rtp.payload(), &mut pcm),
                        Law::Alaw => g711::decode_alaw(rtp.payload(), &mut pcm),
                    }
                    for key in detector.process(&pcm) {
                        let _ = events.try_send(MediaEvent::Digit(key, DtmfSource::InBand));
                    }
                }
            }
            // RTCP reports are accepted and ignored (quality metrics may use them later).
            () = poll_fn(|cx| poll_discard(&port.rtcp, &mut rtcp_sink, cx)) => {}
            command = commands.recv() => match command {
                Some(MediaCommand::Play(prompts)) => {
                    player.current = None;
                    player.looping = None;
                    player.queue = prompts.into();
                    player.reporting = true;
                    held_report_at = player.report_due(Instant::now());
                }
                Some(MediaCommand::Loop(prompt)) => {
                    player.current = None;
                    player.queue.clear();
                    player.looping = Some(prompt);
                    player.reporting = false;
                    held_report_at = None;
                }
                Some(MediaCommand::Stop) => {
                    player.current = None;
                    player.queue.clear();
                    player.looping = None;
                    player.reporting = false;
                    held_report_at = None;
                }
                Some(MediaCommand::Negotiated { law: chosen, telephone_event: te }) => {
                    law = chosen;
                    player.switch_law(chosen);
                    sender.set_payload_type(chosen.payload_type());
                    telephone_event = te;
                }
                Some(MediaCommand::Hold(hold)) => {
                    if held && !hold {
                        sender.start_talkspurt(Instant::now());
                    }
                    if hold && !held {
                        held_report_at = player.report_due(Instant::now());
                    }
                    held = hold;
                }
                Some(MediaCommand::Remote(addr)) => {
                    if !latched {
                        remote = Some(addr);
                    }
                }
                Some(MediaCommand::Bridge(bridge)) => break Some(bridge),
                None => break None,
            },
        }
    };
    if let Some(bridge) = bridge {
        let caller = CallerSide {
            port,
            remote,
            latched,
            codecs: Codecs {
                law,
                telephone_event,
            },
            held,
            last_heard,
            timeout_reported,
            rtp_timeout: config.rtp_timeout,
            loss,
            receive,
        };
        relay(caller, bridge, &sender, &stats, commands, events).await;
    }
}

/// The caller's side as the prompt loop leaves it to the relay.
struct CallerSide {
    port: RtpPort,
    remote: Option<SocketAddr>,
    latched: bool,
    codecs: Codecs,
    held: bool,
    last_heard: Instant,
    timeout_reported: bool,
    rtp_timeout: Duration,
    loss: SequenceGaps,
    /// The receive buffer of the prompt loop, the relay's buffer for the caller's packets.
    receive: Vec<u8>,
}

/// The largest datagram relayed; larger ones are dropped (G.711 at 20 ms is 172 bytes).
const RELAY_BUFFER: usize = 2048;
/// RTCP is read and dropped unread: a datagram longer than this buffer is cut to it (and the
/// rest discarded by the kernel), so a small one serves, and a call does not zero three
/// 1,500-byte buffers it never reads.
const RTCP_SINK: usize = 64;

/// Relays between the caller and the agent until the handle is dropped (module notes).
/// `sender` is the prompt stream toward the caller, which the relayed stream continues.
async fn relay(
    caller: CallerSide,
    bridge: Bridge,
    sender: &RtpSender,
    stats: &MediaStats,
    mut commands: mpsc::Receiver<MediaCommand>,
    events: mpsc::Sender<MediaEvent>,
) {
    let CallerSide {
        port,
        mut remote,
        mut latched,
        codecs: mut caller_codecs,
        mut held,
        mut last_heard,
        mut timeout_reported,
        rtp_timeout,
        mut loss,
        receive: mut from_caller,
    } = caller;
    let mut agent_codecs = Codecs {
        law: bridge.law,
        telephone_event: bridge.telephone_event,
    };
    let mut agent_remote = bridge.remote;
    let mut agent = bridge.port;
    debug!(agent_port = agent.port, %agent_remote, "bridged");
    let mut to_agent = Rewriter::new(rand::random(), caller_codecs, agent_codecs);
    let mut to_caller = Rewriter::continuing(
        sender.ssrc(),
        sender.next_sequence(),
        sender.next_timestamp(),
        agent_codecs,
        caller_codecs,
    );
    // The caller's side keeps the prompt loop's buffer; the agent's is made as that one was,
    // and the output buffer (which the rewriter needs initialised) with the first packet to
    // forward. Each is reused for every packet.
    let mut from_agent: Vec<u8> = Vec::with_capacity(RELAY_BUFFER);
    let mut out: Vec<u8> = Vec::new();
    let mut caller_rtcp = [0u8; RTCP_SINK];
    let mut agent_rtcp = [0u8; RTCP_SINK];
    // Reset only when it fires (to the last packet's deadline) or after a reported timeout, not
    // once per packet.
    let deadline = |heard: Instant| tokio::time::Instant::from_std(heard + rtp_timeout);
    let timeout = tokio::time::sleep_until(deadline(last_heard));
    tokio::pin!(timeout);

    loop {
        tokio::select! {
            // Commands first, so a `Hold` already queued applies to the next packet; then the
            // caller before the agent (at 50 packets a second each, neither waits for long).
            biased;
            command = commands.recv() => match command {
                Some(MediaCommand::Play(_) | MediaCommand::Loop(_) | MediaCommand::Stop) => {
                    debug!("prompt command ignored while bridged");
                }
                Some(MediaCommand::Remote(addr)) => {
                    if !latched {
                        remote = Some(addr);
                    }
                }
                Some(MediaCommand::Hold(hold)) => {
                    if held && !hold {
                        to_caller.resume();
                    }
                    held = hold;
                }
                Some(MediaCommand::Negotiated { law, telephone_event }) => {
                    caller_codecs = Codecs { law, telephone_event };
                    to_agent.set_from(caller_codecs);
                    to_caller.set_to(caller_codecs);
                }
                Some(MediaCommand::Bridge(bridge)) => {
                    agent_codecs = Codecs {
                        law: bridge.law,
                        telephone_event: bridge.telephone_event,
                    };
                    agent_remote = bridge.remote;
                    // The old agent's port goes back to the pool here.
                    agent = bridge.port;
                    debug!(agent_port = agent.port, %agent_remote, "bridged to another agent");
                    to_agent = Rewriter::new(rand::random(), caller_codecs, agent_codecs);
                    to_caller.set_from(agent_codecs);
                    to_caller.new_source();
                }
                None => break,
            },
            received = poll_fn(|cx| poll_receive_into(&port.socket, &mut from_caller, cx)) => {
                let Ok((n, from)) = received else { continue };
                let packet = &from_caller[..n];
                let Ok(rtp) = rtp_rs::RtpReader::new(packet) else {
                    continue; // not RTP (e.g. STUN or junk): ignore
                };
                stats.packets_received.fetch_add(1, Ordering::Relaxed);
                let lost = loss.packet(rtp.ssrc(), u16::from(rtp.sequence_number()));
                if lost > 0 {
                    stats.packets_lost.fetch_add(lost, Ordering::Relaxed);
                }
                last_heard = Instant::now();
                if timeout_reported {
                    timeout_reported = false;
                    timeout.as_mut().reset(deadline(last_heard));
                }
                if remote != Some(from) {
                    debug!(%from, "RTP source latched");
                    remote = Some(from);
                }
                latched = true;
                if let Some(forward) = to_agent.rewrite(packet, output(&mut out)) {
                    // A full socket buffer drops this packet, as for prompts.
                    let _ = agent.socket.try_send_to(&out[..forward.len], agent_remote);
                    count(stats, forward.transcoded);
                }
            }
            received = poll_fn(|cx| poll_receive_into(&agent.socket, &mut from_agent, cx)) => {
                let Ok((n, from)) = received else { continue };
                let packet = &from_agent[..n];
                if rtp_rs::RtpReader::new(packet).is_err() {
                    continue;
                }
                // Symmetric RTP toward the agent too.
                if agent_remote != from {
                    debug!(%from, "agent RTP source latched");
                    agent_remote = from;
                }
                let Some(to) = remote.filter(|_| !held) else { continue };
                if let Some(forward) = to_caller.rewrite(packet, output(&mut out)) {
                    let _ = port.socket.try_send_to(&out[..forward.len], to);
                    count(stats, forward.transcoded);
                }
            }
            // RTCP reports are accepted and ignored, on both sides.
            () = poll_fn(|cx| poll_discard(&port.rtcp, &mut caller_rtcp, cx)) => {}
            () = poll_fn(|cx| poll_discard(&agent.rtcp, &mut agent_rtcp, cx)) => {}
            () = &mut timeout, if !timeout_reported => {
                let due = deadline(last_heard);
                if tokio::time::Instant::now() >= due {
                    timeout_reported = true;
                    let _ = events.try_send(MediaEvent::RtpTimeout);
                } else {
                    timeout.as_mut().reset(due);
                }
            }
        }
    }
}

/// Polls `socket` for one datagram and takes it with `take` (a `try_recv*` call).
///
/// A poll function, not a future: `select!` makes and drops its futures on every round (every
/// 20 ms frame), and tokio's `recv_from` future joins the socket's list of waiters under a lock
/// when polled and leaves it under the lock again when dropped. `poll_recv_ready` keeps the one
/// waker of the socket's read direction instead (one task reads each of these sockets).
fn poll_datagram<T>(
    socket: &UdpSocket,
    cx: &mut Context<'_>,
    mut take: impl FnMut(&UdpSocket) -> std::io::Result<T>,
) -> Poll<std::io::Result<T>> {
    loop {
        std::task::ready!(socket.poll_recv_ready(cx))?;
        match take(socket) {
            // Readiness was stale (try_recv cleared it): poll again, which registers the waker.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            taken => return Poll::Ready(taken),
        }
    }
}

/// One datagram into `buffer`, which then holds exactly it. Only the buffer's capacity is used
/// ([`RELAY_BUFFER`]; a longer datagram is cut to it): a buffer made by capacity is neither
/// zeroed nor touched before a packet comes (most of a queued call's life, none at all in a
/// call without media).
fn poll_receive_into(
    socket: &UdpSocket,
    buffer: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<(usize, SocketAddr)>> {
    poll_datagram(socket, cx, |socket| {
        buffer.clear();
        socket.try_recv_buf_from(buffer)
    })
}

/// RTCP is accepted and ignored: one datagram read into `sink` and dropped.
fn poll_discard(socket: &UdpSocket, sink: &mut [u8], cx: &mut Context<'_>) -> Poll<()> {
    poll_datagram(socket, cx, |socket| socket.try_recv_from(sink)).map(|_| ())
}

/// The relay's output buffer, [`RELAY_BUFFER`] zeroed bytes from the first packet forwarded on.
fn output(out: &mut Vec<u8>) -> &mut [u8] {
    if out.is_empty() {
        out.resize(RELAY_BUFFER, 0);
    }
    out
}

/// Largest forward jump in the sequence counted as loss; a bigger one is a restarted stream.
const MAX_GAP: u16 = 3000;

/// Counts sequence gaps in the caller's RTP: two integers per call, no allocation. A packet
/// behind the highest sequence seen (reordered or duplicated) counts nothing and leaves the
/// state alone, so a reordered packet is counted lost (RFC 3550 §A.3 would credit it back; at
/// these rates the difference is noise). A new SSRC or a jump beyond [`MAX_GAP`] restarts.
#[derive(Debug, Default, Clone, Copy)]
struct SequenceGaps {
    /// The SSRC and the sequence number expected next.
    expected: Option<(u32, u16)>,
}

impl SequenceGaps {
    /// Notes one packet; returns how many packets before it went missing.
    fn packet(&mut self, ssrc: u32, sequence: u16) -> u64 {
        let next = sequence.wrapping_add(1);
        let Some((known, expected)) = self.expected.filter(|(s, _)| *s == ssrc) else {
            self.expected = Some((ssrc, next));
            return 0;
        };
        let gap = sequence.wrapping_sub(expected);
        if gap >= 0x8000 {
            // Behind what we expect: late or duplicate.
            return 0;
        }
        self.expected = Some((known, next));
        if gap > MAX_GAP { 0 } else { u64::from(gap) }
    }
}

/// Counts one relayed packet.
fn count(stats: &MediaStats, transcoded: bool) {
    stats.packets_relayed.fetch_add(1, Ordering::Relaxed);
    if transcoded {
        stats.relay_transcoded.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_gaps_count_missing_packets_only() {
        let mut gaps = SequenceGaps::default();
        assert_eq!(gaps.packet(7, 65_534), 0);
        assert_eq!(gaps.packet(7, 65_535), 0);
        assert_eq!(gaps.packet(7, 1), 1, "0 went missing across the wrap");
        assert_eq!(gaps.packet(7, 1), 0, "duplicate");
        assert_eq!(gaps.packet(7, 0), 0, "late");
        assert_eq!(gaps.packet(7, 5), 3);
        assert_eq!(gaps.packet(7, 6), 0);
        assert_eq!(gaps.packet(9, 100), 0, "new source restarts");
        assert_eq!(gaps.packet(9, 101), 0);
        assert_eq!(
            gaps.packet(9, 20_000),
            0,
            "a huge jump is a restart, not loss"
        );
        assert_eq!(gaps.packet(9, 20_002), 1);
    }
    use crate::media::rtp_ports::{Leg, RtpPortPool};

    /// PCMU with telephone-event 101, keys by RFC 4733 only, a 30 s RTP timeout.
    fn config(remote: Option<SocketAddr>, held: bool) -> MediaConfig {
        MediaConfig {
            law: Law::Ulaw,
            telephone_event: Some(101),
            remote,
            rtp_timeout: Duration::from_secs(30),
            inband_dtmf: false,
            held,
        }
    }

    fn prompt(len_frames: usize, value: i16) -> Prompt {
        Prompt::from_pcm("test", vec![value; len_frames * 160])
    }

    #[test]
    fn the_player_plays_in_order_then_reports_once_then_sends_silence() {
        let mut player = Player {
            law: Law::Ulaw,
            current: None,
            current_prompt: None,
            queue: VecDeque::from(vec![prompt(2, 1000), prompt(1, -1000)]),
            looping: None,
            reporting: true,
        };
        let mut frame = [0u8; 160];
        let mut finished = Vec::new();
        let mut frames = Vec::new();
        for _ in 0..5 {
            finished.push(player.next_frame(&mut frame));
            frames.push(frame[0]);
        }
        assert_eq!(finished, vec![false, false, false, true, false]);
        let silence = Law::Ulaw.silence_frame()[0];
        assert_ne!(frames[0], silence);
        assert_ne!(frames[2], frames[0], "second prompt follows the first");
        assert_eq!(frames[3], silence);
        assert_eq!(frames[4], silence);
    }

    #[test]
    fn music_on_hold_loops() {
        let mut player = Player {
            law: Law::Alaw,
            current: None,
            current_prompt: None,
            queue: VecDeque::new(),
            looping: Some(prompt(2, 3000)),
            reporting: false,
        };
        let mut frame = [0u8; 160];
        for _ in 0..7 {
            assert!(!player.next_frame(&mut frame));
            assert_ne!(frame[0], Law::Alaw.silence_frame()[0]);
        }
    }

    #[tokio::test]
    async fn a_caller_who_offered_inactive_media_gets_none_until_resumed() {
        let pool = RtpPortPool::new("127.0.0.1".parse().expect("ip"), 41200, 41300);
        let port = pool.allocate(Leg::Agent).expect("port");
        let caller = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let stats = Arc::new(MediaStats::default());
        let (media, mut events) = spawn(
            port,
            config(Some(caller.local_addr().expect("addr")), true),
            stats.clone(),
        );
        // A 100 ms announcement played while held: nothing is sent, and its end is still
        // reported, when it would have finished.
        let started = Instant::now();
        media.command(MediaCommand::Play(vec![prompt(5, 1000)]));
        let event = tokio::time::timeout(Duration::from_secs(2), events.recv())
            .await
            .expect("the end of the prompt is reported while held");
        assert_eq!(event, Some(MediaEvent::PlaybackFinished));
        assert!(started.elapsed() >= Duration::from_millis(90));
        let mut buf = [0u8; 512];
        let quiet =
            tokio::time::timeout(Duration::from_millis(200), caller.recv_from(&mut buf)).await;
        assert!(quiet.is_err(), "RTP was sent to a caller on hold");
        assert_eq!(stats.packets_sent.load(Ordering::Relaxed), 0);
        // Resumed (a re-INVITE with sendrecv): the stream starts, marked as a new talkspurt.
        media.command(MediaCommand::Hold(false));
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), caller.recv_from(&mut buf))
            .await
            .expect("RTP after the resume")
            .expect("recv");
        let rtp = rtp_rs::RtpReader::new(&buf[..n]).expect("RTP");
        assert!(
            rtp.mark(),
            "the first packet after the hold starts a talkspurt"
        );
    }

    #[tokio::test]
    async fn keys_sent_as_telephone_events_come_out_once() {
        let pool = RtpPortPool::new("127.0.0.1".parse().expect("ip"), 41000, 41100);
        let port = pool.allocate(Leg::Agent).expect("port");
        let engine_port = port.port;
        let stats = Arc::new(MediaStats::default());
        let (_media, mut events) = spawn(port, config(None, false), stats.clone());
        let caller = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        // Key 5: start (marker), update, end ×3 — one press.
        let packets: [(bool, u16, bool); 5] = [
            (true, 160, false),
            (false, 320, false),
            (false, 480, true),
            (false, 480, true),
            (false, 480, true),
        ];
        for (seq, (marker, duration, end)) in packets.into_iter().enumerate() {
            let payload = [
                5u8,
                if end { 0x80 | 10 } else { 10 },
                (duration >> 8) as u8,
                duration as u8,
            ];
            let mut buf = [0u8; 64];
            let len = rtp_rs::RtpPacketBuilder::new()
                .payload_type(101)
                .ssrc(7)
                .sequence(rtp_rs::Seq::from(seq as u16))
                .timestamp(8000)
                .marked(marker)
                .payload(&payload)
                .build_into(&mut buf)
                .expect("packet");
            caller
                .send_to(&buf[..len], ("127.0.0.1", engine_port))
                .await
                .expect("send");
        }
        let event = tokio::time::timeout(Duration::from_secs(2), events.recv())
            .await
            .expect("an event");
        assert_eq!(event, Some(MediaEvent::Digit('5', DtmfSource::Rfc4733)));
        // The media answers to where the caller's packets came from (symmetric RTP).
        let mut buf = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), caller.recv_from(&mut buf))
            .await
            .expect("RTP back")
            .expect("recv");
        assert_eq!(n, 172);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), events.recv())
                .await
                .is_err(),
            "no second digit from the retransmitted end packets"
        );
    }
}
