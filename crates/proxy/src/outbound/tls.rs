//! The upstream TLS of one upstream under one (identity, mesh revision): which
//! DestinationRule decided, the mode, and a ready `rustls::ClientConfig`.
//!
//! - `ISTIO_MUTUAL` (and automatic mTLS): the workload's SVID as client certificate; the server
//!   verified by [`SpiffeServerVerifier`] against the trust bundles, with secure naming: the
//!   rule's `subjectAltNames`, else the ServiceEntry's `subjectAltNames` and the endpoints'
//!   service accounts, else any ID of the trusted bundles (logged as not pinned).
//! - `MUTUAL`: client certificate, key and CA from the rule's files (read when the plan is
//!   built, i.e. once per revision), webpki verification of `sni` (or the host), and the
//!   `subjectAltNames` when given.
//! - `SIMPLE`: as `MUTUAL` without a client certificate. Sigil has no system roots: without
//!   `caCertificates` the connection is refused unless `insecureSkipVerify` is set.
//! - `DISABLE`: plaintext.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};
use sigil_policy::{ClientTlsSettings, TlsLevel, TlsMode, destination_tls};
use sigil_spiffe::SpiffeId;
use sigil_tls::{IdMatcher, SpiffeServerVerifier, UnexpectedId};

use super::resolve::{Destination, destination_query};
use crate::alpn;
use crate::config::{AppProtocol, ProxyConfig, Upstream};
use crate::identity::Identity;
use crate::mesh::MeshView;
use crate::stats::HandshakeFailure;

/// The TLS decision for an upstream.
pub(crate) struct TlsPlan {
    /// `ISTIO_MUTUAL`, `MUTUAL`, `SIMPLE` or `DISABLE`.
    pub mode: &'static str,
    /// No DestinationRule set the TLS: automatic mTLS decided.
    pub auto: bool,
    /// The rule (and level) that decided, e.g. `payments/payments-mtls (trafficPolicy.tls)`.
    pub rule: Option<String>,
    /// `Ok(None)`: plaintext. `Err`: misconfiguration; connections are refused with it.
    pub config: Result<Option<Arc<ClientConfig>>, String>,
    pub server_name: ServerName<'static>,
    /// The server identities accepted (for logs).
    pub expected: String,
    /// Things worth a log line once per plan (unpinned secure naming, insecureSkipVerify).
    pub notes: Vec<String>,
}

fn level_name(l: TlsLevel) -> &'static str {
    match l {
        TlsLevel::SubsetPortLevel => "subsets[].trafficPolicy.portLevelSettings[].tls",
        TlsLevel::Subset => "subsets[].trafficPolicy.tls",
        TlsLevel::PortLevel => "trafficPolicy.portLevelSettings[].tls",
        TlsLevel::TopLevel => "trafficPolicy.tls",
        TlsLevel::Unset => "no tls for this port",
    }
}

/// ALPN offered: the mesh markers (mesh mTLS only), then the application protocol.
fn alpn_for(mesh: bool, protocol: AppProtocol) -> Vec<Vec<u8>> {
    let mut out: Vec<&[u8]> = Vec::new();
    if mesh {
        out.push(alpn::SIGIL);
        match protocol {
            AppProtocol::Tcp => out.push(b"istio"),
            AppProtocol::Http2 => out.extend([b"istio-h2".as_slice(), b"istio"]),
            AppProtocol::Http | AppProtocol::Auto => {
                out.extend([b"istio-http/1.1".as_slice(), b"istio"])
            }
        }
    }
    match protocol {
        AppProtocol::Tcp => {}
        AppProtocol::Http2 => out.push(alpn::H2),
        AppProtocol::Http | AppProtocol::Auto => out.push(alpn::HTTP11),
    }
    out.into_iter().map(<[u8]>::to_vec).collect()
}

