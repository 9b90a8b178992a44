//! Precompiled value matchers: Istio's string patterns (exact, `abc*`, `*abc`, `*`), URI
//! path templates (`{*}`, `{**}`) and CIDR blocks. Matching borrows and never allocates.

use std::net::IpAddr;

/// One Istio string pattern, compiled.
///
/// Istio turns `*` into the regex `.+` for most fields (any *non-empty* value) but into a
/// header "present" match for headers, methods and hosts (any value, even empty): the two
/// are kept apart as [`StringMatcher::NonEmpty`] and [`StringMatcher::Present`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatcher {
    /// `abc`: the whole value.
    Exact(Box<str>),
    /// `abc*`: starts with `abc`.
    Prefix(Box<str>),
    /// `*abc`: ends with `abc`.
    Suffix(Box<str>),
    /// `*` on a value: any non-empty value (`.+`).
    NonEmpty,
    /// `*` on a header, method or host: the attribute is present.
    Present,
}

impl StringMatcher {
    /// `*` → [`NonEmpty`](Self::NonEmpty), `*abc` → suffix, `abc*` → prefix, else exact (a
    /// `*` elsewhere is a literal character, as upstream).
    pub fn parse(pattern: &str) -> Self {
        if pattern == "*" {
            StringMatcher::NonEmpty
        } else if let Some(s) = pattern.strip_prefix('*') {
            StringMatcher::Suffix(s.into())
        } else if let Some(p) = pattern.strip_suffix('*') {
            StringMatcher::Prefix(p.into())
        } else {
            StringMatcher::Exact(pattern.into())
        }
    }

    /// Like [`parse`](Self::parse), but `*` means "present" (headers, methods, hosts).
    pub fn parse_header(pattern: &str) -> Self {
        if pattern == "*" {
            StringMatcher::Present
        } else {
            Self::parse(pattern)
        }
    }

    /// Case-sensitive match.
    #[inline]
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(e) => value == &**e,
            StringMatcher::Prefix(p) => value.starts_with(&**p),
            StringMatcher::Suffix(s) => value.ends_with(&**s),
            StringMatcher::NonEmpty => !value.is_empty(),
            StringMatcher::Present => true,
        }
    }

    /// ASCII case-insensitive match (hosts).
    #[inline]
    pub fn matches_ignore_case(&self, value: &str) -> bool {
        let v = value.as_bytes();
        match self {
            StringMatcher::Exact(e) => v.eq_ignore_ascii_case(e.as_bytes()),
            StringMatcher::Prefix(p) => {
                v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            StringMatcher::Suffix(s) => {
                v.len() >= s.len() && v[v.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
            StringMatcher::NonEmpty => !v.is_empty(),
            StringMatcher::Present => true,
        }
    }

    /// The pattern as a user would write it.
    pub fn pattern(&self) -> String {
        match self {
            StringMatcher::Exact(e) => e.to_string(),
            StringMatcher::Prefix(p) => format!("{p}*"),
            StringMatcher::Suffix(s) => format!("*{s}"),
            StringMatcher::NonEmpty | StringMatcher::Present => "*".to_owned(),
        }
    }
}

/// One segment of a [`PathTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// `{*}`: exactly one non-empty segment.
    One,
    /// `{**}`: the rest of the path, zero or more characters, `/` included.
    Any,
}

/// A path with Envoy URI-template operators (`/api/{*}/items/{**}`), matched segment by
/// segment. `{**}` needs the `/` before it: `/a/{**}` matches `/a/` and `/a/b/c`, not `/a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Box<[Segment]>,
    text: Box<str>,
}

impl PathTemplate {
    /// `Some` when `pattern` uses `{*}` or `{**}`.
    pub fn parse(pattern: &str) -> Option<Self> {
        if !(pattern.contains("{*}") || pattern.contains("{**}")) {
            return None;
        }
        let segments = pattern
            .split('/')
            .map(|s| match s {
                "{*}" => Segment::One,
                "{**}" => Segment::Any,
                lit => Segment::Literal(lit.into()),
            })
            .collect();
        Some(PathTemplate {
            segments,
            text: pattern.into(),
        })
    }

