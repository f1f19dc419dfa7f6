//! One app process per SQLite database. A second `onramp` on the same file would keep wallet
//! balances and sessions in a memory the first cannot see: [`claim`] refuses it. The lock is an
//! OS lock on a file beside the database; it lives as long as the process and dies with it,
//! however it ends (SIGKILL included). On PostgreSQL several processes serve as one instead,
//! each wallet owned by one of them at a time ([`crate::cluster`]).

use crate::StoreError;
use std::time::{Duration, Instant};

/// The PostgreSQL advisory lock's key ("onramp" in ASCII, as a number). Builds before several
/// processes could share a database took it exclusively; processes of later builds hold it
/// shared ([`crate::cluster::Leases`]), so the two never serve one database together.
pub(crate) const PG_LOCK_KEY: i64 = 0x6f6e_7261_6d70;
/// How long to wait for the lock: a process just killed may hold it a moment longer (until the
/// server notices its connection is gone).
const WAIT: Duration = Duration::from_secs(5);

/// Held for the life of the app process; dropping it releases the database to another one.
pub enum ProcessLock {
    Sqlite(#[allow(dead_code)] std::fs::File),
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another onramp process is using this database ({0}); stop it first (a SQLite database has one app process; several serve one PostgreSQL database)")]
    Taken(String),
    #[error("cannot take the process lock of the database {url}")]
    Failed {
        /// The database, its password masked.
        url: String,
        #[source]
        source: StoreError,
    },
}

/// Takes the database's process lock, waiting a few seconds for a process that just died.
pub async fn claim(url: &str) -> Result<ProcessLock, LockError> {
    let started = Instant::now();
    loop {
        match try_claim(url).await? {
            Some(lock) => return Ok(lock),
            None if started.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            None => return Err(LockError::Taken(crate::redact_url(url))),
        }
    }
}

async fn try_claim(url: &str) -> Result<Option<ProcessLock>, LockError> {
    let failed = |source: StoreError| LockError::Failed {
        url: crate::redact_url(url),
        source,
    };
    if url.starts_with("sqlite:") {
        let path = lock_path(url).map_err(failed)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| failed(StoreError::Database(e.into())))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| failed(StoreError::Database(e.into())))?;
        return match file.try_lock() {
            Ok(()) => Ok(Some(ProcessLock::Sqlite(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(failed(StoreError::Database(e.into()))),
        };
    }
    Err(failed(StoreError::UnsupportedUrl))
}

/// `<database file>.onramp-lock`, beside the database.
fn lock_path(url: &str) -> Result<std::path::PathBuf, StoreError> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let mut path = options.get_filename().as_os_str().to_owned();
    path.push(".onramp-lock");
    Ok(path.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_claim_on_one_sqlite_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/app.db", dir.path().display());
        let first = try_claim(&url).await.unwrap().expect("the first claim");
        assert!(try_claim(&url).await.unwrap().is_none(), "taken");
        drop(first);
        // Through `claim`, which waits a moment as the app does: a child process forked by
        // another test at that instant shares the lock's file until it runs its program.
        assert!(claim(&url).await.is_ok(), "released");
    }
}
