//! Table-driven tests of the shipped Jena rules (`routing-rules/`): where calls go at the times
//! the issue names (Fundbüro hours, Thuringia's holidays, closure days, DST Sundays), through
//! the library API that `rules explain` uses.
//!
//! The rules are loaded with every prompt name the shipped rules may use taken as present, so
//! these tests do not depend on the generated WAV files (`rules_cli.rs` checks the real folder).

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use zentrale::rules::calendar::Status;
use zentrale::rules::explain::parse_at;
use zentrale::rules::load::Prompts;
use zentrale::rules::{CallFacts, Decision, MenuInput, Outcome, QueueState, RuleSet, load_sources};

/// The prompt names of the Jena hotline: the WAV files in routing-rules/prompts/.
pub fn prompt_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("routing-rules/prompts");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".wav").map(str::to_string)
        })
        .collect()
}

fn jena() -> RuleSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("routing-rules");
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = format!(
                "routing-rules/{}",
                path.file_name().unwrap().to_string_lossy()
            );
            sources.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    let prompts = Prompts {
        folder: "routing-rules/prompts".into(),
        names: prompt_names().into_iter().collect(),
    };
    match load_sources(sources, &prompts, Utc::now()) {
        Ok(rules) => rules,
        Err(diagnostics) => {
            let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("the Jena rules do not load:\n{}", text.join("\n"));
        }
    }
}

fn at(text: &str) -> DateTime<Utc> {
    parse_at(text).unwrap().instant
}

