//! SPIFFE IDs and trust domains, parsed strictly to the SPIFFE-ID standard.
//!
//! Strict like go-spiffe: an uppercase trust domain or scheme is an error (the standard
//! requires the host to be lowercase), never silently lowercased.

use std::fmt;
use std::str::FromStr;

/// The longest SPIFFE ID a conforming implementation must accept, in bytes.
pub const MAX_ID_LEN: usize = 2048;
/// The longest trust domain name, in bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

const SCHEME_PREFIX: &str = "spiffe://";

/// Why a string is not a SPIFFE ID or trust domain. Each variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("SPIFFE ID is empty")]
    Empty,
    #[error("scheme is missing or invalid: a SPIFFE ID starts with \"spiffe://\" (lowercase)")]
    WrongScheme,
    #[error("trust domain is missing: write spiffe://<trust-domain>/<path>")]
    MissingTrustDomain,
    #[error(
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and \
         underscores (found {found:?} at byte {at})"
    )]
    BadTrustDomainChar { found: char, at: usize },
    #[error(
        "trust domain {td:?} contains uppercase letters; SPIFFE trust domains are lowercase \
         (use {lower:?})"
    )]
    UppercaseTrustDomain { td: String, lower: String },
    #[error("trust domain may not contain a port (\":{0}\"); remove it")]
    Port(String),
    #[error("trust domain may not contain userinfo (\"...@\"); remove it")]
    UserInfo,
    #[error("trust domain is {0} bytes long; the limit is 255")]
    TrustDomainTooLong(usize),
    #[error("SPIFFE ID is {0} bytes long; the limit is 2048")]
    TooLong(usize),
    #[error("path cannot contain empty segments (\"//\")")]
    EmptySegment,
    #[error("path cannot contain dot segments (\".\" or \"..\")")]
    DotSegment,
    #[error("path cannot have a trailing slash")]
    TrailingSlash,
    #[error(
        "path segment characters are limited to letters, numbers, dots, dashes, and underscores \
         (found {found:?} at byte {at})"
    )]
    BadPathChar { found: char, at: usize },
    #[error("percent-encoding is not allowed in a SPIFFE ID (found '%' at byte {0})")]
    PercentEncoded(usize),
    #[error("a SPIFFE ID cannot have a query (\"?...\")")]
    Query,
    #[error("a SPIFFE ID cannot have a fragment (\"#...\")")]
    Fragment,
    #[error("path must begin with '/' (got {0:?})")]
    RelativePath(String),
    #[error(
        "an IPv6 literal cannot be a trust domain (found {0:?}); trust domain characters are \
         limited to lowercase letters, numbers, dots, dashes, and underscores"
    )]
    Ipv6Literal(String),
}

/// A trust domain name such as `cluster.local`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`) or a SPIFFE ID whose trust domain is
    /// taken (`spiffe://example.org` or `spiffe://example.org/path`).
    pub fn new(s: &str) -> Result<Self, IdError> {
        let looks_like_id = s
            .get(..SCHEME_PREFIX.len() - 2)
            .is_some_and(|p| p.eq_ignore_ascii_case("spiffe:"));
        if s.contains("://") || looks_like_id {
            return SpiffeId::parse(s).map(|id| id.trust_domain().clone());
        }
        validate_trust_domain(s, 0)?;
        Ok(TrustDomain(s.to_owned()))
    }

    /// The trust domain name, e.g. `cluster.local`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own SPIFFE ID, `spiffe://<td>` (the key of a bundle map).
    pub fn id_string(&self) -> String {
        format!("{SCHEME_PREFIX}{}", self.0)
    }

    /// Builds an ID in this trust domain from a path (which must start with '/', or be empty).
    pub fn id(&self, path: &str) -> Result<SpiffeId, IdError> {
        // Without this check "foo" would silently become part of the trust domain name.
        if !path.is_empty() && !path.starts_with('/') {
            return Err(IdError::RelativePath(path.to_owned()));
        }
        SpiffeId::parse(&format!("{SCHEME_PREFIX}{}{path}", self.0))
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustDomain::new(s)
    }
}

