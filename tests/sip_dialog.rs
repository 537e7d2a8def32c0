//! Dialog behaviour seen on the wire with the raw UDP client (exact headers and bodies):
//! re-INVITE hold/unhold, RFC 4028 session timers (422, the granted interval, BYE when nobody
//! refreshes, UPDATE refreshes), INFO/OPTIONS inside the call, 481 for a wrong To tag, 500 for
//! an out-of-order CSeq, BYE retransmissions after the call ended, codec and content-type
//! refusals, the offerless INVITE, CANCEL for an unknown branch, and the engine's own BYE.
//!
//! Every test starts its own engine; every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use common::engine::Engine;
use common::sip::{CallLeg, SipClient, SipMessage, branch, param, response_to, sdp_offer};

const REPLY: Duration = Duration::from_secs(2);
const SDP: &str = "application/sdp";

/// Waits for a final response whose CSeq is `(cseq, method)`, skipping everything else (for
/// example retransmitted 200s of the INVITE). Panics with what arrived if none comes.
fn expect_final_for(client: &SipClient, cseq: u32, method: &str, engine: &Engine) -> SipMessage {
    let (found, others) = client.recv_until(REPLY, |m| {
        m.is_final() && m.cseq() == Some((cseq, method.to_string()))
    });
    found.unwrap_or_else(|| {
        panic!(
            "no final response to {method} (CSeq {cseq}) within {REPLY:?}; received instead: \
             {others:#?}\n{}",
            engine.log_tail(30)
        )
    })
}

/// INVITE (`extra` headers, `body`), 200, ACK. Returns the leg (To tag recorded) and the 200.
fn establish(
    client: &SipClient,
    engine: &Engine,
    extra: &str,
    body: Option<(&str, &str)>,
) -> (CallLeg, SipMessage) {
    let mut leg = CallLeg::new(client, "490");
    client.send(leg.invite_with(extra, body));
    let answer = expect_final_for(client, leg.invite_cseq, "INVITE", engine);
    assert_eq!(answer.status(), Some(200), "INVITE: {answer:?}");
    leg.take_answer(&answer);
    assert!(leg.to_tag.is_some(), "200 without To tag: {answer:?}");
    client.send(leg.ack_2xx());
    (leg, answer)
}

/// Sends BYE and expects 200.
fn hang_up(client: &SipClient, engine: &Engine, leg: &mut CallLeg) {
    let (bye, cseq) = leg.in_dialog("BYE", "", None);
    client.send(bye);
    let reply = expect_final_for(client, cseq, "BYE", engine);
    assert_eq!(reply.status(), Some(200), "BYE: {reply:?}");
}

