//! Turns the event stream into rows: each call's events are collected in memory until its
//! `ended` event makes one [`CallRow`]; queue and agent events become [`QueueRow`]s at once.
//! Pure (no I/O, the time comes with the events), so it is tested without a database.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::events::{CallEvent, CallEventKind};
use crate::hash::HashMap;

/// Calls whose events are collected at once; more (a flood, or `ended` events never seen) and
/// the oldest open calls are forgotten.
pub const MAX_OPEN_CALLS: usize = 50_000;
/// When the table is full, calls open longer than this are dropped first.
const STALE_AFTER_SECS: i64 = 6 * 3600;

#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    pub call_id: String,
    pub started_at_ms: i64,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: i64,
    pub transport: Option<String>,
    pub dialled: String,
    pub caller: Option<String>,
    pub topic: Option<String>,
    pub first_queue: Option<String>,
    pub final_queue: Option<String>,
    pub queued_at_ms: Option<i64>,
    pub connected_at_ms: Option<i64>,
    pub agent: Option<String>,
    pub outcome: String,
    pub end_reason: String,
    pub reject_status: Option<i32>,
    pub wait_secs: Option<f64>,
    pub talk_secs: Option<f64>,
    pub rules_version: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub at_ms: i64,
    pub call_id: String,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub kind: String,
    pub reason: Option<String>,
    pub wait_secs: Option<f64>,
    pub topic: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Call(CallRow),
    Queue(QueueRow),
}

/// The events the records need (the sink filter): menus, prompts, keys and position
/// announcements are left out.
pub fn wanted(kind: &CallEventKind) -> bool {
    !matches!(
        kind,
        CallEventKind::Menu { .. }
            | CallEventKind::Play { .. }
            | CallEventKind::Key { .. }
            | CallEventKind::NoInput
            | CallEventKind::Announce { .. }
    )
}

#[derive(Debug, Clone)]
struct Visit {
    queue: String,
    entered: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct OpenCall {
    started: DateTime<Utc>,
    transport: Option<String>,
    dialled: String,
    caller: Option<String>,
    answered: Option<DateTime<Utc>>,
    rejected: Option<u16>,
    topic: Option<String>,
    first_queue: Option<String>,
    final_queue: Option<String>,
    queued_at: Option<DateTime<Utc>>,
    visit: Option<Visit>,
    waited: Option<f64>,
    connected: Option<DateTime<Utc>>,
    agent: Option<String>,
    /// How the last queue visit ended without an answer (full, max_wait, no_agents, key).
    last_exit: Option<String>,
    announced: bool,
}

impl OpenCall {
    fn new(started: DateTime<Utc>) -> OpenCall {
        OpenCall {
            started,
            transport: None,
            dialled: String::new(),
            caller: None,
            answered: None,
            rejected: None,
            topic: None,
            first_queue: None,
            final_queue: None,
            queued_at: None,
            visit: None,
            waited: None,
            connected: None,
            agent: None,
            last_exit: None,
            announced: false,
        }
    }

    /// Ends the current queue visit at `at`; returns (queue, seconds waited).
    fn end_visit(&mut self, at: DateTime<Utc>) -> Option<(String, f64)> {
        let visit = self.visit.take()?;
        let wait = secs_between(visit.entered, at);
        self.waited = Some(self.waited.unwrap_or(0.0) + wait);
        Some((visit.queue, wait))
    }

    fn outcome(&self, abandoned: bool) -> &'static str {
        if self.rejected.is_some() {
            "rejected"
        } else if self.connected.is_some() {
            "answered_by_agent"
        } else if abandoned {
            "abandoned"
        } else if let Some(exit) = &self.last_exit {
            if exit == "key" {
                "left_queue"
            } else {
                "overflowed"
            }
        } else if self.announced {
            "announced_and_ended"
        } else if self.answered.is_none() {
            "not_answered"
        } else if self.first_queue.is_none() {
            "ended_in_menu"
        } else {
            "ended"
        }
    }
}

fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds().max(0)) as f64 / 1000.0
}

/// How a caller's number is stored (see `records.caller_numbers`).
pub type CallerFilter = Box<dyn Fn(&str) -> String + Send + Sync>;

/// Collects each call's events until it ends.
pub struct Builder {
    open: HashMap<Arc<str>, OpenCall>,
    caller: CallerFilter,
    /// Open calls forgotten because the table was full.
    pub forgotten: u64,
}