    /// Matches `path` (without query string).
    pub fn matches(&self, path: &str) -> bool {
        match_segments(&self.segments, path.split('/'))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn match_segments(pattern: &[Segment], mut path: std::str::Split<'_, char>) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return path.next().is_none();
    };
    match first {
        Segment::Literal(l) => path.next() == Some(&**l) && match_segments(rest, path),
        Segment::One => path
            .next()
            .is_some_and(|s| !s.is_empty() && match_segments(rest, path)),
        Segment::Any if rest.is_empty() => path.next().is_some(),
        Segment::Any => loop {
            if match_segments(rest, path.clone()) {
                return true;
            }
            if path.next().is_none() {
                return false;
            }
        },
    }
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/len` (validation has already checked the form).
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = s.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address counts as IPv4).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The peer identity without `spiffe://` (Istio writes principals that way and prepends the
/// scheme when matching).
#[inline]
pub(crate) fn strip_scheme(id: &str) -> &str {
    id.strip_prefix("spiffe://").unwrap_or(id)
}

/// The trust domain of an identity (`td` in `spiffe://td/...`).
#[inline]
pub(crate) fn trust_domain(id: &str) -> &str {
    let id = strip_scheme(id);
    id.split_once('/').map_or(id, |(td, _)| td)
}

/// Calls `f` with every `<ns>` of a `/ns/<ns>/` segment pair in the identity's path,
/// until it returns true. Istio matches namespaces with the regex `.*/ns/<ns>/.*`.
#[inline]
pub(crate) fn any_namespace(id: &str, mut f: impl FnMut(&str) -> bool) -> bool {
    let id = strip_scheme(id);
    let mut segments = id.split('/').skip(1);
    while let Some(s) = segments.next() {
        if s == "ns" {
            let mut ahead = segments.clone();
            // `/ns/<ns>/` needs a `/` after the namespace.
            if let (Some(ns), Some(_)) = (ahead.next(), ahead.next())
                && f(ns)
            {
                return true;
            }
        }
    }
    false
}

/// Istio's `serviceAccounts` shape: `spiffe://<td>/ns/<ns>/[…/]sa/<sa>[/…]`.
pub(crate) fn service_account_matches(id: &str, ns: &str, sa: &str) -> bool {
    let id = strip_scheme(id);
    let Some((_, path)) = id.split_once('/') else {
        return false;
    };
    let segs = || path.split('/');
    for (i, s) in segs().enumerate() {
        if s == "ns" && segs().nth(i + 1) == Some(ns) {
            let mut after = segs().skip(i + 2);
            while let Some(s) = after.next() {
                if s == "sa" && after.next() == Some(sa) {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_patterns() {
        let cases = [
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("abc*", "abcd", true),
            ("abc*", "abc", true),
            ("abc*", "xabc", false),
            ("*abc", "xabc", true),
            ("*abc", "abcx", false),
            ("*", "x", true),
            ("*", "", false),
            ("a*c", "a*c", true),
            ("a*c", "abc", false),
        ];
        for (p, v, want) in cases {
            assert_eq!(StringMatcher::parse(p).matches(v), want, "{p} vs {v}");
        }
        assert!(StringMatcher::parse_header("*").matches(""));
        assert!(StringMatcher::parse("*.Example.com").matches_ignore_case("api.example.COM"));
        assert!(StringMatcher::parse("API*").matches_ignore_case("api.x"));
        assert!(!StringMatcher::parse("api.example.com").matches_ignore_case("api.example.com:80"));
    }

    #[test]
    fn path_templates() {
        let cases = [
            ("/foo/{*}", "/foo/bar", true),
            ("/foo/{*}", "/foo/", false),
            ("/foo/{*}", "/foo/bar/baz", false),
            ("/foo/{*}/baz", "/foo/bar/baz", true),
            ("/foo/{**}", "/foo/bar/baz", true),
            ("/foo/{**}", "/foo/", true),
            ("/foo/{**}", "/foo", false),
            ("/{*}/bar/{**}", "/x/bar/y/z", true),
            ("/{*}/bar/{**}", "/x/y/bar/z", false),
            ("/{**}/end", "/a/b/end", true),
        ];
        for (p, v, want) in cases {
            let t = PathTemplate::parse(p).unwrap();
            assert_eq!(t.matches(v), want, "{p} vs {v}");
        }
        assert!(PathTemplate::parse("/plain/*").is_none());
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!(
            !Cidr::parse("192.168.0.1")
                .unwrap()
                .contains("192.168.0.2".parse().unwrap())
        );
    }

    #[test]
    fn identity_parts() {
        let id = "spiffe://cluster.local/ns/payments/sa/checkout";
        assert_eq!(trust_domain(id), "cluster.local");
        assert!(any_namespace(id, |ns| ns == "payments"));
        assert!(!any_namespace("cluster.local/ns/payments", |_| true));
        assert!(service_account_matches(id, "payments", "checkout"));
        assert!(!service_account_matches(id, "payments", "check"));
        assert!(service_account_matches(
            "spiffe://td/ns/a/x/y/sa/b/extra",
            "a",
            "b"
        ));
    }
}
