//! The ACD's owner: one task holds the pure [`Acd`] and is the only one to change it. Call
//! tasks and the HTTP API send it [`AcdCommand`]s; it applies each with the current time, then
//! carries out the decisions: ring and cancel notices go to the call tasks, agent changes to
//! the event bus, and a fresh [`AcdSnapshot`] is published for the rules, metrics and the API.
//!
//! Commands arrive on an unbounded channel: every sender is bounded on its own (a call sends
//! a handful of commands in its life and `sip.max_calls` bounds the calls; the API is one
//! request, one command), and a call task must never wait for the ACD. Each command carries the
//! time it was sent: how long commands wait before the ACD takes them is one of the overload
//! guard's signals ([`AcdHandle::take_max_wait`], [`crate::overload`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use super::{
    Acd, AcdDecision, AcdError, AcdSettings, AcdStore, AgentState, CallId, LegFailure,
    OverflowReason, PauseReason, QueueStats,
};
use crate::events::{CallEvent, CallEventKind};
use crate::hash::HashMap;
use crate::rules::QueueState;
use crate::rules::model::{Agent, Queue};

/// How long changes made by calls may wait before the ACD publishes them in a fresh snapshot
/// (the dashboard, the API, metrics and the rules' queue conditions read it). See
/// [`AcdService::run`].
pub const PUBLISH_EVERY: Duration = Duration::from_millis(2);

/// Commands whose effect the snapshot shows at once: agent operations (API, feature codes,
/// registrations) and new rules, which a user or a test reads back right after.
fn publishes_at_once(command: &AcdCommand) -> bool {
    matches!(
        command,
        AcdCommand::Agent { .. } | AcdCommand::Reconfigure { .. }
    )
}

/// What the ACD tells one call's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcdNotice {
    /// Place the agent leg now. `freed_at` is when the event that let this happen (an agent
    /// becoming free, a caller joining) reached the ACD, for the dispatch latency figure.
    Ring {
        agent: String,
        queue: String,
        ring_timeout: Duration,
        freed_at: Instant,
        /// What made the ring possible: `caller_joined` or `agent_free`.
        trigger: &'static str,
    },
    /// Stop ringing this agent: `reason` is `no_answer` (ring timeout) or `withdrawn`
    /// (another agent answered, the agent logged out or became unreachable, the caller left).
    CancelRing { agent: String, reason: &'static str },
    /// The ACD took this agent's answer: bridge the call.
    Connected { agent: String },
    /// Leave the queue by its overflow action.
    Overflow {
        queue: String,
        reason: OverflowReason,
    },
    /// The answer to [`AcdCommand::Position`]: 1 = next in line.
    Position { position: u32, waiting: u32 },
}

/// Operations on an agent (HTTP API, feature codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOp {
    Login,
    Logout,
    Pause(String),
    Unpause,
    /// End wrap-up early ("ready").
    Ready,
    /// Back to work: unpause when paused, ready when in wrap-up.
    Resume,
    /// The phone registered / answered a keep-alive (`true`) or stopped (`false`).
    Reachable(bool),
}

pub enum AcdCommand {
    Join {
        call: CallId,
        /// The SIP Call-ID, shared with the call's own events.
        call_id: Arc<str>,
        queue: String,
        priority: u8,
        notices: mpsc::UnboundedSender<AcdNotice>,
    },
    /// The caller hung up, left by key, or the connected call ended (either side).
    Ended {
        call: CallId,
    },
    Answered {
        call: CallId,
        agent: String,
    },
    LegFailed {
        call: CallId,
        agent: String,
        failure: LegFailure,
    },
    Position {
        call: CallId,
    },
    /// The rules changed: new queue and agent settings.
    Reconfigure {
        queues: Vec<Queue>,
        agents: Vec<Agent>,
        rules_version: Arc<str>,
    },
    Agent {
        agent: String,
        op: AgentOp,
        reply: Option<oneshot::Sender<Result<AgentView, AcdError>>>,
    },
}

/// One agent as the API and dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentView {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub state: &'static str,
    /// Pause reason, if paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The ACD's call number the agent rings for or talks with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// Seconds in the current state (as of `entered`; [`AgentView::fresh`] brings it up to
    /// date).
    pub since_secs: u64,
    pub queues: Arc<[String]>,
    /// When the agent entered its state.
    #[serde(skip)]
    pub entered: Option<Instant>,
}

