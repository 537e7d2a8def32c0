//! Graceful shutdown as one small type every task holds (after mini-redis's `Shutdown`).
//!
//! The phases only move forward:
//! `Running` → `Draining` (SIGTERM: new calls get 503, running calls go on) → `Hangup` (the
//! drain time is over: every call sends BYE) → `Closed` (calls are gone: transports stop).

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Hangup,
    Closed,
}

/// Moves the phase forward; held by the server.
pub struct ShutdownController {
    tx: watch::Sender<Phase>,
}

/// Watches the phase; cheap to clone into every task.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Phase>,
}

impl ShutdownController {
    pub fn new() -> (ShutdownController, Shutdown) {
        let (tx, rx) = watch::channel(Phase::Running);
        (ShutdownController { tx }, Shutdown { rx })
    }

    /// Advances to `phase` unless the shutdown is already further along.
    pub fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|current| {
            if phase > *current {
                *current = phase;
                true
            } else {
                false
            }
        });
    }

    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }
}

impl Shutdown {
    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }

    /// True while new calls are welcome.
    pub fn accepting_calls(&self) -> bool {
        self.phase() == Phase::Running
    }

    /// Resolves once the phase is `phase` or later (at once if it already is).
    pub async fn reached(&mut self, phase: Phase) {
        // An error means the controller is gone: treat as fully closed.
        let _ = self.rx.wait_for(|p| *p >= phase).await;
    }

    /// Calls must hang up now.
    pub async fn hangup(&mut self) {
        self.reached(Phase::Hangup).await
    }

    /// Transports stop now.
    pub async fn stopped(&mut self) {
        self.reached(Phase::Closed).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward() {
        let (controller, mut shutdown) = ShutdownController::new();
        assert!(shutdown.accepting_calls());
        controller.advance(Phase::Hangup);
        controller.advance(Phase::Draining);
        assert_eq!(shutdown.phase(), Phase::Hangup);
        shutdown.hangup().await; // already reached: returns at once
        assert!(!shutdown.accepting_calls());
    }
}
