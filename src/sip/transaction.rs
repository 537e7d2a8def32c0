//! Sans-IO RFC 3261 §17 transaction state machines (with the RFC 6026 "Accepted" states) and the
//! UAS 2xx retransmission of RFC 3261 §13.3.1.4.
//!
//! Why sans-IO: a machine owns no socket, task or clock. The owner feeds it inputs (a response
//! from the TU, a retransmitted request, an ACK, a received response) together with the current
//! time, sends whatever bytes it hands back, sleeps until `next_deadline()` and then calls
//! `poll(now)`. Every timer rule is therefore testable with a synthetic clock.
//!
//! Conventions shared by all machines:
//! - Messages are opaque, already serialised [`Bytes`]; a machine only stores and returns them.
//! - A timer that the RFC sets to zero on reliable transports (I, J, K, D) becomes a deadline at
//!   `now`: the machine waits in its state until the owner's next `poll`, which `next_deadline`
//!   asks for at once. So every machine ends the same way: `poll` emits [`Action::Terminated`]
//!   exactly once.
//! - Late polls: a `poll` fires at most one retransmission, and the next one is scheduled one full
//!   (doubled) interval after `now`, not after the missed deadline; bursting stale copies after a
//!   stall helps nobody. Timeouts are absolute and checked first: when a timeout and a
//!   retransmission are both due, only the timeout fires.

use std::time::{Duration, Instant};

use bytes::Bytes;

/// The RFC 3261 §17.1.1.1 timer base values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// T1: RTT estimate, the first retransmission interval.
    pub t1: Duration,
    /// T2: the cap for doubling non-INVITE request and INVITE response retransmissions.
    pub t2: Duration,
    /// T4: how long a message may stay in the network.
    pub t4: Duration,
}

impl Default for TimerConfig {
    /// RFC 3261 §17.1.1.1 recommended values: T1 = 500 ms, T2 = 4 s, T4 = 5 s.
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J, L, M and the §13.3.1.4 give-up time.
    pub fn timeout_64t1(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D for unreliable transports. RFC 3261 §17.1.1.2 asks for "at least 32 s"; we use
    /// max(32 s, 64·T1) so that a larger T1 still covers the server's Timer H window.
    pub fn timer_d(&self) -> Duration {
        self.timeout_64t1().max(Duration::from_secs(32))
    }
}

/// What the owner must do after an input or a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to the transaction's peer (a retransmission or a stored answer).
    Send(Bytes),
    /// The transaction timed out (Timer B/F/H, or no ACK for a 2xx): tell the TU.
    Timeout,
    /// The transaction is finished and can be forgotten.
    Terminated,
}

/// Response classes the state machines distinguish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Provisional,
    Success,
    Failure,
}

/// `None` for status codes outside 100–699, which no machine accepts.
fn classify(status: u16) -> Option<Class> {
    match status {
        100..=199 => Some(Class::Provisional),
        200..=299 => Some(Class::Success),
        300..=699 => Some(Class::Failure),
        _ => None,
    }
}

/// The base value on unreliable transports, zero on reliable ones (Timers I, J, K, D).
fn unless_reliable(reliable: bool, d: Duration) -> Duration {
    if reliable { Duration::ZERO } else { d }
}

/// One retransmission timer (A, E, G or the §13.3.1.4 2xx timer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Retransmit {
    at: Instant,
    interval: Duration,
}

impl Retransmit {
    /// First firing one `interval` after `now`; `None` on reliable transports, which never
    /// retransmit at this layer.
    fn start(reliable: bool, now: Instant, interval: Duration) -> Option<Self> {
        (!reliable).then(|| Self {
            at: now + interval,
            interval,
        })
    }

    /// If due, re-arm `next(interval)` after `now` (see the late-poll note at the top) and say so.
    fn fire(&mut self, now: Instant, next: impl FnOnce(Duration) -> Duration) -> bool {
        if now < self.at {
            return false;
        }
        self.interval = next(self.interval);
        self.at = now + self.interval;
        true
    }
}

fn send_if(fired: bool, bytes: &Bytes) -> Vec<Action> {
    if fired {
        vec![Action::Send(bytes.clone())]
    } else {
        Vec::new()
    }
}

fn earliest(retransmit: Option<Retransmit>, timeout: Instant) -> Instant {
    retransmit.map_or(timeout, |r| r.at.min(timeout))
}

/// The public view of [`InviteServer`]'s state (RFC 3261 Figure 7 with RFC 6026 Accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteServerState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// What [`InviteServer::on_ack`] did with an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckDisposition {
    /// The ACK for our non-2xx final: consumed by the transaction.
    Absorbed,
    /// The ACK for a 2xx, which is end-to-end and belongs to the TU (RFC 6026 §7.1).
    ForTu,
    /// No final response was sent yet; the ACK matches nothing here.
    NoMatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ist {
    Proceeding,
    Completed { g: Option<Retransmit>, h: Instant },
    Confirmed { i: Instant },
    Accepted { l: Instant },
    Terminated,
}

/// INVITE server transaction, RFC 3261 §17.2.1 as amended by RFC 6026 §7.1.
#[derive(Clone, Debug)]
pub struct InviteServer {
    cfg: TimerConfig,
    reliable: bool,
    last_response: Option<Bytes>,
    state: Ist,
}

impl InviteServer {
    /// §17.2.1: the transaction is created in Proceeding when the INVITE arrives.
    pub fn new(cfg: TimerConfig, reliable: bool) -> Self {
        Self {
            cfg,
            reliable,
            last_response: None,
            state: Ist::Proceeding,
        }
    }

