//! Mesh configuration from `apply` on the server to the agents' MeshConfig service: pushed to
//! every connected agent, refused batches change nothing, and an agent restarted while the
//! server is down serves the persisted configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sigil_agent::config::{AgentConfig, FileConfig as AgentFile};
use sigil_proto::admin::{self as api, admin_client::AdminClient};
use sigil_proto::config::{ConfigSnapshot, GetConfigRequest, WatchConfigRequest};
use sigil_server::config::{FileConfig, ServerConfig};
use tonic::transport::Channel;

const STRICT: &str = "apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: payments
spec:
  mtls:
    mode: STRICT
";

const AUTHZ: &str = "apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: billing-service-policy
  namespace: payments
spec:
  selector:
    matchLabels:
      app: billing-service
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/payments/sa/checkout-service
";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server(dir: &Path, port: u16) -> (sigil_server::Bound, AdminClient<Channel>) {
    let f = FileConfig {
        data_dir: Some(dir.to_owned()),
        bind_address: Some("127.0.0.1".parse().unwrap()),
        bind_port: Some(port),
        metrics_address: Some("off".into()),
        ..FileConfig::default()
    };
    let bound = sigil_server::build(ServerConfig::resolve(f).unwrap())
        .await
        .unwrap();
    let admin = sigil_server::admin_client::connect(&bound.admin_socket)
        .await
        .unwrap();
    (bound, admin)
}

async fn bundle_file(admin: &mut AdminClient<Channel>, dir: &Path) -> PathBuf {
    let b = admin
        .get_bundle(api::GetBundleRequest::default())
        .await
        .unwrap()
        .into_inner();
    let certs: Vec<rustls_pki_types::CertificateDer<'_>> = b
        .x509_authorities
        .iter()
        .map(|c| c.as_slice().into())
        .collect();
    let p = dir.join("bundle.pem");
    std::fs::write(&p, sigil_spiffe::pem::encode_certificates(&certs)).unwrap();
    p
}

