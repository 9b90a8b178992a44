//! What a certificate says, in the words `sigil x509 inspect` and `sigil diagnose tls` print:
//! subject, issuer, serial, validity, SANs, SPIFFE ID, key, usages, constraints, key IDs; plus
//! the X.509-SVID rules (from `sigil-spiffe`, never re-implemented here) it breaks.
//!
//! Pure: bytes in, data and text out. The clock is a parameter.

use rustls_pki_types::CertificateDer;
use serde::Serialize;
use sigil_spiffe::{SpiffeId, check_signing_cert, leaf_spiffe_id};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// One certificate, described.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertInfo {
    /// Position in the file or chain, 0 = first (the leaf of a chain).
    pub index: usize,
    pub subject: String,
    pub issuer: String,
    /// Lowercase hex without leading zeros (the form the server logs and stores).
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub emails: Vec<String>,
    /// The URI SAN when it is a valid SPIFFE ID.
    pub spiffe_id: Option<String>,
    /// e.g. `ECDSA P-256`, `RSA 2048`, `Ed25519`.
    pub key: String,
    pub signature_algorithm: String,
    /// `None` when the extension is absent.
    pub key_usage: Option<Vec<String>>,
    pub key_usage_critical: bool,
    pub extended_key_usage: Option<Vec<String>>,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub subject_key_id: Option<String>,
    pub authority_key_id: Option<String>,
}

impl CertInfo {
    /// The trust domain of the SPIFFE ID (root IDs included).
    pub fn trust_domain(&self) -> Option<String> {
        let id = SpiffeId::parse(self.spiffe_id.as_deref()?).ok()?;
        Some(id.trust_domain().to_string())
    }

    pub fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }
}

/// Reads certificates from PEM (every `CERTIFICATE` block; other blocks are listed in the
/// second value so the caller can say they were skipped) or from DER (one or more
/// concatenated certificates).
pub fn read_certificates(
    bytes: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, Vec<String>), String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the input is empty; give a PEM or DER certificate".into());
    }
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.contains("-----BEGIN")
    {
        let blocks = sigil_spiffe::pem::decode_blocks(text).map_err(|e| format!("PEM: {e}"))?;
        let mut certs = Vec::new();
        let mut skipped = Vec::new();
        for b in blocks {
            if b.label == "CERTIFICATE" {
                certs.push(CertificateDer::from(b.der));
            } else {
                skipped.push(format!("{} (line {})", b.label, b.line));
            }
        }
        if certs.is_empty() {
            return Err(format!(
                "no CERTIFICATE block in the PEM input (found: {})",
                skipped.join(", ")
            ));
        }
        return Ok((certs, skipped));
    }
    let mut rest = bytes;
    let mut certs = Vec::new();
    while !rest.is_empty() {
        match X509Certificate::from_der(rest) {
            Ok((r, _)) => {
                let used = rest.len() - r.len();
                certs.push(CertificateDer::from(rest[..used].to_vec()));
                rest = r;
            }
            Err(e) => {
                return Err(format!(
                    "neither PEM (no \"-----BEGIN CERTIFICATE-----\") nor DER: certificate #{} \
                     does not parse: {e}",
                    certs.len()
                ));
            }
        }
    }
    Ok((certs, Vec::new()))
}

fn hex_colon(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn name(n: &x509_parser::x509::X509Name<'_>) -> String {
    let s = n.to_string();
    if s.is_empty() {
        "<empty>".to_owned()
    } else {
        s
    }
}

fn oid_name(dotted: &str) -> String {
    match dotted {
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.3.101.112" => "Ed25519",
        _ => return dotted.to_owned(),
    }
    .to_owned()
}

fn key_description(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    match (alg.as_str(), curve.as_deref()) {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => "ECDSA P-256".into(),
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => "ECDSA P-384".into(),
        ("1.2.840.10045.2.1", Some("1.3.132.0.35")) => "ECDSA P-521".into(),
        ("1.2.840.10045.2.1", c) => format!("ECDSA (curve {})", c.unwrap_or("unknown")),
        ("1.3.101.112", _) => "Ed25519".into(),
        ("1.2.840.113549.1.1.1", _) | ("1.2.840.113549.1.1.10", _) => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
            _ => "RSA (unparsable modulus)".into(),
        },
        (other, _) => format!("unknown key algorithm {other}"),
    }
}

