//! Table of invalid documents: each names the error kind, the field path and the line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sigil_policy::{ErrorKind, parse_documents};

/// Header lines 1-6; the spec body starts on line 7.
fn doc(kind: &str, body: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: {kind}\nmetadata:\n  name: p\n  namespace: foo\nspec:\n{body}"
    )
}
fn ap(body: &str) -> String {
    doc("AuthorizationPolicy", body)
}
fn pa(body: &str) -> String {
    doc("PeerAuthentication", body)
}
fn ra(body: &str) -> String {
    doc("RequestAuthentication", body)
}

struct Case {
    name: &'static str,
    yaml: String,
    path: &'static str,
    line: u64,
    kind: fn(&ErrorKind) -> bool,
}

fn source(fields: &str) -> String {
    ap(&format!("  rules:\n  - from:\n    - source:\n{fields}"))
}
fn operation(fields: &str) -> String {
    ap(&format!("  rules:\n  - to:\n    - operation:\n{fields}"))
}
fn when(cond: &str) -> String {
    ap(&format!("  rules:\n  - when:\n{cond}"))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "unknown field with a suggestion",
            yaml: source("        principal: [\"a\"]\n"),
            path: "spec.rules[0].from[0].source.principal",
            line: 10,
            kind: |k| {
                matches!(k, ErrorKind::UnknownField { field, suggestion: Some(s), .. }
                    if field == "principal" && s == "principals")
            },
        },
        Case {
            name: "unknown metadata field",
            yaml: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  nmespace: y\n".into(),
            path: "metadata.nmespace",
            line: 5,
            kind: |k| {
                matches!(k, ErrorKind::UnknownField { suggestion: Some(s), .. } if s == "namespace")
            },
        },
        Case {
            name: "action in lowercase",
            yaml: ap("  action: allow\n"),
            path: "spec.action",
            line: 7,
            kind: |k| {
                matches!(k, ErrorKind::UnknownEnumValue { value, allowed, suggestion: Some(s) }
                    if value == "allow" && allowed.len() == 4 && s == "ALLOW")
            },
        },
        Case {
            name: "mtls mode typo",
            yaml: pa("  mtls:\n    mode: STRICTT\n"),
            path: "spec.mtls.mode",
            line: 8,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { suggestion: Some(s), .. } if s == "STRICT"),
        },
        Case {
            name: "principal with a wildcard in the middle",
            yaml: source("        principals: [\"cluster.local/ns/*/sa/x\"]\n"),
            path: "spec.rules[0].from[0].source.principals[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidWildcard { .. }),
        },
        Case {
            name: "namespace with two wildcards",
            yaml: source("        namespaces:\n        - ok\n        - \"*foo*\"\n"),
            path: "spec.rules[0].from[0].source.namespaces[1]",
            line: 12,
            kind: |k| matches!(k, ErrorKind::InvalidWildcard { value } if value == "*foo*"),
        },
        Case {
            name: "empty principal",
            yaml: source("        principals: [\"\"]\n"),
            path: "spec.rules[0].from[0].source.principals[0]",
            line: 10,
            kind: |k| *k == ErrorKind::EmptyValue,
        },
        Case {
            name: "CIDR prefix too long",
            yaml: source("        ipBlocks: [\"10.0.0.0/33\"]\n"),
            path: "spec.rules[0].from[0].source.ipBlocks[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidIpBlock { .. }),
        },
        Case {
            name: "remote ip block not an address",
            yaml: source("        notRemoteIpBlocks: [\"example.com\"]\n"),
            path: "spec.rules[0].from[0].source.notRemoteIpBlocks[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidIpBlock { .. }),
        },
        Case {
            name: "serviceAccounts together with principals",
            yaml: source("        principals: [\"a\"]\n        serviceAccounts: [\"ns/sa\"]\n"),
            path: "spec.rules[0].from[0].source.serviceAccounts",
            line: 11,
            kind: |k| *k == ErrorKind::ServiceAccountsWithPrincipals,
        },
        Case {
            name: "service account with a wildcard",
            yaml: source("        serviceAccounts: [\"ns/*\"]\n"),
            path: "spec.rules[0].from[0].source.serviceAccounts[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidServiceAccount { .. }),
        },
        Case {
            name: "empty source",
            yaml: source("        {}\n"),
            path: "spec.rules[0].from[0].source",
            line: 9,
            kind: |k| *k == ErrorKind::EmptySource,
        },
        Case {
            name: "empty from list",
            yaml: ap("  rules:\n  - from: []\n"),
            path: "spec.rules[0].from",
            line: 8,
            kind: |k| matches!(k, ErrorKind::EmptyList { field } if field == "from"),
        },
        Case {
            name: "from entry without source",
            yaml: ap("  rules:\n  - from:\n    - {}\n"),
            path: "spec.rules[0].from[0]",
            line: 9,
            kind: |k| matches!(k, ErrorKind::MissingEntry { field } if field == "source"),
        },
        Case {
            name: "port out of range in operation",
            yaml: operation("        ports: [\"99999\"]\n"),
            path: "spec.rules[0].to[0].operation.ports[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidPort { value } if value == "99999"),
        },
        Case {
            name: "operation port as a YAML number (the CRD says string)",
            yaml: operation("        ports: [8080]\n"),
            path: "spec.rules[0].to[0].operation.ports[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::WrongType { found, .. } if found.contains("8080")),
        },
        Case {
            name: "unsupported path template",
            yaml: operation("        paths: [\"/foo/{bar}/{*}\"]\n"),
            path: "spec.rules[0].to[0].operation.paths[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidPathTemplate { .. }),
        },
        Case {
            name: "empty operation",
            yaml: operation("        {}\n"),
            path: "spec.rules[0].to[0].operation",
            line: 9,
            kind: |k| *k == ErrorKind::EmptyOperation,
        },
        Case {
            name: "unknown condition key",
            yaml: when("    - key: source.ipp\n      values: [\"1.2.3.4\"]\n"),
            path: "spec.rules[0].when[0].key",
            line: 9,
            kind: |k| {
                matches!(k, ErrorKind::UnknownConditionKey { key, suggestion: Some(s) }
                    if key == "source.ipp" && s == "source.ip")
            },
        },
        Case {
            name: "replaced condition key",
            yaml: when("    - key: destination.labels[app]\n      values: [\"x\"]\n"),
            path: "spec.rules[0].when[0].key",
            line: 9,
            kind: |k| matches!(k, ErrorKind::UnsupportedConditionKey { .. }),
        },
        Case {
            name: "header condition without [name]",
            yaml: when("    - key: request.headers\n      values: [\"x\"]\n"),
            path: "spec.rules[0].when[0].key",
            line: 9,
            kind: |k| matches!(k, ErrorKind::MalformedConditionKey { .. }),
        },
        Case {
            name: "condition without values",
            yaml: when("    - key: source.ip\n"),
            path: "spec.rules[0].when[0]",
            line: 9,
            kind: |k| *k == ErrorKind::ConditionWithoutValues,
        },
        Case {
            name: "destination.port condition with a name",
            yaml: when("    - key: destination.port\n      notValues: [\"80\", \"http\"]\n"),
            path: "spec.rules[0].when[0].notValues[1]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidPort { value } if value == "http"),
        },
        Case {
            name: "source.ip condition with a bad CIDR",
            yaml: when("    - key: source.ip\n      values:\n      - 10.0.0.0/8\n      - 10.0.0/8\n"),
            path: "spec.rules[0].when[0].values[1]",
            line: 12,
            kind: |k| matches!(k, ErrorKind::InvalidIpBlock { .. }),
        },
        Case {
            name: "selector together with targetRefs",
            yaml: ap("  selector:\n    matchLabels:\n      app: a\n  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n"),
            path: "spec.targetRefs",
            line: 10,
            kind: |k| *k == ErrorKind::SelectorAndTargetRef,
        },
        Case {
            name: "wildcard in selector",
            yaml: ap("  selector:\n    matchLabels:\n      app: \"*\"\n"),
            path: "spec.selector.matchLabels.app",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidSelectorLabel { .. }),
        },
        Case {
            name: "CUSTOM without provider",
            yaml: ap("  action: CUSTOM\n  rules:\n  - {}\n"),
            path: "spec.provider",
            line: 6,
            kind: |k| *k == ErrorKind::CustomWithoutProvider,
        },
        Case {
            name: "CUSTOM without rules",
            yaml: ap("  action: CUSTOM\n  provider:\n    name: ext\n"),
            path: "spec",
            line: 6,
            kind: |k| matches!(k, ErrorKind::RulesRequired { action } if action == "CUSTOM"),
        },
        Case {
            name: "CUSTOM with principals",
            yaml: ap("  action: CUSTOM\n  provider:\n    name: ext\n  rules:\n  - from:\n    - source:\n        principals: [\"a\"]\n"),
            path: "spec.rules[0].from[0].source.principals",
            line: 13,
            kind: |k| matches!(k, ErrorKind::NotSupportedWithCustom { field } if field == "principals"),
        },
        Case {
            name: "provider on an AUDIT policy",
            yaml: ap("  action: AUDIT\n  provider:\n    name: ext\n  rules:\n  - {}\n"),
            path: "spec.provider",
            line: 8,
            kind: |k| matches!(k, ErrorKind::ProviderWithoutCustom { action } if action == "AUDIT"),
        },
        Case {
            name: "DENY without rules",
            yaml: ap("  action: DENY\n"),
            path: "spec",
            line: 6,
            kind: |k| matches!(k, ErrorKind::RulesRequired { action } if action == "DENY"),
        },
        Case {
            name: "portLevelMtls without selector",
            yaml: pa("  portLevelMtls:\n    8080:\n      mode: DISABLE\n"),
            path: "spec.portLevelMtls",
            line: 7,
            kind: |k| *k == ErrorKind::PortLevelMtlsWithoutSelector,
        },
        Case {
            name: "portLevelMtls port 0",
            yaml: pa("  selector:\n    matchLabels:\n      app: a\n  portLevelMtls:\n    0:\n      mode: DISABLE\n"),
            path: "spec.portLevelMtls.0",
            line: 11,
            kind: |k| matches!(k, ErrorKind::PortOutOfRange { value } if value == "0"),
        },
        Case {
            name: "portLevelMtls port 65536",
            yaml: pa("  selector:\n    matchLabels:\n      app: a\n  portLevelMtls:\n    65536:\n      mode: DISABLE\n"),
            path: "spec.portLevelMtls.65536",
            line: 11,
            kind: |k| matches!(k, ErrorKind::PortOutOfRange { .. }),
        },
        Case {
            name: "portLevelMtls negative port",
            yaml: pa("  selector:\n    matchLabels:\n      app: a\n  portLevelMtls:\n    -1:\n      mode: DISABLE\n"),
            path: "spec.portLevelMtls.-1",
            line: 11,
            kind: |k| matches!(k, ErrorKind::InvalidValue { expected, .. } if expected == "u32"),
        },
        Case {
            name: "empty portLevelMtls",
            yaml: pa("  selector:\n    matchLabels:\n      app: a\n  portLevelMtls: {}\n"),
            path: "spec.portLevelMtls",
            line: 10,
            kind: |k| *k == ErrorKind::EmptyPortLevelMtls,
        },
        Case {
            name: "name not DNS-1123",
            yaml: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: Billing_Policy\n".into(),
            path: "metadata.name",
            line: 4,
            kind: |k| matches!(k, ErrorKind::InvalidName { .. }),
        },
        Case {
            name: "namespace not a DNS-1123 label",
            yaml: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\n  namespace: pay.ments\n".into(),
            path: "metadata.namespace",
            line: 5,
            kind: |k| matches!(k, ErrorKind::InvalidNamespace { .. }),
        },
        Case {
            name: "missing name",
            yaml: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  namespace: a\n".into(),
            path: "metadata",
            line: 3,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "name"),
        },
        Case {
            name: "unsupported kind",
            yaml: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\n".into(),
            path: "kind",
            line: 2,
            kind: |k| matches!(k, ErrorKind::UnsupportedKind { kind, .. } if kind == "VirtualService"),
        },
        Case {
            name: "unsupported version of a known kind",
            yaml: "apiVersion: security.istio.io/v1alpha1\nkind: PeerAuthentication\nmetadata:\n  name: a\n".into(),
            path: "apiVersion",
            line: 1,
            kind: |k| matches!(k, ErrorKind::UnsupportedKind { .. }),
        },
        Case {
            name: "missing kind",
            yaml: "apiVersion: v1\nmetadata:\n  name: a\n".into(),
            path: "",
            line: 1,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "kind"),
        },
        Case {
            name: "jwt rule without issuer or jwksUri",
            yaml: ra("  jwtRules:\n  - audiences: [\"a\"]\n"),
            path: "spec.jwtRules[0]",
            line: 8,
            kind: |k| *k == ErrorKind::JwtIssuerOrJwksUri,
        },
        Case {
            name: "jwksUri with a bad scheme",
            yaml: ra("  jwtRules:\n  - issuer: a\n    jwksUri: ftp://example.com/jwks\n"),
            path: "spec.jwtRules[0].jwksUri",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidJwksUri { .. }),
        },
        Case {
            name: "timeout without unit",
            yaml: ra("  jwtRules:\n  - issuer: a\n    timeout: \"5\"\n"),
            path: "spec.jwtRules[0].timeout",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidDuration { .. }),
        },
        Case {
            name: "yes as a boolean",
            yaml: ra("  jwtRules:\n  - issuer: a\n    forwardOriginalToken: yes\n"),
            path: "spec.jwtRules[0].forwardOriginalToken",
            line: 9,
            kind: |k| *k == ErrorKind::NotBoolean,
        },
        Case {
            name: "no as a boolean",
            yaml: ra("  jwtRules:\n  - issuer: a\n    forwardOriginalToken: no\n"),
            path: "spec.jwtRules[0].forwardOriginalToken",
            line: 9,
            kind: |k| *k == ErrorKind::NotBoolean,
        },
        Case {
            name: "document that is not a mapping",
            yaml: "- a\n- b\n".into(),
            path: "",
            line: 1,
            kind: |k| matches!(k, ErrorKind::WrongType { .. }),
        },
        Case {
            name: "YAML syntax error",
            yaml: "apiVersion: v1\nkind: [Namespace\n".into(),
            path: "",
            line: 2,
            kind: |k| matches!(k, ErrorKind::Syntax { .. }),
        },
    ]
}

#[test]
fn invalid_documents_report_kind_path_and_line() {
    let mut failures = Vec::new();
    for case in cases() {
        let Err(errors) = parse_documents("case.yaml", &case.yaml) else {
            failures.push(format!("{}: accepted", case.name));
            continue;
        };
        let e = &errors[0];
        let ok = errors.len() == 1
            && (case.kind)(&e.kind)
            && e.path == case.path
            && e.line == case.line
            && e.document == 0
            && e.file == "case.yaml";
        if !ok {
            failures.push(format!("{}: got {errors:#?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_error_message_is_one_line_and_names_file_and_line() {
    for case in cases() {
        for e in parse_documents("case.yaml", &case.yaml).unwrap_err() {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{}: {text}", case.name);
            assert!(
                text.starts_with(&format!("case.yaml:{}:", e.line)),
                "{}: {text}",
                case.name
            );
        }
    }
}
