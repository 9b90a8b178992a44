//! Proxy status: the proxies on this node report themselves on the agent's socket
//! (`sigil.status.v1.ProxyStatus`), and the agent forwards the live set to the server with
//! each report interval.
//!
//! Trust: a report is only a claim, so the agent attests the calling process from its socket
//! credentials exactly as the Workload API does. A report that names a SPIFFE ID the caller's
//! entries do not give it is refused; the pid recorded is the attested one, never the claimed
//! one; and a `proxy_id` belongs to the process that first reported it until it goes stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_proto::node::ReportProxiesRequest;
use sigil_proto::status::proxy_status_server::{ProxyStatus, ProxyStatusServer};
use sigil_proto::status::{ProxyReport, ReportAck};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::manager::Manager;
use crate::workload_api::WorkloadApi;

/// A proxy that has not reported for this many intervals is dropped.
const STALE_INTERVALS: u32 = 3;
/// Bounds on what local processes can make the agent hold (and forward).
pub const MAX_PROXIES: usize = 1024;
const MAX_PER_PROCESS: usize = 16;
const MAX_CHAIN_BYTES: usize = 64 * 1024;
const MAX_TEXT: usize = 4096;

/// The reports of the live proxies on this node.
pub struct ProxyHub {
    interval: Duration,
    proxies: Mutex<HashMap<String, Held>>,
    /// Wakes the forwarder when a proxy appears, so the server learns it without waiting.
    appeared: Notify,
}

struct Held {
    at: Instant,
    report: ProxyReport,
}

impl ProxyHub {
    /// Proxies report, and the agent forwards, every `interval`.
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(ProxyHub {
            interval,
            proxies: Mutex::new(HashMap::new()),
            appeared: Notify::new(),
        })
    }

    /// The report interval for a given sync interval: five syncs, at most 30 s.
    pub fn interval_for(sync_interval: Duration) -> Duration {
        (sync_interval * 5).min(Duration::from_secs(30))
    }

    /// Records `report` from the attested process `pid`; a new proxy wakes the forwarder.
    fn accept(&self, pid: u32, mut report: ProxyReport) -> Result<(), Status> {
        report.pid = pid;
        let now = Instant::now();
        let stale = self.interval * STALE_INTERVALS;
        let mut map = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, h| now.duration_since(h.at) < stale);
        if !map.contains_key(&report.proxy_id) {
            if map.len() >= MAX_PROXIES {
                return Err(Status::resource_exhausted(format!(
                    "this agent already tracks {MAX_PROXIES} proxies"
                )));
            }
            if map.values().filter(|h| h.report.pid == pid).count() >= MAX_PER_PROCESS {
                return Err(Status::resource_exhausted(format!(
                    "process {pid} already reports {MAX_PER_PROCESS} proxies"
                )));
            }
        }
        let is_new = match map.get(&report.proxy_id) {
            Some(h) if h.report.pid != pid => {
                return Err(Status::already_exists(format!(
                    "proxy_id {:?} is reported by another process (pid {}); each proxy needs its own id",
                    report.proxy_id, h.report.pid
                )));
            }
            Some(_) => false,
            None => true,
        };
        if is_new {
            info!(proxy = %report.proxy_id, pid, workload = %format!("{}/{}", report.workload_namespace, report.workload_name), spiffe_id = %report.spiffe_id, "proxy reported for the first time");
        }
        map.insert(report.proxy_id.clone(), Held { at: now, report });
        drop(map);
        if is_new {
            self.appeared.notify_one();
        }
        Ok(())
    }

    /// The live proxies' latest reports.
    pub fn snapshot(&self) -> Vec<ProxyReport> {
        let now = Instant::now();
        let stale = self.interval * STALE_INTERVALS;
        let mut map = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, h| {
            let live = now.duration_since(h.at) < stale;
            if !live {
                info!(proxy = %id, "proxy stopped reporting; forgetting it");
            }
            live
        });
        let mut out: Vec<ProxyReport> = map.values().map(|h| h.report.clone()).collect();
        out.sort_by(|a, b| a.proxy_id.cmp(&b.proxy_id));
        out
    }

    /// Sends the live set to the server every interval (and at once when a proxy appears),
    /// until `shutdown`. Failures are logged once per outage and retried next interval.
    pub async fn forward(
        self: Arc<Self>,
        manager: Arc<Manager>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.appeared.notified() => {}
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            }
            let proxies = self.snapshot();
            let n = proxies.len();
            let sent = async {
                let mut client = manager.node_client().await?;
                client
                    .report_proxies(ReportProxiesRequest { proxies })
                    .await?;
                anyhow::Ok(())
            };
            match sent.await {
                Ok(()) => {
                    if failing {
                        info!(proxies = n, "proxy status reaches the server again");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        warn!(error = %format!("{e:#}"), "cannot report proxy status to the server; retrying every interval");
                    }
                    failing = true;
                }
            }
        }
    }
}

/// The `ProxyStatus` gRPC service on the agent's socket.
#[derive(Clone)]
pub struct ProxyStatusService {
    hub: Arc<ProxyHub>,
    api: WorkloadApi,
}