fn key_usage_names(ku: &x509_parser::extensions::KeyUsage) -> Vec<String> {
    let bits = [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ];
    bits.iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

fn eku_names(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut v = Vec::new();
    for (on, n) in [
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
        (e.any, "anyExtendedKeyUsage"),
    ] {
        if on {
            v.push(n.to_owned());
        }
    }
    v.extend(e.other.iter().map(|o| o.to_id_string()));
    v
}

/// Describes one DER certificate.
pub fn describe(index: usize, der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("certificate #{index} is not valid X.509: {e}"))?;
    let serial = {
        let h: String = cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let t = h.trim_start_matches('0');
        if t.is_empty() {
            "0".to_owned()
        } else {
            t.to_owned()
        }
    };
    let mut info = CertInfo {
        index,
        subject: name(cert.subject()),
        issuer: name(cert.issuer()),
        serial,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names: Vec::new(),
        uris: Vec::new(),
        ip_addresses: Vec::new(),
        emails: Vec::new(),
        spiffe_id: None,
        key: key_description(&cert),
        signature_algorithm: oid_name(&cert.signature_algorithm.algorithm.to_id_string()),
        key_usage: None,
        key_usage_critical: false,
        extended_key_usage: None,
        is_ca: false,
        path_len: None,
        subject_key_id: None,
        authority_key_id: None,
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(d) => info.dns_names.push((*d).to_owned()),
                        GeneralName::URI(u) => info.uris.push((*u).to_owned()),
                        GeneralName::RFC822Name(m) => info.emails.push((*m).to_owned()),
                        GeneralName::IPAddress(ip) => info.ip_addresses.push(ip_string(ip)),
                        _ => {}
                    }
                }
            }
            ParsedExtension::KeyUsage(ku) => {
                info.key_usage = Some(key_usage_names(ku));
                info.key_usage_critical = ext.critical;
            }
            ParsedExtension::ExtendedKeyUsage(e) => info.extended_key_usage = Some(eku_names(e)),
            ParsedExtension::BasicConstraints(bc) => {
                info.is_ca = bc.ca;
                info.path_len = bc.path_len_constraint;
            }
            ParsedExtension::SubjectKeyIdentifier(k) => info.subject_key_id = Some(hex_colon(k.0)),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                info.authority_key_id = a.key_identifier.as_ref().map(|k| hex_colon(k.0));
            }
            _ => {}
        }
    }
    if let [uri] = info.uris.as_slice()
        && SpiffeId::parse(uri).is_ok()
    {
        info.spiffe_id = Some(uri.clone());
    }
    Ok(info)
}

fn ip_string(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => hex_colon(b),
    }
}

/// A duration in seconds as people say it: `42s`, `12m 5s`, `3h 12m`, `2d 3h`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Where `now` falls in the validity window, in words.
pub fn validity_phrase(not_before: i64, not_after: i64, now: i64) -> String {
    if now < not_before {
        format!(
            "NOT YET VALID: starts in {}",
            human_duration(not_before - now)
        )
    } else if now > not_after {
        format!("EXPIRED {} ago", human_duration(now - not_after))
    } else {
        format!("valid, expires in {}", human_duration(not_after - now))
    }
}

/// A broken X.509-SVID rule, for the certificate at `index`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub index: usize,
    pub rule: String,
}

