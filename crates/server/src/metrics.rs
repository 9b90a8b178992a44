//! Prometheus metrics of the server, registered once, served off the data path on a local
//! address (default 127.0.0.1:9988).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SvidLabels {
    /// `x509-svid` or `agent-svid`.
    pub kind: String,
    /// `ok`, or why it was refused: `unauthorized`, `bad_csr`, `not_found`, `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttestLabels {
    /// `join_token` or `x509pop`.
    pub method: String,
    /// `ok` or the reason of the refusal.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok`, `invalid` (refused documents) or `error` (datastore).
    pub result: String,
}

/// cert-manager's certificate labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct CertLabels {
    pub name: String,
    pub namespace: String,
    pub issuer_name: String,
    pub issuer_kind: String,
    pub issuer_group: String,
}

/// cert-manager's certificate labels plus the Ready condition status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertReadyLabels {
    pub name: String,
    pub namespace: String,
    /// `True`, `False` or `Unknown`.
    pub condition: String,
    pub issuer_name: String,
    pub issuer_kind: String,
    pub issuer_group: String,
}

/// cert-manager's metrics, under cert-manager's names (no `sigil_server_` prefix) so its
/// dashboards and alerts work unchanged.
pub struct CertManagerMetrics {
    registry: Registry,
    /// `certmanager_certificate_expiration_timestamp_seconds`: notAfter, unix seconds.
    pub expiration: Family<CertLabels, Gauge>,
    /// `certmanager_certificate_renewal_timestamp_seconds`: renewal time, unix seconds.
    pub renewal: Family<CertLabels, Gauge>,
    /// `certmanager_certificate_ready_status`: 1 for the current Ready status, 0 for the others.
    pub ready: Family<CertReadyLabels, Gauge>,
}

impl CertManagerMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("certmanager");
        let expiration = Family::<CertLabels, Gauge>::default();
        registry.register(
            "certificate_expiration_timestamp_seconds",
            "The timestamp after which the certificate expires, expressed in Unix Epoch Time",
            expiration.clone(),
        );
        let renewal = Family::<CertLabels, Gauge>::default();
        registry.register(
            "certificate_renewal_timestamp_seconds",
            "The timestamp after which the certificate should be renewed, expressed in Unix \
             Epoch Time",
            renewal.clone(),
        );
        let ready = Family::<CertReadyLabels, Gauge>::default();
        registry.register(
            "certificate_ready_status",
            "The ready status of the certificate",
            ready.clone(),
        );
        CertManagerMetrics {
            registry,
            expiration,
            renewal,
            ready,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// RFC 5280 reason name (`keyCompromise`, …).
    pub reason: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// cert-manager's certificate metrics.
    pub certmanager: CertManagerMetrics,
    pub svids: Family<SvidLabels, Counter>,
    pub attestations: Family<AttestLabels, Counter>,
    /// notAfter (unix seconds) of the active signing CA.
    pub ca_expiry: Gauge,
    pub entries: Gauge,
    pub agents: Gauge,
    /// `sigil apply`/`delete` calls by result.
    pub config_applies: Family<ResultLabel, Counter>,
    /// The configuration revision being delivered.
    pub config_revision: Gauge,
    /// Agents' configuration streams open on this replica.
    pub config_streams: Gauge,
    /// Proxies reported by the agents connected to this replica.
    pub proxies: Gauge,
    /// Proxy reports by result (ok, refused).
    pub proxy_reports: Family<ResultLabel, Counter>,
    /// Secrets sent to agents for files on their node, by result (delivered, denied, missing, error).
    pub secret_deliveries: Family<ResultLabel, Counter>,
    /// Certificates revoked through this replica, by reason.
    pub revocations: Family<ReasonLabel, Counter>,
    /// Revoked certificates not yet expired (the size of the revocation list).
    pub revoked: Gauge,
    /// CRL signings, by result (ok, error).
    pub crl_publications: Family<ResultLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sigil_server");
        let svids = Family::<SvidLabels, Counter>::default();
        registry.register(
            "svids_issued",
            "SVIDs signed or refused, by kind and result",
            svids.clone(),
        );
        let attestations = Family::<AttestLabels, Counter>::default();
        registry.register(
            "node_attestations",
            "Agent attestations, by method and result",
            attestations.clone(),
        );
        let ca_expiry = Gauge::default();
        registry.register(
            "ca_expiry_timestamp_seconds",
            "notAfter of the active X.509 signing CA, unix seconds",
            ca_expiry.clone(),
        );
        let entries = Gauge::default();
        registry.register(
            "entries",
            "Registration entries in the datastore",
            entries.clone(),
        );
        let agents = Gauge::default();
        registry.register("agents", "Attested agents in the datastore", agents.clone());
        let config_applies = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_applies",
            "Configuration apply/delete calls, by result (invalid: refused, nothing stored)",
            config_applies.clone(),
        );
        let config_revision = Gauge::default();
        registry.register(
            "config_revision",
            "Store revision of the mesh configuration being delivered to agents",
            config_revision.clone(),
        );
        let config_streams = Gauge::default();
        registry.register(
            "config_streams",
            "Agent configuration streams open on this replica",
            config_streams.clone(),
        );
        let proxies = Gauge::default();
        registry.register(
            "proxies",
            "Proxies reported by the agents connected to this replica",
            proxies.clone(),
        );
        let proxy_reports = Family::<ResultLabel, Counter>::default();
        registry.register(
            "proxy_reports",
            "Agents' proxy status reports, by result (ok, refused)",
            proxy_reports.clone(),
        );
        let secret_deliveries = Family::<ResultLabel, Counter>::default();
        registry.register(
            "secret_deliveries",
            "Secrets sent to agents to write as files, by result (delivered, denied, missing, error)",
            secret_deliveries.clone(),
        );
        let revocations = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "revocations",
            "Certificates revoked through this replica, by RFC 5280 reason",
            revocations.clone(),
        );
        let revoked = Gauge::default();
        registry.register(
            "revoked_certificates",
            "Revoked certificates that have not expired yet (pushed to every proxy, in the CRLs)",
            revoked.clone(),
        );
        let crl_publications = Family::<ResultLabel, Counter>::default();
        registry.register(
            "crl_publications",
            "CRLs signed and published, by result (ok, error)",
            crl_publications.clone(),
        );
        Metrics {
            revocations,
            revoked,
            crl_publications,
            registry,
            certmanager: CertManagerMetrics::new(),
            proxies,
            proxy_reports,
            secret_deliveries,
            config_applies,
            config_revision,
            config_streams,
            svids,
            attestations,
            ca_expiry,
            entries,
            agents,
        }
    }

    pub fn svid(&self, kind: &str, result: &str) {
        self.svids
            .get_or_create(&SvidLabels {
                kind: kind.into(),
                result: result.into(),
            })
            .inc();
    }

    pub fn attestation(&self, method: &str, result: &str) {
        self.attestations
            .get_or_create(&AttestLabels {
                method: method.into(),
                result: result.into(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.certmanager.registry);
        let _ = encode_eof(&mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `/metrics` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let resp = match req.uri().path() {
                        "/metrics" => Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(Bytes::from(metrics.encode()))),
                        _ => Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"not found; try /metrics\n"))),
                    };
                    Ok::<_, Infallible>(resp.unwrap_or_default())
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// Binds the metrics listener. The default address is loopback; a wider one is the
/// operator's explicit choice.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
