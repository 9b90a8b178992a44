//! Semantic checks equivalent to the Istio validating webhook (istio/istio
//! `pkg/config/validation`, `pkg/config/security`) plus Kubernetes name rules.
//!
//! Upstream only *warns* about a selector without labels and about DENY rules made only of
//! HTTP attributes; it does not check HTTP method spelling. Those are not errors here either.

use std::net::IpAddr;

use crate::authz::{Action, AuthorizationPolicySpec, Condition, Operation, Source};
use crate::error::{ErrorKind, closest};
use crate::meta::{ObjectMeta, PolicyTargetReference, WorkloadSelector};
use crate::peer_authn::PeerAuthenticationSpec;
use crate::request_authn::{JwtRule, RequestAuthenticationSpec};
use crate::resource::Resource;

/// One semantic problem: where (field path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path, e.g. `spec.portLevelMtls.9090`.
    pub path: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

#[derive(Default)]
struct Out(Vec<Violation>);

impl Out {
    fn push(&mut self, path: impl Into<String>, kind: ErrorKind) {
        self.0.push(Violation {
            path: path.into(),
            kind,
        });
    }
}

/// Checks a decoded resource; empty when valid.
pub fn validate(resource: &Resource) -> Vec<Violation> {
    let mut out = Out::default();
    match resource {
        Resource::PeerAuthentication(o) => {
            meta(&o.metadata, false, &mut out);
            peer_authentication(&o.spec, &mut out);
        }
        Resource::AuthorizationPolicy(o) => {
            meta(&o.metadata, false, &mut out);
            authorization_policy(&o.spec, &mut out);
        }
        Resource::RequestAuthentication(o) => {
            meta(&o.metadata, false, &mut out);
            request_authentication(&o.spec, &mut out);
        }
        Resource::Namespace(o) => meta(&o.metadata, true, &mut out),
        Resource::Certificate(o) => {
            meta(&o.metadata, false, &mut out);
            out.0
                .extend(crate::validate_certmanager::certificate(&o.spec));
        }
        Resource::Issuer(o) => {
            meta(&o.metadata, false, &mut out);
            out.0.extend(crate::validate_certmanager::issuer(&o.spec));
        }
        Resource::ClusterIssuer(o) => {
            meta(&o.metadata, false, &mut out);
            out.0.extend(crate::validate_certmanager::cluster_issuer(o));
        }
        Resource::DestinationRule(o) => {
            meta(&o.metadata, false, &mut out);
            out.0
                .extend(crate::validate_networking::destination_rule(o));
        }
        Resource::ServiceEntry(o) => {
            meta(&o.metadata, false, &mut out);
            out.0.extend(crate::validate_networking::service_entry(o));
        }
        Resource::WorkloadEntry(o) => {
            meta(&o.metadata, false, &mut out);
            out.0.extend(crate::validate_networking::workload_entry(o));
        }
        Resource::Secret(o) => {
            meta(&o.metadata, false, &mut out);
            out.0.extend(crate::secret::validate_secret(o));
        }
    }
    out.0
}

fn meta(m: &ObjectMeta, is_namespace: bool, out: &mut Out) {
    if m.name.is_empty() {
        if m.generate_name.is_none() {
            out.push(
                "metadata",
                ErrorKind::MissingField {
                    field: "name".into(),
                },
            );
        }
    } else if is_namespace && !is_dns1123_label(&m.name) {
        out.push(
            "metadata.name",
            ErrorKind::InvalidNamespace {
                value: m.name.clone(),
            },
        );
    } else if !is_dns1123_subdomain(&m.name) {
        out.push(
            "metadata.name",
            ErrorKind::InvalidName {
                value: m.name.clone(),
            },
        );
    }
    if let Some(ns) = &m.namespace
        && !is_dns1123_label(ns)
    {
        out.push(
            "metadata.namespace",
            ErrorKind::InvalidNamespace { value: ns.clone() },
        );
    }
}

/// Kubernetes DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Kubernetes DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn attachment(
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
    out: &mut Out,
) {
    let set = usize::from(selector.is_some())
        + usize::from(target_ref.is_some())
        + usize::from(!target_refs.is_empty());
    if set > 1 {
        let path = if target_ref.is_some() {
            "spec.targetRef"
        } else {
            "spec.targetRefs"
        };
        out.push(path, ErrorKind::SelectorAndTargetRef);
    }
    if let Some(sel) = selector {
        for (k, v) in &sel.match_labels {
            if k.is_empty() || k.contains('*') || v.contains('*') {
                out.push(
                    format!("spec.selector.matchLabels.{k}"),
                    ErrorKind::InvalidSelectorLabel {
                        label: format!("{k}={v}"),
                    },
                );
            }
        }
    }
}

