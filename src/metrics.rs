//! Prometheus metrics, served at `GET /metrics` (text exposition format 0.0.4).
//!
//! Two sources feed one [`Metrics`] (with its own [`Registry`], never the global default one):
//!
//! - **Call events**: [`run`] subscribes to the [`EventBus`](crate::events::EventBus) and turns
//!   each [`CallEvent`] into counter increments and histogram observations ([`Metrics::observe`]).
//!   A subscriber that falls behind loses the oldest events; the loss is counted in
//!   `zentrale_events_lost_total`, and publishing calls never wait for us.
//! - **Engine atomics** (SIP, RTP, rule reloads, calendars): read when `/metrics` is scraped
//!   ([`EngineSnapshot`]), so they cost nothing between scrapes.
//!
//! Labels are bounded: queue, menu, topic and calendar ids come from the routing rules, SIP codes
//! and DTMF sources from the engine, end reasons are mapped to a fixed set. Caller numbers and
//! Call-IDs never become labels.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::sync::broadcast;

use crate::events::{CallEvent, CallEventKind};
use crate::hash::HashMap;
use crate::shutdown::Shutdown;
use crate::sip::endpoint::Endpoint;
use crate::sip::traffic::{CODE_CLASSES, DIRECTIONS, METHODS, TrafficCounts};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Bucket edges of `zentrale_call_duration_seconds` (incoming → ended), 5 s … 30 min.
pub const CALL_DURATION_BUCKETS: &[f64] = &[
    5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0,
    1800.0,
];

/// Bucket edges of `zentrale_queue_wait_seconds` (queue join → answered, abandoned, overflowed
/// or left), 5 s … 10 min: every service-level threshold anyone asks about (20 s, 30 s …) is an
/// edge, and `le="5"` separates short abandons.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 600.0,
];

/// Bucket edges of `zentrale_talk_seconds` (connected to an agent → call ended), 5 s … 1 h.
pub const TALK_BUCKETS: &[f64] = &[
    5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
];

/// The `outcome` label values of `zentrale_queue_wait_seconds`.
pub const WAIT_OUTCOMES: [&str; 4] = ["answered", "abandoned", "overflowed", "left"];

/// The `reason` label values of `zentrale_queue_calls_overflowed_total`.
pub const OVERFLOW_REASONS: [&str; 3] = ["full", "max_wait", "no_agents"];

/// Calls whose progress we remember (start, queue, agent). An `ended` event lost to lag would
/// otherwise leave its entry behind forever.
const MAX_OPEN_CALLS: usize = 50_000;
/// Entries older than this are forgotten when the table is full.
const STALE_AFTER_SECS: i64 = 6 * 3600;

/// What the metrics task remembers about one call until its `ended` event: a few timestamps
/// and the queue id (a rules id, bounded), never numbers.
#[derive(Debug, Default)]
struct OpenCall {
    /// When the call came in (its `incoming` event), if we saw that.
    started: Option<DateTime<Utc>>,
    /// When we first heard of the call (for forgetting stale entries).
    seen: Option<DateTime<Utc>>,
    /// The queue the caller waits in now, and since when.
    waiting: Option<(String, DateTime<Utc>)>,
    /// The queue whose agent the caller talks with, and since when.
    talking: Option<(String, DateTime<Utc>)>,
    /// Agents ringing for the caller, with the queue they ring for.
    rings: Vec<(String, String)>,
}

/// The `reason` label of `zentrale_queue_calls_overflowed_total`.
fn overflow_reason(reason: &str) -> &'static str {
    OVERFLOW_REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or("other")
}

/// The `result` label of `zentrale_agent_rings_total` for a ring that ended unanswered.
fn ring_result(reason: &str) -> &'static str {
    match reason {
        "busy" => "busy",
        "declined" => "declined",
        "no_answer" => "no_answer",
        "unreachable" => "unreachable",
        "withdrawn" => "withdrawn",
        _ => "other",
    }
}

/// The `reason_class` of `zentrale_calls_ended_total`.
pub fn reason_class(reason: &str) -> &'static str {
    if reason.starts_with("caller") {
        "caller_hangup"
    } else if reason.starts_with("engine") {
        "engine_hangup"
    } else if reason.starts_with("rejected") {
        "rejected"
    } else {
        "other"
    }
}

/// The `source` label of `zentrale_menu_keys_total` (the `Key` event carries `DtmfSource`'s
/// debug name).
fn key_source(source: &str) -> &'static str {
    match source {
        "Rfc4733" => "rfc4733",
        "InBand" => "inband",
        "SipInfo" => "sip_info",
        _ => "other",
    }
}

/// The `code` label of `zentrale_calls_rejected_total`: a SIP final status, else `other`.
fn status_label(status: u16) -> String {
    if (300..700).contains(&status) {
        status.to_string()
    } else {
        "other".into()
    }
}

