//! Property tests: random sequences of arrivals, answers, failures, hang-ups, pauses, logouts
//! and time steps; the invariants are checked after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::engine::CallRecord;
use super::tests::{agent, queue};
use super::*;
use crate::rules::model::{Escalation, Strategy as Distribution};

#[derive(Debug, Clone)]
enum Op {
    Join { queue: usize, priority: u8 },
    Answer { pick: usize },
    Fail { pick: usize, failure: LegFailure },
    End { pick: usize },
    Login(usize),
    Logout(usize),
    Pause(usize),
    Unpause(usize),
    WrapUpDone(usize),
    Unreachable(usize),
    Reachable(usize),
    Advance(u64),
}

const AGENTS: usize = 4;

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    let a = 0..AGENTS;
    prop_oneof![
        3 => (0..2usize, 0..3u8).prop_map(|(queue, priority)| Op::Join { queue, priority }),
        3 => any::<usize>().prop_map(|pick| Op::Answer { pick }),
        2 => (any::<usize>(), prop_oneof![
            Just(LegFailure::NoAnswer),
            Just(LegFailure::Declined),
            Just(LegFailure::Busy),
            Just(LegFailure::Local)
        ])
            .prop_map(|(pick, failure)| Op::Fail { pick, failure }),
        3 => any::<usize>().prop_map(|pick| Op::End { pick }),
        1 => a.clone().prop_map(Op::Login),
        1 => a.clone().prop_map(Op::Logout),
        1 => a.clone().prop_map(Op::Pause),
        1 => a.clone().prop_map(Op::Unpause),
        1 => a.clone().prop_map(Op::WrapUpDone),
        1 => a.clone().prop_map(Op::Unreachable),
        1 => a.prop_map(Op::Reachable),
        3 => (0..40u64).prop_map(Op::Advance),
    ]
}

fn agent_id(i: usize) -> String {
    format!("a{i}")
}

/// The ACD under test plus what the test knows from outside: the calls it started and that
/// neither overflowed nor ended.
struct World {
    acd: Acd,
    now: Instant,
    next_call: u64,
    live: BTreeSet<CallId>,
    gone: BTreeSet<CallId>,
    /// Check longest-idle order after every command and every poll.
    idle_checks: bool,
}

impl World {
    fn new(strategies: [Distribution; 2]) -> World {
        let now = Instant::now();
        let mut first = queue("q0", strategies[0]);
        first.max_length = Some(4);
        first.max_wait_secs = Some(120);
        first.min_level = 4;
        first.escalation = vec![Escalation {
            after_secs: 30,
            min_level: 1,
        }];
        first.wrap_up_secs = 10;
        let mut second = queue("q1", strategies[1]);
        second.max_wait_secs = Some(200);
        let agents = [
            agent("a0", &[("q0", 5), ("q1", 2)]),
            agent("a1", &[("q0", 2), ("q1", 5)]),
            agent("a2", &[("q0", 5)]),
            agent("a3", &[("q1", 3)]),
        ];
        let acd = Acd::new([&first, &second], &agents, AcdSettings::default(), now);
        World {
            acd,
            now,
            next_call: 0,
            live: BTreeSet::new(),
            gone: BTreeSet::new(),
            idle_checks: false,
        }
    }

    fn pick_live(&self, pick: usize) -> Option<CallId> {
        let n = self.live.len();
        (n > 0).then(|| *self.live.iter().nth(pick % n).unwrap())
    }

    fn absorb(&mut self, decisions: &[AcdDecision]) {
        if self.idle_checks {
            self.check_longest_idle(decisions);
        }
        for d in decisions {
            if let AcdDecision::Overflow { call, .. } = d {
                assert!(self.live.remove(call), "{call} overflowed twice or unknown");
                self.gone.insert(*call);
            }
        }
    }

    fn step(&mut self, op: &Op) -> Vec<AcdDecision> {
        let now = self.now;
        let result = match op {
            Op::Join { queue, priority } => {
                let call = CallId(self.next_call);
                self.next_call += 1;
                self.live.insert(call);
                self.acd.join(call, &format!("q{queue}"), *priority, now)
            }
            Op::Answer { pick } => match self.pick_live(*pick) {
                Some(call) => match self.acd.call_status(call) {
                    Some(CallStatus::Ringing { agents, .. }) => {
                        let agent = agents[pick % agents.len()].clone();
                        self.acd.answered(call, &agent, now)
                    }
                    _ => self.acd.answered(call, "a0", now),
                },
                None => Ok(Vec::new()),
            },
            Op::Fail { pick, failure } => match self.pick_live(*pick) {
                Some(call) => match self.acd.call_status(call) {
                    Some(CallStatus::Ringing { agents, .. }) => {
                        let agent = agents[pick % agents.len()].clone();
                        self.acd.leg_failed(call, &agent, *failure, now)
                    }
                    _ => self.acd.leg_failed(call, "a1", *failure, now),
                },
                None => Ok(Vec::new()),
            },
            Op::End { pick } => match self.pick_live(*pick) {
                Some(call) => {
                    let out = self.acd.call_ended(call, now);
                    assert!(out.is_ok(), "a live call must be known: {out:?}");
                    self.live.remove(&call);
                    self.gone.insert(call);
                    out
                }
                None => Ok(Vec::new()),
            },
            Op::Login(a) => self.acd.login(&agent_id(*a), now),
            Op::Logout(a) => self.acd.logout(&agent_id(*a), now),
            Op::Pause(a) => {
                let reason = PauseReason::Requested("Pause".into());
                self.acd.pause(&agent_id(*a), reason, now)
            }
            Op::Unpause(a) => self.acd.unpause(&agent_id(*a), now),
            Op::WrapUpDone(a) => self.acd.wrap_up_done(&agent_id(*a), now),
            Op::Unreachable(a) => self.acd.unreachable(&agent_id(*a), now),
            Op::Reachable(a) => self.acd.reachable(&agent_id(*a), now),
            Op::Advance(secs) => {
                // Time moves in steps no larger than the next deadline, as the ACD task does.
                let target = now + Duration::from_secs(*secs);
                let mut out = Vec::new();
                while let Some(deadline) = self.acd.next_deadline().filter(|d| *d <= target) {
                    self.now = self.now.max(deadline);
                    let polled = self.acd.poll(self.now);
                    self.absorb(&polled);
                    out.extend(polled);
                }
                self.now = target;
                let polled = self.acd.poll(self.now);
                self.absorb(&polled);
                out.extend(polled);
                return out;
            }
        };
        let decisions = result.unwrap_or_default();
        self.absorb(&decisions);
        decisions
    }

