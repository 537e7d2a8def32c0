//! Graceful shutdown: on SIGTERM/SIGINT the engine refuses new calls with 503, gives running
//! calls `shutdown.drain_secs`, then ends each remaining call with a BYE and exits 0.

mod common;

use std::time::Duration;

use common::engine::Engine;
use common::sip::{CallLeg, SipClient};
use common::sipp::Sipp;

const DRAIN_SECS: u64 = 2;

#[test]
fn sigterm_drains_then_hangs_up_running_calls_and_exits_zero() {
    let mut engine = Engine::start(&[("ZENTRALE_SHUTDOWN__DRAIN_SECS", "2")]);
    let calls = 20;
    let sipp = Sipp::new("uac_wait_bye.xml", engine.sip_addr())
        .calls(calls)
        .limit(calls)
        .rate(20.0)
        .timeout(Duration::from_secs(40))
        .spawn();

    // Established = SIPp has sent the ACK for all 20 calls. SIPp's own per-message counters
    // (rewritten every second) tell us, independent of the engine's log wording.
    let acked = sipp.wait_for_count("_ACK_Sent", u64::from(calls), Duration::from_secs(15));
    assert_eq!(
        acked,
        u64::from(calls),
        "only {acked} of {calls} calls established before SIGTERM\n{}",
        engine.log_tail(40)
    );

    engine.sigterm();

    // During the drain a new call is refused with 503. The window is the whole drain (2 s,
    // the 20 calls are still up), so asking 200 ms after the signal is not racy.
    std::thread::sleep(Duration::from_millis(200));
    let client = SipClient::new(engine.sip_addr());
    let late = CallLeg::new(&client, "490");
    client.send(late.invite());
    let refused = client.expect_final(Duration::from_secs(1), "INVITE during shutdown");
    assert_eq!(
        refused.status(),
        Some(503),
        "INVITE during the drain: {refused:?}"
    );
    client.send(late.ack_non_2xx());

    let status = engine.wait_exit(Duration::from_secs(DRAIN_SECS + 5));
    let result = sipp.wait();
    match status {
        Some(status) => assert!(
            status.success(),
            "engine exited with {status}\n{}",
            engine.log_tail(40)
        ),
        None => panic!(
            "engine still running {} s after SIGTERM (drain {DRAIN_SECS} s)\n{}",
            DRAIN_SECS + 5,
            engine.log_tail(40)
        ),
    }
    // Each call succeeds only if the engine's BYE arrived and was answered.
    result.assert_all_successful(u64::from(calls));
    engine.assert_no_panic();
}

#[test]
fn sigterm_without_calls_exits_zero_promptly() {
    let mut engine = Engine::start(&[("ZENTRALE_SHUTDOWN__DRAIN_SECS", "30")]);
    engine.sigterm();
    // No call to drain: the engine must not sit out the 30 s drain.
    let status = engine.wait_exit(Duration::from_secs(5));
    let status = status.unwrap_or_else(|| {
        panic!(
            "idle engine still running 5 s after SIGTERM\n{}",
            engine.log_tail(30)
        )
    });
    assert!(status.success(), "exit status {status}");
    engine.assert_no_panic();
}

#[test]
fn sigint_without_calls_exits_zero_promptly() {
    let mut engine = Engine::start(&[("ZENTRALE_SHUTDOWN__DRAIN_SECS", "30")]);
    engine.sigint();
    let status = engine.wait_exit(Duration::from_secs(5));
    let status = status.unwrap_or_else(|| {
        panic!(
            "idle engine still running 5 s after SIGINT\n{}",
            engine.log_tail(30)
        )
    });
    assert!(status.success(), "exit status {status}");
    engine.assert_no_panic();
}
