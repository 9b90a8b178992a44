//! From a `Certificate` spec to what to issue: the key to generate, the X.509 contents, the
//! lifetime and renewal settings, or a refusal naming the field Sigil cannot honour and what to
//! do instead. Pure: no IO, no clock.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, OtherNameValue, SanType,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use sigil_ca::KeyType;
use sigil_policy::{
    CertificateSpec, KeyUsage, OutputFormatType, PrivateKeyAlgorithm, PrivateKeyEncoding,
    RenewalPolicy, RotationPolicy, SignatureAlgorithm,
};

/// Why a spec cannot be issued: a cert-manager-style condition reason and a message that
/// names the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

fn refuse(reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

/// How early to renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewBefore {
    /// A third of the actual lifetime (cert-manager's default).
    Default,
    /// `renewBefore`, whole seconds.
    Fixed(i64),
    /// `renewBeforePercentage` of the actual lifetime.
    Percent(i64),
}

/// Everything the controller needs to issue for one spec.
#[derive(Debug, Clone)]
pub struct IssuePlan {
    pub key_type: KeyType,
    pub encoding: PrivateKeyEncoding,
    pub rotation: RotationPolicy,
    pub duration: Duration,
    pub renew_before: RenewBefore,
    /// `renewal.policy: Disabled`.
    pub renewal_disabled: bool,
    /// Subject, SANs, usages, CA flag; serial and validity are set by the signer.
    pub params: CertificateParams,
    pub der_output: bool,
    pub combined_pem_output: bool,
    /// CertificateRequest records to keep (≥ 1).
    pub revision_history_limit: usize,
    /// Hash of the issuance-relevant spec; a change means "re-issue".
    pub spec_hash: String,
}

/// The key type a spec asks for, or why Sigil cannot generate it.
pub fn key_type(spec: &CertificateSpec) -> Result<KeyType, Refusal> {
    let pk = spec.private_key.clone().unwrap_or_default();
    let algorithm = pk.algorithm.unwrap_or(PrivateKeyAlgorithm::Rsa);
    let size = pk.size.unwrap_or(0);
    match (algorithm, size) {
        (PrivateKeyAlgorithm::Rsa, 0 | 2048) => Ok(KeyType::Rsa2048),
        (PrivateKeyAlgorithm::Rsa, 3072) => Ok(KeyType::Rsa3072),
        (PrivateKeyAlgorithm::Rsa, 4096) => Ok(KeyType::Rsa4096),
        (PrivateKeyAlgorithm::Rsa, n) => Err(refuse(
            "UnsupportedKeySize",
            format!(
                "spec.privateKey.size {n} for RSA is not supported by Sigil; use 2048, 3072 or \
                 4096 (or leave size out for 2048)"
            ),
        )),
        (PrivateKeyAlgorithm::Ecdsa, 0 | 256) => Ok(KeyType::EcP256),
        (PrivateKeyAlgorithm::Ecdsa, 384) => Ok(KeyType::EcP384),
        (PrivateKeyAlgorithm::Ecdsa, n) => Err(refuse(
            "UnsupportedKeySize",
            format!(
                "spec.privateKey.size {n} for ECDSA is not supported by Sigil; use 256 or 384 \
                 (or leave size out for 256)"
            ),
        )),
        (PrivateKeyAlgorithm::Ed25519, _) => Ok(KeyType::Ed25519),
    }
}

/// The signature algorithm an issuer key type produces, by cert-manager's name.
fn produced_signature(issuer_key: KeyType) -> SignatureAlgorithm {
    match issuer_key {
        KeyType::EcP256 => SignatureAlgorithm::EcdsaWithSha256,
        KeyType::EcP384 => SignatureAlgorithm::EcdsaWithSha384,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => SignatureAlgorithm::Sha256WithRsa,
        KeyType::Ed25519 => SignatureAlgorithm::PureEd25519,
    }
}

