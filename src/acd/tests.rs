//! Unit tests: one per agent transition and per strategy, with a hand-driven clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::agent::{AgentEvent as E, AgentState as S, transition};
use super::*;
use crate::rules::model::{Agent, Escalation, Queue, Reach, Strategy};

pub(super) fn queue(id: &str, strategy: Strategy) -> Queue {
    Queue {
        id: id.into(),
        name: id.into(),
        department: None,
        strategy,
        skill: id.into(),
        min_level: 1,
        escalation: Vec::new(),
        max_length: None,
        max_wait_secs: None,
        service_level: None,
        ring_timeout_secs: 15,
        wrap_up_secs: 0,
        entry_prompt: None,
        music_on_hold: None,
        announce_position_every_secs: None,
        leave_key: None,
        on_leave: None,
        on_full: None,
        on_max_wait: None,
        on_no_agents: None,
    }
}

pub(super) fn agent(id: &str, skills: &[(&str, u8)]) -> Agent {
    Agent {
        id: id.into(),
        name: id.into(),
        skills: skills
            .iter()
            .map(|(s, l)| ((*s).to_string(), *l))
            .collect::<BTreeMap<_, _>>(),
        reach: Reach::Uri(format!("sip:{id}@pbx.jena.de")),
        wrap_up_secs: None,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// An ACD over `queues` with agents `a1…` (all skilled 5 in every queue), logged in one second
/// apart so `a1` has been idle longest.
fn acd_with(queues: &[Queue], agents: usize, t0: Instant) -> Acd {
    let skills: Vec<(&str, u8)> = queues.iter().map(|q| (q.id.as_str(), 5)).collect();
    let agents: Vec<Agent> = (1..=agents)
        .map(|i| agent(&format!("a{i}"), &skills))
        .collect();
    let mut acd = Acd::new(queues, &agents, AcdSettings::default(), t0);
    for (i, a) in agents.iter().enumerate() {
        acd.login(&a.id, t0 + secs(i as u64)).unwrap();
    }
    acd
}

fn rings(decisions: &[AcdDecision]) -> Vec<(CallId, String)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            AcdDecision::Ring { call, agent, .. } => Some((*call, agent.clone())),
            _ => None,
        })
        .collect()
}

fn ring(call: u64, agent: &str) -> (CallId, String) {
    (CallId(call), agent.to_string())
}

fn cancels(decisions: &[AcdDecision]) -> Vec<(CallId, String)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            AcdDecision::CancelRing { call, agent } => Some((*call, agent.clone())),
            _ => None,
        })
        .collect()
}

// --- agent transitions ---------------------------------------------------------------------

#[test]
fn login_makes_an_agent_available_and_twice_is_an_error() {
    let t = Instant::now();
    assert_eq!(
        transition(&S::LoggedOut, &E::Login, t, t),
        Ok(S::Available { since: t })
    );
    assert!(transition(&S::Available { since: t }, &E::Login, t, t).is_err());
}

#[test]
fn an_agent_is_never_reserved_twice() {
    let t = Instant::now();
    let offer = E::Offer {
        call: CallId(1),
        until: t + secs(15),
    };
    let reserved = transition(&S::Available { since: t }, &offer, t, t).unwrap();
    assert_eq!(
        reserved,
        S::Reserved {
            call: CallId(1),
            until: t + secs(15)
        }
    );
    let second = E::Offer {
        call: CallId(2),
        until: t + secs(15),
    };
    assert!(transition(&reserved, &second, t, t).is_err());
    assert!(transition(&S::OnCall { call: CallId(1) }, &second, t, t).is_err());
    assert!(transition(&S::WrapUp { until: t }, &second, t, t).is_err());
}

#[test]
fn answer_must_name_the_ringing_call() {
    let t = Instant::now();
    let reserved = S::Reserved {
        call: CallId(1),
        until: t,
    };
    assert_eq!(
        transition(&reserved, &E::Answered { call: CallId(1) }, t, t),
        Ok(S::OnCall { call: CallId(1) })
    );
    assert!(transition(&reserved, &E::Answered { call: CallId(2) }, t, t).is_err());
}

