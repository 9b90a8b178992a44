//! Semantic checks for cert-manager kinds, equivalent to cert-manager's validating webhook
//! (`internal/apis/certmanager/validation`: `certificate.go`, `issuer.go`).
//!
//! Differences from upstream, on purpose:
//! - Feature-gated fields (`literalSubject`, `otherNames`, `nameConstraints`) are validated
//!   as if their gates were on.
//! - `renewBeforePercentage` is checked with its documented meaning (renew when that
//!   percentage of the lifetime remains: `renewBefore = duration × pct / 100`), where the
//!   upstream webhook computes with `100 − pct`.
//! - URIs (SANs, CRL/OCSP/AIA URLs) must be absolute and well-formed; upstream defers this
//!   to CSR generation, where a bad one fails issuance later.
//! - `secretTemplate.labels` are not checked against Kubernetes label syntax here.
//! - `renewBefore` ≥ `duration` is accepted here; the Certificate controller reports it as
//!   `Ready False` (reason `InvalidSpec`) with the fix, where `sigil get certificate` and
//!   `sigil cert status` show it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::certmanager::syntax::{
    check_cron, check_uri, is_cidr, is_email, is_oid, literal_subject_cn,
};
use crate::certmanager::{
    CERT_MANAGER_GROUP, CertificateSpec, GoDuration, IssuerSpec, Keystores, NameConstraintItem,
    PrivateKeyAlgorithm, RenewalPolicy, SignatureAlgorithm,
};
use crate::error::ErrorKind;
use crate::meta::Object;
use crate::validate::{Violation, is_dns1123_subdomain};

type Out = Vec<Violation>;

fn push(out: &mut Out, path: impl Into<String>, kind: ErrorKind) {
    out.push(Violation {
        path: path.into(),
        kind,
    });
}

fn missing(out: &mut Out, path: &str, field: &str) {
    push(
        out,
        format!("{path}.{field}"),
        ErrorKind::MissingField {
            field: field.to_owned(),
        },
    );
}

