//! The proxy's own configuration (YAML): who the workload is (namespace, labels), which ports
//! it serves and which upstreams it calls. Policy itself comes from the agent.
//!
//! ```yaml
//! workload:
//!   name: billing-service
//!   namespace: payments
//!   labels: {app: billing-service}
//! workloadApi: unix:///run/sigil/agent/api.sock   # default $SPIFFE_ENDPOINT_SOCKET
//! inbound:
//!   - port: 8080                  # callers dial this; PeerAuthentication ports refer to it
//!     app: 127.0.0.1:18080        # the local application
//!     protocol: http              # http | http2 | tcp | auto
//!   - port: 9090
//!     app: 127.0.0.1:19090
//!     protocol: http
//! outbound:
//!   - listen: 127.0.0.1:15001     # the app calls this, in plaintext
//!     host: billing-service.payments.svc.cluster.local
//!     port: 8080
//!     protocol: http
//!     address: 127.0.0.1:8080     # optional; else from ServiceEntry/WorkloadEntry
//! admin: 127.0.0.1:15000
//! stats: 127.0.0.1:15090
//! accessLog: stderr               # stderr | stdout | off | a file path
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Application protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppProtocol {
    /// HTTP/1.1 (and HTTP/2 when ALPN h2 is negotiated on mTLS).
    Http,
    /// HTTP/2 only (prior knowledge on plaintext).
    Http2,
    /// Opaque TCP: authorization on the connection, no HTTP attributes.
    Tcp,
    /// Detect HTTP/1.x by its first line, else TCP.
    Auto,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadMeta {
    /// For `describe` and logs.
    #[serde(default)]
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Pick this SVID when the Workload API returns several (default: the first).
    #[serde(default)]
    pub spiffe_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundPort {
    /// The port the proxy listens on and callers dial (the workload port of PeerAuthentication).
    pub port: u16,
    /// Listen address (default 0.0.0.0).
    #[serde(default)]
    pub bind: Option<std::net::IpAddr>,
    /// The local application.
    pub app: SocketAddr,
    #[serde(default = "default_protocol")]
    pub protocol: AppProtocol,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upstream {
    /// Where the local app connects (plaintext).
    pub listen: SocketAddr,
    /// The service host (`billing-service.payments.svc.cluster.local`).
    pub host: String,
    /// The service port.
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: AppProtocol,
    /// A fixed address; without it the host is resolved through ServiceEntry/WorkloadEntry.
    #[serde(default)]
    pub address: Option<SocketAddr>,
    /// DestinationRule subset to use.
    #[serde(default)]
    pub subset: Option<String>,
}

fn default_protocol() -> AppProtocol {
    AppProtocol::Http
}

/// Timeouts and caps (Envoy-like defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Time for a TLS handshake (and for PERMISSIVE sniffing of the first bytes).
    #[serde(default = "d_handshake", with = "duration_str")]
    pub handshake_timeout: Duration,
    /// Time to receive a complete request head.
    #[serde(default = "d_header", with = "duration_str")]
    pub header_timeout: Duration,
    /// Largest request head; larger gets 431.
    #[serde(default = "d_header_bytes")]
    pub max_header_bytes: usize,
    /// Open downstream connections at most, per listener; more are closed at once.
    #[serde(default = "d_connections")]
    pub max_connections: usize,
    /// Idle keep-alive connections are closed after this.
    #[serde(default = "d_idle", with = "duration_str")]
    pub idle_timeout: Duration,
    /// On SIGTERM: stop accepting, let open requests finish for at most this long.
    #[serde(default = "d_drain", with = "duration_str")]
    pub drain_timeout: Duration,
}

fn d_handshake() -> Duration {
    Duration::from_secs(10)
}
fn d_header() -> Duration {
    Duration::from_secs(10)
}
fn d_header_bytes() -> usize {
    60 * 1024
}
fn d_connections() -> usize {
    10_000
}
fn d_idle() -> Duration {
    Duration::from_secs(300)
}
fn d_drain() -> Duration {
    Duration::from_secs(5)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: d_handshake(),
            header_timeout: d_header(),
            max_header_bytes: d_header_bytes(),
            max_connections: d_connections(),
            idle_timeout: d_idle(),
            drain_timeout: d_drain(),
        }
    }
}

mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// `500ms`, `10s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 500ms, 10s, 5m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "{s:?} has no unit; write e.g. 500ms, 10s, 5m or 1h"
        )),
    }
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stderr,
    Stdout,
    Off,
    File(PathBuf),
}

