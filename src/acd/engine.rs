//! [`Acd`]: the in-memory ACD — queues, agents and the calls between them.
//!
//! After every command the ACD runs one *dispatch*: overflow callers past their max wait or
//! without logged-in agents, then walk the waiting callers across all queues in order
//! (priority, then entry time) and give each the agents its queue's strategy picks among the
//! available, eligible ones. Walking callers globally is what makes an agent in several queues
//! take the longest-waiting caller across them first.
//!
//! A dispatch costs little however many callers wait: waiting callers are kept in dispatch
//! order (`order`; a caller ringing an agent leaves it and, if the ring fails, comes back under
//! the same key), the instants at which a waiting caller needs a look (max wait, escalation,
//! a skipped agent becoming eligible again) in a deadline index (`deadlines`), and each queue
//! knows its members in entry order and how many of them ring. The walk stops as soon as no
//! agent is available. (An earlier dispatch collected and sorted every waiting caller after
//! every command: once callers piled up, each command cost O(waiting), the ACD fell further
//! behind, and the engine collapsed near 2,500 calls/s.)
//!
//! Nor does a command scan the agents: the available ones are indexed by idle time (`idle`;
//! longest-idle, the default strategy, takes the first eligible one), agents that ring or wrap
//! up by when that times out (`agent_deadlines`), and each queue counts its agents by state.
//! [`Acd::apply`] is the one place an agent's state changes, and it moves the agent in these
//! indexes; new rules rebuild them. The property tests compare them with a rebuild after every
//! step.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::time::{Duration, Instant};

use super::agent::{self, AgentEvent, AgentState, LegFailure, PauseReason};
use super::queue::{self, OrderKey, QueueEntry, Skip};
use super::strategy::{self, Candidate, SplitMix64};
use super::{AcdDecision, AcdError, AcdStore, CallId, OverflowReason};
use crate::rules::QueueState;
use crate::rules::model::{Agent, Queue, Strategy};

/// Tunables that are not (yet) in the rule files.
#[derive(Debug, Clone)]
pub struct AcdSettings {
    /// Consecutive unanswered rings before the agent is paused with [`PauseReason::NoAnswer`].
    pub max_no_answers: u32,
    /// An agent whose leg failed for a caller is not offered that caller again for this long
    /// (other agents are tried first; a lone agent is retried after it).
    pub retry_after: Duration,
    /// Seed of the generator behind [`Strategy::Random`].
    pub seed: u64,
}

impl Default for AcdSettings {
    fn default() -> Self {
        AcdSettings {
            max_no_answers: 3,
            retry_after: Duration::from_secs(5),
            seed: 0x7a65_6e74_7261_6c65,
        }
    }
}

/// Where a call is inside the ACD. Calls that overflowed or ended are no longer known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallStatus {
    Waiting { queue: String },
    Ringing { queue: String, agents: Vec<String> },
    Connected { queue: String, agent: String },
}

/// Agents of a queue (at its base skill level) by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounts {
    pub logged_out: u32,
    pub available: u32,
    pub reserved: u32,
    pub on_call: u32,
    pub wrap_up: u32,
    pub paused: u32,
    pub unreachable: u32,
}

/// Read-only figures of one queue, for metrics and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Callers waiting for an agent (not ringing one).
    pub waiting: u32,
    /// Callers whose agent leg rings now.
    pub ringing: u32,
    pub longest_wait: Option<Duration>,
    pub agents: AgentCounts,
}

#[derive(Debug, Clone)]
pub(super) struct AgentRuntime {
    pub(super) config: Agent,
    /// Position in the agent list (linear and round-robin order).
    pub(super) order: usize,
    pub(super) state: AgentState,
    /// When the agent last became free (kept through failed offers).
    pub(super) idle_since: Instant,
    pub(super) calls_taken: u64,
    pub(super) no_answers: u32,
}