impl AgentView {
    /// This view with `since_secs` counted up to now.
    pub fn fresh(&self, now: Instant) -> AgentView {
        let mut view = self.clone();
        if let Some(entered) = self.entered {
            view.since_secs = now.saturating_duration_since(entered).as_secs();
        }
        view
    }
}

/// One queue's live figures.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct QueueView {
    pub waiting: u32,
    pub ringing: u32,
    pub longest_wait_secs: f64,
    pub logged_in: u32,
    pub available: u32,
    pub reserved: u32,
    pub on_call: u32,
    pub wrap_up: u32,
    pub paused: u32,
    pub unreachable: u32,
    pub logged_out: u32,
}

/// What everyone else may read without asking the ACD task (swapped after every command).
#[derive(Debug, Default)]
pub struct AcdSnapshot {
    pub queues: BTreeMap<String, QueueView>,
    /// One slot per agent, in agent id order, shared by every snapshot until the rules change
    /// the agents: a slot gets a new view when its agent changed (see [`AgentView::fresh`]
    /// for the time in state). (Copying every agent's view into each snapshot, after every
    /// command, cost the ACD a few percent of the engine's CPU with 200 agents.)
    pub agents: Arc<Vec<ArcSwap<AgentView>>>,
}

impl AcdSnapshot {
    /// The queue states the rule engine decides with.
    pub fn queue_states(&self) -> BTreeMap<String, QueueState> {
        self.queues
            .iter()
            .map(|(id, q)| {
                (
                    id.clone(),
                    QueueState {
                        logged_in_agents: q.logged_in,
                        waiting_callers: q.waiting + q.ringing,
                        estimated_wait_secs: None,
                    },
                )
            })
            .collect()
    }
}

/// Dispatch latency (the ACD event that made a ring possible → INVITE on the wire) as
/// fixed-bucket histograms, one per trigger, cheap enough to record for every ring.
pub struct Latency {
    /// Microsecond bucket bounds.
    bounds: Vec<u64>,
    /// [caller_joined, agent_free] × (bounds + 1) counts.
    counts: [Vec<AtomicU64>; 2],
    sum_us: [AtomicU64; 2],
}