impl Builder {
    pub fn new(caller: CallerFilter) -> Builder {
        Builder {
            open: HashMap::default(),
            caller,
            forgotten: 0,
        }
    }

    pub fn open_calls(&self) -> usize {
        self.open.len()
    }

    fn make_room(&mut self, now: DateTime<Utc>) {
        if self.open.len() < MAX_OPEN_CALLS {
            return;
        }
        let before = self.open.len();
        self.open
            .retain(|_, call| (now - call.started).num_seconds() < STALE_AFTER_SECS);
        if self.open.len() >= MAX_OPEN_CALLS {
            // Still full: drop the oldest tenth.
            let mut starts: Vec<(DateTime<Utc>, Arc<str>)> = self
                .open
                .iter()
                .map(|(id, c)| (c.started, id.clone()))
                .collect();
            starts.sort();
            for (_, id) in starts.into_iter().take(MAX_OPEN_CALLS / 10) {
                self.open.remove(&id);
            }
        }
        self.forgotten += (before - self.open.len()) as u64;
    }

    /// The rows `event` makes (none, one queue row, or the call's row at its end).
    #[cfg(test)]
    pub fn apply(&mut self, event: &CallEvent) -> Vec<Row> {
        let mut rows = Vec::new();
        self.apply_into(event, &mut rows);
        rows
    }

