//! `/metrics` end to end: the real engine takes a few calls and an OPTIONS from the raw client,
//! then a plain HTTP GET scrapes the Prometheus text and the counters must match what was done.

mod common;

use std::time::{Duration, Instant};

use common::engine::Engine;
use common::http::{metrics, sample};
use common::sip::{CallLeg, SipClient};

const REPLY: Duration = Duration::from_secs(2);
const SETTLE: Duration = Duration::from_secs(10);

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

/// An answered call to `user`, held for `hold`, ended by our BYE.
fn answered_call(engine: &Engine, user: &str, hold: Duration) {
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, user);
    client.send(leg.invite());
    let answer = client.expect_final(REPLY, &format!("INVITE to {user}"));
    assert_eq!(answer.status(), Some(200), "INVITE to {user}: {answer:?}");
    leg.take_answer(&answer);
    client.send(leg.ack_2xx());
    std::thread::sleep(hold);
    client.send(leg.bye());
    let bye_reply = client.expect_final(REPLY, "BYE");
    assert_eq!(bye_reply.status(), Some(200), "BYE: {bye_reply:?}");
}

/// A call to `user` the caller cancels while it rings (the engine answers with 487).
fn cancelled_call(engine: &Engine, user: &str) {
    let client = SipClient::new(engine.sip_addr());
    let leg = CallLeg::new(&client, user);
    client.send(leg.invite());
    let (trying, others) = client.recv_until(REPLY, |m| m.status() == Some(100));
    assert!(trying.is_some(), "no 100 Trying; received {others:#?}");
    client.send(leg.cancel());
    let (terminated, others) = client.recv_until(REPLY, |m| {
        m.status() == Some(487) && m.cseq().is_some_and(|c| c.1 == "INVITE")
    });
    assert!(terminated.is_some(), "no 487; received {others:#?}");
    client.send(leg.ack_non_2xx());
}

