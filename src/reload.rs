//! Hot reload of a value loaded from a directory (the routing rules): the current version is
//! read lock-free by every new call, a reload loads and validates a complete new value first and
//! swaps it in atomically, and a failed reload leaves the running version in force.
//!
//! Calls keep the `Arc` they started with, so a reload never changes a call in progress.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::shutdown::Shutdown;

/// Loads a complete value from a directory or explains, for the operator, why it cannot.
pub type Loader<T> = dyn Fn(&Path) -> Result<T, String> + Send + Sync;

/// Why a reload was attempted (for logs and the API's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    FileChange,
    Signal,
    Api,
}

pub struct HotReload<T> {
    dir: PathBuf,
    current: ArcSwap<T>,
    loader: Box<Loader<T>>,
    /// Serialises reloads: two triggers at once must not interleave load and swap.
    reloading: Mutex<()>,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Counts successful reloads, for whoever must follow them (the ACD).
    generation: tokio::sync::watch::Sender<u64>,
}

impl<T: Send + Sync + 'static> HotReload<T> {
    /// Loads the first version; start-up fails if it is invalid.
    pub fn load(dir: impl Into<PathBuf>, loader: Box<Loader<T>>) -> Result<Arc<Self>, String> {
        let dir = dir.into();
        let first = loader(&dir)?;
        Ok(Arc::new(HotReload {
            dir,
            current: ArcSwap::from_pointee(first),
            loader,
            reloading: Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
            generation: tokio::sync::watch::Sender::new(0),
        }))
    }

    /// The version new calls use.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Changes after every successful reload.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Loads and validates the directory again; swaps only if it is valid.
    pub fn reload(&self, trigger: Trigger) -> Result<Arc<T>, String> {
        let _one_at_a_time = self.reloading.lock();
        match (self.loader)(&self.dir) {
            Ok(value) => {
                let value = Arc::new(value);
                self.current.store(value.clone());
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                self.generation.send_modify(|g| *g += 1);
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                info!(?trigger, dir = %self.dir.display(), "rules reloaded");
                Ok(value)
            }
            Err(message) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                error!(?trigger, dir = %self.dir.display(), errors = %message,
                    "rules change refused; the running rules stay in force");
                if let Ok(mut e) = self.last_error.lock() {
                    *e = Some(message.clone());
                }
                Err(message)
            }
        }
    }
}

/// How long the directory must be quiet before a change is loaded: editors write a file in
/// several steps (temp file, rename, attributes), and one save must be one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches the directory (recursively) and SIGHUP, reloading after each quiet period, until
/// shutdown. Returns when the transports close.
pub async fn watch<T: Send + Sync + 'static>(store: Arc<HotReload<T>>, mut shutdown: Shutdown) {
    let (tx, mut rx) = mpsc::channel::<()>(16);
    let watcher = {
        let tx = tx.clone();
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Full channel = a reload is already pending; nothing is lost.
            if let Ok(event) = event
                && !matches!(event.kind, notify::EventKind::Access(_))
            {
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(store.dir(), RecursiveMode::Recursive).map(|_| w))
    };
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(dir = %store.dir().display(), error = %e,
                "cannot watch the rules directory; reload with SIGHUP or the API instead");
            None
        }
    };
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            _ = shutdown.stopped() => return,
            _ = next_hangup(&mut hangup) => reload_off_thread(&store, Trigger::Signal).await,
            Some(()) = rx.recv() => {
                // Debounce: wait until no event arrived for DEBOUNCE.
                loop {
                    tokio::select! {
                        more = rx.recv() => if more.is_none() { break },
                        _ = tokio::time::sleep(DEBOUNCE) => break,
                    }
                }
                reload_off_thread(&store, Trigger::FileChange).await;
            }
        }
    }
}

/// Loading reads files and decodes audio: keep it off the async worker threads that carry
/// calls.
async fn reload_off_thread<T: Send + Sync + 'static>(store: &Arc<HotReload<T>>, trigger: Trigger) {
    let store = store.clone();
    let _ = tokio::task::spawn_blocking(move || store.reload(trigger)).await;
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = hangup {
        signal.recv().await;
        return;
    }
    let _ = hangup;
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number_loader() -> Box<Loader<u32>> {
        Box::new(|dir: &Path| {
            let text =
                std::fs::read_to_string(dir.join("value")).map_err(|e| format!("value: {e}"))?;
            text.trim()
                .parse()
                .map_err(|e| format!("value:1: not a number ({e})"))
        })
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("zentrale-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_bad_change_keeps_the_running_version() {
        let dir = temp_dir("bad");
        std::fs::write(dir.join("value"), "1").expect("write");
        let store = HotReload::load(&dir, number_loader()).expect("first load");
        let held_by_a_call = store.current();
        std::fs::write(dir.join("value"), "2").expect("write");
        assert_eq!(*store.reload(Trigger::Api).expect("valid"), 2);
        assert_eq!(*store.current(), 2);
        assert_eq!(*held_by_a_call, 1, "a running call keeps its version");
        std::fs::write(dir.join("value"), "zwei").expect("write");
        let err = store.reload(Trigger::Api).expect_err("invalid");
        assert!(err.contains("value:1"), "{err}");
        assert_eq!(*store.current(), 2, "old rules stay in force");
        assert_eq!(store.reloads_failed.load(Ordering::Relaxed), 1);
        assert_eq!(store.last_error().as_deref(), Some(err.as_str()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn file_changes_are_picked_up_once_debounced() {
        let dir = temp_dir("watch");
        std::fs::write(dir.join("value"), "1").expect("write");
        let store = HotReload::load(&dir, number_loader()).expect("first load");
        let (controller, shutdown) = crate::shutdown::ShutdownController::new();
        let task = tokio::spawn(watch(store.clone(), shutdown));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Several writes in quick succession: one reload after the quiet period.
        for v in ["5", "6", "7"] {
            std::fs::write(dir.join("value"), v).expect("write");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while *store.current() != 7 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(*store.current(), 7);
        controller.advance(crate::shutdown::Phase::Closed);
        task.await.expect("watch task");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
