//! PostgreSQL backend. Several servers may share one database: writers serialize on the revision
//! row (see `SqlStore::begin`), migrations take sqlx's advisory lock, and the pool tests each
//! connection before use so that a database restart costs one failed call, not a broken pool.

use std::str::FromStr;

use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, Pool, Transaction};

use crate::error::{Backend, Error, Result};
use crate::open::{OpenOptions, redact_url};

// The same query code is compiled once per backend; see `sql/mod.rs`.
#[allow(
    clippy::duplicate_mod,
    reason = "shared/ is compiled once for each backend on purpose"
)]
#[path = "shared/mod.rs"]
mod shared;

pub(crate) use shared::SqlStore;

type Db = sqlx::Postgres;
const BACKEND: Backend = Backend::Postgres;
const POOL_TIMEOUT_HINT: &str = "is PostgreSQL running and reachable? check --datastore";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub(crate) async fn open(url: &str, opts: &OpenOptions) -> Result<SqlStore> {
    let connect = PgConnectOptions::from_str(url).map_err(|e| {
        Error::Invalid(format!(
            "cannot parse PostgreSQL URL {}: {e}; write postgres://user[:password]@host[:port]/database",
            redact_url(url)
        ))
    })?;
    let database = connect
        .get_database()
        .unwrap_or(connect.get_username())
        .to_owned();
    let location = format!(
        "PostgreSQL at {}:{} (database {database})",
        connect.get_host(),
        connect.get_port()
    );

    // Probe with one direct connection first: the pool retries a refused connection until its
    // timeout and then reports only "timed out", but at startup the reason is what matters.
    match tokio::time::timeout(opts.acquire_timeout, PgConnection::connect_with(&connect)).await {
        Err(_) => {
            return Err(Error::Unavailable {
                backend: BACKEND,
                detail: format!(
                    "cannot connect to {location}: no answer within {}s — is the host reachable \
                     and PostgreSQL listening there? check --datastore",
                    opts.acquire_timeout.as_secs_f32()
                ),
            });
        }
        Ok(Err(e)) => {
            return Err(connect_error(
                &location,
                &database,
                connect.get_username(),
                e,
            ));
        }
        Ok(Ok(conn)) => {
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing the probe connection failed");
            }
        }
    }

    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections.unwrap_or(10))
        .acquire_timeout(opts.acquire_timeout)
        .test_before_acquire(true)
        .connect_lazy_with(connect);
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| shared::migrate_error(&location, opts.acquire_timeout, e))?;
    tracing::debug!(%location, "datastore open");
    Ok(SqlStore::new(pool, location, opts))
}

fn connect_error(location: &str, database: &str, user: &str, e: sqlx::Error) -> Error {
    let detail = match &e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to {location}: connection refused — is PostgreSQL running? check \
             --datastore"
        ),
        sqlx::Error::Io(io) => format!(
            "cannot connect to {location}: {io} — check the host name and that PostgreSQL is \
             reachable; check --datastore"
        ),
        sqlx::Error::Tls(t) => format!(
            "cannot connect to {location}: TLS failed ({t}); this build speaks plaintext only, so \
             use sslmode=disable or sslmode=prefer in --datastore"
        ),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => format!(
                "cannot connect to {location}: authentication failed for user {user:?} ({}) — \
                 check the user and password in --datastore and PostgreSQL's pg_hba.conf",
                db.message()
            ),
            Some("3D000") => format!(
                "cannot connect to {location}: database {database:?} does not exist — create it \
                 (createdb {database}) or check --datastore"
            ),
            _ => format!(
                "cannot connect to {location}: {} — {}",
                db.message(),
                unavailable_hint(db.as_ref()).unwrap_or("check --datastore")
            ),
        },
        other => format!("cannot connect to {location}: {other} — check --datastore"),
    };
    Error::Unavailable {
        backend: BACKEND,
        detail,
    }
}

async fn begin_write(
    pool: &Pool<Db>,
) -> std::result::Result<Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

/// A read transaction on one snapshot: under PostgreSQL's default READ COMMITTED each
/// statement would see its own.
async fn begin_read(pool: &Pool<Db>) -> std::result::Result<Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
}

/// SQLSTATEs that mean the database cannot work right now, with what to do about them.
fn unavailable_hint(e: &(dyn DatabaseError + 'static)) -> Option<&'static str> {
    let code = e.code()?;
    Some(match code.as_ref() {
        c if c.starts_with("08") => "the connection failed; the next attempt opens a new one",
        "57P01" | "57P02" => "PostgreSQL is shutting down or restarting; retry shortly",
        "57P03" => "PostgreSQL is starting up; retry shortly",
        "53300" => "PostgreSQL has too many connections; lower max_connections elsewhere or retry",
        "53100" => "PostgreSQL's disk is full; free space on the database server",
        "53200" => "PostgreSQL is out of memory; retry shortly",
        "25006" => {
            "this PostgreSQL server is a read-only replica; point --datastore at the primary"
        }
        "40001" | "40P01" => "the transaction conflicted with another one; retry",
        _ => return None,
    })
}