impl AgentRuntime {
    fn level(&self, skill: &str) -> u8 {
        self.config.skills.get(skill).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub(super) struct QueueRuntime {
    pub(super) config: Queue,
    last_rr: Option<usize>,
    /// Index: this queue's callers (waiting or ringing) by entry time.
    members: BTreeSet<(Instant, u64, CallId)>,
    /// How many of `members` ring an agent now.
    ringing: u32,
    /// The agents eligible at the queue's base level, by state (kept up to date by
    /// [`Acd::apply`], rebuilt by [`Acd::reconfigure`]).
    agents: AgentCounts,
}

impl QueueRuntime {
    fn new(config: Queue) -> QueueRuntime {
        QueueRuntime {
            config,
            last_rr: None,
            members: BTreeSet::new(),
            ringing: 0,
            agents: AgentCounts::default(),
        }
    }
}

impl AgentCounts {
    /// The counter of agents in `state`.
    fn slot(&mut self, state: &AgentState) -> &mut u32 {
        match state {
            AgentState::LoggedOut => &mut self.logged_out,
            AgentState::Available { .. } => &mut self.available,
            AgentState::Reserved { .. } => &mut self.reserved,
            AgentState::OnCall { .. } => &mut self.on_call,
            AgentState::WrapUp { .. } => &mut self.wrap_up,
            AgentState::Paused { .. } => &mut self.paused,
            AgentState::Unreachable => &mut self.unreachable,
        }
    }

    /// Agents logged in ([`AgentState::is_logged_in`]).
    pub fn logged_in(&self) -> u32 {
        self.available + self.reserved + self.on_call + self.wrap_up + self.paused
    }
}

#[derive(Debug, Clone)]
pub(super) enum CallRecord {
    Queued(QueueEntry),
    Connected { queue: String, agent: String },
}

/// The in-memory ACD. One owner (the ACD task) holds it; see [`AcdStore`] for the commands.
#[derive(Debug, Clone)]
pub struct Acd {
    settings: AcdSettings,
    pub(super) queues: BTreeMap<String, QueueRuntime>,
    pub(super) agents: BTreeMap<String, AgentRuntime>,
    pub(super) calls: BTreeMap<CallId, CallRecord>,
    /// Index: the waiting callers (not those ringing an agent), in dispatch order. A caller
    /// whose ring fails comes back under the same key, so it keeps its place.
    order: BTreeSet<(OrderKey, CallId)>,
    /// Index: waiting callers by the instant they next need a look ([`QueueEntry::deadline`]).
    deadlines: BTreeSet<(Instant, CallId)>,
    /// Index: agents that ring or wrap up, by the instant that state times out.
    agent_deadlines: BTreeSet<(Instant, String)>,
    /// Index: the available agents, longest idle first (idle since, agent order, id): the
    /// longest-idle strategy takes the first eligible one instead of scanning every agent.
    idle: BTreeSet<(Instant, usize, String)>,
    /// Some agent logged in or out (or the rules changed) since the last dispatch: queues may
    /// have lost their last agent.
    staffing_changed: bool,
    /// Agents the rules no longer have.
    retired: std::collections::BTreeSet<String>,
    next_seq: u64,
    rng: SplitMix64,
}

type Outcome = Result<Vec<AcdDecision>, AcdError>;

impl Acd {
    /// An ACD for these queues and agents; every agent starts logged out.
    pub fn new<'a>(
        queues: impl IntoIterator<Item = &'a Queue>,
        agents: impl IntoIterator<Item = &'a Agent>,
        settings: AcdSettings,
        now: Instant,
    ) -> Acd {
        let mut acd = Acd {
            rng: SplitMix64(settings.seed),
            settings,
            queues: BTreeMap::new(),
            agents: BTreeMap::new(),
            calls: BTreeMap::new(),
            order: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            agent_deadlines: BTreeSet::new(),
            idle: BTreeSet::new(),
            staffing_changed: false,
            retired: Default::default(),
            next_seq: 0,
        };
        // The first rules are new rules for an empty ACD (nothing to retire, nobody waiting).
        acd.reconfigure(queues, agents, now);
        acd
    }

    fn agent_mut(&mut self, agent: &str) -> Result<&mut AgentRuntime, AcdError> {
        self.agents
            .get_mut(agent)
            .ok_or_else(|| AcdError::UnknownAgent(agent.to_string()))
    }

    /// Applies one event to one agent and records the change.
    fn apply(
        &mut self,
        agent: &str,
        event: &AgentEvent,
        now: Instant,
        out: &mut Vec<AcdDecision>,
    ) -> Result<(), AcdError> {
        let runtime = self.agent_mut(agent)?;
        let next =
            agent::transition(&runtime.state, event, runtime.idle_since, now).map_err(|error| {
                AcdError::Agent {
                    agent: agent.to_string(),
                    error,
                }
            })?;
        if let AgentState::Available { since } = next {
            runtime.idle_since = since;
        }
        if next != runtime.state {
            let previous = std::mem::replace(&mut runtime.state, next.clone());
            if next.is_logged_in() != previous.is_logged_in() {
                self.staffing_changed = true;
            }
            self.reindex_agent(agent, &previous, &next);
            out.push(AcdDecision::AgentChanged {
                agent: agent.to_string(),
                state: next,
            });
        }
        Ok(())
    }

    /// Moves an agent whose state changed from `previous` to `next` in the agent indexes:
    /// timeouts, the available agents, and its queues' counts.
    fn reindex_agent(&mut self, agent: &str, previous: &AgentState, next: &AgentState) {
        if let Some(at) = previous.timeout() {
            self.agent_deadlines.remove(&(at, agent.to_string()));
        }
        if let Some(at) = next.timeout() {
            self.agent_deadlines.insert((at, agent.to_string()));
        }
        let Some(runtime) = self.agents.get(agent) else {
            return;
        };
        if let AgentState::Available { since } = previous {
            self.idle
                .remove(&(*since, runtime.order, agent.to_string()));
        }
        if let AgentState::Available { since } = next {
            self.idle.insert((*since, runtime.order, agent.to_string()));
        }
        for queue in self.queues.values_mut() {
            if Self::eligible(runtime, &queue.config, queue.config.min_level) {
                let counts = &mut queue.agents;
                *counts.slot(previous) = counts.slot(previous).saturating_sub(1);
                *counts.slot(next) += 1;
            }
        }
    }

    /// Rebuilds the agent indexes from the agents' states (after new rules: skills and
    /// queues may have changed).
    fn rebuild_agent_indexes(&mut self) {
        self.agent_deadlines = self
            .agents
            .iter()
            .filter_map(|(id, a)| a.state.timeout().map(|at| (at, id.clone())))
            .collect();
        self.idle = self
            .agents
            .iter()
            .filter_map(|(id, a)| match a.state {
                AgentState::Available { since } => Some((since, a.order, id.clone())),
                _ => None,
            })
            .collect();
        for queue in self.queues.values_mut() {
            let mut counts = AgentCounts::default();
            for agent in self.agents.values() {
                if Self::eligible(agent, &queue.config, queue.config.min_level) {
                    *counts.slot(&agent.state) += 1;
                }
            }
            queue.agents = counts;
        }
    }

    /// Whether `agent` may take a call from `queue` at skill level `level`.
    fn eligible(agent: &AgentRuntime, queue: &Queue, level: u8) -> bool {
        agent.level(&queue.skill) >= level
    }

    fn entries_in<'a>(&'a self, queue: &'a str) -> impl Iterator<Item = &'a QueueEntry> + 'a {
        self.queues
            .get(queue)
            .into_iter()
            .flat_map(|q| q.members.iter())
            .filter_map(|(_, _, call)| match self.calls.get(call) {
                Some(CallRecord::Queued(e)) => Some(e),
                _ => None,
            })
    }

