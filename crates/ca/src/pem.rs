//! PEM encoding (RFC 7468) and certificate PEM decoding.
//!
//! Decoding uses `rustls-pki-types`; encoding is a few lines of base64 kept here so that the
//! crate needs no base64 dependency. Secret encodings are returned in [`Zeroizing`] buffers.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{PemObject, SectionKind};
use zeroize::Zeroizing;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `der` as one PEM block with the given label, 64 characters a line, `\n` endings.
pub fn encode(label: &str, der: &[u8]) -> String {
    let mut out = String::with_capacity(der.len() * 4 / 3 + der.len() / 48 + 2 * label.len() + 40);
    write_block(&mut out, label, der);
    out
}

/// Like [`encode`], for secret material: the result is wiped when dropped.
pub fn encode_secret(label: &str, der: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(
        der.len() * 4 / 3 + der.len() / 48 + 2 * label.len() + 40,
    ));
    write_block(&mut out, label, der);
    out
}

/// Encodes certificates as concatenated `CERTIFICATE` blocks.
pub fn encode_certs<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| encode("CERTIFICATE", c))
        .collect()
}

fn write_block(out: &mut String, label: &str, der: &[u8]) {
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut col = 0;
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = [
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            if chunk.len() > 1 {
                ALPHABET[(n >> 6) as usize & 63]
            } else {
                b'='
            },
            if chunk.len() > 2 {
                ALPHABET[n as usize & 63]
            } else {
                b'='
            },
        ];
        for c in chars {
            out.push(char::from(c));
            col += 1;
            if col == 64 {
                out.push('\n');
                col = 0;
            }
        }
    }
    if col != 0 {
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

/// Why PEM text did not yield certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertPemError {
    /// No `CERTIFICATE` block at all.
    NoCertificates,
    /// A block could not be decoded; `index` counts certificates from 0.
    Corrupt { index: usize, detail: String },
}

/// Decodes every `CERTIFICATE` block, in order, and checks each parses as X.509.
pub fn decode_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertPemError> {
    let mut certs = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let index = certs.len();
        match item {
            Ok((SectionKind::Certificate, der)) => {
                if let Err(e) = x509_parser::parse_x509_certificate(&der) {
                    return Err(CertPemError::Corrupt {
                        index,
                        detail: e.to_string(),
                    });
                }
                certs.push(CertificateDer::from(der));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(CertPemError::Corrupt {
                    index,
                    detail: e.to_string(),
                });
            }
        }
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
    fn encodes_rfc4648_vectors() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (input, b64) in cases {
            let pem = encode("X", input);
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            assert_eq!(body, b64, "input {input:?}");
        }
    }

    #[test]
    fn round_trips_through_the_pki_types_decoder_with_line_wrapping() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = encode("PRIVATE KEY", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.secret_pkcs8_der(), &der[..]);
        assert_eq!(*encode_secret("PRIVATE KEY", &der), pem);
    }

    #[test]
    fn decode_certs_reports_missing_and_corrupt_blocks() {
        assert_eq!(decode_certs(b"hello"), Err(CertPemError::NoCertificates));
        let bogus = encode("CERTIFICATE", b"not a certificate");
        assert!(matches!(
            decode_certs(bogus.as_bytes()),
            Err(CertPemError::Corrupt { index: 0, .. })
        ));
    }
}
