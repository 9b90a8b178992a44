//! A small PEM codec (RFC 7468, strict base64 body): blocks of any label, and helpers for
//! `CERTIFICATE` blocks.
//!
//! The encoder writes base64 straight into the buffer of the string it returns, with no
//! intermediate copy, so that `sigil-ca` can hold private-key PEM in a zeroizing wrapper.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateDer;

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Why PEM text could not be decoded. Line numbers start at 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("input has text but no PEM block (expected \"-----BEGIN CERTIFICATE-----\")")]
    NotPem,
    #[error("line {line}: PEM block of type {label:?} where a CERTIFICATE was expected")]
    UnexpectedLabel { line: usize, label: String },
    #[error(
        "line {line}: malformed PEM boundary {text:?}; boundaries are \"-----BEGIN <LABEL>-----\" \
         and \"-----END <LABEL>-----\" on lines of their own"
    )]
    BadBoundary { line: usize, text: String },
    #[error("line {line}: PEM block {label:?} is never closed (no \"-----END {label}-----\")")]
    Unterminated { line: usize, label: String },
    #[error("line {line}: END label {found:?} does not match BEGIN label {expected:?}")]
    MismatchedEnd {
        line: usize,
        expected: String,
        found: String,
    },
    #[error("line {line}: PEM headers (\"{header}\") are not supported in certificate blocks")]
    Headers { line: usize, header: String },
    #[error("line {line}: PEM body is not valid base64: {reason}")]
    Base64 { line: usize, reason: String },
    #[error("line {line}: PEM block is empty")]
    EmptyBlock { line: usize },
}

/// One PEM block: its label and decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
    /// Line of the BEGIN boundary (1-based).
    pub line: usize,
}

fn boundary_label<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix(DASHES)
}

/// Decodes every PEM block in `text`. Text outside blocks is ignored (RFC 7468 §2).
pub fn decode_blocks(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    while let Some((line_no, line)) = lines.next() {
        if !line.starts_with(BEGIN) {
            if line.starts_with(END) {
                return Err(PemError::BadBoundary {
                    line: line_no,
                    text: line.to_owned(),
                });
            }
            continue;
        }
        let label = boundary_label(line, BEGIN).ok_or_else(|| PemError::BadBoundary {
            line: line_no,
            text: line.to_owned(),
        })?;
        let mut body = String::new();
        let mut closed = false;
        for (n, l) in lines.by_ref() {
            if l.starts_with(END) {
                let found = boundary_label(l, END).ok_or_else(|| PemError::BadBoundary {
                    line: n,
                    text: l.to_owned(),
                })?;
                if found != label {
                    return Err(PemError::MismatchedEnd {
                        line: n,
                        expected: label.to_owned(),
                        found: found.to_owned(),
                    });
                }
                closed = true;
                break;
            }
            if l.contains(':') {
                return Err(PemError::Headers {
                    line: n,
                    header: l.to_owned(),
                });
            }
            body.push_str(l);
        }
        if !closed {
            return Err(PemError::Unterminated {
                line: line_no,
                label: label.to_owned(),
            });
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| PemError::Base64 {
                line: line_no,
                reason: e.to_string(),
            })?;
        if der.is_empty() {
            return Err(PemError::EmptyBlock { line: line_no });
        }
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
            line: line_no,
        });
    }
    if blocks.is_empty() && !text.trim().is_empty() {
        return Err(PemError::NotPem);
    }
    Ok(blocks)
}

/// Decodes the `CERTIFICATE` blocks of `text`; any other block type is an error.
/// Empty (or whitespace-only) input gives an empty list.
pub fn decode_certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    decode_blocks(text)?
        .into_iter()
        .map(|b| {
            if b.label == "CERTIFICATE" {
                Ok(CertificateDer::from(b.der))
            } else {
                Err(PemError::UnexpectedLabel {
                    line: b.line,
                    label: b.label,
                })
            }
        })
        .collect()
}

/// The exact length of the PEM block [`encode_block`] writes for `der_len` bytes.
fn encoded_len(label: &str, der_len: usize) -> usize {
    let b64 = der_len.div_ceil(3) * 4;
    let body_lines = b64.div_ceil(64);
    BEGIN.len() + END.len() + 2 * (label.len() + DASHES.len() + 1) + b64 + body_lines
}

/// Appends one block to `out`: reserves [`encoded_len`] first, then encodes each 48-byte run
/// of `der` directly into `out`, so `out` moves at most once, before anything is written.
fn encode_block_into(out: &mut Vec<u8>, label: &str, der: &[u8]) {
    out.reserve_exact(encoded_len(label, der.len()));
    for part in [BEGIN, label, DASHES, "\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    // 48 input bytes are exactly one 64-character line.
    for chunk in der.chunks(48) {
        let start = out.len();
        out.resize(start + chunk.len().div_ceil(3) * 4, 0);
        // The slice has exactly the encoded length, so this cannot fail; if it ever did, the
        // unwritten tail is dropped rather than left as zero bytes.
        let written = STANDARD.encode_slice(chunk, &mut out[start..]).unwrap_or(0);
        out.truncate(start + written);
        out.push(b'\n');
    }
    for part in [END, label, DASHES, "\n"] {
        out.extend_from_slice(part.as_bytes());
    }
}

/// Encodes one block with 64-character lines.
///
/// The encoding is written once, straight into the exactly-sized buffer of the returned
/// string: no other buffer ever holds it, so wrapping the result in a zeroizing type (as
/// `sigil-ca` does for private keys) leaves no copy of secret material behind.
pub fn encode_block(label: &str, der: &[u8]) -> String {
    let mut out = Vec::new();
    encode_block_into(&mut out, label, der);
    // Only ASCII was written; `from_utf8` takes the buffer over without copying it.
    String::from_utf8(out).unwrap_or_default()
}

/// Encodes certificates as concatenated `CERTIFICATE` blocks.
pub fn encode_certificates<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| encode_block("CERTIFICATE", c.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::pem::PemObject;

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
            let pem = encode_block("X", input);
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            assert_eq!(body, b64, "input {input:?}");
        }
    }

    #[test]
    fn encoding_has_the_announced_length_and_round_trips() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 96, 1000] {
            let der: Vec<u8> = (0..=255u8).cycle().take(len).collect();
            let pem = encode_block("PRIVATE KEY", &der);
            assert_eq!(pem.len(), encoded_len("PRIVATE KEY", len), "{len}");
            assert!(pem.lines().all(|l| l.len() <= 64), "{len}");
            assert!(pem.ends_with("-----END PRIVATE KEY-----\n"), "{len}");

            // With the announced room reserved, encoding never moves the buffer (a move would
            // leave a copy behind in freed memory).
            let mut into = Vec::with_capacity(encoded_len("PRIVATE KEY", len));
            let before = into.as_ptr();
            encode_block_into(&mut into, "PRIVATE KEY", &der);
            assert_eq!(into.as_ptr(), before, "{len}: reallocated");
            assert_eq!(into, pem.as_bytes(), "{len}");

            if len > 0 {
                let ours = decode_blocks(&pem).unwrap();
                assert_eq!(
                    (ours[0].label.as_str(), &ours[0].der),
                    ("PRIVATE KEY", &der)
                );
                // An independent decoder reads it too.
                let theirs =
                    rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
                assert_eq!(theirs.secret_pkcs8_der(), &der[..], "{len}");
            }
        }
    }
}
