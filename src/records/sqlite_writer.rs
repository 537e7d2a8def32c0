//! Writes call records into SQLite through `rusqlite` on a thread of its own: one transaction
//! per batch, one cached prepared single-row INSERT per table, values bound straight from the
//! rows.
//!
//! Why not sqlx for this: sqlx's `Any` driver copies every value into an `AnyValue` and then
//! into SQLite arguments, and hands each statement to its SQLite worker thread through a
//! channel; at 5,000 queue-routed calls/s that was ~17 % of the engine's CPU (~40 µs per call
//! of seven rows). Binding `&str`/`i64` to a prepared statement on a connection this thread
//! owns costs a fraction of that. Migrations, reads (reports) and the retention cleanup stay
//! on sqlx; both libraries link the same `libsqlite3-sys` (one SQLite in the binary), and WAL
//! lets the two connections share the file (`busy_timeout` covers the rare overlap of a
//! cleanup with a batch).

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::builder::Row;
use super::store::{CALLS_COLUMNS, CALLS_INSERT, EVENTS_COLUMNS, EVENTS_INSERT, to_ms};

/// The two single-row INSERTs (the store's column lists, one row of `?`), made once when the
/// thread starts and prepared once per connection (`prepare_cached`).
struct Inserts {
    call: String,
    event: String,
}

impl Inserts {
    fn new() -> Inserts {
        let row = |head: &str, columns: usize| format!("{head}({})", vec!["?"; columns].join(", "));
        Inserts {
            call: row(CALLS_INSERT, CALLS_COLUMNS),
            event: row(EVENTS_INSERT, EVENTS_COLUMNS),
        }
    }
}
/// As the sqlx connections have it: a writer waits this long for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A batch for the thread; the rows travel there and back (the caller keeps them for a
/// retry if the write fails, and reuses the vector's capacity when it succeeds).
struct Job {
    rows: Vec<Row>,
    done: oneshot::Sender<(Vec<Row>, rusqlite::Result<()>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the records writer thread: {0}")]
    Thread(std::io::Error),
    #[error("the records writer thread has stopped")]
    Stopped,
}

/// The handle of the writer thread. Dropping it (or [`SqliteWriter::close`]) ends the thread
/// after the batches already sent.
pub struct SqliteWriter {
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl SqliteWriter {
    /// Opens the (migrated, existing) database file read-write and starts the thread.
    pub fn open(path: &Path) -> Result<SqliteWriter, Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The file is in WAL mode already (set by the sqlx connections, kept in the file);
        // synchronous is per connection: NORMAL, a commit is in the WAL when it returns.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let (stopped_tx, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name("records-sqlite".into())
            .spawn(move || {
                let mut conn = conn;
                let inserts = Inserts::new();
                while let Some(job) = rx.blocking_recv() {
                    let result = write(&mut conn, &inserts, &job.rows);
                    let _ = job.done.send((job.rows, result));
                }
                drop(conn);
                let _ = stopped_tx.send(());
            })
            .map_err(Error::Thread)?;
        Ok(SqliteWriter {
            jobs: Mutex::new(Some(jobs)),
            stopped: Mutex::new(Some(stopped)),
        })
    }

    /// Writes `rows` in one transaction on the thread. The rows are moved there and put back
    /// into `rows` when it answers (also on failure, for a retry); if this future is dropped
    /// before then, or the thread is gone, they are lost.
    pub async fn write(&self, rows: &mut Vec<Row>) -> Result<(), Error> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            rows: std::mem::take(rows),
            done,
        };
        let sent = {
            let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            match jobs.as_ref() {
                Some(jobs) => jobs.send(job).map_err(|mpsc::error::SendError(job)| job),
                None => Err(job),
            }
        };
        if let Err(job) = sent {
            *rows = job.rows;
            return Err(Error::Stopped);
        }
        let (back, result) = answer.await.map_err(|_| Error::Stopped)?;
        *rows = back;
        result.map_err(Error::from)
    }

    /// Ends the thread after the batches already sent and waits until its connection is
    /// closed.
    pub async fn close(&self) {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
    }
}