#[test]
fn a_failed_offer_keeps_the_idle_time() {
    let t = Instant::now();
    let reserved = S::Reserved {
        call: CallId(1),
        until: t + secs(15),
    };
    let later = t + secs(20);
    assert_eq!(
        transition(&reserved, &E::LegFailed { call: CallId(1) }, t, later),
        Ok(S::Available { since: t })
    );
    assert_eq!(
        transition(&reserved, &E::OfferWithdrawn { call: CallId(1) }, t, later),
        Ok(S::Available { since: t })
    );
}

#[test]
fn hangup_starts_wrap_up_or_frees_the_agent_at_once() {
    let t = Instant::now();
    let on_call = S::OnCall { call: CallId(1) };
    let hangup = |w| E::Hangup {
        call: CallId(1),
        wrap_up: secs(w),
    };
    assert_eq!(
        transition(&on_call, &hangup(30), t, t),
        Ok(S::WrapUp {
            until: t + secs(30)
        })
    );
    assert_eq!(
        transition(&on_call, &hangup(0), t, t),
        Ok(S::Available { since: t })
    );
    assert_eq!(
        transition(&S::WrapUp { until: t }, &E::WrapUpDone, t, t),
        Ok(S::Available { since: t })
    );
}

#[test]
fn pause_and_unpause() {
    let t = Instant::now();
    let paused = S::Paused {
        reason: PauseReason::Requested("Pause".into()),
    };
    assert_eq!(
        transition(
            &S::Available { since: t },
            &E::Pause(PauseReason::Requested("Pause".into())),
            t,
            t
        ),
        Ok(paused.clone())
    );
    assert_eq!(
        transition(&paused, &E::Unpause, t, t),
        Ok(S::Available { since: t })
    );
    assert!(
        transition(
            &S::OnCall { call: CallId(1) },
            &E::Pause(PauseReason::NoAnswer),
            t,
            t
        )
        .is_err()
    );
    assert!(transition(&S::Available { since: t }, &E::Unpause, t, t).is_err());
}

#[test]
fn unreachable_and_back_and_logout() {
    let t = Instant::now();
    assert_eq!(
        transition(&S::Available { since: t }, &E::Unreachable, t, t),
        Ok(S::Unreachable)
    );
    assert_eq!(
        transition(&S::Unreachable, &E::Reachable, t, t),
        Ok(S::Available { since: t })
    );
    assert_eq!(
        transition(&S::Unreachable, &E::Logout, t, t),
        Ok(S::LoggedOut)
    );
    assert!(transition(&S::OnCall { call: CallId(1) }, &E::Logout, t, t).is_err());
}

#[test]
fn every_state_and_event_has_an_answer_and_every_state_a_way_out() {
    let t = Instant::now();
    let call = CallId(1);
    let states = [
        S::LoggedOut,
        S::Available { since: t },
        S::Reserved { call, until: t },
        S::OnCall { call },
        S::WrapUp { until: t },
        S::Paused {
            reason: PauseReason::NoAnswer,
        },
        S::Unreachable,
    ];
    let events = [
        E::Login,
        E::Logout,
        E::Pause(PauseReason::NoAnswer),
        E::Unpause,
        E::Offer { call, until: t },
        E::Answered { call },
        E::LegFailed { call },
        E::Hangup {
            call,
            wrap_up: secs(1),
        },
        E::OfferWithdrawn { call },
        E::WrapUpDone,
        E::Unreachable,
        E::Reachable,
    ];
    for state in &states {
        let ways_out = events
            .iter()
            .filter_map(|e| transition(state, e, t, t).ok())
            .filter(|next| next != state)
            .count();
        assert!(ways_out > 0, "{state:?} has no way out");
    }
}

// --- joining and overflow ------------------------------------------------------------------

