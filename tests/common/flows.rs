//! Call-flow helpers for the ACD acceptance tests: a caller with RTP who presses keys and
//! listens for prompts, an agent's phone made from a raw [`SipClient`] (ring, answer, reject,
//! hang up, answer CANCEL and BYE), and the agents' states from the API and the engine's log.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::engine::Engine;
use super::http;
use super::logs::{self, LogEvent};
use super::rtp::{self, RtpPeer};
use super::sip::{self, CallLeg, SipClient, SipMessage};

pub const TELEPHONE_EVENT: u8 = 101;

/// Correlation at which a prompt counts as heard (as in the voice-menu tests).
pub const HEARD: f64 = 0.9;

/// A caller with RTP: answered by the engine, presses keys as RFC 4733 events.
pub struct Caller {
    pub peer: RtpPeer,
    pub client: SipClient,
    pub leg: CallLeg,
    pub engine_rtp: SocketAddr,
}

impl Caller {
    /// Calls the hotline (490) and waits for the first RTP packet of the greeting.
    pub fn dial(engine: &Engine) -> Caller {
        let peer = RtpPeer::new();
        let (client, leg, engine_rtp) = rtp::answered_call(engine, &peer, &[0, TELEPHONE_EVENT]);
        assert!(
            peer.wait_for_packets(1, Duration::from_secs(5)) >= 1,
            "no RTP from the engine after the answer"
        );
        Caller {
            peer,
            client,
            leg,
            engine_rtp,
        }
    }

    pub fn call_id(&self) -> String {
        self.leg.call_id.clone()
    }

    /// Presses `key` (0–9, `*`, `#`) as RFC 4733 events (about 100 ms).
    pub fn press(&mut self, key: char) {
        let code = match key {
            '0'..='9' => key as u8 - b'0',
            '*' => 10,
            '#' => 11,
            other => panic!("no DTMF event for {other:?}"),
        };
        self.peer.press(self.engine_rtp, TELEPHONE_EVENT, code);
    }

    /// Presses the menu key and waits until the call is queued in `queue`.
    pub fn choose(&mut self, engine: &Engine, key: char, queue: &str) {
        self.press(key);
        let call_id = self.call_id();
        let queued = logs::wait_for(engine, Duration::from_secs(10), |e| {
            e.call_id.as_deref() == Some(call_id.as_str())
                && e.is_event("queue")
                && e.field("queue").as_deref() == Some(queue)
        });
        assert!(
            queued.is_some(),
            "call {call_id}: key {key} did not queue it in {queue}; call log:\n{}",
            logs::call_summary(engine, &call_id)
        );
    }

    /// The caller hangs up (BYE, expects 200).
    pub fn hang_up(&mut self) {
        rtp::hang_up(&self.client, &mut self.leg);
    }

    /// Waits for the engine's BYE and answers it with 200.
    pub fn expect_bye(&self, timeout: Duration) -> SipMessage {
        let (bye, others) = self
            .client
            .recv_until(timeout, |m| m.method() == Some("BYE"));
        let bye = bye.unwrap_or_else(|| {
            panic!(
                "caller {}: no BYE within {timeout:?}; received instead: {others:#?}",
                self.leg.call_id
            )
        });
        self.client.send(sip::response_to(&bye, 200, "OK"));
        bye
    }

    /// Asserts that no BYE (or other request) reaches the caller within `window`.
    pub fn expect_no_bye(&self, window: Duration) {
        let got = self.client.recv_all(window);
        assert!(
            got.iter().all(|m| m.method() != Some("BYE")),
            "caller {} got a BYE: {got:#?}",
            self.leg.call_id
        );
    }

    /// How many RTP packets arrived so far (a mark for [`Self::hears`]).
    pub fn mark(&self) -> usize {
        self.peer.count()
    }

