//! Shared helpers for the networking tests: document builders and the invalid-case runner.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use sigil_policy::{ErrorKind, parse_documents};

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Header lines 1-6; the spec body starts on line 7.
pub fn doc(kind: &str, body: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: p\n  namespace: foo\nspec:\n{body}"
    )
}
pub fn dr(body: &str) -> String {
    doc("DestinationRule", body)
}
pub fn se(body: &str) -> String {
    doc("ServiceEntry", body)
}
pub fn we(body: &str) -> String {
    doc("WorkloadEntry", body)
}
/// `host: r` on line 7, `trafficPolicy:` on line 8, the policy body from line 9.
pub fn policy(body: &str) -> String {
    dr(&format!("  host: r\n  trafficPolicy:\n{body}"))
}
/// `tls:` on line 9, its fields from line 10.
pub fn tls(fields: &str) -> String {
    policy(&format!("    tls:\n{fields}"))
}
/// `loadBalancer:` on line 9, its fields from line 10.
pub fn lb(fields: &str) -> String {
    policy(&format!("    loadBalancer:\n{fields}"))
}
/// `connectionPool:` on line 9, its fields from line 10.
pub fn pool(fields: &str) -> String {
    policy(&format!("    connectionPool:\n{fields}"))
}

pub struct Case {
    pub name: &'static str,
    pub yaml: String,
    pub path: &'static str,
    pub line: u64,
    pub kind: fn(&ErrorKind) -> bool,
}

/// Each case fails with exactly one error, of the expected kind, at the expected path and
/// line; every message is one line naming the file and line.
pub fn check(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
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
        for e in &errors {
            let text = e.to_string();
            if text.contains('\n') || !text.starts_with(&format!("case.yaml:{}:", e.line)) {
                failures.push(format!("{}: badly formed message {text:?}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
