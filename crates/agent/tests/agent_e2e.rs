//! Server and agent in process, real sockets: an entry for this process's uid yields an SVID
//! over the Workload API; the agent survives server outages and restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sigil_agent::config::{AgentConfig, FileConfig as AgentFile};
use sigil_proto::admin::admin_client::AdminClient;
use sigil_proto::admin::{self as api};
use sigil_proto::node as pb;
use sigil_proto::workload as wl;
use sigil_server::config::{FileConfig, ServerConfig};
use tonic::transport::Channel;

fn my_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct Server {
    bound: sigil_server::Bound,
    admin: AdminClient<Channel>,
}

async fn start_server(dir: &Path, port: u16) -> Server {
    start_server_with(dir, port, FileConfig::default()).await
}

async fn start_server_with(dir: &Path, port: u16, base: FileConfig) -> Server {
    let f = FileConfig {
        data_dir: Some(dir.to_owned()),
        bind_address: Some("127.0.0.1".parse().unwrap()),
        bind_port: Some(port),
        metrics_address: Some("off".into()),
        ..base
    };
    let bound = sigil_server::build(ServerConfig::resolve(f).unwrap())
        .await
        .unwrap();
    let admin = sigil_server::admin_client::connect(&bound.admin_socket)
        .await
        .unwrap();
    Server { bound, admin }
}

impl Server {
    async fn token(&mut self) -> String {
        let r = api::GenerateJoinTokenRequest {
            ttl: 600,
            spiffe_id: String::new(),
        };
        self.admin
            .generate_join_token(r)
            .await
            .unwrap()
            .into_inner()
            .token
    }

    async fn bundle_file(&mut self, dir: &Path) -> PathBuf {
        let b = self
            .admin
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

    async fn entry(&mut self, spiffe_id: &str, parent: &str, selector: &str, ttl: i32) -> String {
        let (t, v) = selector.split_once(':').unwrap();
        let e = pb::Entry {
            spiffe_id: spiffe_id.into(),
            parent_id: parent.into(),
            selectors: vec![pb::Selector {
                r#type: t.into(),
                value: v.into(),
            }],
            x509_svid_ttl: ttl,
            ..Default::default()
        };
        self.admin
            .create_entry(api::CreateEntryRequest { entry: Some(e) })
            .await
            .unwrap()
            .into_inner()
            .id
    }
}

fn agent_cfg(dir: &Path, port: u16, bundle: &Path, token: Option<String>) -> AgentConfig {
    AgentConfig::resolve(AgentFile {
        server_address: Some(format!("127.0.0.1:{port}")),
        trust_bundle: Some(bundle.to_owned()),
        join_token: token,
        data_dir: Some(dir.join("agent")),
        socket_path: Some(dir.join("public").join("api.sock")),
        sync_interval: Some("1s".into()),
        ..Default::default()
    })
    .unwrap()
}

/// A server on a free port with its bundle written out and one join token.
struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    server: Server,
    bundle: PathBuf,
    token: String,
}

