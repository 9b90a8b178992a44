//! Server configuration: resolved once, from YAML (`--config`) and flags, into a validated struct.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sigil_spiffe::TrustDomain;

/// Defaults users know from SPIRE.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
pub const DEFAULT_BIND_PORT: u16 = 8081;
pub const DEFAULT_X509_SVID_TTL: Duration = Duration::from_secs(3600);
pub const DEFAULT_JWT_SVID_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_AGENT_SVID_TTL: Duration = Duration::from_secs(3600);
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_JOIN_TOKEN_TTL: Duration = Duration::from_secs(600);

/// A configuration problem, blamed on the operator's input.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("missing {field}: {hint}")]
    Missing {
        field: &'static str,
        hint: &'static str,
    },
}

/// Reads a YAML config file into `T` strictly: unknown keys (types use
/// `deny_unknown_fields`), duplicate keys and YAML 1.1 booleans (`yes`, `on`) are errors that
/// name the file, line and column.
pub fn load_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let opts = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(&text, opts).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The YAML shape of `sigil server run --config FILE`. Every field mirrors a flag.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileConfig {
    pub trust_domain: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub datastore: Option<String>,
    pub bind_address: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub socket_path: Option<PathBuf>,
    pub metrics_address: Option<String>,
    pub ca_key_type: Option<String>,
    pub ca_ttl: Option<String>,
    pub default_x509_svid_ttl: Option<String>,
    pub default_jwt_svid_ttl: Option<String>,
    pub agent_svid_ttl: Option<String>,
    pub upstream_ca_cert: Option<PathBuf>,
    pub upstream_ca_key: Option<PathBuf>,
    pub x509pop_ca_bundle: Option<PathBuf>,
    pub server_id: Option<String>,
    /// Where ClusterIssuers read their Secrets (cert-manager's `--cluster-resource-namespace`).
    pub cluster_resource_namespace: Option<String>,
    /// Plain-HTTP CRL endpoint (`GET /crl/<ca>.crl|.pem`); off unless given.
    pub crl_listen: Option<String>,
    /// Directory the CRLs are written to (DER and PEM); default `<data_dir>/crl`.
    pub crl_dir: Option<PathBuf>,
    /// Base URL put in issued certificates' CRL distribution point (`<url>/crl/<ca>.crl`).
    pub crl_url: Option<String>,
    /// How long a CRL is valid (its nextUpdate); it is re-signed at half of it.
    pub crl_validity: Option<String>,
}

impl FileConfig {
    /// Reads a YAML config file; unknown keys, duplicate keys and `yes`/`no` booleans are errors.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_yaml(path)
    }

    /// Layers `over` (flags) on top of `self` (file): a flag given wins.
    pub fn merge(self, over: FileConfig) -> FileConfig {
        FileConfig {
            trust_domain: over.trust_domain.or(self.trust_domain),
            data_dir: over.data_dir.or(self.data_dir),
            datastore: over.datastore.or(self.datastore),
            bind_address: over.bind_address.or(self.bind_address),
            bind_port: over.bind_port.or(self.bind_port),
            socket_path: over.socket_path.or(self.socket_path),
            metrics_address: over.metrics_address.or(self.metrics_address),
            ca_key_type: over.ca_key_type.or(self.ca_key_type),
            ca_ttl: over.ca_ttl.or(self.ca_ttl),
            default_x509_svid_ttl: over.default_x509_svid_ttl.or(self.default_x509_svid_ttl),
            default_jwt_svid_ttl: over.default_jwt_svid_ttl.or(self.default_jwt_svid_ttl),
            agent_svid_ttl: over.agent_svid_ttl.or(self.agent_svid_ttl),
            upstream_ca_cert: over.upstream_ca_cert.or(self.upstream_ca_cert),
            upstream_ca_key: over.upstream_ca_key.or(self.upstream_ca_key),
            x509pop_ca_bundle: over.x509pop_ca_bundle.or(self.x509pop_ca_bundle),
            server_id: over.server_id.or(self.server_id),
            cluster_resource_namespace: over
                .cluster_resource_namespace
                .or(self.cluster_resource_namespace),
            crl_listen: over.crl_listen.or(self.crl_listen),
            crl_dir: over.crl_dir.or(self.crl_dir),
            crl_url: over.crl_url.or(self.crl_url),
            crl_validity: over.crl_validity.or(self.crl_validity),
        }
    }
}