fn peer_authentication(spec: &PeerAuthenticationSpec, out: &mut Out) {
    attachment(spec.selector.as_ref(), None, &[], out);
    let Some(ports) = &spec.port_level_mtls else {
        return;
    };
    let no_selector = spec
        .selector
        .as_ref()
        .is_none_or(|s| s.match_labels.is_empty());
    if ports.is_empty() {
        out.push("spec.portLevelMtls", ErrorKind::EmptyPortLevelMtls);
    } else if no_selector {
        out.push(
            "spec.portLevelMtls",
            ErrorKind::PortLevelMtlsWithoutSelector,
        );
    }
    for port in ports.keys() {
        if *port == 0 || *port > 65535 {
            out.push(
                format!("spec.portLevelMtls.{port}"),
                ErrorKind::PortOutOfRange {
                    value: port.to_string(),
                },
            );
        }
    }
}

fn authorization_policy(spec: &AuthorizationPolicySpec, out: &mut Out) {
    attachment(
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        out,
    );
    let action = spec.action;
    if matches!(action, Action::Custom | Action::Deny) && spec.rules.is_none() {
        out.push(
            "spec",
            ErrorKind::RulesRequired {
                action: action.as_str().into(),
            },
        );
    }
    if action == Action::Custom
        && spec.rules.is_some()
        && spec.provider.as_ref().is_none_or(|p| p.name.is_empty())
    {
        out.push("spec.provider", ErrorKind::CustomWithoutProvider);
    }
    if spec.provider.is_some() && action != Action::Custom {
        out.push(
            "spec.provider",
            ErrorKind::ProviderWithoutCustom {
                action: action.as_str().into(),
            },
        );
    }
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let rp = format!("spec.rules[{i}]");
        if let Some(from) = &rule.from {
            if from.is_empty() {
                out.push(
                    format!("{rp}.from"),
                    ErrorKind::EmptyList {
                        field: "from".into(),
                    },
                );
            }
            for (j, f) in from.iter().enumerate() {
                let fp = format!("{rp}.from[{j}]");
                match &f.source {
                    None => out.push(
                        fp,
                        ErrorKind::MissingEntry {
                            field: "source".into(),
                        },
                    ),
                    Some(src) => source(src, action, &format!("{fp}.source"), out),
                }
            }
        }
        if let Some(to) = &rule.to {
            if to.is_empty() {
                out.push(
                    format!("{rp}.to"),
                    ErrorKind::EmptyList { field: "to".into() },
                );
            }
            for (j, t) in to.iter().enumerate() {
                let tp = format!("{rp}.to[{j}]");
                match &t.operation {
                    None => out.push(
                        tp,
                        ErrorKind::MissingEntry {
                            field: "operation".into(),
                        },
                    ),
                    Some(op) => operation(op, &format!("{tp}.operation"), out),
                }
            }
        }
        for (j, c) in rule.when.iter().enumerate() {
            condition(c, action, &format!("{rp}.when[{j}]"), out);
        }
    }
}

