//! A throwaway PostgreSQL cluster for the tests, started from the installed binaries once per
//! test process (each test then gets its own fresh database in it) and stopped at exit.
//!
//! The binaries are looked up in `ONRAMP_PG_BINDIR`, then Debian's `/usr/lib/postgresql/<v>/bin`,
//! then `PATH`. PostgreSQL refuses to run as root, so as root the cluster runs as the
//! `postgres` user (created by Debian's package).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Cluster {
    pub port: u16,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static PID: AtomicI32 = AtomicI32::new(0);
static DIR: OnceLock<PathBuf> = OnceLock::new();

fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("ONRAMP_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_default()
}

fn run_as_postgres() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn command(bin: &Path, args: &[&str]) -> Command {
    if run_as_postgres() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

extern "C" fn stop_cluster() {
    let pid = PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: sending a signal to our own child. SIGQUIT is PostgreSQL's immediate shutdown.
        unsafe {
            libc::kill(pid, libc::SIGQUIT);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let bin = bindir();
        let dir = std::env::temp_dir().join(format!("onramp-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        DIR.set(dir.clone()).ok();
        if run_as_postgres() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "cannot hand {dir:?} to the postgres user");
        }
        let data = dir.join("data");
        let out = command(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run initdb from {bin:?}: {e} (install PostgreSQL or set ONRAMP_PG_BINDIR)"
            )
        });
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = crate::free_port();
        let child = command(
            &bin.join("postgres"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-p",
                &port.to_string(),
                "-k",
                dir.to_str().unwrap(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=1000",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start postgres");
        // runuser stays the parent of postgres; killing it would orphan the server, so find
        // the postmaster's pid from its pid file instead.
        let pid_file = data.join("postmaster.pid");
        let started = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&pid_file) {
                if s.lines().count() >= 8 && s.contains("ready") {
                    let pid: i32 = s.lines().next().unwrap().trim().parse().unwrap();
                    PID.store(pid, Ordering::SeqCst);
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(child);
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(stop_cluster);
        }
        Cluster { port }
    })
}

impl Cluster {
    /// A URL to a new, empty database.
    pub async fn fresh_database(&self) -> String {
        use sqlx::Connection;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to test cluster");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}
