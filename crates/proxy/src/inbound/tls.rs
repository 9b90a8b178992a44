//! The server side of inbound mTLS: a `ServerConfig` per identity generation (cached, rebuilt
//! when the SVID or bundles change), the handshake, what the peer proved, and the mapping of
//! rustls errors to [`HandshakeFailure`] with a plain-words reason.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, Error as TlsError, ServerConfig};
use sha2::{Digest, Sha256};
use sigil_spiffe::{ChainError, VerifyError};
use sigil_tls::SpiffeClientVerifier;

use crate::identity::Identity;
use crate::stats::HandshakeFailure;

/// ALPN values the server accepts, in its preference order (rustls picks the first one the
/// client also offers). Mesh markers are listed so that a peer offering only them still
/// completes the handshake.
fn server_alpn() -> Vec<Vec<u8>> {
    let mut v = vec![crate::alpn::H2.to_vec(), crate::alpn::HTTP11.to_vec()];
    v.push(crate::alpn::SIGIL.to_vec());
    v.extend(crate::alpn::ISTIO.iter().map(|p| p.to_vec()));
    v
}

/// Always presents one certificate.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

struct Cached {
    generation: u64,
    config: Arc<ServerConfig>,
}

/// The server configuration of one listener, rebuilt once per identity generation.
#[derive(Default)]
pub struct ServerTls {
    cached: ArcSwapOption<Cached>,
}

impl ServerTls {
    /// The configuration for `identity` (client certificate required, verified against its
    /// bundles, own and federated).
    pub fn config(&self, identity: &Identity) -> Result<Arc<ServerConfig>, TlsError> {
        if let Some(c) = &*self.cached.load()
            && c.generation == identity.generation
        {
            return Ok(c.config.clone());
        }
        let verifier = Arc::new(SpiffeClientVerifier::new(identity.bundles.clone(), false));
        let mut config = ServerConfig::builder_with_provider(sigil_tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Fixed(identity.certified.clone())));
        config.alpn_protocols = server_alpn();
        // The server's suite order decides (AES-128-GCM first, see `sigil_tls::provider`),
        // as nginx's `ssl_prefer_server_ciphers on` does.
        config.ignore_client_order = true;
        let config = Arc::new(config);
        self.cached.store(Some(Arc::new(Cached {
            generation: identity.generation,
            config: config.clone(),
        })));
        Ok(config)
    }
}

/// What an mTLS peer proved, computed once per connection.
#[derive(Debug, Clone)]
pub struct PeerCert {
    /// `spiffe://…`.
    pub spiffe_id: String,
    /// RFC 4514 subject DN (may be empty).
    pub subject: String,
    /// RFC 4514 issuer DN.
    pub issuer: String,
    /// Lowercase hex serial.
    pub serial: String,
    /// `TLSv1.3` / `TLSv1.2`.
    pub tls_version: &'static str,
    pub cipher: String,
    /// Negotiated ALPN.
    pub alpn: Option<Vec<u8>>,
    /// Istio's X-Forwarded-Client-Cert value for this peer.
    pub xfcc: HeaderValue,
}

impl PeerCert {
    /// The principal as AuthorizationPolicy compares it (without `spiffe://`).
    pub fn principal(&self) -> &str {
        self.spiffe_id
            .strip_prefix("spiffe://")
            .unwrap_or(&self.spiffe_id)
    }
}

/// Reads what the client proved from an established connection; `own` is this workload's ID.
pub fn peer_cert(conn: &rustls::ServerConnection, own: &str) -> Result<PeerCert, String> {
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("the client presented no certificate")?;
    let id = sigil_spiffe::leaf_spiffe_id(leaf).map_err(|e| e.to_string())?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
    let subject = rfc4514(cert.subject());
    let hash = hex::encode(Sha256::digest(leaf.as_ref()));
    let xfcc = format!(
        "By={own};Hash={hash};Subject=\"{}\";URI={}",
        quote_escape(&subject),
        id.as_str()
    );
    let xfcc = HeaderValue::from_str(&xfcc).map_err(|e| e.to_string())?;
    let tls_version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let s = s.suite();
            s.as_str().map_or_else(|| format!("{s:?}"), str::to_owned)
        })
        .unwrap_or_default();
    Ok(PeerCert {
        spiffe_id: id.as_str().to_owned(),
        issuer: rfc4514(cert.issuer()),
        serial: hex::encode(cert.raw_serial()),
        subject,
        tls_version,
        cipher,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        xfcc,
    })
}

