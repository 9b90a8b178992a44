//! Per-request evaluation: [`authorize`] (borrowing, allocation-free for string, prefix,
//! suffix, CIDR and port matches) and [`explain`] (allocates; for the operator CLI).
//!
//! Order (Istio): CUSTOM → DENY → ALLOW; AUDIT is recorded, never decisive.
//! - A matching CUSTOM rule denies, naming its provider: Sigil has no external authorizer,
//!   so delegation fails closed (istiod likewise generates deny rules when a provider
//!   cannot be resolved).
//! - A matching DENY rule denies.
//! - No ALLOW policy applies → permit. An ALLOW rule matches → permit. Otherwise deny
//!   (an ALLOW policy with no rules therefore denies everything).
//!
//! TCP (no HTTP attributes): an ALLOW rule that uses any HTTP-only attribute (hosts,
//! methods, paths, request principals, headers, JWT claims) never matches; in DENY, AUDIT
//! and CUSTOM rules only those clauses are dropped, so the rest matches more widely.
//! Attributes Sigil cannot evaluate (`experimental.envoy.filters.*`) follow the same
//! asymmetry on every protocol.
//!
//! Dry-run policies never change [`Decision::verdict`]; [`Decision::dry_run`] is the verdict
//! had they been enforced together with the others.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::authz::Action;

use super::PolicyId;
use super::authz::{Attr, Clause, CompiledAuthz, CompiledRule, Entry, Group, Matcher};
use super::index::{ALLOW, AUDIT, CUSTOM, DENY, Hits};
use super::matcher::{any_namespace, service_account_matches, strip_scheme, trust_domain};

/// Request headers, looked up by lower-case name.
pub trait Headers {
    /// The value of header `name` (lower case), if present.
    fn get(&self, name: &str) -> Option<&str>;
}

/// No headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHeaders;

impl Headers for NoHeaders {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
}

fn find_header<'a>(list: &'a [(&str, &'a str)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Name/value pairs, names compared ignoring ASCII case.
impl Headers for &[(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        find_header(self, name)
    }
}

/// Name/value pairs, names compared ignoring ASCII case.
impl<const N: usize> Headers for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<&str> {
        find_header(self, name)
    }
}

impl Headers for BTreeMap<String, String> {
    /// Keys must be lower case.
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// Claims of a JWT already validated by RequestAuthentication.
pub trait Claims {
    /// `iss`.
    fn issuer(&self) -> Option<&str>;
    /// `sub`.
    fn subject(&self) -> Option<&str>;
    /// Calls `f` with each string at the (nested) claim `path` — every element of a list
    /// claim — until it returns true; returns whether it did.
    fn any_value(&self, path: &[String], f: &mut dyn FnMut(&str) -> bool) -> bool;
}

impl Claims for serde_json::Value {
    fn issuer(&self) -> Option<&str> {
        self.get("iss")?.as_str()
    }
    fn subject(&self) -> Option<&str> {
        self.get("sub")?.as_str()
    }
    fn any_value(&self, path: &[String], f: &mut dyn FnMut(&str) -> bool) -> bool {
        let mut v = self;
        for p in path {
            match v.get(p) {
                Some(next) => v = next,
                None => return false,
            }
        }
        match v {
            serde_json::Value::String(s) => f(s),
            serde_json::Value::Array(items) => {
                items.iter().any(|i| i.as_str().is_some_and(&mut *f))
            }
            _ => false,
        }
    }
}

/// L7 attributes of an HTTP request.
#[derive(Clone, Copy)]
pub struct HttpRequest<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, already normalized by the proxy (query string ignored here).
    pub path: &'a str,
    /// `:authority` as sent (a port in it is part of the value).
    pub host: &'a str,
    /// Headers.
    pub headers: &'a dyn Headers,
    /// Validated JWT claims, if any.
    pub jwt: Option<&'a dyn Claims>,
}

/// What the request is carried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP: every attribute is available.
    Http,
    /// TCP: no HTTP attributes.
    Tcp,
}

