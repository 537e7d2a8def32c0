//! Issue 4 acceptance 3, end to end: the rules directory is changed while SIPp calls are
//! running. A valid change is picked up (file watch) within about 2 s and new calls follow it,
//! while running calls keep the rule version they started with and complete; an invalid change
//! is refused with file:line, the old rules stay in force and no call is dropped. SIGHUP
//! reloads too.
//!
//! The engine runs on a copy of tests/fixtures/rules-open in a scratch dir (prompts: a link to
//! routing-rules/prompts). The change used: menus.toml maps key 4 to topic `allgemein` instead
//! of `fundbuero`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::engine::Engine;
use common::logs::{self, JSON_LOG, LogEvent};
use common::ports;
use common::rtp::{RtpPeer, answered_call, hang_up};
use common::scratch::ScratchDir;
use common::sipp::{Sipp, SippProcess};

const TELEPHONE_EVENT: u8 = 101;
const KEY4_FUNDBUERO: &str = "4 = { topic = \"fundbuero\" }";
const KEY4_ALLGEMEIN: &str = "4 = { topic = \"allgemein\" }";

/// The fixture rules with one agent for every queue, so callers stay in the queue the rules
/// chose (no overflow for lack of agents); log it in with `acd::login(&engine, "staff")`.
fn rules_copy() -> ScratchDir {
    common::acd::rules_with_silent_staff(&[])
}

fn edit(path: &PathBuf, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read rule file");
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write rule file");
}

fn with_message<'a>(events: &'a [LogEvent], message: &str) -> Vec<&'a LogEvent> {
    events.iter().filter(|e| e.message == message).collect()
}

