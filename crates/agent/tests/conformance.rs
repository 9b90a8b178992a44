//! Conformance with Workload API clients no one here wrote: the `spiffe` crate and the PyPI
//! `spiffe` package (py-spiffe). Both fetch the X.509-SVID, the bundles and a JWT-SVID,
//! validate the JWT through the agent, and see a rotation (new serial) on their stream.
//!
//! The Python half needs py-spiffe: `.ci/run` installs it into `.venv-pyspiffe` at the
//! repository root (override with `SIGIL_PYSPIFFE_PYTHON`). Under `CI` its absence fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sigil_proto::admin::{self as api};
use sigil_proto::node as pb;

const ID: &str = "spiffe://cluster.local/ns/payments/sa/checkout-service";

fn my_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct Mesh {
    _dir: tempfile::TempDir,
    server: sigil_server::Bound,
    agent: sigil_agent::Bound,
}

/// Server and agent in process; one entry for this process (uid) with a short X.509 TTL.
async fn mesh(x509_ttl: i32) -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sf = sigil_server::config::FileConfig {
        data_dir: Some(dir.path().join("server")),
        bind_address: Some("127.0.0.1".parse().unwrap()),
        bind_port: Some(port),
        metrics_address: Some("off".into()),
        ..Default::default()
    };
    let server = sigil_server::build(sigil_server::config::ServerConfig::resolve(sf).unwrap())
        .await
        .unwrap();
    let mut admin = sigil_server::admin_client::connect(&server.admin_socket)
        .await
        .unwrap();
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
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, sigil_spiffe::pem::encode_certificates(&certs)).unwrap();
    let token = admin
        .generate_join_token(api::GenerateJoinTokenRequest {
            ttl: 600,
            spiffe_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let af = sigil_agent::config::FileConfig {
        server_address: Some(format!("127.0.0.1:{port}")),
        trust_bundle: Some(bundle),
        join_token: Some(token),
        data_dir: Some(dir.path().join("agent")),
        socket_path: Some(dir.path().join("public").join("api.sock")),
        sync_interval: Some("1s".into()),
        ..Default::default()
    };
    let agent = sigil_agent::build(sigil_agent::config::AgentConfig::resolve(af).unwrap())
        .await
        .unwrap();
    let parent = agent.manager.agent_id().await.unwrap();
    let e = pb::Entry {
        spiffe_id: ID.into(),
        parent_id: parent,
        selectors: vec![pb::Selector {
            r#type: "unix".into(),
            value: format!("uid:{}", my_uid()),
        }],
        x509_svid_ttl: x509_ttl,
        ..Default::default()
    };
    admin
        .create_entry(api::CreateEntryRequest { entry: Some(e) })
        .await
        .unwrap();
    // Wait until the agent serves it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut c = sigil_agent::client::connect(&agent.socket_path)
            .await
            .unwrap();
        let ok = match c
            .fetch_x509svid(sigil_proto::workload::X509svidRequest {})
            .await
        {
            Ok(r) => r.into_inner().message().await.is_ok_and(|m| m.is_some()),
            Err(_) => false,
        };
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent never served the entry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Mesh {
        _dir: dir,
        server,
        agent,
    }
}

#[tokio::test]
async fn the_spiffe_crate_fetches_validates_and_sees_rotation() {
    let m = mesh(5).await;
    let endpoint = format!("unix://{}", m.agent.socket_path.display());
    let client = spiffe::WorkloadApiClient::connect_to(&endpoint)
        .await
        .unwrap();
    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(svid.spiffe_id().to_string(), ID);
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let td = spiffe::TrustDomain::new("cluster.local").unwrap();
    assert!(
        bundles.get(&td).is_some(),
        "own bundle missing from FetchX509Bundles"
    );

    let jwt = client.fetch_jwt_svid(["billing"], None).await.unwrap();
    assert_eq!(jwt.spiffe_id().to_string(), ID);
    let validated = client
        .validate_jwt_token("billing", jwt.token())
        .await
        .unwrap();
    assert_eq!(validated.spiffe_id().to_string(), ID);
    assert!(
        client
            .validate_jwt_token("someone-else", jwt.token())
            .await
            .is_err(),
        "wrong audience validated"
    );
    let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
    assert!(jwt_bundles.get(&td).is_some(), "own JWT bundle missing");

    let first = svid.leaf().as_bytes().to_vec();
    let mut stream = client.stream_x509_contexts().await.unwrap();
    let rotated = tokio::time::timeout(Duration::from_secs(12), async {
        while let Some(ctx) = stream.next().await {
            let ctx = ctx.unwrap();
            let leaf = ctx.default_svid().unwrap().leaf().as_bytes().to_vec();
            if leaf != first {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        rotated,
        "no rotation seen on the stream within 12 s of a 5 s SVID"
    );
    m.agent.shutdown().await;
    m.server.shutdown().await;
}

fn pyspiffe_python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SIGIL_PYSPIFFE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-pyspiffe/bin/python");
    root.exists().then_some(root)
}

#[tokio::test]
async fn the_pypi_spiffe_client_fetches_validates_and_sees_rotation() {
    let Some(python) = pyspiffe_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "py-spiffe is required under CI (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED: py-spiffe not installed (python3 -m venv .venv-pyspiffe && .venv-pyspiffe/bin/pip install spiffe)"
        );
        return;
    };
    let m = mesh(5).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/pyspiffe_check.py");
    let socket = format!("unix://{}", m.agent.socket_path.display());
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([
            "--socket",
            &socket,
            "--expect-id",
            ID,
            "--audience",
            "billing",
            "--rotation-timeout",
            "12",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py-spiffe: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["spiffe_id"], ID);
    assert_eq!(v["jwt_spiffe_id"], ID);
    assert_eq!(v["jwt_validated_id"], ID);
    assert_eq!(v["bundles"], serde_json::json!(["cluster.local"]));
    assert_eq!(v["x509_bundles"], serde_json::json!(["cluster.local"]));
    assert_eq!(v["jwt_bundles"], serde_json::json!(["cluster.local"]));
    assert_ne!(v["rotated_serial"], v["serial"]);
    m.agent.shutdown().await;
    m.server.shutdown().await;
}