impl Setup {
    async fn new(server_cfg: FileConfig) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut server = start_server_with(&dir.path().join("server"), port, server_cfg).await;
        let bundle = server.bundle_file(dir.path()).await;
        let token = server.token().await;
        Setup {
            dir,
            port,
            server,
            bundle,
            token,
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first FetchX509SVID answer, or the status.
async fn fetch(socket: &Path) -> Result<wl::X509svidResponse, tonic::Status> {
    let mut c = sigil_agent::client::connect(socket).await.unwrap();
    let mut s = c.fetch_x509svid(wl::X509svidRequest {}).await?.into_inner();
    s.message()
        .await?
        .ok_or_else(|| tonic::Status::unknown("stream ended"))
}

async fn fetch_until<F: Fn(&Result<wl::X509svidResponse, tonic::Status>) -> bool>(
    socket: &Path,
    what: &str,
    ok: F,
) -> Result<wl::X509svidResponse, tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = fetch(socket).await;
        if ok(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answer {:?}",
            r.map(|x| x.svids.len())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn serial(resp: &wl::X509svidResponse) -> String {
    let (_, c) = x509_parser::parse_x509_certificate(&resp.svids[0].x509_svid).unwrap();
    c.raw_serial_as_string()
}

#[tokio::test]
async fn workload_gets_its_svid_and_keeps_it_through_server_outage_and_agent_restart() {
    let Setup {
        dir,
        port,
        mut server,
        bundle,
        token,
    } = Setup::new(FileConfig::default()).await;
    let agent = sigil_agent::build(agent_cfg(dir.path(), port, &bundle, Some(token.clone())))
        .await
        .unwrap();
    let agent_id = agent.manager.agent_id().await.unwrap();
    assert_eq!(
        agent_id,
        format!("spiffe://cluster.local/spire/agent/join_token/{token}")
    );
    let socket = agent.socket_path.clone();

    // No entry yet: PermissionDenied naming the selectors the caller was attested with.
    let e = fetch(&socket).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(
        e.message().contains(&format!("unix:uid:{}", my_uid())),
        "{}",
        e.message()
    );

    let uid_sel = format!("unix:uid:{}", my_uid());
    let entry = server
        .entry(
            "spiffe://cluster.local/ns/payments/sa/billing-service",
            &agent_id,
            &uid_sel,
            0,
        )
        .await;
    let got = fetch_until(&socket, "SVID after entry creation", |r| r.is_ok())
        .await
        .unwrap();
    assert_eq!(got.svids.len(), 1);
    assert_eq!(
        got.svids[0].spiffe_id,
        "spiffe://cluster.local/ns/payments/sa/billing-service"
    );
    assert!(!got.svids[0].bundle.is_empty());
    let first_serial = serial(&got);

    // Server down: the cached SVID is still served.
    server.bound.shutdown().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = fetch(&socket).await.unwrap();
    assert_eq!(serial(&during), first_serial);

    // Agent restart with the server still down: same identity from disk, no new token.
    agent.shutdown().await;
    let agent = sigil_agent::build(agent_cfg(dir.path(), port, &bundle, None))
        .await
        .unwrap();
    let after_restart = fetch_until(&socket, "cached SVID after agent restart", |r| r.is_ok())
        .await
        .unwrap();
    assert_eq!(serial(&after_restart), first_serial);

    // Server back on the same address: the agent syncs again without a restart; deleting the
    // entry withdraws the SVID within 2 s.
    let mut server = start_server(&dir.path().join("server"), port).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server
        .admin
        .delete_entry(api::DeleteEntryRequest { id: entry })
        .await
        .unwrap();
    let t0 = Instant::now();
    let gone = fetch_until(&socket, "withdrawal", |r| r.is_err())
        .await
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "withdrawal took {:?}",
        t0.elapsed()
    );
    assert_eq!(gone.code(), tonic::Code::PermissionDenied);
    agent.shutdown().await;
    server.bound.shutdown().await;
}

#[tokio::test]
async fn short_ttl_svids_rotate_on_the_open_stream() {
    let Setup {
        dir,
        port,
        mut server,
        bundle,
        token,
    } = Setup::new(FileConfig::default()).await;
    let agent = sigil_agent::build(agent_cfg(dir.path(), port, &bundle, Some(token)))
        .await
        .unwrap();
    let agent_id = agent.manager.agent_id().await.unwrap();
    server
        .entry(
            "spiffe://cluster.local/short",
            &agent_id,
            &format!("unix:uid:{}", my_uid()),
            4,
        )
        .await;
    fetch_until(&agent.socket_path, "first SVID", |r| r.is_ok())
        .await
        .unwrap();
    let mut c = sigil_agent::client::connect(&agent.socket_path)
        .await
        .unwrap();
    let mut stream = c
        .fetch_x509svid(wl::X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_ne!(
        serial(&first),
        serial(&next),
        "the stream pushed the same SVID"
    );
    assert_eq!(next.svids[0].spiffe_id, "spiffe://cluster.local/short");
    agent.shutdown().await;
    server.bound.shutdown().await;
}

#[tokio::test]
async fn evicted_agent_stops_with_a_clear_message() {
    let Setup {
        dir,
        port,
        mut server,
        bundle,
        token,
    } = Setup::new(FileConfig::default()).await;
    let mut agent = sigil_agent::build(agent_cfg(dir.path(), port, &bundle, Some(token)))
        .await
        .unwrap();
    let agent_id = agent.manager.agent_id().await.unwrap();
    server
        .admin
        .evict_agent(api::GetAgentRequest {
            spiffe_id: agent_id,
        })
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), agent.wait())
        .await
        .expect("agent kept running after eviction");
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains("not attested") || e.contains("evicted"), "{e}");
    server.bound.shutdown().await;
}

