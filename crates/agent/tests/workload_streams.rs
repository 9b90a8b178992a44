//! Workload API streams under load: slow readers, many streams, disconnects, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod workload_common;

use std::time::Duration;

use futures::future::join_all;
use sigil_proto::workload::X509svidRequest;
use tonic::Code;
use workload_common::*;

fn serial_chain(h: &Harness) -> Vec<u8> {
    chains_by_id(&h.cache.borrow())["spiffe://example.org/w1"].clone()
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_make_the_server_queue_updates() {
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    // A small HTTP/2 stream window: the transport stops taking messages after a few.
    let mut c = h
        .client_with(endpoint().initial_stream_window_size(4096))
        .await;
    let mut stream = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    let base = h.api.stats().messages_sent;

    // 200 visible updates, each given time to be picked up, while the client reads nothing.
    for rev in 0..200u64 {
        h.publish(&[Entry::mine("e1", "/w1")], rev + 2);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = h.api.stats();
    assert_eq!(
        stats.live_streams, 1,
        "one task for the stream, not one per update"
    );
    let produced = stats.messages_sent - base;
    assert!(
        produced < 20,
        "a reader that stalls must stall the stream's producer (coalescing), but {produced} \
         messages were produced for 200 updates"
    );

    // Reading now drains what was in flight and ends at the newest state.
    let newest = serial_chain(&h);
    let mut received = 0;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("the newest state must arrive")
            .unwrap()
            .unwrap();
        received += 1;
        if m.svids[0].x509_svid == newest {
            break;
        }
    }
    assert!(
        received <= produced as usize + 1,
        "received {received}, produced {produced}"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_streams_all_get_the_update() {
    const CONNECTIONS: usize = 20;
    const PER_CONNECTION: usize = 50;
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let clients = join_all((0..CONNECTIONS).map(|_| h.client())).await;
    let opened = join_all(clients.iter().flat_map(|c| {
        (0..PER_CONNECTION).map(move |_| {
            let mut c = c.clone();
            async move {
                let mut s = c
                    .fetch_x509svid(X509svidRequest {})
                    .await
                    .unwrap()
                    .into_inner();
                let first = s.message().await.unwrap().unwrap();
                (s, first.svids[0].x509_svid.clone())
            }
        })
    }));
    let streams = tokio::time::timeout(Duration::from_secs(60), opened)
        .await
        .expect("1000 streams open within 60 s");
    assert_eq!(streams.len(), CONNECTIONS * PER_CONNECTION);
    assert_eq!(h.api.stats().live_streams, CONNECTIONS * PER_CONNECTION);

    h.publish(&[Entry::mine("e1", "/w1")], 2);
    let newest = serial_chain(&h);
    let updated = join_all(streams.into_iter().map(|(mut s, old)| {
        let newest = newest.clone();
        async move {
            let m = s.message().await.unwrap().unwrap();
            assert_ne!(m.svids[0].x509_svid, old);
            assert_eq!(m.svids[0].x509_svid, newest);
            s
        }
    }));
    let streams = tokio::time::timeout(Duration::from_secs(10), updated)
        .await
        .expect("every stream gets the update within 10 s");

    drop(streams);
    drop(clients);
    assert!(
        Harness::eventually(Duration::from_secs(5), || h.api.stats().live_streams == 0).await,
        "tasks must end when clients go away; still live: {}",
        h.api.stats().live_streams
    );
}

#[tokio::test]
async fn a_client_disconnecting_mid_stream_frees_its_task() {
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let mut keep = h.client().await;
    let mut kept = keep
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    kept.message().await.unwrap().unwrap();

    let mut c = h.client().await;
    let mut s = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    s.message().await.unwrap().unwrap();
    assert_eq!(h.api.stats().live_streams, 2);

    // Dropping the stream cancels it (RST_STREAM); dropping the client closes the connection.
    drop(s);
    drop(c);
    assert!(Harness::eventually(Duration::from_secs(2), || h.api.stats().live_streams == 1).await);

    // No task is lost: the other stream still gets updates, and a publish does not revive
    // the dropped one.
    h.publish(&[Entry::mine("e1", "/w1")], 2);
    let m = tokio::time::timeout(Duration::from_secs(5), kept.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.svids[0].x509_svid, serial_chain(&h));
    assert_eq!(h.api.stats().live_streams, 1);
}

#[tokio::test]
async fn shutdown_ends_streams_and_the_server() {
    let mut h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let mut c = h.client().await;
    let mut s = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    s.message().await.unwrap().unwrap();

    h.stop();
    let end = tokio::time::timeout(Duration::from_secs(5), s.message())
        .await
        .expect("the stream ends on shutdown");
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(status.message().contains("shutting down"));
    let server = h.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(h.api.stats().live_streams, 0);
}

#[tokio::test]
async fn streams_beyond_the_cap_are_resource_exhausted() {
    let pki = Pki::new();
    let state = pki.state(vec![pki.svid(&Entry::mine("e1", "/w1"))], 1);
    let h = Harness::start_with(pki, state, |api| api.with_max_streams(1)).await;
    let mut c = h.client().await;
    let mut first = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    first.message().await.unwrap().unwrap();
    let err = c.fetch_x509svid(X509svidRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    drop(first);
    assert!(Harness::eventually(Duration::from_secs(2), || h.api.stats().live_streams == 0).await);
    let mut again = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    again.message().await.unwrap().unwrap();
}
