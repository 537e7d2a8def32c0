//! A throw-away PostgreSQL server for one test: the Debian package `postgresql` (binaries in
//! `/usr/lib/postgresql/<version>/bin/`), `initdb` into a fresh directory, `postgres` listening
//! only on 127.0.0.1 at a free port (socket in the same directory), trust authentication,
//! fsync off. PostgreSQL refuses to run as root: as root, the server runs as `nobody`.
//! Stopped (fast shutdown) and its directory removed on drop. A missing package fails the
//! test with an install hint; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports;

const START_TIMEOUT: Duration = Duration::from_secs(30);

unsafe extern "C" {
    fn geteuid() -> u32;
    fn kill(pid: i32, sig: i32) -> i32;
}

pub struct Postgres {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join("bin"))
                .filter(|bin| bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL not found under /usr/lib/postgresql/*/bin: install the Debian package \
             postgresql (apt-get install -y postgresql) or run scripts/test.sh"
        )
    })
}

/// (uid, gid) to run the server as when we are root: `nobody`.
fn unprivileged() -> Option<(u32, u32)> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "nobody"])
            .output()
            .expect("run id(1)");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("nobody's id")
    };
    Some((id("-u"), id("-g")))
}

fn command(bin: &Path, name: &str, user: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(bin.join(name));
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command.env_remove("PGDATA").env("LC_ALL", "C");
    command
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let user = unprivileged();
        // Under /tmp, not target/: `nobody` must be able to reach it.
        let dir = std::env::temp_dir().join(format!(
            "zentrale-pg-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("create the PostgreSQL dir");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the PostgreSQL dir");
        }
        let data = dir.join("data");
        let out = command(&bin, "initdb", user)
            .args(["-D", &data.display().to_string()])
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .current_dir(&dir)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = ports::free_tcp_port();
        let log = std::fs::File::create(dir.join("postgres.log")).expect("create postgres log");
        let child = command(&bin, "postgres", user)
            .args(["-D", &data.display().to_string()])
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-k", &dir.display().to_string()])
            .args(["-F", "-c", "max_connections=30"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start postgres");
        let mut server = Postgres { child, port, dir };
        server.wait_ready(&bin);
        server
    }

    fn wait_ready(&mut self, bin: &Path) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll postgres") {
                panic!("postgres exited with {status}:\n{}", self.log());
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "postgres not ready within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// The URL for `records.database_url`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGINT: fast shutdown (the server disconnects clients and stops).
            // SAFETY: kill(2) with our own child's pid.
            unsafe {
                kill(self.child.id() as i32, 2);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- postgres log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