impl<'de> Deserialize<'de> for AccessLogTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "stderr" | "" => AccessLogTarget::Stderr,
            "stdout" => AccessLogTarget::Stdout,
            "off" => AccessLogTarget::Off,
            p => AccessLogTarget::File(PathBuf::from(p)),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    pub workload: WorkloadMeta,
    /// The agent's socket (path or unix:///path); default `$SPIFFE_ENDPOINT_SOCKET`.
    #[serde(default)]
    pub workload_api: Option<String>,
    #[serde(default)]
    pub inbound: Vec<InboundPort>,
    #[serde(default)]
    pub outbound: Vec<Upstream>,
    /// Admin endpoint (`/certs`, `/config_dump`, `/ready`, `/logging`); local only by default.
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
    /// Stats endpoint (`/stats`, `/stats/prometheus`).
    #[serde(default = "default_stats")]
    pub stats: SocketAddr,
    #[serde(default = "default_access_log")]
    pub access_log: AccessLogTarget,
    #[serde(default)]
    pub limits: Limits,
    /// The mesh's root namespace (default istio-system).
    #[serde(default = "default_root_namespace")]
    pub root_namespace: String,
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15000))
}
fn default_stats() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15090))
}
fn default_access_log() -> AccessLogTarget {
    AccessLogTarget::Stderr
}
fn default_root_namespace() -> String {
    "istio-system".into()
}

/// A configuration problem, with the file and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the proxy config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("proxy config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ProxyConfig {
    /// Reads and checks a YAML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks YAML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: ProxyConfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if !sigil_policy::is_dns1123_label(&self.workload.namespace) {
            return Err(format!(
                "workload.namespace {:?} is not a valid namespace (lowercase letters, digits and '-')",
                self.workload.namespace
            ));
        }
        let mut ports = std::collections::BTreeSet::new();
        for (i, p) in self.inbound.iter().enumerate() {
            if p.port == 0 {
                return Err(format!("inbound[{i}].port must be 1..65535"));
            }
            if !ports.insert(p.port) {
                return Err(format!(
                    "inbound[{i}].port {} is listed twice; give each port once",
                    p.port
                ));
            }
        }
        let mut listens = std::collections::BTreeSet::new();
        for (i, u) in self.outbound.iter().enumerate() {
            if u.host.is_empty() {
                return Err(format!(
                    "outbound[{i}].host is required (e.g. billing-service.payments.svc.cluster.local)"
                ));
            }
            if !listens.insert(u.listen) {
                return Err(format!(
                    "outbound[{i}].listen {} is used twice; each upstream needs its own local address",
                    u.listen
                ));
            }
        }
        if let Some(id) = &self.workload.spiffe_id {
            sigil_spiffe::SpiffeId::parse(id)
                .map_err(|e| format!("workload.spiffeId {id:?}: {e}"))?;
        }
        Ok(())
    }

    /// The policy crate's view of this workload.
    pub fn policy_workload(&self, spiffe_id: Option<&str>) -> sigil_policy::Workload {
        let mut w = sigil_policy::Workload::new(
            &self.workload.namespace,
            self.workload
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        w.spiffe_id = spiffe_id.map(str::to_owned);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let text = "workload:\n  name: billing-service\n  namespace: payments\n  labels: {app: billing-service}\ninbound:\n  - port: 8080\n    app: 127.0.0.1:18080\n  - port: 9090\n    app: 127.0.0.1:19090\n    protocol: tcp\noutbound:\n  - listen: 127.0.0.1:15001\n    host: billing-service.payments.svc.cluster.local\n    port: 8080\nlimits:\n  handshakeTimeout: 2s\n";
        let c = ProxyConfig::parse(text).unwrap();
        assert_eq!(c.inbound.len(), 2);
        assert_eq!(c.inbound[1].protocol, AppProtocol::Tcp);
        assert_eq!(c.limits.handshake_timeout, Duration::from_secs(2));
        assert_eq!(c.admin.to_string(), "127.0.0.1:15000");
    }

    #[test]
    fn mistakes_say_what_to_change() {
        let e = ProxyConfig::parse("workload:\n  namespace: Payments\n").unwrap_err();
        assert!(e.contains("not a valid namespace"), "{e}");
        let e = ProxyConfig::parse("workload:\n  namespace: p\ninbound:\n  - port: 1\n    app: 127.0.0.1:2\n  - port: 1\n    app: 127.0.0.1:3\n").unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        let e = ProxyConfig::parse("workload:\n  namespace: p\nlimits:\n  headerTimeout: 10\n")
            .unwrap_err();
        assert!(e.contains("no unit"), "{e}");
        let e = ProxyConfig::parse("workload:\n  namespace: p\nbogus: 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}
