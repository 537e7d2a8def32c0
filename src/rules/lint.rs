//! Warnings about rules that load but are probably not what the admin meant: routes that can
//! never be taken, topics no menu offers, queues no agent can serve, definitions nobody uses,
//! overflow loops.

use std::collections::BTreeSet;

use super::RuleSet;
use super::diagnostic::{Diagnostic, Location};
use super::model::{Action, ActionKind, Conditions, Route};

pub fn lint(rules: &RuleSet, out: &mut Vec<Diagnostic>) {
    shadowed_routes(rules, out);
    contradictions(rules, out);
    usage(rules, out);
    staffing(rules, out);
    overflow_loops(rules, out);
    if let Some(last) = rules.routes.last()
        && !last.when.is_empty()
    {
        out.push(
            Diagnostic::warning("no catch-all route at the end: calls that match no route are hung up")
                .at(route_location(last))
                .hint("end routes.toml with a [[route]] without `when`, e.g. then = { queue = \"allgemein\" }"),
        );
    }
}

/// Puts `diagnostic` at the definition of `[kind.id]`.
fn located(rules: &RuleSet, kind: &str, id: &str, diagnostic: Diagnostic) -> Diagnostic {
    match rules.definitions.get(&format!("{kind}.{id}")) {
        Some(location) => diagnostic.at(location.clone()),
        None => diagnostic,
    }
}

fn route_location(route: &Route) -> Location {
    route.location.clone()
}

fn shadowed_routes(rules: &RuleSet, out: &mut Vec<Diagnostic>) {
    for (j, later) in rules.routes.iter().enumerate() {
        // A route whose `then` is a menu lets the call through once the menu is answered, so it
        // never hides the routes below it.
        let shadow = rules.routes[..j].iter().find(|earlier| {
            !matches!(earlier.then.kind, ActionKind::Menu(_)) && covers(&earlier.when, &later.when)
        });
        if let Some(earlier) = shadow {
            out.push(
                Diagnostic::warning(format!(
                    "route `{}` can never be taken: route `{}` above it matches every call it \
                     matches",
                    later.id, earlier.id
                ))
                .at(route_location(later))
                .related(route_location(earlier))
                .hint(format!(
                    "routes are checked top to bottom and the first match wins; move `{}` above \
                     `{}` or make `{}` more specific",
                    later.id, earlier.id, earlier.id
                )),
            );
        }
    }
}

/// Whether every call matching `b` also matches `a`.
fn covers(a: &Conditions, b: &Conditions) -> bool {
    fn subset(a: &Option<Vec<String>>, b: &Option<Vec<String>>) -> bool {
        match (a, b) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b.iter().all(|x| a.contains(x)),
        }
    }
    fn same<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
        a.is_none() || a == b
    }
    let caller = match (&a.caller, &b.caller) {
        (None, _) => true,
        (Some(a), _) if a.iter().any(|p| p.0 == "*") => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|p| a.contains(p)),
    };
    let closed = a.closed.is_none()
        || a.closed == b.closed
        || a.closed == b.holiday
        || a.closed == b.closure;
    let wait = match (&a.wait_above, &b.wait_above) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a.queue == b.queue && b.secs >= a.secs,
    };
    subset(&a.number, &b.number)
        && caller
        && subset(&a.topic, &b.topic)
        && same(&a.open, &b.open)
        && closed
        && same(&a.holiday, &b.holiday)
        && same(&a.closure, &b.closure)
        && same(&a.no_agents, &b.no_agents)
        && same(&a.queue_full, &b.queue_full)
        && wait
}

fn contradictions(rules: &RuleSet, out: &mut Vec<Diagnostic>) {
    for route in &rules.routes {
        let w = &route.when;
        let clash = w.open.as_ref().filter(|open| {
            [&w.closed, &w.holiday, &w.closure]
                .into_iter()
                .any(|c| c.as_ref() == Some(*open))
        });
        if let Some(calendar) = clash {
            out.push(
                Diagnostic::warning(format!(
                    "route `{}` can never be taken: calendar `{calendar}` cannot be open and \
                     closed at once",
                    route.id
                ))
                .at(route_location(route))
                .hint("remove one of the two calendar conditions"),
            );
        }
    }
    let offered = offered_topics(rules);
    for route in &rules.routes {
        if let Some(topics) = &route.when.topic
            && topics.iter().all(|t| !offered.contains(t.as_str()))
        {
            out.push(
                Diagnostic::warning(format!(
                    "route `{}` can never be taken: no menu or route leads to topic {}",
                    route.id,
                    topics.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
                ))
                .at(route_location(route))
                .hint("offer the topic in a menu (keys or on_failure) or set it with then = { topic = \"…\" }"),
            );
        }
    }
}

fn actions(rules: &RuleSet) -> impl Iterator<Item = &Action> {
    let menus = rules
        .menus
        .values()
        .flat_map(|m| m.keys.values().chain(std::iter::once(&m.on_failure)));
    let queues = rules.queues.values().flat_map(|q| {
        [&q.on_leave, &q.on_full, &q.on_max_wait, &q.on_no_agents]
            .into_iter()
            .flatten()
    });
    let routes = rules.routes.iter().map(|r| &r.then);
    menus.chain(queues).chain(routes)
}

