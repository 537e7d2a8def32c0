//! One agent's state machine. Every (state, event) pair has an answer: a new state or an
//! [`AgentError`] — never a panic. Time is an argument; deadlines live in the states that need
//! them (`Reserved::until`, `WrapUp::until`) so nobody can be stuck without a way out.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::CallId;

/// Why an agent is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// Asked for by the agent or a supervisor (the text is shown on the dashboard).
    Requested(String),
    /// Paused by the ACD after too many consecutive unanswered rings.
    NoAnswer,
}

/// Where an agent stands. The ACD only offers calls to `Available` agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Way out: `login`.
    LoggedOut,
    /// Idle since `since` (longest-idle orders by it).
    Available { since: Instant },
    /// The agent's phone rings for `call`. Way out: answer, failure, or the ring timeout `until`.
    Reserved { call: CallId, until: Instant },
    /// Talking with `call`. Way out: hang-up from either side.
    OnCall { call: CallId },
    /// After a call. Way out: `wrap_up_done` or the end `until`.
    WrapUp { until: Instant },
    /// Way out: `unpause` or `logout`.
    Paused { reason: PauseReason },
    /// The phone does not answer keep-alives. Way out: `reachable` or `logout`.
    Unreachable,
}

impl AgentState {
    /// The call this agent is bound to (ringing or talking), if any.
    pub fn call(&self) -> Option<CallId> {
        match self {
            AgentState::Reserved { call, .. } | AgentState::OnCall { call } => Some(*call),
            _ => None,
        }
    }

    /// When this state times out by itself (the ring timeout, the end of wrap-up), if it does.
    pub fn timeout(&self) -> Option<Instant> {
        match self {
            AgentState::Reserved { until, .. } | AgentState::WrapUp { until } => Some(*until),
            _ => None,
        }
    }

    /// Logged in for the purpose of "does this queue have agents" (paused agents come back;
    /// unreachable phones may not).
    pub fn is_logged_in(&self) -> bool {
        !matches!(self, AgentState::LoggedOut | AgentState::Unreachable)
    }

    /// The short name used in stats and events.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available { .. } => "available",
            AgentState::Reserved { .. } => "reserved",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::Paused { .. } => "paused",
            AgentState::Unreachable => "unreachable",
        }
    }
}

/// How an agent leg failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegFailure {
    /// The ring timeout passed (counts towards the no-answer pause).
    NoAnswer,
    /// The agent rejected the call (486/603 from the phone's reject key).
    Declined,
    /// The phone is busy with a call the ACD does not know about.
    Busy,
    /// The engine could not place the leg (no RTP port or socket): not the agent's doing.
    /// The agent stays available; the caller keeps its place but is offered to no agent for
    /// [`LOCAL_RETRY`], so a shortage does not burn through every agent at once.
    Local,
}

/// How long a caller whose agent leg failed locally ([`LegFailure::Local`]) waits before it
/// is offered to an agent again.
pub const LOCAL_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// An event that moves an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    Login,
    Logout,
    Pause(PauseReason),
    Unpause,
    /// The ACD offers `call`; the phone rings until `until`.
    Offer {
        call: CallId,
        until: Instant,
    },
    Answered {
        call: CallId,
    },
    LegFailed {
        call: CallId,
    },
    /// The call ended; wrap-up lasts `wrap_up`.
    Hangup {
        call: CallId,
        wrap_up: Duration,
    },
    /// The caller left while the agent's phone was ringing.
    OfferWithdrawn {
        call: CallId,
    },
    WrapUpDone,
    Unreachable,
    Reachable,
}

/// A transition that the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent is {state}: `{event}` is not possible")]
pub struct AgentError {
    pub state: &'static str,
    pub event: &'static str,
}

impl AgentEvent {
    fn name(&self) -> &'static str {
        match self {
            AgentEvent::Login => "login",
            AgentEvent::Logout => "logout",
            AgentEvent::Pause(_) => "pause",
            AgentEvent::Unpause => "unpause",
            AgentEvent::Offer { .. } => "offer_call",
            AgentEvent::Answered { .. } => "answered",
            AgentEvent::LegFailed { .. } => "leg_failed",
            AgentEvent::Hangup { .. } => "hangup",
            AgentEvent::OfferWithdrawn { .. } => "offer_withdrawn",
            AgentEvent::WrapUpDone => "wrap_up_done",
            AgentEvent::Unreachable => "unreachable",
            AgentEvent::Reachable => "reachable",
        }
    }
}

/// The transition function. `idle_since` is when the agent last became free; a failed or
/// withdrawn offer returns the agent to `Available` with that time, so a ring that nobody
/// answered does not cost the agent its place in longest-idle order.
pub fn transition(
    state: &AgentState,
    event: &AgentEvent,
    idle_since: Instant,
    now: Instant,
) -> Result<AgentState, AgentError> {
    use AgentEvent as E;
    use AgentState as S;
    let next = match (state, event) {
        (S::LoggedOut, E::Login) => S::Available { since: now },
        (S::LoggedOut, E::Unreachable | E::Reachable) => S::LoggedOut,
        // A reserved agent may log out (the ACD withdraws the offer); a talking one hangs up first.
        (
            S::Available { .. } | S::Reserved { .. } | S::WrapUp { .. } | S::Paused { .. },
            E::Logout,
        )
        | (S::Unreachable, E::Logout) => S::LoggedOut,
        (S::Available { .. } | S::WrapUp { .. } | S::Paused { .. }, E::Pause(reason)) => {
            S::Paused {
                reason: reason.clone(),
            }
        }
        (S::Paused { .. }, E::Unpause) => S::Available { since: now },
        (S::Available { .. }, E::Offer { call, until }) => S::Reserved {
            call: *call,
            until: *until,
        },
        (S::Reserved { call, .. }, E::Answered { call: answered }) if call == answered => {
            S::OnCall { call: *call }
        }
        (
            S::Reserved { call, .. },
            E::LegFailed { call: failed } | E::OfferWithdrawn { call: failed },
        ) if call == failed => S::Available { since: idle_since },
        (
            S::OnCall { call },
            E::Hangup {
                call: ended,
                wrap_up,
            },
        ) if call == ended => {
            if wrap_up.is_zero() {
                S::Available { since: now }
            } else {
                S::WrapUp {
                    until: now + *wrap_up,
                }
            }
        }
        (S::WrapUp { .. }, E::WrapUpDone) => S::Available { since: now },
        (S::Available { .. } | S::WrapUp { .. } | S::Paused { .. }, E::Unreachable) => {
            S::Unreachable
        }
        // A ringing phone that stops answering keep-alives: the offer fails.
        (S::Reserved { .. }, E::Unreachable) => S::Unreachable,
        (S::Unreachable, E::Reachable) => S::Available { since: now },
        (S::Unreachable, E::Unreachable) => S::Unreachable,
        (state, event) => {
            return Err(AgentError {
                state: state.name(),
                event: event.name(),
            });
        }
    };
    Ok(next)
}