/// Decides the TLS for `upstream` (with `protocol`, the one actually spoken) and builds it.
pub(crate) fn plan(
    cfg: &ProxyConfig,
    view: &MeshView,
    identity: Option<&Identity>,
    upstream: &Upstream,
    protocol: AppProtocol,
    dest: &Destination,
) -> TlsPlan {
    let q = destination_query(
        &cfg.workload.namespace,
        &cfg.workload.labels,
        &cfg.root_namespace,
        &upstream.host,
        upstream.port,
        upstream.subset.as_deref(),
    );
    let decided = destination_tls(&view.destination_rules, &q);
    let rule = decided
        .as_ref()
        .map(|d| format!("{} ({})", d.rule, level_name(d.level)));
    let mut notes = Vec::new();
    if let Some(d) = &decided
        && !d.subset_found
    {
        notes.push(format!(
            "subset {:?} is not defined by {}; using the service-level policy",
            upstream.subset.as_deref().unwrap_or_default(),
            d.rule
        ));
    }
    let settings = decided.as_ref().and_then(|d| d.tls);
    let sni = settings
        .map(|s| s.sni.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(&upstream.host);
    let (server_name, bad_sni) = match ServerName::try_from(sni.to_owned()) {
        Ok(n) => (n, false),
        Err(_) => (
            ServerName::from(std::net::IpAddr::from([127, 0, 0, 1])),
            true,
        ),
    };
    let mut p = TlsPlan {
        mode: "DISABLE",
        auto: settings.is_none(),
        rule,
        config: Ok(None),
        server_name,
        expected: String::new(),
        notes,
    };
    let mode = match settings {
        Some(s) => s.mode,
        None if dest.mesh_external => {
            p.notes.push(format!(
                "ServiceEntry {} is MESH_EXTERNAL: no automatic mTLS (plaintext); set location: MESH_INTERNAL or a DestinationRule tls mode",
                dest.service_entry.as_deref().unwrap_or_default()
            ));
            TlsMode::Disable
        }
        None if identity.is_some() => TlsMode::IstioMutual,
        None => {
            p.notes.push(
                "no workload identity yet: automatic mTLS falls back to plaintext".to_owned(),
            );
            TlsMode::Disable
        }
    };
    p.mode = mode.as_str();
    let empty = ClientTlsSettings::default();
    let s = settings.unwrap_or(&empty);
    p.config = match mode {
        TlsMode::Disable => Ok(None),
        _ if bad_sni => Err(format!(
            "{sni:?} is not a valid TLS server name; fix the DestinationRule's sni or the upstream host"
        )),
        TlsMode::IstioMutual => istio_mutual(s, identity, dest, protocol, &mut p),
        TlsMode::Mutual | TlsMode::Simple => files(s, mode, protocol, &mut p),
    }
    .map_err(|e| match &p.rule {
        Some(r) => format!("{e} (DestinationRule {r})"),
        None => e,
    });
    p
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(sigil_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))
}

fn istio_mutual(
    s: &ClientTlsSettings,
    identity: Option<&Identity>,
    dest: &Destination,
    protocol: AppProtocol,
    p: &mut TlsPlan,
) -> Result<Option<Arc<ClientConfig>>, String> {
    let Some(identity) = identity else {
        return Err(
            "ISTIO_MUTUAL needs the workload's SVID, and the Workload API has not delivered one yet"
                .to_owned(),
        );
    };
    let td = identity.id.trust_domain();
    let mut wanted: Vec<String> = if !s.subject_alt_names.is_empty() {
        s.subject_alt_names.clone()
    } else {
        let mut v = dest.entry_sans.clone();
        v.extend(
            dest.service_accounts
                .iter()
                .map(|(ns, sa)| format!("spiffe://{}/ns/{ns}/sa/{sa}", td.as_str())),
        );
        v
    };
    wanted.dedup();
    let matcher = if wanted.is_empty() {
        p.notes.push(
            "secure naming is not pinned: any SPIFFE ID of the trusted bundles is accepted; add subjectAltNames to the ServiceEntry or DestinationRule, or serviceAccount to the WorkloadEntry".to_owned(),
        );
        IdMatcher::Any
    } else {
        let mut ids = Vec::new();
        for w in &wanted {
            let text = if w.starts_with("spiffe://") {
                w.clone()
            } else {
                format!("spiffe://{w}")
            };
            match SpiffeId::parse(&text) {
                Ok(id) => ids.push(id),
                Err(e) => p.notes.push(format!(
                    "subjectAltName {w:?} is not a SPIFFE ID ({e}); ignored"
                )),
            }
        }
        IdMatcher::OneOf(ids)
    };
    p.expected = format!("{matcher:?}");
    let verifier: Arc<dyn ServerCertVerifier> = if s.insecure_skip_verify == Some(true) {
        p.notes
            .push("insecureSkipVerify: the server's identity is NOT verified".to_owned());
        Arc::new(NoVerify(algs()))
    } else {
        Arc::new(SpiffeServerVerifier::new(identity.bundles.clone(), matcher))
    };
    let mut c = builder()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(FixedCert(identity.certified.clone())));
    c.alpn_protocols = alpn_for(true, protocol);
    Ok(Some(Arc::new(c)))
}

