//! Basic call handling end to end: SIPp callers over UDP and TCP, OPTIONS, CANCEL before the
//! answer, and a few exact exchanges with the raw client (404, 503, the SDP answer).

mod common;

use std::time::Duration;

use common::engine::Engine;
use common::logs::{self, JSON_LOG};
use common::sip::{CallLeg, SipClient, SipMessage};
use common::sipp::{Sipp, Transport};

const REPLY: Duration = Duration::from_secs(2);

#[test]
fn udp_200_calls_at_20_per_second() {
    let engine = Engine::start(&[]);
    let result = Sipp::new("uac_basic.xml", engine.sip_addr())
        .calls(200)
        .rate(20.0)
        .limit(40)
        .call_length_ms(200)
        .timeout(Duration::from_secs(60))
        .run();
    result.assert_all_successful(200);
    engine.assert_no_panic();
}

#[test]
fn tcp_50_calls() {
    let engine = Engine::start(&[]);
    let result = Sipp::new("uac_basic.xml", engine.sip_addr())
        .transport(Transport::Tcp)
        .calls(50)
        .rate(20.0)
        .limit(20)
        .call_length_ms(200)
        .timeout(Duration::from_secs(40))
        .run();
    result.assert_all_successful(50);
    engine.assert_no_panic();
}

#[test]
fn options_is_answered_with_200_for_any_user() {
    let engine = Engine::start(&[]);
    for user in ["490", "somebody-else"] {
        let result = Sipp::new("uac_options.xml", engine.sip_addr())
            .service(user)
            .calls(5)
            .rate(10.0)
            .timeout(Duration::from_secs(20))
            .run();
        result.assert_all_successful(5);
    }
    engine.assert_no_panic();
}

#[test]
fn cancel_before_answer_gets_487() {
    // The engine answers after 2 s, so the CANCEL (sent on the 100 Trying) always comes first.
    let engine = Engine::start(&[("ZENTRALE_SIP__ANSWER_DELAY_MS", "2000")]);
    let result = Sipp::new("uac_cancel.xml", engine.sip_addr())
        .calls(5)
        .rate(5.0)
        .limit(5)
        .timeout(Duration::from_secs(30))
        .run();
    result.assert_all_successful(5);
    engine.assert_no_panic();
}

#[test]
fn unknown_number_gets_404_and_ack_stops_retransmission() {
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let leg = CallLeg::new(&client, "0364199999");
    client.send(leg.invite());
    let reply = client.expect_final(REPLY, "INVITE to an unknown number");
    assert_eq!(reply.status(), Some(404), "reply: {reply:?}");
    assert_eq!(reply.call_id().as_deref(), Some(leg.call_id.as_str()));
    // The ACK for a non-2xx final reuses the INVITE's branch; it ends the retransmissions of
    // the 404 (Timer G, first one after T1 = 500 ms).
    client.send(leg.ack_non_2xx());
    let late: Vec<SipMessage> = client
        .recv_all(Duration::from_millis(1200))
        .into_iter()
        .filter(|m| m.status() == Some(404))
        .collect();
    assert!(
        late.is_empty(),
        "404 retransmitted after the ACK: {late:#?}\n{}",
        engine.log_tail(30)
    );
    engine.assert_no_panic();
}

/// Places one call by hand (INVITE, 200, ACK, BYE) and returns the 200.
fn call_and_hang_up(engine: &Engine, user: &str) -> SipMessage {
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, user);
    client.send(leg.invite());
    let answer = client.expect_final(REPLY, &format!("INVITE to {user}"));
    assert_eq!(answer.status(), Some(200), "INVITE to {user}: {answer:?}");
    leg.take_answer(&answer);
    assert!(leg.to_tag.is_some(), "200 without To tag: {answer:?}");
    client.send(leg.ack_2xx());
    client.send(leg.bye());
    let bye_reply = client.expect_final(REPLY, "BYE");
    assert_eq!(
        bye_reply.cseq().map(|c| c.1),
        Some("BYE".to_string()),
        "{bye_reply:?}"
    );
    assert_eq!(bye_reply.status(), Some(200), "BYE: {bye_reply:?}");
    answer
}