/// One connection or request to authorize. Everything is borrowed.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The mTLS peer's SPIFFE ID (`spiffe://` optional); `None` for plaintext.
    pub peer: Option<&'a str>,
    /// Direct peer address (`source.ip`, `ipBlocks`).
    pub source_ip: IpAddr,
    /// Original client (`remote.ip`, `remoteIpBlocks`); defaults to `source_ip`.
    pub remote_ip: Option<IpAddr>,
    /// Local address (`destination.ip`).
    pub destination_ip: Option<IpAddr>,
    /// Workload port (`ports`, `destination.port`).
    pub destination_port: u16,
    /// TLS SNI (`connection.sni`).
    pub sni: Option<&'a str>,
    /// HTTP attributes; `None` for TCP.
    pub http: Option<HttpRequest<'a>>,
}

impl<'a> Request<'a> {
    /// A TCP connection.
    pub fn tcp(peer: Option<&'a str>, source_ip: IpAddr, destination_port: u16) -> Self {
        Request {
            peer,
            source_ip,
            remote_ip: None,
            destination_ip: None,
            destination_port,
            sni: None,
            http: None,
        }
    }

    /// An HTTP request without headers or JWT (set `http` fields for more).
    pub fn http(
        peer: Option<&'a str>,
        source_ip: IpAddr,
        destination_port: u16,
        method: &'a str,
        path: &'a str,
        host: &'a str,
    ) -> Self {
        Request {
            http: Some(HttpRequest {
                method,
                path,
                host,
                headers: &NoHeaders,
                jwt: None,
            }),
            ..Self::tcp(peer, source_ip, destination_port)
        }
    }

    /// HTTP or TCP.
    pub fn protocol(&self) -> Protocol {
        if self.http.is_some() {
            Protocol::Http
        } else {
            Protocol::Tcp
        }
    }
}

/// A rule of an applied policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef<'p> {
    /// The policy.
    pub policy: &'p PolicyId,
    /// Its action.
    pub action: Action,
    /// 0-based index in `spec.rules`.
    pub rule: usize,
    /// The policy is dry-run.
    pub dry_run: bool,
}

impl fmt::Display for RuleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dry = if self.dry_run { " (dry-run)" } else { "" };
        write!(
            f,
            "{} policy {} rule {}{dry}",
            self.action.as_str(),
            self.policy,
            self.rule
        )
    }
}

/// Why a request is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit<'p> {
    /// This ALLOW rule matched.
    Allowed(RuleRef<'p>),
    /// No ALLOW policy applies to the workload (and nothing denied).
    NoAllowPolicy,
}

/// Why a request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial<'p> {
    /// A CUSTOM rule matched; Sigil has no external authorizer, so it fails closed.
    Custom {
        /// The rule.
        rule: RuleRef<'p>,
        /// The provider it delegates to.
        provider: &'p str,
    },
    /// A DENY rule matched.
    Denied(RuleRef<'p>),
    /// ALLOW policies apply and none matched.
    NoAllowMatched {
        /// How many ALLOW policies apply.
        allow_policies: usize,
    },
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'p> {
    /// Allowed, with the proof.
    Permit(Permit<'p>),
    /// Denied, with the reason.
    Deny(Denial<'p>),
}

impl Verdict<'_> {
    /// Whether the request may proceed.
    pub fn is_permit(&self) -> bool {
        matches!(self, Verdict::Permit(_))
    }
}

impl fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Permit(Permit::Allowed(r)) => write!(f, "allowed by {r}"),
            Verdict::Permit(Permit::NoAllowPolicy) => {
                write!(f, "allowed: no ALLOW policy applies to this workload")
            }
            Verdict::Deny(Denial::Custom { rule, provider }) => write!(
                f,
                "denied by {rule}: it delegates to provider `{provider}` and Sigil has no \
                 external authorizer (fail closed); replace it with ALLOW/DENY policies"
            ),
            Verdict::Deny(Denial::Denied(r)) => write!(f, "denied by {r}"),
            Verdict::Deny(Denial::NoAllowMatched { allow_policies }) => write!(
                f,
                "denied: no rule of the {allow_policies} ALLOW policies applying to this \
                 workload matched"
            ),
        }
    }
}

