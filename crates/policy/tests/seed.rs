//! The seed article's YAML parses verbatim into the expected typed values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use sigil_policy::{
    Action, AuthorizationPolicySpec, ErrorKind, Mtls, MtlsMode, Object, ObjectMeta, Operation,
    PeerAuthenticationSpec, Resource, Rule, RuleFrom, RuleTo, Source, WorkloadSelector,
    parse_documents,
};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn parse_one(name: &str) -> Resource {
    let mut docs = parse_documents(name, &fixture(name)).unwrap();
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: Some(namespace.into()),
        ..ObjectMeta::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> WorkloadSelector {
    WorkloadSelector {
        match_labels: pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    }
}

fn peer(mode: MtlsMode) -> Resource {
    Resource::PeerAuthentication(Object::new(
        "security.istio.io/v1beta1",
        "PeerAuthentication",
        meta("default", "payments"),
        PeerAuthenticationSpec {
            mtls: Some(Mtls { mode }),
            ..PeerAuthenticationSpec::default()
        },
    ))
}

#[test]
fn seed_peer_authentication_permissive() {
    assert_eq!(
        parse_one("seed_peer_permissive.yaml"),
        peer(MtlsMode::Permissive)
    );
}

#[test]
fn seed_peer_authentication_strict() {
    assert_eq!(parse_one("seed_peer_strict.yaml"), peer(MtlsMode::Strict));
}

#[test]
fn seed_authorization_policy() {
    let expected = Resource::AuthorizationPolicy(Object::new(
        "security.istio.io/v1beta1",
        "AuthorizationPolicy",
        meta("billing-service-policy", "payments"),
        AuthorizationPolicySpec {
            selector: Some(labels(&[("app", "billing-service")])),
            action: Action::Allow,
            rules: Some(vec![Rule {
                from: Some(vec![RuleFrom {
                    source: Some(Source {
                        principals: vec!["cluster.local/ns/payments/sa/checkout-service".into()],
                        ..Source::default()
                    }),
                }]),
                to: Some(vec![RuleTo {
                    operation: Some(Operation {
                        methods: vec!["POST".into()],
                        paths: vec!["/api/v1/charge".into()],
                        ..Operation::default()
                    }),
                }]),
                when: vec![],
            }]),
            ..AuthorizationPolicySpec::default()
        },
    ));
    assert_eq!(parse_one("seed_authz.yaml"), expected);
}

#[test]
fn seed_port_level_exception_on_a_workload_policy() {
    let expected = Resource::PeerAuthentication(Object::new(
        "security.istio.io/v1beta1",
        "PeerAuthentication",
        meta("billing-service", "payments"),
        PeerAuthenticationSpec {
            selector: Some(labels(&[("app", "billing-service")])),
            mtls: Some(Mtls {
                mode: MtlsMode::Strict,
            }),
            port_level_mtls: Some(BTreeMap::from([(
                9090,
                Mtls {
                    mode: MtlsMode::Disable,
                },
            )])),
        },
    ));
    assert_eq!(parse_one("seed_port_exception_workload.yaml"), expected);
}

/// The seed adds `portLevelMtls` to its namespace-wide `default` policy; the Istio webhook
/// rejects that (port-level settings need a selector), and so do we, saying how to fix it.
#[test]
fn seed_port_level_exception_on_the_namespace_policy_is_rejected_like_upstream() {
    let name = "seed_port_exception_namespace_wide.yaml";
    let errors = parse_documents(name, &fixture(name)).unwrap_err();
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.kind, ErrorKind::PortLevelMtlsWithoutSelector);
    assert_eq!(
        (e.path.as_str(), e.line, e.column),
        ("spec.portLevelMtls", 9, 3)
    );
    assert!(e.to_string().contains("add a `selector`"), "{e}");
}
