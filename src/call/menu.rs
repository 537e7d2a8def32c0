//! The voice menu of one call as a pure state machine: it decides what to play and when a key
//! press, a timeout or the end of a prompt settles the caller's choice. Time is an argument;
//! the call task does the playing and the waiting.
//!
//! The caller never hears silence without a reason: after every prompt the menu waits at most
//! `timeout`, and after `max_attempts` invalid or missing answers it settles on the fallback
//! (the general queue in Jena's rules) instead of hanging up.

use std::time::{Duration, Instant};

/// One menu, as the rules define it. `T` is what a key leads to (a topic, a submenu …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuSpec<T> {
    /// Played once, before the first `prompts` (e.g. the greeting); keys barge in here too.
    pub intro: Vec<String>,
    /// The menu itself, played on every attempt.
    pub prompts: Vec<String>,
    pub options: Vec<(char, T)>,
    /// How long we wait for a key after the prompts end.
    pub timeout: Duration,
    /// Attempts before the fallback is taken (at least 1).
    pub max_attempts: u32,
    /// Played before the menu again after an invalid key.
    pub invalid_prompt: Option<String>,
    /// Played before the menu again after no key.
    pub no_input_prompt: Option<String>,
    pub fallback: T,
}

/// What the call must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction<T> {
    /// Play these prompts in order (replacing whatever plays).
    Play(Vec<String>),
    /// Stop the current prompt at once (barge-in).
    StopPlayback,
    /// The menu is settled.
    Done(T, Outcome),
}

/// How the menu was settled (for events and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Chosen(char),
    /// Too many invalid keys.
    InvalidInput,
    /// Too many timeouts without a key.
    NoInput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Playing { attempt: u32 },
    Waiting { attempt: u32, until: Instant },
    Done,
}

pub struct MenuRun<T> {
    spec: MenuSpec<T>,
    state: State,
    invalid: u32,
    silent: u32,
}