pub struct Metrics {
    /// The call events not yet counted: drained every [`DRAIN_EVERY`] and before every scrape,
    /// so no call wakes a metrics task per event and a scrape still sees every event so far.
    feed: std::sync::Mutex<Option<broadcast::Receiver<Arc<CallEvent>>>>,
    registry: Registry,
    calls: IntCounter,
    answered: IntCounter,
    rejected: IntCounterVec,
    menus: IntCounterVec,
    keys: IntCounterVec,
    no_input: IntCounter,
    queued: IntCounterVec,
    announced: IntCounterVec,
    ended: IntCounterVec,
    duration: Histogram,
    offered: IntCounterVec,
    queue_answered: IntCounterVec,
    abandoned: IntCounterVec,
    overflowed: IntCounterVec,
    left: IntCounterVec,
    wait: HistogramVec,
    talk: HistogramVec,
    rings: IntCounterVec,
    events: IntCounter,
    events_lost: IntCounter,
    /// Call-ID → what we know of the call, until its `ended` event.
    open: Mutex<HashMap<Arc<str>, OpenCall>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help)).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric definition");
    registry
        .register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "zentrale_call_duration_seconds",
                "Time from the incoming INVITE to the end of the call.",
            )
            .buckets(CALL_DURATION_BUCKETS.to_vec()),
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        Metrics {
            feed: std::sync::Mutex::new(None),
            calls: counter(
                r,
                "zentrale_calls_total",
                "Incoming calls (INVITEs that started a call).",
            ),
            answered: counter(
                r,
                "zentrale_calls_answered_total",
                "Calls the engine answered (200 OK).",
            ),
            rejected: counter_vec(
                r,
                "zentrale_calls_rejected_total",
                "Calls refused with a final error status, by SIP code.",
                &["code"],
            ),
            menus: counter_vec(
                r,
                "zentrale_menu_entries_total",
                "Voice menus played (each attempt counts), by menu.",
                &["menu"],
            ),
            keys: counter_vec(
                r,
                "zentrale_menu_keys_total",
                "Keys pressed by callers, by how the key arrived.",
                &["source"],
            ),
            no_input: counter(
                r,
                "zentrale_menu_no_input_total",
                "Menu prompts the caller did not answer with a key in time.",
            ),
            queued: counter_vec(
                r,
                "zentrale_calls_queued_total",
                "Calls offered to a queue, by queue.",
                &["queue"],
            ),
            announced: counter_vec(
                r,
                "zentrale_calls_announced_total",
                "Calls that got an announcement and were hung up, by topic (`none` without one).",
                &["topic"],
            ),
            ended: counter_vec(
                r,
                "zentrale_calls_ended_total",
                "Calls ended, by who or what ended them.",
                &["reason_class"],
            ),
            duration,
            offered: counter_vec(
                r,
                "zentrale_queue_calls_offered_total",
                "Callers who joined the queue (a caller overflowing to another queue counts in each).",
                &["queue"],
            ),
            queue_answered: counter_vec(
                r,
                "zentrale_queue_calls_answered_total",
                "Callers of the queue connected to an agent.",
                &["queue"],
            ),
            abandoned: counter_vec(
                r,
                "zentrale_queue_calls_abandoned_total",
                "Callers whose call ended while they waited in the queue or an agent's phone rang for them.",
                &["queue"],
            ),
            overflowed: counter_vec(
                r,
                "zentrale_queue_calls_overflowed_total",
                "Callers the queue sent on by its overflow action, by reason (full, max_wait, no_agents).",
                &["queue", "reason"],
            ),
            left: counter_vec(
                r,
                "zentrale_queue_calls_left_total",
                "Callers who left the queue with its leave key.",
                &["queue"],
            ),
            wait: histogram_vec(
                r,
                "zentrale_queue_wait_seconds",
                "Time from joining the queue to leaving it, by outcome (answered, abandoned, overflowed, left).",
                &["queue", "outcome"],
                QUEUE_WAIT_BUCKETS,
            ),
            talk: histogram_vec(
                r,
                "zentrale_talk_seconds",
                "Time from the caller's connection to an agent to the end of the call, by queue.",
                &["queue"],
                TALK_BUCKETS,
            ),
            rings: counter_vec(
                r,
                "zentrale_agent_rings_total",
                "Agent phones rung for callers, by queue and how the ring ended (answered, busy, declined, no_answer, unreachable, withdrawn).",
                &["queue", "result"],
            ),
            events: counter(
                r,
                "zentrale_events_processed_total",
                "Call events the metrics task processed.",
            ),
            events_lost: counter(
                r,
                "zentrale_events_lost_total",
                "Call events the metrics task lost because it fell behind the event bus.",
            ),
            open: Mutex::new(HashMap::default()),
            registry,
        }
    }

    /// Updates the counters and histograms for one call event.
    pub fn observe(&self, event: &CallEvent) {
        self.events.inc();
        match &event.kind {
            CallEventKind::Incoming { .. } => {
                self.calls.inc();
                self.with_call(&event.call_id, event.at, true, |call| {
                    call.started = Some(event.at)
                });
            }
            CallEventKind::Answered => self.answered.inc(),
            CallEventKind::Rejected { status } => self
                .rejected
                .with_label_values(&[status_label(*status).as_str()])
                .inc(),
            CallEventKind::Menu { menu, .. } => {
                self.menus.with_label_values(&[menu.as_str()]).inc()
            }
            // Agent states are read from the ACD snapshot at scrape time.
            CallEventKind::Play { .. }
            | CallEventKind::Agent { .. }
            | CallEventKind::Announce { .. } => {}
            CallEventKind::Ring { agent, queue } => {
                self.with_call(&event.call_id, event.at, false, |call| {
                    call.rings.push((agent.clone(), queue.clone()))
                });
            }
            CallEventKind::RingEnded { agent, reason } => {
                self.with_call(&event.call_id, event.at, false, |call| {
                    if let Some(n) = call.rings.iter().position(|(a, _)| a == agent) {
                        let (_, queue) = call.rings.swap_remove(n);
                        self.rings
                            .with_label_values(&[queue.as_str(), ring_result(reason)])
                            .inc();
                    }
                });
            }
            CallEventKind::Connected { agent } => {
                self.with_call(&event.call_id, event.at, false, |call| {
                    self.connected(call, agent, event.at)
                });
            }
            CallEventKind::LeftQueue { queue, reason } => {
                self.with_call(&event.call_id, event.at, false, |call| {
                    let outcome = if reason == "key" {
                        self.left.with_label_values(&[queue.as_str()]).inc();
                        "left"
                    } else {
                        self.overflowed
                            .with_label_values(&[queue.as_str(), overflow_reason(reason)])
                            .inc();
                        "overflowed"
                    };
                    if let Some((waited_in, since)) = call.waiting.take() {
                        self.observe_wait(&waited_in, outcome, since, event.at);
                    }
                });
            }
            CallEventKind::Key { source, .. } => {
                self.keys.with_label_values(&[key_source(source)]).inc()
            }
            CallEventKind::NoInput => self.no_input.inc(),
            CallEventKind::Queued { queue, .. } => {
                self.queued.with_label_values(&[queue.as_str()]).inc();
                self.offered.with_label_values(&[queue.as_str()]).inc();
                self.with_call(&event.call_id, event.at, true, |call| {
                    call.waiting = Some((queue.clone(), event.at))
                });
            }
            CallEventKind::AnnounceAndHangUp { topic } => self
                .announced
                .with_label_values(&[topic.as_deref().unwrap_or("none")])
                .inc(),
            CallEventKind::Ended { reason } => {
                self.ended.with_label_values(&[reason_class(reason)]).inc();
                let call = self
                    .open
                    .lock()
                    .ok()
                    .and_then(|mut open| open.remove(&event.call_id));
                if let Some(call) = call {
                    self.ended_call(call, event.at);
                }
            }
        }
    }

    /// The caller talks with `agent`: the wait ends answered, the ring answered, talk begins.
    fn connected(&self, call: &mut OpenCall, agent: &str, at: DateTime<Utc>) {
        let rang_for = call
            .rings
            .iter()
            .position(|(a, _)| a == agent)
            .map(|n| call.rings.swap_remove(n).1);
        if let Some(queue) = &rang_for {
            self.rings
                .with_label_values(&[queue.as_str(), "answered"])
                .inc();
        }
        let queue = match call.waiting.take() {
            Some((queue, since)) => {
                self.observe_wait(&queue, "answered", since, at);
                Some(queue)
            }
            None => rang_for,
        };
        // Connected again (another agent took over): the earlier talk ends here.
        if let Some((queue, since)) = call.talking.take() {
            self.talk
                .with_label_values(&[queue.as_str()])
                .observe(seconds(since, at));
        }
        if let Some(queue) = queue {
            self.queue_answered
                .with_label_values(&[queue.as_str()])
                .inc();
            call.talking = Some((queue, at));
        }
    }

    /// The call ended: its duration, an abandoned wait, the talk time, rings it left behind.
    fn ended_call(&self, call: OpenCall, at: DateTime<Utc>) {
        if let Some(start) = call.started {
            self.duration.observe(seconds(start, at));
        }
        if let Some((queue, since)) = call.waiting {
            self.abandoned.with_label_values(&[queue.as_str()]).inc();
            self.observe_wait(&queue, "abandoned", since, at);
        }
        if let Some((queue, since)) = call.talking {
            self.talk
                .with_label_values(&[queue.as_str()])
                .observe(seconds(since, at));
        }
        // Rings still open end with the caller (their own ring_ended may follow; the call is
        // forgotten by then, so each ring counts once).
        for (_, queue) in call.rings {
            self.rings
                .with_label_values(&[queue.as_str(), "withdrawn"])
                .inc();
        }
    }

    fn observe_wait(&self, queue: &str, outcome: &str, since: DateTime<Utc>, at: DateTime<Utc>) {
        self.wait
            .with_label_values(&[queue, outcome])
            .observe(seconds(since, at));
    }

    /// Counts events lost to a lagging subscription.
    pub fn lost(&self, events: u64) {
        self.events_lost.inc_by(events);
    }

    /// Runs `f` on the call's entry. Only `create` events (incoming, queued) make a new one,
    /// and only while the table has room (after forgetting entries older than six hours).
    fn with_call(
        &self,
        call_id: &Arc<str>,
        at: DateTime<Utc>,
        create: bool,
        f: impl FnOnce(&mut OpenCall),
    ) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        if let Some(call) = open.get_mut(call_id) {
            return f(call);
        }
        if !create {
            return;
        }
        if open.len() >= MAX_OPEN_CALLS {
            open.retain(|_, call| {
                call.seen
                    .is_some_and(|seen| (at - seen).num_seconds() < STALE_AFTER_SECS)
            });
            if open.len() >= MAX_OPEN_CALLS {
                return;
            }
        }
        let call = open.entry(call_id.clone()).or_default();
        call.seen = Some(at);
        f(call);
    }

    /// Creates the per-queue series with 0 (so rates and ratios exist before the first call).
    fn touch_queue(&self, queue: &str) {
        self.queued.with_label_values(&[queue]);
        self.offered.with_label_values(&[queue]);
        self.queue_answered.with_label_values(&[queue]);
        self.abandoned.with_label_values(&[queue]);
        self.left.with_label_values(&[queue]);
        for reason in OVERFLOW_REASONS {
            self.overflowed.with_label_values(&[queue, reason]);
        }
        for outcome in WAIT_OUTCOMES {
            self.wait.with_label_values(&[queue, outcome]);
        }
        self.talk.with_label_values(&[queue]);
    }

    /// The exposition text: the event metrics plus `engine`'s values at this moment.
    pub fn render(&self, engine: &EngineSnapshot) -> String {
        self.drain();
        for (queue, _) in &engine.queues {
            self.touch_queue(queue);
        }
        let mut families = self.registry.gather();
        families.extend(engine.families());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&families, &mut buffer) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The engine's own counters at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineSnapshot {
    pub calls_active: u64,
    /// RTP port pairs handed out (and of those, callers'), and the most there can be.
    pub rtp_pairs_in_use: u64,
    pub rtp_pairs_callers: u64,
    pub rtp_pairs_capacity: u64,
    pub sip_requests: u64,
    pub sip_responses: u64,
    pub sip_dropped: u64,
    /// New calls refused at `sip.max_calls`.
    pub rejected_overload: u64,
    /// New calls refused by the overload guard.
    pub shed_overloaded: u64,
    /// The overload guard refuses new calls right now.
    pub overloaded: bool,
    pub call_queue_full: u64,
    pub rtp_sent: u64,
    pub rtp_late: u64,
    pub rtp_received: u64,
    pub rtp_lost: u64,
    pub rtp_frames_skipped: u64,
    pub rtp_relayed: u64,
    pub rtp_transcoded: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub rules_version: Arc<str>,
    /// Calendar id → open right now (holidays, closures and overrides included).
    pub calendars_open: Vec<(String, bool)>,
    pub events_published: u64,
    /// Call events the records writer lost (channel full or database failing).
    pub records_lost: u64,
    /// Log lines dropped because the log writer fell behind.
    pub log_lines_dropped: u64,
    /// Queue id → live figures from the ACD.
    pub queues: Vec<(String, crate::acd::service::QueueView)>,
    /// The ACD's dispatch latency per trigger: cumulative (upper bound s, count) buckets and
    /// the sum in s.
    pub dispatch: Vec<crate::acd::service::LatencyHistogram>,
    /// SIP messages by direction and method / response class.
    pub sip_traffic: TrafficCounts,
}