/// One trigger's histogram: (trigger, cumulative (upper bound s, count) buckets, sum in s).
pub type LatencyHistogram = (&'static str, Vec<(f64, u64)>, f64);

/// Tells whether an agent's phone can be reached now.
pub type Reachability = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The triggers the histogram tells apart.
pub const TRIGGERS: [&str; 2] = ["caller_joined", "agent_free"];

impl Default for Latency {
    fn default() -> Self {
        let bounds: Vec<u64> = vec![
            10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000,
            10_000, 25_000, 50_000, 100_000, 1_000_000,
        ];
        let counts = || (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Latency {
            counts: [counts(), counts()],
            bounds,
            sum_us: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

impl Latency {
    pub fn record(&self, trigger: &str, elapsed: Duration) {
        let which = usize::from(trigger != TRIGGERS[0]);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = self.bounds.partition_point(|&b| b < us);
        self.counts[which][slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us[which].fetch_add(us, Ordering::Relaxed);
    }

    /// For each trigger: (upper bound in seconds, cumulative count) per bucket, +Inf last, and
    /// the sum in seconds.
    pub fn buckets(&self) -> Vec<LatencyHistogram> {
        TRIGGERS
            .iter()
            .enumerate()
            .map(|(which, trigger)| {
                let mut total = 0;
                let mut out = Vec::with_capacity(self.bounds.len() + 1);
                for (i, count) in self.counts[which].iter().enumerate() {
                    total += count.load(Ordering::Relaxed);
                    let bound = self
                        .bounds
                        .get(i)
                        .map_or(f64::INFINITY, |&b| b as f64 / 1e6);
                    out.push((bound, total));
                }
                let sum = self.sum_us[which].load(Ordering::Relaxed) as f64 / 1e6;
                (*trigger, out, sum)
            })
            .collect()
    }
}

/// The ACD's end of the command channel: each command with the time it was sent.
pub struct AcdInbox(mpsc::UnboundedReceiver<(Instant, AcdCommand)>);

/// The handle everyone holds: send commands, read the snapshot.
#[derive(Clone)]
pub struct AcdHandle {
    tx: mpsc::UnboundedSender<(Instant, AcdCommand)>,
    snapshot: Arc<ArcSwap<AcdSnapshot>>,
    next_call: Arc<AtomicU64>,
    pub latency: Arc<Latency>,
    /// The longest a command waited in the channel since the last [`AcdHandle::take_max_wait`],
    /// in microseconds.
    max_wait_us: Arc<AtomicU64>,
}

impl AcdHandle {
    /// A number for a call about to join (unique for the engine's life).
    pub fn new_call_id(&self) -> CallId {
        CallId(self.next_call.fetch_add(1, Ordering::Relaxed))
    }

    pub fn send(&self, command: AcdCommand) {
        if self.tx.send((Instant::now(), command)).is_err() {
            debug!("ACD stopped; command dropped");
        }
    }

    /// The longest any command waited in the channel before the ACD took it, since the last
    /// call (zero if none waited or none came).
    pub fn take_max_wait(&self) -> Duration {
        Duration::from_micros(self.max_wait_us.swap(0, Ordering::Relaxed))
    }

    pub fn snapshot(&self) -> Arc<AcdSnapshot> {
        self.snapshot.load_full()
    }

    /// Applies `op` to `agent` and waits for the result.
    pub async fn agent(&self, agent: &str, op: AgentOp) -> Result<AgentView, AcdError> {
        let (reply, rx) = oneshot::channel();
        self.send(AcdCommand::Agent {
            agent: agent.to_string(),
            op,
            reply: Some(reply),
        });
        rx.await
            .unwrap_or_else(|_| Err(AcdError::UnknownAgent(agent.to_string())))
    }
}

struct Waiting {
    call_id: Arc<str>,
    notices: mpsc::UnboundedSender<AcdNotice>,
}

/// The ACD task's state.
pub struct AcdService {
    acd: Acd,
    calls: HashMap<CallId, Waiting>,
    /// When each agent entered its current state (for the API).
    since: HashMap<String, Instant>,
    snapshot: Arc<ArcSwap<AcdSnapshot>>,
    events: Option<Arc<dyn Fn(CallEvent) + Send + Sync>>,
    reachable: Option<Reachability>,
    rules_version: Arc<str>,
    /// The ACD's clock origin, for logging instants (`acd_us`) that tests and operators can
    /// compare exactly.
    started: Instant,
    /// Why the decisions being carried out came about (for the latency histogram).
    trigger: &'static str,
    /// Carrying out the decisions of a timer poll.
    polling: bool,
    /// Agents changed since the last snapshot (`None`: rebuild every view).
    changed: Option<std::collections::BTreeSet<String>>,
    /// The agents' view slots (see [`AcdSnapshot::agents`]), with each agent's index.
    views: Arc<Vec<ArcSwap<AgentView>>>,
    view_index: HashMap<String, usize>,
    /// Shared with the handles: the longest wait of a command (see [`AcdHandle::take_max_wait`]).
    max_wait_us: Arc<AtomicU64>,
}

impl AcdService {
    /// The ACD for these queues and agents (all logged out) and its handle.
    pub fn new<'a>(
        queues: impl IntoIterator<Item = &'a Queue>,
        agents: impl IntoIterator<Item = &'a Agent>,
        settings: AcdSettings,
        rules_version: Arc<str>,
        now: Instant,
    ) -> (AcdService, AcdHandle, AcdInbox) {
        let acd = Acd::new(queues, agents, settings, now);
        let since = acd.agents.keys().map(|a| (a.clone(), now)).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let snapshot = Arc::new(ArcSwap::from_pointee(AcdSnapshot::default()));
        let max_wait_us = Arc::new(AtomicU64::new(0));
        let handle = AcdHandle {
            tx,
            snapshot: snapshot.clone(),
            next_call: Arc::new(AtomicU64::new(1)),
            latency: Arc::new(Latency::default()),
            max_wait_us: max_wait_us.clone(),
        };
        let mut service = AcdService {
            acd,
            since,
            calls: HashMap::default(),
            snapshot,
            events: None,
            reachable: None,
            rules_version,
            started: now,
            trigger: "agent_free",
            polling: false,
            changed: None,
            views: Default::default(),
            view_index: HashMap::default(),
            max_wait_us,
        };
        service.publish(now);
        (service, handle, AcdInbox(rx))
    }

    /// Whether an agent's phone can be reached now (registered agents: a valid binding).
    /// Agents who log in without a reachable phone are marked unreachable at once.
    pub fn with_reachability(mut self, reachable: Reachability) -> Self {
        self.reachable = Some(reachable);
        self
    }

    /// Where agent changes go (the call event bus).
    pub fn with_events(mut self, publish: Arc<dyn Fn(CallEvent) + Send + Sync>) -> Self {
        self.events = Some(publish);
        self
    }

    /// Runs until every handle is dropped.
    ///
    /// A fresh snapshot follows every batch of commands, except that changes made by calls
    /// (joins, answers, ends) are published at most every [`PUBLISH_EVERY`]: under load the
    /// ACD takes thousands of small batches a second, and building the snapshot for each was a
    /// quarter of its work. Agent operations and new rules are published at once.
    pub async fn run(mut self, inbox: AcdInbox) {
        let mut rx = inbox.0;
        let mut timer = crate::timer::DeadlineTimer::default();
        let mut published = Instant::now();
        // Changes not yet in the snapshot.
        let mut dirty = false;
        loop {
            let publish_due = dirty.then(|| published + PUBLISH_EVERY);
            timer.set(match (self.acd.next_deadline(), publish_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            });
            let now = tokio::select! {
                command = rx.recv() => match command {
                    Some((sent, command)) => {
                        let now = Instant::now();
                        self.waited(sent, now);
                        let mut urgent = publishes_at_once(&command);
                        self.handle(command, now);
                        // Take whatever else is waiting before publishing once.
                        while let Ok((sent, command)) = rx.try_recv() {
                            let now = Instant::now();
                            self.waited(sent, now);
                            urgent |= publishes_at_once(&command);
                            self.handle(command, now);
                        }
                        dirty = true;
                        // Publish later (the timer) if the last snapshot is too recent.
                        if !urgent && now.saturating_duration_since(published) < PUBLISH_EVERY {
                            continue;
                        }
                        now
                    }
                    None => break,
                },
                () = timer.fired(), if timer.is_armed() => {
                    let now = Instant::now();
                    // Timeouts free agents (wrap-up over, ring timed out) or widen a caller's
                    // pool (escalation): either way an agent became usable.
                    self.trigger = "agent_free";
                    let decisions = self.acd.poll(now);
                    self.polling = true;
                    self.carry_out(decisions, now);
                    self.polling = false;
                    now
                }
            };
            self.publish(now);
            published = now;
            dirty = false;
        }
    }

    /// Notes how long a command sent at `sent` waited until `now`.
    fn waited(&self, sent: Instant, now: Instant) {
        let waited = now.saturating_duration_since(sent).as_micros();
        self.max_wait_us
            .fetch_max(u64::try_from(waited).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Applies one command (public for tests that drive the service without a runtime).
    pub fn handle(&mut self, command: AcdCommand, now: Instant) {
        self.trigger = match command {
            AcdCommand::Join { .. } => "caller_joined",
            _ => "agent_free",
        };
        let result = match command {
            AcdCommand::Join {
                call,
                call_id,
                queue,
                priority,
                notices,
            } => {
                self.calls.insert(call, Waiting { call_id, notices });
                let result = self.acd.join(call, &queue, priority, now);
                if result.is_err() {
                    self.calls.remove(&call);
                }
                result
            }
            AcdCommand::Ended { call } => {
                let result = self.acd.call_ended(call, now);
                self.calls.remove(&call);
                match result {
                    // Overflowed or never joined: nothing to do.
                    Err(AcdError::UnknownCall(_)) => Ok(Vec::new()),
                    other => other,
                }
            }
            AcdCommand::Answered { call, agent } => {
                let result = self.acd.answered(call, &agent, now);
                if let Err(AcdError::NotRinging { .. } | AcdError::UnknownCall(_)) = result {
                    // Too late (the ring timed out or the caller left in the same instant):
                    // the call task hangs the agent up when it sees no Connected.
                    if let Some(w) = self.calls.get(&call) {
                        let _ = w.notices.send(AcdNotice::CancelRing {
                            agent: agent.clone(),
                            reason: "withdrawn",
                        });
                    }
                }
                result
            }
            AcdCommand::LegFailed {
                call,
                agent,
                failure,
            } => match self.acd.leg_failed(call, &agent, failure, now) {
                // The ACD already gave up on this leg (ring timeout, caller gone).
                Err(AcdError::NotRinging { .. } | AcdError::UnknownCall(_)) => Ok(Vec::new()),
                other => other,
            },
            AcdCommand::Position { call } => {
                self.answer_position(call);
                Ok(Vec::new())
            }
            AcdCommand::Reconfigure {
                queues,
                agents,
                rules_version,
            } => {
                info!(%rules_version, queues = queues.len(), agents = agents.len(),
                    "ACD follows the new rules");
                let decisions = self.acd.reconfigure(&queues, &agents, now);
                for a in &agents {
                    self.since.entry(a.id.clone()).or_insert(now);
                }
                self.rules_version = rules_version;
                self.changed = None;
                Ok(decisions)
            }
            AcdCommand::Agent { agent, op, reply } => {
                let result = self.agent_op(&agent, op, now);
                let answer = match &result {
                    Ok(_) => self
                        .agent_view(&agent, now, None)
                        .ok_or_else(|| AcdError::UnknownAgent(agent.clone())),
                    Err(e) => Err(e.clone()),
                };
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
                result
            }
        };
        match result {
            Ok(decisions) => self.carry_out(decisions, now),
            Err(error) => debug!(%error, "ACD refused a command"),
        }
    }

    fn agent_op(
        &mut self,
        agent: &str,
        op: AgentOp,
        now: Instant,
    ) -> Result<Vec<AcdDecision>, AcdError> {
        let reachable = self.reachable.as_ref().is_none_or(|f| f(agent));
        let acd = &mut self.acd;
        match op {
            AgentOp::Login if !reachable => {
                let mut decisions = acd.login(agent, now)?;
                decisions.extend(acd.unreachable(agent, now)?);
                Ok(decisions)
            }
            AgentOp::Login => acd.login(agent, now),
            AgentOp::Logout => acd.logout(agent, now),
            AgentOp::Pause(reason) => acd.pause(agent, PauseReason::Requested(reason), now),
            AgentOp::Unpause => acd.unpause(agent, now),
            AgentOp::Ready => acd.wrap_up_done(agent, now),
            AgentOp::Resume => match acd.agent_state(agent) {
                Some(AgentState::WrapUp { .. }) => acd.wrap_up_done(agent, now),
                _ => acd.unpause(agent, now),
            },
            AgentOp::Reachable(true) => match acd.agent_state(agent) {
                Some(AgentState::Unreachable) => acd.reachable(agent, now),
                Some(_) => Ok(Vec::new()),
                None => Err(AcdError::UnknownAgent(agent.to_string())),
            },
            AgentOp::Reachable(false) => match acd.agent_state(agent) {
                Some(AgentState::LoggedOut | AgentState::Unreachable) => Ok(Vec::new()),
                Some(_) => acd.unreachable(agent, now),
                None => Err(AcdError::UnknownAgent(agent.to_string())),
            },
        }
    }

    fn answer_position(&self, call: CallId) {
        let Some(w) = self.calls.get(&call) else {
            return;
        };
        let Some(super::CallStatus::Waiting { queue }) = self.acd.call_status(call) else {
            return;
        };
        let (position, waiting) = self.acd.position(call, &queue);
        let _ = w.notices.send(AcdNotice::Position { position, waiting });
    }

    fn notify(&mut self, call: CallId, notice: AcdNotice, now: Instant) {
        let delivered = self
            .calls
            .get(&call)
            .is_some_and(|w| w.notices.send(notice).is_ok());
        if !delivered {
            // The call's task is gone (it ended or crashed): never leave the caller's agent
            // reserved for a call that no longer exists.
            self.calls.remove(&call);
            if let Ok(decisions) = self.acd.call_ended(call, now) {
                self.carry_out(decisions, now);
            }
        }
    }

    fn carry_out(&mut self, decisions: Vec<AcdDecision>, now: Instant) {
        for decision in decisions {
            match decision {
                AcdDecision::Ring {
                    call,
                    agent,
                    queue,
                    ring_timeout,
                } => {
                    debug!(%call, %agent, %queue, "ring agent");
                    self.notify(
                        call,
                        AcdNotice::Ring {
                            agent,
                            queue,
                            ring_timeout,
                            freed_at: now,
                            trigger: self.trigger,
                        },
                        now,
                    );
                }
                AcdDecision::CancelRing { call, agent } => {
                    // Cancels decided by a timer are ring timeouts; all others withdrawals.
                    let reason = if self.polling {
                        "no_answer"
                    } else {
                        "withdrawn"
                    };
                    self.notify(call, AcdNotice::CancelRing { agent, reason }, now);
                }
                AcdDecision::Connected { call, agent } => {
                    self.notify(call, AcdNotice::Connected { agent }, now);
                }
                AcdDecision::Overflow {
                    call,
                    queue,
                    reason,
                } => {
                    self.notify(call, AcdNotice::Overflow { queue, reason }, now);
                    self.calls.remove(&call);
                }
                AcdDecision::AgentChanged { agent, state } => {
                    if let Some(changed) = self.changed.as_mut() {
                        changed.insert(agent.clone());
                    }
                    self.since.insert(agent.clone(), now);
                    let acd_us = now.saturating_duration_since(self.started).as_micros() as u64;
                    // For an available agent, since when it has been free on the ACD's clock
                    // (a withdrawn ring keeps the agent's place: it is free since before).
                    let idle_us = match &state {
                        AgentState::Available { since } => {
                            since.saturating_duration_since(self.started).as_micros() as u64
                        }
                        _ => acd_us,
                    };
                    // The states of a call's course (ringing, talking, wrap-up, free again) are
                    // `debug`: at the default level they would be three lines per call. Leaving
                    // service (logged out, paused, unreachable) is `info`.
                    match state {
                        AgentState::LoggedOut
                        | AgentState::Paused { .. }
                        | AgentState::Unreachable => {
                            info!(event = "agent", %agent, state = state.name(), acd_us, idle_us, "agent state")
                        }
                        _ => {
                            debug!(event = "agent", %agent, state = state.name(), acd_us, idle_us, "agent state")
                        }
                    }
                    if let Some(publish) = &self.events {
                        let call_id = state
                            .call()
                            .and_then(|c| self.calls.get(&c))
                            .map(|w| w.call_id.clone())
                            .unwrap_or_default();
                        publish(CallEvent {
                            call_id,
                            at: chrono::Utc::now(),
                            rules_version: self.rules_version.clone(),
                            kind: CallEventKind::Agent {
                                agent,
                                state: state.name().to_string(),
                                reason: pause_reason(&state),
                            },
                        });
                    }
                }
            }
        }
    }

    /// The agent's view now. Its id, name and queue list change only with the rules: they are
    /// taken (shared) from `previous`, the agent's last view, when there is one.
    fn agent_view(
        &self,
        id: &str,
        now: Instant,
        previous: Option<&AgentView>,
    ) -> Option<AgentView> {
        // The ACD's own copy of the rules: agents it retired are no longer shown.
        let agent = &self
            .acd
            .agents
            .get(id)
            .filter(|_| !self.acd.is_retired(id))?
            .config;
        let state = self.acd.agent_state(id)?;
        let (id, name, queues) = match previous {
            Some(view) => (view.id.clone(), view.name.clone(), view.queues.clone()),
            None => {
                let queues: Vec<String> = self
                    .acd
                    .queues
                    .values()
                    .map(|q| &q.config)
                    .filter(|q| {
                        agent
                            .skills
                            .get(&q.skill)
                            .is_some_and(|l| *l >= q.min_level)
                    })
                    .map(|q| q.id.clone())
                    .collect();
                (id.into(), agent.name.as_str().into(), queues.into())
            }
        };
        Some(AgentView {
            state: state.name(),
            reason: pause_reason(&state),
            call: state.call().map(|c| c.to_string()),
            since_secs: self
                .since
                .get(&*id)
                .map_or(0, |t| now.saturating_duration_since(*t).as_secs()),
            entered: self.since.get(&*id).copied(),
            id,
            name,
            queues,
        })
    }

    fn publish(&mut self, now: Instant) {
        let queues = self
            .acd
            .queues
            .keys()
            .filter_map(|id| {
                let stats: QueueStats = self.acd.queue_stats(id, now)?;
                let a = stats.agents;
                Some((
                    id.clone(),
                    QueueView {
                        waiting: stats.waiting,
                        ringing: stats.ringing,
                        longest_wait_secs: stats.longest_wait.map_or(0.0, |d| d.as_secs_f64()),
                        logged_in: a.logged_in(),
                        available: a.available,
                        reserved: a.reserved,
                        on_call: a.on_call,
                        wrap_up: a.wrap_up,
                        paused: a.paused,
                        unreachable: a.unreachable,
                        logged_out: a.logged_out,
                    },
                ))
            })
            .collect();
        // Only the agents that changed get a new view (a call changes one or two agents; with
        // hundreds of agents, rebuilding all views per batch was the ACD's main cost).
        match self.changed.take() {
            None => {
                let views: Vec<ArcSwap<AgentView>> = self
                    .acd
                    .agents
                    .keys()
                    .filter_map(|id| self.agent_view(id, now, None))
                    .map(ArcSwap::from_pointee)
                    .collect();
                self.view_index = views
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.load().id.to_string(), i))
                    .collect();
                self.views = Arc::new(views);
            }
            Some(changed) => {
                for id in changed {
                    if let Some(&i) = self.view_index.get(&id)
                        && let Some(slot) = self.views.get(i)
                        && let Some(view) = self.agent_view(&id, now, Some(&slot.load()))
                    {
                        slot.store(Arc::new(view));
                    }
                }
            }
        }
        self.changed = Some(Default::default());
        let agents = self.views.clone();
        self.snapshot
            .store(Arc::new(AcdSnapshot { queues, agents }));
    }
}

fn pause_reason(state: &AgentState) -> Option<String> {
    match state {
        AgentState::Paused {
            reason: PauseReason::Requested(text),
        } => Some(text.clone()),
        AgentState::Paused {
            reason: PauseReason::NoAnswer,
        } => Some("no answer".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_command_wait_is_taken_once() {
        let start = Instant::now();
        let (service, handle, _inbox) = AcdService::new(
            std::iter::empty::<&Queue>(),
            std::iter::empty::<&Agent>(),
            AcdSettings::default(),
            "".into(),
            start,
        );
        assert_eq!(handle.take_max_wait(), Duration::ZERO);
        for ms in [3, 7, 2] {
            service.waited(start, start + Duration::from_millis(ms));
        }
        assert_eq!(handle.take_max_wait(), Duration::from_millis(7));
        assert_eq!(handle.take_max_wait(), Duration::ZERO, "taken");
        // A clock that went backwards counts as no wait.
        service.waited(start + Duration::from_millis(5), start);
        assert_eq!(handle.take_max_wait(), Duration::ZERO);
    }

    #[tokio::test]
    async fn commands_that_waited_for_the_acd_task_show_their_wait() {
        let (service, handle, inbox) = AcdService::new(
            std::iter::empty::<&Queue>(),
            std::iter::empty::<&Agent>(),
            AcdSettings::default(),
            "".into(),
            Instant::now(),
        );
        // Sent while the ACD task does not run yet: it waits at least until the task starts.
        let (reply, answer) = oneshot::channel();
        let sent = Instant::now();
        handle.send(AcdCommand::Agent {
            agent: "nobody".into(),
            op: AgentOp::Login,
            reply: Some(reply),
        });
        while sent.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let task = tokio::spawn(service.run(inbox));
        let result = answer.await.expect("the ACD answers");
        assert!(result.is_err(), "an unknown agent: {result:?}");
        let waited = handle.take_max_wait();
        assert!(
            waited >= Duration::from_millis(2) && waited <= sent.elapsed(),
            "{waited:?}"
        );
        drop(handle);
        task.await.expect("the ACD stops when its handles are gone");
    }
}
