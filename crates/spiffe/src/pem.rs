//! A small PEM codec for `CERTIFICATE` blocks (RFC 7468, strict base64 body).

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
    #[error("line {line}: malformed PEM boundary {text:?}")]
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

/// Encodes one block with 64-character lines.
pub fn encode_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str(BEGIN);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    // base64 output is ASCII, so byte chunks are valid UTF-8.
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    out
}

/// Encodes certificates as concatenated `CERTIFICATE` blocks.
pub fn encode_certificates<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| encode_block("CERTIFICATE", c.as_ref()))
        .collect()
}