    /// Puts a new caller in the queue and the indexes.
    fn insert_queued(&mut self, entry: QueueEntry, now: Instant) {
        let call = entry.call;
        if let Some(q) = self.queues.get_mut(&entry.queue) {
            q.members.insert((entry.entered, entry.seq, call));
        }
        self.calls.insert(call, CallRecord::Queued(entry));
        self.reindex(call, now);
    }

    /// Takes a call out of the ACD and, if it was queued, out of the indexes.
    fn remove_call(&mut self, call: CallId) -> Option<CallRecord> {
        let record = self.calls.remove(&call)?;
        if let CallRecord::Queued(entry) = &record {
            self.order.remove(&(entry.order_key(), call));
            if let Some(at) = entry.deadline {
                self.deadlines.remove(&(at, call));
            }
            if let Some(q) = self.queues.get_mut(&entry.queue) {
                q.members.remove(&(entry.entered, entry.seq, call));
                if !entry.is_waiting() {
                    q.ringing = q.ringing.saturating_sub(1);
                }
            }
        }
        Some(record)
    }

    /// Changes the agents ringing for a queued caller, keeping the queue's ringing count and
    /// the caller's deadline in step.
    fn change_ringing(&mut self, call: CallId, now: Instant, change: impl FnOnce(&mut QueueEntry)) {
        let Some(CallRecord::Queued(entry)) = self.calls.get_mut(&call) else {
            return;
        };
        let was_waiting = entry.is_waiting();
        change(entry);
        let is_waiting = entry.is_waiting();
        if was_waiting != is_waiting
            && let Some(q) = self.queues.get_mut(&entry.queue)
        {
            if is_waiting {
                q.ringing = q.ringing.saturating_sub(1);
            } else {
                q.ringing += 1;
            }
        }
        self.reindex(call, now);
    }

    /// When a queued caller next needs a look: while it waits, at its max wait, its next
    /// escalation, or when an agent it skips becomes eligible again (expired skips go first).
    fn reindex(&mut self, call: CallId, now: Instant) {
        let Some(CallRecord::Queued(entry)) = self.calls.get_mut(&call) else {
            return;
        };
        entry.skip.retain(|(_, until)| *until > now);
        // Only waiting callers are in the dispatch order: a walk need not step over the
        // callers ringing an agent (under load, most of the queue).
        if entry.is_waiting() {
            self.order.insert((entry.order_key(), call));
        } else {
            self.order.remove(&(entry.order_key(), call));
        }
        let next = if entry.is_waiting() {
            let max_wait = self
                .queues
                .get(&entry.queue)
                .and_then(|q| q.config.max_wait_secs)
                .map(|secs| entry.entered + Duration::from_secs(secs.into()));
            let skips = entry.skip.iter().map(|(_, until)| *until);
            max_wait
                .into_iter()
                .chain(entry.next_escalation)
                .chain(skips)
                .min()
        } else {
            None
        };
        if entry.deadline != next {
            if let Some(old) = entry.deadline {
                self.deadlines.remove(&(old, call));
            }
            if let Some(at) = next {
                self.deadlines.insert((at, call));
            }
            entry.deadline = next;
        }
    }

