//! `zentrale report`: queue KPIs from the queue event log and the call records.
//!
//! The unit is a **queue visit**: a caller entering a queue and leaving it again (answered by
//! an agent, hung up while waiting, sent elsewhere by an overflow rule, or gone by the leave
//! key). A caller who overflows from one queue to another counts once in each. A visit counts
//! in the period in which it ended. The definitions are in the README ("Reports") and in
//! [`DEFINITIONS`].

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use serde::Serialize;

use super::builder::{CallRow, QueueRow};

/// Threshold of the service level for queues the rules don't give one.
pub const DEFAULT_SERVICE_LEVEL_SECS: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Day,
    Hour,
    Topic,
    Queue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub queue: Option<String>,
    pub by: By,
    pub short_abandon_secs: u32,
    /// Each queue's service-level threshold (`service_level.within_secs` in the rules).
    pub service_level_secs: HashMap<String, u32>,
}

impl Spec {
    fn threshold(&self, queue: &str) -> u32 {
        self.service_level_secs
            .get(queue)
            .copied()
            .unwrap_or(DEFAULT_SERVICE_LEVEL_SECS)
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Kpis {
    pub group: String,
    pub offered: u64,
    pub answered: u64,
    pub answered_within_service_level: u64,
    pub abandoned: u64,
    pub short_abandons: u64,
    pub overflowed: u64,
    pub left_by_key: u64,
    pub service_level_percent: Option<f64>,
    pub abandon_rate_percent: Option<f64>,
    pub asa_secs: Option<f64>,
    pub aht_secs: Option<f64>,
    pub longest_wait_secs: Option<f64>,
    #[serde(skip)]
    wait_answered: f64,
    #[serde(skip)]
    talk_sum: f64,
    #[serde(skip)]
    talk_count: u64,
}

impl Kpis {
    fn finish(&mut self) {
        // The canonical SL30 (research/ux-metrics.md, and deploy/recording.yml): answered +
        // abandoned + overflowed, short abandons out; callers who left by key count neither way.
        let base = self.offered - self.short_abandons - self.left_by_key;
        let pct = |n: u64, d: u64| (d > 0).then(|| round2(n as f64 * 100.0 / d as f64));
        self.service_level_percent = pct(self.answered_within_service_level, base);
        self.abandon_rate_percent = pct(self.abandoned, base);
        self.asa_secs =
            (self.answered > 0).then(|| round2(self.wait_answered / self.answered as f64));
        self.aht_secs =
            (self.talk_count > 0).then(|| round2(self.talk_sum / self.talk_count as f64));
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub queue: Option<String>,
    pub by: By,
    pub short_abandon_secs: u32,
    pub service_level_secs: BTreeMap<String, u32>,
    pub rows: Vec<Kpis>,
    pub total: Kpis,
    pub service_level_formula: String,
    pub definitions: BTreeMap<&'static str, &'static str>,
}

/// The KPI definitions (also in the README).
pub const DEFINITIONS: &[(&str, &str)] = &[
    (
        "offered",
        "queue visits that ended in the period: answered + abandoned + short abandons + overflowed + left by key",
    ),
    (
        "answered",
        "visits that ended with the caller connected to an agent",
    ),
    (
        "abandoned",
        "visits that ended with the caller hanging up while waiting, after waiting more than short_abandon_secs",
    ),
    (
        "short_abandons",
        "callers who hung up after waiting short_abandon_secs or less; left out of service level and abandon rate",
    ),
    (
        "overflowed",
        "visits ended by the queue's rules: full, max_wait or no_agents (the caller went on elsewhere)",
    ),
    (
        "left_by_key",
        "visits the caller left with the queue's leave key",
    ),
    (
        "service_level_percent",
        "answered within the queue's service_level.within_secs (wait <= threshold) / (offered - short_abandons - left_by_key) * 100",
    ),
    (
        "abandon_rate_percent",
        "abandoned / (offered - short_abandons - left_by_key) * 100",
    ),
    (
        "asa_secs",
        "average speed of answer: mean wait (queue entry to connected) of answered visits",
    ),
    (
        "aht_secs",
        "average handle time: mean talk time (connected to end of call) of answered calls that have ended; wrap-up not included",
    ),
    (
        "longest_wait_secs",
        "the longest wait of any visit (answered, abandoned, overflowed or left)",
    ),
];

fn group_key(by: By, row: &QueueRow) -> String {
    let local = || {
        Utc.timestamp_millis_opt(row.at_ms)
            .single()
            .unwrap_or_default()
            .with_timezone(&Berlin)
    };
    match by {
        By::Day => local().format("%Y-%m-%d").to_string(),
        By::Hour => local().format("%Y-%m-%d %H:00").to_string(),
        By::Topic => row.topic.clone().unwrap_or_else(|| "-".into()),
        By::Queue => row.queue.clone().unwrap_or_else(|| "-".into()),
    }
}

/// The KPIs of the visits that ended in the spec's period, grouped as it says. `calls`
/// supplies the talk times (by Call-ID) of answered calls.
pub fn compute(events: &[QueueRow], calls: &[CallRow], spec: &Spec) -> Report {
    let talk: HashMap<&str, f64> = calls
        .iter()
        .filter_map(|c| Some((c.call_id.as_str(), c.talk_secs?)))
        .collect();
    let (from_ms, to_ms) = (spec.from.timestamp_millis(), spec.to.timestamp_millis());
    let mut groups: BTreeMap<String, Kpis> = BTreeMap::new();
    let mut total = Kpis {
        group: "total".into(),
        ..Kpis::default()
    };
    let mut used = BTreeMap::new();
    for row in events {
        if row.at_ms < from_ms || row.at_ms >= to_ms {
            continue;
        }
        if !matches!(
            row.kind.as_str(),
            "connect" | "abandon" | "overflow" | "leave"
        ) {
            continue;
        }
        let queue = row.queue.clone().unwrap_or_default();
        if spec.queue.as_ref().is_some_and(|q| *q != queue) {
            continue;
        }
        let threshold = spec.threshold(&queue);
        used.insert(queue.clone(), threshold);
        let key = group_key(spec.by, row);
        let group = groups.entry(key.clone()).or_insert_with(|| Kpis {
            group: key,
            ..Kpis::default()
        });
        for k in [group, &mut total] {
            let wait = row.wait_secs.unwrap_or(0.0);
            k.offered += 1;
            k.longest_wait_secs = Some(k.longest_wait_secs.unwrap_or(0.0).max(wait));
            match row.kind.as_str() {
                "connect" => {
                    k.answered += 1;
                    k.wait_answered += wait;
                    if wait <= f64::from(threshold) {
                        k.answered_within_service_level += 1;
                    }
                    if let Some(t) = talk.get(row.call_id.as_str()) {
                        k.talk_sum += t;
                        k.talk_count += 1;
                    }
                }
                "abandon" => {
                    if wait <= f64::from(spec.short_abandon_secs) {
                        k.short_abandons += 1;
                    } else {
                        k.abandoned += 1;
                    }
                }
                "overflow" => k.overflowed += 1,
                _ => k.left_by_key += 1,
            }
        }
    }
    let mut rows: Vec<Kpis> = groups.into_values().collect();
    for k in &mut rows {
        k.finish();
    }
    total.finish();
    let thresholds = if used.is_empty() {
        format!("{DEFAULT_SERVICE_LEVEL_SECS} s")
    } else {
        let distinct: std::collections::BTreeSet<u32> = used.values().copied().collect();
        if distinct.len() == 1 {
            format!(
                "{} s",
                distinct
                    .iter()
                    .next()
                    .unwrap_or(&DEFAULT_SERVICE_LEVEL_SECS)
            )
        } else {
            used.iter()
                .map(|(q, s)| format!("{q} {s} s"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let service_level_formula = format!(
        "service level = answered within {thresholds} / (offered - short abandons <= {} s - left by key) x 100",
        spec.short_abandon_secs
    );
    Report {
        from: spec
            .from
            .with_timezone(&Berlin)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        to: spec
            .to
            .with_timezone(&Berlin)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        queue: spec.queue.clone(),
        by: spec.by,
        short_abandon_secs: spec.short_abandon_secs,
        service_level_secs: used,
        rows,
        total,
        service_level_formula,
        definitions: DEFINITIONS.iter().copied().collect(),
    }
}

/// Each queue's service-level threshold from the rules in `dir`; queues without one, or all
/// when the rules can't be read (the note says why), get [`DEFAULT_SERVICE_LEVEL_SECS`].
pub fn thresholds_from_rules(dir: &std::path::Path) -> (HashMap<String, u32>, Option<String>) {
    match crate::rules::load_dir(dir) {
        Ok(rules) => (
            rules
                .queues
                .iter()
                .filter_map(|(id, q)| Some((id.clone(), q.service_level.as_ref()?.within_secs)))
                .collect(),
            None,
        ),
        Err(_) => (
            HashMap::new(),
            Some(format!(
                "note: the rules in {} could not be read (`zentrale rules check`); every queue's \
                 service level uses {DEFAULT_SERVICE_LEVEL_SECS} s",
                dir.display()
            )),
        ),
    }
}

/// Reads the records the settings point at and computes the report.
pub async fn run(settings: &crate::config::Settings, spec: &Spec) -> Result<Report, String> {
    let store = super::store::Store::open(settings, false).await?;
    let read = |e: sqlx::Error| format!("cannot read the records in {}: {e}", store.location);
    let events = store
        .queue_events(spec.from.timestamp_millis(), spec.to.timestamp_millis())
        .await
        .map_err(read)?;
    // Talk times of calls answered in the period: they end at or after it.
    let calls = store
        .calls(spec.from.timestamp_millis(), i64::MAX)
        .await
        .map_err(read)?;
    store.close().await;
    Ok(compute(&events, &calls, spec))
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map(|v| format!("{v:.1}{unit}"))
        .unwrap_or_else(|| "-".into())
}

const COLUMNS: &[&str] = &[
    "offered",
    "answered",
    "abandoned",
    "short_abandons",
    "overflowed",
    "left_by_key",
    "service_level_percent",
    "abandon_rate_percent",
    "asa_secs",
    "aht_secs",
    "longest_wait_secs",
];

fn cells(k: &Kpis, unit_pct: &str, unit_s: &str) -> Vec<String> {
    vec![
        k.group.clone(),
        k.offered.to_string(),
        k.answered.to_string(),
        k.abandoned.to_string(),
        k.short_abandons.to_string(),
        k.overflowed.to_string(),
        k.left_by_key.to_string(),
        opt(k.service_level_percent, unit_pct),
        opt(k.abandon_rate_percent, unit_pct),
        opt(k.asa_secs, unit_s),
        opt(k.aht_secs, unit_s),
        opt(k.longest_wait_secs, unit_s),
    ]
}

/// The report as text in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Csv => {
            let by = serde_json::to_value(report.by)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut out = format!("{by},{}\n", COLUMNS.join(","));
            for k in report.rows.iter().chain(std::iter::once(&report.total)) {
                let line: Vec<String> = cells(k, "", "")
                    .into_iter()
                    .map(|c| {
                        if c == "-" {
                            String::new()
                        } else {
                            csv_field(&c)
                        }
                    })
                    .collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            out
        }
        Format::Table => {
            let header = [
                "",
                "offered",
                "answered",
                "abandoned",
                "short",
                "overflow",
                "left",
                "SL",
                "aband.",
                "ASA",
                "AHT",
                "longest",
            ];
            let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
            for k in &report.rows {
                lines.push(cells(k, " %", " s"));
            }
            lines.push(cells(&report.total, " %", " s"));
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    lines
                        .iter()
                        .map(|l| l[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let mut out = format!(
                "Queue report {} – {}{}\n\n",
                report.from,
                report.to,
                report
                    .queue
                    .as_ref()
                    .map(|q| format!(", queue {q}"))
                    .unwrap_or_default()
            );
            let last = lines.len() - 1;
            for (n, line) in lines.iter().enumerate() {
                if n == last {
                    let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                    out.push_str(&"-".repeat(rule));
                    out.push('\n');
                }
                let cols: Vec<String> = line
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(i, (c, w))| {
                        let pad = w - c.chars().count();
                        if i == 0 {
                            format!("{c}{}", " ".repeat(pad))
                        } else {
                            format!("{}{c}", " ".repeat(pad))
                        }
                    })
                    .collect();
                out.push_str(cols.join("  ").trim_end());
                out.push('\n');
            }
            out.push('\n');
            out.push_str(&report.service_level_formula);
            out.push('\n');
            out.push_str(&format!(
                "abandoned = hung up after waiting > {0} s; short = hung up after waiting <= {0} s \
                 (left out of SL and abandon rate)\n\
                 ASA = mean wait of answered visits; AHT = mean talk time (wrap-up not included); \
                 a visit counts in the period it ended in\n",
                report.short_abandon_secs
            ));
            out
        }
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A `--from`/`--to` value: `YYYY-MM-DD` (local midnight in Europe/Berlin; for `--to` the end
/// of that day), `YYYY-MM-DDTHH:MM[:SS]` (local), or RFC 3339 with an offset.
pub fn parse_time(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = |naive: NaiveDateTime| {
        Berlin
            .from_local_datetime(&naive)
            .earliest()
            // A time skipped when clocks go forward: an hour later exists.
            .or_else(|| {
                Berlin
                    .from_local_datetime(&(naive + Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("{text}: not a valid local time in Europe/Berlin"))
    };
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let date = if end_of_day {
            date.succ_opt().ok_or("date out of range")?
        } else {
            date
        };
        return local(date.and_hms_opt(0, 0, 0).ok_or("bad date")?);
    }
    for pattern in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, pattern) {
            return local(naive);
        }
    }
    Err(format!(
        "{text:?} is not a time; use YYYY-MM-DD, YYYY-MM-DDTHH:MM (Europe/Berlin) or RFC 3339 \
         (2026-11-24T09:00:00+01:00)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(at_s: i64, queue: &str, kind: &str, wait: f64, call: &str) -> QueueRow {
        QueueRow {
            at_ms: 1_800_000_000_000 + at_s * 1000,
            call_id: call.into(),
            queue: Some(queue.into()),
            agent: None,
            kind: kind.into(),
            reason: None,
            wait_secs: Some(wait),
            topic: Some(queue.into()),
            detail: None,
        }
    }

    fn call(id: &str, talk: f64) -> CallRow {
        CallRow {
            call_id: id.into(),
            started_at_ms: 0,
            answered_at_ms: None,
            ended_at_ms: 0,
            transport: None,
            dialled: "490".into(),
            caller: None,
            topic: None,
            first_queue: None,
            final_queue: None,
            queued_at_ms: None,
            connected_at_ms: None,
            agent: None,
            outcome: "answered_by_agent".into(),
            end_reason: "x".into(),
            reject_status: None,
            wait_secs: None,
            talk_secs: Some(talk),
            rules_version: "v".into(),
        }
    }

    #[test]
    fn kpis_follow_their_definitions() {
        let events = vec![
            visit(1, "q", "enter", 0.0, "a"),
            visit(10, "q", "connect", 10.0, "a"),
            visit(20, "q", "connect", 40.0, "b"),
            visit(30, "q", "abandon", 2.0, "c"),
            visit(40, "q", "abandon", 12.0, "d"),
            visit(50, "q", "overflow", 50.0, "e"),
            visit(60, "other", "connect", 1.0, "f"),
        ];
        let spec = Spec {
            from: Utc.timestamp_millis_opt(1_800_000_000_000).unwrap(),
            to: Utc.timestamp_millis_opt(1_800_000_100_000).unwrap(),
            queue: Some("q".into()),
            by: By::Queue,
            short_abandon_secs: 5,
            service_level_secs: HashMap::from([("q".to_string(), 20)]),
        };
        let report = compute(&events, &[call("a", 30.0), call("b", 60.0)], &spec);
        let k = &report.total;
        assert_eq!(k.offered, 5);
        assert_eq!(k.answered, 2);
        assert_eq!(k.answered_within_service_level, 1);
        assert_eq!(k.short_abandons, 1);
        assert_eq!(k.abandoned, 1);
        assert_eq!(k.overflowed, 1);
        assert_eq!(k.service_level_percent, Some(25.0)); // 1 / (5 - 1)
        assert_eq!(k.abandon_rate_percent, Some(25.0));
        assert_eq!(k.asa_secs, Some(25.0));
        assert_eq!(k.aht_secs, Some(45.0));
        assert_eq!(k.longest_wait_secs, Some(50.0));
        assert_eq!(report.rows.len(), 1);
        assert!(
            report.service_level_formula.contains("within 20 s"),
            "{}",
            report.service_level_formula
        );
        let table = render(&report, Format::Table);
        assert!(
            table.contains("service level = answered within 20 s"),
            "{table}"
        );
        let csv = render(&report, Format::Csv);
        assert!(csv.starts_with("queue,offered,answered"), "{csv}");
        assert!(
            csv.contains("\ntotal,5,2,1,1,1,0,25.0,25.0,25.0,45.0,50.0\n"),
            "{csv}"
        );
    }

    #[test]
    fn times_are_local_to_jena() {
        assert_eq!(
            parse_time("2026-11-24", false).unwrap().to_rfc3339(),
            "2026-11-23T23:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-11-24", true).unwrap().to_rfc3339(),
            "2026-11-24T23:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-07-01T10:00", false).unwrap().to_rfc3339(),
            "2026-07-01T08:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-07-01T10:00:00Z", false)
                .unwrap()
                .to_rfc3339(),
            "2026-07-01T10:00:00+00:00"
        );
        assert!(parse_time("yesterday", false).is_err());
    }
}
