//! The SIP endpoint: every received message runs to completion here, on the transport task that
//! received it. Out-of-dialog requests that do not start a call (OPTIONS, REGISTER, rejections)
//! are answered statelessly (RFC 3261 §8.2.7 allows it for non-INVITE; for a rejected INVITE
//! the peer's retransmission simply gets the same answer again); REGISTER is answered by the
//! [`Registrar`]. Everything with the Call-ID of a running call goes to that call's task
//! through a bounded channel.

use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::message::{HeaderName, Message, Method, ParseError, Request, Response, write_response};
use super::registrar::Registrar;
use super::reply::{ALLOW, random_token, reason_phrase, reply};
use super::traffic::Direction;
use super::transaction::TimerConfig;
use super::transport::{Flow, Transports};
use super::uas::{Verdict, classify};
use super::validate::{Invalid, RequestInfo, check_request};
use crate::acd::service::AcdHandle;
use crate::call::{self, CallInput, CallSender, CallStart};
use crate::events::EventBus;
use crate::hash::{HashMap, RandomState};
use crate::media::rtp_ports::RtpPortPool;
use crate::media::session::MediaStats;
use crate::overload::OverloadFlag;
use crate::reload::HotReload;
use crate::rules::active::ActiveRules;
use crate::shutdown::Shutdown;

/// Bounds that protect the engine (every one configurable, see `[sip]` in the settings).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_calls: usize,
    pub max_tcp_connections: usize,
    pub tcp_idle_secs: u64,
    pub retry_after_secs: u32,
}

/// What the endpoint and its calls need to know, fixed at start-up.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub limits: Limits,
    pub timers: TimerConfig,
    /// Our Server and User-Agent header value (shared, not copied per message).
    pub user_agent: Bytes,
    /// Our address as written into Via and Contact.
    pub advertised: SocketAddr,
    /// Ringing time before we answer (0 = answer at once).
    pub answer_delay: Duration,
    pub session_expires_secs: u32,
    pub min_se_secs: u32,
    pub show_caller_numbers: bool,
    /// No RTP from the caller for this long ends the call.
    pub rtp_timeout: Duration,
    /// Listen for DTMF tones in the caller's audio as well.
    pub inband_dtmf: bool,
    /// Answer UDP requests at their source address (true) or, as RFC 3261 §18.2.2 says without
    /// `rport`, at the source IP and the port in the top Via (false).
    pub symmetric_response: bool,
}

/// Counters for logs, health and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub responses: AtomicU64,
    pub dropped: AtomicU64,
    /// New calls refused with 503 at `sip.max_calls` (the name predates the overload guard).
    pub rejected_overload: AtomicU64,
    /// New calls refused with 503 by the overload guard ([`crate::overload`]).
    pub shed_overloaded: AtomicU64,
    pub calls_started: AtomicU64,
    pub call_queue_full: AtomicU64,
}

/// How many messages may wait for one call task before new ones are dropped. Retransmissions
/// recover a drop; an unbounded queue would let one stuck call eat memory.
const CALL_QUEUE: usize = 64;
const SHARDS: usize = 16;
/// Ended calls remembered for retransmitted BYEs (64·T1 each, in two generations of at most
/// half of this): 10–20 s of calls at 10,000/s.
const MAX_LINGERING: usize = 200_000;

struct CallTable {
    shards: Vec<Mutex<HashMap<Bytes, CallSender>>>,
    /// Picks the shard (foldhash too, with its own seed: one more cheap hash per lookup).
    hasher: RandomState,
    active: AtomicUsize,
}

impl CallTable {
    fn new() -> Self {
        CallTable {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            hasher: RandomState::default(),
            active: AtomicUsize::new(0),
        }
    }

    fn shard(&self, call_id: &Bytes) -> &Mutex<HashMap<Bytes, CallSender>> {
        &self.shards[(self.hasher.hash_one(call_id) as usize) % SHARDS]
    }

    /// Entries: calls, agent legs and keep-alive probes the endpoint routes messages to.
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    fn get(&self, call_id: &Bytes) -> Option<CallSender> {
        self.shard(call_id).lock().ok()?.get(call_id).cloned()
    }
}

/// Calls that ended recently: retransmitted BYEs get the same 200 again and stray requests are
/// absorbed, without keeping a task alive for 64·T1 (RFC 3261 Timer J, done cheaply).
///
/// Two generations instead of one map with an expiry queue: entries go into `current`; once it
/// is a linger time old, it becomes `previous` and the old `previous` (all expired by then) is
/// dropped whole. No entry is removed one by one, so the map never fills with tombstones that
/// force a rehash of the whole table (that rehash was 1 % of the engine's CPU at 4,000 calls/s).
struct Lingering {
    current: HashMap<Bytes, LingeringCall>,
    previous: HashMap<Bytes, LingeringCall>,
    /// When `current` began.
    since: Instant,
    /// How long a generation takes entries (64·T1).
    linger: Duration,
    /// Most entries in both generations.
    max: usize,
}

