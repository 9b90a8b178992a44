//! The SPIFFE Workload API server (gRPC over a Unix socket), per `SPIFFE_Workload_API.md` and
//! `SPIFFE_Workload_Endpoint.md`, following SPIRE's agent where the spec leaves room.
//!
//! Every call:
//! 1. must carry the metadata `workload.spiffe.io: true`, else InvalidArgument
//!    "security header missing from request" (clients must not retry that);
//! 2. is attested from the connection's `SO_PEERCRED` ([`UdsConnectInfo`]), never from request
//!    contents: the [`WorkloadAttestor`] turns pid/uid/gid into selectors.
//!
//! Streams (FetchX509SVID, FetchX509Bundles, FetchJWTBundles) send the complete state first
//! and then again whenever the cache snapshot changes in a way this caller can see, or an SVID
//! it was given expires (see [`stream`]). A caller matching no entry gets PermissionDenied
//! naming its selectors. When a stream that was serving SVIDs loses its last entry, the stream
//! ends with that PermissionDenied rather than sending an empty message (the spec's "absence
//! is redaction" would allow either; SPIRE ends the stream, and so do we). What a client does
//! with the SVID it already holds is then up to the client.
//!
//! Attestation happens once per call, so a stream keeps the selectors it started with (as
//! SPIRE does). Risks this leaves open, as in SPIRE without its peer tracker:
//! - a process that execs another binary or changes uid keeps, on streams it already holds,
//!   the identity it was attested with;
//! - the pid comes from `SO_PEERCRED`, taken at `connect(2)`. If the connecting process exits
//!   while another one (a forked child, or a receiver of the fd) keeps the connection, a later
//!   call on it attests whatever process then has that pid. [`crate::attestor::UnixAttestor`]
//!   catches reuse *during* an attestation (start time read twice) and requires the process
//!   to have the connection's uid/gid, so only a same-user process can be mistaken this way;
//!   closing the gap fully needs a pidfd taken at accept time (a custom `Connected` type).
//!
//! WIT-SVID RPCs answer Unimplemented. The gRPC health service runs on the same socket: its
//! status starts NOT_SERVING and is set by the agent through the [`HealthReporter`].

mod socket;
mod stream;
pub mod views;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sigil_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use sigil_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    ValidateJwtsvidRequest, ValidateJwtsvidResponse, WitBundlesRequest, WitBundlesResponse,
    WitsvidRequest, WitsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svidRequest,
    X509svidResponse,
};
use sigil_spiffe::SpiffeId;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::{Router, UdsConnectInfo};
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tracing::{debug, info_span, warn};

pub use socket::bind_workload_socket;

use crate::attestor::{AttestError, Caller, WorkloadAttestor};
use crate::cache::{CacheRx, CacheState, Selector};
use crate::jwt::{JwtError, JwtSource};
use stream::Counters;
use views::{CallerBundles, Entitlement, View};

/// The metadata key every Workload API call must carry with the value `true`.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// The gRPC service name of the Workload API (package-less), as the health service knows it.
pub const SERVICE_NAME: &str = <SpiffeWorkloadApiServer<WorkloadApi> as NamedService>::NAME;

/// Streams open at once beyond which new ones get ResourceExhausted.
pub const DEFAULT_MAX_STREAMS: usize = 10_000;

/// Live-stream and message counters (for tests and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Server-streaming calls whose push task is still running.
    pub live_streams: usize,
    /// Messages handed to streams since start (all streams).
    pub messages_sent: u64,
}

struct Shared {
    counters: Arc<Counters>,
    closing: watch::Sender<bool>,
    max_streams: AtomicUsize,
}

/// The Workload API service. Cheap to clone; clones share counters and shutdown.
#[derive(Clone)]
pub struct WorkloadApi {
    cache: CacheRx,
    attestor: Arc<dyn WorkloadAttestor>,
    jwt: Arc<dyn JwtSource>,
    shared: Arc<Shared>,
}

impl WorkloadApi {
    pub fn new(
        cache: CacheRx,
        attestor: Arc<dyn WorkloadAttestor>,
        jwt: Arc<dyn JwtSource>,
    ) -> Self {
        WorkloadApi {
            cache,
            attestor,
            jwt,
            shared: Arc::new(Shared {
                counters: Arc::default(),
                closing: watch::channel(false).0,
                max_streams: AtomicUsize::new(DEFAULT_MAX_STREAMS),
            }),
        }
    }

    /// Caps the number of streams open at once (new ones get ResourceExhausted).
    /// Applies to every clone.
    pub fn with_max_streams(self, max: usize) -> Self {
        self.shared.max_streams.store(max, Ordering::Relaxed);
        self
    }

    pub fn stats(&self) -> StreamStats {
        StreamStats {
            live_streams: self.shared.counters.live(),
            messages_sent: self.shared.counters.sent(),
        }
    }

    /// Ends every open stream (their last item is Unavailable "the agent is shutting down")
    /// and every stream opened later. [`serve`] calls this when its shutdown future resolves,
    /// so that graceful shutdown does not wait for streams that never end by themselves.
    pub fn close_streams(&self) {
        self.shared.closing.send_replace(true);
    }

