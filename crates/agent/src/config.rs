//! Agent configuration: YAML (`--config`) and flags, resolved once into a validated struct.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sigil_spiffe::TrustDomain;

pub const DEFAULT_SOCKET: &str = "/tmp/sigil-agent/public/api.sock";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/sigil/agent";
/// The agent's admin socket with the default data dir (`<data-dir>/admin.sock`).
pub const DEFAULT_ADMIN_SOCKET: &str = "/var/lib/sigil/agent/admin.sock";

/// The same error type as the server's configuration (what was wrong, in which field or file).
pub use sigil_server::config::ConfigError;

/// The YAML shape of `sigil agent run --config FILE`; every field mirrors a flag.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileConfig {
    pub server_address: Option<String>,
    pub trust_domain: Option<String>,
    pub trust_bundle: Option<PathBuf>,
    pub join_token: Option<String>,
    pub x509pop_cert: Option<PathBuf>,
    pub x509pop_key: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub socket_path: Option<PathBuf>,
    pub admin_socket_path: Option<PathBuf>,
    pub sync_interval: Option<String>,
    /// Where Secrets are written (`<dir>/<namespace>/<name>/<key>`).
    pub secret_dir: Option<PathBuf>,
    /// `NAMESPACE/NAME` of each Secret to write.
    pub secrets: Option<Vec<String>>,
    /// Run with `/bin/sh -c` after Secret files changed.
    pub secret_reload_command: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        sigil_server::config::load_yaml(path)
    }

    /// `over` (flags) wins over `self` (file).
    pub fn merge(self, over: FileConfig) -> FileConfig {
        FileConfig {
            server_address: over.server_address.or(self.server_address),
            trust_domain: over.trust_domain.or(self.trust_domain),
            trust_bundle: over.trust_bundle.or(self.trust_bundle),
            join_token: over.join_token.or(self.join_token),
            x509pop_cert: over.x509pop_cert.or(self.x509pop_cert),
            x509pop_key: over.x509pop_key.or(self.x509pop_key),
            data_dir: over.data_dir.or(self.data_dir),
            socket_path: over.socket_path.or(self.socket_path),
            admin_socket_path: over.admin_socket_path.or(self.admin_socket_path),
            sync_interval: over.sync_interval.or(self.sync_interval),
            secret_dir: over.secret_dir.or(self.secret_dir),
            secrets: over.secrets.or(self.secrets),
            secret_reload_command: over.secret_reload_command.or(self.secret_reload_command),
        }
    }
}

/// How the agent proves itself to the server the first time.
#[derive(Clone, PartialEq, Eq)]
pub enum NodeAttestation {
    JoinToken(String),
    X509Pop {
        cert: PathBuf,
        key: PathBuf,
    },
    /// No method configured: only a persisted agent SVID can be used.
    None,
}

impl std::fmt::Debug for NodeAttestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeAttestation::JoinToken(_) => f.write_str("JoinToken(…)"),
            NodeAttestation::X509Pop { cert, .. } => write!(f, "X509Pop({})", cert.display()),
            NodeAttestation::None => f.write_str("None"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `host:port` of the server's node API.
    pub server_address: String,
    pub trust_domain: TrustDomain,
    /// PEM file of the server's trust bundle, used to verify it at bootstrap.
    pub trust_bundle: Option<PathBuf>,
    pub attestation: NodeAttestation,
    pub data_dir: PathBuf,
    pub socket_path: PathBuf,
    /// The agent's private admin socket (`sigil entry explain`); never in the Workload API
    /// socket's directory.
    pub admin_socket_path: PathBuf,
    /// How often the agent asks the server for changes to its entries and bundles.
    pub sync_interval: Duration,
    /// Secrets written as files on the node, if any.
    pub secret_files: Option<crate::secret_files::SecretFilesConfig>,
}

