//! Evaluation: `(rules, call facts, now) → Decision`, pure. No I/O and no clock: the caller
//! passes the time, so tests and `rules explain` can ask about any instant.
//!
//! How a call is decided:
//! 1. The dialled number picks its `[number.<id>]`; an unknown number is not ours (404).
//! 2. Routes are checked top to bottom; the first whose `when` holds decides (`then`).
//! 3. A `menu` action consumes the caller's keys so far: a key's action may set a topic (the
//!    routes are checked again, from the top, with that topic), open a submenu, or end the
//!    decision; without more keys the decision is "play this menu and wait". A route whose menu
//!    the caller already answered is passed over.
//! 4. A `queue` action checks the queue's state: no agent logged in → `on_no_agents`, full →
//!    `on_full` (these may lead to another queue, at most [`MAX_HOPS`] times).
//!
//! Every step is recorded in [`Decision::trail`] in words an admin understands.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::RuleSet;
use super::calendar::{ClosedReason, Status};
use super::decision::{CallFacts, Decision, MenuInput, Outcome, Step, StepKind};
use super::model::{Action, ActionKind, Conditions, Menu, Route};

/// Routes re-checked (topic changes) or queue overflows followed before giving up on a loop.
pub const MAX_HOPS: usize = 16;

/// The evaluation of one call: facts, time, and what has been found so far.
struct Evaluation<'a> {
    rules: &'a RuleSet,
    facts: &'a CallFacts,
    now: DateTime<Utc>,
    number: String,
    topic: Option<String>,
    answered: BTreeSet<String>,
    cursor: usize,
    announce: Vec<String>,
    trail: Vec<Step>,
    calendars: Vec<(String, Status)>,
    /// Build the trail (texts, calendar change times); off on the call path, where only the
    /// outcome matters.
    explain: bool,
}

/// Where an action leaves the evaluation.
enum Next {
    /// The topic changed: check the routes again.
    Reroute,
    Done(Outcome),
}

impl RuleSet {
    /// Decides where the call goes at `now`. Pure: the same rules, facts and time always give
    /// the same decision.
    pub fn evaluate(&self, facts: &CallFacts, now: DateTime<Utc>) -> Decision {
        self.evaluate_with(facts, now, true)
    }

    /// As [`RuleSet::evaluate`], without the explanation: the same outcome and topic, an empty
    /// trail, and no search for the calendars' next opening or closing time (calls use this).
    pub fn decide(&self, facts: &CallFacts, now: DateTime<Utc>) -> Decision {
        self.evaluate_with(facts, now, false)
    }

    fn evaluate_with(&self, facts: &CallFacts, now: DateTime<Utc>, explain: bool) -> Decision {
        let number = self.number_for(&facts.dialled).map(|n| n.id.clone());
        let mut evaluation = Evaluation {
            rules: self,
            facts,
            now,
            number: number.clone().unwrap_or_default(),
            topic: None,
            answered: BTreeSet::new(),
            cursor: 0,
            announce: Vec::new(),
            trail: Vec::new(),
            calendars: Vec::new(),
            explain,
        };
        let outcome = match &number {
            None => {
                evaluation.step(|| {
                    (
                        StepKind::Number {
                            dialled: facts.dialled.clone(),
                            number: None,
                        },
                        format!(
                            "Dialled {} is not one of the hotline's numbers: the call is refused.",
                            facts.dialled
                        ),
                    )
                });
                Outcome::NotOurNumber
            }
            Some(id) => {
                let name = &self.numbers[id].name;
                evaluation.step(|| {
                    (
                        StepKind::Number {
                            dialled: facts.dialled.clone(),
                            number: Some(id.clone()),
                        },
                        format!("Dialled {} is number `{id}` ({name}).", facts.dialled),
                    )
                });
                evaluation.run()
            }
        };
        Decision {
            outcome,
            topic: evaluation.topic,
            rules_version: self.version.hash.clone(),
            trail: evaluation.trail,
        }
    }
}

