//! Call detail records and the queue event log in a database (SQLite by default, PostgreSQL by
//! `records.database_url`).
//!
//! - The [`EventBus`] feeds a bounded channel (its sink, [`EventBus::attach_sink`]): publishing
//!   never waits; when the channel is full the event is lost, counted in
//!   [`EventBus::records_lost`] (`zentrale_records_lost_total`) and logged.
//! - One writer task ([`run_writer`]) turns events into rows ([`builder`]) and writes them in
//!   batches, one transaction per batch: at the latest [`FLUSH_EVERY`] after the first pending
//!   row, within [`DRAIN_EVERY`] once `records.batch_max` rows are pending, and everything on
//!   shutdown; while a batch is open the writer takes new events every [`DRAIN_EVERY`] rather
//!   than waking for each. A call that ended more than a second ago is therefore committed,
//!   and a `kill -9` does not lose it.
//! - A cleanup job deletes rows older than `records.retention_days`, at start and hourly.
//! - Caller numbers are stored as `records.caller_numbers` says (hashed by default).
//! - [`report`] computes the KPIs of `zentrale report` from the same tables.

pub mod builder;
pub mod report;
mod sqlite_writer;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{CallerNumbers, Settings};
use crate::events::{CallEvent, EventBus};
use crate::shutdown::Shutdown;
use builder::{Builder, CallerFilter, Row};
use store::Store;

/// Pending rows are written at the latest this long after the first of them arrived.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// While a batch is open, the writer takes the events that came in this often (and writes
/// at once when `records.batch_max` rows are pending), rather than waking for each event.
pub const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// After a failed write, the next try waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Rows kept for retrying while the database fails; beyond that the oldest are dropped (and
/// counted as lost).
const MAX_PENDING_ROWS: usize = 100_000;
/// How often the retention cleanup runs.
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);
/// On shutdown, events still arriving this soon after the last one are waited for.
const SHUTDOWN_QUIET: Duration = Duration::from_millis(200);
const SHUTDOWN_MAX: Duration = Duration::from_secs(3);

/// How caller numbers go into the records.
pub fn caller_filter(mode: CallerNumbers, key: Vec<u8>) -> CallerFilter {
    match mode {
        CallerNumbers::Full => Box::new(|number: &str| number.to_string()),
        CallerNumbers::Shortened => {
            Box::new(|number: &str| crate::logging::caller_display(number, false))
        }
        CallerNumbers::Hashed => {
            // Keyed once: each number then costs the hashing of itself only (keying hashes
            // two more blocks).
            let keyed =
                Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
            Box::new(move |number: &str| {
                let mut mac = keyed.clone();
                mac.update(number.trim().as_bytes());
                let digest = mac.finalize().into_bytes();
                // 128 bits: plenty to tell callers apart, no way back to the number.
                format!("hmac:{}", crate::sip::digest::to_hex(&digest[..16]))
            })
        }
    }
}

/// Opens the database, attaches the writer's channel to `bus` and starts the writer and the
/// cleanup job. Fails (for a clear start-up error) if the database cannot be opened.
pub async fn start(
    settings: &Settings,
    bus: &EventBus,
    shutdown: Shutdown,
) -> Result<Vec<JoinHandle<()>>, String> {
    let records = &settings.records;
    let store = Arc::new(Store::open(settings, true).await?);
    let key = if records.caller_numbers == CallerNumbers::Hashed {
        store::caller_key(&settings.data.dir)?
    } else {
        Vec::new()
    };
    let (tx, rx) = mpsc::channel(records.channel_capacity);
    if !bus.attach_sink(tx, builder::wanted) {
        return Err("the call records writer was started twice".into());
    }
    info!(
        database = %store.location,
        caller_numbers = ?records.caller_numbers,
        retention_days = records.retention_days,
        "call records enabled"
    );
    let writer = tokio::spawn(run_writer(
        store.clone(),
        rx,
        Builder::new(caller_filter(records.caller_numbers, key)),
        records.batch_max,
        bus.records_lost.clone(),
        shutdown.clone(),
    ));
    let cleanup = tokio::spawn(run_cleanup(store, records.retention_days, shutdown));
    Ok(vec![writer, cleanup])
}