#[test]
fn join_without_logged_in_agents_overflows_with_no_agents() {
    let t = Instant::now();
    let q = queue("fundbuero", Strategy::LongestIdle);
    let mut acd = Acd::new(
        [&q],
        [&agent("a1", &[("fundbuero", 3)])],
        AcdSettings::default(),
        t,
    );
    let out = acd.join(CallId(1), "fundbuero", 0, t).unwrap();
    assert_eq!(
        out,
        vec![AcdDecision::Overflow {
            call: CallId(1),
            queue: "fundbuero".into(),
            reason: OverflowReason::NoAgents
        }]
    );
    assert_eq!(acd.call_status(CallId(1)), None);
    assert!(matches!(
        acd.join(CallId(2), "nope", 0, t),
        Err(AcdError::UnknownQueue(_))
    ));
}

#[test]
fn a_full_queue_refuses_the_caller() {
    let t = Instant::now();
    let mut q = queue("q", Strategy::LongestIdle);
    q.max_length = Some(1);
    let mut acd = acd_with(&[q], 1, t);
    acd.join(CallId(1), "q", 0, t).unwrap(); // rings a1
    acd.join(CallId(2), "q", 0, t).unwrap();
    let out = acd.join(CallId(3), "q", 0, t).unwrap();
    assert!(matches!(
        out[..],
        [AcdDecision::Overflow {
            reason: OverflowReason::Full,
            ..
        }]
    ));
}

#[test]
fn max_wait_overflows_on_poll_and_is_the_next_deadline() {
    let t = Instant::now();
    let mut q = queue("q", Strategy::LongestIdle);
    q.max_wait_secs = Some(60);
    let mut acd = acd_with(&[q], 1, t);
    acd.pause("a1", PauseReason::Requested("Kaffee".into()), t)
        .unwrap();
    acd.join(CallId(1), "q", 0, t + secs(1)).unwrap();
    assert_eq!(acd.next_deadline(), Some(t + secs(61)));
    assert!(acd.poll(t + secs(60)).is_empty());
    let out = acd.poll(t + secs(61));
    assert!(matches!(
        out[..],
        [AcdDecision::Overflow {
            reason: OverflowReason::MaxWait,
            ..
        }]
    ));
    assert_eq!(acd.call_status(CallId(1)), None);
}

#[test]
fn waiting_callers_leave_when_the_last_agent_logs_out() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 1, t);
    acd.pause("a1", PauseReason::Requested("Pause".into()), t)
        .unwrap();
    acd.join(CallId(1), "q", 0, t).unwrap();
    let out = acd.logout("a1", t + secs(5)).unwrap();
    assert!(out.iter().any(|d| matches!(
        d,
        AcdDecision::Overflow {
            reason: OverflowReason::NoAgents,
            ..
        }
    )));
}

// --- connecting ----------------------------------------------------------------------------

#[test]
fn answer_connects_and_hangup_wraps_up_then_the_next_caller_rings() {
    let t = Instant::now();
    let mut q = queue("q", Strategy::LongestIdle);
    q.wrap_up_secs = 30;
    let mut acd = acd_with(&[q], 1, t);
    assert_eq!(
        rings(&acd.join(CallId(1), "q", 0, t).unwrap()),
        vec![ring(1, "a1")]
    );
    acd.join(CallId(2), "q", 0, t).unwrap();
    let out = acd.answered(CallId(1), "a1", t + secs(3)).unwrap();
    assert!(out.contains(&AcdDecision::Connected {
        call: CallId(1),
        agent: "a1".into()
    }));
    acd.call_ended(CallId(1), t + secs(100)).unwrap();
    assert_eq!(
        acd.agent_state("a1"),
        Some(AgentState::WrapUp {
            until: t + secs(130)
        })
    );
    assert_eq!(acd.next_deadline(), Some(t + secs(130)));
    assert_eq!(rings(&acd.poll(t + secs(130))), vec![ring(2, "a1")]);
}

