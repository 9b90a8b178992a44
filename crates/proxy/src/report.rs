//! The proxy's status report to its agent (`sigil.status.v1.ProxyStatus`): who it serves,
//! what it enforces, its SVID, its last error and what each inbound port saw. The agent
//! forwards it to the server, where `sigil proxy status`, `sigil describe workload` and
//! `sigil strict-readiness` read it.
//!
//! Reporting is best effort and never affects traffic: a failure is logged once per outage
//! and retried at the next interval.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sigil_policy::MtlsMode;
use sigil_proto::status::{PortTraffic, ProxyReport, TrafficSource, Upstream};
use std::sync::atomic::Ordering;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::Context;
use crate::config::AppProtocol;

/// Until the agent says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Identifies this proxy process and where it listens.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub proxy_id: String,
    pub started_at: i64,
    pub admin: SocketAddr,
    pub stats: SocketAddr,
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `<hostname>/<pid>/<start unix ms>`, with `.<n>` for the second and later proxies embedded
/// in one process: unique per proxy, readable in `sigil proxy status`.
pub fn proxy_id() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let id = format!("{host}/{}/{ms}", std::process::id());
    if n == 0 { id } else { format!("{id}.{n}") }
}

pub fn mode_name(m: MtlsMode) -> &'static str {
    match m {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Disable => "DISABLE",
        MtlsMode::Permissive | MtlsMode::Unset => "PERMISSIVE",
    }
}

pub fn protocol_name(p: AppProtocol) -> &'static str {
    match p {
        AppProtocol::Http => "http",
        AppProtocol::Http2 => "http2",
        AppProtocol::Tcp => "tcp",
        AppProtocol::Auto => "auto",
    }
}

impl Reporter {
    /// The report as of now. `ready_at`: when traffic started flowing (0: not yet).
    pub fn build(&self, ctx: &Context, ready_at: i64) -> ProxyReport {
        let cfg = &ctx.cfg;
        let identity = ctx.identity.current();
        let view = ctx.mesh.current();
        let inbound = ctx
            .stats
            .inbound_ports()
            .map(|(port, s)| {
                let protocol = cfg
                    .inbound
                    .iter()
                    .find(|p| p.port == port)
                    .map(|p| protocol_name(p.protocol))
                    .unwrap_or("http");
                let sources = s
                    .plaintext_sources
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let mut plaintext_sources: Vec<TrafficSource> = sources
                    .by_ip
                    .iter()
                    .map(|(ip, v)| TrafficSource {
                        address: ip.to_string(),
                        connections: v.connections,
                        last_seen: v.last_seen,
                        refused: v.refused,
                    })
                    .collect();
                plaintext_sources.sort_by(|a, b| {
                    b.last_seen
                        .cmp(&a.last_seen)
                        .then_with(|| a.address.cmp(&b.address))
                });
                PortTraffic {
                    port: u32::from(port),
                    protocol: protocol.into(),
                    mtls_mode: mode_name(view.mtls.mode_for_port(port).0).into(),
                    mtls: s.handshake.load(Ordering::Relaxed),
                    plaintext: s.plaintext.load(Ordering::Relaxed),
                    plaintext_refused: s.plaintext_to_strict.load(Ordering::Relaxed),
                    plaintext_sources,
                    sources_dropped: sources.dropped,
                }
            })
            .collect();
        // Only sent once an SVID is held (see `run`), so the one gap left to report is the
        // mesh configuration.
        let (last_error_at, last_error) = if ctx.mesh.received() {
            ctx.stats.last_error().unwrap_or_default()
        } else {
            (0, "no mesh configuration yet from the agent".to_owned())
        };
        ProxyReport {
            proxy_id: self.proxy_id.clone(),
            workload_namespace: cfg.workload.namespace.clone(),
            workload_name: cfg.workload.name.clone(),
            labels: cfg
                .workload
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            spiffe_id: identity
                .as_ref()
                .map(|i| i.id.to_string())
                .unwrap_or_default(),
            admin_address: self.admin.to_string(),
            stats_address: self.stats.to_string(),
            config_revision: view.revision,
            svid_serial: identity
                .as_ref()
                .map(|i| i.serial_hex.clone())
                .unwrap_or_default(),
            svid_not_after: identity.as_ref().map(|i| i.not_after).unwrap_or(0),
            last_error,
            last_error_at,
            started_at: self.started_at,
            reported_at: unix_now(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            inbound,
            outbound: cfg
                .outbound
                .iter()
                .map(|u| Upstream {
                    host: u.host.clone(),
                    port: u32::from(u.port),
                    protocol: protocol_name(u.protocol).into(),
                    subset: u.subset.clone().unwrap_or_default(),
                })
                .collect(),
            ready_at,
            svid_chain: identity
                .as_ref()
                .map(|i| i.chain.iter().map(|c| c.to_vec()).collect())
                .unwrap_or_default(),
            // Filled in by the agent from the attested caller.
            attested_selectors: Vec::new(),
            root_namespace: cfg.root_namespace.clone(),
        }
    }

    /// Reports to the agent at `socket` every interval until `shutdown`.
    pub async fn run(
        self,
        ctx: Context,
        socket: PathBuf,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut interval = DEFAULT_INTERVAL;
        let mut failing = false;
        let mut ready_at = 0;
        let mut client = None;
        let mut ids = ctx.identity.changes();
        let mut views = ctx.mesh.changes();
        loop {
            if ready_at == 0 && crate::admin::readiness(&ctx, None).is_ok() {
                ready_at = unix_now();
            }
            let report = self.build(&ctx, ready_at);
            // The agent trusts a report for the identity its process holds: none yet, none sent.
            let sent = async {
                if report.spiffe_id.is_empty() {
                    return anyhow::Ok(0);
                }
                if client.is_none() {
                    client = Some(sigil_agent::client::connect_status(&socket).await?);
                }
                let c = client
                    .as_mut()
                    .ok_or_else(|| anyhow::anyhow!("no client"))?;
                let ack = c.report(report).await?.into_inner();
                anyhow::Ok(ack.interval_ms)
            };
            match sent.await {
                Ok(ms) => {
                    if failing {
                        info!("status reports reach the agent again");
                    }
                    failing = false;
                    if ms > 0 {
                        interval = Duration::from_millis(ms)
                            .clamp(Duration::from_millis(100), Duration::from_secs(60));
                    }
                    debug!(?interval, "status reported");
                }
                Err(e) => {
                    client = None;
                    if !failing {
                        warn!(error = %format!("{e:#}"), socket = %socket.display(), "cannot report status to the agent; retrying (traffic is not affected)");
                    }
                    failing = true;
                }
            }
            // A new SVID or configuration is reported at once; counters wait for the interval.
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                Ok(()) = ids.changed() => {}
                Ok(()) = views.changed() => {}
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            }
        }
    }
}
