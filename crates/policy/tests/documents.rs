//! Multi-document files, duplicate keys, what upstream accepts, and serde round trips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use sigil_policy::{
    Action, ErrorKind, Mtls, MtlsMode, Resource, parse_documents, supported_kinds, validate,
};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn duplicate_port_key_is_rejected_at_the_second_occurrence() {
    let errors = parse_documents("dup.yaml", &fixture("duplicate_port.yaml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.kind, ErrorKind::DuplicateKey { key: "9090".into() });
    assert_eq!((e.line, e.column, e.document), (15, 5, 0));
    assert_eq!(e.path, "spec.portLevelMtls.9090");
}

#[test]
fn duplicate_struct_field_is_rejected() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n";
    let errors = parse_documents("dup.yaml", text).unwrap_err();
    assert!(matches!(&errors[0].kind, ErrorKind::DuplicateKey { key } if key == "name"));
    assert_eq!(
        (errors[0].line, errors[0].path.as_str()),
        (5, "metadata.name")
    );
}

#[test]
fn one_bad_document_rejects_the_file_and_names_its_index_and_line() {
    let errors = parse_documents("multi.yaml", &fixture("multi_one_bad.yaml")).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.document, 2);
    assert_eq!(e.line, 27);
    assert_eq!(e.path, "spec.rules[0].from[0].source.principal");
    assert!(e.to_string().contains("did you mean `principals`?"), "{e}");
}

#[test]
fn errors_in_several_documents_are_all_reported() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: Bad\n---\n\
                apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\n\
                apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok2\n  bogus: 1\n";
    let errors = parse_documents("many.yaml", text).unwrap_err();
    let seen: Vec<(usize, u64)> = errors.iter().map(|e| (e.document, e.line)).collect();
    assert_eq!(seen, vec![(0, 4), (2, 15)]);
}

#[test]
fn syntax_error_in_a_later_document_names_that_document() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n# comment\n---\n\
                apiVersion: v1\nkind: Namespace\nmetadata: {name: [b\n";
    let errors = parse_documents("syntax.yaml", text).unwrap_err();
    assert!(
        matches!(errors[0].kind, ErrorKind::Syntax { .. }),
        "{errors:#?}"
    );
    assert_eq!(errors[0].document, 2);
}

#[test]
fn empty_documents_and_status_are_skipped() {
    let text = "---\n# nothing\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n\
                status:\n  phase: Active\n---\n";
    let docs = parse_documents("ns.yaml", text).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].kind(), "Namespace");
    assert_eq!(docs[0].metadata().name, "a");
}

#[test]
fn everything_upstream_accepts_parses() {
    let docs = parse_documents("full.yaml", &fixture("full.yaml")).unwrap();
    let kinds: Vec<&str> = docs.iter().map(Resource::kind).collect();
    assert_eq!(
        kinds,
        [
            "AuthorizationPolicy",
            "AuthorizationPolicy",
            "RequestAuthentication",
            "PeerAuthentication"
        ]
    );
    let Resource::AuthorizationPolicy(p) = &docs[0] else {
        panic!()
    };
    assert_eq!(p.spec.action, Action::Deny);
    assert_eq!(p.metadata.annotations["istio.io/dry-run"], "true");
    assert_eq!(p.metadata.generation, Some(3));
    let op = p.spec.rules.as_ref().unwrap()[0].to.as_ref().unwrap()[0]
        .operation
        .clone()
        .unwrap();
    assert_eq!(op.ports, ["8080", "9090"]);
    let Resource::AuthorizationPolicy(custom) = &docs[1] else {
        panic!()
    };
    assert_eq!(custom.spec.provider.as_ref().unwrap().name, "my-ext-authz");
    assert_eq!(custom.spec.target_refs[0].kind, "Gateway");
    let Resource::RequestAuthentication(ra) = &docs[2] else {
        panic!()
    };
    let rule = &ra.spec.jwt_rules[0];
    assert!(rule.forward_original_token);
    assert_eq!(rule.from_headers[0].prefix, "Bearer ");
    assert_eq!(rule.timeout.as_deref(), Some("5s"));
    let Resource::PeerAuthentication(pa) = &docs[3] else {
        panic!()
    };
    // A quoted key (`"5432":`) is a port too, as in Kubernetes JSON.
    assert_eq!(
        pa.spec.port_level_mtls,
        Some(BTreeMap::from([
            (
                5432,
                Mtls {
                    mode: MtlsMode::Permissive
                }
            ),
            (
                9090,
                Mtls {
                    mode: MtlsMode::Unset
                }
            ),
        ]))
    );
    assert_eq!(
        pa.spec.mtls,
        Some(Mtls {
            mode: MtlsMode::Unset
        })
    );
}

/// Upstream does not validate method spelling (no error, no warning), nor hosts patterns.
#[test]
fn lowercase_methods_and_middle_wildcard_hosts_are_accepted_like_upstream() {
    let text = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\n\
                spec:\n  rules:\n  - to:\n    - operation:\n        methods: [get, Purge]\n        \
                hosts: [\"a.*.com\"]\n";
    parse_documents("m.yaml", text).unwrap();
}

#[test]
fn api_versions_v1_and_v1beta1_both_accepted() {
    for v in ["security.istio.io/v1", "security.istio.io/v1beta1"] {
        let text = format!(
            "apiVersion: {v}\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec: {{}}\n"
        );
        let docs = parse_documents("v.yaml", &text).unwrap();
        assert_eq!(docs[0].api_version(), v);
    }
    assert_eq!(supported_kinds().len(), 20);
}

fn round_trip_all(docs: &[Resource]) {
    for doc in docs {
        assert!(validate(doc).is_empty());
        let json = serde_json::to_string(doc).unwrap();
        assert_eq!(
            parse_documents("rt.json", &json).unwrap(),
            vec![doc.clone()],
            "{json}"
        );
        let yaml = serde_saphyr::to_string(doc).unwrap();
        assert_eq!(
            parse_documents("rt.yaml", &yaml).unwrap(),
            vec![doc.clone()],
            "{yaml}"
        );
    }
}

#[test]
fn parsed_resources_serialize_back_to_the_same_value() {
    for f in [
        "full.yaml",
        "seed_peer_permissive.yaml",
        "seed_peer_strict.yaml",
        "seed_authz.yaml",
        "seed_port_exception_workload.yaml",
    ] {
        round_trip_all(&parse_documents(f, &fixture(f)).unwrap());
    }
}

#[test]
fn serialized_yaml_uses_kubernetes_field_names() {
    let docs = parse_documents("s.yaml", &fixture("seed_port_exception_workload.yaml")).unwrap();
    let yaml = serde_saphyr::to_string(&docs[0]).unwrap();
    for needle in [
        "apiVersion: security.istio.io/v1beta1",
        "portLevelMtls:",
        "matchLabels:",
        "mode: DISABLE",
    ] {
        assert!(yaml.contains(needle), "{needle} missing in\n{yaml}");
    }
}