impl RuleSet {
    /// Where the call goes by `action` (a queue's overflow or leave action), for a caller whose
    /// topic is `topic` and whose menu input is all used up. A topic action checks the routes
    /// again as in [`RuleSet::evaluate`].
    pub fn evaluate_action(
        &self,
        action: &Action,
        facts: &CallFacts,
        topic: Option<String>,
        now: DateTime<Utc>,
    ) -> Decision {
        let number = self
            .number_for(&facts.dialled)
            .map(|n| n.id.clone())
            .unwrap_or_default();
        let mut evaluation = Evaluation {
            rules: self,
            facts,
            now,
            number,
            topic,
            answered: BTreeSet::new(),
            cursor: facts.inputs.len(),
            announce: Vec::new(),
            trail: Vec::new(),
            calendars: Vec::new(),
            // The call path: no explanation needed.
            explain: false,
        };
        let outcome = match evaluation.act(action, 1) {
            Next::Done(outcome) => outcome,
            Next::Reroute => evaluation.run(),
        };
        Decision {
            outcome,
            topic: evaluation.topic,
            rules_version: self.version.hash.clone(),
            trail: evaluation.trail,
        }
    }
}

impl<'a> Evaluation<'a> {
    /// Adds a step to the explanation; `make` runs only when explaining (calls take the
    /// decision alone, and formatting every step's text was most of a call's rule evaluation).
    fn step(&mut self, make: impl FnOnce() -> (StepKind, String)) {
        if !self.explain {
            return;
        }
        let (kind, text) = make();
        self.trail.push(Step { kind, text });
    }

    fn run(&mut self) -> Outcome {
        for _ in 0..MAX_HOPS {
            let Some(route) = self.first_route() else {
                self.step(|| {
                    (
                        StepKind::NoRoute,
                        "No route matched: the call ends (add a catch-all route at the end of \
                     routes.toml)."
                            .into(),
                    )
                });
                return Outcome::NoRoute {
                    announce: std::mem::take(&mut self.announce),
                };
            };
            match self.act(&route.then, 0) {
                Next::Reroute => continue,
                Next::Done(outcome) => return outcome,
            }
        }
        self.step(|| {
            (
                StepKind::Loop,
                format!("Gave up after {MAX_HOPS} steps: the rules send the call round in a loop."),
            )
        });
        Outcome::NoRoute {
            announce: std::mem::take(&mut self.announce),
        }
    }

