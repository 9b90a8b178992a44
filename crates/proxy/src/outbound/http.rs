//! HTTP upstreams: hyper serves the app (HTTP/1.1 keep-alive, or HTTP/2 by its preface); each
//! request goes through the plan's pooled client, whose connector dials with the plan's TLS.
//! Upstream connections are reused across requests and app connections; responses (403s
//! included) pass through unchanged. One access log line per request, when its body ends.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::Outbound;
use super::dial::{Conn, ConnInfo, DialError, LogEntry, Route};
use crate::config::{AppProtocol, Limits};

/// The pooled client of one plan.
pub(crate) struct Pool {
    client: Client<Connector, ReqBody>,
}

impl Pool {
    /// `mesh` is watched for revocations of each pooled connection's upstream certificate.
    pub(crate) fn new(
        route: Arc<Route>,
        protocol: AppProtocol,
        limits: &Limits,
        mesh: crate::mesh::MeshSource,
    ) -> Self {
        let mut b = Client::builder(TokioExecutor::new());
        b.pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(limits.idle_timeout);
        if protocol == AppProtocol::Http2 {
            b.http2_only(true);
        }
        Pool {
            client: b.build(Connector { route, mesh }),
        }
    }
}

/// Dials for the pool (hyper-util's `Connect` is implemented for `tower_service::Service<Uri>`,
/// which tonic re-exports). The URI is ignored: the route knows the endpoints.
#[derive(Clone)]
struct Connector {
    route: Arc<Route>,
    mesh: crate::mesh::MeshSource,
}

impl tonic::codegen::Service<Uri> for Connector {
    type Response = TokioIo<Conn>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Conn>, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let route = self.route.clone();
        let mesh = self.mesh.clone();
        Box::pin(async move {
            let mut conn = route.dial().await?;
            // A pooled connection outlives the request that opened it: it is closed when its
            // upstream's certificate is revoked, like an open TCP connection.
            if !conn.info.peer_serials.is_empty() {
                let serials = conn.info.peer_serials.clone();
                conn.revocation = Some(super::dial::RevocationWatch {
                    revoked: Box::pin(async move {
                        crate::revocation::revoked_later(&mesh, &serials).await
                    }),
                    stats: route.proxy_stats.clone(),
                    closed: false,
                });
            }
            Ok(TokioIo::new(conn))
        })
    }
}

/// Serves one app connection until it closes or `shutdown` (then gracefully).
pub(crate) async fn serve_app(
    out: Arc<Outbound>,
    app: TcpStream,
    peer: SocketAddr,
    protocol: AppProtocol,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = out.ctx.cfg.limits.clone();
    let svc = service_fn(move |req| {
        let out = out.clone();
        async move { Ok::<_, Infallible>(forward(out, req, peer).await) }
    });
    let io = TokioIo::new(app);
    let r = if protocol == AppProtocol::Http2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        let conn = b.serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = super::stopped(&mut shutdown) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true)
            .max_buf_size(limits.max_header_bytes.max(8192));
        let conn = b.serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = super::stopped(&mut shutdown) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    if let Err(e) = r {
        debug!(error = %e, "app connection ended with an error");
    }
}