fn read(path: &str, what: &str, field: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {field}: {path}: {e}"))
}

fn files(
    s: &ClientTlsSettings,
    mode: TlsMode,
    protocol: AppProtocol,
    p: &mut TlsPlan,
) -> Result<Option<Arc<ClientConfig>>, String> {
    let m = mode.as_str();
    if !s.credential_name.is_empty() {
        return Err(format!(
            "{m} with credentialName {:?} is not supported by the Sigil proxy; use clientCertificate, privateKey and caCertificates files",
            s.credential_name
        ));
    }
    let insecure = s.insecure_skip_verify == Some(true);
    let verifier: Arc<dyn ServerCertVerifier> = if insecure {
        p.notes.push(format!(
            "{m} with insecureSkipVerify: the server's certificate is NOT verified"
        ));
        p.expected = "anything (insecureSkipVerify)".into();
        Arc::new(NoVerify(algs()))
    } else {
        if s.ca_certificates.is_empty() {
            return Err(format!(
                "{m} without caCertificates: Sigil has no system roots; add caCertificates: /path/to/ca.pem (or insecureSkipVerify: true)"
            ));
        }
        let pem = read(&s.ca_certificates, "CA bundle", "caCertificates")?;
        let mut roots = RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            let c = c.map_err(|e| format!("caCertificates {}: {e}", s.ca_certificates))?;
            roots
                .add(c)
                .map_err(|e| format!("caCertificates {}: {e}", s.ca_certificates))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "caCertificates {} holds no PEM certificate",
                s.ca_certificates
            ));
        }
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), sigil_tls::provider())
                .build()
                .map_err(|e| format!("caCertificates {}: {e}", s.ca_certificates))?;
        if s.subject_alt_names.is_empty() {
            p.expected = format!("{:?}", p.server_name.to_str());
            webpki
        } else {
            p.expected = format!("{:?}", s.subject_alt_names);
            Arc::new(SanVerifier {
                inner: webpki,
                sans: s.subject_alt_names.clone(),
            })
        }
    };
    let b = builder()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut c = if mode == TlsMode::Mutual {
        if s.client_certificate.is_empty() || s.private_key.is_empty() {
            return Err("MUTUAL needs clientCertificate and privateKey (PEM files)".to_owned());
        }
        let cert_pem = read(
            &s.client_certificate,
            "client certificate",
            "clientCertificate",
        )?;
        let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("clientCertificate {}: {e}", s.client_certificate))?;
        if certs.is_empty() {
            return Err(format!(
                "clientCertificate {} holds no PEM certificate",
                s.client_certificate
            ));
        }
        let key_pem = read(&s.private_key, "private key", "privateKey")?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|e| format!("privateKey {}: {e}", s.private_key))?
            .ok_or_else(|| format!("privateKey {} holds no PEM private key", s.private_key))?;
        b.with_client_auth_cert(certs, key).map_err(|e| {
            format!(
                "clientCertificate {} and privateKey {} do not form a usable pair: {e}",
                s.client_certificate, s.private_key
            )
        })?
    } else {
        b.with_no_client_auth()
    };
    c.alpn_protocols = alpn_for(false, protocol);
    Ok(Some(Arc::new(c)))
}

