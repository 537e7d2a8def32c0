//! The records database: SQLite (default, a file in `data.dir`, WAL) or PostgreSQL, through
//! sqlx's `Any` driver with one set of portable SQL. Versioned migrations (`migrations/*.sql`,
//! embedded) run on open. Batches of rows go to SQLite through [`SqliteWriter`] (rusqlite on a
//! thread of its own, far cheaper per row), to PostgreSQL as multi-row INSERTs through sqlx.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row as _, SqlStr};

use super::builder::{CallRow, QueueRow, Row};
use super::sqlite_writer::{self, SqliteWriter};
use crate::config::Settings;

/// The INSERTs of the two tables up to `VALUES ` (PostgreSQL adds numbered placeholders per
/// row, [`SqliteWriter`] one row of `?`), with their column counts.
pub(super) const CALLS_INSERT: &str = "INSERT INTO calls (call_id, started_at_ms, answered_at_ms, \
    ended_at_ms, transport, dialled, caller, topic, first_queue, final_queue, queued_at_ms, \
    connected_at_ms, agent, outcome, end_reason, reject_status, wait_ms, talk_ms, rules_version) \
    VALUES ";
pub(super) const CALLS_COLUMNS: usize = 19;
pub(super) const EVENTS_INSERT: &str = "INSERT INTO queue_events (at_ms, call_id, queue, agent, \
    kind, reason, wait_ms, topic, detail) VALUES ";
pub(super) const EVENTS_COLUMNS: usize = 9;
/// Most rows per statement (powers of two): well under PostgreSQL's 65,535 parameters.
const CALLS_PER_STATEMENT: usize = 64;
const EVENTS_PER_STATEMENT: usize = 128;

/// `head` followed by `rows` groups of `columns` numbered placeholders, `($1, $2), ($3, $4)`
/// (PostgreSQL; SQLite rows go through [`SqliteWriter`]).
fn multi_insert(head: &str, columns: usize, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(head.len() + rows * columns * 6);
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "${}", row * columns + column + 1);
        }
        sql.push(')');
    }
    sql
}

/// Splits `n` rows into statements of power-of-two sizes up to `max` (100 → 64, 32, 4), so
/// that a connection prepares at most a handful of distinct statements per table and reuses
/// them from its statement cache, whatever the batch sizes.
fn statement_sizes(mut n: usize, max: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n >= max {
            max
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        n -= size;
        Some(size)
    })
}

/// `items` cut into consecutive slices of [`statement_sizes`].
fn statement_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut start = 0;
    statement_sizes(items.len(), max).map(move |size| {
        let chunk = &items[start..start + size];
        start += size;
        chunk
    })
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "calls and queue events",
        include_str!("../../migrations/0001_records.sql"),
    ),
    (
        2,
        "queue events without the call_id index",
        include_str!("../../migrations/0002_queue_events_without_call_id_index.sql"),
    ),
];

/// The SQLite file in `data.dir` when `records.database_url` is empty.
pub const SQLITE_FILE: &str = "zentrale.sqlite";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] sqlite_writer::Error),
}

pub struct Store {
    pool: AnyPool,
    /// SQLite: the writer thread that takes the batches ([`Store::write`]).
    sqlite: Option<SqliteWriter>,
    pub backend: Backend,
    /// Where the data is, for messages (a PostgreSQL URL without its password).
    pub location: String,
}

/// The migrations, oldest first; a new schema version is a new file here (never edit one that
/// shipped: sqlx checks their checksums).
fn migrator() -> Migrator {
    migrator_of(MIGRATIONS)
}

