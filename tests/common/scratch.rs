//! Scratch directories for one test: engine data and logs, SIPp statistics and traces.
//!
//! They live under Cargo's `CARGO_TARGET_TMPDIR` (`target/tmp/`), never in the source tree. A
//! directory is removed when its owner is dropped, except while a test is failing: then it is
//! kept and its path printed, so the logs can be read after the run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A fresh, empty directory named `<prefix>-<pid>-<n>-<random>`.
    pub fn new(prefix: &str) -> ScratchDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!(
            "{prefix}-{}-{n}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("zentrale-tests")
            .join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create scratch dir {}: {e}", path.display()));
        ScratchDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: keeping {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