/// Where the server's CA gets its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamCa {
    /// A new self-signed root per CA generation (like SPIRE without an UpstreamAuthority).
    SelfSigned,
    /// cert-manager's `ca` issuer secret shape: `tls.crt` (CA cert, then chain) and `tls.key`.
    Disk { cert: PathBuf, key: PathBuf },
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub trust_domain: TrustDomain,
    pub data_dir: PathBuf,
    /// `sqlite://…`, a path, or `postgres://…`.
    pub datastore: String,
    pub bind: SocketAddr,
    pub socket_path: PathBuf,
    /// Prometheus endpoint; `None` disables it.
    pub metrics: Option<SocketAddr>,
    pub ca_key_type: String,
    pub ca_ttl: Duration,
    pub default_x509_svid_ttl: Duration,
    /// JWT-SVID lifetime for entries without `jwt_svid_ttl` (SPIRE default 5m).
    pub default_jwt_svid_ttl: Duration,
    pub agent_svid_ttl: Duration,
    pub upstream: UpstreamCa,
    pub x509pop_ca_bundle: Option<PathBuf>,
    /// Names this server's intermediate CA and journal; stable across restarts.
    pub server_id: Option<String>,
    /// The namespace ClusterIssuers read their Secrets from (default `cert-manager`).
    pub cluster_resource_namespace: String,
    /// Revocation lists: where they are served and written, what certificates point to.
    pub crl: CrlConfig,
}

/// Default lifetime of a published CRL (its nextUpdate); re-signed at half of it.
pub const DEFAULT_CRL_VALIDITY: Duration = Duration::from_secs(3600);

/// Where and how CRLs are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlConfig {
    /// Plain-HTTP endpoint; `None` serves none.
    pub listen: Option<SocketAddr>,
    /// CRL files (`<ca>.crl`, `<ca>.pem`, `all.pem`) are written here.
    pub dir: PathBuf,
    /// Base URL of the CRL distribution point in issued certificates; `None` leaves it out.
    pub url: Option<String>,
    pub validity: Duration,
}

impl ServerConfig {
    /// Resolves defaults and checks every field.
    pub fn resolve(f: FileConfig) -> Result<Self, ConfigError> {
        let td_str = f
            .trust_domain
            .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned());
        let trust_domain = TrustDomain::new(&td_str).map_err(|e| ConfigError::Invalid {
            field: "trust_domain",
            value: td_str.clone(),
            reason: e.to_string(),
        })?;
        let data_dir = f
            .data_dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/sigil/server"));
        let datastore = f
            .datastore
            .unwrap_or_else(|| data_dir.join("datastore.sqlite3").display().to_string());
        let bind = SocketAddr::new(
            f.bind_address.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            f.bind_port.unwrap_or(DEFAULT_BIND_PORT),
        );
        let socket_path = f.socket_path.unwrap_or_else(|| data_dir.join("admin.sock"));
        let metrics = match f.metrics_address.as_deref() {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9988))),
            Some("" | "off" | "none") => None,
            Some(s) => Some(s.parse().map_err(|e| ConfigError::Invalid {
                field: "metrics_address",
                value: s.to_owned(),
                reason: format!("{e}; write HOST:PORT such as 127.0.0.1:9988, or \"off\""),
            })?),
        };
        let dur = |field: &'static str, v: Option<String>, d: Duration| match v {
            None => Ok(d),
            Some(s) => parse_duration(&s).map_err(|reason| ConfigError::Invalid {
                field,
                value: s,
                reason,
            }),
        };
        let ca_ttl = dur("ca_ttl", f.ca_ttl, DEFAULT_CA_TTL)?;
        let default_x509_svid_ttl = dur(
            "default_x509_svid_ttl",
            f.default_x509_svid_ttl,
            DEFAULT_X509_SVID_TTL,
        )?;
        let agent_svid_ttl = dur("agent_svid_ttl", f.agent_svid_ttl, DEFAULT_AGENT_SVID_TTL)?;
        let default_jwt_svid_ttl = dur(
            "default_jwt_svid_ttl",
            f.default_jwt_svid_ttl,
            DEFAULT_JWT_SVID_TTL,
        )?;
        if default_jwt_svid_ttl.is_zero() {
            return Err(ConfigError::Invalid {
                field: "default_jwt_svid_ttl",
                value: "0s".into(),
                reason: "must be positive; JWT-SVIDs must expire (SPIRE's default is 5m)".into(),
            });
        }
        if default_x509_svid_ttl >= ca_ttl {
            return Err(ConfigError::Invalid {
                field: "default_x509_svid_ttl",
                value: format_duration(default_x509_svid_ttl),
                reason: format!(
                    "must be shorter than ca_ttl ({}); SVIDs are clamped to the CA's life",
                    format_duration(ca_ttl)
                ),
            });
        }
        let upstream = match (f.upstream_ca_cert, f.upstream_ca_key) {
            (None, None) => UpstreamCa::SelfSigned,
            (Some(cert), Some(key)) => UpstreamCa::Disk { cert, key },
            (Some(c), None) | (None, Some(c)) => {
                return Err(ConfigError::Invalid {
                    field: "upstream_ca_cert/upstream_ca_key",
                    value: c.display().to_string(),
                    reason: "give both the CA certificate (tls.crt) and its key (tls.key)".into(),
                });
            }
        };
        let cluster_resource_namespace = f
            .cluster_resource_namespace
            .unwrap_or_else(|| DEFAULT_CLUSTER_RESOURCE_NAMESPACE.to_owned());
        if !is_dns_label(&cluster_resource_namespace) {
            return Err(ConfigError::Invalid {
                field: "cluster_resource_namespace",
                value: cluster_resource_namespace,
                reason: "must be a Kubernetes namespace name (lowercase letters, digits and '-', \
                         at most 63 characters)"
                    .into(),
            });
        }
        let crl = resolve_crl(
            f.crl_listen,
            f.crl_dir.unwrap_or_else(|| data_dir.join("crl")),
            f.crl_url,
            f.crl_validity,
        )?;
        Ok(ServerConfig {
            cluster_resource_namespace,
            crl,
            trust_domain,
            data_dir,
            datastore,
            bind,
            socket_path,
            metrics,
            ca_key_type: f.ca_key_type.unwrap_or_else(|| "ec-p256".to_owned()),
            ca_ttl,
            default_x509_svid_ttl,
            default_jwt_svid_ttl,
            agent_svid_ttl,
            upstream,
            x509pop_ca_bundle: f.x509pop_ca_bundle,
            server_id: f.server_id,
        })
    }
}

