//! RFC 3261 timers seen from the wire: a 2xx to an INVITE that is never ACKed is retransmitted
//! at T1, 2·T1, 4·T1 … capped at T2 (sec. 13.3.1.4), and after 64·T1 without ACK the engine
//! gives up and ends the call with a BYE.
//!
//! The tolerances check the engine's schedule, not the machine's speed: ±150 ms on gaps of
//! 0.5–4 s is wide enough for a loaded 2-core box and far too narrow to pass a wrong schedule.

mod common;

use std::time::{Duration, Instant};

use common::engine::Engine;
use common::sip::{CallLeg, SipClient, SipMessage, response_to};

/// The 200 OK arrival times for an INVITE we never ACK, and the BYE that ends it.
struct Unacked {
    oks: Vec<Instant>,
    bye: Option<SipMessage>,
    client: SipClient,
    others: Vec<SipMessage>,
}

fn invite_without_ack(engine: &Engine, wait: Duration) -> Unacked {
    let client = SipClient::new(engine.sip_addr());
    let leg = CallLeg::new(&client, "490");
    client.send(leg.invite());
    let deadline = Instant::now() + wait;
    let mut oks = Vec::new();
    let mut others = Vec::new();
    let mut bye = None;
    while let Some(msg) = client.recv(deadline.saturating_duration_since(Instant::now())) {
        match (msg.status(), msg.method()) {
            (Some(200), _) if msg.cseq().is_some_and(|c| c.1 == "INVITE") => oks.push(msg.at),
            (Some(100), _) => {}
            (None, Some("BYE")) => {
                bye = Some(msg);
                break;
            }
            _ => others.push(msg),
        }
    }
    Unacked {
        oks,
        bye,
        client,
        others,
    }
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).expect("fits")
}

/// Checks each gap against the schedule T1, 2·T1, 4·T1 … capped at T2.
fn check_schedule(gaps: &[Duration], t1_ms: i64, t2_ms: i64, tolerance_ms: i64) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expected = t1_ms;
    for (i, gap) in gaps.iter().enumerate() {
        let got = ms(*gap);
        if (got - expected).abs() > tolerance_ms {
            problems.push(format!(
                "gap {} before retransmission {}: expected {expected} ms ± {tolerance_ms}, got {got} ms",
                i + 1,
                i + 1
            ));
        }
        expected = (expected * 2).min(t2_ms);
    }
    problems
}

fn answer_bye(run: &Unacked) {
    if let Some(bye) = &run.bye {
        run.client.send(response_to(bye, 200, "OK"));
    }
}

fn assert_timers(engine: &Engine, run: &Unacked, t1_ms: i64, t2_ms: i64, tolerance_ms: i64) {
    let first = *run.oks.first().unwrap_or_else(|| {
        panic!(
            "no 200 OK at all; other messages: {:#?}\n{}",
            run.others,
            engine.log_tail(40)
        )
    });
    let gaps = gaps(&run.oks);
    let gaps_ms: Vec<i64> = gaps.iter().map(|g| ms(*g)).collect();
    let mut problems = check_schedule(&gaps, t1_ms, t2_ms, tolerance_ms);
    println!(
        "T1 = {t1_ms} ms, T2 = {t2_ms} ms: {} copies of the 200, gaps {gaps_ms:?} ms, BYE {:?} ms after the first",
        run.oks.len(),
        run.bye.as_ref().map(|b| ms(b.at - first))
    );

    // 64·T1 after the first 200 (Timer H / the 2xx give-up time) the engine sends BYE.
    let timer_h = 64 * t1_ms;
    match &run.bye {
        None => problems.push(format!(
            "no BYE within the observation window (expected ≈ {timer_h} ms after the first 200)"
        )),
        Some(bye) => {
            let after = ms(bye.at - first);
            let (low, high) = (timer_h - timer_h / 16, timer_h + timer_h / 4);
            if !(low..=high).contains(&after) {
                problems.push(format!(
                    "BYE {after} ms after the first 200, expected {low}–{high} ms (64·T1 = {timer_h})"
                ));
            }
            // Retransmissions must cover the whole wait: the last 200 is less than one T2
            // interval before the BYE.
            let last = ms(bye.at - *run.oks.last().expect("at least one 200"));
            if last > t2_ms + tolerance_ms {
                problems.push(format!(
                    "retransmissions stopped {last} ms before the BYE (more than T2 = {t2_ms} ms)"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "2xx retransmission schedule (T1 = {t1_ms} ms, T2 = {t2_ms} ms) is off:\n  {}\n\
         gaps between the {} copies of the 200: {gaps_ms:?} ms\n{}",
        problems.join("\n  "),
        run.oks.len(),
        engine.log_tail(40)
    );
}

/// After the BYE is answered no further 200 for the INVITE may come.
fn assert_quiet_after_bye(engine: &Engine, run: &Unacked) {
    let late: Vec<SipMessage> = run
        .client
        .recv_all(Duration::from_millis(1500))
        .into_iter()
        .filter(|m| m.status() == Some(200) && m.cseq().is_some_and(|c| c.1 == "INVITE"))
        .collect();
    assert!(
        late.is_empty(),
        "200 OK still retransmitted after the BYE: {} copies\n{}",
        late.len(),
        engine.log_tail(30)
    );
}

#[test]
fn unacked_200_is_retransmitted_at_t1_doubling_to_t2_then_bye_after_64_t1() {
    // Defaults: T1 = 500 ms, T2 = 4 s → gaps 0.5, 1, 2, 4, 4, … s; BYE after 32 s.
    let engine = Engine::start(&[]);
    let run = invite_without_ack(&engine, Duration::from_secs(40));
    answer_bye(&run);
    assert_timers(&engine, &run, 500, 4000, 150);
    assert_quiet_after_bye(&engine, &run);
    engine.assert_no_panic();
}

#[test]
fn retransmission_schedule_follows_configured_t1_and_t2() {
    // T1 = 100 ms, T2 = 400 ms → gaps 0.1, 0.2, 0.4, 0.4, … s; BYE after 6.4 s.
    let engine = Engine::start(&[
        ("ZENTRALE_SIP__T1_MS", "100"),
        ("ZENTRALE_SIP__T2_MS", "400"),
    ]);
    let run = invite_without_ack(&engine, Duration::from_secs(10));
    answer_bye(&run);
    assert_timers(&engine, &run, 100, 400, 60);
    assert_quiet_after_bye(&engine, &run);
    engine.assert_no_panic();
}