/// Presents the workload's SVID.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn algs() -> WebPkiSupportedAlgorithms {
    sigil_tls::provider().signature_verification_algorithms
}

/// The server certificate carries none of the `subjectAltNames` of the rule.
#[derive(Debug)]
pub(crate) struct SanMismatch {
    pub want: Vec<String>,
    pub got: Vec<String>,
}

impl std::fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server certificate names {:?}, none of the subjectAltNames {:?}",
            self.got, self.want
        )
    }
}

impl std::error::Error for SanMismatch {}

/// webpki chain verification, then: one of the certificate's SANs (DNS, URI or IP) equals one
/// of `sans` (the TLS server name is not required to match then, as in Envoy).
#[derive(Debug)]
struct SanVerifier {
    inner: Arc<WebPkiServerVerifier>,
    sans: Vec<String>,
}

fn cert_sans(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            GeneralName::URI(u) => Some((*u).to_owned()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

impl ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // The chain is good; only the name differs, which the SAN list replaces.
            Ok(_)
            | Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        let got = cert_sans(end_entity);
        if got.iter().any(|g| self.sans.iter().any(|w| w == g)) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(SanMismatch {
                    want: self.sans.clone(),
                    got,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecureSkipVerify`: accepts any certificate (the handshake signature is still checked).
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Which counter a failed upstream handshake goes to, and the reason in plain words.
pub(crate) fn classify(e: &io::Error) -> (HandshakeFailure, String) {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return (
            HandshakeFailure::Other,
            format!("TLS handshake with the upstream failed: {e}"),
        );
    };
    match tls {
        Error::InvalidCertificate(ce) => match ce {
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => (
                HandshakeFailure::Expired,
                format!("the upstream's certificate is expired or not yet valid ({ce:?})"),
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                (
                    HandshakeFailure::SpiffeIdMismatch,
                    format!("the upstream's certificate is not valid for the server name: {tls}"),
                )
            }
            CertificateError::Other(o) => {
                if let Some(u) = o.0.downcast_ref::<UnexpectedId>() {
                    (
                        HandshakeFailure::SpiffeIdMismatch,
                        format!(
                            "secure naming: the upstream presented SPIFFE ID {}, expected {:?}",
                            u.got, u.want
                        ),
                    )
                } else if let Some(m) = o.0.downcast_ref::<SanMismatch>() {
                    (HandshakeFailure::SpiffeIdMismatch, m.to_string())
                } else {
                    (
                        HandshakeFailure::UnknownCa,
                        format!("the upstream's certificate was refused: {o}"),
                    )
                }
            }
            CertificateError::UnknownIssuer => (
                HandshakeFailure::UnknownCa,
                "the upstream's certificate is not signed by a trusted CA (unknown issuer)"
                    .to_owned(),
            ),
            other => (
                HandshakeFailure::UnknownCa,
                format!("the upstream's certificate was refused: {other:?}"),
            ),
        },
        Error::AlertReceived(a) => (
            HandshakeFailure::Other,
            format!(
                "the upstream refused the handshake with alert {a:?} (our client certificate, or ALPN/SNI, was not accepted)"
            ),
        ),
        Error::NoApplicationProtocol => (
            HandshakeFailure::Other,
            "the upstream accepts none of the ALPN protocols offered".to_owned(),
        ),
        other => (
            HandshakeFailure::Other,
            format!("TLS handshake with the upstream failed: {other}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_lists() {
        let l = |m, p| {
            alpn_for(m, p)
                .into_iter()
                .map(|v| String::from_utf8(v).unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            l(true, AppProtocol::Http),
            ["sigil-mtls", "istio-http/1.1", "istio", "http/1.1"]
        );
        assert_eq!(l(true, AppProtocol::Tcp), ["sigil-mtls", "istio"]);
        assert_eq!(
            l(true, AppProtocol::Http2),
            ["sigil-mtls", "istio-h2", "istio", "h2"]
        );
        assert_eq!(l(false, AppProtocol::Http), ["http/1.1"]);
        assert!(l(false, AppProtocol::Tcp).is_empty());
    }
}
