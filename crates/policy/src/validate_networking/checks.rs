//! Value checks shared by the networking kinds, each matching an upstream helper
//! (`pkg/config/validation/agent`, `pkg/config/labels`, `pkg/config/protocol`,
//! `pkg/config/visibility`). Istio's DNS label check accepts upper case, unlike Kubernetes
//! object names; so do these.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::Out;
use crate::error::ErrorKind;

/// Field path of a map entry, spelled as the decoder spells it (`a.b` or `a[b.c]`).
pub(super) fn key_path(prefix: &str, key: &str) -> String {
    if key.contains('.') || key.contains('[') {
        format!("{prefix}[{key}]")
    } else {
        format!("{prefix}.{key}")
    }
}

/// Istio `labels.IsDNS1123Label`: `[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63.
pub(super) fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Istio `labels.IsWildcardDNS1123Label`: `*`, or a label optionally prefixed by `*`/`*-`.
fn is_wildcard_label(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let rest = s
        .strip_prefix("*-")
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    s.len() <= 63 && is_label(rest)
}

fn dns_preconditions(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("empty domain name".into())
    } else if name.len() > 255 {
        Err("longer than 255 characters".into())
    } else {
        Ok(())
    }
}

/// Upstream `ValidateDNS1123Labels`: labels valid, top-level label not all digits, a
/// trailing dot allowed.
fn dns_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let last = parts.len() - 1;
    if let Some(tld) = parts.last()
        && !tld.is_empty()
        && tld.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(format!("the top-level label {tld:?} is all digits"));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == last && label.is_empty() {
            break;
        }
        if !is_label(label) {
            return Err(format!("label {label:?} is not a DNS-1123 label"));
        }
    }
    Ok(())
}

/// Upstream `ValidateFQDN` (a name without wildcards).
pub(super) fn fqdn(name: &str) -> Result<(), String> {
    dns_preconditions(name)?;
    dns_labels(name)
}

/// Upstream `ValidateWildcardDomain`: like [`fqdn`], but the first label may be a wildcard.
pub(super) fn wildcard_domain(name: &str) -> Result<(), String> {
    dns_preconditions(name)?;
    let (first, rest) = match name.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "first label {first:?} is not a DNS-1123 label or wildcard"
        ));
    }
    match rest {
        Some(rest) => dns_labels(rest),
        None => Ok(()),
    }
}

pub(super) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// Upstream `ValidateIPSubnet`: an IP, or `ip/bits` (host bits may be set).
pub(super) fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => is_ip(s),
        Some((addr, bits)) => {
            let max = match addr.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => return false,
            };
            !bits.is_empty()
                && bits.bytes().all(|c| c.is_ascii_digit())
                && bits.parse::<u32>().is_ok_and(|b| b <= max)
        }
    }
}

/// Upstream `ValidateUnixAddress` on the part after `unix://`.
pub(super) fn unix_path_ok(path: &str) -> bool {
    path.starts_with('@') || (path.starts_with('/') && !path.ends_with('/'))
}

/// Port number 1..=65535 (`agent.ValidatePort`).
pub(super) fn port(value: u32, path: &str, out: &mut Out) {
    if value == 0 || value > 65535 {
        out.push(
            path,
            ErrorKind::PortOutOfRange {
                value: value.to_string(),
            },
        );
    }
}

/// A Go duration (`1h2m3.5s`, `300ms`) in nanoseconds; `None` when unparsable.
pub(super) fn parse_duration_ns(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if (int.is_empty() && frac.is_empty()) || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: i128 = match &rest[..unit_end] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_end..];
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = int.checked_mul(scale)?;
        let mut unit = scale;
        for d in frac.bytes() {
            unit /= 10;
            part += i128::from(d - b'0') * unit;
        }
        total = total.checked_add(part)?;
    }
    Some(if neg { -total } else { total })
}

const MS: i128 = 1_000_000;

/// Upstream `ValidateDuration`: at least 1ms and whole milliseconds.
pub(super) fn duration(value: &str, path: &str, out: &mut Out) {
    match parse_duration_ns(value) {
        Some(ns) if ns < MS => out.push(
            path,
            ErrorKind::InvalidDuration {
                value: value.into(),
            },
        ),
        Some(ns) if ns % MS != 0 => out.push(
            path,
            ErrorKind::DurationNotWholeMs {
                value: value.into(),
            },
        ),
        Some(_) => {}
        None => out.push(
            path,
            ErrorKind::InvalidDuration {
                value: value.into(),
            },
        ),
    }
}

