//! Carrying out one issuance: generate (or reuse) the key, sign with the issuer, and build the
//! Secret cert-manager would write. CPU-bound and synchronous; the controller runs it on a
//! blocking thread.

use std::collections::BTreeMap;

use rustls_pki_types::CertificateDer;
use sigil_ca::PrivateKey;
use sigil_policy::{CertificateSpec, PrivateKeyEncoding, RotationPolicy};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::decide::{
    ANN_ALT_NAMES, ANN_CERT_NAME, ANN_COMMON_NAME, ANN_IP_SANS, ANN_ISSUER_GROUP, ANN_ISSUER_KIND,
    ANN_ISSUER_NAME, ANN_URI_SANS,
};
use super::facts::{TlsMaterial, material};
use super::issuers::Signing;
use super::plan::IssuePlan;
use crate::secrets::SecretData;
use crate::state::{Shared, now_unix};
use sigil_datastore::ConfigKey;
use tracing::warn;

/// A signed certificate and its key, ready for the Secret.
pub struct Issued {
    pub material: TlsMaterial,
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    /// PEM of the leaf, for the CertificateRequest record.
    pub leaf_pem: String,
}

/// The key to certify: the Secret's own under `rotationPolicy: Never` when it has the right
/// type, else a fresh one.
fn key_for(plan: &IssuePlan, existing: Option<&[u8]>) -> Result<PrivateKey, String> {
    if plan.rotation == RotationPolicy::Never
        && let Some(k) = existing.and_then(|pem| PrivateKey::from_pem(pem).ok())
        && k.key_type() == plan.key_type
    {
        return Ok(k);
    }
    PrivateKey::generate(plan.key_type).map_err(|e| format!("cannot generate the private key: {e}"))
}

fn encode_key(
    plan: &IssuePlan,
    key: &PrivateKey,
) -> Result<(Zeroizing<String>, Zeroizing<Vec<u8>>), String> {
    let err = |e: sigil_ca::CaError| format!("cannot encode the private key: {e}");
    let pem = match plan.encoding {
        PrivateKeyEncoding::Pkcs1 => key.to_pkcs1_pem().map_err(err)?,
        PrivateKeyEncoding::Pkcs8 => key.to_pkcs8_pem().map_err(err)?,
    };
    // key.der: the same encoding as tls.key, without the PEM armour.
    let der = match (plan.encoding, key.key_type()) {
        (PrivateKeyEncoding::Pkcs8, _) | (_, sigil_ca::KeyType::Ed25519) => {
            key.to_pkcs8_der().map_err(err)?
        }
        _ => pem_body(&pem),
    };
    Ok((pem, der))
}

/// The base64 body of a single-block PEM text, decoded.
fn pem_body(pem: &str) -> Zeroizing<Vec<u8>> {
    use base64::Engine as _;
    let b64: Zeroizing<String> = Zeroizing::new(
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
    );
    Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .unwrap_or_default(),
    )
}

/// Signs for `plan` with `signing`. Errors are messages for the Issuing condition.
pub fn issue(
    plan: &IssuePlan,
    signing: &Signing,
    existing_key: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<Issued, String> {
    let key = key_for(plan, existing_key)?;
    let (cert, root): (sigil_ca::IssuedCert, Option<CertificateDer<'static>>) = match signing {
        Signing::SelfSigned => {
            let c = sigil_ca::sign_self(plan.params.clone(), &key, plan.duration, now)
                .map_err(|e| format!("self-signing failed: {e}"))?;
            // A self-signed certificate is its own CA (cert-manager writes it to ca.crt too).
            let root = Some(c.cert_der.clone());
            (c, root)
        }
        Signing::Authority {
            authority,
            root,
            crl_url,
            ..
        } => {
            let mut params = plan.params.clone();
            if let Some(url) = crl_url {
                sigil_ca::template::set_crl_distribution_point(&mut params, url)
                    .map_err(|e| format!("the CRL distribution point is invalid: {e}"))?;
            }
            let c = authority
                .sign_leaf(params, &key.public_key_spki_der(), plan.duration, now)
                .map_err(|e| format!("the issuer refused to sign: {e}"))?;
            (c, root.clone())
        }
    };
    let (key_pem, key_der) = encode_key(plan, &key)?;
    // For a self-signed certificate tls.crt is the certificate itself.
    let material = material(
        &cert.chain,
        root.as_ref(),
        key_pem,
        plan.der_output.then_some(key_der),
        plan.combined_pem_output,
    );
    Ok(Issued {
        leaf_pem: super::facts::cert_pem(&cert.cert_der),
        material,
        serial_hex: cert.serial_hex,
        not_before: cert.not_before.unix_timestamp(),
        not_after: cert.not_after.unix_timestamp(),
    })
}

/// Where the Secret's metadata comes from.
pub struct SecretMeta<'a> {
    pub cert_name: &'a str,
    pub issuer_name: &'a str,
    pub issuer_kind: &'a str,
    pub issuer_group: &'a str,
    pub spec: &'a CertificateSpec,
}

