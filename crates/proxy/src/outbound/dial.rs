//! Dialing one upstream connection: pick an endpoint (round robin, the next ones on failure),
//! connect, and do the planned TLS handshake, counting its result.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

use super::no_address;
use super::resolve::{Destination, Target};
use super::tls::{TlsPlan, classify};
use crate::stats::{HandshakeFailure, ListenerStats};

/// How to reach one upstream under one plan.
pub(crate) struct Route {
    /// `host:port`.
    pub name: String,
    pub tls: TlsPlan,
    pub dest: Destination,
    pub stats: Arc<ListenerStats>,
    pub rr: Arc<AtomicUsize>,
    /// Bound on the TCP connect and on the TLS handshake, each.
    pub timeout: Duration,
    /// Revoked certificates (of the plan's mesh view): an upstream presenting one is refused.
    pub revoked: crate::revocation::RevokedSet,
    /// The proxy-wide counters (`sigil_proxy_revoked_peer_total`).
    pub proxy_stats: Arc<crate::stats::Stats>,
}

/// What is known about an upstream connection (also attached to every HTTP response).
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub addr: SocketAddr,
    /// The server's SPIFFE ID (mesh mTLS), when its certificate has one.
    pub peer_id: Option<String>,
    pub alpn: Option<String>,
    pub tls_version: Option<String>,
    /// HTTP/2 was negotiated by ALPN.
    pub h2: bool,
    /// Serials of the server's certificate chain (normalized), empty for plaintext: watched
    /// for revocations while the connection is open.
    pub peer_serials: Vec<String>,
}

/// Why no upstream connection could be made.
#[derive(Debug)]
pub(crate) struct DialError {
    /// The handshake failure counted, if the TLS handshake was the step that failed.
    pub failure: Option<HandshakeFailure>,
    /// In plain words.
    pub reason: String,
    pub addr: Option<SocketAddr>,
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DialError {}

impl DialError {
    fn new(reason: String, addr: Option<SocketAddr>) -> Self {
        DialError {
            failure: None,
            reason,
            addr,
        }
    }
}

/// The upstream transport.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<crate::TlsTransport>>),
}

/// An established upstream connection.
pub(crate) struct Conn {
    pub io: Stream,
    pub info: Arc<ConnInfo>,
    /// For pooled HTTP connections: resolves when the upstream's certificate is revoked, after
    /// which every read and write fails, so the pool drops the connection.
    pub revocation: Option<RevocationWatch>,
}

/// Watches one open upstream connection for the revocation of its server's certificate.
pub(crate) struct RevocationWatch {
    pub revoked: Pin<Box<dyn std::future::Future<Output = crate::revocation::Revoked> + Send>>,
    pub stats: Arc<crate::stats::Stats>,
    /// Set once the revocation fired.
    pub closed: bool,
}

impl Conn {
    /// `Err` once the upstream's certificate has been revoked (logged and counted once).
    fn check_revoked(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(w) = &mut self.revocation else {
            return Ok(());
        };
        if !w.closed
            && let Poll::Ready(r) = w.revoked.as_mut().poll(cx)
        {
            w.closed = true;
            w.stats.revoked_peer("outbound", "closed");
            crate::revocation::log("outbound", "closed", &self.info.addr.to_string(), &r);
        }
        if w.closed {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the upstream's certificate was revoked",
            ));
        }
        Ok(())
    }
}

