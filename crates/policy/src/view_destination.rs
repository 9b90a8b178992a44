//! Which DestinationRule TLS settings a client uses towards `host:port[/subset]`, and why.
//!
//! Pure re-statement of Istio's lookup (`PushContext.destinationRule`,
//! `SidecarScope.DestinationRule`, `mergeDestinationRule`, `MergeSubsetTrafficPolicy`):
//!
//! 1. **Which namespace.** Rules in the client's namespace first (all of them, whatever
//!    their `exportTo`), then rules *exported* by the service's namespace, then rules exported
//!    by the root namespace. The first namespace with a matching host decides; a rule is
//!    exported unless its `exportTo` names only its own namespace, and is visible to the
//!    client if `exportTo` is empty, has `*`, or names the client's namespace.
//! 2. **Which host.** An exact host beats wildcards; among wildcards the longest (most
//!    specific) wins. A host without a dot is a short name, read in the *rule's* namespace
//!    (`billing-service` in `payments` → `billing-service.payments.svc.cluster.local`).
//!    Only the most specific host is considered: if its rules are not exported to the
//!    client, that namespace yields nothing (Istio does not fall back to a wider wildcard).
//! 3. **Which rule.** Rules for the same host in one namespace are merged oldest first
//!    (`creationTimestamp`, then name): the oldest `trafficPolicy` wins, and each subset comes
//!    from the oldest rule defining it. In the client's namespace a rule whose
//!    `workloadSelector` matches the client is preferred over rules without a selector; rules
//!    with a selector never apply across namespaces.
//! 4. **Which level.** Top-level `tls`, replaced by a matching top-level `portLevelSettings`
//!    entry, replaced by the subset's `tls`, replaced by a matching subset `portLevelSettings`
//!    entry. A port-level entry replaces *every* field: one without `tls` clears it, and the
//!    connection falls back to auto mTLS.
//!
//! `tls: None` in the answer means Istio's auto mTLS decides (ISTIO_MUTUAL when the server
//! has a sidecar, plaintext otherwise).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::meta::Object;
use crate::networking::{ClientTlsSettings, DestinationRuleSpec, Subset, TrafficPolicy};

/// Istio's default root (mesh config) namespace.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
/// Kubernetes' default cluster domain, used to expand short hosts.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Namespace assumed for a rule whose `metadata.namespace` is absent.
const DEFAULT_NAMESPACE: &str = "default";

/// What is being looked up. Build with [`DestinationQuery::new`] and the setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationQuery<'a> {
    /// Namespace of the calling (client) workload.
    pub client_namespace: &'a str,
    /// Labels of the calling workload, for rules with a `workloadSelector`; `None` = none.
    pub client_labels: Option<&'a BTreeMap<String, String>>,
    /// Target host as a FQDN (`billing-service.payments.svc.cluster.local`) or a
    /// ServiceEntry host (`api.example.com`, `*.example.com`). Not expanded.
    pub host: &'a str,
    /// Namespace of the target service, when known; without it that step is skipped.
    pub service_namespace: Option<&'a str>,
    /// Target service port.
    pub port: u32,
    /// Subset (from a VirtualService route), if any.
    pub subset: Option<&'a str>,
    /// Mesh root namespace; default [`DEFAULT_ROOT_NAMESPACE`].
    pub root_namespace: &'a str,
    /// Cluster domain for short hosts; default [`DEFAULT_CLUSTER_DOMAIN`].
    pub cluster_domain: &'a str,
}

impl<'a> DestinationQuery<'a> {
    /// A query from a client in `client_namespace` to `host:port`.
    pub fn new(client_namespace: &'a str, host: &'a str, port: u32) -> Self {
        DestinationQuery {
            client_namespace,
            client_labels: None,
            host,
            service_namespace: None,
            port,
            subset: None,
            root_namespace: DEFAULT_ROOT_NAMESPACE,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN,
        }
    }

    /// Sets the target service's namespace.
    pub fn service_namespace(mut self, namespace: &'a str) -> Self {
        self.service_namespace = Some(namespace);
        self
    }

    /// Sets the subset.
    pub fn subset(mut self, subset: &'a str) -> Self {
        self.subset = Some(subset);
        self
    }

