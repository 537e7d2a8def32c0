//! Evaluation and validation on small made-up rule sets (the Jena rules have their own tests in
//! `tests/rules_jena.rs`).

use chrono::{DateTime, TimeZone, Utc};

use std::collections::BTreeMap;

use super::*;
use crate::rules::Diagnostic;
use crate::rules::decision::QueueState;
use crate::rules::load::{Prompts, load_sources};

const BASE: &str = r#"
[number.hotline]
dialled = ["100"]

[topic.a]
name = "Thema A"
[topic.b]
name = "Thema B"

[queue.a]
name = "A"
on_no_agents = { voicemail = "a" }
[queue.b]
name = "B"
on_no_agents = { voicemail = "b" }

[agent.one]
name = "Eins"
skills = { a = 1, b = 1 }
uri = "sip:1@pbx.example"

[calendar.always]
[calendar.always.hours]
Mo = "00:00-24:00"
Di = "00:00-24:00"
Mi = "00:00-24:00"
Do = "00:00-24:00"
Fr = "00:00-24:00"
Sa = "00:00-24:00"
So = "00:00-24:00"

[menu.main]
greeting = "hello"
prompt = ["menu", "more"]
invalid_prompt = "oops"
attempts = 2
on_failure = { announce = ["bye"], hangup = true }
[menu.main.keys]
1 = { topic = "a" }
9 = { announce = ["sub_intro"], menu = "sub" }

[menu.sub]
prompt = "sub"
on_failure = { topic = "a" }
[menu.sub.keys]
2 = { topic = "b" }
"#;

fn prompts() -> Prompts {
    Prompts {
        folder: "prompts".into(),
        names: ["hello", "menu", "more", "oops", "bye", "sub", "sub_intro"]
            .into_iter()
            .map(str::to_string)
            .collect(),
    }
}

fn load(routes: &str) -> Result<RuleSet, Vec<Diagnostic>> {
    load_sources(
        vec![
            ("base.toml".into(), BASE.into()),
            ("routes.toml".into(), routes.into()),
        ],
        &prompts(),
        Utc.timestamp_opt(0, 0).unwrap(),
    )
}

fn rules(routes: &str) -> RuleSet {
    load(routes)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(ToString::to_string).collect::<String>()))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