/// Checks `signatureAlgorithm` against what the signing key (the issuer's, or the
/// certificate's own for `selfSigned`) produces.
pub fn check_signature_algorithm(
    spec: &CertificateSpec,
    signing_key: KeyType,
) -> Result<(), Refusal> {
    match spec.signature_algorithm {
        Some(want) if want != produced_signature(signing_key) => Err(refuse(
            "UnsupportedSignatureAlgorithm",
            format!(
                "spec.signatureAlgorithm {} cannot be honoured: the signing key is {} and signs \
                 with {}; remove signatureAlgorithm or set it to {}",
                want.as_str(),
                signing_key.name(),
                produced_signature(signing_key).as_str(),
                produced_signature(signing_key).as_str()
            ),
        )),
        _ => Ok(()),
    }
}

/// Builds the issuance plan, or refuses with the field Sigil does not support.
pub fn plan(spec: &CertificateSpec) -> Result<IssuePlan, Refusal> {
    let invalid = |m: String| refuse("InvalidSpec", m);
    if !spec.literal_subject.is_empty() {
        return Err(refuse(
            "UnsupportedField",
            "spec.literalSubject is not supported by Sigil; write the subject with \
             spec.subject and spec.commonName instead",
        ));
    }
    if spec.name_constraints.is_some() {
        return Err(refuse(
            "UnsupportedField",
            "spec.nameConstraints is not supported by Sigil; remove it",
        ));
    }
    if let Some(k) = &spec.keystores
        && (k.jks.as_ref().is_some_and(|j| j.create) || k.pkcs12.as_ref().is_some_and(|p| p.create))
    {
        return Err(refuse(
            "UnsupportedField",
            "spec.keystores (JKS, PKCS#12) are not supported by Sigil; use tls.crt/tls.key, or \
             additionalOutputFormats DER or CombinedPEM",
        ));
    }
    let renewal = spec.renewal.clone().unwrap_or_default();
    if !renewal.windows.is_empty() {
        return Err(refuse(
            "UnsupportedField",
            "spec.renewal.windows are not supported by Sigil; remove them (renewal then \
             follows renewBefore)",
        ));
    }
    let key_type = key_type(spec)?;
    let pk = spec.private_key.clone().unwrap_or_default();
    let duration = spec.duration().ok_or_else(|| {
        invalid(format!(
            "spec.duration {:?} is not a Go duration such as 24h",
            spec.duration
        ))
    })?;
    if duration < CertificateSpec::MINIMUM_DURATION {
        return Err(invalid(format!(
            "spec.duration {duration} is shorter than the minimum {}; raise it",
            CertificateSpec::MINIMUM_DURATION
        )));
    }
    let renew_before = match (&spec.renew_before, spec.renew_before_percentage) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "spec.renewBefore and spec.renewBeforePercentage are exclusive; keep one".into(),
            ));
        }
        (Some(text), None) => {
            let rb = spec.renew_before().ok_or_else(|| {
                invalid(format!(
                    "spec.renewBefore {text:?} is not a Go duration such as 8h"
                ))
            })?;
            if rb >= duration {
                return Err(invalid(format!(
                    "spec.renewBefore {rb} is not shorter than spec.duration {duration}; the \
                     certificate would be renewed as soon as it is issued. Lower renewBefore \
                     (e.g. to a third of duration) or raise duration"
                )));
            }
            if rb < CertificateSpec::MINIMUM_RENEW_BEFORE {
                return Err(invalid(format!(
                    "spec.renewBefore {rb} is below the minimum {}; raise it",
                    CertificateSpec::MINIMUM_RENEW_BEFORE
                )));
            }
            RenewBefore::Fixed(rb.as_nanos() / 1_000_000_000)
        }
        (None, Some(p)) if (1..=99).contains(&p) => RenewBefore::Percent(i64::from(p)),
        (None, Some(p)) => {
            return Err(invalid(format!(
                "spec.renewBeforePercentage {p} is outside 1..99; pick a percentage of the \
                 lifetime"
            )));
        }
        (None, None) => RenewBefore::Default,
    };
    let params = params(spec)?;
    let revision_history_limit = match spec.revision_history_limit {
        None => 1,
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(1),
        Some(n) => {
            return Err(invalid(format!(
                "spec.revisionHistoryLimit {n} must be at least 1"
            )));
        }
    };
    let formats = &spec.additional_output_formats;
    Ok(IssuePlan {
        key_type,
        // cert-manager's default is PKCS1; Ed25519 keys are always PKCS8.
        encoding: pk.encoding.unwrap_or(PrivateKeyEncoding::Pkcs1),
        rotation: pk.rotation_policy.unwrap_or(RotationPolicy::Always),
        duration: duration.to_std().unwrap_or(Duration::from_secs(3600)),
        renew_before,
        renewal_disabled: renewal.policy == Some(RenewalPolicy::Disabled),
        params,
        der_output: formats.iter().any(|f| f.format == OutputFormatType::Der),
        combined_pem_output: formats
            .iter()
            .any(|f| f.format == OutputFormatType::CombinedPem),
        revision_history_limit,
        spec_hash: spec_hash(spec),
    })
}

