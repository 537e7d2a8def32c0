//! The overload guard end to end, with real lag: the test freezes the engine process (SIGSTOP)
//! for a second at a time and lets it run for a moment in between, as a machine whose CPU is
//! taken away does. Every time the engine runs again, its runtime's probe tick fired a second
//! late; that is overload the detector must see (no test knob, no faked clock). While frozen,
//! new INVITEs must get `503` with `Retry-After`, while OPTIONS and the running call's BYE are
//! answered as usual; once the freezing stops, calls are taken again. With
//! `sip.overload_lag_ms = 0` the same freezing changes nothing.

#![cfg(target_os = "linux")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::engine::{Engine, SIGCONT, SIGSTOP, signal_pid};
use common::http::{metrics, sample};
use common::sip::{CallLeg, SipClient};

/// Long enough to answer through a frozen second or two.
const REPLY: Duration = Duration::from_secs(6);
const SETTLE: Duration = Duration::from_secs(15);
/// One freeze: 20 times the threshold below, so the smoothed lag (weight 1/8 per sample) is
/// over it from the first sample after it, whatever came before.
const FROZEN: Duration = Duration::from_millis(1000);
/// Running time between freezes: the smoothed lag falls under half the threshold within
/// ~0.2 s, but leaving overload takes a calm second, so the engine stays overloaded.
const RUNNING: Duration = Duration::from_millis(150);

/// Freezes the engine for [`FROZEN`], lets it run for [`RUNNING`], again and again, until it is
/// dropped; it always leaves the engine running. Drop it before the [`Engine`] (declare it
/// after), so its pid is never signalled once reaped.
struct Freezer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Freezer {
    fn start(engine: &Engine) -> Freezer {
        let pid = engine.pid();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                signal_pid(pid, SIGSTOP);
                std::thread::sleep(FROZEN);
                signal_pid(pid, SIGCONT);
                std::thread::sleep(RUNNING);
            }
        });
        Freezer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

/// Scrapes `/metrics` until `series` has `want`; the last scrape.
fn wait_for_metric(engine: &Engine, series: &str, want: f64) -> String {
    let started = Instant::now();
    loop {
        let text = metrics(engine);
        if sample(&text, series) == Some(want) {
            return text;
        }
        assert!(
            started.elapsed() < SETTLE,
            "{series} did not become {want} within {SETTLE:?}:\n{text}\n{}",
            engine.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An INVITE to the hotline and its final answer (ACKed).
fn call(client: &SipClient, leg: &mut CallLeg, what: &str) -> common::sip::SipMessage {
    client.send(leg.invite());
    let answer = client.expect_final(REPLY, what);
    if answer.status() == Some(200) {
        leg.take_answer(&answer);
        client.send(leg.ack_2xx());
    } else {
        client.send(leg.ack_non_2xx());
    }
    answer
}

#[test]
fn a_frozen_engine_sheds_new_calls_with_503_and_finishes_the_running_ones() {
    let engine = Engine::start(&[
        ("ZENTRALE_SIP__OVERLOAD_LAG_MS", "50"),
        ("ZENTRALE_SIP__RETRY_AFTER_SECS", "7"),
    ]);
    let text = metrics(&engine);
    assert_eq!(value(&text, "zentrale_overloaded"), 0.0, "{text}");

    // A call that is up before the trouble starts.
    let running_client = SipClient::new(engine.sip_addr());
    let mut running = CallLeg::new(&running_client, "490");
    let answer = call(&running_client, &mut running, "INVITE before the overload");
    assert_eq!(answer.status(), Some(200), "{answer:?}");

    let freezer = Freezer::start(&engine);
    wait_for_metric(&engine, "zentrale_overloaded", 1.0);

    // A new caller is refused, and told when to try again.
    let client = SipClient::new(engine.sip_addr());
    let mut refused = CallLeg::new(&client, "490");
    let answer = call(&client, &mut refused, "INVITE while overloaded");
    assert_eq!(answer.status(), Some(503), "{answer:?}");
    assert_eq!(
        answer.start_line(),
        "SIP/2.0 503 Service Unavailable (overloaded)"
    );
    assert_eq!(answer.header("Retry-After").as_deref(), Some("7"));

    // Everything else is answered as usual: OPTIONS, and the running call's BYE.
    let options = client
        .options("490", REPLY)
        .expect("OPTIONS answered while overloaded");
    assert_eq!(options.status(), Some(200), "{options:?}");
    running_client.send(running.bye());
    let bye = running_client.expect_final(REPLY, "BYE of the running call");
    assert_eq!(bye.status(), Some(200), "{bye:?}");

    // The freezing stops: after a calm second, new calls are taken again.
    drop(freezer);
    wait_for_metric(&engine, "zentrale_overloaded", 0.0);
    let mut later = CallLeg::new(&client, "490");
    let answer = call(&client, &mut later, "INVITE after the overload");
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    client.send(later.bye());
    let bye = client.expect_final(REPLY, "BYE after the overload");
    assert_eq!(bye.status(), Some(200), "{bye:?}");

    let text = metrics(&engine);
    assert_eq!(value(&text, "zentrale_calls_shed_total"), 1.0, "{text}");
    assert_eq!(
        value(&text, "zentrale_calls_rejected_overload_total"),
        0.0,
        "the call limit was never reached: {text}"
    );
    // One WARN line when it began and one INFO line when it ended, not one per refused call.
    let log = engine.log();
    let began: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("overloaded: the engine runs behind its work"))
        .collect();
    assert!(
        !began.is_empty() && began.iter().all(|l| l.contains("WARN")),
        "{}",
        engine.log_tail(40)
    );
    let ended: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("overload over: new calls are taken again"))
        .collect();
    assert!(
        !ended.is_empty() && ended.iter().all(|l| l.contains("INFO")),
        "{}",
        engine.log_tail(40)
    );
    assert_eq!(began.len(), ended.len(), "{}", engine.log_tail(40));
    assert!(
        ended.last().is_some_and(|l| l.contains("shed=1")),
        "{}",
        engine.log_tail(40)
    );
    engine.assert_no_panic();
}

#[test]
fn with_the_guard_off_a_frozen_engine_takes_every_call() {
    let engine = Engine::start(&[("ZENTRALE_SIP__OVERLOAD_LAG_MS", "0")]);
    let client = SipClient::new(engine.sip_addr());
    {
        let _freezer = Freezer::start(&engine);
        // Through at least one whole freeze.
        std::thread::sleep(FROZEN + RUNNING);
        let mut leg = CallLeg::new(&client, "490");
        let answer = call(&client, &mut leg, "INVITE with the guard off");
        assert_eq!(answer.status(), Some(200), "{answer:?}");
        client.send(leg.bye());
        let bye = client.expect_final(REPLY, "BYE");
        assert_eq!(bye.status(), Some(200), "{bye:?}");
    }
    let text = metrics(&engine);
    assert_eq!(value(&text, "zentrale_overloaded"), 0.0, "{text}");
    assert_eq!(value(&text, "zentrale_calls_shed_total"), 0.0, "{text}");
    assert!(
        !engine.log().contains("overloaded:"),
        "{}",
        engine.log_tail(40)
    );
    engine.assert_no_panic();
}
