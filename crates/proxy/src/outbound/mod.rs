//! Outbound: the local app connects in plaintext to an upstream listener; the proxy dials the
//! service with the TLS the DestinationRule asks for (automatic mTLS when none does), checks
//! the server's identity (secure naming), and forwards.
//!
//! Per app connection, as explicit steps:
//! 1. accept (connection cap, drain on shutdown);
//! 2. the protocol: the upstream's, or sniffed for `auto`;
//! 3. the [`Plan`] for the current (identity, mesh view): endpoints ([`resolve`]) and the
//!    `rustls::ClientConfig` ([`tls`]), built once per change and shared;
//! 4. TCP: dial one upstream connection ([`dial`]) and copy both ways. HTTP: serve the app with
//!    hyper and send each request through the plan's pooled client ([`http`]).

mod dial;
mod http;
mod resolve;
mod tls;

pub use resolve::destination_query;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::Context;
use crate::config::{AppProtocol, Upstream};
use crate::identity::Identity;
use crate::mesh::MeshView;
use crate::stats::{ListenerStats, RequestLabels};

use dial::Route;

/// Serves one upstream listener until `shutdown`, then lets open connections finish for at
/// most `limits.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    upstream: Upstream,
    ctx: Context,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let name = format!("{}:{}", upstream.host, upstream.port);
    let out = Arc::new(Outbound {
        stats: ctx.stats.outbound(&name),
        name,
        upstream,
        ctx,
        plan: ArcSwapOption::empty(),
        rr: Arc::new(AtomicUsize::new(0)),
    });
    info!(
        listen = %out.upstream.listen,
        destination = %out.name,
        protocol = ?out.upstream.protocol,
        "outbound listener ready"
    );
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "outbound accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if conns.len() >= out.ctx.cfg.limits.max_connections {
                    out.stats.overflow.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    debug!(peer.addr = %peer, "outbound connection cap reached; closing");
                    continue;
                }
                let span = info_span!("outbound", destination = %out.name, peer.addr = %peer);
                conns.spawn(connection(out.clone(), stream, peer, shutdown.clone()).instrument(span));
            }
        }
    }
    drop(listener);
    let drain = out.ctx.cfg.limits.drain_timeout;
    let drained =
        tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            destination = %out.name,
            open = conns.len(),
            "drain timeout: closing the remaining outbound connections"
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// Shared by every connection of one upstream listener.
pub(crate) struct Outbound {
    pub upstream: Upstream,
    /// `host:port`, the stats and log name.
    pub name: String,
    pub ctx: Context,
    pub stats: Arc<ListenerStats>,
    plan: ArcSwapOption<Plan>,
    /// Round-robin position, kept across plans.
    rr: Arc<AtomicUsize>,
}

/// Everything decided for one (identity, mesh view): endpoints, TLS, the HTTP pool.
pub(crate) struct Plan {
    identity: Option<Arc<Identity>>,
    view: Arc<MeshView>,
    pub route: Arc<Route>,
    /// The pooled upstream client (HTTP upstreams); a new plan starts a new pool, so new
    /// connections carry the new identity and settings while open ones finish.
    pub http: Option<http::Pool>,
}

impl Outbound {
    /// The plan for the current identity and mesh view (built at most once per change).
    pub(crate) fn plan(&self) -> Arc<Plan> {
        let identity = self.ctx.identity.current();
        let view = self.ctx.mesh.current();
        if let Some(p) = self.plan.load_full()
            && Arc::ptr_eq(&p.view, &view)
            && match (&p.identity, &identity) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        {
            return p;
        }
        let p = Arc::new(self.build_plan(identity, view));
        self.plan.store(Some(p.clone()));
        p
    }

    fn build_plan(&self, identity: Option<Arc<Identity>>, view: Arc<MeshView>) -> Plan {
        let cfg = &self.ctx.cfg;
        let dest = resolve::destination(&view, &self.upstream, &cfg.workload.namespace);
        let protocol = match self.upstream.protocol {
            AppProtocol::Auto => AppProtocol::Http,
            p => p,
        };
        let tls = tls::plan(
            cfg,
            &view,
            identity.as_deref(),
            &self.upstream,
            protocol,
            &dest,
        );
        for n in dest.notes.iter().chain(&tls.notes) {
            warn!(destination = %self.name, "{n}");
        }
        match &tls.config {
            Err(e) => {
                warn!(destination = %self.name, error = %e, "upstream TLS is misconfigured; connections will be refused")
            }
            Ok(_) => info!(
                destination = %self.name,
                revision = view.revision,
                tls_mode = tls.mode,
                auto_mtls = tls.auto,
                destination_rule = tls.rule.as_deref().unwrap_or("none"),
                expected_server = %tls.expected,
                endpoints = %dest.targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                "outbound plan"
            ),
        }
        if dest.targets.is_empty() {
            warn!(destination = %self.name, "{}", no_address(&self.name));
        }
        let route = Arc::new(Route {
            name: self.name.clone(),
            tls,
            dest,
            stats: self.stats.clone(),
            rr: self.rr.clone(),
            timeout: cfg.limits.handshake_timeout,
            revoked: view.revoked.clone(),
            proxy_stats: self.ctx.stats.clone(),
        });
        let http = (self.upstream.protocol != AppProtocol::Tcp).then(|| {
            http::Pool::new(
                route.clone(),
                self.upstream.protocol,
                &cfg.limits,
                self.ctx.mesh.clone(),
            )
        });
        Plan {
            identity,
            view,
            route,
            http,
        }
    }