/// `(username, sess-id, sess-version)` of the SDP `o=` line.
fn sdp_origin(sdp: &str) -> (String, u64, u64) {
    let line = sdp
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .unwrap_or_else(|| panic!("no o= line in:\n{sdp}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| -> u64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("bad o= line {line:?}"))
    };
    (fields[0].to_string(), number(1), number(2))
}

/// The direction attribute of the SDP (`sendrecv` when none is written, RFC 3264 §5.1).
fn sdp_direction(sdp: &str) -> String {
    sdp.lines()
        .map(str::trim_end)
        .filter_map(|l| l.strip_prefix("a="))
        .find(|a| ["sendrecv", "sendonly", "recvonly", "inactive"].contains(a))
        .unwrap_or("sendrecv")
        .to_string()
}

/// The `m=audio` line's port and formats.
fn sdp_audio(sdp: &str) -> (u16, Vec<String>) {
    let line = sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("m=audio "))
        .unwrap_or_else(|| panic!("no m=audio line in:\n{sdp}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let port = fields[0]
        .parse()
        .unwrap_or_else(|_| panic!("bad port in m= line {line:?}"));
    (port, fields[2..].iter().map(|s| s.to_string()).collect())
}

fn assert_sdp_response(response: &SipMessage, what: &str) {
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with(SDP),
        "{what}: Content-Type {content_type:?}; response: {response:?}"
    );
}

// ----- 1. re-INVITE: hold and unhold ------------------------------------------------------

/// Runs INVITE, hold re-INVITE (`sendonly`), unhold re-INVITE (`sendrecv`), each ACKed;
/// returns the three 200 responses.
fn hold_and_unhold(
    client: &SipClient,
    engine: &Engine,
) -> (CallLeg, SipMessage, SipMessage, SipMessage) {
    let (mut leg, first) = establish(client, engine, "", Some((SDP, &sdp_offer(1, "sendrecv"))));
    let mut answers = Vec::new();
    for (version, direction) in [(2, "sendonly"), (3, "sendrecv")] {
        let offer = sdp_offer(version, direction);
        let (reinvite, cseq) = leg.in_dialog("INVITE", "", Some((SDP, &offer)));
        client.send(reinvite);
        let answer = expect_final_for(client, cseq, "INVITE", engine);
        assert_eq!(
            answer.status(),
            Some(200),
            "re-INVITE ({direction}): {answer:?}"
        );
        client.send(leg.ack_2xx_for(cseq, None));
        // The ACK stops the 2xx retransmissions (the first would come after T1 = 500 ms).
        let late: Vec<SipMessage> = client
            .recv_all(Duration::from_millis(1200))
            .into_iter()
            .filter(|m| m.cseq() == Some((cseq, "INVITE".to_string())))
            .collect();
        assert!(
            late.is_empty(),
            "200 to the re-INVITE ({direction}) retransmitted after its ACK: {late:#?}"
        );
        answers.push(answer);
    }
    let unhold = answers.pop().expect("two answers");
    let hold = answers.pop().expect("two answers");
    (leg, first, hold, unhold)
}

#[test]
fn reinvite_hold_is_mirrored_and_unhold_restores_sendrecv() {
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let (mut leg, first, hold, unhold) = hold_and_unhold(&client, &engine);
    let tag = leg.to_tag.clone();
    for (what, answer, direction) in [
        ("initial answer", &first, "sendrecv"),
        ("hold answer", &hold, "recvonly"),
        ("unhold answer", &unhold, "sendrecv"),
    ] {
        assert_sdp_response(answer, what);
        assert_eq!(answer.to_tag(), tag, "{what}: To tag changed: {answer:?}");
        assert_eq!(
            sdp_direction(answer.body()),
            direction,
            "{what}: wrong direction in\n{}",
            answer.body()
        );
    }
    // The same media stream throughout: port unchanged.
    let port = sdp_audio(first.body()).0;
    assert_eq!(sdp_audio(hold.body()).0, port, "hold moved the RTP port");
    assert_eq!(
        sdp_audio(unhold.body()).0,
        port,
        "unhold moved the RTP port"
    );
    // A changed session description carries a higher o= version.
    let versions: Vec<u64> = [&first, &hold, &unhold]
        .iter()
        .map(|a| sdp_origin(a.body()).2)
        .collect();
    assert!(
        versions[0] < versions[1] && versions[1] < versions[2],
        "o= versions must increase between answers: {versions:?}"
    );
    hang_up(&client, &engine, &mut leg);
    engine.assert_no_panic();
}

#[test]
fn reinvite_answers_keep_the_sdp_origin_except_the_version() {
    // RFC 3264 §8: a changed SDP keeps the o= line of the previous one except that the version
    // goes up by one; username and sess-id identify the session (RFC 4566 §5.2).
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let (mut leg, first, hold, unhold) = hold_and_unhold(&client, &engine);
    let origins: Vec<(String, u64, u64)> = [&first, &hold, &unhold]
        .iter()
        .map(|a| sdp_origin(a.body()))
        .collect();
    for pair in origins.windows(2) {
        assert_eq!(
            (&pair[0].0, pair[0].1),
            (&pair[1].0, pair[1].1),
            "o= username/sess-id changed between answers of one session: {origins:?}"
        );
        assert_eq!(
            pair[1].2,
            pair[0].2 + 1,
            "o= version must go up by one: {origins:?}"
        );
    }
    hang_up(&client, &engine, &mut leg);
    engine.assert_no_panic();
}

// ----- 2. session timers --------------------------------------------------------------------

#[test]
fn session_interval_below_min_se_gets_422_with_min_se() {
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, "490");
    client.send(leg.invite_with(
        "Supported: timer\r\nSession-Expires: 60\r\n",
        Some((SDP, common::sip::OFFER_SDP)),
    ));
    let reply = expect_final_for(&client, 1, "INVITE", &engine);
    assert_eq!(reply.status(), Some(422), "{reply:?}");
    assert_eq!(
        reply.header("min-se").as_deref().map(str::trim),
        Some("90"),
        "422 must carry Min-SE: 90 (the default sip.min_se_secs): {reply:?}"
    );
    leg.take_answer(&reply);
    client.send(leg.ack_non_2xx());
    engine.assert_no_panic();
}

