//! The proxy runtime: wires identity, policy, listeners, admin and stats together.
//!
//! [`build`] does every fallible step up front and returns a [`Bound`] with the addresses it
//! actually bound (port 0 works everywhere but inbound ports, whose number is the
//! PeerAuthentication port). Order:
//!
//! 1. resolve the Workload API socket (`workloadApi`, else `$SPIFFE_ENDPOINT_SOCKET`);
//! 2. bind every listener: inbound ports, outbound upstreams, admin, stats; a failure names the
//!    address and the config field;
//! 3. start the access log, the Workload API watcher (identity) and the MeshConfig watcher
//!    (policy), both on the agent's socket and both retrying with backoff;
//! 4. spawn admin and stats at once, and one task per data listener.
//!
//! **Startup gate.** Data listeners are bound immediately (the ports are reserved and the
//! kernel queues connections), but they start accepting only once the first identity *and*
//! the first mesh configuration have arrived, which is exactly when `/ready` turns 200. Before
//! the mesh configuration arrives the proxy does not know whether a port is STRICT, so serving
//! early would mean enforcing the PERMISSIVE default on a port the operator made STRICT; and a
//! STRICT port cannot complete a handshake without an SVID anyway. Once open, the gate stays
//! open: a later outage of the agent keeps the last identity and policy in force.
//!
//! **Shutdown.** [`Bound::shutdown`] flips one `watch` that every task follows: listeners stop
//! accepting, in-flight connections get `limits.drainTimeout` to finish, then whatever is left
//! is aborted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::access_log::AccessLog;
use crate::admin::{self, Admin, LogControl};
use crate::config::ProxyConfig;
use crate::stats::Stats;
use crate::{Context, identity, mesh};

/// Extra time after `drainTimeout` for tasks to notice and return before they are aborted.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Why the runtime could not start. Configuration problems are apart from environment ones so
/// the CLI can exit 64 for the former.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no Workload API socket: set `workloadApi` in the proxy config (e.g. unix:///run/sigil/agent/api.sock) or SPIFFE_ENDPOINT_SOCKET"
    )]
    NoWorkloadApi,
    #[error("{field} {value:?}: {message}")]
    BadWorkloadApi {
        field: &'static str,
        value: String,
        message: String,
    },
    #[error("accessLog: cannot open {target}: {source}")]
    AccessLog {
        target: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} ({field}): {source}{hint}")]
    Bind {
        addr: SocketAddr,
        field: String,
        source: std::io::Error,
        hint: &'static str,
    },
}

impl StartError {
    /// A mistake in the configuration (as opposed to the environment, such as a port in use).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StartError::NoWorkloadApi
                | StartError::BadWorkloadApi { .. }
                | StartError::AccessLog { .. }
        )
    }
}

/// The Workload API socket: `cfg.workload_api`, else `env` (the value of
/// `SPIFFE_ENDPOINT_SOCKET`). Accepts a path or `unix:///path`.
pub fn workload_api_socket(cfg: &ProxyConfig, env: Option<String>) -> Result<PathBuf, StartError> {
    let (field, value) = match (&cfg.workload_api, env) {
        (Some(v), _) if !v.is_empty() => ("workloadApi", v.clone()),
        (_, Some(v)) if !v.is_empty() => ("SPIFFE_ENDPOINT_SOCKET", v),
        _ => return Err(StartError::NoWorkloadApi),
    };
    sigil_agent::client::socket_path(&value).map_err(|e| StartError::BadWorkloadApi {
        field,
        value: value.clone(),
        message: e.to_string(),
    })
}

async fn bind(addr: SocketAddr, field: String) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                "; another process (or a second proxy) holds it: stop it or pick another port"
            }
            std::io::ErrorKind::PermissionDenied => {
                "; ports below 1024 need CAP_NET_BIND_SERVICE: grant it or pick a port above 1023"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "; no local interface has this address: use 0.0.0.0, 127.0.0.1 or one of this host's addresses"
            }
            _ => "",
        };
        StartError::Bind {
            addr,
            field,
            source,
            hint,
        }
    })
}

fn local_addr(l: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    l.local_addr().unwrap_or(fallback)
}

/// A running proxy: what it bound, and its tasks.
pub struct Bound {
    /// The admin endpoint (`/certs`, `/config_dump`, `/ready`, `/logging`).
    pub admin_addr: SocketAddr,
    /// The stats endpoint (`/stats`, `/stats/prometheus`).
    pub stats_addr: SocketAddr,
    /// Per inbound port of the config, the address bound for it.
    pub inbound_addrs: Vec<(u16, SocketAddr)>,
    /// Per upstream (`host:port`), the local address the app connects to.
    pub outbound_addrs: Vec<(String, SocketAddr)>,
    /// The Workload API socket the identity and policy come from.
    pub workload_api: PathBuf,
    /// What every handler reads (identity, policy, stats, access log).
    pub ctx: Context,
    shutdown: watch::Sender<bool>,
    /// Tasks that must run until shutdown; one ending early is a failure.
    tasks: Vec<(String, JoinHandle<anyhow::Result<()>>)>,
    /// The identity and policy watchers.
    watchers: Vec<JoinHandle<()>>,
}