    /// Our own SPIFFE ID (the source principal of outbound requests), or `unknown`.
    pub(crate) fn own_principal(&self) -> String {
        self.ctx
            .identity
            .current()
            .map_or_else(|| "unknown".to_owned(), |i| i.id.to_string())
    }

    pub(crate) fn count_request(&self, status: u16) {
        self.ctx.stats.request(RequestLabels {
            direction: "outbound".into(),
            port: self.upstream.port,
            source_principal: self.own_principal(),
            decision: "allow".into(),
            response_code: status,
        });
    }
}

/// Resolves once `shutdown` says stop (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

pub(crate) fn no_address(name: &str) -> String {
    format!(
        "no address for {name}: add `address:` to the upstream or a ServiceEntry with endpoints"
    )
}

async fn connection(
    out: Arc<Outbound>,
    app: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let _guard = out.stats.open();
    let _ = app.set_nodelay(true);
    let protocol = match out.upstream.protocol {
        AppProtocol::Auto | AppProtocol::Http2 => sniff(&app, out.upstream.protocol).await,
        p => p,
    };
    match protocol {
        AppProtocol::Tcp => tcp(out, app, peer).await,
        p => http::serve_app(out, app, peer, p, shutdown).await,
    }
}

/// For `auto`: HTTP/1.x by its first line, HTTP/2 by its preface, else TCP. For `http2`: the
/// preface means HTTP/2, anything else is served as HTTP/1.1.
async fn sniff(app: &TcpStream, configured: AppProtocol) -> AppProtocol {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"PATCH ",
        b"OPTIONS ",
        b"CONNECT ",
        b"TRACE ",
    ];
    let fallback = if configured == AppProtocol::Auto {
        AppProtocol::Tcp
    } else {
        AppProtocol::Http
    };
    let mut buf = [0u8; 16];
    // Server-first protocols send nothing: give up quickly and treat them as TCP.
    let first_bytes = async {
        loop {
            let n = app.peek(&mut buf).await?;
            if n == 0 || n == buf.len() || buf[..n].contains(&b' ') {
                return Ok::<usize, std::io::Error>(n);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), first_bytes).await else {
        return fallback;
    };
    let head = &buf[..n];
    if head.starts_with(b"PRI ") {
        AppProtocol::Http2
    } else if METHODS.iter().any(|m| head.starts_with(m)) {
        AppProtocol::Http
    } else {
        fallback
    }
}

/// One app connection ↔ one upstream connection.
async fn tcp(out: Arc<Outbound>, mut app: TcpStream, peer: SocketAddr) {
    let start = Instant::now();
    let plan = out.plan();
    let route = &plan.route;
    let mut entry = route.log_entry(peer, out.ctx.access_log.enabled());
    match route.dial().await {
        Err(e) => {
            warn!(reason = %e.reason, "upstream connection refused");
            out.ctx
                .stats
                .note_error(format!("outbound {}: {}", out.name, e.reason));
            entry.failure(&e);
        }
        Ok(mut conn) => {
            entry.connected(&conn.info);
            let info = conn.info.clone();
            // Forwarded until either side ends, or until the upstream's certificate is
            // revoked: dropping the copy closes both connections.
            tokio::select! {
                r = tokio::io::copy_bidirectional_with_sizes(
                    &mut app,
                    &mut conn,
                    crate::COPY_BUFFER,
                    crate::COPY_BUFFER,
                ) => match r {
                    Ok((from_app, to_app)) => {
                        out.stats.bytes(from_app, to_app);
                        entry.bytes(from_app, to_app);
                    }
                    Err(e) => {
                        debug!(error = %e, "TCP forwarding ended with an error");
                        entry.reason(format!("connection reset while forwarding: {e}"));
                    }
                },
                r = crate::revocation::revoked_later(&out.ctx.mesh, &info.peer_serials),
                    if !info.peer_serials.is_empty() =>
                {
                    out.ctx.stats.revoked_peer("outbound", "closed");
                    crate::revocation::log("outbound", "closed", &info.addr.to_string(), &r);
                    entry.reason(format!(
                        "closed: the upstream's certificate {} ({}) was revoked ({})",
                        r.serial, r.spiffe_id, r.reason
                    ));
                }
            }
        }
    }
    out.count_request(0);
    if let Some(line) = entry.finish(start.elapsed()) {
        out.ctx.access_log.write(line);
    }
}