    /// The rows `event` makes (none, one queue row, or the call's row at its end), appended to
    /// `rows`: the writer's pending batch takes them directly.
    pub fn apply_into(&mut self, event: &CallEvent, rows: &mut Vec<Row>) {
        let at = event.at;
        let id = &event.call_id;
        let queue_row = |kind: &str, queue: Option<String>, call: Option<&OpenCall>| QueueRow {
            at_ms: at.timestamp_millis(),
            call_id: id.to_string(),
            queue,
            agent: None,
            kind: kind.to_string(),
            reason: None,
            wait_secs: None,
            topic: call.and_then(|c| c.topic.clone()),
            detail: None,
        };
        match &event.kind {
            CallEventKind::Incoming {
                transport,
                dialled,
                caller,
            } => {
                self.make_room(at);
                let mut call = OpenCall::new(at);
                call.transport = Some(transport.clone());
                call.dialled = dialled.clone();
                call.caller = caller.as_deref().map(|c| (self.caller)(c));
                self.open.insert(id.clone(), call);
            }
            CallEventKind::Answered => {
                if let Some(call) = self.open.get_mut(id) {
                    call.answered.get_or_insert(at);
                }
            }
            CallEventKind::Rejected { status } => {
                if let Some(call) = self.open.get_mut(id) {
                    call.rejected = Some(*status);
                }
            }
            CallEventKind::Queued { queue, topic } => {
                let call = self
                    .open
                    .entry(id.clone())
                    .or_insert_with(|| OpenCall::new(at));
                if topic.is_some() {
                    call.topic = topic.clone();
                }
                if let Some((old, wait)) = call.end_visit(at) {
                    // A new queue without a left_queue first: the old visit ends here.
                    let mut row = queue_row("leave", Some(old), Some(call));
                    row.wait_secs = Some(wait);
                    rows.push(Row::Queue(row));
                }
                call.first_queue.get_or_insert_with(|| queue.clone());
                call.final_queue = Some(queue.clone());
                call.queued_at = Some(at);
                call.last_exit = None;
                call.visit = Some(Visit {
                    queue: queue.clone(),
                    entered: at,
                });
                rows.push(Row::Queue(queue_row(
                    "enter",
                    Some(queue.clone()),
                    Some(call),
                )));
            }
            CallEventKind::Ring { agent, queue } => {
                let call = self.open.get(id);
                let mut row = queue_row("ring", Some(queue.clone()), call);
                row.agent = Some(agent.clone());
                rows.push(Row::Queue(row));
            }
            CallEventKind::RingEnded { agent, reason } => {
                let call = self.open.get(id);
                let queue = call.and_then(|c| c.visit.as_ref().map(|v| v.queue.clone()));
                let mut row = queue_row("ring_ended", queue, call);
                row.agent = Some(agent.clone());
                row.reason = Some(reason.clone());
                rows.push(Row::Queue(row));
            }
            CallEventKind::Connected { agent } => {
                let call = self
                    .open
                    .entry(id.clone())
                    .or_insert_with(|| OpenCall::new(at));
                call.connected = Some(at);
                call.agent = Some(agent.clone());
                let (queue, wait) = match call.end_visit(at) {
                    Some((queue, wait)) => (Some(queue), Some(wait)),
                    None => (call.final_queue.clone(), None),
                };
                let mut row = queue_row("connect", queue, Some(call));
                row.agent = Some(agent.clone());
                row.wait_secs = wait;
                rows.push(Row::Queue(row));
            }
            CallEventKind::LeftQueue { queue, reason } => {
                let call = self
                    .open
                    .entry(id.clone())
                    .or_insert_with(|| OpenCall::new(at));
                let wait = call.end_visit(at).map(|(_, wait)| wait);
                call.last_exit = Some(reason.clone());
                let kind = if reason == "key" { "leave" } else { "overflow" };
                let mut row = queue_row(kind, Some(queue.clone()), Some(call));
                row.reason = Some(reason.clone());
                row.wait_secs = wait;
                rows.push(Row::Queue(row));
            }
            CallEventKind::AnnounceAndHangUp { topic } => {
                if let Some(call) = self.open.get_mut(id) {
                    call.announced = true;
                    if topic.is_some() {
                        call.topic = topic.clone();
                    }
                }
            }
            CallEventKind::Agent {
                agent,
                state,
                reason,
            } => {
                let call = (!id.is_empty()).then(|| self.open.get(id)).flatten();
                let queue = call.and_then(|c| {
                    c.visit
                        .as_ref()
                        .map(|v| v.queue.clone())
                        .or_else(|| c.final_queue.clone())
                });
                let mut row = queue_row("agent_state", queue, call);
                row.agent = Some(agent.clone());
                row.reason = reason.clone();
                row.detail = Some(state.clone());
                rows.push(Row::Queue(row));
            }
            CallEventKind::Ended { reason } => {
                let mut call = self.open.remove(id).unwrap_or_else(|| OpenCall::new(at));
                let abandoned = match call.end_visit(at) {
                    Some((queue, wait)) => {
                        let mut row = queue_row("abandon", Some(queue), Some(&call));
                        row.reason = Some(reason.clone());
                        row.wait_secs = Some(wait);
                        rows.push(Row::Queue(row));
                        true
                    }
                    None => false,
                };
                // The call has left the table: its strings move into the row.
                let outcome = call.outcome(abandoned).to_string();
                let talk_secs = call.connected.map(|c| secs_between(c, at));
                rows.push(Row::Call(CallRow {
                    call_id: id.to_string(),
                    started_at_ms: call.started.timestamp_millis(),
                    answered_at_ms: call.answered.map(|t| t.timestamp_millis()),
                    ended_at_ms: at.timestamp_millis(),
                    transport: call.transport,
                    dialled: call.dialled,
                    caller: call.caller,
                    topic: call.topic,
                    first_queue: call.first_queue,
                    final_queue: call.final_queue,
                    queued_at_ms: call.queued_at.map(|t| t.timestamp_millis()),
                    connected_at_ms: call.connected.map(|t| t.timestamp_millis()),
                    agent: call.agent,
                    outcome,
                    end_reason: reason.clone(),
                    reject_status: call.rejected.map(i32::from),
                    wait_secs: call.waited,
                    talk_secs,
                    rules_version: event.rules_version.to_string(),
                }));
            }
            CallEventKind::Menu { .. }
            | CallEventKind::Play { .. }
            | CallEventKind::Key { .. }
            | CallEventKind::NoInput
            | CallEventKind::Announce { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn ev(id: &str, secs: i64, kind: CallEventKind) -> CallEvent {
        CallEvent {
            call_id: id.into(),
            at: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
            rules_version: "v1".into(),
            kind,
        }
    }

    fn incoming(id: &str, secs: i64) -> CallEvent {
        ev(
            id,
            secs,
            CallEventKind::Incoming {
                transport: "udp".into(),
                dialled: "490".into(),
                caller: Some("+4936411234".into()),
            },
        )
    }

    fn queued(id: &str, secs: i64, queue: &str) -> CallEvent {
        ev(
            id,
            secs,
            CallEventKind::Queued {
                queue: queue.into(),
                topic: Some(queue.into()),
            },
        )
    }

    fn ended(id: &str, secs: i64) -> CallEvent {
        ev(
            id,
            secs,
            CallEventKind::Ended {
                reason: "caller hung up".into(),
            },
        )
    }

    fn run(events: &[CallEvent]) -> (Vec<QueueRow>, Vec<CallRow>) {
        let mut b = Builder::new(Box::new(|c: &str| format!("x{}", c.len())));
        let mut queue = Vec::new();
        let mut calls = Vec::new();
        for e in events {
            for row in b.apply(e) {
                match row {
                    Row::Queue(q) => queue.push(q),
                    Row::Call(c) => calls.push(c),
                }
            }
        }
        assert_eq!(b.open_calls(), 0);
        (queue, calls)
    }

    #[test]
    fn answered_call_has_wait_talk_agent_and_queue_rows() {
        let (q, c) = run(&[
            incoming("c", 0),
            ev("c", 0, CallEventKind::Answered),
            queued("c", 5, "buergerservice"),
            ev(
                "c",
                6,
                CallEventKind::Ring {
                    agent: "a1".into(),
                    queue: "buergerservice".into(),
                },
            ),
            ev("c", 8, CallEventKind::Connected { agent: "a1".into() }),
            ended("c", 20),
        ]);
        let kinds: Vec<&str> = q.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["enter", "ring", "connect"]);
        assert_eq!(q[2].wait_secs, Some(3.0));
        let call = &c[0];
        assert_eq!(call.outcome, "answered_by_agent");
        assert_eq!(call.wait_secs, Some(3.0));
        assert_eq!(call.talk_secs, Some(12.0));
        assert_eq!(call.agent.as_deref(), Some("a1"));
        assert_eq!(call.caller.as_deref(), Some("x11"));
        assert_eq!(call.topic.as_deref(), Some("buergerservice"));
        assert_eq!(call.rules_version, "v1");
    }

    #[test]
    fn hang_up_while_waiting_is_an_abandon_and_overflow_then_abandon_counts_both_visits() {
        let (q, c) = run(&[
            incoming("c", 0),
            queued("c", 1, "fundbuero"),
            ev(
                "c",
                3,
                CallEventKind::LeftQueue {
                    queue: "fundbuero".into(),
                    reason: "no_agents".into(),
                },
            ),
            queued("c", 4, "allgemein"),
            ended("c", 10),
        ]);
        let kinds: Vec<(&str, Option<f64>)> =
            q.iter().map(|r| (r.kind.as_str(), r.wait_secs)).collect();
        assert_eq!(
            kinds,
            [
                ("enter", None),
                ("overflow", Some(2.0)),
                ("enter", None),
                ("abandon", Some(6.0))
            ]
        );
        assert_eq!(c[0].outcome, "abandoned");
        assert_eq!(c[0].first_queue.as_deref(), Some("fundbuero"));
        assert_eq!(c[0].final_queue.as_deref(), Some("allgemein"));
        assert_eq!(c[0].wait_secs, Some(8.0));
    }

    #[test]
    fn outcomes_without_an_agent() {
        let (_, c) = run(&[
            incoming("r", 0),
            ev("r", 0, CallEventKind::Rejected { status: 404 }),
            ended("r", 0),
            incoming("m", 0),
            ev("m", 0, CallEventKind::Answered),
            ended("m", 3),
            incoming("o", 0),
            ev("o", 0, CallEventKind::Answered),
            queued("o", 1, "q"),
            ev(
                "o",
                2,
                CallEventKind::LeftQueue {
                    queue: "q".into(),
                    reason: "full".into(),
                },
            ),
            ev("o", 2, CallEventKind::AnnounceAndHangUp { topic: None }),
            ended("o", 5),
            incoming("a", 0),
            ev("a", 0, CallEventKind::Answered),
            ev(
                "a",
                0,
                CallEventKind::AnnounceAndHangUp {
                    topic: Some("t".into()),
                },
            ),
            ended("a", 4),
            incoming("n", 0),
            ended("n", 1),
        ]);
        let outcomes: Vec<&str> = c.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(
            outcomes,
            [
                "rejected",
                "ended_in_menu",
                "overflowed",
                "announced_and_ended",
                "not_answered"
            ]
        );
        assert_eq!(c[0].reject_status, Some(404));
        assert_eq!(c[3].topic.as_deref(), Some("t"));
    }

    #[test]
    fn the_open_call_table_is_bounded() {
        let mut b = Builder::new(Box::new(|c: &str| c.to_string()));
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for n in 0..(MAX_OPEN_CALLS + 5) {
            let mut e = incoming(&format!("c{n}"), 0);
            e.at = start + Duration::milliseconds(n as i64);
            b.apply(&e);
        }
        assert!(b.open_calls() <= MAX_OPEN_CALLS);
        assert!(b.forgotten > 0);
    }
}
