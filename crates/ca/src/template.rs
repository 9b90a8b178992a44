//! What to issue: pure functions from identities, serials and times to rcgen
//! `CertificateParams`. No keys, no clock, no randomness (serials are passed in).
//!
//! Shapes follow SPIRE's `credtemplate`:
//!
//! | | root CA | intermediate CA | X509-SVID (workload or agent) |
//! |---|---|---|---|
//! | subject | C, O, serialNumber | C, O, serialNumber | C, O, CN = first DNS name |
//! | URI SAN | `spiffe://<td>` | `spiffe://<td>` | the SPIFFE ID (exactly one) |
//! | basicConstraints (critical) | CA:TRUE | CA:TRUE, pathlen 0 | CA:FALSE |
//! | keyUsage (critical) | keyCertSign, cRLSign, digitalSignature | same | digitalSignature, keyEncipherment, keyAgreement |
//! | extKeyUsage | — | — | serverAuth, clientAuth |
//! | SKI / AKI | SKI | SKI, AKI | SKI, AKI |
//!
//! Lifetimes come from [`clamp_lifetime`]: `notBefore` is backdated by
//! [`NOT_BEFORE_BACKDATE`] for clock skew, `notAfter` never passes the issuer's.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType, SerialNumber,
};
use sigil_spiffe::{SpiffeId, TrustDomain};
use time::OffsetDateTime;

use crate::error::CaError;

/// Default X509-SVID lifetime (SPIRE's `default_x509_svid_ttl`).
pub const DEFAULT_SVID_TTL: Duration = Duration::from_secs(60 * 60);
/// Default CA lifetime (SPIRE's `ca_ttl`).
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How far `notBefore` is set before "now" to tolerate clock skew (SPIRE's `NotBeforeCushion`).
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(10);

/// X.520 serialNumber attribute type (2.5.4.5).
const OID_DN_SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];

/// A 128-bit certificate serial number: positive and exactly 16 bytes when DER-encoded
/// (top bit clear, first byte non-zero), so about 126 bits are random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Serial([u8; 16]);

impl Serial {
    /// A fresh random serial from the system RNG.
    pub fn random() -> Result<Self, CaError> {
        let mut b = [0u8; 16];
        aws_lc_rs::rand::fill(&mut b).map_err(|e| CaError::Crypto(format!("{e:?}")))?;
        Ok(Serial::from_bytes(b))
    }

    /// A serial from fixed bytes (tests, reproducible fixtures); normalised like `random`.
    pub fn from_bytes(mut b: [u8; 16]) -> Self {
        b[0] = (b[0] & 0x7f).max(1);
        Serial(b)
    }

    /// Lowercase hex, as printed by `openssl x509 -serial` (without colons).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn to_rcgen(self) -> SerialNumber {
        SerialNumber::from_slice(&self.0)
    }
}

/// Subject of CA certificates (SPIRE's `ca_subject`; default `C=US, O=SPIFFE`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSubject {
    pub country: Option<String>,
    pub organization: Option<String>,
    pub common_name: Option<String>,
}

impl Default for CaSubject {
    fn default() -> Self {
        CaSubject {
            country: Some("US".into()),
            organization: Some("SPIFFE".into()),
            common_name: None,
        }
    }
}

/// `(notBefore, notAfter)` for a certificate issued at `now` for `ttl` by an issuer valid
/// until `issuer_not_after`: `notBefore = now - NOT_BEFORE_BACKDATE`,
/// `notAfter = min(now + ttl, issuer_not_after)`.
///
/// The caller checks that the issuer is still valid (`issuer_not_after > now`).
pub fn clamp_lifetime(
    now: OffsetDateTime,
    ttl: Duration,
    issuer_not_after: OffsetDateTime,
) -> (OffsetDateTime, OffsetDateTime) {
    let not_before = sub(now, NOT_BEFORE_BACKDATE);
    let not_after = add(now, ttl).map_or(issuer_not_after, |t| t.min(issuer_not_after));
    (not_before, not_after)
}

/// The TTL to issue with: the entry's own TTL if set, else `default`. A zero TTL (requested or
/// default) is refused rather than silently meaning "default".
pub fn effective_ttl(requested: Option<Duration>, default: Duration) -> Result<Duration, CaError> {
    let ttl = requested.unwrap_or(default);
    if ttl.is_zero() {
        return Err(CaError::ZeroTtl);
    }
    Ok(ttl)
}