/// Checks a `Certificate` spec (metadata is checked by the caller).
pub(crate) fn certificate(spec: &CertificateSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let out = &mut out;
    secret_name(&spec.secret_name, "spec.secretName", out);
    issuer_ref(spec, out);
    names(spec, out);
    private_key(spec, out);
    durations(spec, out);
    if let Some(limit) = spec.revision_history_limit
        && limit < 1
    {
        push(
            out,
            "spec.revisionHistoryLimit",
            ErrorKind::RevisionHistoryLimitTooLow {
                value: i64::from(limit),
            },
        );
    }
    if let Some(t) = &spec.secret_template {
        for key in t.annotations.keys() {
            if key.starts_with("cert-manager.io/")
                && key != "cert-manager.io/allow-direct-injection"
            {
                push(
                    out,
                    format!("spec.secretTemplate.annotations[{key}]"),
                    ErrorKind::ReservedAnnotation { key: key.clone() },
                );
            }
        }
    }
    if let Some(nc) = &spec.name_constraints {
        if !spec.is_ca {
            push(
                out,
                "spec.nameConstraints",
                ErrorKind::NameConstraintsWithoutCa,
            );
        }
        if nc.permitted.is_none() && nc.excluded.is_none() {
            push(out, "spec.nameConstraints", ErrorKind::EmptyNameConstraints);
        }
        for (side, item) in [("permitted", &nc.permitted), ("excluded", &nc.excluded)] {
            if let Some(item) = item {
                name_constraint_item(item, &format!("spec.nameConstraints.{side}"), out);
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, f) in spec.additional_output_formats.iter().enumerate() {
        if !seen.insert(f.format.as_str()) {
            push(
                out,
                format!("spec.additionalOutputFormats[{i}].type"),
                ErrorKind::DuplicateEntry {
                    field: "additionalOutputFormats".into(),
                    value: f.format.as_str().into(),
                },
            );
        }
    }
    if let Some(k) = &spec.keystores {
        keystores(k, out);
    }
    renewal(spec, out);
    std::mem::take(out)
}

fn secret_name(name: &str, path: &str, out: &mut Out) {
    if name.is_empty() {
        let (parent, field) = path.rsplit_once('.').unwrap_or(("", path));
        missing(out, parent, field);
    } else if !is_dns1123_subdomain(name) {
        push(
            out,
            path,
            ErrorKind::InvalidName {
                value: name.to_owned(),
            },
        );
    }
}

fn issuer_ref(spec: &CertificateSpec, out: &mut Out) {
    let r = &spec.issuer_ref;
    if r.name.is_empty() {
        missing(out, "spec.issuerRef", "name");
    }
    let builtin_group = r.group.is_empty() || r.group == CERT_MANAGER_GROUP;
    if builtin_group && !matches!(r.kind.as_str(), "" | "Issuer" | "ClusterIssuer") {
        push(
            out,
            "spec.issuerRef.kind",
            ErrorKind::InvalidIssuerKind {
                value: r.kind.clone(),
                group_missing: r.group.is_empty(),
            },
        );
    }
}

fn names(spec: &CertificateSpec, out: &mut Out) {
    let mut common_name = spec.common_name.clone();
    if !spec.literal_subject.is_empty() {
        if !spec.common_name.is_empty() {
            push(
                out,
                "spec.commonName",
                ErrorKind::LiteralSubjectConflict {
                    field: "commonName".into(),
                },
            );
        }
        if spec.subject.as_ref().is_some_and(|s| !s.is_empty()) {
            push(
                out,
                "spec.subject",
                ErrorKind::LiteralSubjectConflict {
                    field: "subject".into(),
                },
            );
        }
        match literal_subject_cn(&spec.literal_subject) {
            Ok(cn) => common_name = cn.unwrap_or_default(),
            Err(reason) => push(
                out,
                "spec.literalSubject",
                ErrorKind::InvalidLiteralSubject {
                    value: spec.literal_subject.clone(),
                    reason,
                },
            ),
        }
    }
    let any_san = !(spec.dns_names.is_empty()
        && spec.uris.is_empty()
        && spec.email_addresses.is_empty()
        && spec.ip_addresses.is_empty()
        && spec.other_names.is_empty());
    if common_name.is_empty() && !any_san {
        push(out, "spec", ErrorKind::NoCertificateNames);
    }
    let cn_len = common_name.chars().count();
    if cn_len > 64 {
        let path = if spec.literal_subject.is_empty() {
            "spec.commonName"
        } else {
            "spec.literalSubject"
        };
        push(out, path, ErrorKind::CommonNameTooLong { length: cn_len });
    }
    for (i, ip) in spec.ip_addresses.iter().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            push(
                out,
                format!("spec.ipAddresses[{i}]"),
                ErrorKind::InvalidIpAddress { value: ip.clone() },
            );
        }
    }
    uri_list(&spec.uris, "spec.uris", out);
    for (i, e) in spec.email_addresses.iter().enumerate() {
        if !is_email(e) {
            push(
                out,
                format!("spec.emailAddresses[{i}]"),
                ErrorKind::InvalidEmail { value: e.clone() },
            );
        }
    }
    for (i, o) in spec.other_names.iter().enumerate() {
        let p = format!("spec.otherNames[{i}]");
        if o.oid.is_empty() {
            missing(out, &p, "oid");
        } else if !is_oid(&o.oid) {
            push(
                out,
                format!("{p}.oid"),
                ErrorKind::InvalidOid {
                    value: o.oid.clone(),
                },
            );
        }
        if o.utf8_value.is_empty() {
            missing(out, &p, "utf8Value");
        }
    }
}

fn private_key(spec: &CertificateSpec, out: &mut Out) {
    let algorithm = spec
        .private_key
        .as_ref()
        .and_then(|k| k.algorithm)
        .unwrap_or(PrivateKeyAlgorithm::Rsa);
    if let Some(size) = spec.private_key.as_ref().and_then(|k| k.size) {
        let allowed = match algorithm {
            PrivateKeyAlgorithm::Rsa if size != 0 && !(2048..=8192).contains(&size) => {
                Some("2048 to 8192 bits (2048, 3072, 4096 or 8192), or leave it out for 2048")
            }
            PrivateKeyAlgorithm::Ecdsa if ![0, 256, 384, 521].contains(&size) => {
                Some("256, 384 or 521, or leave it out for 256")
            }
            _ => None,
        };
        if let Some(allowed) = allowed {
            push(
                out,
                "spec.privateKey.size",
                ErrorKind::InvalidKeySize {
                    algorithm: algorithm.as_str().into(),
                    size,
                    allowed: allowed.into(),
                },
            );
        }
    }
    if let Some(sig) = spec.signature_algorithm
        && sig.key_algorithm() != algorithm
    {
        let allowed: Vec<&str> = SIGNATURE_ALGORITHMS
            .iter()
            .filter(|s| s.key_algorithm() == algorithm)
            .map(|s| s.as_str())
            .collect();
        push(
            out,
            "spec.signatureAlgorithm",
            ErrorKind::SignatureAlgorithmMismatch {
                signature: sig.as_str().into(),
                needs: sig.key_algorithm().as_str().into(),
                key: algorithm.as_str().into(),
                allowed: allowed.join(", "),
            },
        );
    }
}

