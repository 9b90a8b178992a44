//! The admin and stats endpoints: two small HTTP/1.1 servers, off the data path.
//!
//! Admin (default `127.0.0.1:15000`, `admin:` in the config):
//! - `GET /certs`: the workload's SVID (SPIFFE ID, serial, validity, seconds to expiry, chain as
//!   PEM) and the trust bundles by trust domain. Never a private key.
//! - `GET /config_dump`: the policy in force: mesh revision, workload, per inbound port the mTLS
//!   mode and the PeerAuthentication that set it, ignored PeerAuthentications, the
//!   AuthorizationPolicies in evaluation order (and those in scope that do not apply), per
//!   upstream the DestinationRule TLS decision.
//! - `GET /ready`: 200 `LIVE` once an identity is held and the mesh configuration arrived,
//!   else 503 saying what is missing. Listeners are bound before that (see [`crate::run`]).
//! - `GET|POST /logging?level=DIRECTIVE`: changes the log filter at runtime through a
//!   [`LogControl`]; 501 when the embedding program gave none.
//!
//! Stats (default `127.0.0.1:15090`, `stats:`): `GET /stats` (Envoy's `name: value` text, so
//! `curl -s localhost:15090/stats | grep ssl.handshake` works) and `GET /stats/prometheus`.
//! The admin server answers both as well, as Envoy's admin port does.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sigil_policy::{
    DestinationQuery, IgnoredReason, Level, LookupStep, NotAppliedReason, Origin, TlsLevel,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::Context;
use crate::identity::Identity;

/// The endpoints of the admin server, for the 404 answer.
const ADMIN_ENDPOINTS: &str = "/certs /config_dump /ready /logging /stats /stats/prometheus";
/// The endpoints of the stats server, for the 404 answer.
const STATS_ENDPOINTS: &str = "/stats /stats/prometheus";

/// Changes the process's log filter at runtime (`/logging`). The binary that sets up
/// `tracing` builds one (usually with [`LogControl::from_reload`]) and hands it to
/// [`crate::run::build`].
#[derive(Clone)]
pub struct LogControl {
    current: Arc<dyn Fn() -> String + Send + Sync>,
    set: Arc<SetFilter>,
}

/// Replaces the log filter, or says why not.
type SetFilter = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogControl")
            .field("current", &(self.current)())
            .finish()
    }
}

impl LogControl {
    /// A control from two functions: read the filter, replace it (an error says why not).
    pub fn new(
        current: impl Fn() -> String + Send + Sync + 'static,
        set: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        LogControl {
            current: Arc::new(current),
            set: Arc::new(set),
        }
    }

    /// A control over a `tracing_subscriber::reload` layer holding an `EnvFilter`.
    pub fn from_reload<S: 'static>(
        handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, S>,
    ) -> Self {
        let reader = handle.clone();
        LogControl::new(
            move || {
                reader
                    .with_current(|f| f.to_string())
                    .unwrap_or_else(|e| format!("unknown ({e})"))
            },
            move |directive| {
                let filter = tracing_subscriber::EnvFilter::try_new(directive)
                    .map_err(|e| format!("{directive:?} is not a log filter: {e}"))?;
                handle.reload(filter).map_err(|e| e.to_string())
            },
        )
    }

    /// The filter in force.
    pub fn current(&self) -> String {
        (self.current)()
    }

    /// Replaces the filter with `directive` (`debug`, `info,sigil_proxy=trace`, …).
    pub fn set(&self, directive: &str) -> Result<(), String> {
        (self.set)(directive)
    }
}