    /// Removes `agent` from the ringing set of `call` (its leg is over) and, for a failed leg,
    /// keeps the caller from `skip` for a while: the agent for `retry_after`, everyone for
    /// [`agent::LOCAL_RETRY`].
    fn end_leg(&mut self, call: CallId, agent: &str, skip: Option<Skip>, now: Instant) {
        let hold = skip.map(|skip| {
            let pause = match skip {
                Skip::Agent(_) => self.settings.retry_after,
                Skip::Everyone => agent::LOCAL_RETRY,
            };
            (skip, now + pause)
        });
        self.change_ringing(call, now, |entry| {
            entry.ringing.retain(|a| a != agent);
            if let Some((skip, until)) = hold {
                entry.skip.retain(|(s, _)| *s != skip);
                entry.skip.push((skip, until));
            }
        });
    }

    fn check_ringing(&self, call: CallId, agent: &str) -> Result<(), AcdError> {
        match self.calls.get(&call) {
            None => Err(AcdError::UnknownCall(call)),
            Some(CallRecord::Queued(e)) if e.ringing.iter().any(|a| a == agent) => Ok(()),
            Some(_) => Err(AcdError::NotRinging {
                call,
                agent: agent.to_string(),
            }),
        }
    }

    /// An agent leg failed: the agent becomes available again (or paused after too many
    /// no-answers); the caller keeps its place.
    fn fail_leg(
        &mut self,
        call: CallId,
        agent: &str,
        failure: LegFailure,
        now: Instant,
        out: &mut Vec<AcdDecision>,
    ) -> Result<(), AcdError> {
        self.apply(agent, &AgentEvent::LegFailed { call }, now, out)?;
        let skip = match failure {
            LegFailure::Local => Skip::Everyone,
            _ => Skip::Agent(agent.to_string()),
        };
        self.end_leg(call, agent, Some(skip), now);
        let max = self.settings.max_no_answers;
        let runtime = self.agent_mut(agent)?;
        if failure == LegFailure::NoAnswer {
            runtime.no_answers += 1;
            if max > 0 && runtime.no_answers >= max {
                runtime.no_answers = 0;
                self.apply(agent, &AgentEvent::Pause(PauseReason::NoAnswer), now, out)?;
            }
        }
        Ok(())
    }

    /// Ends every ring for the agent (it logged out or became unreachable) with a cancel.
    fn withdraw_ring(
        &mut self,
        agent: &str,
        failed: bool,
        now: Instant,
        out: &mut Vec<AcdDecision>,
    ) {
        let ringing = self.agents.get(agent).and_then(|a| match a.state {
            AgentState::Reserved { call, .. } => Some(call),
            _ => None,
        });
        if let Some(call) = ringing {
            self.end_leg(
                call,
                agent,
                failed.then(|| Skip::Agent(agent.to_string())),
                now,
            );
            out.push(AcdDecision::CancelRing {
                call,
                agent: agent.to_string(),
            });
        }
    }

    fn overflow(&mut self, call: CallId, reason: OverflowReason, out: &mut Vec<AcdDecision>) {
        if let Some(CallRecord::Queued(entry)) = self.remove_call(call) {
            out.push(AcdDecision::Overflow {
                call,
                queue: entry.queue,
                reason,
            });
        }
    }

