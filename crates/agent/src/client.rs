//! A Workload API client over the agent's Unix socket, for `sigil agent api fetch` and
//! `sigil agent healthcheck`.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use hyper_util::rt::TokioIo;
use sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

/// Adds the `workload.spiffe.io: true` header every Workload API call must carry.
#[derive(Clone, Copy)]
pub struct SecurityHeader;

impl Interceptor for SecurityHeader {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert("workload.spiffe.io", MetadataValue::from_static("true"));
        Ok(req)
    }
}

pub type WorkloadClient = SpiffeWorkloadApiClient<InterceptedService<Channel, SecurityHeader>>;

/// Accepts a path or `unix:///abs/path` (the `SPIFFE_ENDPOINT_SOCKET` form).
pub fn socket_path(s: &str) -> anyhow::Result<PathBuf> {
    if let Some(rest) = s.strip_prefix("unix://") {
        return Ok(PathBuf::from(rest));
    }
    if s.starts_with("tcp://") {
        return Err(anyhow!(
            "{s}: the Sigil agent serves the Workload API on a Unix socket only"
        ));
    }
    Ok(PathBuf::from(s))
}

/// A channel to the agent's socket.
pub async fn channel(socket: &Path) -> anyhow::Result<Channel> {
    if !socket.exists() {
        return Err(anyhow!(
            "the agent's Workload API socket {} does not exist: is `sigil agent run` running with this --socket-path?",
            socket.display()
        ));
    }
    let p = socket.to_owned();
    Endpoint::try_from("http://[::]:0")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = p.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await
        .with_context(|| {
            format!(
                "cannot connect to the agent's Workload API socket {}",
                socket.display()
            )
        })
}

pub async fn connect(socket: &Path) -> anyhow::Result<WorkloadClient> {
    Ok(SpiffeWorkloadApiClient::with_interceptor(
        channel(socket).await?,
        SecurityHeader,
    ))
}

/// A client of the agent's `ProxyStatus` service (proxies report themselves); carries the
/// Workload API security header since the agent attests the caller the same way.
pub async fn connect_status(
    socket: &Path,
) -> anyhow::Result<
    sigil_proto::status::proxy_status_client::ProxyStatusClient<
        InterceptedService<Channel, SecurityHeader>,
    >,
> {
    Ok(
        sigil_proto::status::proxy_status_client::ProxyStatusClient::with_interceptor(
            channel(socket).await?,
            SecurityHeader,
        ),
    )
}

/// A client of the agent's `MeshConfig` service (the proxies' configuration source).
pub async fn connect_config(
    socket: &Path,
) -> anyhow::Result<sigil_proto::config::mesh_config_client::MeshConfigClient<Channel>> {
    Ok(sigil_proto::config::mesh_config_client::MeshConfigClient::new(channel(socket).await?))
}