#[test]
fn metrics_count_the_calls_and_requests_the_test_made() {
    // Answering after 1 s leaves time to cancel one call while it rings.
    let engine = Engine::start(&[("ZENTRALE_SIP__ANSWER_DELAY_MS", "1000")]);
    let before = metrics(&engine);
    let requests_before = value(&before, "zentrale_sip_requests_received_total");
    assert_eq!(value(&before, "zentrale_calls_total"), 0.0, "{before}");

    // Three answered calls the caller hangs up, one cancelled while ringing, one INVITE to a
    // number nobody serves (refused with 404 before any call starts), one OPTIONS.
    for user in ["490", "+493641490", "03641490"] {
        answered_call(&engine, user, Duration::from_millis(300));
    }
    cancelled_call(&engine, "490");
    let client = SipClient::new(engine.sip_addr());
    let leg = CallLeg::new(&client, "0364199999");
    client.send(leg.invite());
    let reply = client.expect_final(REPLY, "INVITE to an unknown number");
    assert_eq!(reply.status(), Some(404), "reply: {reply:?}");
    client.send(leg.ack_non_2xx());
    let options = client.options("490", REPLY).expect("OPTIONS answered");
    assert_eq!(options.status(), Some(200));

    // Events reach the metrics task asynchronously: wait until every call has ended there.
    let started = Instant::now();
    let text = loop {
        let text = metrics(&engine);
        let ended = sample(&text, "zentrale_call_duration_seconds_count").unwrap_or(0.0);
        if ended >= 4.0 && value(&text, "zentrale_calls_active") == 0.0 {
            break text;
        }
        assert!(
            started.elapsed() < SETTLE,
            "calls did not settle within {SETTLE:?}:\n{text}\n{}",
            engine.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    // From the call events.
    assert_eq!(value(&text, "zentrale_calls_total"), 4.0, "{text}");
    assert_eq!(value(&text, "zentrale_calls_answered_total"), 3.0, "{text}");
    assert_eq!(
        value(&text, "zentrale_calls_rejected_total{code=\"487\"}"),
        1.0
    );
    assert!(
        sample(&text, "zentrale_calls_rejected_total{code=\"404\"}").is_none(),
        "the 404 was refused before a call started: {text}"
    );
    assert_eq!(
        value(
            &text,
            "zentrale_calls_ended_total{reason_class=\"caller_hangup\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            "zentrale_calls_ended_total{reason_class=\"rejected\"}"
        ),
        1.0
    );
    assert_eq!(value(&text, "zentrale_call_duration_seconds_count"), 4.0);
    // All lasted well under 5 s (1 s answer delay + 0.3 s talk at most).
    assert_eq!(
        value(&text, "zentrale_call_duration_seconds_bucket{le=\"5\"}"),
        4.0
    );
    assert!(
        value(&text, "zentrale_call_duration_seconds_sum") >= 3.0,
        "{text}"
    );
    assert_eq!(value(&text, "zentrale_events_lost_total"), 0.0);

    // From the engine's atomics at scrape time: 3 × (INVITE, ACK, BYE) + (INVITE, CANCEL, ACK)
    // + (INVITE, ACK) + OPTIONS.
    assert_eq!(
        value(&text, "zentrale_sip_requests_received_total") - requests_before,
        15.0,
        "{text}"
    );
    // The same requests by method; the engine itself sent no request (callers hung up).
    let requests = |labels: &str| {
        value(&text, &format!("zentrale_sip_requests_total{{{labels}}}"))
            - sample(&before, &format!("zentrale_sip_requests_total{{{labels}}}")).unwrap_or(0.0)
    };
    for (method, n) in [
        ("INVITE", 5.0),
        ("ACK", 5.0),
        ("BYE", 3.0),
        ("CANCEL", 1.0),
        ("OPTIONS", 1.0),
        ("other", 0.0),
    ] {
        assert_eq!(
            requests(&format!("direction=\"received\",method=\"{method}\"")),
            n,
            "{method}: {text}"
        );
        assert_eq!(
            requests(&format!("direction=\"sent\",method=\"{method}\"")),
            0.0,
            "{method}: {text}"
        );
    }
    // Responses sent since the start-up probe: 200 to 3 INVITEs, 3 BYEs, the CANCEL and the
    // OPTIONS (each once: every final was ACKed at once); 487 and 404; no 5xx.
    let responses = |class: &str| {
        let series =
            format!("zentrale_sip_responses_total{{code_class=\"{class}\",direction=\"sent\"}}");
        value(&text, &series) - sample(&before, &series).unwrap_or(0.0)
    };
    assert_eq!(responses("2xx"), 8.0, "{text}");
    assert_eq!(responses("4xx"), 2.0, "{text}");
    assert_eq!(responses("5xx"), 0.0, "{text}");
    assert!(responses("1xx") >= 4.0, "100 Trying to each INVITE: {text}");
    assert_eq!(
        value(
            &text,
            "zentrale_sip_responses_total{code_class=\"2xx\",direction=\"received\"}"
        ),
        0.0
    );
    assert!(sample(&text, "zentrale_rtp_packets_lost_total").is_some());
    assert_eq!(value(&text, "zentrale_calls_active"), 0.0);
    assert_eq!(value(&text, "zentrale_calls_rejected_overload_total"), 0.0);
    assert!(
        value(&text, "zentrale_rtp_packets_sent_total") > 0.0,
        "the menu greeting played for 0.9 s in all: {text}"
    );
    assert!(sample(&text, "zentrale_rtp_packets_late_total").is_some());
    assert!(sample(&text, "zentrale_rtp_packets_received_total").is_some());
    assert!(sample(&text, "zentrale_sip_messages_dropped_total").is_some());
    assert_eq!(
        value(&text, "zentrale_rules_reloads_total{result=\"ok\"}"),
        0.0
    );
    assert_eq!(
        value(&text, "zentrale_rules_reloads_total{result=\"failed\"}"),
        0.0
    );
    let rules = common::http::get_json(engine.http_addr(), "/api/rules").to_string();
    let info = text
        .lines()
        .find(|l| l.starts_with("zentrale_rules_info{"))
        .unwrap_or_else(|| panic!("no zentrale_rules_info in\n{text}"));
    let version = info
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no version label: {info}"));
    assert!(info.ends_with(" 1"), "{info}");
    assert!(
        rules.contains(&format!("\"version\":\"{version}\"")),
        "metrics version {version} vs /api/rules {rules}"
    );
    // The test rules keep every calendar open around the clock.
    let calendars: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("zentrale_calendar_open{"))
        .collect();
    assert!(!calendars.is_empty(), "{text}");
    assert!(calendars.iter().all(|l| l.ends_with(" 1")), "{calendars:?}");

    // Bounded labels: no caller number or Call-ID in the output.
    assert!(!text.contains(&leg.call_id), "Call-ID leaked into a label");
    assert!(!text.contains("0364199999"), "dialled number leaked");
    engine.assert_no_panic();
}