/// Builds and starts the proxy for `cfg`; `log` makes `/logging` work.
pub async fn build(cfg: ProxyConfig, log: Option<LogControl>) -> anyhow::Result<Bound> {
    let socket = workload_api_socket(&cfg, std::env::var("SPIFFE_ENDPOINT_SOCKET").ok())?;
    let want = match &cfg.workload.spiffe_id {
        Some(id) => Some(
            sigil_spiffe::SpiffeId::parse(id)
                .map_err(|e| anyhow::anyhow!("workload.spiffeId {id:?}: {e}"))?,
        ),
        None => None,
    };

    let mut inbound = Vec::with_capacity(cfg.inbound.len());
    for (i, p) in cfg.inbound.iter().enumerate() {
        let addr = SocketAddr::new(p.bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), p.port);
        let field = if p.bind.is_some() {
            format!("inbound[{i}].bind/port")
        } else {
            format!("inbound[{i}].port")
        };
        inbound.push((p.clone(), bind(addr, field).await?));
    }
    let mut outbound = Vec::with_capacity(cfg.outbound.len());
    for (i, u) in cfg.outbound.iter().enumerate() {
        outbound.push((
            u.clone(),
            bind(u.listen, format!("outbound[{i}].listen")).await?,
        ));
    }
    let admin_l = bind(cfg.admin, "admin".into()).await?;
    let stats_l = bind(cfg.stats, "stats".into()).await?;

    let access_log = AccessLog::start(&cfg.access_log).map_err(|source| StartError::AccessLog {
        target: format!("{:?}", cfg.access_log),
        source,
    })?;

    let (shutdown, shutdown_rx) = watch::channel(false);
    let (identity, id_task) =
        identity::watch_workload_api(socket.clone(), want, shutdown_rx.clone());
    let mesh_ctx = sigil_policy::MeshContext {
        root_namespace: cfg.root_namespace.clone(),
        ..Default::default()
    };
    let (mesh, mesh_task) = mesh::watch_agent(
        socket.clone(),
        cfg.policy_workload(cfg.workload.spiffe_id.as_deref()),
        mesh_ctx,
        shutdown_rx.clone(),
    );
    let ports: Vec<u16> = cfg.inbound.iter().map(|p| p.port).collect();
    let names: Vec<String> = cfg
        .outbound
        .iter()
        .map(|u| format!("{}:{}", u.host, u.port))
        .collect();
    let ctx = Context {
        stats: Arc::new(Stats::new(&ports, &names)),
        cfg: Arc::new(cfg),
        identity,
        mesh,
        access_log,
    };

    let mut bound = Bound {
        admin_addr: local_addr(&admin_l, ctx.cfg.admin),
        stats_addr: local_addr(&stats_l, ctx.cfg.stats),
        inbound_addrs: Vec::new(),
        outbound_addrs: Vec::new(),
        workload_api: socket.clone(),
        ctx: ctx.clone(),
        shutdown,
        tasks: Vec::new(),
        watchers: vec![id_task, mesh_task],
    };

    info!(addr = %bound.admin_addr, "admin endpoint listening");
    info!(addr = %bound.stats_addr, "stats endpoint listening");
    let admin = Admin {
        ctx: ctx.clone(),
        log,
        workload_api: Some(socket.clone()),
    };
    bound.spawn(
        "admin endpoint".into(),
        admin::serve_admin(admin_l, admin, shutdown_rx.clone()),
    );
    bound.spawn(
        "stats endpoint".into(),
        admin::serve_stats(stats_l, ctx.clone(), shutdown_rx.clone()),
    );
    let reporter = crate::report::Reporter {
        proxy_id: crate::report::proxy_id(),
        started_at: crate::report::unix_now(),
        admin: bound.admin_addr,
        stats: bound.stats_addr,
    };
    bound.spawn(
        "status reporter".into(),
        reporter.run(ctx.clone(), socket.clone(), shutdown_rx.clone()),
    );
    bound.spawn(
        "certificate expiry gauge".into(),
        admin::track_cert_expiry(ctx.clone(), shutdown_rx.clone()),
    );

    for (port, listener) in inbound {
        let addr = local_addr(&listener, SocketAddr::from(([0, 0, 0, 0], port.port)));
        info!(port = port.port, %addr, app = %port.app, "inbound port bound");
        bound.inbound_addrs.push((port.port, addr));
        let (ctx, mut shutdown) = (ctx.clone(), shutdown_rx.clone());
        let what = format!("inbound port {}", port.port);
        bound.spawn(what.clone(), async move {
            if !until_ready(&ctx, &mut shutdown).await {
                return Ok(());
            }
            crate::inbound::serve(listener, port, ctx, shutdown)
                .await
                .context(what)
        });
    }
    for ((upstream, listener), name) in outbound.into_iter().zip(names) {
        let addr = local_addr(&listener, upstream.listen);
        info!(upstream = %name, %addr, "outbound listener bound");
        bound.outbound_addrs.push((name.clone(), addr));
        let (ctx, mut shutdown) = (ctx.clone(), shutdown_rx.clone());
        let what = format!("outbound listener {addr} ({name})");
        bound.spawn(what.clone(), async move {
            if !until_ready(&ctx, &mut shutdown).await {
                return Ok(());
            }
            crate::outbound::serve(listener, upstream, ctx, shutdown)
                .await
                .context(what)
        });
    }
    if admin::readiness(&ctx, None).is_err() {
        info!(workload_api = %socket.display(), "listeners bound; traffic waits for the first identity and mesh configuration from the agent");
    }
    Ok(bound)
}

