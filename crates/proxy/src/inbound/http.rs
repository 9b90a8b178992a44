//! HTTP/1.1 and HTTP/2 inbound: hyper serves the caller; every request is authorized; an
//! allowed one goes to the app over a connection of this downstream connection's small pool
//! (HTTP/2 to the app only for `protocol: http2` ports), a denied one gets Istio's 403.
//!
//! Per request: any `x-forwarded-client-cert` from the caller is removed before
//! authorization, and for mTLS peers Istio's XFCC (`By;Hash;Subject;URI`) is set. The path is
//! matched after dot-segment removal (the normalized path is also what the app receives).
//! One access log line and one `requests` count are written when the response ends.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1 as client1, http2 as client2};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sigil_policy::{Headers, authorize};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::config::AppProtocol;
use crate::stats::RequestLabels;

use super::activity::{Activity, Expiry, Tracked};
use super::{Conn, Io, Listener};

const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
/// Idle upstream connections kept per downstream connection.
const POOL: usize = 8;
/// Istio's denial, byte for byte.
const DENIED: &str = "RBAC: access denied";

/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: [HeaderName; 6] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// Serves HTTP on `io` (`h2`: HTTP/2, else HTTP/1.1 with keep-alive) until the caller
/// closes, a timer runs out or the listener drains.
pub(super) async fn serve<S: Io>(l: &Arc<Listener>, io: S, conn: Conn, h2: bool) {
    let limits = l.ctx.cfg.limits.clone();
    let activity = Activity::new(!h2);
    let state = Arc::new(HttpConn {
        l: l.clone(),
        conn,
        upstream: Upstream::new(l.port.protocol == AppProtocol::Http2),
        activity: activity.clone(),
        sequential: !h2,
    });
    let svc = {
        let state = state.clone();
        service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(state.handle(req).await) }
        })
    };
    let io = TokioIo::new(Tracked::new(io, activity.clone()));
    let mut shutdown = l.shutdown.clone();
    let shutdown = async move { super::until_true(&mut shutdown).await };
    let ended = if h2 {
        let mut b = http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        drive(b.serve_connection(io, svc), &activity, &limits, shutdown).await
    } else {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(None)
            .keep_alive(true)
            .max_header_size(limits.max_header_bytes);
        if limits.max_header_bytes > 400 * 1024 {
            b.max_buf_size(limits.max_header_bytes + 8192);
        }
        drive(b.serve_connection(io, svc), &activity, &limits, shutdown).await
    };
    if let Some(why) = ended {
        debug!(source = %state.conn.source, port = l.port.port, "{why}");
    }
    l.stats.bytes(
        activity.rx.load(Ordering::Relaxed),
        activity.tx.load(Ordering::Relaxed),
    );
}

/// Both hyper server connections, for [`drive`].
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for http1::Connection<I, S>
where
    Self: Future<Output = Result<(), hyper::Error>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

impl<I, S, B, E> Graceful for http2::Connection<I, S, E>
where
    Self: Future<Output = Result<(), hyper::Error>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

/// Runs `conn` with the header and idle timers and the drain signal. Returns why it was cut.
async fn drive(
    conn: impl Graceful,
    activity: &Activity,
    limits: &crate::config::Limits,
    shutdown: impl Future<Output = ()>,
) -> Option<String> {
    tokio::pin!(conn);
    tokio::pin!(shutdown);
    let mut closing = false;
    loop {
        let next = match activity.check(limits.header_timeout, limits.idle_timeout) {
            Expiry::At(t) => t,
            Expiry::Header => {
                return Some(format!(
                    "request head not complete within the header timeout ({:?}); closing",
                    limits.header_timeout
                ));
            }
            Expiry::Idle => {
                if !closing {
                    conn.as_mut().graceful();
                    closing = true;
                }
                Instant::now() + Duration::from_secs(3600)
            }
        };
        tokio::select! {
            r = conn.as_mut() => {
                return r.err().map(|e| format!("HTTP connection ended: {e}"));
            }
            _ = &mut shutdown, if !closing => {
                conn.as_mut().graceful();
                closing = true;
            }
            _ = tokio::time::sleep_until(next) => {}
            _ = activity.changed() => {}
        }
    }
}