    /// The TU's response; returns the bytes to send now, or `None` when the state forbids it
    /// (a second final, a provisional after the final, a status outside 100–699).
    pub fn respond(&mut self, now: Instant, status: u16, bytes: Bytes) -> Option<Bytes> {
        match (self.state, classify(status)?) {
            // §17.2.1: provisionals are sent and remembered for retransmitted INVITEs.
            (Ist::Proceeding, Class::Provisional) => {}
            // RFC 6026 §7.1: a 2xx moves to Accepted with Timer L; the TU retransmits it (§13.3.1.4).
            (Ist::Proceeding, Class::Success) => {
                self.state = Ist::Accepted {
                    l: now + self.cfg.timeout_64t1(),
                };
            }
            // RFC 6026 §7.1: 2xx retransmissions from the TU in Accepted go to the transport.
            (Ist::Accepted { .. }, Class::Success) => return Some(bytes),
            // §17.2.1: 300–699 → Completed; Timer G (unreliable: T1) and Timer H = 64·T1.
            (Ist::Proceeding, Class::Failure) => {
                self.state = Ist::Completed {
                    g: Retransmit::start(self.reliable, now, self.cfg.t1),
                    h: now + self.cfg.timeout_64t1(),
                };
            }
            (Ist::Accepted { .. }, Class::Provisional | Class::Failure)
            | (Ist::Completed { .. } | Ist::Confirmed { .. } | Ist::Terminated, _) => return None,
        }
        self.last_response = Some(bytes.clone());
        Some(bytes)
    }

    /// A retransmission of the INVITE arrived; returns what to resend, if anything.
    pub fn on_retransmitted_request(&self) -> Option<Bytes> {
        match self.state {
            // §17.2.1: in Proceeding and Completed the most recent response is sent again.
            Ist::Proceeding | Ist::Completed { .. } => self.last_response.clone(),
            // §17.2.1 (Confirmed) and RFC 6026 §7.1 (Accepted): retransmissions are absorbed.
            Ist::Confirmed { .. } | Ist::Accepted { .. } | Ist::Terminated => None,
        }
    }

    /// An ACK matching this transaction arrived.
    pub fn on_ack(&mut self, now: Instant) -> AckDisposition {
        match self.state {
            // §17.2.1: ACK in Completed → Confirmed, stop G and H, Timer I = T4 (zero if reliable).
            Ist::Completed { .. } => {
                let i = now + unless_reliable(self.reliable, self.cfg.t4);
                self.state = Ist::Confirmed { i };
                AckDisposition::Absorbed
            }
            // §17.2.1: further ACKs in Confirmed are absorbed.
            Ist::Confirmed { .. } => AckDisposition::Absorbed,
            // RFC 6026 §7.1: an ACK in Accepted is passed to the TU.
            Ist::Accepted { .. } => AckDisposition::ForTu,
            Ist::Proceeding | Ist::Terminated => AckDisposition::NoMatch,
        }
    }

    /// Fire due timers.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        match &mut self.state {
            // §17.2.1: Timer H fires: no ACK came; tell the TU and terminate.
            Ist::Completed { h, .. } if now >= *h => {
                self.state = Ist::Terminated;
                vec![Action::Timeout, Action::Terminated]
            }
            // §17.2.1: Timer G fires: resend the final, interval doubled and capped at T2.
            Ist::Completed { g: Some(g), .. } => {
                let t2 = self.cfg.t2;
                let fired = g.fire(now, |i| i.saturating_mul(2).min(t2));
                // A Completed state always has its final stored, so the fallback never applies.
                self.last_response
                    .as_ref()
                    .map_or_else(Vec::new, |r| send_if(fired, r))
            }
            // §17.2.1: Timer I fires → Terminated.
            Ist::Confirmed { i: at } | Ist::Accepted { l: at } if now >= *at => {
                // RFC 6026 §7.1: Timer L fires → Terminated (the TU's 2xx timer reports no ACK).
                self.state = Ist::Terminated;
                vec![Action::Terminated]
            }
            Ist::Proceeding
            | Ist::Completed { g: None, .. }
            | Ist::Confirmed { .. }
            | Ist::Accepted { .. }
            | Ist::Terminated => Vec::new(),
        }
    }

    /// The earliest pending timer, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            Ist::Completed { g, h } => Some(earliest(g, h)),
            Ist::Confirmed { i: at } | Ist::Accepted { l: at } => Some(at),
            Ist::Proceeding | Ist::Terminated => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == Ist::Terminated
    }

    pub fn state(&self) -> InviteServerState {
        match self.state {
            Ist::Proceeding => InviteServerState::Proceeding,
            Ist::Completed { .. } => InviteServerState::Completed,
            Ist::Confirmed { .. } => InviteServerState::Confirmed,
            Ist::Accepted { .. } => InviteServerState::Accepted,
            Ist::Terminated => InviteServerState::Terminated,
        }
    }
}

/// The public view of [`NonInviteServer`]'s state (RFC 3261 Figure 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteServerState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nist {
    Trying,
    Proceeding,
    Completed { j: Instant },
    Terminated,
}

/// Non-INVITE server transaction, RFC 3261 §17.2.2.
#[derive(Clone, Debug)]
pub struct NonInviteServer {
    cfg: TimerConfig,
    reliable: bool,
    last_response: Option<Bytes>,
    state: Nist,
}

impl NonInviteServer {
    /// §17.2.2: the transaction is created in Trying when the request arrives.
    pub fn new(cfg: TimerConfig, reliable: bool) -> Self {
        Self {
            cfg,
            reliable,
            last_response: None,
            state: Nist::Trying,
        }
    }