fn source(src: &Source, action: Action, path: &str, out: &mut Out) {
    let lists: [(&str, &[String]); 14] = [
        ("principals", &src.principals),
        ("notPrincipals", &src.not_principals),
        ("requestPrincipals", &src.request_principals),
        ("notRequestPrincipals", &src.not_request_principals),
        ("namespaces", &src.namespaces),
        ("notNamespaces", &src.not_namespaces),
        ("ipBlocks", &src.ip_blocks),
        ("notIpBlocks", &src.not_ip_blocks),
        ("remoteIpBlocks", &src.remote_ip_blocks),
        ("notRemoteIpBlocks", &src.not_remote_ip_blocks),
        ("serviceAccounts", &src.service_accounts),
        ("notServiceAccounts", &src.not_service_accounts),
        ("trustDomains", &src.trust_domains),
        ("notTrustDomains", &src.not_trust_domains),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        out.push(path, ErrorKind::EmptySource);
    }
    let identity = src.principals.len()
        + src.not_principals.len()
        + src.namespaces.len()
        + src.not_namespaces.len();
    let accounts = src.service_accounts.len() + src.not_service_accounts.len();
    if identity > 0 && accounts > 0 {
        let field = if src.service_accounts.is_empty() {
            "notServiceAccounts"
        } else {
            "serviceAccounts"
        };
        out.push(
            format!("{path}.{field}"),
            ErrorKind::ServiceAccountsWithPrincipals,
        );
    }
    for (name, values) in lists {
        for (k, v) in values.iter().enumerate() {
            let vp = format!("{path}.{name}[{k}]");
            let kind = if name.ends_with("pBlocks") {
                check_ip(v)
            } else if name.ends_with("erviceAccounts") {
                check_service_account(v)
            } else {
                check_pattern(v)
            };
            if let Some(kind) = kind {
                out.push(vp, kind);
            }
        }
        let custom_unsupported = name.contains("rincipals")
            || name.contains("amespaces")
            || name.contains("erviceAccounts");
        if action == Action::Custom && custom_unsupported && !values.is_empty() {
            out.push(
                format!("{path}.{name}"),
                ErrorKind::NotSupportedWithCustom { field: name.into() },
            );
        }
    }
}

fn operation(op: &Operation, path: &str, out: &mut Out) {
    let lists: [(&str, &[String]); 8] = [
        ("hosts", &op.hosts),
        ("notHosts", &op.not_hosts),
        ("ports", &op.ports),
        ("notPorts", &op.not_ports),
        ("methods", &op.methods),
        ("notMethods", &op.not_methods),
        ("paths", &op.paths),
        ("notPaths", &op.not_paths),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        out.push(path, ErrorKind::EmptyOperation);
    }
    for (name, values) in lists {
        for (k, v) in values.iter().enumerate() {
            let kind = if v.is_empty() {
                Some(ErrorKind::EmptyValue)
            } else if name.ends_with("orts") {
                check_port(v)
            } else if name.ends_with("aths") {
                check_path_template(v)
            } else {
                None
            };
            if let Some(kind) = kind {
                out.push(format!("{path}.{name}[{k}]"), kind);
            }
        }
    }
}

/// Condition keys upstream accepts exactly.
const EXACT_KEYS: &[&str] = &[
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "source.trustDomain",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "destination.ip",
    "destination.port",
    "connection.sni",
];
/// Condition keys of the form `prefix[name]`.
const MAP_KEYS: &[&str] = &["request.headers", "request.auth.claims"];
const EXPERIMENTAL: &str = "experimental.envoy.filters.";

fn condition(c: &Condition, action: Action, path: &str, out: &mut Out) {
    let key = c.key.as_str();
    if key.is_empty() {
        out.push(format!("{path}.key"), ErrorKind::EmptyConditionKey);
        return;
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        out.push(path, ErrorKind::ConditionWithoutValues);
        return;
    }
    if action == Action::Custom
        && (matches!(
            key,
            "source.namespace" | "source.serviceAccount" | "source.principal"
        ) || key.starts_with("request.auth."))
    {
        out.push(
            format!("{path}.key"),
            ErrorKind::NotSupportedWithCustom { field: key.into() },
        );
    }
    let value_check: fn(&str) -> Option<ErrorKind> = if let Some(prefix) = MAP_KEYS
        .iter()
        .copied()
        .chain(std::iter::once(EXPERIMENTAL.trim_end_matches('.')))
        .find(|p| key.starts_with(p))
    {
        if !is_map_key(key) {
            out.push(
                format!("{path}.key"),
                ErrorKind::MalformedConditionKey {
                    key: key.into(),
                    prefix: prefix.into(),
                },
            );
            return;
        }
        |_| None
    } else if EXACT_KEYS.contains(&key) {
        match key {
            "source.ip" | "remote.ip" | "destination.ip" => check_ip,
            "destination.port" => check_port,
            _ => |_| None,
        }
    } else {
        let kind = match key {
            "destination.namespace" => ErrorKind::UnsupportedConditionKey {
                key: key.into(),
                hint: "it is replaced by the policy's metadata.namespace".into(),
            },
            k if k.starts_with("destination.labels") => ErrorKind::UnsupportedConditionKey {
                key: key.into(),
                hint: "it is replaced by the workload selector".into(),
            },
            "destination.name" | "destination.user" => ErrorKind::UnsupportedConditionKey {
                key: key.into(),
                hint: "deprecated attribute, only supported in v1alpha1".into(),
            },
            _ => ErrorKind::UnknownConditionKey {
                key: key.into(),
                suggestion: closest(
                    key,
                    EXACT_KEYS.iter().copied().chain(MAP_KEYS.iter().copied()),
                ),
            },
        };
        out.push(format!("{path}.key"), kind);
        return;
    };
    for (field, values) in [("values", &c.values), ("notValues", &c.not_values)] {
        for (k, v) in values.iter().enumerate() {
            let kind = if v.is_empty() {
                Some(ErrorKind::EmptyValue)
            } else {
                value_check(v)
            };
            if let Some(kind) = kind {
                out.push(format!("{path}.{field}[{k}]"), kind);
            }
        }
    }
}