/// A migrator for these migrations (tests make a database as an older version left it).
fn migrator_of(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

/// The database URL the settings name, the backend, and a printable location.
pub fn resolve(settings: &Settings) -> (String, Backend, String) {
    let url = settings.records.database_url.trim();
    if url.is_empty() {
        let path = settings.data.dir.join(SQLITE_FILE);
        (
            format!("sqlite://{}", path.display()),
            Backend::Sqlite,
            path.display().to_string(),
        )
    } else if url.starts_with("sqlite:") {
        (url.to_string(), Backend::Sqlite, url.to_string())
    } else {
        (url.to_string(), Backend::Postgres, without_password(url))
    }
}

fn without_password(url: &str) -> String {
    // postgres://user:secret@host/db → postgres://user:***@host/db
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

fn sqlite_path(url: &str) -> PathBuf {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

impl Store {
    /// Opens (for `create`: creating the SQLite file and its folder) and migrates the database.
    pub async fn open(settings: &Settings, create: bool) -> Result<Store, String> {
        sqlx::any::install_default_drivers();
        let (url, backend, location) = resolve(settings);
        let mut connect_url = url.clone();
        if backend == Backend::Sqlite {
            let path = sqlite_path(&url);
            if create {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        format!("cannot create the records folder {}: {e}", dir.display())
                    })?;
                }
            } else if !path.exists() {
                return Err(format!(
                    "no records database at {} (zentrale serve creates it; check data.dir or \
                     records.database_url)",
                    path.display()
                ));
            }
            if !url.contains("mode=") {
                connect_url.push_str(if url.contains('?') { "&" } else { "?" });
                connect_url.push_str(if create { "mode=rwc" } else { "mode=rw" });
            }
        }
        let mut options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 2 } else { 4 })
            .acquire_timeout(std::time::Duration::from_secs(10));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL: readers (reports) never block the writer. NORMAL: a commit is in
                    // the WAL file when it returns, so a killed process loses nothing (only a
                    // power cut can lose the last commits).
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(&connect_url)
            .await
            .map_err(|e| format!("cannot open the records database {location}: {e}"))?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| format!("records database {location}: migration failed: {e}"))?;
        let sqlite = match backend {
            Backend::Sqlite => {
                // The file as SQLite itself names it for sqlx's connection (sqlx decodes the
                // URL its own way): the writer must open that very file.
                let file: String =
                    sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                        .fetch_one(&pool)
                        .await
                        .map_err(|e| format!("records database {location}: {e}"))?;
                if file.is_empty() {
                    return Err(format!(
                        "records database {location}: an in-memory SQLite database cannot hold \
                         the records (name a file)"
                    ));
                }
                Some(
                    SqliteWriter::open(Path::new(&file))
                        .map_err(|e| format!("cannot open the records database {location}: {e}"))?,
                )
            }
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            sqlite,
            backend,
            location,
        })
    }

    /// Writes `rows` in one transaction. SQLite: the rows are moved to the writer thread and
    /// put back into `rows` when it answers (also on failure, for a retry; if this future is
    /// dropped before then, they are lost). PostgreSQL: multi-row INSERTs, one statement per
    /// chunk of rows rather than per row (each statement is a round trip).
    pub async fn write(&self, rows: &mut Vec<Row>) -> Result<(), WriteError> {
        match &self.sqlite {
            Some(writer) => Ok(writer.write(rows).await?),
            None => Ok(self.write_postgres(rows).await?),
        }
    }

    async fn write_postgres(&self, rows: &[Row]) -> Result<(), sqlx::Error> {
        let (mut calls, mut events): (Vec<&CallRow>, Vec<&QueueRow>) = (Vec::new(), Vec::new());
        for row in rows {
            match row {
                Row::Call(c) => calls.push(c),
                Row::Queue(q) => events.push(q),
            }
        }
        let mut tx = self.pool.begin().await?;
        for chunk in statement_chunks(&calls, CALLS_PER_STATEMENT) {
            let sql = multi_insert(CALLS_INSERT, CALLS_COLUMNS, chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in chunk {
                query = query
                    .bind(&c.call_id)
                    .bind(c.started_at_ms)
                    .bind(c.answered_at_ms)
                    .bind(c.ended_at_ms)
                    .bind(&c.transport)
                    .bind(&c.dialled)
                    .bind(&c.caller)
                    .bind(&c.topic)
                    .bind(&c.first_queue)
                    .bind(&c.final_queue)
                    .bind(c.queued_at_ms)
                    .bind(c.connected_at_ms)
                    .bind(&c.agent)
                    .bind(&c.outcome)
                    .bind(&c.end_reason)
                    .bind(c.reject_status)
                    .bind(c.wait_secs.map(to_ms))
                    .bind(c.talk_secs.map(to_ms))
                    .bind(&c.rules_version);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in statement_chunks(&events, EVENTS_PER_STATEMENT) {
            let sql = multi_insert(EVENTS_INSERT, EVENTS_COLUMNS, chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for q in chunk {
                query = query
                    .bind(q.at_ms)
                    .bind(&q.call_id)
                    .bind(&q.queue)
                    .bind(&q.agent)
                    .bind(&q.kind)
                    .bind(&q.reason)
                    .bind(q.wait_secs.map(to_ms))
                    .bind(&q.topic)
                    .bind(&q.detail);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Deletes calls that ended and queue events that happened before `before_ms`; returns
    /// how many rows of each went.
    pub async fn purge(&self, before_ms: i64) -> Result<(u64, u64), sqlx::Error> {
        let calls = sqlx::query("DELETE FROM calls WHERE ended_at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let events = sqlx::query("DELETE FROM queue_events WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok((calls, events))
    }

    /// Calls that ended in `[from_ms, to_ms)`.
    pub async fn calls(&self, from_ms: i64, to_ms: i64) -> Result<Vec<CallRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT call_id, started_at_ms, answered_at_ms, ended_at_ms, transport, dialled, \
             caller, topic, first_queue, final_queue, queued_at_ms, connected_at_ms, agent, \
             outcome, end_reason, reject_status, wait_ms, talk_ms, rules_version \
             FROM calls WHERE ended_at_ms >= $1 AND ended_at_ms < $2 ORDER BY ended_at_ms",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(call_row).collect()
    }

    /// Queue and agent events in `[from_ms, to_ms)`, in order.
    pub async fn queue_events(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<QueueRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at_ms, call_id, queue, agent, kind, reason, wait_ms, topic, detail \
             FROM queue_events WHERE at_ms >= $1 AND at_ms < $2 ORDER BY at_ms",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueRow {
                    at_ms: r.try_get("at_ms")?,
                    call_id: r.try_get("call_id")?,
                    queue: r.try_get("queue")?,
                    agent: r.try_get("agent")?,
                    kind: r.try_get("kind")?,
                    reason: r.try_get("reason")?,
                    wait_secs: secs(r.try_get("wait_ms")?),
                    topic: r.try_get("topic")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

/// Seconds (the rows' unit) to the database's milliseconds.
pub(super) fn to_ms(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

fn secs(ms: Option<i64>) -> Option<f64> {
    ms.map(|ms| ms as f64 / 1000.0)
}

fn call_row(r: &AnyRow) -> Result<CallRow, sqlx::Error> {
    Ok(CallRow {
        call_id: r.try_get("call_id")?,
        started_at_ms: r.try_get("started_at_ms")?,
        answered_at_ms: r.try_get("answered_at_ms")?,
        ended_at_ms: r.try_get("ended_at_ms")?,
        transport: r.try_get("transport")?,
        dialled: r.try_get("dialled")?,
        caller: r.try_get("caller")?,
        topic: r.try_get("topic")?,
        first_queue: r.try_get("first_queue")?,
        final_queue: r.try_get("final_queue")?,
        queued_at_ms: r.try_get("queued_at_ms")?,
        connected_at_ms: r.try_get("connected_at_ms")?,
        agent: r.try_get("agent")?,
        outcome: r.try_get("outcome")?,
        end_reason: r.try_get("end_reason")?,
        reject_status: r.try_get("reject_status")?,
        wait_secs: secs(r.try_get("wait_ms")?),
        talk_secs: secs(r.try_get("talk_ms")?),
        rules_version: r.try_get("rules_version")?,
    })
}

/// The per-installation key for hashed caller numbers: 32 random bytes in
/// `<data.dir>/records.key` (hex), made on first use, readable by the owner only.
pub fn caller_key(data_dir: &Path) -> Result<Vec<u8>, String> {
    let path = data_dir.join("records.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => crate::sip::digest::from_hex(text.trim())
            .filter(|k| k.len() >= 16)
            .ok_or_else(|| format!("{}: not a hex key (delete it to make a new one; hashed caller numbers then change)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
            let key: [u8; 32] = rand::random();
            write_private(&path, &crate::sip::digest::to_hex(&key))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(key.to_vec())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            without_password("postgres://zentrale:geheim@db:5432/zentrale"),
            "postgres://zentrale:***@db:5432/zentrale"
        );
        assert_eq!(without_password("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/z/r.sqlite?mode=rwc"),
            PathBuf::from("/var/lib/z/r.sqlite")
        );
        assert_eq!(sqlite_path("sqlite://data/x"), PathBuf::from("data/x"));
    }

    /// A database an engine of schema version 1 left behind is upgraded in place when this
    /// version opens it: its rows stay, `queue_events` loses its `call_id` index.
    #[tokio::test]
    async fn a_version_1_database_is_upgraded_in_place() {
        let (dir, settings) = scratch_settings();
        std::fs::create_dir_all(&dir).expect("data dir");
        let path = dir.join(SQLITE_FILE);
        sqlx::any::install_default_drivers();
        let old = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("create the old database");
        migrator_of(&MIGRATIONS[..1])
            .run(&old)
            .await
            .expect("schema version 1");
        sqlx::query("INSERT INTO queue_events (at_ms, call_id, kind) VALUES (5, 'old', 'enter')")
            .execute(&old)
            .await
            .expect("an old row");
        old.close().await;

        let store = Store::open(&settings, false)
            .await
            .expect("open and upgrade");
        let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&store.pool)
            .await
            .expect("version");
        let indexes = record_indexes(&store).await;
        let events = store.queue_events(0, i64::MAX).await.expect("events");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(version, 2);
        assert_eq!(
            indexes,
            ["calls_call_id", "calls_ended_at", "queue_events_at"]
        );
        let ids: Vec<(i64, &str)> = events
            .iter()
            .map(|e| (e.at_ms, e.call_id.as_str()))
            .collect();
        assert_eq!(ids, [(5, "old")]);
    }

    /// The lookup the README and migration 0002 give operators for one call's events.
    const ONE_CALLS_EVENTS: &str = "SELECT e.* FROM calls c JOIN queue_events e \
         ON e.call_id = c.call_id AND e.at_ms >= c.started_at_ms \
         AND e.at_ms <= c.ended_at_ms + 3600000 \
         WHERE c.call_id = 'x' ORDER BY e.at_ms";

    /// A fresh data directory and the settings that point the records there.
    fn scratch_settings() -> (PathBuf, Settings) {
        let dir = std::env::temp_dir().join(format!(
            "zentrale-store-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let settings = Settings::load_from(
            None,
            [("ZENTRALE_DATA__DIR".to_string(), dir.display().to_string())],
        )
        .expect("settings");
        (dir, settings)
    }

    async fn record_indexes(store: &Store) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' \
             AND tbl_name IN ('calls', 'queue_events') ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .expect("indexes")
    }

    /// What an operator looking up one call by its Call-ID relies on after schema version 2:
    /// the call by `calls_call_id`, its events by time (`queue_events_at`), no full scan.
    #[tokio::test]
    async fn one_calls_events_are_found_through_indexes_without_the_call_id_index() {
        let (dir, settings) = scratch_settings();
        let store = Store::open(&settings, true).await.expect("create");
        assert_eq!(
            record_indexes(&store).await,
            ["calls_call_id", "calls_ended_at", "queue_events_at"]
        );
        store.close().await;
        let conn = rusqlite::Connection::open(dir.join(SQLITE_FILE)).expect("open the file");
        let mut explain = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", ONE_CALLS_EVENTS))
            .expect("explain");
        let plan: Vec<String> = explain
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        drop(explain);
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(plan.iter().any(|s| s.contains("calls_call_id")), "{plan:?}");
        assert!(
            plan.iter().any(|s| s.contains("queue_events_at")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|s| s.starts_with("SCAN")),
            "no full scan: {plan:?}"
        );
    }
}

#[cfg(test)]
mod insert_tests {
    use super::{multi_insert, statement_chunks, statement_sizes};

    #[test]
    fn multi_row_inserts_number_their_placeholders_row_by_row() {
        assert_eq!(
            multi_insert("INSERT INTO t (a, b) VALUES ", 2, 3),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)"
        );
        assert_eq!(multi_insert("X ", 1, 1), "X ($1)");
    }

    #[test]
    fn batches_split_into_few_statement_sizes() {
        let sizes = |n| statement_sizes(n, 64).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(100), [64, 32, 4]);
        assert_eq!(sizes(200), [64, 64, 64, 8]);
        assert_eq!(sizes(63), [32, 16, 8, 4, 2, 1]);
        for n in 0..300 {
            let sizes = statement_sizes(n, 64).collect::<Vec<_>>();
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|s| s.is_power_of_two() && *s <= 64));
        }
        let items: Vec<u32> = (0..7).collect();
        let chunks: Vec<&[u32]> = statement_chunks(&items, 4).collect();
        assert_eq!(chunks, [&[0, 1, 2, 3][..], &[4, 5], &[6]]);
    }
}