#[test]
fn the_agents_own_wrap_up_time_wins() {
    let t = Instant::now();
    let q = queue("q", Strategy::LongestIdle);
    let mut a = agent("a1", &[("q", 5)]);
    a.wrap_up_secs = Some(5);
    let mut acd = Acd::new([&q], [&a], AcdSettings::default(), t);
    acd.login("a1", t).unwrap();
    acd.join(CallId(1), "q", 0, t).unwrap();
    acd.answered(CallId(1), "a1", t).unwrap();
    acd.call_ended(CallId(1), t + secs(10)).unwrap();
    assert_eq!(
        acd.agent_state("a1"),
        Some(AgentState::WrapUp {
            until: t + secs(15)
        })
    );
    acd.wrap_up_done("a1", t + secs(11)).unwrap();
    assert_eq!(
        acd.agent_state("a1"),
        Some(AgentState::Available {
            since: t + secs(11)
        })
    );
}

#[test]
fn ring_timeout_rings_the_next_agent_and_the_caller_keeps_the_head() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 2, t);
    acd.pause("a2", PauseReason::Requested("Pause".into()), t + secs(2))
        .unwrap();
    assert_eq!(
        rings(&acd.join(CallId(1), "q", 0, t + secs(3)).unwrap()),
        vec![ring(1, "a1")]
    );
    acd.join(CallId(2), "q", 0, t + secs(4)).unwrap();
    assert_eq!(acd.next_deadline(), Some(t + secs(18)));
    let out = acd.poll(t + secs(18));
    assert_eq!(cancels(&out), vec![ring(1, "a1")]);
    // a1 just failed caller 1, so it takes caller 2; caller 1 stays at the head …
    assert_eq!(rings(&out), vec![ring(2, "a1")]);
    assert_eq!(
        acd.call_status(CallId(1)),
        Some(CallStatus::Waiting { queue: "q".into() })
    );
    // … and gets the next free agent.
    assert_eq!(
        rings(&acd.unpause("a2", t + secs(19)).unwrap()),
        vec![ring(1, "a2")]
    );
}

#[test]
fn a_declined_agent_is_retried_after_the_pause_when_alone() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 1, t);
    acd.join(CallId(1), "q", 0, t).unwrap();
    let out = acd
        .leg_failed(CallId(1), "a1", LegFailure::Busy, t + secs(1))
        .unwrap();
    assert!(rings(&out).is_empty());
    assert_eq!(acd.next_deadline(), Some(t + secs(6)));
    assert_eq!(rings(&acd.poll(t + secs(6))), vec![ring(1, "a1")]);
}

#[test]
fn a_local_failure_holds_the_caller_back_instead_of_trying_every_agent() {
    // The engine had no RTP port for the agent leg: not a1's doing, and a2 would fail the
    // same way this instant. The caller keeps its place, nobody rings for LOCAL_RETRY, and
    // then the longest-idle agent (a1 again, not skipped) gets it.
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 2, t);
    assert_eq!(
        rings(&acd.join(CallId(1), "q", 0, t + secs(1)).unwrap()),
        vec![ring(1, "a1")]
    );
    let out = acd
        .leg_failed(CallId(1), "a1", LegFailure::Local, t + secs(2))
        .unwrap();
    assert!(rings(&out).is_empty(), "no other agent rang: {out:?}");
    assert!(matches!(
        acd.agent_state("a1"),
        Some(AgentState::Available { .. })
    ));
    assert_eq!(
        acd.call_status(CallId(1)),
        Some(CallStatus::Waiting { queue: "q".into() })
    );
    let back = t + secs(2) + super::agent::LOCAL_RETRY;
    assert_eq!(acd.next_deadline(), Some(back));
    assert!(rings(&acd.poll(back - Duration::from_millis(1))).is_empty());
    assert_eq!(rings(&acd.poll(back)), vec![ring(1, "a1")]);
    // The local failure did not count as a no-answer, nor pause anyone.
    let out = acd
        .leg_failed(CallId(1), "a1", LegFailure::Local, back)
        .unwrap();
    assert!(rings(&out).is_empty());
    assert_eq!(acd.next_deadline(), Some(back + super::agent::LOCAL_RETRY));
}

#[test]
fn caller_hangup_while_ringing_cancels_the_agent_leg() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 1, t);
    acd.join(CallId(1), "q", 0, t).unwrap();
    let out = acd.call_ended(CallId(1), t + secs(2)).unwrap();
    assert_eq!(cancels(&out), vec![ring(1, "a1")]);
    assert_eq!(
        acd.agent_state("a1"),
        Some(AgentState::Available { since: t })
    );
}

