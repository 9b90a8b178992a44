//! The Workload API socket (binding rules) and the health service on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod workload_common;

use std::io;
use std::os::unix::fs::PermissionsExt;

use sigil_agent::workload_api::{self, bind_workload_socket};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use workload_common::*;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn creates_a_private_parent_and_a_world_connectable_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run").join("sigil").join("api.sock");
    let _l = bind_workload_socket(&sock).unwrap();
    assert_eq!(mode(sock.parent().unwrap()), 0o755);
    assert_eq!(mode(&sock), 0o777);
}

#[tokio::test]
async fn refuses_a_parent_writable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("open");
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = bind_workload_socket(parent.join("api.sock")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    let msg = err.to_string();
    assert!(
        msg.contains("writable by other users") && msg.contains("0777"),
        "{msg}"
    );
    assert!(!parent.join("api.sock").exists());
}

#[tokio::test]
async fn replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");

    // A socket left behind by a dead process: nobody listens, so it is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let live = bind_workload_socket(&sock).unwrap();

    // Now something answers on it: refused.
    let err = bind_workload_socket(&sock).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains("another process is serving"),
        "{err}"
    );
    drop(live);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"precious").unwrap();
    let err = bind_workload_socket(&file).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

#[tokio::test]
async fn health_service_starts_not_serving_and_follows_the_reporter() {
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let ch = channel_with(&h.socket, endpoint()).await;
    let mut health = HealthClient::new(ch);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    for svc in ["", workload_api::SERVICE_NAME] {
        let r = health.check(check(svc)).await.unwrap().into_inner();
        assert_eq!(r.status(), ServingStatus::NotServing, "service {svc:?}");
    }
    assert_eq!(workload_api::SERVICE_NAME, "SpiffeWorkloadAPI");

    workload_api::set_serving(&h.health, true).await;
    for svc in ["", workload_api::SERVICE_NAME] {
        let r = health.check(check(svc)).await.unwrap().into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "service {svc:?}");
    }
}

/// HTTP/2 frame bytes.
fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK literal field with a literal name, both raw (as grpc-core encodes them).
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut v = vec![0x40, name.len() as u8];
    v.extend_from_slice(name.as_bytes());
    v.push(value.len() as u8);
    v.extend_from_slice(value.as_bytes());
    v
}

#[tokio::test]
async fn socket_path_authorities_of_grpc_clients_are_served() {
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let path = h.socket.display().to_string();
    // grpc-core (py-spiffe) sends the percent-encoded socket path, grpc-java the raw path;
    // upstream h2 answers both with RST_STREAM(PROTOCOL_ERROR) (see vendor/h2/SIGIL-PATCH.md).
    let percent = path.trim_start_matches('/').replace('/', "%2F");
    for authority in [percent, path] {
        let served = request_with_authority(&h.socket, &authority).await;
        use prost::Message as _;
        let msg = sigil_proto::workload::X509svidResponse::decode(&served[5..]).unwrap();
        assert_eq!(
            msg.svids[0].spiffe_id, "spiffe://example.org/w1",
            "{authority}"
        );
    }
}

/// Sends one FetchX509SVID by hand with this `:authority`; returns the first gRPC message.
async fn request_with_authority(socket: &std::path::Path, authority: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut block = literal(":path", "/SpiffeWorkloadAPI/FetchX509SVID");
    block.extend(literal(":authority", authority));
    block.extend([0x83, 0x86]); // :method POST, :scheme http
    block.extend(literal("content-type", "application/grpc"));
    block.extend(literal("te", "trailers"));
    block.extend(literal("workload.spiffe.io", "true"));
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x4, 1, &block));
    out.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0])); // one empty gRPC message, end of stream

    let mut conn = tokio::net::UnixStream::connect(socket).await.unwrap();
    conn.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a response");
            buf.extend_from_slice(&chunk[..n]);
            while buf.len() >= 9 {
                let len =
                    (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let (ty, flags) = (buf[3], buf[4]);
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
                let payload = buf[9..9 + len].to_vec();
                buf.drain(..9 + len);
                if ty == 0x4 && flags & 1 == 0 {
                    conn.write_all(&frame(0x4, 1, 0, &[])).await.unwrap(); // SETTINGS ACK
                }
                assert!(
                    !(ty == 0x3 && stream == 1),
                    "stream reset, error code {payload:?}"
                );
                assert!(ty != 0x7, "GOAWAY {payload:?}");
                if ty == 0x0 && stream == 1 && len > 5 {
                    return payload; // a gRPC message: the X509SVIDResponse
                }
            }
        }
    })
    .await
    .expect("a response within 5 s")
}