/// One downstream HTTP connection.
struct HttpConn {
    l: Arc<Listener>,
    conn: Conn,
    upstream: Upstream,
    activity: Arc<Activity>,
    /// HTTP/1 downstream: one request at a time.
    sequential: bool,
}

/// Request headers as the policy engine reads them.
struct HeaderView<'a>(&'a HeaderMap);

impl Headers for HeaderView<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.to_str().ok()
    }
}

/// `path` with `.` and `..` segments removed (RFC 3986 §5.2.4); `None` when already clean.
fn normalize(path: &str) -> Option<String> {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let last = segs.len().saturating_sub(1);
    for (i, s) in segs.iter().enumerate() {
        match *s {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    Some(format!("/{}", out.join("/")))
}

impl HttpConn {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ProxyBody> {
        self.activity.request_started();
        let l = &self.l;
        let port = l.port.port;
        let (mut parts, body) = req.into_parts();
        parts.headers.remove(XFCC);
        if let Some(clean) = parts.uri.path_and_query().and_then(|pq| {
            normalize(pq.path()).map(|p| match pq.query() {
                Some(q) => format!("{p}?{q}"),
                None => p,
            })
        }) && let Ok(pq) = clean.parse::<http::uri::PathAndQuery>()
        {
            let mut up = std::mem::take(&mut parts.uri).into_parts();
            up.path_and_query = Some(pq);
            parts.uri = Uri::from_parts(up).unwrap_or_default();
        }
        let (allowed, log) = {
            let host = parts
                .uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()))
                .unwrap_or("");
            let headers = HeaderView(&parts.headers);
            let mesh = l.ctx.mesh.current();
            let mut rq = sigil_policy::Request::http(
                self.conn.principal(),
                self.conn.source.ip(),
                port,
                parts.method.as_str(),
                parts.uri.path(),
                host,
            );
            rq.destination_ip = self.conn.local.map(|a| a.ip());
            if let Some(h) = rq.http.as_mut() {
                h.headers = &headers;
            }
            let decision = authorize(&mesh.authz, &rq);
            let allowed = decision.is_permit();
            l.stats
                .rbac(allowed, decision.dry_run.map(|v| v.is_permit()));
            if !allowed {
                debug!(source = %self.conn.source, port, method = %parts.method, path = parts.uri.path(), "request {}", decision.verdict);
            }
            let log = l.ctx.access_log.enabled().then(|| LogInfo {
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                authority: host.to_owned(),
                version: parts.version,
                policy: decision.verdict.to_string(),
                dry_run: decision.dry_run.map(|v| v.to_string()),
            });
            (allowed, log)
        };
        let record = Arc::new(Record {
            http: self.clone(),
            started: Instant::now(),
            allowed,
            status: AtomicU16::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            reason: OnceLock::new(),
            log,
        });
        if !allowed {
            return local(record, StatusCode::FORBIDDEN, DENIED);
        }

        for h in &HOP_BY_HOP {
            parts.headers.remove(h);
        }
        if let Some(p) = &self.conn.peer {
            parts.headers.insert(XFCC, p.xfcc.clone());
        }
        if let Err(e) = self.upstream.prepare(&mut parts) {
            let _ = record.reason.set(e);
            return local(record, StatusCode::BAD_REQUEST, "bad request");
        }
        let body = ReqBody {
            inner: body,
            record: record.clone(),
        };
        let sent = self
            .upstream
            .send(Request::from_parts(parts, body), l, self.sequential)
            .await;
        match sent {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                for h in &HOP_BY_HOP[..3] {
                    parts.headers.remove(h);
                }
                record
                    .status
                    .store(parts.status.as_u16(), Ordering::Relaxed);
                Response::from_parts(
                    parts,
                    ProxyBody {
                        inner: Inner::Upstream(body),
                        record,
                    },
                )
            }
            Err(e) => {
                let _ = record.reason.set(e);
                local(
                    record,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream connect error or disconnect/reset before headers",
                )
            }
        }
    }
}

