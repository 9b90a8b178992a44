//! Compiled policy views: what the decoded policies *mean* for one workload.
//!
//! Compiled once per configuration change, evaluated per connection or request:
//! - [`CompiledMtls`]: the effective inbound mTLS mode per port (PeerAuthentication,
//!   mesh → namespace → workload → port, oldest wins, UNSET inherits).
//! - [`CompiledAuthz`] + [`authorize`]: AuthorizationPolicy as CUSTOM → DENY → ALLOW, with
//!   no regex and no allocation in the common case; [`explain`] says why an ALLOW missed.
//!
//! Pure: no IO, no clock. Inputs are the decoded [`Object`]s (usually from
//! [`parse_documents`](crate::parse_documents)) and a [`Workload`].

mod authz;
mod compile;
mod eval;
mod index;
mod matcher;
mod mtls;

use std::collections::BTreeMap;
use std::fmt;

use crate::meta::{Object, WorkloadSelector};
use crate::resource::Resource;

pub(crate) use authz::{Attr, Clause, Matcher};
pub use authz::{
    CompiledAuthz, CompiledPolicy, DRY_RUN_ANNOTATION, NotAppliedReason, PolicyNotApplied,
};
pub(crate) use compile::compile_rule;
pub use eval::{
    Claims, Decision, Denial, Explanation, Headers, HttpRequest, Mismatch, NoHeaders, Permit,
    Protocol, Request, RuleRef, Verdict, authorize, explain,
};
pub use matcher::{Cidr, PathTemplate, StringMatcher};
pub(crate) use matcher::{any_namespace, service_account_matches, strip_scheme};
pub use mtls::{CompiledMtls, IgnoredPolicy, IgnoredReason, Level, MtlsReport, Origin, PortMtls};

/// Mesh-wide settings the views depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshContext {
    /// meshConfig `rootNamespace`: policies here apply mesh-wide.
    pub root_namespace: String,
    /// Namespace assumed for objects without `metadata.namespace` (kubectl's "current").
    pub default_namespace: String,
}

impl Default for MeshContext {
    fn default() -> Self {
        MeshContext {
            root_namespace: "istio-system".to_owned(),
            default_namespace: "default".to_owned(),
        }
    }
}

/// The workload a view is compiled for (a pod, a VM entry, a process).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    /// Its namespace.
    pub namespace: String,
    /// Its labels, matched by `selector.matchLabels`.
    pub labels: BTreeMap<String, String>,
    /// Its own SPIFFE ID, for reports (`describe`); not used for selection.
    pub spiffe_id: Option<String>,
}

impl Workload {
    /// A workload in `namespace` with `labels`.
    pub fn new<'a>(namespace: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Workload {
            namespace: namespace.to_owned(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            spiffe_id: None,
        }
    }
}

/// `namespace/name` of a policy object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyId {
    /// Namespace (the mesh's default namespace when the object had none).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl PolicyId {
    pub(crate) fn of<S>(o: &Object<S>, mesh: &MeshContext) -> Self {
        PolicyId {
            namespace: o
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| mesh.default_namespace.clone()),
            name: o.metadata.name.clone(),
        }
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `matchLabels` ⊆ labels. An empty `matchLabels` selects every workload.
pub(crate) fn selects(selector: &WorkloadSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// The PeerAuthentication objects among `resources`.
pub fn peer_authentications(
    resources: &[Resource],
) -> impl Iterator<Item = &Object<crate::PeerAuthenticationSpec>> {
    resources.iter().filter_map(|r| match r {
        Resource::PeerAuthentication(o) => Some(o),
        _ => None,
    })
}

/// The AuthorizationPolicy objects among `resources`.
pub fn authorization_policies(
    resources: &[Resource],
) -> impl Iterator<Item = &Object<crate::AuthorizationPolicySpec>> {
    resources.iter().filter_map(|r| match r {
        Resource::AuthorizationPolicy(o) => Some(o),
        _ => None,
    })
}

/// An RFC 3339 timestamp as (seconds since 1970 UTC, nanoseconds), for ordering only.
/// `None` when absent or unparseable; such objects sort as the oldest (Go's zero time).
pub(crate) fn parse_timestamp(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_order_by_instant_not_by_text() {
        let a = parse_timestamp("2024-01-01T10:00:00+02:00");
        let b = parse_timestamp("2024-01-01T09:00:00Z");
        assert!(a < b, "{a:?} {b:?}");
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_timestamp("2024-02-29T00:00:00.5Z"),
            Some((1_709_164_800, 500_000_000))
        );
        for bad in [
            "",
            "2024-13-01T00:00:00Z",
            "2024-01-01",
            "2024-01-01T00:00:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