/// One transaction for the batch; rows in the order given.
fn write(conn: &mut Connection, inserts: &Inserts, rows: &[Row]) -> rusqlite::Result<()> {
    // IMMEDIATE: take the write lock at BEGIN, where the busy timeout applies cleanly.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut call = tx.prepare_cached(&inserts.call)?;
        let mut event = tx.prepare_cached(&inserts.event)?;
        for row in rows {
            match row {
                Row::Call(c) => call.execute(params![
                    c.call_id,
                    c.started_at_ms,
                    c.answered_at_ms,
                    c.ended_at_ms,
                    c.transport,
                    c.dialled,
                    c.caller,
                    c.topic,
                    c.first_queue,
                    c.final_queue,
                    c.queued_at_ms,
                    c.connected_at_ms,
                    c.agent,
                    c.outcome,
                    c.end_reason,
                    c.reject_status,
                    c.wait_secs.map(to_ms),
                    c.talk_secs.map(to_ms),
                    c.rules_version,
                ])?,
                Row::Queue(q) => event.execute(params![
                    q.at_ms,
                    q.call_id,
                    q.queue,
                    q.agent,
                    q.kind,
                    q.reason,
                    q.wait_secs.map(to_ms),
                    q.topic,
                    q.detail,
                ])?,
            };
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::builder::{CallRow, QueueRow};

    /// A fresh database file with the records schema, removed on drop.
    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new(schema: bool) -> TempDb {
            let path = std::env::temp_dir().join(format!(
                "zentrale-writer-{}-{:08x}.sqlite",
                std::process::id(),
                rand::random::<u32>()
            ));
            let conn = Connection::open(&path).expect("create the test database");
            if schema {
                conn.execute_batch(include_str!("../../migrations/0001_records.sql"))
                    .expect("schema");
            }
            TempDb(path)
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = self.0.clone().into_os_string();
                name.push(suffix);
                let _ = std::fs::remove_file(name);
            }
        }
    }

    fn call(id: &str) -> Row {
        Row::Call(CallRow {
            call_id: id.into(),
            started_at_ms: 1_000,
            answered_at_ms: Some(1_010),
            ended_at_ms: 9_000,
            transport: Some("udp".into()),
            dialled: "490".into(),
            caller: None,
            topic: Some("fundbuero".into()),
            first_queue: Some("fundbuero".into()),
            final_queue: Some("fundbuero".into()),
            queued_at_ms: Some(2_000),
            connected_at_ms: None,
            agent: None,
            outcome: "abandoned".into(),
            end_reason: "caller hung up".into(),
            reject_status: Some(486),
            wait_secs: Some(1.2345),
            talk_secs: None,
            rules_version: "v7".into(),
        })
    }

    fn event(id: &str, at_ms: i64, kind: &str) -> Row {
        Row::Queue(QueueRow {
            at_ms,
            call_id: id.into(),
            queue: Some("fundbuero".into()),
            agent: None,
            kind: kind.into(),
            reason: None,
            wait_secs: Some(0.5),
            topic: None,
            detail: Some("available".into()),
        })
    }

    #[tokio::test]
    async fn a_batch_is_written_in_order_with_its_values() {
        let db = TempDb::new(true);
        let writer = SqliteWriter::open(&db.0).expect("open");
        let mut rows = vec![event("a", 5, "enter"), call("a"), event("a", 6, "abandon")];
        writer.write(&mut rows).await.expect("write");
        assert_eq!(rows.len(), 3, "the rows come back for the caller to clear");
        writer.close().await;

        let conn = Connection::open(&db.0).expect("reopen");
        let (id, wait, status, caller): (String, i64, i32, Option<String>) = conn
            .query_row(
                "SELECT call_id, wait_ms, reject_status, caller FROM calls",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("the call row");
        assert_eq!((id.as_str(), wait, status, caller), ("a", 1_235, 486, None));
        let kinds: Vec<(String, i64, Option<String>)> = conn
            .prepare("SELECT kind, wait_ms, detail FROM queue_events ORDER BY rowid")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            kinds,
            [
                ("enter".into(), 500, Some("available".into())),
                ("abandon".into(), 500, Some("available".into()))
            ]
        );
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_failed_batch_keeps_its_rows_and_writes_none_of_them() {
        let db = TempDb::new(false);
        let conn = Connection::open(&db.0).expect("open");
        // Only queue_events: the call row fails, after the first event went in.
        conn.execute_batch(
            "CREATE TABLE queue_events (at_ms BIGINT NOT NULL, call_id TEXT NOT NULL, \
             queue TEXT, agent TEXT, kind TEXT NOT NULL, reason TEXT, wait_ms BIGINT, \
             topic TEXT, detail TEXT)",
        )
        .expect("table");
        let writer = SqliteWriter::open(&db.0).expect("open");
        let mut rows = vec![event("b", 1, "enter"), call("b")];
        let result = writer.write(&mut rows).await;
        assert!(matches!(result, Err(Error::Sqlite(_))), "{result:?}");
        assert_eq!(
            rows,
            [event("b", 1, "enter"), call("b")],
            "kept for a retry"
        );
        let count: i64 = conn
            .query_row("SELECT count(*) FROM queue_events", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 0, "the transaction was rolled back");

        writer.close().await;
        let mut more = vec![event("c", 2, "enter")];
        assert!(matches!(writer.write(&mut more).await, Err(Error::Stopped)));
        assert_eq!(more.len(), 1, "a closed writer hands the rows back");
    }
}
