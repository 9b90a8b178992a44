//! Authorization decisions — evaluation order, empty-policy semantics, selection, dry-run,
//! audit, explain: reference §2.1 and the §6 gotchas, as YAML users write it, table-driven.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod view_support;

use sigil_policy::{
    Action, AuthorizationPolicySpec, CompiledAuthz, Denial, MeshContext, NotAppliedReason, Object,
    ObjectMeta, Permit, PolicyId, Request, Rule, Verdict, Workload, authorize, explain,
    parse_documents,
};
use view_support::*;

#[test]
fn evaluation_order_and_empty_policy_semantics() {
    run(vec![
        Case {
            name: "no policy: allow",
            docs: vec![],
            request: get(None, "/"),
            want: "permit:no-allow-policy",
        },
        Case {
            name: "spec: {} is ALLOW with no rules: deny all",
            docs: vec![ap("payments", "deny-all", "{}")],
            request: post(Some(CHECKOUT), "/api/v1/charge"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "rules: [{}] is one empty rule: allow all",
            docs: vec![ap("payments", "allow-all", "rules: [{}]")],
            request: get(None, "/anything"),
            want: "permit:payments/allow-all#0",
        },
        Case {
            name: "allow-all next to deny-all: allow wins (ALLOW policies OR)",
            docs: vec![
                ap("payments", "a-deny-all", "{}"),
                ap("payments", "b-allow-all", "rules: [{}]"),
            ],
            request: tcp(None),
            want: "permit:payments/b-allow-all#0",
        },
        Case {
            name: "ALLOW matches: permit, naming the rule",
            docs: vec![allow_checkout()],
            request: post(Some(CHECKOUT), "/api/v1/charge"),
            want: "permit:payments/allow-checkout#0",
        },
        Case {
            name: "ALLOW exists and none matches: deny",
            docs: vec![allow_checkout()],
            request: get(Some(CHECKOUT), "/api/v1/charge"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "DENY beats a matching ALLOW",
            docs: vec![
                allow_checkout(),
                ap(
                    "payments",
                    "deny-charge",
                    "action: DENY\nrules:\n- to: [{operation: {paths: [\"/api/v1/charge\"]}}]",
                ),
            ],
            request: post(Some(CHECKOUT), "/api/v1/charge"),
            want: "deny:payments/deny-charge#0",
        },
        Case {
            name: "DENY that does not match, no ALLOW: allow",
            docs: vec![ap(
                "payments",
                "deny-admin",
                "action: DENY\nrules:\n- to: [{operation: {paths: [\"/admin*\"]}}]",
            )],
            request: get(None, "/api"),
            want: "permit:no-allow-policy",
        },
        Case {
            name: "DENY with empty rule denies everything",
            docs: vec![ap(
                "payments",
                "deny-everything",
                "action: DENY\nrules: [{}]",
            )],
            request: tcp(Some(CHECKOUT)),
            want: "deny:payments/deny-everything#0",
        },
        Case {
            name: "AUDIT never decides and does not count as an ALLOW policy",
            docs: vec![ap("payments", "audit-all", "action: AUDIT\nrules: [{}]")],
            request: get(None, "/"),
            want: "permit:no-allow-policy",
        },
        Case {
            name: "CUSTOM that matches fails closed, naming the provider",
            docs: vec![
                ap("payments", "allow-all", "rules: [{}]"),
                ap(
                    "payments",
                    "ext",
                    "action: CUSTOM\nprovider: {name: opa}\nrules:\n- to: [{operation: {paths: [\"/admin*\"]}}]",
                ),
            ],
            request: get(None, "/admin/users"),
            want: "custom:payments/ext#0:opa",
        },
        Case {
            name: "CUSTOM that does not match: evaluation goes on",
            docs: vec![
                ap("payments", "allow-all", "rules: [{}]"),
                ap(
                    "payments",
                    "ext",
                    "action: CUSTOM\nprovider: {name: opa}\nrules:\n- to: [{operation: {paths: [\"/admin*\"]}}]",
                ),
            ],
            request: get(None, "/public"),
            want: "permit:payments/allow-all#0",
        },
        Case {
            name: "CUSTOM is evaluated before DENY",
            docs: vec![
                ap("payments", "a-deny", "action: DENY\nrules: [{}]"),
                ap(
                    "payments",
                    "z-ext",
                    "action: CUSTOM\nprovider: {name: opa}\nrules: [{}]",
                ),
            ],
            request: get(None, "/"),
            want: "custom:payments/z-ext#0:opa",
        },
        Case {
            name: "the rule index names the rule that matched",
            docs: vec![ap(
                "payments",
                "multi",
                "rules:\n- to: [{operation: {paths: [\"/a\"]}}]\n- to: [{operation: {paths: [\"/b\"]}}]",
            )],
            request: get(None, "/b"),
            want: "permit:payments/multi#1",
        },
        Case {
            name: "several matching DENY policies: first by namespace/name is named",
            docs: vec![
                ap("payments", "z-deny", "action: DENY\nrules: [{}]"),
                ap("istio-system", "mesh-deny", "action: DENY\nrules: [{}]"),
            ],
            request: get(None, "/"),
            want: "deny:istio-system/mesh-deny#0",
        },
    ]);
}

#[test]
fn deny_without_rules_is_rejected_by_validation_and_has_no_effect_when_built() {
    let text = ap("payments", "d", "action: DENY");
    assert!(parse_documents("d.yaml", &text).is_err());
    let object = Object::new(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        ObjectMeta {
            name: "d".into(),
            namespace: Some("payments".into()),
            ..ObjectMeta::default()
        },
        AuthorizationPolicySpec {
            action: Action::Deny,
            rules: None,
            ..AuthorizationPolicySpec::default()
        },
    );
    let authz = CompiledAuthz::compile([&object], &workload(), &MeshContext::default());
    assert_eq!(
        summary(&authorize(&authz, &get(None, "/"))),
        "permit:no-allow-policy"
    );
    // And an ALLOW with `rules: []` (built, not parsed) denies like `spec: {}`.
    let object = Object::new(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        object.metadata.clone(),
        AuthorizationPolicySpec {
            rules: Some(Vec::<Rule>::new()),
            ..AuthorizationPolicySpec::default()
        },
    );
    let authz = CompiledAuthz::compile([&object], &workload(), &MeshContext::default());
    assert_eq!(
        summary(&authorize(&authz, &get(None, "/"))),
        "deny:no-allow-matched"
    );
}

#[test]
fn selection() {
    let deny_all = |ns: &str, name: &str, selector: &str| {
        ap(
            ns,
            name,
            &format!("{selector}\naction: DENY\nrules: [{{}}]"),
        )
    };
    run(vec![
        Case {
            name: "namespace-wide policy applies",
            docs: vec![deny_all("payments", "d", "")],
            request: get(None, "/"),
            want: "deny:payments/d#0",
        },
        Case {
            name: "matching selector applies",
            docs: vec![deny_all(
                "payments",
                "d",
                "selector: {matchLabels: {app: billing}}",
            )],
            request: get(None, "/"),
            want: "deny:payments/d#0",
        },
        Case {
            name: "non-matching selector does not",
            docs: vec![deny_all(
                "payments",
                "d",
                "selector: {matchLabels: {app: ledger}}",
            )],
            request: get(None, "/"),
            want: "permit:no-allow-policy",
        },
        Case {
            name: "policies of other namespaces do not apply",
            docs: vec![deny_all("web", "d", "")],
            request: get(None, "/"),
            want: "permit:no-allow-policy",
        },
        Case {
            name: "root namespace policy applies mesh-wide",
            docs: vec![deny_all("istio-system", "d", "")],
            request: get(None, "/"),
            want: "deny:istio-system/d#0",
        },
        Case {
            name: "root namespace selector matches workloads of every namespace",
            docs: vec![deny_all(
                "istio-system",
                "d",
                "selector: {matchLabels: {app: billing}}",
            )],
            request: get(None, "/"),
            want: "deny:istio-system/d#0",
        },
        Case {
            name: "root namespace ALLOW makes every workload default-deny",
            docs: vec![ap(
                "istio-system",
                "allow-web",
                "rules:\n- from: [{source: {namespaces: [web]}}]",
            )],
            request: get(Some(CHECKOUT), "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "targetRefs policies never apply to sidecar workloads",
            docs: vec![ap(
                "payments",
                "gw",
                "targetRefs:\n- {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\naction: DENY\nrules: [{}]",
            )],
            request: get(None, "/"),
            want: "permit:no-allow-policy",
        },
    ]);
    let authz = compile(&[
        ap(
            "payments",
            "gw",
            "targetRef: {kind: Service, group: \"\", name: billing}\nrules: [{}]",
        ),
        ap(
            "payments",
            "other",
            "selector: {matchLabels: {app: ledger}}\nrules: [{}]",
        ),
    ]);
    let reasons: Vec<_> = authz
        .not_applied()
        .iter()
        .map(|n| (n.id.name.as_str(), n.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("gw", NotAppliedReason::TargetRef),
            ("other", NotAppliedReason::SelectorMismatch)
        ]
    );
    assert_eq!(authz.policies().count(), 0);
}

#[test]
fn dry_run_policies_are_evaluated_but_never_enforced() {
    let dry = "{istio.io/dry-run: \"true\"}";
    let authz = compile(&[ap_annotated(
        "payments",
        "d",
        dry,
        "action: DENY\nrules: [{}]",
    )]);
    let d = authorize(&authz, &get(None, "/"));
    assert_eq!(summary(&d), "permit:no-allow-policy");
    match d.dry_run {
        Some(Verdict::Deny(Denial::Denied(r))) => {
            assert_eq!(r.policy.name, "d");
            assert!(r.dry_run);
        }
        other => panic!("{other:?}"),
    }

    // A dry-run ALLOW does not make the workload default-deny, but reports it would.
    let authz = compile(&[ap_annotated("payments", "a", dry, &allow_checkout_spec())]);
    let d = authorize(&authz, &get(Some(FRONTEND), "/"));
    assert_eq!(summary(&d), "permit:no-allow-policy");
    assert!(matches!(
        d.dry_run,
        Some(Verdict::Deny(Denial::NoAllowMatched { allow_policies: 1 }))
    ));
    let d = authorize(&authz, &post(Some(CHECKOUT), "/api/v1/charge"));
    assert!(matches!(
        d.dry_run,
        Some(Verdict::Permit(Permit::Allowed(_)))
    ));

    // "false" is not dry-run; without dry-run policies there is no shadow verdict.
    let authz = compile(&[ap_annotated(
        "payments",
        "d",
        "{istio.io/dry-run: \"false\"}",
        "action: DENY\nrules: [{}]",
    )]);
    let d = authorize(&authz, &get(None, "/"));
    assert_eq!(summary(&d), "deny:payments/d#0");
    assert_eq!(d.dry_run, None);
}

#[test]
fn audit_is_recorded() {
    let authz = compile(&[
        ap(
            "payments",
            "audit",
            "action: AUDIT\nrules:\n- to: [{operation: {methods: [DELETE]}}]",
        ),
        ap("payments", "d", "{}"),
    ]);
    let d = authorize(
        &authz,
        &Request::http(None, ip("10.0.0.1"), 80, "DELETE", "/x", "h"),
    );
    assert_eq!(summary(&d), "deny:no-allow-matched");
    assert_eq!(d.audit.map(|r| r.policy.name.as_str()), Some("audit"));
    assert_eq!(authorize(&authz, &get(None, "/")).audit, None);
}

#[test]
fn decisions_read_well() {
    let authz = compile(&[ap(
        "payments",
        "ext",
        "action: CUSTOM\nprovider: {name: opa}\nrules: [{}]",
    )]);
    let text = authorize(&authz, &tcp(None)).verdict.to_string();
    assert!(
        text.contains("CUSTOM policy payments/ext rule 0")
            && text.contains("`opa`")
            && text.contains("fail closed"),
        "{text}"
    );
    let authz = compile(&[allow_checkout()]);
    let text = authorize(&authz, &tcp(None)).verdict.to_string();
    assert!(text.contains("no rule of the 1 ALLOW policies"), "{text}");
}

#[test]
fn explain_finds_the_nearest_allow_rule_and_its_first_failing_field() {
    let authz = compile(&[
        ap(
            "payments",
            "a-web",
            "rules:\n- from: [{source: {namespaces: [web]}}]",
        ),
        allow_checkout(),
    ]);
    // Right peer and path, wrong method: allow-checkout is nearest, failing at methods.
    let e = explain(&authz, &get(Some(CHECKOUT), "/api/v1/charge")).unwrap();
    assert_eq!(
        e.nearest.policy,
        &PolicyId {
            namespace: "payments".into(),
            name: "allow-checkout".into()
        }
    );
    assert_eq!(e.mismatch.field, "to[0].operation.methods");
    assert!(
        e.mismatch.reason.contains("`GET`") && e.mismatch.reason.contains("POST"),
        "{:?}",
        e.mismatch
    );

    // Plaintext: the principal clause fails and says why.
    let e = explain(&authz, &post(None, "/api/v1/charge")).unwrap();
    assert!(e.mismatch.reason.contains("plaintext"), "{:?}", e.mismatch);

    // TCP: the HTTP rule is dropped as a whole.
    let only = compile(&[allow_checkout()]);
    let e = explain(&only, &tcp(Some(CHECKOUT))).unwrap();
    assert_eq!(e.mismatch.field, "rule");
    assert!(e.mismatch.reason.contains("TCP"), "{:?}", e.mismatch);

    // Nothing to explain when an ALLOW rule matches, or when there is no ALLOW rule.
    assert_eq!(
        explain(&authz, &post(Some(CHECKOUT), "/api/v1/charge")),
        None
    );
    assert_eq!(explain(&compile(&[]), &tcp(None)), None);
}

#[test]
fn seed_fixture_billing_policy() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/seed_authz.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let resources = parse_documents("seed_authz.yaml", &text).unwrap();
    let w = Workload::new("payments", [("app", "billing-service")]);
    let authz = CompiledAuthz::from_resources(&resources, &w, &MeshContext::default());
    assert!(authorize(&authz, &post(Some(CHECKOUT), "/api/v1/charge")).is_permit());
    assert!(!authorize(&authz, &post(Some(FRONTEND), "/api/v1/charge")).is_permit());
    assert!(!authorize(&authz, &get(Some(CHECKOUT), "/api/v1/charge")).is_permit());
}