/// The labels and annotations cert-manager puts on the Secret: the `secretTemplate`'s, then its
/// own `cert-manager.io/*` annotations (which win).
pub fn secret_metadata(m: &SecretMeta<'_>) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let template = m.spec.secret_template.clone().unwrap_or_default();
    let mut labels = template.labels;
    labels.insert("controller.cert-manager.io/fao".into(), "true".into());
    let mut ann = template.annotations;
    let mut put = |k: &str, v: String| {
        ann.insert(k.to_owned(), v);
    };
    put(ANN_CERT_NAME, m.cert_name.to_owned());
    put(ANN_ISSUER_NAME, m.issuer_name.to_owned());
    put(ANN_ISSUER_KIND, m.issuer_kind.to_owned());
    put(ANN_ISSUER_GROUP, m.issuer_group.to_owned());
    put(ANN_COMMON_NAME, m.spec.common_name.clone());
    put(ANN_ALT_NAMES, m.spec.dns_names.join(","));
    put(ANN_IP_SANS, m.spec.ip_addresses.join(","));
    put(ANN_URI_SANS, m.spec.uris.join(","));
    (labels, ann)
}

/// The Secret for an issued certificate.
pub fn secret(issued: &Issued, meta: &SecretMeta<'_>) -> SecretData {
    let (labels, annotations) = secret_metadata(meta);
    let m = &issued.material;
    let mut data = BTreeMap::new();
    data.insert(
        "tls.crt".to_owned(),
        Zeroizing::new(m.tls_crt.as_bytes().to_vec()),
    );
    data.insert(
        "tls.key".to_owned(),
        Zeroizing::new(m.tls_key.as_bytes().to_vec()),
    );
    if let Some(ca) = &m.ca_crt {
        data.insert("ca.crt".to_owned(), Zeroizing::new(ca.as_bytes().to_vec()));
    }
    if let Some(der) = &m.key_der {
        data.insert("key.der".to_owned(), der.clone());
    }
    if let Some(c) = &m.combined_pem {
        data.insert(
            "tls-combined.pem".to_owned(),
            Zeroizing::new(c.as_bytes().to_vec()),
        );
    }
    SecretData {
        type_: "kubernetes.io/tls".to_owned(),
        data,
        labels,
        annotations,
    }
}

/// `key.der` for an existing `tls.key` (when `additionalOutputFormats` gains DER later).
pub fn key_der_of(tls_key: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(tls_key).ok()?;
    let der = pem_body(text);
    (!der.is_empty()).then_some(der)
}

/// Logs a certificate the trust domain's CA signed in the issued-certificates log, so that
/// `sigil x509 revoke --serial` finds it and the CRL lists it once revoked. It is recorded
/// under its SPIFFE URI, or, without one, under `spiffe://TD/cert-manager/NS/NAME`.
pub async fn record_issued(s: &Shared, key: &ConfigKey, issued: &Issued) {
    let td = &s.cfg.trust_domain;
    let uri_id = sigil_spiffe::pem::decode_certificates(&issued.leaf_pem)
        .ok()
        .and_then(|c| c.into_iter().next())
        .and_then(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
            let san = cert.subject_alternative_name().ok().flatten()?;
            san.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => sigil_spiffe::SpiffeId::parse(u)
                    .ok()
                    .filter(|id| id.trust_domain() == td),
                _ => None,
            })
        });
    let id = match uri_id {
        Some(id) => id,
        None => match sigil_spiffe::SpiffeId::parse(&format!(
            "spiffe://{td}/cert-manager/{}/{}",
            key.namespace, key.name
        )) {
            Ok(id) => id,
            Err(e) => {
                warn!(certificate = %key, error = %e, "cannot name the certificate in the issued log");
                return;
            }
        },
    };
    let rec = sigil_datastore::IssuedCert {
        serial_hex: issued.serial_hex.clone(),
        spiffe_id: id,
        kind: sigil_datastore::IssuedKind::Certificate,
        issued_by: s.server_id.clone(),
        agent_id: None,
        entry_id: None,
        not_after: issued.not_after,
        issued_at: now_unix(),
    };
    if let Err(e) = s.ds.record_issued(rec).await {
        warn!(certificate = %key, serial = %issued.serial_hex, error = %e, "could not record the issued certificate; it cannot be revoked by serial");
    }
}
