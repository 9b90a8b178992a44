//! Query code shared by both backends, compiled once for each (see `sql/mod.rs`).
//!
//! The parent module provides `Db` (the sqlx database), `BACKEND`, `POOL_TIMEOUT_HINT`,
//! `begin_write` (how a write transaction starts), `begin_read` (how a read transaction on one
//! snapshot starts) and `unavailable_hint` (which database errors mean "cannot work right now"
//! rather than a bug).

mod agents;
mod bundles;
mod config;
mod entries;
mod issued;
mod resource_status;
mod revocations;
mod status;
mod tokens;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::MigrateError;
use sqlx::{Pool, QueryBuilder, Row, Transaction};

use super::{BACKEND, Db, POOL_TIMEOUT_HINT, begin_read, begin_write, unavailable_hint};
use crate::error::{Backend, Error, Result};
use crate::open::{Clock, OpenOptions};
use crate::selector::SelectorMatch;
use crate::store::DataStore;

type DbRow = <Db as sqlx::Database>::Row;
type DbConn = <Db as sqlx::Database>::Connection;
type Tx = Transaction<'static, Db>;

/// A datastore on one sqlx pool.
pub(crate) struct SqlStore {
    pool: Pool<Db>,
    /// Names the database for messages: "SQLite database /path", "PostgreSQL at host:port …".
    location: String,
    acquire_timeout: Duration,
    clock: Clock,
}

impl SqlStore {
    pub(super) fn new(pool: Pool<Db>, location: String, opts: &OpenOptions) -> Self {
        SqlStore {
            pool,
            location,
            acquire_timeout: opts.acquire_timeout,
            clock: opts.clock.clone(),
        }
    }