/// A duration that only has to parse (e.g. a cookie TTL, where `0s` is meaningful).
pub(super) fn duration_syntax(value: &str, path: &str, out: &mut Out) {
    if parse_duration_ns(value).is_none() {
        out.push(
            path,
            ErrorKind::InvalidDuration {
                value: value.into(),
            },
        );
    }
}

/// `0..=100`, as upstream `ValidatePercent`.
pub(super) fn percent(value: Option<i32>, path: &str, out: &mut Out) {
    if let Some(v) = value
        && !(0..=100).contains(&v)
    {
        out.push(
            path,
            ErrorKind::OutOfRange {
                value: v.to_string(),
                expected: "0..100".into(),
            },
        );
    }
}

pub(super) fn non_negative(value: Option<i32>, path: &str, out: &mut Out) {
    if let Some(v) = value
        && v < 0
    {
        out.push(
            path,
            ErrorKind::OutOfRange {
                value: v.to_string(),
                expected: "0 or more".into(),
            },
        );
    }
}

/// Kubernetes qualified name: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63.
fn is_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn label_key_ok(key: &str) -> bool {
    match key.rsplit_once('/') {
        Some((prefix, name)) => {
            crate::validate::is_dns1123_subdomain(prefix) && is_qualified_name(name)
        }
        None => is_qualified_name(key),
    }
}

/// Upstream `labels.Instance.Validate` on a label map.
pub(super) fn labels(map: &BTreeMap<String, String>, path: &str, out: &mut Out) {
    for (k, v) in map {
        let reason = if !label_key_ok(k) {
            "the key must be `[prefix/]name` with a DNS subdomain prefix and a name of at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
        } else if !(v.is_empty() || is_qualified_name(v)) {
            "the value must be empty or at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
        } else {
            continue;
        };
        out.push(
            key_path(path, k),
            ErrorKind::InvalidLabel {
                label: format!("{k}={v}"),
                reason: reason.into(),
            },
        );
    }
}

/// Upstream selector check: no empty key, no `*` in keys or values.
pub(super) fn selector_labels(map: &BTreeMap<String, String>, path: &str, out: &mut Out) {
    for (k, v) in map {
        if k.is_empty() || k.contains('*') || v.contains('*') {
            out.push(
                key_path(path, k),
                ErrorKind::InvalidSelectorLabel {
                    label: format!("{k}={v}"),
                },
            );
        }
    }
}

/// Istio `protocol.Instance` after case-insensitive parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Tcp,
    Udp,
    Grpc,
    GrpcWeb,
    Http,
    HttpProxy,
    Http2,
    Https,
    Tls,
    Mongo,
    Redis,
    MySql,
    Unsupported,
}

/// Spellings `protocol.Parse` accepts, for "did you mean".
pub(super) const PROTOCOLS: &[&str] = &[
    "TCP",
    "UDP",
    "GRPC",
    "GRPC-Web",
    "HTTP",
    "HTTP_PROXY",
    "HTTP2",
    "HTTPS",
    "TLS",
    "Mongo",
    "Redis",
    "MySQL",
];

impl Protocol {
    pub(super) fn parse(s: &str) -> Protocol {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "http" => Protocol::Http,
            "http_proxy" => Protocol::HttpProxy,
            "http2" => Protocol::Http2,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::MySql,
            _ => Protocol::Unsupported,
        }
    }

    pub(super) fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    pub(super) fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }
}

/// Which kind's `exportTo` rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExportOwner {
    /// A DestinationRule; `true` when it has a workload selector.
    DestinationRule { selector: bool },
    /// A ServiceEntry (may use `~`).
    ServiceEntry,
}