impl EngineSnapshot {
    pub fn of(endpoint: &Endpoint) -> EngineSnapshot {
        let stats = &endpoint.stats;
        let media = endpoint.media_stats();
        let rules = endpoint.rules().current();
        let now = Utc::now();
        let pairs = endpoint.rtp_pool().usage();
        EngineSnapshot {
            calls_active: endpoint.active_calls() as u64,
            rtp_pairs_in_use: pairs.held as u64,
            rtp_pairs_callers: pairs.callers as u64,
            rtp_pairs_capacity: pairs.max as u64,
            sip_requests: stats.requests.load(Ordering::Relaxed),
            sip_responses: stats.responses.load(Ordering::Relaxed),
            sip_dropped: stats.dropped.load(Ordering::Relaxed),
            rejected_overload: stats.rejected_overload.load(Ordering::Relaxed),
            shed_overloaded: stats.shed_overloaded.load(Ordering::Relaxed),
            overloaded: endpoint.overloaded(),
            call_queue_full: stats.call_queue_full.load(Ordering::Relaxed),
            rtp_sent: media.packets_sent.load(Ordering::Relaxed),
            rtp_late: media.packets_late.load(Ordering::Relaxed),
            rtp_received: media.packets_received.load(Ordering::Relaxed),
            rtp_lost: media.packets_lost.load(Ordering::Relaxed),
            rtp_frames_skipped: media.frames_skipped.load(Ordering::Relaxed),
            rtp_relayed: media.packets_relayed.load(Ordering::Relaxed),
            rtp_transcoded: media.relay_transcoded.load(Ordering::Relaxed),
            reloads_ok: endpoint.rules().reloads_ok.load(Ordering::Relaxed),
            reloads_failed: endpoint.rules().reloads_failed.load(Ordering::Relaxed),
            rules_version: rules.rules.version.hash.clone(),
            calendars_open: rules
                .rules
                .calendars
                .iter()
                .map(|(id, calendar)| (id.clone(), calendar.calendar.is_open(now)))
                .collect(),
            events_published: endpoint.events().published.load(Ordering::Relaxed),
            records_lost: endpoint.events().records_lost.load(Ordering::Relaxed),
            log_lines_dropped: crate::logging::lines_dropped(),
            queues: endpoint
                .acd()
                .snapshot()
                .queues
                .iter()
                .map(|(id, q)| (id.clone(), *q))
                .collect(),
            dispatch: endpoint.acd().latency.buckets(),
            sip_traffic: endpoint.transports().traffic.counts(),
        }
    }