    /// The TU's response; returns the bytes to send now, or `None` once a final was sent.
    pub fn respond(&mut self, now: Instant, status: u16, bytes: Bytes) -> Option<Bytes> {
        match (self.state, classify(status)?) {
            // §17.2.2: a provisional in Trying or Proceeding → Proceeding.
            (Nist::Trying | Nist::Proceeding, Class::Provisional) => self.state = Nist::Proceeding,
            // §17.2.2: a final → Completed with Timer J = 64·T1 (zero if reliable).
            (Nist::Trying | Nist::Proceeding, Class::Success | Class::Failure) => {
                let j = now + unless_reliable(self.reliable, self.cfg.timeout_64t1());
                self.state = Nist::Completed { j };
            }
            (Nist::Completed { .. } | Nist::Terminated, _) => return None,
        }
        self.last_response = Some(bytes.clone());
        Some(bytes)
    }

    /// A retransmission of the request arrived; returns what to resend, if anything.
    pub fn on_retransmitted_request(&self) -> Option<Bytes> {
        match self.state {
            // §17.2.2: in Trying there is nothing to resend; the retransmission is discarded.
            Nist::Trying | Nist::Terminated => None,
            // §17.2.2: in Proceeding and Completed the most recent response is sent again.
            Nist::Proceeding | Nist::Completed { .. } => self.last_response.clone(),
        }
    }

    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        match self.state {
            // §17.2.2: Timer J fires → Terminated.
            Nist::Completed { j } if now >= j => {
                self.state = Nist::Terminated;
                vec![Action::Terminated]
            }
            Nist::Trying | Nist::Proceeding | Nist::Completed { .. } | Nist::Terminated => {
                Vec::new()
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            Nist::Completed { j } => Some(j),
            Nist::Trying | Nist::Proceeding | Nist::Terminated => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == Nist::Terminated
    }

    pub fn state(&self) -> NonInviteServerState {
        match self.state {
            Nist::Trying => NonInviteServerState::Trying,
            Nist::Proceeding => NonInviteServerState::Proceeding,
            Nist::Completed { .. } => NonInviteServerState::Completed,
            Nist::Terminated => NonInviteServerState::Terminated,
        }
    }
}

/// The UAS core's retransmission of a 2xx to INVITE until the ACK arrives (RFC 3261 §13.3.1.4).
/// It lives beside the [`InviteServer`], which is in Accepted and no longer resends anything.
#[derive(Clone, Debug)]
pub struct Uas2xxRetransmitter {
    cfg: TimerConfig,
    response: Bytes,
    /// `None` once ACKed or given up.
    running: Option<(Retransmit, Instant)>,
}

impl Uas2xxRetransmitter {
    /// Starts after the owner's first send of `response` at `now`.
    pub fn new(cfg: TimerConfig, now: Instant, response: Bytes) -> Self {
        // §13.3.1.4: first retransmission after T1 on every transport; give up after 64·T1.
        let timer = Retransmit {
            at: now + cfg.t1,
            interval: cfg.t1,
        };
        Self {
            cfg,
            response,
            running: Some((timer, now + cfg.timeout_64t1())),
        }
    }

    /// The ACK arrived: stop. Returns whether this call stopped it (false for a repeated ACK or
    /// after the timeout).
    pub fn on_ack(&mut self) -> bool {
        self.running.take().is_some()
    }

    /// A retransmitted INVITE arrived: resending the 2xx is harmless and helps on lossy links.
    pub fn on_retransmitted_invite(&self) -> Option<Bytes> {
        self.running.map(|_| self.response.clone())
    }

    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        match &mut self.running {
            // §13.3.1.4: no ACK within 64·T1: the TU ends the session (BYE).
            Some((_, give_up)) if now >= *give_up => {
                self.running = None;
                vec![Action::Timeout, Action::Terminated]
            }
            // §13.3.1.4: retransmit with the interval doubled up to T2.
            Some((timer, _)) => {
                let t2 = self.cfg.t2;
                send_if(
                    timer.fire(now, |i| i.saturating_mul(2).min(t2)),
                    &self.response,
                )
            }
            None => Vec::new(),
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.running
            .map(|(timer, give_up)| earliest(Some(timer), give_up))
    }

    pub fn is_terminated(&self) -> bool {
        self.running.is_none()
    }
}

/// The public view of [`NonInviteClient`]'s state (RFC 3261 Figure 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteClientState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nict {
    Trying { e: Option<Retransmit>, f: Instant },
    Proceeding { e: Option<Retransmit>, f: Instant },
    Completed { k: Instant },
    Terminated,
}

/// Non-INVITE client transaction, RFC 3261 §17.1.2.
#[derive(Clone, Debug)]
pub struct NonInviteClient {
    cfg: TimerConfig,
    reliable: bool,
    request: Bytes,
    state: Nict,
}

impl NonInviteClient {
    /// Starts in Trying after the owner's first send of `request` at `now`.
    pub fn new(cfg: TimerConfig, reliable: bool, now: Instant, request: Bytes) -> Self {
        // §17.1.2.2: Timer E = T1 (unreliable only) and Timer F = 64·T1.
        let e = Retransmit::start(reliable, now, cfg.t1);
        let state = Nict::Trying {
            e,
            f: now + cfg.timeout_64t1(),
        };
        Self {
            cfg,
            reliable,
            request,
            state,
        }
    }