/// Hash of what the issued certificate depends on: names, lifetime, usages, key settings,
/// issuer. `secretTemplate`, output formats, renewal timing and history limits are applied
/// without re-issuing, as cert-manager does.
pub fn spec_hash(spec: &CertificateSpec) -> String {
    let pk = spec.private_key.clone().unwrap_or_default();
    let v = json!({
        "subject": spec.subject,
        "literalSubject": spec.literal_subject,
        "commonName": spec.common_name,
        "duration": spec.duration().map(|d| d.as_nanos()),
        "dnsNames": spec.dns_names,
        "ipAddresses": spec.ip_addresses,
        "uris": spec.uris,
        "otherNames": spec.other_names,
        "emailAddresses": spec.email_addresses,
        "issuer": [spec.issuer_ref.name.as_str(), spec.issuer_ref.effective_kind(), spec.issuer_ref.effective_group()],
        "isCA": spec.is_ca,
        "usages": spec.usages,
        "algorithm": pk.algorithm,
        "size": pk.size.filter(|s| *s != 0),
        "encoding": pk.encoding,
        "signatureAlgorithm": spec.signature_algorithm,
        "secretName": spec.secret_name,
    });
    hex::encode(&Sha256::digest(v.to_string().as_bytes())[..16])
}

fn ia5(field: &str, v: &str) -> Result<rcgen::string::Ia5String, Refusal> {
    rcgen::string::Ia5String::try_from(v.to_owned()).map_err(|_| {
        refuse(
            "InvalidSpec",
            format!("{field} {v:?} is not ASCII; use an IDNA (punycode) or percent-encoded form"),
        )
    })
}

fn parse_oid(text: &str) -> Option<Vec<u64>> {
    let arcs: Option<Vec<u64>> = text.split('.').map(|a| a.parse().ok()).collect();
    arcs.filter(|a| a.len() >= 2)
}

/// Subject, SANs, key usages and the CA flag.
fn params(spec: &CertificateSpec) -> Result<CertificateParams, Refusal> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(s) = &spec.subject {
        let custom = |oid: &[u64]| DnType::CustomDnType(oid.to_vec());
        let groups: [(&Vec<String>, DnType); 7] = [
            (&s.countries, DnType::CountryName),
            (&s.provinces, DnType::StateOrProvinceName),
            (&s.localities, DnType::LocalityName),
            (&s.street_addresses, custom(&[2, 5, 4, 9])),
            (&s.postal_codes, custom(&[2, 5, 4, 17])),
            (&s.organizations, DnType::OrganizationName),
            (&s.organizational_units, DnType::OrganizationalUnitName),
        ];
        for (values, ty) in groups {
            // rcgen keeps one value per attribute type; further values would be lost silently.
            if values.len() > 1 {
                return Err(refuse(
                    "UnsupportedField",
                    format!(
                        "spec.subject lists {} values for one attribute ({values:?}); Sigil \
                         writes one value per attribute, keep one",
                        values.len()
                    ),
                ));
            }
            if let Some(v) = values.first() {
                dn.push(ty, v.as_str());
            }
        }
        if !s.serial_number.is_empty() {
            dn.push(custom(&[2, 5, 4, 5]), s.serial_number.as_str());
        }
    }
    if !spec.common_name.is_empty() {
        dn.push(DnType::CommonName, spec.common_name.as_str());
    }
    p.distinguished_name = dn;
    let mut sans = Vec::new();
    for d in &spec.dns_names {
        sans.push(SanType::DnsName(ia5("spec.dnsNames", d)?));
    }
    for ip in &spec.ip_addresses {
        let addr: IpAddr = ip.parse().map_err(|_| {
            refuse(
                "InvalidSpec",
                format!("spec.ipAddresses {ip:?} is not an IP address"),
            )
        })?;
        sans.push(SanType::IpAddress(addr));
    }
    for u in &spec.uris {
        sans.push(SanType::URI(ia5("spec.uris", u)?));
    }
    for e in &spec.email_addresses {
        sans.push(SanType::Rfc822Name(ia5("spec.emailAddresses", e)?));
    }
    for o in &spec.other_names {
        let oid = parse_oid(&o.oid).ok_or_else(|| {
            refuse(
                "InvalidSpec",
                format!("spec.otherNames oid {:?} is not a dotted OID", o.oid),
            )
        })?;
        sans.push(SanType::OtherName((
            oid,
            OtherNameValue::Utf8String(o.utf8_value.clone()),
        )));
    }
    p.subject_alt_names = sans;
    let mut usages = spec.usages.clone();
    if usages.is_empty() {
        usages = vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
    }
    if spec.is_ca {
        usages.push(KeyUsage::CertSign);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    } else {
        p.is_ca = IsCa::ExplicitNoCa;
    }
    for u in usages {
        match usage(u) {
            Usage::Key(k) if !p.key_usages.contains(&k) => p.key_usages.push(k),
            Usage::Extended(e) if !p.extended_key_usages.contains(&e) => {
                p.extended_key_usages.push(e)
            }
            _ => {}
        }
    }
    Ok(p)
}