    fn first_route(&mut self) -> Option<&'a Route> {
        let rules = self.rules;
        for route in &rules.routes {
            if let ActionKind::Menu(menu) = &route.then.kind
                && self.answered.contains(menu)
            {
                self.step(|| {
                    (
                        StepKind::RouteSkipped {
                            route: route.id.clone(),
                            defined_at: route.defined_at.clone(),
                        },
                        format!(
                            "Route `{}` ({}) passed: the caller already answered menu `{menu}`.",
                            route.id, route.defined_at
                        ),
                    )
                });
                continue;
            }
            match self.check(&route.when) {
                Ok(because) => {
                    self.step(|| {
                        let then = route.then.to_string();
                        let reasons = if because.is_empty() {
                            "it applies to every call".to_string()
                        } else {
                            because.join("; ")
                        };
                        (
                            StepKind::RouteTaken {
                                route: route.id.clone(),
                                defined_at: route.defined_at.clone(),
                                because,
                            },
                            format!(
                                "Route `{}` ({}) TAKEN: {reasons} → {then}.",
                                route.id, route.defined_at
                            ),
                        )
                    });
                    return Some(route);
                }
                Err(why_not) => self.step(|| {
                    (
                        StepKind::RouteSkipped {
                            route: route.id.clone(),
                            defined_at: route.defined_at.clone(),
                        },
                        format!(
                            "Route `{}` ({}) skipped: {why_not}.",
                            route.id, route.defined_at
                        ),
                    )
                }),
            }
        }
        None
    }

    /// `text()` when explaining; an empty string when a call only needs the decision.
    fn why(&self, text: impl FnOnce() -> String) -> String {
        if self.explain { text() } else { String::new() }
    }

    /// `Ok(what held)` or `Err(the first condition that did not)` (texts only when explaining).
    fn check(&mut self, when: &Conditions) -> Result<Vec<String>, String> {
        let mut held = Vec::new();
        if let Some(numbers) = &when.number {
            if numbers.contains(&self.number) {
                held.push(self.why(|| format!("the call came in on `{}`", self.number)));
            } else {
                return Err(self.why(|| {
                    format!(
                        "the call came in on `{}`, the route is for {}",
                        self.number,
                        quoted(numbers)
                    )
                }));
            }
        }
        if let Some(patterns) = &when.caller {
            let caller = self.facts.caller.as_deref();
            let shown = caller.unwrap_or("anonymous");
            match patterns.iter().find(|p| p.matches(caller)) {
                Some(p) => held.push(self.why(|| format!("caller {shown} matches {}", p.0))),
                None => {
                    return Err(self.why(|| {
                        let list: Vec<&str> = patterns.iter().map(|p| p.0.as_str()).collect();
                        format!("caller {shown} matches none of {}", list.join(", "))
                    }));
                }
            }
        }
        if let Some(topics) = &when.topic {
            match &self.topic {
                Some(topic) if topics.contains(topic) => {
                    held.push(self.why(|| format!("the topic is `{topic}`")));
                }
                Some(topic) => {
                    return Err(self.why(|| {
                        format!(
                            "the topic is `{topic}`, the route is for {}",
                            quoted(topics)
                        )
                    }));
                }
                None => return Err("no topic chosen yet".into()),
            }
        }
        if let Some(id) = &when.open {
            let status = self.status(id);
            let text = self.why(|| self.describe(id, &status));
            match status {
                Status::Open { .. } => held.push(text),
                Status::Closed { .. } => return Err(text),
            }
        }
        if let Some(id) = &when.closed {
            let status = self.status(id);
            let text = self.why(|| self.describe(id, &status));
            match status {
                Status::Closed { .. } => held.push(text),
                Status::Open { .. } => return Err(text),
            }
        }
        if let Some(id) = &when.holiday {
            let status = self.status(id);
            let text = self.why(|| self.describe(id, &status));
            match status {
                Status::Closed {
                    reason: ClosedReason::PublicHoliday(_),
                    ..
                } => held.push(text),
                _ => return Err(self.why(|| format!("not a public holiday: {text}"))),
            }
        }
        if let Some(id) = &when.closure {
            let status = self.status(id);
            let text = self.why(|| self.describe(id, &status));
            match status {
                Status::Closed {
                    reason: ClosedReason::Closure(_),
                    ..
                } => held.push(text),
                _ => return Err(self.why(|| format!("not a closure day: {text}"))),
            }
        }
        if let Some(queue) = &when.no_agents {
            match self.facts.queues.get(queue) {
                Some(state) if state.logged_in_agents == 0 => {
                    held.push(self.why(|| format!("queue `{queue}` has no agent logged in")));
                }
                Some(state) => {
                    return Err(self.why(|| {
                        format!(
                            "queue `{queue}` has {} agent(s) logged in",
                            state.logged_in_agents
                        )
                    }));
                }
                None => {
                    return Err(self
                        .why(|| format!("no live state for queue `{queue}` (taken as staffed)")));
                }
            }
        }
        if let Some(id) = &when.queue_full {
            let max = self.rules.queues.get(id).and_then(|q| q.max_length);
            let waiting = self.facts.queues.get(id).map_or(0, |s| s.waiting_callers);
            match max {
                Some(max) if waiting >= max => {
                    held.push(
                        self.why(|| format!("queue `{id}` is full ({waiting} of {max} waiting)")),
                    );
                }
                Some(max) => {
                    return Err(self
                        .why(|| format!("queue `{id}` is not full ({waiting} of {max} waiting)")));
                }
                None => {
                    return Err(
                        self.why(|| format!("queue `{id}` has no max_length, so it is never full"))
                    );
                }
            }
        }
        if let Some(wait) = &when.wait_above {
            let estimate = self
                .facts
                .queues
                .get(&wait.queue)
                .and_then(|s| s.estimated_wait_secs);
            match estimate {
                Some(secs) if secs > wait.secs => held.push(self.why(|| {
                    format!(
                        "the estimated wait in `{}` is {secs} s, above {} s",
                        wait.queue, wait.secs
                    )
                })),
                Some(secs) => {
                    return Err(self.why(|| {
                        format!(
                            "the estimated wait in `{}` is {secs} s, not above {} s",
                            wait.queue, wait.secs
                        )
                    }));
                }
                None => {
                    return Err(self.why(|| format!("no wait estimate for queue `{}`", wait.queue)));
                }
            }
        }
        Ok(held)
    }

    fn status(&mut self, id: &str) -> Status {
        if let Some((_, status)) = self.calendars.iter().find(|(c, _)| c == id) {
            return status.clone();
        }
        let calendar = &self.rules.calendars[id].calendar;
        let status = if self.explain {
            calendar.status(self.now)
        } else {
            calendar.status_without_change(self.now)
        };
        self.calendars.push((id.to_string(), status.clone()));
        status
    }

    fn describe(&self, id: &str, status: &Status) -> String {
        if !self.explain {
            return String::new();
        }
        let tz = self.rules.calendars[id].timezone;
        match status {
            Status::Open { closes_at } => {
                format!("calendar `{id}` is open until {}", local(*closes_at, tz))
            }
            Status::Closed { reason, opens_at } => {
                let why = match reason {
                    ClosedReason::OutsideHours => format!(
                        "outside its opening hours ({})",
                        self.rules.calendars[id].hours_summary()
                    ),
                    ClosedReason::PublicHoliday(name) => format!("for the public holiday {name}"),
                    ClosedReason::Closure(name) => format!("for the closure day {name}"),
                };
                let until =
                    opens_at.map_or(String::new(), |t| format!(", opens again {}", local(t, tz)));
                format!("calendar `{id}` is closed {why}{until}")
            }
        }
    }

    /// Carries out an action; `hops` counts queue overflows followed so far.
    fn act(&mut self, action: &'a Action, hops: usize) -> Next {
        self.announce.extend(action.announce.iter().cloned());
        let announce = |e: &mut Self| std::mem::take(&mut e.announce);
        match &action.kind {
            ActionKind::Menu(menu) => self.menu(&self.rules.menus[menu]),
            ActionKind::Topic(topic) => {
                self.topic = Some(topic.clone());
                let name = &self.rules.topics[topic].name;
                self.step(|| {
                    (
                        StepKind::Topic {
                            topic: topic.clone(),
                        },
                        format!(
                            "The topic is now `{topic}` ({name}); the routes are checked again."
                        ),
                    )
                });
                Next::Reroute
            }
            ActionKind::Queue { queue, priority } => self.queue(queue, *priority, hops),
            ActionKind::Hangup => Next::Done(Outcome::Hangup {
                announce: announce(self),
            }),
            ActionKind::Forward(target) => Next::Done(Outcome::Forward {
                target: target.clone(),
                announce: announce(self),
            }),
            ActionKind::Callback(queue) => Next::Done(Outcome::Callback {
                queue: queue.clone(),
                announce: announce(self),
            }),
            ActionKind::Voicemail(mailbox) => Next::Done(Outcome::Voicemail {
                mailbox: mailbox.clone(),
                announce: announce(self),
            }),
        }
    }

    fn queue(&mut self, id: &'a str, priority: u8, hops: usize) -> Next {
        let queue = &self.rules.queues[id];
        let state = self.facts.queues.get(id).copied();
        let overflow = match state {
            Some(s) if s.logged_in_agents == 0 => queue
                .on_no_agents
                .as_ref()
                .map(|a| (a, "no agent is logged in".to_string())),
            _ => None,
        }
        .or_else(|| {
            let waiting = state.map_or(0, |s| s.waiting_callers);
            match (queue.max_length, &queue.on_full) {
                (Some(max), Some(action)) if waiting >= max => {
                    Some((action, format!("it is full ({waiting} of {max} waiting)")))
                }
                _ => None,
            }
        });
        match overflow {
            Some((action, reason)) if hops < MAX_HOPS => {
                self.step(|| {
                    (
                        StepKind::QueueOverflow {
                            queue: id.to_string(),
                            reason: reason.clone(),
                        },
                        format!("Queue `{id}` ({}): {reason} → {action}.", queue.name),
                    )
                });
                self.act(action, hops + 1)
            }
            _ => Next::Done(Outcome::Queue {
                queue: id.to_string(),
                priority,
                announce: std::mem::take(&mut self.announce),
            }),
        }
    }

    /// Walks `menu` with the caller's remaining input.
    fn menu(&mut self, menu: &'a Menu) -> Next {
        let mut menu = menu;
        let mut failures = 0;
        let mut last_failure: Option<MenuInput> = None;
        loop {
            let Some(input) = self.facts.inputs.get(self.cursor).copied() else {
                let mut prompts = std::mem::take(&mut self.announce);
                match last_failure {
                    None => prompts.extend(menu.greeting.iter().cloned()),
                    Some(MenuInput::Key(_)) => prompts.extend(menu.invalid_prompt.iter().cloned()),
                    Some(MenuInput::NoInput) => {
                        prompts.extend(menu.no_input_prompt.iter().cloned());
                    }
                }
                prompts.extend(menu.prompts.iter().cloned());
                self.step(|| {
                    (
                        StepKind::MenuWaiting {
                            menu: menu.id.clone(),
                        },
                        format!(
                            "Menu `{}` ({}): waiting for a key (try {} of {}, {} s timeout).",
                            menu.id,
                            menu.name,
                            failures + 1,
                            menu.attempts,
                            menu.timeout_secs
                        ),
                    )
                });
                return Next::Done(Outcome::Menu {
                    menu: menu.id.clone(),
                    prompts,
                    timeout_secs: menu.timeout_secs,
                    attempt: failures + 1,
                });
            };
            self.cursor += 1;
            let chosen = match input {
                MenuInput::Key(key) => menu.keys.get(&key).map(|action| (key, action)),
                MenuInput::NoInput => None,
            };
            if let Some((key, action)) = chosen {
                self.answered.insert(menu.id.clone());
                self.step(|| {
                    (
                        StepKind::MenuKey {
                            menu: menu.id.clone(),
                            key,
                        },
                        format!("Menu `{}`: the caller pressed {key} → {action}.", menu.id),
                    )
                });
                if let ActionKind::Menu(sub) = &action.kind {
                    self.announce.extend(action.announce.iter().cloned());
                    menu = &self.rules.menus[sub];
                    failures = 0;
                    last_failure = None;
                    continue;
                }
                return self.act(action, 0);
            }
            failures += 1;
            last_failure = Some(input);
            match input {
                MenuInput::Key(key) => self.step(|| {
                    (
                        StepKind::MenuInvalidKey {
                            menu: menu.id.clone(),
                            key,
                            failures,
                        },
                        format!(
                            "Menu `{}`: key {key} is not an option (failed try {failures} of {}).",
                            menu.id, menu.attempts
                        ),
                    )
                }),
                MenuInput::NoInput => self.step(|| {
                    (
                        StepKind::MenuNoInput {
                            menu: menu.id.clone(),
                            failures,
                        },
                        format!(
                            "Menu `{}`: no key within {} s (failed try {failures} of {}).",
                            menu.id, menu.timeout_secs, menu.attempts
                        ),
                    )
                }),
            }
            if failures >= menu.attempts {
                self.answered.insert(menu.id.clone());
                self.step(|| {
                    (
                        StepKind::MenuFailed {
                            menu: menu.id.clone(),
                        },
                        format!(
                            "Menu `{}`: no valid choice after {} tries → {}.",
                            menu.id, menu.attempts, menu.on_failure
                        ),
                    )
                });
                if let ActionKind::Menu(sub) = &menu.on_failure.kind {
                    self.announce
                        .extend(menu.on_failure.announce.iter().cloned());
                    menu = &self.rules.menus[sub];
                    failures = 0;
                    last_failure = None;
                    continue;
                }
                return self.act(&menu.on_failure, 0);
            }
        }
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// "Tue 31 Mar 2026 08:30" in the calendar's zone.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%a %d %b %Y %H:%M").to_string()
}

#[cfg(test)]
mod tests;