    /// The dispatch latency histogram, built from the ACD's own buckets (the crate's
    /// histograms cannot be filled from precomputed counts).
    fn dispatch_family(&self) -> MetricFamily {
        use prometheus::proto::{
            Bucket, Histogram as HistogramProto, LabelPair, Metric, MetricType,
        };
        let mut family = MetricFamily::default();
        family.set_name("zentrale_acd_dispatch_seconds".into());
        family.set_help(
            "Time from the ACD event that made a ring possible (trigger: a caller joined, or an agent became free) to the agent's INVITE on the wire."
                .into(),
        );
        family.set_field_type(MetricType::HISTOGRAM);
        for (trigger, buckets, sum) in &self.dispatch {
            let mut histogram = HistogramProto::default();
            let mut count = 0;
            let mut proto_buckets = Vec::new();
            for (bound, cumulative) in buckets {
                count = *cumulative;
                if bound.is_finite() {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(*bound);
                    bucket.set_cumulative_count(*cumulative);
                    proto_buckets.push(bucket);
                }
            }
            histogram.set_bucket(proto_buckets);
            histogram.set_sample_count(count);
            histogram.set_sample_sum(*sum);
            let mut label = LabelPair::default();
            label.set_name("trigger".into());
            label.set_value((*trigger).into());
            let mut metric = Metric::from_label(vec![label]);
            metric.set_histogram(histogram);
            family.mut_metric().push(metric);
        }
        family
    }