    /// Overflows callers that may wait no longer, then offers agents to waiting callers.
    fn dispatch(&mut self, now: Instant, out: &mut Vec<AcdDecision>) {
        // 1. Callers whose deadline came: past their max wait they overflow; otherwise their
        //    level may have dropped or a skipped agent became eligible (step 3 sees to that).
        while let Some(&(at, call)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(CallRecord::Queued(entry)) = self.calls.get_mut(&call) else {
                continue;
            };
            entry.deadline = None;
            let Some(config) = self.queues.get(&entry.queue).map(|q| &q.config) else {
                continue;
            };
            let waited = now.saturating_duration_since(entry.entered);
            if config
                .max_wait_secs
                .is_some_and(|max| waited >= Duration::from_secs(max.into()))
            {
                self.overflow(call, OverflowReason::MaxWait, out);
                continue;
            }
            entry.next_escalation =
                queue::next_escalation(config.min_level, &config.escalation, entry.entered, now);
            self.reindex(call, now);
        }

        // 2. Queues that lost their last logged-in agent send their waiting callers on.
        if std::mem::take(&mut self.staffing_changed) {
            let unstaffed: Vec<CallId> = self
                .queues
                .values()
                .filter(|q| !q.members.is_empty() && q.agents.logged_in() == 0)
                .flat_map(|q| q.members.iter().map(|(_, _, call)| *call))
                .collect();
            for call in unstaffed {
                if matches!(self.calls.get(&call), Some(CallRecord::Queued(e)) if e.is_waiting()) {
                    self.overflow(call, OverflowReason::NoAgents, out);
                }
            }
        }

        // 3. Offers: waiting callers in order, as long as an agent is available (each offer
        //    takes its agent out of the idle index).
        let mut cursor: Option<(OrderKey, CallId)> = None;
        while !self.idle.is_empty() {
            let next = match &cursor {
                None => self.order.first(),
                Some(key) => self
                    .order
                    .range((Bound::Excluded(key), Bound::Unbounded))
                    .next(),
            };
            let Some(&(key, call)) = next else {
                break;
            };
            cursor = Some((key, call));
            let Some(CallRecord::Queued(entry)) = self.calls.get(&call) else {
                continue;
            };
            debug_assert!(
                entry.is_waiting(),
                "{call} rings but is in the dispatch order"
            );
            let Some(queue) = self.queues.get(&entry.queue) else {
                continue;
            };
            let config = &queue.config;
            let waited = now.saturating_duration_since(entry.entered);
            let level = queue::min_level(config.min_level, &config.escalation, waited);
            let usable = |id: &str, a: &AgentRuntime| {
                matches!(a.state, AgentState::Available { .. })
                    && Self::eligible(a, config, level)
                    && !entry.skips(id, now)
            };
            let scan = || -> Vec<Candidate<'_>> {
                self.agents
                    .iter()
                    .filter(|(id, a)| usable(id, a))
                    .map(|(id, a)| Candidate {
                        id,
                        order: a.order,
                        idle_since: a.idle_since,
                        calls_taken: a.calls_taken,
                    })
                    .collect()
            };
            let picked: Vec<String> = if config.strategy == Strategy::LongestIdle {
                // The same choice as `strategy::pick` (least idle_since, then agent order),
                // from the idle index: usually its first agent.
                let picked: Vec<String> = self
                    .idle
                    .iter()
                    .find(|(_, _, id)| self.agents.get(id).is_some_and(|a| usable(id, a)))
                    .map(|(_, _, id)| vec![id.clone()])
                    .unwrap_or_default();
                #[cfg(test)]
                assert_eq!(
                    picked,
                    strategy::pick(Strategy::LongestIdle, &scan(), None, 0),
                    "the idle index picks what a scan of every agent picks"
                );
                picked
            } else {
                let candidates = scan();
                // No draw without candidates: the random sequence stays what it always was.
                let random = if config.strategy == Strategy::Random && !candidates.is_empty() {
                    self.rng.next_u64()
                } else {
                    0
                };
                strategy::pick(config.strategy, &candidates, queue.last_rr, random)
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            };
            if picked.is_empty() {
                continue;
            }
            let queue_id = entry.queue.clone();
            let ring_timeout = Duration::from_secs(config.ring_timeout_secs.into());
            let until = now + ring_timeout;
            for agent in picked {
                if self
                    .apply(&agent, &AgentEvent::Offer { call, until }, now, out)
                    .is_err()
                {
                    continue;
                }
                let order = self.agents.get(&agent).map(|a| a.order);
                if let Some(q) = self.queues.get_mut(&queue_id) {
                    q.last_rr = order;
                }
                let rung = agent.clone();
                self.change_ringing(call, now, |entry| entry.ringing.push(rung));
                out.push(AcdDecision::Ring {
                    call,
                    agent,
                    queue: queue_id.clone(),
                    ring_timeout,
                });
            }
        }
    }

    /// Runs `command`, then a dispatch; a failed command changes nothing and decides nothing.
    /// New rules: queues and agents take their new settings; new ones join (agents logged
    /// out); agents no longer in the rules are logged out (a ring is withdrawn, a call in
    /// progress finishes first) and can no longer log in; queues no longer in the rules keep
    /// serving the callers already in them. Then the usual dispatch.
    pub fn reconfigure<'a>(
        &mut self,
        queues: impl IntoIterator<Item = &'a Queue>,
        agents: impl IntoIterator<Item = &'a Agent>,
        now: Instant,
    ) -> Vec<AcdDecision> {
        let mut out = Vec::new();
        for q in queues {
            match self.queues.get_mut(&q.id) {
                Some(runtime) => runtime.config = q.clone(),
                None => {
                    self.queues
                        .insert(q.id.clone(), QueueRuntime::new(q.clone()));
                }
            }
        }
        let mut present = std::collections::BTreeSet::new();
        for a in agents {
            present.insert(a.id.clone());
            self.retired.remove(&a.id);
            let order = self.agents.len();
            match self.agents.get_mut(&a.id) {
                Some(runtime) => runtime.config = a.clone(),
                None => {
                    self.agents.insert(
                        a.id.clone(),
                        AgentRuntime {
                            config: a.clone(),
                            order,
                            state: AgentState::LoggedOut,
                            idle_since: now,
                            calls_taken: 0,
                            no_answers: 0,
                        },
                    );
                }
            }
        }
        let gone: Vec<String> = self
            .agents
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for agent in gone {
            let busy = self
                .agents
                .get(&agent)
                .is_some_and(|a| matches!(a.state, AgentState::OnCall { .. }));
            if !busy {
                self.withdraw_ring(&agent, false, now, &mut out);
                let _ = self.apply(&agent, &AgentEvent::Logout, now, &mut out);
            }
            // Without skills it can take no call; it stays known until its call ends.
            if let Some(runtime) = self.agents.get_mut(&agent) {
                runtime.config.skills.clear();
            }
            self.retired.insert(agent);
        }
        // New settings: max waits and escalations may have moved, skills changed staffing.
        self.staffing_changed = true;
        self.rebuild_agent_indexes();
        let queued: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, record)| matches!(record, CallRecord::Queued(_)))
            .map(|(call, _)| *call)
            .collect();
        for call in queued {
            if let Some(CallRecord::Queued(entry)) = self.calls.get_mut(&call)
                && let Some(config) = self.queues.get(&entry.queue).map(|q| &q.config)
            {
                entry.next_escalation = queue::next_escalation(
                    config.min_level,
                    &config.escalation,
                    entry.entered,
                    now,
                );
            }
            self.reindex(call, now);
        }
        self.dispatch(now, &mut out);
        out
    }

    /// Panics unless the indexes agree with the calls they index (for the property tests).
    #[cfg(test)]
    pub(super) fn check_indexes(&self, now: Instant) {
        let queued: Vec<&QueueEntry> = self
            .calls
            .values()
            .filter_map(|c| match c {
                CallRecord::Queued(e) => Some(e),
                CallRecord::Connected { .. } => None,
            })
            .collect();
        let order: BTreeSet<(OrderKey, CallId)> = queued
            .iter()
            .filter(|e| e.is_waiting())
            .map(|e| (e.order_key(), e.call))
            .collect();
        assert_eq!(order, self.order, "order index");
        let mut deadlines = BTreeSet::new();
        for e in &queued {
            if !e.is_waiting() {
                assert_eq!(e.deadline, None, "{} rings but has a deadline", e.call);
                continue;
            }
            let config = &self.queues[&e.queue].config;
            let max_wait = config
                .max_wait_secs
                .map(|secs| e.entered + Duration::from_secs(secs.into()));
            let live_skips = e.skip.iter().map(|(_, u)| *u).filter(|u| *u > now);
            let expected = max_wait
                .into_iter()
                .chain(e.next_escalation)
                .chain(live_skips)
                .min();
            assert_eq!(e.deadline, expected, "deadline of {}", e.call);
            assert_eq!(
                e.next_escalation,
                queue::next_escalation(config.min_level, &config.escalation, e.entered, now),
                "next escalation of {}",
                e.call
            );
            if let Some(at) = e.deadline {
                deadlines.insert((at, e.call));
            }
        }
        assert_eq!(deadlines, self.deadlines, "deadline index");
        let mut rebuilt = self.clone();
        rebuilt.rebuild_agent_indexes();
        assert_eq!(
            rebuilt.agent_deadlines, self.agent_deadlines,
            "agent deadline index"
        );
        assert_eq!(rebuilt.idle, self.idle, "idle index");
        for (id, q) in &self.queues {
            assert_eq!(rebuilt.queues[id].agents, q.agents, "agent counts of {id}");
        }
        for (id, q) in &self.queues {
            let members: BTreeSet<(Instant, u64, CallId)> = queued
                .iter()
                .filter(|e| &e.queue == id)
                .map(|e| (e.entered, e.seq, e.call))
                .collect();
            assert_eq!(members, q.members, "members of {id}");
            let ringing = queued
                .iter()
                .filter(|e| &e.queue == id && !e.is_waiting())
                .count();
            assert_eq!(ringing, q.ringing as usize, "ringing in {id}");
        }
    }

    /// Agents removed from the rules (they cannot log in again).
    pub fn is_retired(&self, agent: &str) -> bool {
        self.retired.contains(agent)
    }

    /// The caller's place in its queue (1 = next; ringing callers count as ahead) and how
    /// many wait there in all.
    pub fn position(&self, call: CallId, queue: &str) -> (u32, u32) {
        let Some(CallRecord::Queued(me)) = self.calls.get(&call) else {
            return (0, 0);
        };
        let key = me.order_key();
        let (mut ahead, mut total) = (0u32, 0u32);
        for entry in self.entries_in(queue) {
            total += 1;
            if entry.call != call && (!entry.is_waiting() || entry.order_key() < key) {
                ahead += 1;
            }
        }
        (ahead + 1, total)
    }

    /// Runs one command in place, then a dispatch. Every command checks what can fail before
    /// it changes anything (unknown call or agent, a transition the agent's state does not
    /// allow); what follows holds by the ACD's invariants, which the property tests check after
    /// every step. (An earlier version cloned the whole ACD per command for atomicity; with a
    /// few hundred agents that clone dominated the cost of routing a call.)
    fn command(
        &mut self,
        now: Instant,
        command: impl FnOnce(&mut Acd, &mut Vec<AcdDecision>) -> Result<(), AcdError>,
    ) -> Outcome {
        let mut out = Vec::new();
        command(self, &mut out)?;
        self.dispatch(now, &mut out);
        Ok(out)
    }
}