/// Writes the rows the events make, in batches, until shutdown; then drains the channel and
/// writes the rest.
pub async fn run_writer(
    store: Arc<Store>,
    mut rx: mpsc::Receiver<Arc<CallEvent>>,
    mut builder: Builder,
    batch_max: usize,
    lost: Arc<AtomicU64>,
    mut shutdown: Shutdown,
) {
    let mut pending: Vec<Row> = Vec::new();
    let mut due: Option<tokio::time::Instant> = None;
    let mut writer = Writer {
        store: &store,
        lost: &lost,
    };
    loop {
        if pending.is_empty() && due.is_none() {
            // Idle: wait for the next event.
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => builder.apply_into(&event, &mut pending),
                    None => break,
                },
                _ = shutdown.stopped() => break,
            }
            if !pending.is_empty() {
                due = Some(tokio::time::Instant::now() + FLUSH_EVERY);
            }
            continue;
        }
        // A batch is open: gather what came in every DRAIN_EVERY instead of waking for every
        // event (a call sends about eight).
        let wake = tokio::time::Instant::now() + DRAIN_EVERY;
        tokio::select! {
            _ = tokio::time::sleep_until(due.map_or(wake, |d| d.min(wake))) => {}
            _ = shutdown.stopped() => break,
        }
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(event) => builder.apply_into(&event, &mut pending),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if pending.len() >= batch_max || due.is_some_and(|d| d <= tokio::time::Instant::now()) {
            due = writer.flush(&mut pending).await;
        }
        if due.is_none() && !pending.is_empty() {
            due = Some(tokio::time::Instant::now() + FLUSH_EVERY);
        }
        if closed {
            break;
        }
    }
    // Shutdown: the calls have ended (or were hung up); take what is still coming in.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_MAX;
    while let Ok(Some(event)) = tokio::time::timeout_at(
        deadline.min(tokio::time::Instant::now() + SHUTDOWN_QUIET),
        rx.recv(),
    )
    .await
    {
        builder.apply_into(&event, &mut pending);
    }
    for _ in 0..3 {
        if writer.flush(&mut pending).await.is_none() {
            break;
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
    if !pending.is_empty() {
        lost.fetch_add(pending.len() as u64, Ordering::Relaxed);
        error!(
            rows = pending.len(),
            database = %store.location,
            "call records lost at shutdown: the database did not take them"
        );
    }
    if builder.open_calls() > 0 {
        info!(
            open_calls = builder.open_calls(),
            "calls still open at shutdown have no call record"
        );
    }
    store.close().await;
}

struct Writer<'a> {
    store: &'a Store,
    lost: &'a AtomicU64,
}

impl Writer<'_> {
    /// Writes `pending`; on success empties it and returns None (nothing due), on failure
    /// keeps the rows (up to [`MAX_PENDING_ROWS`]) and returns when to try again.
    async fn flush(&mut self, pending: &mut Vec<Row>) -> Option<tokio::time::Instant> {
        if pending.is_empty() {
            return None;
        }
        match self.store.write(pending).await {
            Ok(()) => {
                pending.clear();
                None
            }
            Err(e) => {
                error!(rows = pending.len(), database = %self.store.location, error = %e,
                    "cannot write call records; retrying");
                if pending.len() > MAX_PENDING_ROWS {
                    let drop = pending.len() - MAX_PENDING_ROWS;
                    pending.drain(..drop);
                    self.lost.fetch_add(drop as u64, Ordering::Relaxed);
                    warn!(
                        rows = drop,
                        "call records dropped: the database has been failing too long"
                    );
                }
                Some(tokio::time::Instant::now() + RETRY_AFTER)
            }
        }
    }
}

/// Deletes records older than `retention_days`, now and every hour, until shutdown.
async fn run_cleanup(store: Arc<Store>, retention_days: u32, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(CLEANUP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days));
                match store.purge(cutoff.timestamp_millis()).await {
                    Ok((calls, events)) if calls + events > 0 => info!(
                        calls, queue_events = events, retention_days,
                        "old call records deleted"
                    ),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "cannot delete old call records"),
                }
            }
            _ = shutdown.stopped() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_numbers_are_hashed_shortened_or_kept() {
        let hashed = caller_filter(CallerNumbers::Hashed, b"0123456789abcdef".to_vec());
        let a = hashed("+4936411234");
        assert!(a.starts_with("hmac:") && a.len() == 5 + 32, "{a}");
        assert_eq!(a, hashed("+4936411234"), "stable per installation");
        assert_ne!(a, hashed("+4936411235"));
        let other_key = caller_filter(CallerNumbers::Hashed, b"another key 1234".to_vec());
        assert_ne!(a, other_key("+4936411234"));
        assert!(!a.contains("1234"));
        let short = caller_filter(CallerNumbers::Shortened, Vec::new());
        assert_eq!(short("+4936411234"), "…34");
        let full = caller_filter(CallerNumbers::Full, Vec::new());
        assert_eq!(full("+4936411234"), "+4936411234");
    }

    #[test]
    fn the_key_prepared_once_gives_the_hmac_of_each_number() {
        let key = b"0123456789abcdef";
        let hashed = caller_filter(CallerNumbers::Hashed, key.to_vec());
        for number in ["+4936411234", "+4936411235", " +49 3641 490 "] {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
            mac.update(number.trim().as_bytes());
            let digest = mac.finalize().into_bytes();
            let expected = format!("hmac:{}", crate::sip::digest::to_hex(&digest[..16]));
            assert_eq!(hashed(number), expected, "{number}");
        }
    }
}
