//! A client of the node API: what an agent uses to attest, renew and fetch SVIDs. The server is
//! authenticated by its SVID (`spiffe://<td>/spire/server`) against the bootstrap bundle.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sigil_proto::node::node_client::NodeClient;
use sigil_proto::node::{self as pb};
use sigil_spiffe::{Bundle, BundleSet, SpiffeId, TrustDomain};
use sigil_tls::{IdMatcher, SpiffeServerVerifier};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::x509pop::challenge_message;

/// An agent's (or any caller's) credential for mTLS.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: Vec<u8>,
}

/// A new key pair and a CSR for it (the SPIFFE ID comes from the server, not the CSR).
pub struct KeyAndCsr {
    pub key: rcgen::KeyPair,
    pub csr_der: Vec<u8>,
}

/// Generates an ECDSA P-256 key and a CSR signed with it.
pub fn new_key_and_csr() -> anyhow::Result<KeyAndCsr> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        csr_der: csr.der().to_vec(),
        key,
    })
}

/// Connects to the node API at `addr`, trusting `roots` for `td` and expecting the server's ID.
pub async fn connect(
    addr: SocketAddr,
    td: &TrustDomain,
    roots: Vec<CertificateDer<'static>>,
    identity: Option<&Identity>,
) -> anyhow::Result<NodeClient<Channel>> {
    let mut set = BundleSet::new();
    set.insert(Bundle::from_x509_authorities(td.clone(), roots)?);
    let server_id = SpiffeId::parse(&crate::authz::server_id(td))?;
    let verifier = Arc::new(SpiffeServerVerifier::new(set, IdMatcher::Exact(server_id)));
    let builder = rustls::ClientConfig::builder_with_provider(sigil_tls::provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder.with_client_auth_cert(
            id.chain.clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_pkcs8.clone())),
        )?,
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    // Bounded waits: an unreachable server (dropped SYNs) must not hold the caller for minutes.
    let channel = Endpoint::try_from(format!("http://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = ServerName::try_from("sigil-server").map_err(std::io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .with_context(|| format!("cannot connect to the Sigil server node API at {addr}"))?;
    Ok(NodeClient::new(channel))
}

/// The result of attestation: the agent's SVID and key.
pub struct Attested {
    pub id: SpiffeId,
    pub identity: Identity,
    pub expires_at: i64,
    pub selectors: Vec<pb::Selector>,
}

fn attested(r: pb::AttestResult, key: &rcgen::KeyPair) -> anyhow::Result<Attested> {
    Ok(Attested {
        id: SpiffeId::parse(&r.spiffe_id)?,
        identity: Identity {
            chain: r.svid_chain.into_iter().map(CertificateDer::from).collect(),
            key_pkcs8: key.serialize_der(),
        },
        expires_at: r.expires_at,
        selectors: r.selectors,
    })
}

async fn run_attestation(
    client: &mut NodeClient<Channel>,
    params: pb::AttestationParams,
    pop_key: Option<&rcgen::KeyPair>,
) -> Result<pb::AttestResult, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let first = pb::AttestAgentRequest {
        step: Some(pb::attest_agent_request::Step::Params(params)),
    };
    tx.send(first)
        .await
        .map_err(|_| tonic::Status::internal("request stream closed"))?;
    let mut resp = client
        .attest_agent(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(msg) = resp.next().await {
        match msg?.step {
            Some(pb::attest_agent_response::Step::Challenge(nonce)) => {
                let key = pop_key.ok_or_else(|| tonic::Status::internal("unexpected challenge"))?;
                let sig =
                    rcgen::SigningKey::sign(key, &challenge_message(&nonce)).map_err(|e| {
                        tonic::Status::internal(format!("cannot sign the challenge: {e}"))
                    })?;
                let step = Some(pb::attest_agent_request::Step::ChallengeResponse(sig));
                tx.send(pb::AttestAgentRequest { step })
                    .await
                    .map_err(|_| tonic::Status::internal("request stream closed"))?;
            }
            Some(pb::attest_agent_response::Step::Result(r)) => return Ok(r),
            None => {}
        }
    }
    Err(tonic::Status::unavailable(
        "server closed the attestation stream without a result",
    ))
}

/// Attests with a join token.
pub async fn attest_join_token(
    client: &mut NodeClient<Channel>,
    token: &str,
) -> Result<Attested, tonic::Status> {
    let kc = new_key_and_csr().map_err(|e| tonic::Status::internal(e.to_string()))?;
    let params = pb::AttestationParams {
        r#type: "join_token".into(),
        join_token: token.into(),
        csr: kc.csr_der.clone(),
        ..Default::default()
    };
    let r = run_attestation(client, params, None).await?;
    attested(r, &kc.key).map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Attests with x509pop: `chain` (leaf first) and the leaf's key.
pub async fn attest_x509pop(
    client: &mut NodeClient<Channel>,
    chain: Vec<Vec<u8>>,
    pop_key: &rcgen::KeyPair,
) -> Result<Attested, tonic::Status> {
    let kc = new_key_and_csr().map_err(|e| tonic::Status::internal(e.to_string()))?;
    let params = pb::AttestationParams {
        r#type: "x509pop".into(),
        x509_chain: chain,
        csr: kc.csr_der.clone(),
        ..Default::default()
    };
    let r = run_attestation(client, params, Some(pop_key)).await?;
    attested(r, &kc.key).map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Renews the agent SVID of the connection's identity.
pub async fn renew(client: &mut NodeClient<Channel>) -> anyhow::Result<(Identity, i64)> {
    let kc = new_key_and_csr()?;
    let r = client
        .renew_agent(pb::RenewAgentRequest { csr: kc.csr_der })
        .await
        .map_err(|s| anyhow!("renewal refused: {}", s.message()))?
        .into_inner();
    if r.svid_chain.is_empty() {
        bail!("server returned an empty SVID chain");
    }
    Ok((
        Identity {
            chain: r.svid_chain.into_iter().map(CertificateDer::from).collect(),
            key_pkcs8: kc.key.serialize_der(),
        },
        r.expires_at,
    ))
}