fn offered_topics(rules: &RuleSet) -> BTreeSet<&str> {
    actions(rules)
        .filter_map(|a| match &a.kind {
            ActionKind::Topic(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn usage(rules: &RuleSet, out: &mut Vec<Diagnostic>) {
    let mut queues = BTreeSet::new();
    let mut menus = BTreeSet::new();
    let mut calendars = BTreeSet::new();
    for action in actions(rules) {
        match &action.kind {
            ActionKind::Queue { queue, .. } | ActionKind::Callback(queue) => {
                queues.insert(queue.as_str());
            }
            ActionKind::Menu(menu) => {
                menus.insert(menu.as_str());
            }
            _ => {}
        }
    }
    for route in &rules.routes {
        let w = &route.when;
        for calendar in [&w.open, &w.closed, &w.holiday, &w.closure]
            .into_iter()
            .flatten()
        {
            calendars.insert(calendar.as_str());
        }
    }
    let offered = offered_topics(rules);
    let unused = |kind: &str, id: &str, file: &str| {
        located(
            rules,
            kind,
            id,
            Diagnostic::warning(format!("{kind} `{id}` is never used")).hint(format!(
                "no route, menu or queue refers to it; remove it from {file} or refer to it"
            )),
        )
    };
    for id in rules
        .queues
        .keys()
        .filter(|id| !queues.contains(id.as_str()))
    {
        out.push(unused("queue", id, "queues.toml"));
    }
    for id in rules.menus.keys().filter(|id| !menus.contains(id.as_str())) {
        out.push(unused("menu", id, "menus.toml"));
    }
    for id in rules
        .calendars
        .keys()
        .filter(|id| !calendars.contains(id.as_str()))
    {
        out.push(unused("calendar", id, "calendars.toml"));
    }
    for id in rules
        .topics
        .keys()
        .filter(|id| !offered.contains(id.as_str()))
    {
        out.push(located(
            rules,
            "topic",
            id,
            Diagnostic::warning(format!("topic `{id}` is offered by no menu"))
                .hint("callers can never choose it; add it to a menu's keys or remove it"),
        ));
    }
}

fn staffing(rules: &RuleSet, out: &mut Vec<Diagnostic>) {
    let skills: BTreeSet<&str> = rules.queues.values().map(|q| q.skill.as_str()).collect();
    for queue in rules.queues.values() {
        let served = rules.agents.values().any(|a| {
            a.skills
                .get(&queue.skill)
                .is_some_and(|l| *l >= queue.min_level)
        });
        if !served {
            out.push(located(
                rules,
                "queue",
                &queue.id,
                Diagnostic::warning(format!(
                    "no agent can serve queue `{}` (it needs skill `{}` at level {} or more)",
                    queue.id, queue.skill, queue.min_level
                ))
                .hint("give at least one agent in agents.toml this skill"),
            ));
        }
    }
    for queue in rules.queues.values() {
        if queue.max_wait_secs.is_none() {
            out.push(located(
                rules,
                "queue",
                &queue.id,
                Diagnostic::warning(format!(
                    "queue `{}` has no max_wait_secs: while every agent is paused, its callers wait without end",
                    queue.id
                ))
                .hint("set max_wait_secs and on_max_wait (e.g. an announcement and another queue)"),
            ));
        }
    }
    for agent in rules.agents.values() {
        for skill in agent.skills.keys().filter(|s| !skills.contains(s.as_str())) {
            out.push(located(
                rules,
                "agent",
                &agent.id,
                Diagnostic::warning(format!(
                    "agent `{}` has skill `{skill}`, which no queue asks for",
                    agent.id
                ))
                .hint(format!(
                    "queue skills: {}; a typo?",
                    skills.iter().copied().collect::<Vec<_>>().join(", ")
                )),
            ));
        }
    }
}

/// Queue overflows that lead back to where they started (a → b → a): when all are full, callers
/// would bounce between them (evaluation stops after a few hops).
fn overflow_loops(rules: &RuleSet, out: &mut Vec<Diagnostic>) {
    let next = |id: &str| -> Vec<&str> {
        rules.queues.get(id).map_or(Vec::new(), |q| {
            [&q.on_full, &q.on_no_agents]
                .into_iter()
                .flatten()
                .filter_map(|a| match &a.kind {
                    ActionKind::Queue { queue, .. } => Some(queue.as_str()),
                    _ => None,
                })
                .collect()
        })
    };
    for start in rules.queues.keys() {
        let mut path = vec![start.as_str()];
        let mut frontier = next(start);
        let mut seen = BTreeSet::new();
        while let Some(id) = frontier.pop() {
            if id == start {
                path.push(start);
                out.push(located(
                    rules,
                    "queue",
                    start,
                    Diagnostic::warning(format!(
                        "queue `{start}` overflows back into itself ({})",
                        path.join(" → ")
                    ))
                    .hint(
                        "end each overflow chain in voicemail, a callback, a forward or a hangup",
                    ),
                ));
                break;
            }
            if seen.insert(id) {
                path.push(id);
                frontier.extend(next(id));
            }
        }
    }
}
