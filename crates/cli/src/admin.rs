//! The admin API client: gRPC over the server's local Unix socket.

use anyhow::anyhow;

/// The default admin socket, matching `sigil server run`'s default data dir.
pub const DEFAULT_SOCKET: &str = "/var/lib/sigil/server/admin.sock";

pub use sigil_server::admin_client::connect;

/// Turns a gRPC status from the server into a plain error (the server's message already says
/// what to fix).
pub fn status(e: tonic::Status) -> anyhow::Error {
    let code = match e.code() {
        tonic::Code::NotFound => "not found",
        tonic::Code::AlreadyExists => "already exists",
        tonic::Code::InvalidArgument => "invalid argument",
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::FailedPrecondition => "failed precondition",
        _ => "error",
    };
    anyhow!("{code}: {}", e.message())
}