    fn check(&self) {
        let acd = &self.acd;
        acd.check_indexes(self.now);
        // Every live caller is in exactly one place; every gone one nowhere.
        for call in &self.live {
            assert!(acd.call_status(*call).is_some(), "{call} was lost");
        }
        for call in &self.gone {
            assert!(
                acd.call_status(*call).is_none(),
                "{call} is gone but still known"
            );
        }
        assert_eq!(
            acd.calls.len(),
            self.live.len(),
            "the ACD knows calls the test does not"
        );

        // No agent bound to two calls; each binding matches the call's view.
        let mut bound: BTreeMap<&str, Vec<CallId>> = BTreeMap::new();
        for (call, record) in &acd.calls {
            match record {
                CallRecord::Queued(e) => {
                    for a in &e.ringing {
                        bound.entry(a).or_default().push(*call);
                    }
                }
                CallRecord::Connected { agent, .. } => bound.entry(agent).or_default().push(*call),
            }
        }
        for (id, calls) in &bound {
            assert_eq!(calls.len(), 1, "agent {id} has calls {calls:?}");
            let state = &acd.agents[*id].state;
            assert_eq!(state.call(), Some(calls[0]), "agent {id} is {state:?}");
        }

        // No agent stuck: every state outside Available has a release.
        let deadline = acd.next_deadline();
        for (id, a) in &acd.agents {
            match &a.state {
                AgentState::Reserved { call, .. } | AgentState::OnCall { call }
                    if !bound.contains_key(id.as_str()) =>
                {
                    panic!("agent {id} bound to {call}, which does not know it")
                }
                AgentState::Reserved { until, .. } | AgentState::WrapUp { until } => {
                    assert!(*until > self.now, "agent {id}: deadline passed unpolled");
                    assert!(
                        deadline.is_some_and(|d| d <= *until),
                        "agent {id}: no deadline"
                    );
                }
                // OnCall ends by hang-up (the call is live, checked above); LoggedOut, Paused
                // and Unreachable are explicit states ended by the agent or an admin.
                _ => {}
            }
        }
        if let Some(d) = deadline {
            assert!(
                d > self.now,
                "a deadline at or before now was left unpolled"
            );
        }
    }

    /// Longest-idle: every agent rung in `decisions` had been idle at least as long as every
    /// agent still available that could have taken the same caller.
    fn check_longest_idle(&self, decisions: &[AcdDecision]) {
        for d in decisions {
            let AcdDecision::Ring { call, agent, .. } = d else {
                continue;
            };
            let Some(CallRecord::Queued(entry)) = self.acd.calls.get(call) else {
                continue;
            };
            let rung = &self.acd.agents[agent];
            for (id, other) in &self.acd.agents {
                if matches!(other.state, AgentState::Available { .. }) && !entry.skips(id, self.now)
                {
                    assert!(
                        rung.idle_since <= other.idle_since,
                        "{agent} rung for {call} while {id} was idle longer"
                    );
                }
            }
        }
    }
}

fn strategy() -> impl proptest::strategy::Strategy<Value = Distribution> {
    prop_oneof![
        Just(Distribution::LongestIdle),
        Just(Distribution::RoundRobin),
        Just(Distribution::FewestCalls),
        Just(Distribution::RingAll),
        Just(Distribution::Linear),
        Just(Distribution::Random),
    ]
}

proptest! {
    // No regression files: this module may only write inside `src/acd/`; a failure prints the
    // minimal case, which belongs in `tests.rs` as a unit test.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(300)
    })]

    #[test]
    fn invariants_hold_after_every_step(
        strategies in [strategy(), strategy()],
        logins in proptest::collection::vec(0..AGENTS, 0..4),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut world = World::new(strategies);
        for a in logins {
            let _ = world.acd.login(&agent_id(a), world.now);
        }
        world.check();
        for op in &ops {
            world.step(op);
            world.check();
        }
    }

    #[test]
    fn longest_idle_order_holds(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        // One queue every agent serves at the same level, so eligibility is not a factor.
        let now = Instant::now();
        let q = queue("q0", Distribution::LongestIdle);
        let agents: Vec<_> = (0..AGENTS).map(|i| agent(&agent_id(i), &[("q0", 5)])).collect();
        let mut world = World::new([Distribution::LongestIdle; 2]);
        world.acd = Acd::new([&q], &agents, AcdSettings::default(), now);
        world.now = now;
        world.idle_checks = true;
        for i in 0..AGENTS {
            world.acd.login(&agent_id(i), now).unwrap();
        }
        for op in &ops {
            let op = match op {
                Op::Join { priority, .. } => Op::Join { queue: 0, priority: *priority },
                other => other.clone(),
            };
            world.step(&op);
            world.check();
        }
    }
}