enum Usage {
    Key(KeyUsagePurpose),
    Extended(ExtendedKeyUsagePurpose),
}

/// cert-manager's usage vocabulary in X.509 terms.
fn usage(u: KeyUsage) -> Usage {
    use ExtendedKeyUsagePurpose as E;
    use KeyUsagePurpose as K;
    let other = |oid: &[u64]| Usage::Extended(E::Other(oid.to_vec()));
    match u {
        KeyUsage::Signing | KeyUsage::DigitalSignature => Usage::Key(K::DigitalSignature),
        KeyUsage::ContentCommitment => Usage::Key(K::ContentCommitment),
        KeyUsage::KeyEncipherment => Usage::Key(K::KeyEncipherment),
        KeyUsage::KeyAgreement => Usage::Key(K::KeyAgreement),
        KeyUsage::DataEncipherment => Usage::Key(K::DataEncipherment),
        KeyUsage::CertSign => Usage::Key(K::KeyCertSign),
        KeyUsage::CrlSign => Usage::Key(K::CrlSign),
        KeyUsage::EncipherOnly => Usage::Key(K::EncipherOnly),
        KeyUsage::DecipherOnly => Usage::Key(K::DecipherOnly),
        KeyUsage::Any => Usage::Extended(E::Any),
        KeyUsage::ServerAuth => Usage::Extended(E::ServerAuth),
        KeyUsage::ClientAuth => Usage::Extended(E::ClientAuth),
        KeyUsage::CodeSigning => Usage::Extended(E::CodeSigning),
        KeyUsage::EmailProtection | KeyUsage::Smime => Usage::Extended(E::EmailProtection),
        KeyUsage::IpsecEndSystem => other(&[1, 3, 6, 1, 5, 5, 7, 3, 5]),
        KeyUsage::IpsecTunnel => other(&[1, 3, 6, 1, 5, 5, 7, 3, 6]),
        KeyUsage::IpsecUser => other(&[1, 3, 6, 1, 5, 5, 7, 3, 7]),
        KeyUsage::Timestamping => Usage::Extended(E::TimeStamping),
        KeyUsage::OcspSigning => Usage::Extended(E::OcspSigning),
        KeyUsage::MicrosoftSgc => other(&[1, 3, 6, 1, 4, 1, 311, 10, 3, 3]),
        KeyUsage::NetscapeSgc => other(&[2, 16, 840, 1, 113_730, 4, 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_policy::{PrivateKey, X509Subject};

    fn seed() -> CertificateSpec {
        CertificateSpec {
            secret_name: "billing-service-tls".into(),
            duration: Some("24h".into()),
            renew_before: Some("8h".into()),
            subject: Some(X509Subject {
                organizations: vec!["corp.example.com".into()],
                ..Default::default()
            }),
            dns_names: vec![
                "billing-service.payments.svc.cluster.local".into(),
                "billing-service.payments.svc".into(),
            ],
            uris: vec!["spiffe://cluster.local/ns/payments/sa/billing-service".into()],
            issuer_ref: sigil_policy::IssuerRef {
                name: "internal-ca".into(),
                kind: "ClusterIssuer".into(),
                group: String::new(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_seed_certificate_plans_as_cert_manager_would() {
        let p = plan(&seed()).unwrap();
        assert_eq!(p.key_type, KeyType::Rsa2048);
        assert_eq!(p.encoding, PrivateKeyEncoding::Pkcs1);
        assert_eq!(p.rotation, RotationPolicy::Always);
        assert_eq!(p.duration, Duration::from_secs(24 * 3600));
        assert_eq!(p.renew_before, RenewBefore::Fixed(8 * 3600));
        assert_eq!(p.revision_history_limit, 1);
        assert_eq!(p.params.subject_alt_names.len(), 3);
        assert_eq!(
            p.params.key_usages,
            [
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment
            ]
        );
        assert!(matches!(p.params.is_ca, IsCa::ExplicitNoCa));
    }

    #[test]
    fn unsupported_inputs_are_refused_with_the_field_and_the_fix() {
        let with_key = |alg, size| CertificateSpec {
            private_key: Some(PrivateKey {
                algorithm: Some(alg),
                size: Some(size),
                ..Default::default()
            }),
            ..seed()
        };
        let e = plan(&with_key(PrivateKeyAlgorithm::Rsa, 8192)).unwrap_err();
        assert_eq!(e.reason, "UnsupportedKeySize");
        assert!(e.message.contains("spec.privateKey.size 8192") && e.message.contains("4096"));
        let e = plan(&with_key(PrivateKeyAlgorithm::Ecdsa, 521)).unwrap_err();
        assert_eq!(e.reason, "UnsupportedKeySize");
        assert_eq!(
            plan(&with_key(PrivateKeyAlgorithm::Ecdsa, 384))
                .unwrap()
                .key_type,
            KeyType::EcP384
        );
        let e = plan(&CertificateSpec {
            renew_before: Some("24h".into()),
            ..seed()
        })
        .unwrap_err();
        assert_eq!(e.reason, "InvalidSpec");
        assert!(
            e.message
                .contains("renewBefore 24h0m0s is not shorter than spec.duration")
        );
        let e = plan(&CertificateSpec {
            literal_subject: "CN=x".into(),
            ..seed()
        })
        .unwrap_err();
        assert_eq!(e.reason, "UnsupportedField");
        let e = plan(&CertificateSpec {
            ip_addresses: vec!["10.0.0.300".into()],
            ..seed()
        })
        .unwrap_err();
        assert!(e.message.contains("10.0.0.300"));
    }

    #[test]
    fn ca_certificates_and_usages() {
        let p = plan(&CertificateSpec {
            is_ca: true,
            usages: vec![
                KeyUsage::ServerAuth,
                KeyUsage::Signing,
                KeyUsage::DigitalSignature,
            ],
            ..seed()
        })
        .unwrap();
        assert!(matches!(p.params.is_ca, IsCa::Ca(_)));
        assert_eq!(
            p.params.key_usages,
            [
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign
            ]
        );
        assert_eq!(
            p.params.extended_key_usages,
            [ExtendedKeyUsagePurpose::ServerAuth]
        );
    }

    #[test]
    fn spec_hash_ignores_what_does_not_need_reissuing() {
        let base = spec_hash(&seed());
        let same = CertificateSpec {
            renew_before: Some("7h".into()),
            revision_history_limit: Some(3),
            ..seed()
        };
        assert_eq!(spec_hash(&same), base);
        let mut names = seed();
        names.dns_names.pop();
        assert_ne!(spec_hash(&names), base);
    }

    #[test]
    fn signature_algorithm_must_match_the_signing_key() {
        let spec = CertificateSpec {
            signature_algorithm: Some(SignatureAlgorithm::Sha384WithRsa),
            ..seed()
        };
        let e = check_signature_algorithm(&spec, KeyType::Rsa2048).unwrap_err();
        assert!(e.message.contains("SHA256WithRSA"));
        assert!(check_signature_algorithm(&seed(), KeyType::EcP256).is_ok());
    }
}
