//! The SQL implementations.
//!
//! The query code lives once, in `shared/`, and is compiled twice: `sqlite.rs` and `postgres.rs`
//! each include it as a child module (`#[path]`) after defining `Db` (the sqlx database type) and
//! a few hooks (how to begin a write transaction, how to read a database error). Both backends
//! accept the same SQL (`$1` placeholders, `RETURNING`, `ON CONFLICT`), so there is one set of
//! queries and no generic bounds. This module holds the backend-independent helpers.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sigil_spiffe::TrustDomain;

use crate::error::{Error, Result};
use crate::model::EntrySpec;
use crate::selector::{Selector, normalize_selectors};

/// A new random id in UUID v4 text form.
pub(crate) fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An entry spec checked and put in stored form (selectors and federated trust domains sorted
/// and deduplicated), with its uniqueness key.
pub(crate) struct CheckedEntry {
    pub spec: EntrySpec,
    pub unique_key: String,
}

pub(crate) fn check_entry(mut spec: EntrySpec) -> Result<CheckedEntry> {
    if spec.selectors.is_empty() {
        return Err(Error::Invalid(format!(
            "entry for {} has no selectors; give at least one (for example unix:uid:1000)",
            spec.spiffe_id
        )));
    }
    spec.selectors = normalize_selectors(spec.selectors)?;
    if spec.spiffe_id.is_root() {
        return Err(Error::Invalid(format!(
            "entry SPIFFE ID {} is a trust domain ID; a workload ID needs a path, such as \
             {}/ns/default/sa/app",
            spec.spiffe_id, spec.spiffe_id
        )));
    }
    if let Some(bad) = spec
        .dns_names
        .iter()
        .find(|d| d.trim().is_empty() || d.contains(' '))
    {
        return Err(Error::Invalid(format!(
            "DNS name {bad:?} is empty or contains a space; give host names like api.example.org"
        )));
    }
    spec.federates_with.sort();
    spec.federates_with.dedup();
    let unique_key = entry_unique_key(&spec);
    Ok(CheckedEntry { spec, unique_key })
}

/// sha256 over (SPIFFE ID, parent ID, sorted selectors): equal exactly for entries SPIRE calls
/// duplicates. A unique index on it makes the check race-free on both backends.
fn entry_unique_key(spec: &EntrySpec) -> String {
    let canonical = serde_json::json!([
        spec.spiffe_id.as_str(),
        spec.parent_id.as_str(),
        spec.selectors
            .iter()
            .map(|s| [s.r#type.as_str(), s.value.as_str()])
            .collect::<Vec<_>>(),
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Reads a page token: the `seq` of the last row of the previous page, as decimal text.
pub(crate) fn page_after(token: Option<&str>) -> Result<i64> {
    match token {
        None => Ok(0),
        Some("") => Ok(0),
        Some(t) => t.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            Error::Invalid(format!(
                "page token {t:?} was not issued by this datastore; start again without a token"
            ))
        }),
    }
}

/// Checks a filter's selector set and puts it in stored form.
pub(crate) fn filter_selectors(what: &str, selectors: &[Selector]) -> Result<Vec<Selector>> {
    if selectors.is_empty() {
        return Err(Error::Invalid(format!(
            "cannot list {what} by an empty selector set; give at least one selector or drop the \
             filter"
        )));
    }
    normalize_selectors(selectors.to_vec())
}

pub(crate) fn filter_trust_domains(tds: &[TrustDomain]) -> Result<Vec<TrustDomain>> {
    if tds.is_empty() {
        return Err(Error::Invalid(
            "cannot list entries by an empty federates_with set; give at least one trust domain \
             or drop the filter"
                .to_owned(),
        ));
    }
    let mut v = tds.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("cannot encode JSON column: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(column: &str, s: &str) -> Result<T> {
    serde_json::from_str(s)
        .map_err(|e| Error::Internal(format!("stored {column} is not valid JSON: {e}")))
}

pub(crate) fn to_u32(column: &str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Internal(format!("stored {column} {v} is out of range")))
}

pub(crate) fn to_u64(column: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Internal(format!("stored {column} {v} is negative")))
}

pub(crate) fn to_i64(what: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| {
        Error::Invalid(format!(
            "{what} {v} is too large; the store keeps it as a signed 64-bit number (at most {})",
            i64::MAX
        ))
    })
}

/// Turns a stored text column into a typed value, blaming corruption on failure.
pub(crate) fn parse_stored<T, E: std::fmt::Display>(
    column: &str,
    s: &str,
    parse: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<T> {
    parse(s).map_err(|e| Error::Internal(format!("stored {column} {s:?} does not parse: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_spiffe::SpiffeId;

    fn spec(sels: &[&str]) -> EntrySpec {
        EntrySpec::new(
            SpiffeId::parse("spiffe://example.org/w").unwrap(),
            SpiffeId::parse("spiffe://example.org/agent").unwrap(),
            sels.iter().map(|s| Selector::parse(s).unwrap()).collect(),
        )
    }

    #[test]
    fn ids_look_like_uuid_v4() {
        let a = new_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(["8", "9", "a", "b"].contains(&&a[19..20]), "{a}");
        assert_ne!(a, new_id());
    }

    #[test]
    fn unique_key_ignores_selector_order_and_duplicates() {
        let a = check_entry(spec(&["unix:uid:1", "k8s:ns:a"])).unwrap();
        let b = check_entry(spec(&["k8s:ns:a", "unix:uid:1", "k8s:ns:a"])).unwrap();
        let c = check_entry(spec(&["k8s:ns:a"])).unwrap();
        assert_eq!(a.unique_key, b.unique_key);
        assert_ne!(a.unique_key, c.unique_key);
        assert_eq!(b.spec.selectors.len(), 2);
    }

    #[test]
    fn entries_need_selectors_and_a_path() {
        assert!(
            matches!(check_entry(spec(&[])), Err(Error::Invalid(m)) if m.contains("no selectors"))
        );
        let mut s = spec(&["unix:uid:1"]);
        s.spiffe_id = SpiffeId::parse("spiffe://example.org").unwrap();
        assert!(matches!(check_entry(s), Err(Error::Invalid(m)) if m.contains("trust domain ID")));
    }

    #[test]
    fn page_tokens() {
        assert_eq!(page_after(None).unwrap(), 0);
        assert_eq!(page_after(Some("42")).unwrap(), 42);
        for bad in ["x", "-3", "0"] {
            assert!(
                matches!(page_after(Some(bad)), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
    }
}