/// A SPIFFE ID: `spiffe://<trust-domain><path>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    full: String,
    td: TrustDomain,
    /// Byte offset in `full` where the path starts.
    path_at: usize,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong(s.len()));
        }
        let Some(rest) = s.strip_prefix(SCHEME_PREFIX) else {
            return Err(IdError::WrongScheme);
        };
        let base = SCHEME_PREFIX.len();
        let td_end = rest.find('/').unwrap_or(rest.len());
        let td_str = &rest[..td_end];
        // Query and fragment are refused wherever they appear.
        if rest.contains('#') {
            return Err(IdError::Fragment);
        }
        if rest.contains('?') {
            return Err(IdError::Query);
        }
        if td_str.is_empty() {
            return Err(IdError::MissingTrustDomain);
        }
        validate_trust_domain(td_str, base)?;
        let path = &rest[td_end..];
        validate_path(path, base + td_end)?;
        Ok(SpiffeId {
            full: s.to_owned(),
            td: TrustDomain(td_str.to_owned()),
            path_at: base + td_end,
        })
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.td
    }

    /// The path, including its leading '/', or "" for a trust domain's own ID.
    pub fn path(&self) -> &str {
        &self.full[self.path_at..]
    }

    /// True when the path is empty: the ID names the trust domain itself (never a workload).
    pub fn is_root(&self) -> bool {
        self.path().is_empty()
    }

    /// The Istio principal form: the ID without `spiffe://`.
    pub fn principal(&self) -> &str {
        &self.full[SCHEME_PREFIX.len()..]
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SpiffeId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TrustDomain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TrustDomain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TrustDomain::new(&s).map_err(serde::de::Error::custom)
    }
}

fn validate_trust_domain(td: &str, base: usize) -> Result<(), IdError> {
    if td.is_empty() {
        return Err(IdError::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdError::TrustDomainTooLong(td.len()));
    }
    if td.contains('@') {
        return Err(IdError::UserInfo);
    }
    // Checked before the port rule: the colons of "[::1]" are not a port.
    if td.starts_with('[') {
        return Err(IdError::Ipv6Literal(td.to_owned()));
    }
    if let Some(i) = td.find(':') {
        return Err(IdError::Port(td[i + 1..].to_owned()));
    }
    if let Some(i) = td.find('%') {
        return Err(IdError::PercentEncoded(base + i));
    }
    if td.bytes().any(|b| b.is_ascii_uppercase())
        && td
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(IdError::UppercaseTrustDomain {
            td: td.to_owned(),
            lower: td.to_ascii_lowercase(),
        });
    }
    for (i, c) in td.char_indices() {
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')) {
            return Err(IdError::BadTrustDomainChar {
                found: c,
                at: base + i,
            });
        }
    }
    Ok(())
}

fn validate_path(path: &str, base: usize) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(IdError::RelativePath(path.to_owned()));
    }
    let mut at = base + 1;
    for seg in path[1..].split('/') {
        if seg.is_empty() {
            // A final empty segment means the path ended with '/'.
            return Err(if at == base + path.len() {
                IdError::TrailingSlash
            } else {
                IdError::EmptySegment
            });
        }
        if seg == "." || seg == ".." {
            return Err(IdError::DotSegment);
        }
        for (i, c) in seg.char_indices() {
            if c == '%' {
                return Err(IdError::PercentEncoded(at + i));
            }
            if c == '?' {
                return Err(IdError::Query);
            }
            if c == '#' {
                return Err(IdError::Fragment);
            }
            if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
                return Err(IdError::BadPathChar {
                    found: c,
                    at: at + i,
                });
            }
        }
        at += seg.len() + 1;
    }
    Ok(())
}