/// An engine granting 3 s sessions (min 3 s): the engine hangs up 3 − min(32, 3/3) = 2 s after
/// its 200 when nobody refreshes.
fn short_session_engine() -> Engine {
    Engine::start(&[
        ("ZENTRALE_SIP__MIN_SE_SECS", "3"),
        ("ZENTRALE_SIP__SESSION_EXPIRES_SECS", "3"),
    ])
}

/// Waits up to `timeout` for a BYE from the engine; answers it with 200.
fn wait_for_bye(client: &SipClient, timeout: Duration) -> (Option<SipMessage>, Vec<SipMessage>) {
    let (bye, others) = client.recv_until(timeout, |m| m.method() == Some("BYE"));
    if let Some(bye) = &bye {
        client.send(response_to(bye, 200, "OK"));
    }
    (bye, others)
}

#[test]
fn session_timer_is_granted_and_unrefreshed_session_ends_with_bye() {
    let engine = short_session_engine();
    let client = SipClient::new(engine.sip_addr());
    let (_leg, answer) = establish(
        &client,
        &engine,
        "Supported: timer\r\n",
        Some((SDP, common::sip::OFFER_SDP)),
    );
    let session_expires = answer.header("session-expires").unwrap_or_default();
    assert_eq!(
        session_expires.replace(' ', ""),
        "3;refresher=uac",
        "200 must grant Session-Expires: 3;refresher=uac: {answer:?}"
    );
    let require = answer.headers("require").join(",");
    assert!(
        require.split(',').any(|t| t.trim() == "timer"),
        "200 must carry Require: timer: {answer:?}"
    );
    let (bye, others) = wait_for_bye(&client, Duration::from_secs(6));
    let bye = bye.unwrap_or_else(|| {
        panic!(
            "no BYE within 6 s of the 200 although nobody refreshed a 3 s session; received: \
             {others:#?}\n{}",
            engine.log_tail(30)
        )
    });
    let after = bye.at - answer.at;
    println!("BYE {after:?} after the 200 (expected ≈ 2 s)");
    assert!(
        (Duration::from_millis(1500)..=Duration::from_millis(4000)).contains(&after),
        "BYE {after:?} after the 200; expected ≈ 2 s (interval 3 s − min(32, 3/3) s)"
    );
    engine.assert_no_panic();
}