    /// Header check, peer credentials, attestation (on the blocking pool: it may hash a file).
    async fn attest<T>(&self, request: &Request<T>) -> Result<(Caller, Vec<Selector>), Status> {
        check_security_header(request.metadata())?;
        let caller = caller_of(request)?;
        // Procfs reads are cheap and done inline; only hashing an executable not seen before
        // goes to the blocking pool.
        let attested = match self.attestor.attest_nonblocking(&caller) {
            Some(r) => r,
            None => {
                let attestor = self.attestor.clone();
                tokio::task::spawn_blocking(move || attestor.attest(&caller))
                    .await
                    .map_err(|e| {
                        Status::internal(format!("workload attestation task failed: {e}"))
                    })?
            }
        };
        match attested {
            Ok(selectors) => {
                debug!(pid = caller.pid, ?selectors, "workload attested");
                Ok((caller, selectors))
            }
            Err(e) => {
                warn!(pid = caller.pid, uid = caller.uid, error = %e, "workload attestation failed");
                Err(attest_status(&e))
            }
        }
    }

    /// Attests the caller of `request` as the Workload API would and returns its selectors
    /// and the SPIFFE IDs its entries give it now (for services beside the Workload API that
    /// must know who calls, such as proxy status reports).
    pub async fn entitled_ids<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(Caller, Vec<Selector>, Vec<String>), Status> {
        let (caller, selectors) = self.attest(request).await?;
        let state = self.cache.borrow().clone();
        let ent = Entitlement::of(&state, &selectors, stream::now_secs());
        let ids = ent.svids.iter().map(|s| s.spiffe_id.to_string()).collect();
        Ok((caller, selectors, ids))
    }

    /// Attests, computes the first view, and starts the push task of a stream.
    async fn open_stream<T, M, F>(
        &self,
        request: Request<T>,
        rpc: &'static str,
        compute: F,
    ) -> Result<Response<ReceiverStream<Result<M, Status>>>, Status>
    where
        M: Clone + PartialEq + Send + 'static,
        F: Fn(&CacheState, &[Selector], i64) -> Result<View<M>, Status> + Send + 'static,
    {
        let (caller, selectors) = self.attest(&request).await?;
        if *self.shared.closing.borrow() {
            return Err(Status::unavailable("the agent is shutting down"));
        }
        let max_streams = self.shared.max_streams.load(Ordering::Relaxed);
        if self.shared.counters.live() >= max_streams {
            warn!(
                pid = caller.pid,
                rpc, "too many Workload API streams open; refusing"
            );
            return Err(Status::resource_exhausted(format!(
                "the agent already serves {} Workload API streams; close unused streams and \
                 retry",
                max_streams
            )));
        }
        let mut cache = self.cache.clone();
        let state = cache.borrow_and_update().clone();
        let first = compute(&state, &selectors, stream::now_secs()).inspect_err(|s| {
            debug!(pid = caller.pid, rpc, "refused: {}", s.message());
        })?;
        let span = info_span!("workload_stream", rpc, pid = caller.pid, uid = caller.uid);
        let out = stream::spawn(
            cache,
            self.shared.closing.subscribe(),
            first,
            move |state, now| compute(state, &selectors, now),
            self.shared.counters.clone(),
            span,
        );
        Ok(Response::new(out))
    }
}

/// InvalidArgument unless the call carries exactly one `workload.spiffe.io: true`.
fn check_security_header(md: &MetadataMap) -> Result<(), Status> {
    let mut values = md.get_all(SECURITY_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if v.as_bytes() == b"true" => Ok(()),
        _ => Err(Status::invalid_argument(
            "security header missing from request",
        )),
    }
}

