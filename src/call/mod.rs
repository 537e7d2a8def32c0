//! One task per call: the caller leg as a user-agent server of our B2BUA (RFC 3261 §13.3, §12,
//! §15; RFC 4028 session timers).
//!
//! The task owns everything about its call: the INVITE server transaction, the 2xx
//! retransmission until ACK, the dialog, in-dialog transactions, the RTP port and the session
//! timer. The endpoint hands it messages through a bounded channel; the task never holds a
//! lock across an await. All timer logic lives in the pure state machines of
//! [`crate::sip::transaction`]; this task only sleeps until their next deadline.

mod agent;
mod dialog;
mod feature;
pub mod menu;
mod queue;
mod route;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::acd::CallId;
use crate::acd::service::AcdNotice;
use crate::events::{CallEvent, CallEventKind};
use crate::logging::Throttle;
use crate::media::rtp_ports::{Leg, RtpPort};
use crate::media::sdp::{self, Offer, SdpError};
use crate::media::session::{DtmfSource, MediaCommand, MediaEvent, MediaHandle};
use crate::rules::active::ActiveRules;
use crate::rules::{CallFacts, MenuInput};
use crate::shutdown::Shutdown;
use crate::sip::endpoint::{Endpoint, LingeringCall};
use crate::sip::message::{HeaderName, Method, Request, Response, write_response};
use crate::sip::reply::{ALLOW, SUPPORTED, random_token, reason_phrase};
use crate::sip::transaction::{
    AckDisposition, Action, InviteServer, NonInviteClient, NonInviteServer, Uas2xxRetransmitter,
};
use crate::sip::transport::Flow;
use crate::sip::validate::RequestInfo;
use dialog::Dialog;
use menu::{Answer, Collect};

/// What the endpoint hands to a running call.
#[derive(Debug)]
pub enum CallInput {
    Request {
        request: Request,
        info: RequestInfo,
        flow: Flow,
    },
    Response {
        response: Response,
        flow: Flow,
    },
    /// The ACD's answer to a feature code this call dialled.
    Feature(Result<crate::acd::service::AgentView, crate::acd::AcdError>),
}

/// The sending end of a call's (or a keep-alive probe's) inbox. Inputs travel boxed: a
/// `CallInput` is ~300 bytes, and a channel allocates its slots 32 at a time, so each call's
/// inbox took ~10 KB up front and every message was copied into and out of a slot that size.
pub type CallSender = mpsc::Sender<Box<CallInput>>;

/// The INVITE that starts a call.
pub struct CallStart {
    pub request: Request,
    pub info: RequestInfo,
    /// The Request-URI's user part: the number the caller dialled.
    pub dialled: String,
    pub flow: Flow,
    /// The rules in force at the INVITE; the call keeps them even if they are reloaded.
    pub rules: Arc<ActiveRules>,
    /// The call's own input channel, for registering its agent legs with the endpoint.
    pub self_tx: mpsc::WeakSender<Box<CallInput>>,
}

/// Starts the call's task. The endpoint has already registered `rx`'s sender under the Call-ID.
pub fn spawn(endpoint: Arc<Endpoint>, start: CallStart, rx: mpsc::Receiver<Box<CallInput>>) {
    let call_id = start.info.call_id.clone();
    let span = info_span!("call", call_id = String::from_utf8_lossy(&call_id).as_ref());
    // Boxed first: the call's future is ~2.8 KB (release build, 2026-11), and each move on
    // the way into the runtime would copy all of it.
    tokio::spawn(
        Box::pin(async move {
            // The guard deregisters the call even if the task panics, so the call count and
            // the Call-ID table can never leak.
            let mut guard = EndGuard {
                endpoint: endpoint.clone(),
                call_id,
                linger: None,
            };
            let mut leg = CallerLeg::new(endpoint, start);
            guard.linger = leg.run(rx).await;
        })
        .instrument(span),
    );
}

struct EndGuard {
    endpoint: Arc<Endpoint>,
    call_id: Bytes,
    linger: Option<LingeringCall>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.endpoint.call_ended(&self.call_id, self.linger.take());
    }
}

/// Where the caller leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// INVITE received, not answered yet (ringing during `answer_delay`).
    Early,
    /// We sent a final non-2xx; waiting for the ACK (the transaction handles it).
    Rejected,
    /// 2xx sent, retransmitting until ACK.
    Answered,
    /// ACK received: the call is up.
    Confirmed,
    /// We sent BYE and wait for its answer.
    Ending,
    /// Over; the task exits.
    Ended,
}