    /// Sets the client's workload labels.
    pub fn client_labels(mut self, labels: &'a BTreeMap<String, String>) -> Self {
        self.client_labels = Some(labels);
        self
    }

    /// Sets the root namespace.
    pub fn root_namespace(mut self, namespace: &'a str) -> Self {
        self.root_namespace = namespace;
        self
    }

    /// Sets the cluster domain.
    pub fn cluster_domain(mut self, domain: &'a str) -> Self {
        self.cluster_domain = domain;
        self
    }
}

/// Which namespace lookup found the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupStep {
    /// A rule in the client's own namespace.
    ClientNamespace,
    /// A rule exported by the service's namespace.
    ServiceNamespace,
    /// A rule exported by the root namespace.
    RootNamespace,
}

/// Which level of the rule decided the TLS settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsLevel {
    /// `subsets[].trafficPolicy.portLevelSettings[]` for the port.
    SubsetPortLevel,
    /// `subsets[].trafficPolicy.tls`.
    Subset,
    /// `trafficPolicy.portLevelSettings[]` for the port.
    PortLevel,
    /// `trafficPolicy.tls`.
    TopLevel,
    /// The rule applies but sets no TLS for this port/subset.
    Unset,
}

/// A rule by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DestinationRuleRef {
    /// Namespace (`default` when the rule has none).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for DestinationRuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The answer: the effective TLS settings and where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationTls<'r> {
    /// Effective upstream TLS; `None` = auto mTLS decides.
    pub tls: Option<&'r ClientTlsSettings>,
    /// The rule that supplied `level` (the oldest applicable rule when `level` is `Unset`).
    pub rule: DestinationRuleRef,
    /// The level that decided.
    pub level: TlsLevel,
    /// The namespace step that found the rule.
    pub step: LookupStep,
    /// The matching rule host, after short-name expansion.
    pub host: String,
    /// Every rule merged for that host, oldest first.
    pub merged: Vec<DestinationRuleRef>,
    /// `false` when a subset was asked for and no merged rule defines it (Istio has no
    /// cluster for it; the answer then describes the service-level policy).
    pub subset_found: bool,
}

/// A rule with its resolved namespace and host.
struct Candidate<'r> {
    rule: &'r Object<DestinationRuleSpec>,
    namespace: &'r str,
    host: String,
}

impl Candidate<'_> {
    fn reference(&self) -> DestinationRuleRef {
        DestinationRuleRef {
            namespace: self.namespace.to_owned(),
            name: self.rule.metadata.name.clone(),
        }
    }

    fn has_selector(&self) -> bool {
        self.rule.spec.workload_selector.is_some()
    }

    /// In the namespace's exported set: `exportTo` is not only the rule's own namespace.
    fn exported(&self) -> bool {
        let export = &self.rule.spec.export_to;
        export.is_empty() || export.iter().any(|e| e != "." && e != self.namespace)
    }

    fn visible_to(&self, namespace: &str) -> bool {
        let export = &self.rule.spec.export_to;
        export.is_empty()
            || export
                .iter()
                .any(|e| e == "*" || e == namespace || (e == "." && self.namespace == namespace))
    }
}