#[test]
fn update_refreshes_keep_the_session_until_they_stop() {
    let engine = short_session_engine();
    let client = SipClient::new(engine.sip_addr());
    let (mut leg, answer) = establish(
        &client,
        &engine,
        "Supported: timer\r\n",
        Some((SDP, common::sip::OFFER_SDP)),
    );
    assert!(
        answer.header("session-expires").is_some(),
        "no session timer granted: {answer:?}"
    );
    // Refresh every second for 4 s: without the refreshes the BYE would come at ≈ 2 s.
    let mut last_refresh = answer.at;
    for round in 1..=4 {
        let until = answer.at + Duration::from_secs(round);
        let (bye, _) = client.recv_until(until.saturating_duration_since(Instant::now()), |m| {
            m.method() == Some("BYE")
        });
        if let Some(bye) = bye {
            client.send(response_to(&bye, 200, "OK"));
            panic!(
                "engine sent BYE {:?} after the 200 although the session was refreshed every \
                 second (refresh {round}):\n{bye:?}\n{}",
                bye.at - answer.at,
                engine.log_tail(30)
            );
        }
        let (update, cseq) = leg.in_dialog(
            "UPDATE",
            "Supported: timer\r\nSession-Expires: 3;refresher=uac\r\n",
            None,
        );
        client.send(update);
        let (reply, others) = client.recv_until(REPLY, |m| {
            m.method() == Some("BYE")
                || (m.is_final() && m.cseq() == Some((cseq, "UPDATE".to_string())))
        });
        let reply = reply.unwrap_or_else(|| panic!("no answer to UPDATE {round}: {others:#?}"));
        assert_eq!(
            reply.status(),
            Some(200),
            "UPDATE refresh {round} (a BYE here means the session was not kept): {reply:?}"
        );
        last_refresh = reply.at;
    }
    let (bye, others) = wait_for_bye(&client, Duration::from_secs(6));
    let bye = bye.unwrap_or_else(|| {
        panic!(
            "no BYE within 6 s after the refreshes stopped; received: {others:#?}\n{}",
            engine.log_tail(30)
        )
    });
    let after = bye.at - last_refresh;
    println!("BYE {after:?} after the last refresh (expected ≈ 2 s)");
    assert!(
        (Duration::from_millis(1500)..=Duration::from_millis(4000)).contains(&after),
        "BYE {after:?} after the last refresh; expected ≈ 2 s"
    );
    engine.assert_no_panic();
}

// ----- 3. requests inside the call ---------------------------------------------------------

#[test]
fn info_and_options_in_the_call_get_200_wrong_tag_481_old_cseq_500() {
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let (mut leg, _) = establish(&client, &engine, "", Some((SDP, common::sip::OFFER_SDP)));
    let tag = leg.to_tag.clone().expect("To tag");

    let (info, info_cseq) = leg.in_dialog(
        "INFO",
        "",
        Some(("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")),
    );
    client.send(info);
    let reply = expect_final_for(&client, info_cseq, "INFO", &engine);
    assert_eq!(reply.status(), Some(200), "INFO: {reply:?}");
    assert_eq!(
        reply.to_tag().as_deref(),
        Some(tag.as_str()),
        "INFO: {reply:?}"
    );

    let (options, options_cseq) = leg.in_dialog("OPTIONS", "Accept: application/sdp\r\n", None);
    client.send(options);
    let reply = expect_final_for(&client, options_cseq, "OPTIONS", &engine);
    assert_eq!(reply.status(), Some(200), "in-dialog OPTIONS: {reply:?}");
    assert_eq!(
        reply.to_tag().as_deref(),
        Some(tag.as_str()),
        "OPTIONS: {reply:?}"
    );

    // Same Call-ID and From tag, but a To tag that is not the engine's: no such dialog.
    let (info, wrong_cseq) = leg.in_dialog("INFO", "", None);
    let wrong = info.replace(&format!(";tag={tag}"), ";tag=not-the-engines-tag");
    assert_ne!(wrong, info, "the To tag was not replaced");
    client.send(wrong);
    let reply = expect_final_for(&client, wrong_cseq, "INFO", &engine);
    assert_eq!(
        reply.status(),
        Some(481),
        "INFO with a wrong To tag: {reply:?}"
    );

    // A new transaction with a CSeq below the last one seen (OPTIONS had `options_cseq`).
    let old = leg.request_with("INFO", &branch(), options_cseq - 1, "", None);
    client.send(old);
    let reply = expect_final_for(&client, options_cseq - 1, "INFO", &engine);
    assert_eq!(
        reply.status(),
        Some(500),
        "INFO with a lower CSeq: {reply:?}"
    );

    // The call is still up.
    hang_up(&client, &engine, &mut leg);
    engine.assert_no_panic();
}