    /// A response matched this transaction; returns whether to pass it to the TU.
    pub fn on_response(&mut self, now: Instant, status: u16) -> bool {
        let Some(class) = classify(status) else {
            return false;
        };
        match (self.state, class) {
            // §17.1.2.2: a provisional → Proceeding; E and F keep running.
            (Nict::Trying { e, f } | Nict::Proceeding { e, f }, Class::Provisional) => {
                self.state = Nict::Proceeding { e, f };
                true
            }
            // §17.1.2.2: a final → Completed with Timer K = T4 (zero if reliable).
            (Nict::Trying { .. } | Nict::Proceeding { .. }, Class::Success | Class::Failure) => {
                let k = now + unless_reliable(self.reliable, self.cfg.t4);
                self.state = Nict::Completed { k };
                true
            }
            // §17.1.2.2: retransmitted responses in Completed are absorbed.
            (Nict::Completed { .. } | Nict::Terminated, _) => false,
        }
    }

    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let t2 = self.cfg.t2;
        let fired = match &mut self.state {
            // §17.1.2.2: Timer F fires: tell the TU and terminate.
            Nict::Trying { f, .. } | Nict::Proceeding { f, .. } if now >= *f => {
                self.state = Nict::Terminated;
                return vec![Action::Timeout, Action::Terminated];
            }
            // §17.1.2.2: Timer E in Trying: retransmit, interval doubled and capped at T2.
            Nict::Trying { e: Some(e), .. } => e.fire(now, |i| i.saturating_mul(2).min(t2)),
            // §17.1.2.2: Timer E in Proceeding: retransmit, reset to T2.
            Nict::Proceeding { e: Some(e), .. } => e.fire(now, |_| t2),
            // §17.1.2.2: Timer K fires → Terminated.
            Nict::Completed { k } if now >= *k => {
                self.state = Nict::Terminated;
                return vec![Action::Terminated];
            }
            Nict::Trying { e: None, .. }
            | Nict::Proceeding { e: None, .. }
            | Nict::Completed { .. }
            | Nict::Terminated => false,
        };
        send_if(fired, &self.request)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            Nict::Trying { e, f } | Nict::Proceeding { e, f } => Some(earliest(e, f)),
            Nict::Completed { k } => Some(k),
            Nict::Terminated => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == Nict::Terminated
    }

    pub fn state(&self) -> NonInviteClientState {
        match self.state {
            Nict::Trying { .. } => NonInviteClientState::Trying,
            Nict::Proceeding { .. } => NonInviteClientState::Proceeding,
            Nict::Completed { .. } => NonInviteClientState::Completed,
            Nict::Terminated => NonInviteClientState::Terminated,
        }
    }
}

/// The public view of [`InviteClient`]'s state (RFC 3261 Figure 5 with RFC 6026 Accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteClientState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

/// What the owner does with a response given to [`InviteClient::on_response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientInviteEvent {
    /// A 1xx: pass it to the TU.
    Provisional,
    /// A 2xx (first or retransmitted, RFC 6026 §7.2): pass it to the TU, which ACKs every one.
    Accepted2xx,
    /// The first 300–699: pass it to the TU, build the ACK and hand it to
    /// [`InviteClient::set_ack`] before the next `poll`.
    FinalNon2xx,
    /// A retransmitted 300–699 in Completed: send this stored ACK again (§17.1.1.2). A variant
    /// rather than a separate query so that an exhaustive `match` cannot forget the resend.
    ResendAck(Bytes),
    /// Nothing to do (stray or retransmitted response the RFC says to discard).
    Absorb,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ict {
    Calling { a: Option<Retransmit>, b: Instant },
    Proceeding,
    Completed { d: Instant, ack: Option<Bytes> },
    Accepted { m: Instant },
    Terminated,
}

/// INVITE client transaction, RFC 3261 §17.1.1 as amended by RFC 6026 §7.2.
#[derive(Clone, Debug)]
pub struct InviteClient {
    cfg: TimerConfig,
    reliable: bool,
    invite: Bytes,
    state: Ict,
}

impl InviteClient {
    /// Starts in Calling after the owner's first send of `invite` at `now`.
    pub fn new(cfg: TimerConfig, reliable: bool, now: Instant, invite: Bytes) -> Self {
        // §17.1.1.2: Timer A = T1 (unreliable only) and Timer B = 64·T1.
        let a = Retransmit::start(reliable, now, cfg.t1);
        let state = Ict::Calling {
            a,
            b: now + cfg.timeout_64t1(),
        };
        Self {
            cfg,
            reliable,
            invite,
            state,
        }
    }

    /// A response matched this transaction.
    pub fn on_response(&mut self, now: Instant, status: u16) -> ClientInviteEvent {
        let Some(class) = classify(status) else {
            return ClientInviteEvent::Absorb;
        };
        match (&self.state, class) {
            // §17.1.1.2: a 1xx → Proceeding; Timers A and B no longer apply (CANCEL is the TU's).
            (Ict::Calling { .. } | Ict::Proceeding, Class::Provisional) => {
                self.state = Ict::Proceeding;
                ClientInviteEvent::Provisional
            }
            // RFC 6026 §7.2: a 2xx → Accepted with Timer M = 64·T1.
            (Ict::Calling { .. } | Ict::Proceeding, Class::Success) => {
                self.state = Ict::Accepted {
                    m: now + self.cfg.timeout_64t1(),
                };
                ClientInviteEvent::Accepted2xx
            }
            // RFC 6026 §7.2: every further 2xx in Accepted goes to the TU.
            (Ict::Accepted { .. }, Class::Success) => ClientInviteEvent::Accepted2xx,
            // §17.1.1.2: 300–699 → Completed with Timer D (≥ 32 s unreliable, zero reliable).
            (Ict::Calling { .. } | Ict::Proceeding, Class::Failure) => {
                let d = now + unless_reliable(self.reliable, self.cfg.timer_d());
                self.state = Ict::Completed { d, ack: None };
                ClientInviteEvent::FinalNon2xx
            }
            // §17.1.1.2: a retransmitted final in Completed is absorbed and the ACK resent.
            (Ict::Completed { ack: Some(ack), .. }, Class::Failure) => {
                ClientInviteEvent::ResendAck(ack.clone())
            }
            (Ict::Completed { ack: None, .. }, Class::Failure)
            | (Ict::Completed { .. }, Class::Provisional | Class::Success)
            | (Ict::Accepted { .. }, Class::Provisional | Class::Failure)
            | (Ict::Terminated, _) => ClientInviteEvent::Absorb,
        }
    }