/// What the admin server answers from.
#[derive(Clone)]
pub struct Admin {
    pub ctx: Context,
    pub log: Option<LogControl>,
    /// The Workload API socket, named in `/ready` while no identity arrived.
    pub workload_api: Option<PathBuf>,
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    let mut body = serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into());
    body.push('\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as RFC 3339 UTC.
fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The value of `key` in a query string, percent-decoded (`+` is a space).
fn query_param(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What `/ready` waits for: `Ok` when ready, else each missing piece in words.
pub fn readiness(ctx: &Context, workload_api: Option<&std::path::Path>) -> Result<(), Vec<String>> {
    let mut missing = Vec::new();
    if ctx.identity.current().is_none() {
        missing.push(match workload_api {
            Some(p) => format!(
                "no workload identity yet from the Workload API at {}; is the agent running there, and is a registration entry matching this process?",
                p.display()
            ),
            None => "no workload identity yet from the Workload API".to_owned(),
        });
    }
    if !ctx.mesh.received() {
        missing.push(match workload_api {
            Some(p) => format!(
                "no mesh configuration yet from the agent's MeshConfig service at {}",
                p.display()
            ),
            None => "no mesh configuration yet from the agent".to_owned(),
        });
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// `/certs`: the SVID and the bundles, as PEM, never the key.
pub fn certs_json(identity: Option<&Identity>, now: i64) -> Value {
    let Some(id) = identity else {
        return json!({ "spiffe_id": null, "error": "no workload identity yet" });
    };
    let chain: Vec<String> = id
        .chain
        .iter()
        .map(|c| sigil_spiffe::pem::encode_certificates(std::iter::once(c)))
        .collect();
    let bundles: serde_json::Map<String, Value> = id
        .bundles
        .iter()
        .map(|b| {
            let roots: Vec<Value> = b
                .x509_authorities()
                .iter()
                .map(|c| Value::String(sigil_spiffe::pem::encode_certificates(std::iter::once(c))))
                .collect();
            (b.trust_domain().to_string(), Value::Array(roots))
        })
        .collect();
    json!({
        "spiffe_id": id.id.as_str(),
        "serial": id.serial_hex,
        "not_before": rfc3339(id.not_before),
        "not_after": rfc3339(id.not_after),
        "seconds_to_expiry": id.seconds_to_expiry(now),
        "chain": chain,
        "trust_bundles": bundles,
    })
}

fn level_str(l: Level) -> String {
    match l {
        Level::Mesh => "mesh".into(),
        Level::Namespace => "namespace".into(),
        Level::Workload => "workload".into(),
        Level::Port(p) => format!("port {p}"),
    }
}

fn origin_json(o: &Origin) -> Value {
    match o {
        Origin::Default => {
            json!({ "policy": null, "level": "default", "note": "no PeerAuthentication sets a mode: PERMISSIVE" })
        }
        Origin::Policy { id, level } => {
            json!({ "policy": id.to_string(), "level": level_str(*level) })
        }
    }
}

/// The namespace of a Kubernetes service host (`name.ns.svc.<domain>`), if it is one.
fn service_namespace(host: &str) -> Option<&str> {
    let mut parts = host.split('.');
    let (_, ns, svc) = (parts.next()?, parts.next()?, parts.next()?);
    (svc == "svc" && !ns.is_empty()).then_some(ns)
}

/// `/config_dump`: the effective policy of this workload, with where each piece comes from.
pub fn config_dump_json(ctx: &Context) -> Value {
    let cfg = &ctx.cfg;
    let view = ctx.mesh.current();
    let ports: Vec<u16> = cfg.inbound.iter().map(|p| p.port).collect();
    let report = view.mtls.report(&ports);
    let inbound: Vec<Value> = cfg
        .inbound
        .iter()
        .zip(&report.ports)
        .map(|(p, m)| {
            json!({
                "port": p.port,
                "bind": p.bind.map(|b| b.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                "app": p.app.to_string(),
                "protocol": format!("{:?}", p.protocol).to_lowercase(),
                "mtls_mode": m.mode,
                "mtls_source": origin_json(&m.origin),
            })
        })
        .collect();
    let ignored: Vec<Value> = report
        .ignored
        .iter()
        .map(|i| {
            let reason = match &i.reason {
                IgnoredReason::SelectorInRootNamespace => {
                    "a PeerAuthentication with a selector in the root namespace never applies"
                        .to_owned()
                }
                IgnoredReason::Shadowed { by, level } => format!(
                    "shadowed by the older {by} at the {} level",
                    level_str(*level)
                ),
            };
            json!({ "policy": i.id.to_string(), "reason": reason })
        })
        .collect();
    let selected: Vec<Value> = report
        .selected
        .iter()
        .map(|(l, id)| json!({ "level": level_str(*l), "policy": id.to_string() }))
        .collect();
    let authz: Vec<Value> = view
        .authz
        .policies()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "order": i,
                "policy": p.id.to_string(),
                "action": p.action.as_str(),
                "dry_run": p.dry_run,
                "provider": p.provider,
            })
        })
        .collect();
    let not_applied: Vec<Value> = view
        .authz
        .not_applied()
        .iter()
        .map(|n| {
            let reason = match n.reason {
                NotAppliedReason::TargetRef => {
                    "uses targetRef: applies to gateways and waypoints, never to a sidecar"
                }
                NotAppliedReason::SelectorMismatch => {
                    "its selector does not match this workload's labels"
                }
            };
            json!({ "policy": n.id.to_string(), "reason": reason })
        })
        .collect();
    let outbound: Vec<Value> = cfg
        .outbound
        .iter()
        .map(|u| {
            let mut q = DestinationQuery::new(&cfg.workload.namespace, &u.host, u32::from(u.port))
                .client_labels(&cfg.workload.labels)
                .root_namespace(&cfg.root_namespace);
            if let Some(ns) = service_namespace(&u.host) {
                q = q.service_namespace(ns);
            }
            if let Some(s) = &u.subset {
                q = q.subset(s);
            }
            let tls = match sigil_policy::destination_tls(&view.destination_rules, &q) {
                None => json!({
                    "mode": "AUTO",
                    "rule": null,
                    "note": "no DestinationRule applies: automatic mTLS (ISTIO_MUTUAL)",
                }),
                Some(d) => json!({
                    "mode": d.tls.map_or(json!("AUTO"), |t| json!(t.mode)),
                    "settings": d.tls,
                    "rule": d.rule.to_string(),
                    "level": match d.level {
                        TlsLevel::SubsetPortLevel => "subset port level",
                        TlsLevel::Subset => "subset",
                        TlsLevel::PortLevel => "port level",
                        TlsLevel::TopLevel => "top level",
                        TlsLevel::Unset => "unset (automatic mTLS)",
                    },
                    "found_in": match d.step {
                        LookupStep::ClientNamespace => "client namespace",
                        LookupStep::ServiceNamespace => "service namespace",
                        LookupStep::RootNamespace => "root namespace",
                    },
                    "host": d.host,
                    "merged": d.merged.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "subset_found": d.subset_found,
                }),
            };
            json!({
                "listen": u.listen.to_string(),
                "host": u.host,
                "port": u.port,
                "protocol": format!("{:?}", u.protocol).to_lowercase(),
                "address": u.address.map(|a| a.to_string()),
                "subset": u.subset,
                "tls": tls,
            })
        })
        .collect();
    json!({
        "mesh": {
            "revision": view.revision,
            "received": ctx.mesh.received(),
            "objects": view.resources.len(),
            "root_namespace": view.ctx.root_namespace,
        },
        "workload": {
            "name": cfg.workload.name,
            "namespace": cfg.workload.namespace,
            "labels": cfg.workload.labels,
            "spiffe_id": ctx.identity.current().map(|i| i.id.as_str().to_owned()),
        },
        "peer_authentication": {
            "workload_mode": report.workload.0,
            "workload_source": origin_json(&report.workload.1),
            "selected": selected,
            "ignored": ignored,
        },
        "inbound": inbound,
        "authorization": {
            "policies": authz,
            "not_applied": not_applied,
        },
        "outbound": outbound,
    })
}

impl Admin {
    /// Answers one admin request (no socket needed; the server calls this).
    pub fn handle(&self, method: &Method, uri: &Uri) -> Resp {
        let path = uri.path();
        if let Some(r) = stats_response(&self.ctx, method, path) {
            return r;
        }
        let read_only = matches!(*method, Method::GET | Method::HEAD);
        match path {
            "/certs" | "/config_dump" | "/ready" if !read_only => text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} answers GET only\n"),
            ),
            "/certs" => {
                let id = self.ctx.identity.current();
                let status = if id.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                json_resp(status, &certs_json(id.as_deref(), now_unix()))
            }
            "/config_dump" => json_resp(StatusCode::OK, &config_dump_json(&self.ctx)),
            "/ready" => match readiness(&self.ctx, self.workload_api.as_deref()) {
                Ok(()) => text(StatusCode::OK, "LIVE\n"),
                Err(missing) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("NOT READY\n{}\n", missing.join("\n")),
                ),
            },
            "/logging" => self.logging(method, uri),
            _ => text(
                StatusCode::NOT_FOUND,
                format!("no such endpoint {path}; try one of: {ADMIN_ENDPOINTS}\n"),
            ),
        }
    }

    fn logging(&self, method: &Method, uri: &Uri) -> Resp {
        if !matches!(*method, Method::GET | Method::POST) {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "/logging answers GET and POST\n",
            );
        }
        let Some(log) = &self.log else {
            return text(
                StatusCode::NOT_IMPLEMENTED,
                "this process cannot change its log filter at runtime (no log control was given to the proxy)\n",
            );
        };
        match query_param(uri, "level") {
            None => text(
                StatusCode::OK,
                format!(
                    "active log filter: {}\nchange it with POST /logging?level=debug (any tracing filter directive)\n",
                    log.current()
                ),
            ),
            Some(level) => match log.set(&level) {
                Ok(()) => {
                    info!(filter = %level, "log filter changed through /logging");
                    text(
                        StatusCode::OK,
                        format!("active log filter: {}\n", log.current()),
                    )
                }
                Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            },
        }
    }
}

