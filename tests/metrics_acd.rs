//! Metrics acceptance 1: callers go through the voice menu into queues and to agents' phones,
//! some hang up while they wait, one waits too long and overflows; then a scrape of `/metrics`
//! must show exactly what the test did: offered / answered / abandoned / overflowed per queue,
//! the wait-time histogram per queue and outcome, talk time, agent ring results and SIP traffic.
//!
//! Callers are Rust SIP clients with RTP (menu keys as RFC 4733 events), agents' phones raw SIP
//! sockets on loopback (helpers in `common::flows`).

mod common;

use std::time::{Duration, Instant};

use common::acd;
use common::engine::Engine;
use common::flows::{Caller, Phone, agent_op, wait_agent_state, wait_call_event};
use common::http::{metrics, sample};
use common::logs::JSON_LOG;
use common::sip;

const SECOND: Duration = Duration::from_secs(1);
/// How long each answered caller talks with the agent.
const TALK: Duration = Duration::from_millis(1500);

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

/// Asserts each (series, value) exactly, reporting all mismatches at once.
fn assert_samples(text: &str, expected: &[(String, f64)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(series, want)| sample(text, series) != Some(*want))
        .map(|(series, want)| format!("{series}: want {want}, got {:?}", sample(text, series)))
        .collect();
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
}

/// A caller answered by `phone` in `queue`, talking for [`TALK`], then hanging up.
fn answered_call(engine: &Engine, phone: &Phone, key: char, queue: &str) {
    let mut caller = Caller::dial(engine);
    caller.choose(engine, key, queue);
    let invite = phone.expect_invite(5 * SECOND);
    phone.ring(&invite);
    phone.answer(&invite, 40_002);
    let id = caller.call_id();
    wait_call_event(engine, &id, "connected", 3 * SECOND, |_| true);
    std::thread::sleep(TALK);
    caller.hang_up();
    // The engine hangs up the agent's leg too.
    let agent_call = invite.call_id().unwrap_or_default();
    let bye = phone.expect_request("BYE", &agent_call, 5 * SECOND);
    phone.sip.send(sip::response_to(&bye, 200, "OK"));
}

