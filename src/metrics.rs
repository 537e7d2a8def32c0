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

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tokio::sync::broadcast;

use crate::events::{CallEvent, CallEventKind};
use crate::shutdown::Shutdown;
use crate::sip::endpoint::Endpoint;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Bucket edges of `zentrale_call_duration_seconds` (incoming → ended), 5 s … 30 min.
pub const CALL_DURATION_BUCKETS: &[f64] = &[
    5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0,
    1800.0,
];

/// Calls whose start we remember for the duration histogram. An `ended` event lost to lag
/// would otherwise leave its start behind forever.
const MAX_OPEN_CALLS: usize = 50_000;
/// Starts older than this are forgotten when the table is full.
const STALE_AFTER_SECS: i64 = 6 * 3600;

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
    events: IntCounter,
    events_lost: IntCounter,
    /// Call-ID → `incoming` time, until the call's `ended` event.
    started: Mutex<HashMap<String, DateTime<Utc>>>,
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
            started: Mutex::new(HashMap::new()),
            registry,
        }
    }

    /// Updates the counters and histograms for one call event.
    pub fn observe(&self, event: &CallEvent) {
        self.events.inc();
        match &event.kind {
            CallEventKind::Incoming { .. } => {
                self.calls.inc();
                self.remember_start(&event.call_id, event.at);
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
            | CallEventKind::Ring { .. }
            | CallEventKind::RingEnded { .. }
            | CallEventKind::Connected { .. }
            | CallEventKind::Announce { .. }
            | CallEventKind::LeftQueue { .. } => {}
            CallEventKind::Key { source, .. } => {
                self.keys.with_label_values(&[key_source(source)]).inc()
            }
            CallEventKind::NoInput => self.no_input.inc(),
            CallEventKind::Queued { queue, .. } => {
                self.queued.with_label_values(&[queue.as_str()]).inc()
            }
            CallEventKind::AnnounceAndHangUp { topic } => self
                .announced
                .with_label_values(&[topic.as_deref().unwrap_or("none")])
                .inc(),
            CallEventKind::Ended { reason } => {
                self.ended.with_label_values(&[reason_class(reason)]).inc();
                let start = self
                    .started
                    .lock()
                    .ok()
                    .and_then(|mut started| started.remove(&event.call_id));
                if let Some(start) = start {
                    let secs = (event.at - start).num_milliseconds().max(0) as f64 / 1000.0;
                    self.duration.observe(secs);
                }
            }
        }
    }

    /// Counts events lost to a lagging subscription.
    pub fn lost(&self, events: u64) {
        self.events_lost.inc_by(events);
    }

    fn remember_start(&self, call_id: &str, at: DateTime<Utc>) {
        let Ok(mut started) = self.started.lock() else {
            return;
        };
        if started.len() >= MAX_OPEN_CALLS {
            started.retain(|_, start| (at - *start).num_seconds() < STALE_AFTER_SECS);
            if started.len() >= MAX_OPEN_CALLS {
                return;
            }
        }
        started.insert(call_id.to_owned(), at);
    }

    /// The exposition text: the event metrics plus `engine`'s values at this moment.
    pub fn render(&self, engine: &EngineSnapshot) -> String {
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
    pub sip_requests: u64,
    pub sip_responses: u64,
    pub sip_dropped: u64,
    pub rejected_overload: u64,
    pub call_queue_full: u64,
    pub rtp_sent: u64,
    pub rtp_late: u64,
    pub rtp_received: u64,
    pub rtp_frames_skipped: u64,
    pub rtp_relayed: u64,
    pub rtp_transcoded: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub rules_version: String,
    /// Calendar id → open right now (holidays, closures and overrides included).
    pub calendars_open: Vec<(String, bool)>,
    pub events_published: u64,
    /// Queue id → live figures from the ACD.
    pub queues: Vec<(String, crate::acd::service::QueueView)>,
    /// The ACD's dispatch latency per trigger: cumulative (upper bound s, count) buckets and
    /// the sum in s.
    pub dispatch: Vec<crate::acd::service::LatencyHistogram>,
}

impl EngineSnapshot {
    pub fn of(endpoint: &Endpoint) -> EngineSnapshot {
        let stats = &endpoint.stats;
        let media = endpoint.media_stats();
        let rules = endpoint.rules().current();
        let now = Utc::now();
        EngineSnapshot {
            calls_active: endpoint.active_calls() as u64,
            sip_requests: stats.requests.load(Ordering::Relaxed),
            sip_responses: stats.responses.load(Ordering::Relaxed),
            sip_dropped: stats.dropped.load(Ordering::Relaxed),
            rejected_overload: stats.rejected_overload.load(Ordering::Relaxed),
            call_queue_full: stats.call_queue_full.load(Ordering::Relaxed),
            rtp_sent: media.packets_sent.load(Ordering::Relaxed),
            rtp_late: media.packets_late.load(Ordering::Relaxed),
            rtp_received: media.packets_received.load(Ordering::Relaxed),
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
            queues: endpoint
                .acd()
                .snapshot()
                .queues
                .iter()
                .map(|(id, q)| (id.clone(), *q))
                .collect(),
            dispatch: endpoint.acd().latency.buckets(),
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
        let plain: [(&str, &str, u64); 13] = [
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
                "New calls refused with 503 because the engine was at its call limit.",
                self.rejected_overload,
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
                "zentrale_calls_active",
                "Calls with a running task (ringing, answered or hanging up).",
                self.calls_active,
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
            info.with_label_values(&[self.rules_version.as_str()])
                .set(1);
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

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The metrics task: applies every call event until the bus closes or the engine stops. Never
/// slows a publisher: if it falls behind, the lost events are counted and it carries on.
pub async fn run(
    metrics: Arc<Metrics>,
    mut events: broadcast::Receiver<Arc<CallEvent>>,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            received = events.recv() => match received {
                Ok(event) => metrics.observe(&event),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "metrics fell behind the call events");
                    metrics.lost(lost);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
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
        assert!(metrics.started.lock().expect("lock").is_empty());
    }

    #[test]
    fn engine_snapshot_is_rendered_with_conventional_names_and_types() {
        let metrics = Metrics::new();
        let snapshot = EngineSnapshot {
            calls_active: 2,
            sip_requests: 10,
            sip_responses: 3,
            sip_dropped: 1,
            rejected_overload: 4,
            call_queue_full: 0,
            rtp_sent: 500,
            rtp_late: 7,
            rtp_received: 450,
            rtp_frames_skipped: 0,
            rtp_relayed: 900,
            rtp_transcoded: 300,
            reloads_ok: 5,
            reloads_failed: 2,
            rules_version: "abc123".into(),
            calendars_open: vec![("rathaus".into(), true), ("fundbuero".into(), false)],
            events_published: 42,
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
        };
        let text = metrics.render(&snapshot);
        let expect = [
            ("zentrale_calls_active", 2.0),
            ("zentrale_sip_requests_received_total", 10.0),
            ("zentrale_sip_responses_received_total", 3.0),
            ("zentrale_sip_messages_dropped_total", 1.0),
            ("zentrale_calls_rejected_overload_total", 4.0),
            ("zentrale_rtp_packets_sent_total", 500.0),
            ("zentrale_rtp_packets_late_total", 7.0),
            ("zentrale_rtp_packets_received_total", 450.0),
            ("zentrale_rtp_packets_relayed_total", 900.0),
            ("zentrale_rtp_packets_transcoded_total", 300.0),
            ("zentrale_rules_reloads_total{result=\"ok\"}", 5.0),
            ("zentrale_rules_reloads_total{result=\"failed\"}", 2.0),
            ("zentrale_rules_info{version=\"abc123\"}", 1.0),
            ("zentrale_calendar_open{calendar=\"rathaus\"}", 1.0),
            ("zentrale_calendar_open{calendar=\"fundbuero\"}", 0.0),
            ("zentrale_events_published_total", 42.0),
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
    fn reason_classes_are_bounded() {
        assert_eq!(reason_class("caller hung up"), "caller_hangup");
        assert_eq!(reason_class("engine hung up: RTP timeout"), "engine_hangup");
        assert_eq!(reason_class("rejected 486"), "rejected");
        assert_eq!(reason_class("ended"), "other");
        assert_eq!(reason_class("anything else"), "other");
        assert_eq!(status_label(42), "other");
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