    fn families(&self) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        if !self.dispatch.is_empty() {
            out.push(self.dispatch_family());
        }
        let plain: [(&str, &str, u64); 21] = [
            (
                "zentrale_sip_requests_received_total",
                "SIP requests received (parsed or refused as malformed).",
                self.sip_requests,
            ),
            (
                "zentrale_sip_responses_received_total",
                "SIP responses received.",
                self.sip_responses,
            ),
            (
                "zentrale_sip_messages_dropped_total",
                "SIP messages dropped unanswered (unparseable, stray or over limits).",
                self.sip_dropped,
            ),
            (
                "zentrale_calls_rejected_overload_total",
                "New calls refused with 503 because the engine was at its call limit (sip.max_calls).",
                self.rejected_overload,
            ),
            (
                "zentrale_calls_shed_total",
                "New calls refused with 503 because the engine was overloaded (running more than sip.overload_lag_ms behind its work).",
                self.shed_overloaded,
            ),
            (
                "zentrale_overloaded",
                "1 while the overload guard refuses new calls with 503, else 0.",
                u64::from(self.overloaded),
            ),
            (
                "zentrale_call_input_queue_full_total",
                "SIP messages dropped because a call's input queue was full.",
                self.call_queue_full,
            ),
            (
                "zentrale_rtp_packets_sent_total",
                "RTP packets sent to callers.",
                self.rtp_sent,
            ),
            (
                "zentrale_rtp_packets_late_total",
                "RTP packets sent more than 10 ms after their due time.",
                self.rtp_late,
            ),
            (
                "zentrale_rtp_packets_received_total",
                "RTP packets received from callers.",
                self.rtp_received,
            ),
            (
                "zentrale_rtp_packets_lost_total",
                "RTP packets from callers that never arrived (gaps in the sequence numbers).",
                self.rtp_lost,
            ),
            (
                "zentrale_rtp_frames_skipped_total",
                "Audio frames skipped to catch up after the sender fell behind.",
                self.rtp_frames_skipped,
            ),
            (
                "zentrale_rtp_packets_relayed_total",
                "RTP packets relayed between callers and agents (both directions).",
                self.rtp_relayed,
            ),
            (
                "zentrale_rtp_packets_transcoded_total",
                "Relayed RTP packets transcoded between µ-law and A-law.",
                self.rtp_transcoded,
            ),
            (
                "zentrale_events_published_total",
                "Call events published on the event bus.",
                self.events_published,
            ),
            (
                "zentrale_records_lost_total",
                "Call events the call records lost (writer channel full or database failing); see the log.",
                self.records_lost,
            ),
            (
                "zentrale_log_lines_dropped_total",
                "Log lines dropped because the log writer could not keep up with stderr (the engine does not wait for its log).",
                self.log_lines_dropped,
            ),
            (
                "zentrale_calls_active",
                "Calls with a running task (ringing, answered or hanging up).",
                self.calls_active,
            ),
            (
                "zentrale_rtp_port_pairs_in_use",
                "RTP port pairs held by calls (a caller's, and its agent leg's once placed).",
                self.rtp_pairs_in_use,
            ),
            (
                "zentrale_rtp_port_pairs_callers",
                "RTP port pairs held by callers (not agent legs): new calls get 503 (no media port) once this would exceed half of zentrale_rtp_port_pairs_max.",
                self.rtp_pairs_callers,
            ),
            (
                "zentrale_rtp_port_pairs_max",
                "RTP port pairs the port range and the open-file limit allow; a new call is taken only while a pair stays for every call's agent leg.",
                self.rtp_pairs_capacity,
            ),
        ];
        for (name, help, value) in plain {
            if name.ends_with("_total") {
                if let Ok(c) = IntCounter::with_opts(Opts::new(name, help)) {
                    c.inc_by(value);
                    out.extend(c.collect());
                }
            } else if let Ok(g) = IntGauge::with_opts(Opts::new(name, help)) {
                g.set(clamp(value));
                out.extend(g.collect());
            }
        }
        if let Ok(requests) = IntCounterVec::new(
            Opts::new(
                "zentrale_sip_requests_total",
                "SIP requests by method (other: extension methods) and direction (received, sent; retransmissions included).",
            ),
            &["method", "direction"],
        ) {
            for (d, direction) in DIRECTIONS.iter().enumerate() {
                for (m, method) in METHODS.iter().enumerate() {
                    requests
                        .with_label_values(&[*method, *direction])
                        .inc_by(self.sip_traffic.requests[d][m]);
                }
            }
            out.extend(requests.collect());
        }
        if let Ok(responses) = IntCounterVec::new(
            Opts::new(
                "zentrale_sip_responses_total",
                "SIP responses by status class (1xx … 6xx) and direction (received, sent; retransmissions included).",
            ),
            &["code_class", "direction"],
        ) {
            for (d, direction) in DIRECTIONS.iter().enumerate() {
                for (c, class) in CODE_CLASSES.iter().enumerate() {
                    responses
                        .with_label_values(&[*class, *direction])
                        .inc_by(self.sip_traffic.responses[d][c]);
                }
            }
            out.extend(responses.collect());
        }
        if let Ok(reloads) = IntCounterVec::new(
            Opts::new(
                "zentrale_rules_reloads_total",
                "Routing rule reloads, by result (a failed one keeps the rules in force).",
            ),
            &["result"],
        ) {
            reloads.with_label_values(&["ok"]).inc_by(self.reloads_ok);
            reloads
                .with_label_values(&["failed"])
                .inc_by(self.reloads_failed);
            out.extend(reloads.collect());
        }
        if let Ok(info) = IntGaugeVec::new(
            Opts::new(
                "zentrale_rules_info",
                "The routing rules version in force (always 1).",
            ),
            &["version"],
        ) {
            info.with_label_values(&[&*self.rules_version]).set(1);
            out.extend(info.collect());
        }
        if !self.queues.is_empty() {
            if let Ok(waiting) = IntGaugeVec::new(
                Opts::new(
                    "zentrale_queue_callers",
                    "Callers in the queue now, waiting for an agent or with an agent's phone ringing.",
                ),
                &["queue", "status"],
            ) {
                for (id, q) in &self.queues {
                    waiting
                        .with_label_values(&[id.as_str(), "waiting"])
                        .set(i64::from(q.waiting));
                    waiting
                        .with_label_values(&[id.as_str(), "ringing"])
                        .set(i64::from(q.ringing));
                }
                out.extend(waiting.collect());
            }
            if let Ok(longest) = prometheus::GaugeVec::new(
                Opts::new(
                    "zentrale_queue_longest_wait_seconds",
                    "How long the queue's longest-waiting caller has waited so far (0 when empty).",
                ),
                &["queue"],
            ) {
                for (id, q) in &self.queues {
                    longest
                        .with_label_values(&[id.as_str()])
                        .set(q.longest_wait_secs);
                }
                out.extend(longest.collect());
            }
            if let Ok(agents) = IntGaugeVec::new(
                Opts::new(
                    "zentrale_queue_agents",
                    "Agents of the queue (at its base skill level) by state; an agent in several queues counts in each.",
                ),
                &["queue", "state"],
            ) {
                for (id, q) in &self.queues {
                    for (state, n) in [
                        ("available", q.available),
                        ("reserved", q.reserved),
                        ("on_call", q.on_call),
                        ("wrap_up", q.wrap_up),
                        ("paused", q.paused),
                        ("unreachable", q.unreachable),
                        ("logged_out", q.logged_out),
                    ] {
                        agents
                            .with_label_values(&[id.as_str(), state])
                            .set(i64::from(n));
                    }
                }
                out.extend(agents.collect());
            }
        }
        if !self.calendars_open.is_empty()
            && let Ok(open) = IntGaugeVec::new(
                Opts::new(
                    "zentrale_calendar_open",
                    "1 while the calendar is open (holidays, closures and overrides included), else 0.",
                ),
                &["calendar"],
            )
        {
            for (id, is_open) in &self.calendars_open {
                open.with_label_values(&[id.as_str()])
                    .set(i64::from(*is_open));
            }
            out.extend(open.collect());
        }
        out
    }
}

/// Seconds from `from` to `to` (ms resolution, never negative).
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// How often the metrics task counts the call events that came in meanwhile (the bus holds
/// [`crate::events::BUS_CAPACITY`] events per subscriber: 4,096 in 20 ms is far beyond any
/// call rate the engine reaches).
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

impl Metrics {
    /// Counts every call event waiting on the feed; false once the bus is closed.
    pub fn drain(&self) -> bool {
        let Ok(mut feed) = self.feed.lock() else {
            return false;
        };
        let Some(events) = feed.as_mut() else {
            return true;
        };
        loop {
            match events.try_recv() {
                Ok(event) => self.observe(&event),
                Err(broadcast::error::TryRecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "metrics fell behind the call events");
                    self.lost(lost);
                }
                Err(broadcast::error::TryRecvError::Empty) => return true,
                Err(broadcast::error::TryRecvError::Closed) => {
                    *feed = None;
                    return false;
                }
            }
        }
    }
}

