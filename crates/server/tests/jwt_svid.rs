//! JWT-SVIDs end to end, in process: a real server on loopback, an agent attested by join
//! token asks `NewJWTSVID` for its entries, and the token validates against the own bundle
//! as the admin API publishes it (SPIFFE JSON with `jwt-svid` keys).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use serde_json::Value;
use sigil_proto::admin::admin_client::AdminClient;
use sigil_proto::admin::{self as api};
use sigil_proto::node::node_client::NodeClient;
use sigil_proto::node::{self as pb};
use sigil_server::config::{FileConfig, ServerConfig};
use sigil_server::node_client::{self, Attested as AttestedAgent};
use sigil_spiffe::{Bundle, TrustDomain, jwt};
use tonic::transport::Channel;

struct Harness {
    bound: sigil_server::Bound,
    admin: AdminClient<Channel>,
    td: TrustDomain,
}

async fn start(data_dir: PathBuf, default_jwt_ttl: Option<&str>) -> Harness {
    start_with(FileConfig {
        data_dir: Some(data_dir),
        default_jwt_svid_ttl: default_jwt_ttl.map(str::to_owned),
        ..Default::default()
    })
    .await
}

async fn start_with(f: FileConfig) -> Harness {
    let f = FileConfig {
        bind_address: Some("127.0.0.1".parse().unwrap()),
        bind_port: Some(0),
        metrics_address: Some("off".into()),
        ..f
    };
    let cfg = ServerConfig::resolve(f).unwrap();
    let td = cfg.trust_domain.clone();
    let bound = sigil_server::build(cfg).await.unwrap();
    let admin = sigil_server::admin_client::connect(&bound.admin_socket)
        .await
        .unwrap();
    Harness { bound, admin, td }
}

impl Harness {
    async fn bundle_response(&mut self) -> api::GetBundleResponse {
        self.admin
            .get_bundle(api::GetBundleRequest::default())
            .await
            .unwrap()
            .into_inner()
    }

    async fn bundle(&mut self) -> Bundle {
        let json = self.bundle_response().await.spiffe_json;
        Bundle::from_spiffe_json(self.td.clone(), &json).unwrap()
    }

    async fn client(&mut self, agent: Option<&AttestedAgent>) -> NodeClient<Channel> {
        let roots: Vec<CertificateDer<'static>> = self
            .bundle_response()
            .await
            .x509_authorities
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        node_client::connect(
            self.bound.node_addr,
            &self.td,
            roots,
            agent.map(|a| &a.identity),
        )
        .await
        .unwrap()
    }

