//! Opening a datastore from a `--datastore` value.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::sql;
use crate::store::DataStore;

/// The accepted `--datastore` forms, for error messages.
pub const ACCEPTED_FORMS: &str = "sqlite:///absolute/path.db, sqlite://relative/path.db, \
     sqlite::memory:, a plain file path (SQLite), or postgres://user@host:port/database \
     (also postgresql://…)";

/// Where "now" comes from when the store stamps `created_at` / `updated_at`: unix seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in unix seconds.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// Knobs for [`open`]. The defaults suit a server.
#[derive(Clone)]
pub struct OpenOptions {
    /// How long an operation waits for a connection before failing with `Unavailable`; this is
    /// how fast a down database is reported. Also bounds the first connection at open.
    pub acquire_timeout: Duration,
    /// Pool size; `None` picks 4 for SQLite (one writer at a time anyway) and 10 for PostgreSQL.
    pub max_connections: Option<u32>,
    /// How long an SQLite statement waits for another process's write lock.
    pub sqlite_busy_timeout: Duration,
    /// Source of `created_at` / `updated_at` stamps.
    pub clock: Clock,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            acquire_timeout: Duration::from_secs(5),
            max_connections: None,
            sqlite_busy_timeout: Duration::from_secs(5),
            clock: system_clock(),
        }
    }
}

impl fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenOptions")
            .field("acquire_timeout", &self.acquire_timeout)
            .field("max_connections", &self.max_connections)
            .field("sqlite_busy_timeout", &self.sqlite_busy_timeout)
            .finish_non_exhaustive()
    }
}

/// A parsed `--datastore` value. `Debug` hides a PostgreSQL password.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite database file (created if missing).
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database, for tests: one connection, gone when closed.
    SqliteMemory,
    /// A PostgreSQL connection URL, as given.
    Postgres(String),
}

impl Location {
    /// Parses `sqlite:///abs/path.db`, `sqlite://rel/path.db`, `sqlite::memory:`, a plain path,
    /// or a `postgres://` / `postgresql://` URL.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::Invalid(format!(
                "the datastore location is empty; give one of: {ACCEPTED_FORMS}"
            )));
        }
        if s == "sqlite::memory:" || s == "sqlite://:memory:" {
            return Ok(Location::SqliteMemory);
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(Error::Invalid(format!(
                    "{s:?} names no file; write sqlite:///absolute/path.db or \
                     sqlite://relative/path.db"
                )));
            }
            if path.contains('?') {
                return Err(Error::Invalid(format!(
                    "{s:?}: query parameters are not supported in an SQLite location; the store \
                     sets its own options (WAL, synchronous=FULL, foreign keys)"
                )));
            }
            return Ok(Location::SqliteFile(PathBuf::from(path)));
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            // sqlx's short form, `sqlite:relative/path.db`.
            return Location::parse(&format!("sqlite://{path}"));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Location::Postgres(s.to_owned()));
        }
        if let Some(scheme) = url_scheme(s) {
            return Err(Error::Invalid(format!(
                "unsupported datastore scheme {scheme:?} in {:?}; accepted forms: {ACCEPTED_FORMS}",
                redact_url(s)
            )));
        }
        Ok(Location::SqliteFile(PathBuf::from(s)))
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::SqliteFile(p) => f.debug_tuple("SqliteFile").field(p).finish(),
            Location::SqliteMemory => f.write_str("SqliteMemory"),
            Location::Postgres(url) => f.debug_tuple("Postgres").field(&redact_url(url)).finish(),
        }
    }
}

/// The scheme of `s` if it looks like `scheme://…`, so that a URL of another database is not
/// taken for a file name.
fn url_scheme(s: &str) -> Option<&str> {
    let (scheme, rest) = s.split_once(':')?;
    let looks_like_scheme = !scheme.is_empty()
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (looks_like_scheme && rest.starts_with("//")).then_some(scheme)
}

/// Hides a password in a URL (`postgres://u:secret@h` → `postgres://u:***@h`) for messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => {
                format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Opens (creating if needed) the datastore at `url_or_path` and brings its schema up to date.
///
/// Accepted forms: see [`ACCEPTED_FORMS`]. SQLite runs in WAL mode with `synchronous=FULL`, so an
/// acknowledged write survives a crash or power loss; PostgreSQL connections are plaintext.
/// A database that cannot be reached fails within [`OpenOptions::acquire_timeout`] with
/// [`Error::Unavailable`] naming the address and what to check.
pub async fn open(url_or_path: &str, opts: OpenOptions) -> Result<Arc<dyn DataStore>> {
    let location = Location::parse(url_or_path)?;
    open_location(location, opts).await
}

/// [`open`] for an already parsed location.
pub async fn open_location(location: Location, opts: OpenOptions) -> Result<Arc<dyn DataStore>> {
    match location {
        Location::SqliteFile(path) => {
            let store = sql::sqlite::open(Some(path), &opts).await?;
            Ok(Arc::new(store))
        }
        Location::SqliteMemory => {
            let store = sql::sqlite::open(None, &opts).await?;
            Ok(Arc::new(store))
        }
        Location::Postgres(url) => {
            let store = sql::postgres::open(&url, &opts).await?;
            Ok(Arc::new(store))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let cases = [
            (
                "sqlite:///var/lib/sigil/ds.db",
                Location::SqliteFile("/var/lib/sigil/ds.db".into()),
            ),
            (
                "sqlite://data/ds.db",
                Location::SqliteFile("data/ds.db".into()),
            ),
            ("/tmp/x.db", Location::SqliteFile("/tmp/x.db".into())),
            ("ds.db", Location::SqliteFile("ds.db".into())),
            ("C:db", Location::SqliteFile("C:db".into())),
            ("sqlite::memory:", Location::SqliteMemory),
            ("sqlite:ds.db", Location::SqliteFile("ds.db".into())),
            (
                "postgres://postgres@127.0.0.1/sigil",
                Location::Postgres("postgres://postgres@127.0.0.1/sigil".into()),
            ),
            (
                "postgresql://h:5433/db",
                Location::Postgres("postgresql://h:5433/db".into()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Location::parse(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn bad_locations_name_the_accepted_forms() {
        for input in ["mysql://u:pw@h/db", "SQLITE://x.db", "http://x"] {
            match Location::parse(input) {
                Err(Error::Invalid(msg)) => {
                    assert!(
                        msg.contains("unsupported datastore scheme"),
                        "{input}: {msg}"
                    );
                    assert!(msg.contains("sqlite:///absolute/path.db"), "{input}: {msg}");
                    assert!(msg.contains("postgres://"), "{input}: {msg}");
                    assert!(!msg.contains(":pw@"), "password leaked: {msg}");
                }
                other => panic!("{input}: expected Invalid, got {other:?}"),
            }
        }
        for input in ["", "  ", "sqlite://", "sqlite:", "sqlite://x.db?mode=ro"] {
            assert!(
                matches!(Location::parse(input), Err(Error::Invalid(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        let shown = format!("{:?}", Location::parse("postgres://u:secret@h/db").unwrap());
        assert_eq!(shown, r#"Postgres("postgres://u:***@h/db")"#);
    }
}
