//! The overload guard: notices when the engine falls behind its work and makes new calls wait
//! outside (`503` with `Retry-After`) instead of letting them in to make everyone late.
//!
//! `sip.max_calls` bounds how many calls may be open; it does not bound how much work arrives per
//! second. Beyond what the cores can process, every message waits longer in the runtime's queues,
//! SIP retransmissions (every T1 = 500 ms at first) add more work, and callers pile up in the ACD
//! queue: the calls that succeed per second (goodput) collapse instead of levelling off. The guard
//! watches how late the engine is and, while it is too late, takes only the share of new calls
//! the engine can finish (refusing the rest), so the calls already in get the CPU they need.
//!
//! Two parts:
//!
//! - [`Detector`] — pure logic, with the time as an argument: fed lag samples, it decides
//!   `overloaded` with hysteresis and, while overloaded, the share of new calls taken (additive
//!   increase, multiplicative decrease), and publishes both in an [`OverloadFlag`]: two relaxed
//!   atomics per INVITE for the endpoint.
//! - [`probe`] — the task that measures: every [`PROBE_INTERVAL`] it notes how late its tick of
//!   the tokio runtime fired (a task that is ready but waits for a worker thread: all tasks wait
//!   about as long) and how long the ACD's commands waited in its channel since the last tick
//!   (the ACD is one task: it can fall behind while the runtime still has room), and feeds the
//!   larger of the two to the detector. It logs at WARN on entering and at INFO on leaving
//!   overload, never per refused call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::shutdown::Shutdown;
use crate::sip::endpoint::Endpoint;

/// How often the probe measures. Ten times the runtime's timer resolution (1 ms), so ordinary
/// timer jitter is small against a tick, and 2.5 times finer than the default threshold.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// How long the smoothed lag must stay under half the threshold before new calls are taken
/// again: long enough that the state does not flap with the load it lets back in (about a
/// hundred probe ticks), short against the `Retry-After` callers are told (30 s by default).
pub const CALM_BEFORE_LEAVING: Duration = Duration::from_secs(1);

/// The weight of a new sample in the smoothed lag: 1/8, as in TCP's smoothed round-trip time
/// (RFC 6298). Sustained lag of twice the threshold trips the guard after 6 samples; a single
/// stall trips it alone only when it is more than 8 times the threshold (400 ms at the default),
/// which is an outage of its own (SIP retransmissions start at 500 ms).
const GAIN: f64 = 0.125;

/// While overloaded, the share of new calls taken is lowered by this factor for each
/// threshold's worth of lag at every probe tick whose own lag (not the smoothed one, which
/// trails the load by several ticks) is over the threshold, and raised by [`ADMIT_INCREASE`]
/// at every other tick. Chosen with a model of an
/// engine that falls behind by what it takes beyond its capacity (the unit test
/// `at_twice_the_capacity_it_keeps_taking_about_what_the_engine_can_finish`): at 1.2 to 5 times
/// its capacity offered, it kept 93–97 % of the capacity busy with a p99 lag near the
/// threshold; deciding on the smoothed lag oscillated (70–80 %).
const ADMIT_DECREASE: f64 = 0.9;
/// See [`ADMIT_DECREASE`]: from none to all in 1 s of ticks on time.
const ADMIT_INCREASE: f64 = 0.01;
/// [`OverloadFlag`]'s unit of the admitted share: 1/1024.
const ADMIT_ONE: u32 = 1024;

/// Whether the engine is overloaded, and which share of new calls it takes meanwhile: written
/// by the [`Detector`], read for every new INVITE (relaxed atomics).
///
/// Refusing every new call until the lag has been calm for a second made goodput swing between
/// nothing and a fresh overload (measured at twice the ceiling: 37–61 % of it). While
/// overloaded, the detector instead adjusts the share of calls taken, additive increase and
/// multiplicative decrease (as TCP's congestion window), so the engine keeps taking about as
/// many calls as it can finish. Which calls are taken is decided by a credit, not by chance:
/// a share of 1/4 takes exactly every fourth INVITE.
#[derive(Debug, Default)]
pub struct OverloadFlag {
    overloaded: AtomicBool,
    /// The share of new calls taken while overloaded, in 1/[`ADMIT_ONE`].
    share: AtomicU32,
    credit: AtomicU32,
}

