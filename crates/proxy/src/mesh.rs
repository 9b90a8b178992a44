//! The mesh configuration as this proxy enforces it: received from the agent's MeshConfig
//! service, parsed with the same strict decoder as `sigil apply`, compiled once per change for
//! this workload, and swapped atomically. A snapshot that does not parse is refused and the
//! last good view stays in force.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sigil_policy::{
    CompiledAuthz, CompiledMtls, DestinationRuleSpec, MeshContext, Object, Resource,
    ServiceEntrySpec, Workload, WorkloadEntrySpec,
};
use sigil_proto::config::{ConfigSnapshot, WatchConfigRequest};
use tokio::sync::watch;
use tracing::{info, warn};

/// Everything the data path needs from policy, compiled for this workload.
pub struct MeshView {
    /// Store revision of the configuration (0 before any).
    pub revision: i64,
    pub ctx: MeshContext,
    pub workload: Workload,
    /// Inbound mTLS mode per port, with the policy that set it.
    pub mtls: CompiledMtls,
    /// AuthorizationPolicies selecting this workload, in evaluation order.
    pub authz: CompiledAuthz,
    pub destination_rules: Vec<Object<DestinationRuleSpec>>,
    pub service_entries: Vec<Object<ServiceEntrySpec>>,
    pub workload_entries: Vec<Object<WorkloadEntrySpec>>,
    /// Every object of the snapshot (for `/config_dump`).
    pub resources: Vec<Resource>,
    /// Revoked certificates delivered with the snapshot.
    pub revoked: crate::revocation::RevokedSet,
}

impl MeshView {
    /// The view with no configuration at all (PERMISSIVE everywhere, no policies).
    pub fn empty(workload: Workload, ctx: MeshContext) -> Self {
        Self::compile(0, Vec::new(), workload, ctx)
    }

    /// Compiles `resources` for `workload`.
    pub fn compile(
        revision: i64,
        resources: Vec<Resource>,
        workload: Workload,
        ctx: MeshContext,
    ) -> Self {
        let mtls = CompiledMtls::from_resources(&resources, &workload, &ctx);
        let authz = CompiledAuthz::from_resources(&resources, &workload, &ctx);
        let mut destination_rules = Vec::new();
        let mut service_entries = Vec::new();
        let mut workload_entries = Vec::new();
        for r in &resources {
            match r {
                Resource::DestinationRule(o) => destination_rules.push(o.clone()),
                Resource::ServiceEntry(o) => service_entries.push(o.clone()),
                Resource::WorkloadEntry(o) => workload_entries.push(o.clone()),
                _ => {}
            }
        }
        MeshView {
            revision,
            ctx,
            workload,
            mtls,
            authz,
            destination_rules,
            service_entries,
            workload_entries,
            resources,
            revoked: Default::default(),
        }
    }

    /// The view with `revoked` as its revoked certificates.
    pub fn with_revoked(mut self, revoked: crate::revocation::RevokedSet) -> Self {
        self.revoked = revoked;
        self
    }

    /// Parses a snapshot from the agent; any object that fails refuses the whole snapshot.
    pub fn parse_snapshot(s: &ConfigSnapshot) -> Result<Vec<Resource>, String> {
        let mut out = Vec::with_capacity(s.resources.len());
        for r in &s.resources {
            let label = format!("{} {}/{}", r.kind, r.namespace, r.name);
            let mut parsed = sigil_policy::parse_documents(&label, &r.json).map_err(|errs| {
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            if parsed.len() != 1 {
                return Err(format!("{label}: expected one object"));
            }
            out.push(parsed.remove(0));
        }
        Ok(out)
    }
}

/// The current view, read lock-free on the data path.
#[derive(Clone)]
pub struct MeshSource {
    current: Arc<ArcSwap<MeshView>>,
    changed: watch::Receiver<i64>,
}

impl MeshSource {
    /// A source holding `view` that never changes (tests, benchmarks).
    pub fn fixed(view: MeshView) -> Self {
        let r = view.revision;
        MeshSource {
            current: Arc::new(ArcSwap::from_pointee(view)),
            changed: watch::channel(r).1,
        }
    }

    pub fn current(&self) -> Arc<MeshView> {
        self.current.load_full()
    }

    /// Signals each new revision.
    pub fn changes(&self) -> watch::Receiver<i64> {
        self.changed.clone()
    }

    /// Whether a view has been delivered at least once (any revision, 0 included). A
    /// [`fixed`](Self::fixed) source counts as delivered. `/ready` waits for this.
    pub fn received(&self) -> bool {
        // The stored receiver never marks a value seen, so any send since creation shows
        // here; a closed channel is a fixed source (or a stopped watcher).
        self.changed.has_changed().unwrap_or(true)
    }

    /// Replaces the view (used by the watcher, and by tests driving policy directly).
    pub fn replace(&self, view: MeshView) {
        self.current.store(Arc::new(view));
    }
}

/// Follows the agent's MeshConfig service at `socket` until `shutdown`.
pub fn watch_agent(
    socket: std::path::PathBuf,
    workload: Workload,
    ctx: MeshContext,
    mut shutdown: watch::Receiver<bool>,
) -> (MeshSource, tokio::task::JoinHandle<()>) {
    let current = Arc::new(ArcSwap::from_pointee(MeshView::empty(
        workload.clone(),
        ctx.clone(),
    )));
    let (tx, rx) = watch::channel(0i64);
    let source = MeshSource {
        current: current.clone(),
        changed: rx,
    };
    let task = tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        let mut failing = false;
        let mut known = 0i64;
        loop {
            let attempt = async {
                let mut c = sigil_agent::client::connect_config(&socket).await?;
                let mut stream = c
                    .watch_config(WatchConfigRequest {
                        known_revision: known,
                    })
                    .await?
                    .into_inner();
                while let Some(s) = stream.message().await? {
                    match MeshView::parse_snapshot(&s) {
                        Ok(resources) => {
                            let view = MeshView::compile(
                                s.revision,
                                resources,
                                workload.clone(),
                                ctx.clone(),
                            )
                            .with_revoked(crate::revocation::RevokedSet::from_pb(&s.revoked));
                            info!(
                                revision = s.revision,
                                objects = view.resources.len(),
                                authorization_policies = view.authz.policies().count(),
                                revoked_certificates = view.revoked.len(),
                                "mesh configuration applied"
                            );
                            current.store(Arc::new(view));
                            known = s.revision;
                            let _ = tx.send(s.revision);
                            failing = false;
                            delay = Duration::from_millis(100);
                        }
                        Err(e) => {
                            warn!(revision = s.revision, error = %e, "mesh configuration refused; keeping the last good one")
                        }
                    }
                }
                anyhow::Ok(())
            };
            let r = tokio::select! {
                r = attempt => r,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            if let Err(e) = r
                && !failing
            {
                failing = true;
                warn!(error = %format!("{e:#}"), "agent MeshConfig service unavailable; retrying (current policy kept)");
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
    (source, task)
}