const SIGNATURE_ALGORITHMS: [SignatureAlgorithm; 7] = [
    SignatureAlgorithm::Sha256WithRsa,
    SignatureAlgorithm::Sha384WithRsa,
    SignatureAlgorithm::Sha512WithRsa,
    SignatureAlgorithm::EcdsaWithSha256,
    SignatureAlgorithm::EcdsaWithSha384,
    SignatureAlgorithm::EcdsaWithSha512,
    SignatureAlgorithm::PureEd25519,
];

/// Parses a Go duration field, reporting bad syntax; `None` when absent or bad.
fn go_duration(value: Option<&str>, path: &str, out: &mut Out) -> Option<GoDuration> {
    let v = value?;
    let d = GoDuration::parse(v);
    if d.is_none() {
        push(
            out,
            path,
            ErrorKind::InvalidGoDuration {
                value: v.to_owned(),
            },
        );
    }
    d
}

fn durations(spec: &CertificateSpec, out: &mut Out) {
    let min_rb = CertificateSpec::MINIMUM_RENEW_BEFORE;
    let duration = match &spec.duration {
        None => Some(CertificateSpec::DEFAULT_DURATION),
        Some(d) => go_duration(Some(d), "spec.duration", out),
    };
    if let Some(d) = duration
        && d < CertificateSpec::MINIMUM_DURATION
    {
        push(
            out,
            "spec.duration",
            ErrorKind::DurationBelowMinimum {
                field: "duration".into(),
                value: d.to_string(),
                minimum: CertificateSpec::MINIMUM_DURATION.to_string(),
            },
        );
    }
    let renew_before = go_duration(spec.renew_before.as_deref(), "spec.renewBefore", out);
    if spec.renew_before.is_some() && spec.renew_before_percentage.is_some() {
        push(
            out,
            "spec.renewBeforePercentage",
            ErrorKind::OnlyOneOf {
                fields: vec!["renewBefore".into(), "renewBeforePercentage".into()],
            },
        );
    }
    if let Some(rb) = renew_before
        && rb < min_rb
    {
        push(
            out,
            "spec.renewBefore",
            ErrorKind::DurationBelowMinimum {
                field: "renewBefore".into(),
                value: rb.to_string(),
                minimum: min_rb.to_string(),
            },
        );
    }
    if let Some(pct) = spec.renew_before_percentage {
        let pct = i64::from(pct);
        if !(1..=99).contains(&pct) {
            push(
                out,
                "spec.renewBeforePercentage",
                ErrorKind::RenewBeforePercentageOutOfRange { value: pct },
            );
        } else if let Some(d) = duration {
            let effective = d.scale(pct, 100);
            if effective < min_rb {
                push(
                    out,
                    "spec.renewBeforePercentage",
                    ErrorKind::RenewBeforePercentageTooSmall {
                        value: pct,
                        duration: d.to_string(),
                        effective: effective.to_string(),
                        minimum: min_rb.to_string(),
                    },
                );
            }
        }
    }
}

fn name_constraint_item(item: &NameConstraintItem, path: &str, out: &mut Out) {
    for (i, r) in item.ip_ranges.iter().enumerate() {
        if !is_cidr(r) {
            push(
                out,
                format!("{path}.ipRanges[{i}]"),
                ErrorKind::InvalidIpBlock { value: r.clone() },
            );
        }
    }
}

fn keystores(k: &Keystores, out: &mut Out) {
    let jks = k
        .jks
        .as_ref()
        .map(|j| (&j.password_secret_ref, &j.password));
    let p12 = k
        .pkcs12
        .as_ref()
        .map(|p| (&p.password_secret_ref, &p.password));
    for (name, label, entry) in [("jks", "JKS", jks), ("pkcs12", "PKCS#12", p12)] {
        let Some((secret_ref, password)) = entry else {
            continue;
        };
        let path = format!("spec.keystores.{name}");
        let has_ref = secret_ref.as_ref().is_some_and(|r| !r.name.is_empty());
        let problem = match (has_ref, password) {
            (true, Some(_)) => Some((
                path.clone(),
                "set either `passwordSecretRef` or `password`, not both; remove one",
            )),
            (false, None) => Some((
                path.clone(),
                "a password is required: set `passwordSecretRef` (name and key of a Secret) or `password`",
            )),
            (false, Some(p)) if p.is_empty() => Some((
                format!("{path}.password"),
                "`password` must not be empty; set it or use `passwordSecretRef`",
            )),
            _ => None,
        };
        if let Some((p, problem)) = problem {
            push(
                out,
                p,
                ErrorKind::KeystorePassword {
                    keystore: label.into(),
                    problem: problem.into(),
                },
            );
        }
    }
}