/// What happens when the current announcement has been played.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterPlayback {
    Nothing,
    /// Music on hold until an agent is free (the ACD comes next).
    Hold(Option<String>),
    HangUp,
}

/// A re-INVITE we answered with 2xx and whose ACK we await.
struct ReInvite {
    cseq: u32,
    branch: Option<String>,
    retransmitter: Uas2xxRetransmitter,
}

/// A non-INVITE request we answered inside the call, kept to absorb its retransmissions.
struct ServerTxn {
    branch: Option<String>,
    method: Method,
    txn: NonInviteServer,
}

struct CallerLeg {
    endpoint: Arc<Endpoint>,
    flow: Flow,
    invite: Request,
    info: RequestInfo,
    state: LegState,
    dialog: Dialog,
    invite_txn: InviteServer,
    ok_retransmitter: Option<Uas2xxRetransmitter>,
    reinvite: Option<ReInvite>,
    server_txns: Vec<ServerTxn>,
    bye: Option<NonInviteClient>,
    bye_response: Option<Bytes>,
    /// The branch of the caller's BYE, so only its retransmissions get `bye_response` again.
    bye_branch: Option<String>,
    rtp: Option<RtpPort>,
    /// Our RTP port (in every SDP we send), also after the socket moved to the media task.
    rtp_port: u16,
    offer: Option<Offer>,
    rules: Arc<ActiveRules>,
    /// The Call-ID as every event of this call names it (made once).
    event_call_id: Arc<str>,
    media: Option<MediaHandle>,
    /// The media task's events, handed to the task loop once media runs.
    media_events: Option<mpsc::Receiver<MediaEvent>>,
    /// What the rules know about this call so far (dialled number, caller, keys).
    facts: CallFacts,
    /// The menu step waiting for a key, if any.
    step: Option<Collect>,
    after_playback: AfterPlayback,
    /// Why the call ended, for the final event.
    end_reason: String,
    sdp_session_id: u64,
    sdp_version: u64,
    answer_at: Option<Instant>,
    /// RFC 4028: when we give up on a session nobody refreshed.
    session_deadline: Option<Instant>,
    session_interval: Option<u32>,
    hangup_requested: bool,
    self_tx: mpsc::WeakSender<Box<CallInput>>,
    /// The topic the rules chose (shown to the agent).
    topic: Option<String>,
    /// The call's number in the ACD, once it joined a queue.
    acd_call: Option<CallId>,
    acd_notices: Option<mpsc::UnboundedReceiver<AcdNotice>>,
    /// Waiting in a queue (not yet connected).
    waiting: Option<queue::Waiting>,
    agent_legs: Vec<agent::AgentLeg>,
    connected_agent: Option<String>,
    /// A feature code waiting for the ACD's answer.
    feature: Option<crate::acd::features::Feature>,
}