fn call(keys: &str, caller: Option<&str>) -> CallFacts {
    CallFacts {
        dialled: "100".into(),
        caller: caller.map(str::to_string),
        inputs: MenuInput::parse_all(keys).unwrap(),
        queues: BTreeMap::new(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const MENU_ROUTES: &str = r#"
[[route]]
id = "menu"
then = { menu = "main" }

[[route]]
id = "a"
when = { topic = "a" }
then = { queue = "a", priority = 3 }

[[route]]
id = "b"
when = { topic = "b" }
then = { forward = "sip:b@pbx.example" }

[[route]]
id = "rest"
then = { queue = "b" }
"#;

#[test]
fn menus_greet_once_and_submenus_chain() {
    let rules = rules(MENU_ROUTES);
    let start = rules.evaluate(&call("", None), now());
    assert_eq!(
        start.outcome,
        Outcome::Menu {
            menu: "main".into(),
            prompts: strings(&["hello", "menu", "more"]),
            timeout_secs: 5,
            attempt: 1
        }
    );
    let sub = rules.evaluate(&call("9", None), now());
    assert_eq!(
        sub.outcome,
        Outcome::Menu {
            menu: "sub".into(),
            prompts: strings(&["sub_intro", "sub"]),
            timeout_secs: 5,
            attempt: 1
        }
    );
    let b = rules.evaluate(&call("92", None), now());
    assert_eq!(
        b.outcome,
        Outcome::Forward {
            target: "sip:b@pbx.example".into(),
            announce: strings(&["sub_intro"])
        }
    );
    assert_eq!(b.topic.as_deref(), Some("b"));
    let a = rules.evaluate(&call("1", None), now());
    assert_eq!(
        a.outcome,
        Outcome::Queue {
            queue: "a".into(),
            priority: 3,
            announce: vec![]
        }
    );
    // The same facts and time always give the same decision.
    assert_eq!(a, rules.evaluate(&call("1", None), now()));
}

#[test]
fn failed_tries_take_on_failure() {
    let rules = rules(MENU_ROUTES);
    let retry = rules.evaluate(&call("5", None), now());
    assert_eq!(
        retry.outcome,
        Outcome::Menu {
            menu: "main".into(),
            prompts: strings(&["oops", "menu", "more"]),
            timeout_secs: 5,
            attempt: 2
        }
    );
    // No no_input_prompt: silence just repeats the menu.
    let silent = rules.evaluate(&call("t", None), now());
    assert_eq!(silent.outcome.announce(), ["menu", "more"]);
    let out = rules.evaluate(&call("5t", None), now());
    assert_eq!(
        out.outcome,
        Outcome::Hangup {
            announce: strings(&["bye"])
        }
    );
    assert!(
        out.trail
            .iter()
            .any(|s| matches!(s.kind, StepKind::MenuFailed { .. }))
    );
    // A submenu's failure can set a topic: the routes decide again.
    let sub_failed = rules.evaluate(&call("9ttt", None), now());
    assert_eq!(sub_failed.topic.as_deref(), Some("a"));
}

#[test]
fn caller_patterns_and_unknown_numbers() {
    let rules = rules(
        r#"
[[route]]
id = "withheld"
when = { caller = "anonymous" }
then = { announce = ["bye"], hangup = true }

[[route]]
id = "erfurt"
when = { caller = ["+49361*"] }
then = { voicemail = "erfurt" }

[[route]]
id = "rest"
then = { queue = "a" }
"#,
    );
    let voicemail = Outcome::Voicemail {
        mailbox: "erfurt".into(),
        announce: vec![],
    };
    assert_eq!(
        rules.evaluate(&call("", Some("+49361555")), now()).outcome,
        voicemail
    );
    assert_eq!(
        rules.evaluate(&call("", Some("0361555")), now()).outcome,
        voicemail
    );
    assert_eq!(
        rules.evaluate(&call("", None), now()).outcome,
        Outcome::Hangup {
            announce: strings(&["bye"])
        }
    );
    assert!(matches!(
        rules.evaluate(&call("", Some("+4930555")), now()).outcome,
        Outcome::Queue { .. }
    ));
    let mut other = call("", None);
    other.dialled = "101".into();
    assert_eq!(rules.evaluate(&other, now()).outcome, Outcome::NotOurNumber);
}

#[test]
fn queue_conditions_and_overflow() {
    let rules = rules(
        r#"
[[route]]
id = "nobody"
when = { no_agents = "b", open = "always" }
then = { callback = "b" }

[[route]]
id = "rest"
then = { queue = "a" }
"#,
    );
    let mut facts = call("", None);
    assert!(matches!(
        rules.evaluate(&facts, now()).outcome,
        Outcome::Queue { .. }
    ));
    facts.queues.insert(
        "b".into(),
        QueueState {
            logged_in_agents: 0,
            ..Default::default()
        },
    );
    assert_eq!(
        rules.evaluate(&facts, now()).outcome,
        Outcome::Callback {
            queue: "b".into(),
            announce: vec![]
        }
    );
    facts.queues.clear();
    facts.queues.insert(
        "a".into(),
        QueueState {
            logged_in_agents: 0,
            ..Default::default()
        },
    );
    let overflow = rules.evaluate(&facts, now());
    assert_eq!(
        overflow.outcome,
        Outcome::Voicemail {
            mailbox: "a".into(),
            announce: vec![]
        }
    );
    assert!(
        overflow
            .trail
            .iter()
            .any(|s| s.text.contains("no agent is logged in"))
    );
}

#[test]
fn topic_loops_end_instead_of_spinning() {
    let rules = load(
        r#"
[[route]]
id = "to-b"
when = { topic = "a" }
then = { topic = "b" }

[[route]]
id = "to-a"
when = { topic = "b" }
then = { topic = "a" }

[[route]]
id = "menu"
then = { menu = "main" }
"#,
    )
    .expect("loops are not detected at load time");
    let decision = rules.evaluate(&call("1", None), now());
    assert_eq!(decision.outcome, Outcome::NoRoute { announce: vec![] });
    assert!(matches!(
        decision.trail.last().unwrap().kind,
        StepKind::Loop
    ));
}

#[test]
fn warnings_for_rules_that_load_but_look_wrong() {
    let rules = rules(
        r#"
[[route]]
id = "everything"
then = { menu = "main" }

[[route]]
id = "catch-a"
when = { topic = ["a", "b"] }
then = { queue = "a" }

[[route]]
id = "only-a"
when = { topic = "a", open = "always" }
then = { queue = "b" }

[[route]]
id = "impossible"
when = { open = "always", closed = "always" }
then = { queue = "b" }
"#,
    );
    let warnings: Vec<String> = rules.warnings.iter().map(|d| d.message.clone()).collect();
    let expect = [
        "route `only-a` can never be taken: route `catch-a` above it matches every call it matches",
        "route `impossible` can never be taken: calendar `always` cannot be open and closed at once",
        "no catch-all route at the end: calls that match no route are hung up",
    ];
    for text in expect {
        assert!(
            warnings.iter().any(|w| w == text),
            "`{text}` missing in {warnings:#?}"
        );
    }
    // A menu route never hides the routes below it.
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("route `everything` above it"))
    );
}

#[test]
fn agent_and_action_errors() {
    let broken = r#"
[agent.two]
name = "Zwei"
registration = "two"
password = "geheim"
password_env = "ZENTRALE_TWO"

[agent.three]
name = "Drei"
registration = "three"
password_ha1 = "not-a-hash"

[agent.four]
name = "Vier"
registration = "two"
password_env = "ZENTRALE_FOUR"

[agent.five]
name = "Fünf"
uri = "sip:5@pbx.example"
registration = "five"

[[route]]
id = "two-things"
then = { queue = "a", hangup = true }

[[route]]
id = "nothing"
then = { announce = ["bye"] }

[[route]]
id = "forward"
then = { forward = "pbx.example" }

[[route]]
id = "priority"
then = { hangup = true, priority = 2 }
"#;
    let errors = load(broken).unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    for expected in [
        "plaintext passwords are not allowed in the rule files",
        "password_ha1 is not an MD5 digest (32 hex digits)",
        "duplicate registration user `two`",
        "an agent is reached either by registration or by uri, not both",
        "an action does one thing, this one has queue and hangup",
        "this action does not say what happens to the call",
        "`pbx.example` is neither a SIP URI nor a phone number",
        "`priority` only goes with `queue`",
    ] {
        assert!(
            messages.contains(&expected),
            "`{expected}` missing in {messages:#?}"
        );
    }
    assert!(errors.iter().all(|d| d.location.is_some()));
}

#[test]
fn prompts_used_lists_every_prompt() {
    let rules = rules(MENU_ROUTES);
    let used: Vec<String> = rules.prompts_used().into_iter().collect();
    assert_eq!(
        used,
        strings(&["bye", "hello", "menu", "more", "oops", "sub", "sub_intro"])
    );
}