async fn token(admin: &mut AdminClient<Channel>) -> String {
    admin
        .generate_join_token(api::GenerateJoinTokenRequest {
            ttl: 600,
            spiffe_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

fn agent_cfg(dir: &Path, port: u16, bundle: &Path, token: Option<String>) -> AgentConfig {
    AgentConfig::resolve(AgentFile {
        server_address: Some(format!("127.0.0.1:{port}")),
        trust_bundle: Some(bundle.to_owned()),
        join_token: token,
        data_dir: Some(dir.join("data")),
        socket_path: Some(dir.join("api.sock")),
        sync_interval: Some("1s".into()),
        ..Default::default()
    })
    .unwrap()
}

async fn apply(admin: &mut AdminClient<Channel>, text: &str) -> api::ApplyConfigResponse {
    admin
        .apply_config(api::ApplyConfigRequest {
            documents: vec![api::ConfigDocument {
                file_name: "test.yaml".into(),
                text: text.into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Waits (bounded) for the next snapshot on a watch stream.
async fn next(s: &mut tonic::Streaming<ConfigSnapshot>) -> ConfigSnapshot {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("no configuration pushed within 10 s")
        .unwrap()
        .expect("stream ended")
}

fn names(s: &ConfigSnapshot) -> Vec<String> {
    s.resources
        .iter()
        .map(|r| format!("{}/{}/{}", r.kind, r.namespace, r.name))
        .collect()
}

#[tokio::test]
async fn apply_reaches_every_agent_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, mut admin) = start_server(&dir.path().join("server"), port).await;
    let bundle = bundle_file(&mut admin, dir.path()).await;

    let mut agents = Vec::new();
    for i in 0..2 {
        let t = token(&mut admin).await;
        let a_dir = dir.path().join(format!("agent{i}"));
        agents.push(
            sigil_agent::build(agent_cfg(&a_dir, port, &bundle, Some(t)))
                .await
                .unwrap(),
        );
    }
    let mut watches = Vec::new();
    for a in &agents {
        let mut c = sigil_agent::client::connect_config(&a.socket_path)
            .await
            .unwrap();
        watches.push(
            c.watch_config(WatchConfigRequest { known_revision: 0 })
                .await
                .unwrap()
                .into_inner(),
        );
    }

    // One apply, two objects: both agents get the same revision with both objects.
    let started = Instant::now();
    let applied = apply(&mut admin, &format!("{STRICT}---\n{AUTHZ}")).await;
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    let outcomes: Vec<_> = applied
        .outcomes
        .iter()
        .map(|o| o.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["created", "created"]);
    for w in &mut watches {
        let mut s = next(w).await;
        while s.revision < applied.revision {
            s = next(w).await;
        }
        assert_eq!(s.revision, applied.revision);
        assert_eq!(
            names(&s),
            [
                "AuthorizationPolicy/payments/billing-service-policy",
                "PeerAuthentication/payments/default"
            ]
        );
        let pa = s
            .resources
            .iter()
            .find(|r| r.kind == "PeerAuthentication")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&pa.json).unwrap();
        assert_eq!(v["metadata"]["generation"], 1);
        assert_eq!(v["spec"]["mtls"]["mode"], "STRICT");
        assert!(
            v["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }
    println!("apply → both agents: {:?}", started.elapsed());

    // An invalid batch (one good document, one bad) stores and pushes nothing.
    let bad = format!(
        "{}---\n{}",
        STRICT.replace("STRICT", "PERMISSIVE"),
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: broken\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICTEST\n"
    );
    let refused = apply(&mut admin, &bad).await;
    assert!(refused.outcomes.is_empty());
    assert!(
        refused.errors[0].contains("test.yaml:") && refused.errors[0].contains("STRICTEST"),
        "{:?}",
        refused.errors
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), watches[0].message())
            .await
            .is_err(),
        "a refused apply must not push a configuration"
    );

    // A spec change bumps the generation; a delete removes the object.
    let changed = apply(&mut admin, &STRICT.replace("STRICT", "PERMISSIVE")).await;
    assert_eq!(changed.outcomes[0].outcome, "configured");
    let s = next(&mut watches[1]).await;
    let pa = s
        .resources
        .iter()
        .find(|r| r.kind == "PeerAuthentication")
        .unwrap();
    assert_eq!(pa.generation, 2);
    let deleted = admin
        .delete_config(api::DeleteConfigRequest {
            keys: vec![api::ConfigKey {
                kind: "ap".into(),
                namespace: "payments".into(),
                name: "billing-service-policy".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.outcomes[0].outcome, "deleted");
    let s = next(&mut watches[1]).await;
    assert_eq!(names(&s), ["PeerAuthentication/payments/default"]);
    let last_revision = s.revision;
    // Agent 0 holds (and has persisted) the same revision before it is stopped.
    let mut s0 = next(&mut watches[0]).await;
    while s0.revision < last_revision {
        s0 = next(&mut watches[0]).await;
    }
    assert_eq!(names(&s0), ["PeerAuthentication/payments/default"]);
    drop(watches);

    // Server down, agent restarted: the persisted configuration is served at once.
    let agent = agents.remove(0);
    let a_dir = dir.path().join("agent0");
    agent.shutdown().await;
    server.shutdown().await;
    let persisted = a_dir.join("data").join(sigil_agent::mesh_config::FILE_NAME);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&persisted).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let restarted = sigil_agent::build(agent_cfg(&a_dir, port, &bundle, None))
        .await
        .unwrap();
    let mut c = sigil_agent::client::connect_config(&restarted.socket_path)
        .await
        .unwrap();
    let got = c
        .get_config(GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.revision, last_revision);
    assert_eq!(names(&got), ["PeerAuthentication/payments/default"]);
    restarted.shutdown().await;
    for a in agents {
        a.shutdown().await;
    }
}

#[tokio::test]
async fn an_agent_without_configuration_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, mut admin) = start_server(&dir.path().join("server"), port).await;
    let bundle = bundle_file(&mut admin, dir.path()).await;
    let t = token(&mut admin).await;
    let agent = sigil_agent::build(agent_cfg(dir.path(), port, &bundle, Some(t)))
        .await
        .unwrap();
    let mut c = sigil_agent::client::connect_config(&agent.socket_path)
        .await
        .unwrap();
    // An empty store is still a configuration (revision 0 from the server): the agent holds
    // it once the stream is up. Until then GetConfig says what is missing.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.get_config(GetConfigRequest {}).await {
            Ok(s) => {
                assert!(s.into_inner().resources.is_empty());
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable);
                assert!(e.message().contains("no mesh configuration yet"), "{e}");
            }
        }
        assert!(Instant::now() < deadline, "no configuration after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.shutdown().await;
    server.shutdown().await;
}