impl ProxyStatusService {
    /// Reports are attested through `api` (the Workload API's attestor and entry cache).
    pub fn new(hub: Arc<ProxyHub>, api: WorkloadApi) -> ProxyStatusServer<Self> {
        ProxyStatusServer::new(ProxyStatusService { hub, api })
    }
}

#[tonic::async_trait]
impl ProxyStatus for ProxyStatusService {
    async fn report(&self, request: Request<ProxyReport>) -> Result<Response<ReportAck>, Status> {
        let (caller, selectors, entitled) = self.api.entitled_ids(&request).await?;
        let mut report = request.into_inner();
        report.attested_selectors = selectors.iter().map(ToString::to_string).collect();
        check_shape(&report)?;
        if report.spiffe_id.is_empty() {
            return Err(Status::failed_precondition(
                "report after the first SVID: a report is trusted for the identity its process holds",
            ));
        }
        if !entitled.iter().any(|id| id == &report.spiffe_id) {
            warn!(pid = caller.pid, uid = caller.uid, claimed = %report.spiffe_id, "proxy report refused: the process is not entitled to the identity it claims");
            return Err(Status::permission_denied(format!(
                "process {} (uid {}) reports identity {} but its registration entries give [{}]",
                caller.pid,
                caller.uid,
                report.spiffe_id,
                entitled.join(", ")
            )));
        }
        if let Some(ns) = namespace_of(&report.spiffe_id)
            && ns != report.workload_namespace
        {
            warn!(pid = caller.pid, claimed = %report.workload_namespace, spiffe_id = %report.spiffe_id, "proxy report refused: namespace differs from its identity's");
            return Err(Status::permission_denied(format!(
                "workload namespace {:?} differs from the namespace of its identity {} ({ns}): set `workload.namespace: {ns}` in the proxy config",
                report.workload_namespace, report.spiffe_id
            )));
        }
        debug!(pid = caller.pid, proxy = %report.proxy_id, "proxy report");
        self.hub.accept(caller.pid as u32, report)?;
        Ok(Response::new(ReportAck {
            interval_ms: self.hub.interval.as_millis() as u64,
        }))
    }
}

/// The `NS` of an Istio-style ID `spiffe://TD/ns/NS/sa/SA`, which names the workload's
/// namespace for every policy (`source.namespace`).
fn namespace_of(id: &str) -> Option<&str> {
    let path = id.strip_prefix("spiffe://")?.split_once('/')?.1;
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("ns"), Some(ns), Some("sa")) => Some(ns),
        _ => None,
    }
}

/// Size bounds of one report.
fn check_shape(r: &ProxyReport) -> Result<(), Status> {
    let bad = |what: &str| Err(Status::invalid_argument(what.to_owned()));
    if r.proxy_id.is_empty() || r.proxy_id.len() > 256 {
        return bad("proxy_id must be 1 to 256 bytes");
    }
    if r.svid_chain.iter().map(Vec::len).sum::<usize>() > MAX_CHAIN_BYTES {
        return bad("svid_chain larger than 64 KiB");
    }
    if r.last_error.len() > MAX_TEXT
        || r.workload_name.len() > 253
        || r.workload_namespace.len() > 253
        || r.labels.len() > 64
        || r.labels.iter().any(|(k, v)| k.len() + v.len() > 512)
        || r.inbound.len() > 64
        || r.outbound.len() > 256
    {
        return bad(
            "report too large: at most 64 labels, 64 inbound ports, 256 upstreams, 4 KiB of last error",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> ProxyReport {
        ProxyReport {
            proxy_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_namespace_comes_from_istio_style_ids_only() {
        assert_eq!(
            namespace_of("spiffe://cluster.local/ns/payments/sa/billing"),
            Some("payments")
        );
        assert_eq!(namespace_of("spiffe://example.org/web"), None);
        assert_eq!(namespace_of("spiffe://example.org/ns/x"), None);
    }

    #[test]
    fn one_process_cannot_fill_the_table() {
        let hub = ProxyHub::new(Duration::from_secs(5));
        for i in 0..MAX_PER_PROCESS {
            hub.accept(7, report(&format!("p{i}"))).unwrap();
        }
        let e = hub.accept(7, report("one-more")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        hub.accept(8, report("other")).unwrap();
    }

    #[test]
    fn a_proxy_id_belongs_to_the_process_that_reported_it() {
        let hub = ProxyHub::new(Duration::from_secs(5));
        hub.accept(10, report("a")).unwrap();
        hub.accept(10, report("a")).unwrap();
        let e = hub.accept(11, report("a")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists);
        assert!(e.message().contains("pid 10"), "{}", e.message());
        let snap = hub.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].pid, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_proxies_are_dropped() {
        let hub = ProxyHub::new(Duration::from_secs(1));
        hub.accept(10, report("a")).unwrap();
        hub.accept(11, report("b")).unwrap();
        tokio::time::advance(Duration::from_millis(2500)).await;
        hub.accept(11, report("b")).unwrap();
        tokio::time::advance(Duration::from_millis(1000)).await;
        let ids: Vec<_> = hub.snapshot().into_iter().map(|r| r.proxy_id).collect();
        assert_eq!(ids, ["b"]);
    }
}
