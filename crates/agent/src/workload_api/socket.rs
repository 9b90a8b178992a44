//! Binding the Workload API's Unix socket.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::UnixListener;
use tracing::info;

/// Mode of a parent directory the agent creates: writable by the agent only.
const DIR_MODE: u32 = 0o755;
/// Mode of the socket: any local process may connect; attestation decides what it gets.
const SOCKET_MODE: u32 = 0o777;

/// Binds the Workload API socket at `path`.
///
/// - A missing parent directory is created (with its own missing parents) with mode 0755.
/// - An existing parent directory that other users can write to is refused: whoever can write
///   there could replace the socket with their own and hand out identities.
/// - A leftover socket file from an earlier run is removed, unless something still answers on
///   it (then `AddrInUse`); a non-socket file at `path` is never removed (`AlreadyExists`).
/// - The socket gets mode 0777.
///
/// Must be called inside a tokio runtime.
pub fn bind_workload_socket(path: impl AsRef<Path>) -> io::Result<UnixListener> {
    let path = path.as_ref();
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "Workload API socket path {} has no parent directory; use an absolute path",
                    path.display()
                ),
            )
        })?;
    prepare_parent(parent)?;
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot bind the Workload API socket {}: {e}",
                path.display()
            ),
        )
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))?;
    info!(socket = %path.display(), "Workload API socket bound");
    Ok(listener)
}

fn prepare_parent(parent: &Path) -> io::Result<()> {
    match fs::metadata(parent) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} is not a directory; cannot put the Workload API socket in it",
                        parent.display()
                    ),
                ));
            }
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o002 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "refusing to serve the Workload API from {}: the directory is writable \
                         by other users (mode {mode:04o}), so anyone could replace the socket; \
                         use a directory only the agent can write to (e.g. chmod o-w)",
                        parent.display()
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(parent)?;
            // The umask may have removed bits; set exactly 0755 on the socket's own directory.
            fs::set_permissions(parent, fs::Permissions::from_mode(DIR_MODE))
        }
        Err(e) => Err(e),
    }
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to replace it with the Workload API \
                 socket",
                path.display()
            ),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another process is serving on {}; stop it (is another agent running?) before \
                 starting this one",
                path.display()
            ),
        ));
    }
    info!(socket = %path.display(), "removing stale Workload API socket");
    fs::remove_file(path)
}