/// Hop-by-hop headers, not forwarded (RFC 9110 §7.6.1).
const HOP: &[header::HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

fn strip_hop(h: &mut HeaderMap) {
    if let Some(named) = h.get(header::CONNECTION).cloned()
        && let Ok(named) = named.to_str()
    {
        for n in named.split(',') {
            h.remove(n.trim());
        }
    }
    for n in HOP {
        h.remove(n);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

fn error_response(status: StatusCode, text: String, close: bool) -> Response<RespBody> {
    let mut r = Response::new(RespBody {
        inner: None,
        local: Some(Bytes::from(text)),
        tally: None,
    });
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn find_dial_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a DialError> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(d) = err.downcast_ref::<DialError>() {
            return Some(d);
        }
        cur = err.source();
    }
    None
}

async fn forward(
    out: Arc<Outbound>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<RespBody> {
    let start = Instant::now();
    let plan = out.plan();
    let mut entry = plan.route.log_entry(peer, out.ctx.access_log.enabled());
    if entry.enabled() {
        entry.set("method", json!(req.method().as_str()));
        entry.set(
            "path",
            json!(req.uri().path_and_query().map(PathAndQuery::as_str)),
        );
        entry.set(
            "authority",
            json!(
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
            ),
        );
        entry.set("protocol", json!(format!("{:?}", req.version())));
    }
    let Some(pool) = &plan.http else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this upstream is TCP\n".to_owned(),
            true,
        );
    };
    let (mut parts, body) = req.into_parts();
    // The pool needs an absolute URI; the app's Host (or :authority) is kept as written.
    let authority = parts
        .uri
        .authority()
        .cloned()
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        })
        .or_else(|| Authority::try_from(out.name.as_str()).ok());
    let mut uri = Uri::builder().scheme("http");
    if let Some(a) = authority {
        uri = uri.authority(a);
    }
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = match uri.path_and_query(pq).build() {
        Ok(u) => u,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("bad request target: {e}\n"),
                true,
            );
        }
    };
    // The pooled connection decides HTTP/1.1 or HTTP/2 towards the upstream.
    parts.version = Version::HTTP_11;
    strip_hop(&mut parts.headers);
    let sent = Arc::new(AtomicU64::new(0));
    let body = ReqBody {
        inner: body,
        count: sent.clone(),
    };
    match pool.client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            out.stats.response(status);
            out.count_request(status);
            if let Some(info) = resp.extensions().get::<Arc<ConnInfo>>() {
                entry.connected(info);
            }
            entry.set("status", json!(status));
            let (mut parts, body) = resp.into_parts();
            strip_hop(&mut parts.headers);
            Response::from_parts(
                parts,
                RespBody {
                    inner: Some(body),
                    local: None,
                    tally: Some(Tally {
                        out,
                        entry: Some(entry),
                        start,
                        sent,
                        received: 0,
                    }),
                },
            )
        }
        Err(e) => {
            let (reason, no_upstream) = match find_dial_error(&e) {
                Some(d) => {
                    entry.failure(d);
                    (d.reason.clone(), d.addr.is_none())
                }
                None => {
                    let r = format!("the upstream request failed: {e}");
                    entry.reason(r.as_str());
                    (r, false)
                }
            };
            warn!(reason = %reason, "upstream request failed");
            out.ctx
                .stats
                .note_error(format!("outbound {}: {reason}", out.name));
            out.stats.response(503);
            out.count_request(503);
            entry.set("status", json!(503));
            if let Some(line) = entry.finish(start.elapsed()) {
                out.ctx.access_log.write(line);
            }
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("upstream connect error: {reason}\n"),
                no_upstream,
            )
        }
    }
}

/// The app's request body, counted.
pub(crate) struct ReqBody {
    inner: Incoming,
    count: Arc<AtomicU64>,
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            this.count.fetch_add(d.len() as u64, Ordering::Relaxed);
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

/// Counts and logs a request when its response body is done (or dropped).
struct Tally {
    out: Arc<Outbound>,
    entry: Option<LogEntry>,
    start: Instant,
    sent: Arc<AtomicU64>,
    received: u64,
}

impl Drop for Tally {
    fn drop(&mut self) {
        let sent = self.sent.load(Ordering::Relaxed);
        self.out.stats.bytes(sent, self.received);
        if let Some(mut entry) = self.entry.take() {
            entry.bytes(sent, self.received);
            if let Some(line) = entry.finish(self.start.elapsed()) {
                self.out.ctx.access_log.write(line);
            }
        }
    }
}

/// The response to the app: the upstream's body, or a local error text.
pub(crate) struct RespBody {
    inner: Option<Incoming>,
    local: Option<Bytes>,
    tally: Option<Tally>,
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(b) = this.local.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        let r = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
            && let Some(t) = &mut this.tally
        {
            t.received += d.len() as u64;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.local.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.local, &self.inner) {
            (Some(b), _) => SizeHint::with_exact(b.len() as u64),
            (None, Some(i)) => i.size_hint(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}
