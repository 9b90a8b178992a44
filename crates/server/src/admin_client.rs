//! A client of the admin API over the server's local Unix socket (the CLI and tests use it).

use std::path::Path;

use anyhow::{Context, anyhow};
use hyper_util::rt::TokioIo;
use sigil_proto::admin::admin_client::AdminClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects to the admin socket, with an error that says what to check.
pub async fn connect(socket: &Path) -> anyhow::Result<AdminClient<Channel>> {
    if !socket.exists() {
        return Err(anyhow!(
            "the server's admin socket {} does not exist: is `sigil server run` running, and \
             with this --socket-path (default <data-dir>/admin.sock)?",
            socket.display()
        ));
    }
    let path = socket.to_owned();
    let channel = Endpoint::try_from("http://[::]:0")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .with_context(|| {
            format!(
                "cannot connect to the server's admin socket {} (permission denied means run as \
                 the server's user; refused means the server is not running)",
                socket.display()
            )
        })?;
    Ok(AdminClient::new(channel)
        .max_decoding_message_size(crate::ADMIN_MAX_MESSAGE)
        .max_encoding_message_size(crate::ADMIN_MAX_MESSAGE))
}