/// The result of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    /// The enforced verdict.
    pub verdict: Verdict<'p>,
    /// The first matching AUDIT rule (mark for audit; no effect on the verdict).
    pub audit: Option<RuleRef<'p>>,
    /// When dry-run policies apply: the verdict had they been enforced too.
    pub dry_run: Option<Verdict<'p>>,
}

impl Decision<'_> {
    /// Whether the request may proceed.
    pub fn is_permit(&self) -> bool {
        self.verdict.is_permit()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// ALLOW: a rule with an unevaluable attribute never matches.
    Narrow,
    /// DENY/AUDIT/CUSTOM: unevaluable clauses are dropped.
    Wide,
}

/// Decides `request` against `authz`. No allocation.
pub fn authorize<'p>(authz: &'p CompiledAuthz, request: &Request<'_>) -> Decision<'p> {
    let hits = authz.index.lookup(request.peer);
    let verdict = decide(authz, &hits, request, false);
    let dry_run = authz
        .has_dry_run
        .then(|| decide(authz, &hits, request, true));
    let audit = first(&authz.audit, AUDIT, &hits, request, false, Mode::Wide);
    Decision {
        verdict,
        audit,
        dry_run,
    }
}

fn rule_ref(group: &Group, pos: u32) -> RuleRef<'_> {
    let (policy, rule, _) = group.rule(pos);
    RuleRef {
        policy: &policy.id,
        action: policy.action,
        rule,
        dry_run: policy.dry_run,
    }
}

fn first<'p>(
    group: &'p Group,
    gid: usize,
    hits: &Hits<'_>,
    req: &Request<'_>,
    dry: bool,
    mode: Mode,
) -> Option<RuleRef<'p>> {
    group
        .first_match(gid, hits, |pos| {
            let (policy, _, rule) = group.rule(pos);
            (dry || !policy.dry_run) && rule_matches(rule, req, mode)
        })
        .map(|pos| rule_ref(group, pos))
}

fn decide<'p>(
    authz: &'p CompiledAuthz,
    hits: &Hits<'_>,
    req: &Request<'_>,
    dry: bool,
) -> Verdict<'p> {
    if let Some(rule) = first(&authz.custom, CUSTOM, hits, req, dry, Mode::Wide) {
        let provider = authz
            .custom
            .policies
            .iter()
            .find(|p| &p.id == rule.policy)
            .and_then(|p| p.provider.as_deref())
            .unwrap_or("");
        return Verdict::Deny(Denial::Custom { rule, provider });
    }
    if let Some(rule) = first(&authz.deny, DENY, hits, req, dry, Mode::Wide) {
        return Verdict::Deny(Denial::Denied(rule));
    }
    let allow_policies = if dry {
        authz.allow.policies.len()
    } else {
        authz.enforced_allow
    };
    if allow_policies == 0 {
        return Verdict::Permit(Permit::NoAllowPolicy);
    }
    match first(&authz.allow, ALLOW, hits, req, dry, Mode::Narrow) {
        Some(rule) => Verdict::Permit(Permit::Allowed(rule)),
        None => Verdict::Deny(Denial::NoAllowMatched { allow_policies }),
    }
}

/// Whether `clause` cannot be evaluated for `req` (dropped in Wide mode).
#[inline]
fn unevaluable(c: &Clause, req: &Request<'_>) -> bool {
    c.attr == Attr::Unsupported || (req.http.is_none() && c.attr.http_only())
}

fn rule_matches(rule: &CompiledRule, req: &Request<'_>, mode: Mode) -> bool {
    if mode == Mode::Narrow && (rule.unsupported || (req.http.is_none() && rule.http_only)) {
        return false;
    }
    entries_match(rule.from.as_deref(), req)
        && entries_match(rule.to.as_deref(), req)
        && rule.when.iter().all(|c| clause_holds(c, req))
}

#[inline]
fn entries_match(entries: Option<&[Entry]>, req: &Request<'_>) -> bool {
    entries.is_none_or(|es| {
        es.iter()
            .any(|e| e.clauses.iter().all(|c| clause_holds(c, req)))
    })
}

