//! Prompt-and-collect for one menu step, as a pure state machine: the rules decide *what* the
//! menu plays and what a key means (`rules::RuleSet::evaluate` with the keys so far); this
//! decides *when* the caller's answer is complete. Time is an argument; the call task plays
//! and waits.
//!
//! A key stops the prompt at once (barge-in). After the prompts end, the caller has `timeout`
//! to press a key; then the step ends with "no input" and the rules decide again (retry prompt
//! or the fallback route) — so the caller never waits in silence without a reason.

use std::time::{Duration, Instant};

/// How one menu step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Key(char),
    NoInput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Playing,
    Waiting { until: Instant },
    Done,
}

#[derive(Debug, Clone)]
pub struct Collect {
    timeout: Duration,
    state: State,
}

/// What the call must do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyResult {
    /// The prompt was still playing: stop it now.
    pub barge_in: bool,
    pub answer: Answer,
}

impl Collect {
    /// A step whose prompts have just started playing.
    pub fn start(timeout: Duration) -> Collect {
        Collect {
            timeout,
            state: State::Playing,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// When `on_timeout` must be called (None while prompts play).
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            State::Playing | State::Done => None,
        }
    }

    pub fn on_prompts_finished(&mut self, now: Instant) {
        if self.state == State::Playing {
            self.state = State::Waiting {
                until: now + self.timeout,
            };
        }
    }

    /// A key from any DTMF source; None once the step is over.
    pub fn on_key(&mut self, key: char) -> Option<KeyResult> {
        let barge_in = match self.state {
            State::Playing => true,
            State::Waiting { .. } => false,
            State::Done => return None,
        };
        self.state = State::Done;
        Some(KeyResult {
            barge_in,
            answer: Answer::Key(key),
        })
    }

    /// Call at or after `next_deadline`.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Answer> {
        match self.state {
            State::Waiting { until } if now >= until => {
                self.state = State::Done;
                Some(Answer::NoInput)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_while_playing_barges_in() {
        let mut step = Collect::start(Duration::from_secs(5));
        assert_eq!(
            step.next_deadline(),
            None,
            "no timeout while the prompt plays"
        );
        assert_eq!(
            step.on_key('4'),
            Some(KeyResult {
                barge_in: true,
                answer: Answer::Key('4')
            })
        );
        assert!(step.is_done());
        assert_eq!(step.on_key('1'), None, "one answer per step");
    }

    #[test]
    fn silence_after_the_prompt_ends_the_step_at_the_timeout() {
        let t0 = Instant::now();
        let mut step = Collect::start(Duration::from_secs(5));
        step.on_prompts_finished(t0);
        let deadline = t0 + Duration::from_secs(5);
        assert_eq!(step.next_deadline(), Some(deadline));
        assert_eq!(step.on_timeout(deadline - Duration::from_millis(1)), None);
        assert_eq!(step.on_timeout(deadline), Some(Answer::NoInput));
        assert_eq!(step.next_deadline(), None);
        assert_eq!(step.on_timeout(deadline), None);
    }

    #[test]
    fn a_key_while_waiting_is_no_barge_in() {
        let t0 = Instant::now();
        let mut step = Collect::start(Duration::from_secs(5));
        step.on_prompts_finished(t0);
        assert_eq!(
            step.on_key('0'),
            Some(KeyResult {
                barge_in: false,
                answer: Answer::Key('0')
            })
        );
    }
}
