//! The admin socket: a Unix socket only the server's user can connect to.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::net::{UnixListener, UnixStream};

/// Binds `path` with mode 0600. A stale socket left by a crashed server is replaced; a socket
/// another live server is listening on is an error (two servers must not share one).
pub async fn bind_private(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another server is already listening on the admin socket {}; stop it or \
                     choose another --socket-path",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_is_0600_and_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin.sock");
        let l = bind_private(&p).await.unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = bind_private(&p).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(l);
        // The listener is gone; the stale file is replaced.
        bind_private(&p).await.unwrap();
    }
}
