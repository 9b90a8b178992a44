//! The node API end to end, in process: a real server on loopback, real TLS, a real SQLite
//! file; agents attest by join token and x509pop and get workload SVIDs signed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use sigil_proto::admin::admin_client::AdminClient;
use sigil_proto::admin::{self as api};
use sigil_proto::node::{self as pb};
use sigil_server::config::{FileConfig, ServerConfig};
use sigil_server::node_client::{self, Identity};
use sigil_spiffe::{Bundle, SpiffeId, TrustDomain, Usage, verify_x509_svid};
use tonic::transport::Channel;

struct Harness {
    _dir: tempfile::TempDir,
    bound: sigil_server::Bound,
    admin: AdminClient<Channel>,
    td: TrustDomain,
}

async fn start(extra: impl FnOnce(&mut FileConfig, &Path)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut f = FileConfig {
        data_dir: Some(dir.path().to_owned()),
        bind_address: Some("127.0.0.1".parse().unwrap()),
        bind_port: Some(0),
        metrics_address: Some("off".into()),
        ..Default::default()
    };
    extra(&mut f, dir.path());
    let cfg = ServerConfig::resolve(f).unwrap();
    let td = cfg.trust_domain.clone();
    let bound = sigil_server::build(cfg).await.unwrap();
    let admin = sigil_server::admin_client::connect(&bound.admin_socket)
        .await
        .unwrap();
    Harness {
        _dir: dir,
        bound,
        admin,
        td,
    }
}

impl Harness {
    async fn roots(&mut self) -> Vec<CertificateDer<'static>> {
        let b = self
            .admin
            .get_bundle(api::GetBundleRequest::default())
            .await
            .unwrap()
            .into_inner();
        b.x509_authorities
            .into_iter()
            .map(CertificateDer::from)
            .collect()
    }

    async fn client(
        &mut self,
        id: Option<&Identity>,
    ) -> sigil_proto::node::node_client::NodeClient<Channel> {
        let roots = self.roots().await;
        node_client::connect(self.bound.node_addr, &self.td, roots, id)
            .await
            .unwrap()
    }

    async fn token(&mut self, ttl: i32, spiffe_id: &str) -> String {
        let req = api::GenerateJoinTokenRequest {
            ttl,
            spiffe_id: spiffe_id.into(),
        };
        self.admin
            .generate_join_token(req)
            .await
            .unwrap()
            .into_inner()
            .token
    }

    async fn entry(
        &mut self,
        spiffe_id: &str,
        parent: &str,
        selectors: &[&str],
        ttl: i32,
    ) -> pb::Entry {
        let selectors = selectors
            .iter()
            .map(|s| {
                let (t, v) = s.split_once(':').unwrap();
                pb::Selector {
                    r#type: t.into(),
                    value: v.into(),
                }
            })
            .collect();
        let e = pb::Entry {
            spiffe_id: spiffe_id.into(),
            parent_id: parent.into(),
            selectors,
            x509_svid_ttl: ttl,
            ..Default::default()
        };
        self.admin
            .create_entry(api::CreateEntryRequest { entry: Some(e) })
            .await
            .unwrap()
            .into_inner()
    }

    async fn verify(&mut self, chain: &[Vec<u8>]) -> sigil_spiffe::VerifiedSvid {
        let roots = self.roots().await;
        let b = Bundle::from_x509_authorities(self.td.clone(), roots).unwrap();
        let chain: Vec<CertificateDer<'_>> = chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        verify_x509_svid(&chain, &b, UnixTime::now(), Usage::Any).unwrap()
    }
}

fn csr() -> Vec<u8> {
    node_client::new_key_and_csr().unwrap().csr_der
}