/// At the shipped log level (`info`) a call is one line, when it ends, saying how: the steps
/// are `debug` lines (thousands of calls a second must not mean ten lines each), and the
/// caller's number stays shortened.
#[test]
fn at_the_default_log_level_a_call_is_one_line_when_it_ends() {
    let engine = Engine::start(&[("ZENTRALE_LOG__LEVEL", "info"), JSON_LOG]);
    let answer = call_and_hang_up(&engine, "490");
    let call_id = answer.call_id().expect("the 200 has a Call-ID");
    let ended = logs::wait_for(&engine, REPLY, |e| {
        e.call_id.as_deref() == Some(call_id.as_str()) && e.message == "call ended"
    })
    .unwrap_or_else(|| {
        panic!(
            "no `call ended` line for {call_id}:\n{}",
            engine.log_tail(20)
        )
    });
    assert_eq!(
        ended.field("reason").as_deref(),
        Some("caller hung up"),
        "{}",
        ended.line
    );
    assert_eq!(
        ended.field("dialled").as_deref(),
        Some("490"),
        "{}",
        ended.line
    );
    assert!(
        ended.field("from").is_some_and(|f| f.starts_with('…')),
        "caller number not shortened: {}",
        ended.line
    );
    let lines = logs::for_call(&engine, &call_id);
    assert_eq!(
        lines.len(),
        1,
        "more than one line for the call: {lines:#?}"
    );
    engine.assert_no_panic();
}

#[test]
fn every_hotline_number_is_answered_with_an_sdp_answer() {
    let engine = Engine::start(&[]);
    let (rtp_min, rtp_max) = engine.rtp_range();
    for user in ["490", "+493641490", "03641490"] {
        let answer = call_and_hang_up(&engine, user);
        let content_type = answer.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/sdp"),
            "{user}: Content-Type {content_type:?}"
        );
        let sdp = answer.body();
        let m_line = sdp
            .lines()
            .find(|l| l.starts_with("m=audio "))
            .unwrap_or_else(|| panic!("{user}: no m=audio line in the answer:\n{sdp}"));
        let fields: Vec<&str> = m_line.trim_end().split(' ').collect();
        let port: u16 = fields
            .get(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{user}: bad m= line {m_line:?}"));
        assert!(
            (rtp_min..=rtp_max).contains(&port),
            "{user}: RTP port {port} outside the configured range {rtp_min}-{rtp_max}"
        );
        let formats = &fields[3.min(fields.len())..];
        assert!(
            formats.iter().any(|f| *f == "0" || *f == "8"),
            "{user}: answer offers neither PCMU (0) nor PCMA (8): {m_line:?}"
        );
    }
    engine.assert_no_panic();
}

#[test]
fn max_calls_exceeded_gets_503_with_retry_after() {
    let engine = Engine::start(&[("ZENTRALE_SIP__MAX_CALLS", "2")]);
    let client = SipClient::new(engine.sip_addr());
    let mut up = Vec::new();
    for _ in 0..2 {
        let mut leg = CallLeg::new(&client, "490");
        client.send(leg.invite());
        let answer = client.expect_final(REPLY, "INVITE within max_calls");
        assert_eq!(answer.status(), Some(200), "{answer:?}");
        leg.take_answer(&answer);
        client.send(leg.ack_2xx());
        up.push(leg);
    }
    let extra = CallLeg::new(&client, "490");
    client.send(extra.invite());
    let refused = client.expect_final(REPLY, "INVITE beyond max_calls");
    assert_eq!(refused.status(), Some(503), "{refused:?}");
    assert!(
        refused.header("retry-after").is_some(),
        "503 without Retry-After: {refused:?}"
    );
    client.send(extra.ack_non_2xx());
    for leg in &mut up {
        client.send(leg.bye());
        let (bye_ok, _) = client.recv_until(REPLY, |m| {
            m.status() == Some(200) && m.cseq().is_some_and(|c| c.1 == "BYE")
        });
        assert!(bye_ok.is_some(), "no 200 to BYE");
    }
    engine.assert_no_panic();
}