#[test]
fn queue_metrics_match_the_calls_the_test_made() {
    let mut phones = vec![Phone::new(), Phone::new(), Phone::new()];
    let agents = [
        ("a1", "buergerservice = 5"),
        ("a2", "fuehrerschein = 5"),
        ("a3", "fundbuero = 5"),
    ];
    let agents_toml: String = agents
        .iter()
        .zip(&phones)
        .map(|((id, skills), phone)| acd::static_agent(id, skills, phone.port()))
        .collect();
    let rules = acd::rules_dir(
        &agents_toml,
        &[
            // a1 is free again a second after each call.
            ("queues.toml", "wrap_up_secs = 30", "wrap_up_secs = 1"),
            // Fundbüro callers overflow (on_max_wait) after 3 s.
            ("queues.toml", "max_wait_secs = 600", "max_wait_secs = 3"),
        ],
    );
    let dir = rules.path().display().to_string();
    let engine = Engine::start(&[JSON_LOG, ("ZENTRALE_RULES__DIR", &dir)]);
    for phone in &mut phones {
        phone.connect(&engine);
    }
    for (agent, _) in agents {
        assert_eq!(agent_op(&engine, agent, "login"), "available");
    }
    assert_eq!(agent_op(&engine, "a3", "pause"), "paused");
    let before = metrics(&engine);
    assert_eq!(
        value(
            &before,
            "zentrale_queue_calls_offered_total{queue=\"buergerservice\"}"
        ),
        0.0,
        "the queues' series exist from the start"
    );

    // 1. Two callers in Bürgerservice, answered by a1, each talking 1.5 s.
    for _ in 0..2 {
        answered_call(&engine, &phones[0], '1', "buergerservice");
        wait_agent_state(&engine, "a1", "available", 5 * SECOND);
    }

    // 2. Two callers in the Führerscheinstelle: a2's phone rings for the first (never
    //    answered), the second waits behind; both hang up.
    let mut ringing = Caller::dial(&engine);
    ringing.choose(&engine, '2', "fuehrerschein");
    let invite = phones[1].expect_invite(5 * SECOND);
    phones[1].ring(&invite);
    let mut waiting = Caller::dial(&engine);
    waiting.choose(&engine, '2', "fuehrerschein");
    std::thread::sleep(Duration::from_millis(500));
    waiting.hang_up();
    ringing.hang_up();
    phones[1].expect_cancel(&invite, 5 * SECOND);

    // 3. A Fundbüro caller: the only agent is paused, max_wait_secs = 3 sends it on by
    //    on_max_wait (announcement, then the engine hangs up).
    let mut overflowing = Caller::dial(&engine);
    overflowing.choose(&engine, '4', "fundbuero");
    let id = overflowing.call_id();
    wait_call_event(&engine, &id, "overflow", 8 * SECOND, |e| {
        e.field("reason").as_deref() == Some("max_wait")
    });
    overflowing.expect_bye(20 * SECOND);

    // Events reach the metrics task asynchronously: wait until all five calls ended there.
    let started = Instant::now();
    let text = loop {
        let text = metrics(&engine);
        if sample(&text, "zentrale_call_duration_seconds_count") == Some(5.0)
            && value(&text, "zentrale_calls_active") == 0.0
        {
            break text;
        }
        assert!(
            started.elapsed() < 10 * SECOND,
            "calls did not settle:\n{text}\n{}",
            engine.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let q = |name: &str, queue: &str| format!("{name}{{queue=\"{queue}\"}}");
    let wait = |part: &str, outcome: &str, queue: &str, le: Option<&str>| match le {
        Some(le) => format!(
            "zentrale_queue_wait_seconds_{part}{{outcome=\"{outcome}\",queue=\"{queue}\",le=\"{le}\"}}"
        ),
        None => {
            format!("zentrale_queue_wait_seconds_{part}{{outcome=\"{outcome}\",queue=\"{queue}\"}}")
        }
    };
    let queues = [
        "buergerservice",
        "fuehrerschein",
        "maengelmelder",
        "fundbuero",
        "allgemein",
    ];
    // (offered, answered, abandoned, overflowed by max_wait) per queue.
    let counts = [
        (2.0, 2.0, 0.0, 0.0),
        (2.0, 0.0, 2.0, 0.0),
        (0.0, 0.0, 0.0, 0.0),
        (1.0, 0.0, 0.0, 1.0),
        (0.0, 0.0, 0.0, 0.0),
    ];
    let mut expected: Vec<(String, f64)> = Vec::new();
    for (queue, (offered, answered, abandoned, overflowed)) in queues.iter().zip(counts) {
        expected.push((q("zentrale_queue_calls_offered_total", queue), offered));
        expected.push((q("zentrale_queue_calls_answered_total", queue), answered));
        expected.push((q("zentrale_queue_calls_abandoned_total", queue), abandoned));
        expected.push((q("zentrale_queue_calls_left_total", queue), 0.0));
        expected.push((
            format!(
                "zentrale_queue_calls_overflowed_total{{queue=\"{queue}\",reason=\"max_wait\"}}"
            ),
            overflowed,
        ));
        for reason in ["full", "no_agents"] {
            expected.push((
                format!(
                    "zentrale_queue_calls_overflowed_total{{queue=\"{queue}\",reason=\"{reason}\"}}"
                ),
                0.0,
            ));
        }
        expected.push((wait("count", "answered", queue, None), answered));
        expected.push((wait("count", "abandoned", queue, None), abandoned));
        expected.push((wait("count", "overflowed", queue, None), overflowed));
        expected.push((wait("count", "left", queue, None), 0.0));
        expected.push((q("zentrale_talk_seconds_count", queue), answered));
        // Nobody waits any more.
        for status in ["waiting", "ringing"] {
            expected.push((
                format!("zentrale_queue_callers{{queue=\"{queue}\",status=\"{status}\"}}"),
                0.0,
            ));
        }
    }
    let le = Some;
    expected.extend([
        // Answered at once (a1 was free): within 5 s, and so within the 20 and 30 s of the
        // service level.
        (wait("bucket", "answered", "buergerservice", le("5")), 2.0),
        (wait("bucket", "answered", "buergerservice", le("20")), 2.0),
        (wait("bucket", "answered", "buergerservice", le("30")), 2.0),
        // The Führerschein callers hung up after a few seconds.
        (wait("bucket", "abandoned", "fuehrerschein", le("15")), 2.0),
        (
            wait("bucket", "abandoned", "fuehrerschein", le("+Inf")),
            2.0,
        ),
        // The Fundbüro caller waited max_wait_secs = 3 s: in the 5 s bucket, not below.
        (wait("bucket", "overflowed", "fundbuero", le("5")), 1.0),
        (
            q("zentrale_talk_seconds_bucket", "buergerservice").replace("\"}", "\",le=\"5\"}"),
            2.0,
        ),
        (
            "zentrale_agent_rings_total{queue=\"buergerservice\",result=\"answered\"}".into(),
            2.0,
        ),
        (
            "zentrale_agent_rings_total{queue=\"fuehrerschein\",result=\"withdrawn\"}".into(),
            1.0,
        ),
        (
            "zentrale_queue_agents{queue=\"fundbuero\",state=\"paused\"}".into(),
            1.0,
        ),
        (
            "zentrale_queue_agents{queue=\"buergerservice\",state=\"available\"}".into(),
            1.0,
        ),
        (
            "zentrale_queue_longest_wait_seconds{queue=\"fundbuero\"}".into(),
            0.0,
        ),
        ("zentrale_calls_total".into(), 5.0),
        ("zentrale_events_lost_total".into(), 0.0),
    ]);
    assert_samples(&text, &expected);
    // The sums pin the durations the buckets only bound.
    let overflow_wait = value(&text, &wait("sum", "overflowed", "fundbuero", None));
    assert!(
        (2.8..5.0).contains(&overflow_wait),
        "max_wait_secs = 3, waited {overflow_wait} s"
    );
    let talk = value(&text, &q("zentrale_talk_seconds_sum", "buergerservice"));
    assert!(
        (2.0 * TALK.as_secs_f64()..2.0 * TALK.as_secs_f64() + 2.0).contains(&talk),
        "two calls of {TALK:?} talked {talk} s in all"
    );
    let abandoned_wait = value(&text, &wait("sum", "abandoned", "fuehrerschein", None));
    assert!(abandoned_wait > 0.5, "{abandoned_wait}");
    // SIP both ways: the engine rang agents' phones (3 INVITEs, retransmissions aside), sent
    // a CANCEL, answered the callers' INVITEs with 200 and sent no 5xx.
    let sip =
        |kind: &str, labels: &str| value(&text, &format!("zentrale_sip_{kind}_total{{{labels}}}"));
    assert!(
        sip("requests", "direction=\"sent\",method=\"INVITE\"") >= 3.0,
        "{text}"
    );
    assert!(
        sip("requests", "direction=\"sent\",method=\"CANCEL\"") >= 1.0,
        "{text}"
    );
    assert!(
        sip("requests", "direction=\"received\",method=\"INVITE\"") >= 5.0,
        "{text}"
    );
    assert!(
        sip("responses", "code_class=\"2xx\",direction=\"sent\"") >= 5.0,
        "{text}"
    );
    assert!(
        sip("responses", "code_class=\"2xx\",direction=\"received\"") >= 2.0,
        "{text}"
    );
    assert_eq!(
        sip("responses", "code_class=\"5xx\",direction=\"sent\""),
        0.0,
        "{text}"
    );
    // Agents' names never become labels.
    for agent in ["\"a1\"", "\"a2\"", "\"a3\""] {
        assert!(!text.contains(agent), "{agent} in\n{text}");
    }
    engine.assert_no_panic();
}
