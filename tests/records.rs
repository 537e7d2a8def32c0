//! Call records (issue 6), end to end against the real binary:
//!
//! - Calls through menu → queue → agent (answered with known talk times, abandoned while
//!   waiting, a short abandon, an overflow) end up as `calls` and `queue_events` rows, and
//!   `zentrale report` counts them: offered, answered, abandoned, service level, ASA, AHT.
//!   The same test runs on SQLite (the default) and on a real PostgreSQL server.
//! - `kill -9` during a load of short calls: every call that SIPp saw end more than a second
//!   before the kill has its `calls` row.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::acd;
use common::engine::{Engine, SIGKILL};
use common::flows::{Caller, Phone, agent_op, wait_agent_state};
use common::logs::JSON_LOG;
use common::postgres::Postgres;
use common::sipp::Sipp;
use zentrale::config::Settings;
use zentrale::records::builder::{CallRow, QueueRow};
use zentrale::records::store::Store;

const SECOND: Duration = Duration::from_secs(1);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The settings `zentrale` would read with these variables (plus the defaults).
fn settings(env: &[(&str, String)]) -> Settings {
    Settings::load_from(None, env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .expect("settings")
}

/// Every `calls` and `queue_events` row in the database the settings name.
fn read_records(settings: &Settings) -> (Vec<CallRow>, Vec<QueueRow>) {
    runtime().block_on(async {
        let store = Store::open(settings, false)
            .await
            .expect("open the records");
        let calls = store.calls(0, i64::MAX).await.expect("read calls");
        let events = store
            .queue_events(0, i64::MAX)
            .await
            .expect("read queue events");
        store.close().await;
        (calls, events)
    })
}

/// Waits until `want` holds for the records (the writer flushes every 250 ms).
fn wait_records(
    settings: &Settings,
    timeout: Duration,
    want: impl Fn(&[CallRow], &[QueueRow]) -> bool,
) -> (Vec<CallRow>, Vec<QueueRow>) {
    let deadline = Instant::now() + timeout;
    loop {
        let (calls, events) = read_records(settings);
        if want(&calls, &events) || Instant::now() >= deadline {
            return (calls, events);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `zentrale report` with `args` and the records settings in `env`; returns stdout.
fn report(env: &[(&str, String)], args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zentrale"));
    command.arg("report").args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ZENTRALE_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run zentrale report");
    assert!(
        out.status.success(),
        "zentrale report {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 report")
}

fn approx(value: &serde_json::Value, low: f64, high: f64) -> bool {
    value.as_f64().is_some_and(|v| (low..=high).contains(&v))
}

/// Menu → queue → agent calls with known outcomes; then the rows and the report.
fn records_match_the_calls(database_url: Option<String>) {
    let mut phone = Phone::new();
    let rules = acd::rules_dir(
        &acd::static_agent("a1", "buergerservice = 5, fuehrerschein = 5", phone.port()),
        &[
            // No wrap-up: the second call can ring a1 at once.
            ("queues.toml", "wrap_up_secs = 30", "wrap_up_secs = 0"),
            // Führerschein callers overflow (on_max_wait) after 2 s.
            (
                "queues.toml",
                "department = \"Führerscheinstelle\"\nstrategy = \"longest-idle\"\nmax_length = 10\nmax_wait_secs = 900",
                "department = \"Führerscheinstelle\"\nstrategy = \"longest-idle\"\nmax_length = 10\nmax_wait_secs = 2",
            ),
        ],
    );
    let rules_path = rules.path().display().to_string();
    let mut engine_env: Vec<(&str, String)> = vec![
        (JSON_LOG.0, JSON_LOG.1.to_string()),
        ("ZENTRALE_RULES__DIR", rules_path.clone()),
    ];
    if let Some(url) = &database_url {
        engine_env.push(("ZENTRALE_RECORDS__DATABASE_URL", url.clone()));
    }
    let env_refs: Vec<(&str, &str)> = engine_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let from = chrono::Utc::now() - chrono::Duration::seconds(5);
    let engine = Engine::start(&env_refs);
    phone.connect(&engine);
    assert_eq!(agent_op(&engine, "a1", "login"), "available");

    // 1. Answered after ~1 s of ringing, 2 s of talk, the caller hangs up.
    let mut c1 = Caller::dial(&engine);
    c1.choose(&engine, '1', "buergerservice");
    let invite = phone.expect_invite(5 * SECOND);
    phone.ring(&invite);
    std::thread::sleep(SECOND);
    phone.answer(&invite, 40_000);
    std::thread::sleep(2 * SECOND);
    c1.hang_up();
    let bye = phone.expect_request("BYE", &invite.call_id().unwrap_or_default(), 5 * SECOND);
    phone.sip.send(common::sip::response_to(&bye, 200, "OK"));
    wait_agent_state(&engine, "a1", "available", 3 * SECOND);

    // 2. Answered at once, 1 s of talk, the agent hangs up.
    let mut c2 = Caller::dial(&engine);
    c2.choose(&engine, '1', "buergerservice");
    let invite = phone.expect_invite(5 * SECOND);
    phone.ring(&invite);
    phone.answer(&invite, 40_002);
    std::thread::sleep(SECOND);
    phone.hang_up(&invite);
    c2.expect_bye(5 * SECOND);
    wait_agent_state(&engine, "a1", "available", 3 * SECOND);

    // 3. Waits 6 s while a1's phone rings unanswered, then hangs up: abandoned.
    // 4. Meanwhile another caller queues and hangs up at once: a short abandon.
    // 5. And a Führerschein caller waits for a1 (busy ringing) until max_wait (2 s) sends it
    //    off (callback: an announcement, then the engine hangs up): an overflow.
    let mut c3 = Caller::dial(&engine);
    c3.choose(&engine, '1', "buergerservice");
    let queued3 = Instant::now();
    let invite3 = phone.expect_invite(5 * SECOND);
    phone.ring(&invite3);
    let mut c4 = Caller::dial(&engine);
    c4.choose(&engine, '1', "buergerservice");
    c4.hang_up();
    let mut c5 = Caller::dial(&engine);
    c5.choose(&engine, '2', "fuehrerschein");
    std::thread::sleep((6 * SECOND).saturating_sub(queued3.elapsed()));
    c3.hang_up();
    phone.expect_cancel(&invite3, 5 * SECOND);
    c5.expect_bye(30 * SECOND);

    let ids: Vec<String> = [&c1, &c2, &c3, &c4, &c5]
        .iter()
        .map(|c| c.call_id())
        .collect();
    let mut store_env: Vec<(&str, String)> = vec![
        (
            "ZENTRALE_DATA__DIR",
            engine.data_dir().display().to_string(),
        ),
        ("ZENTRALE_RULES__DIR", rules_path.clone()),
    ];
    if let Some(url) = &database_url {
        store_env.push(("ZENTRALE_RECORDS__DATABASE_URL", url.clone()));
    }
    let settings = settings(&store_env);
    let (calls, events) = wait_records(&settings, 5 * SECOND, |calls, _| {
        ids.iter().all(|id| calls.iter().any(|c| &c.call_id == id))
    });
    let by_id: HashMap<&str, &CallRow> = calls.iter().map(|c| (c.call_id.as_str(), c)).collect();
    let row = |n: usize| -> &CallRow {
        by_id.get(ids[n].as_str()).unwrap_or_else(|| {
            panic!(
                "no calls row for call {} ({}); rows: {calls:#?}",
                n + 1,
                ids[n]
            )
        })
    };

    let r1 = row(0);
    assert_eq!(r1.outcome, "answered_by_agent", "{r1:#?}");
    assert_eq!(r1.agent.as_deref(), Some("a1"));
    assert_eq!(r1.first_queue.as_deref(), Some("buergerservice"));
    assert_eq!(r1.topic.as_deref(), Some("buergerservice"));
    assert_eq!(r1.end_reason, "caller hung up");
    assert!(r1.answered_at_ms.is_some() && r1.connected_at_ms.is_some());
    let (wait1, talk1) = (r1.wait_secs.unwrap(), r1.talk_secs.unwrap());
    assert!((0.9..3.0).contains(&wait1), "call 1 waited {wait1} s");
    assert!((1.9..3.5).contains(&talk1), "call 1 talked {talk1} s");
    let caller = r1.caller.as_deref().unwrap_or_default();
    assert!(
        caller.starts_with("hmac:") && !caller.contains("5501"),
        "caller numbers are hashed by default: {caller}"
    );
    assert!(
        engine.data_dir().join("records.key").is_file(),
        "the hashing key lives in data.dir"
    );

    let r2 = row(1);
    assert_eq!(r2.outcome, "answered_by_agent");
    assert!(r2.end_reason.ends_with("agent hung up"), "{r2:#?}");
    let talk2 = r2.talk_secs.unwrap();
    assert!((0.9..2.5).contains(&talk2), "call 2 talked {talk2} s");

    let r3 = row(2);
    assert_eq!(r3.outcome, "abandoned", "{r3:#?}");
    assert!(r3.wait_secs.unwrap() >= 5.5, "{r3:#?}");
    assert_eq!(r3.agent, None);
    assert_eq!(row(3).outcome, "abandoned");
    assert!(row(3).wait_secs.unwrap() < 5.0, "{:#?}", row(3));

    let r5 = row(4);
    assert_eq!(r5.outcome, "overflowed", "{r5:#?}");
    assert_eq!(r5.first_queue.as_deref(), Some("fuehrerschein"));
    assert_eq!(r5.final_queue.as_deref(), Some("fuehrerschein"));
    assert!(r5.wait_secs.unwrap() >= 1.9, "{r5:#?}");

    // The queue log of call 3: enter, ring a1, the ring withdrawn, abandon.
    let kinds3: Vec<(String, Option<String>)> = events
        .iter()
        .filter(|e| e.call_id == ids[2])
        .map(|e| (e.kind.clone(), e.reason.clone().or(e.detail.clone())))
        .collect();
    let plain: Vec<&str> = kinds3.iter().map(|(k, _)| k.as_str()).collect();
    for expected in ["enter", "ring", "ring_ended", "abandon"] {
        assert!(plain.contains(&expected), "call 3 queue events: {kinds3:?}");
    }
    let kinds5: Vec<(String, Option<String>)> = events
        .iter()
        .filter(|e| e.call_id == ids[4] && e.kind == "overflow")
        .map(|e| (e.queue.clone().unwrap_or_default(), e.reason.clone()))
        .collect();
    assert!(
        kinds5 == [("fuehrerschein".to_string(), Some("max_wait".to_string()))],
        "call 5 overflows: {kinds5:?}"
    );
    // Agent states are in the log too (a1 logged in, rang, talked).
    let states: HashSet<&str> = events
        .iter()
        .filter(|e| e.kind == "agent_state" && e.agent.as_deref() == Some("a1"))
        .filter_map(|e| e.detail.as_deref())
        .collect();
    assert!(states.contains("available"), "{states:?}");

    // The report: buergerservice offered 4, answered 2 (both within 30 s), 1 abandoned, 1 short
    // abandon: service level 2 / (4 - 1) = 66.67 %.
    let to = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let from = from.to_rfc3339();
    let json = report(
        &store_env,
        &["--from", &from, "--to", &to, "--format", "json"],
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("report json");
    let rows = parsed["rows"].as_array().expect("rows");
    let queue = |name: &str| -> &serde_json::Value {
        rows.iter()
            .find(|r| r["group"] == name)
            .unwrap_or_else(|| panic!("no {name} row in {json}"))
    };
    let b = queue("buergerservice");
    assert_eq!(b["offered"], 4, "{b}");
    assert_eq!(b["answered"], 2, "{b}");
    assert_eq!(b["answered_within_service_level"], 2, "{b}");
    assert_eq!(b["abandoned"], 1, "{b}");
    assert_eq!(b["short_abandons"], 1, "{b}");
    assert_eq!(b["overflowed"], 0, "{b}");
    assert_eq!(b["service_level_percent"], 66.67, "{b}");
    assert_eq!(b["abandon_rate_percent"], 33.33, "{b}");
    let expected_asa = (wait1 + row(1).wait_secs.unwrap()) / 2.0;
    assert!(
        approx(&b["asa_secs"], expected_asa - 0.02, expected_asa + 0.02),
        "ASA {} vs {expected_asa}",
        b["asa_secs"]
    );
    let expected_aht = (talk1 + talk2) / 2.0;
    assert!(
        approx(&b["aht_secs"], expected_aht - 0.02, expected_aht + 0.02),
        "AHT {} vs {expected_aht}",
        b["aht_secs"]
    );
    assert!(approx(&b["longest_wait_secs"], 5.5, 10.0), "{b}");
    let f = queue("fuehrerschein");
    assert_eq!(f["offered"], 1, "{f}");
    assert_eq!(f["overflowed"], 1, "{f}");
    assert_eq!(f["service_level_percent"], 0.0, "{f}");
    assert_eq!(parsed["service_level_secs"]["buergerservice"], 30);

    // One queue, as a table with the formula under it, and as CSV.
    let table = report_table(&store_env, &from, &to);
    eprintln!("{table}");
    assert!(
        table.contains(
            "service level = answered within 30 s / (offered - short abandons <= 5 s - left by key) x 100"
        ),
        "{table}"
    );
    let line = table
        .lines()
        .find(|l| l.starts_with("buergerservice"))
        .unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[1..7], ["4", "2", "1", "1", "0", "0"], "{table}");
    assert!(line.contains("66.7 %"), "{table}");
    let csv = report(
        &store_env,
        &[
            "--from", &from, "--to", &to, "--by", "topic", "--format", "csv",
        ],
    );
    assert!(
        csv.starts_with("topic,offered,answered,abandoned,"),
        "{csv}"
    );
    assert!(
        csv.contains("\nbuergerservice,4,2,1,1,0,0,66.7,33.3,"),
        "{csv}"
    );
    engine.assert_no_panic();
}

fn report_table(env: &[(&str, String)], from: &str, to: &str) -> String {
    report(
        env,
        &["--from", from, "--to", to, "--queue", "buergerservice"],
    )
}

#[test]
fn sqlite_records_and_report_match_the_calls_made() {
    records_match_the_calls(None);
}

#[test]
fn postgres_records_and_report_match_the_calls_made() {
    let server = Postgres::start();
    records_match_the_calls(Some(server.url()));
}

/// Seconds since local midnight now, on the clock of SIPp's message trace.
fn trace_clock_now() -> f64 {
    use chrono::Timelike;
    let now = chrono::Local::now();
    f64::from(now.num_seconds_from_midnight()) + f64::from(now.nanosecond() % 1_000_000_000) / 1e9
}

#[test]
fn kill_9_loses_no_call_that_ended_more_than_a_second_before_sqlite() {
    kill_9_loses_no_ended_call(None);
}

#[test]
fn kill_9_loses_no_call_that_ended_more_than_a_second_before_postgres() {
    let server = Postgres::start();
    kill_9_loses_no_ended_call(Some(server.url()));
}

fn kill_9_loses_no_ended_call(database_url: Option<String>) {
    let url_env: Vec<(&str, &str)> = database_url
        .as_deref()
        .map(|url| ("ZENTRALE_RECORDS__DATABASE_URL", url))
        .into_iter()
        .collect();
    let mut engine = Engine::start(&url_env);
    // 50 calls over 5 s, each answered (menu) and hung up by SIPp after 300 ms.
    let sipp = Sipp::new("uac_basic.xml", engine.sip_addr())
        .calls(50)
        .rate(10.0)
        .call_length_ms(300)
        .timeout(Duration::from_secs(30))
        .trace_messages()
        .spawn();
    std::thread::sleep(Duration::from_millis(3500));
    let killed_at = trace_clock_now();
    engine.signal(SIGKILL);
    assert!(
        engine.wait_exit(5 * SECOND).is_some(),
        "engine survived SIGKILL"
    );
    // SIPp's calls in flight would now time out one by one: read its trace and stop it.
    std::thread::sleep(SECOND);
    let trace = sipp.messages();
    drop(sipp);

    // Calls whose BYE got its 200 more than 1 s before the kill.
    let mut ended_before = HashSet::new();
    for m in acd::parse_trace(&trace) {
        if m.received && m.status_for("BYE") == Some(200) && m.at < killed_at - 1.0 {
            ended_before.insert(m.call_id());
        }
    }
    assert!(
        ended_before.len() >= 10,
        "only {} calls ended more than 1 s before the kill; trace:\n{}",
        ended_before.len(),
        &trace[trace.len().saturating_sub(3000)..]
    );

    // Restart on the same data dir: the engine opens the database (WAL recovery, migrations)…
    let data_dir = engine.data_dir().display().to_string();
    let mut env = url_env.clone();
    env.push(("ZENTRALE_DATA__DIR", &data_dir));
    let again = Engine::start(&env);
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let settings = settings(&env);
    // …and every call that had ended is there.
    let (calls, _) = read_records(&settings);
    let recorded: HashSet<&str> = calls.iter().map(|c| c.call_id.as_str()).collect();
    let missing: Vec<&String> = ended_before
        .iter()
        .filter(|id| !recorded.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} calls that ended > 1 s before kill -9 have no record: {missing:?}",
        missing.len(),
        ended_before.len()
    );
    for call in calls.iter().filter(|c| ended_before.contains(&c.call_id)) {
        assert_eq!(call.outcome, "ended_in_menu", "{call:#?}");
        assert_eq!(call.dialled, "490");
        assert_eq!(call.end_reason, "caller hung up");
    }
    eprintln!(
        "kill -9: {} calls ended > 1 s before the kill, all recorded ({} rows in all)",
        ended_before.len(),
        calls.len()
    );
    again.assert_no_panic();
}

fn old_call(id: &str, days_ago: i64) -> CallRow {
    let ended = chrono::Utc::now() - chrono::Duration::days(days_ago);
    CallRow {
        call_id: id.into(),
        started_at_ms: ended.timestamp_millis() - 60_000,
        answered_at_ms: None,
        ended_at_ms: ended.timestamp_millis(),
        transport: Some("udp".into()),
        dialled: "490".into(),
        caller: None,
        topic: None,
        first_queue: None,
        final_queue: None,
        queued_at_ms: None,
        connected_at_ms: None,
        agent: None,
        outcome: "ended_in_menu".into(),
        end_reason: "caller hung up".into(),
        reject_status: None,
        wait_secs: None,
        talk_secs: None,
        rules_version: "old".into(),
    }
}

/// Rows older than `records.retention_days` are deleted when the engine starts; a call that
/// ends right before SIGTERM is written on the way out; `caller_numbers = "shortened"` keeps
/// only the last two digits.
fn retention_shutdown_and_shortened_numbers(database_url: Option<String>) {
    use zentrale::records::builder::Row;
    let scratch = common::scratch::ScratchDir::new("records");
    let data_dir = scratch.join("data").display().to_string();
    let mut env: Vec<(&str, String)> = vec![
        ("ZENTRALE_DATA__DIR", data_dir),
        ("ZENTRALE_RECORDS__RETENTION_DAYS", "30".into()),
        ("ZENTRALE_RECORDS__CALLER_NUMBERS", "shortened".into()),
    ];
    if let Some(url) = &database_url {
        env.push(("ZENTRALE_RECORDS__DATABASE_URL", url.clone()));
    }
    let settings = settings(&env);
    runtime().block_on(async {
        let store = Store::open(&settings, true)
            .await
            .expect("create the records");
        let old_event = QueueRow {
            at_ms: old_call("x", 40).ended_at_ms,
            call_id: "old".into(),
            queue: Some("allgemein".into()),
            agent: None,
            kind: "enter".into(),
            reason: None,
            wait_secs: None,
            topic: None,
            detail: None,
        };
        store
            .write(&mut vec![
                Row::Call(old_call("old", 40)),
                Row::Call(old_call("recent", 10)),
                Row::Queue(old_event),
            ])
            .await
            .expect("write old rows");
        store.close().await;
    });
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut engine = Engine::start(&env_refs);
    let (calls, events) = wait_records(&settings, 5 * SECOND, |calls, _| {
        calls.iter().all(|c| c.call_id != "old")
    });
    let ids: Vec<&str> = calls.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(
        ids,
        ["recent"],
        "the 40-day-old call is gone, the 10-day-old stays"
    );
    assert!(events.is_empty(), "old queue events are gone: {events:?}");

    let result = Sipp::new("uac_basic.xml", engine.sip_addr())
        .calls(1)
        .trace_messages()
        .timeout(Duration::from_secs(20))
        .run();
    result.assert_all_successful(1);
    engine.sigterm();
    assert!(
        engine.wait_exit(15 * SECOND).is_some_and(|s| s.success()),
        "engine did not stop cleanly on SIGTERM"
    );
    let call_id = acd::parse_trace(&result.messages)
        .first()
        .map(|m| m.call_id())
        .expect("a traced message");
    let (calls, _) = read_records(&settings);
    let call = calls
        .iter()
        .find(|c| c.call_id == call_id)
        .unwrap_or_else(|| panic!("the last call before SIGTERM has no record: {calls:#?}"));
    let caller = call.caller.as_deref().unwrap_or_default();
    assert!(
        caller.starts_with('…') && caller.chars().count() == 3,
        "shortened caller number: {caller:?}"
    );
    engine.assert_no_panic();
}

#[test]
fn retention_shutdown_and_shortened_numbers_sqlite() {
    retention_shutdown_and_shortened_numbers(None);
}

#[test]
fn retention_shutdown_and_shortened_numbers_postgres() {
    let server = Postgres::start();
    retention_shutdown_and_shortened_numbers(Some(server.url()));
}