/// Waits until the log has more than `before` lines with `message`; returns the newest one.
fn wait_for_nth(engine: &Engine, message: &str, before: usize, timeout: Duration) -> LogEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let events = logs::events(engine);
        let found = with_message(&events, message);
        if found.len() > before {
            return found[found.len() - 1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no new {message:?} log line within {timeout:?}\n{}",
            engine.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(engine: &Engine, message: &str) -> usize {
    with_message(&logs::events(engine), message).len()
}

/// `calls` SIPp calls that press 4 (real RFC 2833 pcap) `pre_ms` after the answer and hang up
/// `post_ms` later.
fn sipp_key4_calls(engine: &Engine, calls: u32, pre_ms: u64, post_ms: u64) -> SippProcess {
    let pcap = format!(
        "{}/tests/fixtures/dtmf/dtmf_2833_4.pcap",
        env!("CARGO_MANIFEST_DIR")
    );
    Sipp::new("uac_menu_dtmf.xml", engine.sip_addr())
        .calls(calls)
        .limit(calls)
        .rate(50.0)
        .timeout(Duration::from_secs(40))
        .arg("-mp")
        .arg(&ports::free_udp_block(4).to_string())
        .arg("-key")
        .arg("dtmf_pcap")
        .arg(&pcap)
        .arg("-key")
        .arg("pre_ms")
        .arg(&pre_ms.to_string())
        .arg("-key")
        .arg("post_ms")
        .arg(&post_ms.to_string())
        .spawn()
}

/// Waits until `n` SIPp calls of this SIPp process started their menu (are running).
fn wait_menus_started(engine: &Engine, sipp: &SippProcess, n: u32) {
    let ids: Vec<String> = (1..=n)
        .map(|i| format!("{i}-{}@127.0.0.1", sipp.pid()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ids
        .iter()
        .all(|id| !logs::call_events(engine, id, "menu").is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "SIPp calls did not start\n{}",
            engine.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The queue events of a finished SIPp run's calls: (queue, rules_version) per call.
fn sipp_queues(engine: &Engine, pid: u32, n: u32) -> Vec<(String, String)> {
    (1..=n)
        .map(|i| {
            let id = format!("{i}-{pid}@127.0.0.1");
            let q = logs::call_events(engine, &id, "queue");
            assert_eq!(
                q.len(),
                1,
                "call {id}: expected one event=queue; call log:\n{}",
                logs::call_summary(engine, &id)
            );
            (
                q[0].field("queue").unwrap_or_default(),
                q[0].field("rules_version").unwrap_or_default(),
            )
        })
        .collect()
}

/// A new call from the Rust client that presses 4; returns (queue, rules_version).
fn new_call_key4(engine: &Engine) -> (String, String) {
    let mut peer = RtpPeer::new();
    let (client, mut leg, engine_rtp) = answered_call(engine, &peer, &[0, TELEPHONE_EVENT]);
    logs::wait_for_call_events(engine, &leg.call_id, "menu", 1, Duration::from_secs(5));
    peer.press(engine_rtp, TELEPHONE_EVENT, 4);
    let q = logs::wait_for_call_events(engine, &leg.call_id, "queue", 1, Duration::from_secs(5));
    hang_up(&client, &mut leg);
    assert_eq!(
        q.len(),
        1,
        "new call: no event=queue after key 4; call log:\n{}",
        logs::call_summary(engine, &leg.call_id)
    );
    (
        q[0].field("queue").unwrap_or_default(),
        q[0].field("rules_version").unwrap_or_default(),
    )
}

#[test]
fn rules_change_while_calls_run_valid_is_followed_invalid_is_refused() {
    let rules = rules_copy();
    let rules_dir = rules.path().display().to_string();
    let menus = rules.join("menus.toml");
    let routes = rules.join("routes.toml");
    let engine = Engine::start(&[JSON_LOG, ("ZENTRALE_RULES__DIR", &rules_dir)]);
    common::acd::login(&engine, "staff");

    let (queue, old_version) = new_call_key4(&engine);
    assert_eq!(
        queue, "fundbuero",
        "before any change key 4 is the Fundbüro"
    );

    // (a) A valid change while 3 calls run; they press 4 only after it (5 s into the call).
    let running = sipp_key4_calls(&engine, 3, 5000, 1500);
    wait_menus_started(&engine, &running, 3);
    let reloads = count(&engine, "rules reloaded");
    let changed = Instant::now();
    edit(&menus, KEY4_FUNDBUERO, KEY4_ALLGEMEIN);
    let reloaded = wait_for_nth(&engine, "rules reloaded", reloads, Duration::from_secs(5));
    let took = changed.elapsed();
    eprintln!(
        "valid change reloaded after {took:?}: {:?}",
        reloaded.fields
    );
    assert_eq!(reloaded.field("trigger").as_deref(), Some("FileChange"));
    assert!(took <= Duration::from_millis(2500), "reload took {took:?}");
    let (queue, new_version) = new_call_key4(&engine);
    assert_eq!(queue, "allgemein", "a new call follows the changed menu");
    assert_ne!(
        new_version, old_version,
        "the new rule set has a new version"
    );

    let pid = running.pid();
    let result = running.wait();
    result.assert_all_successful(3);
    for (queue, version) in sipp_queues(&engine, pid, 3) {
        assert_eq!(
            (queue.as_str(), version.as_str()),
            ("fundbuero", old_version.as_str()),
            "a call running during the change keeps the rules it started with"
        );
    }

    // (b) Invalid changes while 2 calls run: refused with file:line, old rules stay.
    let running = sipp_key4_calls(&engine, 2, 6000, 1000);
    wait_menus_started(&engine, &running, 2);

    let refused_before = count(
        &engine,
        "rules change refused; the running rules stay in force",
    );
    let text = std::fs::read_to_string(&menus).expect("read menus.toml");
    let broken_line = text.lines().count() + 2;
    std::fs::write(&menus, format!("{text}\n[menu.kaputt\nname = \"x\"\n")).expect("write");
    let refused = wait_for_nth(
        &engine,
        "rules change refused; the running rules stay in force",
        refused_before,
        Duration::from_secs(5),
    );
    let errors = refused.field("errors").unwrap_or_default();
    eprintln!("syntax error refused: {errors}");
    assert!(
        errors.contains(&format!("menus.toml:{broken_line}")),
        "the refusal names menus.toml:{broken_line}: {errors}"
    );
    let (queue, version) = new_call_key4(&engine);
    assert_eq!(
        (queue.as_str(), version.as_str()),
        ("allgemein", new_version.as_str()),
        "after a refused change the last good rules stay in force"
    );

    // Route the Fundbüro topic to a queue that does not exist, then fix the syntax error (in
    // this order, so no state in between is valid).
    let routes_text = std::fs::read_to_string(&routes).expect("read routes.toml");
    let bad_line = routes_text
        .lines()
        .position(|l| l.contains("then = { queue = \"fundbuero\" }"))
        .expect("fundbuero route")
        + 1;
    std::fs::write(
        &routes,
        routes_text.replace(
            "then = { queue = \"fundbuero\" }",
            "then = { queue = \"fundbuero_gibtsnicht\" }",
        ),
    )
    .expect("write");
    std::fs::write(&menus, text.replace(KEY4_ALLGEMEIN, KEY4_FUNDBUERO)).expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let events = logs::events(&engine);
        let found = with_message(
            &events,
            "rules change refused; the running rules stay in force",
        );
        if let Some(last) = found.iter().skip(refused_before + 1).find(|e| {
            e.field("errors")
                .is_some_and(|x| x.contains("fundbuero_gibtsnicht") && !x.contains("syntax"))
        }) {
            break (*last).clone();
        }
        assert!(
            Instant::now() < deadline,
            "the unknown queue was not refused\n{}",
            engine.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let errors = refused.field("errors").unwrap_or_default();
    eprintln!("unknown queue refused: {errors}");
    assert!(
        errors.contains(&format!("routes.toml:{bad_line}"))
            && errors.contains("fundbuero_gibtsnicht"),
        "the refusal names routes.toml:{bad_line} and the unknown queue: {errors}"
    );
    let (queue, version) = new_call_key4(&engine);
    assert_eq!(
        (queue.as_str(), version.as_str()),
        ("allgemein", new_version.as_str()),
        "after a refused change the last good rules stay in force"
    );

    let pid = running.pid();
    let result = running.wait();
    result.assert_all_successful(2);
    for (queue, version) in sipp_queues(&engine, pid, 2) {
        assert_eq!(
            (queue.as_str(), version.as_str()),
            ("allgemein", new_version.as_str())
        );
    }
    assert!(engine.log().contains("rules change refused"));
    engine.assert_no_panic();
}

#[test]
fn sighup_reloads_the_rules() {
    let rules = rules_copy();
    let rules_dir = rules.path().display().to_string();
    let mut engine = Engine::start(&[JSON_LOG, ("ZENTRALE_RULES__DIR", &rules_dir)]);
    common::acd::login(&engine, "staff");
    let (queue, _) = new_call_key4(&engine);
    assert_eq!(queue, "fundbuero");

    let before = count(&engine, "rules reloaded");
    engine.signal(1); // SIGHUP
    let reloaded = wait_for_nth(&engine, "rules reloaded", before, Duration::from_secs(5));
    assert_eq!(reloaded.field("trigger").as_deref(), Some("Signal"));
    assert!(engine.is_running(), "SIGHUP must not stop the engine");
    let (queue, _) = new_call_key4(&engine);
    assert_eq!(queue, "fundbuero");
    engine.assert_no_panic();
}