/// `t + d`, or `None` past the representable range.
pub(crate) fn add(t: OffsetDateTime, d: Duration) -> Option<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
}

fn sub(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d))
        .unwrap_or(t)
}

/// A self-signed root CA for `td`. It signs X509-SVIDs directly in self-signed mode, so its
/// path length is unconstrained (as SPIRE's self-signed CA).
pub fn root_ca_params(
    td: &TrustDomain,
    subject: &CaSubject,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut p = ca_params(td, subject, serial, not_before, not_after)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ok(p)
}

/// A per-server intermediate CA for `td`, signed by a root or an upstream CA. Path length 0:
/// it signs only X509-SVIDs.
pub fn intermediate_ca_params(
    td: &TrustDomain,
    subject: &CaSubject,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut p = ca_params(td, subject, serial, not_before, not_after)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn ca_params(
    td: &TrustDomain,
    subject: &CaSubject,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut p = base_params(serial, not_before, not_after);
    p.distinguished_name = subject_name(
        subject.country.as_deref(),
        subject.organization.as_deref(),
        subject.common_name.as_deref(),
    )?;
    // Like SPIRE: the serial in the subject makes every CA generation's name unique.
    p.distinguished_name.push(
        DnType::CustomDnType(OID_DN_SERIAL_NUMBER.to_vec()),
        printable(&serial.to_hex())?,
    );
    p.subject_alt_names = vec![SanType::URI(ia5(&td.id_string())?)];
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// An X509-SVID for a workload: one URI SAN (the SPIFFE ID), optional DNS SANs with the first
/// as the subject CN (as SPIRE does).
pub fn svid_params(
    id: &SpiffeId,
    dns_names: &[String],
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    if id.is_root() {
        return Err(CaError::IdIsTrustDomain { id: id.to_string() });
    }
    let mut sans = vec![SanType::URI(ia5(id.as_str())?)];
    for name in dns_names {
        validate_dns_name(name)?;
        sans.push(SanType::DnsName(ia5(name)?));
    }
    let mut p = base_params(serial, not_before, not_after);
    // X.520 caps commonName at 64 characters; a longer first DNS name stays a SAN only.
    let cn = dns_names.first().filter(|n| n.len() <= 64);
    p.distinguished_name = subject_name(Some("US"), Some("SPIFFE"), cn.map(String::as_str))?;
    p.subject_alt_names = sans;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// The URL of the CRL of the CA whose authority id (subject key id, hex) is `ca_id`, as the
/// server's CRL endpoint serves it: `<base>/crl/<ca_id>.crl` (DER).
pub fn crl_url(base: &str, ca_id: &str) -> String {
    format!("{}/crl/{ca_id}.crl", base.trim_end_matches('/'))
}

/// Adds a CRL distribution point extension (RFC 5280 §4.2.1.13) naming `url` to any
/// certificate template: SVIDs, and certificates issued for cert-manager `Certificate`s.
/// `url` must be http:// or https://.
pub fn set_crl_distribution_point(p: &mut CertificateParams, url: &str) -> Result<(), CaError> {
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.contains(char::is_whitespace)
    {
        return Err(CaError::BadCrlUrl {
            url: url.to_owned(),
        });
    }
    p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec![url.to_owned()],
    }];
    Ok(())
}

/// What every shape shares: the serial and the validity period.
fn base_params(
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.serial_number = Some(serial.to_rcgen());
    p.not_before = not_before;
    p.not_after = not_after;
    p
}

/// A subject of C, O and CN, each only when given, in that order.
fn subject_name(
    country: Option<&str>,
    organization: Option<&str>,
    common_name: Option<&str>,
) -> Result<DistinguishedName, CaError> {
    let mut dn = DistinguishedName::new();
    if let Some(c) = country {
        dn.push(DnType::CountryName, printable(c)?);
    }
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    if let Some(cn) = common_name {
        dn.push(DnType::CommonName, cn);
    }
    Ok(dn)
}

/// Checks a DNS SAN: 1–253 characters, labels of 1–63 letters, digits and inner hyphens, and
/// at most a leading `*.` wildcard label.
pub fn validate_dns_name(name: &str) -> Result<(), CaError> {
    let bad = |reason| {
        Err(CaError::InvalidDnsName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 253 {
        return bad("longer than 253 characters");
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    for label in host.split('.') {
        if label.is_empty() {
            return bad("empty label (leading, trailing or double dot)");
        }
        if label.len() > 63 {
            return bad("label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits, '-' and a leading \"*.\" are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
    }
    Ok(())
}

fn ia5(s: &str) -> Result<rcgen::string::Ia5String, CaError> {
    s.try_into().map_err(CaError::from)
}

fn printable(s: &str) -> Result<DnValue, CaError> {
    Ok(DnValue::PrintableString(s.try_into()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

    #[test]
    fn clamp_lifetime_table() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let cases = [
            (
                "well inside the issuer",
                h(1),
                datetime!(2030-01-02 0:00 UTC),
                datetime!(2030-01-01 13:00 UTC),
            ),
            (
                "clamped to the issuer",
                h(1),
                datetime!(2030-01-01 12:30 UTC),
                datetime!(2030-01-01 12:30 UTC),
            ),
            (
                "exactly the issuer",
                h(1),
                datetime!(2030-01-01 13:00 UTC),
                datetime!(2030-01-01 13:00 UTC),
            ),
            (
                "huge ttl saturates",
                Duration::MAX,
                datetime!(2031-01-01 0:00 UTC),
                datetime!(2031-01-01 0:00 UTC),
            ),
        ];
        for (name, ttl, issuer_na, want_na) in cases {
            let (nb, na) = clamp_lifetime(NOW, ttl, issuer_na);
            assert_eq!(nb, datetime!(2030-01-01 11:59:50 UTC), "{name}");
            assert_eq!(na, want_na, "{name}");
        }
    }

    #[test]
    fn effective_ttl_uses_default_and_rejects_zero() {
        assert_eq!(
            effective_ttl(None, DEFAULT_SVID_TTL).unwrap(),
            DEFAULT_SVID_TTL
        );
        let five = Duration::from_secs(300);
        assert_eq!(effective_ttl(Some(five), DEFAULT_SVID_TTL).unwrap(), five);
        assert!(matches!(
            effective_ttl(Some(Duration::ZERO), DEFAULT_SVID_TTL),
            Err(CaError::ZeroTtl)
        ));
        assert!(matches!(
            effective_ttl(None, Duration::ZERO),
            Err(CaError::ZeroTtl)
        ));
    }

    #[test]
    fn dns_name_rules() {
        for ok in [
            "a",
            "api.example.org",
            "*.example.org",
            "x-1.y2",
            &"a".repeat(63),
        ] {
            assert!(validate_dns_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-",
            "a_b",
            "a.*.b",
            "*",
            &"a".repeat(64),
            "é.org",
        ] {
            assert!(
                matches!(validate_dns_name(bad), Err(CaError::InvalidDnsName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serial_is_positive_and_sixteen_bytes() {
        let s = Serial::from_bytes([0xff; 16]);
        assert_eq!(&s.to_hex()[..2], "7f");
        let z = Serial::from_bytes([0; 16]);
        assert_eq!(&z.to_hex()[..2], "01");
        assert_ne!(Serial::random().unwrap(), Serial::random().unwrap());
    }

    #[test]
    fn svid_for_trust_domain_id_is_refused() {
        let td = TrustDomain::new("example.org").unwrap();
        let id = td.id("").unwrap();
        let s = Serial::from_bytes([1; 16]);
        assert!(matches!(
            svid_params(&id, &[], s, NOW, NOW),
            Err(CaError::IdIsTrustDomain { .. })
        ));
    }

    #[test]
    fn svid_cn_is_first_dns_name() {
        let id = SpiffeId::parse("spiffe://example.org/web").unwrap();
        let dns = vec!["web.example.org".to_string(), "web".to_string()];
        let p = svid_params(&id, &dns, Serial::from_bytes([1; 16]), NOW, NOW).unwrap();
        let cn = p.distinguished_name.get(&DnType::CommonName);
        assert_eq!(cn, Some(&DnValue::Utf8String("web.example.org".into())));
        assert_eq!(p.subject_alt_names.len(), 3);
    }
}
