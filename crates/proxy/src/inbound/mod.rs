//! Inbound: callers dial the workload's port; the proxy terminates mTLS as the port's
//! PeerAuthentication mode says, authorizes, and forwards to the local application.
//!
//! Per connection, in order:
//! 1. the connection cap (`limits.maxConnections` per listener; over it: close, `overflow`);
//! 2. the mode of the port, read from the current mesh view at accept time (UNSET is
//!    PERMISSIVE), so a policy change applies to the next connection;
//! 3. the first bytes, peeked within `limits.handshakeTimeout` ([`sniff`]):
//!    - STRICT: a TLS ClientHello is required (plaintext: `plaintext_to_strict`, close); the
//!      handshake requires a client SVID verified against the bundle of its trust domain;
//!    - PERMISSIVE: TLS offering a mesh ALPN is handled as STRICT; other TLS (the app's own)
//!      is spliced to the app untouched and authorized as a plaintext TCP peer; plaintext is
//!      forwarded with no principal. When nothing arrives in time, `tcp` and `auto` ports go
//!      on as plaintext (server-first protocols, as Istio's inspector does); HTTP ports close;
//!    - DISABLE: plaintext. A ClientHello is counted (`tls_to_plaintext`) and still spliced to
//!      the app as opaque bytes, as Istio does: the app's answer decides;
//! 4. the port's protocol: `tcp` is authorized once and spliced ([`tcp`]); HTTP is served
//!    by hyper and every request authorized ([`http`]); `auto` looks at the first bytes.
//!
//! Every handshake failure is counted by reason and logged in plain words, naming the port
//! and the PeerAuthentication that made it STRICT.

mod activity;
mod http;
pub mod sniff;
mod tcp;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sigil_policy::{MtlsMode, Origin};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{AppProtocol, InboundPort};
use crate::stats::{HandshakeFailure, ListenerStats};
use crate::{Context, alpn};

use self::sniff::{AppStart, Sniffed};
use self::tls::PeerCert;

/// A stream the app side can be served over.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// What every connection of one listener shares.
struct Listener {
    port: InboundPort,
    ctx: Context,
    stats: Arc<ListenerStats>,
    tls: tls::ServerTls,
    shutdown: watch::Receiver<bool>,
}

/// One accepted connection, after the TLS step.
struct Conn {
    source: SocketAddr,
    local: Option<SocketAddr>,
    /// The mTLS peer, `None` for plaintext and passthrough.
    peer: Option<PeerCert>,
    /// `STRICT`, `PERMISSIVE` or `DISABLE`.
    mode: &'static str,
    start: Instant,
}

impl Conn {
    fn principal(&self) -> Option<&str> {
        self.peer.as_ref().map(PeerCert::principal)
    }