#[test]
fn logout_while_ringing_cancels_and_requeues() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 2, t);
    assert_eq!(
        rings(&acd.join(CallId(1), "q", 0, t + secs(2)).unwrap()),
        vec![ring(1, "a1")]
    );
    let out = acd.logout("a1", t + secs(3)).unwrap();
    assert_eq!(cancels(&out), vec![ring(1, "a1")]);
    assert_eq!(rings(&out), vec![ring(1, "a2")]);
    assert!(acd.logout("a2", t + secs(3)).is_ok());
    assert_eq!(acd.agent_state("a2"), Some(AgentState::LoggedOut));
}

#[test]
fn on_call_agents_cannot_log_out_and_nothing_changes() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 1, t);
    acd.join(CallId(1), "q", 0, t).unwrap();
    acd.answered(CallId(1), "a1", t).unwrap();
    assert!(matches!(acd.logout("a1", t), Err(AcdError::Agent { .. })));
    assert!(matches!(
        acd.answered(CallId(1), "a1", t),
        Err(AcdError::NotRinging { .. })
    ));
    assert_eq!(
        acd.agent_state("a1"),
        Some(AgentState::OnCall { call: CallId(1) })
    );
}

#[test]
fn consecutive_no_answers_pause_the_agent() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 1, t);
    let settings = AcdSettings::default();
    for i in 0..settings.max_no_answers {
        let now = t + secs(100 * u64::from(i));
        acd.join(CallId(u64::from(i)), "q", 0, now).unwrap();
        acd.poll(now + secs(15));
        acd.call_ended(CallId(u64::from(i)), now + secs(16))
            .unwrap();
    }
    assert_eq!(
        acd.agent_state("a1"),
        Some(AgentState::Paused {
            reason: PauseReason::NoAnswer
        })
    );
}

// --- strategies ----------------------------------------------------------------------------

#[test]
fn longest_idle_rings_the_agent_free_the_longest() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 3, t);
    acd.pause("a1", PauseReason::Requested("x".into()), t + secs(5))
        .unwrap();
    acd.unpause("a1", t + secs(6)).unwrap();
    assert_eq!(
        rings(&acd.join(CallId(1), "q", 0, t + secs(7)).unwrap()),
        vec![ring(1, "a2")]
    );
    assert_eq!(
        rings(&acd.join(CallId(2), "q", 0, t + secs(7)).unwrap()),
        vec![ring(2, "a3")]
    );
    assert_eq!(
        rings(&acd.join(CallId(3), "q", 0, t + secs(7)).unwrap()),
        vec![ring(3, "a1")]
    );
}

#[test]
fn round_robin_goes_around_in_agent_order() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::RoundRobin)], 3, t);
    let mut order = Vec::new();
    for i in 0..4 {
        let now = t + secs(10 + i);
        let out = acd.join(CallId(i), "q", 0, now).unwrap();
        order.extend(rings(&out).into_iter().map(|(_, a)| a));
        acd.call_ended(CallId(i), now).unwrap();
    }
    assert_eq!(order, ["a1", "a2", "a3", "a1"]);
}

#[test]
fn fewest_calls_prefers_the_agent_with_fewest_answered_calls() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::FewestCalls)], 2, t);
    acd.join(CallId(1), "q", 0, t + secs(5)).unwrap(); // a1 (longest idle, both 0 calls)
    acd.answered(CallId(1), "a1", t + secs(5)).unwrap();
    acd.call_ended(CallId(1), t + secs(6)).unwrap();
    acd.join(CallId(2), "q", 0, t + secs(7)).unwrap();
    acd.answered(CallId(2), "a2", t + secs(7)).unwrap();
    acd.call_ended(CallId(2), t + secs(8)).unwrap();
    acd.join(CallId(3), "q", 0, t + secs(9)).unwrap();
    acd.answered(CallId(3), "a1", t + secs(9)).unwrap();
    acd.call_ended(CallId(3), t + secs(10)).unwrap();
    // a2 was idle longer (since 8 s) but both took one call … a1 now has 2: a2 it is.
    assert_eq!(
        rings(&acd.join(CallId(4), "q", 0, t + secs(11)).unwrap()),
        vec![ring(4, "a2")]
    );
}