impl OverloadFlag {
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Whether to take this new call: always when not overloaded; else as the share says.
    pub fn admit(&self) -> bool {
        if !self.is_overloaded() {
            return true;
        }
        let share = self.share.load(Ordering::Relaxed);
        if share == 0 {
            return false;
        }
        // One atomic update: two receive tasks may take INVITEs at the same time, and a
        // separate add and subtract could both spend the same credit (and wrap it around).
        let mut admitted = false;
        let _ = self
            .credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |credit| {
                let credit = credit.saturating_add(share);
                admitted = credit >= ADMIT_ONE;
                Some(if admitted { credit - ADMIT_ONE } else { credit })
            });
        admitted
    }

    /// Enters (with the share of calls taken) or leaves overload. The share is stored first, so
    /// an INVITE never sees the new state with the old share.
    fn set(&self, overloaded: bool, share: f64) {
        self.credit.store(0, Ordering::Relaxed);
        self.set_share(share);
        self.overloaded.store(overloaded, Ordering::Relaxed);
    }

    fn set_share(&self, share: f64) {
        let units = (share.clamp(0.0, 1.0) * f64::from(ADMIT_ONE)).round() as u32;
        self.share.store(units, Ordering::Relaxed);
    }
}

/// A change of state, for the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// The smoothed lag went over the threshold.
    Entered { lag: Duration },
    /// The smoothed lag stayed under half the threshold for [`CALM_BEFORE_LEAVING`].
    Left { lag: Duration, lasted: Duration },
}

/// Decides `overloaded` from lag samples, with hysteresis:
///
/// - **enter** when the smoothed lag (an exponentially weighted moving average of the samples,
///   weight 1/8) exceeds the threshold;
/// - **leave** only after the smoothed lag has stayed below half the threshold for
///   [`CALM_BEFORE_LEAVING`]; any sample that brings it back to half or more restarts that wait.
///
/// A threshold of zero disables it: it never reports overload.
#[derive(Debug)]
pub struct Detector {
    threshold: Duration,
    /// Smoothed lag in seconds.
    smoothed: f64,
    /// Since when the engine is overloaded.
    since: Option<Instant>,
    /// While overloaded: since when the smoothed lag is below half the threshold.
    calm_since: Option<Instant>,
    /// While overloaded: the share of new calls taken (see [`OverloadFlag`]).
    share: f64,
    flag: Arc<OverloadFlag>,
}

