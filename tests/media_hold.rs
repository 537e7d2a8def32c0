//! A caller who puts the hotline on hold (re-INVITE with `a=sendonly`, RFC 3264 §8.4) gets no
//! more RTP from us until they take the call back (`a=sendrecv`); then the stream resumes.

mod common;

use std::time::Duration;

use common::engine::Engine;
use common::rtp::{RtpPeer, answered_call, hang_up};

const SDP: &str = "application/sdp";

/// Sends a re-INVITE with `peer`'s offer in `direction`, expects 200 and ACKs it.
fn reinvite(
    client: &common::sip::SipClient,
    leg: &mut common::sip::CallLeg,
    offer: &str,
    direction: &str,
) {
    let offer = format!("{offer}a={direction}\r\n");
    let (request, cseq) = leg.in_dialog("INVITE", "", Some((SDP, &offer)));
    client.send(request);
    let (answer, others) = client.recv_until(Duration::from_secs(5), |m| {
        m.cseq()
            .is_some_and(|(n, method)| n == cseq && method == "INVITE")
            && m.is_final()
    });
    let answer =
        answer.unwrap_or_else(|| panic!("no answer to the {direction} re-INVITE: {others:#?}"));
    assert_eq!(
        answer.status(),
        Some(200),
        "{direction} re-INVITE: {answer:?}"
    );
    client.send(leg.ack_2xx_for(cseq, None));
}

#[test]
fn hold_stops_our_rtp_and_unhold_resumes_it() {
    let engine = Engine::start(&[]);
    let peer = RtpPeer::new();
    let (client, mut leg, _engine_rtp) = answered_call(&engine, &peer, &[0]);
    assert!(
        peer.wait_for_packets(10, Duration::from_secs(3)) >= 10,
        "the menu's RTP arrives before the hold"
    );

    let offer = peer.sdp_offer(&[0]);
    reinvite(&client, &mut leg, &offer, "sendonly");
    // Packets already in flight may still land; then the stream must stay silent.
    std::thread::sleep(Duration::from_millis(200));
    let before = peer.count();
    std::thread::sleep(Duration::from_millis(600));
    let during_hold = peer.count() - before;
    assert!(
        during_hold == 0,
        "{during_hold} RTP packets arrived during the hold"
    );

    reinvite(&client, &mut leg, &offer, "sendrecv");
    let resumed_from = peer.count();
    let total = peer.wait_for_packets(resumed_from + 10, Duration::from_secs(3));
    assert!(
        total >= resumed_from + 10,
        "RTP resumes after unhold (got {} new packets)",
        total - resumed_from
    );
    hang_up(&client, &mut leg);
    engine.assert_no_panic();
}

/// Offerless INVITE (RFC 3264 §4): our 200 carries the offer (PCMU first), the caller answers
/// in the ACK choosing PCMA — from then on our RTP must be PCMA, sent to the answer's address.
#[test]
fn offerless_invite_uses_the_codec_of_the_answer_in_the_ack() {
    let engine = Engine::start(&[]);
    let peer = RtpPeer::new();
    let client = common::sip::SipClient::new(engine.sip_addr());
    let mut leg = common::sip::CallLeg::new(&client, "490");
    client.send(leg.invite_with("", None));
    let ok = client.expect_final(Duration::from_secs(5), "offerless INVITE");
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert!(
        ok.body().contains("RTP/AVP 0 8"),
        "our offer: {}",
        ok.body()
    );
    leg.take_answer(&ok);
    let answer = peer.sdp_offer(&[8]);
    client.send(leg.ack_2xx_for(leg.invite_cseq, Some((SDP, &answer))));
    assert!(
        peer.wait_for_packets(10, Duration::from_secs(3)) >= 10,
        "RTP arrives at the address of the answer in the ACK"
    );
    let types: Vec<u8> = peer.packets().iter().skip(2).map(|p| p.pt).collect();
    assert!(
        types.iter().all(|&pt| pt == 8),
        "payload types after the ACK's answer: {types:?}"
    );
    hang_up(&client, &mut leg);
    engine.assert_no_panic();
}