    /// Waits up to `timeout` until the first `ms` milliseconds of `prompt` are in the audio
    /// received since `mark`; returns the best correlation found.
    pub fn hears(&self, prompt: &str, mark: usize, ms: usize, timeout: Duration) -> f64 {
        let samples = rtp::prompt_samples(prompt);
        let template = &samples[..samples.len().min(ms * 8)];
        let deadline = Instant::now() + timeout;
        let mut best = 0.0;
        loop {
            let packets = self.peer.packets();
            let stream: Vec<i16> = packets
                .iter()
                .skip(mark)
                .filter(|p| matches!(p.pt, 0 | 8))
                .flat_map(rtp::Received::pcm)
                .collect();
            let (_, peak) = rtp::find(&stream, template);
            best = peak.max(best);
            if best >= HEARD || Instant::now() >= deadline {
                return best;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Asserts that the caller hears `prompt` (its first `ms` ms) after `mark`.
    pub fn assert_hears(&self, prompt: &str, mark: usize, ms: usize, timeout: Duration) {
        let peak = self.hears(prompt, mark, ms, timeout);
        assert!(
            peak >= HEARD,
            "caller {} did not hear `{prompt}` (correlation peak {peak:.3})",
            self.leg.call_id
        );
    }
}

/// An agent's desk phone: a UDP socket on loopback whose port goes into the agent's URI.
pub struct Phone {
    pub sip: SipClient,
    /// Our To tag for the dialogs we answer.
    pub tag: String,
    /// Call-IDs of INVITEs already handed out (retransmissions are skipped).
    seen: RefCell<HashSet<String>>,
    /// Messages received while waiting for another one, not consumed yet.
    inbox: RefCell<VecDeque<SipMessage>>,
}

impl Default for Phone {
    fn default() -> Self {
        Self::new()
    }
}

impl Phone {
    /// A phone whose port is known before the engine starts (it goes into agents.toml);
    /// [`Self::connect`] points it at the engine.
    pub fn new() -> Phone {
        let nowhere = SocketAddr::from((super::ports::LOOPBACK, 9));
        Phone {
            sip: SipClient::new(nowhere),
            tag: sip::token(),
            seen: RefCell::new(HashSet::new()),
            inbox: RefCell::new(VecDeque::new()),
        }
    }

    pub fn connect(&mut self, engine: &Engine) {
        self.sip.remote = engine.sip_addr();
    }

    pub fn port(&self) -> u16 {
        self.sip.local.port()
    }

    /// The first message (kept from earlier or received within `timeout`) that satisfies
    /// `want`; everything else stays in the inbox for later calls.
    pub fn take(
        &self,
        timeout: Duration,
        want: impl Fn(&SipMessage) -> bool,
    ) -> Option<SipMessage> {
        {
            let mut inbox = self.inbox.borrow_mut();
            if let Some(i) = inbox.iter().position(&want) {
                return inbox.remove(i);
            }
        }
        let deadline = Instant::now() + timeout;
        while let Some(message) = self
            .sip
            .recv(deadline.saturating_duration_since(Instant::now()))
        {
            if want(&message) {
                return Some(message);
            }
            self.inbox.borrow_mut().push_back(message);
        }
        None
    }

    /// What arrived and was not taken (for failure messages).
    pub fn unread(&self) -> Vec<SipMessage> {
        self.inbox.borrow().iter().cloned().collect()
    }

    /// The next INVITE of a call this phone has not seen yet; panics if none comes.
    pub fn expect_invite(&self, timeout: Duration) -> SipMessage {
        self.next_invite(timeout)
            .unwrap_or_else(|| panic!("phone {}: no new INVITE within {timeout:?}", self.sip.local))
    }

    /// The next INVITE of a new call, if one comes within `timeout`.
    pub fn next_invite(&self, timeout: Duration) -> Option<SipMessage> {
        let seen = self.seen.borrow().clone();
        let invite = self.take(timeout, |m| {
            m.method() == Some("INVITE") && m.call_id().is_some_and(|id| !seen.contains(&id))
        })?;
        self.seen
            .borrow_mut()
            .insert(invite.call_id().unwrap_or_default());
        Some(invite)
    }

    /// Asserts that no new INVITE arrives within `window`.
    pub fn expect_no_invite(&self, window: Duration) {
        if let Some(invite) = self.next_invite(window) {
            panic!("phone {} rang unexpectedly:\n{invite:?}", self.sip.local);
        }
    }

    /// The next request `method` of the call `call_id` (other messages are skipped).
    pub fn expect_request(&self, method: &str, call_id: &str, timeout: Duration) -> SipMessage {
        self.take(timeout, |m| {
            m.method() == Some(method) && m.call_id().as_deref() == Some(call_id)
        })
        .unwrap_or_else(|| {
            panic!(
                "phone {}: no {method} for {call_id} within {timeout:?}; unread: {:#?}",
                self.sip.local,
                self.unread()
            )
        })
    }

    /// A response to `request` with our To tag, and optional extra headers and SDP body.
    pub fn response(
        &self,
        request: &SipMessage,
        code: u16,
        reason: &str,
        extra: &str,
        sdp: Option<&str>,
    ) -> String {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for via in request.headers("via") {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        for name in ["From", "Call-ID", "CSeq"] {
            if let Some(value) = request.header(name) {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        let to = request.header("To").unwrap_or_default();
        if request.to_tag().is_some() || code == 100 {
            out.push_str(&format!("To: {to}\r\n"));
        } else {
            out.push_str(&format!("To: {to};tag={}\r\n", self.tag));
        }
        out.push_str(extra);
        match sdp {
            Some(body) => out.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        out
    }

    /// 180 Ringing to the INVITE.
    pub fn ring(&self, invite: &SipMessage) {
        self.sip
            .send(self.response(invite, 180, "Ringing", "", None));
    }

    /// 200 OK with an SDP answer (PCMU to `rtp_port` on loopback); waits for the engine's ACK.
    pub fn answer(&self, invite: &SipMessage, rtp_port: u16) -> SipMessage {
        let sdp = format!(
            "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        );
        let contact = format!("Contact: <sip:phone@{}>\r\n", self.sip.local);
        self.sip
            .send(self.response(invite, 200, "OK", &contact, Some(&sdp)));
        let call_id = invite.call_id().unwrap_or_default();
        self.expect_request("ACK", &call_id, Duration::from_secs(5))
    }

    /// A final non-2xx (486, 603 …) to the INVITE; waits for the engine's ACK (same branch).
    pub fn reject(&self, invite: &SipMessage, code: u16, reason: &str) -> SipMessage {
        self.sip.send(self.response(invite, code, reason, "", None));
        let call_id = invite.call_id().unwrap_or_default();
        let ack = self.expect_request("ACK", &call_id, Duration::from_secs(5));
        assert_eq!(
            ack.header("Via").and_then(|v| sip::param(&v, "branch")),
            invite.header("Via").and_then(|v| sip::param(&v, "branch")),
            "the ACK for a non-2xx final uses the INVITE's branch"
        );
        ack
    }

    /// Expects the engine's CANCEL for `invite` (same branch), answers 200 to it and 487 to the
    /// INVITE, and expects the ACK for the 487. Returns when the CANCEL arrived.
    pub fn expect_cancel(&self, invite: &SipMessage, timeout: Duration) -> Instant {
        let call_id = invite.call_id().unwrap_or_default();
        let cancel = self.expect_request("CANCEL", &call_id, timeout);
        let branch = |m: &SipMessage| m.header("Via").and_then(|v| sip::param(&v, "branch"));
        assert_eq!(
            branch(&cancel),
            branch(invite),
            "CANCEL must carry the INVITE's branch"
        );
        assert_eq!(cancel.cseq().map(|c| c.0), invite.cseq().map(|c| c.0));
        self.sip.send(sip::response_to(&cancel, 200, "OK"));
        self.sip
            .send(self.response(invite, 487, "Request Terminated", "", None));
        let ack = self.expect_request("ACK", &call_id, Duration::from_secs(5));
        assert_eq!(branch(&ack), branch(invite), "ACK for the 487");
        cancel.at
    }

    /// The phone hangs up an answered call: BYE to the engine's Contact; expects 200.
    pub fn hang_up(&self, invite: &SipMessage) {
        let contact = invite.header("Contact").unwrap_or_default();
        let target = contact
            .trim()
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or_default()
            .to_string();
        let call_id = invite.call_id().unwrap_or_default();
        let bye = format!(
            "BYE {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};rport;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: {to};tag={tag}\r\n\
             To: {from}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            local = self.sip.local,
            branch = sip::branch(),
            to = invite.header("To").unwrap_or_default(),
            from = invite.header("From").unwrap_or_default(),
            tag = self.tag,
        );
        self.sip.send(bye);
        let reply = self
            .take(Duration::from_secs(5), |m| {
                m.call_id().as_deref() == Some(call_id.as_str())
                    && m.cseq().is_some_and(|(_, method)| method == "BYE")
                    && m.is_final()
            })
            .unwrap_or_else(|| panic!("no answer to the phone's BYE: {:#?}", self.unread()));
        assert_eq!(reply.status(), Some(200), "{reply:?}");
    }
}

/// POST /api/agents/{agent}/{op}; asserts 200 and returns the agent's new state.
pub fn agent_op(engine: &Engine, agent: &str, op: &str) -> String {
    let (status, body) = http::post_json(
        engine.http_addr(),
        &format!("/api/agents/{agent}/{op}"),
        None,
    );
    assert_eq!(status, 200, "{op} {agent}: {body}");
    body["agent"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The agent as `GET /api/agents` shows it.
pub fn agent_view(engine: &Engine, agent: &str) -> serde_json::Value {
    let all = http::get_json(engine.http_addr(), "/api/agents");
    all["agents"]
        .as_array()
        .and_then(|list| list.iter().find(|a| a["id"] == agent).cloned())
        .unwrap_or_else(|| panic!("no agent {agent} in /api/agents: {all}"))
}

pub fn agent_state(engine: &Engine, agent: &str) -> String {
    agent_view(engine, agent)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls /api/agents until the agent is in `state`; panics with its history otherwise.
pub fn wait_agent_state(engine: &Engine, agent: &str, state: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if agent_state(engine, agent) == state {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "agent {agent} not {state} within {timeout:?}: now {}, states so far {:?}",
                agent_view(engine, agent),
                agent_states(engine, agent)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The agent's states in order, from the engine's `event="agent"` lines.
pub fn agent_states(engine: &Engine, agent: &str) -> Vec<String> {
    logs::events(engine)
        .iter()
        .filter(|e| e.is_event("agent") && e.field("agent").as_deref() == Some(agent))
        .filter_map(|e| e.field("state"))
        .collect()
}

/// The queue as `GET /api/queues` shows it.
pub fn queue_view(engine: &Engine, queue: &str) -> serde_json::Value {
    let all = http::get_json(engine.http_addr(), "/api/queues");
    all["queues"][queue].clone()
}

/// Waits (the engine logs a ring just after sending the INVITE) until the call's rings are
/// `expected` (agent, agent Call-ID), in order; panics with what was logged otherwise.
pub fn assert_rings(engine: &Engine, call_id: &str, expected: &[(&str, &str)]) {
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(a, c)| (a.to_string(), c.to_string()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let got = rings(engine, call_id);
        if got == want {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "call {call_id}: rings {got:?}, expected {want:?}; call log:\n{}",
                logs::call_summary(engine, call_id)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The call's `event="ring"` lines (agent, agent_call_id).
pub fn rings(engine: &Engine, call_id: &str) -> Vec<(String, String)> {
    logs::call_events(engine, call_id, "ring")
        .iter()
        .map(|e| {
            (
                e.field("agent").unwrap_or_default(),
                e.field("agent_call_id").unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for the call's first line with `event = name` whose fields satisfy `want`.
pub fn wait_call_event(
    engine: &Engine,
    call_id: &str,
    name: &str,
    timeout: Duration,
    want: impl Fn(&LogEvent) -> bool,
) -> LogEvent {
    logs::wait_for(engine, timeout, |e| {
        e.call_id.as_deref() == Some(call_id) && e.is_event(name) && want(e)
    })
    .unwrap_or_else(|| {
        panic!(
            "call {call_id}: no event={name} as expected within {timeout:?}; call log:\n{}",
            logs::call_summary(engine, call_id)
        )
    })
}

/// The call's `event="play"` prompt lists, in order.
pub fn played(engine: &Engine, call_id: &str) -> Vec<Vec<String>> {
    logs::call_events(engine, call_id, "play")
        .iter()
        .map(LogEvent::prompts)
        .collect()
}
