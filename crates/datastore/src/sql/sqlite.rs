//! SQLite backend: one database file in WAL mode with `synchronous=FULL` (a commit is on disk
//! before it is acknowledged), `BEGIN IMMEDIATE` write transactions (so two writers never
//! deadlock upgrading a read lock), a busy timeout, and foreign keys on.

use std::path::{Path, PathBuf};

use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Transaction};

use crate::error::{Backend, Error, Result};
use crate::open::OpenOptions;

// The same query code is compiled once per backend; see `sql/mod.rs`.
#[allow(
    clippy::duplicate_mod,
    reason = "shared/ is compiled once for each backend on purpose"
)]
#[path = "shared/mod.rs"]
mod shared;

pub(crate) use shared::SqlStore;

type Db = sqlx::Sqlite;
const BACKEND: Backend = Backend::Sqlite;
const POOL_TIMEOUT_HINT: &str =
    "every connection is busy (a long transaction or another process holds the write lock); retry";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens the database file at `path` (or a private in-memory database for `None`).
pub(crate) async fn open(path: Option<PathBuf>, opts: &OpenOptions) -> Result<SqlStore> {
    let base = SqliteConnectOptions::new()
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(opts.sqlite_busy_timeout)
        .foreign_keys(true);
    let (connect, location, pool_options) = match &path {
        Some(path) => {
            check_directory(path)?;
            let pool = SqlitePoolOptions::new().max_connections(opts.max_connections.unwrap_or(4));
            let location = format!("SQLite database {}", path.display());
            (base.filename(path).create_if_missing(true), location, pool)
        }
        None => {
            // Every connection to ":memory:" is its own database: keep exactly one, forever.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            (
                base.in_memory(true),
                "in-memory SQLite database".to_owned(),
                pool,
            )
        }
    };
    let pool = pool_options
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(|e| connect_error(&location, e))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| shared::migrate_error(&location, opts.acquire_timeout, e))?;
    tracing::debug!(%location, "datastore open");
    Ok(SqlStore::new(pool, location, opts))
}

/// SQLite reports a missing directory as "unable to open database file"; say what is wrong.
fn check_directory(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => return Ok(()),
    };
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "cannot create SQLite database {}: directory {} does not exist — create it or check \
             --datastore",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

fn connect_error(location: &str, e: sqlx::Error) -> Error {
    let detail = match &e {
        sqlx::Error::Database(db) if primary_code(db.as_ref()) == Some(26) => {
            return Error::Invalid(format!(
                "cannot open {location}: the file is not an SQLite database — check that \
                 --datastore points at sigil's database file"
            ));
        }
        sqlx::Error::Database(db) => match unavailable_hint(db.as_ref()) {
            Some(hint) => format!("cannot open {location}: {} — {hint}", db.message()),
            None => format!(
                "cannot open {location}: {} — check --datastore and the file's permissions",
                db.message()
            ),
        },
        other => format!("cannot open {location}: {other} — check the path and its permissions"),
    };
    Error::Unavailable {
        backend: BACKEND,
        detail,
    }
}

async fn begin_write(
    pool: &Pool<Db>,
) -> std::result::Result<Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// A read transaction: in WAL mode its first read fixes the snapshot every later read sees.
async fn begin_read(pool: &Pool<Db>) -> std::result::Result<Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

/// The primary result code (the low byte of SQLite's extended code).
fn primary_code(e: &(dyn DatabaseError + 'static)) -> Option<i64> {
    e.code()
        .and_then(|c| c.parse::<i64>().ok())
        .map(|c| c & 0xff)
}

/// Errors that mean the database cannot work right now, with what to do about them.
fn unavailable_hint(e: &(dyn DatabaseError + 'static)) -> Option<&'static str> {
    Some(match primary_code(e)? {
        5 | 6 => {
            "the database is locked by another connection or process; retry, and check that \
                  no other program keeps it open in a transaction"
        }
        8 => "the database file is read-only; check its permissions and those of its directory",
        10 => "disk I/O error; check the disk and the file system",
        13 => "the disk is full; free space",
        14 => "the database file cannot be opened; check the path and its permissions",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pragmas_make_commits_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(Some(dir.path().join("ds.db")), &OpenOptions::default())
            .await
            .unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL (2)");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(busy, 5000);
    }

    #[tokio::test]
    async fn missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("ds.db");
        match open(Some(path), &OpenOptions::default()).await {
            Err(Error::Invalid(msg)) => {
                assert!(
                    msg.contains("nope") && msg.contains("does not exist"),
                    "{msg}"
                )
            }
            Err(other) => panic!("expected Invalid, got {other:?}"),
            Ok(_) => panic!("expected Invalid, got a store"),
        }
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        match open(Some(path), &OpenOptions::default()).await {
            Err(Error::Invalid(msg)) => assert!(msg.contains("not an SQLite database"), "{msg}"),
            Err(other) => panic!("expected Invalid, got {other:?}"),
            Ok(_) => panic!("expected Invalid, got a store"),
        }
    }
}