/// The metrics task: counts the call events on `events` until the bus closes or the engine
/// stops, every [`DRAIN_EVERY`] and at every scrape ([`Metrics::render`]). Never slows a
/// publisher: if it falls behind, the lost events are counted and it carries on.
pub async fn run(
    metrics: Arc<Metrics>,
    events: broadcast::Receiver<Arc<CallEvent>>,
    mut shutdown: Shutdown,
) {
    if let Ok(mut feed) = metrics.feed.lock() {
        *feed = Some(events);
    }
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if !metrics.drain() {
                    break;
                }
            }
            _ = shutdown.stopped() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{BUS_CAPACITY, EventBus};
    use chrono::TimeDelta;

    fn event(call_id: &str, at: DateTime<Utc>, kind: CallEventKind) -> CallEvent {
        CallEvent {
            call_id: call_id.into(),
            at,
            rules_version: "v1".into(),
            kind,
        }
    }

    fn incoming() -> CallEventKind {
        CallEventKind::Incoming {
            transport: "udp".into(),
            dialled: "+493641490".into(),
            caller: None,
        }
    }

    fn ended(reason: &str) -> CallEventKind {
        CallEventKind::Ended {
            reason: reason.into(),
        }
    }

    /// The value of the sample line `series` (name plus labels exactly as rendered).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    #[test]
    fn events_become_counters_and_durations() {
        let metrics = Metrics::new();
        let t0 = Utc::now();
        let at = |secs: i64| t0 + TimeDelta::seconds(secs);
        let events = [
            event("a", at(0), incoming()),
            event("a", at(0), CallEventKind::Answered),
            event(
                "a",
                at(1),
                CallEventKind::Menu {
                    menu: "main".into(),
                    attempt: 1,
                },
            ),
            event(
                "a",
                at(2),
                CallEventKind::Key {
                    key: '1',
                    source: "Rfc4733".into(),
                    barge_in: true,
                },
            ),
            event(
                "a",
                at(3),
                CallEventKind::Queued {
                    queue: "buergerservice".into(),
                    topic: Some("termin".into()),
                },
            ),
            event("a", at(12), ended("caller hung up")),
            event("b", at(0), incoming()),
            event("b", at(0), CallEventKind::Rejected { status: 404 }),
            event("b", at(0), ended("rejected 404")),
            event("c", at(0), incoming()),
            event("c", at(0), CallEventKind::Answered),
            event("c", at(5), CallEventKind::NoInput),
            event(
                "c",
                at(6),
                CallEventKind::Key {
                    key: '#',
                    source: "SipInfo".into(),
                    barge_in: false,
                },
            ),
            event("c", at(6), CallEventKind::AnnounceAndHangUp { topic: None }),
            event("c", at(40), ended("engine hung up: announcement played")),
            // An end whose start we never saw: counted, but no duration.
            event("d", at(0), ended("ended")),
        ];
        for e in &events {
            metrics.observe(e);
        }
        let text = metrics.render(&EngineSnapshot::default());
        let expect = [
            ("zentrale_calls_total", 3.0),
            ("zentrale_calls_answered_total", 2.0),
            ("zentrale_calls_rejected_total{code=\"404\"}", 1.0),
            ("zentrale_menu_entries_total{menu=\"main\"}", 1.0),
            ("zentrale_menu_keys_total{source=\"rfc4733\"}", 1.0),
            ("zentrale_menu_keys_total{source=\"sip_info\"}", 1.0),
            ("zentrale_menu_no_input_total", 1.0),
            ("zentrale_calls_queued_total{queue=\"buergerservice\"}", 1.0),
            ("zentrale_calls_announced_total{topic=\"none\"}", 1.0),
            (
                "zentrale_calls_ended_total{reason_class=\"caller_hangup\"}",
                1.0,
            ),
            ("zentrale_calls_ended_total{reason_class=\"rejected\"}", 1.0),
            (
                "zentrale_calls_ended_total{reason_class=\"engine_hangup\"}",
                1.0,
            ),
            ("zentrale_calls_ended_total{reason_class=\"other\"}", 1.0),
            ("zentrale_call_duration_seconds_count", 3.0),
            ("zentrale_call_duration_seconds_sum", 52.0),
            ("zentrale_call_duration_seconds_bucket{le=\"5\"}", 1.0),
            ("zentrale_call_duration_seconds_bucket{le=\"15\"}", 2.0),
            ("zentrale_call_duration_seconds_bucket{le=\"30\"}", 2.0),
            ("zentrale_call_duration_seconds_bucket{le=\"45\"}", 3.0),
            ("zentrale_call_duration_seconds_bucket{le=\"1800\"}", 3.0),
            ("zentrale_call_duration_seconds_bucket{le=\"+Inf\"}", 3.0),
            ("zentrale_events_processed_total", events.len() as f64),
            ("zentrale_events_lost_total", 0.0),
        ];
        for (series, value) in expect {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE zentrale_call_duration_seconds histogram"));
        assert!(text.contains("# TYPE zentrale_calls_total counter"));
        // No Call-ID or caller number leaks into a label.
        assert!(!text.contains("+493641490"), "{text}");
        // Every call that ended is forgotten.
        assert!(metrics.open.lock().expect("lock").is_empty());
    }

    #[test]
    fn engine_snapshot_is_rendered_with_conventional_names_and_types() {
        let metrics = Metrics::new();
        let snapshot = EngineSnapshot {
            calls_active: 2,
            rtp_pairs_in_use: 3,
            rtp_pairs_callers: 2,
            rtp_pairs_capacity: 5000,
            sip_requests: 10,
            sip_responses: 3,
            sip_dropped: 1,
            rejected_overload: 4,
            shed_overloaded: 6,
            overloaded: true,
            call_queue_full: 0,
            rtp_sent: 500,
            rtp_late: 7,
            rtp_received: 450,
            rtp_lost: 3,
            rtp_frames_skipped: 0,
            rtp_relayed: 900,
            rtp_transcoded: 300,
            reloads_ok: 5,
            reloads_failed: 2,
            rules_version: "abc123".into(),
            calendars_open: vec![("rathaus".into(), true), ("fundbuero".into(), false)],
            events_published: 42,
            records_lost: 3,
            log_lines_dropped: 4,
            queues: vec![(
                "fundbuero".into(),
                crate::acd::service::QueueView {
                    waiting: 3,
                    ringing: 1,
                    longest_wait_secs: 42.5,
                    available: 2,
                    paused: 1,
                    ..Default::default()
                },
            )],
            dispatch: {
                let latency = crate::acd::service::Latency::default();
                latency.record("agent_free", std::time::Duration::from_micros(120));
                latency.record("agent_free", std::time::Duration::from_micros(4000));
                latency.record("caller_joined", std::time::Duration::from_micros(60));
                latency.buckets()
            },
            sip_traffic: {
                let traffic = crate::sip::traffic::SipTraffic::default();
                traffic.sent(b"SIP/2.0 503 Service Unavailable\r\n");
                traffic.request(crate::sip::traffic::Direction::Received, b"INVITE");
                traffic.counts()
            },
        };
        let text = metrics.render(&snapshot);
        let expect = [
            ("zentrale_calls_active", 2.0),
            ("zentrale_rtp_port_pairs_in_use", 3.0),
            ("zentrale_rtp_port_pairs_callers", 2.0),
            ("zentrale_rtp_port_pairs_max", 5000.0),
            ("zentrale_sip_requests_received_total", 10.0),
            ("zentrale_sip_responses_received_total", 3.0),
            ("zentrale_sip_messages_dropped_total", 1.0),
            ("zentrale_calls_rejected_overload_total", 4.0),
            ("zentrale_calls_shed_total", 6.0),
            ("zentrale_overloaded", 1.0),
            ("zentrale_rtp_packets_sent_total", 500.0),
            ("zentrale_rtp_packets_late_total", 7.0),
            ("zentrale_rtp_packets_lost_total", 3.0),
            (
                "zentrale_sip_requests_total{direction=\"received\",method=\"INVITE\"}",
                1.0,
            ),
            (
                "zentrale_sip_requests_total{direction=\"sent\",method=\"other\"}",
                0.0,
            ),
            (
                "zentrale_sip_responses_total{code_class=\"5xx\",direction=\"sent\"}",
                1.0,
            ),
            (
                "zentrale_sip_responses_total{code_class=\"2xx\",direction=\"received\"}",
                0.0,
            ),
            ("zentrale_rtp_packets_received_total", 450.0),
            ("zentrale_rtp_packets_relayed_total", 900.0),
            ("zentrale_rtp_packets_transcoded_total", 300.0),
            ("zentrale_rules_reloads_total{result=\"ok\"}", 5.0),
            ("zentrale_rules_reloads_total{result=\"failed\"}", 2.0),
            ("zentrale_rules_info{version=\"abc123\"}", 1.0),
            ("zentrale_calendar_open{calendar=\"rathaus\"}", 1.0),
            ("zentrale_calendar_open{calendar=\"fundbuero\"}", 0.0),
            ("zentrale_events_published_total", 42.0),
            ("zentrale_records_lost_total", 3.0),
            ("zentrale_log_lines_dropped_total", 4.0),
            (
                "zentrale_queue_callers{queue=\"fundbuero\",status=\"waiting\"}",
                3.0,
            ),
            (
                "zentrale_queue_callers{queue=\"fundbuero\",status=\"ringing\"}",
                1.0,
            ),
            (
                "zentrale_queue_longest_wait_seconds{queue=\"fundbuero\"}",
                42.5,
            ),
            (
                "zentrale_queue_agents{queue=\"fundbuero\",state=\"available\"}",
                2.0,
            ),
            (
                "zentrale_queue_agents{queue=\"fundbuero\",state=\"paused\"}",
                1.0,
            ),
            (
                "zentrale_acd_dispatch_seconds_count{trigger=\"agent_free\"}",
                2.0,
            ),
            (
                "zentrale_acd_dispatch_seconds_bucket{trigger=\"agent_free\",le=\"0.00015\"}",
                1.0,
            ),
            (
                "zentrale_acd_dispatch_seconds_bucket{trigger=\"agent_free\",le=\"0.005\"}",
                2.0,
            ),
            (
                "zentrale_acd_dispatch_seconds_bucket{trigger=\"caller_joined\",le=\"+Inf\"}",
                1.0,
            ),
        ];
        for (series, value) in expect {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE zentrale_calls_active gauge"));
        assert!(text.contains("# TYPE zentrale_overloaded gauge"));
        assert!(text.contains("# TYPE zentrale_calls_shed_total counter"));
        assert!(text.contains("# TYPE zentrale_sip_requests_received_total counter"));
        assert!(text.contains("# TYPE zentrale_rules_info gauge"));
        // Families come sorted by name, each once.
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap_or_default())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn queue_events_become_offered_answered_abandoned_overflowed_and_wait_times() {
        let metrics = Metrics::new();
        let t0 = Utc::now();
        let at = |secs: i64| t0 + TimeDelta::seconds(secs);
        let queued = |queue: &str| CallEventKind::Queued {
            queue: queue.into(),
            topic: None,
        };
        let ring = |agent: &str, queue: &str| CallEventKind::Ring {
            agent: agent.into(),
            queue: queue.into(),
        };
        let ring_ended = |agent: &str, reason: &str| CallEventKind::RingEnded {
            agent: agent.into(),
            reason: reason.into(),
        };
        let connected = |agent: &str| CallEventKind::Connected {
            agent: agent.into(),
        };
        let left = |queue: &str, reason: &str| CallEventKind::LeftQueue {
            queue: queue.into(),
            reason: reason.into(),
        };
        let events = [
            // a: waits 12 s in buergerservice, one agent does not answer, the next does; talks 70 s.
            event("a", at(0), incoming()),
            event("a", at(3), queued("buergerservice")),
            event("a", at(4), ring("anna", "buergerservice")),
            event("a", at(9), ring_ended("anna", "no_answer")),
            event("a", at(10), ring("bernd", "buergerservice")),
            event("a", at(15), connected("bernd")),
            event("a", at(85), ended("caller hung up")),
            // b: hangs up after 25 s while an agent's phone rings.
            event("b", at(0), incoming()),
            event("b", at(1), queued("buergerservice")),
            event("b", at(20), ring("anna", "buergerservice")),
            event("b", at(26), ended("caller hung up")),
            // c: the queue is full, overflows to allgemein after 0 s, answered there after 40 s.
            event("c", at(0), incoming()),
            event("c", at(2), queued("buergerservice")),
            event("c", at(2), left("buergerservice", "full")),
            event("c", at(3), queued("allgemein")),
            event("c", at(42), ring("carla", "allgemein")),
            event("c", at(43), connected("carla")),
            event("c", at(53), ended("engine hung up: agent hung up")),
            // d: leaves by key after 50 s, then hangs up during the announcement.
            event("d", at(0), incoming()),
            event("d", at(10), queued("allgemein")),
            event("d", at(60), left("allgemein", "key")),
            event("d", at(61), ended("caller hung up")),
            // A ring for a call we never saw: ignored, nothing remembered.
            event("x", at(0), ring("anna", "allgemein")),
        ];
        for e in &events {
            metrics.observe(e);
        }
        let snapshot = EngineSnapshot {
            queues: vec![("fundbuero".into(), Default::default())],
            ..Default::default()
        };
        let text = metrics.render(&snapshot);
        let expect = [
            (
                "zentrale_queue_calls_offered_total{queue=\"buergerservice\"}",
                3.0,
            ),
            (
                "zentrale_queue_calls_offered_total{queue=\"allgemein\"}",
                2.0,
            ),
            (
                "zentrale_queue_calls_answered_total{queue=\"buergerservice\"}",
                1.0,
            ),
            (
                "zentrale_queue_calls_answered_total{queue=\"allgemein\"}",
                1.0,
            ),
            (
                "zentrale_queue_calls_abandoned_total{queue=\"buergerservice\"}",
                1.0,
            ),
            (
                "zentrale_queue_calls_overflowed_total{queue=\"buergerservice\",reason=\"full\"}",
                1.0,
            ),
            ("zentrale_queue_calls_left_total{queue=\"allgemein\"}", 1.0),
            // Pre-initialised for a queue of the rules that had no calls yet.
            (
                "zentrale_queue_calls_offered_total{queue=\"fundbuero\"}",
                0.0,
            ),
            (
                "zentrale_queue_wait_seconds_count{outcome=\"answered\",queue=\"fundbuero\"}",
                0.0,
            ),
            (
                "zentrale_queue_wait_seconds_count{outcome=\"answered\",queue=\"buergerservice\"}",
                1.0,
            ),
            (
                "zentrale_queue_wait_seconds_sum{outcome=\"answered\",queue=\"buergerservice\"}",
                12.0,
            ),
            (
                "zentrale_queue_wait_seconds_bucket{outcome=\"answered\",queue=\"buergerservice\",le=\"10\"}",
                0.0,
            ),
            (
                "zentrale_queue_wait_seconds_bucket{outcome=\"answered\",queue=\"buergerservice\",le=\"15\"}",
                1.0,
            ),
            (
                "zentrale_queue_wait_seconds_sum{outcome=\"abandoned\",queue=\"buergerservice\"}",
                25.0,
            ),
            (
                "zentrale_queue_wait_seconds_bucket{outcome=\"abandoned\",queue=\"buergerservice\",le=\"20\"}",
                0.0,
            ),
            (
                "zentrale_queue_wait_seconds_bucket{outcome=\"abandoned\",queue=\"buergerservice\",le=\"30\"}",
                1.0,
            ),
            (
                "zentrale_queue_wait_seconds_bucket{outcome=\"overflowed\",queue=\"buergerservice\",le=\"5\"}",
                1.0,
            ),
            (
                "zentrale_queue_wait_seconds_sum{outcome=\"answered\",queue=\"allgemein\"}",
                40.0,
            ),
            (
                "zentrale_queue_wait_seconds_bucket{outcome=\"answered\",queue=\"allgemein\",le=\"30\"}",
                0.0,
            ),
            (
                "zentrale_queue_wait_seconds_bucket{outcome=\"answered\",queue=\"allgemein\",le=\"45\"}",
                1.0,
            ),
            (
                "zentrale_queue_wait_seconds_sum{outcome=\"left\",queue=\"allgemein\"}",
                50.0,
            ),
            ("zentrale_talk_seconds_count{queue=\"buergerservice\"}", 1.0),
            ("zentrale_talk_seconds_sum{queue=\"buergerservice\"}", 70.0),
            (
                "zentrale_talk_seconds_bucket{queue=\"buergerservice\",le=\"60\"}",
                0.0,
            ),
            (
                "zentrale_talk_seconds_bucket{queue=\"buergerservice\",le=\"120\"}",
                1.0,
            ),
            ("zentrale_talk_seconds_sum{queue=\"allgemein\"}", 10.0),
            (
                "zentrale_agent_rings_total{queue=\"buergerservice\",result=\"no_answer\"}",
                1.0,
            ),
            (
                "zentrale_agent_rings_total{queue=\"buergerservice\",result=\"answered\"}",
                1.0,
            ),
            (
                "zentrale_agent_rings_total{queue=\"buergerservice\",result=\"withdrawn\"}",
                1.0,
            ),
            (
                "zentrale_agent_rings_total{queue=\"allgemein\",result=\"answered\"}",
                1.0,
            ),
            ("zentrale_calls_queued_total{queue=\"buergerservice\"}", 3.0),
            ("zentrale_call_duration_seconds_count", 4.0),
        ];
        for (series, value) in expect {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE zentrale_queue_wait_seconds histogram"));
        // Agent names never become labels.
        for agent in ["anna", "bernd", "carla"] {
            assert!(!text.contains(agent), "{agent} in\n{text}");
        }
        assert!(metrics.open.lock().expect("lock").is_empty());
    }

    #[test]
    fn reason_classes_are_bounded() {
        assert_eq!(reason_class("caller hung up"), "caller_hangup");
        assert_eq!(reason_class("engine hung up: RTP timeout"), "engine_hangup");
        assert_eq!(reason_class("rejected 486"), "rejected");
        assert_eq!(reason_class("ended"), "other");
        assert_eq!(reason_class("anything else"), "other");
        assert_eq!(status_label(42), "other");
        assert_eq!(overflow_reason("max_wait"), "max_wait");
        assert_eq!(overflow_reason("anything"), "other");
        assert_eq!(ring_result("busy"), "busy");
        assert_eq!(ring_result("+4936411234"), "other");
    }

    #[tokio::test]
    async fn a_lagging_task_counts_lost_events_and_carries_on() {
        let bus = EventBus::default();
        let rx = bus.subscribe();
        let metrics = Arc::new(Metrics::new());
        let t0 = Utc::now();
        // More than the bus holds, before the task runs: the oldest 10 are lost.
        for n in 0..(BUS_CAPACITY + 10) {
            bus.publish(event(&format!("c{n}"), t0, CallEventKind::Answered));
        }
        let (controller, shutdown) = crate::shutdown::ShutdownController::new();
        let task = tokio::spawn(run(metrics.clone(), rx, shutdown));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text = metrics.render(&EngineSnapshot::default());
            if sample(&text, "zentrale_calls_answered_total") == Some(BUS_CAPACITY as f64) {
                assert_eq!(sample(&text, "zentrale_events_lost_total"), Some(10.0));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{text}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        controller.advance(crate::shutdown::Phase::Closed);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("task stops on shutdown")
            .expect("task did not panic");
    }
}