impl AcdStore for Acd {
    fn join(&mut self, call: CallId, queue: &str, priority: u8, now: Instant) -> Outcome {
        let Some(runtime) = self.queues.get(queue) else {
            return Err(AcdError::UnknownQueue(queue.to_string()));
        };
        if self.calls.contains_key(&call) {
            return Err(AcdError::DuplicateCall(call));
        }
        let config = &runtime.config;
        let refused = if runtime.agents.logged_in() == 0 {
            Some(OverflowReason::NoAgents)
        } else if config
            .max_length
            .is_some_and(|max| runtime.members.len() >= max as usize)
        {
            Some(OverflowReason::Full)
        } else {
            None
        };
        if let Some(reason) = refused {
            return Ok(vec![AcdDecision::Overflow {
                call,
                queue: queue.to_string(),
                reason,
            }]);
        }
        let next_escalation =
            queue::next_escalation(config.min_level, &config.escalation, now, now);
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = QueueEntry {
            call,
            queue: queue.to_string(),
            priority,
            entered: now,
            seq,
            ringing: Vec::new(),
            skip: Vec::new(),
            next_escalation,
            deadline: None,
        };
        self.insert_queued(entry, now);
        let mut out = Vec::new();
        self.dispatch(now, &mut out);
        Ok(out)
    }

