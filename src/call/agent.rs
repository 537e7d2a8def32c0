//! The agent leg: our B2BUA as user-agent client toward an agent's phone (RFC 3261 §13.2,
//! §9.1 CANCEL, §15 BYE). The caller's task owns its agent legs; the endpoint routes their
//! messages here by the leg's own Call-ID.
//!
//! Rings come from the ACD ([`AcdNotice::Ring`]); the leg reports the answer or the failure back
//! ([`AcdCommand::Answered`] / [`AcdCommand::LegFailed`]) and bridges the media only when the
//! ACD confirms with [`AcdNotice::Connected`] — so a ring that timed out in the same instant
//! never connects.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use tracing::{debug, info, warn};

use super::CallerLeg;
use super::dialog::Dialog;
use crate::acd::LegFailure;
use crate::acd::service::AcdCommand;
use crate::logging::Throttle;
use crate::media::rtp_ports::{Leg, RtpPort};
use crate::media::sdp::{self, Offer};
use crate::sip::message::{
    HeaderName, Headers, Method, Request, Response, write_host, write_request,
};
use crate::sip::reply::{ALLOW, contact_value, random_token, via_value};
use crate::sip::transaction::{Action, ClientInviteEvent, InviteClient, NonInviteClient};
use crate::sip::transport::Flow;
use crate::sip::validate::RequestInfo;

/// Where an agent leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AgentLegState {
    /// INVITE sent, nothing heard yet.
    Calling,
    /// A provisional response arrived (the phone rings).
    Ringing,
    /// 2xx received and ACKed; waiting for the ACD to confirm.
    Answered,
    /// Bridged with the caller.
    Connected,
    /// We sent CANCEL (or want to, once a provisional arrives).
    Cancelling,
    /// We sent BYE; waiting for its answer.
    Ending,
    /// Nothing left to do.
    Done,
}

pub(super) struct AgentLeg {
    pub agent: String,
    pub call_id: Bytes,
    pub flow: Flow,
    pub state: AgentLegState,
    uri: Bytes,
    from: Bytes,
    local_tag: String,
    via: Bytes,
    to: Bytes,
    txn: InviteClient,
    dialog: Option<Dialog>,
    /// Our RTP port toward the agent (moves to the media task on bridge).
    pub rtp: Option<RtpPort>,
    /// That port, for SDP we send later.
    sdp_port: u16,
    pub answer: Option<Offer>,
    cancel: Option<NonInviteClient>,
    bye: Option<NonInviteClient>,
    /// The ACD already knows this leg is over (failure reported or ring withdrawn).
    reported: bool,
    /// The agent hung up after answering, before the ACD confirmed the answer: when the
    /// confirmation comes, the caller's call ends as if the agent had hung up after the bridge.
    hung_up_early: bool,
}

/// Where to send an agent's INVITE: its URI and the transport flow.
pub(super) struct AgentTarget {
    pub uri: String,
    pub flow: Flow,
}

/// A static agent URI's address: `sip:user@192.0.2.1:5070` → 192.0.2.1:5070. Host names are
/// not resolved on the call path (see the README: give static agents an IP address).
pub(super) fn static_target(uri: &str) -> Option<AgentTarget> {
    // Outgoing TCP connections are not supported yet; UDP works for every SIP phone.
    if uri.to_ascii_lowercase().contains("transport=tcp") {
        return None;
    }
    let peer = crate::sip::headers::contact_socket_addr(uri)?;
    Some(AgentTarget {
        uri: uri.to_string(),
        flow: Flow::Udp { peer },
    })
}

/// A display name is a quoted-string: no quotes or backslashes inside, kept short.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .take(60)
        .collect()
}