    #[cfg(test)]
    #[allow(dead_code, reason = "only the SQLite backend's tests look at the pool")]
    pub(super) fn pool(&self) -> &Pool<Db> {
        &self.pool
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn err(&self, e: sqlx::Error) -> Error {
        map_error(&self.location, self.acquire_timeout, e)
    }

    /// Starts a write transaction and bumps the store-wide revision in it. Taking the revision
    /// row first serializes writers on PostgreSQL as SQLite does by itself, so checks made inside
    /// a write transaction (duplicate entry, compare-and-swap) cannot race.
    async fn begin(&self) -> Result<(Tx, i64)> {
        let mut tx = begin_write(&self.pool).await.map_err(|e| self.err(e))?;
        let revision: i64 = sqlx::query_scalar(
            "UPDATE store_meta SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        Ok((tx, revision))
    }

    /// Starts a read-only transaction whose reads all see one snapshot.
    async fn begin_snapshot(&self) -> Result<Tx> {
        begin_read(&self.pool).await.map_err(|e| self.err(e))
    }

    async fn commit(&self, tx: Tx) -> Result<()> {
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Ends a write transaction: commits it when `result` is `Ok`, rolls it back otherwise.
    async fn finish<T>(&self, tx: Tx, result: Result<T>) -> Result<T> {
        match result {
            Ok(value) => {
                self.commit(tx).await?;
                Ok(value)
            }
            Err(e) => {
                abandon(tx).await;
                Err(e)
            }
        }
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Db>> {
        self.pool.acquire().await.map_err(|e| self.err(e))
    }
}

/// Rolls a transaction back, ignoring failures (the connection is dropped then anyway).
async fn abandon(tx: Tx) {
    if let Err(e) = tx.rollback().await {
        tracing::debug!(error = %e, "rollback of an abandoned transaction failed");
    }
}

/// Reads a column, blaming a failure on the stored data.
fn col<T>(row: &DbRow, name: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(name)
        .map_err(|e| Error::Internal(format!("cannot read column {name}: {e}")))
}

/// One member of a set to match: (column, value) pairs that together identify it, such as
/// `[("sel_type", "unix"), ("sel_value", "uid:0")]` or `[("trust_domain", "example.org")]`.
type Member = Vec<(&'static str, String)>;

/// Appends a join that keeps the owners (`owner_column` of `table`, joined to `outer`) whose set
/// matches `members` as `how` asks. Every row of `table` carries `set_size`, the size of its
/// owner's whole set, so one pass over a covering index answers all four behaviours: count the
/// hits per owner, then compare with the given size (exact, superset) or with `set_size`
/// (exact, subset). `members` must be deduplicated and non-empty.
fn push_set_match(
    qb: &mut QueryBuilder<Db>,
    table: &str,
    owner_column: &str,
    outer: &str,
    members: Vec<Member>,
    how: SelectorMatch,
) {
    let n = members.len();
    let alias = format!("m_{table}");
    qb.push(format!(" JOIN (SELECT {owner_column} FROM {table} WHERE ("));
    for (i, member) in members.into_iter().enumerate() {
        qb.push(if i == 0 { "(" } else { " OR (" });
        for (j, (column, value)) in member.into_iter().enumerate() {
            if j > 0 {
                qb.push(" AND ");
            }
            qb.push(format!("{column} = ")).push_bind(value);
        }
        qb.push(")");
    }
    qb.push(format!(") GROUP BY {owner_column}, set_size"));
    qb.push(match how {
        SelectorMatch::Any => String::new(),
        SelectorMatch::Superset => format!(" HAVING COUNT(*) = {n}"),
        SelectorMatch::Exact => format!(" HAVING COUNT(*) = {n} AND set_size = {n}"),
        SelectorMatch::Subset => " HAVING COUNT(*) = set_size".to_owned(),
    });
    qb.push(format!(") {alias} ON {alias}.{owner_column} = {outer}"));
}

/// The members of a selector set, for [`push_set_match`].
fn selector_members(selectors: Vec<crate::selector::Selector>) -> Vec<Member> {
    selectors
        .into_iter()
        .map(|s| vec![("sel_type", s.r#type), ("sel_value", s.value)])
        .collect()
}

/// A set size as stored.
fn set_size(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Maps a sqlx error met while running a statement to the datastore's error.
pub(super) fn map_error(location: &str, acquire_timeout: Duration, e: sqlx::Error) -> Error {
    let unavailable = |detail: String| Error::Unavailable {
        backend: BACKEND,
        detail,
    };
    match e {
        sqlx::Error::PoolTimedOut => unavailable(format!(
            "no connection to {location} within {}s — {POOL_TIMEOUT_HINT}",
            acquire_timeout.as_secs_f32()
        )),
        sqlx::Error::PoolClosed => unavailable(format!(
            "{location} was closed by this process; reopen the datastore"
        )),
        sqlx::Error::Io(io) => unavailable(format!(
            "I/O error talking to {location}: {io} — is it running and reachable? check \
             --datastore"
        )),
        sqlx::Error::Tls(t) => unavailable(format!(
            "TLS error talking to {location}: {t} — this build speaks plaintext only; use \
             sslmode=disable or sslmode=prefer in --datastore"
        )),
        sqlx::Error::Protocol(p) => unavailable(format!(
            "broken connection to {location} ({p}); the next attempt opens a new one"
        )),
        sqlx::Error::WorkerCrashed => unavailable(format!(
            "the {location} worker thread stopped; the next attempt opens a new connection"
        )),
        sqlx::Error::Database(db) => match unavailable_hint(&*db) {
            Some(hint) => unavailable(format!("{location}: {} — {hint}", db.message())),
            None => Error::Internal(format!(
                "{location} rejected a statement: {} (code {})",
                db.message(),
                db.code().unwrap_or_default()
            )),
        },
        other => Error::Internal(format!("{location}: {other}")),
    }
}

/// Maps a failure to bring the schema up to date.
pub(super) fn migrate_error(location: &str, acquire_timeout: Duration, e: MigrateError) -> Error {
    match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
            map_error(location, acquire_timeout, e)
        }
        MigrateError::VersionMissing(v) => Error::Invalid(format!(
            "{location} has schema migration {v}, which this build of sigil does not know: it was \
             written by a newer sigil. Run that version, or restore a backup"
        )),
        other => Error::Internal(format!(
            "cannot bring the schema of {location} up to date: {other}"
        )),
    }
}

#[async_trait]
impl DataStore for SqlStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn revision(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT revision FROM store_meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