fn renewal(spec: &CertificateSpec, out: &mut Out) {
    let Some(r) = &spec.renewal else {
        return;
    };
    if r.policy == Some(RenewalPolicy::Disabled) {
        if !r.windows.is_empty() {
            push(
                out,
                "spec.renewal.windows",
                ErrorKind::RenewalWindowsWhenDisabled,
            );
        }
        return;
    }
    for (i, w) in r.windows.iter().enumerate() {
        let p = format!("spec.renewal.windows[{i}]");
        match &w.window_duration {
            None => missing(out, &p, "windowDuration"),
            Some(d) => {
                let parsed = go_duration(Some(d), &format!("{p}.windowDuration"), out);
                if let Some(d) = parsed
                    && d <= GoDuration::default()
                {
                    push(
                        out,
                        format!("{p}.windowDuration"),
                        ErrorKind::DurationBelowMinimum {
                            field: "windowDuration".into(),
                            value: d.to_string(),
                            minimum: "1s".into(),
                        },
                    );
                }
            }
        }
        if let Err(reason) = check_cron(&w.cron) {
            push(
                out,
                format!("{p}.cron"),
                ErrorKind::InvalidCron {
                    value: w.cron.clone(),
                    reason,
                },
            );
        }
    }
}

/// Checks an `Issuer` or `ClusterIssuer` spec.
pub(crate) fn issuer(spec: &IssuerSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let found = spec.configured();
    if found.len() != 1 {
        let path = match found.get(1) {
            Some(second) => format!("spec.{}", second.field()),
            None => "spec".to_owned(),
        };
        push(
            &mut out,
            path,
            ErrorKind::IssuerTypeCount {
                found: found.iter().map(|t| t.field().to_owned()).collect(),
            },
        );
    }
    for (field, value) in [
        ("acme", &spec.acme),
        ("vault", &spec.vault),
        ("venafi", &spec.venafi),
    ] {
        if let Some(v) = value
            && !v.is_object()
        {
            push(
                &mut out,
                format!("spec.{field}"),
                ErrorKind::WrongType {
                    expected: "a mapping".into(),
                    found: describe_json(v),
                },
            );
        }
    }
    if let Some(ca) = &spec.ca {
        secret_name(&ca.secret_name, "spec.ca.secretName", &mut out);
        uri_list(
            &ca.crl_distribution_points,
            "spec.ca.crlDistributionPoints",
            &mut out,
        );
        uri_list(
            &ca.issuing_certificate_urls,
            "spec.ca.issuingCertificateURLs",
            &mut out,
        );
        uri_list(&ca.ocsp_servers, "spec.ca.ocspServers", &mut out);
    }
    if let Some(s) = &spec.self_signed {
        uri_list(
            &s.crl_distribution_points,
            "spec.selfSigned.crlDistributionPoints",
            &mut out,
        );
    }
    out
}

/// Checks a `ClusterIssuer`: an issuer spec, and no namespace.
pub(crate) fn cluster_issuer(o: &Object<IssuerSpec>) -> Vec<Violation> {
    let mut out = issuer(&o.spec);
    if o.metadata.namespace.is_some() {
        push(
            &mut out,
            "metadata.namespace",
            ErrorKind::ClusterScopedNamespace {
                kind: "ClusterIssuer".into(),
            },
        );
    }
    out
}

fn describe_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => format!("boolean `{b}`"),
        serde_json::Value::Number(n) => format!("number `{n}`"),
        serde_json::Value::String(s) => format!("string {s:?}"),
        serde_json::Value::Array(_) => "a list".into(),
        serde_json::Value::Object(_) => "a mapping".into(),
    }
}

fn uri_list(values: &[String], path: &str, out: &mut Out) {
    for (i, u) in values.iter().enumerate() {
        if let Err(reason) = check_uri(u) {
            push(
                out,
                format!("{path}[{i}]"),
                ErrorKind::InvalidUri {
                    value: u.clone(),
                    reason,
                },
            );
        }
    }
}
