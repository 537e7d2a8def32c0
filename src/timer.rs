//! [`DeadlineTimer`]: one tokio timer for a task's life, for tasks whose next deadline comes
//! from their own state (the call task, the ACD).

use std::pin::Pin;
use std::time::Instant;

use tokio::time::Sleep;

/// One timer, moved only when the task's next deadline changes. A fresh `sleep_until` per loop
/// pass registered and removed a timer entry in the runtime for every message a task took.
///
/// In a `tokio::select!` loop: `timer.set(self.next_deadline())` before the select, and the
/// branch `() = timer.fired(), if timer.is_armed() => …`.
pub struct DeadlineTimer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Default for DeadlineTimer {
    fn default() -> Self {
        DeadlineTimer {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            armed: None,
        }
    }
}

impl DeadlineTimer {
    /// Arms the timer for `deadline` (`None`: disarmed); the runtime's timer moves only when
    /// the deadline differs from the armed one.
    pub fn set(&mut self, deadline: Option<Instant>) {
        if deadline != self.armed {
            if let Some(at) = deadline {
                self.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
            }
            self.armed = deadline;
        }
    }

    pub fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Waits until the armed deadline, then disarms (the next [`set`](Self::set) arms it again,
    /// even for the same deadline). Only poll it while [`is_armed`](Self::is_armed).
    pub async fn fired(&mut self) {
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn fires_at_the_deadline_and_disarms_until_set_again() {
        let mut timer = DeadlineTimer::default();
        assert!(!timer.is_armed());
        let start = Instant::now();
        timer.set(Some(start + Duration::from_millis(10)));
        // A later deadline replaces it.
        timer.set(Some(start + Duration::from_millis(20)));
        assert!(timer.is_armed());
        timer.fired().await;
        assert!(!timer.is_armed());
        assert!(Instant::now() >= start + Duration::from_millis(20));
        // The same deadline again arms it again (it fires at once now).
        timer.set(Some(start + Duration::from_millis(20)));
        assert!(timer.is_armed());
        timer.fired().await;
        timer.set(None);
        assert!(!timer.is_armed());
    }
}
