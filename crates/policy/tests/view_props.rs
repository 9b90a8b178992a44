//! Property: `authorize` never permits a request that a DENY rule names, and otherwise agrees
//! with a naive reference evaluation (no index, no precompilation) of Istio's semantics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use proptest::prelude::*;
use sigil_policy::{CompiledAuthz, MeshContext, Request, Workload, authorize, parse_documents};

const PEERS: &[&str] = &[
    "spiffe://cluster.local/ns/a/sa/x",
    "spiffe://cluster.local/ns/a/sa/y",
    "spiffe://cluster.local/ns/b/sa/x",
    "spiffe://example.org/ns/c/sa/z",
];
const PRINCIPALS: &[&str] = &[
    "cluster.local/ns/a/sa/x",
    "cluster.local/ns/b/sa/x",
    "example.org/ns/c/sa/z",
    "cluster.local/ns/a/*",
    "cluster.local/*",
    "*/sa/x",
    "*",
];
const NAMESPACES: &[&str] = &["a", "b", "c", "*"];
const METHODS: &[&str] = &["GET", "POST"];
const PATHS: &[&str] = &["/a", "/a/*", "*/b", "/a/b", "*"];
const PORTS: &[&str] = &["80", "8080"];

#[derive(Debug, Clone, Default)]
struct GenRule {
    principals: Vec<&'static str>,
    not_principals: Vec<&'static str>,
    namespaces: Vec<&'static str>,
    methods: Vec<&'static str>,
    paths: Vec<&'static str>,
    ports: Vec<&'static str>,
}

#[derive(Debug, Clone)]
struct GenPolicy {
    deny: bool,
    rules: Option<Vec<GenRule>>,
}

#[derive(Debug, Clone)]
struct GenRequest {
    peer: Option<&'static str>,
    http: Option<(&'static str, &'static str)>,
    port: u16,
}

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(pool), 0..3)
}

fn rule() -> impl Strategy<Value = GenRule> {
    (
        pick(PRINCIPALS),
        pick(PRINCIPALS),
        pick(NAMESPACES),
        pick(METHODS),
        pick(PATHS),
        pick(PORTS),
    )
        .prop_map(
            |(principals, not_principals, namespaces, methods, paths, ports)| GenRule {
                principals,
                not_principals,
                namespaces,
                methods,
                paths,
                ports,
            },
        )
}

fn policy() -> impl Strategy<Value = GenPolicy> {
    (
        any::<bool>(),
        prop::option::weighted(0.9, prop::collection::vec(rule(), 0..3)),
    )
        .prop_map(|(deny, rules)| GenPolicy {
            // DENY needs rules to pass validation.
            deny: deny && rules.is_some(),
            // `rules: [{}]`: one empty rule.
            rules: rules.map(|r| {
                if r.is_empty() {
                    vec![GenRule::default()]
                } else {
                    r
                }
            }),
        })
}

fn request() -> impl Strategy<Value = GenRequest> {
    (
        prop::option::weighted(0.8, prop::sample::select(PEERS)),
        prop::option::weighted(
            0.7,
            (
                prop::sample::select(METHODS),
                prop::sample::select(&["/a", "/a/b", "/c/b", "/", "/a/b/c"][..]),
            ),
        ),
        prop::sample::select(&[80u16, 8080, 9090][..]),
    )
        .prop_map(|(peer, http, port)| GenRequest { peer, http, port })
}

fn list(name: &str, values: &[&str]) -> String {
    if values.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    format!("{name}: [{}], ", quoted.join(", "))
}

fn yaml(i: usize, p: &GenPolicy) -> String {
    let mut s = format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p{i}, namespace: ns}}\nspec:\n  action: {}\n",
        if p.deny { "DENY" } else { "ALLOW" }
    );
    if let Some(rules) = &p.rules {
        s += "  rules:\n";
        for r in rules {
            let src = list("principals", &r.principals)
                + &list("notPrincipals", &r.not_principals)
                + &list("namespaces", &r.namespaces);
            let op =
                list("methods", &r.methods) + &list("paths", &r.paths) + &list("ports", &r.ports);
            s += "  - {";
            if !src.is_empty() {
                s += &format!("from: [{{source: {{{src}}}}}], ");
            }
            if !op.is_empty() {
                s += &format!("to: [{{operation: {{{op}}}}}]");
            }
            s += "}\n";
        }
    }
    s
}

fn glob(p: &str, v: &str) -> bool {
    if p == "*" {
        !v.is_empty()
    } else if let Some(s) = p.strip_prefix('*') {
        v.ends_with(s)
    } else if let Some(s) = p.strip_suffix('*') {
        v.starts_with(s)
    } else {
        p == v
    }
}

/// Reference semantics, written independently of the crate.
fn reference_matches(r: &GenRule, q: &GenRequest, deny: bool) -> bool {
    let http_only = !r.methods.is_empty() || !r.paths.is_empty();
    if !deny && q.http.is_none() && http_only {
        return false; // ALLOW drops the whole rule on TCP
    }
    let id = q.peer.map(|p| p.trim_start_matches("spiffe://"));
    let ns = id.and_then(|i| i.split("/ns/").nth(1)?.split('/').next());
    let any = |pats: &[&str], v: Option<&str>| v.is_some_and(|v| pats.iter().any(|p| glob(p, v)));
    let pos = |pats: &[&str], v: Option<&str>| pats.is_empty() || any(pats, v);
    let from = pos(&r.principals, id) && !any(&r.not_principals, id) && pos(&r.namespaces, ns);
    let port = q.port.to_string();
    let to = pos(&r.ports, Some(&port))
        && match q.http {
            // DENY on TCP: the HTTP-only clauses are dropped.
            None => true,
            Some((m, path)) => pos(&r.methods, Some(m)) && pos(&r.paths, Some(path)),
        };
    from && to
}

proptest! {
    #[test]
    fn never_permits_what_a_deny_rule_names(
        policies in prop::collection::vec(policy(), 0..6),
        requests in prop::collection::vec(request(), 1..8),
    ) {
        let text: Vec<String> = policies.iter().enumerate().map(|(i, p)| yaml(i, p)).collect();
        let text = text.join("---\n");
        let resources = parse_documents("p.yaml", &text).unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
        let authz = CompiledAuthz::from_resources(&resources, &Workload::new("ns", []), &MeshContext::default());
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        for q in &requests {
            let req = match q.http {
                Some((m, path)) => Request::http(q.peer, src, q.port, m, path, "h"),
                None => Request::tcp(q.peer, src, q.port),
            };
            let permit = authorize(&authz, &req).is_permit();
            let rules = |deny: bool| policies.iter().filter(move |p| p.deny == deny)
                .flat_map(|p| p.rules.iter().flatten());
            let denied = rules(true).any(|r| reference_matches(r, q, true));
            if denied {
                prop_assert!(!permit, "a DENY rule names {q:?} but it was permitted\n{text}");
                continue;
            }
            let has_allow = policies.iter().any(|p| !p.deny);
            let allowed = rules(false).any(|r| reference_matches(r, q, false));
            prop_assert_eq!(permit, !has_allow || allowed, "{:?}\n{}", q, text);
        }
    }
}