// ----- 4. BYE retransmissions after the call ended -----------------------------------------

#[test]
fn retransmitted_bye_after_the_call_ended_gets_the_same_200() {
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let (mut leg, _) = establish(&client, &engine, "", Some((SDP, common::sip::OFFER_SDP)));
    let (bye, cseq) = leg.in_dialog("BYE", "", None);
    client.send(&bye);
    let first = expect_final_for(&client, cseq, "BYE", &engine);
    assert_eq!(first.status(), Some(200), "BYE: {first:?}");
    // A UAC that lost the 200 retransmits after T1, 2·T1 … (the engine remembers for 64·T1).
    for wait in [Duration::from_millis(500), Duration::from_millis(1500)] {
        std::thread::sleep(wait);
        client.send(&bye);
        let again = expect_final_for(&client, cseq, "BYE", &engine);
        assert_eq!(
            again.raw, first.raw,
            "retransmitted BYE must get the same 200 again;\nfirst: {first:?}\nagain: {again:?}"
        );
    }
    engine.assert_no_panic();
}

#[test]
fn new_bye_after_the_call_ended_gets_481() {
    // A BYE that is not a retransmission (new branch, higher CSeq) for a dialog that no longer
    // exists gets 481 (RFC 3261 §12.2.2), and any response must match its transaction.
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let (mut leg, _) = establish(&client, &engine, "", Some((SDP, common::sip::OFFER_SDP)));
    hang_up(&client, &engine, &mut leg);
    std::thread::sleep(Duration::from_millis(200));
    let (bye, cseq) = leg.in_dialog("BYE", "", None);
    let new_branch = SipMessage::new(bye.clone().into_bytes(), Instant::now())
        .via_values()
        .first()
        .and_then(|v| param(v, "branch"))
        .expect("branch");
    client.send(&bye);
    let (reply, others) = client.recv_until(REPLY, SipMessage::is_final);
    let reply = reply.unwrap_or_else(|| panic!("no answer to the new BYE; got {others:#?}"));
    let reply_branch = reply
        .via_values()
        .first()
        .and_then(|v| param(v, "branch"))
        .unwrap_or_default();
    assert!(
        reply.cseq() == Some((cseq, "BYE".to_string())) && reply_branch == new_branch,
        "the response does not belong to the new BYE (CSeq {cseq}, branch {new_branch}): \
         {reply:?}"
    );
    assert_eq!(
        reply.status(),
        Some(481),
        "new BYE for an ended call: {reply:?}"
    );
    engine.assert_no_panic();
}

// ----- 5. offers the engine refuses, and the offerless INVITE ------------------------------

#[test]
fn offer_without_a_common_codec_gets_488() {
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, "490");
    let g729 = "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 5000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    client.send(leg.invite_with("", Some((SDP, g729))));
    let reply = expect_final_for(&client, 1, "INVITE", &engine);
    assert_eq!(reply.status(), Some(488), "G.729-only offer: {reply:?}");
    leg.take_answer(&reply);
    client.send(leg.ack_non_2xx());
    engine.assert_no_panic();
}

#[test]
fn non_sdp_body_gets_415_with_accept() {
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, "490");
    client.send(leg.invite_with("", Some(("text/plain", "hello, is this the hotline?\r\n"))));
    let reply = expect_final_for(&client, 1, "INVITE", &engine);
    assert_eq!(reply.status(), Some(415), "text/plain INVITE: {reply:?}");
    let accept = reply.header("accept").unwrap_or_default();
    assert!(
        accept.contains("application/sdp"),
        "415 must carry Accept: application/sdp: {reply:?}"
    );
    leg.take_answer(&reply);
    client.send(leg.ack_non_2xx());
    engine.assert_no_panic();
}