/// Upstream `validateExportTo`.
pub(super) fn export_to(namespace: &str, list: &[String], owner: ExportOwner, out: &mut Out) {
    let mut set: BTreeSet<&str> = BTreeSet::new();
    for (i, e) in list.iter().enumerate() {
        let path = format!("spec.exportTo[{i}]");
        let key = if e == "." { namespace } else { e.as_str() };
        if set.contains(key) {
            out.push(
                path,
                ErrorKind::DuplicateEntry {
                    field: "exportTo".into(),
                    value: e.clone(),
                },
            );
        } else if e == "~" && owner == ExportOwner::ServiceEntry {
            set.insert(key);
        } else if e == "~" {
            out.push(
                path,
                ErrorKind::InvalidExportTo {
                    value: e.clone(),
                    hint: "`~` (export to no one) is only allowed on a ServiceEntry".into(),
                },
            );
        } else if e == "." || e == "*" || is_label(e) {
            set.insert(key);
        } else {
            out.push(
                path,
                ErrorKind::InvalidDnsLabel {
                    what: "exportTo namespace (or `.`, `*`)".into(),
                    value: e.clone(),
                },
            );
        }
    }
    let joined = list.join(", ");
    if owner == (ExportOwner::DestinationRule { selector: true })
        && !set.is_empty()
        && (!set.contains(namespace) || set.len() > 1)
    {
        out.push(
            "spec.exportTo",
            ErrorKind::InvalidExportTo {
                value: joined.clone(),
                hint: "a DestinationRule with a workloadSelector only applies in its own namespace; use `.` alone or remove exportTo".into(),
            },
        );
    }
    if set.contains("*") && list.len() > 1 {
        out.push(
            "spec.exportTo",
            ErrorKind::InvalidExportTo {
                value: joined.clone(),
                hint: "`*` already exports to every namespace; remove the other entries".into(),
            },
        );
    }
    if set.contains("~") && list.len() > 1 {
        out.push(
            "spec.exportTo",
            ErrorKind::InvalidExportTo {
                value: joined,
                hint: "`~` (export to no one) cannot be combined with other entries".into(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration_ns("10s"), Some(10_000_000_000));
        assert_eq!(parse_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("100ms"), Some(100_000_000));
        assert_eq!(parse_duration_ns("0"), Some(0));
        assert_eq!(parse_duration_ns("-1s"), Some(-1_000_000_000));
        assert_eq!(parse_duration_ns(".5h"), Some(1_800_000_000_000));
        for bad in ["", "5", "s", "1d", "1.s.", "1 s", "--1s", ".", "1.2.3s"] {
            assert_eq!(parse_duration_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_follow_upstream_limits() {
        for (value, ok) in [
            ("1ms", true),
            ("10s", true),
            ("1h", true),
            ("0s", false),
            ("500us", false),
            ("1500us", false),
            ("-5s", false),
            ("ten", false),
        ] {
            let mut out = Out::default();
            duration(value, "p", &mut out);
            assert_eq!(out.0.is_empty(), ok, "{value}: {:?}", out.0);
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "reviews",
            "reviews.prod.svc.cluster.local",
            "*.example.com",
            "*",
            "*foo.example.com",
            "Example.COM",
            "istio.io.",
        ] {
            assert_eq!(wildcard_domain(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a.*.com", "foo_bar.com", "10.0.0.1", "-a.com", "a..b"] {
            assert!(wildcard_domain(bad).is_err(), "{bad}");
        }
        assert!(fqdn("*.example.com").is_err());
        assert!(fqdn("example.com").is_ok());
    }

    #[test]
    fn addresses() {
        for ok in [
            "10.0.0.1",
            "10.0.0.0/8",
            "10.1.2.3/8",
            "2001:db8::/32",
            "::1",
        ] {
            assert!(is_ip_or_cidr(ok), "{ok}");
        }
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "host",
            "10.0.0.0/",
            "10.0.0.0/+1",
        ] {
            assert!(!is_ip_or_cidr(bad), "{bad}");
        }
        assert!(unix_path_ok("/var/run/a.sock"));
        assert!(unix_path_ok("@abstract"));
        assert!(!unix_path_ok("relative.sock"));
        assert!(!unix_path_ok("/var/run/"));
    }

    #[test]
    fn protocols_are_case_insensitive() {
        assert_eq!(Protocol::parse("http2"), Protocol::Http2);
        assert_eq!(Protocol::parse("gRPC-web"), Protocol::GrpcWeb);
        assert_eq!(Protocol::parse("MONGO"), Protocol::Mongo);
        assert_eq!(Protocol::parse("h2c"), Protocol::Unsupported);
        assert!(Protocol::parse("GRPC").is_http());
        assert!(Protocol::parse("https").is_tls());
        assert!(!Protocol::parse("tcp").is_http());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(label_key_ok("app"));
        assert!(label_key_ok("app.kubernetes.io/name"));
        assert!(!label_key_ok("Bad_Prefix/name"));
        assert!(!label_key_ok(""));
        assert!(is_qualified_name("v1.2_x"));
        assert!(!is_qualified_name("-v1"));
    }
}
