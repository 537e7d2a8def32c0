//! The call event bus: every step of every call (`CallEvent`) is published here; metrics, call
//! records and the supervisor dashboard subscribe. Publishing never waits: a subscriber that
//! falls behind loses the oldest events and learns how many (tokio's broadcast `Lagged`), so no
//! consumer can slow a call down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

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
    pub call_id: String,
    pub at: DateTime<Utc>,
    /// The routing rules version the call runs on.
    pub rules_version: String,
    #[serde(flatten)]
    pub kind: CallEventKind,
}

pub struct EventBus {
    tx: broadcast::Sender<Arc<CallEvent>>,
    pub published: AtomicU64,
}

/// Events a subscriber may fall behind by before it loses the oldest.
pub const BUS_CAPACITY: usize = 4096;

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        EventBus {
            tx,
            published: AtomicU64::new(0),
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: CallEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        // No subscriber is fine: the event only goes to the log then.
        let _ = self.tx.send(Arc::new(event));
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