fn local(record: Arc<Record>, status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    record.status.store(status.as_u16(), Ordering::Relaxed);
    let mut r = Response::new(ProxyBody {
        inner: Inner::Local(Full::new(Bytes::from_static(body.as_bytes()))),
        record,
    });
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// The app side of one downstream connection.
enum Upstream {
    /// HTTP/1.1 connections, reused.
    H1(Mutex<Vec<client1::SendRequest<ReqBody>>>),
    /// One multiplexed HTTP/2 connection (prior knowledge).
    H2(tokio::sync::Mutex<Option<client2::SendRequest<ReqBody>>>),
}

impl Upstream {
    fn new(h2: bool) -> Self {
        if h2 {
            Upstream::H2(tokio::sync::Mutex::new(None))
        } else {
            Upstream::H1(Mutex::new(Vec::new()))
        }
    }

    /// Sets the version and URI form the app connection needs.
    fn prepare(&self, parts: &mut http::request::Parts) -> Result<(), String> {
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let pq = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        match self {
            Upstream::H1(_) => {
                if parts.uri.authority().is_some() {
                    parts.uri = pq.parse().map_err(|e| format!("bad request path: {e}"))?;
                }
                if !parts.headers.contains_key(HOST)
                    && let Some(a) = authority.as_deref()
                {
                    let v = HeaderValue::from_str(a).map_err(|e| format!("bad authority: {e}"))?;
                    parts.headers.insert(HOST, v);
                }
                parts.version = Version::HTTP_11;
            }
            Upstream::H2(_) => {
                let a = authority.as_deref().unwrap_or("localhost");
                parts.uri = format!("http://{a}{pq}")
                    .parse()
                    .map_err(|e| format!("bad request target: {e}"))?;
                parts.headers.remove(HOST);
                parts.version = Version::HTTP_2;
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        mut req: Request<ReqBody>,
        l: &Listener,
        sequential: bool,
    ) -> Result<Response<Incoming>, String> {
        let app = l.port.app;
        let connect_timeout = l.ctx.cfg.limits.handshake_timeout;
        match self {
            Upstream::H2(slot) => {
                let mut sender = {
                    let mut slot = slot.lock().await;
                    match slot.as_ref() {
                        Some(s) if !s.is_closed() => s.clone(),
                        _ => {
                            let s = connect_h2(app, connect_timeout).await?;
                            *slot = Some(s.clone());
                            s
                        }
                    }
                };
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("the app at {app} failed the request: {e}"))
            }
            Upstream::H1(pool) => {
                for attempt in 0..2 {
                    let pooled = {
                        let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
                        p.retain(|s| !s.is_closed());
                        if sequential {
                            p.pop()
                        } else {
                            p.iter()
                                .position(|s| s.is_ready())
                                .map(|i| p.swap_remove(i))
                        }
                    };
                    let reused = match pooled {
                        Some(mut s) => s.ready().await.is_ok().then_some(s),
                        None => None,
                    };
                    let mut sender = match reused {
                        Some(s) => s,
                        None => connect_h1(app, connect_timeout).await?,
                    };
                    match sender.try_send_request(req).await {
                        Ok(resp) => {
                            let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
                            if p.len() < POOL {
                                p.push(sender);
                            }
                            return Ok(resp);
                        }
                        Err(mut e) => match e.take_message() {
                            Some(r) if attempt == 0 => req = r,
                            _ => {
                                return Err(format!(
                                    "the app at {app} failed the request: {}",
                                    e.into_error()
                                ));
                            }
                        },
                    }
                }
                Err(format!("the app at {app} closed every connection"))
            }
        }
    }
}

async fn dial(app: std::net::SocketAddr, t: Duration) -> Result<TokioIo<TcpStream>, String> {
    let tcp = tokio::time::timeout(t, TcpStream::connect(app))
        .await
        .map_err(|_| format!("connecting to the app at {app} timed out after {t:?}"))?
        .map_err(|e| format!("cannot connect to the app at {app}: {e}; is it listening?"))?;
    let _ = tcp.set_nodelay(true);
    Ok(TokioIo::new(tcp))
}

async fn connect_h1(
    app: std::net::SocketAddr,
    t: Duration,
) -> Result<client1::SendRequest<ReqBody>, String> {
    let (s, c) = client1::handshake(dial(app, t).await?)
        .await
        .map_err(|e| format!("HTTP/1.1 to the app at {app}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = c.await {
            debug!(error = %e, "app connection ended");
        }
    });
    Ok(s)
}

async fn connect_h2(
    app: std::net::SocketAddr,
    t: Duration,
) -> Result<client2::SendRequest<ReqBody>, String> {
    let (s, c) = client2::handshake(TokioExecutor::new(), dial(app, t).await?)
        .await
        .map_err(|e| format!("HTTP/2 to the app at {app}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = c.await {
            debug!(error = %e, "app connection ended");
        }
    });
    Ok(s)
}