#[tokio::test]
async fn join_token_agent_gets_only_its_entries_signed() {
    let mut h = start(|_, _| {}).await;
    let token = h.token(600, "").await;
    let mut anon = h.client(None).await;
    let agent = node_client::attest_join_token(&mut anon, &token)
        .await
        .unwrap();
    assert_eq!(
        agent.id.as_str(),
        format!("spiffe://cluster.local/spire/agent/join_token/{token}")
    );
    let chain: Vec<Vec<u8>> = agent.identity.chain.iter().map(|c| c.to_vec()).collect();
    assert_eq!(h.verify(&chain).await.id(), &agent.id);

    // Single use: the same token again is refused and says why.
    let again = node_client::attest_join_token(&mut anon, &token)
        .await
        .err()
        .unwrap();
    assert_eq!(again.code(), tonic::Code::PermissionDenied);
    assert!(
        again.message().contains("already used"),
        "{}",
        again.message()
    );

    let mine = h
        .entry(
            "spiffe://cluster.local/ns/payments/sa/billing",
            agent.id.as_str(),
            &["unix:uid:1000"],
            600,
        )
        .await;
    let other = h
        .entry(
            "spiffe://cluster.local/ns/payments/sa/other",
            "spiffe://cluster.local/spire/agent/join_token/someone-else",
            &["unix:uid:1001"],
            0,
        )
        .await;

    let mut c = h.client(Some(&agent.identity)).await;
    let listed = c
        .get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(
        listed.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![mine.id.clone()]
    );

    let bad_csr = {
        let mut c = csr();
        let n = c.len();
        c[n - 5] ^= 0xff; // break the CSR's self-signature
        c
    };
    let resp = c
        .batch_new_x509svid(pb::BatchNewX509svidRequest {
            params: vec![
                pb::NewX509svidParams {
                    entry_id: mine.id.clone(),
                    csr: csr(),
                },
                pb::NewX509svidParams {
                    entry_id: other.id.clone(),
                    csr: csr(),
                },
                pb::NewX509svidParams {
                    entry_id: mine.id.clone(),
                    csr: bad_csr,
                },
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(resp[0].error_code, 0, "{}", resp[0].error_message);
    let v = h.verify(&resp[0].cert_chain).await;
    assert_eq!(
        v.id().as_str(),
        "spiffe://cluster.local/ns/payments/sa/billing"
    );
    let now = sigil_server::state::now_unix() as u64;
    assert!(
        v.not_after() <= now + 600 && v.not_after() + 120 >= now + 600,
        "TTL 600s not honoured: {}",
        v.not_after()
    );
    assert_eq!(resp[1].error_code, tonic::Code::PermissionDenied as i32);
    assert!(
        resp[1].error_message.contains("someone-else"),
        "{}",
        resp[1].error_message
    );
    assert!(resp[1].cert_chain.is_empty());
    assert_eq!(resp[2].error_code, tonic::Code::InvalidArgument as i32);
    assert!(resp[2].cert_chain.is_empty());
    h.bound.shutdown().await;
}

#[tokio::test]
async fn expired_token_and_missing_client_cert_are_refused() {
    let mut h = start(|_, _| {}).await;
    let token = h.token(1, "").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut anon = h.client(None).await;
    let e = node_client::attest_join_token(&mut anon, &token)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("expired"), "{}", e.message());
    let e = anon
        .get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let e = node_client::attest_join_token(&mut anon, "no-such-token")
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    h.bound.shutdown().await;
}

#[tokio::test]
async fn renewal_retires_the_old_svid_and_eviction_and_ban_lock_out() {
    let mut h = start(|_, _| {}).await;
    let token = h.token(600, "spiffe://cluster.local/node/web-1").await;
    let mut anon = h.client(None).await;
    let agent = node_client::attest_join_token(&mut anon, &token)
        .await
        .unwrap();
    // The token's -spiffeID aliased the agent: entries under the alias are authorized.
    let via_alias = h
        .entry(
            "spiffe://cluster.local/app/web",
            "spiffe://cluster.local/node/web-1",
            &["unix:uid:33"],
            0,
        )
        .await;
    let mut old = h.client(Some(&agent.identity)).await;
    let listed = old
        .get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(listed.iter().any(|e| e.id == via_alias.id), "{listed:?}");

    let (renewed, _) = node_client::renew(&mut old).await.unwrap();
    // The old SVID keeps working until the new one is used...
    old.get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
        .await
        .unwrap();
    let mut new = h.client(Some(&renewed)).await;
    new.get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
        .await
        .unwrap();
    // ...then it is superseded.
    let mut old_again = h.client(Some(&agent.identity)).await;
    let e = old_again
        .get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("not its current"), "{}", e.message());

    let req = api::GetAgentRequest {
        spiffe_id: agent.id.to_string(),
    };
    h.admin.ban_agent(req.clone()).await.unwrap();
    let e = new
        .get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
        .await
        .unwrap_err();
    assert!(e.message().contains("banned"), "{}", e.message());
    h.admin.evict_agent(req).await.unwrap();
    let e = new
        .get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
        .await
        .unwrap_err();
    assert!(e.message().contains("not attested"), "{}", e.message());
    h.bound.shutdown().await;
}

/// A test PKI for x509pop: a node CA and a node certificate with CN `node-1`.
fn node_pki(dir: &Path) -> (std::path::PathBuf, Vec<Vec<u8>>, rcgen::KeyPair) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "node CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let node_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["node-1.example".into()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "node-1");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = p.signed_by(&node_key, &issuer).unwrap();
    let path = dir.join("x509pop-ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    (path, vec![leaf.der().to_vec()], node_key)
}

#[tokio::test]
async fn x509pop_agent_is_matched_by_a_node_alias() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (ca_path, chain, key) = node_pki(pki_dir.path());
    let mut h = start(|f, _| f.x509pop_ca_bundle = Some(ca_path.clone())).await;
    let mut anon = h.client(None).await;
    let agent = node_client::attest_x509pop(&mut anon, chain.clone(), &key)
        .await
        .unwrap();
    assert!(
        agent.id.path().starts_with("/spire/agent/x509pop/"),
        "{}",
        agent.id
    );
    assert!(
        agent
            .selectors
            .iter()
            .any(|s| s.value == "subject:cn:node-1"),
        "{:?}",
        agent.selectors
    );

    // A node alias (parented to the server) with the agent's selector, and a workload under it.
    h.entry(
        "spiffe://cluster.local/nodes/web",
        "spiffe://cluster.local/spire/server",
        &["x509pop:subject:cn:node-1"],
        0,
    )
    .await;
    let w = h
        .entry(
            "spiffe://cluster.local/app/api",
            "spiffe://cluster.local/nodes/web",
            &["unix:uid:1"],
            0,
        )
        .await;
    let mut c = h.client(Some(&agent.identity)).await;
    let res = c
        .batch_new_x509svid(pb::BatchNewX509svidRequest {
            params: vec![pb::NewX509svidParams {
                entry_id: w.id.clone(),
                csr: csr(),
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(res[0].error_code, 0, "{}", res[0].error_message);
    assert_eq!(
        h.verify(&res[0].cert_chain).await.id(),
        &SpiffeId::parse("spiffe://cluster.local/app/api").unwrap()
    );

    // x509pop agents may re-attest with the same certificate (same ID)...
    let again = node_client::attest_x509pop(&mut anon, chain.clone(), &key)
        .await
        .unwrap();
    assert_eq!(again.id, agent.id);
    // ...but a wrong key cannot answer the challenge.
    let wrong = rcgen::KeyPair::generate().unwrap();
    let e = node_client::attest_x509pop(&mut anon, chain, &wrong)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("signature"), "{}", e.message());
    h.bound.shutdown().await;
}

#[tokio::test]
async fn x509pop_is_refused_when_not_enabled() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (_, chain, key) = node_pki(pki_dir.path());
    let mut h = start(|_, _| {}).await;
    let mut anon = h.client(None).await;
    let e = node_client::attest_x509pop(&mut anon, chain, &key)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains("--x509pop-ca-bundle"),
        "{}",
        e.message()
    );
    h.bound.shutdown().await;
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn metrics_count_issued_and_refused_svids() {
    let mut h = start(|f, _| f.metrics_address = Some("127.0.0.1:0".into())).await;
    let token = h.token(600, "").await;
    let mut anon = h.client(None).await;
    let agent = node_client::attest_join_token(&mut anon, &token)
        .await
        .unwrap();
    let mine = h
        .entry(
            "spiffe://cluster.local/a",
            agent.id.as_str(),
            &["unix:uid:1"],
            0,
        )
        .await;
    let other = h
        .entry(
            "spiffe://cluster.local/b",
            "spiffe://cluster.local/spire/agent/x/y",
            &["unix:uid:2"],
            0,
        )
        .await;
    let mut c = h.client(Some(&agent.identity)).await;
    c.batch_new_x509svid(pb::BatchNewX509svidRequest {
        params: vec![
            pb::NewX509svidParams {
                entry_id: mine.id,
                csr: csr(),
            },
            pb::NewX509svidParams {
                entry_id: other.id,
                csr: csr(),
            },
        ],
    })
    .await
    .unwrap();
    let text = scrape(h.bound.metrics_addr.unwrap()).await;
    for line in [
        "sigil_server_svids_issued_total{kind=\"x509-svid\",result=\"ok\"} 1",
        "sigil_server_svids_issued_total{kind=\"x509-svid\",result=\"unauthorized\"} 1",
        "sigil_server_svids_issued_total{kind=\"agent-svid\",result=\"ok\"} 1",
        "sigil_server_node_attestations_total{method=\"join_token\",result=\"ok\"} 1",
        "sigil_server_entries 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let expiry = text
        .lines()
        .find_map(|l| l.strip_prefix("sigil_server_ca_expiry_timestamp_seconds "))
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert!(
        expiry > sigil_server::state::now_unix() + 23 * 3600,
        "{expiry}"
    );
    h.bound.shutdown().await;
}

/// Real time, short CA life: the next CA is published before it signs, and the old root stays
/// trusted until it expires, so an SVID issued before the switch verifies throughout.
#[tokio::test]
async fn ca_rotation_publishes_before_use_and_keeps_the_old_root() {
    let mut h = start(|f, _| {
        f.ca_ttl = Some("24s".into());
        f.default_x509_svid_ttl = Some("3s".into());
    })
    .await;
    let roots0 = h.roots().await;
    assert_eq!(roots0.len(), 1);
    let token = h.token(600, "").await;
    let mut anon = h.client(None).await;
    let agent = node_client::attest_join_token(&mut anon, &token)
        .await
        .unwrap();
    // A TTL longer than the CA's life: SVIDs are clamped to the signing CA's notAfter.
    let e = h
        .entry(
            "spiffe://cluster.local/w",
            agent.id.as_str(),
            &["unix:uid:1"],
            3600,
        )
        .await;
    let sign = |h: &mut Harness| {
        let id = agent.identity.chain.clone();
        let key = agent.identity.key_pkcs8.clone();
        let entry = e.id.clone();
        let roots = conn_params(h);
        async move {
            let identity = Identity {
                chain: id,
                key_pkcs8: key,
            };
            let mut c = node_client::connect(roots.1, &roots.0, roots.2, Some(&identity))
                .await
                .unwrap();
            let r = c
                .batch_new_x509svid(pb::BatchNewX509svidRequest {
                    params: vec![pb::NewX509svidParams {
                        entry_id: entry,
                        csr: csr(),
                    }],
                })
                .await
                .unwrap()
                .into_inner()
                .results;
            assert_eq!(r[0].error_code, 0, "{}", r[0].error_message);
            r[0].cert_chain.clone()
        }
    };
    let first = sign(&mut h).await;
    let only_old = Bundle::from_x509_authorities(h.td.clone(), roots0.clone()).unwrap();
    let verifies = |chain: &[Vec<u8>], b: &Bundle| {
        let chain: Vec<CertificateDer<'_>> = chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        verify_x509_svid(&chain, b, UnixTime::now(), Usage::Any).is_ok()
    };
    assert!(verifies(&first, &only_old));

    // Prepared: two roots published while the old CA still signs.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let roots = loop {
        let r = h.roots().await;
        if r.len() == 2 {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "next CA never published"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(roots.contains(&roots0[0]));
    let new_root: Vec<_> = roots.iter().filter(|r| **r != roots0[0]).cloned().collect();
    let only_new = Bundle::from_x509_authorities(h.td.clone(), new_root).unwrap();
    let both = Bundle::from_x509_authorities(h.td.clone(), roots.clone()).unwrap();
    let prepared_phase = sign(&mut h).await;
    assert!(
        verifies(&prepared_phase, &only_old),
        "a prepared CA must not sign yet"
    );
    assert!(!verifies(&prepared_phase, &only_new));

    // Activated: new SVIDs chain to the new root; the old root is still in the bundle and the
    // first SVID (clamped to the old CA's life) still verifies.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = sign(&mut h).await;
        if verifies(&s, &only_new) {
            assert!(!verifies(&s, &only_old));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "next CA never activated"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let current = h.roots().await;
    assert!(
        current.contains(&roots0[0]),
        "old root left the bundle before it expired"
    );
    let current = Bundle::from_x509_authorities(h.td.clone(), current).unwrap();
    assert!(
        verifies(&first, &current),
        "an SVID of the old CA lost trust while still valid"
    );
    assert!(verifies(&first, &both));
    let first_leaf = x509_parser::parse_x509_certificate(&first[0]).unwrap().1;
    let old_root = x509_parser::parse_x509_certificate(&roots0[0]).unwrap().1;
    assert!(
        first_leaf.validity().not_after.timestamp() <= old_root.validity().not_after.timestamp(),
        "SVID outlives its CA"
    );
    h.bound.shutdown().await;
}

fn conn_params(
    h: &mut Harness,
) -> (
    TrustDomain,
    std::net::SocketAddr,
    Vec<CertificateDer<'static>>,
) {
    // Where to connect, and the own bundle as the server currently publishes it.
    (
        h.td.clone(),
        h.bound.node_addr,
        h.bound.shared.ca.trusted_roots(),
    )
}

/// The configuration stream: only attested agents; the current snapshot at once for an agent
/// holding nothing; nothing for one already holding the current revision (resume after a
/// reconnect); then one snapshot per change; an evicted agent's stream is closed.
#[tokio::test]
async fn config_stream_resumes_from_the_agents_revision() {
    use sigil_proto::config::WatchConfigRequest;
    let mut h = start(|_, _| {}).await;
    let mut anon = h.client(None).await;
    let refused = anon
        .stream_config(WatchConfigRequest { known_revision: 0 })
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let token = h.token(600, "").await;
    let agent = node_client::attest_join_token(&mut anon, &token)
        .await
        .unwrap();
    let mut c = h.client(Some(&agent.identity)).await;
    let apply = |text: &'static str| api::ApplyConfigRequest {
        documents: vec![api::ConfigDocument {
            file_name: "pa.yaml".into(),
            text: text.into(),
        }],
        ..Default::default()
    };
    let applied = h
        .admin
        .apply_config(apply("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICT\n"))
        .await
        .unwrap()
        .into_inner();
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);

    let mut fresh = c
        .stream_config(WatchConfigRequest { known_revision: 0 })
        .await
        .unwrap()
        .into_inner();
    let first = fresh.message().await.unwrap().unwrap();
    assert_eq!(first.revision, applied.revision);
    assert_eq!(first.resources.len(), 1);

    let mut resumed = c
        .stream_config(WatchConfigRequest {
            known_revision: applied.revision,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(800), resumed.message())
            .await
            .is_err(),
        "an agent holding the current revision must not be sent it again"
    );

    // A change is pushed on the open stream.
    let changed = h
        .admin
        .apply_config(apply("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: PERMISSIVE\n"))
        .await
        .unwrap()
        .into_inner();
    let next = tokio::time::timeout(Duration::from_secs(5), resumed.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.revision, changed.revision);
    assert!(next.resources[0].json.contains("PERMISSIVE"));

    // Eviction: the next push is refused on the open stream.
    h.admin
        .evict_agent(api::GetAgentRequest {
            spiffe_id: agent.id.to_string(),
        })
        .await
        .unwrap();
    h.admin
        .apply_config(apply(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: payments\n",
        ))
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), resumed.message())
        .await
        .unwrap();
    assert_eq!(end.unwrap_err().code(), tonic::Code::PermissionDenied);
    h.bound.shutdown().await;
}