#[inline]
fn clause_holds(c: &Clause, req: &Request<'_>) -> bool {
    if unevaluable(c, req) {
        return true;
    }
    match attr_matches(c, req) {
        None => c.negated,
        Some(hit) => hit != c.negated,
    }
}

fn any_str(ms: &[Matcher], v: &str) -> bool {
    ms.iter()
        .any(|m| matches!(m, Matcher::Str(s) if s.matches(v)))
}

/// Whether any matcher matches the attribute; `None` when the request lacks it.
fn attr_matches(c: &Clause, req: &Request<'_>) -> Option<bool> {
    let ms = &*c.matchers;
    let cidr = |ip: IpAddr| {
        ms.iter()
            .any(|m| matches!(m, Matcher::Cidr(b) if b.contains(ip)))
    };
    Some(match &c.attr {
        Attr::Principal => any_str(ms, strip_scheme(req.peer?)),
        Attr::Namespace => any_namespace(req.peer?, |ns| any_str(ms, ns)),
        Attr::TrustDomain => any_str(ms, trust_domain(req.peer?)),
        Attr::ServiceAccount => {
            let peer = req.peer?;
            ms.iter().any(|m| {
                matches!(m, Matcher::ServiceAccount { ns, sa } if service_account_matches(peer, ns, sa))
            })
        }
        Attr::SourceIp => cidr(req.source_ip),
        Attr::RemoteIp => cidr(req.remote_ip.unwrap_or(req.source_ip)),
        Attr::DestIp => cidr(req.destination_ip?),
        Attr::DestPort => ms
            .iter()
            .any(|m| matches!(m, Matcher::Port(p) if *p == req.destination_port)),
        Attr::Sni => any_str(ms, req.sni?),
        Attr::RequestPrincipal => {
            let jwt = req.http?.jwt?;
            let (iss, sub) = (jwt.issuer()?, jwt.subject()?);
            ms.iter().any(|m| {
                matches!(m, Matcher::RequestPrincipal { iss: i, sub: s } if i.matches(iss) && s.matches(sub))
            })
        }
        Attr::Host => {
            let host = req.http?.host;
            ms.iter()
                .any(|m| matches!(m, Matcher::Str(s) if s.matches_ignore_case(host)))
        }
        Attr::Method => any_str(ms, req.http?.method),
        Attr::Path => {
            let raw = req.http?.path;
            let path = raw.split(['?', '#']).next().unwrap_or(raw);
            ms.iter().any(|m| match m {
                Matcher::Str(s) => s.matches(path),
                Matcher::Template(t) => t.matches(path),
                _ => false,
            })
        }
        Attr::Header(name) => any_str(ms, req.http?.headers.get(name)?),
        Attr::Claim(path) => req.http?.jwt?.any_value(path, &mut |v| any_str(ms, v)),
        Attr::Unsupported => return None,
    })
}

/// The first field that kept an ALLOW rule from matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Field path in the rule, e.g. `from[0].source.principals`, `when[1][request.headers[x]]`.
    pub field: String,
    /// What the request had and what the field wanted.
    pub reason: String,
}

/// The ALLOW rule closest to matching a request, and why it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation<'p> {
    /// The nearest rule (most clauses satisfied; the first on ties).
    pub nearest: RuleRef<'p>,
    /// Its first failing field.
    pub mismatch: Mismatch,
}

/// For a request no ALLOW rule admits: the nearest enforced ALLOW rule and its first failing
/// field. `None` when an ALLOW rule matches or no enforced ALLOW rule exists. Allocates.
pub fn explain<'p>(authz: &'p CompiledAuthz, request: &Request<'_>) -> Option<Explanation<'p>> {
    let group = &authz.allow;
    let mut best: Option<(usize, u32, Mismatch)> = None;
    for pos in 0..group.flat.len() as u32 {
        let (policy, _, rule) = group.rule(pos);
        if policy.dry_run {
            continue;
        }
        let (score, mismatch) = score_rule(rule, request);
        let mismatch = mismatch?;
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, pos, mismatch));
        }
    }
    let (_, pos, mismatch) = best?;
    Some(Explanation {
        nearest: rule_ref(group, pos),
        mismatch,
    })
}