/// The X.509-SVID rules `chain` breaks. A chain whose first certificate is a leaf is checked as
/// an SVID (leaf rules, then signing-certificate rules for the rest); a file of CA
/// certificates only (a bundle) is checked with the signing-certificate rules.
pub fn svid_violations(chain: &[CertificateDer<'_>], infos: &[CertInfo]) -> Vec<Violation> {
    let all_ca = !infos.is_empty() && infos.iter().all(|i| i.is_ca);
    let mut out = Vec::new();
    for (index, der) in chain.iter().enumerate() {
        let r = if index == 0 && !all_ca {
            leaf_spiffe_id(der).map(|_| ())
        } else {
            check_signing_cert(der).map(|_| ())
        };
        if let Err(e) = r {
            out.push(Violation {
                index,
                rule: e.to_string(),
            });
        }
    }
    out
}

/// The multi-line human description of one certificate.
pub fn human(info: &CertInfo, now: i64) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("  {k:<20} {v}\n"));
    line("Subject:", &info.subject);
    line("Issuer:", &info.issuer);
    line("Serial:", &info.serial);
    line("Not before:", &crate::fmt_time(info.not_before));
    line(
        "Not after:",
        &format!(
            "{} ({})",
            crate::fmt_time(info.not_after),
            validity_phrase(info.not_before, info.not_after, now)
        ),
    );
    if let Some(id) = &info.spiffe_id {
        line("SPIFFE ID:", id);
    }
    for u in info
        .uris
        .iter()
        .filter(|u| Some(*u) != info.spiffe_id.as_ref())
    {
        line("URI SAN:", u);
    }
    for d in &info.dns_names {
        line("DNS SAN:", d);
    }
    for ip in &info.ip_addresses {
        line("IP SAN:", ip);
    }
    for m in &info.emails {
        line("Email SAN:", m);
    }
    line(
        "Key:",
        &format!("{} (signed with {})", info.key, info.signature_algorithm),
    );
    let ku = match &info.key_usage {
        None => "absent".to_owned(),
        Some(v) => format!(
            "{}{}",
            v.join(", "),
            if info.key_usage_critical {
                " (critical)"
            } else {
                " (not critical)"
            }
        ),
    };
    line("Key usage:", &ku);
    line(
        "Extended key usage:",
        &info
            .extended_key_usage
            .as_ref()
            .map_or("absent (any purpose)".to_owned(), |v| v.join(", ")),
    );
    let bc = match (info.is_ca, info.path_len) {
        (true, Some(n)) => format!("CA (pathlen {n})"),
        (true, None) => "CA (no pathlen limit)".to_owned(),
        (false, _) => "not a CA".to_owned(),
    };
    line("Basic constraints:", &bc);
    if let Some(k) = &info.subject_key_id {
        line("Subject key ID:", k);
    }
    if let Some(k) = &info.authority_key_id {
        line("Authority key ID:", k);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_speech() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(-42), "42s");
        assert_eq!(human_duration(12 * 60 + 5), "12m 5s");
        assert_eq!(human_duration(3 * 3600 + 12 * 60 + 9), "3h 12m");
        assert_eq!(human_duration(2 * 86_400 + 3 * 3600), "2d 3h");
    }

    #[test]
    fn validity_phrases() {
        assert_eq!(validity_phrase(0, 100, 40), "valid, expires in 1m 0s");
        assert_eq!(validity_phrase(0, 100, 7300), "EXPIRED 2h 0m ago");
        assert_eq!(
            validity_phrase(500, 900, 200),
            "NOT YET VALID: starts in 5m 0s"
        );
    }

    #[test]
    fn empty_and_garbage_inputs_say_what_was_expected() {
        assert!(read_certificates(b"  \n").unwrap_err().contains("empty"));
        let e = read_certificates(b"hello").unwrap_err();
        assert!(e.contains("neither PEM"), "{e}");
        let e =
            read_certificates(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err();
        assert!(e.contains("no CERTIFICATE block"), "{e}");
    }
}