#[test]
fn offerless_invite_gets_an_offer_and_the_answer_comes_in_the_ack() {
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, "490");
    client.send(leg.invite_with("", None));
    let answer = expect_final_for(&client, 1, "INVITE", &engine);
    assert_eq!(answer.status(), Some(200), "offerless INVITE: {answer:?}");
    assert_sdp_response(&answer, "offer in the 200");
    let sdp = answer.body();
    let (port, formats) = sdp_audio(sdp);
    assert_ne!(port, 0, "offer with port 0:\n{sdp}");
    for (pt, name) in [("0", "PCMU/8000"), ("8", "PCMA/8000")] {
        assert!(
            formats.contains(&pt.to_string()),
            "offer lacks {pt}:\n{sdp}"
        );
        assert!(
            sdp.contains(&format!("a=rtpmap:{pt} {name}")),
            "offer lacks rtpmap {pt} {name}:\n{sdp}"
        );
    }
    let te = sdp
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("a=rtpmap:")?;
            let (pt, enc) = rest.split_once(' ')?;
            enc.trim()
                .starts_with("telephone-event/8000")
                .then(|| pt.to_string())
        })
        .unwrap_or_else(|| panic!("offer lacks telephone-event:\n{sdp}"));
    assert!(
        formats.contains(&te),
        "telephone-event {te} not on the m= line:\n{sdp}"
    );
    leg.take_answer(&answer);
    let sdp_answer = "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                      t=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    client.send(leg.ack_2xx_for(leg.invite_cseq, Some((SDP, sdp_answer))));
    // The ACK ended the 2xx retransmissions and the call is up: BYE gets 200.
    let late: Vec<SipMessage> = client
        .recv_all(Duration::from_millis(1200))
        .into_iter()
        .filter(|m| m.status() == Some(200) && m.cseq().is_some_and(|c| c.1 == "INVITE"))
        .collect();
    assert!(
        late.is_empty(),
        "200 retransmitted after the ACK: {late:#?}"
    );
    hang_up(&client, &engine, &mut leg);
    engine.assert_no_panic();
}

#[test]
fn offer_mapping_pcmu_to_a_static_payload_type_is_answered_without_panic() {
    // An odd but well-formed offer: PCMU under payload type 5 (statically DVI4). The engine may
    // accept it or refuse it with 488, but must give a final answer and not panic.
    let engine = Engine::start(&[]);
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, "490");
    let odd = "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 5000 RTP/AVP 5\r\na=rtpmap:5 PCMU/8000\r\n";
    client.send(leg.invite_with("", Some((SDP, odd))));
    let (reply, others) = client.recv_until(REPLY, SipMessage::is_final);
    // Shows the engine's panic message and location, if any.
    engine.assert_no_panic();
    let reply = reply.unwrap_or_else(|| panic!("no final answer; received {others:#?}"));
    assert!(
        matches!(reply.status(), Some(200) | Some(488)),
        "expected 200 or 488: {reply:?}"
    );
    leg.take_answer(&reply);
    if reply.status() == Some(200) {
        client.send(leg.ack_2xx());
        hang_up(&client, &engine, &mut leg);
    } else {
        client.send(leg.ack_non_2xx());
    }
}

// ----- 6. CANCEL that matches no INVITE ----------------------------------------------------

#[test]
fn cancel_for_an_unknown_branch_gets_481_and_the_call_is_still_answered() {
    let engine = Engine::start(&[("ZENTRALE_SIP__ANSWER_DELAY_MS", "2000")]);
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, "490");
    let sent = Instant::now();
    client.send(leg.invite_with("", Some((SDP, common::sip::OFFER_SDP))));
    let (ringing, others) = client.recv_until(REPLY, |m| m.status() == Some(180));
    assert!(
        ringing.is_some(),
        "no 180 while ringing; received {others:#?}"
    );
    let cancel = leg.cancel().replace(&leg.invite_branch, &branch());
    assert!(!cancel.contains(&leg.invite_branch), "branch not replaced");
    client.send(cancel);
    let reply = expect_final_for(&client, 1, "CANCEL", &engine);
    assert_eq!(
        reply.status(),
        Some(481),
        "CANCEL for an unknown branch: {reply:?}"
    );
    let answer = expect_final_for(&client, 1, "INVITE", &engine);
    assert_eq!(
        answer.status(),
        Some(200),
        "the call must still be answered: {answer:?}"
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(1800),
        "answered before the 2 s answer delay"
    );
    leg.take_answer(&answer);
    client.send(leg.ack_2xx());
    hang_up(&client, &engine, &mut leg);
    engine.assert_no_panic();
}