impl AgentLeg {
    /// Builds and sends the INVITE to `target` for `agent`.
    #[allow(clippy::too_many_arguments)]
    fn start(
        leg: &CallerLeg,
        agent: &str,
        target: AgentTarget,
        rtp: RtpPort,
        display: &str,
        caller_user: &str,
        queue: &str,
        topic: Option<&str>,
        now: Instant,
    ) -> (AgentLeg, Bytes) {
        let config = leg.endpoint.config();
        let mut call_id = BytesMut::with_capacity(25);
        call_id.extend_from_slice(random_token().as_bytes());
        call_id.extend_from_slice(b"@zentrale");
        let call_id = call_id.freeze();
        let local_tag = random_token();
        let transport = target.flow.transport_name();
        let advertised = config.advertised;
        let via = via_value(transport, advertised);
        let mut from = BytesMut::with_capacity(48 + display.len() + caller_user.len());
        from.put_u8(b'"');
        from.extend_from_slice(quoted(display).as_bytes());
        from.extend_from_slice(b"\" <sip:");
        let user_at = from.len();
        from.extend(
            caller_user
                .bytes()
                .filter(|c| c.is_ascii_alphanumeric() || b"+-_.".contains(c)),
        );
        if from.len() == user_at {
            from.extend_from_slice(b"anonymous");
        }
        from.put_u8(b'@');
        write_host(&mut from, advertised.ip());
        from.put_u8(b'>');
        let from = from.freeze();
        let mut to = BytesMut::with_capacity(target.uri.len() + 2);
        to.put_u8(b'<');
        to.extend_from_slice(target.uri.as_bytes());
        to.put_u8(b'>');
        let to = to.freeze();
        let uri = Bytes::from(target.uri.clone());
        let mut headers = Headers(Vec::with_capacity(14));
        headers.push(HeaderName::Via, via.clone());
        headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        let mut from_tagged = BytesMut::with_capacity(from.len() + 5 + local_tag.len());
        from_tagged.extend_from_slice(&from);
        from_tagged.extend_from_slice(b";tag=");
        from_tagged.extend_from_slice(local_tag.as_bytes());
        headers.push(HeaderName::From, from_tagged.freeze());
        headers.push(HeaderName::To, to.clone());
        headers.push(HeaderName::CallId, call_id.clone());
        headers.push(HeaderName::CSeq, Bytes::from_static(b"1 INVITE"));
        let tcp = matches!(target.flow, Flow::Tcp { .. });
        headers.push(
            HeaderName::Contact,
            contact_value("zentrale", advertised, tcp),
        );
        headers.push(HeaderName::Allow, Bytes::from_static(ALLOW.as_bytes()));
        headers.push(
            HeaderName::Other("User-Agent".into()),
            config.user_agent.clone(),
        );
        headers.push(
            HeaderName::Other("X-Zentrale-Queue".into()),
            Bytes::copy_from_slice(queue.as_bytes()),
        );
        if let Some(topic) = topic {
            headers.push(
                HeaderName::Other("X-Zentrale-Topic".into()),
                Bytes::copy_from_slice(topic.as_bytes()),
            );
        }
        headers.push(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        let body = leg.agent_offer(rtp.port);
        let invite = write_request(&Request {
            method: Method::Invite,
            uri: uri.clone(),
            headers,
            body,
        });
        let txn = InviteClient::new(
            config.timers,
            target.flow.is_reliable(),
            now,
            invite.clone(),
        );
        let agent_leg = AgentLeg {
            agent: agent.to_string(),
            call_id,
            flow: target.flow,
            state: AgentLegState::Calling,
            uri,
            from,
            local_tag,
            via,
            to,
            txn,
            dialog: None,
            sdp_port: rtp.port,
            rtp: Some(rtp),
            answer: None,
            cancel: None,
            bye: None,
            reported: false,
            hung_up_early: false,
        };
        (agent_leg, invite)
    }

    /// CANCEL (§9.1): same Request-URI, Call-ID, From, To and Via branch as the INVITE.
    fn cancel_request(&self) -> Bytes {
        let mut headers = Headers(Vec::with_capacity(8));
        headers.push(HeaderName::Via, self.via.clone());
        headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        headers.push(HeaderName::From, self.tagged_from());
        headers.push(HeaderName::To, self.to.clone());
        headers.push(HeaderName::CallId, self.call_id.clone());
        headers.push(HeaderName::CSeq, Bytes::from_static(b"1 CANCEL"));
        write_request(&Request {
            method: Method::Cancel,
            uri: self.uri.clone(),
            headers,
            body: Bytes::new(),
        })
    }

    /// The ACK for a non-2xx final (§17.1.1.3): the INVITE's branch, the response's To.
    fn non2xx_ack(&self, response: &Response) -> Bytes {
        let mut headers = Headers(Vec::with_capacity(7));
        headers.push(HeaderName::Via, self.via.clone());
        headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        headers.push(HeaderName::From, self.tagged_from());
        headers.push(
            HeaderName::To,
            response
                .headers
                .get(&HeaderName::To)
                .cloned()
                .unwrap_or_else(|| self.to.clone()),
        );
        headers.push(HeaderName::CallId, self.call_id.clone());
        headers.push(HeaderName::CSeq, Bytes::from_static(b"1 ACK"));
        write_request(&Request {
            method: Method::Ack,
            uri: self.uri.clone(),
            headers,
            body: Bytes::new(),
        })
    }

    fn tagged_from(&self) -> Bytes {
        let mut from = self.from.to_vec();
        from.extend_from_slice(b";tag=");
        from.extend_from_slice(self.local_tag.as_bytes());
        Bytes::from(from)
    }

    /// Still has messages to send or absorb (the call task lives on until none has).
    pub fn busy(&self) -> bool {
        self.state != AgentLegState::Done
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.txn.next_deadline(),
            self.cancel.as_ref().and_then(|c| c.next_deadline()),
            self.bye.as_ref().and_then(|b| b.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

fn failure_name(failure: LegFailure) -> &'static str {
    match failure {
        LegFailure::Busy => "busy",
        LegFailure::Declined => "declined",
        LegFailure::NoAnswer => "no_answer",
        LegFailure::Local => "local",
    }
}

/// How a failed agent leg counts for the ACD.
fn failure_of(status: u16) -> LegFailure {
    match status {
        486 | 600 => LegFailure::Busy,
        408 | 480 => LegFailure::NoAnswer,
        _ => LegFailure::Declined,
    }
}

impl CallerLeg {
    /// Our SDP offer toward an agent from RTP port `port`: the caller's codec first (PCMU when
    /// the caller offered none), so the relay rarely transcodes.
    fn agent_offer(&self, port: u16) -> Bytes {
        let first = self
            .offer
            .as_ref()
            .and_then(|o| o.codecs.first())
            .map_or(sdp::Codec::Pcmu, |c| c.1);
        sdp::offer(
            self.endpoint.rtp_pool().ip(),
            port,
            self.sdp_session_id,
            1,
            first,
        )
    }

    /// Where the agent's phone is right now.
    fn agent_target(&self, agent: &str) -> Option<AgentTarget> {
        let definition = self.rules.rules.agents.get(agent)?;
        match &definition.reach {
            crate::rules::model::Reach::Uri(uri) => static_target(uri),
            crate::rules::model::Reach::Registration { .. } => self
                .endpoint
                .registered_target(agent)
                .map(|(uri, flow)| AgentTarget { uri, flow }),
        }
    }

    /// The ACD picked `agent` for this caller: place the agent leg.
    pub(super) fn ring_agent(
        &mut self,
        agent: &str,
        queue: &str,
        (freed_at, trigger): (Instant, &str),
        now: Instant,
    ) {
        let Some(call) = self.acd_call else { return };
        let failed = |leg: &Self, why: &str, failure: LegFailure| {
            // Out of ports or descriptors, this fires for every waiting caller and every
            // agent: one line per second.
            static NOT_PLACED: Throttle = Throttle::new(1);
            if let Some(skipped) = NOT_PLACED.allow() {
                warn!(%agent, why, skipped, "agent leg not placed");
            }
            leg.endpoint.acd().send(AcdCommand::LegFailed {
                call,
                agent: agent.to_string(),
                failure,
            });
        };
        let Some(target) = self.agent_target(agent) else {
            failed(
                self,
                "no address for the agent (phone not registered, or its uri is not sip:user@IP:port)",
                LegFailure::Busy,
            );
            self.ring_ended(agent, "unreachable");
            // Nobody can ring this phone until it registers again (or the rules change).
            self.endpoint.acd().send(AcdCommand::Agent {
                agent: agent.to_string(),
                op: crate::acd::service::AgentOp::Reachable(false),
                reply: None,
            });
            return;
        };
        let rtp = match self.endpoint.rtp_pool().allocate(Leg::Agent) {
            Ok(rtp) => rtp,
            // Our shortage, not the agent's: the ACD holds this caller back for a moment
            // instead of offering it to every other agent at once.
            Err(e) => return failed(self, &e.to_string(), LegFailure::Local),
        };
        let queue_name = self
            .rules
            .rules
            .queues
            .get(queue)
            .map_or(queue, |q| q.name.as_str())
            .to_string();
        let caller = self.facts.caller.clone().unwrap_or_default();
        let shown = if caller.is_empty() {
            "anonym"
        } else {
            caller.as_str()
        };
        let display = format!("{queue_name} – {shown}");
        let topic = self.topic.clone();
        let (agent_leg, invite) = AgentLeg::start(
            self,
            agent,
            target,
            rtp,
            &display,
            &caller,
            queue,
            topic.as_deref(),
            now,
        );
        if let Some(tx) = self.self_tx.upgrade() {
            self.endpoint.register_leg(agent_leg.call_id.clone(), tx);
        }
        self.endpoint.send(&agent_leg.flow, invite);
        self.endpoint
            .acd()
            .latency
            .record(trigger, Instant::now().saturating_duration_since(freed_at));
        debug!(event = "ring", %agent, %queue, agent_call_id = %String::from_utf8_lossy(&agent_leg.call_id), "ringing agent");
        self.emit(crate::events::CallEventKind::Ring {
            agent: agent.to_string(),
            queue: queue.to_string(),
        });
        self.agent_legs.push(agent_leg);
    }

    fn ring_ended(&self, agent: &str, reason: &str) {
        self.emit(crate::events::CallEventKind::RingEnded {
            agent: agent.to_string(),
            reason: reason.to_string(),
        });
    }

    fn agent_leg_mut(&mut self, call_id: &[u8]) -> Option<&mut AgentLeg> {
        self.agent_legs.iter_mut().find(|l| l.call_id == call_id)
    }

    pub(super) fn is_agent_leg(&self, call_id: &[u8]) -> bool {
        self.agent_legs.iter().any(|l| l.call_id == call_id)
    }

    /// The ACD (or the caller's end) withdraws the ring: CANCEL before answer, BYE after.
    pub(super) fn cancel_agent(&mut self, agent: &str, reason: &str, now: Instant) {
        let config = self.endpoint.config().clone();
        let ringing = self.agent_legs.iter().any(|l| {
            l.agent == agent && matches!(l.state, AgentLegState::Calling | AgentLegState::Ringing)
        });
        if ringing {
            self.emit(crate::events::CallEventKind::RingEnded {
                agent: agent.to_string(),
                reason: reason.to_string(),
            });
        }
        let Some(leg) = self
            .agent_legs
            .iter_mut()
            .find(|l| l.agent == agent && l.busy() && l.state != AgentLegState::Ending)
        else {
            return;
        };
        leg.reported = true;
        match leg.state {
            AgentLegState::Calling => {
                // §9.1: no CANCEL before a provisional; send it when one arrives.
                leg.state = AgentLegState::Cancelling;
            }
            AgentLegState::Ringing => {
                let cancel = leg.cancel_request();
                self.endpoint.send(&leg.flow, cancel.clone());
                leg.cancel = Some(NonInviteClient::new(
                    config.timers,
                    leg.flow.is_reliable(),
                    now,
                    cancel,
                ));
                leg.state = AgentLegState::Cancelling;
                debug!(%agent, "agent leg cancelled");
            }
            AgentLegState::Answered | AgentLegState::Connected => {
                Self::bye_agent(&self.endpoint, leg, now);
            }
            AgentLegState::Cancelling | AgentLegState::Ending | AgentLegState::Done => {}
        }
    }

    fn bye_agent(endpoint: &crate::sip::endpoint::Endpoint, leg: &mut AgentLeg, now: Instant) {
        let config = endpoint.config();
        let Some(dialog) = leg.dialog.as_mut() else {
            leg.state = AgentLegState::Done;
            return;
        };
        let bye = dialog.make_request(Method::Bye, config, &leg.flow);
        endpoint.send(&leg.flow, bye.clone());
        leg.bye = Some(NonInviteClient::new(
            config.timers,
            leg.flow.is_reliable(),
            now,
            bye,
        ));
        leg.rtp = None;
        leg.state = AgentLegState::Ending;
    }

    /// Ends every agent leg (the caller is gone).
    pub(super) fn end_agent_legs(&mut self, now: Instant) {
        let agents: Vec<String> = self
            .agent_legs
            .iter()
            .filter(|l| l.busy())
            .map(|l| l.agent.clone())
            .collect();
        for agent in agents {
            self.cancel_agent(&agent, "withdrawn", now);
        }
    }

    pub(super) fn on_agent_response(&mut self, response: Response, call_id: &[u8], now: Instant) {
        let endpoint = self.endpoint.clone();
        let config = endpoint.config().clone();
        let acd_call = self.acd_call;
        let Some(leg) = self.agent_leg_mut(call_id) else {
            return;
        };
        let method = response
            .headers
            .get_str(&HeaderName::CSeq)
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string();
        match method.as_str() {
            "CANCEL" => {
                if let Some(c) = leg.cancel.as_mut() {
                    c.on_response(now, response.status);
                }
                return;
            }
            "BYE" => {
                if let Some(b) = leg.bye.as_mut()
                    && b.on_response(now, response.status)
                    && response.status >= 200
                {
                    leg.state = AgentLegState::Done;
                    leg.bye = None;
                }
                return;
            }
            "INVITE" => {}
            _ => return,
        }
        let status = response.status;
        match leg.txn.on_response(now, status) {
            ClientInviteEvent::Provisional => {
                if leg.state == AgentLegState::Calling {
                    leg.state = AgentLegState::Ringing;
                } else if leg.state == AgentLegState::Cancelling && leg.cancel.is_none() {
                    let cancel = leg.cancel_request();
                    endpoint.send(&leg.flow, cancel.clone());
                    leg.cancel = Some(NonInviteClient::new(
                        config.timers,
                        leg.flow.is_reliable(),
                        now,
                        cancel,
                    ));
                }
            }
            ClientInviteEvent::Accepted2xx => {
                if leg.dialog.is_none() {
                    leg.dialog = Some(Dialog::for_uac(
                        leg.call_id.clone(),
                        leg.from.clone(),
                        leg.local_tag.clone(),
                        "zentrale".to_string(),
                        1,
                        &response,
                        leg.uri.clone(),
                    ));
                }
                if let Some(dialog) = leg.dialog.as_mut() {
                    let ack = dialog.make_ack(&config, &leg.flow);
                    endpoint.send(&leg.flow, ack);
                }
                if leg.state == AgentLegState::Calling || leg.state == AgentLegState::Ringing {
                    leg.answer = sdp::parse_offer(&response.body).ok();
                    if leg.answer.is_none() {
                        warn!(agent = %leg.agent, "agent answered without usable SDP; hanging up the agent leg");
                        leg.reported = true;
                        let agent = leg.agent.clone();
                        Self::bye_agent(&endpoint, leg, now);
                        if let Some(call) = acd_call {
                            endpoint.acd().send(AcdCommand::LegFailed {
                                call,
                                agent: agent.clone(),
                                failure: LegFailure::Declined,
                            });
                        }
                        self.ring_ended(&agent, "declined");
                        return;
                    }
                    leg.state = AgentLegState::Answered;
                    debug!(agent = %leg.agent, "agent answered");
                    if let Some(call) = acd_call {
                        endpoint.acd().send(AcdCommand::Answered {
                            call,
                            agent: leg.agent.clone(),
                        });
                    }
                } else if leg.state == AgentLegState::Cancelling {
                    // The answer crossed our CANCEL: end the session right away (§9.1).
                    Self::bye_agent(&endpoint, leg, now);
                }
            }
            ClientInviteEvent::FinalNon2xx => {
                let ack = leg.non2xx_ack(&response);
                if let Some(out) = leg.txn.set_ack(ack) {
                    endpoint.send(&leg.flow, out);
                }
                leg.rtp = None;
                let was_cancelled = leg.state == AgentLegState::Cancelling;
                leg.state = AgentLegState::Done;
                if !was_cancelled && !leg.reported {
                    leg.reported = true;
                    info!(agent = %leg.agent, status, "agent leg failed");
                    let failure = failure_of(status);
                    if let Some(call) = acd_call {
                        endpoint.acd().send(AcdCommand::LegFailed {
                            call,
                            agent: leg.agent.clone(),
                            failure,
                        });
                    }
                    let agent = leg.agent.clone();
                    self.ring_ended(&agent, failure_name(failure));
                }
            }
            ClientInviteEvent::ResendAck(ack) => endpoint.send(&leg.flow, ack),
            ClientInviteEvent::Absorb => {}
        }
    }

    /// The ACD confirmed the answer: bridge caller and agent.
    pub(super) fn connect_agent(&mut self, agent: &str, now: Instant) {
        // An agent who answered and hung up before this confirmation came is connected too:
        // the ACD counts the call as theirs, so it ends as an answered call the agent hung up
        // (the caller must not wait on, silently, for an agent the ACD counts as busy).
        let Some(index) = self.agent_legs.iter().position(|l| {
            l.agent == agent && (l.state == AgentLegState::Answered || l.hung_up_early)
        }) else {
            return;
        };
        let hung_up = self.agent_legs[index].hung_up_early;
        self.connected_agent = Some(agent.to_string());
        self.waiting = None;
        self.after_playback = super::AfterPlayback::Nothing;
        debug!(event = "connected", %agent, already_hung_up = hung_up, "caller connected to agent");
        self.emit(crate::events::CallEventKind::Connected {
            agent: agent.to_string(),
        });
        if hung_up {
            self.end_reason = "agent hung up".into();
            self.hang_up(now, "agent hung up");
            return;
        }
        let leg = &mut self.agent_legs[index];
        leg.state = AgentLegState::Connected;
        if let (Some(port), Some(answer)) = (leg.rtp.take(), leg.answer.clone()) {
            self.bridge_media(port, &answer, now);
        }
    }

    /// Requests inside an agent leg's dialog (BYE from the agent, re-INVITE, OPTIONS …).
    pub(super) fn on_agent_request(
        &mut self,
        request: Request,
        info: RequestInfo,
        flow: Flow,
        now: Instant,
    ) {
        let endpoint = self.endpoint.clone();
        let Some(leg) = self.agent_leg_mut(&info.call_id) else {
            return;
        };
        let status = match request.method {
            Method::Ack => return,
            Method::Bye => 200,
            // Session refresh or hold from the agent's phone: accepted, media unchanged.
            Method::Invite | Method::Update | Method::Options | Method::Info => 200,
            _ => 405,
        };
        let mut response = endpoint.response(&request, status, "OK", Some(&leg.local_tag));
        if status == 405 {
            response.reason = Bytes::from_static(b"Method Not Allowed");
            response
                .headers
                .push(HeaderName::Allow, Bytes::from_static(ALLOW.as_bytes()));
        }
        if request.method == Method::Invite
            && let Some(port) = self.rtp_port_for_agent_sdp()
        {
            // A re-INVITE needs an answer with SDP; ours is unchanged.
            response.headers.push(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            response.body = self.agent_offer(port);
        }
        self.endpoint
            .send(&flow, crate::sip::message::write_response(&response));
        if request.method == Method::Bye {
            let Some(leg) = self.agent_leg_mut(&info.call_id) else {
                return;
            };
            let was_connected = leg.state == AgentLegState::Connected;
            leg.hung_up_early = leg.state == AgentLegState::Answered;
            let agent = leg.agent.clone();
            leg.state = AgentLegState::Done;
            leg.bye = None;
            if was_connected {
                debug!(%agent, "agent hung up");
                self.end_reason = "agent hung up".into();
                self.hang_up(now, "agent hung up");
            }
        }
    }

    /// The port in the SDP we gave the agent (for re-INVITE answers).
    fn rtp_port_for_agent_sdp(&self) -> Option<u16> {
        self.agent_legs
            .iter()
            .find(|l| l.state == AgentLegState::Connected)
            .map(|l| l.sdp_port)
    }

    /// Timers of the agent legs: INVITE retransmissions, Timer B, CANCEL and BYE.
    pub(super) fn on_agent_timers(&mut self, now: Instant) {
        let endpoint = self.endpoint.clone();
        let acd_call = self.acd_call;
        let mut unanswered = Vec::new();
        for leg in &mut self.agent_legs {
            for action in leg.txn.poll(now) {
                match action {
                    Action::Send(bytes) => endpoint.send(&leg.flow, bytes),
                    Action::Timeout => {
                        if matches!(
                            leg.state,
                            AgentLegState::Calling | AgentLegState::Cancelling
                        ) {
                            info!(agent = %leg.agent, "agent phone did not answer the INVITE (Timer B)");
                            leg.state = AgentLegState::Done;
                            leg.rtp = None;
                            if !leg.reported {
                                leg.reported = true;
                                unanswered.push(leg.agent.clone());
                                if let Some(call) = acd_call {
                                    endpoint.acd().send(AcdCommand::LegFailed {
                                        call,
                                        agent: leg.agent.clone(),
                                        failure: LegFailure::NoAnswer,
                                    });
                                }
                            }
                        }
                    }
                    Action::Terminated => {}
                }
            }
            if let Some(cancel) = leg.cancel.as_mut() {
                for action in cancel.poll(now) {
                    match action {
                        Action::Send(bytes) => endpoint.send(&leg.flow, bytes),
                        Action::Timeout | Action::Terminated => {
                            // §9.1: no final answer to our INVITE after the CANCEL: give up.
                            if leg.state == AgentLegState::Cancelling {
                                leg.state = AgentLegState::Done;
                                leg.rtp = None;
                            }
                        }
                    }
                }
            }
            if let Some(bye) = leg.bye.as_mut() {
                for action in bye.poll(now) {
                    match action {
                        Action::Send(bytes) => endpoint.send(&leg.flow, bytes),
                        Action::Timeout | Action::Terminated => leg.state = AgentLegState::Done,
                    }
                }
            }
        }
        for agent in unanswered {
            self.ring_ended(&agent, "no_answer");
        }
        self.release_agent_legs(false);
    }

    /// Agent legs that are over (`all`: every leg, the call is ending) leave the endpoint's
    /// table, and with them the sender of this call's input channel each entry holds (left
    /// there, an entry kept the channel alive for good). Their stray retransmissions are then
    /// absorbed as for any unknown Call-ID.
    pub(super) fn release_agent_legs(&mut self, all: bool) {
        let endpoint = &self.endpoint;
        self.agent_legs.retain(|leg| {
            let keep = !all && leg.busy();
            if !keep {
                endpoint.remove_leg(&leg.call_id);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_targets_need_an_ip_address() {
        let t = static_target("sip:agent7@127.0.0.1:5077").expect("target");
        assert_eq!(t.flow.peer(), "127.0.0.1:5077".parse().expect("addr"));
        let t = static_target("sip:3641490107@192.0.2.7").expect("target");
        assert_eq!(t.flow.peer().port(), 5060);
        let t = static_target("sip:x@[::1]:5080;user=phone").expect("v6");
        assert_eq!(t.flow.peer(), "[::1]:5080".parse().expect("addr"));
        assert!(static_target("sip:3641490107@pbx.jena.invalid").is_none());
        assert!(static_target("tel:+49364149010").is_none());
        assert!(static_target("sip:x@127.0.0.1;transport=tcp").is_none());
    }

    #[test]
    fn our_offer_puts_the_callers_law_first() {
        let ip: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        let sdp = sdp::offer(ip, 40000, 7, 1, sdp::Codec::Pcma);
        let sdp = std::str::from_utf8(&sdp).expect("ASCII");
        assert!(sdp.contains("m=audio 40000 RTP/AVP 8 0 101\r\n"));
        let parsed = sdp::parse_offer(sdp.as_bytes()).expect("our own SDP parses");
        assert_eq!(parsed.codecs[0].1, sdp::Codec::Pcma);
        assert_eq!(parsed.telephone_event, Some(101));
    }

    #[test]
    fn failures_map_to_acd_reasons() {
        assert_eq!(failure_of(486), LegFailure::Busy);
        assert_eq!(failure_of(603), LegFailure::Declined);
        assert_eq!(failure_of(480), LegFailure::NoAnswer);
        assert_eq!(failure_of(500), LegFailure::Declined);
    }
}
