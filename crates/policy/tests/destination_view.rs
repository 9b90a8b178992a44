//! `destination_tls`: which DestinationRule (and which level of it) decides the upstream TLS
//! a client uses. One table row per lookup rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use sigil_policy::{
    DestinationQuery, DestinationRuleRef, DestinationRuleSpec, LookupStep, Object, Resource,
    TlsLevel, TlsMode, destination_tls, parse_documents,
};

/// A DestinationRule document; `created` becomes `creationTimestamp`.
fn dr(namespace: &str, name: &str, created: Option<&str>, spec: &str) -> String {
    let created = created
        .map(|c| format!("  creationTimestamp: \"{c}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{created}spec:\n{spec}---\n"
    )
}

fn rules(docs: &[String]) -> Vec<Object<DestinationRuleSpec>> {
    parse_documents("rules.yaml", &docs.concat())
        .unwrap()
        .into_iter()
        .map(|r| match r {
            Resource::DestinationRule(o) => o,
            other => panic!("not a DestinationRule: {other:?}"),
        })
        .collect()
}

const BILLING: &str = "billing-service.payments.svc.cluster.local";

/// `host:` plus `trafficPolicy.tls.mode`.
fn tls_rule(host: &str, mode: &str) -> String {
    format!("  host: \"{host}\"\n  trafficPolicy:\n    tls:\n      mode: {mode}\n")
}

struct Query {
    client: &'static str,
    host: &'static str,
    service_ns: Option<&'static str>,
    port: u32,
    subset: Option<&'static str>,
    labels: &'static [(&'static str, &'static str)],
    root: Option<&'static str>,
}

/// A client in `checkout` calling billing-service in `payments` on 8080.
const BASE: Query = Query {
    client: "checkout",
    host: BILLING,
    service_ns: Some("payments"),
    port: 8080,
    subset: None,
    labels: &[],
    root: None,
};

/// What the lookup should decide; `None` = no rule applies.
type Expect = Option<(Option<TlsMode>, &'static str, TlsLevel, LookupStep)>;

struct Case {
    name: &'static str,
    rules: Vec<String>,
    query: Query,
    expect: Expect,
}

fn run(case: &Case) -> Result<(), String> {
    let rules = rules(&case.rules);
    let labels: BTreeMap<String, String> = case
        .query
        .labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let q = &case.query;
    let mut query = DestinationQuery::new(q.client, q.host, q.port).client_labels(&labels);
    if let Some(ns) = q.service_ns {
        query = query.service_namespace(ns);
    }
    if let Some(s) = q.subset {
        query = query.subset(s);
    }
    if let Some(root) = q.root {
        query = query.root_namespace(root);
    }
    let got = destination_tls(&rules, &query)
        .map(|d| (d.tls.map(|t| t.mode), d.rule.to_string(), d.level, d.step));
    let want = case
        .expect
        .map(|(mode, rule, level, step)| (mode, rule.to_owned(), level, step));
    if got == want {
        Ok(())
    } else {
        Err(format!("{}: got {got:?}, want {want:?}", case.name))
    }
}

fn cases() -> Vec<Case> {
    use LookupStep::{ClientNamespace, RootNamespace, ServiceNamespace};
    use TlsLevel::{PortLevel, Subset, SubsetPortLevel, TopLevel, Unset};
    use TlsMode::{Disable, IstioMutual, Mutual, Simple};
    let seed = dr(
        "payments",
        "payments-mtls",
        None,
        &tls_rule("*.payments.svc.cluster.local", "ISTIO_MUTUAL"),
    );
    let mesh_default = dr(
        "istio-system",
        "default",
        None,
        &tls_rule("*.local", "ISTIO_MUTUAL"),
    );
    vec![
        Case {
            name: "seed: namespace-wide ISTIO_MUTUAL applies inside payments",
            rules: vec![seed.clone()],
            query: Query {
                client: "payments",
                ..BASE
            },
            expect: Some((
                Some(IstioMutual),
                "payments/payments-mtls",
                TopLevel,
                ClientNamespace,
            )),
        },
        Case {
            name: "seed: and, exported by default, to other namespaces",
            rules: vec![seed.clone()],
            query: BASE,
            expect: Some((
                Some(IstioMutual),
                "payments/payments-mtls",
                TopLevel,
                ServiceNamespace,
            )),
        },
        Case {
            name: "no rule: auto mTLS",
            rules: vec![seed.clone()],
            query: Query {
                host: "ledger.finance.svc.cluster.local",
                service_ns: Some("finance"),
                ..BASE
            },
            expect: None,
        },
        Case {
            name: "the client's namespace beats the service's",
            rules: vec![
                seed.clone(),
                dr("checkout", "plain", None, &tls_rule(BILLING, "DISABLE")),
            ],
            query: BASE,
            expect: Some((Some(Disable), "checkout/plain", TopLevel, ClientNamespace)),
        },
        Case {
            name: "the client's namespace sees its own rules whatever exportTo says",
            rules: vec![
                seed.clone(),
                dr(
                    "checkout",
                    "private",
                    None,
                    &format!("{}  exportTo: [web]\n", tls_rule(BILLING, "SIMPLE")),
                ),
            ],
            query: BASE,
            expect: Some((Some(Simple), "checkout/private", TopLevel, ClientNamespace)),
        },
        Case {
            name: "the service's namespace beats the root namespace",
            rules: vec![mesh_default.clone(), seed.clone()],
            query: BASE,
            expect: Some((
                Some(IstioMutual),
                "payments/payments-mtls",
                TopLevel,
                ServiceNamespace,
            )),
        },
        Case {
            name: "the root namespace is the last resort",
            rules: vec![mesh_default.clone()],
            query: BASE,
            expect: Some((
                Some(IstioMutual),
                "istio-system/default",
                TopLevel,
                RootNamespace,
            )),
        },
        Case {
            name: "a custom root namespace",
            rules: vec![
                mesh_default.clone(),
                dr("mesh-root", "default", None, &tls_rule("*", "DISABLE")),
            ],
            query: Query {
                root: Some("mesh-root"),
                ..BASE
            },
            expect: Some((Some(Disable), "mesh-root/default", TopLevel, RootNamespace)),
        },
        Case {
            name: "without the service namespace that step is skipped",
            rules: vec![mesh_default.clone(), seed.clone()],
            query: Query {
                service_ns: None,
                ..BASE
            },
            expect: Some((
                Some(IstioMutual),
                "istio-system/default",
                TopLevel,
                RootNamespace,
            )),
        },
        Case {
            name: "exportTo `.` hides the rule from other namespaces",
            rules: vec![
                mesh_default.clone(),
                dr(
                    "payments",
                    "local-only",
                    None,
                    &format!("{}  exportTo: [\".\"]\n", tls_rule(BILLING, "DISABLE")),
                ),
            ],
            query: BASE,
            expect: Some((
                Some(IstioMutual),
                "istio-system/default",
                TopLevel,
                RootNamespace,
            )),
        },
        Case {
            name: "exportTo naming the client's namespace",
            rules: vec![
                mesh_default.clone(),
                dr(
                    "payments",
                    "to-checkout",
                    None,
                    &format!("{}  exportTo: [checkout]\n", tls_rule(BILLING, "SIMPLE")),
                ),
            ],
            query: BASE,
            expect: Some((
                Some(Simple),
                "payments/to-checkout",
                TopLevel,
                ServiceNamespace,
            )),
        },
        Case {
            name: "exportTo naming another namespace",
            rules: vec![
                mesh_default.clone(),
                dr(
                    "payments",
                    "to-web",
                    None,
                    &format!("{}  exportTo: [web]\n", tls_rule(BILLING, "SIMPLE")),
                ),
            ],
            query: BASE,
            expect: Some((
                Some(IstioMutual),
                "istio-system/default",
                TopLevel,
                RootNamespace,
            )),
        },
        Case {
            name: "exportTo `*`",
            rules: vec![dr(
                "payments",
                "everyone",
                None,
                &format!("{}  exportTo: [\"*\"]\n", tls_rule(BILLING, "SIMPLE")),
            )],
            query: BASE,
            expect: Some((
                Some(Simple),
                "payments/everyone",
                TopLevel,
                ServiceNamespace,
            )),
        },
        Case {
            name: "an exact host beats a wildcard",
            rules: vec![
                seed.clone(),
                dr("payments", "billing", None, &tls_rule(BILLING, "SIMPLE")),
            ],
            query: BASE,
            expect: Some((Some(Simple), "payments/billing", TopLevel, ServiceNamespace)),
        },
        Case {
            name: "the most specific wildcard wins",
            rules: vec![
                dr(
                    "istio-system",
                    "a",
                    None,
                    &tls_rule("*.svc.cluster.local", "DISABLE"),
                ),
                dr(
                    "istio-system",
                    "b",
                    None,
                    &tls_rule("*.payments.svc.cluster.local", "SIMPLE"),
                ),
                dr(
                    "istio-system",
                    "c",
                    None,
                    &tls_rule("*", "MUTUAL\n      credentialName: c"),
                ),
            ],
            query: BASE,
            expect: Some((Some(Simple), "istio-system/b", TopLevel, RootNamespace)),
        },
        Case {
            name: "the most specific host not exported to the client: no fallback in that namespace",
            rules: vec![
                mesh_default.clone(),
                seed.clone(),
                dr(
                    "payments",
                    "billing-to-web",
                    None,
                    &format!("{}  exportTo: [web]\n", tls_rule(BILLING, "SIMPLE")),
                ),
            ],
            query: BASE,
            expect: Some((
                Some(IstioMutual),
                "istio-system/default",
                TopLevel,
                RootNamespace,
            )),
        },
        Case {
            name: "a short host is read in the rule's namespace",
            rules: vec![dr(
                "payments",
                "short",
                None,
                &tls_rule("billing-service", "SIMPLE"),
            )],
            query: BASE,
            expect: Some((Some(Simple), "payments/short", TopLevel, ServiceNamespace)),
        },
        Case {
            name: "a short host in the client's namespace names a service there, not the target",
            rules: vec![
                seed.clone(),
                dr(
                    "checkout",
                    "short",
                    None,
                    &tls_rule("billing-service", "DISABLE"),
                ),
            ],
            query: BASE,
            expect: Some((
                Some(IstioMutual),
                "payments/payments-mtls",
                TopLevel,
                ServiceNamespace,
            )),
        },
        Case {
            name: "a host with a dot is not expanded",
            rules: vec![dr(
                "payments",
                "half",
                None,
                &tls_rule("billing-service.payments", "SIMPLE"),
            )],
            query: BASE,
            expect: None,
        },
        Case {
            name: "the oldest of two rules for one host wins",
            rules: vec![
                dr(
                    "payments",
                    "a-new",
                    Some("2024-06-01T00:00:00Z"),
                    &tls_rule(BILLING, "DISABLE"),
                ),
                dr(
                    "payments",
                    "z-old",
                    Some("2024-01-01T00:00:00Z"),
                    &tls_rule(BILLING, "SIMPLE"),
                ),
            ],
            query: BASE,
            expect: Some((Some(Simple), "payments/z-old", TopLevel, ServiceNamespace)),
        },
        Case {
            name: "same age: the name decides",
            rules: vec![
                dr(
                    "payments",
                    "b",
                    Some("2024-01-01T00:00:00Z"),
                    &tls_rule(BILLING, "DISABLE"),
                ),
                dr(
                    "payments",
                    "a",
                    Some("2024-01-01T00:00:00Z"),
                    &tls_rule(BILLING, "SIMPLE"),
                ),
            ],
            query: BASE,
            expect: Some((Some(Simple), "payments/a", TopLevel, ServiceNamespace)),
        },
        Case {
            name: "merged rules: the policy from the oldest rule that has one",
            rules: vec![
                dr(
                    "payments",
                    "subsets-only",
                    Some("2024-01-01T00:00:00Z"),
                    &format!(
                        "  host: {BILLING}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n"
                    ),
                ),
                dr(
                    "payments",
                    "policy",
                    Some("2024-02-01T00:00:00Z"),
                    &tls_rule(BILLING, "SIMPLE"),
                ),
            ],
            query: Query {
                subset: Some("v1"),
                ..BASE
            },
            expect: Some((Some(Simple), "payments/policy", TopLevel, ServiceNamespace)),
        },
        Case {
            name: "a port-level entry overrides the top level",
            rules: vec![dr("payments", "ports", None, &levels())],
            query: BASE,
            expect: Some((Some(Simple), "payments/ports", PortLevel, ServiceNamespace)),
        },
        Case {
            name: "a port-level entry without tls clears it (auto mTLS)",
            rules: vec![dr("payments", "ports", None, &levels())],
            query: Query { port: 9090, ..BASE },
            expect: Some((None, "payments/ports", PortLevel, ServiceNamespace)),
        },
        Case {
            name: "other ports use the top level",
            rules: vec![dr("payments", "ports", None, &levels())],
            query: Query { port: 80, ..BASE },
            expect: Some((
                Some(IstioMutual),
                "payments/ports",
                TopLevel,
                ServiceNamespace,
            )),
        },
        Case {
            name: "a subset's tls overrides the top and port levels",
            rules: vec![dr("payments", "ports", None, &levels())],
            query: Query {
                subset: Some("v2"),
                ..BASE
            },
            expect: Some((Some(Disable), "payments/ports", Subset, ServiceNamespace)),
        },
        Case {
            name: "a subset's port-level entry wins over everything",
            rules: vec![dr("payments", "ports", None, &levels())],
            query: Query {
                subset: Some("v2"),
                port: 8443,
                ..BASE
            },
            expect: Some((
                Some(Mutual),
                "payments/ports",
                SubsetPortLevel,
                ServiceNamespace,
            )),
        },
        Case {
            name: "a subset without a policy inherits the port level",
            rules: vec![dr("payments", "ports", None, &levels())],
            query: Query {
                subset: Some("v1"),
                ..BASE
            },
            expect: Some((Some(Simple), "payments/ports", PortLevel, ServiceNamespace)),
        },
        Case {
            name: "a rule without tls anywhere: it applies, TLS unset",
            rules: vec![dr(
                "payments",
                "lb-only",
                None,
                &format!(
                    "  host: {BILLING}\n  trafficPolicy:\n    loadBalancer: {{simple: RANDOM}}\n"
                ),
            )],
            query: BASE,
            expect: Some((None, "payments/lb-only", Unset, ServiceNamespace)),
        },
        Case {
            name: "a selector rule applies to the workloads it selects",
            rules: selector_rules(),
            query: Query {
                client: "payments",
                labels: &[("app", "checkout"), ("version", "v1")],
                ..BASE
            },
            expect: Some((
                Some(Mutual),
                "payments/for-checkout",
                TopLevel,
                ClientNamespace,
            )),
        },
        Case {
            name: "other workloads get the rule without selector",
            rules: selector_rules(),
            query: Query {
                client: "payments",
                labels: &[("app", "ledger")],
                ..BASE
            },
            expect: Some((
                Some(IstioMutual),
                "payments/catch-all",
                TopLevel,
                ClientNamespace,
            )),
        },
        Case {
            name: "a selector rule never applies across namespaces",
            rules: selector_rules(),
            query: Query {
                labels: &[("app", "checkout")],
                ..BASE
            },
            expect: Some((
                Some(IstioMutual),
                "payments/catch-all",
                TopLevel,
                ServiceNamespace,
            )),
        },
        Case {
            name: "only non-matching selector rules for the host: none applies",
            rules: vec![mesh_default.clone(), selector_rules().remove(0)],
            query: Query {
                client: "payments",
                labels: &[("app", "ledger")],
                ..BASE
            },
            expect: None,
        },
        Case {
            name: "a ServiceEntry host",
            rules: vec![dr(
                "checkout",
                "api",
                None,
                &tls_rule("api.example.com", "SIMPLE"),
            )],
            query: Query {
                host: "api.example.com",
                service_ns: None,
                port: 443,
                ..BASE
            },
            expect: Some((Some(Simple), "checkout/api", TopLevel, ClientNamespace)),
        },
        Case {
            name: "a wildcard ServiceEntry host matches the same wildcard",
            rules: vec![
                dr(
                    "checkout",
                    "exact",
                    None,
                    &tls_rule("a.example.com", "DISABLE"),
                ),
                dr(
                    "checkout",
                    "wild",
                    None,
                    &tls_rule("*.example.com", "SIMPLE"),
                ),
            ],
            query: Query {
                host: "*.example.com",
                service_ns: None,
                port: 443,
                ..BASE
            },
            expect: Some((Some(Simple), "checkout/wild", TopLevel, ClientNamespace)),
        },
        Case {
            name: "a client in the root namespace uses its own rules first",
            rules: vec![mesh_default.clone(), seed.clone()],
            query: Query {
                client: "istio-system",
                ..BASE
            },
            expect: Some((
                Some(IstioMutual),
                "istio-system/default",
                TopLevel,
                ClientNamespace,
            )),
        },
    ]
}

/// Top: ISTIO_MUTUAL; port 8080: SIMPLE; port 9090: connection pool only (no tls);
/// subset v1 without policy; subset v2: DISABLE, and MUTUAL on 8443.
fn levels() -> String {
    format!(
        "  host: {BILLING}
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
    portLevelSettings:
    - port: {{number: 8080}}
      tls: {{mode: SIMPLE}}
    - port: {{number: 9090}}
      connectionPool:
        tcp: {{maxConnections: 10}}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
    trafficPolicy:
      tls: {{mode: DISABLE}}
      portLevelSettings:
      - port: {{number: 8443}}
        tls: {{mode: MUTUAL, credentialName: billing-client}}
"
    )
}

fn selector_rules() -> Vec<String> {
    vec![
        dr(
            "payments",
            "for-checkout",
            None,
            &format!(
                "{}  workloadSelector:\n    matchLabels: {{app: checkout}}\n",
                tls_rule(BILLING, "MUTUAL\n      credentialName: checkout-client")
            ),
        ),
        dr(
            "payments",
            "catch-all",
            None,
            &tls_rule(BILLING, "ISTIO_MUTUAL"),
        ),
    ]
}

#[test]
fn lookup_rules() {
    let failures: Vec<String> = cases().iter().filter_map(|c| run(c).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_answer_names_the_host_the_merged_rules_and_a_missing_subset() {
    let rules = rules(&[
        dr(
            "payments",
            "old",
            Some("2024-01-01T00:00:00Z"),
            "  host: billing-service\n  subsets:\n  - name: v1\n    labels: {version: v1}\n",
        ),
        dr(
            "payments",
            "new",
            Some("2024-03-01T00:00:00+01:00"),
            &tls_rule(BILLING, "ISTIO_MUTUAL"),
        ),
    ]);
    let query = DestinationQuery::new("checkout", BILLING, 8080)
        .service_namespace("payments")
        .subset("v9");
    let d = destination_tls(&rules, &query).unwrap();
    assert_eq!(d.host, BILLING);
    let refs = |names: &[&str]| -> Vec<DestinationRuleRef> {
        names
            .iter()
            .map(|n| DestinationRuleRef {
                namespace: "payments".into(),
                name: (*n).into(),
            })
            .collect()
    };
    assert_eq!(d.merged, refs(&["old", "new"]));
    assert_eq!(d.rule, refs(&["new"])[0]);
    assert!(!d.subset_found);
    assert_eq!(d.tls.unwrap().mode, TlsMode::IstioMutual);

    let found = destination_tls(&rules, &query.subset("v1")).unwrap();
    assert!(found.subset_found);
}

#[test]
fn rules_without_namespace_count_as_default() {
    let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\nspec:\n  host: web\n  trafficPolicy:\n    tls: {mode: DISABLE}\n";
    let rules = rules(&[text.to_owned()]);
    let query = DestinationQuery::new("default", "web.default.svc.cluster.local", 80);
    let d = destination_tls(&rules, &query).unwrap();
    assert_eq!(d.rule.to_string(), "default/r");
    assert_eq!(d.step, LookupStep::ClientNamespace);
}
