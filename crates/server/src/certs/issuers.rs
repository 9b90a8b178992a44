//! cert-manager issuers in Sigil: `selfSigned`, `ca` (a key pair in a TLS Secret) and `sigil`
//! (the trust domain's own CA). Resolving an `issuerRef` reads the stored Issuer or
//! ClusterIssuer and, for `ca`, its Secret; every problem comes back as a condition reason and
//! a message saying what to fix.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use sigil_ca::{PrivateKey, Signer, X509Authority};
use sigil_datastore::ConfigKey;
use sigil_policy::{CERT_MANAGER_GROUP, IssuerRef, IssuerSpec, IssuerType};

use super::facts::pem_certs;
use crate::secrets;
use crate::state::Shared;

/// Why an issuer cannot sign: a condition reason and an actionable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerProblem {
    pub reason: &'static str,
    pub message: String,
}

fn problem(reason: &'static str, message: impl Into<String>) -> IssuerProblem {
    IssuerProblem {
        reason,
        message: message.into(),
    }
}

/// How a usable issuer signs.
pub enum Signing {
    /// Each certificate signs itself with its own key.
    SelfSigned,
    /// A CA signs; `root` goes into `ca.crt`.
    Authority {
        authority: Arc<X509Authority>,
        root: Option<CertificateDer<'static>>,
        /// The trust domain's own CA (the `sigil` issuer): what it signs is recorded in the
        /// issued-certificates log, so `sigil x509 revoke --serial` and the CRLs cover it.
        own_ca: bool,
        /// CRL distribution point to put in the certificate (`--crl-url` with `own_ca`).
        crl_url: Option<String>,
    },
}

impl Signing {
    /// The key type that signs (the issuer's; `None` for self-signed: the certificate's own).
    pub fn signing_key(&self) -> Option<sigil_ca::KeyType> {
        match self {
            Signing::SelfSigned => None,
            Signing::Authority { authority, .. } => Some(authority.signer().key_type()),
        }
    }
}

/// A resolved issuer reference.
pub struct ResolvedIssuer {
    /// `Issuer` or `ClusterIssuer`.
    pub kind: &'static str,
    pub name: String,
    pub signing: Signing,
}

/// The namespace a ClusterIssuer's Secrets live in.
pub fn cluster_resource_namespace(s: &Shared) -> &str {
    &s.cfg.cluster_resource_namespace
}

/// Resolves `spec.issuerRef` of a Certificate in `cert_ns`.
pub async fn resolve(
    s: &Shared,
    cert_ns: &str,
    r: &IssuerRef,
) -> Result<ResolvedIssuer, IssuerProblem> {
    if r.effective_group() != CERT_MANAGER_GROUP {
        return Err(problem(
            "UnsupportedIssuer",
            format!(
                "spec.issuerRef.group {:?} names an external issuer; Sigil signs only with \
                 {CERT_MANAGER_GROUP} Issuers and ClusterIssuers",
                r.group
            ),
        ));
    }
    let (kind, key, secret_ns) = match r.effective_kind() {
        "Issuer" => (
            "Issuer",
            ConfigKey::new("Issuer", cert_ns, &r.name),
            cert_ns.to_owned(),
        ),
        "ClusterIssuer" => (
            "ClusterIssuer",
            ConfigKey::new("ClusterIssuer", "", &r.name),
            cluster_resource_namespace(s).to_owned(),
        ),
        other => {
            return Err(problem(
                "UnsupportedIssuer",
                format!(
                    "spec.issuerRef.kind {other:?} is not Issuer or ClusterIssuer; fix \
                     spec.issuerRef.kind"
                ),
            ));
        }
    };
    let stored = s.ds.get_config(&key).await.map_err(|e| {
        problem(
            "IssuerNotReady",
            format!("cannot read {kind} {:?}: {e}", r.name),
        )
    })?;
    let Some(stored) = stored else {
        let scope = if kind == "Issuer" {
            format!(" in namespace {cert_ns:?}")
        } else {
            String::new()
        };
        return Err(problem(
            "IssuerNotFound",
            format!(
                "{kind} {:?} not found{scope}; apply it (sigil apply -f) or fix spec.issuerRef",
                r.name
            ),
        ));
    };
    let spec = issuer_spec(&stored.body)
        .map_err(|m| problem("IssuerNotReady", format!("{kind} {:?}: {m}", r.name)))?;
    let signing = check(s, &spec, &secret_ns)
        .await
        .map_err(|p| IssuerProblem {
            reason: "IssuerNotReady",
            message: format!("{kind} {:?} is not ready: {}", r.name, p.message),
        })?;
    Ok(ResolvedIssuer {
        kind,
        name: r.name.clone(),
        signing,
    })
}

/// The `spec` of a stored Issuer or ClusterIssuer.
pub fn issuer_spec(body: &str) -> Result<IssuerSpec, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("stored object is unreadable: {e}"))?;
    let spec = v.get("spec").cloned().unwrap_or_default();
    serde_json::from_value(spec).map_err(|e| format!("stored spec is unreadable: {e}"))
}