/// Access log fields of a request (only gathered when the log is on).
struct LogInfo {
    method: Method,
    path: String,
    authority: String,
    version: Version,
    policy: String,
    dry_run: Option<String>,
}

/// One request's accounting; written when the last body referring to it is dropped.
struct Record {
    http: Arc<HttpConn>,
    started: Instant,
    allowed: bool,
    status: AtomicU16,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    reason: OnceLock<String>,
    log: Option<LogInfo>,
}

impl Drop for Record {
    fn drop(&mut self) {
        let h = &self.http;
        let l = &h.l;
        let status = self.status.load(Ordering::Relaxed);
        h.activity.request_ended();
        l.stats.response(status);
        let decision = if self.allowed { "allow" } else { "deny" };
        l.ctx.stats.request(RequestLabels {
            direction: "inbound".into(),
            port: l.port.port,
            source_principal: h
                .conn
                .peer
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |p| p.spiffe_id.clone()),
            decision: decision.into(),
            response_code: status,
        });
        let Some(log) = self.log.take() else {
            return;
        };
        let mut m = h.conn.log_fields(l.port.port);
        m.insert("protocol".into(), format!("{:?}", log.version).into());
        m.insert("method".into(), log.method.as_str().into());
        m.insert("path".into(), log.path.into());
        m.insert("authority".into(), log.authority.into());
        m.insert("status".into(), status.into());
        m.insert(
            "bytes_in".into(),
            self.bytes_in.load(Ordering::Relaxed).into(),
        );
        m.insert(
            "bytes_out".into(),
            self.bytes_out.load(Ordering::Relaxed).into(),
        );
        m.insert(
            "duration_ms".into(),
            (self.started.elapsed().as_millis() as u64).into(),
        );
        m.insert("decision".into(), decision.into());
        m.insert("policy".into(), log.policy.into());
        if let Some(d) = log.dry_run {
            m.insert("dry_run_policy".into(), d.into());
        }
        if let Some(r) = self.reason.get() {
            m.insert("reason".into(), r.clone().into());
        }
        l.ctx.access_log.write(serde_json::Value::Object(m));
    }
}

/// The request body on its way to the app, counted.
struct ReqBody {
    inner: Incoming,
    record: Arc<Record>,
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            self.record
                .bytes_in
                .fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

enum Inner {
    Upstream(Incoming),
    Local(Full<Bytes>),
}

/// The response body toward the caller, counted; its drop ends the request's [`Record`].
struct ProxyBody {
    inner: Inner,
    record: Arc<Record>,
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r: Poll<Option<Result<Frame<Bytes>, Self::Error>>> = match &mut self.inner {
            Inner::Upstream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Local(b) => Pin::new(b).poll_frame(cx).map_err(|e| match e {}),
        };
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            self.record
                .bytes_out
                .fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream(b) => b.is_end_stream(),
            Inner::Local(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream(b) => b.size_hint(),
            Inner::Local(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(normalize("/api/v1/charge"), None);
        assert_eq!(
            normalize("/api/x/../v1/charge").as_deref(),
            Some("/api/v1/charge")
        );
        assert_eq!(
            normalize("/./api/v1/./charge").as_deref(),
            Some("/api/v1/charge")
        );
        assert_eq!(normalize("/../../etc").as_deref(), Some("/etc"));
        assert_eq!(normalize("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(normalize("/a/.").as_deref(), Some("/a/"));
    }
}