/// `a[b]` with non-empty `a` and `b`.
fn is_map_key(key: &str) -> bool {
    match key.find('[') {
        Some(open) => key.ends_with(']') && open > 0 && open + 2 < key.len(),
        None => false,
    }
}

fn request_authentication(spec: &RequestAuthenticationSpec, out: &mut Out) {
    attachment(
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        out,
    );
    for (i, rule) in spec.jwt_rules.iter().enumerate() {
        jwt_rule(rule, &format!("spec.jwtRules[{i}]"), out);
    }
}

fn jwt_rule(rule: &JwtRule, path: &str, out: &mut Out) {
    for (k, a) in rule.audiences.iter().enumerate() {
        if a.is_empty() {
            out.push(format!("{path}.audiences[{k}]"), ErrorKind::EmptyValue);
        }
    }
    if rule.issuer.is_empty() && rule.jwks_uri.is_empty() {
        out.push(path, ErrorKind::JwtIssuerOrJwksUri);
    }
    let uri = rule.jwks_uri.as_str();
    if !(uri.is_empty() || uri.starts_with("http://") || uri.starts_with("https://")) {
        out.push(
            format!("{path}.jwksUri"),
            ErrorKind::InvalidJwksUri {
                value: rule.jwks_uri.clone(),
            },
        );
    }
    if !rule.jwks.is_empty()
        && let Err(e) =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&rule.jwks)
    {
        out.push(
            format!("{path}.jwks"),
            ErrorKind::InvalidJwks {
                message: e.to_string(),
            },
        );
    }
    for (k, h) in rule.from_headers.iter().enumerate() {
        if h.name.is_empty() {
            out.push(
                format!("{path}.fromHeaders[{k}].name"),
                ErrorKind::InvalidHeaderName {
                    value: String::new(),
                },
            );
        }
    }
    for (field, values) in [
        ("fromParams", &rule.from_params),
        ("fromCookies", &rule.from_cookies),
    ] {
        for (k, v) in values.iter().enumerate() {
            if v.is_empty() {
                out.push(format!("{path}.{field}[{k}]"), ErrorKind::EmptyValue);
            }
        }
    }
    for (k, c) in rule.output_claim_to_headers.iter().enumerate() {
        let cp = format!("{path}.outputClaimToHeaders[{k}]");
        if c.claim.is_empty() {
            out.push(format!("{cp}.claim"), ErrorKind::EmptyValue);
        }
        if !is_strict_header_name(&c.header) {
            out.push(
                format!("{cp}.header"),
                ErrorKind::InvalidHeaderName {
                    value: c.header.clone(),
                },
            );
        }
    }
    if let Some(t) = &rule.timeout
        && parse_duration_ms(t).is_none_or(|ms| ms < 1.0)
    {
        out.push(
            format!("{path}.timeout"),
            ErrorKind::InvalidDuration { value: t.clone() },
        );
    }
}

fn is_strict_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Go-style duration (`1h2m3.5s`, `100ms`) in milliseconds.
fn parse_duration_ms(s: &str) -> Option<f64> {
    let mut rest = s;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 6e4,
            "h" => 3.6e6,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(total)
}

/// Empty strings are rejected; `*` may appear once, as the whole value, prefix or suffix.
fn check_pattern(v: &str) -> Option<ErrorKind> {
    if v.is_empty() {
        return Some(ErrorKind::EmptyValue);
    }
    let stars = v.matches('*').count();
    let ok = stars == 0 || (stars == 1 && (v.starts_with('*') || v.ends_with('*')));
    (!ok).then(|| ErrorKind::InvalidWildcard { value: v.into() })
}