/// Resolves when the first identity and mesh configuration are held (`true`), or on shutdown
/// (`false`).
async fn until_ready(ctx: &Context, shutdown: &mut watch::Receiver<bool>) -> bool {
    let mut ids = ctx.identity.changes();
    let mut views = ctx.mesh.changes();
    let mut announced = false;
    loop {
        if *shutdown.borrow() {
            return false;
        }
        if admin::readiness(ctx, None).is_ok() {
            if announced {
                info!("identity and mesh configuration received; serving traffic");
            }
            return true;
        }
        announced = true;
        tokio::select! {
            _ = changed_or_pending(&mut ids) => {}
            _ = changed_or_pending(&mut views) => {}
            r = shutdown.changed() => if r.is_err() { return false },
            // A safety net for sources that change without signalling (tests replace views).
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// `rx.changed()`, never resolving once the sender is gone.
async fn changed_or_pending<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Bound {
    fn spawn(
        &mut self,
        what: String,
        f: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.tasks.push((what, tokio::spawn(f)));
    }

    /// A receiver that turns `true` when shutdown begins (for embedders' own tasks).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Resolves when a task fails or stops on its own (an error naming it). Cancel-safe: the
    /// tasks stay owned by `self`, so [`shutdown`](Self::shutdown) can still drain them.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        let (r, i, _) = futures::future::select_all(self.tasks.iter_mut().map(|(_, h)| h)).await;
        let (what, _) = self.tasks.remove(i);
        match r {
            Ok(Ok(())) if *self.shutdown.borrow() => Ok(()),
            Ok(Ok(())) => Err(anyhow::anyhow!("{what} stopped unexpectedly")),
            Ok(Err(e)) => Err(e.context(format!("{what} failed"))),
            Err(e) => Err(anyhow::anyhow!("{what} panicked: {e}")),
        }
    }

    /// Graceful stop: listeners stop accepting, open connections get `limits.drainTimeout`,
    /// then anything left is aborted.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let drain = self.ctx.cfg.limits.drain_timeout + STOP_GRACE;
        let deadline = tokio::time::Instant::now() + drain;
        for (what, mut t) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut t).await {
                Ok(Ok(Err(e))) => {
                    tracing::warn!(task = %what, error = %format!("{e:#}"), "task failed while stopping")
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(task = %what, drain_timeout = ?self.ctx.cfg.limits.drain_timeout, "still busy after the drain timeout; closing what is left");
                    t.abort();
                }
            }
        }
        for mut w in self.watchers {
            if tokio::time::timeout(STOP_GRACE, &mut w).await.is_err() {
                w.abort();
            }
        }
        info!("proxy stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(api: Option<&str>) -> ProxyConfig {
        let mut c = ProxyConfig::parse("workload:\n  namespace: payments\n").unwrap();
        c.workload_api = api.map(str::to_owned);
        c
    }

    #[test]
    fn the_socket_comes_from_config_then_environment() {
        assert_eq!(
            workload_api_socket(&cfg(Some("unix:///run/a.sock")), Some("/b.sock".into())).unwrap(),
            PathBuf::from("/run/a.sock")
        );
        assert_eq!(
            workload_api_socket(&cfg(None), Some("unix:///b.sock".into())).unwrap(),
            PathBuf::from("/b.sock")
        );
        let e = workload_api_socket(&cfg(None), None).unwrap_err();
        assert!(
            e.is_config() && e.to_string().contains("SPIFFE_ENDPOINT_SOCKET"),
            "{e}"
        );
        let e = workload_api_socket(&cfg(Some("tcp://127.0.0.1:1")), None).unwrap_err();
        assert!(e.to_string().contains("workloadApi"), "{e}");
    }

    #[tokio::test]
    async fn a_bind_error_names_the_field() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(addr, "outbound[0].listen".into()).await.unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("outbound[0].listen") && s.contains(&addr.to_string()),
            "{s}"
        );
        assert!(!e.is_config());
    }
}