    async fn attest(&mut self) -> AttestedAgent {
        let token = self
            .admin
            .generate_join_token(api::GenerateJoinTokenRequest {
                ttl: 600,
                spiffe_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .token;
        let mut anon = self.client(None).await;
        node_client::attest_join_token(&mut anon, &token)
            .await
            .unwrap()
    }

    async fn entry(&mut self, spiffe_id: &str, parent: &str, jwt_ttl: i32) -> pb::Entry {
        let e = pb::Entry {
            spiffe_id: spiffe_id.into(),
            parent_id: parent.into(),
            selectors: vec![pb::Selector {
                r#type: "unix".into(),
                value: "uid:1000".into(),
            }],
            jwt_svid_ttl: jwt_ttl,
            ..Default::default()
        };
        self.admin
            .create_entry(api::CreateEntryRequest { entry: Some(e) })
            .await
            .unwrap()
            .into_inner()
    }
}

fn req(entry_id: &str, audience: &[&str]) -> pb::NewJwtsvidRequest {
    pb::NewJwtsvidRequest {
        entry_id: entry_id.into(),
        audience: audience.iter().map(|a| (*a).to_owned()).collect(),
    }
}

fn now() -> u64 {
    sigil_server::state::now_unix() as u64
}

#[tokio::test]
async fn agent_gets_jwt_svids_for_its_entries_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(dir.path().to_owned(), Some("2m")).await;
    let agent = h.attest().await;
    let mine = h
        .entry(
            "spiffe://cluster.local/ns/payments/sa/billing",
            agent.id.as_str(),
            600,
        )
        .await;
    let defaulted = h
        .entry(
            "spiffe://cluster.local/ns/payments/sa/reports",
            agent.id.as_str(),
            0,
        )
        .await;
    let other = h
        .entry(
            "spiffe://cluster.local/ns/payments/sa/other",
            "spiffe://cluster.local/spire/agent/join_token/someone-else",
            600,
        )
        .await;

    // The published bundle carries the JWT key, as SPIFFE JSON.
    let json: Value = serde_json::from_slice(&h.bundle_response().await.spiffe_json).unwrap();
    let jwt_keys: Vec<&Value> = json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["use"] == "jwt-svid")
        .collect();
    assert_eq!(jwt_keys.len(), 1, "{json}");
    let kid = jwt_keys[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(kid.len(), 32);
    assert_eq!(jwt_keys[0]["kty"], "EC");
    assert_eq!(jwt_keys[0]["alg"], "ES256");

    let mut c = h.client(Some(&agent)).await;
    let before = now();
    let r = c
        .new_jwtsvid(req(&mine.id, &["spiffe://cluster.local/reports"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.spiffe_id, "spiffe://cluster.local/ns/payments/sa/billing");
    let exp = r.expires_at as u64;
    assert!(exp <= now() + 600 && exp >= before + 600 - 2, "exp {exp}");

    let bundle = h.bundle().await;
    let v = jwt::validate(&r.token, "spiffe://cluster.local/reports", &bundle, now()).unwrap();
    assert_eq!(v.id.as_str(), r.spiffe_id);
    assert_eq!(v.claims["exp"].as_u64(), Some(exp));
    let (header, _) = jwt::parse_unverified(&r.token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
    assert!(matches!(
        jwt::validate(&r.token, "someone-else", &bundle, now()),
        Err(sigil_spiffe::JwtError::AudienceMismatch { .. })
    ));

    // An entry without jwt_svid_ttl gets the server default (2m here).
    let r = c
        .new_jwtsvid(req(&defaulted.id, &["a", "b"]))
        .await
        .unwrap()
        .into_inner();
    let exp = r.expires_at as u64;
    assert!(exp <= now() + 120 && exp + 5 >= now() + 120, "exp {exp}");
    jwt::validate(&r.token, "b", &bundle, now()).unwrap();

    // Refusals say why.
    let cases: [(&str, pb::NewJwtsvidRequest, tonic::Code, &str); 5] = [
        (
            "entry of another agent",
            req(&other.id, &["x"]),
            tonic::Code::PermissionDenied,
            "someone-else",
        ),
        (
            "unknown entry",
            req("no-such-entry", &["x"]),
            tonic::Code::PermissionDenied,
            "does not exist",
        ),
        (
            "no audience",
            req(&mine.id, &[]),
            tonic::Code::InvalidArgument,
            "audience is required",
        ),
        (
            "empty audience",
            req(&mine.id, &[""]),
            tonic::Code::InvalidArgument,
            "must not be empty",
        ),
        (
            "no entry",
            req("", &["x"]),
            tonic::Code::InvalidArgument,
            "entry_id is required",
        ),
    ];
    for (name, r, code, needle) in cases {
        let e = c.new_jwtsvid(r).await.unwrap_err();
        assert_eq!(e.code(), code, "{name}: {}", e.message());
        assert!(e.message().contains(needle), "{name}: {}", e.message());
    }

    // Without an agent SVID the call is refused before anything else.
    let mut anon = h.client(None).await;
    let e = anon.new_jwtsvid(req(&mine.id, &["x"])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    let metrics = h.bound.shared.metrics.encode();
    for (result, n) in [("ok", 2), ("unauthorized", 2), ("invalid", 3)] {
        let line =
            format!("sigil_server_svids_issued_total{{kind=\"jwt-svid\",result=\"{result}\"}} {n}");
        assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
    }
    h.bound.shutdown().await;
}

#[tokio::test]
async fn jwt_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(dir.path().to_owned(), None).await;
    let agent = h.attest().await;
    let e = h
        .entry("spiffe://cluster.local/w", agent.id.as_str(), 0)
        .await;
    let mut c = h.client(Some(&agent)).await;
    let r = c
        .new_jwtsvid(req(&e.id, &["x"]))
        .await
        .unwrap()
        .into_inner();
    let exp = r.expires_at as u64;
    assert!(
        exp <= now() + 300 && exp + 5 >= now() + 300,
        "default 5m: {exp}"
    );
    let kids_before: Vec<String> = h.bundle().await.jwt_authorities().keys().cloned().collect();
    drop(c);
    h.bound.shutdown().await;

    let mut h = start(dir.path().to_owned(), None).await;
    let bundle = h.bundle().await;
    let kids_after: Vec<String> = bundle.jwt_authorities().keys().cloned().collect();
    assert_eq!(
        kids_after, kids_before,
        "the same key is loaded, not a new one"
    );
    jwt::validate(&r.token, "x", &bundle, now()).unwrap();
    let mut c = h.client(Some(&agent)).await;
    let r2 = c
        .new_jwtsvid(req(&e.id, &["x"]))
        .await
        .unwrap()
        .into_inner();
    let (h2, _) = jwt::parse_unverified(&r2.token).unwrap();
    assert_eq!(h2.kid.as_deref(), Some(kids_before[0].as_str()));
    h.bound.shutdown().await;
}

/// With 12-second keys the whole lifecycle runs in the test: the first key is joined by its
/// successor, and once expired it leaves the published bundle and the retired list.
#[tokio::test]
async fn expired_jwt_keys_leave_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start_with(FileConfig {
        data_dir: Some(dir.path().to_owned()),
        ca_ttl: Some("12s".into()),
        default_x509_svid_ttl: Some("5s".into()),
        ..Default::default()
    })
    .await;
    let first: Vec<String> = h.bundle().await.jwt_authorities().keys().cloned().collect();
    assert_eq!(first.len(), 1);
    let mut saw_two = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let kids: Vec<String> = h.bundle().await.jwt_authorities().keys().cloned().collect();
        saw_two |= kids.len() >= 2 && kids.contains(&first[0]);
        if !kids.contains(&first[0]) {
            assert!(!kids.is_empty(), "a successor key is published");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "key {} never left the bundle",
            first[0]
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        saw_two,
        "the successor was published while the first key was still there"
    );
    // The journal drops the key at once, and its retired mark right after the bundle update.
    let s = h.bound.shared.clone();
    loop {
        let bytes =
            s.ds.get_ca_journal(&format!("{}/jwt", s.server_id))
                .await
                .unwrap()
                .unwrap();
        let journal =
            sigil_ca::JwtJournal::from_json(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert!(journal.get(&first[0]).is_none());
        if journal.retired.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still retired: {:?}",
            journal.retired
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    h.bound.shutdown().await;
}