// ----- 7. the engine's own BYE --------------------------------------------------------------

#[test]
fn engine_bye_after_missing_ack_is_well_formed_and_stops_on_200() {
    // T1 = 50 ms: the engine gives up on the ACK after 64·T1 = 3.2 s and sends BYE.
    let engine = Engine::start(&[("ZENTRALE_SIP__T1_MS", "50")]);
    let client = SipClient::new(engine.sip_addr());
    let leg = CallLeg::new(&client, "490");
    client.send(leg.invite());
    let (bye, others) = client.recv_until(Duration::from_secs(8), |m| m.method() == Some("BYE"));
    let bye = bye.unwrap_or_else(|| {
        panic!(
            "no BYE within 8 s for an unacknowledged 200 (64·T1 = 3.2 s); received {} other \
             messages\n{}",
            others.len(),
            engine.log_tail(30)
        )
    });
    let ok = others
        .iter()
        .find(|m| m.status() == Some(200))
        .unwrap_or_else(|| panic!("BYE without a 200 before it: {others:#?}"));
    let engine_tag = ok.to_tag().expect("200 with a To tag");

    let expected_uri = format!("sip:test@{}", client.local);
    assert_eq!(
        bye.start_line(),
        format!("BYE {expected_uri} SIP/2.0"),
        "Request-URI must be the caller's Contact URI: {bye:?}"
    );
    let from = bye.header("from").unwrap_or_default();
    assert_eq!(
        param(&from, "tag").as_deref(),
        Some(engine_tag.as_str()),
        "From must carry the engine's tag: {bye:?}"
    );
    assert!(
        from.contains(&format!("sip:490@{}", engine.sip_addr())),
        "From must be the engine's side (the INVITE's To): {bye:?}"
    );
    let to = bye.header("to").unwrap_or_default();
    assert_eq!(
        param(&to, "tag").as_deref(),
        Some(leg.from_tag.as_str()),
        "To must carry the caller's tag: {bye:?}"
    );
    assert!(
        to.contains(&format!("sip:0364155501@{}", client.local)),
        "To must be the caller (the INVITE's From): {bye:?}"
    );
    assert_eq!(
        bye.call_id().as_deref(),
        Some(leg.call_id.as_str()),
        "{bye:?}"
    );
    assert_eq!(bye.cseq(), Some((1, "BYE".to_string())), "{bye:?}");
    let via = bye.via_values();
    assert_eq!(via.len(), 1, "one Via: {bye:?}");
    let via_branch = param(&via[0], "branch").unwrap_or_default();
    assert!(
        via_branch.starts_with("z9hG4bK") && via_branch.len() > 7,
        "Via branch must start with z9hG4bK: {bye:?}"
    );
    let max_forwards = bye.header("max-forwards").unwrap_or_default();
    assert!(
        max_forwards.trim().parse::<u8>().is_ok(),
        "BYE needs Max-Forwards: {bye:?}"
    );

    client.send(response_to(&bye, 200, "OK"));
    let answered = Instant::now();
    // A BYE retransmission already on its way when our 200 left (first one after T1 = 50 ms)
    // is fine; one sent later means the engine ignored the 200.
    let late: Vec<SipMessage> = client
        .recv_all(Duration::from_millis(1000))
        .into_iter()
        .filter(|m| m.method() == Some("BYE") || m.status() == Some(200))
        .filter(|m| m.at > answered + Duration::from_millis(100))
        .collect();
    assert!(
        late.is_empty(),
        "BYE (or 200) retransmitted after the 200 to the BYE: {late:#?}\n{}",
        engine.log_tail(20)
    );
    engine.assert_no_panic();
}