#[test]
fn ring_all_rings_everyone_and_the_first_answer_wins() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::RingAll)], 3, t);
    let out = acd.join(CallId(1), "q", 0, t + secs(5)).unwrap();
    assert_eq!(
        rings(&out),
        vec![ring(1, "a1"), ring(1, "a2"), ring(1, "a3")]
    );
    let out = acd.answered(CallId(1), "a2", t + secs(6)).unwrap();
    assert_eq!(cancels(&out), vec![ring(1, "a1"), ring(1, "a3")]);
    assert!(matches!(
        acd.agent_state("a1"),
        Some(AgentState::Available { .. })
    ));
    assert_eq!(
        acd.call_status(CallId(1)),
        Some(CallStatus::Connected {
            queue: "q".into(),
            agent: "a2".into()
        })
    );
}

#[test]
fn linear_always_starts_at_the_top() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::Linear)], 3, t);
    for i in 0..3 {
        let now = t + secs(10 + i);
        assert_eq!(
            rings(&acd.join(CallId(i), "q", 0, now).unwrap()),
            vec![ring(i, "a1")]
        );
        acd.call_ended(CallId(i), now).unwrap();
    }
}

#[test]
fn random_is_reproducible_with_the_same_seed() {
    let t = Instant::now();
    let run = || {
        let mut acd = acd_with(&[queue("q", Strategy::Random)], 4, t);
        (0..8)
            .flat_map(|i| {
                let now = t + secs(10 + i);
                let out = rings(&acd.join(CallId(i), "q", 0, now).unwrap());
                acd.call_ended(CallId(i), now).unwrap();
                out
            })
            .map(|(_, a)| a)
            .collect::<Vec<_>>()
    };
    let first = run();
    assert_eq!(first, run());
    let distinct: std::collections::BTreeSet<_> = first.iter().collect();
    assert!(distinct.len() > 1, "{first:?}");
}

// --- order, skills, fairness ---------------------------------------------------------------

#[test]
fn priority_then_entry_time() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 1, t);
    acd.pause("a1", PauseReason::Requested("x".into()), t)
        .unwrap();
    acd.join(CallId(1), "q", 0, t + secs(1)).unwrap();
    acd.join(CallId(2), "q", 0, t + secs(2)).unwrap();
    acd.join(CallId(3), "q", 5, t + secs(3)).unwrap();
    assert_eq!(
        rings(&acd.unpause("a1", t + secs(4)).unwrap()),
        vec![ring(3, "a1")]
    );
    assert_eq!(
        rings(&acd.call_ended(CallId(3), t + secs(5)).unwrap()),
        vec![ring(1, "a1")]
    );
}

#[test]
fn escalation_widens_the_pool_without_losing_the_place() {
    let t = Instant::now();
    let mut q = queue("q", Strategy::LongestIdle);
    q.min_level = 5;
    q.escalation = vec![Escalation {
        after_secs: 60,
        min_level: 0,
    }];
    let expert = agent("expert", &[("q", 5)]);
    let novice = agent("novice", &[("other", 3)]);
    let mut acd = Acd::new([&q], [&expert, &novice], AcdSettings::default(), t);
    acd.login("expert", t).unwrap();
    acd.pause("expert", PauseReason::Requested("x".into()), t)
        .unwrap();
    acd.login("novice", t).unwrap();
    acd.join(CallId(1), "q", 0, t + secs(10)).unwrap();
    acd.join(CallId(2), "q", 0, t + secs(20)).unwrap();
    assert_eq!(acd.next_deadline(), Some(t + secs(70)));
    assert!(rings(&acd.poll(t + secs(69))).is_empty());
    // Caller 1 escalates first and is first in line for the novice.
    assert_eq!(rings(&acd.poll(t + secs(70))), vec![ring(1, "novice")]);
    assert_eq!(
        acd.queue_state("q").map(|s| s.logged_in_agents),
        Some(1),
        "only the expert counts at the base level"
    );
}