impl Detector {
    /// A detector that enters overload above `threshold` (zero: never) and publishes the state
    /// in `flag`.
    pub fn new(threshold: Duration, flag: Arc<OverloadFlag>) -> Detector {
        flag.set(false, 1.0);
        Detector {
            threshold,
            smoothed: 0.0,
            since: None,
            calm_since: None,
            share: 1.0,
            flag,
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.threshold.is_zero()
    }

    pub fn is_overloaded(&self) -> bool {
        self.since.is_some()
    }

    /// The share of new calls taken (1 when not overloaded).
    pub fn share(&self) -> f64 {
        self.share
    }

    /// The smoothed lag.
    pub fn lag(&self) -> Duration {
        Duration::from_secs_f64(self.smoothed)
    }

    pub fn threshold(&self) -> Duration {
        self.threshold
    }

    /// The share after a tick `late` seconds late: by a tenth for each threshold's worth of
    /// lateness (a tick a second late, a machine that took the CPU away, sheds nearly
    /// everything at once), else up by [`ADMIT_INCREASE`].
    fn adjusted(share: f64, late: f64, threshold: f64) -> f64 {
        if late > threshold {
            share * ADMIT_DECREASE.powf(late / threshold)
        } else {
            (share + ADMIT_INCREASE).min(1.0)
        }
    }

    /// Takes one lag sample measured at `now`; returns the change of state it caused, if any.
    pub fn observe(&mut self, now: Instant, lag: Duration) -> Option<Transition> {
        if !self.is_enabled() {
            return None;
        }
        self.smoothed += (lag.as_secs_f64() - self.smoothed) * GAIN;
        let threshold = self.threshold.as_secs_f64();
        if self.since.is_some() {
            self.share = Self::adjusted(self.share, lag.as_secs_f64(), threshold);
            self.flag.set_share(self.share);
        }
        match self.since {
            None if self.smoothed > threshold => {
                self.since = Some(now);
                self.calm_since = None;
                // From all calls, lowered at once by this tick's own lateness, as every late
                // tick from now on lowers it: real overload keeps the ticks late, and a few of
                // them shed most calls within tens of milliseconds; a stall that is over (the
                // scheduler gave the cores to someone else for a moment) sheds next to nothing.
                // Starting from none instead refused about half the calls of the following
                // second after every trip, a short stall included (the climb back is 1 % per
                // tick).
                self.share = Self::adjusted(1.0, lag.as_secs_f64(), threshold);
                self.flag.set(true, self.share);
                Some(Transition::Entered { lag: self.lag() })
            }
            None => None,
            Some(since) if self.smoothed < threshold / 2.0 => {
                let calm_since = *self.calm_since.get_or_insert(now);
                if now.saturating_duration_since(calm_since) < CALM_BEFORE_LEAVING {
                    return None;
                }
                self.since = None;
                self.calm_since = None;
                self.share = 1.0;
                self.flag.set(false, 1.0);
                Some(Transition::Left {
                    lag: self.lag(),
                    lasted: now.saturating_duration_since(since),
                })
            }
            Some(_) => {
                self.calm_since = None;
                None
            }
        }
    }
}

/// Measures the runtime's lag every [`PROBE_INTERVAL`] and feeds it to `detector` until the
/// engine stops. Only spawned when the detector is enabled (`sip.overload_lag_ms` > 0).
pub async fn probe(mut detector: Detector, endpoint: Arc<Endpoint>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    // After a late tick the next one is a whole interval later: lateness does not add up, and a
    // stalled runtime is not answered with a burst of catch-up ticks.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let threshold_ms = detector.threshold().as_millis();
    // Calls refused when the current overload began, for the log line at its end.
    let mut shed_before = 0;
    loop {
        let due = tokio::select! {
            due = tick.tick() => due,
            _ = shutdown.stopped() => return,
        };
        let late = tokio::time::Instant::now().saturating_duration_since(due);
        let acd_wait = endpoint.acd().take_max_wait();
        let sample = late.max(acd_wait);
        match detector.observe(Instant::now(), sample) {
            Some(Transition::Entered { lag }) => {
                shed_before = endpoint.stats.shed_overloaded.load(Ordering::Relaxed);
                warn!(
                    lag_ms = lag.as_millis(),
                    threshold_ms,
                    tick_late_ms = late.as_millis(),
                    acd_wait_ms = acd_wait.as_millis(),
                    "overloaded: the engine runs behind its work (sip.overload_lag_ms); new calls get 503 except the share it can take (adjusted every 10 ms) until the lag stays under half the threshold for 1 s"
                );
            }
            Some(Transition::Left { lag, lasted }) => {
                let shed = endpoint
                    .stats
                    .shed_overloaded
                    .load(Ordering::Relaxed)
                    .saturating_sub(shed_before);
                info!(
                    lag_ms = lag.as_millis(),
                    threshold_ms,
                    lasted_ms = lasted.as_millis(),
                    shed,
                    "overload over: new calls are taken again"
                );
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A detector with the default threshold and a clock the test moves.
    struct Fixture {
        detector: Detector,
        flag: Arc<OverloadFlag>,
        now: Instant,
    }

    impl Fixture {
        fn new(threshold: Duration) -> Fixture {
            let flag = Arc::new(OverloadFlag::default());
            Fixture {
                detector: Detector::new(threshold, flag.clone()),
                flag,
                now: Instant::now(),
            }
        }

        /// One probe tick: the clock moves by the interval plus the lag, as a late tick does.
        fn tick(&mut self, lag: Duration) -> Option<Transition> {
            self.now += PROBE_INTERVAL + lag;
            let transition = self.detector.observe(self.now, lag);
            assert_eq!(
                self.flag.is_overloaded(),
                self.detector.is_overloaded(),
                "the flag follows the detector"
            );
            transition
        }

        /// `n` ticks with `lag`; the transitions they caused.
        fn ticks(&mut self, n: usize, lag: Duration) -> Vec<Transition> {
            (0..n).filter_map(|_| self.tick(lag)).collect()
        }

        /// Ticks with `lag` until the state changes; how many it took.
        fn ticks_until_change(&mut self, lag: Duration, limit: usize) -> Option<usize> {
            (1..=limit).find(|_| self.tick(lag).is_some())
        }
    }

    #[test]
    fn ordinary_jitter_never_trips_it() {
        let mut f = Fixture::new(50 * MS);
        for lag in [0, 1, 2, 5, 10, 20, 30, 45, 3, 1] {
            assert_eq!(f.ticks(100, lag * MS), vec![]);
        }
        assert!(!f.flag.is_overloaded());
    }

    #[test]
    fn sustained_lag_over_the_threshold_enters() {
        let mut f = Fixture::new(50 * MS);
        // Twice the threshold: the average crosses 50 ms after 6 samples (1 - (7/8)^6 > 1/2).
        assert_eq!(f.ticks_until_change(100 * MS, 100), Some(6));
        assert!(f.flag.is_overloaded());
        assert!(f.detector.lag() > 50 * MS);
        // Just over the threshold takes longer, but gets there.
        let mut f = Fixture::new(50 * MS);
        assert!(f.ticks_until_change(60 * MS, 100).is_some_and(|n| n > 6));
    }

    #[test]
    fn one_short_stall_does_not_enter_but_a_long_one_does() {
        let mut f = Fixture::new(50 * MS);
        f.ticks(50, MS);
        // 300 ms once (a slow rules reload, a page fault storm): the average rises to ~38 ms.
        assert_eq!(f.tick(300 * MS), None);
        assert_eq!(f.ticks(200, MS), vec![]);
        // Frozen for a second (the process was stopped, the VM starved): that is overload.
        assert!(matches!(
            f.tick(1000 * MS),
            Some(Transition::Entered { lag }) if lag > 100 * MS
        ));
    }

    #[test]
    fn stays_while_the_lag_is_above_half_and_leaves_after_a_calm_second() {
        let mut f = Fixture::new(50 * MS);
        f.ticks_until_change(200 * MS, 100).expect("enters");
        // Under the threshold but above half (30 ms): stays overloaded however long it lasts.
        assert_eq!(f.ticks(500, 30 * MS), vec![]);
        assert!(f.flag.is_overloaded());
        // Back to normal: the average falls under 25 ms within a few ticks, then it takes 1 s
        // of calm (100 ticks of 10 ms) to leave.
        let entered_calm = f.now;
        let n = f.ticks_until_change(MS, 1000).expect("leaves");
        let left_after = f.now - entered_calm;
        assert!(!f.flag.is_overloaded());
        assert!(
            left_after >= CALM_BEFORE_LEAVING && left_after < CALM_BEFORE_LEAVING + 100 * MS,
            "left after {left_after:?} ({n} ticks)"
        );
    }

    #[test]
    fn the_left_transition_reports_how_long_it_lasted() {
        let mut f = Fixture::new(50 * MS);
        let start = f.now;
        let mut entered_at = None;
        for _ in 0..100 {
            if f.tick(200 * MS).is_some() {
                entered_at = Some(f.now);
                break;
            }
        }
        let entered_at = entered_at.expect("enters");
        assert!(entered_at > start);
        let left = (0..1000)
            .find_map(|_| f.tick(Duration::ZERO))
            .expect("leaves");
        match left {
            Transition::Left { lag, lasted } => {
                assert!(lag < 25 * MS);
                assert_eq!(lasted, f.now - entered_at);
            }
            other => panic!("expected Left, got {other:?}"),
        }
    }

    #[test]
    fn a_spike_during_the_calm_second_restarts_it() {
        let mut f = Fixture::new(50 * MS);
        f.ticks_until_change(200 * MS, 100).expect("enters");
        // Calm for 0.9 s: not long enough.
        f.ticks(90, Duration::ZERO);
        assert!(f.flag.is_overloaded());
        // One late tick lifts the average back over half the threshold (0.125 × 400 = 50 ms).
        assert_eq!(f.tick(400 * MS), None);
        assert!(f.detector.lag() >= 25 * MS);
        // The calm second starts again: 0.9 s more is still not enough …
        f.ticks(90, Duration::ZERO);
        assert!(f.flag.is_overloaded());
        // … a full second is.
        assert!(matches!(
            f.ticks_until_change(Duration::ZERO, 200),
            Some(n) if n <= 30
        ));
        assert!(!f.flag.is_overloaded());
    }

    #[test]
    fn load_around_the_threshold_does_not_flap() {
        let mut f = Fixture::new(50 * MS);
        // Lag swinging around the threshold (30 ms … 90 ms, 55 ms on average) for 30 s: one
        // entry and no exit, since the average never stays under 25 ms for a second.
        let pattern = [30, 90, 40, 80, 35, 70, 45, 50];
        let mut transitions = Vec::new();
        for i in 0..3000 {
            if let Some(t) = f.tick(pattern[i % pattern.len()] * MS) {
                transitions.push(t);
            }
        }
        assert_eq!(transitions.len(), 1, "{transitions:?}");
        assert!(matches!(transitions[0], Transition::Entered { .. }));
    }

    #[test]
    fn shedding_and_taking_calls_again_alternate_slowly() {
        // A closed loop: while the engine takes calls it runs 120 ms behind, while it sheds them
        // 2 ms. The guard must let the load back in now and then (it cannot know the load is
        // still there), but each overload lasts at least the calm second, not a tick or two.
        let mut f = Fixture::new(50 * MS);
        let end = f.now + Duration::from_secs(20);
        let mut episodes = Vec::new();
        while f.now < end {
            let lag = if f.detector.is_overloaded() { 2 } else { 120 };
            if let Some(Transition::Left { lasted, .. }) = f.tick(lag * MS) {
                episodes.push(lasted);
            }
        }
        assert!(episodes.len() >= 5, "{episodes:?}");
        assert!(
            episodes.iter().all(|lasted| *lasted >= CALM_BEFORE_LEAVING),
            "{episodes:?}"
        );
    }

    /// How many of `n` new calls the flag takes now.
    fn admitted(flag: &OverloadFlag, n: usize) -> usize {
        (0..n).filter(|_| flag.admit()).count()
    }

    #[test]
    fn late_ticks_lower_the_share_and_calm_ticks_take_ever_more() {
        let mut f = Fixture::new(50 * MS);
        assert_eq!(admitted(&f.flag, 100), 100, "not overloaded: every call");
        // The first 400 ms tick leaves the smoothed lag at the threshold, the second trips it:
        // the share starts at 0.9^8 (8 thresholds late), and 18 more such ticks leave nothing.
        assert_eq!(f.tick(400 * MS), None);
        assert!(matches!(f.tick(400 * MS), Some(Transition::Entered { .. })));
        let entered = f.detector.share();
        assert!((entered - 0.9_f64.powi(8)).abs() < 1e-9, "{entered}");
        f.ticks(18, 400 * MS);
        assert!(f.flag.is_overloaded());
        assert!(f.detector.share() < 1e-6, "{}", f.detector.share());
        assert_eq!(
            admitted(&f.flag, 100),
            0,
            "18 ticks 8 thresholds late: none"
        );
        // Ticks on time: the share grows by 1 % per tick (the smoothed lag is still high, so
        // the engine stays overloaded).
        f.ticks(24, Duration::ZERO);
        let share = f.detector.share();
        assert!((share - 0.24).abs() < 1e-6, "{share}");
        // The credit takes exactly that share, spread out: 24 of every 100.
        assert_eq!(admitted(&f.flag, 100), 24);
        assert!(f.flag.is_overloaded());
        // Ticks late again, by 1.5 thresholds: 0.9^1.5 of the share per tick.
        f.ticks(3, 75 * MS);
        let lower = f.detector.share();
        assert!((lower - share * 0.9_f64.powf(4.5)).abs() < 1e-9, "{lower}");
        // Calm for long enough: overload over, every call again.
        f.ticks(300, Duration::ZERO);
        assert!(!f.flag.is_overloaded());
        assert_eq!(f.detector.share(), 1.0);
        assert_eq!(admitted(&f.flag, 100), 100);
    }

    #[test]
    fn a_stall_that_is_over_sheds_little() {
        // The scheduler gave the cores away for a moment: three ticks 100 ms late trip the
        // guard (threshold 25 ms), then the engine is on time again. The share starts at what
        // that lateness says and climbs back; it never drops to nothing, and within a third of
        // a second most calls are taken again. (It used to start at none: half the calls of
        // the next second refused.)
        let mut f = Fixture::new(25 * MS);
        let entered = f.ticks(3, 100 * MS);
        assert!(
            matches!(entered[..], [Transition::Entered { .. }]),
            "{entered:?}"
        );
        let first = f.detector.share();
        assert!((first - 0.9_f64.powi(4)).abs() < 1e-9, "{first}");
        f.ticks(30, Duration::ZERO);
        assert!(f.flag.is_overloaded(), "still within the calm second");
        assert!(f.detector.share() > 0.95, "{}", f.detector.share());
        assert!(admitted(&f.flag, 100) >= 95);
    }

    #[test]
    fn threads_taking_calls_at_once_take_exactly_the_share() {
        let mut f = Fixture::new(50 * MS);
        f.ticks(20, 400 * MS);
        f.ticks(25, Duration::ZERO);
        assert!((f.detector.share() - 0.25).abs() < 1e-6);
        let flag = f.flag.clone();
        let taken: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| admitted(&flag, 10_000)))
                .collect();
            workers.into_iter().map(|w| w.join().expect("thread")).sum()
        });
        assert_eq!(taken, 10_000, "a quarter of 40,000");
    }