fn facts(keys: &str) -> CallFacts {
    CallFacts {
        dialled: "490".into(),
        caller: Some("+4936411234".into()),
        inputs: MenuInput::parse_all(keys).unwrap(),
        queues: Default::default(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn hangup(announce: &[&str]) -> Outcome {
    Outcome::Hangup {
        announce: strings(announce),
    }
}

fn queue(queue: &str, announce: &[&str]) -> Outcome {
    Outcome::Queue {
        queue: queue.into(),
        priority: 0,
        announce: strings(announce),
    }
}

fn menu(menu: &str, prompts: &[&str], attempt: u32) -> Outcome {
    Outcome::Menu {
        menu: menu.into(),
        prompts: strings(prompts),
        timeout_secs: 5,
        attempt,
    }
}

fn trail_text(decision: &Decision) -> String {
    decision
        .trail
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// (what, --at, --keys, expected outcome, text the trail must contain)
#[test]
fn jena_decisions_at_the_named_times() {
    let rules = jena();
    let closed_day = ["holiday", "goodbye"];
    let closed_hours = ["closed_hotline", "goodbye"];
    let cases: Vec<(&str, &str, &str, Outcome, &str)> = vec![
        (
            "Fundbüro, Tue 17:59: open",
            "2026-11-24T17:59",
            "4",
            queue("fundbuero", &[]),
            "Route `fundbuero` (routing-rules/routes.toml:",
        ),
        (
            "Fundbüro, Tue 18:00: closed (the hotline closes at 18:00 too)",
            "2026-11-24T18:00",
            "4",
            hangup(&closed_hours),
            "calendar `hotline` is closed outside its opening hours",
        ),
        (
            "Fundbüro, Wed 13:05: closed, offer the general queue",
            "2026-11-25T13:05",
            "4",
            menu(
                "fundbuero_geschlossen",
                &["closed_fundbuero", "offer_general"],
                1,
            ),
            "calendar `fundbuero` is closed outside its opening hours (Mo 08:30-13:00; \
             Di 08:30-18:00; Mi 09:00-13:00; Do 08:30-16:00; Fr 08:30-13:00), opens again \
             Thu 26 Nov 2026 08:30",
        ),
        (
            "Fundbüro, Wed 13:05, caller takes the general queue",
            "2026-11-25T13:05",
            "41",
            queue("allgemein", &["transfer_general"]),
            "Menu `fundbuero_geschlossen`: the caller pressed 1",
        ),
        (
            "Fundbüro, Wed 13:05, caller says nothing: goodbye",
            "2026-11-25T13:05",
            "4t",
            hangup(&["goodbye"]),
            "Menu `fundbuero_geschlossen`: no valid choice after 1 tries",
        ),
        (
            "Fundbüro, Wed 09:00: open",
            "2026-11-25T09:00",
            "4",
            queue("fundbuero", &[]),
            "calendar `fundbuero` is open",
        ),
        (
            "Good Friday 2027",
            "2027-03-26T10:00",
            "4",
            hangup(&closed_day),
            "closed for the public holiday Karfreitag",
        ),
        (
            "Easter Monday 2027",
            "2027-03-29T10:00",
            "1",
            hangup(&closed_day),
            "closed for the public holiday Ostermontag",
        ),
        (
            "Weltkindertag, 20 Sep 2026 (a Sunday)",
            "2026-09-20T10:00",
            "",
            hangup(&closed_day),
            "Weltkindertag",
        ),
        (
            "Reformationstag, 31 Oct 2026 (a Saturday)",
            "2026-10-31T10:00",
            "",
            hangup(&closed_day),
            "Reformationstag",
        ),
        (
            "Heiligabend, 24 Dec 2026 (closure day)",
            "2026-12-24T10:00",
            "4",
            hangup(&["closed_today", "goodbye"]),
            "closed for the closure day Heiligabend, opens again Mon 28 Dec 2026 08:00",
        ),
        (
            "Silvester, 31 Dec 2026 (closure day)",
            "2026-12-31T09:00",
            "",
            hangup(&["closed_today", "goodbye"]),
            "Silvester",
        ),
        (
            "DST starts, Sun 29 Mar 2026 02:30 (does not exist)",
            "2026-03-29T02:30",
            "4",
            hangup(&closed_hours),
            "opens again Mon 30 Mar 2026 08:00",
        ),
        (
            "DST ends, Sun 25 Oct 2026 02:30 (happens twice)",
            "2026-10-25T02:30",
            "4",
            hangup(&closed_hours),
            "opens again Mon 26 Oct 2026 08:00",
        ),
        (
            "A weekday morning, no key yet: greeting and menu",
            "2026-11-23T09:00",
            "",
            menu("hauptmenue", &["greeting", "menu"], 1),
            "waiting for a key (try 1 of 3",
        ),
        (
            "Key 1: Bürgerservice",
            "2026-11-23T09:00",
            "1",
            queue("buergerservice", &[]),
            "The topic is now `buergerservice`",
        ),
        (
            "Key 2: Führerscheinstelle",
            "2026-11-23T09:00",
            "2",
            queue("fuehrerschein", &[]),
            "the caller pressed 2",
        ),
        (
            "Key 3: Mängelmelder",
            "2026-11-23T09:00",
            "3",
            queue("maengelmelder", &[]),
            "the caller pressed 3",
        ),
        (
            "Key 0: general",
            "2026-11-23T09:00",
            "0",
            queue("allgemein", &[]),
            "the caller pressed 0",
        ),
        (
            "Invalid key: the menu again, after the invalid prompt",
            "2026-11-23T09:00",
            "9",
            menu("hauptmenue", &["invalid", "menu"], 2),
            "key 9 is not an option (failed try 1 of 3)",
        ),
        (
            "Silence: the menu again, after the no-input prompt",
            "2026-11-23T09:00",
            "t",
            menu("hauptmenue", &["no_input", "menu"], 2),
            "no key within 5 s",
        ),
        (
            "Three failed tries: the general queue",
            "2026-11-23T09:00",
            "9t*",
            queue("allgemein", &["transfer_general"]),
            "no valid choice after 3 tries",
        ),
        (
            "A valid key after two failures still counts",
            "2026-11-23T09:00",
            "9t4",
            queue("fundbuero", &[]),
            "the caller pressed 4",
        ),
    ];
    let mut failures = Vec::new();
    for (what, when, keys, expected, trail) in cases {
        let decision = rules.evaluate(&facts(keys), at(when));
        let text = trail_text(&decision);
        if decision.outcome != expected || !text.contains(trail) {
            failures.push(format!(
                "{what} ({when}, keys {keys:?}):\n  expected {expected:?}\n  got      {:?}\n  \
                 trail must contain: {trail}\n  trail:\n{text}\n",
                decision.outcome
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The Fundbüro's own calendar at the edges of its published hours, and on both sides of the
/// DST changes (the hours stay local).
#[test]
fn fundbuero_calendar_edges() {
    let rules = jena();
    let fundbuero = &rules.calendars["fundbuero"].calendar;
    let cases = [
        ("2026-11-24T17:59", true),  // Tue
        ("2026-11-24T18:00", false), // Tue closing time
        ("2026-11-25T08:59", false), // Wed opens 09:00
        ("2026-11-25T09:00", true),
        ("2026-11-25T12:59", true),
        ("2026-11-25T13:00", false),
        ("2026-11-25T13:05", false),
        ("2026-11-26T15:59", true), // Thu until 16:00
        ("2026-11-26T16:00", false),
        ("2026-11-27T08:30", true),  // Fri
        ("2026-11-28T10:00", false), // Sat
        ("2026-03-27T08:30", true),  // Fri before DST starts (CET)
        ("2026-03-30T08:29", false), // Mon after (CEST)
        ("2026-03-30T08:30", true),
        ("2026-10-26T08:30", true),  // Mon after DST ends (CET)
        ("2027-03-26T10:00", false), // Karfreitag
        ("2027-03-29T10:00", false), // Ostermontag
        ("2026-12-24T10:00", false), // closure
    ];
    for (when, open) in cases {
        let status = fundbuero.status(at(when));
        assert_eq!(
            matches!(status, Status::Open { .. }),
            open,
            "Fundbüro at {when}: {status:?}"
        );
    }
    // Local 08:30 is 07:30 UTC in winter and 06:30 UTC in summer.
    let Status::Closed {
        opens_at: Some(opens),
        ..
    } = fundbuero.status(at("2026-03-28T12:00"))
    else {
        panic!("Fundbüro open on a Saturday")
    };
    assert_eq!(opens.to_rfc3339(), "2026-03-30T06:30:00+00:00");
    let Status::Closed {
        opens_at: Some(opens),
        ..
    } = fundbuero.status(at("2026-10-24T12:00"))
    else {
        panic!("Fundbüro open on a Saturday")
    };
    assert_eq!(opens.to_rfc3339(), "2026-10-26T07:30:00+00:00");
}

#[test]
fn dst_times_in_at_are_resolved_and_noted() {
    let gap = parse_at("2026-03-29T02:30").unwrap();
    assert_eq!(gap.instant.to_rfc3339(), "2026-03-29T01:00:00+00:00");
    assert!(gap.note.unwrap().contains("does not exist"));
    let twice = parse_at("2026-10-25T02:30").unwrap();
    assert_eq!(twice.instant.to_rfc3339(), "2026-10-25T00:30:00+00:00");
    assert!(twice.note.unwrap().contains("happens twice"));
}

#[test]
fn queue_states_lead_to_the_configured_overflow() {
    let rules = jena();
    let weekday = at("2026-11-23T09:00");
    let with = |keys: &str, queue_id: &str, state: QueueState| {
        let mut f = facts(keys);
        f.queues.insert(queue_id.to_string(), state);
        rules.evaluate(&f, weekday)
    };
    let staffed = |waiting, wait| QueueState {
        logged_in_agents: 2,
        waiting_callers: waiting,
        estimated_wait_secs: wait,
    };
    let nobody = QueueState {
        logged_in_agents: 0,
        ..Default::default()
    };
    assert_eq!(
        with("4", "fundbuero", nobody).outcome,
        queue("allgemein", &["transfer_general"])
    );
    assert_eq!(
        with("4", "fundbuero", staffed(10, None)).outcome,
        queue("allgemein", &["queue_full"])
    );
    assert_eq!(
        with("4", "fundbuero", staffed(9, None)).outcome,
        queue("fundbuero", &[])
    );
    assert_eq!(
        with("3", "maengelmelder", staffed(10, None)).outcome,
        Outcome::Voicemail {
            mailbox: "maengelmelder".into(),
            announce: strings(&["queue_full"])
        }
    );
    assert_eq!(
        with("1", "buergerservice", staffed(3, Some(901))).outcome,
        Outcome::Callback {
            queue: "buergerservice".into(),
            announce: strings(&["queue_wait_long"])
        }
    );
    assert_eq!(
        with("1", "buergerservice", staffed(3, Some(900))).outcome,
        queue("buergerservice", &[])
    );
    assert_eq!(
        with("0", "allgemein", nobody).outcome,
        Outcome::Callback {
            queue: "allgemein".into(),
            announce: strings(&["queue_full"])
        }
    );
}

#[test]
fn every_hotline_number_is_served_and_others_are_not() {
    let rules = jena();
    let weekday = at("2026-11-23T09:00");
    for number in ["490", "+493641490", "03641490", "00493641490"] {
        let mut f = facts("4");
        f.dialled = number.into();
        assert_eq!(
            rules.evaluate(&f, weekday).outcome,
            queue("fundbuero", &[]),
            "{number}"
        );
    }
    let mut f = facts("");
    f.dialled = "999".into();
    assert_eq!(rules.evaluate(&f, weekday).outcome, Outcome::NotOurNumber);
    let mut dialled: Vec<&str> = rules.dialled_numbers().collect();
    dialled.sort();
    assert_eq!(dialled, ["+493641490", "03641490", "490"]);
}

#[test]
fn the_jena_rules_have_eight_agents_and_a_queue_per_department() {
    let rules = jena();
    assert_eq!(rules.agents.len(), 8);
    let queues: Vec<&str> = rules.queues.keys().map(String::as_str).collect();
    assert_eq!(
        queues,
        [
            "allgemein",
            "buergerservice",
            "fuehrerschein",
            "fundbuero",
            "maengelmelder"
        ]
    );
    let warnings: Vec<String> = rules
        .warnings
        .iter()
        .filter(|d| d.severity == zentrale::rules::Severity::Warning)
        .map(ToString::to_string)
        .collect();
    assert!(warnings.is_empty(), "{}", warnings.join("\n"));
}

/// Throughput of explain-style evaluation (no I/O): run with
/// `cargo test --release --test rules_jena -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: run explicitly in release mode"]
fn bench_decisions_per_second() {
    let rules = jena();
    let scenarios: Vec<(CallFacts, DateTime<Utc>)> = [
        ("4", "2026-11-24T17:59"),
        ("4", "2026-11-25T13:05"),
        ("41", "2026-11-25T13:05"),
        ("", "2026-12-24T10:00"),
        ("1", "2026-11-23T09:00"),
        ("9t*", "2026-11-23T09:00"),
        ("3", "2027-03-26T10:00"),
        ("0", "2026-03-29T02:30"),
    ]
    .into_iter()
    .map(|(keys, when)| (facts(keys), at(when)))
    .collect();
    let rounds = 200_000;
    let start = std::time::Instant::now();
    let mut trail_steps = 0usize;
    for i in 0..rounds {
        let (f, now) = &scenarios[i % scenarios.len()];
        trail_steps += std::hint::black_box(rules.evaluate(f, *now)).trail.len();
    }
    let elapsed = start.elapsed();
    println!(
        "rules evaluation: {rounds} decisions in {:.3} s = {:.0} decisions/s ({:.1} µs each, {:.1} trail steps on average)",
        elapsed.as_secs_f64(),
        rounds as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / rounds as f64,
        trail_steps as f64 / rounds as f64
    );
}

/// The published hours, written out again independently of the rules and the calendar code:
/// `(weekday from Monday = 0, open minute, close minute)`.
const FUNDBUERO_HOURS: [(u32, u32, u32); 5] = [
    (0, 8 * 60 + 30, 13 * 60),
    (1, 8 * 60 + 30, 18 * 60),
    (2, 9 * 60, 13 * 60),
    (3, 8 * 60 + 30, 16 * 60),
    (4, 8 * 60 + 30, 13 * 60),
];
const HOTLINE_HOURS: [(u32, u32, u32); 5] = [
    (0, 8 * 60, 18 * 60),
    (1, 8 * 60, 18 * 60),
    (2, 8 * 60, 18 * 60),
    (3, 8 * 60, 18 * 60),
    (4, 8 * 60, 18 * 60),
];

/// Open by the reference: within the table, not a Thuringia holiday, not 24 or 31 December.
fn reference_open(hours: &[(u32, u32, u32)], at: DateTime<Utc>) -> bool {
    use chrono::{Datelike, Timelike};
    use holiday_de::GermanRegion;
    let local = at.with_timezone(&chrono_tz::Europe::Berlin);
    let date = local.date_naive();
    if GermanRegion::Thueringen.is_holiday(date)
        || (date.month() == 12 && (date.day() == 24 || date.day() == 31))
    {
        return false;
    }
    let minute = local.hour() * 60 + local.minute();
    let weekday = date.weekday().num_days_from_monday();
    hours
        .iter()
        .any(|(day, open, close)| *day == weekday && (*open..*close).contains(&minute))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]

    /// For random instants (2026-2028, minute resolution) and random key presses, the decision
    /// agrees with the published hours table and the menu layout.
    #[test]
    fn decisions_agree_with_the_published_hours(
        minute in 0i64..(3 * 366 * 24 * 60),
        keys in "[0-9*#t]{0,3}",
    ) {
        thread_local! {
            static RULES: RuleSet = jena();
        }
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::minutes(minute);
        let decision = RULES.with(|rules| rules.evaluate(&facts(&keys), at));
        // The call path's decision without explanation is the same decision.
        let quick = RULES.with(|rules| rules.decide(&facts(&keys), at));
        proptest::prop_assert_eq!(&quick.outcome, &decision.outcome);
        proptest::prop_assert_eq!(&quick.topic, &decision.topic);
        let hotline_open = reference_open(&HOTLINE_HOURS, at);
        let fundbuero_open = reference_open(&FUNDBUERO_HOURS, at);
        if !hotline_open {
            let Outcome::Hangup { announce } = &decision.outcome else {
                panic!("hotline closed at {at}, got {:?}", decision.outcome);
            };
            proptest::prop_assert!(
                ["holiday", "closed_today", "closed_hotline"].contains(&announce[0].as_str())
            );
            return Ok(());
        }
        // The main menu by hand: three tries, keys 0-4 are options.
        let mut inputs = keys.chars();
        let mut failures = 0;
        let mut last_failure = None;
        let choice = loop {
            match inputs.next() {
                None => break None,
                Some(key) if "01234".contains(key) => break Some(key),
                Some(other) => {
                    failures += 1;
                    last_failure = Some(other);
                    if failures == 3 {
                        break Some('F');
                    }
                }
            }
        };
        let expected = match choice {
            None => {
                let before = match last_failure {
                    None => "greeting",
                    Some('t') => "no_input",
                    Some(_) => "invalid",
                };
                menu("hauptmenue", &[before, "menu"], failures + 1)
            }
            Some('F') => queue("allgemein", &["transfer_general"]),
            Some('1') => queue("buergerservice", &[]),
            Some('2') => queue("fuehrerschein", &[]),
            Some('3') => queue("maengelmelder", &[]),
            Some('0') => queue("allgemein", &[]),
            _ if fundbuero_open => queue("fundbuero", &[]),
            // Closed Fundbüro: its menu (one try), then the general queue (1) or goodbye.
            _ => match inputs.next() {
                None => menu("fundbuero_geschlossen", &["closed_fundbuero", "offer_general"], 1),
                Some('1') => queue("allgemein", &["transfer_general"]),
                Some(_) => hangup(&["goodbye"]),
            },
        };
        proptest::prop_assert_eq!(decision.outcome, expected, "at {} keys {:?}", at, keys);
    }
}