impl AgentConfig {
    pub fn resolve(f: FileConfig) -> Result<Self, ConfigError> {
        let server_address = f.server_address.ok_or(ConfigError::Missing {
            field: "server_address",
            hint: "give --server-address HOST:PORT of the server's node API (default port 8081)",
        })?;
        if !server_address.contains(':') {
            return Err(ConfigError::Invalid {
                field: "server_address",
                value: server_address,
                reason: "write HOST:PORT, e.g. 127.0.0.1:8081".into(),
            });
        }
        let td = f.trust_domain.unwrap_or_else(|| "cluster.local".into());
        let trust_domain = TrustDomain::new(&td).map_err(|e| ConfigError::Invalid {
            field: "trust_domain",
            value: td.clone(),
            reason: e.to_string(),
        })?;
        let attestation = match (f.join_token, f.x509pop_cert, f.x509pop_key) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "join_token",
                    value: "…".into(),
                    reason: "choose one node attestation method: a join token or x509pop".into(),
                });
            }
            (Some(t), None, None) if t.trim().is_empty() => {
                return Err(ConfigError::Invalid {
                    field: "join_token",
                    value: String::new(),
                    reason: "empty; generate one with `sigil token generate`".into(),
                });
            }
            (Some(t), None, None) => NodeAttestation::JoinToken(t.trim().to_owned()),
            (None, Some(cert), Some(key)) => NodeAttestation::X509Pop { cert, key },
            (None, Some(p), None) | (None, None, Some(p)) => {
                return Err(ConfigError::Invalid {
                    field: "x509pop_cert/x509pop_key",
                    value: p.display().to_string(),
                    reason: "x509pop needs both the certificate and its key".into(),
                });
            }
            (None, None, None) => NodeAttestation::None,
        };
        let sync_interval = match f.sync_interval {
            None => Duration::from_secs(1),
            Some(s) => {
                sigil_server::config::parse_duration(&s).map_err(|reason| ConfigError::Invalid {
                    field: "sync_interval",
                    value: s.clone(),
                    reason,
                })?
            }
        };
        if sync_interval.is_zero() {
            return Err(ConfigError::Invalid {
                field: "sync_interval",
                value: "0".into(),
                reason: "must be positive".into(),
            });
        }
        let data_dir = f
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let socket_path = f
            .socket_path
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        let given = f.admin_socket_path.is_some();
        let admin_socket_path = f
            .admin_socket_path
            .unwrap_or_else(|| data_dir.join("admin.sock"));
        check_admin_socket(&admin_socket_path, &socket_path, given)?;
        let secret_files = secret_files(f.secret_dir, f.secrets, f.secret_reload_command)?;
        Ok(AgentConfig {
            server_address,
            trust_domain,
            trust_bundle: f.trust_bundle,
            attestation,
            data_dir,
            socket_path,
            admin_socket_path,
            sync_interval,
            secret_files,
        })
    }
}

fn secret_files(
    dir: Option<PathBuf>,
    secrets: Option<Vec<String>>,
    reload: Option<String>,
) -> Result<Option<crate::secret_files::SecretFilesConfig>, ConfigError> {
    let secrets = secrets.unwrap_or_default();
    match (dir, secrets.is_empty()) {
        (None, true) => {
            if reload.is_some() {
                return Err(ConfigError::Invalid {
                    field: "secret_reload_command",
                    value: "…".into(),
                    reason: "it runs after Secret files change; give --secret-dir and --secret too"
                        .into(),
                });
            }
            Ok(None)
        }
        (None, false) => Err(ConfigError::Missing {
            field: "secret_dir",
            hint: "--secret needs --secret-dir DIR, where the files are written",
        }),
        (Some(d), true) => Err(ConfigError::Invalid {
            field: "secrets",
            value: d.display().to_string(),
            reason: "--secret-dir is set but no Secret is named; add --secret NAMESPACE/NAME"
                .into(),
        }),
        (Some(dir), false) => {
            let mut parsed = Vec::new();
            for s in &secrets {
                let r =
                    crate::secret_files::parse_ref(s).map_err(|reason| ConfigError::Invalid {
                        field: "secrets",
                        value: s.clone(),
                        reason,
                    })?;
                if !parsed.contains(&r) {
                    parsed.push(r);
                }
            }
            if reload.as_deref().is_some_and(|c| c.trim().is_empty()) {
                return Err(ConfigError::Invalid {
                    field: "secret_reload_command",
                    value: String::new(),
                    reason: "empty; give a command such as `nginx -s reload`, or leave it out"
                        .into(),
                });
            }
            Ok(Some(crate::secret_files::SecretFilesConfig {
                dir,
                secrets: parsed,
                reload_command: reload,
            }))
        }
    }
}