impl<T: Clone> MenuRun<T> {
    /// Starts the menu: the intro and the menu prompts.
    pub fn start(spec: MenuSpec<T>) -> (MenuRun<T>, Vec<MenuAction<T>>) {
        let mut first = spec.intro.clone();
        first.extend(spec.prompts.iter().cloned());
        let run = MenuRun {
            spec,
            state: State::Playing { attempt: 1 },
            invalid: 0,
            silent: 0,
        };
        (run, vec![MenuAction::Play(first)])
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// When `on_timeout` must be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until, .. } => Some(until),
            State::Playing { .. } | State::Done => None,
        }
    }

    /// All queued prompts have been played.
    pub fn on_prompts_finished(&mut self, now: Instant) -> Vec<MenuAction<T>> {
        if let State::Playing { attempt } = self.state {
            self.state = State::Waiting {
                attempt,
                until: now + self.spec.timeout,
            };
        }
        Vec::new()
    }

    /// A key from any DTMF source.
    pub fn on_digit(&mut self, digit: char) -> Vec<MenuAction<T>> {
        let attempt = match self.state {
            State::Playing { attempt } | State::Waiting { attempt, .. } => attempt,
            State::Done => return Vec::new(),
        };
        let barge_in = matches!(self.state, State::Playing { .. });
        let mut actions = Vec::new();
        if barge_in {
            actions.push(MenuAction::StopPlayback);
        }
        if let Some((_, target)) = self.spec.options.iter().find(|(key, _)| *key == digit) {
            self.state = State::Done;
            actions.push(MenuAction::Done(target.clone(), Outcome::Chosen(digit)));
            return actions;
        }
        self.invalid += 1;
        actions.extend(self.retry(attempt, self.spec.invalid_prompt.clone()));
        actions
    }

    /// Call at or after `next_deadline`.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<MenuAction<T>> {
        match self.state {
            State::Waiting { attempt, until } if now >= until => {
                self.silent += 1;
                self.retry(attempt, self.spec.no_input_prompt.clone())
            }
            _ => Vec::new(),
        }
    }

    fn retry(&mut self, attempt: u32, notice: Option<String>) -> Vec<MenuAction<T>> {
        if attempt >= self.spec.max_attempts.max(1) {
            self.state = State::Done;
            // The outcome names what happened most: invalid keys or silence.
            let outcome = if self.invalid >= self.silent {
                Outcome::InvalidInput
            } else {
                Outcome::NoInput
            };
            return vec![MenuAction::Done(self.spec.fallback.clone(), outcome)];
        }
        self.state = State::Playing {
            attempt: attempt + 1,
        };
        let mut prompts: Vec<String> = notice.into_iter().collect();
        prompts.extend(self.spec.prompts.iter().cloned());
        vec![MenuAction::Play(prompts)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MenuSpec<&'static str> {
        MenuSpec {
            intro: vec!["greeting".into()],
            prompts: vec!["menu".into()],
            options: vec![
                ('1', "buergerservice"),
                ('4', "fundbuero"),
                ('0', "general"),
            ],
            timeout: Duration::from_secs(5),
            max_attempts: 3,
            invalid_prompt: Some("invalid".into()),
            no_input_prompt: Some("no_input".into()),
            fallback: "general",
        }
    }

    fn play(names: &[&str]) -> MenuAction<&'static str> {
        MenuAction::Play(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_key_during_the_greeting_barges_in_and_chooses() {
        let (mut menu, start) = MenuRun::start(spec());
        assert_eq!(start, vec![play(&["greeting", "menu"])]);
        assert_eq!(
            menu.on_digit('4'),
            vec![
                MenuAction::StopPlayback,
                MenuAction::Done("fundbuero", Outcome::Chosen('4'))
            ]
        );
        assert!(menu.is_done());
        assert!(
            menu.on_digit('1').is_empty(),
            "keys after the decision are ignored"
        );
    }

    #[test]
    fn invalid_keys_retry_then_fall_back() {
        let t0 = Instant::now();
        let (mut menu, _) = MenuRun::start(spec());
        menu.on_prompts_finished(t0);
        assert_eq!(menu.on_digit('7'), vec![play(&["invalid", "menu"])]);
        assert_eq!(
            menu.on_digit('8'),
            vec![MenuAction::StopPlayback, play(&["invalid", "menu"])]
        );
        menu.on_prompts_finished(t0);
        assert_eq!(
            menu.on_digit('9'),
            vec![MenuAction::Done("general", Outcome::InvalidInput)]
        );
    }

    #[test]
    fn silence_retries_after_the_timeout_then_falls_back() {
        let t0 = Instant::now();
        let (mut menu, _) = MenuRun::start(spec());
        assert_eq!(
            menu.next_deadline(),
            None,
            "no timeout while a prompt plays"
        );
        menu.on_prompts_finished(t0);
        let deadline = t0 + Duration::from_secs(5);
        assert_eq!(menu.next_deadline(), Some(deadline));
        assert!(
            menu.on_timeout(deadline - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(menu.on_timeout(deadline), vec![play(&["no_input", "menu"])]);
        for attempt in 2..=3 {
            let t = t0 + Duration::from_secs(10 * attempt);
            menu.on_prompts_finished(t);
            let actions = menu.on_timeout(t + Duration::from_secs(5));
            if attempt < 3 {
                assert_eq!(actions, vec![play(&["no_input", "menu"])]);
            } else {
                assert_eq!(actions, vec![MenuAction::Done("general", Outcome::NoInput)]);
            }
        }
        assert!(menu.is_done());
        assert_eq!(menu.next_deadline(), None);
    }

    #[test]
    fn a_valid_key_after_a_wrong_one_still_counts() {
        let t0 = Instant::now();
        let (mut menu, _) = MenuRun::start(spec());
        menu.on_prompts_finished(t0);
        menu.on_digit('5');
        menu.on_prompts_finished(t0);
        assert_eq!(
            menu.on_digit('1'),
            vec![MenuAction::Done("buergerservice", Outcome::Chosen('1'))]
        );
    }
}