    fn call_ended(&mut self, call: CallId, now: Instant) -> Outcome {
        self.command(now, |acd, out| {
            match acd.remove_call(call) {
                None => return Err(AcdError::UnknownCall(call)),
                Some(CallRecord::Queued(entry)) => {
                    for agent in entry.ringing {
                        acd.apply(&agent, &AgentEvent::OfferWithdrawn { call }, now, out)?;
                        out.push(AcdDecision::CancelRing { call, agent });
                    }
                }
                Some(CallRecord::Connected { queue, agent }) => {
                    let queue_wrap = acd.queues.get(&queue).map_or(0, |q| q.config.wrap_up_secs);
                    let wrap = acd
                        .agent_mut(&agent)?
                        .config
                        .wrap_up_secs
                        .unwrap_or(queue_wrap);
                    let wrap_up = Duration::from_secs(wrap.into());
                    acd.apply(&agent, &AgentEvent::Hangup { call, wrap_up }, now, out)?;
                }
            }
            Ok(())
        })
    }

    fn answered(&mut self, call: CallId, agent: &str, now: Instant) -> Outcome {
        self.command(now, |acd, out| {
            acd.check_ringing(call, agent)?;
            acd.apply(agent, &AgentEvent::Answered { call }, now, out)?;
            let runtime = acd.agent_mut(agent)?;
            runtime.calls_taken += 1;
            runtime.no_answers = 0;
            let Some(CallRecord::Queued(entry)) = acd.remove_call(call) else {
                return Err(AcdError::UnknownCall(call));
            };
            // Ring-all: the first answer wins, the other phones stop ringing.
            for other in entry.ringing.iter().filter(|a| *a != agent) {
                acd.apply(other, &AgentEvent::OfferWithdrawn { call }, now, out)?;
                out.push(AcdDecision::CancelRing {
                    call,
                    agent: other.clone(),
                });
            }
            acd.calls.insert(
                call,
                CallRecord::Connected {
                    queue: entry.queue,
                    agent: agent.to_string(),
                },
            );
            out.push(AcdDecision::Connected {
                call,
                agent: agent.to_string(),
            });
            Ok(())
        })
    }