    /// Stores the owner-built ACK for our non-2xx final (§17.1.1.3) and returns it to send now;
    /// `None` outside Completed.
    pub fn set_ack(&mut self, ack: Bytes) -> Option<Bytes> {
        match &mut self.state {
            Ict::Completed { ack: slot, .. } => Some(slot.insert(ack).clone()),
            Ict::Calling { .. } | Ict::Proceeding | Ict::Accepted { .. } | Ict::Terminated => None,
        }
    }

    /// §9.1: a CANCEL may be sent once a provisional arrived and until a final arrives.
    pub fn cancel_allowed(&self) -> bool {
        self.state == Ict::Proceeding
    }

    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        match &mut self.state {
            // §17.1.1.2: Timer B fires in Calling: tell the TU and terminate.
            Ict::Calling { b, .. } if now >= *b => {
                self.state = Ict::Terminated;
                vec![Action::Timeout, Action::Terminated]
            }
            // §17.1.1.2: Timer A fires: retransmit, interval doubled (no T2 cap for INVITE).
            Ict::Calling { a: Some(a), .. } => {
                send_if(a.fire(now, |i| i.saturating_mul(2)), &self.invite)
            }
            // §17.1.1.2: Timer D fires → Terminated.
            Ict::Completed { d: at, .. } | Ict::Accepted { m: at } if now >= *at => {
                // RFC 6026 §7.2: Timer M fires → Terminated.
                self.state = Ict::Terminated;
                vec![Action::Terminated]
            }
            Ict::Calling { a: None, .. }
            | Ict::Proceeding
            | Ict::Completed { .. }
            | Ict::Accepted { .. }
            | Ict::Terminated => Vec::new(),
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            Ict::Calling { a, b } => Some(earliest(*a, *b)),
            Ict::Completed { d: at, .. } | Ict::Accepted { m: at } => Some(*at),
            Ict::Proceeding | Ict::Terminated => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == Ict::Terminated
    }