/// Escapes `"` and `\` inside an XFCC quoted value.
fn quote_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 4514 string of a DN: RDNs last-to-first, `,` between them, `+` inside one.
pub fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            match short_name(&oid) {
                Some(s) => out.push_str(s),
                None => out.push_str(&oid),
            }
            out.push('=');
            match atv.as_str() {
                Ok(v) => escape_value(v, &mut out),
                Err(_) => {
                    out.push('#');
                    out.push_str(&hex::encode(atv.attr_value().data));
                }
            }
        }
    }
    out
}

fn escape_value(v: &str, out: &mut String) {
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut b = [0u8; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    out.push_str(&format!("\\{byte:02x}"));
                }
            }
            c => out.push(c),
        }
    }
}

/// A failed handshake: the counter it goes to and why, in plain words.
pub fn classify(e: &std::io::Error) -> (HandshakeFailure, String) {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<TlsError>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => (
                HandshakeFailure::Other,
                "the client closed the connection during the TLS handshake".into(),
            ),
            _ => (
                HandshakeFailure::Other,
                format!("TLS handshake failed: {e}"),
            ),
        };
    };
    classify_tls(tls)
}

fn classify_tls(e: &TlsError) -> (HandshakeFailure, String) {
    use HandshakeFailure as F;
    match e {
        TlsError::NoCertificatesPresented => {
            (F::NoCertificate, "client sent no certificate".into())
        }
        TlsError::InvalidCertificate(ce) => match ce {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => (
                F::UnknownCa,
                format!(
                    "client certificate is not signed by a trusted bundle ({ce:?}); the caller \
                     belongs to another trust domain or CA"
                ),
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                F::Expired,
                "client certificate has expired; its workload is not receiving rotated SVIDs"
                    .into(),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                F::Expired,
                "client certificate is not valid yet (check the clocks)".into(),
            ),
            CertificateError::Other(o) => match o.0.downcast_ref::<VerifyError>() {
                // Same issuer name, other key: a CA we do not trust.
                Some(
                    v @ VerifyError::Chain {
                        source: ChainError::BadSignature | ChainError::UnknownIssuer,
                        ..
                    },
                ) => (
                    F::UnknownCa,
                    format!("client certificate is not signed by a trusted bundle: {v}"),
                ),
                Some(v) => (F::Other, format!("client certificate refused: {v}")),
                None => (F::Other, format!("client certificate refused: {o}")),
            },
            other => (
                F::Other,
                format!("client certificate is not a valid X.509-SVID: {other:?}"),
            ),
        },
        TlsError::AlertReceived(a) => (
            F::Other,
            format!(
                "the client aborted the handshake with alert {a:?} (often: it does not trust \
                 this proxy's certificate)"
            ),
        ),
        TlsError::NoApplicationProtocol => {
            (F::Other, "no common ALPN protocol with the client".into())
        }
        TlsError::PeerIncompatible(p) => (
            F::Other,
            format!("the client's TLS offer is incompatible: {p:?}"),
        ),
        other => (F::Other, format!("TLS handshake failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_strings_follow_rfc4514() {
        let mut p = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::CommonName, " checkout");
        p.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        assert_eq!(rfc4514(c.subject()), "CN=\\ checkout,O=Acme\\, Inc.,C=US");
    }

    #[test]
    fn errors_map_to_counters() {
        use HandshakeFailure as F;
        let cases = [
            (TlsError::NoCertificatesPresented, F::NoCertificate),
            (
                TlsError::InvalidCertificate(CertificateError::UnknownIssuer),
                F::UnknownCa,
            ),
            (
                TlsError::InvalidCertificate(CertificateError::Expired),
                F::Expired,
            ),
            (TlsError::NoApplicationProtocol, F::Other),
        ];
        for (e, want) in cases {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            assert_eq!(classify(&io).0, want);
        }
    }
}