    fn leg_failed(
        &mut self,
        call: CallId,
        agent: &str,
        failure: LegFailure,
        now: Instant,
    ) -> Outcome {
        self.command(now, |acd, out| {
            acd.check_ringing(call, agent)?;
            acd.fail_leg(call, agent, failure, now, out)
        })
    }

    fn login(&mut self, agent: &str, now: Instant) -> Outcome {
        if self.retired.contains(agent) {
            return Err(AcdError::UnknownAgent(agent.to_string()));
        }
        self.command(now, |acd, out| {
            acd.apply(agent, &AgentEvent::Login, now, out)
        })
    }

    fn logout(&mut self, agent: &str, now: Instant) -> Outcome {
        self.command(now, |acd, out| {
            acd.withdraw_ring(agent, false, now, out);
            acd.apply(agent, &AgentEvent::Logout, now, out)
        })
    }

    fn pause(&mut self, agent: &str, reason: PauseReason, now: Instant) -> Outcome {
        self.command(now, |acd, out| {
            acd.apply(agent, &AgentEvent::Pause(reason), now, out)
        })
    }

    fn unpause(&mut self, agent: &str, now: Instant) -> Outcome {
        self.command(now, |acd, out| {
            acd.apply(agent, &AgentEvent::Unpause, now, out)
        })
    }

    fn wrap_up_done(&mut self, agent: &str, now: Instant) -> Outcome {
        self.command(now, |acd, out| {
            acd.apply(agent, &AgentEvent::WrapUpDone, now, out)
        })
    }

    fn unreachable(&mut self, agent: &str, now: Instant) -> Outcome {
        self.command(now, |acd, out| {
            acd.withdraw_ring(agent, true, now, out);
            acd.apply(agent, &AgentEvent::Unreachable, now, out)
        })
    }

    fn reachable(&mut self, agent: &str, now: Instant) -> Outcome {
        self.command(now, |acd, out| {
            acd.apply(agent, &AgentEvent::Reachable, now, out)
        })
    }

    fn poll(&mut self, now: Instant) -> Vec<AcdDecision> {
        let mut out = Vec::new();
        let mut due: Vec<(String, AgentState)> = Vec::new();
        for (at, id) in &self.agent_deadlines {
            if *at > now {
                break;
            }
            if let Some(a) = self.agents.get(id) {
                due.push((id.clone(), a.state.clone()));
            }
        }
        // In agent order, as ever (the index is in deadline order).
        due.sort_by(|a, b| a.0.cmp(&b.0));
        for (agent, state) in due {
            // Both transitions exist for these states, so errors cannot happen here.
            let _ = match state {
                AgentState::Reserved { call, .. } => {
                    out.push(AcdDecision::CancelRing {
                        call,
                        agent: agent.clone(),
                    });
                    self.fail_leg(call, &agent, LegFailure::NoAnswer, now, &mut out)
                }
                _ => self.apply(&agent, &AgentEvent::WrapUpDone, now, &mut out),
            };
        }
        // Expired skips go when their deadline comes up (in the dispatch).
        self.dispatch(now, &mut out);
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        let agents = self.agent_deadlines.first().map(|(at, _)| *at);
        let callers = self.deadlines.first().map(|(at, _)| *at);
        agents.into_iter().chain(callers).min()
    }

    fn agent_state(&self, agent: &str) -> Option<AgentState> {
        self.agents.get(agent).map(|a| a.state.clone())
    }

    fn call_status(&self, call: CallId) -> Option<CallStatus> {
        Some(match self.calls.get(&call)? {
            CallRecord::Queued(e) if e.is_waiting() => CallStatus::Waiting {
                queue: e.queue.clone(),
            },
            CallRecord::Queued(e) => CallStatus::Ringing {
                queue: e.queue.clone(),
                agents: e.ringing.clone(),
            },
            CallRecord::Connected { queue, agent } => CallStatus::Connected {
                queue: queue.clone(),
                agent: agent.clone(),
            },
        })
    }

    fn queue_stats(&self, queue: &str, now: Instant) -> Option<QueueStats> {
        let runtime = self.queues.get(queue)?;
        let members = u32::try_from(runtime.members.len()).unwrap_or(u32::MAX);
        Some(QueueStats {
            waiting: members.saturating_sub(runtime.ringing),
            ringing: runtime.ringing,
            longest_wait: runtime
                .members
                .first()
                .map(|(entered, _, _)| now.saturating_duration_since(*entered)),
            agents: runtime.agents,
        })
    }

    fn queue_state(&self, queue: &str) -> Option<QueueState> {
        let runtime = self.queues.get(queue)?;
        Some(QueueState {
            logged_in_agents: runtime.agents.logged_in(),
            waiting_callers: u32::try_from(runtime.members.len()).unwrap_or(u32::MAX),
            // No estimate until one can be trusted (position- and staffing-aware).
            estimated_wait_secs: None,
        })
    }
}