impl CallerLeg {
    fn new(endpoint: Arc<Endpoint>, start: CallStart) -> Self {
        let timers = endpoint.config().timers;
        let reliable = start.flow.is_reliable();
        let dialog = Dialog::for_uas(
            &start.request,
            &start.info,
            random_token(),
            start.dialled.clone(),
        );
        let event_call_id: Arc<str> = String::from_utf8_lossy(&start.info.call_id).into();
        let facts = CallFacts {
            dialled: start.dialled,
            caller: caller_number(&start.info.from.uri),
            inputs: Vec::new(),
            queues: Default::default(),
        };
        CallerLeg {
            invite_txn: InviteServer::new(timers, reliable),
            endpoint,
            flow: start.flow,
            invite: start.request,
            info: start.info,
            state: LegState::Early,
            dialog,
            ok_retransmitter: None,
            reinvite: None,
            server_txns: Vec::new(),
            bye: None,
            bye_response: None,
            bye_branch: None,
            rtp: None,
            rtp_port: 0,
            offer: None,
            event_call_id,
            rules: start.rules,
            media: None,
            media_events: None,
            facts,
            step: None,
            after_playback: AfterPlayback::Nothing,
            end_reason: "ended".into(),
            sdp_session_id: rand::random::<u32>() as u64,
            sdp_version: 1,
            answer_at: None,
            session_deadline: None,
            session_interval: None,
            hangup_requested: false,
            self_tx: start.self_tx,
            topic: None,
            acd_call: None,
            acd_notices: None,
            waiting: None,
            agent_legs: Vec::new(),
            connected_agent: None,
            feature: None,
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Box<CallInput>>) -> Option<LingeringCall> {
        let mut shutdown: Shutdown = self.endpoint.shutdown();
        self.start(Instant::now());
        let mut media_events: Option<mpsc::Receiver<MediaEvent>> = None;
        let mut acd_notices: Option<mpsc::UnboundedReceiver<AcdNotice>> = None;
        let mut timer = crate::timer::DeadlineTimer::default();
        // Agent legs may still be cancelling or saying goodbye after the caller is gone.
        let mut ended_reported = false;
        while self.state != LegState::Ended || self.agent_legs.iter().any(|l| l.busy()) {
            // The call ends for the caller now, even while an agent leg still says goodbye:
            // records and metrics must not count that tail as waiting.
            if self.state == LegState::Ended && !ended_reported {
                ended_reported = true;
                self.report_end();
            }
            if let Some(events) = self.media_events.take() {
                media_events = Some(events);
            }
            if let Some(notices) = self.acd_notices.take() {
                acd_notices = Some(notices);
            }
            let acd_notice = async {
                match acd_notices.as_mut() {
                    Some(notices) => notices.recv().await,
                    None => std::future::pending().await,
                }
            };
            let media_event = async {
                match media_events.as_mut() {
                    Some(events) => events.recv().await,
                    None => std::future::pending().await,
                }
            };
            timer.set(self.next_deadline());
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.on_input(*input, Instant::now()),
                    None => break,
                },
                () = timer.fired(), if timer.is_armed() => self.on_timers(Instant::now()),
                Some(event) = media_event => self.on_media_event(event, Instant::now()),
                Some(notice) = acd_notice => self.on_acd_notice(notice, Instant::now()),
                _ = shutdown.hangup(), if !self.hangup_requested => {
                    self.hangup_requested = true;
                    self.hang_up(Instant::now(), "engine shutting down");
                }
            }
        }
        // Whatever happened, the ACD must not keep an agent for this call.
        self.leave_acd(Instant::now());
        // Legs that ended since the last timer pass are still in the endpoint's table.
        self.release_agent_legs(true);
        // The RTP port goes back to the pool now (the media task ends with its handle), not when
        // lingering ends.
        self.media = None;
        self.rtp = None;
        let timers = self.endpoint.config().timers;
        if !ended_reported {
            self.report_end();
        }
        Some(LingeringCall {
            until: Instant::now() + timers.timeout_64t1(),
            bye_response: self.bye_response.take(),
            bye_branch: self.bye_branch.take(),
            invite_branch: self.info.top_via().branch.clone(),
        })
    }

    // ----- start and answer -------------------------------------------------------------

    fn start(&mut self, now: Instant) {
        let config = self.endpoint.config().clone();
        // The shortened number is made only when the `debug` line is logged.
        debug!(
            from = %crate::logging::caller_display(self.info.from.uri.as_str(), config.show_caller_numbers),
            transport = self.flow.transport_name(),
            "incoming call"
        );
        self.emit(CallEventKind::Incoming {
            transport: self.flow.transport_name().into(),
            dialled: self.facts.dialled.clone(),
            caller: self.facts.caller.clone(),
        });
        // RFC 3261 §17.2.1: a 100 only when no other response follows within 200 ms. Answering
        // at once (the default) or refusing, the final response follows in this very step;
        // with an answer delay, 100 and 180 go out now and the 200 later. (One message less
        // per call to send, and for the caller to read.)
        if !config.answer_delay.is_zero() {
            let trying = self.response(&self.invite, 100, "Trying");
            self.send_invite_response(now, trying);
        }

        if !self.invite.body.is_empty() {
            match sdp::parse_offer(&self.invite.body) {
                Ok(offer) => self.offer = Some(offer),
                Err(SdpError::NoCommonCodec) => {
                    return self.reject(
                        now,
                        488,
                        reason_phrase(488),
                        &[(
                            HeaderName::Other("Warning".into()),
                            "305 zentrale \"Only PCMU and PCMA audio are supported\"".into(),
                        )],
                    );
                }
                Err(SdpError::Malformed(why)) => {
                    debug!(why, "unreadable SDP offer");
                    return self.reject(now, 400, "Malformed SDP body", &[]);
                }
            }
        }
        if let Err(min_se) = self.negotiate_session_timer(&config) {
            return self.reject(
                now,
                422,
                reason_phrase(422),
                &[(HeaderName::MinSe, min_se.to_string())],
            );
        }
        match self.endpoint.rtp_pool().allocate(Leg::Caller) {
            Ok(port) => {
                self.rtp_port = port.port;
                self.rtp = Some(port);
            }
            Err(e) => {
                // Once out of ports, every new call ends here: one line per second.
                static NO_PORT: Throttle = Throttle::new(1);
                if let Some(skipped) = NO_PORT.allow() {
                    warn!(skipped, "{e}");
                }
                let retry_after = self.endpoint.retry_after();
                return self.reject(
                    now,
                    503,
                    "Service Unavailable (no media port)",
                    &[retry_after],
                );
            }
        }
        if config.answer_delay.is_zero() {
            self.answer(now);
        } else {
            let ringing = self.response_with_tag(180, reason_phrase(180));
            self.send_invite_response(now, ringing);
            self.answer_at = Some(now + config.answer_delay);
        }
    }

    /// RFC 4028: we take part only when the caller supports timers (then the caller refreshes).
    /// Err(min_se) when the offered interval is below our minimum.
    fn negotiate_session_timer(
        &mut self,
        config: &crate::sip::endpoint::EndpointConfig,
    ) -> Result<(), u32> {
        let supports_timer = self
            .invite
            .headers
            .all(&HeaderName::Supported)
            .flat_map(|v| crate::sip::headers::option_tags(v))
            .any(|t| t == "timer");
        let offered = self
            .invite
            .headers
            .get_str(&HeaderName::SessionExpires)
            .and_then(|v| v.split(';').next()?.trim().parse::<u32>().ok());
        if let Some(offered) = offered
            && offered < config.min_se_secs
        {
            return Err(config.min_se_secs);
        }
        if supports_timer {
            self.session_interval = Some(offered.unwrap_or(config.session_expires_secs));
        }
        Ok(())
    }

    fn arm_session_timer(&mut self, now: Instant) {
        if let Some(interval) = self.session_interval {
            // RFC 4028 §10: the non-refresher sends BYE shortly before expiry.
            let margin = (interval / 3).min(32);
            self.session_deadline = Some(now + Duration::from_secs(u64::from(interval - margin)));
        }
    }

    fn answer(&mut self, now: Instant) {
        self.answer_at = None;
        self.sdp_version += 1;
        let response = self.ok_with_sdp(&self.invite, self.offer.as_ref());
        let bytes = write_response(&response);
        if let Some(out) = self.invite_txn.respond(now, 200, bytes.clone()) {
            self.endpoint.send(&self.flow, out);
        }
        self.ok_retransmitter = Some(Uas2xxRetransmitter::new(
            self.endpoint.config().timers,
            now,
            bytes,
        ));
        self.arm_session_timer(now);
        self.state = LegState::Answered;
        debug!("call answered");
        self.emit(CallEventKind::Answered);
        self.start_media();
        self.decide(now);
    }

    /// A 200 with our SDP (an answer to `offer`, or our offer when the request had none).
    /// Every description we send is a new version (RFC 3264 §8): callers bump `sdp_version`.
    fn ok_with_sdp(&self, request: &Request, offer: Option<&Offer>) -> Response {
        let mut response = self.response(request, 200, "OK");
        self.add_common_headers(&mut response);
        self.add_session_timer(&mut response);
        let (ip, port) = (self.endpoint.rtp_pool().ip(), self.rtp_port);
        let body = sdp::describe(ip, port, self.sdp_session_id, self.sdp_version, offer);
        response.headers.push(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        response.body = body;
        response
    }

    /// A response of this leg: our To tag (where the request had none; never on 100) and our
    /// Server header.
    fn response(&self, request: &Request, status: u16, reason: &str) -> Response {
        self.endpoint
            .response(request, status, reason, Some(&self.dialog.local_tag))
    }

    /// RFC 4028 §9: every 2xx to a session refresh (INVITE or UPDATE) carries the interval.
    fn add_session_timer(&self, response: &mut Response) {
        if let Some(interval) = self.session_interval {
            response.headers.push(
                HeaderName::SessionExpires,
                Bytes::from(format!("{interval};refresher=uac")),
            );
            response
                .headers
                .push(HeaderName::Require, Bytes::from_static(b"timer"));
        }
    }

    fn add_common_headers(&self, response: &mut Response) {
        let contact = self
            .dialog
            .local_contact(self.endpoint.config(), &self.flow);
        response.headers.push(HeaderName::Contact, contact);
        response
            .headers
            .push(HeaderName::Allow, Bytes::from_static(ALLOW.as_bytes()));
        response.headers.push(
            HeaderName::Supported,
            Bytes::from_static(SUPPORTED.as_bytes()),
        );
    }

    fn response_with_tag(&self, status: u16, reason: &str) -> Response {
        let mut response = self.response(&self.invite, status, reason);
        self.add_common_headers(&mut response);
        response
    }

    fn send_invite_response(&mut self, now: Instant, response: Response) {
        let status = response.status;
        if let Some(out) = self
            .invite_txn
            .respond(now, status, write_response(&response))
        {
            self.endpoint.send(&self.flow, out);
        }
    }

    /// Ends the call before answering with a final non-2xx.
    fn reject(&mut self, now: Instant, status: u16, reason: &str, extra: &[(HeaderName, String)]) {
        let mut response = self.response(&self.invite, status, reason);
        for (name, value) in extra {
            response
                .headers
                .push(name.clone(), Bytes::from(value.clone()));
        }
        self.send_invite_response(now, response);
        self.rtp = None;
        self.answer_at = None;
        self.state = LegState::Rejected;
        info!(status, "call rejected");
        self.emit(CallEventKind::Rejected { status });
        self.end_reason = format!("rejected {status}");
        self.check_rejected_done();
    }

    fn check_rejected_done(&mut self) {
        use crate::sip::transaction::InviteServerState as S;
        if self.state == LegState::Rejected
            && matches!(self.invite_txn.state(), S::Confirmed | S::Terminated)
        {
            self.state = LegState::Ended;
        }
    }

    // ----- inputs -----------------------------------------------------------------------

    fn on_input(&mut self, input: CallInput, now: Instant) {
        match input {
            CallInput::Request {
                request,
                info,
                flow,
            } if self.is_agent_leg(&info.call_id) => {
                self.on_agent_request(request, info, flow, now)
            }
            CallInput::Request {
                request,
                info,
                flow,
            } => self.on_request(request, info, flow, now),
            CallInput::Feature(result) => self.on_feature_result(result, now),
            CallInput::Response { response, .. } => {
                let call_id = response
                    .headers
                    .get(&HeaderName::CallId)
                    .cloned()
                    .unwrap_or_default();
                if self.is_agent_leg(&call_id) {
                    self.on_agent_response(response, &call_id, now);
                } else {
                    self.on_response(response, now);
                }
            }
        }
    }

    fn on_request(&mut self, request: Request, info: RequestInfo, flow: Flow, now: Instant) {
        let branch = info.top_via().branch.clone();
        let same_branch_as_invite = branch == self.info.top_via().branch;
        match request.method {
            Method::Invite if info.to.tag.is_none() => {
                if same_branch_as_invite && info.cseq == self.info.cseq {
                    self.on_invite_retransmission();
                }
                // Same Call-ID, new INVITE without tag, different branch: a forking artefact or a
                // misbehaving peer; it must not disturb this call.
            }
            Method::Ack => self.on_ack(&request, &info, now),
            Method::Cancel => self.on_cancel(&request, same_branch_as_invite, &flow, now),
            _ if info.to.tag.as_deref() != Some(self.dialog.local_tag.as_str()) => {
                self.respond_in_call(&request, 481, reason_phrase(481), &flow);
            }
            _ => self.on_in_dialog(request, info, flow, now),
        }
    }

    fn on_invite_retransmission(&mut self) {
        let out = match self.state {
            LegState::Answered => self
                .ok_retransmitter
                .as_mut()
                .and_then(|r| r.on_retransmitted_invite()),
            _ => self.invite_txn.on_retransmitted_request(),
        };
        if let Some(out) = out {
            self.endpoint.send(&self.flow, out);
        }
    }

    fn on_ack(&mut self, request: &Request, info: &RequestInfo, now: Instant) {
        if info.cseq == self.info.cseq {
            match self.invite_txn.on_ack(now) {
                AckDisposition::ForTu => {
                    if let Some(r) = self.ok_retransmitter.as_mut() {
                        r.on_ack();
                    }
                    if self.state == LegState::Answered {
                        self.state = LegState::Confirmed;
                        if self.offer.is_none() && !request.body.is_empty() {
                            // Offerless INVITE: the answer comes in the ACK (RFC 3264 §4).
                            self.offer = sdp::parse_offer(&request.body).ok();
                            self.apply_answer_from_ack();
                        }
                        debug!("ACK received; call confirmed");
                    }
                }
                AckDisposition::Absorbed => self.check_rejected_done(),
                AckDisposition::NoMatch => {}
            }
        } else if let Some(reinvite) = self.reinvite.as_mut()
            && reinvite.cseq == info.cseq
        {
            reinvite.retransmitter.on_ack();
            self.reinvite = None;
        }
    }

    fn on_cancel(&mut self, request: &Request, matches_invite: bool, flow: &Flow, now: Instant) {
        if !matches_invite {
            self.respond_in_call(request, 481, reason_phrase(481), flow);
            return;
        }
        // RFC 3261 §9.2: 200 to the CANCEL; if the INVITE is still pending, 487 to it.
        self.respond_in_call(request, 200, "OK", flow);
        if self.state == LegState::Early {
            debug!("caller cancelled before answer");
            self.reject(now, 487, reason_phrase(487), &[]);
        }
    }

    fn on_in_dialog(&mut self, request: Request, info: RequestInfo, flow: Flow, now: Instant) {
        let branch = info.top_via().branch.clone();
        // A retransmission of a request we already answered gets the same answer again.
        if let Some(txn) = self
            .server_txns
            .iter_mut()
            .find(|t| t.branch == branch && t.method == request.method)
        {
            if let Some(out) = txn.txn.on_retransmitted_request() {
                self.endpoint.send(&flow, out);
            }
            return;
        }
        if request.method == Method::Invite
            && let Some(reinvite) = self.reinvite.as_mut()
        {
            if reinvite.branch == branch {
                if let Some(out) = reinvite.retransmitter.on_retransmitted_invite() {
                    self.endpoint.send(&flow, out);
                }
            } else {
                // §14.2: a re-INVITE while another is unacknowledged.
                let mut response = self.response(&request, 500, "Server Internal Error");
                response.headers.push(
                    HeaderName::Other("Retry-After".into()),
                    Bytes::from_static(b"2"),
                );
                self.endpoint.send(&flow, write_response(&response));
            }
            return;
        }
        if !self.dialog.accept_remote_cseq(info.cseq) {
            self.respond_in_call(&request, 500, "CSeq out of order", &flow);
            return;
        }
        match request.method {
            Method::Invite => self.on_reinvite(request, info, flow, now),
            Method::Bye => {
                debug!("caller hung up");
                self.end_reason = "caller hung up".into();
                let response = self.in_dialog_response(&request, 200, "OK");
                self.bye_response = Some(response.clone());
                self.bye_branch = branch.clone();
                self.endpoint.send(&flow, response);
                self.finish_call();
            }
            Method::Update | Method::Info | Method::Options => {
                if request.method == Method::Info {
                    let content_type = request
                        .headers
                        .get_str(&HeaderName::ContentType)
                        .unwrap_or("")
                        .to_string();
                    if let Some(key) =
                        crate::media::dtmf::parse_sip_info(&content_type, &request.body)
                    {
                        self.on_key(key, DtmfSource::SipInfo, now);
                    }
                }
                let mut response = self.response(&request, 200, "OK");
                if request.method == Method::Update {
                    self.arm_session_timer(now);
                    self.add_session_timer(&mut response);
                    if !request.body.is_empty() {
                        match sdp::parse_offer(&request.body) {
                            Ok(offer) => {
                                self.sdp_version += 1;
                                response = self.ok_with_sdp(&request, Some(&offer));
                                self.offer = Some(offer);
                            }
                            Err(_) => {
                                response = self.response(&request, 488, reason_phrase(488));
                            }
                        }
                    }
                }
                self.answer_non_invite(&request, branch, response, &flow, now);
            }
            _ => {
                let mut response = self.response(&request, 405, reason_phrase(405));
                response
                    .headers
                    .push(HeaderName::Allow, Bytes::from_static(ALLOW.as_bytes()));
                self.answer_non_invite(&request, branch, response, &flow, now);
            }
        }
    }

    /// Session refresh or hold/unhold (RFC 3261 §14.2, RFC 3264 §8.4).
    fn on_reinvite(&mut self, request: Request, info: RequestInfo, flow: Flow, now: Instant) {
        if !matches!(self.state, LegState::Confirmed | LegState::Answered) {
            self.respond_in_call(&request, 491, reason_phrase(491), &flow);
            return;
        }
        let offer = if request.body.is_empty() {
            None
        } else {
            match sdp::parse_offer(&request.body) {
                Ok(offer) => Some(offer),
                Err(_) => {
                    // The session goes on unchanged (§14.2).
                    self.respond_in_call(&request, 488, reason_phrase(488), &flow);
                    return;
                }
            }
        };
        if let Some(offer) = &offer {
            debug!(direction = ?offer.direction, "re-INVITE");
            if let Some(media) = &self.media {
                media.command(MediaCommand::Hold(offer.direction.holds()));
            }
            self.offer = Some(offer.clone());
        }
        self.arm_session_timer(now);
        self.sdp_version += 1;
        let response = self.ok_with_sdp(&request, offer.as_ref());
        let bytes = write_response(&response);
        self.endpoint.send(&flow, bytes.clone());
        self.reinvite = Some(ReInvite {
            cseq: info.cseq,
            branch: info.top_via().branch.clone(),
            retransmitter: Uas2xxRetransmitter::new(self.endpoint.config().timers, now, bytes),
        });
    }

    fn answer_non_invite(
        &mut self,
        request: &Request,
        branch: Option<String>,
        response: Response,
        flow: &Flow,
        now: Instant,
    ) {
        let bytes = write_response(&response);
        let mut txn = NonInviteServer::new(self.endpoint.config().timers, flow.is_reliable());
        if let Some(out) = txn.respond(now, response.status, bytes) {
            self.endpoint.send(flow, out);
        }
        self.server_txns.push(ServerTxn {
            branch,
            method: request.method.clone(),
            txn,
        });
    }

    fn in_dialog_response(&self, request: &Request, status: u16, reason: &str) -> Bytes {
        let response = self.response(request, status, reason);
        write_response(&response)
    }

    fn respond_in_call(&self, request: &Request, status: u16, reason: &str, flow: &Flow) {
        self.endpoint
            .send(flow, self.in_dialog_response(request, status, reason));
    }

    fn on_response(&mut self, response: Response, now: Instant) {
        let is_bye = response
            .headers
            .get_str(&HeaderName::CSeq)
            .is_some_and(|c| c.trim_end().ends_with("BYE"));
        if let (true, Some(bye)) = (is_bye, self.bye.as_mut())
            && bye.on_response(now, response.status)
            && response.status >= 200
        {
            debug!(status = response.status, "BYE answered");
            self.finish_call();
        }
    }

    // ----- timers and hang-up -----------------------------------------------------------

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.invite_txn.next_deadline(),
            self.ok_retransmitter
                .as_ref()
                .and_then(|r| r.next_deadline()),
            self.reinvite
                .as_ref()
                .and_then(|r| r.retransmitter.next_deadline()),
            self.bye.as_ref().and_then(|b| b.next_deadline()),
            self.answer_at,
            self.session_deadline,
            self.step.as_ref().and_then(|s| s.next_deadline()),
            self.waiting.as_ref().and_then(|w| w.next_position),
        ]
        .into_iter()
        .flatten()
        .chain(
            self.server_txns
                .iter()
                .filter_map(|t| t.txn.next_deadline()),
        )
        .chain(self.agent_legs.iter().filter_map(|l| l.next_deadline()))
        .min()
    }

    fn on_timers(&mut self, now: Instant) {
        self.on_agent_timers(now);
        self.on_queue_timers(now);
        if self.answer_at.is_some_and(|at| at <= now) && self.state == LegState::Early {
            self.answer(now);
        }
        for action in self.invite_txn.poll(now) {
            match action {
                Action::Send(bytes) => self.endpoint.send(&self.flow, bytes),
                Action::Timeout => info!("no ACK for our final response (Timer H)"),
                Action::Terminated => {}
            }
        }
        self.check_rejected_done();
        let mut no_ack = false;
        if let Some(r) = self.ok_retransmitter.as_mut() {
            for action in r.poll(now) {
                match action {
                    Action::Send(bytes) => self.endpoint.send(&self.flow, bytes),
                    Action::Timeout => no_ack = true,
                    Action::Terminated => {}
                }
            }
        }
        if let Some(r) = self.reinvite.as_mut() {
            for action in r.retransmitter.poll(now) {
                match action {
                    Action::Send(bytes) => self.endpoint.send(&self.flow, bytes),
                    Action::Timeout => no_ack = true,
                    Action::Terminated => {}
                }
            }
        }
        if no_ack {
            // RFC 3261 §13.3.1.4: no ACK within 64·T1 → confirm and end the session with BYE.
            info!("no ACK for our 2xx within 64*T1; hanging up");
            self.ok_retransmitter = None;
            self.reinvite = None;
            self.hang_up(now, "no ACK");
        }
        if let Some(Answer::NoInput) = self.step.as_mut().and_then(|s| s.on_timeout(now)) {
            self.step = None;
            debug!("no key before the menu timeout");
            self.emit(CallEventKind::NoInput);
            self.facts.inputs.push(MenuInput::NoInput);
            self.decide(now);
        }
        if self.session_deadline.is_some_and(|d| d <= now) {
            self.session_deadline = None;
            info!("session timer expired without refresh; hanging up");
            self.hang_up(now, "session expired");
        }
        for txn in &mut self.server_txns {
            for action in txn.txn.poll(now) {
                if let Action::Send(bytes) = action {
                    self.endpoint.send(&self.flow, bytes);
                }
            }
        }
        self.server_txns.retain(|t| !t.txn.is_terminated());
        if let Some(bye) = self.bye.as_mut() {
            for action in bye.poll(now) {
                match action {
                    Action::Send(bytes) => self.endpoint.send(&self.flow, bytes),
                    Action::Timeout | Action::Terminated => {
                        if self.state == LegState::Ending {
                            debug!("BYE not answered; giving up");
                            self.state = LegState::Ended;
                        }
                    }
                }
            }
        }
    }

    /// We end the call: BYE once answered, a final error before.
    fn hang_up(&mut self, now: Instant, why: &str) {
        match self.state {
            LegState::Early => {
                let retry_after = self.endpoint.retry_after();
                self.reject(
                    now,
                    503,
                    "Service Unavailable (shutting down)",
                    &[retry_after],
                );
            }
            LegState::Answered | LegState::Confirmed => {
                self.leave_acd(now);
                debug!(reason = why, "hanging up");
                self.end_reason = format!("engine hung up: {why}");
                self.ok_retransmitter = None;
                self.session_deadline = None;
                self.media = None;
                self.step = None;
                let bye = self
                    .dialog
                    .make_request(Method::Bye, self.endpoint.config(), &self.flow);
                self.endpoint.send(&self.flow, bye.clone());
                self.bye = Some(NonInviteClient::new(
                    self.endpoint.config().timers,
                    self.flow.is_reliable(),
                    now,
                    bye,
                ));
                self.state = LegState::Ending;
            }
            LegState::Rejected | LegState::Ending | LegState::Ended => {}
        }
    }

    /// Media started with our first choice (PCMU); the caller's answer may pick PCMA and a
    /// telephone-event type, and its address.
    fn apply_answer_from_ack(&mut self) {
        let (Some(offer), Some(media)) = (&self.offer, &self.media) else {
            return;
        };
        let law = match offer.codecs.first().map(|c| c.1) {
            Some(sdp::Codec::Pcma) => crate::media::prompts::Law::Alaw,
            _ => crate::media::prompts::Law::Ulaw,
        };
        media.command(MediaCommand::Negotiated {
            law,
            telephone_event: offer.telephone_event,
        });
        if let Some(ip) = offer.address {
            media.command(MediaCommand::Remote(std::net::SocketAddr::new(
                ip,
                offer.audio_port,
            )));
        }
    }

    /// The call's last event (once).
    ///
    /// At the default level (`info`) this is the one line a call logs (besides warnings and
    /// exceptions): the steps before it are `debug` lines, and the call records hold them all.
    fn report_end(&mut self) {
        let reason = std::mem::take(&mut self.end_reason);
        let show = self.endpoint.config().show_caller_numbers;
        // `&str` fields, not `%` (Display): a string field is copied into the line as it is,
        // a Display one goes through the formatter.
        info!(
            event = "ended",
            from = crate::logging::caller_display(self.info.from.uri.as_str(), show).as_str(),
            dialled = self.facts.dialled.as_str(),
            topic = self.topic.as_deref().unwrap_or("-"),
            agent = self.connected_agent.as_deref().unwrap_or("-"),
            reason = reason.as_str(),
            "call ended"
        );
        self.emit(CallEventKind::Ended { reason });
    }

    /// Publishes a step of this call on the event bus.
    pub(crate) fn emit(&self, kind: CallEventKind) {
        self.endpoint.events().publish(CallEvent {
            call_id: self.event_call_id.clone(),
            at: chrono::Utc::now(),
            rules_version: self.rules.rules.version.hash.clone(),
            kind,
        });
    }

    fn finish_call(&mut self) {
        self.leave_acd(Instant::now());
        self.media = None;
        self.step = None;
        self.ok_retransmitter = None;
        self.reinvite = None;
        self.session_deadline = None;
        self.rtp = None;
        self.state = LegState::Ended;
    }
}

/// The caller's number from a From URI (`sip:+4936411234@host` → `+4936411234`), for rules
/// that match on it; None for anonymous callers.
fn caller_number(uri: &str) -> Option<String> {
    let user = crate::sip::headers::parse_request_uri(uri.as_bytes())
        .ok()?
        .user?;
    let anonymous = user.is_empty() || user.eq_ignore_ascii_case("anonymous");
    (!anonymous).then_some(user)
}
