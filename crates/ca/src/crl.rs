//! Revocation: RFC 5280 reason names and X.509 v2 CRLs signed by an [`X509Authority`].
//!
//! Pure: the caller passes the revoked serials, the CRL number and the times. A CRL names its
//! issuer exactly as the CA certificate's subject and carries the authority key identifier and
//! the CRL number (both required by RFC 5280 §5.2), so OpenSSL, nginx (`ssl_crl`) and HAProxy
//! (`crl-file`) match it to the CA.

use std::fmt;
use std::str::FromStr;

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use crate::authority::X509Authority;
use crate::error::CaError;

/// Why a certificate was revoked (RFC 5280 §5.3.1 CRLReason), by its RFC name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reason {
    #[default]
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 9] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::PrivilegeWithdrawn,
        Reason::AaCompromise,
    ];

    /// The RFC 5280 name (`keyCompromise`), as OpenSSL prints it in camel case.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }

    fn to_rcgen(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::CaCompromise => RevocationReason::CaCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::CertificateHold => RevocationReason::CertificateHold,
            Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
            Reason::AaCompromise => RevocationReason::AaCompromise,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = CaError;

    /// Accepts the RFC name in any case, with or without `-`/`_` (`key-compromise`,
    /// `KEY_COMPROMISE`, `keyCompromise`).
    fn from_str(s: &str) -> Result<Self, CaError> {
        let norm = |x: &str| {
            x.chars()
                .filter(|c| *c != '-' && *c != '_')
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let want = norm(s);
        Reason::ALL
            .into_iter()
            .find(|r| norm(r.as_str()) == want)
            .ok_or_else(|| CaError::UnknownRevocationReason {
                given: s.to_owned(),
                known: Reason::ALL.map(Reason::as_str).join(", "),
            })
    }
}

/// One revoked certificate as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSerial {
    /// Hex (colons and leading zeros allowed).
    pub serial_hex: String,
    pub revoked_at: OffsetDateTime,
    pub reason: Reason,
}

/// A signed CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

/// Signs a CRL with `authority`'s key listing `revoked`. `next_update` must be after
/// `this_update`; `number` must grow with every CRL of this authority (RFC 5280 §5.2.3).
pub fn sign_crl(
    authority: &X509Authority,
    revoked: &[RevokedSerial],
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Crl, CaError> {
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for r in revoked {
        revoked_certs.push(RevokedCertParams {
            serial_number: serial_number(&r.serial_hex)?,
            revocation_time: r.revoked_at,
            // RFC 5280 §5.3.1: the reason code should be absent rather than "unspecified".
            reason_code: (r.reason != Reason::Unspecified).then(|| r.reason.to_rcgen()),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(authority.subject_key_id().to_vec()),
    };
    let crl = authority.sign_crl_params(&params)?;
    Ok(Crl {
        pem: crl.pem()?,
        der: crl.der().to_vec(),
        number,
        this_update,
        next_update,
    })
}

/// Reads a CRL from PEM (one `X509 CRL` block), e.g. a root CRL kept in the journal. Returns
/// the CRL and its issuer's key id (the authority key identifier, hex).
pub fn parse_crl_pem(pem: &str) -> Result<(Crl, String), CaError> {
    use base64::Engine;
    use x509_parser::prelude::FromDer;
    let bad = |m: &str| CaError::Encoding(format!("stored CRL: {m}"));
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN X509 CRL-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END X509 CRL-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| bad("not base64"))?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
        .map_err(|e| bad(&e.to_string()))?;
    let time = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    let key_id = crl
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| hex::encode(k.0))
            }
            _ => None,
        })
        .ok_or_else(|| bad("no authority key identifier"))?;
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n.clone()).ok())
        .unwrap_or(0);
    let this_update = time(crl.last_update());
    let next_update = crl.next_update().map_or(this_update, time);
    Ok((
        Crl {
            pem: pem.to_owned(),
            der: der.clone(),
            number,
            this_update,
            next_update,
        },
        key_id,
    ))
}

/// A serial as DER INTEGER content: positive (a leading 00 when the top bit is set).
fn serial_number(serial_hex: &str) -> Result<SerialNumber, CaError> {
    let digits: String = serial_hex.chars().filter(|c| *c != ':').collect();
    let digits = digits.trim_start_matches('0');
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits.to_owned()
    };
    let mut bytes = hex::decode(&padded).map_err(|_| CaError::BadSerial {
        given: serial_hex.to_owned(),
    })?;
    if bytes.is_empty() {
        bytes.push(0);
    }
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
#[path = "crl_tests.rs"]
mod tests;