    pub fn state(&self) -> InviteClientState {
        match self.state {
            Ict::Calling { .. } => InviteClientState::Calling,
            Ict::Proceeding => InviteClientState::Proceeding,
            Ict::Completed { .. } => InviteClientState::Completed,
            Ict::Accepted { .. } => InviteClientState::Accepted,
            Ict::Terminated => InviteClientState::Terminated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn custom() -> TimerConfig {
        TimerConfig {
            t1: Duration::from_millis(100),
            t2: Duration::from_millis(400),
            t4: Duration::from_millis(1000),
        }
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    trait Machine {
        fn poll(&mut self, now: Instant) -> Vec<Action>;
        fn next_deadline(&self) -> Option<Instant>;
    }

    macro_rules! machine {
        ($($t:ty),*) => {$(
            impl Machine for $t {
                fn poll(&mut self, now: Instant) -> Vec<Action> { <$t>::poll(self, now) }
                fn next_deadline(&self) -> Option<Instant> { <$t>::next_deadline(self) }
            }
        )*};
    }
    machine!(
        InviteServer,
        NonInviteServer,
        Uas2xxRetransmitter,
        NonInviteClient,
        InviteClient
    );

    /// What a machine did when driven by its own deadlines until it terminated, in ms after t0.
    #[derive(Debug, Default, PartialEq)]
    struct Trace {
        sends: Vec<u64>,
        timeout: Option<u64>,
        terminated: Option<u64>,
    }

    /// Drives `m` deadline by deadline; checks that every deadline does something and that a poll
    /// 1 ms early does nothing and leaves the deadline alone.
    fn run(m: &mut impl Machine, t0: Instant) -> Trace {
        let mut trace = Trace::default();
        while let Some(d) = m.next_deadline() {
            assert!(trace.sends.len() < 1000, "runaway machine");
            if d > t0 {
                assert_eq!(
                    m.poll(d - MS),
                    vec![],
                    "poll before the deadline must do nothing"
                );
                assert_eq!(m.next_deadline(), Some(d));
            }
            let ms = (d - t0).as_millis() as u64;
            let actions = m.poll(d);
            assert!(!actions.is_empty(), "deadline at {ms} ms did nothing");
            for action in actions {
                match action {
                    Action::Send(_) => trace.sends.push(ms),
                    Action::Timeout => trace.timeout = Some(ms),
                    Action::Terminated => trace.terminated = Some(ms),
                }
            }
        }
        assert!(
            trace.terminated.is_some(),
            "no deadline left but not terminated"
        );
        trace
    }

    fn trace(sends: &[u64], timeout: Option<u64>, terminated: u64) -> Trace {
        Trace {
            sends: sends.to_vec(),
            timeout,
            terminated: Some(terminated),
        }
    }

    /// Default-timer schedule of G, E (Trying) and the 2xx timer: 0.5, 1, 2, 4, 4, … s intervals.
    const CAPPED_DEFAULT: [u64; 10] = [
        500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ];

    /// The same with `custom()`: 0.1, 0.2, 0.4, 0.4, … s intervals up to 64·T1 = 6.4 s.
    fn capped_custom() -> Vec<u64> {
        [100, 300]
            .into_iter()
            .chain((700..6400).step_by(400))
            .collect()
    }

    #[test]
    fn timer_config_defaults() {
        let cfg = TimerConfig::default();
        assert_eq!((cfg.t1, cfg.t2, cfg.t4), (500 * MS, 4000 * MS, 5000 * MS));
        assert_eq!(cfg.timeout_64t1(), Duration::from_secs(32));
        assert_eq!(cfg.timer_d(), Duration::from_secs(32));
        assert_eq!(custom().timeout_64t1(), 6400 * MS);
        assert_eq!(custom().timer_d(), Duration::from_secs(32));
        let slow = TimerConfig {
            t1: Duration::from_secs(1),
            ..cfg
        };
        assert_eq!(slow.timer_d(), Duration::from_secs(64));
    }

    #[test]
    fn ist_non2xx_unreliable_retransmits_on_g_and_times_out_on_h() {
        let t0 = Instant::now();
        let mut ist = InviteServer::new(TimerConfig::default(), false);
        assert_eq!(ist.respond(t0, 486, b("486")), Some(b("486")));
        assert_eq!(ist.state(), InviteServerState::Completed);
        assert_eq!(ist.next_deadline(), Some(at(t0, 500)));
        assert_eq!(ist.poll(at(t0, 499)), vec![]);
        assert_eq!(ist.poll(at(t0, 500)), vec![Action::Send(b("486"))]);
        assert_eq!(
            run(&mut ist, t0),
            trace(&CAPPED_DEFAULT[1..], Some(32000), 32000)
        );
        assert!(ist.is_terminated());
        assert_eq!(ist.poll(at(t0, 99_000)), vec![]);
        assert_eq!(ist.on_ack(at(t0, 99_000)), AckDisposition::NoMatch);
    }

    #[test]
    fn ist_g_and_h_follow_custom_timers() {
        let t0 = Instant::now();
        let mut ist = InviteServer::new(custom(), false);
        ist.respond(t0, 603, b("603"));
        assert_eq!(run(&mut ist, t0), trace(&capped_custom(), Some(6400), 6400));
    }

    #[test]
    fn ist_next_deadline_is_h_when_g_would_be_later() {
        let t0 = Instant::now();
        let mut ist = InviteServer::new(TimerConfig::default(), false);
        ist.respond(t0, 500, b("500"));
        for &ms in &CAPPED_DEFAULT {
            assert_eq!(ist.poll(at(t0, ms)).len(), 1);
        }
        // Timer G would next fire at 35.5 s; H at 32 s is earlier.
        assert_eq!(ist.next_deadline(), Some(at(t0, 32000)));
    }

    #[test]
    fn ist_ack_stops_g_and_confirmed_lasts_t4() {
        for (cfg, t4) in [(TimerConfig::default(), 5000), (custom(), 1000)] {
            let t0 = Instant::now();
            let mut ist = InviteServer::new(cfg, false);
            ist.respond(t0, 404, b("404"));
            assert_eq!(ist.on_ack(at(t0, 50)), AckDisposition::Absorbed);
            assert_eq!(ist.state(), InviteServerState::Confirmed);
            assert_eq!(ist.on_retransmitted_request(), None);
            assert_eq!(ist.on_ack(at(t0, 60)), AckDisposition::Absorbed);
            assert_eq!(ist.respond(at(t0, 60), 500, b("500")), None);
            // Timer I counts from the first ACK; G and H are gone.
            assert_eq!(run(&mut ist, t0), trace(&[], None, 50 + t4));
        }
    }

    #[test]
    fn ist_reliable_has_no_g_and_zero_i() {
        let t0 = Instant::now();
        let mut ist = InviteServer::new(TimerConfig::default(), true);
        ist.respond(t0, 486, b("486"));
        assert_eq!(ist.next_deadline(), Some(at(t0, 32000)));
        assert_eq!(run(&mut ist.clone(), t0), trace(&[], Some(32000), 32000));
        assert_eq!(ist.on_ack(at(t0, 700)), AckDisposition::Absorbed);
        assert_eq!(ist.state(), InviteServerState::Confirmed);
        assert_eq!(ist.next_deadline(), Some(at(t0, 700)));
        assert_eq!(ist.poll(at(t0, 700)), vec![Action::Terminated]);
    }

    #[test]
    fn ist_proceeding_resends_last_provisional_and_rejects_second_final() {
        let t0 = Instant::now();
        let mut ist = InviteServer::new(TimerConfig::default(), false);
        assert_eq!(ist.on_retransmitted_request(), None);
        assert_eq!(ist.on_ack(t0), AckDisposition::NoMatch);
        assert_eq!(ist.respond(t0, 99, b("bad")), None);
        assert_eq!(ist.respond(t0, 700, b("bad")), None);
        assert_eq!(ist.respond(t0, 100, b("100")), Some(b("100")));
        assert_eq!(ist.respond(t0, 180, b("180")), Some(b("180")));
        assert_eq!(ist.state(), InviteServerState::Proceeding);
        assert_eq!(ist.on_retransmitted_request(), Some(b("180")));
        assert_eq!(
            (ist.next_deadline(), ist.poll(at(t0, 60_000))),
            (None, vec![])
        );
        assert_eq!(ist.respond(t0, 486, b("486")), Some(b("486")));
        for status in [180, 200, 500] {
            assert_eq!(ist.respond(t0, status, b("late")), None, "{status}");
        }
        assert_eq!(ist.on_retransmitted_request(), Some(b("486")));
    }

    #[test]
    fn ist_2xx_accepted_absorbs_invites_passes_acks_and_ends_on_l() {
        for (cfg, l) in [(TimerConfig::default(), 32000), (custom(), 6400)] {
            let t0 = Instant::now();
            let mut ist = InviteServer::new(cfg, false);
            ist.respond(t0, 180, b("180"));
            assert_eq!(ist.respond(t0, 200, b("200")), Some(b("200")));
            assert_eq!(ist.state(), InviteServerState::Accepted);
            assert_eq!(ist.on_retransmitted_request(), None);
            assert_eq!(ist.respond(at(t0, 500), 200, b("200")), Some(b("200")));
            assert_eq!(ist.respond(at(t0, 500), 180, b("180")), None);
            assert_eq!(ist.respond(at(t0, 500), 486, b("486")), None);
            assert_eq!(ist.on_ack(at(t0, 600)), AckDisposition::ForTu);
            assert_eq!(ist.on_ack(at(t0, 700)), AckDisposition::ForTu);
            // Timer L terminates quietly: reporting a missing ACK is the 2xx retransmitter's job.
            assert_eq!(run(&mut ist, t0), trace(&[], None, l));
        }
    }

    #[test]
    fn late_poll_fires_one_retransmission_and_reschedules_from_now() {
        let t0 = Instant::now();
        let mut ist = InviteServer::new(TimerConfig::default(), false);
        ist.respond(t0, 486, b("486"));
        assert_eq!(ist.poll(at(t0, 4000)), vec![Action::Send(b("486"))]);
        assert_eq!(ist.next_deadline(), Some(at(t0, 5000)));
        assert_eq!(ist.poll(at(t0, 4500)), vec![]);
        // Both G and H are overdue: only the timeout fires.
        assert_eq!(
            ist.poll(at(t0, 40_000)),
            vec![Action::Timeout, Action::Terminated]
        );
    }

    #[test]
    fn nist_trying_proceeding_completed_and_j() {
        for (cfg, j) in [(TimerConfig::default(), 32000), (custom(), 6400)] {
            let t0 = Instant::now();
            let mut nist = NonInviteServer::new(cfg, false);
            assert_eq!(nist.state(), NonInviteServerState::Trying);
            assert_eq!(nist.on_retransmitted_request(), None);
            assert_eq!(nist.respond(t0, 100, b("100")), Some(b("100")));
            assert_eq!(nist.state(), NonInviteServerState::Proceeding);
            assert_eq!(nist.on_retransmitted_request(), Some(b("100")));
            assert_eq!(nist.next_deadline(), None);
            assert_eq!(nist.respond(at(t0, 1000), 200, b("200")), Some(b("200")));
            assert_eq!(nist.state(), NonInviteServerState::Completed);
            assert_eq!(nist.respond(at(t0, 1000), 404, b("404")), None);
            assert_eq!(nist.on_retransmitted_request(), Some(b("200")));
            assert_eq!(run(&mut nist, t0), trace(&[], None, 1000 + j));
            assert_eq!(nist.on_retransmitted_request(), None);
        }
    }

    #[test]
    fn nist_reliable_j_is_zero() {
        let t0 = Instant::now();
        let mut nist = NonInviteServer::new(TimerConfig::default(), true);
        assert_eq!(nist.respond(t0, 481, b("481")), Some(b("481")));
        assert_eq!(nist.next_deadline(), Some(t0));
        assert_eq!(nist.poll(t0), vec![Action::Terminated]);
        assert!(nist.is_terminated());
    }

    #[test]
    fn uas_2xx_retransmits_until_64t1_on_any_transport() {
        let t0 = Instant::now();
        let mut r = Uas2xxRetransmitter::new(TimerConfig::default(), t0, b("200"));
        assert_eq!(r.on_retransmitted_invite(), Some(b("200")));
        assert_eq!(run(&mut r, t0), trace(&CAPPED_DEFAULT, Some(32000), 32000));
        assert_eq!(r.on_retransmitted_invite(), None);
        assert!(!r.on_ack());
        let mut r = Uas2xxRetransmitter::new(custom(), t0, b("200"));
        assert_eq!(run(&mut r, t0), trace(&capped_custom(), Some(6400), 6400));
    }

    #[test]
    fn uas_2xx_ack_stops_everything() {
        let t0 = Instant::now();
        let mut r = Uas2xxRetransmitter::new(TimerConfig::default(), t0, b("200"));
        assert_eq!(r.poll(at(t0, 500)), vec![Action::Send(b("200"))]);
        assert!(r.on_ack());
        assert!(r.is_terminated());
        assert_eq!((r.next_deadline(), r.poll(at(t0, 40_000))), (None, vec![]));
        assert!(!r.on_ack());
    }

    #[test]
    fn nict_e_doubles_to_t2_then_f_times_out() {
        let t0 = Instant::now();
        let mut nict = NonInviteClient::new(TimerConfig::default(), false, t0, b("BYE"));
        assert_eq!(nict.state(), NonInviteClientState::Trying);
        assert_eq!(nict.poll(at(t0, 500)), vec![Action::Send(b("BYE"))]);
        assert_eq!(
            run(&mut nict, t0),
            trace(&CAPPED_DEFAULT[1..], Some(32000), 32000)
        );
        let mut nict = NonInviteClient::new(custom(), false, t0, b("BYE"));
        assert_eq!(
            run(&mut nict, t0),
            trace(&capped_custom(), Some(6400), 6400)
        );
    }

    #[test]
    fn nict_proceeding_retransmits_every_t2() {
        let t0 = Instant::now();
        let mut nict = NonInviteClient::new(TimerConfig::default(), false, t0, b("BYE"));
        nict.poll(at(t0, 500));
        assert!(nict.on_response(at(t0, 700), 100));
        assert_eq!(nict.state(), NonInviteClientState::Proceeding);
        // The pending Timer E keeps its deadline; each firing in Proceeding resets it to T2.
        let sends: Vec<u64> = (1500..32000).step_by(4000).collect();
        assert_eq!(run(&mut nict, t0), trace(&sends, Some(32000), 32000));
    }

    #[test]
    fn nict_final_absorbs_retransmissions_and_ends_on_k() {
        for (cfg, reliable, k) in [
            (TimerConfig::default(), false, 5000),
            (custom(), false, 1000),
            (custom(), true, 0),
        ] {
            let t0 = Instant::now();
            let mut nict = NonInviteClient::new(cfg, reliable, t0, b("OPTIONS"));
            assert!(nict.on_response(at(t0, 2000), 200));
            assert_eq!(nict.state(), NonInviteClientState::Completed);
            assert!(!nict.on_response(at(t0, 2100), 200));
            assert!(!nict.on_response(at(t0, 2100), 180));
            assert!(!nict.on_response(at(t0, 2100), 99));
            assert_eq!(run(&mut nict, t0), trace(&[], None, 2000 + k));
        }
    }

    #[test]
    fn nict_reliable_has_no_e() {
        let t0 = Instant::now();
        let mut nict = NonInviteClient::new(TimerConfig::default(), true, t0, b("BYE"));
        assert_eq!(run(&mut nict, t0), trace(&[], Some(32000), 32000));
    }

    #[test]
    fn ict_a_doubles_without_t2_cap_then_b_times_out() {
        let t0 = Instant::now();
        let mut ict = InviteClient::new(TimerConfig::default(), false, t0, b("INVITE"));
        assert_eq!(ict.state(), InviteClientState::Calling);
        assert!(!ict.cancel_allowed());
        let sends = [500, 1500, 3500, 7500, 15500, 31500];
        assert_eq!(run(&mut ict, t0), trace(&sends, Some(32000), 32000));
        // T2 = 200 ms must not cap Timer A: 0.1, 0.2, 0.4, 0.8, 1.6, 3.2 s intervals.
        let cfg = TimerConfig {
            t2: 200 * MS,
            ..custom()
        };
        let mut ict = InviteClient::new(cfg, false, t0, b("INVITE"));
        assert_eq!(
            run(&mut ict, t0),
            trace(&[100, 300, 700, 1500, 3100, 6300], Some(6400), 6400)
        );
        let mut ict = InviteClient::new(TimerConfig::default(), true, t0, b("INVITE"));
        assert_eq!(run(&mut ict, t0), trace(&[], Some(32000), 32000));
    }

    #[test]
    fn ict_provisional_stops_a_and_b_and_allows_cancel() {
        let t0 = Instant::now();
        let mut ict = InviteClient::new(TimerConfig::default(), false, t0, b("INVITE"));
        assert_eq!(
            ict.on_response(at(t0, 600), 180),
            ClientInviteEvent::Provisional
        );
        assert_eq!(
            ict.on_response(at(t0, 700), 183),
            ClientInviteEvent::Provisional
        );
        assert!(ict.cancel_allowed());
        assert_eq!(
            (ict.next_deadline(), ict.poll(at(t0, 60_000))),
            (None, vec![])
        );
    }

    #[test]
    fn ict_2xx_accepted_passes_every_2xx_and_ends_on_m() {
        for (cfg, m) in [(TimerConfig::default(), 32000), (custom(), 6400)] {
            let t0 = Instant::now();
            let mut ict = InviteClient::new(cfg, false, t0, b("INVITE"));
            assert_eq!(
                ict.on_response(at(t0, 50), 200),
                ClientInviteEvent::Accepted2xx
            );
            assert_eq!(ict.state(), InviteClientState::Accepted);
            assert!(!ict.cancel_allowed());
            assert_eq!(
                ict.on_response(at(t0, 60), 200),
                ClientInviteEvent::Accepted2xx
            );
            assert_eq!(ict.on_response(at(t0, 60), 180), ClientInviteEvent::Absorb);
            assert_eq!(ict.on_response(at(t0, 60), 486), ClientInviteEvent::Absorb);
            assert_eq!(ict.set_ack(b("ACK")), None);
            // Timer A is gone: no retransmission of the INVITE.
            assert_eq!(run(&mut ict, t0), trace(&[], None, 50 + m));
        }
    }

    #[test]
    fn ict_non2xx_stores_ack_resends_it_and_ends_on_d() {
        let t0 = Instant::now();
        let mut ict = InviteClient::new(TimerConfig::default(), false, t0, b("INVITE"));
        ict.on_response(at(t0, 100), 180);
        assert_eq!(
            ict.on_response(at(t0, 1000), 486),
            ClientInviteEvent::FinalNon2xx
        );
        assert_eq!(ict.state(), InviteClientState::Completed);
        assert!(!ict.cancel_allowed());
        assert_eq!(ict.set_ack(b("ACK")), Some(b("ACK")));
        assert_eq!(
            ict.on_response(at(t0, 1500), 486),
            ClientInviteEvent::ResendAck(b("ACK"))
        );
        assert_eq!(
            ict.on_response(at(t0, 1500), 200),
            ClientInviteEvent::Absorb
        );
        assert_eq!(
            ict.on_response(at(t0, 1500), 180),
            ClientInviteEvent::Absorb
        );
        assert_eq!(run(&mut ict, t0), trace(&[], None, 33000));
        assert_eq!(ict.set_ack(b("ACK")), None);
        assert_eq!(
            ict.on_response(at(t0, 40_000), 486),
            ClientInviteEvent::Absorb
        );
    }

    #[test]
    fn ict_timer_d_zero_when_reliable_and_at_least_64t1() {
        let t0 = Instant::now();
        let mut ict = InviteClient::new(TimerConfig::default(), true, t0, b("INVITE"));
        assert_eq!(ict.on_response(t0, 503), ClientInviteEvent::FinalNon2xx);
        assert_eq!(ict.set_ack(b("ACK")), Some(b("ACK")));
        assert_eq!(run(&mut ict, t0), trace(&[], None, 0));
        let slow = TimerConfig {
            t1: Duration::from_secs(1),
            ..TimerConfig::default()
        };
        let mut ict = InviteClient::new(slow, false, t0, b("INVITE"));
        ict.on_response(t0, 503);
        assert_eq!(run(&mut ict, t0), trace(&[], None, 64000));
    }
}
