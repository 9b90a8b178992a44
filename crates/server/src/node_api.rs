//! The node API: agents attest, renew their SVIDs, learn their entries and get workload SVIDs
//! signed. Every refusal says why, is logged with the caller's identity, and is counted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use sigil_datastore::{AgentSerials, Error as DsError, ListEntriesFilter, NewAgent, Pagination};
use sigil_proto::node::node_server::Node;
use sigil_proto::node::{self as pb};
use sigil_spiffe::SpiffeId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::authz::{self, EntryRef};
use crate::convert::{ds_status, entry_to_pb};
use crate::state::{Shared, now_unix};
use crate::tls::PeerInfo;
use crate::x509pop;

/// The node API service.
#[derive(Clone)]
pub struct NodeApi {
    pub shared: Arc<Shared>,
}

/// An agent authenticated by its SVID on this connection.
#[derive(Debug, Clone)]
pub struct AgentCaller {
    pub id: SpiffeId,
    pub serial: String,
    pub selectors: BTreeSet<String>,
}

fn peer_of<T>(req: &Request<T>) -> Option<PeerInfo> {
    req.extensions().get::<PeerInfo>().cloned()
}

impl NodeApi {
    /// Authenticates the caller as an attested agent: its client certificate must be an SVID of
    /// this trust domain under `/spire/agent/`, the agent must be recorded and not banned, and
    /// the certificate must be the agent's current (or just renewed) SVID.
    async fn authenticate(&self, peer: Option<PeerInfo>) -> Result<AgentCaller, Status> {
        let s = &self.shared;
        let chain = peer.and_then(|p| p.chain).ok_or_else(|| {
            Status::unauthenticated(
                "this call needs the agent's SVID as TLS client certificate; attest first",
            )
        })?;
        let verified = s
            .verify_own_svid(&chain)
            .map_err(|e| Status::unauthenticated(format!("agent certificate rejected: {e}")))?;
        let id = verified.id;
        if id.trust_domain() != &s.cfg.trust_domain || !authz::is_agent_path(&id) {
            return Err(Status::permission_denied(format!(
                "{id} is not an agent of trust domain {} (agent IDs are spiffe://{}/spire/agent/...)",
                s.cfg.trust_domain, s.cfg.trust_domain
            )));
        }
        let agent = s.ds.get_agent(&id).await.map_err(ds_status)?.ok_or_else(|| {
            Status::permission_denied(format!(
                "agent {id} is not attested (it was evicted or never attested); it must attest again"
            ))
        })?;
        if agent.banned {
            return Err(Status::permission_denied(format!(
                "agent {id} is banned; an operator must evict it (sigil agent evict) before it can attest again"
            )));
        }
        let serial = verified.serial_hex;
        if serial != agent.cert_serial && agent.new_cert_serial.as_deref() != Some(serial.as_str())
        {
            return Err(Status::permission_denied(format!(
                "agent {id} presented SVID serial {serial}, which is not its current one ({}); a superseded SVID cannot be used",
                agent.cert_serial
            )));
        }
        if agent.new_cert_serial.as_deref() == Some(serial.as_str()) {
            // The agent uses its renewed SVID: the old one is retired.
            let promoted = AgentSerials {
                cert_serial: serial.clone(),
                cert_not_after: agent.new_cert_not_after.unwrap_or(agent.cert_not_after),
                new_cert_serial: None,
                new_cert_not_after: None,
            };
            s.ds.update_agent_serials(&id, promoted)
                .await
                .map_err(ds_status)?;
        }
        let selectors = agent
            .selectors
            .iter()
            .map(|s| format!("{}:{}", s.r#type, s.value))
            .collect();
        Ok(AgentCaller {
            id,
            serial,
            selectors,
        })
    }

    /// The entries `agent` may get SVIDs for (direct children, node aliases, descendants).
    pub async fn authorized_entries(
        &self,
        agent: &AgentCaller,
    ) -> Result<Vec<sigil_datastore::RegistrationEntry>, Status> {
        let s = &self.shared;
        let server_parent = SpiffeId::parse(&authz::server_id(&s.cfg.trust_domain))
            .map_err(|e| Status::internal(e.to_string()))?;
        let aliases = list_all(
            s,
            ListEntriesFilter {
                by_parent_id: Some(server_parent),
                ..Default::default()
            },
        )
        .await?;
        let alias_refs: Vec<EntryRef> = aliases.iter().map(entry_ref).collect();
        let alias_ids = authz::matching_aliases(&alias_refs, &agent.selectors);

        // Crawl parent links level by level, fetching only the children needed.
        let mut by_id: BTreeMap<String, sigil_datastore::RegistrationEntry> = BTreeMap::new();
        let mut children: BTreeMap<SpiffeId, Vec<EntryRef>> = BTreeMap::new();
        let mut frontier: Vec<SpiffeId> = std::iter::once(agent.id.clone())
            .chain(alias_ids.iter().cloned())
            .collect();
        let mut fetched: BTreeSet<SpiffeId> = BTreeSet::new();
        while let Some(parent) = frontier.pop() {
            if !fetched.insert(parent.clone()) || fetched.len() > 100_000 {
                continue;
            }
            let kids = list_all(
                s,
                ListEntriesFilter {
                    by_parent_id: Some(parent.clone()),
                    ..Default::default()
                },
            )
            .await?;
            for k in kids {
                frontier.push(k.spiffe_id.clone());
                children
                    .entry(parent.clone())
                    .or_default()
                    .push(entry_ref(&k));
                by_id.insert(k.id.clone(), k);
            }
        }
        let now = now_unix();
        Ok(authz::authorized_entries(&agent.id, &alias_ids, &children)
            .into_iter()
            .filter_map(|r| by_id.get(&r.id).cloned())
            .filter(|e| e.expires_at.is_none_or(|x| x > now))
            .collect())
    }
}

fn entry_ref(e: &sigil_datastore::RegistrationEntry) -> EntryRef {
    EntryRef {
        id: e.id.clone(),
        spiffe_id: e.spiffe_id.clone(),
        parent_id: e.parent_id.clone(),
        selectors: e
            .selectors
            .iter()
            .map(|s| format!("{}:{}", s.r#type, s.value))
            .collect(),
    }
}

async fn list_all(
    s: &Shared,
    filter: ListEntriesFilter,
) -> Result<Vec<sigil_datastore::RegistrationEntry>, Status> {
    Ok(s.ds
        .list_entries(&filter, &Pagination::all())
        .await
        .map_err(ds_status)?
        .items)
}

type AttestStream = ReceiverStream<Result<pb::AttestAgentResponse, Status>>;

#[tonic::async_trait]
impl Node for NodeApi {
    type AttestAgentStream = AttestStream;

    async fn attest_agent(
        &self,
        req: Request<Streaming<pb::AttestAgentRequest>>,
    ) -> Result<Response<AttestStream>, Status> {
        let remote = peer_of(&req)
            .map(|p| p.remote.to_string())
            .unwrap_or_default();
        let mut inbound = req.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument("stream closed before attestation parameters")
        })?;
        let Some(pb::attest_agent_request::Step::Params(params)) = first.step else {
            return Err(Status::invalid_argument(
                "the first message must carry attestation parameters",
            ));
        };
        let (tx, rx) = mpsc::channel(4);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let method = params.r#type.clone();
            let result = attest(&shared, params, &mut inbound, &tx).await;
            match result {
                Ok(r) => {
                    shared.metrics.attestation(&method, "ok");
                    info!(agent = %r.spiffe_id, method = %method, peer.addr = %remote, "agent attested");
                    let _ = tx
                        .send(Ok(pb::AttestAgentResponse {
                            step: Some(pb::attest_agent_response::Step::Result(r)),
                        }))
                        .await;
                }
                Err(status) => {
                    shared.metrics.attestation(&method, reason_label(&status));
                    warn!(method = %method, peer.addr = %remote, reason = %status.message(), "agent attestation refused");
                    let _ = tx.send(Err(status)).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn renew_agent(
        &self,
        req: Request<pb::RenewAgentRequest>,
    ) -> Result<Response<pb::RenewAgentResponse>, Status> {
        let caller = self.authenticate(peer_of(&req)).await?;
        let s = &self.shared;
        let csr = req.into_inner().csr;
        let issued = match s.ca.sign_svid(&csr, &caller.id, &[], s.cfg.agent_svid_ttl) {
            Ok(i) => i,
            Err(e) => {
                s.metrics.svid("agent-svid", "bad_csr");
                warn!(agent = %caller.id, reason = %e, "agent SVID renewal refused");
                return Err(Status::invalid_argument(e.to_string()));
            }
        };
        let agent =
            s.ds.get_agent(&caller.id)
                .await
                .map_err(ds_status)?
                .ok_or_else(|| Status::permission_denied("agent was evicted during renewal"))?;
        let serials = AgentSerials {
            cert_serial: agent.cert_serial,
            cert_not_after: agent.cert_not_after,
            new_cert_serial: Some(issued.serial_hex.clone()),
            new_cert_not_after: Some(issued.not_after),
        };
        s.ds.update_agent_serials(&caller.id, serials)
            .await
            .map_err(ds_status)?;
        s.record_issued(
            &issued,
            &caller.id,
            sigil_datastore::IssuedKind::AgentSvid,
            Some(&caller.id),
            None,
        )
        .await;
        s.metrics.svid("agent-svid", "ok");
        info!(agent = %caller.id, serial = %issued.serial_hex, "agent SVID renewed");
        Ok(Response::new(pb::RenewAgentResponse {
            svid_chain: issued.chain,
            expires_at: issued.not_after,
        }))
    }

    async fn get_authorized_entries(
        &self,
        req: Request<pb::GetAuthorizedEntriesRequest>,
    ) -> Result<Response<pb::GetAuthorizedEntriesResponse>, Status> {
        let caller = self.authenticate(peer_of(&req)).await?;
        let entries = self.authorized_entries(&caller).await?;
        Ok(Response::new(pb::GetAuthorizedEntriesResponse {
            entries: entries.iter().map(entry_to_pb).collect(),
        }))
    }

    async fn batch_new_x509svid(
        &self,
        req: Request<pb::BatchNewX509svidRequest>,
    ) -> Result<Response<pb::BatchNewX509svidResponse>, Status> {
        let caller = self.authenticate(peer_of(&req)).await?;
        let params = req.into_inner().params;
        if params.len() > 500 {
            return Err(Status::invalid_argument(format!(
                "{} CSRs in one batch; send at most 500",
                params.len()
            )));
        }
        let authorized: BTreeMap<String, sigil_datastore::RegistrationEntry> = self
            .authorized_entries(&caller)
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        let mut results = Vec::with_capacity(params.len());
        for p in params {
            results.push(self.sign_one(&caller, &authorized, p).await);
        }
        Ok(Response::new(pb::BatchNewX509svidResponse { results }))
    }

    async fn get_bundles(
        &self,
        req: Request<pb::GetBundlesRequest>,
    ) -> Result<Response<pb::GetBundlesResponse>, Status> {
        self.authenticate(peer_of(&req)).await?;
        let s = &self.shared;
        let mut own = Vec::new();
        let mut federated = std::collections::HashMap::new();
        for b in s.ds.list_bundles().await.map_err(ds_status)? {
            if b.trust_domain == s.cfg.trust_domain {
                own = b.data;
            } else {
                federated.insert(b.trust_domain.to_string(), b.data);
            }
        }
        Ok(Response::new(pb::GetBundlesResponse { own, federated }))
    }

    async fn report_proxies(
        &self,
        req: Request<pb::ReportProxiesRequest>,
    ) -> Result<Response<pb::ReportProxiesResponse>, Status> {
        let caller = self.authenticate(peer_of(&req)).await?;
        let reports = req.into_inner().proxies;
        let n = reports.len();
        let s = &self.shared;
        let agent = caller.id.as_str();
        let now = now_unix();
        let label = |r: &str| crate::metrics::ResultLabel { result: r.into() };
        if !s.proxies.knows(agent) {
            // Continue the history another replica (or this one before a restart) wrote.
            match s
                .ds
                .list_proxy_status(Some(agent), now - crate::proxies::FORGET_AFTER)
                .await
            {
                Ok(stored) => s.proxies.seed(agent, &stored),
                Err(e) => warn!(agent = %caller.id, error = %e, "cannot read stored proxy status"),
            }
        }
        match s.proxies.replace(agent, reports, now) {
            Ok(due) => {
                if let Some(records) = due {
                    let ds = &s.ds;
                    let written = async {
                        ds.put_proxy_status(agent, records, now).await?;
                        ds.prune_proxy_status(now - crate::proxies::FORGET_AFTER)
                            .await
                    };
                    if let Err(e) = written.await {
                        warn!(agent = %caller.id, error = %e, "cannot store proxy status; other replicas will not see this agent's proxies");
                    }
                }
                s.metrics.proxy_reports.get_or_create(&label("ok")).inc();
                s.metrics.proxies.set(s.proxies.len() as i64);
                tracing::debug!(agent = %caller.id, proxies = n, "proxy status report");
                Ok(Response::new(pb::ReportProxiesResponse {}))
            }
            Err(e) => {
                s.metrics
                    .proxy_reports
                    .get_or_create(&label("refused"))
                    .inc();
                warn!(agent = %caller.id, reason = %e, "proxy status report refused");
                Err(Status::invalid_argument(e.to_string()))
            }
        }
    }

    type StreamConfigStream = ReceiverStream<Result<sigil_proto::config::ConfigSnapshot, Status>>;

    async fn stream_config(
        &self,
        req: Request<sigil_proto::config::WatchConfigRequest>,
    ) -> Result<Response<Self::StreamConfigStream>, Status> {
        let peer = peer_of(&req);
        let caller = self.authenticate(peer.clone()).await?;
        let known = req.into_inner().known_revision;
        let (tx, rx) = mpsc::channel(2);
        let api = self.clone();
        info!(agent = %caller.id, known_revision = known, "agent opened the configuration stream");
        tokio::spawn(async move {
            let metrics = api.shared.metrics.clone();
            metrics.config_streams.inc();
            let mut updates = api.shared.config.subscribe();
            // `known_revision` 0 means "I hold nothing": even an empty configuration is sent.
            let mut sent = (known != 0).then_some(known);
            loop {
                let snapshot = updates.borrow_and_update().clone();
                if sent != Some(snapshot.revision) {
                    // Checked again before every push: an evicted or banned agent stops
                    // receiving configuration on an already open stream.
                    if let Err(status) = api.authenticate(peer.clone()).await {
                        warn!(agent = %caller.id, reason = %status.message(), "configuration stream closed: agent no longer authorized");
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                    if tx.send(Ok(snapshot.to_pb())).await.is_err() {
                        break;
                    }
                    sent = Some(snapshot.revision);
                }
                tokio::select! {
                    changed = updates.changed() => if changed.is_err() { break },
                    _ = tx.closed() => break,
                }
            }
            metrics.config_streams.dec();
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type StreamSecretsStream = ReceiverStream<Result<pb::SecretsSnapshot, Status>>;

    async fn stream_secrets(
        &self,
        req: Request<pb::StreamSecretsRequest>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let peer = peer_of(&req);
        let caller = self.authenticate(peer.clone()).await?;
        let refs = crate::secret_delivery::check_request(req.get_ref())?;
        let (tx, rx) = mpsc::channel(2);
        let api = self.clone();
        crate::secret_delivery::spawn_stream(self.shared.clone(), caller, refs, tx, move || {
            let api = api.clone();
            let peer = peer.clone();
            async move { api.authenticate(peer).await }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn new_jwtsvid(
        &self,
        req: Request<pb::NewJwtsvidRequest>,
    ) -> Result<Response<pb::NewJwtsvidResponse>, Status> {
        let caller = self.authenticate(peer_of(&req)).await?;
        crate::jwt_api::new_jwt_svid(self, &caller, req.into_inner())
            .await
            .map(Response::new)
    }
}

impl NodeApi {
    async fn sign_one(
        &self,
        caller: &AgentCaller,
        authorized: &BTreeMap<String, sigil_datastore::RegistrationEntry>,
        p: pb::NewX509svidParams,
    ) -> pb::X509svidResult {
        let s = &self.shared;
        let fail = |code: tonic::Code, msg: String| pb::X509svidResult {
            entry_id: p.entry_id.clone(),
            error_code: code as i32,
            error_message: msg,
            ..Default::default()
        };
        let Some(entry) = authorized.get(&p.entry_id) else {
            let why = match s.ds.get_entry(&p.entry_id).await {
                Ok(Some(e)) => format!(
                    "entry {} ({}) is parented to {}, which is neither agent {} nor a node alias matching its selectors",
                    e.id, e.spiffe_id, e.parent_id, caller.id
                ),
                Ok(None) => format!("entry {} does not exist", p.entry_id),
                Err(e) => e.to_string(),
            };
            s.metrics.svid("x509-svid", "unauthorized");
            warn!(agent = %caller.id, entry = %p.entry_id, reason = %why, "X509-SVID refused");
            return fail(tonic::Code::PermissionDenied, why);
        };
        let ttl = match entry.x509_svid_ttl {
            0 => s.cfg.default_x509_svid_ttl,
            t => Duration::from_secs(u64::from(t)),
        };
        match s
            .ca
            .sign_svid(&p.csr, &entry.spiffe_id, &entry.dns_names, ttl)
        {
            Ok(issued) => {
                s.record_issued(
                    &issued,
                    &entry.spiffe_id,
                    sigil_datastore::IssuedKind::X509Svid,
                    Some(&caller.id),
                    Some(&entry.id),
                )
                .await;
                s.metrics.svid("x509-svid", "ok");
                info!(agent = %caller.id, spiffe_id = %entry.spiffe_id, serial = %issued.serial_hex, "X509-SVID issued");
                pb::X509svidResult {
                    entry_id: entry.id.clone(),
                    cert_chain: issued.chain,
                    expires_at: issued.not_after,
                    spiffe_id: entry.spiffe_id.to_string(),
                    error_code: 0,
                    error_message: String::new(),
                }
            }
            Err(e) => {
                s.metrics.svid("x509-svid", "bad_csr");
                warn!(agent = %caller.id, entry = %entry.id, reason = %e, "X509-SVID refused");
                fail(tonic::Code::InvalidArgument, e.to_string())
            }
        }
    }
}

fn reason_label(s: &Status) -> &'static str {
    match s.code() {
        tonic::Code::PermissionDenied => "denied",
        tonic::Code::InvalidArgument => "invalid",
        tonic::Code::FailedPrecondition => "not_enabled",
        tonic::Code::Unavailable => "unavailable",
        _ => "error",
    }
}

/// Runs one attestation to completion.
async fn attest(
    s: &Shared,
    params: pb::AttestationParams,
    inbound: &mut Streaming<pb::AttestAgentRequest>,
    tx: &mpsc::Sender<Result<pb::AttestAgentResponse, Status>>,
) -> Result<pb::AttestResult, Status> {
    let td = &s.cfg.trust_domain;
    let now = now_unix();
    let (agent_id, selectors, can_reattest, alias) = match params.r#type.as_str() {
        "join_token" => {
            if params.join_token.is_empty() {
                return Err(Status::invalid_argument(
                    "join_token attestation needs a token (sigil token generate)",
                ));
            }
            let token = s.ds.consume_join_token(&params.join_token, now).await.map_err(|e| match e {
                DsError::NotFound { .. } => Status::permission_denied(
                    "join token is unknown or was already used; tokens are single-use: generate a new one with `sigil token generate`",
                ),
                DsError::Expired { expired_at, .. } => Status::permission_denied(format!(
                    "join token expired at {expired_at} (unix seconds); generate a new one with `sigil token generate`"
                )),
                other => ds_status(other),
            })?;
            let id = td
                .id(&format!("/spire/agent/join_token/{}", token.token))
                .map_err(|e| {
                    Status::invalid_argument(format!("join token cannot form an agent ID: {e}"))
                })?;
            (id, Vec::new(), false, token.spiffe_id)
        }
        "x509pop" => {
            let roots = s.x509pop_roots.as_ref().ok_or_else(|| {
                Status::failed_precondition(
                    "x509pop attestation is not enabled on this server; start it with --x509pop-ca-bundle",
                )
            })?;
            let proof = x509pop::verify_chain(roots, &params.x509_chain, now)
                .map_err(|e| Status::permission_denied(format!("x509pop: {e}")))?;
            let nonce = x509pop::new_nonce();
            tx.send(Ok(pb::AttestAgentResponse {
                step: Some(pb::attest_agent_response::Step::Challenge(nonce.to_vec())),
            }))
            .await
            .map_err(|_| Status::cancelled("agent went away"))?;
            let resp = tokio::time::timeout(Duration::from_secs(30), inbound.message())
                .await
                .map_err(|_| {
                    Status::deadline_exceeded("no x509pop challenge response within 30s")
                })??;
            let Some(pb::AttestAgentRequest {
                step: Some(pb::attest_agent_request::Step::ChallengeResponse(sig)),
            }) = resp
            else {
                return Err(Status::invalid_argument(
                    "expected the x509pop challenge response",
                ));
            };
            x509pop::verify_response(&params.x509_chain[0], &nonce, &sig)
                .map_err(|e| Status::permission_denied(format!("x509pop: {e}")))?;
            let id = td
                .id(&format!("/spire/agent/x509pop/{}", proof.fingerprint))
                .map_err(|e| Status::internal(e.to_string()))?;
            (id, proof.selectors, true, None)
        }
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown attestation type {other:?}; this server accepts join_token and x509pop"
            )));
        }
    };

    if let Some(existing) = s.ds.get_agent(&agent_id).await.map_err(ds_status)? {
        if existing.banned {
            return Err(Status::permission_denied(format!(
                "agent {agent_id} is banned; an operator must evict it (sigil agent evict) before it can attest again"
            )));
        }
        if !existing.can_reattest {
            return Err(Status::permission_denied(format!(
                "agent {agent_id} is already attested and cannot re-attest"
            )));
        }
    }
    let issued =
        s.ca.sign_svid(&params.csr, &agent_id, &[], s.cfg.agent_svid_ttl)
            .map_err(|e| Status::invalid_argument(format!("agent CSR refused: {e}")))?;
    let sel: Vec<sigil_datastore::Selector> = selectors.clone();
    match s.ds.get_agent(&agent_id).await.map_err(ds_status)? {
        Some(_) => {
            let serials = AgentSerials {
                cert_serial: issued.serial_hex.clone(),
                cert_not_after: issued.not_after,
                new_cert_serial: None,
                new_cert_not_after: None,
            };
            s.ds.update_agent_serials(&agent_id, serials)
                .await
                .map_err(ds_status)?;
            s.ds.set_node_selectors(&agent_id, sel)
                .await
                .map_err(ds_status)?;
        }
        None => {
            s.ds.create_agent(NewAgent {
                spiffe_id: agent_id.clone(),
                attestation_type: params.r#type.clone(),
                cert_serial: issued.serial_hex.clone(),
                cert_not_after: issued.not_after,
                selectors: sel,
                can_reattest,
            })
            .await
            .map_err(ds_status)?;
        }
    }
    if let Some(alias) = alias {
        // SPIRE's join token -spiffeID: the agent is aliased to this ID.
        let spec = sigil_datastore::EntrySpec::new(
            alias,
            agent_id.clone(),
            vec![sigil_datastore::Selector {
                r#type: "spiffe_id".into(),
                value: agent_id.to_string(),
            }],
        );
        match s.ds.create_entry(spec).await {
            Ok(_) | Err(DsError::AlreadyExists { .. }) => {}
            Err(e) => return Err(ds_status(e)),
        }
    }
    s.record_issued(
        &issued,
        &agent_id,
        sigil_datastore::IssuedKind::AgentSvid,
        Some(&agent_id),
        None,
    )
    .await;
    s.metrics.svid("agent-svid", "ok");
    Ok(pb::AttestResult {
        spiffe_id: agent_id.to_string(),
        svid_chain: issued.chain,
        expires_at: issued.not_after,
        selectors: selectors
            .into_iter()
            .map(|s| pb::Selector {
                r#type: s.r#type,
                value: s.value,
            })
            .collect(),
    })
}
