//! Shared helpers for the authorization view tests: YAML builders, requests, a table runner.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use sigil_policy::{
    CompiledAuthz, Decision, Denial, HttpRequest, MeshContext, Permit, Request, Verdict, Workload,
    authorize, parse_documents,
};

/// An AuthorizationPolicy document; `spec` is YAML indented by two spaces relative to `spec:`.
pub fn ap(ns: &str, name: &str, spec: &str) -> String {
    ap_annotated(ns, name, "", spec)
}

pub fn ap_annotated(ns: &str, name: &str, annotations: &str, spec: &str) -> String {
    let mut s = format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
    );
    if !annotations.is_empty() {
        s += &format!("  annotations: {annotations}\n");
    }
    s += "spec:";
    let spec = spec.trim_matches('\n');
    if spec.trim_start().starts_with('{') {
        s += &format!(" {}\n", spec.trim());
    } else {
        s += "\n";
        let indent = spec
            .lines()
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        for line in spec.lines() {
            s += &format!("  {}\n", &line[indent.min(line.len())..]);
        }
    }
    s
}

pub fn workload() -> Workload {
    Workload::new("payments", [("app", "billing")])
}

pub fn compile(docs: &[String]) -> CompiledAuthz {
    let text = docs.join("---\n");
    let resources =
        parse_documents("authz.yaml", &text).unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
    CompiledAuthz::from_resources(&resources, &workload(), &MeshContext::default())
}

pub const CHECKOUT: &str = "spiffe://cluster.local/ns/payments/sa/checkout-service";
pub const FRONTEND: &str = "spiffe://cluster.local/ns/web/sa/frontend";
pub const OTHER_TD: &str = "spiffe://example.org/ns/payments/sa/checkout-service";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn get(peer: Option<&'static str>, path: &'static str) -> Request<'static> {
    Request::http(
        peer,
        ip("10.0.0.5"),
        8080,
        "GET",
        path,
        "billing.payments.svc",
    )
}

pub fn post(peer: Option<&'static str>, path: &'static str) -> Request<'static> {
    Request::http(
        peer,
        ip("10.0.0.5"),
        8080,
        "POST",
        path,
        "billing.payments.svc",
    )
}

pub fn tcp(peer: Option<&'static str>) -> Request<'static> {
    Request::tcp(peer, ip("10.0.0.5"), 8080)
}

/// `"permit"`, `"deny"`, or a string describing the deciding policy: `ns/name#rule`.
pub fn summary(d: &Decision<'_>) -> String {
    match d.verdict {
        Verdict::Permit(Permit::NoAllowPolicy) => "permit:no-allow-policy".into(),
        Verdict::Permit(Permit::Allowed(r)) => format!("permit:{}#{}", r.policy, r.rule),
        Verdict::Deny(Denial::Denied(r)) => format!("deny:{}#{}", r.policy, r.rule),
        Verdict::Deny(Denial::Custom { rule, provider }) => {
            format!("custom:{}#{}:{provider}", rule.policy, rule.rule)
        }
        Verdict::Deny(Denial::NoAllowMatched { .. }) => "deny:no-allow-matched".into(),
    }
}

pub struct Case {
    pub name: &'static str,
    pub docs: Vec<String>,
    pub request: Request<'static>,
    pub want: &'static str,
}

pub fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let authz = compile(&c.docs);
        let got = summary(&authorize(&authz, &c.request));
        if got != c.want {
            failures.push(format!("{}: got {got}, want {}", c.name, c.want));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

pub fn allow_checkout() -> String {
    ap(
        "payments",
        "allow-checkout",
        r#"
        selector: {matchLabels: {app: billing}}
        rules:
        - from:
          - source: {principals: ["cluster.local/ns/payments/sa/checkout-service"]}
          to:
          - operation: {methods: ["POST"], paths: ["/api/v1/charge"]}
        "#,
    )
}

pub fn allow_checkout_spec() -> String {
    "rules:\n- from: [{source: {principals: [\"cluster.local/ns/payments/sa/checkout-service\"]}}]\n  to: [{operation: {methods: [POST], paths: [/api/v1/charge]}}]".into()
}

/// ALLOW policies with one rule: `source`/`operation` are flow mappings.
pub fn allow(rule: &str) -> Vec<String> {
    vec![ap("payments", "p", &format!("rules:\n- {rule}"))]
}

pub fn with_headers(
    headers: &'static BTreeMap<String, String>,
    jwt: Option<&'static serde_json::Value>,
) -> Request<'static> {
    Request {
        http: Some(HttpRequest {
            method: "GET",
            path: "/",
            host: "h",
            headers,
            jwt: jwt.map(|j| j as &dyn sigil_policy::Claims),
        }),
        ..get(Some(CHECKOUT), "/")
    }
}

pub fn leak<T>(t: T) -> &'static T {
    Box::leak(Box::new(t))
}