#[tokio::test]
async fn a_reused_token_is_refused_at_start() {
    let Setup {
        dir,
        port,
        server,
        bundle,
        token,
    } = Setup::new(FileConfig::default()).await;
    let a = sigil_agent::build(agent_cfg(dir.path(), port, &bundle, Some(token.clone())))
        .await
        .unwrap();
    a.shutdown().await;
    let other = tempfile::tempdir().unwrap();
    let e = sigil_agent::build(agent_cfg(other.path(), port, &bundle, Some(token)))
        .await
        .err()
        .unwrap();
    let e = format!("{e:#}");
    assert!(e.contains("already used"), "{e}");
    server.bound.shutdown().await;
}

#[tokio::test]
async fn server_down_longer_than_the_svid_life_is_explained_and_recovered_without_restart() {
    let Setup {
        dir,
        port,
        mut server,
        bundle,
        token,
    } = Setup::new(FileConfig::default()).await;
    let agent = sigil_agent::build(agent_cfg(dir.path(), port, &bundle, Some(token)))
        .await
        .unwrap();
    let agent_id = agent.manager.agent_id().await.unwrap();
    server
        .entry(
            "spiffe://cluster.local/brief",
            &agent_id,
            &format!("unix:uid:{}", my_uid()),
            3,
        )
        .await;
    fetch_until(&agent.socket_path, "first SVID", |r| r.is_ok())
        .await
        .unwrap();

    server.bound.shutdown().await;
    let e = fetch_until(&agent.socket_path, "expiry while the server is down", |r| {
        r.is_err()
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
    assert!(
        e.message().contains("cannot reach the Sigil server"),
        "{}",
        e.message()
    );

    let _server = start_server(&dir.path().join("server"), port).await;
    let back = fetch_until(&agent.socket_path, "recovery", |r| r.is_ok())
        .await
        .unwrap();
    assert_eq!(back.svids[0].spiffe_id, "spiffe://cluster.local/brief");
    agent.shutdown().await;
}

#[tokio::test]
async fn the_agent_renews_its_own_svid_at_half_life_and_keeps_working() {
    let short = FileConfig {
        agent_svid_ttl: Some("4s".into()),
        ..Default::default()
    };
    let Setup {
        dir,
        port,
        mut server,
        bundle,
        token,
    } = Setup::new(short).await;
    let agent = sigil_agent::build(agent_cfg(dir.path(), port, &bundle, Some(token)))
        .await
        .unwrap();
    let agent_id = agent.manager.agent_id().await.unwrap();
    let serial_of = |a: &sigil_proto::admin::Agent| a.cert_serial.clone();
    let req = api::GetAgentRequest {
        spiffe_id: agent_id.clone(),
    };
    let first = serial_of(
        &server
            .admin
            .get_agent(req.clone())
            .await
            .unwrap()
            .into_inner(),
    );
    // Well past the first agent SVID's expiry: the agent must have renewed (and used the new
    // SVID, which retires the old serial on the server) to get an entry created now.
    tokio::time::sleep(Duration::from_secs(6)).await;
    server
        .entry(
            "spiffe://cluster.local/late",
            &agent_id,
            &format!("unix:uid:{}", my_uid()),
            0,
        )
        .await;
    let got = fetch_until(&agent.socket_path, "SVID after agent renewal", |r| {
        r.is_ok()
    })
    .await
    .unwrap();
    assert_eq!(got.svids[0].spiffe_id, "spiffe://cluster.local/late");
    let now = serial_of(&server.admin.get_agent(req).await.unwrap().into_inner());
    assert_ne!(first, now, "the agent SVID was never renewed");
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("agent").join("agent.json")).unwrap(),
    )
    .unwrap();
    assert!(
        stored["not_after"].as_i64().unwrap() > sigil_agent::manager::now_unix(),
        "renewed SVID not persisted"
    );
    agent.shutdown().await;
    server.bound.shutdown().await;
}
