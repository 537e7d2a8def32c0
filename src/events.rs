//! The call event bus: every step of every call (`CallEvent`) is published here; metrics, call
//! records and the supervisor dashboard subscribe. Publishing never waits: a subscriber that
//! falls behind loses the oldest events and learns how many (tokio's broadcast `Lagged`), so no
//! consumer can slow a call down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

use crate::logging::Throttle;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEventKind {
    Incoming {
        transport: String,
        dialled: String,
        /// The caller's number as received (None: withheld). Never serialised: the event
        /// stream is for supervisors; call records apply the privacy settings themselves.
        #[serde(skip_serializing)]
        caller: Option<String>,
    },
    Answered,
    Rejected {
        status: u16,
    },
    Menu {
        menu: String,
        attempt: u32,
    },
    Play {
        prompts: Vec<String>,
    },
    Key {
        key: char,
        source: String,
        barge_in: bool,
    },
    NoInput,
    Queued {
        queue: String,
        topic: Option<String>,
    },
    /// The ACD rings an agent for this caller.
    Ring {
        agent: String,
        queue: String,
    },
    /// An agent's phone stopped ringing without connecting: `reason` is `busy`, `declined`,
    /// `no_answer` (ring timeout or no response), `unreachable`, or `withdrawn` (the caller
    /// left, another agent answered, the agent logged out).
    RingEnded {
        agent: String,
        reason: String,
    },
    /// The caller talks with the agent now.
    Connected {
        agent: String,
    },
    /// The caller heard its queue position.
    Announce {
        position: u32,
    },
    /// The caller left the queue: `reason` is full, max_wait, no_agents or key.
    LeftQueue {
        queue: String,
        reason: String,
    },
    AnnounceAndHangUp {
        topic: Option<String>,
    },
    Ended {
        reason: String,
    },
    /// An agent changed state (`call_id` is the call it rings for or talks with, else empty).
    Agent {
        agent: String,
        state: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct CallEvent {
    /// Shared, not copied: a call's ~ten events (and the ACD's agent events for it) point to
    /// one string, which the call made once.
    pub call_id: Arc<str>,
    pub at: DateTime<Utc>,
    /// The routing rules version the call runs on (shared the same way).
    pub rules_version: Arc<str>,
    #[serde(flatten)]
    pub kind: CallEventKind,
}

pub struct EventBus {
    tx: broadcast::Sender<Arc<CallEvent>>,
    pub published: AtomicU64,
    /// The call-records writer's channel (see [`EventBus::attach_sink`]).
    sink: OnceLock<Sink>,
    /// Events the call-records writer never got because its channel was full
    /// (`zentrale_records_lost_total`). Exact: every event the sink wanted and could not take.
    pub records_lost: Arc<AtomicU64>,
    /// At most one "records lost" warning per [`LOSS_WARNING_EVERY_SECS`].
    loss_warning: Throttle,
}

/// A bounded, lossless-until-full channel to one consumer that must see every event (the call
/// records writer), unlike the broadcast subscribers that lose the oldest when they lag.
struct Sink {
    tx: mpsc::Sender<Arc<CallEvent>>,
    wants: fn(&CallEventKind) -> bool,
}

/// At most one "records lost" warning per this many seconds (each names the total so far).
const LOSS_WARNING_EVERY_SECS: u64 = 10;

/// Events a subscriber may fall behind by before it loses the oldest.
pub const BUS_CAPACITY: usize = 4096;

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        EventBus {
            tx,
            published: AtomicU64::new(0),
            sink: OnceLock::new(),
            records_lost: Arc::new(AtomicU64::new(0)),
            loss_warning: Throttle::new(LOSS_WARNING_EVERY_SECS),
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: CallEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(event);
        if let Some(sink) = self.sink.get()
            && (sink.wants)(&event.kind)
            && sink.tx.try_send(event.clone()).is_err()
        {
            self.record_lost();
        }
        // No subscriber is fine: the event only goes to the log then.
        let _ = self.tx.send(event);
    }

    /// Feeds every event for which `wants` is true into `tx` as well, without waiting: when the
    /// channel is full (or closed) the event is counted in [`EventBus::records_lost`] and a
    /// warning is logged (at most every 10 s). Only one sink can be attached; a second is
    /// refused (returns false).
    pub fn attach_sink(
        &self,
        tx: mpsc::Sender<Arc<CallEvent>>,
        wants: fn(&CallEventKind) -> bool,
    ) -> bool {
        self.sink.set(Sink { tx, wants }).is_ok()
    }

    fn record_lost(&self) {
        let total = self.records_lost.fetch_add(1, Ordering::Relaxed) + 1;
        if self.loss_warning.allow().is_some() {
            warn!(
                lost_total = total,
                "call records writer is behind: its channel is full, events are lost for the \
                 call records (records.channel_capacity; is the database slow?)"
            );
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CallEvent>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u16) -> CallEvent {
        CallEvent {
            call_id: "c1".into(),
            at: Utc::now(),
            rules_version: "v".into(),
            kind: CallEventKind::Rejected { status: n },
        }
    }

    #[test]
    fn a_full_sink_counts_every_lost_event_and_skips_unwanted_ones() {
        let bus = EventBus::default();
        let (tx, mut rx) = mpsc::channel(2);
        assert!(bus.attach_sink(tx, |k| !matches!(k, CallEventKind::Answered)));
        let (again, _) = mpsc::channel(1);
        assert!(!bus.attach_sink(again, |_| true), "one sink only");
        for n in 0..5 {
            bus.publish(event(n));
        }
        bus.publish(CallEvent {
            kind: CallEventKind::Answered,
            ..event(0)
        });
        assert_eq!(bus.records_lost.load(Ordering::Relaxed), 3);
        assert_eq!(
            rx.try_recv().expect("first").kind,
            CallEventKind::Rejected { status: 0 }
        );
        assert_eq!(
            rx.try_recv().expect("second").kind,
            CallEventKind::Rejected { status: 1 }
        );
        assert!(rx.try_recv().is_err(), "the unwanted event never went in");
    }

    #[test]
    fn subscribers_get_events_in_order_and_a_slow_one_loses_only_the_oldest() {
        let bus = EventBus::default();
        bus.publish(event(1)); // nobody listens: not an error
        let mut rx = bus.subscribe();
        for n in 0..(BUS_CAPACITY as u16 + 10) {
            bus.publish(event(n));
        }
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(lost)) => assert_eq!(lost, 10),
            other => panic!("{other:?}"),
        }
        let next = rx.try_recv().expect("an event");
        assert_eq!(next.kind, CallEventKind::Rejected { status: 10 });
        let json = serde_json::to_value(&*next).expect("json");
        assert_eq!(json["event"], "rejected");
        assert_eq!(json["call_id"], "c1");
    }
}
