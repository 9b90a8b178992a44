//! x509pop node attestation: the agent shows a certificate chain to a CA the operator trusts
//! (`--x509pop-ca-bundle`) and proves possession of the leaf's private key by signing a fresh
//! server nonce.

use rustls_pki_types::{CertificateDer, UnixTime};
use sigil_datastore::Selector;

/// Domain separation for the signed challenge, so the signature is useless elsewhere.
pub const CHALLENGE_CONTEXT: &[u8] = b"sigil x509pop challenge v1\0";

/// Why an x509pop attestation failed.
#[derive(Debug, thiserror::Error)]
pub enum PopError {
    #[error("no certificate chain was sent")]
    NoChain,
    #[error("the agent certificate does not chain to --x509pop-ca-bundle: {0:?}")]
    Untrusted(webpki::Error),
    #[error("the agent certificate cannot be parsed: {0}")]
    Malformed(String),
    #[error("the challenge signature does not verify with the certificate's key")]
    BadSignature,
}

/// What a verified x509pop chain tells about the node.
#[derive(Debug, Clone)]
pub struct Proof {
    /// SHA-1 of the leaf DER, hex (SPIRE's agent ID path component).
    pub fingerprint: String,
    pub selectors: Vec<Selector>,
}

fn sha1_hex(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        der,
    ))
}

/// Verifies the chain (leaf first) against the trusted roots, for client authentication.
pub fn verify_chain(
    roots: &[CertificateDer<'static>],
    chain: &[Vec<u8>],
    now: i64,
) -> Result<Proof, PopError> {
    let leaf_der = chain.first().ok_or(PopError::NoChain)?;
    let anchors = roots
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PopError::Untrusted)?;
    let leaf = CertificateDer::from(leaf_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(PopError::Untrusted)?;
    let inter: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.max(0) as u64));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        time,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(PopError::Untrusted)?;

    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der)
        .map_err(|e| PopError::Malformed(e.to_string()))?;
    let mut selectors = Vec::new();
    for cn in cert.subject().iter_common_name() {
        if let Ok(v) = cn.as_str() {
            selectors.push(Selector {
                r#type: "x509pop".into(),
                value: format!("subject:cn:{v}"),
            });
        }
    }
    selectors.push(Selector {
        r#type: "x509pop".into(),
        value: format!(
            "serialnumber:{}",
            cert.raw_serial_as_string().replace(':', "")
        ),
    });
    for ca in &chain[1..] {
        selectors.push(Selector {
            r#type: "x509pop".into(),
            value: format!("ca:fingerprint:{}", sha1_hex(ca)),
        });
    }
    Ok(Proof {
        fingerprint: sha1_hex(leaf_der),
        selectors,
    })
}

/// A fresh 32-byte nonce.
pub fn new_nonce() -> [u8; 32] {
    rand::random()
}

/// The bytes the agent signs.
pub fn challenge_message(nonce: &[u8]) -> Vec<u8> {
    [CHALLENGE_CONTEXT, nonce].concat()
}

/// Checks the agent's signature over the challenge with the leaf's public key (ECDSA P-256
/// SHA-256, P-384 SHA-384, RSA PKCS#1 v1.5 SHA-256, or Ed25519).
pub fn verify_response(leaf_der: &[u8], nonce: &[u8], sig: &[u8]) -> Result<(), PopError> {
    let leaf = CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(PopError::Untrusted)?;
    let msg = challenge_message(nonce);
    let algs: [&dyn rustls_pki_types::SignatureVerificationAlgorithm; 4] = [
        webpki::aws_lc_rs::ECDSA_P256_SHA256,
        webpki::aws_lc_rs::ECDSA_P384_SHA384,
        webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
        webpki::aws_lc_rs::ED25519,
    ];
    if algs
        .iter()
        .any(|alg| ee.verify_signature(*alg, &msg, sig).is_ok())
    {
        Ok(())
    } else {
        Err(PopError::BadSignature)
    }
}
