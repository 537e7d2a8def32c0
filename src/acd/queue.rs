//! Queue entries and their order. An entry keeps its key (priority, entry time, sequence) for
//! its whole life: a caller whose agent leg failed is still at its old place — the head.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::CallId;
use crate::rules::model::Escalation;

/// One caller in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub call: CallId,
    pub queue: String,
    pub priority: u8,
    pub entered: Instant,
    /// Join order, to break ties between equal entry times.
    pub seq: u64,
    /// Agents ringing for this caller now (empty: waiting).
    pub ringing: Vec<String>,
    /// Whom this caller is not offered to, until the instant given (after failed legs).
    pub skip: Vec<(Skip, Instant)>,
    /// When the required skill level drops next (a deadline while waiting).
    pub next_escalation: Option<Instant>,
    /// This entry's key in the ACD's deadline index: when it next needs a look (max wait,
    /// escalation, a skip running out) while waiting.
    pub deadline: Option<Instant>,
}

/// Whom a waiting caller is kept from for a while after a failed agent leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The agent whose leg failed (other agents are tried first).
    Agent(String),
    /// Every agent: the engine itself could not place the leg (`LegFailure::Local`).
    Everyone,
}

/// Dispatch order: higher priority first, then earlier entry, then earlier join.
pub type OrderKey = (Reverse<u8>, Instant, u64);

impl QueueEntry {
    /// Sort key: higher priority first, then earlier entry, then earlier join.
    pub fn order_key(&self) -> OrderKey {
        (Reverse(self.priority), self.entered, self.seq)
    }

    pub fn is_waiting(&self) -> bool {
        self.ringing.is_empty()
    }

    pub fn skips(&self, agent: &str, now: Instant) -> bool {
        self.skip.iter().any(|(skip, until)| {
            now < *until
                && match skip {
                    Skip::Agent(a) => a == agent,
                    Skip::Everyone => true,
                }
        })
    }
}

/// The lowest skill level an agent needs for a caller who has waited `waited`.
pub fn min_level(base: u8, escalation: &[Escalation], waited: Duration) -> u8 {
    escalation
        .iter()
        .filter(|e| waited >= Duration::from_secs(e.after_secs.into()))
        .map(|e| e.min_level)
        .fold(base, u8::min)
}

/// The next instant at which the caller's required level drops, if any.
pub fn next_escalation(
    base: u8,
    escalation: &[Escalation],
    entered: Instant,
    now: Instant,
) -> Option<Instant> {
    let current = min_level(base, escalation, now.saturating_duration_since(entered));
    escalation
        .iter()
        .filter(|e| e.min_level < current)
        .map(|e| entered + Duration::from_secs(e.after_secs.into()))
        .filter(|at| *at > now)
        .min()
}