/// The caller's kernel-reported credentials.
fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    let info = request
        .extensions()
        .get::<UdsConnectInfo>()
        .ok_or_else(|| {
            Status::internal(
                "the Workload API must be served over a Unix socket; this connection has no peer \
             credentials",
            )
        })?;
    let cred = info.peer_cred.ok_or_else(|| {
        Status::internal(
            "could not read the caller's peer credentials (SO_PEERCRED); is this a supported \
             system?",
        )
    })?;
    Ok(Caller {
        pid: cred.pid().unwrap_or(0),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

fn attest_status(e: &AttestError) -> Status {
    let msg = format!("workload attestation failed: {e}");
    if e.is_caller_fault() || matches!(e, AttestError::NoPid) {
        Status::permission_denied(msg)
    } else {
        Status::internal(msg)
    }
}

fn jwt_status(id: &SpiffeId, e: JwtError) -> Status {
    match e {
        JwtError::Invalid(m) => Status::invalid_argument(m),
        JwtError::Unavailable(m) => {
            Status::unavailable(format!("could not fetch a JWT-SVID for {id}: {m}"))
        }
    }
}

type Stream<M> = ReceiverStream<Result<M, Status>>;

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = Stream<X509svidResponse>;
    type FetchX509BundlesStream = Stream<X509BundlesResponse>;
    type FetchJWTBundlesStream = Stream<JwtBundlesResponse>;
    type FetchWITSVIDStream = Stream<WitsvidResponse>;
    type FetchWITBundlesStream = Stream<WitBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        self.open_stream(request, "FetchX509SVID", views::x509_svid)
            .await
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        self.open_stream(request, "FetchX509Bundles", views::x509_bundles)
            .await
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        check_security_header(request.metadata())?;
        let req = request.get_ref();
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if req.audience.iter().any(String::is_empty) {
            return Err(Status::invalid_argument(
                "audience values must not be empty",
            ));
        }
        let wanted = match req.spiffe_id.as_str() {
            "" => None,
            s => Some(SpiffeId::parse(s).map_err(|e| {
                Status::invalid_argument(format!("invalid requested SPIFFE ID: {e}"))
            })?),
        };
        let (caller, selectors) = self.attest(&request).await?;
        let state = self.cache.borrow().clone();
        let ent = Entitlement::of(&state, &selectors, stream::now_secs());
        if ent.is_empty() {
            return Err(views::no_identity(&state, &selectors));
        }
        let chosen: Vec<_> = match &wanted {
            None => ent.svids.clone(),
            Some(id) => ent
                .svids
                .iter()
                .filter(|s| s.spiffe_id == *id)
                .cloned()
                .collect(),
        };
        if let (Some(id), true) = (&wanted, chosen.is_empty()) {
            let own: Vec<&str> = ent.svids.iter().map(|s| s.spiffe_id.as_str()).collect();
            debug!(pid = caller.pid, requested = %id, "requested SPIFFE ID not entitled");
            return Err(Status::permission_denied(format!(
                "no identity issued: this workload is not entitled to {id}; its entries give [{}]",
                own.join(", ")
            )));
        }
        let mut svids = Vec::with_capacity(chosen.len());
        for svid in chosen {
            let token = self
                .jwt
                .jwt_svid(&svid, &req.audience)
                .await
                .map_err(|e| jwt_status(&svid.spiffe_id, e))?;
            svids.push(Jwtsvid {
                spiffe_id: svid.spiffe_id.to_string(),
                svid: token,
                hint: svid.hint.clone(),
            });
        }
        Ok(Response::new(JwtsvidResponse { svids }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.open_stream(request, "FetchJWTBundles", views::jwt_bundles)
            .await
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        check_security_header(request.metadata())?;
        let req = request.get_ref();
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if req.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        let (caller, selectors) = self.attest(&request).await?;
        let state = self.cache.borrow().clone();
        let now = stream::now_secs();
        // As in SPIRE, a caller without entries may still validate against its own trust
        // domain; federated trust domains count only through its entries.
        let ent = Entitlement::of(&state, &selectors, now);
        let bundles = CallerBundles::new(&state, &ent);
        let now = u64::try_from(now).unwrap_or(0);
        let v =
            sigil_spiffe::jwt::validate(&req.svid, &req.audience, &bundles, now).map_err(|e| {
                debug!(pid = caller.pid, error = %e, "JWT-SVID rejected");
                Status::invalid_argument(e.to_string())
            })?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id: v.id.to_string(),
            claims: Some(views::claims_to_struct(v.claims)),
        }))
    }

    async fn fetch_witsvid(
        &self,
        request: Request<WitsvidRequest>,
    ) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        check_security_header(request.metadata())?;
        Err(Status::unimplemented("WIT-SVID profile is not supported"))
    }

    async fn fetch_wit_bundles(
        &self,
        request: Request<WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        check_security_header(request.metadata())?;
        Err(Status::unimplemented("WIT-SVID profile is not supported"))
    }
}

/// A health reporter for the Workload API socket, with the overall status (`""`) and the
/// Workload API service (`SpiffeWorkloadAPI`) both NOT_SERVING until [`set_serving`] says
/// otherwise (the agent does, once it holds its own SVID).
pub async fn health_reporter() -> HealthReporter {
    let reporter = HealthReporter::new();
    set_serving(&reporter, false).await;
    reporter
}

/// Sets the overall and the Workload API health status.
pub async fn set_serving(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// The tonic router with the Workload API and the gRPC health service.
pub fn router(api: WorkloadApi, health: &HealthReporter) -> Router {
    Server::builder()
        .add_service(SpiffeWorkloadApiServer::new(api))
        .add_service(HealthServer::new(HealthService::from_health_reporter(
            health.clone(),
        )))
}

/// Serves the Workload API and health service on `listener` until `shutdown` resolves; then
/// ends open streams (Unavailable) and finishes in-flight calls.
///
/// gRPC clients on Unix sockets send the socket path as `:authority`; the workspace's patched
/// h2 (vendor/h2/SIGIL-PATCH.md) accepts that, for every server built on it.
pub async fn serve(
    listener: UnixListener,
    api: WorkloadApi,
    health: &HealthReporter,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let closer = api.clone();
    let incoming = UnixListenerStream::new(listener);
    router(api, health)
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            closer.close_streams();
        })
        .await
}
