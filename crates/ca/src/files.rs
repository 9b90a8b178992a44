//! Key and certificate files: the only IO in this crate.
//!
//! Writes are atomic: a temporary file in the target's directory (created 0600 for keys from
//! the first byte), fsync, rename over the target, fsync the directory. A key file that is
//! group- or world-accessible is refused on load.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::error::CaError;
use crate::keys::PrivateKey;
use crate::pem::{self, CertPemError};

/// Mode of private key files.
pub const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate files.
pub const CERT_FILE_MODE: u32 = 0o644;

/// Writes `key` as PKCS#8 PEM to `path`, atomically, mode 0600.
pub fn write_key_file(path: &Path, key: &PrivateKey) -> Result<(), CaError> {
    let pem = key.to_pkcs8_pem()?;
    write_atomic(path, pem.as_bytes(), KEY_FILE_MODE)
}

/// Writes certificates as concatenated PEM to `path`, atomically, mode 0644.
pub fn write_cert_file(path: &Path, certs: &[CertificateDer<'_>]) -> Result<(), CaError> {
    let pem = sigil_spiffe::pem::encode_certificates(certs);
    write_atomic(path, pem.as_bytes(), CERT_FILE_MODE)
}

/// Loads a private key from a PEM file after checking that only its owner can read it.
pub fn read_key_file(path: &Path) -> Result<PrivateKey, CaError> {
    let meta = fs::metadata(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CaError::KeyFileMissing {
            path: path.to_owned(),
        },
        _ => CaError::KeyFileRead {
            path: path.to_owned(),
            source,
        },
    })?;
    if !meta.is_file() {
        return Err(CaError::KeyFileRead {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CaError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len().try_into().unwrap_or(4096)));
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| CaError::KeyFileRead {
            path: path.to_owned(),
            source,
        })?;
    PrivateKey::from_pem(&bytes).map_err(|problem| CaError::Key {
        path: path.to_owned(),
        problem,
    })
}

/// Loads every certificate from a PEM file, in order.
pub fn read_cert_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let bytes = fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CaError::CertFileMissing {
            path: path.to_owned(),
        },
        _ => CaError::CertFileRead {
            path: path.to_owned(),
            source,
        },
    })?;
    pem::decode_certs(&bytes).map_err(|e| match e {
        CertPemError::NoCertificates => CaError::CertFileNoCertificates {
            path: path.to_owned(),
        },
        CertPemError::Pem(source) => CaError::CertFilePem {
            path: path.to_owned(),
            source,
        },
        CertPemError::Corrupt { index, detail } => CaError::CertFileCorrupt {
            path: path.to_owned(),
            index,
            detail,
        },
    })
}

/// Removes a key file; a file that is already gone is not an error.
pub fn remove_key_file(path: &Path) -> Result<(), CaError> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CaError::FileWrite {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let err = |p: &Path| {
        let p = p.to_owned();
        move |source| CaError::FileWrite { path: p, source }
    };
    let dir = parent_dir(path);
    let tmp = temp_path(path)?;
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; set it exactly (never wider than `mode`).
        f.set_permissions(Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err(path)(e));
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(err(&dir))
}

fn sync_parent(path: &Path) -> Result<(), CaError> {
    let dir = parent_dir(path);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CaError::FileWrite { path: dir, source })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> Result<PathBuf, CaError> {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|e| CaError::Crypto(format!("{e:?}")))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(parent_dir(path).join(format!(".{name}.tmp-{}", hex::encode(nonce))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KeyProblem;
    use crate::keys::KeyType;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn key_file_is_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        write_key_file(&path, &key).unwrap();
        assert_eq!(mode(&path), 0o600);
        let back = read_key_file(&path).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn overwriting_a_wider_key_file_leaves_it_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let key = PrivateKey::generate(KeyType::Ed25519).unwrap();
        write_key_file(&path, &key).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            read_key_file(&path).unwrap().public_key_raw(),
            key.public_key_raw()
        );
    }

    #[test]
    fn cert_file_is_0644_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()])
            .unwrap()
            .cert;
        let certs = vec![cert.der().clone(), cert.der().clone()];
        write_cert_file(&path, &certs).unwrap();
        assert_eq!(mode(&path), 0o644);
        assert_eq!(read_cert_file(&path).unwrap(), certs);
    }

    #[test]
    fn group_readable_key_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        write_key_file(&path, &PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        let err = read_key_file(&path).unwrap_err();
        assert!(
            matches!(err, CaError::KeyFilePermissions { mode: 0o640, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
    }

    #[test]
    fn missing_and_garbage_files_have_precise_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        assert!(matches!(
            read_key_file(&missing),
            Err(CaError::KeyFileMissing { .. })
        ));
        assert!(matches!(
            read_cert_file(&missing),
            Err(CaError::CertFileMissing { .. })
        ));

        let garbage = dir.path().join("garbage");
        fs::write(&garbage, "hello").unwrap();
        fs::set_permissions(&garbage, Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_key_file(&garbage),
            Err(CaError::Key {
                problem: KeyProblem::NotPem,
                ..
            })
        ));
        assert!(matches!(
            read_cert_file(&garbage),
            Err(CaError::CertFileNoCertificates { .. })
        ));
        let cut = dir.path().join("cut.pem");
        fs::write(&cut, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        match read_cert_file(&cut) {
            Err(e @ CaError::CertFilePem { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("cut.pem") && msg.contains("never closed"),
                    "{msg}"
                );
            }
            other => panic!("expected CertFilePem, got {other:?}"),
        }

        assert!(matches!(
            read_key_file(dir.path()),
            Err(CaError::KeyFileRead { .. })
        ));
    }

    #[test]
    fn remove_key_file_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        write_key_file(&path, &PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap();
        remove_key_file(&path).unwrap();
        assert!(!path.exists());
        remove_key_file(&path).unwrap();
    }
}