/// cert-manager's default cluster resource namespace.
pub const DEFAULT_CLUSTER_RESOURCE_NAMESPACE: &str = "cert-manager";

/// An RFC 1123 label, as Kubernetes namespace names are.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn resolve_crl(
    listen: Option<String>,
    dir: PathBuf,
    url: Option<String>,
    validity: Option<String>,
) -> Result<CrlConfig, ConfigError> {
    let listen = match listen.as_deref() {
        None | Some("" | "off" | "none") => None,
        Some(s) => Some(s.parse::<SocketAddr>().map_err(|e| ConfigError::Invalid {
            field: "crl_listen",
            value: s.to_owned(),
            reason: format!("{e}; write HOST:PORT such as 127.0.0.1:8089, or \"off\""),
        })?),
    };
    if let Some(u) = &url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return Err(ConfigError::Invalid {
            field: "crl_url",
            value: u.clone(),
            reason: "write the base URL where the CRLs are reachable, such as \
                     http://sigil-server:8089 (certificates point to <url>/crl/<ca>.crl)"
                .into(),
        });
    }
    let validity = match validity {
        None => DEFAULT_CRL_VALIDITY,
        Some(s) => parse_duration(&s)
            .and_then(|d| {
                if d < Duration::from_secs(60) {
                    Err("must be at least 1m; relying parties re-fetch at nextUpdate".into())
                } else {
                    Ok(d)
                }
            })
            .map_err(|reason| ConfigError::Invalid {
                field: "crl_validity",
                value: s,
                reason,
            })?,
    };
    Ok(CrlConfig {
        listen,
        dir,
        url: url.map(|u| u.trim_end_matches('/').to_owned()),
        validity,
    })
}

/// Parses `90s`, `15m`, `1h`, `24h`, `7d`, `1h30m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. 1h, 30m, 90s or 7d".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration; write e.g. 1h, 30m, 90s or 7d"))?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("unknown unit {c:?} in {s:?}; use s, m, h or d")),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?} is too long"))?;
    }
    if !num.is_empty() {
        return Err(format!("{s:?} ends without a unit; use s, m, h or d"));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("1x").unwrap_err().contains("unknown unit"));
        assert!(
            parse_duration("5h3")
                .unwrap_err()
                .contains("without a unit")
        );
        assert_eq!(format_duration(Duration::from_secs(86_400)), "1d");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn defaults_resolve() {
        let c = ServerConfig::resolve(FileConfig::default()).unwrap();
        assert_eq!(c.trust_domain.as_str(), "cluster.local");
        assert_eq!(c.bind.port(), 8081);
        assert_eq!(
            c.socket_path,
            PathBuf::from("/var/lib/sigil/server/admin.sock")
        );
        assert_eq!(c.upstream, UpstreamCa::SelfSigned);
        assert_eq!(c.metrics, Some(SocketAddr::from(([127, 0, 0, 1], 9988))));
    }

    #[test]
    fn bad_trust_domain_names_the_field() {
        let f = FileConfig {
            trust_domain: Some("Cluster.Local".into()),
            ..Default::default()
        };
        let e = ServerConfig::resolve(f).unwrap_err().to_string();
        assert!(e.contains("trust_domain"), "{e}");
        assert!(e.contains("lowercase"), "{e}");
    }

    #[test]
    fn half_an_upstream_is_refused() {
        let f = FileConfig {
            upstream_ca_cert: Some("/x/tls.crt".into()),
            ..Default::default()
        };
        let e = ServerConfig::resolve(f).unwrap_err().to_string();
        assert!(e.contains("give both"), "{e}");
    }

    #[test]
    fn yaml_rejects_unknown_and_duplicate_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "trust_domain: a.org\ntrust_domian: b\n").unwrap();
        let e = FileConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("trust_domian"), "{e}");
        std::fs::write(&p, "trust_domain: a.org\ntrust_domain: b.org\n").unwrap();
        let e = FileConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("duplicate"), "{e}");
        std::fs::write(&p, "trust_domain: a.org\nbind_port: 9000\n").unwrap();
        let f = FileConfig::load(&p).unwrap();
        let c = ServerConfig::resolve(f).unwrap();
        assert_eq!(c.bind.port(), 9000);
    }
}
