//! The ACD (automatic call distribution): department queues, agents and their states, and the
//! strategies that match a waiting caller with a free agent.
//!
//! Pure: no sockets, no tasks, no clock. Every method takes `now` and returns the decisions the
//! caller's task must carry out ([`AcdDecision`]: ring this agent, cancel that ring, overflow
//! this caller…). The state sits behind one interface, [`AcdStore`], so a shared store
//! (Redis, see `DESIGN.md`) can replace the in-memory [`Acd`] later.
//!
//! - [`agent`] — the agent state machine (`transition` is total: a new state or an error).
//! - [`queue`] — queue entries, their order (priority, then entry time) and skill escalation.
//! - [`strategy`] — picking agents: longest-idle, round-robin, fewest-calls, ring-all, linear,
//!   random (deterministic).
//! - [`engine`] — [`Acd`], tying queues and agents together.

pub mod agent;
pub mod engine;
pub mod features;
pub mod keepalive;
pub mod queue;
pub mod service;
pub mod strategy;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use agent::{AgentError, AgentEvent, AgentState, LegFailure, PauseReason};
pub use engine::{Acd, AcdSettings, AgentCounts, CallStatus, QueueStats};

use crate::rules::QueueState;

/// A call as the ACD knows it; the call task chooses the number (unique while the call lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Why a caller leaves the queue for the queue's overflow route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowReason {
    /// `max_length` reached when joining → the queue's `on_full`.
    Full,
    /// Waited `max_wait_secs` → `on_max_wait`.
    MaxWait,
    /// No agent of the queue is logged in → `on_no_agents`.
    NoAgents,
}

/// What the call tasks must do. Also the source of the queue/agent `CallEvent`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcdDecision {
    /// Place the agent leg; report the answer or failure back before `ring_timeout` (the ACD
    /// also fails the leg itself when polled after it).
    Ring {
        call: CallId,
        agent: String,
        queue: String,
        ring_timeout: Duration,
    },
    /// Cancel this agent leg (caller gone, another agent answered first, agent logged out).
    CancelRing { call: CallId, agent: String },
    /// The agent answered: bridge the legs.
    Connected { call: CallId, agent: String },
    /// The caller leaves the queue; route the call by the queue's overflow action.
    Overflow {
        call: CallId,
        queue: String,
        reason: OverflowReason,
    },
    /// An agent changed state (for events, metrics and the dashboard).
    AgentChanged { agent: String, state: AgentState },
}

/// Calls the ACD cannot accept at all (programming or rule errors, not queue conditions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("unknown queue `{0}`")]
    UnknownQueue(String),
    #[error("unknown agent `{0}`")]
    UnknownAgent(String),
    #[error("{0} is not known to the ACD")]
    UnknownCall(CallId),
    #[error("{0} is already in the ACD")]
    DuplicateCall(CallId),
    #[error("{call} is not ringing agent `{agent}`")]
    NotRinging { call: CallId, agent: String },
    #[error("agent `{agent}`: {error}")]
    Agent { agent: String, error: AgentError },
}

/// The one interface to the ACD's state. Every command takes `now` and returns the decisions
/// to carry out; nothing here blocks or does I/O.
pub trait AcdStore {
    /// A caller joins `queue`. Refusals are decisions (`Overflow { Full | NoAgents }`).
    fn join(
        &mut self,
        call: CallId,
        queue: &str,
        priority: u8,
        now: Instant,
    ) -> Result<Vec<AcdDecision>, AcdError>;
    /// The call ended (caller hung up or left by key while waiting or ringing, or either side
    /// hung up a connected call).
    fn call_ended(&mut self, call: CallId, now: Instant) -> Result<Vec<AcdDecision>, AcdError>;
    /// The agent answered the offered `call`.
    fn answered(
        &mut self,
        call: CallId,
        agent: &str,
        now: Instant,
    ) -> Result<Vec<AcdDecision>, AcdError>;
    /// The agent leg failed; the caller keeps its place at the head of the queue.
    fn leg_failed(
        &mut self,
        call: CallId,
        agent: &str,
        failure: LegFailure,
        now: Instant,
    ) -> Result<Vec<AcdDecision>, AcdError>;
    fn login(&mut self, agent: &str, now: Instant) -> Result<Vec<AcdDecision>, AcdError>;
    fn logout(&mut self, agent: &str, now: Instant) -> Result<Vec<AcdDecision>, AcdError>;
    fn pause(
        &mut self,
        agent: &str,
        reason: PauseReason,
        now: Instant,
    ) -> Result<Vec<AcdDecision>, AcdError>;
    fn unpause(&mut self, agent: &str, now: Instant) -> Result<Vec<AcdDecision>, AcdError>;
    fn wrap_up_done(&mut self, agent: &str, now: Instant) -> Result<Vec<AcdDecision>, AcdError>;
    fn unreachable(&mut self, agent: &str, now: Instant) -> Result<Vec<AcdDecision>, AcdError>;
    fn reachable(&mut self, agent: &str, now: Instant) -> Result<Vec<AcdDecision>, AcdError>;
    /// Timeouts: ring timeouts, wrap-up ends, max waits, escalations, retry pauses.
    fn poll(&mut self, now: Instant) -> Vec<AcdDecision>;
    /// When `poll` next has something to do.
    fn next_deadline(&self) -> Option<Instant>;
    fn agent_state(&self, agent: &str) -> Option<AgentState>;
    fn call_status(&self, call: CallId) -> Option<CallStatus>;
    fn queue_stats(&self, queue: &str, now: Instant) -> Option<QueueStats>;
    /// What the rule engine needs (`no_agents`, `queue_full`, `wait_above`).
    fn queue_state(&self, queue: &str) -> Option<QueueState>;
}