impl Route {
    /// Connects to the next endpoint and does the TLS of the plan.
    pub(crate) async fn dial(&self) -> Result<Conn, DialError> {
        let config = match &self.tls.config {
            Ok(c) => c.clone(),
            Err(e) => return Err(DialError::new(e.clone(), None)),
        };
        let targets = &self.dest.targets;
        if targets.is_empty() {
            return Err(DialError::new(no_address(&self.name), None));
        }
        let first = self.rr.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..targets.len() {
            let target = &targets[(first + i) % targets.len()];
            match self.connect(target).await {
                Ok((tcp, addr)) => return self.handshake(tcp, addr, config).await,
                Err(e) => {
                    debug!(endpoint = %target, reason = %e.reason, "upstream endpoint unreachable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| DialError::new(no_address(&self.name), None)))
    }

    async fn connect(&self, target: &Target) -> Result<(TcpStream, SocketAddr), DialError> {
        let addrs: Vec<SocketAddr> = match target {
            Target::Addr(a) => vec![*a],
            Target::Dns(host, port) => {
                match tokio::time::timeout(
                    self.timeout,
                    tokio::net::lookup_host((host.as_str(), *port)),
                )
                .await
                {
                    Ok(Ok(a)) => a.collect(),
                    Ok(Err(e)) => {
                        return Err(DialError::new(
                            format!("cannot resolve endpoint {host}: {e}"),
                            None,
                        ));
                    }
                    Err(_) => {
                        return Err(DialError::new(
                            format!("resolving endpoint {host} timed out"),
                            None,
                        ));
                    }
                }
            }
        };
        let mut last = DialError::new(format!("endpoint {target} resolved to no address"), None);
        for addr in addrs {
            match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, addr));
                }
                Ok(Err(e)) => {
                    last = DialError::new(
                        format!("cannot connect to the upstream {addr}: {e}"),
                        Some(addr),
                    )
                }
                Err(_) => {
                    last = DialError::new(
                        format!(
                            "connecting to the upstream {addr} timed out after {:?}",
                            self.timeout
                        ),
                        Some(addr),
                    )
                }
            }
        }
        Err(last)
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        config: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Conn, DialError> {
        let Some(config) = config else {
            return Ok(Conn {
                revocation: None,
                io: Stream::Plain(tcp),
                info: Arc::new(ConnInfo {
                    addr,
                    peer_id: None,
                    alpn: None,
                    tls_version: None,
                    h2: false,
                    peer_serials: Vec::new(),
                }),
            });
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let r = tokio::time::timeout(
            self.timeout,
            connector.connect(self.tls.server_name.clone(), crate::tls_transport(tcp)),
        )
        .await;
        let tls = match r {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                let (failure, reason) = classify(&e);
                self.stats.handshake_failed(failure);
                return Err(DialError {
                    failure: Some(failure),
                    reason,
                    addr: Some(addr),
                });
            }
            Err(_) => {
                self.stats.handshake_failed(HandshakeFailure::Timeout);
                return Err(DialError {
                    failure: Some(HandshakeFailure::Timeout),
                    reason: format!(
                        "the TLS handshake with {addr} did not complete within {:?}",
                        self.timeout
                    ),
                    addr: Some(addr),
                });
            }
        };
        let (_, session) = tls.get_ref();
        let serials =
            crate::revocation::chain_serials(session.peer_certificates().unwrap_or_default());
        if let Some(r) = self.revoked.find(&serials) {
            self.stats.handshake_failed(HandshakeFailure::Other);
            self.proxy_stats.revoked_peer("outbound", "refused");
            crate::revocation::log("outbound", "refused", &addr.to_string(), r);
            return Err(DialError {
                failure: Some(HandshakeFailure::Other),
                reason: format!(
                    "the upstream {addr} presented certificate {} ({}), which is revoked ({})",
                    r.serial, r.spiffe_id, r.reason
                ),
                addr: Some(addr),
            });
        }
        self.stats.handshake_ok();
        let peer_id = session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|leaf| sigil_spiffe::leaf_spiffe_id(leaf).ok())
            .map(|id| id.to_string());
        let alpn = session.alpn_protocol().map(|p| p.to_vec());
        let h2 = matches!(alpn.as_deref(), Some(b"h2" | b"istio-h2"));
        let info = ConnInfo {
            addr,
            peer_id,
            alpn: alpn.map(|a| String::from_utf8_lossy(&a).into_owned()),
            tls_version: session.protocol_version().map(|v| format!("{v:?}")),
            h2,
            peer_serials: serials,
        };
        Ok(Conn {
            revocation: None,
            io: Stream::Tls(Box::new(tls)),
            info: Arc::new(info),
        })
    }

    /// The access log entry of one request or connection, with what the plan knows.
    /// (Nothing is collected when the access log is off.)
    pub(crate) fn log_entry(&self, source: SocketAddr, enabled: bool) -> LogEntry {
        if !enabled {
            return LogEntry(None);
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut m = Map::new();
        m.insert("time".into(), json!(now));
        m.insert("direction".into(), json!("outbound"));
        m.insert("source_address".into(), json!(source.to_string()));
        m.insert("destination".into(), json!(self.name));
        m.insert("tls_mode".into(), json!(self.tls.mode));
        m.insert("auto_mtls".into(), json!(self.tls.auto));
        m.insert(
            "destination_rule".into(),
            self.tls.rule.as_deref().map_or(Value::Null, |r| json!(r)),
        );
        LogEntry(Some(m))
    }
}

/// One access log line being filled in (`None`: the access log is off).
pub(crate) struct LogEntry(Option<Map<String, Value>>);

impl LogEntry {
    pub(crate) fn set(&mut self, key: &str, v: Value) {
        if let Some(m) = &mut self.0 {
            m.insert(key.to_owned(), v);
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn connected(&mut self, info: &ConnInfo) {
        if !self.enabled() {
            return;
        }
        self.set("upstream_address", json!(info.addr.to_string()));
        self.set("upstream_spiffe_id", json!(info.peer_id));
        self.set("alpn", json!(info.alpn));
        self.set("tls_version", json!(info.tls_version));
    }

    pub(crate) fn failure(&mut self, e: &DialError) {
        if let Some(a) = e.addr {
            self.set("upstream_address", json!(a.to_string()));
        }
        if let Some(f) = e.failure {
            self.set("handshake_failure", json!(f.as_str()));
        }
        self.reason(e.reason.as_str());
    }

    pub(crate) fn reason(&mut self, r: impl Into<String>) {
        if self.enabled() {
            self.set("failure_reason", json!(r.into()));
        }
    }

    /// Bytes sent to the upstream and received from it.
    pub(crate) fn bytes(&mut self, sent: u64, received: u64) {
        self.set("bytes_sent", json!(sent));
        self.set("bytes_received", json!(received));
    }

    /// The line, or `None` when the access log is off.
    pub(crate) fn finish(mut self, elapsed: Duration) -> Option<Value> {
        self.set("duration_ms", json!(elapsed.as_secs_f64() * 1000.0));
        self.0.map(Value::Object)
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let c = Connected::new().extra(self.info.clone());
        if self.info.h2 { c.negotiated_h2() } else { c }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_revoked(cx)?;
        match &mut this.io {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_revoked(cx)?;
        match &mut this.io {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_revoked(cx)?;
        match &mut this.io {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_revoked(cx)?;
        match &mut this.io {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
