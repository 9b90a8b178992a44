//! What the CA adds to `sigil_spiffe::pem`: the lenient reading of operator certificate files
//! (blocks of other types are skipped, every certificate must parse as X.509).
//!
//! Private keys need nothing extra: `sigil_spiffe::pem::encode_block` writes its output once,
//! into the returned string, so [`crate::PrivateKey::to_pkcs8_pem`] wraps that in `Zeroizing`.
//! Key files are decoded with rustls-pki-types, whose base64 decoder is constant-time for
//! private-key sections.

use rustls_pki_types::CertificateDer;
use sigil_spiffe::pem::{self as spiffe_pem, PemError};

/// Why PEM text did not yield certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CertPemError {
    /// No `CERTIFICATE` block at all.
    #[error("no \"-----BEGIN CERTIFICATE-----\" block")]
    NoCertificates,
    /// The text is not well-formed PEM.
    #[error("{0}")]
    Pem(PemError),
    /// A block is not an X.509 certificate; `index` counts certificates from 0.
    #[error("certificate #{index} is corrupt: {detail}")]
    Corrupt { index: usize, detail: String },
}

/// Decodes every `CERTIFICATE` block, in order, skipping blocks of other types (a combined
/// key-and-certificate file is common), and checks each parses as X.509.
pub(crate) fn decode_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertPemError> {
    let blocks = match spiffe_pem::decode_blocks(&String::from_utf8_lossy(pem)) {
        Ok(blocks) => blocks,
        Err(PemError::NotPem) => return Err(CertPemError::NoCertificates),
        Err(e) => return Err(CertPemError::Pem(e)),
    };
    let mut certs = Vec::new();
    for block in blocks.into_iter().filter(|b| b.label == "CERTIFICATE") {
        if let Err(e) = x509_parser::parse_x509_certificate(&block.der) {
            return Err(CertPemError::Corrupt {
                index: certs.len(),
                detail: e.to_string(),
            });
        }
        certs.push(CertificateDer::from(block.der));
    }
    if certs.is_empty() {
        return Err(CertPemError::NoCertificates);
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_certs_reports_missing_malformed_and_corrupt_blocks() {
        assert_eq!(decode_certs(b"hello"), Err(CertPemError::NoCertificates));
        assert_eq!(decode_certs(b""), Err(CertPemError::NoCertificates));
        let key_only = spiffe_pem::encode_block("PRIVATE KEY", b"k");
        assert_eq!(
            decode_certs(key_only.as_bytes()),
            Err(CertPemError::NoCertificates)
        );
        let unterminated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(matches!(
            decode_certs(unterminated.as_bytes()),
            Err(CertPemError::Pem(PemError::Unterminated { line: 1, .. }))
        ));

        let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()])
            .unwrap()
            .cert;
        let bogus = format!(
            "{}{}",
            cert.pem(),
            spiffe_pem::encode_block("CERTIFICATE", b"not a certificate")
        );
        assert!(matches!(
            decode_certs(bogus.as_bytes()),
            Err(CertPemError::Corrupt { index: 1, .. })
        ));
    }

    #[test]
    fn decode_certs_skips_other_blocks() {
        let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()])
            .unwrap()
            .cert;
        let combined = format!(
            "{}{}",
            spiffe_pem::encode_block("PRIVATE KEY", b"k"),
            cert.pem()
        );
        assert_eq!(
            decode_certs(combined.as_bytes()),
            Ok(vec![cert.der().clone()])
        );
    }
}