/// The TLS settings a client uses for `query`, or `None` when no DestinationRule applies
/// (auto mTLS). See the module documentation for the rules.
pub fn destination_tls<'r>(
    rules: &'r [Object<DestinationRuleSpec>],
    query: &DestinationQuery<'_>,
) -> Option<DestinationTls<'r>> {
    let mut candidates: Vec<Candidate<'r>> = rules
        .iter()
        .map(|rule| {
            let namespace = rule
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE);
            Candidate {
                rule,
                namespace,
                host: resolve_short_name(&rule.spec.host, namespace, query.cluster_domain),
            }
        })
        .collect();
    candidates.sort_by(|a, b| oldest_first(a, b));

    let mut steps = vec![(LookupStep::ClientNamespace, query.client_namespace)];
    if let Some(ns) = query.service_namespace {
        steps.push((LookupStep::ServiceNamespace, ns));
    }
    steps.push((LookupStep::RootNamespace, query.root_namespace));

    for (step, namespace) in steps {
        let local = step == LookupStep::ClientNamespace;
        let pool: Vec<&Candidate<'r>> = candidates
            .iter()
            .filter(|c| c.namespace == namespace)
            .filter(|c| local || (c.exported() && !c.has_selector()))
            .collect();
        let Some(host) = most_specific_host(query.host, pool.iter().map(|c| c.host.as_str()))
        else {
            continue;
        };
        let group: Vec<&Candidate<'r>> = pool.into_iter().filter(|c| c.host == host).collect();
        if local {
            let empty = BTreeMap::new();
            let labels = query.client_labels.unwrap_or(&empty);
            let selected: Vec<&Candidate<'r>> = group
                .iter()
                .copied()
                .filter(|c| {
                    c.rule.spec.workload_selector.as_ref().is_some_and(|s| {
                        s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
                    })
                })
                .collect();
            let chosen = if selected.is_empty() {
                group.into_iter().filter(|c| !c.has_selector()).collect()
            } else {
                selected
            };
            // The host's rules all target other workloads: Istio applies none.
            return decide(&chosen, step, host, query);
        }
        if group.iter().any(|c| c.visible_to(query.client_namespace)) {
            return decide(&group, step, host, query);
        }
    }
    None
}

fn decide<'r>(
    chosen: &[&Candidate<'r>],
    step: LookupStep,
    host: String,
    query: &DestinationQuery<'_>,
) -> Option<DestinationTls<'r>> {
    let primary = chosen.first()?;
    let top = chosen
        .iter()
        .find_map(|c| c.rule.spec.traffic_policy.as_ref().map(|tp| (*c, tp)));
    let subset: Option<(&Candidate<'r>, &'r Subset)> = query.subset.and_then(|name| {
        chosen.iter().find_map(|c| {
            c.rule
                .spec
                .subsets
                .iter()
                .find(|s| s.name == name)
                .map(|s| (*c, s))
        })
    });

    let mut decided: (Option<&'r ClientTlsSettings>, TlsLevel, &Candidate<'r>) =
        (None, TlsLevel::Unset, primary);
    if let Some((c, tp)) = top
        && let Some(found) = level_tls(tp, query.port)
    {
        let level = if found.1 {
            TlsLevel::PortLevel
        } else {
            TlsLevel::TopLevel
        };
        decided = (found.0, level, c);
    }
    if let Some((c, s)) = subset
        && let Some(tp) = &s.traffic_policy
        && let Some(found) = level_tls(tp, query.port)
    {
        let level = if found.1 {
            TlsLevel::SubsetPortLevel
        } else {
            TlsLevel::Subset
        };
        decided = (found.0, level, c);
    }
    Some(DestinationTls {
        tls: decided.0,
        rule: decided.2.reference(),
        level: decided.1,
        step,
        host,
        merged: chosen.iter().map(|c| c.reference()).collect(),
        subset_found: query.subset.is_none() || subset.is_some(),
    })
}

/// The TLS a policy level sets for `port`: `(tls, from_port_level)`, or `None` when the
/// level neither has a matching port entry nor a `tls`.
fn level_tls(tp: &TrafficPolicy, port: u32) -> Option<(Option<&ClientTlsSettings>, bool)> {
    let entry = tp
        .port_level_settings
        .iter()
        .find(|p| p.port.is_some_and(|sel| sel.number == port));
    match entry {
        Some(p) => Some((p.tls.as_ref(), true)),
        None => tp.tls.as_ref().map(|t| (Some(t), false)),
    }
}

/// Istio `ResolveShortnameToFQDN`: a host without a dot (other than `*` or an IP) gets
/// `.<namespace>.svc.<domain>`.
fn resolve_short_name(host: &str, namespace: &str, domain: &str) -> String {
    if host.is_empty()
        || host == "*"
        || host.contains('.')
        || host.parse::<std::net::IpAddr>().is_ok()
    {
        return host.to_owned();
    }
    if domain.is_empty() {
        format!("{host}.{namespace}")
    } else {
        format!("{host}.{namespace}.svc.{domain}")
    }
}

