//! The datastore's one error type, grouped by blame: the caller (`NotFound`, `AlreadyExists`,
//! `Expired`, `Conflict`, `Invalid`), the environment (`Unavailable`), and us (`Internal`).

use std::fmt;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// A datastore failure. Every message says what happened and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The record does not exist. `id` is the key looked up (join tokens are shown redacted).
    #[error("{what} {id:?} not found; list them to see which exist")]
    NotFound { what: &'static str, id: String },

    /// A record with the same key already exists. `id` is the key of the existing record; for a
    /// registration entry it is the id of the entry with the same SPIFFE ID, parent ID and
    /// selector set.
    #[error("{what} already exists (existing id {id:?}); update or delete it instead")]
    AlreadyExists { what: &'static str, id: String },

    /// The record exists but has expired (a join token used after its expiry). Expired join
    /// tokens are deleted when this is returned.
    #[error("{what} {id:?} expired at {expired_at} (unix seconds); issue a new one")]
    Expired {
        what: &'static str,
        id: String,
        expired_at: i64,
    },

    /// A conditional update lost a race: the stored version is not the one the caller read.
    #[error(
        "{what} {id:?} was changed concurrently (expected sequence {expected}, found {actual}); \
         read it again and retry"
    )]
    Conflict {
        what: &'static str,
        id: String,
        expected: u64,
        actual: u64,
    },

    /// The caller passed something the store refuses (bad selector, bad URL, bad page token…).
    #[error("invalid request: {0}")]
    Invalid(String),

    /// The database cannot be reached or refused to work right now; retrying later may succeed.
    #[error("{backend} datastore is unavailable: {detail}")]
    Unavailable { backend: Backend, detail: String },

    /// A bug or corrupted data: something the store wrote cannot be read back.
    #[error(
        "internal datastore error: {0} (this is a bug or a corrupted database; please report it)"
    )]
    Internal(String),
}

/// The datastore's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shows a secret key (a join token) by its first characters only, for error messages and logs.
pub(crate) fn redact(secret: &str) -> String {
    let shown: String = secret.chars().take(4).collect();
    if shown.len() < secret.len() {
        format!("{shown}…")
    } else {
        "…".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_keeps_only_a_prefix() {
        assert_eq!(redact("abcdef0123"), "abcd…");
        assert_eq!(redact("abc"), "…");
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = Error::Conflict {
            what: "bundle",
            id: "td".into(),
            expected: 3,
            actual: 4,
        };
        assert_eq!(
            e.to_string(),
            "bundle \"td\" was changed concurrently (expected sequence 3, found 4); read it again \
             and retry"
        );
        let e = Error::Unavailable {
            backend: Backend::Postgres,
            detail: "x".into(),
        };
        assert_eq!(e.to_string(), "PostgreSQL datastore is unavailable: x");
    }
}