/// The directory a socket path lives in, made absolute against the working directory.
fn socket_dir(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    abs.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Refuses an admin socket in the Workload API socket's directory, as SPIRE's agent does: that
/// directory is open to every workload, and the admin API lists every entry and selector.
fn check_admin_socket(admin: &Path, workload: &Path, given: bool) -> Result<(), ConfigError> {
    if socket_dir(admin) != socket_dir(workload) {
        return Ok(());
    }
    let reason = if given {
        format!(
            "it is in the directory of the Workload API socket {}, which every workload can \
             reach; put the admin socket in a directory only the agent can reach (the default \
             is <data-dir>/admin.sock)",
            workload.display()
        )
    } else {
        format!(
            "the default admin socket <data-dir>/admin.sock is in the directory of the Workload \
             API socket {}, which every workload can reach; move --socket-path out of the data \
             dir, or give --admin-socket-path in a directory only the agent can reach",
            workload.display()
        )
    };
    Err(ConfigError::Invalid {
        field: "admin_socket_path",
        value: admin.display().to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> FileConfig {
        FileConfig {
            server_address: Some("127.0.0.1:8081".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults() {
        let c = AgentConfig::resolve(base()).unwrap();
        assert_eq!(c.socket_path, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.admin_socket_path, PathBuf::from(DEFAULT_ADMIN_SOCKET));
        assert_eq!(c.trust_domain.as_str(), "cluster.local");
        assert_eq!(c.attestation, NodeAttestation::None);
        assert_eq!(c.sync_interval, Duration::from_secs(1));
    }

    #[test]
    fn refusals_name_the_field() {
        let e = AgentConfig::resolve(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("server_address"), "{e}");
        let f = FileConfig {
            server_address: Some("server".into()),
            ..Default::default()
        };
        assert!(
            AgentConfig::resolve(f)
                .unwrap_err()
                .to_string()
                .contains("HOST:PORT")
        );
        let f = FileConfig {
            join_token: Some("t".into()),
            x509pop_cert: Some("c".into()),
            ..base()
        };
        assert!(
            AgentConfig::resolve(f)
                .unwrap_err()
                .to_string()
                .contains("choose one")
        );
        let f = FileConfig {
            x509pop_cert: Some("c".into()),
            ..base()
        };
        assert!(
            AgentConfig::resolve(f)
                .unwrap_err()
                .to_string()
                .contains("both")
        );
        let f = FileConfig {
            sync_interval: Some("0s".into()),
            ..base()
        };
        assert!(
            AgentConfig::resolve(f)
                .unwrap_err()
                .to_string()
                .contains("positive")
        );
    }

    #[test]
    fn admin_socket_is_never_beside_the_workload_socket() {
        let c = AgentConfig::resolve(FileConfig {
            data_dir: Some("/srv/agent".into()),
            ..base()
        })
        .unwrap();
        assert_eq!(c.admin_socket_path, PathBuf::from("/srv/agent/admin.sock"));
        let f = FileConfig {
            admin_socket_path: Some("/tmp/sigil-agent/public/admin.sock".into()),
            ..base()
        };
        let e = AgentConfig::resolve(f).unwrap_err().to_string();
        assert!(
            e.contains("admin_socket_path")
                && e.contains("directory of the Workload API socket")
                && e.contains("/tmp/sigil-agent/public/api.sock"),
            "{e}"
        );
        // The default, when the Workload API socket was put in the data dir.
        let f = FileConfig {
            data_dir: Some("/srv/agent".into()),
            socket_path: Some("/srv/agent/api.sock".into()),
            ..base()
        };
        let e = AgentConfig::resolve(f).unwrap_err().to_string();
        assert!(e.contains("move --socket-path out of the data dir"), "{e}");
    }

    #[test]
    fn yaml_config_is_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.yaml");
        std::fs::write(
            &p,
            "server_address: 127.0.0.1:8081\njoin_token: abc\nsync_interval: 2s\n",
        )
        .unwrap();
        let c = AgentConfig::resolve(FileConfig::load(&p).unwrap()).unwrap();
        assert_eq!(c.attestation, NodeAttestation::JoinToken("abc".into()));
        assert_eq!(c.sync_interval, Duration::from_secs(2));
        std::fs::write(&p, "server_address: 127.0.0.1:8081\nserver_adress: x\n").unwrap();
        let e = FileConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("server_adress") && e.contains("agent.yaml"),
            "{e}"
        );
    }

    #[test]
    fn debug_hides_the_join_token() {
        let f = FileConfig {
            join_token: Some("secret-token".into()),
            ..base()
        };
        let c = AgentConfig::resolve(f).unwrap();
        assert!(!format!("{c:?}").contains("secret-token"));
    }
}