/// Whether the issuer can sign now; its Ready condition's reason and message on failure.
pub async fn check(
    s: &Shared,
    spec: &IssuerSpec,
    secret_ns: &str,
) -> Result<Signing, IssuerProblem> {
    let Some(t) = spec.issuer_type() else {
        return Err(problem(
            "InvalidIssuer",
            "exactly one issuer type (ca, selfSigned, sigil…) must be set",
        ));
    };
    if !t.supported_by_sigil() {
        return Err(problem(
            "NotSupported",
            format!(
                "{} issuers are not supported by Sigil; use ca, selfSigned or sigil",
                t.field()
            ),
        ));
    }
    match t {
        IssuerType::SelfSigned => Ok(Signing::SelfSigned),
        IssuerType::Sigil => {
            let authority = s.ca.active_authority().ok_or_else(|| {
                problem(
                    "CANotReady",
                    "the server has no active CA yet; wait for it to start",
                )
            })?;
            let root = root_of(&authority, &s.ca.trusted_roots());
            let crl_url = s.cfg.crl.url.as_deref().map(|b| authority.crl_url(b));
            Ok(Signing::Authority {
                authority,
                root,
                own_ca: true,
                crl_url,
            })
        }
        _ => {
            let name = spec
                .ca
                .as_ref()
                .map(|c| c.secret_name.as_str())
                .unwrap_or("");
            ca_from_secret(s, secret_ns, name).await
        }
    }
}

/// The root among `roots` that issued the top of `authority`'s chain.
fn root_of(
    authority: &X509Authority,
    roots: &[CertificateDer<'static>],
) -> Option<CertificateDer<'static>> {
    let top = authority
        .chain_tail()
        .last()
        .unwrap_or(authority.cert_der());
    let (_, top) = x509_parser::parse_x509_certificate(top).ok()?;
    roots
        .iter()
        .find(|r| {
            x509_parser::parse_x509_certificate(r)
                .is_ok_and(|(_, c)| c.subject().as_raw() == top.issuer().as_raw())
        })
        .cloned()
}

fn self_signed(der: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
}

async fn ca_from_secret(s: &Shared, ns: &str, name: &str) -> Result<Signing, IssuerProblem> {
    let create = format!(
        "create it with: sigil create secret tls {name} --cert ca.crt --key ca.key -n {ns}"
    );
    let secret = secrets::read_secret(s, ns, name)
        .await
        .map_err(|e| {
            problem(
                "ErrGetKeyPair",
                format!("cannot read Secret {ns}/{name}: {e}"),
            )
        })?
        .ok_or_else(|| {
            problem(
                "ErrGetKeyPair",
                format!("Secret {name:?} not found in namespace {ns:?}; {create}"),
            )
        })?;
    let certs = secret.get("tls.crt").map(pem_certs).unwrap_or_default();
    if certs.is_empty() {
        return Err(problem(
            "ErrGetKeyPair",
            format!("Secret {ns}/{name} has no certificate in tls.crt; {create}"),
        ));
    }
    let key = secret
        .get("tls.key")
        .ok_or_else(|| {
            problem(
                "ErrGetKeyPair",
                format!("Secret {ns}/{name} has no tls.key; {create}"),
            )
        })
        .and_then(|k| {
            PrivateKey::from_pem(k).map_err(|e| {
                problem(
                    "ErrGetKeyPair",
                    format!("Secret {ns}/{name}: tls.key is not a usable private key: {e}"),
                )
            })
        })?;
    // The root: ca.crt when given, else a self-signed last certificate of tls.crt.
    let ca_crt = secret.get("ca.crt").map(pem_certs).unwrap_or_default();
    let mut above: Vec<CertificateDer<'static>> = certs[1..].to_vec();
    let root = if let Some(r) = ca_crt.first() {
        above.retain(|c| c != r);
        Some(r.clone())
    } else if above.last().is_some_and(self_signed) {
        above.pop()
    } else if self_signed(&certs[0]) {
        Some(certs[0].clone())
    } else {
        None
    };
    let signer: Arc<dyn Signer> = Arc::new(key);
    let authority = X509Authority::new(s.cfg.trust_domain.clone(), certs[0].clone(), above, signer)
        .map_err(|e| {
            problem(
                "ErrInvalidKeyPair",
                format!(
                    "Secret {ns}/{name} does not hold a usable CA: {e}; tls.crt must start with a \
                     CA certificate (CA:TRUE, keyCertSign) and tls.key must be its key"
                ),
            )
        })?;
    let now = time::OffsetDateTime::now_utc();
    if now >= authority.not_after() {
        return Err(problem(
            "ErrInvalidKeyPair",
            format!(
                "the CA in Secret {ns}/{name} expired at {}; replace it",
                authority.not_after()
            ),
        ));
    }
    Ok(Signing::Authority {
        authority: Arc::new(authority),
        root,
        own_ca: false,
        crl_url: None,
    })
}