impl Lingering {
    fn new(now: Instant, linger: Duration, max: usize) -> Self {
        Lingering {
            current: HashMap::default(),
            previous: HashMap::default(),
            since: now,
            linger,
            max,
        }
    }

    /// The entry for `call_id` if it has not expired.
    fn get(&self, call_id: &Bytes, now: Instant) -> Option<&LingeringCall> {
        self.current
            .get(call_id)
            .or_else(|| self.previous.get(call_id))
            .filter(|call| call.until > now)
    }

    fn remove(&mut self, call_id: &Bytes) {
        self.current.remove(call_id);
        self.previous.remove(call_id);
    }

    /// Adds an entry; returns the generation that expired, for the caller to drop outside the
    /// lock. A generation also ends at `max / 2` entries, so both hold at most `max` (under a
    /// flood of short calls the oldest entries go early).
    fn insert(
        &mut self,
        call_id: Bytes,
        call: LingeringCall,
        now: Instant,
    ) -> Option<HashMap<Bytes, LingeringCall>> {
        let mut expired = None;
        if now.saturating_duration_since(self.since) >= self.linger
            || self.current.len() >= self.max / 2
        {
            // Sized like the generation before it: a steady call rate never grows the map.
            let next = HashMap::with_capacity_and_hasher(self.current.len(), Default::default());
            let previous = std::mem::replace(&mut self.current, next);
            expired = Some(std::mem::replace(&mut self.previous, previous));
            self.since = now;
        }
        self.current.insert(call_id, call);
        expired.filter(|map| !map.is_empty())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[derive(Clone)]
pub struct LingeringCall {
    pub until: Instant,
    /// Our final answer to the BYE that ended the call, if the peer ended it.
    pub bye_response: Option<Bytes>,
    /// Its branch: only a retransmission of that BYE gets it again.
    pub bye_branch: Option<String>,
    /// The top Via branch of the INVITE, so a new INVITE reusing the Call-ID is still a new call.
    pub invite_branch: Option<String>,
}

pub struct Endpoint {
    config: EndpointConfig,
    /// The routing rules in force; each new call takes the version current at its INVITE.
    rules: Arc<HotReload<ActiveRules>>,
    transports: Transports,
    calls: CallTable,
    lingering: Mutex<Lingering>,
    shutdown: Shutdown,
    rtp: Arc<RtpPortPool>,
    media_stats: Arc<MediaStats>,
    events: EventBus,
    acd: AcdHandle,
    registrar: Arc<Registrar>,
    /// Set while the overload guard refuses new calls (never, when it is off).
    overload: Arc<OverloadFlag>,
    pub stats: Stats,
}

impl Endpoint {
    pub fn new(
        config: EndpointConfig,
        transports: Transports,
        shutdown: Shutdown,
        rtp: Arc<RtpPortPool>,
        rules: Arc<HotReload<ActiveRules>>,
        acd: AcdHandle,
        registrar: Arc<Registrar>,
    ) -> Arc<Self> {
        let lingering = Mutex::new(Lingering::new(
            Instant::now(),
            config.timers.timeout_64t1(),
            MAX_LINGERING,
        ));
        Arc::new(Endpoint {
            acd,
            config,
            rules,
            transports,
            calls: CallTable::new(),
            lingering,
            shutdown,
            rtp,
            media_stats: Arc::new(MediaStats::default()),
            events: EventBus::default(),
            registrar,
            overload: Arc::new(OverloadFlag::default()),
            stats: Stats::default(),
        })
    }

    /// The overload guard's verdict, which the [`crate::overload::Detector`] writes.
    pub fn overload_flag(&self) -> &Arc<OverloadFlag> {
        &self.overload
    }

    /// True while new calls are refused because the engine is overloaded.
    pub fn overloaded(&self) -> bool {
        self.overload.is_overloaded()
    }

    pub fn acd(&self) -> &AcdHandle {
        &self.acd
    }

    /// Dialogs the endpoint routes messages to (calls, agent legs, keep-alive probes): with no
    /// call up and no probe out, 0 (`/healthz` `sip_dialogs`; tests check nothing is left).
    pub fn dialogs(&self) -> usize {
        self.calls.len()
    }

    /// Routes messages with an agent leg's Call-ID to the task of the call that placed it.
    /// Agent legs do not count as calls.
    pub fn register_leg(&self, call_id: Bytes, tx: CallSender) {
        if let Ok(mut map) = self.calls.shard(&call_id).lock() {
            map.insert(call_id, tx);
        }
    }

    pub fn remove_leg(&self, call_id: &Bytes) {
        if let Ok(mut map) = self.calls.shard(call_id).lock() {
            map.remove(call_id);
        }
    }

    /// Where a registered agent's phone is: its Contact URI and the flow it registered over.
    pub fn registered_target(&self, agent: &str) -> Option<(String, Flow)> {
        let binding = self.registrar.lookup(agent, Instant::now())?;
        // Over TCP: the phone's connection. Over UDP: the Contact's address when it is on the
        // host the REGISTER came from (a phone listening on another port than it registered
        // from); otherwise the phone is behind NAT and is reached where the REGISTER came from.
        let flow = match binding.flow {
            Flow::Udp { .. } => {
                let contact = crate::sip::headers::contact_socket_addr(&binding.contact);
                let peer = contact
                    .filter(|c| c.ip() == binding.source.ip())
                    .unwrap_or(binding.source);
                Flow::Udp { peer }
            }
            tcp @ Flow::Tcp { .. } => tcp,
        };
        Some((binding.contact, flow))
    }

    /// The agent whose phone is at `peer`: a registered phone (its REGISTER's source or its
    /// Contact address, with `from_user` its registration user) or a static agent's URI
    /// address. Feature codes trust this, as PBXs trust a registered phone's address.
    pub fn agent_calling_from(&self, from_user: &str, peer: SocketAddr) -> Option<String> {
        let active = self.rules.current();
        let now = Instant::now();
        active.rules.agents.values().find_map(|agent| {
            let matches = match &agent.reach {
                crate::rules::model::Reach::Registration { user, .. } => {
                    user == from_user
                        && self.registrar.lookup(&agent.id, now).is_some_and(|b| {
                            b.source == peer
                                || crate::sip::headers::contact_socket_addr(&b.contact)
                                    == Some(peer)
                        })
                }
                crate::rules::model::Reach::Uri(uri) => {
                    crate::sip::headers::contact_socket_addr(uri) == Some(peer)
                }
            };
            matches.then(|| agent.id.clone())
        })
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    pub fn transports(&self) -> &Transports {
        &self.transports
    }

    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    pub fn rules(&self) -> &Arc<HotReload<ActiveRules>> {
        &self.rules
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Agents' registrations (bindings, and changes for the ACD).
    pub fn registrar(&self) -> &Arc<Registrar> {
        &self.registrar
    }

    pub fn media_stats(&self) -> &Arc<MediaStats> {
        &self.media_stats
    }

    pub fn rtp_pool(&self) -> &Arc<RtpPortPool> {
        &self.rtp
    }

    /// Calls with a running task (answered, ringing, or hanging up).
    pub fn active_calls(&self) -> usize {
        self.calls.active.load(Ordering::Relaxed)
    }

    pub fn send(&self, flow: &Flow, bytes: Bytes) {
        self.transports.send(flow, bytes);
    }

    /// A datagram larger than `sip.max_message_bytes`: 413 if its head is readable, else drop.
    pub fn on_oversized(&self, truncated: Bytes, flow: Flow) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        let request = match super::message::parse(truncated, super::message::Framing::Datagram) {
            Ok((Message::Request(r), _)) => r,
            Err(ParseError::BadRequest { request, .. }) => *request,
            _ => {
                debug!(peer = %flow.peer(), "oversized datagram dropped");
                return;
            }
        };
        if request.method != Method::Ack && request.headers.count(&HeaderName::Via) > 0 {
            info!(peer = %flow.peer(), max = self.config.limits.max_message_bytes,
                "message larger than sip.max_message_bytes answered 413");
            self.respond(&request, 413, reason_phrase(413), &[], &flow);
        }
    }

    /// Entry point for every framed message from any transport.
    pub fn on_message(self: &Arc<Self>, parsed: Result<Message, ParseError>, flow: Flow) {
        match parsed {
            Ok(Message::Request(request)) => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                self.transports
                    .traffic
                    .request(Direction::Received, request.method.as_str().as_bytes());
                self.on_request(request, flow)
            }
            Ok(Message::Response(response)) => {
                self.stats.responses.fetch_add(1, Ordering::Relaxed);
                self.transports
                    .traffic
                    .response(Direction::Received, response.status);
                self.on_response(response, flow)
            }
            Err(ParseError::BadRequest {
                request,
                status,
                reason,
            }) => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                self.transports
                    .traffic
                    .request(Direction::Received, request.method.as_str().as_bytes());
                // Never answer an ACK (RFC 3261 §17.2.1), never answer without a Via to follow.
                if request.method != Method::Ack && request.headers.count(&HeaderName::Via) > 0 {
                    debug!(peer = %flow.peer(), status, %reason, "malformed request refused");
                    self.respond(&request, status, &reason, &[], &flow);
                } else {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(ParseError::Garbage(why)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                debug!(peer = %flow.peer(), why, "unparseable message dropped");
            }
            Err(ParseError::Incomplete) => {}
        }
    }

    fn on_response(&self, response: Response, flow: Flow) {
        let Some(call_id) = response.headers.get(&HeaderName::CallId).cloned() else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match self.calls.get(&call_id) {
            Some(tx) => self.deliver(&tx, CallInput::Response { response, flow }),
            // No transaction: absorb silently (RFC 3261 §18.1.2, RFC 4475 §3.1.1.12).
            None => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn deliver(&self, tx: &CallSender, input: CallInput) {
        if tx.try_send(Box::new(input)).is_err() {
            // Full or just ended: the peer retransmits.
            self.stats.call_queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_request(self: &Arc<Self>, request: Request, flow: Flow) {
        let info = match check_request(&request) {
            Ok(info) => info,
            Err(Invalid::Drop(why)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                debug!(peer = %flow.peer(), why, "request dropped");
                return;
            }
            Err(Invalid::Reject(status, reason)) => {
                if request.method != Method::Ack {
                    debug!(peer = %flow.peer(), status, %reason, "request refused");
                    let allow: &[(HeaderName, &str)] = if status == 501 {
                        &[(HeaderName::Allow, ALLOW)]
                    } else {
                        &[]
                    };
                    self.respond(&request, status, &reason, allow, &flow);
                }
                return;
            }
        };

        let flow = self.response_flow(flow, &info);
        if let Some(tx) = self.calls.get(&info.call_id) {
            self.deliver(
                &tx,
                CallInput::Request {
                    request,
                    info,
                    flow,
                },
            );
            return;
        }
        if self.answer_lingering(&request, &info, &flow) {
            return;
        }

        let active = self.rules.current();
        match classify(&request, &info, &active.served_numbers) {
            Verdict::Absorb => {}
            Verdict::Answer {
                status,
                reason,
                headers,
            } => {
                let extra: Vec<(HeaderName, &str)> = headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_str()))
                    .collect();
                self.respond(&request, status, &reason, &extra, &flow);
            }
            Verdict::NewCall { dialled } => self.start_call(request, info, dialled, flow, active),
            Verdict::Register => {
                let reply = self.registrar.handle_register(
                    &request,
                    &info,
                    &flow,
                    &active.rules.agents,
                    Instant::now(),
                );
                let extra: Vec<(HeaderName, &str)> = reply
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_str()))
                    .collect();
                self.respond(&request, reply.status, &reply.reason, &extra, &flow);
            }
        }
    }

    fn start_call(
        self: &Arc<Self>,
        request: Request,
        info: RequestInfo,
        dialled: String,
        flow: Flow,
        rules: Arc<ActiveRules>,
    ) {
        if !self.shutdown.accepting_calls() {
            self.respond_unavailable(&request, "Service Unavailable (shutting down)", &flow);
            return;
        }
        // Check, insert and spawn under the shard lock, so two copies of one INVITE arriving on
        // two threads cannot start two calls.
        let call_id = info.call_id.clone();
        let shard = self.calls.shard(&call_id);
        let Ok(mut map) = shard.lock() else { return };
        if let Some(tx) = map.get(&call_id) {
            let tx = tx.clone();
            drop(map);
            self.deliver(
                &tx,
                CallInput::Request {
                    request,
                    info,
                    flow,
                },
            );
            return;
        }
        // Overloaded, and over the share of calls the guard takes meanwhile: the calls already
        // in need the CPU to finish; this caller tries again later (or elsewhere). A
        // retransmission of this INVITE may get the same answer (and counts again), as at the
        // call limit.
        if !self.overload.admit() {
            drop(map);
            self.stats.shed_overloaded.fetch_add(1, Ordering::Relaxed);
            self.respond_unavailable(&request, "Service Unavailable (overloaded)", &flow);
            return;
        }
        // Take the slot first and give it back when over the limit: INVITEs for different
        // shards run in parallel, and a check-then-increment would let two of them both take
        // the last slot.
        if self.calls.active.fetch_add(1, Ordering::AcqRel) >= self.config.limits.max_calls {
            self.calls.active.fetch_sub(1, Ordering::AcqRel);
            drop(map);
            self.stats.rejected_overload.fetch_add(1, Ordering::Relaxed);
            self.respond_unavailable(&request, "Service Unavailable (call limit reached)", &flow);
            return;
        }
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        let self_tx = tx.downgrade();
        map.insert(call_id, tx);
        drop(map);
        self.stats.calls_started.fetch_add(1, Ordering::Relaxed);
        call::spawn(
            self.clone(),
            CallStart {
                request,
                info,
                dialled,
                flow,
                rules,
                self_tx,
            },
            rx,
        );
    }

    /// Where answers to a request go. Symmetric (the source address) by default: it works
    /// behind NAT and cannot be abused to reflect traffic at a third party's port.
    fn response_flow(&self, flow: Flow, info: &RequestInfo) -> Flow {
        match flow {
            Flow::Udp { peer } if !self.config.symmetric_response && !info.top_via().rport => {
                let port = info.top_via().port.unwrap_or(5060);
                Flow::Udp {
                    peer: SocketAddr::new(peer.ip(), port),
                }
            }
            other => other,
        }
    }

    /// Handles a request for a call that just ended; true if it was one.
    fn answer_lingering(&self, request: &Request, info: &RequestInfo, flow: &Flow) -> bool {
        let Ok(lingering) = self.lingering.lock() else {
            return false;
        };
        let Some(call) = lingering.get(&info.call_id, Instant::now()).cloned() else {
            return false;
        };
        drop(lingering);
        match request.method {
            Method::Bye => match call.bye_response {
                Some(bytes) if call.bye_branch == info.top_via().branch => self.send(flow, bytes),
                _ => self.respond(request, 481, reason_phrase(481), &[], flow),
            },
            Method::Ack => {}
            Method::Invite if info.to.tag.is_none() => {
                let branch = info.top_via().branch.clone();
                if branch != call.invite_branch {
                    // A new call that happens to reuse the Call-ID.
                    if let Ok(mut l) = self.lingering.lock() {
                        l.remove(&info.call_id);
                    }
                    return false;
                }
            }
            _ => self.respond(request, 481, reason_phrase(481), &[], flow),
        }
        true
    }

    /// Called by a call task as its last act.
    pub fn call_ended(&self, call_id: &Bytes, linger: Option<LingeringCall>) {
        if let Ok(mut map) = self.calls.shard(call_id).lock()
            && map.remove(call_id).is_some()
        {
            self.calls.active.fetch_sub(1, Ordering::Relaxed);
        }
        let Some(entry) = linger else { return };
        // An owned copy: the key must not keep the INVITE's buffer alive.
        let key = Bytes::copy_from_slice(call_id);
        let expired = match self.lingering.lock() {
            Ok(mut lingering) => lingering.insert(key, entry, Instant::now()),
            Err(_) => return,
        };
        // Tens of thousands of entries at high call rates: freed on a blocking thread, not on
        // the task that ended this call (and not under the lock).
        if let Some(expired) = expired {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn_blocking(move || drop(expired));
                }
                Err(_) => drop(expired),
            }
        }
    }

    /// A response to `request` with our Server header; `to_tag` is added where To has none.
    pub fn response(
        &self,
        request: &Request,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Response {
        let mut response = reply(request, status, reason, to_tag);
        response.headers.push(
            HeaderName::Other("Server".into()),
            self.config.user_agent.clone(),
        );
        response
    }

    /// `Retry-After` for every 503 we send (call limit, overload, shutdown, no media port).
    pub fn retry_after(&self) -> (HeaderName, String) {
        (
            HeaderName::Other("Retry-After".into()),
            self.config.limits.retry_after_secs.to_string(),
        )
    }

    fn respond_unavailable(&self, request: &Request, reason: &str, flow: &Flow) {
        let (name, value) = self.retry_after();
        self.respond(request, 503, reason, &[(name, &value)], flow);
    }

    /// Sends a stateless response to `request` along `flow`.
    pub fn respond(
        &self,
        request: &Request,
        status: u16,
        reason: &str,
        extra: &[(HeaderName, &str)],
        flow: &Flow,
    ) {
        let mut response = self.response(request, status, reason, Some(&random_token()));
        for (name, value) in extra {
            response
                .headers
                .push(name.clone(), Bytes::copy_from_slice(value.as_bytes()));
        }
        self.send(flow, write_response(&response));
    }
}

#[cfg(test)]
mod tests;