#[test]
fn an_agent_in_several_queues_takes_the_longest_waiting_caller_across_them() {
    let t = Instant::now();
    let mut acd = acd_with(
        &[
            queue("a", Strategy::LongestIdle),
            queue("b", Strategy::LongestIdle),
        ],
        1,
        t,
    );
    acd.pause("a1", PauseReason::Requested("x".into()), t)
        .unwrap();
    acd.join(CallId(1), "a", 0, t + secs(20)).unwrap();
    acd.join(CallId(2), "b", 0, t + secs(10)).unwrap();
    assert_eq!(
        rings(&acd.unpause("a1", t + secs(30)).unwrap()),
        vec![ring(2, "a1")]
    );
}

#[test]
fn stats_and_queue_state() {
    let t = Instant::now();
    let mut acd = acd_with(&[queue("q", Strategy::LongestIdle)], 2, t);
    acd.pause("a2", PauseReason::Requested("x".into()), t)
        .unwrap();
    acd.join(CallId(1), "q", 0, t + secs(2)).unwrap();
    acd.join(CallId(2), "q", 0, t + secs(4)).unwrap();
    let stats = acd.queue_stats("q", t + secs(10)).unwrap();
    assert_eq!(stats.waiting, 1);
    assert_eq!(stats.ringing, 1);
    assert_eq!(stats.longest_wait, Some(secs(8)));
    assert_eq!(stats.agents.reserved, 1);
    assert_eq!(stats.agents.paused, 1);
    assert_eq!(
        acd.queue_state("q"),
        Some(crate::rules::QueueState {
            logged_in_agents: 2,
            waiting_callers: 2,
            estimated_wait_secs: None
        })
    );
}

// --- new rules -----------------------------------------------------------------------------

#[test]
fn new_rules_add_agents_and_queues_retire_removed_agents_and_keep_calls() {
    let t0 = Instant::now();
    let q = queue("fundbuero", Strategy::LongestIdle);
    let mut acd = acd_with(std::slice::from_ref(&q), 2, t0);
    let t1 = t0 + secs(10);
    // a1 (idle longest) takes the first caller; a2 is free.
    let first = acd.join(CallId(1), "fundbuero", 0, t1).unwrap();
    assert_eq!(rings(&first), vec![ring(1, "a1")]);
    acd.answered(CallId(1), "a1", t1).unwrap();

    // New rules: a2 is gone, a3 joins, a new queue appears; a1 (on a call) is retired too.
    let q2 = queue("allgemein", Strategy::LongestIdle);
    let a3 = agent("a3", &[("fundbuero", 5), ("allgemein", 5)]);
    let t2 = t1 + secs(1);
    let decisions = acd.reconfigure([&q, &q2], [&a3], t2);
    assert!(decisions.iter().any(|d| matches!(d,
        AcdDecision::AgentChanged { agent, state: AgentState::LoggedOut } if agent == "a2")));
    assert_eq!(acd.agent_state("a3"), Some(AgentState::LoggedOut));
    // a1 finishes its call undisturbed.
    assert!(matches!(
        acd.agent_state("a1"),
        Some(AgentState::OnCall { .. })
    ));
    assert!(acd.queue_stats("allgemein", t2).is_some());
    // Retired agents cannot log in; the new one can and takes the next caller.
    assert!(matches!(
        acd.login("a2", t2),
        Err(AcdError::UnknownAgent(_))
    ));
    acd.login("a3", t2).unwrap();
    let next = acd.join(CallId(2), "fundbuero", 0, t2 + secs(1)).unwrap();
    assert_eq!(rings(&next), vec![ring(2, "a3")]);
    // a1's call ends: a1 takes no further calls (no skills left).
    acd.call_ended(CallId(1), t2 + secs(2)).unwrap();
    let third = acd.join(CallId(3), "fundbuero", 0, t2 + secs(40)).unwrap();
    assert!(rings(&third).is_empty(), "{third:?}");
}