/// Istio `MostSpecificHostMatch`: exact first, else the longest wildcard covering `needle`.
/// A wildcard needle (`*.example.com`) matches wildcard hosts only.
fn most_specific_host<'h>(needle: &str, hosts: impl Iterator<Item = &'h str>) -> Option<String> {
    let hosts: Vec<&str> = hosts.collect();
    let needle_wild = needle.starts_with('*');
    if hosts
        .iter()
        .any(|h| *h == needle && h.starts_with('*') == needle_wild)
    {
        return Some(needle.to_owned());
    }
    let suffix_of = if needle_wild { &needle[1..] } else { needle };
    hosts
        .into_iter()
        .filter(|h| h.starts_with('*') && suffix_of.ends_with(&h[1..]))
        .max_by_key(|h| h.len())
        .map(str::to_owned)
}

fn oldest_first(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    fn created<'a>(c: &Candidate<'a>) -> Option<Result<i128, &'a str>> {
        c.rule
            .metadata
            .creation_timestamp
            .as_deref()
            .map(|t| parse_rfc3339(t).ok_or(t))
    }
    // Absent timestamps sort first (Go's zero time); unparsable ones after parsed ones.
    let time_order = match (created(a), created(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(Ok(x)), Some(Ok(y))) => x.cmp(&y),
        (Some(Ok(_)), Some(Err(_))) => Ordering::Less,
        (Some(Err(_)), Some(Ok(_))) => Ordering::Greater,
        (Some(Err(x)), Some(Err(y))) => x.cmp(y),
    };
    time_order
        .then_with(|| a.rule.metadata.name.cmp(&b.rule.metadata.name))
        .then_with(|| a.namespace.cmp(b.namespace))
}

/// RFC 3339 (`2024-05-01T10:00:00Z`, `…T10:00:00.5+02:00`) as nanoseconds since the epoch.
fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, min, sec) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let mut rest = &s[19..];
    let mut nanos: i128 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let mut scale: i128 = 100_000_000;
        for d in frac[..len].bytes() {
            nanos += i128::from(d - b'0') * scale;
            scale /= 10;
        }
        rest = &frac[len..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_expand_in_the_rule_namespace_only_without_dots() {
        let r = |h| resolve_short_name(h, "payments", "cluster.local");
        assert_eq!(r("billing"), "billing.payments.svc.cluster.local");
        assert_eq!(r("billing.payments"), "billing.payments");
        assert_eq!(r("*"), "*");
        assert_eq!(r("10.0.0.1"), "10.0.0.1");
        assert_eq!(r("*.example.com"), "*.example.com");
    }

    #[test]
    fn host_matching_prefers_exact_then_longest_wildcard() {
        let hosts = ["*", "*.svc.cluster.local", "*.payments.svc.cluster.local"];
        let m = |n| most_specific_host(n, hosts.iter().copied());
        assert_eq!(
            m("a.payments.svc.cluster.local").as_deref(),
            Some("*.payments.svc.cluster.local")
        );
        assert_eq!(
            m("a.other.svc.cluster.local").as_deref(),
            Some("*.svc.cluster.local")
        );
        assert_eq!(m("example.com").as_deref(), Some("*"));
        // `*.payments…` does not cover `payments…` itself.
        assert_eq!(
            most_specific_host(
                "payments.svc.cluster.local",
                ["*.payments.svc.cluster.local"].into_iter()
            ),
            None
        );
        assert_eq!(
            most_specific_host("*.example.com", ["*.example.com", "*.com"].into_iter()).as_deref(),
            Some("*.example.com")
        );
        assert_eq!(
            most_specific_host(
                "*.api.example.com",
                ["*.example.com", "a.api.example.com"].into_iter()
            )
            .as_deref(),
            Some("*.example.com")
        );
    }

    #[test]
    fn timestamps() {
        let t = |s| parse_rfc3339(s);
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t("1970-01-02T00:00:00Z"), Some(86_400_000_000_000));
        assert_eq!(t("2024-01-01T02:00:00+02:00"), t("2024-01-01T00:00:00Z"));
        assert!(t("2024-01-01T00:00:00.5Z") > t("2024-01-01T00:00:00Z"));
        assert!(t("2023-12-31T23:59:59Z") < t("2024-01-01T00:00:00Z"));
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