fn check_ip(v: &str) -> Option<ErrorKind> {
    if v.is_empty() {
        return Some(ErrorKind::EmptyValue);
    }
    let ok = match v.split_once('/') {
        Some((addr, bits)) => match (addr.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32 && !bits.starts_with('+'),
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128 && !bits.starts_with('+'),
            _ => false,
        },
        None => v.parse::<IpAddr>().is_ok(),
    };
    (!ok).then(|| ErrorKind::InvalidIpBlock { value: v.into() })
}

/// Upstream `ValidatePorts`: a decimal number 0..=65535.
fn check_port(v: &str) -> Option<ErrorKind> {
    let ok = !v.is_empty()
        && v.bytes().all(|c| c.is_ascii_digit())
        && v.parse::<u32>().is_ok_and(|p| p <= 65535);
    (!ok).then(|| ErrorKind::InvalidPort { value: v.into() })
}

fn check_service_account(v: &str) -> Option<ErrorKind> {
    let parts: Vec<&str> = v.split('/').collect();
    let ok = !v.is_empty()
        && v.len() <= 320
        && !v.contains('*')
        && parts.len() <= 2
        && parts.iter().all(|p| !p.is_empty());
    (!ok).then(|| ErrorKind::InvalidServiceAccount { value: v.into() })
}

/// Paths using `{*}`/`{**}` must not use other template syntax (`{name}`, `{x=*}`, `/*`).
fn check_path_template(v: &str) -> Option<ErrorKind> {
    if !(v.contains("{*}") || v.contains("{**}")) {
        return None;
    }
    let bad_glob = v.contains("/*") || v.contains("*/");
    let bad_brace = v
        .split('{')
        .skip(1)
        .any(|seg| !(seg.starts_with("*}") || seg.starts_with("**}")));
    (bad_glob || bad_brace).then(|| ErrorKind::InvalidPathTemplate { value: v.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_patterns_follow_istio_string_matching() {
        for ok in ["*", "abc", "abc*", "*abc", "cluster.local/ns/default/sa/x"] {
            assert_eq!(check_pattern(ok), None, "{ok}");
        }
        for bad in ["", "a*b", "*a*", "**", "a**"] {
            assert!(check_pattern(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn ip_blocks_accept_addresses_and_cidrs_only() {
        for ok in [
            "10.0.0.1",
            "10.0.0.0/8",
            "::1",
            "2001:db8::/32",
            "1.2.3.4/32",
        ] {
            assert_eq!(check_ip(ok), None, "{ok}");
        }
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
        ] {
            assert!(check_ip(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn ports_are_decimal_0_to_65535_like_upstream() {
        for ok in ["0", "80", "65535"] {
            assert_eq!(check_port(ok), None, "{ok}");
        }
        for bad in ["", "65536", "-1", "+80", "http", "8080 "] {
            assert!(check_port(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn path_templates() {
        for ok in ["/a/*", "*/b", "/foo/{*}/bar", "/foo/{**}", "/plain"] {
            assert_eq!(check_path_template(ok), None, "{ok}");
        }
        for bad in ["/foo/{*}/{bar}", "/{x=*}/{**}", "/foo/*/{*}", "/{}/{*}"] {
            assert!(check_path_template(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5s"), Some(5000.0));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000.0));
        assert_eq!(parse_duration_ms("100ms"), Some(100.0));
        assert_eq!(parse_duration_ms("5"), None);
        assert_eq!(parse_duration_ms(""), None);
        assert!(parse_duration_ms("10us").is_some_and(|ms| ms < 1.0));
    }

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("payments"));
        assert!(is_dns1123_subdomain("billing-service-policy.v2"));
        assert!(!is_dns1123_label("pay.ments"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(!is_dns1123_subdomain("Billing"));
        assert!(!is_dns1123_subdomain("a..b"));
    }

    #[test]
    fn map_condition_keys() {
        assert!(is_map_key("request.headers[x-foo]"));
        assert!(!is_map_key("request.headers[]"));
        assert!(!is_map_key("request.headers"));
        assert!(!is_map_key("request.headers[x"));
    }

    #[test]
    fn service_accounts() {
        assert_eq!(check_service_account("ns/sa"), None);
        assert_eq!(check_service_account("sa"), None);
        for bad in ["", "a/b/c", "ns/", "/sa", "ns/*"] {
            assert!(check_service_account(bad).is_some(), "{bad}");
        }
    }
}