/// `/stats` and `/stats/prometheus`, or `None` for other paths.
fn stats_response(ctx: &Context, method: &Method, path: &str) -> Option<Resp> {
    let body = match path {
        "/stats" => ctx.stats.envoy_text(),
        "/stats/prometheus" => ctx.stats.prometheus_text(),
        _ => return None,
    };
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Some(text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} answers GET only\n"),
        ));
    }
    let mut r = text(StatusCode::OK, body);
    if path == "/stats/prometheus" {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
    }
    Some(r)
}

/// Answers one stats-server request.
pub fn handle_stats(ctx: &Context, method: &Method, uri: &Uri) -> Resp {
    stats_response(ctx, method, uri.path()).unwrap_or_else(|| {
        text(
            StatusCode::NOT_FOUND,
            format!(
                "no such endpoint {}; try one of: {STATS_ENDPOINTS}\n",
                uri.path()
            ),
        )
    })
}

/// Serves HTTP/1.1 on `listener` with `handle` until `shutdown` turns true.
async fn serve_http<F>(
    what: &'static str,
    listener: TcpListener,
    handle: F,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()>
where
    F: Fn(&Method, &Uri) -> Resp + Clone + Send + Sync + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                warn!(endpoint = what, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let r = handle(req.method(), req.uri());
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc);
            if let Err(e) = conn.await {
                debug!(endpoint = what, peer.addr = %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Serves the admin endpoints on `listener` until `shutdown`.
pub async fn serve_admin(
    listener: TcpListener,
    admin: Admin,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr()
        && !addr.ip().is_loopback()
    {
        warn!(%addr, "the admin endpoint listens beyond loopback: anyone who reaches it can read the certificates and policy and change the log level; set `admin:` to 127.0.0.1");
    }
    let admin = Arc::new(admin);
    serve_http(
        "admin",
        listener,
        move |m: &Method, u: &Uri| admin.handle(m, u),
        shutdown,
    )
    .await
}

/// Serves the stats endpoints on `listener` until `shutdown`.
pub async fn serve_stats(
    listener: TcpListener,
    ctx: Context,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    serve_http(
        "stats",
        listener,
        move |m: &Method, u: &Uri| handle_stats(&ctx, m, u),
        shutdown,
    )
    .await
}

/// Keeps `ctx.stats.cert_expiry` at the current SVID's notAfter until `shutdown`.
pub async fn track_cert_expiry(
    ctx: Context,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut changes = ctx.identity.changes();
    loop {
        if let Some(id) = ctx.identity.current() {
            ctx.stats.cert_expiry.store(id.not_after, Ordering::Relaxed);
        }
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    // A fixed source: nothing will change any more.
                    return Ok(());
                }
            }
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let u: Uri = "/logging?x=1&level=info%2Csigil_proxy%3Ddebug"
            .parse()
            .unwrap();
        assert_eq!(
            query_param(&u, "level").as_deref(),
            Some("info,sigil_proxy=debug")
        );
        let u: Uri = "/logging?level=debug".parse().unwrap();
        assert_eq!(query_param(&u, "level").as_deref(), Some("debug"));
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn service_namespace_of_kubernetes_hosts() {
        assert_eq!(
            service_namespace("billing-service.payments.svc.cluster.local"),
            Some("payments")
        );
        assert_eq!(service_namespace("api.example.com"), None);
    }
}