    /// The connection-level fields of an access log line.
    fn log_fields(&self, port: u16) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("time".into(), now_rfc3339().into());
        m.insert("direction".into(), "inbound".into());
        m.insert("port".into(), port.into());
        m.insert("source_address".into(), self.source.to_string().into());
        m.insert("mtls_mode".into(), self.mode.into());
        if let Some(p) = &self.peer {
            m.insert("peer_spiffe_id".into(), p.spiffe_id.clone().into());
            m.insert("peer_subject".into(), p.subject.clone().into());
            m.insert("peer_issuer".into(), p.issuer.clone().into());
            m.insert("peer_serial".into(), p.serial.clone().into());
            m.insert("tls_version".into(), p.tls_version.into());
            m.insert("cipher".into(), p.cipher.clone().into());
            if let Some(a) = &p.alpn {
                m.insert(
                    "alpn".into(),
                    String::from_utf8_lossy(a).into_owned().into(),
                );
            }
        }
        m
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Serves `port` on `listener` until `shutdown` is true, then stops accepting and lets open
/// connections finish for at most `limits.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    port: InboundPort,
    ctx: Context,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let stats = ctx.stats.inbound(port.port);
    let limits = ctx.cfg.limits.clone();
    let cap = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shared = Arc::new(Listener {
        port,
        ctx,
        stats,
        tls: tls::ServerTls::default(),
        shutdown: shutdown.clone(),
    });
    info!(port = shared.port.port, app = %shared.port.app, addr = ?listener.local_addr().ok(), "inbound listener ready");
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = until_true(&mut shutdown) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            r = listener.accept() => match r {
                Ok((tcp, source)) => {
                    let Ok(permit) = cap.clone().try_acquire_owned() else {
                        shared.stats.overflow.fetch_add(1, Ordering::Relaxed);
                        debug!(%source, port = shared.port.port, "connection cap reached; closing");
                        drop(tcp);
                        continue;
                    };
                    tasks.spawn(connection(shared.clone(), tcp, source, permit));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, port = shared.port.port, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    let open = tasks.len();
    if open > 0 {
        info!(
            port = shared.port.port,
            open, "draining inbound connections"
        );
    }
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            port = shared.port.port,
            open = tasks.len(),
            "drain timeout reached; closing the remaining connections"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// Resolves once `rx` holds true; never when the sender is gone without saying so.
async fn until_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn describe_origin(origin: &Origin) -> String {
    match origin {
        Origin::Default => "no PeerAuthentication applies (Istio's default)".to_owned(),
        Origin::Policy { id, .. } => format!("PeerAuthentication {id}"),
    }
}

async fn connection(
    l: Arc<Listener>,
    tcp: TcpStream,
    source: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let _guard = l.stats.open();
    let _ = tcp.set_nodelay(true);
    let start = Instant::now();
    let (mode, origin) = {
        let mesh = l.ctx.mesh.current();
        let (mode, origin) = mesh.mtls.mode_for_port(l.port.port);
        let mode = if mode == MtlsMode::Unset {
            MtlsMode::Permissive
        } else {
            mode
        };
        (mode, describe_origin(origin))
    };
    let deadline = start + l.ctx.cfg.limits.handshake_timeout;
    let mut conn = Conn {
        source,
        local: tcp.local_addr().ok(),
        peer: None,
        mode: "PERMISSIVE",
        start,
    };
    match mode {
        MtlsMode::Strict => {
            conn.mode = "STRICT";
            match sniff::sniff_tls(&tcp, deadline, false).await {
                Sniffed::Tls(_) => mtls(&l, tcp, conn, &origin).await,
                Sniffed::Plaintext => fail(
                    &l,
                    &conn,
                    HandshakeFailure::PlaintextToStrict,
                    "client sent plaintext",
                    &origin,
                ),
                Sniffed::Timeout { got } => fail(
                    &l,
                    &conn,
                    HandshakeFailure::Timeout,
                    &no_hello(got, l.ctx.cfg.limits.handshake_timeout),
                    &origin,
                ),
                Sniffed::Closed => debug!(%source, "client closed before sending anything"),
            }
        }
        MtlsMode::Permissive | MtlsMode::Unset => {
            match sniff::sniff_tls(&tcp, deadline, true).await {
                Sniffed::Tls(hello) if hello.offers_mesh() => mtls(&l, tcp, conn, &origin).await,
                Sniffed::Tls(_) => {
                    // The app's own TLS: opaque bytes, the peer unknown to authorization.
                    l.stats.plaintext_from(conn.source.ip(), false);
                    tcp::proxy(&l, tcp, &conn, "tls passthrough").await;
                }
                Sniffed::Plaintext => {
                    l.stats.plaintext_from(conn.source.ip(), false);
                    app(&l, tcp, conn).await;
                }
                Sniffed::Timeout { got } => {
                    if matches!(l.port.protocol, AppProtocol::Tcp | AppProtocol::Auto) {
                        l.stats.plaintext_from(conn.source.ip(), false);
                        tcp::proxy(&l, tcp, &conn, "tcp").await;
                    } else {
                        fail(
                            &l,
                            &conn,
                            HandshakeFailure::Timeout,
                            &no_hello(got, l.ctx.cfg.limits.handshake_timeout),
                            &origin,
                        );
                    }
                }
                Sniffed::Closed => debug!(%source, "client closed before sending anything"),
            }
        }
        MtlsMode::Disable => {
            conn.mode = "DISABLE";
            match sniff::sniff_tls(&tcp, deadline, false).await {
                Sniffed::Tls(_) => {
                    l.stats.tls_to_plaintext.fetch_add(1, Ordering::Relaxed);
                    info!(
                        %source,
                        port = l.port.port,
                        "client sent TLS to a port whose mTLS mode is DISABLE ({origin}); \
                         passing the bytes to the app unchanged"
                    );
                    tcp::proxy(&l, tcp, &conn, "tls to plaintext port").await;
                }
                Sniffed::Plaintext => {
                    l.stats.plaintext_from(conn.source.ip(), false);
                    app(&l, tcp, conn).await;
                }
                Sniffed::Timeout { .. } => {
                    l.stats.plaintext_from(conn.source.ip(), false);
                    if matches!(l.port.protocol, AppProtocol::Tcp | AppProtocol::Auto) {
                        tcp::proxy(&l, tcp, &conn, "tcp").await;
                    } else {
                        app(&l, tcp, conn).await;
                    }
                }
                Sniffed::Closed => debug!(%source, "client closed before sending anything"),
            }
        }
    }
}

fn no_hello(got: usize, t: std::time::Duration) -> String {
    if got == 0 {
        format!("client sent nothing within the handshake timeout ({t:?})")
    } else {
        format!("client sent {got} bytes but no complete TLS ClientHello within {t:?}")
    }
}

/// Counts and logs a refused connection.
fn fail(l: &Listener, conn: &Conn, why: HandshakeFailure, what: &str, origin: &str) {
    l.stats.handshake_failed(why);
    if why == HandshakeFailure::PlaintextToStrict {
        l.stats.plaintext_from(conn.source.ip(), true);
    }
    let port = l.port.port;
    let reason = match (why, conn.mode) {
        (_, "STRICT") => format!(
            "{what}; STRICT mTLS on port {port} requires a mesh client with a valid SVID ({origin})"
        ),
        _ => format!(
            "{what}; mesh mTLS on port {port} ({} mode, {origin})",
            conn.mode
        ),
    };
    warn!(source = %conn.source, port, failure = why.as_str(), "{reason}");
    l.ctx.stats.note_error(format!(
        "inbound port {port}: {reason} (from {})",
        conn.source
    ));
    if l.ctx.access_log.enabled() {
        let mut m = conn.log_fields(port);
        m.insert("protocol".into(), "tls".into());
        m.insert("handshake_failure".into(), why.as_str().into());
        m.insert("reason".into(), reason.into());
        m.insert(
            "duration_ms".into(),
            (conn.start.elapsed().as_millis() as u64).into(),
        );
        l.ctx.access_log.write(serde_json::Value::Object(m));
    }
}

/// Terminates mTLS, then serves the app protocol.
async fn mtls(l: &Arc<Listener>, tcp: TcpStream, mut conn: Conn, origin: &str) {
    let Some(identity) = l.ctx.identity.current() else {
        fail(
            l,
            &conn,
            HandshakeFailure::Other,
            "this proxy has no workload identity yet (is the agent's Workload API reachable?)",
            origin,
        );
        return;
    };
    let config = match l.tls.config(&identity) {
        Ok(c) => c,
        Err(e) => {
            let what = format!("cannot build the TLS server configuration: {e}");
            fail(l, &conn, HandshakeFailure::Other, &what, origin);
            return;
        }
    };
    let deadline = conn.start + l.ctx.cfg.limits.handshake_timeout;
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(crate::tls_transport(tcp));
    let stream = match tokio::time::timeout_at(deadline, accept).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let (why, what) = tls::classify(&e);
            fail(l, &conn, why, &what, origin);
            return;
        }
        Err(_) => {
            let what = format!(
                "the TLS handshake did not complete within {:?}",
                l.ctx.cfg.limits.handshake_timeout
            );
            fail(l, &conn, HandshakeFailure::Timeout, &what, origin);
            return;
        }
    };
    match tls::peer_cert(stream.get_ref().1, identity.id.as_str()) {
        Ok(p) => conn.peer = Some(p),
        Err(e) => {
            let what = format!("cannot read the client's identity: {e}");
            fail(l, &conn, HandshakeFailure::Other, &what, origin);
            return;
        }
    }
    drop(identity);
    let serials = crate::revocation::chain_serials(
        stream.get_ref().1.peer_certificates().unwrap_or_default(),
    );
    let peer = conn.source.to_string();
    if let Some(r) = l.ctx.mesh.current().revoked.find(&serials) {
        l.stats.handshake_failed(HandshakeFailure::Other);
        l.ctx.stats.revoked_peer("inbound", "refused");
        crate::revocation::log("inbound", "refused", &peer, r);
        l.ctx.stats.note_error(format!(
            "inbound port {}: client certificate {} ({}) is revoked ({}); connection refused",
            l.port.port, r.serial, r.spiffe_id, r.reason
        ));
        return;
    }
    l.stats.handshake_ok();
    // Served until it ends, or until a revocation of the client's certificate arrives:
    // dropping the future closes the connection.
    tokio::select! {
        () = app(l, stream, conn) => {}
        r = crate::revocation::revoked_later(&l.ctx.mesh, &serials) => {
            l.ctx.stats.revoked_peer("inbound", "closed");
            crate::revocation::log("inbound", "closed", &peer, &r);
        }
    }
}

/// Serves the port's protocol over `io` (plaintext or decrypted).
async fn app<S: Io>(l: &Arc<Listener>, io: S, conn: Conn) {
    let negotiated = conn.peer.as_ref().and_then(|p| p.alpn.as_deref());
    let h2_alpn = matches!(negotiated, Some(a) if a == alpn::H2 || a == b"istio-h2");
    let h1_alpn =
        matches!(negotiated, Some(a) if a == alpn::HTTP11 || a.starts_with(b"istio-http/1"));
    let header_deadline = Instant::now() + l.ctx.cfg.limits.header_timeout;
    match l.port.protocol {
        AppProtocol::Tcp => tcp::proxy(l, io, &conn, "tcp").await,
        AppProtocol::Http2 => http::serve(l, io, conn, true).await,
        AppProtocol::Http if h2_alpn => http::serve(l, io, conn, true).await,
        AppProtocol::Http if h1_alpn => http::serve(l, io, conn, false).await,
        AppProtocol::Auto if h2_alpn => http::serve(l, io, conn, true).await,
        AppProtocol::Http | AppProtocol::Auto => {
            let (io, start) = sniff::detect_app(io, header_deadline).await;
            match (start, l.port.protocol) {
                (AppStart::H2, _) => http::serve(l, io, conn, true).await,
                (AppStart::Http1, _) | (AppStart::Other, AppProtocol::Http) => {
                    http::serve(l, io, conn, false).await
                }
                (AppStart::Nothing, AppProtocol::Http) => {
                    debug!(source = %conn.source, "no request within the header timeout; closing")
                }
                _ => tcp::proxy(l, io, &conn, "tcp").await,
            }
        }
    }
}