    #[test]
    fn at_twice_the_capacity_it_keeps_taking_about_what_the_engine_can_finish() {
        // A model engine that finishes one unit of calls per tick; twice that is offered. What
        // it takes beyond its capacity waits (the lag grows by the excess), what it does not
        // use shortens the wait. All-or-nothing shedding left it idle most of the time.
        let mut f = Fixture::new(25 * MS);
        let tick = PROBE_INTERVAL.as_secs_f64();
        let (offered, mut backlog) = (2.0_f64, 0.0_f64);
        let (mut served, mut lags, mut ticks) = (0.0, Vec::new(), 0);
        for n in 0..2000 {
            let taken = if f.detector.is_overloaded() {
                offered * f.detector.share()
            } else {
                offered
            };
            backlog = (backlog + (taken - 1.0) * tick).max(0.0);
            let lag = Duration::from_secs_f64(backlog);
            f.tick(lag);
            // Judge the last 15 s (the first 5 s include the first overload).
            if n >= 500 {
                served += taken.min(1.0);
                lags.push(backlog);
                ticks += 1;
            }
        }
        let goodput = served / f64::from(ticks);
        assert!(goodput > 0.9, "goodput {goodput:.2} of capacity");
        lags.sort_by(f64::total_cmp);
        let p99 = lags[lags.len() * 99 / 100];
        assert!(p99 < 0.2, "p99 lag {p99:.3} s");
    }

    #[test]
    fn a_zero_threshold_disables_it() {
        let mut f = Fixture::new(Duration::ZERO);
        assert!(!f.detector.is_enabled());
        assert_eq!(f.ticks(100, 5000 * MS), vec![]);
        assert!(!f.flag.is_overloaded());
        assert_eq!(f.detector.lag(), Duration::ZERO);
    }

    #[test]
    fn a_new_detector_clears_the_flag() {
        let flag = Arc::new(OverloadFlag::default());
        flag.set(true, 0.0);
        let _detector = Detector::new(50 * MS, flag.clone());
        assert!(!flag.is_overloaded());
    }
}