/// (clauses satisfied, first mismatch or `None` when the rule matches).
fn score_rule(rule: &CompiledRule, req: &Request<'_>) -> (usize, Option<Mismatch>) {
    if rule.unsupported {
        let reason = "uses an attribute Sigil cannot evaluate (experimental.envoy.filters.* or \
                      an unparseable value), so this ALLOW rule never matches";
        return (0, Some(mismatch("rule", reason)));
    }
    if req.http.is_none() && rule.http_only {
        let reason = "uses HTTP-only fields (hosts, methods, paths, requestPrincipals, headers, \
                      JWT claims) and the request is TCP: such ALLOW rules never match TCP";
        return (0, Some(mismatch("rule", reason)));
    }
    let mut score = 0;
    for entries in [rule.from.as_deref(), rule.to.as_deref()]
        .into_iter()
        .flatten()
    {
        let mut best: Option<(usize, &Clause)> = None;
        let mut matched = None;
        for e in entries {
            let passed = e
                .clauses
                .iter()
                .take_while(|c| clause_holds(c, req))
                .count();
            match e.clauses.get(passed) {
                None => {
                    matched = Some(passed);
                    break;
                }
                Some(c) if best.is_none_or(|(b, _)| passed > b) => best = Some((passed, c)),
                Some(_) => {}
            }
        }
        match (matched, best) {
            (Some(n), _) => score += n,
            (None, Some((n, c))) => return (score + n, Some(describe(c, req))),
            (None, None) => return (score, None),
        }
    }
    for c in &rule.when {
        if !clause_holds(c, req) {
            return (score, Some(describe(c, req)));
        }
        score += 1;
    }
    (score, None)
}

fn mismatch(field: &str, reason: &str) -> Mismatch {
    Mismatch {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

fn describe(c: &Clause, req: &Request<'_>) -> Mismatch {
    let patterns: Vec<String> = c
        .matchers
        .iter()
        .map(|m| match m {
            Matcher::Str(s) => s.pattern(),
            Matcher::Template(t) => t.as_str().to_owned(),
            Matcher::Cidr(b) => b.to_string(),
            Matcher::Port(p) => p.to_string(),
            Matcher::ServiceAccount { ns, sa } => format!("{ns}/{sa}"),
            Matcher::RequestPrincipal { iss, sub } => {
                format!("{}/{}", iss.pattern(), sub.pattern())
            }
        })
        .collect();
    let http = req.http.as_ref();
    let value: Option<String> = match &c.attr {
        Attr::Principal | Attr::Namespace | Attr::ServiceAccount | Attr::TrustDomain => {
            req.peer.map(str::to_owned)
        }
        Attr::SourceIp => Some(req.source_ip.to_string()),
        Attr::RemoteIp => Some(req.remote_ip.unwrap_or(req.source_ip).to_string()),
        Attr::DestIp => req.destination_ip.map(|i| i.to_string()),
        Attr::DestPort => Some(req.destination_port.to_string()),
        Attr::Sni => req.sni.map(str::to_owned),
        Attr::Host => http.map(|h| h.host.to_owned()),
        Attr::Method => http.map(|h| h.method.to_owned()),
        Attr::Path => http.map(|h| h.path.to_owned()),
        Attr::Header(n) => http.and_then(|h| h.headers.get(n)).map(str::to_owned),
        Attr::RequestPrincipal | Attr::Claim(_) => None,
        Attr::Unsupported => None,
    };
    let value = match (value, &c.attr) {
        (Some(v), _) => format!("`{v}`"),
        (None, Attr::Principal | Attr::Namespace | Attr::ServiceAccount | Attr::TrustDomain) => {
            "no peer identity (plaintext connection)".to_owned()
        }
        (None, _) => "the attribute is absent".to_owned(),
    };
    let verb = if c.negated {
        "matches one of"
    } else {
        "matches none of"
    };
    Mismatch {
        field: c.label.to_string(),
        reason: format!("{value} {verb} [{}]", patterns.join(", ")),
    }
}
